"""The bundled prompt set: labels consistent with the audio, generator reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from vlab.errors import ConfigError
from vlab.prompts import load_prompt_set, select_prompts
from vlab.prompts_gen import _specs, build_prompt

REQUIRED = {
    "short",
    "long",
    "pause",
    "filler",
    "dictation",
    "quiet",
    "noisy",
    "noise_only",
    "multi_turn",
    "low_rate",
    "interruption",
}


@pytest.fixture(scope="module")
def prompts():
    return load_prompt_set()


def test_the_set_covers_every_category_and_stays_small(prompts):
    assert REQUIRED <= {p.category for p in prompts}
    assert sorted(p.pause_ms for p in prompts if p.category == "pause") == [300, 600, 900, 1200]
    assert {p.sample_rate for p in prompts} >= {8000, 16000}
    assert sum(p.file.stat().st_size for p in prompts) < 3_000_000


def test_labels_are_ordered_inside_the_file_and_holds_sit_between_segments(prompts):
    for p in prompts:
        segs = p.speech_segments
        assert all(0 <= a < b <= p.duration_ms for a, b in segs), p.id
        assert all(segs[i][1] <= segs[i + 1][0] for i in range(len(segs) - 1)), p.id
        offs = {b for _, b in segs}
        ons = {a for a, _ in segs}
        assert all(h0 in offs and h1 in ons for h0, h1 in p.hold_spans), p.id
        assert all(e in offs for e in p.end_of_turn_ms), p.id
        assert p.expected_turns == (
            0 if p.category == "noise_only" else 2 if p.category in ("multi_turn", "interruption") else 1
        )


def test_labels_match_the_audio_of_clean_prompts(prompts):
    for p in prompts:
        if p.category in ("noisy", "noise_only") or p.source != "espeak-ng":
            continue
        x, rate = sf.read(p.file, dtype="float64")
        loud = np.abs(x) > 10 ** (-50 / 20)
        for a, b in p.speech_segments:
            i, j = int(round(a * rate / 1000)), int(round(b * rate / 1000))
            assert loud[i] and loud[j - 1], (p.id, a, b)  # first and last samples of a segment are audible
        for a, b in p.hold_spans:
            i, j = int(round(a * rate / 1000)), int(round(b * rate / 1000))
            assert not loud[i + 1 : j - 1].any(), (p.id, a, b)
            assert (j - i) * 1000 / rate == pytest.approx(b - a, abs=0.2)


def test_quiet_and_noisy_prompts_have_their_levels(prompts):
    by_id = {p.id: p for p in prompts}
    assert by_id["quiet_speaker"].extra["speech_rms_dbfs"] == pytest.approx(-30, abs=0.5)
    x, rate = sf.read(by_id["noisy_snr10"].file, dtype="float64")
    a, b = by_id["noisy_snr10"].speech_segments[0]
    noise = x[: int(a * rate / 1000) - 10]
    speech = x[int(a * rate / 1000) : int(b * rate / 1000)]
    snr = 10 * np.log10(np.mean(speech**2) / np.mean(noise**2))
    assert 8 < snr < 13


def test_generator_rebuilds_the_same_structure_with_exact_pauses():
    # eSpeak NG's phrase lengths vary by a few ms from call to call, so a rebuild is not bit-identical;
    # the structure is, and the pauses are exact to the sample.
    spec = next(s for s in _specs() if s.id == "pause_600")
    _, built = build_prompt(spec)
    manifest = json.loads((load_prompt_set()[0].file.parent / "manifest.json").read_text())
    stored = next(e for e in manifest["prompts"] if e["id"] == "pause_600")
    assert len(built["speech_segments"]) == len(stored["speech_segments"]) == 2
    for new, old in zip(built["speech_segments"], stored["speech_segments"], strict=False):
        assert new == pytest.approx(old, abs=30)
    ((h0, h1),) = built["hold_spans"]
    assert h1 - h0 == pytest.approx(600, abs=0.07)


def test_select_prompts_by_id_or_category_and_unknown_names_fail(prompts):
    chosen = select_prompts(prompts, ["short_question", "pause"])
    assert [p.id for p in chosen] == ["short_question", "pause_300", "pause_600", "pause_900", "pause_1200"]
    with pytest.raises(ConfigError, match="no prompt named 'nope'"):
        select_prompts(prompts, ["nope"])
    for everything in (None, [], ["*"]):
        assert select_prompts(prompts, everything) == prompts
    assert select_prompts(prompts, ["pause_600", "pause"])[:2] == [
        chosen[2],
        chosen[1],
    ]  # each once, as asked


def test_each_turn_starts_at_its_first_speech_after_the_previous_end_of_turn(tmp_path):
    from pathlib import Path

    from vlab.prompts import LabelledPrompt

    prompt = LabelledPrompt(
        id="two", file=Path(tmp_path / "two.wav"), text="a | b", sample_rate=16000, duration_ms=4000.0,
        category="multi_turn", speech_segments=((0.0, 500.0), (700.0, 1200.0), (2000.0, 2500.0)),
        hold_spans=((500.0, 700.0),), end_of_turn_ms=(1200.0, 2500.0, 3500.0),
    )  # fmt: skip
    starts = prompt.turn_starts_ms  # speech from the file's first sample; a last turn with no speech
    assert starts[:2] == (0.0, 2000.0) and np.isnan(starts[2])


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no prompt manifest"):
        load_prompt_set(tmp_path)
