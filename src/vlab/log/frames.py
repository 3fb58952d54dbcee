"""Event logs as pandas DataFrames: build, read JSONL, write and read Parquet.

Every frame has the columns :data:`EVENT_COLUMNS`, in that order: one per field of
:class:`~vlab.log.EventRecord`, typed by the field's kind (the table at
:data:`~vlab.log.records.FieldKind`): ``int64``; nullable ``Int64``; ``float64`` (missing is NaN);
``string`` (:class:`pandas.StringDtype`, missing values are ``pd.NA``); and ``datetime64[ns, UTC]`` for
the wall-clock stamp, whose column ``wall_time`` replaces the record's ``wall_ns``. This module names no
field: the columns, their dtypes, the types the JSONL reader expects and the Parquet schema
(:data:`PARQUET_SCHEMA`) all follow the record's declaration.

``direction`` and ``type`` are plain strings rather than categoricals: categories would differ from
one log to the next, which makes concatenated frames fall back to ``object`` and breaks exact Parquet
round trips; filter with ``frame[frame.type == "response.done"]`` as usual. An empty log gives an empty
frame with the same columns and dtypes. A log written before a field was declared loads with that
column all missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa

from vlab.errors import ConfigError, warn_user
from vlab.log.files import JSONL_NAME, PARQUET_NAME, is_run_folder
from vlab.log.records import FIELD_KINDS, RECORD_FIELDS, EventRecord, FieldKind


@runtime_checkable
class ColumnarLog(Protocol):
    """A log kept as one list per record field (:class:`~vlab.log.EventLog`), read without records."""

    def __len__(self) -> int: ...

    def columns(self) -> dict[str, list[Any]]:
        """The columns by field name, in ``RECORD_FIELDS`` order."""
        ...


def _column_name(field: str, kind: FieldKind) -> str:
    """The frame column of a record field: ``wall_ns`` fields become ``<name>_time`` timestamps."""
    return field.removesuffix("_ns") + "_time" if kind == "wall_ns" else field


_LAYOUT: tuple[tuple[str, str, FieldKind], ...] = tuple(
    (_column_name(field, kind), field, kind) for field, kind in FIELD_KINDS.items()
)
"""(frame column, record field, kind) for every field, in order."""

EVENT_COLUMNS: tuple[str, ...] = tuple(column for column, _, _ in _LAYOUT)
"""Columns of an event frame, in order (``wall_time`` replaces the record's ``wall_ns``)."""


_REQUIRED_KINDS = frozenset({"int", "wall_ns", "key"})
_REQUIRED_KEYS = tuple(field for _, field, kind in _LAYOUT if kind in _REQUIRED_KINDS)
"""Record fields a JSONL line must have to be a record."""
_STRING_DTYPE = pd.StringDtype()
_INT64_MAPPER = {pa.int64(): pd.Int64Dtype()}.get
_WALL_DTYPE = pd.DatetimeTZDtype("ns", "UTC")
_KIND_DTYPES: dict[FieldKind, Any] = {
    "int": np.dtype("int64"),
    "wall_ns": _WALL_DTYPE,
    "key": _STRING_DTYPE,
    "nullable_int": pd.Int64Dtype(),
    "float": np.dtype("float64"),
    "str": _STRING_DTYPE,
}
_DTYPES: dict[str, Any] = {column: _KIND_DTYPES[kind] for column, _, kind in _LAYOUT}
"""dtype of every frame column."""
_KIND_ARROW: dict[FieldKind, pa.DataType] = {
    "int": pa.int64(),
    "wall_ns": pa.int64(),
    "key": pa.large_string(),
    "nullable_int": pa.int64(),
    "float": pa.float64(),
    "str": pa.large_string(),
}
_JSONL_SCHEMA = pa.schema([(field, _KIND_ARROW[kind]) for _, field, kind in _LAYOUT])
"""Arrow types of the record fields in a JSONL line."""
PARQUET_SCHEMA: pa.Schema = pa.schema(
    [
        (column, pa.timestamp("ns", tz="UTC") if kind == "wall_ns" else _KIND_ARROW[kind])
        for column, _, kind in _LAYOUT
    ]
)
"""Arrow schema of ``events.parquet``: the frame's columns, in order."""
_GETTERS = {name: attrgetter(name) for name in RECORD_FIELDS}


_ARROW = (pa.Array, pa.ChunkedArray)


def _ints(values: Any) -> Any:
    if isinstance(values, _ARROW):
        return values.to_numpy()
    return np.asarray(values, dtype=np.int64)


def _nullable_ints(values: Any) -> Any:
    try:
        arrow = (
            values if isinstance(values, _ARROW) else pa.array(values, type=pa.int64())
        )  # fast path: only int and None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.array(list(values), dtype=pd.Int64Dtype())  # e.g. 1.0 from a hand-edited file
    return arrow.to_pandas(types_mapper=_INT64_MAPPER).array


def _floats(values: Any) -> Any:
    try:
        arrow = (
            values if isinstance(values, _ARROW) else pa.array(values, type=pa.float64())
        )  # fast path: only numbers and None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return np.asarray(values, dtype=np.float64)
    return arrow.to_numpy(zero_copy_only=False)  # nulls become NaN


def _strings(values: Any) -> Any:
    try:
        arrow = (
            values if isinstance(values, _ARROW) else pa.array(values, type=pa.large_string())
        )  # fast path: only str and None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.array(
            [v if v is None or isinstance(v, str) else str(v) for v in values], dtype=_STRING_DTYPE
        )
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    return pd.array(arrow, dtype=_STRING_DTYPE)


def _wall_times(values: Any) -> Any:
    return pd.DatetimeIndex(_ints(values).view("M8[ns]")).tz_localize("UTC")


_CONVERTERS: dict[FieldKind, Callable[[Any], Any]] = {
    "int": _ints,
    "wall_ns": _wall_times,
    "key": _strings,
    "nullable_int": _nullable_ints,
    "float": _floats,
    "str": _strings,
}
"""Typed column (numpy array, pandas array or index) from a list or Arrow array of a field's values."""


def _frame_from_columns(columns: Mapping[str, Any], n: int) -> pd.DataFrame:
    """Build the typed frame from one list or Arrow array per record field (``wall_ns`` included)."""
    data = {column: _CONVERTERS[kind](columns[field]) for column, field, kind in _LAYOUT}
    return pd.DataFrame(data, index=pd.RangeIndex(n), copy=False)


def empty_frame() -> pd.DataFrame:
    """An event frame with no rows, with the usual columns and dtypes."""
    return _frame_from_columns({name: [] for name in RECORD_FIELDS}, 0)


def to_frame(records: Iterable[EventRecord]) -> pd.DataFrame:
    """Build an event frame from records, column by column.

    Args:
        records: Records in log order (any iterable; it is consumed once). An
            :class:`~vlab.log.EventLog` is read from its columns, without touching record objects.

    Returns:
        A frame with :data:`EVENT_COLUMNS` and the dtypes described in this module's docstring.
    """
    if isinstance(records, ColumnarLog) and callable(records.columns):
        n = len(records)
        return _frame_from_columns(records.columns(), n) if n else empty_frame()
    if not isinstance(records, Sequence):
        records = list(records)
    if not records:
        return empty_frame()
    # One pass per field (C-level attribute getters) beats transposing row tuples by a factor of 4.
    columns = {name: list(map(getter, records)) for name, getter in _GETTERS.items()}
    return _frame_from_columns(columns, len(records))


def _coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """Bring a frame read back from Parquet to the exact column order and dtypes.

    An optional column the frame lacks (a log written before its field was declared) is added, all
    missing; a lacking required column is an error.
    """
    missing = [
        column for column, _, kind in _LAYOUT if column not in frame.columns and kind in _REQUIRED_KINDS
    ]
    if missing:
        raise ConfigError(f"event frame lacks columns {missing}; expected {list(EVENT_COLUMNS)}")
    absent = {
        column: _CONVERTERS[kind]([None] * len(frame))
        for column, _, kind in _LAYOUT
        if column not in frame.columns
    }
    if absent:
        frame = frame.assign(**absent)
    frame = frame.loc[:, list(EVENT_COLUMNS)]
    for name, dtype in _DTYPES.items():
        if frame[name].dtype != dtype:
            frame[name] = frame[name].astype(dtype)
    return frame.reset_index(drop=True)


def _read_complete_lines_arrow(data: bytes) -> pd.DataFrame | None:
    """Parse newline-terminated JSONL with Arrow's C++ reader; ``None`` if any line does not fit."""
    import pyarrow.json as pa_json

    try:
        table = pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(use_threads=True, block_size=16 << 20),
            parse_options=pa_json.ParseOptions(
                explicit_schema=_JSONL_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if any(table[name].null_count for name in _REQUIRED_KEYS):
        return None
    columns = {name: table[name] for name in RECORD_FIELDS}
    return _frame_from_columns(columns, table.num_rows)


def read_jsonl(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a JSONL event log written by :class:`~vlab.log.JsonlWriter`.

    A last line without its newline that is not valid JSON (a writer killed mid-line) is skipped
    silently. Any other line that is not a JSON record is skipped with one
    :class:`~vlab.errors.VlabWarning` naming the file and the line numbers (1-based).

    Args:
        path: The ``.jsonl`` file.

    Returns:
        The event frame (empty, with the usual columns, for an empty file).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        return empty_frame()
    # Fast path: every complete line is a well-formed record (the normal case). Otherwise parse line by
    # line in Python to skip and report the corrupt ones.
    end = data.rfind(b"\n") + 1
    torn = data[end:]
    if end and (not torn.strip() or _is_partial(torn)):
        frame = _read_complete_lines_arrow(data[:end])
        if frame is not None:
            return frame
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    columns: dict[str, list[Any]] = {name: [] for name in RECORD_FIELDS}
    appenders = [(name, columns[name].append) for name in RECORD_FIELDS]
    bad: list[int] = []
    loads = json.loads

    def add(raw: bytes, number: int, *, silent: bool) -> None:
        try:
            obj = loads(raw)
            if not isinstance(obj, dict) or any(obj.get(k) is None for k in _REQUIRED_KEYS):
                raise ValueError("not an event record")
        except ValueError:
            if not silent:
                bad.append(number)
            return
        get = obj.get
        for name, append in appenders:
            append(get(name))

    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            add(raw, number, silent=False)
    if torn.strip():
        add(torn, len(lines) + 1, silent=True)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        warn_user(f"{path}: skipped {len(bad)} corrupt line(s) that are not event records: line {shown}")
    n = len(columns["seq"])
    if n == 0:
        return empty_frame()
    try:
        return _frame_from_columns(columns, n)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{path}: event log has values of the wrong type ({exc})") from exc


def _is_partial(tail: bytes) -> bool:
    """Whether the bytes after the last newline are a torn line (not parseable JSON)."""
    try:
        json.loads(tail)
    except ValueError:
        return True
    return False


def write_parquet(
    frame_or_records: pd.DataFrame | Iterable[EventRecord], path: str | os.PathLike[str]
) -> None:
    """Write an event log to Parquet atomically (temporary file, then :func:`os.replace`).

    Args:
        frame_or_records: An event frame (as from :func:`to_frame`) or the records themselves (an
            :class:`~vlab.log.EventLog` is written from its columns).
        path: The ``.parquet`` file; its folder must exist. Readers never see a half-written file.
    """
    import pyarrow.parquet as pq

    frame = frame_or_records if isinstance(frame_or_records, pd.DataFrame) else to_frame(frame_or_records)
    frame = _coerce(frame)
    table = pa.Table.from_pandas(frame, schema=PARQUET_SCHEMA, preserve_index=False)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read an event log written by :func:`write_parquet`, with the exact columns and dtypes."""
    return _coerce(pd.read_parquet(path))


def load_log(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Load the event log of a run folder.

    Reads ``events.parquet`` when it is at least as new as ``events.jsonl`` (or the only one),
    otherwise ``events.jsonl`` (which is written live, so it is newer after a crash or while a
    session runs). A path to a ``.jsonl`` or ``.parquet`` file is also accepted and read directly.

    Args:
        run_dir: The run folder (or one log file).

    Returns:
        The event frame.

    Raises:
        ConfigError: If the folder does not exist or holds neither log file, or the file is not a log.
    """
    path = Path(run_dir)
    if path.is_file():
        if path.suffix == ".parquet":
            return read_parquet(path)
        if path.suffix == ".jsonl":
            return read_jsonl(path)
        raise ConfigError(
            f"{str(path)!r} is not an event log ({JSONL_NAME} or {PARQUET_NAME}); pass the run folder "
            f"({str(path.parent)!r}) or one of its log files"
        )
    if not path.is_dir():
        raise ConfigError(
            f"run folder {str(path)!r} does not exist; pass the folder of a recorded session, which "
            f"holds {PARQUET_NAME} and/or {JSONL_NAME}"
        )
    parquet, jsonl = path / PARQUET_NAME, path / JSONL_NAME
    has_parquet, has_jsonl = parquet.is_file(), jsonl.is_file()
    if has_parquet and (not has_jsonl or parquet.stat().st_mtime_ns >= jsonl.stat().st_mtime_ns):
        return read_parquet(parquet)
    if has_jsonl:
        return read_jsonl(jsonl)
    below = sorted(p for pattern in ("*", "*/*") for p in path.glob(pattern) if is_run_folder(p))
    if below:  # a sweep folder, or a folder of runs
        raise ConfigError(
            f"{str(path)!r} holds no event log of its own; {len(below)} run folder(s) under it do, e.g. "
            f"{str(below[0])!r}: pass one of them (vlab.load_sweep reads a sweep folder's tables)"
        )
    raise ConfigError(
        f"run folder {str(path)!r} holds no event log: expected {PARQUET_NAME} or {JSONL_NAME} in it"
    )
