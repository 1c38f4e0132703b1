"""In-process Piper engine. Pure: imports nothing from Home Assistant.

What it does:
- loads Piper voices (ONNX model + JSON config) and keeps a small LRU of loaded voices; one
  loaded voice is shared by every request that uses it;
- synthesizes sentence by sentence, honouring the engine options of ``shared/docs/options.md``
  (``voice``, ``speaker``, ``speed``, ``noise_scale``, ``noise_w_scale``, ``gain``,
  ``sentence_silence``, ``leading_silence``);
- bounds the work: ``workers`` threads of its own run the ONNX inference (CPU-bound), and at most
  ``max_requests`` requests may be in flight; one more is rejected at once with
  :class:`EngineBusyError` instead of piling up. A request never runs ahead of its consumer by
  more than one sentence, so memory stays bounded, and a consumer that goes away stops it.

A voice is its config (``voice_model.py``), the engine's one espeak-ng phonemizer
(``phonemes.py``; serialized: espeak-ng is global state) and an inference session of the chosen
backend (``backends.py``: onnxruntime, or the numpy engine on musl). By default one worker runs
the inferences, sentence by sentence in arrival order, each on every core (the backend's own
threads); with more workers, inferences run in parallel.
"""

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import logging
import os
import re
import threading
from typing import Any, Final
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
from .phonemes import Phonemizer, phonemes_to_ids
from .typed_errors import TranslatedError
from .voice_model import TEXT, VoiceConfig, VoiceConfigError, model_inputs, text_phonemes, to_pcm
from .voices import VoiceInfo

_LOGGER = logging.getLogger(__name__)

SAMPLE_WIDTH: Final = 2  # Piper produces 16-bit mono PCM
CHANNELS: Final = 1

# Documented maximum message length (characters) for one request.
MAX_MESSAGE_CHARS: Final = 5000

# Engine options (shared/docs/options.md) with their allowed ranges.
OPTION_RANGES: Final[dict[str, tuple[float, float]]] = {
    "speed": (0.25, 4.0),
    "noise_scale": (0.0, 1.5),
    "noise_w_scale": (0.0, 1.5),
    "gain": (0.1, 4.0),
    "sentence_silence": (0.0, 2.0),
    "leading_silence": (0.0, 2.0),
}
ENGINE_OPTIONS: Final[tuple[str, ...]] = ("voice", "speaker", *OPTION_RANGES)


class EngineError(TranslatedError):
    """Base of the engine's typed errors."""

    translation_key = "engine_error"


class InvalidRequestError(EngineError):
    """The caller asked for something impossible: nothing was synthesized."""


class PiperUnavailableError(EngineError):
    """No inference backend or no espeak-ng phonemizer can run on this platform."""

    translation_key = "piper_unavailable"


class UnknownVoiceError(InvalidRequestError):
    """The requested voice is not installed."""

    translation_key = "unknown_voice"


class UnknownSpeakerError(InvalidRequestError):
    """The requested speaker is not a speaker of the voice."""

    translation_key = "unknown_speaker"


class InvalidOptionError(InvalidRequestError):
    """An option has a wrong type or is out of its range."""

    translation_key = "invalid_option"


class InvalidMessageError(InvalidRequestError):
    """The message is empty or longer than the documented maximum."""

    translation_key = "invalid_message"


class VoiceLoadError(EngineError):
    """The voice files exist but cannot be loaded (corrupt or incompatible model)."""

    translation_key = "voice_load_failed"


class EngineBusyError(EngineError):
    """Too many requests in flight: rejected at once."""

    translation_key = "engine_busy"


class SynthesisError(EngineError):
    """Piper failed while synthesizing."""

    translation_key = "synthesis_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthesisOptions:
    """Validated engine options for one request."""

    voice: str | None = None
    speaker: str | None = None
    speed: float = 1.0
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    gain: float = 1.0
    sentence_silence: float = 0.0
    leading_silence: float = 0.0


def parse_options(options: Mapping[str, Any]) -> SynthesisOptions:
    """Validate the engine options in ``options``; other keys (playback, HA's) are ignored."""
    values: dict[str, Any] = {}
    for key, (low, high) in OPTION_RANGES.items():
        raw = options.get(key)
        if raw is None:
            continue
        if isinstance(raw, bool):
            raise InvalidOptionError(
                f"{key} must be a number", option=key, value=str(raw), min=str(low), max=str(high)
            )
        try:
            value = float(raw)
        except TypeError, ValueError:
            raise InvalidOptionError(
                f"{key} must be a number", option=key, value=str(raw), min=str(low), max=str(high)
            ) from None
        if not low <= value <= high:
            raise InvalidOptionError(
                f"{key}={value} is outside {low}..{high}",
                option=key,
                value=str(raw),
                min=str(low),
                max=str(high),
            )
        values[key] = value
    for key in ("voice", "speaker"):
        raw = options.get(key)
        if raw is None or raw == "":
            continue
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise InvalidOptionError(
                f"{key} must be a name", option=key, value=str(raw), min="", max=""
            )
        values[key] = str(raw)
    return SynthesisOptions(**values)


def validate_message(message: str, max_chars: int = MAX_MESSAGE_CHARS) -> None:
    """Reject empty and too-long messages."""
    if not message.strip():
        raise InvalidMessageError("the message is empty", length="0", max=str(max_chars))
    if len(message) > max_chars:
        raise InvalidMessageError(
            f"the message has {len(message)} characters, more than {max_chars}",
            length=str(len(message)),
            max=str(max_chars),
        )


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


class SentenceBuffer:
    """Collects streamed text and hands out complete sentences as soon as they end."""

    def __init__(self) -> None:
        """Start empty."""
        self._pending = ""

    def add(self, text: str) -> list[str]:
        """Add text; return the sentences it completed."""
        self._pending += text
        sentences: list[str] = []
        start = 0
        for match in _SENTENCE_END.finditer(self._pending):
            sentence = self._pending[start : match.end()].strip()
            if sentence:
                sentences.append(sentence)
            start = match.end()
        self._pending = self._pending[start:]
        return sentences

    def flush(self) -> str | None:
        """Return what is left (the last, unterminated sentence)."""
        rest, self._pending = self._pending.strip(), ""
        return rest or None


def split_sentences(text: str) -> list[str]:
    """Split a whole message into sentences (same rules as streamed text)."""
    buffer = SentenceBuffer()
    sentences = buffer.add(text)
    if (rest := buffer.flush()) is not None:
        sentences.append(rest)
    return sentences


def silence(seconds: float, sample_rate: int) -> bytes:
    """PCM silence of the given length."""
    return bytes(round(seconds * sample_rate) * SAMPLE_WIDTH * CHANNELS)


def default_workers() -> int:
    """Inference threads: one, whose inferences use every core (ONNX Runtime's intra-op threads).

    Measured with script/bench: one request at a time is answered about 1.5x faster than with
    two single-threaded workers (it matches Piper's own ``PiperVoice.load`` set-up), at about the
    same throughput when requests overlap.
    """
    return 1


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
        max_requests: int = 8,
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
        self.workers = workers or default_workers()
        self.threads_per_inference = threads_per_inference or max(
            1, (os.cpu_count() or 1) // self.workers
        )
        self.max_requests = max(1, max_requests)
        self.max_message_chars = max_message_chars
        self._loaded: OrderedDict[str, LoadedVoice] = OrderedDict()
        self._load_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._active = 0
        self.rejected = 0

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

    def check_request(
        self, message: str | None, options: Mapping[str, Any], default_voice: str
    ) -> SynthesisOptions:
        """Validate a request (message, options, voice, speaker) without synthesizing."""
        parsed = parse_options(options)
        if message is not None:
            validate_message(message, self.max_message_chars)
        resolve_speaker_id(parsed.speaker, self.voice_info(parsed.voice or default_voice))
        return parsed

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

    async def _run[T](self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor_or_start(), func, *args)

    @property
    def active_requests(self) -> int:
        """Requests admitted and not yet finished."""
        return self._active

    async def async_start(self, options: SynthesisOptions, default_voice: str) -> SynthesisJob:
        """Admit a request and prepare its voice; raises at once when it cannot be served."""
        key = options.voice or default_voice
        info = self.voice_info(key)
        speaker_id = resolve_speaker_id(options.speaker, info)
        if self._active >= self.max_requests:
            self.rejected += 1
            raise EngineBusyError(
                f"{self._active} requests in flight (maximum {self.max_requests})",
                max=str(self.max_requests),
            )
        self._active += 1
        try:
            voice = await self.async_load_voice(key)
        except BaseException:
            self._active -= 1
            raise
        return SynthesisJob(self, voice, options, speaker_id)

    def _release(self) -> None:
        self._active -= 1

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
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
        with self._load_lock:
            for voice in self._loaded.values():
                close_session(voice.session)
            self._loaded.clear()


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
        sentence. Stops when the consumer closes the generator. The request slot is released
        when the generator finishes, is closed, or is dropped without ever being started.
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
        try:
            async for chunk in text_chunks:
                received += len(chunk)
                if received > engine.max_message_chars:
                    raise InvalidMessageError(
                        f"the message is longer than {engine.max_message_chars} characters",
                        length=str(received),
                        max=str(engine.max_message_chars),
                    )
                for sentence in buffer.add(chunk):
                    async for pcm in self._speak(sentence, pause):
                        yield (lead + pcm) if not spoke else pcm
                        spoke = True
            if (rest := buffer.flush()) is not None:
                async for pcm in self._speak(rest, pause):
                    yield (lead + pcm) if not spoke else pcm
                    spoke = True
            if not spoke:
                raise InvalidMessageError("the message is empty", length="0", max="")
        finally:
            self.release()

    async def _speak(self, text: str, pause: bytes) -> AsyncGenerator[bytes]:
        engine = self._engine
        try:
            sentences = await engine._run(engine.synthesize_sentences, self, text)  # noqa: SLF001
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
