"""vlab.Session over the real SDK against servers that are not (good) Voice Live, on real sockets.

An endpoint that accepts WebSockets but speaks something else, a frame over the client's size limit,
and frames that are not events at all: each ends with a VlabError that names the real cause, never an
internal error, and the run folder loads. (Malformed events that the session survives are fuzzed in
``tests/integration/test_fuzz.py``; their unit tests are in ``tests/unit/test_session_protocol_warnings.py``.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pandas as pd
import pytest

import vlab
from vlab import Session
from vlab.clock import VirtualClock
from vlab.errors import ConnectionFailed, ProtocolError
from vlab.log import read_jsonl
from vlab.protocol_limits import SDK_MAX_FRAME_BYTES
from vlab.testing import scripted_server

CREATED = json.dumps({"type": "session.created", "session": {"id": "sess_h"}})


async def _until_closed(ws: Any) -> None:
    async for _ in ws:
        pass


async def test_a_websocket_endpoint_that_says_nothing_is_not_voice_live():
    clock = VirtualClock()
    async with scripted_server(_until_closed) as endpoint:
        session = Session(endpoint=endpoint, api_key="k", dotenv_path=False, clock=clock)
        opening = asyncio.create_task(session.__aenter__())
        await clock.wait_for_sleepers()  # the handshake's timeout, on the session's clock
        clock.advance_s(30)
        with pytest.raises(ProtocolError) as info:
            await opening
    message = str(info.value)
    assert "accepted the WebSocket connection but did not speak Voice Live" in message
    assert "expected 'session.created' as the first event, got nothing within 30 s" in message
    assert "not a proxy, a wrong path or another WebSocket service" in message


@pytest.mark.parametrize(
    ("first", "got"),
    [
        ('{"type": "welcome", "motd": "hello"}', 'got \'welcome\': {"type": "welcome", "motd": "hello"}'),
        ("<html>502 Bad Gateway</html>", "got a frame that is not JSON"),
        ("[1, 2]", "got a frame that is not a JSON object: list"),
    ],
    ids=["another event", "html", "array"],
)
async def test_a_server_whose_first_frame_is_not_session_created_is_not_voice_live(first, got):
    async def script(ws: Any) -> None:
        await ws.send_str(first)
        await _until_closed(ws)

    async with scripted_server(script) as endpoint:
        with pytest.raises(ProtocolError) as info:
            async with Session(endpoint=endpoint, api_key="k", dotenv_path=False):
                pass
    assert "expected 'session.created' as the first event" in str(info.value)
    assert got in str(info.value)


async def test_a_malformed_session_created_is_a_warning_and_the_session_opens():
    async def script(ws: Any) -> None:
        await ws.send_str('{"type": "session.created", "session": "nope"}')
        await ws.send_str('{"type": "session.updated", "session": {"id": "s"}}')
        await _until_closed(ws)

    async with scripted_server(script) as endpoint:
        async with Session(endpoint=endpoint, api_key="k", dotenv_path=False) as s:
            await s.wait_for("session.updated", timeout_s=30)
            assert s.protocol_warnings == 1 and s.connection_error is None
    warning = next(r for r in s.records if r.type == "vlab.protocol_warning")
    assert json.loads(warning.payload)["problems"] == ["'session' is a string, not an object"]


async def test_a_frame_over_the_client_limit_names_the_limit_and_how_to_raise_it(tmp_path):
    big = json.dumps({"type": "response.text.delta", "delta": "x" * SDK_MAX_FRAME_BYTES})

    async def script(ws: Any) -> None:
        await ws.send_str(CREATED)
        await ws.send_str(big)
        await _until_closed(ws)

    run = tmp_path / "run"
    async with scripted_server(script) as endpoint:
        async with Session(endpoint=endpoint, api_key="k", dotenv_path=False, run_dir=run) as s:
            with pytest.raises(ConnectionFailed) as info:
                await s.wait_for("response.text.delta", timeout_s=30)
        # with a raised limit the same frame arrives
        async with Session(
            endpoint=endpoint, api_key="k", dotenv_path=False, max_frame_bytes=2 * SDK_MAX_FRAME_BYTES
        ) as raised:
            delta = (await raised.wait_for("response.text.delta", timeout_s=30))[-1]
            assert len(delta.delta) == SDK_MAX_FRAME_BYTES
    message = str(info.value)
    assert f"larger than the client's frame size limit of {SDK_MAX_FRAME_BYTES:,} bytes" in message
    assert "Session(max_frame_bytes=...)" in message
    assert "dropped" not in message and "proxies" not in message
    frame = vlab.load_log(run)
    pd.testing.assert_frame_equal(frame, read_jsonl(run / "events.jsonl"))
    assert frame["error_code"].iloc[-1] == "frame_too_large"


@pytest.mark.parametrize(
    "frame",
    ["not json at all", b"\xff\xfe binary junk", "[]", '"a string"', "null", ""],
    ids=["text", "binary", "array", "string", "null", "empty"],
)
async def test_a_frame_that_is_no_event_ends_the_session_clearly_and_the_run_folder_loads(
    tmp_path, caplog, frame
):
    caplog.set_level(logging.WARNING, logger="vlab.session")

    async def script(ws: Any) -> None:
        await ws.send_str(CREATED)
        await ws.send_str(json.dumps({"type": "response.created", "response": {"id": "resp_1"}}))
        await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        await _until_closed(ws)

    run = tmp_path / "run"
    async with scripted_server(script) as endpoint:
        async with Session(endpoint=endpoint, api_key="k", dotenv_path=False, run_dir=run) as s:
            with pytest.raises(ConnectionFailed) as info:
                await s.wait_for("response.done", timeout_s=30)
    assert "internal error" not in str(info.value) and "Please report" not in str(info.value)
    assert not [r for r in caplog.records if r.exc_info]
    frame_ = vlab.load_log(run)
    pd.testing.assert_frame_equal(frame_, read_jsonl(run / "events.jsonl"))
    assert frame_["type"].iloc[-1] == "vlab.connection_lost"
    summary = json.loads((run / "session.json").read_text())["summary"]
    assert summary["connection_error"] == str(s.connection_error)


async def test_the_scripted_server_is_a_plain_websocket():
    async def script(ws: Any) -> None:
        await ws.send_str("hi")

    async with scripted_server(script) as endpoint, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(endpoint + "/voice-live/realtime")
        assert (await ws.receive()).data == "hi"
        await ws.close()
