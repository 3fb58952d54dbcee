"""``vlab notebooks [DIR]``: copy the notebooks (and the docs they link to) into a folder and open JupyterLab."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from vlab.bundled import NOTEBOOKS_DIR


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser("notebooks", help="copy the notebooks into a folder and open JupyterLab on them")
    p.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=Path(NOTEBOOKS_DIR),
        help=f"where to copy them: DIR/notebooks, and the docs they link to in DIR/docs (default: ./{NOTEBOOKS_DIR})",
    )
    p.add_argument("--force", action="store_true", help="replace files of the same names that differ")
    p.add_argument("--no-open", action="store_true", help="only copy them; do not start JupyterLab")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from vlab.bundled import copy_notebooks

    for path in copy_notebooks(args.dir, force=args.force):
        print(path)
    command = jupyterlab_command(args.dir)
    if args.no_open:  # this Python by its whole path: a bare "python" may be one without JupyterLab
        shown = subprocess.list2cmdline(command) if os.name == "nt" else shlex.join(command)
        print(f"\nOpen them with:  {shown}")
        return 0
    # JupyterLab from this environment, so its kernel imports this vlab; it runs until stopped (Ctrl-C).
    return subprocess.call(command)


def jupyterlab_command(folder: Path) -> list[str]:
    """JupyterLab of this Python on ``folder`` (its root, so ``docs/`` is in reach), showing ``notebooks/``."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        str(folder),
        "--LabApp.default_url=/lab/tree/notebooks",
    ]
