"""Runtime data of an Alicia TTS config entry."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

from .chain import EngineChain
from .engine import PiperEngine
from .voices import VoiceInfo

if TYPE_CHECKING:
    from .tts import AliciaTTSEntity


@dataclass(frozen=True, slots=True)
class SpeakerUrl:
    """The base URL speakers fetch audio from, and what may be wrong with it."""

    url: str | None
    problem: str | None  # None, "missing", "loopback", "https_ip"


@dataclass(kw_only=True, slots=True)
class AliciaData:
    """What a loaded entry keeps in ``entry.runtime_data``."""

    voice: str
    voices: dict[str, VoiceInfo] = field(default_factory=dict)
    engine: PiperEngine | None = None
    # Why the local engine cannot speak (None: it can).
    local_problem: str | None = None
    # Where speakers fetch audio from, and in which format ("mp3" or "wav").
    speaker_url: SpeakerUrl = field(default_factory=lambda: SpeakerUrl(None, "missing"))
    audio_format: str = "wav"
    chain: EngineChain
    # The entry's tts entity while it is added to Home Assistant.
    tts_entity: AliciaTTSEntity | None = None


type AliciaConfigEntry = ConfigEntry[AliciaData]
