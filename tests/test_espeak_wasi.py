"""The WASI espeak-ng runner: piper's clauses and phonemes without the compiled bridge.

The module itself is built by ``script/build_espeak_wasi`` (it needs the espeak-ng source and
a WebAssembly tool chain, which CI does not have). The tests that run it look for it in
``$ALICIA_ESPEAK_WASI`` or ``.cache/espeak-wasi/espeak-ng.wasm`` and are skipped, with the
reason, when it is not there. Everything else (terminator mapping, input bounds, errors for a
missing module, data or wasmtime, the accuracy scorer) runs everywhere.
"""

import builtins
from collections.abc import Iterator
import json
import os
from pathlib import Path
import sys
from typing import Any

import pytest

from custom_components.alicia_tts import espeak_emscripten, espeak_wasi
from custom_components.alicia_tts.espeak_wasi import (
    MAX_TEXT_BYTES,
    EspeakWasiError,
    WasiRunner,
    clause_terminator,
    default_data_dir,
    prepare_text,
)
from custom_components.alicia_tts.phonemes import BridgeRunner, Clause, Phonemizer, PhonemizerError

from .phonemizer_accuracy import (
    SENTENCE_BREAK,
    VoiceView,
    corpus_languages,
    id_mapped,
    joe_view,
    levenshtein,
    load_corpus,
    report,
    score_language,
)

ROOT = Path(__file__).resolve().parent.parent
ENV_MODULE = "ALICIA_ESPEAK_WASI"
DEFAULT_MODULE = ROOT / ".cache" / "espeak-wasi" / "espeak-ng.wasm"
PINNED_COMMIT = "724808c5a83f9ef95fdd0db886ba7ba537ff224a"

# Texts beyond the corpus where the clause loop itself matters.
EDGE_TEXTS = [
    "",
    " ",
    "...",
    "Wait... what?!",
    "Really?!?! No!!",
    "One. Two? Three! Four, five; six: seven",
    "A sentence without a terminator",
    "Ends with an ellipsis...",
    '"Quoted," she said. (Parenthesised.)',
    "Line one.\nLine two.\n\nParagraph.",
    "Tab\tseparated\twords.",
    "$12.50; Mr. and Mrs. Smith.",
    "Zürich, Köln, São Paulo, Москва, 東京.",
    "Emoji 🙂 in a sentence.",
    "word " * 1000,
]


# --- without the module ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (0x00080028, (".", True)),  # CLAUSE_PERIOD
        (0x00041014, (",", False)),  # CLAUSE_COMMA
        (0x00082028, ("?", True)),  # CLAUSE_QUESTION
        (0x0008302D, ("!", True)),  # CLAUSE_EXCLAMATION
        (0x0004001E, (":", False)),  # CLAUSE_COLON
        (0x0004101E, (";", False)),  # CLAUSE_SEMICOLON
        (0x0004901E, ("", False)),  # ellipsis: semicolon + optional space: no terminator
        (0x00090028, ("", True)),  # CLAUSE_EOF: the end, a sentence, no punctuation
        (0x00080046, ("", True)),  # CLAUSE_PARAGRAPH
        (0x00004000, ("", False)),  # CLAUSE_NONE
        (0x00280028, (".", True)),  # high flags (speak punctuation name) are masked off
        (0x00C41014, (",", False)),  # likewise for a comma
        (0x00040004 | 0x1000, ("", False)),  # CLAUSE_SHORTCOMMA is not a comma for piper
    ],
)
def test_terminator_flags_as_piper_reads_them(flags: int, expected: tuple[str, bool]) -> None:
    """espeak's flags map to '. , ? ! : ;' and the sentence bit exactly as in piper's bridge."""
    assert clause_terminator(flags) == expected


def test_text_is_bounded_utf8() -> None:
    """UTF-8 with a NUL at the end; NULs and lone surrogates dropped; too long refused."""
    assert prepare_text("Grüße") == "Grüße".encode() + b"\0"
    assert prepare_text("a\0b\ud800c") == b"abc\0"
    assert prepare_text("x" * MAX_TEXT_BYTES) == b"x" * MAX_TEXT_BYTES + b"\0"
    with pytest.raises(PhonemizerError, match="more than the phonemizer takes"):
        prepare_text("é" * (MAX_TEXT_BYTES // 2 + 1))


def test_missing_module(tmp_path: Path) -> None:
    """No module file: a typed error naming it (a PhonemizerError for the engine)."""
    data = tmp_path / "espeak-ng-data"
    data.mkdir()
    (data / "phontab").write_bytes(b"")
    with pytest.raises(EspeakWasiError, match=r"module missing\.wasm is missing") as caught:
        WasiRunner(tmp_path / "missing.wasm", data)
    assert isinstance(caught.value, PhonemizerError)


def test_missing_or_wrong_data(tmp_path: Path) -> None:
    """No data directory, or one that is not espeak-ng's: typed errors saying which."""
    module = tmp_path / "espeak-ng.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")
    with pytest.raises(EspeakWasiError, match="data directory nowhere is missing"):
        WasiRunner(module, tmp_path / "nowhere")
    with pytest.raises(EspeakWasiError, match="not espeak-ng's data"):
        WasiRunner(module, tmp_path)


def test_not_a_module(tmp_path: Path) -> None:
    """A file that is no WebAssembly: the error says so instead of a wasmtime traceback."""
    pytest.importorskip("wasmtime")
    data = tmp_path / "espeak-ng-data"
    data.mkdir()
    (data / "phontab").write_bytes(b"")
    module = tmp_path / "espeak-ng.wasm"
    module.write_bytes(b"this is not wasm")
    with pytest.raises(EspeakWasiError, match="not a usable WebAssembly module"):
        WasiRunner(module, data)


def test_module_without_our_exports(tmp_path: Path) -> None:
    """A valid module that is not ours is refused by name, not by a crash."""
    pytest.importorskip("wasmtime")
    data = tmp_path / "espeak-ng-data"
    data.mkdir()
    (data / "phontab").write_bytes(b"")
    module = tmp_path / "other.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")  # the empty module
    with pytest.raises(EspeakWasiError, match="not Alicia's espeak-ng module"):
        WasiRunner(module, data)


def _blocked_import(error: Exception) -> Any:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "wasmtime":
            raise error
        return real_import(name, *args, **kwargs)

    return fake_import


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            OSError(
                "Error loading shared library libgcc_s.so.1: No such file or directory "
                "(needed by /site-packages/wasmtime/linux-x86_64/_libwasmtime.so)"
            ),
            "wasmtime cannot be imported: libgcc_s.so.1 missing",
        ),
        (
            OSError("libgcc_s.so.1: cannot open shared object file: No such file or directory"),
            "wasmtime cannot be imported: libgcc_s.so.1 missing",
        ),
        (OSError("_libwasmtime.so: invalid ELF header"), "its library fails: .*invalid ELF"),
        (ImportError("No module named 'wasmtime'"), "wasmtime cannot be imported: No module"),
        (RuntimeError("unsupported architecture for wasmtime: riscv64"), "riscv64"),
    ],
)
def test_wasmtime_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    """Each way wasmtime fails to import becomes an EspeakWasiError with its cause."""
    monkeypatch.delitem(sys.modules, "wasmtime", raising=False)
    monkeypatch.setattr(builtins, "__import__", _blocked_import(error))
    with pytest.raises(EspeakWasiError, match=message):
        espeak_wasi.import_wasmtime()


# What musl's loader says when `import wasmtime` finds no libgcc_s.so.1 (captured for real by
# script/musl_proof's libgcc-missing check; the site-packages path shortened).
MUSL_NO_LIBGCC = (
    "Error loading shared library libgcc_s.so.1: No such file or directory "
    "(needed by /site-packages/wasmtime/linux-x86_64/_libwasmtime.so)"
)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (OSError(MUSL_NO_LIBGCC), espeak_wasi._NO_LIBGCC),
        (
            OSError("libgcc_s.so.1: cannot open shared object file: No such file or directory"),
            espeak_wasi._NO_LIBGCC,
        ),
        (
            OSError("_libwasmtime.so: invalid ELF header"),
            "wasmtime cannot be imported: its library fails: _libwasmtime.so: invalid ELF header",
        ),
        (
            ImportError("No module named 'wasmtime'"),
            "wasmtime cannot be imported: No module named 'wasmtime'",
        ),
        (RuntimeError("unsupported platform"), "wasmtime cannot be imported: unsupported platform"),
    ],
)
def test_wasmtime_import_problem(error: Exception, cause: str) -> None:
    """The pure classifier: an import error becomes the repair issue's cause text."""
    assert espeak_wasi.wasmtime_import_problem(error) == cause
    assert isinstance(error, espeak_wasi.WASMTIME_IMPORT_ERRORS)


def test_both_runners_name_a_missing_libgcc_alike(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Emscripten runner reports musl's real libgcc error with the same cause as WASI's."""

    def no_libgcc() -> None:
        raise OSError(MUSL_NO_LIBGCC)

    module = tmp_path / "espeak-ng.wasm"
    module.write_bytes(b"\0asm")
    monkeypatch.setattr(espeak_emscripten, "_load_wasmtime", no_libgcc)
    with pytest.raises(espeak_emscripten.EspeakEmscriptenError) as caught:
        espeak_emscripten.EmscriptenRunner(module)
    assert str(caught.value) == espeak_wasi._NO_LIBGCC
    assert caught.value.cause == "wasmtime"


def test_wasmtime_missing_at_construction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The runner reports a missing wasmtime only after the cheaper file checks pass."""
    module = tmp_path / "espeak-ng.wasm"
    module.write_bytes(b"\0asm\x01\0\0\0")
    (tmp_path / "phontab").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "wasmtime", None)
    with pytest.raises(EspeakWasiError, match="wasmtime cannot be imported"):
        WasiRunner(module, tmp_path)


def test_levenshtein_and_id_mapping() -> None:
    """The scorer's distance is over code points; unknown phonemes are filtered; ‖ breaks."""
    assert levenshtein("", "") == 0
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("abc", "") == 3
    assert levenshtein("ə", "ɐ") == 1
    id_map = {"a": [1], "b": [2], " ": [3]}
    assert id_mapped([["a", "x", "b"], [" ", "a"]], id_map) == f"ab{SENTENCE_BREAK} a"


class TableRunner:
    """A runner answering from a table of clauses."""

    name = "table"

    def __init__(self, answers: dict[str, list[Clause]]) -> None:
        self.answers = answers

    def set_voice(self, voice: str) -> None:
        assert voice == "en-us"

    def clauses(self, text: str) -> list[Clause]:
        return self.answers[text]


def test_scorer_counts_exactness_and_phoneme_errors() -> None:
    """One line equal, one with a wrong phoneme, one with a lost sentence break."""
    view = VoiceView({"a": [1], "b": [2], "c": [3], ".": [4]})
    reference = TableRunner(
        {
            "one": [("ab", ".", True)],
            "two": [("abc", ".", True)],
            "three": [("a", ".", True), ("b", ".", True)],
        }
    )
    candidate = TableRunner(
        {
            "one": [("ab", ".", True)],
            "two": [("abb", ".", True)],
            "three": [("a", ".", False), ("b", ".", True)],
        }
    )
    score = score_language(
        Phonemizer(candidate), Phonemizer(reference), "en", view, ["one", "two", "three"]
    )
    assert [result.exact for result in score.results] == [True, False, False]
    assert score.exact_rate == pytest.approx(1 / 3)
    # reference lengths 3 + 4 + 5 (with ‖), distances 0 + 1 + 1 (‖ dropped)
    assert score.phoneme_error_rate == pytest.approx(2 / 12)
    assert "1/3 exact" in report({"en": score})
    assert "candidate: abb." in report({"en": score})


def test_corpus_is_ours_and_large_enough() -> None:
    """English has at least 300 lines, the others 15; no line twice."""
    languages = corpus_languages()
    assert languages[0] == "en"
    assert {"en", "de", "fr", "es"} <= set(languages)
    for language in languages:
        lines = load_corpus(language)
        assert len(lines) >= (300 if language == "en" else 15), language
        assert len(set(lines)) == len(lines), language


# --- with the module -----------------------------------------------------------------------


def _module_path() -> Path:
    configured = os.environ.get(ENV_MODULE)
    return Path(configured) if configured else DEFAULT_MODULE


@pytest.fixture(name="module_path", scope="module")
def fixture_module_path() -> Path:
    """The built module, or a skip saying how to get one."""
    path = _module_path()
    if not path.is_file():
        pytest.skip(
            f"no WASI espeak-ng module at {path} (${ENV_MODULE} or the default path): build it "
            "with script/build_espeak_wasi SRC (espeak-ng source at the pinned commit)"
        )
    pytest.importorskip("wasmtime", reason="wasmtime is not installed")
    return path


@pytest.fixture(name="data_dir", scope="module")
def fixture_data_dir() -> Path:
    """piper-tts's espeak-ng data (the data the bridge uses)."""
    data = default_data_dir()
    if data is None:
        pytest.skip("piper-tts (with its espeak-ng-data) is not installed")
    return data


@pytest.fixture(name="runner", scope="module")
def fixture_runner(module_path: Path, data_dir: Path) -> Iterator[WasiRunner]:
    """One WASI runner for the module's tests (as the engine keeps one)."""
    runner = WasiRunner(module_path, data_dir)
    yield runner
    runner.close()


@pytest.fixture(name="bridge", scope="module")
def fixture_bridge(data_dir: Path) -> BridgeRunner:
    """piper's compiled bridge, the reference."""
    return BridgeRunner(str(data_dir))


@pytest.fixture(name="view", scope="module")
def fixture_view() -> VoiceView:
    """The joe voice's id map."""
    return joe_view()


@pytest.mark.parametrize("language", corpus_languages())
def test_corpus_is_exact(
    runner: WasiRunner, bridge: BridgeRunner, view: VoiceView, language: str
) -> None:
    """Every corpus sentence gives the bridge's phonemes, sentence breaks included."""
    score = score_language(Phonemizer(runner), Phonemizer(bridge), language, view)
    assert score.exact_rate == 1.0, report({language: score}, show=10)
    assert score.phoneme_error_rate == 0.0


def test_clauses_equal_the_bridge(runner: WasiRunner, bridge: BridgeRunner) -> None:
    """Clause by clause (phonemes, terminator, sentence end), corpus and edge cases alike."""
    for voice, texts in (
        ("en-us", [*EDGE_TEXTS, *load_corpus("en")]),
        ("de", load_corpus("de")),
        ("fr", load_corpus("fr")),
        ("es", load_corpus("es")),
    ):
        runner.set_voice(voice)
        bridge.set_voice(voice)
        for text in texts:
            assert runner.clauses(text) == bridge.clauses(text), (voice, text[:80])


def test_voice_switches_and_unknown_voice(runner: WasiRunner, bridge: BridgeRunner) -> None:
    """Switching voices back and forth changes nothing; an unknown voice is a typed error."""
    text = "The front door is open."
    runner.set_voice("en-us")
    english = runner.clauses(text)
    runner.set_voice("de")
    assert runner.clauses(text) != english
    runner.set_voice("en-us")
    assert runner.clauses(text) == english
    with pytest.raises(PhonemizerError, match="no voice"):
        runner.set_voice("xx-not-a-voice")
    with pytest.raises(PhonemizerError, match="no voice"):
        runner.set_voice("")
    runner.set_voice("en-us")
    bridge.set_voice("en-us")
    assert runner.clauses(text) == bridge.clauses(text)


def test_text_with_nul_and_too_long(runner: WasiRunner) -> None:
    """A NUL does not cut the text short; text over the bound is refused."""
    runner.set_voice("en-us")
    assert runner.clauses("Hello\0 world.") == runner.clauses("Hello world.")
    with pytest.raises(PhonemizerError, match="more than the phonemizer takes"):
        runner.clauses("a" * (MAX_TEXT_BYTES + 1))


def test_recovers_after_a_trap(runner: WasiRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trap inside the module is reported, and the next call runs on a fresh instance."""
    import wasmtime

    runner.set_voice("en-us")
    expected = runner.clauses("Lights on.")
    instance = runner._instance
    assert instance is not None

    def trap(*_args: object) -> int:
        raise wasmtime.Trap("simulated out of bounds memory access")

    monkeypatch.setitem(instance.functions, "alicia_clause", trap)
    with pytest.raises(EspeakWasiError, match="simulated out of bounds"):
        runner.clauses("Lights on.")
    runner.set_voice("en-us")
    assert runner.clauses("Lights on.") == expected
    assert runner._instance is not instance


def test_reports_versions_and_matches_its_manifest(runner: WasiRunner, module_path: Path) -> None:
    """espeak-ng reports the pinned version; the build manifest names this very file."""
    assert runner.espeak_version == "1.52.0.1"
    manifest_path = module_path.with_name(module_path.name + ".json")
    if not manifest_path.is_file():
        pytest.skip(f"no build manifest next to {module_path}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["sha256"] == runner.module_sha256
    assert manifest["espeak_ng_commit"] == PINNED_COMMIT
    assert all(name.startswith("wasi_snapshot_preview1.") for name in manifest["imports"])


def test_compiled_module_cache(
    module_path: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a cache folder the compiled module is kept on disk and used by a new process."""
    monkeypatch.setattr(espeak_wasi, "_COMPILED", {})
    first = WasiRunner(module_path, data_dir, cache_dir=tmp_path)
    cached = list(tmp_path.glob("*.cwasm"))
    assert len(cached) == 1
    monkeypatch.setattr(espeak_wasi, "_COMPILED", {})  # as if the process had restarted
    second = WasiRunner(module_path, data_dir, cache_dir=tmp_path)
    first.set_voice("en-us")
    second.set_voice("en-us")
    assert first.clauses("Cached.") == second.clauses("Cached.")
    cached[0].write_bytes(b"damaged")  # a broken cache file is compiled over, not fatal
    monkeypatch.setattr(espeak_wasi, "_COMPILED", {})
    third = WasiRunner(module_path, data_dir, cache_dir=tmp_path)
    third.set_voice("en-us")
    assert third.clauses("Cached.") == first.clauses("Cached.")


def test_data_that_espeak_cannot_load(module_path: Path, tmp_path: Path) -> None:
    """A data folder with a phontab but nothing else: espeak-ng's own reason, typed."""
    (tmp_path / "phontab").write_bytes(b"")
    with pytest.raises(EspeakWasiError, match=r"cannot load its data from .*No such file"):
        WasiRunner(module_path, tmp_path)
