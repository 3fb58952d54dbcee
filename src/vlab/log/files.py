"""The names of a run folder's event logs, and whether a folder holds one (standard library only)."""

from __future__ import annotations

import os
from pathlib import Path

JSONL_NAME = "events.jsonl"
"""File name of the live JSON-lines log in a run folder."""

PARQUET_NAME = "events.parquet"
"""File name of the Parquet log in a run folder."""

SESSION_NAME = "session.json"
"""File name of a run folder's settings, target and versions (never a key), and its summary at the end."""

LOG_NAMES = (PARQUET_NAME, JSONL_NAME)
"""The event logs a run folder may hold, Parquet first (:func:`vlab.log.load_log` reads it when it is current)."""

RUN_FOLDER_HINT = f"a run folder holds {PARQUET_NAME} and/or {JSONL_NAME}"
"""What makes a folder a run folder, for error messages."""


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """``path`` is a folder that holds an event log (a session's or replay's run folder, a sweep cell)."""
    return any((Path(path) / name).is_file() for name in LOG_NAMES)
