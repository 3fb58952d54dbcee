"""The session's log and its sinks: order, failures, the run folder's files and recordings."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import vlab
from vlab.clock import VirtualClock
from vlab.endpoint import Secret, Target
from vlab.errors import VlabWarning
from vlab.log import read_jsonl
from vlab.session.sinks import AudioRecording, RunFolder, SessionLog, open_run_folder, session_metadata
from vlab.settings import SessionSettings

MS = 1_000_000
KEY = "CANARY-KEY-never-written"
TARGET = Target("azure", "https://x.services.ai.azure.com", Secret(KEY), "gpt-realtime", "api_key")


class Collect(list):
    def __init__(self, name: str, calls: list[str]) -> None:
        super().__init__()
        self.name, self.calls = name, calls
        self.closed = 0

    def __call__(self, record) -> None:
        self.calls.append(self.name)
        self.append(record)

    def close(self) -> None:
        self.closed += 1


def test_records_are_numbered_stamped_on_the_clock_and_shown_to_the_sinks_in_order():
    clock = VirtualClock(start_ns=5 * MS, wall_start_ns=1_000 * MS)
    calls: list[str] = []
    late, early, last = Collect("late", calls), Collect("early", calls), Collect("last", calls)
    log = SessionLog(clock, [late])
    log.add_sink(early, first=True)
    log.add_sink(last)  # after the others
    log.append({"type": "vlab.connect"}, "local", 5 * MS)
    clock.advance_ns(2 * MS)
    log.append({"type": "session.created", "event_id": "e1"}, "server", 7 * MS)
    assert calls == ["early", "late", "last", "early", "late", "last"]
    assert [(r.seq, r.t_ns, r.wall_ns, r.direction) for r in log.records] == [
        (0, 5 * MS, 1_000 * MS, "local"),
        (1, 7 * MS, 1_002 * MS, "server"),
    ]
    assert list(early) == list(late) == list(last) == list(log.records)
    log.close()
    log.close()
    assert early.closed == late.closed == last.closed == 1  # closed once


def test_a_failing_sink_is_removed_with_a_warning_and_the_others_go_on():
    calls: list[str] = []
    kept = Collect("kept", calls)

    def broken(record):
        raise RuntimeError("sink exploded")

    log = SessionLog(VirtualClock(), [broken, kept])
    with pytest.warns(VlabWarning, match="sink exploded"):
        log.append({"type": "a"}, "local", 0)
    log.append({"type": "b"}, "local", 0)
    assert [r.type for r in kept] == ["a", "b"] and log.sinks == [kept]
    assert [str(e) for e in log.sink_errors] == ["sink exploded"]


def test_session_json_holds_versions_target_and_settings_but_never_the_key():
    clock = VirtualClock(wall_start_ns=1_750_000_000 * 10**9)
    meta = session_metadata(
        target=TARGET,
        settings=SessionSettings(),
        barge_in="on",
        sdk_version="1.2.3",
        started_wall_ns=clock.wall_ns(),
    )
    assert meta["started_at"] == datetime.fromtimestamp(1_750_000_000, timezone.utc).isoformat()
    assert meta["vlab_version"] == vlab.__version__ and meta["sdk_version"] == "1.2.3"
    assert meta["target"]["auth"] == "api_key" and meta["barge_in"] == "on"
    assert meta["settings"] == SessionSettings().to_dict()
    assert KEY not in json.dumps(meta)


def test_the_run_folder_writes_jsonl_as_it_goes_and_parquet_on_close(tmp_path):
    clock = VirtualClock()
    log = SessionLog(clock)
    folder = RunFolder(tmp_path / "run", log.records)
    folder.open({"settings": {}})
    log.add_sink(folder)
    for i in range(3):
        log.append({"type": "response.text.delta", "delta": f"w{i}"}, "server", i * MS)
    assert not (tmp_path / "run" / "events.parquet").exists()
    log.close()
    assert json.loads((tmp_path / "run" / "session.json").read_text()) == {"settings": {}}
    from_jsonl = read_jsonl(tmp_path / "run" / "events.jsonl")
    pd.testing.assert_frame_equal(vlab.load_log(tmp_path / "run"), from_jsonl)
    assert list(from_jsonl["text"]) == ["w0", "w1", "w2"]


def test_the_recording_writes_input_as_it_goes_and_cuts_truncated_items(tmp_path, monkeypatch):
    settings = SessionSettings()
    log = SessionLog(VirtualClock())
    folder, recording = open_run_folder(log, tmp_path, {"settings": {}}, settings)
    assert isinstance(recording, AudioRecording) and [type(s) for s in log.sinks] == [
        RunFolder,
        AudioRecording,
    ]
    flushed_at: list[int] = []
    monkeypatch.setattr(recording._recorder, "flush", lambda: flushed_at.append(t_ms))
    chunk = np.full(2400, 1000, "<i2").tobytes()  # 100 ms at 24 kHz
    for t_ms in (0, 500, 1000, 1200, 2000, 2300):
        recording.input_audio(chunk, t_ms * MS)
    assert flushed_at == [1200, 2300]  # once more than a second (on the session clock) has passed
    assert sf.info(tmp_path / "input.wav").frames == 6 * 2400  # on disk before the end
    recording.output_audio("item_1", np.ones(24_000, "<i2").tobytes(), 300 * MS)  # 1 s of reply
    log.append({"type": "conversation.item.truncated", "item_id": "item_1", "audio_end_ms": 250}, "server", 0)
    log.close()
    assert sf.info(tmp_path / "output" / "item_1.wav").frames == 6000  # cut at 250 ms
    assert {p.name for p in tmp_path.iterdir()} >= {"events.jsonl", "events.parquet", "conversation.wav"}


def test_without_audio_the_run_folder_has_only_the_log(tmp_path):
    log = SessionLog(VirtualClock())
    folder, recording = open_run_folder(log, tmp_path, {}, SessionSettings(), record_audio=False)
    assert recording is None and log.sinks == [folder]
    log.close()
    assert {p.name for p in tmp_path.iterdir()} == {"session.json", "events.jsonl", "events.parquet"}
