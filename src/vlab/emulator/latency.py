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
``network``            one-way delivery: before response.created, speech_started, speech_stopped  10 ms
``mcp_call``           an MCP server's answer: response.mcp_call.in_progress → .completed         300 ms
``transcription``      commit (speech_stopped) → the user's transcript (input transcription on)   300 ms
=====================  ========================================================================  =========

``mcp_call`` is the round trip to a session's MCP server and the tool's own work (a remote search or a
question to a hosted model takes from a few hundred ms to seconds); the emulator's real call to the server
runs meanwhile, and its wall time is not on the timeline. ``vlab calibrate`` fits it from runs with MCP
calls; a fitted model without it gives the call no simulated time.

``transcription`` is when the user's transcript (``conversation.item.input_audio_transcription.completed``)
comes after the commit; the service runs it beside the response, so it often comes after the response
has begun. The typical figure is an assumption (a streaming recognizer's final result takes a few
hundred ms after the end of speech, a batch model such as whisper-1 up to a second or more): fit your
own with ``vlab calibrate`` from runs with transcription on. A fitted model without it sends the
transcript at the commit, as ``instant`` does.

``typical`` follows public figures for cascaded voice agents (pipecat's and LiveKit's published
latency breakdowns: LLM TTFT 200–400 ms, streaming TTS first byte 100–200 ms) and the Voice Live
documentation's guidance that a turn should answer within about 800 ms of the end of speech.
Output audio is produced ``tts_realtime_factor`` times faster than real time (5× by default; with
``tts_realtime_jitter``, plus a half-normal draw per response) and sent
in ``audio_chunk_ms`` chunks, like the service, which streams faster than playback (the figure the
factor rests on: ``docs/emulator.md``, "Output pacing").

A model fitted from real runs (``vlab calibrate``, :mod:`vlab.emulator.fitted_latency`) replaces these
parametric stages by empirical distributions of the measured intervals; pass its ``latency.json`` where a
preset name goes (:func:`resolve`).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from vlab.emulator.fitted_latency import FittedLatency
from vlab.errors import ConfigError

STAGES: Final = (
    "endpointing",
    "commit",
    "first_token",
    "tts_first_byte",
    "network",
    "mcp_call",
    "transcription",
)


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
    tts_realtime_jitter: float = 0.0
    """Scale of a half-normal random part added to :attr:`tts_realtime_factor`, drawn once per response
    (0: every response streams at exactly the factor)."""
    audio_chunk_ms: int = 100
    """Length of audio carried by each ``response.audio.delta``, in ms."""
    seed: int = 0
    """Seed of the jitter draws."""
    fitted: FittedLatency | None = None
    """Empirical stage distributions fitted from real runs; when set they replace :attr:`stages` and
    :attr:`tts_realtime_factor`."""


_TYPICAL: Final = LatencyModel(
    name="typical",
    stages={
        "endpointing": StageDelay(30, 10),
        "commit": StageDelay(60, 20),
        "first_token": StageDelay(250, 60),
        "tts_first_byte": StageDelay(120, 30),
        "network": StageDelay(10, 3),
        "mcp_call": StageDelay(300, 150),
        "transcription": StageDelay(300, 150),
    },
)
PRESETS: Final[dict[str, LatencyModel]] = {
    "instant": LatencyModel(name="instant", stages={}, tts_realtime_factor=math.inf),
    "typical": _TYPICAL,
    "slow-network": replace(
        _TYPICAL, name="slow-network", stages={**_TYPICAL.stages, "network": StageDelay(120, 60)}
    ),  # typical, with a slow one-way network
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
            f"unknown latency preset {name!r}; choose one of {', '.join(sorted(PRESETS))}, give a latency.json "
            "from `vlab calibrate`, or (from Python) a LatencyModel(...) of your own stage delays."
        ) from None
    return model if seed is None else replace(model, seed=seed)


def fitted_model(path: str | os.PathLike[str], *, seed: int = 0) -> LatencyModel:
    """The latency model of a ``latency.json`` written by ``vlab calibrate``.

    Raises:
        ConfigError: The file is missing or not a fitted model.
    """
    fitted = FittedLatency.load(path)
    return LatencyModel(
        name=f"fitted:{Path(path).name}", audio_chunk_ms=fitted.audio_chunk_ms, seed=seed, fitted=fitted
    )


def describe(latency: LatencyModel | str | os.PathLike[str]) -> dict[str, Any]:
    """What a sweep manifest records of its latency model: name, and for a fitted one its file and origin.

    Raises:
        ConfigError: As :func:`resolve`.
    """
    model = resolve(latency)
    out: dict[str, Any] = {"name": model.name}
    if model.fitted is not None:
        prov = model.fitted.provenance
        out.update(
            file=model.fitted.source,
            runs=len(prov.get("runs", [])),
            dates=prov.get("dates", []),
            endpoint_hosts=prov.get("endpoint_hosts", []),
            created_at=prov.get("created_at"),
        )
    return out


def note(description: dict[str, Any]) -> str:
    """One line naming a latency model (:func:`describe`'s dict): a fitted one with where it came from.

    For example ``fitted:latency.json (fitted from 40 runs against x.services.ai.azure.com, 2026-01-05
    to 2026-01-09; models/latency.json)``; a preset is just its name.
    """
    if not description.get("file"):
        return str(description.get("name"))
    dates = description.get("dates") or []
    when = f", {dates[0][:10]} to {dates[-1][:10]}" if dates else ""
    hosts = ", ".join(description.get("endpoint_hosts") or []) or "unknown host"
    return (
        f"{description['name']} (fitted from {description.get('runs')} runs against {hosts}{when}; "
        f"{description['file']})"
    )


def resolve(latency: LatencyModel | str | os.PathLike[str], *, seed: int = 0) -> LatencyModel:
    """A latency model from a model, a preset name or the path of a fitted ``latency.json``.

    Raises:
        ConfigError: An unknown preset name, or a file that is not a fitted model.
    """
    if isinstance(latency, LatencyModel):
        return latency
    name = str(latency)
    if (
        isinstance(latency, os.PathLike)
        or name.endswith(".json")
        or (name not in PRESETS and Path(name).is_file())
    ):
        return fitted_model(latency, seed=seed)
    return preset(str(latency), seed=seed)


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

    def reseed(self, seed: int) -> None:
        """Draw from ``seed`` from now on, every stream from its start (as a sampler made with it would)."""
        self._seed = seed
        self._rngs.clear()

    def _rng(self, stream: str) -> random.Random:
        rng = self._rngs.get(stream)
        if rng is None:
            rng = self._rngs[stream] = random.Random(f"{self._seed}/{stream}")
        return rng

    def draw_ms(self, stage: str, *, stream: str = "main") -> float:
        """Delay of one parametric stage in simulated ms, drawn from ``stream``."""
        delay = self.model.stages.get(stage)
        if delay is None:
            return 0.0
        if not delay.jitter_ms:
            return delay.fixed_ms
        return delay.fixed_ms + abs(self._rng(stream).gauss(0.0, delay.jitter_ms))

    def _fitted_draw(
        self, stage: str, *, stream: str, voice: str | None = None, model: str | None = None
    ) -> float | None:
        """A draw from the fitted distribution of ``stage`` (None: the model is not fitted or lacks it)."""
        fitted = self.model.fitted
        dist = fitted.stage(stage, voice=voice, model=model) if fitted is not None else None
        return None if dist is None else dist.draw(self._rng(stream))

    def mcp_call_ms(self) -> float:
        """How long an MCP server takes to answer one call, in simulated ms (0 for a fitted model without the stage)."""
        if self.model.fitted is not None:
            return max(0.0, self._fitted_draw("mcp_call", stream="mcp") or 0.0)
        return self.draw_ms("mcp_call", stream="mcp")

    def transcription_ms(self) -> float:
        """When a turn's transcript comes after its commit, in simulated ms (0 for a fitted model without the stage)."""
        if self.model.fitted is not None:
            return max(0.0, self._fitted_draw("transcription", stream="transcription") or 0.0)
        return self.draw_ms("transcription", stream="transcription")

    def speech_started_delay_ms(self) -> float:
        """Delay of ``speech_started`` after the VAD decided it (the network)."""
        if self.model.fitted is not None:
            return max(0.0, self._fitted_draw("network", stream="vad") or 0.0)
        return self.draw_ms("network", stream="vad")

    def speech_stopped_at_ms(self, decided_ms: float, audio_end_ms: float) -> float:
        """Simulated time of ``speech_stopped`` for a turn decided at ``decided_ms`` that ends at ``audio_end_ms``.

        Parametric: ``decided_ms`` + endpointing + network. Fitted: ``audio_end_ms`` + the measured
        endpointing (which holds the network), never before the decision.
        """
        if self.model.fitted is not None:
            draw = self._fitted_draw("endpointing", stream="vad") or 0.0
            return max(decided_ms, audio_end_ms + draw)
        return decided_ms + self.draw_ms("endpointing", stream="vad") + self.draw_ms("network", stream="vad")

    def response_delays(self, *, voice: str | None = None, model: str | None = None) -> dict[str, float]:
        """One response's draws, in simulated ms, and how fast its audio streams.

        Keys: ``commit`` and ``network`` (to ``response.created``), ``first_token`` (created → first
        text), ``tts_first_byte`` (first text → first audio), ``tts_realtime_factor`` (×).
        """
        if self.model.fitted is None:
            delays = {
                stage: self.draw_ms(stage, stream="response")
                for stage in ("commit", "network", "first_token", "tts_first_byte")
            }
            rtf = self.model.tts_realtime_factor
            if self.model.tts_realtime_jitter and not math.isinf(rtf):
                rtf += abs(self._rng("response").gauss(0.0, self.model.tts_realtime_jitter))
            return {**delays, "tts_realtime_factor": rtf}

        def draw(stage: str, default: float) -> float:
            value = self._fitted_draw(stage, stream="response", voice=voice, model=model)
            return default if value is None else value

        return {
            "commit": max(0.0, draw("commit", 0.0)),
            "network": 0.0,  # the measured stages hold it
            "first_token": max(0.0, draw("first_text", 0.0)),
            "tts_first_byte": draw("first_audio", 0.0),
            "tts_realtime_factor": max(draw("audio_rate", self.model.tts_realtime_factor), 0.1),
        }

    def audio_send_offset_ms(self, audio_ms: float, rtf: float | None = None) -> float:
        """Simulated-ms offset (from the first audio byte) at which output audio at ``audio_ms`` is ready.

        Args:
            audio_ms: Position in the output audio, in ms.
            rtf: The response's realtime factor (default: the model's).
        """
        rtf = self.model.tts_realtime_factor if rtf is None else rtf
        return 0.0 if math.isinf(rtf) else audio_ms / rtf
