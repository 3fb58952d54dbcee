"""Event logs written by hand, for tests that need exact times and fields rather than a session's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlab.log.records import RECORD_FIELDS, EventRecord
from vlab.log.writer import JsonlWriter

T0_NS = 1_000_000_000
"""The client-clock stamp of ms 0 in hand-written records."""


def hand_record(seq: int, ms: float, direction: str, kind: str, **fields: Any) -> EventRecord:
    """Record number ``seq``: ``kind`` sent, received or vlab's own (``direction``) at ``ms`` on the client's
    clock (from :data:`T0_NS`), with ``fields``; every other field missing."""
    base = {"seq": seq, "t_ns": int(T0_NS + ms * 1e6), "wall_ns": 0, "payload": "{}"}
    return EventRecord(
        **dict.fromkeys(RECORD_FIELDS) | base | {"direction": direction, "type": kind} | fields
    )


def write_log(folder: Path, *rows: tuple[float, str, str, dict[str, Any]]) -> Path:
    """A run folder whose ``events.jsonl`` holds ``(ms, direction, type, fields)`` rows, in order.

    Times are on the client's clock (from :data:`T0_NS`); no server event has a simulated time.
    """
    folder.mkdir()
    with JsonlWriter(folder / "events.jsonl") as write:
        for seq, (ms, direction, kind, fields) in enumerate(rows):
            write(hand_record(seq, ms, direction, kind, **fields))
    return folder
