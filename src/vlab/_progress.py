"""Progress bars: tqdm's in a terminal or a notebook, one line every few seconds in a log file or a pipe.

A bar redrawn in place writes carriage returns, which a log file keeps as one endless line (``nohup vlab
sweep … > sweep.log``, a CI log, ``!vlab sweep`` in a notebook cell). There the same progress is a line of
its own every :data:`LOG_INTERVAL_S` seconds, and a last one at the end.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

LOG_INTERVAL_S = 10.0
"""Seconds between two progress lines in a log file or a pipe."""

LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit}s ({percentage:.0f} %), {elapsed} elapsed, {remaining} left"
"""A progress line in a log file or a pipe (tqdm's ``bar_format``): no bar, nothing redrawn."""


def progress_bar(total: int, desc: str, unit: str, iterable: Iterable[Any] | None = None) -> tqdm:
    """A progress bar of ``total`` steps on standard error, drawn as where it goes can show it.

    Given an ``iterable``, the bar steps as it is iterated (tqdm's own way).
    """
    from tqdm.auto import tqdm

    stream = sys.stderr
    if _in_a_notebook(tqdm) or stream is None or _is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=_Lines(stream),
        mininterval=LOG_INTERVAL_S,
        maxinterval=LOG_INTERVAL_S,
        bar_format=LOG_FORMAT,
    )


def _in_a_notebook(bar: type) -> bool:
    """Whether tqdm.auto chose its notebook bar (a widget): it does in a Jupyter kernel."""
    notebook = sys.modules.get("tqdm.notebook")  # imported by tqdm.auto when it chose it
    return notebook is not None and issubclass(bar, notebook.tqdm_notebook)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or closed
        return False


class _Lines(io.TextIOBase):
    """A stream for tqdm that writes each state it draws as a line, once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = ""

    def write(self, text: str) -> int:
        """Write what tqdm draws (a carriage return and the state; a newline at the end) as a line, once."""
        line = text.replace("\r", "").strip()
        if line and line != self._last:
            self._stream.write(line + "\n")
            self._last = line
        return len(text)

    def flush(self) -> None:
        """Flush the stream written to, unless it was closed first (the bar then closes quietly)."""
        if not self._stream.closed:
            self._stream.flush()
