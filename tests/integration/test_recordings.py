"""Run-folder recordings line up with the event log."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from vlab import ServerVad, Session, SessionSettings
from vlab.emulator import preset
from vlab.testing import fast_emulator


async def test_input_and_output_recordings_match_the_log(tmp_path, prompt):
    run = tmp_path / "run"
    async with fast_emulator(speed=1.0, latency="instant") as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, run_dir=run, dotenv_path=False) as s:
            await s.stream_audio(prompt.pcm, speed=1.0)
            await s.wait_for("response.done", timeout_s=20)
            await s.stream_audio(
                bytes(24000), speed=1.0
            )  # half a second more, as a speaking user's mic would
    user, rate = sf.read(run / "input.wav", dtype="int16")
    assert rate == 24000 and user.tobytes() == prompt.pcm + bytes(24000)

    frame = s.frame()
    deltas = frame[frame["type"] == "response.audio.delta"]
    item_id = deltas["item_id"].iloc[0]
    item, out_rate = sf.read(run / "output" / f"{item_id}.wav", dtype="int16")
    assert len(item) * 2 == deltas["audio_bytes"].sum()

    # the assistant starts on the input timeline where the input had reached when its first delta
    # arrived (the end of the last append sent by then; more input followed), so after speech_stopped.
    # How long after depends on the machine (the emulator reads the words first), not on the recording.
    appends = frame[frame["type"] == "input_audio_buffer.append"]
    first_ns = deltas["t_ns"].iloc[0]
    assert first_ns < appends["t_ns"].iloc[-1]
    reached_ms = appends.loc[appends["t_ns"] <= first_ns, "audio_end_ms"].iloc[-1]
    track, _ = sf.read(run / "output.wav", dtype="int16")
    onset_ms = np.flatnonzero(np.abs(track) > 300)[0] / out_rate * 1000
    onset_in_item_ms = np.flatnonzero(np.abs(item) > 300)[0] / out_rate * 1000
    assert onset_ms == pytest.approx(reached_ms + onset_in_item_ms, abs=1000 / out_rate)
    stopped_ms = frame.loc[frame["type"] == "input_audio_buffer.speech_stopped", "audio_end_ms"].iloc[0]
    assert onset_ms >= stopped_ms - 20
    stereo, _ = sf.read(run / "conversation.wav")
    assert stereo.shape[1] == 2 and len(stereo) >= len(user)


@pytest.mark.parametrize("fmt", ["g711_ulaw", "pcm16_16000hz"])
async def test_recordings_decode_the_session_formats(tmp_path, fmt):
    run = tmp_path / "run"
    settings = SessionSettings(output_audio_format=fmt, turn_detection=None)
    async with fast_emulator() as emu:
        async with Session(
            settings, endpoint=emu.endpoint, api_key=emu.api_key, run_dir=run, dotenv_path=False
        ) as s:
            await s.send_text("hello")
            await s.wait_for("response.done")
    item_file = next((run / "output").iterdir())
    audio, rate = sf.read(item_file, dtype="float32")
    assert rate == (8000 if fmt.startswith("g711") else 16000)
    assert (
        0.5 < len(audio) / rate < 4 and np.abs(audio).max() > 0.1
    )  # speech, decoded from G.711 where needed


async def test_barge_in_truncation_is_applied_to_the_recording(tmp_path, prompt, second_prompt):
    run = tmp_path / "run"
    realtime_tts = dataclasses.replace(preset("typical"), tts_realtime_factor=1.0)
    settings = SessionSettings(turn_detection=ServerVad(interrupt_response=False))
    async with fast_emulator(latency=realtime_tts) as emu:
        async with Session(
            settings, endpoint=emu.endpoint, api_key=emu.api_key, run_dir=run, dotenv_path=False
        ) as s:
            await s.append_audio(prompt.pcm)
            await s.wait_for("response.audio.delta")
            await s.append_audio(second_prompt.pcm)
            await s.wait_for("conversation.item.truncated")
            while sum(r.type == "response.done" for r in s.records) < 2:  # the cut reply's and the next one's
                await s.wait_for("response.done")
    frame = s.frame()
    truncated = frame[frame["type"] == "conversation.item.truncated"].iloc[0]
    audio, rate = sf.read(run / "output" / f"{truncated['item_id']}.wav", dtype="int16")
    assert len(audio) == int(truncated["audio_end_ms"] * rate / 1000)


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
async def test_a_prompt_replayed_as_telephone_audio_is_decided_as_the_pcm16_one(tmp_path, fmt):
    # G.711 sends one byte a sample at 8 kHz: the replay took half its byte rate for the sample rate (4 kHz)
    # and sent PCM16 bytes as if they were G.711 codes, so the emulator heard noise and found no speech
    import math

    from vlab.log import load_log
    from vlab.prompts import load_prompt_set
    from vlab.replay import replay

    prompt = next(p for p in load_prompt_set() if p.id == "pause_600")
    boundaries = {}
    for name in ("pcm16", fmt):
        settings = SessionSettings(input_audio_format=name, turn_detection=ServerVad(silence_duration_ms=300))
        await replay(prompt, settings=settings, run_dir=tmp_path / name, speed=math.inf, dotenv_path=False)
        events = load_log(tmp_path / name)
        turns = events[events["type"].str.startswith("input_audio_buffer.speech_")]
        boundaries[name] = turns[["type", "audio_start_ms", "audio_end_ms"]].fillna(-1).values.tolist()
    assert len(boundaries[fmt]) == 4 and boundaries[fmt] == boundaries["pcm16"]  # two turns, alike
    heard, rate = sf.read(tmp_path / fmt / "input.wav", dtype="float32")  # what was sent, decoded
    sent = np.frombuffer(prompt.pcm(rate), "<i2").astype(np.float32) / 32768
    assert rate == 8000 and np.corrcoef(heard[: len(sent)], sent)[0, 1] > 0.99
    # the pair is at the assistant's 24 kHz, not brought down to the telephone's 8 kHz
    stereo, pair_rate = sf.read(tmp_path / fmt / "conversation.wav", dtype="float32")
    said, said_rate = sf.read(tmp_path / fmt / "output.wav", dtype="float32")
    assert pair_rate == said_rate == 24000 and np.abs(said).max() > 0.1
    np.testing.assert_allclose(stereo[: len(said), 1], said, atol=1.5 / 32768)
    user = stereo[::3, 0][: len(sent)]  # every third sample: back on the 8 kHz clock
    assert np.corrcoef(user, sent)[0, 1] > 0.99


async def test_replay_takes_a_bundled_prompt_s_id_as_vlab_replay_does(tmp_path):
    import math

    from vlab.prompts import load_prompt_set, read_run_labels
    from vlab.replay import replay

    result = await replay("short_question", run_dir=tmp_path / "run", speed=math.inf, dotenv_path=False)
    question = next(p for p in load_prompt_set() if p.id == "short_question")
    assert read_run_labels(tmp_path / "run").end_of_turn_ms == question.end_of_turn_ms  # timed from them
    assert [t["labelled_turn"] for t in result.turns] == [0]
    ends = (end for end in question.end_of_turn_ms)  # labels given as a generator: read once
    again = await replay(question.file, run_dir=tmp_path / "again", speed=math.inf, end_of_turn_ms=ends)
    assert read_run_labels(tmp_path / "again").end_of_turn_ms == question.end_of_turn_ms
    assert [t["labelled_turn"] for t in again.turns] == [0]  # was -1: the labels were read up already


async def test_replay_refuses_settings_and_options_it_cannot_use_before_it_connects(tmp_path):
    import math

    from vlab.errors import AudioFormatError, ConfigError
    from vlab.replay import replay

    with pytest.raises(
        ConfigError, match=r"^settings must be a SessionSettings, e.g\. replay\(SessionSettings"
    ):
        await replay("pause_600", {"voice": "alloy"}, run_dir=tmp_path / "a", speed=math.inf)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"^unknown option\(s\) 'overwrit' in replay \(did you mean 'overwrite'\?\)"
    ):
        await replay("pause_600", run_dir=tmp_path / "b", speed=math.inf, overwrit=True)
    with pytest.raises(AudioFormatError, match="or give a bundled prompt's id: did you mean 'pause_600'"):
        await replay("pause_60", run_dir=tmp_path / "c", speed=math.inf)
    with pytest.raises(
        ConfigError, match="^end_of_turn_ms must be a list of times in ms"
    ):  # was after the run
        await replay("short_question", run_dir=tmp_path / "d", speed=math.inf, end_of_turn_ms="1156")  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())  # no run folder was started
