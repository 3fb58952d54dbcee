"""Event logs written by hand, for tests that need exact times and fields rather than a session's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlab.log.records import RECORD_FIELDS, EventRecord
from vlab.log.writer import JsonlWriter


def write_log(folder: Path, *rows: tuple[float, str, str, dict[str, Any]]) -> Path:
    """A run folder whose ``events.jsonl`` holds ``(ms, direction, type, fields)`` rows, in order.

    Times are on the client's clock (``t_ns``, from 1 s); no server event has a simulated time.
    """
    folder.mkdir()
    blank = dict.fromkeys(RECORD_FIELDS)
    with JsonlWriter(folder / "events.jsonl") as write:
        for seq, (ms, direction, kind, fields) in enumerate(rows):
            base = {"seq": seq, "t_ns": int(1e9 + ms * 1e6), "wall_ns": 0, "payload": "{}"}
            write(EventRecord(**blank | base | {"direction": direction, "type": kind} | fields))
    return folder
