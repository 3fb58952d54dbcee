"""The VAD-only sweep's audio and batching, in process (the equality with a session sweep is an integration test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlab.audio.pcm import silence
from vlab.audio.processing import ProcessingSettings
from vlab.audio.silero_serve import probabilities_here
from vlab.audio.vad import SileroModel
from vlab.prompts import load_prompt_set
from vlab.settings import ServerVad, SessionSettings
from vlab.sweep import vad as sweep_vad

RATE = 24000


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def test_each_trailing_silence_gets_the_frames_of_the_prompt_followed_by_that_silence_alone(model):
    # One send: the prompt, then the silences as pieces. Each tail's frames must be those of the prompt
    # and that tail sent whole, no more (a session of that setting hears no longer a silence).
    prompt = next(p for p in load_prompt_set() if p.id == "two_turns")
    tails = [200, 700, 1500]
    probs = sweep_vad._probabilities([prompt], RATE, "pcm16", tails, ProcessingSettings(), model, None)[
        prompt.id
    ]
    assert len(probs) == len(tails)
    for tail, got in zip(tails, probs, strict=True):
        (alone,) = probabilities_here([[prompt.pcm(RATE) + silence(tail, RATE)]], RATE, model)
        np.testing.assert_array_equal(got, np.concatenate(alone))
    assert len(probs[0]) < len(probs[1]) < len(probs[2])


def test_prompts_decided_in_small_batches_decide_as_in_one(model, monkeypatch):
    prompts = load_prompt_set()[:5]
    settings = [SessionSettings(turn_detection=ServerVad(silence_duration_ms=ms)) for ms in (200, 800)]
    cells = [(f"s{i}/{p.id}", i, s, p, 0) for i, s in enumerate(settings) for p in prompts]
    whole = sweep_vad.vad_cells(cells, None)
    monkeypatch.setattr(sweep_vad, "PROMPTS_PER_BATCH", 2)
    batches: list[list[str]] = []
    batched = sweep_vad.vad_cells(cells, None, batches.append)
    # both settings share the input rate and processing: one group, batches of 2, 2 and 1 prompts
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(n for b in batches for n in b) == sorted(c[0] for c in cells)
    assert batched.keys() == whole.keys()
    for name in whole:
        pd.testing.assert_frame_equal(batched[name]["vad"], whole[name]["vad"])
        pd.testing.assert_series_equal(pd.Series(batched[name]["score"]), pd.Series(whole[name]["score"]))
    assert sum(len(out["vad"]) for out in whole.values()) >= len(cells)  # every prompt has a turn
