"""The sweep panel driven headless: a tiny grid on the embedded emulator, reopening, errors, Stop."""

from __future__ import annotations

import asyncio
import html
import json
import math
from unittest import mock

import ipywidgets
import pandas as pd
import pytest

from vlab.widgets import SweepPanel

PNG = b"\x89PNG"


def _panel(tmp_path, **kw):
    return SweepPanel(
        runs_dir=tmp_path / "runs",
        prompts=("short_question", "pause_600"),
        speed=10.0,  # fast, yet a response starts before a paused user resumes (at "max" that is a race)
        session_options={"dotenv_path": False},
        **kw,
    )


def _text(output) -> str:
    """What the panel's output area shows: the HTML of the widgets displayed in it, and any plain text."""
    from ipywidgets.widgets.widget import _instances

    parts = []
    for o in output.outputs:
        view = o["data"].get("application/vnd.jupyter.widget-view+json")
        shown = _instances.get(view["model_id"]) if view else None
        parts.append(shown.value if shown is not None else json.dumps(o["data"]))
    return " ".join(parts)


async def test_run_a_tiny_grid_shows_progress_charts_and_tables(tmp_path):
    panel = _panel(tmp_path)
    assert set(panel.prompts.value) == {"short_question", "pause_600"}
    assert panel.canary.value == "short_question"  # a single-turn prompt without holds
    assert "emulator" in panel.target.value.lower()
    panel.thresholds.value = "0.5"
    panel.silences.value = "900, 300"
    from vlab import plots

    draw, distributions = plots.latency_distributions, []

    def distribution(*args, **kwargs):  # the rows of the dead-air chart, top down
        ax = draw(*args, **kwargs)
        distributions.append(
            [t.get_text() for t in ax.get_yticklabels()][:: 1 if ax.yaxis_inverted() else -1]
        )
        return ax

    with mock.patch("vlab.plots.latency_distributions", distribution):
        panel.run_button.click()
        assert panel.running and panel.run_button.disabled and not panel.stop_button.disabled
        assert panel.progress.max == 4
        await asyncio.wait_for(panel.task, 60)
    assert distributions == [["sil=900", "sil=300"]]  # the grid's order, as the tables
    assert panel.output.outputs == (), _text(panel.output)
    assert panel.progress.value == 4 and panel.progress.bar_style == "success"
    assert "finished: 4 of 4 cells ok" in panel.status.value and not panel.run_button.disabled
    assert sorted(panel.points["setting"]) == ["thr=0.5 pad=300 sil=300", "thr=0.5 pad=300 sil=900"]
    assert {"pareto", "latency_distributions", "waterfall", "vad_timeline"} <= set(panel.charts)
    assert all(bytes(img.value).startswith(PNG) for img in panel.charts.values())
    html = " ".join(w.value for w in panel.results.children if isinstance(w, ipywidgets.HTML))
    assert "Operating points" in html and "Latency summary" in html and "Did the setting take effect?" in html
    assert "<th>tokens_<wbr>per_<wbr>expected_<wbr>turn</th>" in html  # long names break at underscores
    assert "2 prompts × 1 repeat · cells ok 4" in html
    per_prompt = html.split("<summary><b>Per prompt and setting</b></summary>")[1]  # as the report's
    assert "<th>onset_<wbr>error_<wbr>ms</th>" in per_prompt and "<code>onset_error_ms</code>: " in per_prompt
    assert "<th>false_<wbr>starts</th>" in per_prompt and "<code>false_starts</code>: " in per_prompt
    grid = ["thr=0.5 pad=300 sil=900", "thr=0.5 pad=300 sil=300"]  # shown in the grid's order, not the names'
    assert panel.points["setting"].tolist() == grid
    assert panel.summary["setting"].drop_duplicates().tolist() == grid
    assert (panel.sweep_dir / "manifest.json").is_file() and panel.sweep_dir.parent == tmp_path / "runs"
    # the pause prompt: a 300 ms silence timer answers inside the 600 ms pause, 900 ms does not
    pts = panel.points.set_index("setting")
    assert (
        pts.loc["thr=0.5 pad=300 sil=300", "false_cutoff_rate"]
        > pts.loc["thr=0.5 pad=300 sil=900", "false_cutoff_rate"]
    )


async def test_vad_only_decides_every_cell_and_shows_the_vad_charts_without_latency(tmp_path):
    panel = _panel(tmp_path)
    panel.silences.value = "300, 900"
    panel.repeats.value = 3  # a VAD-only sweep decides each cell once
    panel.vad_only.value = True
    assert panel.config()["run"]["mode"] == "vad"
    panel.run_button.click()
    assert panel.progress.max == 4
    await asyncio.wait_for(panel.task, 60)
    assert panel.output.outputs == (), _text(panel.output)
    assert panel.progress.value == 4 and "finished: 4 of 4 cells ok" in panel.status.value
    assert set(panel.charts) == {"pareto", "vad_timeline"}  # no replies: no latency or waterfall
    html = " ".join(w.value for w in panel.results.children if isinstance(w, ipywidgets.HTML))
    assert "VAD only" in html and "Operating points" in html and "Latency summary" not in html
    assert (
        "<th>tokens_<wbr>per" not in html and "<th>false_<wbr>cutoff_<wbr>rate</th>" in html
    )  # no replies, no tokens
    pts = panel.points.set_index("setting")  # the same trade-off the session sweep shows
    assert (
        pts.loc["thr=0.5 pad=300 sil=300", "false_cutoff_rate"]
        > pts.loc["thr=0.5 pad=300 sil=900", "false_cutoff_rate"]
    )


async def test_a_finished_sweep_reopens_from_its_folder(tmp_path):
    from vlab.sweep import run_sweep_async

    cfg = {
        "prompts": {"include": ["short_question"]},
        "grid": {"threshold": [0.5], "silence_duration_ms": [400, 700]},
        "run": {"push_to_talk": True},
    }
    result = await run_sweep_async(
        cfg, tmp_path / "done", progress=False, session_options={"dotenv_path": False}
    )
    panel = _panel(tmp_path)
    panel.open_path.value = str(result.out)
    panel.open_button.click()
    assert panel.output.outputs == (), _text(panel.output)
    assert panel.sweep_dir == result.out and len(panel.points) == 3
    assert {"pareto", "latency_distributions", "waterfall"} <= set(panel.charts)
    assert list(dict.fromkeys(panel.summary["setting"]))[-1] == "push-to-talk"  # its turns are the user's too
    assert "showing" in panel.status.value


async def test_the_sweep_shown_compares_with_another_as_vlab_compare_does(tmp_path):
    from vlab.errors import ConfigError
    from vlab.report import compare_sweeps
    from vlab.sweep import run_sweep_async

    options = {"dotenv_path": False}
    cfg = {"prompts": {"include": ["short_question"]}, "grid": {"silence_duration_ms": [900, 300]}}
    a = (await run_sweep_async(cfg, tmp_path / "a", progress=False, session_options=options)).out
    slow = {**cfg, "target": {"latency": "slow-network"}}
    b = (await run_sweep_async(slow, tmp_path / "b", progress=False, session_options=options)).out
    panel = _panel(tmp_path)
    with pytest.raises(ConfigError, match="Open a finished sweep first"):
        panel.compare(b)
    panel.open_path.value = str(a)
    panel.open_button.click()
    panel.compare_path.value = str(b)
    panel.compare_button.click()
    assert panel.output.outputs == (), _text(panel.output)
    expected = compare_sweeps(a, b)  # with vlab compare's bootstrap
    pd.testing.assert_frame_equal(panel.comparison, expected)
    assert list(dict.fromkeys(panel.comparison["setting"])) == [
        "thr=0.5 pad=300 sil=900",
        "thr=0.5 pad=300 sil=300",
    ]
    heading, chart, table = panel.comparison_box.children
    assert "A: a against B: b" in heading.value and bytes(chart.value).startswith(PNG)
    from vlab.report import verdict_summary

    assert "<br>".join(verdict_summary(expected)) in heading.value  # what vlab compare ends with
    assert "2 settings: " in heading.value and "worse: " in heading.value  # a slower network
    assert (
        "A and B differ besides their settings: [target] latency: A typical, B slow-network" in heading.value
    )
    assert "comparing" in panel.status.value
    assert "played different prompts" not in heading.value
    fewer = {**cfg, "prompts": {"include": ["short_question", "pause_600"]}}
    d = (await run_sweep_async(fewer, tmp_path / "d", progress=False, session_options=options)).out
    panel.compare(d)
    assert "played different prompts (only in B: pause_600)" in panel.comparison_box.children[0].value
    panel.load(a)  # another sweep shown: its comparison goes
    assert panel.comparison_box.children == ()
    other = (await run_sweep_async({**cfg, "grid": {"silence_duration_ms": [500]}}, tmp_path / "c",
                                   progress=False, session_options=options)).out  # fmt: skip
    panel.compare_path.value = str(other)
    panel.compare_button.click()
    assert "no setting appears in both sweeps" in _text(panel.output)


async def test_a_bad_grid_is_shown_in_the_panel_and_nothing_runs(tmp_path):
    panel = _panel(tmp_path)
    panel.thresholds.value = "0.5, 1.5"  # out of range
    panel.run_button.click()
    assert panel.task is None and not panel.run_button.disabled
    assert "threshold" in _text(panel.output) and "Run failed" in _text(panel.output)
    panel.output.outputs = ()
    panel.silences.value = "300, abc"
    panel.run_button.click()
    assert "Silence ms" in _text(panel.output) and "not a number" in _text(panel.output)
    panel.output.outputs = ()
    panel.prompts.value = ()
    panel.run_button.click()
    assert "Select at least one prompt" in _text(panel.output)
    assert not (tmp_path / "runs").exists()


def test_opening_a_folder_that_is_not_a_sweep_says_so(tmp_path):
    panel = _panel(tmp_path)
    panel.open_path.value = str(tmp_path / "nowhere")
    panel.open_button.click()
    assert "no folder" in _text(panel.output)
    panel.output.outputs = ()
    panel.open_path.value = str(tmp_path)
    panel.open_button.click()
    assert "not a finished sweep folder" in _text(panel.output)


async def test_semantic_vad_and_repeats_reach_the_config(tmp_path):
    panel = _panel(tmp_path)
    panel.turn_type.value = "azure_semantic_vad"
    panel.repeats.value = 2
    panel.paddings.value = "200, 400"
    panel.baseline.value = True
    cfg = panel.config()
    assert cfg["grid"]["type"] == "azure_semantic_vad" and cfg["grid"]["prefix_padding_ms"] == [200, 400]
    assert cfg["run"]["repeats"] == 2 and cfg["run"]["baseline"] is True
    from vlab.sweep import load_config

    loaded = load_config(cfg)
    assert loaded.setting_names[0].startswith("semantic ")
    assert loaded.n_cells == (2 * 2 + 1) * 2 * 2  # 2 pads × 2 silences + baseline, × 2 prompts × 2 repeats
    panel.turn_type.value = ("server_vad", "azure_semantic_vad")  # "Both, to compare"
    assert panel.turn_type.label == "Both, to compare"
    names = load_config(panel.config()).setting_names
    assert len(names) == 2 * 2 * 2 + 1 and names[0] == "thr=0.5 pad=200 sil=300"
    assert names[4] == "semantic thr=0.5 pad=200 sil=300"


def test_end_of_utterance_detection_is_compared_when_asked(tmp_path):
    from vlab.sweep import load_config

    panel = _panel(tmp_path)
    assert "eou_model" not in panel.config()["grid"] and panel.eou_timeouts.disabled
    panel.eou.value = True
    assert not panel.eou_timeouts.disabled
    panel.eou_timeouts.value = "600, 1200"
    grid = panel.config()["grid"]
    assert (grid["eou_model"], grid["eou_timeout_ms"]) == (["off", "semantic_detection_v1"], [600, 1200])
    names = load_config(panel.config()).setting_names
    assert names[:3] == ("thr=0.5 pad=300 sil=300", "thr=0.5 pad=300 sil=300 eou=v1/600ms",
                         "thr=0.5 pad=300 sil=300 eou=v1/1200ms") and len(names) == 6  # fmt: skip
    panel.vad_only.value = True  # the emulator's VAD alone cannot read the words
    panel.run_button.click()
    assert "cannot decide setting" in _text(panel.output) and not (tmp_path / "runs").exists()


async def test_stop_cancels_and_run_resumes_the_same_folder(tmp_path):
    panel = _panel(tmp_path, concurrency=1)  # one cell at a time: stopped after the first, before the next
    panel.speed.value = 1.0  # real time: a cell takes seconds, so the sweep is surely running after the first
    panel.prompts.value = ("short_question",)
    panel.silences.value = "300, 500, 700"
    first_cell_done = asyncio.Event()

    def on_progress(change):
        if change["new"] >= 1:
            first_cell_done.set()

    panel.progress.observe(on_progress, "value")
    panel.run_button.click()
    await asyncio.wait_for(first_cell_done.wait(), 60)
    assert panel.running
    panel.stop_button.click()
    with pytest.raises(asyncio.CancelledError):
        await panel.task
    assert "stopped after 1 of 3 cells" in panel.status.value and panel.folder.value == str(panel.sweep_dir)
    assert not panel.run_button.disabled and panel.output.outputs == ()
    panel.speed.value = "max"  # same folder, same grid: resume as fast as possible
    panel.run_button.click()
    await asyncio.wait_for(panel.task, 60)
    assert panel.output.outputs == (), _text(panel.output)
    assert sorted(c.status for c in panel.result.cells) == ["ok", "ok", "skipped"]  # the first cell is kept
    assert panel.progress.value == 3 and len(panel.points) == 3


def test_an_untouched_form_starts_from_the_default_setting_and_run(tmp_path):
    from vlab.sweep import BASELINE, SweepConfig, load_config

    panel = _panel(tmp_path)
    loaded = load_config(panel.config())
    default = SweepConfig(settings=(), setting_names=(), prompts=())
    assert {s.turn_detection.threshold for s in loaded.settings} == {BASELINE.threshold}
    assert {s.turn_detection.prefix_padding_ms for s in loaded.settings} == {BASELINE.prefix_padding_ms}
    assert (loaded.repeats, loaded.latency) == (default.repeats, default.latency)
    assert (loaded.concurrency, loaded.timeout_s) == (default.concurrency, default.timeout_s)
    assert panel.baseline.description == "Add the baseline (0.5 / 300 / 500)"  # as the docs name it


@pytest.mark.parametrize("speed", ["max", math.inf])
def test_as_fast_as_possible_is_offered_as_max_however_it_is_given(tmp_path, speed):
    panel = SweepPanel(runs_dir=tmp_path, speed=speed, session_options={"dotenv_path": False})
    assert panel.speed.value == "max" and panel.config()["target"]["speed"] == "max"


def test_settings_are_named_by_what_sets_them_apart_unless_that_would_make_two_names_one():
    from vlab.sweep.chart_names import short_names

    names = ["thr=0.5 pad=300 sil=300", "thr=0.5 pad=300 sil=800"]
    assert short_names(names) == {names[0]: "sil=300", names[1]: "sil=800"}
    same = ["thr=0.5 sil=300 nr=off", "thr=0.5 nr=off sil=300"]  # the same parts in another order
    assert short_names(same) == {n: n for n in same}
    assert short_names(["thr=0.5"]) == {"thr=0.5": "thr=0.5"}
    eou = ["thr=0.5 pad=300 sil=300", "thr=0.5 pad=300 sil=300 eou=v1/1200ms", "thr=0.5 pad=300 sil=500"]
    assert list(short_names(eou).values()) == ["sil=300 eou=off", "sil=300 eou=v1/1200ms", "sil=500 eou=off"]
    with_reference = [
        *names,
        "push-to-talk",
    ]  # a name with no key=value part: whole, and no part in the others'
    assert short_names(with_reference) == {
        names[0]: "sil=300",
        names[1]: "sil=800",
        "push-to-talk": "push-to-talk",
    }


def test_push_to_talk_is_added_as_a_reference_when_asked(tmp_path):
    from vlab.errors import ConfigError
    from vlab.sweep import load_config

    panel = _panel(tmp_path)
    assert "push_to_talk" not in panel.config()["run"]
    panel.push_to_talk.value = True
    loaded = load_config(panel.config())
    assert loaded.setting_names[-1] == loaded.push_to_talk == "push-to-talk"
    panel.vad_only.value = True  # the VAD alone cannot play it: the sweep's own error says so
    with pytest.raises(ConfigError, match="push_to_talk needs sessions"):
        load_config(panel.config())


async def test_cells_that_failed_alike_are_listed_once_and_the_results_say_why(tmp_path):
    import socket

    with socket.socket() as refusing:  # bound, never listening: every connection is refused
        refusing.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        panel = _panel(tmp_path)
        panel.session_options = {"endpoint": endpoint, "api_key": "k", "dotenv_path": False}
        panel.silences.value = "900, 300"
        panel.run_button.click()
        await asyncio.wait_for(panel.task, 60)
    shown = _text(panel.output)
    assert "<b>4 of 4 cells failed</b>" in shown
    assert (
        shown.count("<li>") == 1
        and f"<li>4 × ConnectionFailed: nothing accepts connections at {endpoint.removeprefix('http://')} "
        in shown
    )
    first = panel.result.cells[0].cell  # in the sweep's order
    assert shown.endswith(f"(the first: {first})</li></ul></div>")
    assert panel.progress.bar_style == "warning" and "finished: 0 of 4 cells ok" in panel.status.value
    assert "Nothing to chart." in panel.results.children[-1].value


async def test_prompts_whose_labels_the_figures_cannot_trust_are_named_in_the_panel(tmp_path):
    import shutil

    from vlab.prompts import MANIFEST_NAME, bundled_dir

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    bundled = json.loads((bundled_dir("prompts") / MANIFEST_NAME).read_text(encoding="utf-8"))
    [entry] = [p for p in bundled["prompts"] if p["id"] == "pause_600"]
    shutil.copy(bundled_dir("prompts") / entry["file"], recordings)
    entry["label_source"] = "auto"
    (recordings / MANIFEST_NAME).write_text(json.dumps({**bundled, "prompts": [entry]}))
    panel = SweepPanel(runs_dir=tmp_path / "runs", prompt_dir=recordings, prompts=("pause_600",))
    panel.vad_only.value = True
    panel.run_button.click()  # the suite makes a warning an error: one that escaped would fail the task
    await asyncio.wait_for(panel.task, 60)
    assert _text(panel.output) == (
        "<p style='color:#b00020'>1 of 1 prompts have automatic labels nobody reviewed (pause_600): the cut-off, "
        "hold and missed-turn figures are only as good as those proposals. Review them with "
        "vlab.widgets.LabelEditor</p>"
    )
    assert panel.progress.bar_style == "success" and "finished:" in panel.status.value


async def test_repeats_on_the_embedded_emulator_are_warned_of_in_the_panel(tmp_path):
    panel = SweepPanel(
        runs_dir=tmp_path / "runs",
        prompts=("short_question",),
        speed="max",
        session_options={"dotenv_path": False},
    )
    panel.silences.value = "500"
    panel.repeats.value = 2
    panel.run_button.click()  # the suite makes a warning an error: one that escaped would fail the task
    await asyncio.wait_for(panel.task, 60)
    shown = _text(panel.output)
    assert shown.startswith(
        "<p style='color:#b00020'>[run] repeats = 2 on vlab&#x27;s embedded emulator: it decides"
    )
    assert panel.progress.bar_style == "success" and "finished: 2 of 2 cells ok" in panel.status.value


def test_a_grid_of_many_settings_on_one_point_is_keyed_a_line_each_and_fits_its_chart():
    from vlab import plots
    from vlab.sweep.chart_names import pareto_labels
    from vlab.widgets.sweep_panel import figure_png

    suppressors = ["off", "near_field", "far_field", "azure_deep_noise_suppression"]
    settings = [f"thr={t} pad=300 sil=500 nr={nr}" for t in (0.05, 0.1, 0.3, 0.5) for nr in suppressors]
    points = pd.DataFrame({
        "setting": settings, "dead_air_ms": [1042.0] * 8 + [1074.0] * 8, "false_cutoff_rate": [0.0] * 16,
        "pareto": [True] * 8 + [False] * 8, "baseline": [False] * 16,
    })  # fmt: skip
    labelled = pareto_labels(points)
    assert labelled["setting"].iloc[0] == "\n".join(
        f"thr={t} nr={nr}" for t in (0.05, 0.1) for nr in suppressors
    )
    assert (labelled["setting"].iloc[1:8] == "").all()  # drawn, named once
    fig_axes = []
    # warnings are errors here: the key once made constrained layout give up ("axes sizes collapsed")
    png = figure_png(lambda ax: fig_axes.append(plots.pareto(labelled, ax=ax)), (6.4, 4.6))
    assert png.startswith(PNG)
    (key,) = [t for t in fig_axes[0].texts if not hasattr(t, "xy")]

    def keyed(n: int, thresholds: tuple[float, float]) -> list[str]:
        names = [f"thr={t} nr={nr}" for t in thresholds for nr in suppressors]
        return [f"{n}  {names[0]}", *(f"   {name}" for name in names[1:])]

    # was one line per point, its settings joined with " / ", wider than the chart
    assert key.get_text().splitlines() == [*keyed(1, (0.05, 0.1)), *keyed(2, (0.3, 0.5))]


def test_instructions_and_voice_reach_every_setting_and_a_bad_voice_is_said_in_the_panel(tmp_path):
    from vlab.sweep import load_config

    panel = _panel(tmp_path)
    assert "session" not in panel.config()  # left empty: the service's own
    panel.instructions.value = "  Tell a long story.  "
    panel.voice.value = "alloy"
    panel.baseline.value = True
    assert panel.config()["session"] == {"instructions": "Tell a long story.", "voice": "alloy"}
    loaded = load_config(panel.config())
    assert {(s.instructions, s.voice) for s in loaded.settings} == {("Tell a long story.", "alloy")}
    panel.voice.value = "nobody"
    panel.run_button.click()
    assert "[session] voice must be an OpenAI voice" in _text(panel.output)
    assert not (tmp_path / "runs").exists()


def test_voices_separated_by_commas_are_compared_in_the_grid(tmp_path):
    from vlab.sweep import load_config

    panel = _panel(tmp_path)
    panel.voice.value = "alloy, en-US-AvaNeural"
    config = panel.config()
    assert config["grid"]["voice"] == ["alloy", "en-US-AvaNeural"] and "session" not in config
    loaded = load_config(config)
    assert [s.voice for s in loaded.settings][:2] == ["alloy", "en-US-AvaNeural"]
    assert loaded.setting_names[0].endswith(" voice=alloy")
    panel.vad_only.value = True  # nothing is spoken there: said in the panel, nothing runs
    panel.run_button.click()
    assert "[grid] voice needs sessions" in _text(panel.output)
    assert not (tmp_path / "runs").exists()


def test_models_separated_by_commas_are_compared_in_the_grid(tmp_path):
    from vlab.sweep import load_config

    panel = _panel(tmp_path)
    assert "model" not in panel.config()["grid"]  # empty: the target's
    panel.models.value = "gpt-realtime, gpt-4.1 ,"
    assert panel.config()["grid"]["model"] == ["gpt-realtime", "gpt-4.1"]
    loaded = load_config(panel.config())
    assert [s.model for s in loaded.settings[:2]] == ["gpt-realtime", "gpt-4.1"]


async def _ran(panel: SweepPanel, **values: object) -> SweepPanel:
    """``panel`` once it ran with each of its widgets named in ``values`` set to its value."""
    for name, value in values.items():
        getattr(panel, name).value = value
    panel.run_button.click()
    await asyncio.wait_for(panel.task, 60)
    return panel


async def _one_cell_told(tmp_path, instructions: str) -> SweepPanel:
    """A panel that ran one cell (short_question, 500 ms of silence) with ``instructions``."""
    values = {"speed": "max", "prompts": ("short_question",), "silences": "500", "instructions": instructions}
    return await _ran(_panel(tmp_path), **values)


async def test_the_sweep_shown_says_what_its_session_was_told(tmp_path):
    panel = await _one_cell_told(tmp_path, "Be brief.")
    heading = panel.results.children[0].value
    assert "latency model: typical · session: instructions &#x27;Be brief.&#x27; · 1 setting" in heading
    # what it ran against, as the sweep's report says it (the panel left out the model)
    assert "target: emulator · model: gpt-realtime · speed: max · latency model: typical" in heading


async def test_run_into_a_folder_whose_cells_had_other_instructions_is_refused_before_anything_runs(tmp_path):
    panel = await _one_cell_told(tmp_path, "Be brief.")
    (cell_json,) = panel.sweep_dir.glob("cells/*/cell.json")
    kept = cell_json.read_text()
    panel.folder.value = str(panel.sweep_dir)
    panel.instructions.value = "Tell a long story."
    panel.run_button.click()
    assert (
        f"{str(panel.sweep_dir)!r} holds 1 finished cell of this sweep that ran otherwise (instructions changed "
        "since); clear Folder for a new sweep folder" in html.unescape(_text(panel.output))
    )
    assert not panel.running and cell_json.read_text() == kept
    panel.output.outputs = ()
    panel.instructions.value = "Be brief."  # as it was: the folder resumes
    panel.run_button.click()
    await asyncio.wait_for(panel.task, 60)
    assert [c.status for c in panel.result.cells] == ["skipped"], _text(panel.output)


async def test_telephone_audio_reaches_the_sweep_and_its_heading(tmp_path):
    from vlab.sweep import load_config

    panel = _panel(tmp_path)
    assert "session" not in panel.config()  # PCM16 at 24 kHz: the service's default, nothing sent
    assert panel.audio_format.value == "PCM16, 24 kHz"
    panel.audio_format.value = "Telephone: G.711 A-law, 8 kHz both ways"
    assert panel.config()["session"] == {
        "input_audio_format": "g711_alaw",
        "output_audio_format": "g711_alaw",
    }
    rates = {(s.input_sample_rate, s.output_sample_rate) for s in load_config(panel.config()).settings}
    assert rates == {(8000, 8000)}
    panel.audio_format.value = "PCM16, 16 kHz in, 24 kHz out"
    assert panel.config()["session"] == {"input_audio_sampling_rate": 16000}
    panel.audio_format.value = "Telephone: G.711 A-law, 8 kHz both ways"
    await _ran(panel, prompts=("pause_600",), silences="300", vad_only=True)
    assert [c.status for c in panel.result.cells] == ["ok"], _text(panel.output)
    heading = html.unescape(panel.results.children[0].value)
    assert "session: input_audio_format 'g711_alaw' · " in heading  # what its VAD heard, not the replies'


def test_the_prompts_a_panel_is_given_are_selected_or_refused_not_swapped_for_the_first(tmp_path):
    from vlab.errors import ConfigError

    assert SweepPanel(runs_dir=tmp_path).prompts.value == ("short_question", "pause_600")  # the defaults
    assert SweepPanel(runs_dir=tmp_path, prompts="digits").prompts.value == ("digits",)  # was: short_question
    paused = SweepPanel(runs_dir=tmp_path, prompts=["pause"]).prompts.value  # a category: all its prompts
    assert paused == ("pause_300", "pause_600", "pause_900", "pause_1200")
    with pytest.raises(ConfigError, match="^no prompt named 'pause_60' \\(did you mean 'pause_600'\\?\\)"):
        SweepPanel(runs_dir=tmp_path, prompts=["pause_60"])  # was: short_question, silently
    for option, value, said in (
        ("concurrency", 0, "concurrency must be an integer ≥ 1, got 0"),
        ("timeout_s", 0, "timeout_s must be a number of seconds > 0, got 0"),
    ):
        with pytest.raises(ConfigError, match=f"^{said}$"):
            SweepPanel(runs_dir=tmp_path, **{option: value})


@pytest.mark.parametrize("typed", ["nan", "inf", "300, -inf"])
def test_a_value_that_is_not_a_finite_number_is_refused_with_the_field_named(typed):
    from vlab.errors import ConfigError
    from vlab.widgets.sweep_panel import parse_values

    with pytest.raises(ConfigError, match=r"^Silence ms: '-?(nan|inf)' is not a number"):
        parse_values(typed, int, "Silence ms")  # was a ValueError or OverflowError, with its traceback


def test_a_folder_that_is_not_a_sweep_s_is_refused_before_the_panel_changes(tmp_path):
    from vlab.errors import ConfigError
    from vlab.widgets import SweepPanel

    prompts = tmp_path / "rec"  # a prompt folder: its manifest.json lists prompts, no grid
    prompts.mkdir()
    (prompts / "manifest.json").write_text(json.dumps({"version": 1, "prompts": []}))
    panel = SweepPanel()
    shown = (panel.manifest, panel.sweep_dir)
    with pytest.raises(
        ConfigError, match=r"is a prompt folder \(its manifest.json lists prompts\), not a sweep"
    ):
        panel.load(prompts)  # was KeyError: 'repeats', after the panel had replaced what it showed
    assert (panel.manifest, panel.sweep_dir) == shown
    with pytest.raises(ConfigError, match=r"is a file, not a sweep folder"):
        panel.load(prompts / "manifest.json")  # was "no folder '…/manifest.json'"


def test_a_sweep_of_noise_alone_shows_its_false_starts_not_a_failure(tmp_path):
    from vlab.sweep import run_sweep
    from vlab.widgets import SweepPanel

    config = {
        "target": {"speed": "max"},
        "prompts": {"include": ["noise_only"]},
        "grid": {"threshold": [0.5, 0.9]},
        "run": {"baseline": False},
    }
    run_sweep(config, tmp_path / "noise", progress=False, session_options={"dotenv_path": False})
    panel = SweepPanel()
    panel.load(tmp_path / "noise")
    shown = " ".join(w.value for w in panel.results.children if isinstance(w, ipywidgets.HTML))
    assert "Nothing to chart" not in shown  # it said so, in red, and hid the false starts
    assert "the false starts per minute below are what this sweep measures" in shown
    assert "false_<wbr>starts_<wbr>per_<wbr>min" in shown or "false_starts_per_min" in shown
