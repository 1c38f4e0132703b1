"""Home Assistant side of the local engine's parts: what is installed at setup, and from where.

- glibc ("Core in a venv"): ``piper-tts`` (it brings onnxruntime, the compiled espeak-ng bridge
  and espeak-ng's data) is installed through Home Assistant's requirement installer.
- musl (Home Assistant OS, Supervised, Container): ``piper-tts`` is never installed there (pip
  would fall back to an old pure wheel that needs onnxruntime). The numpy backend runs the
  model; espeak-ng runs as WebAssembly under ``wasmtime``; ``wasmtime`` and ``threadpoolctl``
  are installed through the requirement installer. None of these are manifest requirements, so
  a failed install never stops the integration from loading: the fallback chain speaks and a
  repair issue says why.

The WebAssembly espeak-ng module ships in the release zip (``espeak/espeak-ng.wasm`` in the
integration's folder, built by the release workflow) or is placed under
``<config>/alicia_tts/espeak/`` (by hand, or fetched there at setup from the integration's
release: ``espeak_setup.py``); espeak-ng's data lives next to it (or comes with piper-tts).
"""

import importlib.util
import logging
import os
from pathlib import Path
import platform
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.requirements import RequirementsNotFound, async_process_requirements

from .backends import ENV_BACKEND, ENV_PHONEMIZER, NUMPY, EspeakAssets
from .const import DOMAIN, PIPER_REQUIREMENT
from .espeak_fetch import DATA_DIR, EMSCRIPTEN_MODULE  # the names the fetch installs

_LOGGER = logging.getLogger(__name__)

# Installed where piper-tts cannot be (musl), or when it failed to install.
WASM_REQUIREMENTS: Final = ("wasmtime==50.0.1", "threadpoolctl==3.8.0")

ESPEAK_DIR: Final = "alicia_tts/espeak"  # below HA's config dir
WASI_MODULE: Final = "espeak-ng.wasm"  # the project's WASI build
SHIPPED_DIR: Final = Path(__file__).parent / "espeak"
# Tests, the benchmark and CI point at modules they built or fetched (searched first).
ENV_ESPEAK_DIR: Final = "ALICIA_TTS_ESPEAK_DIR"


def is_glibc() -> bool:
    """Whether this Python runs on glibc (blocking: reads the executable)."""
    return platform.libc_ver()[0] == "glibc"


def _piper_data_dir() -> Path | None:
    """espeak-ng's data inside an installed piper-tts, found without importing piper."""
    try:
        spec = importlib.util.find_spec("piper")
    except ImportError, ValueError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / DATA_DIR
    return data if data.is_dir() else None


def espeak_assets(config_dir: Path) -> EspeakAssets:
    """Where the espeak-ng modules and data are on this install (blocking: looks at files)."""
    folders = [SHIPPED_DIR, config_dir / ESPEAK_DIR]
    if extra := os.environ.get(ENV_ESPEAK_DIR):
        folders.insert(0, Path(extra))

    def first(name: str) -> Path | None:
        return next((f / name for f in folders if (f / name).exists()), None)

    return EspeakAssets(
        wasi_module=first(WASI_MODULE),
        emscripten_module=first(EMSCRIPTEN_MODULE),
        data_dir=first(DATA_DIR) or _piper_data_dir(),
    )


async def async_install_local(hass: HomeAssistant, backend: str | None) -> list[str]:
    """Install the local engine's requirements for this platform; return what failed.

    Nothing raises: what could not be installed is returned (no message text, no secrets) and
    the engine then reports what it cannot run.
    """
    problems: list[str] = []
    glibc = await hass.async_add_executor_job(is_glibc)
    forced_numpy = (os.environ.get(ENV_BACKEND) or backend or "") == NUMPY
    need_wasm = not glibc or bool(os.environ.get(ENV_PHONEMIZER)) or forced_numpy
    if glibc:
        try:
            await async_process_requirements(hass, DOMAIN, [PIPER_REQUIREMENT])
        except RequirementsNotFound as err:
            problems.append(f"{PIPER_REQUIREMENT} could not be installed ({err})")
            need_wasm = True
    if need_wasm:
        try:
            await async_process_requirements(hass, DOMAIN, list(WASM_REQUIREMENTS))
        except RequirementsNotFound as err:
            problems.append(f"{', '.join(WASM_REQUIREMENTS)} could not be installed ({err})")
    for problem in problems:
        _LOGGER.warning("Local Piper engine: %s", problem)
    return problems
