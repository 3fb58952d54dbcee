"""Unit tests of the emulator's fault plans, script rules, viseme mapping, EOU cues and option errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from vlab.audio.synth import Speech, Word
from vlab.emulator.asr import sounds_unfinished, strip_fillers
from vlab.emulator.faults import Fault, FaultPlan
from vlab.emulator.items import Item
from vlab.emulator.latency import preset
from vlab.emulator.replies import Script, reply_for
from vlab.emulator.server import Emulator, EmulatorExposedWarning
from vlab.emulator.voice import visemes_for_word, word_spans
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
        with pytest.raises(
            ConfigError,
            match="bad fault specification.*expected e.g. 'drop_after:.*'error_after:<type>:<n>:fatal', 'throttle",
        ):
            Fault.parse(bad)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (
            "rate_limit:x",
            "the count 'x' is not a whole number",
        ),  # was "invalid literal for int() with base 10"
        ("delay_before:response.done:abc", "the delay in ms 'abc' is not a number"),
        ("close_after:response.done:2:x", "the close code 'x' is not a whole number"),
        ("delay_before:response.done", "delay_before needs more parts"),  # was "list index out of range"
        ("rate_limit:2:-1", "a rate_limit fault needs retry_after_s >= 0 (seconds), got -1.0"),  # no ".)"
    ],
)
def test_a_bad_fault_specification_says_which_part_is_wrong_in_words(spec, reason):
    with pytest.raises(ConfigError) as info:
        Fault.parse(spec)
    assert str(info.value).startswith(f"bad fault specification {spec!r} ({reason}); expected e.g. ")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Fault("explode", "response.done"),
            r"unknown fault kind 'explode'; use one of drop, close, .*e\.g\. Fault\(",
        ),
        (lambda: Fault("drop"), r"needs 'at'.*e\.g\. Fault\('drop', 'response\.audio\.delta'\)"),
        (lambda: Fault("close", "response.done", n=0), r"from 1.*got 0; give n >= 1"),
        (lambda: Fault("throttle", rate=0), r"rate > 0.*got 0"),
        (
            lambda: Fault("close", "response.done", code=1006),
            r"close frame may carry \(1000-1003, .*got 1006",
        ),
        (lambda: Fault("close", "response.done", code=70000), r"got 70000"),
        (lambda: Fault("close", "response.done", code=True), r"got True"),
        (lambda: Fault("delay", "response.done", ms=-5), r"ms >= 0.*got -5"),
        (
            lambda: Fault("drop", "response.audio.dleta"),
            r"a fault's 'at' is a server event type of the protocol, got 'response.audio.dleta' "
            r"\(did you mean 'response.audio.delta'\?\); e\.g\. 'response\.audio\.delta'",
        ),
        (
            lambda: Fault("drop", "response.create"),
            r"got 'response.create' \(did you mean 'response.created'\?\)",
        ),
        (
            lambda: Emulator(faults=[{"kind": "drop"}]),
            r"a fault is a Fault\(\.\.\.\) or its text form, got dict",
        ),
        (lambda: Emulator(faults="drop"), r"bad fault specification 'drop'"),
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
        (
            lambda: Emulator(port=65536),
            r"port must be a TCP port, 0 to 65535 \(0 picks a free one\), got 65536",
        ),
        (lambda: Emulator(port=-1), r"port must be a TCP port.*got -1"),
        (lambda: Emulator(port="8765"), r"port must be a TCP port.*got '8765'"),  # type: ignore[arg-type]
        (lambda: Emulator(speed="fast"), r"speed must be .*got 'fast'"),
        (
            lambda: Emulator(latency="nope"),
            r"unknown latency preset 'nope'; choose one of .*typical, give a latency.json from `vlab calibrate`, "
            r"or \(from Python\) a LatencyModel",
        ),
        (lambda: preset("slow"), r"instant, slow-network, typical"),
    ],
)
def test_bad_emulator_options_are_config_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_faults_are_taken_as_objects_or_their_text_form_alone_or_in_a_list():
    drop = Fault("drop", "response.audio.delta", n=3)
    throttle = Fault("throttle", rate=0.5)
    for given in (drop, "drop_after:response.audio.delta:3", [drop], ["drop_after:response.audio.delta:3"]):
        assert Emulator(faults=given).config.faults == (drop,)
    assert Emulator(faults=[drop, "throttle:0.5"]).config.faults == (drop, throttle)
    assert Emulator(faults="drop_after:response.audio.delta:3; throttle:0.5").config.faults == (
        drop,
        throttle,
    )
    emu = Emulator()
    assert emu.inject("throttle:0.5") == 0  # not serving: nothing to arm it on
    with pytest.raises(ConfigError, match="a fault is a Fault"):
        emu.inject(3)  # type: ignore[arg-type]


def test_the_exposed_emulator_warning_is_a_vlab_warning():
    assert issubclass(EmulatorExposedWarning, VlabWarning)  # so the error::VlabWarning filter sees it


def test_fault_plan_counts_occurrences_and_fires_once():
    plan = FaultPlan()
    a, b = "response.created", "response.done"
    plan.arm([Fault("drop", a, n=2), Fault("delay", b, ms=10, n=1), Fault("throttle", rate=2)])
    assert plan.after(a) == [] and plan.after(a) == [Fault("drop", a, n=2)] and plan.after(a) == []
    assert plan.delay_before(b) == 10 and plan.delay_before(b) == 0
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
    with pytest.raises(ValueError, match="rule 1 needs"):
        Script.from_dict({"rules": [{"keywords": ["x"]}]})


def _heard(words: str | None, audio_ms: float = 1500.0) -> Item:
    """A user audio turn without transcription, of which the emulator's model heard ``words``."""
    wire = {"id": "a", "type": "message", "role": "user", "content": [{"type": "input_audio"}]}
    return Item(wire, audio_ms=audio_ms, heard=words)


_SAY_ONLY = {"tools": [], "tool_choice": "auto"}


def test_a_script_rule_without_keywords_or_turn_answers_every_user_turn_and_fills_its_fields():
    script = Script.from_dict({"rules": [{"say": "{text}|{seconds}|{output}|{unknown}"}]})
    assert reply_for([_user("Hi there?")], _SAY_ONLY, script=script).text == "Hi there|0.0||{unknown}"
    assert reply_for([_heard("book a table")], _SAY_ONLY, script=script).text == "book a table|1.5||{unknown}"
    assert reply_for([_heard(None)], _SAY_ONLY, script=script).text == "|1.5||{unknown}"  # nothing heard
    assert reply_for([], _SAY_ONLY, script=script).text == "Hello! How can I help you today?"  # no user turn


def test_script_keywords_turns_and_the_conversation_s_end_must_all_match():
    script = Script.from_dict({
        "rules": [
            {"keywords": ["Weather"], "turn": 2, "say": "weather, second turn"},
            {"keywords": ["weather", "rain"], "say": "weather"},
            {"on": "function_output", "keywords": ["rain"], "say": "rain: {output}"},
        ]
    })  # fmt: skip
    assert reply_for([_user("THE WEATHER?")], _SAY_ONLY, script=script).text == "weather"  # either case
    assert reply_for([_user("a"), _user("weather")], _SAY_ONLY, script=script).text == "weather, second turn"
    assert reply_for([_user("a"), _user("rain")], _SAY_ONLY, script=script).text == "weather"
    assert reply_for([_user("hello")], _SAY_ONLY, script=script).text == "You said: hello."  # none matches
    out = Item({"id": "o", "type": "function_call_output", "call_id": "c", "output": "wet"})
    assert reply_for([_user("rain?"), out], _SAY_ONLY, script=script).text == "rain: wet"
    assert reply_for([_user("sun?"), out], _SAY_ONLY, script=script).text == "Here is what I found: wet."
    assert (
        reply_for([out, _user("rain?")], _SAY_ONLY, script=script).text == "weather"
    )  # it ends with the user


def test_a_script_call_without_arguments_sends_an_empty_object_and_a_call_it_cannot_make_is_skipped():
    script = Script.from_dict({
        "rules": [
            {"call": {"name": "get_time"}},
            {"keywords": ["time"], "say": "No clock here.", "call": {"name": "get_time"}},
        ]
    })  # fmt: skip
    tools = {"tools": [{"type": "function", "name": "get_time"}], "tool_choice": "auto"}
    reply = reply_for([_user("what time is it")], tools, script=script)
    assert (reply.text, [(c.name, c.arguments) for c in reply.function_calls]) == ("", [("get_time", "{}")])
    for session in ({**tools, "tool_choice": "none"}, {"tools": [{"type": "function", "name": "other"}]}):
        reply = reply_for([_user("what time is it")], session, script=script)
        assert (reply.text, reply.function_calls) == ("No clock here.", ())  # the first rule had only a call


def test_after_answers_only_the_output_of_its_tool_so_a_chain_of_calls_ends():
    script = Script.load("examples/chained_tools.json")
    tools = {"tools": [{"type": "function", "name": n} for n in ("check_availability", "book_table")]}
    conversation = [_user("A table for four?")]
    for name, output in (("check_availability", "12 and 14"), ("book_table", "table 12")):
        (call,) = reply_for(conversation, tools, script=script).function_calls
        assert call.name == name
        conversation += [
            Item({"id": f"f{name}", "type": "function_call", "name": name, "call_id": f"c_{name}"}),
            Item(
                {"id": f"o{name}", "type": "function_call_output", "call_id": f"c_{name}", "output": output}
            ),
        ]
    reply = reply_for(conversation, tools, script=script)
    assert (reply.text, reply.function_calls) == ("Your table is booked: table 12.", ())
    # an MCP call carries its tool's name; an output of another tool falls through to the built-in rule
    mcp = Item({"id": "m", "type": "mcp_call", "name": "book_table", "output": "table 3"})
    assert reply_for([_user("a table?"), mcp], tools, script=script).text == "Your table is booked: table 3."
    other = Item({"id": "o", "type": "function_call_output", "call_id": "unknown", "output": "9 am"})
    assert reply_for([_user("a table?"), other], tools, script=script).text == "Here is what I found: 9 am."


def test_a_script_file_that_cannot_be_read_says_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the dialogue script .*missing.json.*No such file"):
        Script.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"rules": [\n  {"say": "hi"},\n]}')
    with pytest.raises(ConfigError, match=r"bad.json' is not JSON \(.+, line \d+ column \d+\)"):
        Script.load(tmp_path / "bad.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ConfigError, match="is not UTF-8 JSON text"):
        Script.load(tmp_path / "binary.json")
    (tmp_path / "ok.json").write_text('{"rules": [{"say": "hi"}]}')
    assert Script.load(tmp_path / "ok.json").rules[0].say == "hi"


@pytest.mark.parametrize(
    ("rules", "wrong"),
    [
        (
            {"rules": [{"say": "x", "when": 1}]},
            "unknown key(s) 'when' in my_script.json: rule 1; known: after, call, keywords, on, say, turn",
        ),
        (
            {"rules": [{"say": "x", "keyword": ["a"]}]},
            "'keyword' in my_script.json: rule 1 (did you mean 'keywords'?)",
        ),
        (
            {"rules": [{"say": "x"}, {"on": "assistant", "say": "x"}]},
            "rule 2 'on' must be 'user' or 'function_output', got 'assistant'",
        ),
        ({"rules": [{"say": ""}]}, "rule 1 needs 'say' or 'call'"),
        ({"rules": [{"call": {"arguments": {}}}]}, "rule 1 'call' needs a 'name'"),
        ({"rules": ["say hi"]}, "rule 1 must be an object"),
        ({"rule": []}, 'a script is a JSON object {"rules": [...]}'),
        ({"rules": [{"say": "x"}, {"after": "get_time", "say": "x"}]}, "rule 2 'after' names the tool"),
        ({"rules": [{"on": "function_output", "after": ["a"], "say": "x"}]}, "got after = ['a']"),
    ],
)
def test_a_malformed_script_is_refused_with_the_rule_at_fault(rules, wrong):
    with pytest.raises(ConfigError, match=re.escape(wrong)):
        Script.from_dict(rules, source="my_script.json")


def test_say_instructions_speak_the_rest_verbatim_before_any_script():
    script = Script.from_dict({"rules": [{"say": "scripted"}]})
    assert (
        reply_for([_user("hi")], _SAY_ONLY, "  SAY: Hello, exactly this.  ", script).text
        == "Hello, exactly this."
    )
    assert reply_for([_user("hi")], _SAY_ONLY, "Say:no space", script).text == "no space"
    assert reply_for([_user("hi")], _SAY_ONLY, "say it slowly", script).text == "scripted"


def test_the_user_s_words_come_from_the_first_part_that_has_any():
    parts = [{"type": "input_text", "text": ""}, {"type": "input_audio", "transcript": "hello"}]
    item = Item({"id": "u", "type": "message", "role": "user", "content": parts}, heard="not this")
    assert reply_for([item], _SAY_ONLY).text == "You said: hello."
    assert reply_for([_heard("heard only")], _SAY_ONLY).text == "You said: heard only."


def test_visemes_are_approximate_ids_in_range():
    assert visemes_for_word("map") == [21, 1, 21]
    # Azure's set: 20 k g ŋ, 19 d t n, 6 i ɪ, 8 o, 7 w, 4 ɛ, 16 ʃ, 9 aʊ, 15 s; a final silent e is dropped
    assert visemes_for_word("kid") == [20, 6, 19]
    assert visemes_for_word("dog") == [19, 8, 20]
    assert visemes_for_word("when") == [7, 4, 19]
    assert visemes_for_word("shout") == [16, 9, 19]
    assert visemes_for_word("kite") == [20, 6, 19]
    assert visemes_for_word("sees") == [15, 6, 15]  # "ee" once, not twice
    assert visemes_for_word("Seattle") and all(0 <= v <= 21 for v in visemes_for_word("Seattle"))
    assert visemes_for_word("...") == []


def test_end_of_utterance_cues_and_filler_removal():
    assert sounds_unfinished(["a", "flight", "to"]) and sounds_unfinished(["i", "want", "um"])
    assert not sounds_unfinished(["boston", "please"]) and not sounds_unfinished([])
    assert strip_fillers(["so", "um", "i", "uh", "think"]) == ["so", "i", "think"]


def test_each_word_spans_until_the_next_one_starts_and_the_last_until_the_last_audible_sample():
    rate = 1000  # one sample a ms
    samples = np.zeros(1500, np.float32)
    samples[:1000] = 0.1
    samples[1000:1100] = 0.01  # -40 dBFS: still audible
    samples[1100:1200] = 0.001  # -60 dBFS: below the -50 dBFS floor, as the digital silence after it
    words = (Word("Hello,", 0.0), Word("there", 300.0), Word("...", 500.0), Word("friend.", 700.0))
    assert word_spans(Speech(samples, rate, words)) == [
        ("Hello", 0.0, 300.0),
        ("there", 300.0, 200.0),  # until the dots, which are no word
        ("friend", 700.0, 400.0),
    ]
    late = (Word("one", 0.0), Word("two", 1200.0))  # starts after the audible end: lasts nothing
    assert word_spans(Speech(samples, rate, late)) == [("one", 0.0, 1200.0), ("two", 1200.0, 0.0)]
    silent = np.zeros(800, np.float32)
    assert word_spans(Speech(silent, rate, (Word("hm", 100.0),))) == [("hm", 100.0, 700.0)]  # to the end
    assert word_spans(Speech(samples, rate)) == []
