"""Service action alicia_tts.audio_url through Home Assistant's service registry and HTTP."""

import json
from pathlib import Path
import string
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from yarl import URL

from custom_components.alicia_tts.const import DOMAIN
from custom_components.alicia_tts.engine import EngineBusyError
from custom_components.alicia_tts.ha_errors import translated_error
from custom_components.alicia_tts.models import SpeakerUrl
from custom_components.alicia_tts.sonos import QueueFullError

from .audio import parse_wav

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"
STRINGS = Path(__file__).resolve().parent.parent / "custom_components/alicia_tts/strings.json"


async def call(hass: HomeAssistant, **data: Any) -> dict[str, Any]:
    """Call alicia_tts.audio_url and return its response."""
    response = await hass.services.async_call(
        DOMAIN, "audio_url", data, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return response


async def test_audio_url_is_fetchable(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """The response URL serves the speech without credentials."""
    response = await call(
        hass, message="Dinner is ready.", audio_format="wav", speed="1.1", gain=1.5
    )
    assert response["format"] == "wav"
    assert 295 <= response["expires_in"] <= 300
    url = URL(response["url"])
    assert str(url).startswith("http://127.0.0.1:8123/api/alicia_tts/audio/")
    client = await hass_client_no_auth()
    resp = await client.get(url.path)
    assert resp.status == 200
    wav = parse_wav(await resp.read())
    assert wav.rms > 0.05
    assert 0.5 < wav.duration < 3.0


async def test_audio_url_default_format_and_entity(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Without a format the entry's speaker format is used; the entity may be named."""
    response = await call(hass, tts_entity=ENTITY_ID, message="Hello.")
    assert response["format"] == "mp3"
    assert response["url"].endswith(".mp3")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"message": "Hi.", "speed": 10}, "invalid_option"),
        ({"message": "x" * 5001}, "invalid_message"),
        ({"message": "Hi.", "voice": "xx_XX-none-low"}, "unknown_voice"),
        ({"message": "Hi.", "speaker": "2"}, "unknown_speaker"),
        ({"message": "Hi.", "tts_entity": "tts.somebody_else"}, "not_our_entity"),
    ],
)
async def test_audio_url_rejects(
    hass: HomeAssistant, init_integration: MockConfigEntry, data: dict[str, Any], key: str
) -> None:
    """Bad input gets a translated validation error."""
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, **data)
    assert err.value.translation_key == key


async def test_audio_url_schema(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The schema refuses unknown formats and missing messages before our code runs."""
    with pytest.raises(Exception, match=r"audio_format|ogg"):
        await call(hass, message="Hi.", audio_format="ogg")
    with pytest.raises(Exception, match="message"):
        await call(hass)


async def test_audio_url_without_engine_or_url(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """No local engine, or no URL for speakers: clear errors."""
    data = init_integration.runtime_data
    engine = data.engine
    data.engine = None
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, message="Hi.")
    assert err.value.translation_key == "local_unavailable"
    data.engine = engine
    data.speaker_url = SpeakerUrl(None, "missing")
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, message="Hi.")
    assert err.value.translation_key == "no_speaker_url"


async def test_audio_url_nothing_loaded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """With no loaded entry the service says so."""
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, message="Hi.")
    assert err.value.translation_key == "not_loaded"


async def test_errors_show_the_translated_text_not_the_developer_string(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """HA shows a plain message in preference to the translation: none is passed along."""
    texts = json.loads(STRINGS.read_text())["exceptions"]
    text = texts["engine_busy"]["message"]
    fields = {name: "8" for _, name, _, _ in string.Formatter().parse(text) if name}
    busy = translated_error(EngineBusyError("8 requests in flight (maximum 8)", **fields))
    assert str(busy) == text.rstrip(".").format(**fields)
    assert "in flight" not in str(busy)
    full = translated_error(QueueFullError("Kitchen: 50 queued", speaker="Kitchen", max="50"))
    assert not isinstance(full, ServiceValidationError)
    assert str(full) == texts["queue_full"]["message"].rstrip(".").format(
        speaker="Kitchen", max="50"
    )
