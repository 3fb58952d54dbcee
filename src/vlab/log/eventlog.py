"""The in-memory event log of a session, kept column by column as it is recorded.

:class:`EventLog` reads like a list of :class:`~vlab.log.EventRecord` but stores one Python list per
record field (:data:`~vlab.log.records.RECORD_FIELDS`), so :meth:`EventLog.frame` starts from ready
columns instead of pulling every attribute out of every record (which costs more than building the
frame itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, overload

from vlab.log.records import RECORD_FIELDS, EventRecord, _build

if TYPE_CHECKING:
    import pandas as pd

_N_FIELDS = len(RECORD_FIELDS)
_record_values = attrgetter(*RECORD_FIELDS)
_append = list.append


class EventLog(Sequence[EventRecord]):
    """The records of a session in log order, stored as one list per field of :class:`EventRecord`.

    Reads like a list: ``len``, indexing (negative too), slices (a ``list`` of records), iteration,
    ``reversed``, ``in`` and ``==`` with another log or a list of records. Records are built from the
    columns when read, so two reads give equal records, not the same object.

    Why no record objects are kept (measured with Python 3.11 on the 2-core benchmark VM): appending a
    row to the columns costs ≈ 0.75 µs, keeping the record as well ≈ 3.4 µs (building it ≈ 1.2 µs,
    plus the garbage collector's work on one more tracked object per event), and the columns alone
    take ≈ 165 bytes per record against ≈ 355 with the records (the values are shared either way).
    The session builds a record only for its sinks. Reading builds the record again (≈ 1.3 µs per
    record when iterating, ≈ 2 µs by index): small for the few records code looks at; bulk analysis
    goes through :meth:`frame`.

    Not thread-safe: append from one thread (the session's event loop) and read from that thread.

    Args:
        records: Initial records, in log order.
    """

    __slots__ = ("_columns",)

    def __init__(self, records: Iterable[EventRecord] = ()) -> None:
        self._columns: tuple[list[Any], ...] = tuple([] for _ in RECORD_FIELDS)
        for record in records:
            self.append(record)

    def append(self, record: EventRecord) -> None:
        """Add a record at the end."""
        self.append_row(_record_values(record))

    def append_row(self, row: Sequence[Any]) -> None:
        """Add a record given as its values in ``RECORD_FIELDS`` order, as from :func:`~vlab.log.records.event_row`.

        The session's hot path: the values go straight into the columns; no record object is built.

        Raises:
            ValueError: ``row`` does not have one value per record field.
        """
        if len(row) != _N_FIELDS:
            raise ValueError(f"a row has {_N_FIELDS} values (RECORD_FIELDS), got {len(row)}")
        list(map(_append, self._columns, row))

    def columns(self) -> dict[str, list[Any]]:
        """The columns by field name (``RECORD_FIELDS`` order): the log's own lists, not copies."""
        return dict(zip(RECORD_FIELDS, self._columns, strict=True))

    def frame(self) -> pd.DataFrame:
        """The log as an event frame, built from the columns (same frame as :func:`~vlab.log.to_frame`)."""
        from vlab.log.frames import to_frame

        return to_frame(self)

    def __len__(self) -> int:
        return len(self._columns[0])

    @overload
    def __getitem__(self, index: int) -> EventRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[EventRecord]: ...

    def __getitem__(self, index: int | slice) -> EventRecord | list[EventRecord]:
        if isinstance(index, slice):
            return list(map(_build, *[column[index] for column in self._columns]))
        try:
            return _build(*[column[index] for column in self._columns])
        except IndexError:
            raise IndexError("EventLog index out of range") from None

    def __iter__(self) -> Iterator[EventRecord]:
        return map(_build, *self._columns)

    def __reversed__(self) -> Iterator[EventRecord]:
        return map(_build, *map(reversed, self._columns))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventLog):
            return self._columns == other._columns
        if isinstance(other, (list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"EventLog({len(self)} records)"
