"""Voice downloads against a loopback voice source serving the real joe files."""

from collections.abc import AsyncGenerator
import errno
import hashlib
from pathlib import Path
from typing import IO, Any
from unittest.mock import patch

import aiohttp
import pytest

from custom_components.alicia_tts import download
from custom_components.alicia_tts.catalog import CatalogVoice, parse_voice
from custom_components.alicia_tts.download import (
    ConnectionFailedError,
    DiskFullError,
    HttpStatusError,
    StorageError,
    UnusableVoiceError,
    VerificationError,
    async_download_voice,
    prepare_folder,
    remove_stale_parts,
)
from custom_components.alicia_tts.voices import scan_voice_dir

from .conftest import JOE
from .voice_server import VoiceServer, joe_entry, start_voice_server


@pytest.fixture
async def server(socket_enabled: None, joe_files: tuple[Path, Path]) -> AsyncGenerator[VoiceServer]:
    """The loopback voice source."""
    async for running in start_voice_server(joe_files):
        yield running


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A client session (Home Assistant passes its shared one)."""
    async with aiohttp.ClientSession() as client:
        yield client


def joe(server: VoiceServer) -> CatalogVoice:
    """The joe voice as the test catalogue describes it."""
    return parse_voice(JOE, server.catalog[JOE])


def leftovers(folder: Path) -> list[str]:
    """Everything in the folder."""
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The voices folder (created by the download)."""
    return tmp_path / "voices"


async def test_download_success_with_progress(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """Both files arrive, verified; progress climbs to the total; nothing else is fetched."""
    events: list[tuple[int, int]] = []
    voice = joe(server)
    model = await async_download_voice(
        session, server.base_url, voice, folder, progress=lambda d, t: events.append((d, t))
    )
    assert model == folder / f"{JOE}.onnx"
    assert leftovers(folder) == [f"{JOE}.onnx", f"{JOE}.onnx.json"]
    assert model.read_bytes() == server.model
    assert hashlib.md5(model.read_bytes()).hexdigest() == voice.model.md5
    # Config first (small), then the model; never the MODEL_CARD.
    assert server.files_requested() == [server.paths(JOE)[1], server.paths(JOE)[0]]
    assert len(events) > 10
    assert [d for d, _ in events] == sorted(d for d, _ in events)
    assert events[-1] == (voice.size, voice.size)
    # The scan picks it up as a complete voice.
    assert scan_voice_dir(folder)[JOE].language == "en-US"


@pytest.mark.parametrize(
    ("rule", "error", "key"),
    [
        ("404", HttpStatusError, "http_error"),
        ("500", HttpStatusError, "http_error"),
        ("cut", ConnectionFailedError, "cannot_connect"),
        ("corrupt", VerificationError, "verification_failed"),
    ],
)
async def test_download_failures_leave_nothing(
    server: VoiceServer,
    session: aiohttp.ClientSession,
    folder: Path,
    rule: str,
    error: type[Exception],
    key: str,
) -> None:
    """HTTP errors, a connection cut mid-file and a wrong MD5 leave no file behind."""
    server.rules[server.paths(JOE)[0]] = rule
    with pytest.raises(error) as caught:
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert isinstance(caught.value, download.DownloadError)
    assert caught.value.key == key
    assert caught.value.placeholders["file"] == f"{JOE}.onnx"
    if rule.isdigit():
        assert caught.value.placeholders["status"] == rule
    assert leftovers(folder) == []
    assert scan_voice_dir(folder) == {}

    # Retry after the failure: it works once the source behaves.
    server.rules.clear()
    await async_download_voice(session, server.base_url, joe(server), folder)
    assert leftovers(folder) == [f"{JOE}.onnx", f"{JOE}.onnx.json"]


async def test_wrong_size_in_catalogue(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """A file larger or smaller than the catalogue says is rejected."""
    entry = server.catalog[JOE]
    model_path, config_path = server.paths(JOE)
    entry["files"][model_path]["size_bytes"] -= 1000
    with pytest.raises(VerificationError, match="larger than"):
        await async_download_voice(session, server.base_url, joe(server), folder)
    entry["files"][model_path]["size_bytes"] += 1000
    entry["files"][config_path]["size_bytes"] += 1
    with pytest.raises(VerificationError, match="has 4794 bytes"):
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert leftovers(folder) == []


async def test_connection_refused(session: aiohttp.ClientSession, folder: Path) -> None:
    """No server at all: a connection error, nothing written."""
    voice = parse_voice(
        JOE,
        {
            "files": {
                f"{JOE}.onnx": {"size_bytes": 10, "md5_digest": "0" * 32},
                f"{JOE}.onnx.json": {"size_bytes": 10, "md5_digest": "0" * 32},
            }
        },
    )
    with pytest.raises(ConnectionFailedError):
        await async_download_voice(session, "http://127.0.0.1:9/", voice, folder)
    assert leftovers(folder) == []


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, real: IO[bytes]) -> None:
        self.real = real

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_disk_full_while_writing(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """ENOSPC while writing: a clear disk-full error, the temp file removed."""
    real_open = download.open_part_file

    def open_full(folder: Path, name: str) -> tuple[Path, Any]:
        path, file = real_open(folder, name)
        return path, FullDisk(file)

    with (
        patch.object(download, "open_part_file", open_full),
        pytest.raises(DiskFullError) as caught,
    ):
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert caught.value.key == "disk_full"
    assert caught.value.placeholders["folder"] == str(folder)
    assert leftovers(folder) == []


async def test_disk_full_before_download(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """Too little free space is reported before anything is fetched."""
    usage = type("Usage", (), {"free": 1_000_000})()
    with (
        patch("shutil.disk_usage", return_value=usage),
        pytest.raises(DiskFullError, match="needed") as caught,
    ):
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert caught.value.placeholders["size"] == "63.2 MB"
    assert server.requests == []


async def test_storage_errors(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """A folder that cannot be written, or a failing rename, is a write error."""

    def refuse(folder: Path, name: str) -> tuple[Path, IO[bytes]]:
        raise PermissionError(errno.EACCES, "Permission denied")

    with (
        patch.object(download, "open_part_file", refuse),
        pytest.raises(StorageError) as caught,
    ):
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert caught.value.key == "write_failed"

    with (
        patch.object(Path, "replace", side_effect=OSError(errno.EIO, "I/O error")),
        pytest.raises(StorageError),
    ):
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert leftovers(folder) == []

    # The folder itself cannot be created (a file is in the way).
    blocker = folder / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError):
        prepare_folder(blocker / "voices", 10)


async def test_fsync_disk_full(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """Space running out when the data is flushed is a disk-full error too."""
    with (
        patch("os.fsync", side_effect=OSError(errno.ENOSPC, "full")),
        pytest.raises(DiskFullError),
    ):
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert leftovers(folder) == []


async def test_write_error_while_streaming(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """An I/O error in the middle of the stream (not a full disk) is a write error."""
    real_open = download.open_part_file

    class Broken(FullDisk):
        def write(self, data: bytes) -> int:
            raise OSError(errno.EIO, "I/O error")

    def open_broken(folder: Path, name: str) -> tuple[Path, Any]:
        path, file = real_open(folder, name)
        return path, Broken(file) if name.endswith(".onnx") else file

    with (
        patch.object(download, "open_part_file", open_broken),
        pytest.raises(StorageError),
    ):
        await async_download_voice(session, server.base_url, joe(server), folder)
    assert leftovers(folder) == []


def test_stale_parts_removed(folder: Path) -> None:
    """Temp files of an interrupted run are removed after a day; fresh ones stay."""
    import os

    folder.mkdir()
    old = folder / ".x.onnx.abc.part"
    new = folder / ".y.onnx.def.part"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (0, 0))
    prepare_folder(folder, 1)
    assert leftovers(folder) == [new.name]
    with patch.object(Path, "unlink", side_effect=OSError("busy")):
        os.utime(new, (0, 0))
        prepare_folder(folder, 1)  # logged, not fatal


def _wrong_catalogue(server: VoiceServer, model: bytes, config: bytes) -> CatalogVoice:
    """The server now serves these bytes, and its catalogue's size and MD5 match them."""
    server.model, server.config = model, config
    server.catalog[JOE] = joe_entry(JOE, model, config)
    return joe(server)


@pytest.mark.parametrize("broken", ["config", "model"])
async def test_voice_that_cannot_load_is_never_installed(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path, broken: str
) -> None:
    """A broken .onnx.json, or a truncated model whose size and MD5 match a wrong catalogue:
    the files verify, but the voice cannot load, so nothing is moved into place."""
    model, config = server.model, server.config
    if broken == "config":
        voice = _wrong_catalogue(server, model, config[: len(config) // 2])
    else:
        voice = _wrong_catalogue(server, model[: len(model) // 3], config)
    with pytest.raises(UnusableVoiceError) as caught:
        await async_download_voice(session, server.base_url, voice, folder)
    assert caught.value.key == "download_failed"
    assert JOE in caught.value.placeholders["error"]
    assert leftovers(folder) == []
    assert scan_voice_dir(folder) == {}


async def test_credentials_not_in_download_errors(
    server: VoiceServer, session: aiohttp.ClientSession, folder: Path
) -> None:
    """Errors of a voice source with credentials name the URL without them."""
    server.rules[server.paths(JOE)[0]] = "404"
    base = server.base_url.replace("http://", "http://user:s3cr3t@")
    with pytest.raises(HttpStatusError) as caught:
        await async_download_voice(session, base, joe(server), folder)
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in str(caught.value.placeholders)
    assert "***@127.0.0.1" in caught.value.placeholders["url"]


def test_remove_stale_parts(folder: Path) -> None:
    """Temp files from before a cut-off go (default: before this process loaded us)."""
    import os

    folder.mkdir()
    old = folder / ".x.onnx.abc.part"
    old.write_bytes(b"x")
    fresh = folder / ".y.onnx.def.part"
    fresh.write_bytes(b"y")
    keep = folder / "en_US-joe-medium.onnx"
    keep.write_bytes(b"z")
    earlier = download.PROCESS_STARTED - 10
    os.utime(old, (earlier, earlier))
    os.utime(keep, (earlier, earlier))
    assert remove_stale_parts([folder, folder / "missing"]) == 1
    assert leftovers(folder) == sorted([fresh.name, keep.name])
