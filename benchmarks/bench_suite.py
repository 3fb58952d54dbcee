"""`make test`'s wall time: its two pytest runs, as the Makefile runs them, against their CPU floor.

The floor is the CPU the runs used (their child processes included) divided by the machine's cores: what
the wall time would be if every core were busy all along. A wall time near the floor means the suite is
CPU-bound and only less work makes it faster; far above it, the suite waits (sleeps, timeouts, one slow
test at the end of a worker's queue).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time

from benchmarks._common import ROOT, Figure, Size

GOAL_S = 150.0


def _parallel_args() -> list[str]:
    """The Makefile's first pytest run: its ``PARALLEL`` options and ``-m "not realtime"``."""
    found = re.search(r"^PARALLEL \?= (.*)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    if found is None:
        raise RuntimeError(
            "the Makefile sets no PARALLEL: bench_suite cannot run make test's first pytest run"
        )
    return [*found.group(1).split(), "-m", "not realtime"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pytest(args: list[str]) -> tuple[float, float, str]:
    """Wall time, CPU time (children included) and the summary line of one pytest run."""
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - cpu0
    if done.returncode not in (0, 5):  # 5: nothing selected
        raise RuntimeError(f"pytest {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    found = re.findall(r"^=*\s*(\d+ (?:passed|skipped|deselected).*?) in [\d.]+s", done.stdout, re.M)
    return wall, cpu, found[-1] if found else done.stdout.strip().splitlines()[-1]


def bench_make_test(size: Size) -> list[Figure]:
    """The whole suite at full size; a subset otherwise (the smoke test must not run the suite in the suite)."""
    whole = size.scale >= 1
    if whole:
        runs = {"parallel part": _parallel_args(), "realtime part": ["-m", "realtime"]}
    elif not size.tiny:
        runs = {"tests/unit, parallel": [*_parallel_args(), "tests/unit"]}
    else:
        runs = {"one file": ["tests/unit/test_package.py"]}
    cores = os.cpu_count() or 1
    measured = {name: _pytest(args) for name, args in runs.items()}
    wall = sum(m[0] for m in measured.values())
    cpu = sum(m[1] for m in measured.values())
    floor = cpu / cores
    scope = (
        "make test's two runs" if whole else f"subset only: {', '.join(runs)}; the figure needs the full size"
    )
    return [
        Figure(
            f"`make test` wall time on {cores} cores",
            f"{wall:.0f} s of pytest ({scope}); CPU {cpu:.0f} s, so the floor on {cores} cores is {floor:.0f} s "
            f"and the wall time is {wall / max(floor, 1e-9):.2f}× it",
            f"≤ {GOAL_S:.0f} s with the same coverage",
            wall / GOAL_S if whole else None,
            baseline=f"the same runs' CPU time over {cores} cores: {floor:.0f} s",
            notes=[f"{name}: {m[0]:.0f} s wall, {m[1]:.0f} s CPU ({m[2]})" for name, m in measured.items()],
        )
    ]
