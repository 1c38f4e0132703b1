"""The engine on each backend: the numpy engine speaks like onnxruntime, with nothing of piper.

With the noise scales at 0 both backends are deterministic, so the engine's own audio can be
compared sample by sample (the numpy backend's parity with onnxruntime's *noise* is tested in
test_numpy_backend.py).
"""

from collections.abc import AsyncGenerator
import math
from pathlib import Path
import sys

import numpy as np
import pytest

from custom_components.alicia_tts.backends import ENV_BACKEND, ENV_PHONEMIZER
from custom_components.alicia_tts.engine import PiperEngine, PiperUnavailableError
from custom_components.alicia_tts.options import SynthesisOptions
from custom_components.alicia_tts.voices import VoiceInfo, read_voice_info

from .conftest import JOE

TEXT = "The kitchen lights are now on. The front door is locked."
QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-noise ratio of ``other`` against ``reference`` (equal lengths)."""
    noise = float(np.sum((reference - other) ** 2))
    signal = float(np.sum(reference**2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


@pytest.fixture(autouse=True)
def no_forcing(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests choose their backend themselves."""
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    monkeypatch.delenv(ENV_PHONEMIZER, raising=False)


@pytest.fixture(name="joe_info")
def fixture_joe_info(joe_files: tuple[Path, Path]) -> VoiceInfo:
    """The packaged joe voice, described."""
    return read_voice_info(*joe_files)


@pytest.fixture(name="numpy_engine")
async def fixture_numpy_engine(joe_info: VoiceInfo) -> AsyncGenerator[PiperEngine]:
    """An engine forced onto the numpy backend."""
    engine = PiperEngine({JOE: joe_info}, backend="numpy")
    yield engine
    await engine.async_close()


async def synthesize(engine: PiperEngine, text: str, options: SynthesisOptions) -> np.ndarray:
    """The engine's PCM for ``text`` as float samples."""
    job = await engine.async_start(options, JOE)
    pcm = await job.synthesize(text)
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


async def test_numpy_backend_matches_onnxruntime(
    numpy_engine: PiperEngine, joe_info: VoiceInfo
) -> None:
    """Same text, same options, noise off: the same audio within 90 dB SNR, same length."""
    reference_engine = PiperEngine({JOE: joe_info}, backend="onnxruntime")
    try:
        reference = await synthesize(reference_engine, TEXT, QUIET)
        assert reference_engine.backend == "onnxruntime"
    finally:
        await reference_engine.async_close()
    ours = await synthesize(numpy_engine, TEXT, QUIET)
    assert numpy_engine.backend == "numpy"
    assert ours.shape == reference.shape
    assert snr_db(reference, ours) >= 90.0


async def test_numpy_backend_without_onnxruntime_or_piper_inference(
    joe_info: VoiceInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime absent (as on musl): auto picks numpy and still speaks, with options."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    engine = PiperEngine({JOE: joe_info})
    try:
        normal = await synthesize(engine, "Hello there.", SynthesisOptions())
        fast = await synthesize(engine, "Hello there.", SynthesisOptions(speed=2.0))
        assert engine.backend == "numpy"
        assert normal.size > 0
        assert np.max(np.abs(normal)) > 1000  # real speech, normalized
        assert fast.size < normal.size * 0.7  # speed scales the voice's length_scale
    finally:
        await engine.async_close()


async def test_forced_backend_that_cannot_run(
    joe_info: VoiceInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forcing onnxruntime where it cannot import is a typed 'unavailable' error."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    engine = PiperEngine({JOE: joe_info}, backend="onnxruntime")
    try:
        with pytest.raises(PiperUnavailableError, match="onnxruntime cannot be imported"):
            await engine.async_load_voice(JOE)
    finally:
        await engine.async_close()
