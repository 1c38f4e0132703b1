"""The "Measure speed" button: measure the entry's voice on this machine again, now."""

from typing import override

from homeassistant.components.button import ButtonEntity
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .measurements import DeviceCheck, DeviceCheckEntity, async_get_check
from .models import AliciaConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the button of the entry's device check."""
    if (check := async_get_check(hass, entry.entry_id)) is not None:
        async_add_entities([MeasureSpeedButton(check)])


class MeasureSpeedButton(DeviceCheckEntity, ButtonEntity):
    """Starts a measurement in the background; the real-time factor sensor shows the result.

    One measurement at a time: pressing again while one runs changes nothing.
    """

    def __init__(self, check: DeviceCheck) -> None:
        """Name by translation key."""
        super().__init__(check, "measure_speed")

    @override
    async def async_press(self) -> None:
        """Measure the entry's voice again."""
        if not self._check.async_request():
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="measure_unavailable"
            )
