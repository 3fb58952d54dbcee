"""Reports and comparisons of sweep folders."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

from vlab.cli import main
from vlab.errors import ConfigError, VlabWarning
from vlab.report import CHARTS, build_report, compare_sweeps
from vlab.sweep import run_sweep

pytestmark = pytest.mark.integration

CFG = {
    "target": {"speed": "max"},
    "prompts": {"include": ["pause_600", "two_turns"]},
    "grid": {"silence_duration_ms": [300, 900]},
    "run": {"concurrency": 4, "baseline": True, "canary": "two_turns"},
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "a"
    run_sweep(CFG, out, progress=False, session_options={"dotenv_path": False})
    return out


def test_report_holds_every_chart_embedded_and_as_png(sweep_dir):
    path = build_report(sweep_dir, timeline_prompts=2)
    page = path.read_text()
    charts = re.findall(r"data-chart='([^']+)' src='data:image/png;base64,", page)
    for name in CHARTS:
        assert any(c == name or c.startswith(name + "_") for c in charts), name
        assert list((sweep_dir / "report").glob(f"{name}*.png")), name
    timelines = [c for c in charts if c.startswith("vad_timeline_")]
    assert timelines == ["vad_timeline_pause_600", "vad_timeline_two_turns"]  # the prompt with a hold first
    (sweep_dir / "report" / "mine.png").write_bytes(b"the user's own file")
    build_report(sweep_dir, timeline_prompts=1)  # the second timeline's PNG was left behind, unused
    pngs = sorted(p.stem for p in (sweep_dir / "report").glob("*.png"))
    assert [p for p in pngs if p.startswith("vad_timeline_")] == ["vad_timeline_pause_600"] and "mine" in pngs
    (sweep_dir / "report" / "mine.png").unlink()  # the folder is the module's
    path = build_report(sweep_dir, timeline_prompts=2)
    assert "noise_tradeoff" not in charts  # it played no noise-only prompt
    budgets = re.search(r"Lowest cut-off rate within a dead-air budget: ([^.]*)\. Lowest dead air", page)
    assert budgets and [b.split(":")[0] for b in budgets[1].split(", ")] == [
        "@300 ms",
        "@600 ms",
        "@1000 ms",
        "@1500 ms",
    ]
    # a reply's own latency leaves no setting within 600 ms of dead air; 1500 ms holds one
    assert budgets[1].split(", ")[1] == "@600 ms: –" and budgets[1].split(", ")[3] != "@1500 ms: –"
    assert "failed" not in page
    assert "Operating points" in page and "Did the setting take effect?" in page
    assert "thr=0.5 pad=300 sil=500" in page  # the baseline cell
    assert "3 settings × 2 prompts × 1 repeat;" in page
    assert "<th>tokens_<wbr>per_<wbr>expected_<wbr>turn</th>" in page
    tables = page.count("<table")  # each scrolls in its own box when wider than the page
    assert tables >= 3 and page.count("<div style='overflow-x:auto'><table") == tables
    # the per-prompt table says what each of its measures is, above it
    per_prompt = page.split("<h2>Per prompt and setting</h2>")[1]
    note, table = per_prompt.split("<div style='overflow-x:auto'>", 1)
    shown = re.findall(r"<th>([^<]+(?:<wbr>[^<]+)*)</th>", table.split("</tr>")[0])
    measures = [c.replace("<wbr>", "") for c in shown if c not in ("setting", "prompt", "run")]
    assert measures and all(f"<code>{m}</code>: " in note for m in measures), (measures, note)


def test_cli_report_and_compare(sweep_dir, tmp_path, capsys):
    assert main(["report", str(sweep_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    b = tmp_path / "b"
    run_sweep(
        {**CFG, "grid": {"silence_duration_ms": [300, 1200]}},
        b,
        progress=False,
        session_options={"dotenv_path": False},
    )
    with pytest.warns(
        VlabWarning, match=r"only in A: thr=0\.5 pad=300 sil=900; only in B: thr=0\.5 pad=300 sil=1200"
    ):
        table = compare_sweeps(sweep_dir, b)
    assert set(table["setting"]) == {"thr=0.5 pad=300 sil=300", "thr=0.5 pad=300 sil=500"}
    assert {"false_cutoff_rate", "dead_air_ms p50"} <= set(table["measure"])
    assert set(table["verdict"]) <= {"better", "worse", "same", "n/a"}
    csv = tmp_path / "tables" / "c.csv"  # its folder is made
    assert main(["compare", str(sweep_dir), str(b), "--csv", str(csv)]) == 0
    assert "dead_air_ms p50" in capsys.readouterr().out
    assert len(pd.read_csv(csv)) == len(table)


def test_the_charts_and_the_tables_show_the_settings_in_the_grid_s_order(sweep_dir):
    from vlab import plots

    grid = ["thr=0.5 pad=300 sil=300", "thr=0.5 pad=300 sil=900", "thr=0.5 pad=300 sil=500"]  # baseline last
    charted = ["sil=300", "sil=900", "sil=500"]  # the charts name what sets each apart, the tables all of it
    rows_drawn = []

    def rows_of(chart):  # each chart's rows, top down
        def draw(*args, **kwargs):
            ax = chart(*args, **kwargs)
            labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text() != "audio"]
            rows_drawn.append(labels if ax.yaxis_inverted() else labels[::-1])
            return ax

        return draw

    with (
        mock.patch("vlab.plots.waterfall", wraps=plots.waterfall) as drawn,
        mock.patch("vlab.plots.summary_table", wraps=plots.summary_table) as tabled,
        mock.patch("vlab.plots.latency_distributions", rows_of(plots.latency_distributions)),
        mock.patch("vlab.plots.vad_timeline", rows_of(plots.vad_timeline)),
    ):
        page = build_report(sweep_dir, timeline_prompts=1).read_text(encoding="utf-8")
    assert drawn.call_args.args[0]["setting"].drop_duplicates().tolist() == charted
    assert len(rows_drawn) == 3 and all(rows == charted for rows in rows_drawn)  # dead air, v2v, a timeline
    assert "every one also has <code>thr=0.5 pad=300</code> (the tables give the whole names)" in page
    tables = [c.args[0] for c in tabled.call_args_list if "setting" in c.args[0]]
    columns = {c for t in tables for c in t}
    assert {"false_cutoff_rate", "p50", "cutoff_turns"} <= columns  # the points, latency and scores tables
    for table in tables:
        assert table["setting"].drop_duplicates().tolist() == grid, list(table.columns)


def test_the_latency_summary_counts_the_same_turns_in_every_stage(sweep_dir):
    from vlab import plots

    with mock.patch("vlab.plots.summary_table", wraps=plots.summary_table) as tabled:
        build_report(sweep_dir, timeline_prompts=0)
    (latency,) = [c.args[0] for c in tabled.call_args_list if "metric" in c.args[0]]
    assert pd.read_parquet(sweep_dir / "turns.parquet")["false_cutoff"].any()  # sil=300 cuts pause_600 off
    for _, rows in latency.groupby(["setting", "turns"]):
        n = dict(zip(rows["metric"], rows["n"], strict=True))
        assert n["turn_commit_ms"] == n["voice_to_voice_ms"] > 0  # the cut-offs' stages were counted too


def test_report_of_a_folder_that_is_not_a_sweep_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="not a sweep folder"):
        build_report(tmp_path)


def test_a_path_that_is_not_a_sweep_folder_is_told_what_to_give_in_report_compare_and_load(
    sweep_dir, tmp_path
):
    from vlab.sweep import load_sweep

    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text("")
    recordings = tmp_path / "recordings"  # a prompt set's manifest.json is not a sweep's
    recordings.mkdir()
    (recordings / "manifest.json").write_text('{"version": 1, "prompts": []}')
    (recordings / "a.wav").write_text("")
    cases = {
        tmp_path
        / "nowhere": "does not exist; give the folder `vlab sweep --out` wrote (`vlab runs` lists them)",
        sweep_dir
        / "points.parquet": f"is a file, not a sweep folder: give the sweep folder it is in, {str(sweep_dir)!r}",
        tmp_path / "run" / "events.jsonl": "is a file, not a sweep folder",
        run: "is the run folder of one session, not a sweep folder; `vlab.load_log` reads it",
        sweep_dir / "cells": f"is inside the sweep folder {str(sweep_dir)!r}; give that one",
        recordings / "a.wav": "is a file, not a sweep folder",  # was: "… give the sweep folder it is in, …"
    }
    for path, message in cases.items():
        for call, args in (
            (build_report, (path,)),
            (compare_sweeps, (sweep_dir, path)),
            (load_sweep, (path, "points")),
        ):
            with pytest.raises(ConfigError) as info:
                call(*args)
            assert str(info.value) == f"{str(path)!r} {message}"


def test_a_sweep_stopped_before_its_tables_says_how_to_finish_it_in_report_compare_and_load(
    sweep_dir, tmp_path
):
    import json

    from vlab.sweep import load_sweep

    stopped = tmp_path / "stopped"
    for name, status in (("a", "ok"), ("b", "ok"), ("c", "error")):
        (stopped / "cells" / name).mkdir(parents=True)
        (stopped / "cells" / name / "cell.json").write_text(json.dumps({"cell": name, "status": status}))
    message = (
        f"{str(stopped)!r} holds a sweep that stopped before writing its tables (2 cells finished): run the "
        f"same `vlab sweep` command again with --out {stopped} to finish it (finished cells are kept)"
    )
    for call in (
        lambda: build_report(stopped),
        lambda: compare_sweeps(sweep_dir, stopped),
        lambda: load_sweep(stopped, "points"),
    ):
        with pytest.raises(ConfigError) as info:
            call()
        assert str(info.value) == message


def test_report_says_when_labels_are_unreviewed_proposals(sweep_dir, tmp_path):
    import json
    import shutil

    assert "unreviewed automatic labels" not in build_report(sweep_dir, timeline_prompts=0).read_text()
    copy = tmp_path / "auto"
    shutil.copytree(sweep_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert {p["label_source"] for p in manifest["prompts"]} == {"generated"}
    manifest["prompts"][0]["label_source"] = "auto"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    page = build_report(copy, timeline_prompts=0).read_text()
    assert f"unreviewed automatic labels: 1 of 2 prompts ({manifest['prompts'][0]['id']})" in page


def test_report_names_the_prompts_it_could_score_nothing_in(sweep_dir, tmp_path):
    import json
    import shutil

    assert "No labelled speech" not in build_report(sweep_dir, timeline_prompts=0).read_text()
    copy, recordings = tmp_path / "sweep", tmp_path / "recordings"
    shutil.copytree(sweep_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    first = manifest["prompts"][0]
    prompt_set = json.loads((Path(first["file"]).parent / "manifest.json").read_text())
    recordings.mkdir()
    for entry in manifest["prompts"]:  # the sweep's recordings, in a prompt set of their own
        entry["file"] = str(shutil.copy(entry["file"], recordings))
    kept = [p for p in prompt_set["prompts"] if p["id"] in {e["id"] for e in manifest["prompts"]}]
    kept[0].update(speech_segments=[], hold_spans=[], end_of_turn_ms=[])  # its labels lost, say
    (recordings / "manifest.json").write_text(json.dumps({**prompt_set, "prompts": kept}))
    (copy / "manifest.json").write_text(json.dumps(manifest))
    page = build_report(copy, timeline_prompts=0).read_text()
    assert (
        f"No labelled speech in 1 of 2 prompts ({kept[0]['id']}): the sweep scored nothing in them." in page
    )


def test_report_names_the_failed_cells(sweep_dir, tmp_path):
    import json
    import shutil

    copy = tmp_path / "failed"
    shutil.copytree(sweep_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    cells = manifest["cells"]
    assert len(cells) == 6
    for k, cell in enumerate(cells):
        cell.update(status="error", error=f"ConnectionFailed: <refused> {k}")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    page = build_report(copy, timeline_prompts=0).read_text()
    shown = f"{cells[0]['cell']}: ConnectionFailed: &lt;refused&gt; 0"
    assert f"<p class='warn'>6 cell(s) failed: {shown}; " in page
    assert (
        "&lt;refused&gt; 4" in page and "&lt;refused&gt; 5" not in page
    )  # the first five, then how many others and where they are
    assert (
        "&lt;refused&gt; 4; … and 1 other error (each one's error is in failed/cells/&lt;cell&gt;/cell.json)</p>"
        in page
    )


def test_a_sweep_whose_every_cell_failed_says_why_in_the_report_compare_and_the_panel(sweep_dir, tmp_path):
    import html
    import json
    import socket
    import warnings

    from vlab.sweep import load_sweep
    from vlab.widgets import SweepPanel

    failed = tmp_path / "failed"
    with socket.socket() as refusing:  # bound, never listening: every connection is refused
        refusing.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        options = {"endpoint": endpoint, "api_key": "k", "dotenv_path": False}
        result = run_sweep(CFG, failed, progress=False, session_options=options)
    assert {c.status for c in result.cells} == {"error"} and result.points().empty
    first = sorted(result.cells, key=lambda c: c.cell)[0]
    why = f"{failed} has no results: none of its 6 cells finished; {first.cell} failed with: {first.error}. "
    assert "nothing accepts connections" in first.error
    with pytest.raises(ConfigError) as raised:
        build_report(failed)
    assert str(raised.value).startswith(why)
    assert str(raised.value).endswith("run the same `vlab sweep` command again (each cell's error is in "
                                      "cells/<cell>/cell.json; finished cells are kept)")  # fmt: skip
    for a, b in ((sweep_dir, failed), (failed, sweep_dir)):
        with pytest.raises(ConfigError, match=f"^{re.escape(why)}"):
            compare_sweeps(a, b)
    for table in ("points", "turns", "scores"):  # not an empty frame without columns
        with pytest.raises(ConfigError, match=f"^{re.escape(why)}"):
            load_sweep(failed, table)
    manifest = json.loads((failed / "manifest.json").read_text())
    manifest["prompts"] = manifest["prompts"][:1]  # prompts that differ: no warning about a failed comparison
    (failed / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings(), pytest.raises(ConfigError, match=f"^{re.escape(why)}"):
        warnings.simplefilter("error")
        compare_sweeps(sweep_dir, failed)
    panel = SweepPanel()
    panel.load(failed)
    assert f"Nothing to chart. {html.escape(why)}" in panel.results.children[-1].value


def test_a_sweep_stopped_before_its_tables_says_so_not_that_its_cells_failed(sweep_dir, tmp_path):
    import shutil

    stopped = tmp_path / "stopped"
    shutil.copytree(sweep_dir, stopped)
    for table in stopped.glob("*.parquet"):
        table.unlink()
    with pytest.raises(ConfigError, match=r"holds a sweep that stopped before writing its tables \(6 cells "
                       r"finished\): run the same `vlab sweep` command again with --out"):  # fmt: skip
        build_report(stopped)
