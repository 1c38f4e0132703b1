"""Text-to-speech entity backed by the in-process Piper engine."""

from collections.abc import AsyncGenerator
import logging
from typing import Any, override

from homeassistant.components.tts import (
    TextToSpeechEntity,
    TTSAudioRequest,
    TTSAudioResponse,
    TtsAudioType,
    Voice,
)
from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import Context, callback

from .announce import async_announce, async_check_composition
from .chain import ChainExhaustedError, TextTee, describe_error, first_then_rest
from .chime import Composition, around, job_options
from .encoders import wav_header
from .engine import MAX_MESSAGE_CHARS
from .entity import device_info, platform_setup
from .exceptions import InvalidRequestError
from .ha_errors import (
    checked_request,
    engine_failed,
    local_unavailable,
    speech_error,
    translated_error,
)
from .models import AliciaConfigEntry
from .options import CALL_OPTIONS, LOCAL, SynthesisOptions, engine_defaults

_LOGGER = logging.getLogger(__name__)

# The engine bounds its own concurrency (workers, max_requests).
PARALLEL_UPDATES = 0


# The TTS entity of an entry.
async_setup_entry = platform_setup(lambda _hass, entry: [AliciaTTSEntity(entry)])


class AliciaTTSEntity(TextToSpeechEntity):
    """Speech from Piper running inside Home Assistant."""

    _attr_has_entity_name = True

    def __init__(self, entry: AliciaConfigEntry) -> None:
        """Describe the entity from the entry's runtime data."""
        data = entry.runtime_data
        self._entry = entry
        self._data = data
        self._attr_unique_id = entry.entry_id
        # Device "Alicia TTS", entity named after the entry (its voice): tts.alicia_tts_<voice>
        self._attr_name = entry.title
        self._attr_device_info = device_info(entry)
        default = data.voices.get(data.voice)
        languages = sorted({voice.language for voice in data.voices.values()})
        self._attr_default_language = (
            default.language if default else str(entry.data.get(CONF_LANGUAGE, "en-US"))
        )
        if self._attr_default_language not in languages:
            languages.append(self._attr_default_language)
        self._attr_supported_languages = languages
        self._attr_supported_options = list(CALL_OPTIONS)
        # The entry's engine defaults (options flow); HA merges them under each call's options.
        self._attr_default_options = {**engine_defaults(entry.options), "voice": data.voice}

    # Always available while the entry is loaded: Home Assistant skips unavailable entities in
    # tts.speak without a word, so a request no engine can serve must reach async_speak and
    # fail there, with the translated "no engine" error, instead of silently saying nothing.

    async def async_added_to_hass(self) -> None:
        """Let the chain purge HA's tts cache entries of this entity."""
        await super().async_added_to_hass()
        self._data.chain.tts_entity_id = self.entity_id
        self._data.tts_entity = self

    async def async_will_remove_from_hass(self) -> None:
        """The entry's actions no longer speak through this entity."""
        await super().async_will_remove_from_hass()
        if self._data.tts_entity is self:
            self._data.tts_entity = None

    @callback
    @override
    def async_get_supported_voices(self, language: str) -> list[Voice] | None:
        """Voices for a language, with readable names."""
        return [
            Voice(voice.key, voice.display_name)
            for voice in sorted(self._data.voices.values(), key=lambda v: v.key)
            if voice.language == language
        ]

    @override
    async def async_speak(
        self,
        media_player_entity_id: list[str],
        message: str,
        cache: bool,
        language: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Speak on media players: Sonos with volume/mode/group and restore, others via HA."""

        async def speak_others(players: list[str], ha_options: dict[str, Any]) -> None:
            await self.async_speak_others(players, message, ha_options, cache, language)

        await async_announce(
            self.hass,
            self._entry,
            message,
            options or {},
            media_player_entity_id,
            wait=False,
            speak_others=speak_others,
        )

    async def async_speak_others(
        self,
        players: list[str],
        message: str,
        options: dict[str, Any],
        cache: bool = True,
        language: str | None = None,
        context: Context | None = None,
    ) -> None:
        """Players other than Sonos: Home Assistant's own announcement (the base behaviour).

        ``media_player.play_media`` with a tts media-source id of this entity, in the caller's
        context (``context``, or the one Home Assistant set for this entity's service call).
        """
        if context is not None:
            self.async_set_context(context)
        await super().async_speak(players, message, cache, language, options)

    @override
    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> TtsAudioType:
        """Synthesize a whole message (the chain decides the engine and so the format)."""

        async def text() -> AsyncGenerator[str]:
            yield message

        response = await self.async_stream_tts_audio(TTSAudioRequest(language, options, text()))
        data = b"".join([chunk async for chunk in response.data_gen])
        if response.extension == "wav" and data[:4] == b"RIFF" and len(data) >= 44:
            # A whole file: state the real length instead of the streaming form's zeros.
            data = wav_header(int.from_bytes(data[24:28], "little"), len(data) - 44) + data[44:]
        return response.extension, data

    @override
    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
        """Stream speech from the first engine of the chain that produces audio in time.

        Local Piper streams WAV (header, then each sentence as soon as it is synthesized);
        a fallback engine streams in its own format through HA's tts. The text is checked
        before any engine sees it (HA's tts proxy, Assist and ``tts.speak`` all come here).
        """
        data = self._data
        chain = data.chain
        parsed, _ = checked_request(data, None, request.options)
        # Chime and repeat: none unless the call asks (no speaker defaults here).
        composition = await async_check_composition(self.hass, self._entry, parsed)
        limit = data.engine.max_message_chars if data.engine is not None else MAX_MESSAGE_CHARS
        text = TextTee(request.message_gen, limit)
        try:
            await text.async_prefetch()
        except InvalidRequestError as err:
            raise translated_error(err) from err
        timeout = chain.first_audio_timeout

        async def attempt(engine: str) -> tuple[str, bytes, AsyncGenerator[bytes]]:
            if engine == LOCAL:
                chunks = await self._local_chunks(text, parsed.synthesis, composition)
                extension = "wav"
                stalled = data.engine.stalled if data.engine is not None else None
            else:
                extension, chunks = await chain.async_fallback_stream(engine, text.replay())
                stalled = None
            return extension, *await first_then_rest(chunks, timeout, stalled)

        try:
            engine, (extension, first, rest) = await chain.async_first_audio(
                parsed.engine, attempt, lambda: text.text
            )
        except (InvalidRequestError, ChainExhaustedError) as err:
            raise speech_error(data, err) from err
        # The chain counted the text up to the first audio; the relay counts what streams in after.
        counted = text.characters
        return TTSAudioResponse(extension, self._relay(engine, first, rest, text, counted))

    async def _local_chunks(
        self, text: TextTee, synthesis: SynthesisOptions, composition: Composition | None = None
    ) -> AsyncGenerator[bytes]:
        """Local Piper: WAV header together with the first sentence, then each sentence."""
        engine = self._data.engine
        if engine is None:
            raise local_unavailable(self._data)
        job = await engine.async_start(
            job_options(synthesis, composition), self._data.voice, characters=text.characters
        )
        pcm_stream = around(job.stream(text.replay()), composition, synthesis, job.sample_rate)

        async def chunks() -> AsyncGenerator[bytes]:
            header = wav_header(job.sample_rate)
            try:
                async for pcm in pcm_stream:
                    yield header + pcm
                    header = b""
            finally:
                await pcm_stream.aclose()

        return chunks()

    async def _relay(
        self,
        engine: str,
        first: bytes,
        rest: AsyncGenerator[bytes],
        text: TextTee,
        counted: int,
    ) -> AsyncGenerator[bytes]:
        """Pass the chosen engine's audio on; a failure now fails the request cleanly."""
        yield first
        try:
            async for chunk in rest:
                yield chunk
        except InvalidRequestError as err:  # streamed text went over the limit
            raise translated_error(err) from err
        except Exception as err:
            self._data.chain.record_failure(
                engine, f"after first audio: {describe_error(err, text.text)}"
            )
            raise engine_failed(
                engine, err, text.text, self._data.chain.first_audio_timeout
            ) from err
        finally:
            await rest.aclose()
            self._data.chain.add_characters(engine, text.characters - counted)
