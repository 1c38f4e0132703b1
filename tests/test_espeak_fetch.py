"""Fetching espeak-ng at setup from the project's release (espeak_fetch.py, espeak_setup.py).

The release is a loopback server with the real assets (tests/espeak_server.py): the npm
package as script/fetch_espeak_npm verified it and the data archive script/espeak_data.py builds
from the pinned piper-tts wheel. "No phonemizer here" is made real by hiding piper (as on musl)
and the shipped espeak folder; the Emscripten runner then really runs the fetched module.
"""

import asyncio
from collections.abc import AsyncGenerator
from datetime import timedelta
import gzip
import hashlib
import io
import os
from pathlib import Path
import re
import sys
import tarfile
import time
from typing import Any

import aiohttp
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_LANGUAGE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE, FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alicia_tts import espeak_fetch, espeak_setup, local_stack
from custom_components.alicia_tts.backends import ENV_PHONEMIZER, EspeakAssets
from custom_components.alicia_tts.config_flow import CONF_RETRY_ESPEAK
from custom_components.alicia_tts.const import (
    CONF_FALLBACK_ENGINES,
    CONF_VOICE,
    DOMAIN,
)
from custom_components.alicia_tts.diagnostics import async_get_config_entry_diagnostics
from custom_components.alicia_tts.espeak_fetch import (
    DATA_ASSET,
    DATA_DIR,
    DATA_TREE_DIGEST,
    EMSCRIPTEN_MODULE,
    MODULE_ASSET,
    MODULE_INTEGRITY,
    MODULE_MEMBER,
    MODULE_SIZE,
    FetchConnectionError,
    FetchStorageError,
    FetchVerificationError,
    Part,
)
from custom_components.alicia_tts.espeak_setup import ISSUE_ESPEAK_MISSING

from .conftest import JOE, install_voice
from .espeak_server import (
    NPM_TARBALL,
    ROOT,
    ReleaseServer,
    espeak_data_script,
    start_release_server,
)

pytestmark = pytest.mark.skipif(
    not NPM_TARBALL.is_file(), reason="run script/fetch_espeak_npm first (script/test does)"
)

ENTITY_ID = "tts.alicia_tts_joe_en_us_medium"


# -- the assets and the pins ------------------------------------------------------------------


@pytest.fixture(scope="module")
def release_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The two release assets, as script/build_release makes them."""
    script = espeak_data_script()
    archive = tmp_path_factory.mktemp("release") / DATA_ASSET
    assert script.make_tar(archive) == DATA_TREE_DIGEST
    return {MODULE_ASSET: NPM_TARBALL.read_bytes(), DATA_ASSET: archive.read_bytes()}


def test_data_pin_is_the_wheels_tree(tmp_path: Path) -> None:
    """The pinned tree digest is recomputed from the pinned wheel (script/espeak_data.py), and
    the integration's own digest of the extracted folder agrees: a wrong pin fails here."""
    script = espeak_data_script()
    assert script.DATA_ASSET == DATA_ASSET
    assert script.tree_digest(script.wheel_data()) == DATA_TREE_DIGEST
    out = tmp_path / DATA_DIR
    script.extract_data(out)
    assert espeak_fetch.tree_digest(out) == DATA_TREE_DIGEST


def test_module_pin_is_the_fetch_scripts(release_assets: dict[str, bytes]) -> None:
    """One pin for the npm package: script/fetch_espeak_npm's integrity, version and size."""
    text = (ROOT / "script" / "fetch_espeak_npm").read_text(encoding="utf-8")
    integrity = re.search(r'^INTEGRITY="([^"]+)"', text, re.MULTILINE)
    version = re.search(r'^VERSION="([^"]+)"', text, re.MULTILINE)
    assert integrity is not None
    assert version is not None
    assert integrity.group(1) == MODULE_INTEGRITY
    assert f"espeak-ng-{version.group(1)}.tgz" == MODULE_ASSET
    module = release_assets[MODULE_ASSET]
    assert len(module) == MODULE_SIZE
    assert espeak_fetch.integrity(hashlib.sha512(module)) == MODULE_INTEGRITY


def test_data_archive_is_deterministic(tmp_path: Path, release_assets: dict[str, bytes]) -> None:
    """The same wheel gives the same archive: sorted, mtime 0, owner 0, files only."""
    again = tmp_path / "again.tar.gz"
    espeak_data_script().make_tar(again)
    assert again.read_bytes() == release_assets[DATA_ASSET]
    with tarfile.open(again, "r:gz") as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert all(m.isfile() and m.mtime == 0 and m.uid == m.gid == 0 for m in members)
    assert all(m.name.startswith(f"{DATA_DIR}/") for m in members)


def test_release_url_and_parts() -> None:
    """The download folder of a version, and what is missing when."""
    assert (
        espeak_fetch.release_url("https://github.com/alicia-tts/alicia_tts/", "0.2.0")
        == "https://github.com/alicia-tts/alicia_tts/releases/download/v0.2.0/"
    )
    nothing = EspeakAssets()
    module = EspeakAssets(emscripten_module=Path("m.wasm"))
    wasi = EspeakAssets(wasi_module=Path("w.wasm"))
    data = EspeakAssets(data_dir=Path("d"))
    both = EspeakAssets(emscripten_module=Path("m.wasm"), data_dir=Path("d"))
    assert espeak_fetch.missing_parts(nothing, bridge=True, forced=None) == ()
    assert espeak_fetch.missing_parts(nothing, bridge=False, forced=None) == (
        Part.MODULE,
        Part.DATA,
    )
    assert espeak_fetch.missing_parts(nothing, bridge=False, forced="bridge") == ()
    assert espeak_fetch.missing_parts(nothing, bridge=True, forced="emscripten") == (
        Part.MODULE,
        Part.DATA,
    )
    assert espeak_fetch.missing_parts(module, bridge=False, forced=None) == (Part.DATA,)
    assert espeak_fetch.missing_parts(wasi, bridge=False, forced="wasi") == (Part.DATA,)
    assert espeak_fetch.missing_parts(data, bridge=False, forced=None) == (Part.MODULE,)
    assert espeak_fetch.missing_parts(both, bridge=False, forced=None) == ()
    assert espeak_fetch.part_names((Part.MODULE, Part.DATA)) == f"{EMSCRIPTEN_MODULE}, {DATA_DIR}/"
    assert espeak_fetch.asset_names((Part.DATA,)) == DATA_ASSET


def test_bridge_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """piper's bridge counts only where it imports."""
    assert espeak_fetch.bridge_importable()
    monkeypatch.setitem(sys.modules, "piper", None)
    assert not espeak_fetch.bridge_importable()


# -- the pure fetch against the loopback release -----------------------------------------------


@pytest.fixture
async def release(
    socket_enabled: None, release_assets: dict[str, bytes]
) -> AsyncGenerator[ReleaseServer]:
    """The loopback release."""
    async for running in start_release_server(release_assets):
        yield running


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A client session (Home Assistant passes its shared one)."""
    async with aiohttp.ClientSession() as client:
        yield client


def tree(folder: Path) -> list[str]:
    """Everything below ``folder`` (hidden entries included), relative."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


async def test_fetch_installs_both_with_progress(
    release: ReleaseServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Both assets: verified, unpacked, renamed into place as one folder; progress to 1."""
    dest = tmp_path / "alicia_tts" / "espeak"
    seen: list[tuple[int, int]] = []
    await espeak_fetch.async_fetch_espeak(
        session,
        release.base_url,
        dest,
        (Part.MODULE, Part.DATA),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert release.requests == [MODULE_ASSET, DATA_ASSET]
    assert sorted(p.name for p in (tmp_path / "alicia_tts").iterdir()) == ["espeak"]
    assert sorted(p.name for p in dest.iterdir()) == [DATA_DIR, EMSCRIPTEN_MODULE]
    assert (dest / EMSCRIPTEN_MODULE).read_bytes()[:4] == b"\0asm"
    assert espeak_fetch.tree_digest(dest / DATA_DIR) == DATA_TREE_DIGEST
    total = sum(len(data) for data in release.assets.values())
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


async def test_fetch_module_into_existing_folder(
    release: ReleaseServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Data placed by hand stays; only the module is fetched and renamed in next to it."""
    dest = tmp_path / "espeak"
    (dest / DATA_DIR).mkdir(parents=True)
    (dest / DATA_DIR / "mine").write_text("placed by hand")
    await espeak_fetch.async_fetch_espeak(session, release.base_url, dest, (Part.MODULE,))
    assert release.requests == [MODULE_ASSET]
    assert tree(dest) == [DATA_DIR, f"{DATA_DIR}/mine", EMSCRIPTEN_MODULE]


@pytest.mark.parametrize(
    ("asset", "rule", "error", "text"),
    [
        (MODULE_ASSET, "404", FetchConnectionError, "HTTP 404"),
        (DATA_ASSET, "500", FetchConnectionError, "HTTP 500"),
        (DATA_ASSET, "cut", FetchConnectionError, DATA_ASSET),
        (MODULE_ASSET, "corrupt", FetchVerificationError, "integrity"),
        (MODULE_ASSET, "big", FetchVerificationError, "larger than"),
        (DATA_ASSET, "corrupt", FetchVerificationError, DATA_ASSET),
    ],
)
async def test_failed_fetch_leaves_nothing(
    release: ReleaseServer,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    asset: str,
    rule: str,
    error: type[Exception],
    text: str,
) -> None:
    """HTTP errors, a broken connection, a wrong hash, too many bytes: nothing is left."""
    release.rules[asset] = rule
    with pytest.raises(error, match=text):
        await espeak_fetch.async_fetch_espeak(
            session, release.base_url, tmp_path / "fetch" / "espeak", (Part.MODULE, Part.DATA)
        )
    assert tree(tmp_path / "fetch") == []


async def test_cancelled_fetch_leaves_nothing(
    release: ReleaseServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A fetch cancelled mid-file (Home Assistant stopping) removes its staging folder."""
    release.rules[DATA_ASSET] = "stall"
    task = asyncio.create_task(
        espeak_fetch.async_fetch_espeak(
            session, release.base_url, tmp_path / "fetch" / "espeak", (Part.MODULE, Part.DATA)
        )
    )
    await release.stalled.wait()
    await asyncio.sleep(0.2)  # the first half is written
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tree(tmp_path / "fetch") == []


async def test_storage_errors(
    release: ReleaseServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A folder that cannot be made, a full device, a rename refused: storage errors."""
    blocker = tmp_path / "alicia_tts"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(FetchStorageError, match="cannot write"):
        await espeak_fetch.async_fetch_espeak(
            session, release.base_url, blocker / "espeak", (Part.MODULE,)
        )
    # A device that is always full (the write fails, as on a full disk).
    full = espeak_fetch._Download(Path("/dev/full"), hashlib.sha512())
    with pytest.raises(FetchStorageError):
        await espeak_fetch._download(
            session,
            release.base_url + MODULE_ASSET,
            full,
            MODULE_SIZE,
            espeak_fetch._run_in_thread,
            lambda _count: None,
            lambda _size: None,
        )
    full.close()
    with pytest.raises(FetchStorageError):
        espeak_fetch._write(Path("/dev/full"), b"x" * 8192)
    staged = tmp_path / "staged"
    (staged / DATA_DIR).mkdir(parents=True)
    dest = tmp_path / "dest"
    (dest / DATA_DIR).mkdir(parents=True)
    (dest / DATA_DIR / "taken").write_text("x")
    with pytest.raises(FetchStorageError):
        espeak_fetch._install(staged, dest)


def test_remove_stale_staging(tmp_path: Path) -> None:
    """Staging folders of a killed fetch go; a running one (newer) stays."""
    tmp_path /= "alicia_tts"
    old = tmp_path / ".espeak-old.part"
    (old / "espeak").mkdir(parents=True)
    os.utime(old, (0, 0))
    new = tmp_path / ".espeak-new.part"
    new.mkdir()
    assert espeak_fetch.remove_stale_staging(tmp_path, before=time.time() - 60) == 1
    assert tree(tmp_path) == [".espeak-new.part"]
    assert espeak_fetch.remove_stale_staging(tmp_path / "missing") == 0


# -- archives that must be refused ------------------------------------------------------------


def tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A tar.gz with these members."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    """A tar member header."""
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


@pytest.mark.parametrize(
    ("members", "text"),
    [
        ([(member("../evil"), b"x")], "unexpected path"),
        ([(member("/etc/evil"), b"x")], "unexpected path"),
        ([(member("other/phontab"), b"x")], "unexpected path"),
        ([(member(f"{DATA_DIR}/link", tarfile.SYMTYPE), b"")], "not a plain file"),
        (
            [(member(DATA_DIR, tarfile.DIRTYPE), b""), (member(f"{DATA_DIR}/phontab"), b"x")],
            "tree digest",
        ),
    ],
)
def test_bad_data_archives(tmp_path: Path, members: list[Any], text: str) -> None:
    """Paths leaving the folder, links, too many files, other contents: refused."""
    archive = tar_gz(tmp_path / "data.tar.gz", members)
    with pytest.raises(FetchVerificationError, match=text):
        espeak_fetch._unpack_data(archive, tmp_path / "out" / DATA_DIR)
    assert not (tmp_path / "evil").exists()


def test_oversized_data_archive(tmp_path: Path) -> None:
    """A member bigger than the bound is refused from its header, before a byte is written."""
    huge = member(f"{DATA_DIR}/huge")
    huge.size = espeak_fetch.DATA_MAX_BYTES + 1
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(gzip.compress(huge.tobuf()))
    with pytest.raises(FetchVerificationError, match="more than expected"):
        espeak_fetch._unpack_data(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_data_archive(tmp_path: Path, release_assets: dict[str, bytes]) -> None:
    """An archive cut short is refused, not half-used."""
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(release_assets[DATA_ASSET][:100_000])
    with pytest.raises(FetchVerificationError, match="cannot be unpacked"):
        espeak_fetch._unpack_data(archive, tmp_path / "out")


@pytest.mark.parametrize(
    ("members", "text"),
    [
        ([(member("package/README.md"), b"x")], "cannot be unpacked"),
        ([(member(MODULE_MEMBER, tarfile.DIRTYPE), b"")], "is not a module"),
        ([(member(MODULE_MEMBER), b"not wasm")], "is not WebAssembly"),
    ],
)
def test_bad_module_archives(tmp_path: Path, members: list[Any], text: str) -> None:
    """A package without the module, or with something else under its name: refused."""
    archive = tar_gz(tmp_path / "module.tgz", members)
    with pytest.raises(FetchVerificationError, match=text):
        espeak_fetch._unpack_module(archive, tmp_path / EMSCRIPTEN_MODULE)
    archive.write_bytes(b"not gzip at all")
    with pytest.raises(FetchVerificationError, match="cannot be unpacked"):
        espeak_fetch._unpack_module(archive, tmp_path / EMSCRIPTEN_MODULE)
    assert not (tmp_path / EMSCRIPTEN_MODULE).exists()


# -- Home Assistant: setup, repair issue, retry, reload ----------------------------------------


@pytest.fixture
def no_phonemizer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, voices_dir: Path, joe_files: tuple[Path, Path]
) -> None:
    """As on musl with a plain checkout: no piper (bridge, data), no shipped espeak folder.

    The joe voice is in the voices folder (its packaged copy needs piper to be found).
    """
    install_voice(voices_dir, JOE, *joe_files)
    monkeypatch.setitem(sys.modules, "piper", None)
    monkeypatch.setitem(sys.modules, "piper.espeakbridge", None)
    monkeypatch.delenv(local_stack.ENV_ESPEAK_DIR, raising=False)
    monkeypatch.delenv(ENV_PHONEMIZER, raising=False)
    monkeypatch.setattr(local_stack, "SHIPPED_DIR", tmp_path / "not-shipped")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, release: ReleaseServer) -> ReleaseServer:
    """The integration fetches from the loopback release."""
    monkeypatch.setattr(espeak_setup, "BASE_URL", release.base_url)
    return release


def espeak_folder(hass: HomeAssistant) -> Path:
    """<config>/alicia_tts/espeak."""
    return Path(hass.config.path(local_stack.ESPEAK_DIR))


def leftovers(hass: HomeAssistant) -> list[str]:
    """What a fetch left in <config>/alicia_tts (the voices folder aside)."""
    return [p for p in tree(Path(hass.config.path("alicia_tts"))) if not p.startswith("voices")]


def espeak_issue(hass: HomeAssistant) -> ir.IssueEntry | None:
    """The "espeak-ng missing" repair issue, if raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, ISSUE_ESPEAK_MISSING)


async def setup_entry(hass: HomeAssistant, **options: Any) -> MockConfigEntry:
    """An Alicia entry for joe with these options, set up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Joe (en-US, medium)",
        data={CONF_VOICE: JOE},
        unique_id=JOE,
        version=1,
        options=options,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def settle(hass: HomeAssistant) -> None:
    """Let the background fetch and any reload it schedules finish."""
    for _ in range(3):
        await hass.async_block_till_done(wait_background_tasks=True)


async def speak(hass: HomeAssistant, client: Any) -> bytes:
    """Real audio for a message through HA's tts path."""
    response = await client.post(
        "/api/tts_get_url",
        json={"engine_id": ENTITY_ID, "message": "The door is open.", "language": "en-US"},
    )
    assert response.status == 200, await response.text()
    audio: bytes = await (await client.get((await response.json())["path"])).read()
    return audio


async def test_setup_fetches_then_local_speaks(
    hass: HomeAssistant,
    setup_ha: None,
    no_phonemizer: None,
    served: ReleaseServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """First setup without espeak-ng: the entry loads at once, the fetch runs in the
    background, the entry reloads by itself and in-process Piper speaks (Emscripten module)."""
    entry = await setup_entry(hass)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.engine is None  # nothing to phonemize with yet
    await settle(hass)
    assert served.requests == [MODULE_ASSET, DATA_ASSET]
    assert sorted(p.name for p in espeak_folder(hass).iterdir()) == [DATA_DIR, EMSCRIPTEN_MODULE]
    assert espeak_issue(hass) is None
    engine = entry.runtime_data.engine
    assert engine is not None, entry.runtime_data.local_problem
    assert engine.phonemizer == "emscripten"
    assert len(await speak(hass, await hass_client())) > 5000
    # Installed: the next setup fetches nothing.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await settle(hass)
    assert served.requests == [MODULE_ASSET, DATA_ASSET]


async def test_offline_first_setup_then_retry(
    hass: HomeAssistant,
    engines: dict[str, Any],
    no_phonemizer: None,
    served: ReleaseServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """Offline: the entry loads, the fallback speaks, a repair issue says what is missing and
    how to place it; the retry a minute later succeeds, clears the issue, local speaks."""
    served.rules[MODULE_ASSET] = "404"
    entry = await setup_entry(hass, **{CONF_FALLBACK_ENGINES: ["tts.working"]})
    await settle(hass)
    assert entry.state is ConfigEntryState.LOADED
    issue = espeak_issue(hass)
    assert issue is not None
    assert issue.translation_key == "espeak_missing_network"
    details = issue.translation_placeholders or {}
    assert "HTTP 404" in details["error"]
    assert details["missing"] == f"{EMSCRIPTEN_MODULE}, {DATA_DIR}/"
    assert details["url"] == served.base_url
    assert details["folder"] == str(espeak_folder(hass))
    assert not espeak_folder(hass).exists()
    assert await speak(hass, await hass_client())  # the fallback engine's audio
    assert engines["working"].messages == ["The door is open."]
    shown = (await async_get_config_entry_diagnostics(hass, entry))["local_engine"]
    assert shown["espeak_fetch"]["failures"] == 1
    assert "HTTP 404" in shown["espeak_fetch"]["last_error"]
    assert shown["espeak_fetch"]["retry_scheduled"] is True
    assert shown["espeak_fetch"]["entries_waiting"] == 1

    served.rules.clear()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await settle(hass)
    assert espeak_issue(hass) is None
    assert entry.runtime_data.engine is not None
    assert entry.runtime_data.engine.phonemizer == "emscripten"
    shown = (await async_get_config_entry_diagnostics(hass, entry))["local_engine"]
    assert shown["espeak_fetch"] == {
        "fetching": False,
        "failures": 0,
        "last_error": None,
        "retry_scheduled": False,
        "entries_waiting": 0,
    }


@pytest.mark.parametrize(
    ("asset", "rule", "key"),
    [
        (MODULE_ASSET, "corrupt", "espeak_missing_verification"),
        (DATA_ASSET, "corrupt", "espeak_missing_verification"),
        (DATA_ASSET, "cut", "espeak_missing_network"),
    ],
)
async def test_bad_download_installs_nothing(
    hass: HomeAssistant,
    setup_ha: None,
    no_phonemizer: None,
    served: ReleaseServer,
    asset: str,
    rule: str,
    key: str,
) -> None:
    """A wrong hash or an interrupted download: nothing installed, no partial file, an issue;
    unloading the entry stops the retries."""
    served.rules[asset] = rule
    entry = await setup_entry(hass)
    await settle(hass)
    issue = espeak_issue(hass)
    assert issue is not None
    assert issue.translation_key == key
    assert leftovers(hass) == []
    fetcher = espeak_setup.async_get_fetcher(hass)
    assert fetcher._retry is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert fetcher._retry is None
    assert not fetcher.waiting


async def test_backoff_and_unexpected_error(
    hass: HomeAssistant, setup_ha: None, no_phonemizer: None, served: ReleaseServer
) -> None:
    """Retries wait longer each time; an unexpected error still becomes the repair issue."""
    served.rules[MODULE_ASSET] = "500"
    entry = await setup_entry(hass)
    await settle(hass)
    fetcher = espeak_setup.async_get_fetcher(hass)
    assert fetcher.failures == 1
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await settle(hass)
    assert fetcher.failures == 2
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=120))
    await settle(hass)
    assert fetcher.failures == 2  # the second retry waits five minutes

    def broken(_fraction: float) -> None:
        raise ValueError("listener broke")

    served.rules.clear()
    error = await fetcher.async_fetch(broken)
    assert error is not None
    issue = espeak_issue(hass)
    assert issue is not None
    assert issue.translation_key == "espeak_missing_failed"
    assert "listener broke" in (issue.translation_placeholders or {})["error"]
    assert leftovers(hass) == []
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert fetcher._retry is None


async def test_storage_failure_issue(
    hass: HomeAssistant, setup_ha: None, no_phonemizer: None, served: ReleaseServer
) -> None:
    """A folder that cannot be written (here a file in the way): the issue says so, and the
    verified download is not left behind."""
    await hass.async_add_executor_job(espeak_folder(hass).write_text, "a file, not a folder")
    fetcher = espeak_setup.async_get_fetcher(hass)
    error = await fetcher.async_fetch()
    assert isinstance(error, FetchStorageError)
    issue = espeak_issue(hass)
    assert issue is not None
    assert issue.translation_key == "espeak_missing_storage"
    assert leftovers(hass) == ["espeak"]


async def test_placed_by_hand_clears_issue(
    hass: HomeAssistant,
    setup_ha: None,
    no_phonemizer: None,
    voices_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files placed by hand: nothing is fetched and an old issue goes; a killed fetch's staging
    folder is removed at setup. The default source is this version's GitHub release."""
    fetcher = espeak_setup.async_get_fetcher(hass)
    await fetcher._async_failed(FetchConnectionError("offline"), (Part.MODULE,))
    assert espeak_issue(hass) is not None
    stale = Path(hass.config.path("alicia_tts")) / ".espeak-killed.part"
    stale.mkdir()
    os.utime(stale, (0, 0))
    folder = espeak_folder(hass)
    (folder / DATA_DIR).mkdir(parents=True)
    (folder / EMSCRIPTEN_MODULE).write_bytes(b"\0asm")
    entry = MockConfigEntry(domain=DOMAIN, data={CONF_VOICE: "en_US-gone-medium"}, version=1)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await settle(hass)
    assert entry.runtime_data.engine is None  # its voice is missing
    assert espeak_issue(hass) is None
    assert not stale.exists()
    assert fetcher.task is None
    monkeypatch.setattr(espeak_setup, "BASE_URL", None)  # what a real install uses
    assert await fetcher.async_base_url() == (
        "https://github.com/alicia-tts/alicia_tts/releases/download/v0.1.0/"
    )


# -- the config flow --------------------------------------------------------------------------


async def flow_to_espeak(hass: HomeAssistant) -> dict[str, Any]:
    """A new flow up to the espeak-ng step (joe is installed)."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_LANGUAGE: "en-US"}
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_VOICE: JOE})
    assert result["type"] is FlowResultType.SHOW_PROGRESS, result
    assert result["step_id"] == "espeak"
    return dict(result)


async def test_flow_fetches_with_progress(
    hass: HomeAssistant, no_phonemizer: None, served: ReleaseServer
) -> None:
    """A new entry on a machine without espeak-ng: fetched with live progress, then created;
    its engine speaks at once."""
    progress: list[float] = []

    @callback
    def on_progress(event: Event) -> None:
        progress.append(event.data["progress"])

    hass.bus.async_listen(EVENT_DATA_ENTRY_FLOW_PROGRESS_UPDATE, on_progress)
    result = await flow_to_espeak(hass)
    assert result["progress_action"] == "espeak"
    assert result["description_placeholders"] == {"assets": f"{MODULE_ASSET}, {DATA_ASSET}"}
    await hass.async_block_till_done()
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"]))
    await settle(hass)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert 50 <= len(progress) <= 102
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.runtime_data.engine is not None
    assert served.requests == [MODULE_ASSET, DATA_ASSET]


async def test_flow_failure_retry_and_continue(
    hass: HomeAssistant, no_phonemizer: None, served: ReleaseServer
) -> None:
    """A failed fetch says why; "try again" fetches again; continuing creates the entry anyway
    (the fallback chain speaks, the issue stays, the background retries)."""
    served.rules[DATA_ASSET] = "corrupt"
    result = await flow_to_espeak(hass)
    await hass.async_block_till_done()
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"]))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "espeak_failed"
    assert result["errors"] == {"base": "espeak_verification"}
    details = result["description_placeholders"]
    assert f"{DATA_ASSET} cannot be unpacked" in details["error"]
    assert details["url"] == served.base_url
    assert details["folder"].endswith("alicia_tts/espeak")

    served.rules[DATA_ASSET] = "404"
    result = dict(
        await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_RETRY_ESPEAK: True})
    )
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    await hass.async_block_till_done()
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"]))
    assert result["errors"] == {"base": "espeak_network"}

    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_RETRY_ESPEAK: False}
        )
    )
    await settle(hass)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.engine is None
    issue = espeak_issue(hass)
    assert issue is not None
    assert issue.translation_key == "espeak_missing_network"
    assert not espeak_folder(hass).exists()
    await hass.config_entries.async_unload(entry.entry_id)
