"""The ``vlab`` command line. Subcommands live in :mod:`vlab.commands`, one module each."""

from __future__ import annotations

import argparse
import codecs
import importlib
import io
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from vlab.commands import COMMANDS, INTERRUPTED_EXIT


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from vlab import __version__

    parser = argparse.ArgumentParser(prog="vlab", description="Experiment with Azure AI Voice Live.")
    parser.add_argument("--version", action="version", version=f"vlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"vlab.commands.{name}").add_parser(sub)
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; exits 2 with the usage of the subcommand whose arguments are wrong.

    argparse itself shows the top-level usage for an argument no subcommand knows
    (``vlab sweep --prompts rec``), which does not say what ``vlab sweep`` takes.
    """
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(words)
    if unknown:
        _owner(parser, args, words, unknown[0]).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _owner(
    parser: argparse.ArgumentParser, args: argparse.Namespace, words: list[str], word: str
) -> argparse.ArgumentParser:
    """The deepest (sub)command parser before ``word``: ``vlab prompts label``'s in ``prompts label -x``."""
    while True:
        commands = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(args, commands.dest, None) if commands is not None else None
        if commands is None or name not in words or word in words[: words.index(name)]:
            return parser
        parser, words = commands.choices[name], words[words.index(name) + 1 :]


BROKEN_PIPE_EXIT = 141
"""The exit code when the reader of the output went away (``vlab doctor | head -3``): 128 + SIGPIPE, what a
shell reports for a POSIX tool that the closed pipe ended."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vlab`` command line; returns the exit code.

    The output never fails on a console encoding that lacks a character vlab prints (``→`` on a Windows
    console's cp1252, redirected): such characters are replaced. A reader that stops reading (a closed
    pipe) ends the command quietly with :data:`BROKEN_PIPE_EXIT`. A vlab error, and a file-system error
    on a path (a folder that does not exist, a file one may not write), is one line on standard error and
    exit code 2, without a traceback.
    """
    for stream in (sys.stdout, sys.stderr):
        _replace_what_the_encoding_lacks(stream)
    try:
        try:
            return _run(argv)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()  # a closed pipe fails here rather than in the interpreter's exit
    except BrokenPipeError:
        if not _stdout_is_closed():
            raise  # not the output's pipe (a socket, a subprocess): a real error
        # Python's recipe (library/signal.html, "Note on SIGPIPE"): what is still buffered goes nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE_EXIT


def _run(argv: Sequence[str] | None) -> int:
    from vlab.errors import VlabError, VlabWarning

    args = parse_arguments(argv)
    try:
        with warnings.catch_warnings():  # restores Python's own way to show warnings after the command
            warnings.simplefilter("default", VlabWarning)  # shown once each, whatever -W asked of others
            warnings.showwarning = _warning_shower(warnings.showwarning)
            return int(args.func(args))
    except VlabError as exc:
        print(f"vlab: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise  # not a path the user gave or chose (a socket, a pipe): a real error
        where = exc.filename if exc.filename2 is None else f"{exc.filename} → {exc.filename2}"
        print(f"vlab: error: {exc.strerror or exc}: {where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlab: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT


def _warning_shower(python_s: Any) -> Any:
    """A ``warnings.showwarning`` that says a vlab warning in one line on standard error.

    ``vlab: warning: …``, as the CLI says things, without Python's file, line and source; other warnings
    as ``python_s`` shows them.
    """
    from vlab.errors import VlabWarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, VlabWarning):
            print(f"vlab: warning: {message}", file=sys.stderr)
        else:
            python_s(message, category, filename, lineno, file, line)

    return show


def _replace_what_the_encoding_lacks(stream: object) -> None:
    """Make ``stream`` replace the characters its encoding cannot write, unless it is a Unicode encoding."""
    if not isinstance(stream, io.TextIOWrapper) or stream.errors != "strict":
        return
    try:
        unicode = codecs.lookup(stream.encoding).name.startswith("utf")
    except LookupError:
        unicode = False
    if not unicode:
        stream.reconfigure(errors="replace")


def _stdout_is_closed() -> bool:
    """Whether nothing reads the standard output any more (its pipe's reader closed it).

    Where :func:`select.poll` cannot tell (Windows), a BrokenPipeError is taken to be the output's.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    import select

    if not hasattr(select, "poll"):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(revents & (select.POLLERR | select.POLLHUP) for _, revents in poller.poll(0))


if __name__ == "__main__":
    sys.exit(main())
