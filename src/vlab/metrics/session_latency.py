"""Session-level delays from the event log: connect, updates, cancels, barge-in (on the client's clock)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from vlab import protocol
from vlab.metrics.events import (
    as_float,
    as_str,
    in_log_order,
    payload_of,
    rows_of,
    span_ms,
)


def session_latency(events: pd.DataFrame, *, connect_ns: int | None = None) -> pd.DataFrame:
    """Session-level delays: connect → session.created, each update → session.updated, cancels.

    Args:
        events: An event frame.
        connect_ns: Monotonic stamp taken just before connecting; by default the session's own
            ``vlab.connect`` record; without either, the ``connect`` row's ``latency_ms`` is NaN (reason
            "connect time not logged").

    Returns:
        One row per measurement: ``kind``, ``t_ns`` (start), ``latency_ms`` and ``reason``. Kinds:
        ``connect`` (→ session.created), ``update`` (→ session.updated; not the updates that only steer
        vlab's emulator, :func:`vlab.protocol.steers_the_emulator`), ``cancel`` (→ cancelled
        response.done), ``barge_in_stop`` (speech_started during a response → the client's cancel),
        ``barge_in_silence`` (speech_started → the speaker silent, device runs), and
        ``truncation_error``, where ``latency_ms`` is the truncation point sent minus the ms the
        speaker really played of that item (0 is exact).
    """
    ev = in_log_order(events)
    out = [_connect_row(ev, connect_ns)]
    waiting: dict[str, list[float]] = {"update": [], "cancel": []}
    steering: list[bool] = []  # per update waiting for its session.updated: vlab's own (not measured)
    active_speech_at: float | None = None  # speech_started while a response was under way
    last_speech_at: float | None = None
    heard: dict[str, float] = {}
    responding = False
    for r in rows_of(ev, "type", "t_ns", "direction", "item_id", "audio_end_ms", "payload"):
        t, item_id = as_float(r.t_ns), as_str(r.item_id)
        if r.direction == "local":
            if r.type == protocol.PLAYBACK_CLEARED:
                info = payload_of(r.payload)
                if item_id and info.get("heard_ms") is not None:
                    heard[item_id] = float(info["heard_ms"])
                silent = info.get("silent_from_t_ns")
                if last_speech_at is not None and silent is not None:
                    out.append(
                        _row("barge_in_silence", last_speech_at, span_ms(float(silent), last_speech_at))
                    )
            continue
        if r.direction == "client":
            if r.type == protocol.CLIENT_ITEM_TRUNCATE and item_id in heard:
                sent = as_float(r.audio_end_ms)
                if not math.isfinite(sent):
                    sent = float(payload_of(r.payload).get("audio_end_ms", math.nan))
                out.append(_row("truncation_error", t, sent - heard[item_id]))
            if r.type == protocol.CLIENT_SESSION_UPDATE:
                waiting["update"].append(t)
                steering.append(protocol.steers_the_emulator(payload_of(r.payload)))
            elif r.type == protocol.CLIENT_RESPONSE_CANCEL:
                waiting["cancel"].append(t)
                if active_speech_at is not None:
                    out.append(_row("barge_in_stop", active_speech_at, span_ms(t, active_speech_at)))
                    active_speech_at = None
            continue
        if r.type == protocol.SESSION_UPDATED and waiting["update"]:
            start = waiting["update"].pop(0)
            if not steering.pop(0):
                out.append(_row("update", start, span_ms(t, start)))
        elif r.type == protocol.RESPONSE_CREATED:
            responding = True
        elif r.type == protocol.SPEECH_STARTED:
            active_speech_at = t if responding else None
            last_speech_at = t
        elif r.type == protocol.RESPONSE_DONE:
            responding = False
            status = payload_of(r.payload).get("response", {}).get("status")
            if status == "cancelled" and waiting["cancel"]:
                start = waiting["cancel"].pop(0)
                out.append(_row("cancel", start, span_ms(t, start)))
    waiting["update"] = [start for start, own in zip(waiting["update"], steering, strict=True) if not own]
    for kind, starts in waiting.items():
        reason = "no session.updated" if kind == "update" else "no cancelled response.done"
        out.extend(_row(kind, start, math.nan, reason) for start in starts)
    return pd.DataFrame(out, columns=["kind", "t_ns", "latency_ms", "reason"])


def _connect_row(ev: pd.DataFrame, connect_ns: int | None) -> dict[str, Any]:
    """Connect → session.created, from ``connect_ns`` or else the log's ``vlab.connect`` record."""
    created = ev[(ev["direction"] == "server") & (ev["type"] == protocol.SESSION_CREATED)]
    if connect_ns is None:
        logged = ev[ev["type"] == protocol.CONNECT]
        connect_ns = int(logged["t_ns"].iloc[0]) if not logged.empty else None
    if connect_ns is None or created.empty:
        return _row("connect", connect_ns, math.nan, "connect time not logged")
    return _row("connect", connect_ns, span_ms(float(created["t_ns"].iloc[0]), float(connect_ns)))


def _row(kind: str, t_ns: float | None, latency_ms: float, reason: str = "") -> dict[str, Any]:
    """One measurement of :func:`session_latency`."""
    return {"kind": kind, "t_ns": t_ns, "latency_ms": latency_ms, "reason": reason}
