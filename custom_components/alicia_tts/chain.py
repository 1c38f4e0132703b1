"""Local first, never silent: the engine chain of an entry.

The chain is in-process Piper ("local") followed by other Home Assistant TTS entities the user
chose (a Wyoming Piper server, Nabu Casa cloud, Google Translate, ...), reached through HA's
public tts API (``tts.async_create_stream``). Rules:

- local unavailable (piper-tts not installable, voice missing or corrupt) → next engine;
- an engine raises, or gives no first audio within ``first_audio_timeout`` → next engine;
- once audio has reached a listener, a failure fails the request (no mixed voices);
- circuit breaker: after ``breaker_threshold`` consecutive local failures local is skipped for
  ``breaker_cooldown`` seconds, then probed in the background and used again when healthy;
- per call ``engine: local | fallback`` forces one side; the entry has a default preference.

Message texts never leave the house except through engines the user put in the chain; the
chain counts calls and characters per engine (visible in diagnostics) and never logs texts
above debug level.
"""

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
import logging
from pathlib import Path
import time
from typing import Any, Final

from homeassistant.components import tts
from homeassistant.components.tts.const import DATA_TTS_MANAGER
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_call_later

from .const import DOMAIN

_LOGGER = logging.getLogger(__name__)

LOCAL: Final = "local"
FALLBACK: Final = "fallback"
NONE: Final = "none"
ENGINE_CHOICES: Final = (LOCAL, FALLBACK)
PROBE_TEXT: Final = "Probe."
MAX_ERRORS: Final = 20


def scrub(error: str, message: str) -> str:
    """An error text without the message (engines like to quote it, HA truncates it to 32)."""
    for text in sorted({message.strip(), message.strip()[:32]}, key=len, reverse=True):
        if len(text) >= 3:
            error = error.replace(text, "[message]")
    return error


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; half-open after ``cooldown`` seconds."""

    def __init__(
        self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Start closed."""
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (cool-down over, waiting for a probe)."""
        if self.opened_at is None:
            return "closed"
        if self._clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    @property
    def is_open(self) -> bool:
        """Whether local is being skipped."""
        return self.opened_at is not None

    def record_success(self) -> None:
        """A local success closes the breaker."""
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> bool:
        """Count a local failure; returns True when this failure opened the breaker."""
        self.failures += 1
        if self.failures >= self.threshold:
            was_open = self.opened_at is not None
            self.opened_at = self._clock()
            return not was_open
        return False


@dataclass(slots=True)
class EngineStats:
    """Usage of one engine (the per-engine usage record)."""

    calls: int = 0
    characters: int = 0
    failures: int = 0
    last_latency_ms: float | None = None


@dataclass(slots=True)
class ChainError:
    """A recent failure (no message text)."""

    at: float
    engine: str
    error: str


class TextTee:
    """Records streamed text so the next engine can replay what the previous one consumed."""

    def __init__(self, source: AsyncIterator[str]) -> None:
        """Wrap a text stream (consumed at most once)."""
        self._source = source
        self.seen: list[str] = []
        self._done = False

    @property
    def characters(self) -> int:
        """Characters received so far."""
        return sum(len(c) for c in self.seen)

    async def replay(self) -> AsyncGenerator[str]:
        """What was received so far, then the rest of the source."""
        index = 0
        while True:
            while index < len(self.seen):
                yield self.seen[index]
                index += 1
            if self._done:
                return
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                self._done = True
                return
            self.seen.append(chunk)

    async def read_all(self) -> str:
        """The whole text (consumes the source)."""
        return "".join([chunk async for chunk in self.replay()])


@dataclass(kw_only=True)
class EngineChain:
    """The ordered engines of one entry, their health and their usage."""

    hass: HomeAssistant
    fallbacks: list[str]
    preference: str = LOCAL
    first_audio_timeout: float = 8.0
    breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker(3, 60.0))
    local_available: bool = True
    stats: dict[str, EngineStats] = field(default_factory=dict)
    errors: deque[ChainError] = field(default_factory=lambda: deque(maxlen=MAX_ERRORS))
    active: str = NONE
    probe: Callable[[], Any] | None = None  # async callable: synthesize PROBE_TEXT locally
    tts_entity_id: str | None = None
    fallback_served_since_purge: bool = False
    _listeners: list[CALLBACK_TYPE] = field(default_factory=list, init=False)
    _probe_unsub: CALLBACK_TYPE | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        """Stats for every engine of the chain."""
        for engine in (LOCAL, *self.fallbacks):
            self.stats.setdefault(engine, EngineStats())
        self.active = LOCAL if self.local_available else (self.fallbacks or [NONE])[0]

    # -- listeners (sensors) -----------------------------------------------------------------

    @callback
    def async_add_listener(self, update: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``update`` whenever the chain's state changes; returns the remover."""
        self._listeners.append(update)

        @callback
        def remove() -> None:
            self._listeners.remove(update)

        return remove

    @callback
    def _changed(self) -> None:
        for update in list(self._listeners):
            update()

    # -- decisions ---------------------------------------------------------------------------

    @property
    def local_problem(self) -> bool:
        """Whether local cannot be used right now (unavailable or breaker open)."""
        return not self.local_available or self.breaker.is_open

    def order(self, forced: str | None = None) -> list[str]:
        """Engines to try, in order, for one request."""
        local = [LOCAL] if self.local_available else []
        if forced == LOCAL:
            return [LOCAL]
        if forced == FALLBACK:
            return list(self.fallbacks)
        if self.breaker.is_open:
            local = []
        if self.preference == FALLBACK:
            return [*self.fallbacks, *local]
        return [*local, *self.fallbacks]

    # -- outcomes ----------------------------------------------------------------------------

    @callback
    def record_success(self, engine: str, characters: int, latency: float) -> None:
        """An engine delivered its first audio."""
        stats = self.stats.setdefault(engine, EngineStats())
        stats.calls += 1
        stats.characters += characters
        stats.last_latency_ms = round(latency * 1000, 1)
        self.active = engine
        if engine == LOCAL:
            was_open = self.breaker.is_open
            self.breaker.record_success()
            if was_open:
                _LOGGER.info("Local Piper engine is healthy again")
            self.async_purge_fallback_cache()
        else:
            self.fallback_served_since_purge = True
        self._changed()

    @callback
    def record_failure(self, engine: str, error: str, characters: int = 0) -> None:
        """An engine failed before any audio reached a listener (or after: see caller)."""
        stats = self.stats.setdefault(engine, EngineStats())
        stats.calls += 1
        stats.characters += characters
        stats.failures += 1
        self.errors.append(ChainError(time.time(), engine, error))
        if engine == LOCAL and self.breaker.record_failure():
            _LOGGER.warning(
                "Local Piper failed %s times in a row; using the fallback chain for %.0f s",
                self.breaker.failures,
                self.breaker.cooldown,
            )
            self._schedule_probe()
        self._changed()

    @callback
    def add_characters(self, engine: str, characters: int) -> None:
        """Characters that arrived after the first audio (streamed text)."""
        self.stats.setdefault(engine, EngineStats()).characters += characters

    @callback
    def record_exhausted(self) -> None:
        """No engine could speak."""
        self.active = NONE
        self._changed()

    # -- breaker probe -----------------------------------------------------------------------

    @callback
    def _schedule_probe(self) -> None:
        if self._probe_unsub is not None or self.probe is None:
            return
        self._probe_unsub = async_call_later(self.hass, self.breaker.cooldown, self._async_probe)

    async def _async_probe(self, _now: Any) -> None:
        self._probe_unsub = None
        assert self.probe is not None
        started = time.monotonic()
        try:
            await self.probe()
        except Exception as err:
            _LOGGER.info("Local Piper probe failed: %s", err)
            self.breaker.opened_at = self.breaker._clock()  # noqa: SLF001 - restart cool-down
            self.errors.append(ChainError(time.time(), LOCAL, f"probe: {err}"))
            self._schedule_probe()
            self._changed()
            return
        self.record_success_probe(time.monotonic() - started)

    @callback
    def record_success_probe(self, latency: float) -> None:
        """The background probe spoke: local is used again."""
        self.breaker.record_success()
        self.stats[LOCAL].last_latency_ms = round(latency * 1000, 1)
        self.active = LOCAL
        _LOGGER.info("Local Piper engine recovered; switching back")
        self.async_purge_fallback_cache()
        self._changed()

    @callback
    def async_stop(self) -> None:
        """Cancel a scheduled probe (entry unload)."""
        if self._probe_unsub is not None:
            self._probe_unsub()
            self._probe_unsub = None

    # -- HA's tts cache ----------------------------------------------------------------------

    @callback
    def async_purge_fallback_cache(self) -> None:
        """Drop this entity's entries from HA's tts cache after fallback audio was served.

        HA's tts cache stores whatever our entity returned under our key, fallback audio
        included, and offers no per-entry opt-out. Once local speaks again, every cached entry
        of this entity (memory and disk) is dropped, so later requests are synthesized locally.
        """
        if not self.fallback_served_since_purge or self.tts_entity_id is None:
            return
        self.fallback_served_since_purge = False
        self.hass.async_create_task(
            async_purge_tts_cache(self.hass, self.tts_entity_id), eager_start=True
        )

    # -- fallback synthesis ------------------------------------------------------------------

    async def async_fallback_stream(
        self, engine: str, text: AsyncGenerator[str]
    ) -> tuple[str, AsyncGenerator[bytes]]:
        """Start synthesis on another HA TTS entity; returns (extension, audio chunks).

        The engine's own default language and options are used (our options are Piper's).
        """
        if self.hass.states.get(engine) is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="fallback_missing",
                translation_placeholders={"engine": engine},
            )
        stream = tts.async_create_stream(self.hass, engine, None, None)
        stream.async_set_message_stream(text)
        return stream.extension, stream.async_stream_result()


async def first_then_rest(
    chunks: AsyncGenerator[bytes], limit: float
) -> tuple[bytes, AsyncGenerator[bytes]]:
    """Wait (bounded) for the first chunk; return it and a generator of the rest.

    On timeout or error the source is closed and the error raised.
    """
    try:
        async with asyncio.timeout(limit):
            first = await anext(chunks)
    except BaseException:
        await chunks.aclose()
        raise

    async def rest() -> AsyncGenerator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    return first, rest()


async def async_purge_tts_cache(hass: HomeAssistant, entity_id: str) -> None:
    """Remove HA tts cache entries (memory and files) produced by ``entity_id``."""
    manager = hass.data.get(DATA_TTS_MANAGER)
    if manager is None:
        return
    suffix = f"_{entity_id}".lower()
    try:
        for key in [k for k in manager.mem_cache if k.endswith(suffix)]:
            manager.mem_cache.pop(key, None)
        stale = {k: f for k, f in manager.file_cache.items() if k.endswith(suffix)}
        for key in stale:
            manager.file_cache.pop(key, None)
        cache_dir = manager.cache_dir
    except AttributeError as err:  # a future HA changed its cache internals
        _LOGGER.debug("Cannot purge HA's tts cache: %s", err)
        return

    def remove_files() -> None:
        for filename in stale.values():
            (Path(cache_dir) / filename).unlink(missing_ok=True)

    await hass.async_add_executor_job(remove_files)
    _LOGGER.debug("Purged %s cached files of %s from HA's tts cache", len(stale), entity_id)


def fallback_names(hass: HomeAssistant, fallbacks: list[str]) -> dict[str, str]:
    """Readable names of the fallback engines (for sensors and diagnostics)."""
    registry = er.async_get(hass)
    names: dict[str, str] = {}
    for entity_id in fallbacks:
        entry = registry.async_get(entity_id)
        state = hass.states.get(entity_id)
        names[entity_id] = (
            (state.name if state else None)
            or (entry.name or entry.original_name if entry else None)
            or entity_id
        )
    return names
