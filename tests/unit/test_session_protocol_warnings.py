"""A server that speaks Voice Live badly, on virtual time: the session warns, goes on, and says what went wrong.

Malformed server events become ``vlab.protocol_warning`` records and never stop the reader; an endpoint
that is not Voice Live and a frame over the size limit end with errors that name the real cause.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pandas as pd
import pytest
from azure.ai.voicelive.models import ServerEventType

import vlab
from vlab import protocol
from vlab.clock import VirtualClock
from vlab.errors import ConnectionFailed, ProtocolError
from vlab.log import read_jsonl
from vlab.session import sdk_adapter
from vlab.session.checks import event_problems, is_base64
from vlab.session.link import FrameTooLarge

from .test_session_facade import SESSION_CREATED, fake_session, wires  # noqa: F401
from .test_session_link import FakeWire

AUDIO = base64.b64encode(bytes(4800)).decode()  # 100 ms of pcm16 at 24 kHz
IDS = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}

MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "audio delta not base64": ({"type": "response.audio.delta", **IDS, "delta": "@@@!"}, "'delta' is not base64"),
    "audio delta bad padding": ({"type": "response.audio.delta", **IDS, "delta": "AAA"}, "'delta' is not base64"),
    "audio delta a number": ({"type": "response.audio.delta", **IDS, "delta": 12}, "'delta' is a number"),
    "error a string": ({"type": "error", "error": "boom"}, "'error' is a string, not an object"),
    "error code a list": ({"type": "error", "error": {"code": [1]}}, "'error.code' is an array"),
    "response a string": ({"type": "response.created", "response": "resp"}, "'response' is a string"),
    "response id an object": ({"type": "response.done", "response": {"id": {}}}, "'response.id' is an object"),
    "session a list": ({"type": "session.updated", "session": [1]}, "'session' is an array"),
    "metadata a string": ({"type": "session.updated", "session": {"metadata": "x"}}, "'session.metadata'"),
    "turn detection a number": (
        {"type": "session.updated", "session": {"turn_detection": 3}},
        "'session.turn_detection' is a number",
    ),
    "audio_end_ms a string": (
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": "soon"},
        "'audio_end_ms' is a string, not a number",
    ),
    "sim time NaN": ({"type": "response.audio.done", protocol.SIM_MS_KEY: float("nan")}, "not a finite number"),
    "item an array": ({"type": "conversation.item.created", "item": []}, "'item' is an array"),
    "speech_started item_id a number": (
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": 7},
        "'item_id' is a number",
    ),
    "type a number": ({"type": 7}, "'type' is a number"),
}  # fmt: skip


def test_the_checks_accept_what_the_protocol_allows():
    assert event_problems({"type": "response.audio.delta", **IDS, "delta": AUDIO}) == []
    assert event_problems({"type": "conversation.item.created", "previous_item_id": None, "item": {}}) == []
    assert event_problems({"type": "session.updated", "session": {"turn_detection": None}}) == []
    assert event_problems({"type": "rate_limits.updated", "rate_limits": "anything"}) == []  # unknown type
    assert (
        event_problems({"type": "conversation.item.truncated", "audio_end_ms": 1.5, "content_index": 0}) == []
    )
    assert [is_base64(s) for s in ("", "AAAA", "AA==", "AAA=", "A===", "A=AA", "AA=A", "AA\n=", "=AAA")] == [
        True, True, True, True, False, False, False, False, False,
    ]  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_event_is_a_protocol_warning_and_the_session_goes_on(wires, tmp_path, case):  # noqa: F811
    event, problem = MALFORMED[case]
    wire = FakeWire()
    wires.append(wire)
    run = tmp_path / "run"
    async with fake_session(VirtualClock(), run_dir=run, stall_timeout_s=None) as s:  # records audio
        wire.push(event)
        wire.push({"type": "response.audio.delta", **IDS, "delta": AUDIO})  # then a good one
        wire.push({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}})
        await s.wait_for("response.done")
        assert s.protocol_warnings == 1 and s.connection_error is None
        assert "1 protocol warnings" in repr(s)
        await s.send_text("still there?")  # the session still sends
    frame = vlab.load_log(run)
    pd.testing.assert_frame_equal(frame, read_jsonl(run / "events.jsonl"))
    types = list(frame["type"])
    i = types.index(protocol.PROTOCOL_WARNING)
    assert frame["direction"].iloc[i] == "local" and frame["direction"].iloc[i - 1] == "server"
    warning = json.loads(frame["payload"].iloc[i])
    assert any(problem in p for p in warning["problems"]), warning
    assert json.loads(warning["raw"]) == json.loads(json.dumps(event))  # the frame as the server sent it
    assert types.count(protocol.PROTOCOL_WARNING) == 1 and "response.done" in types
    summary = json.loads((run / "session.json").read_text())["summary"]
    assert summary["protocol_warnings"] == 1 and summary["connection_error"] is None
    assert (run / "output.wav").exists()


async def test_a_frame_nested_too_deeply_to_parse_is_a_warning_with_its_raw_text(wires):  # noqa: F811
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        wire.push_raw(b'{"type":"session.updated","session":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        wire.push({"type": "response.done", "response": {"id": "r"}})
        await s.wait_for("response.done")
        assert s.protocol_warnings == 1
    warning = next(r for r in s.records if r.type == protocol.PROTOCOL_WARNING)
    payload = json.loads(warning.payload)
    assert payload["problems"] == ["the frame is nested too deeply to parse"]
    assert payload["raw_chars"] == 200_037 and len(payload["raw"]) == protocol.PROTOCOL_WARNING_RAW_CHARS


async def test_a_deep_but_readable_event_is_logged(wires):  # noqa: F811
    wire = FakeWire()
    wires.append(wire)
    deep: Any = "x"
    for _ in range(900):
        deep = {"k": deep}
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        wire.push({"type": "session.updated", "session": {"metadata": deep}})
        wire.push({"type": "response.done", "response": {"id": "r"}})
        await s.wait_for("response.done")
        assert s.connection_error is None
    assert [r.type for r in s.records][-2:] == ["session.updated", "response.done"]


async def test_an_endpoint_that_sends_another_first_event_is_not_voice_live(monkeypatch):
    async def open_wire(**connect: Any) -> FakeWire:
        wire = FakeWire()
        wire.push({"type": "hello", "server": "some websocket echo service"})
        return wire

    monkeypatch.setattr(sdk_adapter, "open_wire", open_wire)
    with pytest.raises(ProtocolError) as info:
        async with fake_session(VirtualClock()):
            pass
    message = str(info.value)
    assert "expected 'session.created' as the first event, got 'hello'" in message
    assert "some websocket echo service" in message and "not a proxy, a wrong path" in message


async def test_an_endpoint_that_says_nothing_times_out_on_the_session_clock(monkeypatch):
    clock = VirtualClock()
    monkeypatch.setattr(sdk_adapter, "open_wire", lambda **connect: asyncio.sleep(0, FakeWire()))
    opening = asyncio.create_task(fake_session(clock).__aenter__())
    await clock.wait_for_sleepers()
    assert clock.next_deadline_ns() == 30_000_000_000
    clock.advance_to_next()
    with pytest.raises(
        ProtocolError, match=r"expected 'session.created' as the first event, got nothing within 30 s"
    ):
        await opening


async def test_a_frame_over_the_size_limit_says_so_and_how_to_raise_it(wires):  # noqa: F811
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        wire.inbox.put_nowait(FrameTooLarge(4_194_304, "Message size 5000000 exceeds limit 4194304"))
        with pytest.raises(ConnectionFailed) as info:
            await s.wait_for("response.done")
    message = str(info.value)
    assert "larger than the client's frame size limit of 4,194,304 bytes" in message
    assert "Message size 5000000" in message and "Session(max_frame_bytes=...)" in message
    assert "dropped" not in message and "proxies" not in message
    assert s.records[-1].error_code == "frame_too_large"


def test_max_frame_bytes_must_be_a_positive_whole_number():
    with pytest.raises(vlab.errors.ConfigError, match="max_frame_bytes"):
        vlab.Session(max_frame_bytes=0)


@pytest.mark.parametrize("delta", ["@@@!", "AA=A", "A\nAA"])
async def test_audio_that_is_not_base64_is_a_warning_without_a_recording_too(wires, delta):  # noqa: F811
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(
        VirtualClock(), stall_timeout_s=None
    ) as s:  # simulated playback only counts bytes
        wire.push({"type": "response.audio.delta", **IDS, "delta": delta})
        wire.push({"type": "response.audio.delta", **IDS, "delta": AUDIO})
        await s.wait_for("response.audio.delta", count=2)
        assert s.protocol_warnings == 1
    warning = next(r for r in s.records if r.type == protocol.PROTOCOL_WARNING)
    assert json.loads(warning.payload)["problems"] == ["'delta' is not base64 audio"]


_SAMPLES: list[Any] = [
    "s", "AAAA", "AAA", "AA=A", "@@@=", 0, -3, 1.5, 2.0, float("nan"), float("inf"), True, None, {}, [], {"id": 1},
]  # fmt: skip


@pytest.mark.parametrize("etype", [*protocol.SERVER_EVENT_FIELDS, "not.a.known.type"])
def test_the_fast_check_agrees_with_the_worded_one_on_every_field_and_value(etype):
    """``event_problems`` answers from generated code when nothing is wrong: it must never miss a problem."""
    from vlab.session import checks

    well_formed = checks._WELL_FORMED.get(etype, checks._UNKNOWN_TYPE_WELL_FORMED)
    paths = ["event_id", protocol.SIM_MS_KEY, *protocol.SERVER_EVENT_FIELDS.get(etype, {})]
    for path in paths:
        *parents, key = path.split(".")
        for value in _SAMPLES:
            for parent_value in (
                None,
                "not an object",
            ):  # the field itself, or a parent that is not an object
                payload: dict[str, Any] = {"type": etype}
                holder = payload
                for part in parents:
                    holder[part] = {}
                    holder = holder[part]
                holder[key] = value
                if parents and parent_value is not None:
                    payload[parents[0]] = parent_value
                assert well_formed(payload) == (checks.event_problems(payload) == []), (path, value, payload)
                assert well_formed(payload) == (_slow_problems(payload) == []), (path, value, payload)


def _slow_problems(payload: dict[str, Any]) -> list[str]:
    """The worded check alone (its loop), without the generated fast path."""
    from vlab.session import checks

    saved, saved_unknown = dict(checks._WELL_FORMED), checks._UNKNOWN_TYPE_WELL_FORMED
    try:
        checks._WELL_FORMED.update(dict.fromkeys(saved, lambda _: False))
        checks._UNKNOWN_TYPE_WELL_FORMED = lambda _: False
        return checks.event_problems(payload)
    finally:
        checks._WELL_FORMED.update(saved)
        checks._UNKNOWN_TYPE_WELL_FORMED = saved_unknown


SDK_SERVER_EVENT_TYPES = sorted(t.value for t in ServerEventType)
WRONG = {"string": 7, "integer": "x", "number": "x", "boolean": "x", "object": "x", "array": "x",
         "base64": 7, "array or string": 7}  # fmt: skip


@pytest.mark.parametrize("etype", SDK_SERVER_EVENT_TYPES)
async def test_a_malformed_event_of_every_type_the_sdk_knows_is_a_warning_and_reads_as_sent(wires, etype):  # noqa: F811
    fields = protocol.SERVER_EVENT_FIELDS[etype]
    path, kind = next(iter(fields.items()), ("event_id", "string"))
    event: dict[str, Any] = {"type": etype}
    *parents, key = path.split(".")
    holder = event
    for part in parents:
        holder = holder.setdefault(part, {})
    holder[key] = WRONG[kind]
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        wire.push(event)
        wire.push({"type": "response.done", "response": {"id": "resp_1"}})
        typed = await s.wait_for("response.done")
        assert s.protocol_warnings == 1 and s.connection_error is None
    got = next(e for e in typed if e.get("type") == etype)
    assert isinstance(got, sdk_adapter.RawServerEvent) and got == event  # as sent: no model to raise
    assert getattr(got, parents[0] if parents else key) == event[parents[0] if parents else key]
    warning = next(r for r in s.records if r.type == protocol.PROTOCOL_WARNING)
    assert json.loads(warning.payload)["problems"] == [
        f"{path!r} is {'a number' if isinstance(WRONG[kind], int) else 'a string'}, not "
        f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    ]


def test_a_warning_keeps_the_frame_s_text_as_it_is():
    from vlab.session.checks import warning_event

    warning = warning_event({"type": "response.text.delta", "delta": "café ☕"}, ["'delta' is odd"])
    assert "café ☕" in warning["raw"]  # not escaped to \\u sequences: the log shows what came
