"""AVTransport: the source, Play/Pause/Stop/Seek, play modes and the LastChange event."""

import math
from pathlib import PurePosixPath
import re
import time
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from .const import (
    KNOWN_AUDIO_EXTENSIONS,
    PAUSED,
    PLAY_MODES,
    PLAYING,
    STOPPED,
    TRANSITIONING,
    UNSEEKABLE_PREFIXES,
)
from .didl import format_hms, parse_hms
from .playback import SpeakerPlayback
from .records import UPnPError


class AVTransportMixin(SpeakerPlayback):
    """AVTransport actions (the queue ones are in `ContentMixin`)."""

    # ---------------------------------------------------------------- AVTransport actions

    def _set_av_transport_uri(self, args: dict[str, str]) -> dict[str, str]:
        uri = args["CurrentURI"]
        metadata = args["CurrentURIMetaData"]
        if uri.startswith("x-rincon:"):
            target = self._household().by_uid(uri.removeprefix("x-rincon:"))
            if target is None:
                raise UPnPError(402, f"no speaker {uri}")
            self._household().join(
                self._as_speaker, target, publish_after=self.event_delay, via=self._as_speaker
            )
            return {}
        queue = re.fullmatch(r"x-rincon-queue:(\w+)#(\d+)", uri)
        if queue is not None and queue[1] != self.uid:
            raise UPnPError(402, "a speaker can only play its own queue")
        scheme = uri.split(":", 1)[0].lower()
        if PurePosixPath(urlsplit(uri).path).suffix.lower() in self.refused_extensions:
            raise UPnPError(714, f"this player cannot play {uri!r}")
        if scheme in ("http", "https") and self.strict_extension_check and not metadata.strip():
            extension = PurePosixPath(urlsplit(uri).path).suffix.lower()
            if extension not in KNOWN_AUDIO_EXTENSIONS:
                raise UPnPError(714, f"cannot type {uri!r} without metadata or a known extension")
        if not self.is_coordinator:
            self._household().make_standalone(
                self._as_speaker, publish_after=self.event_delay, via=self._as_speaker
            )
        self._new_source(uri, metadata)
        return {}

    def _set_next_uri(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        self.next_uri = args["NextURI"]
        self.next_meta = args["NextURIMetaData"]
        return {}

    def _get_media_info(self, _args: dict[str, str]) -> dict[str, str]:
        if not self.is_coordinator:
            uri = f"x-rincon:{self.coordinator_uid}"
            return {
                "NrTracks": "1",
                "MediaDuration": "NOT_IMPLEMENTED",
                "CurrentURI": uri,
                "PlayMedium": "NETWORK",
                "RecordMedium": "NOT_IMPLEMENTED",
                "WriteStatus": "NOT_IMPLEMENTED",
            }
        tracks = len(self.queue) if self._is_queue_source() else int(bool(self.current_uri))
        return {
            "NrTracks": str(tracks),
            "MediaDuration": "NOT_IMPLEMENTED",
            "CurrentURI": self.current_uri,
            "CurrentURIMetaData": self.current_meta,
            "NextURI": self.next_uri,
            "NextURIMetaData": self.next_meta,
            "PlayMedium": "NETWORK" if self.current_uri else "NONE",
            "RecordMedium": "NOT_IMPLEMENTED",
            "WriteStatus": "NOT_IMPLEMENTED",
        }

    def _get_transport_info(self, _args: dict[str, str]) -> dict[str, str]:
        return {
            "CurrentTransportState": self.coordinator.transport_state,
            "CurrentTransportStatus": "OK",
            "CurrentSpeed": "1",
        }

    def _get_position_info(self, _args: dict[str, str]) -> dict[str, str]:
        counts = {"AbsTime": "NOT_IMPLEMENTED", "RelCount": "2147483647", "AbsCount": "2147483647"}
        if not self.is_coordinator:
            return {
                "Track": "1",
                "TrackDuration": "0:00:00",
                "TrackURI": f"x-rincon:{self.coordinator_uid}",
                "RelTime": "0:00:00",
                **counts,
            }
        track = self._current_track()
        if track is not None:
            return {
                "Track": str(self.track_number),
                "TrackDuration": (
                    track.duration
                    if self.track_duration is None
                    else _duration_text(self.track_duration)
                ),
                "TrackMetaData": track.metadata(self.track_number),
                "TrackURI": track.uri,
                "RelTime": format_hms(self.position()),
                **counts,
            }
        if not self.current_uri or self._is_queue_source():
            return {"Track": "0", "TrackDuration": "0:00:00", "RelTime": "0:00:00", **counts}
        return {
            "Track": "1",
            "TrackDuration": _duration_text(self.track_duration),
            "TrackMetaData": self.current_meta,
            "TrackURI": self.current_uri,
            "RelTime": format_hms(self.position()),
            **counts,
        }

    def _get_transport_settings(self, _args: dict[str, str]) -> dict[str, str]:
        return {"PlayMode": self.coordinator.play_mode, "RecQualityMode": "NOT_IMPLEMENTED"}

    def _set_play_mode(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        mode = args["NewPlayMode"].upper()
        if mode not in PLAY_MODES:
            raise UPnPError(712, f"unknown play mode {mode}")
        self.play_mode = mode
        return {}

    def _get_crossfade(self, _args: dict[str, str]) -> dict[str, str]:
        return {"CrossfadeMode": "1" if self.coordinator.crossfade else "0"}

    def _set_crossfade(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        if args["CrossfadeMode"] not in ("0", "1"):
            raise UPnPError(402, "CrossfadeMode must be 0 or 1")
        self.crossfade = args["CrossfadeMode"] == "1"
        return {}

    def transport_actions(self) -> list[str]:
        """What GetCurrentTransportActions lists for the coordinator's source."""
        speaker = self.coordinator
        if not speaker.current_uri:
            return ["Set"]
        actions = ["Set", "Stop", "Pause", "Play"]
        if speaker._is_queue_source():
            actions += ["X_DLNA_SeekTime", "Next", "X_DLNA_SeekTrackNr", "Previous"]
        elif not speaker.current_uri.startswith(UNSEEKABLE_PREFIXES):
            actions.append("X_DLNA_SeekTime")
        return actions

    def _get_transport_actions(self, _args: dict[str, str]) -> dict[str, str]:
        return {"Actions": ", ".join(self.transport_actions())}

    def _play(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        if not self.current_uri:
            raise UPnPError(701, "nothing to play")
        if self._is_queue_source() and not self.queue:
            raise UPnPError(701, "the queue is empty")
        if self._is_queue_source() and self.track_number == 0:
            self.track_number = 1
        if self.transport_state in (PLAYING, TRANSITIONING):
            return {}
        url = self._fetch_url()
        if url is None:
            self._anchor_time = time.monotonic()
            self._set_state(PLAYING)
        elif self.transport_state == PAUSED and self._loaded is not None:
            self._resume()
        else:
            self._start_fetch(url)
        return {}

    def _pause(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        if self.transport_state not in (PLAYING, TRANSITIONING):
            raise UPnPError(701, f"cannot pause when {self.transport_state}")
        self._position = self.position()
        self._cancel_tail()
        self._set_state(PAUSED)
        return {}

    def _stop(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        fetched = self._fetch_url() is not None
        self._cancel_playback()
        if fetched:
            self._position = 0.0
        self._set_state(STOPPED)
        return {}

    def _seek(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        unit, target = args["Unit"], args["Target"]
        if unit == "TRACK_NR":
            if not self._is_queue_source():
                raise UPnPError(701, "TRACK_NR seek needs the queue")
            try:
                number = int(target)
            except ValueError:
                raise UPnPError(711, f"bad track {target!r}") from None
            self._go_to_track(number)
        elif unit in ("REL_TIME", "TIME_DELTA"):
            if not self.current_uri or self._playing_uri().startswith(UNSEEKABLE_PREFIXES):
                raise UPnPError(701, "this source cannot seek")
            try:
                seconds = parse_hms(target)
            except ValueError:
                raise UPnPError(711, f"bad time {target!r}") from None
            track = self._current_track()
            limit = self.track_duration
            if limit is None and track is not None:
                limit = parse_hms(track.duration)
            if limit is not None and seconds > limit:
                raise UPnPError(711, f"{target} is past the end")
            self._position = seconds
            if self.transport_state == PLAYING and self._loaded is not None:
                self._resume()
        else:
            raise UPnPError(710, f"seek unit {unit}")
        return {}

    def _go_to_track(self, number: int) -> None:
        if not 1 <= number <= len(self.queue):
            raise UPnPError(711, f"no track {number} in a queue of {len(self.queue)}")
        was = self.transport_state
        self._cancel_playback()
        self.track_number = number
        self.track_duration = None
        self._position = 0.0
        if was in (PLAYING, TRANSITIONING):
            url = self._fetch_url()
            if url is not None:
                self._start_fetch(url)

    def _step_track(self, step: int) -> dict[str, str]:
        self._require_coordinator()
        if not self._is_queue_source():
            raise UPnPError(701, "Next/Previous need the queue")
        self._go_to_track(self.track_number + step)
        return {}

    def _avt_last_change(self) -> str:
        media = self._get_media_info({})
        position = self._get_position_info({})
        enqueued = enqueued_meta = ""
        if self.is_coordinator and self.current_uri and not self._is_queue_source():
            enqueued, enqueued_meta = self.current_uri, self.current_meta
        values = {
            "TransportState": self.coordinator.transport_state,
            "CurrentPlayMode": self.coordinator.play_mode,
            "CurrentCrossfadeMode": "1" if self.coordinator.crossfade else "0",
            "NumberOfTracks": media["NrTracks"],
            "CurrentTrack": position["Track"],
            "CurrentSection": "0",
            "CurrentTrackURI": position.get("TrackURI", ""),
            "CurrentTrackDuration": position["TrackDuration"],
            "CurrentTrackMetaData": position.get("TrackMetaData", ""),
            "r:NextTrackURI": "",
            "r:NextTrackMetaData": "",
            # What was put on the transport: the station for radio, nothing for a plain queue.
            "r:EnqueuedTransportURI": enqueued,
            "r:EnqueuedTransportURIMetaData": enqueued_meta,
            "PlaybackStorageMedium": media["PlayMedium"],
            "AVTransportURI": media.get("CurrentURI", ""),
            "AVTransportURIMetaData": media.get("CurrentURIMetaData", ""),
            "NextAVTransportURI": self.next_uri,
            "NextAVTransportURIMetaData": self.next_meta,
            "CurrentTransportActions": ", ".join(self.transport_actions()),
            "r:CurrentValidPlayModes": "SHUFFLE,REPEAT,REPEATONE,CROSSFADE",
            "r:DirectControlClientID": "",
            "r:DirectControlIsSuspended": "0",
            "r:DirectControlAccountID": "",
            "TransportStatus": "OK",
            "r:SleepTimerGeneration": str(self.coordinator.sleep_timer_generation),
            "r:AlarmRunning": "0",
            "r:SnoozeRunning": "0",
            "r:RestartPending": "0",
            "TransportPlaySpeed": "1",
            "CurrentMediaDuration": "NOT_IMPLEMENTED",
            "RecordStorageMedium": "NOT_IMPLEMENTED",
            "PossiblePlaybackStorageMedia": "NONE, NETWORK",
            "PossibleRecordStorageMedia": "NOT_IMPLEMENTED",
            "RecordMediumWriteStatus": "NOT_IMPLEMENTED",
            "CurrentRecordQualityMode": "NOT_IMPLEMENTED",
            "PossibleRecordQualityModes": "NOT_IMPLEMENTED",
        }
        inner = "".join(f"<{k} val={quoteattr(v)}/>" for k, v in values.items())
        return (
            '<Event xmlns="urn:schemas-upnp-org:metadata-1-0/AVT/" '
            'xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/">'
            f'<InstanceID val="0">{inner}</InstanceID></Event>'
        )


def _duration_text(seconds: float | None) -> str:
    """TrackDuration: whole seconds, rounded up so a short clip is not 0:00:00 (radio)."""
    return format_hms(math.ceil(seconds)) if seconds else "0:00:00"
