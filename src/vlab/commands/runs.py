"""``vlab runs``: the sweeps and session runs a folder keeps, newest first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlab.commands._args import out_file

ENDED_CHARS = 60
"""Characters of how a run ended shown in the table (a connection error's advice is longer; the CSV and
:func:`vlab.find_runs` have it whole)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser("runs", help="list the sweeps and session runs a folder keeps, newest first")
    p.add_argument("folder", nargs="?", default="runs", help="the folder to search (default: runs)")
    p.add_argument("--csv", type=out_file, default=None, metavar="PATH", help="also write the list as CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    import pandas as pd

    from vlab.runs import find_runs
    from vlab.sweep.grid import counted

    runs = find_runs(args.folder)
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        runs.to_csv(args.csv, index=False)
    if runs.empty:
        print(f"vlab: no sweep or session run under {args.folder!r}", file=sys.stderr)
        return 0
    started = runs["started_at"].dt.strftime("%Y-%m-%d %H:%M").fillna("?")
    ended = runs["ended"].map(
        lambda text: text if len(text) <= ENDED_CHARS else text[: ENDED_CHARS - 1] + "…"
    )
    text = (
        runs.assign(started_at=started, ended=ended)
        .rename(columns={"started_at": "started (UTC)"})
        .astype(str)
    )
    widths = {c: max(len(c), int(text[c].str.len().max())) for c in text.columns}
    text = text.assign(**{c: text[c].str.ljust(n) for c, n in widths.items()})  # left-aligned, as read
    with pd.option_context("display.width", 250, "display.max_colwidth", 200):
        table = text.rename(columns={c: c.ljust(n) for c, n in widths.items()}).to_string(index=False)
    print("\n".join(line.rstrip() for line in table.splitlines()))
    print(
        f"\n{counted(len(runs), 'run')} under {args.folder} (newest first). A sweep: vlab report FOLDER, "
        "vlab compare A B; a session: vlab.load_log(FOLDER)."
    )
    return 0
