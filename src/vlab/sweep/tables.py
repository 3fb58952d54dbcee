"""A sweep's tables (turns, vad, scores, session, points) built from its cells' run folders."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlab.audio.recording import item_wav_path
from vlab.log.files import write_atomic
from vlab.prompts import LabelledPrompt, write_run_labels
from vlab.sweep.config import SweepConfig
from vlab.sweep.grid import KNOB_COLUMNS, in_grid_order, knobs_of
from vlab.sweep.store import (
    CELL_FILE,
    DATASET_DIR,
    arrow_atomic,
    arrow_table,
    cell_folder,
    cell_metas,
    dataset_atomic,
    parquet_atomic,
)


def analyse_cell(cell_dir: Path, prompt: LabelledPrompt, *, push_to_talk: bool = False) -> dict[str, Any]:
    """One cell's ``turns``, ``vad`` and ``session`` frames and its ``score`` row, from its run folder.

    The folder keeps the labels its turns are timed from (``labels.json``,
    :func:`~vlab.prompts.write_run_labels`), so the log explorer opened on the cell gives the figures of
    the sweep's tables, whatever labels the prompt had when the cell ran; the ``connect`` delay is the
    session's own, from its ``vlab.connect`` record, on its clock. A ``push_to_talk`` cell (no turn
    detection) is scored against the labels as a perfect end-of-turn decision would be
    (:func:`_push_to_talk_detections`); its ``vad`` frame stays empty.
    """
    from vlab.log import load_log
    from vlab.metrics import (
        detections_from_events,
        score_prompt,
        session_latency,
        tokens_used,
        turn_latency,
    )

    events = load_log(cell_dir)
    write_run_labels(cell_dir, prompt.labels() if prompt.end_of_turn_ms else None)
    turns = turn_latency(events, end_of_turn_ms=prompt.end_of_turn_ms)
    turns["reply_leading_silence_ms"] = [_reply_silence(cell_dir, item) for item in turns["reply_item_id"]]
    det = detections_from_events(events)
    if push_to_talk:
        decided, dead = _push_to_talk_detections(prompt, turns, det)
    else:
        decided = det
        dead = {
            float(a): float(d)
            for a, d in zip(turns["audio_end_ms"], turns["dead_air_ms"], strict=False)
            if math.isfinite(a)
        }
    score = score_prompt(prompt, decided, dead_air_ms=dead)
    score["total_tokens"] = tokens_used(turns)["total_tokens"]
    sess = session_latency(events)
    return {"turns": turns, "vad": det, "score": score, "session": sess}


def _push_to_talk_detections(prompt: LabelledPrompt, turns: Any, like: Any) -> tuple[Any, dict[float, float]]:
    """A push-to-talk cell's turns as detections: each labelled segment, each turn ending at its label.

    The k-th committed turn answers the k-th labelled turn (the cell commits them one after the other,
    each once the one before is answered). Returns the detections, with the columns and types of ``like``
    (a detections frame), and each answered turn's dead air (from its commit, on the session's timeline)
    by its labelled end.
    """
    import pandas as pd

    from vlab.metrics import OFFSET_EARLIEST, ONSET_EARLIEST

    dead_air = [float(d) for d in turns.loc[turns["trigger"] == "commit", "dead_air_ms"]]
    rows: list[dict[str, Any]] = []
    dead: dict[float, float] = {}
    previous_end = -math.inf
    for k, end in enumerate(prompt.end_of_turn_ms):
        segments = [(on, off) for on, off in prompt.speech_segments if previous_end < on <= end]
        previous_end = end
        for on, off in segments:
            last = (on, off) == segments[-1]
            rows.append(
                {
                    "audio_start_ms": on,
                    "audio_end_ms": end if last else math.nan,
                    "onset_ms": on,
                    ONSET_EARLIEST: on,
                    OFFSET_EARLIEST: off,
                    "offset_ms": off,
                    "responded": last and k < len(dead_air),
                }
            )
        if k < len(dead_air):
            dead[float(end)] = dead_air[k]
    return pd.DataFrame(rows, columns=list(like.columns)).astype(like.dtypes.to_dict()), dead


def _reply_silence(cell_dir: Path, item_id: Any) -> float:
    """Leading silence of a reply, measured from its recording (NaN without one: no id, or no file)."""
    import soundfile as sf

    from vlab.metrics import leading_silence_ms

    if not isinstance(item_id, str) or not item_id:  # a turn with no reply has a missing id (NaN, None)
        return math.nan
    path = item_wav_path(cell_dir, item_id)
    if not path.is_file():
        return math.nan
    audio, rate = sf.read(path, dtype="int16")
    return leading_silence_ms(audio.tobytes(), int(rate))


def aggregate(
    out_dir: Path,
    cfg: SweepConfig,
    analysed: Mapping[str, dict[str, Any]] | None = None,
    metas: Sequence[dict[str, Any]] | None = None,
    on_cell: Callable[[], None] | None = None,
) -> None:
    """(Re)build ``turns``, ``vad``, ``scores``, ``session`` and ``points`` parquet files from the cells.

    The cells are those with a ``cell.json``, or ``metas`` (what each would hold: a VAD-only sweep writes
    no cell folders). ``analysed`` has the :func:`analyse_cell` results of cells already analysed where they ran (by cell
    name); the other cells are analysed here. ``on_cell`` is called after each cell (a progress bar).
    """
    import pandas as pd

    from vlab.metrics import operating_points

    prompts = {p.id: p for p in cfg.prompts}
    tables: dict[str, list[tuple[pd.DataFrame, dict[str, Any]]]] = {"turns": [], "vad": [], "session": []}
    scores: list[dict[str, Any]] = []
    for meta in cell_metas(out_dir) if metas is None else metas:
        try:
            if meta.get("status") != "ok" or meta.get("prompt") not in prompts:
                continue
            prompt = prompts[meta["prompt"]]
            keys = {
                "cell": meta["cell"],
                "setting": meta["setting"],
                "prompt": prompt.id,
                "category": prompt.category,
                "run": meta["repeat"],
                **knobs_of(meta["settings"]),
            }
            try:
                res = (analysed or {}).get(meta["cell"]) or analyse_cell(
                    cell_folder(out_dir, meta["cell"]),
                    prompt,
                    push_to_talk=meta["settings"]["turn_detection"] is None,
                )
            except Exception as exc:  # an unreadable cell is reported, not fatal
                meta.update(status="error", error=f"analysis failed: {exc!r}")
                write_atomic(
                    cell_folder(out_dir, meta["cell"]) / CELL_FILE, json.dumps(meta, indent=2) + "\n"
                )
                continue
            for name, parts in tables.items():
                if name in res:  # a VAD-only cell has no turns or session
                    parts.append((res[name], keys))
            scores.append({**keys, **res["score"]})
        finally:
            if on_cell is not None:
                on_cell()
    frames = {name: _with_keys(parts) for name, parts in tables.items()}
    frames["scores"] = pd.DataFrame(scores)
    for name, frame in frames.items():
        for col in frame.columns:
            if frame[col].dtype == object:
                values = frame[col].dropna()
                if values.map(lambda v: isinstance(v, str)).all():
                    frame[col] = frame[col].astype("string")
                else:
                    frame[col] = pd.to_numeric(frame[col], errors="coerce")
        table = arrow_table(frame)
        arrow_atomic(table, out_dir / f"{name}.parquet")
        dataset_atomic(table, out_dir / DATASET_DIR / name, cfg.setting_names)
    points = (
        operating_points(
            frames["scores"],
            by="setting",
            baseline=cfg.baseline,
            reference=cfg.push_to_talk,
            turns=frames["turns"] if cfg.mode == "sessions" else None,  # a VAD-only sweep answers none
        )
        if scores
        else pd.DataFrame()
    )
    if not points.empty:
        first = frames["scores"].groupby("setting")[list(KNOB_COLUMNS)].first()
        points = points.merge(first, left_on="setting", right_index=True, how="left")
        points = in_grid_order(points, cfg.setting_names)
    parquet_atomic(points, out_dir / "points.parquet")


def _with_keys(parts: Sequence[tuple[Any, Mapping[str, Any]]]) -> Any:
    """The cells' frames as one, each row with its cell's keys (the keys as columns, after the frames')."""
    import numpy as np
    import pandas as pd

    parts = [(frame, keys) for frame, keys in parts if len(frame.columns)]
    if not parts:
        return pd.DataFrame()
    rows = [(frame, keys) for frame, keys in parts if len(frame)] or parts[:1]  # empty frames add no row
    out = pd.concat([frame for frame, _ in rows], ignore_index=True)
    lengths = [len(frame) for frame, _ in rows]
    for key in parts[0][1]:
        values = np.empty(len(rows), dtype=object)
        values[:] = [keys[key] for _, keys in rows]
        out[key] = np.repeat(values, lengths)
    return out
