"""Chime, repeat and tail padding of announcement audio. Pure: imports nothing from HA.

An announcement is one audio stream (one fetch by the speaker, no gap)::

    leading silence, opening chime, speech, (repeat gap, speech) x (repeat - 1),
    closing chime, trailing silence

- The **built-in chimes** are made here, at the stream's own sample rate: two sine tones with
  a short attack and an exponential decay, a falling pair before the speech ("ding-dong") and a
  rising pair after it. No recorded audio ships with the project.
- A **media chime** (a file, an http(s) URL or a media-source id, see ``docs/options.md``) is
  fetched by the Home Assistant side (``chime_media.py``) and decoded here by ffmpeg (an
  asyncio subprocess: never blocks the event loop) into 16-bit mono PCM at the voice's rate.
- :func:`compose` wraps the engine's sentence stream: the opening goes out together with the
  first sentence (so the first audio still comes as soon as the first sentence is ready), each
  later sentence as it comes, and the repetitions are replayed from the speech already made
  (synthesized once).
"""

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from functools import lru_cache
import hashlib
import math
from typing import Final

import numpy as np

from .engine import silence
from .exceptions import InvalidRequestError
from .options import DEFAULT_REPEAT_GAP, SynthesisOptions

#: A media chime longer than this is refused (a chime, not a song).
MAX_CHIME_SECONDS: Final = 10.0
#: Bytes a fetched chime file may have.
MAX_CHIME_BYTES: Final = 5 * 1024 * 1024
#: Silence between a chime and the speech.
CHIME_GAP: Final = 0.15
#: How long ffmpeg may take to decode a chime.
DECODE_TIMEOUT: Final = 20.0


# The built-in sound: (frequency Hz, start s, length s) of each tone; level of full scale.
OPENING_TONES: Final = ((1046.5, 0.0, 0.45), (784.0, 0.2, 0.6))  # C6 then G5: falling
CLOSING_TONES: Final = ((784.0, 0.0, 0.45), (1046.5, 0.2, 0.6))  # G5 then C6: rising
CHIME_LEVEL: Final = 0.4
ATTACK_SECONDS: Final = 0.006
DECAY_SECONDS: Final = 0.16  # time constant of the exponential decay


class ChimeNotAllowedError(InvalidRequestError):
    """A chime file outside the config folder and the allowlisted folders."""

    translation_key = "chime_not_allowed"


class ChimeNotFoundError(InvalidRequestError):
    """A chime file that does not exist."""

    translation_key = "chime_not_found"


class ChimeUnavailableError(InvalidRequestError):
    """A chime that could not be fetched or decoded (or is too long)."""

    translation_key = "chime_unavailable"


# -- sounds -----------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def builtin_chime(sample_rate: int, closing: bool = False) -> bytes:
    """The built-in chime as 16-bit mono PCM at ``sample_rate`` (opening or closing pair)."""
    tones = CLOSING_TONES if closing else OPENING_TONES
    length = max(start + seconds for _, start, seconds in tones)
    t = np.arange(round(length * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for frequency, start, seconds in tones:
        local = t - start
        inside = (local >= 0) & (local < seconds)
        envelope = np.where(
            inside,
            np.minimum(local / ATTACK_SECONDS, 1.0) * np.exp(-np.maximum(local, 0) / DECAY_SECONDS),
            0.0,
        )
        # A quick fade over the last 20 ms: no click where the tone stops.
        envelope *= np.clip((start + seconds - t) / 0.02, 0.0, 1.0)
        out += envelope * np.sin(2 * math.pi * frequency * local)
    out *= CHIME_LEVEL / max(float(np.abs(out).max()), 1e-9)
    return bytes((out * 32767).astype("<i2").tobytes())


def resample(pcm: bytes, rate: int, target: int) -> bytes:
    """16-bit mono PCM at another rate (linear interpolation; a chime needs no more)."""
    if rate == target or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    count = max(1, round(len(samples) * target / rate))
    positions = np.arange(count) * (rate / target)
    out = np.interp(positions, np.arange(len(samples)), samples)
    return bytes(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes())


def ffmpeg_command(binary: str, source: str, sample_rate: int) -> list[str]:
    """The ffmpeg command: ``source`` (a path, or ``pipe:0``) to mono s16le at the rate."""
    return [
        binary,
        "-hide_banner",
        *(["-nostdin"] if source != "pipe:0" else []),
        "-loglevel",
        "error",
        "-i",
        source,
        "-t",
        f"{MAX_CHIME_SECONDS + 0.5:g}",  # enough to know it is too long
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-f",
        "s16le",
        "-acodec",
        "pcm_s16le",
        "pipe:1",
    ]


async def async_decode(
    binary: str, sample_rate: int, *, path: str | None = None, data: bytes | None = None
) -> bytes:
    """A media file (``path``) or its bytes (``data``) as mono PCM; ChimeUnavailableError."""
    source = path if path is not None else "pipe:0"
    try:
        process = await asyncio.create_subprocess_exec(
            *ffmpeg_command(binary, source, sample_rate),
            stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as err:
        raise ChimeUnavailableError(f"ffmpeg cannot run: {err}", error=f"ffmpeg: {err}") from err
    try:
        async with asyncio.timeout(DECODE_TIMEOUT):
            pcm, errors = await process.communicate(data)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ChimeUnavailableError("ffmpeg timed out", error="decoding timed out") from None
    if process.returncode != 0 or not pcm:
        reason = errors.decode(errors="replace").strip().splitlines()
        detail = reason[-1][:200] if reason else "no audio in it"
        raise ChimeUnavailableError(f"not decodable: {detail}", error=f"not audio ({detail})")
    seconds = len(pcm) / (2 * sample_rate)
    if seconds > MAX_CHIME_SECONDS:
        raise ChimeUnavailableError("chime too long", error=f"longer than {MAX_CHIME_SECONDS:g} s")
    return pcm[: len(pcm) - len(pcm) % 2]


# -- the stream -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Composition:
    """What surrounds the speech of one announcement (PCM at ``sample_rate``)."""

    sample_rate: int
    opening: bytes = b""
    closing: bytes = b""
    repeat: int = 1
    repeat_gap: float = DEFAULT_REPEAT_GAP

    @property
    def key(self) -> str:
        """Identity for the audio cache: the sounds themselves, repeat and gap."""
        digest = hashlib.sha256()
        for part in (self.opening, self.closing):
            digest.update(hashlib.sha256(part).digest())
        digest.update(f"{self.sample_rate}/{self.repeat}/{self.repeat_gap}".encode())
        return digest.hexdigest()


def sound_with_gap(pcm: bytes, sample_rate: int, *, before: bool) -> bytes:
    """A chime with ``CHIME_GAP`` of silence between it and the speech ('' stays '')."""
    if not pcm:
        return b""
    gap = silence(CHIME_GAP, sample_rate)
    return gap + pcm if before else pcm + gap


async def compose(
    speech: AsyncGenerator[bytes],
    plan: Composition,
    sample_rate: int,
    *,
    leading_silence: float = 0.0,
    trailing_silence: float = 0.0,
) -> AsyncGenerator[bytes]:
    """The announcement around ``speech`` (the engine's sentences, without lead or tail).

    The leading silence and the opening chime go out with the first sentence; the speech is
    kept only when it is repeated. Nothing comes out when no speech did.
    """
    opening = silence(leading_silence, sample_rate) + sound_with_gap(
        resample(plan.opening, plan.sample_rate, sample_rate), sample_rate, before=False
    )
    recorded: list[bytes] = []
    spoke = False
    try:
        async for pcm in speech:
            if plan.repeat > 1:
                recorded.append(pcm)
            yield (opening + pcm) if not spoke else pcm
            spoke = True
    finally:
        await speech.aclose()
    if not spoke:
        return
    gap = silence(plan.repeat_gap, sample_rate)
    for _ in range(plan.repeat - 1):
        yield gap
        for pcm in recorded:
            yield pcm
    closing = sound_with_gap(
        resample(plan.closing, plan.sample_rate, sample_rate), sample_rate, before=True
    )
    if tail := closing + silence(trailing_silence, sample_rate):
        yield tail


def job_options(options: SynthesisOptions, plan: Composition | None) -> SynthesisOptions:
    """The engine's options under a composition: lead and tail are added around it."""
    if plan is None:
        return options
    return replace(options, leading_silence=0.0, trailing_silence=0.0)


def around(
    speech: AsyncGenerator[bytes],
    plan: Composition | None,
    options: SynthesisOptions,
    sample_rate: int,
) -> AsyncGenerator[bytes]:
    """``speech`` within its composition (as is without one); ``options`` as requested."""
    if plan is None:
        return speech
    return compose(
        speech,
        plan,
        sample_rate,
        leading_silence=options.leading_silence,
        trailing_silence=options.trailing_silence,
    )
