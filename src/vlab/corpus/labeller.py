"""Propose labels for recordings that have none: speech from Silero, edges from energy, turns by the hold-gap rule.

:func:`propose` runs Silero over a recording (16 kHz, 32 ms frames) and keeps the stretches where its
probability rises above 0.5 and stays above 0.35 (at least :data:`MIN_SPEECH_MS` long; gaps shorter than
:data:`MIN_GAP_MS` are bridged). Silero's frames are 32 ms and its state lags the audio, so each edge is
then moved to where the 5 ms frame energy crosses a level 12 dB above the recording's noise floor
(searched within :data:`EDGE_SEARCH_MS` of Silero's edge). Holds and ends of turn follow
:func:`~vlab.corpus.importer.derive_turns`.

Every proposal has a confidence in [0, 1]: a segment's is Silero's mean probability over it; a hold's
and an end of turn's say how clearly the gap falls on its side of ``hold_gap_ms`` (a gap of exactly
``hold_gap_ms`` is 0.5). :func:`label_folder` writes them as a prompt set whose labels are ``auto``
until someone reviews them (:class:`vlab.widgets.LabelEditor`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlab.audio.pcm import FloatArray
from vlab.corpus.importer import (
    DEFAULT_HOLD_GAP_MS,
    LABEL_GENERATOR,
    audio_files,
    check_replaceable,
    derive_turns,
    manifest_file,
    prompt_id,
    recordings_folder,
    write_manifest,
)
from vlab.errors import AudioFormatError, first_few, warn_user
from vlab.prompts import NOISE_ONLY

if TYPE_CHECKING:
    import pandas as pd

    from vlab.settings import SessionSettings

__all__ = [
    "EDGE_SEARCH_MS",
    "MIN_GAP_MS",
    "MIN_SPEECH_MS",
    "Proposal",
    "label_folder",
    "propose",
    "run_speech_ends_ms",
    "sent_speech_ends_ms",
    "speech_ends_ms",
]

RATE = 16000
_FRAME = 512  # Silero's 32 ms frame at 16 kHz
_HOP = 80  # 5 ms energy frames
ON, OFF = 0.5, 0.35
MIN_SPEECH_MS = 90.0
"""Shorter stretches above the threshold are dropped (clicks, breaths)."""
MIN_GAP_MS = 100.0
"""Shorter gaps between stretches are bridged (a stop consonant is no pause)."""
EDGE_SEARCH_MS = 160.0
"""How far from Silero's edge the energy edge is looked for."""
_ABOVE_FLOOR_DB = 12.0


@dataclass(frozen=True)
class Proposal:
    """Proposed labels of one recording, with confidences (ms from its first sample)."""

    speech_segments: tuple[tuple[float, float], ...]
    """Stretches of speech, in order."""
    speech_confidence: tuple[float, ...]
    """Silero's mean probability over each segment."""
    hold_spans: tuple[tuple[float, float], ...]
    """Pauses inside a turn (gaps shorter than ``hold_gap_ms``)."""
    hold_confidence: tuple[float, ...]
    """How surely each hold is one."""
    end_of_turn_ms: tuple[float, ...]
    """End of each turn."""
    end_of_turn_confidence: tuple[float, ...]
    """How surely each end of turn is one."""
    duration_ms: float
    """Length of the recording."""

    def to_manifest(self) -> dict[str, Any]:
        """The manifest keys of these labels (``confidence`` holds the confidences, rounded)."""
        return {
            "speech_segments": [[round(a, 1), round(b, 1)] for a, b in self.speech_segments],
            "hold_spans": [[round(a, 1), round(b, 1)] for a, b in self.hold_spans],
            "end_of_turn_ms": [round(x, 1) for x in self.end_of_turn_ms],
            "confidence": {
                "speech_segments": [round(c, 3) for c in self.speech_confidence],
                "hold_spans": [round(c, 3) for c in self.hold_confidence],
                "end_of_turn_ms": [round(c, 3) for c in self.end_of_turn_confidence],
            },
        }


def _silero(x: FloatArray) -> np.ndarray:
    from vlab.audio.silero import SileroStream, step_streams

    n = len(x) // _FRAME
    if n == 0:
        return np.zeros(0)
    return np.asarray(step_streams([SileroStream(RATE)], [x[: n * _FRAME].reshape(n, _FRAME)])[0])


def _stretches(probs: np.ndarray) -> list[list[int]]:
    """Frame ranges [first, end) where the probability rises above ON and stays above OFF."""
    out: list[list[int]] = []
    start = None
    for i, p in enumerate(probs):
        if start is None and p >= ON:
            start = i
        elif start is not None and p < OFF:
            out.append([start, i])
            start = None
    if start is not None:
        out.append([start, len(probs)])
    frame_ms = 1000 * _FRAME / RATE
    merged: list[list[int]] = []
    for s in out:
        if merged and (s[0] - merged[-1][1]) * frame_ms < MIN_GAP_MS:
            merged[-1][1] = s[1]
        else:
            merged.append(s)
    return [s for s in merged if (s[1] - s[0]) * frame_ms >= MIN_SPEECH_MS]


def _levels_db(x: FloatArray) -> np.ndarray:
    n = len(x) // _HOP
    frames = x[: n * _HOP].reshape(n, _HOP).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def _edge(levels: np.ndarray, level: float, at_ms: float, onset: bool) -> float:
    """Move Silero's edge to where the energy crosses ``level`` nearby (ms); unchanged if it never does.

    An onset moves back over the loud frames just before it, or forward to the first loud frame; an
    offset forward over the loud frames after it, or back to the last loud frame (Silero's lags).
    """
    hop_ms = 1000 * _HOP / RATE
    reach = int(EDGE_SEARCH_MS / hop_ms)
    n = len(levels)
    if n == 0:
        return at_ms
    i = min(max(int(round(at_ms / hop_ms)), 0), n - 1)
    loud = levels >= level
    step = -1 if onset else 1
    j = i if onset else i - 1
    if 0 <= j < n and loud[j]:  # inside speech: extend outwards while loud
        k = j
        while 0 <= k + step < n and loud[k + step] and abs(k + step - j) <= reach:
            k += step
    else:  # in silence: look inwards for the speech
        k = j
        while 0 <= k - step < n and not loud[k] and abs(k - j) <= reach:
            k -= step
        if not (0 <= k < n and loud[k]):
            return at_ms
    return k * hop_ms if onset else (k + 1) * hop_ms


def _gap_confidence(gap_ms: float, hold_gap_ms: float, hold: bool) -> float:
    """0.5 at the rule's threshold, towards 1 the further the gap is on its side (a logistic in log time)."""
    z = math.log(max(gap_ms, 1.0) / hold_gap_ms) / 0.35
    p_eot = 1 / (1 + math.exp(-z))
    return 1 - p_eot if hold else p_eot


def propose(samples: FloatArray, rate: int, hold_gap_ms: float = DEFAULT_HOLD_GAP_MS) -> Proposal:
    """Proposed speech, holds and ends of turn of one mono recording (float samples at ``rate``)."""
    from vlab.audio.pcm import resample

    x = resample(np.asarray(samples, dtype=np.float32), rate, RATE) if rate != RATE else samples
    x = np.asarray(x, dtype=np.float32)
    duration_ms = 1000 * len(x) / RATE
    probs = _silero(x)
    levels = _levels_db(x)
    floor = float(np.percentile(levels, 10)) if len(levels) else -120.0
    level = max(floor + _ABOVE_FLOOR_DB, -70.0)
    frame_ms = 1000 * _FRAME / RATE
    segments: list[tuple[float, float]] = []
    confidence: list[float] = []
    for a, b in _stretches(probs):
        on = _edge(levels, level, a * frame_ms, onset=True)
        off = _edge(levels, level, b * frame_ms, onset=False)
        if segments and on <= segments[-1][1]:  # two edges met: keep the stretches apart at Silero's cut
            on = max(on, segments[-1][1])
        if off > on:
            segments.append((on, min(off, duration_ms)))
            confidence.append(float(np.mean(probs[a:b])))
    turns = derive_turns(((a, b, "") for a, b in segments), hold_gap_ms)
    holds = tuple(_gap_confidence(b - a, hold_gap_ms, hold=True) for a, b in turns.hold_spans)
    eots = []
    for eot in turns.end_of_turn_ms:
        after = [on for on, _ in turns.speech_segments if on > eot]
        gap = (after[0] if after else duration_ms) - eot
        eots.append(1.0 if not after else _gap_confidence(gap, hold_gap_ms, hold=False))
    return Proposal(
        turns.speech_segments,
        tuple(confidence),
        turns.hold_spans,
        holds,
        turns.end_of_turn_ms,
        tuple(eots),
        duration_ms,
    )


def speech_ends_ms(samples: FloatArray, rate: int) -> list[float]:
    """Where each stretch of speech in a recording ends, in ms from its first sample (:func:`propose`'s).

    What :func:`vlab.metrics.turn_latency` times a turn from (``speech_ends_ms``) when a run has no labels
    and its turn detection may have held the turn for more speech.
    """
    return [end for _, end in propose(samples, rate).speech_segments]


def sent_speech_ends_ms(pcm16: bytes, settings: SessionSettings) -> list[float] | None:
    """:func:`speech_ends_ms` of PCM16 audio sent with ``settings``, if their turn detection may hold a turn.

    None when it cannot (no end-of-utterance wait). Without labels, each such turn's wait is then timed
    from there rather than from the server's ``audio_end_ms`` minus the silence timer, which leaves the
    hold out (``vlab replay``, the session panel's WAV prompts).
    """
    from vlab.audio.pcm import pcm16_to_float

    if settings.turn_hold_ms is None:
        return None
    return speech_ends_ms(pcm16_to_float(pcm16), settings.input_sample_rate)


def run_speech_ends_ms(run_dir: str | os.PathLike[str], events: pd.DataFrame) -> list[float] | None:
    """:func:`speech_ends_ms` of a run folder's ``input.wav``, when its turn detection may hold a turn.

    None when the logged turn detection has no end-of-utterance wait (the server's ``audio_end_ms`` minus
    the silence timer is then where the speech ended) or the run kept no ``input.wav``.
    """
    import soundfile as sf

    from vlab.audio.recording import INPUT_WAV
    from vlab.metrics.events import session_vad_settings
    from vlab.protocol_limits import eou_timeout_ms

    sent = Path(run_dir) / INPUT_WAV
    if eou_timeout_ms(session_vad_settings(events)) is None or not sent.is_file():
        return None
    samples, rate = sf.read(sent, dtype="float32")  # what the session sent: mono PCM16, maybe none
    return speech_ends_ms(samples, rate) if len(samples) else []


def label_folder(
    folder: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    hold_gap_ms: float = DEFAULT_HOLD_GAP_MS,
    category: str = "recorded",
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Propose labels for every recording under ``folder`` and write them as a prompt set (``auto`` labels).

    A recording that cannot be read is left out with a warning that says why; one more warning names the
    recordings that are not silence but in which no speech was found (unless ``category`` is ``noise_only``).

    Args:
        folder: The recordings (searched recursively).
        out: Manifest path or folder (default: ``folder/manifest.json``).
        hold_gap_ms: The hold-gap rule for holds and ends of turn.
        category: The ``category`` of every prompt.
        overwrite: Replace an existing manifest (its labels may have been reviewed).
        progress: Show a progress bar (on a terminal or in a notebook).

    Returns:
        The manifest's path.

    Raises:
        ConfigError: No recordings, or a manifest is already there and ``overwrite`` is False.
        AudioFormatError: No recording can be read (the first one's error).
    """
    from vlab._progress import progress_bar
    from vlab.audio.wav import is_silent, read_audio

    root, manifest = recordings_folder(folder, out, hold_gap_ms)
    check_replaceable(manifest, overwrite=overwrite)
    audio = audio_files(root)
    base = manifest.parent.resolve()
    entries: list[dict[str, Any]] = []
    taken: set[str] = set()
    first_error: AudioFormatError | None = None
    silent: set[str] = set()  # recordings read_audio warned of
    for path in progress_bar(len(audio), "labelling", "file", audio) if progress else audio:
        try:
            samples, rate = read_audio(path)
        except AudioFormatError as exc:
            first_error = first_error or exc
            warn_user(f"left out {exc}")
            continue
        proposal = propose(samples, rate, hold_gap_ms)
        file = manifest_file(path, base)
        if is_silent(samples):
            silent.add(file)
        entries.append(
            {
                "id": prompt_id(path.relative_to(root), taken),
                "file": file,
                "text": "",
                "sample_rate": rate,
                "duration_ms": round(1000 * len(samples) / rate, 3),
                "category": category,
                "source": "recording",
                "label_source": "auto",
                **proposal.to_manifest(),
                "notes": f"proposed by vlab prompts label (Silero + energy edges; hold gap {hold_gap_ms:g} ms)",
            }
        )
    if first_error is not None and not entries:
        raise first_error
    write_manifest(manifest, entries, generator=LABEL_GENERATOR)
    unheard = [
        entry["file"] for entry in entries if not entry["speech_segments"] and entry["file"] not in silent
    ]
    if unheard and category != NOISE_ONLY:  # a silent one had its own warning from read_audio
        warn_user(
            f"found no speech in {len(unheard)} of {len(entries)} recordings ({first_few(unheard)}): a sweep "
            "scores nothing in them. Check them in the "
            "LabelEditor; a recording of noise alone counts the false starts it causes once its category "
            f'is "{NOISE_ONLY}" in the manifest'
        )
    return manifest
