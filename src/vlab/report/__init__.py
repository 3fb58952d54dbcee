"""Reports of a sweep folder (``vlab report``) and comparisons of two sweeps (``vlab compare``).

- :mod:`vlab.report.build`: ``report.html`` and its charts for one sweep folder;
- :mod:`vlab.report.compare`: what got better or worse from sweep A to sweep B, with bootstrap intervals;
- :mod:`vlab.report.sweep_folder`: what both read from a sweep folder.
"""

from __future__ import annotations

from vlab.report.build import CHARTS, SCORE_COLUMNS, build_report, score_columns, tool_call_summary
from vlab.report.compare import COMPARED_POINTS, compare_chart, compare_sweeps, ran_otherwise, verdict_summary
from vlab.report.sweep_folder import grid_settings, latency_measures

__all__ = [
    "CHARTS",
    "COMPARED_POINTS",
    "SCORE_COLUMNS",
    "build_report",
    "compare_chart",
    "compare_sweeps",
    "grid_settings",
    "latency_measures",
    "ran_otherwise",
    "score_columns",
    "tool_call_summary",
    "verdict_summary",
]
