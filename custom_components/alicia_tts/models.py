"""Runtime data of an Alicia TTS config entry."""

from dataclasses import dataclass, field

from homeassistant.config_entries import ConfigEntry

from .engine import PiperEngine
from .voices import VoiceInfo


@dataclass(kw_only=True, slots=True)
class AliciaData:
    """What a loaded entry keeps in ``entry.runtime_data``."""

    voice: str
    voices: dict[str, VoiceInfo] = field(default_factory=dict)
    engine: PiperEngine | None = None
    # Why the local engine cannot speak (None: it can).
    local_problem: str | None = None


type AliciaConfigEntry = ConfigEntry[AliciaData]
