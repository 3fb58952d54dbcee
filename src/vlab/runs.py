"""The runs a folder keeps: each sweep and each session's run folder under it, one row each (``vlab runs``).

A sweep folder is one row (its cells are not listed), whether it finished (``manifest.json``) or stopped
before it did (cells, no manifest: the same ``vlab sweep`` command goes on from them); the runs kept beside
its cells are listed too (``vlab demo`` executes its notebooks in its sweep folder, and their runs land
there). Any other folder with a session's ``session.json`` or event log is a session's run folder:
``vlab replay``'s, a panel's or a notebook's. Nothing here opens an event log: the listing reads the small
JSON files only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from vlab import protocol
from vlab.errors import ConfigError
from vlab.log.files import JSONL_NAME, SESSION_NAME, is_run_folder
from vlab.sweep.grid import counted, grid_shape
from vlab.sweep.store import CELL_FILE, CELLS_DIR, SWEEP_MANIFEST, swept_by

__all__ = ["RUN_COLUMNS", "find_runs"]

RUN_COLUMNS = ("folder", "kind", "started_at", "target", "size", "ended", "audio")
"""The columns of :func:`find_runs`: the folder (under the root), what it is (``sweep``, ``VAD-only sweep``,
``stopped sweep``, ``running sweep``, ``session``), when it started (UTC), where it connected, how big it is, how it ended,
and the audio its sessions sent and heard."""

_EMBEDDED_PORT = re.compile(r"^embedded emulator at \S+, ")


def find_runs(root: str | os.PathLike[str] = "runs") -> pd.DataFrame:
    """Every sweep and session run folder under ``root``, newest first (:data:`RUN_COLUMNS`).

    Args:
        root: The folder to search (``runs``, where ``vlab replay`` and the panels write by default).

    Raises:
        ConfigError: ``root`` is not a folder.
    """
    folder = Path(root)
    if not folder.is_dir():
        where = "is a file" if folder.exists() else "does not exist"
        raise ConfigError(
            f"{str(folder)!r} {where}: give the folder that holds your runs (vlab replay and the panels "
            "write under 'runs' by default, vlab sweep where --out says)"
        )
    rows = [{"folder": str(path.relative_to(folder)) or ".", **row} for path, row in _runs_under(folder)]
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, errors="coerce", format="ISO8601")
    return frame.sort_values(
        ["started_at", "folder"], ascending=[False, True], na_position="last"
    ).reset_index(drop=True)


def _khz(rate: int) -> str:
    return f"{rate / 1000:g} kHz"


def _runs_under(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each run folder under ``root`` (``root`` included) and its row.

    Not what is inside a session's run folder, nor a sweep's cells; the folders beside a sweep's cells are
    searched.
    """
    for path, dirs, _ in os.walk(root):
        here = Path(path)
        sweep = _sweep_row(here)
        row = sweep or _session_row(here)
        if row is not None:
            yield here, row
        if row is not None and sweep is None:
            dirs.clear()
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (sweep and d == CELLS_DIR))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _sweep_row(folder: Path) -> dict[str, Any] | None:
    """The row of a sweep folder, finished or stopped; None for any other folder."""
    manifest = _read_json(folder / SWEEP_MANIFEST)
    if isinstance(manifest, dict) and "grid" in manifest:
        counts = manifest.get("counts", {})
        ended = ", ".join(
            f"{counts.get(key, 0)} {word}"
            for key, word in (("ok", "ok"), ("error", "failed"), ("missing", "missing"))
            if counts.get(key) or key == "ok"
        )
        vad_only = manifest.get("mode") == "vad"
        return {
            "kind": "VAD-only sweep" if vad_only else "sweep",
            "started_at": manifest.get("started_at"),
            "target": "the emulator's VAD, no sessions" if vad_only else _sweep_target(folder, manifest),
            "size": grid_shape(
                len(manifest["grid"]), len(manifest.get("prompts", [])), manifest.get("repeats", 1)
            ),
            "ended": ended,
            "audio": _audio(manifest.get("session", {}), answered=not vad_only),
        }
    cells = sorted((folder / CELLS_DIR).glob(f"*/{CELL_FILE}"))
    if not cells:
        return None
    first = _read_json(cells[0].parent / SESSION_NAME)
    first = first if isinstance(first, dict) else {}
    pid = swept_by(folder)
    return {
        "kind": "stopped sweep" if pid is None else "running sweep",
        "started_at": first.get("started_at"),
        "target": _session_target(first),
        "size": counted(len(cells), "cell") + " finished",
        "ended": "stopped (the same vlab sweep command goes on)"
        if pid is None
        else f"running (pid {pid}): not finished yet",
        "audio": _audio(first.get("settings", {})),
    }


def _sweep_target(folder: Path, manifest: Mapping[str, Any]) -> str:
    """Where a sweep connected (as its first cell's ``session.json`` says), with the grid's models."""
    target = ", ".join(manifest.get("target_kind", [])) or "unknown"
    for session in sorted((folder / CELLS_DIR).glob(f"*/{SESSION_NAME}")):
        meta = _read_json(session)
        if isinstance(meta, dict):
            target = _session_target(meta)
            break
    models = sorted({str(s["model"]) for s in manifest["grid"] if isinstance(s, dict) and s.get("model")})
    if len(models) > 1:  # the first cell's is one of them
        target = re.sub(r", model [^,]+$", ", models " + ", ".join(models), target)
    return target


def _session_row(folder: Path) -> dict[str, Any] | None:
    """The row of a session's run folder; None for any other folder."""
    if not (folder / SESSION_NAME).is_file() and not is_run_folder(folder):
        return None
    meta = _read_json(folder / SESSION_NAME)
    if not isinstance(meta, dict):
        return {"kind": "session", "started_at": None, "target": "unknown", "size": _events(folder, {}),
                "ended": f"no readable {SESSION_NAME}", "audio": ""}  # fmt: skip
    summary = meta.get("summary")
    if not isinstance(summary, dict):
        ended = "did not close (crashed, or still running)"
    else:
        error, refused = summary.get("connection_error"), summary.get("settings_refused")
        ended = (
            f"connection error: {str(error).splitlines()[0]}"
            if error
            else f"closed; the server refused its settings ({refused})"
            if refused
            else "closed"
        )
    return {
        "kind": "session",
        "started_at": meta.get("started_at"),
        "target": _session_target(meta),
        "size": _events(folder, summary if isinstance(summary, dict) else {}),
        "ended": ended,
        "audio": _audio(meta.get("settings", {})),
    }


def _session_target(meta: Mapping[str, Any]) -> str:
    """A session's target as ``session.json`` describes it, without the embedded emulator's port."""
    target = meta.get("target")
    description = target.get("description") if isinstance(target, dict) else None
    return _EMBEDDED_PORT.sub("embedded emulator, ", description) if description else "unknown"


def _events(folder: Path, summary: Mapping[str, Any]) -> str:
    """How many events a session logged: its summary's count, else the lines of its live log."""
    events = summary.get("events")
    if events is None:
        try:
            with open(folder / JSONL_NAME, "rb") as log:
                events = sum(1 for _ in log)
        except OSError:
            return ""
    return counted(int(events), "event")


def _audio(settings: Mapping[str, Any], *, answered: bool = True) -> str:
    """The audio sent and heard, as a session's settings or a sweep's ``[session]`` say it.

    ``pcm16 24 kHz in, pcm16 24 kHz out``: a key left out or unreadable is its default, and the rates are
    :class:`~vlab.settings.SessionSettings`'s. ``answered`` False: what was sent only (a VAD-only sweep hears
    the prompts, and nothing answers).
    """
    from vlab.settings import SessionSettings

    readable = {
        "input_audio_format": lambda value: value in protocol.INPUT_FORMATS,
        "input_audio_sampling_rate": lambda value: isinstance(value, int),
        "output_audio_format": lambda value: value in protocol.OUTPUT_FORMAT_RATES,
    }
    given = {key: settings[key] for key, ok in readable.items() if ok(settings.get(key))}
    try:
        audio = SessionSettings(**given)
    except ConfigError:  # a rate PCM16 does not take, or one given with G.711 (8 kHz whatever it says)
        audio = SessionSettings(**{k: v for k, v in given.items() if k != "input_audio_sampling_rate"})
    sent = f"{audio.input_audio_format} {_khz(audio.input_sample_rate)} in"
    return f"{sent}, {audio.output_audio_format} {_khz(audio.output_sample_rate)} out" if answered else sent
