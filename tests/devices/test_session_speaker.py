"""A Session playing the assistant on the (virtual) speaker logs when the audio really played."""

from __future__ import annotations

import asyncio
import json
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
    finished = asyncio.Event()
    async with fast_emulator(speed=math.inf) as emu:
        settings = SessionSettings(turn_detection=None)
        async with Session(
            settings, endpoint=emu.endpoint, api_key=emu.api_key, audio_output=speaker, dotenv_path=False
        ) as s:
            s.add_sink(lambda record: finished.set() if record.type == "vlab.playback_finished" else None)
            await s.send_text("hello speaker")
            await s.wait_for("response.done")
            # the last block reaches the DAC, then the speaker's notice is logged
            await asyncio.wait_for(finished.wait(), 10)
    local = [r for r in s.records if r.direction == "local"]
    kinds = [r.type for r in local]
    assert "vlab.playback_started" in kinds and "vlab.playback_finished" in kinds
    first_delta = next(r for r in s.records if r.type == "response.audio.delta")
    started = next(r for r in local if r.type == "vlab.playback_started")
    assert started.item_id == first_delta.item_id
    assert started.t_ns > first_delta.t_ns  # played after it arrived
    received_ms = sum(r.audio_ms for r in s.records if r.type == "response.audio.delta")
    finished_record = next(r for r in local if r.type == "vlab.playback_finished")
    assert finished_record.item_id == started.item_id and finished_record.t_ns > started.t_ns
    # all of the audio received played (the DAC-stamped duration is benchmarks/bench_devices.py's)
    assert json.loads(finished_record.payload)["played_ms"] == pytest.approx(received_ms)
