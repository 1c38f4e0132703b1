"""The official Piper app (a Supervisor add-on) as Alicia's local fallback engine.

On Home Assistant OS and Supervised installs the config flow can install and start the app
through the Supervisor (Home Assistant's ``AddonManager``), like Home Assistant's own voice
wizard does, and then add it through the Wyoming Protocol integration: it confirms the
``wyoming`` discovery flow the app announces itself with, or else adds the ``wyoming`` entry for
the app's address itself. Nothing here ever stops or uninstalls the app.

The Supervisor's modules are imported only when they are used: they can be imported only where
the Supervisor integration is loaded (``homeassistant.helpers.hassio.is_hassio``).
"""

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_USER, ConfigEntry
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.singleton import singleton

from .const import DOMAIN

if TYPE_CHECKING:
    from homeassistant.components.hassio import AddonManager

_LOGGER = logging.getLogger(__name__)

APP_SLUG: Final = "core_piper"
APP_NAME: Final = "Piper"
# The app's address on the Supervisor's network (what the voice wizard adds, too).
APP_HOST: Final = "core-piper"
APP_PORT: Final = 10200
WYOMING: Final = "wyoming"

# After the start, how long to wait for the app to announce itself: its first start downloads
# its voice. Without an announcement the app's address is still tried.
START_POLL_INTERVAL: Final = 5.0
START_POLL_ROUNDS: Final = 48
# Once announced, how long to wait for the discovery flow Home Assistant starts for it.
FLOW_WAIT_INTERVAL: Final = 0.2
FLOW_WAIT_ROUNDS: Final = 50

# What the Supervisor says about the app, as the config flow routes on it.
RUNNING: Final = "running"
STOPPED: Final = "stopped"
NOT_INSTALLED: Final = "not_installed"  # also: being installed (the install is joined)
UNAVAILABLE: Final = "unavailable"  # not installed, and not offered for this machine

DATA_APP_MANAGER: Final = f"{DOMAIN}_piper_app_manager"


class AppError(Exception):
    """A step failed; ``reason`` is the flow's abort reason, ``error`` what went wrong."""

    def __init__(self, reason: str, error: str = "") -> None:
        """Name the reason (a translation key) and the detail shown with it."""
        super().__init__(f"{reason}: {error}" if error else reason)
        self.reason = reason
        self.error = error


@singleton(DATA_APP_MANAGER)
@callback
def get_app_manager(hass: HomeAssistant) -> AddonManager:
    """The one manager of the Piper app (it keeps the install and start single-flight)."""
    from homeassistant.components.hassio import AddonManager  # noqa: PLC0415 - Supervisor only

    return AddonManager(hass, _LOGGER, APP_NAME, APP_SLUG)


def address() -> str:
    """The app's host and port, as shown to the user."""
    return f"{APP_HOST}:{APP_PORT}"


async def async_app_state(hass: HomeAssistant) -> str:
    """RUNNING, STOPPED, NOT_INSTALLED or UNAVAILABLE. Raises AppError (app_info_failed)."""
    from homeassistant.components.hassio import AddonError, AddonState  # noqa: PLC0415

    try:
        info = await get_app_manager(hass).async_get_addon_info()
    except AddonError as err:
        raise AppError("app_info_failed", str(err)) from err
    if info.state is AddonState.RUNNING:
        return RUNNING
    if info.state in (AddonState.NOT_RUNNING, AddonState.UPDATING):
        return STOPPED
    if info.state is AddonState.NOT_INSTALLED and not info.available:
        return UNAVAILABLE
    return NOT_INSTALLED


async def async_install(hass: HomeAssistant) -> None:
    """Install the app (or join an install under way). Raises AppError (app_install_failed)."""
    from homeassistant.components.hassio import AddonError  # noqa: PLC0415

    try:
        # Shielded: closing one dialog must not cancel an install another flow waits for.
        await asyncio.shield(get_app_manager(hass).async_schedule_install_addon())
    except AddonError as err:
        raise AppError("app_install_failed", str(err)) from err


async def async_start(hass: HomeAssistant) -> None:
    """Start the app and wait until it has announced itself (bounded); AppError on failure."""
    from homeassistant.components.hassio import AddonError  # noqa: PLC0415

    manager = get_app_manager(hass)
    try:
        await asyncio.shield(manager.async_schedule_start_addon())
    except AddonError as err:
        raise AppError("app_start_failed", str(err)) from err
    for _ in range(START_POLL_ROUNDS):
        if _added_or_pending(hass):
            return
        try:
            await manager.async_get_addon_discovery_info()
        except AddonError:  # not announced yet
            await asyncio.sleep(START_POLL_INTERVAL)
            continue
        # Announced: Home Assistant's Supervisor integration is starting its discovery flow.
        for _ in range(FLOW_WAIT_ROUNDS):
            if _added_or_pending(hass):
                return
            await asyncio.sleep(FLOW_WAIT_INTERVAL)
        return  # no flow (the user ignored the app's discovery): the address is added
    _LOGGER.info("The Piper app did not announce itself; trying %s", address())


@callback
def _added_or_pending(hass: HomeAssistant) -> bool:
    return pending_discovery(hass) is not None or app_wyoming_entry(hass) is not None


@callback
def pending_discovery(hass: HomeAssistant) -> dict[str, Any] | None:
    """The ``wyoming`` discovery flow the Piper app started, waiting for confirmation."""
    for flow in hass.config_entries.flow.async_progress_by_handler(
        WYOMING, match_context={"source": SOURCE_HASSIO}
    ):
        if APP_SLUG in str(flow["context"].get("configuration_url", "")):
            return dict(flow)
    return None


@callback
def app_wyoming_entry(hass: HomeAssistant) -> ConfigEntry | None:
    """The ``wyoming`` entry that talks to the Piper app, if there is one."""
    for entry in hass.config_entries.async_entries(WYOMING):
        if entry.data.get(CONF_HOST) == APP_HOST and entry.data.get(CONF_PORT) == APP_PORT:
            return entry
    return None


@callback
def tts_entity_of(hass: HomeAssistant, entry: ConfigEntry) -> str | None:
    """The TTS entity of a config entry."""
    for item in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id):
        if item.domain == "tts":
            return item.entity_id
    return None


@callback
def app_tts_entity(hass: HomeAssistant) -> str | None:
    """The Piper app's TTS entity, if it is already set up in Home Assistant."""
    entry = app_wyoming_entry(hass)
    return tts_entity_of(hass, entry) if entry is not None else None


async def async_connect(hass: HomeAssistant) -> str:
    """Add the running app through ``wyoming``; its TTS entity. Raises AppError.

    Like Home Assistant's voice wizard: an existing entry is used, else the app's discovery
    flow is confirmed, else an entry for the app's address is added.
    """
    entry = app_wyoming_entry(hass)
    if entry is None:
        if (flow := pending_discovery(hass)) is not None:
            result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
        else:
            result = await hass.config_entries.flow.async_init(
                WYOMING,
                context={"source": SOURCE_USER},
                data={CONF_HOST: APP_HOST, CONF_PORT: APP_PORT},
            )
        if result["type"] is FlowResultType.FORM:  # the app did not answer
            if flow is None:  # our own flow: nothing left to confirm in it
                hass.config_entries.flow.async_abort(result["flow_id"])
            errors = result.get("errors") or {}
            raise AppError("app_connect_failed", str(errors.get("base", "cannot_connect")))
        if result["type"] is not FlowResultType.CREATE_ENTRY:  # "no_services"
            raise AppError("app_no_tts", str(result.get("reason", "")))
        entry = result["result"]
    if (entity := tts_entity_of(hass, entry)) is None:
        raise AppError("app_no_tts", entry.title)
    return entity
