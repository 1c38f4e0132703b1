"""Config flow: real voice discovery, real HA flow manager."""

from pathlib import Path
from typing import Any

from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts.config_flow import valid_base_url
from custom_components.alicia_tts.const import (
    CONF_AUDIO_FORMAT,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
)

from .conftest import JOE, form_options, install_voice


async def test_user_flow_packaged_voice(hass: HomeAssistant) -> None:
    """The packaged joe voice is offered and chosen."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    options = form_options(result)
    assert {"value": JOE, "label": "Joe (en-US, medium)"} in options

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_VOICE: JOE})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Joe (en-US, medium)"
    assert result["data"] == {CONF_VOICE: JOE}
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.unique_id == JOE
    assert entry.version == 1


async def test_user_flow_folder_voice(
    hass: HomeAssistant, voices_dir: Path, joe_files: tuple[Path, Path], no_packaged_voice: None
) -> None:
    """A voice dropped into the voices folder is offered."""
    install_voice(voices_dir, "en_GB-alba-low", *joe_files)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    values = [o["value"] for o in form_options(result)]
    assert values == ["en_GB-alba-low"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_VOICE: "en_GB-alba-low"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_VOICE: "en_GB-alba-low"}


async def test_no_voices_aborts(hass: HomeAssistant, no_packaged_voice: None) -> None:
    """Without any voice the flow explains where to put one."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_voices"
    assert (result.get("description_placeholders") or {})["folder"].endswith("alicia_tts/voices")


async def test_already_configured(hass: HomeAssistant) -> None:
    """The same voice cannot be added twice."""
    MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, unique_id=JOE).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_VOICE: JOE})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_voice_removed_while_choosing(
    hass: HomeAssistant, voices_dir: Path, joe_files: tuple[Path, Path]
) -> None:
    """A voice deleted between showing and submitting the form gives an error, then recovers."""
    install_voice(voices_dir, "de_DE-thorsten-medium", *joe_files)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    (voices_dir / "de_DE-thorsten-medium.onnx").unlink()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_VOICE: "de_DE-thorsten-medium"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_VOICE: "unknown_voice"}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_VOICE: JOE})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_options_flow(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Speaker base URL and audio format: bad URL refused, good one saved and applied."""
    entry = init_integration
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"

    for bad in ("ftp://192.168.1.10", "http://192.168.1.10:8123/api", "not a url", "http://"):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_SPEAKER_BASE_URL: bad, CONF_AUDIO_FORMAT: "auto"}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_SPEAKER_BASE_URL: "invalid_url"}, bad

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_SPEAKER_BASE_URL: " http://192.168.1.10:8123/ ", CONF_AUDIO_FORMAT: "wav"},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_SPEAKER_BASE_URL: "http://192.168.1.10:8123",
        CONF_AUDIO_FORMAT: "wav",
        "fallback_engines": [],
        "engine": "local",
        "first_audio_timeout": 8.0,
        "breaker_threshold": 3,
        "breaker_cooldown": 60.0,
    }
    # Saved options reload the entry and take effect.
    assert entry.runtime_data.speaker_url.url == "http://192.168.1.10:8123"
    assert entry.runtime_data.audio_format == "wav"

    # Clearing the URL goes back to HA's own URL.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SPEAKER_BASE_URL: "", CONF_AUDIO_FORMAT: "auto"}
    )
    await hass.async_block_till_done()
    assert entry.options[CONF_AUDIO_FORMAT] == "auto"
    assert CONF_SPEAKER_BASE_URL not in entry.options
    assert entry.runtime_data.speaker_url.url == "http://127.0.0.1:8123"
    assert entry.runtime_data.audio_format == "mp3"


def test_valid_base_url() -> None:
    """Base URLs are http(s) with a host and nothing after it."""
    assert valid_base_url("http://192.168.1.10:8123")
    assert valid_base_url("https://ha.example.com/")
    assert not valid_base_url("http://ha.example.com/?x=1")
    assert not valid_base_url("http://ha.example.com/#top")
    assert not valid_base_url("http://[::1")


async def test_options_fallback_chain(
    hass: HomeAssistant, init_integration: MockConfigEntry, engines: dict[str, Any]
) -> None:
    """The chain is chosen among other TTS entities; our own entity is refused."""
    entry = init_integration
    result = await hass.config_entries.options.async_init(entry.entry_id)
    own = "tts.alicia_tts_joe_en_us_medium"
    schema = result["data_schema"]
    assert schema is not None
    selector = schema.schema["fallback_engines"].config
    assert own in selector["exclude_entities"]
    for bad in ([own], ["light.kitchen"]):
        with pytest.raises(InvalidData):
            await hass.config_entries.options.async_configure(
                result["flow_id"], {"fallback_engines": bad, CONF_AUDIO_FORMAT: "auto"}
            )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "fallback_engines": ["tts.streaming", "tts.working"],
            "engine": "fallback",
            "first_audio_timeout": 3,
            "breaker_threshold": 5,
            "breaker_cooldown": 120,
            CONF_AUDIO_FORMAT: "auto",
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    chain = entry.runtime_data.chain
    assert chain.fallbacks == ["tts.streaming", "tts.working"]
    assert chain.preference == "fallback"
    assert chain.first_audio_timeout == 3
    assert (chain.breaker.threshold, chain.breaker.cooldown) == (5, 120)
