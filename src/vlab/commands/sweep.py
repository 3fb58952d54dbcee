"""``vlab sweep``: run prompts × a grid of turn-detection settings × repeats and write a sweep folder."""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from typing import Any


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser("sweep", help="run a turn-detection settings sweep over labelled prompts")
    p.add_argument("config", help="sweep config (TOML; see examples/vad_sweep.toml)")
    p.add_argument(
        "--out",
        metavar="SWEEP_DIR",
        help="sweep folder (finished cells are skipped); required unless --dry-run",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config and list its settings and prompts; run nothing",
    )
    p.add_argument(
        "--mode",
        choices=("sessions", "vad"),
        help="override [run] mode: 'vad' decides the cells with the emulator's VAD alone, without sessions "
        "(seconds for a big grid; VAD and score tables only)",
    )
    p.add_argument("--no-resume", action="store_true", help="run every cell again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true", help="also write report.html when done")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code (1 when a cell failed)."""
    from vlab.errors import ConfigError
    from vlab.sweep import grid_shape, load_config, run_sweep

    cfg = load_config(args.config, mode=args.mode)  # bad configs fail here, before anything runs
    if args.out is None and not args.dry_run:
        raise ConfigError("give the sweep folder with --out SWEEP_DIR (or --dry-run to only list the cells)")
    what = " (VAD only, no sessions)" if cfg.mode == "vad" else ""
    print(f"{cfg.n_cells} cells{what}: {grid_shape(len(cfg.settings), len(cfg.prompts), cfg.repeats)}")
    if args.dry_run:
        for name in cfg.setting_names:
            print(f"  setting  {name}" + ("  (baseline)" if name == cfg.baseline else ""))
        print("  prompts  " + ", ".join(p.id for p in cfg.prompts))
        return 0
    result = run_sweep(cfg, args.out, resume=not args.no_resume, progress=not args.no_progress)
    counts = {s: sum(1 for c in result.cells if c.status == s) for s in ("ok", "skipped", "error")}
    print(
        f"sweep folder: {result.out}  ({counts['ok']} run, {counts['skipped']} skipped, {counts['error']} failed; {result.wall_s:.1f} s)"
    )
    for c in result.cells:
        if c.status == "error":
            print(f"vlab: cell failed: {c.cell}: {c.error}", file=sys.stderr)
    points = result.points()
    if not points.empty:
        print("\n" + results_table(points))
    if args.report:
        from vlab.report import build_report

        print(f"report: {build_report(result.out)}")
    elif not points.empty:
        print(f"charts: vlab report {result.out}")
    return 1 if counts["error"] else 0


RESULT_COLUMNS = (
    ("cut off %", "false_cutoff_rate", 100.0),
    ("missed %", "missed_turn_rate", 100.0),
    ("dead air ms", "dead_air_ms", 1.0),
    ("tokens/turn", "tokens_per_expected_turn", 1.0),
)
"""What ``vlab sweep`` prints per setting when it is done: header, ``points`` column, scale."""


def results_table(points: Any) -> str:
    """A sweep's operating points as text: one line per setting in the table's order, the Pareto ones marked.

    A figure with a 95 % interval in the points (``<column>_lo``/``_hi``) shows it in brackets. A measure
    the points lack (tokens, in a VAD-only sweep) is left out; a value missing is ``-``.
    """
    columns = [c for c in RESULT_COLUMNS if c[1] in points]
    rows = [["setting", *(title for title, _, _ in columns), ""]]
    for _, point in points.iterrows():
        mark = " (baseline)" if point["baseline"] else " (reference)" if point.get("reference") else ""
        name = f"{point['setting']}{mark}"
        figures = [_figure(point, key, scale) for _, key, scale in columns]
        rows.append([name, *figures, "Pareto" if point["pareto"] else ""])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)),
                row[-1],
            ]
        ).rstrip()
        for row in rows
    ]
    lines += textwrap.wrap(
        "cut off: turns answered before the user had finished; missed: turns never answered; dead air: the "
        "median wait from the end of a turn to the reply (in a VAD-only sweep, to the end the VAD decided); "
        "[low-high]: its 95 % interval (settings whose intervals overlap may not differ); "
        "Pareto: no other setting has both fewer cut-offs and less dead air"
        + (
            "; push-to-talk (reference): each turn committed at its labelled end, the dead air a perfect "
            "end-of-turn decision would leave."
            if "reference" in points and points["reference"].any()
            else "."
        ),
        width=110,
    )
    return "\n".join(lines)


def _figure(point: Any, key: str, scale: float) -> str:
    """One figure of a point, rounded, with its interval when the point has one (``62 [31-86]``)."""
    value = float(point[key])
    if not math.isfinite(value):
        return "-"
    low, high = (float(point.get(f"{key}_{end}", math.nan)) for end in ("lo", "hi"))
    interval = (
        f" [{low * scale:.0f}-{high * scale:.0f}]" if math.isfinite(low) and math.isfinite(high) else ""
    )
    return f"{value * scale:.0f}{interval}"
