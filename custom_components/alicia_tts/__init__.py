"""Alicia TTS: private, offline-capable speech for Home Assistant, spoken by in-process Piper."""

import logging
from pathlib import Path

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.typing import ConfigType
from homeassistant.requirements import RequirementsNotFound, async_process_requirements

from .audio import MP3_REQUIREMENT, mp3_available
from .const import (
    CONF_AUDIO_FORMAT,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
    ISSUE_PIPER_UNAVAILABLE,
    PIPER_REQUIREMENT,
    VOICES_DIR,
)
from .delivery import async_get_store, async_update_url_issue, speaker_base_url
from .engine import EngineError, PiperEngine, PiperUnavailableError, import_piper
from .models import AliciaConfigEntry, AliciaData
from .services import async_setup_services
from .voices import discover_voices

_LOGGER = logging.getLogger(__name__)

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS: list[Platform] = [Platform.TTS]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the service actions (once, for all entries)."""
    async_setup_services(hass)
    return True


async def async_ensure_piper(hass: HomeAssistant) -> str | None:
    """Install piper-tts if needed and import it; return why it is unusable, or None."""
    try:
        await async_process_requirements(hass, DOMAIN, [PIPER_REQUIREMENT])
        await hass.async_add_executor_job(import_piper)
    except (RequirementsNotFound, PiperUnavailableError) as err:
        ir.async_create_issue(
            hass,
            DOMAIN,
            ISSUE_PIPER_UNAVAILABLE,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_PIPER_UNAVAILABLE,
            translation_placeholders={"requirement": PIPER_REQUIREMENT, "error": str(err)},
        )
        _LOGGER.warning("Local Piper engine unavailable: %s", err)
        return str(err)
    ir.async_delete_issue(hass, DOMAIN, ISSUE_PIPER_UNAVAILABLE)
    return None


async def async_audio_format(hass: HomeAssistant, preferred: str | None) -> str:
    """The format speakers get: MP3 encoded in-process when possible, else streamed WAV.

    ``lameenc`` (LAME) has glibc wheels only, like piper-tts, so it is installed next to it at
    setup rather than listed in the manifest. A user's explicit choice wins.
    """
    if preferred == "wav":
        return "wav"
    try:
        await async_process_requirements(hass, DOMAIN, [MP3_REQUIREMENT])
    except RequirementsNotFound as err:
        _LOGGER.info("MP3 encoder unavailable, speakers get WAV: %s", err)
        return "wav"
    return "mp3" if await hass.async_add_executor_job(mp3_available) else "wav"


async def async_setup_entry(hass: HomeAssistant, entry: AliciaConfigEntry) -> bool:
    """Set up Alicia TTS from a config entry."""
    voice = entry.data[CONF_VOICE]
    voices = await hass.async_add_executor_job(discover_voices, Path(hass.config.path(VOICES_DIR)))
    data = AliciaData(voice=voice, voices=voices)
    async_get_store(hass)
    data.speaker_url = speaker_base_url(hass, entry.options.get(CONF_SPEAKER_BASE_URL))
    async_update_url_issue(hass, data.speaker_url)
    data.local_problem = await async_ensure_piper(hass)
    if data.local_problem is None:
        data.audio_format = await async_audio_format(hass, entry.options.get(CONF_AUDIO_FORMAT))
    if data.local_problem is None:
        engine = PiperEngine(voices)
        try:
            await engine.async_load_voice(voice)
        except EngineError as err:
            _LOGGER.error("Voice %s cannot be used: %s", voice, err)
            data.local_problem = str(err)
            await engine.async_close()
        else:
            data.engine = engine
    entry.runtime_data = data
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: AliciaConfigEntry) -> bool:
    """Unload a config entry and stop its engine."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        async_get_store(hass).remove_owner(entry.entry_id)
        if (engine := entry.runtime_data.engine) is not None:
            await engine.async_close()
    return unloaded


async def async_migrate_entry(hass: HomeAssistant, entry: AliciaConfigEntry) -> bool:
    """Migrate an entry to the current version (1.1 is the first; later versions add steps).

    HA itself refuses entries of a newer major version, and calls this only for older ones.
    """
    return entry.version == 1
