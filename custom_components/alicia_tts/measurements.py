"""The device check in Home Assistant: when to measure, where results live, the repair issue.

For each loaded entry with a local engine, the speed of the entry's voice on this machine is
looked up in a Home Assistant ``Store`` (``.storage/alicia_tts.device_check``), keyed by voice,
backend and CPU (``device_check.measurement_key``). Without a stored measurement, the voice is
measured in a background task of the entry (cancelled on unload) once Home Assistant has
started and :data:`MEASURE_DELAY` seconds have passed, so it never competes with start-up; the
"Measure speed" button measures again at once. The measurement itself runs through the
engine's admission at low priority (``device_check.async_measure``).

A long-sentence real-time factor above ``device_check.RTF_LIMIT`` raises the fixable repair
issue ``slow_voice_<entry_id>`` (fix flow: ``repairs.py``); a measurement within the limit
removes it.
"""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
import logging
import time
from typing import Any, Final

from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.storage import Store
from homeassistant.util.hass_dict import HassKey

from .catalog import voice_language
from .config_flow import async_load_voices
from .const import DOMAIN, ISSUE_SLOW_VOICE, ISSUE_SLOW_VOICE_NO_ALTERNATIVE
from .device_check import (
    RTF_LIMIT,
    Candidate,
    CpuInfo,
    Measurement,
    async_measure,
    measurement_key,
    read_cpu_info,
    recommend,
)
from .exceptions import EngineError
from .listeners import Listeners
from .models import AliciaConfigEntry

_LOGGER = logging.getLogger(__name__)

STORE_KEY: Final = f"{DOMAIN}.device_check"
STORE_VERSION: Final = 1
# Measurements kept (the newest); one per voice, backend and CPU.
MAX_STORED: Final = 32
# Seconds after Home Assistant has started before a voice without a measurement is measured.
MEASURE_DELAY: Final = 30.0

# The clock measurements use (tests replace it to make synthesis report slower).
CLOCK: Callable[[], float] = time.perf_counter

# Status of an entry's check.
UNAVAILABLE: Final = "unavailable"  # no local engine
PENDING: Final = "pending"  # waiting to measure
MEASURING: Final = "measuring"
MEASURED: Final = "measured"
FAILED: Final = "failed"

DATA_STORE: HassKey[MeasurementStore] = HassKey(f"{DOMAIN}_device_check_store")
DATA_CHECKS: HassKey[dict[str, DeviceCheck]] = HassKey(f"{DOMAIN}_device_checks")


class MeasurementStore:
    """All measurements of this Home Assistant, loaded once, saved after each change."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Nothing loaded yet."""
        self._store: Store[dict[str, Any]] = Store(hass, STORE_VERSION, STORE_KEY)
        self._measurements: dict[str, Measurement] | None = None

    async def _async_load(self) -> dict[str, Measurement]:
        if self._measurements is None:
            raw = await self._store.async_load() or {}
            measurements: dict[str, Measurement] = {}
            for key, value in (raw.get("measurements") or {}).items():
                try:
                    measurements[key] = Measurement.from_dict(value)
                except ValueError as err:
                    _LOGGER.debug("Ignoring stored measurement %s: %s", key, err)
            self._measurements = measurements
        return self._measurements

    async def async_get(self, key: str) -> Measurement | None:
        """The stored measurement under ``key``."""
        return (await self._async_load()).get(key)

    async def async_all(self) -> list[Measurement]:
        """Every stored measurement."""
        return list((await self._async_load()).values())

    async def async_put(self, measurement: Measurement) -> None:
        """Keep a measurement (the newest :data:`MAX_STORED` are kept)."""
        measurements = await self._async_load()
        measurements.pop(measurement.key, None)
        measurements[measurement.key] = measurement
        for old in sorted(measurements, key=lambda k: measurements[k].measured_at)[:-MAX_STORED]:
            del measurements[old]
        await self._store.async_save(
            {"measurements": {key: m.to_dict() for key, m in measurements.items()}}
        )


@callback
def async_get_measurement_store(hass: HomeAssistant) -> MeasurementStore:
    """The measurement store of this Home Assistant."""
    if (store := hass.data.get(DATA_STORE)) is None:
        store = hass.data[DATA_STORE] = MeasurementStore(hass)
    return store


async def async_machine_measurements(hass: HomeAssistant) -> list[Measurement]:
    """The stored measurements of this machine (same CPU facts), newest first.

    For estimates before an entry exists (the config flow's voice step): pass the first to
    ``device_check.estimate_seconds(quality, measurement, measured=<all of them>)``.
    """
    cpu = await hass.async_add_executor_job(read_cpu_info)
    stored = await async_get_measurement_store(hass).async_all()
    return sorted(
        (m for m in stored if m.cpu.fingerprint == cpu.fingerprint),
        key=lambda m: m.measured_at,
        reverse=True,
    )


@callback
def async_get_check(hass: HomeAssistant, entry_id: str) -> DeviceCheck | None:
    """The device check of a loaded entry."""
    return hass.data.get(DATA_CHECKS, {}).get(entry_id)


class DeviceCheck:
    """The device check of one loaded entry."""

    def __init__(self, hass: HomeAssistant, entry: AliciaConfigEntry) -> None:
        """Follow the entry's engine and voice."""
        self.hass = hass
        self.entry = entry
        self.engine = entry.runtime_data.engine
        self.voice = entry.runtime_data.voice
        self.cpu: CpuInfo | None = None
        self.measurement: Measurement | None = None
        self.status = PENDING if self.engine is not None else UNAVAILABLE
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None
        # Called when the status or the measurement changes (its entities follow it).
        self.listeners = Listeners()
        self._unsubs: list[CALLBACK_TYPE] = []

    @property
    def issue_id(self) -> str:
        """The entry's "voice too slow" repair issue."""
        return f"{ISSUE_SLOW_VOICE}_{self.entry.entry_id}"

    @property
    def key(self) -> str | None:
        """Where this entry's measurement is stored (None without engine or CPU facts)."""
        if self.engine is None or self.cpu is None or self.engine.backend is None:
            return None
        return measurement_key(self.voice, self.engine.backend, self.cpu)

    @property
    def running(self) -> bool:
        """Whether a measurement is under way."""
        return self._task is not None and not self._task.done()

    async def async_setup(self) -> None:
        """Use the stored measurement, or schedule one after start-up."""
        self.cpu = await self.hass.async_add_executor_job(read_cpu_info)
        if self.engine is None:
            return
        if (key := self.key) is not None and (
            stored := await async_get_measurement_store(self.hass).async_get(key)
        ) is not None:
            self.measurement = stored
            self.status = MEASURED
            await self.async_update_issue()
            return

        @callback
        def started(_hass: HomeAssistant) -> None:
            self._unsubs.append(
                async_call_later(
                    self.hass,
                    MEASURE_DELAY,
                    HassJob(self._async_delay_passed, cancel_on_shutdown=True),
                )
            )

        self._unsubs.append(async_at_started(self.hass, started))

    @callback
    def _async_delay_passed(self, _now: datetime) -> None:
        self.async_request()

    @callback
    def async_request(self) -> bool:
        """Measure now (in the background); False when there is no engine to measure."""
        if self.engine is None:
            return False
        if not self.running:
            self._task = self.entry.async_create_background_task(
                self.hass, self._async_measure(), f"{DOMAIN} device check {self.voice}"
            )
        return True

    async def _async_measure(self) -> None:
        engine = self.engine
        assert engine is not None
        assert self.cpu is not None  # read in async_setup, before any measurement
        self.status, self.error = MEASURING, None
        self.listeners.notify()
        quality = engine.voices[self.voice].quality if self.voice in engine.voices else None
        try:
            measurement = await async_measure(
                engine, self.voice, self.cpu, quality=quality, clock=CLOCK
            )
        except EngineError as err:
            self.status, self.error = FAILED, str(err)
            _LOGGER.warning("Measuring the speed of voice %s failed: %s", self.voice, err)
            self.listeners.notify()
            return
        await async_get_measurement_store(self.hass).async_put(measurement)
        self.measurement = measurement
        self.status = MEASURED
        _LOGGER.info(
            "Voice %s on %s (%s): real-time factor %.3f, first audio after %.2f s",
            self.voice,
            measurement.cpu.summary,
            measurement.backend,
            measurement.real_time_factor,
            measurement.short.first_audio_seconds,
        )
        await self.async_update_issue()
        self.listeners.notify()

    async def async_wait(self) -> None:
        """Wait for a running measurement (tests, the button)."""
        if self._task is not None:
            await self._task

    async def async_candidates(self) -> list[Candidate]:
        """Faster voices for this entry's language on this machine, best first."""
        if (measurement := self.measurement) is None:
            return []
        installed, catalog = await async_load_voices(self.hass)
        language = self.entry.data.get(CONF_LANGUAGE) or voice_language(
            self.voice, installed, catalog
        )
        taken = {
            e.unique_id
            for e in self.hass.config_entries.async_entries(DOMAIN)
            if e.entry_id != self.entry.entry_id and e.unique_id
        }
        return recommend(
            measurement,
            language,
            installed,
            catalog,
            exclude=taken,
            measured=await async_get_measurement_store(self.hass).async_all(),
        )

    async def async_update_issue(self) -> None:
        """Raise or remove the "voice too slow" issue for the current measurement."""
        measurement = self.measurement
        if measurement is None or not measurement.too_slow():
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
            return
        candidates = await self.async_candidates()
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.issue_id,
            is_fixable=bool(candidates),
            severity=ir.IssueSeverity.WARNING,
            # A fixable issue's text is its fix flow's (hassfest: fix_flow xor description).
            translation_key=ISSUE_SLOW_VOICE if candidates else ISSUE_SLOW_VOICE_NO_ALTERNATIVE,
            translation_placeholders=issue_placeholders(self.entry.title, measurement),
            data={"entry_id": self.entry.entry_id},
        )

    @callback
    def async_unload(self) -> None:
        """Stop waiting; the entry's background task is cancelled by Home Assistant."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
        checks = self.hass.data.get(DATA_CHECKS, {})
        if checks.get(self.entry.entry_id) is self:
            del checks[self.entry.entry_id]

    def as_diagnostics(self) -> dict[str, Any]:
        """The check for the entry's diagnostics."""
        measurement = self.measurement
        data = measurement.to_dict() if measurement is not None else None
        if data is not None:
            data["measured_at"] = datetime.fromtimestamp(data["measured_at"], UTC).isoformat()
        return {
            "status": self.status,
            "error": self.error,
            "limit": RTF_LIMIT,
            "too_slow": measurement.too_slow() if measurement is not None else None,
            "cpu": None
            if self.cpu is None
            else {
                "model": self.cpu.model,
                "cores": self.cpu.cores,
                "architecture": self.cpu.architecture,
                "libc": self.cpu.libc,
            },
            "measurement": data,
        }


def issue_placeholders(title: str, measurement: Measurement) -> dict[str, str]:
    """The numbers the "voice too slow" issue and its fix flow show."""
    return {
        "entry": title,
        "voice": measurement.voice,
        "rtf": f"{measurement.real_time_factor:.2f}",
        "limit": f"{RTF_LIMIT:g}",
        "long_seconds": f"{measurement.long.synthesis_seconds:.1f}",
        "long_audio": f"{measurement.long.audio_seconds:.1f}",
        "first_audio": f"{measurement.short.first_audio_seconds:.2f}",
        "backend": measurement.backend,
        "cpu": measurement.cpu.summary,
    }


async def async_setup_device_check(hass: HomeAssistant, entry: AliciaConfigEntry) -> None:
    """Start an entry's device check (before its platforms are set up)."""
    check = DeviceCheck(hass, entry)
    hass.data.setdefault(DATA_CHECKS, {})[entry.entry_id] = check
    entry.async_on_unload(check.async_unload)
    await check.async_setup()
