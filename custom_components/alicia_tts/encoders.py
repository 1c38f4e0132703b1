"""Encoders: 16-bit mono PCM to WAV or MP3, piece by piece, and the pacing of encoding. Pure.

WAV is a streaming header (unknown length) then the samples; MP3 is encoded in-process by
``lameenc`` when it is installed (glibc only: installed at setup, never in ``manifest.json``).
The first audio of a stream is encoded in a short first piece (:func:`first_pieces`) and later
sentences are made while the previous one is encoded (:func:`read_ahead`).
"""

import asyncio
from collections.abc import AsyncGenerator
import contextlib
import importlib
import io
import struct
from typing import Any, Final, Protocol

MP3_BITRATE_KBPS: Final = 64
MP3_REQUIREMENT: Final = "lameenc==1.9.0"


class StreamEncoder(Protocol):
    """Turns 16-bit mono PCM into a file format, piece by piece."""

    extension: str

    def start(self) -> bytes:
        """Bytes that open the file."""

    def encode(self, pcm: bytes) -> bytes:
        """Encode more PCM (blocking: CPU work)."""

    def finish(self) -> bytes:
        """Bytes that close the file."""

    def final_header(self, pcm_bytes: int) -> tuple[int, bytes] | None:
        """Once complete: bytes to write at an offset so the file states its true length."""


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """A 44-byte header for 16-bit mono PCM; ``None``: length unknown (sizes 0, streaming)."""
    size = 0 if data_bytes is None else data_bytes
    riff = 0 if data_bytes is None else 36 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        size,
    )


class WavEncoder:
    """Streaming WAV: a header of unknown length, then PCM as it comes."""

    extension = "wav"

    def __init__(self, sample_rate: int) -> None:
        """Remember the rate for the header."""
        self.sample_rate = sample_rate

    def start(self) -> bytes:
        """Header with sizes 0 (read to the end)."""
        return wav_header(self.sample_rate)

    def encode(self, pcm: bytes) -> bytes:
        """PCM passes through."""
        return pcm

    def finish(self) -> bytes:
        """Nothing closes a WAV stream."""
        return b""

    def final_header(self, pcm_bytes: int) -> tuple[int, bytes] | None:
        """The header with the real sizes, for clients that come after completion."""
        return 0, wav_header(self.sample_rate, pcm_bytes)


class Mp3Encoder:
    """MP3 encoded in-process with LAME (``lameenc``), frame by frame as PCM arrives."""

    extension = "mp3"

    def __init__(self, sample_rate: int, bitrate: int = MP3_BITRATE_KBPS) -> None:
        """Set up LAME for mono input at the voice's rate (blocking import)."""
        lameenc: Any = importlib.import_module("lameenc")
        self._encoder = lameenc.Encoder()
        self._encoder.set_bit_rate(bitrate)
        self._encoder.set_in_sample_rate(sample_rate)
        self._encoder.set_channels(1)
        self._encoder.set_quality(5)

    def start(self) -> bytes:
        """MP3 needs no header."""
        return b""

    def encode(self, pcm: bytes) -> bytes:
        """Encode PCM; returns the complete frames so far."""
        return bytes(self._encoder.encode(pcm))

    def finish(self) -> bytes:
        """Flush the last frames."""
        return bytes(self._encoder.flush())

    def final_header(self, pcm_bytes: int) -> tuple[int, bytes] | None:
        """MP3 frames need no fix-up."""
        return None


def audio_duration(extension: str, data: bytes) -> float | None:
    """Length in seconds of complete MP3 or WAV audio (blocking: parses the file)."""
    if extension == "wav" and data[:4] == b"RIFF" and len(data) >= 44:
        rate = struct.unpack_from("<I", data, 24)[0]
        block = struct.unpack_from("<H", data, 32)[0] or 2
        return (len(data) - 44) / (rate * block) if rate else None
    if extension == "mp3":
        mutagen_mp3: Any = importlib.import_module("mutagen.mp3")
        try:
            return float(mutagen_mp3.MP3(io.BytesIO(data)).info.length)
        except Exception:  # noqa: BLE001 - any unreadable MP3 just has no known duration
            return None
    return None


def mp3_available() -> bool:
    """Whether the MP3 encoder can be imported (blocking)."""
    try:
        importlib.import_module("lameenc")
    except ImportError:
        return False
    return True


def make_encoder(extension: str, sample_rate: int) -> StreamEncoder:
    """An encoder for ``mp3`` or ``wav`` (blocking for mp3: imports lameenc)."""
    if extension == "mp3":
        return Mp3Encoder(sample_rate)
    if extension == "wav":
        return WavEncoder(sample_rate)
    raise ValueError(f"unsupported audio format {extension!r}")


# The first piece of a stream's audio is encoded on its own, so the first encoded bytes reach a
# speaker without waiting for the encoder to go through a whole first sentence (with its
# leading silence and chime); seconds of audio.
FIRST_PIECE_SECONDS: Final = 0.25
# Sentences made ahead while the previous one is being encoded.
READ_AHEAD: Final = 2


def first_pieces(pcm: bytes, sample_rate: int) -> list[bytes]:
    """The first audio of a stream split into a short first piece and the rest (16-bit mono)."""
    cut = int(sample_rate * FIRST_PIECE_SECONDS) * 2
    if len(pcm) <= cut:
        return [pcm]
    return [pcm[:cut], pcm[cut:]]


async def read_ahead(
    source: AsyncGenerator[bytes], depth: int = READ_AHEAD
) -> AsyncGenerator[bytes]:
    """``source``'s items, pulled by a task of their own up to ``depth`` items ahead.

    The next sentence is synthesized while the consumer encodes the previous one. Errors of
    ``source`` reach the consumer in order; a consumer that stops (or is cancelled) stops the
    task, and ``source`` is always closed.
    """
    queue: asyncio.Queue[tuple[bytes | None, Exception | None]] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put((item, None))
        except Exception as err:  # noqa: BLE001 - handed to the consumer, in order
            await queue.put((None, err))
            return
        finally:
            await source.aclose()
        await queue.put((None, None))

    task = asyncio.get_running_loop().create_task(pump())
    try:
        while True:
            item, error = await queue.get()
            if error is not None:
                raise error
            if item is None:
                return
            yield item
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
