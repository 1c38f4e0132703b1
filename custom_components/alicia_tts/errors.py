"""Engine and playback errors as Home Assistant shows them to users."""

from typing import TYPE_CHECKING, Any

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .chain import ENGINE_CHOICES, LOCAL
from .const import CONF_ENGINE, DOMAIN
from .engine import EngineError, InvalidRequestError
from .playback import InvalidPlaybackOptionError
from .typed_errors import TranslatedError

if TYPE_CHECKING:
    from .models import AliciaData


def engine_error(err: TranslatedError) -> HomeAssistantError:
    """Translate an error: the caller's mistakes are validation errors."""
    invalid = isinstance(err, (InvalidRequestError, InvalidPlaybackOptionError))
    cls = ServiceValidationError if invalid else HomeAssistantError
    return cls(
        str(err),
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders=err.placeholders,
    )


def local_unavailable(data: AliciaData) -> HomeAssistantError:
    """The local engine cannot speak, and why."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="local_unavailable",
        translation_placeholders={"error": data.local_problem or ""},
    )


def all_engines_failed(last_error: str) -> HomeAssistantError:
    """No engine of the chain could speak."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="all_engines_failed",
        translation_placeholders={"error": last_error or "no engine configured"},
    )


def validate_request(data: AliciaData, message: str | None, options: dict[str, Any]) -> None:
    """Check a request before anything is synthesized; raise translated errors.

    The ``engine`` choice is checked always; Piper's options when the local engine exists (a
    fallback engine ignores them). With no engine at all the local problem is reported.
    """
    if (choice := options.get(CONF_ENGINE)) is not None and choice not in ENGINE_CHOICES:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_playback_option",
            translation_placeholders={
                "option": CONF_ENGINE,
                "value": str(choice),
                "allowed": " | ".join(ENGINE_CHOICES),
            },
        )
    engine = data.engine
    if engine is None:
        if not data.chain.fallbacks or choice == LOCAL:
            raise local_unavailable(data)
        return
    try:
        engine.check_request(message, options, data.voice)
    except EngineError as err:
        raise engine_error(err) from err
