"""Engine and playback errors as Home Assistant shows them to users."""

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .engine import EngineError, InvalidRequestError
from .playback import InvalidPlaybackOptionError, PlaybackError


def engine_error(err: EngineError | PlaybackError) -> HomeAssistantError:
    """Translate an error: the caller's mistakes are validation errors."""
    invalid = isinstance(err, (InvalidRequestError, InvalidPlaybackOptionError))
    cls = ServiceValidationError if invalid else HomeAssistantError
    return cls(
        str(err),
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders=err.placeholders,
    )
