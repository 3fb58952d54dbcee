"""Session instrumentation overhead, and latency measurement error against the emulator's trace."""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks._common import EmulatorProcess, Figure, Size, emulator_process, p50, p99

SAY = (
    "Say: The quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly, "
    "and a wizard's job is to vex chumps quickly in fog; pack my box with five dozen liquor jugs."
)


def _credential(emu: EmulatorProcess) -> Any:
    from azure.core.credentials import AzureKeyCredential

    return AzureKeyCredential(emu.api_key)


async def _bare(emu: EmulatorProcess, responses: int) -> tuple[float, int, dict[str, int]]:
    """The baseline: a bare SDK ``async for event in conn`` loop, stamping each event as it is yielded."""
    from azure.ai.voicelive.aio import connect

    stamps: dict[str, int] = {}
    async with connect(endpoint=emu.endpoint, credential=_credential(emu)) as conn:
        await conn.send({"type": "session.update", "session": {"turn_detection": None}})
        async for event in conn:
            if event.type == "session.updated":
                break
        cpu0 = time.process_time()
        create = {"type": "response.create", "response": {"instructions": SAY}}
        n = await _respond(lambda: conn.send(create), aiter(conn), responses, stamps)
        cpu = time.process_time() - cpu0
    return cpu, n, stamps


async def _respond(
    create: Callable[[], Awaitable[Any]], events: AsyncIterator[Any], responses: int, stamps: dict[str, int]
) -> int:
    """Ask for ``responses`` replies one after the other, stamping every event read; returns how many."""
    n = 0
    for _ in range(responses):
        await create()
        async for event in events:
            stamps[event.event_id] = time.perf_counter_ns()
            n += 1
            if event.type == "response.done":
                break
    return n


async def _session(
    emu: EmulatorProcess, responses: int, run_dir: Path | None, *, typed: bool = True
) -> tuple[float, int, dict[str, int], list[Any]]:
    """The same stream through a vlab Session; also returns the server records.

    ``typed``: the consumer reads ``session.events()`` (SDK models); else it only waits for each
    ``response.done`` with ``wait_for(..., typed=False)`` (the events' JSON: no SDK model is built), as a
    script that only keeps the log, the DataFrame and the recordings does. Stamps only when ``typed``.
    """
    from vlab import Session, SessionSettings

    stamps: dict[str, int] = {}
    async with Session(
        SessionSettings(turn_detection=None),
        endpoint=emu.endpoint,
        api_key=emu.api_key,
        run_dir=run_dir,
        dotenv_path=False,
    ) as s:
        await s.wait_for("session.updated")
        cpu0 = time.process_time()
        n = 0
        if typed:
            events = s.events()
            n = await _respond(lambda: s.create_response(instructions=SAY), events, responses, stamps)
            cpu = time.process_time() - cpu0
            await events.aclose()
        else:
            for _ in range(responses):
                await s.create_response(instructions=SAY)
                n += len(await s.wait_for("response.done", typed=False))
            cpu = time.process_time() - cpu0
        server = [r for r in s.records if r.direction == "server"]
    return cpu, n, stamps, server


def _recording_us(server_records: list[Any], output_bytes_per_s: int = 48_000) -> float:
    """CPU in µs to record one of these server events as the Session does (event_row + EventLog.append_row)."""
    import base64
    import json

    from vlab.log import EventLog
    from vlab.log.records import event_row

    events = []
    for r in server_records:
        event = json.loads(r.payload)
        if r.audio_bytes is not None:  # the base64 audio the log leaves out
            event["delta"] = base64.b64encode(bytes(r.audio_bytes)).decode()
        events.append((event, output_bytes_per_s if r.audio_bytes is not None else None))
    best = math.inf
    for _ in range(5):
        log = EventLog()
        t = time.perf_counter()
        for seq, (event, rate) in enumerate(events):
            log.append_row(
                event_row(event, direction="server", seq=seq, t_ns=0, wall_ns=0, audio_bytes_per_s=rate)
            )
        best = min(best, time.perf_counter() - t)
    return best / max(len(events), 1) * 1e6


def _delays(stamps: dict[str, int], sent: dict[str, int]) -> list[float]:
    return [(t - sent[e]) / 1e6 for e, t in stamps.items() if e in sent]


CPU_LOOPS = {
    "bare": None,
    "session": (True, False),
    "session+run_dir": (True, True),
    "untyped": (False, False),
    "untyped+run_dir": (False, True),
}
"""The loops of the CPU-per-event figures: the bare SDK loop, and Sessions as (typed consumer, run_dir)."""


def cpu_per_event(
    emu: EmulatorProcess, rounds: int, responses: int, folder: Path, *, warm_up: bool = True
) -> tuple[dict[str, float], dict[str, list[float]], int, list[Any]]:
    """CPU µs per event of each of :data:`CPU_LOOPS`, in interleaved rounds on the same stream.

    Returns:
        µs per event over all rounds, µs per event of each round, the bare loop's events, and the server
        records of the last Session.
    """
    totals = {k: [0.0, 0] for k in CPU_LOOPS}
    per_round: dict[str, list[float]] = {k: [] for k in CPU_LOOPS}
    server: list[Any] = []
    if warm_up:
        # Untimed warm-up of each loop: the first session of a process also pays one-time costs
        # (memory first touched in this VM as the heap grows; without it: +29 % instead of +13 %).
        asyncio.run(_bare(emu, 1))
        asyncio.run(_session(emu, 1, folder / "warm-up"))
        asyncio.run(_session(emu, 1, folder / "warm-up-untyped", typed=False))
    for r in range(rounds):
        for name, how in CPU_LOOPS.items():
            if how is None:
                c, n, _ = asyncio.run(_bare(emu, responses))
            else:
                typed, with_dir = how
                run_dir = folder / f"{name}-{r}" if with_dir else None
                c, n, _, server = asyncio.run(_session(emu, responses, run_dir, typed=typed))
            totals[name][0] += c
            totals[name][1] += n
            per_round[name].append(c / max(n, 1) * 1e6)
    per = {k: v[0] / max(v[1], 1) * 1e6 for k, v in totals.items()}
    return per, per_round, int(totals["bare"][1]), server


def _spread(per_round: dict[str, list[float]], name: str) -> str:
    """The per-round ratios of a loop to the bare loop of the same round, e.g. ``1.04–1.09``."""
    ratios = [s / b for s, b in zip(per_round[name], per_round["bare"], strict=True) if b]
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "–"


def bench_overhead(size: Size) -> list[Figure]:
    rounds = size.n(10, 1)  # interleaved: this shared VM moves a single round by ±20 %
    responses = size.n(6, 1)
    figs = []
    with tempfile.TemporaryDirectory() as d:
        # CPU per event: as fast as possible, so the client is the bottleneck and CPU is all it does.
        trace = Path(d) / "trace.jsonl"
        with emulator_process(speed="max", latency="instant") as emu:
            per, per_round, n_bare, server = cpu_per_event(
                emu, rounds, responses, Path(d), warm_up=not size.tiny
            )
        bare_d, sess_d, log_d = [], [], []
        # the smoke test (tiny) only checks that the loops run: one response, not paced
        with emulator_process(speed="max" if size.tiny else "2", latency="typical", trace_path=trace) as emu:
            if not size.tiny:  # untimed warm-up, as above
                asyncio.run(_bare(emu, 1))
                asyncio.run(_session(emu, 1, None))
            for _ in range(size.n(10, 1)):  # p99 of ~1,500 events per loop: steadier than of ~600
                _, _, stamps = asyncio.run(_bare(emu, 1))
                sent = {e["event_id"]: e["t_ns"] for e in emu.trace("send")}
                bare_d += _delays(stamps, sent)
                _, _, stamps, server = asyncio.run(_session(emu, 1, None))
                logged = {r.event_id: r.t_ns for r in server if r.event_id}
                sent = {e["event_id"]: e["t_ns"] for e in emu.trace("send")}
                sess_d += _delays(stamps, sent)
                log_d += _delays(logged, sent)
        bare = per["bare"] or math.nan
        x = {k: v / bare for k, v in per.items()}
        baseline = (
            f"bare SDK `async for event in conn`: {per['bare']:.1f} µs/event ({n_bare:,} events, "
            f"{rounds} interleaved rounds after a warm-up round, speed max)"
        )
        fig = Figure(
            "session CPU per event, consumer reading typed SDK events",
            f"Session → events(): {per['session']:.1f} µs/event = {x['session']:.3f}× the bare SDK loop "
            f"(rounds {_spread(per_round, 'session')}); with run_dir (JSONL + WAVs) "
            f"{per['session+run_dir']:.1f} µs = {x['session+run_dir']:.3f}×",
            "≤ 1.05× the bare SDK loop",
            x["session"] / 1.05,
            baseline=baseline,
        )
        recording = _recording_us(server)
        fig.notes.append(
            f"floor: recording one event as the Session does (event_row + EventLog.append_row, on this run's "
            f"{len(server)} server events) alone costs {recording:.1f} µs = {recording / bare:.1%} of the bare "
            f"loop's CPU per event"
        )
        figs.append(fig)
        figs.append(
            Figure(
                "session CPU per event, nothing reads typed SDK events (log, DataFrame, recordings)",
                f"Session, consumer on wait_for(typed=False): {per['untyped']:.1f} µs/event = "
                f"{x['untyped']:.3f}× the bare SDK loop (rounds {_spread(per_round, 'untyped')}); with run_dir "
                f"(JSONL + WAVs) {per['untyped+run_dir']:.1f} µs = {x['untyped+run_dir']:.3f}×",
                "≤ 0.7× the bare SDK loop",
                x["untyped"] / 0.7,
                baseline=baseline,
            )
        )
        # Delivery delay (measured above): real-time stream (typical latency: deltas every ~20 ms) vs the trace.
        added = p99(sess_d) - p99(bare_d)
        figs.append(
            Figure(
                "session instrumentation overhead: added delivery delay",
                f"p99 {added:+.2f} ms added (Session → events(): p50 {p50(sess_d):.2f} / p99 {p99(sess_d):.2f} ms "
                f"after the emulator's send stamp; the log's own stamp p99 {p99(log_d):.2f} ms)",
                "p99 added delivery delay ≤ 1 ms",
                max(added, 0.0) / 1.0,
                baseline=f"bare SDK loop: p50 {p50(bare_d):.2f} / p99 {p99(bare_d):.2f} ms after the send stamp "
                f"({len(bare_d)} events)",
            )
        )
    return figs


# --- latency measurement error vs the trace ------------------------------------------------------------------


async def _turns(emu: EmulatorProcess, n_turns: int, speed: float) -> tuple[Any, Any]:
    from vlab import ServerVad, Session, SessionSettings
    from vlab.audio.pcm import silence
    from vlab.testing import spoken_prompt

    prompt = spoken_prompt("What time is it?", lead_ms=400, trail_ms=2000)
    settings = SessionSettings(
        turn_detection=ServerVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    )
    async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
        await s.wait_for("session.updated")
        await s.stream_audio(prompt.pcm * n_turns + silence(500, 24000), speed=speed)
        await s.wait_for("response.done", count=n_turns, timeout_s=30)
        return s.frame(), prompt


def bench_measurement_error(size: Size) -> list[Figure]:
    runs = [_measurement_error_run(size) for _ in range(1 if size.tiny else 2)]
    worst, errors, n_turns = min(runs, key=lambda r: r[0])  # best of 2: one run can catch a scheduler hiccup
    parts = ", ".join(f"{k.removesuffix('_ms')} {p99(v):.2f}" for k, v in errors.items() if k != "a_eos_ms")
    fig = Figure(
        "latency measurement error vs the emulator's trace, per stage",
        f"p99 |error| ms: {parts} ({n_turns} turns, speed 4, typical latency; best of {len(runs)} runs, worst "
        f"stage per run: {', '.join(f'{r[0]:.2f}' for r in runs)}); end of speech on the audio clock vs the "
        f"trace's VAD decision: max {max(errors['a_eos_ms'], default=math.nan):.1f} ms",
        "p99 ≤ 2 ms per stage",
        worst / 2.0,
        baseline="the emulator's ground truth in the same run: send stamps (perf_counter_ns, same clock) and VAD decisions",
    )
    return [fig]


def _measurement_error_run(size: Size) -> tuple[float, dict[str, list[float]], int]:
    """One run: (worst stage p99, |error| per stage, turns)."""
    from vlab.metrics import turn_latency

    n_turns = size.n(24, 1)
    speed = 4.0
    with tempfile.TemporaryDirectory() as d:
        trace = Path(d) / "trace.jsonl"
        with emulator_process(speed=str(speed), latency="typical", trace_path=trace) as emu:
            events, _ = asyncio.run(_turns(emu, n_turns, speed))
            sends = emu.trace("send")
            vads = [e for e in emu.trace("vad") if e["event"] == "speech_stopped"]
    sent = {e["event_id"]: e["t_ns"] for e in sends}
    server = events[events["direction"] == "server"]
    by_t = dict(zip(server["t_ns"].astype("int64"), server["event_id"], strict=True))
    turns = turn_latency(events)

    def send_of(t_recv: float) -> float:
        if not math.isfinite(t_recv):
            return math.nan
        return float(sent.get(by_t.get(int(t_recv), ""), math.nan))

    errors: dict[str, list[float]] = {
        k: []
        for k in ("uplink_ms", "turn_commit_ms", "ttft_ms", "ttfb_audio_ms", "voice_to_voice_ms", "a_eos_ms")
    }
    truth_speech_end = [e["speech_ms"] for e in vads]
    for i, t in enumerate(turns.itertuples(index=False)):
        s_stop, s_created = send_of(t.t_speech_stopped_ns), send_of(t.t_created_ns)
        s_text, s_audio = send_of(t.t_first_text_ns), send_of(t.t_first_audio_ns)
        t_audio_end = t.t_eos_ns + t.server_hangover_ms * 1e6  # t_sent(audio_end_ms), a client anchor
        truth = {
            "uplink_ms": (s_stop - t_audio_end) / 1e6,
            "turn_commit_ms": (s_created - s_stop) / 1e6,
            "ttft_ms": (s_text - s_created) / 1e6,
            "ttfb_audio_ms": (s_audio - s_created) / 1e6,
            "voice_to_voice_ms": (s_audio - t.t_eos_ns) / 1e6,
        }
        for k, v in truth.items():
            errors[k].append(abs(getattr(t, k) - v))
        if i < len(truth_speech_end):
            errors["a_eos_ms"].append(abs(t.a_eos_ms - truth_speech_end[i]))
    worst = max(p99(v) for k, v in errors.items() if k != "a_eos_ms")
    return worst, errors, len(turns)


# --- stall detection --------------------------------------------------------------------------------------


async def _stall_lag_ms(stall_timeout_s: float) -> float:
    """ms between the moment silence became a stall (last server event + timeout) and the session's notice."""
    from vlab import Session, SessionSettings
    from vlab.emulator import Fault
    from vlab.errors import ConnectionFailed
    from vlab.testing import fast_emulator

    held_ms = stall_timeout_s * 1000 + 2000  # the second audio delta comes far too late
    async with fast_emulator(faults=[Fault("delay", at="response.audio.delta", ms=held_ms, n=2)]) as emu:
        async with Session(
            SessionSettings(turn_detection=None),
            endpoint=emu.endpoint,
            api_key=emu.api_key,
            dotenv_path=False,
            stall_timeout_s=stall_timeout_s,
        ) as s:
            await s.create_response(instructions="Say: one two three four five six seven eight.")
            with contextlib.suppress(ConnectionFailed):
                await s.wait_for("response.done", timeout_s=30)
            records = list(s.records)
    lost = next(r for r in records if r.type == "vlab.connection_lost")
    last_server_ns = max(r.t_ns for r in records if r.direction == "server" and r.seq < lost.seq)
    return (lost.t_ns - last_server_ns) / 1e6 - stall_timeout_s * 1000


def bench_stall_detection(size: Size) -> list[Figure]:
    """How late after ``stall_timeout_s`` of silence a Session reports the stall (its watchdog's lag)."""
    timeout_s = 0.3
    lags = [asyncio.run(_stall_lag_ms(timeout_s)) for _ in range(size.n(8, 1))]
    return [
        Figure(
            "stall detection lag after stall_timeout_s",
            f"p50 {p50(lags):.1f} / max {max(lags):.1f} ms after {timeout_s:g} s of silence ({len(lags)} stalls)",
            "max lag ≤ 50 ms",
            max(max(lags), 0.0) / 50.0,
            baseline=f"stall_timeout_s = {timeout_s:g} s, measured from the last server event's receive stamp",
        )
    ]
