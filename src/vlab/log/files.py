"""A run folder's log names, whether a folder holds a log, a new folder per run (standard library only)."""

from __future__ import annotations

import functools
import os
import tempfile
from datetime import datetime
from pathlib import Path

JSONL_NAME = "events.jsonl"
"""File name of the live JSON-lines log in a run folder."""

PARQUET_NAME = "events.parquet"
"""File name of the Parquet log in a run folder."""

SESSION_NAME = "session.json"
"""File name of a run folder's settings, target and versions (never a key), and its summary at the end."""

LABELS_NAME = "labels.json"
"""File name of the labels of the prompt a run replayed (:func:`vlab.prompts.write_run_labels`), if it had any."""

LOG_NAMES = (PARQUET_NAME, JSONL_NAME)
"""The event logs a run folder may hold, Parquet first (:func:`vlab.log.load_log` reads it when it is current)."""

RUN_FOLDER_HINT = f"a run folder holds {PARQUET_NAME} and/or {JSONL_NAME}"
"""What makes a folder a run folder, for error messages."""


@functools.cache
def _umask() -> int:
    """The process's umask, read once (reading it means setting it, which threads must not race)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file so that a killed process leaves its old content or the new, never half of it.

    The text goes to a temporary file beside it (a name of its own, so two writers never share one), which
    then replaces the file (:func:`os.replace`). UTF-8, the same bytes on every system (no newline translation).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # as an ordinary file gets it (mkstemp's is the owner's alone)
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_run_dir(prefix: str, root: str | os.PathLike[str] = "runs") -> Path:
    """A new, empty run folder: ``<root>/<prefix>-YYYYmmdd-HHMMSS``, ``-2``, ``-3``… added if that is taken.

    For a session whose cell may run again: each run keeps its own folder. The folder is created here, so
    two sessions started in the same second (in one process or several) never get the same one.
    """
    base = Path(root) / f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 2
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            path, n = base.with_name(f"{base.name}-{n}"), n + 1


def holds_events(path: str | os.PathLike[str]) -> bool:
    """``path`` holds a session's events, which a new session there would replace.

    A non-empty :data:`JSONL_NAME`, or a :data:`PARQUET_NAME` without one. A session that never connected
    leaves an empty log, which does not count.
    """
    jsonl, parquet = Path(path) / JSONL_NAME, Path(path) / PARQUET_NAME
    return jsonl.stat().st_size > 0 if jsonl.is_file() else parquet.is_file()


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """``path`` is a folder that holds an event log (a session's or replay's run folder, a sweep cell)."""
    return any((Path(path) / name).is_file() for name in LOG_NAMES)
