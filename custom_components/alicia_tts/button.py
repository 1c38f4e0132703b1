"""The "Measure speed" button: measure the entry's voice on this machine again, now."""

from typing import override

from homeassistant.components.button import ButtonEntity
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .entity import DeviceCheckEntity, platform_setup
from .measurements import DeviceCheck, async_get_check
from .models import AliciaConfigEntry

PARALLEL_UPDATES = 0


def _buttons(hass: HomeAssistant, entry: AliciaConfigEntry) -> list[MeasureSpeedButton]:
    """The button of the entry's device check."""
    check = async_get_check(hass, entry.entry_id)
    return [MeasureSpeedButton(check)] if check is not None else []


async_setup_entry = platform_setup(_buttons)


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
