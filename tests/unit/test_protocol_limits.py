"""The one table of turn-detection defaults and limits, and everything that must agree with it."""

from __future__ import annotations

import base64
import inspect
import json
import math
import re
from pathlib import Path
from typing import get_args

import pytest
from azure.ai.voicelive import models as sdk

from vlab import protocol
from vlab import protocol_limits as limits
from vlab.audio.vad import VadParams
from vlab.emulator import session_config
from vlab.emulator.wire import WireError
from vlab.errors import ConfigError
from vlab.settings import (
    AzureSemanticVad,
    EndOfUtterance,
    EouModel,
    EouThresholdLevel,
    ServerVad,
    SessionSettings,
)
from vlab.sweep import BASELINE, load_config

SEMANTIC = "azure_semantic_vad"


# --- the table against the SDK and protocol.md ---------------------------------------------------


def test_types_and_eou_values_cover_the_sdk() -> None:
    assert {t.value for t in sdk.TurnDetectionType} <= set(limits.TURN_DETECTION_TYPES)
    assert set(limits.TURN_DETECTION_TYPES) - {t.value for t in sdk.TurnDetectionType} == {
        limits.SEMANTIC_VAD
    }
    assert tuple(level.value for level in sdk.EouThresholdLevel) == limits.EOU_THRESHOLD_LEVELS
    assert {sdk.AzureSemanticDetection().model, sdk.AzureSemanticDetectionEn().model} < set(limits.EOU_MODELS)
    assert sdk.AzureSemanticDetectionMultilingual().model in limits.EOU_MODELS


@pytest.mark.parametrize(
    ("api_version", "vad_type", "padding_ms"),
    [
        ("2025-10-01", "server_vad", 300),
        ("2026-01-01-preview", "azure_semantic_vad_en", 300),
        ("2026-04-10", "server_vad", 400),
        ("2026-07-15", "azure_semantic_vad_multilingual", 420),
        ("2026-07-15", "semantic_vad", 400),
        ("v1", "azure_semantic_vad", 300),
    ],
)
def test_prefix_padding_default_follows_type_and_api_version(
    api_version: str, vad_type: str, padding_ms: int
) -> None:
    assert limits.turn_detection_defaults(vad_type, api_version).prefix_padding_ms == padding_ms


def test_documented_defaults_by_type() -> None:
    server = limits.turn_detection_defaults("server_vad")
    assert (server.threshold, server.silence_duration_ms, server.speech_duration_ms) == (0.5, 500, None)
    assert (server.create_response, server.interrupt_response, server.auto_truncate) == (True, True, False)
    assert "speech_duration_ms" not in server.to_wire()
    semantic = limits.turn_detection_defaults(SEMANTIC).to_wire()
    assert semantic["speech_duration_ms"] == limits.MIN_SPEECH_MS == 80
    assert semantic["remove_filler_words"] is False
    assert limits.EOU_TIMEOUT_MS == 1000
    with pytest.raises(KeyError):
        limits.turn_detection_defaults("none")


def test_bounds_are_closed_and_refuse_non_numbers() -> None:
    ms = limits.DURATION_MS_BOUNDS
    assert 0 in ms and limits.MAX_DURATION_MS in ms
    assert -1 not in ms and limits.MAX_DURATION_MS + 1 not in ms
    # the same values as numbers are inside; as a bool, a string or NaN they are refused
    assert limits.MAX_DURATION_MS - 1 in ms and 1.0 in limits.THRESHOLD_BOUNDS
    threshold = limits.THRESHOLD_BOUNDS
    just_outside = (math.nextafter(threshold.hi, math.inf), math.nextafter(threshold.lo, -math.inf))
    assert [value in threshold for value in just_outside] == [False, False], just_outside
    assert (True in ms, "5" in ms, float("nan") in limits.THRESHOLD_BOUNDS) == (False, False, False)
    assert str(limits.THRESHOLD_BOUNDS) == "[0.0, 1.0]" and str(ms) == f"[0, {limits.MAX_DURATION_MS}]"


# --- one default everywhere ----------------------------------------------------------------------


def test_settings_vad_and_sweep_baseline_use_the_table_defaults() -> None:
    table = limits.turn_detection_defaults("server_vad", limits.VLAB_DEFAULTS_API_VERSION)
    semantic = limits.turn_detection_defaults(SEMANTIC, limits.VLAB_DEFAULTS_API_VERSION)
    expected = (table.threshold, table.prefix_padding_ms, table.silence_duration_ms)
    assert expected == (0.5, 300, 500)
    for td in (ServerVad(), AzureSemanticVad(), BASELINE, VadParams()):
        assert (td.threshold, td.prefix_padding_ms, td.silence_duration_ms) == expected
    assert (semantic.threshold, semantic.prefix_padding_ms, semantic.silence_duration_ms) == expected
    assert VadParams().min_speech_ms == limits.MIN_SPEECH_MS
    assert SessionSettings().turn_detection == BASELINE


def test_settings_literals_match_the_table() -> None:
    assert get_args(EouModel) == limits.EOU_MODELS
    assert get_args(EouThresholdLevel) == limits.EOU_THRESHOLD_LEVELS
    assert EndOfUtterance().model == limits.EOU_MODELS[0]
    assert [AzureSemanticVad(variant=v).type for v in ("default", "en", "multilingual")] == list(
        limits.AZURE_SEMANTIC_VAD_TYPES
    )


@pytest.mark.parametrize("api_version", ["2025-10-01", "2026-07-15"])
def test_emulator_session_starts_with_the_table_defaults(api_version: str) -> None:
    session = session_config.default_session("sess_1", "gpt-realtime", api_version, created_s=0)
    assert session["turn_detection"] == limits.turn_detection_defaults("server_vad", api_version).to_wire()
    semantic = session_config.apply_update(
        session, {"turn_detection": {"type": SEMANTIC}}, api_version, None, audio_started=False
    )
    assert semantic["turn_detection"] == limits.turn_detection_defaults(SEMANTIC, api_version).to_wire()


# --- one range everywhere ------------------------------------------------------------------------

_VAD_FIELD = {"speech_duration_ms": "min_speech_ms"}


def _settings(key: str, value: float) -> object:
    return AzureSemanticVad(**{key: value})


def _emulator(key: str, value: float) -> object:
    session = session_config.default_session(
        "sess_1", "gpt-realtime", protocol.DEFAULT_API_VERSION, created_s=0
    )
    update = {"turn_detection": {"type": SEMANTIC, key: value}}
    return session_config.apply_update(
        session, update, protocol.DEFAULT_API_VERSION, None, audio_started=False
    )


def _vad(key: str, value: float) -> object:
    return VadParams(**{_VAD_FIELD.get(key, key): value})


@pytest.mark.parametrize(
    ("build", "error"), [(_settings, ConfigError), (_emulator, WireError), (_vad, ConfigError)]
)
@pytest.mark.parametrize("key", list(limits.TURN_DETECTION_BOUNDS))
def test_settings_emulator_and_vad_accept_exactly_the_table_range(build, error, key: str) -> None:
    bounds = limits.TURN_DETECTION_BOUNDS[key]
    step = 0.01 if key == "threshold" else 1
    build(key, bounds.lo)
    build(key, bounds.hi)
    for outside in (bounds.lo - step, bounds.hi + step):
        with pytest.raises(error, match=key if build is not _vad else _VAD_FIELD.get(key, key)):
            build(key, outside)


def test_the_eou_timeout_has_the_duration_range() -> None:
    assert EndOfUtterance(timeout_ms=limits.MAX_DURATION_MS).timeout_ms == limits.MAX_DURATION_MS
    with pytest.raises(ConfigError, match="timeout_ms"):
        EndOfUtterance(timeout_ms=limits.MAX_DURATION_MS + 1)


def test_sweep_grid_keys_are_the_table_knobs() -> None:
    with pytest.raises(ConfigError, match=", ".join(limits.TURN_DETECTION_BOUNDS)):
        load_config({"grid": {"type": "server_vad"}})
    with pytest.raises(ConfigError, match="'server_vad' or 'azure_semantic_vad'"):
        load_config({"grid": {"type": "semantic_vad", "threshold": 0.5}})


# --- the emulator's VAD ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("td", "min_speech_ms"),
    [
        ({"type": "server_vad"}, 80),
        ({"type": "server_vad", "speech_duration_ms": 20}, 20),
        ({"type": SEMANTIC, "speech_duration_ms": 20}, 80),
        ({"type": SEMANTIC, "speech_duration_ms": 0}, 80),
        ({"type": "azure_semantic_vad_en", "speech_duration_ms": 250}, 250),
    ],
)
def test_vad_params_minimum_speech(td: dict, min_speech_ms: int) -> None:
    assert session_config.vad_params(td).min_speech_ms == min_speech_ms


def test_vad_params_take_the_session_values_or_the_table_defaults() -> None:
    td = {"type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 100, "silence_duration_ms": 900}
    assert session_config.vad_params(td) == VadParams(0.7, 100, 900, limits.MIN_SPEECH_MS)
    new = session_config.vad_params({"type": SEMANTIC}, "2026-07-15")
    old = session_config.vad_params({"type": SEMANTIC}, "2025-10-01")
    assert (new.prefix_padding_ms, old.prefix_padding_ms) == (420, 300)
    session = session_config.default_session("sess_1", "gpt-realtime", "2026-07-15", created_s=0)
    assert session_config.vad_params(session["turn_detection"]).prefix_padding_ms == 400


@pytest.mark.parametrize(
    ("td", "timeout_ms"),
    [
        (None, None),
        ({"type": "server_vad"}, None),
        ({"type": "server_vad", "end_of_utterance_detection": {"model": "semantic_detection_v1"}}, 1000.0),
        ({"type": "server_vad", "end_of_utterance_detection": {"timeout_ms": 300}}, 300.0),
        ({"type": SEMANTIC}, 1000.0),
        ({"type": "semantic_vad"}, 1000.0),
        ({"type": "azure_semantic_vad_en", "end_of_utterance_detection": {"timeout_ms": 2500}}, 2500.0),
    ],
)
def test_eou_timeout(td: dict | None, timeout_ms: float | None) -> None:
    assert limits.eou_timeout_ms(td) == timeout_ms


# --- frames and connections ----------------------------------------------------------------------


def _limits_row(constant: str) -> str:
    docs = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    (row,) = [line for line in docs.splitlines() if line.startswith("|") and f"| `{constant}`" in line]
    return row


def test_the_largest_client_frame_is_the_largest_append_in_base64_and_its_envelope() -> None:
    largest = json.dumps({"type": "input_audio_buffer.append", "event_id": "e" * 64, "audio": ""})
    audio = base64.b64encode(bytes(limits.MAX_APPEND_AUDIO_BYTES))
    assert limits.MAX_CLIENT_FRAME_BYTES == len(audio) + limits.FRAME_ENVELOPE_BYTES  # exactly, not about
    assert len(largest) < limits.FRAME_ENVELOPE_BYTES
    mib, kib = 1024 * 1024, 1024
    assert (
        f"the largest append as base64 ({len(audio) // mib} MiB) + {limits.FRAME_ENVELOPE_BYTES // kib} KiB"
        in (_limits_row("MAX_CLIENT_FRAME_BYTES"))
    )
    assert f"| {limits.MAX_APPEND_AUDIO_BYTES // mib} MiB once decoded" in _limits_row(
        "MAX_APPEND_AUDIO_BYTES"
    )
    assert f"| {limits.MAX_INPUT_BUFFER_BYTES // mib} MiB of PCM16" in _limits_row("MAX_INPUT_BUFFER_BYTES")
    assert f"| {limits.MAX_JSON_DEPTH} levels" in _limits_row("MAX_JSON_DEPTH")


def test_the_sdk_s_frame_limit_is_the_sdk_s_own_default() -> None:
    from azure.ai.voicelive.aio import _patch

    (default,) = re.findall(r'setdefault\("max_msg_size", ([\d *]+)\)', inspect.getsource(_patch))
    assert limits.SDK_MAX_FRAME_BYTES == math.prod(int(n) for n in default.split("*"))
    assert f"| {limits.SDK_MAX_FRAME_BYTES // (1024 * 1024)} MiB (aiohttp `max_msg_size`)" in (
        _limits_row("SDK_MAX_FRAME_BYTES")
    )


def test_docs_protocol_md_states_the_emulator_s_http_timeouts() -> None:
    assert f"| {limits.HANDSHAKE_TIMEOUT_S:g} s: the first request's" in _limits_row("HANDSHAKE_TIMEOUT_S")
    assert f"| {limits.KEEPALIVE_TIMEOUT_S:g} s |" in _limits_row("KEEPALIVE_TIMEOUT_S")


# --- sample rates --------------------------------------------------------------------------------


def test_the_pcm16_rate_is_one_constant_and_docs_protocol_md_states_it() -> None:
    rate = protocol.PCM16_SAMPLE_RATE_HZ
    assert protocol.bytes_per_second("pcm16") == 2 * rate == protocol.bytes_per_second("some_future_format")
    assert protocol.OUTPUT_FORMAT_RATES["pcm16"] == SessionSettings().input_audio_sampling_rate == rate
    session = session_config.default_session(
        "sess_1", "gpt-realtime", protocol.DEFAULT_API_VERSION, created_s=0
    )
    assert session["input_audio_sampling_rate"] == session_config.input_rate(session) == rate
    g711 = session_config.apply_update(
        session, {"input_audio_format": "g711_ulaw"}, protocol.DEFAULT_API_VERSION, None, audio_started=False
    )
    pcm16 = session_config.apply_update(
        g711, {"input_audio_format": "pcm16"}, protocol.DEFAULT_API_VERSION, None, audio_started=False
    )
    assert pcm16["input_audio_sampling_rate"] == rate  # back to pcm16 without a rate: the default again
    docs = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert f"| `input_audio_sampling_rate` | Hz, for pcm16 | default {rate} (8000 for G.711)" in docs
    assert f"| `pcm16` | out | the same at {rate // 1000} kHz | {2 * rate:_} |".replace("_", " ") in docs


# --- G.711 ---------------------------------------------------------------------------------------


def test_g711_rate_is_one_constant() -> None:
    rate = protocol.G711_SAMPLE_RATE_HZ
    assert rate == 8000
    assert protocol.bytes_per_second("g711_alaw") == rate == protocol.OUTPUT_FORMAT_RATES["g711_ulaw"]
    assert SessionSettings(input_audio_format="g711_ulaw").input_audio_sampling_rate == rate
    session = session_config.default_session(
        "sess_1", "gpt-realtime", protocol.DEFAULT_API_VERSION, created_s=0
    )
    g711 = session_config.apply_update(
        session, {"input_audio_format": "g711_ulaw"}, protocol.DEFAULT_API_VERSION, None, audio_started=False
    )
    assert g711["input_audio_sampling_rate"] == session_config.input_rate(g711) == rate
