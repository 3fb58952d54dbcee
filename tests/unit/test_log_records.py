from __future__ import annotations

import base64
import dataclasses
import json
import math

import pytest

from vlab.log import EventRecord, record_from_event
from vlab.log.records import audio_size
from vlab.protocol import SIM_MS_KEY

WALL = 1_750_000_000 * 10**9


def rec(event, direction="server", **kw):
    return record_from_event(event, direction=direction, seq=kw.pop("seq", 3), t_ns=100, wall_ns=WALL, **kw)


def test_session_created_plain_fields_and_payload():
    event = {
        "type": "session.created",
        "event_id": "event_1",
        "session": {"id": "sess_1", "voice": {"name": "x"}},
    }
    r = rec(event)
    assert (r.seq, r.t_ns, r.wall_ns, r.direction, r.type) == (3, 100, WALL, "server", "session.created")
    assert r.event_id == "event_1"
    assert r.response_id is r.item_id is r.text is r.audio_bytes is r.error_code is None
    assert json.loads(r.payload) == event
    assert " " not in r.payload  # compact separators


def test_record_is_frozen_and_slotted():
    r = rec({"type": "session.created"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.seq = 5  # type: ignore[misc]
    assert not hasattr(r, "__dict__")
    assert r == EventRecord(**{f.name: getattr(r, f.name) for f in dataclasses.fields(EventRecord)})


def test_speech_started_and_stopped():
    started = rec({"type": "input_audio_buffer.speech_started", "audio_start_ms": 1200, "item_id": "item_1"})
    assert started.audio_start_ms == 1200.0 and isinstance(started.audio_start_ms, float)
    assert started.item_id == "item_1" and started.audio_end_ms is None
    stopped = rec({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2480, "item_id": "item_1"})
    assert stopped.audio_end_ms == 2480.0 and stopped.audio_start_ms is None


def test_response_created_and_done_nested_ids():
    created = rec(
        {"type": "response.created", "event_id": "e", "response": {"id": "resp_1", "status": "in_progress"}}
    )
    assert created.response_id == "resp_1"
    done = rec(
        {
            "type": "response.done",
            "response": {"id": "resp_1", "output": [{"id": "item_9", "type": "message"}]},
        }
    )
    assert done.response_id == "resp_1" and done.item_id is None


def test_output_item_added_nested_item_and_call_id():
    r = rec(
        {
            "type": "response.output_item.done",
            "response_id": "resp_1",
            "output_index": 1,
            "item": {"id": "item_2", "type": "function_call", "call_id": "call_7", "arguments": "{}"},
        }
    )
    assert (r.response_id, r.item_id, r.output_index, r.call_id) == ("resp_1", "item_2", 1, "call_7")


@pytest.mark.parametrize("n_bytes", [960, 961, 962, 0, 1, 2, 3])
def test_audio_delta_base64_padding(n_bytes):
    raw = bytes(range(256)) * 4
    b64 = base64.b64encode(raw[:n_bytes]).decode()
    assert audio_size(b64) == n_bytes
    r = rec(
        {
            "type": "response.audio.delta",
            "response_id": "resp_1",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": b64,
        },
        audio_bytes_per_s=48_000,
    )
    assert r.audio_bytes == n_bytes
    assert r.audio_ms == pytest.approx(n_bytes / 48)
    assert r.text is None and r.content_index == 0
    if b64:
        assert b64 not in r.payload
    assert "delta" not in json.loads(r.payload)


def test_audio_as_raw_bytes_and_unknown_rate():
    r = rec({"type": "response.audio.delta", "delta": bytes(480)})
    assert r.audio_bytes == 480 and r.audio_ms is None
    assert audio_size(memoryview(bytes(10))) == 10


def test_client_append_with_input_offset_and_event_not_mutated():
    b64 = base64.b64encode(bytes(640)).decode()  # 20 ms at 16 kHz PCM16
    event = {"type": "input_audio_buffer.append", "event_id": "c1", "audio": b64}
    r = rec(event, direction="client", audio_bytes_per_s=32_000, input_offset_ms=1000.0)
    assert r.direction == "client" and r.audio_bytes == 640
    assert r.audio_ms == pytest.approx(20.0)
    assert r.audio_start_ms == 1000.0 and r.audio_end_ms == pytest.approx(1020.0)
    assert b64 not in r.payload and json.loads(r.payload) == {
        "type": "input_audio_buffer.append",
        "event_id": "c1",
    }
    assert event["audio"] == b64  # the caller's event is untouched


def test_item_create_with_nested_input_audio_is_stripped():
    b64 = base64.b64encode(bytes(300)).decode()
    event = {
        "type": "conversation.item.create",
        "item": {"id": "it", "type": "message", "content": [{"type": "input_audio", "audio": b64}]},
    }
    r = rec(event, direction="client")
    assert r.item_id == "it" and b64 not in r.payload
    assert event["item"]["content"][0]["audio"] == b64


def test_error_event():
    r = rec(
        {
            "type": "error",
            "event_id": "event_srv",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_value",
                "message": "bad",
                "event_id": "c9",
            },
        }
    )
    assert (r.error_code, r.error_message) == ("invalid_value", "bad")
    assert r.event_id == "c9"  # the client event the error is about
    assert json.loads(r.payload)["event_id"] == "event_srv"


def test_a_failed_response_done_carries_its_error():
    error = {"type": "server_error", "code": "server_error", "message": "no reply"}
    failed = {"id": "r1", "status": "failed", "status_details": {"type": "failed", "error": error}}
    r = rec({"type": "response.done", "response": failed})
    assert (r.response_id, r.error_code, r.error_message) == ("r1", "server_error", "no reply")
    cancelled = {"id": "r2", "status": "cancelled", "status_details": {"type": "cancelled", "error": error}}
    for response in (
        cancelled,
        {"id": "r3", "status_details": "failed"},
        {"id": "r4", "status_details": None},
    ):
        r = rec({"type": "response.done", "response": response})
        assert (r.error_code, r.error_message) == (None, None)
    other = rec({"type": "response.created", "response": failed})  # only response.done ends a response
    assert other.error_code is None


def test_text_sources():
    assert rec({"type": "response.audio_transcript.delta", "delta": "Hel"}).text == "Hel"
    assert rec({"type": "response.audio_transcript.done", "transcript": "Hello"}).text == "Hello"
    assert rec({"type": "response.text.done", "text": "Hi"}).text == "Hi"
    r = rec(
        {
            "type": "response.function_call_arguments.done",
            "call_id": "call_1",
            "item_id": "it",
            "output_index": 0,
            "arguments": '{"city":"Paris"}',
        }
    )
    assert r.text == '{"city":"Paris"}' and r.call_id == "call_1"


def test_mapping_that_is_not_a_dict_and_odd_values():
    from collections import UserDict

    r = rec(UserDict({"type": "response.text.delta", "delta": "é", "output_index": "2", "blob": b"\x00"}))
    assert r.type == "response.text.delta" and r.text == "é" and r.output_index == 2
    assert "é" in r.payload  # ensure_ascii=False
    assert json.loads(r.payload)["blob"] is None


def test_an_item_response_or_error_that_is_not_an_object_gives_no_ids_and_no_error():
    r = rec({"type": "conversation.item.created", "item": "x", "response": [1], "error": "boom"})
    assert r.item_id is r.call_id is r.response_id is r.error_code is r.error_message is None
    assert json.loads(r.payload)["item"] == "x"


def test_the_payload_keeps_the_events_key_order():
    assert rec({"type": "x", "z": 1, "a": {"y": 2, "b": 3}}).payload == '{"type":"x","z":1,"a":{"y":2,"b":3}}'


def test_sim_ms_moves_from_the_payload_into_its_field():
    event = {
        "type": "input_audio_buffer.speech_stopped",
        "audio_end_ms": 2480,
        "item_id": "i",
        SIM_MS_KEY: 2480,
    }
    r = rec(event)
    assert r.sim_ms == 2480.0 and isinstance(r.sim_ms, float)
    assert SIM_MS_KEY not in r.payload
    assert json.loads(r.payload) == {
        "type": "input_audio_buffer.speech_stopped",
        "audio_end_ms": 2480,
        "item_id": "i",
    }
    assert event[SIM_MS_KEY] == 2480  # the caller's event is untouched


def test_sim_ms_with_audio_and_item_audio_stripped_too():
    b64 = base64.b64encode(bytes(480)).decode()
    delta = {"type": "response.audio.delta", "response_id": "r", "delta": b64, SIM_MS_KEY: 1500.5}
    r = rec(delta, audio_bytes_per_s=48_000)
    assert (r.sim_ms, r.audio_bytes, r.audio_ms) == (1500.5, 480, 10.0)
    assert json.loads(r.payload) == {"type": "response.audio.delta", "response_id": "r"}
    assert delta["delta"] == b64 and delta[SIM_MS_KEY] == 1500.5
    item = {"id": "it", "type": "message", "content": [{"type": "input_audio", "audio": b64}]}
    created = {"type": "conversation.item.created", "item": item, SIM_MS_KEY: 7.0}
    r = rec(created)
    assert r.sim_ms == 7.0 and json.loads(r.payload) == {
        "type": "conversation.item.created",
        "item": {"id": "it", "type": "message", "content": [{"type": "input_audio"}]},
    }
    assert item["content"][0]["audio"] == b64 and SIM_MS_KEY in created


def test_sim_ms_is_none_without_the_key_and_a_null_key_is_dropped():
    assert rec({"type": "session.created"}).sim_ms is None  # Azure sends no simulated time
    client = rec({"type": "response.create"}, direction="client")
    assert client.sim_ms is None
    r = rec({"type": "session.updated", SIM_MS_KEY: None})
    assert r.sim_ms is None and json.loads(r.payload) == {"type": "session.updated"}


def test_values_no_column_can_hold_become_missing():
    """A hostile server's numbers: ints beyond int64 and non-finite floats are logged as missing."""
    from vlab import protocol
    from vlab.log.records import event_row, record_from_row

    event = {
        "type": "response.audio.done",
        "output_index": 2**70,
        "content_index": float("inf"),
        "audio_end_ms": float("nan"),
        "audio_start_ms": 10**400,
        protocol.SIM_MS_KEY: float("-inf"),
    }
    record = record_from_row(event_row(event, direction="server", seq=0, t_ns=0, wall_ns=0))
    assert (record.output_index, record.content_index, record.audio_end_ms, record.audio_start_ms) == (
        None, None, None, None,
    )  # fmt: skip
    assert record.sim_ms is None
    swapped = {"type": "x", "output_index": -(2**63) - 1, "content_index": 2**63, "audio_start_ms": math.nan}
    record = record_from_row(event_row(swapped, direction="server", seq=0, t_ns=0, wall_ns=0))
    assert (record.output_index, record.content_index, record.audio_start_ms) == (None, None, None)
    edges = {"type": "x", "output_index": 2**63 - 1, "content_index": -(2**63), "audio_end_ms": 5}
    ok = record_from_row(event_row(edges, direction="server", seq=0, t_ns=0, wall_ns=0))
    assert (ok.output_index, ok.content_index, ok.audio_end_ms) == (2**63 - 1, -(2**63), 5.0)
