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
