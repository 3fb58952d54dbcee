"""Connecting: route, auth, session.created/updated, raw frames, the trace and the CLI."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import subprocess
import sys
import weakref

import aiohttp
import pytest
from azure.ai.voicelive.aio import ConnectionError as VoiceLiveConnectionError
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import (
    AzureSemanticVadMultilingual,
    OutputAudioFormat,
    RequestSession,
    ServerEventSessionCreated,
    ServerVad,
)
from azure.core.credentials import AzureKeyCredential

from tests import _raw_http as raw
from vlab.clock import NS_PER_S, VirtualClock
from vlab.emulator.session_config import SESSION_TTL_S
from vlab.protocol_limits import MAX_APPEND_AUDIO_BYTES, MAX_CLIENT_FRAME_BYTES, MAX_INPUT_BUFFER_BYTES
from vlab.testing import StaticTokenCredential, collect_events, fast_emulator, types_of


async def test_session_created_comes_first_with_a_full_session(emulator):
    async with connect(
        endpoint=emulator.endpoint, credential=AzureKeyCredential(emulator.api_key), model="gpt-4o-realtime"
    ) as conn:
        await conn.session.update(session=RequestSession(instructions="be brief"))  # already in flight
        first = await conn.recv()
        second = await conn.recv()
    assert isinstance(first, ServerEventSessionCreated)
    s = first.session
    assert s.model == "gpt-4o-realtime" and s.id.startswith("sess_")
    assert (s.input_audio_format, s.input_audio_sampling_rate, s.output_audio_format) == (
        "pcm16",
        24000,
        "pcm16",
    )
    assert isinstance(s.turn_detection, ServerVad)
    assert (
        s.turn_detection.threshold,
        s.turn_detection.prefix_padding_ms,
        s.turn_detection.silence_duration_ms,
    ) == (0.5, 400, 500)
    assert s.expires_at is not None
    assert second.type == "session.updated" and second.session.instructions == "be brief"


async def test_a_session_expires_its_ttl_after_its_creation_on_the_emulator_s_clock():
    clock = VirtualClock(wall_start_ns=1_790_000_000 * NS_PER_S)  # still: the handshake's timer never fires
    async with fast_emulator(clock=clock, hear_audio=False) as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            created = await conn.recv()
    assert created.session.expires_at.timestamp() == 1_790_000_000 + SESSION_TTL_S


async def test_each_update_gets_one_updated_with_the_merged_session(conn):
    await conn.session.update(
        session=RequestSession(instructions="one", output_audio_format=OutputAudioFormat.PCM16_16000_HZ)
    )
    await conn.session.update(
        session=RequestSession(
            turn_detection=AzureSemanticVadMultilingual(languages=["en", "es"], speech_duration_ms=200)
        )
    )
    await conn.session.update(
        session=RequestSession({"output_audio_format": "pcm16_22050hz", "turn_detection": {"type": "none"}})
    )
    events = await collect_events(conn, "session.updated", count=3)
    assert types_of(events) == ["session.updated"] * 3
    first, second, third = (e.session for e in events)
    assert first.instructions == "one" and first.output_audio_format == "pcm16_16000hz"
    assert second.instructions == "one"  # merged, not replaced
    assert second.turn_detection.type == "azure_semantic_vad_multilingual"
    assert second.turn_detection.languages == ["en", "es"] and second.turn_detection.speech_duration_ms == 200
    assert third.output_audio_format == "pcm16_22050hz" and third.turn_detection is None


@pytest.mark.parametrize(
    "fmt,rate", [("pcm16_16000hz", 16000), ("g711_alaw", 8000), ("pcm16_48000hz", 48000)]
)
async def test_output_audio_follows_the_output_format(conn, fmt, rate):
    await conn.session.update(session=RequestSession({"output_audio_format": fmt, "turn_detection": None}))
    await collect_events(conn, "session.updated")
    await conn.response.create()
    events = await collect_events(conn, "response.done")
    n_bytes = sum(len(e.delta) for e in events if e.type == "response.audio.delta")
    seconds = n_bytes / (rate * (1 if fmt.startswith("g711") else 2))
    # the greeting as the emulator's voice for the default "alloy" speaks it, at this rate
    from vlab.audio.synth import synthesize
    from vlab.emulator.replies import GREETING
    from vlab.emulator.voice import espeak_voice

    expected_s = (
        synthesize(
            GREETING, voice=espeak_voice({"type": "openai", "name": "alloy"}), sample_rate=rate
        ).duration_ms
        / 1000
    )
    assert seconds == pytest.approx(expected_s, abs=0.1)  # eSpeak varies by a few ms between calls


@pytest.mark.parametrize(
    "header", [{"api-key": "wrong"}, {}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}]
)
async def test_wrong_or_missing_credentials_get_401_before_the_upgrade(emulator, header):
    url = emulator.endpoint + "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(url, headers=header)
    assert info.value.status == 401


async def test_the_sdk_reports_a_wrong_key_as_a_connection_error(emulator):
    with pytest.raises(VoiceLiveConnectionError, match="401"):
        async with connect(endpoint=emulator.endpoint, credential=AzureKeyCredential("wrong-key")):
            pass


async def test_bearer_tokens_are_accepted_when_configured():
    async with fast_emulator(tokens=["token-123"]) as emu:
        async with connect(endpoint=emu.endpoint, credential=StaticTokenCredential("token-123")) as conn:
            assert (await conn.recv()).type == "session.created"
        with pytest.raises(VoiceLiveConnectionError):
            async with connect(endpoint=emu.endpoint, credential=StaticTokenCredential("other")):
                pass


async def _raw(emulator):
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(
        emulator.endpoint + "/voice-live/realtime?api-version=2026-07-15",
        headers={"api-key": emulator.api_key},
        max_msg_size=0,
    )
    assert json.loads((await ws.receive()).data)["type"] == "session.created"
    return http, ws


async def test_malformed_frames_get_errors_and_the_socket_stays_open(emulator):
    http, ws = await _raw(emulator)
    try:
        for frame in ["{not json", "[1, 2]", '{"type": 5}', '"just a string"', "{}"]:
            await ws.send_str(frame)
            reply = json.loads((await ws.receive()).data)
            assert reply["type"] == "error" and reply["error"]["message"]
        await ws.send_bytes(b'{"type": "input_audio_buffer.clear"}')  # binary frames carry JSON too
        assert json.loads((await ws.receive()).data)["type"] == "input_audio_buffer.cleared"
        await ws.send_bytes(b"\xff\xfe\x00")
        assert json.loads((await ws.receive()).data)["error"]["code"] == "invalid_json"
        await ws.send_str('{"type": "input_text.delta", "event_id": "e1", "id": "item", "delta": "hi"}')
        error = json.loads((await ws.receive()).data)["error"]  # a client event the emulator lacks
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "e1")
        assert "'input_text.delta' is not a supported client event" in error["message"]
        await ws.ping()
        await ws.send_str('{"type": "input_audio_buffer.clear"}')
        assert json.loads((await ws.receive()).data)["type"] == "input_audio_buffer.cleared"
    finally:
        await ws.close()
        await http.close()


async def test_a_function_s_run_time_is_refused_unless_it_is_ms_on_a_function_output(emulator):
    http, ws = await _raw(emulator)
    output = {"type": "function_call_output", "call_id": "c1", "output": "{}"}
    try:
        for event in (
            {"type": "conversation.item.create", "item": output, "x_vlab_run_ms": -1},
            {"type": "conversation.item.create", "item": output, "x_vlab_run_ms": "800"},
            {"type": "conversation.item.create", "item": output, "x_vlab_run_ms": True},
            {"type": "response.create", "x_vlab_run_ms": 800},
        ):
            await ws.send_str(json.dumps({**event, "event_id": "e1"}))
            error = json.loads((await ws.receive()).data)["error"]
            assert (error["code"], error["param"], error["event_id"]) == (
                "invalid_value",
                "x_vlab_run_ms",
                "e1",
            )
            assert "the ms a function ran (a number ≥ 0)" in error["message"]
        await ws.send_str(
            json.dumps({"type": "conversation.item.create", "item": output, "x_vlab_run_ms": 800})
        )
        assert json.loads((await ws.receive()).data)["type"] == "conversation.item.created"  # live: no hold
    finally:
        await ws.close()
        await http.close()


def _append_frame(audio_bytes: int, frame_bytes: int | None = None) -> str:
    """An append of ``audio_bytes`` of audio, padded (with its event_id) to ``frame_bytes`` if given."""
    audio = base64.b64encode(bytes(audio_bytes)).decode()
    frame = json.dumps({"type": "input_audio_buffer.append", "event_id": "", "audio": audio})
    pad = "" if frame_bytes is None else "p" * (frame_bytes - len(frame))
    return json.dumps({"type": "input_audio_buffer.append", "event_id": pad, "audio": audio})


async def _errors_before_probe(ws, probe: str) -> list[dict]:
    """The error events that arrive before the answer to a probe (a retrieve of a missing item)."""
    await ws.send_str(json.dumps({"type": "conversation.item.retrieve", "item_id": probe, "event_id": probe}))
    errors = []
    while True:
        event = json.loads((await ws.receive(timeout=60)).data)
        if event["type"] == "error" and event["error"]["event_id"] == probe:
            return errors
        errors.append(event["error"] if event["type"] == "error" else event)


async def test_frame_append_and_buffer_limits_hold_on_both_sides(emulator):
    """Appends up to the service's 15 MiB in frames up to the frame limit; then the buffer's own bound."""
    http, ws = await _raw(emulator)
    try:
        await ws.send_str(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
        assert json.loads((await ws.receive()).data)["type"] == "session.updated"
        largest = _append_frame(MAX_APPEND_AUDIO_BYTES, MAX_CLIENT_FRAME_BYTES)
        assert len(largest.encode()) == MAX_CLIENT_FRAME_BYTES
        await ws.send_str(largest)  # the largest append in the largest frame: accepted
        assert await _errors_before_probe(ws, "p1") == []
        await ws.send_str(_append_frame(MAX_APPEND_AUDIO_BYTES + 1))  # one byte more: refused
        [error] = await _errors_before_probe(ws, "p2")
        assert (error["type"], error["code"], error["param"]) == (
            "invalid_request_error",
            "invalid_value",
            "audio",
        )
        assert "15728641 bytes of audio in one append; at most 15728640 bytes (15 MiB)" in error["message"]

        # the input buffer (no turn detection): two of the largest appends fill it exactly
        assert MAX_INPUT_BUFFER_BYTES == 2 * MAX_APPEND_AUDIO_BYTES
        await ws.send_str(_append_frame(MAX_APPEND_AUDIO_BYTES))
        assert await _errors_before_probe(ws, "p3") == []
        await ws.send_str(_append_frame(2))  # one sample more
        [full] = await _errors_before_probe(ws, "p4")
        assert full["code"] == "input_audio_buffer_full" and "Commit or clear it" in full["message"]
        await ws.send_str(json.dumps({"type": "input_audio_buffer.clear"}))
        await ws.send_str(_append_frame(2))
        assert [e["type"] for e in await _errors_before_probe(ws, "p5")] == ["input_audio_buffer.cleared"]

    finally:
        await ws.close()
        await http.close()
    assert (
        await raw.close_code_for_a_frame_of(emulator, MAX_CLIENT_FRAME_BYTES + 1) == 1009
    )  # message too big
    async with connect(endpoint=emulator.endpoint, credential=AzureKeyCredential(emulator.api_key)) as conn:
        assert (await conn.recv()).type == "session.created"  # the emulator itself is fine


async def test_trace_stamps_every_event_sent_before_the_client_gets_it(emulator, conn, prompt):
    import time

    received = []
    await conn.input_audio_buffer.append(audio=prompt.pcm)
    while True:
        ev = await conn.recv()
        received.append((time.perf_counter_ns(), ev.event_id, ev.type))
        if ev.type == "response.done":
            break
    sends = {e["event_id"]: e for e in emulator.trace.of_kind("send")}
    for t_recv, event_id, kind in received:
        assert sends[event_id]["type"] == kind
        assert sends[event_id]["t_ns"] <= t_recv
    vad = emulator.trace.of_kind("vad")
    assert [v["event"] for v in vad] == ["speech_started", "speech_stopped"]
    assert emulator.trace.of_kind("latency")


async def test_a_stopped_emulator_s_trace_and_app_are_freed_once_it_is_dropped():
    # aiohttp caches each application's middleware chain (up to 1 024 applications): a process that
    # starts an emulator per sweep cell kept every one's trace and loop alive until the emulator let go
    async with fast_emulator(trace=True) as emu:
        async with aiohttp.ClientSession() as http, http.get(f"{emu.endpoint}/health") as response:
            assert response.status == 200  # one request through the middleware: aiohttp has cached it
        trace, app = weakref.ref(emu.trace), weakref.ref(emu._app)
        assert trace() is not None and app() is not None
    del emu
    gc.collect()
    assert trace() is None and app() is None


def test_cli_emulator_prints_the_endpoint_and_serves_the_sdk():
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlab", "emulator", "--port", "0", "--api-key", "cli-key", "--speed", "max",
         "--mcp-redirect", "https://mcp.example/mcp=http://127.0.0.1:9000/mcp"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        endpoint = line.split()[-1]
        banner = list(iter(proc.stdout.readline, "Press Ctrl-C to stop.\n"))
        assert "MCP server https://mcp.example/mcp is called at http://127.0.0.1:9000/mcp\n" in banner

        async def talk():
            async with connect(endpoint=endpoint, credential=AzureKeyCredential("cli-key")) as conn:
                return (await conn.recv()).type

        assert asyncio.run(talk()) == "session.created"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
