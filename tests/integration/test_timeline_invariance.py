"""One timeline: the same prompts and settings give the same decisions and figures at any replay speed.

The emulator decides on its simulated timeline and vlab measures on it (docs/timeline.md), so a sweep
at speed 4 and one as fast as possible must agree exactly: the same server events at the same
simulated times, the same turns, the same cut-off classifications and the same latencies. The
benchmark ``benchmarks/bench_timeline.py`` checks the whole bundled set, at speed 1, and under load.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from vlab.log import load_log
from vlab.protocol import SPEECH_STARTED
from vlab.sweep import run_sweep

PROMPTS = ["pause_600", "two_turns", "short_question"]
SETTINGS = [200, 700]  # silence_duration_ms: one that cuts the pause off, one that waits it out
FIGURES = ["voice_to_voice_ms", "endpointing_ms", "turn_commit_ms", "ttfb_audio_ms", "dead_air_ms", "ttft_ms"]


def _sweep(out, speed):
    cfg = {
        "target": {"speed": speed, "latency": "typical"},
        "prompts": {"include": PROMPTS},
        "grid": {"threshold": [0.5], "silence_duration_ms": SETTINGS},
        "run": {"repeats": 1, "concurrency": 4, "timeout_s": 60, "baseline": False},
    }
    result = run_sweep(cfg, out, progress=False, session_options={"dotenv_path": False})
    assert [c.status for c in result.cells] == ["ok"] * len(PROMPTS) * len(SETTINGS)
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("invariance")
    return {speed: (root / str(speed), _sweep(root / str(speed), speed)) for speed in ("max", 4)}


COLUMNS = ["type", "sim_ms", "audio_start_ms", "audio_end_ms", "audio_ms", "text"]
REACTION_REPLIES = ["conversation.item.truncated"]
"""Answers to what the client did in reaction to an event (its barge-in truncation): the client sends
the reaction at a wall-clock moment, so only the answer's content is the same at every speed, not its
time (docs/timeline.md, "Limits")."""


def _server_events(cell_dir):
    events = load_log(cell_dir)
    server = events[events["direction"] == "server"]
    reactions = server["type"].isin(REACTION_REPLIES)
    return (
        server.loc[~reactions, COLUMNS].reset_index(drop=True),
        server.loc[reactions, ["type", "item_id", "audio_end_ms"]]
        .sort_values("item_id")
        .reset_index(drop=True),
    )


def test_every_cell_sends_the_same_events_at_the_same_simulated_times(runs):
    (fast_dir, fast), (slow_dir, _) = runs["max"], runs[4]
    reactions = 0
    for cell in fast.cells:
        a, a_reactions = _server_events(fast_dir / "cells" / cell.cell)
        b, b_reactions = _server_events(slow_dir / "cells" / cell.cell)
        pd.testing.assert_frame_equal(a, b, obj=cell.cell)
        assert len(a_reactions) == len(b_reactions), cell.cell
        assert a_reactions["audio_end_ms"].tolist() == b_reactions["audio_end_ms"].tolist(), cell.cell
        reactions += len(a_reactions)
    assert reactions  # the 200 ms setting cuts a reply off, and the session truncates it: both runs say where


def test_turns_cutoffs_and_latencies_are_the_same_at_every_speed(runs):
    fast, slow = (pd.read_parquet(runs[s][0] / "turns.parquet") for s in ("max", 4))
    key = ["cell", "turn"]
    fast, slow = fast.sort_values(key).reset_index(drop=True), slow.sort_values(key).reset_index(drop=True)
    assert (fast["timeline"] == "simulated").all() and (slow["timeline"] == "simulated").all()
    pd.testing.assert_frame_equal(
        fast[[*key, "audio_end_ms", "status"]], slow[[*key, "audio_end_ms", "status"]]
    )
    assert fast["false_cutoff"].tolist() == slow["false_cutoff"].tolist()
    assert fast["false_cutoff"].any()  # the 200 ms setting does cut the pause off: the test can fail
    for name in FIGURES:
        a, b = fast[name].to_numpy(float), slow[name].to_numpy(float)
        assert (np.isnan(a) == np.isnan(b)).all(), name
        both = ~np.isnan(a)
        assert both.any(), name
        assert np.abs(a[both] - b[both]).max() <= 1.0, name


def test_sweep_scores_are_the_same_at_every_speed(runs):
    fast, slow = (pd.read_parquet(runs[s][0] / "scores.parquet") for s in ("max", 4))
    key = ["setting", "prompt"]
    fast, slow = fast.sort_values(key).reset_index(drop=True), slow.sort_values(key).reset_index(drop=True)
    numeric = [c for c in fast.columns if pd.api.types.is_numeric_dtype(fast[c])]
    for column in numeric:
        a, b = fast[column].to_numpy(float), slow[column].to_numpy(float)
        same = np.isclose(a, b, atol=1.0, equal_nan=True)
        assert same.all(), (column, a[~same], b[~same])
    assert math.isfinite(float(fast[numeric].abs().sum().sum()))
    # a cut-off reply counts the audio it sent before it stopped, on the simulated timeline
    assert fast["total_tokens"].tolist() == slow["total_tokens"].tolist()


async def _two_prompts(speed):
    from vlab import ServerVad, Session, SessionSettings
    from vlab.audio.pcm import silence
    from vlab.feed import feed_prompt
    from vlab.metrics import turn_latency
    from vlab.prompts import load_prompt_set

    prompts = {p.id: p for p in load_prompt_set()}
    settings = SessionSettings(turn_detection=ServerVad(silence_duration_ms=500))
    async with Session(settings, dotenv_path=False, emulator_options={"speed": speed}) as s:
        for pid in (
            "short_question",
            "two_turns",
        ):  # one session, two prompts, as the session panel sends them
            await feed_prompt(s, prompts[pid].pcm(24000) + silence(1200, 24000), speed=speed, timeout_s=60)
        return turn_latency(s.frame())


async def test_a_session_that_takes_several_prompts_measures_the_same_at_every_speed():
    fast, slow = await _two_prompts(math.inf), await _two_prompts(4.0)
    assert len(fast) == len(slow) == 3 and (fast["timeline"] == "simulated").all()
    assert fast["audio_end_ms"].tolist() == slow["audio_end_ms"].tolist()
    assert fast["audio_end_ms"].is_monotonic_increasing  # the second prompt follows the first's answer
    for name in FIGURES:
        assert np.allclose(
            fast[name].to_numpy(float), slow[name].to_numpy(float), atol=1.0, equal_nan=True
        ), name
    assert (fast["voice_to_voice_ms"] > 300).all()  # the modelled latency, not a compressed one


def test_end_of_utterance_holds_are_decided_alike_at_every_speed(tmp_path):
    """The end-of-utterance check reads the turn's words before the turn may end: simulated time waits for
    the recognizer, however long it takes at this speed and load, so each hold ends where it ended before.

    In pause_1200 speech resumes 16 ms before the 1200 ms timeout runs out, and the VAD decides that onset
    only after its shortest speech: at speed 4 the VAD had decided the deadline's audio first and ended
    the turn there, at max it found the onset first and went on. Both go on now.
    """
    runs = {}
    for speed in ("max", 4):
        cfg = {
            "target": {"speed": speed, "latency": "typical"},
            "prompts": {"include": ["pause_600", "pause_1200"]},  # "…a table for": held for more
            "grid": {"silence_duration_ms": [300], "eou_timeout_ms": [1200]},
            "run": {"timeout_s": 60},
        }
        result = run_sweep(cfg, tmp_path / str(speed), progress=False, session_options={"dotenv_path": False})
        assert [c.status for c in result.cells] == ["ok", "ok"]
        runs[speed] = result
    for cell in runs["max"].cells:
        fast, _ = _server_events(tmp_path / "max" / "cells" / cell.cell)
        slow, _ = _server_events(tmp_path / "4" / "cells" / cell.cell)
        pd.testing.assert_frame_equal(fast, slow, obj=cell.cell)
    fast, slow = (pd.read_parquet(tmp_path / s / "scores.parquet") for s in ("max", "4"))
    assert fast["cutoff_turns"].tolist() == slow["cutoff_turns"].tolist() == [0, 0]  # the pauses are held
    assert fast["dead_air_ms"].tolist() == slow["dead_air_ms"].tolist()


async def _cancelled_by_the_session(speed):
    from vlab import ServerVad, Session, SessionSettings
    from vlab.feed import feed_prompt
    from vlab.prompts import load_prompt_set

    prompts = {p.id: p for p in load_prompt_set()}
    settings = SessionSettings(turn_detection=ServerVad(silence_duration_ms=300, interrupt_response=False))
    async with Session(
        settings, dotenv_path=False, emulator_options={"speed": speed, "latency": "typical"}
    ) as s:
        for pid in ("pause_600", "interruption"):  # the 300 ms setting replies in the pause; the user goes on
            await feed_prompt(s, prompts[pid].pcm(24000), speed=speed, timeout_s=60)
        events = s.frame()
    server = events[events["direction"] == "server"]
    # the answers to the feed's requests to sync: it asks again after a cancel, which at speed 4 it may
    # have sent before the first request (the emulator had reached the end of the audio by then)
    asides = server["type"].isin([*REACTION_REPLIES, "session.updated"])
    return server.loc[~asides, COLUMNS].reset_index(drop=True), server


async def test_a_reply_the_session_cancels_itself_is_cut_where_the_user_spoke_at_every_speed():
    # with interrupt_response off the session sends the cancel; it landed where the client's audio had got
    # to when it arrived: at max the end of the prompt, so the reply ran on (completed, its audio whole)
    (fast, fast_server), (slow, _) = (
        await _cancelled_by_the_session(math.inf),
        await _cancelled_by_the_session(4.0),
    )
    pd.testing.assert_frame_equal(fast, slow)
    done = fast_server[fast_server["type"] == "response.done"]
    statuses = [json.loads(p)["response"]["status"] for p in done["payload"]]
    assert "cancelled" in statuses
    for at_ms, status in zip(done["sim_ms"], statuses, strict=True):
        if status == "cancelled":  # at the user's speech_started, the moment the session heard it
            started = fast_server[(fast_server["type"] == SPEECH_STARTED) & (fast_server["sim_ms"] <= at_ms)]
            assert at_ms == started["sim_ms"].max()


@pytest.mark.parametrize(("prompt_id", "silence_ms"), [("interruption", 300), ("pause_600", 650)])
async def test_speech_before_a_reply_is_seen_to_start_holds_no_time(prompt_id, silence_ms):
    # the user spoke again between the end of a turn and its response.created: the emulator held time for
    # a cancel the session never sends (it cancels only a reply it has seen start), and the feed timed out
    from vlab import ServerVad, Session, SessionSettings
    from vlab.feed import feed_prompt
    from vlab.prompts import load_prompt_set

    prompts = {p.id: p for p in load_prompt_set()}
    vad = ServerVad(silence_duration_ms=silence_ms, interrupt_response=False)
    options = {"speed": math.inf, "latency": "typical"}
    async with Session(SessionSettings(turn_detection=vad), dotenv_path=False, emulator_options=options) as s:
        await feed_prompt(s, prompts[prompt_id].pcm(24000), speed=math.inf, timeout_s=10)
        done = [r for r in s.records if r.type == "response.done"]
    assert done and s.records[-1].type == "session.updated"  # answered to the end, not timed out
