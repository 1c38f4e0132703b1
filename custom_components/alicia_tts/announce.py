"""Speaking on media players: Sonos through our playback controller, others through HA.

Sonos speakers are the ``media_player`` entities of Home Assistant's core ``sonos``
integration; their address and uid come from HA's device registry (the Sonos device carries
``configuration_url = http://<ip>:1400/...`` and the identifier ``("sonos", <uid>)``), never from
that integration's private data. Every other media player gets HA's standard
``media_player.play_media`` with ``announce: true``.

Every target is checked before anything runs (an entity that does not exist or is no media
player is a translated validation error). A Sonos announcement takes its place in the speakers'
queues when it is requested, in request order, and is synthesized only when its turn has come:
an announcement waiting for its turn holds no engine slot.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
import logging
from typing import Any, Final

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, split_entity_id, valid_entity_id
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util.hass_dict import HassKey
from yarl import URL

from .chime import Composition
from .chime_media import async_composition
from .const import (
    CONF_ENGINE,
    CONF_MAX_VOLUME,
    CONF_MIN_VOLUME,
    CONF_VOLUME_OFFSETS,
    DOMAIN,
    ISSUE_NEVER_FETCHED,
)
from .delivery import audio_url
from .exceptions import EngineError
from .ha_errors import checked_request, translated_error
from .models import AliciaConfigEntry
from .options import (
    AUDIO_OPTIONS,
    DEFAULT_MAX_VOLUME,
    DEFAULT_MIN_VOLUME,
    ENGINE_OPTIONS,
    HA_FORMAT_OPTIONS,
    PlaybackOptions,
    Request,
)
from .production import async_create_audio
from .sonos import (
    PLAYED,
    STOPPED,
    AnnouncementStoppedError,
    NeverFetchedError,
    PlaybackError,
    PlaybackResult,
    SonosPlayback,
    Speaker,
    Turn,
    VolumeSetting,
)
from .store import AudioItem

_LOGGER = logging.getLogger(__name__)

DATA_PLAYBACK: HassKey[SonosPlayback] = HassKey(f"{DOMAIN}_playback")
ANNOUNCEMENT_TITLE: Final = "Alicia TTS"


def async_get_playback(hass: HomeAssistant) -> SonosPlayback:
    """One playback controller per Home Assistant: per-speaker queues span all entries."""
    if (playback := hass.data.get(DATA_PLAYBACK)) is None:

        async def run_blocking(func: Any) -> Any:
            return await hass.async_add_executor_job(func)

        playback = hass.data[DATA_PLAYBACK] = SonosPlayback(
            async_get_clientsession(hass, verify_ssl=False), run_blocking=run_blocking
        )
    return playback


def validate_players(hass: HomeAssistant, entity_ids: Iterable[str]) -> None:
    """Every target is an existing media player; a translated validation error otherwise.

    An entity exists when it has a state or an entry in the entity registry (a registered
    speaker that is off still counts: it gets a clear playback error instead).
    """
    registry = er.async_get(hass)
    for entity_id in entity_ids:
        placeholders = {"entity_id": str(entity_id)}
        if (
            not isinstance(entity_id, str)
            or not valid_entity_id(entity_id)
            or split_entity_id(entity_id)[0] != Platform.MEDIA_PLAYER
        ):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="not_a_media_player",
                translation_placeholders=placeholders,
            )
        if hass.states.get(entity_id) is None and registry.async_get(entity_id) is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_media_player",
                translation_placeholders=placeholders,
            )


#: The platform of Home Assistant's core Sonos integration (its media players are ours to play on).
SONOS_DOMAIN: Final = "sonos"


def resolve_sonos(hass: HomeAssistant, entity_id: str) -> Speaker | None:
    """The Sonos speaker behind a media player entity, or None for any other player."""
    entry = er.async_get(hass).async_get(entity_id)
    if entry is None or entry.platform != SONOS_DOMAIN or entry.device_id is None:
        return None
    device = dr.async_get(hass).async_get(entry.device_id)
    if not isinstance(device, dr.DeviceEntry) or not device.configuration_url:
        return None
    uid = next((i[1] for i in device.identifiers if i[0] == SONOS_DOMAIN), None)
    host = URL(device.configuration_url).host
    if uid is None or not host:
        return None
    name = device.name_by_user or device.name or entity_id
    return Speaker(uid=uid, ip=host, name=name, model=device.model or "")


@dataclass(slots=True)
class ItemAnnouncement:
    """An audio item as the playback controller sees it."""

    item: AudioItem
    url: str
    title: str

    def was_fetched(self) -> bool:
        """Whether a client has requested the audio."""
        return self.item.was_fetched()

    async def async_duration(self) -> float:
        """Wait for the complete audio; its length in seconds."""
        await self.item.buffer.wait_done()
        if self.item.buffer.error is not None:
            raise PlaybackError(
                f"synthesis failed: {self.item.buffer.error}", error=self.item.buffer.error
            )
        return self.item.duration or 0.0


@dataclass(slots=True)
class Targets:
    """Media players split by how they are spoken to."""

    sonos: dict[str, Speaker] = field(default_factory=dict)  # entity_id -> speaker
    others: list[str] = field(default_factory=list)


def split_targets(hass: HomeAssistant, entity_ids: Sequence[str]) -> Targets:
    """Sort media players into Sonos speakers and others."""
    targets = Targets()
    for entity_id in entity_ids:
        if (speaker := resolve_sonos(hass, entity_id)) is not None:
            targets.sonos[entity_id] = speaker
        else:
            targets.others.append(entity_id)
    return targets


def ha_options_of(options: Mapping[str, Any]) -> dict[str, Any]:
    """What HA's own tts path gets for other players: engine keys and format hints."""
    return {
        k: v
        for k, v in options.items()
        if k in ENGINE_OPTIONS or k in HA_FORMAT_OPTIONS or k in AUDIO_OPTIONS or k == CONF_ENGINE
    }


async def async_check_composition(
    hass: HomeAssistant, entry: AliciaConfigEntry, request: Request
) -> Composition | None:
    """The chimes and repeats of a request, fetched now (translated validation errors)."""
    try:
        return await async_composition(hass, entry, request.audio, request.synthesis.voice)
    except EngineError as err:
        raise translated_error(err) from err


def never_fetched_issue(hass: HomeAssistant, err: NeverFetchedError, item: AudioItem) -> None:
    """Explain a speaker that accepted the URL but never fetched it."""
    seen = sorted({f.client for f in item.fetches if f.client})
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_NEVER_FETCHED,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=ISSUE_NEVER_FETCHED,
        translation_placeholders={
            "speaker": err.placeholders.get("speaker", ""),
            "url": err.placeholders.get("url", ""),
            "seen": ", ".join(seen) if seen else "none",
        },
    )


def reserve_turn(
    hass: HomeAssistant, speakers: dict[str, Speaker], options: PlaybackOptions | None = None
) -> Turn:
    """A place in the speakers' announcement queues, now (translated error when full).

    ``priority: high`` goes before the waiting normal ones; ``interrupt`` also stops the one
    playing.
    """
    options = options or PlaybackOptions()
    try:
        return async_get_playback(hass).reserve(
            list(speakers.values()), high=options.high, interrupt=options.interrupt
        )
    except PlaybackError as err:
        raise translated_error(err) from err


def volume_setting(
    entry_options: Mapping[str, Any], options: PlaybackOptions, speakers: dict[str, Speaker]
) -> VolumeSetting:
    """The call's volume with the entry's limits and per-speaker offsets (by speaker uid)."""
    offsets: Mapping[str, Any] = entry_options.get(CONF_VOLUME_OFFSETS) or {}
    return VolumeSetting(
        level=options.volume,
        change=options.volume_change,
        minimum=int(entry_options.get(CONF_MIN_VOLUME, DEFAULT_MIN_VOLUME)),
        maximum=int(entry_options.get(CONF_MAX_VOLUME, DEFAULT_MAX_VOLUME)),
        offsets={s.uid: int(offsets[e]) for e, s in speakers.items() if e in offsets},
    )


async def async_stop(
    hass: HomeAssistant, entity_ids: Sequence[str], *, keep_queued: bool = False
) -> int:
    """End the announcements of Sonos speakers now (restored); how many were affected."""
    validate_players(hass, entity_ids)
    speakers = split_targets(hass, entity_ids).sonos
    return async_get_playback(hass).stop(list(speakers.values()), keep_queued=keep_queued)


async def async_play_on_sonos(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    message: str,
    request: Request,
    speakers: dict[str, Speaker],
    turn: Turn,
    composition: Composition | None = None,
) -> dict[str, Any]:
    """Wait for the speakers' turn, synthesize, play; a summary when the speech has ended.

    The audio is synthesized only once it is this announcement's turn: a queued announcement
    holds no engine slot. An announcement stopped (`SonosPlayback.stop`) while it waited
    returns as stopped on every speaker.
    """
    data = entry.runtime_data
    base = data.speaker_url.url
    assert base is not None  # checked by async_announce
    playback = request.playback
    try:
        async with turn as ready:
            try:
                item = await async_create_audio(
                    hass,
                    entry,
                    message,
                    request.synthesis,
                    data.audio_format,
                    forced=request.engine,
                    composition=composition,
                )
            except EngineError as err:
                raise translated_error(err) from err
            announcement = ItemAnnouncement(item, audio_url(base, item), ANNOUNCEMENT_TITLE)
            try:
                result = await async_get_playback(hass).async_play(
                    list(speakers.values()),
                    announcement,
                    volume=volume_setting(entry.options, playback, speakers),
                    mode=playback.mode,
                    group=playback.group,
                    turn=ready,
                )
            except NeverFetchedError as err:
                never_fetched_issue(hass, err, item)
                raise translated_error(err) from err
            except PlaybackError as err:
                raise translated_error(err) from err
    except AnnouncementStoppedError:
        return stopped_summary(speakers, playback.mode)
    ir.async_delete_issue(hass, DOMAIN, ISSUE_NEVER_FETCHED)
    return summary(result, speakers)


#: How other players are spoken to: HA's own announcement (the tts entity's base behaviour,
#: with the caller's context), given the players and the options HA's tts path gets.
type SpeakOthers = Callable[[list[str], dict[str, Any]], Awaitable[None]]


async def async_announce(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    message: str,
    options: Mapping[str, Any],
    entity_ids: Sequence[str],
    *,
    wait: bool,
    speak_others: SpeakOthers,
) -> dict[str, Any] | None:
    """Speak on media players: Sonos through our controller, others through HA's tts.

    Everything is validated first, the options parsed once (:func:`options.parse_request`,
    with the speakers' defaults when there are Sonos targets); then the Sonos speakers' turn is
    reserved (in request order; a full queue is an error here, also without ``wait``). With
    ``wait`` the call returns when the speech has ended on every Sonos speaker, with a summary;
    otherwise playback goes on in the background (errors are logged).
    """
    validate_players(hass, entity_ids)
    targets = split_targets(hass, entity_ids)
    request, _ = checked_request(
        entry.runtime_data, message, options, entry.options, speakers=bool(targets.sonos)
    )
    if targets.sonos and entry.runtime_data.speaker_url.url is None:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="no_speaker_url")
    # Sonos: the audio's chimes. Other players: HA's tts path makes their audio, but a chime
    # that cannot be used is refused here already.
    composition = await async_check_composition(hass, entry, request)
    turn = reserve_turn(hass, targets.sonos, request.playback) if targets.sonos else None
    try:
        if targets.others:
            await speak_others(targets.others, ha_options_of(options))
    except BaseException:
        if turn is not None:
            turn.release()
        raise
    if turn is None:
        return (
            {
                "duration": None,
                "results": others_results(targets.others),
                "speakers": [],
                "modes": {},
                "errors": {},
                "others": targets.others,
            }
            if wait
            else None
        )
    play = async_play_on_sonos(hass, entry, message, request, targets.sonos, turn, composition)
    if wait:
        result = await play
        result["results"].update(others_results(targets.others))
        result["others"] = targets.others
        return result

    async def in_background() -> None:
        try:
            await play
        except HomeAssistantError as err:
            _LOGGER.warning("Announcement on %s failed: %s", ", ".join(targets.sonos), err)

    task = entry.async_create_background_task(hass, in_background(), name="alicia_tts announcement")
    # A task cancelled before it ran never enters the turn: give the place up in any case.
    task.add_done_callback(lambda _task: turn.release())
    return None


def speaker_result(
    status: str,
    mode: str,
    volume: int | None = None,
    duration: float | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """What happened on one media player: the same keys for every case (docs/options.md)."""
    return {
        "status": status,
        "mode": mode,
        "volume": volume,
        "duration": duration,
        "reason": reason,
    }


def others_results(others: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Non-Sonos players: Home Assistant's announcement was sent to them."""
    return {entity_id: speaker_result("sent", "announce") for entity_id in others}


def summary(result: PlaybackResult, speakers: dict[str, Speaker]) -> dict[str, Any]:
    """The service response of an announcement (errors as translated texts)."""
    by_uid = {s.uid: e for e, s in speakers.items()}
    duration = round(result.duration, 2)
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for o in result.outcomes:
        entity_id = by_uid[o.speaker.uid]
        reason = None if o.error is None else str(translated_error(o.error))
        if reason is not None:
            errors[entity_id] = reason
        results[entity_id] = speaker_result(
            o.status,
            o.mode,
            o.volume if o.error is None else None,
            duration if o.status == PLAYED else None,
            reason,
        )
    return {
        "duration": duration,
        "results": results,
        "speakers": [e for e, r in results.items() if r["status"] == PLAYED],
        "modes": {e: r["mode"] for e, r in results.items()},
        "errors": errors,
    }


def stopped_summary(speakers: dict[str, Speaker], mode: str | None) -> dict[str, Any]:
    """The response of an announcement stopped before it played."""
    results = {e: speaker_result(STOPPED, mode or "overlay") for e in speakers}
    return {
        "duration": None,
        "results": results,
        "speakers": [],
        "modes": {e: r["mode"] for e, r in results.items()},
        "errors": {},
    }
