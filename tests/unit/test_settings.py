from __future__ import annotations

import copy
import json
import pickle
import re
from pathlib import Path

import pytest
from azure.ai.voicelive import models as sdk

from vlab import protocol
from vlab.audio.processing import ProcessingSettings
from vlab.audio.vad import VadParams
from vlab.errors import ConfigError
from vlab.session import Reconnect
from vlab.settings import (
    MAX_DURATION_MS,
    NOT_GIVEN,
    AzureSemanticVad,
    EndOfUtterance,
    FunctionTool,
    NotGiven,
    ServerVad,
    SessionSettings,
    Transcription,
    turn_detection_from_wire,
    voice_to_wire,
)

# --- NOT_GIVEN -------------------------------------------------------------------------------------


def test_not_given_is_a_falsy_singleton() -> None:
    assert NotGiven() is NOT_GIVEN
    assert not NOT_GIVEN
    assert repr(NOT_GIVEN) == "NOT_GIVEN"
    assert NOT_GIVEN is not None
    assert copy.copy(NOT_GIVEN) is NOT_GIVEN
    assert copy.deepcopy(NOT_GIVEN) is NOT_GIVEN
    assert pickle.loads(pickle.dumps(NOT_GIVEN)) is NOT_GIVEN


# --- turn detection against the SDK ----------------------------------------------------------------

SDK_TURN_DETECTION_CASES = [
    (ServerVad(), sdk.ServerVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)),
    (
        ServerVad(
            threshold=0.7,
            prefix_padding_ms=200,
            silence_duration_ms=800,
            interrupt_response=True,
            auto_truncate=True,
            create_response=False,
        ),
        sdk.ServerVad(
            threshold=0.7,
            prefix_padding_ms=200,
            silence_duration_ms=800,
            interrupt_response=True,
            auto_truncate=True,
            create_response=False,
        ),
    ),
    (
        ServerVad(end_of_utterance=EndOfUtterance("semantic_detection_v1_en", timeout_ms=2000)),
        sdk.ServerVad(
            threshold=0.5,
            prefix_padding_ms=300,
            silence_duration_ms=500,
            end_of_utterance_detection=sdk.AzureSemanticDetectionEn(timeout_ms=2000),
        ),
    ),
    (
        AzureSemanticVad(speech_duration_ms=200, remove_filler_words=True),
        sdk.AzureSemanticVad(
            threshold=0.5,
            prefix_padding_ms=300,
            silence_duration_ms=500,
            speech_duration_ms=200,
            remove_filler_words=True,
        ),
    ),
    (
        AzureSemanticVad(
            variant="en",
            threshold=0.3,
            end_of_utterance=EndOfUtterance("semantic_detection_v1", threshold_level="low"),
        ),
        sdk.AzureSemanticVadEn(
            threshold=0.3,
            prefix_padding_ms=300,
            silence_duration_ms=500,
            end_of_utterance_detection=sdk.AzureSemanticDetection(threshold_level="low"),
        ),
    ),
    (
        AzureSemanticVad(
            variant="multilingual",
            languages=["en", "es"],
            speech_duration_ms=200,
            end_of_utterance=EndOfUtterance(
                "semantic_detection_v1_multilingual", threshold_level="high", timeout_ms=1500
            ),
            interrupt_response=False,
            create_response=True,
        ),
        sdk.AzureSemanticVadMultilingual(
            threshold=0.5,
            prefix_padding_ms=300,
            silence_duration_ms=500,
            languages=["en", "es"],
            speech_duration_ms=200,
            end_of_utterance_detection=sdk.AzureSemanticDetectionMultilingual(
                threshold_level="high", timeout_ms=1500
            ),
            interrupt_response=False,
            create_response=True,
        ),
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), SDK_TURN_DETECTION_CASES, ids=lambda v: getattr(v, "label", ""))
def test_turn_detection_wire_matches_sdk(
    ours: ServerVad | AzureSemanticVad, theirs: sdk.TurnDetection
) -> None:
    # What the SDK itself would serialise for the same settings.
    assert ours.to_wire() == theirs.as_dict()
    # And the SDK parses our session object into the right class with the same values.
    wire = SessionSettings(turn_detection=ours).to_wire()
    parsed = sdk.RequestSession(wire).turn_detection
    assert type(parsed) is type(theirs)
    assert parsed.as_dict() == ours.to_wire()
    assert parsed.threshold == ours.threshold
    assert parsed.prefix_padding_ms == ours.prefix_padding_ms
    assert parsed.silence_duration_ms == ours.silence_duration_ms
    if ours.end_of_utterance is not NOT_GIVEN:
        eou = parsed.end_of_utterance_detection
        assert type(eou) is type(theirs.end_of_utterance_detection)
        assert eou.model == ours.end_of_utterance.model


def test_turn_detection_wire_omits_not_given() -> None:
    assert ServerVad().to_wire() == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    }
    assert set(AzureSemanticVad(variant="en").to_wire()) == {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
    }
    assert EndOfUtterance().to_wire() == {"model": "semantic_detection_v1"}


def test_labels() -> None:
    assert ServerVad().label == "server_vad thr=0.5 pad=300 sil=500"
    assert AzureSemanticVad(variant="en", threshold=0.25, silence_duration_ms=300).label == (
        "azure_semantic_vad_en thr=0.25 pad=300 sil=300"
    )
    vad = ServerVad(end_of_utterance=EndOfUtterance("semantic_detection_v1_en", "low", 800))
    assert vad.label == "server_vad thr=0.5 pad=300 sil=500 eou=v1_en/low/800ms"


@pytest.mark.parametrize(
    "vad",
    [
        ServerVad(threshold=0.8, auto_truncate=True),
        AzureSemanticVad(variant="multilingual", languages=("en", "fr"), remove_filler_words=False),
        AzureSemanticVad(end_of_utterance=EndOfUtterance(timeout_ms=300)),
    ],
)
def test_turn_detection_from_wire_round_trip(vad: ServerVad | AzureSemanticVad) -> None:
    assert turn_detection_from_wire(vad.to_wire()) == vad
    assert turn_detection_from_wire(None) is None


def test_turn_detection_from_wire_rejects_unknown() -> None:
    with pytest.raises(ConfigError, match="semantic_vad"):
        turn_detection_from_wire({"type": "semantic_vad", "eagerness": "low"})
    with pytest.raises(ConfigError, match="speech_duration_assistant_speaking_ms"):
        turn_detection_from_wire({"type": "server_vad", "speech_duration_assistant_speaking_ms": 800})


def test_vad_replace_is_validated() -> None:
    vad = ServerVad()
    assert vad.replace(threshold=0.9).threshold == 0.9
    assert vad.threshold == 0.5
    with pytest.raises(ConfigError, match="threshold"):
        vad.replace(threshold=2)
    with pytest.raises(
        ConfigError,
        match=r"unknown setting\(s\) 'treshold' in ServerVad\(\.\.\.\) \(did you mean 'threshold'",
    ):
        vad.replace(treshold=0.9)


def test_values_are_normalised() -> None:
    vad = ServerVad(threshold=1, silence_duration_ms=700.0)
    assert vad.threshold == 1.0 and isinstance(vad.threshold, float)
    assert vad.silence_duration_ms == 700 and isinstance(vad.silence_duration_ms, int)
    assert AzureSemanticVad(variant="multilingual", languages=["en"]).languages == ("en",)


# --- validation messages ---------------------------------------------------------------------------

_MS_RANGE = f"[0, {MAX_DURATION_MS}]"

BAD_VALUES = [
    (lambda: ServerVad(threshold=1.5), "threshold", "1.5", "[0.0, 1.0]"),
    (lambda: ServerVad(threshold=-0.1), "threshold", "-0.1", "[0.0, 1.0]"),
    (lambda: ServerVad(threshold="high"), "threshold", "'high'", "[0.0, 1.0]"),
    (lambda: ServerVad(threshold=float("nan")), "threshold", "nan", "[0.0, 1.0]"),
    (lambda: ServerVad(prefix_padding_ms=-1), "prefix_padding_ms", "-1", _MS_RANGE),
    (lambda: ServerVad(silence_duration_ms=60_001), "silence_duration_ms", "60001", "[0, 60000]"),
    (lambda: ServerVad(silence_duration_ms=0.5), "silence_duration_ms", "0.5", _MS_RANGE),
    (lambda: ServerVad(silence_duration_ms=True), "silence_duration_ms", "True", _MS_RANGE),
    (lambda: ServerVad(create_response="yes"), "create_response", "'yes'", "True, False"),
    (lambda: ServerVad(end_of_utterance="semantic"), "end_of_utterance", "'semantic'", "EndOfUtterance"),
    (
        lambda: ServerVad(auto_truncate=True, interrupt_response=False),
        "auto_truncate",
        "interrupt_response=False",
        "interrupt_response=True",
    ),
    (lambda: AzureSemanticVad(variant="fr"), "variant", "'fr'", "'multilingual'"),
    (lambda: AzureSemanticVad(speech_duration_ms=-5), "speech_duration_ms", "-5", _MS_RANGE),
    (lambda: AzureSemanticVad(languages=["en"]), "languages", "['en']", "variant='multilingual'"),
    (
        lambda: AzureSemanticVad(variant="multilingual", languages="en"),
        "languages",
        "'en'",
        "list of non-empty strings",
    ),
    (lambda: AzureSemanticVad(remove_filler_words=1), "remove_filler_words", "1", "True, False"),
    (lambda: EndOfUtterance("semantic_v2"), "model", "'semantic_v2'", "semantic_detection_v1_en"),
    (lambda: EndOfUtterance(threshold_level="max"), "threshold_level", "'max'", "'medium'"),
    (lambda: EndOfUtterance(timeout_ms=-1), "timeout_ms", "-1", _MS_RANGE),
    (lambda: Transcription(model=""), "model", "''", "azure-speech"),
    (lambda: Transcription(phrase_list="Contoso"), "phrase_list", "'Contoso'", "list of non-empty strings"),
    (lambda: Transcription(language=" "), "language", "' '", "'en-US' or NOT_GIVEN"),
    (lambda: Transcription(language=5), "language", "5", "'en-US' or NOT_GIVEN"),
    (lambda: FunctionTool.from_wire("get_weather"), "tools entries", "'get_weather'", "FunctionTool(...)"),
    (
        lambda: FunctionTool.from_wire({"type": "mcp", "name": "x"}),
        "tools entries",
        "'mcp'",
        "extra={'tools'",
    ),
    (lambda: FunctionTool("get weather"), "name", "'get weather'", "1-64 letters"),
    (lambda: FunctionTool("f", parameters={"x": {1, 2}}), "parameters", "{1, 2}", "JSON-serialisable"),
    (lambda: SessionSettings(model=""), "model", "''", "gpt-realtime"),
    (lambda: SessionSettings(modalities=["audio"]), "modalities", "['audio']", "['text', 'audio']"),
    (lambda: SessionSettings(modalities="text"), "modalities", "'text'", "['text']"),
    (lambda: SessionSettings(input_audio_format="mp3"), "input_audio_format", "'mp3'", "'pcm16'"),
    (lambda: SessionSettings(input_audio_sampling_rate=22050), "input_audio_sampling_rate", "22050", "16000"),
    (
        lambda: SessionSettings(input_audio_format="g711_alaw", input_audio_sampling_rate=16000),
        "input_audio_sampling_rate",
        "16000",
        "8000",
    ),
    (lambda: SessionSettings(output_audio_format="mp3"), "output_audio_format", "'mp3'", "'pcm16_16000hz'"),
    (lambda: SessionSettings(turn_detection="server_vad"), "turn_detection", "'server_vad'", "None"),
    (lambda: SessionSettings(transcription=42), "transcription", "42", "azure-speech"),
    (lambda: SessionSettings(voice="bob"), "voice", "'bob'", "en-US-AvaNeural"),
    (lambda: SessionSettings(voice={"name": "x"}), "voice", "'name'", "'type'"),
    (lambda: SessionSettings(temperature=3.0), "temperature", "3.0", "[0.0, 1.2]"),
    (lambda: SessionSettings(tool_choice="lookup"), "tool_choice", "'lookup'", "'required'"),
    (lambda: SessionSettings(tool_choice="required"), "tool_choice", "'required'", "at least one tool"),
    (
        lambda: SessionSettings(tools=[FunctionTool("f"), FunctionTool("f")]),
        "tools",
        "['f']",
        "unique",
    ),
    (lambda: SessionSettings(extra={"model": "gpt-4o"}), "extra", "'gpt-4o'", "URL"),
    (lambda: SessionSettings(extra={"x": object()}), "extra", "object", "JSON-serialisable"),
    (lambda: SessionSettings(instructions=5), "instructions", "5", "string"),
]


@pytest.mark.parametrize(("make", "field", "shown", "accepted"), BAD_VALUES)
def test_validation_messages_name_field_value_and_range(make, field: str, shown: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    message = str(info.value)
    assert field in message
    assert shown in message
    assert accepted in message


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ServerVad(threshold=5)


@pytest.mark.parametrize(
    ("make", "meant"),
    [
        (lambda: SessionSettings(voise="alloy"), "voice"),
        (lambda: SessionSettings(instruction="Be brief."), "instructions"),
        (lambda: ServerVad(silence_ms=500), "silence_duration_ms"),
        (lambda: AzureSemanticVad(treshold=0.6), "threshold"),
        (lambda: EndOfUtterance(model="semantic_detection_v1", threshold=0.1), "threshold_level"),
        (lambda: Transcription(modle="whisper-1"), "model"),
        (lambda: FunctionTool(name="f", descripton="d"), "description"),
        (lambda: VadParams(treshold=0.5), "threshold"),
        (lambda: ProcessingSettings(noise_reducton="azure_deep_noise_suppression"), "noise_reduction"),
        (lambda: Reconnect(attempt=3), "attempts"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_misspelt_setting_is_refused_with_the_one_meant(make, meant: str) -> None:
    with pytest.raises(ConfigError, match=rf"\(did you mean '{meant}'\?\); known: .*\b{meant}\b"):
        make()


# --- voices ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voice", "wire"),
    [
        ("alloy", {"type": "openai", "name": "alloy"}),
        ("Cedar", {"type": "openai", "name": "cedar"}),
        ("marin", {"type": "openai", "name": "marin"}),
        ("en-US-AvaNeural", {"type": "azure-standard", "name": "en-US-AvaNeural"}),
        (
            "en-US-Ava:DragonHDLatestNeural",
            {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural"},
        ),
        ("zh-CN-XiaoxiaoMultilingual", {"type": "azure-standard", "name": "zh-CN-XiaoxiaoMultilingual"}),
        (
            {"type": "azure-custom", "name": "v", "endpoint_id": "e"},
            {"type": "azure-custom", "name": "v", "endpoint_id": "e"},
        ),
        ({"type": "azure-realtime-native", "name": "ava"}, {"type": "azure-realtime-native", "name": "ava"}),
    ],
)
def test_voice_to_wire(voice, wire) -> None:
    assert voice_to_wire(voice) == wire
    session = sdk.RequestSession(SessionSettings(voice=voice).to_wire())
    assert dict(session.voice) == wire


def test_voice_mapping_is_copied() -> None:
    raw = {"type": "azure-standard", "name": "en-US-AvaNeural", "prefer_locales": ["en-GB"]}
    settings = SessionSettings(voice=raw)
    raw["prefer_locales"].append("es-ES")
    assert settings.to_wire()["voice"]["prefer_locales"] == ["en-GB"]


# --- transcription and tools -----------------------------------------------------------------------


def test_transcription_wire_and_sdk() -> None:
    tr = Transcription(language="en-US", phrase_list=["Contoso", "vlab"])
    assert tr.to_wire() == {"model": "azure-speech", "language": "en-US", "phrase_list": ["Contoso", "vlab"]}
    parsed = sdk.RequestSession(SessionSettings(transcription=tr).to_wire()).input_audio_transcription
    assert isinstance(parsed, sdk.AudioInputTranscriptionOptions)
    assert parsed.as_dict() == tr.to_wire()
    assert Transcription().to_wire() == {"model": "azure-speech"}
    assert SessionSettings(transcription="whisper-1").transcription == Transcription(model="whisper-1")


def test_function_tool_wire_and_sdk() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = FunctionTool("get_weather", "Current weather for a city.", schema)
    theirs = sdk.FunctionTool(
        name="get_weather", description="Current weather for a city.", parameters=schema
    )
    assert tool.to_wire() == theirs.as_dict()
    parsed = sdk.RequestSession(SessionSettings(tools=[tool], tool_choice="get_weather").to_wire())
    assert isinstance(parsed.tools[0], sdk.FunctionTool)
    assert parsed.tools[0].name == "get_weather"
    assert parsed.tools[0].parameters == schema
    assert parsed.as_dict()["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert FunctionTool("f").to_wire() == {
        "type": "function",
        "name": "f",
        "description": "",
        "parameters": {"type": "object", "properties": {}},
    }
    schema["properties"]["city"]["type"] = "number"  # the tool kept its own copy
    assert tool.parameters["properties"]["city"]["type"] == "string"
    assert hash(tool) == hash(FunctionTool("get_weather", "Current weather for a city.", tool.parameters))


# --- SessionSettings -------------------------------------------------------------------------------


def test_default_session_wire() -> None:
    wire = SessionSettings().to_wire()
    assert wire == {
        "input_audio_format": "pcm16",
        "input_audio_sampling_rate": 24000,
        "output_audio_format": "pcm16",
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
        },
        "tools": [],
    }
    assert "model" not in wire
    parsed = sdk.RequestSession(wire)
    assert isinstance(parsed.turn_detection, sdk.ServerVad)
    assert parsed.input_audio_sampling_rate == 24000


def test_none_is_explicit_null_and_not_given_is_omitted() -> None:
    manual = SessionSettings(turn_detection=None, transcription=None).to_wire()
    assert manual["turn_detection"] is None
    assert manual["input_audio_transcription"] is None
    assert json.dumps(manual).count("null") == 2
    parsed = sdk.RequestSession(manual)
    assert "turn_detection" in parsed and parsed.turn_detection is None

    default = SessionSettings(turn_detection=NOT_GIVEN).to_wire()
    assert "turn_detection" not in default
    assert "input_audio_transcription" not in default
    for key in ("instructions", "voice", "modalities", "tool_choice", "temperature"):
        assert key not in default


def test_full_session_wire_parses_in_sdk() -> None:
    settings = SessionSettings(
        model="gpt-4o",
        instructions="Be brief.",
        voice="en-US-AvaNeural",
        modalities=["audio", "text"],
        input_audio_sampling_rate=16000,
        output_audio_format="pcm16_16000hz",
        turn_detection=AzureSemanticVad(variant="en", silence_duration_ms=300),
        transcription=Transcription(language="en"),
        tools=[FunctionTool("f")],
        tool_choice="auto",
        temperature=0.8,
        extra={"input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"}},
    )
    assert settings.modalities == ("text", "audio")
    wire = settings.to_wire()
    assert wire["modalities"] == ["text", "audio"]
    assert wire["instructions"] == "Be brief."
    assert wire["temperature"] == 0.8
    assert wire["tool_choice"] == "auto"
    assert wire["input_audio_noise_reduction"] == {"type": "azure_deep_noise_suppression"}
    parsed = sdk.RequestSession(wire)
    assert isinstance(parsed.turn_detection, sdk.AzureSemanticVadEn)
    assert isinstance(parsed.input_audio_noise_reduction, sdk.AudioNoiseReduction)
    assert parsed.output_audio_format == "pcm16_16000hz"
    assert parsed.as_dict() == wire
    json.dumps(wire)


def test_extra_is_merged_last_and_copied() -> None:
    extra = {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}, "metadata": {"run": "1"}}
    settings = SessionSettings(turn_detection=NOT_GIVEN, extra=extra)
    extra["metadata"]["run"] = "2"
    wire = settings.to_wire()
    assert wire["turn_detection"] == {"type": "semantic_vad", "eagerness": "low"}
    assert wire["metadata"] == {"run": "1"}
    wire["metadata"]["run"] = "3"
    assert settings.to_wire()["metadata"] == {"run": "1"}


def test_g711_uses_8000_hz() -> None:
    settings = SessionSettings(input_audio_format="g711_ulaw", output_audio_format="g711_ulaw")
    assert settings.input_audio_sampling_rate == 8000
    assert settings.input_bytes_per_s == 8000
    assert settings.output_bytes_per_s == 8000
    assert settings.output_sample_rate == 8000


@pytest.mark.parametrize("rate", protocol.INPUT_SAMPLING_RATES)
def test_pcm16_rates(rate: int) -> None:
    settings = SessionSettings(input_audio_sampling_rate=rate)
    assert settings.input_bytes_per_s == 2 * rate


@pytest.mark.parametrize(("fmt", "rate"), sorted(protocol.OUTPUT_FORMAT_RATES.items()))
def test_output_rates(fmt: str, rate: int) -> None:
    settings = SessionSettings(output_audio_format=fmt)
    assert settings.output_sample_rate == rate
    assert settings.output_bytes_per_s == (8000 if fmt.startswith("g711") else 2 * rate)


def test_replace_validates_and_keeps_original() -> None:
    base = SessionSettings()
    changed = base.replace(turn_detection=AzureSemanticVad(), voice="alloy")
    assert isinstance(changed.turn_detection, AzureSemanticVad)
    assert base.turn_detection == ServerVad()
    with pytest.raises(ConfigError, match="input_audio_sampling_rate"):
        base.replace(input_audio_sampling_rate=11025)


def test_settings_are_frozen_and_hashable() -> None:
    settings = SessionSettings(tools=[FunctionTool("f")], extra={"metadata": {"a": "b"}})
    with pytest.raises(AttributeError):
        settings.voice = "alloy"  # type: ignore[misc]
    assert hash(settings) == hash(SessionSettings(tools=[FunctionTool("f")], extra={"metadata": {"a": "b"}}))
    assert len({settings, SessionSettings(tools=(FunctionTool("f"),), extra={"metadata": {"a": "b"}})}) == 1


ROUND_TRIP_CASES = [
    SessionSettings(),
    SessionSettings(turn_detection=None, transcription=None),
    SessionSettings(turn_detection=NOT_GIVEN),
    SessionSettings(
        model="gpt-4o-mini-realtime-preview",
        instructions="",
        voice={"type": "azure-standard", "name": "en-US-AvaNeural", "temperature": 0.7},
        modalities=("text",),
        input_audio_format="g711_alaw",
        output_audio_format="pcm16_44100hz",
        turn_detection=AzureSemanticVad(
            variant="multilingual",
            languages=("en", "de"),
            speech_duration_ms=120,
            end_of_utterance=EndOfUtterance("semantic_detection_v1_multilingual", "default", 900),
            auto_truncate=True,
        ),
        transcription=Transcription("gpt-4o-transcribe", language="en,de", phrase_list=("vlab",)),
        tools=(
            FunctionTool("lookup", "Find it.", {"type": "object", "properties": {"q": {"type": "string"}}}),
        ),
        tool_choice="lookup",
        temperature=0.6,
        extra={"max_response_output_tokens": 200},
    ),
    SessionSettings(voice="shimmer", turn_detection=ServerVad(end_of_utterance=EndOfUtterance())),
]


@pytest.mark.parametrize("settings", ROUND_TRIP_CASES)
def test_to_dict_from_dict_round_trip_through_json(settings: SessionSettings) -> None:
    data = json.loads(json.dumps(settings.to_dict()))
    again = SessionSettings.from_dict(data)
    assert again == settings
    assert again.to_wire() == settings.to_wire()
    assert again.to_dict() == data


def test_to_dict_spells_not_given_and_null() -> None:
    data = SessionSettings(turn_detection=NOT_GIVEN, transcription=None).to_dict()
    assert data["turn_detection"] == "NOT_GIVEN"
    assert data["transcription"] is None
    assert data["voice"] == "NOT_GIVEN"
    assert SessionSettings().to_dict()["turn_detection"] == ServerVad().to_wire()


def test_from_dict_defaults_and_unknown_keys() -> None:
    assert SessionSettings.from_dict({}) == SessionSettings()
    assert SessionSettings.from_dict({"voice": "alloy"}).voice == "alloy"
    with pytest.raises(ConfigError, match="'voise'"):
        SessionSettings.from_dict({"voise": "alloy"})


def test_every_text_that_names_the_server_vad_defaults_names_server_vad_s():
    """The "0.5 / 300 / 500" of docstrings, docs, the example config and the notebooks is ``ServerVad()``."""
    root = Path(__file__).parents[2]
    vad = ServerVad()
    triple = re.compile(r"(\d\.\d+) / (\d+)(?: ms)? / (\d+)(?: ms)?")
    named = []
    for folder in ("src", "docs", "examples", "notebooks"):
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".toml", ".ipynb"):
                named += [(path.name, m.groups()) for m in triple.finditer(path.read_text(encoding="utf-8"))]
    named += [
        ("README.md", m.groups()) for m in triple.finditer((root / "README.md").read_text(encoding="utf-8"))
    ]
    assert (
        len(named) >= 5
    )  # the docstrings of ServerVad's users, the sweep's baseline, the example, a notebook
    expected = (f"{vad.threshold:g}", str(vad.prefix_padding_ms), str(vad.silence_duration_ms))
    assert {where: found for where, found in named if found != expected} == {}


def test_function_tools_with_the_same_schema_in_another_key_order_are_equal_and_hash_alike():
    a = FunctionTool("f", parameters={"type": "object", "properties": {"x": {"type": "number"}}})
    b = FunctionTool("f", parameters={"properties": {"x": {"type": "number"}}, "type": "object"})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
