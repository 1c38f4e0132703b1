"""Tokens, growing buffers, the store and its cache, Range parsing and encoders (pure)."""

import asyncio
from collections.abc import AsyncGenerator
import io
import subprocess

import numpy as np
import pytest

from custom_components.alicia_tts.encoders import (
    Mp3Encoder,
    WavEncoder,
    audio_duration,
    first_pieces,
    make_encoder,
    mp3_available,
    read_ahead,
    wav_header,
)
from custom_components.alicia_tts.store import (
    MAX_FETCH_RECORDS,
    AudioBuffer,
    AudioItem,
    AudioStore,
    FetchRecord,
    RangeNotSatisfiableError,
    is_token,
    new_token,
    parse_range,
    range_needs_complete_audio,
)

from .audio import parse_wav


def tone(seconds: float = 1.0, rate: int = 22050) -> bytes:
    """A 440 Hz tone as 16-bit PCM."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 10000).astype("<i2").tobytes()


def test_tokens_are_unguessable() -> None:
    """128 random bits, URL-safe, never repeated."""
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(is_token(t) and len(t) == 22 for t in tokens)
    assert not is_token("short")
    assert not is_token("a" * 21 + "/")
    assert not is_token("../" + "a" * 19)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-", None),
        ("bytes=0-999", None),
        ("bytes=0-5000", None),
        ("bytes=-", None),
        ("items=0-5", None),
        ("bytes=0-1,5-6", None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", None),
        ("bytes = 10 - 20", (10, 20)),
        ("bytes=999-999", (999, 999)),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    """Single ranges are honoured; forms we do not serve mean 'the whole file'."""
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",
        "bytes=5000-6000",
        "bytes=-0",
        "bytes=20-10",
        "bytes=" + "9" * 5000 + "-",  # more digits than int() parses (HTTP 500 before)
        "bytes=" + "9" * 5000 + "-" + "9" * 5000,
        "bytes=50-" + "0" * 4000 + "4",  # leading zeros: end 4 < start 50
    ],
)
def test_parse_range_unsatisfiable(header: str) -> None:
    """Ranges outside the audio are unsatisfiable."""
    with pytest.raises(RangeNotSatisfiableError):
        parse_range(header, 1000)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-" + "9" * 5000, None),  # to the end
        ("bytes=10-" + "9" * 5000, (10, 999)),
        ("bytes=-" + "9" * 5000, None),  # a suffix longer than the audio: all of it
        ("bytes=" + "0" * 5000 + "10-19", (10, 19)),
        ("bytes=\u0661-", None),  # a non-ASCII digit is not a Range number: ignored
    ],
)
def test_parse_range_huge_numbers(header: str, expected: tuple[int, int] | None) -> None:
    """Numbers of any length are compared, never overflow the parser."""
    assert parse_range(header, 1000) == expected


def test_parse_range_empty_audio() -> None:
    """Nothing can be cut from nothing."""
    with pytest.raises(RangeNotSatisfiableError):
        parse_range("bytes=-10", 0)


@pytest.mark.parametrize(
    ("header", "needs"),
    [
        (None, False),
        ("bytes=0-", False),
        ("bytes=-", False),
        ("junk", False),
        ("bytes=0-99", True),
        ("bytes=10-", True),
        ("bytes=-10", True),
    ],
)
def test_range_needs_complete_audio(header: str | None, needs: bool) -> None:
    """Only 'everything from the start' can be streamed before the length is known."""
    assert range_needs_complete_audio(header) is needs


async def test_buffer_readers_follow_writer() -> None:
    """A reader gets what exists, then waits for more, and ends when the writer completes."""
    buf = AudioBuffer()
    buf.append(b"abc")
    received: list[bytes] = []

    async def read() -> None:
        async for chunk in buf.iter_from(1):
            received.append(chunk)  # noqa: PERF401 - the test watches chunks arrive one by one

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)
    assert received == [b"bc"]
    buf.append(b"")  # nothing happens
    buf.append(b"def")
    await asyncio.sleep(0)
    assert received == [b"bc", b"def"]
    assert not reader.done()
    buf.replace(0, b"ABC")
    buf.complete()
    await asyncio.wait_for(reader, 1)
    assert buf.getvalue() == b"ABCdef"
    await buf.wait_done()
    await buf.wait_size(100)


def test_buffer_shares_complete_audio() -> None:
    """Cached audio is adopted without a copy; finished audio is one immutable object."""
    cached = b"x" * 1000
    hit = AudioBuffer()
    hit.append(cached)
    hit.complete()
    assert hit.getvalue() is cached
    grown = AudioBuffer()
    grown.append(b"ab")
    grown.replace(0, b"A")
    grown.append(b"cd")
    grown.complete()
    assert grown.getvalue() == b"Abcd"
    assert grown.getvalue() is grown.getvalue()


async def test_buffer_failure_ends_readers() -> None:
    """A failed synthesis ends readers with what they have."""
    buf = AudioBuffer()
    buf.append(b"x")
    waiter = asyncio.create_task(buf.wait_size(10))
    chunks = [c async for c in _first(buf)]
    buf.fail("boom")
    await asyncio.wait_for(waiter, 1)
    assert chunks == [b"x"]
    assert buf.has_failed()
    assert buf.error == "boom"
    assert [c async for c in buf.iter_from(1)] == []


async def _first(buf: AudioBuffer) -> asyncio.AsyncGenerator[bytes]:  # type: ignore[name-defined]
    async for chunk in buf.iter_from(0):
        yield chunk
        return


def test_store_tokens_expire_and_owners_unload() -> None:
    """Items live until their expiry; an entry's items go with it."""
    now = [1000.0]
    store = AudioStore(ttl=60, clock=lambda: now[0])
    a = store.create("mp3", owner="e1")
    b = store.create("wav", owner="e2", ttl=10)
    assert store.get(a.token) is a
    assert a.filename == f"{a.token}.mp3"
    assert (a.content_type, b.content_type) == ("audio/mpeg", "audio/wav")
    now[0] += 11
    assert store.get(b.token) is None
    assert store.get(a.token) is a
    store.remove_owner("e1")
    assert store.get(a.token) is None
    c = store.create("mp3")
    now[0] += 61
    store.create("mp3")  # creating prunes expired items
    assert store.get(c.token) is None
    assert len(store) == 1
    assert store.get("unknown") is None


def test_store_cache_is_bounded_lru() -> None:
    """The cache keeps recent audio within the byte budget."""
    store = AudioStore(budget_bytes=10)
    store.cache_put("a", b"1234", 1.0)
    store.cache_put("b", b"5678", 2.0)
    assert store.cache_get("a") == (b"1234", 1.0)  # a is now most recent
    store.cache_put("c", b"9999")
    assert store.cache_get("b") is None  # evicted
    assert store.cache_get("a") is not None
    assert store.cached_bytes == 8
    store.cache_put("a", b"12")  # replacing keeps the count right
    assert store.cached_bytes == 6
    store.cache_put("huge", b"x" * 11)  # larger than the whole budget: not kept
    assert store.cache_get("huge") is None
    assert (store.cache_hits, store.cache_misses) == (2, 2)
    store.cache_clear()
    assert store.cached_bytes == 0
    assert store.cache_get("a") is None


def _finished(store: AudioStore, data: bytes, *, fetched: bool = False) -> AudioItem:
    item = store.create("mp3")
    item.buffer.append(data)
    item.buffer.complete()
    if fetched:
        item.record(FetchRecord(client="10.0.0.2", method="GET", at=0.0))
    store.enforce_budget()
    return item


def test_one_budget_for_items_and_cache() -> None:
    """Live items count against the same budget as the cache; shared bytes count once;
    finished audio goes first (cache-only, then fetched, then never fetched); audio still
    being made is never dropped."""
    now = [0.0]
    store = AudioStore(budget_bytes=100, clock=lambda: now[0])
    growing = store.create("mp3")
    growing.buffer.append(b"g" * 60)  # still being synthesized, and over half the budget
    shared = _finished(store, b"s" * 10, fetched=True)
    store.cache_put("shared", shared.buffer.getvalue(), 1.0)  # the same bytes object
    assert store.held_bytes() == 70
    store.cache_put("old", b"o" * 20)
    assert store.held_bytes() == 90
    now[0] += 1
    fetched = _finished(store, b"f" * 15, fetched=True)  # 105 > 100: cache-only "old" goes
    assert store.cache_get("old") is None
    assert store.held_bytes() == 85
    now[0] += 1
    unfetched = _finished(store, b"u" * 20)  # 105: fetched audio goes, oldest first, until
    assert store.get(shared.token) is None  # 10 % of the budget is free again
    assert store.cache_get("shared") is None  # its bytes only go with all holders
    assert store.get(fetched.token) is None
    assert store.get(unfetched.token) is unfetched  # never fetched: goes after fetched audio
    assert store.held_bytes() == 80
    now[0] += 1
    newest = _finished(store, b"n" * 30)  # 110: the oldest never-fetched audio goes
    assert store.get(unfetched.token) is None
    assert store.get(newest.token) is newest
    assert store.get(growing.token) is growing
    assert store.held_bytes() == 90
    assert store.evicted == 5
    growing.buffer.append(b"g" * 100)  # over budget while growing: kept, nothing else to drop
    store.enforce_budget()
    assert store.get(growing.token) is growing


def test_cached_audio_expires_when_unused() -> None:
    """Cached audio unused for the token lifetime goes, like the tokens themselves."""
    now = [0.0]
    store = AudioStore(ttl=300, clock=lambda: now[0])
    store.cache_put("a", b"1234")
    store.cache_put("b", b"5678")
    now[0] = 200.0
    assert store.cache_get("a") is not None  # used again: lives on
    now[0] = 400.0
    store.prune()
    assert store.cache_get("b") is None
    assert store.cache_get("a") is not None
    store.prune(now=10_000.0)  # as if much later
    assert store.cached_bytes == 0


def test_fetch_records_are_bounded() -> None:
    """40,000 HEADs on one token keep a bounded record (and the fact that a GET came)."""
    store = AudioStore()
    item = store.create("mp3")
    item.record(FetchRecord(client="10.0.0.2", method="GET", at=0.0))
    for n in range(40_000):
        item.record(FetchRecord(client="10.0.0.3", method="HEAD", at=float(n)))
    assert len(item.fetches) == MAX_FETCH_RECORDS
    assert item.fetch_count == 40_001
    assert item.was_fetched()


def test_wav_encoder() -> None:
    """Streaming WAV: unknown-length header, PCM passes, final header states the length."""
    enc = make_encoder("wav", 22050)
    assert isinstance(enc, WavEncoder)
    pcm = tone(0.5)
    data = enc.start() + enc.encode(pcm) + enc.finish()
    assert data[40:44] == bytes(4)
    fix = enc.final_header(len(pcm))
    assert fix == (0, wav_header(22050, len(pcm)))
    fixed = fix[1] + data[44:]
    wav = parse_wav(fixed)
    assert wav.duration == pytest.approx(0.5, abs=0.001)


def test_mp3_encoder_decodes_with_ffmpeg() -> None:
    """In-process MP3 streams frames as PCM arrives, and a real decoder reads the result."""
    assert mp3_available()
    enc = make_encoder("mp3", 22050)
    assert isinstance(enc, Mp3Encoder)
    assert enc.start() == b""
    parts = [enc.encode(tone(0.5)) for _ in range(4)]
    assert parts[1]  # frames leave before the end
    data = b"".join(parts) + enc.finish()
    assert enc.final_header(0) is None
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "-", "-f", "s16le", "-ac", "1", "-ar", "22050", "-"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(io.BytesIO(decoded).read(), dtype="<i2")
    assert len(samples) / 22050 == pytest.approx(2.0, abs=0.1)
    assert np.sqrt(np.mean((samples / 32768.0) ** 2)) > 0.1


def test_unknown_format() -> None:
    """Only mp3 and wav are made."""
    with pytest.raises(ValueError, match="ogg"):
        make_encoder("ogg", 22050)


def test_mp3_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without lameenc the store falls back (checked by mp3_available)."""
    import sys

    monkeypatch.setitem(sys.modules, "lameenc", None)
    assert not mp3_available()


def test_first_pieces() -> None:
    """A stream's first audio: a quarter second on its own, then the rest; short ones whole."""
    pcm = tone(1.0)
    first, rest = first_pieces(pcm, 22050)
    assert len(first) == 5512 * 2
    assert first + rest == pcm
    assert first_pieces(pcm[:1000], 22050) == [pcm[:1000]]


@pytest.mark.skipif(not mp3_available(), reason="lameenc is not installed")
def test_first_piece_encodes_to_mp3() -> None:
    """Encoded on its own, a stream's first piece already gives MP3 frames."""
    first, _ = first_pieces(tone(1.0), 22050)
    assert Mp3Encoder(22050).encode(first)


class Source:
    """Sentences as an async generator that records how far it was pulled and its closing."""

    def __init__(self, count: int, fail_after: int | None = None) -> None:
        self.count = count
        self.fail_after = fail_after
        self.produced: list[int] = []
        self.closed = False

    async def run(self) -> AsyncGenerator[bytes]:
        try:
            for number in range(self.count):
                if number == self.fail_after:
                    raise RuntimeError("synthesis failed")
                self.produced.append(number)
                yield bytes([number])
        finally:
            self.closed = True


async def test_read_ahead_makes_the_next_sentences_meanwhile() -> None:
    """While the consumer works on the first sentence, the next ones are already made."""
    source = Source(6)
    stream = read_ahead(source.run(), depth=2)
    assert await anext(stream) == b"\x00"
    for _ in range(10):  # the consumer is busy (encoding): the loop runs other tasks
        await asyncio.sleep(0)
    assert source.produced == [0, 1, 2, 3]  # two queued, one waiting to be queued
    assert [item async for item in stream] == [bytes([n]) for n in range(1, 6)]
    assert source.closed


async def test_read_ahead_errors_in_order_and_closing() -> None:
    """A failure arrives after the sentences before it; a consumer that stops closes it all."""
    failing = Source(5, fail_after=2)
    stream = read_ahead(failing.run())
    assert [await anext(stream), await anext(stream)] == [b"\x00", b"\x01"]
    with pytest.raises(RuntimeError, match="synthesis failed"):
        await anext(stream)
    assert failing.closed

    stopped = Source(100)
    stream = read_ahead(stopped.run())
    assert await anext(stream) == b"\x00"
    await stream.aclose()
    assert stopped.closed
    assert len(stopped.produced) < 100


def test_audio_duration_of_whole_files() -> None:
    """A complete WAV's length from its header; an unreadable MP3 or another format: unknown."""
    pcm = tone(0.5)
    assert audio_duration("wav", wav_header(22050, len(pcm)) + pcm) == pytest.approx(0.5, abs=1e-3)
    assert audio_duration("wav", wav_header(0, 0)) is None
    assert audio_duration("mp3", b"not an mp3 at all") is None
    assert audio_duration("ogg", b"OggS") is None
