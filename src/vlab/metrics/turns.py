"""Per-turn timing from the event log (monotonic client stamps)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from vlab import protocol
from vlab.log.records import EventRecord


def summarize_turns(records: Iterable[EventRecord]) -> list[dict[str, Any]]:
    """One row per response: ids, status and the client-side delays to its first audio.

    ``stopped_to_first_audio_ms`` runs from receiving ``speech_stopped`` (None for responses not
    started by the VAD) to receiving the first ``response.audio.delta``; ``created_to_first_audio_ms``
    from ``response.created`` to that delta. None where an anchor is missing.
    """
    turns: list[dict[str, Any]] = []
    stopped_ns: int | None = None
    current: dict[str, Any] | None = None
    for r in records:
        if r.direction != "server":
            continue
        if r.type == protocol.SPEECH_STOPPED:
            stopped_ns = r.t_ns
        elif r.type == protocol.RESPONSE_CREATED:
            current = {
                "response_id": r.response_id,
                "created_ns": r.t_ns,
                "speech_stopped_ns": stopped_ns,
                "first_audio_ns": None,
            }
            stopped_ns = None
        elif r.type == protocol.AUDIO_DELTA and current is not None and current["first_audio_ns"] is None:
            current["first_audio_ns"] = r.t_ns
        elif r.type == protocol.RESPONSE_DONE and current is not None:
            current["status"] = json.loads(r.payload).get("response", {}).get("status") if r.payload else None
            turns.append(current)
            current = None
    for t in turns:
        first, stopped = t["first_audio_ns"], t["speech_stopped_ns"]
        t["stopped_to_first_audio_ms"] = (
            (first - stopped) / 1e6 if first is not None and stopped is not None else None
        )
        t["created_to_first_audio_ms"] = (first - t["created_ns"]) / 1e6 if first is not None else None
    return turns
