"""Text-to-speech entity backed by the in-process Piper engine."""

from collections.abc import AsyncGenerator
import logging
from typing import Any, override

from homeassistant.components.tts import TextToSpeechEntity, TtsAudioType, Voice
from homeassistant.components.tts.entity import TTSAudioRequest, TTSAudioResponse
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .audio import wav_header
from .const import DOMAIN, NAME
from .engine import (
    ENGINE_OPTIONS,
    EngineError,
    PiperEngine,
    SynthesisJob,
    parse_options,
)
from .errors import engine_error
from .models import AliciaConfigEntry
from .playback import PLAYBACK_OPTIONS
from .speakers import HA_FORMAT_OPTIONS, async_announce, engine_options_of

_LOGGER = logging.getLogger(__name__)

# The engine bounds its own concurrency (workers, max_requests).
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the TTS entity of an entry."""
    async_add_entities([AliciaTTSEntity(entry)])


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
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=NAME,
            manufacturer=NAME,
            model="Piper (in-process)",
            entry_type=DeviceEntryType.SERVICE,
        )
        default = data.voices.get(data.voice)
        languages = sorted({voice.language for voice in data.voices.values()})
        self._attr_default_language = default.language if default else "en-US"
        if self._attr_default_language not in languages:
            languages.append(self._attr_default_language)
        self._attr_supported_languages = languages
        self._attr_supported_options = [*ENGINE_OPTIONS, *PLAYBACK_OPTIONS]
        self._attr_default_options = {"voice": data.voice}

    @property
    @override
    def available(self) -> bool:
        """Unavailable while the local engine cannot speak."""
        return self._data.engine is not None

    @callback
    @override
    def async_get_supported_voices(self, language: str) -> list[Voice] | None:
        """Voices for a language, with readable names."""
        return [
            Voice(voice.key, voice.display_name)
            for voice in sorted(self._data.voices.values(), key=lambda v: v.key)
            if voice.language == language
        ]

    def _engine(self) -> PiperEngine:
        if (engine := self._data.engine) is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="local_unavailable",
                translation_placeholders={"error": self._data.local_problem or ""},
            )
        return engine

    def _validate(self, message: str | None, options: dict[str, Any]) -> None:
        """Check a request before any audio is made; raise translated errors."""
        engine = self._engine()
        try:
            engine.check_request(message, options, self._data.voice)
        except EngineError as err:
            raise engine_error(err) from err

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
        options = options or {}
        if unknown := sorted(set(options) - set(self.supported_options or []) - HA_FORMAT_OPTIONS):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_option",
                translation_placeholders={"options": ", ".join(unknown)},
            )
        self._validate(message, engine_options_of(options))
        await async_announce(
            self.hass,
            self._entry,
            self.entity_id,
            message,
            options,
            media_player_entity_id,
            wait=False,
            language=language,
            cache=cache,
        )

    async def _async_start(self, options: dict[str, Any]) -> SynthesisJob:
        engine = self._engine()
        try:
            return await engine.async_start(parse_options(options), self._data.voice)
        except EngineError as err:
            raise engine_error(err) from err

    @override
    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> TtsAudioType:
        """Synthesize a whole message into a WAV file."""
        self._validate(message, options)
        job = await self._async_start(options)
        try:
            pcm = await job.synthesize(message)
        except EngineError as err:
            raise engine_error(err) from err
        return "wav", wav_header(job.sample_rate, len(pcm)) + pcm

    @override
    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
        """Stream WAV: the header at once, then each sentence as soon as it is synthesized."""
        job = await self._async_start(request.options)
        pcm_stream = job.stream(request.message_gen)

        async def data_gen() -> AsyncGenerator[bytes]:
            yield wav_header(job.sample_rate)
            try:
                async for pcm in pcm_stream:
                    yield pcm
            except EngineError as err:
                raise engine_error(err) from err
            finally:
                await pcm_stream.aclose()

        return TTSAudioResponse("wav", data_gen())
