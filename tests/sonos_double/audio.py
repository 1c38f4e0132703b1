"""What the double does with fetched audio: sniff the format, decode it, analyse it."""

from dataclasses import dataclass
import importlib
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from .const import MAX_WAV_SAMPLE_RATE, MP3_SAMPLE_RATES, SILENCE_THRESHOLD


class AudioFormatError(Exception):
    """The bytes are not audio a Sonos speaker would play."""


@dataclass
class DecodedAudio:
    """PCM samples (int16, frames x channels) and what the file said about itself."""

    format: str
    sample_rate: int
    channels: int
    bits_per_sample: int
    samples: npt.NDArray[np.int16]

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


@dataclass
class AudioReport:
    """What a listener would notice about decoded audio."""

    format: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bits_per_sample: int | None = None
    duration_s: float | None = None
    rms: float | None = None
    peak: float | None = None
    leading_silence_ms: float | None = None
    trailing_silence_ms: float | None = None
    error: str | None = None


def sniff_format(data: bytes) -> str | None:
    """The audio container from magic bytes: wav, mp3, flac, ogg, aac, or None."""
    if len(data) >= 12 and data[:4] in (b"RIFF", b"RIFX") and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3":
        return "mp3"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync: layer bits 00 mean AAC in an ADTS frame
        return "mp3" if data[1] & 0x06 else "aac"
    return None


def _decode_wav(data: bytes) -> DecodedAudio:
    """RIFF/WAVE PCM; a data (or RIFF) size of 0 or 0xFFFFFFFF means 'read to the end'."""
    if data[:4] != b"RIFF":
        raise AudioFormatError("big-endian RIFX WAV is not supported")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16:
                raise AudioFormatError("WAV fmt chunk is too short")
            audio_format, channels, rate, _byte_rate, _align, bits = struct.unpack_from(
                "<HHIIHH", data, body
            )
            if audio_format == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: sub-format GUID
                audio_format = struct.unpack_from("<H", data, body + 24)[0]
            fmt = (audio_format, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("WAV data chunk comes before the fmt chunk")
            return _wav_samples(data, body, size, fmt)
        if size in (0, 0xFFFFFFFF):
            raise AudioFormatError(f"WAV chunk {chunk_id!r} has no usable size")
        pos = body + size + (size & 1)
    raise AudioFormatError("WAV has no data chunk")


def _wav_samples(data: bytes, body: int, size: int, fmt: tuple[int, int, int, int]) -> DecodedAudio:
    audio_format, channels, rate, bits = fmt
    if audio_format != 1:
        raise AudioFormatError(f"WAV format tag {audio_format} is not integer PCM")
    if bits != 16:
        raise AudioFormatError(f"WAV must be 16-bit PCM, this is {bits}-bit")
    if not 1 <= channels <= 2:
        raise AudioFormatError(f"WAV has {channels} channels; Sonos plays mono or stereo")
    if not 0 < rate <= MAX_WAV_SAMPLE_RATE:
        raise AudioFormatError(f"WAV sample rate {rate} Hz is above 48 kHz")
    available = len(data) - body
    if size in (0, 0xFFFFFFFF):
        size = available  # the streaming form: read to the end
    elif size > available:
        raise AudioFormatError(f"WAV data chunk declares {size} bytes but only {available} arrived")
    frame_bytes = 2 * channels
    usable = size - size % frame_bytes
    samples = np.frombuffer(data, dtype="<i2", count=usable // 2, offset=body)
    return DecodedAudio("wav", rate, channels, 16, samples.astype(np.int16).reshape(-1, channels))


def _miniaudio() -> Any:
    try:
        return importlib.import_module("miniaudio")
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise AudioFormatError("the miniaudio package is needed to decode MP3/FLAC/Ogg") from err


def _decode_compressed(data: bytes, fmt: str) -> DecodedAudio:
    """MP3, FLAC or Ogg Vorbis at their native rate and channel count (miniaudio)."""
    mini = _miniaudio()
    readers = {
        "mp3": (mini.mp3_get_info, mini.mp3_read_s16),
        "flac": (mini.flac_get_info, mini.flac_read_s16),
        "ogg": (mini.vorbis_get_info, mini.vorbis_read),
    }
    get_info, read = readers[fmt]
    try:
        info = get_info(data)
        decoded = read(data)
    except mini.MiniaudioError as err:
        raise AudioFormatError(f"{fmt} does not decode: {err}") from err
    channels = int(info.nchannels)
    rate = int(info.sample_rate)
    if channels < 1 or rate < 1:
        raise AudioFormatError(f"{fmt} reports {channels} channels at {rate} Hz")
    samples = np.frombuffer(decoded.samples, dtype=np.int16).copy()
    samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
    return DecodedAudio(fmt, rate, channels, 16, samples)


def decode_audio(data: bytes) -> DecodedAudio:
    """Decode bytes by their magic like a speaker does, ignoring any Content-Type."""
    if not data:
        raise AudioFormatError("no bytes to decode")
    fmt = sniff_format(data)
    if fmt == "wav":
        return _decode_wav(data)
    if fmt in ("mp3", "flac", "ogg"):
        return _decode_compressed(data, fmt)
    if fmt == "aac":
        raise AudioFormatError("AAC (ADTS) is not decoded by the double")
    raise AudioFormatError(f"unrecognised audio data starting {data[:8].hex(' ')}")


def analyse_audio(data: bytes, *, audio_clip: bool = False) -> AudioReport:
    """Decode and measure; the speaker's own rules end up in ``error``."""
    report = AudioReport(format=sniff_format(data) if data else None)
    try:
        audio = decode_audio(data)
    except AudioFormatError as err:
        report.error = str(err)
        return report
    report.format = audio.format
    report.sample_rate = audio.sample_rate
    report.channels = audio.channels
    report.bits_per_sample = audio.bits_per_sample
    report.duration_s = audio.duration_s
    if len(audio.samples):
        level = np.abs(audio.samples.astype(np.float64) / 32768.0)
        loudest = level.max(axis=1)
        report.peak = float(loudest.max())
        report.rms = float(np.sqrt(np.mean(level**2)))
        loud = np.flatnonzero(loudest > SILENCE_THRESHOLD)
        frames = len(loudest)
        first = int(loud[0]) if len(loud) else frames
        last = int(loud[-1]) + 1 if len(loud) else frames
        report.leading_silence_ms = 1000.0 * first / audio.sample_rate
        report.trailing_silence_ms = 1000.0 * (frames - last) / audio.sample_rate
    else:
        report.peak = report.rms = 0.0
        report.leading_silence_ms = report.trailing_silence_ms = 0.0
    if audio.format == "mp3" and audio.sample_rate not in MP3_SAMPLE_RATES:
        report.error = f"MP3 at {audio.sample_rate} Hz is not played by Sonos"
    elif audio_clip and audio.format not in ("mp3", "wav"):
        report.error = f"audio clips must be MP3 or WAV; a {audio.format} clip plays silently"
    elif not report.duration_s:
        report.error = "decoded to no audio"
    return report
