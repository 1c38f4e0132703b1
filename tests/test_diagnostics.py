"""Diagnostics through HA's diagnostics API: chain, breaker, usage, platform; no message text."""

from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from .test_chain import MESSAGE, break_local, local_of, setup_alicia, speak

type ClientFactory = Callable[[], Coroutine[Any, Any, TestClient[Any, Any]]]


async def test_diagnostics(
    hass: HomeAssistant,
    engines: dict[str, Any],
    hass_client: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    snapshot: SnapshotAssertion,
) -> None:
    """After a local failure and a fallback, diagnostics tell the whole story."""
    assert await async_setup_component(hass, "diagnostics", {})
    entry = await setup_alicia(hass, fallback_engines=["tts.failing", "tts.working"])
    break_local(local_of(entry), monkeypatch)
    await speak(hass)
    result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert MESSAGE[:16] not in str(result)
    assert result["chain"]["active"] == "tts.working"
    assert result["usage"]["tts.working"]["characters"] == len(MESSAGE)
    assert [e["engine"] for e in result["recent_errors"]] == ["local", "tts.failing"]
    assert result["platform"]["piper_loaded"] is True
    assert result["platform"]["libc"].startswith("glibc")
    assert result == snapshot(
        exclude=props("at", "platform", "last_latency_ms", "cached_bytes", "voices", "workers")
    )
