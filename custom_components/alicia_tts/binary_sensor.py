"""Binary sensor showing whether the local engine is unavailable or skipped by the breaker."""

from typing import Any, override

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import AliciaChainEntity
from .models import AliciaConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the local engine problem sensor."""
    async_add_entities([LocalProblemSensor(entry)])


class LocalProblemSensor(AliciaChainEntity, BinarySensorEntity):
    """On when in-process Piper cannot speak or is being skipped after failures."""

    _attr_device_class = BinarySensorDeviceClass.PROBLEM
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, entry: AliciaConfigEntry) -> None:
        """Keep the reason for the attributes."""
        super().__init__(entry, "local_problem")
        self._problem = entry.runtime_data.local_problem

    @property
    @override
    def is_on(self) -> bool:
        """A problem: local unavailable or breaker open."""
        return self._chain.local_problem

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Why, and the breaker's state."""
        return {
            "reason": self._problem
            or ("repeated failures" if self._chain.breaker.is_open else None),
            "breaker": self._chain.breaker.state,
            "consecutive_failures": self._chain.breaker.failures,
        }
