"""What every part of a speaker shares: its attributes, waiting helpers and group helpers."""

import asyncio
from collections.abc import Callable, Coroutine
import ipaddress
import itertools
import logging
from typing import TYPE_CHECKING, Any, Literal, cast

import aiohttp
from aiohttp import web

from .const import (
    BATTERY_MODELS,
    DEFAULT_EVENT_DELAY,
    SONOS_PORT,
    SOUNDBAR_EQ,
    SOUNDBAR_MODELS,
    STOPPED,
    WEBSOCKET_PATH,
    WEBSOCKET_PORT,
)
from .records import AudioClip, PlaybackRecord, QueueTrack, Subscription, WebsocketPeer

if TYPE_CHECKING:
    from .household import FakeHousehold
    from .speaker import FakeSonosSpeaker


#: Named after the package, as when the double was one module.
_LOGGER = logging.getLogger(__package__)

Handler = Callable[[dict[str, str]], dict[str, str]]


class SpeakerState:
    """A speaker's attributes, waiting helpers and group helpers: the base of every mixin.

    The mixins (`playback.SpeakerPlayback` and the service mixins built on it) use what is
    set here; what one mixin calls of another is declared below for type checkers only.
    """

    if TYPE_CHECKING:
        # speaker.FakeSonosSpeaker
        def _build_handlers(self) -> dict[tuple[str, str], Handler]: ...

        # av_transport.AVTransportMixin
        def _pause(self, _args: dict[str, str]) -> dict[str, str]: ...
        def _avt_last_change(self) -> str: ...

        # rendering.RenderingMixin
        def _group_volume(self) -> int: ...

        # alarms.AlarmsMixin
        def sleep_timer_remaining(self) -> float | None: ...

    def __init__(
        self,
        name: str,
        ip: str,
        *,
        model_name: str = "Sonos One",
        model_number: str = "S18",
        uid: str | None = None,
        supports_audio_clip: bool = True,
        strict_extension_check: bool = True,
        playback_speed: float = 0.0,
        software_version: str = "85.0-66270",
        websocket: bool = True,
        websocket_refuse: int | None = None,
        fetch_timeout: float = 15.0,
        volume: int = 20,
        event_delay: float = DEFAULT_EVENT_DELAY,
        start_delay: float = 0.0,
    ) -> None:
        """Describe the speaker; nothing is bound until `start`.

        ``playback_speed`` scales how long a fetched file "plays": 0 stops right after
        decoding, 1.0 plays in real time, 0.1 ten times faster. ``event_delay``: seconds
        between a change and its UPnP/websocket events (and, for the household it founds, until
        a group change shows in the topology). ``start_delay``: seconds between a complete
        fetch and the start of playing (transport and clips), as a speaker buffers.
        ``websocket=False`` leaves the clip port 1443 closed (connections are refused);
        ``websocket_refuse`` answers the websocket handshake with that HTTP status.
        """
        address = ipaddress.ip_address(ip)
        if not address.is_loopback or address.version != 4:
            raise ValueError(f"the double only binds IPv4 loopback addresses, not {ip}")
        self.name = name
        self.ip = ip
        self.model_name = model_name
        self.model_number = model_number
        self.software_version = software_version
        self.hardware_version = "1.20.1.6-2.1"
        self.display_version = "17.1"
        self.supports_audio_clip = supports_audio_clip
        #: Older firmware plays clips but refuses ``subscribe``: no ``audioClipStatus`` events.
        self.clip_status_events = True
        self.strict_extension_check = strict_extension_check
        self.playback_speed = playback_speed
        self.websocket_enabled = websocket
        self.websocket_refuse = websocket_refuse
        self.fetch_timeout = fetch_timeout
        self.event_delay = event_delay
        self.start_delay = start_delay
        self.user_agent = f"Linux UPnP/1.0 Sonos/{software_version} ({model_number})"
        octets = address.packed
        self.mac = "00:0E:58:" + ":".join(f"{b:02X}" for b in octets[1:])
        self.uid = uid or "RINCON_000E58" + "".join(f"{b:02X}" for b in octets[1:]) + "01400"
        self.serial_number = self.mac.replace(":", "-") + ":E"
        self.household: FakeHousehold | None = None
        #: Bonded sets: the main speaker this one belongs to, its channel, and the set's kind.
        self.bonded_to: FakeSonosSpeaker | None = None
        self.channel: str | None = None
        self.bond_kind: Literal["pair", "theatre"] | None = None

        # Rendering
        self.volume = volume
        self.mute = False
        self.bass = 0
        self.treble = 0
        self.loudness = True
        self.output_fixed = False
        self.led_on = True
        self.buttons_locked = False
        self.eq: dict[str, int] = dict(SOUNDBAR_EQ) if self.is_soundbar else {}
        #: Battery models: what ``/status/batterystatus`` reports (level in percent).
        self.battery_level = 100
        self.battery_charging = False
        # Sleep timer (coordinator's): monotonic deadline, generation counter
        self.sleep_timer_ends: float | None = None
        self.sleep_timer_generation = 0
        self._sleep_handle: asyncio.TimerHandle | None = None
        # Transport (of this speaker; group members report their coordinator's)
        self.coordinator_uid = self.uid
        self.group_seq = 1
        self.boot_seq = 42
        self.transport_state = STOPPED
        self.current_uri = ""
        self.current_meta = ""
        self.next_uri = ""
        self.next_meta = ""
        self.track_number = 0
        self.track_duration: float | None = None
        self.play_mode = "NORMAL"
        self.crossfade = False
        self.queue: list[QueueTrack] = []
        self.queue_update_id = 1
        self._position = 0.0
        self._anchor_time = 0.0
        self._loaded: PlaybackRecord | None = None
        self._generation = 0

        # What happened, for assertions
        self.soap_log: list[tuple[str, str, dict[str, str]]] = []
        self.faults: list[tuple[str, str, int]] = []
        # Extensions this player refuses with 714 even with metadata (AAC on real players).
        self.refused_extensions: set[str] = set()
        self.played: list[PlaybackRecord] = []
        self.clips: list[AudioClip] = []
        self.transport_history: list[str] = []
        self.ws_log: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.notifications: list[tuple[str, str, int, int]] = []  # sid, service, seq, status
        self.errors: list[BaseException] = []  # bugs in the double itself: expect none
        self.on_played: Callable[[PlaybackRecord], None] | None = None

        self._handlers = self._build_handlers()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tail: asyncio.Task[None] | None = None
        self._websockets: set[web.WebSocketResponse] = set()
        self._peers: set[WebsocketPeer] = set()
        self._changed = asyncio.Event()
        self._clip_ids = itertools.count(1)
        self._sub_ids = itertools.count(1)

    # ---------------------------------------------------------------- addresses and model

    @property
    def base_url(self) -> str:
        """``http://ip:1400``."""
        return f"http://{self.ip}:{SONOS_PORT}"

    def websocket_url(self) -> str:
        """Where sonos-websocket connects (``wss://ip:1443/websocket/api``)."""
        return f"wss://{self.ip}:{WEBSOCKET_PORT}{WEBSOCKET_PATH}"

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return self._runner is not None

    @property
    def is_soundbar(self) -> bool:
        """A home-theatre model (by its name, like soco decides)."""
        return self.model_name.lower().removeprefix("sonos ").strip() in SOUNDBAR_MODELS

    @property
    def has_battery(self) -> bool:
        """A portable model with a battery."""
        return self.model_name.lower().removeprefix("sonos ").strip() in BATTERY_MODELS

    # ---------------------------------------------------------------- waiting

    def _signal(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` is true (checked after every change)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until no fetch, playback timer or event delivery is in progress."""
        await self.wait_for(lambda: not self._tasks, timeout)

    async def wait_played(self, count: int = 1, timeout: float = 5.0) -> PlaybackRecord:  # noqa: ASYNC109
        """Wait until ``count`` fetches are recorded; return the last one."""
        await self.wait_for(lambda: len(self.played) >= count, timeout)
        return self.played[-1]

    async def wait_state(self, state: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until this speaker's own transport state is ``state``."""
        await self.wait_for(lambda: self.transport_state == state, timeout)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}: {name}")
        self._tasks.add(task)

        def _done(done: asyncio.Task[Any]) -> None:
            self._tasks.discard(done)
            if not done.cancelled() and (error := done.exception()) is not None:
                self.errors.append(error)
                _LOGGER.error("%s: task %s failed", self.name, done.get_name(), exc_info=error)
            self._signal()

        task.add_done_callback(_done)
        return task

    # ---------------------------------------------------------------- group helpers

    @property
    def coordinator(self) -> FakeSonosSpeaker:
        """The speaker whose transport this one plays (itself when standalone)."""
        if self.bonded_to is not None:
            return self.bonded_to.coordinator
        if self.coordinator_uid == self.uid or self.household is None:
            return self._as_speaker
        return self.household.by_uid(self.coordinator_uid) or self._as_speaker

    @property
    def bonded_members(self) -> list[FakeSonosSpeaker]:
        """The other speakers of the bonded set this one is the main speaker of."""
        if self.household is None:
            return []
        return [s for s in self.household.speakers if s.bonded_to is self]

    @property
    def is_coordinator(self) -> bool:
        """Standalone or leading a group."""
        return self.coordinator is self

    @property
    def group_id(self) -> str:
        """The group ID soco sees (coordinator uid and a sequence number)."""
        coordinator = self.coordinator
        return f"{coordinator.uid}:{coordinator.group_seq}"

    @property
    def group_members(self) -> list[FakeSonosSpeaker]:
        """All speakers of this speaker's group, coordinator first."""
        coordinator = self.coordinator
        if self.household is None:
            return [self._as_speaker]
        return [coordinator] + [
            s
            for s in self.household.speakers
            if s is not coordinator and s.coordinator is coordinator
        ]

    def _household(self) -> FakeHousehold:
        if self.household is None:
            from .household import FakeHousehold  # here: household.py imports the speaker

            FakeHousehold([self._as_speaker], event_delay=self.event_delay)
        assert self.household is not None
        return self.household

    @property
    def _as_speaker(self) -> FakeSonosSpeaker:
        """This speaker as the class composed from the mixins (what every instance is)."""
        return cast("FakeSonosSpeaker", self)
