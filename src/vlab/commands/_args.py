"""Argument types shared by several subcommands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from vlab.errors import ConfigError, refuse_a_file_in_the_way


def speed(value: str) -> float:
    """A speed: a number > 0 or 'max' (:func:`vlab.audio.pacing.parse_speed`)."""
    from vlab.audio.pacing import parse_speed
    from vlab.errors import ConfigError

    try:
        return parse_speed(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(value: str, unit: str) -> float:
    """``value`` as a finite number > 0, or an argparse error naming ``unit``."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number of {unit} > 0, got {value!r}")
    return number


def seconds(value: str) -> float:
    """A time limit in seconds: a number > 0."""
    return _positive(value, "seconds")


def positive_ms(value: str) -> float:
    """A length in ms: a number > 0."""
    return _positive(value, "ms")


def count(minimum: int) -> Callable[[str], int]:
    """An argument type: an integer ≥ ``minimum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer ≥ {minimum}, got {value!r}")
        return number

    return parse


def out_folder(value: str) -> str:
    """A folder to write into: created when missing, so only a file in its place is refused."""
    _refuse_a_file_in_the_way(Path(value), value)
    return value


def out_file(value: str) -> str:
    """A file to write, its folder created when missing; refused when it is a folder or a file blocks its folder."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a folder; give the name of a file to write in it")
    _refuse_a_file_in_the_way(path.parent, value)
    return value


def out_file_or_folder(value: str) -> str:
    """A file to write, or the folder to write it in (named by the command)."""
    path = Path(value)
    _refuse_a_file_in_the_way(path if path.is_dir() else path.parent, value)
    return value


def _refuse_a_file_in_the_way(folder: Path, value: str) -> None:
    """Refuse ``folder`` when it, or the nearest of its parents that exists, is not a folder."""
    try:
        refuse_a_file_in_the_way(folder, value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
