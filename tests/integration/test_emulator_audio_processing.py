"""Noise suppression and echo cancellation applied before the emulator's VAD, through the real SDK."""

from __future__ import annotations

import numpy as np
import pytest
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import AudioEchoCancellation, AudioNoiseReduction, RequestSession, ServerVad
from azure.core.credentials import AzureKeyCredential

from tests._portable import needs_noise_suppression
from vlab import protocol
from vlab.audio.pcm import float_to_pcm16, pcm16_to_float
from vlab.prompts import load_prompt_set
from vlab.testing import collect_events, fast_emulator, spoken_prompt

RATE = 24000  # pcm16 in and out
CHUNK = 2 * RATE * 20 // 1000  # 20 ms of PCM16
ECHO_DELAY_MS = 60
ECHO_GAIN = 10 ** (-10 / 20)


def _connect(emu):
    return connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime")


class _Speaker:
    """The client's loudspeaker: plays each audio delta as it arrives (at its simulated time, in input
    mode the input position), after the audio queued before it; the microphone hears it back."""

    def __init__(self) -> None:
        self.played = np.zeros(RATE * 30, dtype=np.float32)
        self._end = 0
        self.first_sample: int | None = None

    def hear(self, events: list) -> None:
        for event in events:
            if event.type == "response.audio.delta":
                start = max(int(event[protocol.SIM_MS_KEY] * RATE / 1000), self._end)
                samples = pcm16_to_float(event.delta)
                self.played[start : start + len(samples)] = samples
                self._end = start + len(samples)
                self.first_sample = start if self.first_sample is None else self.first_sample

    @property
    def end_ms(self) -> float:
        return self._end / RATE * 1000

    def echo(self, start: int, n: int) -> np.ndarray:
        """The echo in the microphone samples [start, start + n): what played 60 ms before, at -10 dB."""
        delay = RATE * ECHO_DELAY_MS // 1000
        lo = start - delay
        out = np.zeros(n, dtype=np.float32)
        if lo + n > 0:
            src = self.played[max(lo, 0) : lo + n]
            out[n - len(src) :] = src
        return out * ECHO_GAIN


async def _talk_over_speaker(echo_cancellation: bool) -> tuple[list, _Speaker]:
    """Say the prompt, then stay silent while the reply plays; the microphone picks the reply up.

    The client sends 20 ms at a time on the input timeline and, after each chunk, waits for the answer
    to an empty ``session.update``: every event up to the audio sent has then arrived, so the echo it
    mixes in is of the audio the emulator had sent by then (deterministic, no sleeping).
    """
    prompt = spoken_prompt(sample_rate=RATE, lead_ms=500, trail_ms=0)
    voice = pcm16_to_float(prompt.pcm)
    noise = np.random.default_rng(3).normal(0.0, 10 ** (-60 / 20), RATE * 30).astype(np.float32)
    speaker = _Speaker()
    events: list = []
    async with fast_emulator(trace=True) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await conn.session.update(
            session=RequestSession(
                turn_detection=ServerVad(),
                input_audio_echo_cancellation=AudioEchoCancellation() if echo_cancellation else None,
                metadata={protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_INPUT},
            )
        )
        events += await collect_events(conn, "session.updated")
        start = 0
        while not _finished(start, len(voice), speaker, events):
            n = CHUNK // 2
            mic = noise[start : start + n] + speaker.echo(start, n)
            said = voice[start : start + n]
            mic[: len(said)] += said
            await conn.input_audio_buffer.append(audio=float_to_pcm16(mic))
            await conn.session.update(session=RequestSession())
            new = await collect_events(conn, "session.updated")
            speaker.hear(new)
            events += new
            start += n
            assert start < RATE * 25, "no reply came"
        await conn.session.update(
            session=RequestSession(metadata={protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_ENDED})
        )
        events += await collect_events(conn, "session.updated")
        trace = emu.trace
    assert trace is not None
    assert [e["echo_cancellation"] for e in trace.of_kind("audio_processing")] == [True] * echo_cancellation
    return events, speaker


def _finished(start: int, prompt_samples: int, speaker: _Speaker, events: list) -> bool:
    """The prompt is said and the reply played out (plus 1 s), or its echo started a turn (a feedback loop
    would follow: the reply to the echo, its echo…)."""
    if start < prompt_samples or speaker.first_sample is None:
        return False
    echo_turn = any(
        e.type == "input_audio_buffer.speech_started"
        and e.audio_start_ms * RATE / 1000 >= speaker.first_sample - RATE // 2
        for e in events
    )
    return echo_turn or start / RATE * 1000 >= speaker.end_ms + 1000


@pytest.mark.parametrize("echo_cancellation", [False, True])
async def test_the_reply_heard_back_by_the_microphone_starts_a_turn_only_without_echo_cancellation(
    echo_cancellation,
):
    events, speaker = await _talk_over_speaker(echo_cancellation)
    starts = [e for e in events if e.type == "input_audio_buffer.speech_started"]
    assert speaker.first_sample is not None
    reply_ms = speaker.first_sample / RATE * 1000
    assert starts and starts[0].audio_start_ms < reply_ms  # the user's own question
    echo_turns = [e for e in starts if e.audio_start_ms >= reply_ms - 500]  # prefix padding before the echo
    done = [e for e in events if e.type == "response.done"]
    if echo_cancellation:
        assert echo_turns == [] and len(starts) == 1 and len(done) == 1
    else:
        assert echo_turns and echo_turns[0].audio_start_ms < speaker.end_ms  # while the reply played


@needs_noise_suppression
async def test_noise_reduction_is_applied_and_the_noisy_prompt_still_makes_one_turn():
    (noisy,) = [p for p in load_prompt_set() if p.id == "noisy_snr10"]
    async with fast_emulator(trace=True) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await conn.session.update(
            session=RequestSession(
                turn_detection=ServerVad(),
                input_audio_noise_reduction=AudioNoiseReduction(type="far_field"),
                input_audio_sampling_rate=16000,
            )
        )
        updated = (await collect_events(conn, "session.updated"))[-1]
        assert updated.session.input_audio_noise_reduction.type == "far_field"
        await conn.input_audio_buffer.append(audio=noisy.pcm(16000) + bytes(2 * 16000))  # + 1 s of silence
        events = await collect_events(conn, "response.done")
        starts = [e for e in events if e.type == "input_audio_buffer.speech_started"]
        (on, off) = noisy.speech_segments[0]
        assert len(starts) == 1 and on - 500 <= starts[0].audio_start_ms <= on
        stop = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
        assert off <= stop.audio_end_ms <= off + 700
        trace = emu.trace
    assert trace is not None
    (applied,) = trace.of_kind("audio_processing")
    assert (applied["noise_reduction"], applied["echo_cancellation"]) == ("far_field", False)
