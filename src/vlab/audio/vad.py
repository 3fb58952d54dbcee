"""Streaming voice-activity detection: the emulator's "server VAD" and the analysis code's detector.

Modelled on pipecat's ``VADAnalyzer``: a :class:`VadParams` dataclass, an explicit :class:`VadState`
machine and a single step that consumes fixed-size frames of a :class:`SpeechModel` (Silero by default,
or the deterministic :class:`EnergyModel`). :class:`StreamingVad` accepts PCM16 at any rate and in chunks
of any size, resamples to the model rate with soxr, and reports :class:`VadEvent` times in *input-audio*
milliseconds, like Voice Live's ``input_audio_buffer.speech_started`` / ``speech_stopped``.

State machine (``thr`` = ``threshold``, ``neg`` = :attr:`VadParams.negative_threshold`)::

    QUIET ──prob ≥ thr──▶ STARTING ──speech lasted ≥ min_speech_ms──▶ SPEAKING   (emit speech_started)
      ▲                     │ prob < neg                                │ prob < neg
      └─────────────────────┘                                           ▼
      └──────── silence lasted ≥ silence_duration_ms ──────────────── STOPPING   (emit speech_stopped)
                                                         prob ≥ thr: back to SPEAKING

A run of speech starts with a frame at ``thr`` or above. The hysteresis (``neg`` = ``thr - 0.15``, as in
Silero's own ``get_speech_timestamps``) then keeps it alive through frames whose probability dips just
below the threshold: frames between ``neg`` and ``thr`` count as speech while STARTING or SPEAKING (Silero
often wobbles around 0.4 in the first consonants of a word), but do not interrupt the silence timer while
STOPPING. Only a frame below ``neg`` sends STARTING back to QUIET.

Feeding a recording in one call or in small chunks gives identical events: soxr's streaming resampler
produces the same samples whatever the chunking, and all times are derived from sample counts.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from vlab import protocol_limits
from vlab.audio.pcm import FloatArray, pcm16_to_float
from vlab.errors import ConfigError, refuse_unknown_fields
from vlab.protocol_limits import DURATION_MS_BOUNDS, THRESHOLD_BOUNDS

if TYPE_CHECKING:
    import soxr

__all__ = [
    "HYSTERESIS",
    "EnergyModel",
    "SileroModel",
    "SpeechModel",
    "StreamingVad",
    "VadEvent",
    "VadFrames",
    "VadParams",
    "VadState",
    "reported_audio_ms",
]

HYSTERESIS = 0.15
"""Once speaking, a frame counts as silence only below ``threshold - HYSTERESIS`` (Silero's neg_threshold)."""

_EPS_MS = 1e-6


_DEFAULTS = protocol_limits.turn_detection_defaults(
    protocol_limits.SERVER_VAD, protocol_limits.VLAB_DEFAULTS_API_VERSION
)


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in DURATION_MS_BOUNDS:
        raise ConfigError(
            f"VadParams.{name} must be an integer number of ms in {DURATION_MS_BOUNDS}, got {value!r}"
        )


@refuse_unknown_fields
@dataclass(frozen=True, slots=True)
class VadParams:
    """Turn-detection settings, named after Voice Live's ``server_vad`` options.

    Defaults and bounds come from :mod:`vlab.protocol_limits` (the same as ``vlab.ServerVad()``).

    Raises:
        ConfigError: If a value is out of range.
    """

    threshold: float = _DEFAULTS.threshold
    """Speech probability in [0, 1]; a frame is speech when its probability is at least this."""
    prefix_padding_ms: int = _DEFAULTS.prefix_padding_ms
    """Audio kept before the detected onset: ``speech_started.audio_ms = onset - prefix_padding_ms``,
    clamped at 0 and never before the previous ``speech_stopped.audio_ms``."""
    silence_duration_ms: int = _DEFAULTS.silence_duration_ms
    """Silence needed after the last speech frame to end the turn."""
    min_speech_ms: int = protocol_limits.MIN_SPEECH_MS
    """Speech must last this long (from the onset, with no frame below :attr:`negative_threshold`)
    before ``speech_started`` fires; shorter blips are ignored."""

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t not in THRESHOLD_BOUNDS:
            raise ConfigError(f"VadParams.threshold must be a number in {THRESHOLD_BOUNDS}, got {t!r}")
        _check_int("prefix_padding_ms", self.prefix_padding_ms)
        _check_int("silence_duration_ms", self.silence_duration_ms)
        _check_int("min_speech_ms", self.min_speech_ms)

    @property
    def negative_threshold(self) -> float:
        """Probability below which a frame counts as silence once speech has started."""
        return min(self.threshold, max(self.threshold - HYSTERESIS, 0.01))


class VadState(enum.Enum):
    """Where the detector is in a turn."""

    QUIET = "quiet"
    """No speech."""
    STARTING = "starting"
    """Speech frames seen, but not yet for ``min_speech_ms``."""
    SPEAKING = "speaking"
    """In a turn (``speech_started`` has been emitted)."""
    STOPPING = "stopping"
    """In a turn, counting silence towards ``silence_duration_ms``."""


@dataclass(frozen=True, slots=True)
class VadEvent:
    """A turn boundary, in input-audio milliseconds from the start of the stream."""

    kind: Literal["speech_started", "speech_stopped"]
    """Which boundary."""
    audio_ms: int
    """``speech_started``: ``audio_start_ms`` (onset minus prefix padding, clamped).
    ``speech_stopped``: ``audio_end_ms``, the end of the last speech frame plus ``silence_duration_ms``
    (where the silence timer expired)."""
    speech_ms: int
    """``speech_started``: the detected onset (start of the first speech frame).
    ``speech_stopped``: the end of the last speech frame (``audio_ms - silence_duration_ms``)."""
    decided_ms: float = math.nan
    """End of the frame at which the detector decided the boundary (NaN when not known)."""


def reported_audio_ms(event: VadEvent, offset_ms: float, last_stop_ms: int) -> int:
    """The ``audio_start_ms``/``audio_end_ms`` the server reports for ``event``, in whole input ms.

    Args:
        event: A boundary of a VAD stream that began at input ms ``offset_ms``.
        offset_ms: Input ms of the stream's start.
        last_stop_ms: The ``audio_end_ms`` reported for the previous ``speech_stopped`` (0 before any):
            a turn never starts before the previous one ended.
    """
    audio_ms = int(round(event.audio_ms + offset_ms))
    return max(audio_ms, last_stop_ms) if event.kind == "speech_started" else audio_ms


@dataclass(frozen=True, slots=True)
class VadFrames:
    """Model frames cut by :meth:`StreamingVad.prepare`, waiting for their probabilities."""

    frames: FloatArray
    """float32 array of shape ``(n, frame_samples)`` at the model rate; ``n`` may be 0."""
    origin_ms: float
    """Input-audio ms where the frames' segment starts."""
    first_sample: int
    """Model-rate sample index of the first frame within its segment."""
    end_limit_ms: float
    """Frames end no later than this (the input position, for the zero-padded frame of a flush)."""
    position_ms: float
    """Input audio received when these frames were cut, in ms (deciding them decides up to here,
    except for samples still buffered for the next frame)."""


class SpeechModel(Protocol):
    """A frame-wise speech probability model."""

    sample_rate: int
    """Sample rate the model wants, in Hz."""
    frame_samples: int
    """Samples per frame."""

    def probability(self, frame: FloatArray) -> float:
        """Speech probability in [0, 1] of one float32 frame of exactly ``frame_samples`` samples."""
        ...

    def reset(self) -> None:
        """Forget any recurrent state (a new, unrelated stream follows)."""
        ...


class SileroModel:
    """Silero VAD v5 (32 ms frames) on ONNX Runtime, through a :class:`~vlab.audio.silero.SileroStream`.

    The weights are loaded once per process and shared by every model (see :mod:`vlab.audio.silero`),
    so creating one is cheap; the emulator steps many connections' models in one batched call.

    Silero's recurrent state makes it keep reporting speech for about 100 ms into *digital* silence
    (TTS output, prompts padded with zeros). Frames whose RMS level is below ``silence_floor_dbfs`` are
    therefore reported as probability 0 whatever the model says (they still go through the model, so its
    state is the same as without the floor). The default floor (-70 dBFS) is below the noise floor of
    real microphone audio, where it never acts.

    Args:
        sample_rate: 8000 or 16000 Hz.
        silence_floor_dbfs: RMS level (re 1.0) under which a frame is silence whatever the model says;
            ``None`` to use the model's raw output on every frame.

    Raises:
        ConfigError: If ``sample_rate`` is not supported by Silero.
    """

    def __init__(self, sample_rate: int = 16000, *, silence_floor_dbfs: float | None = -70.0) -> None:
        if sample_rate not in (8000, 16000):
            raise ConfigError(f"SileroModel sample_rate must be 8000 or 16000 Hz, got {sample_rate!r}")
        from vlab.audio.silero import SileroStream

        self.stream = SileroStream(sample_rate)
        """The model's recurrent state (stepped by :func:`vlab.audio.silero.step_streams`)."""
        self.sample_rate = sample_rate
        self.frame_samples = self.stream.frame_samples
        self.silence_floor_dbfs = silence_floor_dbfs
        self.floor_energy = (
            -1.0 if silence_floor_dbfs is None else 10.0 ** (silence_floor_dbfs / 10.0) * self.frame_samples
        )
        """Frame energy (sum of squares) below which :meth:`gate` reports 0; negative: no floor."""

    def probability(self, frame: FloatArray) -> float:
        """Speech probability of one frame."""
        return self.probabilities(np.asarray(frame, dtype=np.float32).reshape(1, -1))[0]

    def probabilities(self, frames: FloatArray) -> list[float]:
        """Probabilities of consecutive frames (the rows of a 2-D array), in one call."""
        from vlab.audio.silero import step_streams

        return self.gate(frames, step_streams([self.stream], [frames])[0])

    def gate(self, frames: FloatArray, probs: list[float]) -> list[float]:
        """``probs`` with the frames below the silence floor set to 0 (the model's raw output in)."""
        floor = self.floor_energy
        if floor < 0 or not len(probs):
            return probs
        energy = np.einsum("ij,ij->i", frames, frames).tolist()
        return [0.0 if e < floor else p for e, p in zip(energy, probs, strict=True)]

    def reset(self) -> None:
        """Clear Silero's recurrent state."""
        self.stream.reset()


class EnergyModel:
    """Deterministic, dependency-free model: frame RMS level mapped linearly to a probability.

    The level is ``20 * log10(rms)`` relative to 1.0 (a full-scale sine is -3 dBFS); ``floor_dbfs`` maps
    to 0, ``ceiling_dbfs`` to 1, clipped in between. Meant for unit tests and as a cheap detector for
    clean recordings; it cannot tell speech from any other loud sound.

    Args:
        sample_rate: Rate of the frames in Hz.
        frame_samples: Samples per frame (default 320 = 20 ms at 16 kHz).
        floor_dbfs: Level with probability 0.
        ceiling_dbfs: Level with probability 1.

    Raises:
        ConfigError: On a non-positive rate or frame size, or ``floor_dbfs >= ceiling_dbfs``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_samples: int = 320,
        *,
        floor_dbfs: float = -60.0,
        ceiling_dbfs: float = -20.0,
    ) -> None:
        if sample_rate <= 0 or frame_samples <= 0:
            raise ConfigError(
                f"EnergyModel needs a positive sample_rate and frame_samples, got {sample_rate!r} and {frame_samples!r}"
            )
        if not floor_dbfs < ceiling_dbfs:
            raise ConfigError(
                f"EnergyModel floor_dbfs must be below ceiling_dbfs, got {floor_dbfs!r} and {ceiling_dbfs!r}"
            )
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self.floor_dbfs = floor_dbfs
        self.ceiling_dbfs = ceiling_dbfs

    def probability(self, frame: FloatArray) -> float:
        """Level of ``frame`` mapped to [0, 1]."""
        mean_square = float(np.dot(frame, frame)) / len(frame)
        if mean_square <= 0.0:
            return 0.0
        level = 10.0 * math.log10(mean_square)
        p = (level - self.floor_dbfs) / (self.ceiling_dbfs - self.floor_dbfs)
        return min(max(p, 0.0), 1.0)

    def reset(self) -> None:
        """Stateless: nothing to do."""


class StreamingVad:
    """Streaming turn detector over PCM16 audio at ``input_rate``.

    Args:
        params: Detection settings.
        input_rate: Sample rate of the PCM16 passed to :meth:`feed`, in Hz.
        model: Frame probability model; default :class:`SileroModel` at 16 kHz.
        keep_probabilities: Record every frame's probability in :attr:`probabilities`.

    Raises:
        ConfigError: If ``input_rate`` is not a positive integer.
    """

    _odd: bytes
    """The last byte of an odd-length chunk, waiting for its pair."""

    def __init__(
        self,
        params: VadParams,
        input_rate: int,
        model: SpeechModel | None = None,
        *,
        keep_probabilities: bool = False,
    ) -> None:
        if isinstance(input_rate, bool) or not isinstance(input_rate, int) or input_rate <= 0:
            raise ConfigError(f"StreamingVad input_rate must be a positive integer in Hz, got {input_rate!r}")
        self._params = params
        self.input_rate = input_rate
        self.model: SpeechModel = model if model is not None else SileroModel()
        self._keep = keep_probabilities
        self.probabilities: list[float] = []
        """Per-frame probabilities, in order (only with ``keep_probabilities=True``)."""
        self._reset_stream()

    # -- public ------------------------------------------------------------------------------------

    @property
    def params(self) -> VadParams:
        """The settings in force."""
        return self._params

    @property
    def state(self) -> VadState:
        """Current state of the turn machine."""
        return self._state

    @property
    def position_ms(self) -> float:
        """Input audio received so far, in ms (whole samples; includes audio still buffered)."""
        return 1000.0 * self._in_samples / self.input_rate

    @property
    def frame_ms(self) -> float:
        """Duration of one model frame in ms."""
        return 1000.0 * self.model.frame_samples / self.model.sample_rate

    def feed(self, pcm16: bytes | bytearray | memoryview) -> list[VadEvent]:
        """Add PCM16 little-endian mono audio at ``input_rate``; any length, even an odd byte count.

        Returns:
            The events of every complete frame now available, in order.
        """
        return self._run(self.prepare(pcm16))

    def flush(self) -> list[VadEvent]:
        """Process everything buffered, as if the input paused here.

        Drains the resampler and zero-pads the last partial frame; the padded frame's end is clamped to
        :attr:`position_ms`, so padding never counts as audio. Speech is *not* ended: the silence timer
        only advances on real audio. Audio fed afterwards continues the same timeline (a new frame grid
        starts at :attr:`position_ms`).

        Returns:
            The events of the processed frames.
        """
        return self._run(self.prepare_flush())

    def prepare(self, pcm16: bytes | bytearray | memoryview) -> VadFrames:
        """The first half of :meth:`feed`: resample and cut the new audio into model frames.

        With :meth:`decide`, the model can run elsewhere (another thread, a batch of streams) while the
        frames wait: ``feed(pcm) == decide(f, model.probabilities(f.frames))`` for ``f = prepare(pcm)``.
        Several batches may be prepared ahead; they must be decided in the order they were prepared.
        """
        data = bytes(pcm16)
        if self._odd:
            data = self._odd + data
            self._odd = b""
        if len(data) % 2:
            self._odd = data[-1:]
            data = data[:-1]
        if not data:
            return self._cut(np.zeros(0, dtype=np.float32), pad=False)
        samples = pcm16_to_float(data)
        self._in_samples += len(samples)
        return self._cut(self._to_model_rate(samples, last=False), pad=False)

    def prepare_flush(self) -> VadFrames:
        """The first half of :meth:`flush` (see :meth:`prepare`)."""
        frames = self._cut(self._to_model_rate(np.zeros(0, dtype=np.float32), last=True), pad=True)
        # New segment: frames restart at the current input position, with a fresh resampler.
        self._seg_origin_ms = self.position_ms
        self._seg_samples = 0
        self._buf = np.zeros(0, dtype=np.float32)
        if self._resampler is not None:
            self._resampler.clear()
        return frames

    def decide(self, frames: VadFrames, probs: list[float]) -> list[VadEvent]:
        """The second half of :meth:`feed`: step the turn machine over prepared frames' probabilities.

        Returns:
            The events of these frames, in order.
        """
        if self._keep:
            self.probabilities.extend(probs)
        rate, n = self.model.sample_rate, self.model.frame_samples
        origin, seg, end_limit = frames.origin_ms, frames.first_sample, frames.end_limit_ms
        threshold = self._params.threshold
        quiet = VadState.QUIET
        events: list[VadEvent] = []
        for prob in probs:
            start_ms = origin + 1000.0 * seg / rate
            seg += n
            if prob < threshold and self._state is quiet:
                continue  # the common case: nothing to do (the same as _step)
            end_ms = min(origin + 1000.0 * seg / rate, end_limit)
            event = self._step(prob, start_ms, max(end_ms, start_ms))
            if event is not None:
                events.append(event)
        if probs:
            self.decided_ms = min(origin + 1000.0 * seg / rate, end_limit)
        return events

    def reset(self) -> None:
        """Forget state, buffered audio, position and probabilities (a new stream follows)."""
        self.model.reset()
        self.probabilities.clear()
        self._reset_stream()

    def update_params(self, params: VadParams) -> None:
        """Use ``params`` from the next frame on (the current state and timers are kept)."""
        self._params = params

    # -- internals ---------------------------------------------------------------------------------

    def _reset_stream(self) -> None:
        self.decided_ms = 0.0
        """Input audio decided so far (the end of the last frame stepped), in ms."""
        self._odd = b""
        self._buf = np.zeros(0, dtype=np.float32)
        self._in_samples = 0
        self._seg_origin_ms = 0.0
        self._seg_samples = 0
        self._resampler: soxr.ResampleStream | None = None  # made with the first audio to resample
        self._state: VadState = VadState.QUIET
        self._onset_ms = 0.0
        self._speech_end_ms = 0.0
        self._last_stop_audio_ms = 0

    def _to_model_rate(self, samples: FloatArray, *, last: bool) -> FloatArray:
        if self.model.sample_rate == self.input_rate:
            return samples
        if self._resampler is None:
            if not len(samples):  # nothing to resample, nothing held back
                return samples
            import soxr

            # not before: a stream whose model runs in the Silero worker never resamples here
            self._resampler = soxr.ResampleStream(
                self.input_rate, self.model.sample_rate, 1, dtype="float32", quality="HQ"
            )
        return np.asarray(self._resampler.resample_chunk(samples, last=last), dtype=np.float32)

    def _cut(self, new: FloatArray, *, pad: bool) -> VadFrames:
        buf = np.concatenate((self._buf, new)) if len(self._buf) else new
        n = self.model.frame_samples
        if pad and len(buf) % n:
            buf = np.concatenate((buf, np.zeros(n - len(buf) % n, dtype=np.float32)))
        n_frames = len(buf) // n
        out = VadFrames(
            buf[: n_frames * n].reshape(n_frames, n),
            self._seg_origin_ms,
            self._seg_samples,
            self.position_ms if pad else math.inf,
            self.position_ms,
        )
        self._seg_samples += n_frames * n
        self._buf = buf[n_frames * n :].copy()
        return out

    def run_model(self, frames: VadFrames) -> list[float]:
        """The model's probabilities of prepared frames (its state advances): what :meth:`decide` takes."""
        if not len(frames.frames):
            return []
        model = self.model
        batch = getattr(model, "probabilities", None)
        probs: list[float] = (
            batch(frames.frames) if batch is not None else [model.probability(f) for f in frames.frames]
        )
        return probs

    def _run(self, frames: VadFrames) -> list[VadEvent]:
        return self.decide(frames, self.run_model(frames))

    def _step(self, prob: float, start_ms: float, end_ms: float) -> VadEvent | None:
        """Advance the state machine by one frame covering ``[start_ms, end_ms)``."""
        p = self._params
        state = self._state
        if state is VadState.QUIET:
            if prob < p.threshold:
                return None
            self._onset_ms = start_ms
            self._state = VadState.STARTING
            return self._maybe_start(end_ms)
        if state is VadState.STARTING:
            if prob < p.negative_threshold:
                self._state = VadState.QUIET
                return None
            return self._maybe_start(end_ms)
        if state is VadState.SPEAKING:
            if prob >= p.negative_threshold:
                self._speech_end_ms = end_ms
                return None
            self._state = VadState.STOPPING
            return self._maybe_stop(end_ms)
        # STOPPING
        if prob >= p.threshold:
            self._state = VadState.SPEAKING
            self._speech_end_ms = end_ms
            return None
        return self._maybe_stop(end_ms)

    def _maybe_start(self, end_ms: float) -> VadEvent | None:
        p = self._params
        if end_ms - self._onset_ms < p.min_speech_ms - _EPS_MS:
            return None
        self._state = VadState.SPEAKING
        self._speech_end_ms = end_ms
        onset = round(self._onset_ms)
        audio_start = max(onset - p.prefix_padding_ms, 0, self._last_stop_audio_ms)
        return VadEvent("speech_started", audio_ms=audio_start, speech_ms=onset, decided_ms=end_ms)

    def _maybe_stop(self, end_ms: float) -> VadEvent | None:
        p = self._params
        if end_ms - self._speech_end_ms < p.silence_duration_ms - _EPS_MS:
            return None
        self._state = VadState.QUIET
        speech_end = round(self._speech_end_ms)
        self._last_stop_audio_ms = speech_end + p.silence_duration_ms
        return VadEvent(
            "speech_stopped", audio_ms=self._last_stop_audio_ms, speech_ms=speech_end, decided_ms=end_ms
        )
