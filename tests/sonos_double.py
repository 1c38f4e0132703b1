"""A loopback Sonos speaker test double for soco 0.31 and sonos-websocket 0.2.

Each `FakeSonosSpeaker` serves what soco and Home Assistant talk to on a real player:

* UPnP on ``http://127.0.0.N:1400``: ``/xml/device_description.xml``, the SCPD files
  ``/xml/{Service}1.xml``, SOAP control on ``/.../Control`` (AVTransport, RenderingControl,
  GroupRenderingControl, ContentDirectory, ZoneGroupTopology, DeviceProperties, AlarmClock)
  with UPnP faults (401, 402, 701, 711, 714, 718), and SUBSCRIBE/UNSUBSCRIBE on
  ``/.../Event`` with NOTIFY events sent back to loopback callbacks.
* The audioClip websocket on ``wss://127.0.0.N:1443/websocket/api`` (self-signed TLS).
* What Home Assistant's core ``sonos`` integration reads besides: favorites (``Browse FV:2``),
  alarms (``ListAlarms``/``CreateAlarm``/``UpdateAlarm``/``DestroyAlarm``), the sleep timer,
  button lock, home-theatre EQ on soundbar models (``GetEQ``/``SetEQ``),
  ``/status/batterystatus`` on portable models, and full AVTransport/ContentDirectory events.
* ``/double/status`` (not on real speakers): the speaker's state and every fetch as JSON.

Timing like a real speaker: events (UPnP NOTIFY, websocket ``audioClipStatus``) go out
``event_delay`` seconds after the change (default ``DEFAULT_EVENT_DELAY``, 100 ms), in order; a
group change made through a speaker (join, leave) shows in the topology it reports
(``GetZoneGroupState``, ZoneGroupTopology events) only after that delay, while the speakers
already play as the new group; ``start_delay`` passes between a complete fetch and the start of
playing. The clip port can be closed (``websocket=False``) or refuse the handshake
(``websocket_refuse``). ``event_delay=0`` makes everything immediate.

soco 0.31 always talks to port 1400, so every speaker binds its own loopback address
(127.0.0.2, 127.0.0.3, ...; 127.0.0.1 is left to soco's event listener and Home Assistant).

Like a speaker, the double really fetches what it is told to play (AVTransport ``Play`` of an
http URI, or websocket ``loadAudioClip``), decodes it from its magic bytes (WAV, MP3, FLAC, Ogg
Vorbis) and keeps a `PlaybackRecord` per fetch in ``speaker.played``.

Everything runs on the running asyncio loop (in Home Assistant tests: HA's loop). soco is
synchronous, so call it in a worker thread::

    async with FakeHousehold.create(2) as household:  # 127.0.0.2 and 127.0.0.3
        kitchen = household["Kitchen"]
        device = soco.SoCo(kitchen.ip)
        await asyncio.to_thread(device.play_uri, "http://127.0.0.1:8123/tts.mp3")
        record = await kitchen.wait_played(1)  # PlaybackRecord: format, duration_s, ...

Bonded sets (``FakeHousehold.bond_pair``, ``bond_theatre``): a stereo pair's second speaker is
an ``Invisible="1"`` ``ZoneGroupMember`` with the pair's ``ChannelMapSet``; a home theatre's Sub
and surrounds are ``Satellite`` elements of the main speaker with its ``HTSatChanMapSet``. The
set moves between groups with its main speaker and shares its volume and mute; what the main
speaker plays through AVTransport every member plays too (a `PlaybackRecord` with
``bonded_from`` and ``channel`` in each member's ``played``), while an audio clip plays on the
main speaker and its Sub only, as on real sets.

Presets (no fetch): ``preset_radio``, ``preset_line_in``, ``preset_tv``, ``preset_queue``,
``preset_source``, ``apply_preset`` (by name); household-wide ``add_favorite``, ``add_alarm``;
plain attributes (``volume``, ``mute``, ``bass``, ``treble``, ``loudness``, ``play_mode``,
``crossfade``, ``buttons_locked``, ``eq``, ``battery_level``) can be set directly.
Assertions: ``played``, ``clips``, ``soap_log``, ``faults``, ``transport_history``, ``ws_log``,
``notifications``, ``errors`` (bugs in the double), ``transport_state``, ``position()``,
``status()``. Waiting: ``wait_played``, ``wait_idle``, ``wait_state``, ``wait_for``, and the
household's ``wait_topology`` (``publish_topology`` skips the delay in set-ups). Test
helpers: ``allow_loopback_hosts`` (after ``socket_enabled``), ``soco_reset``,
``soco_forget_topology``.

Run ``python -m tests.sonos_double --speakers 2 --preset Kitchen=radio`` from the repository root
to serve fake speakers until Ctrl-C; ``--preset ROOM=STATE`` with one of ``PRESETS``;
``--event-delay``, ``--start-delay`` and ``--no-websocket`` as above.
"""

import argparse
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
import datetime
import importlib
import ipaddress
import itertools
import json
import logging
import math
from pathlib import PurePosixPath
import re
import ssl
import struct
import tempfile
import time
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import aiohttp
from aiohttp import web
import numpy as np
import numpy.typing as npt

_LOGGER = logging.getLogger(__name__)

SONOS_PORT: Final = 1400
WEBSOCKET_PORT: Final = 1443
WEBSOCKET_PATH: Final = "/websocket/api"
WEBSOCKET_PROTOCOL: Final = "v1.api.smartspeaker.audio"
API_KEY_HEADER: Final = "X-Sonos-Api-Key"
#: The double's own JSON status (not on a real speaker): state and what it fetched.
STATUS_PATH: Final = "/double/status"

#: Hosts a test must be allowed to connect to: the speakers, HA/soco on 127.0.0.1, and ::1.
LOOPBACK_HOSTS: Final[tuple[str, ...]] = (*(f"127.0.0.{n}" for n in range(1, 64)), "::1")

STOPPED: Final = "STOPPED"
PLAYING: Final = "PLAYING"
PAUSED: Final = "PAUSED_PLAYBACK"
TRANSITIONING: Final = "TRANSITIONING"
TRANSPORT_STATES: Final = (STOPPED, PLAYING, PAUSED, TRANSITIONING)

#: Extensions a speaker types a bare http URI by (no metadata): anything else gets 714.
KNOWN_AUDIO_EXTENSIONS: Final = frozenset(
    {".mp3", ".wav", ".flac", ".ogg", ".m4a", ".mp4", ".wma", ".aif", ".aiff"}
)
#: MP3 sample rates Sonos plays (not 8 or 11.025 kHz).
MP3_SAMPLE_RATES: Final = frozenset({16000, 22050, 24000, 32000, 44100, 48000})
MAX_WAV_SAMPLE_RATE: Final = 48000
#: Samples louder than this (full scale 1.0, about -40 dBFS) end the leading silence.
SILENCE_THRESHOLD: Final = 0.01
MAX_FETCH_BYTES: Final = 64 * 1024 * 1024
PLAY_MODES: Final = frozenset(
    {"NORMAL", "REPEAT_ALL", "SHUFFLE", "SHUFFLE_NOREPEAT", "REPEAT_ONE", "SHUFFLE_REPEAT_ONE"}
)
#: Sources that are never fetched: they "play" as soon as Play arrives.
LIVE_PREFIXES: Final = (
    "x-sonosapi-stream:",
    "x-sonosapi-radio:",
    "x-sonosapi-hls:",
    "x-rincon-stream:",
    "x-sonos-htastream:",
    "aac:",
    "hls-radio:",
)
#: Sources with no position to seek in.
UNSEEKABLE_PREFIXES: Final = (*LIVE_PREFIXES, "x-rincon-mp3radio:")

DEFAULT_HOUSEHOLD_ID: Final = "Sonos_LoopbackDouble0000000001"
#: How long after a change a speaker's events go out and a group change shows in its topology
#: (real speakers: about 50 to 500 ms). ``event_delay=0`` makes everything immediate.
DEFAULT_EVENT_DELAY: Final = 0.1
#: Clip states after which a clip no longer plays (Sonos ``audioClipState``).
CLIP_ENDED: Final = frozenset({"DONE", "DISMISSED", "ERROR", "INTERRUPTED"})
#: Models (by the end of their name) with a TV input and home-theatre EQ (GetEQ/SetEQ).
SOUNDBAR_MODELS: Final = ("arc", "arc ultra", "beam", "playbar", "playbase", "ray")
#: Models with a battery (``/status/batterystatus`` reports it).
BATTERY_MODELS: Final = ("move", "move 2", "roam", "roam sl", "roam 2")
#: Home-theatre EQ types and their defaults (``GetEQ``/``SetEQ`` on soundbars).
SOUNDBAR_EQ: Final = {
    "NightMode": 0,
    "DialogLevel": 0,
    "SubEnabled": 1,
    "SubGain": 0,
    "SurroundEnable": 1,
    "SurroundLevel": 0,
    "MusicSurroundLevel": 0,
    "SurroundMode": 0,
    "AudioDelay": 0,
}
#: Presets the command line offers (``--preset ROOM=NAME``).
PRESETS: Final = ("radio", "radio-paused", "queue", "queue-paused", "line-in", "tv", "stopped")
DEFAULT_NAMES: Final = ("Living Room", "Kitchen", "Office", "Bedroom", "Bathroom", "Garage")

NS_SOAP: Final = "http://schemas.xmlsoap.org/soap/envelope/"
NS_UPNP_CONTROL: Final = "urn:schemas-upnp-org:control-1-0"
NS_DC: Final = "http://purl.org/dc/elements/1.1/"
DIDL_OPEN: Final = (
    '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" '
    'xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/" '
    'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/">'
)
DIDL_CLOSE: Final = "</DIDL-Lite>"

UPNP_ERROR_TEXT: Final = {
    401: "Invalid Action",
    402: "Invalid Args",
    501: "Action Failed",
    701: "Transition not available",
    710: "Seek mode not supported",
    711: "Illegal seek target",
    712: "Play mode not supported",
    714: "Illegal MIME-Type",
    718: "Invalid InstanceID",
}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def format_hms(seconds: float) -> str:
    """Seconds as the H:MM:SS a speaker reports (whole seconds, rounded down)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def parse_hms(text: str) -> float:
    """Parse H:MM:SS (optionally with fractions); ValueError if malformed."""
    match = re.fullmatch(r"(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)", text.strip())
    if match is None:
        raise ValueError(f"not a H:MM:SS time: {text!r}")
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


def radio_metadata(title: str, service: str = "SA_RINCON65031_") -> str:
    """DIDL metadata of a radio station, as soco's ``play_uri(title=...)`` sends it."""
    return (
        f'{DIDL_OPEN}<item id="R:0/0/0" parentID="R:0/0" restricted="true">'
        f"<dc:title>{escape(title)}</dc:title>"
        "<upnp:class>object.item.audioItem.audioBroadcast</upnp:class>"
        '<desc id="cdudn" nameSpace="urn:schemas-rinconnetworks-com:metadata-1-0/">'
        f"{escape(service)}</desc></item>{DIDL_CLOSE}"
    )


def simple_metadata(title: str, upnp_class: str = "object.item.audioItem") -> str:
    """Minimal DIDL with a title (what line-in and TV sources look like)."""
    return (
        f'{DIDL_OPEN}<item id="-1" parentID="-1" restricted="true">'
        f"<dc:title>{escape(title)}</dc:title><upnp:class>{upnp_class}</upnp:class>"
        f"</item>{DIDL_CLOSE}"
    )


def didl_title(metadata: str) -> str | None:
    """The dc:title of DIDL metadata, if any."""
    if not metadata.strip() or not metadata.lstrip().startswith("<"):
        return None
    try:
        root = ET.fromstring(metadata)
    except ET.ParseError:
        return None
    return root.findtext(f".//{{{NS_DC}}}title")


def _soap_envelope(inner: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{NS_SOAP}" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
        f"<s:Body>{inner}</s:Body></s:Envelope>"
    )


def _text_elements(values: dict[str, str]) -> str:
    return "".join(f"<{k}>{escape(v)}</{k}>" for k, v in values.items())


# --------------------------------------------------------------------------------------------
# Audio decoding
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class PlaybackRecord:
    """One fetch of a URL by a speaker, and what it decoded to."""

    url: str
    via: Literal["avtransport", "audioclip"]
    speaker: str = ""
    volume: int | None = None
    clip_id: str | None = None
    status: int | None = None
    content_type: str | None = None
    content_length: int | None = None
    chunked: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    bytes_received: int = 0
    format: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bits_per_sample: int | None = None
    duration_s: float | None = None
    rms: float | None = None
    peak: float | None = None
    leading_silence_ms: float | None = None
    trailing_silence_ms: float | None = None
    headers_s: float | None = None
    first_byte_s: float | None = None
    total_s: float | None = None
    error: str | None = None
    #: The speaker was muted when it fetched (it would have played silently).
    muted: bool = False
    #: For a bonded set's member: the main speaker that fetched, and this member's channel.
    bonded_from: str | None = None
    channel: str | None = None
    body: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        """Fetched and decoded without a problem."""
        return self.error is None

    @property
    def silent(self) -> bool:
        """No sample above the silence threshold."""
        return self.peak is None or self.peak <= SILENCE_THRESHOLD

    def summary(self) -> dict[str, Any]:
        """Everything but the body, as JSON-able data."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("body", "headers")}
        data["silent"] = self.silent
        return data


@dataclass
class QueueTrack:
    """One entry of a speaker's queue (Q:0)."""

    uri: str
    title: str = ""
    artist: str = ""
    album: str = ""
    duration: str = "0:03:00"

    def didl_item(self, number: int) -> str:
        """The DIDL <item> a speaker returns for Q:0/number."""
        scheme = self.uri.split(":", 1)[0]
        protocol = "http-get:*:audio/mpeg:*" if scheme in ("http", "https") else f"{scheme}:*:*:*"
        title = self.title or unquote(PurePosixPath(urlsplit(self.uri).path).name) or self.uri
        return (
            f'<item id="Q:0/{number}" parentID="Q:0" restricted="true">'
            f"<res protocolInfo={quoteattr(protocol)} duration={quoteattr(self.duration)}>"
            f"{escape(self.uri)}</res><dc:title>{escape(title)}</dc:title>"
            "<upnp:class>object.item.audioItem.musicTrack</upnp:class>"
            f"<dc:creator>{escape(self.artist)}</dc:creator>"
            f"<upnp:album>{escape(self.album)}</upnp:album></item>"
        )

    def metadata(self, number: int) -> str:
        """Track metadata as GetPositionInfo reports it."""
        return DIDL_OPEN + self.didl_item(number) + DIDL_CLOSE


@dataclass
class Favorite:
    """A household's Sonos favorite (``FV:2``), e.g. a radio station."""

    title: str
    uri: str
    metadata: str = ""
    description: str = "TuneIn Station"

    def didl_item(self, number: int) -> str:
        """The DIDL <item> a speaker returns for FV:2/number."""
        scheme = self.uri.split(":", 1)[0]
        return (
            f'<item id="FV:2/{number}" parentID="FV:2" restricted="false">'
            f"<dc:title>{escape(self.title)}</dc:title>"
            "<upnp:class>object.itemobject.item.sonos-favorite</upnp:class>"
            f"<r:ordinal>{number - 1}</r:ordinal>"
            f'<res protocolInfo="{escape(scheme)}:*:*:*">{escape(self.uri)}</res>'
            "<r:type>instantPlay</r:type>"
            f"<r:description>{escape(self.description)}</r:description>"
            f"<r:resMD>{escape(self.metadata)}</r:resMD></item>"
        )


@dataclass
class AudioClip:
    """A loadAudioClip request and its fate."""

    id: str
    url: str | None
    name: str
    app_id: str
    priority: str
    clip_type: str
    volume: int | None
    status: str = "ACTIVE"
    record: PlaybackRecord | None = None
    #: Every status the clip went through, with its monotonic time.
    history: list[tuple[str, float]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The clip as the audioClip API describes it."""
        return {
            "_objectType": "audioClip",
            "id": self.id,
            "name": self.name,
            "appId": self.app_id,
            "priority": self.priority,
            "clipType": self.clip_type,
            "status": self.status,
        }


@dataclass
class Subscription:
    """A UPnP event subscription held by a speaker."""

    sid: str
    service: str
    callback: str
    timeout_s: int
    seq: int = 0
    last_sent: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    #: Events waiting for their delivery time (loop time, body), delivered in order.
    outbox: deque[tuple[float, str]] = field(default_factory=deque, repr=False)
    sender: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass(eq=False)
class WebsocketPeer:
    """A client of the audioClip websocket; with ``subscribed`` it gets clip status events."""

    ws: web.WebSocketResponse
    subscribed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    outbox: deque[tuple[float, list[dict[str, Any]]]] = field(default_factory=deque, repr=False)
    sender: asyncio.Task[None] | None = field(default=None, repr=False)


class UPnPError(Exception):
    """A SOAP action fails with this UPnP error code."""

    def __init__(self, code: int, description: str = "") -> None:
        """Keep the code."""
        super().__init__(f"UPnP error {code}: {description or UPNP_ERROR_TEXT.get(code, '')}")
        self.code = code
        self.description = description or UPNP_ERROR_TEXT.get(code, "")


# --------------------------------------------------------------------------------------------
# Services: actions (in args, out args), control and event URLs, SCPD
# --------------------------------------------------------------------------------------------

_I = ("InstanceID",)
_IC = ("InstanceID", "Channel")
_QUEUE_ADD_OUT = ("FirstTrackNumberEnqueued", "NumTracksAdded", "NewQueueLength", "NewUpdateID")
_ALARM_ARGS = (
    "StartLocalTime",
    "Duration",
    "Recurrence",
    "Enabled",
    "RoomUUID",
    "ProgramURI",
    "ProgramMetaData",
    "PlayMode",
    "Volume",
    "IncludeLinkedZones",
)

ACTIONS: Final[dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "AVTransport": {
        "SetAVTransportURI": ((*_I, "CurrentURI", "CurrentURIMetaData"), ()),
        "SetNextAVTransportURI": ((*_I, "NextURI", "NextURIMetaData"), ()),
        "AddURIToQueue": (
            (
                *_I,
                "EnqueuedURI",
                "EnqueuedURIMetaData",
                "DesiredFirstTrackNumberEnqueued",
                "EnqueueAsNext",
            ),
            _QUEUE_ADD_OUT,
        ),
        "AddMultipleURIsToQueue": (
            (
                *_I,
                "UpdateID",
                "NumberOfURIs",
                "EnqueuedURIs",
                "EnqueuedURIsMetaData",
                "ContainerURI",
                "ContainerMetaData",
                "DesiredFirstTrackNumberEnqueued",
                "EnqueueAsNext",
            ),
            _QUEUE_ADD_OUT,
        ),
        "RemoveTrackFromQueue": ((*_I, "ObjectID", "UpdateID"), ()),
        "RemoveAllTracksFromQueue": (_I, ()),
        "GetMediaInfo": (
            _I,
            (
                "NrTracks",
                "MediaDuration",
                "CurrentURI",
                "CurrentURIMetaData",
                "NextURI",
                "NextURIMetaData",
                "PlayMedium",
                "RecordMedium",
                "WriteStatus",
            ),
        ),
        "GetTransportInfo": (
            _I,
            ("CurrentTransportState", "CurrentTransportStatus", "CurrentSpeed"),
        ),
        "GetPositionInfo": (
            _I,
            (
                "Track",
                "TrackDuration",
                "TrackMetaData",
                "TrackURI",
                "RelTime",
                "AbsTime",
                "RelCount",
                "AbsCount",
            ),
        ),
        "GetTransportSettings": (_I, ("PlayMode", "RecQualityMode")),
        "SetPlayMode": ((*_I, "NewPlayMode"), ()),
        "GetCrossfadeMode": (_I, ("CrossfadeMode",)),
        "SetCrossfadeMode": ((*_I, "CrossfadeMode"), ()),
        "GetCurrentTransportActions": (_I, ("Actions",)),
        "GetRemainingSleepTimerDuration": (
            _I,
            ("RemainingSleepTimerDuration", "CurrentSleepTimerGeneration"),
        ),
        "ConfigureSleepTimer": ((*_I, "NewSleepTimerDuration"), ()),
        "GetRunningAlarmProperties": (_I, ("AlarmID", "GroupID", "LoggedStartTime")),
        "Play": ((*_I, "Speed"), ()),
        "Pause": (_I, ()),
        "Stop": (_I, ()),
        "Seek": ((*_I, "Unit", "Target"), ()),
        "Next": (_I, ()),
        "Previous": (_I, ()),
        "BecomeCoordinatorOfStandaloneGroup": (
            _I,
            ("DelegatedGroupCoordinatorID", "NewGroupID"),
        ),
    },
    "RenderingControl": {
        "GetVolume": (_IC, ("CurrentVolume",)),
        "SetVolume": ((*_IC, "DesiredVolume"), ()),
        "SetRelativeVolume": ((*_IC, "Adjustment"), ("NewVolume",)),
        "GetMute": (_IC, ("CurrentMute",)),
        "SetMute": ((*_IC, "DesiredMute"), ()),
        "GetBass": (_I, ("CurrentBass",)),
        "SetBass": ((*_I, "DesiredBass"), ()),
        "GetTreble": (_I, ("CurrentTreble",)),
        "SetTreble": ((*_I, "DesiredTreble"), ()),
        "GetLoudness": (_IC, ("CurrentLoudness",)),
        "SetLoudness": ((*_IC, "DesiredLoudness"), ()),
        "GetOutputFixed": (_I, ("CurrentFixed",)),
        "SetOutputFixed": ((*_I, "DesiredFixed"), ()),
        "GetSupportsOutputFixed": (_I, ("CurrentSupportsFixed",)),
        "RampToVolume": (
            (*_IC, "RampType", "DesiredVolume", "ResetVolumeAfter", "ProgramURI"),
            ("RampTime",),
        ),
        "GetEQ": ((*_I, "EQType"), ("CurrentValue",)),
        "SetEQ": ((*_I, "EQType", "DesiredValue"), ()),
    },
    "GroupRenderingControl": {
        "GetGroupVolume": (_I, ("CurrentVolume",)),
        "SetGroupVolume": ((*_I, "DesiredVolume"), ()),
        "SetRelativeGroupVolume": ((*_I, "Adjustment"), ("NewVolume",)),
        "GetGroupMute": (_I, ("CurrentMute",)),
        "SetGroupMute": ((*_I, "DesiredMute"), ()),
        "SnapshotGroupVolume": (_I, ()),
    },
    "ContentDirectory": {
        "Browse": (
            (
                "ObjectID",
                "BrowseFlag",
                "Filter",
                "StartingIndex",
                "RequestedCount",
                "SortCriteria",
            ),
            ("Result", "NumberReturned", "TotalMatches", "UpdateID"),
        ),
    },
    "ZoneGroupTopology": {
        "GetZoneGroupState": ((), ("ZoneGroupState",)),
        "GetZoneGroupAttributes": (
            (),
            (
                "CurrentZoneGroupName",
                "CurrentZoneGroupID",
                "CurrentZonePlayerUUIDsInGroup",
                "CurrentMuseHouseholdId",
            ),
        ),
    },
    "DeviceProperties": {
        "GetHouseholdID": ((), ("CurrentHouseholdID",)),
        "GetZoneAttributes": (
            (),
            ("CurrentZoneName", "CurrentIcon", "CurrentConfiguration", "CurrentTargetRoomName"),
        ),
        "SetZoneAttributes": (("DesiredZoneName", "DesiredIcon", "DesiredConfiguration"), ()),
        "GetZoneInfo": (
            (),
            (
                "SerialNumber",
                "SoftwareVersion",
                "DisplaySoftwareVersion",
                "HardwareVersion",
                "IPAddress",
                "MACAddress",
                "CopyrightInfo",
                "ExtraInfo",
                "HTAudioIn",
                "Flags",
            ),
        ),
        "GetLEDState": ((), ("CurrentLEDState",)),
        "SetLEDState": (("DesiredLEDState",), ()),
        "GetButtonLockState": ((), ("CurrentButtonLockState",)),
        "SetButtonLockState": (("DesiredButtonLockState",), ()),
    },
    "AlarmClock": {
        "ListAlarms": ((), ("CurrentAlarmList", "CurrentAlarmListVersion")),
        "CreateAlarm": (_ALARM_ARGS, ("AssignedID",)),
        "UpdateAlarm": (("ID", *_ALARM_ARGS), ()),
        "DestroyAlarm": (("ID",), ()),
    },
}

CONTROL_PATHS: Final = {
    "/MediaRenderer/AVTransport": "AVTransport",
    "/MediaRenderer/RenderingControl": "RenderingControl",
    "/MediaRenderer/GroupRenderingControl": "GroupRenderingControl",
    "/MediaServer/ContentDirectory": "ContentDirectory",
    "/ZoneGroupTopology": "ZoneGroupTopology",
    "/DeviceProperties": "DeviceProperties",
    "/AlarmClock": "AlarmClock",
}

#: Evented state variables per service (besides LastChange).
EVENTED: Final = {
    "AVTransport": ("LastChange",),
    "RenderingControl": ("LastChange",),
    "GroupRenderingControl": ("GroupVolume", "GroupMute", "GroupVolumeChangeable"),
    "ZoneGroupTopology": ("ZoneGroupState", "ZonePlayerUUIDsInGroup"),
    "DeviceProperties": ("ZoneName", "Icon", "Invisible"),
    "ContentDirectory": (
        "SystemUpdateID",
        "ContainerUpdateIDs",
        "FavoritesUpdateID",
        "FavoritePresetsUpdateID",
        "SavedQueuesUpdateID",
        "ShareListUpdateID",
        "ShareIndexInProgress",
    ),
    "AlarmClock": ("AlarmListVersion",),
}


def scpd_xml(service: str) -> str:
    """A service description soco can read arguments from (``compose_args``)."""
    actions = ACTIONS[service]
    variables: dict[str, bool] = dict.fromkeys(EVENTED.get(service, ()), True)
    parts = []
    for action, (in_args, out_args) in actions.items():
        args = []
        for direction, names in (("in", in_args), ("out", out_args)):
            for name in names:
                variables.setdefault(f"A_ARG_TYPE_{name}", False)
                args.append(
                    f"<argument><name>{name}</name><direction>{direction}</direction>"
                    f"<relatedStateVariable>A_ARG_TYPE_{name}</relatedStateVariable></argument>"
                )
        parts.append(
            f"<action><name>{action}</name><argumentList>{''.join(args)}</argumentList></action>"
        )
    state = "".join(
        f'<stateVariable sendEvents="{"yes" if evented else "no"}"><name>{name}</name>'
        "<dataType>string</dataType></stateVariable>"
        for name, evented in variables.items()
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<scpd xmlns="urn:schemas-upnp-org:service-1-0">'
        "<specVersion><major>1</major><minor>0</minor></specVersion>"
        f"<actionList>{''.join(parts)}</actionList>"
        f"<serviceStateTable>{state}</serviceStateTable></scpd>"
    )


# --------------------------------------------------------------------------------------------
# TLS for the websocket
# --------------------------------------------------------------------------------------------


def self_signed_context(common_name: str, ip: str) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for ``ip``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path = f"{folder}/cert.pem"
        key_path = f"{folder}/key.pem"
        with open(cert_path, "wb") as out:
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context.load_cert_chain(cert_path, key_path)
    return context


# --------------------------------------------------------------------------------------------
# The speaker
# --------------------------------------------------------------------------------------------

Handler = Callable[[dict[str, str]], dict[str, str]]


class FakeSonosSpeaker:
    """One fake player on ``ip``:1400 (UPnP) and ``ip``:1443 (audioClip websocket)."""

    def __init__(
        self,
        name: str,
        ip: str,
        *,
        model_name: str = "Sonos One",
        model_number: str = "S18",
        uid: str | None = None,
        supports_audio_clip: bool = True,
        strict_extension_check: bool = True,
        playback_speed: float = 0.0,
        software_version: str = "85.0-66270",
        websocket: bool = True,
        websocket_refuse: int | None = None,
        fetch_timeout: float = 15.0,
        volume: int = 20,
        event_delay: float = DEFAULT_EVENT_DELAY,
        start_delay: float = 0.0,
    ) -> None:
        """Describe the speaker; nothing is bound until `start`.

        ``playback_speed`` scales how long a fetched file "plays": 0 stops right after
        decoding, 1.0 plays in real time, 0.1 ten times faster. ``event_delay``: seconds
        between a change and its UPnP/websocket events (and, for the household it founds, until
        a group change shows in the topology). ``start_delay``: seconds between a complete
        fetch and the start of playing (transport and clips), as a speaker buffers.
        ``websocket=False`` leaves the clip port 1443 closed (connections are refused);
        ``websocket_refuse`` answers the websocket handshake with that HTTP status.
        """
        address = ipaddress.ip_address(ip)
        if not address.is_loopback or address.version != 4:
            raise ValueError(f"the double only binds IPv4 loopback addresses, not {ip}")
        self.name = name
        self.ip = ip
        self.model_name = model_name
        self.model_number = model_number
        self.software_version = software_version
        self.hardware_version = "1.20.1.6-2.1"
        self.display_version = "17.1"
        self.supports_audio_clip = supports_audio_clip
        #: Older firmware plays clips but refuses ``subscribe``: no ``audioClipStatus`` events.
        self.clip_status_events = True
        self.strict_extension_check = strict_extension_check
        self.playback_speed = playback_speed
        self.websocket_enabled = websocket
        self.websocket_refuse = websocket_refuse
        self.fetch_timeout = fetch_timeout
        self.event_delay = event_delay
        self.start_delay = start_delay
        self.user_agent = f"Linux UPnP/1.0 Sonos/{software_version} ({model_number})"
        octets = address.packed
        self.mac = "00:0E:58:" + ":".join(f"{b:02X}" for b in octets[1:])
        self.uid = uid or "RINCON_000E58" + "".join(f"{b:02X}" for b in octets[1:]) + "01400"
        self.serial_number = self.mac.replace(":", "-") + ":E"
        self.household: FakeHousehold | None = None
        #: Bonded sets: the main speaker this one belongs to, its channel, and the set's kind.
        self.bonded_to: FakeSonosSpeaker | None = None
        self.channel: str | None = None
        self.bond_kind: Literal["pair", "theatre"] | None = None

        # Rendering
        self.volume = volume
        self.mute = False
        self.bass = 0
        self.treble = 0
        self.loudness = True
        self.output_fixed = False
        self.led_on = True
        self.buttons_locked = False
        self.eq: dict[str, int] = dict(SOUNDBAR_EQ) if self.is_soundbar else {}
        #: Battery models: what ``/status/batterystatus`` reports (level in percent).
        self.battery_level = 100
        self.battery_charging = False
        # Sleep timer (coordinator's): monotonic deadline, generation counter
        self.sleep_timer_ends: float | None = None
        self.sleep_timer_generation = 0
        self._sleep_handle: asyncio.TimerHandle | None = None
        # Transport (of this speaker; group members report their coordinator's)
        self.coordinator_uid = self.uid
        self.group_seq = 1
        self.boot_seq = 42
        self.transport_state = STOPPED
        self.current_uri = ""
        self.current_meta = ""
        self.next_uri = ""
        self.next_meta = ""
        self.track_number = 0
        self.track_duration: float | None = None
        self.play_mode = "NORMAL"
        self.crossfade = False
        self.queue: list[QueueTrack] = []
        self.queue_update_id = 1
        self._position = 0.0
        self._anchor_time = 0.0
        self._loaded: PlaybackRecord | None = None
        self._generation = 0

        # What happened, for assertions
        self.soap_log: list[tuple[str, str, dict[str, str]]] = []
        self.faults: list[tuple[str, str, int]] = []
        # Extensions this player refuses with 714 even with metadata (AAC on real players).
        self.refused_extensions: set[str] = set()
        self.played: list[PlaybackRecord] = []
        self.clips: list[AudioClip] = []
        self.transport_history: list[str] = []
        self.ws_log: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.notifications: list[tuple[str, str, int, int]] = []  # sid, service, seq, status
        self.errors: list[BaseException] = []  # bugs in the double itself: expect none
        self.on_played: Callable[[PlaybackRecord], None] | None = None

        self._handlers = self._build_handlers()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tail: asyncio.Task[None] | None = None
        self._websockets: set[web.WebSocketResponse] = set()
        self._peers: set[WebsocketPeer] = set()
        self._changed = asyncio.Event()
        self._clip_ids = itertools.count(1)
        self._sub_ids = itertools.count(1)

    def __repr__(self) -> str:
        """Name, address and state."""
        return f"<FakeSonosSpeaker {self.name!r} {self.ip} {self.uid} {self.transport_state}>"

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """``http://ip:1400``."""
        return f"http://{self.ip}:{SONOS_PORT}"

    @property
    def websocket_url(self) -> str:
        """Where sonos-websocket connects."""
        return f"wss://{self.ip}:{WEBSOCKET_PORT}{WEBSOCKET_PATH}"

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return self._runner is not None

    @property
    def is_soundbar(self) -> bool:
        """A home-theatre model (by its name, like soco decides)."""
        return self.model_name.lower().removeprefix("sonos ").strip() in SOUNDBAR_MODELS

    @property
    def has_battery(self) -> bool:
        """A portable model with a battery."""
        return self.model_name.lower().removeprefix("sonos ").strip() in BATTERY_MODELS

    async def start(self) -> None:
        """Bind ip:1400 (and ip:1443 with TLS) on the running loop."""
        if self._runner is not None:
            return
        if self.household is None:
            FakeHousehold([self], event_delay=self.event_delay)
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/xml/device_description.xml", self._handle_description)
        app.router.add_get("/xml/{file}", self._handle_scpd)
        app.router.add_get(WEBSOCKET_PATH, self._handle_websocket)
        app.router.add_get("/api/v1/players/local/info", self._handle_local_info)
        app.router.add_get("/status/batterystatus", self._handle_battery_status)
        app.router.add_get(STATUS_PATH, self._handle_double_status)
        for path in CONTROL_PATHS:
            app.router.add_post(f"{path}/Control", self._handle_control)
            app.router.add_route("SUBSCRIBE", f"{path}/Event", self._handle_subscribe)
            app.router.add_route("UNSUBSCRIBE", f"{path}/Event", self._handle_unsubscribe)
        app.on_shutdown.append(self._close_websockets)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        # Fetch from the speaker's own address, so servers see the client a real speaker is.
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": self.user_agent},
            connector=aiohttp.TCPConnector(local_addr=(self.ip, 0)),
        )
        try:
            await web.TCPSite(runner, self.ip, SONOS_PORT, reuse_address=True).start()
            if self.websocket_enabled:
                context = self_signed_context(self.uid, self.ip)
                await web.TCPSite(
                    runner, self.ip, WEBSOCKET_PORT, ssl_context=context, reuse_address=True
                ).start()
        except OSError as err:
            await self.stop()
            raise OSError(
                err.errno, f"cannot bind fake Sonos speaker {self.name!r} on {self.ip}: {err}"
            ) from err

    async def stop(self) -> None:
        """Close websockets, cancel fetches and timers, unbind; leaves nothing running."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._tail = None
        self._cancel_sleep_timer()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        self._signal()

    async def __aenter__(self) -> Self:
        """Start."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop."""
        await self.stop()

    async def _close_websockets(self, _app: web.Application) -> None:
        for ws in list(self._websockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"speaker stopping")

    # ---------------------------------------------------------------- waiting

    def _signal(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` is true (checked after every change)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until no fetch, playback timer or event delivery is in progress."""
        await self.wait_for(lambda: not self._tasks, timeout)

    async def wait_played(self, count: int = 1, timeout: float = 5.0) -> PlaybackRecord:  # noqa: ASYNC109
        """Wait until ``count`` fetches are recorded; return the last one."""
        await self.wait_for(lambda: len(self.played) >= count, timeout)
        return self.played[-1]

    async def wait_state(self, state: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until this speaker's own transport state is ``state``."""
        await self.wait_for(lambda: self.transport_state == state, timeout)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}: {name}")
        self._tasks.add(task)

        def _done(done: asyncio.Task[Any]) -> None:
            self._tasks.discard(done)
            if not done.cancelled() and (error := done.exception()) is not None:
                self.errors.append(error)
                _LOGGER.error("%s: task %s failed", self.name, done.get_name(), exc_info=error)
            self._signal()

        task.add_done_callback(_done)
        return task

    # ---------------------------------------------------------------- group helpers

    @property
    def coordinator(self) -> FakeSonosSpeaker:
        """The speaker whose transport this one plays (itself when standalone)."""
        if self.bonded_to is not None:
            return self.bonded_to.coordinator
        if self.coordinator_uid == self.uid or self.household is None:
            return self
        return self.household.by_uid(self.coordinator_uid) or self

    @property
    def bonded_members(self) -> list[FakeSonosSpeaker]:
        """The other speakers of the bonded set this one is the main speaker of."""
        if self.household is None:
            return []
        return [s for s in self.household.speakers if s.bonded_to is self]

    @property
    def is_coordinator(self) -> bool:
        """Standalone or leading a group."""
        return self.coordinator is self

    @property
    def group_id(self) -> str:
        """The group ID soco sees (coordinator uid and a sequence number)."""
        coordinator = self.coordinator
        return f"{coordinator.uid}:{coordinator.group_seq}"

    @property
    def group_members(self) -> list[FakeSonosSpeaker]:
        """All speakers of this speaker's group, coordinator first."""
        coordinator = self.coordinator
        if self.household is None:
            return [self]
        return [coordinator] + [
            s
            for s in self.household.speakers
            if s is not coordinator and s.coordinator is coordinator
        ]

    def _household(self) -> FakeHousehold:
        if self.household is None:
            FakeHousehold([self], event_delay=self.event_delay)
        assert self.household is not None
        return self.household

    # ---------------------------------------------------------------- presets for tests

    def preset_source(
        self,
        uri: str,
        metadata: str = "",
        state: str = PLAYING,
        *,
        position: str = "0:00:00",
        track_duration: str | None = None,
    ) -> None:
        """Make the speaker look as if it had been playing ``uri`` (no fetch happens)."""
        if state not in (STOPPED, PLAYING, PAUSED):
            raise ValueError(f"preset state must be STOPPED, PLAYING or PAUSED_PLAYBACK: {state}")
        self._cancel_playback()
        self.current_uri = uri
        self.current_meta = metadata
        self.track_number = 1 if uri else 0
        self.track_duration = parse_hms(track_duration) if track_duration else None
        self._position = parse_hms(position)
        self._set_state(state)

    def preset_radio(
        self,
        uri: str = "x-sonosapi-stream:s17077?sid=254&flags=8224&sn=0",
        title: str = "Loopback FM",
        state: str = PLAYING,
    ) -> None:
        """A radio station (``x-sonosapi-stream:`` or ``x-rincon-mp3radio:``) with metadata."""
        self.preset_source(uri, radio_metadata(title), state)

    def preset_line_in(self, state: str = PLAYING, source_uid: str | None = None) -> None:
        """Line-in (``x-rincon-stream:{uid}``)."""
        self.preset_source(
            f"x-rincon-stream:{source_uid or self.uid}",
            simple_metadata(self.name, "object.item.audioItem.linein"),
            state,
        )

    def preset_tv(self, state: str = PLAYING) -> None:
        """Home-theatre TV input (``x-sonos-htastream:{uid}:spdif``)."""
        self.preset_source(
            f"x-sonos-htastream:{self.uid}:spdif",
            simple_metadata("TV", "object.item.audioItem.linein.homeTheater"),
            state,
        )

    def preset_queue(
        self,
        tracks: int | Sequence[QueueTrack] = 5,
        *,
        track: int = 1,
        position: str = "0:00:00",
        state: str = PLAYING,
        play_mode: str = "NORMAL",
        crossfade: bool = False,
    ) -> None:
        """The queue (``x-rincon-queue:{uid}#0``) at track ``track`` (1-based), ``position``."""
        if isinstance(tracks, int):
            tracks = [
                QueueTrack(
                    f"x-file-cifs://nas/music/track{n:02d}.mp3",
                    title=f"Track {n}",
                    artist="The Doubles",
                    album="Loopback",
                    duration="0:03:30",
                )
                for n in range(1, tracks + 1)
            ]
        if not 1 <= track <= len(tracks):
            raise ValueError(f"track {track} is not in a queue of {len(tracks)}")
        if play_mode not in PLAY_MODES:
            raise ValueError(f"unknown play mode {play_mode}")
        self.queue = list(tracks)
        self.queue_update_id += 1
        self.preset_source(f"x-rincon-queue:{self.uid}#0", "", state, position=position)
        self.track_number = track
        self.play_mode = play_mode
        self.crossfade = crossfade

    # ---------------------------------------------------------------- transport internals

    def _set_state(self, state: str) -> None:
        if state != self.transport_state or not self.transport_history:
            self.transport_history.append(state)
        self.transport_state = state
        self._signal()
        self._household().changed()

    def _is_queue_source(self) -> bool:
        return self.current_uri == f"x-rincon-queue:{self.uid}#0"

    def _current_track(self) -> QueueTrack | None:
        if self._is_queue_source() and 1 <= self.track_number <= len(self.queue):
            return self.queue[self.track_number - 1]
        return None

    def _playing_uri(self) -> str:
        """The URI of what plays now: the queue's current track, or the source itself."""
        track = self._current_track()
        if self._is_queue_source():
            return track.uri if track else ""
        return self.current_uri

    def _fetch_url(self) -> str | None:
        """The http(s) URL Play fetches, or None for sources that are not fetched."""
        uri = self._playing_uri()
        if uri.startswith("x-rincon-mp3radio:"):
            uri = "http:" + uri.removeprefix("x-rincon-mp3radio:")
        scheme = uri.split(":", 1)[0].lower()
        return uri if scheme in ("http", "https") else None

    def position(self) -> float:
        """Seconds into the current track (advancing while a fetched file plays)."""
        if (
            self.transport_state == PLAYING
            and self._loaded is not None
            and self.track_duration is not None
        ):
            if self.playback_speed <= 0:
                return self.track_duration
            elapsed = (time.monotonic() - self._anchor_time) / self.playback_speed
            return min(self.track_duration, self._position + elapsed)
        return self._position

    def _cancel_tail(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            self._tail = None

    def _cancel_playback(self) -> None:
        """Forget the loaded file; a fetch in flight still gets recorded but changes nothing."""
        self._generation += 1
        self._cancel_tail()
        self._loaded = None

    def _start_fetch(self, url: str) -> None:
        self._cancel_playback()
        self.track_duration = None
        self._position = 0.0
        self._set_state(TRANSITIONING)
        self._spawn(self._play_fetched(url, self._generation), f"fetch {url}")

    async def _play_fetched(self, url: str, generation: int) -> None:
        record = await self.fetch_and_decode(url, "avtransport", volume=self.volume)
        if generation != self._generation:
            return
        if record.error is not None:
            self._loaded = None
            self._set_state(STOPPED)
            return
        if self.start_delay > 0:
            await asyncio.sleep(self.start_delay)  # buffering: still TRANSITIONING
            if generation != self._generation:
                return
        self._loaded = record
        self.track_duration = record.duration_s
        self._position = 0.0
        if self.transport_state == TRANSITIONING:
            self._resume()
        else:  # paused while fetching: stay paused with the file loaded
            self._signal()

    def _resume(self) -> None:
        self._anchor_time = time.monotonic()
        self._set_state(PLAYING)
        duration = self.track_duration or 0.0
        remaining = max(0.0, duration - self._position) * max(0.0, self.playback_speed)
        self._cancel_tail()
        self._tail = self._spawn(self._play_out(remaining, self._generation), "play out")

    async def _play_out(self, seconds: float, generation: int) -> None:
        await asyncio.sleep(seconds)
        if generation == self._generation and self.transport_state == PLAYING:
            self._tail = None
            self._loaded = None
            self._position = 0.0
            self._set_state(STOPPED)

    def _require_coordinator(self) -> None:
        if not self.is_coordinator:
            raise UPnPError(701, "not a group coordinator")

    def _new_source(self, uri: str, metadata: str) -> None:
        self._cancel_playback()
        self.current_uri = uri
        self.current_meta = metadata
        self.next_uri = self.next_meta = ""
        self.track_duration = None
        self._position = 0.0
        if self._is_queue_source():
            self.track_number = 1 if self.queue else 0
        else:
            self.track_number = 1 if uri else 0
        if self.transport_state in (PLAYING, TRANSITIONING):
            self._set_state(STOPPED)
        else:  # a paused transport stays paused with the new media, a stopped one stopped
            self._signal()

    # ---------------------------------------------------------------- fetching

    async def fetch_and_decode(
        self,
        url: str,
        via: Literal["avtransport", "audioclip"],
        *,
        volume: int | None = None,
        clip_id: str | None = None,
    ) -> PlaybackRecord:
        """GET ``url`` like a speaker, decode it, append and return the record."""
        record = PlaybackRecord(
            url=url, via=via, speaker=self.name, volume=volume, clip_id=clip_id, muted=self.mute
        )
        started = time.monotonic()
        try:
            await self._fetch(url, record, started)
        except TimeoutError:
            record.error = f"timed out after {self.fetch_timeout:g} s"
        except aiohttp.ClientError as err:
            record.error = f"{type(err).__name__}: {err}"
        except ValueError as err:  # e.g. an invalid URL
            record.error = f"{type(err).__name__}: {err}"
        record.total_s = time.monotonic() - started
        if record.error is None:
            report = analyse_audio(record.body, audio_clip=via == "audioclip")
            for name in (
                "format",
                "sample_rate",
                "channels",
                "bits_per_sample",
                "duration_s",
                "rms",
                "peak",
                "leading_silence_ms",
                "trailing_silence_ms",
                "error",
            ):
                setattr(record, name, getattr(report, name))
        self.played.append(record)
        self._signal()
        for member in self.bonded_members:
            # The set plays what its main speaker fetched; an audio clip reaches the Sub only.
            if via == "avtransport" or member.channel == "SW":
                member.played.append(
                    replace(
                        record,
                        speaker=member.name,
                        volume=record.volume if via == "audioclip" else member.volume,
                        muted=member.mute,
                        bonded_from=self.name,
                        channel=member.channel,
                    )
                )
                member._signal()
        if self.on_played is not None:
            self.on_played(record)
        return record

    async def _fetch(self, url: str, record: PlaybackRecord, started: float) -> None:
        if self._session is None:
            raise aiohttp.ClientError("speaker is not running")
        async with (
            asyncio.timeout(self.fetch_timeout),
            self._session.get(url, headers={"Accept": "*/*"}) as response,
        ):
            record.headers_s = time.monotonic() - started
            record.status = response.status
            record.headers = dict(response.headers)
            record.content_type = response.headers.get("Content-Type")
            length = response.headers.get("Content-Length")
            record.content_length = int(length) if length and length.isdigit() else None
            encoding = response.headers.get("Transfer-Encoding", "")
            record.chunked = "chunked" in encoding.lower()
            if response.status not in (200, 206):
                record.error = f"HTTP {response.status} {response.reason or ''}".strip()
                return
            chunks = []
            async for chunk in response.content.iter_any():
                if record.first_byte_s is None:
                    record.first_byte_s = time.monotonic() - started
                chunks.append(chunk)
                record.bytes_received += len(chunk)
                if record.bytes_received > MAX_FETCH_BYTES:
                    record.error = f"more than {MAX_FETCH_BYTES} bytes; gave up"
                    break
            record.body = b"".join(chunks)

    # ---------------------------------------------------------------- HTTP: description

    def device_description(self) -> str:
        """``/xml/device_description.xml``."""

        def service(kind: str, path: str, scpd: str) -> str:
            return (
                f"<service><serviceType>urn:schemas-upnp-org:service:{kind}:1</serviceType>"
                f"<serviceId>urn:upnp-org:serviceId:{kind}</serviceId>"
                f"<controlURL>{path}/Control</controlURL><eventSubURL>{path}/Event</eventSubURL>"
                f"<SCPDURL>/xml/{scpd}1.xml</SCPDURL></service>"
            )

        root_services = "".join(
            service(kind, f"/{kind}", kind)
            for kind in ("AlarmClock", "DeviceProperties", "ZoneGroupTopology")
        )
        renderer = "".join(
            service(kind, f"/MediaRenderer/{kind}", kind)
            for kind in ("RenderingControl", "AVTransport", "GroupRenderingControl")
        )
        server = service("ContentDirectory", "/MediaServer/ContentDirectory", "ContentDirectory")
        room = escape(self.name)
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<root xmlns="urn:schemas-upnp-org:device-1-0">'
            "<specVersion><major>1</major><minor>0</minor></specVersion>"
            "<device>"
            "<deviceType>urn:schemas-upnp-org:device:ZonePlayer:1</deviceType>"
            f"<friendlyName>{escape(self.ip)} - {escape(self.model_name)}</friendlyName>"
            "<manufacturer>Sonos, Inc.</manufacturer>"
            "<manufacturerURL>http://www.sonos.com</manufacturerURL>"
            f"<modelNumber>{escape(self.model_number)}</modelNumber>"
            f"<modelDescription>Sonos {escape(self.model_name)}</modelDescription>"
            f"<modelName>{escape(self.model_name)}</modelName>"
            "<modelURL>http://www.sonos.com/products/zoneplayers</modelURL>"
            f"<softwareVersion>{escape(self.software_version)}</softwareVersion>"
            "<swGen>2</swGen>"
            f"<hardwareVersion>{escape(self.hardware_version)}</hardwareVersion>"
            f"<serialNum>{escape(self.serial_number)}</serialNum>"
            f"<MACAddress>{escape(self.mac)}</MACAddress>"
            f"<UDN>uuid:{self.uid}</UDN>"
            "<iconList><icon><id>0</id><mimetype>image/png</mimetype><width>48</width>"
            "<height>48</height><depth>24</depth><url>/img/icon-S18.png</url></icon></iconList>"
            f"<displayVersion>{escape(self.display_version)}</displayVersion>"
            "<extraVersion></extraVersion>"
            f"<roomName>{room}</roomName><displayName>{escape(self.model_name)}</displayName>"
            "<zoneType>1</zoneType><internalSpeakerSize>5</internalSpeakerSize>"
            f"<serviceList>{root_services}</serviceList>"
            "<deviceList>"
            "<device><deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>"
            f"<friendlyName>{escape(self.ip)} - {escape(self.model_name)} Media Server"
            "</friendlyName>"
            f"<UDN>uuid:{self.uid}_MS</UDN><serviceList>{server}</serviceList></device>"
            "<device><deviceType>urn:schemas-upnp-org:device:MediaRenderer:1</deviceType>"
            f"<friendlyName>{room} - {escape(self.model_name)} Media Renderer</friendlyName>"
            f"<UDN>uuid:{self.uid}_MR</UDN><serviceList>{renderer}</serviceList></device>"
            "</deviceList></device></root>"
        )

    async def _handle_description(self, _request: web.Request) -> web.StreamResponse:
        return self._xml_response(self.device_description())

    async def _handle_scpd(self, request: web.Request) -> web.StreamResponse:
        match = re.fullmatch(r"(\w+)1\.xml", request.match_info["file"])
        if match is None or match[1] not in ACTIONS:
            raise web.HTTPNotFound
        return self._xml_response(scpd_xml(match[1]))

    def _xml_response(self, body: str, status: int = 200) -> web.Response:
        return web.Response(
            status=status,
            body=body.encode(),
            headers={
                "Content-Type": 'text/xml; charset="utf-8"',
                "Server": f"Linux UPnP/1.0 Sonos/{self.software_version} ({self.model_number})",
            },
        )

    # ---------------------------------------------------------------- HTTP: SOAP

    async def _handle_control(self, request: web.Request) -> web.StreamResponse:
        path_service = CONTROL_PATHS[request.path.removesuffix("/Control")]
        header = request.headers.get("SOAPACTION", "").strip().strip('"')
        match = re.fullmatch(r"urn:schemas-upnp-org:service:(\w+):1#(\w+)", header)
        if match is None or match[1] != path_service:
            return self._fault(path_service, header or "?", UPnPError(401, "bad SOAPACTION"))
        action = match[2]
        try:
            envelope = ET.fromstring(await request.read())
        except ET.ParseError:
            return self._fault(path_service, action, UPnPError(402, "malformed SOAP body"))
        body = envelope.find(f"{{{NS_SOAP}}}Body")
        call = body[0] if body is not None and len(body) else None
        args = (
            {} if call is None else {child.tag.split("}")[-1]: child.text or "" for child in call}
        )
        self.soap_log.append((path_service, action, args))
        try:
            result = self.call(path_service, action, args)
        except UPnPError as err:
            return self._fault(path_service, action, err)
        except Exception as err:
            self.errors.append(err)
            _LOGGER.exception("%s: %s#%s failed", self.name, path_service, action)
            return self._fault(path_service, action, UPnPError(501, f"double failed: {err!r}"))
        inner = (
            f'<u:{action}Response xmlns:u="urn:schemas-upnp-org:service:{path_service}:1">'
            f"{_text_elements(result)}</u:{action}Response>"
        )
        return self._xml_response(_soap_envelope(inner))

    def _fault(self, service: str, action: str, err: UPnPError) -> web.Response:
        self.faults.append((service, action, err.code))
        inner = (
            "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring>"
            f'<detail><UPnPError xmlns="{NS_UPNP_CONTROL}"><errorCode>{err.code}</errorCode>'
            f"<errorDescription>{escape(err.description)}</errorDescription>"
            "</UPnPError></detail></s:Fault>"
        )
        return self._xml_response(_soap_envelope(inner), status=500)

    def call(self, service: str, action: str, args: dict[str, str]) -> dict[str, str]:
        """Run one SOAP action against the speaker's state (UPnPError on failure)."""
        spec = ACTIONS.get(service, {}).get(action)
        handler = self._handlers.get((service, action))
        if spec is None or handler is None:
            raise UPnPError(401, f"{service} has no action {action}")
        missing = [name for name in spec[0] if name not in args]
        if missing:
            raise UPnPError(402, f"missing {', '.join(missing)}")
        if args.get("InstanceID", "0") != "0":
            raise UPnPError(718)
        try:
            result = handler(args)
        finally:
            self._household().changed()
        return {name: result.get(name, "") for name in spec[1]}

    def _build_handlers(self) -> dict[tuple[str, str], Handler]:
        avt = {
            "SetAVTransportURI": self._set_av_transport_uri,
            "SetNextAVTransportURI": self._set_next_uri,
            "AddURIToQueue": self._add_uri_to_queue,
            "AddMultipleURIsToQueue": self._add_multiple_uris_to_queue,
            "RemoveTrackFromQueue": self._remove_track_from_queue,
            "RemoveAllTracksFromQueue": self._remove_all_tracks,
            "GetMediaInfo": self._get_media_info,
            "GetTransportInfo": self._get_transport_info,
            "GetPositionInfo": self._get_position_info,
            "GetTransportSettings": self._get_transport_settings,
            "SetPlayMode": self._set_play_mode,
            "GetCrossfadeMode": self._get_crossfade,
            "SetCrossfadeMode": self._set_crossfade,
            "GetCurrentTransportActions": self._get_transport_actions,
            "GetRemainingSleepTimerDuration": self._get_sleep_timer,
            "ConfigureSleepTimer": self._configure_sleep_timer,
            "GetRunningAlarmProperties": lambda _a: {},
            "Play": self._play,
            "Pause": self._pause,
            "Stop": self._stop,
            "Seek": self._seek,
            "Next": lambda _a: self._step_track(+1),
            "Previous": lambda _a: self._step_track(-1),
            "BecomeCoordinatorOfStandaloneGroup": self._become_standalone,
        }
        rcs = {
            "GetVolume": lambda _a: {"CurrentVolume": str(self.volume)},
            "SetVolume": self._set_volume,
            "SetRelativeVolume": self._set_relative_volume,
            "GetMute": lambda _a: {"CurrentMute": "1" if self.mute else "0"},
            "SetMute": self._set_mute,
            "GetBass": lambda _a: {"CurrentBass": str(self.bass)},
            "SetBass": lambda a: self._set_eq("bass", a["DesiredBass"]),
            "GetTreble": lambda _a: {"CurrentTreble": str(self.treble)},
            "SetTreble": lambda a: self._set_eq("treble", a["DesiredTreble"]),
            "GetLoudness": lambda _a: {"CurrentLoudness": "1" if self.loudness else "0"},
            "SetLoudness": self._set_loudness,
            "GetOutputFixed": lambda _a: {"CurrentFixed": "1" if self.output_fixed else "0"},
            "SetOutputFixed": self._set_output_fixed,
            "GetSupportsOutputFixed": lambda _a: {"CurrentSupportsFixed": "0"},
            "RampToVolume": self._ramp_to_volume,
            "GetEQ": self._get_eq,
            "SetEQ": self._set_eq_type,
        }
        grc = {
            "GetGroupVolume": lambda _a: {"CurrentVolume": str(self._group_volume())},
            "SetGroupVolume": lambda a: self._set_group_volume(_int_arg(a, "DesiredVolume")),
            "SetRelativeGroupVolume": lambda a: self._set_group_volume(
                self._group_volume() + _int_arg(a, "Adjustment")
            ),
            "GetGroupMute": lambda _a: {
                "CurrentMute": "1" if all(s.mute for s in self.group_members) else "0"
            },
            "SetGroupMute": self._set_group_mute,
            "SnapshotGroupVolume": lambda _a: {},
        }
        handlers: dict[tuple[str, str], Handler] = {}
        for service, table in (
            ("AVTransport", avt),
            ("RenderingControl", rcs),
            ("GroupRenderingControl", grc),
            ("ContentDirectory", {"Browse": self._browse}),
            (
                "ZoneGroupTopology",
                {
                    # What the household has confirmed so far (group changes lag, see join()).
                    "GetZoneGroupState": lambda _a: {
                        "ZoneGroupState": self._household().zone_group_state(published=True)
                    },
                    "GetZoneGroupAttributes": self._zone_group_attributes,
                },
            ),
            (
                "DeviceProperties",
                {
                    "GetHouseholdID": lambda _a: {
                        "CurrentHouseholdID": self._household().household_id
                    },
                    "GetZoneAttributes": lambda _a: {
                        "CurrentZoneName": self.name,
                        "CurrentIcon": "x-rincon-roomicon:living",
                        "CurrentConfiguration": "1",
                    },
                    "SetZoneAttributes": self._set_zone_attributes,
                    "GetZoneInfo": self._zone_info,
                    "GetLEDState": lambda _a: {"CurrentLEDState": "On" if self.led_on else "Off"},
                    "SetLEDState": self._set_led,
                    "GetButtonLockState": lambda _a: {
                        "CurrentButtonLockState": "On" if self.buttons_locked else "Off"
                    },
                    "SetButtonLockState": self._set_button_lock,
                },
            ),
            (
                "AlarmClock",
                {
                    "ListAlarms": lambda _a: {
                        "CurrentAlarmList": self._household().alarm_list_xml(),
                        "CurrentAlarmListVersion": self._household().alarm_list_version,
                    },
                    "CreateAlarm": lambda a: {"AssignedID": self._household().save_alarm(None, a)},
                    "UpdateAlarm": self._update_alarm,
                    "DestroyAlarm": self._destroy_alarm,
                },
            ),
        ):
            for action, handler in table.items():
                handlers[service, action] = handler
        return handlers

    # ---------------------------------------------------------------- AVTransport actions

    def _set_av_transport_uri(self, args: dict[str, str]) -> dict[str, str]:
        uri = args["CurrentURI"]
        metadata = args["CurrentURIMetaData"]
        if uri.startswith("x-rincon:"):
            target = self._household().by_uid(uri.removeprefix("x-rincon:"))
            if target is None:
                raise UPnPError(402, f"no speaker {uri}")
            self._household().join(self, target, publish_after=self.event_delay, via=self)
            return {}
        queue = re.fullmatch(r"x-rincon-queue:(\w+)#(\d+)", uri)
        if queue is not None and queue[1] != self.uid:
            raise UPnPError(402, "a speaker can only play its own queue")
        scheme = uri.split(":", 1)[0].lower()
        if PurePosixPath(urlsplit(uri).path).suffix.lower() in self.refused_extensions:
            raise UPnPError(714, f"this player cannot play {uri!r}")
        if scheme in ("http", "https") and self.strict_extension_check and not metadata.strip():
            extension = PurePosixPath(urlsplit(uri).path).suffix.lower()
            if extension not in KNOWN_AUDIO_EXTENSIONS:
                raise UPnPError(714, f"cannot type {uri!r} without metadata or a known extension")
        if not self.is_coordinator:
            self._household().make_standalone(self, publish_after=self.event_delay, via=self)
        self._new_source(uri, metadata)
        return {}

    def _set_next_uri(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        self.next_uri = args["NextURI"]
        self.next_meta = args["NextURIMetaData"]
        return {}

    def _queue_changed(self) -> None:
        self.queue_update_id += 1

    def _insert_tracks(self, tracks: list[QueueTrack], args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        desired = _int_arg(args, "DesiredFirstTrackNumberEnqueued")
        as_next = args.get("EnqueueAsNext", "0") == "1"
        if as_next and self._is_queue_source() and self.track_number:
            index = self.track_number
        elif desired <= 0 or desired > len(self.queue):
            index = len(self.queue)
        else:
            index = desired - 1
        self.queue[index:index] = tracks
        if self._is_queue_source() and self.track_number == 0 and self.queue:
            self.track_number = 1
        elif self._is_queue_source() and index < self.track_number - 1:
            self.track_number += len(tracks)
        self._queue_changed()
        return {
            "FirstTrackNumberEnqueued": str(index + 1),
            "NumTracksAdded": str(len(tracks)),
            "NewQueueLength": str(len(self.queue)),
            "NewUpdateID": str(self.queue_update_id),
        }

    def _add_uri_to_queue(self, args: dict[str, str]) -> dict[str, str]:
        title = didl_title(args["EnqueuedURIMetaData"]) or ""
        return self._insert_tracks([QueueTrack(args["EnqueuedURI"], title=title)], args)

    def _add_multiple_uris_to_queue(self, args: dict[str, str]) -> dict[str, str]:
        uris = args["EnqueuedURIs"].split()
        return self._insert_tracks([QueueTrack(uri) for uri in uris], args)

    def _remove_track_from_queue(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        match = re.fullmatch(r"Q:0/(\d+)", args["ObjectID"])
        if match is None or not 1 <= int(match[1]) <= len(self.queue):
            raise UPnPError(402, f"no queue item {args['ObjectID']}")
        number = int(match[1])
        del self.queue[number - 1]
        if self._is_queue_source() and number < self.track_number:
            self.track_number -= 1
        self.track_number = min(self.track_number, len(self.queue))
        self._queue_changed()
        return {}

    def _remove_all_tracks(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        self.queue.clear()
        self._queue_changed()
        if self._is_queue_source():
            self._cancel_playback()
            self.track_number = 0
            self._position = 0.0
            self._set_state(STOPPED)
        return {}

    def _get_media_info(self, _args: dict[str, str]) -> dict[str, str]:
        if not self.is_coordinator:
            uri = f"x-rincon:{self.coordinator_uid}"
            return {
                "NrTracks": "1",
                "MediaDuration": "NOT_IMPLEMENTED",
                "CurrentURI": uri,
                "PlayMedium": "NETWORK",
                "RecordMedium": "NOT_IMPLEMENTED",
                "WriteStatus": "NOT_IMPLEMENTED",
            }
        tracks = len(self.queue) if self._is_queue_source() else int(bool(self.current_uri))
        return {
            "NrTracks": str(tracks),
            "MediaDuration": "NOT_IMPLEMENTED",
            "CurrentURI": self.current_uri,
            "CurrentURIMetaData": self.current_meta,
            "NextURI": self.next_uri,
            "NextURIMetaData": self.next_meta,
            "PlayMedium": "NETWORK" if self.current_uri else "NONE",
            "RecordMedium": "NOT_IMPLEMENTED",
            "WriteStatus": "NOT_IMPLEMENTED",
        }

    def _get_transport_info(self, _args: dict[str, str]) -> dict[str, str]:
        return {
            "CurrentTransportState": self.coordinator.transport_state,
            "CurrentTransportStatus": "OK",
            "CurrentSpeed": "1",
        }

    def _get_position_info(self, _args: dict[str, str]) -> dict[str, str]:
        counts = {"AbsTime": "NOT_IMPLEMENTED", "RelCount": "2147483647", "AbsCount": "2147483647"}
        if not self.is_coordinator:
            return {
                "Track": "1",
                "TrackDuration": "0:00:00",
                "TrackURI": f"x-rincon:{self.coordinator_uid}",
                "RelTime": "0:00:00",
                **counts,
            }
        track = self._current_track()
        if track is not None:
            return {
                "Track": str(self.track_number),
                "TrackDuration": (
                    track.duration
                    if self.track_duration is None
                    else _duration_text(self.track_duration)
                ),
                "TrackMetaData": track.metadata(self.track_number),
                "TrackURI": track.uri,
                "RelTime": format_hms(self.position()),
                **counts,
            }
        if not self.current_uri or self._is_queue_source():
            return {"Track": "0", "TrackDuration": "0:00:00", "RelTime": "0:00:00", **counts}
        return {
            "Track": "1",
            "TrackDuration": _duration_text(self.track_duration),
            "TrackMetaData": self.current_meta,
            "TrackURI": self.current_uri,
            "RelTime": format_hms(self.position()),
            **counts,
        }

    def _get_transport_settings(self, _args: dict[str, str]) -> dict[str, str]:
        return {"PlayMode": self.coordinator.play_mode, "RecQualityMode": "NOT_IMPLEMENTED"}

    def _set_play_mode(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        mode = args["NewPlayMode"].upper()
        if mode not in PLAY_MODES:
            raise UPnPError(712, f"unknown play mode {mode}")
        self.play_mode = mode
        return {}

    def _get_crossfade(self, _args: dict[str, str]) -> dict[str, str]:
        return {"CrossfadeMode": "1" if self.coordinator.crossfade else "0"}

    def _set_crossfade(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        if args["CrossfadeMode"] not in ("0", "1"):
            raise UPnPError(402, "CrossfadeMode must be 0 or 1")
        self.crossfade = args["CrossfadeMode"] == "1"
        return {}

    def transport_actions(self) -> list[str]:
        """What GetCurrentTransportActions lists for the coordinator's source."""
        speaker = self.coordinator
        if not speaker.current_uri:
            return ["Set"]
        actions = ["Set", "Stop", "Pause", "Play"]
        if speaker._is_queue_source():
            actions += ["X_DLNA_SeekTime", "Next", "X_DLNA_SeekTrackNr", "Previous"]
        elif not speaker.current_uri.startswith(UNSEEKABLE_PREFIXES):
            actions.append("X_DLNA_SeekTime")
        return actions

    def _get_transport_actions(self, _args: dict[str, str]) -> dict[str, str]:
        return {"Actions": ", ".join(self.transport_actions())}

    def _play(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        if not self.current_uri:
            raise UPnPError(701, "nothing to play")
        if self._is_queue_source() and not self.queue:
            raise UPnPError(701, "the queue is empty")
        if self._is_queue_source() and self.track_number == 0:
            self.track_number = 1
        if self.transport_state in (PLAYING, TRANSITIONING):
            return {}
        url = self._fetch_url()
        if url is None:
            self._anchor_time = time.monotonic()
            self._set_state(PLAYING)
        elif self.transport_state == PAUSED and self._loaded is not None:
            self._resume()
        else:
            self._start_fetch(url)
        return {}

    def _pause(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        if self.transport_state not in (PLAYING, TRANSITIONING):
            raise UPnPError(701, f"cannot pause when {self.transport_state}")
        self._position = self.position()
        self._cancel_tail()
        self._set_state(PAUSED)
        return {}

    def _stop(self, _args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        fetched = self._fetch_url() is not None
        self._cancel_playback()
        if fetched:
            self._position = 0.0
        self._set_state(STOPPED)
        return {}

    def _seek(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        unit, target = args["Unit"], args["Target"]
        if unit == "TRACK_NR":
            if not self._is_queue_source():
                raise UPnPError(701, "TRACK_NR seek needs the queue")
            try:
                number = int(target)
            except ValueError:
                raise UPnPError(711, f"bad track {target!r}") from None
            self._go_to_track(number)
        elif unit in ("REL_TIME", "TIME_DELTA"):
            if not self.current_uri or self._playing_uri().startswith(UNSEEKABLE_PREFIXES):
                raise UPnPError(701, "this source cannot seek")
            try:
                seconds = parse_hms(target)
            except ValueError:
                raise UPnPError(711, f"bad time {target!r}") from None
            track = self._current_track()
            limit = self.track_duration
            if limit is None and track is not None:
                limit = parse_hms(track.duration)
            if limit is not None and seconds > limit:
                raise UPnPError(711, f"{target} is past the end")
            self._position = seconds
            if self.transport_state == PLAYING and self._loaded is not None:
                self._resume()
        else:
            raise UPnPError(710, f"seek unit {unit}")
        return {}

    def _go_to_track(self, number: int) -> None:
        if not 1 <= number <= len(self.queue):
            raise UPnPError(711, f"no track {number} in a queue of {len(self.queue)}")
        was = self.transport_state
        self._cancel_playback()
        self.track_number = number
        self.track_duration = None
        self._position = 0.0
        if was in (PLAYING, TRANSITIONING):
            url = self._fetch_url()
            if url is not None:
                self._start_fetch(url)

    def _step_track(self, step: int) -> dict[str, str]:
        self._require_coordinator()
        if not self._is_queue_source():
            raise UPnPError(701, "Next/Previous need the queue")
        self._go_to_track(self.track_number + step)
        return {}

    def _become_standalone(self, _args: dict[str, str]) -> dict[str, str]:
        delegate = self._household().make_standalone(self, publish_after=self.event_delay, via=self)
        return {
            "DelegatedGroupCoordinatorID": delegate.uid if delegate else "",
            "NewGroupID": self.group_id,
        }

    # ---------------------------------------------------------------- rendering actions

    def _set_volume(self, args: dict[str, str]) -> dict[str, str]:
        self.volume = max(0, min(100, _int_arg(args, "DesiredVolume")))
        self._bond_follows()
        return {}

    def _set_relative_volume(self, args: dict[str, str]) -> dict[str, str]:
        self.volume = max(0, min(100, self.volume + _int_arg(args, "Adjustment")))
        self._bond_follows()
        return {"NewVolume": str(self.volume)}

    def _set_mute(self, args: dict[str, str]) -> dict[str, str]:
        self.mute = _bool_arg(args, "DesiredMute")
        self._bond_follows()
        return {}

    def _bond_follows(self) -> None:
        """A bonded set shares its main speaker's volume and mute."""
        for member in self.bonded_members:
            member.volume, member.mute = self.volume, self.mute

    def _set_eq(self, which: str, value: str) -> dict[str, str]:
        try:
            level = int(value)
        except ValueError:
            raise UPnPError(402, f"{which} must be an integer") from None
        setattr(self, which, max(-10, min(10, level)))
        return {}

    def _set_loudness(self, args: dict[str, str]) -> dict[str, str]:
        self.loudness = _bool_arg(args, "DesiredLoudness")
        return {}

    def _set_output_fixed(self, _args: dict[str, str]) -> dict[str, str]:
        raise UPnPError(401, "fixed output is not supported by this model")

    def _ramp_to_volume(self, args: dict[str, str]) -> dict[str, str]:
        target = max(0, min(100, _int_arg(args, "DesiredVolume")))
        rate = {"ALARM_RAMP_TYPE": 2.5, "AUTOPLAY_RAMP_TYPE": 50.0}.get(args["RampType"], 1.25)
        seconds = abs(target - self.volume) / rate
        self.volume = target  # the double jumps to the end of the ramp at once
        return {"RampTime": str(math.ceil(seconds))}

    def _group_volume(self) -> int:
        members = self.group_members
        return round(sum(s.volume for s in members) / len(members))

    def _set_group_volume(self, desired: int) -> dict[str, str]:
        delta = max(0, min(100, desired)) - self._group_volume()
        for speaker in self.group_members:
            speaker.volume = max(0, min(100, speaker.volume + delta))
        return {"NewVolume": str(self._group_volume())}

    def _set_group_mute(self, args: dict[str, str]) -> dict[str, str]:
        mute = _bool_arg(args, "DesiredMute")
        for speaker in self.group_members:
            speaker.mute = mute
        return {}

    # ---------------------------------------------------------------- other services

    def _browse(self, args: dict[str, str]) -> dict[str, str]:
        object_id = args["ObjectID"]
        start = _int_arg(args, "StartingIndex")
        count = _int_arg(args, "RequestedCount")
        update = str(self.queue_update_id)
        if object_id == "Q:0" and args["BrowseFlag"] == "BrowseMetadata":
            container = (
                f'<container id="Q:0" parentID="Q:" restricted="true" '
                f'childCount="{len(self.queue)}"><dc:title>Queue Instance 0</dc:title>'
                "<upnp:class>object.container.playlistContainer</upnp:class></container>"
            )
            result = DIDL_OPEN + container + DIDL_CLOSE
            return {
                "Result": result,
                "NumberReturned": "1",
                "TotalMatches": "1",
                "UpdateID": update,
            }
        if object_id == "Q:0":
            end = len(self.queue) if count <= 0 else min(len(self.queue), start + count)
            items = "".join(self.queue[i].didl_item(i + 1) for i in range(start, end))
            return {
                "Result": DIDL_OPEN + items + DIDL_CLOSE,
                "NumberReturned": str(max(0, end - start)),
                "TotalMatches": str(len(self.queue)),
                "UpdateID": update,
            }
        if object_id == "FV:2":
            favorites = self._household().favorites
            end = len(favorites) if count <= 0 else min(len(favorites), start + count)
            items = "".join(favorites[i].didl_item(i + 1) for i in range(start, end))
            return {
                "Result": DIDL_OPEN + items + DIDL_CLOSE,
                "NumberReturned": str(max(0, end - start)),
                "TotalMatches": str(len(favorites)),
                "UpdateID": str(self._household().favorites_update_id),
            }
        # playlists, the library: an empty household
        return {
            "Result": DIDL_OPEN + DIDL_CLOSE,
            "NumberReturned": "0",
            "TotalMatches": "0",
            "UpdateID": "1",
        }

    def _zone_group_attributes(self, _args: dict[str, str]) -> dict[str, str]:
        members = self.group_members
        name = members[0].name + (f" + {len(members) - 1}" if len(members) > 1 else "")
        return {
            "CurrentZoneGroupName": name,
            "CurrentZoneGroupID": self.group_id,
            "CurrentZonePlayerUUIDsInGroup": ",".join(s.uid for s in members),
            "CurrentMuseHouseholdId": self._household().household_id,
        }

    def _set_zone_attributes(self, args: dict[str, str]) -> dict[str, str]:
        if args["DesiredZoneName"]:
            self.name = args["DesiredZoneName"]
        return {}

    def _zone_info(self, _args: dict[str, str]) -> dict[str, str]:
        return {
            "SerialNumber": self.serial_number,
            "SoftwareVersion": self.software_version,
            "DisplaySoftwareVersion": self.display_version,
            "HardwareVersion": self.hardware_version,
            "IPAddress": self.ip,
            "MACAddress": self.mac,
            "CopyrightInfo": "© 2004-2026 Sonos, Inc. All Rights Reserved.",
            "HTAudioIn": "0",
            "Flags": "0",
        }

    def _update_alarm(self, args: dict[str, str]) -> dict[str, str]:
        self._household().save_alarm(args["ID"], args)
        return {}

    def _destroy_alarm(self, args: dict[str, str]) -> dict[str, str]:
        self._household().destroy_alarm(args["ID"])
        return {}

    def _set_button_lock(self, args: dict[str, str]) -> dict[str, str]:
        if args["DesiredButtonLockState"] not in ("On", "Off"):
            raise UPnPError(402, "DesiredButtonLockState must be On or Off")
        self.buttons_locked = args["DesiredButtonLockState"] == "On"
        return {}

    def _get_eq(self, args: dict[str, str]) -> dict[str, str]:
        if args["EQType"] not in self.eq:
            raise UPnPError(402, f"EQType {args['EQType']} is not supported by this model")
        return {"CurrentValue": str(self.eq[args["EQType"]])}

    def _set_eq_type(self, args: dict[str, str]) -> dict[str, str]:
        if args["EQType"] not in self.eq:
            raise UPnPError(402, f"EQType {args['EQType']} is not supported by this model")
        self.eq[args["EQType"]] = _int_arg(args, "DesiredValue")
        return {}

    def sleep_timer_remaining(self) -> float | None:
        """Seconds until the sleep timer pauses the group, or None when none is set."""
        ends = self.coordinator.sleep_timer_ends
        return None if ends is None else max(0.0, ends - time.monotonic())

    def _get_sleep_timer(self, _args: dict[str, str]) -> dict[str, str]:
        remaining = self.sleep_timer_remaining()
        return {
            "RemainingSleepTimerDuration": "" if remaining is None else format_hms(remaining),
            "CurrentSleepTimerGeneration": str(self.coordinator.sleep_timer_generation),
        }

    def _configure_sleep_timer(self, args: dict[str, str]) -> dict[str, str]:
        self._require_coordinator()
        text = args["NewSleepTimerDuration"].strip()
        if text:
            try:
                seconds = parse_hms(text)
            except ValueError:
                raise UPnPError(402, f"bad sleep timer duration {text!r}") from None
            if seconds >= 86400:
                raise UPnPError(402, "a sleep timer is shorter than a day")
            self.sleep_timer_ends = time.monotonic() + seconds
        else:
            self.sleep_timer_ends = None
        self._cancel_sleep_timer()
        if text:
            # A timer handle, not a task: a pending sleep timer does not keep the speaker busy.
            self._sleep_handle = asyncio.get_running_loop().call_later(seconds, self._sleep_now)
        self.sleep_timer_generation += 1
        return {}

    def _cancel_sleep_timer(self) -> None:
        if self._sleep_handle is not None:
            self._sleep_handle.cancel()
            self._sleep_handle = None

    def _sleep_now(self) -> None:
        """The sleep timer ran out: pause (as a real speaker fades out and pauses)."""
        self._sleep_handle = None
        self.sleep_timer_ends = None
        self.sleep_timer_generation += 1
        if self.transport_state in (PLAYING, TRANSITIONING):
            self._pause({})
        else:
            self._household().changed()

    def _set_led(self, args: dict[str, str]) -> dict[str, str]:
        if args["DesiredLEDState"] not in ("On", "Off"):
            raise UPnPError(402, "DesiredLEDState must be On or Off")
        self.led_on = args["DesiredLEDState"] == "On"
        return {}

    # ---------------------------------------------------------------- events

    async def _handle_subscribe(self, request: web.Request) -> web.StreamResponse:
        service = CONTROL_PATHS[request.path.removesuffix("/Event")]
        timeout = _timeout_header(request.headers.get("TIMEOUT"))
        sid = request.headers.get("SID")
        headers = {"Server": self.user_agent, "TIMEOUT": f"Second-{timeout}"}
        if sid:  # renewal
            sub = self.subscriptions.get(sid)
            if sub is None or sub.service != service:
                return web.Response(status=412, reason="Precondition Failed")
            sub.timeout_s = timeout
            return web.Response(headers={**headers, "SID": sid})
        callback = re.search(r"<([^>]+)>", request.headers.get("CALLBACK", ""))
        if callback is None or request.headers.get("NT") != "upnp:event":
            return web.Response(status=412, reason="Precondition Failed")
        sid = f"uuid:{self.uid}_sub{next(self._sub_ids):010d}"
        self.subscriptions[sid] = Subscription(sid, service, callback[1], timeout)
        # The initial event goes out after the answer, as on a real speaker.
        self._spawn(self._send_initial_event(sid), f"initial event {service}")
        return web.Response(headers={**headers, "SID": sid})

    async def _send_initial_event(self, sid: str) -> None:
        await asyncio.sleep(0.01)
        sub = self.subscriptions.get(sid)
        if sub is not None:
            await self._notify(sub, self.event_body(sub.service))

    async def _handle_unsubscribe(self, request: web.Request) -> web.StreamResponse:
        sid = request.headers.get("SID", "")
        if self.subscriptions.pop(sid, None) is None:
            return web.Response(status=412, reason="Precondition Failed")
        return web.Response(headers={"Server": self.user_agent})

    def event_body(self, service: str) -> str:
        """The NOTIFY body with the current evented state of ``service``."""
        properties: dict[str, str] = {}
        if service == "AVTransport":
            properties["LastChange"] = self._avt_last_change()
        elif service == "RenderingControl":
            properties["LastChange"] = (
                '<Event xmlns="urn:schemas-upnp-org:metadata-1-0/RCS/"><InstanceID val="0">'
                f'<Volume channel="Master" val="{self.volume}"/>'
                f'<Mute channel="Master" val="{int(self.mute)}"/>'
                f'<Bass val="{self.bass}"/><Treble val="{self.treble}"/>'
                f'<Loudness channel="Master" val="{int(self.loudness)}"/>'
                f'<OutputFixed val="{int(self.output_fixed)}"/>'
                + "".join(f'<{name} val="{value}"/>' for name, value in self.eq.items())
                + "</InstanceID></Event>"
            )
        elif service == "GroupRenderingControl":
            properties["GroupVolume"] = str(self._group_volume())
            properties["GroupMute"] = "1" if all(s.mute for s in self.group_members) else "0"
            properties["GroupVolumeChangeable"] = "1"
        elif service == "ZoneGroupTopology":
            household = self._household()
            properties["ZoneGroupState"] = household.zone_group_state(published=True)
            properties["ZonePlayerUUIDsInGroup"] = ",".join(household.published_group(self))
        elif service == "DeviceProperties":
            properties.update(ZoneName=self.name, Icon="x-rincon-roomicon:living", Invisible="0")
        elif service == "ContentDirectory":
            household = self._household()
            owner = household.speakers[0].uid if household.speakers else self.uid
            favorites = household.favorites_update_id
            properties.update(
                SystemUpdateID=str(favorites + self.queue_update_id),
                ContainerUpdateIDs=f"FV:2,{favorites},Q:0,{self.queue_update_id}",
                FavoritesUpdateID=f"{owner},{favorites}",
                FavoritePresetsUpdateID=f"{owner},{favorites}",
                SavedQueuesUpdateID=f"{owner},0",
                ShareListUpdateID=f"{owner},0",
                ShareIndexInProgress="0",
            )
        else:
            properties["AlarmListVersion"] = self._household().alarm_list_version
        props = "".join(
            f"<e:property><{k}>{escape(v)}</{k}></e:property>" for k, v in properties.items()
        )
        return (
            '<?xml version="1.0"?>'
            f'<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">{props}</e:propertyset>'
        )

    def _avt_last_change(self) -> str:
        media = self._get_media_info({})
        position = self._get_position_info({})
        enqueued = enqueued_meta = ""
        if self.is_coordinator and self.current_uri and not self._is_queue_source():
            enqueued, enqueued_meta = self.current_uri, self.current_meta
        values = {
            "TransportState": self.coordinator.transport_state,
            "CurrentPlayMode": self.coordinator.play_mode,
            "CurrentCrossfadeMode": "1" if self.coordinator.crossfade else "0",
            "NumberOfTracks": media["NrTracks"],
            "CurrentTrack": position["Track"],
            "CurrentSection": "0",
            "CurrentTrackURI": position.get("TrackURI", ""),
            "CurrentTrackDuration": position["TrackDuration"],
            "CurrentTrackMetaData": position.get("TrackMetaData", ""),
            "r:NextTrackURI": "",
            "r:NextTrackMetaData": "",
            # What was put on the transport: the station for radio, nothing for a plain queue.
            "r:EnqueuedTransportURI": enqueued,
            "r:EnqueuedTransportURIMetaData": enqueued_meta,
            "PlaybackStorageMedium": media["PlayMedium"],
            "AVTransportURI": media.get("CurrentURI", ""),
            "AVTransportURIMetaData": media.get("CurrentURIMetaData", ""),
            "NextAVTransportURI": self.next_uri,
            "NextAVTransportURIMetaData": self.next_meta,
            "CurrentTransportActions": ", ".join(self.transport_actions()),
            "r:CurrentValidPlayModes": "SHUFFLE,REPEAT,REPEATONE,CROSSFADE",
            "r:DirectControlClientID": "",
            "r:DirectControlIsSuspended": "0",
            "r:DirectControlAccountID": "",
            "TransportStatus": "OK",
            "r:SleepTimerGeneration": str(self.coordinator.sleep_timer_generation),
            "r:AlarmRunning": "0",
            "r:SnoozeRunning": "0",
            "r:RestartPending": "0",
            "TransportPlaySpeed": "1",
            "CurrentMediaDuration": "NOT_IMPLEMENTED",
            "RecordStorageMedium": "NOT_IMPLEMENTED",
            "PossiblePlaybackStorageMedia": "NONE, NETWORK",
            "PossibleRecordStorageMedia": "NOT_IMPLEMENTED",
            "RecordMediumWriteStatus": "NOT_IMPLEMENTED",
            "CurrentRecordQualityMode": "NOT_IMPLEMENTED",
            "PossibleRecordQualityModes": "NOT_IMPLEMENTED",
        }
        inner = "".join(f"<{k} val={quoteattr(v)}/>" for k, v in values.items())
        return (
            '<Event xmlns="urn:schemas-upnp-org:metadata-1-0/AVT/" '
            'xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/">'
            f'<InstanceID val="0">{inner}</InstanceID></Event>'
        )

    def send_changed_events(self) -> None:
        """NOTIFY every subscriber whose evented state differs from what it last got."""
        if not self.subscriptions or self._runner is None:
            return
        for sub in list(self.subscriptions.values()):
            if sub.last_sent is None:
                continue  # its initial event is still on its way
            body = self.event_body(sub.service)
            if body != sub.last_sent:
                # Topology events leave when the household publishes the change (itself late).
                delay = 0.0 if sub.service == "ZoneGroupTopology" else self.event_delay
                self._queue_event(sub, body, delay)

    def _queue_event(self, sub: Subscription, body: str, delay: float) -> None:
        """Send ``body`` to ``sub`` after ``delay`` seconds, after what is queued before it."""
        sub.last_sent = body
        sub.outbox.append((asyncio.get_running_loop().time() + delay, body))
        if sub.sender is None or sub.sender.done():
            sub.sender = self._spawn(self._send_events(sub), f"events {sub.service}")

    async def _send_events(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        while sub.outbox:
            due, body = sub.outbox[0]
            await asyncio.sleep(max(0.0, due - loop.time()))
            sub.outbox.popleft()
            if self.subscriptions.get(sub.sid) is sub:
                await self._notify(sub, body, mark=False)

    async def _notify(self, sub: Subscription, body: str, *, mark: bool = True) -> None:
        if mark:
            sub.last_sent = body
        host = urlsplit(sub.callback).hostname or ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback or self._session is None:
            self.notifications.append((sub.sid, sub.service, sub.seq, 0))
            return  # the double only ever talks to loopback addresses
        async with sub.lock:
            seq = sub.seq
            sub.seq += 1
            headers = {
                "NT": "upnp:event",
                "NTS": "upnp:propchange",
                "SID": sub.sid,
                "SEQ": str(seq),
                "Content-Type": 'text/xml; charset="utf-8"',
            }
            status = 0
            try:
                async with (
                    asyncio.timeout(5),
                    self._session.request(
                        "NOTIFY", sub.callback, data=body.encode(), headers=headers
                    ) as response,
                ):
                    status = response.status
            except TimeoutError, aiohttp.ClientError:
                status = -1
            self.notifications.append((sub.sid, sub.service, seq, status))

    # ---------------------------------------------------------------- status pages

    async def _handle_battery_status(self, _request: web.Request) -> web.StreamResponse:
        """``/status/batterystatus``: battery data on portable models, nothing on others."""
        body = "<ZPSupportInfo></ZPSupportInfo>"
        if self.has_battery:
            data = {
                "Health": "GREEN",
                "Level": str(self.battery_level),
                "Temperature": "NORMAL",
                "PowerSource": "SONOS_CHARGING_RING" if self.battery_charging else "BATTERY",
            }
            items = "".join(f'<Data name="{k}">{v}</Data>' for k, v in data.items())
            body = (
                f"<ZPSupportInfo><LocalBatteryStatus>{items}</LocalBatteryStatus></ZPSupportInfo>"
            )
        return self._xml_response(body)

    def status(self) -> dict[str, Any]:
        """The double's state and history as JSON-able data (``/double/status``)."""
        track = self._current_track()
        return {
            "name": self.name,
            "uid": self.uid,
            "ip": self.ip,
            "model": self.model_name,
            "transport_state": self.transport_state,
            "coordinator": self.coordinator.name,
            "current_uri": self.current_uri,
            "title": track.title if track else didl_title(self.current_meta),
            "track": self.track_number,
            "queue_length": len(self.queue),
            "position": format_hms(self.position()),
            "volume": self.volume,
            "mute": self.mute,
            "event_delay": self.event_delay,
            "start_delay": self.start_delay,
            "sleep_timer": self.sleep_timer_remaining(),
            "played": [record.summary() for record in self.played],
            "clips": [
                {"id": c.id, "url": c.url, "status": c.status, "volume": c.volume}
                for c in self.clips
            ],
            "errors": [repr(error) for error in self.errors],
        }

    async def _handle_double_status(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.status())

    # ---------------------------------------------------------------- websocket (audioClip)

    async def _handle_local_info(self, request: web.Request) -> web.StreamResponse:
        if not request.secure:
            raise web.HTTPNotFound
        if API_KEY_HEADER not in request.headers:
            raise web.HTTPUnauthorized
        return web.json_response(
            {
                "device": {
                    "id": self.uid,
                    "name": self.name,
                    "modelDisplayName": self.model_name,
                    "serialNumber": self.serial_number,
                    "softwareVersion": self.software_version,
                    "capabilities": self.capabilities(),
                },
                "householdId": self._household().household_id,
                "playerId": self.uid,
                "groupId": self.group_id,
                "websocketUrl": self.websocket_url,
                "restUrl": f"https://{self.ip}:{WEBSOCKET_PORT}/api",
            }
        )

    def capabilities(self) -> list[str]:
        """Player capabilities as getGroups lists them."""
        caps = ["PLAYBACK", "CLOUD", "AIRPLAY", "VOICE", "SPEAKER_DETECTION"]
        if self.supports_audio_clip:
            caps.append("AUDIO_CLIP")
        return caps

    async def _handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if not request.secure:
            raise web.HTTPNotFound
        if self.websocket_refuse is not None:
            return web.Response(status=self.websocket_refuse, text="websocket refused")
        if API_KEY_HEADER not in request.headers:
            raise web.HTTPUnauthorized(text="missing X-Sonos-Api-Key")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if WEBSOCKET_PROTOCOL not in offered:
            raise web.HTTPBadRequest(text=f"subprotocol {WEBSOCKET_PROTOCOL} required")
        ws = web.WebSocketResponse(protocols=(WEBSOCKET_PROTOCOL,))
        await ws.prepare(request)
        self._websockets.add(ws)
        peer = WebsocketPeer(ws)
        self._peers.add(peer)
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                answer = self.websocket_command(message.data, peer)
                async with peer.lock:
                    await ws.send_json(answer)
        finally:
            self._peers.discard(peer)
            self._websockets.discard(ws)
        return ws

    def websocket_command(
        self, text: str, peer: WebsocketPeer | None = None
    ) -> list[dict[str, Any]]:
        """Answer one ``[command, options]`` frame (``peer``: who sent it, for subscriptions)."""
        frame = _parse_frame(text)
        if isinstance(frame, str):
            return self._ws_error({}, "ERROR_INVALID_SYNTAX", frame)
        command, options = frame
        self.ws_log.append((command, options))
        namespace = command.get("namespace")
        name = command.get("command")
        if namespace == "audioClip:1" and name in ("subscribe", "unsubscribe"):
            return self._clip_subscription(command, peer)
        if namespace == "audioClip:1" and name in ("loadAudioClip", "cancelAudioClip"):
            return self._audio_clip_command(command, options)
        if namespace == "groups:1" and name == "getGroups":
            return [self._ws_header(command, "groups"), self._groups_body()]
        if not command:
            return self._ws_error(command, "ERROR_MISSING_PARAMETERS", "empty command")
        return self._ws_error(command, "ERROR_INVALID_COMMAND", f"{namespace} {name}")

    def _clip_subscription(
        self, command: dict[str, Any], peer: WebsocketPeer | None
    ) -> list[dict[str, Any]]:
        """``subscribe``/``unsubscribe``: ``audioClipStatus`` events to this client, or not."""
        if not self.supports_audio_clip:
            return self._ws_error(command, "ERROR_UNSUPPORTED_NAMESPACE", "audioClip:1")
        if not self.clip_status_events:
            return self._ws_error(command, "ERROR_INVALID_COMMAND", "no clip status events")
        if peer is not None:
            peer.subscribed = command.get("command") == "subscribe"
        return [self._ws_header(command, "none"), {}]

    def _audio_clip_command(
        self, command: dict[str, Any], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if not self.supports_audio_clip:
            return self._ws_error(command, "ERROR_UNSUPPORTED_NAMESPACE", "audioClip:1")
        if command.get("playerId") != self.uid:
            return self._ws_error(command, "ERROR_INVALID_OBJECT_ID", "unknown playerId")
        if command.get("command") == "loadAudioClip":
            return self._load_audio_clip(command, options)
        return self._cancel_audio_clip(command, options)

    def _ws_header(
        self, command: dict[str, Any], kind: str, *, success: bool = True
    ) -> dict[str, Any]:
        header: dict[str, Any] = {
            "householdId": self._household().household_id,
            "success": success,
            "type": kind,
        }
        if command.get("namespace"):
            header["namespace"] = command["namespace"]
        if command.get("command"):
            header["response"] = command["command"]
        if command.get("playerId"):
            header["playerId"] = command["playerId"]
        if "cmdId" in command:
            header["cmdId"] = command["cmdId"]
        return header

    def _ws_error(self, command: dict[str, Any], code: str, reason: str) -> list[dict[str, Any]]:
        return [
            self._ws_header(command, "globalError", success=False),
            {"_objectType": "globalError", "errorCode": code, "reason": reason},
        ]

    def _load_audio_clip(
        self, command: dict[str, Any], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        volume = options.get("volume")
        if volume is not None and (not isinstance(volume, int) or not 0 <= volume <= 100):
            return self._ws_error(command, "ERROR_INVALID_PARAMETER", "volume must be 0..100")
        url = options.get("streamUrl")
        clip = AudioClip(
            id=f"clip-{next(self._clip_ids)}",
            url=url if isinstance(url, str) else None,
            name=str(options.get("name", "")),
            app_id=str(options.get("appId", "")),
            priority=str(options.get("priority", "LOW")),
            clip_type="CUSTOM" if url else str(options.get("clipType", "CHIME")),
            volume=volume,
        )
        self.clips.append(clip)
        clip.history.append((clip.status, time.monotonic()))
        if clip.url:
            self._spawn(self._play_clip(clip), f"clip {clip.id}")
        else:
            self._clip_status(clip, "DONE")
        body = {
            "_objectType": "audioClip",
            "id": clip.id,
            "name": clip.name,
            "appId": clip.app_id,
            "priority": clip.priority,
            "clipType": clip.clip_type,
            "status": "ACTIVE",
        }
        return [self._ws_header(command, "audioClip"), body]

    async def _play_clip(self, clip: AudioClip) -> None:
        assert clip.url is not None
        record = await self.fetch_and_decode(
            clip.url, "audioclip", volume=clip.volume, clip_id=clip.id
        )
        clip.record = record
        if record.error is not None:
            self._clip_status(clip, "ERROR")
            return
        await asyncio.sleep(self.start_delay)  # buffering before the clip is heard
        if clip.status != "ACTIVE":
            return
        self._clip_status(clip, "ACTIVE")  # now it plays
        await asyncio.sleep((record.duration_s or 0.0) * max(0.0, self.playback_speed))
        if clip.status == "ACTIVE":
            self._clip_status(clip, "DONE")

    def _clip_status(self, clip: AudioClip, status: str) -> None:
        """Record a clip's status and tell the subscribers (an ``audioClipStatus`` event)."""
        clip.status = status
        clip.history.append((status, time.monotonic()))
        self._signal()
        header = {
            "namespace": "audioClip:1",
            "householdId": self._household().household_id,
            "playerId": self.uid,
            "type": "audioClipStatus",
        }
        event: list[dict[str, Any]] = [
            header,
            {"_objectType": "audioClipStatus", "audioClips": [clip.body()]},
        ]
        loop = asyncio.get_running_loop()
        for peer in self._peers:
            if peer.subscribed and not peer.ws.closed:
                peer.outbox.append((loop.time() + self.event_delay, event))
                if peer.sender is None or peer.sender.done():
                    peer.sender = self._spawn(self._send_ws_events(peer), "clip events")

    async def _send_ws_events(self, peer: WebsocketPeer) -> None:
        loop = asyncio.get_running_loop()
        while peer.outbox:
            due, event = peer.outbox[0]
            await asyncio.sleep(max(0.0, due - loop.time()))
            peer.outbox.popleft()
            if peer.ws.closed:
                continue
            async with peer.lock:
                try:
                    await peer.ws.send_json(event)
                except ConnectionError:
                    return  # the client went away

    def _cancel_audio_clip(
        self, command: dict[str, Any], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        clip = next((c for c in self.clips if c.id == options.get("id")), None)
        if clip is None:
            return self._ws_error(command, "ERROR_INVALID_OBJECT_ID", "unknown clip id")
        if clip.status == "ACTIVE":
            self._clip_status(clip, "DISMISSED")
        return [self._ws_header(command, "none"), {}]

    def _groups_body(self) -> dict[str, Any]:
        household = self._household()
        groups = []
        for members in household.groups():
            state = members[0].transport_state
            groups.append(
                {
                    "_objectType": "group",
                    "coordinatorId": members[0].uid,
                    "id": members[0].group_id,
                    "name": members[0].name,
                    "playbackState": {
                        PLAYING: "PLAYBACK_STATE_PLAYING",
                        TRANSITIONING: "PLAYBACK_STATE_BUFFERING",
                        PAUSED: "PLAYBACK_STATE_PAUSED",
                    }.get(state, "PLAYBACK_STATE_IDLE"),
                    "playerIds": [s.uid for s in members if s.bonded_to is None],
                }
            )
        players = [
            {
                "_objectType": "player",
                "id": s.uid,
                "name": s.name,
                "websocketUrl": s.websocket_url,
                "softwareVersion": s.software_version,
                "apiVersion": "1.40.0",
                "minApiVersion": "1.1.0",
                "capabilities": s.capabilities(),
                "deviceIds": [s.uid],
                "icon": "",
            }
            for s in household.speakers
            if s.bonded_to is None
        ]
        return {"_objectType": "groups", "groups": groups, "partial": False, "players": players}


def _duration_text(seconds: float | None) -> str:
    """TrackDuration: whole seconds, rounded up so a short clip is not 0:00:00 (radio)."""
    return format_hms(math.ceil(seconds)) if seconds else "0:00:00"


def _parse_frame(text: str) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """A websocket frame as (command, options), or what is wrong with it."""
    try:
        payload = json.loads(text)
    except ValueError as err:
        return f"not JSON: {err}"
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(isinstance(part, dict) for part in payload)
    ):
        return "a frame is a JSON array [command, options] of two objects"
    return payload[0], payload[1]


def _int_arg(args: dict[str, str], name: str) -> int:
    try:
        return int(args[name])
    except KeyError, ValueError:
        raise UPnPError(402, f"{name} must be an integer") from None


def _bool_arg(args: dict[str, str], name: str) -> bool:
    value = args.get(name, "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise UPnPError(402, f"{name} must be 0 or 1")


def _timeout_header(value: str | None) -> int:
    match = re.fullmatch(r"Second-(\d+)", (value or "").strip())
    return min(int(match[1]), 86400) if match else 86400


# --------------------------------------------------------------------------------------------
# The household
# --------------------------------------------------------------------------------------------


class FakeHousehold:
    """Fake speakers that see each other: groups, zone group state, one household id."""

    def __init__(
        self,
        speakers: Iterable[FakeSonosSpeaker] = (),
        household_id: str = DEFAULT_HOUSEHOLD_ID,
        *,
        event_delay: float = DEFAULT_EVENT_DELAY,
    ) -> None:
        """Adopt ``speakers``.

        ``event_delay``: group changes made through a speaker (join, leave) show in the
        topology it reports (``GetZoneGroupState``, ZoneGroupTopology events) only this many
        seconds later, in order, as on real speakers; changes made directly on the household
        (test set-up) show at once.
        """
        self.household_id = household_id
        self.event_delay = event_delay
        self.speakers: list[FakeSonosSpeaker] = []
        self._in_change = False
        #: The topology speakers report: (group id, member uids, coordinator first) per group.
        self._published: list[tuple[str, list[str]]] = []
        self._pending_topology: deque[tuple[float, list[tuple[str, list[str]]]]] = deque()
        self._publisher: asyncio.Task[None] | None = None
        #: Household-wide, like on real players: every speaker lists the same favorites/alarms.
        self.favorites: list[Favorite] = []
        self.favorites_update_id = 1
        self.alarms: dict[str, dict[str, str]] = {}
        self._alarm_version = 0
        self._alarm_ids = itertools.count(1)
        for speaker in speakers:
            self.add(speaker)

    @classmethod
    def create(
        cls,
        count: int = 2,
        *,
        first_ip: int = 2,
        names: Sequence[str] | None = None,
        household_id: str = DEFAULT_HOUSEHOLD_ID,
        event_delay: float = DEFAULT_EVENT_DELAY,
        **speaker_options: Any,
    ) -> Self:
        """``count`` speakers on 127.0.0.{first_ip}, 127.0.0.{first_ip + 1}, ...

        ``event_delay`` applies to the household's topology and to every speaker's events.
        """
        if first_ip < 2 or first_ip + count > 255:
            raise ValueError("speakers live on 127.0.0.2 .. 127.0.0.254")
        names = list(names or DEFAULT_NAMES)
        while len(names) < count:
            names.append(f"Speaker {len(names) + 1}")
        return cls(
            (
                FakeSonosSpeaker(
                    names[i], f"127.0.0.{first_ip + i}", event_delay=event_delay, **speaker_options
                )
                for i in range(count)
            ),
            household_id=household_id,
            event_delay=event_delay,
        )

    def add(self, speaker: FakeSonosSpeaker) -> FakeSonosSpeaker:
        """Put ``speaker`` into this household (as a standalone group)."""
        if any(s.ip == speaker.ip for s in self.speakers):
            raise ValueError(f"two speakers on {speaker.ip}")
        speaker.household = self
        self.speakers.append(speaker)
        self._topology_changed(0.0, None)
        return speaker

    def by_uid(self, uid: str) -> FakeSonosSpeaker | None:
        """The speaker with this RINCON uid."""
        return next((s for s in self.speakers if s.uid == uid), None)

    def by_ip(self, ip: str) -> FakeSonosSpeaker | None:
        """The speaker on this address."""
        return next((s for s in self.speakers if s.ip == ip), None)

    def __getitem__(self, name: str) -> FakeSonosSpeaker:
        """The speaker called ``name``."""
        for speaker in self.speakers:
            if speaker.name == name:
                return speaker
        raise KeyError(name)

    async def start(self) -> None:
        """Start every speaker."""
        try:
            for speaker in self.speakers:
                await speaker.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every speaker."""
        for speaker in self.speakers:
            await speaker.stop()
        self.publish_topology()

    async def __aenter__(self) -> Self:
        """Start."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop."""
        await self.stop()

    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until no speaker fetches, plays out or sends events."""
        async with asyncio.timeout(timeout):
            for speaker in self.speakers:
                await speaker.wait_idle(timeout)

    # ---------------------------------------------------------------- favorites and alarms

    def add_favorite(
        self, title: str, uri: str, metadata: str | None = None, description: str = ""
    ) -> Favorite:
        """Add a Sonos favorite (a radio station's metadata by default)."""
        favorite = Favorite(
            title,
            uri,
            radio_metadata(title) if metadata is None else metadata,
            description or "TuneIn Station",
        )
        self.favorites.append(favorite)
        self.favorites_update_id += 1
        self.changed()
        return favorite

    @property
    def alarm_list_version(self) -> str:
        """``<uid>:<n>``: changes whenever an alarm is created, updated or removed."""
        owner = self.speakers[0].uid if self.speakers else "RINCON_000E5800000001400"
        return f"{owner}:{self._alarm_version}"

    def add_alarm(
        self,
        speaker: FakeSonosSpeaker,
        start_time: str = "07:00:00",
        *,
        recurrence: str = "DAILY",
        enabled: bool = True,
        volume: int = 25,
    ) -> str:
        """Add an alarm for ``speaker`` (the buzzer, 2 hours); returns its ID."""
        return self.save_alarm(
            None,
            {
                "StartLocalTime": start_time,
                "Duration": "02:00:00",
                "Recurrence": recurrence,
                "Enabled": "1" if enabled else "0",
                "RoomUUID": speaker.uid,
                "ProgramURI": "x-rincon-buzzer:0",
                "ProgramMetaData": "",
                "PlayMode": "SHUFFLE_NOREPEAT",
                "Volume": str(volume),
                "IncludeLinkedZones": "0",
            },
        )

    def save_alarm(self, alarm_id: str | None, args: dict[str, str]) -> str:
        """CreateAlarm (``alarm_id`` None) or UpdateAlarm; UPnPError for bad arguments."""
        if alarm_id is not None and alarm_id not in self.alarms:
            raise UPnPError(402, f"no alarm {alarm_id}")
        try:
            parse_hms(args["StartLocalTime"])
        except ValueError:
            raise UPnPError(402, f"bad StartLocalTime {args['StartLocalTime']!r}") from None
        if self.by_uid(args["RoomUUID"]) is None:
            raise UPnPError(402, f"no room {args['RoomUUID']}")
        if alarm_id is None:
            alarm_id = str(next(self._alarm_ids))
        self.alarms[alarm_id] = {
            "ID": alarm_id,
            "StartTime": args["StartLocalTime"],
            **{k: args[k] for k in _ALARM_ARGS if k != "StartLocalTime"},
        }
        self._alarm_version += 1
        self.changed()
        return alarm_id

    def destroy_alarm(self, alarm_id: str) -> None:
        """DestroyAlarm."""
        if self.alarms.pop(alarm_id, None) is None:
            raise UPnPError(402, f"no alarm {alarm_id}")
        self._alarm_version += 1
        self.changed()

    def alarm_list_xml(self) -> str:
        """``CurrentAlarmList`` of ListAlarms."""
        alarms = "".join(
            "<Alarm " + " ".join(f"{k}={quoteattr(v)}" for k, v in alarm.items()) + "/>"
            for alarm in self.alarms.values()
        )
        return f"<Alarms>{alarms}</Alarms>"

    # ---------------------------------------------------------------- groups

    def groups(self) -> list[list[FakeSonosSpeaker]]:
        """Each group as a list, coordinator first."""
        return [s.group_members for s in self.speakers if s.is_coordinator]

    def join(
        self,
        member: FakeSonosSpeaker,
        target: FakeSonosSpeaker,
        *,
        publish_after: float = 0.0,
        via: FakeSonosSpeaker | None = None,
    ) -> None:
        """Let ``member`` join ``target``'s group (what ``x-rincon:{uid}`` does).

        The speakers play as a group at once; the topology they report shows it
        ``publish_after`` seconds later (SOAP: the event delay; here, for set-ups: at once).
        soco caches the topology for 5 s: after changing groups here rather than through
        soco, call `soco_forget_topology` before asking soco about groups.
        """
        coordinator = target.coordinator
        if coordinator is member:
            return
        if not member.is_coordinator:
            member.coordinator.group_seq += 1
        for follower in member.group_members[1:] if member.is_coordinator else []:
            if follower.bonded_to is None:
                self._leave(follower)
        member._cancel_playback()
        if member.transport_state != STOPPED:
            member._set_state(STOPPED)
        member.coordinator_uid = coordinator.uid
        member.current_uri = f"x-rincon:{coordinator.uid}"
        member.current_meta = ""
        member.group_seq += 1
        coordinator.group_seq += 1
        self._topology_changed(publish_after, via)
        self.changed()

    def _leave(self, speaker: FakeSonosSpeaker) -> None:
        speaker.coordinator_uid = speaker.uid
        speaker.current_uri = ""
        speaker.current_meta = ""
        speaker.track_number = 0
        speaker.group_seq += 1
        if speaker.transport_state != STOPPED:
            speaker._set_state(STOPPED)

    def make_standalone(
        self,
        speaker: FakeSonosSpeaker,
        *,
        publish_after: float = 0.0,
        via: FakeSonosSpeaker | None = None,
    ) -> FakeSonosSpeaker | None:
        """Take ``speaker`` out of its group; return who now leads the rest, if anyone.

        The topology shows it ``publish_after`` seconds later (see `join`).
        """
        coordinator = speaker.coordinator
        if coordinator is not speaker:
            coordinator.group_seq += 1
            self._leave(speaker)
            self._topology_changed(publish_after, via)
            self.changed()
            return None
        followers = [s for s in speaker.group_members[1:] if s.bonded_to is None]
        if not followers:
            speaker.group_seq += 1
            self._topology_changed(publish_after, via)
            return None
        # A leaving coordinator hands the group and what it plays to the next member.
        delegate = followers[0]
        delegate.coordinator_uid = delegate.uid
        for name in (
            "current_uri",
            "current_meta",
            "track_number",
            "track_duration",
            "play_mode",
            "crossfade",
            "_position",
        ):
            setattr(delegate, name, getattr(speaker, name))
        if delegate._is_queue_source() or speaker._is_queue_source():
            delegate.queue = list(speaker.queue)
            delegate.current_uri = f"x-rincon-queue:{delegate.uid}#0"
        delegate.group_seq += 1
        if speaker._loaded is not None and speaker.transport_state == PLAYING:
            delegate._loaded = speaker._loaded  # the fetched file plays on where it was
            delegate._position = speaker.position()
            delegate._resume()
        elif speaker.transport_state != delegate.transport_state:
            delegate._set_state(
                speaker.transport_state if speaker.transport_state != TRANSITIONING else PLAYING
            )
        for follower in followers[1:]:
            follower.coordinator_uid = delegate.uid
            follower.current_uri = f"x-rincon:{delegate.uid}"
        speaker._cancel_playback()
        self._leave(speaker)
        self._topology_changed(publish_after, via)
        self.changed()
        return delegate

    def bond_pair(self, left: FakeSonosSpeaker, right: FakeSonosSpeaker) -> None:
        """Make ``left`` and ``right`` a stereo pair; ``left`` is the main (visible) speaker."""
        self._bond(left, {right: "RF,RF"}, "pair", "LF,LF")

    def bond_theatre(
        self,
        main: FakeSonosSpeaker,
        *,
        sub: FakeSonosSpeaker | None = None,
        surrounds: tuple[FakeSonosSpeaker, FakeSonosSpeaker] | None = None,
    ) -> None:
        """Make ``main`` (a soundbar) a home theatre with a Sub and/or two surrounds."""
        members: dict[FakeSonosSpeaker, str] = {}
        if sub is not None:
            members[sub] = "SW"
        if surrounds is not None:
            members[surrounds[0]] = "LR"
            members[surrounds[1]] = "RR"
        self._bond(main, members, "theatre", "LF,RF")

    def _bond(
        self,
        main: FakeSonosSpeaker,
        members: dict[FakeSonosSpeaker, str],
        kind: Literal["pair", "theatre"],
        channel: str,
    ) -> None:
        if not members:
            raise ValueError("a bonded set needs a second speaker")
        for speaker in (main, *members):
            if speaker.bond_kind is not None:
                raise ValueError(f"{speaker.name} is already bonded")
            self.make_standalone(speaker)
        main.bond_kind, main.channel = kind, channel
        for member, member_channel in members.items():
            member.bonded_to, member.bond_kind, member.channel = main, kind, member_channel
            member.volume, member.mute = main.volume, main.mute
            member.group_seq += 1
        main.group_seq += 1
        self._topology_changed(0.0, None)
        self.changed()

    @staticmethod
    def channel_map(main: FakeSonosSpeaker) -> str:
        """The set's ``ChannelMapSet``/``HTSatChanMapSet``: ``uid:channel;uid:channel``."""
        return ";".join(f"{s.uid}:{s.channel}" for s in (main, *main.bonded_members))

    def _live_topology(self) -> list[tuple[str, list[str]]]:
        return [(members[0].group_id, [s.uid for s in members]) for members in self.groups()]

    def _topology_changed(self, delay: float, via: FakeSonosSpeaker | None) -> None:
        """Publish the current groups now, or after ``delay`` (in order of the changes)."""
        topology = self._live_topology()
        if (delay <= 0 or via is None) and not self._pending_topology:
            self._published = topology
            return
        now = asyncio.get_running_loop().time()
        self._pending_topology.append((now + max(0.0, delay), topology))
        if self._publisher is None or self._publisher.done():
            speaker = via or self.speakers[0]
            self._publisher = speaker._spawn(self._publish_topology(), "topology")

    async def _publish_topology(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending_topology:
            due, topology = self._pending_topology[0]
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._pending_topology.popleft()
            self._published = topology
            self.changed()  # ZoneGroupTopology events go out now
            for speaker in self.speakers:
                speaker._signal()

    @property
    def topology_settled(self) -> bool:
        """Whether the topology speakers report shows every group change made so far."""
        return not self._pending_topology

    def publish_topology(self) -> None:
        """Show every pending group change in the reported topology now (test set-ups)."""
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        self._pending_topology.clear()
        self._published = self._live_topology()
        self.changed()

    async def wait_topology(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until the reported topology shows every group change made so far."""
        if self.speakers:
            await self.speakers[0].wait_for(lambda: self.topology_settled, timeout)

    def published_group(self, speaker: FakeSonosSpeaker) -> list[str]:
        """The uids of ``speaker``'s group as the reported topology has it, coordinator first."""
        return next((uids for _, uids in self._published if speaker.uid in uids), [speaker.uid])

    def zone_group_state(self, *, published: bool = False) -> str:
        """The ZoneGroupState XML: the groups as they are, or (``published``) as reported.

        Speakers answer ``GetZoneGroupState`` and send ZoneGroupTopology events with the
        published form, which shows a group change made through a speaker only after the
        household's ``event_delay``.
        """
        groups = []
        for group_id, uids in self._published if published else self._live_topology():
            members = [s for uid in uids if (s := self.by_uid(uid)) is not None]
            if not members:
                continue
            zones = "".join(
                self._member_xml(s) for s in members if s.bonded_to is None or s.bond_kind == "pair"
            )
            groups.append(
                f'<ZoneGroup Coordinator="{members[0].uid}" ID="{group_id}">{zones}</ZoneGroup>'
            )
        return (
            f"<ZoneGroupState><ZoneGroups>{''.join(groups)}</ZoneGroups>"
            "<VanishedDevices></VanishedDevices></ZoneGroupState>"
        )

    def _member_xml(self, speaker: FakeSonosSpeaker, tag: str = "ZoneGroupMember") -> str:
        attributes = {
            "UUID": speaker.uid,
            "Location": f"{speaker.base_url}/xml/device_description.xml",
            "ZoneName": speaker.name,
            "Icon": "x-rincon-roomicon:living",
            "Configuration": "1",
            "SoftwareVersion": speaker.software_version,
            "SWGen": "2",
            "MinCompatibleVersion": "84.0-00000",
            "LegacyCompatibleVersion": "58.0-00000",
            "BootSeq": str(speaker.boot_seq),
            "TVConfigurationError": "0",
            "HdmiCecAvailable": "0",
            "WirelessMode": "0",
            "WirelessLeafOnly": "0",
            "ChannelFreq": "2412",
            "BehindWifiExtender": "0",
            "WifiEnabled": "1",
            "EthLink": "1",
            "Orientation": "0",
            "RoomCalibrationState": "4",
            "SecureRegState": "3",
            "VoiceConfigState": "0",
            "MicEnabled": "0",
            "AirPlayEnabled": "1",
            "IdleState": "1",
            "MoreInfo": "",
            "SSLPort": str(WEBSOCKET_PORT),
            "HHSSLPort": "1843",
        }
        main = speaker.bonded_to or speaker
        satellites = ""
        if speaker.bond_kind == "pair":
            attributes["ChannelMapSet"] = self.channel_map(main)
        elif speaker.bond_kind == "theatre":
            attributes["HTSatChanMapSet"] = self.channel_map(main)
            if speaker.bonded_to is None:
                satellites = "".join(
                    self._member_xml(s, "Satellite") for s in speaker.bonded_members
                )
        if speaker.bonded_to is not None:
            attributes["Invisible"] = "1"
        text = " ".join(f"{k}={quoteattr(v)}" for k, v in attributes.items())
        if satellites:
            return f"<{tag} {text}>{satellites}</{tag}>"
        return f"<{tag} {text}/>"

    def changed(self) -> None:
        """Something changed: send UPnP events to subscribers whose state differs."""
        if self._in_change:
            return
        self._in_change = True
        try:
            for speaker in self.speakers:
                speaker.send_changed_events()
        finally:
            self._in_change = False


# --------------------------------------------------------------------------------------------
# pytest and soco helpers
# --------------------------------------------------------------------------------------------


def allow_loopback_hosts(hosts: Iterable[str] = LOOPBACK_HOSTS) -> None:
    """Let sockets connect to the fake speakers under pytest-socket.

    The HA pytest plugin allows only 127.0.0.1 before each test; call this afterwards (from a
    fixture that also requests ``socket_enabled``).
    """
    import socket

    import pytest_socket

    if socket.socket.__name__ == "GuardedSocket":
        # socket_allow_hosts patches socket.socket.connect: done on pytest-socket's guard
        # subclass it would not reach the real socket class once socket_enabled restores it.
        raise RuntimeError("request the socket_enabled fixture before allow_loopback_hosts()")
    pytest_socket.socket_allow_hosts(list(hosts))


def soco_reset() -> None:
    """Forget soco 0.31's cached SoCo instances and zone group states (call between tests)."""
    import soco.core

    soco.core.soco_reset()  # clears _ArgsSingleton._instances, the SoCo singletons
    soco.core.SoCo.zone_group_states.clear()  # class-level {household_id: ZoneGroupState}


def soco_forget_topology() -> None:
    """Make soco re-read group topology on its next look (its cache lasts 5 s)."""
    import soco.core

    for state in soco.core.SoCo.zone_group_states.values():
        state.clear_cache()


# --------------------------------------------------------------------------------------------
# Command line: serve fake speakers until Ctrl-C
# --------------------------------------------------------------------------------------------


def apply_preset(speaker: FakeSonosSpeaker, preset: str) -> None:
    """Put a speaker into one of the named states of ``PRESETS``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    state = PAUSED if preset.endswith("-paused") else PLAYING
    if preset.startswith("radio"):
        speaker.preset_radio(state=state)
    elif preset.startswith("queue"):
        speaker.preset_queue(8, track=3, position="0:01:23", state=state)
    elif preset == "line-in":
        speaker.preset_line_in()
    elif preset == "tv":
        speaker.preset_tv()
    else:
        speaker.preset_source("", state=STOPPED)


def parse_presets(values: Sequence[str], household: FakeHousehold) -> None:
    """Apply ``ROOM=PRESET`` command-line values; ValueError for an unknown room or preset."""
    for value in values:
        room, _, preset = value.partition("=")
        try:
            speaker = household[room]
        except KeyError:
            names = ", ".join(s.name for s in household.speakers)
            raise ValueError(f"no speaker {room!r} (speakers: {names})") from None
        apply_preset(speaker, preset)


def _describe(record: PlaybackRecord) -> str:
    if record.error:
        return f"[{record.speaker}] {record.via} {record.url}: ERROR {record.error}"
    return (
        f"[{record.speaker}] {record.via} {record.url}: {record.format} "
        f"{record.sample_rate} Hz x{record.channels}, {record.duration_s:.2f} s, "
        f"peak {record.peak:.2f}, leading silence {record.leading_silence_ms:.0f} ms, "
        f"first byte {record.first_byte_s or 0:.3f} s"
    )


async def serve(
    household: FakeHousehold,
    ready: Callable[[FakeHousehold], Awaitable[None] | None] | None = None,
) -> None:
    """Start ``household`` and serve until cancelled."""
    async with household:
        if ready is not None:
            result = ready(household)
            if result is not None:
                await result
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.sonos_double --speakers 2``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--speakers", type=int, default=2, help="how many (default 2)")
    parser.add_argument("--first-ip", type=int, default=2, help="first address 127.0.0.N")
    parser.add_argument("--names", help="comma-separated room names")
    parser.add_argument("--household-id", default=DEFAULT_HOUSEHOLD_ID)
    parser.add_argument("--model", default="Sonos One")
    parser.add_argument("--no-audio-clip", action="store_true", help="answer globalError")
    parser.add_argument("--lenient", action="store_true", help="no 714 for unknown extensions")
    parser.add_argument(
        "--playback-speed", type=float, default=1.0, help="1 = real time, 0 = instant"
    )
    parser.add_argument(
        "--event-delay",
        type=float,
        default=DEFAULT_EVENT_DELAY,
        help=f"seconds until events and group changes show (default {DEFAULT_EVENT_DELAY:g})",
    )
    parser.add_argument(
        "--start-delay", type=float, default=0.0, help="seconds from fetch to playing (default 0)"
    )
    parser.add_argument(
        "--no-websocket", action="store_true", help="keep the audio clip port 1443 closed"
    )
    parser.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="ROOM=STATE",
        help=f"what a speaker plays at start ({', '.join(PRESETS)}); repeatable",
    )
    options = parser.parse_args(argv)
    household = FakeHousehold.create(
        options.speakers,
        first_ip=options.first_ip,
        names=options.names.split(",") if options.names else None,
        household_id=options.household_id,
        model_name=options.model,
        supports_audio_clip=not options.no_audio_clip,
        strict_extension_check=not options.lenient,
        playback_speed=options.playback_speed,
        event_delay=options.event_delay,
        start_delay=options.start_delay,
        websocket=not options.no_websocket,
    )
    household.add_favorite("Loopback FM", "x-sonosapi-stream:s17077?sid=254&flags=8224&sn=0")
    try:
        parse_presets(options.preset, household)
    except ValueError as err:
        parser.error(str(err))

    def ready(started: FakeHousehold) -> None:
        print(f"Fake Sonos household {started.household_id}:", flush=True)
        for speaker in started.speakers:
            speaker.on_played = lambda record: print(_describe(record), flush=True)
            print(
                f"  {speaker.name!r:16} {speaker.base_url}  {speaker.uid}  "
                f"{speaker.websocket_url if speaker.websocket_enabled else ''}",
                flush=True,
            )
        print(f"State and fetches as JSON: {started.speakers[0].base_url}{STATUS_PATH}", flush=True)
        print("Serving until Ctrl-C.", flush=True)

    try:
        asyncio.run(serve(household, ready))
    except KeyboardInterrupt:
        print("Stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
