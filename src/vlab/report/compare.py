"""Two sweep folders compared setting by setting, with bootstrap intervals (``vlab compare``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from vlab.errors import ConfigError, first_few
from vlab.metrics.latency import waited_turns
from vlab.metrics.summary import RESAMPLES
from vlab.report.sweep_folder import (
    grid_models,
    grid_settings,
    latency_measures,
    load_table,
    require_results,
    require_sweep,
    without_answers,
)

__all__ = [
    "COMPARED_POINTS",
    "VERDICTS",
    "chart_path",
    "compare_chart",
    "compare_sweeps",
    "ran_otherwise",
    "verdict_summary",
]


COMPARED_POINTS = (
    "false_cutoff_rate",
    "hold_cut_rate",
    "missed_turn_rate",
    "der",
    "false_starts_per_min",
    "tokens_per_expected_turn",
)
"""The operating-point measures :func:`compare_sweeps` compares (lower is better for each), those neither
sweep has a value for left out (false starts, without noise-only prompts)."""
VERDICTS = ("better", "worse", "same", "n/a")
"""What :func:`compare_sweeps` says of each figure of B against A."""


def verdict_summary(table: pd.DataFrame) -> list[str]:
    """:func:`compare_sweeps`' table in a few lines: its verdicts counted, then what got better or worse.

    For example ``["16 settings: 0 better, 48 worse, 96 same, 0 n/a", "worse: dead_air_ms p50 in 16 of
    16 settings, …"]``: a grid of many settings compares in hundreds of rows.
    """
    from vlab.sweep.grid import counted

    counts = table["verdict"].value_counts()
    settings = table["setting"].nunique()
    lines = [f"{counted(settings, 'setting')}: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)]
    for verdict in ("better", "worse"):
        moved = table[table["verdict"] == verdict].groupby("measure", sort=False)["setting"].nunique()
        if len(moved):
            lines.append(
                f"{verdict}: " + ", ".join(f"{m} in {n} of {settings} settings" for m, n in moved.items())
            )
    return lines


def _verdict(
    measure: str, a: float, b: float, a_interval: tuple[float, float], b_interval: tuple[float, float]
) -> str:
    """The verdict on B against A: ``better`` or ``worse`` (lower is better), or ``same``, or ``n/a``.

    ``same`` when the 95 % intervals overlap or, without them, when nothing changed, and for latencies less
    than a millisecond apart (:func:`vlab.metrics.differ`); ``n/a`` when either side has no value.
    """
    from vlab.metrics import differ

    moved = differ(a, b, a_interval, b_interval, measure=measure)
    if moved is None:
        return "n/a"
    return "same" if not moved else "better" if b < a else "worse"


def _prompts_differ(manifest_a: dict[str, Any], manifest_b: dict[str, Any]) -> str | None:
    """What differs between the prompts two sweeps played, as a warning; None when they are the same.

    Figures of sweeps that played different prompts differ because of the prompts too, not only the setting.
    """
    ids_a, ids_b = ({p["id"] for p in m.get("prompts", [])} for m in (manifest_a, manifest_b))
    if ids_a == ids_b:
        return None
    only = [
        f"only in {name}: {', '.join(sorted(ids))}"
        for name, ids in (("A", ids_a - ids_b), ("B", ids_b - ids_a))
        if ids
    ]
    return (
        f"the two sweeps played different prompts ({'; '.join(only)}), so a figure can differ because of "
        "the prompts and not the setting: compare sweeps of the same prompts (the [prompts] table)"
    )


def ran_otherwise(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> list[str]:
    """What every setting of sweep ``b`` ran with that differs from ``a``'s, one line each.

    ``[session] instructions: A 'Be brief.', B 'Tell a story.'``; also the target (emulator or Azure), the
    model the cells connected with, and the embedded emulator's ``[target]`` latency model, ``hear_audio``
    and dialogue script. A comparison's figures move with these too, not only with the settings: ``vlab
    compare`` and the sweep panel say them before its verdicts. Empty when they ran alike.
    """
    from vlab.sweep.summary import session_value

    ma, mb = require_sweep(Path(a)), require_sweep(Path(b))
    sa, sb = (_with_audio(m.get("session") or {}) for m in (ma, mb))

    def kind(manifest: dict[str, Any]) -> str | None:
        return ", ".join(manifest.get("target_kind", [])) or None

    def said(session: dict[str, Any], key: str) -> str | None:
        return session_value(session[key]) if key in session else None

    rows: list[tuple[str, Any, Any]] = [("target", kind(ma), kind(mb))]
    models_a, models_b = grid_models(ma), grid_models(mb)
    if models_a and models_b:  # the settings' names say the model only when the grid sweeps it
        rows.append(("model", models_a, models_b))
    if any("emulator" in m.get("target_kind", ["emulator"]) for m in (ma, mb)):  # only it reads [target]
        rows += [(f"[target] {key}", ma.get(key), mb.get(key)) for key in ("latency", "hear_audio", "script")]
    rows += [(f"[session] {key}", said(sa, key), said(sb, key)) for key in dict.fromkeys([*sa, *sb])]

    def shown(value: Any) -> str:
        return "none" if value is None else json.dumps(value) if isinstance(value, bool) else str(value)

    return [f"{name}: A {shown(x)}, B {shown(y)}" for name, x, y in rows if x != y]


def _with_audio(session: dict[str, Any]) -> dict[str, Any]:
    """A sweep's ``[session]`` with the audio its cells sent and heard, said or not (default: PCM16, 24 kHz).

    So two sweeps that sent the same audio compare alike however they said it, and one that left it out shows
    the default, not "none".
    """
    from vlab.settings import SessionSettings
    from vlab.sweep.config import AUDIO_SESSION_FIELDS

    settings = SessionSettings(**{key: session[key] for key in AUDIO_SESSION_FIELDS if key in session})
    return {**session, **{key: getattr(settings, key) for key in AUDIO_SESSION_FIELDS}}


def _modes_differ(manifest_a: dict[str, Any], manifest_b: dict[str, Any]) -> str | None:
    """A warning when one sweep was decided by the VAD alone and the other by sessions; else None.

    A VAD-only sweep has no replies: no latency to compare, and its dead air ends where the VAD decided,
    not at a reply.
    """
    vad_only = [name for name, m in (("A", manifest_a), ("B", manifest_b)) if m.get("mode") == "vad"]
    if len(vad_only) != 1:
        return None
    return (
        f"{vad_only[0]} was decided by the VAD alone (mode = 'vad'), without sessions: it has no replies, so "
        "its latencies read n/a and its dead air ends where the VAD decided, not at a reply. Compare its "
        "cut-off, missed and detection rates only, or run both sweeps in the same mode"
    )


def compare_chart(a: str | os.PathLike[str], b: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Draw how each setting of both sweeps moved from A to B on the cut-off/dead-air plane, as a PNG.

    Returns:
        ``path`` (:func:`vlab.plots.pareto_shift`; the sweeps are named by their folders).
    """
    from matplotlib.figure import Figure

    from vlab import plots
    from vlab.sweep.chart_names import short_named

    out = chart_path(path)
    fa, fb = Path(a), Path(b)
    require_sweep(fa)
    require_sweep(fb)
    fig = Figure(figsize=(7, 5), layout="constrained")  # no pyplot: nothing global to close
    names = (f"A: {fa.resolve().name}", f"B: {fb.resolve().name}")
    (a_points, b_points), shared = short_named(load_table(fa, "points"), load_table(fb, "points"))
    plots.pareto_shift(a_points, b_points, labels=names, shared=shared, ax=fig.subplots())
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def chart_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file a chart can be written to: a format matplotlib writes, its folder created.

    Raises:
        ConfigError: A file name without such a format (``.png``, ``.svg``, ``.pdf`` …).
    """
    from matplotlib.figure import Figure

    out = Path(path)
    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in formats:
        raise ConfigError(
            f"cannot draw a chart into {str(out)!r}: give a file name ending in .png (or "
            + ", ".join(f".{f}" for f in sorted(formats) if f != "png")
            + ")"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def compare_sweeps(
    a: str | os.PathLike[str], b: str | os.PathLike[str], *, n_boot: int = RESAMPLES
) -> pd.DataFrame:
    """Per setting present in both sweeps: operating points and latency p50s of A and B, with B − A.

    Raises:
        ConfigError: Either is not a sweep folder or has no results, or no setting is in both (the message
            lists each one's).

    Returns:
        One row per setting and measure: ``a``, ``b``, ``delta``, the 95 % intervals of each side
        (``a_lo`` … ``b_hi``: a bootstrap one of each latency p50, the points' own for a rate that has
        one, :data:`vlab.metrics.POINT_INTERVALS`), and ``verdict`` (``better``, ``worse``, ``same`` —
        lower is better; "same" when the intervals overlap, or without them when nothing changed, and for
        latencies less than :data:`vlab.metrics.SAME_WITHIN_MS` apart;
        ``n/a`` when either side has no value).
    """
    from vlab.errors import warn_user
    from vlab.metrics import bootstrap_ci

    fa, fb = Path(a), Path(b)
    manifest_a, manifest_b = require_sweep(fa), require_sweep(fb)
    order = grid_settings(manifest_a)
    pa, pb = load_table(fa, "points"), load_table(fb, "points")
    require_results(fa, pa)
    require_results(fb, pb)
    same = f"{a} and {b} are the same sweep folder: every delta is 0; give another sweep's folder as B"
    for mismatch in (
        same if fa.resolve() == fb.resolve() else None,
        _prompts_differ(manifest_a, manifest_b),
        _modes_differ(manifest_a, manifest_b),
    ):
        if mismatch:
            warn_user(mismatch)  # only for sweeps that can be compared
    ta, tb = waited_turns(load_table(fa, "turns")), waited_turns(load_table(fb, "turns"))  # the user's waits
    rows = []
    # VAD-only sweeps answer nothing: their dead air is the points' (the end-of-turn wait on the audio clock)
    vad_only = manifest_a.get("mode") == manifest_b.get("mode") == "vad"
    waits = ["dead_air_ms"] if vad_only and all("dead_air_ms" in p for p in (pa, pb)) else []
    latencies = [] if vad_only else latency_measures(ta, tb)
    points = [  # not tokens, for a sweep from before vlab counted them
        m for m in COMPARED_POINTS if m in pa and m in pb and (pa[m].notna().any() or pb[m].notna().any())
    ]
    both = set(pa.get("setting", [])) & set(pb.get("setting", []))
    common = [s for s in order if s in both]  # in A's grid order, as its report shows them
    if not common:
        raise _nothing_in_common(a, b, order, grid_settings(manifest_b))
    left_out = [
        f"only in {side}: {first_few(s for s in settings if s not in both)}"
        for side, settings in (("A", order), ("B", grid_settings(manifest_b)))
        if any(s not in both for s in settings)
    ]
    if left_out:  # the table has only the settings both ran: say which it leaves out, not only what it has
        warn_user(f"only the {len(common)} setting(s) both sweeps ran are compared ({'; '.join(left_out)})")
    for s in common:
        ra, rb = pa[pa["setting"] == s].iloc[0], pb[pb["setting"] == s].iloc[0]
        for m in [*points, *waits]:
            rows.append(_row(s, f"{m} p50" if m == "dead_air_ms" else m, m, _point(ra, m), _point(rb, m)))
        for m in latencies:
            xa = ta[(ta["setting"] == s)][m].astype(float) if m in ta else pd.Series(dtype=float)
            xb = tb[(tb["setting"] == s)][m].astype(float) if m in tb else pd.Series(dtype=float)
            rows.append(
                _row(
                    s,
                    f"{m} p50",
                    m,
                    bootstrap_ci(xa, 0.5, n_boot=n_boot),
                    bootstrap_ci(xb, 0.5, n_boot=n_boot),
                )
            )
    return pd.DataFrame(rows, columns=_COMPARE_COLUMNS)


_COMPARE_COLUMNS = ["setting", "measure", "a", "b", "delta", "a_lo", "a_hi", "b_lo", "b_hi", "verdict"]


def _row(
    setting: str, label: str, measure: str, a: tuple[float, float, float], b: tuple[float, float, float]
) -> dict[str, Any]:
    """A :func:`compare_sweeps` row; ``a`` and ``b``: each side's ``measure`` and its 95 % interval."""
    (va, la, ha), (vb, lb, hb) = a, b
    return {
        "setting": setting,
        "measure": label,
        "a": va,
        "b": vb,
        "delta": vb - va,
        "a_lo": la,
        "a_hi": ha,
        "b_lo": lb,
        "b_hi": hb,
        "verdict": _verdict(measure, va, vb, (la, ha), (lb, hb)),
    }


def _point(points: pd.Series, measure: str) -> tuple[float, float, float]:
    """A points row's value of ``measure`` and its 95 % interval (NaN where it has none)."""
    low, high = (float(points.get(f"{measure}_{end}", math.nan)) for end in ("lo", "hi"))
    return float(points[measure]), low, high


def _nothing_in_common(
    a: str | os.PathLike[str], b: str | os.PathLike[str], names_a: list[str], names_b: list[str]
) -> ConfigError:
    """The error for two sweeps that share no setting: each one's, and how to make them comparable."""
    return ConfigError(
        "no setting appears in both sweeps, so there is nothing to compare: "
        f"{a} has {', '.join(names_a) or 'none'}; {b} has {', '.join(names_b) or 'none'}. "
        + (
            "Their names differ by the model or voice that one grid sweeps and the other does not: to "
            "compare models or voices, list them all in one sweep's [grid] (model = [...], voice = [...])"
            if without_answers(names_a) & without_answers(names_b)
            else "Settings are matched by name: run the second sweep with the first one's grid "
            "(or add `baseline = true` under [run] to both)"
        )
    )
