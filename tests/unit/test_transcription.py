"""Input transcription's events and trace entry for one committed user item (a recorded host, no socket)."""

from __future__ import annotations

import asyncio
from typing import Any

from vlab import protocol
from vlab.emulator.asr import RecognitionError, RecognizedWord, Transcript
from vlab.emulator.items import Item
from vlab.emulator.transcription import already_read, transcription_events


class _Host:
    """A connection that records the events it would send and what it traces."""

    def __init__(self, **session: Any) -> None:
        self.session: dict[str, Any] = {"turn_detection": None, **session}
        self.sent: list[dict[str, Any]] = []
        self.trace: list[dict[str, Any]] = []

    def trace_add(self, **entry: Any) -> None:
        self.trace.append(entry)


def _transcript(*words: str) -> Transcript:
    return Transcript(
        tuple(RecognizedWord(w, 100.0 * i, 90.0) for i, w in enumerate(words)), audio_ms=1500.0, decode_s=0.25
    )


def _send(host: _Host, reading: Any) -> Item:
    item = Item.from_wire({"id": "item_1", "type": "message", "role": "user", "content": []})
    host.sent = asyncio.run(transcription_events(host, item, reading))
    return item


def test_each_word_is_a_delta_of_content_part_0_and_the_whole_is_completed() -> None:
    host = _Host(input_audio_transcription={"model": "azure-speech"})
    item = _send(host, already_read(_transcript("turn", "on", "the", "lights")))
    deltas = [e for e in host.sent if e["type"] == protocol.TRANSCRIPTION_DELTA]
    assert [e["delta"] for e in deltas] == ["turn", " on", " the", " lights"]
    assert {(e["item_id"], e["content_index"]) for e in deltas} == {("item_1", 0)}
    assert host.sent[-1] == {
        "type": protocol.TRANSCRIPTION_COMPLETED,
        "item_id": "item_1",
        "content_index": 0,
        "transcript": "turn on the lights",
    }
    assert item.wire["content"] == [{"type": "input_audio", "transcript": "turn on the lights"}]


def test_the_trace_names_the_model_the_audio_and_the_decoding_time_in_ms() -> None:
    host = _Host(input_audio_transcription={"model": "azure-speech"})
    _send(host, already_read(_transcript("hello", "there")))
    assert host.trace == [
        {
            "kind": "asr",
            "item_id": "item_1",
            "audio_ms": 1500.0,
            "decode_ms": 250.0,
            "model": "azure-speech",
            "text": "hello there",
        }
    ]
    untranscribed = _Host(input_audio_transcription=None)
    _send(untranscribed, already_read(_transcript("hello")))
    assert untranscribed.trace[0]["model"] is None


def test_remove_filler_words_strips_hesitations_but_not_real_words() -> None:
    spoken = ("um", "so", "I", "uh", "like", "it")
    kept = _Host(turn_detection={"type": "server_vad"})
    _send(kept, already_read(_transcript(*spoken)))
    assert kept.sent[-1]["transcript"] == "um so I uh like it"
    stripped = _Host(turn_detection={"type": "server_vad", "remove_filler_words": True})
    _send(stripped, already_read(_transcript(*spoken)))
    assert stripped.sent[-1]["transcript"] == "so I like it"
    assert [e["delta"] for e in stripped.sent[:-1]] == ["so", " I", " like", " it"]


def test_a_failed_reading_is_one_failed_event_and_nothing_else() -> None:
    async def failing() -> Transcript:
        raise RecognitionError("decoder gone")

    host = _Host(input_audio_transcription={"model": "azure-speech"})
    item = _send(host, failing())
    assert host.sent == [
        {
            "type": protocol.TRANSCRIPTION_FAILED,
            "item_id": "item_1",
            "content_index": 0,
            "error": {
                "type": "transcription_error",
                "code": "audio_unintelligible",
                "message": "Input transcription failed: decoder gone",
                "param": None,
            },
        }
    ]
    assert host.trace == [] and item.wire["content"] == []
