"""Each ``vlab`` flag's default is the default of the function parameter it feeds, and its help says so.

The command line builds its parser without importing what the commands run (a report or a replay imports
pandas, matplotlib and the SDK), so a default it shows is a copy; these tests hold each copy to its source.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from vlab.cli import build_parser
from vlab.corpus.importer import import_folder
from vlab.corpus.labeller import label_folder
from vlab.doctor import diagnose
from vlab.emulator import Emulator
from vlab.emulator.latency import PRESETS
from vlab.protocol import DEFAULT_MODEL
from vlab.replay import replay
from vlab.report import build_report
from vlab.sweep import MODES

CASES: list[tuple[tuple[str, ...], tuple[str, ...], str, Callable[..., Any], str]] = [
    # (command, its positional arguments, the flag's dest, the function it feeds, the parameter)
    (("doctor",), (), "timeout_s", diagnose, "timeout_s"),
    (("report",), ("sweep",), "timelines", build_report, "timeline_prompts"),
    (("replay",), ("x.wav",), "timeout", replay, "timeout_s"),
    (("replay",), ("x.wav",), "speed", replay, "speed"),
    (("prompts", "import"), ("folder",), "category", import_folder, "category"),
    (("prompts", "import"), ("folder",), "hold_gap_ms", import_folder, "hold_gap_ms"),
    (("prompts", "label"), ("folder",), "category", label_folder, "category"),
    (("prompts", "label"), ("folder",), "hold_gap_ms", label_folder, "hold_gap_ms"),
    (("emulator",), (), "host", Emulator, "host"),
    (("emulator",), (), "speed", Emulator, "speed"),
    (("emulator",), (), "latency", Emulator, "latency"),
    (("emulator",), (), "seed", Emulator, "seed"),
]


def _action(command: tuple[str, ...], dest: str) -> argparse.Action:
    parser = build_parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return next(a for a in parser._actions if a.dest == dest)


@pytest.mark.parametrize(
    ("command", "positionals", "dest", "function", "param"),
    CASES,
    ids=[f"{' '.join(c[0])}:{c[2]}" for c in CASES],
)
def test_a_flag_s_default_is_its_function_s_and_its_help_names_it(
    command, positionals, dest, function, param
):
    default = inspect.signature(function).parameters[param].default
    assert getattr(build_parser().parse_args([*command, *positionals]), dest) == default
    shown = f"{default:g}" if isinstance(default, float) else str(default)
    assert f"default: {shown}" in (_action(command, dest).help or "")


def test_the_emulator_s_latency_help_names_every_preset():
    assert f"latency preset ({', '.join(PRESETS)})" in (_action(("emulator",), "latency").help or "")


def test_doctor_s_model_help_names_the_default_model():
    assert f"then {DEFAULT_MODEL})" in (_action(("doctor",), "model").help or "")


def test_sweep_s_mode_choices_are_the_sweep_s_modes():
    assert tuple(_action(("sweep",), "mode").choices or ()) == MODES
