"""Audio for speakers over Home Assistant's real HTTP server: tokens, HEAD, Range, streaming."""

import asyncio
import json
from pathlib import Path
import random
import shutil
import subprocess
import threading
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts import delivery
from custom_components.alicia_tts.const import (
    CONF_AUDIO_FORMAT,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
    ISSUE_SPEAKER_URL,
)
from custom_components.alicia_tts.delivery import (
    URL_PREFIX,
    async_get_store,
    audio_url,
    speaker_base_url,
    url_problem,
)
from custom_components.alicia_tts.engine import EngineBusyError, PiperEngine, SynthesisJob
from custom_components.alicia_tts.options import SynthesisOptions
from custom_components.alicia_tts.production import async_create_audio, async_create_local_audio
from custom_components.alicia_tts.store import (
    DEFAULT_TOKEN_TTL,
    MAX_FETCH_RECORDS,
    AudioItem,
    new_token,
)

from .audio import parse_wav
from .conftest import JOE

FIVE = (
    "Attention. The front door has been open for ten minutes. The heating is paused meanwhile. "
    "Please close the door when you can. Thank you."
)


def decode_mp3(data: bytes) -> np.ndarray:
    """Decode MP3 with the real ffmpeg, as a speaker would, to 22050 Hz mono samples."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "-", "-f", "s16le", "-ac", "1", "-ar", "22050", "-"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, dtype="<i2")


async def make_audio(
    hass: HomeAssistant, entry: MockConfigEntry, message: str = FIVE, **options: Any
) -> AudioItem:
    """Audio from the local engine in the entry's speaker format."""
    return await async_create_local_audio(
        hass,
        entry,
        message,
        SynthesisOptions(**options),
        entry.runtime_data.audio_format,
    )


def path_of(item: AudioItem) -> str:
    """The path part of the item's URL."""
    return URL_PREFIX + item.filename


async def test_mp3_by_default_with_length_when_complete(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """Speakers get MP3 (encoded in-process); complete audio has Content-Length."""
    assert init_integration.runtime_data.audio_format == "mp3"
    item = await make_audio(hass, init_integration)
    assert item.extension == "mp3"
    await item.buffer.wait_done()
    client = await hass_client_no_auth()
    resp = await client.get(path_of(item))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "audio/mpeg"
    assert resp.headers["Accept-Ranges"] == "bytes"
    body = await resp.read()
    assert int(resp.headers["Content-Length"]) == len(body)
    samples = decode_mp3(body)
    assert 6.0 < len(samples) / 22050 < 14.0
    assert np.sqrt(np.mean((samples / 32768.0) ** 2)) > 0.05
    assert item.duration is not None
    assert abs(item.duration - len(samples) / 22050) < 0.2


async def test_streams_before_synthesis_ends(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first bytes reach the client while later sentences are still waiting to be made."""
    engine: PiperEngine | None = init_integration.runtime_data.engine
    assert engine is not None
    release = threading.Event()
    sentences: list[int] = []
    real_infer = engine.infer

    def gated_infer(job: SynthesisJob, ids: list[int]) -> bytes:
        sentences.append(len(ids))
        if len(sentences) >= 2:  # hold every later sentence until the client has bytes
            release.wait(timeout=30)
        return real_infer(job, ids)

    monkeypatch.setattr(engine, "infer", gated_infer)
    item = await make_audio(hass, init_integration)
    client = await hass_client_no_auth()
    resp = await client.get(path_of(item))
    assert resp.status == 200
    assert "Content-Length" not in resp.headers  # length unknown while streaming
    first = await resp.content.readany()
    # Ordering, not timing: audio left while sentence 2 had not been synthesized.
    assert first
    assert not item.buffer.done
    release.set()
    rest = await resp.read()
    samples = decode_mp3(first + rest)
    assert len(samples) / 22050 > 6.0
    assert len(sentences) == 5
    assert item.fetches[0].complete
    assert item.fetches[0].first_byte_at is not None


async def test_head_and_range(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """HEAD gives the length; single ranges (first bytes, suffix) and 416 work."""
    item = await make_audio(hass, init_integration, "Short and sweet.")
    await item.buffer.wait_done()
    full = item.buffer.getvalue()
    client = await hass_client_no_auth()

    resp = await client.head(path_of(item))
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == len(full)
    assert await resp.read() == b""

    resp = await client.get(path_of(item), headers={"Range": "bytes=0-99"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 0-99/{len(full)}"
    assert await resp.read() == full[:100]

    resp = await client.get(path_of(item), headers={"Range": "bytes=-50"})
    assert resp.status == 206
    assert await resp.read() == full[-50:]

    resp = await client.get(path_of(item), headers={"Range": "bytes=0-"})
    assert resp.status == 200
    assert await resp.read() == full

    resp = await client.get(path_of(item), headers={"Range": f"bytes={len(full)}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(full)}"

    assert [f.status for f in item.fetches] == [200, 206, 206, 200, 416]
    assert [f.method for f in item.fetches] == ["HEAD", "GET", "GET", "GET", "GET"]
    assert {f.client for f in item.fetches} == {"127.0.0.1"}
    assert item.fetches[1].range == "bytes=0-99"
    assert item.fetches[1].bytes_sent == 100


async def test_head_while_streaming_and_range_waits(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """HEAD during synthesis has no length; a mid-file Range waits for the complete audio."""
    item = await make_audio(hass, init_integration)
    client = await hass_client_no_auth()
    resp = await client.head(path_of(item))
    assert resp.status == 200
    assert "Content-Length" not in resp.headers
    resp = await client.get(path_of(item), headers={"Range": "bytes=10-19"})
    assert item.buffer.done
    assert resp.status == 206
    assert await resp.read() == item.buffer.getvalue()[10:20]


async def test_unknown_expired_and_unloaded(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Unknown tokens, wrong extensions, expired and unloaded items are 404."""
    client = await hass_client_no_auth()
    item = await make_audio(hass, init_integration, "Expiring soon.")
    await item.buffer.wait_done()
    assert (await client.get(path_of(item))).status == 200
    for bad in (
        f"{new_token()}.mp3",
        f"{item.token}.wav",
        item.token,
        f"{item.token}.mp3.mp3",
    ):
        assert (await client.get(URL_PREFIX + bad)).status == 404, bad
        assert (await client.head(URL_PREFIX + bad)).status == 404, bad
    # Path traversal is stopped by HA's own security filter before our view.
    assert (await client.get(URL_PREFIX + "..%2F..%2Fsecrets.yaml")).status == 400

    freezer.tick(301)
    assert (await client.get(path_of(item))).status == 404

    item = await make_audio(hass, init_integration, "Gone with the entry.")
    await item.buffer.wait_done()
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    assert (await client.get(path_of(item))).status == 404


async def test_cache_hit_serves_at_once(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """The same announcement again is complete immediately, under a new token."""
    store = async_get_store(hass)
    first = await make_audio(hass, init_integration, "The laundry is done.")
    await first.buffer.wait_done()
    again = await make_audio(hass, init_integration, "The laundry is done.")
    assert again.token != first.token
    assert again.buffer.done
    assert again.buffer.getvalue() == first.buffer.getvalue()
    assert again.duration == first.duration
    assert store.cache_hits == 1
    other = await make_audio(hass, init_integration, "The laundry is done.", speed=1.2)
    assert not other.buffer.done  # different options: synthesized anew
    await other.buffer.wait_done()
    client = await hass_client_no_auth()
    resp = await client.get(path_of(again))
    assert int(resp.headers["Content-Length"]) == len(first.buffer.getvalue())


async def test_wav_format_option(
    hass: HomeAssistant, setup_ha: None, hass_client_no_auth: ClientSessionGenerator
) -> None:
    """With the WAV option speakers get WAV; once complete its header states the length."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={CONF_VOICE: JOE},
        options={CONF_AUDIO_FORMAT: "wav"},
        unique_id=JOE,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.runtime_data.audio_format == "wav"
    item = await make_audio(hass, entry, "A short WAV announcement.")
    await item.buffer.wait_done()
    client = await hass_client_no_auth()
    resp = await client.get(path_of(item))
    assert resp.headers["Content-Type"] == "audio/wav"
    data = await resp.read()
    assert int.from_bytes(data[40:44], "little") == len(data) - 44
    wav = parse_wav(data)
    assert wav.sample_rate == 22050
    assert wav.rms > 0.05


async def test_mp3_encoder_unavailable_falls_back_to_wav(
    hass: HomeAssistant,
    setup_ha: None,
    config_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No lameenc on this platform: speakers get WAV, nothing fails."""
    import sys

    monkeypatch.setitem(sys.modules, "lameenc", None)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.runtime_data.audio_format == "wav"


async def test_synthesis_failure_is_503(
    hass: HomeAssistant,
    setup_ha: None,
    hass_client_no_auth: ClientSessionGenerator,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
) -> None:
    """Audio whose synthesis failed answers 503 (never 500)."""
    config = json.loads(joe_files[1].read_text())
    config["phoneme_id_map"] = {k: [100000] for k in config["phoneme_id_map"]}
    shutil.copyfile(joe_files[0], voices_dir / "en_US-odd-medium.onnx")
    (voices_dir / "en_US-odd-medium.onnx.json").write_text(json.dumps(config))
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, unique_id=JOE)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    item = await make_audio(hass, entry, "This cannot be spoken.", voice="en_US-odd-medium")
    await item.buffer.wait_done()
    assert item.buffer.error is not None
    client = await hass_client_no_auth()
    assert (await client.get(path_of(item))).status == 503
    assert (await client.head(path_of(item))).status == 503


async def test_errors_before_any_url(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Busy engine or missing local engine: the error comes at once, no item is made."""
    store = async_get_store(hass)
    engine = init_integration.runtime_data.engine
    assert isinstance(engine, PiperEngine)
    engine.max_requests = 0
    with pytest.raises(EngineBusyError):
        await make_audio(hass, init_integration, "Busy.")
    init_integration.runtime_data.engine = None
    with pytest.raises(HomeAssistantError) as err:
        await make_audio(hass, init_integration, "Nobody home.")
    assert err.value.translation_key == "local_unavailable"
    init_integration.runtime_data.engine = engine
    assert len(store) == 0


async def test_fuzz_never_500(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """Random tokens, paths, methods and Range headers never produce a server error."""
    item = await make_audio(hass, init_integration, "Fuzz me.")
    await item.buffer.wait_done()
    client = await hass_client_no_auth()
    rng = random.Random(20261126)
    alphabet = "abcXYZ019-_./%~"
    ranges = [
        None,
        "bytes=0-",
        "bytes=-1",
        "bytes=5-2",
        "bytes=99999999999999999999-",
        "bytes=--",
        "bytes=0-1,2-3",
        "nonsense",
        "bytes=-0",
        "bytes= 1 - 2",
        "bytes=\u00e9-",
        "bytes=" + "7" * 4500 + "-",
        "bytes=-" + "8" * 4500,
    ]
    statuses: set[int] = set()
    for _ in range(250):
        kind = rng.random()
        if kind < 0.4:
            name = item.filename
        elif kind < 0.7:
            name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        else:
            name = f"{new_token()}.{rng.choice(['mp3', 'wav', 'ogg', ''])}"
        method = rng.choice(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
        headers = {}
        if (rng_range := rng.choice(ranges)) is not None:
            headers["Range"] = rng_range
        resp = await client.request(method, URL_PREFIX + name, headers=headers)
        await resp.read()
        statuses.add(resp.status)
        assert resp.status < 500, (method, name, headers, resp.status)
    assert {200, 206, 404, 405, 416} <= statuses


# -- base URL for speakers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://192.168.1.10:8123", None),
        ("http://homeassistant.local:8123", None),
        ("https://ha.example.com", None),
        ("https://192.168.1.10:8123", "https_ip"),
        ("https://[fd00::1]:8123", "https_ip"),
        ("http://127.0.0.1:8123", "loopback"),
        ("http://localhost:8123", "loopback"),
        ("http://[::1]:8123", "loopback"),
        ("http://ha.localhost", "loopback"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    """What is wrong with a base URL for speakers on the LAN."""
    assert url_problem(url) == problem


@pytest.mark.parametrize(
    ("internal", "override", "issue_key", "expected"),
    [
        ("http://192.168.1.10:8123", None, None, "http://192.168.1.10:8123"),
        ("https://192.168.1.10:8123", None, "speaker_url_https_ip", "https://192.168.1.10:8123"),
        ("http://127.0.0.1:8123", None, "speaker_url_loopback", "http://127.0.0.1:8123"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:9999/", None, "http://127.0.0.1:9999"),
        ("https://192.168.1.10", "http://192.168.1.10:8123", None, "http://192.168.1.10:8123"),
    ],
)
async def test_base_url_and_repair_issue(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    internal: str,
    override: str | None,
    issue_key: str | None,
    expected: str,
) -> None:
    """The entry picks the speakers' base URL and explains a bad one with a repair issue."""
    await async_process_ha_core_config(hass, {"internal_url": internal})
    options = {CONF_SPEAKER_BASE_URL: override} if override else {}
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, options=options)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.runtime_data.speaker_url.url == expected
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_SPEAKER_URL)
    if issue_key is None:
        assert issue is None
    else:
        assert issue is not None
        assert issue.translation_key == issue_key
        assert issue.translation_placeholders == {"url": expected}
    item = AudioItem(token=new_token(), extension="mp3", created=0, expires=1)
    assert audio_url(expected, item) == f"{expected}{URL_PREFIX}{item.token}.mp3"


async def test_no_url_at_all(hass: HomeAssistant, issue_registry: ir.IssueRegistry) -> None:
    """Without any URL HA could give, the issue says what to set."""
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    hass.config.internal_url = None
    hass.config.external_url = None
    hass.config.api = None
    assert speaker_base_url(hass, None).problem == "missing"
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.speaker_url.url is None
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_SPEAKER_URL)
    assert issue is not None
    assert issue.translation_key == "speaker_url_missing"


# -- load (issue 20) ---------------------------------------------------------------------------


async def test_requests_beyond_the_bound_wait_their_turn(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """More requests than may be in flight: they wait in turn, and every one is served."""
    engine = init_integration.runtime_data.engine
    assert isinstance(engine, PiperEngine)
    engine.max_requests = 2
    messages = [f"Announcement number {n} is here." for n in range(10)]
    items = await asyncio.gather(*(make_audio(hass, init_integration, m) for m in messages))
    for item in items:
        await item.buffer.wait_done()
        assert item.buffer.error is None
        assert item.buffer.size > 1000
    assert engine.queued >= 8
    assert engine.rejected == 0
    chain = init_integration.runtime_data.chain
    assert chain.stats["local"].failures == 0


async def test_identical_requests_share_one_synthesis(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 identical messages at once: one synthesis, 200 tokens with the same audio."""
    engine = init_integration.runtime_data.engine
    assert isinstance(engine, PiperEngine)
    inferred: list[int] = []
    real_infer = engine.infer

    def counting(job: SynthesisJob, ids: list[int]) -> bytes:
        inferred.append(len(ids))
        return real_infer(job, ids)

    monkeypatch.setattr(engine, "infer", counting)
    store = async_get_store(hass)
    message = "Everybody hears the same announcement."
    items = await asyncio.gather(
        *(
            async_create_audio(hass, init_integration, message, SynthesisOptions(), "mp3")
            for _ in range(200)
        )
    )
    assert len({item.token for item in items}) == 200
    await items[-1].buffer.wait_done()
    assert len(inferred) == 1  # one sentence, synthesized once
    assert store.shared == 199
    audio = items[0].buffer.getvalue()
    assert all(item.buffer.getvalue() is audio for item in items)
    client = await hass_client_no_auth()
    assert await (await client.get(path_of(items[123]))).read() == audio


async def test_huge_range_numbers_are_416_not_500(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """A Range header with thousands of digits is unsatisfiable (or the whole file)."""
    item = await make_audio(hass, init_integration, "Range me.")
    await item.buffer.wait_done()
    client = await hass_client_no_auth()
    resp = await client.get(path_of(item), headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert resp.status == 416
    resp = await client.get(path_of(item), headers={"Range": "bytes=0-" + "9" * 5000})
    assert resp.status == 200
    assert await resp.read() == item.buffer.getvalue()
    resp = await client.get(path_of(item), headers={"Range": "bytes=-" + "9" * 5000})
    assert resp.status == 200


async def test_fetch_record_is_bounded(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """Many requests on one token keep a bounded record, and the token still works."""
    item = await make_audio(hass, init_integration, "Head, head, head.")
    await item.buffer.wait_done()
    client = await hass_client_no_auth()
    assert (await client.get(path_of(item))).status == 200
    for _ in range(300):
        assert (await client.head(path_of(item))).status == 200
    assert len(item.fetches) == MAX_FETCH_RECORDS
    assert item.fetch_count == 301
    assert item.was_fetched()


async def test_audio_budget_over_http(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """Live items and cached audio share one budget: old fetched audio makes room."""
    store = async_get_store(hass)
    client = await hass_client_no_auth()
    first = await make_audio(hass, init_integration, "The first of many.")
    await first.buffer.wait_done()
    assert (await client.get(path_of(first))).status == 200
    store.budget_bytes = first.buffer.size * 3
    later = []
    for n in range(4):
        item = await make_audio(hass, init_integration, f"Another one, number {n}.")
        await item.buffer.wait_done()
        later.append(item)
    assert store.held_bytes() <= store.budget_bytes
    assert (await client.get(path_of(first))).status == 404
    assert (await client.get(path_of(later[-1]))).status == 200
    assert store.evicted > 0


async def test_expired_audio_goes_without_new_requests(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Expired tokens and unused cached audio are dropped on a timer, not only when the next
    request comes, and the freed memory is handed back to the OS."""
    released: list[bool] = []
    monkeypatch.setattr(delivery, "RELEASE_AFTER_BYTES", 1)

    def release() -> bool:
        released.append(True)
        return True

    monkeypatch.setattr(delivery, "release_free_memory", release)
    store = async_get_store(hass)
    item = await make_audio(hass, init_integration, "Soon gone.")
    await item.buffer.wait_done()
    assert len(store) == 1
    assert store.cached_bytes > 0
    freezer.tick(DEFAULT_TOKEN_TTL + delivery.CLEANUP_INTERVAL + 1)
    async_fire_time_changed(hass)
    # The memory is handed back by a background task (in the executor): wait for it too.
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(store) == 0
    assert store.held_bytes() == 0
    assert released == [True]


async def test_shared_request_survives_its_leader_going_away(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The first of two identical requests is cancelled while waiting its turn: the second
    one does not inherit the cancellation, it makes the audio itself."""
    engine = init_integration.runtime_data.engine
    assert isinstance(engine, PiperEngine)
    engine.max_requests = 1
    holder = await engine.async_start(SynthesisOptions(), JOE)  # the only slot is taken
    message = "Wait for me."
    leader = asyncio.ensure_future(make_audio(hass, init_integration, message))
    await asyncio.sleep(0)
    follower = asyncio.ensure_future(make_audio(hass, init_integration, message))
    await asyncio.sleep(0)
    assert engine.waiting_requests == 1
    leader.cancel()
    await asyncio.wait({leader})
    holder.release()
    item = await asyncio.wait_for(follower, 30)
    await item.buffer.wait_done()
    assert item.buffer.error is None
    assert item.buffer.size > 1000
    assert not item.shared
