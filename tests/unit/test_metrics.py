"""Metrics on hand-built event logs with known answers."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import warnings
from typing import Any

import pandas as pd
import pytest

from vlab import protocol, protocol_limits
from vlab.errors import ConfigError, VlabWarning
from vlab.log import record_from_event, to_frame
from vlab.metrics import (
    USAGE_COLUMNS,
    InputTimeline,
    bootstrap_ci,
    canary_shift,
    detection_error_rate,
    detections_from_boundaries,
    detections_from_events,
    match_segments,
    operating_points,
    pareto_front,
    score_prompt,
    session_latency,
    setting_took_effect,
    stages_in_order,
    summarize_latency,
    tokens_used,
    tool_calls,
    turn_latency,
    vad_preview,
    waited_turns,
)
from vlab.metrics.latency import FALSE_CUTOFF
from vlab.prompts import LabelledPrompt
from vlab.protocol import RUN_MS_KEY, SIM_MS_KEY, TIMELINE_ENDED, TIMELINE_INPUT, TIMELINE_METADATA_KEY

MS = 1_000_000


class Log:
    """Builds an event frame: times in ms on the client clock."""

    def __init__(self) -> None:
        self.records = []

    def add(self, t_ms: float, direction: str, event: dict, **extra) -> Log:
        self.records.append(
            record_from_event(
                event, direction=direction, seq=len(self.records), t_ns=int(t_ms * MS), wall_ns=0, **extra
            )
        )
        return self

    def appends(self, t0_ms: float, n: int, chunk_ms: float = 20.0, speed: float = 1.0) -> Log:
        for k in range(n):
            pcm = base64.b64encode(bytes(int(chunk_ms * 32))).decode()  # chunk_ms of 16 kHz PCM16
            self.add(
                t0_ms + k * chunk_ms / speed,
                "client",
                {"type": "input_audio_buffer.append", "audio": pcm},
                audio_bytes_per_s=32000,
                input_offset_ms=k * chunk_ms,
            )
        return self

    def server(self, t_ms: float, sim_ms: float, event: dict) -> Log:
        """Add a server event stamped with its time on the emulator's simulated timeline."""
        return self.add(t_ms, "server", {**event, SIM_MS_KEY: sim_ms})

    def frame(self) -> pd.DataFrame:
        return to_frame(sorted(self.records, key=lambda r: r.seq))


def vad_turn(
    log: Log,
    *,
    stopped: float,
    audio_end: float,
    created: float,
    text: float | None,
    audio: float | None,
    done: float,
    rid: str = "resp_1",
    start_audio_ms: float = 0.0,
    status: str = "completed",
    output: tuple[dict, ...] = (),
) -> Log:
    log.add(
        stopped - 400,
        "server",
        {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": start_audio_ms,
            "item_id": "item_" + rid,
        },
    )
    log.add(
        stopped,
        "server",
        {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end, "item_id": "item_" + rid},
    )
    log.add(stopped + 1, "server", {"type": "input_audio_buffer.committed", "item_id": "item_" + rid})
    log.add(created, "server", {"type": "response.created", "response": {"id": rid}})
    if text is not None:
        log.add(
            text, "server", {"type": "response.audio_transcript.delta", "response_id": rid, "delta": "Hi"}
        )
    if audio is not None:
        log.add(
            audio,
            "server",
            {"type": "response.audio.delta", "response_id": rid, "delta": "AAAA"},
            audio_bytes_per_s=48000,
        )
    usage = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}
    response = {"id": rid, "status": status, "usage": usage, "output": list(output)}
    log.add(done, "server", {"type": "response.done", "response": response})
    return log


def session_start(log: Log, sil: int = 500, **turn_detection: Any) -> Log:
    log.add(0, "server", {"type": "session.created", "session": {}})
    td = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": sil}
    td |= turn_detection
    log.add(1, "client", {"type": "session.update", "session": {"turn_detection": td}})
    log.add(9, "server", {"type": "session.updated", "session": {"turn_detection": td}})
    return log


def test_t_sent_is_the_stamp_of_the_chunk_that_carried_the_sample():
    log = Log().appends(1000, 10)  # chunk k = [20k, 20k+20) ms sent at 1000 + 20k ms
    tl = InputTimeline.from_events(log.frame())
    assert tl.t_sent(0) == 1000 * MS
    assert tl.t_sent(20) == 1000 * MS  # the sample ending at 20 ms is the last one of chunk 0
    assert tl.t_sent(30) == 1020 * MS
    assert tl.t_sent(30, interpolate=True) == pytest.approx(1030 * MS)
    assert tl.t_sent(170, interpolate=True) == pytest.approx(1170 * MS)  # the chunk before the last
    assert math.isnan(tl.t_sent(500)) and math.isnan(tl.t_sent(200.5))  # never sent
    assert tl.t_sent(200) == tl.t_sent(200, interpolate=True) == 1180 * MS  # the last chunk: no next stamp
    assert tl.position_at(1019 * MS) == 20 and tl.position_at(999 * MS) == 0
    assert tl.sent_ms == 200 and InputTimeline.from_events(session_start(Log()).frame()).sent_ms == 0
    anchored = log.add(1100, "local", {"type": "vlab.capture", "audio_start_ms": 100.0})
    timeline = InputTimeline.from_events(anchored.frame())
    assert timeline.t_captured(150) == 1150 * MS and math.isnan(timeline.t_captured(99))  # none before it


def test_a_missing_cell_reads_as_none_not_as_the_text_nan():
    from vlab.metrics.events import as_str

    assert [as_str(v) for v in (None, pd.NA, float("nan"), 3, "x")] == [None, None, None, "3", "x"]


def _fed(metadata: dict | None, sim_ms: list[float | None]) -> pd.DataFrame:
    log = Log().add(0, "client", {"type": "session.update", "session": {"metadata": metadata or {}}})
    for k, sim in enumerate(sim_ms):
        log.add(
            k + 1, "server", {"type": "session.updated", **({SIM_MS_KEY: sim} if sim is not None else {})}
        )
    return log.frame()


def test_on_simulated_timeline_needs_the_input_timeline_and_every_server_event_s_simulated_time():
    from vlab.metrics.events import on_simulated_timeline

    fed = {TIMELINE_METADATA_KEY: TIMELINE_INPUT}
    assert on_simulated_timeline(_fed(fed, [0.0, 20.0]))
    assert not on_simulated_timeline(_fed({TIMELINE_METADATA_KEY: TIMELINE_ENDED}, [0.0, 20.0]))
    assert not on_simulated_timeline(_fed(None, [0.0, 20.0]))  # live: the emulator's clock ran free
    assert not on_simulated_timeline(_fed(fed, [0.0, None]))  # an event without its simulated time
    assert not on_simulated_timeline(_fed(fed, []))  # no server event at all
    assert not on_simulated_timeline(_fed(fed, [0.0]).drop(columns="sim_ms"))


def test_in_log_order_sorts_even_two_rows_and_spans_need_both_ends():
    from vlab.metrics.events import in_log_order, span_ms

    two = session_start(Log()).frame().iloc[[1, 0]]
    assert in_log_order(two)["seq"].tolist() == [0, 1]
    assert (
        span_ms(3 * MS, MS) == 2 and math.isnan(span_ms(math.nan, MS)) and math.isnan(span_ms(MS, math.nan))
    )


def test_every_column_of_turn_latency_is_documented_where_help_finds_it():
    import vlab.metrics.latency

    log = session_start(Log()).appends(1000, 100)
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=2850, audio=2970, done=3500)
    documented = (vlab.metrics.latency.__doc__ or "") + (turn_latency.__doc__ or "")
    usage = " ".join(USAGE_COLUMNS)  # named by USAGE_COLUMNS, which the docstring cites
    missing = [c for c in turn_latency(log.frame()).columns if not re.search(rf"\b{c}\b", documented + usage)]
    assert missing == []  # server_hangover_audio_ms, reply_audio_ms, transcription_delay_ms … were not


def test_one_vad_turn_has_known_stages_that_sum_to_voice_to_voice():
    # 2 s of audio sent in real time from t=1000 ms; label says speech ended at 1000 ms of audio,
    # server reports audio_end_ms 1500 (silence 500), stops arrive at t=2530.
    log = session_start(Log()).appends(1000, 100)
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=2850, audio=2970, done=3500)
    t = turn_latency(log.frame(), end_of_turn_ms=[1000])
    row = t.iloc[0]
    assert row.trigger == "vad" and row.a_eos_source == "label" and row.labelled_turn == 0
    assert row.t_eos_ns == 1980 * MS  # the sample ending at 1000 ms went with chunk 49 (980-1000 ms)
    assert row.server_hangover_ms == pytest.approx(500)  # t_sent(1500) - t_sent(1000)
    assert row.uplink_ms == pytest.approx(2530 - 2480)
    assert row.endpointing_ms == pytest.approx(550)
    assert row.turn_commit_ms == pytest.approx(70)
    assert row.ttft_ms == pytest.approx(250)
    assert row.ttfb_audio_ms == pytest.approx(370)
    assert row.playout_ms == 0 and not row.playout_measured
    assert row.t_first_audible_ns == row.t_first_audio_ns == 2970 * MS  # headless: heard as received
    assert row.voice_to_voice_ms == pytest.approx(2970 - 1980)
    assert sum(d for _, _, d in stages_in_order(row)) == pytest.approx(row.voice_to_voice_ms)
    assert row.voice_to_voice_events_ms == pytest.approx(2970 - (2530 - 500))
    assert row.server_hangover_audio_ms == 500 and row.dead_air_ms == pytest.approx(500 + 370 + 70)
    assert row.total_tokens == 30 and row.status == "completed" and row.reason == "" and not row.false_cutoff


def test_labels_given_as_a_generator_time_the_turn_as_a_list_does():
    log = session_start(Log()).appends(1000, 100)
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=2850, audio=2970, done=3500)
    listed = turn_latency(log.frame(), end_of_turn_ms=[1000])
    generated = turn_latency(log.frame(), end_of_turn_ms=(end for end in [1000]))  # read once
    assert generated.iloc[0].a_eos_source == "label" and generated.equals(listed)


def test_capture_anchors_put_the_end_of_speech_where_the_microphone_captured_it():
    # the same turn, but each second of input was captured 130 ms before it was sent (a browser
    # microphone's delivery delay): the stages start from the captured audio
    log = session_start(Log()).appends(1000, 100)
    for a_ms in (0.0, 1000.0):
        log.add(1000 + a_ms - 130, "local", {"type": "vlab.capture", "audio_start_ms": a_ms})
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=2850, audio=2970, done=3500)
    row = turn_latency(log.frame(), end_of_turn_ms=[1000]).iloc[0]
    assert row.t_eos_source == "capture" and row.t_eos_ns == (2000 - 130) * MS
    assert row.server_hangover_ms == pytest.approx(2480 - 1870)  # includes the capture → send delay
    assert row.voice_to_voice_ms == pytest.approx(2970 - 1870)
    assert sum(d for _, _, d in stages_in_order(row)) == pytest.approx(row.voice_to_voice_ms)
    assert InputTimeline.from_events(log.frame()).t_captured(1500) == (2370 + 0) * MS
    plain = session_start(Log()).appends(1000, 100)
    vad_turn(plain, stopped=2530, audio_end=1500, created=2600, text=2850, audio=2970, done=3500)
    row = turn_latency(plain.frame(), end_of_turn_ms=[1000]).iloc[0]
    assert row.t_eos_source == "sent" and row.t_eos_ns == 1980 * MS  # a replayed file: never captured


def test_without_a_label_the_end_of_speech_is_estimated_and_flagged():
    log = session_start(Log(), sil=500).appends(1000, 100)
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=None, audio=2970, done=3500)
    row = turn_latency(log.frame()).iloc[0]
    assert row.a_eos_source == "estimated" and row.a_eos_ms == 1000 and row.labelled_turn == -1
    assert row.voice_to_voice_ms == pytest.approx(2970 - 1980)
    assert math.isnan(row.ttft_ms) and "ttft_ms: no first text delta" in row.reason


@pytest.mark.parametrize(
    ("turn_detection", "can_hold"),
    [
        ({"type": "azure_semantic_vad"}, True),  # waits up to 1000 ms by default
        ({"end_of_utterance_detection": {"model": "semantic_detection_v1", "timeout_ms": 1200}}, True),
        ({}, False),  # no end-of-utterance wait: a label that far before the estimate is not this turn's
    ],
)
def test_a_turn_held_for_more_speech_takes_the_end_of_speech_it_held(turn_detection, can_hold):
    # the user stopped at 1000 ms of audio; the detector waited 1200 ms for more, then its 500 ms timer
    log = session_start(Log(), sil=500, **turn_detection).appends(1000, 150)
    vad_turn(log, stopped=3730, audio_end=2700, created=3800, text=3900, audio=4100, done=4500)
    row = turn_latency(log.frame(), end_of_turn_ms=[1000]).iloc[0]
    # unlabelled, where the speech sent ends (found in the audio: a pause at 400 ms, the end at 1003)
    found = turn_latency(log.frame(), speech_ends_ms=[400.0, 1003.0]).iloc[0]
    if not can_hold:
        assert (row.a_eos_source, row.a_eos_ms, row.labelled_turn) == ("estimated", 2200, -1)
        assert (found.a_eos_source, found.a_eos_ms) == ("estimated", 2200)  # no wait to look back over
        return
    assert (row.a_eos_source, row.a_eos_ms, row.labelled_turn) == ("label", 1000, 0)
    assert row.server_hangover_audio_ms == 1700 and not row.false_cutoff
    assert row.voice_to_voice_ms == pytest.approx(4100 - 1980)  # the wait the user had, the hold in it
    assert (found.a_eos_source, found.a_eos_ms, found.labelled_turn) == ("audio", 1003, -1)
    far = turn_latency(log.frame(), speech_ends_ms=[400.0]).iloc[0]  # none within the wait: the estimate
    assert (far.a_eos_source, far.a_eos_ms) == ("estimated", 2200)
    labelled = turn_latency(log.frame(), end_of_turn_ms=[1000], speech_ends_ms=[1003.0]).iloc[0]
    assert labelled.a_eos_source == "label"  # a label comes first


def test_missing_audio_gives_nan_and_a_reason_not_an_exception():
    log = session_start(Log()).appends(1000, 100)
    vad_turn(
        log, stopped=2530, audio_end=1500, created=2600, text=2700, audio=None, done=2800, status="cancelled"
    )
    row = turn_latency(log.frame(), end_of_turn_ms=[1000]).iloc[0]
    assert math.isnan(row.ttfb_audio_ms) and math.isnan(row.voice_to_voice_ms)
    assert "no first audio delta" in row.reason and row.status == "cancelled"


def test_out_of_order_anchors_give_nan_and_a_reason():
    log = session_start(Log()).appends(1000, 100)
    # the audio delta is stamped before response.created (a clock glitch in a hand-edited log)
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=2700, audio=2590, done=2800)
    row = turn_latency(log.frame(), end_of_turn_ms=[1000]).iloc[0]
    assert math.isnan(row.ttfb_audio_ms) and "first audio delta before response.created" in row.reason
    assert math.isnan(row.voice_to_voice_ms)


def test_response_before_the_end_of_speech_is_a_false_cutoff_not_a_negative_latency():
    # the label says the turn ends at 1800 ms of audio, but the VAD stopped at 1500 (a pause)
    log = session_start(Log()).appends(1000, 100)
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=2700, audio=2750, done=2800)
    row = turn_latency(log.frame(), end_of_turn_ms=[1800]).iloc[0]
    assert row.false_cutoff and row.a_eos_ms == 1800
    assert math.isnan(row.voice_to_voice_ms) and math.isnan(row.endpointing_ms)
    assert math.isnan(row.dead_air_ms)  # the reply cut speech off: no wait after the turn to measure
    assert "false cut-off" in row.reason
    assert row.ttfb_audio_ms == pytest.approx(150)  # the response's own stages still measure


def test_a_response_created_exactly_at_the_end_of_speech_is_no_false_cutoff():
    log = session_start(Log()).appends(1000, 100)
    # the sample ending at 1800 ms of audio went with the append at 1000 + 1780 ms
    vad_turn(log, stopped=2530, audio_end=1500, created=2780, text=2800, audio=2850, done=2900)
    row = turn_latency(log.frame(), end_of_turn_ms=[1800]).iloc[0]
    assert row.t_eos_ns == row.t_created_ns == 2780 * MS
    assert not row.false_cutoff and "false cut-off" not in row.reason


def test_no_events_at_all_gives_an_empty_frame():
    t = turn_latency(Log().frame())
    assert t.empty and "voice_to_voice_ms" in t.columns


def test_text_turn_anchors_on_response_create_and_manual_turn_on_commit():
    log = session_start(Log(), sil=500).appends(1000, 10)
    log.add(1300, "client", {"type": "input_audio_buffer.commit"})
    log.add(1301, "client", {"type": "response.create"})
    log.add(1400, "server", {"type": "response.created", "response": {"id": "r1"}})
    log.add(1600, "server", {"type": "response.audio.delta", "response_id": "r1", "delta": "AAAA"})
    log.add(1700, "server", {"type": "response.done", "response": {"id": "r1", "status": "completed"}})
    log.add(2000, "client", {"type": "response.create"})
    log.add(2050, "server", {"type": "response.created", "response": {"id": "r2"}})
    log.add(2300, "server", {"type": "response.audio.delta", "response_id": "r2", "delta": "AAAA"})
    t = turn_latency(log.frame())
    assert list(t.trigger) == ["commit", "client"]
    assert t.turn_commit_ms.tolist() == pytest.approx([100, 50])
    assert t.voice_to_voice_ms.tolist() == pytest.approx([300, 300])
    assert t.a_eos_ms.iloc[0] == 200  # audio sent when committed
    assert t.first_turn.tolist() == [True, False]


def _done(log: Log, t_ms: int, rid: str, *output: dict) -> None:
    log.add(
        t_ms,
        "server",
        {"type": "response.done", "response": {"id": rid, "status": "completed", "output": output}},
    )


def _call(name: str) -> dict:
    return {"type": "function_call", "name": name, "call_id": f"call_{name}", "arguments": "{}"}


def test_a_turn_answered_through_a_chain_of_tool_calls_is_timed_to_the_answer_spoken():
    log = session_start(Log(), sil=500).appends(1000, 10)
    log.add(1300, "client", {"type": "input_audio_buffer.commit"})
    log.add(1301, "client", {"type": "response.create"})
    log.add(1400, "server", {"type": "response.created", "response": {"id": "r1"}})
    _done(log, 1500, "r1", _call("a"))
    log.add(1800, "client", {"type": "response.create"})  # after a's output: the model calls b
    log.add(1850, "server", {"type": "response.created", "response": {"id": "r2"}})
    _done(log, 1900, "r2", _call("b"))
    log.add(2400, "client", {"type": "response.create"})  # after b's output: the answer is spoken
    log.add(2450, "server", {"type": "response.created", "response": {"id": "r3"}})
    log.add(2700, "server", {"type": "response.audio.delta", "response_id": "r3", "delta": "AAAA"})
    _done(log, 2800, "r3", {"type": "message"})
    log.add(3000, "client", {"type": "response.create"})  # a typed question, answered without tools
    log.add(3050, "server", {"type": "response.created", "response": {"id": "r4"}})
    log.add(3200, "server", {"type": "response.audio.delta", "response_id": "r4", "delta": "AAAA"})
    t = turn_latency(log.frame())
    assert t.tool_calls.tolist() == [1, 1, 0, 0]
    assert t.answers_turn.tolist() == [-1, 0, 0, -1]
    assert t.calls_to_answer.tolist() == [2, 0, 0, 0]  # a then b, counted in the turn they answer
    assert t.answer_response_id.fillna("").tolist() == ["r3", "", "", "r4"]
    assert t.voice_to_answer_ms.iloc[0] == pytest.approx(1400)  # the commit at 1300 → r3's audio at 2700
    assert t.voice_to_answer_ms.iloc[1:3].isna().all()  # counted in the turn they answer
    assert t.voice_to_answer_ms.iloc[3] == pytest.approx(t.voice_to_voice_ms.iloc[3]) == pytest.approx(200)
    assert t.dead_air_ms.iloc[0] == pytest.approx(1400)  # the user's silence runs to the answer too


def _calling_turn(log: Log, created: float) -> None:
    """A VAD turn (speech_stopped at 2530 ms, 1500 ms of audio) whose response only calls a function."""
    vad_turn(
        log, stopped=2530, audio_end=1500, created=created, text=None, audio=None, done=created + 50,
        output=(_call("a"),),
    )  # fmt: skip


def test_the_dead_air_of_a_spoken_turn_answered_through_a_call_runs_to_the_answer_s_first_audio():
    log = session_start(Log()).appends(1000, 100)
    _calling_turn(log, created=2600)
    log.add(2900, "client", {"type": "response.create"})  # the call's output sent: the answer
    log.add(2950, "server", {"type": "response.created", "response": {"id": "r2"}})
    log.add(3300, "server", {"type": "response.audio.delta", "response_id": "r2", "delta": "AAAA"})
    question, answer = (row for _, row in turn_latency(log.frame(), end_of_turn_ms=[1000]).iterrows())
    # as a turn that speaks: the end-of-turn wait on the audio clock + speech_stopped → the answer's audio
    assert question.dead_air_ms == pytest.approx(500 + (3300 - 2530))
    assert math.isnan(question.voice_to_voice_ms) and question.voice_to_answer_ms == pytest.approx(
        3300 - 1980
    )
    assert answer.answers_turn == 0 and answer.dead_air_ms == pytest.approx(
        400
    )  # its own, not a turn of speech


def _on_the_input_timeline() -> Log:
    """A log whose client put vlab's emulator on its input timeline, and the emulator said so."""
    update = {"type": "session.update", "session": {"metadata": {TIMELINE_METADATA_KEY: TIMELINE_INPUT}}}
    return Log().add(0, "client", update).server(1, 0.0, {"type": "session.updated", "session": {}})


@pytest.mark.parametrize("ended_first", [False, True])
def test_on_the_input_timeline_the_answer_to_a_function_call_is_asked_for_where_the_call_ended(ended_first):
    log = _on_the_input_timeline()
    log.appends(2, 100, speed=1000)  # 2 s of audio, all sent in 2 ms (speed "max")
    if ended_first:  # a client that answers no call says its audio has ended: nothing holds time then
        log.add(
            5,
            "client",
            {"type": "session.update", "session": {"metadata": {TIMELINE_METADATA_KEY: TIMELINE_ENDED}}},
        )
    log.server(10, 300.0, {"type": "response.created", "response": {"id": "r1"}})
    log.server(
        11,
        500.0,
        {"type": "response.done", "response": {"id": "r1", "status": "completed", "output": [_call("a")]}},
    )
    log.add(12, "client", {"type": "response.create"})  # sent after all 2000 ms of audio
    log.server(14, 580.0, {"type": "response.created", "response": {"id": "r2"}})
    log.server(15, 900.0, {"type": "response.audio.delta", "response_id": "r2", "delta": "AAAA"})
    answer = turn_latency(log.frame()).iloc[1]
    assert answer.timeline == "simulated" and answer.trigger == "client"
    if ended_first:
        assert answer.t_eos_ns == 2000 * MS  # where its audio was
    else:
        assert answer.t_eos_ns == 500 * MS and answer.voice_to_voice_ms == pytest.approx(400)


def test_on_the_input_timeline_a_reply_before_a_labelled_end_not_sent_yet_is_a_false_cutoff():
    # the session panel reads the log as it grows: at speed 1 the labelled end of speech was not sent yet
    # when the reply came, so the turn was not called a false cut-off (it was, read at the end)
    log = _on_the_input_timeline()
    log.appends(2, 140)  # 2.8 s of audio sent so far, in real time; the user's speech ends at 4.3 s
    log.server(2000, 1500.0, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1500})
    log.server(2100, 1600.0, {"type": "response.created", "response": {"id": "r1"}})
    log.server(2200, 1700.0, {"type": "response.done", "response": {"id": "r1", "status": "cancelled"}})
    turn = turn_latency(log.frame(), end_of_turn_ms=[4300.0], silence_duration_ms=300).iloc[0]
    assert turn.timeline == "simulated" and turn.false_cutoff and turn.t_eos_ns == 4300 * MS
    assert FALSE_CUTOFF in turn.reason


@pytest.mark.parametrize("run_ms", [None, 800, -5])
def test_on_the_input_timeline_a_function_s_output_happens_its_simulated_run_after_the_call(run_ms):
    log = _on_the_input_timeline()
    log.appends(2, 100, speed=1000)  # 2 s of audio, all sent in 2 ms (speed "max")
    log.server(10, 300.0, {"type": "response.created", "response": {"id": "r1"}})
    output = [_call("a")]
    log.server(
        11,
        500.0,
        {"type": "response.done", "response": {"id": "r1", "status": "completed", "output": output}},
    )
    item = {"type": "function_call_output", "call_id": "call_a", "output": "{}"}
    ran = {} if run_ms is None else {RUN_MS_KEY: run_ms}  # -5: refused by the emulator, so not counted
    log.add(12, "client", {"type": "conversation.item.create", "item": item, **ran})
    log.add(13, "client", {"type": "response.create"})
    at = 500 + (run_ms if run_ms and run_ms > 0 else 0)
    log.server(14, at + 80.0, {"type": "response.created", "response": {"id": "r2"}})
    log.server(15, at + 400.0, {"type": "response.audio.delta", "response_id": "r2", "delta": "AAAA"})
    answer = turn_latency(log.frame()).iloc[1]
    assert answer.t_eos_ns == at * MS and answer.voice_to_voice_ms == pytest.approx(400)


def test_on_the_input_timeline_an_mcp_approval_and_the_answer_to_the_call_happen_where_the_call_is():
    def done(t_ms: float, sim_ms: float, rid: str, item: dict) -> None:
        log.server(
            t_ms,
            sim_ms,
            {"type": "response.done", "response": {"id": rid, "status": "completed", "output": [item]}},
        )

    log = _on_the_input_timeline()
    log.appends(2, 100, speed=1000)  # 2 s of audio, all sent in 2 ms (speed "max")
    log.server(10, 300.0, {"type": "response.created", "response": {"id": "r1"}})
    done(11, 500.0, "r1", {"type": "mcp_approval_request", "id": "req_1", "name": "search"})
    approval = {"type": "mcp_approval_response", "approval_request_id": "req_1", "approve": True}
    log.add(12, "client", {"type": "conversation.item.create", "item": approval})  # after all the audio
    log.server(
        13, 560.0, {"type": "response.created", "response": {"id": "r2"}}
    )  # the service's, for the call
    done(14, 600.0, "r2", {"type": "mcp_call", "id": "mcp_1", "name": "search"})
    log.server(15, 950.0, {"type": "response.mcp_call.completed", "item_id": "mcp_1", "output_index": 0})
    log.add(16, "client", {"type": "response.create"})  # the runner asks for the spoken answer
    log.server(17, 1000.0, {"type": "response.created", "response": {"id": "r3"}})
    log.server(18, 1300.0, {"type": "response.audio.delta", "response_id": "r3", "delta": "AAAA"})
    t = turn_latency(log.frame())
    assert t.timeline.tolist() == ["simulated"] * 3 and t.trigger.tolist()[1:] == ["client", "client"]
    assert t.t_eos_ns.tolist()[1:] == [
        500 * MS,
        950 * MS,
    ]  # the approval at the request, the ask at the return
    assert t.answers_turn.tolist() == [-1, 0, 0] and t.answer_response_id.iloc[0] == "r3"
    assert t.a_eos_source.tolist()[1:] == ["mcp_approval_response", "response.create"]
    # the request and the approved call's response are one call
    assert t.tool_calls.tolist() == [1, 1, 0] and t.calls_to_answer.tolist() == [1, 0, 0]


def test_a_tool_turn_the_user_speaks_over_before_any_answer_has_no_answer_time():
    log = session_start(Log(), sil=500).appends(1000, 10)
    log.add(1300, "client", {"type": "input_audio_buffer.commit"})
    log.add(1400, "server", {"type": "response.created", "response": {"id": "r1"}})
    _done(log, 1500, "r1", _call("a"))
    log.add(1600, "client", {"type": "input_audio_buffer.commit"})  # the user's next turn comes first
    log.add(1700, "server", {"type": "response.created", "response": {"id": "r2"}})
    log.add(1900, "server", {"type": "response.audio.delta", "response_id": "r2", "delta": "AAAA"})
    t = turn_latency(log.frame())
    assert t.answers_turn.tolist() == [-1, -1] and t.answer_response_id.fillna("").tolist() == ["", "r2"]
    assert math.isnan(t.voice_to_answer_ms.iloc[0]) and t.voice_to_answer_ms.iloc[1] == pytest.approx(300)


def test_a_tool_turn_cut_off_before_the_end_of_speech_has_no_answer_time():
    log = session_start(Log()).appends(1000, 100)
    # labelled end of speech at 1800 ms of audio: sent at 2780 ms, after the response was created (2700)
    _calling_turn(log, created=2700)
    log.add(2900, "client", {"type": "response.create"})
    log.add(2950, "server", {"type": "response.created", "response": {"id": "r2"}})
    log.add(3100, "server", {"type": "response.audio.delta", "response_id": "r2", "delta": "AAAA"})
    t = turn_latency(log.frame(), end_of_turn_ms=[1800])
    assert t.false_cutoff.tolist() == [True, False] and t.answers_turn.tolist() == [-1, 0]
    assert t.answer_response_id.iloc[0] == "r2" and math.isnan(t.voice_to_answer_ms.iloc[0])
    assert math.isnan(t.dead_air_ms.iloc[0])


def test_a_tool_turn_whose_answer_is_not_spoken_has_no_answer_time():
    log = session_start(Log(), sil=500).appends(1000, 10)
    log.add(1300, "client", {"type": "input_audio_buffer.commit"})
    log.add(1400, "server", {"type": "response.created", "response": {"id": "r1"}})
    _done(log, 1500, "r1", _call("a"))
    log.add(1800, "client", {"type": "response.create"})  # the answer, in text only
    log.add(1850, "server", {"type": "response.created", "response": {"id": "r2"}})
    log.add(1900, "server", {"type": "response.text.delta", "response_id": "r2", "delta": "22 degrees"})
    _done(log, 1950, "r2", {"type": "message"})
    log.add(3000, "client", {"type": "response.create"})  # then a typed question, answered aloud
    log.add(3050, "server", {"type": "response.created", "response": {"id": "r3"}})
    log.add(3200, "server", {"type": "response.audio.delta", "response_id": "r3", "delta": "AAAA"})
    log.add(3500, "client", {"type": "input_audio_buffer.commit"})  # a turn answered in text, no tools
    log.add(3550, "server", {"type": "response.created", "response": {"id": "r4"}})
    _done(log, 3600, "r4", {"type": "message"})
    log.add(3700, "client", {"type": "response.create"})  # a typed question: its own turn
    log.add(3750, "server", {"type": "response.created", "response": {"id": "r5"}})
    log.add(3900, "server", {"type": "response.audio.delta", "response_id": "r5", "delta": "AAAA"})
    t = turn_latency(log.frame())
    assert t.answers_turn.tolist() == [-1, 0, -1, -1, -1]
    assert t.answer_response_id.fillna("").tolist() == ["", "", "r3", "r4", "r5"]
    assert math.isnan(t.voice_to_answer_ms.iloc[0]) and t.voice_to_answer_ms.iloc[2] == pytest.approx(200)


def test_session_latency_measures_update_cancel_and_barge_in():
    log = session_start(Log())
    log.add(100, "server", {"type": "response.created", "response": {"id": "r1"}})
    log.add(200, "server", {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0})
    log.add(203, "client", {"type": "response.cancel"})
    log.add(240, "server", {"type": "response.done", "response": {"id": "r1", "status": "cancelled"}})
    s = session_latency(log.frame(), connect_ns=-20 * MS).set_index("kind")
    assert s.loc["connect", "latency_ms"] == pytest.approx(20)
    assert s.loc["update", "latency_ms"] == pytest.approx(8)
    assert s.loc["cancel", "latency_ms"] == pytest.approx(37)
    assert s.loc["barge_in_stop", "latency_ms"] == pytest.approx(3)


def test_an_update_is_answered_by_its_session_updated_not_by_what_comes_between():
    log = session_start(Log())
    log.add(100, "client", {"type": "session.update", "session": {}})
    log.add(110, "server", {"type": "error", "error": {"type": "invalid_request_error", "message": "x"}})
    log.add(150, "server", {"type": "session.updated", "session": {}})
    updates = session_latency(log.frame()).query("kind == 'update'")
    assert updates.latency_ms.tolist() == pytest.approx([8, 50])


def test_the_feeds_requests_to_sync_with_the_emulator_are_not_measured_as_updates():
    # a tool sweep's session table had 90, 94 or 96 update rows: the feed's timeline requests, whose number
    # depends on timing, counted as the user's updates
    log = session_start(Log())
    steer = {"vlab.timeline": "input", "vlab.barge_in": "cancel"}
    log.add(100, "client", {"type": "session.update", "session": {"metadata": steer}})
    log.add(300, "client", {"type": "session.update", "session": {"voice": "alloy"}})
    log.add(900, "server", {"type": "session.updated", "session": {}})  # the sync's answer, late
    log.add(920, "server", {"type": "session.updated", "session": {}})
    log.add(950, "client", {"type": "session.update", "session": {"metadata": {"vlab.timeline": "ended"}}})
    log.add(990, "client", {"type": "session.update", "session": {"metadata": {"vlab.latency_seed": "7"}}})
    log.add(
        991,
        "client",
        {"type": "session.update", "session": {"metadata": {"vlab.timeline": "ended", "x": "1"}}},
    )
    updates = session_latency(log.frame()).query("kind == 'update'")
    assert updates.latency_ms.tolist()[:2] == pytest.approx([8, 620])  # the settings' update, and the user's
    assert len(updates) == 3 and updates.reason.tolist()[2] == "no session.updated"  # metadata of their own


def test_a_playback_notice_without_what_was_heard_or_when_it_went_silent_measures_nothing():
    log = session_start(Log())
    log.add(100, "server", {"type": "response.created", "response": {"id": "r1"}})
    log.add(200, "server", {"type": "input_audio_buffer.speech_started"})
    log.add(210, "local", {"type": "vlab.playback_cleared", "item_id": "a1"})  # nothing heard, no time
    log.add(215, "client", {"type": "conversation.item.truncate", "item_id": "a1", "audio_end_ms": 0})
    log.add(220, "local", {"type": "vlab.playback_cleared", "heard_ms": 40.0, "silent_from_t_ns": 230 * MS})
    kinds = session_latency(log.frame()).kind.tolist()
    assert "truncation_error" not in kinds  # the truncate's item was never heard
    assert kinds.count("barge_in_silence") == 1  # from the notice that says when it went silent


def test_session_latency_pairs_only_what_answers_and_reports_what_went_unanswered():
    log = Log().add(-30, "local", {"type": "vlab.connect"}).add(-25, "local", {"type": "vlab.connect"})
    session_start(log)
    log.add(100, "server", {"type": "input_audio_buffer.speech_started"})  # no response: not a barge-in
    log.add(110, "client", {"type": "response.cancel"})
    log.add(150, "server", {"type": "response.created", "response": {"id": "r1"}})
    log.add(200, "server", {"type": "response.done", "response": {"id": "r1", "status": "completed"}})
    log.add(300, "server", {"type": "input_audio_buffer.speech_started"})  # after the response ended
    log.add(305, "client", {"type": "response.cancel"})
    log.add(320, "client", {"type": "session.update", "session": {}})
    log.add(400, "client", {"type": "conversation.item.truncate", "item_id": "a1", "audio_end_ms": 180})
    s = session_latency(log.frame())
    assert s.loc[s.kind == "connect", "latency_ms"].tolist() == [pytest.approx(30)]  # the first connect
    assert s.kind.tolist() == [
        "connect",
        "update",
        "update",
        "cancel",
        "cancel",
    ]  # no barge-in, no truncation
    unanswered = s[s.latency_ms.isna()]  # a completed response.done answers no cancel
    assert list(zip(unanswered.kind, unanswered.t_ns, unanswered.reason, strict=True)) == [
        ("update", 320 * MS, "no session.updated"),
        ("cancel", 110 * MS, "no cancelled response.done"),
        ("cancel", 305 * MS, "no cancelled response.done"),
    ]
    bare = session_latency(session_start(Log()).frame())
    assert bare.kind.tolist() == ["connect", "update"] and bare.reason[0] == "connect time not logged"


def test_setting_took_effect_reports_what_the_service_changed():
    log = Log()
    td = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 900}
    log.add(1, "client", {"type": "session.update", "session": {"turn_detection": td}})
    log.add(
        9,
        "server",
        {"type": "session.updated", "session": {"turn_detection": {**td, "silence_duration_ms": 500}}},
    )
    assert setting_took_effect(log.frame()) == [
        "turn_detection.silence_duration_ms: sent 900, service has 500"
    ]
    ok = session_start(Log())
    assert setting_took_effect(ok.frame()) == []


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        ([(0, 100)], [], {"missed": 1}),
        ([], [(0, 100)], {"false": 1}),
        ([(0, 1000)], [(0, 400), (600, 1000)], {"split": 1}),
        ([(0, 400), (600, 1000)], [(0, 1000)], {"merged": 1}),
        ([(0, 400)], [(10, 390)], {"matched": 1}),
        ([(0, 400)], [(10, 390), (600, math.nan)], {"matched": 1}),  # a start never stopped is not a segment
    ],
)
def test_segment_matching_classifies_missed_false_split_and_merged(ref, hyp, expected):
    counts = match_segments(ref, hyp)
    for key in ("missed", "false", "split", "merged", "matched"):
        assert counts[key] == expected.get(key, 0), key


def test_detection_error_rate_counts_false_alarm_and_miss():
    d = detection_error_rate([(100, 600)], [(200, 800)], 1000)
    assert d["missed_ms"] == 100 and d["false_alarm_ms"] == 200 and d["der"] == pytest.approx(300 / 500)


def _pause_prompt() -> LabelledPrompt:
    return LabelledPrompt(
        id="p",
        file=__file__,
        text="",
        sample_rate=16000,
        duration_ms=4000,
        category="pause",  # type: ignore[arg-type]
        speech_segments=((300, 1300), (2200, 3000)),
        hold_spans=((1300, 2200),),
        end_of_turn_ms=(3000,),
    )


def _two_detections() -> pd.DataFrame:
    """Speech 300-1300 and 2200-3000 ms, each answered: at 1800 and 3500 ms on the audio clock."""
    return pd.DataFrame(
        {
            "audio_start_ms": [0.0, 1900.0],
            "audio_end_ms": [1800.0, 3500.0],
            "onset_ms": [300.0, 2200.0],
            "offset_ms": [1300.0, 3000.0],
            "responded": [True, True],
        }
    )


def test_score_prompt_finds_the_cutoff_inside_the_hold_and_the_dead_air_after_the_turn():
    det = _two_detections()
    s = score_prompt(_pause_prompt(), det)
    assert s["cutoff_turns"] == 1 and s["holds_cut"] == 1 and s["false_cutoffs"] == 1
    assert s["missed_turns"] == 0 and s["turns_per_expected"] == 2
    assert s["dead_air_ms"] == pytest.approx(500)
    assert s["onset_error_ms"] == 0 and s["eos_delay_ms"] == 500
    # on speech, a false start is a detection of no labelled speech: both found speech
    assert (s["false_starts"], s["false_starts_per_min"]) == (0, 0)
    merged = det.iloc[[1]].assign(audio_start_ms=0.0, onset_ms=300.0)
    s2 = score_prompt(_pause_prompt(), merged)
    assert s2["cutoff_turns"] == 0 and s2["merged"] == 1 and s2["turns_per_expected"] == 1


def test_an_onset_known_only_to_lie_in_a_span_is_scored_on_what_it_can_be():
    # the speech began somewhere in 100-500 and in 2300-2400 ms (the server clamped the padding)
    prompt = dataclasses.replace(_pause_prompt(), hold_spans=(), end_of_turn_ms=(1300, 3000))  # two turns
    det = _two_detections().assign(onset_ms=[500.0, 2400.0], onset_earliest_ms=[100.0, 2300.0])
    spans = score_prompt(prompt, det)
    exact = score_prompt(prompt, det.drop(columns="onset_earliest_ms"))
    # the turns start at 300 (in its span: on time) and 2200 (100 ms before its span)
    assert spans["onset_error_ms"] == 50 and exact["onset_error_ms"] == 200
    # the spans are left out of the DER: of 1800 ms of speech, the 300 in them; 100 ms missed before 2300
    assert (spans["reference_ms"], spans["missed_ms"]) == (1500, 100)
    assert (exact["reference_ms"], exact["missed_ms"]) == (1800, 400)
    assert score_prompt(prompt, det.assign(onset_earliest_ms=math.nan))["der"] == exact["der"]


def test_detections_know_where_the_server_clamped_the_padding():
    events = [
        (protocol.SPEECH_STARTED, 0, None, "a"),  # the padding reached back past the start of the audio
        (protocol.SPEECH_STOPPED, None, 1800, "a"),
        (protocol.SPEECH_STARTED, 1800, None, "b"),  # ... and past the end of the turn before
        (protocol.SPEECH_STOPPED, None, 3500, "b"),
        (protocol.SPEECH_STARTED, 3900, None, "c"),  # not clamped: exact
    ]
    d = detections_from_boundaries(events, silence_duration_ms=500, prefix_padding_ms=300)
    assert d["onset_ms"].tolist() == [300, 2100, 4200]
    assert d["onset_earliest_ms"].tolist() == [0, 1800, 4200]


def test_waited_turns_are_the_spoken_turns_not_cut_off():
    turns = pd.DataFrame(
        {
            "trigger": ["vad", "vad", "client", "vad", "commit"],
            "category": ["pause", "pause", "pause", "noise_only", "pause"],
            "false_cutoff": [False, True, False, False, False],
        }
    )
    assert waited_turns(turns).index.tolist() == [0, 4]  # not the cut-off, the client's or the noise's
    assert waited_turns(turns.drop(columns="false_cutoff")).index.tolist() == [0, 1, 4]
    assert waited_turns(turns.iloc[:0]).empty


@pytest.mark.parametrize("speech_first", [True, False], ids=["speech_first", "response_first"])
def test_a_response_belongs_to_the_turn_that_ended_whichever_comes_first_at_one_ms(speech_first):
    # the user speaks on within the reply's start-up: the emulator logs speech_started and the ended
    # turn's response.created at one simulated ms, and their order used to decide whether it counted
    resumed = (protocol.SPEECH_STARTED, 1800, None, "b")
    reply = (protocol.RESPONSE_CREATED, None, None, None)
    events = [
        (protocol.SPEECH_STARTED, 0, None, "a"),
        (protocol.SPEECH_STOPPED, None, 1800, "a"),
        *((resumed, reply) if speech_first else (reply, resumed)),
        (protocol.SPEECH_STOPPED, None, 3500, "b"),
        (protocol.SPEECH_STARTED, 3900, None, "c"),
        (protocol.RESPONSE_CREATED, None, None, None),  # b's, after c began
        (protocol.SPEECH_STOPPED, None, 5000, "c"),
        (protocol.RESPONSE_CREATED, None, None, None),
        (protocol.RESPONSE_CREATED, None, None, None),  # a second one for the same turn gives it no other
        (protocol.SPEECH_STARTED, 5400, None, "d"),
        (protocol.RESPONSE_CREATED, None, None, None),  # no turn ended without a response: d is still open
    ]
    d = detections_from_boundaries(events, silence_duration_ms=500, prefix_padding_ms=300)
    assert d["item_id"].tolist() == ["a", "b", "c", "d"]
    assert d["responded"].tolist() == [True, True, True, False]


def test_a_turn_whose_reply_was_never_heard_has_no_dead_air_in_the_score():
    # two turns; the first's reply was cancelled before its first audio, as the user spoke on. Its dead
    # air used to be the end-of-turn wait on the audio clock (500 ms, no reply latency in it), beside the
    # second turn's measured 1300 ms: a median of 900 that no user waited through
    prompt = dataclasses.replace(_pause_prompt(), hold_spans=(), end_of_turn_ms=(1300, 3000))
    det = _two_detections()
    measured = score_prompt(prompt, det, dead_air_ms={1800.0: math.nan, 3500.0: 1300.0})
    assert measured["dead_air_ms"] == 1300.0
    assert (measured["ended_turns"], measured["missed_turns"], measured["cutoff_turns"]) == (2, 0, 0)
    assert math.isnan(score_prompt(prompt, det, dead_air_ms={1800.0: math.nan})["dead_air_ms"])  # none heard
    # without replies measured (a VAD-only sweep), each turn's wait on the audio clock
    assert score_prompt(prompt, det)["dead_air_ms"] == 500.0


def test_score_prompt_counts_a_missed_turn_and_false_starts_on_noise():
    s = score_prompt(
        _pause_prompt(),
        pd.DataFrame(columns=["audio_start_ms", "audio_end_ms", "onset_ms", "offset_ms", "responded"]),
    )
    assert s["missed_turns"] == 1 and s["missed"] == 2
    noise = LabelledPrompt(
        id="n",
        file=__file__,
        text="",
        sample_rate=16000,
        duration_ms=6000,
        category="noise_only",
        speech_segments=(),
    )  # type: ignore[arg-type]
    det = pd.DataFrame(
        {
            "audio_start_ms": [100.0],
            "audio_end_ms": [900.0],
            "onset_ms": [400.0],
            "offset_ms": [400.0],
            "responded": [True],
        }
    )
    scored = score_prompt(noise, det)
    assert scored["false_starts_per_min"] == pytest.approx(10)
    assert (scored["false_starts"], scored["duration_ms"]) == (1, 6000)  # what a point pools over prompts
    # on noise, every onset is a false start: one still open at the end (no offset, not a segment) too
    still_open = pd.concat(
        [det, pd.DataFrame({"onset_ms": [5000.0], "responded": [False]})], ignore_index=True
    )
    scored = score_prompt(noise, still_open)
    assert (scored["false_starts"], scored["false_starts_per_min"]) == (2, pytest.approx(20))


def test_the_poisson_interval_of_a_rate_is_exact_and_sound_at_zero():
    from vlab.metrics import poisson_interval

    # Garwood's exact 95 % limits of a Poisson mean (tables: 0 -> 3.689, 1 -> 0.0253-5.572, ...)
    assert poisson_interval(0, 1) == pytest.approx((0.0, 3.6889), abs=1e-4)
    assert poisson_interval(1, 1) == pytest.approx((0.0253, 5.5716), abs=1e-4)
    assert poisson_interval(5, 1) == pytest.approx((1.6235, 11.6683), abs=1e-4)
    assert poisson_interval(20, 1) == pytest.approx((12.2165, 30.8884), abs=1e-4)
    assert poisson_interval(5, 2) == pytest.approx((1.6235 / 2, 11.6683 / 2), abs=1e-4)  # per unit
    assert all(math.isnan(v) for v in poisson_interval(0, 0))


def test_false_starts_per_minute_pool_the_noise_prompts_minutes_with_an_interval():
    from vlab.metrics import poisson_interval

    scores = pd.DataFrame(
        {
            "setting": ["a", "a", "a", "b"],
            "category": ["noise_only", "noise_only", "pause", "pause"],
            "duration_ms": [30_000.0, 90_000.0, 4000.0, 4000.0],  # half a minute and 1.5 minutes of noise
            "false_starts": [2, 0, 1, 1],  # the pause's false start is not one on noise
            "false_starts_per_min": [4.0, 0.0, 15.0, 15.0],
            "expected_turns": [0, 0, 1, 1],
            **{c: [0] * 4 for c in ("cutoff_turns", "holds", "holds_cut", "missed_turns", "responses")},
            "dead_air_ms": [math.nan, math.nan, 500.0, 500.0],
            "der": [math.nan, math.nan, 0.1, 0.1],
        }
    )
    p = operating_points(scores).set_index("setting")
    assert p.loc["a", "false_starts_per_min"] == 1.0  # 2 in 2 minutes; the mean of the rates would be 2
    assert (p.loc["a", "false_starts_per_min_lo"], p.loc["a", "false_starts_per_min_hi"]) == poisson_interval(
        2, 2.0
    )
    assert p.loc["b", ["false_starts_per_min", "false_starts_per_min_lo"]].isna().all()  # no noise played
    ptt = operating_points(scores, reference="a").set_index("setting")  # push-to-talk: no VAD, no interval
    assert ptt.loc["a", ["false_starts_per_min_lo", "false_starts_per_min_hi"]].isna().all()
    older = operating_points(scores.drop(columns=["duration_ms"])).set_index("setting")  # before vlab kept it
    assert older.loc["a", "false_starts_per_min"] == 2.0 and "false_starts_per_min_lo" not in older


def test_pareto_front_and_operating_points():
    pts = pd.DataFrame({"dead_air_ms": [300, 500, 400, 900], "false_cutoff_rate": [0.5, 0.1, 0.6, 0.0]})
    assert pareto_front(pts).tolist() == [True, True, False, True]
    scores = pd.DataFrame(
        {
            "setting": ["a", "a", "b"],
            "category": ["pause", "noise_only", "pause"],
            "expected_turns": [2, 0, 2],
            "cutoff_turns": [1, 0, 0],
            "holds": [1, 0, 1],
            "holds_cut": [1, 0, 0],
            "missed_turns": [0, 0, 0],
            "responses": [3, 1, 2],
            "dead_air_ms": [300.0, math.nan, 800.0],
            "der": [0.1, math.nan, 0.2],
            "false_starts_per_min": [0, 12.0, 0],
        }
    )
    p = operating_points(scores, baseline="b").set_index("setting")
    assert p.loc["a", "false_cutoff_rate"] == 0.5 and p.loc["a", "false_starts_per_min"] == 12
    assert p.loc["b", "baseline"] and p["pareto"].all()
    assert not operating_points(scores)["baseline"].any()  # no baseline named: none is the baseline
    assert "tokens_per_expected_turn" not in p  # scores that do not count tokens (a VAD-only sweep's)


def test_with_the_turns_a_point_s_dead_air_is_the_median_over_the_turns_the_user_spoke():
    scores = pd.DataFrame(
        {
            "setting": ["a", "a", "b"],
            "voice": ["alloy"] * 3,
            "category": ["pause"] * 3,
            "expected_turns": [1, 3, 1],
            "dead_air_ms": [900.0, 400.0, 700.0],  # the runs' medians
            **{c: [0] * 3 for c in ("cutoff_turns", "holds", "holds_cut", "missed_turns", "responses")},
            "der": [0.0] * 3,
        }
    )
    turns = pd.DataFrame(
        {
            "setting": ["a"] * 5 + ["b"],
            "voice": ["alloy"] * 6,
            "trigger": ["vad", "vad", "vad", "vad", "client", "vad"],  # the client's own: not a wait
            "dead_air_ms": [900.0, 300.0, 400.0, 500.0, 10.0, 700.0],
        }
    )
    for by in ("setting", ["setting", "voice"]):
        p = operating_points(scores, by=by, turns=turns).set_index("setting")
        assert p.loc["a", "dead_air_ms"] == 450.0 and p.loc["b", "dead_air_ms"] == 700.0
        assert p.loc["a", "dead_air_ms_lo"] >= 300.0 and p.loc["a", "dead_air_ms_hi"] <= 900.0
    assert operating_points(scores).set_index("setting").loc["a", "dead_air_ms"] == 650.0  # runs' medians


def test_the_wilson_interval_of_a_rate_and_the_points_95_percent_intervals():
    from vlab.metrics import wilson_interval

    assert wilson_interval(0, 8) == pytest.approx((0.0, 0.3244), abs=1e-4)  # never 0 wide at 0 %
    assert wilson_interval(4, 8) == pytest.approx((0.2152, 0.7848), abs=1e-4)
    assert wilson_interval(8, 8) == pytest.approx((0.6756, 1.0), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    for n in range(1, 200):  # exact at the ends: 0 of 10 gave a low end of 2.8e-17, above the rate itself
        assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0
    scores = pd.DataFrame(
        {
            "setting": ["a"] * 4 + ["ptt"] * 4,
            "category": ["pause"] * 8,
            "expected_turns": [2] * 8,
            "cutoff_turns": [1, 1, 0, 0] + [0] * 4,
            "dead_air_ms": [300.0, 500.0, 400.0, 600.0] * 2,
            **{c: [0] * 8 for c in ("holds", "holds_cut", "missed_turns", "responses")},
            "der": [0.0] * 8,
        }
    )
    p = operating_points(scores, reference="ptt").set_index("setting")
    assert (p.loc["a", "false_cutoff_rate_lo"], p.loc["a", "false_cutoff_rate_hi"]) == wilson_interval(2, 8)
    assert p.loc["a", "dead_air_ms_lo"] < p.loc["a", "dead_air_ms"] == 450.0 < p.loc["a", "dead_air_ms_hi"]
    assert (
        p.loc["a", "dead_air_ms_lo"] >= 300.0 and p.loc["a", "dead_air_ms_hi"] <= 600.0
    )  # medians of resamples
    assert math.isnan(p.loc["ptt", "false_cutoff_rate_lo"])  # the reference cannot cut off: no interval
    assert p.loc["ptt", "dead_air_ms_hi"] == p.loc["a", "dead_air_ms_hi"]  # its wait still varies


def test_a_reference_setting_is_never_on_the_frontier_and_puts_no_setting_off_it():
    scores = pd.DataFrame(
        {
            "setting": ["a", "b", "ptt"],
            "category": ["pause"] * 3,
            "expected_turns": [2, 2, 2],
            "cutoff_turns": [1, 0, 0],
            "dead_air_ms": [300.0, 800.0, 100.0],  # ptt is better than both on both
            **{c: [0] * 3 for c in ("holds", "holds_cut", "missed_turns", "responses")},
            "der": [0.0] * 3,
        }
    )
    p = operating_points(scores, reference="ptt").set_index("setting")
    assert p["reference"].tolist() == [False, False, True] and p["pareto"].tolist() == [True, True, False]
    from vlab.metrics import cutoff_at_latency, latency_at_cutoff

    assert cutoff_at_latency(p, budgets_ms=(300.0,)) == {300.0: 0.5}  # a, not the reference's 0
    assert latency_at_cutoff(p, rates=(0.0,)) == {0.0: 800.0}  # b, not the reference's 100 ms
    plain = operating_points(scores).set_index("setting")  # without the mark it is only another setting
    assert not plain["reference"].any() and plain["pareto"].tolist() == [False, False, True]


def test_tokens_per_expected_turn_counts_the_runs_with_speech_and_is_unknown_if_one_run_s_is():
    scores = pd.DataFrame(
        {
            "setting": ["a", "a", "a", "b", "b"],
            "category": ["pause", "short", "noise_only", "pause", "short"],
            "expected_turns": [2, 1, 0, 2, 1],
            "total_tokens": [150.0, 60.0, 999.0, 120.0, math.nan],
            **{c: [0] * 5 for c in ("cutoff_turns", "holds", "holds_cut", "missed_turns", "responses")},
            **{c: [1.0] * 5 for c in ("dead_air_ms", "der", "false_starts_per_min")},
        }
    )
    p = operating_points(scores).set_index("setting")
    assert p.loc["a", "tokens_per_expected_turn"] == 70.0  # (150 + 60) / 3: the noise-only run is left out
    assert math.isnan(p.loc["b", "tokens_per_expected_turn"])  # one run's responses did not say


def _canary_runs(ends_by_silence: dict[int, list[float]]) -> pd.DataFrame:
    """Detections of the canary prompt: per silence duration, the first stop of each run (and a later one)."""
    rows = [
        {"prompt": "canary", "silence_duration_ms": silence, "run": run, "audio_end_ms": end + later}
        for silence, ends in ends_by_silence.items()
        for run, end in enumerate(ends)
        for later in (0.0, 2000.0)
    ]
    other = {"prompt": "other", "silence_duration_ms": 200, "run": 0, "audio_end_ms": 9999.0}
    return pd.DataFrame([*rows, other])


def test_canary_shift_passes_a_setting_that_moves_the_stop_by_its_silence():
    vad = _canary_runs({200: [1200.0, 1220.0, 1210.0], 500: [1500.0, 1490.0, 1530.0], 900: [1950.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        shift = canary_shift(vad, prompt="canary")
    assert shift["silence_duration_ms"].tolist() == [200, 500, 900]
    assert shift["audio_end_ms"].tolist() == [1210, 1500, 1950]  # the median of the first stops
    assert shift["shift_ms"].tolist() == [0, 290, 740] and shift["expected_ms"].tolist() == [0, 300, 700]
    assert shift["ok"].all()  # within 100 ms of the expected shift


def test_canary_shift_takes_each_cell_s_first_stop_when_settings_share_a_silence():
    # three settings (thresholds) of sil=300, one run each: the median of their first stops is 1500; it was
    # 1400, the earliest, since the run numbers (all 0) made them one group
    vad = pd.DataFrame(
        {
            "prompt": "canary",
            "setting": ["t3", "t3", "t5", "t7", "b"],
            "run": 0,
            "silence_duration_ms": [300, 300, 300, 300, 200],
            "audio_end_ms": [1400.0, 3000.0, 1500.0, 1900.0, 1300.0],
        }
    )
    assert canary_shift(vad, prompt="canary", warn=False)["audio_end_ms"].tolist() == [1300, 1500]
    cells = vad.drop(columns=["setting", "run"]).assign(cell=["t3", "t3", "t5", "t7", "b"])
    assert canary_shift(cells, prompt="canary", warn=False)["audio_end_ms"].tolist() == [1300, 1500]
    with pytest.raises(ConfigError, match="silence_duration_ms"):
        canary_shift(vad.drop(columns="silence_duration_ms"), prompt="canary")  # was KeyError


def test_canary_shift_warns_of_a_setting_the_service_ignored():
    vad = _canary_runs({200: [1200.0], 500: [1500.0], 900: [1500.0]})
    with pytest.warns(VlabWarning, match=r"900 ms shifted 300 ms \(expected 700\); the service may be"):
        shift = canary_shift(vad, prompt="canary")
    assert shift["ok"].tolist() == [True, True, False]
    assert canary_shift(vad, prompt="canary", tolerance_ms=400, warn=False)["ok"].all()
    assert canary_shift(vad, prompt="missing").empty


def test_summary_has_quantiles_with_intervals_and_first_turn_separately():
    turns = pd.DataFrame(
        {
            "setting": ["x"] * 21,
            "first_turn": [True] + [False] * 20,
            "voice_to_voice_ms": [999.0] + list(range(100, 300, 10)),
        }
    )
    s = summarize_latency(turns, by=["setting"], metrics=["voice_to_voice_ms"])
    pd.testing.assert_frame_equal(summarize_latency(turns, by="setting", metrics=["voice_to_voice_ms"]), s)
    rest = s[s.turns == "rest"].iloc[0]
    assert rest.n == 20 and rest.p50 == pytest.approx(195) and rest.p50_lo <= 195 <= rest.p50_hi
    assert s[s.turns == "first"].iloc[0].p50 == 999
    together = summarize_latency(
        turns, by=["setting"], metrics=["voice_to_voice_ms"], first_turn_separately=False
    )
    assert "turns" not in together and together.n.tolist() == [21]
    est, lo, hi = bootstrap_ci([1.0], 0.5)
    assert est == 1 and math.isnan(lo) and math.isnan(hi)


@pytest.mark.parametrize(("confidence", "low", "high"), [(0.5, 0.4, 0.6), (0.95, 0.88, 0.99)])
def test_bootstrap_intervals_hold_the_true_median_about_as_often_as_their_confidence(confidence, low, high):
    import numpy as np

    samples = np.random.default_rng(7).normal(0.0, 1.0, (300, 51))  # the true median is 0
    intervals = [bootstrap_ci(x, 0.5, n_boot=400, confidence=confidence, seed=1)[1:] for x in samples]
    coverage = np.mean([lo <= 0.0 <= hi for lo, hi in intervals])
    assert low <= coverage <= high  # the percentile bootstrap of a median runs a little short


def test_detections_from_events_pairs_starts_and_stops():
    log = session_start(Log(), sil=500)
    vad_turn(
        log, stopped=2000, audio_end=1500, created=2100, text=None, audio=None, done=2200, start_audio_ms=200
    )
    d = detections_from_events(log.frame())
    assert d.iloc[0].onset_ms == 500 and d.iloc[0].offset_ms == 1000 and bool(d.iloc[0].responded)
    assert json.dumps(d.iloc[0].audio_end_ms)  # plain float
    assert d.iloc[0].offset_earliest_ms == 1000  # no wait for more speech: the offset is exact


def test_a_turn_end_detection_may_hold_leaves_its_speech_end_a_span_as_long_as_its_wait():
    turn = {"stopped": 3000, "audio_end": 2500, "created": 3100, "text": None, "audio": None, "done": 3200}
    eou = {"model": "semantic_detection_v1", "timeout_ms": 1200}
    held = vad_turn(session_start(Log(), sil=500, end_of_utterance_detection=eou), **turn, start_audio_ms=200)
    d = detections_from_events(held.frame()).iloc[0]
    assert (d.offset_earliest_ms, d.offset_ms) == (2500 - 1200, 2000)  # the wait runs from the speech's end
    semantic = vad_turn(session_start(Log(), sil=500, type="azure_semantic_vad"), **turn, start_audio_ms=200)
    d = detections_from_events(semantic.frame()).iloc[0]
    assert d.offset_ms - d.offset_earliest_ms == protocol_limits.EOU_TIMEOUT_MS - 500  # it always may
    given = detections_from_events(
        held.frame(), silence_duration_ms=500, prefix_padding_ms=300, turn_hold_ms=0
    )
    assert given.iloc[0].offset_earliest_ms == 2000
    # speech labelled to 1300: a DER with the span left out has no false alarm after it
    prompt = dataclasses.replace(
        _pause_prompt(), speech_segments=((500, 1300),), hold_spans=(), end_of_turn_ms=(1300,)
    )
    scored = score_prompt(prompt, detections_from_events(held.frame()))
    exact = score_prompt(prompt, detections_from_events(held.frame(), turn_hold_ms=0))
    assert (scored["false_alarm_ms"], exact["false_alarm_ms"]) == (0, 700)


def test_playout_comes_from_the_speakers_playback_notice():
    import pandas as pd

    from vlab.log import record_from_event, to_frame
    from vlab.metrics import turn_latency

    events = [
        (
            "client",
            {"type": "input_audio_buffer.append", "audio": "AAAA" * 2400},
            0,
            {"audio_bytes_per_s": 48000, "input_offset_ms": 0.0},
        ),
        (
            "server",
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 150, "item_id": "u1"},
            200_000_000,
            {},
        ),
        ("server", {"type": "response.created", "response": {"id": "r1"}}, 260_000_000, {}),
        (
            "server",
            {"type": "response.audio.delta", "response_id": "r1", "item_id": "a1", "delta": "AAAA"},
            400_000_000,
            {},
        ),
        ("local", {"type": "vlab.playback_started", "item_id": "a1"}, 445_000_000, {}),
        (
            "server",
            {"type": "response.done", "response": {"id": "r1", "status": "completed"}},
            900_000_000,
            {},
        ),
    ]
    records = [
        record_from_event(e, direction=d, seq=i, t_ns=t, wall_ns=t, **kw)
        for i, (d, e, t, kw) in enumerate(events)
    ]
    turn = turn_latency(to_frame(records), silence_duration_ms=100).iloc[0]
    assert bool(turn["playout_measured"]) and turn["playout_ms"] == pytest.approx(45.0)
    assert turn["t_first_audible_ns"] == 445_000_000  # the first audio delta, then the playout
    parts = turn["endpointing_ms"] + turn["turn_commit_ms"] + turn["ttfb_audio_ms"] + turn["playout_ms"]
    assert turn["voice_to_voice_ms"] == pytest.approx(parts)
    assert isinstance(turn, pd.Series)


def test_output_rate_underruns_barge_in_silence_and_truncation_error():
    from vlab.log import record_from_event, to_frame
    from vlab.metrics import session_latency, turn_latency

    ms = 1_000_000
    events = [
        (
            "client",
            {"type": "input_audio_buffer.append", "audio": "AAAA" * 2400},
            0,
            {"audio_bytes_per_s": 48000, "input_offset_ms": 0.0},
        ),
        (
            "server",
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 150, "item_id": "u1"},
            200 * ms,
            {},
        ),
        ("server", {"type": "response.created", "response": {"id": "r1"}}, 260 * ms, {}),
        # 2 × 100 ms of audio (9600 bytes at 48 000 B/s) arriving 50 ms apart: 4× real time
        (
            "server",
            {"type": "response.audio.delta", "response_id": "r1", "item_id": "a1", "delta": "A" * 6400},
            400 * ms,
            {"audio_bytes_per_s": 48000},
        ),
        (
            "server",
            {"type": "response.audio.delta", "response_id": "r1", "item_id": "a1", "delta": "A" * 6400},
            450 * ms,
            {"audio_bytes_per_s": 48000},
        ),
        ("local", {"type": "vlab.playback_started", "item_id": "a1"}, 440 * ms, {}),
        ("local", {"type": "vlab.underrun", "item_id": "a1"}, 600 * ms, {}),
        (
            "server",
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 900, "item_id": "u2"},
            700 * ms,
            {},
        ),
        (
            "local",
            {
                "type": "vlab.playback_cleared",
                "item_id": "a1",
                "heard_ms": 180.0,
                "silent_from_t_ns": 703 * ms,
            },
            701 * ms,
            {},
        ),
        (
            "client",
            {"type": "conversation.item.truncate", "item_id": "a1", "content_index": 0, "audio_end_ms": 180},
            702 * ms,
            {},
        ),
        ("server", {"type": "response.done", "response": {"id": "r1", "status": "completed"}}, 900 * ms, {}),
    ]
    records = [
        record_from_event(e, direction=d, seq=i, t_ns=t, wall_ns=t, **kw)
        for i, (d, e, t, kw) in enumerate(events)
    ]
    frame = to_frame(records)
    turn = turn_latency(frame, silence_duration_ms=100).iloc[0]
    assert turn["output_rtf"] == pytest.approx(200 / 50) and turn["underruns"] == 1
    session = session_latency(frame).set_index("kind")
    assert session.loc["barge_in_silence", "latency_ms"] == pytest.approx(3.0)
    assert session.loc["truncation_error", "latency_ms"] == pytest.approx(0.0)


def test_leading_silence_is_measured_from_the_reply_audio():
    import numpy as np

    from vlab.metrics import leading_silence_ms

    rate = 24000

    def tone(dbfs: float, ms: int) -> bytes:
        t = np.arange(rate * ms // 1000)
        return (np.sin(t * 2 * np.pi * 300 / rate) * 32768 * 10 ** (dbfs / 20)).astype("<i2").tobytes()

    silence = bytes(2 * int(rate * 0.25))
    assert leading_silence_ms(silence + tone(-12, 100), rate) == pytest.approx(
        250, abs=10
    )  # to the last sound
    assert leading_silence_ms(silence + tone(-40, 1000), rate) == pytest.approx(250, abs=10)
    assert np.isnan(leading_silence_ms(silence + tone(-50, 1000), rate))  # below the -45 dBFS threshold
    assert leading_silence_ms(silence + tone(-50, 1000), rate, threshold_dbfs=-55) == pytest.approx(
        250, abs=10
    )
    assert leading_silence_ms(silence + tone(-12, 100), rate, frame_ms=100) == 200  # frame by frame
    assert np.isnan(leading_silence_ms(bytes(4800), rate))


class _CountingSilero:
    """Silero, counting the frames it runs (the emulator's model, as vad_preview's default)."""

    frames = 0

    def __init__(self) -> None:
        from vlab.audio.vad import SileroModel

        self.model = SileroModel()
        self.sample_rate, self.frame_samples = self.model.sample_rate, self.model.frame_samples

    def probabilities(self, frames):
        _CountingSilero.frames += len(frames)
        return self.model.probabilities(frames)

    def probability(self, frame):
        return self.probabilities(frame[None, :])[0]

    def reset(self) -> None:
        self.model.reset()


def test_vad_preview_equals_each_setting_s_own_vad_and_runs_the_model_once_per_prompt():
    from vlab.audio.vad import SileroModel, StreamingVad, VadParams
    from vlab.prompts import load_prompt_set

    prompts = [p for p in load_prompt_set() if p.id in ("pause_600", "two_turns", "filler_inner")]
    grid = [
        {"threshold": t, "prefix_padding_ms": 300, "silence_duration_ms": s}
        for t in (0.3, 0.7)
        for s in (300, 900)
    ]
    _CountingSilero.frames = 0
    preview = vad_preview(prompts, grid, model_factory=_CountingSilero)

    expected = []  # each setting and prompt through its own StreamingVad: the model runs every time
    for s in grid:
        params = VadParams(**s)
        name = f"thr={s['threshold']:g} pad=300 sil={s['silence_duration_ms']}"
        for p in prompts:
            vad = StreamingVad(params, 16000, model=SileroModel())
            tail = bytes(2 * int(16 * (s["silence_duration_ms"] + 200)))
            events = vad.feed(p.pcm(16000) + tail) + vad.flush()
            starts = [e for e in events if e.kind == "speech_started"]
            stops = [e for e in events if e.kind == "speech_stopped"]
            for start, stop in zip(starts, stops + [None] * (len(starts) - len(stops)), strict=True):
                expected.append(
                    (name, p.id, start.audio_ms, start.speech_ms, stop.audio_ms if stop else None)
                )
    got = [
        (
            r.setting,
            r.prompt,
            r.audio_start_ms,
            r.onset_ms,
            None if math.isnan(r.audio_end_ms) else r.audio_end_ms,
        )
        for r in preview.itertuples()
    ]
    assert got == expected and len(got) >= 2 * len(grid)
    longest = (
        sum(len(p.pcm(16000)) // 2 + 16 * (900 + 200) for p in prompts) / 512
    )  # 16 kHz: 512-sample frames
    assert _CountingSilero.frames == pytest.approx(longest, abs=len(prompts))  # shorter silences: a prefix


def test_rows_of_gives_what_itertuples_gives_and_a_shuffled_frame_measures_as_the_log():
    from vlab.metrics.events import in_log_order, rows_of

    log = session_start(Log()).appends(1000, 100)
    vad_turn(log, stopped=2530, audio_end=1500, created=2600, text=2850, audio=2970, done=3500)
    frame = log.frame()
    columns = ("type", "t_ns", "direction", "item_id", "response_id", "audio_end_ms", "payload")
    fast = list(rows_of(frame, *columns))
    slow = list(frame[list(columns)].itertuples(index=False))
    assert [tuple(map(repr, r)) for r in fast] == [tuple(map(repr, r)) for r in slow]
    assert fast[-1].type == "response.done" and fast[0].item_id is pd.NA  # by name, NA where missing

    assert in_log_order(frame) is frame  # a log's frame is in order: not copied
    shuffled = frame.sample(frac=1.0, random_state=3)
    assert in_log_order(shuffled)["seq"].tolist() == sorted(frame["seq"])
    for measure in (turn_latency, session_latency, detections_from_events):
        pd.testing.assert_frame_equal(measure(shuffled), measure(frame))


def test_a_detection_setting_not_given_comes_from_the_logged_session_else_vlab_s_default():
    from vlab import ServerVad
    from vlab.metrics.events import UNLOGGED_VAD

    default = ServerVad()
    assert (UNLOGGED_VAD.silence_duration_ms, UNLOGGED_VAD.prefix_padding_ms) == (
        default.silence_duration_ms,
        default.prefix_padding_ms,
    )
    turn = {"stopped": 2000, "audio_end": 1500, "created": 2100, "text": None, "audio": None, "done": 2200}
    logged = vad_turn(session_start(Log(), sil=800), **turn, start_audio_ms=200)
    row = detections_from_events(logged.frame(), prefix_padding_ms=100).iloc[0]
    assert (row.onset_ms, row.offset_ms) == (300.0, 700.0)  # the padding given; the silence logged (800 ms)
    unlogged = vad_turn(Log(), **turn, start_audio_ms=200)
    row = detections_from_events(unlogged.frame()).iloc[0]
    assert (row.onset_ms, row.offset_ms) == (
        200.0 + default.prefix_padding_ms,
        1500.0 - default.silence_duration_ms,
    )


def test_the_frontier_ties_and_unmeasured_points_and_the_budgets_include_their_edge():
    from vlab.metrics import cutoff_at_latency

    pts = pd.DataFrame(
        {"dead_air_ms": [300.0, 300.0, math.nan, 250.0], "false_cutoff_rate": [0.2, 0.1, 0.0, math.inf]}
    )
    # the same dead air and fewer cut-offs beats; a point missing either figure is never on it
    assert pareto_front(pts).tolist() == [False, True, False, False]
    assert cutoff_at_latency(pts, budgets_ms=(300.0, 299.0)) == {300.0: 0.1, 299.0: math.inf}


def test_the_frontier_keeps_settings_whose_dead_air_is_the_same_within_a_millisecond():
    # examples/dask_sweep.toml: thr=0.6 sil=500 was 0.4 ms less dead air than thr=0.4 sil=500, with the
    # same cut-off rate, and took the frontier from it; compare calls the two the same
    pts = pd.DataFrame(
        {"dead_air_ms": [1040.718, 1040.318, 842.341, 840.507], "false_cutoff_rate": [0.28, 0.28, 0.44, 0.44]}
    )
    assert pareto_front(pts).tolist() == [True, True, False, True]  # 1.8 ms less is less
    assert not pareto_front(pts.assign(dead_air_ms=[1041.25, 1040.25, 842.341, 840.507]))[0]  # 1 ms is
    # a rate has no such margin: one cut-off fewer in 100 turns is fewer
    rates = pd.DataFrame({"false_starts_per_min": [2.0, 2.0], "missed_turn_rate": [0.10, 0.11]})
    assert pareto_front(rates, x="false_starts_per_min", y="missed_turn_rate").tolist() == [True, False]


def test_the_budget_figures_name_what_a_frame_without_both_figures_lacks():
    from vlab.metrics import cutoff_at_latency, latency_at_cutoff

    turns = pd.DataFrame({"setting": ["a"], "dead_air_ms": [300.0]})  # turns, not operating points
    for figure in (cutoff_at_latency, latency_at_cutoff):
        with pytest.raises(ConfigError, match=r"^expected operating points, .* lacks false_cutoff_rate"):
            figure(turns)


def test_a_turn_detection_the_service_turned_off_or_on_is_reported():
    td = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
    for sent, echoed in ((td, None), (None, td)):
        log = Log()
        log.add(1, "client", {"type": "session.update", "session": {"turn_detection": sent}})
        log.add(9, "server", {"type": "session.updated", "session": {"turn_detection": echoed}})
        assert setting_took_effect(log.frame()) == [f"turn_detection: sent {sent!r}, service has {echoed!r}"]
    off = Log()
    off.add(1, "client", {"type": "session.update", "session": {"turn_detection": None}})
    off.add(9, "server", {"type": "session.updated", "session": {"turn_detection": None}})
    assert setting_took_effect(off.frame()) == []


@pytest.mark.parametrize("analysis", [turn_latency, session_latency, tool_calls])
def test_a_frame_that_is_not_an_event_log_is_refused_with_where_to_get_one(analysis):
    with pytest.raises(ConfigError) as info:
        analysis(pd.DataFrame({"turn": [0], "voice_to_voice_ms": [900.0]}))  # a table of turns, not events
    assert str(info.value) == (
        "expected an event frame, from vlab.load_log(run_dir) or Session.frame(); this frame lacks type, "
        "direction, t_ns (it has turn, voice_to_voice_ms)"
    )


def test_charts_given_the_wrong_table_say_which_one_they_draw():
    from vlab import plots

    turns = pd.DataFrame({f"c{i}": [0] for i in range(9)})  # nine columns: eight shown, then …
    points = "operating points, from vlab.metrics.operating_points or a sweep's points table"
    lacks = "(it has c0, c1, c2, c3, c4, c5, c6, c7, …)"
    for draw, expected in (
        (lambda: plots.pareto(turns), f"expected {points}; this frame lacks setting, dead_air_ms, false_cutoff_rate {lacks}"),
        (lambda: plots.pareto_shift(turns, turns), f"expected {points}; this frame lacks setting, dead_air_ms, false_cutoff_rate {lacks}"),
        (lambda: plots.latency_distributions(turns), "expected turns, from vlab.metrics.turn_latency or a sweep's turns table; this frame lacks dead_air_ms " + lacks),
    ):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            draw()
        assert str(info.value) == expected


def test_each_analysis_given_the_wrong_table_names_the_one_it_takes():
    from vlab.prompts import load_prompt_set

    other = pd.DataFrame({"a": [1]})
    expected = {
        "an event frame, from vlab.load_log(run_dir) or Session.frame(); this frame lacks type, direction, t_ns": (
            lambda: detections_from_events(other), lambda: setting_took_effect(other),
        ),
        "operating points, from vlab.metrics.operating_points; this frame lacks dead_air_ms, false_cutoff_rate": (
            lambda: pareto_front(other),
        ),
        "turns, from vlab.metrics.turn_latency; this frame lacks t_done_ns": (lambda: tokens_used(other),),
        "detections, from vlab.metrics.detections_from_events or vad_preview; this frame lacks onset_ms, "
        "offset_ms, audio_end_ms, responded": (lambda: score_prompt(load_prompt_set()[0], other),),
        "per-run scores, from vlab.metrics.score_prompt or a sweep's scores table; this frame lacks setting, "
        "category, expected_turns, cutoff_turns, holds, holds_cut, missed_turns, responses, dead_air_ms, der": (
            lambda: operating_points(other),
        ),
    }  # fmt: skip
    for message, calls in expected.items():
        for call in calls:
            with pytest.raises(ConfigError) as info:
                call()
            assert str(info.value) == f"expected {message} (it has a)"


def test_every_rate_of_a_point_has_its_wilson_interval_over_what_it_counts():
    from vlab.metrics import wilson_interval

    scores = pd.DataFrame(
        {
            "setting": ["a"] * 3 + ["ptt"] * 3,
            "category": ["pause", "pause", "noise_only"] * 2,
            "expected_turns": [2, 2, 0] * 2,
            "cutoff_turns": [1, 0, 0] * 2,
            "holds": [3, 2, 0] * 2,
            "holds_cut": [2, 1, 0] * 2,
            "missed_turns": [0, 1, 0] * 2,
            "responses": [2, 1, 1] * 2,
            "dead_air_ms": [300.0, 500.0, math.nan] * 2,
            "der": [0.0] * 6,
            "false_starts_per_min": [0.0] * 6,
        }
    )
    p = operating_points(scores, reference="ptt").set_index("setting")
    # 3 of 5 pauses cut; 1 of the 4 labelled turns missed (the noise-only prompt has none)
    for rate, counted, out_of in (("hold_cut_rate", 3, 5), ("missed_turn_rate", 1, 4)):
        lo, hi = p.loc["a", f"{rate}_lo"], p.loc["a", f"{rate}_hi"]
        assert p.loc["a", rate] == counted / out_of, rate
        assert (lo, hi) == wilson_interval(counted, out_of), rate
        assert lo < p.loc["a", rate] < hi, rate
    assert p.loc["ptt", ["hold_cut_rate_lo", "missed_turn_rate_hi"]].isna().all()  # none, by design


def test_bootstrap_ratio_resamples_whole_pairs_and_knows_when_the_ratio_is_unknown():
    from vlab.metrics.summary import bootstrap_ratio

    est, lo, hi = bootstrap_ratio([100, 300, 200, 400], [1, 3, 2, 4])  # every run: 100 tokens per turn
    assert (est, lo, hi) == (100.0, 100.0, 100.0)  # pairs, not sums of separately drawn columns
    est, lo, hi = bootstrap_ratio([1.0, 2.0, 3.0, 10.0], [1, 1, 1, 1])  # a mean
    assert est == 4.0 and 1.0 <= lo < est < hi <= 10.0
    assert bootstrap_ratio([1.0, 2.0], [1, 1]) == bootstrap_ratio([1.0, 2.0], [1, 1])  # seeded
    assert all(math.isnan(v) for v in bootstrap_ratio([5.0, math.nan], [1, 1]))  # a run's count is unknown
    assert all(math.isnan(v) for v in bootstrap_ratio([], []))
    assert all(math.isnan(v) for v in bootstrap_ratio([0.0, 0.0], [0, 0]))
    single = bootstrap_ratio([7.0], [2.0])
    assert single[0] == 3.5 and math.isnan(single[1]) and math.isnan(single[2])


def test_the_tokens_per_turn_and_the_der_of_a_point_have_bootstrap_intervals_over_the_runs():
    scores = pd.DataFrame(
        {
            "setting": ["a"] * 4 + ["b"] * 2,
            "category": ["pause"] * 6,
            "expected_turns": [1, 1, 2, 2, 1, 1],
            **{c: [0] * 6 for c in ("cutoff_turns", "holds", "holds_cut", "missed_turns", "responses")},
            "dead_air_ms": [500.0] * 6,
            "der": [0.1, 0.3, 0.2, math.nan, 0.1, 0.1],
            "false_starts_per_min": [0.0] * 6,
            "total_tokens": [90.0, 110.0, 200.0, 220.0, 100.0, math.nan],
        }
    )
    p = operating_points(scores).set_index("setting")
    a = p.loc["a"]
    assert a["tokens_per_expected_turn"] == 620 / 6
    assert (
        90
        <= a["tokens_per_expected_turn_lo"]
        < a["tokens_per_expected_turn"]
        < a["tokens_per_expected_turn_hi"]
        <= 110
    )
    assert a["der"] == pytest.approx(0.2) and 0.1 <= a["der_lo"] < 0.2 < a["der_hi"] <= 0.3  # NaN left out
    assert p.loc["b", ["tokens_per_expected_turn", "tokens_per_expected_turn_lo"]].isna().all()  # one unknown


def test_summarize_latency_given_another_table_or_a_missing_group_says_what_it_lacks():
    turns = pd.DataFrame({"turn": [0, 1], "first_turn": [True, False], "dead_air_ms": [500.0, 700.0]})
    events = pd.DataFrame({"type": ["session.created"], "direction": ["server"], "t_ns": [0]})
    with pytest.raises(ConfigError, match=r"^expected turns, .*; this frame lacks voice_to_voice_ms, "):
        summarize_latency(events)  # was an empty table, as if no turn had been answered
    with pytest.raises(
        ConfigError, match=r"this frame lacks setting \(it has turn, first_turn, dead_air_ms\)$"
    ):
        summarize_latency(turns, by=["setting"])  # was KeyError: 'setting'
    assert summarize_latency(pd.DataFrame(), by=["setting"]).empty  # no turns at all: an empty table
    assert summarize_latency(turns, metrics=["dead_air_ms"], first_turn_separately=False)["p50"].tolist() == [
        600.0
    ]
