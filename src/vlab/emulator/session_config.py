"""The emulator's effective session: defaults per api-version, merging and validating session.update.

Defaults follow ``shared/protocol.md`` §4: server VAD 0.5 / prefix padding 400 ms (300 ms before
api-version 2026-04-10) / silence 500 ms, pcm16 at 24 kHz in and out, voice ``alloy``.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from vlab import protocol
from vlab.emulator.wire import WireError

_VAD_TYPES = {
    "server_vad",
    "azure_semantic_vad",
    "azure_semantic_vad_en",
    "azure_semantic_vad_multilingual",
    "semantic_vad",
}
_MODALITIES = ({"text", "audio"}, {"text"}, {"text", "audio", "animation"}, {"text", "audio", "avatar"})
_SESSION_TTL_S = 30 * 60


def default_prefix_padding_ms(api_version: str, vad_type: str) -> int:
    """Documented prefix-padding default for an api-version and VAD type."""
    if api_version < "2026-04-10" or not api_version[:4].isdigit():
        return 300
    return 420 if vad_type.startswith("azure_semantic") else 400


def default_session(session_id: str, model: str, api_version: str) -> dict[str, Any]:
    """The full session object sent in ``session.created``."""
    return {
        "id": session_id,
        "object": "realtime.session",
        "model": model,
        "expires_at": int(time.time()) + _SESSION_TTL_S,
        "modalities": ["text", "audio"],
        "instructions": "",
        "voice": {"type": "openai", "name": "alloy"},
        "input_audio_format": "pcm16",
        "input_audio_sampling_rate": 24000,
        "output_audio_format": "pcm16",
        "input_audio_noise_reduction": None,
        "input_audio_echo_cancellation": None,
        "input_audio_transcription": None,
        "turn_detection": complete_turn_detection({"type": "server_vad"}, api_version),
        "tools": [],
        "tool_choice": "auto",
        "temperature": 0.8,
        "max_response_output_tokens": "inf",
    }


def complete_turn_detection(td: dict[str, Any], api_version: str) -> dict[str, Any]:
    """Fill the documented defaults into a turn-detection object (unknown keys kept)."""
    vad_type = td["type"]
    full = {
        "type": vad_type,
        "threshold": 0.5,
        "prefix_padding_ms": default_prefix_padding_ms(api_version, vad_type),
        "silence_duration_ms": 500,
        "create_response": True,
        "interrupt_response": True,
        "auto_truncate": False,
    }
    if vad_type.startswith("azure_semantic"):
        full["speech_duration_ms"] = 80
        full["remove_filler_words"] = False
    full.update({k: v for k, v in td.items() if v is not None})  # null means "the default"
    return full


def _bad(code: str, message: str, param: str, event_id: str | None) -> WireError:
    return WireError(code, message, param, event_id)


def _number(td: dict[str, Any], key: str, lo: float, hi: float, event_id: str | None) -> None:
    if key not in td or td[key] is None:
        return
    value = td[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise _bad(
            "invalid_value",
            f"Invalid value for 'session.turn_detection.{key}': {value!r}; expected a number in [{lo}, {hi}].",
            f"session.turn_detection.{key}",
            event_id,
        )


def _validate_turn_detection(td: Any, api_version: str, event_id: str | None) -> dict[str, Any] | None:
    if td is None or (isinstance(td, dict) and td.get("type") == "none"):
        return None
    if not isinstance(td, dict) or td.get("type") not in _VAD_TYPES:
        shown = td.get("type") if isinstance(td, dict) else td
        raise _bad(
            "invalid_value",
            f"Invalid value for 'session.turn_detection.type': {shown!r}; supported: {sorted(_VAD_TYPES)} or null.",
            "session.turn_detection.type",
            event_id,
        )
    _number(td, "threshold", 0.0, 1.0, event_id)
    for key in ("prefix_padding_ms", "silence_duration_ms", "speech_duration_ms"):
        _number(td, key, 0, 60_000, event_id)
    return complete_turn_detection(td, api_version)


def apply_update(
    current: dict[str, Any], update: Any, api_version: str, event_id: str | None, *, audio_started: bool
) -> dict[str, Any]:
    """Merge a ``session.update`` body into the effective session.

    Only present keys change; unknown keys are kept and echoed. The current session is left untouched
    when the update is refused.

    Raises:
        WireError: An invalid value (the session is unchanged).
    """
    if not isinstance(update, dict):
        raise _bad("invalid_type", "Invalid type for 'session': expected an object.", "session", event_id)
    new = copy.deepcopy(current)
    for key, value in update.items():
        if key in ("id", "object", "expires_at"):
            continue
        if key == "model" and value not in (None, current["model"]):
            raise _bad(
                "invalid_value",
                "The model cannot change after the session starts.",
                "session.model",
                event_id,
            )
        if key == "turn_detection":
            new[key] = _validate_turn_detection(value, api_version, event_id)
        elif key == "input_audio_format":
            if value not in protocol.INPUT_FORMATS:
                raise _bad(
                    "invalid_value",
                    f"Invalid value for 'session.input_audio_format': {value!r}; supported: {list(protocol.INPUT_FORMATS)}.",
                    "session.input_audio_format",
                    event_id,
                )
            new[key] = value
            if "input_audio_sampling_rate" not in update:
                new["input_audio_sampling_rate"] = 8000 if value.startswith("g711") else 24000
        elif key == "input_audio_sampling_rate":
            if value not in protocol.INPUT_SAMPLING_RATES:
                raise _bad(
                    "invalid_value",
                    f"Invalid value for 'session.input_audio_sampling_rate': {value!r}; supported: {list(protocol.INPUT_SAMPLING_RATES)}.",
                    "session.input_audio_sampling_rate",
                    event_id,
                )
            new[key] = value
        elif key == "output_audio_format":
            normalized = value.replace("-", "_") if isinstance(value, str) else value
            if normalized not in protocol.OUTPUT_FORMAT_RATES:
                raise _bad(
                    "invalid_value",
                    f"Invalid value for 'session.output_audio_format': {value!r}; supported: {list(protocol.OUTPUT_FORMAT_RATES)}.",
                    "session.output_audio_format",
                    event_id,
                )
            new[key] = value
        elif key == "modalities":
            if not isinstance(value, list) or set(value) not in _MODALITIES:
                raise _bad(
                    "invalid_value",
                    f"Invalid value for 'session.modalities': {value!r}; use ['text', 'audio'] or ['text'].",
                    "session.modalities",
                    event_id,
                )
            new[key] = value
        elif key == "voice":
            if audio_started and value != current["voice"]:
                raise _bad(
                    "cannot_update_voice",
                    "The voice cannot change once the assistant has produced audio in this session.",
                    "session.voice",
                    event_id,
                )
            new[key] = value
        elif key == "instructions":
            new[key] = "" if value is None else value
        else:
            new[key] = value
    if new["input_audio_format"].startswith("g711"):
        new["input_audio_sampling_rate"] = 8000
    return new


def input_rate(session: dict[str, Any]) -> int:
    """Sample rate of the session's input audio in Hz."""
    return (
        8000
        if session["input_audio_format"].startswith("g711")
        else int(session["input_audio_sampling_rate"])
    )


def output_rate(session: dict[str, Any]) -> int:
    """Sample rate of the session's output audio in Hz."""
    return protocol.OUTPUT_FORMAT_RATES[session["output_audio_format"].replace("-", "_")]
