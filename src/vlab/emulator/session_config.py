"""The emulator's effective session: defaults per api-version, merging and validating session.update.

Turn-detection defaults and bounds come from :mod:`vlab.protocol_limits` (``docs/protocol.md#turn-detection``:
server VAD 0.5 / prefix padding 400 ms, 300 ms before api-version 2026-04-10 / silence 500 ms); the
rest of the session defaults to pcm16 at 24 kHz in and out and voice ``alloy``. :func:`vad_params` and
:func:`eou_timeout_ms` turn a session's turn detection into what the emulator's VAD runs.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from vlab import protocol, protocol_limits
from vlab.audio.processing import NOISE_SUPPRESSION_LEVELS, ProcessingSettings, noise_suppression_available
from vlab.audio.vad import VadParams
from vlab.emulator.wire import WireError

log = logging.getLogger("vlab.emulator")

SESSION_TTL_S = 30 * 60
"""Seconds from ``session.created`` to the session's ``expires_at`` (the emulator's choice)."""


def default_prefix_padding_ms(api_version: str, vad_type: str) -> int:
    """Documented prefix-padding default for an api-version and VAD type."""
    return protocol_limits.turn_detection_defaults(vad_type, api_version).prefix_padding_ms


def default_session(session_id: str, model: str, api_version: str, *, created_s: float) -> dict[str, Any]:
    """The full session object sent in ``session.created``.

    Args:
        session_id: The session's id.
        model: The model the client asked for.
        api_version: The ``api-version`` of the connection (it sets the turn-detection defaults).
        created_s: When the session is created, in Unix seconds on the emulator's clock.
    """
    return {
        "id": session_id,
        "object": "realtime.session",
        "model": model,
        "expires_at": int(created_s) + SESSION_TTL_S,
        "modalities": ["text", "audio"],
        "instructions": "",
        "voice": {"type": "openai", "name": "alloy"},
        "input_audio_format": "pcm16",
        "input_audio_sampling_rate": protocol.PCM16_SAMPLE_RATE_HZ,
        "output_audio_format": "pcm16",
        "input_audio_noise_reduction": None,
        "input_audio_echo_cancellation": None,
        "input_audio_transcription": None,
        "turn_detection": complete_turn_detection({"type": protocol_limits.SERVER_VAD}, api_version),
        "tools": [],
        "tool_choice": "auto",
        "temperature": 0.8,
        "max_response_output_tokens": "inf",
    }


def complete_turn_detection(td: dict[str, Any], api_version: str) -> dict[str, Any]:
    """Fill the documented defaults into a turn-detection object (unknown keys kept)."""
    full = protocol_limits.turn_detection_defaults(td["type"], api_version).to_wire()
    full.update({k: v for k, v in td.items() if v is not None})  # null means "the default"
    return full


def _bad(code: str, message: str, param: str, event_id: str | None) -> WireError:
    return WireError(code, message, param, event_id)


def _number(td: dict[str, Any], key: str, bounds: protocol_limits.Bounds, event_id: str | None) -> None:
    if key not in td or td[key] is None:
        return
    value = td[key]
    if value not in bounds:
        raise _bad(
            "invalid_value",
            f"Invalid value for 'session.turn_detection.{key}': {value!r}; expected a number in {bounds}.",
            f"session.turn_detection.{key}",
            event_id,
        )


def _validate_turn_detection(td: Any, api_version: str, event_id: str | None) -> dict[str, Any] | None:
    if td is None or (isinstance(td, dict) and td.get("type") == "none"):
        return None
    types = protocol_limits.TURN_DETECTION_TYPES
    if not isinstance(td, dict) or td.get("type") not in types:
        shown = td.get("type") if isinstance(td, dict) else td
        raise _bad(
            "invalid_value",
            f"Invalid value for 'session.turn_detection.type': {shown!r}; supported: {sorted(types)} or null.",
            "session.turn_detection.type",
            event_id,
        )
    for key, bounds in protocol_limits.TURN_DETECTION_BOUNDS.items():
        _number(td, key, bounds, event_id)
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
                new["input_audio_sampling_rate"] = (
                    protocol.G711_SAMPLE_RATE_HZ
                    if value.startswith("g711")
                    else protocol.PCM16_SAMPLE_RATE_HZ
                )
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
            if not isinstance(value, list) or set(value) not in [set(m) for m in protocol.MODALITIES]:
                raise _bad(
                    "invalid_value",
                    f"Invalid value for 'session.modalities': {value!r}; use "
                    + ", ".join(str(list(m)) for m in protocol.MODALITIES[:-1])
                    + f" or {list(protocol.MODALITIES[-1])}.",
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
        new["input_audio_sampling_rate"] = protocol.G711_SAMPLE_RATE_HZ
    return new


def input_rate(session: Mapping[str, Any]) -> int:
    """Sample rate of the session's input audio in Hz."""
    return (
        protocol.G711_SAMPLE_RATE_HZ
        if session["input_audio_format"].startswith("g711")
        else int(session["input_audio_sampling_rate"])
    )


def processing_settings(session: Mapping[str, Any]) -> ProcessingSettings:
    """The processing a session's ``input_audio_noise_reduction`` and ``input_audio_echo_cancellation`` ask for.

    What is returned is what the emulator applies. Unknown types, noise suppression where its wheel is
    missing (Windows), and echo cancellation with a client reference channel (stereo input) are echoed by
    the session but not applied (logged), so the VAD hears the audio as with no processing asked.
    """
    nr = session.get("input_audio_noise_reduction")
    noise = nr.get("type") if isinstance(nr, dict) else None
    if noise is not None and noise not in NOISE_SUPPRESSION_LEVELS:
        log.warning("input_audio_noise_reduction type %r is not emulated; no noise suppression", noise)
        noise = None
    if noise is not None and not noise_suppression_available():
        log.warning(
            "noise suppression needs the webrtc-noise-gain wheel (none for this platform); none applied"
        )
        noise = None
    ec = session.get("input_audio_echo_cancellation")
    echo = (
        isinstance(ec, dict)
        and ec.get("type", protocol.ECHO_CANCELLATION_TYPE) == protocol.ECHO_CANCELLATION_TYPE
    )
    if echo and isinstance(ec, dict) and ec.get("reference_source", "server") not in (None, "server"):
        log.warning("echo cancellation with a client reference channel is not emulated; none applied")
        echo = False
    return ProcessingSettings(noise, echo)


def output_rate(session: Mapping[str, Any]) -> int:
    """Sample rate of the session's output audio in Hz."""
    return protocol.OUTPUT_FORMAT_RATES[session["output_audio_format"].replace("-", "_")]


def vad_params(
    turn_detection: Mapping[str, Any], api_version: str = protocol.DEFAULT_API_VERSION
) -> VadParams:
    """The settings of the emulator's VAD for a turn detection.

    Missing keys take the documented defaults of the type at ``api_version`` (a session's turn detection,
    completed by :func:`complete_turn_detection`, has them all). The shortest speech that starts a turn is
    ``speech_duration_ms`` when given (and not 0), else :data:`~vlab.protocol_limits.MIN_SPEECH_MS`; the
    azure semantic VADs raise smaller values to that minimum, as the service does.

    Args:
        turn_detection: A validated ``turn_detection`` object (not ``None``).
        api_version: The connection's ``api-version``.

    Returns:
        The VAD settings.
    """
    td = complete_turn_detection(dict(turn_detection), api_version)
    floor_ms = protocol_limits.MIN_SPEECH_MS if td["type"] in protocol_limits.AZURE_SEMANTIC_VAD_TYPES else 0
    return VadParams(
        threshold=float(td["threshold"]),
        prefix_padding_ms=int(td["prefix_padding_ms"]),
        silence_duration_ms=int(td["silence_duration_ms"]),
        min_speech_ms=max(int(td.get("speech_duration_ms") or protocol_limits.MIN_SPEECH_MS), floor_ms),
    )
