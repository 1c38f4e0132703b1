"""The shared base of the pure cores' errors."""

from custom_components.alicia_tts.engine import EngineBusyError
from custom_components.alicia_tts.exceptions import TranslatedError
from custom_components.alicia_tts.sonos import SpeakerUnreachableError


def test_translated_errors_carry_key_and_placeholders() -> None:
    """Engine and playback errors share one base: message, key, placeholders."""
    busy = EngineBusyError("8 requests in flight", max="8")
    down = SpeakerUnreachableError("Kitchen is down", speaker="Kitchen", ip="192.168.1.31")
    assert isinstance(busy, TranslatedError)
    assert isinstance(down, TranslatedError)
    assert (str(busy), busy.translation_key, busy.placeholders) == (
        "8 requests in flight",
        "engine_busy",
        {"max": "8"},
    )
    assert down.translation_key == "speaker_unreachable"
    assert down.placeholders == {"speaker": "Kitchen", "ip": "192.168.1.31"}
