"""The record's one declaration reaches every form of the log: adding a field cannot be half-done."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.test_log_frames import WALL, check_schema, sample_records
from vlab.errors import ConfigError
from vlab.log import (
    EVENT_COLUMNS,
    EventLog,
    EventRecord,
    JsonlWriter,
    load_log,
    read_jsonl,
    to_frame,
    write_parquet,
)
from vlab.log.frames import PARQUET_SCHEMA
from vlab.log.records import FIELD_KINDS, RECORD_FIELDS, event_row, record_from_row
from vlab.log.writer import record_line

PYTHON_TYPES = {
    "int": {int},
    "wall_ns": {int},
    "key": {str},
    "nullable_int": {int, type(None)},
    "float": {float, type(None)},
    "str": {str, type(None)},
}
"""Python types a field of each kind may hold."""


def python_types(hint: object) -> set[type]:
    if typing.get_origin(hint) is typing.Literal:
        return {type(value) for value in typing.get_args(hint)}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set().union(*map(python_types, typing.get_args(hint)))
    assert isinstance(hint, type), hint
    return {hint}


def distinct_values() -> dict[str, object]:
    """A non-missing value for every declared field, each different from the others."""
    by_kind = {
        "int": lambda i: i,
        "wall_ns": lambda i: WALL + i,
        "key": lambda i: f"key{i}",
        "nullable_int": lambda i: 100 + i,
        "float": lambda i: i + 0.25,
        "str": lambda i: f"text{i} é\n",
    }
    return {name: by_kind[kind](i) for i, (name, kind) in enumerate(FIELD_KINDS.items())}


def column_of(name: str) -> str:
    return "wall_time" if FIELD_KINDS[name] == "wall_ns" else name


def test_every_field_is_declared_with_a_kind_that_fits_its_type_and_a_docstring():
    hints = typing.get_type_hints(EventRecord)
    assert tuple(hints) == RECORD_FIELDS == tuple(FIELD_KINDS)
    for name, kind in FIELD_KINDS.items():
        assert python_types(hints[name]) <= PYTHON_TYPES[kind], (name, kind)
        assert python_types(hints[name]) - {type(None)} == PYTHON_TYPES[kind] - {type(None)}, (name, kind)
    body = ast.parse(textwrap.dedent(inspect.getsource(EventRecord))).body[0].body
    documented = {
        statement.target.id
        for statement, after in zip(body, body[1:], strict=False)
        if isinstance(statement, ast.AnnAssign)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
    }
    assert documented == set(RECORD_FIELDS)


def test_every_declared_field_reaches_records_log_jsonl_frames_and_parquet(tmp_path):
    values = distinct_values()
    record = EventRecord(**values)
    assert dataclasses.asdict(record) == values
    assert record_from_row(tuple(values.values())) == record

    log = EventLog([record])
    assert log.columns() == {name: [value] for name, value in values.items()}
    assert log[0] == record

    assert json.loads(record_line(record)) == values  # same keys, same order, same values
    with JsonlWriter(tmp_path / "events.jsonl") as writer:
        writer(record)

    frame = to_frame([record])
    check_schema(frame)
    assert tuple(frame.columns) == tuple(map(column_of, RECORD_FIELDS))
    for name, value in values.items():
        expected = pd.Timestamp(value, unit="ns", tz="UTC") if FIELD_KINDS[name] == "wall_ns" else value
        assert frame[column_of(name)][0] == expected, name
    pd.testing.assert_frame_equal(log.frame(), frame)
    pd.testing.assert_frame_equal(read_jsonl(tmp_path / "events.jsonl"), frame)

    write_parquet([record], tmp_path / "events.parquet")
    assert pq.read_schema(tmp_path / "events.parquet").remove_metadata() == PARQUET_SCHEMA
    assert PARQUET_SCHEMA.names == list(EVENT_COLUMNS)
    pd.testing.assert_frame_equal(load_log(tmp_path / "events.parquet"), frame)


def test_event_row_fills_every_field_in_declared_order():
    row = event_row(
        {
            "type": "response.function_call_arguments.done",
            "event_id": "ev",
            "response_id": "resp",
            "item_id": "item",
            "output_index": 2,
            "content_index": 3,
            "call_id": "call",
            "arguments": "{}",
            "audio_start_ms": 10,
            "audio_end_ms": 20,
            "error": {"code": "c", "message": "m"},
            "x_vlab_sim_ms": 30,
        },
        direction="server",
        seq=1,
        t_ns=2,
        wall_ns=3,
    )
    record = record_from_row(row)
    assert dict(zip(RECORD_FIELDS, row, strict=True)) == dataclasses.asdict(record)
    assert (record.seq, record.t_ns, record.wall_ns, record.sim_ms) == (1, 2, 3, 30.0)
    assert (record.direction, record.type, record.event_id) == (
        "server",
        "response.function_call_arguments.done",
        "ev",
    )
    assert (record.response_id, record.item_id, record.call_id) == ("resp", "item", "call")
    assert (record.output_index, record.content_index) == (2, 3)
    assert (record.audio_start_ms, record.audio_end_ms, record.text) == (10.0, 20.0, "{}")
    assert (record.error_code, record.error_message) == ("c", "m")
    for name, kind in FIELD_KINDS.items():
        if name not in ("audio_bytes", "audio_ms"):  # only audio events carry audio
            value = getattr(record, name)
            assert type(value) in PYTHON_TYPES[kind] - {type(None)}, name


def old_frame():
    """An event frame as written before ``sim_ms`` was declared."""
    return to_frame(sample_records()).drop(columns=["sim_ms"])


def test_a_parquet_log_without_a_later_field_loads_with_that_column_missing(tmp_path):
    pq.write_table(pa.Table.from_pandas(old_frame(), preserve_index=False), tmp_path / "events.parquet")
    frame = load_log(tmp_path)
    check_schema(frame)
    assert frame.sim_ms.isna().all() and len(frame) == len(sample_records())
    pd.testing.assert_frame_equal(frame.drop(columns=["sim_ms"]), old_frame())


def test_a_jsonl_log_without_a_later_field_loads_with_that_column_missing(tmp_path):
    lines = []
    for record in sample_records():
        line = json.loads(record_line(record))
        del line["sim_ms"]
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    frame = load_log(tmp_path)
    check_schema(frame)
    assert np.isnan(frame.sim_ms).all()
    pd.testing.assert_frame_equal(frame.drop(columns=["sim_ms"]), old_frame())
    path.write_text("".join(lines) + lines[0][:40], encoding="utf-8")  # the slow path: a torn last line
    pd.testing.assert_frame_equal(read_jsonl(path), frame)


def test_a_parquet_log_without_a_required_column_is_an_error(tmp_path):
    table = pa.Table.from_pandas(old_frame().drop(columns=["type"]), preserve_index=False)
    pq.write_table(table, tmp_path / "events.parquet")
    with pytest.raises(ConfigError, match=r"lacks columns \['type'\]"):
        load_log(tmp_path)
