"""Constants for Alicia TTS."""

from typing import Final

DOMAIN: Final = "alicia_tts"
NAME: Final = "Alicia TTS"

# Installed at setup, never listed in manifest.json: piper-tts and onnxruntime have no
# musllinux wheels, so HA OS / HA Container could not load the integration at all.
PIPER_REQUIREMENT: Final = "piper-tts==1.8.0"

# Config entry data
CONF_VOICE: Final = "voice"

# Folder (below HA's config dir) where users keep voices: <key>.onnx + <key>.onnx.json
VOICES_DIR: Final = "alicia_tts/voices"

# Repair issue ids
ISSUE_PIPER_UNAVAILABLE: Final = "piper_unavailable"
ISSUE_SPEAKER_URL: Final = "speaker_url"
ISSUE_NEVER_FETCHED: Final = "never_fetched"

# Options (entry.options; see docs/options.md)
CONF_SPEAKER_BASE_URL: Final = "speaker_base_url"
CONF_AUDIO_FORMAT: Final = "audio_format"
