"""The engine's own reading of a voice config, and the model inputs and PCM it makes."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from custom_components.alicia_tts.backends import EspeakAssets, open_runner
from custom_components.alicia_tts.voice_model import (
    VoiceConfig,
    VoiceConfigError,
    text_phonemes,
    to_pcm,
)

NPM_MODULE = Path(__file__).parent.parent / ".cache" / "espeak-npm" / "espeak-ng.wasm"


def config(**changes: Any) -> dict[str, Any]:
    """A minimal valid espeak voice config with changes."""
    base: dict[str, Any] = {
        "audio": {"sample_rate": 22050},
        "espeak": {"voice": "en-us"},
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], "a": [3]},
    }
    base.update(changes)
    return base


def test_valid_config_defaults() -> None:
    """Scales default to Piper's when the config has none."""
    voice = VoiceConfig.from_dict(config())
    assert (voice.length_scale, voice.noise_scale, voice.noise_w_scale) == (1.0, 0.667, 0.8)
    assert voice.num_speakers == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"phoneme_type": "pinyin"}, "not supported"),
        ({"espeak": {}}, "names no espeak-ng voice"),
        ({"audio": {"sample_rate": 0}}, "no sample rate"),
        ({"phoneme_id_map": {}}, "no phoneme ids"),
        ({"audio": None}, "malformed"),
    ],
)
def test_unusable_configs(changes: dict[str, Any], message: str) -> None:
    """Every unusable config is refused with a reason."""
    with pytest.raises(VoiceConfigError, match=message):
        VoiceConfig.from_dict(config(**changes))


def test_load_from_file(tmp_path: Path) -> None:
    """A file that cannot be read or is not an object is refused; a good one loads."""
    path = tmp_path / "v.onnx.json"
    with pytest.raises(VoiceConfigError, match="cannot read"):
        VoiceConfig.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(VoiceConfigError, match="not a JSON object"):
        VoiceConfig.load(path)
    path.write_text(json.dumps(config()))
    assert VoiceConfig.load(path).espeak_voice == "en-us"


def test_text_voice_phonemes_are_code_points() -> None:
    """A text voice speaks the decomposed code points of the text."""
    assert text_phonemes("é!") == [["e", "\u0301", "!"]]


def test_pcm_normalized_with_gain_and_silence() -> None:
    """Peak-normalized, gain applied and clipped; silence stays silence."""
    pcm = np.frombuffer(to_pcm(np.array([0.0, 0.25, -0.5]), 2.0), dtype="<i2")
    assert pcm.tolist() == [0, 32767, -32767]
    assert np.frombuffer(to_pcm(np.zeros(4), 1.0), dtype="<i2").tolist() == [0, 0, 0, 0]


@pytest.mark.skipif(not NPM_MODULE.is_file(), reason="run script/fetch_espeak_npm")
def test_emscripten_runner_through_the_chooser(tmp_path: Path) -> None:
    """Forced 'emscripten' with the npm module opens that runner (data: the module's own)."""
    runner = open_runner("emscripten", EspeakAssets(emscripten_module=NPM_MODULE))
    try:
        assert runner.name == "emscripten"
        runner.set_voice("en-us")
        assert runner.clauses("Hello.")[0][1] == "."
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()


def test_espeak_data_without_piper(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without piper (musl) espeak-ng's data is looked for only in Alicia's own folders."""
    import sys

    from custom_components.alicia_tts import espeak_fetch, local_stack

    monkeypatch.setitem(sys.modules, "piper", None)
    monkeypatch.delenv(local_stack.ENV_ESPEAK_DIR, raising=False)
    assert local_stack._piper_data_dir() is None
    own = tmp_path / local_stack.ESPEAK_DIR / espeak_fetch.DATA_DIR
    own.mkdir(parents=True)
    assert local_stack.espeak_assets(tmp_path).data_dir == own
    forced = tmp_path / "forced"
    (forced / espeak_fetch.DATA_DIR).mkdir(parents=True)
    monkeypatch.setenv(local_stack.ENV_ESPEAK_DIR, str(forced))
    assert local_stack.espeak_assets(tmp_path).data_dir == forced / espeak_fetch.DATA_DIR
