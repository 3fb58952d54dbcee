"""Argument types shared by several subcommands."""

from __future__ import annotations

import argparse


def speed(value: str) -> float:
    import math

    if value in ("max", "inf"):
        return math.inf
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number > 0 or 'max', got {value!r}") from None
    if speed <= 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0 or 'max', got {value!r}")
    return speed


def seconds(value: str) -> float:
    """A time limit in seconds: a number > 0."""
    try:
        limit = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {value!r}") from None
    if not limit > 0 or limit == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {value!r}")
    return limit
