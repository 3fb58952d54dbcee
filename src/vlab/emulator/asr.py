"""Offline speech recognition of the user's audio: PocketSphinx with its bundled US-English model.

The emulator uses it for ``input_audio_transcription`` (``conversation.item.input_audio_transcription.*``),
for the responder ("You said: …" about what was heard) and for the semantic turn detection's
end-of-utterance cues. Recognition is real, open-vocabulary decoding with PocketSphinx's general
US-English acoustic model, dictionary and trigram language model (no grammar, keyword list or bias).

Front end: the audio is resampled to the model's 16 kHz and a low, seeded Gaussian noise floor
(RMS 3e-3, about -50 dBFS) is added. Digitally silent stretches, which synthetic prompts and TTS output
are full of, otherwise give the acoustic features a -inf energy that wrecks cepstral mean normalisation;
on eSpeak NG speech this front end lowers the word error rate from about 0.6–0.8 to about 0.2–0.3
(measured in ``docs/emulator.md``). Real microphone audio already has a noise floor above it.

Decoding is CPU-bound (about a quarter of real time on one core), and PocketSphinx holds the GIL while
it decodes: on a thread, it froze the emulator's event loop (every connection) for the length of each
decode. :func:`recognize` therefore runs PocketSphinx in a process of its own (one, so the decoder is
built once), and other recognizers on a worker thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import hashlib
import importlib.metadata
import json
import re
import struct
import subprocess
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from vlab._process import close_pipes
from vlab.audio.pcm import float_to_pcm16, pcm16_to_float, resample
from vlab.emulator.transcript_store import TranscriptStore, store_folder

MODEL_RATE = 16000
"""Sample rate of PocketSphinx's en-us acoustic model, in Hz."""
NOISE_FLOOR_RMS = 3e-3
"""RMS (re full scale 1.0) of the noise floor added before decoding."""
_FRAME_MS = 10.0
_NOT_WORDS = re.compile(r"^(<.*>|\[.*\])$")


class RecognitionError(RuntimeError):
    """Recognition could not run (model missing, decoder failure)."""


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    """One recognized word and where it is in the audio."""

    text: str
    """The word, lower case, as in the recognizer's dictionary."""
    offset_ms: float
    """Start from the start of the recognized audio, in ms."""
    duration_ms: float
    """Length in ms."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the recognizer heard."""

    words: tuple[RecognizedWord, ...] = field(default=())
    """Recognized words in order (silences and noises removed)."""
    audio_ms: float = 0.0
    """Length of the recognized audio, in ms."""
    decode_s: float = 0.0
    """Wall seconds the decoding took (for the ground-truth trace)."""

    @property
    def text(self) -> str:
        """The words joined by spaces ("" when nothing was recognized)."""
        return " ".join(w.text for w in self.words)


class Recognizer(Protocol):
    """Anything that turns PCM16 mono audio into a :class:`Transcript` (blocking; run in a thread)."""

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """Recognize ``pcm16`` (little-endian mono at ``sample_rate`` Hz).

        Raises:
            RecognitionError: Recognition failed.
        """
        ...


class PocketSphinxRecognizer:
    """PocketSphinx 5 with the ``en-us`` model shipped in its wheel; the decoder is built lazily.

    Args:
        noise_floor_rms: RMS of the seeded noise floor added before decoding (0 disables it).
    """

    def __init__(self, *, noise_floor_rms: float = NOISE_FLOOR_RMS) -> None:
        self.noise_floor_rms = noise_floor_rms
        self._decoder: object | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the decoder now rather than on the first recognition (it takes a few tenths of a second)."""
        self._get_decoder()

    def _get_decoder(self) -> object:
        if self._decoder is None:
            try:
                from pocketsphinx import Decoder
            except ImportError as exc:  # pragma: no cover - it is a dependency
                raise RecognitionError(f"pocketsphinx is not installed: {exc}") from exc
            self._decoder = Decoder(samprate=MODEL_RATE, loglevel="FATAL")
        return self._decoder

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """Recognize ``pcm16`` at ``sample_rate`` Hz (see :class:`Recognizer`)."""
        import time

        start = time.perf_counter()
        samples = pcm16_to_float(pcm16[: len(pcm16) // 2 * 2])
        audio_ms = 1000.0 * len(samples) / sample_rate if sample_rate else 0.0
        if len(samples) < sample_rate // 10:
            return Transcript((), audio_ms, time.perf_counter() - start)
        if sample_rate != MODEL_RATE:
            samples = resample(samples, sample_rate, MODEL_RATE)
        if self.noise_floor_rms > 0:
            rng = np.random.default_rng(len(samples))
            samples = samples + rng.normal(0.0, self.noise_floor_rms, len(samples)).astype(np.float32)
        data = float_to_pcm16(np.clip(samples, -1.0, 1.0).astype(np.float32))
        with self._lock:
            try:
                decoder = self._get_decoder()
                decoder.start_utt()  # type: ignore[attr-defined]
                decoder.process_raw(data, full_utt=True)  # type: ignore[attr-defined]
                decoder.end_utt()  # type: ignore[attr-defined]
                segments = list(decoder.seg())  # type: ignore[attr-defined]
            except RecognitionError:
                raise
            except Exception as exc:
                raise RecognitionError(f"PocketSphinx failed: {exc}") from exc
        words = []
        for seg in segments:
            word = re.sub(r"\(\d+\)$", "", str(seg.word))
            if _NOT_WORDS.match(word):
                continue
            words.append(
                RecognizedWord(
                    word,
                    seg.start_frame * _FRAME_MS,
                    (seg.end_frame - seg.start_frame + 1) * _FRAME_MS,
                )
            )
        return Transcript(tuple(words), audio_ms, time.perf_counter() - start)


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_default: PocketSphinxRecognizer | None = None
READ_CACHE_SIZE = 1024
"""How many PocketSphinx transcripts :func:`recognize` remembers by content (least recently used go)."""


@dataclass(slots=True)
class _Reading:
    """A transcript being read or read (on the ASR worker thread), and how many callers await it."""

    future: Future[Transcript]
    waiting: int = 0


_transcripts: OrderedDict[str, _Reading] = OrderedDict()
_transcripts_lock = threading.Lock()
_stores: dict[Path, TranscriptStore] = {}  # cache folder → its store (used on the ASR worker thread)
_FRONT_END = "16k|seeded-noise-floor|v1"
"""The front end :class:`PocketSphinxRecognizer` applies before decoding: change it when that changes,
so stored transcripts of the old one are not reused."""

REQUEST = struct.Struct("<IdI")
"""A request to the recognition process: sample rate (Hz), noise floor RMS, PCM16 byte count; the audio
follows. The answer is a 4-byte length and that many bytes of JSON (:func:`transcript_json`)."""


def default_recognizer() -> PocketSphinxRecognizer:
    """The process-wide PocketSphinx recognizer (one decoder, built on first use)."""
    global _default
    with _executor_lock:
        if _default is None:
            _default = PocketSphinxRecognizer()
        return _default


def start_recognition() -> None:
    """Start the recognition process in the background, unless it runs, so a turn does not wait for it."""
    if _PROCESS.pid is None:  # read off the ASR thread: at worst a second start, which finds it running
        _thread().submit(_PROCESS.start)


async def recognize(recognizer: Recognizer, pcm16: bytes, sample_rate: int) -> Transcript:
    """Run ``recognizer`` beside the event loop, on the single ASR worker thread, and await the transcript.

    A :class:`PocketSphinxRecognizer` decodes in the recognition process (:class:`RecognitionProcess`):
    PocketSphinx holds the GIL while it decodes, so on a thread it froze the event loop, and every
    connection, for the length of each decode. Its transcripts are remembered by content: in memory
    (:data:`READ_CACHE_SIZE` of them, for every event loop of this process), so audio that is being or
    has been read is not decoded again (the same turn in each repeat and setting of a sweep), and on
    disk (:mod:`vlab.emulator.transcript_store`), for the next processes and runs. A transcript that
    was remembered says ``decode_s`` 0. A reading whose callers were all cancelled (a
    closed connection's) is dropped if it has not started.

    Raises:
        RecognitionError: Recognition failed.
    """
    if not isinstance(recognizer, PocketSphinxRecognizer):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_thread(), recognizer.transcribe, pcm16, sample_rate)
    key = _key(recognizer.noise_floor_rms, sample_rate, pcm16)
    with _transcripts_lock:
        reading = _transcripts.get(key)
        remembered = reading is not None
        if reading is None:
            reading = _transcripts[key] = _Reading(
                _thread().submit(_read_or_decode, key, recognizer.noise_floor_rms, pcm16, sample_rate)
            )
            if len(_transcripts) > READ_CACHE_SIZE:
                _transcripts.popitem(last=False)
        else:
            _transcripts.move_to_end(key)
        reading.waiting += 1
    try:  # shielded: a caller that is cancelled leaves the reading to the others
        transcript = await asyncio.shield(asyncio.wrap_future(reading.future))
    except BaseException as exc:
        with _transcripts_lock:
            reading.waiting -= 1
            # a failure is not remembered (the next request tries again, in a new process); a reading
            # that nobody waits for any more leaves the queue if it has not started (a closed emulator's)
            forget = isinstance(exc, RecognitionError) or (reading.waiting == 0 and reading.future.cancel())
            if forget and _transcripts.get(key) is reading:
                del _transcripts[key]
        raise
    with _transcripts_lock:
        reading.waiting -= 1
    return replace(transcript, decode_s=0.0) if remembered else transcript


def _key(noise_floor_rms: float, sample_rate: int, pcm16: bytes) -> str:
    """What decides a transcript: the audio, its rate, the front end and the recognizer's version."""
    digest = hashlib.blake2b(
        f"{_FRONT_END}|{_pocketsphinx_version()}|{sample_rate}|{noise_floor_rms!r}|".encode(), digest_size=16
    )
    digest.update(pcm16)  # not a copy of the audio with the head in front
    return digest.hexdigest()


@functools.cache
def _pocketsphinx_version() -> str:
    try:
        return importlib.metadata.version("pocketsphinx")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _read_or_decode(key: str, noise_floor_rms: float, pcm16: bytes, sample_rate: int) -> Transcript:
    """On the ASR worker thread: the transcript from the disk store, or decoded (and stored)."""
    folder = store_folder()
    store = None if folder is None else _stores.get(folder)
    if folder is not None and store is None:
        store = _stores[folder] = TranscriptStore(folder)
    if store is not None and (answer := store.get(key)) is not None:
        with contextlib.suppress(ValueError):
            return replace(transcript_from_json(answer), decode_s=0.0)
    transcript = _PROCESS.transcribe(noise_floor_rms, pcm16, sample_rate)
    if store is not None:
        store.put(key, transcript_json(transcript))
    return transcript


def _thread() -> ThreadPoolExecutor:
    """The single ASR worker thread (the one user of :data:`_PROCESS`)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlab-asr")
        return _executor


class RecognitionProcess:
    """PocketSphinx in a child process (``python -m vlab.emulator.asr_process``), started on first use.

    Use it from one thread at a time (the ASR worker thread): a request is written and its answer read
    before the next. A process that exits fails its request with :class:`RecognitionError`; the next
    request starts a new one.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running recognition process's id, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> subprocess.Popen[bytes]:
        """Start the process if it is not running (it then loads the default decoder); returns it."""
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            close_pipes(proc)  # it exited: a new one follows
            proc = None
        if proc is None:
            proc = self._proc = subprocess.Popen(
                [sys.executable, "-m", "vlab.emulator.asr_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            atexit.register(_close, proc)
        return proc

    def close(self) -> None:
        """End the recognition process (the next request starts a new one)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _close(proc)

    def transcribe(self, noise_floor_rms: float, pcm16: bytes, sample_rate: int) -> Transcript:
        """:meth:`PocketSphinxRecognizer.transcribe` in the recognition process.

        Its decoder is the process's one, which carries its cepstral mean from one utterance to the
        next as a :class:`PocketSphinxRecognizer` does: the same audio can come out slightly differently
        after other audio.
        """
        proc = self.start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(REQUEST.pack(sample_rate, noise_floor_rms, len(pcm16)) + pcm16)
            proc.stdin.flush()
            answer = json.loads(_read(proc.stdout, int.from_bytes(_read(proc.stdout, 4), "little")))
        except (OSError, EOFError, ValueError) as exc:
            self._proc = None
            proc.kill()
            proc.wait()
            close_pipes(proc)
            raise RecognitionError(
                f"the speech recognition process failed ({exc}); it restarts next time"
            ) from exc
        if "error" in answer:
            raise RecognitionError(answer["error"])
        return _transcript(answer)


def transcript_json(transcript: Transcript) -> bytes:
    """The recognition process's answer for ``transcript`` (what :class:`RecognitionProcess` reads)."""
    words = [(w.text, w.offset_ms, w.duration_ms) for w in transcript.words]
    return json.dumps(
        {"words": words, "audio_ms": transcript.audio_ms, "decode_s": transcript.decode_s}
    ).encode()


def transcript_from_json(answer: bytes) -> Transcript:
    """The transcript of a :func:`transcript_json` answer.

    Raises:
        ValueError: ``answer`` is not one.
    """
    return _transcript(json.loads(answer))


def _transcript(answer: Any) -> Transcript:
    try:
        words = tuple(RecognizedWord(*w) for w in answer["words"])
        return Transcript(words, float(answer["audio_ms"]), float(answer["decode_s"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a transcript: {exc}") from exc


def _read(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("the speech recognition process exited")
    return data


def _close(proc: subprocess.Popen[bytes]) -> None:
    """At exit: end the recognition process's input, so it exits."""
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    close_pipes(proc)


_PROCESS = RecognitionProcess()


_SILENT = 4
"""|PCM16 sample| at or below which a turn's edges count as digital silence (about -78 dBFS)."""
_HEAR_PAD_MS = 200


async def read_turn(recognizer: Recognizer, pcm16: bytes, sample_rate: int) -> Transcript:
    """What the recognizer hears in (part of) a user turn: every reading of the user's audio goes here.

    The turn's digitally silent edges are cut down to :data:`_HEAR_PAD_MS` each before it is read, so
    the same speech is the same audio to :func:`recognize` (which reads it once per process) however
    much silence was committed around it: another turn-detection setting of a sweep, or where a live
    microphone's first chunk fell (PocketSphinx heard "weather" as "that women" at 2 of 42 offsets).
    Word offsets count from the start of the cut audio.

    Raises:
        RecognitionError: Recognition failed.
    """
    samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENT)
    pad = sample_rate * _HEAR_PAD_MS // 1000
    if len(loud):
        samples = samples[max(int(loud[0]) - pad, 0) : int(loud[-1]) + 1 + pad]
    return await recognize(recognizer, samples.tobytes(), sample_rate)


async def hear(recognizer: Recognizer, pcm16: bytes, sample_rate: int) -> str:
    """The words of a user turn, for a reply that follows what was said (:func:`read_turn`'s text).

    Raises:
        RecognitionError: Recognition failed.
    """
    return (await read_turn(recognizer, pcm16, sample_rate)).text


# --- end-of-utterance cues and filler words ----------------------------------------------------------

FILLERS = frozenset({"um", "umm", "uh", "er", "erm", "ah", "hmm", "mm", "huh", "like", "so"})
"""Words that, at the end of what was said so far, suggest the speaker is not done."""
REMOVABLE_FILLERS = frozenset({"um", "umm", "uh", "er", "erm", "ah", "hmm", "mm", "huh"})
"""Fillers ``remove_filler_words`` strips from transcripts (not "like"/"so", which are also real words)."""
CONTINUATIONS = frozenset(
    {
        # conjunctions
        "and", "but", "or", "nor", "because", "if", "that", "then", "than", "when", "while", "although",
        # prepositions and articles: a sentence does not end on them
        "to", "the", "a", "an", "of", "for", "with", "at", "in", "on", "from", "into", "about", "my", "your",
    }
)  # fmt: skip
"""Function words after which an English utterance is very likely unfinished."""


def sounds_unfinished(words: list[str] | tuple[str, ...]) -> bool:
    """End-of-utterance cue: True when the last word is a filler, a conjunction, a preposition or an article."""
    return bool(words) and (words[-1] in FILLERS or words[-1] in CONTINUATIONS)


def strip_fillers(words: list[str] | tuple[str, ...]) -> list[str]:
    """``words`` without the :data:`REMOVABLE_FILLERS`."""
    return [w for w in words if w not in REMOVABLE_FILLERS]
