"""`vlab demo`'s summary table agrees with the report it writes beside it."""

from __future__ import annotations

import pandas as pd
import pytest

from vlab.demo import summary_table
from vlab.metrics import operating_points


def test_the_table_counts_cut_off_turns_as_the_report_rates_them(tmp_path) -> None:
    """A turn answered twice inside its pause is one turn cut off, in the table as in the Pareto chart."""
    scores = pd.DataFrame(
        {
            "setting": ["short", "short", "long"],
            "prompt": ["two_pauses", "plain", "two_pauses"],
            "category": ["pause", "plain", "pause"],
            "expected_turns": [2, 1, 2],
            "responses": [4, 1, 2],
            "cutoff_turns": [1, 0, 0],
            "false_cutoffs": [2, 0, 0],  # two responses inside the same turn's pause
            "holds": [0, 0, 0],
            "holds_cut": [0, 0, 0],
            "missed_turns": [0, 0, 0],
            "dead_air_ms": [500.0, 600.0, 900.0],
            "der": [0.1, 0.0, 0.1],
            "false_starts_per_min": [0.0, 0.0, 0.0],
            "split": [0, 0, 0],
            "false_starts": [0, 0, 0],
        }
    )
    turns = pd.DataFrame(
        {
            "setting": ["short", "short", "short", "long", "long"],
            "false_cutoff": [True, True, False, False, False],
            "voice_to_voice_ms": [300.0, 320.0, 900.0, 1200.0, 1250.0],
        }
    )
    scores.to_parquet(tmp_path / "scores.parquet")
    turns.to_parquet(tmp_path / "turns.parquet")

    table = summary_table(tmp_path)
    points = operating_points(scores).set_index("setting")
    assert table.loc["short", "false cut-offs"] == "1/3"
    for setting, shown in table["false cut-offs"].items():
        cut, expected = (int(n) for n in shown.split("/"))
        assert cut / expected == pytest.approx(points.loc[setting, "false_cutoff_rate"])
    assert table.loc["short", "v2v p50 ms"] == 900.0  # the cut-off answers are not latencies
    assert list(table.index) == ["short", "long"]  # by end-of-turn delay
