"""Constants for Alicia TTS."""

from typing import Final

DOMAIN: Final = "alicia_tts"
NAME: Final = "Alicia TTS"

# Installed at setup on glibc only, never listed in manifest.json: piper-tts and onnxruntime
# have no musllinux wheels (HA OS / HA Container use the numpy backend and WebAssembly espeak).
PIPER_REQUIREMENT: Final = "piper-tts==1.8.0"

# Config entry data
CONF_VOICE: Final = "voice"
# The voice's BCP 47 language is stored under homeassistant.const.CONF_LANGUAGE (entry 1.2).
# True once Alicia installed the Piper app (Supervisor) for this entry; never uninstalled by it.
CONF_PIPER_APP_INSTALLED: Final = "piper_app_installed"

# Folder (below HA's config dir) where users keep voices: <key>.onnx + <key>.onnx.json
VOICES_DIR: Final = "alicia_tts/voices"

# Repair issue ids
ISSUE_PIPER_UNAVAILABLE: Final = "piper_unavailable"
ISSUE_SPEAKER_URL: Final = "speaker_url"
ISSUE_NEVER_FETCHED: Final = "never_fetched"
ISSUE_VOICE_MISSING: Final = "voice_missing"
ISSUE_FALLBACK_MISSING: Final = "fallback_missing"
ISSUE_SLOW_VOICE: Final = "slow_voice"  # the device check measured the voice as too slow
ISSUE_SLOW_VOICE_NO_ALTERNATIVE: Final = "slow_voice_no_alternative"  # same, nothing faster

# Options (entry.options; see docs/options.md)
CONF_SPEAKER_BASE_URL: Final = "speaker_base_url"
CONF_AUDIO_FORMAT: Final = "audio_format"
CONF_FALLBACK_ENGINES: Final = "fallback_engines"
CONF_ENGINE: Final = "engine"  # default preference: local | fallback
CONF_FIRST_AUDIO_TIMEOUT: Final = "first_audio_timeout"
CONF_BREAKER_THRESHOLD: Final = "breaker_threshold"
CONF_BREAKER_COOLDOWN: Final = "breaker_cooldown"
CONF_BACKEND: Final = "backend"  # inference backend: auto | onnxruntime | numpy
CONF_CATALOG_URL: Final = "catalog_url"  # voice source: voices.json and the voice files
CONF_MIN_VOLUME: Final = "min_volume"  # announcement volume clamp (Sonos)
CONF_MAX_VOLUME: Final = "max_volume"
CONF_VOLUME_OFFSETS: Final = "volume_offsets"  # media player entity id -> volume offset

DEFAULT_FIRST_AUDIO_TIMEOUT: Final = 8.0
DEFAULT_BREAKER_THRESHOLD: Final = 3
DEFAULT_BREAKER_COOLDOWN: Final = 60.0
