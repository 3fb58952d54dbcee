"""The event log: every client and server event of a Voice Live session, one record each.

A session turns each event it sends or receives into an :class:`EventRecord`
(:func:`record_from_event`), keeps it in its :class:`EventLog` (one list per record field, so the
log becomes a DataFrame without per-record work) and hands it to its sinks, typically a
:class:`JsonlWriter` that appends it to ``events.jsonl`` in the run folder as the session goes
(crash-safe to within about a second). At the end the session writes ``events.parquet`` with
:func:`write_parquet`. For analysis, :func:`load_log` reads a run folder back as a pandas DataFrame
with the columns :data:`EVENT_COLUMNS`; :func:`to_frame` (or :meth:`EventLog.frame`) builds the same
frame from records in memory.

The records and the writer need only the standard library; pandas and pyarrow are imported when a
frame function is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vlab.log.eventlog import EventLog
from vlab.log.records import EventRecord, Sink, record_from_event
from vlab.log.writer import JsonlWriter

__all__ = [
    "EVENT_COLUMNS",
    "EventLog",
    "EventRecord",
    "JsonlWriter",
    "Sink",
    "load_log",
    "read_jsonl",
    "record_from_event",
    "to_frame",
    "write_parquet",
]

_FRAME_NAMES = frozenset({"EVENT_COLUMNS", "load_log", "read_jsonl", "to_frame", "write_parquet"})

if TYPE_CHECKING:
    from vlab.log.frames import EVENT_COLUMNS, load_log, read_jsonl, to_frame, write_parquet


def __getattr__(name: str) -> Any:
    """Import the pandas-based frame functions on first use."""
    if name not in _FRAME_NAMES:
        raise AttributeError(f"module 'vlab.log' has no attribute {name!r}")
    from vlab.log import frames

    value = getattr(frames, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
