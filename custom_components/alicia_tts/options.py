"""The options of a call, in one place: keys, ranges, defaults and parsing. Pure.

``docs/options.md`` is the vocabulary; this module is its code. Every entry point (``tts.speak``
and HA's tts path through the entity, ``alicia_tts.say``, ``alicia_tts.audio_url``) turns a
call's options into one :class:`Request` with :func:`parse_request`, once, before any engine or
speaker is involved; everything after it works with the parsed values. Errors are the caller's
(``exceptions.InvalidRequestError`` subclasses, translated by ``ha_errors``).

Precedence of a value, lowest first: the built-in default of the path (Sonos speakers get a
leading and a trailing silence and the opening chime), the entry's option, the call's own value.
Imports nothing from Home Assistant.
"""

from collections.abc import Mapping
from dataclasses import dataclass
import re
from typing import Any, Final

from .catalog import redact_url
from .const import (
    CONF_BREAKER_COOLDOWN,
    CONF_BREAKER_THRESHOLD,
    CONF_ENGINE,
    CONF_FIRST_AUDIO_TIMEOUT,
    CONF_MAX_VOLUME,
    CONF_MIN_VOLUME,
    CONF_VOLUME_OFFSETS,
)
from .exceptions import (
    InvalidChimeError,
    InvalidOptionError,
    InvalidPlaybackOptionError,
    UnknownOptionError,
)

# -- the vocabulary (docs/options.md) ---------------------------------------------------------

#: ``engine``: which side of the chain speaks.
LOCAL: Final = "local"
FALLBACK: Final = "fallback"
ENGINE_CHOICES: Final = (LOCAL, FALLBACK)

#: Piper's options with their allowed ranges.
OPTION_RANGES: Final[dict[str, tuple[float, float]]] = {
    "speed": (0.25, 4.0),
    "noise_scale": (0.0, 1.5),
    "noise_w_scale": (0.0, 1.5),
    "gain": (0.1, 4.0),
    "sentence_silence": (0.0, 2.0),
    "leading_silence": (0.0, 2.0),
    "trailing_silence": (0.0, 2.0),
}
ENGINE_OPTIONS: Final[tuple[str, ...]] = ("voice", "speaker", *OPTION_RANGES)
#: The engine options an entry may set defaults for (options flow, "Voice defaults").
ENGINE_DEFAULT_KEYS: Final[tuple[str, ...]] = tuple(OPTION_RANGES)

#: The entry's engine chain options (options flow): (min, max, step, unit).
CHAIN_RANGES: Final[dict[str, tuple[float, float, float, str | None]]] = {
    CONF_FIRST_AUDIO_TIMEOUT: (1, 60, 0.5, "s"),
    CONF_BREAKER_THRESHOLD: (1, 20, 1, None),
    CONF_BREAKER_COOLDOWN: (10, 3600, 10, "s"),
}

#: Sonos playback.
OVERLAY: Final = "overlay"
TAKEOVER: Final = "takeover"
MODES: Final = (OVERLAY, TAKEOVER)
NORMAL: Final = "normal"
HIGH: Final = "high"
PRIORITIES: Final = (NORMAL, HIGH)
PLAYBACK_OPTIONS: Final = ("volume", "mode", "group", "priority", "interrupt")
VOLUME_ALLOWED: Final = "0-100, +N or -N"
#: Default clamp of announcement volumes (per entry: ``min_volume``, ``max_volume``).
DEFAULT_MIN_VOLUME: Final = 15
DEFAULT_MAX_VOLUME: Final = 75
#: The largest per-speaker volume offset (``volume_offsets``).
MAX_OFFSET: Final = 50
VOLUME_DEFAULTS: Final[dict[str, int]] = {
    CONF_MIN_VOLUME: DEFAULT_MIN_VOLUME,
    CONF_MAX_VOLUME: DEFAULT_MAX_VOLUME,
}

#: Chimes and repeats around the speech (``trailing_silence`` is an engine option).
CHIME: Final = "chime"
CHIME_AFTER: Final = "chime_after"
REPEAT: Final = "repeat"
REPEAT_GAP: Final = "repeat_gap"
AUDIO_OPTIONS: Final[tuple[str, ...]] = (CHIME, CHIME_AFTER, REPEAT, REPEAT_GAP)
REPEAT_RANGE: Final = (1, 5)
REPEAT_GAP_RANGE: Final = (0.0, 10.0)
DEFAULT_REPEAT_GAP: Final = 1.0
MEDIA_SOURCE_PREFIX: Final = "media-source://"
_TRUE: Final = frozenset({"true", "on", "yes"})
_FALSE: Final = frozenset({"false", "off", "no", "none", ""})

#: Built-in defaults of the Sonos path: speakers clip the first few hundred milliseconds while
#: they start playing, cut the last syllable when the audio ends right after it, and chime
#: before an announcement (plain TTS never chimes unless asked).
SPEAKER_LEADING_SILENCE: Final = 0.5
SPEAKER_TRAILING_SILENCE: Final = 0.3
SPEAKER_CHIME: Final = True
SPEAKER_CHIME_AFTER: Final = False

#: Format hints HA's tts accepts for every engine (HA converts when the engine cannot).
HA_FORMAT_OPTIONS: Final = frozenset(
    {
        "preferred_format",
        "preferred_sample_rate",
        "preferred_sample_channels",
        "preferred_sample_bytes",
        "preferred_bitrate",
    }
)
#: Every key a call may give (the tts entity's supported options).
CALL_OPTIONS: Final[tuple[str, ...]] = (
    *ENGINE_OPTIONS,
    *PLAYBACK_OPTIONS,
    *AUDIO_OPTIONS,
    CONF_ENGINE,
)


# -- parsed values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthesisOptions:
    """Validated engine options for one request."""

    voice: str | None = None
    speaker: str | None = None
    speed: float = 1.0
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    gain: float = 1.0
    sentence_silence: float = 0.0
    leading_silence: float = 0.0
    trailing_silence: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackOptions:
    """Validated playback options."""

    volume: int | None = None
    volume_change: int | None = None  # relative ("+10"/"-10")
    mode: str | None = None
    group: bool = False
    priority: str = NORMAL
    interrupt: bool = False

    @property
    def high(self) -> bool:
        """Whether the announcement goes before waiting normal ones (``interrupt`` implies it)."""
        return self.priority == HIGH or self.interrupt


@dataclass(frozen=True, slots=True)
class ChimeSpec:
    """Which sound: the built-in one (``kind="builtin"``) or a media file, URL or media id."""

    kind: str  # builtin | media | url | file
    value: str = ""


BUILTIN: Final = ChimeSpec("builtin")


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioOptions:
    """Validated chime and repeat options of one request."""

    chime: ChimeSpec | None = None
    chime_after: ChimeSpec | None = None
    repeat: int = 1
    repeat_gap: float = DEFAULT_REPEAT_GAP

    @property
    def plain(self) -> bool:
        """Nothing to add around the speech."""
        return self.chime is None and self.chime_after is None and self.repeat == 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A call's options, checked: what every later step works with."""

    engine: str | None = None  # ``local`` / ``fallback``: forced for this call
    synthesis: SynthesisOptions = SynthesisOptions()
    audio: AudioOptions = AudioOptions()
    playback: PlaybackOptions = PlaybackOptions()


# -- parsing ----------------------------------------------------------------------------------


def _number(key: str, raw: Any, low: float, high: float) -> float:
    """A number in ``low..high`` (booleans are not numbers)."""
    invalid = InvalidOptionError(
        f"{key} must be a number in {low:g}..{high:g}",
        option=key,
        value=str(raw),
        min=f"{low:g}",
        max=f"{high:g}",
    )
    if isinstance(raw, bool):
        raise invalid
    try:
        value = float(raw)
    except TypeError, ValueError:
        raise invalid from None
    if not low <= value <= high:
        raise invalid
    return value


def parse_synthesis(options: Mapping[str, Any]) -> SynthesisOptions:
    """Validate the engine options in ``options``; other keys (playback, HA's) are ignored."""
    values: dict[str, Any] = {
        key: _number(key, options[key], low, high)
        for key, (low, high) in OPTION_RANGES.items()
        if options.get(key) is not None
    }
    for key in ("voice", "speaker"):
        raw = options.get(key)
        if raw is None or raw == "":
            continue
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise InvalidOptionError(
                f"{key} must be a name", option=key, value=str(raw), min="", max=""
            )
        values[key] = str(raw)
    return SynthesisOptions(**values)


def _invalid(key: str, value: Any, allowed: str) -> InvalidPlaybackOptionError:
    return InvalidPlaybackOptionError(
        f"{key}={value!r} is not one of {allowed}", option=key, value=str(value), allowed=allowed
    )


def _parse_volume(value: Any) -> tuple[int | None, int | None]:
    """``35`` (absolute) or ``"+10"``/``"-10"`` (relative): (level, change)."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        raise _invalid("volume", value, VOLUME_ALLOWED)
    relative = isinstance(value, str) and value.strip()[:1] in ("+", "-")
    try:
        number = float(value)
    except TypeError, ValueError:
        raise _invalid("volume", value, VOLUME_ALLOWED) from None
    if not -100 <= number <= 100 or number != int(number) or (number < 0 and not relative):
        raise _invalid("volume", value, VOLUME_ALLOWED)
    return (None, int(number)) if relative else (int(number), None)


def _parse_bool(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise _invalid(key, value, "true | false")
    return value


def parse_playback(options: Mapping[str, Any]) -> PlaybackOptions:
    """Validate ``volume`` (0-100, "+N", "-N"), ``mode``, ``group``, ``priority``, ``interrupt``."""
    level, change = _parse_volume(options.get("volume"))
    mode = options.get("mode")
    if mode is not None and mode not in MODES:
        raise _invalid("mode", mode, " | ".join(MODES))
    priority = options.get("priority") or NORMAL
    if priority not in PRIORITIES:
        raise _invalid("priority", priority, " | ".join(PRIORITIES))
    return PlaybackOptions(
        volume=level,
        volume_change=change,
        mode=mode,
        group=_parse_bool(options, "group"),
        priority=priority,
        interrupt=_parse_bool(options, "interrupt"),
    )


def parse_chime(key: str, raw: Any) -> ChimeSpec | None:
    """``false`` (None), ``true`` (the built-in sound), or a media id / URL / file."""
    if isinstance(raw, bool) or raw is None:
        return BUILTIN if raw else None
    if not isinstance(raw, str):
        raise InvalidChimeError(f"{key} must be true, false or a sound", option=key, value=str(raw))
    value = raw.strip()
    word = value.lower()
    if word in _TRUE or word in _FALSE:
        return BUILTIN if word in _TRUE else None
    if value.startswith(MEDIA_SOURCE_PREFIX):
        kind = "media"
    elif word.startswith(("http://", "https://")):
        kind = "url"
    elif "://" in value or "\x00" in value:
        raise InvalidChimeError(f"{key} has an unknown scheme", option=key, value=redact_url(value))
    else:
        kind = "file"
    return ChimeSpec(kind, value)


def parse_audio(options: Mapping[str, Any]) -> AudioOptions:
    """Validate ``chime``, ``chime_after``, ``repeat`` (1-5) and ``repeat_gap`` (0-10 s)."""
    repeat = 1
    if (raw := options.get(REPEAT)) is not None:
        number = _number(REPEAT, raw, *REPEAT_RANGE)
        if number != int(number):
            raise InvalidOptionError(
                f"{REPEAT} must be a whole number",
                option=REPEAT,
                value=str(raw),
                min=str(REPEAT_RANGE[0]),
                max=str(REPEAT_RANGE[1]),
            )
        repeat = int(number)
    gap = DEFAULT_REPEAT_GAP
    if (raw := options.get(REPEAT_GAP)) is not None:
        gap = _number(REPEAT_GAP, raw, *REPEAT_GAP_RANGE)
    return AudioOptions(
        chime=parse_chime(CHIME, options.get(CHIME)),
        chime_after=parse_chime(CHIME_AFTER, options.get(CHIME_AFTER)),
        repeat=repeat,
        repeat_gap=gap,
    )


def engine_defaults(entry_options: Mapping[str, Any]) -> dict[str, float]:
    """The engine defaults an entry's options set (a key the user left empty is not stored)."""
    return {
        key: float(entry_options[key])
        for key in ENGINE_DEFAULT_KEYS
        if entry_options.get(key) is not None
    }


def speaker_defaults(entry_options: Mapping[str, Any]) -> dict[str, Any]:
    """The Sonos path's built-in defaults, with the entry's chime settings over them."""
    return {
        "leading_silence": SPEAKER_LEADING_SILENCE,
        "trailing_silence": SPEAKER_TRAILING_SILENCE,
        CHIME: entry_options.get(CHIME, SPEAKER_CHIME),
        CHIME_AFTER: entry_options.get(CHIME_AFTER, SPEAKER_CHIME_AFTER),
    }


def parse_request(
    options: Mapping[str, Any],
    entry_options: Mapping[str, Any] | None = None,
    *,
    speakers: bool = False,
) -> Request:
    """A call's options, checked once, with the defaults of its path.

    Unknown keys, the engine choice, Piper's options, chimes and repeats, playback; with the
    entry's defaults (``entry_options``) and, for Sonos ``speakers``, the speakers' built-in
    ones below them.

    HA's own tts path merges the entry's engine defaults itself (the entity's default options):
    it passes no ``entry_options``.
    """
    if unknown := sorted(set(options) - set(CALL_OPTIONS) - HA_FORMAT_OPTIONS):
        raise UnknownOptionError(
            f"unknown options: {', '.join(unknown)}", options=", ".join(unknown)
        )
    given = {key: value for key, value in options.items() if value is not None}
    if (engine := given.get(CONF_ENGINE)) is not None and engine not in ENGINE_CHOICES:
        raise _invalid(CONF_ENGINE, engine, " | ".join(ENGINE_CHOICES))
    merged = {
        **(speaker_defaults(entry_options or {}) if speakers else {}),
        **engine_defaults(entry_options or {}),
        **given,
    }
    return Request(
        engine=engine,
        synthesis=parse_synthesis(merged),
        audio=parse_audio(merged),
        playback=parse_playback(merged),
    )


# -- the entry's speaker volume options -------------------------------------------------------

_OFFSET_LINE: Final = re.compile(r"(media_player\.[a-z0-9_]+)\s*[:=]\s*([+-]?\d+)")


class OffsetsError(ValueError):
    """A line of the offsets text that cannot be read."""

    def __init__(self, line: str) -> None:
        """Name the line."""
        super().__init__(line)
        self.line = line


def parse_volume_offsets(text: str) -> dict[str, int]:
    """``media_player.kitchen: +5`` lines (also comma-separated) → {entity id: offset}.

    ``volume_offsets`` is stored as a map of media player entity id → offset and entered in the
    options flow as text, one ``media_player.kitchen: +5`` line per speaker.
    """
    offsets: dict[str, int] = {}
    for raw in re.split(r"[\n,;]", text):
        line = raw.strip()
        if not line:
            continue
        match = _OFFSET_LINE.fullmatch(line)
        if match is None or abs(int(match[2])) > MAX_OFFSET:
            raise OffsetsError(line)
        offsets[match[1]] = int(match[2])
    return offsets


def format_volume_offsets(offsets: Mapping[str, Any]) -> str:
    """The stored map as the options flow shows it."""
    return "\n".join(f"{entity_id}: {int(offset):+d}" for entity_id, offset in offsets.items())


def volume_input(section: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, str]:
    """The options of the "Speaker volume" section: (options, error key or None, bad line)."""
    minimum = int(section.get(CONF_MIN_VOLUME, DEFAULT_MIN_VOLUME))
    maximum = int(section.get(CONF_MAX_VOLUME, DEFAULT_MAX_VOLUME))
    options: dict[str, Any] = {CONF_MIN_VOLUME: minimum, CONF_MAX_VOLUME: maximum}
    try:
        options[CONF_VOLUME_OFFSETS] = parse_volume_offsets(
            str(section.get(CONF_VOLUME_OFFSETS) or "")
        )
    except OffsetsError as err:
        return options, "invalid_volume_offsets", err.line
    if minimum > maximum:
        return options, "volume_range", ""
    return options, None, ""
