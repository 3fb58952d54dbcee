"""``compare_sweeps``' verdicts, from two sweep folders written by hand with known figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlab.cli import main
from vlab.errors import VlabWarning
from vlab.report import compare_sweeps

RATES = ("false_cutoff_rate", "hold_cut_rate", "missed_turn_rate", "der")


def _sweep(
    folder: Path,
    points: dict[str, dict[str, float]],
    turns: dict[str, dict[str, list[float]]],
    prompts: tuple[str, ...] = (),
    mode: str = "sessions",
    **ran_with: object,
) -> Path:
    folder.mkdir()
    manifest = {
        "prompts": [{"id": p} for p in prompts],
        "grid": [{"setting": s} for s in points],
        "mode": mode,
        **ran_with,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    pd.DataFrame([{"setting": s, **rates} for s, rates in points.items()]).to_parquet(
        folder / "points.parquet"
    )
    rows = [  # turns the user spoke unless a column says otherwise
        {"setting": s, "trigger": "vad", **{m: values[i] for m, values in columns.items()}}
        for s, columns in turns.items()
        for i in range(len(next(iter(columns.values()))))
    ]
    pd.DataFrame(rows).to_parquet(folder / "turns.parquet")
    return folder


def _rates(*values: float) -> dict[str, float]:
    return dict(zip(RATES, values, strict=True))


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    spread = list(np.linspace(100, 300, 21))
    a = _sweep(
        tmp_path / "a",
        {
            "s1": _rates(0.2, 0.1, 0.05, float("nan")),
            "only_in_a": _rates(0.0, 0.0, 0.0, 0.0),
        },
        {
            "s1": {
                "dead_air_ms": [100.0] * 21,
                "voice_to_voice_ms": spread,
                "turn_commit_ms": [300.0] * 21,
                "ttfb_audio_ms": [50.0] * 21,
            },
            "only_in_a": {
                m: [1.0] * 21 for m in ("dead_air_ms", "voice_to_voice_ms", "turn_commit_ms", "ttfb_audio_ms")
            },
        },
    )
    b = _sweep(
        tmp_path / "b",
        {
            "s1": _rates(0.1, 0.3, 0.05, 0.1),
            "only_in_b": _rates(0.9, 0.9, 0.9, 0.9),
        },
        {  # no ttfb_audio_ms in B; the other setting's turns must not count for s1
            "s1": {
                "dead_air_ms": [102.0] * 21,
                "voice_to_voice_ms": [v + 20 for v in spread],
                "turn_commit_ms": [100.0] * 21,
            },
            "only_in_b": {
                "dead_air_ms": [9000.0] * 21,
                "voice_to_voice_ms": [9000.0] * 21,
                "turn_commit_ms": [9000.0] * 21,
            },
        },
    )
    # the table has s1 alone: the warning names what it leaves out (it said nothing of them)
    with pytest.warns(VlabWarning, match=r"^only the 1 setting\(s\) both sweeps ran are compared \(only in A: "
                      r"only_in_a; only in B: only_in_b\)$"):  # fmt: skip
        return compare_sweeps(a, b, n_boot=200)


def test_only_the_settings_of_both_sweeps_are_compared(table):
    assert set(table["setting"]) == {"s1"}
    assert list(table["measure"]) == [
        *RATES,
        *(f"{m} p50" for m in ("dead_air_ms", "voice_to_voice_ms", "turn_commit_ms", "ttfb_audio_ms")),
    ]


def test_a_rate_is_better_lower_worse_higher_and_same_when_equal(table):
    rates = table.set_index("measure").loc[list(RATES)]
    assert list(rates["verdict"]) == ["better", "worse", "same", "n/a"]  # der: A has no value
    assert rates["delta"].iloc[:3].tolist() == pytest.approx([-0.1, 0.2, 0.0])


def test_a_latency_is_same_when_the_intervals_overlap_and_n_a_without_values(table):
    rows = table.set_index("measure")
    # two milliseconds worse, and the intervals do not overlap
    assert rows.loc["dead_air_ms p50", ["a", "b", "delta", "verdict"]].tolist() == [
        100.0,
        102.0,
        2.0,
        "worse",
    ]
    assert rows.loc["turn_commit_ms p50", ["delta", "verdict"]].tolist() == [-200.0, "better"]
    v2v = rows.loc["voice_to_voice_ms p50"]
    assert v2v["delta"] == pytest.approx(20.0) and v2v["verdict"] == "same"  # 200 ± 50 against 220 ± 50
    assert v2v["a_lo"] < v2v["b_lo"] <= v2v["a_hi"] < v2v["b_hi"]
    assert rows.loc["ttfb_audio_ms p50", "verdict"] == "n/a"


def test_vlab_compare_draws_how_each_setting_moved_when_asked(tmp_path, capsys):
    latencies = {"dead_air_ms": [100.0]}
    a = _sweep(tmp_path / "a", {"s": {**_rates(0.4, 0, 0, 0), "dead_air_ms": 700.0}}, {"s": latencies})
    b = _sweep(tmp_path / "b", {"s": {**_rates(0.1, 0, 0, 0), "dead_air_ms": 900.0}}, {"s": latencies})
    png = tmp_path / "moved.png"
    assert main(["compare", str(a), str(b), "--plot", str(png)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"chart: {png}"
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
    nested = tmp_path / "charts" / "moved.svg"  # another format, into a folder not made yet
    assert main(["compare", str(a), str(b), "--plot", str(nested)]) == 0
    assert nested.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--plot", str(tmp_path / "moved.txt")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "give a file name ending in .png (or " in err  # before any table


def test_vlab_compare_s_chart_names_each_setting_by_what_sets_it_apart_alike_in_both(tmp_path, monkeypatch):
    from vlab import plots
    from vlab.report import compare_chart

    settings = ["thr=0.5 pad=300 sil=300", "thr=0.5 pad=300 sil=300 eou=v1/1200ms"]
    a = _sweep(tmp_path / "a", {s: {**_rates(0.4, 0, 0, 0), "dead_air_ms": 700.0} for s in settings}, {})
    b = _sweep(tmp_path / "b", {s: {**_rates(0.1, 0, 0, 0), "dead_air_ms": 900.0} for s in settings}, {})
    drawn = []
    monkeypatch.setattr(plots, "pareto_shift", lambda a, b, **kw: drawn.append((a, b, kw["shared"])))
    compare_chart(a, b, tmp_path / "moved.png")
    ((a_points, b_points, shared),) = drawn  # the key read the whole names, shared thr=0.5 pad=300 and all
    assert a_points["setting"].tolist() == b_points["setting"].tolist() == ["eou=off", "eou=v1/1200ms"]
    assert shared == "thr=0.5 pad=300 sil=300"  # said in the title instead


def test_vlab_compare_of_sweeps_with_no_setting_in_common_names_each_one_s_settings(tmp_path, capsys):
    latencies = {"dead_air_ms": [100.0]}
    a = _sweep(tmp_path / "a", {"s1": _rates(0, 0, 0, 0), "s2": _rates(0, 0, 0, 0)}, {"s1": latencies})
    b = _sweep(tmp_path / "b", {"s3": _rates(0, 0, 0, 0)}, {"s3": latencies})
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "no setting appears in both sweeps" in err
    assert f"{a} has s1, s2; {b} has s3" in err and "run the second sweep with the first one's grid" in err
    # names that differ only by the model or voice one grid sweeps: compare them within one sweep
    plain = "thr=0.5 pad=300 sil=500"
    c = _sweep(tmp_path / "c", {plain: _rates(0, 0, 0, 0)}, {plain: latencies})
    d = _sweep(tmp_path / "d", {f"{plain} model=gpt-4.1 voice=alloy": _rates(0, 0, 0, 0)}, {})
    assert main(["compare", str(c), str(d)]) == 2
    assert capsys.readouterr().err.endswith(
        "Their names differ by the model or voice that one grid sweeps and the other does not: to compare "
        "models or voices, list them all in one sweep's [grid] (model = [...], voice = [...])\n"
    )


def test_tokens_per_expected_turn_is_compared_when_both_sweeps_count_tokens(tmp_path):
    latencies = {"s": {"dead_air_ms": [100.0] * 3}}
    a = _sweep(tmp_path / "a", {"s": {**_rates(0, 0, 0, 0), "tokens_per_expected_turn": 80.0}}, latencies)
    b = _sweep(tmp_path / "b", {"s": {**_rates(0, 0, 0, 0), "tokens_per_expected_turn": 60.0}}, latencies)
    old = _sweep(tmp_path / "old", {"s": _rates(0, 0, 0, 0)}, latencies)  # from before vlab counted tokens
    row = compare_sweeps(a, b, n_boot=50).set_index("measure").loc["tokens_per_expected_turn"]
    assert (row["delta"], row["verdict"]) == (-20.0, "better")
    assert "tokens_per_expected_turn" not in set(compare_sweeps(a, old, n_boot=50)["measure"])


def test_a_rate_with_intervals_is_the_same_while_they_overlap(tmp_path: Path) -> None:
    from vlab.metrics import wilson_interval

    def point(cut: int) -> dict[str, float]:  # cut of 8 turns, with the interval a sweep writes
        lo, hi = wilson_interval(cut, 8)
        return {**_rates(cut / 8, 0, 0, 0), "false_cutoff_rate_lo": lo, "false_cutoff_rate_hi": hi}

    turns = {s: {"dead_air_ms": [100.0]} for s in ("close", "far")}
    a = _sweep(tmp_path / "a", {"close": point(6), "far": point(6)}, turns)
    b = _sweep(tmp_path / "b", {"close": point(5), "far": point(0)}, turns)
    rows = compare_sweeps(a, b, n_boot=20).set_index(["setting", "measure"])
    assert (
        rows.loc[("close", "false_cutoff_rate"), "verdict"] == "same"
    )  # 75 % against 62 %: 8 turns can't tell
    assert rows.loc[("far", "false_cutoff_rate"), "verdict"] == "better"  # 75 % against 0 %: they can
    assert rows.loc[("far", "false_cutoff_rate"), "b_hi"] == wilson_interval(0, 8)[1]
    assert rows.loc[("far", "hold_cut_rate"), "verdict"] == "same"  # no interval: equal values
    assert rows.loc[("far", "dead_air_ms p50"), "verdict"] == "same"  # one turn each (no interval), equal


def test_sweeps_of_different_prompts_are_compared_with_a_warning_that_says_which(tmp_path, capsys):
    from vlab.errors import VlabWarning

    turns = {"s": {"dead_air_ms": [100.0]}}
    a = _sweep(tmp_path / "a", {"s": _rates(0, 0, 0, 0)}, turns, prompts=("pause_600", "short_question"))
    b = _sweep(tmp_path / "b", {"s": _rates(0, 0, 0, 0)}, turns, prompts=("pause_600", "digits"))
    same = _sweep(
        tmp_path / "same", {"s": _rates(0, 0, 0, 0)}, turns, prompts=("short_question", "pause_600")
    )
    with pytest.warns(VlabWarning, match=r"only in A: short_question; only in B: digits"):
        compare_sweeps(a, b, n_boot=20)
    assert main(["compare", str(a), str(b)]) == 0
    err = capsys.readouterr().err
    assert err.count("vlab: warning: the two sweeps played different prompts") == 1
    assert main(["compare", str(a), str(same)]) == 0
    assert "warning" not in capsys.readouterr().err  # the same prompts, in another order


def test_vlab_compare_first_says_what_else_the_two_sweeps_ran_with_otherwise(tmp_path, capsys):
    from vlab.report import ran_otherwise

    points, turns = {"s": _rates(0, 0, 0, 0)}, {"s": {"dead_air_ms": [100.0]}}
    ran = {"target_kind": ["emulator"], "latency": "typical", "hear_audio": False, "script": None}
    a = _sweep(tmp_path / "a", points, turns, **ran, session={"instructions": "Be brief.", "voice": "alloy"})
    b = _sweep(
        tmp_path / "b",
        points,
        turns,
        **{**ran, "latency": "slow-network", "hear_audio": True},
        session={"instructions": "Tell a story.", "temperature": 0.7, "voice": "alloy"},
    )
    expected = [
        "[target] latency: A typical, B slow-network",
        "[target] hear_audio: A false, B true",
        "[session] instructions: A 'Be brief.', B 'Tell a story.'",
        "[session] temperature: A none, B 0.7",
    ]
    assert ran_otherwise(a, b) == expected
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    head = "A and B differ besides their settings; a figure can move with this too:\n"
    assert out.startswith(head + "".join(f"  {line}\n" for line in expected) + "\nsetting ")
    c = _sweep(tmp_path / "c", points, turns, **{**ran, "target_kind": ["azure"]}, session={"voice": "alloy"})
    assert ran_otherwise(a, c) == [
        "target: A emulator, B azure",
        "[session] instructions: A 'Be brief.', B none",
    ]
    on_azure = {
        **ran,
        "target_kind": ["azure"],
    }  # [target] is the embedded emulator's: Azure reads none of it
    d = _sweep(tmp_path / "d", points, turns, **on_azure)
    e = _sweep(tmp_path / "e", points, turns, **{**on_azure, "latency": "slow-network"})
    assert ran_otherwise(d, e) == []
    # the model each sweep's cells connected with (AZURE_VOICELIVE_MODEL): the settings' names do not say it
    grid_a, grid_b = ([{"setting": "s", "model": model}] for model in ("gpt-realtime", "gpt-4.1"))
    f = _sweep(tmp_path / "f", points, turns, **{**ran, "grid": grid_a})
    g = _sweep(tmp_path / "g", points, turns, **{**ran, "grid": grid_b})
    assert ran_otherwise(f, g) == ["model: A gpt-realtime, B gpt-4.1"]
    earlier = _sweep(tmp_path / "earlier", points, turns, **ran)  # a manifest that does not say its model
    assert ran_otherwise(earlier, g) == []
    old = _sweep(tmp_path / "old", points, turns)  # a manifest of an earlier vlab says none of these
    assert ran_otherwise(old, old) == []
    assert main(["compare", str(a), str(a)]) == 0
    assert capsys.readouterr().out.startswith("setting ")  # nothing to say


def test_a_vad_only_sweep_against_a_session_sweep_warns_that_only_the_rates_compare(tmp_path, capsys):
    from vlab.errors import VlabWarning

    sessions = _sweep(tmp_path / "s", {"s": _rates(0, 0, 0, 0)}, {"s": {"dead_air_ms": [100.0]}})
    vad = _sweep(tmp_path / "v", {"s": _rates(0, 0, 0, 0)}, {}, mode="vad")
    also_vad = _sweep(tmp_path / "w", {"s": _rates(0, 0, 0, 0)}, {}, mode="vad")
    with pytest.warns(
        VlabWarning, match=r"^B was decided by the VAD alone \(mode = 'vad'\), without sessions"
    ):
        compare_sweeps(sessions, vad, n_boot=20)
    with pytest.warns(
        VlabWarning, match=r"^A was decided by the VAD alone .* run both sweeps in the same mode$"
    ):
        compare_sweeps(vad, sessions, n_boot=20)
    assert main(["compare", str(vad), str(also_vad)]) == 0  # the same mode: nothing to warn of
    assert "warning" not in capsys.readouterr().err


def test_a_sweep_compared_with_itself_warns_that_every_delta_is_0(tmp_path, capsys, monkeypatch):
    a = _sweep(tmp_path / "a", {"s": _rates(0, 0, 0, 0)}, {"s": {"dead_air_ms": [100.0]}})
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "a", "./a/"]) == 0
    assert capsys.readouterr().err == (
        "vlab: warning: a and ./a/ are the same sweep folder: every delta is 0; give another sweep's folder as B\n"
    )
    copy = _sweep(tmp_path / "b", {"s": _rates(0, 0, 0, 0)}, {"s": {"dead_air_ms": [100.0]}})
    assert main(["compare", str(a), str(copy)]) == 0  # alike, but another sweep
    assert "warning" not in capsys.readouterr().err


def test_settings_are_compared_in_the_grid_order_of_a(tmp_path: Path) -> None:
    grid = ("sil=200", "sil=1000", "sil=500")  # not the names' string order
    turns = {s: {"dead_air_ms": [100.0]} for s in grid}
    a = _sweep(tmp_path / "a", {s: _rates(0, 0, 0, 0) for s in grid}, turns)
    b = _sweep(tmp_path / "b", {s: _rates(0, 0, 0, 0) for s in reversed(grid)}, turns)
    assert list(dict.fromkeys(compare_sweeps(a, b, n_boot=20)["setting"])) == list(grid)


@pytest.mark.parametrize("b_first", [False, True])
def test_intervals_that_only_touch_overlap(tmp_path: Path, b_first: bool) -> None:
    """A constant 200 ms against 200 ms most of the time and 300 ms otherwise: the intervals share 200."""
    steady, mixed = [200.0] * 21, [200.0] * 11 + [300.0] * 10
    latencies = {"s": {"dead_air_ms": mixed if b_first else steady}}
    other = {"s": {"dead_air_ms": steady if b_first else mixed}}
    a = _sweep(tmp_path / "a", {"s": _rates(0, 0, 0, 0)}, latencies)
    b = _sweep(tmp_path / "b", {"s": _rates(0, 0, 0, 0)}, other)
    row = compare_sweeps(a, b, n_boot=200).set_index("measure").loc["dead_air_ms p50"]
    lows_and_highs = (row["b_lo"], row["a_hi"]) if not b_first else (row["a_lo"], row["b_hi"])
    assert lows_and_highs == (200.0, 200.0) and row["verdict"] == "same"


def test_vlab_compare_prints_numbers_as_the_report_does(tmp_path, capsys):
    a = _sweep(tmp_path / "a", {"s": _rates(0.25, 0, 0, 0)}, {"s": {"dead_air_ms": [2641.7]}})
    b = _sweep(tmp_path / "b", {"s": _rates(0.5, 0, 0, 0)}, {"s": {"dead_air_ms": [3118.2]}})
    assert main(["compare", str(a), str(b)]) == 0
    table = capsys.readouterr().out.split("\n\n")[0]  # the summary follows a blank line
    rows = {line.split()[1]: line.split()[2:6] for line in table.splitlines()[1:]}
    assert rows["dead_air_ms"] == ["p50", "2,642", "3,118", "476"]  # whole ms; was 2.64e+03 3.12e+03 476
    assert rows["false_cutoff_rate"] == ["0.25", "0.5", "0.25", "worse"]
    assert rows["ttfb_audio_ms"] == ["p50", "–", "–", "–"]  # no value, as in the report; was NaN


def test_the_latencies_compared_are_the_user_s_turns_not_the_client_s_own_responses(tmp_path):
    # a turn answered through a tool: the response that speaks the answer is the client's, 500 ms after
    # it sent the tool's output; the user waited 2,600 ms. The report and `vlab sweep` count the user's wait.
    turns = {"dead_air_ms": [2600.0, 500.0], "trigger": ["vad", "client"], "tool_calls": [1, 0]}
    a = _sweep(tmp_path / "a", {"s": _rates(0, 0, 0, 0)}, {"s": turns})
    b = _sweep(tmp_path / "b", {"s": _rates(0, 0, 0, 0)}, {"s": {**turns, "dead_air_ms": [3000.0, 400.0]}})
    rows = compare_sweeps(a, b, n_boot=20).set_index("measure")
    assert rows.loc["dead_air_ms p50", ["a", "b", "delta"]].tolist() == [
        2600.0,
        3000.0,
        400.0,
    ]  # was 1550, 1700
    assert "voice_to_answer_ms p50" in rows.index  # the turns called tools


def test_every_measure_of_a_point_with_an_interval_is_judged_by_it(tmp_path):
    def point(tokens: float, der: float) -> dict[str, float]:
        return {
            **_rates(0.5, 0.5, 0.0, der),
            "tokens_per_expected_turn": tokens,
            "tokens_per_expected_turn_lo": tokens - 5,
            "tokens_per_expected_turn_hi": tokens + 5,
            "der_lo": der - 0.05,
            "der_hi": der + 0.05,
        }

    turns = {"s": {"dead_air_ms": [100.0]}}
    a = _sweep(tmp_path / "a", {"s": point(91.8, 0.10)}, turns)
    b = _sweep(tmp_path / "b", {"s": point(90.5, 0.25)}, turns)
    rows = compare_sweeps(a, b, n_boot=20).set_index("measure")["verdict"]
    assert rows["tokens_per_expected_turn"] == "same"  # 1.3 fewer tokens, inside the noise
    assert rows["der"] == "worse"  # the intervals part


def test_vlab_compare_writes_the_setting_and_measure_names_from_the_left(tmp_path, capsys):
    points = {"s": _rates(0, 0, 0, 0), "a longer setting": _rates(0, 0, 0, 0)}
    turns = {s: {"dead_air_ms": [100.0]} for s in points}
    a, b = _sweep(tmp_path / "a", points, turns), _sweep(tmp_path / "b", points, turns)
    assert main(["compare", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("setting          measure ")  # as vlab sweep's table: was right-aligned
    assert lines[1].startswith("s                false_cutoff_rate ")
    assert any(line.startswith("a longer setting dead_air_ms p50 ") for line in lines)


def test_false_starts_on_noise_are_judged_by_their_poisson_interval_and_left_out_without_noise(tmp_path):
    from vlab.metrics import poisson_interval

    def point(false_starts: int, minutes: float) -> dict[str, float]:
        lo, hi = poisson_interval(false_starts, minutes)
        return {
            **_rates(0, 0, 0, 0),
            "false_starts_per_min": false_starts / minutes,
            "false_starts_per_min_lo": lo,
            "false_starts_per_min_hi": hi,
        }

    turns = {s: {"dead_air_ms": [100.0]} for s in ("short", "long")}
    a = _sweep(tmp_path / "a", {"short": point(0, 0.1), "long": point(0, 10)}, turns)
    b = _sweep(tmp_path / "b", {"short": point(1, 0.1), "long": point(40, 10)}, turns)
    rows = compare_sweeps(a, b, n_boot=20).set_index(["setting", "measure"])["verdict"]
    assert rows[("short", "false_starts_per_min")] == "same"  # one in 6 s of noise: it can't tell
    assert rows[("long", "false_starts_per_min")] == "worse"  # 40 in 10 minutes against none: it can
    no_noise = {s: {**_rates(0, 0, 0, 0), "false_starts_per_min": float("nan")} for s in ("short", "long")}
    c = _sweep(tmp_path / "c", no_noise, turns)
    d = _sweep(tmp_path / "d", no_noise, turns)
    assert "false_starts_per_min" not in set(compare_sweeps(c, d, n_boot=20)["measure"])


def test_latencies_less_than_a_millisecond_apart_are_the_same_whatever_their_intervals(tmp_path):
    # The same latency draw on two sweeps' simulated timelines, a microsecond of rounding apart: every
    # turn's value is equal, so each side's interval is 0 wide and the two never overlap.
    a = _sweep(tmp_path / "a", {"s": _rates(0, 0, 0, 0)}, {"s": {"ttfb_audio_ms": [449.701] * 5}})
    b = _sweep(tmp_path / "b", {"s": _rates(0, 0, 0, 0)}, {"s": {"ttfb_audio_ms": [449.702] * 5}})
    row = compare_sweeps(a, b, n_boot=20).set_index("measure").loc["ttfb_audio_ms p50"]
    assert row["b_lo"] > row["a_hi"]  # apart, but not by anything a caller hears
    assert row["verdict"] == "same"


def test_vlab_compare_ends_with_what_got_better_or_worse_in_how_many_settings(tmp_path, capsys):
    from vlab.report import verdict_summary

    turns = {s: {"dead_air_ms": [100.0] * 5} for s in ("s1", "s2", "s3")}
    slower = {s: {"dead_air_ms": [300.0] * 5} for s in ("s1", "s2")} | {"s3": {"dead_air_ms": [100.0] * 5}}
    a = _sweep(tmp_path / "a", {s: _rates(0.5, 0, 0, 0) for s in turns}, turns)
    b = _sweep(tmp_path / "b", {s: _rates(0.5 if s != "s1" else 0.2, 0, 0, 0) for s in turns}, slower)
    table = compare_sweeps(a, b, n_boot=20)
    assert verdict_summary(table) == [
        "3 settings: 1 better, 2 worse, 12 same, 9 n/a",  # no voice-to-voice and others in these turns
        "better: false_cutoff_rate in 1 of 3 settings",
        "worse: dead_air_ms p50 in 2 of 3 settings",
    ]
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == [*verdict_summary(table), "lower is better; 'same' while the 95 % intervals overlap"]
    assert out[-5] == "" and len(out) == 1 + len(table) + 5  # the header, every row, then the summary


def test_vlab_compare_says_the_input_audio_each_sweep_sent_given_or_not(tmp_path):
    from vlab.report import ran_otherwise

    points, turns = {"s": _rates(0, 0, 0, 0)}, {"s": {"dead_air_ms": [100.0]}}
    ran = {"target_kind": ["emulator"], "latency": "typical", "hear_audio": False, "script": None}
    plain = _sweep(tmp_path / "plain", points, turns, **ran)
    phone = _sweep(tmp_path / "phone", points, turns, **ran, session={"input_audio_format": "g711_ulaw"})
    assert ran_otherwise(plain, phone) == [
        "[session] input_audio_format: A 'pcm16', B 'g711_ulaw'",
        "[session] input_audio_sampling_rate: A 24000, B 8000",
    ]
    said = {"input_audio_format": "pcm16", "input_audio_sampling_rate": 24000}  # the default, said
    assert ran_otherwise(plain, _sweep(tmp_path / "said", points, turns, **ran, session=said)) == []
    answered = _sweep(
        tmp_path / "answered", points, turns, **ran, session={"output_audio_format": "g711_alaw"}
    )
    assert ran_otherwise(plain, answered) == ["[session] output_audio_format: A 'pcm16', B 'g711_alaw'"]


def test_two_vad_only_sweeps_compare_their_dead_air_on_the_audio_clock(tmp_path, capsys):
    # a VAD-only sweep has no turns: its dead air (and interval) is in its points, as its summary shows it
    def waited(ms: float) -> dict[str, dict[str, float]]:
        return {
            "s": {
                **_rates(0, 0, 0, 0),
                "dead_air_ms": ms,
                "dead_air_ms_lo": ms - 10,
                "dead_air_ms_hi": ms + 10,
            }
        }

    a = _sweep(tmp_path / "a", waited(300.0), {}, mode="vad")
    b = _sweep(tmp_path / "b", waited(500.0), {}, mode="vad")
    table = compare_sweeps(a, b, n_boot=20)
    dead_air = table[table["measure"] == "dead_air_ms p50"].iloc[0]
    assert (dead_air["a"], dead_air["b"], dead_air["delta"], dead_air["verdict"]) == (300, 500, 200, "worse")
    assert (dead_air["a_lo"], dead_air["b_hi"]) == (290, 510)
    assert (
        not table["measure"].str.startswith(("voice_to_voice", "turn_commit", "ttfb")).any()
    )  # nothing answered
    assert "n/a" not in set(table["verdict"])
