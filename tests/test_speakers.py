"""Targets: Sonos speakers from HA's registries; other players through HA's announcement."""

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from custom_components.alicia_tts.const import (
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
    ISSUE_NEVER_FETCHED,
)
from custom_components.alicia_tts.models import SpeakerUrl
from custom_components.alicia_tts.playback import Speaker
from custom_components.alicia_tts.speakers import (
    async_get_playback,
    ha_options_of,
    resolve_sonos,
    split_targets,
)

from .conftest import JOE
from .sonos_double import FakeHousehold

type ClientFactory = Callable[[], Coroutine[Any, Any, TestClient[Any, Any]]]
TTS_ENTITY = "tts.alicia_tts_joe_en_us_medium"


def register_sonos(
    hass: HomeAssistant, name: str, uid: str, ip: str, *, object_id: str | None = None
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
        model="One",
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


async def test_resolve_from_registries(hass: HomeAssistant) -> None:
    """Address and uid come from the Sonos device; other players are not Sonos."""
    kitchen = register_sonos(hass, "Kitchen", "RINCON_000E58AAAA0201400", "192.168.1.31")
    assert resolve_sonos(hass, kitchen) == Speaker(
        uid="RINCON_000E58AAAA0201400", ip="192.168.1.31", name="Kitchen"
    )
    other = er.async_get(hass).async_get_or_create("media_player", "cast", "abc")
    assert resolve_sonos(hass, other.entity_id) is None
    assert resolve_sonos(hass, "media_player.unregistered") is None
    # A Sonos entity without a device, or a device without an address, is not usable.
    bare = er.async_get(hass).async_get_or_create("media_player", "sonos", "RINCON_X")
    assert resolve_sonos(hass, bare.entity_id) is None

    targets = split_targets(hass, [kitchen, other.entity_id, "media_player.unregistered"])
    assert list(targets.sonos) == [kitchen]
    assert targets.others == [other.entity_id, "media_player.unregistered"]


async def test_device_without_configuration_url(hass: HomeAssistant) -> None:
    """Without a configuration URL there is no address: not resolvable."""
    sonos_entry = MockConfigEntry(domain="sonos")
    sonos_entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=sonos_entry.entry_id, identifiers={("sonos", "RINCON_Y")}, name="Den"
    )
    entity = er.async_get(hass).async_get_or_create(
        "media_player", "sonos", "RINCON_Y", config_entry=sonos_entry, device_id=device.id
    )
    assert resolve_sonos(hass, entity.entity_id) is None


def test_ha_options_keep_engine_keys_and_format_hints() -> None:
    """Other players get engine options and HA's format hints, not playback options."""
    assert ha_options_of(
        {"speed": 1.2, "volume": 30, "mode": "overlay", "preferred_format": "wav", "x": 1}
    ) == {"speed": 1.2, "preferred_format": "wav"}


async def test_say_to_other_players(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """alicia_tts.say to a non-Sonos player uses HA's play_media with announce."""
    calls = async_mock_service(hass, "media_player", "play_media")
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
    )
    assert response == {
        "duration": None,
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


async def test_say_without_response(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Without wait and response the call just starts the announcement."""
    calls = async_mock_service(hass, "media_player", "play_media")
    await hass.services.async_call(
        "alicia_tts",
        "say",
        {"entity_id": "media_player.tv", "message": "Hi."},
        blocking=True,
    )
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"message": "Hi."}, "no_targets"),
        ({"entity_id": "light.kitchen", "message": "Hi."}, "no_targets"),
        ({"entity_id": "media_player.tv", "message": "Hi.", "speed": 7}, "invalid_option"),
    ],
)
async def test_say_rejects(
    hass: HomeAssistant, init_integration: MockConfigEntry, data: dict[str, Any], key: str
) -> None:
    """No media player, or bad options: a translated validation error, nothing played."""
    calls = async_mock_service(hass, "media_player", "play_media")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call("alicia_tts", "say", data, blocking=True)
    assert err.value.translation_key == key
    assert calls == []


# -- the whole stack: HA's HTTP server, our audio view, real soco, loopback Sonos doubles --------


@pytest.fixture
async def sonos_entry(
    hass: HomeAssistant,
    setup_ha: None,
    sonos_household: FakeHousehold,
    hass_client_no_auth: ClientFactory,
) -> AsyncGenerator[MockConfigEntry]:
    """The integration, its speaker URL on HA's real (test) HTTP server, two Sonos entities."""
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
    for fake in sonos_household.speakers:
        register_sonos(hass, fake.name, fake.uid, fake.ip)
    yield entry
    await _idle(hass)


async def _idle(hass: HomeAssistant) -> None:
    """Wait until no announcement is queued or playing."""
    playback = async_get_playback(hass)
    for _ in range(200):
        if not any(lock.locked() for lock in playback._locks.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("playback did not finish")


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
    hass: HomeAssistant, sonos_entry: MockConfigEntry, sonos_household: FakeHousehold
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
    issue = ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_NEVER_FETCHED)
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
    assert ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_NEVER_FETCHED) is None


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
