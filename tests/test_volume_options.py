"""The entry's speaker volume options: the options flow section and its parsing."""

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts.config_flow import SECTION_VOLUME
from custom_components.alicia_tts.options import (
    OffsetsError,
    format_volume_offsets,
    parse_volume_offsets,
    volume_input,
)


def test_parse_and_format_offsets() -> None:
    text = "media_player.kitchen: +5\n\n media_player.play_1 = -10 , media_player.den:0"
    offsets = parse_volume_offsets(text)
    assert offsets == {"media_player.kitchen": 5, "media_player.play_1": -10, "media_player.den": 0}
    assert format_volume_offsets(offsets) == (
        "media_player.kitchen: +5\nmedia_player.play_1: -10\nmedia_player.den: +0"
    )
    assert parse_volume_offsets(format_volume_offsets(offsets)) == offsets
    assert parse_volume_offsets("") == {}


@pytest.mark.parametrize(
    "line", ["kitchen: +5", "media_player.kitchen +5", "media_player.kitchen: +51", "light.x: 1"]
)
def test_parse_offsets_rejects(line: str) -> None:
    with pytest.raises(OffsetsError) as err:
        parse_volume_offsets(f"media_player.ok: 1\n{line}")
    assert err.value.line == line


def test_volume_input() -> None:
    assert volume_input({}) == (
        {"min_volume": 15, "max_volume": 75, "volume_offsets": {}},
        None,
        "",
    )
    assert volume_input({"min_volume": 80.0, "max_volume": 70})[1] == "volume_range"
    assert volume_input({"volume_offsets": "nonsense"})[1:] == (
        "invalid_volume_offsets",
        "nonsense",
    )


async def test_options_flow_speaker_volume(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Limits and offsets are stored flat; bad ones are refused with a translated error."""
    entry = init_integration
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    fields = schema.schema[SECTION_VOLUME].schema.schema
    suggested = {m.schema: (m.description or {}).get("suggested_value") for m in fields}
    assert suggested == {"min_volume": 15, "max_volume": 75, "volume_offsets": ""}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {SECTION_VOLUME: {"min_volume": 60, "max_volume": 50}}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "volume_range"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {SECTION_VOLUME: {"volume_offsets": "media_player.kitchen: loud"}}
    )
    assert result["errors"] == {"base": "invalid_volume_offsets"}
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert placeholders["line"] == "media_player.kitchen: loud"
    assert "min_volume" not in entry.options

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            SECTION_VOLUME: {
                "min_volume": 10,
                "max_volume": 60.0,
                "volume_offsets": "media_player.kitchen: +5\nmedia_player.play_1: -8",
            }
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (entry.options["min_volume"], entry.options["max_volume"]) == (10, 60)
    assert entry.options["volume_offsets"] == {"media_player.kitchen": 5, "media_player.play_1": -8}

    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    fields = schema.schema[SECTION_VOLUME].schema.schema
    suggested = {m.schema: (m.description or {}).get("suggested_value") for m in fields}
    assert suggested["volume_offsets"] == "media_player.kitchen: +5\nmedia_player.play_1: -8"
    assert suggested["max_volume"] == 60
