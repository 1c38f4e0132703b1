"""Constants of the Sonos double: ports and paths, transport states, models, XML namespaces."""

from typing import Final

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
