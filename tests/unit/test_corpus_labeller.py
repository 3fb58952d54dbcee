"""``vlab prompts label``: proposals from Silero and energy against the bundled set's exact labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vlab.audio.wav import read_audio
from vlab.cli import main
from vlab.corpus.labeller import label_folder, propose
from vlab.errors import ConfigError
from vlab.prompts import load_prompt_set


def _errors(prompts) -> tuple[list[float], list[float]]:
    onsets, offsets = [], []
    for p in prompts:
        proposal = propose(*read_audio(p.file))
        for on, off in p.speech_segments:
            best = max(proposal.speech_segments, key=lambda s: min(off, s[1]) - max(on, s[0]), default=None)
            assert best is not None and min(off, best[1]) > max(on, best[0]), f"{p.id}: {on}-{off} missed"
            onsets.append(abs(best[0] - on))
            offsets.append(abs(best[1] - off))
    return onsets, offsets


def test_proposals_match_the_bundled_labels_within_30_ms_at_the_median() -> None:
    prompts = [p for p in load_prompt_set() if p.speech_segments]
    onsets, offsets = _errors(prompts)
    print(f"onset error p50 {np.median(onsets):.1f} ms, offset error p50 {np.median(offsets):.1f} ms")
    assert np.median(onsets) <= 30 and np.median(offsets) <= 30


def test_proposals_carry_confidences_and_find_no_speech_in_noise() -> None:
    [noise] = [p for p in load_prompt_set() if p.category == "noise_only"]
    assert propose(*read_audio(noise.file)).speech_segments == ()
    [pause] = [p for p in load_prompt_set() if p.id == "pause_600"]
    proposal = propose(*read_audio(pause.file), hold_gap_ms=1000)
    assert len(proposal.speech_segments) == 2 and len(proposal.hold_spans) == 1
    assert all(c > 0.8 for c in proposal.speech_confidence)
    assert proposal.hold_confidence[0] > 0.5 and proposal.end_of_turn_confidence == (1.0,)
    near = propose(*read_audio(pause.file), hold_gap_ms=650)  # a 600 ms gap against a 650 ms rule
    assert 0.5 < near.hold_confidence[0] < proposal.hold_confidence[0]


def test_label_writes_an_auto_prompt_set_and_keeps_an_existing_one(tmp_path: Path, capsys) -> None:
    [p] = [p for p in load_prompt_set() if p.id == "two_turns"]
    shutil.copy(p.file, tmp_path / "call.wav")
    assert main(["prompts", "label", str(tmp_path)]) == 0
    assert "proposed 2 speech segments in 1 recordings" in capsys.readouterr().out
    [got] = load_prompt_set(tmp_path)
    assert got.label_source == "auto" and got.expected_turns == 2
    assert got.extra["confidence"]["speech_segments"][0] > 0.8
    with pytest.raises(ConfigError, match="exists.*--overwrite"):
        label_folder(tmp_path)
    assert main(["prompts", "label", str(tmp_path)]) == 2  # the CLI says why, and keeps the manifest
    assert "--overwrite" in capsys.readouterr().err


def test_label_refuses_a_bad_folder_or_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no audio files"):
        label_folder(tmp_path)
    with pytest.raises(ConfigError, match="hold_gap_ms must be > 0"):
        label_folder(tmp_path, hold_gap_ms=0)
    with pytest.raises(ConfigError, match="is not a folder"):
        label_folder(tmp_path / "missing")
