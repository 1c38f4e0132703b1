"""Chime, repeat and trailing silence: built from the pure core up to what a speaker decodes.

Everything is real: Piper speaks, ffmpeg decodes chimes, Home Assistant serves the audio and
the loopback Sonos double fetches and decodes it like a speaker. Tones are found by FFT in the
decoded audio.
"""

from collections.abc import AsyncGenerator, Callable, Coroutine
import io
from pathlib import Path
from typing import Any
import wave

from aiohttp import web
from aiohttp.test_utils import TestServer
from homeassistant.components import tts
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import numpy as np
import numpy.typing as npt
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts import chime, chime_media
from custom_components.alicia_tts.announce import async_get_playback
from custom_components.alicia_tts.chime import (
    ChimeUnavailableError,
    Composition,
    async_decode,
    builtin_chime,
    compose,
    resample,
)
from custom_components.alicia_tts.config_flow import SECTION_SOUND
from custom_components.alicia_tts.const import (
    CONF_AUDIO_FORMAT,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
)
from custom_components.alicia_tts.engine import silence
from custom_components.alicia_tts.exceptions import InvalidChimeError, InvalidOptionError
from custom_components.alicia_tts.options import (
    BUILTIN,
    AudioOptions,
    ChimeSpec,
    parse_audio,
    parse_chime,
)

from .conftest import JOE
from .sonos_double import FakeHousehold, FakeSonosSpeaker, decode_audio
from .test_announce import _idle, register_sonos

TTS_ENTITY = "tts.alicia_tts_joe_en_us_medium"
KITCHEN = "media_player.kitchen"
RATE = 22050  # joe medium
# Deterministic speech (no noise): lengths of two syntheses can be compared.
STILL = {"noise_scale": 0.0, "noise_w_scale": 0.0}
HIGH, LOW = 1046.5, 784.0  # the built-in tones
# Built-in opening chime: tones end at 0.8 s, then CHIME_GAP before the speech.
OPENING_S = 0.8 + chime.CHIME_GAP


def dominant(samples: npt.NDArray[np.int16], rate: int, start: float, end: float) -> float:
    """The loudest frequency (Hz) between two times (s) of mono samples."""
    seg = samples[int(start * rate) : int(end * rate)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    return float(np.fft.rfftfreq(len(seg), 1 / rate)[int(np.argmax(spectrum))])


def share_at(
    samples: npt.NDArray[np.int16], rate: int, start: float, end: float, hz: float
) -> float:
    """Share of the energy between two times that lies within 30 Hz of ``hz``."""
    seg = samples[int(start * rate) : int(end * rate)].astype(np.float64)
    power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    freqs = np.fft.rfftfreq(len(seg), 1 / rate)
    return float(power[np.abs(freqs - hz) < 30].sum() / max(power.sum(), 1e-9))


def tone_wav(hz: float, seconds: float, rate: int = 44100) -> bytes:
    """A WAV file of one sine tone (stereo, another rate than the voice: ffmpeg converts)."""
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.repeat(mono, 2).tobytes())
    return out.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def put(hass: HomeAssistant, path: Path, data: bytes) -> None:
    """Write a file (and its folder) from the executor."""
    await hass.async_add_executor_job(_write, path, data)


def serve(body: bytes) -> Callable[[web.Request], Coroutine[Any, Any, web.Response]]:
    """An aiohttp handler answering ``body``."""

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=body)

    return handler


def mono(data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    """Decode like the speaker: first channel and rate."""
    audio = decode_audio(data)
    return audio.samples[:, 0], audio.sample_rate


def first_sound(samples: npt.NDArray[np.int16], rate: int) -> float:
    """Seconds before the first sample above 1 % of full scale."""
    loud = np.flatnonzero(np.abs(samples) > 328)
    return float(loud[0]) / rate if len(loud) else len(samples) / rate


# -- the pure core ----------------------------------------------------------------------------


def test_parse_chime_values() -> None:
    """Booleans, their words, media ids, URLs and files; anything else is refused."""
    assert parse_chime("chime", None) is None
    assert parse_chime("chime", False) is None
    assert parse_chime("chime", True) is BUILTIN
    assert parse_chime("chime", " On ") is BUILTIN
    assert parse_chime("chime", "false") is None
    assert parse_chime("chime", "") is None
    assert parse_chime("chime", "media-source://media_source/local/a.mp3") == ChimeSpec(
        "media", "media-source://media_source/local/a.mp3"
    )
    assert parse_chime("chime", "HTTPS://x/a.mp3") == ChimeSpec("url", "HTTPS://x/a.mp3")
    assert parse_chime("chime", "sounds/ding.wav") == ChimeSpec("file", "sounds/ding.wav")
    with pytest.raises(InvalidChimeError) as err:
        parse_chime("chime", "ftp://me:secret@host/a.mp3")
    assert err.value.placeholders["value"] == "ftp://***@host/a.mp3"
    for bad in (5, ["x"], "ftp://host/a.mp3", "a\x00b"):
        with pytest.raises(InvalidChimeError) as err:
            parse_chime("chime_after", bad)
        assert err.value.translation_key == "invalid_chime"
        assert err.value.placeholders["option"] == "chime_after"


def test_parse_audio_options_ranges() -> None:
    """repeat is a whole number 1-5, repeat_gap 0-10 s; defaults are plain."""
    assert parse_audio({}) == AudioOptions()
    assert parse_audio({}).plain
    parsed = parse_audio({"repeat": "3", "repeat_gap": 2.5, "chime_after": True})
    assert parsed == AudioOptions(chime_after=BUILTIN, repeat=3, repeat_gap=2.5)
    assert not parsed.plain
    assert parse_audio({"repeat": 2.0}).repeat == 2
    for bad in (
        {"repeat": 0},
        {"repeat": 6},
        {"repeat": 2.5},
        {"repeat": True},
        {"repeat": "twice"},
        {"repeat_gap": -1},
        {"repeat_gap": 10.5},
        {"repeat_gap": None, "repeat": [2]},
    ):
        with pytest.raises(InvalidOptionError) as err:
            parse_audio(bad)
        assert err.value.translation_key == "invalid_option"


def test_builtin_chime_is_two_tones() -> None:
    """Falling C6-G5 before, rising G5-C6 after, at any rate, below full scale, no click."""
    for rate in (16000, 22050):
        pcm = np.frombuffer(builtin_chime(rate), dtype="<i2")
        assert len(pcm) == round(0.8 * rate)
        assert 0.35 < np.abs(pcm).max() / 32767 <= 0.41
        assert abs(dominant(pcm, rate, 0.0, 0.18) - HIGH) < 10
        assert abs(dominant(pcm, rate, 0.3, 0.7) - LOW) < 10
        assert abs(int(pcm[-1])) < 200  # faded out
        closing = np.frombuffer(builtin_chime(rate, closing=True), dtype="<i2")
        assert abs(dominant(closing, rate, 0.0, 0.18) - LOW) < 10
        assert abs(dominant(closing, rate, 0.3, 0.7) - HIGH) < 10


def test_resample_keeps_the_tone() -> None:
    """Linear resampling keeps length ratio and pitch; same rate and empty pass through."""
    pcm = builtin_chime(16000)
    out = resample(pcm, 16000, 22050)
    assert len(out) // 2 == round(len(pcm) // 2 * 22050 / 16000)
    assert abs(dominant(np.frombuffer(out, dtype="<i2"), 22050, 0.0, 0.18) - HIGH) < 10
    assert resample(pcm, 16000, 16000) is pcm
    assert resample(b"", 16000, 22050) == b""


async def _speech(*pieces: bytes) -> AsyncGenerator[bytes]:
    for piece in pieces:
        yield piece


async def test_compose_order_and_repeats() -> None:
    """lead + chime + gap with the first sentence, repeats replayed, closing chime + tail."""
    rate = 8000
    opening, closing = b"\x01\x00" * 4, b"\x02\x00" * 4
    plan = Composition(sample_rate=rate, opening=opening, closing=closing, repeat=3, repeat_gap=0.5)
    out = [
        piece
        async for piece in compose(
            _speech(b"A" * 4, b"B" * 4), plan, rate, leading_silence=0.25, trailing_silence=0.1
        )
    ]
    gap = silence(chime.CHIME_GAP, rate)
    assert out[0] == silence(0.25, rate) + opening + gap + b"A" * 4
    assert out[1:] == [
        b"B" * 4,
        silence(0.5, rate),
        b"A" * 4,
        b"B" * 4,
        silence(0.5, rate),
        b"A" * 4,
        b"B" * 4,
        gap + closing + silence(0.1, rate),
    ]
    # No speech: nothing at all (the engine raises its own error).
    assert [p async for p in compose(_speech(), plan, rate)] == []
    # Nothing after the speech: no empty last piece; a plan's key names what it adds.
    bare = Composition(sample_rate=rate, opening=opening)
    assert [p async for p in compose(_speech(b"A" * 4), bare, rate)] == [opening + gap + b"A" * 4]
    assert bare.key != plan.key
    assert bare.key == Composition(sample_rate=rate, opening=opening).key


async def test_ffmpeg_decodes_and_refuses(tmp_path: Path) -> None:
    """Real ffmpeg: a file or bytes to mono PCM at the rate; garbage, too long, no binary."""
    wav = tone_wav(523.25, 0.5)
    path = tmp_path / "tone.wav"
    path.write_bytes(wav)
    for pcm in (
        await async_decode("ffmpeg", 16000, path=str(path)),
        await async_decode("ffmpeg", 16000, data=wav),
    ):
        samples = np.frombuffer(pcm, dtype="<i2")
        assert abs(len(samples) - 8000) < 50
        assert abs(dominant(samples, 16000, 0.05, 0.45) - 523.25) < 10
    with pytest.raises(ChimeUnavailableError) as err:
        await async_decode("ffmpeg", 16000, data=b"this is not audio" * 100)
    assert err.value.placeholders["error"].startswith("not audio")
    with pytest.raises(ChimeUnavailableError) as err:
        await async_decode("ffmpeg", 16000, data=tone_wav(440, 12.0, rate=8000))
    assert err.value.placeholders["error"] == "longer than 10 s"
    with pytest.raises(ChimeUnavailableError) as err:
        await async_decode(str(tmp_path / "no-ffmpeg"), 16000, data=wav)
    assert err.value.placeholders["error"].startswith("ffmpeg:")


async def test_ffmpeg_that_hangs_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder that never ends is killed after DECODE_TIMEOUT."""
    hanging = tmp_path / "hanging-ffmpeg"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    monkeypatch.setattr(chime, "DECODE_TIMEOUT", 0.3)
    with pytest.raises(ChimeUnavailableError) as err:
        await async_decode(str(hanging), 16000, path=str(tmp_path))
    assert err.value.placeholders["error"] == "decoding timed out"


# -- through Home Assistant and the speaker double ----------------------------------------------


@pytest.fixture
async def kitchen(sonos_loopback: None) -> AsyncGenerator[FakeSonosSpeaker]:
    """One fake Sonos speaker on 127.0.0.61."""
    async with FakeHousehold.create(1, first_ip=61, names=("Kitchen",)) as household:
        yield household["Kitchen"]


@pytest.fixture
def audio_format() -> str:
    """The entry's audio format for speakers (a test may override it)."""
    return "auto"


@pytest.fixture
async def entry(
    hass: HomeAssistant,
    setup_ha: None,
    hass_client_no_auth: ClientSessionGenerator,
    kitchen: FakeSonosSpeaker,
    audio_format: str,
) -> AsyncGenerator[MockConfigEntry]:
    """Alicia serving on HA's real test HTTP server, the Kitchen registered as HA's sonos does."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="Joe (en-US, medium)", data={CONF_VOICE: JOE}, unique_id=JOE
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    client = await hass_client_no_auth()
    hass.config_entries.async_update_entry(
        entry,
        options={
            CONF_SPEAKER_BASE_URL: f"http://127.0.0.1:{client.port}",
            CONF_AUDIO_FORMAT: audio_format,
        },
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    playback = async_get_playback(hass)
    playback.realtime = 0
    playback.poll_interval = 0.05
    register_sonos(hass, kitchen.name, kitchen.uid, kitchen.ip)
    hass.data.pop(chime_media.DATA_CHIMES, None)
    yield entry
    await _idle(hass)


async def say(hass: HomeAssistant, **fields: Any) -> None:
    """alicia_tts.say on the Kitchen, waiting until it has played."""
    await hass.services.async_call(
        DOMAIN,
        "say",
        {"entity_id": KITCHEN, "message": "The door is open.", "wait": True, **STILL, **fields},
        blocking=True,
    )


async def test_say_chimes_before_the_speech_by_default(
    hass: HomeAssistant, entry: MockConfigEntry, kitchen: FakeSonosSpeaker
) -> None:
    """Speakers get the built-in chime after the leading silence, in the one fetched stream."""
    await say(hass)
    await say(hass, chime=False)
    chimed, plain = kitchen.played
    assert chimed.ok
    assert chimed.format == "mp3"
    samples, rate = mono(chimed.body)
    # 0.5 s of silence, then the chime's first (high) tone, then its low tone, then speech.
    assert 0.45 < first_sound(samples, rate) < 0.6
    assert abs(dominant(samples, rate, 0.55, 0.68) - HIGH) < 10
    assert share_at(samples, rate, 0.55, 0.68, HIGH) > 0.8
    assert abs(dominant(samples, rate, 0.8, 1.2) - LOW) < 10
    assert share_at(samples, rate, 0.8, 1.2, LOW) > 0.6
    # Without the chime the speech starts there and has none of the chime's tones.
    plain_samples, _ = mono(plain.body)
    assert share_at(plain_samples, rate, 0.5, 1.2, HIGH) < 0.05
    assert chimed.duration_s is not None
    assert plain.duration_s is not None
    assert abs(chimed.duration_s - plain.duration_s - OPENING_S) < 0.05
    # The speaker default of 0.3 s trailing silence, chime or not.
    for record in (chimed, plain):
        assert record.trailing_silence_ms is not None
        assert record.trailing_silence_ms >= 280


async def test_tts_speak_chimes_on_speakers_too(
    hass: HomeAssistant, entry: MockConfigEntry, kitchen: FakeSonosSpeaker
) -> None:
    """tts.speak to a Sonos speaker gets the speakers' chime, closing chime on request."""
    await hass.services.async_call(
        "tts",
        "speak",
        {
            "entity_id": TTS_ENTITY,
            "media_player_entity_id": KITCHEN,
            "message": "Dinner is ready.",
            "options": {**STILL, "chime_after": "true", "mode": "takeover"},
        },
        blocking=True,
    )
    record = await kitchen.wait_played(1, timeout=30)
    await _idle(hass)
    assert record.via == "avtransport"
    samples, rate = mono(record.body)
    assert abs(dominant(samples, rate, 0.55, 0.68) - HIGH) < 10
    end = len(samples) / rate - 0.3
    assert abs(dominant(samples, rate, end - 0.45, end - 0.1) - HIGH) < 10
    assert abs(dominant(samples, rate, end - 0.75, end - 0.58) - LOW) < 10


async def test_tts_speak_repeats_in_one_stream_and_pads_the_end(
    hass: HomeAssistant, entry: MockConfigEntry, kitchen: FakeSonosSpeaker
) -> None:
    """tts.speak: repeat 3 with 1.5 s gaps and 1 s trailing silence, fetched once."""
    message = "Someone is at the door."

    async def speak(options: dict[str, Any]) -> None:
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": TTS_ENTITY,
                "media_player_entity_id": KITCHEN,
                "message": message,
                "options": {**STILL, "chime": False, **options},
            },
            blocking=True,
        )
        await _idle(hass)

    await speak({})
    await speak({"repeat": 2, "repeat_gap": 1.5, "trailing_silence": 1.0})
    await speak({"repeat": 3, "repeat_gap": 1.5, "trailing_silence": 1.0})
    assert len(kitchen.played) == 3  # one fetch each
    once, twice, thrice = (record.duration_s for record in kitchen.played)
    assert all(record.ok for record in kitchen.played)
    assert once is not None
    assert twice is not None
    assert thrice is not None
    # Each repetition adds the speech and a gap (the decoder's constant padding cancels out);
    # the 1.0 s tail replaces the speakers' default 0.3 s.
    speech = thrice - twice - 1.5
    assert 0.8 < speech < 2.5
    assert abs((twice - once) - (speech + 1.5 + 0.7)) < 0.11
    record = kitchen.played[-1]
    assert record.trailing_silence_ms is not None
    assert record.trailing_silence_ms >= 980
    # The repetitions are the same speech: each matches the first where it is due (within
    # one MP3 frame, 1152 samples: decoded lengths come in whole frames).
    samples, rate = mono(record.body)
    whole = samples.astype(np.float64)
    size = int(speech * rate)
    start = int(0.5 * rate)
    first = whole[start : start + size]
    for n in (1, 2):
        at = start + int(n * (speech + 1.5) * rate)
        region = whole[at - 1200 : at + size + 1200]
        energy = np.sqrt(np.convolve(region**2, np.ones(size), "valid"))
        match = np.correlate(region, first, "valid") / (np.linalg.norm(first) * energy + 1e-9)
        assert match.max() > 0.99, n
    # ... and the gaps between them are silent.
    gap = samples[int((0.5 + speech + 0.2) * rate) : int((0.5 + speech + 1.3) * rate)]
    assert np.abs(gap).max() < 328


@pytest.mark.parametrize("audio_format", ["wav"])
async def test_repeat_and_closing_chime_sample_exact_in_wav(
    hass: HomeAssistant, entry: MockConfigEntry, kitchen: FakeSonosSpeaker
) -> None:
    """WAV: the second speech is the first one's samples; the closing chime rises at the end."""
    await say(hass, chime=False, repeat=2, repeat_gap=0.5, chime_after=True, trailing_silence=0)
    record = kitchen.played[-1]
    assert record.ok
    assert record.format == "wav"
    samples, rate = mono(record.body)
    closing = np.frombuffer(builtin_chime(rate, closing=True), dtype="<i2")
    assert np.array_equal(samples[-len(closing) :], closing)  # no trailing silence asked
    body = samples[round(0.5 * rate) : len(samples) - len(closing) - round(chime.CHIME_GAP * rate)]
    gap = round(0.5 * rate)
    speech = (len(body) - gap) // 2
    assert len(body) == 2 * speech + gap
    assert np.array_equal(body[:speech], body[speech + gap :])
    assert not body[speech : speech + gap].any()


async def test_chime_from_a_file_url_and_media_source(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    kitchen: FakeSonosSpeaker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file in the config folder, an http URL and a local media item: decoded, resampled."""
    await put(hass, Path(hass.config.path("sounds/a.wav")), tone_wav(440.0, 0.4))
    media = tmp_path / "media"
    await put(hass, media / "bell.wav", tone_wav(660.0, 0.4))
    monkeypatch.setitem(hass.config.media_dirs, "local", str(media))
    app = web.Application()
    app.router.add_get("/c.wav", serve(tone_wav(587.0, 0.4)))
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("/c.wav"))
        for sound, hz in (
            ("sounds/a.wav", 440.0),
            (hass.config.path("sounds/a.wav"), 440.0),  # absolute, in the config folder
            (url, 587.0),
            ("media-source://media_source/local/bell.wav", 660.0),
        ):
            await say(hass, chime=sound)
            record = kitchen.played[-1]
            assert record.ok, sound
            samples, rate = mono(record.body)
            assert abs(dominant(samples, rate, 0.55, 0.85) - hz) < 10, sound
            assert share_at(samples, rate, 0.55, 0.85, hz) > 0.8, sound
    # Cached: the URL's server is gone, the chime still plays.
    await say(hass, chime_after=url, chime=False)
    samples, rate = mono(kitchen.played[-1].body)
    assert (
        abs(dominant(samples, rate, len(samples) / rate - 0.6, len(samples) / rate - 0.4) - 587)
        < 10
    )


async def test_spoken_chime_from_a_tts_media_source(
    hass: HomeAssistant, entry: MockConfigEntry, kitchen: FakeSonosSpeaker
) -> None:
    """A media source Home Assistant serves itself (tts proxy) is fetched from its own URL."""
    media_id = tts.generate_media_source_id(
        hass, "Attention.", engine=TTS_ENTITY, options={"chime": False}
    )
    await say(hass, chime=media_id, leading_silence=0)
    await say(hass, chime=False, leading_silence=0)
    chimed, plain = kitchen.played
    assert chimed.ok
    assert chimed.duration_s is not None
    assert plain.duration_s is not None
    assert chimed.duration_s - plain.duration_s > 0.5  # the spoken word came first


async def test_entry_options_set_the_speakers_sound(
    hass: HomeAssistant, entry: MockConfigEntry, kitchen: FakeSonosSpeaker
) -> None:
    """Options flow "Announcement sound": no opening chime, a closing one; calls still win."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    sound = schema.schema[SECTION_SOUND].schema.schema
    suggested = {m.schema: (m.description or {}).get("suggested_value") for m in sound}
    assert suggested == {"chime": True, "chime_after": False}
    base = entry.options[CONF_SPEAKER_BASE_URL]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_SPEAKER_BASE_URL: base, SECTION_SOUND: {"chime": False, "chime_after": True}},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (entry.options["chime"], entry.options["chime_after"]) == (False, True)
    playback = async_get_playback(hass)
    playback.realtime = 0
    playback.poll_interval = 0.05
    await say(hass)
    await say(hass, chime=True, chime_after=False)
    closing_only, opening_only = kitchen.played
    samples, rate = mono(closing_only.body)
    end = len(samples) / rate - 0.3  # before the trailing silence
    assert share_at(samples, rate, 0.5, 0.7, HIGH) < 0.05
    assert abs(dominant(samples, rate, end - 0.75, end - 0.58) - LOW) < 10
    assert abs(dominant(samples, rate, end - 0.45, end - 0.1) - HIGH) < 10
    samples, rate = mono(opening_only.body)
    assert abs(dominant(samples, rate, 0.55, 0.68) - HIGH) < 10
    # A section left out keeps the stored sound.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SPEAKER_BASE_URL: base}
    )
    await hass.async_block_till_done()
    assert entry.options["chime"] is False


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"chime": "/etc/hostname"}, "chime_not_allowed"),
        ({"chime": "../outside.wav"}, "chime_not_allowed"),
        ({"chime": "sounds/missing.wav"}, "chime_not_found"),
        ({"chime_after": "ftp://host/a.mp3"}, "invalid_chime"),
        ({"chime": "garbage.wav"}, "chime_unavailable"),
        ({"chime": "http://127.0.0.1:9/none.mp3"}, "chime_unavailable"),
        ({"chime": "media-source://nowhere/x"}, "chime_unavailable"),
        ({"repeat": 9}, "invalid_option"),
        ({"repeat_gap": 11}, "invalid_option"),
        ({"trailing_silence": 5}, "invalid_option"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    kitchen: FakeSonosSpeaker,
    fields: dict[str, Any],
    key: str,
) -> None:
    """Translated validation errors, through say and tts.speak; the speaker plays nothing."""
    await put(hass, Path(hass.config.path("garbage.wav")), b"RIFF not really" * 50)
    kitchen.preset_radio(state="PLAYING")
    before = (kitchen.current_uri, kitchen.transport_state, kitchen.volume)
    with pytest.raises(ServiceValidationError) as err:
        await say(hass, **fields)
    assert err.value.translation_key == key
    assert err.value.translation_domain == DOMAIN
    assert "{" not in str(err.value)  # every placeholder filled
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": TTS_ENTITY,
                "media_player_entity_id": KITCHEN,
                "message": "Hello.",
                "options": fields,
            },
            blocking=True,
        )
    assert err.value.translation_key == key
    await _idle(hass)
    assert kitchen.played == []
    assert (kitchen.current_uri, kitchen.transport_state, kitchen.volume) == before


async def test_url_chime_errors(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    kitchen: FakeSonosSpeaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP errors and oversized files are named; credentials never shown."""
    monkeypatch.setattr(chime_media, "MAX_CHIME_BYTES", 1000)
    app = web.Application()
    app.router.add_get("/big.wav", serve(bytes(2000)))
    async with TestServer(app, host="127.0.0.1") as server:
        for path, error in (("/missing.wav", "HTTP 404"), ("/big.wav", "larger than 0 MB")):
            url = str(server.make_url(path)).replace("http://", "http://user:secret@")
            with pytest.raises(ServiceValidationError) as err:
                await say(hass, chime=url)
            assert err.value.translation_placeholders is not None
            assert err.value.translation_placeholders["error"] == error
            assert "secret" not in str(err.value.translation_placeholders)
    assert kitchen.played == []


async def test_chime_cache_is_bounded_and_expires(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    kitchen: FakeSonosSpeaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most CACHE_ENTRIES sounds; an expired one is fetched again."""
    for name, hz in (("a.wav", 440.0), ("b.wav", 880.0)):
        await put(hass, Path(hass.config.path(name)), tone_wav(hz, 0.3))
    monkeypatch.setattr(chime_media, "CACHE_ENTRIES", 1)
    rate = RATE
    await chime_media.async_sound(hass, entry, ChimeSpec("file", "a.wav"), rate)
    await chime_media.async_sound(hass, entry, ChimeSpec("file", "b.wav"), rate)
    cache = hass.data[chime_media.DATA_CHIMES]
    assert list(cache) == [("file", "b.wav", rate)]
    monkeypatch.setattr(chime_media, "CACHE_TTL", 0.0)
    await chime_media.async_sound(hass, entry, ChimeSpec("file", "a.wav"), rate)
    assert list(cache) == [("file", "a.wav", rate)]
    assert chime_media.ffmpeg_binary(hass) == "ffmpeg"


async def test_plain_tts_has_no_chime_unless_asked(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """HA's tts path (media source, other players): chime only when the call asks for it."""

    async def audio(options: dict[str, Any]) -> tuple[npt.NDArray[np.int16], int]:
        media_id = tts.generate_media_source_id(
            hass,
            "Hello there.",
            engine=TTS_ENTITY,
            options={**STILL, "preferred_format": "wav", **options},
        )
        extension, data = await tts.async_get_media_source_audio(hass, media_id)
        assert extension == "wav"
        return mono(data)

    plain, rate = await audio({})
    chimed, _ = await audio({"chime": True, "trailing_silence": 0.5})
    assert first_sound(plain, rate) < 0.3  # no speaker lead, no chime
    assert abs(dominant(chimed, rate, 0.02, 0.15) - HIGH) < 10
    assert abs(len(chimed) - len(plain) - (OPENING_S + 0.5) * rate) < 0.02 * rate
    with pytest.raises(HomeAssistantError):
        await audio({"chime": "ftp://x/y"})


async def test_other_players_get_the_chime_only_when_asked(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A non-Sonos player gets HA's announcement with the call's chime; a bad one is refused."""
    hass.states.async_set("media_player.den", "idle")
    calls = async_mock_service(hass, "media_player", "play_media")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "say",
            {"entity_id": "media_player.den", "message": "Hi.", "chime": "nope.wav"},
            blocking=True,
        )
    assert err.value.translation_key == "chime_not_found"
    assert calls == []
    await hass.services.async_call(
        DOMAIN,
        "say",
        {"entity_id": "media_player.den", "message": "Hi.", "chime": True, "repeat": 2},
        blocking=True,
    )
    (call,) = calls
    media_id = call.data["media_content_id"]
    assert "chime" in media_id
    assert "repeat" in media_id
