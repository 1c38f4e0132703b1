"""A Supervisor with the Piper app for the config flow's app set-up (no Supervisor runs here).

pytest-homeassistant-custom-component does not ship Home Assistant core's ``supervisor_client``
and ``addon_*`` fixtures, so this module models what the flow relies on:

- :class:`FakeSupervisor`: the part of aiohasupervisor's client Home Assistant's real
  ``AddonManager`` calls (store and add-on info, install, start, discovery), for one app, with
  its life cycle not installed -> installing -> installed (stopped) -> running, a failure at
  any step, and the app's announcement after it started: a discovery message in the
  Supervisor's list and, as the Supervisor pushes it to Home Assistant, the ``wyoming``
  discovery flow Home Assistant's ``hassio`` integration starts for it.
- :class:`PiperAppServer`: the app's Wyoming service on loopback (it answers ``describe`` like
  wyoming-piper and speaks a fixed tone), listening only once the app runs.

:func:`supervisor_installed` wires both into a real Home Assistant: ``is_hassio`` true, the
``AddonManager``'s client replaced, and the app's network name pointed at the loopback server.
Nothing else is replaced.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import patch
import uuid

from aiohasupervisor import SupervisorError
from aiohasupervisor.models import AddonState as SupervisorAddonState
from homeassistant.config_entries import SOURCE_HASSIO
from homeassistant.core import HomeAssistant
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import async_read_event, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.tts import Synthesize, SynthesizeStop, SynthesizeStopped

from custom_components.alicia_tts import app

SLUG = app.APP_SLUG
RATE = 22050
# What the app "speaks": 0.5 s of a recognisable 16-bit mono pattern.
PCM = bytes((i * 7) % 251 for i in range(RATE))

NOT_INSTALLED = "not_installed"
INSTALLING = "installing"
STOPPED = "stopped"
RUNNING = "running"


class PiperAppServer:
    """The Piper app's Wyoming service on 127.0.0.1; refuses connections until it runs."""

    def __init__(self, services: str = "tts") -> None:
        """``tts`` (wyoming-piper), ``asr`` (a speech-to-text service only) or ``none``."""
        self.services = services
        self.texts: list[str] = []
        self.port = 0
        self.broken = False  # the app starts, but its service never listens
        self._server: asyncio.Server | None = None

    async def open(self) -> None:
        """Bind a port (not listening yet)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, start_serving=False)
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve(self) -> None:
        """Start answering (the app runs), unless the service is broken."""
        assert self._server is not None
        if not self.broken:
            await self._server.start_serving()

    async def close(self) -> None:
        """Stop and release the port."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def info(self) -> Info:
        """What ``describe`` answers."""
        common: dict[str, Any] = {
            "description": None,
            "attribution": Attribution(name="test", url="http://127.0.0.1/"),
            "installed": True,
            "version": "2.0.0",
        }
        if self.services == "asr":
            model = AsrModel(name="tiny", languages=["en"], **common)
            return Info(asr=[AsrProgram(name="whisper", models=[model], **common)])
        if self.services == "none":
            return Info()
        voice = TtsVoice(name="en_US-lessac-medium", languages=["en_US"], **common)
        return Info(tts=[TtsProgram(name="piper", voices=[voice], **common)])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (event := await async_read_event(reader)) is not None:
                if Describe.is_type(event.type):
                    await async_write_event(self.info().event(), writer)
                elif Synthesize.is_type(event.type):
                    self.texts.append(Synthesize.from_event(event).text)
                    for out in (
                        AudioStart(rate=RATE, width=2, channels=1),
                        AudioChunk(rate=RATE, width=2, channels=1, audio=PCM),
                        AudioStop(),
                    ):
                        await async_write_event(out.event(), writer)
                elif SynthesizeStop.is_type(event.type):
                    await async_write_event(SynthesizeStopped().event(), writer)
        except ConnectionError:
            pass
        finally:
            writer.close()


@dataclass
class StoreInfo:
    """The add-on store's view of the app (``StoreAddonComplete``'s fields used)."""

    installed: bool
    available: bool

    def to_dict(self) -> dict[str, Any]:
        """As logged by the AddonManager."""
        return {"installed": self.installed, "available": self.available}


@dataclass
class InstalledInfo:
    """An installed app (``InstalledAddonComplete``'s fields used)."""

    name: str
    available: bool
    hostname: str
    options: dict[str, Any]
    state: SupervisorAddonState
    update_available: bool
    version: str


@dataclass
class DiscoveryMessage:
    """A discovery message in the Supervisor's list (``Discovery``'s fields used)."""

    addon: str
    service: str
    uuid: uuid.UUID
    config: dict[str, Any]


@dataclass
class FakeSupervisor:
    """The Supervisor as Home Assistant's AddonManager sees it, for the Piper app.

    ``fail`` maps an operation (``store_info``, ``addon_info``, ``install``, ``start``) to the
    error the Supervisor answers it with. ``announce`` / ``push``: whether the started app sends
    its discovery message, and whether the Supervisor pushes it to Home Assistant. ``gate``:
    when set, an install stays in ``installing`` until the event is set.
    """

    hass: HomeAssistant
    server: PiperAppServer
    state: str = NOT_INSTALLED
    available: bool = True
    announce: bool = True
    push: bool = True
    fail: dict[str, Exception] = field(default_factory=dict)
    gate: asyncio.Event | None = None
    calls: list[str] = field(default_factory=list)
    messages: list[DiscoveryMessage] = field(default_factory=list)

    def _call(self, name: str, slug: str) -> None:
        assert slug == SLUG, slug
        self.calls.append(name)
        if name != "install" and (error := self.fail.get(name)) is not None:
            raise error

    # store
    async def store_addon_info(self, slug: str) -> StoreInfo:
        """Store view: installed or not, offered for this machine or not."""
        self._call("store_info", slug)
        return StoreInfo(installed=self.state in (STOPPED, RUNNING), available=self.available)

    async def install_addon(self, slug: str) -> None:
        """Install: installing, then installed and stopped (or back to not installed)."""
        self._call("install", slug)
        self.state = INSTALLING
        if self.gate is not None:
            await self.gate.wait()
        if (error := self.fail.get("install")) is not None:
            self.state = NOT_INSTALLED
            raise error
        self.state = STOPPED

    # addons
    async def installed_addon_info(self, slug: str) -> InstalledInfo:
        """The installed app: stopped or started."""
        self._call("addon_info", slug)
        assert self.state in (STOPPED, RUNNING)
        return InstalledInfo(
            name="Piper",
            available=True,
            hostname=app.APP_HOST,
            options={"voice": "en_US-lessac-medium"},
            state=SupervisorAddonState.STARTED
            if self.state == RUNNING
            else SupervisorAddonState.STOPPED,
            update_available=False,
            version="2.0.0",
        )

    async def start_addon(self, slug: str) -> None:
        """Start: the app's service listens, then the app announces itself."""
        self._call("start", slug)
        self.state = RUNNING
        await self.server.serve()
        if self.announce:
            self.send_discovery()

    async def stop_addon(self, slug: str) -> None:
        """Never called by Alicia (recorded to prove it)."""
        self._call("stop", slug)

    async def uninstall_addon(self, slug: str) -> None:
        """Never called by Alicia (recorded to prove it)."""
        self._call("uninstall", slug)

    # discovery
    async def list(self) -> list[DiscoveryMessage]:
        """The Supervisor's discovery messages."""
        return list(self.messages)

    def send_discovery(self) -> None:
        """The running app announces its Wyoming service, as the Piper app does after start.

        The Supervisor keeps the message and pushes it to Home Assistant, whose ``hassio``
        integration starts the ``wyoming`` discovery flow exactly like this.
        """
        message = DiscoveryMessage(
            addon=SLUG,
            service="wyoming",
            uuid=uuid.uuid4(),
            config={"uri": f"tcp://{app.APP_HOST}:{app.APP_PORT}"},
        )
        self.messages.append(message)
        if not self.push:
            return
        discovery_flow.async_create_flow(
            self.hass,
            message.service,
            context={"source": SOURCE_HASSIO},
            data=HassioServiceInfo(
                config={**message.config, "addon": "Piper"},
                name="Piper",
                slug=message.addon,
                uuid=message.uuid.hex,
            ),
            discovery_key=discovery_flow.DiscoveryKey(
                domain="hassio", key=message.uuid.hex, version=1
            ),
        )


class SupervisorClient:
    """aiohasupervisor's client shape (``store``, ``addons``, ``discovery``) over a fake."""

    def __init__(self, fake: FakeSupervisor) -> None:
        """Route each API's calls to the fake."""
        self.store = _Api(addon_info=fake.store_addon_info, install_addon=fake.install_addon)
        self.addons = _Api(
            addon_info=fake.installed_addon_info,
            start_addon=fake.start_addon,
            stop_addon=fake.stop_addon,
            uninstall_addon=fake.uninstall_addon,
        )
        self.discovery = _Api(list=fake.list)


class _Api:
    def __init__(self, **calls: Any) -> None:
        self.__dict__.update(calls)


def supervisor_error(message: str) -> SupervisorError:
    """An error as the Supervisor answers it."""
    return SupervisorError(message)


@contextlib.contextmanager
def _patched(hass: HomeAssistant, fake: FakeSupervisor) -> Iterator[None]:
    client = SupervisorClient(fake)
    hass.config.components.add("hassio")  # is_hassio(): the Supervisor integration is loaded
    with (
        patch(
            "homeassistant.components.hassio.addon_manager.get_supervisor_client",
            return_value=client,
        ),
        # On the Supervisor's network "core-piper:10200" is the app; here it is the loopback
        # server. The name stays as it is: only where it points changes.
        patch.object(app, "APP_HOST", "127.0.0.1"),
        patch.object(app, "APP_PORT", fake.server.port),
    ):
        yield


@contextlib.asynccontextmanager
async def supervisor_installed(
    hass: HomeAssistant, services: str = "tts", **state: Any
) -> AsyncIterator[FakeSupervisor]:
    """A Supervisor install with the Piper app in the given state (see FakeSupervisor)."""
    server = PiperAppServer(services)
    await server.open()
    fake = FakeSupervisor(hass, server, **state)
    if fake.state == RUNNING:
        await server.serve()
    try:
        with _patched(hass, fake):
            yield fake
    finally:
        await server.close()
