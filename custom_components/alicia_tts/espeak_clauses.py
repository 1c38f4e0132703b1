"""Where espeak-ng ends its clauses, and what piper's bridge reports for each. Pure: stdlib only.

piper's compiled bridge calls ``espeak_TextToPhonemesWithTerminator`` clause by clause and
reports ``(phonemes, terminator, end_of_sentence)``. A runner that can only phonemize (the
espeak-ng command line prints one line of IPA per clause and no punctuation) needs the other two
fields, and needs to know where espeak will cut. :func:`split_clauses` answers that by following
espeak-ng's own clause reader (``ReadClause`` in ``readclause.c``, the version piper builds) for
plain text: no SSML, no embedded commands, no spoken punctuation, which is how piper calls it.

The rules, in short:

- A clause ends at one of espeak's clause marks (``. , ? ! : ;``, the em/en dash, the ellipsis
  and their Unicode relatives) followed by white space, a bracket or quote, ``?`` or the end of
  the text; CJK-style marks need no space after them. Marks straight after a mark are swallowed
  (``?!`` reports ``?``).
- ``.`` followed (on the same line) by a lower-case word does not end a clause (``Mr. and``);
  ``Mr. Smith`` does end one, as in espeak. A mark before any letter or digit ends nothing.
  In languages that read ``3.`` as an ordinal (German, Danish, Dutch, …), a dot after a number
  followed by a lower-case word or ``-`` does not end the clause, nor does one after a Roman
  numeral.
- ``...`` (or ``…``) ends a clause, even with no space after it, with no terminator.
- A blank line ends a clause as a sentence, with no terminator (so does a mark followed by a
  blank line); a clause longer than espeak's buffer is cut at a word boundary.
- Terminators: ``. ? !`` end the sentence; ``, : ;`` do not; a dash reports ``;``.
"""

from __future__ import annotations  # noqa: TID251 - the musl proof's CPython 3.13 imports it

from dataclasses import dataclass
from typing import Final

# espeak-ng's clause values (translate.h): pause | intonation | type, plus flag bits.
_INTONATION_FULL_STOP: Final = 0x0000
_INTONATION_COMMA: Final = 0x1000
_INTONATION_QUESTION: Final = 0x2000
_INTONATION_EXCLAMATION: Final = 0x3000
_INTONATION_NONE: Final = 0x4000
_OPTIONAL_SPACE_AFTER: Final = 0x8000
_TYPE_EOF: Final = 0x10000
_TYPE_CLAUSE: Final = 0x40000
_TYPE_SENTENCE: Final = 0x80000
_PUNCTUATION_IN_WORD: Final = 0x100000
_SPEAK_PUNCTUATION_NAME: Final = 0x200000
DOT_AFTER_LAST_WORD: Final = 0x400000

CLAUSE_NONE: Final = 0 | _INTONATION_NONE
CLAUSE_PARAGRAPH: Final = 70 | _INTONATION_FULL_STOP | _TYPE_SENTENCE
CLAUSE_EOF: Final = 40 | _INTONATION_FULL_STOP | _TYPE_SENTENCE | _TYPE_EOF
CLAUSE_PERIOD: Final = 40 | _INTONATION_FULL_STOP | _TYPE_SENTENCE
CLAUSE_COMMA: Final = 20 | _INTONATION_COMMA | _TYPE_CLAUSE
CLAUSE_QUESTION: Final = 40 | _INTONATION_QUESTION | _TYPE_SENTENCE
CLAUSE_EXCLAMATION: Final = 45 | _INTONATION_EXCLAMATION | _TYPE_SENTENCE
CLAUSE_COLON: Final = 30 | _INTONATION_FULL_STOP | _TYPE_CLAUSE
CLAUSE_SEMICOLON: Final = 30 | _INTONATION_COMMA | _TYPE_CLAUSE

# What piper's bridge reports: the value masked to its low 20 bits must be exactly one of these.
_TERMINATORS: Final = {
    CLAUSE_PERIOD: ".",
    CLAUSE_QUESTION: "?",
    CLAUSE_EXCLAMATION: "!",
    CLAUSE_COMMA: ",",
    CLAUSE_COLON: ":",
    CLAUSE_SEMICOLON: ";",
}

_N_BUF: Final = 800  # N_TR_SOURCE: the clause buffer, in UTF-8 bytes
_ELLIPSIS: Final = "\u2026"
_CHAR_COMMA_BREAK: Final = "\ue000"  # placeholder for espeak's Hungarian ordinal comma


def _ranges(*spec: int | tuple[int, int]) -> frozenset[int]:
    points: set[int] = set()
    for item in spec:
        if isinstance(item, tuple):
            points.update(range(item[0], item[1] + 1))
        else:
            points.add(item)
    return frozenset(points)


# espeak-ng's own punctuation properties (ucd-tools' PropList for espeak-ng).
_FULL_STOP = _ranges(
    0x2E, 0x589, 0x6D4, 0x701, 0x704, 0x964, 0xDF4, 0xF0D, 0x1362, 0x166E, 0x1803, 0x1809,
    (0x2488, 0x249B), 0x2CF9, 0x2CFE, 0x2E33, 0x2E3C, 0x3002, 0xA4FF, 0xA60E, 0xA6F3, 0xFE12,
    0xFE52, 0xFF0E, 0xFF61, 0x16AF5, 0x1BC9F, 0x1DA88, 0x1F100, 0xE002E,
)  # fmt: skip
_QUESTION = _ranges(
    0x3F, 0xBF, 0x37E, 0x55E, 0x61F, 0x709, 0x1367, 0x1945, (0x2047, 0x2049), (0x2753, 0x2754),
    (0x2CFA, 0x2CFB), 0xA60F, 0xA6F7, 0xFE16, 0xFE56, 0xFF1F, 0x11143, 0x1E95F, 0xE003F,
)  # fmt: skip
_EXCLAMATION = _ranges(
    0x21, 0xA1, (0x55B, 0x55C), 0x703, 0x7F9, 0x1944, 0x203C, (0x2048, 0x2049), 0x2755, 0x2757,
    (0x2762, 0x2763), 0xFE15, 0xFE57, 0xFF01, 0x1E95E, 0xE0021,
)  # fmt: skip
_COMMA = _ranges(
    0x2C, 0x55D, 0x60C, 0x702, 0x7F8, 0xF14, 0x1363, 0x1802, 0x1808, 0x2E32, 0x2E34, 0x2E41,
    0x3001, 0xA4FE, 0xA60D, 0xA6F5, (0xFE10, 0xFE11), (0xFE50, 0xFE51), 0xFF0C, 0xFF64,
    0x1144D, 0x1DA87, (0x1F101, 0x1F10A), 0xE002C,
)  # fmt: skip
_COLON = _ranges(
    0x3A, (0x706, 0x707), (0x1365, 0x1366), 0x1804, 0x2982, 0xA6F4, 0xFE13, 0xFE55, 0xFF1A,
    (0x12471, 0x12472), 0x1DA8A, 0xE003A,
)  # fmt: skip
_SEMICOLON = _ranges(
    0x3B, 0x387, 0x61B, 0x708, 0x1364, 0x204F, 0x2E35, 0xA6F6, 0xFE14, 0xFE54, 0xFF1B,
    0x1DA89, 0xE003B,
)  # fmt: skip
_ELLIPSIS_MARKS = _ranges(0xEAF, 0x1801, 0x2026, (0x22EE, 0x22F1), 0xFE19)
_PARAGRAPH_MARKS = _ranges(0x700, 0x965, 0xF0E, 0x10FB, 0x1368, 0x2029)
_EXTENDED_DASH = _ranges((0x2013, 0x2014), (0x2E3A, 0x2E3B), (0xFE31, 0xFE32))
_OPTIONAL_SPACE = _ranges(
    0xA1, 0xBF, 0x589, 0x964, 0xDF4, 0xF0D, (0x3001, 0x3002), 0xFF01, 0xFF0C, 0xFF0E,
    (0xFF1A, 0xFF1B), 0xFF1F,
)  # fmt: skip
_IN_WORD = _ranges((0x55B, 0x55C), 0x55E)
_INVERTED = _ranges(0xA1, 0xBF)

# espeak's brackets (and quotes): after a mark they count as a clause end like a space does.
_BRACKETS: Final = frozenset("()[]{}<>\"'`\u00ab\u00bb\u300a\u300b") | {
    chr(c) for c in range(0x2014, 0x2020)
}

# Languages whose translator sets NUM_ORDINAL_DOT, or lowercase_sentence (tr_languages.c and
# the voice files); a voice's language is the part of its name before the first "-".
ORDINAL_DOT_LANGUAGES: Final = frozenset(
    {"da", "de", "fi", "fo", "hu", "kl", "lt", "ltg", "nl", "nb", "sl", "smj"}
)
LOWERCASE_SENTENCE_LANGUAGES: Final = frozenset({"ka", "mto", "xex"})
_IGNORED: Final = frozenset({"\u00ad", "\u200c"})  # soft hyphen, zero-width non-joiner


def _build_clause_types() -> dict[int, int]:
    """Code point -> clause value, as espeak's ``clause_type_from_codepoint`` maps them."""
    kinds = {
        "stop": _FULL_STOP,
        "question": _QUESTION,
        "exclamation": _EXCLAMATION,
        "comma": _COMMA,
        "colon": _COLON,
        "semicolon": _SEMICOLON,
        "ellipsis": _ELLIPSIS_MARKS,
        "paragraph": _PARAGRAPH_MARKS,
        "dash": _EXTENDED_DASH,
    }
    base = {
        "stop": CLAUSE_PERIOD,
        "question": CLAUSE_QUESTION,
        "exclamation": CLAUSE_EXCLAMATION,
        "comma": CLAUSE_COMMA,
        "colon": CLAUSE_COLON,
        "semicolon": CLAUSE_SEMICOLON,
        "ellipsis": CLAUSE_SEMICOLON | _SPEAK_PUNCTUATION_NAME | _OPTIONAL_SPACE_AFTER,
        "paragraph": CLAUSE_PARAGRAPH,
        "dash": CLAUSE_SEMICOLON,
    }
    table: dict[int, int] = {}
    for point in set().union(*kinds.values()):
        found = [name for name, points in kinds.items() if point in points]
        if len(found) != 1:
            continue  # a combination espeak's switch does not list: no clause mark
        kind = found[0]
        value = base[kind]
        if point in _INVERTED:  # inverted ? and !: a break before the question
            value = CLAUSE_SEMICOLON | _OPTIONAL_SPACE_AFTER
        elif point in _IN_WORD:
            value |= _PUNCTUATION_IN_WORD
        elif point in _OPTIONAL_SPACE and kind not in ("ellipsis", "paragraph", "dash"):
            value |= _OPTIONAL_SPACE_AFTER
        table[point] = value
    return table


_CLAUSE_TYPES: Final = _build_clause_types()


def clause_type(char: str) -> int:
    """The clause value espeak gives a character (``CLAUSE_NONE`` for any other)."""
    if len(char) != 1:
        return CLAUSE_NONE
    return _CLAUSE_TYPES.get(ord(char), CLAUSE_NONE)


def terminator_of(value: int) -> tuple[str, bool]:
    """What piper's bridge reports for a clause value: terminator and end of sentence."""
    low = value & 0xFFFFF
    return _TERMINATORS.get(low, ""), bool(low & _TYPE_SENTENCE)


@dataclass(frozen=True, slots=True)
class ClauseSpan:
    """One clause as espeak reads it.

    ``start``/``end``: the slice of the text the reader consumed for it (``end`` is where the
    next clause starts; white space after a terminator belongs to the clause before).
    ``value``: espeak's clause value; ``mark``: the index of the clause-ending character (or
    -1 when the clause ends otherwise); ``digit_before_mark``: whether a digit precedes it.
    """

    start: int
    end: int
    value: int
    mark: int = -1
    digit_before_mark: bool = False

    @property
    def terminator(self) -> str:
        """The bridge's terminator string: ``. , ? ! : ;`` or empty."""
        return terminator_of(self.value)[0]

    @property
    def end_of_sentence(self) -> bool:
        """Whether the bridge reports the sentence as ended."""
        return terminator_of(self.value)[1]

    @property
    def dot_after_last_word(self) -> bool:
        """Espeak marks the last word as followed by a dot (abbreviations, ordinals)."""
        return bool(self.value & DOT_AFTER_LAST_WORD)


def _is_space(char: str) -> bool:
    return char.isspace()


def _is_alnum(char: str) -> bool:
    return char.isalpha() or char.isdecimal()


def _is_lower(char: str) -> bool:
    return char.islower()


def _is_roman(char: str) -> bool:
    return char in "IVXL"


class _Reader:
    """espeak's text decoder plus its one-character push-back, over ``text`` and a final NUL."""

    def __init__(self, text: str) -> None:
        self.chars = text + "\0"
        self.end = len(text)
        self.position = 0
        self.ungot: tuple[str, int] | None = None

    def eof(self) -> bool:
        """Espeak's Eof(): nothing pushed back and the decoder at its end."""
        return self.ungot is None and self.position >= len(self.chars)

    def decoder_eof(self) -> bool:
        return self.position >= len(self.chars)

    def get(self) -> tuple[str, int]:
        if self.ungot is not None:
            found, self.ungot = self.ungot, None
            return found
        index = self.position
        self.position += 1
        return self.chars[index], index

    def unget(self, item: tuple[str, int]) -> None:
        self.ungot = None if item[0] == "\0" else item

    def peek(self) -> str:
        return self.chars[self.position] if self.position < len(self.chars) else "\0"

    def next_index(self) -> int:
        """Where the next clause starts in the text."""
        if self.ungot is not None:
            return min(self.ungot[1], self.end)
        return min(self.position, self.end)


def split_clauses(text: str, language: str = "en") -> list[ClauseSpan]:
    """The clauses espeak-ng (as piper builds it) reads in ``text``, for a voice's language."""
    return read_clauses(text, language)[0]


def read_clauses(text: str, language: str = "en") -> tuple[list[ClauseSpan], str]:
    """:func:`split_clauses`, plus the character espeak keeps pushed back after the text.

    espeak's push-back survives the call: the bridge reads that character first in its next
    text (after " .." the next text starts with a "." that is read as "dot"). A runner that
    wants the bridge's exact output prepends it to its next text.
    """
    reader = _Reader(text.replace("\0", " "))
    spans: list[ClauseSpan] = []
    while True:
        start = reader.next_index()
        value, mark, digit = _read_clause(reader, language)
        spans.append(ClauseSpan(start, reader.next_index(), value, mark, digit))
        if reader.decoder_eof():
            break
    # The last clause runs to the end of the text (trailing white space included).
    last = spans[-1]
    spans[-1] = ClauseSpan(last.start, len(text), last.value, last.mark, last.digit_before_mark)
    leftover = reader.ungot[0] if reader.ungot is not None else ""
    return spans, leftover


def _read_clause(reader: _Reader, language: str) -> tuple[int, int, bool]:  # noqa: C901
    """One clause: its value, the index of its mark, and whether a digit precedes the mark.

    Follows ``ReadClause`` for plain text step by step, so that a text splits exactly where
    espeak splits it, including the quirks (a swallowed run of marks, the push-back of the
    character after a clause).
    """
    ordinal_dot = language in ORDINAL_DOT_LANGUAGES
    lowercase_sentence = language in LOWERCASE_SENTENCE_LANGUAGES
    space = (" ", reader.end)
    c1: tuple[str, int] = space
    cprev = " "
    c_next: tuple[str, int] = ("\0", reader.end)
    any_alnum = False
    size = 0  # bytes in espeak's clause buffer
    c2: tuple[str, int] = ("\0", reader.end) if reader.eof() else reader.get()
    while not reader.eof():
        cprev2, cprev = cprev, c1[0]
        c1 = c2
        c2 = space if reader.eof() else reader.get()
        char = c1[0]
        if char in _IGNORED:
            continue
        if _is_alnum(char):
            any_alnum = True
        if char == "\n":
            paragraph = 0
            while not reader.eof() and _is_space(c2[0]):
                if c2[0] == "\n":
                    paragraph += 1
                c2 = reader.get()
            if paragraph > 0:
                reader.unget(c2)
                return CLAUSE_PARAGRAPH - 30 + 30 * min(paragraph, 3), -1, False
        if char == "." and c2[0] == ".":
            while not reader.eof():
                c_next = reader.get()
                if c_next[0] != ".":
                    break
                char = _ELLIPSIS  # three or more dots
                c2 = space
            if char == _ELLIPSIS:
                c2 = c_next
            else:
                reader.unget(c_next)
        punct = clause_type(char)
        end_clause = False
        if punct != CLAUSE_NONE:
            while not reader.eof() and clause_type(c2[0]) & (CLAUSE_QUESTION | CLAUSE_EXCLAMATION):
                c_next = reader.get()
                c2 = c_next
            if punct & _PUNCTUATION_IN_WORD:
                continue
            following = c2[0]
            if (
                _is_space(following)
                or punct & _OPTIONAL_SPACE_AFTER
                or following in _BRACKETS
                or following == "?"
                or reader.eof()
                or following == "\x01"
            ):
                end_clause = True
        if end_clause:
            newlines = 0
            c_next = c2
            if _is_space(c_next[0]):
                while not reader.eof() and _is_space(c_next[0]):
                    if c_next[0] == "\n":
                        newlines += 1
                    c_next = reader.get()
            if char == "." and newlines < 2:
                punct |= DOT_AFTER_LAST_WORD
            following = c_next[0]
            if newlines == 0:
                if (
                    char == ","
                    and cprev == "."
                    and language == "hu"
                    and cprev2.isdecimal()
                    and (following.isdecimal() or _is_lower(following))
                ):
                    char = _CHAR_COMMA_BREAK
                    end_clause = False
                if char == "." and following == "'" and reader.peek() == "s":
                    end_clause = False
                if char == ".":
                    after_number = cprev.isdecimal() or (
                        _is_roman(cprev) and (_is_roman(cprev2) or _is_space(cprev2))
                    )
                    if (
                        ordinal_dot
                        and after_number
                        and (not cprev.isdecimal() or _is_lower(following) or following == "-")
                    ):
                        end_clause = False
                    if _is_lower(following) and not lowercase_sentence:
                        end_clause = False
                    if not any_alnum:
                        char = " "
                        end_clause = False
                elif not any_alnum:
                    end_clause = False
            if end_clause:
                reader.unget(c_next)
                digit = cprev.isdecimal()
                c1 = (char, c1[1])
                if digit and not following.isalpha():
                    punct &= ~DOT_AFTER_LAST_WORD
                if newlines > 1:
                    if punct in (CLAUSE_QUESTION, CLAUSE_EXCLAMATION):
                        return punct + 35, c1[1], digit
                    return CLAUSE_PARAGRAPH, c1[1], digit
                return punct, c1[1], digit
            if not reader.eof() and _is_space(c2[0]):
                reader.unget(c_next)
        c1 = (char, c1[1])
        size += len(char.encode("utf-8", "surrogatepass"))
        if (size > _N_BUF - 75 and not char.isalpha() and not char.isdecimal()) or (
            size >= _N_BUF - 4
        ):
            reader.unget(c2)
            return CLAUSE_NONE, -1, False
    return CLAUSE_EOF, -1, False
