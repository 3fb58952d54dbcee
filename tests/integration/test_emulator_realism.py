"""Emulator realism through the real SDK: recognition, word timestamps, visemes, formats, scripts, EOU, faults."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from azure.ai.voicelive.aio import ConnectionClosed, connect
from azure.ai.voicelive.models import (
    Animation,
    AudioInputTranscriptionOptions,
    AzureSemanticDetection,
    AzureSemanticVad,
    FunctionCallOutputItem,
    FunctionTool,
    InputTextContentPart,
    RequestSession,
    ResponseCreateParams,
    ServerEvent,
    ServerVad,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential

from vlab import protocol
from vlab.audio import g711
from vlab.audio.pcm import float_to_pcm16, silence
from vlab.audio.synth import synthesize
from vlab.cli import main
from vlab.clock import ManualClock
from vlab.emulator import Fault
from vlab.emulator.asr import RecognitionError, RecognizedWord, Transcript, default_recognizer
from vlab.emulator.voice import espeak_voice
from vlab.testing import collect_events, fast_emulator, spoken_prompt, types_of, until_idle

VOICE = "sage"  # plays eSpeak NG's en-us (see docs/emulator.md)
READBACK = "What is the weather like in Seattle today?"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _connect(emu):
    return connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime")


async def _update(conn, **session) -> object:
    await conn.session.update(session=RequestSession(**session))
    return (await collect_events(conn, "session.updated"))[-1]


# --- recognition -------------------------------------------------------------------------------------


async def test_transcript_of_a_clearly_spoken_prompt_contains_its_key_words(conn):
    clear = synthesize("Turn on the lights in the kitchen.", words_per_minute=130, sample_rate=24000)
    pcm = silence(300, 24000) + float_to_pcm16(clear.samples) + silence(800, 24000)
    updated = await _update(
        conn,
        turn_detection=None,
        input_audio_transcription=AudioInputTranscriptionOptions(model="azure-speech"),
    )
    assert updated.session.input_audio_transcription.model == "azure-speech"
    await conn.input_audio_buffer.append(audio=pcm)
    await conn.input_audio_buffer.commit()
    events = await collect_events(conn, "conversation.item.input_audio_transcription.completed")
    kinds = types_of(events)
    assert kinds.index("conversation.item.created") < kinds.index(
        "conversation.item.input_audio_transcription.delta"
    )
    item_id = next(e for e in events if e.type == "conversation.item.created").item.id
    done = events[-1]
    assert done.item_id == item_id and done.content_index == 0
    deltas = "".join(e.delta for e in events if e.type.endswith("transcription.delta"))
    assert deltas == done.transcript
    # eSpeak NG's rendering is the same in every run (vlab.audio.synth), so PocketSphinx's transcript is
    # too; it is not perfect: require the key word and most of the sentence.
    words = _words(done.transcript)
    assert "lights" in words and len({"lights", "kitchen", "on", "the"} & words) >= 3, done.transcript

    await conn.conversation.item.retrieve(item_id=item_id)
    item = (await collect_events(conn, "conversation.item.retrieved"))[-1].item
    assert item.content[0].transcript == done.transcript
    await conn.response.create(response=ResponseCreateParams(modalities=["text"]))
    text = next(e for e in await collect_events(conn, "response.done") if e.type == "response.text.done")
    assert text.text == f"You said: {done.transcript}."


async def test_vad_turn_is_transcribed_and_answered_with_the_words(conn, prompt):
    await _update(
        conn,
        turn_detection=ServerVad(silence_duration_ms=500),
        input_audio_transcription=AudioInputTranscriptionOptions(model="whisper-1"),
    )
    await conn.input_audio_buffer.append(audio=prompt.pcm)
    events = await collect_events(conn, "response.done")
    done = next(e for e in events if e.type == "conversation.item.input_audio_transcription.completed")
    assert {"weather", "seattle"} <= _words(done.transcript), done.transcript
    reply = next(e for e in events if e.type == "response.audio_transcript.done").transcript
    assert reply.startswith("You said: ") and "seattle" in reply.lower()


async def test_a_failing_recognizer_sends_transcription_failed():
    class Broken:
        def transcribe(self, pcm16: bytes, sample_rate: int):
            raise RecognitionError("no model")

    async with fast_emulator(recognizer_factory=Broken) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await _update(conn, turn_detection=None, input_audio_transcription={"model": "azure-speech"})
        await conn.input_audio_buffer.append(audio=spoken_prompt().pcm)
        await conn.input_audio_buffer.commit()
        failed = (await collect_events(conn, "conversation.item.input_audio_transcription.failed"))[-1]
        assert failed.content_index == 0 and "no model" in failed.error.message
        await conn.response.create()
        transcript = next(
            e
            for e in await collect_events(conn, "response.done")
            if e.type == "response.audio_transcript.done"
        ).transcript
        assert transcript.startswith("I heard")  # the duration fallback


async def test_transcription_reads_the_turn_with_its_silent_edges_cut_to_200_ms():
    """As every reading of the user's audio: the same speech reads the same wherever it starts."""

    class Recorder:
        heard: list[bytes] = []

        def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
            self.heard.append(pcm16)
            return Transcript((RecognizedWord("hello", 0.0, 100.0),), audio_ms=100.0)

    rate = 24000
    loud = np.full(rate // 10, 1000, dtype="<i2").tobytes()
    silence = bytes(2 * rate)  # 1 s of digital silence each side
    async with fast_emulator(recognizer_factory=Recorder) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await _update(conn, turn_detection=None, input_audio_transcription={"model": "azure-speech"})
        await conn.input_audio_buffer.append(audio=silence + loud + silence)
        await conn.input_audio_buffer.commit()
        done = (await collect_events(conn, "conversation.item.input_audio_transcription.completed"))[-1]
    pad = bytes(2 * rate // 5)  # 200 ms
    assert done.transcript == "hello" and Recorder.heard == [pad + loud + pad]


async def test_without_hearing_an_untranscribed_turn_gets_the_duration_reply():
    async with fast_emulator(hear_audio=False) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await _update(conn, turn_detection=None)
        await conn.input_audio_buffer.append(audio=spoken_prompt().pcm)
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        events = await collect_events(conn, "response.done")
        reply = next(e for e in events if e.type == "response.audio_transcript.done").transcript
        assert reply.startswith("I heard ") and reply.endswith(" seconds of speech.")


# --- synthesis: formats, timestamps, visemes ----------------------------------------------------------


async def _spoken_reply(conn, text: str) -> list:
    await conn.response.create(response=ResponseCreateParams(instructions=f"Say: {text}"))
    return await collect_events(conn, "response.done")


def _decode(audio: bytes, fmt: str) -> np.ndarray:
    if fmt == "g711_ulaw":
        audio = g711.ulaw_decode(audio)
    elif fmt == "g711_alaw":
        audio = g711.alaw_decode(audio)
    return np.frombuffer(audio, "<i2")


@pytest.mark.parametrize("fmt", list(protocol.OUTPUT_FORMAT_RATES))
async def test_every_output_format_round_trips_as_speech(conn, fmt):
    rate = protocol.OUTPUT_FORMAT_RATES[fmt]
    updated = await _update(conn, turn_detection=None, output_audio_format=fmt, voice=VOICE)
    assert updated.session.output_audio_format == fmt  # echoed exactly as sent
    events = await _spoken_reply(conn, READBACK)
    audio = b"".join(e.delta for e in events if e.type == "response.audio.delta")
    samples = _decode(audio, fmt)
    expected = synthesize(READBACK, voice=espeak_voice(VOICE), sample_rate=rate)
    assert len(samples) / rate == pytest.approx(expected.duration_ms / 1000, abs=0.03)
    rms = float(np.sqrt(np.mean((samples / 32768.0) ** 2)))
    assert rms > 0.01  # not silence
    # the recognizer reads the words back (at 8 kHz, telephone band, it gets fewer of them); one decoder for all
    heard = default_recognizer().transcribe(samples.astype("<i2").tobytes(), rate).text
    recall = len(_words(READBACK) & _words(heard)) / len(_words(READBACK))
    assert recall >= (0.6 if rate >= 16000 else 0.4), heard


async def test_word_timestamps_and_visemes_follow_the_spoken_words(conn):
    await _update(
        conn,
        turn_detection=None,
        voice=VOICE,
        output_audio_timestamp_types=["word"],
        animation=Animation(outputs=["viseme_id"]),
    )
    events = await _spoken_reply(conn, READBACK)
    stamps = [e for e in events if e.type == "response.audio_timestamp.delta"]
    visemes = [e for e in events if e.type == "response.animation_viseme.delta"]
    assert [s.text for s in stamps] == READBACK.rstrip("?").split()
    assert all(s.timestamp_type == "word" and s.audio_duration_ms > 0 for s in stamps)
    offsets = [s.audio_offset_ms for s in stamps]
    assert offsets == sorted(offsets) and offsets[0] < 300
    audio_ms = sum(len(e.delta) for e in events if e.type == "response.audio.delta") / 48
    assert stamps[-1].audio_offset_ms + stamps[-1].audio_duration_ms <= audio_ms + 1
    assert all(0 <= v.viseme_id <= 21 for v in visemes) and len(visemes) > 2 * len(stamps)
    assert [v.audio_offset_ms for v in visemes] == sorted(v.audio_offset_ms for v in visemes)
    kinds = types_of(events)
    assert (
        kinds.index("response.audio_timestamp.done") < kinds.index("response.audio.done")
        and "response.animation_viseme.done" in kinds
    )
    ids = {(e.response_id, e.item_id, e.output_index, e.content_index) for e in [*stamps, *visemes]}
    assert len(ids) == 1


# --- scripted dialogue -------------------------------------------------------------------------------


async def test_function_call_round_trip_from_a_script_file(tmp_path):
    script = tmp_path / "dialogue.json"
    script.write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "keywords": ["weather"],
                        "call": {"name": "get_weather", "arguments": {"city": "Boston"}},
                    },
                    {"on": "function_output", "say": "It is {output} in Boston."},
                    {"turn": 2, "say": "Second question, {text}."},
                ]
            }
        )
    )
    tool = FunctionTool(name="get_weather", description="", parameters={"type": "object", "properties": {}})
    async with fast_emulator(script=str(script)) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await _update(conn, turn_detection=None, tools=[tool], modalities=["text"])
        await conn.conversation.item.create(
            item=UserMessageItem(content=[InputTextContentPart(text="How is the weather?")])
        )
        await conn.response.create()
        events = await collect_events(conn, "response.done")
        call = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Boston"}
        await conn.conversation.item.create(item=FunctionCallOutputItem(call_id=call.call_id, output="sunny"))
        await conn.response.create()
        text = next(e for e in await collect_events(conn, "response.done") if e.type == "response.text.done")
        assert text.text == "It is sunny in Boston."
        # tool_choice "none" never calls: the scripted call is skipped, the next matching rule answers
        await _update(conn, tool_choice="none")
        await conn.conversation.item.create(
            item=UserMessageItem(content=[InputTextContentPart(text="And the weather tomorrow?")])
        )
        await conn.response.create()
        events = await collect_events(conn, "response.done")
        assert "response.function_call_arguments.done" not in types_of(events)
        text = next(e for e in events if e.type == "response.text.done").text
        assert text == "Second question, And the weather tomorrow."


async def test_vlab_emulator_script_answers_the_sdk_through_a_chain_of_calls(tmp_path):
    """``examples/chained_tools.json``: asked for a table, the model checks what is free, then books it."""
    command = [sys.executable, "-m", "vlab", "emulator", "--port", "0", "--api-key", "k", "--speed", "max"]
    proc = subprocess.Popen(
        [*command, "--no-hear", "--script", "examples/chained_tools.json"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        endpoint = line.split()[-1]
        tools = [
            FunctionTool(name=n, description="", parameters={}) for n in ("check_availability", "book_table")
        ]
        conn_args = {"endpoint": endpoint, "credential": AzureKeyCredential("k"), "model": "gpt-realtime"}
        async with connect(**conn_args) as conn:
            await collect_events(conn, "session.created")
            await _update(conn, turn_detection=None, tools=tools, modalities=["text"])
            await conn.conversation.item.create(
                item=UserMessageItem(
                    content=[InputTextContentPart(text="A table for four at seven, please.")]
                )
            )
            calls = []
            for output in ("12 and 14 are free", "table 12"):
                await conn.response.create()
                events = await collect_events(conn, "response.done")
                (call,) = (e for e in events if e.type == "response.function_call_arguments.done")
                calls.append(call.name)
                await conn.conversation.item.create(
                    item=FunctionCallOutputItem(call_id=call.call_id, output=output)
                )
            await conn.response.create()
            text = next(
                e for e in await collect_events(conn, "response.done") if e.type == "response.text.done"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert calls == ["check_availability", "book_table"] and text.text == "Your table is booked: table 12."


def test_vlab_emulator_refuses_a_script_it_cannot_read_before_it_listens(tmp_path, capsys):
    assert main(["emulator", "--port", "0", "--script", str(tmp_path / "chain.json")]) == 2
    err = capsys.readouterr().err
    assert "cannot read the dialogue script" in err and "chain.json" in err and "Traceback" not in err


# --- turn detection: end-of-utterance cues ------------------------------------------------------------


def _hesitant_request(rate: int = 24000, pause_ms: int = 700) -> bytes:
    first = synthesize("I want to book a flight to, uh", sample_rate=rate)
    second = synthesize("Boston please.", sample_rate=rate)
    return b"".join(
        (
            silence(300, rate),
            float_to_pcm16(first.samples),
            silence(pause_ms, rate),
            float_to_pcm16(second.samples),
            silence(1600, rate),
        )
    )


@pytest.mark.parametrize(
    ("turn_detection", "turns"),
    [
        (AzureSemanticVad(silence_duration_ms=500, create_response=False), 1),
        (ServerVad(silence_duration_ms=500, create_response=False), 2),
        (
            ServerVad(
                silence_duration_ms=500,
                create_response=False,
                end_of_utterance_detection=AzureSemanticDetection(timeout_ms=1000),
            ),
            1,
        ),
    ],
    ids=["azure_semantic_vad", "server_vad", "server_vad+eou"],
)
async def test_a_trailing_filler_does_not_end_the_turn_with_eou_detection(conn, turn_detection, turns):
    await _update(conn, turn_detection=turn_detection)
    await conn.input_audio_buffer.append(audio=_hesitant_request())
    events = await collect_events(conn, "input_audio_buffer.committed", count=turns)
    events += await until_idle(conn)
    assert types_of(events).count("input_audio_buffer.committed") == turns
    assert types_of(events).count("input_audio_buffer.speech_started") == turns


async def test_speech_just_after_the_eou_timeout_starts_a_turn_where_the_held_one_ended(conn):
    # "…to, uh" is held for the end-of-utterance timeout; "Boston" starts a little after it ran out, so its
    # prefix padding reaches back before the held turn's end: the new turn starts at that end, not before.
    eou = AzureSemanticDetection(timeout_ms=1000)
    await _update(conn, turn_detection=ServerVad(create_response=False, end_of_utterance_detection=eou))
    await conn.input_audio_buffer.append(audio=_hesitant_request(pause_ms=1100))
    events = [e for e in await until_idle(conn) if e.type.startswith("input_audio_buffer.speech_")]
    assert types_of(events) == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"] * 2
    first_end, second_start = events[1].audio_end_ms, events[2].audio_start_ms
    assert second_start == first_end


async def test_semantic_vad_ends_a_complete_sentence_after_the_silence(conn, prompt):
    await _update(conn, turn_detection=AzureSemanticVad(silence_duration_ms=500, create_response=False))
    await conn.input_audio_buffer.append(audio=prompt.pcm)
    stopped = (await collect_events(conn, "input_audio_buffer.speech_stopped"))[-1]
    assert stopped.audio_end_ms == pytest.approx(prompt.speech_end_ms + 500, abs=50)


# --- faults --------------------------------------------------------------------------------------------


async def _talk(conn) -> None:
    await _update(conn, turn_detection=None)
    await conn.response.create(response=ResponseCreateParams(instructions=f"Say: {READBACK}"))


async def test_drop_fault_from_session_metadata_closes_the_connection_abruptly(conn):
    await _update(conn, metadata={"vlab.fault": "drop_after:response.audio.delta:3"})
    await _talk(conn)
    seen = []
    with pytest.raises(ConnectionClosed):
        while True:
            seen.append((await conn.recv()).type)
    assert seen.count("response.audio.delta") == 3 and "response.done" not in seen


async def test_close_fault_closes_cleanly_with_its_code():
    async with fast_emulator(faults=[Fault("close", at="session.updated", code=4000)]) as emu:
        async with _connect(emu) as conn:
            await collect_events(conn, "session.created")
            await conn.session.update(session=RequestSession(turn_detection=None))
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await conn.recv()
            assert info.value.code == 4000


async def test_delay_fault_stalls_before_the_event():
    clock = ManualClock()  # the emulator's wall clock: faults wait on it, so the test reads what they waited
    async with fast_emulator(clock=clock) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await _update(conn, turn_detection=None)
        assert emu.inject(Fault("delay", at="response.created", ms=400)) == 1
        before_ns = clock.monotonic_ns()
        await conn.response.create(response=ResponseCreateParams(instructions="Say: hi"))
        await collect_events(conn, "response.created")
        assert clock.monotonic_ns() - before_ns == 400_000_000


async def test_error_fault_sends_a_server_error_and_optionally_closes(conn):
    await _update(conn, metadata={"vlab.fault": "error_after:response.created"})
    await _talk(conn)
    events = await collect_events(conn, "response.done")
    err = next(e for e in events if e.type == "error").error
    assert err.type == "server_error"
    assert types_of(events).index("error") == types_of(events).index("response.created") + 1
    await _update(conn, metadata={"vlab.fault": "error_after:response.created:1:fatal"})
    await conn.response.create()
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await conn.recv()
    assert info.value.code == 1011


async def test_throttle_fault_slows_output_audio_to_the_rate():
    clock = ManualClock()
    async with fast_emulator(clock=clock) as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await _update(conn, metadata={"vlab.fault": "throttle:4"})
        before_ns = clock.monotonic_ns()
        await _talk(conn)
        events = await collect_events(conn, "response.done")
    chunks_ms = [len(e.delta) / 48 for e in events if e.type == "response.audio.delta"]  # PCM16 at 24 kHz
    assert sum(chunks_ms) > 2000
    # each chunk waits until the audio before it has played at 4x real time; the last one is not waited for
    waited_ms = (clock.monotonic_ns() - before_ns) / 1e6
    assert waited_ms == pytest.approx((sum(chunks_ms) - chunks_ms[-1]) / 4, abs=0.01)


async def test_a_bad_fault_specification_is_an_error_event(conn):
    await conn.session.update(session=RequestSession(metadata={"vlab.fault": "explode:now"}))
    err = (await collect_events(conn, "error"))[-1].error
    assert err.param == "session.metadata.vlab.fault" and "explode" in err.message


# --- contract ----------------------------------------------------------------------------------------


async def test_new_event_types_parse_into_typed_sdk_models(conn, prompt):
    await _update(
        conn,
        turn_detection=None,
        voice=VOICE,
        output_audio_timestamp_types=["word"],
        animation=Animation(outputs=["viseme_id"]),
        input_audio_transcription=AudioInputTranscriptionOptions(model="azure-speech"),
    )
    await conn.input_audio_buffer.append(audio=prompt.pcm)
    await conn.input_audio_buffer.commit()
    await conn.response.create()
    seen = await collect_events(conn, "response.done")
    new = {
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "response.audio_timestamp.delta",
        "response.audio_timestamp.done",
        "response.animation_viseme.delta",
        "response.animation_viseme.done",
    }
    assert new <= set(types_of(seen))
    assert [e.type for e in seen if type(e) is ServerEvent] == []
    # .failed is covered by test_a_failing_recognizer_sends_transcription_failed (typed access to .error)
