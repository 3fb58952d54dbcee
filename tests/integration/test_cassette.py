"""Cassettes: a run recorded against the emulator replays to an unmodified SDK client (through
vlab's Session) with the same server events at the same offsets; a client that diverges is told so."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from vlab.audio.pcm import silence
from vlab.cassette import load_cassette
from vlab.emulator import Emulator
from vlab.emulator.cassette import DIVERGENCE_CODE
from vlab.errors import ConfigError
from vlab.feed import feed_prompt
from vlab.log import load_log
from vlab.session import Session
from vlab.settings import ServerVad, SessionSettings
from vlab.testing import fast_emulator, spoken_prompt

SETTINGS = SessionSettings(turn_detection=ServerVad(silence_duration_ms=400))


def _audio() -> bytes:
    first = spoken_prompt("What is the weather like in Seattle today?", lead_ms=300, trail_ms=1500)
    second = spoken_prompt("Thank you.", lead_ms=0, trail_ms=1200)
    return first.pcm + second.pcm


async def _run(run_dir: Path, emu: Emulator, pcm: bytes, settings: SessionSettings = SETTINGS) -> None:
    async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, run_dir=run_dir) as session:
        await feed_prompt(session, pcm, speed=math.inf, timeout_s=60)


def _server(run_dir: Path) -> list[tuple[str, float]]:
    events = load_log(run_dir)
    server = events[events["direction"] == "server"]
    return list(zip(server["type"], server["sim_ms"].astype(float), strict=True))


@pytest.fixture
async def recorded(tmp_path: Path) -> Path:
    async with fast_emulator(latency="typical", hear_audio=False) as emu:
        await _run(tmp_path / "recorded", emu, _audio())
    return tmp_path / "recorded"


async def test_a_recorded_run_replays_with_the_same_events_at_the_same_offsets(recorded, tmp_path):
    cassette = load_cassette(recorded)
    assert cassette.notes == ()  # every reply's audio was recorded
    async with Emulator(speed="max", cassette=cassette) as emu:
        await _run(tmp_path / "replayed", emu, _audio())
    before, after = _server(recorded), _server(tmp_path / "replayed")
    assert [t for t, _ in after] == [t for t, _ in before]
    assert sum(t == "response.done" for t, _ in before) == 2
    assert max(abs(a - b) for (_, a), (_, b) in zip(after, before, strict=True)) <= 1.0
    # the replayed audio is the recorded audio
    replayed_out = sorted((tmp_path / "replayed" / "output").glob("*.wav"))
    assert [p.read_bytes() for p in replayed_out] == [
        (recorded / "output" / p.name).read_bytes() for p in replayed_out
    ]


async def test_different_audio_or_settings_get_a_divergence_error_and_nothing_improvised(
    recorded, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="vlab.emulator")
    cassette = load_cassette(recorded)
    other = spoken_prompt("Book a table for two at seven tonight.", lead_ms=300, trail_ms=1500).pcm
    async with Emulator(speed="max", cassette=cassette) as emu:
        async with Session(SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key) as session:
            await session.stream_audio(other + silence(500, 24000), speed=math.inf)
            (error,) = await session.wait_for("error", timeout_s=20)
            frame = session.frame()
        assert error.error.code == DIVERGENCE_CODE
        assert "audio differs from the recording at" in error.error.message
        assert "response.created" not in set(frame["type"])  # nothing past the divergence
        assert "cassette replay stopped" in caplog.text

        changed = SessionSettings(turn_detection=ServerVad(silence_duration_ms=700))
        async with Session(changed, endpoint=emu.endpoint, api_key=emu.api_key) as session:
            (error,) = await session.wait_for("error", timeout_s=20)
        assert "differs from the recording in: turn_detection" in error.error.message


def test_a_run_without_its_input_audio_is_no_cassette(tmp_path):
    (tmp_path / "events.jsonl").write_text("")
    with pytest.raises(ConfigError, match="input.wav"):
        load_cassette(tmp_path)


def test_the_emulator_command_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    from vlab.cli import main

    assert main(["emulator", "--replay", str(tmp_path), "--port", "0"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
