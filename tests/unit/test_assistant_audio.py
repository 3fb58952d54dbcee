"""The assistant's audio on its way out, in each format: a speaker gets PCM16, a playhead keeps time."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from vlab.audio import g711
from vlab.audio.playback import SimulatedPlayback
from vlab.clock import ManualClock
from vlab.session.output import AssistantAudio
from vlab.settings import SessionSettings

ONE_SECOND = {"pcm16": 48_000, "pcm16_16000hz": 32_000, "g711_ulaw": 8_000, "g711_alaw": 8_000}
"""Bytes of one second of the assistant's audio in each format."""


class Speaker:
    """A device output: keeps what it is given to play."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, bytes, int]] = []

    def push(self, item_id: str, pcm16: bytes, sample_rate: int) -> None:
        self.pushed.append((item_id, pcm16, sample_rate))


def _delta(audio: bytes) -> dict[str, str]:
    return {"type": "response.audio.delta", "item_id": "item1", "delta": base64.b64encode(audio).decode()}


@pytest.mark.parametrize("fmt", list(ONE_SECOND))
def test_a_second_of_assistant_audio_plays_for_a_second_in_every_output_format(fmt):
    # G.711 sends one byte a sample: the playhead counted its bytes as PCM16 and heard half of it
    clock = ManualClock()
    playback = SimulatedPlayback(clock)
    audio = AssistantAudio(playback)
    assert audio.delta(_delta(bytes(ONE_SECOND[fmt])), 0, SessionSettings(output_audio_format=fmt))
    clock.advance_ns(5 * 10**9)
    assert playback.played_ms() == pytest.approx(1000.0)


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_a_speaker_is_given_pcm16_when_the_assistant_speaks_g711(fmt):
    tone = (8000 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000)).astype("<i2").tobytes()
    sent = g711.from_pcm16(tone, fmt)
    speaker = Speaker()
    assert AssistantAudio(speaker).delta(_delta(sent), 0, SessionSettings(output_audio_format=fmt))
    ((item_id, pcm16, rate),) = speaker.pushed
    assert (item_id, rate) == ("item1", 8000)
    assert pcm16 == g711.to_pcm16(sent, fmt)  # the tone, expanded (not its codes played as samples)
    heard = np.frombuffer(pcm16, "<i2").astype(float)
    assert np.corrcoef(heard, np.frombuffer(tone, "<i2"))[0, 1] > 0.99
