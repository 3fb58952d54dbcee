"""A Session playing the assistant on the (virtual) speaker logs when the audio really played."""

from __future__ import annotations

import asyncio
import math

import pytest

from tests.devices._audio import RATE
from vlab import Session, SessionSettings
from vlab.audio.devices import Speaker
from vlab.audio.loopback import pulse_route
from vlab.testing import fast_emulator

pytestmark = [pytest.mark.devices, pytest.mark.usefixtures("sound_card")]


async def test_session_logs_playback_started_and_finished_from_the_speaker():
    with pulse_route(sink="vsink"):
        speaker = Speaker("pulse", RATE)
    async with fast_emulator(speed=math.inf) as emu:
        settings = SessionSettings(turn_detection=None)
        async with Session(
            settings, endpoint=emu.endpoint, api_key=emu.api_key, audio_output=speaker, dotenv_path=False
        ) as s:
            await s.send_text("hello speaker")
            await s.wait_for("response.done")
            await speaker.drain()
            for _ in range(100):  # the last block reaches the DAC, then the notice arrives (≤ 5 s)
                if any(r.type == "vlab.playback_finished" for r in s.records):
                    break
                await asyncio.sleep(0.05)  # wall-clock ok: polls a notice timed by the DAC
    local = [r for r in s.records if r.direction == "local"]
    kinds = [r.type for r in local]
    assert "vlab.playback_started" in kinds and "vlab.playback_finished" in kinds
    first_delta = next(r for r in s.records if r.type == "response.audio.delta")
    started = next(r for r in local if r.type == "vlab.playback_started")
    assert started.item_id == first_delta.item_id
    assert started.t_ns > first_delta.t_ns  # played after it arrived
    received_ms = sum(r.audio_ms for r in s.records if r.type == "response.audio.delta")
    finished = next(r for r in local if r.type == "vlab.playback_finished")
    assert abs((finished.t_ns - started.t_ns) / 1e6 - received_ms) < 120
