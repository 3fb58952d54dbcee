"""The emulator against hostile clients: deep nesting, numbers JSON cannot carry, half-open requests.

Half-open requests are timed on the emulator's clock (a :class:`~vlab.clock.VirtualClock`): every
request's headers, the first from the connection and a later one on a kept-alive connection from its
first byte; an idle kept-alive connection is left to the keep-alive timeout.

Each limit is tested on both sides: the largest accepted input works, one step more is refused with an
``invalid_request_error`` (never a ``server_error`` or a logged traceback), and nothing refused is
stored. The frame, append and buffer limits are in ``tests/integration/test_emulator_connection.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest

from tests import _raw_http as raw
from tests._raw_http import read_until_closed
from vlab.clock import NS_PER_S, VirtualClock
from vlab.emulator import Emulator
from vlab.emulator.server import STOP_GRACE_S
from vlab.emulator.wire import WireError, parse_client_frame
from vlab.errors import ConfigError
from vlab.protocol_limits import HANDSHAKE_TIMEOUT_S, KEEPALIVE_TIMEOUT_S, MAX_JSON_DEPTH
from vlab.testing import fast_emulator


def _nested(depth: int) -> Any:
    """A value nesting ``depth`` objects and arrays (alternating), innermost a string."""
    value: Any = "x"
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def test_nesting_up_to_the_limit_is_read_and_beyond_it_refused():
    # the event object itself is the first level
    assert parse_client_frame(json.dumps({"type": "x", "m": _nested(MAX_JSON_DEPTH - 1)}))["type"] == "x"
    wide = {"type": "x", "m": _nested(MAX_JSON_DEPTH - 1), "n": [[], {}]}  # more brackets, no deeper
    assert parse_client_frame(json.dumps(wide))["n"] == [[], {}]
    with pytest.raises(WireError) as deeper:
        parse_client_frame(json.dumps({"type": "x", "event_id": "e1", "m": _nested(MAX_JSON_DEPTH)}))
    assert (deeper.value.type, deeper.value.code, deeper.value.event_id) == (
        "invalid_request_error", "invalid_value", "e1",
    )  # fmt: skip
    assert f"more than {MAX_JSON_DEPTH} levels deep" in deeper.value.message
    with pytest.raises(WireError, match="levels deep"):  # far past the parser's own recursion limit
        parse_client_frame("[" * 100_000 + "]" * 100_000)
    flat = {"type": "x", "s": "{[" * 1000}  # brackets inside strings are not nesting
    assert parse_client_frame(json.dumps(flat)) == flat


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_numbers_json_cannot_carry_are_refused(number):
    with pytest.raises(WireError) as info:
        parse_client_frame(f'{{"type": "session.update", "session": {{"temperature": {number}}}}}')
    assert info.value.code == "invalid_json" and f"{number} is not a finite number" in info.value.message


def test_finite_numbers_at_the_edge_are_read():
    event = parse_client_frame(
        '{"type": "x", "a": 1.7976931348623157e308, "b": -5e-324, "c": 100000000000000000000}'
    )
    assert event["a"] == 1.7976931348623157e308 and event["b"] == -5e-324 and event["c"] == 10**20


def _not_json(constant: str) -> Any:
    raise AssertionError(f"the emulator sent {constant}, which is not JSON")


async def _send(ws: aiohttp.ClientWebSocketResponse, event: dict[str, Any] | str) -> dict[str, Any]:
    await ws.send_str(event if isinstance(event, str) else json.dumps(event))
    return json.loads((await ws.receive(timeout=30)).data)


async def test_deep_metadata_and_nan_are_refused_and_never_poison_the_session(caplog):
    caplog.set_level(logging.INFO, logger="vlab.emulator")
    async with fast_emulator() as emu, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            emu.endpoint + "/voice-live/realtime", headers={"api-key": emu.api_key}, max_msg_size=0
        )
        created = json.loads((await ws.receive()).data)
        assert created["type"] == "session.created"
        deep = {"type": "session.update", "session": {"metadata": {"deep": _nested(900)}}}
        refused = await _send(ws, deep)
        assert refused["type"] == "error" and refused["error"]["type"] == "invalid_request_error"
        nan = await _send(ws, '{"type": "session.update", "session": {"temperature": NaN}}')
        assert nan["type"] == "error" and nan["error"]["code"] == "invalid_json"
        for n in range(3):  # later updates work: nothing of the refused events was stored
            await ws.send_str(json.dumps({"type": "session.update", "session": {"instructions": f"hi {n}"}}))
            text = (await ws.receive(timeout=30)).data
            updated = json.loads(text, parse_constant=_not_json)  # strict JSON: no NaN or Infinity
            assert updated["type"] == "session.updated"
            expected = {**created["session"], "instructions": f"hi {n}"}  # exactly the update, nothing else
            assert updated["session"] == expected
        await ws.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_half_open_request_is_cut_off_after_the_handshake_timeout():
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu, aiohttp.ClientSession() as http:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        writer.write(b"GET /voice-live/realtime HTTP/1.1\r\nHost: x\r\napi-key: ")  # and then nothing
        await writer.drain()
        ws = await http.ws_connect(  # a complete handshake on the same emulator meanwhile
            emu.endpoint + "/voice-live/realtime", headers={"api-key": emu.api_key}
        )
        assert json.loads((await ws.receive()).data)["type"] == "session.created"
        await clock.wait_for_sleepers()
        assert clock.sleepers == 1  # only the half-open one waits: the complete one's timer has stopped
        assert clock.next_deadline_ns() == round(HANDSHAKE_TIMEOUT_S * 1e9)
        clock.advance_s(HANDSHAKE_TIMEOUT_S - 0.001)
        await asyncio.sleep(0)  # wall-clock ok: one loop turn, no time passes (lets the posted callback run)
        assert not reader.at_eof()  # not yet
        clock.advance_s(0.001)
        assert await asyncio.wait_for(read_until_closed(reader), 10) == b""  # closed without an answer
        writer.close()
        reply = await _send(ws, {"type": "input_audio_buffer.clear"})  # the complete one goes on
        assert reply["type"] == "input_audio_buffer.cleared"
        await ws.close()


async def test_a_client_that_sends_nothing_is_cut_off():
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == round(HANDSHAKE_TIMEOUT_S * 1e9)
        clock.advance_s(HANDSHAKE_TIMEOUT_S)
        assert await asyncio.wait_for(read_until_closed(reader), 10) == b""
        writer.close()


FIRST_REQUESTS = {
    "health 200": (raw.request("GET", "/health"), 200),
    "bad key 401": (raw.request("GET", "/voice-live/realtime", "api-key: wrong\r\n"), 401),
    "unknown path 404": (raw.request("GET", "/nope"), 404),
    # a body that looks like the end of headers and then half a request: skipped by its length, not read
    "body with a blank line 405": (raw.request("POST", "/health", body=b"a\r\n\r\nGET / HTTP/1.1\r\nHo"), 405),
}  # fmt: skip
HALF_REQUESTS = {
    "request": b"GET /health HTTP/1.1\r\nHost: x\r\n",
    "upgrade": b"GET /voice-live/realtime HTTP/1.1\r\nHost: x\r\n" + raw.UPGRADE_HEADERS.encode(),
}


@pytest.mark.parametrize("half", list(HALF_REQUESTS))
@pytest.mark.parametrize("first", list(FIRST_REQUESTS))
async def test_a_half_sent_second_request_on_a_kept_alive_connection_is_cut_off_at_the_deadline(first, half):
    clock = VirtualClock()
    complete, status = FIRST_REQUESTS[first]
    async with fast_emulator(clock=clock) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        for piece in (complete[:7], complete[7:-3], complete[-3:]):  # the request's bytes in three reads
            writer.write(piece)
            await writer.drain()
        answered, headers, _ = await raw.read_response(reader)
        assert answered == status and headers.get("connection") != "close"  # kept alive
        assert clock.sleepers == 0  # idle between requests: no header timer (the keep-alive timeout's turn)
        clock.advance_s(HANDSHAKE_TIMEOUT_S)  # however long the client waits before its next request
        writer.write(HALF_REQUESTS[half])  # the second request, its headers never finished
        await writer.drain()
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == clock.monotonic_ns() + round(HANDSHAKE_TIMEOUT_S * 1e9)
        clock.advance_s(HANDSHAKE_TIMEOUT_S - 0.001)
        await asyncio.sleep(0)  # wall-clock ok: one loop turn, no time passes (lets a posted callback run)
        assert not reader.at_eof() and clock.sleepers == 1  # not yet
        clock.advance_s(0.001)
        assert await asyncio.wait_for(read_until_closed(reader), 10) == b""  # cut off, never answered
        writer.close()


async def test_pipelined_requests_are_each_timed_and_each_answered():
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        writer.write(
            raw.request("GET", "/health") + raw.request("GET", "/nope") + b"GET /health HTTP/1.1\r\n"
        )
        await writer.drain()
        assert [(await raw.read_response(reader))[0] for _ in range(2)] == [200, 404]
        await clock.wait_for_sleepers()  # the third, unfinished, is timed from its first byte
        writer.write(b"Host: x\r\n\r\n")  # finished in time
        await writer.drain()
        assert (await raw.read_response(reader))[0] == 200
        assert clock.sleepers == 0
        writer.close()


async def test_an_upgrade_after_a_complete_request_is_timed_and_then_a_websocket_with_no_timer():
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        writer.write(raw.request("GET", "/health"))
        assert (await raw.read_response(reader))[0] == 200
        upgrade = raw.upgrade("/voice-live/realtime", emu.api_key)
        writer.write(upgrade[:20])
        await writer.drain()
        await clock.wait_for_sleepers()  # the upgrade's headers are timed
        writer.write(upgrade[20:])
        status, headers, _ = await raw.read_response(reader)
        assert status == 101 and headers["upgrade"] == "websocket"
        opcode, payload = await raw.read_frame(reader)
        assert (opcode, json.loads(payload)["type"]) == (0x1, "session.created")
        clock.advance_s(10 * HANDSHAKE_TIMEOUT_S)  # a WebSocket is never timed by the guard
        writer.write(raw.text_frame(json.dumps({"type": "input_audio_buffer.clear"})))
        opcode, payload = await raw.read_frame(reader)
        assert json.loads(payload)["type"] == "input_audio_buffer.cleared"
        writer.close()


@pytest.mark.parametrize("key", ["wrong", None], ids=["bad key", "good key, upgrade refused"])
async def test_a_refused_upgrade_is_the_connections_last_request(key):
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        if key is None:  # an upgrade to something else than a WebSocket
            writer.write(
                raw.request(
                    "GET",
                    "/voice-live/realtime",
                    f"api-key: {emu.api_key}\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n",
                )
            )
        else:
            writer.write(raw.upgrade("/voice-live/realtime", key))
        await writer.drain()
        status, headers, _ = await raw.read_response(reader)
        assert status == (401 if key else 400) and headers["connection"] == "close"
        writer.write(b"GET /health HTTP/1.1\r\n")  # a second request is not read: the connection ends
        assert await asyncio.wait_for(read_until_closed(reader), 10) == b""
        assert clock.sleepers == 0
        writer.close()


async def test_a_chunked_request_is_the_connections_last_request():
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        head = raw.request("POST", "/health", "Transfer-Encoding: chunked\r\n")
        writer.write(head + b"5\r\n\r\n\r\nx\r\n0\r\n\r\n")  # a chunk that looks like the end of headers
        status, headers, _ = await raw.read_response(reader)
        assert (status, headers["connection"]) == (
            405,
            "close",
        )  # the guard counts no chunks: no next request
        assert await asyncio.wait_for(read_until_closed(reader), 10) == b""
        assert clock.sleepers == 0
        writer.close()


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout():
    clock = VirtualClock()
    async with fast_emulator(clock=clock, keepalive_timeout_s=0.2) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        writer.write(raw.request("GET", "/health"))
        assert (await raw.read_response(reader))[0] == 200
        # wall-clock ok: aiohttp's keep-alive timer runs on the event loop's clock (0.2 s), not the emulator's
        assert await asyncio.wait_for(read_until_closed(reader), 10) == b""
        assert clock.monotonic_ns() == 0  # the emulator's clock never moved: the keep-alive timeout did it
        writer.close()
    assert Emulator().keepalive_timeout_s == KEEPALIVE_TIMEOUT_S


def test_the_handshake_and_keepalive_timeouts_must_be_positive():
    with pytest.raises(ConfigError, match="handshake_timeout_s"):
        Emulator(handshake_timeout_s=0)
    with pytest.raises(ConfigError, match="keepalive_timeout_s must be a number of seconds > 0, got True"):
        Emulator(keepalive_timeout_s=True)


async def test_headers_too_large_for_aiohttp_end_the_connection():
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        writer.write(
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Junk: y\r\n" * 200
        )  # more lines than it takes
        assert (await raw.read_response(reader))[0] == 400
        assert (
            await asyncio.wait_for(read_until_closed(reader), 10) == b""
        )  # the guard's cap is never reached
        writer.close()


async def test_stop_gives_held_sessions_and_silent_clients_one_grace_then_cuts_them_off_leaving_nothing():
    """Sessions a ``delay`` fault holds before their ``session.created``, whose clients never answer the close:
    ``stop()`` waits :data:`STOP_GRACE_S` on the emulator's clock for all of them (not aiohttp's 10 s per
    connection, one after another), then cancels the sessions, and their timelines stop with them."""
    clock = VirtualClock()
    async with fast_emulator(clock=clock, faults="delay_before:session.created:60000") as emu:
        clients = [await asyncio.open_connection(emu.host, emu.port) for _ in range(2)]
        for reader, writer in clients:
            writer.write(raw.upgrade("/voice-live/realtime", emu.api_key))
            assert (await raw.read_response(reader))[0] == 101
        await clock.wait_for_sleepers(2)  # both session.created are held back
        stopping = asyncio.create_task(emu.stop())
        await clock.wait_for_sleepers(3)  # and the grace runs
        assert clock.next_deadline_ns() == round(STOP_GRACE_S * NS_PER_S)
        clock.advance_s(STOP_GRACE_S)
        await stopping
        assert asyncio.all_tasks() == {asyncio.current_task()}
        for reader, writer in clients:
            opcode, payload = await raw.read_frame(reader)  # the close it did not answer, then the end
            assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1000)
            assert await read_until_closed(reader) == b""
            writer.close()
