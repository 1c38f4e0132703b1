"""Which backend and which espeak-ng runner run here: automatic, forced, and clear failures."""

from pathlib import Path
import sys

import pytest

from custom_components.alicia_tts.backends import (
    ENV_BACKEND,
    ENV_PHONEMIZER,
    EspeakAssets,
    StackUnavailableError,
    choose_backend,
    open_runner,
)


@pytest.fixture(autouse=True)
def no_forcing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without the CI's forcing variables."""
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    monkeypatch.delenv(ENV_PHONEMIZER, raising=False)


def test_auto_prefers_onnxruntime() -> None:
    """onnxruntime imports here, so auto takes it."""
    assert choose_backend(None) == "onnxruntime"
    assert choose_backend("auto") == "onnxruntime"


def test_auto_falls_back_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without onnxruntime (musl) the numpy engine runs."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert choose_backend(None) == "numpy"


def test_forced_backend_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The option forces a backend; the environment wins over the option."""
    assert choose_backend("numpy") == "numpy"
    monkeypatch.setenv(ENV_BACKEND, "numpy")
    assert choose_backend("onnxruntime") == "numpy"


def test_forced_backend_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forced backend that cannot import is an error naming it, not a silent switch."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(StackUnavailableError, match="onnxruntime cannot be imported"):
        choose_backend("onnxruntime")


def test_no_backend_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither backend: the error names both."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(StackUnavailableError, match=r"onnxruntime.*numpy"):
        choose_backend(None)


def test_unknown_preference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt value is refused with the allowed ones."""
    monkeypatch.setenv(ENV_BACKEND, "tract")
    with pytest.raises(StackUnavailableError, match="not one of"):
        choose_backend(None)
    monkeypatch.setenv(ENV_PHONEMIZER, "gruut")
    with pytest.raises(StackUnavailableError, match="not one of"):
        open_runner(None, EspeakAssets())


def test_runner_auto_is_the_bridge() -> None:
    """piper's bridge imports here, so auto takes it."""
    assert open_runner(None, EspeakAssets()).name == "bridge"


def test_no_runner_names_every_cause(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No bridge and no WebAssembly module: one error lists why each runner cannot run."""
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(StackUnavailableError) as caught:
        open_runner(None, EspeakAssets(data_dir=tmp_path))
    text = str(caught.value)
    assert "bridge:" in text
    assert "wasi: the WASI espeak-ng module is not installed" in text
    assert "emscripten: the espeak-ng WebAssembly module is not installed" in text


def test_wasi_needs_data(tmp_path: Path) -> None:
    """A WASI module without espeak-ng's data is not enough."""
    module = tmp_path / "espeak-ng.wasm"
    module.write_bytes(b"\0asm")
    with pytest.raises(StackUnavailableError, match="data is not installed"):
        open_runner("wasi", EspeakAssets(wasi_module=module, data_dir=tmp_path / "missing"))
