"""The responder reads requests: tools chosen by meaning with schema-valid arguments, reply length."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

from vlab.emulator import reply_length
from vlab.emulator.items import Item
from vlab.emulator.replies import GREETING, reply_for
from vlab.emulator.session_config import default_session
from vlab.emulator.text_words import numbers, one_edit, stem
from vlab.emulator.tool_choice import THRESHOLD, arguments, choose, score
from vlab.testing import SDK_SAMPLE_TOOLS

# The two tools of Microsoft's function-calling sample (azure-ai-voicelive,
# samples/async_function_calling_sample.py), schemas exactly as the sample sends them.
SAMPLE_TOOLS = list(SDK_SAMPLE_TOOLS)
GET_CURRENT_TIME, GET_CURRENT_WEATHER = SAMPLE_TOOLS
SCHEMAS = {t["name"]: t["parameters"] for t in SAMPLE_TOOLS}


def _session(**overrides) -> dict:
    return {**default_session("s", "m", "2026-07-15", created_s=0), "tools": SAMPLE_TOOLS, **overrides}


def _user(text: str) -> Item:
    return Item(
        {"id": "u", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )


def _calls(text: str, **session) -> list[tuple[str, dict]]:
    reply = reply_for([_user(text)], _session(**session))
    calls = [(c.name, json.loads(c.arguments)) for c in reply.function_calls]
    for name, args in calls:
        jsonschema.validate(args, SCHEMAS[name])  # raises when the arguments break the tool's schema
    return calls


# --- tools by meaning -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What's the weather in Seattle today?", [("get_current_weather", {"location": "Seattle"})]),
        # what PocketSphinx heard for "What's the weather in Seattle today?": no capitals, "in" → "when"
        ("what's the weather when seattle debate", [("get_current_weather", {"location": "Seattle"})]),
        ("weather seattle", [("get_current_weather", {"location": "Seattle"})]),  # the non-tool content word
        ("is it going to rain in san francisco", [("get_current_weather", {"location": "San Francisco"})]),
        (
            "How warm is it in Oslo in fahrenheit?",
            [("get_current_weather", {"location": "Oslo", "unit": "fahrenheit"})],
        ),
        ("what's the temprature in Oslo", [("get_current_weather", {"location": "Oslo"})]),  # one letter off
        ("What time is it in Tokyo?", [("get_current_time", {"timezone": "Tokyo"})]),
        ("What time is it in UTC?", [("get_current_time", {"timezone": "UTC"})]),
        ("what's the current time", [("get_current_time", {})]),  # the optional timezone is left out
        ("Tell me a joke.", []),
        ("Hello there, how are you doing today?", []),
    ],
)
def test_the_sample_s_tools_are_chosen_by_meaning_with_arguments_from_the_schema(text, expected):
    assert _calls(text) == expected


def test_a_request_for_two_tools_makes_two_calls_in_the_order_asked():
    text = "What's the weather in New York and what time is it in Tokyo?"
    assert _calls(text) == [
        ("get_current_weather", {"location": "New York"}),
        ("get_current_time", {"timezone": "Tokyo"}),
    ]
    assert _calls(text, parallel_tool_calls=False) == [("get_current_weather", {"location": "New York"})]
    # the reverse order of asking gives the reverse order of calls
    assert [n for n, _ in _calls("what time is it in Tokyo, and is it raining there")] == [
        "get_current_time",
        "get_current_weather",
    ]


def test_tool_choice_none_required_and_a_named_tool():
    assert _calls("What's the weather in Seattle?", tool_choice="none") == []
    # "required" calls the best tool even below the threshold; both score 0 here, so the first listed
    assert _calls("Tell me a joke.", tool_choice="required") == [("get_current_time", {})]
    named = {"type": "function", "name": "get_current_time"}
    assert _calls("What's the weather in Seattle?", tool_choice=named) == [
        ("get_current_time", {"timezone": "Seattle"})
    ]
    nested = {"type": "function", "function": {"name": "get_current_weather"}}
    assert _calls("What time is it in Tokyo?", tool_choice=nested) == [
        ("get_current_weather", {"location": "Tokyo"})
    ]
    assert _calls("What time is it?", tool_choice={"type": "function", "name": "missing"}) == []


def test_scores_follow_the_documented_weights():
    assert score(GET_CURRENT_WEATHER, "weather") == 3.0  # a word of the name
    assert score(GET_CURRENT_WEATHER, "forecast") == 0.75 * 3.0  # a synonym of a name word
    assert score(GET_CURRENT_WEATHER, "location") == 2.0  # a word of the description
    # a parameter word (1) counts less than being a synonym of a description word (0.75 × 2)
    assert score(GET_CURRENT_WEATHER, "city") == 0.75 * 2.0
    assert score(GET_CURRENT_WEATHER, "the current weather today please") == 3.0  # stop words never count
    assert score(GET_CURRENT_TIME, "local") == 1.0 < THRESHOLD  # one parameter word does not ask for a tool


def test_arguments_of_every_json_type_validate_and_optional_ones_are_left_out():
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "people": {"type": "integer", "minimum": 1, "maximum": 12},
            "budget": {"type": "number"},
            "outdoor": {"type": "boolean"},
            "cuisine": {"type": "string", "enum": ["italian", "thai", "any"]},
            "extras": {"type": "array", "items": {"type": "string", "enum": ["wine", "cake"]}},
            "contact": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
                "required": ["name"],
            },
            "note": {"type": ["string", "null"]},
        },
        "required": ["city", "people", "outdoor", "cuisine", "contact"],
    }
    tool = {
        "type": "function",
        "name": "book_table",
        "description": "Book a restaurant table",
        "parameters": schema,
    }
    args = arguments(tool, "Book a Thai table for twenty one people in Paris with cake")
    jsonschema.validate(args, schema)
    assert args == {
        "city": "Paris",
        "people": 12,  # 21 said, clamped to the maximum
        "outdoor": False,  # required boolean not mentioned
        "cuisine": "thai",
        "contact": {"name": "Paris"},
        "extras": ["cake"],
    }
    bare = arguments(tool, "book it")
    jsonschema.validate(bare, schema)
    assert (
        bare["people"] == 1 and bare["cuisine"] == "italian" and "extras" not in bare and "budget" not in bare
    )
    assert arguments(tool, "outdoor seats for 4, budget 80.5")["budget"] == 80.5


def test_malformed_tools_never_break_the_responder():
    odd = [
        {"type": "function", "name": "get_weather", "parameters": None},
        {"type": "function", "name": "get_time", "parameters": {"properties": ["not", "an", "object"]}},
        {
            "type": "function",
            "name": "lookup",
            "parameters": {"properties": {"q": "text"}, "required": ["q", 3]},
        },
        {"type": "function"},
        {"type": "mcp", "name": "weather_server"},
    ]
    assert _calls_of("What's the weather in Oslo?", odd) == [("get_weather", {})]
    assert _calls_of("lookup the capital of peru", odd) == [("lookup", {"q": "Peru"})]


def _calls_of(text: str, tools: list) -> list[tuple[str, dict]]:
    return [
        (c.name, json.loads(c.arguments))
        for c in reply_for([_user(text)], _session(tools=tools)).function_calls
    ]


def test_words_stems_edits_and_spoken_numbers():
    assert {stem(w) for w in ("forecast", "forecasts")} == {"forecast"}
    assert (
        stem("raining") == stem("rain")
        and stem("cities") == stem("city")
        and stem("reserved") == stem("reserve")
    )
    assert stem("calling") == stem("call") and stem("news") != stem("new")
    assert one_edit("temprature", "temperature") and not one_edit("seattle", "state")
    assert numbers("twenty one, 3.5, four two five, a hundred, two hundred and five") == [
        21,
        3.5,
        425,
        100,
        205,
    ]


def test_the_stemmer_treats_each_suffix_alike_on_both_sides():
    pairs = [("stopping", "stop"), ("calling", "call"), ("rated", "rate"), ("watches", "watch"),
             ("boxes", "box"), ("ladies", "lady"), ("cats", "cat"), ("Anna's", "anna")]  # fmt: skip
    assert [stem(a) == stem(b) for a, b in pairs] == [True] * len(pairs)
    assert [stem(w) for w in ("stopping", "glass", "bus", "is", "agree")] == [
        "stop",
        "glass",
        "bus",
        "is",
        "agree",
    ]


def test_one_edit_is_exactly_one_letter_inserted_deleted_or_replaced():
    assert one_edit("cat", "cats") and one_edit("cats", "cat") and one_edit("cat", "cut")
    assert not one_edit("cat", "cat") and not one_edit("ab", "ba") and not one_edit("cat", "cates")


def test_every_number_word_reads_as_its_value():
    units = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    units += " sixteen seventeen eighteen nineteen"
    assert numbers(units.replace(" ", ", ")) == list(range(20)) and numbers("oh") == [0]
    tens = "twenty, thirty, forty, fifty, sixty, seventy, eighty, ninety"
    assert numbers(tens) == list(range(20, 100, 10))
    assert numbers("hundred, thousand, million") == [100, 1000, 1_000_000]
    assert numbers("four two") == [42] and numbers("twenty two") == [22]  # two digits are dictation
    assert numbers("three thousand two hundred and one") == [3201]


# --- reply length -----------------------------------------------------------------------------------------


def _reply(text: str | None = None, *, response_instructions: str | None = None, **session):
    conversation = [_user(text)] if text is not None else []
    return reply_for(
        conversation,
        {**default_session("s", "m", "2026-07-15", created_s=0), **session},
        response_instructions,
    )


def _story_words(reply_text: str) -> int:
    return len(reply_text.partition(reply_length.STORY_OPENING)[2].split())


def test_replies_are_short_by_default_and_long_when_the_user_asks():
    assert _reply("What can you do?").text == "You said: What can you do."
    long = _reply("Tell me a long story about dragons.").text
    assert long.startswith("You said: Tell me a long story about dragons. Here is a story. ")
    # ≥ 20 s of speech at eSpeak's default 175 words a minute needs ≥ 59 words
    assert _story_words(long) >= reply_length.LONG_WORDS > 20 * 175 / 60
    assert _reply("Can you explain how tides work?").text.count(" ") > 60  # the user's "explain" asks
    assert _reply("How long is the river?").text == "You said: How long is the river."  # not a cue


def test_instructions_ask_for_length_response_first_then_user_then_session():
    story = "Tell a long, detailed story of at least ten sentences."
    reply = _reply("Hello.", instructions=story).text
    body = reply.partition(reply_length.STORY_OPENING)[2]
    fable_sentences = [s for s in reply_length._SENTENCE.findall(body) if s.strip()]
    assert len(fable_sentences) >= 10
    assert _reply(instructions=story).text.startswith(GREETING + " Here is a story.")
    # the response's instructions win over the session's, and the user's words over the session's
    assert _reply(
        "Hello.", response_instructions="Answer in one short sentence.", instructions=story
    ).text == ("You said: Hello.")
    assert _reply("Tell me a story.", instructions="Be concise.").text.count(".") > 5
    # in instructions "explain" describes behaviour (Microsoft's function-calling sample): no long reply
    sample = "Explain when you're using a function and include the results in your response naturally."
    assert _reply("Hello.", instructions=sample).text == "You said: Hello."


def test_counts_of_words_and_paragraphs():
    words = _reply("Give me 200 words about the sea.").text
    assert 200 <= _story_words(words) < 200 + 60  # whole sentences: at most one sentence over
    assert _story_words(_reply("Write two paragraphs.").text) > 60
    assert _reply("Answer in 10 words.").text == "You said: Answer in 10 words."
    assert (
        _reply("Tell me about Rome in two sentences.").text
        == "You said: Tell me about Rome in two sentences."
    )


def test_long_replies_are_deterministic_and_vary_with_the_conversation():
    a = _reply("Tell me a story.").text
    assert a == _reply("Tell me a story.").text
    assert a != _reply("Tell me a story about the sea.").text.replace(" about the sea", "")


def test_max_response_output_tokens_caps_the_reply_and_marks_it_incomplete():
    capped = _reply("Tell me a long story.", max_response_output_tokens=20)
    assert capped.incomplete and len(capped.text.split()) == int(20 / reply_length.TOKENS_PER_WORD) == 15
    assert int(len(capped.text.split()) * reply_length.TOKENS_PER_WORD) <= 20  # the usage estimate fits
    uncapped = _reply("Tell me a long story.", max_response_output_tokens="inf")
    assert not uncapped.incomplete and len(uncapped.text.split()) > 100
    short = _reply("Hi.", max_response_output_tokens=20)
    assert short.text == "You said: Hi." and not short.incomplete
    verbatim = _reply("Hi.", response_instructions="Say: " + "word " * 30, max_response_output_tokens=5)
    assert verbatim.text.count("word") == 30  # "Say:" is spoken verbatim, uncapped


def test_the_bundled_fables_name_their_public_domain_source():
    from importlib import resources

    header = (
        resources.files("vlab.emulator").joinpath("fables.txt").read_text(encoding="utf-8").splitlines()[0]
    )
    assert "Jacobs" in header and "1894" in header and "public domain" in header
    fables = reply_length.fables()
    assert len(fables) >= 6 and all(title and len(sentences) >= 4 for title, sentences in fables)


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        (
            "Write two paragraphs.",
            reply_length.LengthRequest(True, sentences=2 * reply_length.SENTENCES_PER_PARAGRAPH),
        ),
        (
            "One paragraph, please.",
            reply_length.LengthRequest(True, sentences=reply_length.SENTENCES_PER_PARAGRAPH),
        ),
        ("Answer in 3 sentences.", reply_length.LengthRequest(True, sentences=3)),
        ("Answer in 2 sentences.", reply_length.SHORT),
        ("Use forty words.", reply_length.LengthRequest(True, words=reply_length.LONG_WORDS_FROM)),
        ("Use 39 words.", reply_length.SHORT),
        ("Use 5000 words.", reply_length.LengthRequest(True, words=reply_length.MAX_WORDS)),
        ("Tell me a long story about 3 cats.", reply_length.LengthRequest(True)),  # a number, but no count
        (
            "Give me 5 long and detailed words.",
            reply_length.LengthRequest(True),
        ),  # the number is too far back
        ("Sentences are hard.", None),
    ],
)
def test_a_count_asks_for_exactly_that_length(text, request_):
    assert reply_length.read_request(text, user=True) == request_


def _fable_sentences(reply_text: str) -> list[str]:
    """The story's sentences, without the fables' titles."""
    titles = {title + "." for title, _ in reply_length.fables()}
    body = reply_text.partition(reply_length.STORY_OPENING)[2]
    return [s.strip() for s in reply_length._SENTENCE.findall(body) if s.strip() not in titles]


def test_a_long_reply_stops_at_the_sentence_that_reaches_the_length_asked():
    three = reply_length.lengthen("Hi.", reply_length.LengthRequest(True, sentences=3), "seed")
    assert len(_fable_sentences(three)) == 3
    hundred = _fable_sentences(
        reply_length.lengthen("Hi.", reply_length.LengthRequest(True, words=100), "seed")
    )
    words = [len(s.split()) for s in hundred]
    assert sum(words) >= 100 > sum(words[:-1])  # the last sentence is the one that reaches 100
    exactly = sum(len(s.split()) for s in _fable_sentences(three))  # a count met at a sentence's end
    met = reply_length.lengthen("Hi.", reply_length.LengthRequest(True, words=exactly), "seed")
    assert _fable_sentences(met) == _fable_sentences(three)
    assert reply_length.lengthen("Hi.", reply_length.SHORT, "seed") == "Hi."


def test_the_word_cap_allows_the_words_the_tokens_pay_for_and_at_least_one():
    assert [reply_length.word_cap(n) for n in (1, 2, 13, 14)] == [1, 1, 10, 10]
    assert (
        reply_length.word_cap("inf") is reply_length.word_cap(math.inf) is reply_length.word_cap(True) is None
    )


def test_the_emulator_guide_states_the_reply_length_rules_the_code_follows():
    from pathlib import Path

    guide = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text(encoding="utf-8")
    text = " ".join(guide.split())
    rl = reply_length
    for stated in (
        f'"two paragraphs" of {rl.SENTENCES_PER_PARAGRAPH} sentences each',
        f"fewer than {rl.LONG_SENTENCES_FROM} sentences or {rl.LONG_WORDS_FROM} words is short",
        f"or {rl.LONG_WORDS} words of story otherwise",
        f"At most {rl.MAX_WORDS} words",
        f"`floor(N / {rl.TOKENS_PER_WORD:g})` words, the usage estimate's {rl.TOKENS_PER_WORD:g} tokens a word",
    ):
        assert stated in text, stated


def _function(name: str, description: str = "", required: tuple[str, ...] = (), **properties: dict) -> dict:
    parameters = {"type": "object", "properties": properties, "required": list(required)}
    return {"type": "function", "name": name, "description": description, "parameters": parameters}


def test_a_tool_at_exactly_the_threshold_is_called_and_only_named_function_tools_count():
    book = _function("book", "restaurant booking")
    assert score(book, "a restaurant") == THRESHOLD  # one exact word of the description
    others = [
        {"type": "mcp", "name": "reserve", "description": "restaurant"},
        {"type": "function", "description": "restaurant"},
    ]
    assert [
        (tool["name"], args) for tool, args in choose([*others, book], "auto", "find me a restaurant")
    ] == [("book", {})]
    assert score(GET_CURRENT_WEATHER, "weather, weather") == 3.0  # a word counts once
    two = choose([book, GET_CURRENT_WEATHER], "auto", "Find me a restaurant and the weather in Oslo")
    assert [tool["name"] for tool, _ in two] == [
        "book",
        "get_current_weather",
    ]  # each clause at the threshold


def test_numbers_come_from_the_clause_else_from_the_whole_text_and_default_to_the_schema():
    people = {"type": "integer", "minimum": 1}
    tool = _function("book_table", "Book a restaurant table", ("people",), people=people)
    assert choose([tool], "auto", "Book a table, we are 4")[0][1] == {"people": 4}
    assert arguments(_function("t", required=("n",), n={"type": "integer"}), "nothing said") == {"n": 0}
    assert arguments(_function("t", required=("n",), n={"type": "number", "minimum": 2}), "none") == {
        "n": 2.0
    }
    assert arguments(_function("t", required=("n",), n={"type": "integer", "default": 3}), "none") == {"n": 3}


def test_an_enum_value_heard_one_letter_off_and_lower_case_phrases_in_a_text_with_capitals():
    cuisine = {"type": "string", "enum": ["italian", "thai"]}
    assert arguments(_function("book", required=("cuisine",), cuisine=cuisine), "a thay table") == {
        "cuisine": "thai"
    }
    find = _function(
        "find_places", "Find places", ("query", "city"), query={"type": "string"}, city={"type": "string"}
    )
    assert arguments(find, "Find places for pizza lovers in Boston") == {
        "query": "pizza lovers",
        "city": "Boston",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Show me the wiki of the repository contoso/app.", {"repo": "contoso/app"}),
        (
            "Read the wiki of Azure/azure-sdk-for-python please",
            {"repo": "Azure/azure-sdk-for-python"},
        ),
        (
            "Compare the wiki of contoso/app with fabrikam/web",
            {"repo": "contoso/app", "other": "fabrikam/web"},
        ),
        ("Open the wiki at https://example.com/docs/start.", {"repo": "https://example.com/docs/start"}),
        ("Open the wiki at https://example.com.", {"repo": "https://example.com"}),
        ("Show me the wiki in Seattle", {"repo": "Seattle"}),  # no identifier: the words, as before
    ],
)
def test_an_identifier_joined_by_slashes_is_one_value_taken_whole(text, expected):
    wiki = _function(
        "read_wiki",
        "Read the wiki of a repository",
        ("repo",),
        repo={"type": "string"},
        other={"type": "string"},
    )
    assert arguments(wiki, text) == expected


def test_a_required_string_left_without_a_phrase_takes_no_word_of_an_identifier():
    ask = _function(
        "ask_question",
        "Ask a question about a repository",
        ("repo", "question"),
        repo={"type": "string"},
        question={"type": "string"},
    )
    assert arguments(ask, "Ask about Contoso/App today") == {
        "repo": "Contoso/App",
        "question": "Ask about Contoso/App today",  # the whole clause, not "Contoso" or "App"
    }


def test_an_mcp_output_is_spoken_up_to_40_words_and_a_failed_or_declined_call_is_said():
    words = [f"w{i}" for i in range(60)]
    call = {"id": "c", "type": "mcp_call", "server_label": "s", "name": "search", "arguments": "{}"}
    spoken = reply_for([_user("hi"), Item({**call, "output": " ".join(words)})], _session())
    assert spoken.text == f"Here is what I found: {' '.join(words[:40])}."
    failed = reply_for(
        [_user("hi"), Item({**call, "output": None, "error": {"message": "gone."}})], _session()
    )
    assert failed.text == "The search tool failed: gone."
    asked = Item({"id": "a", "type": "mcp_approval_request", "server_label": "s", "name": "search"})
    declined = Item(
        {"id": "r", "type": "mcp_approval_response", "approval_request_id": "a", "approve": False}
    )
    assert (
        reply_for([_user("hi"), asked, declined], _session()).text
        == "I did not run search, as you declined it."
    )
    # an unfinished call (no output yet) is not an answer: the user's words are
    assert reply_for([_user("hi"), Item({**call, "output": None})], _session()).text == "You said: hi."
