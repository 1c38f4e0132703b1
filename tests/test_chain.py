"""Local first, never silent: the engine chain with real Piper and test engines in real HA."""

from collections.abc import AsyncGenerator
from datetime import timedelta
import threading
from typing import Any

from homeassistant.components import tts
from homeassistant.components.tts import DATA_COMPONENT, DATA_TTS_MANAGER
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts.chain import (
    CircuitBreaker,
    NoAudioError,
    TextTee,
    async_purge_tts_cache,
    first_then_rest,
    scrub,
)
from custom_components.alicia_tts.const import (
    CONF_BREAKER_COOLDOWN,
    CONF_BREAKER_THRESHOLD,
    CONF_ENGINE,
    CONF_FALLBACK_ENGINES,
    CONF_FIRST_AUDIO_TIMEOUT,
    CONF_VOICE,
    DOMAIN,
    ISSUE_FALLBACK_MISSING,
    ISSUE_PIPER_UNAVAILABLE,
)
from custom_components.alicia_tts.engine import PiperEngine, SynthesisJob
from custom_components.alicia_tts.options import SynthesisOptions
from custom_components.alicia_tts.production import async_create_audio

from .audio import parse_wav
from .conftest import JOE, entity_state
from .engines import MP3

ENTITY = "tts.alicia_tts_joe_en_us_medium"
MESSAGE = "The front door is open. Please close it."


async def setup_alicia(hass: HomeAssistant, **options: Any) -> MockConfigEntry:
    """The integration with the joe voice and the given chain options."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Joe (en-US, medium)",
        data={CONF_VOICE: JOE},
        options={CONF_FIRST_AUDIO_TIMEOUT: 2.0, **options},
        unique_id=JOE,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def speak(hass: HomeAssistant, message: str = MESSAGE, **options: Any) -> tuple[str, bytes]:
    """Audio through HA's tts (media source), no cache."""
    return await tts.async_get_media_source_audio(
        hass,
        tts.generate_media_source_id(
            hass, message, ENTITY, "en-US", options={"preferred_format": "wav", **options},
            cache=False,
        ),
    )  # fmt: skip


def break_local(engine: PiperEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make local inference raise; returns the list of attempts."""
    attempts: list[int] = []

    def broken(job: SynthesisJob, ids: list[int]) -> bytes:
        attempts.append(len(ids))
        raise RuntimeError("onnxruntime: bad allocation")

    monkeypatch.setattr(engine, "infer", broken)
    return attempts


def alicia_entity(hass: HomeAssistant) -> Any:
    """Our TTS entity as HA's tts component holds it."""
    entity = hass.data[DATA_COMPONENT].get_entity(ENTITY)
    assert entity is not None
    return entity


def local_of(entry: MockConfigEntry) -> PiperEngine:
    engine = entry.runtime_data.engine
    assert isinstance(engine, PiperEngine)
    return engine


# -- pure parts --------------------------------------------------------------------------------


def test_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 60, clock=lambda: now[0])
    assert breaker.state == "closed"
    assert not breaker.record_failure()
    assert breaker.record_failure()  # opened now
    assert breaker.state == "open"
    assert not breaker.record_failure()  # already open
    now[0] = 61
    assert breaker.state == "half_open"
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.failures == 0


async def test_text_tee_replays() -> None:
    async def source() -> AsyncGenerator[str]:
        for chunk in ("a", "b", "c"):
            yield chunk

    tee = TextTee(source())
    first = tee.replay()
    assert await anext(first) == "a"
    assert [c async for c in tee.replay()] == ["a", "b", "c"]  # replays, then reads the rest
    assert tee.characters == 3
    assert await tee.read_all() == "abc"


def test_scrub_removes_message() -> None:
    message = "The front door has been open for a long time, please close it"
    error = f"No TTS from tts.x for '{message[:32]}…' and '{message}'"
    assert message[:10] not in scrub(error, message)
    assert scrub("timeout", "") == "timeout"


# -- rules -------------------------------------------------------------------------------------


async def test_local_first(hass: HomeAssistant, engines: dict[str, Any]) -> None:
    """Healthy local speaks; fallback engines are not asked."""
    await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    extension, data = await speak(hass)
    assert extension == "wav"
    assert parse_wav(data).sample_rate == 22050
    assert engines["working"].messages == []
    assert entity_state(hass, "sensor.alicia_tts_active_engine") == "local"
    assert entity_state(hass, "binary_sensor.alicia_tts_local_engine_problem") == "off"
    assert entity_state(hass, "sensor.alicia_tts_local_syntheses") == "1"


async def test_local_unavailable_uses_fallback(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    engines: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """piper-tts not importable: no error, the fallback speaks, a repair issue explains."""
    import sys

    monkeypatch.setitem(sys.modules, "piper", None)
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    assert entry.runtime_data.engine is None
    assert entity_state(hass, ENTITY) != "unavailable"
    extension, data = await speak(hass)
    # HA converts the fallback's MP3 to the WAV asked for.
    assert extension == "wav"
    assert parse_wav(data).rms > 0.05
    assert engines["working"].messages == [MESSAGE]
    assert entity_state(hass, "sensor.alicia_tts_active_engine") == "tts.working"
    assert entity_state(hass, "binary_sensor.alicia_tts_local_engine_problem") == "on"
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_PIPER_UNAVAILABLE) is not None


async def test_local_error_then_fallback(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local raises: the next engine that works speaks; failures are counted."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.failing", "tts.working"]})
    attempts = break_local(local_of(entry), monkeypatch)
    extension, data = await speak(hass)
    assert extension == "wav"
    assert parse_wav(data).rms > 0.05
    assert attempts
    assert engines["failing"].messages == [MESSAGE]
    assert engines["working"].messages == [MESSAGE]
    stats = entry.runtime_data.chain.stats
    assert stats["local"].failures == 1
    assert stats["tts.failing"].failures == 1
    assert stats["tts.working"].calls == 1
    assert stats["tts.working"].characters == len(MESSAGE)
    assert entity_state(hass, "sensor.alicia_tts_engine_failures") == "2"
    assert entity_state(hass, "sensor.alicia_tts_fallback_syntheses") == "1"
    # Recorded errors never contain the message text.
    assert all(MESSAGE[:20] not in e.error for e in entry.runtime_data.chain.errors)


async def test_slow_local_times_out(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No first local audio within the timeout: the fallback speaks."""
    entry = await setup_alicia(
        hass, **{CONF_FALLBACK_ENGINES: ["tts.working"], CONF_FIRST_AUDIO_TIMEOUT: 0.5}
    )
    engine = local_of(entry)
    gate = threading.Event()
    real_infer = engine.infer

    def stuck(job: SynthesisJob, ids: list[int]) -> bytes:
        gate.wait(10)
        return real_infer(job, ids)

    monkeypatch.setattr(engine, "infer", stuck)
    try:
        extension, _ = await speak(hass)
    finally:
        gate.set()
    assert extension == "wav"
    assert engines["working"].messages == [MESSAGE]
    assert "no audio within 0.5 s" in entry.runtime_data.chain.errors[-1].error


async def test_failure_after_audio_fails_cleanly(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once audio reached the listener, a later failure fails the request: no mixed voices."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    engine = local_of(entry)
    real_infer = engine.infer
    calls: list[int] = []

    def second_fails(job: SynthesisJob, ids: list[int]) -> bytes:
        calls.append(1)
        if len(calls) >= 2:
            raise RuntimeError("out of memory")
        return real_infer(job, ids)

    monkeypatch.setattr(engine, "infer", second_fails)
    stream = tts.async_create_stream(hass, ENTITY, "en-US", {"preferred_format": "wav"})
    stream.async_set_message(MESSAGE)
    with pytest.raises(HomeAssistantError):
        async for _ in stream.async_stream_result():
            pass
    assert engines["working"].messages == []
    assert entry.runtime_data.chain.stats["local"].failures == 1


async def test_breaker_opens_probes_and_closes(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After N local failures local is skipped; after the cool-down a probe brings it back."""
    entry = await setup_alicia(
        hass,
        **{
            CONF_FALLBACK_ENGINES: ["tts.working"],
            CONF_BREAKER_THRESHOLD: 2,
            CONF_BREAKER_COOLDOWN: 60,
        },
    )
    chain = entry.runtime_data.chain
    engine = local_of(entry)
    attempts = break_local(engine, monkeypatch)
    await speak(hass, "One.")
    await speak(hass, "Two.")
    assert chain.breaker.state == "open"
    assert entity_state(hass, "binary_sensor.alicia_tts_local_engine_problem") == "on"
    tries = len(attempts)
    await speak(hass, "Three.")
    assert len(attempts) == tries  # local skipped while open
    assert engines["working"].messages == ["One.", "Two.", "Three."]

    # The probe after the cool-down still fails: the breaker stays open for another round.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await hass.async_block_till_done()
    assert len(attempts) > tries
    assert chain.breaker.is_open
    assert chain.errors[-1].error.startswith("probe:")

    # Local recovers: the next probe closes the breaker and local speaks again.
    monkeypatch.undo()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=130))
    await hass.async_block_till_done()
    assert chain.breaker.state == "closed"
    assert entity_state(hass, "binary_sensor.alicia_tts_local_engine_problem") == "off"
    extension, _ = await speak(hass, "Four.")
    assert extension == "wav"
    assert engines["working"].messages == ["One.", "Two.", "Three."]
    assert entity_state(hass, "sensor.alicia_tts_active_engine") == "local"


async def test_forced_engine(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine: fallback skips a healthy local; engine: local never falls back."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    await speak(hass, engine="fallback")
    assert engines["working"].messages == [MESSAGE]
    break_local(local_of(entry), monkeypatch)
    with pytest.raises(HomeAssistantError):
        await speak(hass, "Local only.", engine="local")
    assert engines["working"].messages == [MESSAGE]


async def test_preference_fallback_first(hass: HomeAssistant, engines: dict[str, Any]) -> None:
    """With the fallback preference the chain's engines speak before local."""
    await setup_alicia(
        hass, **{CONF_FALLBACK_ENGINES: ["tts.failing", "tts.working"], CONF_ENGINE: "fallback"}
    )
    await speak(hass)
    assert engines["failing"].messages == [MESSAGE]
    assert engines["working"].messages == [MESSAGE]


async def test_all_engines_fail(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every engine failing: a translated error, nothing left running, active engine none."""
    entry = await setup_alicia(
        hass,
        **{CONF_FALLBACK_ENGINES: ["tts.failing", "tts.slow"], CONF_FIRST_AUDIO_TIMEOUT: 0.3},
    )
    break_local(local_of(entry), monkeypatch)
    stream = tts.async_create_stream(hass, ENTITY, "en-US", {"preferred_format": "wav"})
    stream.async_set_message(MESSAGE)
    with pytest.raises(HomeAssistantError):
        async for _ in stream.async_stream_result():
            pass
    entity = hass.data[DATA_COMPONENT].get_entity(ENTITY)
    assert entity is not None
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio(MESSAGE, "en-US", {})
    assert err.value.translation_key == "all_engines_failed"
    assert entity_state(hass, "sensor.alicia_tts_active_engine") == "none"
    engines["slow"].release.set()
    await hass.async_block_till_done()


async def test_streaming_fallback_gets_streamed_text(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text that local consumed before failing is replayed to a streaming fallback engine."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.streaming"]})
    break_local(local_of(entry), monkeypatch)

    async def text() -> AsyncGenerator[str]:
        for chunk in ("The door ", "is open. ", "Close it."):
            yield chunk

    stream = tts.async_create_stream(hass, ENTITY, "en-US", {"preferred_format": "wav"})
    stream.async_set_message_stream(text())
    data = b"".join([c async for c in stream.async_stream_result()])
    assert "".join(engines["streaming"].messages) == "The door is open. Close it."
    assert parse_wav(data).duration > 0.5


async def test_speaker_audio_from_fallback(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Speakers get the fallback's own MP3, cached under the fallback's key, not local's."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    break_local(local_of(entry), monkeypatch)
    item = await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3")
    await item.buffer.wait_done()
    assert item.source == "tts.working"
    assert item.extension == "mp3"
    assert item.buffer.getvalue() == MP3
    assert item.duration is not None
    assert 1.3 < item.duration < 1.7
    # Healthy again: local audio is made, not the cached fallback audio.
    monkeypatch.undo()
    local = await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3")
    await local.buffer.wait_done()
    assert local.source == "local"
    assert local.cache_key != item.cache_key
    again = await async_create_audio(
        hass, entry, MESSAGE, SynthesisOptions(), "mp3", forced="fallback"
    )
    assert again.buffer.done  # the fallback's own cache entry
    assert again.buffer.getvalue() == MP3


async def test_wav_speaker_audio_waits_for_speech_too(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WAV header is not speech: local failing before its first audio is skipped for WAV too."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    break_local(local_of(entry), monkeypatch)
    item = await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "wav")
    await item.buffer.wait_done()
    assert item.source == "tts.working"
    assert item.buffer.getvalue() == MP3  # the fallback's own format
    assert entry.runtime_data.chain.stats["local"].failures == 1
    monkeypatch.undo()
    local = await async_create_audio(hass, entry, "Back again.", SynthesisOptions(), "wav")
    await local.buffer.wait_done()
    assert (local.source, local.extension) == ("local", "wav")
    assert parse_wav(local.buffer.getvalue()).duration > 0.5


async def test_fallback_audio_purged_from_ha_cache(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HA caches fallback audio under our key; once local speaks again it is purged."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    manager = hass.data[DATA_TTS_MANAGER]
    break_local(local_of(entry), monkeypatch)
    media_id = tts.generate_media_source_id(
        hass, MESSAGE, ENTITY, "en-US", options={"preferred_format": "mp3"}, cache=True
    )
    await tts.async_get_media_source_audio(hass, media_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    ours = [k for k in manager.mem_cache if k.endswith(ENTITY)]
    assert ours
    assert any(k.endswith(ENTITY) for k in manager.file_cache)
    monkeypatch.undo()
    await speak(hass, "Back to local.")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert not any(k in manager.mem_cache for k in ours)
    assert not any(k.endswith(ENTITY) for k in manager.file_cache)
    # The same request is now synthesized locally.
    _, data = await tts.async_get_media_source_audio(hass, media_id)
    assert data != MP3
    await async_purge_tts_cache(hass, "tts.nothing_cached")


async def test_missing_fallback_engine(
    hass: HomeAssistant, issue_registry: ir.IssueRegistry, engines: dict[str, Any]
) -> None:
    """A fallback engine that does not exist: a repair issue, and it is skipped."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.gone", "tts.working"]})
    issue = issue_registry.async_get_issue(DOMAIN, f"{ISSUE_FALLBACK_MISSING}_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders == {"engines": "tts.gone", "entry": entry.title}
    await speak(hass, engine="fallback")
    assert engines["working"].messages == [MESSAGE]
    assert entry.runtime_data.chain.stats["tts.gone"].failures == 1


async def test_speaker_path_skips_failing_and_slow_engines(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """For speakers too: a failing engine and a slow one are skipped; the next one speaks."""
    entry = await setup_alicia(
        hass,
        **{
            CONF_FALLBACK_ENGINES: ["tts.failing", "tts.slow", "tts.working"],
            CONF_FIRST_AUDIO_TIMEOUT: 0.3,
        },
    )
    break_local(local_of(entry), monkeypatch)
    item = await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3")
    await item.buffer.wait_done()
    assert item.source == "tts.working"
    errors = [(e.engine, e.error) for e in entry.runtime_data.chain.errors]
    assert [engine for engine, _ in errors] == ["local", "tts.failing", "tts.slow"]
    assert all(MESSAGE[:20] not in error for _, error in errors)
    engines["slow"].release.set()
    await hass.async_block_till_done()


async def test_speaker_path_all_fail(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No engine for speakers: a translated error; with one engine only, its own error."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.failing"]})
    break_local(local_of(entry), monkeypatch)
    with pytest.raises(HomeAssistantError) as err:
        await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3")
    assert err.value.translation_key == "all_engines_failed"
    with pytest.raises(HomeAssistantError) as err:
        await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3", forced="local")
    assert err.value.translation_key != "all_engines_failed"


# -- load, faults and bad input (issue 20) -------------------------------------------------


async def test_busy_is_not_an_engine_failure(hass: HomeAssistant, engines: dict[str, Any]) -> None:
    """A local engine refusing requests as busy never opens the breaker: once it has room
    again, local speaks (the fallback only covered the busy moments)."""
    entry = await setup_alicia(
        hass, **{CONF_FALLBACK_ENGINES: ["tts.working"], CONF_BREAKER_THRESHOLD: 2}
    )
    engine = local_of(entry)
    chain = entry.runtime_data.chain
    engine.max_requests = 0  # nothing admitted, nothing may wait
    engine.max_queued_chars = 0
    for n in range(4):
        await speak(hass, f"Busy number {n}.")
    assert chain.breaker.state == "closed"
    assert chain.stats["local"].failures == 0
    assert chain.stats["local"].busy == 4
    assert len(engines["working"].messages) == 4
    engine.max_requests = 16
    extension, _ = await speak(hass, "Room again.")
    assert extension == "wav"
    assert engines["working"].messages[-1] != "Room again."
    assert entity_state(hass, "sensor.alicia_tts_active_engine") == "local"


async def test_busy_without_fallback_says_busy(hass: HomeAssistant, setup_ha: None) -> None:
    """With no other engine the caller gets the translated busy error, not 'no engine'."""
    entry = await setup_alicia(hass)
    engine = local_of(entry)
    engine.max_requests = 0
    engine.max_queued_chars = 0
    with pytest.raises(HomeAssistantError) as err:
        await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3")
    assert err.value.translation_key == "engine_busy"
    assert set(err.value.translation_placeholders or {}) == {"active", "waiting", "max"}
    assert "no engine configured" not in str(err.value)
    entity = alicia_entity(hass)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio(MESSAGE, "en-US", {})
    assert err.value.translation_key == "engine_busy"
    assert entry.runtime_data.chain.stats["local"].failures == 0


async def test_breaker_open_without_fallback_still_tries_local(
    hass: HomeAssistant, setup_ha: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no fallback engine an open breaker does not turn every request into an error."""
    entry = await setup_alicia(hass, **{CONF_BREAKER_THRESHOLD: 1})
    break_local(local_of(entry), monkeypatch)
    with pytest.raises(HomeAssistantError):
        await speak(hass, "Fails once.")
    assert entry.runtime_data.chain.breaker.is_open
    monkeypatch.undo()
    extension, _ = await speak(hass, "Works again.")
    assert extension == "wav"


async def test_control_characters_never_move_text_to_the_fallback(
    hass: HomeAssistant, engines: dict[str, Any]
) -> None:
    """Messages with NUL (and other control characters) are spoken by local Piper; they never
    count as failures, so the breaker stays closed and the cloud engine gets nothing."""
    entry = await setup_alicia(
        hass, **{CONF_FALLBACK_ENGINES: ["tts.working"], CONF_BREAKER_THRESHOLD: 3}
    )
    for text in ("Door\x00 open.", "Window\x00 open.", "Gate\x00 open.", "Bell\x07 rang."):
        extension, data = await speak(hass, text)
        assert extension == "wav"
        assert parse_wav(data).rms > 0.05
    item = await async_create_audio(hass, entry, "Lamp\x00 on.", SynthesisOptions(), "mp3")
    assert item.source == "local"
    await item.buffer.wait_done()
    assert item.buffer.error is None
    chain = entry.runtime_data.chain
    assert chain.breaker.state == "closed"
    assert chain.stats["local"].failures == 0
    assert engines["working"].messages == []


async def test_nothing_to_speak_is_the_callers_error(
    hass: HomeAssistant, engines: dict[str, Any]
) -> None:
    """Text Piper cannot pronounce is refused, not counted, not sent to the fallback."""
    entry = await setup_alicia(
        hass, **{CONF_FALLBACK_ENGINES: ["tts.working"], CONF_BREAKER_THRESHOLD: 2}
    )
    for _ in range(3):
        with pytest.raises(HomeAssistantError) as err:
            await async_create_audio(hass, entry, "...", SynthesisOptions(), "mp3")
        assert err.value.translation_key == "nothing_to_speak"
        with pytest.raises(HomeAssistantError) as err:
            await speak(hass, "...")
    chain = entry.runtime_data.chain
    assert chain.breaker.state == "closed"
    assert chain.stats["local"].failures == 0
    assert engines["working"].messages == []


async def test_limit_on_ha_tts_path_with_local_skipped(
    hass: HomeAssistant, engines: dict[str, Any], hass_client: ClientSessionGenerator
) -> None:
    """HA's tts_get_url with local skipped: 100,000 characters never reach the fallback."""
    await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"], CONF_ENGINE: "fallback"})
    client = await hass_client()
    resp = await client.post(
        "/api/tts_get_url",
        json={"engine_id": ENTITY, "message": "A" * 100_000, "cache": False},
    )
    # HA hands out the URL; fetching it fails, as the text is refused before any engine runs.
    assert resp.status == 200
    url = (await resp.json())["path"]
    audio = await client.get(url)
    assert audio.status >= 400 or not await audio.read()
    await hass.async_block_till_done()
    with pytest.raises(HomeAssistantError) as err:
        await speak(hass, "B" * 5001)
    assert engines["working"].messages == []
    stream = tts.async_create_stream(hass, ENTITY, "en-US", {"preferred_format": "wav"})

    async def long_text() -> AsyncGenerator[str]:  # like Assist: text arrives in pieces
        for _ in range(6):
            yield "C" * 1000

    stream.async_set_message_stream(long_text())
    with pytest.raises(HomeAssistantError) as err:
        async for _ in stream.async_stream_result():
            pass
    assert err.value.translation_key == "invalid_message"
    assert engines["working"].messages == []  # HA joins the text for it: nothing was sent


@pytest.mark.parametrize(
    ("message", "options", "key"),
    [
        ("", {}, "invalid_message"),
        ("   \n ", {}, "invalid_message"),
        ("x" * 5001, {}, "invalid_message"),
        ("Hello.", {"voice": "xx_XX-none-low"}, "unknown_voice"),
        ("Hello.", {"speed": 9}, "invalid_option"),
    ],
)
async def test_bad_input_with_piper_missing_never_reaches_the_fallback(
    hass: HomeAssistant,
    engines: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    message: str,
    options: dict[str, Any],
    key: str,
) -> None:
    """Without local Piper the same validation runs on every entry point."""
    import sys

    monkeypatch.setitem(sys.modules, "piper", None)
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    assert entry.runtime_data.engine is None
    hass.states.async_set("media_player.kitchen", "idle")
    entity = alicia_entity(hass)
    calls: list[Any] = []
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "tts",
            "speak",
            {
                "entity_id": ENTITY,
                "media_player_entity_id": "media_player.kitchen",
                "message": message,
                "options": options,
            },
            blocking=True,
        )
    calls.append(err.value.translation_key)
    if message:  # the service schema itself refuses an empty message
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(
                DOMAIN,
                "audio_url",
                {"message": message, **options},
                blocking=True,
                return_response=True,
            )
        calls.append(err.value.translation_key)
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(
                DOMAIN,
                "say",
                {"entity_id": "media_player.kitchen", "message": message, **options},
                blocking=True,
            )
        calls.append(err.value.translation_key)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio(message, "en-US", options)
    calls.append(err.value.translation_key)
    assert set(calls) == {key}
    assert engines["working"].messages == []


async def test_only_engine_timing_out_says_so(hass: HomeAssistant, engines: dict[str, Any]) -> None:
    """The only engine giving no audio in time: a translated error naming it and the timeout
    (not a bare TimeoutError, which HA's API turns into an empty 504)."""
    entry = await setup_alicia(
        hass,
        **{
            CONF_FALLBACK_ENGINES: ["tts.slow"],
            CONF_ENGINE: "fallback",
            CONF_FIRST_AUDIO_TIMEOUT: 0.3,
        },
    )
    with pytest.raises(HomeAssistantError) as err:
        await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3", forced="fallback")
    assert err.value.translation_key == "engine_timeout"
    assert err.value.translation_placeholders == {"engine": "tts.slow", "timeout": "0.3"}
    entity = alicia_entity(hass)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio(MESSAGE, "en-US", {"engine": "fallback"})
    assert err.value.translation_key == "engine_timeout"


async def test_fallback_raising_a_plain_exception_is_named(
    hass: HomeAssistant, engines: dict[str, Any]
) -> None:
    """A fallback raising a non-HA exception: the error names it (never 'cancelled')."""
    engines["failing"].behaviour = "crash"
    entry = await setup_alicia(
        hass, **{CONF_FALLBACK_ENGINES: ["tts.failing"], CONF_ENGINE: "fallback"}
    )
    with pytest.raises(HomeAssistantError) as err:
        await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3", forced="fallback")
    assert err.value.translation_key == "engine_failed"
    placeholders = err.value.translation_placeholders or {}
    assert placeholders["engine"] == "tts.failing"
    assert "RuntimeError" in placeholders["error"] or "crashed" in placeholders["error"]
    assert "cancelled" not in placeholders["error"]
    assert MESSAGE[:16] not in str(placeholders)
    entity = alicia_entity(hass)
    with pytest.raises(HomeAssistantError) as err:
        await entity.async_get_tts_audio(MESSAGE, "en-US", {"engine": "fallback"})
    assert err.value.translation_key == "engine_failed"
    assert all(MESSAGE[:16] not in e.error for e in entry.runtime_data.chain.errors)


async def test_hanging_fallback_is_cancelled(
    hass: HomeAssistant, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first-audio timeout the hanging engine's call is cancelled, on both paths."""
    entry = await setup_alicia(
        hass,
        **{
            CONF_FALLBACK_ENGINES: ["tts.slow", "tts.working"],
            CONF_ENGINE: "fallback",
            CONF_FIRST_AUDIO_TIMEOUT: 0.3,
        },
    )
    slow = engines["slow"]
    for n in range(3):
        item = await async_create_audio(hass, entry, f"Speaker {n}.", SynthesisOptions(), "mp3")
        assert item.source == "tts.working"
        await speak(hass, f"Player {n}.")
    await hass.async_block_till_done()
    assert len(slow.messages) == 6
    assert slow.running == 0
    assert slow.cancelled == 6


async def test_errors_never_carry_the_message(
    hass: HomeAssistant,
    engines: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every error Alicia raises (which HA logs) and logs is free of the message text, even
    when an engine quotes it."""
    entry = await setup_alicia(hass, **{CONF_FALLBACK_ENGINES: ["tts.failing"]})
    break_local(local_of(entry), monkeypatch)
    secret = "The safe code is 4711 and the alarm is off."
    raised: list[HomeAssistantError] = []
    for forced in (None, "fallback"):
        with pytest.raises(HomeAssistantError) as err:
            await async_create_audio(hass, entry, secret, SynthesisOptions(), "mp3", forced=forced)
        raised.append(err.value)
        entity = alicia_entity(hass)
        options = {} if forced is None else {"engine": forced}
        with pytest.raises(HomeAssistantError) as err:
            await entity.async_get_tts_audio(secret, "en-US", options)
        raised.append(err.value)
    for error in raised:
        text = f"{error} {error.translation_placeholders}"
        assert "4711" not in text
        assert secret[:12] not in text
    ours = [r for r in caplog.records if r.name.startswith("custom_components.alicia_tts")]
    assert all("4711" not in r.getMessage() for r in ours if r.levelno > 10)


async def test_purge_tts_cache_guards(hass: HomeAssistant) -> None:
    """Without tts's manager, or with one whose cache internals changed, nothing is purged."""
    hass.data.pop(DATA_TTS_MANAGER, None)
    await async_purge_tts_cache(hass, "tts.alicia")
    data: dict[Any, Any] = hass.data
    data[DATA_TTS_MANAGER] = object()  # no mem_cache: a future HA's internals
    await async_purge_tts_cache(hass, "tts.alicia")
    del data[DATA_TTS_MANAGER]


async def test_source_without_audio_is_no_audio() -> None:
    """A source that ends before its first chunk raises NoAudioError (the chain's own error)."""

    async def nothing() -> AsyncGenerator[bytes]:
        return
        yield b""  # an async generator that yields nothing

    with pytest.raises(NoAudioError, match="no audio"):
        await first_then_rest(nothing(), 1.0)
