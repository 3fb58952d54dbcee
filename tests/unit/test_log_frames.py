from __future__ import annotations

import base64
import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from vlab.errors import ConfigError, VlabWarning
from vlab.log import (
    EVENT_COLUMNS,
    JsonlWriter,
    load_log,
    read_jsonl,
    record_from_event,
    to_frame,
    write_parquet,
)
from vlab.log.records import FIELD_KINDS
from vlab.log.writer import record_line
from vlab.protocol import SIM_MS_KEY

WALL = 1_750_000_000 * 10**9
B64 = base64.b64encode(bytes(960)).decode()

KIND_DTYPES = {
    "int": "int64",
    "wall_ns": "datetime64[ns, UTC]",
    "nullable_int": "Int64",
    "float": "float64",
    "key": "string",
    "str": "string",
}
"""The documented frame dtype of each field kind."""

DOCUMENTED_COLUMNS = (
    "seq",
    "t_ns",
    "wall_time",
    "sim_ms",
    "direction",
    "type",
    "event_id",
    "response_id",
    "item_id",
    "output_index",
    "content_index",
    "call_id",
    "audio_bytes",
    "audio_ms",
    "audio_start_ms",
    "audio_end_ms",
    "text",
    "error_code",
    "error_message",
    "payload",
)
"""Columns the docs promise, in order (a field added later may come anywhere among them)."""


def sample_records():
    events = [
        ("server", {"type": "session.created", "event_id": "e0", "session": {"id": "s"}}),
        ("client", {"type": "input_audio_buffer.append", "audio": B64}),
        (
            "server",
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": 300,
                "item_id": "it1",
                SIM_MS_KEY: 300.0,
            },
        ),
        ("server", {"type": "response.created", "response": {"id": "resp_1"}}),
        (
            "server",
            {
                "type": "response.audio.delta",
                "response_id": "resp_1",
                "item_id": "it2",
                "output_index": 0,
                "content_index": 0,
                "delta": B64,
            },
        ),
        (
            "server",
            {"type": "response.audio_transcript.delta", "response_id": "resp_1", "delta": 'Hé "llo"\n'},
        ),
        ("server", {"type": "error", "error": {"code": "x", "message": "boom"}}),
    ]
    return [
        record_from_event(
            e,
            direction=d,
            seq=i,
            t_ns=10_000 + i,
            wall_ns=WALL + i * 1_000_000,
            audio_bytes_per_s=48_000,
            input_offset_ms=0.0 if d == "client" else None,
        )
        for i, (d, e) in enumerate(events)
    ]


def check_schema(frame):
    assert tuple(frame.columns) == EVENT_COLUMNS
    assert [c for c in EVENT_COLUMNS if c in DOCUMENTED_COLUMNS] == list(DOCUMENTED_COLUMNS)
    columns = ["wall_time" if name == "wall_ns" else name for name in FIELD_KINDS]
    assert columns == list(EVENT_COLUMNS)
    for name, kind in zip(columns, FIELD_KINDS.values(), strict=True):
        if KIND_DTYPES[kind] == "string":
            assert frame[name].dtype == pd.StringDtype(), name
        else:
            assert str(frame[name].dtype) == KIND_DTYPES[kind], name


def test_to_frame_columns_dtypes_values():
    frame = to_frame(sample_records())
    check_schema(frame)
    assert len(frame) == 7 and frame.index.equals(pd.RangeIndex(7))
    assert frame.wall_time[0] == pd.Timestamp(WALL, unit="ns", tz="UTC")
    assert frame.audio_bytes.tolist()[:2] == [pd.NA, 960]
    assert frame.audio_ms[1] == pytest.approx(20.0) and np.isnan(frame.audio_ms[0])
    assert frame.audio_end_ms[1] == pytest.approx(20.0)
    assert frame.response_id[3] == "resp_1" and frame.response_id[0] is pd.NA
    assert frame.text[5] == 'Hé "llo"\n'
    assert frame.error_code[6] == "x"
    assert frame.sim_ms[2] == 300.0 and frame.sim_ms.isna().sum() == 6
    assert not frame.payload.str.contains(B64, regex=False).any()
    assert not frame.payload.str.contains(SIM_MS_KEY, regex=False).any()


def test_to_frame_accepts_generators_and_empty():
    assert len(to_frame(r for r in sample_records())) == 7
    empty = to_frame([])
    assert len(empty) == 0
    check_schema(empty)
    pd.testing.assert_frame_equal(empty, to_frame(iter(())))


def test_parquet_round_trip(tmp_path):
    frame = to_frame(sample_records())
    path = tmp_path / "events.parquet"
    write_parquet(frame, path)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    pd.testing.assert_frame_equal(load_log(path), frame)
    write_parquet(sample_records(), path)  # records too; replaces atomically
    pd.testing.assert_frame_equal(load_log(tmp_path), frame)


def test_empty_parquet_and_jsonl(tmp_path):
    write_parquet([], tmp_path / "events.parquet")
    check_schema(load_log(tmp_path))
    (tmp_path / "e.jsonl").write_bytes(b"")
    empty = read_jsonl(tmp_path / "e.jsonl")
    check_schema(empty)
    assert len(empty) == 0


def test_jsonl_round_trip_equals_to_frame(tmp_path):
    path = tmp_path / "events.jsonl"
    with JsonlWriter(path) as writer:
        for r in sample_records():
            writer(r)
    pd.testing.assert_frame_equal(read_jsonl(path), to_frame(sample_records()))


def test_torn_last_line_loads_silently(tmp_path):
    path = tmp_path / "events.jsonl"
    records = sample_records()
    text = "".join(record_line(r) for r in records)
    last = record_line(records[-1])
    path.write_text(text + last[: len(last) // 2], encoding="utf-8")
    frame = read_jsonl(path)  # VlabWarning is an error in this test suite
    assert frame.seq.tolist() == list(range(7))


def test_corrupt_middle_line_warns_with_line_number(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [record_line(r) for r in sample_records()]
    lines[2] = '{"seq": 2, "t_ns": oops\n'
    lines[4] = "[1, 2]\n"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.warns(VlabWarning, match=r"events\.jsonl.*line 3, 5"):
        frame = read_jsonl(path)
    assert frame.seq.tolist() == [0, 1, 3, 5, 6]
    check_schema(frame)
    with pytest.warns(VlabWarning) as caught:  # through load_log too, pointing at the caller's line
        load_log(tmp_path)
    assert [w.filename for w in caught] == [__file__]


def test_load_log_prefers_newer_file(tmp_path):
    records = sample_records()
    write_parquet(records[:3], tmp_path / "events.parquet")
    with JsonlWriter(tmp_path / "events.jsonl") as writer:
        for r in records:
            writer(r)
    now = time.time()
    os.utime(tmp_path / "events.parquet", (now - 10, now - 10))
    assert len(load_log(tmp_path)) == 7  # jsonl is newer (crash before parquet was rewritten)
    os.utime(tmp_path / "events.parquet", (now, now))
    os.utime(tmp_path / "events.jsonl", (now, now))
    assert len(load_log(tmp_path)) == 3  # parquet newer or equal wins


def test_load_log_errors_name_path_and_files(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist.*events\.parquet"):
        load_log(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"events\.parquet or events\.jsonl"):
        load_log(tmp_path)
    (tmp_path / "session.json").write_text('{"vlab_version": "0.1.0"}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:  # a run's other file, not read as a log of 0 events
        load_log(tmp_path / "session.json")
    assert str(info.value) == (
        f"{str(tmp_path / 'session.json')!r} is not an event log (events.jsonl or events.parquet); pass the "
        f"run folder ({str(tmp_path)!r}) or one of its log files"
    )


def test_a_folder_of_runs_such_as_a_sweep_s_points_to_one_of_them(tmp_path):
    cell = tmp_path / "sweep" / "cells" / "s0__p__r0"
    cell.mkdir(parents=True)
    (cell / "events.jsonl").write_text("")
    (tmp_path / "sweep" / "cells" / "not_a_run").mkdir()
    with pytest.raises(ConfigError) as info:
        load_log(tmp_path / "sweep")
    assert str(info.value) == (  # was: "holds no event log: expected events.parquet or events.jsonl in it"
        f"{str(tmp_path / 'sweep')!r} holds no event log of its own; 1 run folder(s) under it do, e.g. "
        f"{str(cell)!r}: pass one of them (vlab.load_sweep reads a sweep folder's tables)"
    )


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(record_line(r) for r in sample_records()).rstrip("\n"), encoding="utf-8")
    pd.testing.assert_frame_equal(read_jsonl(path), to_frame(sample_records()))


def test_a_single_good_line_among_corrupt_ones_loads(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("not json\n" + record_line(sample_records()[3]), encoding="utf-8")
    with pytest.warns(VlabWarning, match=r"skipped 1 corrupt line\(s\).*: line 1$"):
        frame = read_jsonl(path)
    pd.testing.assert_frame_equal(frame, to_frame(sample_records()[3:4]))


@pytest.mark.parametrize(
    ("corrupt", "shown"), [(10, "line 1, 2, 3, 4, 5, 6, 7, 8, 9, 10$"), (11, "10 and 1 more$")]
)
def test_the_warning_names_the_first_ten_corrupt_lines(tmp_path, corrupt, shown):
    path = tmp_path / "events.jsonl"
    path.write_text("{}\n" * corrupt + record_line(sample_records()[0]), encoding="utf-8")
    with pytest.warns(VlabWarning, match=rf"skipped {corrupt} corrupt line\(s\) .*{shown}"):
        assert len(read_jsonl(path)) == 1


def test_a_text_field_that_holds_a_number_loads_as_its_text_and_missing_stays_missing(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [record_line(r) for r in sample_records()[:2]]
    first = json.loads(lines[0])
    assert first["item_id"] is None and json.loads(lines[1])["item_id"] is None
    lines[0] = json.dumps(first | {"item_id": 5}) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    frame = read_jsonl(path)
    check_schema(frame)
    assert frame.item_id[0] == "5" and frame.item_id[1] is pd.NA


def test_a_parquet_log_written_with_other_dtypes_loads_with_the_declared_ones(tmp_path):
    """A Parquet file written by another tool (int32 numbers, object strings) reads as vlab writes it."""
    frame = to_frame(sample_records())
    other = frame.astype({"seq": "int32", "direction": object, "type": object, "audio_ms": "float32"})
    other.to_parquet(tmp_path / "events.parquet", index=False)
    loaded = load_log(tmp_path)
    check_schema(loaded)
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize("leaves_a_part", [False, True], ids=["before writing", "half written"])
def test_a_failed_parquet_write_leaves_no_file_and_raises_the_writers_error(
    tmp_path, monkeypatch, leaves_a_part
):
    import pyarrow.parquet as pq

    def fail(table, where):
        if leaves_a_part:
            where.write_bytes(b"PAR1")
        raise OSError("No space left on device")

    monkeypatch.setattr(pq, "write_table", fail)
    with pytest.raises(OSError, match="No space left on device"):
        write_parquet(sample_records(), tmp_path / "events.parquet")
    assert os.listdir(tmp_path) == []
