"""Append event records to a JSON-lines file that survives a crash of the writing process.

:class:`JsonlWriter` buffers lines in Python (no per-record flush, so it keeps up with hundreds of
thousands of records a second) and hands them to the operating system once the oldest buffered line
has waited ``flush_interval_s`` on the writer's clock; a daemon thread watches that deadline, so lines
reach the file even if no more records come. If the process is killed, at most about one flush interval
of records is lost and the file may end in a torn line, which :func:`vlab.log.read_jsonl` skips.
Flushing hands the data to the OS; it does not ``fsync``, so it survives a killed process, not a power
cut.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Callable
from json.encoder import encode_basestring
from operator import attrgetter
from typing import IO, Any

from vlab.clock import Clock, SystemClock
from vlab.errors import ConfigError
from vlab.log.records import FIELD_KINDS, RECORD_FIELDS, EventRecord, FieldKind

_BUFFER_BYTES = 1 << 20
"""Python-side write buffer in bytes; the flush deadline, not the buffer size, bounds the data at risk."""

_MIN_WAIT_S = 0.001
"""Shortest sleep of the flusher thread, so a clock that stands still (a test's) cannot make it spin."""

_record_values = attrgetter(*RECORD_FIELDS)
_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=True
).encode


def _generic_line(record: EventRecord) -> str:
    return _encode(dict(zip(RECORD_FIELDS, _record_values(record), strict=True))) + "\n"


_VALUE_CODE: dict[FieldKind, str] = {
    "int": "_int({v})",
    "wall_ns": "_int({v})",
    "key": "_esc({v})",
    "nullable_int": '"null" if {v} is None else _int({v})',
    "float": '"null" if {v} is None or {v} - {v} else _float({v})',  # v - v is NaN (true) for NaN and ±inf
    "str": '"null" if {v} is None else _esc({v})',
}
"""JSON text of a value of each field kind, as a Python expression of the value ``{v}``. ``_int`` and
``_float`` (the ``repr`` of ``int`` and ``float``, which is what ``json`` writes) raise ``TypeError`` for
a value of another type; ``_esc`` quotes and escapes a ``str`` (C code, non-ASCII kept)."""


def _make_format_values() -> Callable[..., str]:
    """Make ``_format_values(*values)``: the JSONL line of one value per field, in :data:`RECORD_FIELDS` order.

    Generated from the record's declaration: a constant template holds the keys, and each value is
    encoded by its field kind (:data:`_VALUE_CODE`), inline, with no per-field call or loop.
    """
    template = "{" + ",".join(f'"{name}":%s' for name in RECORD_FIELDS) + "}\n"
    values = [f"v{i}" for i in range(len(RECORD_FIELDS))]
    parts = "".join(
        f"        {_VALUE_CODE[kind].format(v=v)},\n"
        for v, kind in zip(values, FIELD_KINDS.values(), strict=True)
    )
    code = f"def _format_values({', '.join(values)}):\n    return _TEMPLATE % (\n{parts}    )\n"
    namespace: dict[str, Any] = {
        "_TEMPLATE": template,
        "_int": int.__repr__,  # decimal text of an int (True → "1"); raises TypeError on non-ints
        "_float": float.__repr__,
        "_esc": encode_basestring,
    }
    exec(code, namespace)
    format_values: Callable[..., str] = namespace["_format_values"]
    return format_values


_format_values = _make_format_values()


def record_line(record: EventRecord) -> str:
    """One JSONL line (with its newline) for a record: an object keyed by the record's field names.

    Equivalent to ``json.dumps(dict(...), ensure_ascii=False, separators=(",", ":"))`` but more than
    twice as fast: the keys are a constant template and each value is encoded according to its field
    kind. Non-finite floats are written as ``null``. A record holding unexpected types (e.g. an ``int``
    in a float field) takes the generic path.
    """
    try:
        return _format_values(*_record_values(record))
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


class _Buffer:
    """The state a writer shares with its flusher thread (which must not keep the writer alive)."""

    __slots__ = ("clock", "due_ns", "file", "interval_ns", "lock", "stop")

    def __init__(self, file: IO[str], clock: Clock, interval_ns: int) -> None:
        self.file = file
        self.clock = clock
        self.interval_ns = interval_ns
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.due_ns: int | None = None
        """Clock time by which the buffered lines must reach the OS; ``None`` when none are buffered."""

    def flush_if_due(self, now_ns: int) -> int | None:
        """Flush if the buffered lines are due at ``now_ns``; returns the next due time, if any."""
        with self.lock:
            due_ns = self.due_ns
            if due_ns is not None and now_ns >= due_ns:
                if not self.file.closed:
                    self.file.flush()
                self.due_ns = due_ns = None
            return due_ns

    def close(self) -> None:
        """Stop the flusher and close the file (also run at interpreter exit and on garbage collection)."""
        self.stop.set()
        with self.lock:
            if not self.file.closed:
                self.file.close()
            self.due_ns = None


def _flush_loop(buffer: _Buffer) -> None:
    """Body of the flusher thread: flush the buffered lines when they are due on the writer's clock.

    Each round reads the clock once, flushes if the oldest buffered line is due, then sleeps until it
    is due (on the system clock that is the real wait) but never longer than the flush interval, so on
    a clock that does not follow real time (a test's, which only moves when told) the thread still
    looks at least that often.
    """
    clock, stop, interval_ns = buffer.clock, buffer.stop, buffer.interval_ns
    while not stop.is_set():
        now_ns = clock.monotonic_ns()
        due_ns = buffer.flush_if_due(now_ns)
        wait_ns = interval_ns if due_ns is None else min(interval_ns, due_ns - now_ns)
        if stop.wait(max(wait_ns / 1e9, _MIN_WAIT_S)):
            return


class JsonlWriter:
    """A :class:`~vlab.log.Sink` that appends each record as one JSON line to a file.

    Each line is an object with the :class:`~vlab.log.EventRecord` field names as keys (``wall_ns``
    stays an integer). The file is opened in append mode, so a resumed run adds to it; a torn last
    line left by a crash is cut off first. Writes are buffered; once the oldest buffered line has
    waited ``flush_interval_s`` on ``clock``, a daemon thread hands the buffer to the OS, so records
    reach the file within about that time even if no more records come. Safe to call from several
    threads. Usable as a context manager; the file is also closed at interpreter exit.

    Args:
        path: The ``.jsonl`` file; its folder must exist.
        flush_interval_s: Longest time in seconds a line waits in the buffer (keep it ≤ 1 s, so a crash
            loses at most the last second).
        clock: What the interval is measured on; the system clock by default. With a clock that only
            moves when told (:class:`~vlab.clock.ManualClock`), lines are flushed once the clock has
            been moved past their deadline (the thread looks at least every ``flush_interval_s`` of
            real time), or by :meth:`flush` / :meth:`close`.

    Raises:
        ConfigError: If ``flush_interval_s`` is not positive.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, flush_interval_s: float = 0.5, clock: Clock | None = None
    ) -> None:
        if not flush_interval_s > 0:
            raise ConfigError(
                f"flush_interval_s must be > 0 s, got {flush_interval_s!r}; the default 0.5 s bounds what a "
                "crash can lose"
            )
        self.path = os.fspath(path)
        self.flush_interval_s = float(flush_interval_s)
        self._clock = SystemClock() if clock is None else clock
        _drop_torn_tail(self.path)
        file = open(self.path, "a", encoding="utf-8", newline="\n", buffering=_BUFFER_BYTES)
        self._buffer = _Buffer(file, self._clock, round(self.flush_interval_s * 1e9))
        self._file = file
        self._lock = self._buffer.lock
        self._write = file.write
        self._thread = threading.Thread(
            target=_flush_loop,
            args=(self._buffer,),
            name=f"vlab-log-flush:{os.path.basename(self.path)}",
            daemon=True,
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, self._buffer.close)

    def __call__(self, record: EventRecord) -> None:
        """Append one record (buffered; handed to the OS within ``flush_interval_s`` on the clock).

        Raises:
            ValueError: If the writer is closed.
        """
        line = record_line(record)
        buffer = self._buffer
        with self._lock:
            self._write(line)
            if buffer.due_ns is None:
                buffer.due_ns = self._clock.monotonic_ns() + buffer.interval_ns

    def flush(self) -> None:
        """Push buffered lines to the OS now."""
        with self._lock:
            if not self._file.closed:
                self._file.flush()
            self._buffer.due_ns = None

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
