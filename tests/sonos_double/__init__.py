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

soco 0.31 always talks to port 1400, so every speaker binds its own loopback address
(127.0.0.2, 127.0.0.3, ...; 127.0.0.1 is left to soco's event listener and Home Assistant).

Everything runs on the running asyncio loop (in Home Assistant tests: HA's loop). soco is
synchronous, so call it in a worker thread::

    async with FakeHousehold.create(2) as household:  # 127.0.0.2 and 127.0.0.3
        kitchen = household["Kitchen"]
        device = soco.SoCo(kitchen.ip)
        await asyncio.to_thread(device.play_uri, "http://127.0.0.1:8123/tts.mp3")
        record = await kitchen.wait_played(1)  # PlaybackRecord: format, duration_s, ...

The modules: `speaker` composes `FakeSonosSpeaker` from `state` (attributes, waiting, groups),
`playback` (the transport engine, fetching, presets) and one mixin per concern: `av_transport`,
`content` (ContentDirectory, the queue), `rendering`, `device_properties`, `topology` (groups,
bonded sets, ZoneGroupState), `alarms` (and the sleep timer), `events` (GENA), `websocket`
(audioClip) and `server` (description, SCPD, SOAP dispatch, status pages, TLS). `household` has
`FakeHousehold` and the pytest/soco helpers; `records`, `audio`, `didl`, `services` and `const`
the data they share; `cli` the command line (``python -m tests.sonos_double``).
"""

from .audio import (
    AudioFormatError,
    AudioReport,
    DecodedAudio,
    analyse_audio,
    decode_audio,
    sniff_format,
)
from .cli import main, serve
from .const import (
    API_KEY_HEADER,
    BATTERY_MODELS,
    CLIP_ENDED,
    DEFAULT_EVENT_DELAY,
    DEFAULT_HOUSEHOLD_ID,
    DEFAULT_NAMES,
    DIDL_CLOSE,
    DIDL_OPEN,
    KNOWN_AUDIO_EXTENSIONS,
    LIVE_PREFIXES,
    LOOPBACK_HOSTS,
    MAX_FETCH_BYTES,
    MAX_WAV_SAMPLE_RATE,
    MP3_SAMPLE_RATES,
    NS_DC,
    NS_SOAP,
    NS_UPNP_CONTROL,
    PAUSED,
    PLAY_MODES,
    PLAYING,
    PRESETS,
    SILENCE_THRESHOLD,
    SONOS_PORT,
    SOUNDBAR_EQ,
    SOUNDBAR_MODELS,
    STATUS_PATH,
    STOPPED,
    TRANSITIONING,
    TRANSPORT_STATES,
    UNSEEKABLE_PREFIXES,
    UPNP_ERROR_TEXT,
    WEBSOCKET_PATH,
    WEBSOCKET_PORT,
    WEBSOCKET_PROTOCOL,
)
from .didl import didl_title, format_hms, parse_hms, radio_metadata, simple_metadata
from .household import (
    FakeHousehold,
    allow_loopback_hosts,
    apply_preset,
    parse_presets,
    soco_forget_topology,
    soco_reset,
)
from .records import (
    AudioClip,
    Favorite,
    PlaybackRecord,
    QueueTrack,
    Subscription,
    UPnPError,
    WebsocketPeer,
)
from .server import self_signed_context
from .services import ACTIONS, CONTROL_PATHS, EVENTED, scpd_xml
from .speaker import FakeSonosSpeaker
from .state import Handler

__all__ = [
    "ACTIONS",
    "API_KEY_HEADER",
    "BATTERY_MODELS",
    "CLIP_ENDED",
    "CONTROL_PATHS",
    "DEFAULT_EVENT_DELAY",
    "DEFAULT_HOUSEHOLD_ID",
    "DEFAULT_NAMES",
    "DIDL_CLOSE",
    "DIDL_OPEN",
    "EVENTED",
    "KNOWN_AUDIO_EXTENSIONS",
    "LIVE_PREFIXES",
    "LOOPBACK_HOSTS",
    "MAX_FETCH_BYTES",
    "MAX_WAV_SAMPLE_RATE",
    "MP3_SAMPLE_RATES",
    "NS_DC",
    "NS_SOAP",
    "NS_UPNP_CONTROL",
    "PAUSED",
    "PLAYING",
    "PLAY_MODES",
    "PRESETS",
    "SILENCE_THRESHOLD",
    "SONOS_PORT",
    "SOUNDBAR_EQ",
    "SOUNDBAR_MODELS",
    "STATUS_PATH",
    "STOPPED",
    "TRANSITIONING",
    "TRANSPORT_STATES",
    "UNSEEKABLE_PREFIXES",
    "UPNP_ERROR_TEXT",
    "WEBSOCKET_PATH",
    "WEBSOCKET_PORT",
    "WEBSOCKET_PROTOCOL",
    "AudioClip",
    "AudioFormatError",
    "AudioReport",
    "DecodedAudio",
    "FakeHousehold",
    "FakeSonosSpeaker",
    "Favorite",
    "Handler",
    "PlaybackRecord",
    "QueueTrack",
    "Subscription",
    "UPnPError",
    "WebsocketPeer",
    "allow_loopback_hosts",
    "analyse_audio",
    "apply_preset",
    "decode_audio",
    "didl_title",
    "format_hms",
    "main",
    "parse_hms",
    "parse_presets",
    "radio_metadata",
    "scpd_xml",
    "self_signed_context",
    "serve",
    "simple_metadata",
    "sniff_format",
    "soco_forget_topology",
    "soco_reset",
]
