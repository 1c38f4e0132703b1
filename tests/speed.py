"""Making the engine report slower synthesis (no timing assertions), and measuring now."""

from datetime import timedelta

from homeassistant.core import HomeAssistant
import homeassistant.util.dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.alicia_tts import measurements
from custom_components.alicia_tts.engine import PiperEngine, SynthesisJob
from custom_components.alicia_tts.measurements import MEASURE_DELAY, DeviceCheck, async_get_check


class ReportedClock:
    """A clock that only the engine's inferences move: ``rtf`` seconds per second of speech."""

    def __init__(self, rtf: float) -> None:
        """Start at 0."""
        self.rtf = rtf
        self.now = 0.0

    def __call__(self) -> float:
        """The time the inferences took so far."""
        return self.now


def slow_down(engine: PiperEngine, monkeypatch: pytest.MonkeyPatch, rtf: float) -> ReportedClock:
    """Make every inference of ``engine`` report ``rtf`` x its audio on the returned clock."""
    clock = ReportedClock(rtf)
    real = engine.infer

    def infer(job: SynthesisJob, ids: list[int]) -> bytes:
        pcm = real(job, ids)
        clock.now += len(pcm) / (2 * job.sample_rate) * clock.rtf
        return pcm

    monkeypatch.setattr(engine, "infer", infer)
    return clock


def slow_entry(
    entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch, rtf: float
) -> ReportedClock:
    """The entry's engine reports ``rtf`` to the device check's clock."""
    engine = entry.runtime_data.engine
    assert isinstance(engine, PiperEngine)
    clock = slow_down(engine, monkeypatch, rtf)
    monkeypatch.setattr(measurements, "CLOCK", clock)
    return clock


def check_of(hass: HomeAssistant, entry: MockConfigEntry) -> DeviceCheck:
    """The entry's device check (the entry must be loaded)."""
    check = async_get_check(hass, entry.entry_id)
    assert check is not None
    return check


async def measure_now(hass: HomeAssistant, entry: MockConfigEntry) -> DeviceCheck:
    """Let the start-up delay pass and wait for the entry's measurement."""
    check = check_of(hass, entry)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=MEASURE_DELAY + 1))
    await hass.async_block_till_done()
    await check.async_wait()
    await hass.async_block_till_done()
    return check
