"""The emulator's ground-truth trace file: written through entry by entry, readable as JSON lines."""

from __future__ import annotations

import json
import threading

import numpy as np

from vlab.emulator.trace import Trace


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_entry_is_in_the_file_as_soon_as_it_is_added(tmp_path):
    path = tmp_path / "traces" / "trace.jsonl"  # its folder is made
    trace = Trace(path)
    trace.add(kind="send", t_ns=1, type="session.created", event_id="event_1")
    assert _lines(path) == [{"kind": "send", "t_ns": 1, "type": "session.created", "event_id": "event_1"}]
    trace.add(kind="vad", event="speech_started", audio_ms=np.float64(512.5), frames=np.int64(16))
    assert _lines(path)[-1] == {"kind": "vad", "event": "speech_started", "audio_ms": 512.5, "frames": 16}
    trace.close()
    trace.close()
    trace.add(kind="after", note="kept in memory only")
    assert len(_lines(path)) == 2 and trace.entries[-1]["kind"] == "after"


def test_entries_from_several_threads_stay_whole_lines(tmp_path):
    path = tmp_path / "trace.jsonl"
    trace = Trace(path, keep=False)

    def write(name: str) -> None:
        for i in range(500):
            trace.add(kind="send", conn=name, seq=i, text="x" * 200)

    threads = [threading.Thread(target=write, args=(f"conn_{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trace.close()
    lines = _lines(path)
    assert len(lines) == 2000 and trace.entries == []
    for k in range(4):
        assert [e["seq"] for e in lines if e["conn"] == f"conn_{k}"] == list(range(500))
