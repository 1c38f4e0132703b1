"""The entry's speaker volume options: limits and per-speaker offsets (docs/options.md).

``volume_offsets`` is stored as a map of media player entity id → offset and entered in the
options flow as text, one ``media_player.kitchen: +5`` line per speaker.
"""

from collections.abc import Mapping
import re
from typing import Any, Final

from .const import CONF_MAX_VOLUME, CONF_MIN_VOLUME, CONF_VOLUME_OFFSETS
from .sonos import DEFAULT_MAX_VOLUME, DEFAULT_MIN_VOLUME

MAX_OFFSET: Final = 50
VOLUME_KEYS: Final = (CONF_MIN_VOLUME, CONF_MAX_VOLUME, CONF_VOLUME_OFFSETS)
VOLUME_DEFAULTS: Final[dict[str, int]] = {
    CONF_MIN_VOLUME: DEFAULT_MIN_VOLUME,
    CONF_MAX_VOLUME: DEFAULT_MAX_VOLUME,
}
_LINE: Final = re.compile(r"(media_player\.[a-z0-9_]+)\s*[:=]\s*([+-]?\d+)")


class OffsetsError(ValueError):
    """A line of the offsets text that cannot be read."""

    def __init__(self, line: str) -> None:
        """Name the line."""
        super().__init__(line)
        self.line = line


def parse_volume_offsets(text: str) -> dict[str, int]:
    """``media_player.kitchen: +5`` lines (also comma-separated) → {entity id: offset}."""
    offsets: dict[str, int] = {}
    for raw in re.split(r"[\n,;]", text):
        line = raw.strip()
        if not line:
            continue
        match = _LINE.fullmatch(line)
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
