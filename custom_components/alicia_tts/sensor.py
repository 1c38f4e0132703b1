"""Sensors of the engine chain: active engine, usage counters, last latency."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import override

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .backends import BACKENDS
from .chain import LOCAL, NONE, EngineChain
from .entity import AliciaChainEntity
from .models import AliciaConfigEntry

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ChainSensorDescription(SensorEntityDescription):
    """How a sensor reads the chain."""

    value: Callable[[EngineChain], int | float | str | None]


def _fallback_total(chain: EngineChain, what: str) -> int:
    return sum(
        int(getattr(stats, what)) for engine, stats in chain.stats.items() if engine != LOCAL
    )


SENSORS: tuple[ChainSensorDescription, ...] = (
    ChainSensorDescription(
        key="local_syntheses",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value=lambda chain: chain.stats[LOCAL].calls - chain.stats[LOCAL].failures,
    ),
    ChainSensorDescription(
        key="fallback_syntheses",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value=lambda chain: _fallback_total(chain, "calls") - _fallback_total(chain, "failures"),
    ),
    ChainSensorDescription(
        key="failures",
        state_class=SensorStateClass.TOTAL_INCREASING,
        entity_category=EntityCategory.DIAGNOSTIC,
        value=lambda chain: sum(s.failures for s in chain.stats.values()),
    ),
    ChainSensorDescription(
        key="last_latency",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value=lambda chain: (
            chain.stats[chain.active].last_latency_ms if chain.active in chain.stats else None
        ),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the chain's sensors."""
    async_add_entities(
        [
            ActiveEngineSensor(entry),
            BackendSensor(entry),
            *(ChainSensor(entry, description) for description in SENSORS),
        ]
    )


class ActiveEngineSensor(AliciaChainEntity, SensorEntity):
    """Which engine spoke last (``local``, a fallback engine's entity id, or ``none``)."""

    _attr_device_class = SensorDeviceClass.ENUM

    def __init__(self, entry: AliciaConfigEntry) -> None:
        """Options: local, every fallback engine, none."""
        super().__init__(entry, "active_engine")
        self._attr_options = [LOCAL, *self._chain.fallbacks, NONE]

    @property
    @override
    def native_value(self) -> str:
        """The engine that produced the last audio."""
        return self._chain.active


class BackendSensor(AliciaChainEntity, SensorEntity):
    """Which backend runs the local voice (onnxruntime, numpy, none), and its phonemizer."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, entry: AliciaConfigEntry) -> None:
        """Read the entry's engine (None: local unavailable)."""
        super().__init__(entry, "backend")
        self._attr_options = [*BACKENDS, NONE]
        self._engine = entry.runtime_data.engine

    @property
    @override
    def native_value(self) -> str:
        """The inference backend of the loaded voice."""
        return (self._engine.backend if self._engine else None) or NONE

    @property
    @override
    def extra_state_attributes(self) -> dict[str, str | None]:
        """The espeak-ng phonemizer (bridge, wasi, emscripten)."""
        return {"phonemizer": self._engine.phonemizer if self._engine else None}


class ChainSensor(AliciaChainEntity, SensorEntity):
    """A counter or measurement of the chain."""

    entity_description: ChainSensorDescription

    def __init__(self, entry: AliciaConfigEntry, description: ChainSensorDescription) -> None:
        """Describe the sensor."""
        super().__init__(entry, description.key)
        self.entity_description = description

    @property
    @override
    def native_value(self) -> int | float | str | None:
        """Read the chain."""
        return self.entity_description.value(self._chain)
