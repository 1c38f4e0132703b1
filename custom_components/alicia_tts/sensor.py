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

from .backends import BACKENDS
from .chain import NONE, EngineChain
from .device_check import RTF_LIMIT
from .entity import AliciaChainEntity, DeviceCheckEntity, platform_setup
from .measurements import DeviceCheck, async_get_check
from .models import AliciaConfigEntry
from .options import LOCAL

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


def _sensors(hass: HomeAssistant, entry: AliciaConfigEntry) -> list[SensorEntity]:
    """The chain's sensors, and the device check's real-time factor."""
    sensors: list[SensorEntity] = [
        ActiveEngineSensor(entry),
        BackendSensor(entry),
        *(ChainSensor(entry, description) for description in SENSORS),
    ]
    if (check := async_get_check(hass, entry.entry_id)) is not None:
        sensors.append(RealTimeFactorSensor(check))
    return sensors


async_setup_entry = platform_setup(_sensors)


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


class RealTimeFactorSensor(DeviceCheckEntity, SensorEntity):
    """The device check: real-time factor of the entry's voice on this machine (long sentence).

    Attributes: the numbers of both check sentences, backend, phonemizer, CPU, the limit.
    """

    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 3

    def __init__(self, check: DeviceCheck) -> None:
        """Read the entry's device check."""
        super().__init__(check, "real_time_factor")

    @property
    @override
    def native_value(self) -> float | None:
        """Synthesis time per second of speech (None until measured)."""
        measurement = self._check.measurement
        return round(measurement.real_time_factor, 4) if measurement is not None else None

    @property
    @override
    def extra_state_attributes(self) -> dict[str, str | float | int | bool | None]:
        """How it was measured, and what was measured."""
        check = self._check
        measurement = check.measurement
        attributes: dict[str, str | float | int | bool | None] = {
            "status": check.status,
            "limit": RTF_LIMIT,
        }
        if measurement is not None:
            attributes |= {
                "too_slow": measurement.too_slow(),
                "first_audio_short": round(measurement.short.first_audio_seconds, 3),
                "synthesis_short": round(measurement.short.synthesis_seconds, 3),
                "audio_short": round(measurement.short.audio_seconds, 3),
                "first_audio_long": round(measurement.long.first_audio_seconds, 3),
                "synthesis_long": round(measurement.long.synthesis_seconds, 3),
                "audio_long": round(measurement.long.audio_seconds, 3),
                "backend": measurement.backend,
                "phonemizer": measurement.phonemizer,
                "cpu": measurement.cpu.model,
                "cores": measurement.cpu.cores,
                "architecture": measurement.cpu.architecture,
                "libc": measurement.cpu.libc,
            }
        return attributes
