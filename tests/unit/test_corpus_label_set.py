"""A prompt set's labels as editable spans, on a hand-written manifest: kind changes, bounds, what is saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlab.corpus.label_set import LabelSet, Span
from vlab.errors import ConfigError

ENTRY = {
    "id": "call",
    "file": "call.wav",
    "duration_ms": 5000.0,
    "label_source": "auto",
    "speech_segments": [[500.0, 1500.0], [2000.0, 3000.0], [4000.0, 4600.0]],
    "hold_spans": [[1500.0, 2000.0]],
    "end_of_turn_ms": [3000.0, 4600.0],
}


def _labels(tmp_path: Path, **changes: object) -> LabelSet:
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1, "prompts": [{**ENTRY, **changes}]}))
    return LabelSet(tmp_path)


def _index(labels: LabelSet, kind: str, start_ms: float) -> int:
    return next(i for i, s in enumerate(labels.spans("call")) if (s.kind, s.start_ms) == (kind, start_ms))


def test_spans_are_in_time_order_with_an_end_of_turn_before_a_span_that_starts_there(tmp_path):
    labels = _labels(tmp_path, end_of_turn_ms=[1500.0, 3000.0, 4600.0])
    kinds = [(s.kind, s.start_ms, s.end_ms) for s in labels.spans("call")]
    assert kinds[:4] == [
        ("speech", 500, 1500),
        ("eot", 1500, 1500),
        ("hold", 1500, 2000),
        ("speech", 2000, 3000),
    ]
    assert all(s.confidence is None for s in labels.spans("call"))  # the manifest gives none


def test_an_end_of_turn_made_a_span_ends_at_the_next_speech_onset(tmp_path):
    labels = _labels(tmp_path, end_of_turn_ms=[1500.0, 3000.0, 4600.0])
    assert labels.edit("call", _index(labels, "eot", 1500.0), kind="hold") == Span("hold", 1500, 2000, 1.0)
    labels = _labels(tmp_path)
    assert labels.edit("call", _index(labels, "eot", 3000.0), kind="hold") == Span("hold", 3000, 4000, 1.0)
    labels = _labels(tmp_path)
    # the last one has no speech after it: 100 ms
    assert labels.edit("call", _index(labels, "eot", 4600.0), kind="speech") == Span(
        "speech", 4600, 4700, 1.0
    )
    labels = _labels(tmp_path)
    # … unless its end is given
    assert labels.edit("call", _index(labels, "eot", 3000.0), kind="hold", end_ms=3500) == Span(
        "hold", 3000, 3500, 1.0
    )


def test_a_span_made_an_end_of_turn_is_a_point_where_its_turn_ends(tmp_path):
    labels = _labels(tmp_path)
    speech = _index(labels, "speech", 2000.0)
    assert labels.edit("call", speech, kind="eot") == Span("eot", 3000, 3000, 1.0)  # a speech span: its end
    labels = _labels(tmp_path)
    hold = _index(labels, "hold", 1500.0)
    assert labels.edit("call", hold, kind="eot") == Span("eot", 1500, 1500, 1.0)  # a hold: where speech ended
    labels = _labels(tmp_path)
    assert labels.edit("call", _index(labels, "speech", 500.0), kind="eot", start_ms=1200) == Span(
        "eot", 1200, 1200, 1.0
    )  # a start given: there
    labels = _labels(tmp_path)
    assert labels.edit("call", _index(labels, "eot", 3000.0), start_ms=2900) == Span("eot", 2900, 2900, 1.0)


def test_labels_may_touch_the_file_s_ends_but_not_pass_them(tmp_path):
    labels = _labels(tmp_path)
    first = _index(labels, "speech", 500.0)
    assert labels.edit("call", first, start_ms=0) == Span("speech", 0, 1500, 1.0)
    last = _index(labels, "speech", 4000.0)
    assert labels.edit("call", last, end_ms=5000) == Span("speech", 4000, 5000, 1.0)
    for change in ({"start_ms": -0.1}, {"end_ms": 5000.1}, {"start_ms": 4700, "end_ms": 4700}):
        with pytest.raises(ConfigError, match=r"a speech label must lie within the file \(0–5000 ms\)"):
            labels.edit("call", last, **change)  # type: ignore[arg-type]
    eot = _index(labels, "eot", 4600.0)
    assert labels.edit("call", eot, start_ms=5000) == Span("eot", 5000, 5000, 1.0)  # a point: at the end


def test_saved_labels_are_rounded_to_a_tenth_of_a_ms_and_confidences_appear_only_with_an_edit(tmp_path):
    labels = _labels(tmp_path)
    labels.approve("call")
    labels.save()
    saved = json.loads((tmp_path / "manifest.json").read_text())["prompts"][0]
    assert "confidence" not in saved and saved["label_source"] == "edited"  # approved: nothing to be sure of
    labels = _labels(tmp_path)
    labels.edit("call", _index(labels, "speech", 2000.0), start_ms=2000.04, end_ms=2999.96)
    labels.edit("call", _index(labels, "eot", 4600.0), start_ms=4599.96)
    labels.save()
    saved = json.loads((tmp_path / "manifest.json").read_text())["prompts"][0]
    assert saved["speech_segments"][1] == [2000.0, 3000.0] and saved["end_of_turn_ms"] == [3000.0, 4600.0]
    assert saved["confidence"]["speech_segments"] == [None, 1.0, None]  # the edited one is sure
