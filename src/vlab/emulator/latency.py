"""The emulator's latency model: when each stage of a turn happens, seeded and documented.

Every stage delay is ``fixed_ms + jitter`` where the jitter is drawn from a half-normal distribution
with scale ``jitter_ms`` (delays are never negative), from a seeded :class:`random.Random`, so a run is
reproducible. Delays are in simulated ms on the connection's timeline (:mod:`vlab.emulator.timeline`);
the emulator's ``speed`` only maps that timeline onto the wall clock, so the same seed gives the same
figures at every speed.

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
in ``audio_chunk_ms`` chunks, like the service, which streams faster than playback (the figure the
factor rests on: ``docs/emulator.md``, "Output pacing").
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Final

from vlab.errors import ConfigError

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
        ConfigError: For an unknown name; the message lists the known ones.
    """
    try:
        model = PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown latency preset {name!r}; choose one of {', '.join(sorted(PRESETS))}, "
            "or pass a LatencyModel(...) for your own stage delays."
        ) from None
    return model if seed is None else replace(model, seed=seed)


class LatencySampler:
    """Draws stage delays in simulated ms (the speed maps them onto the wall clock elsewhere).

    Each *stream* of draws (the VAD's turn boundaries, the responses) has a random generator of its
    own, so the values one stream gets never depend on how its draws interleave with another's.

    Args:
        model: The latency model.
        seed_offset: Added to the model's seed (one sampler per connection, each reproducible).
    """

    def __init__(self, model: LatencyModel, seed_offset: int = 0) -> None:
        self.model = model
        self._seed = model.seed + seed_offset
        self._rngs: dict[str, random.Random] = {}

    def draw_ms(self, stage: str, *, stream: str = "main") -> float:
        """Delay of one stage in simulated ms, drawn from ``stream``."""
        delay = self.model.stages.get(stage)
        if delay is None:
            return 0.0
        if not delay.jitter_ms:
            return delay.fixed_ms
        rng = self._rngs.get(stream)
        if rng is None:
            rng = self._rngs[stream] = random.Random(f"{self._seed}/{stream}")
        return delay.fixed_ms + abs(rng.gauss(0.0, delay.jitter_ms))

    def audio_send_offset_ms(self, audio_ms: float) -> float:
        """Simulated-ms offset (from the first audio byte) at which output audio at ``audio_ms`` is ready."""
        rtf = self.model.tts_realtime_factor
        return 0.0 if math.isinf(rtf) else audio_ms / rtf
