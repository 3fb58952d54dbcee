"""Run every benchmark and print figure, goal and ratio, each measured against a baseline in this run."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time


def bench_import() -> None:
    code = "import time; t=time.perf_counter(); import vlab; print((time.perf_counter()-t)*1000)"
    base = "import time; t=time.perf_counter(); import json; print((time.perf_counter()-t)*1000)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
        for _ in range(5)
    ]
    bare = [
        float(subprocess.run([sys.executable, "-c", base], capture_output=True, text=True).stdout)
        for _ in range(5)
    ]
    print(
        f"import vlab (fresh process): median {sorted(runs)[2]:.1f} ms (goal ≤ 300 ms; ratio {sorted(runs)[2] / 300:.2f}); import json {sorted(bare)[2]:.1f} ms"
    )


def bench_log_writer(n: int = 200_000) -> None:
    from vlab.log import JsonlWriter, record_from_event

    records = [
        record_from_event(
            {"type": "response.audio_transcript.delta", "delta": "word", "item_id": "i", "response_id": "r"},
            direction="server",
            seq=i,
            t_ns=i,
            wall_ns=i,
        )
        for i in range(n)
    ]
    with tempfile.TemporaryDirectory() as d:
        writer = JsonlWriter(os.path.join(d, "events.jsonl"))
        t = time.perf_counter()
        for r in records:
            writer(r)
        writer.close()
        dt = time.perf_counter() - t
    rate = n / dt
    print(f"event-log write throughput: {rate:,.0f} events/s (goal ≥ 200,000; ratio {rate / 200_000:.2f})")


async def _fast_mode_rtf(endpoint: str, key: str) -> float:
    from azure.ai.voicelive.aio import connect
    from azure.ai.voicelive.models import RequestSession, ServerVad
    from azure.core.credentials import AzureKeyCredential

    from vlab.testing import collect_events, spoken_prompt

    prompt = spoken_prompt(lead_ms=300, trail_ms=700)
    pcm = prompt.pcm * 10
    chunks = [pcm[i : i + 960] for i in range(0, len(pcm), 960)]
    async with connect(endpoint=endpoint, credential=AzureKeyCredential(key)) as conn:
        await conn.session.update(session=RequestSession(turn_detection=ServerVad(create_response=False)))
        await collect_events(conn, "session.updated", count=1)
        t = time.perf_counter()
        for chunk in chunks:
            await conn.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})
        await collect_events(conn, "input_audio_buffer.speech_stopped", count=10, timeout_s=120)
        dt = time.perf_counter() - t
    return (len(pcm) / 48000) / dt


def bench_fast_mode() -> None:
    """The emulator in its own process (as `vlab emulator --speed max`), one SDK client streaming 20 ms appends."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vlab",
            "emulator",
            "--port",
            "0",
            "--api-key",
            "bench",
            "--speed",
            "max",
            "--latency",
            "instant",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = proc.stdout.readline().split()[-1]
        rtf = asyncio.run(_fast_mode_rtf(endpoint, "bench"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(
        f"emulator fast mode, one session, VAD on, 20 ms appends: {rtf:.0f}× real time (goal ≥ 200×; ratio {rtf / 200:.2f})"
    )


async def _pacing(seconds: float) -> tuple[float, float, float]:
    from vlab.audio.pacing import paced_chunks

    pcm = bytes(2 * 24000 * int(seconds))
    start = time.perf_counter_ns()
    errors_ms = []
    async for _, offset_ms in paced_chunks(pcm, sample_rate=24000, chunk_ms=20, speed=1.0):
        errors_ms.append((time.perf_counter_ns() - start) / 1e6 - offset_ms)
    drift = sum(errors_ms[-50:]) / 50 - sum(errors_ms[:50]) / 50  # mean lateness, last second minus first
    ordered = sorted(errors_ms)
    return drift, ordered[int(len(ordered) * 0.99)], ordered[len(ordered) // 2]


def bench_pacing(seconds: float = 60.0) -> None:
    drift, p99, p50 = asyncio.run(_pacing(seconds))
    print(
        f"real-time pacing over {seconds:.0f} s of 20 ms chunks: lateness p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"(goal ≤ 2 ms; ratio {p99 / 2:.2f}); drift between first and last second {drift:.2f} ms (goal ≤ 1 ms)"
    )


def main() -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    bench_import()
    bench_log_writer()
    bench_fast_mode()
    bench_pacing(float(os.environ.get("VLAB_BENCH_PACING_S", "60")))


if __name__ == "__main__":
    main()
