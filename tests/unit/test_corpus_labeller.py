"""``vlab prompts label``: proposals from Silero and energy against the bundled set's exact labels."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from vlab.audio.wav import read_audio
from vlab.cli import main
from vlab.corpus.labeller import label_folder, propose
from vlab.errors import AudioFormatError, ConfigError, VlabWarning
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
    # its two turns are 3 s apart: with a 4 s hold gap, one turn with a hold
    assert main(["prompts", "label", str(tmp_path), "--category", "calls", "--hold-gap-ms", "4000"]) == 0
    assert "proposed 2 speech segments in 1 recording → " in capsys.readouterr().out
    [got] = load_prompt_set(tmp_path)
    assert got.label_source == "auto" and got.category == "calls"
    assert got.expected_turns == 1 and len(got.hold_spans) == 1
    assert got.extra["confidence"]["speech_segments"][0] > 0.8
    with pytest.raises(ConfigError, match="exists.*--overwrite"):
        label_folder(tmp_path)
    assert main(["prompts", "label", str(tmp_path)]) == 2  # the CLI says why, and keeps the manifest
    assert "--overwrite" in capsys.readouterr().err


def test_an_unreadable_recording_is_left_out_with_a_warning_and_the_rest_are_labelled(
    tmp_path: Path, capsys
) -> None:
    [p] = [p for p in load_prompt_set() if p.id == "short_question"]
    shutil.copy(p.file, tmp_path / "good.wav")
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    assert main(["prompts", "label", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    warned = [line for line in err.splitlines() if not line.startswith("labelling: ")]  # beside the progress
    assert warned[0].startswith(
        f"vlab: warning: left out {tmp_path / 'broken.wav'}: not a readable audio file"
    )
    assert err.count("vlab: warning:") == 1 and "1 recording → " in out
    assert [got.id for got in load_prompt_set(tmp_path)] == ["good"]
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "good.wav").unlink()
    with pytest.warns(VlabWarning), pytest.raises(AudioFormatError, match="broken.wav: not a readable"):
        label_folder(tmp_path)  # nothing readable: the error itself
    assert not (tmp_path / "manifest.json").exists()


def test_recordings_without_speech_are_named_in_one_warning_unless_they_are_noise(tmp_path: Path) -> None:
    [noise] = [p for p in load_prompt_set() if p.category == "noise_only"]
    [speech] = [p for p in load_prompt_set() if p.id == "short_question"]
    shutil.copy(noise.file, tmp_path / "hum.wav")
    shutil.copy(speech.file, tmp_path / "question.wav")
    with pytest.warns(
        VlabWarning, match=r"^found no speech in 1 of 2 recordings \(hum.wav\): a sweep scores"
    ):
        label_folder(tmp_path)
    assert [p.expected_turns for p in load_prompt_set(tmp_path)] == [0, 1]  # both kept, for review
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a folder of noise, labelled as such: nothing to warn of
        label_folder(tmp_path, category="noise_only", overwrite=True)


def test_label_refuses_a_bad_folder_or_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no audio files"):
        label_folder(tmp_path)
    with pytest.raises(ConfigError, match="hold_gap_ms must be > 0"):
        label_folder(tmp_path, hold_gap_ms=0)
    with pytest.raises(ConfigError, match="is not a folder"):
        label_folder(tmp_path / "missing")


# --- the steps, on numbers chosen by hand ------------------------------------------------------------

FRAME_MS = 32.0  # Silero's frame at 16 kHz
HOP_MS = 5.0  # the energy frames


def test_a_stretch_rises_above_on_stays_above_off_and_short_gaps_and_blips_are_dropped() -> None:
    from vlab.corpus.labeller import MIN_GAP_MS, MIN_SPEECH_MS, OFF, ON, _stretches

    assert (ON, OFF, MIN_GAP_MS, MIN_SPEECH_MS) == (0.5, 0.35, 100.0, 90.0)  # the docstring's numbers
    quiet, below_on, kept, gone = 0.1, 0.49, 0.35, 0.34
    probs = [quiet, below_on, ON, kept, kept, gone, quiet, quiet, ON, ON, ON, quiet, quiet, quiet, quiet]
    probs += [ON, ON, quiet, quiet, quiet, quiet, ON, ON, ON]  # a 64 ms blip, then speech to the end
    # frames 2-5 (hysteresis: 0.35 holds, 0.34 ends), a 96 ms gap bridged to 8-11; 128 ms and more apart:
    # the 2-frame blip at 15 is shorter than MIN_SPEECH_MS; the last runs to the end
    assert _stretches(np.array(probs)) == [[2, 11], [21, 24]]
    assert _stretches(np.array([below_on] * 10)) == [] and _stretches(np.zeros(0)) == []


def test_an_edge_moves_to_where_the_energy_crosses_the_level_within_reach() -> None:
    from vlab.corpus.labeller import EDGE_SEARCH_MS, _edge

    levels = np.full(120, -80.0)
    levels[20:40] = -20.0  # speech from 100 to 200 ms
    loud_from_start = np.where(np.arange(40) < 10, -20.0, -80.0)  # speech in the first 50 ms
    loud_to_end = loud_from_start[::-1].copy()  # speech in the last 50 ms (150-200 ms)

    def edge(at_ms: float, onset: bool, lv: np.ndarray = levels) -> float:
        return _edge(lv, -50.0, at_ms, onset=onset)

    assert edge(125, True) == edge(75, True) == 100.0  # back over the speech, or forward to it
    assert edge(150, False) == edge(240, False) == 200.0  # forward over the speech, or back to it
    assert edge(20, True, loud_from_start) == 0.0 and edge(170, False, loud_to_end) == 200.0
    assert EDGE_SEARCH_MS == 160.0
    # from silence, the search reaches EDGE_SEARCH_MS (32 frames) past its own frame, and no further
    assert edge(365, False) == 200.0 and edge(370, False) == 370.0
    late = np.where((np.arange(120) >= 60) & (np.arange(120) < 80), -20.0, -80.0)  # speech at 300-400 ms
    assert edge(135, True, late) == 300.0 and edge(130, True, late) == 130.0
    assert edge(600, True) == 600.0  # no speech after it at all
    assert _edge(np.zeros(0), -50.0, 42.0, onset=True) == 42.0


def test_a_gap_at_the_hold_gap_is_an_even_call_and_surer_the_further_it_is() -> None:
    import math

    from vlab.corpus.labeller import _gap_confidence

    assert _gap_confidence(600, 600, hold=True) == _gap_confidence(600, 600, hold=False) == 0.5
    further = 600 * math.exp(0.35)  # one unit of the logistic
    assert _gap_confidence(further, 600, hold=False) == pytest.approx(1 / (1 + math.exp(-1)))
    assert _gap_confidence(further, 600, hold=True) == pytest.approx(1 - 1 / (1 + math.exp(-1)))
    assert _gap_confidence(0.0, 600, hold=True) == _gap_confidence(1.0, 600, hold=True) > 0.999


def test_the_manifest_rounds_times_to_a_tenth_and_confidences_to_a_thousandth() -> None:
    from vlab.corpus.labeller import Proposal

    proposal = Proposal(
        ((100.04, 512.96),), (0.98765,), ((250.0, 300.06),), (0.61234,), (512.96,), (1.0,), 900.0
    )
    assert proposal.to_manifest() == {
        "speech_segments": [[100.0, 513.0]],
        "hold_spans": [[250.0, 300.1]],
        "end_of_turn_ms": [513.0],
        "confidence": {"speech_segments": [0.988], "hold_spans": [0.612], "end_of_turn_ms": [1.0]},
    }


def test_recordings_whose_names_meet_get_distinct_ids(tmp_path: Path) -> None:
    import soundfile as sf

    for name in ("a b.wav", "a_b.wav", "a_b_2.wav", "x/a.wav", "x_a.wav"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / name, 0.1 * np.sin(np.arange(1600) * 0.2), 16000, subtype="PCM_16")
    with pytest.warns(VlabWarning, match="found no speech in 5 of 5 recordings"):  # tones
        manifest = label_folder(tmp_path)
    ids = {
        p.file.name if p.file.parent == tmp_path else f"x/{p.file.name}": p.id
        for p in load_prompt_set(manifest.parent)
    }
    assert ids == {
        "a b.wav": "a_b",
        "a_b.wav": "a_b_2",
        "a_b_2.wav": "a_b_2_2",
        "x/a.wav": "x_a",
        "x_a.wav": "x_a_2",
    }
