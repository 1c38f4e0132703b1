"""Home Assistant side of fetching espeak-ng (``espeak_fetch.py``): when, from where, what next.

One fetcher per Home Assistant (the files are shared by all entries):

- the config flow fetches, with progress, before a new entry is created on a machine that
  needs it (:func:`async_needed`, :meth:`EspeakFetcher.async_fetch`);
- an entry set up without a local engine on such a machine starts a fetch in the background
  (:func:`async_setup_espeak`): the entry loads at once and the fallback chain speaks; after a
  failure it is tried again with a growing delay (1 min, 5 min, 30 min, 2 h, then every 6 h)
  and at every setup;
- a failure raises the repair issue ``espeak_missing`` (what is missing, why, how to place the
  files by hand); a success removes it and reloads the entries that wait for it, so the local
  engine speaks without a restart.

The files come from the integration's own GitHub release (manifest ``documentation`` and
``version``: ``<repository>/releases/download/v<version>/``); ``BASE_URL`` replaces that (tests
point it at a loopback server).
"""

import asyncio
from collections.abc import Callable
import logging
import os
from pathlib import Path
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later
from homeassistant.loader import async_get_integration

from .backends import ENV_PHONEMIZER
from .const import DOMAIN
from .espeak_fetch import (
    DATA_ASSET,
    MODULE_ASSET,
    FetchError,
    asset_names,
    async_fetch_espeak,
    bridge_importable,
    missing_parts,
    part_names,
    release_url,
    remove_stale_staging,
)
from .listeners import cancel
from .local_stack import ESPEAK_DIR, espeak_assets
from .models import AliciaConfigEntry

_LOGGER = logging.getLogger(__name__)

ISSUE_ESPEAK_MISSING: Final = "espeak_missing"
# The issue's text depends on the cause: espeak_missing_<FetchError.key> (network,
# verification, storage, failed).
RETRY_DELAYS: Final = (60.0, 300.0, 1800.0, 7200.0, 21600.0)
# The release's download folder; None: the integration's own release (see the module doc).
BASE_URL: str | None = None
DATA_KEY: Final = f"{DOMAIN}_espeak_fetcher"

type Listener = Callable[[float], None]


def needed_parts(config_dir: Path) -> tuple[str, ...]:
    """What this install must fetch before a phonemizer can run (blocking)."""
    forced = os.environ.get(ENV_PHONEMIZER)
    return missing_parts(espeak_assets(config_dir), bridge=bridge_importable(), forced=forced)


async def async_needed(hass: HomeAssistant) -> tuple[str, ...]:
    """What must be fetched here (nothing: a phonemizer can run, or fetching cannot help)."""
    return await hass.async_add_executor_job(needed_parts, Path(hass.config.config_dir))


@callback
def fetch_diagnostics(hass: HomeAssistant) -> dict[str, Any] | None:
    """The espeak-ng fetch's state; None when nothing needed fetching since the start."""
    fetcher: EspeakFetcher | None = hass.data.get(DATA_KEY)
    return fetcher.diagnostics() if fetcher is not None else None


def async_get_fetcher(hass: HomeAssistant) -> EspeakFetcher:
    """The fetcher of this Home Assistant."""
    fetcher: EspeakFetcher | None = hass.data.get(DATA_KEY)
    if fetcher is None:
        fetcher = hass.data[DATA_KEY] = EspeakFetcher(hass)
    return fetcher


class EspeakFetcher:
    """Fetches espeak-ng once at a time; retries and reloads for the entries waiting for it."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Nothing fetched yet."""
        self.hass = hass
        self.task: asyncio.Task[FetchError | None] | None = None
        self.waiting: set[str] = set()  # entries to reload once the files are there
        self.failures = 0
        self.last_error: str | None = None
        self.listeners: list[Listener] = []
        self._retry: CALLBACK_TYPE | None = None

    def diagnostics(self) -> dict[str, Any]:
        """The fetch's state, for diagnostics."""
        return {
            "fetching": self.task is not None,
            "failures": self.failures,
            "last_error": self.last_error,
            "retry_scheduled": self._retry is not None,
            "entries_waiting": len(self.waiting),
        }

    @property
    def folder(self) -> Path:
        """Where the files go: ``<config>/alicia_tts/espeak``."""
        return Path(self.hass.config.path(ESPEAK_DIR))

    async def async_base_url(self) -> str:
        """The release's download folder."""
        if BASE_URL is not None:
            return BASE_URL
        integration = await async_get_integration(self.hass, DOMAIN)
        return release_url(str(integration.documentation), str(integration.version))

    async def async_fetch(self, listener: Listener | None = None) -> FetchError | None:
        """Fetch what is missing (or join the fetch running); None when it is all there."""
        if listener is not None:
            self.listeners.append(listener)
        try:
            return await asyncio.shield(self.async_start())
        finally:
            if listener is not None:
                self.listeners.remove(listener)

    @callback
    def async_start(self) -> asyncio.Task[FetchError | None]:
        """The running fetch, started if there is none."""
        if self.task is None:
            self.task = self.hass.async_create_background_task(
                self._async_run(), f"{DOMAIN} espeak-ng fetch"
            )
        return self.task

    def _progress(self, done: int, total: int) -> None:
        for listener in list(self.listeners):
            listener(min(1.0, done / total))

    async def _async_run(self) -> FetchError | None:
        parts: tuple[str, ...] = ()
        error: FetchError | None = None
        try:
            parts = await async_needed(self.hass)
            if parts:
                await async_fetch_espeak(
                    async_get_clientsession(self.hass),
                    await self.async_base_url(),
                    self.folder,
                    parts,
                    progress=self._progress,
                    run_blocking=self.hass.async_add_executor_job,
                )
        except FetchError as err:
            error = err
        except Exception as err:  # never a stack trace for the user: the issue says it
            _LOGGER.exception("Unexpected error while fetching espeak-ng")
            error = FetchError(str(err) or type(err).__name__)
        finally:
            self.task = None
        if error is None:
            self._async_succeeded()
        else:
            await self._async_failed(error, parts)
        return error

    @callback
    def _async_succeeded(self) -> None:
        self.failures = 0
        self.last_error = None
        self._async_cancel_retry()
        ir.async_delete_issue(self.hass, DOMAIN, ISSUE_ESPEAK_MISSING)
        waiting, self.waiting = self.waiting, set()
        for entry_id in waiting:
            entry = self.hass.config_entries.async_get_entry(entry_id)
            if entry is not None and entry.state in (
                ConfigEntryState.LOADED,
                ConfigEntryState.SETUP_IN_PROGRESS,
            ):
                _LOGGER.info("Espeak-ng is installed: reloading %s", entry.title)
                self.hass.config_entries.async_schedule_reload(entry_id)

    async def _async_failed(self, error: FetchError, parts: tuple[str, ...]) -> None:
        self.failures += 1
        self.last_error = str(error)
        base_url = await self.async_base_url()
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            ISSUE_ESPEAK_MISSING,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=f"{ISSUE_ESPEAK_MISSING}_{error.key}",
            translation_placeholders={
                "error": str(error),
                "missing": part_names(parts),
                "assets": asset_names(parts),
                "module_asset": MODULE_ASSET,
                "data_asset": DATA_ASSET,
                "url": base_url,
                "folder": str(self.folder),
            },
        )
        _LOGGER.warning("Fetching espeak-ng (%s) failed: %s", part_names(parts), error)
        if self.waiting and self._retry is None:
            delay = RETRY_DELAYS[min(self.failures, len(RETRY_DELAYS)) - 1]
            self._retry = async_call_later(
                self.hass,
                delay,
                HassJob(self._async_retry, f"{DOMAIN} espeak-ng retry", cancel_on_shutdown=True),
            )

    @callback
    def _async_retry(self, _now: object) -> None:
        self._retry = None
        if self.waiting:
            self.async_start()

    @callback
    def _async_cancel_retry(self) -> None:
        self._retry = cancel(self._retry)

    @callback
    def async_unwatch(self, entry_id: str) -> None:
        """An entry was unloaded: it waits no more (no retries when none waits)."""
        self.waiting.discard(entry_id)
        if not self.waiting:
            self._async_cancel_retry()


async def async_setup_espeak(hass: HomeAssistant, entry: AliciaConfigEntry) -> None:
    """An entry set up without a local engine: fetch espeak-ng in the background if needed.

    Returns at once; the entry reloads when the files are installed.
    """
    fetcher = async_get_fetcher(hass)
    await hass.async_add_executor_job(remove_stale_staging, fetcher.folder.parent)
    if not await async_needed(hass):
        ir.async_delete_issue(hass, DOMAIN, ISSUE_ESPEAK_MISSING)
        return
    fetcher.waiting.add(entry.entry_id)
    entry.async_on_unload(lambda: fetcher.async_unwatch(entry.entry_id))
    fetcher.async_start()
