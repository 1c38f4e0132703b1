"""Finding Piper voices on disk. Pure: imports nothing from Home Assistant.

A voice is a pair of files ``<key>.onnx`` + ``<key>.onnx.json`` (the layout of the
``rhasspy/piper-voices`` repository and of Piper's own downloader). All functions here do
blocking file I/O: call them from an executor.
"""

from dataclasses import dataclass, field
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Final

_LOGGER = logging.getLogger(__name__)

# The environment variable that names an importable package shipping a voice (its
# ``model_path()`` and ``config_path()``): the tests, the demo and the scripts set it to their
# test voice's package; an installation never needs it.
VOICE_PACKAGE_ENV: Final = "ALICIA_TTS_VOICE_PACKAGE"


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceInfo:
    """A voice available on disk, described by its config file."""

    key: str
    model_path: Path
    config_path: Path
    language: str  # BCP 47, as Home Assistant uses it: "en-US"
    name: str
    quality: str | None = None
    sample_rate: int = 22050
    num_speakers: int = 1
    speaker_id_map: dict[str, int] = field(default_factory=dict)
    packaged: bool = False

    @property
    def display_name(self) -> str:
        """Readable name, e.g. 'Joe (en-US, medium)'."""
        details = ", ".join(p for p in (self.language, self.quality) if p)
        return f"{self.name} ({details})"


def piper_language_to_bcp47(code: str) -> str:
    """Turn Piper's ``en_US`` into Home Assistant's ``en-US``."""
    return code.replace("_", "-")


def read_voice_info(model_path: Path, config_path: Path, *, packaged: bool = False) -> VoiceInfo:
    """Describe one voice from its config file. Raises ValueError when it is unusable."""
    try:
        config: Any = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read voice config {config_path.name}: {err}") from err
    if not isinstance(config, dict):  # a file's content, not an argument: callers catch ValueError
        raise ValueError(f"voice config {config_path.name} is not a JSON object")  # noqa: TRY004
    key = model_path.name.removesuffix(".onnx")
    language_block = config.get("language") or {}
    code = language_block.get("code") if isinstance(language_block, dict) else None
    if not isinstance(code, str) or not code:
        # Fall back to the key's own prefix: en_US-joe-medium -> en_US
        code = key.split("-", 1)[0]
    audio = config.get("audio") or {}
    parts = key.split("-")
    name = config.get("dataset") or (parts[1] if len(parts) >= 3 else key)
    speaker_map_raw = config.get("speaker_id_map") or {}
    try:
        speaker_id_map = {str(k): int(v) for k, v in speaker_map_raw.items()}
        sample_rate = int(audio.get("sample_rate", 22050))
        num_speakers = int(config.get("num_speakers", 1))
    except (AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"voice config {config_path.name} is malformed: {err}") from err
    return VoiceInfo(
        key=key,
        model_path=model_path,
        config_path=config_path,
        language=piper_language_to_bcp47(code),
        name=str(name).replace("_", " ").title(),
        quality=audio.get("quality") or (parts[-1] if len(parts) >= 3 else None),
        sample_rate=sample_rate,
        num_speakers=max(1, num_speakers),
        speaker_id_map=speaker_id_map,
        packaged=packaged,
    )


def scan_voice_dir(folder: Path) -> dict[str, VoiceInfo]:
    """Return the complete voices (model + config) in ``folder``; skip broken ones."""
    voices: dict[str, VoiceInfo] = {}
    if not folder.is_dir():
        return voices
    for model_path in sorted(folder.glob("*.onnx")):
        config_path = model_path.with_name(model_path.name + ".json")
        if not config_path.is_file():
            _LOGGER.warning("Ignoring voice %s: %s is missing", model_path.name, config_path.name)
            continue
        try:
            info = read_voice_info(model_path, config_path)
        except ValueError as err:
            _LOGGER.warning("Ignoring voice %s: %s", model_path.name, err)
            continue
        voices[info.key] = info
    return voices


def packaged_voice(package: str | None = None) -> VoiceInfo | None:
    """The voice of ``package`` (default: the one ``VOICE_PACKAGE_ENV`` names), if importable."""
    name = package or os.environ.get(VOICE_PACKAGE_ENV)
    if not name:
        return None
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    model = Path(module.model_path())
    config = Path(module.config_path())
    if not (model.is_file() and config.is_file()):
        return None
    try:
        return read_voice_info(model, config, packaged=True)
    except ValueError as err:
        _LOGGER.warning("Ignoring packaged voice: %s", err)
        return None


def discover_voices(folder: Path, *, include_packaged: bool = True) -> dict[str, VoiceInfo]:
    """All voices the engine can use: the user's folder first, then the packaged voice."""
    voices = scan_voice_dir(folder)
    if include_packaged and (packaged := packaged_voice()) is not None:
        voices.setdefault(packaged.key, packaged)
    return voices
