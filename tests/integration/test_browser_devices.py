"""A Session with the browser microphone and speaker, over a scripted page (the real page is in tests/browser).

The page's side is played by the test: it answers pings and the capture request, sends the labelled
``interruption`` prompt as 20 ms PCM16 frames, and answers a ``clear`` with the ms it "played". The
session, barge-in policy, recordings and log treat it like the kernel's Microphone and Speaker.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import soundfile as sf

from vlab import Session
from vlab.audio.browser import FRAMES_PER_MESSAGE, BrowserBridge
from vlab.clock import SystemClock
from vlab.prompts import load_prompt_set

PAGE_PLAYED_MS = 777.0
PAGE_AHEAD_NS = 3600 * 10**9
"""The page's ``performance.now()`` runs an hour ahead of the kernel clock: the mapping must take it off."""


class ScriptedPage:
    """The page: replies on the loop, like a comm message arriving later."""

    def __init__(self) -> None:
        self.clock = SystemClock()
        self.bridge = BrowserBridge(self.on_message, clock=self.clock)
        self.cleared = asyncio.Event()
        self.played: dict[str, int] = {}
        self.holds_enough = asyncio.Event()
        """The page holds more of the reply than it will say it played (the kernel clamps to what it sent)."""

    def page_ms(self) -> float:
        return (self.clock.monotonic_ns() + PAGE_AHEAD_NS) / 1e6

    def reply(self, content: dict) -> None:
        asyncio.get_running_loop().call_soon(self.bridge.receive, content, [])

    def on_message(self, content: dict, buffers) -> None:
        kind = content["type"]
        if kind == "ping":
            self.reply({"type": "pong", "k": content["k"], "b": self.page_ms()})
        elif kind == "capture_start":
            settings = {"sampleRate": 48000, **content["constraints"]}
            self.reply({"type": "status", "state": "capturing", "settings": settings})
        elif kind == "play":
            item = content["item"]
            if item not in self.played:
                self.reply(
                    {"type": "playback", "kind": "started", "item": item, "t_ms": self.page_ms() + 30.0}
                )
            self.played[item] = self.played.get(item, 0) + len(buffers[0])
            if 1000.0 * self.played[item] / (2 * content["rate"]) > PAGE_PLAYED_MS:
                self.holds_enough.set()
        elif kind == "clear" and content["n"]:
            item = next(iter(self.played), None)
            done = {"type": "cleared", "n": content["n"], "item": item, "played_ms": PAGE_PLAYED_MS}
            self.reply({**done, "t_ms": self.page_ms() + 3.0, "peak": 0.5})
            asyncio.get_running_loop().call_soon(self.cleared.set)

    def frames(self, pcm: bytes, first_seq: int, t0_ms: float) -> int:
        """Send ``pcm`` as the page does: 20 ms frames, :data:`FRAMES_PER_MESSAGE` to a message."""
        frames = [pcm[i : i + 960] for i in range(0, len(pcm), 960)]
        for k in range(0, len(frames), FRAMES_PER_MESSAGE):
            seq = first_seq + k
            message = {"type": "frame", "seq": seq, "t_ms": t0_ms + 20.0 * k}
            self.bridge.receive(message, frames[k : k + FRAMES_PER_MESSAGE])
        return first_seq + len(frames)


async def test_a_browser_microphone_and_speaker_barge_in_like_the_kernel_devices(tmp_path):
    (prompt,) = [p for p in load_prompt_set() if p.id == "interruption"]
    pcm = prompt.pcm(24000)
    split = round(3500 * 48) // 960 * 960  # 3.5 s: the first utterance and its silence
    page = ScriptedPage()
    run_dir = tmp_path / "run"
    options = {"speed": float("inf"), "latency": "instant"}
    async with Session(
        run_dir=run_dir, audio_output=page.bridge.speaker, emulator_options=options, dotenv_path=False
    ) as s:
        capturing = asyncio.Event()
        page.bridge.on_state = lambda state, _message: state == "capturing" and capturing.set()
        mic = page.bridge.microphone(24000)
        streaming = asyncio.create_task(s.stream_microphone(mic))
        await asyncio.wait_for(capturing.wait(), 10)
        # the capture-start ping's answer came first: the first frames map through that round trip alone
        bound_ns = page.bridge.clock_map.uncertainty_ns
        t0_ms = page.page_ms()
        seq = page.frames(pcm[:split], 0, t0_ms)
        await asyncio.wait_for(page.holds_enough.wait(), 30)  # the reply is playing in the "page"
        page.frames(pcm[split:] + bytes(48000), seq, t0_ms + split / 48)
        await asyncio.wait_for(page.cleared.wait(), 30)
        await s.wait_for("conversation.item.truncated", timeout_s=30)
        mic.close()
        await streaming
    events = s.frame()

    truncated = events[events["type"] == "conversation.item.truncate"]
    assert list(truncated["audio_end_ms"]) == [PAGE_PLAYED_MS]  # the page's figure, not the estimate
    (cleared,) = [json.loads(p) for p in events.loc[events["type"] == "vlab.playback_cleared", "payload"]]
    assert cleared["heard_ms"] == PAGE_PLAYED_MS and cleared["silent_from_t_ns"] >= cleared["clear_t_ns"]
    assert (events["type"] == "vlab.playback_started").sum() >= 1

    # capture times: the page's clock maps onto the kernel's, within half the round trip it used
    anchors = events[events["type"] == "vlab.capture"]
    assert list(anchors["audio_start_ms"][:2]) == [0.0, 1000.0]
    first_anchor_ns = int(anchors["t_ns"].iloc[0])
    assert bound_ns is not None
    error_ns = abs(first_anchor_ns - (t0_ms * 1e6 - PAGE_AHEAD_NS))
    assert error_ns <= bound_ns + 1000  # + the ns rounding of float ms
    (described,) = [json.loads(p) for p in events.loc[events["type"] == "vlab.audio_input", "payload"]]
    assert described["side"] == "browser" and described["applied"]["sampleRate"] == 48000

    # the recordings and the run folder treat it like any microphone and speaker
    recorded, rate = sf.read(run_dir / "input.wav", dtype="int16")
    assert rate == 24000 and np.array_equal(recorded[: len(pcm) // 2], np.frombuffer(pcm, "<i2"))
    assert (run_dir / "output.wav").is_file()
    assert json.loads((run_dir / "session.json").read_text())["audio_output"]["side"] == "browser"
