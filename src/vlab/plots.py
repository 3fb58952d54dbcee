"""Charts of latency and turn detection.

Each function takes DataFrames, draws on ``ax`` (a new figure when None) and returns the Axes. Import
explicitly: ``import vlab.plots`` (``import vlab`` never loads matplotlib).

- :func:`waterfall`: contiguous latency stages of each turn, from the end of speech (from
  :func:`vlab.metrics.turn_latency`);
- :func:`latency_distributions`: one latency metric per setting, or per prompt (box + points);
- :func:`vad_timeline`: a prompt's waveform, its labels and each setting's detections;
- :func:`pareto`: false cut-off rate vs dead air per setting, with the frontier;
- :func:`pareto_shift`: how each setting moved on that plane between two sweeps;
- :func:`noise_tradeoff`: missed turns vs false starts on noise per setting (the threshold's trade-off).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vlab.errors import check_count
from vlab.metrics.detection import ONSET_EARLIEST
from vlab.metrics.events import TURNS_FRAME, require_columns
from vlab.metrics.latency import SEGMENT_STAGES, stages_in_order
from vlab.prompts import require_prompt

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from vlab.prompts import LabelledPrompt

__all__ = [
    "STAGE_COLORS",
    "latency_distributions",
    "noise_tradeoff",
    "pareto",
    "pareto_shift",
    "vad_timeline",
    "waterfall",
]

STAGE_COLORS: dict[str, str] = {
    "server_hangover_ms": "#9ecae1",
    "uplink_ms": "#3182bd",
    "turn_commit_ms": "#fdae6b",
    "ttfb_audio_ms": "#e6550d",
    "playout_ms": "#31a354",
}
"""Colour of each contiguous stage (colour-blind-safe blues/oranges/green)."""
THROUGH_TOOLS_COLOR = "#bdbdbd"
"""Colour of a turn answered through tools, from its call's ``response.created`` to the answer's audio."""

_STAGE_LABELS = {
    "server_hangover_ms": "server hangover (silence timer, any wait for more speech)",
    "uplink_ms": "uplink + VAD processing",
    "turn_commit_ms": "turn commit (→ response.created)",
    "ttfb_audio_ms": "first audio byte",
    "playout_ms": "playout",
}
_THROUGH_TOOLS_LABEL = "tool call → the answer's audio"
_LEGEND_DROP_PT = 40
"""How far below the axes the waterfall's legend starts, in points: past the tick labels and the x label."""


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


_DETECTIONS = "detections, from a sweep's vad table or vlab.metrics.vad_preview"


def _nothing_to_draw(ax: Axes, title: str, why: str, *, title_size: float | None = None) -> Axes:
    """An empty plot that says so: ``title`` as usual, and why nothing is drawn in the middle."""
    ax.set_title(title, fontsize=title_size)
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=9, color="#555555", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def waterfall(
    turns: pd.DataFrame, *, label: str | None = None, max_turns: int = 30, ax: Axes | None = None
) -> Axes:
    """Horizontal stacked bars: each turn's contiguous stages from ``T_eos`` (they sum to voice-to-voice).

    A turn answered through tools (it speaks nothing itself) ends in a grey bar from its call's
    ``response.created`` to the answer's first audible sample, totalling ``voice_to_answer_ms``.

    Args:
        turns: Rows of :func:`vlab.metrics.turn_latency` (false cut-offs are marked, not drawn).
        label: Column naming each bar (default: ``prompt`` and ``turn`` when present, else ``turn``).
        max_turns: Draw at most this many turns (the first ones).
        ax: Where to draw.

    Raises:
        ConfigError: ``turns`` lacks ``turn`` or the ``label`` column, or ``max_turns`` is not a count ≥ 1.
    """
    require_columns(turns, ["turn", *([label] if label else [])], TURNS_FRAME)
    check_count("max_turns", max_turns)
    # a bar per turn, and a fixed inch and a half for the title, the axis and the legend below it
    ax = _axes(ax, (9, 1.5 + 0.32 * (min(len(turns), max_turns) or 3)))
    if turns.empty:
        why = "no turn to draw: nothing was answered (see the run's events for why)"
        return _nothing_to_draw(ax, "Voice-to-voice latency by stage", why)
    rows = turns.head(max_turns).reset_index(drop=True)
    names = []
    drawn: set[str] = set()
    right = 1.0  # where the last bar or total drawn ends (ms)
    for i, (_, row) in enumerate(rows.iterrows()):
        if label:
            names.append(str(row[label]))
        elif "prompt" in row:
            prefix = f"{row['setting']} | " if "setting" in row else ""
            names.append(f"{prefix}{row['prompt']} #{int(row['turn'])}")
        else:
            names.append(f"turn {int(row['turn'])}")
        y = len(rows) - 1 - i
        cutoff = row.get("false_cutoff", False)
        if pd.notna(cutoff) and bool(cutoff):  # NaN (a turn of a frame without the column): not a cut-off
            ax.text(
                0,
                y,
                "  false cut-off (response before end of speech)",
                va="center",
                fontsize=8,
                color="#b30000",
            )
            continue
        end = 0.0
        for stage, start, width in stages_in_order(row):
            ax.barh(y, width, left=start, color=STAGE_COLORS[stage], edgecolor="white", height=0.7)
            if width > 0:
                drawn.add(stage)
            end = start + width
        total = row.get("voice_to_voice_ms", math.nan)
        answer = row.get("voice_to_answer_ms", math.nan)
        if not math.isfinite(total) and math.isfinite(answer) and answer > end:  # answered through tools
            ax.barh(y, answer - end, left=end, color=THROUGH_TOOLS_COLOR, edgecolor="white", height=0.7)
            drawn.add(_THROUGH_TOOLS_LABEL)
            total = answer
        right = max(right, end)
        if math.isfinite(total):
            ax.text(total, y, f" {total:.0f} ms", va="center", fontsize=8)
            right = max(right, total)
    ax.set_yticks(range(len(rows)), list(reversed(names)), fontsize=8)
    ax.set_xlabel("ms from the end of the user's speech (T_eos)")
    what = "answer" if _THROUGH_TOOLS_LABEL in drawn else "voice"  # a turn that speaks: answer = voice
    ax.set_title(f"Voice-to-{what} latency by stage (contiguous, sums to the total)")
    from matplotlib.patches import Patch

    handles = [Patch(color=STAGE_COLORS[s], label=_STAGE_LABELS[s]) for s in SEGMENT_STAGES if s in drawn]
    if _THROUGH_TOOLS_LABEL in drawn:
        handles.append(Patch(color=THROUGH_TOOLS_COLOR, label=_THROUGH_TOOLS_LABEL))
    if handles:  # the stages drawn (no playout without a speaker, say), in their order on the bars
        from matplotlib.transforms import ScaledTranslation

        # below the x label at any height of the axes: a fixed drop in points, not a share of the axes
        drop = ScaledTranslation(0, -_LEGEND_DROP_PT / 72, ax.figure.dpi_scale_trans)
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0),
            bbox_transform=ax.transAxes + drop,
            ncol=3,
            fontsize=7,
            frameon=False,
        )
    ax.set_xlim(0, right * 1.15)  # room for the totals written after the bars
    return ax


def latency_distributions(
    turns: pd.DataFrame,
    *,
    metric: str = "dead_air_ms",
    by: str = "setting",
    order: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Box plot plus the individual turns of one latency metric per group (setting, prompt…), the first on top.

    Args:
        turns: Rows of :func:`vlab.metrics.turn_latency`, with a ``by`` column to group them (without it,
            one group: a single run's turns).
        metric: The latency column.
        by: Grouping column.
        order: The groups in the order to draw them, as a sweep's grid lists its settings; groups it leaves
            out follow. Default: natural order (``thr=0.05`` before ``thr=0.1``, ``sil=90`` before
            ``sil=200``).
        ax: Where to draw.
    """
    require_columns(turns, [metric], TURNS_FRAME)
    groups = _in_order(turns[by].dropna().unique().tolist(), order) if by in turns else ["all"]
    ax = _axes(ax, (9, 0.8 + 0.45 * max(len(groups), 1)))
    data = []
    for g in groups:
        values = (turns[turns[by] == g] if by in turns else turns)[metric].astype(float)
        data.append(values[np.isfinite(values)].to_numpy())
    title = metric.removesuffix("_ms").replace("_", " ").capitalize() + (f" per {by}" if by in turns else "")
    positions = np.arange(len(groups))
    nonempty = [i for i, d in enumerate(data) if len(d)]
    if not nonempty:
        return _nothing_to_draw(ax, title, f"no turn to draw: none has a {metric}")
    import matplotlib

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    ax.boxplot(
        [data[i] for i in nonempty],
        positions=positions[nonempty],
        **horizontal,
        widths=0.6,
        showfliers=False,
        medianprops={"color": "#e6550d", "linewidth": 2},
    )
    rng = np.random.default_rng(0)
    for i, d in enumerate(data):
        ax.scatter(d, i + rng.uniform(-0.15, 0.15, len(d)), s=10, alpha=0.6, color="#3182bd", zorder=3)
        ax.text(1.0, i, f" n={len(d)}", va="center", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_yticks(positions, [str(g) for g in groups], fontsize=8)
    ax.invert_yaxis()  # the first group on top, as in the tables
    ax.set_xlabel(metric.replace("_ms", " (ms)").replace("_", " "))
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return ax


def _natural(value: Any) -> list[Any]:
    """A sort key that orders the numbers in names by value: ``thr=0.05`` before ``thr=0.1``."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(value))  # text, number, text, …: each place holds one kind
    return [float(t) if i % 2 else t for i, t in enumerate(parts)]


def _in_order(values: Sequence[Any], order: Sequence[Any] | None) -> list[Any]:
    """``values`` in ``order``, those it leaves out after them; all in natural order without one."""
    present = set(values)
    given = [v for v in dict.fromkeys(order or ()) if v in present]
    return given + sorted(present - set(given), key=_natural)


def vad_timeline(
    prompt: LabelledPrompt,
    vad: pd.DataFrame,
    *,
    by: str = "setting",
    settings: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Waveform with labelled speech, holds and ends of turn, and each setting's detections beneath.

    A detection whose speech may have begun earlier than its ``onset_ms`` (the server clamped its padding:
    :data:`vlab.metrics.ONSET_EARLIEST`) starts with a pale bar over the span where it may have begun.

    Args:
        prompt: The labelled prompt.
        vad: Detections (``vad.parquet`` or :func:`vlab.metrics.vad_preview`) with ``prompt`` and ``by``
            columns; the first run of each setting is drawn.
        by: Column naming the setting of each detection.
        settings: The settings to give a row, in their order from the top (default: those with a detection
            in this prompt, in natural order); one that detected nothing says so on its row.
        ax: Where to draw.

    Raises:
        ConfigError: ``prompt`` is not a labelled prompt, or ``vad`` lacks ``by`` or a detection column
            (a turns or points table, say).
    """
    from vlab.audio.pcm import pcm16_to_float

    require_prompt(prompt, "vad_timeline")
    require_columns(vad, [by, "onset_ms", "audio_start_ms", "audio_end_ms", "responded"], _DETECTIONS)

    rows = vad[vad["prompt"] == prompt.id] if "prompt" in vad else vad
    if settings is None:
        settings = sorted(rows[by].dropna().unique().tolist(), key=_natural)
    ax = _axes(ax, (10, 2.2 + 0.35 * len(settings)))
    x = pcm16_to_float(prompt.pcm(8000))
    t = np.arange(len(x)) / 8.0
    peak = float(np.max(np.abs(x))) or 1.0
    wave_y = len(settings) + 1.2
    ax.plot(t, wave_y + 0.9 * x / peak, color="#555555", linewidth=0.4)
    for on, off in prompt.speech_segments:
        ax.axvspan(on, off, ymin=0, ymax=1, color="#31a354", alpha=0.12, linewidth=0)
    for h0, h1 in prompt.hold_spans:
        ax.axvspan(h0, h1, color="#fdae6b", alpha=0.35, linewidth=0)
    for eot in prompt.end_of_turn_ms:
        ax.axvline(eot, color="#b30000", linewidth=1.2, linestyle="--")
    for i, s in enumerate(settings):
        y = len(settings) - 1 - i
        det = rows[rows[by] == s]
        if det.empty:
            ax.text(0, y, "  no speech detected", va="center", fontsize=8, color="#555555")
        if "run" in det:
            det = det[det["run"] == det["run"].min()]
        columns = ["onset_ms", "audio_start_ms", "audio_end_ms", "responded"]
        earliest = det[ONSET_EARLIEST] if ONSET_EARLIEST in det else det["onset_ms"]
        for (onset, start, end, responded), first in zip(
            det[columns].astype(float).to_numpy().tolist(), earliest.astype(float).tolist(), strict=True
        ):
            on = onset if math.isfinite(onset) else start
            off = end if math.isfinite(end) else prompt.duration_ms
            if first < on:
                ax.barh(y, on - first, left=first, height=0.6, color="#3182bd", alpha=0.3, linewidth=0)
            ax.barh(y, off - on, left=on, height=0.6, color="#3182bd", alpha=0.85)
            if math.isfinite(end):
                ax.plot([end], [y], marker="v" if responded == 1.0 else "|", color="#e6550d", markersize=7)
    ax.set_yticks(
        [*range(len(settings)), wave_y], [*reversed([str(s) for s in settings]), "audio"], fontsize=8
    )
    ends = rows["audio_end_ms"].astype(float)
    ax.set_xlim(0, max([prompt.duration_ms, *ends[np.isfinite(ends)].tolist()]) + 100)
    ax.set_ylim(-0.6, wave_y + 1.0)  # rows with nothing drawn on them too
    ax.set_xlabel("input audio (ms)")
    ax.set_title(
        f"{prompt.id}: labelled speech (green), holds (orange), end of turn (red dashes)\n"
        "server detections (blue; pale: the speech began somewhere in it); "
        "at speech_stopped: ▼ a response started, | none",
        fontsize=9,
    )
    return ax


_POINTS = "operating points, from vlab.metrics.operating_points or a sweep's points table"


def pareto(
    points: pd.DataFrame, *, x: str = "dead_air_ms", y: str = "false_cutoff_rate", ax: Axes | None = None
) -> Axes:
    """False cut-off rate against dead air, one point per setting, frontier joined, baseline ringed.

    A reference setting (push-to-talk: each turn committed at its labelled end) is a green star beside them.
    Grey bars are the 95 % intervals of both figures, when ``points`` has them (``<column>_lo``/``_hi``,
    :data:`vlab.metrics.POINT_INTERVALS`): settings whose bars overlap may not differ.

    Args:
        points: :func:`vlab.metrics.operating_points` output (``setting``, ``pareto``, ``baseline``, and
            ``reference`` when the sweep has one).
        x: Latency column.
        y: Cut-off column.
        ax: Where to draw.
    """
    require_columns(points, ["setting", x, y], _POINTS)
    ax = _axes(ax, (7, 5))
    ok = points[np.isfinite(points[x].astype(float)) & np.isfinite(points[y].astype(float))]
    title = "Turn detection trade-off: cut-offs vs dead air\n(lower-left is better)"
    if ok.empty:
        return _nothing_to_draw(
            ax, title, f"no setting to draw: none has both a {x} and a {y}", title_size=10
        )
    on_front = ok["pareto"].astype(bool) if "pareto" in ok else pd.Series(False, index=ok.index)
    _trade_off(ax, ok, x, y, on_front)
    ax.set_xlabel(x.replace("_ms", " (ms, median)").replace("_", " "))
    ax.set_ylabel(y.replace("_", " ") + " (%)")
    ax.set_title(title, fontsize=10)
    return ax


def noise_tradeoff(points: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Missed turns against false starts on noise, one point per setting: the VAD threshold's trade-off.

    A low threshold (or a noise suppressor that leaves speech-like residue) starts turns on noise; a high
    one misses quiet speech. The settings no other beats on both are joined, the baseline ringed, and grey
    bars are the 95 % intervals (Poisson for the false starts, Wilson for the missed turns). It needs a sweep
    that played noise-only prompts (category ``noise_only``) beside prompts with speech.

    Args:
        points: :func:`vlab.metrics.operating_points` output (``setting``, ``false_starts_per_min``,
            ``missed_turn_rate``).
        ax: Where to draw.
    """
    from vlab.metrics.tradeoff import pareto_front, setting_points

    x, y = "false_starts_per_min", "missed_turn_rate"
    require_columns(points, ["setting", x, y], _POINTS)
    ax = _axes(ax, (7, 5))
    settings = setting_points(points)  # push-to-talk starts no turn: it is not on this plane
    ok = settings[np.isfinite(settings[x].astype(float)) & np.isfinite(settings[y].astype(float))]
    title = "Threshold trade-off: false starts on noise vs missed turns\n(lower-left is better)"
    if ok.empty:
        why = "no setting to draw: the sweep played no prompt of noise alone (category noise_only)"
        if settings[x].notna().any():
            why = "no setting to draw: the sweep played no prompt with speech beside its noise-only ones"
        return _nothing_to_draw(ax, title, why, title_size=10)
    _trade_off(ax, ok, x, y, pareto_front(ok, x=x, y=y))
    ax.set_xlabel("false starts per minute of noise")
    ax.set_ylabel("missed turns (%)")
    ax.set_title(title, fontsize=10)
    return ax


def _trade_off(ax: Axes, ok: pd.DataFrame, x: str, y: str, on_front: pd.Series) -> None:
    """One point per setting of ``ok`` on the ``x``/``y`` (a rate, in %) plane, the frontier joined.

    The frontier is ``on_front``; the reference is starred and the baseline ringed, with 95 % interval bars,
    the settings' names and the legend below.
    """
    reference = ok["reference"].astype(bool) if "reference" in ok else pd.Series(False, index=ok.index)
    off = ok[~on_front & ~reference]
    _interval_bars(ax, ok, x, y)
    if len(off):  # the legend names only what is drawn: no "setting" entry when every one is on the frontier
        ax.scatter(
            off[x], off[y] * 100, s=40, color="#9ecae1", edgecolor="#3182bd", zorder=3, label="setting"
        )
    front = ok[on_front].sort_values(x)
    if len(front):  # its settings as its markers, so the legend shows the two together
        ax.step(
            front[x], front[y] * 100, where="post", color="#e6550d", linewidth=1.5, marker="o", markersize=7,
            zorder=4, label="setting on the Pareto frontier",
        )  # fmt: skip
    if reference.any():
        ax.scatter(
            ok.loc[reference, x],
            ok.loc[reference, y] * 100,
            s=220,
            marker="*",
            color="#31a354",
            edgecolor="black",
            linewidths=0.8,
            label="reference: push-to-talk (turn ends as labelled)",
            zorder=5,
        )
    if "baseline" in ok and ok["baseline"].any():
        b = ok[ok["baseline"]]
        ax.scatter(
            b[x],
            b[y] * 100,
            s=160,
            facecolors="none",
            edgecolors="black",
            linewidths=1.5,
            label="baseline",
            zorder=5,
        )
    _name_points(ax, ok["setting"], ok[x], ok[y] * 100)
    ax.grid(alpha=0.3)
    ax.legend(  # below the axes: inside, it hid points or the frontier's line in some sweeps
        fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False
    )
    ax.margins(0.12)


def _interval_bars(ax: Axes, points: pd.DataFrame, x: str, y: str) -> None:
    """Grey error bars of ``x`` and ``y`` (``y`` a rate, drawn in %) from their ``_lo``/``_hi`` columns."""
    if not all(f"{c}_{end}" in points for c in (x, y) for end in ("lo", "hi")):
        return
    values = {c: points[c].astype(float).to_numpy() for c in (x, y)}
    spans = {
        c: np.clip(
            np.nan_to_num(
                [values[c] - points[f"{c}_lo"].astype(float), points[f"{c}_hi"].astype(float) - values[c]]
            ),
            0.0,
            None,
        )
        for c in (x, y)
    }  # a missing end draws no bar on that side, nor an end on the wrong side of its value
    # above the frontier's line, which hid the bars that run along it, and capped, so their ends show
    ax.errorbar(
        values[x], values[y] * 100, xerr=spans[x], yerr=spans[y] * 100, fmt="none", ecolor="#969696",
        elinewidth=1, capsize=3, zorder=4.5, label="95 % interval",
    )  # fmt: skip


def pareto_shift(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    labels: tuple[str, str] = ("A", "B"),
    x: str = "dead_air_ms",
    y: str = "false_cutoff_rate",
    shared: str = "",
    ax: Axes | None = None,
) -> Axes:
    """How each setting of two sweeps moved on the trade-off plane: A hollow, B filled, an arrow from A to B.

    A setting whose move stays inside the 95 % intervals of both figures (``<column>_lo``/``_hi``, when
    the points have them) may not have moved at all: its arrow is dashed and light (as
    :func:`vlab.metrics.differ` and ``vlab compare``'s "same" say).

    Args:
        a: :func:`vlab.metrics.operating_points` of the first sweep (``setting``, ``x``, ``y``).
        b: The same of the second; only the settings of both, with both figures in both, are drawn.
        labels: What to call the two sweeps in the legend.
        x: Latency column.
        y: Cut-off column.
        shared: What every setting has, when the names leave it out (:func:`vlab.sweep.chart_names.short_named`);
            the title says it.
        ax: Where to draw.
    """
    for points in (a, b):
        require_columns(points, ["setting", x, y], _POINTS)
    from matplotlib.lines import Line2D

    from vlab.metrics import differ

    ax = _axes(ax, (7, 5))
    bounds = [f"{c}_{end}" for c in (x, y) for end in ("lo", "hi")]
    columns = ["setting", x, y, *bounds]
    merged = a.reindex(columns=columns).merge(b.reindex(columns=columns), on="setting", suffixes=("_a", "_b"))
    both = merged.dropna(subset=[f"{x}_a", f"{y}_a", f"{x}_b", f"{y}_b"])
    xa, ya, xb, yb = both[f"{x}_a"], both[f"{y}_a"] * 100, both[f"{x}_b"], both[f"{y}_b"] * 100
    styles = {
        True: {"arrowstyle": "->", "color": "#636363", "lw": 1.0},
        False: {"arrowstyle": "->", "color": "#bdbdbd", "lw": 1.0, "linestyle": "--"},
    }
    moves = set()
    for _, row in both.iterrows():
        moved = any(
            differ(
                row[f"{c}_a"],
                row[f"{c}_b"],
                (row[f"{c}_lo_a"], row[f"{c}_hi_a"]),
                (row[f"{c}_lo_b"], row[f"{c}_hi_b"]),
                measure=c,
            )
            for c in (x, y)
        )
        moves.add(moved)
        ax.annotate(
            "", xy=(row[f"{x}_b"], row[f"{y}_b"] * 100), xytext=(row[f"{x}_a"], row[f"{y}_a"] * 100),
            arrowprops=styles[moved],
        )  # fmt: skip
    ax.scatter(
        xa, ya, s=50, facecolors="none", edgecolors="#3182bd", linewidths=1.5, zorder=3, label=labels[0]
    )
    ax.scatter(xb, yb, s=50, color="#e6550d", zorder=4, label=labels[1])
    if False in moves:  # say what a dashed arrow means
        ax.add_line(
            Line2D([], [], color="#bdbdbd", lw=1.0, linestyle="--", label="inside the 95 % intervals")
        )
    _name_points(ax, both["setting"], xb, yb)
    ax.set_xlabel(x.replace("_ms", " (ms, median)").replace("_", " "))
    ax.set_ylabel(y.replace("_", " ") + " (%)")
    every = f"; every setting {shared}" if shared else ""
    ax.set_title(
        f"Each setting from {labels[0]} to {labels[1]}: cut-offs vs dead air\n(lower-left is better{every})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    ax.margins(0.12)
    return ax


NEAR_X_SHARE = 0.02
"""Points of a latency/cut-off chart closer than this share of the latency range (at least 1 ms) …"""
NEAR_Y_RATE = 0.01
"""… and than this cut-off rate (1 point) sit on top of each other: they share one label."""


def near_groups(xs: Sequence[float], rates: Sequence[float]) -> list[list[int]]:
    """The points (latency, cut-off rate) that sit on top of each other in a chart, as groups of indices.

    Each group is a point and those after it within :data:`NEAR_X_SHARE` of the latency range and
    :data:`NEAR_Y_RATE` of its rate, in order; every index is in one group.
    """
    x = np.asarray(xs, dtype=float)
    finite = x[np.isfinite(x)]
    within = max(1.0, NEAR_X_SHARE * float(finite.max() - finite.min())) if len(finite) else 1.0
    groups: list[list[int]] = []
    grouped: set[int] = set()
    for i in range(len(x)):
        if i not in grouped:
            near = [
                j
                for j in range(i, len(x))
                if j not in grouped and abs(x[j] - x[i]) <= within and abs(rates[j] - rates[i]) <= NEAR_Y_RATE
            ]
            grouped.update(near)
            groups.append(near)
    return groups


def _name_points(ax: Axes, names: pd.Series, xs: pd.Series, ys: pd.Series) -> None:
    """Write each point's setting beside it; points on top of each other (:func:`near_groups`) share a label.

    ``ys`` are rates in %. More than four points are numbered instead, and named in a key beside the plot,
    a line per setting. A name may hold several settings, a line each; a point named "" has no label.
    """
    settings, x, y = list(names), [float(v) for v in xs], [float(v) for v in ys]
    at_point: dict[tuple[float, float], list[str]] = {}
    for group in near_groups(x, [v / 100 for v in y]):
        named = [line for j in group for line in str(settings[j]).splitlines()]
        at_point[(x[group[0]], y[group[0]])] = named
    numbered = len(settings) > 4
    key: list[str] = []
    labelled = [(point, named) for point, named in sorted(at_point.items()) if named]
    for n, ((px, py), named) in enumerate(labelled, start=1):
        label = str(n) if numbered else "\n".join(named)
        key += [f"{n}  {named[0]}", *(f"   {name}" for name in named[1:])]
        ax.annotate(label, (px, py), fontsize=7, xytext=(4, 4), textcoords="offset points", va="bottom")
    if numbered:
        ax.text(1.03, 1.0, "\n".join(key), transform=ax.transAxes, fontsize=7, va="top", family="monospace")


def summary_table(frame: pd.DataFrame, columns: Sequence[str] | None = None, *, classes: str = "t") -> str:
    """A DataFrame as a small HTML table (numbers rounded) for reports and panels.

    A long column name (``tokens_per_expected_turn``) may break after each underscore, so a wide table
    narrows its headers first; a table still wider than the page scrolls in its own box.
    """
    data = frame[list(columns)] if columns else frame
    table = data.to_html(index=False, float_format=format_number, na_rep="–", border=0, classes=classes)
    table = re.sub(r"<th>([^<]*)</th>", lambda m: "<th>" + m[1].replace("_", "_<wbr>") + "</th>", table)
    return f"<div style='overflow-x:auto'>{table}</div>"


def format_number(value: float) -> str:
    """Readable numbers in tables: whole ms as integers, rates and ratios with three digits."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
