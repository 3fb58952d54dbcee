"""Sweeps on a dask.distributed LocalCluster: the same turns as in-process, resumable after a worker dies."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from unittest import mock

import pandas as pd
import pytest

import vlab
from tests._portable import HARD_KILL
from vlab import sweep
from vlab.errors import ConfigError
from vlab.sweep import load_config, run_sweep, run_sweep_async
from vlab.sweep import tables as sweep_tables

distributed = pytest.importorskip("distributed", reason="needs dask.distributed: pip install 'vlab[dask]'")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.integration
OPTS = {"dotenv_path": False}
CFG = {
    "target": {"speed": "max"},
    "prompts": {"include": ["pause_600", "short_question"]},
    "grid": {"silence_duration_ms": [300, 900]},
    "run": {"concurrency": 2, "timeout_s": 60},
}
# what the emulator decides on the audio timeline (client-clock stages differ run to run)
STABLE = ["setting", "prompt", "turn", "trigger", "audio_start_ms", "audio_end_ms", "false_cutoff"]


def _turns(out) -> pd.DataFrame:
    return _turns_of(pd.read_parquet(out / "turns.parquet"))


def _turns_of(turns: pd.DataFrame) -> pd.DataFrame:
    return (
        turns[[c for c in STABLE if c in turns]]
        .sort_values(["setting", "prompt", "audio_end_ms"])
        .reset_index(drop=True)
    )


def test_a_two_worker_local_cluster_gives_the_same_turns_as_in_process(tmp_path, capsys):
    here = run_sweep(CFG, tmp_path / "here", progress=False, session_options=OPTS)
    dask_cfg = {**CFG, "run": {**CFG["run"], "executor": "dask", "workers": 2, "max_sessions": 3}}
    with mock.patch("vlab.sweep.tables.analyse_cell", wraps=sweep_tables.analyse_cell) as here_analysed:
        there = run_sweep(dask_cfg, tmp_path / "dask", progress=False, session_options=OPTS)
    assert [c.status for c in there.cells] == ["ok"] * 4
    assert here_analysed.call_count == 0  # the workers analysed their cells
    tables = {t: pd.read_parquet(there.out / f"{t}.parquet") for t in ("turns", "vad", "scores", "session")}
    sweep.aggregate(there.out, load_config(dask_cfg))  # the same cells analysed here instead
    for table, frame in tables.items():  # every column, client-clock stages too: the same cell files
        pd.testing.assert_frame_equal(pd.read_parquet(there.out / f"{table}.parquet"), frame)
    assert "dask dashboard http" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_turns(here.out), _turns(there.out))
    manifest = json.loads((there.out / "manifest.json").read_text())
    assert manifest["executor"] == "dask" and manifest["counts"]["ok"] == 4
    assert (there.out / "vad_cache" / "silero_v5.bin").stat().st_size > 0  # the workers shared the cache
    table = vlab.load_sweep(there.out)  # the partitioned dataset, one partition per setting, as one table
    assert sorted(p.name for p in (there.out / "dataset" / "turns").iterdir()) == [
        "setting_index=0",
        "setting_index=1",
    ]
    pd.testing.assert_frame_equal(_turns_of(table), _turns(there.out))


_STALLED_S = 90
"""How long a sweep of 4 cells may take on a dask cluster before its test says what the workers were doing
(once, on a loaded 2-core machine, one stood still until the test's 120 s ran out, and said nothing)."""


def _within(seconds: float, client, sweep):
    """Run ``sweep`` (a coroutine); if it is not done in ``seconds``, fail with the tasks the workers run."""

    async def bounded():
        task = asyncio.ensure_future(sweep)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:  # what the workers run, asked before the sweep is cancelled and its tasks released
            stacks = json.dumps(await asyncio.to_thread(client.call_stack), indent=1, default=str)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            pytest.fail(f"the sweep had not finished after {seconds} s; the workers were running: {stacks}")
        return task.result()

    return asyncio.run(bounded())


class _DiesWithTheFirstCell(distributed.WorkerPlugin):
    """Kills its worker as the sweep's first cell starts there: a worker dies with a cell running.

    The first worker to start a cell writes the cell's key to ``marker`` and dies; the others (and the
    worker started in its place) find the marker and live.
    """

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing" or not str(key).startswith("vlab-"):
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(key).encode())
        os.close(fd)
        os.kill(os.getpid(), HARD_KILL)


def test_a_killed_worker_loses_only_its_running_cells_and_the_sweep_resumes(tmp_path):
    marker = tmp_path / "killed"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        with distributed.Client(cluster) as client:
            client.register_plugin(_DiesWithTheFirstCell(str(marker)), name="dies-with-the-first-cell")
            cfg = {**CFG, "run": {**CFG["run"], "executor": "dask", "cluster": cluster.scheduler_address}}
            sweeping = run_sweep_async(cfg, tmp_path / "s", progress=False, session_options=OPTS)
            first = _within(_STALLED_S, client, sweeping)
    assert marker.read_text().startswith("vlab-")  # a worker died with that cell running
    assert [c.status for c in first.cells] == ["ok"] * 4  # it ran again elsewhere
    assert {json.loads(p.read_text())["status"] for p in (tmp_path / "s" / "cells").glob("*/cell.json")} == {
        "ok"
    }
    again = run_sweep(CFG, tmp_path / "s", progress=False, session_options=OPTS)
    assert [c.status for c in again.cells] == ["skipped"] * 4
    assert len(pd.read_parquet(tmp_path / "s" / "turns.parquet")) == len(_turns(tmp_path / "s"))


def test_a_relative_sweep_folder_is_written_where_the_sweep_runs_whatever_the_workers_working_folder(
    tmp_path, monkeypatch
):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    monkeypatch.chdir(there)  # a worker started in another working folder (another shell, another machine)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
    ) as cluster:
        monkeypatch.chdir(here)
        cfg = {**CFG, "run": {**CFG["run"], "executor": "dask", "cluster": cluster.scheduler_address}}
        result = run_sweep(cfg, "runs/x", progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["ok"] * 4
    assert len(list((here / "runs" / "x" / "cells").glob("*/cell.json"))) == 4
    assert not (there / "runs").exists()  # not under the worker's working folder
    manifest = json.loads((here / "runs" / "x" / "manifest.json").read_text())
    assert manifest["counts"] == {"ok": 4, "error": 0, "missing": 0}
    assert len(pd.read_parquet(here / "runs" / "x" / "scores.parquet")) == 4


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"executor": "spark"}, "executor must be 'asyncio' or 'dask'"),
        ({"cluster": "tcp://x:1"}, "with executor = 'dask'"),
        ({"executor": "dask", "workers": 0}, "workers must be an integer ≥ 1"),
        ({"max_sessions": 0}, "max_sessions must be an integer ≥ 1"),
    ],
)
def test_bad_executor_settings_fail_before_anything_runs(run, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**CFG, "run": run})


def test_a_cell_whose_workers_keep_dying_is_recorded_as_failed(tmp_path):
    from vlab.sweep.cells import lost_cell
    from vlab.sweep.dask_executor import run_on_dask

    got = []
    # the first death is the last (dask's default retries a cell on 3 new workers, each a few seconds of
    # start-up: on a loaded 2-core machine that took most of the test's 120 s)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        asyncio.run(
            run_on_dask(os._exit, [("dies", 1)], lambda arg, result: got.append((arg, result)), workers=1)
        )
    [(arg, error)] = got
    assert arg == 1 and isinstance(error, distributed.KilledWorker)
    [prompt] = load_config(CFG).prompts[:1]
    result = lost_cell(tmp_path, ("cell_a", 0, None, prompt, 0), error)
    assert result.status == "error" and "KilledWorker" in result.error
    meta = json.loads((tmp_path / "cells" / "cell_a" / "cell.json").read_text())
    assert meta["status"] == "error" and meta["prompt"] == prompt.id


def test_the_dask_example_config_is_valid():
    cfg = load_config("examples/dask_sweep.toml")
    assert (cfg.executor, cfg.workers, cfg.max_sessions, len(cfg.settings)) == ("dask", 2, 8, 9)


class _ClosingCluster:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def close(self) -> None:
        raise self.error


async def test_closing_a_cluster_while_a_nanny_restarts_a_dead_worker_is_not_the_sweeps_failure():
    from vlab.sweep.dask_executor import _close_local

    await _close_local(_ClosingCluster(AssertionError("can only join a started process")))
    with pytest.raises(AssertionError, match="something else"):
        await _close_local(_ClosingCluster(AssertionError("something else")))


async def test_max_sessions_caps_the_sessions_open_at_once_across_the_cluster(tmp_path):
    from vlab.testing import fast_emulator

    # 2 workers × 2 threads could run 4 cells at once; the cluster-wide semaphore lets 2 hold a session,
    # which is the emulator's quota: a single 429 (HTTP) would fail its cell (no retries)
    cfg = {
        "target": {"speed": "max", "latency": "instant"},
        "prompts": {"include": ["short_question"]},
        "grid": {"threshold": [0.3, 0.5, 0.7, 0.9]},
        "run": {
            "executor": "dask",
            "workers": 2,
            "concurrency": 2,
            "max_sessions": 2,
            "throttle_retries": 0,
            "timeout_s": 60,
        },
    }
    async with fast_emulator(max_sessions=2) as emu:
        options = {"endpoint": emu.endpoint, "api_key": emu.api_key, "dotenv_path": False}
        result = await run_sweep_async(cfg, tmp_path / "dask", progress=False, session_options=options)
        # the most sessions the emulator ever had open at once: never above the cap (the in-process test
        # checks the cap is reached; across two Dask workers whether two cells overlap is up to scheduling)
        assert emu.peak_sessions <= 2, emu.peak_sessions
    assert [c.status for c in result.cells] == ["ok"] * 4, [c.error for c in result.cells]
    assert all(c.throttled == 0 for c in result.cells)


def test_the_sweep_s_local_cluster_runs_its_workers_without_the_statistical_profiler():
    # the profiler keeps ~17 minutes of stack samples: a worker grew by ~0.17 MB per cell with it
    from vlab.sweep.dask_executor import run_on_dask

    got = []
    setting = functools.partial(dask.config.get, "distributed.worker.profile.enabled")
    asyncio.run(run_on_dask(setting, [("profiler", True)], lambda _, result: got.append(result), workers=1))
    assert got == [False]
    assert dask.config.get("distributed.worker.profile.enabled") is True  # this process's config is untouched
