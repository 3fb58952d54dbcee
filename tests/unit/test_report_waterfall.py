"""Which turns a sweep report's waterfall draws: a share of every setting, in the grid's order."""

from __future__ import annotations

import pandas as pd

from vlab.report.build import waterfall_turns


def _turns(settings: int, per_setting: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"setting": f"s{s}", "prompt": f"p{t}"}
            for s in reversed(range(settings))
            for t in range(per_setting)
        ]
    )


def test_every_setting_of_a_big_grid_gets_a_share_of_the_waterfall():
    grid = [f"s{s}" for s in range(16)]
    sample, per = waterfall_turns(_turns(16, 5), grid, max_turns=24)
    assert per == 1 and sample["setting"].tolist() == grid  # was 4 each of the first 6 settings
    sample, per = waterfall_turns(_turns(5, 5), grid, max_turns=24)
    assert per == 4 and sample["setting"].drop_duplicates().tolist() == grid[:5]
    assert sample.groupby("setting").size().eq(4).all()
    sample, per = waterfall_turns(_turns(8, 5), grid, max_turns=24)
    assert per == 3 and len(sample) == 24


def test_a_sweep_without_turns_draws_none():
    sample, _ = waterfall_turns(pd.DataFrame(columns=["setting", "prompt"]), ["s0"], max_turns=24)
    assert sample.empty
