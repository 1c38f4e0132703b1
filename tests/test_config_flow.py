"""Config, reconfigure and options flows: real voices, real HA flow manager, loopback downloads.

Downloads come from a loopback voice source that serves the real joe files under the paths of
its catalogue (tests/voice_server.py); the upstream default URL is never contacted.
"""

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping
import errno
import json
import os
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant import config_entries
from homeassistant.components import tts
from homeassistant.config_entries import FlowType
from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import (
    EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE,
    FlowResultType,
    InvalidData,
)
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alicia_tts import app, catalog, config_flow, download
from custom_components.alicia_tts.backends import ENV_BACKEND
from custom_components.alicia_tts.catalog import DEFAULT_CATALOG_URL
from custom_components.alicia_tts.config_flow import (
    CONF_PIPER_APP,
    CONF_REFRESH_CATALOG,
    SECTION_DEFAULTS,
    SECTION_SOURCE,
    default_language,
    normalize_catalog_url,
    valid_base_url,
    valid_catalog_url,
)
from custom_components.alicia_tts.const import (
    CONF_AUDIO_FORMAT,
    CONF_CATALOG_URL,
    CONF_FALLBACK_ENGINES,
    CONF_PIPER_APP_INSTALLED,
    CONF_SPEAKER_BASE_URL,
    CONF_VOICE,
    DOMAIN,
)
from custom_components.alicia_tts.diagnostics import async_get_config_entry_diagnostics
from custom_components.alicia_tts.options import SynthesisOptions
from custom_components.alicia_tts.production import async_create_audio
from custom_components.alicia_tts.voices import VOICE_PACKAGE_ENV

from .conftest import JOE, form_options, install_voice
from .engines import FakeEngine, async_setup_engines
from .speed import measure_now, slow_entry
from .supervisor import (
    PCM,
    RUNNING,
    STOPPED,
    PiperAppServer,
    supervisor_error,
    supervisor_installed,
)
from .voice_server import VoiceServer, start_voice_server

type Result = Mapping[str, Any]


@pytest.fixture
async def server(socket_enabled: None, joe_files: tuple[Path, Path]) -> AsyncGenerator[VoiceServer]:
    """The loopback voice source (joe's files under the catalogue's paths)."""
    async for running in start_voice_server(joe_files):
        yield running


def install_named_voice(
    folder: Path,
    key: str,
    joe_files: tuple[Path, Path],
    *,
    name: str = "joe",
    code: str = "en_US",
) -> None:
    """Joe's model (linked) with a config naming another speaker and language."""
    os.symlink(joe_files[0], folder / f"{key}.onnx")
    config = json.loads(joe_files[1].read_text(encoding="utf-8"))
    config["dataset"] = name
    config["language"]["code"] = code
    (folder / f"{key}.onnx.json").write_text(json.dumps(config), encoding="utf-8")


def voice_files(folder: Path) -> list[str]:
    """Files in the voices folder, hidden temp files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def start(hass: HomeAssistant) -> Result:
    """A new config flow, at its language step."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return result


async def language(
    hass: HomeAssistant,
    result: Result,
    code: str = "en-US",
    url: str | None = None,
    *,
    refresh: bool = False,
) -> Result:
    """Submit the language step (optionally with the voice source section)."""
    user_input: dict[str, Any] = {CONF_LANGUAGE: code}
    if url is not None or refresh:
        source: dict[str, Any] = {CONF_REFRESH_CATALOG: refresh}
        if url is not None:
            source[CONF_CATALOG_URL] = url
        user_input[SECTION_SOURCE] = source
    return await hass.config_entries.flow.async_configure(result["flow_id"], user_input)


async def choose(hass: HomeAssistant, result: Result, key: str) -> Result:
    """Submit the voice step."""
    return await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_VOICE: key})


async def finish_download(hass: HomeAssistant, result: Result) -> Result:
    """Let the download task end, then take the flow's next step."""
    assert result["type"] is FlowResultType.SHOW_PROGRESS, result
    assert result["step_id"] == "download"
    await hass.async_block_till_done()
    return await hass.config_entries.flow.async_configure(result["flow_id"])


def placeholders(result: Result) -> dict[str, str]:
    """The description placeholders of a result."""
    return dict(result.get("description_placeholders") or {})


# -- config flow: installed voices ------------------------------------------------------------


async def test_user_flow_packaged_voice(hass: HomeAssistant) -> None:
    """Language, then the packaged joe voice (installed, so no download)."""
    result = await start(hass)
    languages = form_options(result, CONF_LANGUAGE)
    assert {"value": "en-US", "label": "English (United States), en-US"} in languages
    assert {"value": "de-DE", "label": "German (Germany), de-DE"} in languages
    assert [o["label"] for o in languages] == sorted(
        (o["label"] for o in languages), key=str.casefold
    )
    schema = result["data_schema"]
    assert schema is not None
    assert schema({CONF_LANGUAGE: "en-US"})[CONF_LANGUAGE] == "en-US"

    result = await language(hass, result)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "voice"
    assert placeholders(result)["url"] == DEFAULT_CATALOG_URL
    voices = form_options(result)
    # Installed first, then downloadable voices with quality and size.
    assert voices[0] == {"value": JOE, "label": "Joe (en-US, medium)"}
    assert all("\u2193" in o["label"] and o["label"].endswith("MB") for o in voices[1:])
    assert {"value": "en_US-amy-low", "label": "Amy (en-US, low) \u2193 63.1 MB"} in voices
    assert JOE not in [o["value"] for o in voices[1:]]

    result = await choose(hass, result, JOE)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Joe (en-US, medium)"
    assert result["data"] == {CONF_VOICE: JOE, CONF_LANGUAGE: "en-US"}
    assert result["options"] == {CONF_FALLBACK_ENGINES: []}  # no other TTS engine to offer
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.unique_id == JOE
    assert (entry.version, entry.minor_version) == (1, 2)


async def test_user_flow_folder_voice(
    hass: HomeAssistant, voices_dir: Path, joe_files: tuple[Path, Path], no_packaged_voice: None
) -> None:
    """A voice dropped into the voices folder is offered first, described by its config."""
    install_voice(voices_dir, "en_GB-alba-low", *joe_files)  # joe's config: en-US
    result = await language(hass, await start(hass))
    values = [o["value"] for o in form_options(result)]
    assert values[0] == "en_GB-alba-low"
    assert JOE in values[1:]  # not installed: downloadable
    result = await choose(hass, result, "en_GB-alba-low")
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == "en_GB-alba-low"
    assert result["data"] == {CONF_VOICE: "en_GB-alba-low", CONF_LANGUAGE: "en-US"}


async def test_no_voices_aborts(
    hass: HomeAssistant, no_packaged_voice: None, tmp_path: Path
) -> None:
    """No voice installed and no catalogue: the flow explains where to put one."""
    with patch.object(catalog, "SHIPPED_CATALOG", tmp_path / "missing.json"):
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_voices"
    assert placeholders(result)["folder"].endswith("alicia_tts/voices")


async def test_already_configured(hass: HomeAssistant) -> None:
    """The same voice cannot be added twice."""
    MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, unique_id=JOE).add_to_hass(hass)
    result = await choose(hass, await language(hass, await start(hass)), JOE)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_voice_removed_while_choosing(
    hass: HomeAssistant, voices_dir: Path, joe_files: tuple[Path, Path]
) -> None:
    """A voice deleted between showing and submitting the form gives an error, then recovers."""
    install_voice(voices_dir, "en_US-mine-medium", *joe_files)
    result = await language(hass, await start(hass))
    (voices_dir / "en_US-mine-medium.onnx").unlink()
    result = await choose(hass, result, "en_US-mine-medium")
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_VOICE: "unknown_voice"}

    result = await choose(hass, result, JOE)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_last_voice_of_a_language_removed(
    hass: HomeAssistant, voices_dir: Path, joe_files: tuple[Path, Path]
) -> None:
    """A language whose only (installed) voice vanished sends the user back to the languages."""
    install_named_voice(voices_dir, "xx_XX-test-low", joe_files, name="test", code="xx_XX")
    result = await start(hass)
    assert {"value": "xx-XX", "label": "xx-XX"} in form_options(result, CONF_LANGUAGE)
    (voices_dir / "xx_XX-test-low.onnx").unlink()
    result = await language(hass, result, "xx-XX")
    assert result["step_id"] == "user"
    assert result["errors"] == {CONF_LANGUAGE: "no_voices_for_language"}
    assert "xx-XX" not in [o["value"] for o in form_options(result, CONF_LANGUAGE)]
    result = await language(hass, result, "en-US")
    assert result["step_id"] == "voice"

    # Deleted while the voice step is shown: back to the languages.
    install_named_voice(voices_dir, "xx_XX-test-low", joe_files, name="test", code="xx_XX")
    result = await language(hass, await start(hass), "xx-XX")
    assert [o["value"] for o in form_options(result)] == ["xx_XX-test-low"]
    (voices_dir / "xx_XX-test-low.onnx").unlink()
    result = await choose(hass, result, "xx_XX-test-low")
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {CONF_LANGUAGE: "no_voices_for_language"}

    # Another language with a voice still finishes the flow.
    result = await language(hass, result, "en-US")
    assert result["step_id"] == "voice"
    result = await choose(hass, result, JOE)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE


async def test_default_language_follows_home_assistant(hass: HomeAssistant) -> None:
    """The language preselected is Home Assistant's, as close as the voices allow."""
    hass.config.language = "de"
    hass.config.country = "AT"
    result = await start(hass)
    schema = result["data_schema"]
    assert schema is not None
    assert schema({})[CONF_LANGUAGE] == "de-DE"


def test_default_language() -> None:
    """Exact match, then same family (own country, installed), then en-US, then the first."""
    codes = ["de-DE", "en-GB", "en-US", "pt-BR", "pt-PT"]
    assert default_language("en-GB", None, codes, set()) == "en-GB"
    assert default_language("en", "GB", codes, set()) == "en-GB"
    assert default_language("en", None, codes, {"en-US"}) == "en-US"
    assert default_language("pt", None, codes, set()) == "pt-BR"
    assert default_language("pt", "PT", codes, set()) == "pt-PT"
    assert default_language("fr", "FR", codes, set()) == "en-US"
    assert default_language("fr", "FR", ["pt-PT", "de-DE"], set()) == "de-DE"


def test_url_validation() -> None:
    """Speaker base URLs are bare hosts; voice source URLs may have a path."""
    assert valid_base_url("http://192.168.1.10:8123")
    assert valid_base_url("https://ha.example.com/")
    assert not valid_base_url("http://ha.example.com/?x=1")
    assert not valid_base_url("http://ha.example.com/#top")
    assert not valid_base_url("http://[::1")
    assert valid_catalog_url(DEFAULT_CATALOG_URL)
    assert valid_catalog_url("http://mirror.lan/piper")
    assert not valid_catalog_url("ftp://mirror.lan/piper")
    assert not valid_catalog_url("http:///piper")
    assert not valid_catalog_url("http://mirror.lan/?x=1")
    assert not valid_catalog_url("http://mirror.lan/#x")
    assert not valid_catalog_url("http://[::1")
    assert normalize_catalog_url(" http://mirror.lan/piper ") == "http://mirror.lan/piper/"


# -- config flow: downloads -------------------------------------------------------------------


async def test_download_flow(
    hass: HomeAssistant, server: VoiceServer, voices_dir: Path, no_packaged_voice: None
) -> None:
    """Refresh from the voice source, download joe with live progress, create the entry."""
    progress: list[float] = []

    @callback
    def on_progress(event: Event) -> None:
        progress.append(event.data["progress"])

    hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE, on_progress)
    result = await language(hass, await start(hass), url=server.base_url, refresh=True)
    assert server.requests == ["voices.json"]
    assert result["step_id"] == "voice"
    assert placeholders(result)["url"] == server.base_url
    assert {"value": JOE, "label": "Joe (en-US, medium) \u2193 63.2 MB"} in form_options(result)

    result = await choose(hass, result, JOE)
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "download"
    assert placeholders(result) == {"voice": "Joe (en-US, medium)", "size": "63.2 MB"}
    result = await finish_download(hass, result)
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE
    assert result["data"] == {CONF_VOICE: JOE, CONF_LANGUAGE: "en-US"}
    assert result["options"] == {CONF_CATALOG_URL: server.base_url, CONF_FALLBACK_ENGINES: []}
    assert voice_files(voices_dir) == [f"{JOE}.onnx", f"{JOE}.onnx.json"]
    assert (voices_dir / f"{JOE}.onnx").read_bytes() == server.model
    model_path, config_path = server.paths(JOE)
    assert server.files_requested() == [config_path, model_path]
    # Live progress: about every percent, rising, ending at 1.
    assert 50 <= len(progress) <= 102
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    # The entry speaks with the downloaded voice.
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.runtime_data.engine is not None
    assert not entry.runtime_data.voices[JOE].packaged


async def test_voice_step_shows_estimates_once_measured(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After this machine measured joe (medium), each downloadable voice shows its estimate."""
    result = await language(hass, await start(hass))
    before = [o["label"] for o in form_options(result)]
    assert before
    assert not any("\u2248" in label for label in before)
    hass.config_entries.flow.async_abort(result["flow_id"])

    slow_entry(init_integration, monkeypatch, 0.2)  # the device check reports a 0.2 factor
    measurement = (await measure_now(hass, init_integration)).measurement
    assert measurement is not None
    assert measurement.real_time_factor == pytest.approx(0.2)
    result = await language(hass, await start(hass))
    shown = 0
    for voice in catalog.load_catalog(Path(hass.config.path(catalog.CACHED_CATALOG))).values():
        if voice.language != "en-US" or voice.key == JOE:
            continue
        # Documented costs per quality (medium = 1), times the measured factor, times the
        # long check sentence's speech: the synthesis time of a typical announcement here.
        cost = {"x_low": 0.3, "low": 0.75, "medium": 1.0, "high": 1.8}[voice.quality or "medium"]
        seconds = measurement.long.audio_seconds * 0.2 * cost
        label = f"{voice.display_name} \u2193 {catalog.format_size(voice.size)}"
        assert {"value": voice.key, "label": f"{label} \u00b7 \u2248 {seconds:.1f} s"} in (
            form_options(result)
        )
        shown += 1
    assert shown >= 4  # the shipped catalogue has several en-US voices and qualities


@pytest.mark.parametrize(
    ("rule", "error", "detail"),
    [
        ("404", "http_error", ("status", "404")),
        ("cut", "cannot_connect", ("file", f"{JOE}.onnx")),
        ("corrupt", "verification_failed", ("file", f"{JOE}.onnx")),
    ],
)
async def test_download_failure_then_retry(
    hass: HomeAssistant,
    server: VoiceServer,
    voices_dir: Path,
    no_packaged_voice: None,
    rule: str,
    error: str,
    detail: tuple[str, str],
) -> None:
    """A failed download shows why, leaves no file, and choosing the voice again retries."""
    server.rules[server.paths(JOE)[0]] = rule
    result = await language(hass, await start(hass), url=server.base_url)
    assert server.requests == []  # no refresh asked for
    result = await finish_download(hass, await choose(hass, result, JOE))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "voice"
    assert result["errors"] == {"base": error}
    key, value = detail
    assert placeholders(result)[key] == value
    assert voice_files(voices_dir) == []
    schema = result["data_schema"]
    assert schema is not None
    assert schema({})[CONF_VOICE] == JOE  # preselected for the retry

    server.rules.clear()
    result = await finish_download(hass, await choose(hass, result, JOE))
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert voice_files(voices_dir) == [f"{JOE}.onnx", f"{JOE}.onnx.json"]


async def test_download_disk_full(
    hass: HomeAssistant, server: VoiceServer, voices_dir: Path, no_packaged_voice: None
) -> None:
    """Too little space (checked first, or ENOSPC while writing) is a clear error."""
    result = await language(hass, await start(hass), url=server.base_url)
    usage = type("Usage", (), {"free": 10_000_000})()
    with patch("shutil.disk_usage", return_value=usage):
        result = await finish_download(hass, await choose(hass, result, JOE))
    assert result["errors"] == {"base": "disk_full"}
    assert placeholders(result)["folder"] == str(voices_dir)
    assert placeholders(result)["size"] == "63.2 MB"
    assert server.files_requested() == []

    real_open = download.open_part_file

    class Full:
        def __init__(self, file: Any) -> None:
            self.file = file

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.file, name)

    def open_full(folder: Path, name: str) -> tuple[Path, Any]:
        path, file = real_open(folder, name)
        return path, Full(file)

    with patch.object(download, "open_part_file", open_full):
        result = await finish_download(hass, await choose(hass, result, JOE))
    assert result["errors"] == {"base": "disk_full"}
    assert voice_files(voices_dir) == []

    # Once the cause is gone, the retry downloads the voice and creates the entry.
    result = await finish_download(hass, await choose(hass, result, JOE))
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE
    assert voice_files(voices_dir) == [f"{JOE}.onnx", f"{JOE}.onnx.json"]


async def test_download_write_failed(
    hass: HomeAssistant, server: VoiceServer, voices_dir: Path, no_packaged_voice: None
) -> None:
    """A voices folder that cannot be written is reported."""
    result = await language(hass, await start(hass), url=server.base_url)

    def refuse(folder: Path, name: str) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    with patch.object(download, "open_part_file", refuse):
        result = await finish_download(hass, await choose(hass, result, JOE))
    assert result["errors"] == {"base": "write_failed"}
    assert "Permission denied" in placeholders(result)["error"]

    # Once the cause is gone, the retry downloads the voice and creates the entry.
    result = await finish_download(hass, await choose(hass, result, JOE))
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE
    assert voice_files(voices_dir) == [f"{JOE}.onnx", f"{JOE}.onnx.json"]


async def test_download_unexpected_error(
    hass: HomeAssistant, server: VoiceServer, no_packaged_voice: None
) -> None:
    """Anything unexpected is logged and shown; the user can retry."""
    result = await language(hass, await start(hass), url=server.base_url)
    with patch.object(config_flow, "async_download_voice", side_effect=RuntimeError("boom")):
        result = await finish_download(hass, await choose(hass, result, JOE))
    assert result["errors"] == {"base": "download_failed"}
    assert placeholders(result)["error"] == "boom"
    with patch.object(config_flow, "async_download_voice", side_effect=RuntimeError):
        result = await finish_download(hass, await choose(hass, result, JOE))
    assert placeholders(result)["error"] == "RuntimeError"

    # Once the cause is gone, the retry downloads the voice and creates the entry.
    result = await finish_download(hass, await choose(hass, result, JOE))
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE


async def test_downloaded_voice_unreadable(
    hass: HomeAssistant, server: VoiceServer, no_packaged_voice: None
) -> None:
    """A verified download whose config cannot be read is reported, not set up."""
    result = await language(hass, await start(hass), url=server.base_url)
    with patch.object(config_flow, "read_voice_info", side_effect=ValueError("bad config")):
        result = await finish_download(hass, await choose(hass, result, JOE))
    assert result["errors"] == {"base": "download_failed"}
    assert placeholders(result)["error"] == "bad config"
    assert hass.config_entries.async_entries(DOMAIN) == []

    # Once the config reads, the retry uses the verified download: the entry, no new download.
    requested = server.files_requested()
    result = await choose(hass, result, JOE)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE
    assert [entry.unique_id for entry in hass.config_entries.async_entries(DOMAIN)] == [JOE]
    assert server.files_requested() == requested


async def test_closing_the_flow_cancels_the_download(
    hass: HomeAssistant, server: VoiceServer, voices_dir: Path, no_packaged_voice: None
) -> None:
    """Closing the dialog mid-download stops it and removes the partial file."""
    server.rules[server.paths(JOE)[0]] = "stall"
    result = await choose(hass, await language(hass, await start(hass), url=server.base_url), JOE)
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    for _ in range(200):
        if any(name.endswith(".part") for name in voice_files(voices_dir)) and (
            server.paths(JOE)[0] in server.requests
        ):
            break
        await asyncio.sleep(0.01)
    hass.config_entries.flow.async_abort(result["flow_id"])
    await hass.async_block_till_done()
    assert voice_files(voices_dir) == []
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_already_configured_before_download(
    hass: HomeAssistant, server: VoiceServer, no_packaged_voice: None
) -> None:
    """A voice that is already an entry is refused before anything is downloaded."""
    MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: JOE}, unique_id=JOE).add_to_hass(hass)
    result = await language(hass, await start(hass), url=server.base_url)
    result = await choose(hass, result, JOE)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert server.requests == []


async def test_voice_source_errors(
    hass: HomeAssistant, server: VoiceServer, no_packaged_voice: None
) -> None:
    """Bad, unreachable and useless voice sources are reported; a good one then works."""
    result = await start(hass)
    for bad in ("ftp://mirror.lan/", "http://mirror.lan/?x=1"):
        result = await language(hass, result, url=bad, refresh=True)
        assert result["step_id"] == "user"
        assert result["errors"] == {"base": "invalid_catalog_url"}
    result = await language(hass, result, url=server.base_url + "nothing/", refresh=True)
    assert result["errors"] == {"base": "catalog_unreachable"}
    assert "HTTP 404" in placeholders(result)["error"]
    server.catalog_body = b"[]"
    result = await language(hass, result, url=server.base_url, refresh=True)
    assert result["errors"] == {"base": "catalog_invalid"}
    assert placeholders(result)["url"] == server.base_url
    server.catalog_body = None
    result = await language(hass, result, url=server.base_url, refresh=True)
    assert result["step_id"] == "voice"
    result = await finish_download(hass, await choose(hass, result, JOE))
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE
    assert result["options"][CONF_CATALOG_URL] == server.base_url


async def test_refreshed_catalogue_not_saved(
    hass: HomeAssistant,
    server: VoiceServer,
    no_packaged_voice: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refreshed catalogue that cannot be kept is still used by the flow."""
    server.catalog["en_US-joetwo-medium"] = {
        **server.catalog[JOE],
        "key": "en_US-joetwo-medium",
        "files": {
            f"x/en_US-joetwo-medium{ext}": info
            for ext, info in zip(
                (".onnx", ".onnx.json"),
                list(server.catalog[JOE]["files"].values())[:2],
                strict=True,
            )
        },
    }
    with patch.object(config_flow, "save_catalog", side_effect=OSError("read-only")):
        result = await language(hass, await start(hass), url=server.base_url, refresh=True)
    assert "Cannot keep the refreshed voice catalogue" in caplog.text
    assert "en_US-joetwo-medium" in [o["value"] for o in form_options(result)]
    result = await finish_download(hass, await choose(hass, result, "en_US-joetwo-medium"))
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Joe (en-US, medium)"  # described by the downloaded config


async def test_refreshed_catalogue_is_kept(
    hass: HomeAssistant, server: VoiceServer, no_packaged_voice: None
) -> None:
    """After a refresh, later flows list the refreshed catalogue without contacting anyone."""
    server.catalog[JOE]["quality"] = "high"
    await language(hass, await start(hass), url=server.base_url, refresh=True)
    result = await language(hass, await start(hass))
    assert {"value": JOE, "label": "Joe (en-US, high) \u2193 63.2 MB"} in form_options(result)
    assert server.requests == ["voices.json"]


async def test_voice_source_of_existing_entries(hass: HomeAssistant) -> None:
    """A new flow starts with the voice source of an existing entry."""
    MockConfigEntry(
        domain=DOMAIN,
        data={CONF_VOICE: "x"},
        unique_id="x",
        options={CONF_CATALOG_URL: "http://mirror.lan/piper/"},
    ).add_to_hass(hass)
    result = await start(hass)
    assert placeholders(result)["url"] == "http://mirror.lan/piper/"
    result = await language(hass, result)
    assert placeholders(result)["url"] == "http://mirror.lan/piper/"
    # An emptied field means the upstream collection.
    result = await language(hass, await start(hass), url="")
    assert placeholders(result)["url"] == DEFAULT_CATALOG_URL


# -- reconfigure ------------------------------------------------------------------------------


async def test_reconfigure_to_installed_voice(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
) -> None:
    """Another installed voice: data, unique id and automatic title follow; the entry reloads."""
    entry = init_integration
    install_named_voice(voices_dir, "en_GB-alan-medium", joe_files, name="alan", code="en_GB")
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    schema = result["data_schema"]
    assert schema is not None
    assert schema({})[CONF_LANGUAGE] == "en-US"  # the entry's language preselected
    result = await language(hass, result)
    schema = result["data_schema"]
    assert schema is not None
    assert schema({})[CONF_VOICE] == JOE  # the entry's voice preselected
    hass.config_entries.flow.async_abort(result["flow_id"])

    result = await entry.start_reconfigure_flow(hass)
    result = await choose(hass, await language(hass, result, "en-GB"), "en_GB-alan-medium")
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {CONF_VOICE: "en_GB-alan-medium", CONF_LANGUAGE: "en-GB"}
    assert entry.unique_id == "en_GB-alan-medium"
    assert entry.title == "Alan (en-GB, medium)"
    assert entry.runtime_data.voice == "en_GB-alan-medium"


async def test_reconfigure_same_voice_and_own_title(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Choosing the entry's own voice is fine; a title the user chose is kept."""
    entry = init_integration
    hass.config_entries.async_update_entry(entry, title="Kitchen voice")
    result = await entry.start_reconfigure_flow(hass)
    result = await choose(hass, await language(hass, result), JOE)
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == JOE
    assert entry.title == "Kitchen voice"


async def test_reconfigure_to_voice_of_another_entry(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
) -> None:
    """A voice that is already another entry is refused."""
    install_voice(voices_dir, "en_US-other-medium", *joe_files)
    MockConfigEntry(
        domain=DOMAIN, data={CONF_VOICE: "en_US-other-medium"}, unique_id="en_US-other-medium"
    ).add_to_hass(hass)
    result = await init_integration.start_reconfigure_flow(hass)
    result = await choose(hass, await language(hass, result), "en_US-other-medium")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert init_integration.data[CONF_VOICE] == JOE


async def test_reconfigure_with_download(
    hass: HomeAssistant,
    setup_ha: None,
    server: VoiceServer,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
) -> None:
    """Reconfigure downloads the new voice from the entry's voice source; options are kept."""
    install_named_voice(voices_dir, "en_GB-alan-medium", joe_files, name="alan", code="en_GB")
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Alan (en-GB, medium)",
        data={CONF_VOICE: "en_GB-alan-medium", CONF_LANGUAGE: "en-GB"},
        unique_id="en_GB-alan-medium",
        options={CONF_AUDIO_FORMAT: "wav", CONF_CATALOG_URL: server.base_url},
        minor_version=2,
    )
    entry.add_to_hass(hass)
    with patch.dict(os.environ, {VOICE_PACKAGE_ENV: "none_here"}):
        result = await entry.start_reconfigure_flow(hass)
        assert placeholders(result)["url"] == server.base_url
        result = await finish_download(hass, await choose(hass, await language(hass, result), JOE))
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {CONF_VOICE: JOE, CONF_LANGUAGE: "en-US"}
    assert entry.title == "Joe (en-US, medium)"
    assert entry.options == {CONF_AUDIO_FORMAT: "wav", CONF_CATALOG_URL: server.base_url}
    assert (voices_dir / f"{JOE}.onnx").is_file()

    # Back to the upstream source (emptied field): the option goes away.
    result = await entry.start_reconfigure_flow(hass)
    result = await choose(hass, await language(hass, result, "en-GB", url=""), "en_GB-alan-medium")
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert entry.options == {CONF_AUDIO_FORMAT: "wav"}


# -- options flow -----------------------------------------------------------------------------


async def test_options_flow(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Speaker base URL and audio format: bad URL refused, good one saved and applied."""
    entry = init_integration
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"

    for bad in ("ftp://192.168.1.10", "http://192.168.1.10:8123/api", "not a url", "http://"):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_SPEAKER_BASE_URL: bad, CONF_AUDIO_FORMAT: "auto"}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_SPEAKER_BASE_URL: "invalid_url"}, bad

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_SPEAKER_BASE_URL: " http://192.168.1.10:8123/ ", CONF_AUDIO_FORMAT: "wav"},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_SPEAKER_BASE_URL: "http://192.168.1.10:8123",
        CONF_AUDIO_FORMAT: "wav",
        "fallback_engines": [],
        "engine": "local",
        "first_audio_timeout": 8.0,
        "breaker_threshold": 3,
        "breaker_cooldown": 60.0,
        "backend": "auto",
    }
    # Saved options reload the entry and take effect.
    assert entry.runtime_data.speaker_url.url == "http://192.168.1.10:8123"
    assert entry.runtime_data.audio_format == "wav"

    # Clearing the URL goes back to HA's own URL.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_SPEAKER_BASE_URL: "", CONF_AUDIO_FORMAT: "auto"}
    )
    await hass.async_block_till_done()
    assert entry.options[CONF_AUDIO_FORMAT] == "auto"
    assert CONF_SPEAKER_BASE_URL not in entry.options
    assert entry.runtime_data.speaker_url.url == "http://127.0.0.1:8123"
    assert entry.runtime_data.audio_format == "mp3"


async def test_options_fallback_chain(
    hass: HomeAssistant, init_integration: MockConfigEntry, engines: dict[str, Any]
) -> None:
    """The chain is chosen among other TTS entities; our own entity is refused."""
    entry = init_integration
    result = await hass.config_entries.options.async_init(entry.entry_id)
    own = "tts.alicia_tts_joe_en_us_medium"
    schema = result["data_schema"]
    assert schema is not None
    selector = schema.schema["fallback_engines"].config
    assert own in selector["exclude_entities"]
    assert selector["reorder"] is True  # the chain's order can be changed by dragging
    for bad in ([own], ["light.kitchen"]):
        with pytest.raises(InvalidData):
            await hass.config_entries.options.async_configure(
                result["flow_id"], {"fallback_engines": bad, CONF_AUDIO_FORMAT: "auto"}
            )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "fallback_engines": ["tts.streaming", "tts.working"],
            "engine": "fallback",
            "first_audio_timeout": 3,
            "breaker_threshold": 5,
            "breaker_cooldown": 120,
            CONF_AUDIO_FORMAT: "auto",
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    chain = entry.runtime_data.chain
    assert chain.fallbacks == ["tts.streaming", "tts.working"]
    assert chain.preference == "fallback"
    assert chain.first_audio_timeout == 3
    assert (chain.breaker.threshold, chain.breaker.cooldown) == (5, 120)


async def test_options_voice_defaults(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Engine defaults are stored flat; emptied fields are removed; the entity uses them."""
    entry = init_integration
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    assert SECTION_DEFAULTS in schema.schema
    with pytest.raises(InvalidData):  # ranges of options.md
        await hass.config_entries.options.async_configure(
            result["flow_id"], {SECTION_DEFAULTS: {"speed": 5.0}}
        )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {SECTION_DEFAULTS: {"speed": 1.25, "leading_silence": 0.2, "noise_scale": 0.5}},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert {k: entry.options[k] for k in ("speed", "leading_silence", "noise_scale")} == {
        "speed": 1.25,
        "leading_silence": 0.2,
        "noise_scale": 0.5,
    }
    assert "gain" not in entry.options

    # The form shows them; emptying one removes it; a submission without the section keeps them.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    defaults = schema.schema[SECTION_DEFAULTS].schema.schema
    suggested = {m.schema: (m.description or {}).get("suggested_value") for m in defaults}
    assert suggested["speed"] == 1.25
    assert suggested["gain"] is None
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {SECTION_DEFAULTS: {"speed": 1.25}}
    )
    await hass.async_block_till_done()
    assert "leading_silence" not in entry.options
    result = await hass.config_entries.options.async_init(entry.entry_id)
    await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert entry.options["speed"] == 1.25


async def test_options_voice_source(
    hass: HomeAssistant, init_integration: MockConfigEntry, server: VoiceServer
) -> None:
    """A new voice source is tested (its catalogue fetched) before it is saved."""
    entry = init_integration

    async def submit(source: dict[str, Any]) -> Result:
        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {SECTION_SOURCE: source}
        )
        await hass.async_block_till_done()
        return result

    result = await submit({CONF_CATALOG_URL: "ftp://mirror.lan/"})
    assert result["errors"] == {"base": "invalid_catalog_url"}
    result = await submit({CONF_CATALOG_URL: server.base_url + "nothing"})
    assert result["errors"] == {"base": "catalog_unreachable"}
    assert "HTTP 404" in placeholders(result)["error"]
    assert CONF_CATALOG_URL not in entry.options

    result = await submit({CONF_CATALOG_URL: server.base_url.rstrip("/")})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_CATALOG_URL] == server.base_url
    assert server.requests == ["nothing/voices.json", "voices.json"]
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert placeholders(result)["url"] == server.base_url
    hass.config_entries.options.async_abort(result["flow_id"])
    # The same source again: nothing fetched, unless a refresh is asked for.
    await submit({CONF_CATALOG_URL: server.base_url})
    assert server.requests == ["nothing/voices.json", "voices.json"]
    await submit({CONF_CATALOG_URL: server.base_url, CONF_REFRESH_CATALOG: True})
    assert server.requests == ["nothing/voices.json", "voices.json", "voices.json"]
    server.catalog_body = b"{}"
    result = await submit({CONF_CATALOG_URL: server.base_url, CONF_REFRESH_CATALOG: True})
    assert result["errors"] == {"base": "catalog_invalid"}

    # Emptied: back to the upstream collection (not contacted: it is the default).
    result = await submit({})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_CATALOG_URL not in entry.options


# -- fallback engines -------------------------------------------------------------------------

ALICIA = "tts.alicia_tts_joe_en_us_medium"
PIPER = "tts.piper"
MESSAGE = "The washing machine has finished."


async def to_fallback(hass: HomeAssistant) -> Result:
    """Language, then the packaged joe voice: the fallback step (or the entry)."""
    return await choose(hass, await language(hass, await start(hass)), JOE)


def fields(result: Result) -> list[str]:
    """The names of a form's fields."""
    schema = result["data_schema"]
    assert schema is not None
    return [str(marker.schema) for marker in schema.schema]


def suggested(result: Result, field: str) -> Any:
    """A field's suggested value."""
    schema = result["data_schema"]
    assert schema is not None
    marker = next(m for m in schema.schema if m.schema == field)
    return (marker.description or {}).get("suggested_value")


@pytest.fixture
async def piper_server(socket_enabled: None) -> AsyncGenerator[PiperAppServer]:
    """A Wyoming Piper server on loopback (a Piper app or container added by the user)."""
    server = PiperAppServer()
    await server.open()
    await server.serve()
    yield server
    await server.close()


async def add_wyoming(hass: HomeAssistant, host: str, port: int) -> MockConfigEntry:
    """HA's real wyoming integration, set up for a server."""
    entry = MockConfigEntry(domain=app.WYOMING, data={"host": host, "port": port}, title="piper")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_fallback_step_lists_engines(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    engines: dict[str, Any],
    piper_server: PiperAppServer,
    voices_dir: Path,
    joe_files: tuple[Path, Path],
    entity_registry: er.EntityRegistry,
) -> None:
    """Local engines first, each marked; Alicia's own left out; the picked order is the chain."""
    await add_wyoming(hass, "127.0.0.1", piper_server.port)
    # An engine without a registry entry, and one of an integration that is gone: cloud.
    anonymous = FakeEngine("Anonymous", "ok")
    anonymous._attr_unique_id = None
    await async_setup_engines(hass, [anonymous])
    entity_registry.async_get_or_create("tts", "gone_integration", "x", suggested_object_id="gone")
    hass.states.async_set("tts.gone", "unknown", {"friendly_name": "Gone"})
    install_named_voice(voices_dir, "en_GB-alan-medium", joe_files, name="alan", code="en_GB")

    result = await choose(
        hass, await language(hass, await start(hass), "en-GB"), "en_GB-alan-medium"
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "fallback"
    assert fields(result) == [CONF_FALLBACK_ENGINES]  # no Supervisor: no app offer
    options = form_options(result, CONF_FALLBACK_ENGINES)
    assert options[0] == {"value": PIPER, "label": f"piper (local, {PIPER})"}
    assert [o["value"] for o in options[1:]] == [
        "tts.anonymous", "tts.failing", "tts.gone", "tts.slow", "tts.streaming", "tts.working",
    ]  # fmt: skip
    assert all("(cloud, " in o["label"] for o in options[1:])
    assert ALICIA not in [o["value"] for o in options]
    assert suggested(result, CONF_FALLBACK_ENGINES) == [PIPER]
    with pytest.raises(InvalidData):  # only the listed engines
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_FALLBACK_ENGINES: [ALICIA]}
        )

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_FALLBACK_ENGINES: ["tts.working", PIPER]}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "next_flow" not in result
    entry = result["result"]
    assert entry.unique_id == "en_GB-alan-medium"
    assert entry.options == {CONF_FALLBACK_ENGINES: ["tts.working", PIPER]}
    assert entry.runtime_data.chain.fallbacks == ["tts.working", PIPER]


async def test_fallback_step_nothing_chosen(
    hass: HomeAssistant, setup_ha: None, engines: dict[str, Any]
) -> None:
    """Nothing picked (or the field not sent): an empty chain; nothing local is suggested."""
    result = await to_fallback(hass)
    assert suggested(result, CONF_FALLBACK_ENGINES) == []
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == JOE
    assert result["options"] == {CONF_FALLBACK_ENGINES: []}


async def test_app_offer_follows_local_piper(
    hass: HomeAssistant, setup_ha: None, app_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a Supervisor install the app is offered: ticked only when local Piper cannot run."""
    async with supervisor_installed(hass) as supervisor:
        result = await to_fallback(hass)
        assert fields(result) == [CONF_PIPER_APP]  # no other engine yet
        schema = result["data_schema"]
        assert schema is not None
        assert schema({})[CONF_PIPER_APP] is False  # real Piper runs here
        hass.config_entries.flow.async_abort(result["flow_id"])

        monkeypatch.setenv(ENV_BACKEND, "none-here")  # now in-process Piper cannot run
        result = await to_fallback(hass)
        schema = result["data_schema"]
        assert schema is not None
        assert schema({})[CONF_PIPER_APP] is True
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_PIPER_APP: False}
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["result"].unique_id == JOE
        assert "next_flow" not in result  # declined: nothing is installed
    assert supervisor.calls == []


async def test_app_offer_hidden_when_the_app_is_set_up(
    hass: HomeAssistant, setup_ha: None, app_env: None
) -> None:
    """The app already added through wyoming: it is listed (local, suggested), not offered."""
    async with supervisor_installed(hass, state=RUNNING) as supervisor:
        await add_wyoming(hass, app.APP_HOST, app.APP_PORT)
        result = await to_fallback(hass)
        assert fields(result) == [CONF_FALLBACK_ENGINES]
        assert suggested(result, CONF_FALLBACK_ENGINES) == [PIPER]
        hass.config_entries.flow.async_abort(result["flow_id"])
    assert supervisor.calls == []


# -- the Piper app ----------------------------------------------------------------------------


@pytest.fixture
def app_env(socket_enabled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback sockets for the app's server; its announcement polled every 10 ms, 5 times."""
    monkeypatch.setattr(app, "START_POLL_INTERVAL", 0.01)
    monkeypatch.setattr(app, "START_POLL_ROUNDS", 5)
    monkeypatch.setattr(app, "FLOW_WAIT_INTERVAL", 0.01)
    monkeypatch.setattr(app, "FLOW_WAIT_ROUNDS", 20)


@pytest.fixture
def local_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process Piper cannot run (as on a first set-up without network for its packages)."""
    monkeypatch.setenv(ENV_BACKEND, "none-here")


async def follow_app_flow(hass: HomeAssistant, flow_id: str) -> tuple[Result, list[str]]:
    """Follow the app's flow as the dialog does, to its end; the progress messages shown."""
    actions: list[str] = []
    result: Result = await hass.config_entries.flow.async_configure(flow_id)
    while result["type"] is FlowResultType.SHOW_PROGRESS:
        actions.append(result["progress_action"])
        await hass.async_block_till_done()
        result = await hass.config_entries.flow.async_configure(flow_id)
    return result, actions


async def create_with_app(
    hass: HomeAssistant, result: Result | None = None, engines: list[str] | None = None
) -> tuple[ConfigEntryT, str]:
    """The config flow with the app's offer taken: the new entry and the app's flow id."""
    result = result or await to_fallback(hass)
    assert result["step_id"] == "fallback"
    user_input: dict[str, Any] = {CONF_PIPER_APP: True}
    if engines is not None:
        user_input[CONF_FALLBACK_ENGINES] = engines
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    flow_type, flow_id = result["next_flow"]
    assert flow_type == FlowType.CONFIG_FLOW
    return result["result"], flow_id


type ConfigEntryT = config_entries.ConfigEntry[Any]


async def wait_for(condition: Callable[[], bool]) -> None:
    """Wait (at most 5 s) until a condition holds."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def advance_to(hass: HomeAssistant, flow_id: str, action: str) -> None:
    """Take the app's flow on (as the dialog does) until it shows the given progress."""
    for _ in range(500):
        result = await hass.config_entries.flow.async_configure(flow_id)
        if result["type"] is FlowResultType.SHOW_PROGRESS and result["progress_action"] == action:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the flow did not reach {action}")


def wyoming_flows(hass: HomeAssistant) -> list[Any]:
    """Wyoming flows in progress."""
    return list(hass.config_entries.flow.async_progress_by_handler(app.WYOMING))


async def test_ha_os_first_setup_without_network(
    hass: HomeAssistant, setup_ha: None, local_unavailable: None, app_env: None
) -> None:
    """One pass: the offer is ticked, the app is installed, started, added and then speaks."""
    async with supervisor_installed(hass) as supervisor:
        result = await to_fallback(hass)
        schema = result["data_schema"]
        assert schema is not None
        assert schema({})[CONF_PIPER_APP] is True
        entry, flow_id = await create_with_app(hass, result)
        assert entry.runtime_data.engine is None  # local Piper cannot speak
        assert entry.options == {CONF_FALLBACK_ENGINES: []}

        result, actions = await follow_app_flow(hass, flow_id)
        assert actions == ["check_app", "install_app", "start_app", "connect_app"]
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "app_ready"
        assert placeholders(result) == {"engine": PIPER}

        # The app's own discovery flow was confirmed (no second entry, nothing left pending).
        (wyoming,) = hass.config_entries.async_entries(app.WYOMING)
        assert wyoming.source == config_entries.SOURCE_HASSIO
        assert wyoming.unique_id == supervisor.messages[0].uuid.hex
        assert wyoming_flows(hass) == []
        assert supervisor.calls.count("install") == 1
        assert supervisor.calls.count("start") == 1
        assert "uninstall" not in supervisor.calls
        assert "stop" not in supervisor.calls
        assert supervisor.state == RUNNING

        # The entry: the app first in its chain, remembered as installed by Alicia.
        assert entry.options == {CONF_FALLBACK_ENGINES: [PIPER]}
        assert entry.data[CONF_PIPER_APP_INSTALLED] is True
        assert entry.runtime_data.chain.fallbacks == [PIPER]
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        assert diagnostics["piper_app"] == {"slug": "core_piper", "installed_by_alicia": True}

        # Never silent: the Alicia entity speaks through the app, in HA's tts path and on the
        # speaker path (both convert the app's audio, so its length is what can be compared).
        extension, data = await tts.async_get_media_source_audio(
            hass,
            tts.generate_media_source_id(
                hass, MESSAGE, ALICIA, "en-US", options={"preferred_format": "wav"}, cache=False
            ),
        )
        assert extension == "wav"
        assert len(data) > len(PCM) // 2
        item = await async_create_audio(hass, entry, MESSAGE, SynthesisOptions(), "wav")
        await item.buffer.wait_done()
        assert item.source == PIPER
        assert len(item.buffer.getvalue()) > 1000
        assert supervisor.server.texts == [MESSAGE, MESSAGE]


async def test_app_installed_and_stopped(
    hass: HomeAssistant, setup_ha: None, app_env: None, engines: dict[str, Any]
) -> None:
    """An installed app is started, not installed; chosen engines follow it in the chain."""
    async with supervisor_installed(hass, state=STOPPED) as supervisor:
        entry, flow_id = await create_with_app(hass, engines=["tts.working"])
        result, actions = await follow_app_flow(hass, flow_id)
        assert actions == ["check_app", "start_app", "connect_app"]
        assert result["reason"] == "app_ready"
        assert "install" not in supervisor.calls
        assert CONF_PIPER_APP_INSTALLED not in entry.data  # not installed by Alicia
        assert entry.options[CONF_FALLBACK_ENGINES] == [PIPER, "tts.working"]
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
        assert "piper_app" not in diagnostics


async def test_app_running_with_pending_discovery(
    hass: HomeAssistant, setup_ha: None, app_env: None
) -> None:
    """A running app that announced itself earlier: its waiting discovery is confirmed."""
    async with supervisor_installed(hass, state=RUNNING) as supervisor:
        supervisor.send_discovery()
        await wait_for(lambda: app.pending_discovery(hass) is not None)
        _, flow_id = await create_with_app(hass)
        result, actions = await follow_app_flow(hass, flow_id)
        assert actions == ["check_app", "connect_app"]
        assert result["reason"] == "app_ready"
        assert "start" not in supervisor.calls
        assert hass.config_entries.async_entries(app.WYOMING)[0].source == "hassio"
        assert wyoming_flows(hass) == []


async def test_app_stopped_with_earlier_discovery(
    hass: HomeAssistant, setup_ha: None, app_env: None
) -> None:
    """Stopped, but its discovery from an earlier run still waits: that one is confirmed."""
    async with supervisor_installed(hass, state=STOPPED, announce=False) as supervisor:
        supervisor.send_discovery()
        await wait_for(lambda: app.pending_discovery(hass) is not None)
        entry, flow_id = await create_with_app(hass)
        result, actions = await follow_app_flow(hass, flow_id)
        assert "start_app" in actions
        assert result["reason"] == "app_ready"
        assert hass.config_entries.async_entries(app.WYOMING)[0].source == "hassio"
        assert entry.options[CONF_FALLBACK_ENGINES] == [PIPER]


@pytest.mark.parametrize(
    ("state", "announce", "push"),
    [
        (RUNNING, False, False),  # running, never announced: its address is added directly
        (STOPPED, False, False),  # started, never announces: the wait ends, the address works
        (STOPPED, True, False),  # announced to the Supervisor only: no flow to confirm
    ],
)
async def test_app_added_by_address(
    hass: HomeAssistant,
    setup_ha: None,
    app_env: None,
    state: str,
    announce: bool,
    push: bool,
) -> None:
    """Without a discovery flow, the wyoming entry for the app's address is created."""
    async with supervisor_installed(hass, state=state, announce=announce, push=push):
        entry, flow_id = await create_with_app(hass)
        result, _ = await follow_app_flow(hass, flow_id)
        assert result["reason"] == "app_ready"
        (wyoming,) = hass.config_entries.async_entries(app.WYOMING)
        assert wyoming.source == config_entries.SOURCE_USER
        assert wyoming.data == {"host": app.APP_HOST, "port": app.APP_PORT}
        assert entry.options[CONF_FALLBACK_ENGINES] == [PIPER]


async def test_app_already_added(
    hass: HomeAssistant, setup_ha: None, app_env: None, engines: dict[str, Any]
) -> None:
    """Added meanwhile (another flow): its entry is used; the app is not in the chain twice."""
    async with supervisor_installed(hass, state=RUNNING) as supervisor:
        entry, flow_id = await create_with_app(hass)
        await add_wyoming(hass, app.APP_HOST, app.APP_PORT)
        hass.config_entries.async_update_entry(
            entry, options={CONF_FALLBACK_ENGINES: ["tts.working", PIPER]}
        )
        result, actions = await follow_app_flow(hass, flow_id)
        assert actions[-1] == "connect_app"
        assert result["reason"] == "app_ready"
        assert "start" not in supervisor.calls
        assert len(hass.config_entries.async_entries(app.WYOMING)) == 1
        assert entry.options[CONF_FALLBACK_ENGINES] == [PIPER, "tts.working"]


async def test_one_install_for_two_flows(
    hass: HomeAssistant, setup_ha: None, app_env: None
) -> None:
    """A second set-up while the app installs joins it; closing a dialog does not stop it."""
    gate = asyncio.Event()
    async with supervisor_installed(hass, gate=gate) as supervisor:
        entry, first = await create_with_app(hass)
        second = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": "piper_app", "entry_id": entry.entry_id}
        )
        # Both asked the Supervisor (not installed) and wait in the one install.
        for flow_id in (first, second["flow_id"]):
            await advance_to(hass, flow_id, "install_app")
        await wait_for(lambda: supervisor.state == "installing")
        assert supervisor.calls.count("store_info") == 2
        hass.config_entries.flow.async_abort(first)  # one dialog closed mid-install
        gate.set()
        end, _ = await follow_app_flow(hass, second["flow_id"])
        assert end["reason"] == "app_ready"
        assert supervisor.calls.count("install") == 1
        assert entry.data[CONF_PIPER_APP_INSTALLED] is True


@pytest.mark.parametrize(
    ("setup", "reason", "error"),
    [
        ({"fail": {"store_info": supervisor_error("Supervisor busy")}}, "app_info_failed",
         "Failed to get the Piper app info: Supervisor busy"),
        ({"available": False}, "app_not_available", ""),
        ({"fail": {"install": supervisor_error("no space left")}}, "app_install_failed",
         "Failed to install the Piper app: no space left"),
        ({"fail": {"start": supervisor_error("port in use")}}, "app_start_failed",
         "Failed to start the Piper app: port in use"),
        ({"fail": {"store_info": RuntimeError("boom")}}, "app_unknown_error", "boom"),
        ({"fail": {"store_info": RuntimeError()}}, "app_unknown_error", "RuntimeError"),
    ],
)  # fmt: skip
async def test_app_failures_keep_the_entry(
    hass: HomeAssistant,
    setup_ha: None,
    app_env: None,
    engines: dict[str, Any],
    setup: dict[str, Any],
    reason: str,
    error: str,
) -> None:
    """Each failure aborts with its reason; the entry keeps working with what was chosen."""
    async with supervisor_installed(hass, **setup) as supervisor:
        entry, flow_id = await create_with_app(hass, engines=["tts.working"])
        result, _ = await follow_app_flow(hass, flow_id)
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == reason
        assert placeholders(result)["error"] == error
        assert placeholders(result)["address"] == app.address()
        assert entry.state is config_entries.ConfigEntryState.LOADED
        assert entry.options == {CONF_FALLBACK_ENGINES: ["tts.working"]}
        assert entry.runtime_data.chain.fallbacks == ["tts.working"]
        assert hass.config_entries.async_entries(app.WYOMING) == []
        assert "uninstall" not in supervisor.calls
        # Installed by Alicia only if the install itself went through.
        installed = reason == "app_start_failed"
        assert entry.data.get(CONF_PIPER_APP_INSTALLED, False) is installed


async def test_app_unreachable_after_its_announcement(
    hass: HomeAssistant, setup_ha: None, app_env: None
) -> None:
    """The app announced itself but does not answer: its discovery stays for the user."""
    async with supervisor_installed(hass, state=STOPPED) as supervisor:
        supervisor.server.broken = True  # the app starts, its service never answers
        entry, flow_id = await create_with_app(hass)
        result, _ = await follow_app_flow(hass, flow_id)  # wyoming retries for about 8 s
        assert result["reason"] == "app_connect_failed"
        assert placeholders(result)["error"] == "cannot_connect"
        assert placeholders(result)["address"] == f"127.0.0.1:{supervisor.server.port}"
        assert [f["context"]["source"] for f in wyoming_flows(hass)] == ["hassio"]
        assert entry.options == {CONF_FALLBACK_ENGINES: []}


async def test_app_unreachable_by_address(
    hass: HomeAssistant, setup_ha: None, app_env: None
) -> None:
    """Nothing announced and nothing answers: the flow Alicia started is not left behind."""
    async with supervisor_installed(hass, state=STOPPED, announce=False) as supervisor:
        supervisor.server.broken = True
        _, flow_id = await create_with_app(hass)
        result, _ = await follow_app_flow(hass, flow_id)  # wyoming retries for about 8 s
        assert result["reason"] == "app_connect_failed"
        assert wyoming_flows(hass) == []
        assert hass.config_entries.async_entries(app.WYOMING) == []


@pytest.mark.parametrize("services", ["asr", "none"])
async def test_app_without_tts(
    hass: HomeAssistant, setup_ha: None, app_env: None, services: str
) -> None:
    """A service that offers no text-to-speech is refused with its own reason."""
    async with supervisor_installed(hass, services=services, state=STOPPED, announce=False):
        entry, flow_id = await create_with_app(hass)
        result, _ = await follow_app_flow(hass, flow_id)
        assert result["reason"] == "app_no_tts"
        assert entry.options == {CONF_FALLBACK_ENGINES: []}


async def test_app_flow_without_its_entry(
    hass: HomeAssistant, setup_ha: None, app_env: None
) -> None:
    """No Supervisor, or the entry is gone (never there, removed meanwhile): nothing changes."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "piper_app", "entry_id": "nope"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "app_no_supervisor"
    async with supervisor_installed(hass, state=RUNNING) as supervisor:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": "piper_app", "entry_id": "nope"}
        )
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "app_entry_missing"

        gate = asyncio.Event()
        supervisor.state = "not_installed"
        supervisor.gate = gate
        entry, flow_id = await create_with_app(hass)
        await advance_to(hass, flow_id, "install_app")
        await wait_for(lambda: supervisor.state == "installing")
        assert await hass.config_entries.async_remove(entry.entry_id)
        gate.set()
        end, _ = await follow_app_flow(hass, flow_id)
        assert end["reason"] == "app_entry_missing"
        assert "uninstall" not in supervisor.calls


def test_app_texts_exist() -> None:
    """Every progress message and abort reason of the app's set-up has its text."""
    strings = json.loads(
        (Path(config_flow.__file__).parent / "strings.json").read_text(encoding="utf-8")
    )["config"]
    for action in ("check_app", "install_app", "start_app", "connect_app"):
        assert action in strings["progress"]
    for step in ("fallback", "piper_app", "install_app", "start_app", "connect_app"):
        assert step in strings["step"]
    for reason in (
        "app_ready", "app_no_supervisor", "app_entry_missing", "app_info_failed",
        "app_not_available", "app_install_failed", "app_start_failed", "app_connect_failed",
        "app_no_tts", "app_unknown_error",
    ):  # fmt: skip
        assert reason in strings["abort"]
    assert set(strings["step"]["fallback"]["data"]) == {CONF_FALLBACK_ENGINES, CONF_PIPER_APP}
