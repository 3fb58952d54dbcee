"""The ``vlab`` command line. Subcommands live in :mod:`vlab.commands`, one module each."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vlab.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from vlab import __version__

    parser = argparse.ArgumentParser(prog="vlab", description="Experiment with Azure AI Voice Live.")
    parser.add_argument("--version", action="version", version=f"vlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"vlab.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vlab`` command line; returns the exit code."""
    from vlab.errors import VlabError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except VlabError as exc:
        print(f"vlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
