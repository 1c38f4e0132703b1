"""Binary sensor showing whether the local engine is unavailable or skipped by the breaker."""

from typing import Any, override

from homeassistant.components.binary_sensor import BinarySensorDeviceClass, BinarySensorEntity
from homeassistant.const import EntityCategory

from .entity import AliciaChainEntity, platform_setup
from .models import AliciaConfigEntry

PARALLEL_UPDATES = 0


# The local engine problem sensor.
async_setup_entry = platform_setup(lambda _hass, entry: [LocalProblemSensor(entry)])


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
