"""Audio for speakers: tokens, growing buffers, a bounded cache, Range parsing, encoders.

Pure: imports nothing from Home Assistant. The HTTP view and the URL logic live in
``delivery.py``; this module holds what they serve.

- An :class:`AudioItem` is one announcement's audio behind an unguessable token (128 random
  bits, URL-safe) that expires. Its :class:`AudioBuffer` grows while synthesis runs, so a
  speaker can start fetching before the message is finished; once complete, the length is known
  and Range requests can be answered.
- The :class:`AudioStore` owns the items and an LRU cache of finished audio keyed by what made
  it (engine, voice, options, text, format), bounded in bytes.
"""

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
import importlib
import io
import re
import secrets
import struct
import time
from typing import Any, Final, Protocol

TOKEN_BYTES: Final = 16  # 128 random bits
DEFAULT_TOKEN_TTL: Final = 300.0  # seconds a URL stays valid
DEFAULT_CACHE_BYTES: Final = 32 * 1024 * 1024
CONTENT_TYPES: Final = {"mp3": "audio/mpeg", "wav": "audio/wav"}
MP3_BITRATE_KBPS: Final = 64
MP3_REQUIREMENT: Final = "lameenc==1.9.0"

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_RANGE_RE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


class RangeNotSatisfiableError(Exception):
    """The requested byte range lies outside the audio."""


def new_token() -> str:
    """An unguessable, URL-safe token of 128 random bits (22 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: str) -> bool:
    """Whether ``value`` has the shape of one of our tokens."""
    return bool(_TOKEN_RE.match(value))


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single-range ``Range`` header against a known size.

    Returns ``(start, end)`` inclusive, or None to serve the whole body (no header, a form we do
    not serve such as several ranges, or a range that covers everything). Raises
    RangeNotSatisfiableError for a range outside the audio.
    """
    if not header:
        return None
    match = _RANGE_RE.fullmatch(header)
    if match is None:
        return None  # malformed or multi-range: RFC 9110 lets us ignore it
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiableError
        start, end = max(0, size - length), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or (last and int(last) < start):
            raise RangeNotSatisfiableError
    if start == 0 and end == size - 1:
        return None
    return start, end


def range_needs_complete_audio(header: str | None) -> bool:
    """Whether a Range header asks for more than "everything from the start".

    ``bytes=0-`` (or no, or an ignorable header) can be streamed while synthesis runs; any other
    range needs the final length.
    """
    match = _RANGE_RE.fullmatch(header or "")
    if match is None:
        return False
    first, last = match.groups()
    if not first and not last:
        return False
    return not (first == "0" and not last)


@dataclass(slots=True)
class FetchRecord:
    """One HTTP request for an item's audio (for playback diagnostics)."""

    client: str | None
    method: str
    at: float
    range: str | None = None
    status: int = 200
    bytes_sent: int = 0
    complete: bool = False
    first_byte_at: float | None = None


class AudioBuffer:
    """Bytes that grow while synthesis runs; readers follow them to the end."""

    def __init__(self) -> None:
        """Start empty and open."""
        # A bytearray while it grows; immutable bytes once complete, shared with the cache (a
        # cached file is adopted as is, and a finished one is cached without another copy).
        self._data: bytearray | bytes = bytearray()
        self.done = False
        self.error: str | None = None
        self._changed = asyncio.Event()

    @property
    def size(self) -> int:
        """Bytes so far."""
        return len(self._data)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def append(self, data: bytes) -> None:
        """Add audio; the first piece is kept as is, without a copy."""
        if not data:
            return
        if not self._data:
            self._data = bytes(data)
        else:
            growing = self._growable()
            growing += data
        self._notify()

    def _growable(self) -> bytearray:
        if isinstance(self._data, bytes):
            self._data = bytearray(self._data)
        return self._data

    def replace(self, offset: int, data: bytes) -> None:
        """Overwrite bytes already written (a WAV header once the length is known)."""
        self._growable()[offset : offset + len(data)] = data

    def complete(self) -> None:
        """No more audio will come: the bytes become immutable (and shareable)."""
        if isinstance(self._data, bytearray):
            self._data = bytes(self._data)
        self.done = True
        self._notify()

    def fail(self, error: str) -> None:
        """Synthesis failed: readers stop with what they have."""
        self.error = error
        self.done = True
        self._notify()

    def has_failed(self) -> bool:
        """Whether synthesis failed (as of now)."""
        return self.error is not None

    def getvalue(self) -> bytes:
        """All bytes so far."""
        return bytes(self._data)

    async def wait_done(self) -> None:
        """Wait until the audio is complete (or failed)."""
        while not self.done:
            await self._changed.wait()

    async def wait_size(self, size: int) -> None:
        """Wait until at least ``size`` bytes exist or the audio ended."""
        while self.size < size and not self.done:
            await self._changed.wait()

    async def iter_from(self, offset: int = 0) -> AsyncGenerator[bytes]:
        """Yield the bytes from ``offset`` as they arrive, until the audio is complete."""
        while True:
            changed = self._changed
            if offset < len(self._data):
                chunk = bytes(self._data[offset:])
                offset += len(chunk)
                yield chunk
                continue
            if self.done:
                return
            await changed.wait()


@dataclass(slots=True, kw_only=True)
class AudioItem:
    """One announcement's audio behind a token."""

    token: str
    extension: str
    created: float
    expires: float
    owner: str | None = None  # config entry id
    cache_key: str | None = None
    source: str = "local"  # which engine made it
    buffer: AudioBuffer = field(default_factory=AudioBuffer)
    fetches: list[FetchRecord] = field(default_factory=list)
    duration: float | None = None  # seconds, once known
    task: asyncio.Task[None] | None = None  # the producer, while it runs

    @property
    def filename(self) -> str:
        """``<token>.<ext>``: the last part of the URL."""
        return f"{self.token}.{self.extension}"

    @property
    def content_type(self) -> str:
        """MIME type for the extension."""
        return CONTENT_TYPES.get(self.extension, "application/octet-stream")

    def was_fetched(self) -> bool:
        """Whether any client has requested the audio (GET) yet."""
        return any(f.method == "GET" for f in self.fetches)


def _wall_clock() -> float:
    # Looked up at each call, so a frozen test clock applies too.
    return time.time()


class AudioStore:
    """Items by token (expiring) and a bounded LRU cache of finished audio."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TOKEN_TTL,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Set the limits; the clock defaults to wall time, looked up at each call."""
        self.ttl = ttl
        self.cache_bytes = cache_bytes
        self._clock = clock or _wall_clock
        self._items: dict[str, AudioItem] = {}
        self._cache: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._cached_bytes = 0
        self.cache_hits = 0
        self.cache_misses = 0

    def __len__(self) -> int:
        """Number of live items."""
        return len(self._items)

    def now(self) -> float:
        """The store's clock."""
        return self._clock()

    def create(
        self,
        extension: str,
        *,
        owner: str | None = None,
        cache_key: str | None = None,
        source: str = "local",
        ttl: float | None = None,
    ) -> AudioItem:
        """A new item with a fresh token; expired items are dropped on the way."""
        self.prune()
        now = self.now()
        item = AudioItem(
            token=new_token(),
            extension=extension,
            created=now,
            expires=now + (self.ttl if ttl is None else ttl),
            owner=owner,
            cache_key=cache_key,
            source=source,
        )
        self._items[item.token] = item
        return item

    def get(self, token: str) -> AudioItem | None:
        """The live item for a token, or None (unknown or expired)."""
        item = self._items.get(token)
        if item is None:
            return None
        if item.expires <= self.now():
            del self._items[token]
            return None
        return item

    def prune(self) -> None:
        """Drop expired items."""
        now = self.now()
        for token in [t for t, i in self._items.items() if i.expires <= now]:
            del self._items[token]

    def discard(self, token: str) -> None:
        """Forget one item (its engine failed before any audio)."""
        self._items.pop(token, None)

    def remove_owner(self, owner: str) -> None:
        """Drop the items of a config entry (on unload)."""
        for token in [t for t, i in self._items.items() if i.owner == owner]:
            del self._items[token]

    # -- cache -------------------------------------------------------------------------------

    def cache_get(self, key: str) -> tuple[bytes, float | None] | None:
        """Finished audio (and its duration) for a key, refreshing its LRU position."""
        hit = self._cache.get(key)
        if hit is None:
            self.cache_misses += 1
            return None
        self._cache.move_to_end(key)
        self.cache_hits += 1
        return hit

    def cache_put(self, key: str, data: bytes, duration: float | None = None) -> None:
        """Keep finished audio; the least recently used entries go past the byte limit."""
        if len(data) > self.cache_bytes:
            return
        if (old := self._cache.pop(key, None)) is not None:
            self._cached_bytes -= len(old[0])
        self._cache[key] = (data, duration)
        self._cached_bytes += len(data)
        while self._cached_bytes > self.cache_bytes:
            _, (evicted, _) = self._cache.popitem(last=False)
            self._cached_bytes -= len(evicted)

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cache."""
        return self._cached_bytes

    def cache_clear(self) -> None:
        """Forget all cached audio."""
        self._cache.clear()
        self._cached_bytes = 0


# -- encoders ---------------------------------------------------------------------------------


class StreamEncoder(Protocol):
    """Turns 16-bit mono PCM into a file format, piece by piece."""

    extension: str

    def start(self) -> bytes:
        """Bytes that open the file."""

    def encode(self, pcm: bytes) -> bytes:
        """Encode more PCM (blocking: CPU work)."""

    def finish(self) -> bytes:
        """Bytes that close the file."""

    def final_header(self, pcm_bytes: int) -> tuple[int, bytes] | None:
        """Once complete: bytes to write at an offset so the file states its true length."""


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte header for 16-bit mono PCM; ``None``: length unknown (sizes 0, streaming)."""
    size = 0 if data_bytes is None else data_bytes
    riff = 0 if data_bytes is None else 36 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        size,
    )


class WavEncoder:
    """Streaming WAV: a header of unknown length, then PCM as it comes."""

    extension = "wav"

    def __init__(self, sample_rate: int) -> None:
        """Remember the rate for the header."""
        self.sample_rate = sample_rate

    def start(self) -> bytes:
        """Header with sizes 0 (read to the end)."""
        return wav_header(self.sample_rate)

    def encode(self, pcm: bytes) -> bytes:
        """PCM passes through."""
        return pcm

    def finish(self) -> bytes:
        """Nothing closes a WAV stream."""
        return b""

    def final_header(self, pcm_bytes: int) -> tuple[int, bytes] | None:
        """The header with the real sizes, for clients that come after completion."""
        return 0, wav_header(self.sample_rate, pcm_bytes)


class Mp3Encoder:
    """MP3 encoded in-process with LAME (``lameenc``), frame by frame as PCM arrives."""

    extension = "mp3"

    def __init__(self, sample_rate: int, bitrate: int = MP3_BITRATE_KBPS) -> None:
        """Set up LAME for mono input at the voice's rate (blocking import)."""
        lameenc: Any = importlib.import_module("lameenc")
        self._encoder = lameenc.Encoder()
        self._encoder.set_bit_rate(bitrate)
        self._encoder.set_in_sample_rate(sample_rate)
        self._encoder.set_channels(1)
        self._encoder.set_quality(5)

    def start(self) -> bytes:
        """MP3 needs no header."""
        return b""

    def encode(self, pcm: bytes) -> bytes:
        """Encode PCM; returns the complete frames so far."""
        return bytes(self._encoder.encode(pcm))

    def finish(self) -> bytes:
        """Flush the last frames."""
        return bytes(self._encoder.flush())

    def final_header(self, pcm_bytes: int) -> tuple[int, bytes] | None:
        """MP3 frames need no fix-up."""
        return None


def audio_duration(extension: str, data: bytes) -> float | None:
    """Length in seconds of complete MP3 or WAV audio (blocking: parses the file)."""
    if extension == "wav" and data[:4] == b"RIFF" and len(data) >= 44:
        rate = struct.unpack_from("<I", data, 24)[0]
        block = struct.unpack_from("<H", data, 32)[0] or 2
        return (len(data) - 44) / (rate * block) if rate else None
    if extension == "mp3":
        mutagen_mp3: Any = importlib.import_module("mutagen.mp3")
        try:
            return float(mutagen_mp3.MP3(io.BytesIO(data)).info.length)
        except Exception:
            return None
    return None


def mp3_available() -> bool:
    """Whether the MP3 encoder can be imported (blocking)."""
    try:
        importlib.import_module("lameenc")
    except ImportError:
        return False
    return True


def make_encoder(extension: str, sample_rate: int) -> StreamEncoder:
    """An encoder for ``mp3`` or ``wav`` (blocking for mp3: imports lameenc)."""
    if extension == "mp3":
        return Mp3Encoder(sample_rate)
    if extension == "wav":
        return WavEncoder(sample_rate)
    raise ValueError(f"unsupported audio format {extension!r}")
