"""Local first, never silent: the engine chain of an entry.

The chain is in-process Piper ("local") followed by other Home Assistant TTS entities the user
chose (a Wyoming Piper server, Nabu Casa cloud, Google Translate, ...), reached through HA's
public tts API (``tts.async_create_stream``). Rules:

- local unavailable (piper-tts not installable, voice missing or corrupt) → next engine;
- an engine raises, or gives no first audio within ``first_audio_timeout`` → next engine; for
  local Piper the timeout counts only while its worker makes no progress (a request waiting for
  its turn behind others is busy, not broken);
- a busy local engine (its waiting queue full) → next engine, never counted as a failure; when
  no other engine speaks, the caller gets the "busy" error;
- bad input (empty, too long, unknown voice, nothing to speak) is the caller's error: raised at
  once, never counted, never sent to another engine;
- once audio has reached a listener, a failure fails the request (no mixed voices);
- circuit breaker: after ``breaker_threshold`` consecutive local failures local is tried only
  after every fallback engine for ``breaker_cooldown`` seconds, then probed in the background
  and used first again when healthy;
- a fallback engine that is given up (timeout, failure, listener gone) has its synthesis task
  cancelled, so a hanging engine leaves nothing running;
- per call ``engine: local | fallback`` forces one side; the entry has a default preference.

Message texts never leave the house except through engines the user put in the chain; the
chain counts calls and characters per engine (visible in diagnostics) and never logs texts
above debug level.
"""

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import logging
from pathlib import Path
import time
from typing import Any, Final

from homeassistant.components import tts
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_call_later

from .const import DOMAIN
from .engine import MAX_MESSAGE_CHARS, EngineBusyError, InvalidMessageError, clean_message
from .exceptions import InvalidRequestError, TranslatedError
from .listeners import Listeners, cancel
from .options import FALLBACK, LOCAL

_LOGGER = logging.getLogger(__name__)

NONE: Final = "none"
PROBE_TEXT: Final = "Probe."
MAX_ERRORS: Final = 20


def scrub(error: str, message: str) -> str:
    """An error text without the message (engines like to quote it, HA truncates it to 32)."""
    stripped = message.strip()
    for text in sorted({stripped, stripped[:32], stripped[:16]}, key=len, reverse=True):
        if len(text) >= 3:
            error = error.replace(text, "[message]")
    return error


def describe_error(err: BaseException, message: str, timeout: float | None = None) -> str:
    """What went wrong with an engine, in words, without the message text."""
    if isinstance(err, TimeoutError):
        return f"no audio within {timeout:g} s" if timeout is not None else "timed out"
    text = str(err)
    if not isinstance(err, (HomeAssistantError, TranslatedError)) or not text:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return scrub(text, message)


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
    busy: int = 0  # requests it refused as busy (not failures, no text sent)
    last_latency_ms: float | None = None


@dataclass(slots=True)
class ChainError:
    """A recent failure (no message text)."""

    at: float
    engine: str
    error: str


class TextTee:
    """Records streamed text so the next engine can replay what the previous one consumed.

    The text is checked as it arrives, before any engine gets it: control characters are
    cleaned (:func:`clean_message`) and more than ``max_chars`` characters raise
    InvalidMessageError. :meth:`async_prefetch` reads until there is something to say, so a
    message that is empty or (given in one piece, as HA's tts proxy does) too long is refused
    before any engine sees it.
    """

    def __init__(self, source: AsyncIterator[str], max_chars: int = MAX_MESSAGE_CHARS) -> None:
        """Wrap a text stream (consumed at most once)."""
        self._source = source
        self.seen: list[str] = []
        self._done = False
        self._max_chars = max_chars
        self._characters = 0

    @property
    def characters(self) -> int:
        """Characters received so far."""
        return self._characters

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self.seen)

    async def _pull(self) -> bool:
        """Read one more chunk from the source; False at its end."""
        try:
            chunk = await anext(self._source)
        except StopAsyncIteration:
            self._done = True
            return False
        self._characters += len(chunk)
        if self._characters > self._max_chars:
            self._done = True
            raise InvalidMessageError(
                f"the message is longer than {self._max_chars} characters",
                length=str(self._characters),
                max=str(self._max_chars),
            )
        self.seen.append(clean_message(chunk))
        return True

    async def async_prefetch(self) -> None:
        """Read until the text has something to say; InvalidMessageError for an empty message."""
        while not self._done and not any(chunk.strip() for chunk in self.seen):
            await self._pull()
        if not any(chunk.strip() for chunk in self.seen):
            raise InvalidMessageError("the message is empty", length="0", max=str(self._max_chars))

    async def replay(self) -> AsyncGenerator[str]:
        """What was received so far, then the rest of the source."""
        index = 0
        while True:
            while index < len(self.seen):
                yield self.seen[index]
                index += 1
            if self._done or not await self._pull():
                return

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
    # Called whenever the chain's state changes (its sensors follow it).
    listeners: Listeners = field(default_factory=Listeners, init=False)
    _probe_unsub: CALLBACK_TYPE | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        """Stats for every engine of the chain."""
        for engine in (LOCAL, *self.fallbacks):
            self.stats.setdefault(engine, EngineStats())
        self.active = LOCAL if self.local_available else (self.fallbacks or [NONE])[0]

    # -- decisions ---------------------------------------------------------------------------

    @property
    def local_problem(self) -> bool:
        """Whether local cannot be used right now (unavailable or breaker open)."""
        return not self.local_available or self.breaker.is_open

    def order(self, forced: str | None = None) -> list[str]:
        """Engines to try, in order, for one request.

        While the breaker is open local comes last: skipped as long as a fallback engine speaks,
        still tried when none does (with no fallback engine, skipping it would only fail).
        """
        local = [LOCAL] if self.local_available else []
        if forced == LOCAL:
            return [LOCAL]
        if forced == FALLBACK:
            return list(self.fallbacks)
        if self.preference == FALLBACK or self.breaker.is_open:
            return [*self.fallbacks, *local]
        return [*local, *self.fallbacks]

    async def async_first_audio[T](
        self, forced: str | None, attempt: Callable[[str], Awaitable[T]], text: Callable[[], str]
    ) -> tuple[str, T]:
        """The engine that spoke and what its ``attempt`` returned: the chain's one loop.

        ``attempt(engine)`` starts that engine and returns once it gave its first audio (it
        cleans up after itself when it raises); ``text()`` is the message as far as it is known
        (for the statistics and for errors, which never quote it). Engines are tried in
        :meth:`order`: bad input (InvalidRequestError) is raised at once, a busy engine is
        counted as busy, any other failure is counted (unless :class:`AlreadyCountedError`) and
        the next engine speaks. When none did, ChainExhaustedError says what each one did.
        """
        failures: list[tuple[str, Exception]] = []
        busy: EngineBusyError | None = None
        timeout = self.first_audio_timeout
        for engine in self.order(forced):
            started = time.monotonic()
            try:
                result = await attempt(engine)
            except InvalidRequestError:
                raise  # the caller's mistake: not the engine's failure, never another engine's
            except EngineBusyError as err:
                self.record_busy(engine)
                busy = err
                continue
            except AlreadyCountedError as err:
                failures.append((engine, err.error))
                continue
            except Exception as err:  # noqa: BLE001 - whatever an engine raised: the next one speaks
                message = text()
                error = describe_error(err, message, timeout)
                _LOGGER.info("Engine %s failed before any audio: %s", engine, error)
                self.record_failure(engine, error, len(message))
                failures.append((engine, err))
                continue
            self.record_success(engine, len(text()), time.monotonic() - started)
            return engine, result
        self.record_exhausted()
        raise ChainExhaustedError(failures, busy, text(), timeout, forced)

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
        self.listeners.notify()

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
        self.listeners.notify()

    @callback
    def record_busy(self, engine: str) -> None:
        """An engine refused a request as busy: not a failure, and it got no text."""
        self.stats.setdefault(engine, EngineStats()).busy += 1
        self.listeners.notify()

    @callback
    def add_characters(self, engine: str, characters: int) -> None:
        """Characters that arrived after the first audio (streamed text)."""
        self.stats.setdefault(engine, EngineStats()).characters += characters

    @callback
    def record_exhausted(self) -> None:
        """No engine could speak."""
        self.active = NONE
        self.listeners.notify()

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
        except Exception as err:  # noqa: BLE001 - any probe failure keeps the breaker open
            _LOGGER.info("Local Piper probe failed: %s", err)
            self.breaker.opened_at = self.breaker._clock()  # noqa: SLF001 - restart cool-down
            self.errors.append(ChainError(time.time(), LOCAL, f"probe: {err}"))
            self._schedule_probe()
            self.listeners.notify()
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
        self.listeners.notify()

    @callback
    def async_stop(self) -> None:
        """Cancel a scheduled probe (entry unload)."""
        self._probe_unsub = cancel(self._probe_unsub)

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
        """Prepare synthesis on another HA TTS entity; returns (extension, audio chunks).

        The engine's own default language and options are used (our options are Piper's).
        Nothing is sent before the chunks are first read; when they are closed before the
        engine finished (timeout, failure, the listener went away), its synthesis is cancelled.
        """
        if self.hass.states.get(engine) is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="fallback_missing",
                translation_placeholders={"engine": engine},
            )
        stream = tts.async_create_stream(self.hass, engine, None, None)
        return stream.extension, _fallback_chunks(stream, engine, text)


async def _fallback_chunks(
    stream: tts.ResultStream, engine: str, text: AsyncGenerator[str]
) -> AsyncGenerator[bytes]:
    """The audio of a fallback engine; its synthesis is cancelled if this stops early."""
    consumers: set[asyncio.Task[Any]] = set()

    async def watched() -> AsyncGenerator[str]:
        if (task := asyncio.current_task()) is not None:
            consumers.add(task)
        async for chunk in text:
            yield chunk

    # HA runs the engine in a task of its own (its tts cache loader), created right here and
    # reading this text: remember it, to cancel it when the engine is given up.
    before = asyncio.all_tasks()
    stream.async_set_message_stream(watched())
    consumers.update(asyncio.all_tasks() - before)
    finished = False
    try:
        async for chunk in stream.async_stream_result():
            yield chunk
        finished = True
    finally:
        if not finished:
            for task in consumers:
                if not task.done():
                    _LOGGER.debug("Cancelling the synthesis of %s", engine)
                    task.cancel()


class AlreadyCountedError(Exception):
    """An attempt that failed with the identical request it followed: counted there."""

    def __init__(self, error: Exception) -> None:
        """Carry the error the followed request failed with."""
        super().__init__(str(error))
        self.error = error


class ChainExhaustedError(Exception):
    """No engine of the chain spoke; what each one did (translated in ``ha_errors``)."""

    def __init__(
        self,
        failures: list[tuple[str, Exception]],
        busy: EngineBusyError | None,
        message: str,
        timeout: float,
        forced: str | None,
    ) -> None:
        """Keep the failures (engine, error), the busy refusal and what they need to be told."""
        super().__init__(f"no engine spoke ({len(failures)} failed)")
        self.failures = failures
        self.busy = busy
        self.message = message
        self.timeout = timeout
        self.forced = forced


class NoAudioError(TranslatedError):
    """An engine ended without producing any audio (the chain reports it translated)."""


async def bounded_wait[T](
    awaitable: Awaitable[T], limit: float, stalled: Callable[[float], bool] | None = None
) -> T:
    """Await with a timeout of ``limit`` s, extended while ``stalled(limit)`` is False.

    ``stalled`` tells whether the engine has made no progress for ``limit`` seconds; while it
    keeps making progress (working through requests ahead of this one) the wait goes on. On
    timeout (TimeoutError) or cancellation the awaited work is cancelled.
    """

    async def run() -> T:
        return await awaitable

    task = asyncio.ensure_future(run())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=limit)
            if done:
                return task.result()
            if stalled is None or stalled(limit):
                raise TimeoutError
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({task})


async def first_then_rest(
    chunks: AsyncGenerator[bytes], limit: float, stalled: Callable[[float], bool] | None = None
) -> tuple[bytes, AsyncGenerator[bytes]]:
    """Wait (bounded, see :func:`bounded_wait`) for the first chunk; return it and the rest.

    On timeout or error the source is closed and the error raised; a source that ends without
    any audio raises NoAudioError.
    """

    async def first_chunk() -> bytes:
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            raise NoAudioError("the engine produced no audio") from None

    try:
        first = await bounded_wait(first_chunk(), limit, stalled)
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
    """Remove HA tts cache entries (memory and files) produced by ``entity_id``.

    HA has no public way to drop one engine's entries: its ``tts.clear_cache`` action empties
    the cache of every engine. So this reads tts's manager from ``hass.data`` (tts exports the
    key, not in ``__all__``) and touches only its cache dictionaries, guarded below.
    """
    manager = hass.data.get(tts.DATA_TTS_MANAGER)
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
