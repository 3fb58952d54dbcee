"""Input transcription: the events that carry what the recognizer heard in a committed user turn.

The recognizer reads the turn on a worker thread as soon as it is committed; a step of the connection's
timeline right after the commit takes its words into the item (a response to that turn waits for them,
so the replies can answer the words). Its events go out the latency model's ``transcription`` delay
after the commit (:meth:`~vlab.emulator.latency.LatencySampler.transcription_ms`), as the service's
transcript comes some time after ``speech_stopped``, often after the response has begun.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from vlab import protocol
from vlab.emulator.asr import Transcript, strip_fillers
from vlab.emulator.items import Item

log = logging.getLogger("vlab.emulator")


class TranscriptionHost(Protocol):
    """What the transcription needs from its connection."""

    @property
    def session(self) -> Mapping[str, Any]:
        """The session configuration in force."""

    def trace_add(self, **entry: Any) -> None:
        """Add an entry to the ground-truth trace."""


async def transcription_events(
    host: TranscriptionHost, item: Item, reading: asyncio.Future[Transcript]
) -> list[dict[str, Any]]:
    """The transcription events of a committed user item, once the recognizer has read it.

    The transcript goes into the item at once (a reply follows its words; ``retrieve`` shows it).
    """
    item_id = item.id
    try:
        transcript = await reading
    except Exception as exc:
        log.info("input transcription failed: %s", exc)
        return [
            {
                "type": protocol.TRANSCRIPTION_FAILED,
                "item_id": item_id,
                "content_index": 0,
                "error": {
                    "type": "transcription_error",
                    "code": "audio_unintelligible",
                    "message": f"Input transcription failed: {exc}",
                    "param": None,
                },
            }
        ]
    words = [w.text for w in transcript.words]
    td = host.session["turn_detection"] or {}
    if td.get("remove_filler_words"):
        words = strip_fillers(words)
    text = " ".join(words)
    host.trace_add(
        kind="asr",
        item_id=item_id,
        audio_ms=transcript.audio_ms,
        decode_ms=transcript.decode_s * 1000.0,
        model=(host.session.get("input_audio_transcription") or {}).get("model"),
        text=text,
    )
    item.wire["content"] = [{"type": "input_audio", "transcript": text}]
    deltas = [
        {
            "type": protocol.TRANSCRIPTION_DELTA,
            "item_id": item_id,
            "content_index": 0,
            "delta": (" " if i else "") + word,
        }
        for i, word in enumerate(words)
    ]
    completed = {
        "type": protocol.TRANSCRIPTION_COMPLETED,
        "item_id": item_id,
        "content_index": 0,
        "transcript": text,
    }
    return [*deltas, completed]


async def already_read(transcript: Transcript) -> Transcript:
    """A transcript read earlier (while the turn was held), as the recognizer's result."""
    return transcript
