"""How long the emulated assistant's reply is: short by default, long when asked, capped by tokens.

**Who asks.** Three texts may ask for a length; the first of them that asks decides:

1. the response's instructions (``response.create``'s ``instructions`` or ``additional_instructions``);
2. the user's last words (their text, or the transcript of their audio);
3. the session's ``instructions``.

**Cues** (matched on stems, so "stories" is "story"):

* long: :data:`LONG_CUES` ("long", "lengthy", "detailed", "in depth", "story", "tale", "elaborate"…);
  in the user's words also :data:`ASK_CUES` ("explain", "describe", "tell me about", "tell me more"),
  which in instructions usually describe behaviour instead (the instructions of Microsoft's
  function-calling sample say "Explain when you're using a function");
* a count: "N sentences" (N ≥ 3), "N paragraphs" (:data:`SENTENCES_PER_PARAGRAPH` sentences each) or
  "N words" (N ≥ :data:`LONG_WORDS_FROM`) asks for that length, with digits or number words ("at least
  ten sentences"); a smaller count asks for a short reply;
* short: :data:`SHORT_CUES` ("short", "brief", "concise", "succinct", "one sentence", "few words"…).

A count decides alone ("tell me about it in two sentences" is short); otherwise a long cue wins over a
short one in the same text. :data:`NOT_CUES` ("as long as", "how
long"…) are not cues. Nothing else is understood: "keep it short unless I ask for a story" reads as long.

**A long reply** is the short one (the responder's sentence) followed by "Here is a story." and whole
sentences of the bundled fables (``fables.txt``: Aesop's fables in Joseph Jacobs' words of 1894, public
domain), starting at the fable picked by a SHA-256 hash of the user's words and turn number and going on
through the next ones (each introduced by its title), until it has the sentences or words asked for, or
:data:`LONG_WORDS` words of story when no count was given (about 45 s of eSpeak NG speech at its
default 175 words a minute), never more than :data:`MAX_WORDS`.

**The cap.** ``max_response_output_tokens`` (the session's; a response's ``max_output_tokens``
overrides it) allows ``floor(N / TOKENS_PER_WORD)`` words of reply text, at the usage estimate's own
:data:`TOKENS_PER_WORD` (1.3); ``"inf"`` is no cap. Audio tokens are not counted against it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from vlab.emulator.text_words import numbers, stem, tokens

TOKENS_PER_WORD: Final = 1.3
"""Text tokens per word, as in the ``usage`` estimate of ``response.done``."""
LONG_WORDS: Final = 120
"""Words of story in a long reply when no count is asked for."""
MAX_WORDS: Final = 600
"""Most words of story a reply ever has."""
LONG_WORDS_FROM: Final = 40
"""A count of words from this many up asks for a long reply."""
LONG_SENTENCES_FROM: Final = 3
"""A count of sentences from this many up asks for a long reply."""
SENTENCES_PER_PARAGRAPH: Final = 5
"""Sentences a requested paragraph stands for."""
LONG_CUES: Final = (
    "long",
    "longer",
    "lengthy",
    "detailed",
    "detail",
    "in depth",
    "at length",
    "story",
    "tale",
    "elaborate",
)
"""Phrases that ask for a long reply anywhere."""
ASK_CUES: Final = ("explain", "describe", "tell me about", "tell me more")
"""Phrases that ask for a long reply in the user's words only."""
SHORT_CUES: Final = (
    "short",
    "shorter",
    "brief",
    "briefly",
    "concise",
    "concisely",
    "succinct",
    "terse",
    "one sentence",
    "a sentence",
    "few words",
)
"""Phrases that ask for a short reply."""
NOT_CUES: Final = ("as long as", "how long", "so long", "no longer", "long time")
"""Phrases with a long cue's word that do not ask for length (removed before the cues are looked for)."""
STORY_OPENING: Final = "Here is a story."
"""The sentence between the short reply and the story."""

_COUNTED: Final = {stem("sentence"): "sentences", stem("paragraph"): "paragraphs", stem("word"): "words"}
_SENTENCE: Final = re.compile(r"[^.!?]+[.!?]+[\"']?")


@dataclass(frozen=True, slots=True)
class LengthRequest:
    """The length a reply was asked to have."""

    long: bool = False
    """Whether a long reply was asked for."""
    sentences: int | None = None
    """Sentences of story asked for (a count of sentences or paragraphs)."""
    words: int | None = None
    """Words of story asked for (a count of words)."""


SHORT: Final = LengthRequest()
"""The default: a short reply."""


def _stems(text: str) -> list[str]:
    return [stem(t.lower) for t in tokens(text)]


def _has(stems: list[str], phrase: str) -> bool:
    want = _stems(phrase)
    return any(stems[i : i + len(want)] == want for i in range(len(stems) - len(want) + 1))


def _without(stems: list[str], phrase: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(stems):
        if stems[i : i + len(phrase)] == phrase:
            out.append("")  # keeps the words on either side from joining into a phrase
            i += len(phrase)
        else:
            out.append(stems[i])
            i += 1
    return out


def _count(text: str) -> tuple[str, int] | None:
    """The first "N sentences/paragraphs/words" in ``text``."""
    toks = tokens(text)
    for i, tok in enumerate(toks):
        kind = _COUNTED.get(stem(tok.lower))
        if kind is None or i == 0:
            continue
        said = numbers(" ".join(t.lower for t in toks[max(0, i - 3) : i]))
        if said:
            return kind, int(said[-1])
    return None


def read_request(text: str | None, *, user: bool) -> LengthRequest | None:
    """The length one text asks for, or None when it does not say.

    Args:
        text: Instructions or the user's words.
        user: Whether these are the user's words (they may also ask with :data:`ASK_CUES`).
    """
    if not text:
        return None
    stems = _stems(text)
    for phrase in NOT_CUES:
        want = _stems(phrase)
        stems = _without(stems, want)
    count = _count(text)
    if count is not None:  # a count is the most precise request there is
        kind, n = count
        if kind == "words" and n >= LONG_WORDS_FROM:
            return LengthRequest(True, words=min(n, MAX_WORDS))
        if kind == "sentences" and n >= LONG_SENTENCES_FROM:
            return LengthRequest(True, sentences=n)
        if kind == "paragraphs" and n >= 1:
            return LengthRequest(True, sentences=n * SENTENCES_PER_PARAGRAPH)
        return SHORT
    cues = LONG_CUES + (ASK_CUES if user else ())
    if any(_has(stems, cue) for cue in cues):
        return LengthRequest(True)
    if any(_has(stems, cue) for cue in SHORT_CUES):
        return SHORT
    return None


def requested_length(
    response_instructions: str | None, user_text: str | None, session_instructions: str | None
) -> LengthRequest:
    """The length asked for: response instructions, then the user's words, then session instructions."""
    for text, user in ((response_instructions, False), (user_text, True), (session_instructions, False)):
        request = read_request(text, user=user)
        if request is not None:
            return request
    return SHORT


@functools.cache
def fables() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The bundled fables: ``(title, sentences)`` each, in file order."""
    text = resources.files("vlab.emulator").joinpath("fables.txt").read_text(encoding="utf-8")
    blocks = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip().split("\n\n")
    out = []
    for block in blocks:
        title, _, body = block.strip().partition("\n")
        sentences = tuple(s.strip() for s in _SENTENCE.findall(" ".join(body.split())))
        out.append((title.strip(), sentences))
    return tuple(out)


def lengthen(short: str, request: LengthRequest, seed: str) -> str:
    """``short`` followed by enough story for ``request`` (unchanged when it is not long).

    Args:
        short: The short reply.
        request: The length asked for.
        seed: Picks the first fable (hashed with SHA-256, so the same in every run and process).
    """
    if not request.long:
        return short
    stories = fables()
    first = int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:8], "big") % len(stories)
    parts = [short, STORY_OPENING]
    n_sentences = n_words = 0
    index = first

    def enough() -> bool:
        if n_words >= MAX_WORDS:
            return True
        if request.sentences is not None:
            return n_sentences >= request.sentences
        return n_words >= (request.words if request.words is not None else LONG_WORDS)

    while not enough():
        title, sentences = stories[index % len(stories)]
        parts.append(title + ".")
        for sentence in sentences:
            parts.append(sentence)
            n_sentences += 1
            n_words += len(sentence.split())
            if enough():
                break
        index += 1
    return " ".join(parts)


def word_cap(max_tokens: Any) -> int | None:
    """Most words a reply may have under ``max_response_output_tokens`` (None: no cap)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, float)) or math.isinf(max_tokens):
        return None
    return max(1, int(max_tokens / TOKENS_PER_WORD))


def cap(text: str, max_words: int | None) -> tuple[str, bool]:
    """``text`` cut to ``max_words`` words, and whether it was cut."""
    words = text.split()
    if max_words is None or len(words) <= max_words:
        return text, False
    return " ".join(words[:max_words]), True
