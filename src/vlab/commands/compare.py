"""``vlab compare``: what got better or worse between two sweeps, with bootstrap intervals."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlab.commands._args import out_file


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser("compare", help="compare two sweep folders setting by setting")
    p.add_argument("a", help="the reference sweep folder")
    p.add_argument("b", help="the sweep folder to compare with it")
    p.add_argument("--csv", type=out_file, default=None, metavar="PATH", help="also write the table as CSV")
    p.add_argument(
        "--plot",
        type=out_file,
        default=None,
        metavar="PNG",
        help="also draw how each setting moved from A to B on the cut-off/dead-air plane",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    import textwrap

    import pandas as pd

    from vlab.plots import format_number
    from vlab.report.compare import chart_path, compare_chart, compare_sweeps, ran_otherwise, verdict_summary

    if args.plot:
        chart_path(args.plot)  # a file name it cannot draw into fails before the comparison
    table = compare_sweeps(args.a, args.b)  # its warnings: one line each (vlab.cli)
    otherwise = ran_otherwise(args.a, args.b)
    if otherwise:
        print("A and B differ besides their settings; a figure can move with this too:")
        print(
            "\n".join(
                textwrap.fill(line, 110, initial_indent="  ", subsequent_indent="    ") for line in otherwise
            )
        )
        print()
    shown = table[["setting", "measure", "a", "b", "delta", "verdict"]]
    widths = {c: max(len(c), int(shown[c].str.len().max())) for c in ("setting", "measure")}
    shown = shown.assign(**{c: shown[c].str.ljust(n) for c, n in widths.items()})  # names read left to right
    with pd.option_context("display.width", 200, "display.float_format", format_number):
        print(
            shown.rename(columns={c: c.ljust(n) for c, n in widths.items()}).to_string(
                index=False, na_rep="–"
            )
        )  # every row: to_string elides none
    summary = [*verdict_summary(table), "lower is better; 'same' while the 95 % intervals overlap"]
    print("\n" + "\n".join(textwrap.fill(line, 110, subsequent_indent="  ") for line in summary))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    if args.plot:
        print(f"chart: {compare_chart(args.a, args.b, args.plot)}")
    return 0
