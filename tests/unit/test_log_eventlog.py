from __future__ import annotations

import dataclasses
import enum
import json
import math

import pandas as pd
import pytest

from tests.unit.test_log_frames import WALL, check_schema, sample_records
from vlab.log import EventLog, EventRecord, read_jsonl, record_from_event, to_frame, write_parquet
from vlab.log.frames import empty_frame, read_parquet
from vlab.log.records import RECORD_FIELDS, _default, event_row, record_from_row


def make_log(records):
    log = EventLog()
    for r in records:
        log.append_row(dataclasses.astuple(r))
    return log


def test_frame_equals_to_frame_of_the_same_records():
    records = sample_records()
    log = make_log(records)
    pd.testing.assert_frame_equal(log.frame(), to_frame(records))
    pd.testing.assert_frame_equal(to_frame(log), to_frame(records))
    check_schema(log.frame())


def test_every_column_has_its_dtype_also_with_all_values_missing():
    # a log whose optional columns are all None still gets the documented dtypes
    log = EventLog([record_from_event({"type": "x"}, direction="local", seq=0, t_ns=1, wall_ns=WALL)])
    frame = log.frame()
    check_schema(frame)
    assert frame.loc[0, "audio_bytes"] is pd.NA and math.isnan(frame.loc[0, "audio_ms"])
    assert frame.loc[0, "event_id"] is pd.NA


def test_reads_like_a_list_of_records():
    records = sample_records()
    log = EventLog(records)
    assert len(log) == len(records) and bool(log)
    assert log[0] == records[0] and log[-1] == records[-1] and log[-len(records)] == records[0]
    assert isinstance(log[2], EventRecord)
    assert log[1:4] == records[1:4] and isinstance(log[1:4], list)
    assert log[::-2] == records[::-2] and log[10:] == [] and log[-3:] == records[-3:]
    assert list(log) == records and list(reversed(log)) == records[::-1]
    assert records[3] in log and log.index(records[3]) == 3 and log.count(records[3]) == 1
    assert [r.type for r in log if r.direction == "client"] == ["input_audio_buffer.append"]
    with pytest.raises(IndexError):
        log[len(records)]
    with pytest.raises(IndexError):
        log[-len(records) - 1]


def test_equality_with_lists_tuples_and_logs():
    records = sample_records()
    log = EventLog(records)
    assert log == records and log == tuple(records) and log == EventLog(records)
    assert log != records[:-1] and log != EventLog(records[:-1]) and log != "records"
    assert log != [records[-1], *records[:-1]]  # the same length, not the same records in order
    assert log[0] == log[0] and log[0] is not log[0]  # rebuilt from the columns on each read
    with pytest.raises(TypeError):
        hash(log)


def test_empty_log():
    log = EventLog()
    assert len(log) == 0 and not log and list(log) == [] and log == [] and log[:] == []
    assert repr(log) == "EventLog(0 records)"
    with pytest.raises(IndexError):
        log[0]
    frame = log.frame()
    check_schema(frame)
    pd.testing.assert_frame_equal(frame, empty_frame())


def test_append_and_append_row_keep_columns_in_field_order():
    records = sample_records()
    log = EventLog()
    log.append(records[0])
    log.append_row(dataclasses.astuple(records[1]))
    columns = log.columns()
    assert tuple(columns) == RECORD_FIELDS
    assert columns["seq"] == [0, 1] and columns["direction"] == ["server", "client"]
    with pytest.raises(ValueError, match=f"{len(RECORD_FIELDS)} values"):
        log.append_row((1, 2, 3))
    assert len(log) == 2  # the bad row left the columns alone


def test_event_row_matches_record_from_event():
    for r in sample_records():
        event = json.loads(r.payload)
        kwargs = dict(
            direction=r.direction, seq=r.seq, t_ns=r.t_ns, wall_ns=r.wall_ns, audio_bytes_per_s=48_000
        )
        row = event_row(event, **kwargs)
        assert len(row) == len(RECORD_FIELDS)
        assert record_from_row(row) == record_from_event(event, **kwargs)


class Voice(str, enum.Enum):
    ALLOY = "alloy"


def test_payload_text_is_what_json_dumps_gives():
    # the record encoder is built once; it must write exactly what the standard encoder writes
    event = {
        "type": "session.updated",
        "session": {"voice": Voice.ALLOY, "temperature": 0.8, "nan": math.nan, "inf": -math.inf},
        "text": 'Ünï "côdé" \u2028 \x00 😀',
        "ids": ("a", "b"),
        "raw": b"\x00\x01",
        "n": [1, 2.5, None, True],
    }
    expected = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=_default)
    r = record_from_event(event, direction="server", seq=0, t_ns=0, wall_ns=0)
    assert r.payload == expected


def test_write_parquet_and_jsonl_from_a_log(tmp_path):
    records = sample_records()
    log = EventLog(records)
    write_parquet(log, tmp_path / "events.parquet")
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "events.parquet"), to_frame(records))
    from vlab.log.writer import record_line

    (tmp_path / "events.jsonl").write_text("".join(map(record_line, log)), encoding="utf-8")
    pd.testing.assert_frame_equal(read_jsonl(tmp_path / "events.jsonl"), log.frame())
