"""Input transcription: the events that carry what the recognizer heard in a committed user turn.

The recognizer reads the turn on a worker thread as soon as it is committed; its events go out as a
step of the connection's timeline right after the commit (a response to that turn waits for them, so
the replies can answer the words).
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

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event."""

    def trace_add(self, **entry: Any) -> None:
        """Add an entry to the ground-truth trace."""


async def send_transcription(
    host: TranscriptionHost, item: Item, reading: asyncio.Future[Transcript]
) -> None:
    """Send the transcription events of a committed user item once the recognizer has read it."""
    item_id = item.id
    try:
        transcript = await reading
    except Exception as exc:
        log.info("input transcription failed: %s", exc)
        await host.send(
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
        )
        return
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
    for i, word in enumerate(words):
        await host.send(
            {
                "type": protocol.TRANSCRIPTION_DELTA,
                "item_id": item_id,
                "content_index": 0,
                "delta": (" " if i else "") + word,
            }
        )
    await host.send(
        {
            "type": protocol.TRANSCRIPTION_COMPLETED,
            "item_id": item_id,
            "content_index": 0,
            "transcript": text,
        }
    )


async def already_read(transcript: Transcript) -> Transcript:
    """A transcript read earlier (while the turn was held), as the recognizer's result."""
    return transcript
