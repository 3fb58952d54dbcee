"""A sweep's results as text: the table ``vlab sweep`` and ``vlab demo`` print when a sweep is done."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlab.metrics import SPOKEN_TRIGGERS

RESULT_COLUMNS = (
    ("cut off %", "false_cutoff_rate", 100.0),
    ("missed %", "missed_turn_rate", 100.0),
    ("dead air ms", "dead_air_ms", 1.0),
    ("tokens/turn", "tokens_per_expected_turn", 1.0),
)
"""The operating point's figures per setting: header, ``points`` column, scale."""
VOICE_TO_VOICE_COLUMNS = (("v2v p50 ms", 0.5), ("v2v p90 ms", 0.9))
"""The voice-to-voice latency per setting, from the sweep's turns: header, quantile."""


def results_table(points: Any, turns: Any = None) -> str:
    """A sweep's operating points as text: one line per setting in the table's order, the Pareto ones marked.

    A figure with a 95 % interval in the points (``<column>_lo``/``_hi``) shows it in brackets. A measure
    the points lack (tokens, in a VAD-only sweep) is left out; a value missing is ``-``. With the sweep's
    ``turns`` (``turns.parquet``), the voice-to-voice latency of each setting's spoken turns that were not
    cut off follows (its median and 90th percentile).
    """
    columns = [c for c in RESULT_COLUMNS if c[1] in points]
    latency = _voice_to_voice(turns)
    rows = [["setting", *(title for title, _, _ in columns), *latency.columns, ""]]
    for _, point in points.iterrows():
        mark = " (baseline)" if point["baseline"] else " (reference)" if point.get("reference") else ""
        figures = [_figure(point, key, scale) for _, key, scale in columns]
        if len(latency.columns):
            setting = point["setting"]
            quantiles = (
                latency.loc[setting] if setting in latency.index else [math.nan] * len(latency.columns)
            )
            figures += ["-" if math.isnan(v) else f"{v:.0f}" for v in quantiles]
        rows.append([f"{point['setting']}{mark}", *figures, "Pareto" if point["pareto"] else ""])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)),
                row[-1],
            ]
        ).rstrip()
        for row in rows
    ]
    lines += textwrap.wrap(
        "cut off: turns answered before the user had finished; missed: turns never answered; dead air: the "
        "median wait from the end of a turn to the reply (in a VAD-only sweep, to the end the VAD decided); "
        "[low-high]: its 95 % interval (settings whose intervals overlap may not differ); "
        + (
            "v2v: the end of the user's speech to the reply's first audio, over the turns not cut off; "
            if len(latency.columns)
            else ""
        )
        + "Pareto: no other setting has both fewer cut-offs and less dead air"
        + (
            "; push-to-talk (reference): each turn committed at its labelled end, the dead air a perfect "
            "end-of-turn decision would leave."
            if "reference" in points and points["reference"].any()
            else "."
        ),
        width=110,
    )
    return "\n".join(lines)


def failure_summary(failed: Sequence[tuple[str, str]], folder: Path) -> list[str]:
    """Lines that say which cells of the sweep in ``folder`` failed and why (:func:`failed_cells`)."""
    count = f"{len(failed)} cell{'s' if len(failed) != 1 else ''}"
    header = f"{count} failed (each one's error is in {folder / 'cells'}/<cell>/cell.json):"
    return [header, *(f"  {line}" for line in failed_cells(failed))]


def failed_cells(failed: Sequence[tuple[str, str]], *, limit: int = 5) -> list[str]:
    """One line per distinct error of the (cell, error) pairs ``failed``, in their order.

    Cells that failed alike (a wrong endpoint fails them all) share a line: how many, the error, the
    first of them. At most ``limit`` errors are listed, then how many others there are.
    """
    by_error: dict[str, list[str]] = {}
    for cell, error in failed:
        by_error.setdefault(error, []).append(cell)
    lines = [
        f"{cells[0]}: {error}" if len(cells) == 1 else f"{len(cells)} × {error} (the first: {cells[0]})"
        for error, cells in list(by_error.items())[:limit]
    ]
    others = len(by_error) - limit
    if others > 0:
        lines.append(f"… and {others} other error{'s' if others != 1 else ''}")
    return lines


def _voice_to_voice(turns: Any) -> Any:
    """Per setting, the quantiles of :data:`VOICE_TO_VOICE_COLUMNS`; no columns without latencies."""
    import pandas as pd

    if turns is None or "voice_to_voice_ms" not in turns or turns["voice_to_voice_ms"].isna().all():
        return pd.DataFrame()
    answered = turns[turns["trigger"].isin(SPOKEN_TRIGGERS) & ~turns["false_cutoff"].astype(bool)]
    by_setting = answered.groupby("setting", sort=False)["voice_to_voice_ms"]
    return pd.DataFrame({title: by_setting.quantile(q) for title, q in VOICE_TO_VOICE_COLUMNS})


def _figure(point: Any, key: str, scale: float) -> str:
    """One figure of a point, rounded, with its interval when the point has one (``62 [31-86]``)."""
    value = float(point[key])
    if not math.isfinite(value):
        return "-"
    low, high = (float(point.get(f"{key}_{end}", math.nan)) for end in ("lo", "hi"))
    interval = (
        f" [{low * scale:.0f}-{high * scale:.0f}]" if math.isfinite(low) and math.isfinite(high) else ""
    )
    return f"{value * scale:.0f}{interval}"
