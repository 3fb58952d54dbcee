"""How charts name a sweep's settings: by what sets each apart, the parts every one shares left out.

``thr=0.5 pad=300 sil=300 voice=alloy`` reads ``sil=300 voice=alloy`` in a chart of settings that all have
``thr=0.5 pad=300``. The tables keep the whole names; the sweep panel, the report and the notebooks'
charts use these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["pareto_labels", "relabelled", "shared_parts", "short_named", "short_names"]


def short_names(names: list[str]) -> dict[str, str]:
    """Setting names without the parts every one shares (``thr=0.5 pad=300 sil=300`` → ``sil=300``).

    A ``key=value`` part that only some settings have (``eou=v1``, ``nr=far_field``) reads ``key=off`` in
    the others, so a setting without it is not left with its whole name. A name with no ``key=value``
    part (the ``push-to-talk`` reference) stays whole and takes no part in the others'.
    """
    whole = {n: n for n in names if "=" not in n}
    names = [n for n in names if n not in whole]
    split = [n.split() for n in names]
    if len(split) < 2:
        return {n: n for n in names} | whole
    keys = {part.split("=", 1)[0]: None for parts in split for part in parts if "=" in part}
    for parts in split:
        given = {part.split("=", 1)[0] for part in parts if "=" in part}
        parts.extend(f"{key}=off" for key in keys if key not in given)
    common = set(split[0]).intersection(*split[1:])
    out = {
        n: " ".join(t for t in parts if t not in common) or n for n, parts in zip(names, split, strict=True)
    }
    return (out if len(set(out.values())) == len(out) else {n: n for n in names}) | whole


def pareto_labels(
    points: pd.DataFrame, *, x: str = "dead_air_ms", y: str = "false_cutoff_rate"
) -> pd.DataFrame:
    """``points`` with short setting names, and points that sit on top of each other labelled once.

    Settings that sit on top of each other (:func:`vlab.plots.near_groups`) share one label, a line per
    setting; the others get an empty label, so :func:`vlab.plots.pareto` draws every point but writes each
    label once.
    """
    from vlab.plots import near_groups

    if points.empty:
        return points
    names = short_names([str(s) for s in points["setting"]])
    out = points.assign(setting=points["setting"].astype(str).map(names)).reset_index(drop=True)
    labels = list(out["setting"])
    for group in near_groups(out[x].astype(float).tolist(), out[y].astype(float).tolist()):
        labels[group[0]] = "\n".join(str(out.at[j, "setting"]) for j in group)
        for j in group[1:]:
            labels[j] = ""
    return out.assign(setting=labels)


def short_named(*frames: pd.DataFrame) -> tuple[list[pd.DataFrame], str]:
    """``frames`` with each ``setting`` named by what sets it apart among all of theirs, and what all share.

    What all share is :func:`shared_parts`'s. For a chart of two sweeps' points
    (:func:`vlab.plots.pareto_shift`): one setting reads alike in both.
    """
    settings = list(dict.fromkeys(str(s) for frame in frames if "setting" in frame for s in frame["setting"]))
    names = short_names(settings)
    return [relabelled(frame, names) for frame in frames], shared_parts(settings)


def relabelled(frame: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with each ``setting`` as ``names`` says it (:func:`short_names`); others as they are."""
    if frame.empty or "setting" not in frame:
        return frame
    return frame.assign(setting=frame["setting"].astype(str).map(lambda s: names.get(s, s)))


def shared_parts(names: list[str]) -> str:
    """The parts of the setting names every one has (what :func:`short_names` leaves out), or ``""``."""
    split = [n.split() for n in names if "=" in n]
    if len(split) < 2:
        return ""
    common = set(split[0]).intersection(*split[1:])
    return " ".join(part for part in split[0] if part in common)
