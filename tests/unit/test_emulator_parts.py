"""Unit tests of the emulator's parts: latency model, session config, wire parsing, responder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vlab.emulator.items import Item
from vlab.emulator.latency import LatencyModel, LatencySampler, StageDelay, preset
from vlab.emulator.replies import GREETING, reply_for
from vlab.emulator.session_config import apply_update, default_prefix_padding_ms, default_session
from vlab.emulator.wire import WireError, parse_client_frame


def test_latency_draws_are_seeded_and_never_negative():
    a = LatencySampler(preset("typical", seed=7))
    b = LatencySampler(preset("typical", seed=7))
    draws = [a.draw_ms("first_token") for _ in range(200)]
    assert draws == [b.draw_ms("first_token") for _ in range(200)]
    assert min(draws) >= 250 and max(draws) < 250 + 6 * 60
    assert LatencySampler(preset("typical", seed=8)).draw_ms("first_token") != draws[0]


def test_a_stage_draw_is_its_fixed_part_plus_a_half_normal_of_its_jitter():
    draws = [LatencySampler(preset("typical", seed=s)).draw_ms("first_token") for s in range(2000)]
    mean_jitter = sum(d - 250 for d in draws) / len(draws)
    assert mean_jitter == pytest.approx(60 * math.sqrt(2 / math.pi), rel=0.06)  # E|N(0, σ)| = σ √(2/π)
    exact = LatencyModel(stages={"endpointing": StageDelay(30), "network": StageDelay(10)})
    assert LatencySampler(exact).draw_ms("endpointing") == 30 and LatencySampler(exact).draw_ms("commit") == 0
    assert (
        LatencySampler(exact).speech_stopped_at_ms(1000.0, 900.0) == 1040
    )  # decided + endpointing + network


def test_each_stream_draws_the_same_whatever_the_others_draw_and_the_offset_adds_to_the_seed():
    alone, mixed = LatencySampler(preset("typical", seed=3)), LatencySampler(preset("typical", seed=3))
    vad_alone = [alone.draw_ms("network", stream="vad") for _ in range(5)]
    vad_mixed = []
    for _ in range(5):
        mixed.response_delays()
        vad_mixed.append(mixed.draw_ms("network", stream="vad"))
    assert vad_mixed == vad_alone
    offset = LatencySampler(preset("typical", seed=3), seed_offset=4).response_delays()
    assert offset == LatencySampler(preset("typical", seed=7)).response_delays()
    assert offset != LatencySampler(preset("typical", seed=3)).response_delays()
    # reseeded (a client's session.metadata seed), a sampler that has drawn starts again as a new one
    drawn = LatencySampler(preset("typical", seed=3), seed_offset=5)
    drawn.response_delays()
    drawn.draw_ms("network", stream="vad")
    drawn.reseed(11)
    fresh = LatencySampler(preset("typical", seed=11))
    assert [drawn.response_delays(), drawn.draw_ms("network", stream="vad")] == [
        fresh.response_delays(),
        fresh.draw_ms("network", stream="vad"),
    ]


def test_output_pacing_follows_the_realtime_factor_and_its_jitter():
    steady = LatencySampler(LatencyModel(tts_realtime_factor=5.0))
    assert steady.response_delays()["tts_realtime_factor"] == 5.0
    assert steady.audio_send_offset_ms(1000.0) == 200 and steady.audio_send_offset_ms(1000.0, rtf=2.0) == 500
    jittered = LatencySampler(LatencyModel(tts_realtime_factor=5.0, tts_realtime_jitter=1.0))
    factors = [jittered.response_delays()["tts_realtime_factor"] for _ in range(200)]
    assert min(factors) > 5.0 and len(set(factors)) == 200  # drawn per response, never below the factor
    instant = LatencySampler(LatencyModel(tts_realtime_factor=math.inf, tts_realtime_jitter=1.0))
    assert (
        instant.response_delays()["tts_realtime_factor"] == math.inf
        and instant.audio_send_offset_ms(5e3) == 0
    )


def test_instant_model_has_no_delays_and_unknown_presets_are_named():
    assert LatencySampler(preset("instant")).draw_ms("first_token") == 0.0
    with pytest.raises(ValueError, match="slow-network"):
        preset("nope")


def test_default_prefix_padding_follows_the_api_version():
    assert default_prefix_padding_ms("2025-10-01", "server_vad") == 300
    assert default_prefix_padding_ms("2026-07-15", "server_vad") == 400
    assert default_prefix_padding_ms("2026-07-15", "azure_semantic_vad") == 420


def test_session_update_merges_and_refuses_bad_values_without_changing_anything():
    base = default_session("sess_1", "gpt-realtime", "2026-07-15", created_s=0)
    merged = apply_update(base, {"instructions": "hi", "future": 1}, "2026-07-15", None, audio_started=False)
    assert merged["instructions"] == "hi" and merged["future"] == 1 and merged["voice"] == base["voice"]
    g711 = apply_update(base, {"input_audio_format": "g711_alaw"}, "2026-07-15", None, audio_started=False)
    assert g711["input_audio_sampling_rate"] == 8000
    none = apply_update(base, {"turn_detection": {"type": "none"}}, "2026-07-15", None, audio_started=False)
    assert none["turn_detection"] is None
    for bad, param in [
        ({"turn_detection": {"type": "server_vad", "threshold": 1.5}}, "session.turn_detection.threshold"),
        ({"turn_detection": {"type": "magic"}}, "session.turn_detection.type"),
        ({"input_audio_sampling_rate": 22050}, "session.input_audio_sampling_rate"),
        ({"output_audio_format": "mp3"}, "session.output_audio_format"),
        ({"modalities": ["audio"]}, "session.modalities"),
    ]:
        with pytest.raises(WireError) as info:
            apply_update(base, bad, "2026-07-15", "e1", audio_started=False)
        assert info.value.param == param and info.value.event_id == "e1"
    with pytest.raises(WireError, match="voice cannot change"):
        apply_update(base, {"voice": "echo"}, "2026-07-15", None, audio_started=True)
    with pytest.raises(WireError) as modalities:  # it named two of the four the SDK's Modality allows
        apply_update(base, {"modalities": ["audio"]}, "2026-07-15", None, audio_started=False)
    assert modalities.value.message.endswith(
        "use ['text', 'audio'], ['text'], ['text', 'audio', 'animation'] or ['text', 'audio', 'avatar']."
    )
    avatar = apply_update(
        base, {"modalities": ["avatar", "text", "audio"]}, "2026-07-15", None, audio_started=False
    )
    assert avatar["modalities"] == ["avatar", "text", "audio"]
    assert base["instructions"] == ""


@pytest.mark.parametrize(
    "frame,code",
    [
        ("{", "invalid_json"),
        ("[]", "invalid_event"),
        ('{"type": 1}', "missing_required_parameter"),
        (b"\xff", "invalid_json"),
    ],
)
def test_bad_frames_become_wire_errors(frame, code):
    with pytest.raises(WireError) as info:
        parse_client_frame(frame)
    event = info.value.to_event("event_1")
    assert event["error"]["code"] == code and event["type"] == "error"


def _user_text(text):
    return Item(
        {"id": "u", "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )


def test_responder_rules():
    session = default_session("s", "m", "2026-07-15", created_s=0)
    assert reply_for([], session).text == GREETING
    assert reply_for([_user_text("Hello, there!")], session).text == "You said: Hello, there."
    audio = Item(
        {"id": "a", "type": "message", "role": "user", "content": [{"type": "input_audio"}]}, audio_ms=2340.0
    )
    assert reply_for([audio], session).text == "I heard 2.3 seconds of speech."
    assert reply_for([audio], session, "Say: Welcome back!").text == "Welcome back!"
    tool = {
        "type": "function",
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    }
    with_tools = {**session, "tools": [tool]}
    calls = reply_for([_user_text("what is the time? get time please")], with_tools).function_calls
    # one call (both clauses ask for the same tool); no place or name was said: the clause fills "zone"
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_time", {"zone": "what is the time"})]
    assert reply_for([_user_text("nothing relevant")], with_tools).function_calls == ()
    assert [
        c.name
        for c in reply_for(
            [_user_text("nothing relevant")], {**with_tools, "tool_choice": "required"}
        ).function_calls
    ] == ["get_time"]
    assert reply_for([_user_text("get time")], {**with_tools, "tool_choice": "none"}).function_calls == ()
    output = Item({"id": "o", "type": "function_call_output", "call_id": "c", "output": "12:00"})
    assert reply_for([_user_text("x"), output], with_tools).text == "Here is what I found: 12:00."


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": "e1"}',
        '{"type": "input_audio_buffer.append", "audio": "AAAA", "n": 123456789012345678901234567890}',
        '{"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": 123456789012345678901234567890}',
        b'{"type": "input_audio_buffer.append", "audio": "AAAA", "note": "\\ud800"}',
        '{"type": "session.update", "session": {"max_response_output_tokens": 123456789012345678901234567890}}',
    ],
)
def test_appends_parse_fast_and_every_frame_reads_as_the_json_module_reads_it(frame):
    assert parse_client_frame(frame) == json.loads(frame)


def test_an_append_the_fast_parser_refuses_gets_the_standard_error():
    with pytest.raises(WireError) as info:
        parse_client_frame('{"type": "input_audio_buffer.append", "audio": "AAAA", "x": NaN}')
    assert info.value.code == "invalid_json" and "NaN is not a finite number" in info.value.message


def test_a_session_expires_its_ttl_after_it_is_created():
    from vlab.emulator import session_config

    expires_at = default_session("s", "m", "2026-07-15", created_s=1_790_000_000.7)["expires_at"]
    assert expires_at == 1_790_000_000 + session_config.SESSION_TTL_S
    docs = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert f"the emulator: {session_config.SESSION_TTL_S // 60} minutes after `session.created`" in docs


def test_the_latency_figures_in_the_docs_are_the_presets():
    """The module's stage table and docs/emulator.md state the typical preset; they must say what it is."""
    import re

    from vlab.emulator import latency

    typical, slow = latency.PRESETS["typical"], latency.PRESETS["slow-network"]
    table = dict(re.findall(r"^``(\w+)``\s.*?(\d+) ms$", latency.__doc__ or "", flags=re.MULTILINE))
    assert {k: float(v) for k, v in table.items()} == {s: typical.stages[s].fixed_ms for s in latency.STAGES}
    guide = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text(encoding="utf-8")
    section = guide.split("## Latency model", 1)[1].split("**Output pacing.**", 1)[0]
    stated = {s: float(ms) for s, ms in re.findall(r"`(\w+)` \([^)]*?(\d+) ms", section)}
    assert stated == {s: typical.stages[s].fixed_ms for s in latency.STAGES}
    assert f"`slow-network` ({slow.stages['network'].fixed_ms:g} ms\none-way)" in section
    assert (
        f"{typical.tts_realtime_factor:g}× faster" in section
        and f"{typical.audio_chunk_ms} ms chunks" in section
    )


def test_a_required_field_must_be_there_not_null_and_of_its_json_type():
    from vlab.emulator.wire import require

    event = {"event_id": "e1", "n": 5, "flag": True, "none": None, "text": "hi"}
    assert require(event, "n", int) == 5 and require(event, "text", (str, int)) == "hi"
    for name, kind, code in [
        ("missing", str, "missing_required_parameter"),
        ("none", str, "missing_required_parameter"),
        ("flag", int, "invalid_type"),  # a JSON boolean is no integer
        ("n", str, "invalid_type"),
    ]:
        with pytest.raises(WireError) as refused:
            require(event, name, kind)
        assert (refused.value.code, refused.value.param, refused.value.event_id) == (code, name, "e1")
    with pytest.raises(WireError, match="expected str or int, got bool"):
        require(event, "flag", (str, int))


def test_an_item_goes_last_after_its_previous_item_or_first_at_the_root():
    from vlab.emulator.items import Conversation

    conversation = Conversation()

    def add(item_id: str, previous: str | None = None) -> str | None:
        return conversation.add(Item.from_wire({"id": item_id, "type": "message"}), previous)

    assert (add("a"), add("b"), add("c", "b")) == (None, "a", "b")  # appended: each follows the last
    assert [i.id for i in conversation] == ["a", "b", "c"]
    assert add("d", "a") == "a"  # inserted after a
    assert add("e", "root") is None  # first
    assert add("f", "c") == "c"  # after the last: appended
    assert [i.id for i in conversation] == ["e", "a", "d", "b", "c", "f"]


def test_a_truncated_reply_keeps_the_words_begun_before_the_cut_and_that_much_audio():
    item = Item.from_wire({"id": "a", "type": "message", "role": "assistant"})
    item.words = [(0.0, "Hello"), (400.0, "there"), (900.0, "friend")]
    item.truncate(900, bytes_per_ms=48.0)
    assert item.wire["content"] == [
        {"type": "audio", "transcript": "Hello there"}
    ]  # "friend" starts at the cut
    assert item.audio_bytes == 900 * 48


SAME_AUDIO_PROBE = """\
import hashlib, sys
from vlab.audio.synth import synthesize
for voice in sys.argv[1:]:
    print(voice, hashlib.sha1(synthesize("You said: what time is it.", voice=voice).samples.tobytes()).hexdigest())
"""
"""Prints, for each eSpeak NG voice given, a hash of the audio it makes of one reply in this process."""


def test_the_emulator_s_voices_make_the_same_audio_in_every_process():
    """eSpeak NG renders its breath noise (the ``+f2``, ``+f3`` and ``+f5`` variants) differently from one
    process to the next (``+f2`` gave three different audios in ten processes); the emulator's voices have
    none, so a reply is the same audio in every run."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import espeakng_loader

    from vlab.emulator.voice import _ESPEAK_VOICES

    variants = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    breathing = [
        v
        for v in _ESPEAK_VOICES
        if "+" in v and re.search(r"^breath\s", (variants / v.split("+")[1]).read_text(), re.M)
    ]
    assert breathing == []
    voices = sorted(set(_ESPEAK_VOICES))
    probes = [
        subprocess.Popen([sys.executable, "-c", SAME_AUDIO_PROBE, *voices], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    heard = {probe.communicate(timeout=120)[0] for probe in probes}
    assert [probe.returncode for probe in probes] == [0] * 4
    assert len(heard) == 1 and len(next(iter(heard)).splitlines()) == len(voices)


def test_every_espeak_voice_the_emulator_speaks_with_is_one_espeak_knows():
    """A name eSpeak NG does not know falls back to en-us in silence (``en-gb`` and ``en-gb+f4`` did)."""
    from vlab.audio.synth import _Engine
    from vlab.emulator.voice import _ESPEAK_VOICES, espeak_voice

    engine = _Engine()
    try:
        unknown = [
            v
            for v in {*_ESPEAK_VOICES, espeak_voice("en-GB-RyanNeural")}
            if engine._lib.espeak_SetVoiceByName(v.encode()) != 0
        ]
    finally:
        engine.close()
    assert unknown == []
