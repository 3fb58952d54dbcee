"""How the widgets' event tables show one event: its direction and a short detail."""

from __future__ import annotations

import math
from typing import Any

from vlab import protocol

DETAIL_CHARS = 100
"""The longest detail shown for one event (the rest is cut)."""

_ARROWS = {"client": "→", "server": "←"}


def direction_arrow(direction: Any) -> str:
    """``→`` for an event sent, ``←`` for one received, ``·`` for vlab's own (``local``)."""
    return _ARROWS.get(direction, "·")


def event_detail(event: Any) -> str:
    """What is worth a glance in ``event`` (an :class:`~vlab.log.EventRecord` or a row of its table).

    An error's code and message; ``audio_start_ms`` of ``speech_started`` and ``audio_end_ms`` of
    ``speech_stopped``; the text it carries; else its item and response ids. Missing values may be None
    or NaN.
    """
    message = getattr(event, "error_message", None)
    if isinstance(message, str):
        return f"{event.error_code}: {message}"[:DETAIL_CHARS]
    name = {protocol.SPEECH_STARTED: "audio_start_ms", protocol.SPEECH_STOPPED: "audio_end_ms"}.get(
        event.type
    )
    value = getattr(event, name, None) if name else None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"{name}={value:.0f}"
    text = getattr(event, "text", None)
    if isinstance(text, str) and text:
        return text[:DETAIL_CHARS]
    ids = [
        f"{k}={getattr(event, k)}"
        for k in ("item_id", "response_id")
        if isinstance(getattr(event, k, None), str)
    ]
    return " ".join(ids)[:DETAIL_CHARS]
