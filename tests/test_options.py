"""The options of a call: parsing once, precedence of defaults, the TTS entity, the services."""

from typing import Any
from unittest.mock import patch

from homeassistant.components.tts import DATA_COMPONENT
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts import services
from custom_components.alicia_tts.const import CONF_VOICE, DOMAIN
from custom_components.alicia_tts.exceptions import (
    InvalidOptionError,
    InvalidPlaybackOptionError,
    UnknownOptionError,
)
from custom_components.alicia_tts.options import (
    BUILTIN,
    SPEAKER_LEADING_SILENCE,
    SPEAKER_TRAILING_SILENCE,
    SynthesisOptions,
    engine_defaults,
    parse_request,
)
from custom_components.alicia_tts.production import async_create_audio

from .conftest import JOE

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"


def test_engine_defaults_only_engine_keys() -> None:
    """Only the six engine options are defaults; empty ones are not."""
    options = {"speed": 2, "gain": None, "audio_format": "wav", "leading_silence": "0.2"}
    assert engine_defaults(options) == {"speed": 2.0, "leading_silence": 0.2}


def test_precedence() -> None:
    """Call beats entry default beats the path's built-in default (speakers' 0.5 s, chime)."""

    def lead(entry: dict[str, Any], call: dict[str, Any]) -> float:
        return parse_request(call, entry, speakers=True).synthesis.leading_silence

    assert lead({}, {}) == SPEAKER_LEADING_SILENCE
    assert lead({"leading_silence": 0.0}, {}) == 0.0
    assert lead({"leading_silence": 0.0}, {"leading_silence": 1.0}) == 1.0
    request = parse_request({"leading_silence": 1.0}, {"speed": 1.5}, speakers=True)
    assert (request.synthesis.leading_silence, request.synthesis.speed) == (1.0, 1.5)
    assert request.synthesis.trailing_silence == SPEAKER_TRAILING_SILENCE
    assert parse_request({}, {"speed": 1.5}).synthesis == SynthesisOptions(speed=1.5)
    assert parse_request({"speed": 2}).synthesis == SynthesisOptions(speed=2.0)
    # Chimes: the speakers' path chimes by default, the entry may turn that off, the call decides.
    assert parse_request({}, {}, speakers=True).audio.chime == BUILTIN
    assert parse_request({}, {"chime": False}, speakers=True).audio.chime is None
    assert parse_request({"chime": "on"}, {"chime": False}, speakers=True).audio.chime == BUILTIN
    assert parse_request({}, {"chime": True}).audio.chime is None  # plain TTS: only when asked
    assert parse_request({}, {}, speakers=True).audio.chime_after is None


def test_parse_request_refuses_unknown_keys_and_engines() -> None:
    """Unknown keys are named (HA's format hints are not unknown); ``engine`` is checked."""
    with pytest.raises(UnknownOptionError) as err:
        parse_request({"speeed": 1, "preferred_format": "mp3", "zzz": None})
    assert err.value.placeholders == {"options": "speeed, zzz"}
    with pytest.raises(InvalidPlaybackOptionError) as bad:
        parse_request({"engine": "cloud"})
    assert bad.value.placeholders["option"] == "engine"
    assert parse_request({"engine": "fallback"}).engine == "fallback"
    assert parse_request({"engine": None}).engine is None
    with pytest.raises(InvalidOptionError):
        parse_request({"speed": "fast"})
    request = parse_request({"volume": "+5", "repeat": 2, "group": "true"}, speakers=True)
    assert (request.playback.volume_change, request.playback.group) == (5, True)
    assert request.audio.repeat == 2


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

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[3])
        return await real(*args, **kwargs)

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
