"""Serving announcement audio to speakers through Home Assistant's own HTTP server.

``/api/alicia_tts/audio/<token>.<ext>`` needs no credentials (a speaker cannot send any): the
token is 128 random bits and expires. While synthesis runs the audio is streamed (chunked, no
length); once complete it is served with ``Content-Length`` and single ``Range`` support.
Unknown or expired tokens give 404, unsatisfiable ranges 416, failed synthesis 503 — never 500.
The last requests of each item are recorded with the client's address, for playback diagnostics.

Identical requests made while the first one is still being synthesized share its synthesis
(each gets its own token).
"""

import asyncio
from collections.abc import AsyncGenerator, Callable
import contextlib
from dataclasses import asdict
from datetime import datetime, timedelta
import hashlib
import ipaddress
import json
import logging
from typing import Final

from aiohttp import web
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.util.hass_dict import HassKey
from yarl import URL

from .audio import (
    AudioItem,
    AudioStore,
    FetchRecord,
    PendingAudio,
    RangeNotSatisfiableError,
    StreamEncoder,
    audio_duration,
    first_pieces,
    is_token,
    make_encoder,
    parse_range,
    range_needs_complete_audio,
    read_ahead,
    release_free_memory,
)
from .chain import (
    LOCAL,
    AlreadyCountedError,
    ChainExhaustedError,
    NoAudioError,
    bounded_wait,
    describe_error,
)
from .chime import Composition, around, job_options
from .const import DOMAIN, ISSUE_SPEAKER_URL
from .engine import (
    MAX_MESSAGE_CHARS,
    EngineBusyError,
    InvalidRequestError,
    SynthesisJob,
    SynthesisOptions,
    validate_message,
)
from .ha_errors import local_unavailable, speech_error, translated_error
from .models import AliciaConfigEntry, SpeakerUrl

_LOGGER = logging.getLogger(__name__)

URL_PREFIX: Final = "/api/alicia_tts/audio/"
DATA_STORE: HassKey[AudioStore] = HassKey(f"{DOMAIN}_audio_store")
# How long a Range request for audio still being synthesized may wait for its end.
RANGE_WAIT_TIMEOUT: Final = 60.0
# Expired audio is dropped at least this often (seconds).
CLEANUP_INTERVAL: Final = 30.0
# Freed audio after which memory is handed back to the OS.
RELEASE_AFTER_BYTES: Final = 4 * 1024 * 1024


def async_get_store(hass: HomeAssistant) -> AudioStore:
    """The audio store of this Home Assistant, with its view registered once.

    Expired audio is dropped every ``CLEANUP_INTERVAL`` seconds even when no new request comes
    (a prune otherwise runs with each new item), and once enough audio was let go of, the freed
    memory is handed back to the OS (in the executor).
    """
    if (store := hass.data.get(DATA_STORE)) is None:
        store = hass.data[DATA_STORE] = AudioStore()
        hass.http.register_view(AliciaAudioView(store))
        freed = 0
        trimming = False

        async def async_release() -> None:
            nonlocal trimming
            try:
                await hass.async_add_executor_job(_release_free_memory)
            finally:
                trimming = False

        @callback
        def on_freed(size: int) -> None:
            nonlocal freed, trimming
            freed += size
            if freed >= RELEASE_AFTER_BYTES and not trimming:
                freed, trimming = 0, True
                hass.async_create_background_task(async_release(), "alicia_tts release memory")

        @callback
        def cleanup(_now: datetime) -> None:
            store.prune()

        store.on_freed = on_freed
        async_track_time_interval(
            hass, cleanup, timedelta(seconds=CLEANUP_INTERVAL), cancel_on_shutdown=True
        )
    return store


class AliciaAudioView(HomeAssistantView):
    """Audio files for speakers, by unguessable expiring token."""

    url = URL_PREFIX + "{filename}"
    name = "api:alicia_tts:audio"
    requires_auth = False

    def __init__(self, store: AudioStore) -> None:
        """Serve from ``store``."""
        self.store = store

    def _item(self, filename: str) -> AudioItem | None:
        token, dot, extension = filename.partition(".")
        if not dot or not is_token(token):
            return None
        item = self.store.get(token)
        if item is None or item.extension != extension:
            return None
        return item

    def _record(self, request: web.Request, item: AudioItem) -> FetchRecord:
        record = FetchRecord(
            client=request.remote,
            method=request.method,
            at=self.store.now(),
            range=request.headers.get("Range"),
        )
        item.record(record)
        return record

    @staticmethod
    def _headers(item: AudioItem) -> dict[str, str]:
        return {
            "Content-Type": item.content_type,
            "Cache-Control": "no-store",
            "Accept-Ranges": "bytes" if item.buffer.done else "none",
        }

    async def head(self, request: web.Request, filename: str) -> web.StreamResponse:
        """Headers only; the length once the audio is complete."""
        if (item := self._item(filename)) is None:
            return web.Response(status=404)
        record = self._record(request, item)
        headers = self._headers(item)
        if item.buffer.error is not None:
            record.status = 503
            return web.Response(status=503)
        if item.buffer.done:
            headers["Content-Length"] = str(item.buffer.size)
        record.complete = True
        response = web.StreamResponse(status=200, headers=headers)
        response.force_close()
        await response.prepare(request)
        return response

    async def get(self, request: web.Request, filename: str) -> web.StreamResponse:
        """The audio: streamed while synthesis runs, with length and Range once complete."""
        if (item := self._item(filename)) is None:
            return web.Response(status=404)
        record = self._record(request, item)
        buffer = item.buffer
        range_header = request.headers.get("Range")
        if range_needs_complete_audio(range_header) and not buffer.done:
            try:
                async with asyncio.timeout(RANGE_WAIT_TIMEOUT):
                    await buffer.wait_done()
            except TimeoutError:
                record.status = 503
                return web.Response(status=503)
        if buffer.error is not None:
            record.status = 503
            return web.Response(status=503)
        headers = self._headers(item)
        if buffer.done:
            return self._complete(item, record, range_header, headers)
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        try:
            async for chunk in buffer.iter_from(0):
                if record.first_byte_at is None:
                    record.first_byte_at = self.store.now()
                await response.write(chunk)
                record.bytes_sent += len(chunk)
        except ConnectionError:
            return response
        if not buffer.has_failed():
            record.complete = True
            await response.write_eof()
        elif request.transport is not None:
            # Synthesis failed mid-stream and the status line is already sent: cut the
            # connection so the client sees a truncated transfer, not a complete short file.
            request.transport.close()
        return response

    def _complete(
        self,
        item: AudioItem,
        record: FetchRecord,
        range_header: str | None,
        headers: dict[str, str],
    ) -> web.Response:
        data = item.buffer.getvalue()
        size = len(data)
        try:
            wanted = parse_range(range_header, size)
        except RangeNotSatisfiableError:
            record.status = 416
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        record.first_byte_at = self.store.now()
        record.complete = True
        if wanted is None:
            record.bytes_sent = size
            return web.Response(body=data, headers=headers)
        start, end = wanted
        record.status = 206
        record.bytes_sent = end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return web.Response(status=206, body=data[start : end + 1], headers=headers)


# -- base URL for speakers --------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why speakers on the LAN could not fetch from ``url`` (None: looks fine)."""
    parsed = URL(url)
    host = parsed.host or ""
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if address.is_loopback:
        return "loopback"
    if parsed.scheme == "https":
        return "https_ip"
    return None


def speaker_base_url(hass: HomeAssistant, override: str | None) -> SpeakerUrl:
    """HA's own URL as a speaker on the LAN should use it, or the user's override.

    An override is the user's explicit choice and is not second-guessed (a demo with speakers on
    the same host uses a loopback URL on purpose).
    """
    if override:
        return SpeakerUrl(override.rstrip("/"), None)
    try:
        url = get_url(
            hass,
            allow_internal=True,
            allow_external=True,
            allow_cloud=False,
            allow_ip=True,
            prefer_external=False,
        )
    except NoURLAvailableError:
        return SpeakerUrl(None, "missing")
    return SpeakerUrl(url.rstrip("/"), url_problem(url))


def async_update_url_issue(hass: HomeAssistant, speaker_url: SpeakerUrl) -> None:
    """Raise or clear the repair issue about the speakers' base URL."""
    if speaker_url.problem is None:
        ir.async_delete_issue(hass, DOMAIN, ISSUE_SPEAKER_URL)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_SPEAKER_URL,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=f"speaker_url_{speaker_url.problem}",
        translation_placeholders={"url": speaker_url.url or ""},
    )


# -- producing audio --------------------------------------------------------------------------


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
        async for chunk in chunks:
            buffer.append(chunk)
    except Exception as err:  # noqa: BLE001 - whatever the engine raised: it failed, and says how
        error = describe_error(err, message)
        _LOGGER.warning("Fallback engine %s failed: %s", item.source, error)
        buffer.fail(error, err)
        return
    except BaseException:
        buffer.fail("cancelled")
        raise
    finally:
        await chunks.aclose()
    item.duration = await hass.async_add_executor_job(
        audio_duration, item.extension, buffer.getvalue()
    )
    buffer.complete()
    if item.cache_key is not None:
        store.cache_put(item.cache_key, buffer.getvalue(), item.duration)


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
        buffer.append(encoder.start())
        speech = wrap(job.stream(_async_one(message)), job.sample_rate)
        async with contextlib.aclosing(speech):
            # The first sentence alone: nothing else competes with its first bytes.
            if (first := await anext(speech, None)) is not None:
                pcm_bytes += len(first)
                for piece in first_pieces(first, job.sample_rate):
                    buffer.append(await hass.async_add_executor_job(encoder.encode, piece))
                async with contextlib.aclosing(read_ahead(speech)) as rest:
                    async for pcm in rest:
                        pcm_bytes += len(pcm)
                        buffer.append(await hass.async_add_executor_job(encoder.encode, pcm))
        buffer.append(await hass.async_add_executor_job(encoder.finish))
    except Exception as err:  # noqa: BLE001 - the failure goes to the waiting speaker
        error = describe_error(err, message)
        if not isinstance(err, InvalidRequestError):
            _LOGGER.warning("Synthesis for a speaker failed: %s", error)
        buffer.fail(error, err)
        return
    except BaseException:
        buffer.fail("cancelled")
        raise
    finally:
        job.release()
        store.end_pending(item.cache_key or "", pending)
    if (fix := encoder.final_header(pcm_bytes)) is not None:
        buffer.replace(*fix)
    item.duration = pcm_bytes / (2 * job.sample_rate)
    buffer.complete()
    if item.cache_key is not None:
        store.cache_put(item.cache_key, buffer.getvalue(), item.duration)


def around_speech(
    composition: Composition | None, options: SynthesisOptions
) -> Callable[[AsyncGenerator[bytes], int], AsyncGenerator[bytes]]:
    """The speech stream within ``composition`` (chimes, repeats, lead and tail)."""
    return lambda speech, rate: around(speech, composition, options, rate)


def _release_free_memory() -> bool:
    return release_free_memory()  # looked up at each call (tests replace it)


def audio_url(base: str, item: AudioItem) -> str:
    """The full URL a speaker gets for an item."""
    return f"{base}{URL_PREFIX}{item.filename}"
