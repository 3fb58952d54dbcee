"""Voice Live wire-protocol facts shared by the session, the log and the emulator.

Event names are the legacy (dated api-version) names that SDK 1.3.x parses; see
``docs/protocol.md`` (events, their order, versions). Nothing here imports the SDK.
"""

from __future__ import annotations

from typing import Final

DEFAULT_API_VERSION: Final = "2026-07-15"
"""The api-version SDK 1.3.1 sends by default."""

DEFAULT_MODEL: Final = "gpt-realtime"
"""Model used when none is configured."""

MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
"""Largest WebSocket message the SDK accepts by default (aiohttp ``max_msg_size``), in bytes."""

# --- audio formats -------------------------------------------------------------------------------

INPUT_FORMATS: Final = ("pcm16", "g711_ulaw", "g711_alaw")
"""Accepted ``input_audio_format`` values."""

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
    "pcm16": 24000,
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


def bytes_per_second(audio_format: str, sampling_rate: int | None = None) -> int:
    """Byte rate of mono audio in a Voice Live format.

    Args:
        audio_format: An input or output format name (``pcm16``, ``pcm16_16000hz``, ``g711_ulaw``...).
        sampling_rate: Input sampling rate in Hz for pcm16 input; ignored for other formats.

    Returns:
        Bytes per second (2 bytes a sample for PCM16, 1 for G.711).
    """
    if audio_format.startswith("g711"):
        return G711_SAMPLE_RATE_HZ
    if audio_format == "pcm16" and sampling_rate:
        return 2 * sampling_rate
    return 2 * OUTPUT_FORMAT_RATES.get(audio_format.replace("-", "_"), 24000)


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
        "output_audio_buffer.clear",
        "input_text.delta",
        "input_text.done",
    }
)
"""Client event types vlab sends or the emulator understands."""

AUDIO_CARRYING_EVENTS: Final = frozenset({CLIENT_APPEND, AUDIO_DELTA})
"""Events whose base64 payload is audio (logged as byte counts, never inline)."""

TEXT_DELTA_EVENTS: Final = frozenset(
    {AUDIO_TRANSCRIPT_DELTA, TEXT_DELTA, TRANSCRIPTION_DELTA, FUNCTION_CALL_ARGUMENTS_DELTA}
)
"""Events whose ``delta`` field is text."""

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
