"""HA's real google_translate TTS as a fallback engine; its HTTP call is answered by a stub.

The stub runs on loopback and answers gTTS's batchexecute request the way the service does,
with a real MP3 (base64) inside; nothing else is replaced.
"""

import base64
from collections.abc import AsyncGenerator
from typing import Any
from unittest.mock import patch

from aiohttp import web
from homeassistant.components import tts
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts.options import SynthesisOptions
from custom_components.alicia_tts.production import async_create_audio

from .engines import MP3
from .test_chain import MESSAGE, break_local, local_of, setup_alicia

GOOGLE = "tts.google_translate_en_com"


@pytest.fixture
async def google_stub(socket_enabled: None) -> AsyncGenerator[list[str]]:
    """A loopback stand-in for the Google Translate speech endpoint; yields request bodies."""
    bodies: list[str] = []

    async def batchexecute(request: web.Request) -> web.Response:
        bodies.append(await request.text())
        payload = base64.b64encode(MP3).decode()
        line = f'[["wrb.fr","jQ1olc","[\\"{payload}\\"]",null,null,null,"generic"]]'
        return web.Response(text=f")]}}'\n\n{len(line)}\n{line}\n", content_type="application/json")

    app = web.Application()
    app.router.add_post("/_/TranslateWebserverUi/data/batchexecute", batchexecute)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def local_url(tld: str = "com", path: str = "") -> str:
        return f"http://127.0.0.1:{port}/{path}"

    with patch("gtts.tts._translate_url", local_url):
        yield bodies
    await runner.cleanup()


@pytest.fixture
async def google(hass: HomeAssistant, setup_ha: None, google_stub: list[str]) -> list[str]:
    """HA's google_translate integration set up from a config entry."""
    entry = MockConfigEntry(domain="google_translate", data={"language": "en", "tld": "com"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(GOOGLE) is not None
    return google_stub


async def test_google_translate_fallback_everywhere(
    hass: HomeAssistant, google: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local failing: Google Translate's real MP3 reaches HA's media source and speakers."""
    entry = await setup_alicia(hass, fallback_engines=[GOOGLE])
    break_local(local_of(entry), monkeypatch)
    extension, data = await tts.async_get_media_source_audio(
        hass,
        tts.generate_media_source_id(
            hass, MESSAGE, "tts.alicia_tts_joe_en_us_medium", "en-US",
            options={"preferred_format": "mp3"}, cache=False,
        ),
    )  # fmt: skip
    assert extension == "mp3"
    assert MP3 in data  # HA may add ID3 tags in front
    assert len(google) == 1
    assert "front+door" in google[0] or "front%20door" in google[0]

    item = await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "mp3")
    await item.buffer.wait_done()
    assert item.source == GOOGLE
    assert item.extension == "mp3"
    assert item.buffer.getvalue()[-len(MP3) :] == MP3
    usage: dict[str, Any] = {k: v.characters for k, v in entry.runtime_data.chain.stats.items()}
    assert usage[GOOGLE] == 2 * len(MESSAGE)
