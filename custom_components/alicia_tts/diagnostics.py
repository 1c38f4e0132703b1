"""Diagnostics: options, engine chain and breaker, platform facts, usage, recent errors.

Message texts are never included: recorded errors have them scrubbed when they are recorded.
Credentials in URLs (a voice source ``http://user:password@host/``) are redacted.
"""

from dataclasses import asdict
from datetime import UTC, datetime
import platform
from typing import Any

from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant

from .catalog import redact_url
from .const import CONF_PIPER_APP_INSTALLED
from .delivery import async_get_store
from .engine_pool import engine_users
from .espeak_setup import fetch_diagnostics
from .measurements import async_get_check
from .models import AliciaConfigEntry
from .options import LOCAL


def _redacted(values: Any) -> Any:
    """Entry data or options with credentials removed from every URL in them."""
    if isinstance(values, dict):
        return {key: _redacted(value) for key, value in values.items()}
    if isinstance(values, list):
        return [_redacted(value) for value in values]
    return redact_url(values) if isinstance(values, str) else values


def _platform_facts() -> dict[str, Any]:
    """Facts that decide whether in-process Piper can run (blocking: reads the executable)."""
    libc, libc_version = platform.libc_ver()
    return {
        "libc": f"{libc or 'unknown (musl?)'} {libc_version}".strip(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: AliciaConfigEntry
) -> dict[str, Any]:
    """Everything needed to understand which engine speaks and why."""
    data = entry.runtime_data
    chain = data.chain
    engine = data.engine
    store = async_get_store(hass)
    facts = await hass.async_add_executor_job(_platform_facts)
    facts["home_assistant"] = HA_VERSION
    facts["piper_loaded"] = engine is not None
    if (check := async_get_check(hass, entry.entry_id)) is not None:
        facts["device_check"] = check.as_diagnostics()  # CPU and measured speed
    diagnostics: dict[str, Any] = {
        "entry": {"data": _redacted(dict(entry.data)), "options": _redacted(dict(entry.options))},
        "platform": facts,
        "local_engine": {
            "available": engine is not None,
            "problem": data.local_problem,
            "voices": sorted(data.voices),
            "loaded_voices": engine.loaded_voices if engine else [],
            "max_loaded_voices": engine.max_loaded_voices if engine else None,
            "shared_by_entries": engine_users(hass, engine) if engine else 0,
            "backend": engine.backend if engine else None,
            "backend_preference": engine.backend_preference if engine else None,
            "phonemizer": engine.phonemizer if engine else None,
            "espeak_fetch": fetch_diagnostics(hass),
            "workers": engine.workers if engine else None,
            "max_requests": engine.max_requests if engine else None,
            "active_requests": engine.active_requests if engine else None,
            "max_queued_chars": engine.max_queued_chars if engine else None,
            "waiting_requests": engine.waiting_requests if engine else None,
            "waiting_chars": engine.waiting_chars if engine else None,
            "queued_total": engine.queued if engine else None,
            "rejected_busy": engine.rejected if engine else None,
        },
        "chain": {
            "engines": [LOCAL, *chain.fallbacks],
            "preference": chain.preference,
            "active": chain.active,
            "first_audio_timeout": chain.first_audio_timeout,
            "breaker": {
                "state": chain.breaker.state,
                "consecutive_failures": chain.breaker.failures,
                "threshold": chain.breaker.threshold,
                "cooldown": chain.breaker.cooldown,
            },
        },
        "usage": {name: asdict(stats) for name, stats in chain.stats.items()},
        "recent_errors": [
            {
                "at": datetime.fromtimestamp(error.at, UTC).isoformat(),
                "engine": error.engine,
                "error": error.error,
            }
            for error in chain.errors
        ],
        "speakers": {
            "base_url": redact_url(data.speaker_url.url) if data.speaker_url.url else None,
            "base_url_problem": data.speaker_url.problem,
            "audio_format": data.audio_format,
        },
        "audio_store": {
            "live_items": len(store),
            "budget_bytes": store.budget_bytes,
            "held_bytes": store.held_bytes(),
            "cached_bytes": store.cached_bytes,
            "cache_hits": store.cache_hits,
            "cache_misses": store.cache_misses,
            "shared": store.shared,
            "evicted": store.evicted,
        },
    }
    if entry.data.get(CONF_PIPER_APP_INSTALLED):
        # Alicia installed the Piper app (Supervisor) for this entry; it never uninstalls it.
        diagnostics["piper_app"] = {"slug": "core_piper", "installed_by_alicia": True}
    return diagnostics
