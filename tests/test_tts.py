"""The TTS entity through Home Assistant's own tts component, with real Piper and the joe voice."""

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from homeassistant.components import media_source, tts
from homeassistant.components.tts import DATA_COMPONENT, TTSAudioRequest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.alicia_tts.tts import AliciaTTSEntity

from .audio import Wav, parse_wav
from .conftest import JOE

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"
SENTENCE = "Hello from Home Assistant. The washing machine has finished."


@pytest.fixture(autouse=True)
def kitchen_player(hass: HomeAssistant) -> None:
    """A (non-Sonos) media player to speak on: targets must exist."""
    hass.states.async_set("media_player.kitchen", "idle")


def get_entity(hass: HomeAssistant) -> AliciaTTSEntity:
    """Our entity object as HA's tts component holds it."""
    entity = hass.data[DATA_COMPONENT].get_entity(ENTITY_ID)
    assert isinstance(entity, AliciaTTSEntity)
    return entity


async def media_audio(
    hass: HomeAssistant, message: str, options: dict[str, Any] | None = None
) -> tuple[str, bytes]:
    """Audio for a message through HA's tts media source."""
    return await tts.async_get_media_source_audio(
        hass,
        tts.generate_media_source_id(
            hass,
            message,
            ENTITY_ID,
            "en-US",
            options={tts.ATTR_PREFERRED_FORMAT: "wav", **(options or {})},
            cache=False,
        ),
    )


async def test_media_source_audio_is_real_speech(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """HA's tts returns a WAV of real speech: 22050 Hz mono 16-bit, loud enough, sane length."""
    extension, data = await media_audio(hass, SENTENCE)
    assert extension == "wav"
    wav = parse_wav(data)
    assert (wav.sample_rate, wav.channels, wav.sample_width) == (22050, 1, 2)
    assert wav.rms > 0.05
    # About 60 characters of English: 2.5 to 8 seconds of speech.
    assert 2.5 < wav.duration < 8.0


async def test_mp3_through_ffmpeg(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """HA's default speaker format (MP3, converted by the real ffmpeg) works too."""
    extension, data = await tts.async_get_media_source_audio(
        hass, tts.generate_media_source_id(hass, SENTENCE, ENTITY_ID, "en-US", cache=False)
    )
    assert extension == "mp3"
    assert data[:3] == b"ID3" or data[:2] == b"\xff\xfb"
    assert len(data) > 10_000


async def test_entity_description(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Languages, voices and options come from the installed voices and options.md."""
    entity = get_entity(hass)
    assert entity.supported_languages == ["en-US"]
    assert entity.default_language == "en-US"
    assert entity.default_options == {"voice": JOE}
    assert set(entity.supported_options or []) == {
        "voice",
        "speaker",
        "speed",
        "noise_scale",
        "noise_w_scale",
        "gain",
        "sentence_silence",
        "leading_silence",
        "trailing_silence",
        "volume",
        "mode",
        "group",
        "priority",
        "interrupt",
        "chime",
        "chime_after",
        "repeat",
        "repeat_gap",
        "engine",
    }
    voices = entity.async_get_supported_voices("en-US")
    assert voices is not None
    assert [(v.voice_id, v.name) for v in voices] == [(JOE, "Joe (en-US, medium)")]
    assert entity.async_get_supported_voices("de-DE") == []


async def test_speak_with_options_changes_speech(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """tts.speak with speed and gain: the audio the player gets is shorter and louder."""
    calls = async_mock_service(hass, "media_player", "play_media")

    async def spoken(options: dict[str, Any] | None) -> Wav:
        data: dict[str, Any] = {
            "entity_id": ENTITY_ID,
            "media_player_entity_id": "media_player.kitchen",
            "message": SENTENCE,
            "cache": False,
        }
        if options is not None:
            data["options"] = {**options, tts.ATTR_PREFERRED_FORMAT: "wav"}
        await hass.services.async_call("tts", "speak", data, blocking=True)
        media_id = calls[-1].data["media_content_id"]
        assert calls[-1].data["announce"] is True
        resolved = await media_source.async_resolve_media(hass, media_id, None)
        assert resolved.url.startswith("/api/tts_proxy/")
        _, audio = await tts.async_get_media_source_audio(hass, media_id)
        return parse_wav(audio)

    # No duration noise, so the lengths compare exactly (1/1.3 of the phonemes' time; the
    # model's fixed edges keep the measured ratio near 0.84).
    plain = await spoken({"noise_w_scale": 0.0})
    tuned = await spoken({"noise_w_scale": 0.0, "speed": 1.3, "gain": 1.5})
    assert tuned.duration < plain.duration * 0.9
    assert tuned.rms > plain.rms * 1.2


@pytest.mark.parametrize(
    ("message", "options", "key"),
    [
        (SENTENCE, {"speed": 9}, "invalid_option"),
        (SENTENCE, {"gain": "loud"}, "invalid_option"),
        ("x" * 5001, {}, "invalid_message"),
        (SENTENCE, {"voice": "xx_XX-none-low"}, "unknown_voice"),
        (SENTENCE, {"speaker": "1"}, "unknown_speaker"),
    ],
)
async def test_speak_rejects_bad_input(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    message: str,
    options: dict[str, Any],
    key: str,
) -> None:
    """Bad values are refused at tts.speak with a translated error, and nothing is played."""
    calls = async_mock_service(hass, "media_player", "play_media")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": ENTITY_ID,
                "media_player_entity_id": "media_player.kitchen",
                "message": message,
                "options": options,
            },
            blocking=True,
        )
    assert err.value.translation_domain == "alicia_tts"
    assert err.value.translation_key == key
    assert calls == []


async def test_unknown_option_rejected(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Unknown option keys: tts.speak refuses them (we check), and so does HA's media source."""
    calls = async_mock_service(hass, "media_player", "play_media")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": ENTITY_ID,
                "media_player_entity_id": "media_player.kitchen",
                "message": SENTENCE,
                "options": {"pitch": 2, "speed": 1.1},
            },
            blocking=True,
        )
    assert err.value.translation_key == "unknown_option"
    assert err.value.translation_placeholders == {"options": "pitch"}
    assert calls == []
    with pytest.raises(HomeAssistantError, match="Invalid options found"):
        tts.generate_media_source_id(hass, SENTENCE, ENTITY_ID, "en-US", options={"pitch": 2})


async def test_stream_first_audio_before_last_text(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Streaming text in: the first audio chunk leaves before the last text chunk is sent."""
    events: list[str] = []
    first_audio = asyncio.Event()

    async def message_gen() -> AsyncGenerator[str]:
        for chunk in ("The front door ", "is open. ", "The back door is "):
            events.append("text")
            yield chunk
        # Hold the last piece back until audio has come out (a chat model still typing).
        await asyncio.wait_for(first_audio.wait(), timeout=30)
        events.append("last-text")
        yield "closed."

    stream = tts.async_create_stream(
        hass, ENTITY_ID, "en-US", options={tts.ATTR_PREFERRED_FORMAT: "wav"}
    )
    stream.async_set_message_stream(message_gen())
    chunks: list[bytes] = []
    async for chunk in stream.async_stream_result():
        chunks.append(chunk)
        if sum(map(len, chunks)) > 44:  # the header and the first sentence's PCM
            events.append("audio")
            first_audio.set()
    assert events.index("audio") < events.index("last-text")
    wav = parse_wav(b"".join(chunks))
    assert wav.rms > 0.05
    assert wav.duration > 2.0


async def test_direct_get_tts_audio(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The non-streaming API returns one complete WAV with correct sizes."""
    entity = get_entity(hass)
    extension, data = await entity.async_get_tts_audio(SENTENCE, "en-US", {"speed": 1.2})
    assert extension == "wav"
    assert data is not None
    assert int.from_bytes(data[40:44], "little") == len(data) - 44
    assert parse_wav(data).rms > 0.05
    with pytest.raises(ServiceValidationError):
        await entity.async_get_tts_audio("", "en-US", {})


async def test_busy_engine(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """A request past the engine's bound gets a clear 'busy' error."""
    engine = init_integration.runtime_data.engine
    assert engine is not None
    engine.max_requests = 0
    with pytest.raises(HomeAssistantError) as err:
        await get_entity(hass).async_get_tts_audio(SENTENCE, "en-US", {})
    assert err.value.translation_key == "engine_busy"
    assert not isinstance(err.value, ServiceValidationError)


async def test_stream_error_is_translated(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """An engine error while streaming reaches HA as a translated HomeAssistantError."""
    entity = get_entity(hass)

    async def empty() -> AsyncGenerator[str]:
        yield "   "

    with pytest.raises(ServiceValidationError) as err:
        await entity.async_stream_tts_audio(
            TTSAudioRequest(language="en-US", options={}, message_gen=empty())
        )
    assert err.value.translation_key == "invalid_message"


async def test_unavailable_engine_errors(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """With the local engine gone, requests fail with 'local engine unavailable'."""
    entity = get_entity(hass)
    engine = init_integration.runtime_data.engine
    init_integration.runtime_data.engine = None
    try:
        with pytest.raises(HomeAssistantError) as err:
            await entity.async_get_tts_audio(SENTENCE, "en-US", {})
        assert err.value.translation_key == "local_unavailable"
    finally:
        init_integration.runtime_data.engine = engine
