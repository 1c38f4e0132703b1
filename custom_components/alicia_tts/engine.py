"""In-process Piper engine. Pure: imports nothing from Home Assistant.

What it does:
- loads Piper voices (ONNX model + JSON config) and keeps a small LRU of loaded voices; one
  loaded voice is shared by every request that uses it;
- synthesizes sentence by sentence, honouring the engine options of ``docs/options.md``
  (``voice``, ``speaker``, ``speed``, ``noise_scale``, ``noise_w_scale``, ``gain``,
  ``sentence_silence``, ``leading_silence``, ``trailing_silence``);
- bounds the work: ``workers`` threads of its own run the ONNX inference (CPU-bound); at most
  ``max_requests`` requests are in flight, interleaved sentence by sentence (each request hands
  the inference worker one sentence at a time, so a short message's first audio waits for one
  sentence of each request ahead, never for whole long messages); more requests wait in a FIFO
  bounded by the characters waiting (``max_queued_chars``), and only one that would pass that
  bound is rejected, at once, with :class:`EngineBusyError`. A request never runs ahead of its
  consumer by more than one sentence, so memory stays bounded, and a consumer that goes away
  stops it;
- cleans text before espeak-ng sees it (control characters become spaces, see
  :func:`clean_message`) and cuts sentences longer than ``MAX_SENTENCE_CHARS`` at a clause or
  word boundary, so one unpunctuated message cannot hold the worker for minutes.

A voice is its config (``voice_model.py``), the engine's one espeak-ng phonemizer
(``phonemes.py``; serialized: espeak-ng is global state) and an inference session of the chosen
backend (``backends.py``: onnxruntime, or the numpy engine on musl). By default one worker runs
the inferences, sentence by sentence in arrival order, each on every core (the backend's own
threads); with more workers, inferences run in parallel.
"""

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import re
import threading
import time
from typing import Any, Final
import unicodedata
import weakref

from .backends import (
    EspeakAssets,
    InferenceSession,
    StackUnavailableError,
    choose_backend,
    close_session,
    open_runner,
    open_session,
)
from .exceptions import EngineError, InvalidRequestError
from .options import SynthesisOptions
from .phonemes import Phonemizer, phonemes_to_ids
from .voice_model import TEXT, VoiceConfig, VoiceConfigError, model_inputs, text_phonemes, to_pcm
from .voices import VoiceInfo

_LOGGER = logging.getLogger(__name__)

SAMPLE_WIDTH: Final = 2  # Piper produces 16-bit mono PCM
CHANNELS: Final = 1

# Documented maximum message length (characters) for one request.
MAX_MESSAGE_CHARS: Final = 5000
# Requests in flight (interleaved sentence by sentence) and the characters that may wait beyond
# them, per engine. Two maximum-length messages, or about 200 one-sentence announcements, wait;
# one more is refused as busy.
MAX_REQUESTS: Final = 16
MAX_QUEUED_CHARS: Final = 10_000
# A sentence longer than this is cut at a clause or word boundary (one inference each).
MAX_SENTENCE_CHARS: Final = 400


class PiperUnavailableError(EngineError):
    """No inference backend or no espeak-ng phonemizer can run on this platform."""

    translation_key = "piper_unavailable"


class UnknownVoiceError(InvalidRequestError):
    """The requested voice is not installed."""

    translation_key = "unknown_voice"


class UnknownSpeakerError(InvalidRequestError):
    """The requested speaker is not a speaker of the voice."""

    translation_key = "unknown_speaker"


class InvalidMessageError(InvalidRequestError):
    """The message is empty or longer than the documented maximum."""

    translation_key = "invalid_message"


class NothingToSpeakError(InvalidMessageError):
    """The message has text, but nothing Piper can pronounce (only punctuation, emoji...)."""

    translation_key = "nothing_to_speak"


class VoiceLoadError(EngineError):
    """The voice files exist but cannot be loaded (corrupt or incompatible model)."""

    translation_key = "voice_load_failed"


class EngineBusyError(EngineError):
    """Too many requests in flight: rejected at once."""

    translation_key = "engine_busy"


class SynthesisError(EngineError):
    """Piper failed while synthesizing."""

    translation_key = "synthesis_failed"


def _is_control(char: str) -> bool:
    # Cc: C0/C1 controls (NUL, ESC, tab, carriage return...; a newline stays),
    # Cs: lone surrogates (JSON can carry them; they cannot be encoded for espeak-ng).
    return unicodedata.category(char) in ("Cc", "Cs") and char != "\n"


def clean_message(text: str) -> str:
    """The text with control characters and lone surrogates replaced by spaces.

    Newlines stay (a blank line ends a sentence); every other control character (NUL, escape
    sequences, a stray form feed from a template) would at best be read out as nothing and at
    worst make espeak-ng fail. Same length as ``text``, so limits count the same characters.
    """
    if text.isprintable():
        return text
    return "".join(" " if _is_control(char) else char for char in text)


def validate_message(message: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """The message, cleaned (:func:`clean_message`); rejects empty and too-long messages."""
    if len(message) > max_chars:
        raise InvalidMessageError(
            f"the message has {len(message)} characters, more than {max_chars}",
            length=str(len(message)),
            max=str(max_chars),
        )
    cleaned = clean_message(message)
    if not cleaned.strip():
        raise InvalidMessageError("the message is empty", length="0", max=str(max_chars))
    return cleaned


def check_input(
    message: str | None,
    options: SynthesisOptions,
    voices: Mapping[str, VoiceInfo],
    default_voice: str,
    max_chars: int = MAX_MESSAGE_CHARS,
) -> str | None:
    """Validate a request's input without any engine: the cleaned message (None: none given).

    The one check every entry point runs before any engine sees the text. A voice other than
    ``default_voice`` must be installed (``voices``); the default voice itself may be missing
    (then local Piper cannot speak, which is not the caller's mistake).
    """
    cleaned = None if message is None else validate_message(message, max_chars)
    key = options.voice or default_voice
    if (info := voices.get(key)) is not None:
        resolve_speaker_id(options.speaker, info)
    elif key != default_voice:
        raise UnknownVoiceError(f"voice {key!r} is not installed", voice=key)
    return cleaned


def check_voice_files(model_path: Path, config_path: Path, backend: str | None = None) -> None:
    """Check that a voice can be loaded: its config parses and its model opens (blocking).

    Raises VoiceLoadError. Used before a downloaded voice is moved into place. Without any
    inference backend on this platform the model cannot be opened here; then only the config
    is checked (the engine reports the missing backend itself).
    """
    name = model_path.name
    try:
        VoiceConfig.load(config_path)
    except VoiceConfigError as err:
        raise VoiceLoadError(
            f"the voice config cannot be used: {err}", voice=name, error=str(err)
        ) from err
    try:
        chosen = choose_backend(backend)
    except StackUnavailableError as err:
        _LOGGER.debug("Cannot open %s to check it: %s", name, err)
        return
    try:
        session = open_session(chosen, model_path, 1)
    except Exception as err:  # each backend raises its own exception types
        raise VoiceLoadError(
            f"the voice model cannot be opened: {err}", voice=name, error=str(err)
        ) from err
    close_session(session)


def resolve_speaker_id(speaker: str | None, voice: VoiceInfo) -> int | None:
    """Map a speaker name or number to the voice's speaker id (None: the voice's default)."""
    if speaker is None:
        return None
    if voice.num_speakers <= 1:
        raise UnknownSpeakerError(
            f"voice {voice.key} has a single speaker", speaker=speaker, voice=voice.key
        )
    if speaker in voice.speaker_id_map:
        return voice.speaker_id_map[speaker]
    if speaker.isdigit() and int(speaker) < voice.num_speakers:
        return int(speaker)
    raise UnknownSpeakerError(
        f"voice {voice.key} has no speaker {speaker!r}", speaker=speaker, voice=voice.key
    )


# A sentence ends at . ! ? … (or their CJK forms), possibly followed by closing quotes or
# brackets, and then whitespace; a blank line also ends one.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026\u3002\uff01\uff1f])[\"'\u201d\u2019)\]]*\s+|\n\s*\n")


# Where an over-long sentence may be cut: after clause punctuation, else at a space.
_CLAUSE_END = re.compile(r"[,;:\u2013\u2014\u3001\uff0c\uff1b\uff1a]\s")


def _cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` (longer than ``limit``) so the first piece is at most ``limit``."""
    window = text[: limit + 1]
    clause = max((m.end() for m in _CLAUSE_END.finditer(window)), default=0)
    if clause > limit // 4:
        return clause
    space = window.rfind(" ")
    return space + 1 if space > limit // 4 else limit


def cut_long(sentence: str, limit: int = MAX_SENTENCE_CHARS) -> list[str]:
    """A sentence as pieces of at most ``limit`` characters, cut at clause or word boundaries."""
    pieces: list[str] = []
    while len(sentence) > limit:
        cut = _cut_point(sentence, limit)
        if piece := sentence[:cut].strip():
            pieces.append(piece)
        sentence = sentence[cut:].lstrip()
    if sentence.strip():
        pieces.append(sentence.strip())
    return pieces


class SentenceBuffer:
    """Collects streamed text and hands out complete sentences as soon as they end.

    A sentence longer than ``limit`` characters is handed out in pieces, as soon as a piece is
    complete, even before the sentence ends.
    """

    def __init__(self, limit: int = MAX_SENTENCE_CHARS) -> None:
        """Start empty."""
        self._pending = ""
        self._limit = limit

    def add(self, text: str) -> list[str]:
        """Add text; return the sentences (or pieces of long ones) it completed."""
        self._pending += text
        sentences: list[str] = []
        start = 0
        for match in _SENTENCE_END.finditer(self._pending):
            sentences.extend(cut_long(self._pending[start : match.end()], self._limit))
            start = match.end()
        rest = self._pending[start:]
        while len(rest) > self._limit:
            cut = _cut_point(rest, self._limit)
            if piece := rest[:cut].strip():
                sentences.append(piece)
            rest = rest[cut:]
        self._pending = rest
        return sentences

    def flush(self) -> str | None:
        """Return what is left (the last, unterminated sentence)."""
        rest, self._pending = self._pending.strip(), ""
        return rest or None


def silence(seconds: float, sample_rate: int) -> bytes:
    """PCM silence of the given length."""
    return bytes(round(seconds * sample_rate) * SAMPLE_WIDTH * CHANNELS)


# Inference threads: one, whose inferences use every core (ONNX Runtime's intra-op threads).
# Measured with script/bench: one request at a time is answered about 1.5x faster than with two
# single-threaded workers (it matches Piper's own ``PiperVoice.load`` set-up), at about the same
# throughput when requests overlap.
DEFAULT_WORKERS: Final = 1


@dataclass(frozen=True, slots=True)
class LoadedVoice:
    """A voice in memory, shared by every request that uses it."""

    info: VoiceInfo
    config: VoiceConfig
    session: InferenceSession
    backend: str  # "onnxruntime" or "numpy"
    has_sid: bool  # whether the model takes a speaker id


class PiperEngine:
    """Loads voices and synthesizes speech, within fixed bounds."""

    def __init__(
        self,
        voices: Mapping[str, VoiceInfo],
        *,
        max_loaded_voices: int = 2,
        workers: int | None = None,
        threads_per_inference: int | None = None,
        max_requests: int = MAX_REQUESTS,
        max_queued_chars: int = MAX_QUEUED_CHARS,
        max_message_chars: int = MAX_MESSAGE_CHARS,
        backend: str | None = None,
        phonemizer: str | None = None,
        espeak_assets: EspeakAssets | None = None,
    ) -> None:
        """Set the bounds and the preferred backend/phonemizer; nothing is loaded yet."""
        self._voices = dict(voices)
        self.backend_preference = backend
        self.phonemizer_preference = phonemizer
        self.espeak_assets = espeak_assets or EspeakAssets()
        self._phonemizer: Phonemizer | None = None
        self.max_loaded_voices = max(1, max_loaded_voices)
        self.workers = workers or DEFAULT_WORKERS
        self.threads_per_inference = threads_per_inference or max(
            1, (os.cpu_count() or 1) // self.workers
        )
        self.max_requests = max_requests
        self.max_queued_chars = max_queued_chars
        self.max_message_chars = max_message_chars
        self._loaded: OrderedDict[str, LoadedVoice] = OrderedDict()
        self._load_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        # espeak-ng runs on a thread of its own: a new request's phonemes never wait behind
        # other requests' inferences.
        self._text_executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._active = 0
        self._waiting: deque[_Waiter] = deque()
        self._waiting_chars = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop requests come from
        self.rejected = 0  # refused as busy (the waiting bound was full)
        self.queued = 0  # admitted after waiting in the FIFO
        # When the worker last started or finished a piece of work (time.monotonic()).
        self.progress_at = time.monotonic()

    # -- voices ------------------------------------------------------------------------------

    @property
    def voices(self) -> dict[str, VoiceInfo]:
        """The voices on disk that the engine may load."""
        return dict(self._voices)

    def set_voices(self, voices: Mapping[str, VoiceInfo]) -> None:
        """Replace the known voices (after a rescan); loaded voices that vanished are dropped."""
        self._voices = dict(voices)
        with self._load_lock:
            for key in [k for k in self._loaded if k not in self._voices]:
                del self._loaded[key]

    @property
    def loaded_voices(self) -> list[str]:
        """Keys of the voices in memory, least recently used first."""
        return list(self._loaded)

    def voice_info(self, key: str) -> VoiceInfo:
        """The on-disk voice ``key``, or UnknownVoiceError."""
        try:
            return self._voices[key]
        except KeyError:
            raise UnknownVoiceError(f"voice {key!r} is not installed", voice=key) from None

    @property
    def backend(self) -> str | None:
        """The inference backend of the loaded voices (None before the first load)."""
        return next((voice.backend for voice in self._loaded.values()), None)

    @property
    def phonemizer(self) -> str | None:
        """The espeak-ng runner in use (None before the first espeak voice is loaded)."""
        return self._phonemizer.name if self._phonemizer is not None else None

    def load_voice(self, key: str) -> LoadedVoice:
        """Return the loaded voice ``key``, loading it if needed (blocking)."""
        info = self.voice_info(key)
        with self._load_lock:
            if (loaded := self._loaded.get(key)) is not None and loaded.info == info:
                self._loaded.move_to_end(key)
                return loaded
            loaded = self._load(info)
            self._loaded[key] = loaded
            self._loaded.move_to_end(key)
            while len(self._loaded) > self.max_loaded_voices:
                evicted, dropped = self._loaded.popitem(last=False)
                close_session(dropped.session)
                _LOGGER.debug("Unloaded voice %s (LRU)", evicted)
            return loaded

    def _load(self, info: VoiceInfo) -> LoadedVoice:
        try:
            backend = choose_backend(self.backend_preference)
        except StackUnavailableError as err:
            raise PiperUnavailableError(str(err), error=str(err)) from err
        try:
            config = VoiceConfig.load(info.config_path)
        except VoiceConfigError as err:
            raise VoiceLoadError(
                f"voice {info.key} cannot be loaded: {err}", voice=info.key, error=str(err)
            ) from err
        if config.phoneme_type != TEXT:
            self._ensure_phonemizer()
        try:
            session = open_session(backend, info.model_path, self.threads_per_inference)
        except Exception as err:  # each backend raises its own exception types
            raise VoiceLoadError(
                f"voice {info.key} cannot be loaded: {err}", voice=info.key, error=str(err)
            ) from err
        has_sid = any(getattr(i, "name", None) == "sid" for i in session.get_inputs())
        _LOGGER.debug("Loaded voice %s with %s", info.key, backend)
        return LoadedVoice(info, config, session, backend, has_sid)

    def _ensure_phonemizer(self) -> Phonemizer:
        if self._phonemizer is None:
            try:
                runner = open_runner(self.phonemizer_preference, self.espeak_assets)
            except StackUnavailableError as err:
                raise PiperUnavailableError(str(err), error=str(err)) from err
            self._phonemizer = Phonemizer(runner)
            _LOGGER.debug("espeak-ng runs as %s", runner.name)
        return self._phonemizer

    async def async_load_voice(self, key: str) -> LoadedVoice:
        """Load a voice on the engine's worker threads."""
        return await self._run(self.load_voice, key)

    # -- synthesis ---------------------------------------------------------------------------

    def _executor_or_start(self) -> ThreadPoolExecutor:
        if self._closed:
            raise SynthesisError("the engine has been stopped", error="stopped")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="alicia_tts_piper"
            )
        return self._executor

    def _text_executor_or_start(self) -> ThreadPoolExecutor:
        if self._closed:
            raise SynthesisError("the engine has been stopped", error="stopped")
        if self._text_executor is None:
            self._text_executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="alicia_tts_espeak"
            )
        return self._text_executor

    def _tracked[T](self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func`` on the worker, recording progress (blocking: runs in the thread)."""
        self.progress_at = time.monotonic()
        try:
            return func(*args)
        finally:
            self.progress_at = time.monotonic()

    async def _run[T](self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor_or_start(), self._tracked, func, *args)

    async def _run_text[T](self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._text_executor_or_start(), self._tracked, func, *args
        )

    def stalled(self, seconds: float) -> bool:
        """Whether the worker has neither started nor finished anything for ``seconds``.

        A request waiting for its turn behind others is not stalled while this is False: the
        engine is busy, not broken.
        """
        return time.monotonic() - self.progress_at >= seconds

    @property
    def active_requests(self) -> int:
        """Requests admitted and not yet finished."""
        return self._active

    @property
    def waiting_requests(self) -> int:
        """Requests waiting in the FIFO for a slot."""
        return len(self._waiting)

    @property
    def waiting_chars(self) -> int:
        """Characters of the requests waiting in the FIFO."""
        return self._waiting_chars

    def _busy(self) -> EngineBusyError:
        self.rejected += 1
        return EngineBusyError(
            f"{self._active} requests in flight and {self._waiting_chars} characters waiting "
            f"(at most {self.max_queued_chars} may wait)",
            active=str(self._active),
            waiting=str(self._waiting_chars),
            max=str(self.max_queued_chars),
        )

    async def _async_admit(self, characters: int) -> None:
        """Take a slot: at once when one is free, else in turn (FIFO); EngineBusyError beyond."""
        self._loop = asyncio.get_running_loop()
        if self._active < self.max_requests and not self._waiting:
            self._active += 1
            return
        cost = max(1, characters)
        if self._waiting_chars + cost > self.max_queued_chars or self.max_requests <= 0:
            raise self._busy()
        waiter = _Waiter(asyncio.get_running_loop().create_future(), cost)
        self._waiting.append(waiter)
        self._waiting_chars += cost
        try:
            await waiter.granted
        except BaseException:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._release_now()  # granted just before the caller went away: hand it on
            elif waiter in self._waiting:  # still waiting (not popped by _grant meanwhile)
                self._waiting.remove(waiter)
                self._waiting_chars -= cost
            raise
        self.queued += 1

    def _grant(self) -> None:
        """Hand free slots to the requests waiting longest."""
        while self._waiting and self._active < self.max_requests:
            waiter = self._waiting.popleft()
            self._waiting_chars -= waiter.cost
            if waiter.granted.done():  # its caller went away meanwhile
                continue
            self._active += 1
            waiter.granted.set_result(None)

    async def async_start(
        self, options: SynthesisOptions, default_voice: str, *, characters: int = 0
    ) -> SynthesisJob:
        """Admit a request and prepare its voice.

        A request beyond ``max_requests`` waits its turn; ``characters`` (the message's length,
        as far as it is known) counts against ``max_queued_chars`` while it waits. Raises
        EngineBusyError at once when the wait would pass that bound, and the request's own
        errors (unknown voice or speaker) before it waits.
        """
        if self._closed:
            raise SynthesisError("the engine has been stopped", error="stopped")
        key = options.voice or default_voice
        info = self.voice_info(key)
        speaker_id = resolve_speaker_id(options.speaker, info)
        await self._async_admit(characters)
        try:
            voice = await self.async_load_voice(key)
        except BaseException:
            self._release_now()
            raise
        return SynthesisJob(self, voice, options, speaker_id)

    def _release(self) -> None:
        """A slot is free again; may be called from another thread (a dropped job's finalizer)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._release_now)
                return
        self._release_now()

    def _release_now(self) -> None:
        self._active -= 1
        self._grant()

    def synthesize_sentences(self, job: SynthesisJob, text: str) -> list[list[int]]:
        """Phonemize ``text`` into sentences of phoneme ids (blocking; one espeak at a time)."""
        config = job.voice.config
        if config.phoneme_type == TEXT:
            sentences = text_phonemes(text)
        else:
            sentences = self._ensure_phonemizer().phonemize(
                config.espeak_voice, text, config.vowel_clusters
            )
        return [
            phonemes_to_ids(phonemes, config.phoneme_id_map) for phonemes in sentences if phonemes
        ]

    def infer(self, job: SynthesisJob, phoneme_ids: list[int]) -> bytes:
        """Run the model on one sentence and return 16-bit PCM (blocking)."""
        voice = job.voice
        feeds = model_inputs(
            phoneme_ids,
            noise_scale=job.noise_scale,
            length_scale=job.length_scale,
            noise_w_scale=job.noise_w_scale,
            speaker_id=job.speaker_id if voice.has_sid else None,
        )
        audio = voice.session.run(None, feeds)[0]
        return to_pcm(audio, job.options.gain)

    async def async_close(self) -> None:
        """Stop the worker threads and drop the loaded voices; later work is refused."""
        self._closed = True
        while self._waiting:  # nobody will grant them a slot any more
            waiter = self._waiting.popleft()
            if not waiter.granted.done():
                waiter.granted.set_exception(
                    SynthesisError("the engine has been stopped", error="stopped")
                )
        self._waiting_chars = 0
        for executor in (self._executor, self._text_executor):
            if executor is not None:
                await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
        self._executor = self._text_executor = None
        with self._load_lock:
            for voice in self._loaded.values():
                close_session(voice.session)
            self._loaded.clear()
        phonemizer, self._phonemizer = self._phonemizer, None
        if phonemizer is not None and (close := getattr(phonemizer.runner, "close", None)):
            # WebAssembly runners keep an instance (and a thread) per voice.
            await asyncio.get_running_loop().run_in_executor(None, close)


@dataclass(slots=True)
class _Waiter:
    """A request waiting for a slot."""

    granted: asyncio.Future[None]
    cost: int  # characters


class SynthesisJob:
    """One admitted request. Iterate :meth:`stream` once; it releases its slot when done."""

    def __init__(
        self,
        engine: PiperEngine,
        voice: LoadedVoice,
        options: SynthesisOptions,
        speaker_id: int | None,
    ) -> None:
        """Build Piper's synthesis config from the options."""
        self._engine = engine
        self.voice = voice
        self.options = options
        self._released = False
        config = voice.config
        # speed scales the voice's own length_scale (1.0 for most voices: 1 / speed).
        # Loudness (normalization, then gain) is applied by PiperEngine.infer.
        self.length_scale = config.length_scale / options.speed
        self.noise_scale = (
            config.noise_scale if options.noise_scale is None else options.noise_scale
        )
        self.noise_w_scale = (
            config.noise_w_scale if options.noise_w_scale is None else options.noise_w_scale
        )
        if speaker_id is None and config.num_speakers > 1:
            speaker_id = config.default_speaker_id
        self.speaker_id = speaker_id

    @property
    def sample_rate(self) -> int:
        """Sample rate of the PCM this job yields."""
        return self.voice.config.sample_rate

    def release(self) -> None:
        """Give the request slot back (idempotent)."""
        if not self._released:
            self._released = True
            self._engine._release()  # noqa: SLF001 - the engine's own job

    def stream(self, text_chunks: AsyncIterable[str]) -> AsyncGenerator[bytes]:
        """Yield PCM sentence by sentence as text arrives.

        Leading silence comes first (with the first sentence), ``sentence_silence`` after each
        sentence, ``trailing_silence`` after the last one. Stops when the consumer closes the
        generator. The request slot is released when the generator finishes, is closed, or is
        dropped without ever being started.
        """
        agen = self._stream(text_chunks)
        weakref.finalize(agen, self.release)
        return agen

    async def _stream(self, text_chunks: AsyncIterable[str]) -> AsyncGenerator[bytes]:
        engine = self._engine
        buffer = SentenceBuffer()
        received = 0
        lead = silence(self.options.leading_silence, self.sample_rate)
        pause = silence(self.options.sentence_silence, self.sample_rate)
        spoke = False
        blank = True
        try:
            async for chunk in text_chunks:
                received += len(chunk)
                blank = blank and not chunk.strip()
                if received > engine.max_message_chars:
                    raise InvalidMessageError(
                        f"the message is longer than {engine.max_message_chars} characters",
                        length=str(received),
                        max=str(engine.max_message_chars),
                    )
                for sentence in buffer.add(clean_message(chunk)):
                    async for pcm in self._speak(sentence, pause):
                        yield (lead + pcm) if not spoke else pcm
                        spoke = True
            if (rest := buffer.flush()) is not None:
                async for pcm in self._speak(rest, pause):
                    yield (lead + pcm) if not spoke else pcm
                    spoke = True
            if spoke and (tail := silence(self.options.trailing_silence, self.sample_rate)):
                yield tail
            if not spoke and blank:
                raise InvalidMessageError(
                    "the message is empty", length="0", max=str(engine.max_message_chars)
                )
            if not spoke:
                raise NothingToSpeakError("the message has nothing to speak")
        finally:
            self.release()

    async def _speak(self, text: str, pause: bytes) -> AsyncGenerator[bytes]:
        engine = self._engine
        try:
            sentences = await engine._run_text(engine.synthesize_sentences, self, text)  # noqa: SLF001
            for phoneme_ids in sentences:
                pcm = await engine._run(engine.infer, self, phoneme_ids)  # noqa: SLF001
                yield pcm + pause
        except Exception as err:
            raise SynthesisError(f"synthesis failed: {err}", error=str(err)) from err

    async def synthesize(self, message: str) -> bytes:
        """Synthesize a whole message into one PCM buffer."""

        async def one() -> AsyncGenerator[str]:
            yield message

        return b"".join([pcm async for pcm in self.stream(one())])
