"""Fetching espeak-ng for the WebAssembly phonemizer. Pure: imports nothing from Home Assistant.

Where neither piper's compiled bridge nor a shipped or placed espeak-ng module can run (a plain
checkout on Home Assistant OS, Supervised or Container), two assets of this project's own
GitHub release for the integration's version are fetched (``release_url``):

- ``espeak-ng-1.0.2.tgz``: the npm package ``espeak-ng`` 1.0.2 as published (the Emscripten
  build of espeak-ng's command line), checked against its pinned sha512 integrity (the one
  ``script/fetch_espeak_npm`` checks); its ``package/dist/espeak-ng.wasm`` is installed as
  ``espeak-ng-emscripten.wasm``;
- ``espeak-ng-data-piper-1.8.0.tar.gz``: espeak-ng's data from the pinned piper-tts wheel, a
  deterministic tar made by ``script/espeak_data.py --tar``; after extraction the files are
  checked against a pinned tree digest (:func:`tree_digest`, the same as
  ``script/espeak_data.py --digest``), so the archive's own bytes need not be pinned.

Everything is streamed into a hidden staging folder next to the destination
(``<config>/alicia_tts/.espeak-<random>.part``), verified, and only then renamed into
``<config>/alicia_tts/espeak/``: the whole folder at once when it does not exist yet, else the
data folder and then the module, each with one rename. A failed, cancelled or killed fetch
leaves nothing but the staging folder, which is removed at once (or, after a kill, at the next
setup: :func:`remove_stale_staging`). Archive members other than plain files and folders, paths
leaving the folder, and more data than a bound are refused.

Blocking file work runs through ``run_blocking`` (Home Assistant's executor in the integration).
"""

import asyncio
import base64
from collections.abc import Awaitable, Callable
import contextlib
from enum import StrEnum
import hashlib
import importlib
import logging
import os
from pathlib import Path, PurePosixPath
import shutil
import tarfile
import tempfile
from typing import IO, Any, Final
import zlib

import aiohttp

from .backends import BRIDGE, EMSCRIPTEN, WASI, EspeakAssets
from .catalog import redact_url
from .download import HTTP_TIMEOUT, PROCESS_STARTED, connection_detail, write_batched
from .exceptions import CauseError

_LOGGER = logging.getLogger(__name__)

# What is installed, under these names (local_stack looks for them).
EMSCRIPTEN_MODULE: Final = "espeak-ng-emscripten.wasm"
DATA_DIR: Final = "espeak-ng-data"


class Part(StrEnum):
    """The parts that can be fetched."""

    MODULE = "module"
    DATA = "data"


# The npm package espeak-ng 1.0.2, as published (script/fetch_espeak_npm pins the same).
MODULE_ASSET: Final = "espeak-ng-1.0.2.tgz"
MODULE_INTEGRITY: Final = (
    "sha512-Xe4YC7d/+O06zYpsqrJ3LpbETdL/IO8JrnAmWcQEMoRFmMLWU+2y2Hnp"
    "EkOCnqZfb40MBDVyP4ppfusKdWbPcQ=="
)
MODULE_SIZE: Final = 9_189_030
MODULE_MEMBER: Final = "package/dist/espeak-ng.wasm"
MODULE_MAX_BYTES: Final = 64 * 1024 * 1024  # the unpacked module (18.5 MB)
WASM_MAGIC: Final = b"\0asm"

# espeak-ng's data of the piper-tts 1.8.0 wheel (script/espeak_data.py --tar / --digest).
DATA_ASSET: Final = "espeak-ng-data-piper-1.8.0.tar.gz"
DATA_TREE_DIGEST: Final = "8604234a3a3aee3057bf9bb822f3b40323939b3c9b77cc9e4369d166dd5c631b"
DATA_ARCHIVE_SIZE: Final = 9_600_000  # about; progress until the server says
DATA_ARCHIVE_MAX_BYTES: Final = 64 * 1024 * 1024
DATA_MAX_BYTES: Final = 64 * 1024 * 1024  # unpacked (19 MB, 373 files)
DATA_MAX_FILES: Final = 4096

STAGING_PREFIX: Final = ".espeak-"
STAGING_SUFFIX: Final = ".part"

type Progress = Callable[[int, int], None]
type RunBlocking = Callable[..., Awaitable[Any]]


class FetchError(CauseError):
    """Fetching espeak-ng failed; ``key`` names the cause, ``placeholders`` its details."""


class FetchConnectionError(FetchError):
    """No connection, an HTTP error, or the connection broke before a file was complete."""

    key = "network"


class FetchVerificationError(FetchError):
    """A file differs from what is pinned (hash, size, archive contents): nothing installed."""

    key = "verification"


class FetchStorageError(FetchError):
    """The espeak folder cannot be written (disk full, permissions, read-only)."""

    key = "storage"


def release_url(repository: str, version: str) -> str:
    """The release's download folder: ``<repository>/releases/download/v<version>/``."""
    return f"{repository.rstrip('/')}/releases/download/v{version}/"


def bridge_importable() -> bool:
    """Whether piper's compiled espeak-ng bridge imports (blocking: imports piper)."""
    try:
        importlib.import_module("piper")
        importlib.import_module("piper.espeakbridge")
    except Exception:  # noqa: BLE001 - ImportError, or its shared library failing to load
        return False
    return True


def missing_parts(assets: EspeakAssets, *, bridge: bool, forced: str | None) -> tuple[str, ...]:
    """What to fetch so that a phonemizer can run: nothing, the module and/or the data.

    Nothing when the bridge runs (``bridge``; not counted when another phonemizer is
    ``forced``), when the bridge is forced (fetching cannot help it), or when a module and the
    data are there.
    """
    wanted = (forced or "").strip().lower()
    if wanted == BRIDGE or (bridge and wanted not in (WASI, EMSCRIPTEN)):
        return ()
    parts: list[str] = []
    if assets.wasi_module is None and assets.emscripten_module is None:
        parts.append(Part.MODULE)
    if assets.data_dir is None:
        parts.append(Part.DATA)
    return tuple(parts)


def part_names(parts: tuple[str, ...]) -> str:
    """The installed names of ``parts``: ``espeak-ng-emscripten.wasm, espeak-ng-data/``."""
    return ", ".join(EMSCRIPTEN_MODULE if part == Part.MODULE else f"{DATA_DIR}/" for part in parts)


def asset_names(parts: tuple[str, ...]) -> str:
    """The release assets of ``parts``."""
    return ", ".join(MODULE_ASSET if part == Part.MODULE else DATA_ASSET for part in parts)


def integrity(data_hash: hashlib._Hash) -> str:
    """The npm ``integrity`` string (``sha512-<base64>``) of a finished sha512."""
    return "sha512-" + base64.b64encode(data_hash.digest()).decode()


def tree_digest(folder: Path) -> str:
    """sha256 over one line per file below ``folder`` (path, NUL, its sha256), by path."""
    lines: list[tuple[str, str]] = []
    for path in folder.rglob("*"):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            lines.append((path.relative_to(folder).as_posix(), digest.hexdigest()))
    return digest_of(lines)


def digest_of(lines: list[tuple[str, str]]) -> str:
    """sha256 over ``<path> NUL <file sha256> LF`` per file, sorted by path: a tree's digest."""
    digest = hashlib.sha256()
    for path, file_digest in sorted(lines):
        digest.update(f"{path}\0{file_digest}\n".encode())
    return digest.hexdigest()


def remove_stale_staging(folder: Path, before: float | None = None) -> int:
    """Remove staging folders a killed fetch left in ``folder`` (blocking); how many went.

    Only those last changed before ``before`` (default: when this process loaded the
    integration, so a fetch running now is never touched).
    """
    cutoff = PROCESS_STARTED if before is None else before
    removed = 0
    if folder.is_dir():
        for staging in folder.glob(f"{STAGING_PREFIX}*{STAGING_SUFFIX}"):
            if staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging, ignore_errors=True)
                removed += 1
    if removed:
        _LOGGER.info("Removed %d folder(s) of interrupted espeak-ng fetches", removed)
    return removed


def _storage_error(err: OSError, folder: Path) -> FetchStorageError:
    return FetchStorageError(f"cannot write to {folder}: {err.strerror or err}", folder=str(folder))


def make_staging(parent: Path) -> Path:
    """A new staging folder next to the destination (blocking)."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=parent, prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX))
    except OSError as err:
        raise _storage_error(err, parent) from err


class _Download:
    """One asset being written into the staging folder, hashed on the way (blocking methods)."""

    def __init__(self, path: Path, digest: hashlib._Hash) -> None:
        self.path = path
        self.digest = digest
        self.file: IO[bytes] | None = None
        self.size = 0

    def open(self) -> None:
        self.file = self.path.open("wb")

    def write(self, data: bytes) -> None:
        assert self.file is not None
        self.file.write(data)
        self.digest.update(data)
        self.size += len(data)

    def finish(self) -> None:
        assert self.file is not None
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    target: _Download,
    limit: int,
    run_blocking: RunBlocking,
    on_bytes: Callable[[int], None],
    on_size: Callable[[int], None],
) -> None:
    """Stream ``url`` into ``target``; raise FetchError on any failure."""
    name = url.rsplit("/", 1)[-1]

    def check(received: int) -> None:
        if received > limit:
            raise FetchVerificationError(
                f"{name} is larger than {limit} bytes", url=redact_url(url)
            )

    try:
        await run_blocking(target.open)
        async with session.get(url, timeout=HTTP_TIMEOUT) as response:
            if response.status != 200:
                raise FetchConnectionError(
                    f"HTTP {response.status} for {redact_url(url)}", url=redact_url(url)
                )
            if response.content_length is not None:
                on_size(response.content_length)
            await write_batched(response, target.write, run_blocking, on_bytes, check)
            await run_blocking(target.finish)
    except (aiohttp.ClientError, TimeoutError) as err:
        detail = connection_detail(err)
        raise FetchConnectionError(f"{name}: {detail}", url=redact_url(url)) from err
    except OSError as err:
        raise _storage_error(err, target.path.parent) from err


def _unpack_module(archive_path: Path, out: Path) -> None:
    """Write the npm package's ``dist/espeak-ng.wasm`` to ``out`` (blocking)."""
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            member = archive.getmember(MODULE_MEMBER)
            source = archive.extractfile(member) if member.isfile() else None
            if source is None or member.size > MODULE_MAX_BYTES:
                raise FetchVerificationError(f"{MODULE_ASSET}: {MODULE_MEMBER} is not a module")
            data = source.read()
    except (tarfile.TarError, KeyError, EOFError, zlib.error, OSError) as err:
        raise FetchVerificationError(f"{MODULE_ASSET} cannot be unpacked: {err}") from err
    if not data.startswith(WASM_MAGIC):
        raise FetchVerificationError(f"{MODULE_ASSET}: {MODULE_MEMBER} is not WebAssembly")
    _write(out, data)


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
    except OSError as err:
        raise _storage_error(err, path.parent) from err


def _member_path(member: tarfile.TarInfo) -> str | None:
    """The member's path below ``espeak-ng-data/`` (None: the folder itself). Raises if unsafe."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts or path.parts[0] != DATA_DIR:
        raise FetchVerificationError(f"{DATA_ASSET}: unexpected path {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise FetchVerificationError(f"{DATA_ASSET}: {member.name!r} is not a plain file")
    relative = PurePosixPath(*path.parts[1:])
    return None if not relative.parts else relative.as_posix()


def _unpack_data(archive_path: Path, out: Path) -> None:
    """Unpack the data archive into ``out`` and check its tree digest (blocking)."""
    lines: list[tuple[str, str]] = []
    total = 0
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            for member in archive:
                relative = _member_path(member)
                if relative is None or member.isdir():
                    continue
                total += member.size
                if total > DATA_MAX_BYTES or len(lines) >= DATA_MAX_FILES:
                    raise FetchVerificationError(f"{DATA_ASSET} holds more than expected")
                source = archive.extractfile(member)
                data = source.read() if source is not None else b""
                _write(out / relative, data)
                lines.append((relative, hashlib.sha256(data).hexdigest()))
    except FetchError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise FetchVerificationError(f"{DATA_ASSET} cannot be unpacked: {err}") from err
    if (digest := digest_of(lines)) != DATA_TREE_DIGEST:
        raise FetchVerificationError(
            f"{DATA_ASSET} has tree digest {digest}, expected {DATA_TREE_DIGEST}"
        )


def _install(staged: Path, dest: Path) -> None:
    """Move the verified files into ``dest``: the folder at once, else data, then module."""
    try:
        if not dest.exists():
            staged.rename(dest)
            return
        for name in (DATA_DIR, EMSCRIPTEN_MODULE):
            if (staged / name).exists():
                (staged / name).rename(dest / name)
    except OSError as err:
        raise _storage_error(err, dest) from err


def _finish(staging: Path, dest: Path, downloads: dict[str, _Download]) -> None:
    """Verify and unpack what was downloaded, then install it; staging removed (blocking)."""
    try:
        staged = staging / "espeak"
        staged.mkdir()
        if (module := downloads.get(Part.MODULE)) is not None:
            if (got := integrity(module.digest)) != MODULE_INTEGRITY:
                raise FetchVerificationError(
                    f"{MODULE_ASSET} has integrity {got}, expected {MODULE_INTEGRITY}"
                )
            _unpack_module(module.path, staged / EMSCRIPTEN_MODULE)
        if (data := downloads.get(Part.DATA)) is not None:
            _unpack_data(data.path, staged / DATA_DIR)
        _install(staged, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _discard(staging: Path, downloads: dict[str, _Download]) -> None:
    for download in downloads.values():
        download.close()
    shutil.rmtree(staging, ignore_errors=True)


async def _run_in_thread(func: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(func, *args)


async def async_fetch_espeak(
    session: aiohttp.ClientSession,
    base_url: str,
    dest: Path,
    parts: tuple[str, ...],
    *,
    progress: Progress | None = None,
    run_blocking: RunBlocking = _run_in_thread,
) -> None:
    """Fetch, verify and install ``parts`` (``Part.MODULE``, ``Part.DATA``) into ``dest``.

    ``base_url`` is the release's download folder (:func:`release_url`). ``progress(done,
    total)`` is called as bytes arrive. Raises a FetchError subclass; nothing but verified
    files is ever left in ``dest``, and nothing at all of a fetch that failed.
    """
    sizes: dict[str, int] = {Part.MODULE: MODULE_SIZE, Part.DATA: DATA_ARCHIVE_SIZE}
    expected = {part: sizes[part] for part in parts}
    done = 0

    def on_bytes(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, max(done, sum(expected.values())))

    staging: Path = await run_blocking(make_staging, dest.parent)
    downloads: dict[str, _Download] = {}
    try:
        for part in parts:
            asset, digest, limit = (
                (MODULE_ASSET, hashlib.sha512(), MODULE_SIZE)
                if part == Part.MODULE
                else (DATA_ASSET, hashlib.sha256(), DATA_ARCHIVE_MAX_BYTES)
            )
            target = downloads[part] = _Download(staging / asset, digest)
            url = base_url + asset

            def on_size(size: int, part: str = part) -> None:
                expected[part] = size

            _LOGGER.debug("Fetching %s", redact_url(url))
            await _download(session, url, target, limit, run_blocking, on_bytes, on_size)
    except asyncio.CancelledError:
        _discard(staging, downloads)  # no await while cancelled: two files, one folder
        raise
    except BaseException:
        await run_blocking(_discard, staging, downloads)
        raise
    # One job: it removes the staging folder itself, also when this task is cancelled meanwhile.
    await run_blocking(_finish, staging, dest, downloads)
    _LOGGER.info("Installed espeak-ng (%s) into %s", part_names(parts), dest)
