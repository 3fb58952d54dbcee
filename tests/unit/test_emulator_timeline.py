"""The emulator's parts on an injected clock: the scheduler, the input buffer, a response run.

No socket and no wall clock: each test drives simulated time (and, for ``live`` mode, a
:class:`~vlab.clock.ManualClock`) and checks what happens at which simulated time.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import math
from typing import Any

import numpy as np
import pytest

from vlab import protocol
from vlab.audio.vad import EnergyModel
from vlab.clock import ManualClock, VirtualClock
from vlab.emulator import reply_length, session_config
from vlab.emulator.input_buffer import InputBuffer
from vlab.emulator.items import Conversation
from vlab.emulator.latency import LatencySampler, preset
from vlab.emulator.replies import Reply
from vlab.emulator.response_run import AUDIO_TOKENS_PER_S, ResponseRun
from vlab.emulator.timeline import Scheduler
from vlab.emulator.wire import WireError


async def _scheduler(
    speed: float = math.inf, mode: str = protocol.TIMELINE_INPUT, clock: Any = None
) -> Scheduler:
    sched = Scheduler(speed, clock or ManualClock())
    sched.set_mode(mode)
    sched.start()
    return sched


async def test_steps_run_in_order_of_simulated_time_not_of_scheduling():
    sched = await _scheduler()
    ran: list[tuple[str, float]] = []

    def step(name: str):
        async def body() -> None:
            ran.append((name, sched.now_ms))

        return body

    assert sched.now_ms == 0.0
    sched.spawn(300, step("late"))
    sched.spawn(100, step("early"))
    sched.spawn(100, step("early, scheduled second"))
    sched.spawn(0, step("at once"))
    sched.input_decided(1000)
    await sched.idle()
    assert ran == [("at once", 0), ("early", 100), ("early, scheduled second", 100), ("late", 300)]
    await sched.close()


async def test_input_mode_runs_nothing_the_audio_has_not_reached():
    sched = await _scheduler()
    ran: list[float] = []
    reached_499 = asyncio.Event()

    async def body() -> None:
        ran.append(sched.now_ms)

    async def mark() -> None:
        reached_499.set()

    sched.spawn(500, body)
    sched.spawn(499, mark)
    sched.input_decided(499)
    await reached_499.wait()  # everything up to 499 ms has run; the step at 500 must not have
    assert ran == []
    sched.input_decided(500)
    await sched.idle()
    assert ran == [500]
    await sched.close()


async def test_ended_mode_at_max_speed_runs_everything_without_input():
    sched = await _scheduler(mode=protocol.TIMELINE_ENDED)
    ran: list[float] = []

    async def body() -> None:
        ran.append(sched.now_ms)

    for t in (2000, 1000):
        sched.spawn(t, body)
    await sched.idle()
    assert ran == [1000, 2000]
    await sched.close()


async def test_live_mode_maps_simulated_time_onto_the_wall_clock_at_the_speed():
    start_ns = 7_000_000_000  # simulated time 0 is wherever the clock stood when the timeline started
    clock = VirtualClock(start_ns=start_ns)
    sched = await _scheduler(speed=4.0, mode=protocol.TIMELINE_LIVE, clock=clock)
    ran: list[tuple[float, int]] = []

    async def body() -> None:
        ran.append((sched.now_ms, clock.monotonic_ns()))

    sched.spawn(400, body)  # 400 simulated ms at speed 4: 100 wall ms
    assert sched.current_ms() == 0  # time runs on from 0, and none has passed yet
    await clock.wait_for_sleepers()
    assert clock.next_deadline_ns() == start_ns + 100_000_000
    clock.advance_ns(99_000_000)
    await asyncio.sleep(0)  # wall-clock ok: one loop turn, no time passes (lets the posted callback run)
    assert ran == [] and sched.current_ms() == pytest.approx(396)
    clock.advance_ns(1_000_000)
    await sched.idle()
    assert ran == [(400, start_ns + 100_000_000)]
    await sched.close()


async def test_a_hurried_process_runs_next_and_a_capped_step_waits_for_the_cap():
    sched = await _scheduler(mode=protocol.TIMELINE_ENDED)
    log: list[tuple[str, float]] = []
    woken = asyncio.Event()
    wake_holder: dict[str, Any] = {}

    async def slow_process() -> None:
        wake = sched.wake_at(5000)
        wake_holder["wake"] = wake
        await sched.sleep(wake)
        log.append(("woken", sched.now_ms))
        woken.set()

    async def canceller() -> None:
        log.append(("cancel", sched.now_ms))
        sched.hurry(wake_holder["wake"])

    sched.set_cap(100)
    sched.spawn(0, slow_process)
    sched.spawn(50, canceller)
    sched.spawn(200, canceller)  # after the cap: waits until it is lifted
    await woken.wait()
    assert log == [("cancel", 50), ("woken", 50)]  # moved from 5000 ms to the cancel's time
    sched.set_cap(math.inf)
    await sched.idle()
    assert log[-1] == ("cancel", 200)
    await sched.close()


def _logged_step(sched: Scheduler, log: list[tuple[str, float]], name: str, then: Any = None) -> Any:
    """A step that logs ``name`` at its simulated time, then calls ``then``."""

    async def body() -> None:
        log.append((name, sched.now_ms))
        if then is not None:
            then()

    return body


async def test_an_unanswered_function_call_holds_time_and_the_client_s_answer_happens_at_its_end():
    sched = await _scheduler()
    log: list[tuple[str, float]] = []

    step = functools.partial(_logged_step, sched, log)
    done = asyncio.Event()
    sched.spawn(1000, step("call done", lambda: (sched.wait_for_client(), done.set())))
    sched.spawn(2500, step("next turn's speech_started"))
    sched.input_decided(4000)  # the client has sent all its audio, and more than the call
    await done.wait()
    assert sched.horizon_ms() == 1000 and log == [("call done", 1000)]  # the later step waits
    assert sched.input_position_ms() == 1000  # what the client sends now happens at the call's end

    ahead = asyncio.ensure_future(sched.client_step(4000, step("sent before the answer, at 4000 ms")))
    await ahead  # returns at once, held: the answer comes behind it on the wire
    answer = sched.client_step(sched.input_position_ms(), step("response.create", sched.client_answered))
    await answer
    await sched.idle()
    assert log == [
        ("call done", 1000),
        ("response.create", 1000),
        ("next turn's speech_started", 2500),
        ("sent before the answer, at 4000 ms", 4000),
    ]
    assert sched.input_position_ms() == 4000
    await sched.close()


async def test_a_function_s_simulated_run_lets_time_run_to_its_end_and_its_output_happens_there():
    sched = await _scheduler()
    log: list[tuple[str, float]] = []

    step = functools.partial(_logged_step, sched, log)
    done = asyncio.Event()
    sched.spawn(1000, step("call done", lambda: (sched.wait_for_client(), done.set())))
    sched.spawn(1300, step("the user speaks while it runs"))
    sched.spawn(2500, step("later words"))
    sched.input_decided(1500)  # the client's audio so far: short of the function's end (speed 1)
    await done.wait()
    assert sched.client_ran(800) == 1800  # the output, 800 ms after the call
    assert sched.client_ran(300) == 1300  # another of its calls, in parallel: ready earlier
    output = sched.client_step(1800, step("function_call_output"))
    await output  # returns at once: it waits for audio the client has not sent yet
    assert sched.input_position_ms() == 1800  # nothing the client sends now happens before the output
    await sched.client_step(sched.input_position_ms(), step("response.create", sched.client_answered))
    sched.input_decided(4000)  # the rest of the audio
    await sched.idle()
    assert log == [
        ("call done", 1000),
        ("the user speaks while it runs", 1300),
        ("function_call_output", 1800),
        ("response.create", 1800),
        ("later words", 2500),
    ]
    assert sched.client_ran(500) is None  # nothing holds time: an output happens when it arrives
    await sched.close()


async def test_a_process_handed_the_turn_goes_on_at_its_predecessor_s_end_before_any_later_step():
    sched = await _scheduler()
    log: list[tuple[str, float]] = []
    handed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def predecessor() -> None:
        await sched.at(1000)
        log.append(("predecessor ends", sched.now_ms))
        handed.set_result(sched.wake_at(sched.now_ms))

    async def successor() -> None:
        await sched.handed(handed)
        log.append(("successor goes on", sched.now_ms))

    async def later() -> None:
        log.append(("a later step", sched.now_ms))

    sched.spawn(0, predecessor)
    sched.spawn(500, successor)
    sched.spawn(1500, later)
    sched.input_decided(4000)  # everything may run by the timeline
    await sched.idle()
    assert log == [("predecessor ends", 1000), ("successor goes on", 1000), ("a later step", 1500)]
    await sched.close()


async def test_a_function_call_holds_time_only_on_the_input_timeline_and_ending_the_input_lifts_it():
    live = await _scheduler(mode=protocol.TIMELINE_ENDED)
    live.wait_for_client()  # a client that paces itself answers when it answers
    assert live.client_cap_ms == math.inf
    await live.close()

    sched = await _scheduler()
    sched.wait_for_client()
    assert sched.client_cap_ms == 0
    sched.set_mode(protocol.TIMELINE_INPUT)  # the client's sync: still held
    assert sched.client_cap_ms == 0
    sched.set_mode(protocol.TIMELINE_ENDED)  # a client that does not answer calls: its input is over
    assert sched.client_cap_ms == math.inf
    await sched.close()


@pytest.mark.parametrize("mode", [protocol.TIMELINE_INPUT, protocol.TIMELINE_ENDED])
async def test_an_answer_from_outside_the_timeline_lands_at_its_step_s_time_however_long_it_took(mode):
    sched = await _scheduler(mode=mode)
    log: list[tuple[str, float]] = []
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    waiting = asyncio.Event()

    async def mcp_call() -> None:
        waiting.set()
        output = await sched.wait_outside(answer)  # an MCP server's answer: wall time, no simulated time
        log.append((output, sched.now_ms))

    async def later() -> None:
        log.append(("the next step", sched.now_ms))

    sched.spawn(1000, mcp_call)
    sched.spawn(1500, later)
    sched.input_decided(4000)  # the client's audio is all there: nothing else holds time
    await waiting.wait()
    assert sched.horizon_ms() >= 1500  # the later step may run by the timeline, yet it waits its turn
    answer.set_result("the server's answer")
    await sched.idle()
    assert log == [("the server's answer", 1000), ("the next step", 1500)]
    await sched.close()


async def test_in_live_mode_time_runs_on_while_an_outside_answer_is_awaited():
    clock = VirtualClock()
    sched = await _scheduler(speed=1.0, mode=protocol.TIMELINE_LIVE, clock=clock)
    log: list[tuple[str, float]] = []
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    later_ran = asyncio.Event()

    async def mcp_call() -> None:
        log.append((await sched.wait_outside(answer), sched.now_ms))

    async def later() -> None:
        log.append(("the next step", sched.now_ms))
        later_ran.set()

    sched.spawn(0, mcp_call)
    sched.spawn(100, later)
    await clock.wait_for_sleepers()
    clock.advance_ns(100_000_000)
    await later_ran.wait()  # the call gave the turn back: the step at 100 ms ran meanwhile, as on the service
    answer.set_result("the server's answer")
    await sched.idle()
    assert log == [("the next step", 100), ("the server's answer", 100)]
    await sched.close()


# --- the input buffer ---------------------------------------------------------------------------------


class _Turns:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, float]] = []
        self.audio: dict[str, bytes] = {}

    def speech_started(self, item_id: str, audio_start_ms: int, at_ms: float) -> None:
        self.events.append(("started", item_id, audio_start_ms, at_ms))

    def speech_stopped(self, item_id: str, audio_end_ms: int, audio: bytes, at_ms: float) -> None:
        self.events.append(("stopped", item_id, audio_end_ms, at_ms))
        self.audio[item_id] = audio


def _tone(ms: int, rate: int = 24000, level: float = 0.3) -> bytes:
    t = np.arange(int(rate * ms / 1000)) / rate
    return (np.sin(2 * np.pi * 220 * t) * level * 32767).astype("<i2").tobytes()


def _silence(ms: int, rate: int = 24000) -> bytes:
    return bytes(2 * int(rate * ms / 1000))


def _b64(pcm: bytes) -> str:
    import base64

    return base64.b64encode(pcm).decode()


def _input_buffer(sched: Scheduler, turns: _Turns) -> InputBuffer:
    """An input buffer on the energy VAD, without end-of-utterance detection."""
    return InputBuffer(
        scheduler=sched,
        listener=turns,
        recognizer=None,  # type: ignore[arg-type]  # no end-of-utterance detection here
        vad_model=lambda: EnergyModel(16000),
        trace=lambda **entry: None,
        spawn=asyncio.ensure_future,
    )


def _vad_session(**server_vad: int) -> dict[str, Any]:
    """The emulator's default session, its server VAD changed by ``server_vad``."""
    session = session_config.default_session("s", "gpt-realtime", "2025-10-01", created_s=0)
    return {**session, "turn_detection": {**session["turn_detection"], **server_vad}}


def _session_without_turn_detection() -> dict[str, Any]:
    """The emulator's default session with ``turn_detection`` null: turns are the client's commits."""
    session = session_config.default_session("s", "gpt-realtime", "2025-10-01", created_s=0)
    return {**session, "turn_detection": None}


async def test_input_buffer_reports_turns_at_the_audio_position_they_were_decided():
    sched = await _scheduler()
    turns = _Turns()
    buffer = _input_buffer(sched, turns)
    buffer.configure(_vad_session(silence_duration_ms=300, prefix_padding_ms=100), "2025-10-01")
    audio = _silence(500) + _tone(1000) + _silence(800)
    for start in range(0, len(audio), 960):  # 20 ms chunks
        buffer.append(_b64(audio[start : start + 960]), None)
    await buffer.settle()
    (started, item, start_ms, started_at), (stopped, same_item, end_ms, stopped_at) = turns.events
    assert (started, stopped, same_item) == ("started", "stopped", item)
    assert start_ms == pytest.approx(400, abs=40)  # onset 500 ms minus 100 ms of prefix padding
    assert end_ms == pytest.approx(1800, abs=40)  # speech end 1500 ms plus 300 ms of silence
    assert 500 <= started_at <= 600 and stopped_at == pytest.approx(end_ms, abs=40)
    assert len(turns.audio[item]) == pytest.approx(2 * 24 * (end_ms - start_ms), abs=4 * 24)
    assert sched.input_ms == pytest.approx(2300, abs=40)  # told the scheduler how far the audio is decided
    rest_id, rest = buffer.commit(None)  # the turn took its audio: the silence after it is left
    assert rest_id != item and len(rest) == pytest.approx(2 * 24 * (2300 - end_ms), abs=4 * 24)
    with pytest.raises(WireError, match="buffer too small"):
        buffer.commit(None)
    buffer.close()
    await sched.close()


async def test_a_turn_s_prefix_padding_never_reaches_back_before_the_previous_turn_s_end():
    sched = await _scheduler()
    turns = _Turns()
    buffer = _input_buffer(sched, turns)
    buffer.configure(_vad_session(silence_duration_ms=200, prefix_padding_ms=1000), "2025-10-01")
    audio = _silence(1500) + _tone(600) + _silence(400) + _tone(600) + _silence(600)
    for start in range(0, len(audio), 960):  # 20 ms chunks
        buffer.append(_b64(audio[start : start + 960]), None)
    await buffer.settle()
    kinds = [event[0] for event in turns.events]
    assert kinds == ["started", "stopped", "started", "stopped"]
    (_, first, start_1, _), (_, _, end_1, _), (_, second, start_2, _), (_, _, end_2, _) = turns.events
    assert start_1 == pytest.approx(500, abs=40)  # onset 1500 ms minus 1000 ms of padding
    assert end_1 == pytest.approx(2300, abs=40)  # speech end 2100 ms plus 200 ms of silence
    assert start_2 == end_1  # onset 2500 ms minus 1000 would be 1500: clamped to the previous end
    assert len(turns.audio[second]) == pytest.approx(2 * 24 * (end_2 - start_2), abs=4 * 24)
    buffer.close()
    await sched.close()


async def test_input_buffer_keeps_an_odd_byte_for_the_next_append_and_the_position_across_rates():
    sched = await _scheduler()
    buffer = _input_buffer(sched, _Turns())
    session = _session_without_turn_detection()
    buffer.configure(session, "2025-10-01")
    pcm = bytes(range(1, 201)) * 24  # 4800 bytes: 100 ms at 24 kHz
    cuts = (0, 7, 2400, 4799, 4800)  # appends of 7, 2393, 2399 and 1 bytes: an odd one waits for the next
    for a, b in zip(cuts, cuts[1:], strict=False):
        buffer.append(_b64(pcm[a:b]), None)
    item_id, audio = buffer.commit(None)
    assert audio == pcm and buffer.position_ms == 100  # not a byte lost or moved
    buffer.configure({**session, "input_audio_sampling_rate": 16000}, "2025-10-01")
    buffer.append(_b64(bytes(3200)), None)  # 100 ms at 16 kHz
    assert buffer.position_ms == 200 and buffer.pending_ms == 100
    buffer.close()
    await sched.close()


async def test_without_turn_detection_the_timeline_takes_the_audio_as_it_arrives():
    """Nothing to decide: a commit after 700 ms of audio happens at 700 ms, as the client's audio clock says."""
    sched = await _scheduler()
    buffer = _input_buffer(sched, _Turns())
    buffer.configure(_session_without_turn_detection(), "2025-10-01")
    ran: list[float] = []

    async def at_commit() -> None:
        ran.append(sched.now_ms)

    sched.spawn(700, at_commit)
    buffer.append(_b64(_tone(400)), None)
    assert sched.current_ms() == 400
    buffer.append(_b64(_silence(300)), None)
    await sched.idle()
    assert ran == [700] and sched.current_ms() == 700
    buffer.close()
    await sched.close()


async def test_a_whole_wav_file_sent_as_audio_gives_its_samples_at_the_session_rate():
    import io

    import soundfile as sf

    sched = await _scheduler()
    buffer = _input_buffer(sched, _Turns())
    buffer.configure(_session_without_turn_detection(), "2025-10-01")
    wav = io.BytesIO()
    sf.write(wav, np.frombuffer(_tone(500, 16000), "<i2"), 16000, format="WAV", subtype="PCM_16")
    buffer.append(_b64(wav.getvalue()), None)  # as the SDK's own tests send audio
    _, audio = buffer.commit(None)
    assert len(audio) == 2 * 12000  # 500 ms at 24 kHz: the header is not audio
    assert np.abs(np.frombuffer(audio, "<i2")).max() == pytest.approx(0.3 * 32767, rel=0.02)
    buffer.close()
    await sched.close()


async def test_a_turn_that_starts_soon_after_one_stopped_starts_no_earlier_than_its_end():
    sched = await _scheduler()
    turns = _Turns()
    buffer = _input_buffer(sched, turns)
    buffer.configure(_vad_session(silence_duration_ms=200, prefix_padding_ms=300), "2025-10-01")
    buffer.append(_b64(_silence(500) + _tone(600) + _silence(350) + _tone(600) + _silence(600)), None)
    await buffer.settle()
    kinds = [(kind, ms) for kind, _, ms, _ in turns.events]
    assert [kind for kind, _ in kinds] == ["started", "stopped", "started", "stopped"]
    assert kinds[2][1] == kinds[1][1]  # the padding would reach into the first turn: it starts at its end
    buffer.close()
    await sched.close()


# --- a response run -----------------------------------------------------------------------------------


class _Host:
    """The narrow outbox a response needs, recording what it sends and when."""

    def __init__(self, sched: Scheduler) -> None:
        self.scheduler = sched
        self.sampler = LatencySampler(preset("typical", seed=3))
        self.conversation = Conversation()
        self.session = session_config.default_session("s", "gpt-realtime", "2025-10-01", created_s=0)
        self.sent: list[tuple[str, float]] = []
        self.events: list[dict[str, Any]] = []
        self.traced: list[dict[str, Any]] = []
        self.audio_started = False

    async def send(self, event: dict[str, Any]) -> None:
        self.sent.append((event["type"], self.scheduler.now_ms))
        self.events.append(event)

    def trace_add(self, **entry: Any) -> None:
        self.traced.append(entry)

    def mark_audio_started(self) -> None:
        self.audio_started = True

    def played(self, audio: bytes, audio_format: str, at_ms: float) -> None:
        pass


def _run(host: _Host, text: str) -> ResponseRun:
    run = ResponseRun(host, Reply(text), modalities=["text", "audio"], voice="alloy", output_format="pcm16")
    run.task = host.scheduler.spawn(1000, run.run)
    return run


async def test_a_response_sends_each_event_at_its_modelled_simulated_time():
    sched = await _scheduler(mode=protocol.TIMELINE_ENDED)
    host = _Host(sched)
    run = _run(host, "Hello there.")
    await run.task
    (drawn,) = [e for e in host.traced if e["kind"] == "latency"]
    times = dict(reversed(host.sent))  # first time of each type
    created = 1000 + drawn["commit_ms"] + drawn["network_ms"]
    assert times["response.created"] == pytest.approx(created)
    assert times["response.audio_transcript.delta"] == pytest.approx(created + drawn["first_token_ms"])
    first_audio = created + drawn["first_token_ms"] + drawn["tts_first_byte_ms"]
    assert times["response.audio.delta"] == pytest.approx(first_audio)
    assert [t for t, _ in host.sent][-1] == "response.done" and host.audio_started
    (item,) = list(host.conversation)
    assert item.role == "assistant" and item.audio_bytes > 0 and item.words
    await sched.close()


async def test_a_cancelled_response_ends_at_the_cancel_and_reports_what_was_heard():
    text = "This reply is long enough to be cut off in the middle of a sentence."
    first_audio = await _first_audio_time(text)  # an identical response, seeded alike, run to the end
    sched = await _scheduler(mode=protocol.TIMELINE_ENDED)
    host = _Host(sched)
    run = _run(host, text)
    cut_at: list[float] = []

    async def barge_in() -> None:
        cut_at.extend([sched.now_ms, run.played_ms()])
        run.cancel("turn_detected")

    sched.spawn(first_audio + 250, barge_in)
    await run.task
    done_at = dict(reversed(host.sent))["response.done"]
    assert done_at == pytest.approx(cut_at[0])  # it ends at the cancel, not when the audio would have
    assert cut_at[1] == pytest.approx(250)  # 250 simulated ms of audio heard since the first delta
    assert run.status == "cancelled"
    await sched.close()


async def test_a_response_cancelled_before_it_was_created_is_created_then_done():
    sched = await _scheduler(mode=protocol.TIMELINE_ENDED)
    host = _Host(sched)
    run = _run(host, "Hello there.")

    async def cancel() -> None:
        run.cancel("client_cancelled")

    sched.spawn(1001, cancel)  # before the commit delay has passed
    await run.task
    assert [kind for kind, _ in host.sent] == ["response.created", "response.done"]
    assert host.events[-1]["response"]["status"] == "cancelled"
    assert host.events[-1]["response"]["usage"]["output_token_details"] == {
        "text_tokens": 0,
        "audio_tokens": 0,
    }
    assert host.events[-1]["response"]["status_details"] == {
        "type": "cancelled",
        "reason": "client_cancelled",
    }
    await sched.close()


async def test_the_usage_counts_the_words_and_the_audio_sent_and_adds_up():
    sched = await _scheduler(mode=protocol.TIMELINE_ENDED)
    host = _Host(sched)
    text = "Hello there, how are you today?"
    await _run(host, text).task
    (done,) = [e for e in host.events if e["type"] == "response.done"]
    assert [kind for kind, _ in host.sent].count("response.created") == 1
    audio_ms = (
        sum(len(base64.b64decode(e["delta"])) for e in host.events if e["type"] == "response.audio.delta")
        / 48
    )
    assert audio_ms > 1000  # 24 kHz pcm16: 48 bytes a ms
    usage = done["response"]["usage"]
    out, into = usage["output_token_details"], usage["input_token_details"]
    assert out == {
        "text_tokens": int(len(text.split()) * reply_length.TOKENS_PER_WORD),
        "audio_tokens": int(audio_ms * AUDIO_TOKENS_PER_S / 1000),
    }
    assert usage["output_tokens"] == out["text_tokens"] + out["audio_tokens"]
    assert usage["input_tokens"] == into["text_tokens"] + into["audio_tokens"] + into["cached_tokens"]
    assert into["cached_tokens"] == 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    await sched.close()


async def _first_audio_time(text: str) -> float:
    sched = await _scheduler(mode=protocol.TIMELINE_ENDED)
    host = _Host(sched)
    run = _run(host, text)
    await run.task
    await sched.close()
    return dict(reversed(host.sent))["response.audio.delta"]
