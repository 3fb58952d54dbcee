"""kill -9 of a running `vlab sweep`: only the last events are lost, the torn line loads, and rerunning
resumes without redoing finished cells or duplicating rows."""

from __future__ import annotations

import pandas as pd
from benchmarks.bench_crash import CONFIG, kill, lost_events, start_sweep, wait_for_a_running_cell

from tests._portable import KILLED_EXIT_CODE
from vlab.log import read_jsonl


def test_kill_9_loses_only_the_tail_and_the_rerun_resumes(tmp_path):
    # How much a kill loses on the wall clock (at most the last second) is a benchmark figure
    # (benchmarks/bench_crash.py); here: what is lost is only the end, and the rest loads and resumes.
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    proc = start_sweep(config, out)
    running = wait_for_a_running_cell(out, proc)
    kill(proc)
    assert proc.returncode == KILLED_EXIT_CODE

    # What the emulator (in the killed process) sent, from its trace (written through on every event),
    # against what reached the cell's events.jsonl: everything but a tail of the most recent events.
    sent, lost = lost_events(running)
    logged = read_jsonl(running / "events.jsonl")  # must load whatever the kill left at the end
    assert len(lost) < len(sent)
    assert [e["event_id"] for e in sent[len(sent) - len(lost) :]] == [e["event_id"] for e in lost]
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

    rerun = start_sweep(config, out)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert f"({3 - len(finished)} run, {len(finished)} skipped, 0 failed" in stdout
    for name, mtime in finished.items():  # finished cells were not redone
        assert (out / "cells" / name / "cell.json").stat().st_mtime_ns == mtime
        assert (out / "cells" / name / "events.jsonl").read_bytes() == logs_before[name]
    redone = read_jsonl(running / "events.jsonl")  # the killed cell was started afresh, not appended to
    assert redone["seq"].tolist() == list(range(len(redone)))
    assert (redone["type"] == "session.created").sum() == 1

    again = start_sweep(config, out)
    stdout, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "(0 run, 3 skipped, 0 failed" in stdout
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == 3 and scores["cell"].is_unique
    turns = pd.read_parquet(out / "turns.parquet")
    assert not turns.duplicated(["cell", "response_id"]).any()
    assert set(turns["cell"]) == set(scores["cell"])
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries
