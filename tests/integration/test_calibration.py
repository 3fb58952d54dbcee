"""Round trip: runs against an emulator with a known latency model (standing in for Azure) go through
``vlab calibrate``; a second emulator using the fitted model reproduces every stage it can measure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vlab.audio.pcm import silence
from vlab.audio.vad import EnergyModel
from vlab.calibrate import calibrate, ks_two_sample, stage_samples
from vlab.cli import main
from vlab.emulator.latency import LatencyModel, StageDelay
from vlab.feed import feed_prompt
from vlab.session import Session
from vlab.settings import SessionSettings
from vlab.testing import spoken_prompt

STAND_IN = LatencyModel(
    name="stand-in",
    stages={
        "endpointing": StageDelay(70, 25),
        "commit": StageDelay(140, 30),
        "first_token": StageDelay(320, 40),
        "tts_first_byte": StageDelay(90, 20),
        "network": StageDelay(25, 8),
    },
    tts_realtime_factor=3.0,
    tts_realtime_jitter=1.0,
    seed=7,
)
"""Not a preset: slower stages, and audio streamed 3x to about 6x (rather than 5x) faster than real time,
drawn per response."""
TURNS = 210
MS_STAGES = ("endpointing", "commit", "first_text", "first_audio", "network")
RATE_TOLERANCE = 0.05
"""``audio_rate`` is a ratio (x real time): its p50 and p90 must agree within 5 % of the source's."""
CHUNK_MS = 200
"""The user's audio goes in 200 ms appends, not the 20 ms of a live microphone: the stages are measured on
the simulated timeline, which does not depend on how the audio is cut (the stages' quantiles came out the
same to the microsecond at 20, 100 and 200 ms), and 10x fewer appends halve the CPU of this file (29 s to
16 s on a 2-core machine, 2026-12-03)."""


async def _record(
    run_dir: Path, latency: LatencyModel | str, turns: int = TURNS, settings: SessionSettings | None = None
) -> None:
    """One session of ``turns`` short user turns (1.8 s apart) on the input timeline, logged to ``run_dir``."""
    prompt = spoken_prompt("Hello there.", lead_ms=300, trail_ms=0)
    audio = (prompt.pcm + silence(1800, prompt.sample_rate)) * turns
    options = {"speed": math.inf, "latency": latency, "hear_audio": False, "vad_model_factory": EnergyModel}
    async with Session(
        settings or SessionSettings(), run_dir=run_dir, emulator_options=options, record_audio=False
    ) as session:
        await feed_prompt(
            session,
            audio,
            speed=math.inf,
            timeout_s=110,
            send=lambda pcm: session.stream_audio(pcm, speed=math.inf, chunk_ms=CHUNK_MS),
        )


@pytest.mark.slow
@pytest.mark.timeout(400)  # two 210-turn sessions: about 14 s of CPU, longer on a shared machine
async def test_a_fitted_model_reproduces_each_stage_of_the_runs_it_was_fitted_on(tmp_path, capsys):
    await _record(tmp_path / "azure", STAND_IN)
    assert main(["calibrate", str(tmp_path / "azure"), "--out", str(tmp_path / "latency.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("fitted from 1 run(s), ")
    assert "network" in printed and "p90" in printed
    assert "warning" not in printed  # every stage, the network too, has its 200+ samples
    assert f"latency model: {tmp_path / 'latency.json'}" in printed
    fitted = json.loads((tmp_path / "latency.json").read_text())
    assert fitted["provenance"]["runs"][0]["endpoint_host"] == "127.0.0.1"
    assert fitted["provenance"]["runs"][0]["timeline"] == "simulated"

    await _record(tmp_path / "offline", str(tmp_path / "latency.json"))
    source = calibrate([tmp_path / "azure"]).samples
    offline = calibrate([tmp_path / "offline"]).samples
    for stage in (*MS_STAGES, "audio_rate"):
        a = source.loc[source["stage"] == stage, "value"]
        b = offline.loc[offline["stage"] == stage, "value"]
        assert len(a) >= 200 and len(b) >= 200, stage
        assert ks_two_sample(a, b)[1] > 0.05, stage
        for q in (0.5, 0.9):
            if stage == "audio_rate":
                assert abs(b.quantile(q) / a.quantile(q) - 1) <= RATE_TOLERANCE, (stage, q)
            else:
                assert abs(a.quantile(q) - b.quantile(q)) <= 10.0, (stage, q)
    # the stand-in is not the default: the fitted model did not just reproduce "typical" ...
    stage = {
        name: source.loc[source["stage"] == name, "value"] for name in ("commit", "network", "audio_rate")
    }
    assert stage["commit"].quantile(0.5) > 150 and stage["network"].quantile(0.5) > 25
    # ... and no stage is a constant that any model matching its median would reproduce
    for name, values in stage.items():
        assert values.quantile(0.9) - values.quantile(0.1) > (0.5 if name == "audio_rate" else 10), name
    rate = offline.loc[offline["stage"] == "audio_rate", "value"]
    assert 2.99 <= rate.min() and rate.quantile(0.9) > 4.0  # drawn from the fitted 3x..6x, not typical's 5x


async def test_the_transcript_s_delay_is_fitted_from_runs_with_transcription_and_drawn_from_the_fit(tmp_path):
    """With input transcription on, each turn's ``transcription_delay_ms`` is a ``transcription`` sample;
    a model fitted on them draws the emulator's transcripts from them (without the stage: at the commit)."""
    stand_in = LatencyModel(name="stand-in", stages={"transcription": StageDelay(600, 200)}, seed=3)
    heard = SessionSettings(transcription="azure-speech")
    await _record(tmp_path / "azure", stand_in, turns=12, settings=heard)
    source = calibrate([tmp_path / "azure"], min_samples=5)
    drawn = source.samples.loc[source.samples["stage"] == "transcription", "value"]
    assert len(drawn) == 12 and drawn.min() >= 600 and drawn.max() - drawn.min() > 50  # the stand-in's draws
    source.model.save(tmp_path / "latency.json")
    await _record(tmp_path / "offline", str(tmp_path / "latency.json"), turns=12, settings=heard)
    offline = calibrate([tmp_path / "offline"], min_samples=5).samples
    again = offline.loc[offline["stage"] == "transcription", "value"]
    assert len(again) == 12 and drawn.min() - 0.01 <= again.min() and again.max() <= drawn.max() + 0.01
    await _record(tmp_path / "instant", "instant", turns=2, settings=heard)
    instant, _ = stage_samples(tmp_path / "instant")
    assert instant.loc[instant["stage"] == "transcription", "value"].tolist() == [0.0, 0.0]  # at the commit


async def test_too_few_samples_are_one_warning_line_after_the_table_that_flags_them(tmp_path, capsys):
    await _record(tmp_path / "short", STAND_IN, 4)
    out = tmp_path / "latency.json"
    assert main(["calibrate", str(tmp_path / "short"), "--out", str(out), "--min-samples", "5"]) == 0
    printed, err = capsys.readouterr()
    flagged = [line.split()[0] for line in printed.splitlines() if line.endswith("<- few samples")]
    assert flagged == [*MS_STAGES[:4], "audio_rate", "network"]
    assert "warning" not in printed and printed.endswith(f"latency model: {out}\n")
    assert err == (
        "vlab: warning: fewer than 5 samples in endpointing (4), commit (4), first_text (4), first_audio (4), "
        "audio_rate (4), network (4): their quantiles (above all p99) are rough; calibrate on more turns\n"
    )


async def test_runs_with_several_voices_and_models_keep_a_split_for_each(tmp_path):
    fast = LatencyModel(name="fast", stages={"commit": StageDelay(50, 5)}, tts_realtime_factor=8.0)
    await _record(tmp_path / "a", STAND_IN, 12, SessionSettings(voice="en-US-AvaNeural", model="model-a"))
    await _record(tmp_path / "b", fast, 12, SessionSettings(voice="en-GB-RyanNeural", model="model-b"))
    fit = calibrate([tmp_path], min_samples=10).model  # 24 turns: every stage has its 10 samples
    assert sorted(fit.by_voice) == ["en-GB-RyanNeural", "en-US-AvaNeural"]
    assert sorted(fit.by_model) == ["model-a", "model-b"]
    assert fit.by_voice["en-GB-RyanNeural"]["audio_rate"].quantile(0.5) == pytest.approx(8.0, rel=0.01)
    ava = fit.by_voice["en-US-AvaNeural"]["audio_rate"]  # the stand-in's 3x + a half-normal draw
    assert 2.99 <= ava.quantile(0.0) < ava.quantile(1.0) < 7.5
    assert (
        fit.by_model["model-b"]["commit"].quantile(1.0)
        <= 60
        < fit.by_model["model-a"]["commit"].quantile(0.5)
    )
    assert fit.stage("audio_rate", voice="en-GB-RyanNeural") is fit.by_voice["en-GB-RyanNeural"]["audio_rate"]
    assert fit.stage("commit", model="model-b") is fit.by_model["model-b"]["commit"]
    assert {r["model"] for r in fit.provenance["runs"]} == {"model-a", "model-b"}
