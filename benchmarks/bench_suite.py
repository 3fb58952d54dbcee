"""`make test`'s wall time: its pytest runs, as the Makefile runs them (scripts/run_tests.py), against their CPU floor.

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
    """The options the Makefile gives the parallel part (``PARALLEL``)."""
    found = re.search(r"^PARALLEL \?= (.*)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    if found is None:
        raise RuntimeError(
            "the Makefile sets no PARALLEL (`PARALLEL ?= -n auto`): bench_suite cannot run make test's parallel part"
        )
    return found.group(1).split()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str]) -> tuple[float, float, list[str]]:
    """Wall time, CPU time (children included) and the summary lines of one command's pytest runs."""
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - cpu0
    if done.returncode not in (0, 5):  # 5: nothing selected
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    found = re.findall(r"^=*\s*(\d+ (?:passed|skipped|deselected).*? in [\d.]+s)", done.stdout, re.M)
    found += re.findall(r"^parallel part: exit status .*$", done.stdout, re.M)  # scripts/run_tests.py's
    return wall, cpu, found or done.stdout.strip().splitlines()[-1:]


def bench_make_test(size: Size) -> list[Figure]:
    """The whole suite at full size; a subset otherwise (the smoke test must not run the suite in the suite)."""
    whole = size.scale >= 1
    pytest = [sys.executable, "-m", "pytest", "-q"]
    if whole:  # as make test runs them: the browser tests beside the parallel part, the sound card after
        name, command = "make test's runs", [sys.executable, "scripts/run_tests.py", *_parallel_args()]
    elif not size.tiny:
        name, command = "subset only: tests/unit, parallel", [*pytest, *_parallel_args(), "tests/unit"]
    else:
        name, command = "subset only: one file", [*pytest, "tests/unit/test_package.py"]
    cores = os.cpu_count() or 1
    wall, cpu, summaries = _run(command)
    floor = cpu / cores
    scope = name if whole else f"{name}; the figure needs the full size"
    return [
        Figure(
            f"`make test` wall time on {cores} cores",
            f"{wall:.0f} s of pytest ({scope}); CPU {cpu:.0f} s, so the floor on {cores} cores is {floor:.0f} s "
            f"and the wall time is {wall / max(floor, 1e-9):.2f}× it",
            f"≤ {GOAL_S:.0f} s with the same coverage",
            wall / GOAL_S if whole else None,
            baseline=f"the same runs' CPU time over {cores} cores: {floor:.0f} s",
            notes=[f"pytest: {line}" for line in summaries],
        )
    ]
