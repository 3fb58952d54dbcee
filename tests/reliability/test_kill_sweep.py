"""kill -9 of a running `vlab sweep`: at most the last second of events lost, the torn line loads,
and rerunning resumes without redoing finished cells or duplicating rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from vlab.log import read_jsonl

REPO = Path(__file__).parents[2]
CONFIG = f"""
[target]
speed = 2
latency = "instant"
[prompts]
path = "{REPO / "data" / "prompts"}"
include = ["short_question", "pause_600", "quiet_speaker"]
[grid]
threshold = [0.5]
silence_duration_ms = [500]
[run]
concurrency = 1
timeout_s = 30
"""


def _sweep(config: Path, out: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vlab", "sweep", str(config), "--out", str(out), "--no-progress"],
        cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )  # fmt: skip


def _wait_for_a_running_cell(out: Path, proc: subprocess.Popen, deadline_s: float = 60.0) -> Path:
    """A cell that has logged events for more than 1.2 s, after at least one cell finished."""
    deadline = time.monotonic() + deadline_s
    first_seen: dict[Path, float] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.communicate()}"
        finished = [
            p for p in out.glob("cells/*/cell.json") if json.loads(p.read_text()).get("status") == "ok"
        ]
        for log in out.glob("cells/*/events.jsonl"):
            if (log.parent / "cell.json").exists() or log.stat().st_size == 0:
                continue
            first_seen.setdefault(log.parent, time.monotonic())
            if finished and time.monotonic() - first_seen[log.parent] > 1.2:
                return log.parent
        time.sleep(0.02)
    raise AssertionError("no cell was running long enough to be killed")


def test_kill_9_loses_at_most_a_second_and_the_rerun_resumes(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    proc = _sweep(config, out)
    running = _wait_for_a_running_cell(out, proc)
    kill_ns = time.perf_counter_ns()  # CLOCK_MONOTONIC, shared with the child's trace stamps
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    # What the emulator (in the killed process) sent, from its trace (written through on every event),
    # against what reached the cell's events.jsonl.
    sent = [
        json.loads(line) for line in (running / "trace.jsonl").read_text().splitlines() if line.endswith("}")
    ]
    sent = [e for e in sent if e["kind"] == "send"]
    logged = read_jsonl(running / "events.jsonl")  # must load whatever the kill left at the end
    logged_ids = set(logged.loc[logged["direction"] == "server", "event_id"])
    lost = [e for e in sent if e["event_id"] not in logged_ids]
    old = [e for e in sent if e["t_ns"] < kill_ns - 1_000_000_000]
    assert old, "the cell had not been running for a second"
    assert all(e["t_ns"] >= kill_ns - 1_000_000_000 for e in lost), (len(lost), len(sent))
    assert logged["seq"].tolist() == list(range(len(logged)))  # a prefix of the session, nothing torn inside

    # a torn last line (the kill landing mid-write) loads too: the fragment is skipped
    torn = tmp_path / "torn.jsonl"
    text = (running / "events.jsonl").read_bytes()
    torn.write_bytes(text + text.splitlines(keepends=True)[-1][:37])
    assert len(read_jsonl(torn)) == len(logged)

    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")}
    logs_before = {name: (out / "cells" / name / "events.jsonl").read_bytes() for name in finished}
    started = {p.name for p in (out / "cells").iterdir() if p.is_dir()}
    assert running.name in started and running.name not in finished  # the killed cell left no marker
    assert set(finished) == started - {running.name}  # concurrency 1: every other started cell had finished

    rerun = _sweep(config, out)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert f"({3 - len(finished)} run, {len(finished)} skipped, 0 failed" in stdout
    for name, mtime in finished.items():  # finished cells were not redone
        assert (out / "cells" / name / "cell.json").stat().st_mtime_ns == mtime
        assert (out / "cells" / name / "events.jsonl").read_bytes() == logs_before[name]
    redone = read_jsonl(running / "events.jsonl")  # the killed cell was started afresh, not appended to
    assert redone["seq"].tolist() == list(range(len(redone)))
    assert (redone["type"] == "session.created").sum() == 1

    again = _sweep(config, out)
    stdout, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "(0 run, 3 skipped, 0 failed" in stdout
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == 3 and scores["cell"].is_unique
    turns = pd.read_parquet(out / "turns.parquet")
    assert not turns.duplicated(["cell", "response_id"]).any()
    assert set(turns["cell"]) == set(scores["cell"])
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries
