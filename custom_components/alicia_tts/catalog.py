"""The catalogue of downloadable Piper voices. Pure: imports nothing from Home Assistant.

The catalogue is the ``voices.json`` of the ``rhasspy/piper-voices`` collection: a JSON object
mapping each voice key to ``key``, ``name``, ``language`` (``code``, ``family``, ``region``,
``name_native``, ``name_english``, ``country_english``), ``quality``, ``num_speakers``,
``speaker_id_map``, ``files`` (path below the collection's base URL -> ``size_bytes`` and
``md5_digest``) and ``aliases``.

A copy ships with the integration (``voices.json`` next to this module), so an offline
installation still lists voices. A refreshed copy fetched from the voice source (option
``catalog_url``, default: the upstream collection) is kept in ``<config>/alicia_tts/catalog.json``
and wins over the shipped one, key by key.

Only the two files the engine loads are used: ``<key>.onnx`` and ``<key>.onnx.json``. Other files
of an entry (``MODEL_CARD``) are ignored: their checksums in upstream catalogues do not always
match the served files, and nothing here needs them.

The catalogue is read to its end (bounded by ``MAX_CATALOG_BYTES``), however the server splits
it. A voice source URL may carry credentials (``http://user:password@host/...``): they are used
for the requests and never shown, in errors, log lines or diagnostics (:func:`redact_url`).

The blocking functions (``load_catalog``, ``save_catalog``) must run in an executor.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path, PurePosixPath
import re
import tempfile
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from .exceptions import CauseError
from .voices import VoiceInfo, piper_language_to_bcp47

_LOGGER = logging.getLogger(__name__)

# Where the upstream collection serves voices.json and the voice files (as Piper's own
# downloader and wyoming-piper use it).
DEFAULT_CATALOG_URL: Final = "https://huggingface.co/rhasspy/piper-voices/resolve/main/"
CATALOG_FILE: Final = "voices.json"
SHIPPED_CATALOG: Final = Path(__file__).parent / CATALOG_FILE
# The refreshed catalogue, below Home Assistant's config folder.
CACHED_CATALOG: Final = "alicia_tts/catalog.json"
# The real catalogue is about 230 kB; refuse anything absurd.
MAX_CATALOG_BYTES: Final = 16 * 1024 * 1024
FETCH_TIMEOUT: Final = 30.0

# A voice key becomes a file name: word characters (Unicode, e.g. "pt_PT-tugão-medium"), dots
# and dashes, never a leading dot.
_KEY = re.compile(r"[^\W.][\w.\-]*")
_MD5 = re.compile(r"[0-9a-f]{32}")
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}_[A-Z]{2}")
# The user-info part of a URL (``user:password@``), wherever a URL appears in a text.
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#@\s]*@")
READ_CHUNK_BYTES: Final = 64 * 1024


def redact_url(text: object) -> str:
    """A URL, or any text with URLs in it, with their credentials replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1***@", str(text))


class CatalogError(CauseError):
    """A catalogue cannot be read, fetched or understood; ``key`` is the flow's error."""

    def __init__(self, message: str, key: str, **placeholders: str) -> None:
        """Keep the flow's error key and its placeholders."""
        super().__init__(message, **placeholders)
        self.key = key


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogFile:
    """One file of a voice, as the catalogue describes it."""

    path: str  # below the base URL, e.g. "en/en_US/joe/medium/en_US-joe-medium.onnx"
    size: int
    md5: str

    @property
    def name(self) -> str:
        """The file name it is saved under."""
        return PurePosixPath(self.path).name


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogVoice:
    """A downloadable voice."""

    key: str
    name: str  # readable: "Joe"
    language: str  # BCP 47, as Home Assistant uses it: "en-US"
    language_name: str  # "English (United States)"
    quality: str | None
    num_speakers: int
    speaker_id_map: dict[str, int] = field(default_factory=dict)
    model: CatalogFile  # <key>.onnx
    config: CatalogFile  # <key>.onnx.json

    @property
    def files(self) -> tuple[CatalogFile, CatalogFile]:
        """The files the engine needs, in download order (small config first)."""
        return (self.config, self.model)

    @property
    def size(self) -> int:
        """Bytes to download."""
        return self.model.size + self.config.size

    @property
    def display_name(self) -> str:
        """Readable name, the same as the installed voice's: 'Joe (en-US, medium)'."""
        details = ", ".join(p for p in (self.language, self.quality) if p)
        return f"{self.name} ({details})"


def format_size(size: int) -> str:
    """Bytes as people read them: '63.2 MB'."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _file(key: str, files: Mapping[str, Any], name: str) -> CatalogFile:
    for path, info in files.items():
        pure = PurePosixPath(path)
        if pure.name != name:
            continue
        if pure.is_absolute() or ".." in pure.parts or "\\" in path:
            raise ValueError(f"unsafe path {path!r}")
        size = info["size_bytes"]
        md5 = str(info["md5_digest"]).lower()
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"bad size of {path}")
        if not _MD5.fullmatch(md5):
            raise ValueError(f"bad md5 of {path}")
        return CatalogFile(path=path, size=size, md5=md5)
    raise ValueError(f"no file {name} for {key}")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} is not an object")
    return value


def parse_voice(key: str, raw: Any) -> CatalogVoice:
    """One catalogue entry; ValueError when it is unusable."""
    if not isinstance(raw, dict) or not _KEY.fullmatch(key) or raw.get("key", key) != key:
        raise ValueError(f"catalogue entry {key!r} is unusable: bad key")
    try:
        language = raw.get("language") or {}
        code = language.get("code") or key.split("-", 1)[0]
        english = language.get("name_english") or code
        country = language.get("country_english")
        files = _object(raw["files"], "files")
        quality = raw.get("quality")
        return CatalogVoice(
            key=key,
            name=str(raw.get("name") or key).replace("_", " ").title(),
            language=piper_language_to_bcp47(str(code)),
            language_name=f"{english} ({country})" if country else str(english),
            quality=str(quality) if quality else None,
            num_speakers=max(1, int(raw.get("num_speakers", 1))),
            speaker_id_map={str(k): int(v) for k, v in (raw.get("speaker_id_map") or {}).items()},
            model=_file(key, files, f"{key}.onnx"),
            config=_file(key, files, f"{key}.onnx.json"),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"catalogue entry {key!r} is unusable: {err}") from err


def parse_catalog(data: Any) -> dict[str, CatalogVoice]:
    """The usable voices of a catalogue; unusable entries are skipped with a debug line."""
    if not isinstance(data, dict):
        raise CatalogError("the catalogue is not a JSON object", "catalog_invalid")
    voices: dict[str, CatalogVoice] = {}
    for key, raw in data.items():
        try:
            voices[key] = parse_voice(key, raw)
        except ValueError as err:
            _LOGGER.debug("Skipping %s", err)
    return voices


def read_catalog(path: Path) -> dict[str, CatalogVoice]:
    """The voices of a catalogue file (blocking). CatalogError when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CatalogError(f"cannot read {path.name}: {err}", "catalog_invalid") from err
    return parse_catalog(data)


def load_catalog(cached: Path | None = None) -> dict[str, CatalogVoice]:
    """The shipped catalogue, updated with the refreshed one in ``cached`` if there is one.

    Blocking. Never raises: an unreadable file is logged and left out.
    """
    voices: dict[str, CatalogVoice] = {}
    paths = [SHIPPED_CATALOG]
    if cached is not None and cached.is_file():
        paths.append(cached)
    for path in paths:
        try:
            voices.update(read_catalog(path))
        except CatalogError as err:
            _LOGGER.warning("Ignoring voice catalogue %s: %s", path, err)
    return voices


def save_catalog(path: Path, raw: bytes) -> None:
    """Store a fetched catalogue atomically (blocking): a temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def voice_language(
    key: str, installed: Mapping[str, VoiceInfo], catalog: Mapping[str, CatalogVoice]
) -> str:
    """The language of a voice: from its config, else the catalogue, else its key."""
    if key in installed:
        return installed[key].language
    if key in catalog:
        return catalog[key].language
    code = key.split("-", 1)[0]
    return piper_language_to_bcp47(code) if _LANGUAGE_CODE.fullmatch(code) else "en-US"


def file_url(base_url: str, path: str) -> URL:
    """The URL of a file of the collection below ``base_url`` (a folder, slash or not)."""
    return URL(base_url.rstrip("/") + "/" + quote(path, safe="/"), encoded=True)


async def async_fetch_catalog(
    session: aiohttp.ClientSession, base_url: str
) -> tuple[bytes, dict[str, CatalogVoice]]:
    """Fetch ``voices.json`` from the voice source; its bytes and its usable voices.

    Raises CatalogError (``catalog_unreachable`` or ``catalog_invalid``).
    """
    url = file_url(base_url, CATALOG_FILE)
    shown = redact_url(url)
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT)) as response:
            if response.status != 200:
                raise CatalogError(
                    f"HTTP {response.status} from {shown}", "catalog_unreachable", url=shown
                )
            raw = await _read_to_end(response.content, MAX_CATALOG_BYTES)
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise CatalogError(
            redact_url(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__),
            "catalog_unreachable",
            url=shown,
        ) from err
    if raw is None:
        raise CatalogError("the catalogue is too large", "catalog_invalid", url=shown)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CatalogError(f"not JSON: {err}", "catalog_invalid", url=shown) from err
    voices = parse_catalog(data)
    if not voices:
        raise CatalogError("the catalogue lists no usable voice", "catalog_invalid", url=shown)
    return raw, voices


async def _read_to_end(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, however it arrives (None when it is longer than ``limit``).

    ``StreamReader.read(n)`` returns what is buffered, not ``n`` bytes: read until the end.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
