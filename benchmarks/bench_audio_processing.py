"""The emulator's input audio processing: CPU per second of audio, against the server VAD's own cost."""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks._common import Figure, Size

RATE = 24000  # the session's default input rate
CHUNK_BYTES = 2 * RATE * 20 // 1000  # 20 ms appends, as clients send
BUDGET_MS_PER_S = 5.0
"""One connection in fast mode runs at 200× real time (docs/emulator.md): 5 ms of CPU per second of audio."""


def _audio(seconds: float) -> bytes:
    from vlab.testing import spoken_prompt

    prompt = spoken_prompt("Please turn on the kitchen lights.", sample_rate=RATE, lead_ms=300, trail_ms=700)
    pcm = prompt.pcm * max(1, int(seconds * 1000 / prompt.duration_ms + 1))
    return pcm[: int(seconds * RATE) * 2]


def _cpu_ms_per_s(work: Callable[[bytes], object], pcm: bytes) -> float:
    """CPU ms per second of audio of ``work(chunk)`` over ``pcm`` in 20 ms chunks (best of three)."""
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for i in range(0, len(pcm), CHUNK_BYTES):
            work(pcm[i : i + CHUNK_BYTES])
        best = min(best, time.process_time() - t)
    return best * 1000 / (len(pcm) / (2 * RATE))


def bench_processing_cost(size: Size) -> list[Figure]:
    """Noise suppression and echo cancellation: CPU per second of 24 kHz audio, as appended in 20 ms."""
    from vlab.audio.vad import SileroModel, StreamingVad, VadParams
    from vlab.emulator.audio_processing import InputProcessor, ProcessingSettings

    pcm = _audio(size.s(60.0, 1.0))
    vad = StreamingVad(VadParams(), RATE, SileroModel())
    vad_ms = _cpu_ms_per_s(vad.feed, pcm)
    figures = []
    for name, settings in [
        ("noise suppression (far_field)", ProcessingSettings("far_field")),
        (
            "noise suppression (azure_deep_noise_suppression)",
            ProcessingSettings("azure_deep_noise_suppression"),
        ),
        ("server echo cancellation", ProcessingSettings(echo_cancellation=True)),
    ]:
        processor = InputProcessor(settings, RATE)
        if settings.echo_cancellation:  # something to cancel: the same audio playing all along
            for i in range(0, len(pcm) * 3, CHUNK_BYTES * 10):
                processor.play(pcm[i % len(pcm) : i % len(pcm) + CHUNK_BYTES * 10], RATE, 0.0)
        cost = _cpu_ms_per_s(processor.process, pcm)
        figures.append(
            Figure(
                f"input {name}: CPU per s of audio",
                f"{cost:.1f} ms ({1000 / cost:.0f}× real time)",
                f"≤ {BUDGET_MS_PER_S:g} ms (one connection's fast-mode figure, 200× real time)",
                cost / BUDGET_MS_PER_S,
                baseline=f"Silero VAD in-process on the same audio: {vad_ms:.1f} ms per s",
                notes=[
                    "runs on the event loop in append (not in the VAD worker process); 24 → 16 kHz included",
                    *(
                        ["AEC3 through livekit's FFI: two protobuf requests per 10 ms frame"]
                        if settings.echo_cancellation
                        else []
                    ),
                ],
            )
        )
    return figures
