"""The TTS entity through Home Assistant's own tts component, with real Piper and the joe voice."""

from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .audio import parse_wav

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"
SENTENCE = "Hello from Home Assistant. The washing machine has finished."


async def test_media_source_audio_is_real_speech(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """HA's tts returns a WAV of real speech: 22050 Hz mono 16-bit, loud enough, sane length."""
    extension, data = await tts.async_get_media_source_audio(
        hass,
        tts.generate_media_source_id(
            hass,
            SENTENCE,
            ENTITY_ID,
            "en-US",
            options={tts.ATTR_PREFERRED_FORMAT: "wav"},
            cache=False,
        ),
    )
    assert extension == "wav"
    wav = parse_wav(data)
    assert (wav.sample_rate, wav.channels, wav.sample_width) == (22050, 1, 2)
    assert wav.rms > 0.05
    # About 60 characters of English: 2.5 to 8 seconds of speech.
    assert 2.5 < wav.duration < 8.0
