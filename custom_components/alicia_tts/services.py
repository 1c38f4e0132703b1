"""Service actions of Alicia TTS (registered once, in ``async_setup``)."""

from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, entity_registry as er
from homeassistant.helpers.target import TargetSelection, async_extract_referenced_entity_ids
import probatio

from .announce import async_announce, async_stop, validate_players
from .const import CONF_ENGINE, DOMAIN
from .delivery import async_get_store, audio_url
from .exceptions import EngineError
from .ha_errors import checked_request, translated_error
from .models import AliciaConfigEntry
from .options import (
    CALL_OPTIONS,
    CHIME,
    CHIME_AFTER,
    ENGINE_CHOICES,
    ENGINE_OPTIONS,
    MODES,
    OPTION_RANGES,
    PRIORITIES,
    REPEAT,
    REPEAT_GAP,
)
from .production import async_create_audio

SERVICE_AUDIO_URL = "audio_url"
SERVICE_SAY = "say"
SERVICE_STOP = "stop"
ATTR_KEEP_QUEUED = "keep_queued"
ATTR_MESSAGE = "message"
ATTR_TTS_ENTITY = "tts_entity"

ENGINE_FIELDS: dict[probatio.Marker, Any] = {
    probatio.Optional(CONF_ENGINE): probatio.In(ENGINE_CHOICES),
    probatio.Optional("voice"): cv.string,
    probatio.Optional("speaker"): cv.string,
    **{probatio.Optional(key): probatio.Coerce(float) for key in OPTION_RANGES},
}

# Chime and repeat (checked, with translated errors, by options.parse_audio).
AUDIO_FIELDS: dict[probatio.Marker, Any] = {
    probatio.Optional(CHIME): probatio.Any(cv.boolean, cv.string),
    probatio.Optional(CHIME_AFTER): probatio.Any(cv.boolean, cv.string),
    probatio.Optional(REPEAT): probatio.Coerce(float),
    probatio.Optional(REPEAT_GAP): probatio.Coerce(float),
}

AUDIO_URL_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_TTS_ENTITY): cv.entity_id,
        probatio.Required(ATTR_MESSAGE): cv.string,
        probatio.Optional("audio_format"): probatio.In(["mp3", "wav"]),
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
    entry = async_resolve_entry(hass, call.data.get(ATTR_TTS_ENTITY))
    data = entry.runtime_data
    message: str = call.data[ATTR_MESSAGE]
    extension: str = call.data.get("audio_format") or data.audio_format
    if (base := data.speaker_url.url) is None:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="no_speaker_url")
    options = {k: v for k, v in call.data.items() if k in (*ENGINE_OPTIONS, CONF_ENGINE)}
    request, _ = checked_request(data, message, options, entry.options)
    try:
        item = await async_create_audio(
            hass, entry, message, request.synthesis, extension, forced=request.engine
        )
    except EngineError as err:
        raise translated_error(err) from err
    return {
        "url": audio_url(base, item),
        "format": item.extension,
        "expires_in": round(item.expires - async_get_store(hass).now()),
    }


SAY_SCHEMA = probatio.Schema(
    {
        **cv.ENTITY_SERVICE_FIELDS,
        probatio.Optional(ATTR_TTS_ENTITY): cv.entity_id,
        probatio.Required(ATTR_MESSAGE): cv.string,
        # 35, "+10" or "-10": checked (translated errors) by parse_playback.
        probatio.Optional("volume"): probatio.Any(int, float, str),
        probatio.Optional("mode"): probatio.In(MODES),
        probatio.Optional("priority"): probatio.In(PRIORITIES),
        probatio.Optional("interrupt"): cv.boolean,
        probatio.Optional("group", default=False): cv.boolean,
        probatio.Optional("wait", default=False): cv.boolean,
        **AUDIO_FIELDS,
        **ENGINE_FIELDS,
    }
)


def say_targets(call: ServiceCall) -> list[str]:
    """The media players a call targets; translated validation errors for bad targets.

    Entities named directly must exist and be media players; areas, devices, floors and labels
    contribute their media players (their other entities are not targets).
    """
    selected = async_extract_referenced_entity_ids(call.hass, TargetSelection(call.data))
    validate_players(call.hass, sorted(selected.referenced))
    indirect = {
        e for e in selected.indirectly_referenced if e.startswith(f"{Platform.MEDIA_PLAYER}.")
    }
    return sorted(selected.referenced | indirect)


async def _async_say(call: ServiceCall) -> ServiceResponse:
    """Speak on media players (Sonos with restore); with ``wait``, return when finished."""
    hass = call.hass
    entry = async_resolve_entry(hass, call.data.get(ATTR_TTS_ENTITY))
    players = say_targets(call)
    if not players:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_targets")
    options = {k: v for k, v in call.data.items() if k in CALL_OPTIONS and v is not None}
    message: str = call.data[ATTR_MESSAGE]

    async def speak_others(others: list[str], ha_options: dict[str, Any]) -> None:
        if (entity := entry.runtime_data.tts_entity) is None:
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="not_loaded")
        await entity.async_speak_others(others, message, ha_options, context=call.context)

    response = await async_announce(
        hass, entry, message, options, players, wait=call.data["wait"], speak_others=speak_others
    )
    if call.return_response:
        return response or {}
    return None


STOP_SCHEMA = probatio.Schema(
    {
        **cv.ENTITY_SERVICE_FIELDS,
        probatio.Optional(ATTR_KEEP_QUEUED, default=False): cv.boolean,
    }
)


async def _async_stop(call: ServiceCall) -> ServiceResponse:
    """End the announcements on speakers at once (restored); drop or keep the waiting ones."""
    players = say_targets(call)
    if not players:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_targets")
    stopped = await async_stop(call.hass, players, keep_queued=call.data[ATTR_KEEP_QUEUED])
    return {"stopped": stopped} if call.return_response else None


def async_setup_services(hass: HomeAssistant) -> None:
    """Register the service actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_STOP,
        _async_stop,
        schema=STOP_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_SAY,
        _async_say,
        schema=SAY_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_AUDIO_URL,
        _async_audio_url,
        schema=AUDIO_URL_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
