"""How the emulated assistant sounds: eSpeak NG voices, word spans and approximate visemes."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vlab.audio.synth import Speech

_ESPEAK_VOICES = ("en-us", "en-us+f4", "en-us", "en-us+m3", "en-us", "en-us+f1")
"""The eSpeak NG voices voice names spread over. Its British English (``en``; it knows no ``en-gb``) is not
among them: PocketSphinx hears it worse, and the emulator's transcripts and replies are tuned on en-us.
Nor are the variants with breath noise (``+f2``, ``+f3``, ``+f5``): eSpeak NG's breath differs from one
process to the next, and a reply must be the same audio in every run."""


def voice_name(voice: Any) -> str:
    """The name of a Voice Live voice given as a string or an object (``{"name": …, "type": …}``)."""
    return str(voice.get("name", "")) if isinstance(voice, dict) else str(voice or "")


def espeak_voice(voice: Any) -> str:
    """Map a Voice Live voice (string or object) to an eSpeak NG voice, deterministically."""
    lowered = voice_name(voice).lower()
    if lowered.startswith("en-gb"):
        return "en-us"  # not eSpeak NG's British voice: see _ESPEAK_VOICES
    return _ESPEAK_VOICES[sum(map(ord, lowered)) % len(_ESPEAK_VOICES)]


# Approximate spelling → Azure viseme id (en-US viseme set: 0 silence, 1 æ ə ʌ, 2 ɑ, 3 ɔ, 4 ɛ ʊ eɪ,
# 5 ɝ, 6 i ɪ j, 7 u w, 8 o, 9 aʊ, 10 ɔɪ, 11 aɪ, 12 h, 13 ɹ, 14 l, 15 s z, 16 ʃ tʃ dʒ ʒ, 17 ð,
# 18 f v, 19 d t n θ, 20 k g ŋ, 21 p b m). Spelling is not pronunciation: these are approximate.
_DIGRAPHS = {
    "sh": 16, "ch": 16, "th": 17, "ng": 20, "ph": 18, "wh": 7, "ck": 20, "ee": 6, "ea": 6, "oo": 7,
    "ou": 9, "ow": 9, "oi": 10, "oy": 10, "ai": 4, "ay": 4, "igh": 11, "er": 5, "ir": 5, "ur": 5,
}  # fmt: skip
_LETTERS = {
    "a": 1, "e": 4, "i": 6, "o": 8, "u": 1, "y": 6, "w": 7, "r": 13, "l": 14, "s": 15, "z": 15,
    "c": 20, "f": 18, "v": 18, "d": 19, "t": 19, "n": 19, "k": 20, "g": 20, "q": 20, "x": 20,
    "p": 21, "b": 21, "m": 21, "h": 12, "j": 16,
}  # fmt: skip


def visemes_for_word(word: str) -> list[int]:
    """Approximate Azure viseme ids for a written English word (letters and common digraphs).

    Consecutive repeats are merged; a word with no letters gives ``[]``.
    """
    letters = re.sub(r"[^a-z]", "", word.lower())
    out: list[int] = []
    i = 0
    while i < len(letters):
        for size in (3, 2):
            if letters[i : i + size] in _DIGRAPHS:
                vid, i = _DIGRAPHS[letters[i : i + size]], i + size
                break
        else:
            vid, i = _LETTERS.get(letters[i], 0), i + 1
        if letters.endswith("e") and i == len(letters) and len(letters) > 2 and vid == 4:
            continue  # silent final e
        if not out or out[-1] != vid:
            out.append(vid)
    return out


_PUNCTUATION = ".,;:!?\"'()[]"


def word_spans(speech: Speech) -> list[tuple[str, float, float]]:
    """(word, offset ms, duration ms) per synthesized word.

    A word lasts until the next one starts; the last one until the last audible sample.
    """
    words = speech.words
    if not words:
        return []
    loud = np.flatnonzero(np.abs(speech.samples) > 10 ** (-50 / 20))
    end_ms = 1000.0 * (int(loud[-1]) + 1) / speech.sample_rate if loud.size else speech.duration_ms
    spans = []
    for i, w in enumerate(words):
        nxt = words[i + 1].offset_ms if i + 1 < len(words) else max(end_ms, w.offset_ms)
        text = w.text.strip(_PUNCTUATION)
        if text:
            spans.append((text, w.offset_ms, max(nxt - w.offset_ms, 0.0)))
    return spans
