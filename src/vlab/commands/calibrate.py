"""``vlab calibrate``: fit the emulator's latency model to runs made against Azure."""

from __future__ import annotations

import argparse

from vlab.commands._args import count, out_file


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "calibrate", help="fit the emulator's latency model (latency.json) to runs made against Azure"
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN_OR_SWEEP", help="run folders, or sweep folders holding them"
    )
    p.add_argument(
        "--out", type=out_file, required=True, metavar="LATENCY.json", help="where to write the fitted model"
    )
    p.add_argument(
        "--min-samples",
        type=count(1),
        default=None,
        help="warn about stages with fewer samples, and keep voice/model splits with at least this many "
        "(default: 50)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    import warnings

    from vlab.calibrate import MIN_SAMPLES, FewSamplesWarning, calibrate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FewSamplesWarning)
        result = calibrate(
            args.runs, min_samples=MIN_SAMPLES if args.min_samples is None else args.min_samples
        )
    runs = result.model.provenance.get("runs", [])
    print(f"fitted from {len(runs)} run(s), {len(result.samples)} samples")
    emulated = result.emulator_runs
    if emulated:  # a stand-in for Azure, as in the docs' examples, or a run made where Azure was meant
        print(
            f"note: {len(emulated)} of {len(runs)} runs ran on vlab's emulator, not Azure: what they fit is the "
            "emulator's own latency model"
        )
    if result.commits_waited:
        print(
            "note: a turn that ended while an earlier response was in progress gives no commit sample (its "
            f"reply waited for that response to finish); turns left out: {result.commits_waited}"
        )
    print(result.format_table())
    for w in caught:  # after the table that flags the stages, as the command shows warnings
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(f"latency model: {result.model.save(args.out)}")
    return 0
