"""Cassettes: a run recorded against the emulator replays to an unmodified SDK client (through
vlab's Session) with the same server events at the same offsets; a client that diverges is told so."""

from __future__ import annotations

import json
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
            error = (await session.wait_for("error", timeout_s=20))[-1]
            frame = session.frame()
        assert error.error.code == DIVERGENCE_CODE
        assert "audio differs from the recording at" in error.error.message
        assert "response.created" not in set(frame["type"])  # nothing past the divergence
        assert "cassette replay stopped" in caplog.text

        changed = SessionSettings(turn_detection=ServerVad(silence_duration_ms=700))
        async with Session(changed, endpoint=emu.endpoint, api_key=emu.api_key) as session:
            error = (await session.wait_for("error", timeout_s=20))[-1]
        assert "differs from the recording in: turn_detection" in error.error.message


def test_a_run_without_its_input_audio_is_no_cassette(tmp_path):
    (tmp_path / "events.jsonl").write_text("")
    with pytest.raises(ConfigError, match="input.wav"):
        load_cassette(tmp_path)


def test_the_emulator_command_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    from vlab.cli import main

    assert main(["emulator", "--replay", str(tmp_path), "--port", "0"]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def _without(events: list[tuple[str, float]], kind: str = "session.updated") -> list[tuple[str, float]]:
    return [e for e in events if e[0] != kind]


async def test_a_client_that_says_nothing_of_its_timeline_gets_the_events_at_their_offsets(
    recorded, tmp_path
):
    cassette = load_cassette(recorded)
    async with Emulator(speed=8, cassette=cassette) as emu:
        async with Session(
            SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key, run_dir=tmp_path / "live"
        ) as s:
            await s.stream_audio(_audio(), speed=8)  # paced, no vlab timeline markers
            await s.wait_for("response.done", count=2, timeout_s=30)
    before = _without(_server(recorded))
    after = _without(_server(tmp_path / "live"))
    last = max(i for i, (t, _) in enumerate(before) if t == "response.done")
    assert after[: last + 1] == before[: last + 1]


async def test_a_run_recorded_on_the_clients_clock_replays_to_a_vlab_client(recorded, tmp_path):
    """A run as against Azure: no simulated times and no timeline markers. Its events go out at the input
    audio sent when they arrived, and the replay answers the replaying vlab client's markers itself."""
    azure_like = tmp_path / "azure-like"
    for path in recorded.rglob("*"):
        if path.is_file() and path.name not in ("events.parquet", "events.jsonl"):
            target = azure_like / path.relative_to(recorded)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    records, updates, answered = [], [], 0
    for line in (recorded / "events.jsonl").read_text().splitlines():
        record = json.loads(line)
        payload = json.loads(record["payload"])
        if record["type"] == "session.update":
            updates.append(set(payload["session"]) == {"metadata"})
            if updates[-1]:
                continue  # a timeline marker: Azure gets none
        if record["type"] == "session.updated":
            answered += 1
            if updates[answered - 1]:
                continue  # the emulator's answer to a marker
        records.append({**record, "sim_ms": None})
    (azure_like / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cassette = load_cassette(azure_like)
    assert (
        not any(e.marker for e in cassette.events) and cassette.events[0].event["type"] == "session.created"
    )
    async with Emulator(speed="max", cassette=cassette) as emu:
        await _run(tmp_path / "replayed", emu, _audio())  # sends markers: answered by the replay
    replayed = _server(tmp_path / "replayed")
    assert _without(replayed) == [
        (e.event["type"], round(e.at_ms, 3)) for e in cassette.events if e.event["type"] != "session.updated"
    ]
    assert sum(t == "session.updated" for t, _ in replayed) == 3  # the settings', and the two markers'
