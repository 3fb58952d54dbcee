"""Connection faults injected by the emulator against a real vlab.Session: clear errors or reconnection.

Each fault (dropped socket mid-response, clean close, fatal and non-fatal server error, a stall) must
end the session with a ConnectionFailed that says what happened and what to do — from wait_for and
from the next send — or, with ``reconnect=True``, a logged reconnection that resends the settings.
The run folder must stay complete and readable either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math

import pandas as pd
import pytest
import soundfile as sf

import vlab
from vlab import ServerVad, Session, SessionSettings
from vlab.emulator import Fault
from vlab.errors import ConnectionFailed
from vlab.log import read_jsonl
from vlab.session import Reconnect
from vlab.testing import fast_emulator

SETTINGS = SessionSettings(turn_detection=ServerVad(threshold=0.6, silence_duration_ms=400))

FATAL = {
    "drop mid-response": (Fault("drop", at="response.audio.delta", n=2), "connection was dropped"),
    "close 4000": (
        Fault("close", at="response.audio.delta", n=2, code=4000),
        "closed the connection (code 4000",
    ),
    "fatal server error": (
        Fault("error", at="response.audio.delta", n=2, fatal=True),
        "reported an error (server_error: The server had an error",
    ),
    "stall": (
        Fault("delay", at="response.audio.delta", ms=4000, n=2),
        "stalled: no event from the server for 0.3 s",
    ),
}


def assert_run_folder_complete(run, records) -> pd.DataFrame:
    """events.jsonl and events.parquet hold the same events, session.json and the WAVs load."""
    names = {p.name for p in run.iterdir()}
    assert {
        "events.jsonl",
        "events.parquet",
        "session.json",
        "input.wav",
        "output.wav",
        "conversation.wav",
    } <= names
    from_jsonl = read_jsonl(run / "events.jsonl")
    from_parquet = vlab.load_log(run)
    pd.testing.assert_frame_equal(from_parquet, from_jsonl)
    assert len(from_parquet) == len(records)
    assert json.loads((run / "session.json").read_text())["settings"]["turn_detection"]["threshold"] == 0.6
    for wav in ("input.wav", "output.wav", "conversation.wav"):
        info = sf.info(run / wav)
        assert info.frames > 0, wav
    return from_parquet


@pytest.mark.parametrize("case", list(FATAL))
async def test_a_lost_connection_ends_the_session_with_a_clear_error(tmp_path, prompt, case):
    fault, what = FATAL[case]
    run = tmp_path / "run"
    async with fast_emulator(faults=[fault], trace=True) as emu:
        async with Session(
            SETTINGS,
            endpoint=emu.endpoint,
            api_key=emu.api_key,
            run_dir=run,
            dotenv_path=False,
            stall_timeout_s=0.3,
        ) as s:
            await s.append_audio(prompt.pcm)  # one message: the fault hits the response, not the upload
            with pytest.raises(ConnectionFailed) as waited:  # a stall: before the delayed event arrives
                await s.wait_for("response.done", timeout_s=10)
            with pytest.raises(ConnectionFailed) as sent:
                await s.send_text("are you there?")
            assert s.connection_error is not None
        assert emu.trace.of_kind("fault")  # the emulator really injected it
    for info in (waited, sent):
        message = str(info.value)
        assert what in message, message
        assert "reconnect=True" in message and str(run) in message  # what to do, and where the log is
        assert "Traceback" not in message
    assert "while waiting for 'response.done'" in str(waited.value)
    assert "sending 'conversation.item.create'" in str(sent.value)
    if case != "stall":  # how soon a stall is noticed: tests/unit/test_session_link.py, on virtual time
        assert "while response resp_" in str(waited.value)
    frame = assert_run_folder_complete(run, s.records)
    lost = frame[frame["type"] == "vlab.connection_lost"]
    assert len(lost) == 1 and lost["direction"].iloc[0] == "local"
    assert lost["error_code"].iloc[0] == {"drop mid-response": "dropped", "close 4000": "closed",
                                          "fatal server error": "server_error", "stall": "stalled"}[case]  # fmt: skip
    assert (
        frame["type"].iloc[-1] == "vlab.connection_lost"
    )  # nothing after it: the send was refused, not logged


@pytest.mark.parametrize("reader", ["wait_for", "events"])
async def test_a_lost_connection_is_a_warning_only_where_no_wait_raises_it(prompt, caplog, reader):
    # a CLI printed it twice: the session's warning, then the error its wait raised
    caplog.set_level(logging.INFO, logger="vlab.session")
    async with fast_emulator(faults=[Fault("drop", at="response.audio.delta", n=2)]) as emu:
        async with Session(SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.append_audio(prompt.pcm)
            if reader == "wait_for":
                with pytest.raises(ConnectionFailed):
                    await s.wait_for("response.done", timeout_s=10)
            else:  # an events() reader just stops: the log is its only word of the loss
                assert [e async for e in s.events(typed=False)]
    told = [r.levelno for r in caplog.records if "the connection was dropped" in r.getMessage()]
    assert told == [logging.INFO if reader == "wait_for" else logging.WARNING]


async def test_a_non_fatal_server_error_is_logged_and_the_session_goes_on(tmp_path, prompt, caplog):
    caplog.set_level(logging.INFO, logger="vlab.session")
    run = tmp_path / "run"
    async with fast_emulator(faults=[Fault("error", at="response.audio.delta", n=2)]) as emu:
        async with Session(
            SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key, run_dir=run, dotenv_path=False
        ) as s:
            await s.stream_audio(prompt.pcm, speed=math.inf)
            await s.wait_for("response.done", timeout_s=10)
            await s.send_text("still there?")
            await s.wait_for("response.done", timeout_s=10)
            assert s.connection_error is None
    frame = assert_run_folder_complete(run, s.records)
    errors = frame[frame["type"] == "error"]
    assert list(errors["error_code"]) == ["server_error"]
    assert (frame["type"] == "response.done").sum() == 2
    assert any(r.levelno == logging.WARNING and "server_error" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("drop", at="response.audio.delta", n=2),
        Fault("delay", at="response.audio.delta", ms=3000),
        Fault("error", at="response.audio.delta", n=2, fatal=True),
    ],
    ids=["drop", "stall", "fatal error"],
)
async def test_reconnect_logs_it_resends_the_settings_and_goes_on(tmp_path, prompt, fault):
    run = tmp_path / "run"
    async with fast_emulator(trace=True) as emu:
        async with Session(
            SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key, run_dir=run, dotenv_path=False,
            reconnect=Reconnect(backoff_s=0.01), stall_timeout_s=1.0,  # the stall fault holds 3 s
        ) as s:  # fmt: skip
            assert emu.inject(fault) == 1
            await s.stream_audio(prompt.pcm, speed=math.inf)
            notice = (await s.wait_for("vlab.reconnected", timeout_s=10))[-1]
            assert notice.attempt == 1 and notice.lost_response_id.startswith("resp_")
            await s.send_text("what did you say?")  # the lost response must be asked for again
            done = (await s.wait_for("response.done", timeout_s=10))[-1]
            assert done.response.status == "completed"
            assert s.reconnects == 1 and s.connection_error is None
        connections = {e["conn"] for e in emu.trace.of_kind("send")}
    assert len(connections) == 2
    frame = assert_run_folder_complete(run, s.records)
    kinds = list(zip(frame["direction"], frame["type"], strict=True))
    i = kinds.index(("local", "vlab.connection_lost"))
    assert kinds[i + 1 : i + 4] == [
        ("local", "vlab.reconnect"), ("server", "session.created"), ("client", "session.update"),
    ]  # fmt: skip
    reconnect = json.loads(frame["payload"].iloc[i + 1])
    assert reconnect["attempt"] == 1 and reconnect["reason"]
    updates = [json.loads(p)["session"] for p in frame.loc[frame["type"] == "session.update", "payload"]]
    assert len(updates) == 2 and updates[0] == updates[1] == SETTINGS.to_wire()  # the same settings again
    updated = frame[frame["type"] == "session.updated"]["payload"].map(json.loads)
    assert updated.iloc[-1]["session"]["turn_detection"]["threshold"] == 0.6


async def test_reconnect_gives_up_with_a_clear_error_when_the_service_refuses(prompt):
    async with fast_emulator() as emu:
        async with Session(
            SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False,
            reconnect=Reconnect(attempts=2, backoff_s=0.01),
        ) as s:  # fmt: skip
            emu.config.api_key = "rotated-key"  # new connections get 401
            emu.inject(Fault("drop", at="response.audio.delta", n=1))
            with pytest.raises(ConnectionFailed) as info:  # from whichever call is in progress when it ends
                await s.stream_audio(prompt.pcm, speed=math.inf)
                await s.wait_for("response.done", timeout_s=10)
    message = str(info.value)
    assert "connection was dropped" in message and "reconnecting failed 2 time(s)" in message
    assert "401" in message and "check the network" in message
    types = [r.type for r in s.records]
    assert types.count("vlab.reconnect") == 2 and types.count("vlab.reconnect_failed") == 2


async def test_send_waits_for_a_reconnection_in_progress(prompt):
    lost = asyncio.Event()
    async with fast_emulator() as emu:
        async with Session(
            SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False,
            reconnect=Reconnect(backoff_s=0.3),
        ) as s:  # fmt: skip
            s.add_sink(lambda record: lost.set() if record.type == "vlab.connection_lost" else None)
            emu.inject(Fault("drop", at="response.audio.delta", n=1))
            await s.send_text("hello")
            await lost.wait()  # the reader noticed the drop; the reconnection waits out its back-off
            await s.send_text("hello again")  # sent on the new connection once it is up
            await s.wait_for("response.done", timeout_s=10)
    sent = [r for r in s.records if r.type == "conversation.item.create"]
    reconnect_seq = next(r.seq for r in s.records if r.type == "vlab.reconnect")
    resent_settings_seq = [r.seq for r in s.records if r.type == "session.update"][-1]
    # the second message went out on the new connection, after its handshake
    assert len(sent) == 2 and sent[1].seq > resent_settings_seq > reconnect_seq


async def test_a_sweep_records_a_dropped_cell_as_failed_and_goes_on(tmp_path):
    from vlab.sweep import run_sweep_async

    cfg = {
        "target": {"speed": "max", "latency": "instant"},
        "prompts": {"include": ["short_question", "two_turns"]},
        "grid": {"threshold": [0.5], "silence_duration_ms": [500]},
        "run": {"concurrency": 2, "timeout_s": 20},
    }
    options = {
        "dotenv_path": False,
        "emulator_options": {"faults": [Fault("drop", at="response.created", n=2)]},
    }
    out = tmp_path / "sweep"
    result = await run_sweep_async(cfg, out, progress=False, session_options=options)
    status = {c.cell.split("__")[1]: c for c in result.cells}
    assert status["short_question"].status == "ok"
    assert status["two_turns"].status == "error"
    assert "ConnectionFailed: the connection was dropped" in status["two_turns"].error
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ok": 1, "error": 1, "missing": 0}
    assert list(pd.read_parquet(out / "scores.parquet")["prompt"]) == ["short_question"]
    failed = out / "cells" / status["two_turns"].cell
    cell = json.loads((failed / "cell.json").read_text())
    assert cell["status"] == "error" and "dropped" in cell["error"]
    frame = vlab.load_log(failed)  # the failed cell's log is complete too
    assert (frame["type"] == "vlab.connection_lost").sum() == 1
    pd.testing.assert_frame_equal(frame, read_jsonl(failed / "events.jsonl"))


async def test_a_sweep_cell_not_answered_in_time_says_which_setting_gives_more_time(tmp_path):
    from vlab.sweep import run_sweep_async

    cfg = {
        "target": {"speed": "max", "latency": "instant"},
        "prompts": {"include": ["short_question"]},
        "grid": {"threshold": [0.5]},
        "run": {"timeout_s": 0.2},
    }
    stall = Fault("delay", at="session.updated", ms=600_000, n=2)  # the 1st answers the session's setup
    options = {"dotenv_path": False, "emulator_options": {"faults": [stall]}}
    result = await run_sweep_async(cfg, tmp_path / "sweep", progress=False, session_options=options)
    (cell,) = result.cells
    assert cell.status == "error"
    assert cell.error == (
        "NotAnswered: the prompt was not answered within 0.2 s (0 turns detected, 0 responses finished) "
        "(raise [run] timeout_s if the service is slow)"
    )


async def test_a_failed_response_is_logged_with_its_error_and_the_session_goes_on(
    tmp_path, prompt, caplog, monkeypatch
):
    from vlab.emulator import connection
    from vlab.metrics import turn_latency

    def fail_once(*args, **kwargs):
        monkeypatch.undo()  # the next response is answered
        raise RuntimeError("out of words")

    monkeypatch.setattr(connection, "reply_for", fail_once)
    run = tmp_path / "run"
    async with Session(SETTINGS, run_dir=run, emulator_options={"speed": math.inf}, dotenv_path=False) as s:
        await s.stream_audio(prompt.pcm, speed=math.inf)
        await s.wait_for("response.done")
        await s.send_text("still there?")
        await s.wait_for("response.done")
        assert s.connection_error is None
    frame = assert_run_folder_complete(run, s.records)
    done = frame[frame["type"] == "response.done"]
    assert list(done["error_code"].fillna("")) == ["server_error", ""]
    assert done["error_message"].iloc[0] == "The emulator failed to run the response: out of words"
    turns = turn_latency(frame)
    assert list(turns["status"]) == ["failed", "completed"]
    (warning,) = [r.getMessage() for r in caplog.records if "failed:" in r.getMessage()]
    response_id = done["response_id"].iloc[0]
    assert (
        warning
        == f"response {response_id} failed: server_error: The emulator failed to run the response: out of words"
    )
