"""The transport engine: what plays, its state and position, fetching, presets for tests.

Like a speaker, the double really fetches what it is told to play (AVTransport ``Play`` of an
http URI, or websocket ``loadAudioClip``), decodes it from its magic bytes (WAV, MP3, FLAC, Ogg
Vorbis) and keeps a `PlaybackRecord` per fetch in ``speaker.played``.

Presets (no fetch): ``preset_radio``, ``preset_line_in``, ``preset_tv``, ``preset_queue``,
``preset_source``; plain attributes (``volume``, ``mute``, ``bass``, ``treble``, ``loudness``,
``play_mode``, ``crossfade``, ``buttons_locked``, ``eq``, ``battery_level``) can be set directly.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import replace
import time
from typing import Literal

import aiohttp

from .audio import analyse_audio
from .const import MAX_FETCH_BYTES, PAUSED, PLAY_MODES, PLAYING, STOPPED, TRANSITIONING
from .didl import parse_hms, radio_metadata, simple_metadata
from .records import PlaybackRecord, QueueTrack, UPnPError
from .state import SpeakerState


class SpeakerPlayback(SpeakerState):
    """The transport of a speaker (its group's, on the coordinator) and what it fetches."""

    # ---------------------------------------------------------------- presets for tests

    def preset_source(
        self,
        uri: str,
        metadata: str = "",
        state: str = PLAYING,
        *,
        position: str = "0:00:00",
        track_duration: str | None = None,
    ) -> None:
        """Make the speaker look as if it had been playing ``uri`` (no fetch happens)."""
        if state not in (STOPPED, PLAYING, PAUSED):
            raise ValueError(f"preset state must be STOPPED, PLAYING or PAUSED_PLAYBACK: {state}")
        self._cancel_playback()
        self.current_uri = uri
        self.current_meta = metadata
        self.track_number = 1 if uri else 0
        self.track_duration = parse_hms(track_duration) if track_duration else None
        self._position = parse_hms(position)
        self._set_state(state)

    def preset_radio(
        self,
        uri: str = "x-sonosapi-stream:s17077?sid=254&flags=8224&sn=0",
        title: str = "Loopback FM",
        state: str = PLAYING,
    ) -> None:
        """A radio station (``x-sonosapi-stream:`` or ``x-rincon-mp3radio:``) with metadata."""
        self.preset_source(uri, radio_metadata(title), state)

    def preset_line_in(self, state: str = PLAYING, source_uid: str | None = None) -> None:
        """Line-in (``x-rincon-stream:{uid}``)."""
        self.preset_source(
            f"x-rincon-stream:{source_uid or self.uid}",
            simple_metadata(self.name, "object.item.audioItem.linein"),
            state,
        )

    def preset_tv(self, state: str = PLAYING) -> None:
        """Home-theatre TV input (``x-sonos-htastream:{uid}:spdif``)."""
        self.preset_source(
            f"x-sonos-htastream:{self.uid}:spdif",
            simple_metadata("TV", "object.item.audioItem.linein.homeTheater"),
            state,
        )

    def preset_queue(
        self,
        tracks: int | Sequence[QueueTrack] = 5,
        *,
        track: int = 1,
        position: str = "0:00:00",
        state: str = PLAYING,
        play_mode: str = "NORMAL",
        crossfade: bool = False,
    ) -> None:
        """The queue (``x-rincon-queue:{uid}#0``) at track ``track`` (1-based), ``position``."""
        if isinstance(tracks, int):
            tracks = [
                QueueTrack(
                    f"x-file-cifs://nas/music/track{n:02d}.mp3",
                    title=f"Track {n}",
                    artist="The Doubles",
                    album="Loopback",
                    duration="0:03:30",
                )
                for n in range(1, tracks + 1)
            ]
        if not 1 <= track <= len(tracks):
            raise ValueError(f"track {track} is not in a queue of {len(tracks)}")
        if play_mode not in PLAY_MODES:
            raise ValueError(f"unknown play mode {play_mode}")
        self.queue = list(tracks)
        self.queue_update_id += 1
        self.preset_source(f"x-rincon-queue:{self.uid}#0", "", state, position=position)
        self.track_number = track
        self.play_mode = play_mode
        self.crossfade = crossfade

    # ---------------------------------------------------------------- transport internals

    def _set_state(self, state: str) -> None:
        if state != self.transport_state or not self.transport_history:
            self.transport_history.append(state)
        self.transport_state = state
        self._signal()
        self._household().changed()

    def _is_queue_source(self) -> bool:
        return self.current_uri == f"x-rincon-queue:{self.uid}#0"

    def _current_track(self) -> QueueTrack | None:
        if self._is_queue_source() and 1 <= self.track_number <= len(self.queue):
            return self.queue[self.track_number - 1]
        return None

    def _playing_uri(self) -> str:
        """The URI of what plays now: the queue's current track, or the source itself."""
        track = self._current_track()
        if self._is_queue_source():
            return track.uri if track else ""
        return self.current_uri

    def _fetch_url(self) -> str | None:
        """The http(s) URL Play fetches, or None for sources that are not fetched."""
        uri = self._playing_uri()
        if uri.startswith("x-rincon-mp3radio:"):
            uri = "http:" + uri.removeprefix("x-rincon-mp3radio:")
        scheme = uri.split(":", 1)[0].lower()
        return uri if scheme in ("http", "https") else None

    def position(self) -> float:
        """Seconds into the current track (advancing while a fetched file plays)."""
        if (
            self.transport_state == PLAYING
            and self._loaded is not None
            and self.track_duration is not None
        ):
            if self.playback_speed <= 0:
                return self.track_duration
            elapsed = (time.monotonic() - self._anchor_time) / self.playback_speed
            return min(self.track_duration, self._position + elapsed)
        return self._position

    def _cancel_tail(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            self._tail = None

    def _cancel_playback(self) -> None:
        """Forget the loaded file; a fetch in flight still gets recorded but changes nothing."""
        self._generation += 1
        self._cancel_tail()
        self._loaded = None

    def _start_fetch(self, url: str) -> None:
        self._cancel_playback()
        self.track_duration = None
        self._position = 0.0
        self._set_state(TRANSITIONING)
        self._spawn(self._play_fetched(url, self._generation), f"fetch {url}")

    async def _play_fetched(self, url: str, generation: int) -> None:
        record = await self.fetch_and_decode(url, "avtransport", volume=self.volume)
        if generation != self._generation:
            return
        if record.error is not None:
            self._loaded = None
            self._set_state(STOPPED)
            return
        if self.start_delay > 0:
            await asyncio.sleep(self.start_delay)  # buffering: still TRANSITIONING
            if generation != self._generation:
                return
        self._loaded = record
        self.track_duration = record.duration_s
        self._position = 0.0
        if self.transport_state == TRANSITIONING:
            self._resume()
        else:  # paused while fetching: stay paused with the file loaded
            self._signal()

    def _resume(self) -> None:
        self._anchor_time = time.monotonic()
        self._set_state(PLAYING)
        duration = self.track_duration or 0.0
        remaining = max(0.0, duration - self._position) * max(0.0, self.playback_speed)
        self._cancel_tail()
        self._tail = self._spawn(self._play_out(remaining, self._generation), "play out")

    async def _play_out(self, seconds: float, generation: int) -> None:
        await asyncio.sleep(seconds)
        if generation == self._generation and self.transport_state == PLAYING:
            self._tail = None
            self._loaded = None
            self._position = 0.0
            self._set_state(STOPPED)

    def _require_coordinator(self) -> None:
        if not self.is_coordinator:
            raise UPnPError(701, "not a group coordinator")

    def _new_source(self, uri: str, metadata: str) -> None:
        self._cancel_playback()
        self.current_uri = uri
        self.current_meta = metadata
        self.next_uri = self.next_meta = ""
        self.track_duration = None
        self._position = 0.0
        if self._is_queue_source():
            self.track_number = 1 if self.queue else 0
        else:
            self.track_number = 1 if uri else 0
        if self.transport_state in (PLAYING, TRANSITIONING):
            self._set_state(STOPPED)
        else:  # a paused transport stays paused with the new media, a stopped one stopped
            self._signal()

    # ---------------------------------------------------------------- fetching

    async def fetch_and_decode(
        self,
        url: str,
        via: Literal["avtransport", "audioclip"],
        *,
        volume: int | None = None,
        clip_id: str | None = None,
    ) -> PlaybackRecord:
        """GET ``url`` like a speaker, decode it, append and return the record."""
        record = PlaybackRecord(
            url=url, via=via, speaker=self.name, volume=volume, clip_id=clip_id, muted=self.mute
        )
        started = time.monotonic()
        try:
            await self._fetch(url, record, started)
        except TimeoutError:
            record.error = f"timed out after {self.fetch_timeout:g} s"
        except aiohttp.ClientError as err:
            record.error = f"{type(err).__name__}: {err}"
        except ValueError as err:  # e.g. an invalid URL
            record.error = f"{type(err).__name__}: {err}"
        record.total_s = time.monotonic() - started
        if record.error is None:
            report = analyse_audio(record.body, audio_clip=via == "audioclip")
            for name in (
                "format",
                "sample_rate",
                "channels",
                "bits_per_sample",
                "duration_s",
                "rms",
                "peak",
                "leading_silence_ms",
                "trailing_silence_ms",
                "error",
            ):
                setattr(record, name, getattr(report, name))
        self.played.append(record)
        self._signal()
        for member in self.bonded_members:
            # The set plays what its main speaker fetched; an audio clip reaches the Sub only.
            if via == "avtransport" or member.channel == "SW":
                member.played.append(
                    replace(
                        record,
                        speaker=member.name,
                        volume=record.volume if via == "audioclip" else member.volume,
                        muted=member.mute,
                        bonded_from=self.name,
                        channel=member.channel,
                    )
                )
                member._signal()
        if self.on_played is not None:
            self.on_played(record)
        return record

    async def _fetch(self, url: str, record: PlaybackRecord, started: float) -> None:
        if self._session is None:
            raise aiohttp.ClientError("speaker is not running")
        async with (
            asyncio.timeout(self.fetch_timeout),
            self._session.get(url, headers={"Accept": "*/*"}) as response,
        ):
            record.headers_s = time.monotonic() - started
            record.status = response.status
            record.headers = dict(response.headers)
            record.content_type = response.headers.get("Content-Type")
            length = response.headers.get("Content-Length")
            record.content_length = int(length) if length and length.isdigit() else None
            encoding = response.headers.get("Transfer-Encoding", "")
            record.chunked = "chunked" in encoding.lower()
            if response.status not in (200, 206):
                record.error = f"HTTP {response.status} {response.reason or ''}".strip()
                return
            chunks = []
            async for chunk in response.content.iter_any():
                if record.first_byte_s is None:
                    record.first_byte_s = time.monotonic() - started
                chunks.append(chunk)
                record.bytes_received += len(chunk)
                if record.bytes_received > MAX_FETCH_BYTES:
                    record.error = f"more than {MAX_FETCH_BYTES} bytes; gave up"
                    break
            record.body = b"".join(chunks)
