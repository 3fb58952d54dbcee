"""The calibration paths of the command line, run as a user would: `vlab emulator --latency latency.json`
and `vlab emulator --replay RUN` (a subprocess on a free port, answering a client), and `vlab sweep` with
a fitted `[target] latency`."""

from __future__ import annotations

import asyncio
import html
import json
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pandas as pd
import pytest

from vlab.emulator.fitted_latency import Empirical, FittedLatency
from vlab.feed import feed_prompt
from vlab.log import load_log
from vlab.metrics import turn_latency
from vlab.metrics.events import payload_of
from vlab.protocol import DECIDED_MS_KEY
from vlab.session import Session
from vlab.settings import ServerVad, SessionSettings
from vlab.testing import fast_emulator, spoken_prompt

SETTINGS = SessionSettings(turn_detection=ServerVad(silence_duration_ms=400))
_ENDPOINT = "export AZURE_VOICELIVE_ENDPOINT="
_KEY = "export AZURE_VOICELIVE_API_KEY="
_NOTE = (
    "fitted:latency.json (fitted from 3 runs against x.services.ai.azure.com, 2026-03-01 to 2026-03-04; {}"
)


@asynccontextmanager
async def _vlab_emulator(*args: str) -> AsyncIterator[tuple[str, str, list[str]]]:
    """Start `vlab emulator ARGS --port 0`; yield its endpoint, key and what it printed before serving."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vlab",
        "emulator",
        *args,
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        printed: list[str] = []
        while not any(line.startswith("Press Ctrl-C") for line in printed):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)  # the startup, printed
            if not line:
                raise AssertionError(f"vlab emulator exited: {(await proc.stderr.read()).decode()}")
            printed.append(line.decode().strip())
        endpoint = next(x.removeprefix(_ENDPOINT) for x in printed if x.startswith(_ENDPOINT))
        key = next(x.removeprefix(_KEY) for x in printed if x.startswith(_KEY))
        yield endpoint, key, printed
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()  # read its pipes to the end, so they close on this loop (3.10 warned)


async def _run(run_dir: Path, endpoint: str, api_key: str, pcm: bytes) -> None:
    async with Session(SETTINGS, endpoint=endpoint, api_key=api_key, run_dir=run_dir) as session:
        await feed_prompt(session, pcm, speed=math.inf, timeout_s=60)


def _constant(ms: float) -> Empirical:
    return Empirical.fit([ms] * 60)


def _fitted() -> FittedLatency:
    """A fitted model whose every stage is a constant, so each measured figure shows it was drawn from."""
    return FittedLatency(
        stages={
            "endpointing": _constant(222),
            "commit": _constant(177),
            "first_text": _constant(333),
            "first_audio": _constant(111),
            "audio_rate": _constant(2.5),
            "network": _constant(44),
        },
        provenance={
            "runs": [{"run": "runs/azure"}] * 3,
            "dates": ["2026-03-01T10:00:00+00:00", "2026-03-04T12:00:00+00:00"],
            "endpoint_hosts": ["x.services.ai.azure.com"],
        },
    )


async def test_vlab_emulator_latency_serves_the_fitted_model(tmp_path):
    path = _fitted().save(tmp_path / "latency.json")
    async with _vlab_emulator("--latency", str(path), "--speed", "max") as (endpoint, key, printed):
        assert f"latency model: {_NOTE.format(path)})" in printed
        prompt = spoken_prompt("Hello there.", lead_ms=300, trail_ms=1500)
        await _run(tmp_path / "run", endpoint, key, prompt.pcm)
    events = load_log(tmp_path / "run")
    (turn,) = turn_latency(events).itertuples()
    assert turn.timeline == "simulated"
    assert turn.uplink_ms == pytest.approx(222, abs=1e-3)  # endpointing
    assert turn.turn_commit_ms == pytest.approx(177, abs=1e-3)
    assert turn.ttft_ms == pytest.approx(333, abs=1e-3)
    assert turn.ttfb_audio_ms - turn.ttft_ms == pytest.approx(111, abs=1e-3)
    started = events[events["type"] == "input_audio_buffer.speech_started"].iloc[0]
    assert started["sim_ms"] - payload_of(started["payload"])[DECIDED_MS_KEY] == pytest.approx(44, abs=1e-3)
    deltas = events[events["type"] == "response.audio.delta"]
    span = deltas["sim_ms"].iloc[-1] - deltas["sim_ms"].iloc[0]
    assert deltas["audio_ms"].iloc[:-1].sum() / span == pytest.approx(2.5, rel=1e-3)  # audio_rate


async def test_vlab_emulator_replay_answers_with_the_recorded_events(tmp_path):
    audio = spoken_prompt("What is the weather like in Seattle today?", lead_ms=300, trail_ms=1500).pcm
    async with fast_emulator(latency="typical", hear_audio=False) as emu:
        await _run(tmp_path / "recorded", emu.endpoint, emu.api_key, audio)
    recorded = load_log(tmp_path / "recorded")
    server = recorded[recorded["direction"] == "server"]

    async with _vlab_emulator("--replay", str(tmp_path / "recorded"), "--speed", "max") as (
        endpoint,
        key,
        printed,
    ):
        assert f"replaying {len(server)} recorded server events of {tmp_path / 'recorded'}" in printed
        assert not any(line.startswith("latency model:") for line in printed)  # a replay draws nothing
        await _run(tmp_path / "replayed", endpoint, key, audio)
    replayed = load_log(tmp_path / "replayed")
    again = replayed[replayed["direction"] == "server"]
    assert list(zip(again["type"], again["sim_ms"], strict=True)) == list(
        zip(server["type"], server["sim_ms"], strict=True)
    )
    # the recorded ids, not new ones: the events are the recording's
    assert again["response_id"].dropna().unique().tolist() == server["response_id"].dropna().unique().tolist()
    assert "response.done" in set(again["type"])


def test_a_sweep_with_a_fitted_latency_model_runs_on_it_and_names_it(tmp_path):
    _fitted().save(tmp_path / "models" / "latency.json")
    (tmp_path / "sweep.toml").write_text(
        '[target]\nspeed = "max"\nlatency = "models/latency.json"\n'
        '[prompts]\ninclude = ["short_question"]\n'
        "[grid]\nsilence_duration_ms = [500]\n"
        "[run]\nbaseline = false\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "vlab", "sweep", "sweep.toml", "--out", "out", "--no-progress", "--report"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the latency file is found relative to the folder the sweep runs in
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "models" / "latency.json"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["latency"] == str(path)
    assert manifest["latency_model"]["name"] == "fitted:latency.json"
    assert manifest["latency_model"]["file"] == str(path) and manifest["latency_model"]["runs"] == 3
    assert manifest["latency_model"]["endpoint_hosts"] == ["x.services.ai.azure.com"]
    report = (tmp_path / "out" / "report.html").read_text()
    assert html.escape(f"latency model: {_NOTE.format(path)})") in report
    # the cells ran on the fitted model
    turns = pd.read_parquet(tmp_path / "out" / "turns.parquet")
    answered = turns[turns["turn_commit_ms"].notna()]
    assert len(answered) >= 1
    assert (answered["turn_commit_ms"] - 177).abs().max() < 1e-3
    assert (answered["ttft_ms"] - 333).abs().max() < 1e-3
