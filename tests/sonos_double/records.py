"""What the double records and keeps: fetches, queue tracks, favorites, clips, subscribers."""

import asyncio
from collections import deque
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from .const import DIDL_CLOSE, DIDL_OPEN, SILENCE_THRESHOLD, UPNP_ERROR_TEXT


@dataclass
class PlaybackRecord:
    """One fetch of a URL by a speaker, and what it decoded to."""

    url: str
    via: Literal["avtransport", "audioclip"]
    speaker: str = ""
    volume: int | None = None
    clip_id: str | None = None
    status: int | None = None
    content_type: str | None = None
    content_length: int | None = None
    chunked: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    bytes_received: int = 0
    format: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bits_per_sample: int | None = None
    duration_s: float | None = None
    rms: float | None = None
    peak: float | None = None
    leading_silence_ms: float | None = None
    trailing_silence_ms: float | None = None
    headers_s: float | None = None
    first_byte_s: float | None = None
    total_s: float | None = None
    error: str | None = None
    #: The speaker was muted when it fetched (it would have played silently).
    muted: bool = False
    #: For a bonded set's member: the main speaker that fetched, and this member's channel.
    bonded_from: str | None = None
    channel: str | None = None
    body: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        """Fetched and decoded without a problem."""
        return self.error is None

    @property
    def silent(self) -> bool:
        """No sample above the silence threshold."""
        return self.peak is None or self.peak <= SILENCE_THRESHOLD

    def summary(self) -> dict[str, Any]:
        """Everything but the body, as JSON-able data."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("body", "headers")}
        data["silent"] = self.silent
        return data


@dataclass
class QueueTrack:
    """One entry of a speaker's queue (Q:0)."""

    uri: str
    title: str = ""
    artist: str = ""
    album: str = ""
    duration: str = "0:03:00"

    def didl_item(self, number: int) -> str:
        """The DIDL <item> a speaker returns for Q:0/number."""
        scheme = self.uri.split(":", 1)[0]
        protocol = "http-get:*:audio/mpeg:*" if scheme in ("http", "https") else f"{scheme}:*:*:*"
        title = self.title or unquote(PurePosixPath(urlsplit(self.uri).path).name) or self.uri
        return (
            f'<item id="Q:0/{number}" parentID="Q:0" restricted="true">'
            f"<res protocolInfo={quoteattr(protocol)} duration={quoteattr(self.duration)}>"
            f"{escape(self.uri)}</res><dc:title>{escape(title)}</dc:title>"
            "<upnp:class>object.item.audioItem.musicTrack</upnp:class>"
            f"<dc:creator>{escape(self.artist)}</dc:creator>"
            f"<upnp:album>{escape(self.album)}</upnp:album></item>"
        )

    def metadata(self, number: int) -> str:
        """Track metadata as GetPositionInfo reports it."""
        return DIDL_OPEN + self.didl_item(number) + DIDL_CLOSE


@dataclass
class Favorite:
    """A household's Sonos favorite (``FV:2``), e.g. a radio station."""

    title: str
    uri: str
    metadata: str = ""
    description: str = "TuneIn Station"

    def didl_item(self, number: int) -> str:
        """The DIDL <item> a speaker returns for FV:2/number."""
        scheme = self.uri.split(":", 1)[0]
        return (
            f'<item id="FV:2/{number}" parentID="FV:2" restricted="false">'
            f"<dc:title>{escape(self.title)}</dc:title>"
            "<upnp:class>object.itemobject.item.sonos-favorite</upnp:class>"
            f"<r:ordinal>{number - 1}</r:ordinal>"
            f'<res protocolInfo="{escape(scheme)}:*:*:*">{escape(self.uri)}</res>'
            "<r:type>instantPlay</r:type>"
            f"<r:description>{escape(self.description)}</r:description>"
            f"<r:resMD>{escape(self.metadata)}</r:resMD></item>"
        )


@dataclass
class AudioClip:
    """A loadAudioClip request and its fate."""

    id: str
    url: str | None
    name: str
    app_id: str
    priority: str
    clip_type: str
    volume: int | None
    status: str = "ACTIVE"
    record: PlaybackRecord | None = None
    #: Every status the clip went through, with its monotonic time.
    history: list[tuple[str, float]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The clip as the audioClip API describes it."""
        return {
            "_objectType": "audioClip",
            "id": self.id,
            "name": self.name,
            "appId": self.app_id,
            "priority": self.priority,
            "clipType": self.clip_type,
            "status": self.status,
        }


@dataclass
class Subscription:
    """A UPnP event subscription held by a speaker."""

    sid: str
    service: str
    callback: str
    timeout_s: int
    seq: int = 0
    last_sent: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    #: Events waiting for their delivery time (loop time, body), delivered in order.
    outbox: deque[tuple[float, str]] = field(default_factory=deque, repr=False)
    sender: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass(eq=False)
class WebsocketPeer:
    """A client of the audioClip websocket; with ``subscribed`` it gets clip status events."""

    ws: web.WebSocketResponse
    subscribed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    outbox: deque[tuple[float, list[dict[str, Any]]]] = field(default_factory=deque, repr=False)
    sender: asyncio.Task[None] | None = field(default=None, repr=False)


class UPnPError(Exception):
    """A SOAP action fails with this UPnP error code."""

    def __init__(self, code: int, description: str = "") -> None:
        """Keep the code."""
        super().__init__(f"UPnP error {code}: {description or UPNP_ERROR_TEXT.get(code, '')}")
        self.code = code
        self.description = description or UPNP_ERROR_TEXT.get(code, "")


class Running:
    """``async with`` a server of the double: started on entry, stopped on exit."""

    async def start(self) -> None:
        """Start serving."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        """Start."""
        await self.start()
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        """Stop."""
        await self.stop()
