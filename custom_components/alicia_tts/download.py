"""Downloading a Piper voice from the voice source. Pure: imports nothing from Home Assistant.

A voice is the pair ``<key>.onnx`` + ``<key>.onnx.json``; nothing else of a catalogue entry is
fetched. Each file is streamed into a hidden temp file in the voices folder
(``.<name>.<random>.part``, which the voice scan never picks up) while its MD5 is computed;
size and MD5 are checked against the catalogue, the file is fsync'ed, and only when both files
are complete and correct are they renamed into place (config first, model last, so a scan never
sees a model without its config). Before that the voice is opened as the engine would open it
(``verify``: its config parsed, its model loaded), so a voice that cannot load is never
installed, even when its size and MD5 match a wrong catalogue. On any failure, cancellation
included, the temp files are removed: a partial or corrupt voice is never loaded. Temp files a
killed process left behind are removed at setup (:func:`remove_stale_parts`).

URLs in errors and log lines never show credentials (``http://user:password@host`` is shown as
``http://***@host``).

Blocking file work runs through ``run_blocking`` (Home Assistant's executor in the integration).
"""

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import errno
import hashlib
import logging
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import IO, Any, Final

import aiohttp

from .catalog import CatalogFile, CatalogVoice, file_url, format_size, redact_url
from .engine import VoiceLoadError, check_voice_files
from .exceptions import CauseError

_LOGGER = logging.getLogger(__name__)

CHUNK_BYTES: Final = 256 * 1024
# Bytes gathered before one executor job writes them.
WRITE_BYTES: Final = 1024 * 1024
# Free space required beyond the voice itself.
SPACE_MARGIN: Final = 16 * 1024 * 1024
# Temp files older than this are leftovers of an interrupted run.
STALE_PART_SECONDS: Final = 24 * 3600
# Temp files from before this module was imported were made by an earlier process.
PROCESS_STARTED: Final = time.time()
# No total limit (large voices on slow links), but a connection that stalls fails.
HTTP_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=60.0)

type Progress = Callable[[int, int], None]
type RunBlocking = Callable[..., Awaitable[Any]]
type Verify = Callable[[Path, Path], None]


class DownloadError(CauseError):
    """A download failed; ``key`` names the flow error, ``placeholders`` its details."""

    key = "download_failed"


class HttpStatusError(DownloadError):
    """The voice source answered with an HTTP error (404: not there)."""

    key = "http_error"


class ConnectionFailedError(DownloadError):
    """No connection, or it broke before the file was complete."""

    key = "cannot_connect"


class VerificationError(DownloadError):
    """The file's size or MD5 differs from the catalogue's."""

    key = "verification_failed"


class DiskFullError(DownloadError):
    """Not enough space in the voices folder."""

    key = "disk_full"


class StorageError(DownloadError):
    """The voices folder cannot be written (permissions, read-only file system...)."""

    key = "write_failed"


class UnusableVoiceError(DownloadError):
    """The downloaded files are complete but the voice cannot be loaded: not installed."""


async def _run_in_thread(func: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(func, *args)


def open_part_file(folder: Path, name: str) -> tuple[Path, IO[bytes]]:
    """A new hidden temp file for ``name`` in ``folder`` (blocking)."""
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    return Path(temp), os.fdopen(fd, "wb")


def _storage_error(err: OSError, folder: Path, needed: int | None = None) -> DownloadError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"no space left in {folder}",
            folder=str(folder),
            size=format_size(needed) if needed else "",
        )
    return StorageError(f"cannot write to {folder}: {err}", folder=str(folder))


def _remove_parts(folder: Path, before: float) -> int:
    """Remove temp files last written before ``before`` (blocking); how many went."""
    removed = 0
    for part in folder.glob(".*.part"):
        try:
            if part.stat().st_mtime < before:
                part.unlink()
                removed += 1
        except OSError as err:
            _LOGGER.debug("Cannot remove %s: %s", part, err)
    return removed


def remove_stale_parts(folders: list[Path], before: float | None = None) -> int:
    """Remove the temp files of downloads a killed process left behind (blocking).

    Everything written before ``before`` (default: when this process loaded the integration,
    so a download running now is never touched) goes; how many files went.
    """
    cutoff = PROCESS_STARTED if before is None else before
    removed = 0
    for folder in folders:
        if folder.is_dir():
            removed += _remove_parts(folder, cutoff)
    if removed:
        _LOGGER.info("Removed %d temp file(s) of interrupted downloads", removed)
    return removed


def prepare_folder(folder: Path, needed: int) -> None:
    """Create the voices folder, drop stale temp files, check free space (blocking)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_parts(folder, time.time() - STALE_PART_SECONDS)
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise _storage_error(err, folder, needed) from err
    if free < needed + SPACE_MARGIN:
        raise DiskFullError(
            f"{format_size(free)} free in {folder}, {format_size(needed)} needed",
            folder=str(folder),
            size=format_size(needed),
        )


class _Part:
    """One file being written: temp path, open file, running MD5 (blocking methods)."""

    def __init__(self, folder: Path, target: CatalogFile) -> None:
        self.folder = folder
        self.target = target
        self.path, self.file = open_part_file(folder, target.name)
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.md5.update(data)
        self.size += len(data)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.path.unlink(missing_ok=True)


def connection_detail(err: BaseException) -> str:
    """What broke a connection, in words, with any credentials in URLs hidden."""
    return redact_url(str(err) or type(err).__name__)


async def write_batched(
    response: aiohttp.ClientResponse,
    write: Callable[[bytes], object],
    run_blocking: RunBlocking,
    on_bytes: Callable[[int], None],
    check: Callable[[int], None],
) -> None:
    """Write the body of ``response`` in batches of about ``WRITE_BYTES`` (in ``run_blocking``).

    ``check(received)`` sees the bytes received so far before each chunk is kept and may
    refuse the file by raising; ``on_bytes`` counts each chunk for the progress.
    """
    pending: list[bytes] = []
    pending_size = received = 0
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        received += len(chunk)
        check(received)
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= WRITE_BYTES:
            await run_blocking(write, b"".join(pending))
            pending, pending_size = [], 0
        on_bytes(len(chunk))
    if pending:
        await run_blocking(write, b"".join(pending))


async def _fetch(
    session: aiohttp.ClientSession,
    url: str,
    part: _Part,
    run_blocking: RunBlocking,
    on_bytes: Callable[[int], None],
) -> None:
    """Stream one file into its part, checking size on the way and MD5 at the end."""
    target = part.target

    def check(received: int) -> None:
        if received > target.size:
            raise VerificationError(
                f"{target.name} is larger than the catalogue's {target.size} bytes",
                file=target.name,
            )

    try:
        async with session.get(url, timeout=HTTP_TIMEOUT) as response:
            if response.status != 200:
                raise HttpStatusError(
                    f"HTTP {response.status} for {redact_url(url)}",
                    status=str(response.status),
                    url=redact_url(url),
                    file=target.name,
                )
            await write_batched(response, part.write, run_blocking, on_bytes, check)
        await run_blocking(part.finish)
    except (aiohttp.ClientError, TimeoutError) as err:
        detail = connection_detail(err)
        raise ConnectionFailedError(
            f"{target.name}: {detail}", url=redact_url(url), file=target.name
        ) from err
    except OSError as err:
        raise _storage_error(err, part.folder, target.size) from err
    if part.size != target.size:
        raise VerificationError(
            f"{target.name} has {part.size} bytes, the catalogue says {target.size}",
            file=target.name,
        )
    if (digest := part.md5.hexdigest()) != target.md5:
        raise VerificationError(
            f"{target.name} has MD5 {digest}, the catalogue says {target.md5}",
            file=target.name,
        )


def _install(parts: list[_Part]) -> None:
    """Rename the verified parts into place, config before model (blocking)."""
    for part in parts:
        part.path.replace(part.folder / part.target.name)


def _verify(verify: Verify, voice: CatalogVoice, parts: list[_Part]) -> None:
    """Open the downloaded voice as the engine would (blocking); UnusableVoiceError if not."""
    paths = {part.target.name: part.path for part in parts}
    try:
        verify(paths[voice.model.name], paths[voice.config.name])
    except VoiceLoadError as err:
        raise UnusableVoiceError(
            f"the downloaded voice {voice.key} cannot be loaded: {err}"
        ) from err


async def async_download_voice(
    session: aiohttp.ClientSession,
    base_url: str,
    voice: CatalogVoice,
    folder: Path,
    *,
    progress: Progress | None = None,
    run_blocking: RunBlocking = _run_in_thread,
    verify: Verify = check_voice_files,
) -> Path:
    """Download and verify a voice into ``folder``; the path of its model.

    ``progress(done, total)`` is called as bytes arrive. ``verify(model, config)`` (blocking;
    default: the engine's own check) must accept the files before they are moved into place.
    Raises a DownloadError subclass; nothing but the complete, verified voice that loads is
    ever left in ``folder``.
    """
    total = voice.size
    done = 0

    def on_bytes(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    await run_blocking(prepare_folder, folder, total)
    parts: list[_Part] = []
    try:
        for target in voice.files:
            try:
                part = await run_blocking(_Part, folder, target)
            except OSError as err:
                raise _storage_error(err, folder, total) from err
            parts.append(part)
            url = str(file_url(base_url, target.path))
            _LOGGER.debug("Downloading %s to %s", redact_url(url), part.path)
            await _fetch(session, url, part, run_blocking, on_bytes)
        await run_blocking(_verify, verify, voice, parts)
        try:
            await run_blocking(_install, parts)
        except OSError as err:
            raise _storage_error(err, folder, total) from err
    except asyncio.CancelledError:
        for part in parts:  # no await while cancelled: unlinking is quick
            part.discard()
        raise
    except BaseException:
        for part in parts:
            await run_blocking(part.discard)
        raise
    _LOGGER.info("Downloaded voice %s (%s)", voice.key, format_size(total))
    return folder / voice.model.name
