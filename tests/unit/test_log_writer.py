from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests._portable import KILLED_EXIT_CODE
from vlab.clock import ManualClock
from vlab.errors import ConfigError
from vlab.log import EventRecord, JsonlWriter, Sink, read_jsonl, record_from_event
from vlab.log.records import RECORD_FIELDS
from vlab.log.writer import _generic_line, record_line

WALL = 1_750_000_000 * 10**9
REPO = Path(__file__).resolve().parents[2]


def make(seq, event=None):
    event = event or {"type": "response.audio_transcript.delta", "response_id": "r", "delta": f"w{seq}"}
    return record_from_event(event, direction="server", seq=seq, t_ns=seq * 1000, wall_ns=WALL + seq)


class FlusherClock(ManualClock):
    """A ManualClock that lets a test wait until a writer's flusher thread has acted on the current time.

    The flusher reads the clock once per round, before it decides whether to flush; so once it has read
    the clock twice since the last ``advance_ns``, one whole round (and any flush it made) ran at the
    current time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._owner = threading.current_thread()
        self._changed = threading.Condition()
        self._reads = 0  # by other threads since the last advance

    def advance_ns(self, delta_ns: int) -> None:
        with self._changed:
            super().advance_ns(delta_ns)
            self._reads = 0

    def monotonic_ns(self) -> int:
        with self._changed:
            if threading.current_thread() is not self._owner:
                self._reads += 1
                self._changed.notify_all()
            return super().monotonic_ns()

    def wait_for_flusher(self) -> None:
        with self._changed:
            ran = self._changed.wait_for(lambda: self._reads >= 2, timeout=30)  # a hang guard, not a delay
        assert ran, "the flusher thread never read the clock"


def on_disk(path: Path) -> list[int]:
    """The seqs in the file as the OS has it (what a killed process leaves behind)."""
    return [json.loads(line)["seq"] for line in path.read_text(encoding="utf-8").splitlines()]


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
    for record in (
        make(0),
        dataclasses.replace(make(0), text="héllo ☃", payload='{"text":"héllo ☃"}'),  # UTF-8, not \u escapes
        record_from_event(
            {"type": "response.audio.delta", "delta": "AAAA", "x_vlab_sim_ms": 12.5},
            direction="server",
            seq=1,
            t_ns=2,
            wall_ns=3,
            audio_bytes_per_s=48000,
        ),
        EventRecord(  # an int in float fields takes the generic path
            **{name: None for name in RECORD_FIELDS}
            | dict(seq=1, t_ns=2, wall_ns=3, direction="client", type="x", audio_bytes=5, audio_ms=20)
            | dict(audio_end_ms=1.5, sim_ms=7, text="héllo ☃", payload='{"text":"héllo ☃"}')
        ),
    ):
        assert record_line(record) == _generic_line(record)


def test_non_finite_floats_are_written_as_null():
    values = {name: None for name in RECORD_FIELDS} | dict(
        seq=0, t_ns=0, wall_ns=0, direction="local", type="x"
    )
    record = EventRecord(
        **values | dict(sim_ms=math.nan, audio_ms=math.inf, audio_end_ms=-math.inf, payload="{}")
    )
    line = json.loads(record_line(record))
    assert line["sim_ms"] is None and line["audio_ms"] is None and line["audio_end_ms"] is None


def test_lines_are_flushed_once_due_on_the_clock(tmp_path):
    path = tmp_path / "events.jsonl"
    clock = FlusherClock()
    with JsonlWriter(path, clock=clock) as writer:
        assert writer.flush_interval_s == 0.5  # a crash loses at most the last second
        writer(make(0))
        clock.advance_ns(300_000_000)
        writer(make(1))  # a later line does not push the deadline back
        clock.advance_ns(199_999_999)
        clock.wait_for_flusher()
        assert on_disk(path) == []  # 1 ns before the deadline: still buffered
        clock.advance_ns(1)
        clock.wait_for_flusher()
        assert on_disk(path) == [0, 1]  # flushed within 0.5 s of the first write, with no further write


def test_flush_and_close_do_not_wait_for_the_clock(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, clock=ManualClock())
    writer(make(0))
    writer.flush()
    assert on_disk(path) == [0]
    writer(make(1))
    writer.close()
    assert on_disk(path) == [0, 1]


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


@pytest.mark.parametrize(
    ("before", "kept"),
    [
        (lambda: record_line(make(0)) + record_line(make(1))[:-1], [0, 1]),  # whole, its newline lost
        (lambda: record_line(make(1))[:25], []),  # the file is one torn line
        (lambda: record_line(make(0)) + '{"seq": 1, "text": "' + "x" * 100_000, [0]),  # torn beyond 64 KiB
    ],
    ids=["complete-last-line", "only-a-fragment", "long-fragment"],
)
def test_a_resumed_file_keeps_every_whole_line_and_drops_a_torn_one(tmp_path, before, kept):
    path = tmp_path / "events.jsonl"
    path.write_text(before(), encoding="utf-8")
    with JsonlWriter(path) as writer:
        writer(make(2))
    assert read_jsonl(path).seq.tolist() == [*kept, 2]


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
    with pytest.raises(ConfigError, match="flush_interval_s"):
        JsonlWriter(os.devnull, flush_interval_s=0)


CHILD = r"""
import sys
from tests.unit.test_log_writer import FlusherClock, make
from vlab.log import JsonlWriter

clock = FlusherClock()
writer = JsonlWriter(sys.argv[1], clock=clock)
for seq in range(100):
    writer(make(seq))
clock.advance_ns(500_000_000)
clock.wait_for_flusher()  # the flusher thread has handed seq 0..99 to the OS, unasked
print(99, flush=True)
for seq in range(100, 5100):  # not due: in the buffer, but for what its size forced out (maybe mid-line)
    writer(make(seq))
print("written", flush=True)
sys.stdin.read()  # wait for the kill
"""


def test_kill_9_keeps_every_line_that_was_due(tmp_path):
    path = tmp_path / "events.jsonl"
    pythonpath = os.pathsep.join([str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
    try:
        assert proc.stdout is not None
        flushed = int(proc.stdout.readline())
        assert proc.stdout.readline() == "written\n"
        proc.kill()
        assert proc.wait(timeout=30) == KILLED_EXIT_CODE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"seq":999999,"t_ns":1,"wall')  # a torn last line as well
    seqs = read_jsonl(path).seq.tolist()
    assert seqs == list(range(len(seqs)))  # in order, no gaps, nothing invented
    assert flushed <= seqs[-1] < 5100
