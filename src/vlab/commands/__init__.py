"""Subcommands of the ``vlab`` command line, one module each.

Each module defines ``add_parser(subparsers)``; its handler imports what it needs only when it runs.
"""

COMMANDS = (
    "demo",
    "emulator",
    "replay",
    "devices",
    "sweep",
    "report",
    "compare",
    "runs",
    "prompts",
    "calibrate",
    "doctor",
    "notebooks",
    "examples",
)
"""Modules registered by :func:`vlab.cli.build_parser`, in help order."""

INTERRUPTED_EXIT = 130
"""The exit code of a command stopped with Ctrl-C (SIGINT), as a shell reports it: 128 + 2."""
