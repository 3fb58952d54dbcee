"""The metrics' public functions refuse an argument they cannot use with a ConfigError that names it.

Each of these calls used to fail deep inside pandas, numpy or math (``math domain error``, ``KeyError:
'trigger'``, ``IndexError``), or to return figures from nonsense (``end_of_turn_ms="100"`` read as the
times 1, 0 and 0).
"""

from __future__ import annotations

import functools
import math

import pandas as pd
import pytest

from vlab.errors import ConfigError
from vlab.metrics import (
    bootstrap_ci,
    bootstrap_ratio,
    cutoff_at_latency,
    detection_error_rate,
    latency_at_cutoff,
    operating_points,
    poisson_interval,
    score_prompt,
    spoken_turns,
    turn_latency,
    vad_preview,
    wilson_interval,
)
from vlab.prompts import load_prompt_set

EVENTS = pd.DataFrame({"type": ["session.created"], "direction": ["server"], "t_ns": [0], "seq": [0]})


@functools.cache
def _prompt():
    return next(p for p in load_prompt_set() if p.id == "short_question")


@functools.cache
def _scores() -> pd.DataFrame:
    detections = vad_preview([_prompt()], [{"setting": "s"}])
    return pd.DataFrame([{"setting": "s", **score_prompt(_prompt(), detections)}])


@functools.cache
def _points() -> pd.DataFrame:
    return operating_points(_scores())


CALLS = {
    "a tolerance below 0": (
        lambda: turn_latency(EVENTS, match_tolerance_ms=-1),
        "match_tolerance_ms must be",
    ),
    "a silence that is NaN": (
        lambda: turn_latency(EVENTS, silence_duration_ms=float("nan")),
        "silence_duration_ms must be a number ≥ 0, got nan",
    ),
    "labels as a string": (
        lambda: turn_latency(EVENTS, end_of_turn_ms="100"),
        "end_of_turn_ms must be a list of times in ms",
    ),
    "a label that is not a number": (
        lambda: turn_latency(EVENTS, end_of_turn_ms=[100.0, None]),
        "each of end_of_turn_ms must be a number, got None",
    ),
    "speech ends as a number": (
        lambda: turn_latency(EVENTS, speech_ends_ms=1200.0),
        "speech_ends_ms must be a list of times in ms",
    ),
    "events that are no frame": (lambda: turn_latency([1, 2]), "got a list, not a pandas DataFrame"),
    "turns without their columns": (
        lambda: spoken_turns(pd.DataFrame({"x": [1]})),
        "expected turns, from vlab.metrics.turn_latency or a sweep's turns table; this frame lacks trigger",
    ),
    "points from turns without their columns": (
        lambda: operating_points(_scores(), turns=pd.DataFrame({"x": [1]})),
        "this frame lacks trigger",
    ),
    "points from turns without the setting": (
        lambda: operating_points(_scores(), turns=pd.DataFrame({"trigger": ["vad"], "dead_air_ms": [500.0]})),
        "with the scores' setting; this frame lacks setting",
    ),
    "no resamples": (lambda: bootstrap_ci([1.0, 2.0, 3.0], 0.5, n_boot=0), "n_boot must be an integer ≥ 1"),
    "a quantile above 1": (lambda: bootstrap_ci([1.0, 2.0], 50), "q must be a number from 0 to 1, got 50"),
    "a ratio of unpaired values": (
        lambda: bootstrap_ratio([1.0, 2.0], [1.0]),
        "a denominator for each numerator, got 2 numerators and 1 denominators",
    ),
    "more hits than trials": (lambda: wilson_interval(5, 3), "k must be a number from 0 to 3, got 5"),
    "a negative count": (lambda: poisson_interval(-1, 1.0), "count must be a number ≥ 0, got -1"),
    "a confidence of 95": (
        lambda: wilson_interval(1, 3, confidence=95),
        "confidence must be a number from 0 to 1",
    ),
    "one setting, not a list": (
        lambda: vad_preview([_prompt()], {"threshold": 0.5}),
        "settings must be a list of dicts, one per setting",
    ),
    "a prompt's id for the prompts": (
        lambda: vad_preview("short_question", [{}]),
        "prompts must be labelled prompts, e.g. list(vlab.prompts.load_prompt_set()), got 'short_question'",
    ),
    "a prompt's id for a prompt": (
        lambda: score_prompt("short_question", pd.DataFrame()),
        "score_prompt takes a labelled prompt, e.g. prompts['short_question'] with prompts = ",
    ),
    "a tolerance below 0 for a score": (
        lambda: score_prompt(_prompt(), pd.DataFrame(), tolerance_ms=-250.0),
        "tolerance_ms must be a number ≥ 0, got -250.0",
    ),
    "a threshold in words": (
        lambda: vad_preview([_prompt()], [{"threshold": "high"}]),
        "a setting's threshold must be a number, got 'high'",
    ),
    "a cut-off rate in percent": (
        lambda: latency_at_cutoff(_points(), (20,)),  # was 835 ms, as if 20 meant 2000 %
        "each of rates (a fraction: 0.05 is 5 %) must be a number from 0 to 1, got 20",
    ),
    "one rate, not a list": (
        lambda: latency_at_cutoff(_points(), 0.1),
        "rates must be a list of numbers, e.g. [0.05, 0.1], got 0.1",
    ),
    "a budget as a string": (
        lambda: cutoff_at_latency(_points(), "600"),
        "budgets_ms must be a list of numbers",
    ),
    "a negative budget": (
        lambda: cutoff_at_latency(_points(), [-5]),
        "each of budgets_ms (dead air, in ms) must be a number ≥ 0, got -5",
    ),
    "a DER step of 0": (
        lambda: detection_error_rate([(0.0, 100.0)], [], 1000.0, step_ms=0),  # was ZeroDivisionError
        "step_ms must be a number ≥ 0.001, got 0",
    ),
    "a negative duration": (
        lambda: detection_error_rate([(0.0, 100.0)], [], -5.0),  # was a DER of 1.0
        "duration_ms must be a number ≥ 0, got -5.0",
    ),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_an_argument_a_metric_cannot_use_is_refused_and_named(case):
    call, said = CALLS[case]
    with pytest.raises(ConfigError) as info:
        call()
    assert said in str(info.value)


def test_the_figures_of_good_arguments_are_unchanged_at_the_edges():
    assert all(map(math.isnan, wilson_interval(0, 0)))  # no trials, no proportion
    assert wilson_interval(3, 3)[1] == 1.0 and wilson_interval(0, 3)[0] == 0.0
    assert all(map(math.isnan, poisson_interval(0, 0.0)))  # no time observed
    assert all(map(math.isnan, bootstrap_ci([], 0.5)))


def test_vad_preview_reads_prompts_and_settings_given_as_generators_once():
    prompts = [_prompt()]
    settings = [{"silence_duration_ms": 300}, {"silence_duration_ms": 800}]
    listed = vad_preview(prompts, settings)
    generated = vad_preview((p for p in prompts), (s for s in settings))  # was: no detection at all
    assert len(listed) == 2 and generated.equals(listed)
