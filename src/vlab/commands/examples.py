"""``vlab examples [DIR]``: copy the example sweep configs (and their files) to edit and run with ``vlab sweep``."""

from __future__ import annotations

import argparse
from pathlib import Path

FIRST_EXAMPLE = "vad_sweep.toml"
"""The example the command suggests running first: the turn-detection sweep the others build on."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "examples", help="copy the example sweep configs (and the files they use) into a folder"
    )
    p.add_argument(
        "dir", nargs="?", type=Path, default=Path("examples"), help="where to copy them (default: ./examples)"
    )
    p.add_argument("--force", action="store_true", help="replace files of the same names that differ")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from vlab.bundled import copy_bundled

    copied = copy_bundled("examples", args.dir, force=args.force)
    for path in copied:
        print(path)
    configs = [p for p in copied if p.suffix == ".toml"]
    first = next((p for p in configs if p.name == FIRST_EXAMPLE), configs[0] if configs else None)
    if first is not None:
        print(f"\nRun one:  vlab sweep {first} --out runs/sweep   then   vlab report runs/sweep")
    return 0
