"""A spoken prompt played into the virtual microphone, captured by Microphone, streamed into a Session."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import soundfile

import vlab
from tests.devices._audio import RATE, find
from vlab.audio.devices import HalfDuplex, Microphone, Speaker
from vlab.audio.loopback import pulse_route
from vlab.testing import spoken_prompt

pytestmark = [pytest.mark.devices, pytest.mark.usefixtures("sound_card")]


async def test_microphone_feeds_the_emulators_vad(tmp_path):
    # the capture goes on after the player ends: the server VAD's silence comes from the microphone's silence
    prompt = spoken_prompt("What is the weather today?", trail_ms=300)
    wav = tmp_path / "prompt.wav"
    soundfile.write(wav, np.frombuffer(prompt.pcm, "<i2"), RATE, subtype="PCM_16")
    captured: list[bytes] = []

    async with vlab.Session(dotenv_path=False, emulator_options={"speed": 1.0}) as session:
        with pulse_route(source="vmic.monitor"):  # the default source, stated for clarity
            mic = Microphone("pulse", RATE, block_ms=20)
            mic.start()

        async def forward() -> None:
            async for chunk in mic:
                captured.append(chunk)
                await session.append_audio(chunk)

        forwarding = asyncio.create_task(forward())
        try:
            await asyncio.sleep(0.2)  # wall-clock ok: the capture runs before the player starts (real audio)
            player = await asyncio.create_subprocess_exec(
                "paplay", "-d", "vmic", str(wav), env=dict(os.environ)
            )
            assert await asyncio.wait_for(player.wait(), 30) == 0
            events = await session.wait_for("input_audio_buffer.speech_stopped", timeout_s=15)
        finally:
            mic.close()
            await forwarding

    types = [e.type for e in events]
    assert "input_audio_buffer.speech_started" in types
    started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
    stopped = events[-1]
    # where the prompt sits on the input-audio timeline (= the captured stream, nothing was dropped)
    recording = np.frombuffer(b"".join(captured), "<i2").astype(np.float64)
    # the prompt without the end of its trailing silence (the last blocks may not be captured yet)
    reference = np.frombuffer(prompt.pcm, "<i2").astype(np.float64)[
        : round(RATE * prompt.speech_end_ms / 1000)
    ]
    offset, corr, _ = find(recording, reference)
    offset_ms = offset * 1000 / RATE
    print(
        f"\nmic→emulator: prompt at {offset_ms:.0f} ms of the input (correlation {corr:.4f}); speech "
        f"{prompt.speech_start_ms:.0f}–{prompt.speech_end_ms:.0f} ms of the prompt; server VAD "
        f"started {started.audio_start_ms} ms, stopped {stopped.audio_end_ms} ms; overflows {mic.overflows}"
    )
    assert corr > 0.99
    assert mic.dropped_chunks == 0 and mic.overflows == 0
    # server VAD: start = speech onset - prefix padding (300 ms), end = speech end + silence (500 ms)
    assert started.audio_start_ms == pytest.approx(max(0, offset_ms + prompt.speech_start_ms - 300), abs=100)
    assert stopped.audio_end_ms == pytest.approx(offset_ms + prompt.speech_end_ms + 500, abs=100)


async def test_half_duplex_mutes_the_microphone_while_the_speaker_plays():
    # the speaker plays into vmic, the microphone records vmic.monitor: an acoustic echo path
    with pulse_route(sink="vmic", source="vmic.monitor"):
        speaker = Speaker("pulse", RATE)
        speaker.start()
        mic = Microphone("pulse", RATE)
        mic.start()
    gated = HalfDuplex(mic, speaker, hangover_ms=60)
    heard: list[bytes] = []

    async def read() -> None:
        async for chunk in gated:
            heard.append(chunk)

    reading = asyncio.create_task(read())
    try:
        await asyncio.sleep(0.3)  # wall-clock ok: the microphone records silence before the tone plays
        t = np.arange(RATE // 2) / RATE
        speaker.push("item_1", (0.5 * 32767 * np.sin(2 * np.pi * 700 * t)).astype("<i2").tobytes(), RATE)
        await speaker.drain()
        await asyncio.sleep(0.4)  # wall-clock ok: the tone's echo reaches the microphone after the drain
    finally:
        speaker.close()
        mic.close()
        await reading
    audio = np.frombuffer(b"".join(heard), "<i2")
    print(
        f"\nhalf duplex: {gated.muted_chunks} of {len(heard)} chunks muted, loudest sample kept {np.abs(audio).max()}"
    )
    assert np.abs(audio).max() == 0, "no echo of the speaker got through"
    assert 0.5 * 1000 / mic.block_ms <= gated.muted_chunks <= (0.5 + 0.3) * 1000 / mic.block_ms
    assert len(heard) * mic.block_ms >= 900, "muted chunks are replaced by silence, not dropped"
