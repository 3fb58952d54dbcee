"""Voice Live wire-protocol facts shared by the session, the log and the emulator.

Event names are the legacy (dated api-version) names that SDK 1.3.x parses; see
``docs/protocol.md`` (events, their order, versions). Nothing here imports the SDK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

DEFAULT_API_VERSION: Final = "2026-07-15"
"""The api-version SDK 1.3.1 sends by default."""

DEFAULT_MODEL: Final = "gpt-realtime"
"""Model used when none is configured."""

ROUTES: Final = ("/voice-live/realtime", "/voice-agent/realtime")
"""The WebSocket paths of a session; the SDK appends the first to the endpoint (the second is the same
service's older name)."""

SDK_QUERY_PARAMETERS: Final = ("api-version", "model")
"""Query parameters the SDK sets itself when given them, as vlab always gives them (the api-version and the
model); one in the endpoint's query is then replaced."""

# --- audio formats -------------------------------------------------------------------------------

MODALITIES: Final = (
    ("text", "audio"),
    ("text",),
    ("text", "audio", "animation"),
    ("text", "audio", "avatar"),
)
"""The ``session.modalities`` the service takes (in any order): audio alone is not one of them."""

INPUT_FORMATS: Final = ("pcm16", "g711_ulaw", "g711_alaw")
"""Accepted ``input_audio_format`` values."""

PCM16_SAMPLE_RATE_HZ: Final = 24000
"""Sample rate of ``pcm16`` audio, in Hz: the output of ``pcm16`` and the input when no
``input_audio_sampling_rate`` is given."""

G711_SAMPLE_RATE_HZ: Final = 8000
"""Sample rate of ``g711_ulaw``/``g711_alaw`` audio, in and out, in Hz (one byte a sample)."""

INPUT_SAMPLING_RATES: Final = (8000, 16000, 24000, 44100, 48000)
"""``input_audio_sampling_rate`` values for pcm16 input, in Hz."""

NOISE_REDUCTION_TYPES: Final = ("near_field", "far_field", "azure_deep_noise_suppression")
"""``input_audio_noise_reduction.type`` values (``near_field``/``far_field`` are OpenAI's, for gpt-realtime
models; ``azure_deep_noise_suppression`` is Azure's). ``null`` turns noise reduction off."""

ECHO_CANCELLATION_TYPE: Final = "server_echo_cancellation"
"""The ``input_audio_echo_cancellation.type`` (reference: the assistant audio the service sent, played as it
arrives). ``null`` turns echo cancellation off."""

OUTPUT_FORMAT_RATES: Final = {
    "pcm16": PCM16_SAMPLE_RATE_HZ,
    "pcm16_8000hz": 8000,
    "pcm16_16000hz": 16000,
    "pcm16_22050hz": 22050,
    "pcm16_24000hz": 24000,
    "pcm16_44100hz": 44100,
    "pcm16_48000hz": 48000,
    "g711_ulaw": G711_SAMPLE_RATE_HZ,
    "g711_alaw": G711_SAMPLE_RATE_HZ,
}
"""Sample rate in Hz of each ``output_audio_format``."""


def bytes_per_sample(audio_format: str) -> int:
    """Bytes of one sample in a Voice Live audio format: 1 for G.711, 2 for PCM16."""
    return 1 if audio_format.startswith("g711") else 2


def bytes_per_second(audio_format: str, sampling_rate: int | None = None) -> int:
    """Byte rate of mono audio in a Voice Live format.

    Args:
        audio_format: An input or output format name (``pcm16``, ``pcm16_16000hz``, ``g711_ulaw``...).
        sampling_rate: Input sampling rate in Hz for pcm16 input; ignored for other formats.

    Returns:
        Bytes per second (2 bytes a sample for PCM16, 1 for G.711).
    """
    width = bytes_per_sample(audio_format)
    if audio_format.startswith("g711"):
        return width * G711_SAMPLE_RATE_HZ
    if audio_format == "pcm16" and sampling_rate:
        return width * sampling_rate
    return width * OUTPUT_FORMAT_RATES.get(audio_format.replace("-", "_"), PCM16_SAMPLE_RATE_HZ)


# --- conversation items of tools (an item's ``type``) ------------------------------------------------

FUNCTION_CALL_ITEM: Final = "function_call"
"""The model calls a function tool; the client answers with a :data:`FUNCTION_CALL_OUTPUT_ITEM`."""
FUNCTION_CALL_OUTPUT_ITEM: Final = "function_call_output"
MCP_LIST_TOOLS_ITEM: Final = "mcp_list_tools"
"""The service lists an MCP server's tools (after a ``session.update`` that names the server)."""
MCP_CALL_ITEM: Final = "mcp_call"
"""The service calls an MCP server's tool; the item's ``output`` or ``error`` is its answer."""
MCP_APPROVAL_REQUEST_ITEM: Final = "mcp_approval_request"
"""The service asks before an MCP call; the client answers with a :data:`MCP_APPROVAL_RESPONSE_ITEM`."""
MCP_APPROVAL_RESPONSE_ITEM: Final = "mcp_approval_response"
CLIENT_ANSWERED_ITEMS: Final = frozenset({FUNCTION_CALL_ITEM, MCP_APPROVAL_REQUEST_ITEM})
"""Items of a response that wait for the client: it runs the function, or decides on the MCP call. On
vlab's input timeline such a response holds the emulator's time at its end until the client answers
(``docs/timeline.md``)."""


# --- MCP tools (``type: "mcp"`` entries of a session's ``tools``) --------------------------------------

MCP_APPROVALS: Final = ("always", "never")
"""``require_approval`` as one word for every tool of a server; the service's default is ``"always"``. The
per-tool form ``{"never": [names], "always": [names]}`` runs the tools under ``never`` without asking."""
MCP_SECRET_FIELDS: Final = ("authorization", "headers")
"""Fields of an MCP tool that may hold secrets: a log or a run folder keeps :data:`REDACTED` instead."""
REDACTED: Final = "<redacted>"
"""What is kept of a secret value (an MCP server's token, its header values)."""


def mcp_needs_approval(require_approval: object, tool_name: str) -> bool:
    """Whether a call of an MCP server's tool waits for the client's ``mcp_approval_response``.

    Args:
        require_approval: The server's ``require_approval`` (a word of :data:`MCP_APPROVALS` or the per-tool
            mapping); ``None`` is the default, ``"always"``.
        tool_name: The tool's name.
    """
    if isinstance(require_approval, Mapping):
        return tool_name not in (require_approval.get("never") or ())
    return require_approval != "never"


def redact_mcp_tool(tool: Mapping[str, object]) -> dict[str, object]:
    """A copy of an MCP tool's wire object with its token and header values replaced by :data:`REDACTED`."""
    out = dict(tool)
    if out.get("authorization"):
        out["authorization"] = REDACTED
    headers = out.get("headers")
    if isinstance(headers, Mapping):
        out["headers"] = dict.fromkeys(headers, REDACTED)
    return out


# --- event types ---------------------------------------------------------------------------------

SESSION_CREATED: Final = "session.created"
SESSION_UPDATED: Final = "session.updated"
ERROR: Final = "error"
SPEECH_STARTED: Final = "input_audio_buffer.speech_started"
SPEECH_STOPPED: Final = "input_audio_buffer.speech_stopped"
COMMITTED: Final = "input_audio_buffer.committed"
CLEARED: Final = "input_audio_buffer.cleared"
ITEM_CREATED: Final = "conversation.item.created"
ITEM_RETRIEVED: Final = "conversation.item.retrieved"
ITEM_TRUNCATED: Final = "conversation.item.truncated"
ITEM_DELETED: Final = "conversation.item.deleted"
TRANSCRIPTION_DELTA: Final = "conversation.item.input_audio_transcription.delta"
TRANSCRIPTION_COMPLETED: Final = "conversation.item.input_audio_transcription.completed"
TRANSCRIPTION_FAILED: Final = "conversation.item.input_audio_transcription.failed"
RESPONSE_CREATED: Final = "response.created"
RESPONSE_DONE: Final = "response.done"
OUTPUT_ITEM_ADDED: Final = "response.output_item.added"
OUTPUT_ITEM_DONE: Final = "response.output_item.done"
CONTENT_PART_ADDED: Final = "response.content_part.added"
CONTENT_PART_DONE: Final = "response.content_part.done"
AUDIO_DELTA: Final = "response.audio.delta"
AUDIO_DONE: Final = "response.audio.done"
AUDIO_TRANSCRIPT_DELTA: Final = "response.audio_transcript.delta"
AUDIO_TRANSCRIPT_DONE: Final = "response.audio_transcript.done"
TEXT_DELTA: Final = "response.text.delta"
TEXT_DONE: Final = "response.text.done"
FUNCTION_CALL_ARGUMENTS_DELTA: Final = "response.function_call_arguments.delta"
FUNCTION_CALL_ARGUMENTS_DONE: Final = "response.function_call_arguments.done"
AUDIO_TIMESTAMP_DELTA: Final = "response.audio_timestamp.delta"
AUDIO_TIMESTAMP_DONE: Final = "response.audio_timestamp.done"
ANIMATION_VISEME_DELTA: Final = "response.animation_viseme.delta"
ANIMATION_VISEME_DONE: Final = "response.animation_viseme.done"
OUTPUT_AUDIO_CLEARED: Final = "output_audio_buffer.cleared"
WARNING: Final = "warning"
TRANSCRIPT_ANNOTATION_ADDED: Final = "response.audio_transcript.annotation.added"
ANIMATION_BLENDSHAPES_DELTA: Final = "response.animation_blendshapes.delta"
ANIMATION_BLENDSHAPES_DONE: Final = "response.animation_blendshapes.done"
VIDEO_DELTA: Final = "response.video.delta"
INVOCATION_DELTA: Final = "response.invocation.delta"
AVATAR_CONNECTING: Final = "session.avatar.connecting"
AVATAR_SWITCH_TO_IDLE: Final = "session.avatar.switch_to_idle"
AVATAR_SWITCH_TO_SPEAKING: Final = "session.avatar.switch_to_speaking"
MCP_LIST_TOOLS_IN_PROGRESS: Final = "mcp_list_tools.in_progress"
MCP_LIST_TOOLS_COMPLETED: Final = "mcp_list_tools.completed"
MCP_LIST_TOOLS_FAILED: Final = "mcp_list_tools.failed"
MCP_CALL_IN_PROGRESS: Final = "response.mcp_call.in_progress"
MCP_CALL_COMPLETED: Final = "response.mcp_call.completed"
MCP_CALL_FAILED: Final = "response.mcp_call.failed"
MCP_CALL_ARGUMENTS_DELTA: Final = "response.mcp_call_arguments.delta"
MCP_CALL_ARGUMENTS_DONE: Final = "response.mcp_call_arguments.done"
FILE_SEARCH_CALL_IN_PROGRESS: Final = "response.file_search_call.in_progress"
FILE_SEARCH_CALL_SEARCHING: Final = "response.file_search_call.searching"
FILE_SEARCH_CALL_COMPLETED: Final = "response.file_search_call.completed"
WEB_SEARCH_CALL_IN_PROGRESS: Final = "response.web_search_call.in_progress"
WEB_SEARCH_CALL_SEARCHING: Final = "response.web_search_call.searching"
WEB_SEARCH_CALL_COMPLETED: Final = "response.web_search_call.completed"

CLIENT_SESSION_UPDATE: Final = "session.update"
CLIENT_APPEND: Final = "input_audio_buffer.append"
CLIENT_COMMIT: Final = "input_audio_buffer.commit"
CLIENT_CLEAR: Final = "input_audio_buffer.clear"
CLIENT_ITEM_CREATE: Final = "conversation.item.create"
CLIENT_ITEM_RETRIEVE: Final = "conversation.item.retrieve"
CLIENT_ITEM_TRUNCATE: Final = "conversation.item.truncate"
CLIENT_ITEM_DELETE: Final = "conversation.item.delete"
CLIENT_RESPONSE_CREATE: Final = "response.create"
CLIENT_RESPONSE_CANCEL: Final = "response.cancel"
CLIENT_OUTPUT_CLEAR: Final = "output_audio_buffer.clear"

CLIENT_EVENT_TYPES: Final = frozenset(
    {
        CLIENT_SESSION_UPDATE,
        CLIENT_APPEND,
        CLIENT_COMMIT,
        CLIENT_CLEAR,
        CLIENT_ITEM_CREATE,
        CLIENT_ITEM_RETRIEVE,
        CLIENT_ITEM_TRUNCATE,
        CLIENT_ITEM_DELETE,
        CLIENT_RESPONSE_CREATE,
        CLIENT_RESPONSE_CANCEL,
        CLIENT_OUTPUT_CLEAR,
    }
)
"""Client event types the emulator handles: every one vlab sends. The emulator answers any other type
(``input_text.delta``, ``session.avatar.connect``, …) with an ``invalid_value`` error."""

FieldType = Literal["string", "integer", "number", "boolean", "object", "array", "base64", "array or string"]
"""The JSON type of a server event field: ``number`` is any finite number, ``integer`` a whole one,
``base64`` a string of standard base64 (padded), ``array or string`` either (the SDK's
``Union[list, str]``)."""

_RESPONSE_IDS: Final[Mapping[str, FieldType]] = {
    "response_id": "string",
    "item_id": "string",
    "output_index": "integer",
    "content_index": "integer",
}
_ITEM: Final[Mapping[str, FieldType]] = {
    "item": "object",
    "item.id": "string",
    "item.type": "string",
    "item.role": "string",
    "item.status": "string",
    "item.content": "array",
    "item.call_id": "string",
    "item.name": "string",
    "item.arguments": "string",
}
_SESSION: Final[Mapping[str, FieldType]] = {
    "session": "object",
    "session.id": "string",
    "session.modalities": "array",
    "session.input_audio_format": "string",
    "session.output_audio_format": "string",
    "session.input_audio_sampling_rate": "integer",
    "session.turn_detection": "object",
    "session.turn_detection.type": "string",
    "session.turn_detection.interrupt_response": "boolean",
    "session.turn_detection.create_response": "boolean",
    "session.tools": "array",
    "session.metadata": "object",
}
_RESPONSE: Final[Mapping[str, FieldType]] = {
    "response": "object",
    "response.id": "string",
    "response.status": "string",
    "response.status_details": "object",
    "response.output": "array",
    "response.usage": "object",
}
_OUTPUT_IDS: Final[Mapping[str, FieldType]] = {
    "response_id": "string",
    "item_id": "string",
    "output_index": "integer",
}
_TOOL_CALL: Final[Mapping[str, FieldType]] = {**_OUTPUT_IDS, "sequence_number": "integer"}
_MCP_CALL: Final[Mapping[str, FieldType]] = {"item_id": "string", "output_index": "integer"}
_ERROR_FIELDS: Final[Mapping[str, FieldType]] = {
    "error": "object",
    "error.type": "string",
    "error.code": "string",
    "error.message": "string",
    "error.param": "string",
    "error.event_id": "string",
}

SERVER_EVENT_FIELDS: Final[Mapping[str, Mapping[str, FieldType]]] = MappingProxyType(
    {
        SESSION_CREATED: _SESSION,
        SESSION_UPDATED: _SESSION,
        ERROR: _ERROR_FIELDS,
        SPEECH_STARTED: {"audio_start_ms": "number", "item_id": "string"},
        SPEECH_STOPPED: {"audio_end_ms": "number", "item_id": "string"},
        COMMITTED: {"item_id": "string", "previous_item_id": "string"},
        CLEARED: {},
        ITEM_CREATED: {"previous_item_id": "string", **_ITEM},
        ITEM_RETRIEVED: _ITEM,
        ITEM_TRUNCATED: {"item_id": "string", "content_index": "integer", "audio_end_ms": "number"},
        ITEM_DELETED: {"item_id": "string"},
        TRANSCRIPTION_DELTA: {
            "item_id": "string",
            "content_index": "integer",
            "delta": "string",
            "logprobs": "array",
        },
        TRANSCRIPTION_COMPLETED: {
            "item_id": "string",
            "content_index": "integer",
            "transcript": "string",
            "logprobs": "array",
            "phrases": "array",
        },
        TRANSCRIPTION_FAILED: {"item_id": "string", "content_index": "integer", **_ERROR_FIELDS},
        RESPONSE_CREATED: _RESPONSE,
        RESPONSE_DONE: _RESPONSE,
        OUTPUT_ITEM_ADDED: {"response_id": "string", "output_index": "integer", **_ITEM},
        OUTPUT_ITEM_DONE: {"response_id": "string", "output_index": "integer", **_ITEM},
        CONTENT_PART_ADDED: {**_RESPONSE_IDS, "part": "object"},
        CONTENT_PART_DONE: {**_RESPONSE_IDS, "part": "object"},
        AUDIO_DELTA: {**_RESPONSE_IDS, "delta": "base64"},
        AUDIO_DONE: _RESPONSE_IDS,
        AUDIO_TRANSCRIPT_DELTA: {**_RESPONSE_IDS, "delta": "string"},
        AUDIO_TRANSCRIPT_DONE: {**_RESPONSE_IDS, "transcript": "string"},
        TEXT_DELTA: {**_RESPONSE_IDS, "delta": "string"},
        TEXT_DONE: {**_RESPONSE_IDS, "text": "string"},
        FUNCTION_CALL_ARGUMENTS_DELTA: {**_OUTPUT_IDS, "call_id": "string", "delta": "string"},
        FUNCTION_CALL_ARGUMENTS_DONE: {
            **_OUTPUT_IDS,
            "call_id": "string",
            "name": "string",
            "arguments": "string",
        },
        AUDIO_TIMESTAMP_DELTA: {
            **_RESPONSE_IDS,
            "audio_offset_ms": "number",
            "audio_duration_ms": "number",
            "text": "string",
            "timestamp_type": "string",
        },
        AUDIO_TIMESTAMP_DONE: _RESPONSE_IDS,
        ANIMATION_VISEME_DELTA: {**_RESPONSE_IDS, "audio_offset_ms": "number", "viseme_id": "integer"},
        ANIMATION_VISEME_DONE: _RESPONSE_IDS,
        OUTPUT_AUDIO_CLEARED: {},
        # the types vlab does not react to, as the SDK's models have them (the emulator sends only the MCP ones)
        WARNING: {
            "warning": "object",
            "warning.message": "string",
            "warning.code": "string",
            "warning.param": "string",
        },
        TRANSCRIPT_ANNOTATION_ADDED: {**_RESPONSE_IDS, "annotation_index": "integer"},  # annotation: any
        ANIMATION_BLENDSHAPES_DELTA: {**_RESPONSE_IDS, "frames": "array or string", "frame_index": "integer"},
        ANIMATION_BLENDSHAPES_DONE: _OUTPUT_IDS,
        VIDEO_DELTA: {"output_index": "integer", "codec": "string", "delta": "string"},
        INVOCATION_DELTA: {"delta": "object"},
        AVATAR_CONNECTING: {"server_sdp": "string"},
        AVATAR_SWITCH_TO_IDLE: {"turn_id": "string"},
        AVATAR_SWITCH_TO_SPEAKING: {"turn_id": "string"},
        MCP_LIST_TOOLS_IN_PROGRESS: {"item_id": "string"},
        MCP_LIST_TOOLS_COMPLETED: {"item_id": "string"},
        MCP_LIST_TOOLS_FAILED: {"item_id": "string"},
        MCP_CALL_IN_PROGRESS: _MCP_CALL,
        MCP_CALL_COMPLETED: _MCP_CALL,
        MCP_CALL_FAILED: _MCP_CALL,
        MCP_CALL_ARGUMENTS_DELTA: {**_OUTPUT_IDS, "delta": "string", "obfuscation": "string"},
        MCP_CALL_ARGUMENTS_DONE: {**_OUTPUT_IDS, "arguments": "string"},
        FILE_SEARCH_CALL_IN_PROGRESS: _TOOL_CALL,
        FILE_SEARCH_CALL_SEARCHING: _TOOL_CALL,
        FILE_SEARCH_CALL_COMPLETED: _TOOL_CALL,
        WEB_SEARCH_CALL_IN_PROGRESS: _TOOL_CALL,
        WEB_SEARCH_CALL_SEARCHING: _TOOL_CALL,
        WEB_SEARCH_CALL_COMPLETED: _TOOL_CALL,
    }
)
"""Every server event type SDK 1.3.x knows (its ``ServerEventType``) and the JSON type of each field, by
dotted path (``response.id`` is ``id`` inside ``response``), as the SDK's models type them
(``tests/unit/test_protocol_server_events.py`` compares them; vlab takes any finite number for the ``*_ms``
fields the SDK types as integers). A field the SDK types as ``Any`` is not listed. Every server event may
also carry ``event_id`` (a string) and the emulator's :data:`SIM_MS_KEY` (a number). A missing field or
``null`` is allowed (the SDK reads it as ``None``); fields not listed, and event types not listed, are
accepted as they are. The session checks each server event against it (a mismatch is a
``vlab.protocol_warning``), and the fuzzers mutate it."""

AUDIO_CARRYING_EVENTS: Final = frozenset({CLIENT_APPEND, AUDIO_DELTA})
"""Events whose base64 payload is audio (logged as byte counts, never inline)."""


VAD_TURN_ORDER: Final = (
    SPEECH_STARTED,
    SPEECH_STOPPED,
    COMMITTED,
    ITEM_CREATED,
    RESPONSE_CREATED,
    OUTPUT_ITEM_ADDED,
    ITEM_CREATED,
    CONTENT_PART_ADDED,
    AUDIO_DONE,
    AUDIO_TRANSCRIPT_DONE,
    CONTENT_PART_DONE,
    OUTPUT_ITEM_DONE,
    RESPONSE_DONE,
)
"""The non-delta server events of one server-VAD turn with an audio reply, in order (docs/protocol.md)."""

# --- vlab's emulator extensions (ignored by the SDK and absent on Azure) ---------------------------

SIM_MS_KEY: Final = "x_vlab_sim_ms"
"""Key the emulator adds to every server event: the event's position on the emulator's simulated
timeline, in ms of input audio (see ``docs/timeline.md``). The SDK keeps unknown keys and ignores them;
vlab's log moves the value into the record's ``sim_ms`` field."""

DECIDED_MS_KEY: Final = "x_vlab_decided_ms"
"""Key the emulator adds to ``input_audio_buffer.speech_started``: where on the simulated timeline its VAD
decided the speech had started, before the network delay (the event's :data:`SIM_MS_KEY` minus this is
that delay; ``vlab calibrate`` fits the ``network`` stage from it on the simulated timeline). Unlike
:data:`SIM_MS_KEY` it stays in the logged payload. Azure never sends it."""

RUN_MS_KEY: Final = "x_vlab_run_ms"
"""Key a client may add to a ``conversation.item.create`` of a ``function_call_output``, for vlab's emulator
only: how long the function ran, in simulated ms from the end of the response that called it. On the
input timeline the output then happens that long after the call, and time runs on to it meanwhile (the
user's words in between are decided first), the same at every speed (``docs/timeline.md``). vlab sends it
only to the emulator; elsewhere a function's run time is its own."""

TIMELINE_METADATA_KEY: Final = "vlab.timeline"
"""``session.metadata`` key by which a client tells the emulator how its simulated time advances."""

TIMELINE_LIVE: Final = "live"
"""Default: time follows the input audio, and the wall clock (× speed) while no input arrives."""
TIMELINE_INPUT: Final = "input"
"""Time follows the client's input audio only: nothing happens at a time the audio has not reached."""
TIMELINE_ENDED: Final = "ended"
"""The client has sent all its audio: time runs on without it; ``session.updated`` answers once the
emulator has nothing left to do."""
TIMELINE_MODES: Final = (TIMELINE_LIVE, TIMELINE_INPUT, TIMELINE_ENDED)
"""Values of :data:`TIMELINE_METADATA_KEY`."""

BARGE_IN_METADATA_KEY: Final = "vlab.barge_in"
"""``session.metadata`` key by which a client tells vlab's emulator what it does when the user speaks over a
response while ``interrupt_response`` is off: :data:`BARGE_IN_CANCELS` (it sends ``response.cancel``) or
:data:`BARGE_IN_LETS_RUN`. On the ``input`` timeline the emulator then holds time at each such
``speech_started`` until the cancel arrives, so the cancel happens where the speech was detected, at any
speed (``docs/timeline.md``). ``vlab.feed`` sends it with each ``input`` update."""

BARGE_IN_CANCELS: Final = "cancel"
"""The client cancels a response the user speaks over (:data:`BARGE_IN_METADATA_KEY`)."""
BARGE_IN_LETS_RUN: Final = "none"
"""The client sends no cancel: the response runs on over the user's speech (the default)."""
BARGE_IN_MODES: Final = (BARGE_IN_CANCELS, BARGE_IN_LETS_RUN)
"""Values of :data:`BARGE_IN_METADATA_KEY`."""

LATENCY_SEED_METADATA_KEY: Final = "vlab.latency_seed"
"""``session.metadata`` key by which a client gives the emulator the seed of its connection's latency
draws, as a decimal string (metadata values are strings): the draws start again from it, as they start on
an emulator made with that seed (``Emulator(seed=N)``, its first connection). ``Session(latency_seed=N)``
sends it first on each connection, and a sweep gives each cell its seed, so a cell draws the same
latencies on a ``vlab emulator`` at an endpoint as on the embedded one."""


VLAB_METADATA_KEYS: Final = (TIMELINE_METADATA_KEY, BARGE_IN_METADATA_KEY, LATENCY_SEED_METADATA_KEY)
"""The ``session.metadata`` keys by which vlab's client steers vlab's emulator (not session settings)."""


def steers_the_emulator(event: Mapping[str, Any]) -> bool:
    """Whether a ``session.update`` only steers vlab's emulator (:data:`VLAB_METADATA_KEYS`), changing no setting.

    Such updates (the feed's requests to sync with the timeline) are vlab's, not the user's: their number
    depends on timing, so they are not measured as updates.
    """
    session = event.get("session")
    if not isinstance(session, Mapping) or set(session) != {"metadata"}:
        return False
    metadata = session["metadata"]
    return isinstance(metadata, Mapping) and bool(metadata) and set(metadata) <= set(VLAB_METADATA_KEYS)


def timeline_mode(event: Mapping[str, Any]) -> Any:
    """The :data:`TIMELINE_METADATA_KEY` value in a session event's ``session.metadata``, else None.

    For a ``session.update`` (what a client asks for) or a ``session.updated`` (what the emulator took).
    """
    session = event.get("session")
    metadata = session.get("metadata") if isinstance(session, Mapping) else None
    return metadata.get(TIMELINE_METADATA_KEY) if isinstance(metadata, Mapping) else None


def function_run_ms(event: Mapping[str, Any]) -> float | None:
    """The simulated run time (:data:`RUN_MS_KEY`) a client event carries: a number of ms ≥ 0, else None.

    Only a ``conversation.item.create`` of a ``function_call_output`` may carry one.
    """
    value = event.get(RUN_MS_KEY)
    item = event.get("item")
    if (
        event.get("type") != CLIENT_ITEM_CREATE
        or not isinstance(item, Mapping)
        or item.get("type") != FUNCTION_CALL_OUTPUT_ITEM
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < math.inf
    ):
        return None
    return float(value)


# --- vlab's own records in a session log (direction ``local``) -------------------------------------

LOCAL_PREFIX: Final = "vlab."
"""The prefix of every record type vlab logs itself (never a Voice Live event's)."""

CONNECT: Final = "vlab.connect"
"""Stamped just before the session opens the WebSocket (``target``, ``auth``)."""
AUDIO_INPUT: Final = "vlab.audio_input"
"""What a live microphone applied, at its first chunk (a browser's echo cancellation …)."""
CAPTURE: Final = "vlab.capture"
"""The input sample at ``audio_start_ms`` was captured at ``t_ns`` (``Session.stream_microphone``)."""
INPUT_OVERFLOW: Final = "vlab.input_overflow"
"""The microphone dropped input (``overflows``: how often so far)."""
CONNECTION_LOST: Final = "vlab.connection_lost"
"""The connection ended unexpectedly (``error``, the ``response_id`` it cut)."""
RECONNECT: Final = "vlab.reconnect"
"""The session is connecting again (``attempt``)."""
RECONNECTED: Final = "vlab.reconnected"
"""The session connected again and restored its settings."""
RECONNECT_FAILED: Final = "vlab.reconnect_failed"
"""An attempt to connect again failed (``attempt``, ``error``)."""
PLAYBACK_STARTED: Final = "vlab.playback_started"
"""A speaker started playing an assistant item; stamped when its first sample reached the DAC."""
PLAYBACK_FINISHED: Final = "vlab.playback_finished"
"""A speaker finished playing an assistant item (``played_ms``)."""
PLAYBACK_CLEARED: Final = "vlab.playback_cleared"
"""Barge-in stopped the speaker (``heard_ms``, ``silent_from_t_ns`` …)."""
UNDERRUN: Final = "vlab.underrun"
"""The speaker ran dry while an item was playing (an audible gap)."""


def local_record_type(notice: str) -> str:
    """The record type of a speaker's notice (``playback_started`` → :data:`PLAYBACK_STARTED`)."""
    return LOCAL_PREFIX + notice


PROTOCOL_WARNING: Final = "vlab.protocol_warning"
"""Local record: a server event broke the protocol (a field of the wrong type, audio that is not base64,
a frame nested too deeply to read) and the session went on without reacting to it. Its payload holds
``event_type``, ``problems`` (one sentence each) and ``raw`` (the server's frame as text, cut at
:data:`PROTOCOL_WARNING_RAW_CHARS` characters, with ``raw_chars`` its full length)."""

LOCAL_RECORD_TYPES: Final = frozenset(
    {
        CONNECT,
        AUDIO_INPUT,
        CAPTURE,
        INPUT_OVERFLOW,
        CONNECTION_LOST,
        RECONNECT,
        RECONNECTED,
        RECONNECT_FAILED,
        PLAYBACK_STARTED,
        PLAYBACK_FINISHED,
        PLAYBACK_CLEARED,
        UNDERRUN,
        PROTOCOL_WARNING,
    }
)
"""Every record type vlab logs itself."""

PROTOCOL_WARNING_RAW_CHARS: Final = 4096
"""Longest raw frame text a :data:`PROTOCOL_WARNING` record keeps, in characters."""


# --- secrets in events ---------------------------------------------------------------------------

TOOLS_HOLDERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        CLIENT_SESSION_UPDATE: "session",
        SESSION_CREATED: "session",
        SESSION_UPDATED: "session",
        CLIENT_RESPONSE_CREATE: "response",
        RESPONSE_CREATED: "response",
        RESPONSE_DONE: "response",
    }
)
"""The events that may carry a ``tools`` list (MCP servers' tokens among them), and the field that holds it."""


def redact_mcp_secrets(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A copy of ``body`` (a session, a response) whose MCP tools' secrets are redacted; None when it has none.

    Each ``type: "mcp"`` entry of its ``tools`` gets :func:`redact_mcp_tool`.
    """
    tools = body.get("tools")
    if not isinstance(tools, list) or not any(
        isinstance(t, Mapping) and t.get("type") == "mcp" and (t.get("authorization") or t.get("headers"))
        for t in tools
    ):
        return None
    return {
        **body,
        "tools": [
            redact_mcp_tool(t) if isinstance(t, Mapping) and t.get("type") == "mcp" else t for t in tools
        ],
    }


def without_mcp_secrets(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with its MCP tools' token and header values redacted: a copy, or itself when it has none.

    For what vlab logs, keeps and shows of an event (:data:`TOOLS_HOLDERS`): the service echoes a
    session's tools, tokens included, in ``session.created``/``session.updated``.
    """
    etype = event.get("type")
    key = TOOLS_HOLDERS.get(etype) if type(etype) is str else None  # a hostile server's type may be a list
    body = event.get(key) if key is not None else None
    if not isinstance(body, Mapping):
        return event
    redacted = redact_mcp_secrets(body)
    return event if redacted is None else {**event, key: redacted}  # type: ignore[dict-item]
