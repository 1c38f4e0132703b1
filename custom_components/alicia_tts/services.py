"""Service actions of Alicia TTS (registered once, in ``async_setup``)."""

from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, entity_registry as er
import voluptuous as vol

from .const import DOMAIN
from .delivery import async_create_local_audio, async_get_store, audio_url
from .engine import OPTION_RANGES, EngineError, parse_options
from .errors import engine_error
from .models import AliciaConfigEntry

SERVICE_AUDIO_URL = "audio_url"
ATTR_MESSAGE = "message"

ENGINE_FIELDS: dict[vol.Marker, Any] = {
    vol.Optional("voice"): cv.string,
    vol.Optional("speaker"): cv.string,
    **{vol.Optional(key): vol.Coerce(float) for key in OPTION_RANGES},
}

AUDIO_URL_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_ENTITY_ID): cv.entity_id,
        vol.Required(ATTR_MESSAGE): cv.string,
        vol.Optional("audio_format"): vol.In(["mp3", "wav"]),
        **ENGINE_FIELDS,
    }
)


def async_resolve_entry(hass: HomeAssistant, entity_id: str | None) -> AliciaConfigEntry:
    """The loaded entry behind one of our TTS entities (default: the first loaded entry)."""
    entries: list[AliciaConfigEntry] = [
        e for e in hass.config_entries.async_entries(DOMAIN) if e.state is ConfigEntryState.LOADED
    ]
    if entity_id is not None:
        reg = er.async_get(hass).async_get(entity_id)
        entries = [e for e in entries if reg is not None and reg.config_entry_id == e.entry_id]
        if not entries:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="not_our_entity",
                translation_placeholders={"entity_id": entity_id},
            )
    if not entries:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    return entries[0]


async def _async_audio_url(call: ServiceCall) -> ServiceResponse:
    """Synthesize a message for any player: returns a short-lived URL (and starts synthesis)."""
    hass = call.hass
    entry = async_resolve_entry(hass, call.data.get(ATTR_ENTITY_ID))
    data = entry.runtime_data
    message: str = call.data[ATTR_MESSAGE]
    extension: str = call.data.get("audio_format") or data.audio_format
    if (base := data.speaker_url.url) is None:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="no_speaker_url")
    try:
        if data.engine is not None:
            data.engine.check_request(message, call.data, data.voice)
        item = await async_create_local_audio(
            hass, entry, message, parse_options(call.data), extension
        )
    except EngineError as err:
        raise engine_error(err) from err
    return {
        "url": audio_url(base, item),
        "format": item.extension,
        "expires_in": round(item.expires - async_get_store(hass).now()),
    }


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the service actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_AUDIO_URL,
        _async_audio_url,
        schema=AUDIO_URL_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
