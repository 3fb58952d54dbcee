"""Input audio processing before the server VAD: noise suppression and server echo cancellation.

Voice Live applies ``input_audio_noise_reduction`` and ``input_audio_echo_cancellation`` to the input
audio before its VAD. :class:`InputProcessor` does the same for one audio stream (the emulator runs it
in the VAD worker process, :mod:`vlab.audio.silero_worker`, right before the model), in 10 ms frames at
16 kHz (:data:`PROCESSING_RATE_HZ`), with real processors from two wheels:

- **Echo cancellation** (``server_echo_cancellation``): WebRTC's AEC3, through the ``livekit`` wheel's
  ``AudioProcessingModule``. Its reference is the assistant audio the emulator sent, placed on the input
  timeline where the client plays it: each audio delta starts at the input position it was sent at
  (:meth:`InputProcessor.play`), right after the previous one when they arrive faster than real time,
  and stops where playback was cut (:meth:`InputProcessor.stop_playback`). AEC3 finds the echo path's
  delay itself.
- **Noise suppression**: WebRTC's noise suppressor through the ``webrtc-noise-gain`` wheel. The type
  chooses its strength (:data:`NOISE_SUPPRESSION_LEVELS`): ``near_field`` moderate (about 12 dB of
  suppression), ``far_field`` high (18 dB), ``azure_deep_noise_suppression`` very high (21 dB).

Echo cancellation runs first, then noise suppression, as in WebRTC's own pipeline. The output is PCM16
at 16 kHz, time-aligned with the input (sample *k* is input time *k* / 16 kHz from the stream's origin);
it lags the input by the part of a frame still buffered and the resampler's few ms.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from vlab import protocol
from vlab.audio.pcm import FloatArray, float_to_pcm16, pcm16_to_float

if TYPE_CHECKING:
    import soxr

log = logging.getLogger("vlab.audio")

PROCESSING_RATE_HZ: Final = 16000
"""Rate the processors run at, and of the audio :meth:`InputProcessor.process` returns."""
FRAME_SAMPLES: Final = 160
"""Samples per processing frame (10 ms at 16 kHz, what both WebRTC processors take)."""
_SAMPLES_PER_MS: Final = PROCESSING_RATE_HZ / 1000.0

NOISE_SUPPRESSION_LEVELS: Final = dict(zip(protocol.NOISE_REDUCTION_TYPES, (2, 3, 4), strict=True))
"""``input_audio_noise_reduction.type`` → WebRTC noise-suppression level (2 moderate ≈ 12 dB, 3 high ≈
18 dB, 4 very high ≈ 21 dB): close-talking microphones get the lightest, Azure's neural suppressor the
strongest."""


@dataclass(frozen=True, slots=True)
class ProcessingSettings:
    """What a session asks to be done to its input audio."""

    noise_reduction: str | None = None
    """A key of :data:`NOISE_SUPPRESSION_LEVELS`, or None for none."""
    echo_cancellation: bool = False
    """Cancel the echo of the assistant's audio (``server_echo_cancellation``, server reference)."""

    @property
    def active(self) -> bool:
        """Whether anything is applied."""
        return self.noise_reduction is not None or self.echo_cancellation


def noise_suppression_available() -> bool:
    """Whether noise suppression can be applied here: the ``webrtc-noise-gain`` wheel (no Windows build)."""
    import importlib.util

    return importlib.util.find_spec("webrtc_noise_gain") is not None


class _NoiseSuppressor:
    """WebRTC noise suppression (``webrtc-noise-gain``) at one level, on 10 ms PCM16 frames."""

    def __init__(self, level: int) -> None:
        from webrtc_noise_gain import AudioProcessor

        self.level = level
        self._processor = AudioProcessor(0, level)  # no automatic gain

    def process(self, frame: bytes) -> bytes:
        return bytes(self._processor.Process10ms(frame).audio)


class _EchoCanceller:
    """WebRTC AEC3 (``livekit``'s ``AudioProcessingModule``) on 10 ms PCM16 frames."""

    def __init__(self) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True)
        self._apm.set_stream_delay_ms(0)  # same timeline; the echo path's delay is AEC3's to find

    def process(self, mic: bytes, reference: bytes) -> bytes:
        frame = self._rtc.AudioFrame
        self._apm.process_reverse_stream(frame(reference, PROCESSING_RATE_HZ, 1, FRAME_SAMPLES))
        captured = frame(bytearray(mic), PROCESSING_RATE_HZ, 1, FRAME_SAMPLES)
        self._apm.process_stream(captured)
        return captured.data.tobytes()


class _Playout:
    """The assistant audio the client plays, on the input timeline at 16 kHz: the echo reference.

    Samples are indexed from input time 0 (index = ms × 16). Frames are taken in order; audio placed
    where frames were already taken is too late to be a reference and is dropped (:attr:`late_ms`).
    """

    def __init__(self) -> None:
        self._samples = np.zeros(0, dtype=np.float32)
        self._start = 0  # index of _samples[0]: everything before it has been taken
        self._cursor: int | None = None  # where the next contiguous chunk goes (None: no chain)
        self._end_ms = -math.inf  # where queued playback ends (input durations, so no drift)
        self._rate = 0
        self._resampler: soxr.ResampleStream | None = None
        self.late_ms = 0.0
        """Reference audio dropped because its input time had already been processed, in ms."""

    def play(self, samples: FloatArray, rate: int, at_ms: float) -> None:
        """Queue ``samples`` at ``rate``: they start at ``at_ms``, or when what is queued ends."""
        if self._cursor is None or rate != self._rate or at_ms > self._end_ms:
            start_ms = max(at_ms, self._end_ms)
            self._cursor, self._rate = round(start_ms * _SAMPLES_PER_MS), rate
            self._resampler = None
            if rate != PROCESSING_RATE_HZ:
                import soxr

                self._resampler = soxr.ResampleStream(rate, PROCESSING_RATE_HZ, 1, dtype="float32")
            self._end_ms = start_ms
        self._end_ms += 1000.0 * len(samples) / rate
        out = samples if self._resampler is None else self._resampler.resample_chunk(samples)
        self._write(np.asarray(out, dtype=np.float32))

    def _write(self, out: FloatArray) -> None:
        assert self._cursor is not None
        at = self._cursor - self._start
        self._cursor += len(out)
        if at < 0:
            self.late_ms += min(-at, len(out)) / _SAMPLES_PER_MS
            out, at = out[-at:], 0
        end = at + len(out)
        if end > len(self._samples):
            self._samples = np.concatenate((self._samples, np.zeros(end - len(self._samples), np.float32)))
        self._samples[at:end] = out

    def stop(self, at_ms: float) -> None:
        """Playback stops at input time ``at_ms``: drop what would have played after it."""
        keep = max(round(at_ms * _SAMPLES_PER_MS) - self._start, 0)
        self._samples = self._samples[:keep]
        self._cursor, self._resampler = None, None
        self._end_ms = min(self._end_ms, at_ms)

    def take(self, index: int) -> bytes:
        """The PCM16 reference frame starting at sample ``index`` (not before the last one taken)."""
        skip = index - self._start
        if skip > 0:
            self._samples = self._samples[skip:]
        frame = self._samples[:FRAME_SAMPLES]
        self._samples = self._samples[FRAME_SAMPLES:]
        self._start = index + FRAME_SAMPLES
        if len(frame) < FRAME_SAMPLES:
            frame = np.concatenate((frame, np.zeros(FRAME_SAMPLES - len(frame), np.float32)))
        return float_to_pcm16(frame)


class InputProcessor:
    """One connection's input audio processing, in front of its server VAD.

    Args:
        settings: What to apply (must be :attr:`~ProcessingSettings.active`).
        input_rate: Sample rate of the PCM16 given to :meth:`process`, in Hz.
        origin_ms: Input time of the first sample given to :meth:`process`.
    """

    rate: Final = PROCESSING_RATE_HZ
    """Sample rate of the audio :meth:`process` returns, in Hz."""

    def __init__(self, settings: ProcessingSettings, input_rate: int, origin_ms: float = 0.0) -> None:
        self._settings = ProcessingSettings()
        self._noise: _NoiseSuppressor | None = None
        self._echo: _EchoCanceller | None = None
        self._playout = _Playout()
        self.configure(settings)
        self.restart(input_rate, origin_ms)

    @property
    def settings(self) -> ProcessingSettings:
        """What is applied."""
        return self._settings

    @property
    def input_rate(self) -> int:
        """Sample rate of the PCM16 given to :meth:`process`, in Hz."""
        return self._input_rate

    @property
    def late_reference_ms(self) -> float:
        """Assistant audio that reached the echo canceller after its input time was processed, in ms."""
        return self._playout.late_ms

    def configure(self, settings: ProcessingSettings) -> None:
        """Apply ``settings`` from the next frame on (each processor keeps its state while it stays on)."""
        level = NOISE_SUPPRESSION_LEVELS.get(settings.noise_reduction or "")
        if level is not None and not noise_suppression_available():
            log.warning(
                "noise suppression needs the webrtc-noise-gain wheel (none for this platform); none applied"
            )
            level = None
        if level is None:
            self._noise = None
        elif self._noise is None or self._noise.level != level:
            self._noise = _NoiseSuppressor(level)
        if not settings.echo_cancellation:
            self._echo, self._playout = None, _Playout()
        elif self._echo is None:
            self._echo = _EchoCanceller()
        self._settings = settings

    def restart(self, input_rate: int, origin_ms: float) -> None:
        """Start a new stream at input time ``origin_ms`` (the VAD restarted); buffered audio is dropped."""
        self._input_rate = input_rate
        self._origin = round(origin_ms * _SAMPLES_PER_MS)
        self._frames_out = 0
        self._buf = np.zeros(0, dtype=np.float32)
        self._resampler: soxr.ResampleStream | None = None
        if input_rate != PROCESSING_RATE_HZ:
            import soxr

            self._resampler = soxr.ResampleStream(input_rate, PROCESSING_RATE_HZ, 1, dtype="float32")

    def process(self, pcm16: bytes) -> bytes:
        """Process new input audio (PCM16 at the input rate, whole samples).

        Returns:
            PCM16 at :attr:`rate`: every 10 ms frame completed by this audio, processed.
        """
        samples = pcm16_to_float(pcm16)
        if self._resampler is not None:
            samples = np.asarray(self._resampler.resample_chunk(samples), dtype=np.float32)
        buf = np.concatenate((self._buf, samples)) if len(self._buf) else samples
        n = len(buf) // FRAME_SAMPLES * FRAME_SAMPLES
        self._buf = buf[n:].copy()
        whole = float_to_pcm16(buf[:n])
        out = bytearray()
        step = 2 * FRAME_SAMPLES
        for at in range(0, len(whole), step):
            frame = whole[at : at + step]
            if self._echo is not None:
                index = self._origin + self._frames_out * FRAME_SAMPLES
                frame = self._echo.process(frame, self._playout.take(index))
            if self._noise is not None:
                frame = self._noise.process(frame)
            self._frames_out += 1
            out += frame
        return bytes(out)

    def play(self, pcm16: bytes, sample_rate: int, at_ms: float) -> None:
        """The client plays assistant audio (PCM16 at ``sample_rate``) from input time ``at_ms`` on.

        It starts at ``at_ms``, or when the audio queued before it ends; ignored without echo
        cancellation.
        """
        if self._echo is not None:
            self._playout.play(pcm16_to_float(pcm16), sample_rate, at_ms)

    def stop_playback(self, at_ms: float) -> None:
        """The client stopped playing at input time ``at_ms`` (a barge-in or a truncate)."""
        if self._echo is not None:
            self._playout.stop(at_ms)
