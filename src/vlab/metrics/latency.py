"""Per-turn latency as pure functions of the event log (one row per response).

Every figure is measured on one timeline (the ``timeline`` column):

- ``simulated``: a run on vlab's emulator fed on its input timeline (:mod:`vlab.feed`). Each server
  event carries its time on the emulator's simulated timeline (the log's ``sim_ms``, ms of input audio),
  and input audio at offset ``a`` ms is at time ``a``; a client event is where its audio had reached,
  or where the emulator held time for it (``docs/timeline.md``), and never before the last server event
  it had received. Figures do not depend on the replay speed or on the machine's load.
- ``client``: anything else (Azure, or an emulator that was not told the input timeline): the client's
  monotonic clock, ``t_ns`` of the log, with input audio placed at the time it was sent.

``*_ns`` columns are in ns on the row's timeline. Definitions (on either timeline):

- ``t_sent(a)``: when the input sample at offset ``a`` ms left the client: the stamp of the
  ``input_audio_buffer.append`` that carried it (see :class:`InputTimeline`); ``a`` itself on the
  simulated timeline.
- ``a_eos``: end of the user's speech on the input-audio clock: the label when given
  (``a_eos_source = "label"``), else, when the turn detection may hold a turn for more speech, where the
  speech the client sent ended (``"audio"``, from ``speech_ends_ms``), else ``audio_end_ms −
  silence_duration_ms`` (``"estimated"``); manual
  turns anchor on the commit (``"commit"``), text turns on the client's ``response.create``, and the
  response the service starts for an approved MCP call on the client's ``mcp_approval_response``
  (trigger ``client`` too).
- ``T_eos = t_sent(a_eos)``; on the client timeline, when the microphone logged capture anchors
  (``vlab.capture``, a live microphone: the kernel's or the browser's), the time ``a_eos`` was captured
  instead (``t_eos_source = "capture"``, else ``"sent"``), so the stages start from the audio the user
  produced and ``server_hangover_ms`` includes the capture → send delay.

Contiguous stages (they **sum** to ``voice_to_voice_ms``)::

    T_eos ─ server_hangover_ms ─▶ t_sent(audio_end_ms) ─ uplink_ms ─▶ recv(speech_stopped)
          ─ turn_commit_ms ─▶ recv(response.created) ─ ttfb_audio_ms ─▶ recv(first response.audio.delta)
          ─ playout_ms ─▶ first audible sample

``endpointing_ms = server_hangover_ms + uplink_ms``. ``server_hangover_audio_ms`` is the hangover on the
input-audio clock alone, ``audio_end_ms − a_eos``: where the server's VAD ended the turn after the end of
speech; it is negative when the VAD ended it early, as in most false cut-offs (how early), where
``server_hangover_ms`` is NaN. ``ttft_ms`` (created → first text delta) runs in
parallel to ``ttfb_audio_ms``. ``playout_ms`` (first audio delta received → first sample played, both on
the client's clock) is 0 in headless runs (``playout_measured`` False); ``t_first_audible_ns`` is the
first audible sample (``t_first_audio_ns`` + ``playout_ms``). ``transcription_delay_ms`` runs from
``speech_stopped`` to the user's transcript (``conversation.item.input_audio_transcription.completed``).
``voice_to_voice_events_ms`` is the event-only variant: first audio delta − (recv(speech_stopped) −
``silence_duration_ms``), which needs neither labels nor append stamps.
``dead_air_ms`` is the silence the user waits through: for a VAD turn, the end-of-turn wait on the audio
clock (``server_hangover_audio_ms``) plus ``speech_stopped`` → the first audio delta (so on the client
timeline it does not depend on how fast the audio was sent, unlike ``voice_to_voice_ms``); for any other
turn, ``voice_to_voice_ms``.

**A turn answered through tools.** A response that calls tools (``tool_calls``: its function and MCP
call items) often speaks nothing itself: the client runs the calls and asks for another response, which
speaks the answer. ``voice_to_answer_ms`` is the figure the user waits through: ``T_eos`` of the turn →
the first audible sample of the response that speaks its answer (``answer_response_id``), the first of
the client-started responses that follow it to have audio (a chain of calls is followed through).
Those responses have ``answers_turn`` set to the turn's ``turn`` (else -1) and no ``voice_to_answer_ms``
of their own. ``calls_to_answer`` counts the turn's calls through the chain (0 on the responses that
answer it; the response the service starts for an approved MCP call repeats the call its approval
request made, and is not counted again). For a turn that speaks, ``voice_to_answer_ms`` is
``voice_to_voice_ms``. The ``dead_air_ms`` of a turn answered through tools runs to the answer's first
audio too, so sweep scores and Pareto fronts count the user's whole wait.

A response received before ``T_eos`` is a **false cut-off** (``false_cutoff`` True): the latencies that
would run from the end of speech (``voice_to_voice_ms``, ``server_hangover_ms``, ``endpointing_ms``) are
NaN with a reason, never negative; the server's own stages after its ``speech_stopped``
(``turn_commit_ms``, ``ttft_ms``, ``ttfb_audio_ms``, ``voice_to_voice_events_ms``) are measured as for
any response. Summaries of the user's waits leave such turns out (:func:`waited_turns`).
Any missing or out-of-order anchor gives NaN and a ``reason``; the functions never raise on a strange
log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vlab import protocol, protocol_limits
from vlab.errors import check_number, check_numbers
from vlab.metrics.events import (
    _NS_PER_MS,
    _TEXT_DELTAS,
    TURNS_FRAME,
    UNLOGGED_VAD,
    InputTimeline,
    as_float,
    as_str,
    in_log_order,
    on_simulated_timeline,
    payload_of,
    require_columns,
    rows_of,
    session_vad_settings,
    span_ms,
)
from vlab.metrics.tool_calls import _CALL_ITEMS
from vlab.prompts import NOISE_ONLY

USAGE_COLUMNS: tuple[str, ...] = ("total_tokens", "input_tokens", "output_tokens")
"""The token counts of each response's ``usage`` (``response.done``) that :func:`turn_latency` keeps."""

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

TURN_STARTS: dict[str, str] = {"vad": "voice", "commit": "commit", "client": "response.create"}
"""What a turn's wait is measured from, by :func:`turn_latency`'s ``trigger``, in words: the end of the
user's speech, or what the client sent (a commit, or the ``response.create`` of a typed message or of a
tool's answer). A figure's label reads ``f"{TURN_STARTS[trigger]}-to-voice"``."""
FALSE_CUTOFF = "false cut-off: the reply started before the end of speech"
"""What a turn whose ``false_cutoff`` is true is said to be, wherever vlab says it (its reason, ``vlab
replay``, the session panel's line, the log explorer): it has no voice-to-voice."""
SPOKEN_TRIGGERS = ("vad", "commit")
"""The ``trigger`` of a turn the user spoke: ended by the server VAD, or committed (push-to-talk); not a
``response.create`` the client sent on its own."""


def spoken_turns(turns: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`turn_latency`'s table that are turns the user spoke (:data:`SPOKEN_TRIGGERS`).

    Not the responses the client asked for on its own, such as the one that speaks a tool's answer: their
    latencies run from the client's request, not from the user's speech. Nor, in a sweep's turns (with a
    ``category`` column), the replies to a prompt of noise alone: no one spoke, and a sweep counts them as
    false starts.
    """
    if isinstance(turns, pd.DataFrame) and not len(turns):
        return turns
    require_columns(turns, ["trigger"], TURNS_FRAME)
    spoken = turns["trigger"].isin(SPOKEN_TRIGGERS)
    if "category" in turns:
        spoken &= turns["category"] != NOISE_ONLY
    return turns[spoken]


def waited_turns(turns: pd.DataFrame) -> pd.DataFrame:
    """The turns the user spoke and then waited through: :func:`spoken_turns` that were not cut off.

    What a latency summary describes. A false cut-off's reply started inside the turn: its server stages
    are measured, but no one waited for them, and with them each stage's figure would count other turns
    than ``voice_to_voice_ms``'s.
    """
    spoken = spoken_turns(turns)
    if not len(spoken) or "false_cutoff" not in spoken:
        return spoken
    return spoken[~spoken["false_cutoff"].astype(bool)]


def cancelled_before_audio(status: Any, t_first_audio_ns: Any, false_cutoff: Any) -> bool:
    """Whether a turn of :func:`turn_latency`'s table (given these columns) was cancelled before its audio.

    A false cut-off is not counted. Such a turn's reply was never heard (the user spoke on, say), so it has
    no wait to time.
    """
    unheard = math.isnan(as_float(t_first_audio_ns))
    return status == "cancelled" and unheard and not bool(false_cutoff)


def made_tool_calls(turns: pd.DataFrame) -> bool:
    """Whether any turn of :func:`turn_latency`'s table called a tool (a sweep with ``[tools]`` or ``[mcp]``).

    Reports then show ``voice_to_answer_ms``, the user's wait through the calls.
    """
    return bool(len(turns)) and "tool_calls" in turns and bool(turns["tool_calls"].gt(0).any())


_ANCHOR_COLUMNS = (
    "type",
    "t_ns",
    "direction",
    "item_id",
    "response_id",
    "audio_end_ms",
    "audio_ms",
    "payload",
)
"""The log's columns :class:`_Anchors` reads."""


@dataclass(slots=True)
class _Anchors:
    """Each response's raw anchors, collected in one pass over the log in order (:func:`turn_latency`).

    A client event's time on the simulated timeline is its audio position, or an unanswered function
    call's end, as the emulator places it (docs/timeline.md), and never before what the server had done
    when it arrived; the state here is what that needs.
    """

    timeline: InputTimeline
    sim: np.ndarray | None
    """Each event's simulated time in ns (the simulated timeline), or None (the client's clock)."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One per ``response.created``, in order: its anchors."""
    transcripts: dict[str, float] = field(default_factory=dict)
    """User item → when its transcript completed."""
    played: dict[str, float] = field(default_factory=dict)
    """Assistant item → when its first sample reached the speaker."""
    underruns: dict[str, int] = field(default_factory=dict)
    """Assistant item → times the speaker ran dry while it played."""
    _stops: list[dict[str, Any]] = field(default_factory=list)  # speech_stopped not yet used by a response
    _pending_client: dict[str, Any] | None = None  # last commit / response.create / item.create
    _held_ns: float = math.inf  # simulated: a tool call's end, which holds time until the client answers
    _floor_ns: float = -math.inf  # simulated: a function's simulated run end; no client event before it
    _seen_ns: float = -math.inf  # simulated: the latest server event received; the server ran up to it
    _input_mode: bool = False  # the client put the emulator's timeline in "input" mode (calls hold time)
    _approvals: set[str] = field(default_factory=set)  # MCP approval requests the client has not answered
    _mcp_calls: set[str] = field(default_factory=set)  # MCP calls of a completed response not returned
    _by_response: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, i: int, r: Any) -> None:
        """Take the log's ``i``-th event ``r`` (a row of :data:`_ANCHOR_COLUMNS`)."""
        t_wall = as_float(r.t_ns)
        t = self._time(i, r, t_wall)
        if r.direction == "client":
            self._client(r, t, t_wall)
        elif r.direction == "local":
            self._local(r, t_wall)
        else:
            self._server(r, t, t_wall)

    def _time(self, i: int, r: Any, t_wall: float) -> float:
        """The event's time: its wall stamp, or its time on the simulated timeline."""
        if self.sim is None:
            return t_wall
        if r.direction == "server":
            self._seen_ns = max(self._seen_ns, float(self.sim[i]))
            return float(self.sim[i])
        t = max(
            min(self.timeline.position_at(t_wall) * _NS_PER_MS, self._held_ns), self._floor_ns, self._seen_ns
        )
        run_ms = (
            protocol.function_run_ms(payload_of(r.payload)) if r.type == protocol.CLIENT_ITEM_CREATE else None
        )
        if run_ms is not None and self._input_mode and math.isfinite(self._held_ns):
            t = self._held_ns + run_ms * _NS_PER_MS  # the output, that long after the call
            self._floor_ns = max(self._floor_ns, t)
        return t

    def _client(self, r: Any, t: float, t_wall: float) -> None:
        kind = r.type
        if (
            kind == protocol.CLIENT_SESSION_UPDATE
            and (mode := protocol.timeline_mode(payload_of(r.payload))) is not None
        ):
            self._input_mode = mode == protocol.TIMELINE_INPUT
        if kind == protocol.CLIENT_RESPONSE_CREATE or not self._input_mode:
            self._held_ns = math.inf
        if kind == protocol.CLIENT_ITEM_CREATE:
            item = payload_of(r.payload).get("item") or {}
            if item.get("type") == protocol.MCP_APPROVAL_RESPONSE_ITEM:
                self._approvals.discard(str(item.get("approval_request_id")))
                if item.get("approve") is True:  # the service starts the approved call's response
                    self._pending_client = {
                        "trigger": "client",
                        "t_ns": t,
                        "source": protocol.MCP_APPROVAL_RESPONSE_ITEM,
                    }
                    if not self._approvals:
                        self._held_ns = math.inf
        if kind == protocol.CLIENT_COMMIT:
            self._pending_client = {"trigger": "commit", "t_ns": t, "a_ms": self.timeline.position_at(t_wall)}
        elif kind == protocol.CLIENT_RESPONSE_CREATE and (
            self._pending_client is None or self._pending_client["trigger"] != "commit"
        ):
            self._pending_client = {"trigger": "client", "t_ns": t, "a_ms": math.nan}

    def _local(self, r: Any, t_wall: float) -> None:
        item_id = as_str(r.item_id)
        if r.type == protocol.PLAYBACK_STARTED and item_id:
            self.played.setdefault(item_id, t_wall)
        elif r.type == protocol.UNDERRUN and item_id:
            self.underruns[item_id] = self.underruns.get(item_id, 0) + 1

    def _server(self, r: Any, t: float, t_wall: float) -> None:
        kind, item_id = r.type, as_str(r.item_id)
        if kind == protocol.SPEECH_STOPPED:
            self._stops.append({"t_ns": t, "audio_end_ms": as_float(r.audio_end_ms), "item_id": item_id})
        elif kind == protocol.TRANSCRIPTION_COMPLETED and item_id:
            self.transcripts.setdefault(item_id, t)
        elif kind in (protocol.MCP_CALL_COMPLETED, protocol.MCP_CALL_FAILED) and item_id in self._mcp_calls:
            self._mcp_calls.discard(item_id)
            if (
                not self._mcp_calls and self._input_mode and self.sim is not None
            ):  # the client asks for the answer
                self._held_ns = t
        elif kind == protocol.RESPONSE_CREATED:
            self._created(as_str(r.response_id), t)
        elif kind in _TEXT_DELTAS or kind == protocol.AUDIO_DELTA or kind == protocol.RESPONSE_DONE:
            row = self._by_response.get(as_str(r.response_id) or "", self.rows[-1] if self.rows else None)
            if row is None:
                return
            if kind == protocol.AUDIO_DELTA:
                row.setdefault("t_first_audio_ns", t)
                row.setdefault("t_first_audio_wall_ns", t_wall)
                row.setdefault("audio_item_id", item_id)
                row["t_last_audio_ns"] = t
                row["reply_audio_ms"] = row.get("reply_audio_ms", 0.0) + (as_float(r.audio_ms) or 0.0)
            elif kind == protocol.RESPONSE_DONE:
                self._done(row, payload_of(r.payload).get("response", {}), t)
            else:
                row.setdefault("t_first_text_ns", t)

    def _created(self, response_id: str | None, t: float) -> None:
        """A response started: what started it (the last VAD stop, a client event, or unknown)."""
        row: dict[str, Any] = {"response_id": response_id, "t_created_ns": t}
        pending = self._pending_client
        if self._stops:
            stop = self._stops[-1]
            self._stops.clear()
            row.update(
                trigger="vad",
                item_id=stop["item_id"],
                t_speech_stopped_ns=stop["t_ns"],
                audio_end_ms=stop["audio_end_ms"],
            )
            self._pending_client = None
        elif pending is not None:
            row.update(trigger=pending["trigger"], t_client_ns=pending["t_ns"])
            row["client_source"] = pending.get("source", protocol.CLIENT_RESPONSE_CREATE)
            if pending["trigger"] == "commit":
                row["a_commit_ms"] = pending["a_ms"]
            self._pending_client = None
        else:
            row["trigger"] = "unknown"
        self.rows.append(row)
        if response_id:
            self._by_response[response_id] = row

    def _done(self, row: dict[str, Any], resp: dict[str, Any], t: float) -> None:
        """``response.done``: its status, usage and tool calls, and the calls that hold time for the client."""
        row.setdefault("t_done_ns", t)
        row["status"] = resp.get("status")
        usage = resp.get("usage") or {}
        for key in USAGE_COLUMNS:
            row[key] = usage.get(key, math.nan)
        output = [item for item in resp.get("output") or [] if isinstance(item, dict)]
        row["tool_calls"] = sum(item.get("type") in _CALL_ITEMS for item in output)
        types = {str(item.get("id")): item.get("type") for item in output}
        self._approvals.update(i for i, typ in types.items() if typ == protocol.MCP_APPROVAL_REQUEST_ITEM)
        if resp.get("status") == "completed":  # the service calls the MCP servers after it
            self._mcp_calls = {i for i, typ in types.items() if typ == protocol.MCP_CALL_ITEM}
        if self._input_mode and self.sim is not None and resp.get("status") != "cancelled":
            if protocol.CLIENT_ANSWERED_ITEMS & set(types.values()):
                self._held_ns = t


def turn_latency(
    events: pd.DataFrame,
    *,
    end_of_turn_ms: Sequence[float] | None = None,
    silence_duration_ms: float | None = None,
    match_tolerance_ms: float = 250.0,
    interpolate: bool = False,
    speech_ends_ms: Sequence[float] | None = None,
) -> pd.DataFrame:
    """One row per response with every anchor, stage latency, flag and reason.

    Args:
        events: An event frame (:func:`vlab.load_log`, :meth:`vlab.Session.frame`).
        end_of_turn_ms: Labelled end of speech of each user turn on the input-audio clock (e.g.
            :attr:`vlab.prompts.LabelledPrompt.end_of_turn_ms`). A VAD turn takes the last label at or
            before its estimated end of speech and no more than ``match_tolerance_ms`` before it (plus the
            session's end-of-utterance ``timeout_ms``, when its turn detection has one: a turn held for
            more speech ends that much later), else the first label after it (the VAD ended the turn
            early); a turn with neither falls back to the estimate.
        silence_duration_ms: For the estimate; default: from the logged session (500 if absent).
        match_tolerance_ms: How far past a label the estimated end of speech may fall and still match it
            (besides an end-of-utterance wait).
        interpolate: Interpolate ``t_sent`` inside chunks (see :meth:`InputTimeline.t_sent`).
        speech_ends_ms: Where stretches of speech end in the audio the client sent, on the input-audio
            clock (:func:`vlab.corpus.labeller.propose` on the run's ``input.wav``). Used only without a
            label and when the session's turn detection may hold a turn for more speech (an
            end-of-utterance ``timeout_ms``): a VAD turn then takes the last one from that wait (plus
            ``match_tolerance_ms``) before its estimate to ``match_tolerance_ms`` after it
            (``a_eos_source = "audio"``), since the estimate leaves the wait out.

    Returns:
        A DataFrame, one row per ``response.created``, with the columns documented in the module
        docstring plus ``response_id``, ``item_id`` (the user's item the response answers), ``status``,
        ``trigger`` (``vad``, ``commit``, ``client``), ``turn`` (0-based), ``first_turn``,
        ``labelled_turn`` (index into ``end_of_turn_ms`` or -1), ``a_eos_ms`` and ``t_eos_ns`` (``a_eos``
        and ``T_eos``), the times of the anchors (``t_speech_stopped_ns``, ``t_created_ns``,
        ``t_first_text_ns``, ``t_first_audio_ns``, ``t_done_ns``: ``response.done``), ``reply_item_id``
        and ``reply_audio_ms`` (the assistant item that carried the reply's audio, and how much audio
        came), ``output_rtf`` (reply audio ms per ms from its first to its last delta: > 1 is faster than
        real time), ``underruns`` (times the speaker ran dry during the reply), the usage tokens
        (:data:`USAGE_COLUMNS`) and ``reason`` (``""`` when every value could be computed).
    """
    ev = in_log_order(events)
    check_number("match_tolerance_ms", match_tolerance_ms)
    if silence_duration_ms is not None:
        check_number("silence_duration_ms", silence_duration_ms)
    labels, ends = (
        sorted_times_ms("end_of_turn_ms", end_of_turn_ms),
        sorted_times_ms("speech_ends_ms", speech_ends_ms),
    )
    timeline = InputTimeline.from_events(ev)
    simulated = on_simulated_timeline(ev)
    td = session_vad_settings(ev)
    if silence_duration_ms is None:
        silence_duration_ms = float(td.get("silence_duration_ms", UNLOGGED_VAD.silence_duration_ms))
    hold_ms = protocol_limits.eou_timeout_ms(td) or 0.0  # an end-of-utterance wait ends a turn that late

    anchors = _Anchors(timeline, ev["sim_ms"].to_numpy(float) * _NS_PER_MS if simulated else None)
    for i, r in enumerate(rows_of(ev, *_ANCHOR_COLUMNS)):
        anchors.add(i, r)

    rule = _EndOfSpeechRule(
        labels,
        float(silence_duration_ms),
        match_tolerance_ms + hold_ms,
        (ends, match_tolerance_ms) if ends and hold_ms else None,
    )
    out = [_compute(i, row, anchors, rule, interpolate) for i, row in enumerate(anchors.rows)]
    _answers_through_tools(out)
    frame = pd.DataFrame(out, columns=_COLUMNS)
    return frame


def sorted_times_ms(name: str, times: Iterable[float] | None) -> list[float] | None:
    """``times`` (ms on the input-audio clock, given as ``name``) sorted, or None.

    Raises:
        ConfigError: ``times`` is not a list of numbers (a string, a number, a NaN in it).
    """
    if times is None:
        return None
    expected = f"a list of times in ms (e.g. a prompt's {name})"
    return sorted(check_numbers(name, times, expected, minimum=-math.inf))


def _answers_through_tools(turns: list[dict[str, Any]]) -> None:
    """Follow each tool turn to its answer (the module docstring).

    Sets ``voice_to_answer_ms``, ``answer_response_id``, ``answers_turn`` and ``calls_to_answer``.
    """
    for turn in turns:
        turn.setdefault("answers_turn", -1)
        if turn["answers_turn"] >= 0:
            turn.update(voice_to_answer_ms=math.nan, answer_response_id=None, calls_to_answer=0)
            continue
        answer: dict[str, Any] | None = turn
        turn["calls_to_answer"] = turn["tool_calls"]
        if turn["tool_calls"] and not math.isfinite(turn["t_first_audible_ns"]):
            answer = None
            for later in turns[turn["turn"] + 1 :]:
                if later["trigger"] != "client":
                    break
                later["answers_turn"] = turn["turn"]
                if later["a_eos_source"] != protocol.MCP_APPROVAL_RESPONSE_ITEM:  # else: the request's call
                    turn["calls_to_answer"] += later["tool_calls"]
                if math.isfinite(later["t_first_audible_ns"]):
                    answer = later
                    break
                if not later["tool_calls"]:
                    break
        if answer is turn:
            wait = turn["voice_to_voice_ms"]
        elif answer is None or turn["false_cutoff"]:
            wait = math.nan
        else:
            wait = span_ms(answer["t_first_audible_ns"], turn["t_eos_ns"])  # after T_eos: no false cut-off
        turn.update(voice_to_answer_ms=wait, answer_response_id=answer["response_id"] if answer else None)
        if answer is not None and answer is not turn and not turn["false_cutoff"]:
            turn["dead_air_ms"] = _dead_air(
                turn["trigger"],
                turn["server_hangover_audio_ms"],
                answer["t_first_audio_ns"],
                turn["t_speech_stopped_ns"],
                wait,
            )


def _dead_air(
    trigger: str, hangover_audio_ms: float, t_audio_ns: float, t_stop_ns: float, other_ms: float
) -> float:
    """The silence the user waits through (``dead_air_ms``, the module docstring).

    For a VAD turn: the end-of-turn wait on the audio clock plus ``speech_stopped`` → the first audio of
    the reply (or of the answer, through tools). For any other turn: ``other_ms``.
    """
    if trigger != "vad":
        return other_ms
    response_part = span_ms(t_audio_ns, t_stop_ns)
    if math.isfinite(hangover_audio_ms) and math.isfinite(response_part) and response_part >= 0:
        return hangover_audio_ms + response_part
    return math.nan


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
    "t_eos_source",
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
    *USAGE_COLUMNS,
    "tool_calls",
    "voice_to_answer_ms",
    "answer_response_id",
    "answers_turn",
    "calls_to_answer",
    "reason",
]


@dataclass(frozen=True, slots=True)
class _EndOfSpeechRule:
    """How :func:`turn_latency` places a VAD turn's end of speech (see its arguments)."""

    labels: list[float] | None
    silence_ms: float
    tolerance_ms: float
    speech_ends: tuple[list[float], float] | None


@dataclass(frozen=True, slots=True)
class _EndOfSpeech:
    """A turn's end of speech: on the input-audio clock, where that came from, and on the client's clock."""

    a_ms: float
    source: str
    labelled: int
    """The label it is (an index into the labels), or -1."""
    t_ns: float
    clock: str


def _end_of_speech(
    row: dict[str, Any],
    rule: _EndOfSpeechRule,
    t_sent: Callable[[float], float],
    anchors: _Anchors,
    reasons: list[str],
) -> _EndOfSpeech:
    """Where the turn a response answers ended: a label, the speech sent, the VAD's estimate or a client event.

    ``t_sent`` maps the input-audio clock onto the log's; what could not be placed is added to ``reasons``.
    """
    nan = math.nan
    trigger, audio_end = row["trigger"], row.get("audio_end_ms", nan)
    labels, tolerance_ms = rule.labels, rule.tolerance_ms
    labelled = -1
    a_eos, source = nan, ""
    eos_clock = "sent"
    if trigger == "vad":
        estimate = audio_end - rule.silence_ms
        if labels:
            # the last end of speech the turn holds, else the first after it (the VAD ended it early)
            held = [i for i, x in enumerate(labels) if estimate - tolerance_ms <= x <= estimate]
            after = [i for i, x in enumerate(labels) if x > estimate]
            if held or after:
                labelled = held[-1] if held else after[0]
                a_eos, source = labels[labelled], "label"
        if source == "" and rule.speech_ends is not None:  # the speech sent ended within the turn's wait
            ends, after_ms = rule.speech_ends
            found = [x for x in ends if estimate - tolerance_ms <= x <= estimate + after_ms]
            if found:
                a_eos, source = found[-1], "audio"
        if source == "":
            a_eos, source = estimate, "estimated"
            if labels is not None:
                reasons.append("no label at or after the estimated end of speech")
        t_eos = t_sent(a_eos)
        if math.isnan(t_eos) and anchors.sim is not None and a_eos > anchors.timeline.sent_ms:
            t_eos = (
                a_eos * _NS_PER_MS
            )  # not sent yet (a log read as it grows): its time is known all the same
        if math.isnan(t_eos):
            reasons.append("end of speech not found among the logged appends")
        elif anchors.sim is None and math.isfinite(captured := anchors.timeline.t_captured(a_eos)):
            t_eos, eos_clock = min(t_eos, captured), "capture"
    elif trigger == "commit":
        a_eos, source = row.get("a_commit_ms", nan), "commit"
        t_eos = row.get("t_client_ns", nan)
    elif trigger == "client":
        source = row.get("client_source", protocol.CLIENT_RESPONSE_CREATE)
        t_eos = row.get("t_client_ns", nan)
    else:
        t_eos = nan
        reasons.append("no speech_stopped, commit or response.create before the response")
    return _EndOfSpeech(a_eos, source, labelled, t_eos, eos_clock)


def _compute(
    index: int, row: dict[str, Any], anchors: _Anchors, rule: _EndOfSpeechRule, interpolate: bool
) -> dict[str, Any]:
    """The :func:`turn_latency` row of the response ``row`` (its anchors), the ``index``-th of the log."""
    reasons: list[str] = []
    nan = math.nan
    t_created = row["t_created_ns"]
    t_stop = row.get("t_speech_stopped_ns", nan)
    t_audio = row.get("t_first_audio_ns", nan)
    t_text = row.get("t_first_text_ns", nan)
    trigger = row["trigger"]
    t_sent = _sent_time(anchors, interpolate)
    eos = _end_of_speech(row, rule, t_sent, anchors, reasons)
    false_cutoff = bool(math.isfinite(eos.t_ns) and t_created < eos.t_ns)
    if false_cutoff:
        reasons.append(FALSE_CUTOFF)
    ending = _turn_end_stages(row, eos, t_sent, reasons)
    ttfb = _stage(reasons, "ttfb_audio_ms", t_audio, t_created, "first audio delta", "response.created")
    ttft = _stage(reasons, "ttft_ms", t_text, t_created, "first text delta", "response.created")
    playout, playout_measured = _playout(row, anchors, reasons)
    if false_cutoff:
        v2v = ending["server_hangover_ms"] = ending["endpointing_ms"] = nan
    else:
        parts = [ending["endpointing_ms"], ending["turn_commit_ms"], ttfb, playout]
        v2v = float(sum(parts)) if all(math.isfinite(p) for p in parts) else nan
    v2v_events = (
        span_ms(t_audio, t_stop - rule.silence_ms * _NS_PER_MS)
        if trigger == "vad" and math.isfinite(t_stop)
        else nan
    )
    item = row.get("item_id")
    t_transcript = anchors.transcripts.get(item or "", nan)
    hangover_audio = ending["server_hangover_audio_ms"]
    return {
        "turn": index,
        "timeline": "simulated" if anchors.sim is not None else "client",
        "first_turn": index == 0,
        "response_id": row.get("response_id"),
        "item_id": item,
        "trigger": trigger,
        "status": row.get("status"),
        "labelled_turn": eos.labelled,
        "a_eos_ms": eos.a_ms,
        "a_eos_source": eos.source,
        "audio_end_ms": row.get("audio_end_ms", nan),
        "t_eos_ns": eos.t_ns,
        "t_eos_source": eos.clock,
        "t_speech_stopped_ns": t_stop,
        "t_created_ns": t_created,
        "t_first_text_ns": t_text,
        "t_first_audio_ns": t_audio,
        "t_first_audible_ns": t_audio + playout * _NS_PER_MS if math.isfinite(t_audio) else nan,
        "t_done_ns": row.get("t_done_ns", nan),
        "false_cutoff": false_cutoff,
        "voice_to_voice_ms": v2v,
        "voice_to_voice_events_ms": v2v_events,
        **ending,
        "ttft_ms": ttft,
        "ttfb_audio_ms": ttfb,
        "playout_ms": playout,
        "playout_measured": playout_measured,
        "transcription_delay_ms": span_ms(t_transcript, t_stop) if math.isfinite(t_transcript) else nan,
        "dead_air_ms": nan if false_cutoff else _dead_air(trigger, hangover_audio, t_audio, t_stop, v2v),
        "reply_audio_ms": row.get("reply_audio_ms", 0.0),
        "reply_item_id": row.get("audio_item_id"),
        "output_rtf": _output_rtf(row),
        "underruns": anchors.underruns.get(row.get("audio_item_id") or "", 0),
        **{key: row.get(key, nan) for key in USAGE_COLUMNS},
        "tool_calls": row.get("tool_calls", 0),
        "reason": "; ".join(reasons),
    }


def _sent_time(anchors: _Anchors, interpolate: bool) -> Callable[[float], float]:
    """When the input audio up to ``a_ms`` on its clock had been sent, in ns on the log's timeline.

    On the simulated timeline that is the audio clock itself, within the audio sent; NaN outside it.
    """
    timeline = anchors.timeline
    if anchors.sim is None:
        return lambda a_ms: timeline.t_sent(a_ms, interpolate=interpolate)
    return lambda a_ms: (
        a_ms * _NS_PER_MS if math.isfinite(a_ms) and 0 <= a_ms <= timeline.sent_ms + 1e-6 else math.nan
    )


def _stage(
    reasons: list[str], name: str, later: float, earlier: float, later_name: str, earlier_name: str
) -> float:
    """``later`` − ``earlier`` in ms, stage ``name``; NaN, its reason added, if one is missing or first."""
    if math.isnan(later) or math.isnan(earlier):
        missing = later_name if math.isnan(later) else earlier_name
        reasons.append(f"{name}: no {missing}")
        return math.nan
    value = (later - earlier) / _NS_PER_MS
    if value < 0:
        reasons.append(f"{name}: {later_name} before {earlier_name}")
        return math.nan
    return value


def _turn_end_stages(
    row: dict[str, Any], eos: _EndOfSpeech, t_sent: Callable[[float], float], reasons: list[str]
) -> dict[str, float]:
    """The stages from the end of speech to ``response.created``, by column.

    A VAD turn has a hangover, an uplink and a commit; a committed or client turn a commit alone (its
    endpointing is 0 once its anchor is known).
    """
    nan = math.nan
    t_created = row["t_created_ns"]
    if row["trigger"] != "vad":
        commit = _stage(
            reasons, "turn_commit_ms", t_created, eos.t_ns, "response.created", eos.source or "anchor"
        )
        endpointing = 0.0 if math.isfinite(eos.t_ns) else nan
        hangover = hangover_audio = uplink = nan
    else:
        t_stop = row.get("t_speech_stopped_ns", nan)
        audio_end = row.get("audio_end_ms", nan)
        t_stop_sent = t_sent(audio_end)
        hangover = _stage(
            reasons, "server_hangover_ms", t_stop_sent, eos.t_ns, "audio_end_ms", "end of speech"
        )
        uplink = _stage(reasons, "uplink_ms", t_stop, t_stop_sent, "speech_stopped", "audio_end_ms sent")
        endpointing = hangover + uplink if not (math.isnan(hangover) or math.isnan(uplink)) else nan
        commit = _stage(reasons, "turn_commit_ms", t_created, t_stop, "response.created", "speech_stopped")
        hangover_audio = audio_end - eos.a_ms if math.isfinite(audio_end - eos.a_ms) else nan
    return {
        "endpointing_ms": endpointing,
        "server_hangover_ms": hangover,
        "server_hangover_audio_ms": hangover_audio,
        "uplink_ms": uplink,
        "turn_commit_ms": commit,
    }


def _playout(row: dict[str, Any], anchors: _Anchors, reasons: list[str]) -> tuple[float, bool]:
    """From the reply's first audio delta to the speaker's first sound of it, and whether it was measured.

    Headless (nothing played) it is 0 once audio came.
    """
    t_played = anchors.played.get(row.get("audio_item_id") or "", math.nan)
    t_audio_wall = row.get("t_first_audio_wall_ns", math.nan)
    if math.isfinite(t_played) and math.isfinite(t_audio_wall):
        return _stage(
            reasons, "playout_ms", t_played, t_audio_wall, "playback_started", "first audio delta"
        ), True
    return (0.0 if math.isfinite(row.get("t_first_audio_ns", math.nan)) else math.nan), False


def tokens_used(turns: pd.DataFrame) -> dict[str, float]:
    """The tokens the responses of :func:`turn_latency`'s turns used, by :data:`USAGE_COLUMNS` column.

    Summed over the turns whose response is done (a detected turn that started none has no usage); NaN
    when one of those responses did not report it.
    """
    require_columns(turns, ["t_done_ns"], "turns, from vlab.metrics.turn_latency")
    done = turns[turns["t_done_ns"].notna()]
    return {key: float(done[key].sum(skipna=False)) if key in done else math.nan for key in USAGE_COLUMNS}


def leading_silence_ms(
    pcm16: bytes, sample_rate: int, *, threshold_dbfs: float = -45.0, frame_ms: float = 10.0
) -> float:
    """Silence at the start of a reply's audio: ms before the first frame louder than ``threshold_dbfs``.

    The first audio delta can arrive (and play) well before the first audible word; this is the part of
    the listener's wait that the event times alone do not show. NaN for audio with no loud frame.
    """
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
