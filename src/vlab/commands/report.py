"""``vlab report``: charts and tables of a sweep folder as a self-contained report.html."""

from __future__ import annotations

import argparse

from vlab.commands._args import count


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser("report", help="write report.html (+ PNGs) for a sweep folder")
    p.add_argument("sweep_dir", help="a folder written by `vlab sweep`")
    p.add_argument(
        "--timelines", type=count(0), default=3, help="VAD timelines for this many prompts (default: 3)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from vlab.report import build_report

    print(f"report: {build_report(args.sweep_dir, timeline_prompts=args.timelines)}")
    return 0
