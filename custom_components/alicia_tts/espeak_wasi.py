"""espeak-ng built for WASI, run by wasmtime: piper's phonemes without a compiled extension.

Pure: imports nothing from Home Assistant. On musl (Home Assistant OS, Container) piper's
compiled ``espeakbridge`` cannot load; this runner gives the same clauses from the same
espeak-ng commit, built as a WASI reactor module by ``script/build_espeak_wasi`` (the module's
exports are the project's ``script/espeak_wasi/alicia_espeak.c``).

- One long-lived instance per runner. The compiled module is shared by every runner of the
  process (compiled once per file), and can be kept on disk between runs (``cache_dir``).
- espeak-ng's data directory is the only thing the module sees: preopened read-only at
  ``/espeak-ng-data``. No environment, no arguments, no standard streams.
- ``clauses()`` is piper's bridge loop (``espeakbridge.get_phonemes``): one
  ``espeak_TextToPhonemesWithTerminator`` call per clause in IPA mode; espeak's terminator
  flags are masked to their low 20 bits and mapped to ``. , ? ! : ;`` (any other value,
  such as the one an ellipsis gives, is no terminator); the clause ends a sentence when the
  sentence bit is set.
- Text goes in as UTF-8 (at most :data:`MAX_TEXT_BYTES`); NUL characters and unpaired
  surrogates, which the bridge refuses with an exception, are dropped.
- The module's memory is capped (:data:`MEMORY_LIMIT`). A trap inside espeak-ng raises
  :class:`EspeakWasiError`, and the next call starts a fresh instance.
"""

from __future__ import annotations  # noqa: TID251 - the musl proof's CPython 3.13 imports it

import atexit
from collections.abc import Callable
from dataclasses import dataclass
import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path
import platform
import struct
import tempfile
import threading
from typing import TYPE_CHECKING, Any, Final

from .phonemes import Clause, PhonemizerError

if TYPE_CHECKING:
    import wasmtime

NAME: Final = "wasi"
ABI_VERSION: Final = 1  # alicia_abi_version() of the modules this code can drive
GUEST_DATA_DIR: Final = "/espeak-ng-data"
MAX_TEXT_BYTES: Final = 256 * 1024  # one clauses() call, UTF-8
MAX_VOICE_BYTES: Final = 128
MEMORY_LIMIT: Final = 256 * 1024 * 1024  # the module's linear memory (espeak needs ~10 MiB)

# espeak-ng's clause flags (src/libespeak-ng/translate.h), as piper's bridge reads them.
CLAUSE_FLAGS_MASK: Final = 0x000FFFFF
CLAUSE_TYPE_SENTENCE: Final = 0x00080000
_INTONATION_COMMA: Final = 0x00001000
_INTONATION_QUESTION: Final = 0x00002000
_INTONATION_EXCLAMATION: Final = 0x00003000
_TYPE_CLAUSE: Final = 0x00040000
TERMINATORS: Final[dict[int, str]] = {
    40 | CLAUSE_TYPE_SENTENCE: ".",  # CLAUSE_PERIOD
    20 | _INTONATION_COMMA | _TYPE_CLAUSE: ",",  # CLAUSE_COMMA
    40 | _INTONATION_QUESTION | CLAUSE_TYPE_SENTENCE: "?",  # CLAUSE_QUESTION
    45 | _INTONATION_EXCLAMATION | CLAUSE_TYPE_SENTENCE: "!",  # CLAUSE_EXCLAMATION
    30 | _TYPE_CLAUSE: ":",  # CLAUSE_COLON
    30 | _INTONATION_COMMA | _TYPE_CLAUSE: ";",  # CLAUSE_SEMICOLON
}

_EXPORTS: Final = (
    "memory",
    "_initialize",
    "alicia_abi_version",
    "alicia_malloc",
    "alicia_free",
    "alicia_init",
    "alicia_set_voice",
    "alicia_clause",
    "alicia_status_message",
    "alicia_espeak_version",
)
_SLOTS: Final = struct.Struct("<iii")  # cursor, flags, phonemes pointer (wasm32)
_MESSAGE_BYTES: Final = 512
_MIN_BUFFER: Final = 4096
_NO_LIBGCC: Final = (
    "wasmtime cannot be imported: libgcc_s.so.1 missing (wasmtime's musl wheel needs the "
    "system's libgcc: apk add libgcc)"
)
# How `import wasmtime` fails: ImportError (not installed), OSError (its shared library cannot
# load, e.g. no libgcc_s.so.1 on musl), RuntimeError (unsupported platform or architecture).
WASMTIME_IMPORT_ERRORS: Final = (ImportError, OSError, RuntimeError)
# Named tuples rather than `except A, B:`: the musl proof's CPython 3.13 imports this module.
_SPEC_ERRORS: Final = (ImportError, ValueError)


class EspeakWasiError(PhonemizerError):
    """The WASI espeak-ng cannot run: module, data or wasmtime missing or failing."""


def clause_terminator(flags: int) -> tuple[str, bool]:
    """espeak-ng's terminator flags as piper's bridge reports them: (punctuation, sentence end)."""
    flags &= CLAUSE_FLAGS_MASK
    return TERMINATORS.get(flags, ""), (flags & CLAUSE_TYPE_SENTENCE) == CLAUSE_TYPE_SENTENCE


def prepare_text(text: str) -> bytes:
    """The NUL-terminated UTF-8 the module reads; raises PhonemizerError when it is too long."""
    data = text.replace("\0", "").encode("utf-8", errors="ignore")
    if len(data) > MAX_TEXT_BYTES:
        raise PhonemizerError(
            f"the text has {len(data)} bytes, more than the phonemizer takes ({MAX_TEXT_BYTES})"
        )
    return data + b"\0"


def default_data_dir() -> Path | None:
    """espeak-ng's data inside an installed piper-tts, found without importing piper."""
    try:
        spec = importlib.util.find_spec("piper")
    except _SPEC_ERRORS:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "espeak-ng-data"
    return data if data.is_dir() else None


def wasmtime_import_problem(err: BaseException) -> str:
    """Why wasmtime cannot be imported, from the import's error: the repair issue's cause.

    Both WebAssembly runners report a failed import with this text (it reaches the
    "piper_unavailable" repair issue through the engine). A missing ``libgcc_s.so.1``
    (wasmtime's musl wheel needs the system's libgcc) is named as such; ``script/musl_proof``
    feeds this the real error of a musl system without it.
    """
    if "libgcc_s" in str(err):
        return _NO_LIBGCC
    if isinstance(err, OSError):
        return f"wasmtime cannot be imported: its library fails: {err}"
    return f"wasmtime cannot be imported: {err}"


def import_wasmtime() -> Any:
    """The wasmtime package; raises EspeakWasiError naming why it cannot be imported."""
    try:
        import wasmtime  # noqa: PLC0415 - optional: only the WebAssembly runners need it
    except WASMTIME_IMPORT_ERRORS as err:
        raise EspeakWasiError(wasmtime_import_problem(err)) from err
    return wasmtime


@dataclass(frozen=True, slots=True)
class _Compiled:
    module: wasmtime.Module
    sha256: str


#: One engine per process (modules are shared between stores), made on first use.
_ENGINES: dict[None, wasmtime.Engine] = {}
_COMPILED: dict[tuple[str, int, int], _Compiled] = {}
_COMPILE_LOCK = threading.Lock()


def _engine(wasmtime_module: Any) -> wasmtime.Engine:
    engine = _ENGINES.get(None)
    if engine is None:
        engine = _ENGINES[None] = wasmtime_module.Engine()
    return engine


@atexit.register
def _release_compiled() -> None:
    """Drop the shared module and engine while wasmtime can still free them (at exit)."""
    _COMPILED.clear()
    _ENGINES.clear()


def _wasmtime_version() -> str:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def compile_module(wasm_path: Path, cache_dir: Path | None = None) -> _Compiled:
    """Compile the module once per file and process (optionally kept in ``cache_dir``).

    A file in ``cache_dir`` is wasmtime's native code for this module, wasmtime version and
    machine; it is trusted like the module itself, so the folder must be the integration's own.
    """
    wasmtime_module = import_wasmtime()
    try:
        stat = wasm_path.stat()
    except OSError as err:
        raise EspeakWasiError(f"the WASI espeak-ng module cannot be read: {err}") from err
    key = (str(wasm_path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _COMPILE_LOCK:
        if (compiled := _COMPILED.get(key)) is not None:
            return compiled
        engine = _engine(wasmtime_module)
        try:
            wasm = wasm_path.read_bytes()
        except OSError as err:
            raise EspeakWasiError(f"the WASI espeak-ng module cannot be read: {err}") from err
        digest = hashlib.sha256(wasm).hexdigest()
        cached = (
            cache_dir / f"espeak-ng-{digest[:16]}-wasmtime{_wasmtime_version()}-"
            f"{platform.machine()}.cwasm"
            if cache_dir is not None
            else None
        )
        module = None
        if cached is not None and cached.is_file():
            # Read, not deserialize_file(): that maps the file, and a file changed while
            # mapped would crash the process (SIGBUS) instead of raising.
            unreadable = (OSError, wasmtime_module.WasmtimeError)
            try:
                module = wasmtime_module.Module.deserialize(engine, cached.read_bytes())
            except unreadable:
                module = None  # another wasmtime build or a damaged file: compile again
        if module is None:
            try:
                module = wasmtime_module.Module(engine, wasm)
            except wasmtime_module.WasmtimeError as err:
                raise EspeakWasiError(
                    f"{wasm_path.name} is not a usable WebAssembly module: {err}"
                ) from err
            if cached is not None:
                _store_compiled(cached, bytes(module.serialize()))
        compiled = _Compiled(module, digest)
        _COMPILED[key] = compiled
        return compiled


def _store_compiled(path: Path, data: bytes) -> None:
    """Write a compiled module atomically; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".cwasm-")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    except OSError:
        return


class _Instance:
    """One instantiated module with espeak-ng initialized on the data directory."""

    def __init__(
        self, wasmtime_module: Any, compiled: _Compiled, data_dir: Path, memory_limit: int
    ) -> None:
        w = wasmtime_module
        engine = _engine(w)
        wasi = w.WasiConfig()
        wasi.preopen_dir(str(data_dir), GUEST_DATA_DIR, fs_mutable=False)
        self.store: wasmtime.Store = w.Store(engine)
        self.store.set_wasi(wasi)
        self.store.set_limits(memory_size=memory_limit)
        linker = w.Linker(engine)
        linker.define_wasi()
        instance = linker.instantiate(self.store, compiled.module)
        exports = instance.exports(self.store)
        missing = [name for name in _EXPORTS if name not in exports]
        if missing:
            raise EspeakWasiError(
                f"not Alicia's espeak-ng module (exports missing: {', '.join(missing)})"
            )
        memory = exports["memory"]
        if not isinstance(memory, w.Memory):
            raise EspeakWasiError("not Alicia's espeak-ng module (no memory export)")
        self.memory: wasmtime.Memory = memory
        self.functions: dict[str, Callable[..., Any]] = {}
        for name in _EXPORTS[1:]:
            function = exports[name]
            if not isinstance(function, w.Func):
                raise EspeakWasiError(f"not Alicia's espeak-ng module ({name} is no function)")
            self.functions[name] = function
        self.call("_initialize")
        if (abi := self.call("alicia_abi_version")) != ABI_VERSION:
            raise EspeakWasiError(
                f"the espeak-ng module speaks interface {abi}, this code {ABI_VERSION}: "
                "rebuild it with script/build_espeak_wasi"
            )
        self.slots = self._malloc(_SLOTS.size)
        self.buffer = 0
        self.capacity = 0
        status = self.call("alicia_init", self.put_string(GUEST_DATA_DIR.encode() + b"\0"))
        if status != 0:
            raise EspeakWasiError(
                f"espeak-ng cannot load its data from {data_dir.name}: {self.message(status)}"
            )
        self.espeak_version = self.read_string(self.call("alicia_espeak_version"), 64)

    def call(self, name: str, *args: int) -> int:
        """Call an export; returns its integer result (0 for none)."""
        result = self.functions[name](self.store, *args)
        return int(result) if result is not None else 0

    def _malloc(self, size: int) -> int:
        pointer = self.call("alicia_malloc", size)
        if pointer == 0:
            raise EspeakWasiError(f"espeak-ng's memory is full ({size} bytes asked)")
        return pointer

    def put_string(self, data: bytes) -> int:
        """Copy ``data`` into the module's reusable text buffer; returns its address."""
        if len(data) > self.capacity:
            if self.buffer:
                self.call("alicia_free", self.buffer)
                self.buffer = self.capacity = 0
            capacity = max(_MIN_BUFFER, 1 << (len(data) - 1).bit_length())
            self.buffer = self._malloc(capacity)
            self.capacity = capacity
        self.memory.write(self.store, data, self.buffer)
        return self.buffer

    def read(self, pointer: int, length: int) -> bytes:
        """``length`` bytes at ``pointer``, checked against the memory's size."""
        if pointer <= 0 or length < 0 or pointer + length > self.memory.data_len(self.store):
            raise EspeakWasiError("espeak-ng returned a pointer outside its memory")
        return bytes(self.memory.read(self.store, pointer, pointer + length))

    def read_string(self, pointer: int, limit: int) -> str:
        """A NUL-terminated string of at most ``limit`` bytes."""
        size = self.memory.data_len(self.store)
        if pointer <= 0 or pointer >= size:
            return ""
        raw = bytes(self.memory.read(self.store, pointer, min(size, pointer + limit)))
        return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")

    def message(self, status: int) -> str:
        """espeak-ng's text for a status code."""
        pointer = self._malloc(_MESSAGE_BYTES)
        try:
            self.call("alicia_status_message", status, pointer, _MESSAGE_BYTES)
            return self.read_string(pointer, _MESSAGE_BYTES) or f"status {status:#x}"
        finally:
            self.call("alicia_free", pointer)

    def clauses(self, data: bytes) -> list[Clause]:
        """Piper's bridge loop over NUL-terminated UTF-8 ``data``."""
        start = self.put_string(data)
        end = start + len(data)
        self.memory.write(self.store, _SLOTS.pack(start, 0, 0), self.slots)
        result: list[Clause] = []
        cursor = start
        # Every clause consumes text; the bound only stops a module that would not.
        for _ in range(len(data) + 1):
            length = self.call("alicia_clause", self.slots, self.slots + 4, self.slots + 8)
            cursor, flags, pointer = _SLOTS.unpack(self.read(self.slots, _SLOTS.size))
            if length < 0:
                break
            phonemes = self.read(pointer, length).decode("utf-8", errors="replace")
            terminator, end_of_sentence = clause_terminator(flags)
            result.append((phonemes, terminator, end_of_sentence))
            if cursor == 0:
                break
            if not start <= cursor < end:
                raise EspeakWasiError("espeak-ng moved its text cursor outside the text")
        else:
            raise EspeakWasiError("espeak-ng did not reach the end of the text")
        return result


class WasiRunner:
    """espeak-ng as a WASI module under wasmtime: an :class:`phonemes.EspeakRunner`."""

    name = NAME

    def __init__(
        self,
        wasm_path: Path | str,
        data_dir: Path | str,
        *,
        cache_dir: Path | str | None = None,
        memory_limit: int = MEMORY_LIMIT,
    ) -> None:
        """Compile (once per process) and start the module on ``data_dir`` (blocking).

        Raises EspeakWasiError when the module, the data or wasmtime is missing or fails.
        """
        self.wasm_path = Path(wasm_path)
        self.data_dir = Path(data_dir)
        if not self.wasm_path.is_file():
            raise EspeakWasiError(f"the WASI espeak-ng module {self.wasm_path.name} is missing")
        if not self.data_dir.is_dir():
            raise EspeakWasiError(f"espeak-ng's data directory {self.data_dir.name} is missing")
        if not (self.data_dir / "phontab").is_file():
            raise EspeakWasiError(f"{self.data_dir.name} is not espeak-ng's data (no phontab)")
        self.memory_limit = memory_limit
        self._wasmtime = import_wasmtime()
        self._compiled = compile_module(
            self.wasm_path, Path(cache_dir) if cache_dir is not None else None
        )
        self._lock = threading.RLock()
        self._voice: str | None = None
        self._instance: _Instance | None = None
        self._instance = self._start()

    @property
    def module_sha256(self) -> str:
        """The module file's sha256 (compare with its build manifest)."""
        return self._compiled.sha256

    @property
    def espeak_version(self) -> str:
        """espeak-ng's own version string (``1.52.0.1`` at the pinned commit)."""
        with self._lock:
            return self._running().espeak_version

    def _start(self) -> _Instance:
        try:
            return _Instance(self._wasmtime, self._compiled, self.data_dir, self.memory_limit)
        except (self._wasmtime.WasmtimeError, self._wasmtime.Trap) as err:
            raise EspeakWasiError(f"the WASI espeak-ng module failed to start: {err}") from err

    def _running(self) -> _Instance:
        if self._instance is None:
            self._voice = None
            self._instance = self._start()
        return self._instance

    def _failed(self, err: Exception) -> EspeakWasiError:
        """A trap: drop the instance (espeak's state is unknown); the next call starts anew."""
        self._instance = None
        self._voice = None
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return EspeakWasiError(f"espeak-ng failed inside the WASI module: {first_line}")

    def set_voice(self, voice: str) -> None:
        """Select an espeak-ng voice (cached); PhonemizerError when it does not exist."""
        with self._lock:
            if voice == self._voice and self._instance is not None:
                return
            name = voice.encode("utf-8", errors="strict")
            if not name or b"\0" in name or len(name) > MAX_VOICE_BYTES:
                raise PhonemizerError(f"espeak-ng has no voice {voice!r}")
            instance = self._running()
            try:
                status = instance.call("alicia_set_voice", instance.put_string(name + b"\0"))
            except (self._wasmtime.WasmtimeError, self._wasmtime.Trap) as err:
                raise self._failed(err) from err
            if status != 0:
                self._voice = None
                raise PhonemizerError(f"espeak-ng has no voice {voice!r}")
            self._voice = voice

    def clauses(self, text: str) -> list[Clause]:
        """Clauses of ``text``: what ``piper.espeakbridge.get_phonemes`` returns."""
        data = prepare_text(text)
        with self._lock:
            instance = self._running()
            if self._voice is None:
                raise PhonemizerError("no espeak-ng voice is selected")
            try:
                return instance.clauses(data)
            except (self._wasmtime.WasmtimeError, self._wasmtime.Trap) as err:
                raise self._failed(err) from err

    def close(self) -> None:
        """Release the instance (the compiled module stays cached for the process)."""
        with self._lock:
            self._instance = None
            self._voice = None
