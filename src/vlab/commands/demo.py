"""``vlab demo``: the main job end to end on the embedded emulator, written into the current folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlab.commands._args import out_folder


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "demo",
        help="the SDK, a turn-detection sweep, a report and the notebooks on the embedded emulator",
        description="Run vlab's main job offline: the plain SDK against the embedded emulator, a "
        "turn-detection sweep over the bundled prompts with a summary table, report.html, and the "
        "notebooks executed, in runs/demo-<time>/ of the current folder (one to two minutes).",
    )
    p.add_argument(
        "--out",
        type=lambda value: Path(out_folder(value)),
        default=None,
        help="run folder (default: runs/demo-<time>)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smaller demo: three prompts, two settings, as fast as possible, no notebooks (seconds)",
    )
    p.add_argument("--skip-notebooks", action="store_true", help="do not execute the notebooks")
    p.add_argument("--force", action="store_true", help="write into --out even if it already holds files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from vlab.demo import run_demo

    return run_demo(args.out, quick=args.quick, notebooks=not args.skip_notebooks, force=args.force)
