"""A Piper voice's config and the model inputs it implies. Pure: imports nothing from HA.

The engine's own reading of a voice's ``.onnx.json`` (piper-tts is not needed for it, so the
same code serves glibc and musl): the phoneme id map, the inference scales, the sample rate,
the speakers, and the phonemizer it expects. Phoneme types other than ``espeak`` and ``text``
(Chinese pinyin, Japanese, Hebrew, Thai: piper-tts's own add-on phonemizers) are refused with
a clear error.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import json
from pathlib import Path
from typing import Any, Final
import unicodedata

import numpy as np

ESPEAK: Final = "espeak"
TEXT: Final = "text"
SUPPORTED_PHONEME_TYPES: Final = (ESPEAK, TEXT)


class VoiceConfigError(ValueError):
    """The voice config cannot be used; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceConfig:
    """What the engine needs of a voice's config."""

    sample_rate: int
    espeak_voice: str
    phoneme_type: str
    phoneme_id_map: Mapping[str, Sequence[int]]
    num_speakers: int = 1
    speaker_id_map: Mapping[str, int] = field(default_factory=dict)
    default_speaker_id: int = 0
    length_scale: float = 1.0
    noise_scale: float = 0.667
    noise_w_scale: float = 0.8
    vowel_clusters: frozenset[tuple[str, ...]] | None = None

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> VoiceConfig:
        """Read a parsed ``.onnx.json``; raises VoiceConfigError when it is unusable."""
        try:
            inference = config.get("inference") or {}
            phoneme_type = str(config.get("phoneme_type", ESPEAK))
            id_map = {
                str(key): [int(i) for i in ids] for key, ids in config["phoneme_id_map"].items()
            }
            clusters = config.get("vowel_clusters") or ()
            voice = cls(
                sample_rate=int(config["audio"]["sample_rate"]),
                espeak_voice=str((config.get("espeak") or {}).get("voice", "")),
                phoneme_type=phoneme_type,
                phoneme_id_map=id_map,
                num_speakers=max(1, int(config.get("num_speakers", 1))),
                speaker_id_map={
                    str(k): int(v) for k, v in (config.get("speaker_id_map") or {}).items()
                },
                default_speaker_id=int(config.get("default_speaker_id", 0)),
                length_scale=float(inference.get("length_scale", 1.0)),
                noise_scale=float(inference.get("noise_scale", 0.667)),
                noise_w_scale=float(inference.get("noise_w", 0.8)),
                vowel_clusters=frozenset(tuple(str(p) for p in c) for c in clusters) or None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise VoiceConfigError(f"malformed voice config: {err!r}") from err
        if phoneme_type not in SUPPORTED_PHONEME_TYPES:
            raise VoiceConfigError(f"phoneme type {phoneme_type!r} is not supported")
        if phoneme_type == ESPEAK and not voice.espeak_voice:
            raise VoiceConfigError("the voice config names no espeak-ng voice")
        if voice.sample_rate <= 0 or not id_map:
            raise VoiceConfigError("the voice config has no sample rate or no phoneme ids")
        return voice

    @classmethod
    def load(cls, path: Path) -> VoiceConfig:
        """Read a ``.onnx.json`` file (blocking)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise VoiceConfigError(f"cannot read {path.name}: {err}") from err
        if not isinstance(raw, dict):
            raise VoiceConfigError(f"{path.name} is not a JSON object")
        return cls.from_dict(raw)


def text_phonemes(text: str) -> list[list[str]]:
    """Phonemes of a ``text`` voice: the text's code points, one sentence."""
    return [list(unicodedata.normalize("NFD", text))]


def model_inputs(
    phoneme_ids: Sequence[int],
    *,
    noise_scale: float,
    length_scale: float,
    noise_w_scale: float,
    speaker_id: int | None,
) -> dict[str, np.ndarray]:
    """The feeds of a Piper model for one sentence (``sid`` only for multi-speaker voices)."""
    feeds: dict[str, np.ndarray] = {
        "input": np.asarray([phoneme_ids], dtype=np.int64),
        "input_lengths": np.asarray([len(phoneme_ids)], dtype=np.int64),
        "scales": np.asarray([noise_scale, length_scale, noise_w_scale], dtype=np.float32),
    }
    if speaker_id is not None:
        feeds["sid"] = np.asarray([speaker_id], dtype=np.int64)
    return feeds


def to_pcm(audio: np.ndarray, gain: float) -> bytes:
    """Peak-normalize model output, apply ``gain``, clip, and return 16-bit little-endian PCM."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    if gain != 1.0:
        audio = audio * gain
    return bytes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())
