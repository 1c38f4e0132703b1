"""Entry defaults for the engine options: precedence, the TTS entity, the services."""

from typing import Any
from unittest.mock import patch

from homeassistant.components.tts.const import DATA_COMPONENT
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts import services
from custom_components.alicia_tts.const import CONF_VOICE, DOMAIN
from custom_components.alicia_tts.defaults import engine_defaults, with_engine_defaults
from custom_components.alicia_tts.delivery import async_create_audio
from custom_components.alicia_tts.engine import SynthesisOptions

from .conftest import JOE

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"


def test_engine_defaults_only_engine_keys() -> None:
    """Only the six engine options are defaults; empty ones are not."""
    options = {"speed": 2, "gain": None, "audio_format": "wav", "leading_silence": "0.2"}
    assert engine_defaults(options) == {"speed": 2.0, "leading_silence": 0.2}


def test_precedence() -> None:
    """Call beats entry default beats the path's built-in default (speakers' 0.5 s)."""
    speaker = {"leading_silence": 0.5}
    assert with_engine_defaults({}, {}, speaker) == {"leading_silence": 0.5}
    assert with_engine_defaults({"leading_silence": 0.0}, {}, speaker) == {"leading_silence": 0.0}
    assert with_engine_defaults(
        {"leading_silence": 0.0, "speed": 1.5}, {"leading_silence": 1.0}, speaker
    ) == {"leading_silence": 1.0, "speed": 1.5}
    assert with_engine_defaults({"speed": 1.5}, {"message": "x"}) == {
        "speed": 1.5,
        "message": "x",
    }


async def setup_entry(hass: HomeAssistant, **options: Any) -> MockConfigEntry:
    """The joe entry with the given options."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Joe (en-US, medium)",
        data={CONF_VOICE: JOE},
        unique_id=JOE,
        options=options,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_entity_default_options(hass: HomeAssistant, setup_ha: None) -> None:
    """HA's tts merges the entry's defaults under every call's options."""
    await setup_entry(hass, speed=1.5, sentence_silence=0.3, audio_format="wav")
    entity = hass.data[DATA_COMPONENT].get_entity(ENTITY_ID)
    assert entity is not None
    assert entity.default_options == {"speed": 1.5, "sentence_silence": 0.3, "voice": JOE}


async def test_audio_url_uses_defaults(hass: HomeAssistant, setup_ha: None) -> None:
    """alicia_tts.audio_url synthesizes with the entry's defaults unless the call says else."""
    await setup_entry(hass, speed=1.5, gain=2.0)
    seen: list[SynthesisOptions] = []
    real = async_create_audio

    async def spy(*args: Any) -> Any:
        seen.append(args[3])
        return await real(*args)

    with patch.object(services, "async_create_audio", spy):
        for call in ({}, {"speed": 0.8}):
            await hass.services.async_call(
                DOMAIN,
                "audio_url",
                {"message": "Hello.", **call},
                blocking=True,
                return_response=True,
            )
    assert [(o.speed, o.gain) for o in seen] == [(1.5, 2.0), (0.8, 2.0)]
