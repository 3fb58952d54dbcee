"""kill -9 of a running sweep: how old is the oldest server event that never reached ``events.jsonl``?

The event log is written as the session goes and flushed at least twice a second, so a crash loses at
most the last second. This measures it on the wall clock, against the emulator's own trace (written
through on every event, in the same process, on the same monotonic clock).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import ROOT, Figure, Size

GOAL_MS = 1000.0
CONFIG = f"""
[target]
speed = 2
latency = "instant"
[prompts]
path = "{(ROOT / "data" / "prompts").as_posix()}"
include = ["short_question", "pause_600", "quiet_speaker"]
[grid]
threshold = [0.5]
silence_duration_ms = [500]
[run]
concurrency = 1
timeout_s = 30
"""


def start_sweep(config: Path, out: Path) -> subprocess.Popen[str]:
    """``vlab sweep`` in a child process (so it can be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "vlab", "sweep", str(config), "--out", str(out), "--no-progress"],
        cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_a_running_cell(out: Path, proc: subprocess.Popen[str], deadline_s: float = 120.0) -> Path:
    """A cell that has logged events for more than 1.2 s, after at least one cell finished."""
    deadline = time.monotonic() + deadline_s
    first_seen: dict[Path, float] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sweep ended before it could be killed: {proc.communicate()}")
        finished = [
            p for p in out.glob("cells/*/cell.json") if json.loads(p.read_text()).get("status") == "ok"
        ]
        for log in out.glob("cells/*/events.jsonl"):
            if (log.parent / "cell.json").exists() or log.stat().st_size == 0:
                continue
            first_seen.setdefault(log.parent, time.monotonic())
            if finished and time.monotonic() - first_seen[log.parent] > 1.2:
                return log.parent
        time.sleep(0.02)  # polling another process's files: there is no event to wait on
    raise RuntimeError("no cell was running long enough to be killed")


def kill(proc: subprocess.Popen[str]) -> int:
    """kill -9 the sweep (TerminateProcess on Windows); returns the monotonic ns of the kill (the child's trace clock)."""
    kill_ns = time.perf_counter_ns()
    proc.kill()
    proc.communicate(timeout=10)
    return kill_ns


def lost_events(cell: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(everything the emulator sent to the cell, what of it never reached its ``events.jsonl``)."""
    from vlab.log import read_jsonl

    lines = (cell / "trace.jsonl").read_text().splitlines()
    sent = [e for e in (json.loads(line) for line in lines if line.endswith("}")) if e["kind"] == "send"]
    logged = read_jsonl(cell / "events.jsonl")
    logged_ids = set(logged.loc[logged["direction"] == "server", "event_id"])
    return sent, [e for e in sent if e["event_id"] not in logged_ids]


def bench_crash_loss(size: Size) -> list[Figure]:
    rounds = 1 if size.tiny else 3
    worst_ms, lost_counts = 0.0, []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as d:
            config = Path(d) / "sweep.toml"
            config.write_text(CONFIG)
            proc = start_sweep(config, Path(d) / "out")
            running = wait_for_a_running_cell(Path(d) / "out", proc)
            kill_ns = kill(proc)
            _, lost = lost_events(running)
            lost_counts.append(len(lost))
            if lost:
                worst_ms = max(worst_ms, (kill_ns - min(int(str(e["t_ns"])) for e in lost)) / 1e6)
    return [
        Figure(
            "events lost by kill -9 of a sweep (oldest lost event, before the kill)",
            f"{worst_ms:.0f} ms at worst over {rounds} kills ({sum(lost_counts)} events lost in all)",
            f"≤ {GOAL_MS:.0f} ms",
            worst_ms / GOAL_MS,
        )
    ]
