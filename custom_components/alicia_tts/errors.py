"""Engine errors as Home Assistant shows them to users."""

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .engine import EngineError, InvalidRequestError


def engine_error(err: EngineError) -> HomeAssistantError:
    """Translate an engine error: the caller's mistakes are validation errors."""
    cls = ServiceValidationError if isinstance(err, InvalidRequestError) else HomeAssistantError
    return cls(
        str(err),
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders=err.placeholders,
    )
