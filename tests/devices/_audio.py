"""Helpers for the real-device tests: routing streams to PulseAudio sinks, recording, signals."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from vlab.audio.loopback import LoopbackRecorder

RATE = 24000
"""The virtual sinks' rate (Hz) and the session rate."""


class Recorder(LoopbackRecorder):
    """Records a PulseAudio source at the tests' rate (see :class:`vlab.audio.loopback.LoopbackRecorder`)."""

    def __init__(self, source: str) -> None:
        super().__init__(source, RATE)


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
