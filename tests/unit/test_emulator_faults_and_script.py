"""Unit tests of the emulator's fault plans, script rules, viseme mapping and EOU cues."""

from __future__ import annotations

import json

import pytest

from vlab.emulator.asr import sounds_unfinished, strip_fillers
from vlab.emulator.faults import Fault, FaultPlan
from vlab.emulator.responder import Script, reply_for
from vlab.emulator.response import visemes_for_word


def test_fault_text_form_parses_every_kind():
    faults = Fault.parse(
        "drop_after:response.audio.delta:3; close_after:session.updated:1:4000;"
        "delay_before:response.created:250; error_after:response.created:2:fatal; throttle:0.5"
    )
    assert faults == [
        Fault("drop", "response.audio.delta", n=3),
        Fault("close", "session.updated", code=4000),
        Fault("delay", "response.created", ms=250.0),
        Fault("error", "response.created", n=2, fatal=True),
        Fault("throttle", rate=0.5),
    ]
    for bad in ("explode:now", "drop_after", "throttle:0", "delay_before:x:abc"):
        with pytest.raises(ValueError, match="bad fault specification"):
            Fault.parse(bad)


def test_fault_plan_counts_occurrences_and_fires_once():
    plan = FaultPlan()
    plan.arm([Fault("drop", "a", n=2), Fault("delay", "b", ms=10, n=1), Fault("throttle", rate=2)])
    assert plan.after("a") == [] and plan.after("a") == [Fault("drop", "a", n=2)] and plan.after("a") == []
    assert plan.delay_before("b") == 10 and plan.delay_before("b") == 0
    assert plan.throttle_rate == 2


def _user(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_script_rules_match_keywords_turns_and_function_outputs():
    script = Script.from_dict(
        {
            "rules": [
                {"keywords": ["weather"], "call": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                {"on": "function_output", "say": "Result: {output}."},
                {"turn": 2, "say": "Again: {text}."},
            ]
        }
    )
    tools = {"tools": [{"type": "function", "name": "get_weather"}], "tool_choice": "auto"}
    reply = reply_for([_user("the weather?")], tools, script=script)
    assert reply.function_call is not None and json.loads(reply.function_call.arguments) == {"city": "Oslo"}
    out = {"type": "function_call_output", "call_id": "c", "output": "rain"}
    assert reply_for([_user("x"), out], tools, script=script).text == "Result: rain."
    assert reply_for([_user("a"), _user("b!")], tools, script=script).text == "Again: b."
    no_calls = {**tools, "tool_choice": "none"}
    assert reply_for([_user("the weather?")], no_calls, script=script).text == "You said: the weather."
    with pytest.raises(ValueError, match="rule 0"):
        Script.from_dict({"rules": [{"keywords": ["x"]}]})


def test_visemes_are_approximate_ids_in_range():
    assert visemes_for_word("map") == [21, 1, 21]
    assert visemes_for_word("Seattle") and all(0 <= v <= 21 for v in visemes_for_word("Seattle"))
    assert visemes_for_word("...") == []


def test_end_of_utterance_cues_and_filler_removal():
    assert sounds_unfinished(["a", "flight", "to"]) and sounds_unfinished(["i", "want", "um"])
    assert not sounds_unfinished(["boston", "please"]) and not sounds_unfinished([])
    assert strip_fillers(["so", "um", "i", "uh", "think"]) == ["so", "i", "think"]
