"""The device check in a real Home Assistant: measured after start-up, stored, sensor, button."""

import asyncio
from dataclasses import replace
from typing import Any

from homeassistant.components.button import ButtonEntity
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.entity_component import EntityComponent
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts import measurements
from custom_components.alicia_tts.backends import choose_backend
from custom_components.alicia_tts.const import CONF_VOICE, DOMAIN, ISSUE_SLOW_VOICE
from custom_components.alicia_tts.device_check import (
    CpuInfo,
    Measurement,
    SentenceTiming,
    read_cpu_info,
)
from custom_components.alicia_tts.measurements import (
    FAILED,
    MAX_STORED,
    MEASURED,
    MEASURING,
    PENDING,
    STORE_KEY,
    UNAVAILABLE,
    async_get_measurement_store,
    async_machine_measurements,
)

from .conftest import JOE, entity_state
from .speed import check_of, measure_now, slow_entry

SENSOR = "sensor.alicia_tts_real_time_factor"
BUTTON = "button.alicia_tts_measure_speed"


def stored(hass_storage: dict[str, Any]) -> dict[str, Any]:
    """The measurements in .storage."""
    measurements_: dict[str, Any] = hass_storage[STORE_KEY]["data"]["measurements"]
    return measurements_


async def press(hass: HomeAssistant) -> None:
    """Press "Measure speed"."""
    await hass.services.async_call("button", "press", {"entity_id": BUTTON}, blocking=True)


async def test_fresh_entry_records_its_measurement(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    init_integration: MockConfigEntry,
    hass_storage: dict[str, Any],
    hass_client: ClientSessionGenerator,
    entity_registry: er.EntityRegistry,
) -> None:
    """A new voice is measured after start-up: stored, on the sensor, in diagnostics."""
    entry = init_integration
    check = check_of(hass, entry)
    assert check.status == PENDING
    assert not check.running  # not during start-up: after MEASURE_DELAY
    assert entity_state(hass, SENSOR) == STATE_UNKNOWN
    assert STORE_KEY not in hass_storage
    for entity_id in (SENSOR, BUTTON):
        registered = entity_registry.async_get(entity_id)
        assert registered is not None
        assert registered.entity_category is not None
        assert registered.entity_category.value == "diagnostic"

    check = await measure_now(hass, entry)
    assert check.status == MEASURED
    measurement = check.measurement
    assert measurement is not None
    engine = entry.runtime_data.engine
    assert engine is not None
    assert measurement.voice == JOE
    assert measurement.quality == "medium"
    assert measurement.backend == engine.backend
    assert measurement.phonemizer == engine.phonemizer
    assert measurement.cpu == await hass.async_add_executor_job(read_cpu_info)
    assert measurement.real_time_factor > 0
    assert stored(hass_storage) == {measurement.key: measurement.to_dict()}

    state = hass.states.get(SENSOR)
    assert state is not None
    assert float(state.state) == round(measurement.real_time_factor, 4)
    assert state.attributes["state_class"] == "measurement"
    assert "unit_of_measurement" not in state.attributes
    assert state.attributes["status"] == MEASURED
    assert state.attributes["limit"] == 0.5
    assert state.attributes["backend"] == engine.backend
    assert state.attributes["cores"] == measurement.cpu.cores
    assert state.attributes["audio_long"] > state.attributes["audio_short"] > 0
    # The issue follows the measured figure (whatever this machine's speed is).
    issue = issue_registry.async_get_issue(DOMAIN, f"{ISSUE_SLOW_VOICE}_{entry.entry_id}")
    assert (issue is not None) == measurement.too_slow()

    assert await async_setup_component(hass, "diagnostics", {})
    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    facts = result["platform"]["device_check"]
    assert facts["status"] == MEASURED
    assert facts["limit"] == 0.5
    assert facts["cpu"]["cores"] == measurement.cpu.cores
    assert facts["measurement"]["long"]["synthesis_seconds"] == measurement.long.synthesis_seconds
    assert facts["measurement"]["measured_at"].endswith("+00:00")


def _measurement(cpu: CpuInfo, backend: str, rtf: float) -> Measurement:
    sentence = SentenceTiming(
        characters=10, audio_seconds=5.0, synthesis_seconds=5.0 * rtf, first_audio_seconds=1.0
    )
    return Measurement(
        voice=JOE,
        quality="medium",
        backend=backend,
        phonemizer="bridge",
        cpu=cpu,
        short=sentence,
        long=sentence,
        measured_at=1_700_000_000.0,
    )


async def test_restart_uses_the_stored_measurement(
    hass: HomeAssistant,
    setup_ha: None,
    config_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A measurement in .storage for this voice, backend and CPU is used: no new measurement."""
    cpu = await hass.async_add_executor_job(read_cpu_info)
    backend = await hass.async_add_executor_job(choose_backend, None)
    previous = _measurement(cpu, backend, 0.05)
    other_cpu = _measurement(CpuInfo(model="x", cores=1, architecture="y", libc="z"), backend, 9)
    hass_storage[STORE_KEY] = {
        "version": 1,
        "key": STORE_KEY,
        "data": {
            "measurements": {
                previous.key: previous.to_dict(),
                other_cpu.key: other_cpu.to_dict(),
                "broken": {"voice": JOE},
            }
        },
    }
    runs: list[str] = []

    async def counted(*args: Any, **kwargs: Any) -> Measurement:
        runs.append(args[1])
        raise AssertionError("measured again")

    monkeypatch.setattr(measurements, "async_measure", counted)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    check = check_of(hass, config_entry)
    assert config_entry.runtime_data.engine is not None
    assert config_entry.runtime_data.engine.backend == backend
    assert check.status == MEASURED
    assert check.measurement == previous
    assert float(entity_state(hass, SENSOR)) == 0.05
    await measure_now(hass, config_entry)  # the start-up delay passes: nothing to do
    assert runs == []
    assert len(await async_get_measurement_store(hass).async_all()) == 2  # broken one dropped
    # Estimates for a new entry use this machine's measurements only.
    newer = replace(previous, voice="en_US-amy-low", quality="low", measured_at=1_800_000_000.0)
    await async_get_measurement_store(hass).async_put(newer)
    assert await async_machine_measurements(hass) == [newer, previous]


async def test_button_measures_again(
    hass: HomeAssistant, init_integration: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Measure speed" measures at once (one at a time) and replaces the stored figure."""
    entry = init_integration
    check = check_of(hass, entry)
    slow_entry(entry, monkeypatch, 0.1)
    await press(hass)
    assert check.running
    assert check.status == MEASURING
    assert entity_state(hass, SENSOR) == STATE_UNKNOWN
    task = check._task
    await press(hass)  # still running: the same measurement
    assert check._task is task
    await check.async_wait()
    await hass.async_block_till_done()
    assert check.status == MEASURED
    assert float(entity_state(hass, SENSOR)) == pytest.approx(0.1)

    slow_entry(entry, monkeypatch, 0.2)
    await press(hass)
    await check.async_wait()
    await hass.async_block_till_done()
    assert float(entity_state(hass, SENSOR)) == pytest.approx(0.2)
    assert len(await async_get_measurement_store(hass).async_all()) == 1


async def test_store_keeps_the_newest(hass: HomeAssistant, hass_storage: dict[str, Any]) -> None:
    """At most MAX_STORED measurements are kept, the newest."""
    store = async_get_measurement_store(hass)
    cpus = [CpuInfo(model=f"cpu{i}", cores=1, architecture="a", libc="l") for i in range(40)]
    for number, cpu in enumerate(cpus):
        await store.async_put(replace(_measurement(cpu, "numpy", 0.1), measured_at=float(number)))
    kept = await store.async_all()
    assert len(kept) == MAX_STORED
    assert min(m.measured_at for m in kept) == 40 - MAX_STORED
    assert len(stored(hass_storage)) == MAX_STORED


async def test_measurement_failure(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Piper failing during the check: status failed with the reason; nothing stored."""
    engine = init_integration.runtime_data.engine
    assert engine is not None

    def broken(*args: Any) -> bytes:
        raise RuntimeError("onnxruntime: bad allocation")

    monkeypatch.setattr(engine, "infer", broken)
    check = await measure_now(hass, init_integration)
    assert check.status == FAILED
    assert check.error is not None
    assert "bad allocation" in check.error
    assert "Measuring the speed of voice" in caplog.text
    state = hass.states.get(SENSOR)
    assert state is not None
    assert state.state == STATE_UNKNOWN
    assert state.attributes["status"] == FAILED
    assert await async_get_measurement_store(hass).async_all() == []


async def test_unload_cancels_the_measurement(
    hass: HomeAssistant, init_integration: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unloading the entry stops a running measurement."""
    started = asyncio.Event()

    async def forever(*args: Any, **kwargs: Any) -> Measurement:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(measurements, "async_measure", forever)
    check = check_of(hass, init_integration)
    await press(hass)
    await started.wait()
    task = check._task
    assert task is not None
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert task.cancelled()
    assert measurements.async_get_check(hass, init_integration.entry_id) is None


async def test_no_local_engine(
    hass: HomeAssistant, setup_ha: None, no_packaged_voice: None
) -> None:
    """Without a local engine the check is unavailable; the button refuses, translated."""
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, unique_id=JOE)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.engine is None
    check = check_of(hass, entry)
    assert check.status == UNAVAILABLE
    assert not check.async_request()
    assert entity_state(hass, SENSOR) == STATE_UNAVAILABLE
    assert entity_state(hass, BUTTON) == STATE_UNAVAILABLE
    assert check.as_diagnostics()["measurement"] is None
    component: EntityComponent[ButtonEntity] = hass.data["entity_components"]["button"]
    button = component.get_entity(BUTTON)
    assert button is not None
    with pytest.raises(HomeAssistantError) as err:
        await button.async_press()
    assert err.value.translation_key == "measure_unavailable"
