"""The Emscripten espeak-ng runner: espeak's clause rules, accuracy against piper's bridge, errors.

The runner needs the npm package ``espeak-ng`` 1.0.2 (fetched by ``script/fetch_espeak_npm``
into ``.cache/espeak-npm/``, or found where ``$ALICIA_ESPEAK_NPM`` points) and wasmtime; the
reference is piper's compiled bridge (glibc). Tests that need one of them skip, saying which.
"""

from collections.abc import Generator
import importlib.util
import itertools
import os
from pathlib import Path
import random
import sys
import threading
import time

import pytest

from custom_components.alicia_tts import espeak_emscripten
from custom_components.alicia_tts.espeak_clauses import (
    CLAUSE_COMMA,
    CLAUSE_NONE,
    CLAUSE_PERIOD,
    CLAUSE_QUESTION,
    clause_type,
    read_clauses,
    split_clauses,
    terminator_of,
)
from custom_components.alicia_tts.espeak_emscripten import (
    EmscriptenRunner,
    EspeakEmscriptenError,
    render_separated,
    voice_language,
)
from custom_components.alicia_tts.phonemes import (
    BridgeRunner,
    Phonemizer,
    PhonemizerError,
)

ROOT = Path(__file__).resolve().parents[1]


def _npm_wasm() -> Path | None:
    candidates: list[Path] = []
    if env := os.environ.get("ALICIA_ESPEAK_NPM"):
        given = Path(env)
        candidates += [
            given,
            given / "espeak-ng.wasm",
            given / "package" / "dist" / "espeak-ng.wasm",
        ]
    candidates.append(ROOT / ".cache" / "espeak-npm" / "espeak-ng.wasm")
    return next((path for path in candidates if path.is_file()), None)


def _piper_data() -> Path | None:
    spec = importlib.util.find_spec("piper")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "espeak-ng-data"
    return data if (data / "phontab").is_file() else None


WASM = _npm_wasm()
PIPER_DATA = _piper_data()
HAVE_WASMTIME = importlib.util.find_spec("wasmtime") is not None

needs_wasm = pytest.mark.skipif(
    WASM is None or not HAVE_WASMTIME,
    reason=(
        "the npm espeak-ng 1.0.2 module is not fetched (run script/fetch_espeak_npm or set"
        " ALICIA_ESPEAK_NPM)"
        if WASM is None
        else "wasmtime is not installed (pip install wasmtime==50.0.1)"
    ),
)
needs_data = pytest.mark.skipif(PIPER_DATA is None, reason="piper-tts's espeak-ng-data is absent")


def _bridge() -> BridgeRunner:
    try:
        return BridgeRunner(str(PIPER_DATA) if PIPER_DATA else None)
    except ImportError as err:
        pytest.skip(f"piper's compiled espeak bridge cannot load here: {err}")


@pytest.fixture
def runner() -> Generator[EmscriptenRunner]:
    """A runner on piper's espeak-ng-data, closed after the test (its threads end)."""
    if WASM is None or not HAVE_WASMTIME or PIPER_DATA is None:
        pytest.skip("needs the npm module, wasmtime and piper's espeak-ng-data")
    with EmscriptenRunner(WASM, PIPER_DATA) as opened:
        yield opened


def _fields(text: str, language: str = "en") -> list[tuple[str, bool]]:
    return [(span.terminator, span.end_of_sentence) for span in split_clauses(text, language)]


def _pieces(text: str, language: str = "en") -> list[str]:
    return [text[span.start : span.end] for span in split_clauses(text, language)]


# --------------------------------------------------------------------------------------------
# The clause splitter (pure: no module needed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello.", [(".", True)]),
        ("Hello", [("", True)]),
        ("", [("", True)]),
        ("Hello, world. Bye!", [(",", False), (".", True), ("!", True)]),
        ("a: b; c", [(":", False), (";", False), ("", True)]),
        ("Is it? Yes!", [("?", True), ("!", True)]),
        ("Done.  ", [(".", True)]),
        ("One.\nTwo", [(".", True), ("", True)]),
    ],
)
def test_terminators_and_sentence_ends(text: str, expected: list[tuple[str, bool]]) -> None:
    """`. ? !` end the sentence, `, : ;` do not; the end of the text ends it without a mark."""
    assert _fields(text) == expected


def test_ellipsis_ends_a_clause_without_terminator() -> None:
    """Three dots (or the ellipsis character) end a clause, space or not, reporting nothing."""
    assert _fields("Wait... what?!") == [("", False), ("?", True)]
    assert _fields("What...no") == [("", False), ("", True)]
    assert _fields("Hi \u2026 there") == [("", False), ("", True)]
    assert _fields("Wait...") == [("", False)]
    assert _fields("x.. y") == [("", True)]  # two dots are no ellipsis and end nothing here


def test_runs_of_marks_report_the_first() -> None:
    """`?!`, `!?`, `?.`: one clause, the first mark's terminator."""
    assert _fields("Really?! Yes!!") == [("?", True), ("!", True)]
    assert _fields("Hi!? ok") == [("!", True), ("", True)]
    assert _fields("Hi?.") == [("?", True)]


def test_abbreviation_dots_follow_espeak() -> None:
    """A dot before a lower-case word ends nothing; before a capital it ends a sentence."""
    assert _pieces("Mr. and Mrs. Jones") == ["Mr. and Mrs. ", "Jones"]
    assert _fields("Mr. and Mrs. Jones") == [(".", True), ("", True)]
    assert _fields("Mr. Smith is here.") == [(".", True), (".", True)]
    assert _fields("e.g. this") == [("", True)]
    assert _fields("U.S.A. is big") == [("", True)]
    assert _fields("u.s.a.'s way") == [("", True)]
    assert _fields("Mr.\nand") == [(".", True), ("", True)]  # a newline skips the check


def test_numbers_do_not_split() -> None:
    """Marks inside numbers and times are followed by a digit, not a space: no clause end."""
    assert _fields("It is 3.5 degrees.") == [(".", True)]
    assert _fields("10:30 today") == [("", True)]
    assert _fields("It costs $12.50; ok.") == [(";", False), (".", True)]
    assert _fields("Version 2.4.1 is out") == [("", True)]


def test_ordinal_dots_in_german() -> None:
    """German reads `3.` before a lower-case word as an ordinal: no clause end there."""
    assert _fields("am 3. mai", "de") == [("", True)]
    assert _fields("am 3. mai", "en") == [("", True)]  # lower case: no end in English either
    assert _fields("Am 3. Mai", "de") == [(".", True), ("", True)]
    assert _fields("Am 3.-5. Mai", "de") == [(".", True), ("", True)]
    assert _fields("Ludwig XIV. kam", "de") == [("", True)]
    assert _fields("Ludwig XIV. kam", "en") == [("", True)]


def test_quotes_and_brackets_after_a_mark_end_the_clause() -> None:
    """A closing quote or bracket right after a mark counts as the space after it."""
    assert _fields('He said "stop." Then left.') == [(".", True), (".", True)]
    assert _pieces('He said "stop." Then left.') == ['He said "stop.', '" Then left.']
    assert _fields("(Yes.) No.") == [(".", True), (".", True)]
    assert _fields("end.)") == [(".", True), ("", True)]
    assert _fields("\u201cQuoted.\u201d Next") == [(".", True), ("", True)]


def test_paragraphs_dashes_and_inverted_marks() -> None:
    """A blank line ends a sentence without a mark; a dash reports `;`; `¿` breaks before."""
    assert _fields("Hello\n\nWorld") == [("", True), ("", True)]
    assert _fields("Hello.\n\nWorld") == [("", True), ("", True)]
    assert _fields("Hello?\n\nWorld") == [("", True), ("", True)]
    assert _fields("x - y \u2014 z") == [(";", False), ("", True)]
    assert _fields("Hola \u00bfqu\u00e9 tal?", "es") == [("", False), ("?", True)]
    assert _fields("\u00bfQu\u00e9 tal?", "es") == [("?", True)]
    assert _fields(". Hello") == [("", True)]  # no letter before the mark yet


def test_cjk_marks_need_no_space() -> None:
    """Ideographic marks end a clause with no space after them (the bridge reports no mark)."""
    assert _fields("\u4f60\u597d\u3002\u518d\u89c1", "cmn") == [("", True), ("", True)]
    assert _fields("\u4f60\u597d\u3001\u518d\u89c1", "cmn") == [("", False), ("", True)]


def test_long_clauses_break_at_a_word() -> None:
    """Past espeak's clause buffer a clause breaks at a space, reporting nothing."""
    text = " ".join(["word"] * 400)
    fields = _fields(text)
    assert len(fields) > 1
    assert fields[0] == ("", False)
    pieces = _pieces(text)
    assert "".join(pieces) == text
    assert all(len(piece.encode()) < 800 for piece in pieces)
    assert all(not piece.startswith("ord") for piece in pieces)


def test_spans_cover_the_text_and_keep_the_push_back() -> None:
    """Clause slices tile the text; after ' ..' espeak keeps a '.' for the next text."""
    text = "One, two. Three\n\nfour... five?!"
    spans = split_clauses(text)
    assert spans[0].start == 0
    assert spans[-1].end == len(text)
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert read_clauses("Each tab will become 0 ..")[1] == "."
    assert read_clauses("Hello.")[1] == ""


def test_clause_values() -> None:
    """Character classes and the bridge's mapping of espeak's clause values."""
    assert clause_type(".") == CLAUSE_PERIOD
    assert clause_type(",") == CLAUSE_COMMA
    assert clause_type("?") == CLAUSE_QUESTION
    assert clause_type("a") == CLAUSE_NONE
    assert clause_type("\u2048") == CLAUSE_NONE  # both ? and !: not in espeak's switch
    assert clause_type("") == CLAUSE_NONE
    assert terminator_of(CLAUSE_PERIOD) == (".", True)
    assert terminator_of(CLAUSE_COMMA) == (",", False)
    assert terminator_of(CLAUSE_NONE) == ("", False)
    assert voice_language("en-us") == "en"
    assert voice_language("de") == "de"
    assert voice_language("en-us+m1") == "en"


def _random_text(rng: random.Random) -> str:
    words = ["Hello", "world", "mr", "Mr", "and", "3", "1999", "X", "IV", "a", "\u00e9", "ok"]
    marks = [".", ",", "?", "!", ":", ";", "...", "..", "\u2026", "?!", "\u2014", '"', "(", ")"]
    spaces = [" ", " ", "  ", "\n", "\n\n", "\t", ""]
    parts: list[str] = []
    for _ in range(rng.randint(1, 8)):
        pick = rng.random()
        parts.append(rng.choice(words if pick < 0.5 else marks if pick < 0.8 else spaces))
        if rng.random() < 0.6:
            parts.append(rng.choice(spaces))
    return "".join(parts)


@needs_data
@pytest.mark.parametrize("voice", ["en-us", "de", "es"])
def test_splitter_agrees_with_the_bridge(voice: str) -> None:
    """Random mixes of words, marks, numbers and white space split exactly as the bridge does."""
    bridge = _bridge()
    bridge.set_voice(voice)
    rng = random.Random(voice)
    carry = ""
    for _ in range(600):
        text = _random_text(rng)
        spans, carry_next = read_clauses(carry + text, voice_language(voice))
        carry = carry_next
        reference = [(terminator, end) for _, terminator, end in bridge.clauses(text)]
        assert [(s.terminator, s.end_of_sentence) for s in spans] == reference, repr(text)


# --------------------------------------------------------------------------------------------
# Rendering the command line's phoneme-separated output (pure)


def test_render_separated_finds_the_glide_and_drops_pauses() -> None:
    """One empty slot between a close front vowel and a vowel is the glide; others are pauses."""
    sep = espeak_emscripten.SEPARATOR
    glide = "\u02b2"
    assert render_separated(f"h{sep}i{sep} o{sep}k", "en") == f"hi{glide} ok"
    assert render_separated(f"h{sep}i{sep}{sep} o{sep}k", "en") == "hi ok"  # a pause pair
    assert render_separated(f"h{sep}o{sep} i{sep}k", "en") == "ho ik"  # not after a close vowel
    assert render_separated(f"h{sep}i{sep} k", "en") == "hi k"  # not before a consonant
    assert render_separated(f"{sep}a{sep}b", "de") == "ab"  # a leading glottal stop
    assert render_separated(f"h{sep}i{sep} o", "en", correct=False) == "hi o"
    assert render_separated("plain", "en") == "plain"


def test_render_separated_renames_german_and_spanish_rhotics() -> None:
    """German tap before a vowel of its word is [r]; Spanish 'ser' final trill is a tap."""
    sep = espeak_emscripten.SEPARATOR
    tap = "\u027e"
    assert render_separated(f"d{sep}{tap}{sep}a{sep}i", "de") == "drai"
    assert render_separated(f"u{sep}{tap}", "de") == f"u{tap}"
    assert render_separated(f"d{sep}{tap}{sep}a", "en") == f"d{tap}a"
    assert render_separated(f"s{sep}e{sep}{sep}r o", "es") == f"se{tap} o"
    assert render_separated(f"b{sep}a{sep}{sep}r{sep}a", "es") == "bara"


# --------------------------------------------------------------------------------------------
# The runner (needs the npm module and wasmtime)


@needs_wasm
def test_runner_matches_the_bridge_on_tricky_texts(runner: EmscriptenRunner) -> None:
    """Terminators, glides, stress, abbreviations, numbers, paragraphs: as piper's bridge."""
    bridge = _bridge()
    texts = [
        "Hello, world. Bye!",
        "Wait... what?!",
        "Three, two, one, lift-off!",
        "Mr. and Mrs. Jones arrived at 3 PM; Dr. Who did not.",
        "He is the only one in the east entrance.",
        'He said "stop." Then left.',
        "It was 1999.\nThen everything changed.",
        "Paragraph one.\n\nParagraph two",
        "The U.S.A. is big, and the FBI is an acronym.",
        "$1,249.99 on 12/03/2025, 21.5 \u00b0C and 45 %.",
        "and",
        "",
    ]
    for voice, extra in (("en-us", []), ("de", ["Am 3. Mai sind es 12 Grad, drau\u00dfen."])):
        runner.set_voice(voice)
        bridge.set_voice(voice)
        for text in (*texts, *extra):
            assert runner.clauses(text) == bridge.clauses(text), repr(text)


@needs_wasm
def test_phonemizer_over_the_runner(runner: EmscriptenRunner) -> None:
    """Through the seam: the same sentences of phonemes as with the bridge."""
    bridge = Phonemizer(_bridge())
    mine = Phonemizer(runner)
    assert mine.name == "emscripten"
    for text in ("Say [[ h\u025blo\u028a ]] to me. Now.", "Hello world. How are you?"):
        assert mine.phonemize("en-us", text) == bridge.phonemize("en-us", text)


@needs_wasm
def test_long_and_odd_texts(runner: EmscriptenRunner) -> None:
    """Texts longer than a command-line line, raw-phoneme brackets and NULs still work."""
    bridge = _bridge()
    runner.set_voice("en-us")
    bridge.set_voice("en-us")
    long_text = ", ".join(f"item number {n}" for n in range(120)) + "."
    assert len(long_text.encode()) > 1000
    got = runner.clauses(long_text)
    assert got == bridge.clauses(long_text)
    assert len(got) == 120
    unpunctuated = " ".join(["alpha beta gamma"] * 100)
    assert runner.clauses(unpunctuated) == bridge.clauses(unpunctuated)
    odd = "a [[b c"
    assert [t for _, t, _ in runner.clauses(odd)] == [t for _, t, _ in bridge.clauses(odd)]
    assert runner.clauses("x\0y")[0][0]


@needs_wasm
def test_voices_switch_and_are_evicted() -> None:
    """A voice per instance; beyond max_voices the least recently used one is stopped."""
    assert WASM is not None
    with EmscriptenRunner(WASM, PIPER_DATA, max_voices=1) as runner:
        runner.set_voice("en-us")
        english = runner.clauses("Hallo")
        runner.set_voice("de")
        german = runner.clauses("Hallo")
        assert english != german
        assert list(runner._processes) == ["de"]
        runner.set_voice("en-us")
        assert runner.clauses("Hallo") == english


@needs_wasm
def test_embedded_data_works_too() -> None:
    """Without a data directory the module's own (older) data is used."""
    assert WASM is not None
    with EmscriptenRunner(WASM) as runner:
        runner.set_voice("en-us")
        clauses = runner.clauses("Hello, world.")
        assert [(t, e) for _, t, e in clauses] == [(",", False), (".", True)]
        assert all(ipa for ipa, _, _ in clauses)


@needs_wasm
def test_unknown_voices_are_refused_like_the_bridge(runner: EmscriptenRunner) -> None:
    """Unknown names fail with cause 'voice', also those only the command line would accept."""
    for voice in ("xx", "de-de", "--help", "", "zz-yy"):
        with pytest.raises(EspeakEmscriptenError) as caught:
            runner.set_voice(voice)
        assert caught.value.cause == "voice"
        assert isinstance(caught.value, PhonemizerError)
    for voice in ("german", "gmw/de", "En-US", "en-us+m1"):
        runner.set_voice(voice)


@needs_wasm
def test_clauses_need_a_voice() -> None:
    """Asking before any voice is selected is an error, not a default."""
    assert WASM is not None
    with EmscriptenRunner(WASM, PIPER_DATA) as runner, pytest.raises(EspeakEmscriptenError):
        runner.clauses("Hello")


def test_missing_module(tmp_path: Path) -> None:
    """A missing file: cause 'module'."""
    with pytest.raises(EspeakEmscriptenError) as caught:
        EmscriptenRunner(tmp_path / "absent.wasm")
    assert caught.value.cause == "module"


@pytest.mark.skipif(not HAVE_WASMTIME, reason="wasmtime is not installed")
def test_file_that_is_no_module(tmp_path: Path) -> None:
    """A file that is no WebAssembly module: cause 'module'."""
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm not really")
    with pytest.raises(EspeakEmscriptenError) as caught:
        EmscriptenRunner(junk)
    assert caught.value.cause == "module"


@needs_wasm
def test_data_folder_without_data(tmp_path: Path) -> None:
    """The real module with a data folder that holds no espeak-ng data: cause 'module'."""
    assert WASM is not None
    with pytest.raises(EspeakEmscriptenError, match="no phontab") as caught:
        EmscriptenRunner(WASM, tmp_path)
    assert caught.value.cause == "module"


def test_wasmtime_import_failure_names_libgcc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On musl without libgcc_s.so.1 wasmtime cannot load: say so, with cause 'wasmtime'."""
    module = tmp_path / "espeak-ng.wasm"
    module.write_bytes(b"\0asm")
    monkeypatch.setitem(sys.modules, "wasmtime", None)  # makes `import wasmtime` fail

    def failing_import() -> None:
        raise OSError("Error loading shared library libgcc_s.so.1: No such file or directory")

    with pytest.raises(EspeakEmscriptenError, match="wasmtime cannot be imported") as caught:
        EmscriptenRunner(module)
    assert caught.value.cause == "wasmtime"

    monkeypatch.setattr(espeak_emscripten, "_load_wasmtime", failing_import)
    with pytest.raises(EspeakEmscriptenError, match=r"libgcc_s\.so\.1") as caught:
        EmscriptenRunner(module)
    assert caught.value.cause == "wasmtime"


@needs_wasm
def test_compiled_module_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a cache folder the compiled module is written once and loaded from there."""
    assert WASM is not None
    monkeypatch.setattr(espeak_emscripten, "_MODULES", {})
    with EmscriptenRunner(WASM, PIPER_DATA, cache_dir=tmp_path) as runner:
        runner.set_voice("en-us")
        first = runner.clauses("Cached.")
    cached = list(tmp_path.glob("*.cwasm"))
    assert len(cached) == 1
    monkeypatch.setattr(espeak_emscripten, "_MODULES", {})
    with EmscriptenRunner(WASM, PIPER_DATA, cache_dir=tmp_path) as runner:
        runner.set_voice("en-us")
        assert runner.clauses("Cached.") == first


@needs_wasm
def test_a_stopped_instance_is_replaced(runner: EmscriptenRunner) -> None:
    """If an instance dies, the call fails clearly and the next one starts a fresh instance."""
    runner.set_voice("en-us")
    process = runner._processes["en-us"]
    espeak_emscripten._stop(process)
    with pytest.raises(EspeakEmscriptenError, match="stopped"):
        runner.clauses("Hello")
    assert runner.clauses("Hello")[0][0]


# --------------------------------------------------------------------------------------------
# Accuracy and speed against piper's bridge, on the project's corpus (tests/phonemizer_accuracy)


@needs_wasm
@needs_data
def test_accuracy_against_the_bridge(capsys: pytest.CaptureFixture[str]) -> None:
    """English: >= 80 % of sentences exact and PER <= 0.5 %; the others reported, loosely bound."""
    accuracy = pytest.importorskip("tests.phonemizer_accuracy")
    languages = accuracy.corpus_languages()
    if "en" not in languages:
        pytest.skip("the phonemizer corpus tests/data/phonemizer/en.txt is absent")
    assert WASM is not None
    bridge = _bridge()
    start = time.perf_counter()
    with EmscriptenRunner(WASM, PIPER_DATA) as runner:
        runner.set_voice("en-us")
        started = time.perf_counter() - start
        scores = accuracy.score_all(runner, bridge, languages)
    with capsys.disabled():
        print(f"\nemscripten runner started in {1000 * started:.0f} ms (module compiled once)")
        print(accuracy.report(scores, show=3))
    english = scores["en"]
    assert len(english.results) >= 300
    assert english.exact_rate >= 0.80
    assert english.phoneme_error_rate <= 0.005
    for language, score in scores.items():
        assert score.exact_rate >= 0.5, language
        assert score.phoneme_error_rate <= 0.05, language
        assert score.ms_per_sentence() < 100, language


@needs_wasm
def test_a_runaway_is_interrupted(
    runner: EmscriptenRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer in time: the instance is interrupted and dropped; the next call recovers."""
    runner.set_voice("en-us")
    expected = runner.clauses("The kitchen lights are now on.")
    monkeypatch.setattr(espeak_emscripten, "_REPLY_TIMEOUT", 1e-9)
    with pytest.raises(EspeakEmscriptenError, match="in time"):
        runner.clauses("The kitchen lights are now on.")
    monkeypatch.undo()
    assert runner.clauses("The kitchen lights are now on.") == expected


@needs_wasm
def test_runners_in_parallel_threads() -> None:
    """Two runners used from four threads give the same answers as one after another."""
    assert WASM is not None
    texts = [f"Sensor {n} reports {n * 1.5} degrees, and the door is open." for n in range(12)]
    with (
        EmscriptenRunner(WASM, PIPER_DATA) as first,
        EmscriptenRunner(WASM, PIPER_DATA) as second,
    ):
        first.set_voice("en-us")
        second.set_voice("en-us")
        expected = [first.clauses(text) for text in texts]
        results: dict[tuple[int, int], list[tuple[str, str, bool]]] = {}

        def work(worker: int) -> None:
            chosen = first if worker % 2 else second
            for index, text in enumerate(texts):
                results[worker, index] = chosen.clauses(text)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(results[n, i] == expected[i] for n in range(4) for i in range(len(texts)))


# --------------------------------------------------------------------------------------------
# The system calls the module imports: a read-only kernel over the in-memory file system


class _Kernel:
    """Calls the imports of an instance that is not running, on scratch memory at its end."""

    def __init__(self, process: espeak_emscripten._Process) -> None:
        self.process = process
        self.view = process._view
        self.scratch = len(self.view) - 65536  # above the heap an unstarted instance never used
        self.buf = self.scratch + 4096

    def cstr(self, text: str) -> int:
        raw = text.encode() + b"\0"
        self.view[self.scratch : self.scratch + len(raw)] = raw
        return self.scratch

    def u32(self, address: int) -> int:
        return int.from_bytes(self.view[address : address + 4], "little")

    def stat(self, result: int) -> tuple[int, int, int]:
        """(return value, mode, size) of a stat-like call that wrote at ``self.buf``."""
        mode = self.u32(self.buf + 4)
        size = int.from_bytes(self.view[self.buf + 24 : self.buf + 32], "little", signed=True)
        return result, mode, size

    def iovec(self, length: int) -> int:
        """One iovec at buf+0 pointing to buf+64 (``length`` bytes); returns its address."""
        self.view[self.buf : self.buf + 8] = (self.buf + 64).to_bytes(
            4, "little"
        ) + length.to_bytes(4, "little")
        return self.buf

    def dirents(self, fd: int, count: int) -> tuple[int, list[tuple[str, int]]]:
        """getdents64 into buf: (return value, [(name, d_type)])."""
        written = self.process._imp_syscall_getdents64(fd, self.buf, count)
        entries = []
        for offset in range(0, max(written, 0), 280):
            entry = self.buf + offset
            raw = bytes(self.view[entry + 19 : entry + 275])
            entries.append((raw[: raw.index(b"\0")].decode(), self.view[entry + 18]))
        return written, entries


@pytest.fixture
def kernel() -> Generator[_Kernel]:
    """An unstarted instance whose file system shows piper's espeak-ng-data."""
    if WASM is None or not HAVE_WASMTIME or PIPER_DATA is None:
        pytest.skip("needs the npm module, wasmtime and piper's espeak-ng-data")
    with EmscriptenRunner(WASM, PIPER_DATA) as runner:
        process = espeak_emscripten._Process(runner._compiled, ["espeak-ng"], runner._make_fs)
        process.fs = runner._make_fs(process._view, [])
        yield _Kernel(process)


def test_files_open_read_only(kernel: _Kernel) -> None:
    """openat: files and folders open read-only; writing, creating and bad paths are refused."""
    p, data = kernel.process, espeak_emscripten._DATA_MOUNT
    at_cwd, o_directory = espeak_emscripten._AT_FDCWD, espeak_emscripten._O_DIRECTORY
    folder = p._imp_syscall_openat(at_cwd, kernel.cstr(data), o_directory, 0)
    assert folder == 3
    assert p._imp_syscall_openat(folder, kernel.cstr("phontab"), 0, 0) == 4
    relative = data.lstrip("/") + "/phondata"
    assert p._imp_syscall_openat(at_cwd, kernel.cstr(relative), 0, 0) == 5  # from the root
    assert p._imp_syscall_openat(at_cwd, kernel.cstr(data + "/x"), 1, 0) == -69  # O_WRONLY
    assert p._imp_syscall_openat(at_cwd, kernel.cstr(data + "/x"), 0o100, 0) == -69  # O_CREAT
    assert p._imp_syscall_openat(at_cwd, kernel.cstr(data + "/absent"), 0, 0) == -44
    assert p._imp_syscall_openat(at_cwd, kernel.cstr(data + "/phontab/x"), 0, 0) == -54
    assert p._imp_syscall_openat(4, kernel.cstr(""), o_directory, 0) == -54  # a file, not a dir
    assert p._imp_syscall_openat(99, kernel.cstr("phontab"), 0, 0) == -8  # unknown dirfd
    assert p._imp_syscall_openat(at_cwd, kernel.cstr(data + "/../../../.."), o_directory, 0) == 6
    assert p._fds[6].node is p.fs.root  # ".." never leaves the root
    assert p._imp_syscall_unlinkat(folder, kernel.cstr("phontab"), 0) == -69
    assert p._imp_syscall_rmdir(kernel.cstr(data)) == -69
    assert [p._imp_fd_close(fd) for fd in (0, 3, 3)] == [0, 0, 8]


def test_folders_are_listed_in_pieces(kernel: _Kernel) -> None:
    """getdents64 lists ".", ".." and the host folder's entries, as many as fit per call."""
    p = kernel.process
    data = espeak_emscripten._DATA_MOUNT
    folder = p._imp_syscall_openat(-100, kernel.cstr(data), 0, 0)
    assert PIPER_DATA is not None
    expected = sorted(e.name for e in os.scandir(PIPER_DATA) if e.is_dir() or e.is_file())
    seen: list[tuple[str, int]] = []
    while True:
        written, entries = kernel.dirents(folder, 3 * 280 + 100)  # three entries per call
        assert written == 280 * len(entries)
        if not written:
            break
        assert len(entries) <= 3
        seen += entries
    assert [name for name, _ in seen] == [".", "..", *expected]
    kinds = dict(seen)
    assert kinds["phontab"] == 8  # DT_REG
    assert kinds["voices"] == 4  # DT_DIR
    assert kernel.dirents(folder, 100) == (0, [])  # too small for one entry: nothing, no error
    phontab = p._imp_syscall_openat(folder, kernel.cstr("phontab"), 0, 0)
    assert p._imp_syscall_getdents64(phontab, kernel.buf, 4096) == -54
    assert p._imp_syscall_getdents64(42, kernel.buf, 4096) == -8


def test_stat_reads_and_seeks_follow_the_host_files(kernel: _Kernel) -> None:
    """stat/fstat/lstat/newfstatat, fd_read and fd_seek agree with the host file."""
    assert PIPER_DATA is not None
    p, data = kernel.process, espeak_emscripten._DATA_MOUNT
    host = (PIPER_DATA / "phontab").read_bytes()
    s_ifreg, s_ifdir, s_ifchr = 0o100000, 0o040000, 0o020000
    assert kernel.stat(p._imp_syscall_stat64(kernel.cstr(data + "/phontab"), kernel.buf)) == (
        0,
        s_ifreg | 0o444,
        len(host),
    )
    assert kernel.stat(p._imp_syscall_lstat64(kernel.cstr(data), kernel.buf))[:2] == (
        0,
        s_ifdir | 0o555,
    )
    assert p._imp_syscall_stat64(kernel.cstr(data + "/absent"), kernel.buf) == -44
    folder = p._imp_syscall_openat(-100, kernel.cstr(data), 0, 0)
    assert kernel.stat(p._imp_syscall_newfstatat(folder, kernel.cstr("phontab"), kernel.buf, 0))[
        2
    ] == len(host)
    empty = kernel.cstr("")
    assert kernel.stat(p._imp_syscall_newfstatat(folder, empty, kernel.buf, 0x1000))[1] == (
        s_ifdir | 0o555
    )
    assert p._imp_syscall_newfstatat(77, kernel.cstr("phontab"), kernel.buf, 0) == -8
    assert kernel.stat(p._imp_syscall_fstat64(1, kernel.buf))[1] == s_ifchr | 0o666
    assert p._imp_syscall_fstat64(77, kernel.buf) == -8

    fd = p._imp_syscall_openat(folder, kernel.cstr("phontab"), 0, 0)
    assert kernel.stat(p._imp_syscall_fstat64(fd, kernel.buf))[2] == len(host)
    result = kernel.buf + 32

    def read(length: int) -> bytes:
        assert p._imp_fd_read(fd, kernel.iovec(length), 1, result) == 0
        count = kernel.u32(result)
        return bytes(kernel.view[kernel.buf + 64 : kernel.buf + 64 + count])

    def seek(offset: int, whence: int) -> int:
        low = offset & 0xFFFFFFFF  # wasmtime hands i32 arguments over signed, as here
        low -= (low & 0x80000000) << 1
        status = p._imp_fd_seek(fd, low, offset >> 32, whence, result)
        if status:
            return -status
        return int.from_bytes(kernel.view[result : result + 8], "little", signed=True)

    assert read(16) == host[:16]
    assert seek(4, 1) == 20
    assert read(8) == host[20:28]
    assert seek(-4, 2) == len(host) - 4
    assert read(100) == host[-4:]  # a short read at the end
    assert read(10) == b""
    assert seek(2, 0) == 2
    assert seek(-10, 0) == -28  # before the start: EINVAL
    assert seek(0, 7) == -28  # no such whence
    assert p._imp_fd_seek(1, 0, 0, 0, result) == 70  # ESPIPE on a stream
    assert p._imp_fd_seek(77, 0, 0, 0, result) == 8
    assert p._imp_fd_read(folder, kernel.iovec(8), 1, result) == 31  # EISDIR
    assert p._imp_fd_read(77, kernel.iovec(8), 1, result) == 8


def test_descriptor_flags_terminal_and_writes(kernel: _Kernel) -> None:
    """fcntl, the terminal ioctl (line-buffered stdout), and writes only to the std streams."""
    p, data = kernel.process, espeak_emscripten._DATA_MOUNT
    fd = p._imp_syscall_openat(-100, kernel.cstr(data + "/phontab"), 0o2000000, 0)  # O_CLOEXEC
    assert p._imp_syscall_fcntl64(fd, 3, 0) == 0o2000000  # F_GETFL
    assert (p._imp_syscall_fcntl64(0, 3, 0), p._imp_syscall_fcntl64(1, 3, 0)) == (0, 1)
    assert [p._imp_syscall_fcntl64(fd, cmd, 0) for cmd in (1, 2, 4)] == [0, 0, 0]
    assert p._imp_syscall_fcntl64(fd, 99, 0) == -28
    assert p._imp_syscall_fcntl64(55, 3, 0) == -8
    winsize = kernel.buf + 128
    kernel.view[kernel.buf : kernel.buf + 4] = winsize.to_bytes(4, "little")
    assert p._imp_syscall_ioctl(1, 0x5413, kernel.buf) == 0
    assert bytes(kernel.view[winsize : winsize + 4]) == (24).to_bytes(2, "little") + (80).to_bytes(
        2, "little"
    )
    assert p._imp_syscall_ioctl(0, 0x5413, kernel.buf) == -59  # stdin is no terminal
    assert p._imp_syscall_ioctl(fd, 0x5413, kernel.buf) == -59
    assert p._imp_syscall_ioctl(55, 0x5413, kernel.buf) == -8
    kernel.view[kernel.buf + 64 : kernel.buf + 67] = b"hi\n"
    written = kernel.buf + 32
    assert p._imp_fd_write(2, kernel.iovec(3), 1, written) == 0
    assert kernel.u32(written) == 3
    assert bytes(p.stdio.stderr) == b"hi\n"
    assert p._imp_fd_write(fd, kernel.iovec(3), 1, written) == 69  # EROFS
    assert p._imp_fd_write(55, kernel.iovec(3), 1, written) == 8


def test_environment_clock_and_faults(kernel: _Kernel) -> None:
    """The environment is LANG=C.UTF-8; out-of-bounds copies and failed asserts end the run."""
    p = kernel.process
    count, size = kernel.buf, kernel.buf + 4
    assert p._imp_environ_sizes_get(count, size) == 0
    assert (kernel.u32(count), kernel.u32(size)) == (1, len("LANG=C.UTF-8") + 1)
    pointers, strings = kernel.buf + 16, kernel.buf + 64
    assert p._imp_environ_get(pointers, strings) == 0
    assert kernel.u32(pointers) == strings
    assert bytes(kernel.view[strings : strings + 13]) == b"LANG=C.UTF-8\0"
    assert p._imp_emscripten_get_now_is_monotonic() == 1
    assert p._imp_emscripten_get_now() <= p._imp_emscripten_get_now()
    assert abs(p._imp_emscripten_date_now() / 1000 - time.time()) < 60
    assert p._imp_emscripten_resize_heap(1 << 30) == 0  # fixed memory: malloc sees ENOMEM
    kernel.view[kernel.buf : kernel.buf + 4] = b"abcd"
    p._imp_emscripten_memcpy_js(kernel.buf + 8, kernel.buf, 4)
    assert bytes(kernel.view[kernel.buf + 8 : kernel.buf + 12]) == b"abcd"
    with pytest.raises(espeak_emscripten._ProgramExit, match="out of bounds"):
        p._imp_emscripten_memcpy_js(len(kernel.view) - 2, kernel.buf, 4)
    with pytest.raises(espeak_emscripten._ProgramExit):
        p._imp_exit(3)
    assert p._exit_code == 3
    cond, where, func = (kernel.buf + o for o in (200, 220, 240))
    for address, text in ((cond, b"x > 0\0"), (where, b"voices.c\0"), (func, b"LoadVoice\0")):
        kernel.view[address : address + len(text)] = text
    with pytest.raises(espeak_emscripten._ProgramExit, match=r"x > 0 at voices\.c:12"):
        p._imp_assert_fail(cond, where, 12, func)
