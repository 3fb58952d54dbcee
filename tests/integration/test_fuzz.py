"""vlab's fuzzer: hostile clients against the emulator, and a hostile server against vlab.Session.

- The emulator gets thousands of malformed frames (bad JSON, junk fields, deep nesting, NaN and
  Infinity, slow half-open sockets) and the size limits on both sides (appends at and over the append
  limit, an input buffer filled exactly and then past it, a frame over the frame limit on another
  connection): no crash, every refusal an ``invalid_request_error`` with a refusal's code, the socket
  stays usable, other sessions are unaffected.
- A hostile server (:func:`vlab.testing.scripted_server`) sends ``vlab.Session`` random malformed
  variants of every server event type the SDK knows (:data:`vlab.protocol.SERVER_EVENT_FIELDS`): the session never
  stops, logs each as a ``vlab.protocol_warning``, and its run folder loads. The suite sends 2 000; the
  full run of 10 000 is ``VLAB_FUZZ_EVENTS=10000 python -m pytest tests/integration/test_fuzz.py -k hostile``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import math
import os
import random
from typing import Any

import aiohttp
import pandas as pd
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import ServerEventType
from azure.core.credentials import AzureKeyCredential

import vlab
from tests import _raw_http as raw
from vlab import Session, protocol
from vlab.log import read_jsonl
from vlab.protocol_limits import (
    MAX_APPEND_AUDIO_BYTES,
    MAX_CLIENT_FRAME_BYTES,
    MAX_INPUT_BUFFER_BYTES,
    MAX_JSON_DEPTH,
)
from vlab.testing import collect_events, fast_emulator, scripted_server

N_FRAMES = 10_000
OVER_LIMIT_EVERY = 2500
"""Every this many frames, one append of more audio than the service takes in one append (refused)."""
REFUSAL_CODES = frozenset({
    "invalid_json", "invalid_event", "invalid_value", "invalid_type", "missing_required_parameter",
    "item_not_found", "input_audio_buffer_commit_empty", "input_audio_buffer_full",
    "conversation_already_has_active_response", "response_cancel_not_active", "cannot_update_voice",
})  # fmt: skip
"""The codes of the emulator's ``invalid_request_error`` refusals (an internal failure is a ``server_error``)."""
ANY, ERROR, ACCEPTED = "any", "error", "accepted"
"""What a fuzz frame must get: anything but an internal failure, some refusal, no error at all (else: the
one refusal code it must get)."""
WINDOW = 64
"""Frames (each with its probe) sent before their answers are read: the emulator answers one connection's
frames in order, so the events before probe n's answer are frame n's, as when each waits for its answer."""
REPLY_TYPES = frozenset({
    "error", "session.updated", "conversation.item.deleted", "response.created", "response.done",
    "response.output_item.added", "conversation.item.created", "response.content_part.added",
    "response.audio_transcript.delta", "response.audio.delta", "response.audio.done",
    "response.audio_transcript.done", "response.content_part.done", "response.output_item.done",
    "input_audio_buffer.committed", "input_audio_buffer.cleared",
})  # fmt: skip
"""The server events a fuzz frame may draw (a response it started streams on in later frames' replies)."""
SLOW_SOCKETS = 20
"""Half-open connections that dribble a request line during the fuzz (cut off at the handshake timeout)."""
CLIENT_TYPES = [
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "conversation.item.create", "conversation.item.retrieve", "conversation.item.truncate",
    "conversation.item.delete", "response.create", "response.cancel",
]  # fmt: skip
JUNK_VALUES = [None, True, -1, 3.5, "", "x" * 5000, [], [1, "a"], {}, {"type": 7}, "☃" * 100, 10**30]


def _malformed(rng: random.Random) -> tuple[str | bytes, str]:
    """A hostile frame and what the emulator must answer (see :data:`ANY`)."""
    frame, must_error = _hostile_frame(rng)
    return frame, ERROR if must_error else ANY


def _hostile_frame(rng: random.Random) -> tuple[str | bytes, bool]:
    """A hostile frame and whether the emulator must answer it with an error event."""
    kind = rng.randrange(12)
    if kind == 10:  # nesting: at the limit (read), past it (refused), past the parser's own recursion limit
        depth = rng.choice([MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, 900, 100_000])
        key = rng.choice(["session", "item", "response", "metadata"])
        frame = f'{{"type": "{rng.choice(CLIENT_TYPES)}", "{key}": {"[" * depth}0{"]" * depth}}}'
        return frame, depth >= MAX_JSON_DEPTH  # the event object is one level itself
    if kind == 11:  # numbers JSON cannot carry, where a number belongs
        number = rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
        field = rng.choice(['"temperature"', '"max_response_output_tokens"', '"audio_end_ms"'])
        etype = rng.choice(["session.update", "conversation.item.truncate", "response.create"])
        return f'{{"type": "{etype}", "session": {{{field}: {number}}}, {field}: {number}}}', True
    if kind == 0:
        return rng.choice(
            ["{", "}", "[1,", "nul", '{"type": "session.update",', "\x00\x01", "{'type': 'x'}"]
        ), True
    if kind == 1:
        return json.dumps(rng.choice([[], 1, "s", None, [{"type": "response.create"}]])), True
    if kind == 2:
        return json.dumps(
            {"type": rng.choice(JUNK_VALUES[:-1] + ["no.such.type", "", "RESPONSE.CREATE"])}
        ), True
    if kind == 3:  # a known type with junk fields
        etype = rng.choice(CLIENT_TYPES)
        body = {
            "type": etype,
            rng.choice(
                ["session", "audio", "item", "item_id", "response", "audio_end_ms", "content_index"]
            ): rng.choice(JUNK_VALUES),
        }
        return json.dumps(body), False  # may be valid (unknown keys are tolerated); must not crash anything
    if kind == 4:
        return json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": rng.choice(["@@@", "abc", "A" * 7, "====", "*" * 100]),
            }
        ), True
    if kind == 5:  # odd audio lengths: valid, silently accepted
        raw = bytes(rng.randrange(0, 50))
        return json.dumps(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(raw).decode()}
        ), False
    if kind == 6:  # unknown item ids
        etype = rng.choice(
            ["conversation.item.retrieve", "conversation.item.delete", "conversation.item.truncate"]
        )
        return json.dumps(
            {"type": etype, "item_id": f"item_{rng.randrange(10**9)}", "content_index": 0, "audio_end_ms": 5}
        ), True
    if kind == 7:  # binary frames: JSON in bytes, or garbage
        if rng.random() < 0.5:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))), True
        return json.dumps({"type": "input_audio_buffer.clear"}).encode(), False
    if kind == 8:  # out-of-order control: cancel/commit when there may be nothing to act on
        return json.dumps(
            {"type": rng.choice(["response.cancel", "input_audio_buffer.commit", "response.create"])}
        ), False
    return json.dumps(
        {
            "type": "session.update",
            "session": {
                "turn_detection": {"type": "server_vad", "threshold": rng.choice([-1, 2, "hi", [0.5]])}
            },
        }
    ), True


async def _slow_socket(host: str, port: int, rng: random.Random) -> bytes:
    """Dribble a request one byte at a time and never finish it; returns what the emulator sent back."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for byte in b"GET /voice-live/realtime?api-version=2026-07-15 HTTP/1.1\r\nHost: x\r\napi-key: k":
            writer.write(bytes([byte]))
            await writer.drain()
            if reader.at_eof():
                break
            await asyncio.sleep(rng.uniform(0.0, 0.05))  # wall-clock ok: a slow client, by design
        return await asyncio.wait_for(reader.read(), 30)  # then it waits: b"" once the emulator cuts it off
    except ConnectionError:
        return b""
    finally:
        writer.close()


def _append(audio_bytes: int) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(audio_bytes)).decode()}
    )


def _buffer_limits() -> list[tuple[str, str]]:
    """Fill the input buffer (no turn detection) with appends exactly at the limit, then one sample more."""
    clear = json.dumps({"type": "input_audio_buffer.clear"})
    largest = _append(MAX_APPEND_AUDIO_BYTES)
    appends = [(largest, ACCEPTED)] * (MAX_INPUT_BUFFER_BYTES // MAX_APPEND_AUDIO_BYTES)
    return [
        (json.dumps({"type": "session.update", "session": {"turn_detection": None}}), ACCEPTED),
        (clear, ACCEPTED),
        *appends,  # the largest append, accepted, until the buffer is exactly full
        (_append(2), "input_audio_buffer_full"),
        (clear, ACCEPTED),
    ]


async def _replies_until_probe(ws: aiohttp.ClientWebSocketResponse, probe: str) -> list[dict[str, Any]]:
    """The server events that came before the error answering ``probe``."""
    replies = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        event = json.loads(msg.data)
        if event["type"] == "error" and event["error"].get("event_id") == probe:
            return replies
        replies.append(event)


def _check_replies(frame: str | bytes, expected: str, replies: list[dict[str, Any]]) -> None:
    """Assert ``replies`` (what the emulator sent between a frame and its probe) are what ``expected`` asks."""
    errors = [e for e in replies if e["type"] == "error"]
    shown = frame[:200]
    if expected == ERROR:
        assert errors, f"no error event for {shown!r}: {replies}"
    elif expected == ACCEPTED:
        assert errors == [], f"{shown!r} was refused: {errors}"
    elif expected != ANY:
        assert [e["error"]["code"] for e in errors] == [expected], (shown, errors)
    for e in errors:  # a refusal, never an internal failure (type server_error)
        assert e["error"]["type"] == "invalid_request_error", (shown, e)
        assert e["error"]["code"] in REFUSAL_CODES and e["error"]["message"], (shown, e)
    assert all(e["type"] in REPLY_TYPES for e in replies), (shown, replies)


async def test_ten_thousand_malformed_frames_never_break_the_emulator(prompt, caplog):
    caplog.set_level(logging.WARNING, logger="vlab.emulator")
    rng = random.Random(1234)
    frames = [_malformed(rng) for _ in range(N_FRAMES)]
    for n in range(OVER_LIMIT_EVERY // 2, N_FRAMES, OVER_LIMIT_EVERY):  # 1 to 4 bytes over the limit
        frames[n] = (_append(MAX_APPEND_AUDIO_BYTES + rng.randint(1, 4)), "invalid_value")
    frames[N_FRAMES // 2 : N_FRAMES // 2] = _buffer_limits()
    too_big_at = N_FRAMES // 3  # where another connection sends a frame over the frame limit
    async with fast_emulator(handshake_timeout_s=1.0) as emu:
        slow = [asyncio.create_task(_slow_socket(emu.host, emu.port, rng)) for _ in range(SLOW_SOCKETS)]
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(
            emu.endpoint + "/voice-live/realtime?api-version=2026-07-15",
            headers={"api-key": emu.api_key},
            max_msg_size=0,
        )
        assert json.loads((await ws.receive()).data)["type"] == "session.created"

        async def bystander() -> list[str]:
            async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
                await conn.input_audio_buffer.append(audio=prompt.pcm)
                return [e.type for e in await collect_events(conn, "response.done", timeout_s=60)]

        other = asyncio.create_task(bystander())
        try:
            for start in range(0, len(frames), WINDOW):
                window = list(enumerate(frames[start : start + WINDOW], start))
                for n, (frame, _) in window:
                    if n == too_big_at:  # closes that connection with 1009; this one and the bystander go on
                        assert await raw.close_code_for_a_frame_of(emu, MAX_CLIENT_FRAME_BYTES + 1) == 1009
                    await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
                    # a probe whose answer is unmistakable: an error that names the probe's own event_id
                    await ws.send_str(json.dumps(
                        {"type": "conversation.item.retrieve", "item_id": f"probe-{n}", "event_id": f"probe-{n}"}
                    ))  # fmt: skip
                for n, (frame, expected) in window:
                    _check_replies(frame, expected, await _replies_until_probe(ws, f"probe-{n}"))
            kinds = await other
            assert await asyncio.gather(*slow) == [b""] * SLOW_SOCKETS  # cut off, never answered
        finally:
            await ws.close()
            await http.close()
            for task in slow:
                task.cancel()
            await asyncio.gather(*slow, return_exceptions=True)
    assert kinds.count("response.done") == 1  # the other session was unaffected
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]  # no tracebacks


# --- hostile-server mode: vlab.Session against a server that sends malformed events ---------------------

N_HOSTILE_EVENTS = int(os.environ.get("VLAB_FUZZ_EVENTS", "2000"))
"""Malformed server events per hostile-server run: 2 000 in the suite; the full run is
``VLAB_FUZZ_EVENTS=10000 python -m pytest tests/integration/test_fuzz.py -k hostile``."""
SERVER_TYPES = sorted(protocol.SERVER_EVENT_FIELDS)
"""The server event types fuzzed: every one SDK 1.3.x knows (its ``ServerEventType``)."""
GOOD = {"string": "item_1", "integer": 1, "number": 2.5, "boolean": True, "object": {}, "array": [],
        "base64": base64.b64encode(bytes(480)).decode(), "array or string": [[0.0, 0.5]]}  # fmt: skip


def test_the_hostile_server_fuzzes_every_server_event_type_the_sdk_knows():
    assert set(SERVER_TYPES) == {t.value for t in ServerEventType}
    assert {kind for fields in protocol.SERVER_EVENT_FIELDS.values() for kind in fields.values()} <= set(GOOD)


HOSTILE_VALUES = [
    None, True, False, 0, -1, 2**70, 3.5, math.nan, math.inf, -math.inf, "", "x" * 5000, "☃" * 50,
    "@@@!", "AAA", "A===", "../../escape", [], [1, "a"], {}, {"id": 7}, {"type": 7}, ["x"] * 300,
]  # fmt: skip


def _good_event(etype: str) -> dict[str, Any]:
    """A well-formed ``etype`` event: each field of its spec with a value of its type."""
    event: dict[str, Any] = {"type": etype, "event_id": "event_1"}
    for path, kind in protocol.SERVER_EVENT_FIELDS[etype].items():
        *parents, last = path.split(".")
        holder = event
        for part in parents:
            holder = holder.setdefault(part, {})
        holder[last] = copy.deepcopy(GOOD[kind])
    return event


def _hostile_event(rng: random.Random) -> str:
    """A server event of a random known type with one to three fields broken (or a wholly odd one)."""
    etype = rng.choice(SERVER_TYPES)
    event = _good_event(etype)
    paths = [*protocol.SERVER_EVENT_FIELDS[etype], "event_id", protocol.SIM_MS_KEY, "type"]
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(10)
        path = rng.choice(paths)
        *parents, last = path.split(".")
        holder = event
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue
        if kind < 6:  # a value of another type (or a string that is not what it should be)
            holder[last] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        elif kind == 6:
            holder.pop(last, None)
        elif kind == 7:  # nesting: deep but readable, or too deep to parse at all (spliced in as text)
            holder[last] = f"<deep {rng.choice([50, 500, 900, 5000])}>"
        elif kind == 8:
            holder[rng.choice(["extra", "x_vlab_unknown", ""])] = rng.choice(HOSTILE_VALUES)
        else:
            event["type"] = rng.choice(["no.such.event", "", "RESPONSE.DONE", 7, None, ["x"]])
    text = json.dumps(event, allow_nan=True)  # NaN and Infinity as Python writes them
    for depth in (50, 500, 900, 5000):
        text = text.replace(f'"<deep {depth}>"', "[" * depth + "0" + "]" * depth)
    return text


async def test_a_hostile_server_never_stops_the_session_and_the_run_folder_loads(tmp_path, caplog):
    rng = random.Random(2121)
    frames = [_hostile_event(rng) for _ in range(N_HOSTILE_EVENTS)]
    received: list[str] = []

    async def hostile(ws: Any) -> None:
        reader = asyncio.ensure_future(_drain_client(ws, received))
        await ws.send_str(json.dumps({"type": "session.created", "session": {"id": "sess_h"}}))
        for frame in frames:
            await ws.send_str(frame)
        await ws.send_str(json.dumps({"type": "fuzz.done"}))
        await reader  # until the client closes

    run = tmp_path / "run"
    async with scripted_server(hostile) as endpoint:
        async with Session(endpoint=endpoint, api_key="k", dotenv_path=False, run_dir=run) as s:
            await s.wait_for("fuzz.done", timeout_s=300)
            assert s.connection_error is None
            await s.send_text("still there?", respond=False)  # the session still sends
    assert not [r for r in caplog.records if "reader failed" in r.getMessage() or r.exc_info]
    frame = vlab.load_log(run)
    pd.testing.assert_frame_equal(frame, read_jsonl(run / "events.jsonl"))
    warnings = frame[frame["type"] == protocol.PROTOCOL_WARNING]
    assert len(warnings) == s.protocol_warnings > N_HOSTILE_EVENTS // 2
    assert set(SERVER_TYPES) <= set(frame.loc[frame["direction"] == "server", "type"])  # every type sent
    assert (frame["direction"] == "server").sum() >= N_HOSTILE_EVENTS - len(warnings)
    summary = json.loads((run / "session.json").read_text())["summary"]
    assert summary["protocol_warnings"] == s.protocol_warnings and summary["connection_error"] is None
    output = run / "output"
    assert not output.exists() or all(p.parent == output for p in output.iterdir())
    assert "conversation.item.create" in received


async def _drain_client(ws: Any, received: list[str]) -> None:
    """Read what the client sends (settings, barge-in cancels and truncations) until it closes."""
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            received.append(json.loads(msg.data).get("type"))
