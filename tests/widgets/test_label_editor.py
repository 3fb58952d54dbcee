"""The label editor driven headless: choose a proposed label, move it, change its kind, play it, save."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.widgets._output import shown_html
from vlab.bundled import bundled_dir
from vlab.corpus.label_set import LabelSet
from vlab.corpus.labeller import label_folder
from vlab.errors import ConfigError
from vlab.prompts import load_prompt_set
from vlab.widgets import LabelEditor

_shown = shown_html


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


class _Audio:
    """Stands in for IPython's Audio: keeps what the editor would play."""

    played: list[_Audio] = []

    def __init__(self, *, data, rate: int, normalize: bool) -> None:
        self.data, self.rate, self.normalize = data, rate, normalize
        _Audio.played.append(self)

    def _repr_html_(self) -> str:
        return "<audio></audio>"


def test_play_gives_the_span_as_recorded_and_a_second_around_an_end_of_turn(folder, monkeypatch):
    import IPython.display
    import numpy as np

    from vlab.audio.wav import read_audio

    monkeypatch.setattr(IPython.display, "Audio", _Audio)
    monkeypatch.setattr(_Audio, "played", [])
    samples, rate = read_audio(folder / "pause.wav")
    editor = LabelEditor(folder)
    spans = editor.labels.spans("pause")
    for index in (0, 3):  # the first speech, the end of turn
        editor.span.value = index
        editor.play_button.click()
    speech, eot = _Audio.played
    a, b = (int(ms * rate / 1000) for ms in (spans[0].start_ms, spans[0].end_ms))
    assert np.array_equal(speech.data, samples[a:b]) and speech.rate == rate
    assert not speech.normalize  # a quiet recording plays quiet, as the VAD heard it
    at = int(spans[3].start_ms * rate / 1000)
    assert np.array_equal(eot.data, samples[at - rate // 2 : at + rate // 2])
    editor.start.value = 200.0  # the end of turn moved 200 ms in: the second around it starts at 0
    assert editor.span.value == 0
    editor.play_button.click()
    assert np.array_equal(_Audio.played[-1].data, samples[: int(0.7 * rate)])


def test_an_edit_that_reorders_the_labels_keeps_the_edited_one_chosen(folder):
    editor = LabelEditor(folder)
    editor.span.value = 3  # the end of turn, last
    editor.start.value = 2000.0  # moved into the pause: now after the hold, before the second speech
    assert [s.kind for s in editor.labels.spans("pause")] == ["speech", "hold", "eot", "speech"]
    assert editor.span.value == 2 and editor.kind.value == "eot" and editor.start.value == 2000.0
    editor.span.value = 1
    editor.approve_button.click()  # the prompt list is redrawn: the chosen label stays
    assert editor.span.value == 1 and editor.kind.value == "hold" and "(reviewed)" in editor.prompt.label


def test_the_waveform_is_drawn_on_the_labels_ms_axis_from_at_most_about_4000_samples():
    import numpy as np

    from vlab.widgets.label_editor import WAVEFORM_POINTS, waveform_points

    samples = np.arange(48000, dtype=np.float32)  # 3 s at 16 kHz
    t, y = waveform_points(samples, 16000)
    assert len(t) == len(y) == 4000 == WAVEFORM_POINTS  # every 12th sample
    assert t[1] == 0.75 and y[1] == 12.0 and t[-1] == 2999.25
    t, y = waveform_points(samples[:100], 8000)  # short: every sample
    assert len(y) == 100 and t[-1] == 99 * 1000 / 8000


def test_a_sweep_folder_is_refused_before_saving_could_overwrite_its_manifest(tmp_path):
    # a sweep's manifest.json lists its prompts (ids) too: the editor opened it, and Save rewrote it as a
    # prompt set, after which the sweep panel could no longer open the sweep
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps({"kind": "vlab-sweep", "grid": [], "prompts": [{"id": "p", "file": "p.wav"}]})
    )
    before = manifest.read_text()
    with pytest.raises(
        ConfigError, match=r"is a sweep's manifest, not a prompt set's; open the folder of the"
    ):
        LabelEditor(tmp_path)
    assert manifest.read_text() == before


def test_a_prompt_whose_audio_cannot_be_read_is_shown_so_and_the_others_stay_reviewable(tmp_path):
    shutil.copy(bundled_dir("prompts") / "pause_600.wav", tmp_path / "b_pause.wav")
    shutil.copy(bundled_dir("prompts") / "short_question.wav", tmp_path / "c_question.wav")
    label_folder(tmp_path)
    (tmp_path / "b_pause.wav").write_bytes(b"not audio any more")  # broken after labelling
    editor = LabelEditor(tmp_path)  # raised AudioFormatError when the first prompt was the broken one
    assert editor.prompt.value == "b_pause" and editor.waveform.value == b""
    assert "b_pause.wav" in _shown(editor.output)
    editor.prompt.value = "c_question"
    assert editor.waveform.value[:4] == b"\x89PNG"
    editor.prompt.value = "b_pause"  # the question's waveform stayed under the broken prompt's labels
    assert editor.waveform.value == b""
