"""Per-turn latency as pure functions of the event log (one row per response).

Every figure is measured on one timeline (the ``timeline`` column):

- ``simulated``: a run on vlab's emulator fed on its input timeline (:mod:`vlab.feed`). Each server
  event carries its time on the emulator's simulated timeline (the log's ``sim_ms``, ms of input audio),
  and input audio at offset ``a`` ms is at time ``a``. Figures do not depend on the replay speed or on
  the machine's load.
- ``client``: anything else (Azure, or an emulator that was not told the input timeline): the client's
  monotonic clock, ``t_ns`` of the log, with input audio placed at the time it was sent.

``*_ns`` columns are in ns on the row's timeline. Definitions (on either timeline):

- ``t_sent(a)``: when the input sample at offset ``a`` ms left the client: the stamp of the
  ``input_audio_buffer.append`` that carried it (see :class:`InputTimeline`); ``a`` itself on the
  simulated timeline.
- ``a_eos``: end of the user's speech on the input-audio clock: the label when given
  (``a_eos_source = "label"``), else ``audio_end_ms − silence_duration_ms`` (``"estimated"``); manual
  turns anchor on the commit (``"commit"``), text turns on the client's ``response.create``.
- ``T_eos = t_sent(a_eos)``.

Contiguous stages (they **sum** to ``voice_to_voice_ms``)::

    T_eos ─ server_hangover_ms ─▶ t_sent(audio_end_ms) ─ uplink_ms ─▶ recv(speech_stopped)
          ─ turn_commit_ms ─▶ recv(response.created) ─ ttfb_audio_ms ─▶ recv(first response.audio.delta)
          ─ playout_ms ─▶ first audible sample

``endpointing_ms = server_hangover_ms + uplink_ms``. ``ttft_ms`` (created → first text delta) runs in
parallel to ``ttfb_audio_ms``. ``playout_ms`` (first audio delta received → first sample played, both on
the client's clock) is 0 in headless runs (``playout_measured`` False).
``voice_to_voice_events_ms`` is the event-only variant: first audio delta − (recv(speech_stopped) −
``silence_duration_ms``), which needs neither labels nor append stamps.

A response received before ``T_eos`` is a **false cut-off** (``false_cutoff`` True): its latencies are
NaN with a reason, never negative. Any missing or out-of-order anchor gives NaN and a ``reason``; the
functions never raise on a strange log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vlab import protocol

__all__ = [
    "LATENCY_STAGES",
    "SEGMENT_STAGES",
    "InputTimeline",
    "bootstrap_ci",
    "on_simulated_timeline",
    "session_latency",
    "stages_in_order",
    "summarize_latency",
    "turn_latency",
]

SEGMENT_STAGES: tuple[str, ...] = (
    "server_hangover_ms",
    "uplink_ms",
    "turn_commit_ms",
    "ttfb_audio_ms",
    "playout_ms",
)
"""The contiguous stages of ``voice_to_voice_ms``, in time order (for waterfalls)."""

LATENCY_STAGES: tuple[str, ...] = (
    "voice_to_voice_ms",
    "voice_to_voice_events_ms",
    "endpointing_ms",
    *SEGMENT_STAGES,
    "ttft_ms",
    "transcription_delay_ms",
    "dead_air_ms",
)
"""Latency columns of :func:`turn_latency` that :func:`summarize_latency` summarizes."""

_TEXT_DELTAS = (protocol.AUDIO_TRANSCRIPT_DELTA, protocol.TEXT_DELTA)
_NS_PER_MS = 1e6
UNDERRUN = "vlab.underrun"
"""Local record: the speaker ran dry while an item was playing (see vlab.audio.devices)."""
PLAYBACK_CLEARED = "vlab.playback_cleared"
"""Local record: barge-in stopped the speaker; ``heard_ms`` and ``silent_from_t_ns`` in its payload."""
CONNECT = "vlab.connect"
"""Local record the session logs, stamped just before it opens the WebSocket."""
PLAYBACK_STARTED = "vlab.playback_started"
"""Local record the session logs when a speaker starts playing an assistant item (see vlab.audio.devices)."""


@dataclass(frozen=True)
class InputTimeline:
    """Where each input-audio offset left the client: built from the logged append rows.

    Args:
        start_ms: ``audio_start_ms`` of each append (input-audio position before the chunk), sorted.
        end_ms: ``audio_end_ms`` of each append.
        t_ns: Send stamp of each append.
    """

    start_ms: np.ndarray
    end_ms: np.ndarray
    t_ns: np.ndarray

    @classmethod
    def from_events(cls, events: pd.DataFrame) -> InputTimeline:
        """The client ``input_audio_buffer.append`` rows of an event frame (rows without offsets are skipped)."""
        rows = events[(events["direction"] == "client") & (events["type"] == protocol.CLIENT_APPEND)]
        rows = rows.dropna(subset=["audio_start_ms", "audio_end_ms"]).sort_values("audio_start_ms")
        return cls(
            rows["audio_start_ms"].to_numpy(float),
            rows["audio_end_ms"].to_numpy(float),
            rows["t_ns"].to_numpy(np.int64),
        )

    @property
    def empty(self) -> bool:
        """No append was logged."""
        return len(self.t_ns) == 0

    @property
    def sent_ms(self) -> float:
        """Input audio sent in total, in ms."""
        return float(self.end_ms[-1]) if len(self.end_ms) else 0.0

    def t_sent(self, a_ms: float, *, interpolate: bool = False) -> float:
        """Client stamp (ns, as float) at which the sample ending at ``a_ms`` was sent; NaN if never sent.

        The sample belongs to the first chunk whose end is at or after ``a_ms``; by default the
        chunk's send stamp is returned (a sample leaves the client with its chunk, so nothing the
        server does can precede it). With ``interpolate`` the time is interpolated between that chunk's
        stamp and the next one's, which at real-time pacing is when a live talker would have said it
        (vlab's pacer sends each chunk when its first sample is due, so the two differ by at most one
        chunk, 20 ms by default).
        """
        if self.empty or not math.isfinite(a_ms) or a_ms < 0 or a_ms > self.end_ms[-1] + 1e-6:
            return math.nan
        k = int(np.searchsorted(self.end_ms, a_ms - 1e-9, side="left"))
        k = min(k, len(self.t_ns) - 1)
        t = float(self.t_ns[k])
        if interpolate and k + 1 < len(self.t_ns):
            span = self.end_ms[k] - self.start_ms[k]
            frac = (a_ms - self.start_ms[k]) / span if span > 0 else 0.0
            t += frac * float(self.t_ns[k + 1] - self.t_ns[k])
        return t

    def position_at(self, t_ns: float) -> float:
        """Input audio (ms) the client had sent by ``t_ns`` (0 before the first append)."""
        if self.empty or not math.isfinite(t_ns):
            return math.nan
        k = int(np.searchsorted(self.t_ns, t_ns, side="right"))
        return float(self.end_ms[k - 1]) if k > 0 else 0.0


def _payload(value: Any) -> dict[str, Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return {}
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def session_vad_settings(events: pd.DataFrame) -> dict[str, Any]:
    """The turn detection in force at the end of the log.

    That is the last ``session.updated`` echo, else the last ``session.update`` sent (``{}`` when
    neither names one or it was off).
    """
    for direction, kind in (("server", protocol.SESSION_UPDATED), ("client", protocol.CLIENT_SESSION_UPDATE)):
        rows = events[(events["direction"] == direction) & (events["type"] == kind)]
        for payload in reversed(rows["payload"].tolist()):
            session = _payload(payload).get("session", {})
            if "turn_detection" in session:
                return session["turn_detection"] or {}
    return {}


def on_simulated_timeline(events: pd.DataFrame) -> bool:
    """Whether a log comes from vlab's emulator fed on its input timeline (see :mod:`vlab.feed`).

    True when the client told the emulator ``vlab.timeline = "input"`` and the server events carry
    their simulated times (``sim_ms``).
    """
    if "sim_ms" not in events.columns:
        return False
    server = events[events["direction"] == "server"]
    if server.empty or server["sim_ms"].isna().any():
        return False
    updates = events[(events["direction"] == "client") & (events["type"] == protocol.CLIENT_SESSION_UPDATE)]
    for payload in updates["payload"].tolist():
        metadata = _payload(payload).get("session", {}).get("metadata") or {}
        if (
            isinstance(metadata, dict)
            and metadata.get(protocol.TIMELINE_METADATA_KEY) == protocol.TIMELINE_INPUT
        ):
            return True
    return False


def _ms(later: float, earlier: float) -> float:
    return (later - earlier) / _NS_PER_MS if math.isfinite(later) and math.isfinite(earlier) else math.nan


def turn_latency(
    events: pd.DataFrame,
    *,
    end_of_turn_ms: Sequence[float] | None = None,
    silence_duration_ms: float | None = None,
    match_tolerance_ms: float = 250.0,
    interpolate: bool = False,
) -> pd.DataFrame:
    """One row per response with every anchor, stage latency, flag and reason.

    Args:
        events: An event frame (:func:`vlab.load_log`, :meth:`vlab.Session.frame`).
        end_of_turn_ms: Labelled end of speech of each user turn on the input-audio clock (e.g.
            :attr:`vlab.prompts.LabelledPrompt.end_of_turn_ms`). A VAD turn takes the first label at or
            after its estimated end of speech minus ``match_tolerance_ms``; a turn with none falls back
            to the estimate.
        silence_duration_ms: For the estimate; default: from the logged session (500 if absent).
        match_tolerance_ms: How far past a label the estimated end of speech may fall and still match it.
        interpolate: Interpolate ``t_sent`` inside chunks (see :meth:`InputTimeline.t_sent`).

    Returns:
        A DataFrame, one row per ``response.created``, with the columns documented in the module
        docstring plus ids, ``status``, ``trigger`` (``vad``, ``commit``, ``client``), ``turn`` (0-based),
        ``first_turn``, ``labelled_turn`` (index into ``end_of_turn_ms`` or -1), usage tokens and
        ``reason`` (``""`` when every value could be computed).
    """
    ev = events.sort_values("seq") if "seq" in events.columns else events
    timeline = InputTimeline.from_events(ev)
    simulated = on_simulated_timeline(ev)
    sim = ev["sim_ms"].to_numpy(float) * _NS_PER_MS if simulated else None
    td = session_vad_settings(ev)
    if silence_duration_ms is None:
        silence_duration_ms = float(td.get("silence_duration_ms", 500)) if td else 500.0
    labels = sorted(float(x) for x in end_of_turn_ms) if end_of_turn_ms is not None else None

    rows: list[dict[str, Any]] = []
    stops: list[dict[str, Any]] = []  # speech_stopped not yet used by a response
    pending_client: dict[str, Any] | None = None  # last commit / response.create / item.create
    by_response: dict[str, dict[str, Any]] = {}
    transcripts: dict[str, float] = {}
    stop_of_item: dict[str, float] = {}
    played: dict[str, float] = {}  # assistant item → when its first sample reached the speaker
    underruns: dict[str, int] = {}  # assistant item → times the speaker ran dry while it played
    row: dict[str, Any] | None  # the turn a server event belongs to

    for i, r in enumerate(ev.itertuples(index=False)):
        kind, t_wall = r.type, _f(r.t_ns)
        t = t_wall
        if (
            sim is not None
        ):  # on the simulated timeline: server events at their time, client ones at their audio
            t = float(sim[i]) if r.direction == "server" else timeline.position_at(t_wall) * _NS_PER_MS
        if r.direction == "client":
            if kind == protocol.CLIENT_COMMIT:
                pending_client = {"trigger": "commit", "t_ns": t, "a_ms": timeline.position_at(t)}
            elif kind == protocol.CLIENT_RESPONSE_CREATE and (
                pending_client is None or pending_client["trigger"] != "commit"
            ):
                pending_client = {"trigger": "client", "t_ns": t, "a_ms": math.nan}
            continue
        item_id = _s(r.item_id)
        if r.direction == "local":
            if kind == PLAYBACK_STARTED and item_id:
                played.setdefault(item_id, t_wall)
            elif kind == UNDERRUN and item_id:
                underruns[item_id] = underruns.get(item_id, 0) + 1
            continue
        if kind == protocol.SPEECH_STOPPED:
            stops.append({"t_ns": t, "audio_end_ms": _f(r.audio_end_ms), "item_id": item_id})
            if item_id:
                stop_of_item[item_id] = t
        elif kind == protocol.SPEECH_STARTED:
            pass
        elif kind == protocol.TRANSCRIPTION_COMPLETED and item_id:
            transcripts.setdefault(item_id, t)
        elif kind == protocol.RESPONSE_CREATED:
            row = {"response_id": _s(r.response_id), "t_created_ns": t}
            if stops:
                stop = stops[-1]
                stops.clear()
                row.update(
                    trigger="vad",
                    item_id=stop["item_id"],
                    t_speech_stopped_ns=stop["t_ns"],
                    audio_end_ms=stop["audio_end_ms"],
                )
                pending_client = None
            elif pending_client is not None:
                row.update(trigger=pending_client["trigger"], t_client_ns=pending_client["t_ns"])
                if pending_client["trigger"] == "commit":
                    row["a_commit_ms"] = pending_client["a_ms"]
                pending_client = None
            else:
                row["trigger"] = "unknown"
            rows.append(row)
            if row["response_id"]:
                by_response[row["response_id"]] = row
        elif kind in _TEXT_DELTAS or kind == protocol.AUDIO_DELTA or kind == protocol.RESPONSE_DONE:
            row = by_response.get(_s(r.response_id) or "", rows[-1] if rows else None)
            if row is None:
                continue
            if kind == protocol.AUDIO_DELTA:
                row.setdefault("t_first_audio_ns", t)
                row.setdefault("t_first_audio_wall_ns", t_wall)
                row.setdefault("audio_item_id", item_id)
                row["t_last_audio_ns"] = t
                row["reply_audio_ms"] = row.get("reply_audio_ms", 0.0) + (_f(r.audio_ms) or 0.0)
            elif kind == protocol.RESPONSE_DONE:
                row.setdefault("t_done_ns", t)
                resp = _payload(r.payload).get("response", {})
                row["status"] = resp.get("status")
                usage = resp.get("usage") or {}
                for key in ("total_tokens", "input_tokens", "output_tokens"):
                    row[key] = usage.get(key, math.nan)
            else:
                row.setdefault("t_first_text_ns", t)

    out = [
        _compute(
            i,
            row,
            timeline,
            labels,
            float(silence_duration_ms),
            match_tolerance_ms,
            interpolate,
            transcripts,
            played,
            underruns,
            simulated,
        )
        for i, row in enumerate(rows)
    ]
    frame = pd.DataFrame(out, columns=_COLUMNS)
    return frame


_COLUMNS = [
    "turn",
    "timeline",
    "first_turn",
    "response_id",
    "item_id",
    "trigger",
    "status",
    "labelled_turn",
    "a_eos_ms",
    "a_eos_source",
    "audio_end_ms",
    "t_eos_ns",
    "t_speech_stopped_ns",
    "t_created_ns",
    "t_first_text_ns",
    "t_first_audio_ns",
    "t_first_audible_ns",
    "t_done_ns",
    "false_cutoff",
    "voice_to_voice_ms",
    "voice_to_voice_events_ms",
    "endpointing_ms",
    "server_hangover_ms",
    "server_hangover_audio_ms",
    "uplink_ms",
    "turn_commit_ms",
    "ttft_ms",
    "ttfb_audio_ms",
    "playout_ms",
    "playout_measured",
    "transcription_delay_ms",
    "dead_air_ms",
    "reply_audio_ms",
    "reply_item_id",
    "output_rtf",
    "underruns",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "reason",
]


def _f(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _s(value: Any) -> str | None:
    return (
        None
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
        else str(value)
    )


def _compute(
    index: int,
    row: dict[str, Any],
    timeline: InputTimeline,
    labels: list[float] | None,
    silence_ms: float,
    tolerance_ms: float,
    interpolate: bool,
    transcripts: dict[str, float],
    played: dict[str, float],
    underruns: dict[str, int],
    simulated: bool,
) -> dict[str, Any]:
    reasons: list[str] = []

    def t_sent(a_ms: float) -> float:
        if simulated:
            return a_ms * _NS_PER_MS if math.isfinite(a_ms) and 0 <= a_ms <= timeline.sent_ms + 1e-6 else nan
        return timeline.t_sent(a_ms, interpolate=interpolate)

    nan = math.nan
    t_created = row["t_created_ns"]
    t_stop = row.get("t_speech_stopped_ns", nan)
    t_audio = row.get("t_first_audio_ns", nan)
    t_text = row.get("t_first_text_ns", nan)
    audio_end = row.get("audio_end_ms", nan)
    trigger = row["trigger"]
    labelled = -1
    a_eos, source = nan, ""
    if trigger == "vad":
        estimate = audio_end - silence_ms
        if labels:
            match = [i for i, x in enumerate(labels) if x >= estimate - tolerance_ms]
            if match:
                labelled = match[0]
                a_eos, source = labels[labelled], "label"
        if source == "":
            a_eos, source = estimate, "estimated"
            if labels is not None:
                reasons.append("no label at or after the estimated end of speech")
        t_eos = t_sent(a_eos)
        if math.isnan(t_eos):
            reasons.append("end of speech not found among the logged appends")
    elif trigger == "commit":
        a_eos, source = row.get("a_commit_ms", nan), "commit"
        t_eos = row.get("t_client_ns", nan)
    elif trigger == "client":
        source = "response.create"
        t_eos = row.get("t_client_ns", nan)
    else:
        t_eos = nan
        reasons.append("no speech_stopped, commit or response.create before the response")

    false_cutoff = bool(math.isfinite(t_eos) and t_created < t_eos)
    if false_cutoff:
        reasons.append("false cut-off: the response started before the end of speech")

    def stage(name: str, later: float, earlier: float, later_name: str, earlier_name: str) -> float:
        if math.isnan(later) or math.isnan(earlier):
            missing = later_name if math.isnan(later) else earlier_name
            reasons.append(f"{name}: no {missing}")
            return nan
        value = (later - earlier) / _NS_PER_MS
        if value < 0:
            reasons.append(f"{name}: {later_name} before {earlier_name}")
            return nan
        return value

    if trigger == "vad":
        t_stop_sent = t_sent(audio_end)
        hangover = stage("server_hangover_ms", t_stop_sent, t_eos, "audio_end_ms", "end of speech")
        uplink = stage("uplink_ms", t_stop, t_stop_sent, "speech_stopped", "audio_end_ms sent")
        endpointing = hangover + uplink if not (math.isnan(hangover) or math.isnan(uplink)) else nan
        commit = stage("turn_commit_ms", t_created, t_stop, "response.created", "speech_stopped")
        hangover_audio = audio_end - a_eos if math.isfinite(audio_end - a_eos) else nan
    else:
        hangover = uplink = hangover_audio = nan
        endpointing = 0.0 if math.isfinite(t_eos) else nan
        commit = stage("turn_commit_ms", t_created, t_eos, "response.created", source or "anchor")
    ttfb = stage("ttfb_audio_ms", t_audio, t_created, "first audio delta", "response.created")
    ttft = stage("ttft_ms", t_text, t_created, "first text delta", "response.created")
    t_played = played.get(row.get("audio_item_id") or "", nan)
    t_audio_wall = row.get("t_first_audio_wall_ns", nan)
    playout_measured = math.isfinite(t_played) and math.isfinite(t_audio_wall)
    if playout_measured:
        playout = stage("playout_ms", t_played, t_audio_wall, "playback_started", "first audio delta")
    else:
        playout = 0.0 if math.isfinite(t_audio) else nan  # headless: nothing plays; flagged below
    t_audible = t_audio + playout * _NS_PER_MS if math.isfinite(t_audio) else nan
    if false_cutoff:
        v2v = hangover = endpointing = nan
    else:
        parts = [endpointing, commit, ttfb, playout]
        v2v = float(sum(parts)) if all(math.isfinite(p) for p in parts) else nan
    v2v_events = (
        _ms(t_audio, t_stop - silence_ms * _NS_PER_MS) if trigger == "vad" and math.isfinite(t_stop) else nan
    )
    item = row.get("item_id")
    t_transcript = transcripts.get(item or "", nan)
    transcription = _ms(t_transcript, t_stop) if math.isfinite(t_transcript) else nan
    dead_air = nan
    if not false_cutoff and trigger == "vad":
        response_part = _ms(t_audio, t_stop)
        if math.isfinite(hangover_audio) and math.isfinite(response_part) and response_part >= 0:
            dead_air = hangover_audio + response_part
    elif not false_cutoff:
        dead_air = v2v
    return {
        "turn": index,
        "timeline": "simulated" if simulated else "client",
        "first_turn": index == 0,
        "response_id": row.get("response_id"),
        "item_id": item,
        "trigger": trigger,
        "status": row.get("status"),
        "labelled_turn": labelled,
        "a_eos_ms": a_eos,
        "a_eos_source": source,
        "audio_end_ms": audio_end,
        "t_eos_ns": t_eos,
        "t_speech_stopped_ns": t_stop,
        "t_created_ns": t_created,
        "t_first_text_ns": t_text,
        "t_first_audio_ns": t_audio,
        "t_first_audible_ns": t_audible,
        "t_done_ns": row.get("t_done_ns", nan),
        "false_cutoff": false_cutoff,
        "voice_to_voice_ms": v2v,
        "voice_to_voice_events_ms": v2v_events,
        "endpointing_ms": endpointing,
        "server_hangover_ms": hangover,
        "server_hangover_audio_ms": hangover_audio,
        "uplink_ms": uplink,
        "turn_commit_ms": commit,
        "ttft_ms": ttft,
        "ttfb_audio_ms": ttfb,
        "playout_ms": playout,
        "playout_measured": playout_measured,
        "transcription_delay_ms": transcription,
        "dead_air_ms": dead_air,
        "reply_audio_ms": row.get("reply_audio_ms", 0.0),
        "reply_item_id": row.get("audio_item_id"),
        "output_rtf": _output_rtf(row),
        "underruns": underruns.get(row.get("audio_item_id") or "", 0),
        "total_tokens": row.get("total_tokens", nan),
        "input_tokens": row.get("input_tokens", nan),
        "output_tokens": row.get("output_tokens", nan),
        "reason": "; ".join(reasons),
    }


def leading_silence_ms(
    pcm16: bytes, sample_rate: int, *, threshold_dbfs: float = -45.0, frame_ms: float = 10.0
) -> float:
    """Silence at the start of a reply's audio: ms before the first frame louder than ``threshold_dbfs``.

    The first audio delta can arrive (and play) well before the first audible word; this is the part of
    the listener's wait that the event times alone do not show. NaN for audio with no loud frame.
    """
    import numpy as np

    x = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    n = max(1, int(sample_rate * frame_ms / 1000))
    frames = x[: len(x) // n * n].reshape(-1, n)
    if not len(frames):
        return math.nan
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    loud = np.flatnonzero(rms > 10 ** (threshold_dbfs / 20))
    return float(loud[0] * frame_ms) if loud.size else math.nan


def _output_rtf(row: dict[str, Any]) -> float:
    """Reply audio received ÷ wall time from its first to its last delta (> 1: faster than real time)."""
    first, last = row.get("t_first_audio_ns", math.nan), row.get("t_last_audio_ns", math.nan)
    span_ms = (last - first) / _NS_PER_MS if math.isfinite(first) and math.isfinite(last) else math.nan
    audio_ms = row.get("reply_audio_ms", 0.0)
    return audio_ms / span_ms if math.isfinite(span_ms) and span_ms > 0 else math.nan


def stages_in_order(turn: pd.Series | dict[str, Any]) -> list[tuple[str, float, float]]:
    """The contiguous stages of one turn as ``(name, start_ms, duration_ms)`` from ``T_eos``, for waterfalls.

    Stages that are NaN are left out (and later ones keep their true start).
    """
    out: list[tuple[str, float, float]] = []
    start = 0.0
    for name in SEGMENT_STAGES:
        value = float(turn.get(name, math.nan))
        if math.isfinite(value):
            out.append((name, start, value))
            start += value
    return out


def session_latency(events: pd.DataFrame, *, connect_ns: int | None = None) -> pd.DataFrame:
    """Session-level delays: connect → session.created, each update → session.updated, cancels.

    Args:
        events: An event frame.
        connect_ns: Monotonic stamp taken just before connecting; by default the session's own
            ``vlab.connect`` record; without either ``connect_ms`` is NaN.

    Returns:
        One row per measurement: ``kind``, ``t_ns`` (start), ``latency_ms`` and ``reason``. Kinds:
        ``connect`` (→ session.created), ``update`` (→ session.updated), ``cancel`` (→ cancelled
        response.done), ``barge_in_stop`` (speech_started during a response → the client's cancel),
        ``barge_in_silence`` (speech_started → the speaker silent, device runs), and
        ``truncation_error``, where ``latency_ms`` is the truncation point sent minus the ms the
        speaker really played of that item (0 is exact).
    """
    ev = events.sort_values("seq") if "seq" in events.columns else events
    out: list[dict[str, Any]] = []
    created = ev[(ev["direction"] == "server") & (ev["type"] == protocol.SESSION_CREATED)]
    if connect_ns is None:
        logged = ev[ev["type"] == CONNECT]
        connect_ns = int(logged["t_ns"].iloc[0]) if not logged.empty else None
    if connect_ns is None or created.empty:
        out.append(
            {
                "kind": "connect",
                "t_ns": connect_ns,
                "latency_ms": math.nan,
                "reason": "connect time not logged",
            }
        )
    else:
        out.append(
            {
                "kind": "connect",
                "t_ns": connect_ns,
                "latency_ms": _ms(float(created["t_ns"].iloc[0]), float(connect_ns)),
                "reason": "",
            }
        )
    waiting: dict[str, list[float]] = {"update": [], "cancel": []}
    active_speech_at: float | None = None
    last_speech_at: float | None = None
    heard: dict[str, float] = {}
    responding = False
    for r in ev.itertuples(index=False):
        t, item_id = _f(r.t_ns), _s(r.item_id)
        if r.direction == "local":
            if r.type == PLAYBACK_CLEARED:
                info = _payload(r.payload)
                if item_id and info.get("heard_ms") is not None:
                    heard[item_id] = float(info["heard_ms"])
                silent = info.get("silent_from_t_ns")
                if last_speech_at is not None and silent is not None:
                    out.append(
                        {
                            "kind": "barge_in_silence",
                            "t_ns": last_speech_at,
                            "latency_ms": _ms(float(silent), last_speech_at),
                            "reason": "",
                        }
                    )
            continue
        if r.direction == "client":
            if r.type == protocol.CLIENT_ITEM_TRUNCATE and item_id in heard:
                sent = _f(r.audio_end_ms)
                if not math.isfinite(sent):
                    sent = float(_payload(r.payload).get("audio_end_ms", math.nan))
                out.append(
                    {
                        "kind": "truncation_error",
                        "t_ns": t,
                        "latency_ms": sent - heard[item_id],
                        "reason": "",
                    }
                )
            if r.type == protocol.CLIENT_SESSION_UPDATE:
                waiting["update"].append(t)
            elif r.type == protocol.CLIENT_RESPONSE_CANCEL:
                waiting["cancel"].append(t)
                if active_speech_at is not None:
                    out.append(
                        {
                            "kind": "barge_in_stop",
                            "t_ns": active_speech_at,
                            "latency_ms": _ms(t, active_speech_at),
                            "reason": "",
                        }
                    )
                    active_speech_at = None
            continue
        if r.type == protocol.SESSION_UPDATED and waiting["update"]:
            start = waiting["update"].pop(0)
            out.append({"kind": "update", "t_ns": start, "latency_ms": _ms(t, start), "reason": ""})
        elif r.type == protocol.RESPONSE_CREATED:
            responding = True
        elif r.type == protocol.SPEECH_STARTED:
            active_speech_at = t if responding else None
            last_speech_at = t
        elif r.type == protocol.RESPONSE_DONE:
            responding = False
            status = _payload(r.payload).get("response", {}).get("status")
            if status == "cancelled" and waiting["cancel"]:
                start = waiting["cancel"].pop(0)
                out.append({"kind": "cancel", "t_ns": start, "latency_ms": _ms(t, start), "reason": ""})
    for kind, starts in waiting.items():
        for start in starts:
            reason = "no session.updated" if kind == "update" else "no cancelled response.done"
            out.append({"kind": kind, "t_ns": start, "latency_ms": math.nan, "reason": reason})
    return pd.DataFrame(out, columns=["kind", "t_ns", "latency_ms", "reason"])


def bootstrap_ci(
    values: Iterable[float], q: float, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Quantile ``q`` (0-1) of the finite values with a percentile-bootstrap interval.

    Returns:
        ``(estimate, low, high)``; all NaN with no data, the interval NaN with one value.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    est = float(np.quantile(x, q))
    if x.size == 1:
        return (est, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    samples = rng.choice(x, size=(n_boot, x.size), replace=True)
    boots = np.quantile(samples, q, axis=1)
    alpha = (1 - confidence) / 2
    return (est, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha)))


def summarize_latency(
    turns: pd.DataFrame,
    *,
    by: Sequence[str] = (),
    metrics: Sequence[str] = LATENCY_STAGES,
    first_turn_separately: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """n, p50/p90/p95 with bootstrap 95 % intervals, per group and metric.

    Args:
        turns: Rows from :func:`turn_latency` (several runs concatenated, with grouping columns).
        by: Grouping columns (e.g. ``["setting"]``).
        metrics: Latency columns to summarize (those absent are skipped).
        first_turn_separately: Add a ``turns`` grouping level, ``first`` or ``rest``.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        One row per group and metric: the group keys, ``metric``, ``n``, ``p50``, ``p50_lo``,
        ``p50_hi``, and the same for ``p90`` and ``p95``.
    """
    data = turns.copy()
    keys = list(by)
    if first_turn_separately and "first_turn" in data.columns:
        data["turns"] = np.where(data["first_turn"].astype(bool), "first", "rest")
        keys.append("turns")
    rows: list[dict[str, Any]] = []
    groups = data.groupby(keys, dropna=False, sort=True) if keys else [((), data)]
    for key, group in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            if metric not in group.columns:
                continue
            values = group[metric].astype(float).to_numpy()
            finite = values[np.isfinite(values)]
            row: dict[str, Any] = dict(zip(keys, key_t, strict=False))
            row.update(metric=metric, n=int(finite.size))
            for q in (0.5, 0.9, 0.95):
                est, lo, hi = bootstrap_ci(finite, q, n_boot=n_boot, seed=seed)
                name = f"p{int(q * 100)}"
                row.update({name: est, f"{name}_lo": lo, f"{name}_hi": hi})
            rows.append(row)
    columns = [*keys, "metric", "n"] + [f"p{p}{s}" for p in (50, 90, 95) for s in ("", "_lo", "_hi")]
    return pd.DataFrame(rows, columns=columns)
