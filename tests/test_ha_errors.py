"""Engine errors translated for users."""

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest

from custom_components.alicia_tts.chain import ChainExhaustedError, EngineChain
from custom_components.alicia_tts.engine import EngineBusyError, PiperEngine
from custom_components.alicia_tts.exceptions import InvalidOptionError
from custom_components.alicia_tts.ha_errors import speech_error, translated_error, validate_request
from custom_components.alicia_tts.models import AliciaData
from custom_components.alicia_tts.options import FALLBACK, LOCAL, Request


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


async def test_validate_request_and_why_nobody_spoke(hass: HomeAssistant) -> None:
    """The request check and the chain's exhausted errors, each case its own translated text."""
    chain = EngineChain(hass=hass, fallbacks=[], local_available=False)
    data = AliciaData(voice="en_US-joe-medium", chain=chain, local_problem="no backend")
    with pytest.raises(HomeAssistantError) as err:
        validate_request(data, "Hi.", Request())
    assert err.value.translation_key == "local_unavailable"
    assert err.value.translation_placeholders == {
        "error": "no backend; no fallback engine is configured"
    }
    with_fallback = AliciaData(
        voice="en_US-joe-medium", chain=EngineChain(hass=hass, fallbacks=["tts.cloud"])
    )
    assert validate_request(with_fallback, "Hi\x00.", Request(engine=FALLBACK)) == "Hi ."
    engine = PiperEngine({})
    try:
        loaded = AliciaData(voice="en_US-joe-medium", chain=chain, engine=engine)
        with pytest.raises(HomeAssistantError) as err:
            validate_request(loaded, "Hi.", Request(engine=FALLBACK))
        assert err.value.translation_key == "no_fallback_engine"
    finally:
        await engine.async_close()
    busy = EngineBusyError("16 requests in flight", max="16")
    message = "The secret code is 1234."

    def exhausted(failures: list[tuple[str, Exception]], **kw: Any) -> HomeAssistantError:
        return speech_error(
            data, ChainExhaustedError(failures, kw.get("busy"), message, 8.0, kw.get("forced"))
        )

    assert exhausted([], busy=busy).translation_key == "engine_busy"
    assert exhausted([], forced=FALLBACK).translation_key == "no_fallback_engine"
    assert exhausted([]).translation_key == "local_unavailable"
    assert exhausted([("tts.cloud", TimeoutError())]).translation_key == "engine_timeout"
    several = exhausted(
        [(LOCAL, RuntimeError(f"cannot say {message!r}")), ("tts.cloud", TimeoutError())],
        busy=busy,
    )
    assert several.translation_key == "all_engines_failed"
    text = (several.translation_placeholders or {})["error"]
    assert text.startswith("local Piper: RuntimeError: cannot say '[message]'")
    assert "tts.cloud: no audio within 8 s" in text
    assert text.endswith("local Piper: busy (16 requests in flight)")
    assert "1234" not in text  # never the message
    caller = speech_error(
        data, InvalidOptionError("x", option="speed", value="9", min="0", max="4")
    )
    assert isinstance(caller, ServiceValidationError)
