"""The emulator's latency model: when each stage of a turn happens, seeded and documented.

Every stage delay is ``fixed_ms + jitter`` where the jitter is drawn from a half-normal distribution
with scale ``jitter_ms`` (delays are never negative), from a seeded :class:`random.Random`, so a run is
reproducible. All delays are divided by the emulator's ``speed`` (``math.inf`` = as fast as possible:
every delay is zero).

Stages (times from the previous stage):

=====================  ========================================================================  =========
stage                  what it models                                                             typical
=====================  ========================================================================  =========
``endpointing``        server processing after the VAD's silence timer expires → speech_stopped    30 ms
``commit``             speech_stopped → response.created (turn commit, context build)             60 ms
``first_token``        response.created → first transcript/text delta (LLM time to first token)   250 ms
``tts_first_byte``     first text delta → first audio delta (TTS first byte)                       120 ms
``network``            one-way delivery added to every server event's stage delay                  10 ms
=====================  ========================================================================  =========

``typical`` follows public figures for cascaded voice agents (pipecat's and LiveKit's published
latency breakdowns: LLM TTFT 200–400 ms, streaming TTS first byte 100–200 ms) and the Voice Live
documentation's guidance that a turn should answer within about 800 ms of the end of speech.
Output audio is produced ``tts_realtime_factor`` times faster than real time (5× by default) and sent
in ``audio_chunk_ms`` chunks, like the service, which streams faster than playback.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Final

STAGES: Final = ("endpointing", "commit", "first_token", "tts_first_byte", "network")


@dataclass(frozen=True, slots=True)
class StageDelay:
    """Delay of one stage."""

    fixed_ms: float = 0.0
    """Constant part, in ms."""
    jitter_ms: float = 0.0
    """Scale of the half-normal random part, in ms."""


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Per-stage delays, output pacing and the seed.

    Use :func:`preset` for the named models.
    """

    name: str = "typical"
    """Preset name, echoed in the ground-truth trace."""
    stages: dict[str, StageDelay] = field(default_factory=dict)
    """Delay per stage name (see :data:`STAGES`); a missing stage has no delay."""
    tts_realtime_factor: float = 5.0
    """How much faster than real time output audio is produced."""
    audio_chunk_ms: int = 100
    """Length of audio carried by each ``response.audio.delta``, in ms."""
    seed: int = 0
    """Seed of the jitter draws."""


PRESETS: Final[dict[str, LatencyModel]] = {
    "instant": LatencyModel(name="instant", stages={}, tts_realtime_factor=math.inf),
    "typical": LatencyModel(
        name="typical",
        stages={
            "endpointing": StageDelay(30, 10),
            "commit": StageDelay(60, 20),
            "first_token": StageDelay(250, 60),
            "tts_first_byte": StageDelay(120, 30),
            "network": StageDelay(10, 3),
        },
    ),
    "slow-network": LatencyModel(
        name="slow-network",
        stages={
            "endpointing": StageDelay(30, 10),
            "commit": StageDelay(60, 20),
            "first_token": StageDelay(250, 60),
            "tts_first_byte": StageDelay(120, 30),
            "network": StageDelay(120, 60),
        },
    ),
}


def preset(name: str, *, seed: int | None = None) -> LatencyModel:
    """Return a named latency model (``instant``, ``typical``, ``slow-network``).

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    try:
        model = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown latency preset {name!r}; choose one of {sorted(PRESETS)}") from None
    return model if seed is None else replace(model, seed=seed)


class LatencySampler:
    """Draws stage delays (in seconds of wall time, already divided by ``speed``).

    Args:
        model: The latency model.
        speed: Time scale; ``math.inf`` makes every delay zero.
        seed_offset: Added to the model's seed (one sampler per connection, each reproducible).
    """

    def __init__(self, model: LatencyModel, speed: float = 1.0, seed_offset: int = 0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (math.inf for as fast as possible), got {speed!r}")
        self.model = model
        self.speed = speed
        self._rng = random.Random(model.seed + seed_offset)

    def draw_ms(self, stage: str) -> float:
        """Unscaled delay of one stage in ms (the model's own time)."""
        delay = self.model.stages.get(stage)
        if delay is None:
            return 0.0
        return (
            delay.fixed_ms + abs(self._rng.gauss(0.0, delay.jitter_ms)) if delay.jitter_ms else delay.fixed_ms
        )

    def seconds(self, model_ms: float) -> float:
        """Wall seconds for a span of ``model_ms`` at this speed."""
        return 0.0 if math.isinf(self.speed) else model_ms / 1000.0 / self.speed

    def audio_send_offset_ms(self, audio_ms: float) -> float:
        """Model-time offset (from the first audio byte) at which output audio at ``audio_ms`` is ready."""
        rtf = self.model.tts_realtime_factor
        return 0.0 if math.isinf(rtf) else audio_ms / rtf
