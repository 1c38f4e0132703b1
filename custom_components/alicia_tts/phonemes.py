"""Text to Piper phonemes, whichever espeak-ng runs. Pure: imports nothing from Home Assistant.

Piper voices are trained on espeak-ng's IPA output, so the phonemes must be espeak-ng's. espeak-ng
runs behind one small seam, :class:`EspeakRunner`: ``set_voice(name)`` and ``clauses(text)``,
which returns what piper's compiled bridge returns: one ``(phonemes, terminator,
end_of_sentence)`` tuple per clause. The runners:

- ``bridge``: piper-tts's compiled ``espeakbridge`` (glibc wheels only);
- ``wasi``: espeak-ng built for WASI, run by wasmtime (``espeak_wasi.py``);
- ``emscripten``: the npm Emscripten build of the espeak-ng command line, run by wasmtime
  under the project's own import layer (``espeak_emscripten.py``).

Everything after the runner is written once, here, for all of them (the rules of piper's own
``EspeakPhonemizer`` and ``PiperVoice.phonemize``): language-switch flags dropped, clause
punctuation kept as a phoneme, a space after ``, : ;``, sentences split where espeak ends them,
NFD decomposition into code points, the voice's vowel clusters merged, ``[[ raw phonemes ]]``
blocks passed through, and phonemes mapped to the voice's ids with BOS/PAD/EOS.

espeak-ng keeps global state (the current voice), so a runner is used by one thread at a time:
:class:`Phonemizer` serializes its calls.
"""

from collections.abc import Mapping, Sequence
import logging
import re
import threading
from typing import Protocol
import unicodedata

_LOGGER = logging.getLogger(__name__)

PAD = "_"  # padding, after every phoneme
BOS = "^"  # beginning of sentence
EOS = "$"  # end of sentence

# Terminators espeak reports and Piper keeps; after these the sentence goes on.
CLAUSE_TERMINATORS = (",", ":", ";")

_LANGUAGE_FLAG = re.compile(r"\([^)]+\)")
_RAW_BLOCK = re.compile(r"(\[\[.*?\]\])")

type Clause = tuple[str, str, bool]


class EspeakRunner(Protocol):
    """One espeak-ng instance: the bridge's two calls."""

    name: str

    def set_voice(self, voice: str) -> None:
        """Select an espeak-ng voice (``en-us``, ``de``…); raises ValueError for an unknown one."""

    def clauses(self, text: str) -> list[Clause]:
        """Phonemize ``text``: per clause, its IPA, its terminator and whether a sentence ends."""


class PhonemizerError(Exception):
    """espeak-ng could not phonemize (unknown voice, runner failure)."""


def clauses_to_sentences(
    clauses: Sequence[Clause],
    vowel_clusters: frozenset[tuple[str, ...]] | None = None,
) -> list[list[str]]:
    """Turn espeak's clauses into sentences of phonemes (code points), as Piper does."""
    sentences: list[list[str]] = []
    current: list[str] = []
    for phonemes, terminator, end_of_sentence in clauses:
        text = _LANGUAGE_FLAG.sub("", phonemes) + terminator
        if terminator in CLAUSE_TERMINATORS:
            text += " "
        current.extend(unicodedata.normalize("NFD", text))
        if end_of_sentence:
            sentences.append(merge_vowel_clusters(current, vowel_clusters))
            current = []
    if current:
        sentences.append(merge_vowel_clusters(current, vowel_clusters))
    return sentences


def merge_vowel_clusters(
    phonemes: list[str], clusters: frozenset[tuple[str, ...]] | None
) -> list[str]:
    """Merge runs of code points that the voice knows as one phoneme (longest first)."""
    if not clusters:
        return phonemes
    longest = max(len(cluster) for cluster in clusters)
    merged: list[str] = []
    index = 0
    while index < len(phonemes):
        for size in range(min(longest, len(phonemes) - index), 1, -1):
            candidate = tuple(phonemes[index : index + size])
            if candidate in clusters:
                merged.append("".join(candidate))
                index += size
                break
        else:
            merged.append(phonemes[index])
            index += 1
    return merged


def phonemes_to_ids(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """Map phonemes to the voice's ids: BOS, PAD, then each phoneme followed by PAD, then EOS.

    A phoneme the voice does not know is skipped (logged at debug level: it names no text).
    """
    pad = id_map.get(PAD, ())
    ids: list[int] = [*id_map.get(BOS, ()), *pad]
    for phoneme in phonemes:
        if (mapped := id_map.get(phoneme)) is None:
            _LOGGER.debug("Phoneme %r is not in the voice's id map", phoneme)
            continue
        ids.extend(mapped)
        ids.extend(pad)
    ids.extend(id_map.get(EOS, ()))
    return ids


class Phonemizer:
    """Text to sentences of phonemes with one espeak-ng runner, one caller at a time."""

    def __init__(self, runner: EspeakRunner) -> None:
        """Wrap a runner."""
        self.runner = runner
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """Which runner speaks: ``bridge``, ``wasi`` or ``emscripten``."""
        return self.runner.name

    def phonemize(
        self,
        voice: str,
        text: str,
        vowel_clusters: frozenset[tuple[str, ...]] | None = None,
    ) -> list[list[str]]:
        """Sentences of phonemes for ``text`` in espeak voice ``voice`` (blocking).

        ``[[ phonemes ]]`` blocks are taken as they are, joined to the sentence around them.
        """
        sentences: list[list[str]] = []
        parts = _RAW_BLOCK.split(text)
        after_raw = False
        with self._lock:
            self.runner.set_voice(voice)
            for index, part in enumerate(parts):
                if part.startswith("[["):
                    if not sentences:
                        sentences.append([])
                    if index > 0 and parts[index - 1].endswith(" "):
                        sentences[-1].append(" ")
                    sentences[-1].extend(part[2:-2].strip())
                    if index < len(parts) - 1 and parts[index + 1].startswith(" "):
                        sentences[-1].append(" ")
                    after_raw = True
                    continue
                if not part:
                    continue
                found = clauses_to_sentences(self.runner.clauses(part), vowel_clusters)
                if after_raw and found:
                    sentences[-1].extend(found[0])
                    found = found[1:]
                sentences.extend(found)
                after_raw = False
        return [sentence for sentence in sentences if sentence]


class BridgeRunner:
    """piper-tts's compiled espeak-ng bridge (glibc wheels only)."""

    name = "bridge"

    def __init__(self, data_dir: str | None = None) -> None:
        """Import and initialize the bridge (blocking). Raises ImportError where it cannot run."""
        from piper import espeakbridge  # noqa: PLC0415 - optional, glibc only
        from piper.phonemize_espeak import ESPEAK_DATA_DIR  # noqa: PLC0415

        # A C extension: pylint cannot see its members (HA core would allow-list the module).
        # pylint: disable=c-extension-no-member
        self._bridge = espeakbridge
        self.data_dir = data_dir or str(ESPEAK_DATA_DIR)
        espeakbridge.initialize(self.data_dir)
        self._voice: str | None = None

    def set_voice(self, voice: str) -> None:
        """Select the voice (cached: espeak reloads dictionaries on every change)."""
        if voice != self._voice:
            try:
                self._bridge.set_voice(voice)  # pylint: disable=c-extension-no-member
            except RuntimeError as err:
                raise PhonemizerError(f"espeak-ng has no voice {voice!r}") from err
            self._voice = voice

    def clauses(self, text: str) -> list[Clause]:
        """Clauses of ``text``."""
        phonemes = self._bridge.get_phonemes(text)  # pylint: disable=c-extension-no-member
        return [(str(p), str(t), bool(e)) for p, t, e in phonemes]
