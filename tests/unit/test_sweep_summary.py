"""The table `vlab sweep` and `vlab demo` print: the operating points, and the voice-to-voice latency."""

from __future__ import annotations

import re

import pandas as pd

from vlab.sweep.summary import failure_summary, results_table

POINTS = pd.DataFrame({
    "setting": ["sil=300", "sil=800", "push-to-talk"], "false_cutoff_rate": [0.5, 0.0, 0.0],
    "missed_turn_rate": [0.0, 0.0, 0.0], "dead_air_ms": [500.0, 900.0, 400.0],
    "baseline": [False, False, False], "reference": [False, False, True], "pareto": [True, True, False],
})  # fmt: skip


def _rows(table: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line) for line in table.splitlines()[:4]]


def test_the_latency_is_over_the_spoken_turns_not_cut_off():
    turns = pd.DataFrame({
        "setting": ["sil=300"] * 4 + ["sil=800"] * 2 + ["push-to-talk"],
        "trigger": ["vad", "vad", "vad", "client", "vad", "vad", "commit"],
        "false_cutoff": [True, False, False, False, False, False, False],
        "voice_to_voice_ms": [100.0, 800.0, 1000.0, 5.0, 1200.0, 1300.0, 700.0],
    })  # fmt: skip
    rows = _rows(results_table(POINTS, turns))
    assert rows[0] == ["setting", "cut off %", "missed %", "dead air ms", "v2v p50 ms", "v2v p90 ms"]
    # the cut-off answer (100 ms) and the client's own response (5 ms) are not a turn's latency
    assert rows[1] == ["sil=300", "50", "0", "500", "900", "980", "Pareto"]
    assert rows[2] == ["sil=800", "0", "0", "900", "1250", "1290", "Pareto"]
    assert rows[3] == ["push-to-talk (reference)", "0", "0", "400", "700", "700"]
    assert "v2v: the end of the user's speech" in results_table(POINTS, turns)


def test_a_reply_to_noise_alone_is_no_turn_of_the_user_s():
    turns = pd.DataFrame({
        "setting": ["sil=300"] * 3,
        "category": ["short", "short", "noise_only"],
        "trigger": ["vad"] * 3,
        "false_cutoff": [False] * 3,
        "voice_to_voice_ms": [800.0, 1000.0, 100.0],  # the false start on noise was answered at once
    })  # fmt: skip
    assert _rows(results_table(POINTS, turns))[1][-3:] == ["900", "980", "Pareto"]  # not 800 and 960
    from vlab.metrics import spoken_turns

    assert spoken_turns(turns)["category"].tolist() == ["short", "short"]
    assert len(spoken_turns(turns.drop(columns=["category"]))) == 3  # one run's turns: nothing says which


def test_a_setting_without_latencies_shows_a_dash_and_no_turns_show_no_latency_columns():
    turns = pd.DataFrame({
        "setting": ["sil=300"], "trigger": ["vad"], "false_cutoff": [False], "voice_to_voice_ms": [800.0],
    })  # fmt: skip
    assert _rows(results_table(POINTS, turns))[2][-4:] == ["900", "-", "-", "Pareto"]
    without = results_table(POINTS)
    assert _rows(without)[0] == ["setting", "cut off %", "missed %", "dead air ms"]
    assert "v2v" not in without
    no_latency = turns.assign(voice_to_voice_ms=float("nan"))
    assert results_table(POINTS, no_latency) == without


def test_the_false_starts_on_noise_show_with_their_interval_when_the_sweep_played_noise():
    noisy = POINTS.assign(
        false_starts_per_min=[11.32, 0.0, float("nan")],  # the reference plays no noise-only prompt
        false_starts_per_min_lo=[0.287, 0.0, float("nan")],
        false_starts_per_min_hi=[63.08, 41.79, float("nan")],
    )
    table = results_table(noisy)
    rows = _rows(table)
    assert rows[0][-1] == "false starts/min"
    assert rows[1][-2:] == ["11.3 [0.3-63.1]", "Pareto"] and rows[2][-2:] == ["0.0 [0.0-41.8]", "Pareto"]
    assert rows[3][-1] == "-"
    assert "false starts: speech the VAD found in the noise-only prompts" in " ".join(table.splitlines())
    without_noise = POINTS.assign(false_starts_per_min=float("nan"))  # what a sweep of speech alone has
    assert results_table(without_noise) == results_table(POINTS)


def test_a_sweep_whose_turns_called_tools_shows_the_user_s_wait_through_the_calls():
    turns = pd.DataFrame({
        "setting": ["sil=300"] * 3 + ["sil=800"] * 2,
        "trigger": ["vad", "client", "vad", "vad", "client"],
        "false_cutoff": [False] * 5,
        "tool_calls": [1, 0, 0, 1, 0],
        # the turn that called a tool has no voice-to-voice: its reply spoke nothing; the client's own
        # response that speaks the answer has one, from the client's request
        "voice_to_voice_ms": [float("nan"), 500.0, 900.0, float("nan"), 450.0],
        "voice_to_answer_ms": [2500.0, float("nan"), 900.0, 3000.0, float("nan")],
    })  # fmt: skip
    table = results_table(POINTS, turns)
    rows = _rows(table)
    assert rows[0][-2:] == ["v2a p50 ms", "v2a p90 ms"]  # was v2v: 900 for sil=300, '-' for sil=800
    assert rows[1][-3:] == ["1700", "2340", "Pareto"]
    assert rows[2][-3:] == ["3000", "3000", "Pareto"]
    assert (
        "v2a: the end of the user's speech to the first audio of the reply that speaks the answer"
        in " ".join(table.splitlines())
    )


def test_cells_that_failed_alike_share_a_line_and_at_most_five_errors_are_listed(tmp_path):
    refused = "ConnectionFailed: nothing accepts connections at 127.0.0.1:9"
    failed = [
        ("a__p1__r0", refused),
        ("a__p2__r0", "AudioFormatError: p2.wav holds MP3 data"),
        ("b__p1__r0", refused),
    ]
    assert failure_summary(failed, tmp_path) == [
        f"3 cells failed (each one's error is in {tmp_path / 'cells'}/<cell>/cell.json):",
        f"  2 × {refused} (the first: a__p1__r0)",
        "  a__p2__r0: AudioFormatError: p2.wav holds MP3 data",
    ]
    many = [(f"c{k}", f"error {k}") for k in range(7)]
    lines = failure_summary(many, tmp_path)
    assert lines[0].startswith("7 cells failed") and lines[1:6] == [f"  c{k}: error {k}" for k in range(5)]
    assert lines[6:] == ["  … and 2 other errors"]
    assert failure_summary(many[:1], tmp_path)[0].startswith("1 cell failed (")
