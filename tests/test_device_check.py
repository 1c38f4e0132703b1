"""The device check's pure core: CPU facts, measuring a real engine, estimates, recommendations."""

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
import platform
from typing import Any

import pytest

from custom_components.alicia_tts import device_check
from custom_components.alicia_tts.catalog import CatalogFile, CatalogVoice
from custom_components.alicia_tts.device_check import (
    LONG_SENTENCE,
    RELATIVE_COST,
    RTF_LIMIT,
    SHORT_SENTENCE,
    CpuInfo,
    Measurement,
    SentenceTiming,
    async_measure,
    estimate_rtf,
    estimate_seconds,
    measurement_key,
    parse_cpu_model,
    read_cpu_info,
    recommend,
    voice_family,
)
from custom_components.alicia_tts.engine import EngineBusyError, PiperEngine
from custom_components.alicia_tts.options import SynthesisOptions
from custom_components.alicia_tts.voices import VoiceInfo, discover_voices

from .conftest import JOE
from .speed import slow_down

CPU = CpuInfo(model="Cortex-A72", cores=4, architecture="aarch64", libc="glibc 2.36")


def timing(rtf: float, audio: float = 6.0) -> SentenceTiming:
    """A sentence measured at ``rtf``."""
    return SentenceTiming(
        characters=100,
        audio_seconds=audio,
        synthesis_seconds=audio * rtf,
        first_audio_seconds=audio * rtf,
    )


def measured(
    rtf: float, voice: str = JOE, quality: str | None = "medium", cpu: CpuInfo = CPU
) -> Measurement:
    """A measurement of ``voice`` at ``rtf``."""
    return Measurement(
        voice=voice,
        quality=quality,
        backend="onnxruntime",
        phonemizer="bridge",
        cpu=cpu,
        short=timing(rtf, 1.5),
        long=timing(rtf),
        measured_at=1_700_000_000.0,
    )


def info(key: str, quality: str | None, language: str = "en-US") -> VoiceInfo:
    """An installed voice (files are never opened here)."""
    name = key.split("-")[1].title()
    return VoiceInfo(
        key=key,
        model_path=Path(f"{key}.onnx"),
        config_path=Path(f"{key}.onnx.json"),
        language=language,
        name=name,
        quality=quality,
    )


def listed(key: str, quality: str, language: str = "en-US", size: int = 60_000_000) -> CatalogVoice:
    """A downloadable voice."""
    name = key.split("-")[1].title()
    return CatalogVoice(
        key=key,
        name=name,
        language=language,
        language_name="English (United States)",
        quality=quality,
        num_speakers=1,
        model=CatalogFile(path=f"x/{key}.onnx", size=size, md5="0" * 32),
        config=CatalogFile(path=f"x/{key}.onnx.json", size=5000, md5="0" * 32),
    )


# -- CPU facts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "model"),
    [
        (
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  9R14 96-Core"
            " Processor\nprocessor\t: 1\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n",
            "AMD EPYC 9R14 96-Core Processor",
        ),
        (  # Raspberry Pi 4 (aarch64): no model name, the board's Model line; Serial never read
            "processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
            "Revision\t: c03114\nSerial\t\t: 10000000abcdef\nModel\t\t: Raspberry Pi 4 Model B"
            " Rev 1.4\n",
            "Raspberry Pi 4 Model B Rev 1.4",
        ),
        (
            "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n",
            "ARM implementer 0x41 part 0xd0b",
        ),
        (
            "processor\t: 0\nProcessor\t: ARMv7 Processor rev 4 (v7l)\n",
            "ARMv7 Processor rev 4 (v7l)",
        ),
        ("", None),
        ("garbage without colons\n", None),
    ],
)
def test_parse_cpu_model(text: str, model: str | None) -> None:
    """The CPU or board name from /proc/cpuinfo on x86, Raspberry Pi, other ARM."""
    assert parse_cpu_model(text) == model


def test_read_cpu_info(tmp_path: Path) -> None:
    """Model from the file, cores, architecture and libc from this machine."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Test CPU 3000\n", encoding="utf-8")
    cpu = read_cpu_info(cpuinfo)
    assert cpu.model == "Test CPU 3000"
    assert cpu.cores >= 1
    assert cpu.architecture
    assert cpu.libc.startswith("glibc")
    assert cpu.fingerprint == f"Test CPU 3000|{cpu.cores}|{cpu.architecture}|{cpu.libc}"
    assert cpu.summary.startswith("Test CPU 3000, ")
    missing = read_cpu_info(tmp_path / "absent")
    assert missing.model  # platform.processor() or "unknown"


def test_libc_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """glibc with its version; musl recognized by its loader; else unknown."""
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.41"))
    assert device_check.libc_name() == "glibc 2.41"
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    loaders: list[str] = []
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter(loaders))
    assert device_check.libc_name() == "unknown"
    loaders.append("/lib/ld-musl-aarch64.so.1")
    assert device_check.libc_name() == "musl"


# -- measurements ------------------------------------------------------------------------------


def test_measurement_round_trip_and_key() -> None:
    """Stored as JSON and read back; broken records are refused; the key names voice+backend+CPU."""
    measurement = measured(0.25)
    data = measurement.to_dict()
    assert data["long"]["real_time_factor"] == 0.25
    assert Measurement.from_dict(data) == measurement
    assert measurement.key == measurement_key(JOE, "onnxruntime", CPU)
    assert measurement.key == f"{JOE}|onnxruntime|Cortex-A72|4|aarch64|glibc 2.36"
    assert not measurement.too_slow()
    assert measured(0.51).too_slow()
    for broken in ({}, {**data, "cpu": None}, {**data, "long": {"audio_seconds": "x"}}):
        with pytest.raises(ValueError, match="not a measurement"):
            Measurement.from_dict(broken)
    silent = SentenceTiming(
        characters=1, audio_seconds=0.0, synthesis_seconds=1.0, first_audio_seconds=1.0
    )
    assert silent.real_time_factor == 0.0


@pytest.fixture
async def engine() -> AsyncGenerator[PiperEngine]:
    """Real Piper with the real joe voice, loaded."""
    piper = PiperEngine(discover_voices(Path("/nonexistent")))
    await piper.async_load_voice(JOE)
    yield piper
    await piper.async_close()


async def test_measure_real_engine(engine: PiperEngine) -> None:
    """Real synthesis: plausible audio lengths; figures are positive and consistent."""
    measurement = await async_measure(engine, JOE, CPU, quality="medium", wall_clock=lambda: 42.0)
    assert measurement.voice == JOE
    assert measurement.backend == engine.backend
    assert measurement.phonemizer == engine.phonemizer
    assert measurement.measured_at == 42.0
    assert measurement.short.characters == len(SHORT_SENTENCE)
    assert measurement.long.characters == len(LONG_SENTENCE)
    assert 0.8 < measurement.short.audio_seconds < 3.0
    assert 4.0 < measurement.long.audio_seconds < 12.0
    for sentence in (measurement.short, measurement.long):
        assert 0 < sentence.first_audio_seconds <= sentence.synthesis_seconds
        assert sentence.real_time_factor > 0
    assert engine.active_requests == 0  # every slot given back


async def test_measure_reports_the_slowed_engine(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a clock moved by the inferences, the measured factor is exactly theirs."""
    clock = slow_down(engine, monkeypatch, 0.8)
    measurement = await async_measure(engine, JOE, CPU, clock=clock)
    assert measurement.real_time_factor == pytest.approx(0.8)
    assert measurement.short.real_time_factor == pytest.approx(0.8)
    assert measurement.too_slow()


async def test_measure_waits_for_real_requests_and_remeasures(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real request in flight is waited for; a sentence it overlapped is measured again."""
    clock = slow_down(engine, monkeypatch, 0.3)
    real = await engine.async_start(SynthesisOptions(), JOE)  # a request holding a slot
    runs: list[int] = []
    original = device_check._time_sentence

    async def counting(*args: Any) -> tuple[SentenceTiming, bool]:
        runs.append(engine.active_requests)
        result = await original(*args)
        if len(runs) == 2:  # the short sentence's first run: disturbed, slow
            return timing(5.0), False
        return result

    monkeypatch.setattr(device_check, "_time_sentence", counting)
    task = asyncio.create_task(async_measure(engine, JOE, CPU, clock=clock, idle_poll=0.01))
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert runs == []  # waiting for the engine to be idle
    real.release()
    measurement = await task
    assert len(runs) == 4  # warm-up, short twice (disturbed, then undisturbed), long
    assert measurement.short.real_time_factor == pytest.approx(0.3)  # the fastest run kept


async def test_measure_gives_way_when_engine_is_full(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full engine refuses the measurement's sentences: it tries again, then gives up."""

    async def busy(*args: Any) -> tuple[SentenceTiming, bool]:
        raise EngineBusyError("full", active="8", waiting="0", max="0")

    monkeypatch.setattr(device_check, "_time_sentence", busy)
    with pytest.raises(EngineBusyError):
        await async_measure(engine, JOE, CPU, idle_patience=0)


# -- estimates ---------------------------------------------------------------------------------


def test_estimates_scale_with_documented_costs() -> None:
    """Relative costs: x_low < low < medium (1) < high; measured voices of a quality win."""
    assert RELATIVE_COST["x_low"] < RELATIVE_COST["low"] < RELATIVE_COST["medium"] == 1.0
    assert RELATIVE_COST["high"] > 1.0
    medium = measured(0.6)
    assert estimate_rtf("medium", medium) == pytest.approx(0.6)
    assert estimate_rtf("low", medium) == pytest.approx(0.6 * RELATIVE_COST["low"])
    assert estimate_rtf("high", medium) == pytest.approx(0.6 * RELATIVE_COST["high"])
    assert estimate_rtf(None, medium) == pytest.approx(0.6)  # unknown counts as medium
    high = measured(0.9, voice="en_US-lessac-high", quality="high")
    assert estimate_rtf("medium", high) == pytest.approx(0.9 / RELATIVE_COST["high"])
    assert estimate_seconds("low", medium) == pytest.approx(6.0 * 0.6 * RELATIVE_COST["low"])
    assert estimate_seconds("medium", medium, audio_seconds=10) == pytest.approx(6.0)
    # A measured low voice on the same CPU and backend replaces the documented cost.
    low_measured = measured(0.2, voice="en_US-amy-low", quality="low")
    other_cpu = measured(0.01, voice="en_US-ryan-low", quality="low", cpu=CpuInfo(
        model="Fast", cores=64, architecture="x86_64", libc="glibc 2.41"
    ))  # fmt: skip
    assert estimate_rtf("low", medium, [low_measured, other_cpu]) == pytest.approx(0.2)
    assert estimate_seconds("low", medium, measured=[low_measured]) == pytest.approx(1.2)


def test_voice_family() -> None:
    """The key without its quality."""
    assert voice_family("en_US-joe-medium") == "en_US-joe"
    assert voice_family("en_US-lessac-x_low") == "en_US-lessac"
    assert voice_family("my-own-voice") == "my-own-voice"
    assert voice_family("plain") == "plain"


# -- recommendations ---------------------------------------------------------------------------


def test_recommend_same_family_lower_quality_first() -> None:
    """The family's best quality within the limit first, then other fitting voices."""
    installed = {JOE: info(JOE, "medium"), "en_US-amy-low": info("en_US-amy-low", "low")}
    catalog = {
        "en_US-joe-low": listed("en_US-joe-low", "low"),
        "en_US-joe-x_low": listed("en_US-joe-x_low", "x_low"),
        "en_US-danny-low": listed("en_US-danny-low", "low"),
        "en_US-ryan-medium": listed("en_US-ryan-medium", "medium"),
        "de_DE-thorsten-low": listed("de_DE-thorsten-low", "low", language="de-DE"),
    }
    picks = recommend(measured(0.6), "en-US", installed, catalog)
    assert [c.key for c in picks] == ["en_US-joe-low", "en_US-amy-low", "en_US-danny-low"]
    first = picks[0]
    assert first.same_family
    assert not first.installed
    assert first.size == 60_005_000
    assert first.language == "en-US"
    assert first.estimated_rtf == pytest.approx(0.6 * RELATIVE_COST["low"])
    assert first.fits
    assert picks[1].installed  # installed before downloadable at the same quality
    assert picks[1].size == 0
    # Slower: low no longer fits, x_low does.
    picks = recommend(measured(1.0), "en-US", installed, catalog)
    assert [c.key for c in picks] == ["en_US-joe-x_low"]
    # Much slower: nothing fits; the family's fastest, alone.
    picks = recommend(measured(3.0), "en-US", installed, catalog)
    assert [c.key for c in picks] == ["en_US-joe-x_low"]
    assert not picks[0].fits


def test_recommend_other_voices_and_exclusions() -> None:
    """No lower quality of the family: the best voices of the language within the limit."""
    high = measured(0.7, voice="en_US-lessac-high", quality="high")
    installed = {"en_US-lessac-high": info("en_US-lessac-high", "high")}
    catalog = {
        "en_US-ryan-medium": listed("en_US-ryan-medium", "medium"),
        "en_US-amy-medium": listed("en_US-amy-medium", "medium"),
        "en_US-amy-low": listed("en_US-amy-low", "low"),
    }
    picks = recommend(high, "en-US", installed, catalog, exclude={"en_US-ryan-medium"})
    assert [c.key for c in picks] == ["en_US-amy-medium", "en_US-amy-low"]
    assert [c.key for c in recommend(high, "en-US", installed, catalog, max_candidates=1)] == [
        "en_US-amy-medium"
    ]
    # Nothing within the limit and no family: the fastest voices that are still faster.
    picks = recommend(measured(5.0), "en-US", {}, catalog)
    assert [c.key for c in picks] == ["en_US-amy-low"]
    assert recommend(measured(5.0), "fr-FR", {}, catalog) == []
    assert RTF_LIMIT == 0.5
