"""Config, reconfigure and options flows for Alicia TTS.

Config flow: language -> voice (installed voices first, then downloadable ones with quality and
size) -> download with live progress (only for a voice that is not installed) -> espeak-ng
with live progress (only where no phonemizer can run: fetched from the integration's release,
``espeak_setup.py``; a failure offers to try again or to go on without it) -> fallback
engines (the TTS entities already in Home Assistant, local ones first; on a Supervisor install
also the offer to set up the Piper app) -> entry. When the offer was taken, the entry's
creation hands over to a second flow of this handler (source ``piper_app``, HA's ``next_flow``):
check -> install -> start -> connect the Piper app, with progress, then it becomes the entry's
first fallback engine; its failures abort with their reason and leave the entry as it was.

The reconfigure flow runs the voice steps to change an entry's voice. The options flow sets the
engine chain, how speakers get audio, the entry's engine defaults and the voice source.

The voice list comes from the voices folder, the packaged test voice and the voice catalogue
(shipped with the integration; refreshed from the voice source only when the user asks).
"""

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any, Final

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    FlowType,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.hassio import is_hassio
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.translation import async_get_translations
from homeassistant.helpers.typing import UNDEFINED, UndefinedType
from homeassistant.loader import IntegrationNotFound, async_get_integration
import probatio
from yarl import URL

from . import app, measurements
from .backends import AUTO, BACKENDS, StackUnavailableError, choose_backend, open_runner
from .catalog import (
    CACHED_CATALOG,
    DEFAULT_CATALOG_URL,
    CatalogError,
    CatalogVoice,
    async_fetch_catalog,
    format_size,
    load_catalog,
    redact_url,
    save_catalog,
)
from .const import (
    CONF_AUDIO_FORMAT,
    CONF_BACKEND,
    CONF_BREAKER_COOLDOWN,
    CONF_BREAKER_THRESHOLD,
    CONF_CATALOG_URL,
    CONF_ENGINE,
    CONF_FALLBACK_ENGINES,
    CONF_FIRST_AUDIO_TIMEOUT,
    CONF_PIPER_APP_INSTALLED,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    CONF_VOLUME_OFFSETS,
    DEFAULT_BREAKER_COOLDOWN,
    DEFAULT_BREAKER_THRESHOLD,
    DEFAULT_FIRST_AUDIO_TIMEOUT,
    DOMAIN,
    VOICES_DIR,
)
from .device_check import estimate_seconds
from .download import DownloadError, async_download_voice
from .espeak_fetch import FetchError, asset_names
from .espeak_setup import async_get_fetcher, async_needed
from .local_stack import espeak_assets
from .options import (
    CHAIN_RANGES,
    CHIME,
    CHIME_AFTER,
    ENGINE_CHOICES,
    ENGINE_DEFAULT_KEYS,
    LOCAL,
    OPTION_RANGES,
    SPEAKER_CHIME,
    SPEAKER_CHIME_AFTER,
    VOLUME_DEFAULTS,
    format_volume_offsets,
    volume_input,
)
from .voices import VoiceInfo, discover_voices, read_voice_info

_LOGGER = logging.getLogger(__name__)

# Form sections (their fields are stored flat, under the keys of docs/options.md).
SECTION_SOURCE: Final = "voice_source"
SECTION_DEFAULTS: Final = "voice_defaults"
SECTION_SOUND: Final = "announcement_sound"
SECTION_VOLUME: Final = "speaker_volume"
# A flow action, not an option: fetch the catalogue from the voice source now.
CONF_REFRESH_CATALOG: Final = "refresh_catalog"
# A flow action, not an option (Supervisor installs): set up the Piper app as a fallback engine.
CONF_PIPER_APP: Final = "piper_app"
# A flow action, not an option: download espeak-ng again after a failed attempt.
CONF_RETRY_ESPEAK: Final = "retry_espeak"

STEP_LANGUAGE: Final = "user"
STEP_RECONFIGURE: Final = "reconfigure"
STEP_VOICE: Final = "voice"
STEP_DOWNLOAD: Final = "download"
STEP_FINISH: Final = "finish"
STEP_FALLBACK: Final = "fallback"
# espeak-ng fetched for a new entry where no phonemizer can run (espeak_setup.py).
STEP_ESPEAK: Final = "espeak"
STEP_ESPEAK_FAILED: Final = "espeak_failed"
# The Piper app's flow: its source (its first step) and its steps.
SOURCE_PIPER_APP: Final = "piper_app"
STEP_INSTALL_APP: Final = "install_app"
STEP_START_APP: Final = "start_app"
STEP_CONNECT_APP: Final = "connect_app"
STEP_APP_READY: Final = "app_ready"
STEP_APP_FAILED: Final = "app_failed"

# Marks a voice that is downloaded first (the label also shows its size).
DOWNLOAD_MARK: Final = "\u2193"
# Before an estimated synthesis time (voice step): an estimate, never a measurement.
ESTIMATE_MARK: Final = "\u00b7 \u2248"
QUALITY_ORDER: Final = {"x_low": 0, "low": 1, "medium": 2, "high": 3}


def _http_url(value: str, *, allow_path: bool) -> bool:
    """An http(s) URL with a host, no query and no fragment (a path only if allowed)."""
    try:
        url = URL(value)
    except ValueError:
        return False
    return (
        url.scheme in ("http", "https")
        and bool(url.host)
        and (allow_path or url.path in ("", "/"))
        and not url.query_string
        and not url.fragment
    )


def valid_base_url(value: str) -> bool:
    """An http(s) URL with a host and no path, query or fragment beyond a trailing slash."""
    return _http_url(value, allow_path=False)


def valid_catalog_url(value: str) -> bool:
    """An http(s) URL with a host (a path is allowed: it is a folder), no query or fragment."""
    return _http_url(value, allow_path=True)


def normalize_catalog_url(value: str) -> str:
    """A voice source URL as stored: a folder, so with a trailing slash."""
    return value.strip().rstrip("/") + "/"


@callback
def configured_catalog_url(hass: HomeAssistant) -> str:
    """The voice source a new entry starts with: an existing entry's, else the upstream one."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        if url := entry.options.get(CONF_CATALOG_URL):
            return str(url)
    return DEFAULT_CATALOG_URL


async def async_load_voices(
    hass: HomeAssistant,
) -> tuple[dict[str, VoiceInfo], dict[str, CatalogVoice]]:
    """Installed voices (folder and packaged) and the catalogue (shipped + refreshed)."""

    def load() -> tuple[dict[str, VoiceInfo], dict[str, CatalogVoice]]:
        return (
            discover_voices(Path(hass.config.path(VOICES_DIR))),
            load_catalog(Path(hass.config.path(CACHED_CATALOG))),
        )

    return await hass.async_add_executor_job(load)


async def async_refresh_catalog(hass: HomeAssistant, url: str) -> dict[str, CatalogVoice]:
    """Fetch the catalogue from a voice source and keep it; its voices. Raises CatalogError."""
    raw, voices = await async_fetch_catalog(async_get_clientsession(hass), url)
    try:
        await hass.async_add_executor_job(save_catalog, Path(hass.config.path(CACHED_CATALOG)), raw)
    except OSError as err:
        _LOGGER.warning("Cannot keep the refreshed voice catalogue: %s", err)
    _LOGGER.info("Voice catalogue refreshed from %s: %d voices", redact_url(url), len(voices))
    return voices


def language_options(
    installed: Mapping[str, VoiceInfo], catalog: Mapping[str, CatalogVoice]
) -> list[SelectOptionDict]:
    """Every language with a voice, named as the catalogue names it."""
    names: dict[str, str] = {}
    for voice in catalog.values():
        names.setdefault(voice.language, voice.language_name)
    for info in installed.values():
        names.setdefault(info.language, info.language)
    options = [
        SelectOptionDict(value=code, label=code if name == code else f"{name}, {code}")
        for code, name in names.items()
    ]
    return sorted(options, key=lambda o: o["label"].casefold())


def default_language(
    preferred: str, country: str | None, codes: list[str], installed_languages: set[str]
) -> str:
    """The language to preselect: Home Assistant's own, as close as the voices allow."""
    by_lower = {c.lower(): c for c in codes}
    if (exact := by_lower.get(preferred.lower())) is not None:
        return exact
    family = preferred.split("-", maxsplit=1)[0].lower()
    same = [c for c in codes if c.split("-", maxsplit=1)[0].lower() == family]
    if same:
        return min(
            same,
            key=lambda c: (
                c.split("-")[-1].upper() != (country or "").upper(),
                c not in installed_languages,
                c,
            ),
        )
    return "en-US" if "en-US" in codes else min(codes)


def voice_options(
    language: str,
    installed: Mapping[str, VoiceInfo],
    catalog: Mapping[str, CatalogVoice],
    estimate: Callable[[str | None], float] | None = None,
) -> list[SelectOptionDict]:
    """Installed voices of a language first, then the downloadable ones with their size.

    With ``estimate`` (quality -> expected seconds to synthesize a typical announcement on this
    machine, from its speed measurement) each downloadable voice also shows ``≈ 1.2 s``.
    """
    own = sorted(
        (v for v in installed.values() if v.language == language),
        key=lambda v: (v.display_name.casefold(), v.key),
    )
    more = sorted(
        (v for v in catalog.values() if v.language == language and v.key not in installed),
        key=lambda v: (v.name.casefold(), QUALITY_ORDER.get(v.quality or "", 9), v.key),
    )

    def download_label(voice: CatalogVoice) -> str:
        label = f"{voice.display_name} {DOWNLOAD_MARK} {format_size(voice.size)}"
        if estimate is not None:
            label += f" {ESTIMATE_MARK} {estimate(voice.quality):.1f} s"
        return label

    return [SelectOptionDict(value=v.key, label=v.display_name) for v in own] + [
        SelectOptionDict(value=v.key, label=download_label(v)) for v in more
    ]


async def async_voice_estimates(hass: HomeAssistant) -> Callable[[str | None], float] | None:
    """Quality -> expected seconds for a typical announcement here; None before a measurement."""
    measured = await measurements.async_machine_measurements(hass)
    if not measured:
        return None
    newest = measured[0]
    return lambda quality: estimate_seconds(quality, newest, measured=measured)


@dataclass(frozen=True, slots=True)
class EngineChoice:
    """A TTS entity that can be a fallback engine, and whether it runs in the home."""

    entity_id: str
    name: str
    local: bool


async def _async_is_local(hass: HomeAssistant, platform: str | None) -> bool:
    """Whether an integration's engine runs in the home: its ``iot_class`` is ``local_*``.

    Anything else, or unknown, counts as cloud: text may leave the house through it.
    """
    if platform is None:
        return False
    try:
        integration = await async_get_integration(hass, platform)
    except IntegrationNotFound:
        return False
    return str(integration.iot_class or "").startswith("local")


async def async_engine_choices(hass: HomeAssistant) -> list[EngineChoice]:
    """The TTS entities of other integrations, local ones first, then by name.

    Alicia's own entities are left out: where local Piper cannot run, none of them can.
    """
    registry = er.async_get(hass)
    choices: list[EngineChoice] = []
    for state in hass.states.async_all("tts"):
        item = registry.async_get(state.entity_id)
        platform = item.platform if item is not None else None
        if platform == DOMAIN:
            continue
        local = await _async_is_local(hass, platform)
        choices.append(EngineChoice(state.entity_id, state.name, local))
    return sorted(choices, key=lambda c: (not c.local, c.name.casefold(), c.entity_id))


async def async_engine_options(
    hass: HomeAssistant, choices: list[EngineChoice]
) -> list[SelectOptionDict]:
    """Select options for the engines: name, "local" or "cloud" (translated), entity id."""
    words = await async_get_translations(hass, hass.config.language, "selector", {DOMAIN})
    prefix = f"component.{DOMAIN}.selector.engine_kind.options."
    options: list[SelectOptionDict] = []
    for choice in choices:
        kind = "local" if choice.local else "cloud"
        label = f"{choice.name} ({words.get(prefix + kind, kind)}, {choice.entity_id})"
        options.append(SelectOptionDict(value=choice.entity_id, label=label))
    return options


def local_piper_available(config_dir: str) -> bool:
    """Whether in-process Piper can run here now: a backend and a phonemizer (blocking)."""
    try:
        choose_backend()
        open_runner(None, espeak_assets(Path(config_dir)))
    except StackUnavailableError as err:
        _LOGGER.debug("In-process Piper cannot run here: %s", err)
        return False
    return True


def source_schema(url: str) -> probatio.Schema:
    """Fields of the "voice source" section (config, reconfigure and options flows)."""
    return probatio.Schema(
        {
            probatio.Optional(CONF_CATALOG_URL, description={"suggested_value": url}): TextSelector(
                TextSelectorConfig(type=TextSelectorType.URL)
            ),
            probatio.Optional(CONF_REFRESH_CATALOG, default=False): BooleanSelector(),
        }
    )


def source_input(source: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The voice source URL of a submitted section (None: invalid) and whether to refresh."""
    url = str(source.get(CONF_CATALOG_URL) or "").strip()
    refresh = bool(source.get(CONF_REFRESH_CATALOG))
    if not url:
        return DEFAULT_CATALOG_URL, refresh
    if not valid_catalog_url(url):
        return None, refresh
    return normalize_catalog_url(url), refresh


class AliciaConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a Piper voice as a TTS engine, downloading it if needed."""

    VERSION = 1
    # 1.2 stores the voice's language next to the voice (see async_migrate_entry).
    MINOR_VERSION = 2

    def __init__(self) -> None:
        """Start with nothing chosen."""
        self._catalog_url: str | None = None
        self._refreshed: dict[str, CatalogVoice] = {}
        self._language: str | None = None
        self._voice: str | None = None
        self._pending: CatalogVoice | None = None
        self._download_task: asyncio.Task[VoiceInfo] | None = None
        self._download_error: DownloadError | None = None
        self._downloaded: VoiceInfo | None = None
        self._last_progress = 0.0
        self._info: VoiceInfo | None = None  # the voice of the entry to create
        self._local_available: bool | None = None
        self._use_app = False
        self._espeak_task: asyncio.Task[FetchError | None] | None = None
        self._espeak_error: FetchError | None = None
        self._espeak_parts: tuple[str, ...] = ()
        # The Piper app's flow.
        self._app_task: asyncio.Task[str] | None = None
        self._app_failure: app.AppError | None = None
        self._app_entity: str | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> AliciaOptionsFlow:
        """Options: engine chain, speakers, engine defaults, voice source."""
        return AliciaOptionsFlow()

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _folder(self) -> str:
        return self.hass.config.path(VOICES_DIR)

    async def _async_voices(self) -> tuple[dict[str, VoiceInfo], dict[str, CatalogVoice]]:
        installed, catalog = await async_load_voices(self.hass)
        catalog.update(self._refreshed)
        return installed, catalog

    async def _async_claim(self, key: str) -> None:
        """Abort if the voice is already another entry (before anything is downloaded)."""
        if self.source == SOURCE_RECONFIGURE and key == self._get_reconfigure_entry().unique_id:
            return
        await self.async_set_unique_id(key)
        self._abort_if_unique_id_configured()

    # -- language ----------------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the language of the voice (and, optionally, the voice source)."""
        return await self._async_step_language(STEP_LANGUAGE, user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the voice of an entry: its language first."""
        return await self._async_step_language(STEP_RECONFIGURE, user_input)

    async def _async_step_language(
        self,
        step_id: str,
        user_input: dict[str, Any] | None,
        errors: dict[str, str] | None = None,
    ) -> ConfigFlowResult:
        if self._catalog_url is None:
            self._catalog_url = configured_catalog_url(self.hass)
            if self.source == SOURCE_RECONFIGURE:
                entry = self._get_reconfigure_entry()
                self._catalog_url = str(entry.options.get(CONF_CATALOG_URL, DEFAULT_CATALOG_URL))
                self._language = entry.data.get(CONF_LANGUAGE)
                self._voice = entry.data[CONF_VOICE]
        installed, catalog = await self._async_voices()
        errors = errors or {}
        placeholders = {"folder": self._folder, "url": self._catalog_url, "error": ""}
        if user_input is not None:
            url: str | None = self._catalog_url  # the section not sent: unchanged
            refresh = False
            if (source := user_input.get(SECTION_SOURCE)) is not None:
                url, refresh = source_input(source)
            if url is None:
                errors["base"] = "invalid_catalog_url"
            else:
                self._catalog_url = placeholders["url"] = url
                if refresh:
                    try:
                        self._refreshed = await async_refresh_catalog(self.hass, url)
                    except CatalogError as err:
                        errors["base"] = err.key
                        placeholders.update(err.placeholders)
                    catalog.update(self._refreshed)
            language = user_input[CONF_LANGUAGE]
            self._language = language
            if not errors:
                if voice_options(language, installed, catalog):
                    return await self.async_step_voice()
                errors[CONF_LANGUAGE] = "no_voices_for_language"
        options = language_options(installed, catalog)
        if not options:
            return self.async_abort(reason="no_voices", description_placeholders=placeholders)
        codes = [o["value"] for o in options]
        default = self._language if self._language in codes else None
        default = default or default_language(
            self.hass.config.language,
            self.hass.config.country,
            codes,
            {v.language for v in installed.values()},
        )
        schema = probatio.Schema(
            {
                probatio.Required(CONF_LANGUAGE, default=default): SelectSelector(
                    SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN)
                ),
                probatio.Optional(SECTION_SOURCE): section(
                    source_schema(self._catalog_url), {"collapsed": True}
                ),
            }
        )
        return self.async_show_form(
            step_id=step_id,
            data_schema=schema,
            errors=errors,
            description_placeholders=placeholders,
        )

    # -- voice -------------------------------------------------------------------------------

    async def async_step_voice(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the voice: installed ones, or one to download."""
        assert self._language is not None
        assert self._catalog_url is not None
        installed, catalog = await self._async_voices()
        errors: dict[str, str] = {}
        placeholders = {"folder": self._folder, "url": self._catalog_url, "error": ""}
        if self._download_error is not None:
            failed, self._download_error = self._download_error, None
            errors["base"] = failed.key
            placeholders.update(failed.placeholders)
        if user_input is not None:
            key = self._voice = user_input[CONF_VOICE]
            if key in installed:
                return await self._async_finish(installed[key])
            if key in catalog:
                await self._async_claim(key)
                self._pending = catalog[key]
                return await self.async_step_download()
            errors[CONF_VOICE] = "unknown_voice"
        options = voice_options(
            self._language, installed, catalog, await async_voice_estimates(self.hass)
        )
        if not options:  # the last voice of the language was deleted meanwhile
            return await self._async_step_language(
                self._language_step, None, {CONF_LANGUAGE: "no_voices_for_language"}
            )
        values = [o["value"] for o in options]
        default = self._voice if self._voice in values else values[0]
        schema = probatio.Schema(
            {
                probatio.Required(CONF_VOICE, default=default): SelectSelector(
                    SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN)
                )
            }
        )
        return self.async_show_form(
            step_id=STEP_VOICE,
            data_schema=schema,
            errors=errors,
            description_placeholders=placeholders,
        )

    @property
    def _language_step(self) -> str:
        return STEP_RECONFIGURE if self.source == SOURCE_RECONFIGURE else STEP_LANGUAGE

    # -- download ----------------------------------------------------------------------------

    async def async_step_download(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Download the chosen voice, showing progress; back to the voice step on failure."""
        voice = self._pending
        assert voice is not None
        if self._download_task is None:
            self._last_progress = 0.0
            # Not started eagerly: the first answer is always the progress form.
            self._download_task = self.hass.async_create_task(
                self._async_download(voice), f"{DOMAIN} download {voice.key}", eager_start=False
            )
        if not self._download_task.done():
            return self.async_show_progress(
                step_id=STEP_DOWNLOAD,
                progress_action=STEP_DOWNLOAD,
                progress_task=self._download_task,
                description_placeholders={
                    "voice": voice.display_name,
                    "size": format_size(voice.size),
                },
            )
        task, self._download_task = self._download_task, None
        try:
            self._downloaded = task.result()
        except DownloadError as err:
            _LOGGER.warning("Downloading voice %s failed: %s", voice.key, err)
            self._download_error = err
            return self.async_show_progress_done(next_step_id=STEP_VOICE)
        except Exception as err:  # shown in the form: the user can retry
            _LOGGER.exception("Unexpected error while downloading voice %s", voice.key)
            self._download_error = DownloadError(str(err) or type(err).__name__)
            return self.async_show_progress_done(next_step_id=STEP_VOICE)
        return self.async_show_progress_done(next_step_id=STEP_FINISH)

    def _progress(self, done: int, total: int) -> None:
        """Tell the frontend how far the download is (about every percent)."""
        fraction = min(1.0, done / total)
        if fraction - self._last_progress >= 0.01 or fraction >= 1.0:
            self._last_progress = fraction
            self.async_update_progress(fraction)

    async def _async_download(self, voice: CatalogVoice) -> VoiceInfo:
        assert self._catalog_url is not None
        model = await async_download_voice(
            async_get_clientsession(self.hass),
            self._catalog_url,
            voice,
            Path(self._folder),
            progress=self._progress,
            run_blocking=self.hass.async_add_executor_job,
        )
        try:
            info: VoiceInfo = await self.hass.async_add_executor_job(
                read_voice_info, model, model.with_name(model.name + ".json")
            )
        except ValueError as err:
            raise DownloadError(str(err)) from err
        return info

    async def async_step_finish(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The download is complete: create (or update) the entry."""
        assert self._downloaded is not None
        return await self._async_finish(self._downloaded)

    # -- entry -------------------------------------------------------------------------------

    async def _async_finish(self, info: VoiceInfo) -> ConfigFlowResult:
        await self._async_claim(info.key)
        data = {CONF_VOICE: info.key, CONF_LANGUAGE: info.language}
        custom_url = self._catalog_url if self._catalog_url != DEFAULT_CATALOG_URL else None
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
            options = {k: v for k, v in entry.options.items() if k != CONF_CATALOG_URL}
            if custom_url:
                options[CONF_CATALOG_URL] = custom_url
            # A title the user chose stays; the old voice's automatic title follows the voice.
            installed, catalog = await self._async_voices()
            old = entry.data[CONF_VOICE]
            automatic = {old, *(v.display_name for k, v in installed.items() if k == old)}
            automatic.update(v.display_name for k, v in catalog.items() if k == old)
            title: str | UndefinedType = UNDEFINED
            if entry.title in automatic:
                title = info.display_name
            return self.async_update_reload_and_abort(
                entry, unique_id=info.key, title=title, data=data, options=options
            )
        self._info = info
        self._espeak_parts = await async_needed(self.hass)
        if self._espeak_parts:
            return await self.async_step_espeak()
        return await self.async_step_fallback()

    # -- espeak-ng (where no phonemizer can run) ----------------------------------------------

    async def async_step_espeak(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Fetch espeak-ng from the integration's release, showing progress."""
        if self._espeak_task is None:
            self._last_progress = 0.0
            # Not started eagerly: the first answer is always the progress form.
            self._espeak_task = self.hass.async_create_task(
                async_get_fetcher(self.hass).async_fetch(self._progress_fraction),
                f"{DOMAIN} espeak-ng fetch (flow)",
                eager_start=False,
            )
        if not self._espeak_task.done():
            return self.async_show_progress(
                step_id=STEP_ESPEAK,
                progress_action=STEP_ESPEAK,
                progress_task=self._espeak_task,
                description_placeholders={"assets": asset_names(self._espeak_parts)},
            )
        task, self._espeak_task = self._espeak_task, None
        self._espeak_error = task.result()
        if self._espeak_error is not None:
            return self.async_show_progress_done(next_step_id=STEP_ESPEAK_FAILED)
        return self.async_show_progress_done(next_step_id=STEP_FALLBACK)

    async def async_step_espeak_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """espeak-ng could not be fetched: try again, or go on without it (fallback engines)."""
        error = self._espeak_error
        assert error is not None
        if user_input is not None:
            if user_input.get(CONF_RETRY_ESPEAK):
                return await self.async_step_espeak()
            return await self.async_step_fallback()
        fetcher = async_get_fetcher(self.hass)
        return self.async_show_form(
            step_id=STEP_ESPEAK_FAILED,
            data_schema=probatio.Schema(
                {probatio.Optional(CONF_RETRY_ESPEAK, default=False): BooleanSelector()}
            ),
            errors={"base": f"espeak_{error.key}"},
            description_placeholders={
                "url": await fetcher.async_base_url(),
                "folder": str(fetcher.folder),
                **error.placeholders,
            },
        )

    def _progress_fraction(self, fraction: float) -> None:
        """Tell the frontend how far the fetch is (about every percent)."""
        if fraction - self._last_progress >= 0.01 or fraction >= 1.0:
            self._last_progress = fraction
            self.async_update_progress(fraction)

    # -- fallback engines --------------------------------------------------------------------

    async def async_step_fallback(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the fallback engines (and, on a Supervisor install, the Piper app)."""
        info = self._info
        assert info is not None
        choices = await async_engine_choices(self.hass)
        offer_app = is_hassio(self.hass) and app.app_tts_entity(self.hass) is None
        if user_input is None and (choices or offer_app):
            return await self._async_fallback_form(choices, offer_app)
        user_input = user_input or {}
        self._use_app = offer_app and bool(user_input.get(CONF_PIPER_APP))
        options: dict[str, Any] = {
            CONF_FALLBACK_ENGINES: list(user_input.get(CONF_FALLBACK_ENGINES) or [])
        }
        if self._catalog_url != DEFAULT_CATALOG_URL:
            options[CONF_CATALOG_URL] = self._catalog_url
        return self.async_create_entry(
            title=info.display_name,
            data={CONF_VOICE: info.key, CONF_LANGUAGE: info.language},
            options=options,
        )

    async def _async_fallback_form(
        self, choices: list[EngineChoice], offer_app: bool
    ) -> ConfigFlowResult:
        fields: dict[probatio.Marker, Any] = {}
        if choices:
            # Local engines are suggested (text stays in the home); nothing is chosen unasked
            # for clients that do not send the field.
            local = [c.entity_id for c in choices if c.local]
            field = probatio.Optional(CONF_FALLBACK_ENGINES, description={"suggested_value": local})
            fields[field] = SelectSelector(
                SelectSelectorConfig(
                    options=await async_engine_options(self.hass, choices),
                    multiple=True,
                    sort=False,
                    mode=SelectSelectorMode.DROPDOWN,
                )
            )
        if offer_app:
            if self._local_available is None:
                self._local_available = await self.hass.async_add_executor_job(
                    local_piper_available, self.hass.config.config_dir
                )
            fields[probatio.Optional(CONF_PIPER_APP, default=not self._local_available)] = (
                BooleanSelector()
            )
        return self.async_show_form(step_id=STEP_FALLBACK, data_schema=probatio.Schema(fields))

    async def async_on_create_entry(self, result: ConfigFlowResult) -> ConfigFlowResult:
        """The entry exists: continue with the Piper app's flow if it was asked for."""
        if self._use_app:
            entry = result["result"]
            flow = await self.hass.config_entries.flow.async_init(
                DOMAIN, context={"source": SOURCE_PIPER_APP, "entry_id": entry.entry_id}
            )
            result["next_flow"] = (FlowType.CONFIG_FLOW, flow["flow_id"])
        return result

    # -- the Piper app (a flow of its own, after the entry exists) ----------------------------

    def _alicia_entry(self) -> ConfigEntry | None:
        return self.hass.config_entries.async_get_entry(self.context.get("entry_id", ""))

    async def async_step_piper_app(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask the Supervisor about the Piper app, then install, start or connect it."""
        if not is_hassio(self.hass):
            return self.async_abort(reason="app_no_supervisor")
        if self._alicia_entry() is None:
            return self.async_abort(reason="app_entry_missing")
        return await self._async_app_step(SOURCE_PIPER_APP, "check_app", self._async_check_app)

    async def async_step_install_app(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Install the Piper app (progress)."""
        return await self._async_app_step(STEP_INSTALL_APP, STEP_INSTALL_APP, self._async_install)

    async def async_step_start_app(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Start the Piper app and wait for it to announce itself (progress)."""
        return await self._async_app_step(STEP_START_APP, STEP_START_APP, self._async_start)

    async def async_step_connect_app(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add the Piper app through the Wyoming Protocol integration (progress)."""
        return await self._async_app_step(STEP_CONNECT_APP, STEP_CONNECT_APP, self._async_connect)

    async def _async_app_step(
        self, step_id: str, action: str, work: Callable[[], Coroutine[Any, Any, str]]
    ) -> ConfigFlowResult:
        """Run one part of the app's set-up with a progress message; then go on or fail."""
        if self._app_task is None:
            # Not started eagerly: the first answer is always the progress form.
            self._app_task = self.hass.async_create_task(
                work(), f"{DOMAIN} {step_id}", eager_start=False
            )
        if not self._app_task.done():
            return self.async_show_progress(
                step_id=step_id,
                progress_action=action,
                progress_task=self._app_task,
                description_placeholders={"address": app.address()},
            )
        task, self._app_task = self._app_task, None
        try:
            next_step = task.result()
        except app.AppError as err:
            _LOGGER.warning("Setting up the Piper app failed: %s", err)
            self._app_failure = err
            return self.async_show_progress_done(next_step_id=STEP_APP_FAILED)
        except Exception as err:  # shown as the abort reason; the entry is not touched
            _LOGGER.exception("Unexpected error while setting up the Piper app")
            self._app_failure = app.AppError("app_unknown_error", str(err) or type(err).__name__)
            return self.async_show_progress_done(next_step_id=STEP_APP_FAILED)
        return self.async_show_progress_done(next_step_id=next_step)

    async def _async_check_app(self) -> str:
        state = await app.async_app_state(self.hass)
        if state == app.UNAVAILABLE:
            raise app.AppError("app_not_available")
        return {app.RUNNING: STEP_CONNECT_APP, app.STOPPED: STEP_START_APP}.get(
            state, STEP_INSTALL_APP
        )

    async def _async_install(self) -> str:
        await app.async_install(self.hass)
        # Remembered at once (diagnostics say so): Alicia installed it, even if it never starts.
        if (entry := self._alicia_entry()) is not None:
            self.hass.config_entries.async_update_entry(
                entry, data={**entry.data, CONF_PIPER_APP_INSTALLED: True}
            )
        return STEP_START_APP

    async def _async_start(self) -> str:
        await app.async_start(self.hass)
        return STEP_CONNECT_APP

    async def _async_connect(self) -> str:
        self._app_entity = await app.async_connect(self.hass)
        return STEP_APP_READY

    async def async_step_app_ready(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The app speaks: put its TTS entity first in the entry's chain, reload the entry."""
        engine = self._app_entity
        assert engine is not None
        if (entry := self._alicia_entry()) is None:
            return self.async_abort(reason="app_entry_missing")
        others = [e for e in entry.options.get(CONF_FALLBACK_ENGINES, []) if e != engine]
        self.hass.config_entries.async_update_entry(
            entry, options={**entry.options, CONF_FALLBACK_ENGINES: [engine, *others]}
        )
        await self.hass.config_entries.async_reload(entry.entry_id)
        return self.async_abort(reason=STEP_APP_READY, description_placeholders={"engine": engine})

    async def async_step_app_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A part of the app's set-up failed: say why (the entry stays as it was)."""
        failure = self._app_failure
        assert failure is not None
        return self.async_abort(
            reason=failure.reason,
            description_placeholders={"error": failure.error, "address": app.address()},
        )


AUDIO_FORMATS = ["auto", "mp3", "wav"]

# Number fields of the engine defaults: step and unit (ranges from the engine).
DEFAULT_FIELDS: Final[dict[str, tuple[float, str | None]]] = {
    "speed": (0.05, None),
    "noise_scale": (0.01, None),
    "noise_w_scale": (0.01, None),
    "gain": (0.05, None),
    "sentence_silence": (0.05, "s"),
    "leading_silence": (0.05, "s"),
    "trailing_silence": (0.05, "s"),
}


# Entry options of the announcement sound on speakers (section "Announcement sound"), with the
# built-in defaults a missing key means (docs/options.md).
SOUND_DEFAULTS: Final[dict[str, bool]] = {CHIME: SPEAKER_CHIME, CHIME_AFTER: SPEAKER_CHIME_AFTER}


def number_field(low: float, high: float, step: float, unit: str | None = None) -> NumberSelector:
    """A number box from ``low`` to ``high`` (with its unit, if any)."""
    config = NumberSelectorConfig(min=low, max=high, step=step, mode=NumberSelectorMode.BOX)
    if unit:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


def volume_schema() -> probatio.Schema:
    """Fields of the "speaker volume" section: limits and per-speaker offsets."""
    return probatio.Schema(
        {
            **{probatio.Optional(key): number_field(0, 100, 1) for key in VOLUME_DEFAULTS},
            probatio.Optional(CONF_VOLUME_OFFSETS): TextSelector(
                TextSelectorConfig(multiline=True)
            ),
        }
    )


def defaults_schema() -> probatio.Schema:
    """Fields of the "voice defaults" section: all optional, empty = built-in default."""
    return probatio.Schema(
        {
            probatio.Optional(key): number_field(*OPTION_RANGES[key], *DEFAULT_FIELDS[key])
            for key in ENGINE_DEFAULT_KEYS
        }
    )


# The chain options' built-in defaults (a new entry's values).
CHAIN_DEFAULTS: Final[dict[str, float]] = {
    CONF_FIRST_AUDIO_TIMEOUT: DEFAULT_FIRST_AUDIO_TIMEOUT,
    CONF_BREAKER_THRESHOLD: DEFAULT_BREAKER_THRESHOLD,
    CONF_BREAKER_COOLDOWN: DEFAULT_BREAKER_COOLDOWN,
}


class AliciaOptionsFlow(OptionsFlowWithReload):
    """Options of an entry; saving reloads it.

    One form: the engine chain and the speaker settings as before, and two collapsed sections,
    "voice defaults" and "voice source". Everything is stored flat in ``entry.options`` under
    the keys of docs/options.md. A section that is not submitted at all (API clients that only
    send the top-level fields) leaves its options unchanged.
    """

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Fallback chain, speakers, engine defaults and voice source."""
        errors: dict[str, str] = {}
        current = self.config_entry.options
        placeholders = {
            "error": "",
            "line": "",
            "url": str(current.get(CONF_CATALOG_URL, DEFAULT_CATALOG_URL)),
        }
        own = er.async_entries_for_config_entry(er.async_get(self.hass), self.config_entry.entry_id)
        own_ids = [e.entity_id for e in own if e.domain == "tts"]
        if user_input is not None:
            flat = {
                k: v
                for k, v in user_input.items()
                if k not in (SECTION_DEFAULTS, SECTION_SOURCE, SECTION_SOUND, SECTION_VOLUME)
            }
            base = str(flat.get(CONF_SPEAKER_BASE_URL) or "").strip()
            options = {**current, **flat}
            options[CONF_FALLBACK_ENGINES] = list(flat.get(CONF_FALLBACK_ENGINES) or [])
            options[CONF_SPEAKER_BASE_URL] = base.rstrip("/")
            if not base:
                del options[CONF_SPEAKER_BASE_URL]
            elif not valid_base_url(base):
                errors[CONF_SPEAKER_BASE_URL] = "invalid_url"
            if (defaults := user_input.get(SECTION_DEFAULTS)) is not None:
                for key in ENGINE_DEFAULT_KEYS:
                    options.pop(key, None)
                    if defaults.get(key) is not None:
                        options[key] = float(defaults[key])
            if (sound := user_input.get(SECTION_SOUND)) is not None:
                for key, default in SOUND_DEFAULTS.items():
                    options[key] = bool(sound.get(key, default))
            if (volume := user_input.get(SECTION_VOLUME)) is not None:
                values, problem, line = volume_input(volume)
                options.update(values)
                if problem is not None:
                    errors["base"] = problem
                    placeholders["line"] = line
            if (source := user_input.get(SECTION_SOURCE)) is not None:
                url, refresh = source_input(source)
                if url is None:
                    errors["base"] = "invalid_catalog_url"
                else:
                    changed = url != current.get(CONF_CATALOG_URL, DEFAULT_CATALOG_URL)
                    if refresh or (changed and url != DEFAULT_CATALOG_URL):
                        # A new voice source is tested (and its catalogue kept) before saving;
                        # going back to the upstream collection needs no test.
                        try:
                            await async_refresh_catalog(self.hass, url)
                        except CatalogError as err:
                            errors["base"] = err.key
                            placeholders.update(err.placeholders)
                    options.pop(CONF_CATALOG_URL, None)
                    if url != DEFAULT_CATALOG_URL:
                        options[CONF_CATALOG_URL] = url
            if not errors:
                return self.async_create_entry(data=options)
        schema = probatio.Schema(
            {
                probatio.Optional(CONF_FALLBACK_ENGINES, default=[]): EntitySelector(
                    EntitySelectorConfig(
                        domain="tts", multiple=True, reorder=True, exclude_entities=own_ids
                    )
                ),
                probatio.Required(CONF_ENGINE, default=LOCAL): SelectSelector(
                    SelectSelectorConfig(
                        options=list(ENGINE_CHOICES),
                        translation_key=CONF_ENGINE,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                **{
                    probatio.Required(key, default=default): number_field(*CHAIN_RANGES[key])
                    for key, default in CHAIN_DEFAULTS.items()
                },
                probatio.Optional(CONF_SPEAKER_BASE_URL): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.URL)
                ),
                probatio.Required(CONF_AUDIO_FORMAT, default="auto"): SelectSelector(
                    SelectSelectorConfig(
                        options=AUDIO_FORMATS,
                        translation_key=CONF_AUDIO_FORMAT,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                probatio.Required(CONF_BACKEND, default=AUTO): SelectSelector(
                    SelectSelectorConfig(
                        options=[AUTO, *BACKENDS],
                        translation_key=CONF_BACKEND,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                probatio.Optional(SECTION_DEFAULTS): section(
                    defaults_schema(), {"collapsed": True}
                ),
                probatio.Optional(SECTION_SOUND): section(
                    probatio.Schema(
                        {probatio.Optional(key): BooleanSelector() for key in SOUND_DEFAULTS}
                    ),
                    {"collapsed": True},
                ),
                probatio.Optional(SECTION_VOLUME): section(volume_schema(), {"collapsed": True}),
                probatio.Optional(SECTION_SOURCE): section(
                    source_schema(str(current.get(CONF_CATALOG_URL, DEFAULT_CATALOG_URL))),
                    {"collapsed": True},
                ),
            }
        )
        suggested: dict[str, Any] = {
            **current,
            SECTION_DEFAULTS: {k: current[k] for k in ENGINE_DEFAULT_KEYS if k in current},
            SECTION_SOUND: {k: current.get(k, d) for k, d in SOUND_DEFAULTS.items()},
            SECTION_VOLUME: {
                **{k: current.get(k, d) for k, d in VOLUME_DEFAULTS.items()},
                CONF_VOLUME_OFFSETS: format_volume_offsets(current.get(CONF_VOLUME_OFFSETS) or {}),
            },
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=placeholders,
        )
