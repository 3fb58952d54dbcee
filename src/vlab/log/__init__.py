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

from typing import TYPE_CHECKING

from vlab._lazy import lazy_attributes
from vlab.log.eventlog import EventLog
from vlab.log.files import JSONL_NAME, LOG_NAMES, PARQUET_NAME, is_run_folder, new_run_dir
from vlab.log.records import EventRecord, Sink, record_from_event
from vlab.log.writer import JsonlWriter

__all__ = [
    "EVENT_COLUMNS",
    "EventLog",
    "EventRecord",
    "JSONL_NAME",
    "JsonlWriter",
    "LOG_NAMES",
    "PARQUET_NAME",
    "Sink",
    "is_run_folder",
    "new_run_dir",
    "load_log",
    "read_jsonl",
    "record_from_event",
    "to_frame",
    "write_parquet",
]

_FRAME_NAMES = ("EVENT_COLUMNS", "load_log", "read_jsonl", "to_frame", "write_parquet")

if TYPE_CHECKING:
    from vlab.log.frames import EVENT_COLUMNS, load_log, read_jsonl, to_frame, write_parquet


__getattr__, __dir__ = lazy_attributes(__name__, dict.fromkeys(_FRAME_NAMES, "vlab.log.frames"))
