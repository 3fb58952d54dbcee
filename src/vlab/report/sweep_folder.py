"""A sweep folder as the report and the comparison read it: its manifest, tables and settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vlab.errors import ConfigError
from vlab.metrics.latency import made_tool_calls

__all__ = [
    "grid_models",
    "grid_settings",
    "latency_measures",
    "load_table",
    "require_results",
    "require_sweep",
    "without_answers",
]


def load_table(sweep_dir: Path, name: str) -> pd.DataFrame:
    """The sweep's table ``name`` (``points``, ``turns``, ``vad``, ``scores``); empty when it has none."""
    path = sweep_dir / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def require_sweep(sweep_dir: Path) -> dict[str, Any]:
    """The sweep's ``manifest.json``; a :class:`ConfigError` that says why when ``sweep_dir`` is not a sweep."""
    from vlab.sweep.store import SWEEP_MANIFEST, not_a_sweep

    problem = not_a_sweep(sweep_dir)
    if problem is not None:
        raise ConfigError(problem)
    return json.loads((sweep_dir / SWEEP_MANIFEST).read_text(encoding="utf-8"))


def require_results(sweep_dir: Path, points: pd.DataFrame) -> None:
    """Raise a :class:`ConfigError` that says why, when the sweep has no operating point (no cell finished)."""
    if points.empty:
        from vlab.sweep.store import no_results_message

        raise ConfigError(no_results_message(sweep_dir))


def grid_settings(manifest: dict[str, Any]) -> list[str]:
    """The names of the settings a sweep's ``manifest.json`` (already read) lists, in grid order."""
    return [point["setting"] for point in manifest.get("grid", [])]


def grid_models(manifest: dict[str, Any]) -> str | None:
    """The models a sweep's cells connected with, in the grid's order (None: a manifest of an earlier vlab)."""
    named = [g["model"] for g in manifest.get("grid", []) if g.get("model")]
    return ", ".join(dict.fromkeys(named)) or None


def without_answers(names: Sequence[str]) -> set[str]:
    """Setting names without their ``model=`` and ``voice=`` parts (:data:`vlab.sweep.grid.ANSWER_KEYS`)."""
    from vlab.sweep.grid import ANSWER_KEYS

    answers = tuple(f"{key}=" for key in ANSWER_KEYS)
    return {" ".join(part for part in name.split() if not part.startswith(answers)) for name in names}


def latency_measures(*turns: pd.DataFrame, endpointing: bool = False) -> list[str]:
    """The per-turn latencies a sweep's summary and comparison show, in order.

    Dead air, voice-to-voice, voice-to-answer when any of the ``turns`` tables made tool calls
    (:func:`made_tool_calls`), endpointing when asked for, turn commit and first audio.
    """
    with_tools = any(made_tool_calls(t) for t in turns)
    return [
        "dead_air_ms",
        "voice_to_voice_ms",
        *(["voice_to_answer_ms"] if with_tools else []),
        *(["endpointing_ms"] if endpointing else []),
        "turn_commit_ms",
        "ttfb_audio_ms",
    ]
