"""The charts' legends name what is drawn, and only that."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

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


def test_the_interval_bars_are_drawn_over_the_frontier_s_line_with_their_ends_capped():
    # a dead-air interval runs along the frontier's horizontal step: under the line it was hidden
    points = pd.DataFrame({
        "setting": ["a", "b"], "dead_air_ms": [800.0, 1000.0], "false_cutoff_rate": [0.4, 0.2],
        "dead_air_ms_lo": [780.0, 990.0], "dead_air_ms_hi": [900.0, 1050.0],
        "false_cutoff_rate_lo": [0.2, 0.1], "false_cutoff_rate_hi": [0.6, 0.4],
        "pareto": [True, True], "baseline": [False, False],
    })  # fmt: skip
    ax = plots.pareto(points, ax=_axes())
    (frontier,) = [line for line in ax.lines if line.get_label() == "setting on the Pareto frontier"]
    from matplotlib.collections import LineCollection

    bars = [c for c in ax.collections if isinstance(c, LineCollection)]  # the x and the y bars
    assert len(bars) == 2 and all(bar.get_zorder() > frontier.get_zorder() for bar in bars)
    caps = [line for line in ax.lines if line.get_marker() in ("|", "_")]
    assert len(caps) == 4 and all(cap.get_zorder() > frontier.get_zorder() for cap in caps)  # each end


def test_the_pareto_chart_draws_the_push_to_talk_reference_as_a_star_apart_from_the_settings():
    points = pd.DataFrame({
        "setting": ["a", "b", "push-to-talk"],
        "dead_air_ms": [300.0, 700.0, 250.0],
        "false_cutoff_rate": [0.4, 0.2, 0.0],
        "pareto": [True, True, False],
        "baseline": [False] * 3,
        "reference": [False, False, True],
    })  # fmt: skip
    ax = plots.pareto(points, ax=_axes())
    handles, labels = ax.get_legend_handles_labels()
    assert labels == ["setting on the Pareto frontier", "reference: push-to-talk (turn ends as labelled)"]
    (star,) = ax.collections  # no "setting" scatter: the reference is not a setting off the frontier
    assert np.allclose(star.get_offsets(), [[250.0, 0.0]])
    assert "push-to-talk" in {t.get_text() for t in ax.texts}


def test_the_pareto_chart_draws_the_95_percent_intervals_when_the_points_have_them():
    points = pd.DataFrame({
        "setting": ["a", "b"], "dead_air_ms": [300.0, 700.0], "false_cutoff_rate": [0.4, 0.2],
        "dead_air_ms_lo": [250.0, 650.0], "dead_air_ms_hi": [380.0, 720.0],
        "false_cutoff_rate_lo": [0.2, math.nan], "false_cutoff_rate_hi": [0.6, math.nan],
        "pareto": [True, True], "baseline": [False, False],
    })  # fmt: skip
    ax = plots.pareto(points, ax=_axes())
    assert "95 % interval" in ax.get_legend_handles_labels()[1]
    (bars,) = [c for c in ax.containers if c.get_label() == "95 % interval"]
    xbars, ybars = bars.lines[2]
    assert np.allclose([s[:, 0] for s in xbars.get_segments()], [[250.0, 380.0], [650.0, 720.0]])
    assert np.allclose([s[:, 1] for s in ybars.get_segments()], [[20.0, 60.0], [20.0, 20.0]])  # b: none
    assert "95 % interval" not in _pareto([True, False, True]).get_legend_handles_labels()[1]


def test_the_shift_chart_draws_an_arrow_from_a_to_b_for_each_setting_both_sweeps_measured():
    a = pd.DataFrame({
        "setting": ["s1", "s2", "only_a", "unmeasured"],
        "dead_air_ms": [700.0, 1000.0, 500.0, math.nan],
        "false_cutoff_rate": [0.4, 0.1, 0.0, 0.0],
    })  # fmt: skip
    b = pd.DataFrame({
        "setting": ["unmeasured", "s2", "s1", "only_b"],
        "dead_air_ms": [800.0, 1100.0, 900.0, 300.0],
        "false_cutoff_rate": [0.0, 0.0, 0.1, 0.0],
    })  # fmt: skip
    ax = plots.pareto_shift(a, b, labels=("before", "after"), ax=_axes())
    assert ax.get_legend_handles_labels()[1] == ["before", "after"]
    before, after = ax.collections
    assert np.allclose(before.get_offsets(), [[700.0, 40.0], [1000.0, 10.0]])
    assert np.allclose(after.get_offsets(), [[900.0, 10.0], [1100.0, 0.0]])
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert [(t.xyann, t.xy) for t in arrows] == [
        ((700.0, 40.0), (900.0, 10.0)),
        ((1000.0, 10.0), (1100.0, 0.0)),
    ]
    assert sorted(t.get_text() for t in ax.texts if t.get_text()) == ["s1", "s2"]  # each named at B


def test_settings_that_land_on_top_of_each_other_at_b_share_one_label():
    # two sweeps' settings a few ms apart on a 500 ms axis: their numbers were written over each other
    a = pd.DataFrame({
        "setting": [f"s{i}" for i in range(6)],
        "dead_air_ms": [215.0, 215.0, 216.0, 415.0, 416.0, 715.0],
        "false_cutoff_rate": [0.44, 0.44, 0.44, 0.28, 0.28, 0.22],
    })  # fmt: skip
    b = a.assign(dead_air_ms=[214.0, 209.0, 211.0, 414.0, 420.0, 714.0])
    ax = plots.pareto_shift(a, b, ax=_axes())
    numbers = sorted(t.get_text() for t in ax.texts if t.get_text() and "\n" not in t.get_text())
    assert numbers == ["1", "2", "3"]  # three places on the chart, one label each
    (key,) = [t.get_text() for t in ax.texts if "\n" in t.get_text()]
    assert key.splitlines() == ["1  s0", "   s1", "   s2", "2  s3", "   s4", "3  s5"]


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
        "server hangover (silence timer, any wait for more speech)", "uplink + VAD processing",
        "turn commit (→ response.created)",
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


def _bars(ax: Axes) -> list[tuple[float, float, float]]:
    """Each horizontal bar as ``(y, left, width)``, in the order drawn."""
    return [(p.get_y() + p.get_height() / 2, p.get_x(), p.get_width()) for p in ax.patches]


def test_each_waterfall_bar_spans_its_stage_from_the_end_of_speech_first_turn_on_top():
    first = _turn(voice_to_voice_ms=1070.0)
    second = _turn(server_hangover_ms=200.0, uplink_ms=math.nan, playout_ms=40.0, voice_to_voice_ms=750.0)
    ax = plots.waterfall(pd.DataFrame([first, second]), ax=_axes())
    assert _bars(ax) == [
        (1.0, 0.0, 500.0), (1.0, 500.0, 60.0), (1.0, 560.0, 90.0), (1.0, 650.0, 420.0),
        (0.0, 0.0, 200.0), (0.0, 200.0, 90.0), (0.0, 290.0, 420.0), (0.0, 710.0, 40.0),
    ]  # fmt: skip  # a missing stage is left out and the next keeps its place after the one before
    assert [t.get_text() for t in ax.get_yticklabels()] == ["turn 0", "turn 0"]
    assert ax.get_xlim() == (0.0, 1070.0 * 1.15)


def test_the_waterfall_draws_the_first_max_turns_named_by_prompt_or_by_the_label_column():
    turns = pd.DataFrame([
        {**_turn(), "turn": n, "setting": "sil=500", "prompt": f"p{n}", "voice": f"v{n}"} for n in range(5)
    ])  # fmt: skip
    ax = plots.waterfall(turns, max_turns=3, ax=_axes())
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "sil=500 | p2 #2", "sil=500 | p1 #1", "sil=500 | p0 #0"
    ]  # fmt: skip  # the first turn on top
    assert len(ax.patches) == 3 * 4
    named = plots.waterfall(turns, label="voice", max_turns=2, ax=_axes())
    assert [t.get_text() for t in named.get_yticklabels()] == ["v1", "v0"]


def test_a_false_cutoff_is_written_on_its_row_and_not_drawn():
    ax = plots.waterfall(pd.DataFrame([_turn(), {**_turn(), "false_cutoff": True}]), ax=_axes())
    # the second row (y=0) has no bar; the first, whose false_cutoff is NaN, is no cut-off
    assert {y for y, _, _ in _bars(ax)} == {1.0}
    (note,) = [t for t in ax.texts if "false cut-off" in t.get_text()]
    assert note.get_position()[1] == 0


def test_the_distribution_chart_counts_only_finite_values_and_orders_groups_naturally():
    turns = pd.DataFrame({
        "setting": ["sil=1000", "sil=200", "sil=200", "sil=200", "sil=90"],
        "dead_air_ms": [700.0, 300.0, math.nan, 320.0, math.nan],
    })  # fmt: skip
    ax = plots.latency_distributions(turns, ax=_axes())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sil=90", "sil=200", "sil=1000"]
    assert [t.get_text() for t in ax.texts] == [" n=0", " n=2", " n=1"]
    points = [c.get_offsets() for c in ax.collections]
    assert [sorted(p[:, 0].tolist()) for p in points] == [[], [300.0, 320.0], [700.0]]
    assert all(abs(y - i) <= 0.15 for i, p in enumerate(points) for y in p[:, 1])  # jittered on their row
    medians = [line.get_xdata()[0] for line in ax.lines if line.get_color() == "#e6550d"]
    assert medians == [310.0, 700.0]  # a box for each group with values, none for the empty one


def test_the_distribution_chart_draws_the_first_group_on_top_in_the_order_given_or_by_value():
    settings = ["thr=0.5", "thr=0.05 nr=far_field", "thr=0.1", "thr=0.05"]
    turns = pd.DataFrame({"setting": settings, "dead_air_ms": [500.0, 600.0, 700.0, 800.0]})
    natural = plots.latency_distributions(turns, ax=_axes())  # 0.05 before 0.1: decimals by value
    assert [t.get_text() for t in natural.get_yticklabels()] == [
        "thr=0.05", "thr=0.05 nr=far_field", "thr=0.1", "thr=0.5"
    ]  # fmt: skip
    assert natural.yaxis_inverted()  # the first of them on top, as a table lists them
    grid = plots.latency_distributions(turns, order=["thr=0.5", "thr=0.1", "gone"], ax=_axes())
    assert [t.get_text() for t in grid.get_yticklabels()] == [
        "thr=0.5", "thr=0.1", "thr=0.05", "thr=0.05 nr=far_field"
    ]  # fmt: skip  # those the order leaves out follow it


def test_without_the_group_column_every_turn_is_one_group():
    ax = plots.latency_distributions(pd.DataFrame({"dead_air_ms": [1.0, 2.0]}), ax=_axes())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["all"]
    assert [t.get_text() for t in ax.texts] == [" n=2"]


def test_without_the_group_column_the_title_names_no_group():
    ax = plots.latency_distributions(pd.DataFrame({"dead_air_ms": [1.0, 2.0]}), ax=_axes())
    assert ax.get_title() == "Dead air"  # was "Dead air per setting", of a run without settings
    by_prompt = pd.DataFrame({"dead_air_ms": [1.0], "prompt": ["p"]})
    assert (
        plots.latency_distributions(by_prompt, by="prompt", ax=_axes()).get_title() == "Dead air per prompt"
    )


def test_a_waterfall_label_that_is_not_a_column_or_no_turn_to_draw_is_refused():
    from vlab.errors import ConfigError

    turns = pd.DataFrame([_turn()])
    with pytest.raises(ConfigError, match=r"this frame lacks prompt"):  # each bar was named "turn 0" instead
        plots.waterfall(turns, label="prompt", ax=_axes())
    with pytest.raises(ConfigError, match=r"^max_turns must be an integer ≥ 1, got 0$"):
        plots.waterfall(turns, max_turns=0, ax=_axes())


def test_a_vad_timeline_of_a_frame_that_is_not_detections_says_what_it_lacks():
    from vlab.errors import ConfigError
    from vlab.prompts import load_prompt_set

    prompt = next(p for p in load_prompt_set() if p.id == "pause_600")
    turns = pd.DataFrame([{**_turn(), "setting": "s", "prompt": prompt.id, "audio_end_ms": 900.0}])
    with pytest.raises(
        ConfigError, match=r"^expected detections, .* lacks onset_ms, audio_start_ms, responded"
    ):
        plots.vad_timeline(prompt, turns, ax=_axes())  # was KeyError: "['onset_ms', …] not in index"
    with pytest.raises(ConfigError) as info:  # was AttributeError: 'str' object has no attribute 'id'
        plots.vad_timeline("pause_600", turns, ax=_axes())  # type: ignore[arg-type]
    assert str(info.value) == (
        "vad_timeline takes a labelled prompt, e.g. prompts['pause_600'] with prompts = "
        "{p.id: p for p in vlab.prompts.load_prompt_set()}, got 'pause_600'"
    )


def test_the_vad_timeline_draws_each_settings_first_run_on_the_audio_timeline():
    from vlab.prompts import load_prompt_set

    prompt = next(p for p in load_prompt_set() if p.id == "pause_600")
    detection = {"prompt": prompt.id, "onset_ms": math.nan, "responded": True}
    vad = pd.DataFrame([
        {**detection, "setting": "sil=1000", "run": 0, "audio_start_ms": 100.0, "audio_end_ms": 2000.0},
        {**detection, "setting": "sil=200", "run": 0, "onset_ms": 150.0, "audio_start_ms": 120.0,
         "audio_end_ms": 900.0, "responded": False},
        {**detection, "setting": "sil=200", "run": 0, "audio_start_ms": 1500.0, "audio_end_ms": math.nan},
        {**detection, "setting": "sil=200", "run": 1, "audio_start_ms": 0.0, "audio_end_ms": 50.0},
        {**detection, "prompt": "other", "setting": "sil=5", "run": 0, "audio_start_ms": 0.0,
         "audio_end_ms": 10.0},
    ])  # fmt: skip
    ax = plots.vad_timeline(prompt, vad, ax=_axes())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sil=1000", "sil=200", "audio"]
    bars = [bar for bar in _bars(ax) if bar[0] in (0.0, 1.0)]
    assert bars == [
        (1.0, 150.0, 750.0),  # sil=200 on top: from the onset when it has one, else from audio_start
        (1.0, 1500.0, prompt.duration_ms - 1500.0),  # no end: to the end of the audio
        (0.0, 100.0, 1900.0),
    ]  # run 1 and the other prompt's detections are not drawn
    ends = [line for line in ax.lines if line.get_marker() != "None"]
    assert {(line.get_xdata()[0], line.get_ydata()[0]): line.get_marker() for line in ends} == {
        (900.0, 1.0): "|",  # speech_stopped without a response
        (2000.0, 0.0): "v",  # … and with one
    }
    assert ax.get_xlim() == (0.0, max(prompt.duration_ms, 2000.0) + 100)
    assert not ax.texts  # every setting detected something

    ax = plots.vad_timeline(prompt, vad, settings=["sil=200", "sil=1000", "sil=90"], ax=_axes())
    # in the order given (a sweep's grid), from the top: the ticks list them from the bottom
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sil=90", "sil=1000", "sil=200", "audio"]
    assert [(t.get_text(), t.get_position()[1]) for t in ax.texts] == [("  no speech detected", 0)]
    assert ax.get_ylim()[0] < 0 - 0.3  # the bottom row is inside the axes, not on its edge

    # where the server clamped the padding, the speech began somewhere from onset_earliest_ms on: drawn pale
    clamped = vad.assign(onset_earliest_ms=vad["onset_ms"]).astype({"onset_earliest_ms": float})
    clamped.loc[1, "onset_earliest_ms"] = 120.0
    ax = plots.vad_timeline(prompt, clamped, ax=_axes())
    drawn = [
        (bar.get_alpha(), bar.get_y() + bar.get_height() / 2, bar.get_x(), bar.get_width())
        for bar in ax.patches
    ]
    assert [d[1:] for d in drawn if d[0] == 0.3] == [(1.0, 120.0, 30.0)]  # before its onset, on its row
    assert [d[1:] for d in drawn if d[0] != 0.3 and d[1] in (0.0, 1.0)] == bars  # the rest as before


def test_the_pareto_chart_rings_the_baseline_and_numbers_many_settings_in_a_key():
    points = pd.DataFrame({
        "setting": ["a", "b", "c", "d", "e", "f"],
        "dead_air_ms": [300.0, 300.0, 500.0, 700.0, 900.0, math.nan],
        "false_cutoff_rate": [0.4, 0.4, 0.2, 0.1, 0.3, 0.0],
        "pareto": [True, True, True, True, False, False],
        "baseline": [False, False, False, False, True, False],
    })  # fmt: skip
    ax = plots.pareto(points, ax=_axes())
    others, baseline = ax.collections
    assert np.allclose(baseline.get_offsets(), [[900.0, 30.0]])
    assert [a.get_text() for a in ax.texts if hasattr(a, "xy")] == ["1", "2", "3", "4"]  # a and b share "1"
    (key,) = [t for t in ax.texts if not hasattr(t, "xy")]
    assert key.get_text().splitlines() == ["1  a", "   b", "2  c", "3  d", "4  e"]  # f (no dead air) left out
    few = plots.pareto(points.head(3), ax=_axes())
    assert sorted(a.get_text() for a in few.texts) == ["a\nb", "c"]


def test_the_noise_chart_joins_the_settings_no_other_beats_on_false_starts_and_missed_turns():
    points = pd.DataFrame({
        "setting": ["thr=0.05", "thr=0.3", "thr=0.5", "thr=0.9", "push-to-talk"],
        "dead_air_ms": [500.0, 500.0, 500.0, 500.0, 300.0],
        "false_cutoff_rate": [0.0] * 5,
        "false_starts_per_min": [11.0, 2.0, 3.0, 0.0, math.nan],
        "false_starts_per_min_lo": [5.0, 0.5, 1.0, 0.0, math.nan],
        "false_starts_per_min_hi": [20.0, 6.0, 8.0, 3.7, math.nan],
        "missed_turn_rate": [0.0, 0.1, 0.2, 0.5, 0.0],
        "missed_turn_rate_lo": [0.0, 0.02, 0.05, 0.3, math.nan],
        "missed_turn_rate_hi": [0.2, 0.3, 0.4, 0.7, math.nan],
        "pareto": [True, False, False, False, False],  # the cut-off/dead-air frontier: not this one
        "reference": [False, False, False, False, True],
    })  # fmt: skip
    ax = plots.noise_tradeoff(points, ax=_axes())
    assert ax.get_xlabel() == "false starts per minute of noise" and ax.get_ylabel() == "missed turns (%)"
    (front,) = [line for line in ax.lines if line.get_label() == "setting on the Pareto frontier"]
    assert sorted(zip(front.get_xdata(), front.get_ydata(), strict=True)) == [
        (0.0, 50.0), (2.0, 10.0), (11.0, 0.0)
    ]  # fmt: skip  # thr=0.5 is beaten by thr=0.3 on both
    (off,) = [c for c in ax.collections if c.get_label() == "setting"]
    assert np.allclose(off.get_offsets(), [[3.0, 20.0]])
    assert "95 % interval" in ax.get_legend_handles_labels()[1]
    assert not any("push-to-talk" in t.get_text() for t in ax.texts)  # starts no turn: not on this plane
    speech_only = plots.noise_tradeoff(points.assign(false_starts_per_min=math.nan), ax=_axes())
    assert [t.get_text() for t in speech_only.texts] == [
        "no setting to draw: the sweep played no prompt of noise alone (category noise_only)"
    ]
    noise_only = plots.noise_tradeoff(points.assign(missed_turn_rate=math.nan), ax=_axes())
    assert [t.get_text() for t in noise_only.texts] == [
        "no setting to draw: the sweep played no prompt with speech beside its noise-only ones"
    ]


def test_an_interval_that_misses_its_value_by_a_rounding_draws_no_bar_on_that_side():
    points = pd.DataFrame({
        "setting": ["none cut", "all cut"], "dead_air_ms": [500.0, 700.0], "false_cutoff_rate": [0.0, 1.0],
        "dead_air_ms_lo": [400.0, 710.0], "dead_air_ms_hi": [600.0, 800.0],  # a bootstrap's, above its median
        "false_cutoff_rate_lo": [2.8e-17, 0.72], "false_cutoff_rate_hi": [0.28, 1.0 - 1e-16],
        "pareto": [True, False],
    })  # fmt: skip
    ax = plots.pareto(points, ax=_axes())  # was ValueError: 'yerr' must not contain negative values
    (bars,) = [c for c in ax.containers if c.get_label() == "95 % interval"]
    (x_bars, y_bars) = bars.lines[2]
    assert np.allclose([s for s in y_bars.get_segments()], [[(500, 0), (500, 28)], [(700, 72), (700, 100)]])
    assert np.allclose([s for s in x_bars.get_segments()], [[(400, 0), (600, 0)], [(700, 100), (800, 100)]])


def test_numbers_in_report_tables_are_rounded_for_reading():
    assert [plots.format_number(v) for v in (1234.56, 100.0, 99.95, 0.123456, -250.4)] == [
        "1,235", "100", "100", "0.123", "-250"
    ]  # fmt: skip


def test_a_turn_answered_through_a_tool_call_ends_in_a_bar_to_the_answer_s_audio():
    from matplotlib.colors import to_rgb

    spoken = _turn(voice_to_voice_ms=1070.0, voice_to_answer_ms=1070.0)
    called = _turn(
        ttfb_audio_ms=math.nan, voice_to_voice_ms=math.nan, voice_to_answer_ms=1400.0, tool_calls=1
    )
    ax = plots.waterfall(pd.DataFrame([spoken, called]), ax=_axes())
    # the call's own stages end at its response.created (650 ms); the grey bar runs on to the answer's audio
    assert _bars(ax)[-1] == (0.0, 650.0, 750.0)
    assert ax.patches[-1].get_facecolor()[:3] == pytest.approx(to_rgb(plots.THROUGH_TOOLS_COLOR))
    assert [t.get_text() for t in ax.texts] == [" 1070 ms", " 1400 ms"]
    assert _legend(ax)[-1] == "tool call → the answer's audio"
    assert ax.get_title().startswith("Voice-to-answer")
    plain = plots.waterfall(pd.DataFrame([spoken]), ax=_axes())
    assert plain.get_title().startswith("Voice-to-voice") and len(plain.patches) == 4


def test_a_run_with_no_turn_gets_charts_that_say_there_is_nothing_to_draw():
    empty = pd.DataFrame(columns=[*_turn()])
    ax = plots.waterfall(empty, ax=_axes())
    assert [t.get_text() for t in ax.texts] == [
        "no turn to draw: nothing was answered (see the run's events for why)"
    ]
    assert ax.get_title() == "Voice-to-voice latency by stage"
    assert (len(ax.patches), len(ax.get_yticks())) == (0, 0)  # no bar, no turn named
    unmeasured = pd.DataFrame({"setting": ["sil=200"], "dead_air_ms": [math.nan]})
    ax = plots.latency_distributions(unmeasured, ax=_axes())
    assert [t.get_text() for t in ax.texts] == ["no turn to draw: none has a dead_air_ms"]
    assert (ax.get_title(), list(ax.collections)) == ("Dead air per setting", [])


def test_the_waterfall_of_an_event_frame_says_it_wants_turns():
    from vlab.errors import ConfigError

    events = pd.DataFrame({"seq": [0], "type": ["session.created"], "direction": ["server"]})
    with pytest.raises(ConfigError, match=r"^expected turns, from vlab.metrics.turn_latency .* lacks turn"):
        plots.waterfall(events, ax=_axes())


def test_a_setting_that_moved_inside_its_intervals_gets_a_dashed_arrow_the_legend_explains():
    def points(dead: list[float], cut: list[float], dead_half: float, cut_half: float) -> pd.DataFrame:
        return pd.DataFrame({
            "setting": ["noise", "moved"], "dead_air_ms": dead, "false_cutoff_rate": cut,
            "dead_air_ms_lo": [d - dead_half for d in dead], "dead_air_ms_hi": [d + dead_half for d in dead],
            "false_cutoff_rate_lo": [c - cut_half for c in cut], "false_cutoff_rate_hi": [c + cut_half for c in cut],
        })  # fmt: skip

    a = points([700.0, 700.0], [0.5, 0.5], 50.0, 0.2)
    b = points([720.0, 900.0], [0.4, 0.5], 50.0, 0.2)  # "noise" moves inside both intervals; "moved" does not
    ax = plots.pareto_shift(a, b, ax=_axes())
    styles = {t.xy: t.arrow_patch.get_linestyle() for t in ax.texts if getattr(t, "arrow_patch", None)}
    assert styles[(720.0, 40.0)] == "--" and styles[(900.0, 50.0)] == "solid"
    assert ax.get_legend_handles_labels()[1] == ["A", "B", "inside the 95 % intervals"]
    solid = plots.pareto_shift(
        a.drop(columns=["dead_air_ms_lo"]), b, ax=_axes()
    )  # no interval: any move counts
    arrows = [t.arrow_patch for t in solid.texts if getattr(t, "arrow_patch", None)]
    assert {arrow.get_linestyle() for arrow in arrows} == {"solid"}
    assert solid.get_legend_handles_labels()[1] == ["A", "B"]
    rounding = plots.pareto_shift(
        points([700.0, 700.0], [0.5, 0.5], 0.0, 0.0),
        points([700.001, 700.0], [0.5, 0.5], 0.0, 0.0),
        ax=_axes(),
    )  # the dead air a microsecond apart, each interval 0 wide: not a move
    arrows = [t.arrow_patch for t in rounding.texts if getattr(t, "arrow_patch", None)]
    assert {arrow.get_linestyle() for arrow in arrows} == {"--"}


@pytest.mark.parametrize("turns", [1, 3, 12])
def test_the_waterfall_legend_sits_below_the_x_label_at_any_number_of_turns(turns, tmp_path):
    # it was placed at a share of the axes' height, and on a short chart it covered the x label
    ax = plots.waterfall(pd.DataFrame([_turn(voice_to_voice_ms=1070.0)] * turns))
    ax.figure.savefig(tmp_path / "waterfall.png", bbox_inches="tight")  # as the report saves it
    legend, label = ax.get_legend().get_window_extent(), ax.xaxis.label.get_window_extent()
    assert legend.y1 < label.y0, (legend, label)
    assert legend.y0 > 0  # and inside the figure
