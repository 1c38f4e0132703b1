"""Alicia TTS: private, offline-capable speech for Home Assistant, spoken by in-process Piper."""

from functools import partial
import logging
from pathlib import Path

from homeassistant.const import CONF_LANGUAGE, EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import (
    config_validation as cv,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.helpers.typing import ConfigType
from homeassistant.requirements import RequirementsNotFound, async_process_requirements

from .catalog import CACHED_CATALOG, CatalogVoice, load_catalog, voice_language
from .chain import PROBE_TEXT, CircuitBreaker, EngineChain
from .const import (
    CONF_AUDIO_FORMAT,
    CONF_BACKEND,
    CONF_BREAKER_COOLDOWN,
    CONF_BREAKER_THRESHOLD,
    CONF_ENGINE,
    CONF_FALLBACK_ENGINES,
    CONF_FIRST_AUDIO_TIMEOUT,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_FIRST_AUDIO_TIMEOUT,
    DOMAIN,
    ISSUE_FALLBACK_MISSING,
    ISSUE_PIPER_UNAVAILABLE,
    ISSUE_VOICE_MISSING,
    VOICES_DIR,
)
from .delivery import async_get_store, async_update_url_issue, speaker_base_url
from .download import remove_stale_parts
from .encoders import MP3_REQUIREMENT, mp3_available
from .engine import PiperEngine, PiperUnavailableError
from .engine_pool import async_acquire_engine, async_release_engine
from .espeak_setup import async_setup_espeak
from .exceptions import EngineError
from .local_stack import async_install_local
from .measurements import async_setup_device_check
from .models import AliciaConfigEntry, AliciaData
from .options import LOCAL, SynthesisOptions
from .services import async_setup_services
from .voices import VoiceInfo, discover_voices

_LOGGER = logging.getLogger(__name__)

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
# Repair issue: the entry's voice is on disk but cannot be loaded.
ISSUE_VOICE_UNUSABLE = "voice_unusable"
PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.SENSOR,
    Platform.TTS,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the service actions (once, for all entries)."""
    async_setup_services(hass)
    return True


def piper_unavailable_issue(hass: HomeAssistant, error: str) -> None:
    """Raise the repair issue that says why local Piper cannot speak."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_PIPER_UNAVAILABLE,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_PIPER_UNAVAILABLE,
        translation_placeholders={"error": error},
    )
    _LOGGER.warning("Local Piper engine unavailable: %s", error)


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


async def async_load_local_engine(
    hass: HomeAssistant,
    voice: str,
    voices: dict[str, VoiceInfo],
    backend: str | None = None,
    *,
    user: str,
) -> tuple[PiperEngine | None, str | None]:
    """The shared engine with the entry's voice loaded, or why there is none (issues raised).

    ``user`` (the entry id) holds the engine until :func:`async_release_engine`.
    """
    install_problems = await async_install_local(hass, backend)
    if voice not in voices:
        ir.async_create_issue(
            hass,
            DOMAIN,
            f"{ISSUE_VOICE_MISSING}_{voice}",
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_VOICE_MISSING,
            translation_placeholders={"voice": voice, "folder": hass.config.path(VOICES_DIR)},
        )
        _LOGGER.error("Voice %s is not installed", voice)
        return None, f"voice {voice} is not installed"
    ir.async_delete_issue(hass, DOMAIN, f"{ISSUE_VOICE_MISSING}_{voice}")
    engine = await async_acquire_engine(hass, user, voices, backend)
    try:
        await engine.async_load_voice(voice)
    except PiperUnavailableError as err:
        await async_release_engine(hass, user, engine)
        problem = "; ".join([*install_problems, str(err)])
        piper_unavailable_issue(hass, problem)
        return None, problem
    except EngineError as err:
        _LOGGER.error("Voice %s cannot be used: %s", voice, err)
        await async_release_engine(hass, user, engine)
        _voice_unusable_issue(hass, voice, str(err))
        return None, str(err)
    ir.async_delete_issue(hass, DOMAIN, ISSUE_PIPER_UNAVAILABLE)
    ir.async_delete_issue(hass, DOMAIN, f"{ISSUE_VOICE_UNUSABLE}_{voice}")
    return engine, None


def _voice_unusable_issue(hass: HomeAssistant, voice: str, error: str) -> None:
    """The voice's files exist but cannot be loaded (corrupt, truncated, incompatible)."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"{ISSUE_VOICE_UNUSABLE}_{voice}",
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_VOICE_UNUSABLE,
        translation_placeholders={
            "voice": voice,
            "folder": hass.config.path(VOICES_DIR),
            "error": error,
        },
    )


def async_check_fallbacks(hass: HomeAssistant, entry: AliciaConfigEntry) -> list[str]:
    """The configured fallback engines; a repair issue names those that no longer exist."""
    fallbacks: list[str] = list(entry.options.get(CONF_FALLBACK_ENGINES, []))
    registry = er.async_get(hass)
    missing = [e for e in fallbacks if registry.async_get(e) is None and not hass.states.get(e)]
    issue_id = f"{ISSUE_FALLBACK_MISSING}_{entry.entry_id}"
    if missing:
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_FALLBACK_MISSING,
            translation_placeholders={"engines": ", ".join(missing), "entry": entry.title},
        )
    else:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
    return fallbacks


async def async_setup_entry(hass: HomeAssistant, entry: AliciaConfigEntry) -> bool:
    """Set up Alicia TTS from a config entry."""
    voice = entry.data[CONF_VOICE]
    voices_dir = Path(hass.config.path(VOICES_DIR))
    catalog_dir = Path(hass.config.path(CACHED_CATALOG)).parent

    def clean_and_discover() -> dict[str, VoiceInfo]:
        # Temp files of a download killed mid-way (no download of this process made them).
        remove_stale_parts([voices_dir, catalog_dir])
        return discover_voices(voices_dir)

    voices = await hass.async_add_executor_job(clean_and_discover)
    async_get_store(hass)
    speaker_url = speaker_base_url(hass, entry.options.get(CONF_SPEAKER_BASE_URL))
    async_update_url_issue(hass, speaker_url)
    engine, problem = await async_load_local_engine(
        hass, voice, voices, entry.options.get(CONF_BACKEND), user=entry.entry_id
    )
    if engine is None:  # espeak-ng missing? fetched in the background, then the entry reloads
        await async_setup_espeak(hass, entry)
    audio_format = "wav"
    if engine is not None:
        audio_format = await async_audio_format(hass, entry.options.get(CONF_AUDIO_FORMAT))
    options = entry.options
    chain = EngineChain(
        hass=hass,
        fallbacks=async_check_fallbacks(hass, entry),
        preference=options.get(CONF_ENGINE, LOCAL),
        first_audio_timeout=float(
            options.get(CONF_FIRST_AUDIO_TIMEOUT, DEFAULT_FIRST_AUDIO_TIMEOUT)
        ),
        breaker=CircuitBreaker(
            int(options.get(CONF_BREAKER_THRESHOLD, DEFAULT_BREAKER_THRESHOLD)),
            float(options.get(CONF_BREAKER_COOLDOWN, DEFAULT_BREAKER_COOLDOWN)),
        ),
        local_available=engine is not None,
    )
    if engine is not None:
        chain.probe = partial(async_probe_local, engine, voice)

        async def async_stop_engine(_event: Event) -> None:
            # HA waits for leftover threads at exit: stop the engine's workers with HA.
            await async_release_engine(hass, entry.entry_id, engine)

        entry.async_on_unload(
            hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, async_stop_engine)
        )
    entry.async_on_unload(chain.async_stop)
    entry.runtime_data = AliciaData(
        voice=voice,
        voices=voices,
        engine=engine,
        local_problem=problem,
        speaker_url=speaker_url,
        audio_format=audio_format,
        chain=chain,
    )
    await async_setup_device_check(hass, entry)  # measures the voice in the background
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_probe_local(engine: PiperEngine, voice: str) -> None:
    """Synthesize a short text locally (the breaker's health probe)."""
    job = await engine.async_start(SynthesisOptions(), voice)
    await job.synthesize(PROBE_TEXT)


async def async_unload_entry(hass: HomeAssistant, entry: AliciaConfigEntry) -> bool:
    """Unload a config entry; the last entry using the shared engine stops it."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        async_get_store(hass).remove_owner(entry.entry_id)
        if (engine := entry.runtime_data.engine) is not None:
            await async_release_engine(hass, entry.entry_id, engine)
    return unloaded


async def async_migrate_entry(hass: HomeAssistant, entry: AliciaConfigEntry) -> bool:
    """Migrate an entry to the current version, 1.2.

    1.1 (the first: ``{voice}``) -> 1.2 adds the voice's ``language`` (BCP 47), so the entity
    keeps its language while the voice files are missing. A minor step: an older Alicia TTS
    still loads 1.2 entries. Entries of another major version cannot be migrated (HA itself
    refuses newer major versions before calling this).
    """
    if entry.version != 1:
        return False
    if entry.minor_version < 2:
        voice = entry.data[CONF_VOICE]
        installed, catalog = await hass.async_add_executor_job(
            _installed_and_catalog, hass.config.path(VOICES_DIR), hass.config.path(CACHED_CATALOG)
        )
        hass.config_entries.async_update_entry(
            entry,
            data={**entry.data, CONF_LANGUAGE: voice_language(voice, installed, catalog)},
            minor_version=2,
        )
        _LOGGER.debug("Migrated entry %s to version 1.2", entry.entry_id)
    return True


def _installed_and_catalog(
    folder: str, cached_catalog: str
) -> tuple[dict[str, VoiceInfo], dict[str, CatalogVoice]]:
    """Installed voices and the catalogue (blocking)."""
    return discover_voices(Path(folder)), load_catalog(Path(cached_catalog))
