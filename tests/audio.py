"""Decoding helpers: what a listener would check in the audio we produce."""

from dataclasses import dataclass
import struct

import numpy as np


@dataclass(frozen=True)
class Wav:
    """A decoded 16-bit PCM WAV."""

    sample_rate: int
    channels: int
    sample_width: int
    samples: np.ndarray

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    @property
    def rms(self) -> float:
        """Root mean square level, 0..1 of full scale."""
        if len(self.samples) == 0:
            return 0.0
        return float(np.sqrt(np.mean((self.samples / 32768.0) ** 2)))

    def leading_silence(self, threshold: float = 0.01) -> float:
        """Seconds before the first sample louder than ``threshold`` (full scale 1.0)."""
        loud = np.nonzero(np.abs(self.samples) > threshold * 32768)[0]
        return (loud[0] if len(loud) else len(self.samples)) / self.sample_rate


def parse_wav(data: bytes) -> Wav:
    """Decode a WAV file, accepting the streaming form whose sizes are 0 (read to the end)."""
    riff, _size, wave_id = struct.unpack_from("<4sI4s", data, 0)
    assert riff == b"RIFF"
    assert wave_id == b"WAVE"
    pos = 12
    fmt: tuple[int, ...] | None = None
    while pos + 8 <= len(data):
        chunk_id, chunk_size = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", data, body)
        elif chunk_id == b"data":
            assert fmt is not None
            end = len(data) if chunk_size in (0, 0xFFFFFFFF) else body + chunk_size
            assert end <= len(data), "data chunk longer than the file"
            audio_format, channels, rate, _byte_rate, _align, bits = fmt
            assert audio_format == 1
            pcm = data[body:end]
            return Wav(rate, channels, bits // 8, np.frombuffer(pcm, dtype="<i2"))
        pos = body + chunk_size + (chunk_size & 1)
    raise AssertionError("no data chunk")
