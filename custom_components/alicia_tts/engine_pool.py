"""One local engine for all entries of a Home Assistant (HA side).

Each entry (voice) used to start its own engine, each sized for every core: two voices speaking at
once fought for the CPU. Now the entries share one :class:`PiperEngine` — one inference bound,
one worker pool, one phonemizer, one least-recently-used set of loaded voices — per inference
backend preference (entries normally all say ``auto``; an entry forcing another backend gets an
engine of its own, since a voice's backend is chosen when it is loaded). Per-entry options stay per
entry: they travel with each request.

The engine lives as long as an entry uses it: the last entry to let go closes it.
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .engine import PiperEngine
from .local_stack import espeak_assets
from .voices import VoiceInfo

# Voices kept loaded: every entry's own voice, plus this many for per-call `voice` options.
SPARE_VOICES = 1


@dataclass(slots=True)
class _Shared:
    engine: PiperEngine
    users: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Pool:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    engines: dict[str | None, _Shared] = field(default_factory=dict)


DATA_POOL: HassKey[_Pool] = HassKey(f"{DOMAIN}_engine_pool")


def _pool(hass: HomeAssistant) -> _Pool:
    if (pool := hass.data.get(DATA_POOL)) is None:
        pool = hass.data[DATA_POOL] = _Pool()
    return pool


async def async_acquire_engine(
    hass: HomeAssistant, user: str, voices: Mapping[str, VoiceInfo], backend: str | None
) -> PiperEngine:
    """The shared engine for ``backend`` (started if needed), now also used by ``user``.

    ``voices`` is the latest scan of the voices folder: the engine knows those from now on.
    """
    pool = _pool(hass)
    async with pool.lock:
        shared = pool.engines.get(backend)
        if shared is None:
            assets = await hass.async_add_executor_job(espeak_assets, Path(hass.config.config_dir))
            shared = pool.engines[backend] = _Shared(
                PiperEngine(voices, backend=backend, espeak_assets=assets)
            )
        else:
            shared.engine.set_voices(voices)
        shared.users.add(user)
        shared.engine.max_loaded_voices = len(shared.users) + SPARE_VOICES
        return shared.engine


async def async_release_engine(hass: HomeAssistant, user: str, engine: PiperEngine) -> None:
    """``user`` no longer uses ``engine``; the last user closes it."""
    pool = _pool(hass)
    async with pool.lock:
        for backend, shared in list(pool.engines.items()):
            if shared.engine is not engine:
                continue
            shared.users.discard(user)
            if shared.users:
                shared.engine.max_loaded_voices = len(shared.users) + SPARE_VOICES
                return
            del pool.engines[backend]
            break
    await engine.async_close()


def engine_users(hass: HomeAssistant, engine: PiperEngine) -> int:
    """How many entries share ``engine`` (diagnostics)."""
    for shared in _pool(hass).engines.values():
        if shared.engine is engine:
            return len(shared.users)
    return 0
