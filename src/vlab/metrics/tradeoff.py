"""Choosing a setting from a sweep's operating points (:func:`vlab.metrics.operating_points`).

The Pareto frontier of dead air against false cut-offs (:func:`pareto_front`), and the best setting within
a budget of either (:func:`cutoff_at_latency`, :func:`latency_at_cutoff`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vlab.errors import check_numbers
from vlab.metrics.events import require_columns
from vlab.metrics.summary import same_within

__all__ = ["cutoff_at_latency", "latency_at_cutoff", "pareto_front", "played_noise", "setting_points"]


def pareto_front(points: pd.DataFrame, x: str = "dead_air_ms", y: str = "false_cutoff_rate") -> pd.Series:
    """True for points no other point beats: better on ``x`` or ``y``, no worse on the other (lower is better).

    Better and worse are by more than :func:`vlab.metrics.same_within` of each: two settings 0.4 ms apart
    in dead air with the same cut-off rate are both on the frontier, as ``vlab compare`` calls them
    ``same``. NaN is never on it.
    """
    require_columns(points, [x, y], _POINTS)
    xs = points[x].to_numpy(float)
    ys = points[y].to_numpy(float)
    x_same, y_same = same_within(x), same_within(y)
    on = np.zeros(len(points), dtype=bool)
    for i in range(len(points)):
        if not (math.isfinite(xs[i]) and math.isfinite(ys[i])):
            continue
        no_worse = (xs < xs[i] + x_same) & (ys < ys[i] + y_same)
        dominated = no_worse & ((xs <= xs[i] - x_same) | (ys <= ys[i] - y_same))
        on[i] = not dominated.any()
    return pd.Series(on, index=points.index, name="pareto")


def cutoff_at_latency(
    points: pd.DataFrame, budgets_ms: Sequence[float] = (300.0, 600.0)
) -> dict[float, float]:
    """Lowest false cut-off rate among settings whose dead air is within each budget (NaN if none).

    A ``reference`` point (push-to-talk) is not a setting to choose, so it is left out.

    Raises:
        ConfigError: A budget is not a number of ms ≥ 0, or ``budgets_ms`` is not a list of them.
    """
    budgets = _limits("budgets_ms", budgets_ms, "[300, 600]", "each of budgets_ms (dead air, in ms)")
    return _lowest_within(points, "dead_air_ms", budgets, "false_cutoff_rate")


def latency_at_cutoff(points: pd.DataFrame, rates: Sequence[float] = (0.05, 0.10)) -> dict[float, float]:
    """Lowest dead air among settings whose false cut-off rate is at most each rate (NaN if none).

    A ``reference`` point (push-to-talk) is not a setting to choose, so it is left out.

    Raises:
        ConfigError: A rate is not a fraction from 0 to 1 (20 for 20 %, say), or ``rates`` is not a list.
    """
    fractions = _limits("rates", rates, "[0.05, 0.1]", "each of rates (a fraction: 0.05 is 5 %)", 1.0)
    return _lowest_within(points, "false_cutoff_rate", fractions, "dead_air_ms")


def _limits(name: str, values: object, example: str, each: str, maximum: float = math.inf) -> list[float]:
    """``values`` as a list of numbers from 0 to ``maximum``; ``each`` names one in the message."""
    return check_numbers(name, values, f"a list of numbers, e.g. {example}", each=each, maximum=maximum)


def _lowest_within(
    points: pd.DataFrame, limited: str, limits: Sequence[float], lowest: str
) -> dict[float, float]:
    """For each limit, the lowest ``lowest`` among the settings whose ``limited`` is within it (NaN if none)."""
    points = setting_points(points)
    out = {}
    for limit in limits:
        ok = points[points[limited] <= limit][lowest].dropna()
        out[float(limit)] = float(ok.min()) if len(ok) else math.nan
    return out


_POINTS = "operating points, from vlab.metrics.operating_points"


def played_noise(points: pd.DataFrame) -> bool:
    """Whether the sweep of these points played noise-only prompts: a setting has false starts per minute."""
    return "false_starts_per_min" in points and bool(points["false_starts_per_min"].notna().any())


def setting_points(points: pd.DataFrame) -> pd.DataFrame:
    """The points of the settings one chooses between: all but a ``reference`` (push-to-talk) one.

    Raises:
        ConfigError: ``points`` lacks the dead air or the false cut-off rate.
    """
    require_columns(points, ["dead_air_ms", "false_cutoff_rate"], _POINTS)
    return points[~points["reference"].astype(bool)] if "reference" in points else points
