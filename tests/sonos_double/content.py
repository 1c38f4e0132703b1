"""ContentDirectory and the queue: Browse of ``Q:0`` and the favorites ``FV:2``, queue edits."""

import re

from .const import DIDL_CLOSE, DIDL_OPEN, STOPPED
from .didl import _int_arg, didl_title
from .playback import SpeakerPlayback
from .records import QueueTrack, UPnPError


class ContentMixin(SpeakerPlayback):
    """The queue actions of AVTransport and ContentDirectory's Browse."""

    def _queue_changed(self) -> None:
        self.queue_update_id += 1

    def _insert_tracks(self, tracks: list[QueueTrack], args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        desired = _int_arg(args, "DesiredFirstTrackNumberEnqueued")
        as_next = args.get("EnqueueAsNext", "0") == "1"
        if as_next and self._is_queue_source() and self.track_number:
            index = self.track_number
        elif desired <= 0 or desired > len(self.queue):
            index = len(self.queue)
        else:
            index = desired - 1
        self.queue[index:index] = tracks
        if self._is_queue_source() and self.track_number == 0 and self.queue:
            self.track_number = 1
        elif self._is_queue_source() and index < self.track_number - 1:
            self.track_number += len(tracks)
        self._queue_changed()
        return {
            "FirstTrackNumberEnqueued": str(index + 1),
            "NumTracksAdded": str(len(tracks)),
            "NewQueueLength": str(len(self.queue)),
            "NewUpdateID": str(self.queue_update_id),
        }

    def _add_uri_to_queue(self, args: dict[str, str]) -> dict[str, str]:
        title = didl_title(args["EnqueuedURIMetaData"]) or ""
        return self._insert_tracks([QueueTrack(args["EnqueuedURI"], title=title)], args)

    def _add_multiple_uris_to_queue(self, args: dict[str, str]) -> dict[str, str]:
        uris = args["EnqueuedURIs"].split()
        return self._insert_tracks([QueueTrack(uri) for uri in uris], args)

    def _remove_track_from_queue(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        match = re.fullmatch(r"Q:0/(\d+)", args["ObjectID"])
        if match is None or not 1 <= int(match[1]) <= len(self.queue):
            raise UPnPError(402, f"no queue item {args['ObjectID']}")
        number = int(match[1])
        del self.queue[number - 1]
        if self._is_queue_source() and number < self.track_number:
            self.track_number -= 1
        self.track_number = min(self.track_number, len(self.queue))
        self._queue_changed()
        return {}

    def _remove_all_tracks(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        self.queue.clear()
        self._queue_changed()
        if self._is_queue_source():
            self._cancel_playback()
            self.track_number = 0
            self._position = 0.0
            self._set_state(STOPPED)
        return {}

    # ---------------------------------------------------------------- ContentDirectory

    def _browse(self, args: dict[str, str]) -> dict[str, str]:
        object_id = args["ObjectID"]
        start = _int_arg(args, "StartingIndex")
        count = _int_arg(args, "RequestedCount")
        update = str(self.queue_update_id)
        if object_id == "Q:0" and args["BrowseFlag"] == "BrowseMetadata":
            container = (
                f'<container id="Q:0" parentID="Q:" restricted="true" '
                f'childCount="{len(self.queue)}"><dc:title>Queue Instance 0</dc:title>'
                "<upnp:class>object.container.playlistContainer</upnp:class></container>"
            )
            result = DIDL_OPEN + container + DIDL_CLOSE
            return {
                "Result": result,
                "NumberReturned": "1",
                "TotalMatches": "1",
                "UpdateID": update,
            }
        if object_id == "Q:0":
            end = len(self.queue) if count <= 0 else min(len(self.queue), start + count)
            items = "".join(self.queue[i].didl_item(i + 1) for i in range(start, end))
            return {
                "Result": DIDL_OPEN + items + DIDL_CLOSE,
                "NumberReturned": str(max(0, end - start)),
                "TotalMatches": str(len(self.queue)),
                "UpdateID": update,
            }
        if object_id == "FV:2":
            favorites = self._household().favorites
            end = len(favorites) if count <= 0 else min(len(favorites), start + count)
            items = "".join(favorites[i].didl_item(i + 1) for i in range(start, end))
            return {
                "Result": DIDL_OPEN + items + DIDL_CLOSE,
                "NumberReturned": str(max(0, end - start)),
                "TotalMatches": str(len(favorites)),
                "UpdateID": str(self._household().favorites_update_id),
            }
        # playlists, the library: an empty household
        return {
            "Result": DIDL_OPEN + DIDL_CLOSE,
            "NumberReturned": "0",
            "TotalMatches": "0",
            "UpdateID": "1",
        }
