"""Benchmark probe: a tiny custom integration that ``script/bench`` loads into its own HA only.

It is never shipped with Alicia TTS. It gives the benchmark what it cannot see from outside the
``hass`` process, through response-only service actions (admin API, loopback only):

- ``alicia_bench.stats``: the process's RSS (``/proc/self/status``), thread count, and the sizes
  of Alicia's audio store and of HA's tts memory cache;
- ``alicia_bench.clear_caches``: empties Alicia's audio cache and HA's tts caches, so an uncached
  run really synthesizes;
- ``alicia_bench.expire``: drops what Alicia's audio store would drop ``after_s`` seconds from now
  (expired tokens, cached audio unused that long; the store's own pruning, run early), then a
  garbage collection: RSS "after all tokens expired" without waiting five minutes;
- ``alicia_bench.import_engine``: imports piper, onnxruntime and lameenc (so the RSS cost of a
  voice can be told apart from the one-time cost of the libraries);
- ``alicia_bench.lag_start`` / ``alicia_bench.lag_stop``: a task on HA's event loop that sleeps
  ``interval_ms`` again and again and records how late each wake-up is (the loop lag);
- ``alicia_bench.profile_start`` / ``alicia_bench.profile_stop``: pyinstrument on the event loop
  thread, written as text to the given file.
"""

import asyncio
from collections.abc import Callable, Coroutine
import contextlib
import gc
import importlib
import os
from pathlib import Path
import statistics
import threading
import time
from typing import Any

from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

DOMAIN = "alicia_bench"
# Set up from `alicia_bench:` in configuration.yaml, which takes no settings (hassfest's rule for
# an integration with async_setup).
CONFIG_SCHEMA = cv.empty_config_schema(DOMAIN)
STORE_KEY = "alicia_tts_audio_store"  # custom_components.alicia_tts.delivery.DATA_STORE
ENGINE_MODULES = ("numpy", "onnxruntime", "piper", "lameenc")

type Handler = Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]


def proc_status() -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of this process."""
    wanted = {"VmRSS", "VmHWM", "Threads"}
    values: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        key, _, rest = line.partition(":")
        if key in wanted:
            values[key] = int(rest.split()[0])
    return values


class LagProbe:
    """Measures how late the event loop wakes a sleeping task."""

    def __init__(self) -> None:
        """Idle until started."""
        self._task: asyncio.Task[None] | None = None
        self._lags: list[float] = []
        self._started = 0.0
        self._gc_started = 0.0
        self._gc_pauses: list[tuple[int, float]] = []  # (generation, seconds)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Garbage collections pause the loop too: note them, to tell their share of the lag.
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._task is not None:
            self._gc_pauses.append((info["generation"], time.perf_counter() - self._gc_started))

    async def _run(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(interval)
            self._lags.append(loop.time() - before - interval)

    def start(self, hass: HomeAssistant, interval: float) -> None:
        """Start (or restart) sampling."""
        if self._task is not None:
            self._task.cancel()
        self._lags = []
        self._gc_pauses = []
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        self._started = time.monotonic()
        self._task = hass.async_create_background_task(self._run(interval), "alicia_bench lag")

    async def stop(self) -> dict[str, Any]:
        """Stop sampling and summarize (milliseconds)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lags = sorted(self._lags) or [0.0]
        return {
            "samples": len(self._lags),
            "seconds": round(time.monotonic() - self._started, 3),
            "max_ms": round(lags[-1] * 1000, 3),
            "p99_ms": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000, 3),
            "p50_ms": round(statistics.median(lags) * 1000, 3),
            "over_20ms": sum(1 for lag in lags if lag > 0.020),
            "gc_max_ms": round(max((p for _, p in self._gc_pauses), default=0.0) * 1000, 3),
            "gc_full": sum(1 for generation, _ in self._gc_pauses if generation == 2),
        }


class Profile:
    """pyinstrument on the event loop thread."""

    def __init__(self) -> None:
        """No profile running."""
        self._profiler: Any = None
        self._path: Path | None = None

    def start(self, path: str, pyinstrument: Any) -> None:
        """Start profiling the event loop with the ``pyinstrument`` module (imported by caller)."""
        self._profiler = pyinstrument.Profiler(interval=0.0005, async_mode="disabled")
        self._profiler.start()
        self._path = Path(path)

    def stop(self) -> str:
        """Stop and write the text report; return the file's path."""
        if self._profiler is None or self._path is None:
            return ""
        self._profiler.stop()
        text = self._profiler.output_text(unicode=True, color=False, show_all=False)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(text, encoding="utf-8")
        self._profiler = None
        return str(self._path)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the probe's service actions."""
    lag = LagProbe()
    profile = Profile()

    async def stats(call: ServiceCall) -> ServiceResponse:
        status = await hass.async_add_executor_job(proc_status)
        store = hass.data.get(STORE_KEY)
        tts_manager = hass.data.get("tts_manager")
        non_daemon: list[Any] = sorted(
            t.name
            for t in threading.enumerate()
            if not t.daemon and t is not threading.main_thread()
        )
        return {
            "pid": os.getpid(),
            "rss_kb": status.get("VmRSS", 0),
            "hwm_kb": status.get("VmHWM", 0),
            "threads": status.get("Threads", 0),
            "python_threads": threading.active_count(),
            "non_daemon_threads": non_daemon,
            "store_items": len(store) if store is not None else 0,
            "store_cached_bytes": store.cached_bytes if store is not None else 0,
            # (absent from older versions of the store: --component A/B runs)
            "store_held_bytes": (
                store.held_bytes() if store is not None and hasattr(store, "held_bytes") else None
            ),
            "store_budget_bytes": getattr(store, "budget_bytes", None),
            "store_shared": getattr(store, "shared", None),
            "store_evicted": getattr(store, "evicted", None),
            "store_cache_hits": getattr(store, "cache_hits", None),
            "tts_mem_cache": len(tts_manager.mem_cache) if tts_manager is not None else 0,
            "loop_tasks": len(asyncio.all_tasks()),
        }

    async def expire(call: ServiceCall) -> ServiceResponse:
        if (store := hass.data.get(STORE_KEY)) is not None:
            later = store.now() + float(call.data.get("after_s", 301))
            try:
                store.prune(now=later)
            except TypeError:  # an older store without the ``now`` argument
                for item in list(store._items.values()):  # noqa: SLF001 - bench only
                    item.expires = 0
                store.prune()
                store.cache_clear()
        await hass.async_add_executor_job(gc.collect)
        return {}

    async def clear_caches(call: ServiceCall) -> ServiceResponse:
        if (store := hass.data.get(STORE_KEY)) is not None:
            store.cache_clear()
        if (tts_manager := hass.data.get("tts_manager")) is not None:
            await tts_manager.async_clear_cache()
        return {}

    async def import_engine(call: ServiceCall) -> ServiceResponse:
        def load() -> None:
            for name in ENGINE_MODULES:
                importlib.import_module(name)

        await hass.async_add_executor_job(load)
        status = await hass.async_add_executor_job(proc_status)
        return {"rss_kb": status.get("VmRSS", 0)}

    async def lag_start(call: ServiceCall) -> ServiceResponse:
        lag.start(hass, float(call.data.get("interval_ms", 2.0)) / 1000)
        return {}

    async def lag_stop(call: ServiceCall) -> ServiceResponse:
        return await lag.stop()

    async def profile_start(call: ServiceCall) -> ServiceResponse:
        try:  # imported off the loop; missing from a Home Assistant venv made by script/ha_venv
            module = await hass.async_add_executor_job(importlib.import_module, "pyinstrument")
        except ImportError:
            return {"error": "pyinstrument is not installed"}
        profile.start(str(call.data["path"]), module)
        return {}

    async def profile_stop(call: ServiceCall) -> ServiceResponse:
        return {"path": profile.stop()}

    handlers: dict[str, Handler] = {
        "stats": stats,
        "clear_caches": clear_caches,
        "expire": expire,
        "import_engine": import_engine,
        "lag_start": lag_start,
        "lag_stop": lag_stop,
        "profile_start": profile_start,
        "profile_stop": profile_stop,
    }
    for name, handler in handlers.items():
        hass.services.async_register(DOMAIN, name, handler, supports_response=SupportsResponse.ONLY)
    return True
