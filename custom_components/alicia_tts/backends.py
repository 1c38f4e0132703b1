"""What runs Piper here: the inference backend and the espeak-ng runner. Pure: no Home Assistant.

A Piper voice is its config, a phonemizer and an inference session with the ``run()`` shape of
``onnxruntime.InferenceSession``. Two backends run the session:

- ``onnxruntime``: where it imports (glibc installs, with piper-tts);
- ``numpy``: the project's own ONNX interpreter (``numpy_backend.py``), for musl (HA OS,
  Supervised, Container), where onnxruntime has no wheels.

Three runners run espeak-ng (see ``phonemes.py``): piper's compiled ``bridge`` where it imports,
else ``wasi`` (the project's WASI build of espeak-ng, when the release ships it), else
``emscripten`` (the npm build of the espeak-ng command line, fetched at setup).

``auto`` takes the first that works. The entry option ``backend`` and the environment variables
``ALICIA_TTS_BACKEND`` / ``ALICIA_TTS_PHONEMIZER`` (tests, the benchmark, CI) force one; the
environment wins over the option. Everything here blocks (imports, file reads): run it in an
executor.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import importlib
import os
from pathlib import Path
from typing import Any, Final, Protocol

from .phonemes import EspeakRunner, PhonemizerError

AUTO: Final = "auto"
ONNXRUNTIME: Final = "onnxruntime"
NUMPY: Final = "numpy"
BACKENDS: Final = (ONNXRUNTIME, NUMPY)  # each named as the module it needs

BRIDGE: Final = "bridge"
WASI: Final = "wasi"
EMSCRIPTEN: Final = "emscripten"
PHONEMIZERS: Final = (BRIDGE, WASI, EMSCRIPTEN)

ENV_BACKEND: Final = "ALICIA_TTS_BACKEND"
ENV_PHONEMIZER: Final = "ALICIA_TTS_PHONEMIZER"


class InferenceSession(Protocol):
    """The part of ``onnxruntime.InferenceSession`` a Piper voice needs."""

    def run(self, output_names: Any, input_feed: Mapping[str, Any]) -> Sequence[Any]:
        """Run the graph on the given inputs."""

    def get_inputs(self) -> Sequence[Any]:
        """The graph's inputs (objects with a ``name``)."""


class StackUnavailableError(Exception):
    """No backend or no runner can work here; the message says why (no message text in it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EspeakAssets:
    """Where the WebAssembly espeak-ng modules and espeak-ng's data are (None: absent)."""

    wasi_module: Path | None = None
    emscripten_module: Path | None = None
    data_dir: Path | None = None


def _preference(env: str, given: str | None, allowed: Sequence[str]) -> str:
    value = (os.environ.get(env) or given or AUTO).strip().lower()
    if value != AUTO and value not in allowed:
        raise StackUnavailableError(f"{env}/option value {value!r} is not one of {list(allowed)}")
    return value


def _import_problem(module: str) -> str | None:
    """Why ``module`` cannot be imported, or None when it imports."""
    try:
        importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - ImportError, or its shared library failing to load
        return f"{module} cannot be imported: {err}"
    return None


def choose_backend(preference: str | None = None) -> str:
    """The backend that will run: forced, or the first that imports. Raises when none can."""
    wanted = _preference(ENV_BACKEND, preference, BACKENDS)
    candidates = BACKENDS if wanted == AUTO else (wanted,)
    problems: list[str] = []
    for backend in candidates:
        problem = _import_problem(backend)
        if problem is None:
            return backend
        problems.append(problem)
    raise StackUnavailableError("; ".join(problems))


def open_session(backend: str, model_path: Path, threads: int) -> InferenceSession:
    """Open a voice model with ``backend`` using ``threads`` threads for one inference."""
    if backend == ONNXRUNTIME:
        onnxruntime: Any = importlib.import_module("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session: InferenceSession = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return session
    from .numpy_backend import NumpySession  # noqa: PLC0415 - loads numpy only when used

    return NumpySession(model_path, threads=threads)


def close_session(session: InferenceSession) -> None:
    """Release a session's own threads (the numpy backend has a pool; onnxruntime none)."""
    if (close := getattr(session, "close", None)) is not None:
        close()


def _bridge() -> EspeakRunner:
    from .phonemes import BridgeRunner  # noqa: PLC0415

    return BridgeRunner()


def _wasi(assets: EspeakAssets) -> EspeakRunner:
    if assets.wasi_module is None or not assets.wasi_module.is_file():
        raise StackUnavailableError("the WASI espeak-ng module is not installed")
    if assets.data_dir is None or not assets.data_dir.is_dir():
        raise StackUnavailableError("espeak-ng's data is not installed")
    from .espeak_wasi import WasiRunner  # noqa: PLC0415 - needs wasmtime

    return WasiRunner(assets.wasi_module, assets.data_dir)


def _emscripten(assets: EspeakAssets) -> EspeakRunner:
    if assets.emscripten_module is None or not assets.emscripten_module.is_file():
        raise StackUnavailableError("the espeak-ng WebAssembly module is not installed")
    from .espeak_emscripten import EmscriptenRunner  # noqa: PLC0415 - needs wasmtime

    data = assets.data_dir if assets.data_dir is not None and assets.data_dir.is_dir() else None
    return EmscriptenRunner(assets.emscripten_module, data)


def open_runner(preference: str | None, assets: EspeakAssets) -> EspeakRunner:
    """Start the espeak-ng runner: forced, or the first that works. Raises when none can."""
    wanted = _preference(ENV_PHONEMIZER, preference, PHONEMIZERS)
    candidates = PHONEMIZERS if wanted == AUTO else (wanted,)
    problems: list[str] = []
    for name in candidates:
        try:
            if name == BRIDGE:
                return _bridge()
            if name == WASI:
                return _wasi(assets)
            return _emscripten(assets)
        except StackUnavailableError as err:
            problems.append(f"{name}: {err}")
        except (ImportError, OSError, PhonemizerError) as err:
            problems.append(f"{name}: {err}")
    raise StackUnavailableError("no espeak-ng phonemizer can run (" + "; ".join(problems) + ")")
