"""Test TTS engines for the fallback chain: real HA TextToSpeechEntity subclasses.

They stand in for engines that cannot run here (cloud services, a Wyoming server): a working
one (whole MP3, like Google Translate or Nabu Casa), a failing one, a slow one, and a streaming
one (WAV as text arrives, like Wyoming Piper).
"""

import asyncio
from collections.abc import AsyncGenerator
import struct
from typing import Any

from homeassistant.components.tts import (
    TextToSpeechEntity,
    TTSAudioRequest,
    TTSAudioResponse,
    TtsAudioType,
)
from homeassistant.config_entries import ConfigEntry, ConfigFlow
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
import lameenc
import numpy as np
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    MockPlatform,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

DOMAIN = "test_engines"
RATE = 24000


def tone_pcm(seconds: float, rate: int = RATE) -> bytes:
    """A 330 Hz tone: 16-bit mono PCM."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 330 * t) * 9000).astype("<i2").tobytes()


def tone_mp3(seconds: float = 1.5) -> bytes:
    """A real MP3 file of a tone (what a cloud engine returns)."""
    # lameenc is a C extension without Python source for pylint to inspect.
    # pylint: disable-next=c-extension-no-member
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(48)
    encoder.set_in_sample_rate(RATE)
    encoder.set_channels(1)
    return bytes(encoder.encode(tone_pcm(seconds)) + encoder.flush())


MP3 = tone_mp3()


class FakeEngine(TextToSpeechEntity):
    """A scripted TTS engine."""

    _attr_default_language = "en"

    def __init__(self, name: str, behaviour: str) -> None:
        """``ok``, ``fail``, ``crash`` (a non-HA exception) or ``slow``."""
        self._attr_supported_languages = ["en", "en-US"]
        self._attr_name = name
        self._attr_unique_id = name
        self.behaviour = behaviour
        self.messages: list[str] = []
        self.release = asyncio.Event()  # lets a slow engine finish at teardown
        self.running = 0  # calls in progress
        self.cancelled = 0  # calls cancelled while in progress

    async def async_get_tts_audio(
        self, message: str, language: str, options: dict[str, Any]
    ) -> TtsAudioType:
        """Whole MP3, an error, or nothing for a long time."""
        self.messages.append(message)
        if self.behaviour == "fail":
            raise HomeAssistantError(f"cloud refused '{message}'")
        if self.behaviour == "crash":
            raise RuntimeError(f"client library crashed on '{message}'")
        if self.behaviour == "slow":
            self.running += 1
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            finally:
                self.running -= 1
        return "mp3", MP3


class StreamingEngine(TextToSpeechEntity):
    """Streams WAV sentence by sentence as text arrives."""

    _attr_default_language = "en"

    def __init__(self, name: str) -> None:
        """Name the engine."""
        self._attr_supported_languages = ["en", "en-US"]
        self._attr_name = name
        self._attr_unique_id = name
        self.messages: list[str] = []

    async def async_stream_tts_audio(self, request: TTSAudioRequest) -> TTSAudioResponse:
        """A WAV header, then a tone per received text chunk."""

        async def data() -> AsyncGenerator[bytes]:
            yield struct.pack(
                "<4sI4s4sIHHIIHH4sI", b"RIFF", 0, b"WAVE", b"fmt ", 16, 1, 1, RATE,
                RATE * 2, 2, 16, b"data", 0,
            )  # fmt: skip
            async for chunk in request.message_gen:
                self.messages.append(chunk)
                yield tone_pcm(0.3)

        return TTSAudioResponse("wav", data())


class EnginesFlow(ConfigFlow):
    """The test integration's (unused) config flow."""

    VERSION = 1


async def async_setup_engines(hass: HomeAssistant, engines: list[TextToSpeechEntity]) -> None:
    """Register the engines as a (mocked) integration's TTS platform."""

    async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        await hass.config_entries.async_forward_entry_setups(entry, [Platform.TTS])
        return True

    async def unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
        return await hass.config_entries.async_unload_platforms(entry, [Platform.TTS])

    async def setup_platform(
        hass: HomeAssistant, entry: ConfigEntry, add: AddConfigEntryEntitiesCallback
    ) -> None:
        add(engines)

    mock_integration(
        hass, MockModule(DOMAIN, async_setup_entry=setup_entry, async_unload_entry=unload_entry)
    )
    mock_platform(hass, f"{DOMAIN}.tts", MockPlatform(async_setup_entry=setup_platform))
    mock_platform(hass, f"{DOMAIN}.config_flow")
    entry = MockConfigEntry(domain=DOMAIN)
    entry.add_to_hass(hass)
    with mock_config_flow(DOMAIN, EnginesFlow):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
