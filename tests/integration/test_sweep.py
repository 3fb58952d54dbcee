"""Sweeps end to end on the embedded emulator (fast mode), and metric accuracy against its ground truth."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import vlab
from tests._portable import needs_noise_suppression
from vlab import ServerVad, Session, SessionSettings, protocol
from vlab.audio.pcm import silence
from vlab.emulator import Emulator
from vlab.errors import ConfigError, UsageError, VlabWarning
from vlab.feed import feed_prompt
from vlab.log import load_log
from vlab.metrics import detection_error_rate, tokens_used, turn_latency
from vlab.prompts import load_prompt_set
from vlab.sweep import SweepConfig, grid_shape, load_config, run_sweep, run_sweep_async, sweep_warnings
from vlab.sweep.cells import latency_seed

pytestmark = pytest.mark.integration
OPTS = {"dotenv_path": False}


def config(**overrides):
    cfg = {
        "target": {
            "speed": 10,
            "latency": "typical",
        },  # fast, yet responses start before a paused user resumes
        "prompts": {"include": ["pause_600", "pause_900", "short_question"]},
        "grid": {"threshold": [0.5], "silence_duration_ms": [200, 1000]},
        "run": {"repeats": 1, "concurrency": 4, "timeout_s": 30},
    }
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return cfg


async def test_run_sweep_where_an_event_loop_runs_says_to_await_run_sweep_async(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and leaves no coroutine unawaited
        with pytest.raises(UsageError, match=r"^run_sweep cannot run inside a running event loop .*`await "):
            run_sweep(config(), tmp_path / "s", progress=False, session_options=OPTS)
    assert not (tmp_path / "s").exists()


async def test_the_tables_are_built_off_the_event_loop_with_a_bar_over_the_cells(
    tmp_path, capsys, monkeypatch
):
    import threading

    import vlab.sweep.run
    from vlab.sweep import tables

    threads = []

    def aggregate(*args, **kwargs):
        threads.append(threading.current_thread())
        return tables.aggregate(*args, **kwargs)

    monkeypatch.setattr(vlab.sweep.run, "aggregate", aggregate)
    cfg = config(prompts={"include": ["short_question", "pause_300"]}, target={"speed": "max"})
    result = await run_sweep_async(cfg, tmp_path / "s", progress=True, session_options=OPTS)
    assert len(threads) == 1 and threads[0] is not threading.main_thread()  # the loop was free meanwhile
    assert (tmp_path / "s" / "points.parquet").is_file()
    bars = capsys.readouterr().err.splitlines()  # not a terminal: a line per state (vlab._progress)
    n = len(result.cells)
    assert (
        n == 4 and f"sweep: {n}/{n} cells (100 %)" in bars[1] and f"tables: {n}/{n} cells (100 %)" in bars[-1]
    )


async def test_a_sweep_cancelled_while_it_builds_its_tables_stops_once_they_are_whole(tmp_path, monkeypatch):
    import threading

    import vlab.sweep.run
    from vlab.sweep import tables

    loop = asyncio.get_running_loop()
    building, release, built = asyncio.Event(), threading.Event(), threading.Event()

    def aggregate(*args, **kwargs):
        loop.call_soon_threadsafe(building.set)
        release.wait()
        tables.aggregate(*args, **kwargs)
        built.set()

    monkeypatch.setattr(vlab.sweep.run, "aggregate", aggregate)
    cfg = config(prompts={"include": ["short_question"]}, target={"speed": "max"})
    task = asyncio.ensure_future(run_sweep_async(cfg, tmp_path / "s", progress=False, session_options=OPTS))
    await building.wait()
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert built.is_set()  # no thread writes into the folder after the sweep has stopped
    assert not (tmp_path / "s" / "manifest.json").exists()


async def test_a_re_run_stopped_while_it_builds_its_tables_reads_as_unfinished_not_as_the_run_before(
    tmp_path, monkeypatch
):
    import threading

    import vlab.sweep.run
    from vlab.report.sweep_folder import require_sweep
    from vlab.sweep import tables

    fast = {"target": {"speed": "max"}, "prompts": {"include": ["short_question"]}}
    await run_sweep_async(config(**fast, grid={"silence_duration_ms": [300]}), tmp_path, progress=False,
                          session_options=OPTS)  # fmt: skip
    assert len(json.loads((tmp_path / "manifest.json").read_text())["grid"]) == 1
    loop = asyncio.get_running_loop()
    building, release = asyncio.Event(), threading.Event()

    def aggregate(*args, **kwargs):
        loop.call_soon_threadsafe(building.set)
        release.wait()
        tables.aggregate(*args, **kwargs)

    monkeypatch.setattr(vlab.sweep.run, "aggregate", aggregate)
    more = config(**fast, grid={"silence_duration_ms": [300, 900]})  # a setting added
    task = asyncio.ensure_future(run_sweep_async(more, tmp_path, progress=False, session_options=OPTS))
    await building.wait()
    task.cancel()  # Ctrl+C while the tables are written
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(pd.read_parquet(tmp_path / "points.parquet")) == 2  # the new tables ...
    assert not (tmp_path / "manifest.json").exists()  # ... beside no manifest of the sweep before them
    [row] = vlab.find_runs(tmp_path).to_dict("records")
    assert row["kind"] == "stopped sweep" and row["ended"].startswith("stopped")
    with pytest.raises(ConfigError, match=r"holds a sweep that stopped before writing its tables \(2 cells"):
        require_sweep(tmp_path)  # vlab report
    monkeypatch.undo()
    again = await run_sweep_async(more, tmp_path, progress=False, session_options=OPTS)
    assert [c.status for c in again.cells] == ["skipped", "skipped"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [g["setting"] for g in manifest["grid"]] == list(load_config(more).setting_names)
    assert len(manifest["grid"]) == 2 and manifest["counts"]["ok"] == 2


def test_a_sweep_into_a_folder_another_process_sweeps_is_refused_until_that_one_ends(tmp_path):
    import subprocess
    import sys

    from vlab.sweep.store import not_a_sweep

    out = tmp_path / "s"
    holder = subprocess.Popen(  # what a sweep running into the folder holds
        [sys.executable, "-c", "import sys; from vlab.sweep.store import sweep_lock\n"
         "with sweep_lock(sys.argv[1]):\n    print('held', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        cfg = config(prompts={"include": ["short_question"]}, grid={"silence_duration_ms": [300]})
        with pytest.raises(
            ConfigError,
            match=rf"^{re.escape(str(out))} is being swept by another process \(pid {holder.pid}\); wait for "
            "it to finish or give this sweep another --out$",
        ):
            run_sweep(cfg, out, progress=False, session_options=OPTS)
        assert not (out / "cells").exists()  # refused before it wrote anything
        assert not_a_sweep(out) == (  # what vlab report says meanwhile
            f"{str(out)!r} holds a sweep still running (pid {holder.pid}): its tables and manifest.json are "
            "written once its cells have run; wait for it to finish"
        )
    finally:
        holder.kill()  # ended at once: its lock file is left behind, with its pid
        holder.wait()
    assert (out / ".vlab-sweep.lock").read_text() == f"{holder.pid}\n"
    result = run_sweep(cfg, out, progress=False, session_options=OPTS)  # the OS released the dead one's lock
    assert [c.status for c in result.cells] == ["ok"]
    assert not_a_sweep(out) is None
    [row] = vlab.find_runs(out).to_dict("records")  # the lock file is neither a run nor a cell
    assert (row["folder"], row["kind"], row["ended"]) == (".", "sweep", "1 ok")
    again = run_sweep(cfg, out, progress=False, session_options=OPTS)  # its own lock was released too
    assert [c.status for c in again.cells] == ["skipped"]


async def test_a_dask_cell_whose_cell_json_is_not_where_the_sweep_looks_counts_as_failed(
    tmp_path, monkeypatch
):
    import vlab.sweep.dask_executor
    from vlab.sweep.cells import CellResult

    async def elsewhere(job, args, done, **_):  # workers that wrote the cells where this process cannot see
        for name, cell in args:
            done(cell, (CellResult(name, "ok", 0.1), None))

    monkeypatch.setattr(vlab.sweep.dask_executor, "run_on_dask", elsewhere)
    monkeypatch.chdir(tmp_path)
    cfg = config(prompts={"include": ["short_question"]}, run={"executor": "dask"})
    result = await run_sweep_async(cfg, "rel", progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["error", "error"]  # not "2 run, 0 failed"
    looked = tmp_path / "rel" / "cells" / result.cells[0].cell / "cell.json"
    assert result.cells[0].error == (
        f"its Dask worker ran it (ok), but its cell.json is not at {looked}: "
        "every worker must write the sweep folder at that path (a file system shared by the workers and this "
        "process, mounted alike)"
    )
    manifest = json.loads((tmp_path / "rel" / "manifest.json").read_text())
    assert manifest["counts"] == {"ok": 0, "error": 2, "missing": 0}
    assert manifest["cells"][0]["error"] == result.cells[0].error


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    result = run_sweep(config(), out, progress=False, session_options=OPTS)
    return out, result


def test_small_grid_runs_and_writes_every_table(sweep):
    out, result = sweep
    assert [c.status for c in result.cells] == ["ok"] * 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target_kind"] == ["emulator"] and manifest["counts"]["ok"] == 6
    assert {g["setting"] for g in manifest["grid"]} == {"thr=0.5 pad=300 sil=200", "thr=0.5 pad=300 sil=1000"}
    assert manifest["versions"]["vlab"] and manifest["versions"]["azure-ai-voicelive"]
    assert "emu-" not in (out / "manifest.json").read_text()  # no key of the embedded emulator
    turns, vad = pd.read_parquet(out / "turns.parquet"), pd.read_parquet(out / "vad.parquet")
    assert set(turns["prompt"]) == set(vad["prompt"]) == {"pause_600", "pause_900", "short_question"}
    # the reply's leading silence, measured from each cell's recording of the reply (eSpeak starts speaking at once)
    spoken = turns[turns["reply_audio_ms"] > 0]  # replies cancelled before their first audio have none
    silence = spoken["reply_leading_silence_ms"]
    assert silence.notna().any() and (silence.dropna() >= 0).all() and silence.median() < 200
    for cell, item in spoken.loc[silence.isna(), ["cell", "reply_item_id"]].itertuples(index=False):
        # no leading silence only when the user cut the reply off before one 10 ms frame of it was heard,
        # or before anything audible
        heard, rate = sf.read(out / "cells" / cell / "output" / f"{item}.wav", dtype="float32")
        assert len(heard) < rate // 100 or np.abs(heard).max() < 10 ** (-45 / 20), (cell, item, len(heard))
    assert len(list((out / "cells").glob("*/events.parquet"))) == 6


def test_each_cell_counts_the_tokens_its_responses_said_they_used(sweep):
    out, result = sweep
    scores = pd.read_parquet(out / "scores.parquet").set_index("cell")
    for cell in result.cells:
        events = load_log(out / "cells" / cell.cell)
        done = events[events["type"] == protocol.RESPONSE_DONE]["payload"]
        said = sum(json.loads(p)["response"]["usage"]["total_tokens"] for p in done)
        assert len(done) and scores.loc[cell.cell, "total_tokens"] == said, cell.cell
    points = pd.read_parquet(out / "points.parquet")
    assert (points["tokens_per_expected_turn"] > 0).all()


def test_each_prompt_draws_latencies_of_its_own_and_the_same_in_every_setting(sweep):
    out, result = sweep
    first_draws: dict[str, set[tuple[float, ...]]] = {}
    for cell in result.cells:
        trace = [json.loads(line) for line in (out / "cells" / cell.cell / "trace.jsonl").open()]
        drawn = next(r for r in trace if r.get("kind") == "latency" and "response_id" in r)
        stages = ("commit_ms", "network_ms", "first_token_ms", "tts_first_byte_ms")
        meta = json.loads((out / "cells" / cell.cell / "cell.json").read_text())
        first_draws.setdefault(meta["prompt"], set()).add(tuple(drawn[s] for s in stages))
        assert meta["emulator"]["seed"] == latency_seed(meta["prompt"])
    # one draw per prompt, whichever the setting (they differ only by what they decide) ...
    assert {p: len(d) for p, d in first_draws.items()} == {
        "pause_600": 1,
        "pause_900": 1,
        "short_question": 1,
    }
    # ... and each prompt's first turn its own: one seed for all gave every first turn the same latencies
    assert len(set().union(*first_draws.values())) == 3


def test_a_cell_s_tokens_are_its_responses_and_not_its_turns_without_one():
    turns = pd.DataFrame({"t_done_ns": [1e9, math.nan, 3e9], "total_tokens": [50.0, math.nan, 70.0]})
    assert (
        tokens_used(turns)["total_tokens"] == 120.0
    )  # the detected turn that started no response has no usage
    assert math.isnan(tokens_used(turns.assign(total_tokens=[50.0, math.nan, math.nan]))["total_tokens"])
    assert tokens_used(turns.iloc[:0])["total_tokens"] == 0.0  # no response: nothing used


@pytest.mark.parametrize("table", ["turns", "vad", "scores", "session"])
def test_duckdb_reads_each_dataset_as_the_same_table_as_load_sweep(sweep, table):
    duckdb = pytest.importorskip("duckdb", reason="in the dev extra: pip install -e '.[dev]'")
    out, _ = sweep
    ours = vlab.load_sweep(out, table)
    glob = str(out / "dataset" / table / "*" / "*.parquet")
    # the query docs/own-recordings.md gives
    theirs = duckdb.connect().sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)").df()
    assert len(ours) > 0 and ours["setting_index"].nunique() == 2  # both settings' partitions, as one table
    assert list(theirs.columns) == list(ours.columns)  # the partition key too, from the folder names

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(list(frame.columns), ignore_index=True)
        return frame.astype(object).where(frame.notna(), None)  # one null (DuckDB: None, pandas: NA)

    # DuckDB gives strings as Python str, pandas as its string dtype: same values, rows in any order
    pd.testing.assert_frame_equal(rows(theirs), rows(ours), check_dtype=False)


def test_longer_silence_gives_fewer_cutoffs_on_pauses_and_more_dead_air(sweep):
    out, _ = sweep
    scores = pd.read_parquet(out / "scores.parquet")
    pauses = scores[scores["category"] == "pause"].groupby("silence_duration_ms")
    cut = pauses["cutoff_turns"].sum()
    assert cut[200] >= 1 and cut[1000] == 0  # a 200 ms timer ends turns inside the 600/900 ms pauses
    dead = scores.groupby("silence_duration_ms")["dead_air_ms"].median()
    assert dead[1000] - dead[200] == pytest.approx(800, abs=150)
    points = pd.read_parquet(out / "points.parquet")
    assert points["silence_duration_ms"].tolist() == [200, 1000]  # in the grid's order, not the names'
    points = points.set_index("silence_duration_ms")
    assert points.loc[200, "false_cutoff_rate"] > points.loc[1000, "false_cutoff_rate"]
    assert points.loc[200, "dead_air_ms"] < points.loc[1000, "dead_air_ms"]


def test_the_log_explorer_opened_on_a_cell_times_its_turns_as_the_sweep_s_table_does(sweep):
    """Each cell keeps its prompt's labels (labels.json), so a cell opened in the log explorer gives the
    turns of the sweep's table, false cut-offs included, rather than figures from the server's estimate."""
    from vlab.widgets import LogExplorer

    out, _ = sweep
    table = vlab.load_sweep(out)
    compared = ["turn", "a_eos_source", "a_eos_ms", "false_cutoff", "voice_to_voice_ms", "dead_air_ms"]
    cut = 0
    for cell, turns in table.groupby("cell"):
        explorer = LogExplorer(out / "cells" / str(cell))
        ours = turns.sort_values("turn")[compared].reset_index(drop=True)
        pd.testing.assert_frame_equal(explorer.turns[compared], ours, check_dtype=False)
        assert f"; ends of speech: {len(ours)} from the prompt's labels" in explorer.status.value
        cut += int(ours["false_cutoff"].sum())
    assert cut >= 1  # a 200 ms timer cuts the pauses: without the labels, no turn would say so


async def test_a_setting_s_dead_air_is_the_one_its_chart_and_vlab_compare_show(tmp_path):
    # points (the summary table, the Pareto chart) took the median of the runs' medians; the report's
    # dead-air chart and `vlab compare` the median over the turns: two figures under one name, 36 ms
    # apart on two auto-labelled recordings
    from vlab.metrics import bootstrap_ci, spoken_turns
    from vlab.report import compare_sweeps

    cfg = config(
        target={"speed": "max"},
        prompts={"include": ["short_question", "two_turns", "pause_600"]},
        grid={"silence_duration_ms": [500, 700]},
    )
    await run_sweep_async(cfg, tmp_path, progress=False, session_options=OPTS)
    points = pd.read_parquet(tmp_path / "points.parquet").set_index("setting")
    turns = spoken_turns(pd.read_parquet(tmp_path / "turns.parquet"))
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    with pytest.warns(VlabWarning, match="the same sweep folder"):  # A's figures are what it shows
        compared = compare_sweeps(tmp_path, tmp_path, n_boot=1000).set_index(["setting", "measure"])
    for setting, point in points.iterrows():
        waits = turns.loc[turns["setting"] == setting, "dead_air_ms"]
        assert waits.notna().sum() == 4  # one turn each, two in two_turns
        row = compared.loc[(setting, "dead_air_ms p50")]
        assert (point["dead_air_ms"], point["dead_air_ms_lo"], point["dead_air_ms_hi"]) == bootstrap_ci(
            waits, 0.5
        )
        assert point["dead_air_ms"] == row["a"] and (point["dead_air_ms_lo"], point["dead_air_ms_hi"]) == (
            row["a_lo"],
            row["a_hi"],
        )
    by_run = scores.groupby("setting")["dead_air_ms"].median()  # the figure that was shown
    assert (abs(by_run - points["dead_air_ms"]) > 0.5).any(), by_run


async def test_a_killed_sweep_resumes_without_redoing_finished_cells(tmp_path):
    cfg = config(run={"concurrency": 1}, grid={"silence_duration_ms": [300]})
    task: asyncio.Task = asyncio.create_task(
        run_sweep_async(
            cfg, tmp_path, progress=False, session_options=OPTS, on_cell=lambda cell: task.cancel()
        )
    )  # killed mid-sweep, as soon as the first cell has written its cell.json
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = {p.parent.name: p.stat().st_mtime_ns for p in tmp_path.glob("cells/*/cell.json")}
    assert len(finished) == 1
    result = await run_sweep_async(cfg, tmp_path, progress=False, session_options=OPTS)
    status = {c.cell: c.status for c in result.cells}
    assert all(status[name] == "skipped" for name in finished)
    assert sorted(status.values()).count("ok") == 3 - len(finished)
    assert all(
        p.stat().st_mtime_ns == finished[p.parent.name]
        for p in tmp_path.glob("cells/*/cell.json")
        if p.parent.name in finished
    )
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == 3
    # its wall time is the last run's, and the report says that run kept a cell (it said "wall 0.4 s" alone)
    from vlab.report import build_report

    assert json.loads((tmp_path / "manifest.json").read_text())["kept"] == 1
    assert "s (its last run; 1 cell kept from before)" in build_report(tmp_path).read_text()


async def test_a_folder_s_cells_of_another_grid_stay_out_of_the_tables_with_a_warning(tmp_path):
    from vlab.errors import VlabWarning
    from vlab.sweep import load_sweep

    fast = {"target": {"speed": "max"}, "prompts": {"include": ["short_question"]}}
    await run_sweep_async(config(**fast), tmp_path, progress=False, session_options=OPTS)  # 200 and 1000 ms
    other = config(**fast, grid={"silence_duration_ms": [500]})
    with pytest.warns(VlabWarning, match=f"^{tmp_path} also holds 2 cells this sweep does not have"):
        result = await run_sweep_async(other, tmp_path, progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["ok"]
    setting = "thr=0.5 pad=300 sil=500"
    assert result.points()["setting"].tolist() == [setting]  # not the 200 and 1000 ms of the first sweep
    for table in ("turns", "scores", "vad"):
        assert set(load_sweep(tmp_path, table)["setting"]) == {setting}, table
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [c["cell"] for c in manifest["cells"]] == [c.cell for c in result.cells]
    assert manifest["counts"] == {"ok": 1, "error": 0, "missing": 0}
    assert len(list(tmp_path.glob("cells/*/cell.json"))) == 3  # the first sweep's cells are kept


async def test_a_failed_cell_records_its_error_and_the_sweep_goes_on(tmp_path):
    import shutil

    prompts = load_prompt_set()
    folder = tmp_path / "prompts"
    folder.mkdir()
    manifest = json.loads((prompts[0].file.parent / "manifest.json").read_text())
    manifest["prompts"] = [e for e in manifest["prompts"] if e["id"] in ("short_question", "pause_300")]
    for e in manifest["prompts"]:
        if e["id"] == "short_question":
            shutil.copy(prompts[0].file.parent / e["file"], folder / e["file"])
    (folder / "manifest.json").write_text(json.dumps(manifest))  # pause_300.wav is missing
    cfg = config(grid={"silence_duration_ms": [300]}, prompts={"path": str(folder), "include": ["*"]})
    result = await run_sweep_async(cfg, tmp_path / "out", progress=False, session_options=OPTS)
    status = {c.cell.split("__")[1]: c for c in result.cells}
    assert status["short_question"].status == "ok" and status["pause_300"].status == "error"
    assert "file not found" in status["pause_300"].error
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"] == {
        "ok": 1,
        "error": 1,
        "missing": 0,
    }
    assert list(pd.read_parquet(tmp_path / "out" / "scores.parquet")["prompt"]) == ["short_question"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"grid": {"thresh": [0.5]}}, "unknown key"),
        (
            {"grid": {"threshold": [1.5]}},
            r"^\[grid\] threshold must be a number in",
        ),  # as the config names it
        (
            {"grid": {"type": "azure_semantic_vad", "speech_duration_ms": [-5]}},
            r"^\[grid\] speech_duration_ms must be an integer number of milliseconds",
        ),
        ({"grid": {"silence_duration_ms": []}}, "empty list"),
        ({"run": {"concurrency": 0}}, "concurrency must be"),
        ({"prompts": {"include": ["nope"]}}, "no prompt named"),
        ({"target": {"speed": -1}}, "speed must be"),
        ({"grid": {"eou_model": ["semantic_detection_v2"]}}, "eou_model must be among 'off', 'semantic_"),
        ({"grid": {"eou_timeout_ms": [800, -1]}}, r"eou_timeout_ms = -1: .* in \[0, 60000\]"),
        ({"grid": {"eou_threshold_level": []}}, "eou_threshold_level is an empty list"),
        ({"grid": {"type": []}}, r"\[grid\] type is an empty list"),
        (
            {"grid": {"type": ["server_vad", "semantic"]}},
            r"type must be 'server_vad' or 'azure_semantic_vad' \(or a list of them to compare\), got 'semantic'",
        ),
        ({"grid": {"type": [["server_vad"]]}}, r"type must be .*, got \['server_vad'\]"),  # was a TypeError
        (
            {"grid": {"type": ["server_vad", "azure_semantic_vad"], "speech_duration_ms": [80]}},
            r"speech_duration_ms needs type = 'azure_semantic_vad' \(server_vad has no such setting; sweep it",
        ),
        (
            {"grid": {"type": ["azure_semantic_vad", "azure_semantic_vad"]}},
            r"gives the setting 'semantic thr=0.5 pad=300 sil=\d+' twice",
        ),
        (
            {"grid": {"threshold": [0.5, 0.3, 0.50]}},
            r"gives the setting 'thr=0.5 pad=300 sil=\d+' twice .*repeats",
        ),
        ({"run": {"timeout_s": 0}}, r"timeout_s must be a number of seconds > 0, got 0"),
        ({"run": {"backoff_s": -1}}, r"backoff_s must be a number of seconds ≥ 0"),
        ({"run": {"throttle_retries": -1}}, r"throttle_retries must be an integer ≥ 0"),
        ({"run": {"repeats": True}}, r"repeats must be an integer ≥ 1, got True"),
        ({"run": {"max_sessions": 0}}, r"max_sessions must be an integer ≥ 1"),
        ({"run": {"executor": "spark"}}, r"executor must be 'asyncio' or 'dask', got 'spark'"),
        ({"run": {"cluster": "tcp://host:8786"}}, r"cluster .* with executor = 'asyncio'"),
        (
            {"run": {"workers": 4}},
            r"^\[run\] workers = 4 sets the Dask workers .* with executor = 'asyncio': add executor = "
            r"'dask' to run them on Dask, or drop workers",
        ),
        ({"run": {"workers": 2, "executor": "asyncio"}}, r"workers = 2 .*or drop workers"),  # was ignored
        ({"run": {"mode": "fast"}}, r"mode must be 'sessions' or 'vad'"),
        ({"run": {"baseline": "yes"}}, r"baseline must be true or false"),
        (
            {"run": {"canary": "nope"}},
            r"canary 'nope' is not among the selected prompts \(pause_600, pause_900, short_question\); "
            r"name one of them",
        ),
        ({"run": {"mode": "vad", "repeats": 2}}, r"mode = 'vad' decides each cell once"),
        (
            {"target": {"latency": "fast"}},
            r"latency must be one of \[.instant., .slow-network., .typical.\] or a latency.json",
        ),
        ({"target": {"hear_audio": "yes"}}, r"hear_audio must be true or false"),
        ({"target": {"script": 3}}, r"script must be the path of a JSON dialogue script"),
        ({"run": {"push_to_talk": "yes"}}, r"push_to_talk must be true or false, got 'yes'"),
        (
            {"run": {"push_to_talk": True, "mode": "vad"}},
            r"push_to_talk needs sessions: .*\(drop push_to_talk",
        ),
    ],
)
def test_bad_configs_fail_before_anything_runs(bad, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config(**bad))


def test_a_folder_given_as_the_config_is_told_which_file_to_give(tmp_path):
    with pytest.raises(ConfigError) as info:  # was: "sweep config … not found", though it is there
        load_config(tmp_path)
    assert (
        str(info.value)
        == f"sweep config {str(tmp_path)!r} is a folder; give a .toml file (`vlab examples` writes some)"
    )
    (tmp_path / "vad.toml").write_text("[grid]\nthreshold = [0.5]\n")
    with pytest.raises(
        ConfigError,
        match=rf"is a folder; give a \.toml file, e\.g\. '{re.escape(str(tmp_path / 'vad.toml'))}'$",
    ):
        load_config(tmp_path)


def test_a_missing_config_says_how_to_get_it(tmp_path):
    example = tmp_path / "examples" / "vad_sweep.toml"  # the README's, run outside the repository
    with pytest.raises(ConfigError) as info:
        load_config(example)
    assert str(info.value) == (
        f"sweep config {str(example)!r} not found; `vlab examples` copies the example configs, "
        "vad_sweep.toml among them, into ./examples"
    )
    with pytest.raises(
        ConfigError, match=r"'mine\.toml' not found; check the path \(relative paths start at"
    ):
        load_config("mine.toml")


def test_a_config_that_leaves_keys_out_gets_the_defaults_its_documentation_states():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    import vlab.sweep

    bare = load_config({"grid": {"threshold": [0.5]}})
    defaults = SweepConfig(settings=(), setting_names=(), prompts=())
    documented = tomllib.loads(vlab.sweep.__doc__.split("::\n", 1)[1].split("\n\n", 1)[0])
    stated = {**documented["target"], **documented["run"]}
    keys = ("speed", "latency", "hear_audio", "repeats", "concurrency", "timeout_s", "throttle_retries",
            "backoff_s", "executor", "workers", "mode")  # fmt: skip
    for key in keys:
        assert getattr(bare, key) == getattr(defaults, key), key
        assert stated[key] == ("max" if key == "speed" else getattr(defaults, key)), key
    assert (bare.baseline, bare.canary, bare.cluster, bare.max_sessions) == (None, None, None, None)
    assert len(bare.prompts) == len(load_prompt_set())  # every bundled prompt


def test_a_grid_crosses_end_of_utterance_detection_with_the_vad_settings():
    cfg = load_config(
        config(
            grid={"silence_duration_ms": [300, 600], "eou_model": ["off", "semantic_detection_v1_en"]},
            run={"baseline": True},
        )
    )
    assert cfg.setting_names == (
        "thr=0.5 pad=300 sil=300",
        "thr=0.5 pad=300 sil=300 eou=v1_en",
        "thr=0.5 pad=300 sil=600",
        "thr=0.5 pad=300 sil=600 eou=v1_en",
        "thr=0.5 pad=300 sil=500",  # the baseline: plain server VAD
    )
    wire = [s.to_wire()["turn_detection"].get("end_of_utterance_detection") for s in cfg.settings]
    assert wire == [
        None,
        {"model": "semantic_detection_v1_en"},
        None,
        {"model": "semantic_detection_v1_en"},
        None,
    ]
    knobs = load_config(config(grid={"eou_timeout_ms": [500, 2000], "eou_threshold_level": "low"}))
    assert [s.to_wire()["turn_detection"]["end_of_utterance_detection"] for s in knobs.settings[:2]] == [
        {"model": "semantic_detection_v1", "threshold_level": "low", "timeout_ms": 500},  # the default model
        {"model": "semantic_detection_v1", "threshold_level": "low", "timeout_ms": 2000},
    ]


def test_end_of_utterance_detection_holds_the_turn_a_short_silence_timer_cuts_off(tmp_path):
    """pause_600, "I would like to book a table for … four people": a 300 ms timer answers inside the pause;
    with end-of-utterance detection the emulator reads "…a table for" as unfinished and waits for the rest."""
    cfg = config(
        prompts={"include": ["pause_600"]},
        grid={"silence_duration_ms": [300], "eou_model": ["off", "semantic_detection_v1"]},
    )
    run_sweep(cfg, tmp_path, progress=False, session_options=OPTS)
    points = pd.read_parquet(tmp_path / "points.parquet").set_index("end_of_utterance")
    assert points.loc["off", "false_cutoff_rate"] == 1.0 and points.loc["off", "turns_per_expected"] == 2.0
    held = points.loc["eou=v1"]
    assert (held["false_cutoff_rate"], held["turns_per_expected"], held["missed_turn_rate"]) == (
        0.0,
        1.0,
        0.0,
    )
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert sorted(scores["end_of_utterance"]) == ["eou=v1", "off"]


def test_a_grid_of_two_turn_detection_types_compares_them_setting_by_setting(tmp_path):
    """pause_600: server VAD at 300 ms answers inside the pause; the semantic VAD reads "…a table for" as
    unfinished and holds the turn, and each turn's wait runs from where the user stopped, whatever the hold."""
    cfg = config(
        prompts={"include": ["pause_600"]},
        grid={"type": ["server_vad", "azure_semantic_vad"], "silence_duration_ms": [300]},
    )
    assert load_config(cfg).setting_names == ("thr=0.5 pad=300 sil=300", "semantic thr=0.5 pad=300 sil=300")
    run_sweep(cfg, tmp_path, progress=False, session_options=OPTS)
    points = pd.read_parquet(tmp_path / "points.parquet").set_index("turn_detection_type")
    assert points.loc["server_vad", "false_cutoff_rate"] == 1.0
    assert points.loc["azure_semantic_vad", ["false_cutoff_rate", "missed_turn_rate"]].tolist() == [0.0, 0.0]
    turns = pd.read_parquet(tmp_path / "turns.parquet")
    held = turns[turns["turn_detection_type"] == "azure_semantic_vad"]
    (end_of_speech,) = next(p for p in load_prompt_set() if p.id == "pause_600").end_of_turn_ms
    assert len(held) == 1 and held["a_eos_ms"].tolist() == [end_of_speech]
    assert (held["a_eos_source"] == "label").all() and (held["dead_air_ms"] > 300).all()


def test_push_to_talk_commits_each_labelled_turn_and_is_the_reference_beside_the_settings(tmp_path):
    cfg = config(
        target={"speed": "max"},
        prompts={"include": ["short_question", "two_turns", "noise_only"]},
        grid={"silence_duration_ms": [200]},
        run={"push_to_talk": True},
    )
    loaded = load_config(cfg)
    assert loaded.setting_names == ("thr=0.5 pad=300 sil=200", "push-to-talk")
    assert loaded.push_to_talk == "push-to-talk" and loaded.settings[-1].turn_detection is None
    run_sweep(loaded, tmp_path / "max", progress=False, session_options=OPTS)
    turns = pd.read_parquet(tmp_path / "max" / "turns.parquet")
    ptt = turns[turns["setting"] == "push-to-talk"]
    assert sorted(ptt["prompt"]) == ["short_question", "two_turns", "two_turns"]  # one per labelled turn
    assert set(ptt["trigger"]) == {"commit"} and not ptt["false_cutoff"].any()
    vad = pd.read_parquet(tmp_path / "max" / "vad.parquet")
    assert "push-to-talk" not in set(vad["setting"])  # no server VAD, so no detections of its own
    scores = pd.read_parquet(tmp_path / "max" / "scores.parquet").set_index(["setting", "prompt"])
    for prompt in ("short_question", "two_turns"):
        row = scores.loc[("push-to-talk", prompt)]
        expected = row["expected_turns"]
        assert (row["responses"], row["cutoff_turns"], row["missed_turns"], row["der"]) == (
            expected,
            0,
            0,
            0.0,
        )
        assert row["dead_air_ms"] == ptt.loc[ptt["prompt"] == prompt, "dead_air_ms"].median()
    assert scores.loc[("push-to-talk", "noise_only"), "responses"] == 0
    # the same turn with server VAD waits its 200 ms silence timer before it commits
    vad_wait = scores.loc[("thr=0.5 pad=300 sil=200", "short_question"), "dead_air_ms"]
    assert vad_wait - scores.loc[("push-to-talk", "short_question"), "dead_air_ms"] >= 200
    points = pd.read_parquet(tmp_path / "max" / "points.parquet").set_index("setting")
    assert points["reference"].tolist() == [False, True] and points["pareto"].tolist() == [True, False]
    from vlab.report import build_report

    page = build_report(tmp_path / "max").read_text(encoding="utf-8")
    summary = page.split("<h2>Latency summary", 1)[1].split("<h2>", 1)[0]
    assert "push-to-talk" in summary  # its turns are charted and summarized with the settings'
    assert "push-to-talk is a reference, not a setting to choose" in page
    # each turn is committed once the one before is answered: on the simulated timeline, at any speed
    two_turns = config(**{**cfg, "target": {"speed": 4}, "prompts": {"include": ["two_turns"]}})
    run_sweep(two_turns, tmp_path / "x4", progress=False, session_options=OPTS)
    at_4 = pd.read_parquet(tmp_path / "x4" / "turns.parquet")
    stable = ["prompt", "a_eos_ms", "dead_air_ms", "turn_commit_ms", "ttfb_audio_ms", "total_tokens"]
    pd.testing.assert_frame_equal(
        at_4.loc[at_4["setting"] == "push-to-talk", stable].reset_index(drop=True),
        ptt.loc[ptt["prompt"] == "two_turns", stable].reset_index(drop=True),
    )


def test_a_push_to_talk_turn_without_an_answer_is_scored_missed():
    from vlab.metrics import detections_from_events, score_prompt
    from vlab.sweep.tables import _push_to_talk_detections

    prompt = next(p for p in load_prompt_set(None) if p.id == "two_turns")
    turns = pd.DataFrame(
        {"trigger": ["commit", "client"], "dead_air_ms": [500.0, 90.0]}
    )  # one commit answered
    empty = detections_from_events(pd.DataFrame(columns=["type", "direction", "payload", "t_ns"]))
    detections, dead = _push_to_talk_detections(prompt, turns, empty)
    assert list(detections.columns) == list(empty.columns)
    assert dead == {prompt.end_of_turn_ms[0]: 500.0}
    score = score_prompt(prompt, detections, dead_air_ms=dead)
    assert (score["ended_turns"], score["missed_turns"], score["cutoff_turns"], score["der"]) == (
        1,
        1,
        0,
        0.0,
    )
    assert score["dead_air_ms"] == 500.0


def test_a_sweep_s_size_says_one_of_each_in_the_singular(tmp_path, capsys):
    assert grid_shape(3, 5, 1) == "3 settings × 5 prompts × 1 repeat"
    assert grid_shape(1, 1, 2) == "1 setting × 1 prompt × 2 repeats"
    from vlab.cli import main

    one = tmp_path / "one.toml"
    one.write_text('[prompts]\ninclude = ["short_question"]\n[grid]\nthreshold = [0.5]\n', encoding="utf-8")
    assert main(["sweep", str(one), "--dry-run"]) == 0
    assert (
        capsys.readouterr().out.splitlines()[0] == "1 cell: 1 setting × 1 prompt × 1 repeat"
    )  # was "1 cells"


def test_the_example_configs_are_valid():
    cfg = load_config("examples/vad_sweep.toml")
    assert cfg.baseline in cfg.setting_names and cfg.canary == "short_question" and cfg.n_cells >= 40
    noise = load_config("examples/noise_sweep.toml")
    assert len(noise.settings) == 16 and "thr=0.05 pad=300 sil=500 nr=far_field" in noise.setting_names
    eou = load_config("examples/eou_sweep.toml")  # 2 silences × (none, 2 timeouts); the baseline is one
    assert len(eou.settings) == 6 and eou.baseline == "thr=0.5 pad=300 sil=500"
    assert "thr=0.5 pad=300 sil=300 eou=v1/1200ms" in eou.setting_names
    phone = load_config("examples/telephone_sweep.toml")  # 3 thresholds × 3 silences, G.711 both ways
    assert len(phone.settings) == 9 and phone.session["input_audio_format"] == "g711_ulaw"
    assert {(s.input_sample_rate, s.output_sample_rate) for s in phone.settings} == {(8000, 8000)}
    assert sweep_warnings(phone, {"dotenv_path": False}) == []  # the silence timer reads no words


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"noise_reduction": ["studio"]}, "noise_reduction must be among 'off', 'near_field'"),
        ({"echo_cancellation": ["yes"]}, "echo_cancellation must be true or false"),
        ({"noise_reduction": []}, "noise_reduction is an empty list"),
    ],
)
def test_bad_processing_grids_fail_before_anything_runs(grid, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config(grid=grid))


@pytest.mark.parametrize(
    ("grid", "names"),
    [
        (
            {"noise_reduction": ["off", "far_field"]},
            ["thr=0.5 pad=300 sil=500", "thr=0.5 pad=300 sil=500 nr=far_field"],
        ),
        ({"echo_cancellation": [False, True]}, ["thr=0.5 pad=300 sil=500", "thr=0.5 pad=300 sil=500 aec"]),
    ],
)
def test_a_grid_of_input_processing_alone_sweeps_it_on_the_default_turn_detection(grid, names):
    # was "[grid] gives no setting to sweep (only 'type')"
    assert list(load_config({**config(), "grid": grid}).setting_names) == names


@needs_noise_suppression
async def test_a_sweep_reports_false_starts_with_noise_suppression_on_and_off(tmp_path):
    cfg = load_config(
        {
            "target": {"speed": "max", "latency": "instant"},
            "prompts": {"include": ["noise_only", "noisy_snr10"]},
            "grid": {"threshold": [0.05], "noise_reduction": ["off", "azure_deep_noise_suppression"]},
        }
    )
    result = await run_sweep_async(cfg, tmp_path, progress=False, session_options=OPTS)
    assert {c.status for c in result.cells} == {"ok"}
    points = result.points().set_index("noise_reduction")
    assert set(points.index) == {"off", "azure_deep_noise_suppression"}
    assert points["false_starts_per_min"].notna().all()  # the noise-only prompt, scored per setting
    assert (points["false_starts_per_min_hi"] > points["false_starts_per_min"]).all()  # a few seconds of it
    assert (points["missed_turn_rate"] == 0).all()  # the noisy prompt's turn is found with and without
    vad = result.vad()
    onsets = {nr: sorted(g["onset_ms"].dropna()) for nr, g in vad.groupby("noise_reduction")}
    assert onsets["off"] != onsets["azure_deep_noise_suppression"]  # the VAD heard different audio
    from vlab.report import build_report
    from vlab.widgets import SweepPanel

    page = build_report(tmp_path).read_text()
    assert "data-chart='noise_tradeoff'" in page and "False starts on noise vs missed turns" in page
    panel = SweepPanel()
    panel.load(tmp_path)
    assert "noise_tradeoff" in panel.charts
    for cell in (tmp_path / "cells").iterdir():  # the emulator's ground truth: what it applied, per cell
        trace = [json.loads(line) for line in (cell / "trace.jsonl").read_text(encoding="utf-8").splitlines()]
        applied = [t["noise_reduction"] for t in trace if t["kind"] == "audio_processing"]
        assert applied == (["azure_deep_noise_suppression"] if "nr=" in cell.name else [])


@pytest.mark.parametrize("speed", [4.0, math.inf])
async def test_measured_stages_equal_the_emulator_ground_truth_on_the_simulated_timeline(speed):
    # Exact on the simulated timeline, at any speed; the client-clock error is a benchmark figure
    # (benchmarks/bench_session.py, "measurement error").
    prompts = {p.id: p for p in load_prompt_set()}
    for pid in ("two_turns", "short_question", "pause_1200"):
        p = prompts[pid]
        settings = SessionSettings(turn_detection=ServerVad(silence_duration_ms=500))
        async with Emulator(speed=speed, latency="typical", trace=True, seed=len(pid)) as emu:
            async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
                await feed_prompt(s, p.pcm(24000) + silence(1200, 24000), speed=speed, timeout_s=30)
                events = s.frame()
            sent = {e["event_id"]: e["sim_ms"] for e in emu.trace.of_kind("send")}
            latency = {e["response_id"]: e for e in emu.trace.of_kind("latency")}
        server = events[events["direction"] == "server"]
        assert (server["event_id"].map(sent) == server["sim_ms"]).all()  # the log holds the emulator's times

        def first(kind, rid, server=server):
            return float(server[(server["type"] == kind) & (server["response_id"] == rid)]["sim_ms"].min())

        turns = turn_latency(events, end_of_turn_ms=p.end_of_turn_ms)
        assert (turns["timeline"] == "simulated").all()
        done = turns[turns["status"] == "completed"]
        assert len(done) == p.expected_turns
        for row in done.itertuples():
            created = first("response.created", row.response_id)
            drawn = latency[row.response_id]
            assert row.turn_commit_ms == pytest.approx(drawn["commit_ms"] + drawn["network_ms"], abs=1e-3)
            exact = {"abs": 1e-6}  # ms, stored to the µs
            assert row.ttfb_audio_ms == pytest.approx(
                first("response.audio.delta", row.response_id) - created, **exact
            )
            assert row.ttft_ms == pytest.approx(
                first("response.audio_transcript.delta", row.response_id) - created, **exact
            )
            assert row.server_hangover_ms == pytest.approx(row.audio_end_ms - row.a_eos_ms, **exact)
            stops = server[
                (server["type"] == "input_audio_buffer.speech_stopped") & (server["item_id"] == row.item_id)
            ]
            stopped = float(stops["sim_ms"].iloc[0])
            assert row.uplink_ms == pytest.approx(stopped - row.audio_end_ms, **exact)
            assert row.voice_to_voice_ms == pytest.approx(
                row.server_hangover_ms
                + row.uplink_ms
                + row.turn_commit_ms
                + row.ttfb_audio_ms
                + row.playout_ms
            )


async def test_repeats_on_the_embedded_emulator_are_warned_of_since_each_repeat_is_decided_alike(tmp_path):
    from vlab.errors import VlabWarning
    from vlab.sweep import sweep_warnings

    cfg = load_config(
        {
            "target": {"speed": "max"},
            "prompts": {"include": ["pause_600"]},
            "grid": {"silence_duration_ms": [300]},
            "run": {"repeats": 2},
        }
    )
    with pytest.warns(VlabWarning, match=r"repeats = 2 on vlab's embedded emulator: it decides and answers"):
        result = await run_sweep_async(cfg, tmp_path, progress=False, session_options=OPTS)
    scores = vlab.load_sweep(tmp_path, "scores")
    assert len(scores) == 2  # the reason: the two repeats are the same run twice
    assert scores.drop(columns=["cell", "run"]).nunique().max() == 1
    turns = result.turns()
    assert turns.groupby("turn")["voice_to_voice_ms"].nunique().max() == 1
    elsewhere = {**OPTS, "endpoint": "https://example.services.ai.azure.com", "api_key": "k"}
    at_real_time = dataclasses.replace(cfg, speed=1.0)  # as a sweep against a service sends its audio
    assert sweep_warnings(at_real_time, elsewhere) == []  # against a service, repeats do vary
    once = load_config({"prompts": {"include": ["pause_600"]}, "grid": {"silence_duration_ms": [300]}})
    assert sweep_warnings(once, OPTS) == []


def _spans_of_each_cell(out, result) -> list[tuple[list, list, list]]:
    """Per cell: its detections' (onset_earliest_ms, onset_ms) and (offset_earliest_ms, offset_ms), each
    checked to hold the emulator VAD's own onset and offset (its trace), and its DER to be the one those
    give on the same frames (the spans left out); and the VAD's own offsets."""
    prompts = {p.id: p for p in load_prompt_set()}
    vad, scores = result.vad(), pd.read_parquet(out / "scores.parquet").set_index("cell")
    spans = []
    for cell in result.cells:
        trace = [json.loads(line) for line in (out / "cells" / cell.cell / "trace.jsonl").open()]
        decided = [t for t in trace if t.get("kind") == "vad"]  # the emulator's VAD: its own speech
        own_on = [t["speech_ms"] for t in decided if t["event"] == "speech_started"]
        own_off = [t["speech_ms"] for t in decided if t["event"] == "speech_stopped"]
        det = vad[vad["cell"] == cell.cell].sort_values("audio_start_ms")
        onsets = list(zip(det["onset_earliest_ms"], det["onset_ms"], strict=True))
        offsets = list(zip(det["offset_earliest_ms"], det["offset_ms"], strict=True))
        assert len(own_on) == len(own_off) == len(det) >= 1, cell.cell
        for own, (low, high) in [*zip(own_on, onsets, strict=True), *zip(own_off, offsets, strict=True)]:
            assert low - 1 <= own <= high + 1, (cell.cell, own, low, high)  # ms rounded on the wire
        prompt = prompts[cell.cell.split("__")[1]]
        unknown = [(low, high) for low, high in onsets + offsets if low < high]
        own = detection_error_rate(
            prompt.speech_segments,
            list(zip(own_on, own_off, strict=True)),
            prompt.duration_ms,
            unscored=unknown,
        )
        assert scores.loc[cell.cell, "der"] == pytest.approx(own["der"], abs=0.005, nan_ok=True), cell.cell
        spans.append((onsets, offsets, own_off))
    return spans


async def test_where_the_padding_was_clamped_the_speech_start_is_a_span_that_holds_the_vad_s_own(tmp_path):
    # At a 500 ms padding the server's audio_start_ms is clamped at 0 (the prompts' speech begins about
    # 300 ms in) and at the previous turn's audio_end_ms (digits resumes within 500 ms of each cut): read
    # as audio_start_ms + padding, those onsets were up to 500 ms late, and the DER grew with the padding.
    cfg = load_config(
        {
            "target": {"speed": "max", "latency": "instant"},
            "prompts": {"include": ["digits", "pause_600", "short_question"]},
            "grid": {"prefix_padding_ms": [500], "silence_duration_ms": [300]},
            "run": {"baseline": False},
        }
    )
    result = await run_sweep_async(cfg, tmp_path, progress=False, session_options=OPTS)
    assert {c.status for c in result.cells} == {"ok"}
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert (scores["onset_error_ms"] == 0).all()  # every labelled start lies in its span
    after_a_turn = 0
    for onsets, offsets, _own_offsets in _spans_of_each_cell(tmp_path, result):
        assert onsets[0][0] == 0 < onsets[0][1]  # the first turn: the padding reached back past the start
        after_a_turn += sum(0 < low < high for low, high in onsets)
        assert all(low == high for low, high in offsets)  # no wait for more speech: exact
    assert after_a_turn >= 2  # digits' turns resumed within the padding of each cut


async def test_where_turn_detection_may_wait_for_more_speech_the_speech_end_is_a_span_that_holds_the_vad_s_own(
    tmp_path,
):
    # End-of-utterance detection with a 1200 ms wait from the end of the speech: a turn's audio_end_ms comes
    # after however much of the wait ran, so its speech ended up to 900 ms before audio_end_ms - silence (300).
    # Read as exact, the wait counted as false alarm.
    cfg = load_config(
        {
            "target": {"speed": "max", "latency": "instant"},
            "prompts": {"include": ["pause_600", "short_question", "filler_trailing"]},
            "grid": {
                "silence_duration_ms": [300],
                "eou_model": ["semantic_detection_v1"],
                "eou_timeout_ms": [1200],
            },
            "run": {"baseline": False},
        }
    )
    result = await run_sweep_async(cfg, tmp_path, progress=False, session_options=OPTS)
    assert {c.status for c in result.cells} == {"ok"}
    waited = []
    for _onsets, offsets, own_offsets in _spans_of_each_cell(tmp_path, result):
        for (low, high), own in zip(offsets, own_offsets, strict=True):
            assert 0 < high - low <= 1200 - 300
            waited.append(high - own)
    assert max(waited) == pytest.approx(900, abs=1)  # a turn the detection held to the end of its wait


def test_a_cells_connect_delay_is_the_one_its_log_gives(tmp_path):
    # it was timed from a stamp the cell took on another clock, before the session (and the embedded
    # emulator) were even made: 27.4 ms in session.parquet where the log's own vlab.connect gave 22.6
    from vlab.log import load_log
    from vlab.metrics import session_latency

    cfg = config(prompts={"include": ["short_question"]}, grid={"silence_duration_ms": [300]})
    result = run_sweep(cfg, tmp_path, progress=False, session_options=OPTS)
    [cell] = result.cells
    table = pd.read_parquet(tmp_path / "session.parquet")
    from_log = session_latency(load_log(tmp_path / "cells" / cell.cell)).set_index("kind")
    [swept] = table.loc[table["kind"] == "connect", "latency_ms"]
    assert swept == from_log.loc["connect", "latency_ms"] and swept > 0
