"""``vlab notebooks [DIR]``: copy the notebooks into a folder and open JupyterLab on them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser("notebooks", help="copy the notebooks into a folder and open JupyterLab on them")
    p.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=Path("notebooks"),
        help="where to copy them (default: ./notebooks)",
    )
    p.add_argument("--force", action="store_true", help="replace notebooks of the same names that differ")
    p.add_argument("--no-open", action="store_true", help="only copy them; do not start JupyterLab")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from vlab.bundled import copy_bundled

    for path in copy_bundled("notebooks", args.dir, force=args.force):
        print(path)
    if args.no_open:
        print(f"\nOpen them with:  {Path(sys.executable).name} -m jupyterlab {args.dir}")
        return 0
    # JupyterLab from this environment, so its kernel imports this vlab; it runs until stopped (Ctrl-C).
    return subprocess.call([sys.executable, "-m", "jupyterlab", str(args.dir)])
