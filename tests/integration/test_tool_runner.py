"""ToolRunner on a real Session against the emulator: function handlers and MCP approvals, until the answer is spoken."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pandas as pd
import pytest

from tests._mcp_server import answer, stand_in_mcp
from vlab import Session, protocol
from vlab.feed import feed_prompt, trailing_silence_ms
from vlab.metrics import tool_calls, turn_latency
from vlab.prompts import load_prompt_set, select_prompts
from vlab.session import McpApprovalRequest, ToolRunner
from vlab.settings import FunctionTool, McpServer, ServerVad, SessionSettings
from vlab.testing import SDK_SAMPLE_TOOLS, spoken_prompt

LEARN = "https://learn.microsoft.com/api/mcp"
FAST = {"speed": math.inf, "latency": "instant"}


def _said(frame: Any) -> list[str]:
    done = frame[frame["type"] == protocol.AUDIO_TRANSCRIPT_DONE]
    return done["text"].tolist()


async def _spoken(session: Session, count: int) -> None:
    """Wait until ``count`` replies have been spoken in all."""
    while len(_said(session.frame())) < count:
        await session.wait_for(protocol.AUDIO_TRANSCRIPT_DONE)


async def test_a_function_call_runs_its_handler_and_the_answer_is_spoken():
    tools = [FunctionTool(**{k: v for k, v in t.items() if k != "type"}) for t in SDK_SAMPLE_TOOLS]
    settings = SessionSettings(tools=tools, turn_detection=None)
    asked: list[dict[str, Any]] = []

    async def get_current_weather(location: str, unit: str = "celsius") -> dict[str, Any]:
        asked.append({"location": location, "unit": unit})
        return {"location": location, "temperature": 22, "unit": unit}

    async with Session(settings, emulator_options=FAST, dotenv_path=False) as session:
        async with ToolRunner(session, {"get_current_weather": get_current_weather}) as runner:
            await session.send_text("What is the weather in Seattle?")
            await session.wait_for(protocol.RESPONSE_DONE)  # the call's response
            await runner.settled()  # the handler's answer, and the response that speaks it
        frame = session.frame()
    assert asked == [{"location": "Seattle", "unit": "celsius"}] and runner.errors == []
    result = {"location": "Seattle", "temperature": 22, "unit": "celsius"}
    assert _said(frame) == [f"Here is what I found: {json.dumps(result)}."]
    calls = tool_calls(frame)
    assert calls[["kind", "name", "status", "output"]].values.tolist() == [
        ["function", "get_current_weather", "completed", json.dumps(result)]
    ]
    client = frame[frame["direction"] == "client"]["type"].tolist()
    assert client.count(protocol.CLIENT_RESPONSE_CREATE) == 2  # the question's, then the answer's
    question, answer = (row for _, row in turn_latency(frame).iterrows())
    assert (question["tool_calls"], answer["tool_calls"], answer["answers_turn"]) == (1, 0, 0)
    assert question["answer_response_id"] == answer["response_id"]
    wait_ns = answer["t_first_audible_ns"] - question["t_eos_ns"]  # the question sent → the answer heard
    assert question["voice_to_answer_ms"] == wait_ns / 1e6 > answer["voice_to_voice_ms"]
    assert math.isnan(answer["voice_to_answer_ms"])  # its time is the question's


async def test_mcp_calls_are_approved_or_declined_by_the_approver_and_each_answer_is_spoken():
    server = McpServer("azure_doc", LEARN, require_approval="always")
    settings = SessionSettings(tools=[server], turn_detection=None)
    requests: list[McpApprovalRequest] = []

    async def approve(request: McpApprovalRequest) -> bool:
        requests.append(request)
        return len(requests) == 1  # the first call, not the second

    async with stand_in_mcp() as mcp:
        options = {**FAST, "mcp_redirects": {LEARN: mcp.url}}
        async with Session(settings, emulator_options=options, dotenv_path=False) as session:
            await session.wait_for(protocol.MCP_LIST_TOOLS_COMPLETED)
            async with ToolRunner(session, approve=approve):
                await session.send_text("Search the Microsoft documentation for voice live.")
                await _spoken(session, 1)
                await session.send_text("Search the Microsoft documentation for avatars.")
                await _spoken(session, 2)
            frame = session.frame()
    assert [(r.server_label, r.name) for r in requests] == [("azure_doc", "microsoft_docs_search")] * 2
    first = answer("microsoft_docs_search", json.loads(requests[0].arguments))
    assert _said(frame) == [
        f"Here is what I found: {first}.",
        "I did not run microsoft_docs_search, as you declined it.",
    ]
    assert mcp.methods().count("tools/call") == 1
    assert tool_calls(frame)["status"].tolist() == ["completed", "declined"]


async def test_the_runner_stops_with_the_session_and_leaves_no_task_behind():
    settings = SessionSettings(tools=[FunctionTool("get_current_time")], turn_detection=None)
    session = Session(settings, emulator_options=FAST, dotenv_path=False)
    async with session:
        runner = ToolRunner(session, {"get_current_time": lambda: "noon"})
        runner.start()
        await session.send_text("What time is it?")
        await _spoken(session, 1)
    await runner.aclose()
    assert _said(session.frame()) == ["Here is what I found: noon."]
    assert not [t for t in asyncio.all_tasks() if "ToolRunner" in repr(t.get_coro())]


async def test_settled_waits_for_an_mcp_call_made_after_its_response_and_for_the_answer_to_it():
    server = McpServer("azure_doc", LEARN, require_approval="never")
    settings = SessionSettings(tools=[server], turn_detection=None)
    async with stand_in_mcp() as mcp:
        options = {"speed": math.inf, "latency": "typical", "mcp_redirects": {LEARN: mcp.url}}
        async with Session(settings, emulator_options=options, dotenv_path=False) as session:
            await session.wait_for(protocol.MCP_LIST_TOOLS_COMPLETED)
            async with ToolRunner(session) as runner:
                await session.send_text("Search the Microsoft documentation for voice live.")
                await session.wait_for(protocol.RESPONSE_DONE)  # it holds the call; the call comes after it
                await runner.settled()
                frame = session.frame()
    (arguments,) = tool_calls(frame)["arguments"]
    assert _said(frame) == [
        f"Here is what I found: {answer('microsoft_docs_search', json.loads(arguments))}."
    ]


@pytest.mark.parametrize("approval", ["never", "always"])
async def test_a_spoken_question_answered_through_mcp_is_timed_alike_at_every_speed(approval):
    """On the input timeline an MCP call holds time as a function call does: the approval, and the request
    for the spoken answer once the call returned, happen where the call is, not after the rest of the
    audio (which left the client long before, at speed "max"), and before the user's next turn."""
    prompt = spoken_prompt("Search the Microsoft documentation for voice live.", lead_ms=300, trail_ms=7000)
    thanks = spoken_prompt("Thank you.", lead_ms=0, trail_ms=0)  # after the answer: the user's next turn
    server = McpServer("azure_doc", LEARN, require_approval=approval)
    settings = SessionSettings(tools=(server,), turn_detection=ServerVad())
    pcm = prompt.pcm + thanks.pcm + bytes(2 * 24 * trailing_silence_ms(settings.turn_detection))
    turns, frames = {}, {}
    async with stand_in_mcp() as mcp:
        for speed in (math.inf, 8.0):
            options = {"speed": speed, "hear_audio": True, "mcp_redirects": {LEARN: mcp.url}}
            async with Session(settings, emulator_options=options, dotenv_path=False) as session:
                async with ToolRunner(session, approve=True) as runner:
                    await feed_prompt(session, pcm, speed=speed, timeout_s=60, tools=runner)
                    await runner.settled()
                frames[speed] = session.frame()
            turns[speed] = turn_latency(frames[speed])
    timed = ["trigger", "answers_turn", "t_eos_ns", "t_created_ns", "t_first_audio_ns", "t_done_ns",
             "voice_to_answer_ms", "dead_air_ms"]  # fmt: skip
    pd.testing.assert_frame_equal(turns[math.inf][timed], turns[8.0][timed])

    fast, frame = turns[math.inf], frames[math.inf]
    question, answer, thanks = fast.iloc[0], fast.iloc[-2], fast.iloc[-1]
    assert question.trigger == "vad" and question.answer_response_id == answer.response_id
    assert fast.answers_turn.tolist() == [-1, *[0] * (len(fast) - 2), -1] and answer.trigger == "client"
    assert thanks.trigger == "vad" and thanks.t_eos_ns > answer.t_done_ns  # spoken after the answer
    returned_ms = frame[frame["type"] == protocol.MCP_CALL_COMPLETED]["sim_ms"].item()
    assert answer.t_eos_ns == returned_ms * 1e6 < prompt.duration_ms * 1e6  # asked for when the call returned
    wait_ms = (answer.t_first_audible_ns - question.t_eos_ns) / 1e6
    assert question.voice_to_answer_ms == pytest.approx(wait_ms) and math.isfinite(question.dead_air_ms)
    if approval == "always":  # the approval, at the request's end, starts the call's own response
        approved = fast.iloc[1]
        assert (len(fast), approved.trigger, approved.tool_calls) == (4, "client", 1)
        assert approved.t_eos_ns == question.t_done_ns
    assert tool_calls(frame)["status"].tolist() == ["completed"]


async def test_a_committed_turn_s_chain_of_calls_is_timed_alike_at_every_speed():
    """Manual turns (no turn detection: the session panel's "manual"): the committed turn's response, its
    calls and their answers all come after the audio it answers. The feed's rounds send the user's silence
    until the chain is answered, so each answer happens on the input timeline, each function's run time
    included, at any speed (before, they came after ``ended``: the run times were lost and the answers
    were placed before the calls they answer)."""
    pcm = _TABLE_PROMPT.pcm(24_000)
    turns = {}
    for speed in (math.inf, 4.0):
        async with _table_chain(speed) as session:
            run_ms = {"check_availability": 800, "book_table": 600}
            async with ToolRunner(session, _TABLE_HANDLERS, run_ms=run_ms) as runner:
                await feed_prompt(session, pcm, speed=speed, timeout_s=60, commit=True, tools=runner)
                assert runner.idle  # the feed answered the whole chain before it said "ended"
            frame = session.frame()
        turns[speed] = turn_latency(frame)
    timed = ["trigger", "tool_calls", "t_eos_ns", "t_created_ns", "t_first_audio_ns", "t_done_ns",
             "voice_to_answer_ms"]  # fmt: skip
    pd.testing.assert_frame_equal(turns[math.inf][timed], turns[4.0][timed])
    question, booking, answer = (row for _, row in turns[math.inf].iterrows())
    assert [question.trigger, booking.trigger, answer.trigger] == ["commit", "client", "client"]
    assert (question.tool_calls, booking.tool_calls, question.calls_to_answer) == (1, 1, 2)
    assert question.t_eos_ns == len(pcm) / 2 / 24_000 * 1e9  # committed at the audio's end
    assert question.a_eos_ms == len(pcm) / 2 / 24  # the audio it committed, on the input-audio clock
    assert booking.t_eos_ns == question.t_done_ns + 800e6  # each output, its function's run after the call
    assert answer.t_eos_ns == booking.t_done_ns + 600e6
    assert question.voice_to_answer_ms == pytest.approx((answer.t_first_audible_ns - question.t_eos_ns) / 1e6)
    assert [c["name"] for c in tool_calls(frame).to_dict("records")] == ["check_availability", "book_table"]
    assert _said(frame) == ['Your table is booked: {"table": 12}.']


async def test_answers_sent_after_ended_are_timed_where_the_emulator_placed_them():
    """A client that says ``ended`` before it answers (here ``feed_prompt`` without its runner): on the
    free-running timeline the emulator places each answer where its time then is, the call's end, not at
    the end of the audio before it. ``turn_latency`` places the client's events no earlier than the last
    server event it had received, as the emulator does."""
    async with _table_chain(math.inf) as session:
        async with ToolRunner(session, _TABLE_HANDLERS) as runner:
            await feed_prompt(session, _TABLE_PROMPT.pcm(24_000), speed=math.inf, timeout_s=60, commit=True)
            await runner.settled()
        frame = session.frame()
    outputs = [
        sim_ms * 1e6
        for sim_ms, payload in frame[frame["type"] == protocol.ITEM_CREATED][["sim_ms", "payload"]].values
        if json.loads(payload)["item"]["type"] == "function_call_output"
    ]
    question, booking, answer = (row for _, row in turn_latency(frame).iterrows())
    assert [booking.t_eos_ns, answer.t_eos_ns] == outputs  # where the emulator placed each output
    assert booking.t_eos_ns == question.t_done_ns and answer.t_eos_ns == booking.t_done_ns


_TABLE_PROMPT = select_prompts(load_prompt_set(), ["pause_300"])[0]
""""I would like to book a table for … four people at seven tonight": examples/chained_tools.json's chain."""


_TABLE_HANDLERS = {
    "check_availability": lambda **_: {"free": [12, 14]},
    "book_table": lambda **_: {"table": 12},
}


def _table_chain(speed: float) -> Session:
    """A session with manual turns whose emulator follows examples/chained_tools.json."""
    tools = [
        FunctionTool(name="check_availability", description="Which tables are free"),
        FunctionTool(name="book_table", description="Book a table"),
    ]
    options = {"speed": speed, "hear_audio": True, "script": "examples/chained_tools.json"}
    return Session(
        SessionSettings(tools=tools, turn_detection=None), emulator_options=options, dotenv_path=False
    )
