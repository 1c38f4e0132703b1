"""Entry migration 1.1 -> 1.2 (the voice's language is stored), through HA's real setup."""

from pathlib import Path

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts.const import CONF_VOICE, DOMAIN

from .conftest import JOE, install_voice


async def test_setup_migrates_foundation_entry(hass: HomeAssistant, setup_ha: None) -> None:
    """A 1.1 entry ({voice}) is migrated at setup: the installed voice tells its language."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="Joe", data={CONF_VOICE: JOE}, unique_id=JOE, version=1
    )
    entry.add_to_hass(hass)
    assert entry.minor_version == 1
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (1, 2)
    assert entry.data == {CONF_VOICE: JOE, CONF_LANGUAGE: "en-US"}


@pytest.mark.parametrize(
    ("voice", "language"),
    [
        ("de_DE-thorsten-medium", "de-DE"),  # not installed: from the catalogue
        ("fr_FR-nobody-low", "fr-FR"),  # in no catalogue: from the key
        ("my-own-voice", "en-US"),  # nothing to go by
    ],
)
async def test_migrate_language_sources(
    hass: HomeAssistant, setup_ha: None, voice: str, language: str
) -> None:
    """Without the voice installed the catalogue, then the key decide the language."""
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: voice}, version=1)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.data[CONF_LANGUAGE] == language
    assert entry.minor_version == 2


async def test_migrate_reads_the_voice_config(
    hass: HomeAssistant, setup_ha: None, voices_dir: Path, joe_files: tuple[Path, Path]
) -> None:
    """An installed voice's own config wins over its key."""
    install_voice(voices_dir, "de_DE-fake-low", *joe_files)  # joe's config: en_US
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: "de_DE-fake-low"}, version=1)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.data[CONF_LANGUAGE] == "en-US"
    assert entry.minor_version == 2


async def test_migrate_other_versions(hass: HomeAssistant, setup_ha: None) -> None:
    """1.2 is left alone; another major version cannot be migrated."""
    current = MockConfigEntry(
        domain=DOMAIN, data={CONF_VOICE: JOE, CONF_LANGUAGE: "en-GB"}, minor_version=2
    )
    current.add_to_hass(hass)
    assert await hass.config_entries.async_setup(current.entry_id)
    await hass.async_block_till_done()
    assert current.data[CONF_LANGUAGE] == "en-GB"
    assert (current.version, current.minor_version) == (1, 2)
    future = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, version=2)
    future.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(future.entry_id)
    assert future.state is ConfigEntryState.MIGRATION_ERROR


async def test_missing_voice_keeps_entry_language(hass: HomeAssistant, setup_ha: None) -> None:
    """While the voice files are missing, the entity still speaks the entry's language."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Thorsten",
        data={CONF_VOICE: "de_DE-gone-low", CONF_LANGUAGE: "de-DE"},
        unique_id="de_DE-gone-low",
        minor_version=2,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    from homeassistant.components.tts import DATA_COMPONENT

    entity = hass.data[DATA_COMPONENT].get_entity("tts.alicia_tts_thorsten")
    assert entity is not None
    assert entity.default_language == "de-DE"
    assert "de-DE" in (entity.supported_languages or [])
