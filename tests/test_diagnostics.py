"""Diagnostics through HA's diagnostics API: chain, breaker, usage, platform; no message text."""

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from .test_chain import MESSAGE, break_local, local_of, setup_alicia, speak


async def test_diagnostics(
    hass: HomeAssistant,
    engines: dict[str, Any],
    hass_client: ClientSessionGenerator,
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


@pytest.mark.usefixtures("socket_enabled")
async def test_credentials_redacted(
    hass: HomeAssistant,
    engines: dict[str, Any],
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
    joe_files: tuple[Any, Any],
) -> None:
    """A voice source URL with credentials: not in diagnostics, not in the log."""
    from custom_components.alicia_tts.config_flow import async_refresh_catalog

    from .voice_server import start_voice_server

    assert await async_setup_component(hass, "diagnostics", {})
    async for server in start_voice_server(joe_files):
        url = server.base_url.replace("http://", "http://user:s3cr3t@")
        entry = await setup_alicia(
            hass, catalog_url=url, speaker_base_url="http://admin:hunter2@192.168.1.10:8123"
        )
        assert await async_refresh_catalog(hass, url)
        result = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        assert "s3cr3t" not in str(result)
        assert "hunter2" not in str(result)
        assert "***@127.0.0.1" in result["entry"]["options"]["catalog_url"]
        assert "s3cr3t" not in caplog.text
        assert "Voice catalogue refreshed" in caplog.text
