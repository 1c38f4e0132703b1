"""Config flow: real voice discovery, real HA flow manager."""

from pathlib import Path

from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts.const import CONF_VOICE, DOMAIN

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
