"""The musl path really runs: no piper, no onnxruntime; numpy backend and WebAssembly espeak-ng.

Runs in CI through script/test_musl_path (which sets ALICIA_TTS_BLOCK_PIPER and forces the stack);
skipped in the ordinary test run.
"""

import os
import sys

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts.const import DOMAIN

from .conftest import entity_state

pytestmark = pytest.mark.skipif(
    not os.environ.get("ALICIA_TTS_BLOCK_PIPER"), reason="run by script/test_musl_path"
)

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"


def test_piper_and_onnxruntime_cannot_be_imported() -> None:
    """As on musl: both imports fail."""
    for module in ("piper", "onnxruntime"):
        with pytest.raises(ImportError):
            __import__(module)
    assert sys.modules.get("piper") is None


async def test_entry_speaks_with_numpy_and_webassembly(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """The entry loads local Piper on the musl stack and HA's tts path returns real audio."""
    engine = init_integration.runtime_data.engine
    assert engine is not None, init_integration.runtime_data.local_problem
    assert engine.backend == "numpy"
    assert engine.phonemizer == "emscripten"
    assert entity_state(hass, "sensor.alicia_tts_local_engine_backend") == "numpy"
    client = await hass_client()
    response = await client.post(
        "/api/tts_get_url",
        json={"engine_id": ENTITY_ID, "message": "The front door is open.", "language": "en-US"},
    )
    assert response.status == 200, await response.text()
    audio = await (await client.get((await response.json())["path"])).read()
    assert len(audio) > 5000
    assert DOMAIN in hass.config.components
