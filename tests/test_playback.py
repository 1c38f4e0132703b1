"""The Sonos playback controller against loopback Sonos doubles, with unmodified soco."""

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
import itertools
import time
from typing import Any

import aiohttp
from aiohttp import web
import numpy as np
import pytest

from custom_components.alicia_tts.audio import wav_header
from custom_components.alicia_tts.playback import (
    InvalidPlaybackOptionError,
    NeverFetchedError,
    PlaybackError,
    PlaybackOptions,
    SonosPlayback,
    Speaker,
    SpeakerUnreachableError,
    UrlRefusedError,
    parse_playback_options,
)

from .sonos_double import FakeHousehold, FakeSonosSpeaker, soco_forget_topology

RATE = 22050


def tone_wav(seconds: float) -> bytes:
    """A WAV of a 440 Hz tone."""
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2").tobytes()
    return wav_header(RATE, len(pcm)) + pcm


@dataclass
class Served:
    """An announcement served over real HTTP on 127.0.0.1; records who fetched it."""

    url: str
    title: str
    duration: float
    fetched_by: list[str] = field(default_factory=list)
    fetched_at: list[float] = field(default_factory=list)

    def was_fetched(self) -> bool:
        return bool(self.fetched_by)

    async def async_duration(self) -> float:
        return self.duration


class AudioServer:
    """Serves announcements at /a/<n>.wav."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[Served, bytes]] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/a/{name}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    async def handle(self, request: web.Request) -> web.Response:
        served, data = self.items[request.match_info["name"]]
        served.fetched_by.append(request.remote or "")
        served.fetched_at.append(time.monotonic())
        return web.Response(body=data, content_type="audio/wav")

    def add(self, seconds: float = 0.3, name: str | None = None, ext: str = "wav") -> Served:
        name = name or f"{len(self.items)}.{ext}"
        served = Served(f"{self.base}/a/{name}", "Alicia TTS", seconds)
        self.items[name] = (served, tone_wav(seconds))
        return served


@pytest.fixture
async def audio_server(sonos_loopback: None) -> AsyncGenerator[AudioServer]:
    server = AudioServer()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
async def playback() -> AsyncGenerator[SonosPlayback]:
    async with aiohttp.ClientSession() as session:
        yield SonosPlayback(
            session, fetch_timeout=5.0, end_margin=2.0, poll_interval=0.05, realtime=0
        )


def speaker_of(fake: FakeSonosSpeaker) -> Speaker:
    return Speaker(uid=fake.uid, ip=fake.ip, name=fake.name)


async def state_of(fake: FakeSonosSpeaker) -> dict[str, Any]:
    """What a user would notice: source, state, position, volume, mute, group."""
    return {
        "uri": fake.current_uri,
        "state": fake.transport_state,
        "volume": fake.volume,
        "mute": fake.mute,
        "coordinator": fake.coordinator.uid,
    }


# -- options -----------------------------------------------------------------------------------


def test_parse_playback_options() -> None:
    assert parse_playback_options({}) == PlaybackOptions()
    assert parse_playback_options(
        {"volume": "35", "mode": "takeover", "group": "true", "speed": 2}
    ) == PlaybackOptions(volume=35, mode="takeover", group=True)
    assert parse_playback_options({"volume": 0.0, "group": False}).volume == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("volume", 101),
        ("volume", -1),
        ("volume", 33.5),
        ("volume", "loud"),
        ("volume", True),
        ("mode", "shout"),
        ("group", "maybe"),
        ("group", 3),
    ],
)
def test_parse_playback_options_rejects(key: str, value: Any) -> None:
    with pytest.raises(InvalidPlaybackOptionError) as err:
        parse_playback_options({key: value})
    assert err.value.placeholders["option"] == key


# -- overlay -----------------------------------------------------------------------------------


async def test_overlay_plays_clip_over_music(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Overlay: the speaker fetches the clip at the requested volume; the music is untouched."""
    kitchen = sonos_household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    before = await state_of(kitchen)
    served = audio_server.add(0.4)
    result = await playback.async_play([speaker_of(kitchen)], served, volume=35)
    record = await kitchen.wait_played(1)
    assert record.via == "audioclip"
    assert record.volume == 35
    assert record.format == "wav"
    assert record.duration_s == pytest.approx(0.4, abs=0.01)
    assert [o.mode for o in result.outcomes] == ["overlay"]
    assert result.played == [speaker_of(kitchen)]
    assert result.duration == 0.4
    assert await state_of(kitchen) == before
    assert not any(a == "SetAVTransportURI" for _, a, _ in kitchen.soap_log)
    assert served.fetched_by == ["127.0.0.40"]


async def test_overlay_unsupported_falls_back_to_takeover(
    sonos_loopback: None, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A speaker without audio clips gets takeover with restore, and is remembered."""
    async with FakeHousehold.create(1, first_ip=42, supports_audio_clip=False) as household:
        speaker = household.speakers[0]
        speaker.preset_radio(state="PLAYING")
        before = await state_of(speaker)
        result = await playback.async_play([speaker_of(speaker)], audio_server.add(), volume=40)
        assert [o.mode for o in result.outcomes] == ["takeover"]
        record = speaker.played[-1]
        assert record.via == "avtransport"
        assert record.ok
        assert await state_of(speaker) == before
        assert speaker.uid in playback.no_audio_clip
        # Next time no clip is even tried.
        clips_before = len(speaker.ws_log)
        await playback.async_play([speaker_of(speaker)], audio_server.add())
        assert len(speaker.ws_log) == clips_before


# -- takeover and restore ----------------------------------------------------------------------


@pytest.mark.parametrize("source", ["radio", "line_in", "tv", "queue"])
@pytest.mark.parametrize("play_state", ["PLAYING", "PAUSED_PLAYBACK", "STOPPED"])
async def test_takeover_restores_everything(
    sonos_household: FakeHousehold,
    audio_server: AudioServer,
    playback: SonosPlayback,
    source: str,
    play_state: str,
) -> None:
    """Takeover plays the announcement, then source, position, state, volume and mute return."""
    kitchen = sonos_household["Kitchen"]
    if source == "radio":
        kitchen.preset_radio(state=play_state)
    elif source == "line_in":
        kitchen.preset_line_in(state=play_state)
    elif source == "tv":
        kitchen.preset_tv(state=play_state)
    else:
        kitchen.preset_queue(6, track=4, position="0:01:10", state=play_state)
    kitchen.volume = 12
    kitchen.mute = True
    before = await state_of(kitchen)
    position_before = kitchen.position() if source == "queue" else None
    served = audio_server.add(0.3)
    result = await playback.async_play([speaker_of(kitchen)], served, volume=45, mode="takeover")
    assert result.played == [speaker_of(kitchen)]
    record = kitchen.played[-1]
    assert record.url == served.url
    assert record.via == "avtransport"
    assert record.volume == 45  # announcement volume while it played
    assert record.ok
    assert await state_of(kitchen) == before
    if source == "queue":
        assert kitchen.track_number == 4
        assert kitchen.position() == pytest.approx(position_before, abs=1.0)


async def test_takeover_member_leaves_and_rejoins_group(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A grouped speaker speaks alone, then rejoins its group; the group's music goes on."""
    kitchen, bedroom = sonos_household["Kitchen"], sonos_household["Bedroom"]
    bedroom.preset_radio(state="PLAYING")
    sonos_household.join(kitchen, bedroom)
    soco_forget_topology()
    result = await playback.async_play([speaker_of(kitchen)], audio_server.add(), mode="takeover")
    assert result.played == [speaker_of(kitchen)]
    assert kitchen.played[-1].ok
    assert kitchen.coordinator is bedroom
    assert bedroom.transport_state == "PLAYING"
    assert bedroom.current_uri.startswith("x-sonosapi-stream:")


async def test_synced_group_and_group_restore(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """group: true plays once on a temporary group of all targets, then restores each."""
    kitchen, bedroom = sonos_household["Kitchen"], sonos_household["Bedroom"]
    kitchen.preset_queue(3, track=2, state="PLAYING")
    bedroom.preset_line_in(state="PLAYING")
    bedroom.volume = 7
    before = [await state_of(kitchen), await state_of(bedroom)]
    served = audio_server.add(0.3)
    result = await playback.async_play(
        [speaker_of(kitchen), speaker_of(bedroom)], served, volume=30, group=True
    )
    assert {s.name for s in result.played} == {"Kitchen", "Bedroom"}
    assert [o.mode for o in result.outcomes] == ["takeover", "takeover"]
    # One fetch by the temporary coordinator; the member joined it for the announcement.
    assert len(served.fetched_by) == 1
    joins = [
        a
        for _, a, args in bedroom.soap_log
        if a == "SetAVTransportURI" and args.get("CurrentURI", "").startswith("x-rincon:")
    ]
    assert joins
    assert [await state_of(kitchen), await state_of(bedroom)] == before


async def test_two_speakers_overlay(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Without group, each speaker plays the clip itself."""
    speakers = [speaker_of(s) for s in sonos_household.speakers]
    served = audio_server.add()
    result = await playback.async_play(speakers, served)
    assert len(result.played) == 2
    assert sorted(served.fetched_by) == ["127.0.0.40", "127.0.0.41"]


async def test_one_at_a_time_per_speaker(sonos_loopback: None, audio_server: AudioServer) -> None:
    """Ten concurrent announcements to one speaker play in request order, never overlapping."""
    async with (
        FakeHousehold.create(
            1, first_ip=43, supports_audio_clip=False, playback_speed=1.0
        ) as household,
        aiohttp.ClientSession() as session,
    ):
        playback = SonosPlayback(session, fetch_timeout=5.0, end_margin=2.0, poll_interval=0.02)
        speaker = household.speakers[0]
        items = [audio_server.add(0.15) for _ in range(10)]
        tasks = []
        for item in items:
            tasks.append(asyncio.create_task(playback.async_play([speaker_of(speaker)], item)))
            await asyncio.sleep(0)  # requests arrive in this order
        await asyncio.gather(*tasks)
        assert [r.url for r in speaker.played] == [i.url for i in items]
        # Each fetch starts only after the previous announcement finished playing.
        starts = [i.fetched_at[0] for i in items]
        for earlier, later in itertools.pairwise(starts):
            assert later - earlier >= 0.15
        assert not playback.is_busy(speaker_of(speaker))


# -- failures ----------------------------------------------------------------------------------


async def test_speaker_down(
    sonos_loopback: None, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Nothing listening at the speaker's address: a clear error, quickly."""
    ghost = Speaker(uid="RINCON_GHOST01400", ip="127.0.0.59", name="Garage")
    started = time.monotonic()
    with pytest.raises(SpeakerUnreachableError) as err:
        await playback.async_play([ghost], audio_server.add())
    assert err.value.placeholders["ip"] == "127.0.0.59"
    with pytest.raises(SpeakerUnreachableError):
        await playback.async_play([ghost], audio_server.add(), mode="takeover")
    assert time.monotonic() - started < 15


async def test_url_refused_714_restores(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A URL the speaker will not play (a format it refuses): UPnP 714, and the music returns."""
    kitchen = sonos_household["Kitchen"]
    kitchen.refused_extensions = {".aac"}
    kitchen.preset_radio(state="PLAYING")
    before = await state_of(kitchen)
    served = audio_server.add(name="clip.aac")
    with pytest.raises(UrlRefusedError) as err:
        await playback.async_play([speaker_of(kitchen)], served, mode="takeover")
    assert err.value.placeholders["code"] == "714"
    assert await state_of(kitchen) == before


async def test_never_fetched(sonos_household: FakeHousehold, audio_server: AudioServer) -> None:
    """The speaker accepts the URL but nothing ever reaches HA: error within the bound."""
    kitchen = sonos_household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    before = await state_of(kitchen)
    served = audio_server.add()
    served.url = "http://127.0.0.1:9/a/lost.wav"  # nothing listens there
    async with aiohttp.ClientSession() as session:
        playback = SonosPlayback(session, fetch_timeout=0.5, poll_interval=0.05, realtime=0)
        started = time.monotonic()
        with pytest.raises(NeverFetchedError) as err:
            await playback.async_play([speaker_of(kitchen)], served, mode="takeover")
        assert time.monotonic() - started < 5
        assert err.value.placeholders["url"] == served.url
        with pytest.raises(NeverFetchedError):
            await playback.async_play([speaker_of(kitchen)], served)
    assert await state_of(kitchen) == before


async def test_partial_success(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """One speaker down, one up: the announcement plays where it can; the result says so."""
    ghost = Speaker(uid="RINCON_GHOST01400", ip="127.0.0.59", name="Garage")
    kitchen = speaker_of(sonos_household["Kitchen"])
    result = await playback.async_play([kitchen, ghost], audio_server.add())
    assert result.played == [kitchen]
    errors = {o.speaker.name: o.error for o in result.outcomes}
    assert isinstance(errors["Garage"], PlaybackError)
    assert errors["Kitchen"] is None
