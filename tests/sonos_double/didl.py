"""DIDL-Lite metadata, ``H:MM:SS`` times, SOAP envelopes and SOAP argument parsing."""

import re
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from .const import DIDL_CLOSE, DIDL_OPEN, NS_DC, NS_SOAP
from .records import UPnPError


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
