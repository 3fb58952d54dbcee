from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vlab.log import JsonlWriter, Sink, read_jsonl, record_from_event
from vlab.log.records import RECORD_FIELDS
from vlab.log.writer import _generic_line, record_line

WALL = 1_750_000_000 * 10**9


def make(seq, event=None):
    event = event or {"type": "response.audio_transcript.delta", "response_id": "r", "delta": f"w{seq}"}
    return record_from_event(event, direction="server", seq=seq, t_ns=seq * 1000, wall_ns=WALL + seq)


def test_lines_are_json_objects_of_record_fields(tmp_path):
    path = tmp_path / "events.jsonl"
    with JsonlWriter(path) as writer:
        assert isinstance(writer, Sink)
        writer(make(0))
        writer(make(1, {"type": "error", "error": {"code": "c", "message": 'm\n"é'}}))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == list(RECORD_FIELDS)
    assert first["seq"] == 0 and first["wall_ns"] == WALL and first["text"] == "w0"
    assert json.loads(lines[1])["error_message"] == 'm\n"é'


def test_fast_line_equals_generic_json():
    from vlab.log import EventRecord

    for record in (
        make(0),
        record_from_event(
            {"type": "response.audio.delta", "delta": "AAAA"},
            direction="server",
            seq=1,
            t_ns=2,
            wall_ns=3,
            audio_bytes_per_s=48000,
        ),
        EventRecord(
            1,
            2,
            3,
            "client",
            "x",
            None,
            None,
            None,
            None,
            None,
            None,
            5,
            20,
            None,
            1.5,
            "t",
            None,
            None,
            "{}",
        ),
    ):
        assert record_line(record) == _generic_line(record)


def test_flusher_puts_data_on_disk_without_more_writes(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, flush_interval_s=0.05)
    try:
        writer(make(0))
        deadline = time.monotonic() + 2
        while path.stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.stat().st_size > 0  # no flush() or close() called
    finally:
        writer.close()


def test_close_is_idempotent_and_stops_thread(tmp_path):
    writer = JsonlWriter(tmp_path / "events.jsonl")
    thread = writer._thread
    writer(make(0))
    writer.close()
    writer.close()
    assert writer.closed and not thread.is_alive()
    with pytest.raises(ValueError):
        writer(make(1))


def test_append_mode_resumes_and_cuts_torn_tail(tmp_path):
    path = tmp_path / "events.jsonl"
    with JsonlWriter(path) as writer:
        writer(make(0))
    with open(path, "a", encoding="utf-8") as f:
        f.write(record_line(make(1))[:25])  # torn line from a crash
    with JsonlWriter(path) as writer:
        writer(make(2))
    frame = read_jsonl(path)
    assert frame.seq.tolist() == [0, 2]


def test_threads_do_not_interleave_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    with JsonlWriter(path, flush_interval_s=0.01) as writer:
        threads = [
            threading.Thread(target=lambda k=k: [writer(make(k * 1000 + i)) for i in range(500)])
            for k in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(read_jsonl(path).seq) == sorted(k * 1000 + i for k in range(4) for i in range(500))


def test_bad_interval():
    with pytest.raises(ValueError, match="flush_interval_s"):
        JsonlWriter(os.devnull, flush_interval_s=0)


CHILD = r"""
import sys, time
from vlab.log import JsonlWriter, record_from_event
writer = JsonlWriter(sys.argv[1], flush_interval_s=0.5)
seq = 0
last_report = 0.0
while True:
    writer(record_from_event({"type": "response.text.delta", "delta": "x" * 40}, direction="server",
                             seq=seq, t_ns=time.perf_counter_ns(), wall_ns=time.time_ns()))
    now = time.monotonic()
    if now - last_report >= 0.05:
        print(seq, flush=True)
        last_report = now
    seq += 1
    time.sleep(0.001)
"""


def test_kill_9_loses_at_most_the_last_second(tmp_path):
    path = tmp_path / "events.jsonl"
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    reports: list[tuple[float, int]] = []  # (parent receive time, seq the child had written by then)

    def read_reports() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            reports.append((time.monotonic(), int(line)))

    reader = threading.Thread(target=read_reports, daemon=True)
    try:
        reader.start()
        deadline = time.monotonic() + 10
        while not reports and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reports, "child never reported"
        time.sleep(1.3)
        latest = reports[-1][1]
        kill_time = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=2)
    # Every seq the child reported at least 1 s before the kill was written at least 1 s before it.
    old = [seq for received, seq in reports if received <= kill_time - 1.0]
    assert old, reports[:3]
    must_have = max(old)
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"seq":999999,"t_ns":1,"wall')  # simulate a torn last line as well
    frame = read_jsonl(path)
    seqs = frame.seq.tolist()
    assert seqs == list(range(len(seqs)))  # in order, no gaps
    assert seqs[-1] >= must_have, (seqs[-1], must_have, latest)
    assert seqs[-1] <= latest + 2000  # sanity: nothing invented
