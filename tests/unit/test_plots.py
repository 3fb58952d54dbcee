"""The charts' legends name what is drawn, and only that."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vlab import plots

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _axes(**figure: Any) -> Axes:
    """Axes on a figure of their own (matplotlib is imported here: collecting this file stays cheap)."""
    from matplotlib.figure import Figure

    return Figure(**figure).add_subplot()


def _pareto(on_frontier: list[bool]) -> Axes:
    points = pd.DataFrame({
        "setting": [f"sil={n}" for n in range(len(on_frontier))],
        "dead_air_ms": [300.0 + 200 * n for n in range(len(on_frontier))],
        "false_cutoff_rate": [0.4 - 0.1 * n for n in range(len(on_frontier))],
        "pareto": on_frontier,
        "baseline": [False] * len(on_frontier),
    })  # fmt: skip
    return plots.pareto(points, ax=_axes())


def test_the_pareto_chart_marks_the_settings_on_the_frontier_and_the_others_apart():
    ax = _pareto([True, False, True])
    assert ax.get_legend_handles_labels()[1] == ["setting", "setting on the Pareto frontier"]
    (others,) = ax.collections  # the one scatter: the settings off the frontier
    assert np.allclose(others.get_offsets(), [[500.0, 30.0]])
    (frontier,) = ax.lines
    assert frontier.get_marker() == "o"
    assert np.allclose(frontier.get_xydata(), [[300.0, 40.0], [700.0, 20.0]])
    ax.figure.draw_without_rendering()  # the legend sits below the axes, over no point or line
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y1 < axes.y0


def test_with_every_setting_on_the_frontier_the_legend_names_no_other_setting():
    ax = _pareto([True, True, True])
    assert ax.get_legend_handles_labels()[1] == ["setting on the Pareto frontier"]
    assert len(ax.collections) == 0


def _legend(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def _turn(**stages: float) -> dict[str, float]:
    widths = {"server_hangover_ms": 500.0, "uplink_ms": 60.0, "turn_commit_ms": 90.0, "ttfb_audio_ms": 420.0}
    return {"turn": 0, **widths, "playout_ms": math.nan, **stages}


def test_the_waterfall_legend_names_the_stages_drawn_and_only_those():
    headless = plots.waterfall(pd.DataFrame([_turn(), _turn()]), ax=_axes())
    assert _legend(headless) == [
        "server hangover (silence timer)", "uplink + VAD processing", "turn commit (→ response.created)",
        "first audio byte",
    ]  # fmt: skip  # no speaker: no playout, drawn nowhere
    heard = plots.waterfall(pd.DataFrame([_turn(), _turn(playout_ms=80.0)]), ax=_axes())
    assert _legend(heard)[-1] == "playout"
    cut = plots.waterfall(pd.DataFrame([{**_turn(), "false_cutoff": True}]), ax=_axes())
    assert _legend(cut) == []  # nothing drawn: no legend


def test_the_distribution_chart_is_titled_by_its_metric_and_what_it_groups_by():
    turns = pd.DataFrame({"prompt": ["a", "a", "b"], "voice_to_voice_ms": [900.0, 950.0, 1200.0]})
    ax = plots.latency_distributions(turns, metric="voice_to_voice_ms", by="prompt", ax=_axes())
    assert ax.get_title() == "Voice to voice per prompt"
    assert ax.get_xlabel() == "voice to voice (ms)"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]


def test_the_waterfall_leaves_room_for_each_total_inside_the_axes():
    ax = plots.waterfall(
        pd.DataFrame([_turn(voice_to_voice_ms=1070.0), _turn(ttfb_audio_ms=556.0, voice_to_voice_ms=1206.0)]),
        ax=_axes(figsize=(9, 4), layout="constrained"),
    )
    ax.figure.draw_without_rendering()
    frame = ax.get_window_extent()
    totals = [t for t in ax.texts if t.get_text().endswith(" ms")]
    assert [t.get_text() for t in totals] == [" 1070 ms", " 1206 ms"]
    assert all(t.get_window_extent().x1 < frame.x1 for t in totals)
