"""Every benchmark runs once at tiny size, so `make bench` cannot rot (figures are not checked here)."""

from __future__ import annotations

import math

import pytest
from benchmarks.__main__ import BENCHMARKS
from benchmarks._common import TINY


@pytest.mark.parametrize(
    "bench", [b for group in BENCHMARKS.values() for b in group], ids=lambda b: b.__name__
)
def test_benchmark_runs_at_tiny_size(bench):
    figures = bench(TINY)
    assert figures
    for fig in figures:
        assert fig.name and fig.goal
        assert fig.ratio is None or not math.isnan(fig.ratio), fig.line()


def test_soak_runs_at_tiny_size():
    """The soak (100 sessions × 10 min in `make bench`-style use) runs end to end with 2 sessions for 6 s."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--sessions", "2", "--minutes", "0.1", "--session-s", "3",
         "--sample-s", "0.5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "soak: PASS" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "missing from the client logs 0" in out.stdout and "failed 0" in out.stdout
