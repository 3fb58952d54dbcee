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
  delay itself. It is skipped while nothing has played: a frame whose reference has been digital
  silence for :data:`ECHO_TAIL_MS` (the frame included) passes through, delayed by AEC3's own latency
  (:data:`AEC_DELAY_SAMPLES`) but without the high-pass filter and ringing AEC3 adds even then.
- **Noise suppression**: WebRTC's noise suppressor through the ``webrtc-noise-gain`` wheel. The type
  chooses its strength (:data:`NOISE_SUPPRESSION_LEVELS`): ``near_field`` moderate (about 12 dB of
  suppression), ``far_field`` high (18 dB), ``azure_deep_noise_suppression`` very high (21 dB).

Echo cancellation runs first, then noise suppression, as in WebRTC's own pipeline. The output is PCM16
at 16 kHz, time-aligned with the input (sample *k* is input time *k* / 16 kHz from the stream's origin);
it lags the input by the part of a frame still buffered and the resampler's few ms, and with echo
cancellation by AEC3's 8 ms (passed-through frames as much).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from vlab import protocol
from vlab.audio.pcm import FloatArray, float_to_pcm16, pcm16_to_float
from vlab.errors import refuse_unknown_fields

if TYPE_CHECKING:
    import soxr

log = logging.getLogger("vlab.audio")

PROCESSING_RATE_HZ: Final = 16000
"""Rate the processors run at, and of the audio :meth:`InputProcessor.process` returns."""
FRAME_SAMPLES: Final = 160
"""Samples per processing frame (10 ms at 16 kHz, what both WebRTC processors take)."""
_SAMPLES_PER_MS: Final = PROCESSING_RATE_HZ / 1000.0
_FRAME_BYTES: Final = 2 * FRAME_SAMPLES

ECHO_TAIL_MS: Final = 1000
"""How long the echo reference must have been digital silence (PCM16 zeros) for a frame to pass the
echo canceller untouched: longer than any echo AEC3 cancels (measured: an echo 500 ms after its
reference is cancelled, one 600 ms after is not), so the canceller's reference history is all zeros."""
AEC_DELAY_SAMPLES: Final = 128
"""AEC3's latency at 16 kHz (8 ms: it works in 64-sample blocks); audio that passes the canceller is
delayed as much, so the processed stream has one timeline either way."""
_TAIL_FRAMES: Final = ECHO_TAIL_MS * PROCESSING_RATE_HZ // 1000 // FRAME_SAMPLES
_BATCH_FRAMES: Final = 10
"""Frames per request to AEC3 (livekit's FFI costs one protobuf request each way per call): measured
bit-identical to one frame per request up to 20 frames, not at 50 (AEC3's render queue)."""
_PREROLL_FRAMES: Final = 2
"""Frames AEC3 runs again, output dropped, before it resumes after passing audio through."""

NOISE_SUPPRESSION_LEVELS: Final = dict(zip(protocol.NOISE_REDUCTION_TYPES, (2, 3, 4), strict=True))
"""``input_audio_noise_reduction.type`` → WebRTC noise-suppression level (2 moderate ≈ 12 dB, 3 high ≈
18 dB, 4 very high ≈ 21 dB): close-talking microphones get the lightest, Azure's neural suppressor the
strongest."""


@refuse_unknown_fields
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
    """WebRTC AEC3 (``livekit``'s ``AudioProcessingModule``) on 10 ms PCM16 frames, skipped while silent.

    A frame whose reference, and the reference of the :data:`ECHO_TAIL_MS` before it, is digital silence
    has no echo AEC3 could cancel: it passes through delayed by :data:`AEC_DELAY_SAMPLES`, as AEC3 would
    delay it, without AEC3's high-pass filter. When the reference sounds again, AEC3 first runs again
    over the :data:`_PREROLL_FRAMES` frames before (output dropped) so its delay line and filters hold
    the microphone's recent audio, and its output joins the passed-through audio without a seam.
    Consecutive frames go to AEC3 in requests of up to :data:`_BATCH_FRAMES` frames.

    Args:
        tail_frames: Silent reference frames (the current one included) from which frames pass through;
            None: never (AEC3 runs on every frame).
    """

    def __init__(self, tail_frames: int | None = _TAIL_FRAMES) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True)
        self._apm.set_stream_delay_ms(0)  # same timeline; the echo path's delay is AEC3's to find
        self._tail_frames = tail_frames
        self._silent = 0  # consecutive frames of silent reference, up to the last one processed
        self._history = bytes(_PREROLL_FRAMES * _FRAME_BYTES)  # the last frames of microphone audio
        self._passing = False  # whether the last frame passed through
        self.passed = 0
        """Frames passed through without AEC3 (nothing to cancel)."""

    def process(self, mic: bytes, reference: bytes) -> bytes:
        """Cancel the echo of ``reference`` in ``mic`` (whole frames of PCM16, the same length)."""
        n = len(mic) // _FRAME_BYTES
        frames = np.frombuffer(reference, dtype="<i2").reshape(n, FRAME_SAMPLES)
        sounding: list[bool] = np.asarray(frames.any(axis=1), dtype=bool).tolist()
        passing: list[bool] = []
        for sound in sounding:
            self._silent = 0 if sound else self._silent + 1
            passing.append(self._tail_frames is not None and self._silent >= self._tail_frames)
        raw = self._history + mic  # frame k of this call is raw[(P + k) * FB:], P frames of history
        out = bytearray()
        k = 0
        while k < n:
            end = k
            while end < n and passing[end] == passing[k]:
                end += 1
            if passing[k]:
                at = _PREROLL_FRAMES * _FRAME_BYTES - 2 * AEC_DELAY_SAMPLES  # AEC3's latency
                out += raw[at + k * _FRAME_BYTES : at + end * _FRAME_BYTES]
                self.passed += end - k
            else:
                resumes = passing[k - 1] if k else self._passing
                first = k if resumes else k + _PREROLL_FRAMES
                ref = reference[k * _FRAME_BYTES : end * _FRAME_BYTES]
                if resumes:  # the reference was silent there: AEC3 hears those frames with none
                    ref = bytes(_PREROLL_FRAMES * _FRAME_BYTES) + ref
                processed = self._cancel(
                    raw[first * _FRAME_BYTES : (end + _PREROLL_FRAMES) * _FRAME_BYTES], ref
                )
                out += processed[(_PREROLL_FRAMES * _FRAME_BYTES if resumes else 0) :]
            k = end
        self._passing = passing[-1] if passing else self._passing
        self._history = raw[len(raw) - _PREROLL_FRAMES * _FRAME_BYTES :]
        return bytes(out)

    def _cancel(self, mic: bytes, reference: bytes) -> bytes:
        """AEC3 over whole frames, :data:`_BATCH_FRAMES` per request (far end first, then the microphone)."""
        frame = self._rtc.AudioFrame
        out = bytearray()
        step = _BATCH_FRAMES * _FRAME_BYTES
        for at in range(0, len(mic), step):
            samples = len(mic[at : at + step]) // 2
            self._apm.process_reverse_stream(frame(reference[at : at + step], PROCESSING_RATE_HZ, 1, samples))
            captured = frame(bytearray(mic[at : at + step]), PROCESSING_RATE_HZ, 1, samples)
            self._apm.process_stream(captured)
            out += captured.data.cast("B")
        return bytes(out)


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

    def take(self, index: int, count: int = 1) -> bytes:
        """The PCM16 reference of ``count`` frames from sample ``index`` (not before the last one taken)."""
        skip = index - self._start
        if skip > 0:
            self._samples = self._samples[skip:]
        n = count * FRAME_SAMPLES
        frames = self._samples[:n]
        self._samples = self._samples[n:]
        self._start = index + n
        if len(frames) < n:
            frames = np.concatenate((frames, np.zeros(n - len(frames), np.float32)))
        return float_to_pcm16(frames)


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
    def echo_passed_ms(self) -> float:
        """Input audio that passed the echo canceller untouched (no reference for :data:`ECHO_TAIL_MS`), in ms."""
        return 0.0 if self._echo is None else self._echo.passed * FRAME_SAMPLES / _SAMPLES_PER_MS

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
        frames = n // FRAME_SAMPLES
        if not frames:
            return b""
        if self._echo is not None:
            index = self._origin + self._frames_out * FRAME_SAMPLES
            whole = self._echo.process(whole, self._playout.take(index, frames))
        if self._noise is not None:
            step = _FRAME_BYTES
            whole = b"".join(self._noise.process(whole[at : at + step]) for at in range(0, len(whole), step))
        self._frames_out += frames
        return whole

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
