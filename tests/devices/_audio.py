"""Helpers for the real-device tests: routing streams to PulseAudio sinks, recording, signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator

import numpy as np

RATE = 24000
"""The virtual sinks' rate (Hz) and the session rate."""


@contextlib.contextmanager
def pulse_route(*, sink: str | None = None, source: str | None = None) -> Iterator[None]:
    """Send the streams opened inside this block to ``sink`` / record them from ``source``."""
    saved = {k: os.environ.get(k) for k in ("PULSE_SINK", "PULSE_SOURCE")}
    for key, value in (("PULSE_SINK", sink), ("PULSE_SOURCE", source)):
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Recorder:
    """Records a PulseAudio source with :class:`vlab.audio.devices.Microphone` in the background."""

    def __init__(self, source: str) -> None:
        from vlab.audio.devices import Microphone

        self.source = source
        self.mic = Microphone("pulse", RATE)
        self.chunks: list = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Recorder:
        with pulse_route(source=self.source):
            self.mic.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for chunk in self.mic.chunks():
            self.chunks.append(chunk)

    async def __aexit__(self, *exc: object) -> None:
        self.mic.close()
        assert self._task is not None
        await self._task

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(c.pcm16 for c in self.chunks), "<i2").astype(np.float64)

    def t_ns_at(self, index: int) -> int:
        """Capture time of sample ``index`` of :meth:`samples` (from its chunk's ADC stamp)."""
        per = len(self.chunks[0].pcm16) // 2
        chunk = self.chunks[min(index // per, len(self.chunks) - 1)]
        return chunk.t_ns + round((index - index // per * per) * 1e9 / RATE)


def find(recording: np.ndarray, ref: np.ndarray) -> tuple[int, float, float]:
    """Where ``ref`` best matches ``recording``: (offset, normalized correlation, max abs difference)."""
    n = 1 << int(np.ceil(np.log2(len(recording) + len(ref))))
    corr = np.fft.irfft(np.fft.rfft(recording, n) * np.conj(np.fft.rfft(ref, n)), n)[: len(recording)]
    k = int(np.argmax(corr))
    seg = recording[k : k + len(ref)]
    if len(seg) < len(ref):
        return k, 0.0, float("inf")
    return k, float(seg @ ref / (np.linalg.norm(seg) * np.linalg.norm(ref))), float(np.abs(seg - ref).max())


def tone(duration_ms: float, freq_hz: float = 1000.0, amplitude: float = 0.5) -> bytes:
    t = np.arange(round(RATE * duration_ms / 1000)) / RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


class Notices:
    """Collects Speaker notices; ``await notices.wait(kind)``."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, int, dict, int]] = []  # kind, item, t_ns, info, arrival_ns
        self._changed = asyncio.Event()

    def __call__(self, kind: str, item_id: str, t_ns: int, info: dict) -> None:
        self.items.append((kind, item_id, t_ns, info, time.perf_counter_ns()))
        self._changed.set()

    def of(self, kind: str) -> list[tuple[str, str, int, dict, int]]:
        return [n for n in self.items if n[0] == kind]

    async def wait(self, kind: str, timeout_s: float = 5.0) -> tuple[str, str, int, dict, int]:
        async def until() -> None:
            while not self.of(kind):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout_s)
        return self.of(kind)[0]
