"""Cassettes: a run recorded against the emulator replays to an unmodified SDK client (through
vlab's Session) with the same server events at the same offsets; a client that diverges is told so."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.ai.voicelive.aio import connect
from azure.core.credentials import AzureKeyCredential

from tests._logs import write_log
from vlab.audio.pcm import float_to_pcm16, pcm16_to_float, resample, silence
from vlab.cassette import load_cassette
from vlab.emulator import Emulator
from vlab.emulator.cassette import AUDIO_TOLERANCE, DIVERGENCE_CLOSE_CODE, DIVERGENCE_CODE, timeline_marker
from vlab.errors import ConfigError, ConnectionFailed
from vlab.feed import feed_prompt
from vlab.log import load_log
from vlab.metrics.events import payload_of
from vlab.protocol import SIM_MS_KEY, TIMELINE_ENDED, TIMELINE_INPUT, TIMELINE_METADATA_KEY
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


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
async def test_a_telephone_run_replays_its_g711_both_ways(tmp_path, fmt):
    # input.wav and output/<item>.wav hold PCM16: the replay compared the client's G.711 bytes with it (a
    # divergence at once) and sent PCM16 bytes as the replies' G.711
    phone = dataclasses.replace(SETTINGS, input_audio_format=fmt, output_audio_format=fmt)
    pcm8 = float_to_pcm16(resample(pcm16_to_float(_audio()), 24000, 8000))
    async with fast_emulator(latency="typical", hear_audio=False) as emu:
        await _run(tmp_path / "recorded", emu, pcm8, phone)
    cassette = load_cassette(tmp_path / "recorded")
    assert (cassette.input_format, cassette.input_rate, cassette.notes) == (fmt, 8000, ())
    async with Emulator(speed="max", cassette=cassette) as emu:
        await _run(tmp_path / "replayed", emu, pcm8, phone)
    before, after = _server(tmp_path / "recorded"), _server(tmp_path / "replayed")
    assert [t for t, _ in after] == [t for t, _ in before] and "error" not in [t for t, _ in after]
    assert max(abs(a - b) for (_, a), (_, b) in zip(after, before, strict=True)) <= 1.0
    replayed_out = sorted((tmp_path / "replayed" / "output").glob("*.wav"))
    assert len(replayed_out) == 2 and [p.read_bytes() for p in replayed_out] == [
        (tmp_path / "recorded" / "output" / p.name).read_bytes() for p in replayed_out
    ]  # the replies, the same once expanded


async def _diverged(emu: Emulator, settings: SessionSettings, audio: bytes = b"") -> tuple[str, Any]:
    """Send ``settings`` and ``audio`` to a replay they diverge from, which closes the connection after its
    error: what the session raised, and its events."""
    session = Session(settings, endpoint=emu.endpoint, api_key=emu.api_key)
    with pytest.raises(ConnectionFailed) as failed:
        async with session:
            if audio:
                await session.stream_audio(audio, speed=math.inf)
            await session.wait_for("response.done", timeout_s=20)  # not before the close: none comes
    frame = session.frame()
    (message,) = frame.loc[frame["type"] == "error", "error_message"]
    assert str(failed.value).startswith(
        f"the server reported an error ({DIVERGENCE_CODE}: {message}) and then "
    )
    assert f"closed the connection (code {DIVERGENCE_CLOSE_CODE}, policy violation)" in str(failed.value)
    return message, frame


async def test_different_audio_or_settings_get_a_divergence_error_and_nothing_improvised(
    recorded, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="vlab.emulator")
    cassette = load_cassette(recorded)
    other = spoken_prompt("Book a table for two at seven tonight.", lead_ms=300, trail_ms=1500).pcm
    async with Emulator(speed="max", cassette=cassette, trace=True) as emu:
        message, frame = await _diverged(emu, SETTINGS, other + silence(500, 24000))
        assert "audio differs from the recording at" in message
        assert "response.created" not in set(frame["type"])  # nothing past the divergence
        assert "cassette replay stopped" in caplog.text
        assert emu.trace is not None
        (diverged,) = emu.trace.of_kind("cassette")
        assert diverged["event"] == "diverged" and diverged["what"].startswith("the client's audio differs")
        assert diverged["what"] in message

        changed = SessionSettings(turn_detection=ServerVad(silence_duration_ms=700))
        message, _ = await _diverged(emu, changed)
        assert "differs from the recording in: turn_detection" in message


async def test_audio_within_the_tolerance_is_the_recording_and_the_first_sample_beyond_it_is_named(recorded):
    cassette = load_cassette(recorded)
    assert cassette.input_rate == 24000
    samples = np.frombuffer(cassette.input_audio, "<i2").astype(np.int32)
    toward_zero = np.where(samples < 0, 1, -1)  # no sample leaves the PCM16 range
    sent = samples + toward_zero * AUDIO_TOLERANCE  # every sample as far off as still counts as the same
    sent[24240:] += toward_zero[24240:]  # and one more from 1010 ms on (within a 20 ms append)
    async with Emulator(speed="max", cassette=cassette) as emu:
        message, _ = await _diverged(emu, SETTINGS, sent.astype("<i2").tobytes())
    assert "the client's audio differs from the recording at 1010 ms of input audio" in message


def test_only_an_update_that_sets_nothing_but_the_timeline_is_a_marker():
    def update(**session: Any) -> dict[str, Any]:
        return {"type": "session.update", "session": session}

    assert timeline_marker(update(metadata={TIMELINE_METADATA_KEY: TIMELINE_INPUT})) == TIMELINE_INPUT
    assert (
        timeline_marker(update(metadata={TIMELINE_METADATA_KEY: TIMELINE_ENDED, "run": "a"}))
        == TIMELINE_ENDED
    )
    assert timeline_marker(update(metadata={TIMELINE_METADATA_KEY: "fast"})) is None  # not a mode
    assert (
        timeline_marker(update(voice={"name": "x"}, metadata={TIMELINE_METADATA_KEY: TIMELINE_INPUT})) is None
    )
    assert (
        timeline_marker({"type": "input_audio_buffer.append", "metadata": {TIMELINE_METADATA_KEY: "input"}})
        is None
    )
    assert timeline_marker(update()) is None


def test_a_session_updated_that_no_recorded_update_asked_for_answers_no_marker(tmp_path):
    marker = {"type": "session.update", "session": {"metadata": {TIMELINE_METADATA_KEY: TIMELINE_INPUT}}}
    updated = {"type": "session.updated", "session": {}}
    run = write_log(
        tmp_path / "run",
        (0, "server", "session.created", {"payload": json.dumps({"type": "session.created", "session": {}})}),
        (0, "client", "session.update", {"payload": json.dumps(marker)}),
        (5, "server", "session.updated", {"payload": json.dumps(updated)}),
        (9, "server", "session.updated", {"payload": json.dumps(updated)}),  # its update was not logged
    )
    with wave.open(str(run / "input.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(bytes(480))
    cassette = load_cassette(run)
    assert [e.marker for e in cassette.events] == [None, TIMELINE_INPUT, None]
    assert cassette.client_events == () and cassette.input_audio == bytes(480)


async def test_a_run_whose_session_never_connected_is_no_cassette(tmp_path):
    with pytest.raises(ConnectionFailed):
        async with Session(endpoint="http://127.0.0.1:9", api_key="k", run_dir=tmp_path, dotenv_path=False):
            pass  # never reached: nothing listens on port 9
    with pytest.raises(ConfigError) as info:
        load_cassette(tmp_path)
    assert str(info.value) == (
        f"{str(tmp_path)!r} holds no session.created: its session never connected, so there is nothing to "
        "replay. Give the run folder of a session that did"
    )


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


def _azure_like(recorded: Path, tmp_path: Path) -> Path:
    """The recorded run as against Azure: no simulated times and no timeline markers. Its events go out at
    the input audio sent when they arrived.

    The recording is the emulator's, fed at speed max, so each event is given the arrival a real-time
    client would have seen: the append that reached its simulated time."""
    azure_like = tmp_path / "azure-like"
    for path in recorded.rglob("*"):
        if path.is_file() and path.name not in ("events.parquet", "events.jsonl"):
            target = azure_like / path.relative_to(recorded)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    lines = [json.loads(line) for line in (recorded / "events.jsonl").read_text().splitlines()]
    appends = [r for r in lines if r["direction"] == "client" and r["type"] == "input_audio_buffer.append"]
    records, updates, answered = [], [], 0
    for record in lines:
        payload = json.loads(record["payload"])
        if record["type"] == "session.update":
            updates.append(set(payload["session"]) == {"metadata"})
            if updates[-1]:
                continue  # a timeline marker: Azure gets none
        if record["type"] == "session.updated":
            answered += 1
            if updates[answered - 1]:
                continue  # the emulator's answer to a marker
        if record["direction"] == "server" and (record["sim_ms"] or 0) > 0:
            # It arrives as a real-time client's audio reaches its simulated time: stamped with the send
            # time of the append that got there (the recorded arrival raced the audio sent at speed max).
            reached = next((a for a in appends if a["audio_end_ms"] >= record["sim_ms"]), appends[-1])
            record = {**record, "t_ns": reached["t_ns"]}
        records.append({**record, "sim_ms": None})
    (azure_like / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return azure_like


async def test_a_run_recorded_on_the_clients_clock_replays_to_a_vlab_client(recorded, tmp_path):
    """The replay answers the replaying vlab client's markers itself."""
    azure_like = _azure_like(recorded, tmp_path)
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


CHUNK_BYTES = 4800
"""100 ms of 24 kHz PCM16 per append."""


async def test_an_sdk_client_gets_each_recorded_event_when_its_audio_reaches_the_recorded_offset(recorded):
    """A bare SDK client (no vlab Session) in lockstep: after each 100 ms of audio it waits for every recorded
    event up to there. Each comes once the audio reaches its offset, never before, and before the next chunk."""
    cassette = load_cassette(recorded)
    at = [e.at_ms for e in cassette.events]
    assert at == sorted(at)  # the recording is in time order
    audio = _audio()
    total_ms = len(audio) / 48.0
    received: list[tuple[dict[str, Any], float]] = []  # each event, with the input audio sent when it came
    sent_ms = 0.0
    markers: list[str] = []
    reacted = 0
    arrived = asyncio.Event()

    # the recording's other client events (a barge-in's truncate), each sent when the events before it came
    log = load_log(recorded)
    client = log[
        (log["direction"] == "client") & ~log["type"].isin(["input_audio_buffer.append", "session.update"])
    ]
    reactions = [
        {"type": kind, **payload_of(p)} for kind, p in zip(client["type"], client["payload"], strict=True)
    ]
    assert [e["type"] for e in reactions] == [e["type"] for e in cassette.client_events[1:]]

    def due() -> int:
        """Recorded events due once the client has sent ``sent_ms`` of audio, its markers and reactions."""
        n = 0
        for e in cassette.events:
            if (
                e.at_ms > sent_ms
                or e.after > 1 + reacted
                or (e.marker is not None and e.marker not in markers)
            ):
                break
            n += 1
        return n

    async def wait_for(n: int) -> None:
        while len(received) < n:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), timeout=20)

    async def catch_up(conn: Any) -> None:
        """Wait for every event due; send a reaction the next event waits for, and wait again."""
        nonlocal reacted
        while True:
            await wait_for(due())
            assert len(received) == due()  # nothing past the audio sent
            following = cassette.events[len(received)] if len(received) < len(cassette.events) else None
            if following is None or following.after <= 1 + reacted or following.at_ms > sent_ms:
                return
            await conn.send(reactions[reacted])
            reacted += 1

    async with Emulator(speed="max", cassette=cassette, trace=True) as emu:
        async with connect(
            endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime"
        ) as conn:

            async def read() -> None:
                while True:
                    event = await conn.recv()
                    received.append((event.as_dict(), sent_ms))
                    arrived.set()

            reader = asyncio.ensure_future(read())
            try:
                await conn.send({"type": "session.update", "session": SETTINGS.to_wire()})
                markers.append(TIMELINE_INPUT)
                await conn.send(
                    {
                        "type": "session.update",
                        "session": {"metadata": {TIMELINE_METADATA_KEY: TIMELINE_INPUT}},
                    }
                )
                await catch_up(conn)
                for start in range(0, len(audio), CHUNK_BYTES):
                    piece = audio[start : start + CHUNK_BYTES]
                    sent_ms = (start + len(piece)) / 48.0  # set before sending: nothing can answer it earlier
                    await conn.input_audio_buffer.append(audio=piece)
                    await catch_up(conn)
                markers.append(TIMELINE_ENDED)
                await conn.send(
                    {
                        "type": "session.update",
                        "session": {"metadata": {TIMELINE_METADATA_KEY: TIMELINE_ENDED}},
                    }
                )
                await wait_for(len(cassette.events))
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        assert emu.trace is not None
        sends = emu.trace.of_kind("send")

    # the same events, in the same order, with the same payloads and offsets
    assert [e for e, _ in received] == [{**r.event, SIM_MS_KEY: round(r.at_ms, 3)} for r in cassette.events]
    assert [e["type"] for e, _ in received] == [t for t, _ in _server(recorded)]
    # when each went out: with the first 100 ms chunk that reached its offset, by both sides' account
    for (event, sent), recorded_event, send in zip(received, cassette.events, sends, strict=True):
        offset = recorded_event.at_ms
        if offset > total_ms:  # after the audio: once the client said it had ended
            assert sent == total_ms and send["input_ms"] == pytest.approx(total_ms), event["type"]
            continue
        boundary = min(math.ceil(offset / 100.0) * 100.0, total_ms)
        assert sent == pytest.approx(boundary), (event["type"], offset)
        assert send["input_ms"] == pytest.approx(boundary), (event["type"], offset)
        assert send["sim_ms"] == pytest.approx(offset, abs=1e-3)
    assert sum(offset <= total_ms for offset in at) > 10  # most of both turns came during the audio


async def test_a_replay_says_which_client_event_its_unsent_events_waited_for(recorded, tmp_path, caplog):
    cassette = load_cassette(_azure_like(recorded, tmp_path))
    assert [e["type"] for e in cassette.client_events][-1] == "conversation.item.truncate"  # a barge-in
    caplog.set_level(logging.WARNING, logger="vlab.emulator")
    async with Emulator(speed="max", cassette=cassette) as emu:
        async with Session(SETTINGS, endpoint=emu.endpoint, api_key=emu.api_key, barge_in="off") as session:
            await feed_prompt(session, _audio(), speed=math.inf, timeout_s=60)  # never truncates
    unsent = [r.getMessage() for r in caplog.records if "were not sent" in r.getMessage()]
    assert len(unsent) == 1 and "conversation.item.truncate (client event #2)" in unsent[0]
