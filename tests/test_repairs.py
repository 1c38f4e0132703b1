"""A slow measurement raises the "voice too slow" issue; its fix flow switches the voice.

The engine is slowed by making its inferences report a fixed real-time factor on the device
check's clock (tests/speed.py), never by timing. The fix flow runs through Home Assistant's
repairs HTTP API, as the frontend drives it; the switch goes through the entry's reconfigure
flow, with a download from the loopback voice source when the voice is not installed.
"""

from collections.abc import AsyncGenerator
import json
import os
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts import config_flow
from custom_components.alicia_tts.catalog import CACHED_CATALOG, CatalogVoice
from custom_components.alicia_tts.const import (
    CONF_CATALOG_URL,
    CONF_VOICE,
    DOMAIN,
    ISSUE_SLOW_VOICE,
    ISSUE_SLOW_VOICE_NO_ALTERNATIVE,
)
from custom_components.alicia_tts.repairs import candidate_label
from custom_components.alicia_tts.voices import VoiceInfo

from .conftest import JOE
from .speed import check_of, measure_now, slow_entry
from .voice_server import VoiceServer, start_voice_server

JOE_LOW = "en_US-joe-low"


def install_quality(
    folder: Path, key: str, joe_files: tuple[Path, Path], quality: str, code: str = "en_US"
) -> None:
    """Joe's model (linked) under ``key``, its config saying ``quality`` and ``code``."""
    os.symlink(joe_files[0], folder / f"{key}.onnx")
    config = json.loads(joe_files[1].read_text(encoding="utf-8"))
    config["audio"]["quality"] = quality
    config["language"]["code"] = code
    (folder / f"{key}.onnx.json").write_text(json.dumps(config), encoding="utf-8")


def issue_of(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    """The entry's "voice too slow" issue."""
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{ISSUE_SLOW_VOICE}_{entry.entry_id}")


async def start_fix(client: TestClient[Any, Any], issue_id: str) -> dict[str, Any]:
    """Open the issue's fix flow (what the frontend's "Fix" button does)."""
    resp = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def submit_fix(
    client: TestClient[Any, Any], flow_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Submit a step of the fix flow."""
    resp = await client.post(f"/api/repairs/issues/fix/{flow_id}", json=data)
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def choices(result: dict[str, Any]) -> list[str]:
    """The voices a fix-flow form offers."""
    field = next(f for f in result["data_schema"] if f["name"] == CONF_VOICE)
    return [option["value"] for option in field["selector"]["select"]["options"]]


@pytest.fixture
async def repairs(hass: HomeAssistant) -> None:
    """Home Assistant's repairs integration (the fix-flow API)."""
    assert await async_setup_component(hass, "repairs", {})


async def test_slow_voice_issue_and_switch_to_installed_lower_quality(
    hass: HomeAssistant,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
    init_integration: MockConfigEntry,
    repairs: None,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RTF 0.6 > 0.5: a fixable issue with the numbers; fix -> joe low, measured again."""
    install_quality(voices_dir, JOE_LOW, joe_files, "low")
    entry = init_integration
    slow_entry(entry, monkeypatch, 0.6)
    check = await measure_now(hass, entry)
    assert check.measurement is not None
    assert check.measurement.real_time_factor == pytest.approx(0.6)
    issue = issue_of(hass, entry)
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_key == ISSUE_SLOW_VOICE
    placeholders = issue.translation_placeholders or {}
    assert placeholders["rtf"] == "0.60"
    assert placeholders["limit"] == "0.5"
    assert placeholders["voice"] == JOE
    assert float(placeholders["long_seconds"]) == pytest.approx(
        0.6 * float(placeholders["long_audio"]), abs=0.1
    )
    assert check.measurement.cpu.model in placeholders["cpu"]

    client = await hass_client()
    result = await start_fix(client, issue.issue_id)
    assert result["type"] == FlowResultType.FORM
    assert result["step_id"] == "choose_voice"
    assert result["description_placeholders"]["rtf"] == "0.60"
    offered = choices(result)
    assert offered[0] == JOE_LOW  # the same family's lower quality, installed
    assert JOE not in offered
    candidates = await check.async_candidates()
    assert candidate_label(candidates[0]) == "Joe (en-US, low) ~0.45"
    assert all(c.fits for c in candidates)
    downloadable = next(c for c in candidates if not c.installed)
    assert "\u2193" in candidate_label(downloadable)

    result = await submit_fix(client, result["flow_id"], {CONF_VOICE: JOE_LOW})
    assert result["type"] == FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert issue_of(hass, entry) is None
    assert entry.data == {CONF_VOICE: JOE_LOW, CONF_LANGUAGE: "en-US"}
    assert entry.unique_id == JOE_LOW
    assert entry.title == "Joe (en-US, low)"
    assert entry.runtime_data.voice == JOE_LOW

    # The new voice is measured (its engine is not slowed: the reported time stays 0).
    check = await measure_now(hass, entry)
    assert check.measurement is not None
    assert check.measurement.voice == JOE_LOW
    assert check.measurement.quality == "low"
    assert issue_of(hass, entry) is None


async def test_fast_measurement_removes_the_issue(
    hass: HomeAssistant, init_integration: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured again within the limit (button), the issue goes away."""
    slow_entry(init_integration, monkeypatch, 0.9)
    await measure_now(hass, init_integration)
    assert issue_of(hass, init_integration) is not None
    slow_entry(init_integration, monkeypatch, 0.2)
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.alicia_tts_measure_speed"}, blocking=True
    )
    await check_of(hass, init_integration).async_wait()
    assert issue_of(hass, init_integration) is None


@pytest.fixture
async def server(socket_enabled: None, joe_files: tuple[Path, Path]) -> AsyncGenerator[VoiceServer]:
    """The loopback voice source, with joe's files also listed as a low quality voice."""
    async for running in start_voice_server(joe_files, keys=(JOE, JOE_LOW)):
        running.catalog[JOE_LOW]["quality"] = "low"
        yield running


async def test_fix_downloads_the_lower_quality(
    hass: HomeAssistant,
    setup_ha: None,
    server: VoiceServer,
    voices_dir: Path,
    repairs: None,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A recommended voice that is not installed: the reconfigure flow downloads it."""
    cached = Path(hass.config.path(CACHED_CATALOG))  # as if refreshed from the voice source
    await hass.async_add_executor_job(cached.write_text, json.dumps(server.catalog), "utf-8")
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Joe (en-US, medium)",
        data={CONF_VOICE: JOE, CONF_LANGUAGE: "en-US"},
        unique_id=JOE,
        options={CONF_CATALOG_URL: server.base_url},
        minor_version=2,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    slow_entry(entry, monkeypatch, 0.6)
    await measure_now(hass, entry)
    issue = issue_of(hass, entry)
    assert issue is not None

    client = await hass_client()
    result = await start_fix(client, issue.issue_id)
    assert choices(result)[0] == JOE_LOW
    result = await submit_fix(client, result["flow_id"], {CONF_VOICE: JOE_LOW})
    assert result["type"] == FlowResultType.CREATE_ENTRY
    flow_type, flow_id = result["next_flow"]
    assert flow_type == "config_flow"  # the frontend continues in the reconfigure flow
    progress = hass.config_entries.flow.async_get(flow_id)
    assert progress["step_id"] == "download"
    await hass.async_block_till_done()  # the download
    done = await hass.config_entries.flow.async_configure(flow_id)
    await hass.async_block_till_done()
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "reconfigure_successful"
    assert (voices_dir / f"{JOE_LOW}.onnx").is_file()
    assert entry.data[CONF_VOICE] == JOE_LOW
    assert entry.options == {CONF_CATALOG_URL: server.base_url}
    assert issue_of(hass, entry) is None


async def test_no_faster_voice_is_not_fixable(
    hass: HomeAssistant,
    setup_ha: None,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
    no_packaged_voice: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A language without another voice: the issue explains, without a fix flow."""
    key = "xx_XX-joe-medium"
    install_quality(voices_dir, key, joe_files, "medium", code="xx_XX")
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={CONF_VOICE: key, CONF_LANGUAGE: "xx-XX"},
        unique_id=key,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    slow_entry(entry, monkeypatch, 0.7)
    await measure_now(hass, entry)
    issue = issue_of(hass, entry)
    assert issue is not None
    assert not issue.is_fixable
    assert issue.translation_key == ISSUE_SLOW_VOICE_NO_ALTERNATIVE


async def test_fix_flow_edges(
    hass: HomeAssistant,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
    init_integration: MockConfigEntry,
    repairs: None,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A voice taken meanwhile is refused in the form; a stale issue aborts."""
    install_quality(voices_dir, JOE_LOW, joe_files, "low")
    entry = init_integration
    slow_entry(entry, monkeypatch, 0.6)
    await measure_now(hass, entry)
    issue = issue_of(hass, entry)
    assert issue is not None
    client = await hass_client()
    result = await start_fix(client, issue.issue_id)
    # Another entry takes joe low while the form is open.
    MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE_LOW}, unique_id=JOE_LOW).add_to_hass(hass)
    result = await submit_fix(client, result["flow_id"], {CONF_VOICE: JOE_LOW})
    assert result["type"] == FlowResultType.FORM
    assert result["errors"] == {CONF_VOICE: "unknown_voice"}
    assert JOE_LOW not in choices(result)

    # An issue whose entry has no measurement (any more) cannot be fixed here.
    ir.async_create_issue(
        hass,
        DOMAIN,
        "slow_voice_gone",
        is_fixable=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_SLOW_VOICE,
        data={"entry_id": "gone"},
    )
    result = await start_fix(client, "slow_voice_gone")
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "not_measured"


async def test_fix_flow_when_the_reconfigure_flow_refuses(
    hass: HomeAssistant,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
    init_integration: MockConfigEntry,
    repairs: None,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The voice vanished before the reconfigure flow saw it: an error in the form, no switch."""
    install_quality(voices_dir, JOE_LOW, joe_files, "low")
    slow_entry(init_integration, monkeypatch, 0.6)
    await measure_now(hass, init_integration)
    issue = issue_of(hass, init_integration)
    assert issue is not None
    client = await hass_client()
    result = await start_fix(client, issue.issue_id)
    real = config_flow.async_load_voices

    async def without_joe_low(
        hass: HomeAssistant,
    ) -> tuple[dict[str, VoiceInfo], dict[str, CatalogVoice]]:
        installed, catalog = await real(hass)
        installed.pop(JOE_LOW, None)
        return installed, catalog

    monkeypatch.setattr(config_flow, "async_load_voices", without_joe_low)
    result = await submit_fix(client, result["flow_id"], {CONF_VOICE: JOE_LOW})
    assert result["type"] == FlowResultType.FORM
    assert result["errors"] == {"base": "switch_failed"}
    assert init_integration.data[CONF_VOICE] == JOE
    assert hass.config_entries.flow.async_progress() == []  # its reconfigure flow was closed


async def test_fix_flow_while_the_voice_is_being_set_up(
    hass: HomeAssistant,
    setup_ha: None,
    server: VoiceServer,
    voices_dir: Path,
    repairs: None,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another flow is downloading the recommended voice: the fix says so and changes nothing."""
    cached = Path(hass.config.path(CACHED_CATALOG))
    await hass.async_add_executor_job(cached.write_text, json.dumps(server.catalog), "utf-8")
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={CONF_VOICE: JOE, CONF_LANGUAGE: "en-US"},
        unique_id=JOE,
        options={CONF_CATALOG_URL: server.base_url},
        minor_version=2,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    slow_entry(entry, monkeypatch, 0.6)
    await measure_now(hass, entry)
    issue = issue_of(hass, entry)
    assert issue is not None
    # A new entry for joe low is being downloaded (stalled halfway).
    model_path, _ = server.paths(JOE_LOW)
    server.rules[model_path] = "stall"
    flows = hass.config_entries.flow
    other = await flows.async_init(DOMAIN, context={"source": "user"})
    other = await flows.async_configure(
        other["flow_id"],
        {CONF_LANGUAGE: "en-US", "voice_source": {CONF_CATALOG_URL: server.base_url}},
    )
    other = await flows.async_configure(other["flow_id"], {CONF_VOICE: JOE_LOW})
    assert other["type"] is FlowResultType.SHOW_PROGRESS

    client = await hass_client()
    result = await start_fix(client, issue.issue_id)
    result = await submit_fix(client, result["flow_id"], {CONF_VOICE: JOE_LOW})
    assert result["type"] == FlowResultType.ABORT
    assert result["reason"] == "already_in_progress"
    assert entry.data[CONF_VOICE] == JOE
    flows.async_abort(other["flow_id"])
    server.release.set()
    await hass.async_block_till_done()
