"""Soak: N concurrent sessions stream real-time audio into one emulator for M minutes.

    python -m benchmarks.soak [--sessions 100 --minutes 10]

The emulator runs in its own process (loopback only, a random key) so its memory can be sampled on
its own; the sessions run here through the real SDK and ``vlab.Session``. Each of the N slots streams
a spoken prompt followed by silence, paced in real time in 20 ms chunks, over and over; the server VAD
ends each turn and the emulator answers. A slot's session lasts ``--session-s`` seconds, then it is
closed and a fresh one opened, so connection churn is soaked too.

Checks (exit code 1 when one fails):

* no crash: the emulator process is alive at the end and no session failed;
* no lost events: every event the emulator's trace says it sent on a connection before the client began
  to close it is in the client log of that connection (events still in flight at close are counted
  apart);
* memory: the RSS of the emulator and its child processes (Silero worker, recognition), sampled every ``--sample-s`` seconds, grows by at most 10 % from the end
  of the warm-up to the end of the run (the emulator starts its recognition process before it serves, so a
  model that loads once per process is not counted as growth).

Bounded: everything is written to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GROWTH_GOAL = 0.10


# --- the emulator process -------------------------------------------------------------------------


def serve(trace_path: str, api_key: str) -> None:
    """Child mode: run the emulator at real-time speed until SIGTERM; print the endpoint first."""
    from vlab.emulator import Emulator
    from vlab.emulator.asr import default_recognizer, recognize
    from vlab.emulator.trace import Trace
    from vlab.testing import spoken_prompt

    prompt = spoken_prompt("Hello there.")

    async def main() -> None:
        # Warm-up: what starts once per process (the recognition process that reads each turn for its
        # reply, about 100 MiB) starts before the memory baseline, so growth measures what the sessions
        # leave behind.
        await recognize(default_recognizer(), prompt.pcm, prompt.sample_rate)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        trace = Trace(trace_path, keep=False)  # written through, nothing kept in memory
        async with Emulator(
            host="127.0.0.1", api_key=api_key, speed=1.0, latency="typical", trace=trace
        ) as emu:
            print(emu.endpoint, flush=True)
            await stop.wait()

    asyncio.run(main())


# --- the client side ------------------------------------------------------------------------------


@dataclass
class Totals:
    sessions: int = 0
    failed: list[str] = field(default_factory=list)
    turns: int = 0
    received: dict[str, tuple[set[str], int]] = field(default_factory=dict)
    """Server session id → (event ids the client logged, perf_counter_ns when it began to close)."""
    audio_s: float = 0.0


async def slot(index: int, endpoint: str, api_key: str, pcm: bytes, end: float, session_s: float,
               chunk_ms: float, work: Path, totals: Totals) -> None:  # fmt: skip
    from vlab import Session
    from vlab.feed import wait_until_answered

    loop = asyncio.get_running_loop()
    await asyncio.sleep(index * 0.05)  # stagger the connects
    k = 0
    while loop.time() < end:
        k += 1
        run = work / f"s{index:03d}-{k:03d}"
        try:
            async with Session(endpoint=endpoint, api_key=api_key, run_dir=run, record_audio=False,
                               dotenv_path=False) as s:  # fmt: skip
                totals.sessions += 1
                stop_at = min(end, loop.time() + session_s)
                while True:  # at least one prompt per session, however late it connected (a loaded machine)
                    await s.stream_audio(pcm, speed=1.0, chunk_ms=chunk_ms)
                    totals.audio_s += len(pcm) / 48000
                    if loop.time() >= stop_at:
                        break
                await wait_until_answered(s, 30.0)
                closing_ns = time.perf_counter_ns()  # same clock as the trace's send stamps
            sid = s.server_session["id"]
            ids = {r.event_id for r in s.records if r.direction == "server" and r.event_id}
            totals.received[sid] = (ids, closing_ns)
            totals.turns += sum(1 for r in s.records if r.type == "response.done")
        except Exception as exc:  # counted, and the slot goes on
            totals.failed.append(f"slot {index} session {k}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)


def _tree(proc: Any) -> list[Any]:
    """The emulator process and its children (the Silero worker)."""
    import psutil

    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def tree_rss_mib(proc: Any) -> float:
    """Resident memory of the emulator process and its children, in MiB."""
    import psutil

    total = 0
    for p in _tree(proc):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def tree_cpu_s(proc: Any) -> dict[int, float]:
    """CPU seconds per process of the emulator's tree (pid → user + system)."""
    import psutil

    out = {}
    for p in _tree(proc):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


async def sample_rss(pid: int, every_s: float, samples: list[tuple[float, float]], lag: list[float]) -> None:
    import psutil

    proc = psutil.Process(pid)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while True:
        before = loop.time()
        await asyncio.sleep(every_s)
        lag.append(loop.time() - before - every_s)
        samples.append((loop.time() - t0, tree_rss_mib(proc)))


def lost_events(trace_path: Path, received: dict[str, tuple[set[str], int]]) -> tuple[int, int, int, int]:
    """Events sent on the clients' connections before they began to close, of which not logged; events
    sent after a client began to close (in flight, not counted); connections with no client log."""
    sent: dict[str, list[tuple[str, int]]] = {}
    with open(trace_path, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            if entry.get("kind") == "send":
                sent.setdefault(entry["conn"], []).append((entry["event_id"], entry["t_ns"]))
    total = lost = in_flight = 0
    for conn, events in sent.items():
        if conn not in received:
            continue
        ids, closing_ns = received[conn]
        for event_id, t_ns in events:
            if t_ns > closing_ns:
                in_flight += 1
                continue
            total += 1
            lost += event_id not in ids
    return total, lost, in_flight, len(set(sent) - set(received))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100, help="concurrent sessions (default 100)")
    parser.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    parser.add_argument(
        "--session-s", type=float, default=60.0, help="length of one session before it is renewed"
    )
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio chunk (default 20 ms, real time)")
    parser.add_argument(
        "--warmup-s", type=float, default=None, help="memory baseline after this (default 20 %% of the run)"
    )
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--serve", metavar="TRACE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, os.environ["VLAB_SOAK_KEY"])
        return 0
    if not (1 <= args.sessions <= 500 and 0 < args.minutes <= 120):
        parser.error("bounded: 1-500 sessions, up to 120 minutes")
    duration_s = args.minutes * 60
    warmup_s = args.warmup_s if args.warmup_s is not None else 0.2 * duration_s

    from vlab.testing import spoken_prompt

    prompt = spoken_prompt("What is the weather like in Seattle today?", lead_ms=300, trail_ms=3000)
    key = "soak-" + secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="vlab-soak-") as tmp:
        work = Path(tmp)
        trace = work / "trace.jsonl"
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.soak", "--serve", str(trace)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "VLAB_SOAK_KEY": key},
        )  # fmt: skip
        endpoint = child.stdout.readline().strip() if child.stdout else ""
        if not endpoint.startswith("http://127.0.0.1:"):
            print(f"the emulator did not start: {endpoint!r}")
            return 1
        totals = Totals()
        samples: list[tuple[float, float]] = []
        lag: list[float] = []

        async def run() -> None:
            loop = asyncio.get_running_loop()
            end = loop.time() + duration_s
            sampler = asyncio.create_task(sample_rss(child.pid, args.sample_s, samples, lag))
            await asyncio.gather(*(
                slot(i, endpoint, key, prompt.pcm, end, args.session_s, args.chunk_ms, work, totals)
                for i in range(args.sessions)
            ))  # fmt: skip
            sampler.cancel()

        import psutil

        emu_proc = psutil.Process(child.pid)
        cpu0 = tree_cpu_s(emu_proc)
        t0 = time.perf_counter()
        asyncio.run(run())
        wall = time.perf_counter() - t0
        cpu1 = tree_cpu_s(emu_proc)
        alive = child.poll() is None
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
        sent, lost, in_flight, orphans = lost_events(trace, totals.received)

    after = [rss for t, rss in samples if t >= warmup_s]
    base = statistics.median(after[:3]) if len(after) >= 3 else math.nan
    final = statistics.median(after[-3:]) if len(after) >= 3 else math.nan
    growth = final / base - 1 if base == base else math.nan
    cpu = sum(c - cpu0.get(pid, 0.0) for pid, c in cpu1.items()) / wall
    lag_p99 = sorted(lag)[int(0.99 * (len(lag) - 1))] * 1000 if lag else math.nan
    print(f"soak: {args.sessions} concurrent sessions × {args.minutes:g} min, real-time audio in {args.chunk_ms:g} ms chunks, "
          f"sessions renewed every {args.session_s:g} s; wall {wall:.0f} s")  # fmt: skip
    print(f"  sessions opened {totals.sessions}, failed {len(totals.failed)}; turns answered {totals.turns}; "
          f"audio streamed {totals.audio_s / 60:.1f} min")  # fmt: skip
    print(f"  events sent by the emulator {sent}, missing from the client logs {lost} (ratio {lost / max(sent, 1):.2e}); "
          f"{in_flight} more sent after the client began to close (in flight, not counted); "
          f"connections without a client log {orphans}")  # fmt: skip
    print(f"  emulator RSS (with its Silero worker and recognition process): start {samples[0][1] if samples else math.nan:.0f} MiB, after warm-up ({warmup_s:.0f} s) "
          f"{base:.0f} MiB, end {final:.0f} MiB, peak {max((r for _, r in samples), default=math.nan):.0f} MiB; "
          f"growth {growth * 100:+.1f} % (goal ≤ {GROWTH_GOAL * 100:.0f} %; ratio {growth / GROWTH_GOAL:.2f})")  # fmt: skip
    print(
        f"  emulator CPU (with its Silero worker and recognition process) {cpu * 100:.0f} % of one core; client loop lag p99 {lag_p99:.0f} ms; emulator alive: {alive}"
    )
    for failure in totals.failed[:5]:
        print(f"  failed: {failure[:300]}")
    ok = alive and not totals.failed and lost == 0 and sent > 0 and growth <= GROWTH_GOAL
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
