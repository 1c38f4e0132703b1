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
from sonos_websocket import SonosWebsocket

from custom_components.alicia_tts import sonos
from custom_components.alicia_tts.encoders import wav_header
from custom_components.alicia_tts.exceptions import InvalidPlaybackOptionError
from custom_components.alicia_tts.options import PlaybackOptions, parse_playback
from custom_components.alicia_tts.sonos import (
    MAX_QUEUED,
    GroupTimeoutError,
    NeverFetchedError,
    PlaybackError,
    QueueFullError,
    SonosPlayback,
    Speaker,
    SpeakerUnreachableError,
    UrlRefusedError,
)

from .sonos_double import (
    DEFAULT_EVENT_DELAY,
    FakeHousehold,
    FakeSonosSpeaker,
    soco_forget_topology,
)

RATE = 22050
#: Event delays the README's promises must hold at: instant, typical, slow.
EVENT_DELAYS = [0.0, 0.1, 0.5]


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


@pytest.fixture(params=EVENT_DELAYS, ids=lambda delay: f"events+{int(delay * 1000)}ms")
async def delayed_household(
    request: pytest.FixtureRequest, sonos_loopback: None
) -> AsyncGenerator[FakeHousehold]:
    """Kitchen (127.0.0.40) and Bedroom (.41) whose events and topology lag by the param."""
    async with FakeHousehold.create(
        2, first_ip=40, names=("Kitchen", "Bedroom"), event_delay=request.param
    ) as household:
        yield household
        await household.wait_idle()
    assert [error for s in household.speakers for error in s.errors] == []


def speaker_of(fake: FakeSonosSpeaker) -> Speaker:
    return Speaker(uid=fake.uid, ip=fake.ip, name=fake.name)


def test_default_run_has_realistic_event_delays(sonos_household: FakeHousehold) -> None:
    """The speakers of the default test run deliver events and group changes late."""
    assert pytest.approx(0.1) == DEFAULT_EVENT_DELAY
    assert sonos_household.event_delay == DEFAULT_EVENT_DELAY
    assert all(s.event_delay == DEFAULT_EVENT_DELAY for s in sonos_household.speakers)


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
    assert parse_playback({}) == PlaybackOptions()
    assert parse_playback(
        {"volume": "35", "mode": "takeover", "group": "true", "speed": 2}
    ) == PlaybackOptions(volume=35, mode="takeover", group=True)
    assert parse_playback({"volume": 0.0, "group": False}).volume == 0


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
        parse_playback({key: value})
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


@pytest.mark.parametrize(
    "closed",
    [{"websocket": False}, {"websocket_refuse": 403}],
    ids=["port-closed", "handshake-refused"],
)
@pytest.mark.filterwarnings("ignore:code property is deprecated:DeprecationWarning")
async def test_clip_websocket_unreachable_falls_back_to_takeover(
    sonos_loopback: None,
    audio_server: AudioServer,
    playback: SonosPlayback,
    closed: dict[str, Any],
) -> None:
    """No clip websocket (S1 firmware, firewall): takeover with restore, not a failure."""
    async with FakeHousehold.create(1, first_ip=42, **closed) as household:
        speaker = household.speakers[0]
        speaker.preset_radio(state="PLAYING")
        speaker.volume = 16
        before = await state_of(speaker)
        served = audio_server.add()
        result = await playback.async_play([speaker_of(speaker)], served, volume=40)
        assert [(o.mode, o.error) for o in result.outcomes] == [("takeover", None)]
        record = speaker.played[-1]
        assert (record.url, record.via, record.volume, record.ok) == (
            served.url,
            "avtransport",
            40,
            True,
        )
        assert speaker.clips == []
        assert await state_of(speaker) == before
        # Known for a while: the next announcement does not try the websocket again.
        result = await playback.async_play([speaker_of(speaker)], audio_server.add())
        assert [o.mode for o in result.outcomes] == ["takeover"]


async def test_overlay_waits_for_the_speaker_to_finish_the_clip(
    sonos_loopback: None, audio_server: AudioServer
) -> None:
    """The call returns once the speaker reports the clip's end, start-up delay included."""
    async with (
        FakeHousehold.create(1, first_ip=42, playback_speed=1.0, start_delay=0.3) as household,
        aiohttp.ClientSession() as session,
    ):
        speaker = household.speakers[0]
        speaker.preset_radio(state="PLAYING")
        playback = SonosPlayback(session, fetch_timeout=5.0, end_margin=3.0, poll_interval=0.05)
        result = await playback.async_play([speaker_of(speaker)], audio_server.add(0.4))
        assert [(o.mode, o.error) for o in result.outcomes] == [("overlay", None)]
        [clip] = speaker.clips
        # The speaker had finished the clip when the call returned.
        assert clip.status == "DONE"
        assert [status for status, _ in clip.history] == ["ACTIVE", "ACTIVE", "DONE"]
        assert speaker.transport_state == "PLAYING"  # its own music went on


async def test_overlay_clip_error_is_reported(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A clip the speaker cannot play (it reports ERROR): a playback error, not success."""
    kitchen = sonos_household["Kitchen"]
    served = audio_server.add()
    audio_server.items[served.url.rsplit("/", 1)[1]] = (served, b"not audio at all")
    with pytest.raises(PlaybackError) as err:
        await playback.async_play([speaker_of(kitchen)], served)
    assert err.value.placeholders["speaker"] == "Kitchen"
    assert kitchen.clips[-1].status == "ERROR"


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


async def test_empty_speaker_is_empty_again(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A speaker with no source before: afterwards no source again, stopped (not the clip)."""
    kitchen = sonos_household["Kitchen"]
    assert (kitchen.current_uri, kitchen.transport_state) == ("", "STOPPED")
    served = audio_server.add()
    result = await playback.async_play([speaker_of(kitchen)], served, mode="takeover")
    assert result.played == [speaker_of(kitchen)]
    assert kitchen.played[-1].url == served.url
    assert (kitchen.current_uri, kitchen.current_meta, kitchen.transport_state) == (
        "",
        "",
        "STOPPED",
    )


async def test_takeover_member_leaves_and_rejoins_group(
    delayed_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A grouped speaker speaks alone, then rejoins its group; the group's music goes on.

    The speaker's topology confirms leaving and rejoining only after the event delay: the
    announcement waits for it instead of acting on what soco saw before.
    """
    kitchen, bedroom = delayed_household["Kitchen"], delayed_household["Bedroom"]
    bedroom.preset_radio(state="PLAYING")
    bedroom.volume = 9
    kitchen.volume = 14
    delayed_household.join(kitchen, bedroom)
    soco_forget_topology()
    served = audio_server.add()
    result = await playback.async_play([speaker_of(kitchen)], served, mode="takeover", volume=40)
    assert result.played == [speaker_of(kitchen)]
    assert [o.error for o in result.outcomes] == [None]
    record = kitchen.played[-1]
    assert (record.url, record.ok, record.volume) == (served.url, True, 40)
    assert bedroom.played == []  # the group's coordinator did not play it
    assert kitchen.coordinator is bedroom
    assert (kitchen.volume, bedroom.volume) == (14, 9)
    assert bedroom.transport_state == "PLAYING"
    assert bedroom.current_uri.startswith("x-sonosapi-stream:")
    # What the speakers report agrees once their events are out: back in one group.
    await delayed_household.wait_topology()
    assert delayed_household.zone_group_state(published=True) == (
        delayed_household.zone_group_state()
    )


async def test_synced_group_and_group_restore(
    delayed_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """group: true plays once on a temporary group of all targets, then restores each."""
    kitchen, bedroom = delayed_household["Kitchen"], delayed_household["Bedroom"]
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


async def test_synced_group_temporary_member_queue_plays_on(
    delayed_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """The speaker that joins the temporary group gets its own queue back, playing, in place."""
    kitchen, bedroom = delayed_household["Kitchen"], delayed_household["Bedroom"]
    kitchen.preset_radio(state="PLAYING")
    bedroom.preset_queue(5, track=3, position="0:00:40", state="PLAYING")
    bedroom.volume = 17
    before = [await state_of(kitchen), await state_of(bedroom)]
    served = audio_server.add(0.3)
    result = await playback.async_play(
        [speaker_of(kitchen), speaker_of(bedroom)], served, volume=30, group=True
    )
    assert [o.error for o in result.outcomes] == [None, None]
    # Kitchen led the temporary group (it played the announcement); Bedroom joined it.
    assert [r.url for r in kitchen.played] == [served.url]
    assert bedroom.played == []
    assert any(
        a == "SetAVTransportURI" and args.get("CurrentURI") == f"x-rincon:{kitchen.uid}"
        for _, a, args in bedroom.soap_log
    )
    assert [await state_of(kitchen), await state_of(bedroom)] == before
    assert bedroom.transport_state == "PLAYING"
    assert bedroom.track_number == 3
    assert bedroom.position() >= 40


async def test_synced_group_of_a_group_and_its_member(
    delayed_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Targets already grouped: the group speaks once and stays as it was."""
    kitchen, bedroom = delayed_household["Kitchen"], delayed_household["Bedroom"]
    bedroom.preset_radio(state="PLAYING")
    delayed_household.join(kitchen, bedroom)
    soco_forget_topology()
    served = audio_server.add(0.3)
    result = await playback.async_play(
        [speaker_of(kitchen), speaker_of(bedroom)], served, group=True, volume=25
    )
    assert [o.error for o in result.outcomes] == [None, None]
    assert [r.url for r in bedroom.played] == [served.url]  # the existing coordinator leads
    assert kitchen.played == []
    assert kitchen.coordinator is bedroom
    assert bedroom.current_uri.startswith("x-sonosapi-stream:")
    assert bedroom.transport_state == "PLAYING"


async def test_group_change_never_confirmed_is_an_error_and_restores(
    sonos_loopback: None, audio_server: AudioServer
) -> None:
    """A topology that never confirms: a clear error within the bound, speakers put back."""
    async with (
        # The reported topology lags far beyond the test: it never confirms a change.
        FakeHousehold.create(
            2, first_ip=40, names=("Kitchen", "Bedroom"), event_delay=600
        ) as household,
        aiohttp.ClientSession() as session,
    ):
        kitchen, bedroom = household["Kitchen"], household["Bedroom"]
        bedroom.preset_radio(state="PLAYING")
        household.join(kitchen, bedroom)
        soco_forget_topology()
        playback = SonosPlayback(
            session, fetch_timeout=2.0, poll_interval=0.05, realtime=0, topology_timeout=0.3
        )
        with pytest.raises(GroupTimeoutError) as err:
            await playback.async_play([speaker_of(kitchen)], audio_server.add(), mode="takeover")
        assert err.value.placeholders == {"speakers": "Kitchen", "timeout": "0.3"}
        assert kitchen.played == []  # nothing acted on an unconfirmed group
        # Restore still ran: Kitchen was put back into Bedroom's group, the radio plays on.
        assert kitchen.coordinator is bedroom
        assert bedroom.transport_state == "PLAYING"
        assert playback.queued(speaker_of(kitchen)) == 0


async def test_two_speakers_overlay(
    sonos_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Without group, each speaker plays the clip itself."""
    speakers = [speaker_of(s) for s in sonos_household.speakers]
    served = audio_server.add()
    result = await playback.async_play(speakers, served)
    assert len(result.played) == 2
    assert sorted(served.fetched_by) == ["127.0.0.40", "127.0.0.41"]


async def test_ten_announcements_to_a_group_in_order(
    delayed_household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Ten synced group announcements at once: all play, in request order, never together."""
    kitchen, bedroom = delayed_household["Kitchen"], delayed_household["Bedroom"]
    kitchen.preset_queue(4, track=2, state="PLAYING")
    bedroom.preset_radio(state="PAUSED_PLAYBACK")
    before = [await state_of(kitchen), await state_of(bedroom)]
    targets = [speaker_of(kitchen), speaker_of(bedroom)]
    items = [audio_server.add(0.1) for _ in range(10)]
    tasks = [asyncio.create_task(playback.async_play(targets, item, group=True)) for item in items]
    results = await asyncio.gather(*tasks)
    assert all(not any(o.error for o in r.outcomes) for r in results)
    assert [r.url for r in kitchen.played] == [i.url for i in items]
    assert bedroom.played == []
    assert [await state_of(kitchen), await state_of(bedroom)] == before
    assert playback.idle


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
        assert playback.queued(speaker_of(speaker)) == 0


async def test_queue_is_strictly_fifo_and_group_requests_never_deadlock() -> None:
    """Turns follow request order per speaker; a group request waits for all its speakers."""
    async with aiohttp.ClientSession() as session:
        playback = SonosPlayback(session)
        a = Speaker(uid="RINCON_A", ip="192.0.2.1", name="A")
        b = Speaker(uid="RINCON_B", ip="192.0.2.2", name="B")
        requests = [[a], [a, b], [b], [a], [b, a], [b], [a, b]]
        turns = [playback.reserve(r) for r in requests]
        order: dict[str, list[int]] = {"A": [], "B": []}
        playing: set[str] = set()

        async def take(index: int) -> None:
            async with turns[index]:
                names = [s.name for s in requests[index]]
                assert not playing.intersection(names)  # never two at once on a speaker
                playing.update(names)
                for name in names:
                    order[name].append(index)
                for _ in range(3):
                    await asyncio.sleep(0)  # the others get every chance to overtake
                playing.difference_update(names)

        # Started in reverse: the turns, not the tasks, decide the order.
        await asyncio.gather(*(take(i) for i in reversed(range(len(turns)))))
        assert order == {"A": [0, 1, 3, 4, 6], "B": [1, 2, 4, 5, 6]}
        assert playback.idle


async def test_queue_limit_is_a_clear_error_and_a_cancelled_wait_gives_its_place_up() -> None:
    """MAX_QUEUED announcements per speaker are admitted; the next one is refused, not lost."""
    async with aiohttp.ClientSession() as session:
        playback = SonosPlayback(session)
        assert playback.max_queued == MAX_QUEUED == 50
        a = Speaker(uid="RINCON_A", ip="192.0.2.1", name="A")
        b = Speaker(uid="RINCON_B", ip="192.0.2.2", name="B")
        turns = [playback.reserve([a]) for _ in range(MAX_QUEUED)]
        assert playback.queued(a) == MAX_QUEUED
        with pytest.raises(QueueFullError) as err:
            playback.reserve([b, a])
        assert err.value.placeholders == {"speaker": "A", "max": str(MAX_QUEUED)}
        assert playback.queued(b) == 0  # a refused request takes no place anywhere
        # A request waiting for its turn that is cancelled leaves the queue.
        waiting = asyncio.create_task(turns[-1].wait())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert playback.queued(a) == MAX_QUEUED - 1
        late = playback.reserve([a])
        for turn in turns:
            turn.release()
        assert late.ready
        late.release()
        assert playback.idle


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


# -- the audioClip websocket's frames, from a loopback websocket server that misbehaves --------


@pytest.fixture
async def clip_server(sonos_loopback: None) -> AsyncGenerator[tuple[str, list[list[Any]]]]:
    """A websocket server on 127.0.0.1 that answers each command with the frames it is given.

    Yields (url, script): each command pops the next list of frames to send back; a frame is
    a JSON-able list, a str (sent as text as it is), bytes (sent binary) or None (close).
    """
    script: list[list[Any]] = []

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            for frame in script.pop(0) if script else []:
                if frame is None:
                    await ws.close()
                elif isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                elif isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_json(frame)
        return ws

    app = web.Application()
    app.router.add_get("/websocket/api", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/websocket/api", script
    await runner.cleanup()


async def test_clip_channel_refuses_bad_frames_and_keeps_status_events(
    clip_server: tuple[str, list[list[Any]]],
) -> None:
    """Answers arrive after any status events (kept); a broken frame is a websocket error."""
    url, script = clip_server
    event = {"type": "audioClipStatus"}
    async with aiohttp.ClientSession() as session:
        socket = SonosWebsocket("127.0.0.1", session=session)
        channel = sonos._ClipChannel(socket, timeout=5)
        with pytest.raises(sonos.ClipChannelError, match="closed"):
            await channel.command({"command": "loadAudioClip"}, {})  # not connected yet
        socket.ws = await session.ws_connect(url)
        script += [
            [[event, {"audioClips": [{"id": "c1", "status": "ACTIVE"}, "junk"]}], [{"ok": 1}]],
            ["this is not JSON"],
            [{"a": "dict, not a list"}],
            [[]],
            [b"\x00binary"],
        ]
        header, body = await channel.command({"command": "loadAudioClip"}, {})
        assert (header, body) == ({"ok": 1}, {})
        assert channel.status == {"c1": "ACTIVE"}
        with pytest.raises(sonos.ClipChannelError, match="not JSON"):
            await channel.command({"command": "x"}, {})
        for _ in range(2):
            with pytest.raises(sonos.ClipChannelError, match="malformed frame"):
                await channel.command({"command": "x"}, {})
        with pytest.raises(sonos.ClipChannelError, match=r"closed \(BINARY\)"):
            await channel.command({"command": "x"}, {})
        await channel.close()
        assert socket.ws.closed
        with pytest.raises(sonos.ClipChannelError, match="is closed"):
            await channel.command({"command": "x"}, {})


async def test_clip_channel_waits_for_the_end_or_gives_up(
    clip_server: tuple[str, list[list[Any]]],
) -> None:
    """wait_ended: the end the speaker reports; None when the deadline passes or the socket
    closes; a stop request wins."""
    url, script = clip_server
    async with aiohttp.ClientSession() as session:
        socket = SonosWebsocket("127.0.0.1", session=session)
        socket.ws = await session.ws_connect(url)
        channel = sonos._ClipChannel(socket, timeout=5)
        status = {"type": "audioClipStatus"}
        script.append(
            [
                [{"type": "other"}, {}],
                [status, {"audioClips": [{"id": "c1", "status": "ACTIVE"}]}],
                [status, {"audioClips": [{"id": "c1", "status": "DONE"}]}],
            ]
        )
        await socket.ws.send_json([{"command": "go"}, {}])
        never = asyncio.Event()
        assert await channel.wait_ended("c1", time.monotonic() + 10, never) == "DONE"
        assert await channel.wait_ended("c2", time.monotonic() - 1, never) is None  # too late
        assert await channel.wait_ended("c2", time.monotonic() + 0.2, never) is None  # silence
        stop = asyncio.Event()
        stop.set()
        with pytest.raises(sonos._Stopped):
            await channel.wait_ended("c2", time.monotonic() + 10, stop)
        script.append([None])
        await socket.ws.send_json([{"command": "bye"}, {}])
        assert await channel.wait_ended("c2", time.monotonic() + 10, never) is None  # closed
        await channel.close()
