"""The pure Piper engine, with real Piper and the real joe voice (no Home Assistant)."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
import json
from pathlib import Path
import shutil
import sys
import wave

import pytest

from custom_components.alicia_tts import engine as engine_mod
from custom_components.alicia_tts.encoders import wav_header
from custom_components.alicia_tts.engine import (
    EngineBusyError,
    InvalidMessageError,
    LoadedVoice,
    NothingToSpeakError,
    PiperEngine,
    PiperUnavailableError,
    SentenceBuffer,
    SynthesisError,
    UnknownSpeakerError,
    UnknownVoiceError,
    VoiceLoadError,
    check_input,
    check_voice_files,
    clean_message,
    cut_long,
    resolve_speaker_id,
    validate_message,
)
from custom_components.alicia_tts.exceptions import InvalidOptionError
from custom_components.alicia_tts.options import ENGINE_OPTIONS, SynthesisOptions, parse_synthesis
from custom_components.alicia_tts.voices import VoiceInfo, read_voice_info

from .audio import Wav, parse_wav
from .conftest import JOE

ONE = "The garage door is open."
THREE = "The garage door is open. The kitchen light is on. Dinner is ready."


@pytest.fixture
def joe_info(joe_files: tuple[Path, Path]) -> VoiceInfo:
    """The packaged joe voice, described."""
    return read_voice_info(*joe_files)


@pytest.fixture
async def engine(joe_info: VoiceInfo) -> AsyncIterator[PiperEngine]:
    """An engine with the joe voice; its worker threads are stopped afterwards."""
    eng = PiperEngine({JOE: joe_info})
    yield eng
    await eng.async_close()


async def speak(eng: PiperEngine, text: str, **options: object) -> Wav:
    """Synthesize a whole message and decode it."""
    job = await eng.async_start(parse_synthesis(options), JOE)
    pcm = await job.synthesize(text)
    return parse_wav(wav_header(job.sample_rate, len(pcm)) + pcm)


async def text_stream(*chunks: str) -> AsyncGenerator[str]:
    """Text arriving in pieces."""
    for chunk in chunks:
        yield chunk


# -- options -----------------------------------------------------------------------------------


def test_engine_options_are_the_vocabulary() -> None:
    """The engine's option keys are exactly the engine keys of options.md."""
    assert set(ENGINE_OPTIONS) == {
        "voice",
        "speaker",
        "speed",
        "noise_scale",
        "noise_w_scale",
        "gain",
        "sentence_silence",
        "leading_silence",
        "trailing_silence",
    }


def test_parse_options_values_and_unrelated_keys() -> None:
    """Numbers may come as strings (YAML); playback and HA keys are not the engine's business."""
    opts = parse_synthesis(
        {
            "speed": "1.5",
            "gain": 2,
            "voice": JOE,
            "speaker": 3,
            "volume": 40,
            "preferred_format": "wav",
        }
    )
    assert opts == SynthesisOptions(voice=JOE, speaker="3", speed=1.5, gain=2.0)
    assert parse_synthesis({}) == SynthesisOptions()
    assert parse_synthesis({"voice": "", "speed": None}) == SynthesisOptions()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("speed", 0.2),
        ("speed", 4.5),
        ("gain", 0),
        ("noise_scale", -0.1),
        ("noise_w_scale", 1.6),
        ("sentence_silence", 2.5),
        ("leading_silence", -1),
        ("speed", "fast"),
        ("speed", True),
        ("gain", [1]),
        ("voice", 1.5),
        ("speaker", False),
    ],
)
def test_parse_options_rejects(key: str, value: object) -> None:
    """Each bad value is named in the error."""
    with pytest.raises(InvalidOptionError) as err:
        parse_synthesis({key: value})
    assert err.value.placeholders["option"] == key
    assert err.value.translation_key == "invalid_option"


def test_validate_message() -> None:
    """Empty and too-long messages are rejected; the limit itself is fine."""
    validate_message("x" * 10, max_chars=10)
    with pytest.raises(InvalidMessageError):
        validate_message("  \n ", max_chars=10)
    with pytest.raises(InvalidMessageError) as err:
        validate_message("x" * 11, max_chars=10)
    assert err.value.placeholders == {"length": "11", "max": "10"}


def test_speaker_mapping(joe_info: VoiceInfo) -> None:
    """Names map through speaker_id_map, numbers are ids; single-speaker voices refuse any."""
    multi = VoiceInfo(
        key="en_US-libritts-high",
        model_path=Path("m.onnx"),
        config_path=Path("m.onnx.json"),
        language="en-US",
        name="Libritts",
        num_speakers=3,
        speaker_id_map={"p239": 0, "p240": 1, "p241": 2},
    )
    assert resolve_speaker_id(None, multi) is None
    assert resolve_speaker_id("p240", multi) == 1
    assert resolve_speaker_id("2", multi) == 2
    with pytest.raises(UnknownSpeakerError):
        resolve_speaker_id("3", multi)
    with pytest.raises(UnknownSpeakerError):
        resolve_speaker_id("nobody", multi)
    assert resolve_speaker_id(None, joe_info) is None
    with pytest.raises(UnknownSpeakerError) as err:
        resolve_speaker_id("0", joe_info)
    assert err.value.placeholders == {"speaker": "0", "voice": JOE}


# -- sentences and WAV -------------------------------------------------------------------------


def test_sentence_buffer_streams_complete_sentences() -> None:
    """Sentences are handed out as soon as they end, whatever the chunking."""
    buf = SentenceBuffer()
    assert buf.add("Hello the") == []
    assert buf.add("re. How are") == ["Hello there."]
    assert buf.add(' you?" she asked. Fine') == ['How are you?"', "she asked."]
    assert buf.add("\n\nNew paragraph") == ["Fine"]
    assert buf.flush() == "New paragraph"
    assert buf.flush() is None


def test_wav_header_complete_and_streaming(tmp_path: Path) -> None:
    """Complete headers are read by Python's wave module; streaming ones have zero sizes."""
    pcm = bytes(range(256)) * 4
    data = wav_header(22050, len(pcm)) + pcm
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (22050, 1, 2)
        assert w.readframes(w.getnframes()) == pcm
    streaming = wav_header(16000)
    assert len(streaming) == 44
    assert streaming[4:8] == bytes(4)
    assert streaming[40:44] == bytes(4)


# -- synthesis with the real voice -------------------------------------------------------------


async def test_speech_is_real(engine: PiperEngine) -> None:
    """A sentence becomes a few seconds of non-silent 22050 Hz audio."""
    wav = await speak(engine, ONE)
    assert wav.sample_rate == 22050
    assert wav.rms > 0.05
    assert 1.0 < wav.duration < 4.0


async def test_speed_shortens(engine: PiperEngine) -> None:
    """speed 1.5 makes the same sentence measurably shorter."""
    normal = await speak(engine, THREE, speed=1.0, noise_w_scale=0.0)
    fast = await speak(engine, THREE, speed=1.5, noise_w_scale=0.0)
    assert fast.duration < normal.duration * 0.8


async def test_gain_louder(engine: PiperEngine) -> None:
    """gain 2.0 makes the audio louder."""
    normal = await speak(engine, ONE, gain=1.0)
    loud = await speak(engine, ONE, gain=2.0)
    assert loud.rms > normal.rms * 1.4


async def test_leading_silence(engine: PiperEngine) -> None:
    """leading_silence adds that much silence before the first word."""
    normal = await speak(engine, ONE, noise_w_scale=0.0)
    padded = await speak(engine, ONE, leading_silence=0.5, noise_w_scale=0.0)
    added = padded.leading_silence() - normal.leading_silence()
    assert 0.45 < added < 0.55
    assert abs(padded.duration - normal.duration - 0.5) < 0.15


async def test_sentence_silence(engine: PiperEngine) -> None:
    """sentence_silence adds a pause after each of the three sentences."""
    normal = await speak(engine, THREE, noise_w_scale=0.0)
    paused = await speak(engine, THREE, sentence_silence=0.4, noise_w_scale=0.0)
    assert 1.0 < paused.duration - normal.duration < 1.5


async def test_noise_options_change_audio(engine: PiperEngine) -> None:
    """noise_scale / noise_w_scale reach the model (0 noise is deterministic)."""
    quiet_a = await speak(engine, ONE, noise_scale=0.0, noise_w_scale=0.0)
    quiet_b = await speak(engine, ONE, noise_scale=0.0, noise_w_scale=0.0)
    noisy = await speak(engine, ONE, noise_scale=1.2, noise_w_scale=1.2)
    assert quiet_a.samples.tobytes() == quiet_b.samples.tobytes()
    assert noisy.samples.tobytes() != quiet_a.samples.tobytes()


async def test_unknown_voice_and_speaker(engine: PiperEngine) -> None:
    """Requests for missing voices or speakers fail before taking a slot."""
    with pytest.raises(UnknownVoiceError):
        await engine.async_start(SynthesisOptions(voice="xx_XX-none-low"), JOE)
    with pytest.raises(UnknownSpeakerError):
        await engine.async_start(SynthesisOptions(speaker="1"), JOE)
    assert engine.active_requests == 0


async def test_streaming_input(engine: PiperEngine) -> None:
    """Text arriving in pieces is spoken sentence by sentence; the first audio comes early."""
    events: list[str] = []

    async def text() -> AsyncGenerator[str]:
        for chunk in ("The garage door ", "is open. The kitchen ", "light is on. Dinner is ready."):
            events.append("text")
            yield chunk
        events.append("text-end")

    job = await engine.async_start(SynthesisOptions(), JOE)
    chunks = []
    async for pcm in job.stream(text()):
        events.append("audio")
        chunks.append(pcm)
    # First sentence's audio is out before the third text chunk is even asked for.
    assert events.index("audio") < events.index("text-end")
    assert events[:3] == ["text", "text", "audio"]
    assert len(chunks) == 3
    assert engine.active_requests == 0


async def test_stream_too_long_and_empty(engine: PiperEngine) -> None:
    """Streamed text over the limit stops with an error; empty text is an error too."""
    engine.max_message_chars = 30
    job = await engine.async_start(SynthesisOptions(), JOE)
    with pytest.raises(InvalidMessageError):
        async for _ in job.stream(text_stream("One sentence here. ", "And a second one. ")):
            pass
    job = await engine.async_start(SynthesisOptions(), JOE)
    with pytest.raises(InvalidMessageError):
        async for _ in job.stream(text_stream("  ", "\n")):
            pass
    assert engine.active_requests == 0


async def test_consumer_leaving_stops_synthesis(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the stream after the first sentence stops the remaining ones."""
    inferred: list[int] = []
    real_infer = engine.infer

    def counting_infer(job: engine_mod.SynthesisJob, ids: list[int]) -> bytes:
        inferred.append(len(ids))
        return real_infer(job, ids)

    monkeypatch.setattr(engine, "infer", counting_infer)
    job = await engine.async_start(SynthesisOptions(), JOE)
    stream = job.stream(text_stream(" ".join([ONE] * 6)))
    first = await anext(stream)
    assert first
    await stream.aclose()
    assert len(inferred) == 1
    assert engine.active_requests == 0


async def test_unstarted_stream_releases_slot(engine: PiperEngine) -> None:
    """A stream that is dropped without ever being read gives its slot back."""
    job = await engine.async_start(SynthesisOptions(), JOE)
    assert engine.active_requests == 1
    stream = job.stream(text_stream(ONE))
    del stream
    assert engine.active_requests == 0


async def test_burst_waits_in_a_bounded_fifo(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 at once: 4 in flight, those that fit the waiting bound wait and are admitted in
    arrival order, only the rest is refused as busy; nothing is lost."""
    engine.max_requests = 4
    message = "Request number 100."
    engine.max_queued_chars = 10 * len(message)
    peak = 0
    admitted: list[int] = []  # in the order the engine admitted them
    load = engine.async_load_voice

    async def load_after_admission(key: str) -> LoadedVoice:
        # Called right after a request's admission, in its own task (named after it).
        task = asyncio.current_task()
        if task is not None and task.get_name().isdigit():
            admitted.append(int(task.get_name()))
        return await load(key)

    monkeypatch.setattr(engine, "async_load_voice", load_after_admission)

    async def one(i: int) -> bytes | EngineBusyError:
        nonlocal peak
        task = asyncio.current_task()
        assert task is not None
        task.set_name(str(i))
        text = f"Request number {100 + i}."
        try:
            job = await engine.async_start(SynthesisOptions(), JOE, characters=len(text))
        except EngineBusyError as err:
            return err
        peak = max(peak, engine.active_requests)
        return await job.synthesize(text)

    results = await asyncio.gather(*(asyncio.create_task(one(i)) for i in range(200)))
    served = [r for r in results if isinstance(r, bytes)]
    busy = [r for r in results if isinstance(r, EngineBusyError)]
    assert len(served) == 4 + 10  # in flight + exactly what fits the waiting bound
    assert len(busy) == 200 - 14
    assert admitted == list(range(14))  # FIFO
    assert all(len(pcm) > 22050 for pcm in served)  # at least half a second of speech each
    assert peak <= 4
    assert engine.queued == 10
    assert engine.rejected == len(busy)
    assert busy[0].placeholders == {
        "active": "4",
        "waiting": str(10 * len(message)),
        "max": str(10 * len(message)),
    }
    assert (engine.active_requests, engine.waiting_requests, engine.waiting_chars) == (0, 0, 0)
    # After the burst the engine serves again.
    assert (await speak(engine, ONE)).rms > 0.05


async def test_waiting_request_that_goes_away(engine: PiperEngine) -> None:
    """A waiting request cancelled by its caller leaves the queue; its turn is not lost."""
    engine.max_requests = 1
    first = await engine.async_start(SynthesisOptions(), JOE, characters=10)
    gone = asyncio.ensure_future(engine.async_start(SynthesisOptions(), JOE, characters=10))
    later = asyncio.ensure_future(engine.async_start(SynthesisOptions(), JOE, characters=10))
    await asyncio.sleep(0)
    assert (engine.waiting_requests, engine.waiting_chars) == (2, 20)
    gone.cancel()
    await asyncio.wait({gone})
    assert (engine.waiting_requests, engine.waiting_chars) == (1, 10)
    first.release()
    job = await later
    assert engine.active_requests == 1
    assert await job.synthesize(ONE)
    assert (engine.active_requests, engine.waiting_requests) == (0, 0)


async def test_close_wakes_waiting_requests(engine: PiperEngine) -> None:
    """Stopping the engine fails the requests still waiting instead of leaving them hanging."""
    engine.max_requests = 1
    await engine.async_start(SynthesisOptions(), JOE)
    waiting = asyncio.ensure_future(engine.async_start(SynthesisOptions(), JOE))
    await asyncio.sleep(0)
    await engine.async_close()
    with pytest.raises(SynthesisError):
        await waiting


async def test_short_message_interleaves_with_long_ones(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind 8 long messages a short one is spoken after one sentence of each, not after them.

    Ordering, not timing: the short message's audio comes before any long message is done.
    """
    events: list[str] = []
    long_text = " ".join(f"This is sentence number {n} of a long message." for n in range(6))

    async def long_one(index: int, started: asyncio.Event) -> None:
        job = await engine.async_start(SynthesisOptions(), JOE, characters=len(long_text))
        async for _ in job.stream(text_stream(long_text)):
            started.set()
        events.append(f"long {index} done")

    starts = [asyncio.Event() for _ in range(8)]
    tasks = [asyncio.ensure_future(long_one(i, started)) for i, started in enumerate(starts)]
    for started in starts:  # every long message is speaking
        await started.wait()
    job = await engine.async_start(SynthesisOptions(), JOE, characters=len(ONE))
    async for _ in job.stream(text_stream(ONE)):
        events.append("short audio")
        break
    await asyncio.gather(*tasks)
    assert events[0] == "short audio"
    assert engine.active_requests == 0


async def test_progress_tells_busy_from_stalled(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine records when its worker last started or finished work."""
    await engine.async_load_voice(JOE)
    assert not engine.stalled(60)
    engine.progress_at -= 120  # nothing happened for two minutes
    assert engine.stalled(60)
    await speak(engine, ONE)
    assert not engine.stalled(60)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The door\x00 is open.",
        "A lone \ud800 surrogate.",
        "Bell\x07 and\x1b[0m escape.",
        "Tab\tand\rreturn.",
    ],
)
async def test_control_characters_are_cleaned(engine: PiperEngine, text: str) -> None:
    """Control characters and lone surrogates never reach espeak-ng: the text is spoken."""
    wav = await speak(engine, text)
    assert wav.rms > 0.05
    assert wav.duration > 0.8


def test_clean_and_validate_message() -> None:
    """Cleaning keeps the length and newlines; what is left empty is refused."""
    assert clean_message("a\x00b\nc\td") == "a b\nc d"
    assert clean_message("plain text") == "plain text"
    assert validate_message("Hi\x00 there.") == "Hi  there."
    with pytest.raises(InvalidMessageError):
        validate_message("\x00\x01 \x02")


async def test_nothing_to_speak(engine: PiperEngine) -> None:
    """Punctuation only is the caller's mistake (a typed error), not an engine failure."""
    job = await engine.async_start(SynthesisOptions(), JOE)
    with pytest.raises(NothingToSpeakError):
        await job.synthesize("...")
    assert engine.active_requests == 0


def test_check_input_without_engine(joe_info: VoiceInfo) -> None:
    """The one input check needs no engine: message, parsed options, other voices, speakers."""
    voices = {JOE: joe_info}
    assert check_input("Hi\x00.", SynthesisOptions(speed=1.2), voices, JOE) == "Hi ."
    assert (
        check_input(None, SynthesisOptions(), {}, JOE) is None
    )  # the entry's voice may be missing
    for message, options, error in (
        ("", {}, InvalidMessageError),
        (" \n ", {}, InvalidMessageError),
        ("x" * 5001, {}, InvalidMessageError),
        ("Hi.", {"voice": "xx_XX-none-low"}, UnknownVoiceError),
        ("Hi.", {"speaker": "1"}, UnknownSpeakerError),
        ("Hi.", {"speed": 9}, InvalidOptionError),
    ):
        with pytest.raises(error):
            check_input(message, parse_synthesis(options), voices, JOE)
    with pytest.raises(UnknownVoiceError):
        check_input("Hi.", SynthesisOptions(voice="xx_XX-none-low"), {}, JOE)


def test_long_sentences_are_cut() -> None:
    """A sentence over the limit is cut at a clause, else a word; streamed text too."""
    clause = "word " * 30 + "and more, " + "then " * 10 + "end."
    pieces = cut_long(clause, limit=200)
    assert pieces[0].endswith("more,")
    assert " ".join(pieces) == clause.strip()
    words = cut_long("x" * 50 + " " + "y" * 300, limit=100)
    assert all(len(p) <= 100 for p in words)
    assert "".join(words).replace(" ", "") == "x" * 50 + "y" * 300
    buf = SentenceBuffer(limit=100)
    out = buf.add("word " * 50)  # 250 characters, no sentence end yet
    assert out
    assert all(len(piece) <= 100 for piece in out)
    assert (buf.flush() or "").startswith("word")


# -- voices in memory --------------------------------------------------------------------------


async def test_lru_of_loaded_voices(tmp_path: Path, joe_files: tuple[Path, Path]) -> None:
    """A loaded voice is shared; past the limit the least recently used one is dropped."""
    infos = {}
    for key in ("en_US-a-medium", "en_US-b-medium"):
        shutil.copyfile(joe_files[0], tmp_path / f"{key}.onnx")
        shutil.copyfile(joe_files[1], tmp_path / f"{key}.onnx.json")
        infos[key] = read_voice_info(tmp_path / f"{key}.onnx", tmp_path / f"{key}.onnx.json")
    eng = PiperEngine(infos, max_loaded_voices=1)
    try:
        first = await eng.async_load_voice("en_US-a-medium")
        assert await eng.async_load_voice("en_US-a-medium") is first
        await eng.async_load_voice("en_US-b-medium")
        assert eng.loaded_voices == ["en_US-b-medium"]
        assert await eng.async_load_voice("en_US-a-medium") is not first
        eng.set_voices({"en_US-b-medium": infos["en_US-b-medium"]})
        assert eng.loaded_voices == []
        assert set(eng.voices) == {"en_US-b-medium"}
    finally:
        await eng.async_close()


async def test_corrupt_model(tmp_path: Path, joe_files: tuple[Path, Path]) -> None:
    """A corrupt model file raises a typed error naming the voice."""
    (tmp_path / "en_US-bad-low.onnx").write_bytes(b"\x00garbage" * 100)
    shutil.copyfile(joe_files[1], tmp_path / "en_US-bad-low.onnx.json")
    info = read_voice_info(tmp_path / "en_US-bad-low.onnx", tmp_path / "en_US-bad-low.onnx.json")
    eng = PiperEngine({info.key: info})
    try:
        with pytest.raises(VoiceLoadError) as err:
            await eng.async_start(SynthesisOptions(), info.key)
        assert err.value.placeholders["voice"] == "en_US-bad-low"
        assert eng.active_requests == 0
    finally:
        await eng.async_close()


async def test_inference_failure_is_typed(tmp_path: Path, joe_files: tuple[Path, Path]) -> None:
    """A model that fails at inference (ids beyond its vocabulary) raises SynthesisError."""
    config = json.loads(joe_files[1].read_text())
    config["phoneme_id_map"] = {k: [100000] for k in config["phoneme_id_map"]}
    shutil.copyfile(joe_files[0], tmp_path / "en_US-odd-medium.onnx")
    (tmp_path / "en_US-odd-medium.onnx.json").write_text(json.dumps(config))
    info = read_voice_info(
        tmp_path / "en_US-odd-medium.onnx", tmp_path / "en_US-odd-medium.onnx.json"
    )
    eng = PiperEngine({info.key: info})
    try:
        job = await eng.async_start(SynthesisOptions(), info.key)
        with pytest.raises(SynthesisError):
            await job.synthesize(ONE)
        assert eng.active_requests == 0
    finally:
        await eng.async_close()


async def test_closed_engine_refuses_work(engine: PiperEngine) -> None:
    """After close no new worker threads start (a late request fails cleanly)."""
    await engine.async_close()
    with pytest.raises(SynthesisError):
        await engine.async_load_voice(JOE)


async def test_piper_missing(joe_info: VoiceInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an importable piper the engine says so with a typed error."""
    monkeypatch.setitem(sys.modules, "piper", None)
    eng = PiperEngine({JOE: joe_info})
    try:
        with pytest.raises(PiperUnavailableError):
            await eng.async_load_voice(JOE)
    finally:
        await eng.async_close()


def test_check_voice_files(tmp_path: Path, joe_files: tuple[Path, Path]) -> None:
    """A voice loads (config parsed, model opened) or the check says why not."""
    check_voice_files(*joe_files)
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(joe_files[0].read_bytes()[:100_000])
    with pytest.raises(VoiceLoadError, match="model cannot be opened"):
        check_voice_files(truncated, joe_files[1])
    broken = tmp_path / "t.onnx.json"
    broken.write_text('{"audio": ')
    with pytest.raises(VoiceLoadError, match="config cannot be used"):
        check_voice_files(joe_files[0], broken)


async def test_release_from_another_thread(engine: PiperEngine) -> None:
    """A slot given back off the loop (a dropped job's finalizer) still wakes the next one."""
    engine.max_requests = 1
    first = await engine.async_start(SynthesisOptions(), JOE)
    waiting = asyncio.ensure_future(engine.async_start(SynthesisOptions(), JOE))
    await asyncio.sleep(0)
    assert engine.waiting_requests == 1
    await asyncio.to_thread(first.release)
    job = await asyncio.wait_for(waiting, 30)
    assert engine.active_requests == 1
    job.release()
    await asyncio.sleep(0)
    assert engine.active_requests == 0
