"""Engine and playback errors as Home Assistant shows them to users.

Every error raised here is translated (``translation_domain``/``translation_key``) and free of
message text: Home Assistant logs the errors of a tts engine (and shows them to the caller), so
an engine's error that quotes the message is scrubbed (:func:`chain.scrub`) before it is raised.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .chain import ChainExhaustedError, describe_error, scrub
from .const import DOMAIN
from .engine import MAX_MESSAGE_CHARS, check_input
from .exceptions import EngineError, InvalidRequestError, TranslatedError
from .options import FALLBACK, LOCAL, Request, parse_request

if TYPE_CHECKING:
    from .models import AliciaData


def translated_error(err: TranslatedError) -> HomeAssistantError:
    """Translate an error: the caller's mistakes are validation errors."""
    cls = ServiceValidationError if err.caller_error else HomeAssistantError
    # No plain message: Home Assistant would show it instead of the translated text.
    return cls(
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders=err.placeholders,
    )


def local_unavailable(data: AliciaData) -> HomeAssistantError:
    """The local engine cannot speak, and why (and that nothing else can, if so)."""
    error = data.local_problem or "unknown reason"
    if not data.chain.fallbacks:
        error += "; no fallback engine is configured"
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="local_unavailable",
        translation_placeholders={"error": error},
    )


def engine_name(engine: str) -> str:
    """How an engine of the chain is named in errors."""
    return "local Piper" if engine == LOCAL else engine


def all_engines_failed(last_error: str) -> HomeAssistantError:
    """No engine of the chain could speak; ``last_error`` names what each one did."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="all_engines_failed",
        translation_placeholders={"error": last_error},
    )


def no_fallback_engine() -> HomeAssistantError:
    """``engine: fallback`` asked for, and no fallback engine is configured."""
    return HomeAssistantError(translation_domain=DOMAIN, translation_key="no_fallback_engine")


def engine_failed(
    engine: str, err: BaseException, message: str, timeout: float
) -> HomeAssistantError:
    """One engine failed (the only one tried): what it did, translated, without message text."""
    if isinstance(err, EngineError):
        scrubbed = type(err)(
            scrub(str(err), message),
            **{key: scrub(value, message) for key, value in err.placeholders.items()},
        )
        return translated_error(scrubbed)
    if isinstance(err, TimeoutError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="engine_timeout",
            translation_placeholders={"engine": engine_name(engine), "timeout": f"{timeout:g}"},
        )
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="engine_failed",
        translation_placeholders={
            "engine": engine_name(engine),
            "error": describe_error(err, message, timeout),
        },
    )


def validate_request(data: AliciaData, message: str | None, request: Request) -> str | None:
    """Check a parsed request before any engine sees it; the cleaned message (translated errors).

    The one validation of every entry point (``tts.speak``, ``alicia_tts.say``,
    ``alicia_tts.audio_url``, HA's tts proxy and Assist through the entity), after
    :func:`options.parse_request`: the message (empty, too long, control characters cleaned),
    the voice and speaker, whichever engine will speak and whether or not local Piper loaded.
    Then, when no engine can speak at all, the "no engine" error (never a silent success).
    """
    engine = data.engine
    voices = engine.voices if engine is not None else data.voices
    limit = engine.max_message_chars if engine is not None else MAX_MESSAGE_CHARS
    try:
        cleaned = check_input(message, request.synthesis, voices, data.voice, limit)
    except EngineError as err:
        raise translated_error(err) from err
    if engine is None and (not data.chain.fallbacks or request.engine == LOCAL):
        raise local_unavailable(data)
    if request.engine == FALLBACK and not data.chain.fallbacks:
        raise no_fallback_engine()
    return cleaned


def checked_request(
    data: AliciaData,
    message: str | None,
    options: Mapping[str, Any],
    entry_options: Mapping[str, Any] | None = None,
    *,
    speakers: bool = False,
) -> tuple[Request, str | None]:
    """A call checked: its parsed request and its cleaned message (translated errors).

    The options are parsed once (:func:`options.parse_request`), the request validated by
    :func:`validate_request`; every entry point calls this.
    """
    try:
        request = parse_request(options, entry_options, speakers=speakers)
    except EngineError as err:
        raise translated_error(err) from err
    return request, validate_request(data, message, request)


def speech_error(
    data: AliciaData, err: InvalidRequestError | ChainExhaustedError
) -> HomeAssistantError:
    """What the chain's loop raised, translated: the caller's mistake, or why nobody spoke.

    A busy local engine alone gives the "busy" error; one failing engine its own error
    (timeout, exception, the engine's message); several, each one's in one message.
    """
    if isinstance(err, InvalidRequestError):
        return translated_error(err)
    if not err.failures:
        if err.busy is not None:
            return translated_error(err.busy)
        return no_fallback_engine() if err.forced == FALLBACK else local_unavailable(data)
    if len(err.failures) == 1 and err.busy is None:
        engine, failure = err.failures[0]
        return engine_failed(engine, failure, err.message, err.timeout)
    parts = [
        f"{engine_name(engine)}: {describe_error(failure, err.message, err.timeout)}"
        for engine, failure in err.failures
    ]
    if err.busy is not None:
        parts.append(f"{engine_name(LOCAL)}: busy ({err.busy})")
    return all_engines_failed("; ".join(parts))
