"""Unit tests of the emulator's fault plans, script rules, viseme mapping, EOU cues and option errors."""

from __future__ import annotations

import json

import pytest

from vlab.emulator.asr import sounds_unfinished, strip_fillers
from vlab.emulator.faults import Fault, FaultPlan
from vlab.emulator.items import Item
from vlab.emulator.latency import preset
from vlab.emulator.replies import Script, reply_for
from vlab.emulator.server import Emulator, EmulatorExposedWarning
from vlab.emulator.voice import visemes_for_word
from vlab.errors import ConfigError, VlabWarning


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
        with pytest.raises(ConfigError, match="bad fault specification.*expected e.g. 'drop_after:"):
            Fault.parse(bad)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Fault("explode", "x"),
            r"unknown fault kind 'explode'; use one of drop, close, .*e\.g\. Fault\(",
        ),
        (lambda: Fault("drop"), r"needs 'at'.*e\.g\. Fault\('drop', 'response\.audio\.delta'\)"),
        (lambda: Fault("close", "x", n=0), r"from 1.*got 0; give n >= 1"),
        (lambda: Fault("throttle", rate=0), r"rate > 0.*got 0"),
        (lambda: Fault("delay", "x", ms=-5), r"ms >= 0.*got -5"),
    ],
)
def test_bad_faults_are_config_errors_that_say_how_to_fix_them(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Emulator(speed=0), r"speed must be a number > 0 .* or 'max'.*got 0"),
        (lambda: Emulator(speed="fast"), r"speed must be .*got 'fast'"),
        (
            lambda: Emulator(latency="nope"),
            r"unknown latency preset 'nope'; choose one of .*typical.*LatencyModel",
        ),
        (lambda: preset("slow"), r"instant, slow-network, typical"),
    ],
)
def test_bad_emulator_options_are_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_exposed_emulator_warning_is_a_vlab_warning():
    assert issubclass(EmulatorExposedWarning, VlabWarning)  # so the error::VlabWarning filter sees it


def test_fault_plan_counts_occurrences_and_fires_once():
    plan = FaultPlan()
    plan.arm([Fault("drop", "a", n=2), Fault("delay", "b", ms=10, n=1), Fault("throttle", rate=2)])
    assert plan.after("a") == [] and plan.after("a") == [Fault("drop", "a", n=2)] and plan.after("a") == []
    assert plan.delay_before("b") == 10 and plan.delay_before("b") == 0
    assert plan.throttle_rate == 2


def _user(text: str) -> Item:
    return Item(
        {"id": "u", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )


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
    assert [json.loads(c.arguments) for c in reply.function_calls] == [{"city": "Oslo"}]
    out = Item({"id": "o", "type": "function_call_output", "call_id": "c", "output": "rain"})
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
