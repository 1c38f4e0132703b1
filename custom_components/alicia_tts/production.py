"""Producing an announcement's audio: through the engine chain, into the audio store.

Local Piper's speech is encoded (MP3 or WAV) sentence by sentence as it is synthesized, within
its composition (chimes, repeats); a fallback engine's audio is copied in as it streams. A
cached copy is served at once, and identical requests made while the first one is still being
synthesized share its synthesis (each gets its own token). The audio is served by
``delivery.py``.
"""

import asyncio
from collections.abc import AsyncGenerator, Callable
import contextlib
from dataclasses import asdict
import hashlib
import json
import logging
from types import TracebackType
from typing import Self

from homeassistant.core import HomeAssistant

from .chain import (
    AlreadyCountedError,
    ChainExhaustedError,
    NoAudioError,
    bounded_wait,
    describe_error,
)
from .chime import Composition, around, job_options
from .delivery import async_get_store
from .encoders import StreamEncoder, audio_duration, first_pieces, make_encoder, read_ahead
from .engine import MAX_MESSAGE_CHARS, EngineBusyError, SynthesisJob, validate_message
from .exceptions import InvalidRequestError
from .ha_errors import local_unavailable, speech_error, translated_error
from .models import AliciaConfigEntry
from .options import LOCAL, SynthesisOptions
from .store import AudioBuffer, AudioItem, AudioStore, PendingAudio

_LOGGER = logging.getLogger(__name__)


def cache_key(
    source: str, voice: str, options: SynthesisOptions, message: str, ext: str, variant: str = ""
) -> str:
    """Identity of a piece of audio: engine, voice, options, text, format (and composition)."""
    parts: list[object] = [source, voice, asdict(options), message, ext]
    if variant:  # chime / repeat: the composition's own key
        parts.append(variant)
    raw = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


async def async_create_local_audio(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    message: str,
    options: SynthesisOptions,
    extension: str,
    composition: Composition | None = None,
) -> AudioItem:
    """An audio item for ``message`` spoken by the local engine; synthesis runs on.

    A cached copy is served at once, and a request identical to one still in progress shares
    its synthesis. Otherwise the request is admitted by the engine (waiting for its turn; errors
    are raised here, before any URL exists) and synthesis continues in a background task of the
    entry, streaming into the item.
    """
    data = entry.runtime_data
    if (engine := data.engine) is None:
        raise local_unavailable(data)
    store = async_get_store(hass)
    voice = options.voice or data.voice
    key = cache_key(
        "local", voice, options, message, extension, composition.key if composition else ""
    )
    if (hit := store.cache_get(key)) is not None:
        return _filled(store.create(extension, owner=entry.entry_id, cache_key=key), hit)
    while (pending := store.pending(key)) is not None:
        try:
            await asyncio.shield(pending.admitted)  # its admission error, if it was refused
        except asyncio.CancelledError:
            if (task := asyncio.current_task()) is not None and task.cancelling():
                raise
            continue  # the request it followed went away before it was admitted
        store.shared += 1
        item = store.create(extension, owner=entry.entry_id, cache_key=key, buffer=pending.buffer)
        item.shared = True
        return item
    pending = store.start_pending(key)
    try:
        job = await engine.async_start(
            job_options(options, composition), data.voice, characters=len(message)
        )
        try:
            encoder = await hass.async_add_executor_job(make_encoder, extension, job.sample_rate)
        except BaseException:
            job.release()
            raise
    except BaseException as err:
        store.end_pending(key, pending)
        if isinstance(err, Exception):
            pending.admitted.set_exception(err)
            pending.admitted.exception()  # retrieved: nobody may be waiting for it
        else:
            pending.admitted.cancel()
        raise
    item = store.create(extension, owner=entry.entry_id, cache_key=key, buffer=pending.buffer)
    item.task = pending.task = entry.async_create_background_task(
        hass,
        _async_produce(
            hass, store, item, job, encoder, message, pending, around_speech(composition, options)
        ),
        name=f"alicia_tts audio {item.token[:6]}",
    )
    pending.admitted.set_result(None)
    return item


def _filled(item: AudioItem, hit: tuple[bytes, float | None]) -> AudioItem:
    """An item completed at once from cached audio (and its duration)."""
    item.buffer.append(hit[0])
    item.duration = hit[1]
    item.buffer.complete()
    return item


async def _async_one(message: str) -> AsyncGenerator[str]:
    yield message


async def async_create_audio(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    message: str,
    options: SynthesisOptions,
    extension: str,
    *,
    forced: str | None = None,
    composition: Composition | None = None,
) -> AudioItem:
    """An audio item from the first engine of the chain that produces audio in time.

    Local Piper streams in the speakers' format, within ``composition`` (chimes, repeats) when
    given; a fallback engine's audio (HA's tts, usually MP3) is passed through in its own format
    (without chimes or repeats) and cached under its own key. The message is
    checked (and cleaned) before any engine sees it; bad input and a busy engine never count as
    engine failures.
    """
    data = entry.runtime_data
    chain = data.chain
    store = async_get_store(hass)
    limit = data.engine.max_message_chars if data.engine is not None else MAX_MESSAGE_CHARS
    try:
        message = validate_message(message, limit)
    except InvalidRequestError as err:
        raise translated_error(err) from err
    timeout = chain.first_audio_timeout

    async def attempt(engine: str) -> AudioItem:
        item: AudioItem | None = None
        try:
            if engine == LOCAL:
                item = await async_create_local_audio(
                    hass, entry, message, options, extension, composition
                )
                local = data.engine
                stalled = local.stalled if local is not None else None
            else:
                item = await _async_create_fallback_audio(hass, entry, engine, message)
                stalled = None
            await bounded_wait(item.buffer.wait_size(1), timeout, stalled)
            _raise_if_silent(item)
        except Exception as err:
            shared = item is not None and item.shared
            _forget(store, item)
            if shared and not isinstance(err, (InvalidRequestError, EngineBusyError)):
                raise AlreadyCountedError(err) from err  # the request it followed counts it
            raise
        return item

    try:
        _engine, item = await chain.async_first_audio(forced, attempt, lambda: message)
    except (InvalidRequestError, ChainExhaustedError) as err:
        raise speech_error(data, err) from err
    return item


def _raise_if_silent(item: AudioItem) -> None:
    """Raise what the engine failed with when its first wait ended with no audio."""
    if item.buffer.size == 0:
        if item.buffer.exception is not None:
            raise item.buffer.exception
        raise NoAudioError(item.buffer.error or "no audio")


def _forget(store: AudioStore, item: AudioItem | None) -> None:
    """Drop an item given up on (and stop its own production)."""
    if item is None:
        return
    if item.task is not None:
        item.task.cancel()
    store.discard(item.token)


async def _async_create_fallback_audio(
    hass: HomeAssistant, entry: AliciaConfigEntry, engine: str, message: str
) -> AudioItem:
    """An item filled from another HA TTS engine (never cached as local audio)."""
    store = async_get_store(hass)
    chain = entry.runtime_data.chain
    extension, chunks = await chain.async_fallback_stream(engine, _async_one(message))
    key = cache_key(engine, "", SynthesisOptions(), message, extension)
    item = store.create(extension, owner=entry.entry_id, cache_key=key, source=engine)
    if (hit := store.cache_get(key)) is not None:
        await chunks.aclose()
        return _filled(item, hit)
    item.task = entry.async_create_background_task(
        hass,
        _async_copy(hass, store, item, chunks, message),
        name=f"alicia_tts audio {item.token[:6]}",
    )
    return item


async def _async_copy(
    hass: HomeAssistant,
    store: AudioStore,
    item: AudioItem,
    chunks: AsyncGenerator[bytes],
    message: str,
) -> None:
    """Copy a fallback engine's audio into an item."""
    buffer = item.buffer
    try:
        with _FailuresInto(buffer, message, f"Fallback engine {item.source}") as filling:
            async for chunk in chunks:
                buffer.append(chunk)
    finally:
        await chunks.aclose()
    if filling.failed:
        return
    duration = await hass.async_add_executor_job(audio_duration, item.extension, buffer.getvalue())
    _complete(store, item, duration)


async def _async_produce(
    hass: HomeAssistant,
    store: AudioStore,
    item: AudioItem,
    job: SynthesisJob,
    encoder: StreamEncoder,
    message: str,
    pending: PendingAudio,
    wrap: Callable[[AsyncGenerator[bytes], int], AsyncGenerator[bytes]],
) -> None:
    """Synthesize into the item's buffer, encoding each sentence as it comes.

    The first sentence is encoded before the next one starts, its first quarter second on its
    own (:func:`first_pieces`): the speaker gets its first bytes as soon as the first sentence
    exists. After that the next sentence is synthesized while this one is encoded
    (:func:`read_ahead`).
    """
    buffer = item.buffer
    pcm_bytes = 0
    try:
        with _FailuresInto(buffer, message, "Synthesis for a speaker") as filling:
            # The file's header goes out with the first audio, never before: the chain waits
            # for the first bytes, and a header is not speech.
            header = encoder.start()
            speech = wrap(job.stream(_async_one(message)), job.sample_rate)
            async with contextlib.aclosing(speech):
                # The first sentence alone: nothing else competes with its first bytes.
                if (first := await anext(speech, None)) is not None:
                    pcm_bytes += len(first)
                    for piece in first_pieces(first, job.sample_rate):
                        encoded = await hass.async_add_executor_job(encoder.encode, piece)
                        buffer.append(header + encoded)
                        header = b""
                    async with contextlib.aclosing(read_ahead(speech)) as rest:
                        async for pcm in rest:
                            pcm_bytes += len(pcm)
                            buffer.append(await hass.async_add_executor_job(encoder.encode, pcm))
            buffer.append(header + await hass.async_add_executor_job(encoder.finish))
    finally:
        job.release()
        store.end_pending(item.cache_key or "", pending)
    if filling.failed:
        return
    if (fix := encoder.final_header(pcm_bytes)) is not None:
        buffer.replace(*fix)
    _complete(store, item, pcm_bytes / (2 * job.sample_rate))


class _FailuresInto:
    """Failures while an item's buffer is filled go into it: the waiting speaker gets them.

    An engine's exception fails the buffer with its description (logged, unless it is the
    caller's mistake) and ends there (:attr:`failed`); a cancellation fails it and goes on.
    """

    def __init__(self, buffer: AudioBuffer, message: str, what: str) -> None:
        """Fill ``buffer`` for ``message``; ``what`` names the producer in the log."""
        self.buffer = buffer
        self.message = message
        self.what = what
        self.failed = False

    def __enter__(self) -> Self:
        """Start filling."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Fail the buffer on an error; swallow an engine's exception, never a cancellation."""
        if exc is None:
            return False
        if not isinstance(exc, Exception):
            self.buffer.fail("cancelled")
            return False
        error = describe_error(exc, self.message)
        if not isinstance(exc, InvalidRequestError):
            _LOGGER.warning("%s failed: %s", self.what, error)
        self.buffer.fail(error, exc)
        self.failed = True
        return True


def _complete(store: AudioStore, item: AudioItem, duration: float | None) -> None:
    """The item's audio is complete: its length, and a copy in the cache."""
    item.duration = duration
    item.buffer.complete()
    if item.cache_key is not None:
        store.cache_put(item.cache_key, item.buffer.getvalue(), item.duration)


def around_speech(
    composition: Composition | None, options: SynthesisOptions
) -> Callable[[AsyncGenerator[bytes], int], AsyncGenerator[bytes]]:
    """The speech stream within ``composition`` (chimes, repeats, lead and tail)."""
    return lambda speech, rate: around(speech, composition, options, rate)
