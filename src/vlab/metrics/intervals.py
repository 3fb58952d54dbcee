"""Intervals of a rate from counts: Wilson's for a proportion, Garwood's (exact Poisson) for a rate in time.

Both are sound at 0: no cut-off in 20 turns is a rate from 0 to 16 %, not 0 ± 0.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from vlab.errors import check_number

__all__ = ["poisson_interval", "wilson_interval"]


def poisson_interval(count: float, exposure: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Garwood) interval of the rate ``count / exposure`` of events counted over ``exposure``.

    Sound at 0: no false start in 1 minute is a rate from 0 to 3.7 per minute. NaN with ``exposure`` 0.

    Raises:
        ConfigError: ``count`` or ``exposure`` is negative, or ``confidence`` is not from 0 to 1.
    """
    check_number("count", count)
    check_number("exposure", exposure)
    check_number("confidence", confidence, maximum=1.0)
    if not exposure > 0:
        return (math.nan, math.nan)
    k, tail = int(round(count)), (1.0 - confidence) / 2
    lower = 0.0 if k == 0 else _poisson_mean_where(k - 1, 1.0 - tail)
    return (lower / exposure, _poisson_mean_where(k, tail) / exposure)


def _poisson_mean_where(n: int, p: float) -> float:
    """The mean ``lam`` at which ``P(X <= n) = p`` for ``X ~ Poisson(lam)``, by bisection (it falls in lam)."""

    def at_most(lam: float) -> float:
        return math.fsum(math.exp(i * math.log(lam) - lam - math.lgamma(i + 1)) for i in range(n + 1))

    low, high = 0.0, n + 20.0 * math.sqrt(n + 1) + 20.0
    for _ in range(60):  # to double precision
        mid = (low + high) / 2
        low, high = (mid, high) if at_most(mid) > p else (low, mid)
    return (low + high) / 2


def wilson_interval(k: float, n: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``k / n`` (NaN with ``n`` 0): sound at 0 % and 100 %.

    Raises:
        ConfigError: ``n`` is negative, ``k`` is not from 0 to ``n``, or ``confidence`` not from 0 to 1.
    """
    check_number("n", n)
    check_number("k", k, maximum=n)
    check_number("confidence", confidence, maximum=1.0)
    if not n > 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # exact at the ends: the sum leaves 1e-17 there, which put 0 % outside its own interval
    return (0.0 if k <= 0 else max(0.0, centre - half), 1.0 if k >= n else min(1.0, centre + half))
