"""Words for the responder: tokens, a small stemmer, one-edit tolerance and spoken numbers.

Everything here is deterministic and small on purpose: it is what the emulator's responder reads a
request with (:mod:`vlab.emulator.tool_choice`, :mod:`vlab.emulator.reply_length`), not a language model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?(?:\.[0-9]+)?")
_CLAUSE_BREAK = re.compile(r"[,;:!?]|\.(?!\d)")
_HUMPS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
"""Number words below twenty (``oh`` as in dictated digits)."""
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
"""Number words for the tens."""
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
"""Number words that multiply."""
_NO_STEM = frozenset(
    {
        "news",
        "always",
        "perhaps",
        "series",
        "species",
        "this",
        "yes",
        "bus",
        "gas",
        "was",
        "has",
        "does",
        "plus",
    }
)

NUMBER_WORDS = frozenset(UNITS) | frozenset(TENS) | frozenset(SCALES)
"""Every word a spoken number is made of (besides ``a`` and ``and`` inside one)."""


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a text."""

    text: str
    """As written (case kept)."""
    lower: str
    """Lower case, without a trailing ``'s``."""
    start: int
    """Offset of the word in the text."""


def tokens(text: str) -> list[Token]:
    """The words of ``text`` in order (letters, digits, an apostrophe part, a decimal part)."""
    out = []
    for m in _TOKEN.finditer(text):
        lower = m.group().lower()
        if lower.endswith("'s"):
            lower = lower[:-2]
        out.append(Token(m.group(), lower, m.start()))
    return out


def name_words(name: str) -> list[str]:
    """The words of an identifier: ``get_current_weather`` and ``getCurrentWeather`` → get, current, weather."""
    return [t.lower for t in tokens(_HUMPS.sub(" ", name.replace("_", " ").replace("-", " ")))]


def stem(word: str) -> str:
    """A small suffix stripper: ``-'s``, plural ``-s``/``-es``/``-ies``, ``-ing``, ``-ed``, a final ``-e``.

    Both sides of every comparison go through it, so it only has to be consistent, not linguistic:
    ``forecasts`` → ``forecast``, ``raining`` → ``rain``, ``cities`` → ``city``, ``reserved`` and
    ``reserve`` → ``reserv``.
    """
    w = word.lower()
    if w.endswith("'s"):
        w = w[:-2]
    if w in _NO_STEM:
        return w
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
        if w[-1] == w[-2] and w[-1] not in "lsz":  # running → run, but calling → call
            w = w[:-1]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif (len(w) > 4 and w.endswith("es") and w[-3] in "sxz") or w.endswith(("ches", "shes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 3 and w.endswith("e") and not w.endswith("ee"):
        w = w[:-1]
    return w


def one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by exactly one inserted, deleted or replaced letter."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


def numbers(text: str) -> list[float]:
    """The numbers said in ``text``, in order: digits (``21``, ``3.5``) and number words.

    Number words combine as spoken (``twenty one`` → 21, ``two hundred and five`` → 205, ``a hundred`` →
    100); a run of two or more single digits is dictation and reads as one number (``four two five`` →
    425).
    """
    out: list[float] = []
    for clause in _CLAUSE_BREAK.split(text):
        out += _numbers_in([t.lower for t in tokens(clause)])
    return out


def _numbers_in(words: list[str]) -> list[float]:
    out: list[float] = []
    i = 0
    while i < len(words):
        w = words[i]
        if _is_digits(w):
            out.append(float(w))
            i += 1
            continue
        start = i + 1 if w == "a" and i + 1 < len(words) and words[i + 1] in SCALES else i
        if words[start] not in NUMBER_WORDS:
            i += 1
            continue
        j = start
        run: list[str] = []
        while j < len(words) and (
            words[j] in NUMBER_WORDS
            or (words[j] == "and" and run and j + 1 < len(words) and words[j + 1] in NUMBER_WORDS)
        ):
            if words[j] != "and":
                run.append(words[j])
            j += 1
        if len(run) >= 2 and all(UNITS.get(r, 10) < 10 for r in run):
            out.append(float("".join(str(UNITS[r]) for r in run)))
        else:
            out.append(float(_spoken_value(run, leading_a=start > i)))
        i = j
    return out


def _is_digits(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return word[0].isdigit()


def _spoken_value(run: list[str], *, leading_a: bool) -> int:
    total, current = 0, 1 if leading_a else 0
    for r in run:
        if r in UNITS:
            current += UNITS[r]
        elif r in TENS:
            current += TENS[r]
        else:
            scale = SCALES[r]
            current = max(current, 1) * scale
            if scale >= 1000:
                total, current = total + current, 0
    return total + current
