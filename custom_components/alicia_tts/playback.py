"""Announcements on Sonos speakers. Pure: imports nothing from Home Assistant.

Two ways to speak:

- **overlay**: the speaker's audioClip API over its local websocket (``sonos-websocket``); the
  music keeps playing, ducked, and the speaker restores itself. A speaker that answers "not
  supported" (``globalError``) gets a takeover instead — never a playback without restore.
- **takeover**: ``soco.snapshot.Snapshot`` of every target (volume, mute, bass, treble, source,
  queue position, play state) and of its group membership → optionally one temporary group of
  all targets so they speak in sync → announcement volume → ``play_uri`` → wait until the
  speakers stopped (bounded by the audio's duration plus a margin) → groups back → snapshots
  restored, members before coordinators. Restore always runs, after errors and timeouts too.

Announcements to one speaker never overlap: each speaker has a FIFO lock, and a request takes
the locks of all its speakers (in a fixed order, so two group requests cannot deadlock).

soco is synchronous: every soco call runs through ``run_blocking`` (Home Assistant passes its
executor).
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
import logging
import time
from typing import Any, Final, Protocol

import aiohttp
import requests
from soco import SoCo
from soco.exceptions import SoCoException, SoCoUPnPException
from soco.snapshot import Snapshot
from sonos_websocket import SonosWebsocket
from sonos_websocket.exception import SonosWebsocketError

from .typed_errors import TranslatedError

_LOGGER = logging.getLogger(__name__)

OVERLAY: Final = "overlay"
TAKEOVER: Final = "takeover"
MODES: Final = (OVERLAY, TAKEOVER)
# UPnP errors a speaker answers when it will not play a URI.
REFUSED_UPNP_CODES: Final = {"701", "714", "716"}
PLAYING_STATES: Final = {"PLAYING", "TRANSITIONING"}
APP_ID: Final = "com.github.alicia_tts"


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


class InvalidPlaybackOptionError(PlaybackError):
    """A playback option has a wrong type or value."""

    translation_key = "invalid_playback_option"


PLAYBACK_OPTIONS: Final = ("volume", "mode", "group")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackOptions:
    """Validated playback options (shared/docs/options.md)."""

    volume: int | None = None
    mode: str | None = None
    group: bool = False


def _invalid(key: str, value: Any, allowed: str) -> InvalidPlaybackOptionError:
    return InvalidPlaybackOptionError(
        f"{key}={value!r} is not one of {allowed}", option=key, value=str(value), allowed=allowed
    )


def parse_playback_options(options: dict[str, Any]) -> PlaybackOptions:
    """Validate ``volume`` (0-100), ``mode`` (overlay/takeover) and ``group`` (bool)."""
    volume = options.get("volume")
    if volume is not None:
        if isinstance(volume, bool):
            raise _invalid("volume", volume, "0-100")
        try:
            number = float(volume)
        except TypeError, ValueError:
            raise _invalid("volume", volume, "0-100") from None
        if not 0 <= number <= 100 or number != int(number):
            raise _invalid("volume", volume, "0-100")
        volume = int(number)
    mode = options.get("mode")
    if mode is not None and mode not in MODES:
        raise _invalid("mode", mode, " | ".join(MODES))
    group = options.get("group", False)
    if isinstance(group, str) and group.lower() in ("true", "false"):
        group = group.lower() == "true"
    if not isinstance(group, bool):
        raise _invalid("group", group, "true | false")
    return PlaybackOptions(volume=volume, mode=mode, group=group)


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


@dataclass(slots=True)
class SpeakerOutcome:
    """What happened on one speaker."""

    speaker: Speaker
    mode: str
    error: PlaybackError | None = None


@dataclass(slots=True)
class PlaybackResult:
    """What an announcement did."""

    duration: float = 0.0
    outcomes: list[SpeakerOutcome] = field(default_factory=list)

    @property
    def played(self) -> list[Speaker]:
        """Speakers that played the announcement."""
        return [o.speaker for o in self.outcomes if o.error is None]


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


@dataclass(slots=True)
class _Takeover:
    """Everything needed to put speakers back as they were."""

    devices: dict[str, SoCo] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    # Each speaker's coordinator before the announcement (itself when it led or stood alone).
    coordinators: dict[str, SoCo] = field(default_factory=dict)
    players: list[SoCo] = field(default_factory=list)


class SonosPlayback:
    """Plays announcements on Sonos speakers, one at a time per speaker."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        run_blocking: RunBlocking = _to_thread,
        fetch_timeout: float = 10.0,
        synthesis_timeout: float = 120.0,
        end_margin: float = 3.0,
        poll_interval: float = 0.25,
        realtime: float = 1.0,
    ) -> None:
        """Set the bounds of each wait.

        ``realtime`` scales how long a clip is assumed to play (1.0: its duration); tests of
        speakers that play instantly use 0.
        """
        self._session = session
        self._run = run_blocking
        self.fetch_timeout = fetch_timeout
        self.synthesis_timeout = synthesis_timeout
        self.end_margin = end_margin
        self.poll_interval = poll_interval
        self.realtime = realtime
        self._locks: dict[str, asyncio.Lock] = {}
        self.no_audio_clip: set[str] = set()

    def websocket(self, speaker: Speaker) -> SonosWebsocket:
        """The audioClip websocket of a speaker (overridable for a test double's address)."""
        return SonosWebsocket(speaker.ip, player_id=speaker.uid, session=self._session)

    def is_busy(self, speaker: Speaker) -> bool:
        """Whether an announcement is playing or queued on the speaker."""
        lock = self._locks.get(speaker.uid)
        return lock is not None and lock.locked()

    async def async_play(
        self,
        speakers: Sequence[Speaker],
        announcement: Announcement,
        *,
        volume: int | None = None,
        mode: str | None = None,
        group: bool = False,
    ) -> PlaybackResult:
        """Play an announcement on the speakers; returns when it has ended and all is restored.

        Raises a PlaybackError when no speaker could play it; per-speaker failures of a
        partial success are in the result.
        """
        unique = list({s.uid: s for s in speakers}.values())
        async with AsyncExitStack() as stack:
            for speaker in sorted(unique, key=lambda s: s.uid):
                lock = self._locks.setdefault(speaker.uid, asyncio.Lock())
                await stack.enter_async_context(lock)
            if group and len(unique) > 1:
                result = await self._takeover(unique, announcement, volume, sync=True)
            elif mode == TAKEOVER:
                result = await self._takeover(unique, announcement, volume, sync=False)
            else:
                result = await self._overlay_or_takeover(unique, announcement, volume)
        if not result.played:
            raise next(o.error for o in result.outcomes if o.error is not None)
        return result

    # -- overlay -----------------------------------------------------------------------------

    async def _overlay_or_takeover(
        self, speakers: list[Speaker], announcement: Announcement, volume: int | None
    ) -> PlaybackResult:
        result = PlaybackResult()
        clip: list[Speaker] = []
        fallback: list[Speaker] = []
        answers = await asyncio.gather(
            *(self._load_clip(s, announcement, volume) for s in speakers),
            return_exceptions=True,
        )
        for speaker, answer in zip(speakers, answers, strict=True):
            if answer is True:
                clip.append(speaker)
            elif answer is False:
                fallback.append(speaker)
            else:
                assert isinstance(answer, BaseException)
                if not isinstance(answer, Exception):
                    raise answer
                err = _classify(answer, speaker, announcement.url)
                result.outcomes.append(SpeakerOutcome(speaker, OVERLAY, err))
        waits: list[Awaitable[PlaybackResult]] = []
        if clip:
            waits.append(self._wait_clips(clip, announcement))
        if fallback:
            waits.append(self._takeover(fallback, announcement, volume, sync=False))
        for partial in await asyncio.gather(*waits):
            result.duration = max(result.duration, partial.duration)
            result.outcomes.extend(partial.outcomes)
        return result

    async def _load_clip(
        self, speaker: Speaker, announcement: Announcement, volume: int | None
    ) -> bool:
        """Start the clip: True when playing, False when the speaker cannot play clips."""
        if speaker.uid in self.no_audio_clip:
            return False
        ws = self.websocket(speaker)
        options: dict[str, Any] = {
            "name": announcement.title,
            "appId": APP_ID,
            "streamUrl": announcement.url,
        }
        if volume is not None:
            options["volume"] = volume
        command = {"namespace": "audioClip:1", "command": "loadAudioClip", "playerId": speaker.uid}
        try:
            header, _body = await ws.send_command(command, options)
        except SonosWebsocketError as err:
            raise SpeakerUnreachableError(
                f"{speaker.name} ({speaker.ip}): audio clip failed: {err}",
                speaker=speaker.name,
                ip=speaker.ip,
            ) from err
        finally:
            await ws.close()
        if header.get("success"):
            return True
        if header.get("type") == "globalError":
            _LOGGER.info("%s cannot play audio clips; using takeover with restore", speaker.name)
            self.no_audio_clip.add(speaker.uid)
            return False
        raise PlaybackError(f"{speaker.name}: unexpected answer {header}", speaker=speaker.name)

    async def _wait_clips(
        self, speakers: list[Speaker], announcement: Announcement
    ) -> PlaybackResult:
        started = time.monotonic()
        try:
            duration = await self._wait_fetched_and_complete(announcement, started, speakers)
        except PlaybackError as err:
            return PlaybackResult(0.0, [SpeakerOutcome(s, OVERLAY, err) for s in speakers])
        # The speaker restores itself after the clip; wait as long as it plays.
        remaining = duration * self.realtime - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        return PlaybackResult(duration, [SpeakerOutcome(s, OVERLAY) for s in speakers])

    # -- takeover ----------------------------------------------------------------------------

    async def _takeover(
        self,
        speakers: list[Speaker],
        announcement: Announcement,
        volume: int | None,
        *,
        sync: bool,
    ) -> PlaybackResult:
        state = _Takeover()
        result = PlaybackResult()
        try:
            await self._run(lambda: self._prepare(state, speakers, sync))
            await self._run(lambda: self._start(state, announcement, volume))
            started = time.monotonic()
            result.duration = await self._wait_fetched_and_complete(announcement, started, speakers)
            await self._wait_stopped(state, started + result.duration + self.end_margin)
            result.outcomes = [SpeakerOutcome(s, TAKEOVER) for s in speakers]
        except PlaybackError as err:
            result.outcomes = [SpeakerOutcome(s, TAKEOVER, err) for s in speakers]
        except (SoCoException, requests.exceptions.RequestException, OSError) as err:
            failing = speakers[0]
            for speaker in speakers:
                if speaker.uid not in state.devices:
                    failing = speaker
                    break
            classified = _classify(err, failing, announcement.url)
            result.outcomes = [SpeakerOutcome(s, TAKEOVER, classified) for s in speakers]
        finally:
            await self._run(lambda: self._restore(state))
        return result

    def _prepare(self, state: _Takeover, speakers: list[Speaker], sync: bool) -> None:
        """Snapshot every speaker and its group; form the players (blocking)."""
        for speaker in speakers:
            device = SoCo(speaker.ip)
            snapshot = Snapshot(device)
            snapshot.snapshot()
            coordinator = device.group.coordinator if device.group else device
            state.devices[speaker.uid] = device
            state.snapshots[speaker.uid] = snapshot
            state.coordinators[speaker.uid] = coordinator
        devices = list(state.devices.values())
        if sync:
            leader = devices[0]
            if not leader.is_coordinator:
                leader.unjoin()
            for device in devices[1:]:
                device.join(leader)
            state.players = [leader]
        else:
            for device in devices:
                if not device.is_coordinator:
                    device.unjoin()
            state.players = devices

    def _start(self, state: _Takeover, announcement: Announcement, volume: int | None) -> None:
        """Announcement volume, unmute, play (blocking)."""
        for device in state.devices.values():
            if volume is not None:
                device.volume = volume
            if device.mute:
                device.mute = False
        for player in state.players:
            player.play_uri(announcement.url, title=announcement.title)

    async def _wait_fetched_and_complete(
        self, announcement: Announcement, started: float, speakers: list[Speaker]
    ) -> float:
        """Wait until a speaker fetched the audio and it is complete; return its duration."""
        while not announcement.was_fetched():
            if time.monotonic() - started > self.fetch_timeout:
                names = ", ".join(s.name for s in speakers)
                raise NeverFetchedError(
                    f"{names} never fetched {announcement.url}",
                    speaker=names,
                    url=announcement.url,
                )
            await asyncio.sleep(min(self.poll_interval, 0.05))
        try:
            async with asyncio.timeout(self.synthesis_timeout):
                return await announcement.async_duration()
        except TimeoutError as err:
            raise PlaybackError(
                "the announcement was not synthesized in time", error="timeout"
            ) from err

    async def _wait_stopped(self, state: _Takeover, deadline: float) -> None:
        """Poll the players until none is playing, at most until ``deadline``."""
        while time.monotonic() < deadline:
            states = await self._run(
                lambda: [
                    p.get_current_transport_info()["current_transport_state"] for p in state.players
                ]
            )
            if not PLAYING_STATES.intersection(states):
                return
            await asyncio.sleep(self.poll_interval)
        _LOGGER.warning("Announcement still playing after its duration; restoring anyway")

    def _restore(self, state: _Takeover) -> None:
        """Groups back, then snapshots: members first, coordinators last (blocking, safe)."""
        for uid, device in state.devices.items():
            original = state.coordinators[uid]
            try:
                if original.uid == uid:
                    if not device.is_coordinator:
                        device.unjoin()
                elif device.group is None or device.group.coordinator.uid != original.uid:
                    device.join(original)
            except (SoCoException, requests.exceptions.RequestException, OSError) as err:
                _LOGGER.warning("Could not restore the group of %s: %s", device.ip_address, err)
        ordered = sorted(
            state.snapshots.items(), key=lambda kv: state.coordinators[kv[0]].uid == kv[0]
        )
        for uid, snapshot in ordered:
            try:
                snapshot.restore()
                if snapshot.is_coordinator and snapshot.transport_state == "PAUSED_PLAYBACK":
                    self._repause(state.devices[uid], bool(snapshot.mute))
            except (SoCoException, requests.exceptions.RequestException, OSError) as err:
                _LOGGER.warning("Could not restore %s: %s", state.devices[uid].ip_address, err)

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
