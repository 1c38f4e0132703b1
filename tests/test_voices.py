"""Finding voices on disk: real files in a temporary folder."""

import json
from pathlib import Path
import shutil
import sys

from homeassistant.components.tts import DATA_COMPONENT
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts import voices
from custom_components.alicia_tts.voices import (
    discover_voices,
    packaged_voice,
    read_voice_info,
    scan_voice_dir,
)

from .conftest import JOE, TEST_VOICE_PACKAGE, install_voice


def test_scan_reads_complete_pairs(tmp_path: Path, joe_files: tuple[Path, Path]) -> None:
    """A model with its config is a voice, described from its config."""
    install_voice(tmp_path, "en_GB-alba-low", *joe_files)
    found = scan_voice_dir(tmp_path)
    assert list(found) == ["en_GB-alba-low"]
    info = found["en_GB-alba-low"]
    # The config (joe's) decides language, name and quality, not the file name.
    assert info.language == "en-US"
    assert info.name == "Joe"
    assert info.quality == "medium"
    assert info.sample_rate == 22050
    assert info.num_speakers == 1
    assert info.display_name == "Joe (en-US, medium)"
    assert not info.packaged


def test_scan_skips_broken_voices(
    tmp_path: Path, joe_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Models without config, unreadable or malformed configs are skipped with a warning."""
    shutil.copyfile(joe_files[0], tmp_path / "en_US-alone-low.onnx")
    (tmp_path / "en_US-badjson-low.onnx").write_bytes(b"x")
    (tmp_path / "en_US-badjson-low.onnx.json").write_text("{not json")
    (tmp_path / "en_US-list-low.onnx").write_bytes(b"x")
    (tmp_path / "en_US-list-low.onnx.json").write_text("[1, 2]")
    (tmp_path / "en_US-map-low.onnx").write_bytes(b"x")
    (tmp_path / "en_US-map-low.onnx.json").write_text('{"speaker_id_map": {"a": "one"}}')
    assert scan_voice_dir(tmp_path) == {}
    for key in ("alone", "badjson", "list", "map"):
        assert f"en_US-{key}-low.onnx" in caplog.text
    assert scan_voice_dir(tmp_path / "missing") == {}


def test_minimal_config_falls_back_to_key(tmp_path: Path) -> None:
    """Without language and dataset in the config, the file name tells them."""
    model = tmp_path / "de_DE-thorsten-high.onnx"
    model.write_bytes(b"x")
    config = tmp_path / "de_DE-thorsten-high.onnx.json"
    config.write_text(json.dumps({"num_speakers": 2, "speaker_id_map": {"a": 0, "b": 1}}))
    info = read_voice_info(model, config)
    assert (info.language, info.name, info.quality) == ("de-DE", "Thorsten", "high")
    assert info.speaker_id_map == {"a": 0, "b": 1}
    assert info.num_speakers == 2


def test_packaged_voice() -> None:
    """The packaged test voice is found when importable."""
    info = packaged_voice()
    assert info is not None
    assert info.key == JOE
    assert info.packaged
    assert packaged_voice(TEST_VOICE_PACKAGE) == info  # named by the caller


def test_packaged_voice_missing_or_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No module, a module pointing at missing files, or a broken config: no packaged voice."""
    monkeypatch.setenv(voices.VOICE_PACKAGE_ENV, "no_such_voice_pkg")
    assert packaged_voice() is None
    monkeypatch.delenv(voices.VOICE_PACKAGE_ENV)
    assert packaged_voice() is None  # nothing named: an installation

    pkg = tmp_path / "fake_voice_pkg.py"
    model, config = tmp_path / "v.onnx", tmp_path / "v.onnx.json"
    pkg.write_text(
        f"def model_path():\n    return {str(model)!r}\n"
        f"def config_path():\n    return {str(config)!r}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(voices.VOICE_PACKAGE_ENV, "fake_voice_pkg")
    assert packaged_voice() is None  # files do not exist
    model.write_bytes(b"x")
    config.write_text("[]")
    assert packaged_voice() is None  # config is not an object
    sys.modules.pop("fake_voice_pkg", None)


def test_discover_prefers_user_folder(tmp_path: Path, joe_files: tuple[Path, Path]) -> None:
    """A voice in the user's folder wins over the packaged one with the same key."""
    install_voice(tmp_path, JOE, *joe_files)
    found = discover_voices(tmp_path)
    assert not found[JOE].packaged
    assert found[JOE].model_path.parent == tmp_path
    assert discover_voices(tmp_path / "none")[JOE].packaged
    assert discover_voices(tmp_path / "none", include_packaged=False) == {}


async def test_voice_dropped_in_appears_after_reload(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
) -> None:
    """A voice pair put into <config>/alicia_tts/voices is usable after a reload."""
    entry = init_integration
    assert list(entry.runtime_data.voices) == [JOE]
    install_voice(voices_dir, "en_GB-dropped-low", *joe_files)
    # A model whose config is still being copied is not picked up.
    shutil.copyfile(joe_files[0], voices_dir / "en_GB-half-low.onnx")
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert sorted(entry.runtime_data.voices) == ["en_GB-dropped-low", JOE]
    engine = entry.runtime_data.engine
    assert engine is not None
    assert engine.voice_info("en_GB-dropped-low").model_path.parent == voices_dir
    entity = hass.data[DATA_COMPONENT].get_entity("tts.alicia_tts_joe_en_us_medium")
    assert entity is not None
    voices = entity.async_get_supported_voices("en-US") or []
    assert "en_GB-dropped-low" in [v.voice_id for v in voices]
