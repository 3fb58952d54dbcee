"""The emulator against hostile clients: deep nesting, numbers JSON cannot carry, half-open requests.

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

from vlab.clock import VirtualClock
from vlab.emulator.wire import WireError, parse_client_frame
from vlab.protocol_limits import HANDSHAKE_TIMEOUT_S, MAX_JSON_DEPTH
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


async def _send(ws: aiohttp.ClientWebSocketResponse, event: dict[str, Any] | str) -> dict[str, Any]:
    await ws.send_str(event if isinstance(event, str) else json.dumps(event))
    return json.loads((await ws.receive(timeout=30)).data)


async def test_deep_metadata_and_nan_are_refused_and_never_poison_the_session(caplog):
    caplog.set_level(logging.INFO, logger="vlab.emulator")
    async with fast_emulator() as emu, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            emu.endpoint + "/voice-live/realtime", headers={"api-key": emu.api_key}, max_msg_size=0
        )
        assert json.loads((await ws.receive()).data)["type"] == "session.created"
        deep = {"type": "session.update", "session": {"metadata": {"deep": _nested(900)}}}
        refused = await _send(ws, deep)
        assert refused["type"] == "error" and refused["error"]["type"] == "invalid_request_error"
        nan = await _send(ws, '{"type": "session.update", "session": {"temperature": NaN}}')
        assert nan["type"] == "error" and nan["error"]["code"] == "invalid_json"
        for _ in range(3):  # later updates work: nothing of the refused events was stored
            updated = await _send(ws, {"type": "session.update", "session": {"instructions": "hi"}})
            assert updated["type"] == "session.updated"
            assert "deep" not in json.dumps(updated) and updated["session"].get("temperature") != "NaN"
        await ws.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while chunk := await reader.read(4096):
        data += chunk
    return data


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
        assert await asyncio.wait_for(_read_until_closed(reader), 10) == b""  # closed without an answer
        writer.close()
        reply = await _send(ws, {"type": "input_audio_buffer.clear"})  # the complete one goes on
        assert reply["type"] == "input_audio_buffer.cleared"
        await ws.close()


async def test_a_client_that_sends_nothing_is_cut_off_and_health_checks_are_not():
    clock = VirtualClock()
    async with fast_emulator(clock=clock) as emu, aiohttp.ClientSession() as http:
        reader, writer = await asyncio.open_connection(emu.host, emu.port)
        async with http.get(emu.endpoint + "/health") as response:
            assert response.status == 200
        await clock.wait_for_sleepers()
        assert clock.sleepers == 1  # the health check's connection (kept alive) has no timer any more
        clock.advance_s(HANDSHAKE_TIMEOUT_S)
        assert await asyncio.wait_for(_read_until_closed(reader), 10) == b""
        writer.close()
        async with http.get(emu.endpoint + "/health") as response:  # a complete request is served
            assert (await response.json())["status"] == "ok"


def test_the_handshake_timeout_must_be_positive():
    from vlab.emulator import Emulator
    from vlab.errors import ConfigError

    with pytest.raises(ConfigError, match="handshake_timeout_s"):
        Emulator(handshake_timeout_s=0)
