"""Engine errors translated for users."""

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from custom_components.alicia_tts.engine import EngineBusyError
from custom_components.alicia_tts.exceptions import InvalidOptionError
from custom_components.alicia_tts.ha_errors import translated_error


def test_caller_mistakes_are_validation_errors() -> None:
    """Invalid requests become ServiceValidationError, the rest HomeAssistantError."""
    bad = translated_error(InvalidOptionError("x", option="speed", value="9", min="0.25", max="4"))
    assert isinstance(bad, ServiceValidationError)
    assert bad.translation_domain == "alicia_tts"
    assert bad.translation_key == "invalid_option"
    assert bad.translation_placeholders == {
        "option": "speed",
        "value": "9",
        "min": "0.25",
        "max": "4",
    }
    busy = translated_error(EngineBusyError("busy", max="8"))
    assert isinstance(busy, HomeAssistantError)
    assert not isinstance(busy, ServiceValidationError)
    assert busy.translation_key == "engine_busy"
