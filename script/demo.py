"""The demo: a real Home Assistant speaks on two simulated Sonos speakers through Alicia TTS.

Everything runs on loopback (127.0.0.0/8):

1. a throwaway Home Assistant config in ``out/demo-config``: only the ``lo`` network adapter is
   enabled (``.storage/core.network``), HA's core ``sonos`` integration gets the speakers as
   manual hosts, the frontend is on;
2. two simulated Sonos speakers (``tests/sonos_double/``, in this process) on 127.0.0.N:1400
   and :1443: the Kitchen plays a radio station, the Living Room has a paused queue;
3. ``hass`` on http://127.0.0.1:8123 (another free port when taken), onboarded with the user
   ``demo``; Alicia TTS added through the config-flow API with the packaged voice, its speaker
   base URL set through the options-flow API;
4. ``tts.speak`` on the Kitchen and ``alicia_tts.say`` (``wait: true``) on both speakers, once
   as a synced group, through HA's REST API; for each: what every speaker fetched (URL,
   format, duration, first-byte latency) and its state before and after;
5. then HA and the speakers keep running until Ctrl-C (with a long-lived access token and a
   ``curl`` example), or, with ``--ci``, checks and exit 0/1 within 5 minutes.

``--netns`` runs all of it in a fresh network namespace that has nothing but loopback.
``--ha-version X`` runs Home Assistant X from its own venv (``script/ha_venv``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import errno
import fcntl
from importlib import metadata
import json
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ha_instance import (
    REPO,
    HomeAssistantApi,
    HomeAssistantProcess,
    InstanceError,
    OneOf,
    free_port,
    home_assistant,
)

from tests.sonos_double import (
    PAUSED,
    FakeHousehold,
    FakeSonosSpeaker,
    PlaybackRecord,
    didl_title,
    format_hms,
)

VOICE = "en_US-joe-medium"
TTS_ENTITY = "tts.alicia_tts_joe_en_us_medium"
SPEAKER_NAMES = ("Kitchen", "Living Room")
RADIO = "x-sonosapi-stream:s17077?sid=254&flags=8224&sn=0"
DEFAULT_PORT = 8123
CI_TIMEOUT = 300.0
NETNS_ENV = "ALICIA_DEMO_IN_NETNS"
CONFIG_DIR = REPO / "out" / "demo-config"
# ERROR lines in HA's log that say nothing about the demo (a missing optional native library).
HARMLESS_LOG_ERRORS = ("[homeassistant.components.camera.img_util]",)

# What the demo adds to ha_instance's configuration.yaml (api, config, onboarding, tts, ...).
EXTRA_CONFIG = """\
frontend:
sonos:
  media_player:
    hosts:
{hosts}"""


def log(message: str) -> None:
    """A progress line."""
    print(message, flush=True)


# The demo cannot go on; the message says why. Home Assistant's failures (start-up, a refused
# request: ha_instance) and the demo's own are reported alike.
DemoError = InstanceError


# --------------------------------------------------------------------------------------------
# Network namespace
# --------------------------------------------------------------------------------------------


def loopback_up() -> None:
    """Bring ``lo`` up in a fresh namespace (``ip link set lo up``, or the ioctl it makes)."""
    if shutil.which("ip"):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def interfaces() -> list[str]:
    """Network interfaces of this namespace."""
    return sorted(name for _index, name in socket.if_nameindex())


def enter_netns(script: Path, argv: list[str]) -> None:
    """Re-execute ``script`` inside a new network namespace that has only loopback.

    Inside (marked by an environment variable) it brings ``lo`` up and returns. Needs root, or
    unprivileged user namespaces; otherwise it says so and returns to run on the host (still
    only on 127.0.0.0/8).
    """
    if os.environ.get(NETNS_ENV) == "1":
        loopback_up()
        log(f"In a fresh network namespace; its interfaces: {', '.join(interfaces())}")
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        log("--netns: the unshare program (util-linux) is missing; running without a namespace")
        return
    command = [sys.executable, str(script), *argv]
    env = {**os.environ, NETNS_ENV: "1"}
    if os.geteuid() == 0:
        os.execve(unshare, [unshare, "--net", "--", *command], env)
    # Not root: an unprivileged user namespace can own a network namespace on many kernels.
    user_ns = [unshare, "--user", "--map-root-user", "--net"]
    if subprocess.run([*user_ns, "true"], capture_output=True, check=False).returncode == 0:
        os.execve(unshare, [*user_ns, "--", *command], env)
    log(
        "--netns needs root (or unprivileged user namespaces) and has neither here: running "
        "in the host's network namespace instead. The demo still only uses 127.0.0.0/8; run it "
        "as root (sudo) for full isolation."
    )


# --------------------------------------------------------------------------------------------
# Home Assistant: what the demo's instance has (ha_instance starts it)
# --------------------------------------------------------------------------------------------


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def speaker_addresses(count: int) -> int:
    """The first N such that 127.0.0.N .. N+count-1 have ports 1400 and 1443 free."""
    for first in range(2, 250):
        if all(
            port_free(f"127.0.0.{first + i}", port) for i in range(count) for port in (1400, 1443)
        ):
            return first
    raise DemoError("no free loopback addresses for the simulated speakers")


STORES: dict[str, tuple[int, dict[str, Any]]] = {
    # The network integration's stored adapter choice: only loopback. SSDP, zeroconf and
    # everything else that asks HA for its interfaces then stays on 127.0.0.0/8.
    "core.network": (1, {"configured_adapters": ["lo"]}),
    # Onboarding: every step but the user (made through the API) counts as done. The frontend
    # then opens the dashboard; its "home location" step would load map tiles from the
    # internet, and the core_config step would set up internet services (weather, radio).
    "onboarding": (4, {"done": ["core_config", "analytics", "integration"]}),
}


def log_errors(config_dir: Path) -> list[str]:
    """ERROR lines of HA's log (first line of each), except known harmless ones."""
    log_file = config_dir / "home-assistant.log"
    if not log_file.exists():
        return []
    return [
        line
        for line in log_file.read_text(errors="replace").splitlines()
        if re.match(r"\d{4}-\d\d-\d\d \S+ ERROR ", line)
        and not any(harmless in line for harmless in HARMLESS_LOG_ERRORS)
    ]


# --------------------------------------------------------------------------------------------
# Home Assistant: Alicia added, HA's Sonos players found
# --------------------------------------------------------------------------------------------


# Answers to Alicia's config and options flows: the packaged voice and its language.
ALICIA_ANSWERS = {"language": OneOf("en-US", "en_US"), "voice": VOICE}


async def add_alicia(api: HomeAssistantApi, speaker_base_url: str) -> dict[str, Any]:
    """Alicia TTS through the config-flow API, then its options through the options flow."""
    entry: dict[str, Any] = await api.add_integration("alicia_tts", ALICIA_ANSWERS)
    # Saving options reloads the entry: wait for the TTS entity before and after it.
    first = await api.wait_available(TTS_ENTITY, timeout=60)
    await api.set_options(
        entry["result"]["entry_id"], {**ALICIA_ANSWERS, "speaker_base_url": speaker_base_url}
    )
    await api.wait_available(TTS_ENTITY, timeout=60, newer_than=first["last_changed"])
    return entry


async def sonos_players(
    ha: HomeAssistantProcess,
    rooms: list[str],
    timeout: float,  # noqa: ASYNC109
) -> dict[str, str]:
    """Wait for the core sonos integration's media players: {room: entity_id}.

    HA names a Sonos device after its room; the player entity belongs to that device.
    """
    deadline = time.monotonic() + timeout
    while True:
        entities, devices = await ha.api.ws(
            {"type": "config/entity_registry/list"}, {"type": "config/device_registry/list"}
        )
        rooms_by_device = {d["id"]: d["name_by_user"] or d["name"] for d in devices}
        states = {s["entity_id"]: s["state"] for s in await ha.api.states()}
        players = {
            rooms_by_device.get(e["device_id"], ""): e["entity_id"]
            for e in entities
            if e["platform"] == "sonos"
            and e["entity_id"].startswith("media_player.")
            and states.get(e["entity_id"], "unavailable") != "unavailable"
        }
        if all(room in players for room in rooms):
            return {room: players[room] for room in rooms}
        if time.monotonic() > deadline:
            raise DemoError(
                f"HA's sonos integration set up {sorted(players)} of {rooms} within "
                f"{timeout:.0f} s (see {ha.config_dir / 'home-assistant.log'})"
            )
        await asyncio.sleep(1.0)


# --------------------------------------------------------------------------------------------
# Speakers: state, fetches, checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerState:
    """What a listener would notice about a speaker: source, transport state, volume."""

    source: str
    transport: str
    volume: int
    mute: bool
    position: str

    def __str__(self) -> str:
        """One line."""
        where = f" @ {self.position}" if self.position else ""
        muted = ", muted" if self.mute else ""
        return f"{self.source}{where}, {self.transport}, volume {self.volume}{muted}"


def speaker_state(speaker: FakeSonosSpeaker) -> SpeakerState:
    """The speaker's state as the double holds it."""
    uri = speaker.current_uri
    position = ""
    if uri.startswith("x-rincon-queue:"):
        source = f"queue track {speaker.track_number}/{len(speaker.queue)}"
        position = format_hms(speaker.position())
    elif uri.startswith("x-rincon:"):
        source = f"grouped with {uri.removeprefix('x-rincon:')}"
    elif uri:
        title = didl_title(speaker.current_meta)
        source = f"radio {title!r}" if title else uri
    else:
        source = "nothing"
    return SpeakerState(source, speaker.transport_state, speaker.volume, speaker.mute, position)


def describe_fetch(record: PlaybackRecord) -> str:
    """A fetch in two lines: how and what, then the audio and the latency."""
    if record.error:
        return f"{record.via} {record.url}: ERROR {record.error}"
    volume = f", volume {record.volume}" if record.volume is not None else ""
    return (
        f"{record.via:<11} {record.url}\n"
        f"{'':17}{record.format} {record.sample_rate} Hz x{record.channels}, "
        f"{record.duration_s or 0:.2f} s, peak {record.peak or 0:.2f}, "
        f"first byte after {1000 * (record.first_byte_s or 0):.0f} ms, "
        f"complete after {1000 * (record.total_s or 0):.0f} ms{volume}"
    )


@dataclass
class Check:
    """The outcome of one demo step, for ``--ci``."""

    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem seen."""
        return not self.problems


def check_record(record: PlaybackRecord, check: Check, speaker: str) -> None:
    """Audio a listener would accept: decoded, not silent, a sane length."""
    if record.error:
        check.problems.append(f"{speaker}: fetch failed: {record.error}")
        return
    if record.silent:
        check.problems.append(f"{speaker}: the audio is silent (peak {record.peak})")
    if not 1.0 <= (record.duration_s or 0.0) <= 30.0:
        check.problems.append(f"{speaker}: implausible duration {record.duration_s} s")


def settled(speaker: FakeSonosSpeaker, before: SpeakerState) -> bool:
    """No audio clip playing any more, and the speaker back in its state from before."""
    return all(clip.status != "ACTIVE" for clip in speaker.clips) and (
        speaker_state(speaker) == before
    )


def joined(speaker: FakeSonosSpeaker, since: int, coordinator: FakeSonosSpeaker) -> bool:
    """Whether ``speaker`` joined ``coordinator``'s group (after soap_log entry ``since``)."""
    target = f"x-rincon:{coordinator.uid}"
    return any(
        action == "SetAVTransportURI" and args.get("CurrentURI") == target
        for _service, action, args in speaker.soap_log[since:]
    )


async def poll_until(predicate: Callable[[], bool], deadline: float) -> bool:
    """Check ``predicate`` every 100 ms until it holds or ``deadline`` (monotonic) passes."""
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


# --------------------------------------------------------------------------------------------
# The running demo
# --------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """Simulated speakers and a Home Assistant that set them up."""

    household: FakeHousehold
    ha: HomeAssistantProcess
    api: HomeAssistantApi
    players: dict[str, str]  # room name -> media_player entity id
    checks: list[Check] = field(default_factory=list)

    async def step(
        self,
        title: str,
        rooms: list[str],
        call: Callable[[], Awaitable[Any]],
        *,
        group: bool = False,
    ) -> Check:
        """Run one announcement: states before, the call, fetches, states after.

        Every speaker fetches the audio itself, except in a group: there the coordinator
        fetches and the others join it.
        """
        check = Check(title)
        self.checks.append(check)
        speakers = [self.household[room] for room in rooms]
        before = {s.name: speaker_state(s) for s in speakers}
        ha_before = {room: await self.api.state(self.players[room]) for room in rooms}
        fetched = {s.name: len(s.played) for s in speakers}
        soap = {s.name: len(s.soap_log) for s in speakers}

        def new_records(speaker: FakeSonosSpeaker) -> list[PlaybackRecord]:
            return speaker.played[fetched[speaker.name] :]

        log(f"\n== {title}")
        started = time.monotonic()
        try:
            result = await call()
        except DemoError as err:
            check.problems.append(f"the call failed: {err}")
            log(f"   call failed: {err}")
            return check
        if result is not None:
            log(f"   response after {time.monotonic() - started:.1f} s: {json.dumps(result)}")
        deadline = time.monotonic() + 30
        if group:
            await poll_until(lambda: any(new_records(s) for s in speakers), deadline)
        else:
            await poll_until(lambda: all(new_records(s) for s in speakers), deadline)
        await poll_until(lambda: all(settled(s, before[s.name]) for s in speakers), deadline)
        fetchers = [s for s in speakers if new_records(s)]
        for speaker in speakers:
            records = new_records(speaker)
            if records:
                log(f"   {speaker.name}: fetched {len(records)} file(s)")
            elif group and fetchers and joined(speaker, soap[speaker.name], fetchers[0]):
                log(f"   {speaker.name}: joined {fetchers[0].name}'s group and played along")
            else:
                log(f"   {speaker.name}: fetched nothing")
                check.problems.append(f"{speaker.name}: did not play")
            for record in records:
                log(f"     {describe_fetch(record)}")
                check_record(record, check, speaker.name)
            if len(records) > 1:
                check.problems.append(f"{speaker.name}: fetched {len(records)} times")
            after = speaker_state(speaker)
            same = after == before[speaker.name]
            log(f"     before:   {before[speaker.name]}")
            log(f"     after:    {after}  [{'restored' if same else 'NOT RESTORED'}]")
            if not same:
                check.problems.append(
                    f"{speaker.name}: not restored: {after} (before: {before[speaker.name]})"
                )
        if group and len(fetchers) != 1:
            check.problems.append(f"{len(fetchers)} speakers of one group fetched the audio")
        await self.compare_ha_states(rooms, ha_before, check)
        log(f"   {'OK' if check.ok else 'FAILED: ' + '; '.join(check.problems)}")
        return check

    async def compare_ha_states(
        self, rooms: list[str], before: dict[str, dict[str, Any]], check: Check
    ) -> None:
        """HA's media player states after the announcement (its events may lag a little)."""

        def view(state: dict[str, Any]) -> dict[str, Any]:
            attributes = state.get("attributes", {})
            return {
                "state": state.get("state"),
                "volume_level": attributes.get("volume_level"),
                "media_title": attributes.get("media_title"),
            }

        for room in rooms:
            want = view(before[room])
            got: dict[str, Any] = {}
            for _ in range(50):
                got = view(await self.api.state(self.players[room]))
                if got == want:
                    break
                await asyncio.sleep(0.2)
            text = ", ".join(f"{k}={v!r}" for k, v in got.items())
            log(f"     in HA:    {self.players[room]}: {text}" + ("" if got == want else " (!)"))
            if got != want:
                check.problems.append(f"HA shows {self.players[room]} as {got}, before {want}")

    async def run_announcements(self) -> None:
        """tts.speak on the Kitchen, alicia_tts.say on both, then as a group."""
        kitchen = self.players["Kitchen"]
        both = [self.players[room] for room in SPEAKER_NAMES]

        async def tts_speak() -> Any:
            await self.api.rest(
                "POST",
                "/api/services/tts/speak",
                {
                    "entity_id": TTS_ENTITY,
                    "media_player_entity_id": kitchen,
                    "message": "Hello from Home Assistant. The washing machine has finished.",
                },
            )

        def say(message: str, **extra: Any) -> Callable[[], Awaitable[Any]]:
            async def call() -> Any:
                answer = await self.api.rest(
                    "POST",
                    "/api/services/alicia_tts/say?return_response",
                    {"entity_id": both, "message": message, "wait": True, **extra},
                )
                return answer.get("service_response")

            return call

        await self.step("tts.speak on the Kitchen", ["Kitchen"], tts_speak)
        await self.step(
            "alicia_tts.say on both speakers (wait: true)",
            list(SPEAKER_NAMES),
            say("Dinner is ready. Please come to the kitchen."),
        )
        await self.step(
            "alicia_tts.say on both speakers as one group (group: true, volume: 35, wait: true)",
            list(SPEAKER_NAMES),
            say("The front door has been open for ten minutes.", group=True, volume=35),
            group=True,
        )


def preset_household(household: FakeHousehold) -> None:
    """Something to come back to: radio in the Kitchen, a paused queue in the Living Room.

    Plus what a real household has and HA shows: a favorite station and an alarm.
    """
    kitchen, living_room = household["Kitchen"], household["Living Room"]
    kitchen.preset_radio(RADIO, title="Loopback FM")
    kitchen.volume = 18
    living_room.preset_queue(8, track=3, position="0:01:23", state=PAUSED)
    living_room.volume = 25
    household.add_favorite("Loopback FM", RADIO)
    household.add_alarm(living_room, "07:00:00", recurrence="WEEKDAYS", volume=20)


def ha_python(version: str | None) -> str:
    """The Python that runs Home Assistant: this one, or ``.cache/venv-ha-<version>``'s."""
    if version is None or version == metadata.version("homeassistant"):
        return sys.executable
    return str(REPO / ".cache" / f"venv-ha-{version}" / "bin" / "python")


def prepare_ha_python(version: str | None) -> str:
    """``ha_python``, with everything a demo instance needs installed (needs the network once).

    Another version gets its own venv (``script/ha_venv``); in either, ``script/ha_requirements``
    preinstalls the requirements of the core components HA loads, which HA would otherwise
    install itself at run time, impossible in a namespace without a network.
    """
    python = ha_python(version)
    if python != sys.executable and not (Path(python).parent.parent / ".alicia-complete").exists():
        subprocess.run([str(REPO / "script" / "ha_venv"), str(version)], check=True)
    subprocess.run([str(REPO / "script" / "ha_requirements"), python], check=True)
    return python


def python_ha_version(python: str) -> str:
    """The Home Assistant version a Python has."""
    result = subprocess.run(
        [python, "-c", "from homeassistant.const import __version__; print(__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "?"


@contextlib.asynccontextmanager
async def running_stack(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    config_dir: Path,
    *,
    alicia: bool = True,
) -> AsyncIterator[Stack]:
    """Speakers and Home Assistant up (Alicia added unless ``alicia`` is false); then stopped."""
    started = time.monotonic()
    python = ha_python(args.ha_version)
    port = args.port or (DEFAULT_PORT if port_free("127.0.0.1", DEFAULT_PORT) else free_port())
    household = FakeHousehold.create(
        len(SPEAKER_NAMES),
        first_ip=speaker_addresses(len(SPEAKER_NAMES)),
        names=SPEAKER_NAMES,
        playback_speed=1.0,
    )
    preset_household(household)
    verbose = "debug" if args.verbose else None
    async with household:
        log(
            "Simulated Sonos speakers: "
            + ", ".join(f"{s.name} on {s.ip} ({speaker_state(s)})" for s in household.speakers)
        )
        log(
            f"Starting Home Assistant {python_ha_version(python)} on http://127.0.0.1:{port} "
            f"(config: {config_dir.relative_to(REPO)}) ..."
        )
        async with home_assistant(
            config_dir,
            port=port,
            python=python,
            session=session,
            component=args.component,
            extra_config=EXTRA_CONFIG.format(
                hosts="".join(f"      - {s.ip}\n" for s in household.speakers)
            ),
            log_levels={
                "custom_components.alicia_tts": verbose or "info",
                "homeassistant.components.sonos": verbose or "warning",
                "soco": verbose or "warning",
            },
            stores=STORES,
        ) as ha:
            log(f"Home Assistant is up, user 'demo' onboarded ({time.monotonic() - started:.1f} s)")
            if alicia:
                entry = await add_alicia(ha.api, ha.url)
                log(
                    f"Alicia TTS added through the config flow: {entry['title']}; "
                    f"option speaker_base_url = {ha.url} ({time.monotonic() - started:.1f} s)"
                )
            players = await sonos_players(ha, list(SPEAKER_NAMES), timeout=90)
            log(
                "HA's sonos integration set up "
                + ", ".join(f"{room} -> {entity}" for room, entity in players.items())
                + f" ({time.monotonic() - started:.1f} s)"
            )
            yield Stack(household, ha, ha.api, players)


def print_banner(stack: Stack, token: str) -> None:
    """How to use the running demo."""
    kitchen = stack.players["Kitchen"]
    curl = (
        f"curl -s -X POST '{stack.ha.url}/api/services/alicia_tts/say?return_response' \\\n"
        f"    -H 'Authorization: Bearer {token}' \\\n"
        "    -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"entity_id": "{kitchen}", "message": "Hello from curl", "wait": true}}\''
    )
    speakers = "\n".join(
        f"  {s.name:<12} {s.base_url}  -> {stack.players[s.name]}  "
        f"(state as JSON: {s.base_url}/double/status)"
        for s in stack.household.speakers
    )
    log(
        "\n"
        f"Home Assistant UI: {stack.ha.url}\n"
        f"Login: user {stack.ha.username!r}, password {stack.ha.password!r}\n"
        f"Simulated speakers:\n{speakers}\n"
        f"Long-lived access token: {token}\n"
        f"Try:\n{curl}\n"
        "Every fetch by a speaker is printed below. Ctrl-C stops everything."
    )


async def run(args: argparse.Namespace) -> int:
    """The whole demo; returns the exit code."""
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        aiohttp.ClientSession() as session,
        running_stack(args, session, CONFIG_DIR) as stack,
    ):
        await stack.run_announcements()
        faults = [
            f"{s.name} {f[0]}#{f[1]}: {f[2]}" for s in stack.household.speakers for f in s.faults
        ]
        if faults:
            log(
                "\nUPnP errors the speakers answered (unsupported on this model): "
                + "; ".join(faults)
            )
        errors = [repr(e) for s in stack.household.speakers for e in s.errors]
        if errors:
            stack.checks.append(Check("the simulated speakers had no internal errors", errors))
        if ha_errors := log_errors(CONFIG_DIR):
            stack.checks.append(Check("Home Assistant logged no errors", ha_errors))
        failed = [c for c in stack.checks if not c.ok]
        log(
            f"\n{len(stack.checks) - len(failed)} of {len(stack.checks)} checks OK "
            f"({time.monotonic() - started:.1f} s since start)"
        )
        for check in failed:
            log(f"FAILED {check.name}:\n  " + "\n  ".join(check.problems))
        if args.ci:
            return 1 if failed else 0
        token = await stack.api.long_lived_token(
            f"Alicia demo {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        for speaker in stack.household.speakers:
            speaker.on_played = lambda record: log(f"[{record.speaker}] {describe_fetch(record)}")
        print_banner(stack, token)
        await stop.wait()
        log("Stopping Home Assistant and the speakers ...")
        return 0


async def run_bounded(args: argparse.Namespace) -> int:
    """The demo; with ``--ci`` it fails when it takes longer than CI_TIMEOUT."""
    bound = asyncio.timeout(CI_TIMEOUT if args.ci else None)
    try:
        async with bound:
            return await run(args)
    except TimeoutError:
        if bound.expired():
            raise DemoError(f"the demo took longer than {CI_TIMEOUT:.0f} s") from None
        raise


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options the demo and the UI check share."""
    parser.add_argument(
        "--netns", action="store_true", help="run in a fresh network namespace with only loopback"
    )
    parser.add_argument(
        "--ha-version", help="run this Home Assistant version (own venv, made by script/ha_venv)"
    )
    parser.add_argument("--port", type=int, help=f"HA's port (default {DEFAULT_PORT} or free)")
    parser.add_argument(
        "--verbose", action="store_true", help="debug logs of Alicia, sonos and soco in HA's log"
    )
    parser.add_argument(
        "--component",
        type=Path,
        default=REPO / "custom_components" / "alicia_tts",
        help="the alicia_tts folder to link into HA's config (default: this repository's)",
    )


def main(argv: list[str] | None = None) -> int:
    """``script/demo [--ci] [--netns] [--ha-version X] [--port N] [--verbose]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ci", action="store_true", help="headless: check, stop, exit 0/1")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if os.environ.get(NETNS_ENV) != "1":  # installing needs the network: before the namespace
        prepare_ha_python(args.ha_version)
    if args.netns:
        enter_netns(Path(__file__).resolve(), argv)
    try:
        return asyncio.run(run_bounded(args))
    except DemoError as err:
        log(f"FAILED: {err}")
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        log(f"FAILED: {err}")
    if errors := log_errors(CONFIG_DIR):
        log("Errors in Home Assistant's log:\n  " + "\n  ".join(errors[-10:]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
