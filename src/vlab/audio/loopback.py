"""Hear what a speaker played: route streams to PulseAudio sinks and record a monitor with ADC stamps.

For device tests and benchmarks on a virtual sound card (a PulseAudio null sink, see ``.ci/virtual-audio.sh``):
play through a :class:`~vlab.audio.devices.Speaker` on ``vsink`` and record ``vsink.monitor`` with
:class:`LoopbackRecorder`, which stamps every chunk with the ADC time PortAudio reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["LoopbackRecorder", "pulse_route"]


@contextlib.contextmanager
def pulse_route(*, sink: str | None = None, source: str | None = None) -> Iterator[None]:
    """Send the streams opened inside this block to ``sink`` / record them from ``source`` (None: default)."""
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


class LoopbackRecorder:
    """Records a PulseAudio source with :class:`~vlab.audio.devices.Microphone` in the background.

    Use as ``async with LoopbackRecorder("vsink.monitor", 24000) as rec:``; afterwards :meth:`samples`
    holds the recording and :meth:`t_ns_at` the capture time of any sample.
    """

    def __init__(self, source: str, rate: int) -> None:
        from vlab.audio.devices import Microphone

        self.source = source
        self.rate = rate
        self.mic = Microphone("pulse", rate)
        self.chunks: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopbackRecorder:
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
        """The recording so far, as float64 PCM16 values."""
        return np.frombuffer(b"".join(c.pcm16 for c in self.chunks), "<i2").astype(np.float64)

    def t_ns_at(self, index: int) -> int:
        """Capture time of sample ``index`` of :meth:`samples`, from its chunk's ADC stamp.

        Past the last chunk, it counts on from the last one's stamp.
        """
        per = len(self.chunks[0].pcm16) // 2
        k = min(index // per, len(self.chunks) - 1)
        return self.chunks[k].t_ns + round((index - k * per) * 1e9 / self.rate)
