"""Chimes and repeats as Home Assistant resolves them (the pure part is ``chime.py``).

A chime is the built-in sound, a file (a path below Home Assistant's config folder, or in one
of its ``allowlist_external_dirs``), an http(s) URL or a media-source id. Media is fetched
(at most ``MAX_CHIME_BYTES``), decoded by Home Assistant's ffmpeg (the ``ffmpeg``
integration's binary when it is set up, else ``ffmpeg`` from the path) at the voice's sample
rate and kept (``CACHE_ENTRIES`` sounds, ``CACHE_TTL`` seconds), so a chime is fetched once,
before the announcement takes its place in the speakers' queue: a chime that cannot be used
is the caller's translated validation error, and nothing plays.
"""

from collections import OrderedDict
from pathlib import Path
import time
from typing import Any, Final

import aiohttp
from homeassistant.components import media_source
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util.hass_dict import HassKey

from .catalog import redact_url
from .chime import (
    MAX_CHIME_BYTES,
    ChimeNotAllowedError,
    ChimeNotFoundError,
    ChimeUnavailableError,
    Composition,
    async_decode,
    builtin_chime,
)
from .const import DOMAIN
from .models import AliciaConfigEntry
from .options import AudioOptions, ChimeSpec

DATA_CHIMES: HassKey[OrderedDict[tuple[str, str, int], tuple[bytes, float]]] = HassKey(
    f"{DOMAIN}_chimes"
)
CACHE_ENTRIES: Final = 16
CACHE_TTL: Final = 300.0
FETCH_TIMEOUT: Final = 15.0
# Home Assistant's ffmpeg integration keeps its manager (with the configured binary) here.
FFMPEG_DATA: Final = "ffmpeg"


def ffmpeg_binary(hass: HomeAssistant) -> str:
    """The ffmpeg Home Assistant is configured with (``ffmpeg`` when none is set up)."""
    manager: Any = hass.data.get(FFMPEG_DATA)
    return str(getattr(manager, "binary", None) or "ffmpeg")


def voice_rate(entry: AliciaConfigEntry, voice: str | None) -> int:
    """The sample rate of the voice a request speaks with (None: the entry's voice)."""
    data = entry.runtime_data
    voices = data.engine.voices if data.engine is not None else data.voices
    info = voices.get(voice or data.voice)
    return info.sample_rate if info is not None else 22050


def allowed_file(hass: HomeAssistant, value: str) -> Path:
    """A chime file's real path; refused outside the allowed folders (blocking)."""
    config = Path(hass.config.config_dir).resolve()
    path = Path(value)
    real = (path if path.is_absolute() else config / path).resolve()
    if not (real.is_relative_to(config) or hass.config.is_allowed_path(str(real))):
        raise ChimeNotAllowedError(f"{value} is not in an allowed folder", chime=value)
    if not real.is_file():
        raise ChimeNotFoundError(f"{value} does not exist", chime=value)
    return real


async def _async_fetch(hass: HomeAssistant, url: str) -> bytes:
    """A chime's bytes from an http(s) URL (bounded in size and time)."""
    session = async_get_clientsession(hass)
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT)) as resp:
            if resp.status != 200:
                raise ChimeUnavailableError(f"HTTP {resp.status}", error=f"HTTP {resp.status}")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > MAX_CHIME_BYTES:
                    break
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        reason = redact_url(err) or type(err).__name__
        raise ChimeUnavailableError(f"fetch failed: {reason}", error=reason) from err
    if len(data) > MAX_CHIME_BYTES:
        limit = f"larger than {MAX_CHIME_BYTES // (1024 * 1024)} MB"
        raise ChimeUnavailableError(limit, error=limit)
    return bytes(data)


async def _async_load(
    hass: HomeAssistant, entry: AliciaConfigEntry, spec: ChimeSpec, rate: int
) -> bytes:
    """Fetch and decode a media chime (file, URL or media-source id)."""
    binary = ffmpeg_binary(hass)
    if spec.kind == "file":
        path = await hass.async_add_executor_job(allowed_file, hass, spec.value)
        return await async_decode(binary, rate, path=str(path))
    url = spec.value
    if spec.kind == "media":
        try:
            play = await media_source.async_resolve_media(hass, spec.value, None)
        except HomeAssistantError as err:
            reason = str(err) or type(err).__name__
            raise ChimeUnavailableError(f"unresolvable: {reason}", error=reason) from err
        if play.path is not None:  # a local media folder: the media source vouches for it
            return await async_decode(binary, rate, path=str(play.path))
        url = play.url
        if url.startswith("/"):  # Home Assistant's own (tts proxy ...): as speakers reach it
            url = f"{entry.runtime_data.speaker_url.url or ''}{url}"
    return await async_decode(binary, rate, data=await _async_fetch(hass, url))


async def async_sound(
    hass: HomeAssistant,
    entry: AliciaConfigEntry,
    spec: ChimeSpec | None,
    rate: int,
    *,
    closing: bool = False,
) -> bytes:
    """A chime as 16-bit mono PCM at ``rate`` (cached); b'' for none."""
    if spec is None:
        return b""
    if spec.kind == "builtin":
        return builtin_chime(rate, closing)
    cache = hass.data.setdefault(DATA_CHIMES, OrderedDict())
    key = (spec.kind, spec.value, rate)
    now = time.monotonic()
    for old in [k for k, (_, at) in cache.items() if at + CACHE_TTL <= now]:
        del cache[old]
    if (hit := cache.get(key)) is not None:
        cache.move_to_end(key)
        return hit[0]
    try:
        pcm = await _async_load(hass, entry, spec, rate)
    except ChimeUnavailableError as err:
        raise ChimeUnavailableError(
            str(err), chime=redact_url(spec.value), error=err.placeholders.get("error", "")
        ) from err
    cache[key] = (pcm, now)
    while len(cache) > CACHE_ENTRIES:
        cache.popitem(last=False)
    return pcm


async def async_composition(
    hass: HomeAssistant, entry: AliciaConfigEntry, audio: AudioOptions, voice: str | None
) -> Composition | None:
    """What surrounds the speech of a request (None: nothing); translated errors via caller.

    Raises the chime module's validation errors (InvalidRequestError subclasses).
    """
    if audio.plain:
        return None
    rate = voice_rate(entry, voice)
    return Composition(
        sample_rate=rate,
        opening=await async_sound(hass, entry, audio.chime, rate),
        closing=await async_sound(hass, entry, audio.chime_after, rate, closing=True),
        repeat=audio.repeat,
        repeat_gap=audio.repeat_gap,
    )
