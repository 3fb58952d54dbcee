"""The session panel's input level: a bar that follows the audio sent, and a microphone metered on the way."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, Protocol

import numpy as np

from vlab import protocol


class LevelMeter:
    """Shows the level of audio on a progress bar, once per :attr:`every_ms` of audio (its loudest chunk).

    A 20 ms chunk is 50 updates a second, each a message to the page: the bar moves at ten a second
    instead, on the audio's own time, and a value the bar already shows is not sent again.
    """

    every_ms = 100.0

    def __init__(self, bar: Any, sample_rate: int = protocol.PCM16_SAMPLE_RATE_HZ) -> None:
        self._bar = bar
        self.reset(sample_rate)

    def reset(self, sample_rate: int | None = None) -> None:
        """Start a new window (at ``sample_rate``, if given) and show silence."""
        if sample_rate is not None:
            self._rate = sample_rate
        self._window_ms = 0.0
        self._loudest = 0.0
        self._show(0.0)

    def __call__(self, chunk: bytes) -> None:
        """Take one chunk of PCM16 audio."""
        if len(chunk) < 2:
            return
        x = np.frombuffer(chunk, "<i2", len(chunk) // 2).astype(np.float32) / 32768.0
        rms_dbfs = 20 * math.log10(float(np.sqrt(np.mean(x * x))) + 1e-9)
        self._loudest = max(self._loudest, min(1.0, max(0.0, (rms_dbfs + 60.0) / 60.0)))
        self._window_ms += 1000.0 * len(x) / self._rate
        if self._window_ms >= self.every_ms:
            self._show(self._loudest)
            self._window_ms, self._loudest = 0.0, 0.0

    def _show(self, value: float) -> None:
        value = round(value, 2)
        if self._bar.value != value:
            self._bar.value = value


class AudioKeeper(Protocol):
    """Takes the PCM16 chunks a microphone sent, in order (:class:`vlab.widgets.latency_line.RecentAudio`)."""

    def add(self, pcm: bytes) -> None:
        """Take the next chunk."""


class MeteredMicrophone:
    """Passes microphone chunks through, updating a :class:`LevelMeter` (and a keeper, if any) on the way."""

    def __init__(self, mic: Any, meter: LevelMeter, keep: AudioKeeper | None = None) -> None:
        self._mic, self._meter, self._keep = mic, meter, keep

    @property
    def overflows(self) -> int:
        """The microphone's overflow count."""
        return int(getattr(self._mic, "overflows", 0))

    def describe(self) -> dict[str, Any]:
        """The microphone's description for the log (empty when it has none)."""
        describe = getattr(self._mic, "describe", None)
        return dict(describe()) if callable(describe) else {}

    async def chunks(self) -> AsyncIterator[Any]:
        """The microphone's stamped chunks (capture times), metered on the way."""
        async for chunk in self._mic.chunks():
            self._take(chunk.pcm16)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._mic:
            self._take(chunk)
            yield chunk

    def _take(self, pcm: bytes) -> None:
        self._meter(pcm)
        if self._keep is not None:
            self._keep.add(pcm)
