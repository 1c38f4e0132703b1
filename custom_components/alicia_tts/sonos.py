"""Announcements on Sonos speakers. Pure: imports nothing from Home Assistant.

Two ways to speak:

- **overlay**: the speaker's audioClip API over its local websocket (``sonos-websocket`` opens
  it); the music keeps playing, ducked, and the speaker restores itself. Alicia subscribes to the
  speaker's ``audioClipStatus`` events and waits for the clip's own end. A speaker whose clip
  websocket cannot be reached or refuses the connection, or that answers "not supported"
  (``globalError``), gets a takeover instead — never a playback without restore.
- **takeover**: ``soco.snapshot.Snapshot`` of every target (volume, mute, bass, treble, source,
  queue position, play state) and of the topology of its group → optionally one temporary group
  of all targets so they speak in sync → announcement volume → ``play_uri`` → wait until the
  speakers stopped (bounded by the audio's duration plus a margin) → groups back → snapshots
  restored, members before coordinators; a speaker that had no source is emptied again. Restore
  always runs, after errors and timeouts too.

**Topology.** soco answers group questions from its zone group state, which a speaker updates
only some time after a group change (Home Assistant's sonos integration feeds it from the
ZoneGroupTopology events, 50 to 500 ms later on real speakers). So every group change (leave,
join, temporary group, regroup) is followed by a bounded wait until the topology soco sees
confirms it, before anything acts on it — like Home Assistant's sonos integration does. A
timeout is a `GroupTimeoutError`; restore is still attempted.

**Queue.** Every speaker has an announcement queue. `SonosPlayback.reserve` takes a place in the
queues of all of a request's speakers at once (synchronously, so places follow request order) and
refuses with `QueueFullError` beyond `MAX_QUEUED` per speaker. Normal announcements keep FIFO
order; a ``high`` one goes before every waiting normal one (after the playing one and earlier
high ones). Every queue thus holds: the playing one, the high ones, the normal ones, each part in
request order, so two requests are in the same order in every queue they share and cannot
deadlock. The caller synthesizes only once its turn has come, so a waiting announcement holds no
synthesis slot. `SonosPlayback.stop` ends the playing announcement of speakers at once (restore
included) and drops their waiting ones (or keeps them); ``interrupt`` stops the playing one for
a high announcement.

**Volume.** ``volume`` is absolute or relative to the speaker's current volume, plus an optional
per-speaker offset, then clamped to the entry's ``min_volume``/``max_volume`` (`VolumeSetting`).
A muted speaker is unmuted for the announcement and muted again afterwards.

**Models and bonded sets.** Models in `NO_AUDIO_CLIP_MODELS` go straight to takeover. A bonded
set (stereo pair, home theatre with Sub and surrounds) is played through its main speaker (the
visible one, which Home Assistant shows); it gets a takeover, which plays on all its speakers,
unless its other members are only channels that follow an audio clip (`CLIP_FOLLOWING_CHANNELS`,
the Sub) — an audio clip plays on the main speaker only.

soco is synchronous: every soco call runs through ``run_blocking`` (Home Assistant passes its
executor).
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from functools import partial
import logging
import time
from types import TracebackType
from typing import Any, Final, Protocol, Self
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import aiohttp
import requests
from soco import SoCo
from soco.exceptions import SoCoException, SoCoUPnPException
from soco.snapshot import Snapshot
from sonos_websocket import SonosWebsocket
from sonos_websocket.exception import SonosWebsocketError

from .exceptions import TranslatedError
from .options import DEFAULT_MAX_VOLUME, DEFAULT_MIN_VOLUME, OVERLAY, TAKEOVER

_LOGGER = logging.getLogger(__name__)

# UPnP errors a speaker answers when it will not play a URI.
REFUSED_UPNP_CODES: Final = {"701", "714", "716"}
PLAYING_STATES: Final = {"PLAYING", "TRANSITIONING"}
APP_ID: Final = "com.github.alicia_tts"
#: Announcements admitted per speaker, the one playing included; one more is refused.
MAX_QUEUED: Final = 50
#: How long a group change may take to show in the topology (Home Assistant's sonos
#: integration allows 30 s; a speaker that takes more than a few seconds is not answering).
TOPOLOGY_TIMEOUT: Final = 10.0
#: A speaker whose clip websocket could not be reached gets takeovers for this long.
CLIP_RETRY_AFTER: Final = 600.0
#: Clip states after which the speaker has stopped playing it (audioClipState).
CLIP_ENDED: Final = frozenset({"DONE", "DISMISSED", "ERROR", "INTERRUPTED"})
CLIP_STATUS_EVENT: Final = "audioClipStatus"
AUDIO_CLIP_NAMESPACE: Final = "audioClip:1"
SOCO_ERRORS: Final = (SoCoException, requests.exceptions.RequestException, OSError)
#: Models that cannot play audio clips (S1-only and early S2 hardware), by the model name the
#: speaker reports (``Sonos Play:1``; compared without "Sonos " and case): straight to takeover.
NO_AUDIO_CLIP_MODELS: Final = frozenset(
    {
        "play:1",
        "play:3",
        "connect",
        "connect:amp",
        "playbar",
        "zp80",
        "zp90",
        "zp100",
        "zp120",
        "bridge",
    }
)
#: Channels of bonded members that play what the main speaker plays, audio clips included.
CLIP_FOLLOWING_CHANNELS: Final = frozenset({"SW"})
PLAYED: Final = "played"
STOPPED: Final = "stopped"
FAILED: Final = "failed"


def model_key(model: str) -> str:
    """A model name as `NO_AUDIO_CLIP_MODELS` lists it (``Sonos Play:1`` → ``play:1``)."""
    text = model.strip().lower()
    return text.removeprefix("sonos").strip()


def cannot_overlay(model: str) -> bool:
    """Whether a model is known to play no audio clips."""
    return model_key(model) in NO_AUDIO_CLIP_MODELS


class PlaybackError(TranslatedError):
    """Base of playback errors."""

    translation_key = "playback_failed"


class SpeakerUnreachableError(PlaybackError):
    """The speaker did not answer."""

    translation_key = "speaker_unreachable"


class UrlRefusedError(PlaybackError):
    """The speaker refused the audio URL (UPnP 701/714/716)."""

    translation_key = "url_refused"


class NeverFetchedError(PlaybackError):
    """The speaker accepted the URL but never requested the audio."""

    translation_key = "never_fetched"


class QueueFullError(PlaybackError):
    """A speaker already has `MAX_QUEUED` announcements waiting or playing."""

    translation_key = "queue_full"


class GroupTimeoutError(PlaybackError):
    """The speakers' topology did not confirm a group change in time."""

    translation_key = "group_timeout"


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeSetting:
    """The announcement volume asked for, and the entry's limits and per-speaker offsets."""

    level: int | None = None
    change: int | None = None
    minimum: int = DEFAULT_MIN_VOLUME
    maximum: int = DEFAULT_MAX_VOLUME
    offsets: Mapping[str, int] = field(default_factory=dict)  # speaker uid -> offset

    @property
    def requested(self) -> bool:
        """Whether the speaker's volume is changed at all."""
        return self.level is not None or self.change is not None

    def target(self, uid: str, current: int) -> int | None:
        """The volume for a speaker now at ``current``; None: leave it."""
        if self.level is not None:
            wanted = self.level
        elif self.change is not None:
            wanted = current + self.change
        else:
            return None
        wanted += self.offsets.get(uid, 0)
        return max(self.minimum, min(self.maximum, max(0, min(100, wanted))))


class Announcement(Protocol):
    """The audio to play, as the speaker will fetch it."""

    url: str
    title: str

    def was_fetched(self) -> bool:
        """Whether a client has requested the audio."""

    async def async_duration(self) -> float:
        """Wait until the audio is complete and return its length in seconds."""


@dataclass(frozen=True, slots=True)
class Speaker:
    """A Sonos player, as Home Assistant's registries describe it."""

    uid: str
    ip: str
    name: str
    model: str = ""  # as the speaker reports it, e.g. "Play:1"


@dataclass(slots=True)
class SpeakerOutcome:
    """What happened on one speaker."""

    speaker: Speaker
    mode: str
    error: PlaybackError | None = None
    stopped: bool = False
    volume: int | None = None  # the volume it played at, when known

    @property
    def status(self) -> str:
        """``played``, ``stopped`` or ``failed``."""
        if self.error is not None:
            return FAILED
        return STOPPED if self.stopped else PLAYED


@dataclass(slots=True)
class PlaybackResult:
    """What an announcement did."""

    duration: float = 0.0
    outcomes: list[SpeakerOutcome] = field(default_factory=list)

    @property
    def played(self) -> list[Speaker]:
        """Speakers that played the announcement to its end."""
        return [o.speaker for o in self.outcomes if o.status == PLAYED]


class AnnouncementStoppedError(Exception):
    """The announcement was stopped before its turn came (``SonosPlayback.stop``)."""


class _Stopped(Exception):
    """Internal: the playing announcement was stopped."""


class ClipChannelError(Exception):
    """The audioClip websocket is closed or sent a frame that is no Sonos answer."""


async def _or_stop[T](awaitable: Awaitable[T], stop: asyncio.Event) -> T:
    """Await ``awaitable`` unless ``stop`` is set first (then `_Stopped`)."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise _Stopped


# -- bonded sets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bond:
    """A bonded set: a stereo pair or a home theatre, played through its main speaker."""

    main: str  # uid of the visible speaker
    main_ip: str
    channels: dict[str, str]  # uid -> channel (LF, RF, SW, LR, RR, ...) of every member

    @property
    def clips_on_all(self) -> bool:
        """Whether an audio clip on the main speaker is heard on every member."""
        return all(c in CLIP_FOLLOWING_CHANNELS for u, c in self.channels.items() if u != self.main)


def parse_bonds(zone_group_state: str) -> dict[str, Bond]:
    """Every bonded member's set (uid → `Bond`), from a ZoneGroupState document.

    A stereo pair lists both speakers as ``ZoneGroupMember`` with a ``ChannelMapSet`` (the
    second one ``Invisible="1"``); a home theatre lists its Sub and surrounds as ``Satellite``
    elements of the main speaker, with an ``HTSatChanMapSet``.
    """
    # The same document soco (and so HA's sonos integration) parses with ElementTree.
    root = ET.fromstring(zone_group_state)  # noqa: S314 - a speaker's answer on the LAN
    visible: dict[str, str] = {}
    maps: list[str] = []
    for element in root.iter():
        if element.tag not in ("ZoneGroupMember", "Satellite"):
            continue
        uid = element.get("UUID", "")
        if element.get("Invisible") != "1":
            visible[uid] = urlsplit(element.get("Location", "")).hostname or ""
        maps.extend(m for m in (element.get("ChannelMapSet"), element.get("HTSatChanMapSet")) if m)
    bonds: dict[str, Bond] = {}
    for channel_map in maps:
        channels = {}
        for part in channel_map.split(";"):
            uid, _, channel = part.partition(":")
            channels[uid] = ",".join(dict.fromkeys(channel.split(",")))
        main = next((u for u in channels if u in visible), None)
        if main is None or len(channels) < 2:
            continue
        bond = Bond(main, visible[main], channels)
        for uid in channels:
            bonds.setdefault(uid, bond)
    return bonds


def _read_bonds(ip: str, timeout: float) -> dict[str, Bond]:
    """The bonded sets a speaker reports (blocking)."""
    answer = SoCo(ip).zoneGroupTopology.GetZoneGroupState(timeout=timeout)
    return parse_bonds(str(answer.get("ZoneGroupState") or "<ZoneGroupState/>"))


@dataclass(slots=True)
class _Request:
    """How one announcement plays."""

    volume: VolumeSetting
    mode: str | None
    group: bool
    stop: asyncio.Event


type RunBlocking = Callable[[Callable[[], Any]], Awaitable[Any]]


async def _to_thread(func: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(func)


def _classify(err: Exception, speaker: Speaker, url: str) -> PlaybackError:
    """Turn soco/requests errors into typed playback errors."""
    if isinstance(err, PlaybackError):
        return err
    if isinstance(err, SoCoUPnPException) and str(err.error_code) in REFUSED_UPNP_CODES:
        return UrlRefusedError(
            f"{speaker.name} refused {url}: UPnP error {err.error_code}",
            speaker=speaker.name,
            url=url,
            code=str(err.error_code),
        )
    if isinstance(err, (requests.exceptions.RequestException, OSError, TimeoutError)):
        return SpeakerUnreachableError(
            f"{speaker.name} ({speaker.ip}) is unreachable: {err}",
            speaker=speaker.name,
            ip=speaker.ip,
        )
    return PlaybackError(f"{speaker.name}: {err}", speaker=speaker.name, error=str(err))


# -- the queue ---------------------------------------------------------------------------------


class Turn:
    """A place in the announcement queues of a request's speakers.

    ``async with turn:`` waits until the request is first in every one of its queues and gives
    the place up afterwards (also when the wait is cancelled).
    """

    def __init__(self, owner: SonosPlayback, uids: tuple[str, ...], *, high: bool = False) -> None:
        """Held by ``owner``'s queues for the speakers ``uids``."""
        self._owner = owner
        self.uids = uids
        self.high = high
        self._ready = asyncio.Event()
        self.released = False
        #: Set by `SonosPlayback.stop`: the playing announcement ends at once.
        self.stop = asyncio.Event()
        #: Speakers taken out of this (waiting) request by `SonosPlayback.stop`.
        self.dropped: set[str] = set()

    @property
    def ready(self) -> bool:
        """Whether it is this request's turn."""
        return self._ready.is_set() and not self.released

    async def wait(self) -> None:
        """Wait for the turn; a cancelled wait gives the place up.

        `AnnouncementStoppedError` when every speaker was dropped while it waited.
        """
        try:
            await self._ready.wait()
        except BaseException:
            self.release()
            raise
        if not self.uids:
            raise AnnouncementStoppedError

    def _drop(self, uid: str) -> None:
        """Take a speaker out of this waiting request (its queue already forgot it)."""
        self.uids = tuple(u for u in self.uids if u != uid)
        self.dropped.add(uid)
        if not self.uids:
            self.released = True
            self._ready.set()

    def release(self) -> None:
        """Give the place up (idempotent): the next request of each queue may go."""
        if not self.released:
            self.released = True
            self._owner._release(self)  # noqa: SLF001 - the queues belong to the owner

    def _wake(self) -> None:
        self._ready.set()

    async def __aenter__(self) -> Self:
        """Wait for the turn."""
        await self.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Give the place up."""
        self.release()


# -- the audioClip websocket -------------------------------------------------------------------


class _ClipChannel:
    """One speaker's audioClip websocket: commands with their answers, clip status events."""

    def __init__(self, socket: SonosWebsocket, timeout: float) -> None:
        self.socket = socket
        self.timeout = timeout
        self.status: dict[str, str] = {}

    async def _receive(self) -> tuple[dict[str, Any], dict[str, Any]]:
        ws = self.socket.ws
        if ws is None or ws.closed:
            raise ClipChannelError("the clip websocket is closed")
        message = await ws.receive()
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise ClipChannelError(f"the clip websocket closed ({message.type.name})")
        try:
            frame = message.json()
        except ValueError as err:
            raise ClipChannelError(f"not JSON: {err}") from err
        if not isinstance(frame, list) or not frame or not isinstance(frame[0], dict):
            raise ClipChannelError("malformed frame")
        body = frame[1] if len(frame) > 1 and isinstance(frame[1], dict) else {}
        return frame[0], body

    def _note(self, body: dict[str, Any]) -> None:
        for clip in body.get("audioClips") or ():
            if isinstance(clip, dict) and "id" in clip:
                self.status[str(clip["id"])] = str(clip.get("status", ""))

    async def command(
        self, command: dict[str, Any], options: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send one command; its answer (status events arriving meanwhile are kept)."""
        ws = self.socket.ws
        if ws is None or ws.closed:
            raise ClipChannelError("the clip websocket is closed")
        async with asyncio.timeout(self.timeout):
            await ws.send_json([command, options])
            while True:
                header, body = await self._receive()
                if header.get("type") == CLIP_STATUS_EVENT:
                    self._note(body)
                    continue
                return header, body

    async def wait_ended(self, clip_id: str, deadline: float, stop: asyncio.Event) -> str | None:
        """Wait for the clip's end as the speaker reports it; None when no end came in time.

        `_Stopped` when ``stop`` is set first.
        """
        while self.status.get(clip_id) not in CLIP_ENDED:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    header, body = await _or_stop(self._receive(), stop)
            except TimeoutError, ClipChannelError, aiohttp.ClientError:
                return None
            if header.get("type") == CLIP_STATUS_EVENT:
                self._note(body)
        return self.status[clip_id]

    async def close(self) -> None:
        """Close the websocket."""
        await self.socket.close()


@dataclass(slots=True)
class _Clip:
    """A clip the speaker accepted."""

    speaker: Speaker
    channel: _ClipChannel
    clip_id: str
    events: bool  # the speaker reports the clip's status
    volume: int  # what it plays at
    muted: bool  # was muted before: muted again afterwards


# -- topology ----------------------------------------------------------------------------------


def _seen_topology(probe: SoCo) -> dict[str, str]:
    """Each speaker's coordinator (uid → uid) as soco sees the household now (blocking).

    Without event subscriptions (nobody feeds soco's cache) the speaker is asked again; with
    them (Home Assistant's sonos integration) the cache is what the events said.
    """
    state = probe.zone_group_state
    if not state.has_subscriptions:
        state.clear_cache()
    state.poll(probe)
    return {
        member.uid: group.coordinator.uid
        for group in state.groups
        if group.coordinator is not None
        for member in group.members
    }


@dataclass(slots=True)
class _Takeover:
    """Everything needed to put speakers back as they were."""

    devices: dict[str, SoCo] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    # Coordinator (uid) of every speaker in a group of a target, before the announcement.
    original: dict[str, str] = field(default_factory=dict)
    zones: dict[str, SoCo] = field(default_factory=dict)
    players: list[SoCo] = field(default_factory=list)
    # Speakers Alicia moved (joined or took out of a group), in that order.
    moved: list[str] = field(default_factory=list)
    leader: str | None = None  # the temporary group's coordinator
    volumes: dict[str, int] = field(default_factory=dict)  # what each target plays at

    @property
    def probe(self) -> SoCo:
        """A speaker to ask about the household's topology."""
        return next(iter(self.devices.values()))


@dataclass(eq=False)
class SonosPlayback:
    """Plays announcements on Sonos speakers, one at a time per speaker, in request order.

    The fields after the session are the bounds of each wait. ``realtime`` scales how long a
    clip is assumed to play (1.0: its duration) when the speaker reports no clip status; tests
    of speakers that play instantly use 0. ``clip_start_allowance``: how long such a speaker is
    assumed to take to start a clip. ``run_blocking`` runs soco's blocking calls.
    """

    session: aiohttp.ClientSession
    _: KW_ONLY
    run_blocking: RunBlocking = _to_thread
    fetch_timeout: float = 10.0
    synthesis_timeout: float = 120.0
    end_margin: float = 3.0
    poll_interval: float = 0.25
    realtime: float = 1.0
    topology_timeout: float = TOPOLOGY_TIMEOUT
    topology_poll: float = 0.05
    clip_timeout: float = 6.0
    clip_start_allowance: float = 0.5
    max_queued: int = MAX_QUEUED
    no_audio_clip: set[str] = field(default_factory=set, init=False)
    _queues: dict[str, deque[Turn]] = field(default_factory=dict, init=False)
    _clip_unreachable: dict[str, float] = field(default_factory=dict, init=False)

    def websocket(self, speaker: Speaker) -> SonosWebsocket:
        """The audioClip websocket of a speaker (overridable for a test double's address)."""
        return SonosWebsocket(
            speaker.ip,
            player_id=speaker.uid,
            session=self.session,
            timeout=max(1, round(self.clip_timeout)),
        )

    # -- the queue ---------------------------------------------------------------------------

    def queued(self, speaker: Speaker) -> int:
        """Announcements waiting or playing on the speaker."""
        return len(self._queues.get(speaker.uid, ()))

    @property
    def idle(self) -> bool:
        """No announcement is waiting or playing anywhere."""
        return not self._queues

    def reserve(
        self, speakers: Sequence[Speaker], *, high: bool = False, interrupt: bool = False
    ) -> Turn:
        """Take a place in the queues of ``speakers`` now; `QueueFullError` when one is full.

        ``high`` goes before every waiting normal announcement; ``interrupt`` (implies
        ``high``) also stops the announcement playing on these speakers.
        """
        unique = list({s.uid: s for s in speakers}.values())
        for speaker in unique:
            if self.queued(speaker) >= self.max_queued:
                raise QueueFullError(
                    f"{speaker.name} already has {self.max_queued} announcements queued",
                    speaker=speaker.name,
                    max=str(self.max_queued),
                )
        high = high or interrupt
        turn = Turn(self, tuple(s.uid for s in unique), high=high)
        for uid in turn.uids:
            queue = self._queues.setdefault(uid, deque())
            if not high:
                queue.append(turn)
                continue
            # After the playing one and the earlier high ones: before the first waiting normal.
            at = next((i for i, t in enumerate(queue) if not t.high and not t.ready), len(queue))
            queue.insert(at, turn)
            if interrupt and queue[0].ready:
                queue[0].stop.set()
        self._wake(turn)
        return turn

    def stop(self, speakers: Sequence[Speaker], *, keep_queued: bool = False) -> int:
        """End the playing announcement of ``speakers`` at once, drop their waiting ones.

        The playing announcement ends on all of its speakers (and is restored); a waiting one
        for several speakers loses only these (it is stopped when none is left). With
        ``keep_queued`` the waiting ones stay. Returns how many announcements were affected.
        """
        affected: set[int] = set()
        for uid in {s.uid for s in speakers}:
            for turn in list(self._queues.get(uid, ())):
                if turn.ready:
                    turn.stop.set()
                    affected.add(id(turn))
                elif not keep_queued:
                    self._queues[uid].remove(turn)
                    turn._drop(uid)  # noqa: SLF001 - Turn and its queues work together
                    affected.add(id(turn))
            if uid in self._queues and not self._queues[uid]:
                del self._queues[uid]
        for queue in list(self._queues.values()):
            self._wake(queue[0])
        return len(affected)

    def _wake(self, turn: Turn) -> None:
        if not turn.released and all(self._queues[uid][0] is turn for uid in turn.uids):
            turn._wake()  # noqa: SLF001 - Turn and its queues work together

    def _release(self, turn: Turn) -> None:
        heads: list[Turn] = []
        for uid in turn.uids:
            queue = self._queues.get(uid)
            if queue is None:
                continue
            if turn in queue:
                queue.remove(turn)
            if queue:
                heads.append(queue[0])
            else:
                del self._queues[uid]
        for head in heads:
            self._wake(head)

    # -- playing -----------------------------------------------------------------------------

    async def async_play(
        self,
        speakers: Sequence[Speaker],
        announcement: Announcement,
        *,
        volume: int | VolumeSetting | None = None,
        mode: str | None = None,
        group: bool = False,
        turn: Turn | None = None,
    ) -> PlaybackResult:
        """Play an announcement on the speakers; returns when it has ended and all is restored.

        Without ``turn`` the announcement queues up now; with one (from `reserve`, its wait
        over) it plays at once. Raises a PlaybackError when no speaker could play it (and none
        was stopped); per-speaker failures and stops are in the result. An int ``volume`` is
        used as it is (no limits, no offsets).
        """
        unique = list({s.uid: s for s in speakers}.values())
        if isinstance(volume, VolumeSetting):
            setting = volume
        else:
            setting = VolumeSetting(level=volume, minimum=0, maximum=100)
        if turn is None:
            async with self.reserve(unique) as mine:
                return await self._play(
                    unique, announcement, _Request(setting, mode, group, mine.stop)
                )
        if not turn.ready or set(turn.uids) | turn.dropped != {s.uid for s in unique}:
            raise RuntimeError("async_play called without its turn")
        playing = [s for s in unique if s.uid in turn.uids]
        result = await self._play(playing, announcement, _Request(setting, mode, group, turn.stop))
        result.outcomes.extend(
            SpeakerOutcome(s, mode or OVERLAY, stopped=True)
            for s in unique
            if s.uid in turn.dropped
        )
        return result

    async def _play(
        self, speakers: list[Speaker], announcement: Announcement, request: _Request
    ) -> PlaybackResult:
        bonds = await self._bonds(speakers)
        # A bonded member is played through its set's main speaker (Home Assistant shows only
        # the main one; a stale entity may still name another member).
        via: dict[str, Speaker] = {}
        for speaker in speakers:
            bond = bonds.get(speaker.uid)
            if bond is not None and bond.main != speaker.uid:
                _LOGGER.info(
                    "%s is part of a bonded set: playing through its main speaker", speaker.name
                )
                main = Speaker(bond.main, bond.main_ip, speaker.name, speaker.model)
            else:
                main = speaker
            via.setdefault(main.uid, main)
        players = list(via.values())
        if request.stop.is_set():
            result = PlaybackResult(
                0.0, [SpeakerOutcome(s, request.mode or OVERLAY, stopped=True) for s in players]
            )
        elif request.group and len(players) > 1:
            result = await self._takeover(players, announcement, request, sync=True)
        elif request.mode == TAKEOVER:
            result = await self._takeover(players, announcement, request, sync=False)
        else:
            result = await self._overlay_or_takeover(players, announcement, request, bonds)
        by_main = {o.speaker.uid: o for o in result.outcomes}
        outcomes = []
        for speaker in speakers:
            bond = bonds.get(speaker.uid)
            main_uid = bond.main if bond is not None and bond.main != speaker.uid else speaker.uid
            outcomes.append(replace(by_main[main_uid], speaker=speaker))
        result.outcomes = outcomes
        if not any(o.status in (PLAYED, STOPPED) for o in result.outcomes):
            raise next(o.error for o in result.outcomes if o.error is not None)
        return result

    async def _bonds(self, speakers: Sequence[Speaker]) -> dict[str, Bond]:
        """The bonded sets of the household, as the first speaker that answers reports them."""
        for speaker in speakers:
            try:
                bonds: dict[str, Bond] = await self.run_blocking(
                    partial(_read_bonds, speaker.ip, self.clip_timeout)
                )
            except (*SOCO_ERRORS, ET.ParseError) as err:
                _LOGGER.debug("%s: no zone group state (%s)", speaker.name, err)
            else:
                return bonds
        return {}

    async def _wait_fetched(
        self,
        announcement: Announcement,
        started: float,
        speakers: Sequence[Speaker],
        stop: asyncio.Event,
    ) -> float:
        """Wait until a speaker fetched the audio; when that was seen (monotonic)."""
        while not announcement.was_fetched():
            if stop.is_set():
                raise _Stopped
            if time.monotonic() - started > self.fetch_timeout:
                names = ", ".join(s.name for s in speakers)
                raise NeverFetchedError(
                    f"{names} never fetched {announcement.url}",
                    speaker=names,
                    url=announcement.url,
                )
            await asyncio.sleep(min(self.poll_interval, 0.05))
        return time.monotonic()

    async def _wait_complete(self, announcement: Announcement, stop: asyncio.Event) -> float:
        """Wait until the audio is complete; its duration."""
        try:
            async with asyncio.timeout(self.synthesis_timeout):
                return await _or_stop(announcement.async_duration(), stop)
        except TimeoutError as err:
            raise PlaybackError(
                "the announcement was not synthesized in time", error="timeout"
            ) from err

    # -- overlay -----------------------------------------------------------------------------

    async def _overlay_or_takeover(
        self,
        speakers: list[Speaker],
        announcement: Announcement,
        request: _Request,
        bonds: Mapping[str, Bond],
    ) -> PlaybackResult:
        result = PlaybackResult()
        clips: list[_Clip] = []
        fallback: list[Speaker] = []
        trying: list[Speaker] = []
        for speaker in speakers:
            bond = bonds.get(speaker.uid)
            if cannot_overlay(speaker.model):
                _LOGGER.debug("%s (%s) plays no audio clips: takeover", speaker.name, speaker.model)
                fallback.append(speaker)
            elif bond is not None and not bond.clips_on_all:
                _LOGGER.debug(
                    "%s is a bonded set: takeover plays on all its speakers", speaker.name
                )
                fallback.append(speaker)
            else:
                trying.append(speaker)
        answers = await asyncio.gather(
            *(self._start_clip(s, announcement, request.volume) for s in trying),
            return_exceptions=True,
        )
        for speaker, answer in zip(trying, answers, strict=True):
            if isinstance(answer, _Clip):
                clips.append(answer)
            elif answer is None:
                fallback.append(speaker)
            else:
                if not isinstance(answer, Exception):
                    for clip in clips:
                        await self._end_clip(clip)
                    raise answer
                err = _classify(answer, speaker, announcement.url)
                result.outcomes.append(SpeakerOutcome(speaker, OVERLAY, err))
        waits: list[Awaitable[PlaybackResult]] = []
        if clips:
            waits.append(self._wait_clips(clips, announcement, request.stop))
        if fallback:
            waits.append(self._takeover(fallback, announcement, request, sync=False))
        for part in await asyncio.gather(*waits):
            result.duration = max(result.duration, part.duration)
            result.outcomes.extend(part.outcomes)
        return result

    def _clip_blocked(self, speaker: Speaker) -> bool:
        if speaker.uid in self.no_audio_clip:
            return True
        until = self._clip_unreachable.get(speaker.uid)
        if until is not None and until <= time.monotonic():
            del self._clip_unreachable[speaker.uid]
            return False
        return until is not None

    async def _start_clip(
        self, speaker: Speaker, announcement: Announcement, volume: VolumeSetting
    ) -> _Clip | None:
        """Start the clip; None when the speaker cannot play clips (use a takeover)."""
        if self._clip_blocked(speaker):
            return None
        socket = self.websocket(speaker)
        try:
            await socket.connect()
        except SonosWebsocketError as err:
            # Port closed or filtered (S1 firmware, firewall), TLS or handshake refused.
            _LOGGER.info(
                "%s: audio clip websocket unavailable (%s); using takeover with restore",
                speaker.name,
                err,
            )
            self._clip_unreachable[speaker.uid] = time.monotonic() + CLIP_RETRY_AFTER
            await socket.close()
            return None
        channel = _ClipChannel(socket, self.clip_timeout)
        options: dict[str, Any] = {
            "name": announcement.title,
            "appId": APP_ID,
            "streamUrl": announcement.url,
        }
        namespace = {"namespace": AUDIO_CLIP_NAMESPACE, "playerId": speaker.uid}
        device = SoCo(speaker.ip)
        muted = False
        try:
            current, muted = await self.run_blocking(
                lambda: (int(device.volume), bool(device.mute))
            )
            level = volume.target(speaker.uid, current)
            if level is not None:
                options["volume"] = level
            if muted:
                await self.run_blocking(partial(setattr, device, "mute", False))
            header, _body = await channel.command({**namespace, "command": "subscribe"}, {})
            events = bool(header.get("success"))
            header, body = await channel.command({**namespace, "command": "loadAudioClip"}, options)
        except (ClipChannelError, SonosWebsocketError, aiohttp.ClientError, TimeoutError) as err:
            await self._close_clip(channel, device, muted)
            raise SpeakerUnreachableError(
                f"{speaker.name} ({speaker.ip}): audio clip failed: {err!r}",
                speaker=speaker.name,
                ip=speaker.ip,
            ) from err
        except BaseException:
            await self._close_clip(channel, device, muted)
            raise
        if header.get("success"):
            used = current if level is None else level
            return _Clip(speaker, channel, str(body.get("id", "")), events, used, muted)
        await self._close_clip(channel, device, muted)
        if header.get("type") == "globalError":
            _LOGGER.info("%s cannot play audio clips; using takeover with restore", speaker.name)
            self.no_audio_clip.add(speaker.uid)
            return None
        raise PlaybackError(
            f"{speaker.name}: unexpected answer {header}",
            speaker=speaker.name,
            error=f"unexpected audio clip answer {header.get('type')}",
        )

    async def _close_clip(self, channel: _ClipChannel, device: SoCo, muted: bool) -> None:
        """Close a clip's websocket; mute the speaker again if it was muted."""
        await channel.close()
        if muted:
            await self.run_blocking(partial(setattr, device, "mute", True))

    async def _end_clip(self, clip: _Clip) -> None:
        await self._close_clip(clip.channel, SoCo(clip.speaker.ip), clip.muted)

    async def _wait_clips(
        self, clips: list[_Clip], announcement: Announcement, stop: asyncio.Event
    ) -> PlaybackResult:
        speakers = [c.speaker for c in clips]
        stopped = False
        try:
            try:
                fetched = await self._wait_fetched(announcement, time.monotonic(), speakers, stop)
                duration = await self._wait_complete(announcement, stop)
            except PlaybackError as err:
                return PlaybackResult(0.0, [SpeakerOutcome(s, OVERLAY, err) for s in speakers])
            except _Stopped:
                stopped, duration = True, 0.0
                errors: list[PlaybackError | None] = [None] * len(clips)
            else:
                errors = list(
                    await asyncio.gather(
                        *(self._clip_end(c, fetched, duration, stop) for c in clips)
                    )
                )
            if stop.is_set():
                stopped = True
                # A speaker that cannot be told ends the clip itself when it is over.
                await asyncio.gather(*(self._cancel_clip(c) for c in clips), return_exceptions=True)
        finally:
            await asyncio.gather(*(self._end_clip(c) for c in clips), return_exceptions=True)
        return PlaybackResult(
            duration,
            [
                SpeakerOutcome(
                    c.speaker, OVERLAY, err, stopped=stopped and err is None, volume=c.volume
                )
                for c, err in zip(clips, errors, strict=True)
            ],
        )

    async def _cancel_clip(self, clip: _Clip) -> None:
        """Dismiss a playing clip (stop): the speaker's music comes back at once."""
        command = {
            "namespace": AUDIO_CLIP_NAMESPACE,
            "playerId": clip.speaker.uid,
            "command": "cancelAudioClip",
        }
        await clip.channel.command(command, {"id": clip.clip_id})

    async def _clip_end(
        self, clip: _Clip, fetched: float, duration: float, stop: asyncio.Event
    ) -> PlaybackError | None:
        """Wait until the speaker finished the clip (it restores its music itself)."""
        try:
            if not clip.events:
                # No status events: it plays from about when it fetched, after starting up.
                end = fetched + duration * self.realtime + self.clip_start_allowance
                await _or_stop(asyncio.sleep(max(0.0, end - time.monotonic())), stop)
                return None
            status = await clip.channel.wait_ended(
                clip.clip_id, time.monotonic() + duration + self.end_margin, stop
            )
        except _Stopped:
            return None
        if status is None:
            _LOGGER.warning("%s reported no end of the announcement in time", clip.speaker.name)
        elif status == "ERROR":
            return PlaybackError(
                f"{clip.speaker.name} could not play the clip",
                speaker=clip.speaker.name,
                error="the speaker could not play the audio clip",
            )
        return None

    # -- takeover ----------------------------------------------------------------------------

    async def _takeover(
        self,
        speakers: list[Speaker],
        announcement: Announcement,
        request: _Request,
        *,
        sync: bool,
    ) -> PlaybackResult:
        state = _Takeover(names={s.uid: s.name for s in speakers})
        result = PlaybackResult()
        failure: PlaybackError | None = None
        stop = request.stop
        try:
            await self.run_blocking(lambda: self._snapshot(state, speakers))
            await self._form_groups(state, sync=sync)
            await self.run_blocking(lambda: self._start(state, announcement, request.volume))
            started = time.monotonic()
            await self._wait_fetched(announcement, started, speakers, stop)
            result.duration = await self._wait_complete(announcement, stop)
            await self._wait_stopped(state, started + result.duration + self.end_margin, stop)
        except _Stopped:
            pass
        except PlaybackError as err:
            failure = err
        except SOCO_ERRORS as err:
            failing = speakers[0]
            for speaker in speakers:
                if speaker.uid not in state.snapshots:
                    failing = speaker
                    break
            failure = _classify(err, failing, announcement.url)
        finally:
            restore_error = await self._restore(state) if state.devices else None
        error = failure or restore_error
        stopped = stop.is_set() and error is None
        result.outcomes = [
            SpeakerOutcome(s, TAKEOVER, error, stopped=stopped, volume=state.volumes.get(s.uid))
            for s in speakers
        ]
        return result

    def _snapshot(self, state: _Takeover, speakers: list[Speaker]) -> None:
        """Snapshot every speaker and the topology of its group (blocking)."""
        for speaker in speakers:
            state.devices[speaker.uid] = SoCo(speaker.ip)
        seen = _seen_topology(state.probe)  # fresh: groups may have changed since the last look
        topology = state.probe.zone_group_state
        state.zones = {zone.uid: zone for zone in topology.all_zones}
        # Satellites and the second speaker of a pair move with their main speaker: not alone.
        visible = {zone.uid for zone in topology.visible_zones} | set(state.devices)
        for uid, device in state.devices.items():
            state.zones.setdefault(uid, device)
            snapshot = Snapshot(device)
            snapshot.snapshot()
            state.snapshots[uid] = snapshot
        groups = {seen.get(uid, uid) for uid in state.devices}
        state.original = {uid: c for uid, c in seen.items() if c in groups and uid in visible}
        for uid in state.devices:
            state.original.setdefault(uid, uid)

    def _leader(self, state: _Takeover) -> SoCo:
        """The temporary group's coordinator: a target leading most of the other targets."""
        targets = list(state.devices)

        def led(uid: str) -> int:
            if state.original[uid] != uid:
                return -1
            return sum(1 for t in targets if state.original[t] == uid)

        return state.devices[max(targets, key=led)]

    async def _form_groups(self, state: _Takeover, *, sync: bool) -> None:
        """Take the targets out of their groups or group them; wait until soco sees it."""
        devices = list(state.devices.values())
        if not sync:
            leaving = [d for d in devices if state.original[d.uid] != d.uid]
            if leaving:
                for device in leaving:
                    state.moved.append(device.uid)
                    await self.run_blocking(device.unjoin)
                await self._confirm(state, {d.uid: d.uid for d in leaving})
            state.players = devices
            return
        leader = self._leader(state)
        state.leader = leader.uid
        if state.original[leader.uid] != leader.uid:
            state.moved.append(leader.uid)
            await self.run_blocking(leader.unjoin)
            await self._confirm(state, {leader.uid: leader.uid})
        grouped = {leader.uid: leader.uid}
        for device in devices:
            if device is leader:
                continue
            grouped[device.uid] = leader.uid
            if state.original[device.uid] == leader.uid:
                continue  # already in the leader's group
            # One at a time, each confirmed before the next (like Home Assistant does).
            state.moved.append(device.uid)
            await self.run_blocking(partial(device.join, leader))
            await self._confirm(state, dict(grouped))
        state.players = [leader]

    async def _confirm(self, state: _Takeover, expected: dict[str, str]) -> None:
        """Wait until soco's topology shows every speaker of ``expected`` with its coordinator."""
        deadline = time.monotonic() + self.topology_timeout
        while True:
            seen = await self.run_blocking(lambda: _seen_topology(state.probe))
            if all(seen.get(uid) == coordinator for uid, coordinator in expected.items()):
                return
            if time.monotonic() >= deadline:
                names = ", ".join(sorted(state.names.get(uid, uid) for uid in expected))
                raise GroupTimeoutError(
                    f"the topology did not confirm the group change of {names} "
                    f"within {self.topology_timeout:g} s",
                    speakers=names,
                    timeout=f"{self.topology_timeout:g}",
                )
            await asyncio.sleep(self.topology_poll)

    def _start(self, state: _Takeover, announcement: Announcement, volume: VolumeSetting) -> None:
        """Announcement volume, unmute, play (blocking)."""
        for uid, device in state.devices.items():
            current = int(state.snapshots[uid].volume or 0)
            level = volume.target(uid, current)
            if level is not None:
                device.volume = level
            state.volumes[uid] = current if level is None else level
            if device.mute:
                device.mute = False
        for player in state.players:
            player.play_uri(announcement.url, title=announcement.title)

    async def _wait_stopped(self, state: _Takeover, deadline: float, stop: asyncio.Event) -> None:
        """Poll the players until none is playing, at most until ``deadline`` (or a stop)."""
        while time.monotonic() < deadline:
            states = await self.run_blocking(
                lambda: [
                    p.get_current_transport_info()["current_transport_state"] for p in state.players
                ]
            )
            if not PLAYING_STATES.intersection(states):
                return
            await _or_stop(asyncio.sleep(self.poll_interval), stop)
        _LOGGER.warning("Announcement still playing after its duration; restoring anyway")

    async def _restore(self, state: _Takeover) -> PlaybackError | None:
        """Groups back (confirmed), then the snapshots; an error when the groups did not return."""
        error: PlaybackError | None = None
        if state.moved:
            try:
                await self._regroup(state)
            except GroupTimeoutError as err:
                _LOGGER.warning("Groups not restored: %s; restoring the speakers anyway", err)
                error = err
            except SOCO_ERRORS as err:
                _LOGGER.warning("Could not restore the groups: %s", err)
                error = PlaybackError(str(err), error=f"groups not restored: {err}")
        await self.run_blocking(lambda: self._restore_snapshots(state))
        return error

    async def _regroup(self, state: _Takeover) -> None:
        """Put every speaker of the targets' groups back with its coordinator; confirm it.

        What Alicia moved is moved back even where the topology does not show the move (it
        may not have confirmed it); anything else out of place is put back too.
        """
        want = state.original
        seen = await self.run_blocking(lambda: _seen_topology(state.probe))
        # Coordinators first: whoever led (or stood alone) leads again.
        leaders = [
            uid
            for uid, c in want.items()
            if c == uid and (uid in state.moved or seen.get(uid) != uid)
        ]
        for uid in leaders:
            await self.run_blocking(state.zones[uid].unjoin)
        if leaders:
            await self._confirm(state, {uid: uid for uid in leaders})
        # Then the members Alicia moved, one at a time, the temporary coordinator last.
        for uid in sorted(
            (u for u in state.moved if want[u] != u), key=lambda u: u == state.leader
        ):
            member, coordinator = state.zones[uid], state.zones[want[uid]]
            await self.run_blocking(partial(member.join, coordinator))
            await self._confirm(state, {uid: want[uid]})
        # Anyone else out of place (a join can move others): look again each time.
        for _ in range(len(want)):
            seen = await self.run_blocking(lambda: _seen_topology(state.probe))
            wrong = [uid for uid, c in want.items() if c != uid and seen.get(uid) != c]
            if not wrong:
                break
            uid = wrong[0]
            member, coordinator = state.zones[uid], state.zones[want[uid]]
            await self.run_blocking(partial(member.join, coordinator))
            await self._confirm(state, {uid: want[uid]})
        await self._confirm(state, want)

    def _restore_snapshots(self, state: _Takeover) -> None:
        """Snapshots back: members first, coordinators last (blocking, never raises)."""
        ordered = sorted(state.snapshots.items(), key=lambda kv: bool(kv[1].is_coordinator))
        for uid, snapshot in ordered:
            device = state.devices[uid]
            try:
                snapshot.restore()
                if snapshot.is_coordinator and snapshot.transport_state == "PAUSED_PLAYBACK":
                    self._repause(device, bool(snapshot.mute))
                if snapshot.is_coordinator and not snapshot.media_uri:
                    self._empty(device)
            except SOCO_ERRORS as err:
                _LOGGER.warning("Could not restore %s: %s", device.ip_address, err)

    @staticmethod
    def _repause(device: SoCo, mute: bool) -> None:
        """Put a restored source back to PAUSED (soco's restore leaves it STOPPED).

        A speaker can only pause what plays: start it muted, pause, then unmute.
        """
        if device.get_current_transport_info()["current_transport_state"] != "STOPPED":
            return
        device.mute = True
        try:
            device.play()
            device.pause()
        finally:
            device.mute = mute

    @staticmethod
    def _empty(device: SoCo) -> None:
        """A speaker that had no source gets none again (soco's restore leaves the clip on).

        An empty ``CurrentURI`` clears the transport; a speaker that refuses it is pointed at its
        own queue instead, which plays nothing until someone starts it.
        """
        try:
            device.avTransport.SetAVTransportURI(
                [("InstanceID", 0), ("CurrentURI", ""), ("CurrentURIMetaData", "")]
            )
        except SoCoUPnPException:
            device.avTransport.SetAVTransportURI(
                [
                    ("InstanceID", 0),
                    ("CurrentURI", f"x-rincon-queue:{device.uid}#0"),
                    ("CurrentURIMetaData", ""),
                ]
            )
        if device.get_current_transport_info()["current_transport_state"] in PLAYING_STATES:
            device.stop()
