"""A latency model fitted from real runs (``vlab calibrate``): empirical distributions per stage.

``latency.json`` holds, for each stage, quantiles of what was measured in runs against Azure, overall
and split by voice and by model where the runs had them, and where the figures came from (runs,
dates, endpoint hosts; never a key). The emulator draws each delay by inverse transform sampling from
these quantiles (:meth:`Empirical.draw`), from its seeded streams, on the simulated timeline.

Stages, each measured on the run's timeline (``docs/calibration.md``):

================  ==============================================================================  ======
stage             interval                                                                        unit
================  ==============================================================================  ======
``endpointing``   end of the silence timer (``audio_end_ms``) → ``speech_stopped``                ms
``commit``        ``speech_stopped`` → ``response.created``                                       ms
``first_text``    ``response.created`` → first transcript/text delta                              ms
``first_audio``   first text delta → first audio delta (negative: audio came first)               ms
``audio_rate``    output audio streamed per unit of time (5 = five times faster than real time)   ×
``network``       one way: half the ``session.update`` → ``session.updated`` round trip            ms
``mcp_call``      ``response.mcp_call.in_progress`` → ``.completed`` or ``.failed`` (one MCP call)   ms
``transcription`` ``speech_stopped`` → the user's transcript (``input_audio_transcription.completed``)   ms
================  ==============================================================================  ======

``mcp_call`` and ``transcription`` are optional (:data:`OPTIONAL_STAGES`): only runs with MCP calls, or
with input transcription on, measure them; without them the emulator's MCP calls take no simulated time
and its transcripts come with the commit.

The measured stages already hold the network delay of the events they end on; the emulator adds the
``network`` draw only to ``speech_started``. On the emulator's simulated timeline ``network`` is measured
there: ``speech_started``'s time minus where its VAD decided (:data:`vlab.protocol.DECIDED_MS_KEY`).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from vlab.errors import ConfigError, check_count

FORMAT: Final = "vlab.latency/1"
"""The ``format`` value of a fitted model file."""
FITTED_STAGES: Final = (
    "endpointing",
    "commit",
    "first_text",
    "first_audio",
    "audio_rate",
    "network",
    "mcp_call",
    "transcription",
)
"""Stages of a fitted model, in time order (see the module docstring)."""
OPTIONAL_STAGES: Final = ("mcp_call", "transcription")
"""Stages only some runs measure (MCP calls, input transcription): none measured is no cause for a warning."""
VOICE_STAGES: Final = ("first_audio", "audio_rate")
"""Stages that depend on the voice (speech synthesis); the others are split by model."""
QUANTILE_POINTS: Final = 101
"""Quantiles stored per distribution: at probabilities 0, 0.01, …, 1."""


@dataclass(frozen=True, slots=True)
class Empirical:
    """An empirical distribution kept as evenly spaced quantiles."""

    quantiles: tuple[float, ...]
    """Values at probabilities ``0, 1/(k-1), …, 1`` (k = the number of values), ascending."""
    n: int
    """Samples the quantiles were computed from."""

    @classmethod
    def fit(cls, samples: Sequence[float], points: int = QUANTILE_POINTS) -> Empirical:
        """Quantiles of the finite values of ``samples`` (linear interpolation between order statistics).

        Raises:
            ValueError: No finite sample.
        """
        values = sorted(float(x) for x in samples if math.isfinite(float(x)))
        if not values:
            raise ValueError("no finite sample to fit")
        return cls(tuple(_quantile(values, i / (points - 1)) for i in range(points)), len(values))

    def quantile(self, p: float) -> float:
        """The value at probability ``p`` (0–1), interpolated between the stored quantiles."""
        q = self.quantiles
        if len(q) == 1:
            return q[0]
        x = min(max(p, 0.0), 1.0) * (len(q) - 1)
        i = min(int(x), len(q) - 2)
        return q[i] + (q[i + 1] - q[i]) * (x - i)

    def draw(self, rng: random.Random) -> float:
        """One value by inverse transform sampling (a uniform draw through :meth:`quantile`)."""
        return self.quantile(rng.random())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"n", "p50", "p90", "p99", "quantiles"}`` (the percentiles are for readers)."""
        return {
            "n": self.n,
            "p50": round(self.quantile(0.5), 3),
            "p90": round(self.quantile(0.9), 3),
            "p99": round(self.quantile(0.99), 3),
            "quantiles": [round(v, 3) for v in self.quantiles],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Empirical:
        """Read the JSON form back.

        Raises:
            ConfigError: Missing or unsorted quantiles, or a count below 1.
        """
        raw = data.get("quantiles") if isinstance(data, Mapping) else None
        if not isinstance(raw, list) or not raw or not all(isinstance(v, (int, float)) for v in raw):
            raise ConfigError(f"{where}: 'quantiles' must be a non-empty list of numbers")
        values = tuple(float(v) for v in raw)
        if any(b < a for a, b in zip(values, values[1:], strict=False)) or not all(
            map(math.isfinite, values)
        ):
            raise ConfigError(f"{where}: 'quantiles' must be finite and ascending")
        n = data.get("n", len(values))
        check_count(f"{where}: 'n'", n)
        return cls(values, n)


def _quantile(sorted_values: Sequence[float], p: float) -> float:
    """Quantile ``p`` of ascending values (numpy's default "linear" method)."""
    x = p * (len(sorted_values) - 1)
    i = int(math.floor(x))
    j = min(i + 1, len(sorted_values) - 1)
    return sorted_values[i] + (sorted_values[j] - sorted_values[i]) * (x - i)


Stages = dict[str, Empirical]
"""Distributions by stage name (:data:`FITTED_STAGES`)."""


@dataclass(frozen=True, slots=True)
class FittedLatency:
    """Stage distributions fitted from runs, with their voice and model splits and provenance."""

    stages: Stages
    """Distributions over every run, by stage."""
    by_voice: dict[str, Stages] = field(default_factory=dict)
    """Distributions of the runs with each voice (only :data:`VOICE_STAGES` are used from these)."""
    by_model: dict[str, Stages] = field(default_factory=dict)
    """Distributions of the runs with each model."""
    audio_chunk_ms: int = 100
    """Typical audio per ``response.audio.delta``, in ms (the median measured)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Where the figures came from: runs, dates, endpoint hosts, vlab version (never a key)."""
    source: str = ""
    """The file the model was read from, if any."""

    def stage(self, name: str, *, voice: str | None = None, model: str | None = None) -> Empirical | None:
        """The distribution to draw ``name`` from: the voice's, else the model's, else the overall one."""
        if voice is not None and name in VOICE_STAGES and name in self.by_voice.get(voice, {}):
            return self.by_voice[voice][name]
        if model is not None and name in self.by_model.get(model, {}):
            return self.by_model[model][name]
        return self.stages.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``latency.json``."""

        def table(stages: Stages) -> dict[str, Any]:
            return {name: stages[name].to_dict() for name in FITTED_STAGES if name in stages}

        return {
            "format": FORMAT,
            "stages": table(self.stages),
            "by_voice": {k: table(v) for k, v in sorted(self.by_voice.items())},
            "by_model": {k: table(v) for k, v in sorted(self.by_model.items())},
            "audio_chunk_ms": self.audio_chunk_ms,
            "provenance": self.provenance,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON to ``path``; returns the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1)
        text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
        out.write_text(text + "\n", encoding="utf-8")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> FittedLatency:
        """Read the JSON form.

        Raises:
            ConfigError: Not a fitted latency model, an unknown stage or a malformed distribution.
        """
        where = source or "latency model"
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ConfigError(
                f'{where} is not a fitted latency model (no "format": {FORMAT!r}); '
                "make one with 'vlab calibrate RUN… --out latency.json'"
            )

        def stages(raw: Any, at: str) -> Stages:
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where}: {at} must be an object of stages")
            unknown = sorted(set(raw) - set(FITTED_STAGES))
            if unknown:
                raise ConfigError(
                    f"{where}: unknown stage(s) {unknown} in {at}; known: {list(FITTED_STAGES)}"
                )
            return {name: Empirical.from_dict(value, f"{where}: {at}.{name}") for name, value in raw.items()}

        def splits(key: str) -> dict[str, Stages]:
            raw = data.get(key, {})
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where}: {key} must be an object")
            return {str(k): stages(v, f"{key}.{k}") for k, v in raw.items()}

        chunk = data.get("audio_chunk_ms", 100)
        check_count(f"{where}: audio_chunk_ms", chunk)
        provenance = data.get("provenance", {})
        return cls(
            stages=stages(data.get("stages"), "stages"),
            by_voice=splits("by_voice"),
            by_model=splits("by_model"),
            audio_chunk_ms=chunk,
            provenance=dict(provenance) if isinstance(provenance, Mapping) else {},
            source=source,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FittedLatency:
        """Read a ``latency.json`` written by ``vlab calibrate``.

        Raises:
            ConfigError: The file is missing, not JSON, or not a fitted model.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"latency model file {str(p)!r} not found; make one with 'vlab calibrate RUN… --out {p.name}'"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{str(p)!r} is not a fitted latency model: it could not be read as JSON ({exc}); make one with "
                "'vlab calibrate RUN… --out latency.json'"
            ) from None
        return cls.from_dict(data, source=str(p))
