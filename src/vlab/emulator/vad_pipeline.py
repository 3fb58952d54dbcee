"""One connection's server VAD, with the model (and the input processing) running beside the event loop.

The connection hands its input audio to the process's :class:`~vlab.audio.silero_worker.SileroWorker`,
which processes it (noise suppression, echo cancellation: :mod:`vlab.audio.processing`), resamples, cuts
and runs it in another process. Meanwhile the loop goes on reading the next appends
of this and other connections, and the worker takes everything queued meanwhile as one batch across
connections. :class:`VadPipeline` applies the
probabilities to the turn machine strictly in order, and is *settled* before the connection handles
any other client event, so the service's event order holds.

Models other than :class:`~vlab.audio.vad.SileroModel` (e.g. the deterministic
:class:`~vlab.audio.vad.EnergyModel` of the tests) run at once on the loop, and so does their input
processing.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable

import numpy as np

from vlab.audio.processing import InputProcessor, ProcessingSettings
from vlab.audio.silero_worker import SileroWorker
from vlab.audio.vad import SileroModel, StreamingVad, VadEvent, VadFrames

log = logging.getLogger("vlab.emulator")


class VadPipeline:
    """A connection's turn detector: audio cut and run as it arrives, decided in order as results return.

    Args:
        vad: The connection's turn detector. With a :class:`SileroModel`, its audio is cut and run in the
            worker process (the same cutting as :meth:`StreamingVad.prepare`); other models run here.
        on_decided: Called on the loop with each append's events (possibly none) and the input audio
            (ms) decided so far (the end of the last frame stepped), in the order the audio came.
        processing: Noise suppression and echo cancellation before the model; when
            :attr:`~ProcessingSettings.active`, ``vad`` takes the processor's 16 kHz output.
        input_rate: Sample rate of the audio given to :meth:`feed` (default: ``vad``'s input rate).
        origin_ms: Input ms of the first sample given to :meth:`feed` (the processor's timeline).
    """

    def __init__(
        self,
        vad: StreamingVad,
        on_decided: Callable[[list[VadEvent], float], None],
        processing: ProcessingSettings | None = None,
        input_rate: int | None = None,
        origin_ms: float = 0.0,
    ) -> None:
        self.vad = vad
        self._on_decided = on_decided
        self._input_rate = input_rate or vad.input_rate
        self._processing = processing if processing is not None and processing.active else None
        model = vad.model
        self._remote = model if isinstance(model, SileroModel) else None
        self._worker = SileroWorker.shared() if self._remote is not None else None
        self._processor: InputProcessor | None = None  # here, when the model runs here
        if self._processing is not None:
            if self._worker is not None and self._remote is not None:
                self._worker.process(self._remote, self._processing, self._input_rate, origin_ms)
            else:
                self._processor = InputProcessor(self._processing, self._input_rate, origin_ms)
        self._backlog: deque[float] = deque()  # remote: input ms at the end of each append not yet answered
        self._idle: asyncio.Future[None] | None = None  # set when the backlog empties (for settle)
        self._failed = False
        self._samples = 0  # remote: input samples sent since the last reset
        self._frames = 0  # remote: model frames decided since the last reset

    def feed(self, pcm16: bytes) -> None:
        """Queue new input audio (PCM16 at the input rate) for the processing and the model."""
        if self._worker is None or self._remote is None:  # decided now, as a synchronous VAD would
            frames = self.vad.prepare(pcm16 if self._processor is None else self._processor.process(pcm16))
            self._decide(frames, self._run_here(frames))
            return
        self._samples += len(pcm16) // 2
        self._backlog.append(1000.0 * self._samples / self._input_rate)
        self._worker.request(self._remote, self._input_rate, pcm16, self._answered)

    def _run_here(self, frames: VadFrames) -> list[float]:
        model = self.vad.model
        if not len(frames.frames):
            return []
        batch = getattr(model, "probabilities", None)
        return list(batch(frames.frames)) if batch else [model.probability(f) for f in frames.frames]

    def reset(self, origin_ms: float = 0.0) -> None:
        """Forget the detector's state (after :meth:`settle`): a new stream follows, from input ms ``origin_ms``."""
        self.vad.reset()
        self._samples = self._frames = 0
        if self._worker is not None and self._remote is not None:
            self._worker.reset(self._remote, None if self._processing is None else origin_ms)
        elif self._processor is not None:
            self._processor.restart(self._input_rate, origin_ms)

    def configure_processing(self, settings: ProcessingSettings) -> None:
        """Change the processing's settings (it stays on: each processor keeps its state)."""
        if self._processing is None or not settings.active:
            raise ValueError("processing can change its settings, not start or stop: start a new pipeline")
        self._processing = settings
        if self._worker is not None and self._remote is not None:
            self._worker.process(self._remote, settings, self._input_rate, 0.0)
        elif self._processor is not None:
            self._processor.configure(settings)

    def play(self, pcm16: bytes, sample_rate: int, at_ms: float) -> None:
        """The client plays assistant audio from input ms ``at_ms``: the echo canceller's reference."""
        if self._processing is None or not self._processing.echo_cancellation:
            return
        if self._worker is not None and self._remote is not None:
            self._worker.play(self._remote, pcm16, sample_rate, at_ms)
        elif self._processor is not None:
            self._processor.play(pcm16, sample_rate, at_ms)

    def stop_playback(self, at_ms: float) -> None:
        """The client stopped playing the assistant's audio at input ms ``at_ms``."""
        if self._processing is None or not self._processing.echo_cancellation:
            return
        if self._worker is not None and self._remote is not None:
            self._worker.stop_playback(self._remote, at_ms)
        elif self._processor is not None:
            self._processor.stop_playback(at_ms)

    async def settle(self) -> None:
        """Wait until every queued frame is decided (before the connection handles another event)."""
        while self._backlog:
            if self._idle is None or self._idle.done():
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)

    def close(self) -> None:
        """Drop the backlog and the model's state (the connection is gone)."""
        self._backlog = deque()
        if self._idle is not None and not self._idle.done():
            self._idle.cancel()
        if self._worker is not None and self._remote is not None:
            self._worker.forget(self._remote)

    def _answered(self, result: list[float] | BaseException) -> None:
        """The worker's answer to the oldest append in flight (they come in order): decide it now."""
        if not self._backlog or self._remote is None:
            return  # closed meanwhile
        position_ms = self._backlog.popleft()
        if isinstance(result, BaseException):
            if not self._failed:
                self._failed = True  # once per connection: it would repeat at every append
                log.error("the VAD model failed: %s", result)
            result = [0.0] * self._expected_frames(
                self._remote, position_ms
            )  # no answer: these frames are silence
        start = self._frames * self._remote.frame_samples  # the worker cut them: they follow those decided
        self._frames += len(result)
        self._decide(VadFrames(_NONE, 0.0, start, math.inf, position_ms), result)
        if not self._backlog and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _expected_frames(self, remote: SileroModel, position_ms: float) -> int:
        model_samples = position_ms / 1000.0 * remote.sample_rate
        return max(int(model_samples // remote.frame_samples) - self._frames, 0)

    def _decide(self, frames: VadFrames, probs: list[float]) -> None:
        events = self.vad.decide(frames, probs)
        try:
            self._on_decided(events, self.vad.decided_ms)
        except Exception:
            log.exception("emulator failed on a VAD decision")


_NONE = np.zeros((0, 0), dtype=np.float32)
"""The frames of a remote batch stay in the worker; only their timing is known here."""
