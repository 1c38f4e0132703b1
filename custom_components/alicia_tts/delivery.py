"""Serving announcement audio to speakers through Home Assistant's own HTTP server.

``/api/alicia_tts/audio/<token>.<ext>`` needs no credentials (a speaker cannot send any): the
token is 128 random bits and expires. While synthesis runs the audio is streamed (chunked, no
length); once complete it is served with ``Content-Length`` and single ``Range`` support.
Unknown or expired tokens give 404, unsatisfiable ranges 416, failed synthesis 503 — never 500.
The last requests of each item are recorded with the client's address, for playback diagnostics.

The audio itself is made by ``production.py`` into the store (``store.py``).
"""

import asyncio
from datetime import datetime, timedelta
import ipaddress
import logging
from typing import Final

from aiohttp import web
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.http import HomeAssistantView
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.util.hass_dict import HassKey
from yarl import URL

from .const import DOMAIN, ISSUE_SPEAKER_URL
from .models import SpeakerUrl
from .store import (
    AudioItem,
    AudioStore,
    FetchRecord,
    RangeNotSatisfiableError,
    is_token,
    parse_range,
    range_needs_complete_audio,
    release_free_memory,
)

_LOGGER = logging.getLogger(__name__)

URL_PREFIX: Final = "/api/alicia_tts/audio/"
DATA_STORE: HassKey[AudioStore] = HassKey(f"{DOMAIN}_audio_store")
# How long a Range request for audio still being synthesized may wait for its end.
RANGE_WAIT_TIMEOUT: Final = 60.0
# Expired audio is dropped at least this often (seconds).
CLEANUP_INTERVAL: Final = 30.0
# Freed audio after which memory is handed back to the OS.
RELEASE_AFTER_BYTES: Final = 4 * 1024 * 1024


def async_get_store(hass: HomeAssistant) -> AudioStore:
    """The audio store of this Home Assistant, with its view registered once.

    Expired audio is dropped every ``CLEANUP_INTERVAL`` seconds even when no new request comes
    (a prune otherwise runs with each new item), and once enough audio was let go of, the freed
    memory is handed back to the OS (in the executor).
    """
    if (store := hass.data.get(DATA_STORE)) is None:
        store = hass.data[DATA_STORE] = AudioStore()
        hass.http.register_view(AliciaAudioView(store))
        freed = 0
        trimming = False

        async def async_release() -> None:
            nonlocal trimming
            try:
                await hass.async_add_executor_job(_release_free_memory)
            finally:
                trimming = False

        @callback
        def on_freed(size: int) -> None:
            nonlocal freed, trimming
            freed += size
            if freed >= RELEASE_AFTER_BYTES and not trimming:
                freed, trimming = 0, True
                hass.async_create_background_task(async_release(), "alicia_tts release memory")

        @callback
        def cleanup(_now: datetime) -> None:
            store.prune()

        store.on_freed = on_freed
        async_track_time_interval(
            hass, cleanup, timedelta(seconds=CLEANUP_INTERVAL), cancel_on_shutdown=True
        )
    return store


class AliciaAudioView(HomeAssistantView):
    """Audio files for speakers, by unguessable expiring token."""

    url = URL_PREFIX + "{filename}"
    name = "api:alicia_tts:audio"
    requires_auth = False

    def __init__(self, store: AudioStore) -> None:
        """Serve from ``store``."""
        self.store = store

    def _item(self, filename: str) -> AudioItem | None:
        token, dot, extension = filename.partition(".")
        if not dot or not is_token(token):
            return None
        item = self.store.get(token)
        if item is None or item.extension != extension:
            return None
        return item

    def _record(self, request: web.Request, item: AudioItem) -> FetchRecord:
        record = FetchRecord(
            client=request.remote,
            method=request.method,
            at=self.store.now(),
            range=request.headers.get("Range"),
        )
        item.record(record)
        return record

    @staticmethod
    def _headers(item: AudioItem) -> dict[str, str]:
        return {
            "Content-Type": item.content_type,
            "Cache-Control": "no-store",
            "Accept-Ranges": "bytes" if item.buffer.done else "none",
        }

    async def head(self, request: web.Request, filename: str) -> web.StreamResponse:
        """Headers only; the length once the audio is complete."""
        if (item := self._item(filename)) is None:
            return web.Response(status=404)
        record = self._record(request, item)
        headers = self._headers(item)
        if item.buffer.error is not None:
            record.status = 503
            return web.Response(status=503)
        if item.buffer.done:
            headers["Content-Length"] = str(item.buffer.size)
        record.complete = True
        response = web.StreamResponse(status=200, headers=headers)
        response.force_close()
        await response.prepare(request)
        return response

    async def get(self, request: web.Request, filename: str) -> web.StreamResponse:
        """The audio: streamed while synthesis runs, with length and Range once complete."""
        if (item := self._item(filename)) is None:
            return web.Response(status=404)
        record = self._record(request, item)
        buffer = item.buffer
        range_header = request.headers.get("Range")
        if range_needs_complete_audio(range_header) and not buffer.done:
            try:
                async with asyncio.timeout(RANGE_WAIT_TIMEOUT):
                    await buffer.wait_done()
            except TimeoutError:
                record.status = 503
                return web.Response(status=503)
        if buffer.error is not None:
            record.status = 503
            return web.Response(status=503)
        headers = self._headers(item)
        if buffer.done:
            return self._complete(item, record, range_header, headers)
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        try:
            async for chunk in buffer.iter_from(0):
                if record.first_byte_at is None:
                    record.first_byte_at = self.store.now()
                await response.write(chunk)
                record.bytes_sent += len(chunk)
        except ConnectionError:
            return response
        if not buffer.has_failed():
            record.complete = True
            await response.write_eof()
        elif request.transport is not None:
            # Synthesis failed mid-stream and the status line is already sent: cut the
            # connection so the client sees a truncated transfer, not a complete short file.
            request.transport.close()
        return response

    def _complete(
        self,
        item: AudioItem,
        record: FetchRecord,
        range_header: str | None,
        headers: dict[str, str],
    ) -> web.Response:
        data = item.buffer.getvalue()
        size = len(data)
        try:
            wanted = parse_range(range_header, size)
        except RangeNotSatisfiableError:
            record.status = 416
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        record.first_byte_at = self.store.now()
        record.complete = True
        if wanted is None:
            record.bytes_sent = size
            return web.Response(body=data, headers=headers)
        start, end = wanted
        record.status = 206
        record.bytes_sent = end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return web.Response(status=206, body=data[start : end + 1], headers=headers)


# -- base URL for speakers --------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why speakers on the LAN could not fetch from ``url`` (None: looks fine)."""
    parsed = URL(url)
    host = parsed.host or ""
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if address.is_loopback:
        return "loopback"
    if parsed.scheme == "https":
        return "https_ip"
    return None


def speaker_base_url(hass: HomeAssistant, override: str | None) -> SpeakerUrl:
    """HA's own URL as a speaker on the LAN should use it, or the user's override.

    An override is the user's explicit choice and is not second-guessed (a demo with speakers on
    the same host uses a loopback URL on purpose).
    """
    if override:
        return SpeakerUrl(override.rstrip("/"), None)
    try:
        url = get_url(
            hass,
            allow_internal=True,
            allow_external=True,
            allow_cloud=False,
            allow_ip=True,
            prefer_external=False,
        )
    except NoURLAvailableError:
        return SpeakerUrl(None, "missing")
    return SpeakerUrl(url.rstrip("/"), url_problem(url))


def async_update_url_issue(hass: HomeAssistant, speaker_url: SpeakerUrl) -> None:
    """Raise or clear the repair issue about the speakers' base URL."""
    if speaker_url.problem is None:
        ir.async_delete_issue(hass, DOMAIN, ISSUE_SPEAKER_URL)
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        ISSUE_SPEAKER_URL,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=f"speaker_url_{speaker_url.problem}",
        translation_placeholders={"url": speaker_url.url or ""},
    )


def _release_free_memory() -> bool:
    return release_free_memory()  # looked up at each call (tests replace it)


def audio_url(base: str, item: AudioItem) -> str:
    """The full URL a speaker gets for an item."""
    return f"{base}{URL_PREFIX}{item.filename}"
