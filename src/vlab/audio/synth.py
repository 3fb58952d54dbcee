"""Offline speech synthesis with eSpeak NG (bundled by the ``espeakng-loader`` wheel).

Used by the emulator for the assistant's voice and by prompt generators for test speech. The library
is driven through ctypes in retrieval mode. eSpeak NG carries state from one utterance to the next
(its output drifts by a few samples, its word times by up to 1 ms), so every synthesis loads the
library afresh and unloads it after (about 10 ms): the same text, voice and rate always give the same
samples, in any process and in any order, except with the variants that add breath noise (``+f2``,
``+f3``, ``+f5``), which eSpeak NG renders differently from one process to the next. Calls are
serialised with a lock (the state is global). Returns float32 audio at the engine rate (22 050 Hz) with
word timings.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from dataclasses import dataclass, field

import numpy as np

from vlab.audio.pcm import FloatArray, resample
from vlab.errors import ConfigError

_AUDIO_OUTPUT_RETRIEVAL = 1
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EVENT_WORD = 1
_EVENT_LIST_TERMINATED = 0
_RATE_PARAM = 1


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class Word:
    """One synthesized word and where it sits in the audio."""

    text: str
    """The word as written."""
    offset_ms: float
    """Start of the word from the start of the audio, in ms."""


@dataclass(frozen=True, slots=True)
class Speech:
    """Synthesized speech."""

    samples: FloatArray
    """Mono float32 samples in [-1, 1]."""
    sample_rate: int
    """Sample rate of ``samples`` in Hz."""
    words: tuple[Word, ...] = field(default=())
    """Word start times."""

    @property
    def duration_ms(self) -> float:
        """Length of the audio in ms."""
        return 1000.0 * len(self.samples) / self.sample_rate


class _Engine:
    """One loaded copy of the library (with fresh global state) until :meth:`close`."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_RETRIEVAL, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise (espeakng-loader data missing?)")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._marks: list[tuple[int, int, int]] = []
        self._callback = _Callback(self._on_audio)  # keep a reference: ctypes does not
        self._lib.espeak_SetSynthCallback(self._callback)

    def close(self) -> None:
        """Unload the library, so the next engine starts from a clean state."""
        import _ctypes

        self._lib.espeak_Terminate()
        _ctypes.dlclose(self._lib._handle)

    def _on_audio(self, wav: ctypes._Pointer, n: int, events: ctypes._Pointer) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._marks.append((ev.text_position, ev.length, ev.audio_position))
            i += 1
        return 0

    def speak(self, text: str, voice: str, words_per_minute: int) -> Speech:
        data = text.encode("utf-8")
        self._chunks, self._marks = [], []
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(
                f"eSpeak NG knows no voice {voice!r}. Use 'en-us' (American English), 'en' (British English) "
                "or another code of eSpeak NG's list (https://github.com/espeak-ng/espeak-ng/blob/master/docs/languages.md); "
                "a variant follows a '+', as in 'en-us+f4'."
            )
        self._lib.espeak_SetParameter(_RATE_PARAM, int(words_per_minute), 0)
        self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        chunks, marks = self._chunks, self._marks
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        words = []
        for pos, length, audio_ms in marks:
            start = max(pos - 1, 0)  # eSpeak counts characters from 1
            words.append(Word(data[start : start + length].decode("utf-8", "replace"), float(audio_ms)))
        return Speech(pcm.astype(np.float32) / 32768.0, self.sample_rate, tuple(words))


_engine_lock = threading.Lock()


def _speak(text: str, voice: str, words_per_minute: int) -> Speech:
    """Speak with a freshly loaded library (eSpeak NG's state would otherwise carry over)."""
    with _engine_lock:
        engine = _Engine()
        try:
            return engine.speak(text, voice, words_per_minute)
        finally:
            engine.close()


@functools.lru_cache(maxsize=512)
def synthesize(
    text: str, *, voice: str = "en-us", words_per_minute: int = 175, sample_rate: int | None = None
) -> Speech:
    """Speak ``text`` with eSpeak NG, offline.

    A pure function of its arguments (see the module docstring), so results are kept: the emulator's
    replies cost their synthesis once. Treat the returned samples as read-only.

    Args:
        text: What to say.
        voice: eSpeak NG voice name (``en-us``, ``en`` for British English, ``en-us+f4``...; the breathy
            ``+f2``, ``+f3`` and ``+f5`` differ between processes).
        words_per_minute: Speaking rate.
        sample_rate: Resample to this rate in Hz (default: the engine's 22 050 Hz).

    Returns:
        The speech and its word timings.

    Raises:
        ConfigError: eSpeak NG knows no voice ``voice``.
    """
    speech = _speak(text, voice, words_per_minute)
    if sample_rate and sample_rate != speech.sample_rate:
        speech = Speech(resample(speech.samples, speech.sample_rate, sample_rate), sample_rate, speech.words)
    speech.samples.flags.writeable = False  # shared by every caller of the cache
    return speech
