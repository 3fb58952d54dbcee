"""The emulator under hostile input: thousands of malformed frames, no crash, the socket stays usable."""

from __future__ import annotations

import asyncio
import base64
import json
import random

import aiohttp
from azure.ai.voicelive.aio import connect
from azure.core.credentials import AzureKeyCredential

from vlab.testing import collect_events, fast_emulator

N_FRAMES = 10_000
CLIENT_TYPES = [
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "conversation.item.create", "conversation.item.retrieve", "conversation.item.truncate",
    "conversation.item.delete", "response.create", "response.cancel",
]  # fmt: skip
JUNK_VALUES = [None, True, -1, 3.5, "", "x" * 5000, [], [1, "a"], {}, {"type": 7}, "☃" * 100, 10**30]


def _malformed(rng: random.Random) -> tuple[str | bytes, bool]:
    """A hostile frame and whether the emulator must answer it with an error event."""
    kind = rng.randrange(10)
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


async def test_ten_thousand_malformed_frames_never_break_the_emulator(prompt):
    rng = random.Random(1234)
    frames = [_malformed(rng) for _ in range(N_FRAMES)]
    async with fast_emulator() as emu:
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
            for n, (frame, must_error) in enumerate(frames):
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
                # a probe whose answer is unmistakable: an error that names the probe's own event_id
                probe = f"probe-{n}"
                await ws.send_str(
                    json.dumps({"type": "conversation.item.retrieve", "item_id": probe, "event_id": probe})
                )
                replies = []
                while True:
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    assert msg.type == aiohttp.WSMsgType.TEXT, (frame, msg)
                    event = json.loads(msg.data)
                    if event["type"] == "error" and event["error"].get("event_id") == probe:
                        break
                    replies.append(event)
                errors = [e for e in replies if e["type"] == "error"]
                if must_error:
                    assert errors, f"no error event for {frame!r}: {replies}"
                for e in errors:
                    assert e["error"]["message"] and e["error"]["type"]
                    assert e["error"]["code"] != "server_error", (
                        f"the emulator failed internally on {frame!r}: {e}"
                    )
                assert all(e["type"] in ("error", "session.updated", "conversation.item.deleted", "response.created", "response.done",
                                          "response.output_item.added", "conversation.item.created", "response.content_part.added",
                                          "response.audio_transcript.delta", "response.audio.delta", "response.audio.done",
                                          "response.audio_transcript.done", "response.content_part.done", "response.output_item.done",
                                          "input_audio_buffer.committed", "input_audio_buffer.cleared") for e in replies)  # fmt: skip
            kinds = await other
        finally:
            await ws.close()
            await http.close()
    assert kinds.count("response.done") == 1  # the other session was unaffected
