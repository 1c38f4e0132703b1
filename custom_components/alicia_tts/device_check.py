"""Device check: how fast this machine speaks a voice. Pure: imports nothing from Home Assistant.

The check synthesizes a fixed short and a fixed long sentence with the entry's voice through the
engine's normal admission (:meth:`PiperEngine.async_start`, on the engine's own worker threads,
never on the event loop) and records, per sentence, the time to the first audio, the synthesis
time and the audio duration. The figure that decides is the **real-time factor of the long
sentence** (synthesis time / audio duration): above :data:`RTF_LIMIT` (0.5) a voice needs more
than half a second of computing per second of speech, so announcements start late and a
multi-sentence message can stall between sentences while other work runs on the machine.

Low priority. Before each sentence the check waits until the engine has no request in flight
(polling, bounded by ``idle_patience``); a sentence during which a real request was admitted is
measured again (up to ``attempts`` times) and the fastest run is kept, so real requests never
queue behind more than one measurement sentence and do not inflate the figures. A short warm-up
sentence first (discarded) keeps one-time allocations out of the numbers.

Estimates for other qualities scale the measured real-time factor by the documented relative
cost of Piper's quality levels (:data:`RELATIVE_COST`, medium = 1), or use a measurement of a
voice of that quality on the same CPU and backend when one exists.

``read_cpu_info`` is blocking (it reads ``/proc/cpuinfo``): run it in an executor.
"""

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
import os
from pathlib import Path
import platform
import re
import time
from typing import Any, Final

from .catalog import CatalogVoice
from .engine import CHANNELS, SAMPLE_WIDTH, EngineBusyError, PiperEngine
from .options import SynthesisOptions
from .voices import VoiceInfo

# The fixed sentences (English: a speed check, not a language check; every espeak-ng voice
# phonemizes them). The long one is a single sentence of about six seconds of speech.
WARM_UP_SENTENCE: Final = "Hello."
SHORT_SENTENCE: Final = "The front door is open."
LONG_SENTENCE: Final = (
    "The washing machine has finished its long cycle, so please take the laundry out soon, "
    "and remember that the dryer in the basement is free for the rest of the afternoon."
)

# Above this real-time factor of the long sentence a repair issue recommends a faster voice.
RTF_LIMIT: Final = 0.5

# Piper's quality levels, fastest first.
QUALITIES: Final = ("x_low", "low", "medium", "high")
QUALITY_RANK: Final = {quality: rank for rank, quality in enumerate(QUALITIES)}

# Documented relative cost per second of speech (medium = 1), from Piper's definition of the
# levels: x_low 16 kHz with about a third of medium's parameters (5-7 M vs 15-20 M); low the
# same network as medium at 16 kHz instead of 22.05 kHz (about 0.73 of the samples); high
# 22.05 kHz with about twice the parameters (28-32 M). A voice of unknown quality counts as
# medium. These are estimates; a measurement of a voice of that quality wins.
RELATIVE_COST: Final = {"x_low": 0.3, "low": 0.75, "medium": 1.0, "high": 1.8}

# Waiting for an idle engine: poll interval and how long to wait before measuring anyway.
IDLE_POLL: Final = 0.25
IDLE_PATIENCE: Final = 60.0
ATTEMPTS: Final = 3

_WHITESPACE = re.compile(r"\s+")
# /proc/cpuinfo keys that name the CPU or board, best first (x86, Raspberry Pi, older ARM,
# MIPS, POWER). Serial numbers and other identifiers are never read.
_MODEL_KEYS: Final = ("model name", "Model", "Hardware", "cpu model", "Processor", "cpu")


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuInfo:
    """The machine a measurement belongs to."""

    model: str
    cores: int
    architecture: str
    libc: str

    @property
    def fingerprint(self) -> str:
        """What must be equal for a measurement to apply to this machine."""
        return f"{self.model}|{self.cores}|{self.architecture}|{self.libc}"

    @property
    def summary(self) -> str:
        """Readable: 'AMD EPYC 9R14, 2 cores, x86_64, glibc 2.41'."""
        return f"{self.model}, {self.cores} cores, {self.architecture}, {self.libc}"


def parse_cpu_model(cpuinfo: str) -> str | None:
    """The CPU's (or board's) name in the text of ``/proc/cpuinfo``, if it names one."""
    values: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and (key := key.strip()) and key not in values and (value := value.strip()):
            values[key] = _WHITESPACE.sub(" ", value)
    for key in _MODEL_KEYS:
        if key in values:
            return values[key]
    if "CPU implementer" in values and "CPU part" in values:  # aarch64 without a board name
        return f"ARM implementer {values['CPU implementer']} part {values['CPU part']}"
    return None


def libc_name() -> str:
    """'glibc 2.41', 'musl' or 'unknown' (blocking: reads the executable)."""
    libc, version = platform.libc_ver()
    if libc:
        return f"{libc} {version}".strip()
    if any(Path("/lib").glob("ld-musl-*.so.1")):
        return "musl"
    return "unknown"


def read_cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """Describe the CPU of this machine (blocking)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    model = parse_cpu_model(text) or platform.processor() or "unknown"
    return CpuInfo(
        model=model,
        cores=os.process_cpu_count() or 1,
        architecture=platform.machine() or "unknown",
        libc=libc_name(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SentenceTiming:
    """One measured sentence (seconds)."""

    characters: int
    audio_seconds: float
    synthesis_seconds: float
    first_audio_seconds: float

    @property
    def real_time_factor(self) -> float:
        """Synthesis time per second of speech."""
        return self.synthesis_seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """How fast one voice runs on one backend and CPU."""

    voice: str
    quality: str | None
    backend: str
    phonemizer: str | None
    cpu: CpuInfo
    short: SentenceTiming
    long: SentenceTiming
    measured_at: float  # Unix time

    @property
    def real_time_factor(self) -> float:
        """The deciding figure: the long sentence's real-time factor."""
        return self.long.real_time_factor

    @property
    def key(self) -> str:
        """The storage key: voice, backend and CPU."""
        return measurement_key(self.voice, self.backend, self.cpu)

    def too_slow(self, limit: float = RTF_LIMIT) -> bool:
        """Whether the voice is slower than the documented limit."""
        return self.real_time_factor > limit

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (storage and diagnostics)."""
        data = asdict(self)
        data["short"]["real_time_factor"] = round(self.short.real_time_factor, 4)
        data["long"]["real_time_factor"] = round(self.long.real_time_factor, 4)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """Read a stored measurement; ValueError when it is not one."""
        try:
            cpu = data["cpu"]
            timings = {
                name: SentenceTiming(
                    characters=int(data[name]["characters"]),
                    audio_seconds=float(data[name]["audio_seconds"]),
                    synthesis_seconds=float(data[name]["synthesis_seconds"]),
                    first_audio_seconds=float(data[name]["first_audio_seconds"]),
                )
                for name in ("short", "long")
            }
            quality = data.get("quality")
            phonemizer = data.get("phonemizer")
            return cls(
                voice=str(data["voice"]),
                quality=str(quality) if quality is not None else None,
                backend=str(data["backend"]),
                phonemizer=str(phonemizer) if phonemizer is not None else None,
                cpu=CpuInfo(
                    model=str(cpu["model"]),
                    cores=int(cpu["cores"]),
                    architecture=str(cpu["architecture"]),
                    libc=str(cpu["libc"]),
                ),
                short=timings["short"],
                long=timings["long"],
                measured_at=float(data["measured_at"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a measurement: {err!r}") from err


def measurement_key(voice: str, backend: str, cpu: CpuInfo) -> str:
    """Where a measurement is stored: one per voice, backend and CPU."""
    return f"{voice}|{backend}|{cpu.fingerprint}"


# -- measuring ---------------------------------------------------------------------------------


async def _wait_idle(engine: PiperEngine, poll: float, patience: float) -> None:
    """Wait until no request is in flight (at most ``patience`` seconds)."""
    for _ in range(max(0, round(patience / poll)) if poll > 0 else 0):
        if engine.active_requests == 0:
            return
        await asyncio.sleep(poll)


async def _time_sentence(
    engine: PiperEngine, voice: str, sentence: str, clock: Callable[[], float]
) -> tuple[SentenceTiming, bool]:
    """Synthesize one sentence; its timing and whether no other request was in flight."""

    async def text() -> AsyncGenerator[str]:
        yield sentence

    start = clock()
    job = await engine.async_start(SynthesisOptions(), voice)
    alone = engine.active_requests == 1
    first: float | None = None
    size = 0
    stream = job.stream(text())
    try:
        async for pcm in stream:
            if first is None:
                first = clock() - start
            size += len(pcm)
            alone = alone and engine.active_requests == 1
    finally:
        await stream.aclose()
    total = clock() - start
    timing = SentenceTiming(
        characters=len(sentence),
        audio_seconds=size / (SAMPLE_WIDTH * CHANNELS * job.sample_rate),
        synthesis_seconds=total,
        first_audio_seconds=total if first is None else first,
    )
    return timing, alone


async def _best_of(
    engine: PiperEngine,
    voice: str,
    sentence: str,
    clock: Callable[[], float],
    *,
    attempts: int,
    idle_poll: float,
    idle_patience: float,
) -> SentenceTiming:
    """The fastest of up to ``attempts`` runs; stops at the first undisturbed one."""
    best: SentenceTiming | None = None
    busy: EngineBusyError | None = None
    for _ in range(max(1, attempts)):
        await _wait_idle(engine, idle_poll, idle_patience)
        try:
            timing, alone = await _time_sentence(engine, voice, sentence, clock)
        except EngineBusyError as err:  # full of real requests: they win
            busy = err
            continue
        if best is None or timing.synthesis_seconds < best.synthesis_seconds:
            best = timing
        if alone:
            break
    if best is None:
        assert busy is not None
        raise busy
    return best


async def async_measure(
    engine: PiperEngine,
    voice: str,
    cpu: CpuInfo,
    *,
    quality: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
    wall_clock: Callable[[], float] = time.time,
    attempts: int = ATTEMPTS,
    idle_poll: float = IDLE_POLL,
    idle_patience: float = IDLE_PATIENCE,
) -> Measurement:
    """Measure ``voice`` on ``engine``: warm-up, then the short and the long sentence.

    Raises the engine's errors (EngineError subclasses) when the voice cannot speak.
    """
    await _wait_idle(engine, idle_poll, idle_patience)
    await _best_of(
        engine, voice, WARM_UP_SENTENCE, clock, attempts=1, idle_poll=idle_poll, idle_patience=0
    )
    timings = [
        await _best_of(
            engine,
            voice,
            sentence,
            clock,
            attempts=attempts,
            idle_poll=idle_poll,
            idle_patience=idle_patience,
        )
        for sentence in (SHORT_SENTENCE, LONG_SENTENCE)
    ]
    return Measurement(
        voice=voice,
        quality=quality,
        backend=engine.backend or "unknown",
        phonemizer=engine.phonemizer,
        cpu=cpu,
        short=timings[0],
        long=timings[1],
        measured_at=wall_clock(),
    )


# -- estimates and recommendations -------------------------------------------------------------


def relative_cost(quality: str | None) -> float:
    """The documented cost of a quality per second of speech (medium = 1)."""
    return RELATIVE_COST.get(quality or "medium", 1.0)


def quality_rank(quality: str | None) -> int:
    """0 (x_low) to 3 (high); unknown counts as medium."""
    return QUALITY_RANK.get(quality or "medium", QUALITY_RANK["medium"])


def estimate_rtf(
    quality: str | None, measurement: Measurement, measured: Iterable[Measurement] = ()
) -> float:
    """Expected real-time factor of a voice of ``quality`` on the measured machine.

    A measurement in ``measured`` of a voice of that quality on the same CPU and backend wins
    (the mean of them); otherwise the measured voice's factor is scaled by the documented
    relative costs.
    """
    same = [
        m.real_time_factor
        for m in measured
        if m.quality == quality
        and m.backend == measurement.backend
        and m.cpu.fingerprint == measurement.cpu.fingerprint
    ]
    if same:
        return sum(same) / len(same)
    return (
        measurement.real_time_factor * relative_cost(quality) / relative_cost(measurement.quality)
    )


def estimate_seconds(
    quality: str | None,
    measurement: Measurement,
    *,
    audio_seconds: float | None = None,
    measured: Iterable[Measurement] = (),
) -> float:
    """Expected synthesis time on this machine of a voice of ``quality`` (an estimate).

    For ``audio_seconds`` of speech; by default the long check sentence's duration (about six
    seconds of speech: a typical announcement).
    """
    seconds = measurement.long.audio_seconds if audio_seconds is None else audio_seconds
    return seconds * estimate_rtf(quality, measurement, measured)


def voice_family(key: str) -> str:
    """The voice without its quality: 'en_US-joe-medium' -> 'en_US-joe'."""
    family, sep, quality = key.rpartition("-")
    return family if sep and quality in QUALITY_RANK else key


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A voice recommended instead of a slow one."""

    key: str
    name: str  # "Joe (en-US, low)"
    language: str
    quality: str | None
    installed: bool
    size: int  # bytes to download (0 when installed)
    estimated_rtf: float
    same_family: bool

    @property
    def fits(self) -> bool:
        """Expected within the limit."""
        return self.estimated_rtf <= RTF_LIMIT


def recommend(
    measurement: Measurement,
    language: str,
    installed: Mapping[str, VoiceInfo],
    catalog: Mapping[str, CatalogVoice],
    *,
    exclude: Collection[str] = (),
    limit: float = RTF_LIMIT,
    max_candidates: int = 6,
    measured: Iterable[Measurement] = (),
) -> list[Candidate]:
    """Faster voices of ``language`` for a machine that measured ``measurement``, best first.

    First the same voice family's lower qualities (the best one expected within ``limit``, or
    the fastest one when none is), then other voices of the language expected within the limit,
    best quality first, installed before downloadable. When nothing at all is expected within
    the limit, the fastest voices of the language that are faster than the measured one.
    ``exclude``: voices that cannot be chosen (other entries' voices).
    """
    history = list(measured)
    family = voice_family(measurement.voice)
    skip = {measurement.voice, *exclude}
    pool: dict[str, Candidate] = {}

    def add(key: str, name: str, quality: str | None, size: int, *, is_installed: bool) -> None:
        if key in skip or key in pool:
            return
        pool[key] = Candidate(
            key=key,
            name=name,
            language=language,
            quality=quality,
            installed=is_installed,
            size=0 if is_installed else size,
            estimated_rtf=estimate_rtf(quality, measurement, history),
            same_family=voice_family(key) == family,
        )

    for info in installed.values():
        if info.language == language:
            add(info.key, info.display_name, info.quality, 0, is_installed=True)
    for voice in catalog.values():
        if voice.language == language:
            add(voice.key, voice.display_name, voice.quality, voice.size, is_installed=False)

    def order(candidate: Candidate) -> tuple[int, bool, str, str]:
        return (
            -quality_rank(candidate.quality),
            not candidate.installed,
            candidate.name.casefold(),
            candidate.key,
        )

    current = quality_rank(measurement.quality)
    lower = sorted(
        (c for c in pool.values() if c.same_family and quality_rank(c.quality) < current),
        key=order,
    )
    picks = [c for c in lower if c.estimated_rtf <= limit][:1] or lower[-1:]
    others = sorted(
        (c for c in pool.values() if not c.same_family and c.estimated_rtf <= limit), key=order
    )
    picks += others
    if not picks:
        faster = [c for c in pool.values() if c.estimated_rtf < measurement.real_time_factor]
        picks = sorted(faster, key=lambda c: (c.estimated_rtf, not c.installed, c.key))
    return picks[: max(1, max_candidates)]
