"""Summaries of per-turn latency with bootstrap confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from vlab.errors import ConfigError, check_count, check_number
from vlab.metrics.events import TURNS_FRAME, require_columns
from vlab.metrics.latency import LATENCY_STAGES

RESAMPLES = 1000
"""How many resamples every bootstrap interval vlab prints draws: the report, ``vlab compare``, the panels."""


def bootstrap_ci(
    values: Iterable[float], q: float, *, n_boot: int = RESAMPLES, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Quantile ``q`` (0-1) of the finite values with a percentile-bootstrap interval.

    Returns:
        ``(estimate, low, high)``; all NaN with no data, the interval NaN with one value.

    Raises:
        ConfigError: ``q`` or ``confidence`` is not from 0 to 1, or ``n_boot`` is not ≥ 1.
    """
    _check_bootstrap(n_boot, confidence)
    check_number("q", q, maximum=1.0)
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    est = float(np.quantile(x, q))
    if x.size == 1:
        return (est, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    samples = rng.choice(x, size=(n_boot, x.size), replace=True)
    boots = np.quantile(samples, q, axis=1)
    alpha = (1 - confidence) / 2
    return (est, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha)))


def bootstrap_ratio(
    numerators: ArrayLike,
    denominators: ArrayLike,
    *,
    n_boot: int = RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The ratio of sums ``Σ numerators / Σ denominators`` with a percentile-bootstrap interval over the pairs.

    A mean is the ratio with denominators of 1; tokens per expected turn, of tokens and expected turns
    per run. Pairs are resampled whole, so runs of many turns weigh as they do in the estimate.

    Returns:
        ``(estimate, low, high)``; all NaN when a value is not finite or the denominators sum to 0 (an
        unknown count makes the ratio unknown), the interval NaN with one pair.

    Raises:
        ConfigError: The numerators and denominators differ in number, ``confidence`` is not from 0 to 1,
            or ``n_boot`` is not ≥ 1.
    """
    _check_bootstrap(n_boot, confidence)
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if num.shape != den.shape:
        raise ConfigError(
            f"bootstrap_ratio takes a denominator for each numerator, got {num.size} numerators and "
            f"{den.size} denominators"
        )
    if num.size == 0 or not (np.isfinite(num).all() and np.isfinite(den).all()) or not den.sum() > 0:
        return (math.nan, math.nan, math.nan)
    est = float(num.sum() / den.sum())
    if num.size == 1:
        return (est, math.nan, math.nan)
    picks = np.random.default_rng(seed).integers(0, num.size, size=(n_boot, num.size))
    sums = den[picks].sum(axis=1)
    boots = num[picks].sum(axis=1)[sums > 0] / sums[sums > 0]
    alpha = (1 - confidence) / 2
    return (est, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha)))


def _check_bootstrap(n_boot: object, confidence: object) -> None:
    check_count("n_boot", n_boot)
    check_number("confidence", confidence, maximum=1.0)


SAME_WITHIN_MS = 1.0
"""Two latencies closer than this are the same, whatever their intervals: a move under a millisecond is
below what a caller hears, and two runs of one draw on the simulated timeline can differ by its rounding
(a microsecond)."""


def same_within(measure: str) -> float:
    """How far apart two figures of ``measure`` may be and still be the same.

    :data:`SAME_WITHIN_MS` for a latency (a name with ``_ms``), else nothing beyond a float's rounding.
    """
    return SAME_WITHIN_MS if "_ms" in measure else 1e-9


def differ(
    a: float,
    b: float,
    a_interval: tuple[float, float],
    b_interval: tuple[float, float],
    *,
    measure: str = "",
) -> bool | None:
    """Whether two figures of ``measure`` differ: their 95 % intervals are apart (without them, their values).

    None when either value is missing. Figures whose intervals overlap may not differ: False. Latencies
    (a ``measure`` in ms) closer than :data:`SAME_WITHIN_MS` do not differ either.
    """
    if not (math.isfinite(a) and math.isfinite(b)):
        return None
    if abs(b - a) < same_within(measure):
        return False
    if all(math.isfinite(v) for v in (*a_interval, *b_interval)):
        return b_interval[0] > a_interval[1] or a_interval[0] > b_interval[1]
    return True


def summarize_latency(
    turns: pd.DataFrame,
    *,
    by: str | Sequence[str] = (),
    metrics: Sequence[str] = LATENCY_STAGES,
    first_turn_separately: bool = True,
    n_boot: int = RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """n, p50/p90/p95 with bootstrap 95 % intervals, per group and metric.

    Args:
        turns: Rows from :func:`turn_latency` (several runs concatenated, with grouping columns).
        by: A grouping column or columns (e.g. ``"setting"``).
        metrics: Latency columns to summarize (those absent are skipped; not all of them).
        first_turn_separately: Add a ``turns`` grouping level, ``first`` or ``rest``.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        One row per group and metric: the group keys, ``metric``, ``n``, ``p50``, ``p50_lo``,
        ``p50_hi``, and the same for ``p90`` and ``p95``.

    Raises:
        ConfigError: ``turns`` lacks a ``by`` column, or every one of ``metrics`` (an event frame, say); a
            frame of no turns and no columns gives an empty table.
    """
    keys = [by] if isinstance(by, str) else list(by)
    quantiles = [f"p{p}{s}" for p in (50, 90, 95) for s in ("", "_lo", "_hi")]
    if not len(turns.columns):  # no turns at all
        return pd.DataFrame(columns=[*keys, "metric", "n", *quantiles])
    require_columns(turns, [*keys, *([] if any(m in turns for m in metrics) else metrics)], TURNS_FRAME)
    data = turns.copy()
    if first_turn_separately and "first_turn" in data.columns:
        data["turns"] = np.where(data["first_turn"].astype(bool), "first", "rest")
        keys.append("turns")
    rows: list[dict[str, Any]] = []
    groups = data.groupby(keys, dropna=False, sort=True) if keys else [((), data)]
    for key, group in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            if metric not in group.columns:
                continue
            values = group[metric].astype(float).to_numpy()
            finite = values[np.isfinite(values)]
            row: dict[str, Any] = dict(zip(keys, key_t, strict=False))
            row.update(metric=metric, n=int(finite.size))
            for q in (0.5, 0.9, 0.95):
                est, lo, hi = bootstrap_ci(finite, q, n_boot=n_boot, seed=seed)
                name = f"p{int(q * 100)}"
                row.update({name: est, f"{name}_lo": lo, f"{name}_hi": hi})
            rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "metric", "n", *quantiles])
