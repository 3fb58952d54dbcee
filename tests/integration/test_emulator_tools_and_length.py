"""Through the real SDK: tools chosen by meaning from spoken words, and replies as long as asked."""

from __future__ import annotations

import json

import jsonschema
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import (
    AudioInputTranscriptionOptions,
    FunctionCallOutputItem,
    FunctionTool,
    InputTextContentPart,
    RequestSession,
    ServerVad,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential

from vlab import protocol
from vlab.audio.pcm import silence
from vlab.testing import SDK_SAMPLE_TOOLS, collect_events, fast_emulator, spoken_prompt

# Microsoft's function-calling sample (azure-ai-voicelive samples/async_function_calling_sample.py):
# the same two tools, with the same schemas.
SAMPLE_TOOLS = [
    FunctionTool(name=t["name"], description=t["description"], parameters=t["parameters"])
    for t in SDK_SAMPLE_TOOLS
]
SCHEMAS = {t["name"]: t["parameters"] for t in SDK_SAMPLE_TOOLS}
OUTPUT_RATE = 24000  # pcm16, the session default


def _connect(emu):
    return connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime")


def _audio_seconds(events) -> float:
    """Sum of the audio deltas' durations (the SDK hands ``delta`` over as decoded PCM16 bytes)."""
    return sum(len(e.delta) for e in events if e.type == "response.audio.delta") / 2 / OUTPUT_RATE


async def test_a_spoken_weather_question_calls_the_sample_s_weather_tool_and_the_answer_is_spoken():
    async with fast_emulator() as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await conn.session.update(
            session=RequestSession(
                tools=SAMPLE_TOOLS,
                tool_choice="auto",
                input_audio_transcription=AudioInputTranscriptionOptions(model="whisper-1"),
                turn_detection=ServerVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500),
            )
        )
        await collect_events(conn, "session.updated")
        await conn.input_audio_buffer.append(audio=spoken_prompt("What is the weather in Seattle?").pcm)
        events = await collect_events(conn, "response.done")
        heard = next(e for e in events if e.type == "conversation.item.input_audio_transcription.completed")
        assert "weather" in heard.transcript, heard.transcript
        call = next(e for e in events if e.type == "response.function_call_arguments.done")
        arguments = json.loads(call.arguments)
        jsonschema.validate(arguments, SCHEMAS["get_current_weather"])
        assert call.name == "get_current_weather" and arguments == {"location": "Seattle"}, heard.transcript
        done = events[-1].response
        assert done.status == "completed" and [i.type for i in done.output] == ["function_call"]

        result = {"location": "Seattle", "temperature": 22, "unit": "celsius", "condition": "Partly Cloudy"}
        await conn.conversation.item.create(
            item=FunctionCallOutputItem(call_id=call.call_id, output=json.dumps(result))
        )
        await collect_events(conn, "conversation.item.created")
        await conn.response.create()
        answer = await collect_events(conn, "response.done")
        said = next(e for e in answer if e.type == "response.audio_transcript.done").transcript
        assert said == f"Here is what I found: {json.dumps(result)}."
        assert _audio_seconds(answer) > 1.0


async def test_two_tools_asked_for_in_one_sentence_are_two_calls_in_one_response():
    async with fast_emulator() as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await conn.session.update(session=RequestSession(tools=SAMPLE_TOOLS, turn_detection=None))
        await collect_events(conn, "session.updated")
        text = "What's the weather in Paris and what time is it in Tokyo?"
        await conn.conversation.item.create(item=UserMessageItem(content=[InputTextContentPart(text=text)]))
        await conn.response.create()
        events = await collect_events(conn, "response.done")
        calls = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert [(c.name, json.loads(c.arguments), c.output_index) for c in calls] == [
            ("get_current_weather", {"location": "Paris"}, 0),
            ("get_current_time", {"timezone": "Tokyo"}, 1),
        ]
        added = [e.item.call_id for e in events if e.type == "response.output_item.added"]
        assert added == [c.call_id for c in calls] and len(set(added)) == 2
        assert [i.name for i in events[-1].response.output] == ["get_current_weather", "get_current_time"]

        await conn.session.update(session=RequestSession(parallel_tool_calls=False))
        await collect_events(conn, "session.updated")
        await conn.conversation.item.create(item=UserMessageItem(content=[InputTextContentPart(text=text)]))
        await conn.response.create()
        events = await collect_events(conn, "response.done")
        assert [e.name for e in events if e.type == "response.function_call_arguments.done"] == [
            "get_current_weather"
        ]


async def test_instructions_asking_for_a_long_story_give_a_reply_of_20_s_and_the_token_cap_cuts_it():
    async with fast_emulator() as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await conn.session.update(
            session=RequestSession(
                instructions="You are a storyteller. Tell a long, detailed story of at least ten sentences.",
                turn_detection=None,
            )
        )
        await collect_events(conn, "session.updated")
        await conn.conversation.item.create(
            item=UserMessageItem(content=[InputTextContentPart(text="Hello there.")])
        )
        await conn.response.create()
        long = await collect_events(conn, "response.done")
        long_s = _audio_seconds(long)
        assert long_s >= 20.0
        assert long[-1].response.status == "completed"

        await conn.session.update(session=RequestSession(max_response_output_tokens=20))
        await collect_events(conn, "session.updated")
        await conn.response.create()
        capped = await collect_events(conn, "response.done")
        transcript = next(e for e in capped if e.type == "response.audio_transcript.done").transcript
        done = capped[-1].response
        assert len(transcript.split()) == 15  # floor(20 tokens / 1.3 tokens a word)
        assert done.status == "incomplete" and done.status_details.reason == "max_output_tokens"
        assert done.usage.output_token_details.text_tokens <= 20
        assert 0 < _audio_seconds(capped) < long_s / 3


async def test_speech_during_a_long_reply_cancels_it_and_the_truncation_lands_at_the_heard_ms():
    story = "Tell a long, detailed story of at least ten sentences."
    hello, stop = spoken_prompt("Hello there.", trail_ms=1500), spoken_prompt("Stop. That is enough.")
    async with fast_emulator(latency="typical") as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        timeline = {protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_INPUT}
        vad = ServerVad(silence_duration_ms=500, interrupt_response=True, auto_truncate=True)
        await conn.session.update(
            session=RequestSession(instructions=story, turn_detection=vad, metadata=timeline)
        )
        await collect_events(conn, "session.updated")
        # the user speaks again 1.5 s after the first turn's silence: the reply is still streaming then
        await conn.input_audio_buffer.append(audio=hello.pcm + silence(1500, hello.sample_rate) + stop.pcm)
        await conn.session.update(
            session=RequestSession(metadata={protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_ENDED})
        )
        events = await collect_events(conn, "session.updated")
    first_done = next(e for e in events if e.type == "response.done")
    assert first_done.response.status == "cancelled"
    assert first_done.response.status_details.reason == "turn_detected"
    reply_id = first_done.response.output[0].id
    audio = [e for e in events if e.type == "response.audio.delta" and e.item_id == reply_id]
    barge_in = [e for e in events if e.type == "input_audio_buffer.speech_started"][1]
    truncated = next(e for e in events if e.type == "conversation.item.truncated")
    heard_ms = barge_in[protocol.SIM_MS_KEY] - audio[0][protocol.SIM_MS_KEY]
    sent_ms = sum(len(e.delta) for e in audio) / 2 / OUTPUT_RATE * 1000
    assert truncated.item_id == reply_id and truncated.audio_end_ms == int(heard_ms)
    assert 0 < heard_ms < sent_ms < 20_000  # cut while streaming, long before its ≥ 20 s were sent
