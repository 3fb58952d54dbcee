"""Silero's frame probabilities, computed once per audio and reused (in memory, and on disk beside a sweep).

Silero is recurrent: a frame's probability depends on every frame of its stream since the last reset.
So a frame is keyed by a *chain* hash: ``key(n) = blake2b(key(n-1) ‖ frame n)``, starting from the
model's sample rate. The frames are what the model is given (after resampling and any input processing),
so the key holds everything that determines the probability; two streams share keys exactly as long as
their model input is the same, e.g. every cell of a sweep that plays one prompt, whatever its
turn-detection setting.

A stream whose next frames are all known is not run at all; the model's state then lags behind the
stream. At the first unknown frame the state is caught up: restored from the nearest *checkpoint* (the
model state stored after each run, in memory) and the frames after it run again, so the probabilities
are those the model gives without the cache, frame for frame.

On disk (:attr:`VadCache.folder`), the probabilities are appended to one file of fixed-size records
(16-byte key, float32), safe to share between processes; checkpoints stay in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlab.audio.pcm import FloatArray
from vlab.audio.silero import SileroStream

__all__ = ["CACHE_FILE", "CacheCursor", "VadCache"]

log = logging.getLogger("vlab.audio")

CACHE_FILE = "silero_v5.bin"
"""The cache's file inside its folder."""
_RECORD = struct.Struct("<16sf")
_MAX_FRAMES = 500_000  # about 4.4 h of audio (~75 MB); beyond it the memory cache starts over
_MAX_CHECKPOINTS = 20_000  # model states (~1.5 kB each) kept to resume from, oldest dropped first


def _chain(key: bytes, frame: FloatArray) -> bytes:
    return hashlib.blake2b(key + frame.tobytes(), digest_size=16).digest()


@dataclass
class CacheCursor:
    """Where one stream is in the cache: the key of its last frame and the frames its model has not run."""

    key: bytes
    """Chain key of the stream's last frame (the start key after a reset)."""
    lag: list[tuple[bytes, FloatArray]] = field(default_factory=list)
    """Frames taken from the cache since the model's state was last advanced, with their keys."""

    @classmethod
    def start(cls, sample_rate: int) -> CacheCursor:
        """A cursor at the start of a stream (or after a reset) at the model's ``sample_rate``."""
        return cls(hashlib.blake2b(f"silero-v5/{sample_rate}".encode(), digest_size=16).digest())


@dataclass
class _Plan:
    keys: list[bytes]
    known: list[float | None]
    replay: int  # frames run again before the block's first frame, to catch the state up
    run: int  # block frames the model runs (the rest come from the cache)


class VadCache:
    """Frame probabilities by chain key, with model checkpoints to resume a stream from.

    Use per batch: :meth:`plan` the frames of each stream (it gives the frames the model must run and
    may restore the stream's state), run them, then :meth:`finish` with the model's output.

    Args:
        folder: Where to keep the probabilities on disk (created; read at once if it exists), or None for
            memory only.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.probs: dict[bytes, float] = {}
        self._checkpoints: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._unsaved: list[bytes] = []
        self.hits = 0
        """Frames answered from the cache."""
        self.runs = 0
        """Frames the model ran (including catch-up runs)."""
        if self.folder is not None:
            self._load(self.folder / CACHE_FILE)

    def _load(self, path: Path) -> None:
        if not path.is_file():
            return
        data = path.read_bytes()
        usable = len(data) - len(data) % _RECORD.size  # a record cut by a killed writer is ignored
        first = max(usable - _MAX_FRAMES * _RECORD.size, 0)  # the newest, as many as memory keeps
        for key, prob in _RECORD.iter_unpack(data[first:usable]):
            self.probs[key] = prob

    def plan(self, cursor: CacheCursor, stream: SileroStream, frames: FloatArray) -> tuple[FloatArray, _Plan]:
        """The frames the model must run for the stream's next ``frames`` (restoring its state if needed).

        Returns:
            The frames to run (possibly none), and the plan to pass to :meth:`finish`.
        """
        keys: list[bytes] = []
        key = cursor.key
        for frame in frames:
            key = _chain(key, frame)
            keys.append(key)
        known = [self.probs.get(k) for k in keys]
        last_miss = max((i for i, p in enumerate(known) if p is None), default=-1)
        if last_miss < 0:  # all known: the model does not run; its state lags
            cursor.lag.extend(zip(keys, frames, strict=True))
            cursor.key = key
            return frames[:0], _Plan(keys, known, 0, 0)
        replay = cursor.lag
        for j in range(len(replay) - 1, -1, -1):
            checkpoint = self._checkpoints.get(replay[j][0])
            if checkpoint is not None:
                stream.state, context = checkpoint[0].copy(), checkpoint[1]
                stream.context[:] = context
                replay = replay[j + 1 :]
                break
        cursor.lag = list(zip(keys[last_miss + 1 :], frames[last_miss + 1 :], strict=True))
        cursor.key = key
        run = frames[: last_miss + 1]
        if replay:
            run = np.concatenate([np.stack([f for _, f in replay]), run])
        return run, _Plan(keys, known, len(replay), last_miss + 1)

    def finish(self, plan: _Plan, stream: SileroStream, probs: list[float]) -> list[float]:
        """The raw probabilities of the planned frames, given the model's ``probs`` for the frames it ran.

        Stores the new probabilities and a checkpoint of the stream's state after them.
        """
        ran = probs[plan.replay :]
        out = [*ran, *(p for p in plan.known[plan.run :] if p is not None)]
        self.hits += len(plan.keys) - plan.run
        self.runs += len(probs)
        if plan.run:
            if len(self.probs) >= _MAX_FRAMES:
                self.probs.clear()
                self._checkpoints.clear()
            for k, p in zip(plan.keys[: plan.run], ran, strict=True):
                if k not in self.probs:
                    self.probs[k] = p
                    self._unsaved.append(k)
            if len(self._checkpoints) >= _MAX_CHECKPOINTS:
                del self._checkpoints[next(iter(self._checkpoints))]
            self._checkpoints[plan.keys[plan.run - 1]] = (np.array(stream.state), stream.context.copy())
        return out

    def save(self, min_records: int = 0) -> None:
        """Append the probabilities not yet on disk to the cache file, if there are at least ``min_records``.

        One write per call; without a folder it only forgets which records are new. A folder that cannot
        be written (e.g. a sweep's folder deleted while the worker still saves into it) is logged and
        dropped: the cache goes on in memory only.
        """
        if self.folder is None or not self._unsaved:
            self._unsaved.clear()
            return
        if len(self._unsaved) < min_records:
            return
        data = b"".join(_RECORD.pack(k, self.probs[k]) for k in self._unsaved if k in self.probs)
        self._unsaved.clear()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            flags = (
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
            )  # Windows: no \n → \r\n
            fd = os.open(self.folder / CACHE_FILE, flags, 0o644)
        except OSError as exc:
            log.warning(
                "the VAD cache cannot be saved in %s (%s); it is kept in memory only", self.folder, exc
            )
            self.folder = None
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
