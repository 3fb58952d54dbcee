"""The label editor driven headless: choose a proposed label, move it, change its kind, play it, save."""

from __future__ import annotations

import json
import shutil

import pytest

from vlab.corpus.label_set import LabelSet
from vlab.corpus.labeller import label_folder
from vlab.errors import ConfigError
from vlab.prompts import load_prompt_set
from vlab.widgets import LabelEditor


def _shown(output) -> str:
    """The HTML of the widgets an Output area shows."""
    from ipywidgets.widgets.widget import _instances

    views = [o["data"].get("application/vnd.jupyter.widget-view+json") for o in output.outputs]
    return " ".join(_instances[v["model_id"]].value for v in views if v)


@pytest.fixture
def folder(tmp_path):
    [p] = [p for p in load_prompt_set() if p.id == "pause_600"]
    shutil.copy(p.file, tmp_path / "pause.wav")
    label_folder(tmp_path)
    return tmp_path


def test_edit_play_and_save_marks_the_prompt_reviewed(folder):
    editor = LabelEditor(folder)
    assert editor.prompt.value == "pause" and "(auto)" in editor.prompt.label
    assert editor.waveform.value[:4] == b"\x89PNG"
    kinds = [label.split()[1] for label, _ in editor.span.options]
    assert kinds == ["speech", "hold", "speech", "eot"]
    editor.span.value = 0
    editor.end.value = 1900.0  # the first segment's end moved earlier
    first = editor.labels.spans("pause")[0]
    assert (first.kind, first.end_ms, first.confidence) == ("speech", 1900.0, 1.0)
    assert "(unsaved)" in editor.status.value and "(reviewed)" in editor.prompt.label
    editor.span.value = 1  # the hold becomes an end of turn at its start: now two turns
    editor.kind.value = "eot"
    editor.play_button.click()
    assert "<audio" in json.dumps(editor.player.outputs)
    editor.save_button.click()
    assert not editor.output.outputs  # no error shown
    [saved] = load_prompt_set(folder)
    assert saved.label_source == "edited"
    assert saved.speech_segments[0][1] == 1900.0 and saved.hold_spans == ()
    assert saved.end_of_turn_ms[0] == 1985.0 and saved.expected_turns == 2  # where the hold started


def test_a_bad_boundary_is_refused_and_shown(folder):
    editor = LabelEditor(folder)
    editor.span.value = 0
    before = editor.labels.spans("pause")[0]
    editor.start.value = 99999.0
    assert "must lie within the file" in _shown(editor.output)
    assert editor.labels.spans("pause")[0] == before and editor.start.value == before.start_ms


def test_approve_without_edits_and_label_set_errors(folder):
    editor = LabelEditor(folder)
    editor.approve_button.click()
    editor.save_button.click()
    assert load_prompt_set(folder)[0].label_source == "edited"
    labels = LabelSet(folder)
    with pytest.raises(ConfigError, match="no label 9"):
        labels.edit("pause", 9, end_ms=1.0)
    with pytest.raises(ConfigError, match="unknown kind"):
        labels.edit("pause", 0, kind="laugh")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="vlab prompts label"):
        LabelSet(folder / "nowhere")
