"""Append event records to a JSON-lines file that survives a crash of the writing process.

:class:`JsonlWriter` buffers lines in Python (no per-record flush, so it keeps up with hundreds of
thousands of records a second) and a daemon thread flushes the buffer to the operating system every
``flush_interval_s``. If the process is killed, at most about one flush interval of records is lost
and the file may end in a torn line, which :func:`vlab.log.read_jsonl` skips. Flushing hands the data
to the OS; it does not ``fsync``, so it survives a killed process, not a power cut.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from operator import attrgetter
from typing import IO

from vlab.log.records import RECORD_FIELDS, EventRecord

_BUFFER_BYTES = 1 << 20
"""Python-side write buffer in bytes; the flusher thread, not the buffer size, bounds the data at risk."""

_record_values = attrgetter(*RECORD_FIELDS)
_INT = int.__repr__  # decimal text of an int (True → "1"); raises TypeError on non-ints
_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=True
).encode


def _generic_line(record: EventRecord) -> str:
    return _encode(dict(zip(RECORD_FIELDS, _record_values(record), strict=True))) + "\n"


_LINE_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in RECORD_FIELDS) + "}\n"
_esc = encode_basestring  # C: quote and escape a str for JSON, non-ASCII kept
_float = float.__repr__  # what json writes for a finite float; raises TypeError on non-floats


def record_line(record: EventRecord) -> str:
    """One JSONL line (with its newline) for a record: an object keyed by the record's field names.

    Equivalent to ``json.dumps(dict(...), ensure_ascii=False, separators=(",", ":"))`` but about twice
    as fast: the keys are a constant template and each value is encoded according to its field type.
    Non-finite floats are written as ``null``. A record holding unexpected types (e.g. an ``int`` in a
    float field) takes the generic path.
    """
    (seq, t_ns, wall_ns, direction, etype, event_id, response_id, item_id, output_index, content_index,
     call_id, audio_bytes, audio_ms, audio_start_ms, audio_end_ms, text, error_code, error_message,
     payload) = _record_values(record)  # fmt: skip
    try:
        return _LINE_TEMPLATE % (
            _INT(seq),
            _INT(t_ns),
            _INT(wall_ns),
            _esc(direction),
            _esc(etype),
            "null" if event_id is None else _esc(event_id),
            "null" if response_id is None else _esc(response_id),
            "null" if item_id is None else _esc(item_id),
            "null" if output_index is None else _INT(output_index),
            "null" if content_index is None else _INT(content_index),
            "null" if call_id is None else _esc(call_id),
            "null" if audio_bytes is None else _INT(audio_bytes),
            "null" if audio_ms is None or audio_ms - audio_ms else _float(audio_ms),
            "null" if audio_start_ms is None or audio_start_ms - audio_start_ms else _float(audio_start_ms),
            "null" if audio_end_ms is None or audio_end_ms - audio_end_ms else _float(audio_end_ms),
            "null" if text is None else _esc(text),
            "null" if error_code is None else _esc(error_code),
            "null" if error_message is None else _esc(error_message),
            _esc(payload),
        )
    except TypeError:
        return _generic_line(record)


def _drop_torn_tail(path: str | os.PathLike[str]) -> None:
    """Make an existing file end on a line boundary before appending to it.

    A writer killed mid-line leaves a fragment after the last newline. Appending to it would glue the
    next record onto the fragment and corrupt both, so the fragment is cut off (it cannot be parsed
    anyway); a last line that is complete JSON but lacks its newline gets the newline instead.
    """
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        return
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        start = max(0, size - (1 << 16))
        while True:
            f.seek(start)
            tail = f.read(size - start)
            cut = tail.rfind(b"\n")
            if cut >= 0 or start == 0:
                break
            start = max(0, start - (1 << 20))
        line_start = start + cut + 1
        f.seek(line_start)
        fragment = f.read()
        try:
            json.loads(fragment)
        except ValueError:
            f.truncate(line_start)
        else:
            f.write(b"\n")


def _flush_loop(file: IO[str], lock: threading.Lock, stop: threading.Event, interval_s: float) -> None:
    """Body of the flusher thread: push the Python buffer to the OS every ``interval_s``."""
    while not stop.wait(interval_s):
        with lock:
            if file.closed:
                return
            file.flush()


def _shutdown(file: IO[str], lock: threading.Lock, stop: threading.Event) -> None:
    """Stop the flusher and close the file (also run at interpreter exit and on garbage collection)."""
    stop.set()
    with lock:
        if not file.closed:
            file.close()


class JsonlWriter:
    """A :class:`~vlab.log.Sink` that appends each record as one JSON line to a file.

    Each line is an object with the :class:`~vlab.log.EventRecord` field names as keys (``wall_ns``
    stays an integer). The file is opened in append mode, so a resumed run adds to it; a torn last
    line left by a crash is cut off first. Writes are buffered and a daemon thread flushes them to the
    OS every ``flush_interval_s``, so records reach the file at most about that long after they were
    written even if no more records come. Safe to call from several threads. Usable as a context
    manager; the file is also closed at interpreter exit.

    Args:
        path: The ``.jsonl`` file; its folder must exist.
        flush_interval_s: Seconds between background flushes (keep it ≤ 1 s for the crash guarantee).
    """

    def __init__(self, path: str | os.PathLike[str], *, flush_interval_s: float = 0.5) -> None:
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be > 0 s, got {flush_interval_s!r}")
        self.path = os.fspath(path)
        self.flush_interval_s = float(flush_interval_s)
        _drop_torn_tail(self.path)
        self._file = open(self.path, "a", encoding="utf-8", newline="\n", buffering=_BUFFER_BYTES)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._write = self._file.write
        self._thread = threading.Thread(
            target=_flush_loop,
            args=(self._file, self._lock, self._stop, self.flush_interval_s),
            name=f"vlab-log-flush:{os.path.basename(self.path)}",
            daemon=True,
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._file, self._lock, self._stop)

    def __call__(self, record: EventRecord) -> None:
        """Append one record (buffered; on disk within about ``flush_interval_s``).

        Raises:
            ValueError: If the writer is closed.
        """
        line = record_line(record)
        with self._lock:
            self._write(line)

    def write_many(self, records: list[EventRecord]) -> None:
        """Append several records under one lock acquisition."""
        text = "".join([record_line(r) for r in records])
        with self._lock:
            self._write(text)

    def flush(self) -> None:
        """Push buffered lines to the OS now."""
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        """Flush, stop the flusher thread and close the file. Calling it again does nothing."""
        if not self._finalizer.alive:
            return
        self._finalizer()  # flushes and closes under the lock, stops the thread
        if self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._file.closed

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"JsonlWriter({self.path!r}, flush_interval_s={self.flush_interval_s}, {state})"
