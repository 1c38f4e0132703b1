"""The loopback Sonos double, driven by unmodified soco 0.31 and sonos-websocket 0.2."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
import os
from pathlib import Path
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import Any
from unittest.mock import patch

import aiohttp
from aiohttp import web
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.setup import async_setup_component
import numpy as np
import pytest
import soco
import soco.alarms
from soco.events_base import parse_event_xml
from soco.exceptions import NotSupportedException, SoCoUPnPException
from soco.snapshot import Snapshot
from sonos_websocket import SonosWebsocket
from sonos_websocket.exception import SonosWebsocketError

from custom_components.alicia_tts.announce import resolve_sonos
from custom_components.alicia_tts.sonos import Speaker

from .sonos_double import (
    API_KEY_HEADER,
    PAUSED,
    PLAYING,
    STATUS_PATH,
    STOPPED,
    TRANSITIONING,
    FakeHousehold,
    FakeSonosSpeaker,
    QueueTrack,
    allow_loopback_hosts,
    analyse_audio,
    apply_preset,
    decode_audio,
    main as sonos_double_main,
    radio_metadata,
    scpd_xml,
    soco_forget_topology,
    soco_reset,
)

REPO = Path(__file__).resolve().parent.parent
RATE = 22050


# ------------------------------------------------------------------------------------ audio


def make_wav(
    seconds: float = 1.0,
    *,
    rate: int = RATE,
    lead_silence: float = 0.25,
    streaming: bool = False,
    bits: int = 16,
) -> bytes:
    """A mono sine WAV; ``streaming`` writes RIFF/data sizes of 0 like a live encoder."""
    frames = int(seconds * rate)
    wave = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(frames) / rate)
    wave[: int(lead_silence * rate)] = 0.0
    if bits == 16:
        pcm = (wave * 32767).astype("<i2").tobytes()
    else:
        pcm = ((wave * 127) + 128).astype(np.uint8).tobytes()
    data_size = 0 if streaming else len(pcm)
    riff_size = 0 if streaming else 36 + len(pcm)
    block = bits // 8
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * block,
        block,
        bits,
        b"data",
        data_size,
    )
    return header + pcm


def to_mp3(wav: bytes, folder: Path, rate: int = RATE) -> bytes:
    """Encode with the system ffmpeg (to a file, so LAME writes its gapless header)."""
    target = folder / f"tone-{rate}.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "wav",
            "-i",
            "pipe:0",
            "-ar",
            str(rate),
            "-codec:a",
            "libmp3lame",
            "-b:a",
            "32k",
            str(target),
        ],
        input=wav,
        capture_output=True,
        check=True,
    )
    return target.read_bytes()


@dataclass
class Audio:
    """The files the audio server hands out."""

    wav: bytes
    mp3: bytes
    mp3_8k: bytes


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    """Made once per module (ffmpeg takes a moment)."""
    folder = tmp_path_factory.mktemp("audio")
    wav = make_wav()
    return Audio(wav=wav, mp3=to_mp3(wav, folder), mp3_8k=to_mp3(wav, folder, rate=8000))


@dataclass
class AudioServer:
    """An HTTP server on 127.0.0.1 that plays the part of Home Assistant's tts_proxy."""

    base: str
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        """Absolute URL of ``path``."""
        return self.base + path


@pytest.fixture
def loopback(socket_enabled: None) -> Iterator[None]:
    """Sockets to 127.0.0.1-20 allowed; soco forgets earlier tests' speakers."""
    allow_loopback_hosts()
    soco_reset()
    yield
    soco_reset()


@pytest.fixture
async def audio_server(loopback: None, audio: Audio) -> AsyncIterator[AudioServer]:
    """Serve the test audio on an ephemeral port of 127.0.0.1."""
    server = AudioServer(base="")

    def serve(body: bytes, content_type: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            server.requests.append((request.path, dict(request.headers)))
            return web.Response(body=body, content_type=content_type)

        return handler

    async def stream_wav(request: web.Request) -> web.StreamResponse:
        server.requests.append((request.path, dict(request.headers)))
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        data = make_wav(0.8, streaming=True, lead_silence=0.1)
        for start in range(0, len(data), 4096):
            await response.write(data[start : start + 4096])
        await response.write_eof()
        return response

    async def missing(request: web.Request) -> web.Response:
        server.requests.append((request.path, dict(request.headers)))
        raise web.HTTPNotFound

    app = web.Application()
    app.router.add_get("/tts/tone.wav", serve(audio.wav, "audio/wav"))
    app.router.add_get("/tts/tone.mp3", serve(audio.mp3, "audio/mpeg"))
    app.router.add_get("/tts/low.mp3", serve(audio.mp3_8k, "audio/mpeg"))
    app.router.add_get("/tts/8bit.wav", serve(make_wav(bits=8), "audio/wav"))
    app.router.add_get("/tts_proxy/abc123", serve(audio.mp3, "audio/mpeg"))
    app.router.add_get("/radio/stream.mp3", serve(audio.mp3, "audio/mpeg"))
    app.router.add_get("/tts/stream.wav", stream_wav)
    app.router.add_get("/tts/missing.mp3", missing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def household(loopback: None) -> AsyncIterator[FakeHousehold]:
    """Three speakers on 127.0.0.2-4, instant playback."""
    async with FakeHousehold.create(3) as started:
        yield started
    assert [error for s in started.speakers for error in s.errors] == []


async def in_thread[T](func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """soco is blocking: run it off the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ------------------------------------------------------------------------------------ UPnP


async def test_device_info_through_soco(household: FakeHousehold) -> None:
    kitchen = household["Kitchen"]
    device = soco.SoCo(kitchen.ip)

    def read() -> dict[str, Any]:
        return {
            "name": device.player_name,
            "uid": device.uid,
            "household": device.household_id,
            "coordinator": device.is_coordinator,
            "info": device.get_speaker_info(refresh=True),
            "zones": {zone.player_name for zone in device.all_zones},
            "visible": len(device.visible_zones),
        }

    seen = await in_thread(read)
    assert seen["name"] == "Kitchen"
    assert seen["uid"] == kitchen.uid == "RINCON_000E5800000301400"
    assert seen["household"] == household.household_id
    assert seen["coordinator"] is True
    assert seen["zones"] == {"Living Room", "Kitchen", "Office"}
    assert seen["visible"] == 3
    info = seen["info"]
    assert info["zone_name"] == "Kitchen"
    assert info["model_name"] == "Sonos One"
    assert info["model_number"] == "S18"
    assert info["serial_number"] == "00-0E-58-00-00-03:E"
    assert info["mac_address"] == "00-0E-58-00-00-03"
    assert info["software_version"] == kitchen.software_version
    assert info["uid"] == kitchen.uid
    # the calls soco made: SCPD-composed GetHouseholdID, then the zone group state
    assert ("DeviceProperties", "GetHouseholdID", {}) in kitchen.soap_log
    assert ("ZoneGroupTopology", "GetZoneGroupState", {}) in kitchen.soap_log


async def test_scpd_lets_soco_compose_arguments(household: FakeHousehold) -> None:
    speaker = household.speakers[0]
    device = soco.SoCo(speaker.ip)
    info = await in_thread(device.avTransport.GetTransportInfo, InstanceID=0)
    assert info["CurrentTransportState"] == STOPPED
    volume = await in_thread(device.renderingControl.GetVolume, InstanceID=0, Channel="Master")
    assert volume == {"CurrentVolume": "20"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{speaker.base_url}/xml/NoSuchService1.xml") as response:
            assert response.status == 404
        async with session.get(f"{speaker.base_url}/xml/ZoneGroupTopology1.xml") as response:
            assert response.status == 200
            assert "<name>GetZoneGroupState</name>" in await response.text()
    assert "<name>Browse</name>" in scpd_xml("ContentDirectory")


async def test_volume_mute_and_eq(household: FakeHousehold) -> None:
    speaker = household.speakers[0]
    device = soco.SoCo(speaker.ip)

    def adjust() -> tuple[int, bool, int, int, bool, int]:
        device.volume = 35
        device.mute = True
        device.bass = 4
        device.treble = -12  # soco clamps to -10
        device.loudness = False
        read = (device.volume, device.mute, device.bass, device.treble, device.loudness)
        device.volume = 150  # soco clamps, so does the speaker
        return (*read, device.volume)

    assert await in_thread(adjust) == (35, True, 4, -10, False, 100)
    assert (speaker.volume, speaker.mute, speaker.bass, speaker.treble) == (100, True, 4, -10)
    assert speaker.loudness is False
    # the ramp lands on the target at once and reports Sonos' 1.25 steps a second
    ramp = await in_thread(device.ramp_to_volume, 50)
    assert (speaker.volume, ramp) == (50, 40)


async def test_unknown_action_is_upnp_401(household: FakeHousehold) -> None:
    device = soco.SoCo(household.speakers[0].ip)
    with pytest.raises(SoCoUPnPException) as caught:
        await in_thread(device.avTransport.send_command, "Frobnicate", [("InstanceID", 0)])
    assert caught.value.error_code == "401"
    with pytest.raises(SoCoUPnPException) as bad_instance:
        await in_thread(device.avTransport.GetTransportInfo, [("InstanceID", 3)])
    assert bad_instance.value.error_code == "718"


# ------------------------------------------------------------------------------------ playback


async def test_play_wav_is_fetched_decoded_and_stops(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    device = soco.SoCo(speaker.ip)
    url = audio_server.url("/tts/tone.wav")
    await in_thread(device.play_uri, url)
    record = await speaker.wait_played(1)
    await speaker.wait_idle()

    assert record.ok, record.error
    assert (record.url, record.via, record.status) == (url, "avtransport", 200)
    assert record.content_type == "audio/wav"
    assert record.content_length == len(make_wav())
    assert record.chunked is False
    assert (record.format, record.sample_rate, record.channels) == ("wav", RATE, 1)
    assert record.bits_per_sample == 16
    assert record.duration_s == pytest.approx(1.0, abs=0.001)
    assert record.peak is not None
    assert record.peak == pytest.approx(0.5, abs=0.01)
    assert record.rms is not None
    assert 0.25 < record.rms < 0.35
    assert record.leading_silence_ms == pytest.approx(250, abs=2)
    assert record.first_byte_s is not None
    assert record.total_s is not None
    assert 0 < record.first_byte_s <= record.total_s < 5
    assert record.volume == 20
    assert not record.silent
    # a speaker-like GET
    path, headers = audio_server.requests[-1]
    assert path == "/tts/tone.wav"
    assert headers["User-Agent"].startswith("Linux UPnP/1.0 Sonos/")
    # TRANSITIONING while fetching, PLAYING with the duration known, STOPPED at the end
    assert speaker.transport_history[-3:] == [TRANSITIONING, PLAYING, STOPPED]
    calls = [action for service, action, _ in speaker.soap_log if service == "AVTransport"]
    assert calls[-2:] == ["SetAVTransportURI", "Play"]
    track = await in_thread(device.get_current_track_info)
    assert (track["uri"], track["duration"]) == (url, "0:00:01")


async def test_play_mp3_reports_native_rate(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[1]
    device = soco.SoCo(speaker.ip)
    await in_thread(device.play_uri, audio_server.url("/tts/tone.mp3"))
    record = await speaker.wait_played(1)
    assert record.ok, record.error
    assert (record.format, record.sample_rate, record.channels) == ("mp3", RATE, 1)
    assert record.duration_s == pytest.approx(1.0, abs=0.06)
    assert record.peak is not None
    assert record.peak > 0.4
    assert record.leading_silence_ms == pytest.approx(250, abs=30)
    assert record.content_type == "audio/mpeg"


async def test_extensionless_url_is_714_unless_metadata(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    device = soco.SoCo(speaker.ip)
    url = audio_server.url("/tts_proxy/abc123")
    with pytest.raises(SoCoUPnPException) as caught:
        await in_thread(device.play_uri, url)
    assert caught.value.error_code == "714"
    assert speaker.faults[-1] == ("AVTransport", "SetAVTransportURI", 714)
    assert speaker.played == []
    assert audio_server.requests == []  # rejected before any fetch
    # with metadata (soco's title=) the speaker takes it and types it from the bytes
    await in_thread(device.play_uri, url, title="Announcement")
    record = await speaker.wait_played(1)
    assert (record.format, record.ok) == ("mp3", True)


async def test_lenient_speaker_accepts_unknown_extension(
    loopback: None, audio_server: AudioServer
) -> None:
    async with FakeSonosSpeaker("Den", "127.0.0.5", strict_extension_check=False) as speaker:
        device = soco.SoCo(speaker.ip)
        await in_thread(device.play_uri, audio_server.url("/tts_proxy/abc123"))
        record = await speaker.wait_played(1)
        assert record.format == "mp3"
        await speaker.wait_idle()


async def test_play_without_uri_is_701(household: FakeHousehold) -> None:
    speaker = household.speakers[0]
    device = soco.SoCo(speaker.ip)
    with pytest.raises(SoCoUPnPException) as caught:
        await in_thread(device.play)
    assert caught.value.error_code == "701"
    with pytest.raises(SoCoUPnPException) as pause:
        await in_thread(device.pause)
    assert pause.value.error_code == "701"


async def test_chunked_stream_without_content_length(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    await in_thread(soco.SoCo(speaker.ip).play_uri, audio_server.url("/tts/stream.wav"))
    record = await speaker.wait_played(1)
    assert record.ok, record.error
    assert record.chunked is True
    assert record.content_length is None
    assert record.headers["Transfer-Encoding"] == "chunked"
    assert (record.format, record.sample_rate) == ("wav", RATE)
    assert record.duration_s == pytest.approx(0.8, abs=0.001)
    assert record.leading_silence_ms == pytest.approx(100, abs=2)


async def test_fetch_failures_are_recorded_and_stop(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    device = soco.SoCo(speaker.ip)
    await in_thread(device.play_uri, audio_server.url("/tts/missing.mp3"))
    missing = await speaker.wait_played(1)
    assert (missing.status, missing.error) == (404, "HTTP 404 Not Found")
    await speaker.wait_idle()
    assert speaker.transport_state == STOPPED

    refused_url = f"http://127.0.0.1:{free_port()}/tts/nobody.mp3"
    await in_thread(device.play_uri, refused_url)
    refused = await speaker.wait_played(2)
    assert refused.status is None
    assert refused.error is not None
    assert "Connect" in refused.error
    await speaker.wait_idle()
    assert speaker.transport_history[-2:] == [TRANSITIONING, STOPPED]

    await in_thread(device.play_uri, audio_server.url("/tts/low.mp3"))
    low = await speaker.wait_played(3)
    assert low.sample_rate == 8000
    assert low.error == "MP3 at 8000 Hz is not played by Sonos"
    await in_thread(device.play_uri, audio_server.url("/tts/8bit.wav"))
    eight_bit = await speaker.wait_played(4)
    assert eight_bit.error == "WAV must be 16-bit PCM, this is 8-bit"
    await speaker.wait_idle()
    assert speaker.transport_state == STOPPED


async def test_playback_takes_duration_times_speed(
    loopback: None, audio_server: AudioServer
) -> None:
    async with FakeSonosSpeaker("Slow", "127.0.0.6", playback_speed=0.5) as speaker:
        device = soco.SoCo(speaker.ip)
        await in_thread(device.play_uri, audio_server.url("/tts/tone.wav"))
        await speaker.wait_state(PLAYING)
        await asyncio.sleep(0.1)
        await in_thread(device.pause)
        paused_at = (await in_thread(device.get_current_track_info))["position"]
        assert speaker.transport_state == PAUSED
        position = speaker.position()
        assert 0.1 <= position < 1.0
        assert paused_at == "0:00:00"
        await asyncio.sleep(0.6)  # nothing runs out while paused
        assert speaker.transport_state == PAUSED
        assert speaker.position() == position
        await in_thread(device.play)  # resumes without fetching again
        loop = asyncio.get_running_loop()
        started = loop.time()
        await speaker.wait_state(STOPPED, timeout=3)
        remaining = (1.0 - position) * 0.5
        assert remaining - 0.05 < loop.time() - started < remaining + 1.0
        assert len(speaker.played) == 1


async def test_start_delay_keeps_the_transport_transitioning(
    loopback: None, audio_server: AudioServer
) -> None:
    """After the fetch the speaker buffers: TRANSITIONING until the start delay has passed."""
    async with FakeSonosSpeaker("Slow start", "127.0.0.6", start_delay=600) as speaker:
        await in_thread(soco.SoCo(speaker.ip).play_uri, audio_server.url("/tts/tone.wav"))
        record = await speaker.wait_played(1)
        assert record.ok
        await asyncio.sleep(0)
        assert speaker.transport_state == TRANSITIONING
        assert PLAYING not in speaker.transport_history


# ------------------------------------------------------------------------------------ groups


@pytest.mark.parametrize("event_delay", [0.0, 0.1, 0.5])
async def test_join_and_unjoin_show_in_soco_group(loopback: None, event_delay: float) -> None:
    async with FakeHousehold.create(3, event_delay=event_delay) as household:
        await _join_and_unjoin(household)


async def _join_and_unjoin(household: FakeHousehold) -> None:
    living, kitchen, _office = household.speakers
    living.preset_radio(state=PLAYING)
    coordinator = soco.SoCo(living.ip)
    member = soco.SoCo(kitchen.ip)
    await in_thread(member.join, coordinator)
    await household.wait_topology()  # the topology speakers report catches up

    def join() -> dict[str, Any]:
        soco_forget_topology()
        group = member.group
        return {
            "coordinator": group.coordinator.player_name,
            "members": {zone.player_name for zone in group.members},
            "member_is_coordinator": member.is_coordinator,
            "state": member.get_current_transport_info()["current_transport_state"],
            "track_uri": member.get_current_track_info()["uri"],
            "media_uri": member.get_current_media_info()["uri"],
            "groups": len(member.all_groups),
        }

    joined = await in_thread(join)
    assert joined["coordinator"] == "Living Room"
    assert joined["members"] == {"Living Room", "Kitchen"}
    assert joined["member_is_coordinator"] is False
    assert joined["state"] == PLAYING  # members report the coordinator's transport
    assert joined["track_uri"] == f"x-rincon:{living.uid}"
    assert joined["media_uri"] == f"x-rincon:{living.uid}"
    assert joined["groups"] == 2
    assert kitchen.coordinator is living
    assert household.groups() == [[living, kitchen], [household.speakers[2]]]
    zgs = household.zone_group_state()
    assert f'Coordinator="{living.uid}"' in zgs
    assert 'Location="http://127.0.0.3:1400/xml/device_description.xml"' in zgs

    await in_thread(member.unjoin)
    await household.wait_topology()

    def unjoin() -> tuple[set[str], bool, int]:
        soco_forget_topology()
        names = {zone.player_name for zone in member.group.members}
        return names, member.is_coordinator, len(member.all_groups)

    assert await in_thread(unjoin) == ({"Kitchen"}, True, 3)
    assert living.transport_state == PLAYING
    assert kitchen.transport_state == STOPPED


async def test_group_change_shows_in_the_topology_only_after_the_event_delay(
    loopback: None,
) -> None:
    """The speakers play as a group at once; what they report catches up after the delay."""
    async with FakeHousehold.create(2, event_delay=600) as household:  # longer than the test
        living, kitchen = household.speakers
        coordinator, member = soco.SoCo(living.ip), soco.SoCo(kitchen.ip)

        def reported() -> tuple[bool, str]:
            soco_forget_topology()
            zgs = member.zoneGroupTopology.GetZoneGroupState()["ZoneGroupState"]
            return member.is_coordinator, zgs

        alone = household.zone_group_state(published=True)
        await in_thread(member.join, coordinator)
        assert kitchen.coordinator is living  # it follows the coordinator's transport now
        assert not household.topology_settled
        # soco (asking the speaker) still sees the old topology: Kitchen on its own.
        assert await in_thread(reported) == (True, alone)

        household.publish_topology()  # the test's shortcut through the delay
        grouped = household.zone_group_state(published=True)
        assert await in_thread(reported) == (False, grouped)
        await in_thread(member.unjoin)
        assert kitchen.is_coordinator
        assert await in_thread(reported) == (False, grouped)  # still a member, says soco
        # So the play path refuses on soco's side, as with a real speaker this early.
        with pytest.raises(soco.exceptions.SoCoSlaveException, match="only be called/used on"):
            await in_thread(member.play_uri, "http://127.0.0.1:9/x.mp3")


async def test_group_changes_are_published_in_order(loopback: None) -> None:
    """Several changes in a row show one after the other, ending with the last."""
    async with FakeHousehold.create(3, event_delay=0.05) as household:
        living, kitchen, office = household.speakers
        for speaker in (kitchen, office):
            await in_thread(soco.SoCo(speaker.ip).join, soco.SoCo(living.ip))
        await in_thread(soco.SoCo(kitchen.ip).unjoin)
        await household.wait_topology()
        assert household.zone_group_state(published=True) == household.zone_group_state()
        assert household.published_group(office) == [living.uid, office.uid]
        assert household.published_group(kitchen) == [kitchen.uid]


async def test_coordinator_leaving_hands_over_the_group(household: FakeHousehold) -> None:
    living, kitchen, office = household.speakers
    living.preset_queue(4, track=2, position="0:00:30", state=PLAYING)
    household.join(kitchen, living)
    household.join(office, living)
    result = await in_thread(
        soco.SoCo(living.ip).avTransport.BecomeCoordinatorOfStandaloneGroup, [("InstanceID", 0)]
    )
    assert result["DelegatedGroupCoordinatorID"] == kitchen.uid
    assert household.groups() == [[living], [kitchen, office]]
    assert kitchen.current_uri == f"x-rincon-queue:{kitchen.uid}#0"
    assert (kitchen.track_number, kitchen.transport_state) == (2, PLAYING)
    assert office.coordinator is kitchen
    assert living.transport_state == STOPPED


# ------------------------------------------------------------------------------------ snapshot


def observe(device: Any) -> dict[str, Any]:
    """Everything a snapshot is meant to bring back, as soco reads it."""
    media = device.avTransport.GetMediaInfo([("InstanceID", 0)])
    track = device.get_current_track_info()
    return {
        "state": device.get_current_transport_info()["current_transport_state"],
        "uri": media["CurrentURI"],
        "meta": media["CurrentURIMetaData"],
        "source": device.music_source,
        "track": track["playlist_position"],
        "position": track["position"],
        "track_uri": track["uri"],
        "volume": device.volume,
        "mute": device.mute,
        "bass": device.bass,
        "treble": device.treble,
        "loudness": device.loudness,
        "play_mode": device.play_mode,
        "cross_fade": device.cross_fade,
    }


def disturb(device: Any, tts_url: str | None) -> None:
    """What an announcement does: louder, unmuted, flat EQ, maybe a new source."""
    device.volume = 60
    device.mute = False
    device.bass = 0
    device.treble = 0
    device.loudness = True
    if tts_url is not None:
        device.play_uri(tts_url)


SOURCES = ["radio", "line_in", "tv", "queue"]


def preset_source(speaker: FakeSonosSpeaker, source: str, state: str) -> None:
    """Make ``speaker`` play ``source`` (one of SOURCES) in ``state``."""
    if source == "radio":
        speaker.preset_radio(state=state)
    elif source == "line_in":
        speaker.preset_line_in(state=state)
    elif source == "tv":
        speaker.preset_tv(state=state)
    else:
        speaker.preset_queue(
            6, track=3, position="0:01:23", state=state, play_mode="SHUFFLE", crossfade=True
        )
    speaker.volume, speaker.mute = 17, True
    speaker.bass, speaker.treble, speaker.loudness = 3, -2, False


# soco's restore sends neither Play nor Stop for a paused source, so only a paused speaker
# that was not made to play anything in between comes back paused: a playing or stopped one
# gets an announcement in between, a paused one only the volume and EQ changes.
@pytest.mark.parametrize("state", [PLAYING, STOPPED])
@pytest.mark.parametrize("source", SOURCES)
async def test_snapshot_restore_round_trip(
    household: FakeHousehold, audio_server: AudioServer, source: str, state: str
) -> None:
    speaker = household.speakers[0]
    preset_source(speaker, source, state)
    device = soco.SoCo(speaker.ip)
    before = await in_thread(observe, device)
    assert before["state"] == state

    snap = Snapshot(device)
    assert await in_thread(snap.snapshot) is True
    tts = audio_server.url("/tts/tone.wav")
    await in_thread(disturb, device, tts)
    await speaker.wait_played(1)
    await speaker.wait_idle()
    assert speaker.current_uri == tts
    await in_thread(snap.restore)
    await speaker.wait_idle()
    assert await in_thread(observe, device) == before
    assert len(speaker.played) == 1


@pytest.mark.parametrize("source", SOURCES)
async def test_snapshot_restore_round_trip_paused(household: FakeHousehold, source: str) -> None:
    speaker = household.speakers[0]
    preset_source(speaker, source, PAUSED)
    device = soco.SoCo(speaker.ip)
    before = await in_thread(observe, device)
    assert before["state"] == PAUSED

    snap = Snapshot(device)
    assert await in_thread(snap.snapshot) is True
    await in_thread(disturb, device, None)
    await in_thread(snap.restore)
    await speaker.wait_idle()
    assert await in_thread(observe, device) == before
    assert len(speaker.played) == 0


async def test_restored_paused_source_after_tts_is_stopped(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    """A limitation of soco's restore that the double reproduces (worth knowing)."""
    speaker = household.speakers[0]
    speaker.preset_queue(3, track=2, position="0:00:42", state=PAUSED)
    device = soco.SoCo(speaker.ip)
    snap = Snapshot(device)
    await in_thread(snap.snapshot)
    await in_thread(device.play_uri, audio_server.url("/tts/tone.mp3"))
    await speaker.wait_played(1)
    await speaker.wait_idle()
    await in_thread(snap.restore)
    after = await in_thread(observe, device)
    assert (after["uri"], after["track"], after["position"]) == (
        f"x-rincon-queue:{speaker.uid}#0",
        "2",
        "0:00:42",
    )
    assert after["state"] == STOPPED


async def test_snapshot_restore_of_mp3_radio_refetches_the_stream(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    stream = audio_server.url("/radio/stream.mp3").removeprefix("http:")
    speaker.preset_radio(f"x-rincon-mp3radio:{stream}", "Loopback Radio", PLAYING)
    device = soco.SoCo(speaker.ip)
    before = await in_thread(observe, device)
    assert before["source"] == "RADIO"
    snap = Snapshot(device)
    await in_thread(snap.snapshot)
    await in_thread(device.play_uri, audio_server.url("/tts/tone.wav"))
    await speaker.wait_idle()
    speaker.playback_speed = 100.0  # the restarted "radio" keeps playing during the check
    await in_thread(snap.restore)
    await speaker.wait_state(PLAYING)
    assert await in_thread(observe, device) == before
    radio = speaker.played[-1]
    assert radio.url == "http:" + stream
    assert (radio.via, radio.format) == ("avtransport", "mp3")


async def test_queue_browse_add_and_clear(household: FakeHousehold) -> None:
    speaker = household.speakers[0]
    speaker.preset_queue(
        [QueueTrack("x-file-cifs://nas/a.mp3", title="A"), QueueTrack("http://x/b.mp3")],
        track=1,
        state=STOPPED,
    )
    device = soco.SoCo(speaker.ip)

    def work() -> tuple[list[str], int | None, int, int | None]:
        titles = [item.title for item in device.get_queue()]
        size = device.queue_size
        number = device.add_uri_to_queue("x-file-cifs://nas/c.flac")
        device.clear_queue()
        return titles, size, number, device.queue_size

    titles, size, number, after = await in_thread(work)
    assert titles == ["A", "b.mp3"]
    assert (size, number, after) == (2, 3, 0)


# ------------------------------------------------------------------------------------ audioClip


async def test_audio_clip_plays_over_without_touching_transport(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    speaker.preset_radio(state=PLAYING)
    url = audio_server.url("/tts/tone.mp3")
    async with aiohttp.ClientSession() as session:
        websocket = SonosWebsocket(speaker.ip, player_id=speaker.uid, session=session)
        response, clip = await websocket.play_clip(url, volume=35)
        await websocket.close()
    assert response["success"] is True
    assert response["type"] == "audioClip"
    assert response["householdId"] == household.household_id
    assert (clip["status"], clip["clipType"], clip["appId"]) == (
        "ACTIVE",
        "CUSTOM",
        "com.jjlawren.sonos_websocket",
    )
    record = await speaker.wait_played(1)
    await speaker.wait_idle()
    assert (record.via, record.url, record.volume, record.clip_id) == (
        "audioclip",
        url,
        35,
        clip["id"],
    )
    assert (record.format, record.sample_rate, record.ok) == ("mp3", RATE, True)
    assert speaker.clips[-1].status == "DONE"
    assert speaker.transport_state == PLAYING
    assert speaker.transport_history == [PLAYING]
    assert not [a for s, a, _ in speaker.soap_log if s == "AVTransport"]


async def test_audio_clip_status_events_after_start_delay(
    loopback: None, audio_server: AudioServer
) -> None:
    """A subscriber hears the clip start (after the start-up delay) and end, in order."""
    async with (
        FakeHousehold.create(1, playback_speed=1.0, start_delay=0.2) as household,
        aiohttp.ClientSession() as session,
    ):
        speaker = household.speakers[0]
        websocket = SonosWebsocket(speaker.ip, player_id=speaker.uid, session=session)
        namespace = {"namespace": "audioClip:1", "playerId": speaker.uid}
        subscribed, _ = await websocket.send_command({**namespace, "command": "subscribe"})
        assert subscribed["success"] is True
        loaded, clip = await websocket.send_command(
            {**namespace, "command": "loadAudioClip"},
            {"name": "t", "appId": "a", "streamUrl": audio_server.url("/tts/tone.wav")},
        )
        assert (loaded["success"], clip["status"]) == (True, "ACTIVE")
        assert websocket.ws is not None
        seen: list[str] = []
        while "DONE" not in seen:
            header, body = (await asyncio.wait_for(websocket.ws.receive(), 10)).json()
            assert (header["type"], header["namespace"]) == ("audioClipStatus", "audioClip:1")
            [reported] = body["audioClips"]
            assert reported["id"] == clip["id"]
            seen.append(reported["status"])
        assert seen == ["ACTIVE", "DONE"]
        await websocket.close()
        statuses = speaker.clips[0].history
        record = speaker.played[0]
        assert record.total_s is not None
        # It played for the clip's length, only after the start-up delay.
        started, ended = statuses[1][1], statuses[2][1]
        assert ended - started >= (record.duration_s or 0) * 0.99


@pytest.mark.parametrize(
    ("options", "expected"),
    [({"websocket": False}, "Connection error"), ({"websocket_refuse": 403}, "403")],
    ids=["port-closed", "handshake-refused"],
)
@pytest.mark.filterwarnings("ignore:code property is deprecated:DeprecationWarning")
async def test_clip_websocket_can_be_unreachable(
    loopback: None, options: dict[str, Any], expected: str
) -> None:
    """S1 firmware or a firewall: the clip port is closed, or the handshake is refused."""
    async with (
        FakeHousehold.create(1, **options) as household,
        aiohttp.ClientSession() as session,
    ):
        speaker = household.speakers[0]
        websocket = SonosWebsocket(speaker.ip, player_id=speaker.uid, session=session)
        with pytest.raises(SonosWebsocketError, match=expected):
            await websocket.play_clip("http://127.0.0.1:9/x.mp3")
        await websocket.close()
        assert await in_thread(lambda: soco.SoCo(speaker.ip).player_name) == "Living Room"


async def test_audio_clip_finds_player_id_through_get_groups(household: FakeHousehold) -> None:
    speaker = household.speakers[1]
    async with aiohttp.ClientSession() as session:
        websocket = SonosWebsocket(speaker.ip, session=session)
        assert await websocket.get_household_id() == household.household_id
        assert await websocket.get_player_id() == speaker.uid
        header, body = await websocket.get_groups()
        await websocket.close()
    assert header["success"] is True
    assert {p["id"] for p in body["players"]} == {s.uid for s in household.speakers}
    assert [c for c, _ in speaker.ws_log][:1] == [{}]


async def test_audio_clip_unsupported_is_global_error(
    loopback: None, audio_server: AudioServer
) -> None:
    async with FakeSonosSpeaker("Play:1", "127.0.0.7", supports_audio_clip=False) as speaker:
        async with aiohttp.ClientSession() as session:
            websocket = SonosWebsocket(speaker.ip, player_id=speaker.uid, session=session)
            response, body = await websocket.play_clip(audio_server.url("/tts/tone.mp3"))
            await websocket.close()
        assert response["type"] == "globalError"
        assert response["success"] is False
        assert body["errorCode"] == "ERROR_UNSUPPORTED_NAMESPACE"
        assert speaker.played == []
        assert "AUDIO_CLIP" not in speaker.capabilities()


async def test_audio_clip_cancel_and_api_key(household: FakeHousehold) -> None:
    speaker = household.speakers[0]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as denied:
            await session.ws_connect(speaker.websocket_url(), ssl=False)
        assert denied.value.status == 401
        websocket = SonosWebsocket(speaker.ip, player_id=speaker.uid, session=session)
        speaker.playback_speed = 100.0
        _, clip = await websocket.play_clip(f"{speaker.base_url}/xml/device_description.xml")
        cancelled, _ = await websocket.cancel_clip(clip["id"])
        assert cancelled["success"] is True
        async with session.get(
            f"https://{speaker.ip}:1443/api/v1/players/local/info",
            headers={API_KEY_HEADER: "123"},
            ssl=False,
        ) as response:
            info = await response.json()
        await websocket.close()
    assert info["device"]["capabilities"][-1] == "AUDIO_CLIP"
    record = await speaker.wait_played(1)
    assert record.error is not None
    assert record.error.startswith("unrecognised audio data")
    assert speaker.clips[0].status == "ERROR"


async def test_double_runs_on_home_assistant_loop(
    hass: HomeAssistant, loopback: None, audio_server: AudioServer
) -> None:
    """HA's own client session (as HA's sonos integration uses it) reaches the double."""
    async with FakeHousehold.create(1, first_ip=8) as household:
        speaker = household.speakers[0]
        websocket = SonosWebsocket(
            speaker.ip, player_id=speaker.uid, session=async_get_clientsession(hass)
        )
        response, _ = await websocket.play_clip(audio_server.url("/tts/tone.wav"), volume=10)
        await websocket.close()
        assert response["success"] is True
        record = await speaker.wait_played(1)
        assert (record.format, record.volume) == ("wav", 10)
        await household.wait_idle()


# ------------------------------------------------------ what HA's core sonos integration reads


async def test_events_carry_what_home_assistant_reads(household: FakeHousehold) -> None:
    """HA's sonos media update reads enqueued_transport_uri(_meta_data) from AVTransport."""
    radio, queue, _ = household.speakers
    radio.preset_radio(title="Loopback FM")
    queue.preset_queue(4, track=2, state=PAUSED)
    household.add_favorite("Loopback FM", "x-sonosapi-stream:s1?sid=254")

    radio_event = parse_event_xml(radio.event_body("AVTransport"))
    assert radio_event["enqueued_transport_uri"] == radio.current_uri
    assert radio_event["enqueued_transport_uri_meta_data"].title == "Loopback FM"
    assert radio_event["current_track_meta_data"].title == "Loopback FM"
    assert radio_event["transport_state"] == PLAYING
    queue_event = parse_event_xml(queue.event_body("AVTransport"))
    assert queue_event["enqueued_transport_uri"] == ""
    assert (queue_event["number_of_tracks"], queue_event["current_track"]) == ("4", "2")
    assert queue_event["sleep_timer_generation"] == "0"

    content = parse_event_xml(radio.event_body("ContentDirectory"))
    assert content["favorites_update_id"] == f"{radio.uid},{household.favorites_update_id}"
    assert f"FV:2,{household.favorites_update_id}" in content["container_update_i_ds"]
    alarms = parse_event_xml(queue.event_body("AlarmClock"))
    assert alarms["alarm_list_version"] == household.alarm_list_version == f"{radio.uid}:0"


async def test_favorites_through_soco(household: FakeHousehold) -> None:
    household.add_favorite("Loopback FM", "x-sonosapi-stream:s17077?sid=254&flags=8224&sn=0")
    household.add_favorite("Double Jazz", "x-rincon-mp3radio://127.0.0.1:9/jazz.mp3")
    device = soco.SoCo(household.speakers[1].ip)

    favorites = await in_thread(device.music_library.get_sonos_favorites)
    assert [f.title for f in favorites] == ["Loopback FM", "Double Jazz"]
    assert favorites[0].reference.get_uri() == household.favorites[0].uri
    assert favorites[1].description == "TuneIn Station"
    playlists = await in_thread(device.get_sonos_playlists)
    assert len(playlists) == 0


async def test_alarms_through_soco(household: FakeHousehold) -> None:
    kitchen = household["Kitchen"]
    first = household.add_alarm(kitchen, "06:30:00", volume=12)
    device = soco.SoCo(household.speakers[0].ip)

    def read() -> dict[str, Any]:
        return {a.alarm_id: a for a in soco.alarms.get_alarms(device)}

    alarms = await in_thread(read)
    assert list(alarms) == [first]
    alarm = alarms[first]
    assert (str(alarm.start_time), alarm.volume, alarm.zone.uid) == ("06:30:00", 12, kitchen.uid)
    assert alarm.recurrence == "DAILY"
    assert alarm.enabled

    def change() -> str:
        alarm.enabled = False
        alarm.save()  # UpdateAlarm
        extra = soco.alarms.Alarm(device, recurrence="WEEKDAYS")
        new_id: str = extra.save()  # CreateAlarm
        return new_id

    second = await in_thread(change)
    assert household.alarms[first]["Enabled"] == "0"
    assert household.alarms[second]["Recurrence"] == "WEEKDAYS"
    assert household.alarm_list_version.endswith(":3")
    await in_thread(alarm.remove)  # DestroyAlarm
    assert list(household.alarms) == [second]
    with pytest.raises(SoCoUPnPException):
        await in_thread(device.alarmClock.DestroyAlarm, [("ID", "99")])


async def test_sleep_timer(household: FakeHousehold) -> None:
    speaker = household.speakers[0]
    speaker.preset_radio()
    device = soco.SoCo(speaker.ip)

    await in_thread(device.set_sleep_timer, 600)
    remaining = await in_thread(device.get_sleep_timer)
    assert remaining is not None
    assert 598 <= remaining <= 600
    await in_thread(device.set_sleep_timer, None)
    assert await in_thread(device.get_sleep_timer) is None
    await household.wait_idle()  # a pending timer does not keep a speaker busy

    await in_thread(device.set_sleep_timer, 1)
    await speaker.wait_state(PAUSED, timeout=5)  # the timer ran out: paused
    assert await in_thread(device.get_sleep_timer) is None
    assert speaker.sleep_timer_generation == 4


async def test_button_lock_eq_and_battery_by_model(loopback: None) -> None:
    one = FakeSonosSpeaker("One", "127.0.0.14")
    beam = FakeSonosSpeaker("Beam", "127.0.0.15", model_name="Sonos Beam", model_number="S14")
    move = FakeSonosSpeaker("Move", "127.0.0.16", model_name="Sonos Move", model_number="S17")
    household = FakeHousehold([one, beam, move])
    async with household:
        one_soco, beam_soco, move_soco = (soco.SoCo(s.ip) for s in household.speakers)

        def one_reads() -> tuple[bool, Any, Any]:
            enabled = one_soco.buttons_enabled
            one_soco.buttons_enabled = False
            return enabled, one_soco.night_mode, one_soco.dialog_mode

        assert await in_thread(one_reads) == (True, None, None)
        assert one.buttons_locked is True
        with pytest.raises(NotSupportedException):
            await in_thread(one_soco.get_battery_info)
        with pytest.raises(SoCoUPnPException, match="402"):
            await in_thread(one_soco.renderingControl.GetEQ, InstanceID=0, EQType="NightMode")

        def beam_reads() -> tuple[bool, bool, bool]:
            before = beam_soco.night_mode
            beam_soco.night_mode = True
            beam_soco.dialog_mode = True
            return before, beam_soco.night_mode, beam_soco.dialog_mode

        assert await in_thread(beam_reads) == (False, True, True)
        assert (beam.eq["NightMode"], beam.eq["DialogLevel"]) == (1, 1)
        assert 'NightMode val="1"' in beam.event_body("RenderingControl")

        move.battery_level, move.battery_charging = 64, True
        battery = await in_thread(move_soco.get_battery_info)
        assert battery == {
            "Health": "GREEN",
            "Level": 64,
            "Temperature": "NORMAL",
            "PowerSource": "SONOS_CHARGING_RING",
        }
    assert [e for s in household.speakers for e in s.errors] == []


async def test_status_page_reports_state_and_fetches(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    await in_thread(soco.SoCo(speaker.ip).play_uri, audio_server.url("/tts/tone.wav"))
    await speaker.wait_played(1)
    await household.wait_idle()
    apply_preset(speaker, "queue-paused")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{speaker.base_url}{STATUS_PATH}") as response,
    ):
        status = await response.json()
    assert status["name"] == speaker.name
    assert (status["transport_state"], status["track"], status["position"]) == (
        PAUSED,
        3,
        "0:01:23",
    )
    assert status["title"] == "Track 3"
    [played] = status["played"]
    assert played["url"] == audio_server.url("/tts/tone.wav")
    assert (played["format"], played["silent"], played["error"]) == ("wav", False, None)
    assert "body" not in played
    with pytest.raises(ValueError, match="unknown preset"):
        apply_preset(speaker, "vinyl")


def test_command_line_rejects_unknown_rooms_and_presets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for preset in ("Nowhere=radio", "Kitchen=vinyl"):
        with pytest.raises(SystemExit) as raised:
            sonos_double_main(["--names", "Kitchen", "--speakers", "1", "--preset", preset])
        assert raised.value.code == 2
    errors = capsys.readouterr().err
    assert "no speaker 'Nowhere' (speakers: Kitchen)" in errors
    assert "unknown preset 'vinyl'" in errors


def sonos_players(hass: HomeAssistant) -> dict[str, str]:
    """Media players of HA's sonos integration by device (room) name."""
    devices = dr.async_get(hass)
    players = {}
    for entry in er.async_get(hass).entities.values():
        if entry.platform == "sonos" and entry.domain == "media_player" and entry.device_id:
            device = devices.async_get(entry.device_id)
            if device is not None and device.name:
                players[device.name] = entry.entity_id
    return players


@pytest.mark.parametrize("expected_lingering_timers", [True])
# HA's speaker.py tests `zgs.find("VanishedDevices") or []`: an empty element warns (as with
# real speakers, which send <VanishedDevices></VanishedDevices> too).
@pytest.mark.filterwarnings("ignore:Testing an element's truth value:DeprecationWarning")
async def test_home_assistant_sonos_integration_sets_up_the_double(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, loopback: None
) -> None:
    """HA's own core sonos integration (manual hosts) turns the double into media players."""
    async with FakeHousehold.create(2, first_ip=17, names=("Den", "Hall")) as household:
        den, hall = household.speakers
        den.preset_radio(title="Loopback FM")
        hall.preset_queue(3, track=2, state=PAUSED)
        hall.volume = 31
        household.add_favorite("Loopback FM", den.current_uri)
        household.add_alarm(hall, "06:45:00")
        # No SSDP on the host's real interfaces: the speakers are manual hosts.
        with (
            patch("homeassistant.components.ssdp.Scanner._async_start_ssdp_listeners"),
            patch("homeassistant.components.ssdp.Scanner._async_stop_ssdp_listeners"),
            patch("homeassistant.components.ssdp.Scanner.async_scan"),
            patch("homeassistant.components.ssdp.Server._async_start_upnp_servers"),
            patch("homeassistant.components.ssdp.Server._async_stop_upnp_servers"),
        ):
            config = {"sonos": {"media_player": {"hosts": [den.ip, hall.ip]}}}
            assert await async_setup_component(hass, "sonos", config)
            async with asyncio.timeout(30):
                while len(sonos_players(hass)) < 2 or any(  # noqa: ASYNC110 - HA creates them
                    hass.states.get(entity_id) is None for entity_id in sonos_players(hass).values()
                ):
                    await asyncio.sleep(0.2)
                await hass.async_block_till_done()
            players = sonos_players(hass)
            den_state = hass.states.get(players["Den"])
            hall_state = hass.states.get(players["Hall"])
            assert den_state is not None
            assert hall_state is not None
            assert den_state.state == "playing"
            assert den_state.attributes["media_title"] == "Loopback FM"
            assert hall_state.state == "paused"
            assert hall_state.attributes["media_title"] == "Track 2"
            assert hall_state.attributes["volume_level"] == 0.31
            # the favorites sensor (disabled by default) and one alarm switch, from the double
            assert entity_registry.async_get("sensor.sonos_favorites") is not None
            alarms = [e for e in entity_registry.entities if e.startswith("switch.sonos_alarm")]
            assert len(alarms) == 1
            # Alicia finds the speaker behind HA's entity: uid and address from the registry.
            # The model is the name the speaker reports, as HA shows it ("Sonos " dropped).
            assert resolve_sonos(hass, players["Den"]) == Speaker(
                uid=den.uid, ip=den.ip, name="Den", model="One"
            )
            # HA's subscriptions got their events: nothing failed on the double's side.
            assert all(status == 200 for *_, status in den.notifications)
            [entry] = hass.config_entries.async_entries("sonos")
            assert await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()
    # soco stops its event listener after a grace period; the test does not wait for it.
    for task in asyncio.all_tasks():
        if "_deferred_stop" in repr(task.get_coro()):
            task.cancel()
    assert [error for s in household.speakers for error in s.errors] == []


# ------------------------------------------------------------------------------------ events


async def test_subscribe_gets_initial_and_change_events(
    household: FakeHousehold, audio_server: AudioServer
) -> None:
    speaker = household.speakers[0]
    events: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def notify(request: web.Request) -> web.Response:
        await events.put((dict(request.headers), await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_route("NOTIFY", "/events", notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.request(
                "SUBSCRIBE",
                f"{speaker.base_url}/MediaRenderer/AVTransport/Event",
                headers={
                    "CALLBACK": f"<http://127.0.0.1:{port}/events>",
                    "NT": "upnp:event",
                    "TIMEOUT": "Second-600",
                },
            ) as response:
                assert response.status == 200
                sid = response.headers["SID"]
                assert response.headers["TIMEOUT"] == "Second-600"
            headers, body = await asyncio.wait_for(events.get(), 5)
            assert (headers["SID"], headers["SEQ"]) == (sid, "0")
            assert parse_event_xml(body)["transport_state"] == STOPPED

            await in_thread(soco.SoCo(speaker.ip).play_uri, audio_server.url("/tts/tone.wav"))
            seen: list[str] = []
            while STOPPED not in seen[1:]:
                headers, body = await asyncio.wait_for(events.get(), 5)
                seen.append(parse_event_xml(body)["transport_state"])
            assert seen[:2] == [STOPPED, TRANSITIONING]
            assert PLAYING in seen

            async with session.request(
                "UNSUBSCRIBE",
                f"{speaker.base_url}/MediaRenderer/AVTransport/Event",
                headers={"SID": sid},
            ) as response:
                assert response.status == 200
        await speaker.wait_idle()
        assert speaker.subscriptions == {}
    finally:
        await runner.cleanup()


async def test_events_wait_for_the_event_delay(loopback: None, audio_server: AudioServer) -> None:
    """A change's event is held back for the event delay (here: longer than the test)."""
    async with FakeHousehold.create(1, event_delay=600) as household:
        speaker = household.speakers[0]
        received: list[bytes] = []

        async def notify(request: web.Request) -> web.Response:
            received.append(await request.read())
            return web.Response()

        app = web.Application()
        app.router.add_route("NOTIFY", "/events", notify)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    "SUBSCRIBE",
                    f"{speaker.base_url}/MediaRenderer/AVTransport/Event",
                    headers={"CALLBACK": f"<http://127.0.0.1:{port}/events>", "NT": "upnp:event"},
                ) as response,
            ):
                sid = response.headers["SID"]
            await speaker.wait_for(lambda: len(speaker.notifications) == 1)  # the initial one
            await in_thread(soco.SoCo(speaker.ip).play_uri, audio_server.url("/tts/tone.wav"))
            await speaker.wait_played(1)
            await speaker.wait_state(STOPPED)
            subscription = speaker.subscriptions[sid]
            states = [parse_event_xml(body)["transport_state"] for _, body in subscription.outbox]
            assert states.index(TRANSITIONING) < states.index(PLAYING) < len(states) - 1
            assert states[-1] == STOPPED
            assert len(received) == 1  # nothing but the initial event went out
        finally:
            await runner.cleanup()


# ------------------------------------------------------------------------------------ decoding


def test_decoder_accepts_streaming_wav_and_rejects_non_audio() -> None:
    streaming = decode_audio(make_wav(0.5, streaming=True))
    assert (streaming.sample_rate, streaming.channels) == (RATE, 1)
    assert streaming.duration_s == pytest.approx(0.5, abs=0.001)
    assert analyse_audio(make_wav(rate=96000)).error == "WAV sample rate 96000 Hz is above 48 kHz"
    assert analyse_audio(b"<html>nope</html>").error == (
        "unrecognised audio data starting 3c 68 74 6d 6c 3e 6e 6f"
    )
    truncated = make_wav(0.5)[:-100]
    assert "declares" in (analyse_audio(truncated).error or "")
    silent = analyse_audio(make_wav(0.3, lead_silence=1.0))
    assert (silent.peak, silent.leading_silence_ms) == (0.0, pytest.approx(300, abs=1))
    assert radio_metadata("A & B").count("A &amp; B") == 1


# ------------------------------------------------------------------------------------ cleanup


async def test_stop_leaves_nothing_behind(loopback: None, audio_server: AudioServer) -> None:
    threads = set(threading.enumerate())
    tasks = asyncio.all_tasks()
    household = FakeHousehold.create(2, first_ip=10, playback_speed=50.0)
    await household.start()
    speaker = household.speakers[0]
    await in_thread(soco.SoCo(speaker.ip).play_uri, audio_server.url("/tts/tone.wav"))
    await speaker.wait_state(PLAYING)  # plays for 50 s: stop must cancel that
    async with aiohttp.ClientSession() as session:
        websocket = SonosWebsocket(speaker.ip, player_id=speaker.uid, session=session)
        await websocket.play_clip(audio_server.url("/tts/tone.mp3"))
        await household.stop()  # closes the open websocket from the speaker's side
        await websocket.close()
    assert asyncio.all_tasks() == tasks
    await asyncio.get_running_loop().shutdown_default_executor()
    assert {t for t in threading.enumerate() if not t.name.startswith("waitpid")} <= threads
    # the addresses are free again
    async with FakeHousehold.create(2, first_ip=10):
        pass


async def test_module_entry_point_serves_until_interrupted(loopback: None) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.sonos_double",
        "--speakers",
        "2",
        "--first-ip",
        "12",
        "--names",
        "Attic,Cellar",
        "--preset",
        "Attic=radio",
        "--preset",
        "Cellar=queue-paused",
        "--event-delay",
        "0.2",
        "--start-delay",
        "0.1",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(15):
            while not lines or "Serving until Ctrl-C" not in lines[-1]:
                lines.append((await process.stdout.readline()).decode())
        assert "'Attic'" in lines[1]
        assert "http://127.0.0.12:1400" in lines[1]
        assert "http://127.0.0.13:1400" in lines[2]
        device = soco.SoCo("127.0.0.13")
        assert await in_thread(lambda: device.player_name) == "Cellar"
        assert "http://127.0.0.12:1400/double/status" in lines[-2]
        async with aiohttp.ClientSession() as session:
            for ip, state, title in (
                ("127.0.0.12", PLAYING, "Loopback FM"),
                ("127.0.0.13", PAUSED, "Track 3"),
            ):
                async with session.get(f"http://{ip}:1400{STATUS_PATH}") as response:
                    status = await response.json()
                assert (status["transport_state"], status["title"]) == (state, title)
        favorites = await in_thread(device.music_library.get_sonos_favorites)
        assert [f.title for f in favorites] == ["Loopback FM"]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert b"Stopped." in output
