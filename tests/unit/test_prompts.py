"""The bundled prompt set: labels consistent with the audio, generator reproducible."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from vlab.errors import ConfigError
from vlab.prompts import load_prompt_set, select_prompts
from vlab.prompts_gen import (
    AUDIBLE_DBFS,
    HUMAN_PROMPTS,
    INTERRUPT_GAP_MS,
    LEAD_MS,
    _audible_extent,
    _human_entries,
    _notes,
    _specs,
    build_prompt,
)

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
    with pytest.raises(ConfigError, match="no prompt named 'nope'; known ids: short_question, "):
        select_prompts(prompts, ["nope"])
    for typo, meant in (("short_questoin", "short_question"), ("Pause", "pause")):
        with pytest.raises(
            ConfigError, match=rf"^no prompt named '{typo}' \(did you mean '{meant}'\?\); known ids"
        ):
            select_prompts(prompts, [typo])
    many = [dataclasses.replace(prompts[0], id=f"call_{k:04d}") for k in range(1000)]  # a set of one's own
    with pytest.raises(ConfigError) as info:
        select_prompts(many, ["nope"])
    assert "call_0029 … (1000 in all); categories: short" in str(info.value)
    assert "call_0030" not in str(info.value)
    for everything in (None, [], ["*"]):
        assert select_prompts(prompts, everything) == prompts
    assert select_prompts(prompts, ["pause_600", "pause"])[:2] == [
        chosen[2],
        chosen[1],
    ]  # each once, as asked


def test_one_name_selects_as_a_list_of_it_does_not_by_its_letters(prompts):
    # was: "no prompt named 'p'", the first letter of "pause"
    assert select_prompts(prompts, "pause") == select_prompts(prompts, ["pause"])
    assert [p.id for p in select_prompts(prompts, "digits")] == ["digits"]


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
    with pytest.raises(ConfigError, match="no prompt manifest") as raised:
        load_prompt_set(tmp_path)
    assert "`vlab prompts label FOLDER` proposes one" in str(raised.value)  # the way to make one
    # a path that is not there is not a folder without a manifest: it said "no prompt manifest at 'nope/…'"
    with pytest.raises(ConfigError, match=r"^there is no '.*nope'; give a prompt folder .* check the path"):
        load_prompt_set(tmp_path / "nope")


@pytest.mark.parametrize(
    "text,what",
    [("[]", "it must be a JSON object whose 'prompts' is a list of objects"),
     ('{"prompt": []}', "it must be a JSON object whose 'prompts' is a list of objects"),
     ('{"prompts": [3]}', "it must be a JSON object whose 'prompts' is a list of objects"),
     ('{"prompts": [{"id": "a"}]}', "prompt 'a': no 'speech_segments'"),
     ('{"prompts": [{"id": "a", "speech_segments": [], "file": "a.wav", "sample_rate": "x"}]}',
      "prompt 'a': invalid literal for int() with base 10: 'x'"),
     ('{"prompts": [', "JSONDecodeError: Expecting value"),
     ('{"prompts": [%s, %s]}' % ((json.dumps({"id": "a", "speech_segments": [], "file": "a.wav", "sample_rate": 16000,
                                             "duration_ms": 1000, "category": "mine"}),) * 2),
      "two prompts have the id 'a' (a sweep names its cells by it)")],
)  # fmt: skip
def test_a_malformed_manifest_of_ones_own_says_what_is_wrong_and_how_to_make_it_again(tmp_path, text, what):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_prompt_set(tmp_path)
    assert str(raised.value).startswith(
        f"the prompt manifest '{tmp_path / 'manifest.json'}' is malformed: {what}"
    )
    assert str(raised.value).endswith(
        f"fix the file, or make it again with `vlab prompts label {tmp_path}` (or `vlab prompts import`, from "
        "the labels you have)"
    )


# --- the generator against the committed set ----------------------------------------------------------


def _committed() -> dict[str, dict]:
    manifest = json.loads((load_prompt_set()[0].file.parent / "manifest.json").read_text())
    return {e["id"]: e for e in manifest["prompts"]}


def test_each_spec_is_the_committed_prompt_of_its_id():
    """Categories, rates, pauses, turns, extras and notes: what a rebuild writes is what the set says."""
    committed = _committed()
    specs = _specs()
    assert [s.id for s in specs] == [i for i, e in committed.items() if e["source"] == "espeak-ng"]
    for spec in specs:
        entry = committed[spec.id]
        pauses = [p for turn in spec.turns for p in turn if isinstance(p, float)]
        assert [round(b - a, 1) for a, b in entry["hold_spans"]] == pauses, spec.id
        assert len(entry["end_of_turn_ms"]) == len(spec.turns), spec.id
        assert (entry["category"], entry["sample_rate"], entry["notes"]) == (
            spec.category, spec.sample_rate, _notes(spec)
        ), spec.id  # fmt: skip
        assert spec.extra.items() <= entry.items(), spec.id


def test_a_rebuild_has_the_levels_and_gaps_the_specs_ask_for():
    specs = {s.id: s for s in _specs()}
    built = {
        i: build_prompt(specs[i]) for i in ("quiet_speaker", "noisy_snr10", "noise_only", "interruption")
    }

    def rms_dbfs(x: np.ndarray) -> float:
        return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2)))

    for x, entry in built.values():  # the label is the level of the speech segments as written
        ms = [(int(a * 16), int(b * 16)) for a, b in entry["speech_segments"]]
        if ms:
            speech = np.concatenate([x[a:b] for a, b in ms])
            assert entry["speech_rms_dbfs"] == pytest.approx(rms_dbfs(speech), abs=0.06), entry["id"]
    quiet = built["quiet_speaker"][1]
    assert quiet["speech_rms_dbfs"] == -30.0 and "barge_in_ms" not in quiet
    x, noisy = built["noisy_snr10"]
    (a, b), rate = noisy["speech_segments"][0], noisy["sample_rate"]
    noise = np.concatenate([x[: int(a * rate / 1000)], x[int(b * rate / 1000) :]])
    assert noisy["speech_rms_dbfs"] - rms_dbfs(noise) == pytest.approx(10.0, abs=0.5)
    x, noise_only = built["noise_only"]
    assert rms_dbfs(x) == pytest.approx(-35.0, abs=0.01) and np.isfinite(x).all()
    assert noise_only["speech_segments"] == [] and noise_only["speech_rms_dbfs"] is None
    assert len(x) / 16 == noise_only["duration_ms"] == LEAD_MS + 5000.0  # no trail after the noise
    _, interruption = built["interruption"]
    (_, first_end), (second_start, _) = interruption["speech_segments"]
    assert second_start - first_end == INTERRUPT_GAP_MS
    assert interruption["barge_in_ms"] == second_start


def test_a_phrase_is_trimmed_to_its_first_and_last_audible_sample():
    quiet, loud = 10 ** (AUDIBLE_DBFS / 20), 0.5
    assert _audible_extent(np.array([0.0, quiet, -loud, 0.0, loud, quiet, 0.0])) == (2, 5)
    assert _audible_extent(np.zeros(4)) == (0, 0)


def test_a_human_clip_keeps_its_labels_and_a_new_one_is_labelled_by_its_energy(tmp_path):
    rate = 16000
    tone = 0.1 * np.sin(np.arange(rate // 2) * 0.3)  # 500 ms at about -23 dBFS
    x = np.concatenate([np.zeros(rate // 5), tone, np.zeros(rate * 3 // 10)])  # 200 + 500 + 300 ms
    (tmp_path / "human").mkdir()
    for meta in HUMAN_PROMPTS.values():
        sf.write(tmp_path / "human" / meta["wav"], x, rate, subtype="PCM_16")
    kept = {
        "speech_segments": [[210.0, 690.0]],
        "end_of_turn_ms": [690.0],
        "hold_spans": [],
        "notes": "by hand",
    }
    first, second = _human_entries(tmp_path, {"human_awb_a0007": kept})
    assert first["speech_segments"] == [[210.0, 690.0]] and first["notes"] == "by hand"
    assert second["speech_segments"] == [[200.0, 700.0]] and second["end_of_turn_ms"] == [700.0]
    for entry, (pid, meta) in zip((first, second), HUMAN_PROMPTS.items(), strict=True):
        assert (
            entry["id"] == pid and entry["file"] == f"human/{meta['wav']}" and entry["text"] == meta["text"]
        )
        assert (entry["sample_rate"], entry["duration_ms"], entry["source"]) == (rate, 1000.0, "cmu-arctic")
    (tmp_path / "human" / "arctic_a0007.wav").unlink()
    assert [e["id"] for e in _human_entries(tmp_path, {})] == ["human_slt_a0009"]  # only clips present


def test_run_labels_are_written_only_when_they_can_be_read_back(tmp_path):
    from vlab.prompts import read_run_labels, write_run_labels

    with pytest.raises(ConfigError, match=r"labels must be a mapping with at least 'end_of_turn_ms'"):
        write_run_labels(tmp_path / "run", {"x": 1})  # was written, then refused by read_run_labels
    assert not (tmp_path / "run").exists()
    write_run_labels(tmp_path / "run", {"end_of_turn_ms": [1200.0]})  # the folder is made
    labels = read_run_labels(tmp_path / "run")
    assert labels is not None and labels.end_of_turn_ms == (1200.0,)
