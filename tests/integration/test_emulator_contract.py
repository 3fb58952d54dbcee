"""Contract: every event the emulator emits parses into a typed SDK model (no unknown events)."""

from __future__ import annotations

from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import (
    FunctionCallOutputItem,
    FunctionTool,
    InputTextContentPart,
    RequestSession,
    ServerEvent,
    ServerEventType,
    ServerVad,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential

from vlab.testing import collect_events, fast_emulator


async def test_every_emitted_event_is_a_typed_sdk_event(prompt, second_prompt):
    seen = []
    async with fast_emulator(speed=4.0, latency="typical") as emu:
        async with connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key)) as conn:
            seen += await collect_events(conn, "session.created")
            # a VAD turn, interrupted by a second one (barge-in with auto truncation)
            await conn.session.update(
                session=RequestSession(turn_detection=ServerVad(auto_truncate=True, interrupt_response=True))
            )
            await conn.input_audio_buffer.append(audio=prompt.pcm)
            seen += await collect_events(conn, "response.audio.delta")
            await conn.input_audio_buffer.append(audio=second_prompt.pcm)
            seen += await collect_events(conn, "response.done", count=2)
            # manual: commit, clear, text, function call, cancel, truncate/retrieve/delete, errors
            tool = FunctionTool(
                name="lookup", description="", parameters={"type": "object", "properties": {}}
            )
            await conn.session.update(session=RequestSession(turn_detection=None, tools=[tool]))
            await conn.input_audio_buffer.append(audio=prompt.pcm)
            await conn.input_audio_buffer.commit()
            await conn.input_audio_buffer.clear()
            await conn.conversation.item.create(
                item=UserMessageItem(content=[InputTextContentPart(text="please lookup this")])
            )
            await conn.response.create()
            seen += await collect_events(conn, "response.done")
            call = next(e for e in seen if e.type == "response.function_call_arguments.done")
            await conn.conversation.item.create(
                item=FunctionCallOutputItem(call_id=call.call_id, output="42")
            )
            await conn.response.create()
            seen += await collect_events(conn, "response.audio.delta")
            await conn.response.cancel()
            seen += await collect_events(conn, "response.done")
            item_id = seen[-1].response.output[0].id
            await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=10)
            await conn.conversation.item.retrieve(item_id=item_id)
            await conn.conversation.item.delete(item_id=item_id)
            await conn.response.cancel()
            seen += await collect_events(conn, "error")
            await conn.send({"type": "output_audio_buffer.clear"})
            seen += await collect_events(conn, "output_audio_buffer.cleared")

    known = {t.value for t in ServerEventType}
    kinds = {e.type for e in seen}
    untyped = sorted({e.type for e in seen if type(e) is ServerEvent})
    assert untyped == []
    assert kinds <= known, kinds - known
    expected = {
        "session.created", "session.updated", "error",
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed", "input_audio_buffer.cleared",
        "conversation.item.created", "conversation.item.truncated", "conversation.item.retrieved",
        "conversation.item.deleted", "response.created", "response.done",
        "response.output_item.added", "response.output_item.done",
        "response.content_part.added", "response.content_part.done",
        "response.audio.delta", "response.audio.done",
        "response.audio_transcript.delta", "response.audio_transcript.done",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "output_audio_buffer.cleared",
    }  # fmt: skip
    assert expected <= kinds, expected - kinds
    for event in seen:  # fields the SDK's own live tests read are present
        if event.type == "response.audio.delta":
            assert isinstance(event.delta, bytes) and event.delta
        if event.type == "response.done":
            assert event.response.usage is not None and event.response.status in ("completed", "cancelled")
