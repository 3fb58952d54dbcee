"""Manual turns, text, cancel, barge-in, truncate/retrieve/delete and function calls via the real SDK."""

from __future__ import annotations

import dataclasses
import json

import pytest
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import (
    FunctionCallOutputItem,
    FunctionTool,
    InputTextContentPart,
    Modality,
    RequestSession,
    ResponseCreateParams,
    ServerVad,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential

from vlab import protocol
from vlab.audio.pcm import silence
from vlab.emulator import connection, preset
from vlab.emulator.response_run import ResponseRun
from vlab.testing import collect_events, fast_emulator, types_of, until_idle

REALTIME_TTS = dataclasses.replace(preset("typical"), tts_realtime_factor=1.0)


async def _manual(conn, **session) -> None:
    await conn.session.update(session=RequestSession(turn_detection=None, **session))
    updated = (await collect_events(conn, "session.updated"))[-1]
    assert updated.session.turn_detection is None


async def _say(conn, text: str) -> None:
    await conn.conversation.item.create(item=UserMessageItem(content=[InputTextContentPart(text=text)]))
    await collect_events(conn, "conversation.item.created")


async def test_manual_mode_appends_silently_and_commit_creates_the_user_item(conn, prompt):
    await _manual(conn)
    await conn.input_audio_buffer.append(audio=prompt.pcm)
    assert await until_idle(conn) == []
    await conn.input_audio_buffer.commit()
    events = await collect_events(conn, "conversation.item.created")
    assert types_of(events) == ["input_audio_buffer.committed", "conversation.item.created"]
    assert events[0].item_id == events[1].item.id and events[1].item.role == "user"
    assert await until_idle(conn) == []  # no response until asked
    await conn.response.create()
    events = await collect_events(conn, "response.done")
    assert "response.audio.delta" in types_of(events)
    transcript = next(e for e in events if e.type == "response.audio_transcript.done").transcript
    assert transcript.startswith("You said: ") and "weather" in transcript  # the model heard the words
    assert not any("input_audio_transcription" in t for t in types_of(events))  # and never sent them


async def test_committing_an_empty_buffer_is_an_error_and_the_session_goes_on(conn):
    await _manual(conn)
    await conn.input_audio_buffer.commit(event_id="evt-commit-1")
    err = (await collect_events(conn, "error"))[-1].error
    assert err.code == "input_audio_buffer_commit_empty" and err.event_id == "evt-commit-1"
    await conn.input_audio_buffer.clear()
    assert types_of(await collect_events(conn, "input_audio_buffer.cleared")) == [
        "input_audio_buffer.cleared"
    ]


async def test_text_message_and_text_only_modality(conn):
    await _manual(conn, modalities=[Modality.TEXT])
    await _say(conn, "Hello there, emulator")
    await conn.response.create()
    events = await collect_events(conn, "response.done")
    kinds = types_of(events)
    assert not any(k.startswith(("response.audio", "response.audio_transcript")) for k in kinds)
    assert "response.text.delta" in kinds
    text = next(e for e in events if e.type == "response.text.done").text
    assert text == "You said: Hello there, emulator."
    part = next(e for e in events if e.type == "response.content_part.added").part
    assert part.type == "text"


async def test_response_create_can_ask_for_text_only(conn):
    await _manual(conn)
    await _say(conn, "short answer please")
    await conn.response.create(response=ResponseCreateParams(modalities=[Modality.TEXT]))
    kinds = types_of(await collect_events(conn, "response.done"))
    assert "response.text.done" in kinds and "response.audio.delta" not in kinds


async def test_a_response_s_voice_overrides_the_session_s_for_that_response_only(conn):
    await _manual(conn, modalities=[Modality.TEXT])
    await _say(conn, "hello")
    await conn.send({"type": "response.create", "response": {"voice": "echo"}})
    first = await collect_events(conn, "response.done")
    await conn.response.create()
    second = await collect_events(conn, "response.done")
    voices = [
        next(e for e in events if e.type == "response.created").response.voice for events in (first, second)
    ]
    assert voices[0] == "echo" and voices[1] not in ("echo", None)


async def test_client_cancel_closes_open_events_and_reports_cancelled():
    async with fast_emulator(speed=1.0, latency="typical") as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            await _manual(conn)
            await _say(conn, "tell me a long story about the sea and the ships that sail on it")
            await conn.response.create()
            await collect_events(conn, "response.audio.delta")
            await conn.response.cancel()
            events = await collect_events(conn, "response.done")
    tail = [t for t in types_of(events) if not t.endswith(".delta")]
    assert tail == [
        "response.audio.done",
        "response.audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    done = events[-1].response
    assert done.status == "cancelled"
    assert done.status_details.reason == "client_cancelled"
    assert next(e for e in events if e.type == "response.output_item.done").item.status == "incomplete"


async def test_cancel_while_the_next_turns_response_waits_cancels_the_one_streaming(prompt, second_prompt):
    # The user's second turn ends while the story streams (no interruption): its response waits, unseen,
    # and a cancel meanwhile is for the story, after which the waiting response runs.
    story = "Tell a long, detailed story of at least ten sentences."
    timeline = {protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_INPUT}
    async with fast_emulator(latency="typical") as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            vad = ServerVad(interrupt_response=False)
            await conn.session.update(
                session=RequestSession(instructions=story, turn_detection=vad, metadata=timeline)
            )
            await collect_events(conn, "session.updated")
            gap = silence(3000, prompt.sample_rate)
            await conn.input_audio_buffer.append(audio=prompt.pcm + gap + second_prompt.pcm)
            before = await collect_events(conn, "input_audio_buffer.committed", count=2)
            await conn.response.cancel()
            cancelled = await collect_events(conn, "response.done")
            ended = {protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_ENDED}
            await conn.session.update(session=RequestSession(metadata=ended))
            after = await collect_events(conn, "session.updated")
    story_id = next(e for e in before if e.type == "response.created").response.id
    assert cancelled[-1].response.id == story_id and cancelled[-1].response.status == "cancelled"
    assert "error" not in types_of(cancelled + after)
    answer = next(e for e in after if e.type == "response.done").response
    assert answer.id != story_id and answer.status == "completed"


@pytest.mark.parametrize("says", [protocol.BARGE_IN_CANCELS, None])
async def test_a_client_that_says_it_cancels_on_speech_has_its_cancel_happen_where_the_user_spoke(
    prompt, second_prompt, says
):
    # All the audio is sent before the story starts; the user's second turn starts while it streams. On
    # the input timeline the cancel happened at the end of the audio (where the client had got to when it
    # arrived), however early the client sent it: time now waits for it at the speech it answers.
    story = "Tell a long, detailed story of at least ten sentences."
    timeline = {protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_INPUT}
    if says is not None:
        timeline[protocol.BARGE_IN_METADATA_KEY] = says
    async with fast_emulator(latency="typical") as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            vad = ServerVad(interrupt_response=False, silence_duration_ms=500)
            await conn.session.update(
                session=RequestSession(instructions=story, turn_detection=vad, metadata=timeline)
            )
            await collect_events(conn, "session.updated")
            audio = prompt.pcm + silence(3000, prompt.sample_rate) + second_prompt.pcm
            await conn.input_audio_buffer.append(audio=audio + silence(1000, prompt.sample_rate))
            before = await collect_events(conn, "input_audio_buffer.speech_started", count=2)
            await conn.response.cancel()
            cancelled = await collect_events(conn, "response.done")
    spoke_ms = before[-1][protocol.SIM_MS_KEY]
    assert cancelled[-1].response.status == "cancelled"
    end_of_audio_ms = len(audio) / 2 / prompt.sample_rate * 1000 + 1000
    if says is None:  # as before: where the client's audio had got to
        assert cancelled[-1][protocol.SIM_MS_KEY] > spoke_ms + 1000
    else:
        assert cancelled[-1][protocol.SIM_MS_KEY] == spoke_ms < end_of_audio_ms


async def test_what_a_client_says_it_does_on_a_barge_in_is_checked():
    async with fast_emulator() as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            await conn.session.update(
                session=RequestSession(metadata={protocol.BARGE_IN_METADATA_KEY: "maybe"})
            )
            (error,) = [e for e in await collect_events(conn, "error") if e.type == "error"]
    assert error.error.param == f"session.metadata.{protocol.BARGE_IN_METADATA_KEY}"
    assert "'maybe'; expected one of ['cancel', 'none']" in error.error.message


async def test_cancel_with_nothing_active_is_a_routine_error(conn):
    await conn.response.cancel()
    err = (await collect_events(conn, "error"))[-1].error
    assert err.code == "response_cancel_not_active"
    await conn.session.update(session=RequestSession(instructions="still here"))
    assert (await collect_events(conn, "session.updated"))[-1].session.instructions == "still here"


async def test_second_response_create_while_active_is_refused():
    async with fast_emulator(speed=1.0, latency="typical") as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            await _manual(conn)
            await conn.response.create()
            await conn.response.create()
            events = await collect_events(conn, "response.done")
    errors = [e for e in events if e.type == "error"]
    assert [e.error.code for e in errors] == ["conversation_already_has_active_response"]
    assert types_of(events).count("response.created") == 1


@pytest.mark.parametrize("auto_truncate", [False, True])
async def test_barge_in_cancels_the_response_when_the_user_speaks(prompt, second_prompt, auto_truncate):
    # A long reply (≥ 20 s of audio, streamed in real time on the emulator's input timeline, whose time
    # follows the audio sent): the user speaks again 3 s of audio after the first words, while it plays,
    # whatever the machine's load. (In live mode at speed max the reply could end before the append.)
    timeline = {protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_INPUT}
    async with fast_emulator(latency=REALTIME_TTS) as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            vad = ServerVad(
                threshold=0.5,
                prefix_padding_ms=300,
                silence_duration_ms=500,
                interrupt_response=True,
                auto_truncate=auto_truncate,
            )
            story = "Tell a long, detailed story of at least ten sentences."
            await conn.session.update(
                session=RequestSession(turn_detection=vad, instructions=story, metadata=timeline)
            )
            await collect_events(conn, "session.updated")
            gap = silence(3000, prompt.sample_rate)
            await conn.input_audio_buffer.append(audio=prompt.pcm + gap + second_prompt.pcm)
            events = await collect_events(conn, "response.done")
            after = await until_idle(conn)  # the new turn's answer, and all the rest
    kinds = types_of(events)
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
    done = events[-1].response
    assert done.status == "cancelled" and done.status_details.reason == "turn_detected"
    truncated = [e for e in after if e.type == "conversation.item.truncated"]
    if auto_truncate:
        assert len(truncated) == 1 and truncated[0].item_id == done.output[0].id
        assert 0 <= truncated[0].audio_end_ms < 5000
    else:
        assert truncated == []
    assert [e.response.status for e in after if e.type == "response.done"] == ["completed"]


async def test_truncate_retrieve_delete(conn):
    await _manual(conn)
    await _say(conn, "give me a sentence to cut")
    await conn.response.create()
    events = await collect_events(conn, "response.done")
    item_id = events[-1].response.output[0].id
    audio_ms = sum(len(e.delta) for e in events if e.type == "response.audio.delta") / 48
    await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=int(audio_ms))
    whole = (await collect_events(conn, "conversation.item.truncated"))[-1]  # at its very end: accepted
    assert whole.audio_end_ms == int(audio_ms)
    await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=int(audio_ms // 2))
    truncated = (await collect_events(conn, "conversation.item.truncated"))[-1]
    assert (truncated.item_id, truncated.content_index, truncated.audio_end_ms) == (
        item_id,
        0,
        int(audio_ms // 2),
    )
    await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=int(audio_ms) + 5000)
    assert (await collect_events(conn, "error"))[-1].error.param == "audio_end_ms"
    await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=-1)
    negative = (await collect_events(conn, "error"))[-1].error
    assert (negative.param, negative.message) == (
        "audio_end_ms",
        "Invalid value for 'audio_end_ms': -1; expected 0 or more.",
    )
    await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=0)
    assert (await collect_events(conn, "conversation.item.truncated"))[-1].audio_end_ms == 0  # nothing heard
    await conn.conversation.item.retrieve(item_id=item_id)
    item = (await collect_events(conn, "conversation.item.retrieved"))[-1].item
    assert item.id == item_id and item.role == "assistant" and item.content
    await conn.conversation.item.delete(item_id=item_id)
    assert (await collect_events(conn, "conversation.item.deleted"))[-1].item_id == item_id
    await conn.conversation.item.retrieve(item_id=item_id)
    assert (await collect_events(conn, "error"))[-1].error.code == "item_not_found"


async def test_function_call_round_trip(conn):
    tool = FunctionTool(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    await _manual(conn, tools=[tool], tool_choice="auto")
    await _say(conn, "What is the weather in Paris? Use get weather.")
    await conn.response.create()
    events = await collect_events(conn, "response.done")
    done_args = next(e for e in events if e.type == "response.function_call_arguments.done")
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert done_args.name == "get_weather" and deltas == done_args.arguments
    assert "city" in json.loads(done_args.arguments)
    call_item = next(e for e in events if e.type == "response.output_item.added").item
    assert call_item.type == "function_call" and call_item.call_id == done_args.call_id

    await conn.conversation.item.create(
        item=FunctionCallOutputItem(call_id=done_args.call_id, output='{"temp_c": 21}')
    )
    await collect_events(conn, "conversation.item.created")
    await conn.response.create()
    events = await collect_events(conn, "response.done")
    said = next(e for e in events if e.type == "response.audio_transcript.done").transcript
    assert said == 'Here is what I found: {"temp_c": 21}.'


async def test_bad_client_events_get_error_events_and_the_socket_stays_usable(conn):
    bad = [
        ({"type": "no.such.event", "event_id": "e1"}, "invalid_value"),
        (
            {"type": "input_audio_buffer.append", "audio": "***not base64***", "event_id": "e2"},
            "invalid_value",
        ),
        ({"type": "input_audio_buffer.append", "audio": 12, "event_id": "e3"}, "invalid_type"),
        (
            {
                "type": "session.update",
                "session": {"turn_detection": {"type": "server_vad", "threshold": 7}},
                "event_id": "e4",
            },
            "invalid_value",
        ),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "item_nope",
                "content_index": 0,
                "audio_end_ms": 1,
                "event_id": "e5",
            },
            "item_not_found",
        ),
        ({"type": "session.update", "event_id": "e6"}, "missing_required_parameter"),
        (
            {
                "type": "session.update",
                "session": {"metadata": {"vlab.latency_seed": "seven"}},
                "event_id": "e8",
            },
            "invalid_value",
        ),
        (
            {
                "type": "conversation.item.create",
                "previous_item_id": "item_nope",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
                "event_id": "e7",
            },
            "invalid_value",
        ),
    ]
    for event, code in bad:
        await conn.send(event)
        err = (await collect_events(conn, "error"))[-1].error
        assert (err.code, err.event_id) == (code, event["event_id"]), err
        assert err.message
    await conn.session.update(session=RequestSession({"voice": "alloy", "some_future_key": 1}))
    session = (await collect_events(conn, "session.updated"))[-1].session
    assert session.turn_detection.threshold == 0.5  # the refused update changed nothing
    assert session["some_future_key"] == 1  # unknown keys are tolerated and echoed
    await conn.send(
        {
            "type": "conversation.item.create",
            "previous_item_id": "root",  # the start of the conversation
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        }
    )
    created = (await collect_events(conn, "conversation.item.created"))[-1]
    assert created.previous_item_id is None and created.item.role == "user"


async def test_a_response_the_emulator_fails_on_ends_failed_and_the_session_goes_on(
    conn, monkeypatch, caplog
):
    # The emulator's own error inside a response (here: making the reply) must reach the client as the
    # service's failed response, not leave it waiting for a response.done that never comes.
    def broken_reply(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no reply today")

    await _manual(conn, modalities=[Modality.TEXT])
    await _say(conn, "hello")
    with monkeypatch.context() as patch:
        patch.setattr(connection, "reply_for", broken_reply)
        await conn.response.create()
        events = await collect_events(conn, "response.done")
    assert types_of(events) == ["response.created", "response.done"]
    created, done = (e.response for e in events)
    assert created.status == "in_progress" and done.id == created.id
    assert done.status == "failed" and done.status_details.type == "failed"
    assert done.status_details.error == {
        "type": "server_error",
        "code": "server_error",
        "message": "The emulator failed to run the response: no reply today",
    }
    assert "emulator failed on a response" in caplog.text  # with its traceback, for whoever runs it
    await conn.response.create()  # the session goes on: the next response is answered
    assert (await collect_events(conn, "response.done"))[-1].response.status == "completed"


async def test_a_turn_step_the_emulator_fails_on_is_a_server_error_and_the_turn_goes_on(
    conn, prompt, monkeypatch
):
    async def broken_step(*args: object) -> None:
        raise RuntimeError("lost the start")

    monkeypatch.setattr(connection.EmulatorConnection, "_speech_started", broken_step)
    await conn.session.update(session=RequestSession(modalities=[Modality.TEXT], turn_detection=ServerVad()))
    await collect_events(conn, "session.updated")
    await conn.input_audio_buffer.append(audio=prompt.pcm + silence(1500, prompt.sample_rate))
    events = await until_idle(conn)
    kinds = types_of(events)
    assert "input_audio_buffer.speech_started" not in kinds
    error = next(e for e in events if e.type == "error").error
    assert (error.type, error.code) == ("server_error", "server_error")
    assert error.message == "The emulator failed to handle a turn of the input audio: lost the start"
    assert kinds.index("error") < kinds.index("input_audio_buffer.speech_stopped")  # the turn went on
    assert next(e for e in events if e.type == "response.done").response.status == "completed"


async def test_a_failure_after_the_response_ended_sends_no_second_ending(conn, monkeypatch, caplog):
    finish = ResponseRun._finish

    async def finish_then_fail(run: ResponseRun) -> None:
        await finish(run)
        raise RuntimeError("after the end")

    monkeypatch.setattr(ResponseRun, "_finish", finish_then_fail)
    await _manual(conn, modalities=[Modality.TEXT])
    await _say(conn, "hello")
    await conn.response.create()
    events = await until_idle(conn)
    assert [e.response.status for e in events if e.type == "response.done"] == ["completed"]
    assert "after the end" in caplog.text  # logged all the same
