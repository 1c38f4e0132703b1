"""Targets: Sonos speakers from HA's registries; other players through HA's announcement."""

import asyncio
from collections.abc import AsyncGenerator
import itertools
import time
from typing import Any
from unittest.mock import patch

from homeassistant.core import Context, HomeAssistant, ServiceCall
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts.announce import (
    async_get_playback,
    ha_options_of,
    resolve_sonos,
    split_targets,
)
from custom_components.alicia_tts.const import (
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
    ISSUE_NEVER_FETCHED,
)
from custom_components.alicia_tts.models import SpeakerUrl
from custom_components.alicia_tts.sonos import Speaker

from .conftest import JOE
from .sonos_double import DEFAULT_EVENT_DELAY, FakeHousehold

TTS_ENTITY = "tts.alicia_tts_joe_en_us_medium"
#: Event delays the README's promises must hold at: instant, typical, slow.
EVENT_DELAYS = [0.0, 0.1, 0.5]


@pytest.fixture
async def sonos_household(
    request: pytest.FixtureRequest, sonos_loopback: None
) -> AsyncGenerator[FakeHousehold]:
    """Kitchen (127.0.0.40) and Bedroom (.41); events lag by the param (default: realistic)."""
    delay = getattr(request, "param", DEFAULT_EVENT_DELAY)
    async with FakeHousehold.create(
        2, first_ip=40, names=("Kitchen", "Bedroom"), event_delay=delay
    ) as household:
        yield household


def register_sonos(
    hass: HomeAssistant,
    name: str,
    uid: str,
    ip: str,
    *,
    object_id: str | None = None,
    model: str = "One",
) -> str:
    """Register a Sonos device and its media player the way the core sonos integration does."""
    sonos_entry = MockConfigEntry(domain="sonos", title="Sonos")
    sonos_entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=sonos_entry.entry_id,
        identifiers={("sonos", uid)},
        connections={(dr.CONNECTION_UPNP, f"uuid:{uid}")},
        manufacturer="Sonos",
        name=name,
        model=model,
        configuration_url=f"http://{ip}:1400/support/review",
    )
    entity = er.async_get(hass).async_get_or_create(
        "media_player",
        "sonos",
        uid,
        suggested_object_id=object_id or name.lower().replace(" ", "_"),
        config_entry=sonos_entry,
        device_id=device.id,
    )
    return entity.entity_id


async def test_resolve_from_registries(
    hass: HomeAssistant, entity_registry: er.EntityRegistry
) -> None:
    """Address and uid come from the Sonos device; other players are not Sonos."""
    kitchen = register_sonos(hass, "Kitchen", "RINCON_000E58AAAA0201400", "192.168.1.31")
    assert resolve_sonos(hass, kitchen) == Speaker(
        uid="RINCON_000E58AAAA0201400", ip="192.168.1.31", name="Kitchen", model="One"
    )
    other = entity_registry.async_get_or_create("media_player", "cast", "abc")
    assert resolve_sonos(hass, other.entity_id) is None
    assert resolve_sonos(hass, "media_player.unregistered") is None
    # A Sonos entity without a device, or a device without an address, is not usable.
    bare = entity_registry.async_get_or_create("media_player", "sonos", "RINCON_X")
    assert resolve_sonos(hass, bare.entity_id) is None

    targets = split_targets(hass, [kitchen, other.entity_id, "media_player.unregistered"])
    assert list(targets.sonos) == [kitchen]
    assert targets.others == [other.entity_id, "media_player.unregistered"]


async def test_device_without_configuration_url(
    hass: HomeAssistant, device_registry: dr.DeviceRegistry, entity_registry: er.EntityRegistry
) -> None:
    """Without a configuration URL there is no address: not resolvable."""
    sonos_entry = MockConfigEntry(domain="sonos")
    sonos_entry.add_to_hass(hass)
    device = device_registry.async_get_or_create(
        config_entry_id=sonos_entry.entry_id, identifiers={("sonos", "RINCON_Y")}, name="Den"
    )
    entity = entity_registry.async_get_or_create(
        "media_player", "sonos", "RINCON_Y", config_entry=sonos_entry, device_id=device.id
    )
    assert resolve_sonos(hass, entity.entity_id) is None


def test_ha_options_keep_engine_keys_and_format_hints() -> None:
    """Other players get engine options and HA's format hints, not playback options."""
    assert ha_options_of(
        {"speed": 1.2, "volume": 30, "mode": "overlay", "preferred_format": "wav", "x": 1}
    ) == {"speed": 1.2, "preferred_format": "wav"}


def add_player(hass: HomeAssistant, entity_id: str) -> str:
    """A media player of some other integration (only its state: it exists)."""
    hass.states.async_set(entity_id, "idle")
    return entity_id


async def test_say_to_other_players(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """alicia_tts.say to a non-Sonos player uses HA's play_media with announce."""
    add_player(hass, "media_player.living_room_tv")
    calls = async_mock_service(hass, "media_player", "play_media")
    context = Context()
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {
            "entity_id": "media_player.living_room_tv",
            "message": "Hello TV.",
            "volume": 30,
            "speed": 1.1,
            "wait": True,
        },
        blocking=True,
        return_response=True,
        context=context,
    )
    assert response == {
        "duration": None,
        "results": {
            "media_player.living_room_tv": {
                "status": "sent",
                "mode": "announce",
                "volume": None,
                "duration": None,
                "reason": None,
            }
        },
        "speakers": [],
        "modes": {},
        "errors": {},
        "others": ["media_player.living_room_tv"],
    }
    assert len(calls) == 1
    data: dict[str, Any] = dict(calls[0].data)
    assert data["entity_id"] == ["media_player.living_room_tv"]
    assert data["announce"] is True
    assert data["media_content_id"].startswith("media-source://tts/tts.alicia_tts_joe_en_us_medium")
    assert "speed" in data["media_content_id"]
    assert "volume" not in data["media_content_id"]
    assert calls[0].context is context  # the caller's context (its user, its logbook entry)


async def test_tts_speak_to_other_players_is_the_base_behaviour_in_the_callers_context(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """tts.speak to a non-Sonos player: HA's own play_media announcement, same context."""
    add_player(hass, "media_player.kitchen_display")
    calls = async_mock_service(hass, "media_player", "play_media")
    context = Context()
    await hass.services.async_call(
        "tts",
        "speak",
        {
            "entity_id": TTS_ENTITY,
            "media_player_entity_id": "media_player.kitchen_display",
            "message": "Dinner is ready.",
            "options": {"speed": 1.2, "chime": True},
        },
        blocking=True,
        context=context,
    )
    assert len(calls) == 1
    assert calls[0].context is context
    data: dict[str, Any] = dict(calls[0].data)
    assert data["announce"] is True
    assert data["entity_id"] == ["media_player.kitchen_display"]
    assert data["media_content_id"].startswith(f"media-source://tts/{TTS_ENTITY}")
    assert "speed" in data["media_content_id"]
    assert "chime" in data["media_content_id"]


async def test_say_without_response(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Without wait and response the call just starts the announcement."""
    add_player(hass, "media_player.tv")
    calls = async_mock_service(hass, "media_player", "play_media")
    await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.tv", "message": "Hi."},
        blocking=True,
    )
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("data", "key", "text"),
    [
        ({"message": "Hi."}, "no_targets", "Choose at least one media player to speak on"),
        (
            {"entity_id": "media_player.nowhere", "message": "Hi."},
            "unknown_media_player",
            "The media player media_player.nowhere does not exist",
        ),
        (
            {"entity_id": ["media_player.tv", "media_player.nowhere"], "message": "Hi."},
            "unknown_media_player",
            "The media player media_player.nowhere does not exist",
        ),
        (
            {"entity_id": "light.kitchen", "message": "Hi."},
            "not_a_media_player",
            "light.kitchen is not a media player",
        ),
        (
            {"entity_id": "media_player.tv", "message": "Hi.", "speed": 7},
            "invalid_option",
            None,
        ),
    ],
)
async def test_say_rejects(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    data: dict[str, Any],
    key: str,
    text: str | None,
) -> None:
    """No, unknown or non-media-player targets, bad options: translated validation errors."""
    add_player(hass, "media_player.tv")
    hass.states.async_set("light.kitchen", "on")
    calls = async_mock_service(hass, "media_player", "play_media")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call("alicia_tts", "say", data, blocking=True)
    assert err.value.translation_key == key
    if text is not None:
        assert str(err.value) == text  # the translated text, not a developer string
    assert calls == []


async def test_tts_speak_rejects_a_media_player_that_does_not_exist(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """tts.speak to an unknown media player is an error too, before anything is synthesized."""
    calls = async_mock_service(hass, "media_player", "play_media")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": TTS_ENTITY,
                "media_player_entity_id": "media_player.nowhere",
                "message": "Anyone?",
            },
            blocking=True,
        )
    assert err.value.translation_key == "unknown_media_player"
    assert str(err.value) == "The media player media_player.nowhere does not exist"
    assert calls == []


async def test_say_to_an_area_speaks_on_its_media_players_only(
    hass: HomeAssistant,
    area_registry: ar.AreaRegistry,
    entity_registry: er.EntityRegistry,
    init_integration: MockConfigEntry,
) -> None:
    """Areas and devices bring their media players; their other entities are no targets."""
    area = area_registry.async_create("Den")
    player = entity_registry.async_get_or_create("media_player", "cast", "den-speaker")
    light = entity_registry.async_get_or_create("light", "hue", "den-light")
    for entity in (player, light):
        entity_registry.async_update_entity(entity.entity_id, area_id=area.id)
        hass.states.async_set(entity.entity_id, "on")
    calls = async_mock_service(hass, "media_player", "play_media")
    await hass.services.async_call(
        "alicia_tts", "say", {"area_id": area.id, "message": "Hi."}, blocking=True
    )
    assert [call.data["entity_id"] for call in calls] == [[player.entity_id]]


# -- the whole stack: HA's HTTP server, our audio view, real soco, loopback Sonos doubles --------


@pytest.fixture
async def alicia_entry(
    hass: HomeAssistant, setup_ha: None, hass_client_no_auth: ClientSessionGenerator
) -> AsyncGenerator[MockConfigEntry]:
    """The integration with its speaker URL on HA's real (test) HTTP server."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="Joe (en-US, medium)", data={CONF_VOICE: JOE}, unique_id=JOE
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    # HA's HTTP app serves for real once the client starts it; speakers use that address.
    client = await hass_client_no_auth()
    hass.config_entries.async_update_entry(
        entry, options={CONF_SPEAKER_BASE_URL: f"http://127.0.0.1:{client.port}"}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    playback = async_get_playback(hass)
    playback.realtime = 0  # the doubles play instantly
    playback.poll_interval = 0.05
    yield entry
    await _idle(hass)


@pytest.fixture
async def sonos_entry(
    hass: HomeAssistant, alicia_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> MockConfigEntry:
    """Alicia and two Sonos entities registered as HA's sonos integration registers them."""
    for fake in sonos_household.speakers:
        register_sonos(hass, fake.name, fake.uid, fake.ip, model=fake.model_name)
    return alicia_entry


async def _idle(hass: HomeAssistant, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Wait until no announcement is queued or playing."""
    playback = async_get_playback(hass)
    async with asyncio.timeout(timeout):
        while not playback.idle:  # noqa: ASYNC110 - the queue has no event to wait on
            await asyncio.sleep(0.05)


async def test_tts_speak_on_sonos_takeover(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """tts.speak with volume and takeover: the speaker fetches speech from HA and is restored."""
    kitchen = sonos_household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    kitchen.volume = 11
    before = (kitchen.current_uri, kitchen.transport_state, kitchen.volume, kitchen.mute)
    await hass.services.async_call(
        "tts",
        "speak",
        {
            "entity_id": TTS_ENTITY,
            "media_player_entity_id": "media_player.kitchen",
            "message": "The garage door is open. Please close it.",
            "options": {"volume": 35, "mode": "takeover"},
        },
        blocking=True,
    )
    record = await kitchen.wait_played(1, timeout=30)
    await _idle(hass)
    assert record.via == "avtransport"
    assert record.ok
    assert record.format == "mp3"
    assert record.sample_rate == 22050
    assert record.volume == 35
    assert record.rms is not None
    assert record.rms > 0.05
    assert record.duration_s is not None
    assert 2.0 < record.duration_s < 6.0
    # The speaker default of 0.5 s leading silence protects the first word.
    assert record.leading_silence_ms is not None
    assert record.leading_silence_ms >= 400
    assert record.url.startswith(sonos_entry.options[CONF_SPEAKER_BASE_URL] + "/api/alicia_tts/")
    assert (kitchen.current_uri, kitchen.transport_state, kitchen.volume, kitchen.mute) == before


async def test_say_wait_group_response(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """alicia_tts.say with wait and group: synced on both, restored, and a response."""
    kitchen, bedroom = sonos_household["Kitchen"], sonos_household["Bedroom"]
    kitchen.preset_queue(4, track=3, state="PLAYING")
    bedroom.preset_tv(state="PLAYING")
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {
            "entity_id": ["media_player.kitchen", "media_player.bedroom"],
            "message": "Dinner is ready.",
            "group": True,
            "volume": 25,
            "wait": True,
        },
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    speakers = response["speakers"]
    assert isinstance(speakers, list)
    assert sorted(str(s) for s in speakers) == ["media_player.bedroom", "media_player.kitchen"]
    assert response["modes"] == {
        "media_player.bedroom": "takeover",
        "media_player.kitchen": "takeover",
    }
    assert response["errors"] == {}
    assert response["others"] == []
    duration = response["duration"]
    assert isinstance(duration, float)
    assert 1.0 < duration < 4.0
    played = kitchen.played + bedroom.played
    assert len(played) == 1  # one fetch by the temporary group's coordinator
    assert played[0].ok
    assert kitchen.current_uri.startswith("x-rincon-queue:")
    assert kitchen.track_number == 3
    assert bedroom.current_uri.startswith("x-sonos-htastream:")
    assert kitchen.coordinator is kitchen
    assert bedroom.coordinator is bedroom


async def test_say_overlay_default(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """By default Sonos speakers get an audio clip over their music, at the given volume."""
    kitchen = sonos_household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.kitchen", "message": "Hello.", "volume": 40, "wait": True},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    assert response["modes"] == {"media_player.kitchen": "overlay"}
    record = await kitchen.wait_played(1)
    assert record.via == "audioclip"
    assert record.volume == 40
    assert record.ok
    assert kitchen.transport_state == "PLAYING"


async def test_never_fetched_repair_issue(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    sonos_entry: MockConfigEntry,
    sonos_household: FakeHousehold,
) -> None:
    """A URL the speaker cannot reach: clear error, and a repair issue naming URL and clients."""
    sonos_entry.runtime_data.speaker_url = SpeakerUrl("http://127.0.0.1:9", None)
    async_get_playback(hass).fetch_timeout = 0.5
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "alicia_tts",
            "say",
            {"entity_id": "media_player.kitchen", "message": "Anyone?", "wait": True},
            blocking=True,
        )
    assert err.value.translation_key == "never_fetched"
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_NEVER_FETCHED)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["url"].startswith("http://127.0.0.1:9/api/alicia_tts/")
    assert issue.translation_placeholders["seen"] == "none"
    assert issue.translation_placeholders["speaker"] == "Kitchen"

    # Once a speaker fetches again, the issue is cleared.
    async_get_playback(hass).fetch_timeout = 10
    sonos_entry.runtime_data.speaker_url = SpeakerUrl(
        sonos_entry.options[CONF_SPEAKER_BASE_URL], None
    )
    await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.kitchen", "message": "Found you.", "wait": True},
        blocking=True,
    )
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_NEVER_FETCHED) is None


async def test_speaker_down_error(hass: HomeAssistant, sonos_entry: MockConfigEntry) -> None:
    """A Sonos entity whose speaker is off: a clear, translated error."""
    register_sonos(hass, "Garage", "RINCON_GHOST01400", "127.0.0.59")
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "alicia_tts",
            "say",
            {"entity_id": "media_player.garage", "message": "Hello?", "wait": True},
            blocking=True,
        )
    assert err.value.translation_key == "speaker_unreachable"
    assert err.value.translation_placeholders == {
        "speaker": "Garage",
        "ip": "127.0.0.59",
    }


async def test_background_failure_is_logged(
    hass: HomeAssistant,
    sonos_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without wait, a failing announcement is logged (the call itself already returned)."""
    register_sonos(hass, "Garage", "RINCON_GHOST01400", "127.0.0.59")
    await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.garage", "message": "Hello?"},
        blocking=True,
    )
    await _idle(hass)
    for _ in range(100):
        if "Announcement on media_player.garage failed" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "Announcement on media_player.garage failed" in caplog.text


async def test_errors_reach_users_as_translated_text(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """What a user reads is the translated text, also per speaker in the response."""
    register_sonos(hass, "Garage", "RINCON_GHOST01400", "127.0.0.59")
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "alicia_tts",
            "say",
            {"entity_id": "media_player.garage", "message": "Hello?", "wait": True},
            blocking=True,
        )
    assert str(err.value) == "The speaker Garage (127.0.0.59) did not answer"
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {
            "entity_id": ["media_player.garage", "media_player.kitchen"],
            "message": "Hello?",
            "wait": True,
        },
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["speakers"] == ["media_player.kitchen"]
    assert response["errors"] == {
        "media_player.garage": "The speaker Garage (127.0.0.59) did not answer"
    }


async def test_ten_announcements_at_once_all_play_in_order(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """Ten alicia_tts.say calls at once to one speaker: all ten play, in request order.

    Waiting announcements hold no synthesis slot (the engine admits 8 at a time), so none is
    refused. Each call has its own leading silence, which the speaker measures: that tells
    the announcements apart.
    """
    kitchen = sonos_household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    silences = [round(0.1 * n, 1) for n in range(10)]
    calls = [
        hass.async_create_task(
            hass.services.async_call(
                "alicia_tts",
                "say",
                {
                    "entity_id": "media_player.kitchen",
                    "message": "Announcement.",
                    "leading_silence": silence,
                },
                blocking=True,
            )
        )
        for silence in silences
    ]
    await asyncio.gather(*calls)
    await kitchen.wait_played(10, timeout=60)
    await _idle(hass)
    assert len(kitchen.played) == 10
    measured = [r.leading_silence_ms or 0.0 for r in kitchen.played]
    assert all(r.ok and r.via == "audioclip" for r in kitchen.played)
    assert measured == sorted(measured), measured
    assert all(b - a > 60 for a, b in itertools.pairwise(measured)), measured
    assert kitchen.transport_state == "PLAYING"


async def test_ten_group_announcements_at_once_play_in_order_and_restore(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """Ten synced group announcements at once: all play in order; both speakers come back."""
    kitchen, bedroom = sonos_household["Kitchen"], sonos_household["Bedroom"]
    kitchen.preset_radio(state="PLAYING")
    bedroom.preset_queue(3, track=2, state="PLAYING")
    before = [(s.current_uri, s.transport_state, s.track_number) for s in (kitchen, bedroom)]
    silences = [round(0.1 * n, 1) for n in range(10)]
    calls = [
        hass.async_create_task(
            hass.services.async_call(
                "alicia_tts",
                "say",
                {
                    "entity_id": ["media_player.kitchen", "media_player.bedroom"],
                    "message": "Group announcement.",
                    "leading_silence": silence,
                    "group": True,
                },
                blocking=True,
            )
        )
        for silence in silences
    ]
    await asyncio.gather(*calls)
    await _idle(hass, timeout=90)
    played = kitchen.played + bedroom.played
    assert len(played) == 10  # each once, by the temporary group's coordinator
    leader = kitchen if len(kitchen.played) == 10 else bedroom
    measured = [r.leading_silence_ms or 0.0 for r in leader.played]
    assert all(b - a > 60 for a, b in itertools.pairwise(measured)), measured
    after = [(s.current_uri, s.transport_state, s.track_number) for s in (kitchen, bedroom)]
    assert after == before
    assert kitchen.coordinator is kitchen
    assert bedroom.coordinator is bedroom


async def test_a_full_queue_is_refused_with_a_clear_error(
    hass: HomeAssistant, sonos_entry: MockConfigEntry
) -> None:
    """Beyond the queue's bound a call fails at once, translated (never a silent drop)."""
    async_get_playback(hass).max_queued = 2
    data = {"entity_id": "media_player.kitchen", "message": "Queued."}
    for _ in range(2):
        await hass.services.async_call("alicia_tts", "say", data, blocking=True)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call("alicia_tts", "say", data, blocking=True)
    assert err.value.translation_key == "queue_full"
    assert str(err.value) == (
        "Kitchen already has 2 announcements waiting. Try again when some have played"
    )
    await _idle(hass)


async def test_a_failing_other_player_gives_back_the_sonos_turn(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """Sonos plus another player whose play_media fails: the error is the caller's, and the
    Sonos speaker's reserved turn is given back (the next announcement is not stuck behind it)."""
    add_player(hass, "media_player.tv")

    async def failing_play_media(call: ServiceCall) -> None:
        raise HomeAssistantError("the TV is off")

    hass.services.async_register("media_player", "play_media", failing_play_media)
    playback = async_get_playback(hass)
    playback.max_queued = 1  # a turn kept by mistake would refuse the next call as a full queue
    with pytest.raises(HomeAssistantError, match="the TV is off"):
        await hass.services.async_call(
            "alicia_tts",
            "say",
            {"entity_id": ["media_player.kitchen", "media_player.tv"], "message": "Hi."},
            blocking=True,
        )
    assert playback.idle
    assert sonos_household.speakers[0].played == []
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.kitchen", "message": "Still here.", "wait": True},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["speakers"] == ["media_player.kitchen"]


async def test_sonos_targets_need_a_speaker_url(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """Without an address speakers can reach, a Sonos announcement is refused before any audio
    is made; the same call to another player still goes through HA's own path."""
    sonos_entry.runtime_data.speaker_url = SpeakerUrl(None, "missing")
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "alicia_tts",
            "say",
            {"entity_id": "media_player.kitchen", "message": "Hello?", "wait": True},
            blocking=True,
        )
    assert err.value.translation_key == "no_speaker_url"
    assert async_get_playback(hass).idle
    assert sonos_household.speakers[0].played == []
    add_player(hass, "media_player.tv")
    calls = async_mock_service(hass, "media_player", "play_media")
    await hass.services.async_call(
        "alicia_tts", "say", {"entity_id": "media_player.tv", "message": "Hello?"}, blocking=True
    )
    assert len(calls) == 1


# -- through Home Assistant's own sonos integration (its event subscriptions feed soco) -----------


@pytest.fixture
async def ha_sonos(
    hass: HomeAssistant, setup_ha: None, sonos_household: FakeHousehold
) -> AsyncGenerator[dict[str, str]]:
    """HA's core sonos integration set up on the doubles (manual hosts): {room: entity_id}.

    Request it before ``alicia_entry``: HA's HTTP server must not run yet while the sonos
    integration registers its views.
    """
    with (
        patch("homeassistant.components.ssdp.Scanner._async_start_ssdp_listeners"),
        patch("homeassistant.components.ssdp.Scanner._async_stop_ssdp_listeners"),
        patch("homeassistant.components.ssdp.Scanner.async_scan"),
        patch("homeassistant.components.ssdp.Server._async_start_upnp_servers"),
        patch("homeassistant.components.ssdp.Server._async_stop_upnp_servers"),
    ):
        hosts = [s.ip for s in sonos_household.speakers]
        assert await async_setup_component(
            hass, "sonos", {"sonos": {"media_player": {"hosts": hosts}}}
        )
        players: dict[str, str] = {}
        # A bonded set's other speakers are invisible: HA makes entities of visible ones only.
        visible = [s for s in sonos_household.speakers if s.bonded_to is None]
        async with asyncio.timeout(30):
            while len(players) < len(visible) or any(
                hass.states.get(e) is None for e in players.values()
            ):
                await asyncio.sleep(0.1)
                players = {
                    name: entity_id
                    for entity_id in hass.states.async_entity_ids("media_player")
                    if (speaker := resolve_sonos(hass, entity_id)) is not None
                    for name in (speaker.name,)
                }
        await hass.async_block_till_done()
        yield players
        await _idle(hass)
        [entry] = hass.config_entries.async_entries("sonos")
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    for task in asyncio.all_tasks():  # soco's listener stops after a grace period: not awaited
        if "_deferred_stop" in repr(task.get_coro()):
            task.cancel()


async def _ha_group(hass: HomeAssistant, entity_id: str, members: list[str]) -> None:
    """Wait until HA's sonos integration shows ``entity_id`` in a group of ``members``."""
    async with asyncio.timeout(10):
        while True:
            state = hass.states.get(entity_id)
            if state is not None and sorted(state.attributes.get("group_members", [])) == members:
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("expected_lingering_timers", [True])
@pytest.mark.parametrize("sonos_household", EVENT_DELAYS, indirect=True)
@pytest.mark.filterwarnings("ignore:Testing an element's truth value:DeprecationWarning")
async def test_grouped_member_takeover_through_home_assistant_sonos(
    hass: HomeAssistant,
    sonos_household: FakeHousehold,
    ha_sonos: dict[str, str],
    alicia_entry: MockConfigEntry,
) -> None:
    """A member of a group, takeover: it speaks, then it is back in its group.

    Home Assistant's sonos integration subscribes to the speakers' events, so soco learns of a
    group change only when the (late) ZoneGroupTopology event arrives.
    """
    kitchen, bedroom = sonos_household["Kitchen"], sonos_household["Bedroom"]
    bedroom.preset_radio(state="PLAYING")
    await hass.services.async_call(
        "media_player",
        "join",
        {"entity_id": ha_sonos["Bedroom"], "group_members": [ha_sonos["Kitchen"]]},
        blocking=True,
    )
    grouped = sorted([ha_sonos["Bedroom"], ha_sonos["Kitchen"]])
    await _ha_group(hass, ha_sonos["Kitchen"], grouped)
    assert kitchen.coordinator is bedroom
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {
            "entity_id": ha_sonos["Kitchen"],
            "message": "Only in the kitchen.",
            "mode": "takeover",
            "volume": 30,
            "wait": True,
        },
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert (response["speakers"], response["errors"]) == ([ha_sonos["Kitchen"]], {})
    [record] = kitchen.played
    assert (record.ok, record.via, record.volume) == (True, "avtransport", 30)
    assert bedroom.played == []
    assert kitchen.coordinator is bedroom
    assert bedroom.current_uri.startswith("x-sonosapi-stream:")
    assert bedroom.transport_state == "PLAYING"
    await _ha_group(hass, ha_sonos["Kitchen"], grouped)


@pytest.mark.parametrize("expected_lingering_timers", [True])
@pytest.mark.parametrize("sonos_household", EVENT_DELAYS, indirect=True)
@pytest.mark.filterwarnings("ignore:Testing an element's truth value:DeprecationWarning")
async def test_group_announcement_through_home_assistant_sonos(
    hass: HomeAssistant,
    sonos_household: FakeHousehold,
    ha_sonos: dict[str, str],
    alicia_entry: MockConfigEntry,
) -> None:
    """group: true on two standalone speakers: each gets its own music back, playing."""
    kitchen, bedroom = sonos_household["Kitchen"], sonos_household["Bedroom"]
    kitchen.preset_radio(state="PLAYING")
    bedroom.preset_queue(4, track=3, position="0:00:20", state="PLAYING")
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {
            "entity_id": [ha_sonos["Kitchen"], ha_sonos["Bedroom"]],
            "message": "Everyone, please.",
            "group": True,
            "wait": True,
        },
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["errors"] == {}
    assert len(kitchen.played + bedroom.played) == 1
    for speaker in (kitchen, bedroom):
        assert speaker.coordinator is speaker
        assert speaker.transport_state == "PLAYING"
    assert kitchen.current_uri.startswith("x-sonosapi-stream:")
    assert bedroom.current_uri == f"x-rincon-queue:{bedroom.uid}#0"
    assert bedroom.track_number == 3


# -- volume, stop, priority, models and bonded sets (issue 14) ----------------------------------


def _say(hass: HomeAssistant, data: dict[str, Any]) -> asyncio.Task[Any]:
    """An ``alicia_tts.say`` with ``wait`` and a response, running in the background."""
    return hass.async_create_task(
        hass.services.async_call(
            "alicia_tts", "say", {**data, "wait": True}, blocking=True, return_response=True
        )
    )


async def _options(hass: HomeAssistant, entry: MockConfigEntry, **options: Any) -> None:
    hass.config_entries.async_update_entry(entry, options={**entry.options, **options})
    assert await hass.config_entries.async_reload(entry.entry_id)
    playback = async_get_playback(hass)
    playback.realtime = 0
    playback.poll_interval = 0.05


async def test_tts_speak_relative_volume_clamped_with_offset(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """tts.speak volume "+10": from 50, plus the kitchen's offset 5, clamped to max 60."""
    await _options(
        hass,
        sonos_entry,
        min_volume=20,
        max_volume=60,
        volume_offsets={"media_player.kitchen": 5, "media_player.elsewhere": -5},
    )
    kitchen = sonos_household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    kitchen.volume = 50
    await hass.services.async_call(
        "tts",
        "speak",
        {
            "entity_id": TTS_ENTITY,
            "media_player_entity_id": "media_player.kitchen",
            "message": "Relative.",
            "options": {"volume": "+10"},
        },
        blocking=True,
    )
    record = await kitchen.wait_played(1, timeout=30)
    await _idle(hass)
    assert (record.via, record.volume) == ("audioclip", 60)
    assert kitchen.volume == 50
    # An absolute volume below the minimum is raised to it (plus nothing: no offset here).
    bedroom = sonos_household["Bedroom"]
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.bedroom", "message": "Low.", "volume": 5, "wait": True},
        blocking=True,
        return_response=True,
    )
    results: Any = response
    assert results["results"]["media_player.bedroom"]["volume"] == 20
    assert (await bedroom.wait_played(1)).volume == 20


async def test_say_muted_takeover_response_and_restore(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """A muted speaker is heard and muted again; the response has one shape per player."""
    kitchen = sonos_household["Kitchen"]
    kitchen.preset_queue(3, track=2, state="PLAYING")
    kitchen.mute, kitchen.volume = True, 30
    register_sonos(hass, "Garage", "RINCON_GHOST01400", "127.0.0.59")
    add_player(hass, "media_player.tv")
    calls = async_mock_service(hass, "media_player", "play_media")
    response: Any = await hass.services.async_call(
        "alicia_tts",
        "say",
        {
            "entity_id": ["media_player.kitchen", "media_player.garage", "media_player.tv"],
            "message": "Muted no more.",
            "volume": 40,
            "wait": True,
        },
        blocking=True,
        return_response=True,
    )
    [record] = kitchen.played
    assert (record.volume, record.muted) == (40, False)
    assert (kitchen.mute, kitchen.volume, kitchen.track_number) == (True, 30, 2)
    assert kitchen.transport_state == "PLAYING"
    results = response["results"]
    kitchen_result = results["media_player.kitchen"]
    assert kitchen_result["status"] == "played"
    assert (kitchen_result["mode"], kitchen_result["volume"]) == ("overlay", 40)
    assert kitchen_result["reason"] is None
    assert kitchen_result["duration"] == response["duration"] > 0.5
    assert results["media_player.garage"] == {
        "status": "failed",
        "mode": "takeover",  # its clip websocket did not answer either
        "volume": None,
        "duration": None,
        "reason": "The speaker Garage (127.0.0.59) did not answer",
    }
    assert results["media_player.tv"]["status"] == "sent"
    assert all(
        set(r) == {"status", "mode", "volume", "duration", "reason"} for r in results.values()
    )
    assert len(calls) == 1


async def test_stop_ends_the_announcement_at_once_and_drops_the_waiting_ones(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """alicia_tts.stop: the playing say returns stopped, restored at once; queued ones too."""
    kitchen = sonos_household["Kitchen"]
    kitchen.playback_speed = 1.0  # plays in real time
    kitchen.preset_radio(state="PLAYING")
    kitchen.volume = 22
    before = (kitchen.current_uri, kitchen.transport_state, kitchen.volume)
    target = {"entity_id": "media_player.kitchen", "mode": "takeover", "volume": 45}
    playing = _say(hass, {**target, "message": "This is a long announcement. " * 3})
    queued = _say(hass, {**target, "message": "Never heard."})
    await kitchen.wait_for(
        lambda: bool(kitchen.played) and kitchen.transport_state == "PLAYING", 30
    )
    started = time.monotonic()
    stopped = await hass.services.async_call(
        "alicia_tts",
        "stop",
        {"entity_id": "media_player.kitchen"},
        blocking=True,
        return_response=True,
    )
    assert stopped == {"stopped": 2}
    first, second = await playing, await queued
    assert time.monotonic() - started < 3.0
    assert first["results"]["media_player.kitchen"]["status"] == "stopped"
    assert first["results"]["media_player.kitchen"]["volume"] == 45
    assert first["speakers"] == []
    assert second["results"]["media_player.kitchen"] == {
        "status": "stopped",
        "mode": "takeover",
        "volume": None,
        "duration": None,
        "reason": None,
    }
    assert (kitchen.current_uri, kitchen.transport_state, kitchen.volume) == before
    assert len(kitchen.played) == 1
    await _idle(hass)


async def test_stop_keep_queued_and_interrupt(
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """keep_queued leaves the waiting one; priority high + interrupt cuts in, then FIFO."""
    kitchen = sonos_household["Kitchen"]
    kitchen.playback_speed = 1.0
    kitchen.preset_radio(state="PLAYING")
    target = {"entity_id": "media_player.kitchen", "mode": "takeover"}
    first = _say(hass, {**target, "message": "First, and quite long. " * 3, "leading_silence": 0.1})
    await kitchen.wait_for(
        lambda: bool(kitchen.played) and kitchen.transport_state == "PLAYING", 30
    )
    second = _say(hass, {**target, "message": "Second.", "leading_silence": 0.2})
    await asyncio.sleep(0.1)
    await hass.services.async_call(
        "alicia_tts",
        "stop",
        {"entity_id": "media_player.kitchen", "keep_queued": True},
        blocking=True,
    )
    assert (await first)["results"]["media_player.kitchen"]["status"] == "stopped"
    await kitchen.wait_for(
        lambda: len(kitchen.played) == 2 and kitchen.transport_state == "PLAYING", 30
    )
    normal = _say(hass, {**target, "message": "Third.", "leading_silence": 0.3})
    await asyncio.sleep(0.1)
    urgent = _say(
        hass,
        {
            **target,
            "message": "Urgent.",
            "priority": "high",
            "interrupt": True,
            "leading_silence": 0.6,
        },
    )
    assert (await second)["results"]["media_player.kitchen"]["status"] == "stopped"
    assert (await urgent)["results"]["media_player.kitchen"]["status"] == "played"
    assert (await normal)["results"]["media_player.kitchen"]["status"] == "played"
    ms = [r.leading_silence_ms or 0.0 for r in kitchen.played]
    assert ms[0] < ms[1] < ms[3] < ms[2], ms  # the urgent one went before the normal third
    await _idle(hass)
    assert kitchen.current_uri.startswith("x-sonosapi-stream:")


async def test_stop_and_say_reject_bad_input(
    hass: HomeAssistant, sonos_entry: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call("alicia_tts", "stop", {}, blocking=True)
    assert err.value.translation_key == "no_targets"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "alicia_tts", "stop", {"entity_id": "media_player.nowhere"}, blocking=True
        )
    assert err.value.translation_key == "unknown_media_player"
    for volume in ("loud", "+200", -3):
        with pytest.raises(ServiceValidationError) as err:
            await hass.services.async_call(
                "alicia_tts",
                "say",
                {"entity_id": "media_player.kitchen", "message": "Hi.", "volume": volume},
                blocking=True,
            )
        assert err.value.translation_key == "invalid_playback_option"
        assert "+N or -N" in str(err.value)
    # Nothing to stop: fine, and nothing was queued by the refused calls.
    assert await hass.services.async_call(
        "alicia_tts",
        "stop",
        {"entity_id": "media_player.kitchen"},
        blocking=True,
        return_response=True,
    ) == {"stopped": 0}
    assert async_get_playback(hass).idle


async def test_play1_gets_takeover_and_a_pair_plays_on_both(
    hass: HomeAssistant, alicia_entry: MockConfigEntry, sonos_household: FakeHousehold
) -> None:
    """A Play:1 goes straight to takeover; a stereo pair's main entity plays on both halves."""
    kitchen, bedroom = sonos_household["Kitchen"], sonos_household["Bedroom"]
    register_sonos(hass, "Kitchen", kitchen.uid, kitchen.ip, model="One")
    register_sonos(hass, "Bedroom", bedroom.uid, bedroom.ip, model="Play:1")
    response = await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.bedroom", "message": "Old speaker.", "wait": True},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    assert response["modes"] == {"media_player.bedroom": "takeover"}
    assert bedroom.ws_log == []
    assert [r.via for r in bedroom.played] == ["avtransport"]

    sonos_household.bond_pair(kitchen, bedroom)
    kitchen.preset_radio(state="PLAYING")
    await hass.services.async_call(
        "tts",
        "speak",
        {
            "entity_id": TTS_ENTITY,
            "media_player_entity_id": "media_player.kitchen",
            "message": "Stereo.",
            "options": {"volume": 30},
        },
        blocking=True,
    )
    await bedroom.wait_played(2, timeout=30)
    await _idle(hass)
    [played] = kitchen.played
    assert played.via == "avtransport"
    heard = bedroom.played[1]
    assert (heard.bonded_from, heard.volume, heard.ok) == ("Kitchen", 30, True)
    assert kitchen.transport_state == "PLAYING"
    assert kitchen.current_uri.startswith("x-sonosapi-stream:")


@pytest.fixture
def paired_household(sonos_household: FakeHousehold) -> FakeHousehold:
    """Kitchen and Bedroom as a stereo pair (Kitchen the main speaker), before HA sees them."""
    sonos_household.bond_pair(sonos_household["Kitchen"], sonos_household["Bedroom"])
    return sonos_household


@pytest.mark.parametrize("expected_lingering_timers", [True])
@pytest.mark.filterwarnings("ignore:Testing an element's truth value:DeprecationWarning")
async def test_stereo_pair_through_home_assistant_sonos(
    hass: HomeAssistant,
    paired_household: FakeHousehold,
    ha_sonos: dict[str, str],
    alicia_entry: MockConfigEntry,
) -> None:
    """HA's sonos integration shows the pair as one player; say plays on both halves."""
    kitchen, bedroom = paired_household["Kitchen"], paired_household["Bedroom"]
    assert list(ha_sonos) == ["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    response: Any = await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": ha_sonos["Kitchen"], "message": "Both sides.", "volume": 25, "wait": True},
        blocking=True,
        return_response=True,
    )
    result = response["results"][ha_sonos["Kitchen"]]
    assert (result["status"], result["mode"], result["volume"]) == ("played", "takeover", 25)
    [played] = kitchen.played
    [heard] = bedroom.played
    assert (played.via, heard.bonded_from, heard.volume) == ("avtransport", "Kitchen", 25)
    assert kitchen.transport_state == "PLAYING"
    assert kitchen.current_uri.startswith("x-sonosapi-stream:")
