"""Volume, stop, priority, models without audio clips and bonded sets, against the double."""

import asyncio
from collections.abc import AsyncGenerator
import time
from typing import Any

import aiohttp
import pytest
import soco

from custom_components.alicia_tts.exceptions import InvalidPlaybackOptionError
from custom_components.alicia_tts.options import PlaybackOptions, parse_playback
from custom_components.alicia_tts.sonos import (
    NO_AUDIO_CLIP_MODELS,
    AnnouncementStoppedError,
    Bond,
    PlaybackError,
    SonosPlayback,
    Speaker,
    SpeakerUnreachableError,
    VolumeSetting,
    cannot_overlay,
    model_key,
    parse_bonds,
)

from .sonos_double import FakeHousehold, FakeSonosSpeaker, UPnPError
from .test_sonos import AudioServer, state_of

ROOMS = ("Living Room", "Right", "Sub", "Kitchen", "Rear Left", "Rear Right")


@pytest.fixture
async def playback() -> AsyncGenerator[SonosPlayback]:
    async with aiohttp.ClientSession() as session:
        yield SonosPlayback(
            session, fetch_timeout=5.0, end_margin=2.0, poll_interval=0.05, realtime=0
        )


@pytest.fixture
async def audio_server(sonos_loopback: None) -> AsyncGenerator[AudioServer]:
    server = AudioServer()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
async def household(sonos_loopback: None) -> AsyncGenerator[FakeHousehold]:
    """Six speakers on 127.0.0.44-49, realistic event delays."""
    async with FakeHousehold.create(6, first_ip=44, names=ROOMS) as fakes:
        yield fakes
        await fakes.wait_idle()
    assert [error for s in fakes.speakers for error in s.errors] == []


def speaker_of(fake: FakeSonosSpeaker, model: str = "") -> Speaker:
    return Speaker(uid=fake.uid, ip=fake.ip, name=fake.name, model=model)


# -- options -----------------------------------------------------------------------------------


def test_parse_volume_priority_interrupt() -> None:
    assert parse_playback({"volume": "+10"}) == PlaybackOptions(volume_change=10)
    assert parse_playback({"volume": " -5"}) == PlaybackOptions(volume_change=-5)
    assert parse_playback({"volume": "35"}) == PlaybackOptions(volume=35)
    options = parse_playback({"priority": "high"})
    assert options.high
    assert not options.interrupt
    options = parse_playback({"interrupt": "true"})
    assert options.high  # interrupt implies high
    assert options.priority == "normal"
    assert not parse_playback({}).high


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("volume", "+101"),
        ("volume", "-"),
        ("volume", -10),
        ("volume", "+1.5"),
        ("priority", "urgent"),
        ("interrupt", "yes"),
    ],
)
def test_parse_rejects(key: str, value: Any) -> None:
    with pytest.raises(InvalidPlaybackOptionError) as err:
        parse_playback({key: value})
    assert err.value.placeholders["option"] == key
    assert err.value.placeholders["value"] == str(value)


def test_volume_setting_clamps_and_offsets() -> None:
    setting = VolumeSetting(level=90, offsets={"A": -10})
    assert setting.target("B", 20) == 75  # default maximum
    assert setting.target("A", 20) == 75  # 80, clamped
    assert VolumeSetting(level=5).target("A", 50) == 15  # default minimum
    relative = VolumeSetting(change=10, minimum=0, maximum=100, offsets={"A": 5})
    assert relative.target("A", 20) == 35
    assert relative.target("B", 95) == 100
    assert VolumeSetting(change=-30, minimum=0, maximum=100).target("B", 10) == 0
    assert VolumeSetting().target("A", 20) is None
    assert not VolumeSetting().requested
    assert VolumeSetting(change=0).requested


def test_model_list() -> None:
    """Matched by the reported model name, with or without "Sonos", in any case."""
    assert model_key("Sonos Play:1") == "play:1"
    for reported in ("Sonos Play:1", "Play:3", "connect:amp", "Sonos Connect", "Playbar"):
        assert cannot_overlay(reported), reported
    for reported in ("Sonos One", "Five", "Arc", "", "Sonos Play:5"):
        assert not cannot_overlay(reported), reported
    assert all(m == m.lower() and not m.startswith("sonos") for m in NO_AUDIO_CLIP_MODELS)


def test_parse_bonds() -> None:
    pair = (
        '<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="L" ID="L:1">'
        '<ZoneGroupMember UUID="L" Location="http://10.0.0.5:1400/x.xml"'
        ' ChannelMapSet="L:LF,LF;R:RF,RF"/>'
        '<ZoneGroupMember UUID="R" Location="http://10.0.0.6:1400/x.xml"'
        ' ChannelMapSet="L:LF,LF;R:RF,RF" Invisible="1"/>'
        '</ZoneGroup><ZoneGroup Coordinator="T" ID="T:1">'
        '<ZoneGroupMember UUID="T" Location="http://10.0.0.7:1400/x.xml"'
        ' HTSatChanMapSet="T:LF,RF;S:SW">'
        '<Satellite UUID="S" Location="http://10.0.0.8:1400/x.xml"'
        ' HTSatChanMapSet="T:LF,RF;S:SW" Invisible="1"/>'
        "</ZoneGroupMember>"
        '<ZoneGroupMember UUID="X" Location="http://10.0.0.9:1400/x.xml"'
        ' ChannelMapSet="X:LF,RF"/>'
        "</ZoneGroup></ZoneGroups></ZoneGroupState>"
    )
    bonds = parse_bonds(pair)
    assert bonds["L"] == bonds["R"] == Bond("L", "10.0.0.5", {"L": "LF", "R": "RF"})
    assert not bonds["L"].clips_on_all
    assert bonds["S"].main == "T"
    assert bonds["T"].channels == {"T": "LF,RF", "S": "SW"}
    assert bonds["T"].clips_on_all  # a Sub follows an audio clip
    assert "X" not in bonds  # a map of one speaker is no set
    # A map naming no visible speaker is ignored.
    orphan = '<ZoneGroupState><ZoneGroupMember UUID="A" Invisible="1" ChannelMapSet="A:LF;B:RF"/>'
    assert parse_bonds(orphan + "</ZoneGroupState>") == {}


# -- volume and mute ---------------------------------------------------------------------------


async def test_overlay_relative_volume_clamped_and_mute_restored(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """ "+10" from 70 is clamped to the maximum; a muted speaker is heard, then muted again."""
    kitchen = household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    kitchen.volume, kitchen.mute = 70, True
    result = await playback.async_play(
        [speaker_of(kitchen)], audio_server.add(0.3), volume=VolumeSetting(change=10)
    )
    record = await kitchen.wait_played(1)
    assert record.via == "audioclip"
    assert record.volume == 75
    assert not record.muted
    [outcome] = result.outcomes
    assert (outcome.status, outcome.mode, outcome.volume) == ("played", "overlay", 75)
    assert (kitchen.volume, kitchen.mute, kitchen.transport_state) == (70, True, "PLAYING")


async def test_overlay_without_volume_reports_the_current_one(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    kitchen = household["Kitchen"]
    kitchen.volume = 33
    result = await playback.async_play([speaker_of(kitchen)], audio_server.add(0.2))
    assert (await kitchen.wait_played(1)).volume is None  # the clip plays at the speaker's
    assert result.outcomes[0].volume == 33


async def test_takeover_volume_offsets_and_mute_restored(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Absolute volume plus each speaker's offset, clamped; volume and mute come back."""
    kitchen, rear = household["Kitchen"], household["Rear Left"]
    kitchen.preset_queue(3, track=2, state="PLAYING")
    kitchen.volume, kitchen.mute = 12, True
    rear.volume = 40
    before = [await state_of(s) for s in (kitchen, rear)]
    setting = VolumeSetting(level=30, minimum=10, maximum=50, offsets={rear.uid: 25})
    result = await playback.async_play(
        [speaker_of(kitchen), speaker_of(rear)],
        audio_server.add(0.3),
        volume=setting,
        mode="takeover",
    )
    records = {r.speaker: r for s in (kitchen, rear) for r in s.played}
    assert records["Kitchen"].volume == 30
    assert not records["Kitchen"].muted
    assert records["Rear Left"].volume == 50  # 55, clamped
    assert {o.speaker.name: o.volume for o in result.outcomes} == {"Kitchen": 30, "Rear Left": 50}
    assert [await state_of(s) for s in (kitchen, rear)] == before


# -- models that cannot overlay ----------------------------------------------------------------


async def test_listed_model_goes_straight_to_takeover(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A Play:1 gets a takeover without any audio clip attempt (its websocket is untouched)."""
    kitchen = household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    before = await state_of(kitchen)
    result = await playback.async_play([speaker_of(kitchen, "Play:1")], audio_server.add(0.2))
    assert [o.mode for o in result.outcomes] == ["takeover"]
    assert kitchen.ws_log == []
    assert kitchen.clips == []
    assert [r.via for r in kitchen.played] == ["avtransport"]
    assert await state_of(kitchen) == before


# -- bonded sets -------------------------------------------------------------------------------


async def test_stereo_pair_plays_on_both_through_takeover(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Overlay on a pair would reach one half only: it gets a takeover, heard on both."""
    left, right = household["Living Room"], household["Right"]
    household.bond_pair(left, right)
    left.preset_radio(state="PLAYING")
    left.volume = 20
    before = await state_of(left)
    result = await playback.async_play(
        [speaker_of(left)], audio_server.add(0.3), volume=VolumeSetting(level=40)
    )
    assert [(o.status, o.mode, o.volume) for o in result.outcomes] == [("played", "takeover", 40)]
    assert [(r.via, r.volume) for r in left.played] == [("avtransport", 40)]
    [heard] = right.played
    assert (heard.bonded_from, heard.channel, heard.volume, heard.ok) == (
        "Living Room",
        "RF,RF",
        40,
        True,
    )
    assert right.ws_log == []
    assert await state_of(left) == before
    assert right.volume == 20  # the pair's volume came back too


async def test_stale_entity_of_a_pair_member_plays_through_the_main_speaker(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    left, right = household["Living Room"], household["Right"]
    household.bond_pair(left, right)
    result = await playback.async_play(
        [speaker_of(right), speaker_of(left)], audio_server.add(0.2), mode="takeover"
    )
    assert [o.speaker.name for o in result.outcomes] == ["Right", "Living Room"]
    assert all(o.status == "played" for o in result.outcomes)
    assert len(left.played) == 1  # once, through the main speaker
    assert right.played[0].bonded_from == "Living Room"


async def test_theatre_with_sub_only_keeps_overlay(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A Sub follows an audio clip: a soundbar with a Sub gets overlay, heard on both."""
    soundbar, sub = household["Living Room"], household["Sub"]
    household.bond_theatre(soundbar, sub=sub)
    soundbar.preset_tv(state="PLAYING")
    result = await playback.async_play([speaker_of(soundbar)], audio_server.add(0.2), volume=30)
    assert [o.mode for o in result.outcomes] == ["overlay"]
    assert [r.via for r in soundbar.played] == ["audioclip"]
    assert [(r.via, r.channel, r.volume) for r in sub.played] == [("audioclip", "SW", 30)]
    assert soundbar.transport_state == "PLAYING"


async def test_theatre_with_surrounds_plays_on_every_speaker(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    soundbar, sub = household["Living Room"], household["Sub"]
    rear = (household["Rear Left"], household["Rear Right"])
    household.bond_theatre(soundbar, sub=sub, surrounds=rear)
    soundbar.preset_tv(state="PLAYING")
    before = await state_of(soundbar)
    result = await playback.async_play([speaker_of(soundbar)], audio_server.add(0.2))
    assert [o.mode for o in result.outcomes] == ["takeover"]
    channels = {s.name: [r.channel for r in s.played] for s in (sub, *rear)}
    assert channels == {"Sub": ["SW"], "Rear Left": ["LR"], "Rear Right": ["RR"]}
    assert await state_of(soundbar) == before


async def test_pair_in_a_synced_group_with_another_speaker(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """group: the pair and the kitchen speak in sync; groups and sources come back."""
    left, right, kitchen = household["Living Room"], household["Right"], household["Kitchen"]
    household.bond_pair(left, right)
    left.preset_radio(state="PLAYING")
    kitchen.preset_queue(2, state="PAUSED_PLAYBACK")
    before = [await state_of(s) for s in (left, kitchen)]
    result = await playback.async_play(
        [speaker_of(left), speaker_of(kitchen)], audio_server.add(0.2), group=True
    )
    assert all(o.status == "played" for o in result.outcomes)
    assert len(right.played) == 1
    await household.wait_topology()
    assert [await state_of(s) for s in (left, kitchen)] == before
    assert right.coordinator is left


def test_double_rejects_bad_bonds(household: FakeHousehold) -> None:
    left, right = household["Living Room"], household["Right"]
    with pytest.raises(ValueError, match="second speaker"):
        household.bond_theatre(left)
    household.bond_pair(left, right)
    with pytest.raises(ValueError, match="already bonded"):
        household.bond_pair(right, household["Kitchen"])


# -- stop ----------------------------------------------------------------------------------------


async def _until(predicate: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the double's state has no event here
            await asyncio.sleep(0.02)


async def test_stop_ends_a_takeover_at_once_and_restores(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    kitchen = household["Kitchen"]
    kitchen.playback_speed = 1.0  # plays in real time
    kitchen.preset_radio(state="PLAYING")
    kitchen.volume = 18
    before = await state_of(kitchen)
    served = audio_server.add(5.0)
    task = asyncio.create_task(
        playback.async_play([speaker_of(kitchen)], served, volume=44, mode="takeover")
    )
    await _until(lambda: kitchen.played and kitchen.transport_state == "PLAYING")
    started = time.monotonic()
    assert playback.stop([speaker_of(kitchen)]) == 1
    result = await task
    assert time.monotonic() - started < 2.0
    assert [(o.status, o.volume) for o in result.outcomes] == [("stopped", 44)]
    assert result.played == []
    assert await state_of(kitchen) == before
    assert playback.idle


async def test_stop_dismisses_an_overlay_clip(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    kitchen = household["Kitchen"]
    kitchen.playback_speed = 1.0
    kitchen.preset_radio(state="PLAYING")
    kitchen.mute = True
    task = asyncio.create_task(playback.async_play([speaker_of(kitchen)], audio_server.add(5.0)))
    await _until(lambda: any(c.status == "ACTIVE" and c.record for c in kitchen.clips))
    started = time.monotonic()
    playback.stop([speaker_of(kitchen)])
    result = await task
    assert time.monotonic() - started < 2.0
    assert [o.status for o in result.outcomes] == ["stopped"]
    assert kitchen.clips[0].status == "DISMISSED"
    assert kitchen.mute
    assert kitchen.transport_state == "PLAYING"


async def test_stop_before_the_audio_was_fetched(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """Stopped while the speaker has not fetched yet (or the audio is still being made)."""
    kitchen = household["Kitchen"]
    kitchen.preset_radio(state="PLAYING")
    before = await state_of(kitchen)
    never = audio_server.add(0.2)
    never.url = f"{audio_server.base}/missing.wav"  # the speaker never gets it
    for mode in ("takeover", "overlay"):
        task = asyncio.create_task(playback.async_play([speaker_of(kitchen)], never, mode=mode))
        await asyncio.sleep(0.5)
        playback.stop([speaker_of(kitchen)])
        result = await task
        assert [o.status for o in result.outcomes] == ["stopped"], mode
    assert await state_of(kitchen) == before


async def test_stop_drops_waiting_announcements_or_keeps_them(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    kitchen, rear = speaker_of(household["Kitchen"]), speaker_of(household["Rear Left"])
    playing = playback.reserve([kitchen])
    alone = playback.reserve([kitchen])
    both = playback.reserve([kitchen, rear])
    kept = playback.reserve([rear])
    assert playing.ready
    assert playback.stop([kitchen], keep_queued=True) == 1  # only the playing one
    assert playing.stop.is_set()
    assert playback.queued(kitchen) == 3
    assert playback.stop([kitchen]) == 3  # the playing one again, and both waiting ones
    assert playback.queued(kitchen) == 1
    with pytest.raises(AnnouncementStoppedError):
        await alone.wait()
    assert both.uids == (rear.uid,)
    assert both.dropped == {kitchen.uid}
    playing.release()
    assert both.ready  # first for the rear speaker now
    result = await playback.async_play([kitchen, rear], audio_server.add(0.2), turn=both)
    assert {o.speaker.name: o.status for o in result.outcomes} == {
        "Rear Left": "played",
        "Kitchen": "stopped",
    }
    both.release()
    assert kept.ready
    kept.release()
    assert playback.stop([kitchen]) == 0
    assert playback.idle


async def test_stopped_before_playing_plays_nothing(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    kitchen = speaker_of(household["Kitchen"])
    turn = playback.reserve([kitchen])
    playback.stop([kitchen])
    result = await playback.async_play([kitchen], audio_server.add(0.2), turn=turn)
    assert [o.status for o in result.outcomes] == ["stopped"]
    assert household["Kitchen"].played == []
    turn.release()


# -- priority ------------------------------------------------------------------------------------


async def test_high_priority_goes_before_waiting_normal_ones(
    household: FakeHousehold, playback: SonosPlayback
) -> None:
    kitchen, rear = speaker_of(household["Kitchen"]), speaker_of(household["Rear Left"])
    order: list[str] = []
    playing = playback.reserve([kitchen])
    first = playback.reserve([kitchen])
    second = playback.reserve([kitchen, rear])
    urgent = playback.reserve([kitchen], high=True)
    later_urgent = playback.reserve([kitchen, rear], high=True)
    assert playing.ready
    assert not playing.stop.is_set()  # high never interrupts by itself

    async def take(name: str, turn: Any) -> None:
        async with turn:
            order.append(name)
            await asyncio.sleep(0.01)

    tasks = [
        asyncio.create_task(take(n, t))
        for n, t in (
            ("first", first),
            ("second", second),
            ("urgent", urgent),
            ("later", later_urgent),
        )
    ]
    await asyncio.sleep(0.05)
    assert order == []
    playing.release()
    await asyncio.gather(*tasks)
    assert order == ["urgent", "later", "first", "second"]
    assert playback.idle


async def test_interrupt_stops_the_playing_one_and_goes_next(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    kitchen = household["Kitchen"]
    kitchen.playback_speed = 1.0
    kitchen.preset_radio(state="PLAYING")
    before = await state_of(kitchen)
    long = asyncio.create_task(
        playback.async_play([speaker_of(kitchen)], audio_server.add(5.0), mode="takeover")
    )
    await _until(lambda: kitchen.played and kitchen.transport_state == "PLAYING")
    waiting = playback.reserve([speaker_of(kitchen)])
    urgent = playback.reserve([speaker_of(kitchen)], interrupt=True)
    assert (await long).outcomes[0].status == "stopped"
    assert urgent.ready
    kitchen.playback_speed = 0.0
    async with urgent:
        result = await playback.async_play(
            [speaker_of(kitchen)], audio_server.add(0.2), turn=urgent
        )
    assert result.outcomes[0].status == "played"
    assert waiting.ready
    waiting.release()
    assert await state_of(kitchen) == before


async def test_stop_empties_a_queue_of_waiting_ones(
    household: FakeHousehold, playback: SonosPlayback
) -> None:
    """A speaker whose only announcement waits for another speaker is free after a stop."""
    kitchen, rear = speaker_of(household["Kitchen"]), speaker_of(household["Rear Left"])
    busy = playback.reserve([rear])
    both = playback.reserve([kitchen, rear])
    assert not both.ready
    assert playback.stop([kitchen]) == 1
    assert playback.queued(kitchen) == 0
    busy.release()
    assert both.ready
    both.release()
    assert playback.idle


async def test_soco_reads_the_doubles_bonded_sets(household: FakeHousehold) -> None:
    """The double's ZoneGroupState is what soco expects of real bonded sets."""
    household.bond_pair(household["Living Room"], household["Right"])
    household.bond_theatre(
        household["Kitchen"],
        sub=household["Sub"],
        surrounds=(household["Rear Left"], household["Rear Right"]),
    )
    device = soco.SoCo(household["Living Room"].ip)

    def read() -> dict[str, tuple[bool, str, bool, str]]:
        state = device.zone_group_state
        state.clear_cache()
        state.poll(device)
        coordinators = {m.uid: g.coordinator.uid for g in state.groups for m in g.members}
        return {
            zone.player_name: (
                zone in state.visible_zones,
                zone.channel,
                zone.is_satellite,
                coordinators[zone.uid],
            )
            for zone in state.all_zones
        }

    seen = await asyncio.to_thread(read)
    living, kitchen = household["Living Room"].uid, household["Kitchen"].uid
    assert seen == {
        "Living Room": (True, "LF", False, living),
        "Right": (False, "RF", False, living),
        "Kitchen": (True, "LF,RF", False, kitchen),
        "Sub": (False, "SW", True, kitchen),
        "Rear Left": (False, "LR", True, kitchen),
        "Rear Right": (False, "RR", True, kitchen),
    }


async def test_clip_without_status_events_plays_and_stops(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """A speaker that sends no clip events: its clip is timed; a stop still dismisses it."""
    kitchen = household["Kitchen"]
    kitchen.clip_status_events = False
    result = await playback.async_play([speaker_of(kitchen)], audio_server.add(0.2))
    assert [o.status for o in result.outcomes] == ["played"]
    playback.realtime = 1.0  # now it is assumed to play for the clip's whole length
    kitchen.playback_speed = 1.0
    task = asyncio.create_task(playback.async_play([speaker_of(kitchen)], audio_server.add(5.0)))
    await _until(lambda: len(kitchen.clips) == 2 and kitchen.clips[1].record is not None)
    started = time.monotonic()
    playback.stop([speaker_of(kitchen)])
    result = await task
    assert time.monotonic() - started < 2.0
    assert [o.status for o in result.outcomes] == ["stopped"]
    assert kitchen.clips[1].status == "DISMISSED"


async def test_clip_set_up_failures_are_clear_and_restore_mute(
    household: FakeHousehold, audio_server: AudioServer, playback: SonosPlayback
) -> None:
    """The clip port answers but the speaker fails on the way: a clear failure, mute back."""
    kitchen = household["Kitchen"]
    kitchen.mute = True

    def broken(_args: dict[str, str]) -> dict[str, str]:
        raise UPnPError(501, "volume unavailable")

    handlers = kitchen._handlers  # break one action of the double
    original = handlers[("RenderingControl", "GetVolume")]
    handlers[("RenderingControl", "GetVolume")] = broken
    with pytest.raises(PlaybackError) as err:
        await playback.async_play([speaker_of(kitchen)], audio_server.add(0.2))
    assert "UPnP Error 501" in str(err.value)
    handlers[("RenderingControl", "GetVolume")] = original

    def hang_up(_text: str, _peer: Any = None) -> list[dict[str, Any]]:
        raise ConnectionResetError("the speaker hung up")

    kitchen.websocket_command = hang_up  # type: ignore[assignment]
    with pytest.raises(SpeakerUnreachableError, match="audio clip failed"):
        await playback.async_play([speaker_of(kitchen)], audio_server.add(0.2))
    assert kitchen.mute  # unmuted for the clip, muted again after the failure
    assert kitchen.played == []
