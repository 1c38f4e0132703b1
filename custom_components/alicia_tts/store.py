"""Audio for speakers: tokens, growing buffers, a bounded cache, Range parsing.

Pure: imports nothing from Home Assistant. The HTTP view and the URL logic live in
``delivery.py``, making the audio in ``production.py``, the file formats in ``encoders.py``;
this module holds what is served.

- An :class:`AudioItem` is one announcement's audio behind an unguessable token (128 random
  bits, URL-safe) that expires. Its :class:`AudioBuffer` grows while synthesis runs, so a
  speaker can start fetching before the message is finished; once complete, the length is known
  and Range requests can be answered.
- The :class:`AudioStore` owns the items, an LRU cache of finished audio keyed by what made it
  (engine, voice, options, text, format), and the productions in progress (identical requests
  share one). Everything it holds, live items and cached audio alike, counts against one byte
  budget; past it, finished audio goes first: cached audio no item uses, then finished items
  that were already fetched, then finished items never fetched, oldest first. Audio still being
  made is never dropped. Cached audio unused for ``ttl`` seconds expires like a token.
- An item keeps a bounded record of the requests for it (the last ``MAX_FETCH_RECORDS``).
"""

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable
import ctypes
from dataclasses import dataclass, field
import math
import platform
import re
import secrets
import time
from typing import Final

TOKEN_BYTES: Final = 16  # 128 random bits
DEFAULT_TOKEN_TTL: Final = 300.0  # seconds a URL stays valid
# One budget for all audio held in memory: live items and the cache.
DEFAULT_BUDGET_BYTES: Final = 32 * 1024 * 1024
MAX_FETCH_RECORDS: Final = 16
# Past the budget, finished audio is dropped until this share of the budget is free again.
EVICTION_SLACK: Final = 0.1
# A new item prunes expired ones at most this often (seconds; a timer prunes too).
PRUNE_EVERY: Final = 1.0
# A Range number longer than this is larger than any audio (and than int() may parse).
_MAX_RANGE_DIGITS: Final = 18
CONTENT_TYPES: Final = {"mp3": "audio/mpeg", "wav": "audio/wav"}

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
_RANGE_RE = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*")


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
        length = _range_number(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiableError
        start, end = max(0, size - length), size - 1
    else:
        start = _range_number(first)
        end = min(_range_number(last), size - 1) if last else size - 1
        if start >= size or (last and _range_number(last) < start):
            raise RangeNotSatisfiableError
    if start == 0 and end == size - 1:
        return None
    return start, end


def _range_number(digits: str) -> int:
    """A Range position; one with very many digits is simply larger than any audio."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > _MAX_RANGE_DIGITS:
        return 10**_MAX_RANGE_DIGITS
    return int(digits)


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
        self.exception: Exception | None = None  # what failed, when known
        self.duration: float | None = None  # seconds, once known
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

    def fail(self, error: str, exception: Exception | None = None) -> None:
        """Synthesis failed: readers stop with what they have."""
        self.error = error
        self.exception = exception
        self.done = True
        self._notify()

    @property
    def data(self) -> bytes | bytearray:
        """The bytes object itself (no copy): several items and the cache may share it."""
        return self._data

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
    # The last requests for it; ``fetch_count`` counts all of them.
    fetches: deque[FetchRecord] = field(default_factory=lambda: deque(maxlen=MAX_FETCH_RECORDS))
    fetch_count: int = 0
    fetched: bool = False  # a GET came
    task: asyncio.Task[None] | None = None  # the producer, while it runs (its owner item only)
    shared: bool = False  # follows another request's production of the same audio

    @property
    def duration(self) -> float | None:
        """Seconds of audio, once known."""
        return self.buffer.duration

    @duration.setter
    def duration(self, value: float | None) -> None:
        self.buffer.duration = value

    def record(self, fetch: FetchRecord) -> None:
        """Remember a request for the audio (bounded)."""
        self.fetches.append(fetch)
        self.fetch_count += 1
        if fetch.method == "GET":
            self.fetched = True

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
        return self.fetched


@dataclass(slots=True)
class PendingAudio:
    """A production in progress that identical requests share."""

    buffer: AudioBuffer
    # Resolved once the engine admitted the request (or with the error that refused it).
    admitted: asyncio.Future[None]
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Cached:
    data: bytes
    duration: float | None
    used: float  # store clock of the last use


def _wall_clock() -> float:
    # Looked up at each call, so a frozen test clock applies too.
    return time.time()


class AudioStore:
    """Items by token (expiring), a cache of finished audio, productions in progress.

    All audio held (live items and cache, each bytes object counted once) stays within
    ``budget_bytes``, see the module docstring for what goes first.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TOKEN_TTL,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Set the limits; the clock defaults to wall time, looked up at each call."""
        self.ttl = ttl
        self.budget_bytes = budget_bytes
        self._clock = clock or _wall_clock
        self._items: dict[str, AudioItem] = {}
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._pending: dict[str, PendingAudio] = {}
        self.cache_hits = 0
        self.cache_misses = 0
        self.shared = 0  # requests that joined a production in progress
        self.evicted = 0  # items and cache entries dropped for the budget
        self._pruned_at = -math.inf
        # Called with the bytes a prune or eviction let go of (to hand memory back to the OS).
        self.on_freed: Callable[[int], None] | None = None

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
        buffer: AudioBuffer | None = None,
    ) -> AudioItem:
        """A new item with a fresh token (sharing ``buffer`` if given).

        Expired items are dropped on the way (at most every ``PRUNE_EVERY`` seconds). The
        budget is enforced when audio is finished (:meth:`cache_put`); a new item holds none.
        """
        now = self.now()
        if now - self._pruned_at >= PRUNE_EVERY:
            self.prune(now)
        item = AudioItem(
            token=new_token(),
            extension=extension,
            created=now,
            expires=now + (self.ttl if ttl is None else ttl),
            owner=owner,
            cache_key=cache_key,
            source=source,
        )
        if buffer is not None:
            item.buffer = buffer
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

    def prune(self, now: float | None = None) -> int:
        """Drop expired items and cached audio unused for ``ttl`` seconds (as of ``now``).

        Returns the bytes of audio let go of.
        """
        now = self.now() if now is None else now
        self._pruned_at = now
        tokens = [t for t, i in self._items.items() if i.expires <= now]
        keys = [k for k, c in self._cache.items() if c.used + self.ttl <= now]
        if not tokens and not keys:
            return 0
        before = self.held_bytes()
        for token in tokens:
            del self._items[token]
        for key in keys:
            del self._cache[key]
        return self._freed(before - self.held_bytes())

    def _freed(self, size: int) -> int:
        if size > 0 and self.on_freed is not None:
            self.on_freed(size)
        return size

    def discard(self, token: str) -> None:
        """Forget one item (its engine failed before any audio)."""
        self._items.pop(token, None)

    def remove_owner(self, owner: str) -> None:
        """Drop the items of a config entry (on unload)."""
        for token in [t for t, i in self._items.items() if i.owner == owner]:
            del self._items[token]

    # -- productions in progress -------------------------------------------------------------

    def pending(self, key: str) -> PendingAudio | None:
        """The production in progress for a key (identical requests share it)."""
        return self._pending.get(key)

    def start_pending(self, key: str) -> PendingAudio:
        """Register a production for a key; ends with :meth:`end_pending`."""
        pending = PendingAudio(AudioBuffer(), asyncio.get_running_loop().create_future())
        self._pending[key] = pending
        return pending

    def end_pending(self, key: str, pending: PendingAudio) -> None:
        """The production for a key is over (complete or failed)."""
        if self._pending.get(key) is pending:
            del self._pending[key]

    # -- cache -------------------------------------------------------------------------------

    def cache_get(self, key: str) -> tuple[bytes, float | None] | None:
        """Finished audio (and its duration) for a key, refreshing its LRU position."""
        hit = self._cache.get(key)
        if hit is None:
            self.cache_misses += 1
            return None
        hit.used = self.now()
        self._cache.move_to_end(key)
        self.cache_hits += 1
        return hit.data, hit.duration

    def cache_put(self, key: str, data: bytes, duration: float | None = None) -> None:
        """Keep finished audio; past the budget, finished audio is dropped (see the module)."""
        if len(data) > self.budget_bytes:
            return
        self._cache.pop(key, None)
        self._cache[key] = _Cached(data, duration, self.now())
        self.enforce_budget()

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cache."""
        return sum(len(entry.data) for entry in self._cache.values())

    def held_bytes(self) -> int:
        """Bytes of all audio held: live items and cache, each bytes object once."""
        held: dict[int, int] = {id(c.data): len(c.data) for c in self._cache.values()}
        for item in self._items.values():
            data = item.buffer.data
            held[id(data)] = len(data)
        return sum(held.values())

    def enforce_budget(self) -> None:
        """Drop finished audio until everything held fits the budget.

        Runs when finished audio is added (and when asked). Past the budget it drops down to
        ``1 - EVICTION_SLACK`` of it, so a full store does not scan at every completion.
        """
        sizes: dict[int, int] = {id(c.data): len(c.data) for c in self._cache.values()}
        holders: dict[int, list[AudioItem]] = {}
        for item in self._items.values():
            data = item.buffer.data
            data_id = id(data)
            if data_id not in sizes:
                sizes[data_id] = len(data)
            if (found := holders.get(data_id)) is None:
                holders[data_id] = [item]
            else:
                found.append(item)
        total = sum(sizes.values())
        if total <= self.budget_bytes:
            return
        target = self.budget_bytes * (1 - EVICTION_SLACK)
        keys: dict[int, list[str]] = {}
        for cache_key, entry in self._cache.items():  # least recently used first
            keys.setdefault(id(entry.data), []).append(cache_key)

        def order(data_id: int) -> tuple[int, float]:
            items = holders.get(data_id)
            if not items:  # cached only: least recently used first (dicts keep that order)
                return 0, 0.0
            never_fetched = any(not item.fetched for item in items)
            return 1 + never_fetched, max(item.created for item in items)

        candidates = [
            data_id
            for data_id in sizes
            if all(item.buffer.done for item in holders.get(data_id, ()))
        ]
        freed = 0
        for data_id in sorted(candidates, key=order):  # stable: cache order kept for ties
            if total <= target:
                break
            for cache_key in keys.get(data_id, ()):
                del self._cache[cache_key]
            for item in holders.get(data_id, ()):
                del self._items[item.token]
            self.evicted += len(keys.get(data_id, ())) + len(holders.get(data_id, ()))
            total -= sizes[data_id]
            freed += sizes[data_id]
        self._freed(freed)

    def cache_clear(self) -> None:
        """Forget all cached audio."""
        self._cache.clear()


def release_free_memory() -> bool:
    """Hand memory freed by the process back to the OS (glibc ``malloc_trim``; blocking).

    Audio is many medium-sized allocations; once freed, glibc keeps their pages in its heap, so
    the RSS stays at its peak. ``malloc_trim(0)`` returns the free pages. Elsewhere (musl) this
    does nothing. Returns whether it ran.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except OSError, AttributeError:
        return False
    return True
