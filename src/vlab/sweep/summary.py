"""A sweep's results as text: the table ``vlab sweep`` and ``vlab demo`` print when a sweep is done."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from vlab.metrics import SAME_WITHIN_MS, made_tool_calls, spoken_turns
from vlab.sweep.grid import counted

SESSION_NOTE_CHARS = 60
"""The most characters of one ``[session]`` value :func:`session_note` shows."""


def session_note(session: Mapping[str, Any]) -> str:
    """What a sweep's ``[session]`` has every setting send, in one line; long instructions are shortened.

    ``instructions 'Answer in one or two short sentences.', voice 'alloy', temperature 0.7``: the report's
    first line and ``vlab sweep --dry-run`` say it so.
    """
    return ", ".join(f"{key} {session_value(value)}" for key, value in session.items())


def session_value(value: Any) -> str:
    """One ``[session]`` value as :func:`session_note` says it.

    A string quoted, cut at :data:`SESSION_NOTE_CHARS`; anything else as JSON.
    """
    if isinstance(value, str):
        return repr(value if len(value) <= SESSION_NOTE_CHARS else value[:SESSION_NOTE_CHARS] + "…")
    return json.dumps(value)


class ResultColumn(NamedTuple):
    """One figure of the operating points in the table: its title, its ``points`` column, how it shows."""

    title: str
    key: str
    scale: float = 1.0
    interval: bool = True  # its 95 % interval in brackets
    digits: int = 0
    only_with_values: bool = False  # left out when no setting has one: false starts need noise-only prompts


RESULT_COLUMNS = (
    ResultColumn("cut off %", "false_cutoff_rate", scale=100.0),
    ResultColumn("missed %", "missed_turn_rate", scale=100.0),
    ResultColumn("dead air ms", "dead_air_ms"),
    ResultColumn("false starts/min", "false_starts_per_min", digits=1, only_with_values=True),
    ResultColumn("tokens/turn", "tokens_per_expected_turn", interval=False),
)
"""The operating point's figures per setting, in the table's order (the tokens' interval is left out so the
table stays narrow: it is in ``points`` and ``vlab compare``)."""
TURN_LATENCY_QUANTILES = (("p50", 0.5), ("p90", 0.9))
"""The quantiles of the voice-to-voice (or voice-to-answer) latency per setting: header, quantile."""


def results_table(points: Any, turns: Any = None) -> str:
    """A sweep's operating points as text: one line per setting in the table's order, the Pareto ones marked.

    A rate's or the dead air's 95 % interval in the points (``<column>_lo``/``_hi``) shows in brackets. A
    measure the points lack (tokens, in a VAD-only sweep) is left out, and so are the false starts of a sweep
    without noise-only prompts; a value missing is ``-``. With the
    sweep's ``turns`` (``turns.parquet``), the voice-to-voice latency of each setting's spoken turns that
    were not cut off follows (its median and 90th percentile); in a sweep whose turns called tools, the
    voice-to-answer latency, the user's wait through the calls.
    """
    columns = [
        c
        for c in RESULT_COLUMNS
        if c.key in points and (not c.only_with_values or points[c.key].astype(float).notna().any())
    ]
    latency, short = _turn_latency(turns)
    rows = [["setting", *(c.title for c in columns), *latency.columns, ""]]
    for _, point in points.iterrows():
        mark = " (baseline)" if point["baseline"] else " (reference)" if point.get("reference") else ""
        figures = [_figure(point, column) for column in columns]
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
        + (
            "false starts: speech the VAD found in the noise-only prompts, per minute of them; "
            if any(c.key == "false_starts_per_min" for c in columns)
            else ""
        )
        + "[low-high]: its 95 % interval (settings whose intervals overlap may not differ); "
        + (f"{short}: {_MEANING[short]}, over the turns not cut off; " if len(latency.columns) else "")
        + "Pareto: no other setting is better on cut-offs or dead air and no worse on the other (dead air "
        + f"within {SAME_WITHIN_MS:g} ms is the same)"
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
    header = (
        f"{counted(len(failed), 'cell')} failed (each one's error is in {folder / 'cells'}/<cell>/cell.json):"
    )
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


_MEANING = {
    "v2v": "the end of the user's speech to the reply's first audio",
    "v2a": "the end of the user's speech to the first audio of the reply that speaks the answer, through "
    "the tool calls",
}


def _turn_latency(turns: Any) -> tuple[Any, str]:
    """Per setting, the :data:`TURN_LATENCY_QUANTILES` of the spoken turns' latency, and its short name.

    The latency is voice-to-voice (``v2v``), or voice-to-answer (``v2a``) when the turns called tools: their
    voice-to-voice is that of a reply that speaks no answer. No columns without latencies.
    """
    import pandas as pd

    spoken = spoken_turns(turns) if turns is not None else pd.DataFrame()
    metric, short = ("voice_to_answer_ms", "v2a") if made_tool_calls(spoken) else ("voice_to_voice_ms", "v2v")
    if metric not in spoken or spoken[metric].isna().all():
        return pd.DataFrame(), short
    answered = spoken[~spoken["false_cutoff"].astype(bool)]
    by_setting = answered.groupby("setting", sort=False)[metric]
    return pd.DataFrame({f"{short} {q} ms": by_setting.quantile(v) for q, v in TURN_LATENCY_QUANTILES}), short


def _figure(point: Any, column: ResultColumn) -> str:
    """One figure of a point, rounded, with its interval when asked and the point has one (``62 [31-86]``)."""
    value = float(point[column.key])
    if not math.isfinite(value):
        return "-"
    key, scale, digits = column.key, column.scale, column.digits
    low, high = (
        float(point.get(f"{key}_{end}", math.nan)) if column.interval else math.nan for end in ("lo", "hi")
    )
    bounds = f" [{low * scale:.{digits}f}-{high * scale:.{digits}f}]" if math.isfinite(low + high) else ""
    return f"{value * scale:.{digits}f}{bounds}"
