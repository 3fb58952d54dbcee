"""The Silero worker process's side: it reads requests, runs the streams' frames as one batch, and answers.

Started by :class:`vlab.audio.silero_worker.SileroWorker` as ``python -m vlab.audio.silero_serve``;
:mod:`vlab.audio.silero_worker` describes the wire format and the requests. :func:`probabilities_here`
computes the same answers in the calling process (a VAD-only sweep).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np

from vlab._process import freeze_heap
from vlab.audio.silero_worker import (
    AUDIO,
    CACHE,
    CACHE_DISK,
    CACHE_MEMORY,
    CACHE_OFF,
    CLOSE,
    MS_FIELD,
    PLAY,
    PROCESS,
    PROCESS_FIELDS,
    READ_BYTES,
    REQUEST,
    RESET,
    RESULT,
    STOP,
)

if TYPE_CHECKING:
    from vlab.audio.processing import InputProcessor, ProcessingSettings
    from vlab.audio.vad import SileroModel, StreamingVad
    from vlab.audio.vad_cache import CacheCursor, VadCache

__all__ = ["block_probabilities", "main", "probabilities_here", "serve"]


def _new_stream(input_rate: int, model_rate: int, floor: float) -> StreamingVad:
    """The worker's side of one stream: a :class:`StreamingVad` that cuts its audio, with its Silero model."""
    from vlab.audio.vad import SileroModel, StreamingVad, VadParams

    model = SileroModel(model_rate)
    model.floor_energy = floor  # the caller's model's floor, as sent
    return StreamingVad(VadParams(), input_rate, model=model)


def _processing(payload: bytes) -> tuple[ProcessingSettings, float]:
    """The settings and origin (input ms) of a :data:`PROCESS` request's payload."""
    from vlab.audio.processing import ProcessingSettings

    echo, origin_ms = PROCESS_FIELDS.unpack_from(payload)
    noise = payload[PROCESS_FIELDS.size :].decode() or None
    return ProcessingSettings(noise, bool(echo)), origin_ms


def _configure(processors: dict[int, InputProcessor], stream: int, input_rate: int, payload: bytes) -> None:
    """Apply a :data:`PROCESS` request: a stream's processor is created, or its settings change."""
    from vlab.audio.processing import InputProcessor

    settings, origin_ms = _processing(payload)
    processor = processors.get(stream)
    if processor is None:
        processors[stream] = InputProcessor(settings, input_rate, origin_ms)
    else:
        processor.configure(settings)


def _model(vad: StreamingVad) -> SileroModel:
    return cast("SileroModel", vad.model)


def _cache(payload: bytes) -> VadCache | None:
    """The cache a :data:`CACHE` request asks for."""
    from vlab.audio.vad_cache import VadCache

    mode = payload[0] if payload else CACHE_MEMORY
    if mode == CACHE_OFF:
        return None
    return VadCache(payload[1:].decode() if mode == CACHE_DISK else None)


def _run_batch(
    streams: dict[int, StreamingVad],
    batch: dict[int, list[np.ndarray]],
    out: list[bytes],
    cache: VadCache | None = None,
    cursors: dict[int, CacheCursor] | None = None,
) -> None:
    """Run every stream's queued frame blocks (one model call per step across streams); answer each block.

    With a ``cache``, the streams with a cursor run only the frames it does not know.
    """
    for i, blocks in block_probabilities(streams, batch, cache, cursors).items():
        for probs in blocks:
            out.append(RESULT.pack(i, len(probs)) + probs.tobytes())
    batch.clear()


def block_probabilities(
    streams: dict[int, StreamingVad],
    batch: dict[int, list[np.ndarray]],
    cache: VadCache | None = None,
    cursors: dict[int, CacheCursor] | None = None,
) -> dict[int, list[np.ndarray]]:
    """The gated probabilities (float32) of every stream's frame blocks, run as one batch across streams.

    With a ``cache``, the streams with a cursor run only the frames it does not know.
    """
    from vlab.audio.silero import step_streams

    ids = list(batch)
    frames = [batch[i][0] if len(batch[i]) == 1 else np.concatenate(batch[i]) for i in ids]
    by_rate: dict[int, list[int]] = {}
    for k, i in enumerate(ids):
        by_rate.setdefault(_model(streams[i]).sample_rate, []).append(k)
    probs: list[list[float]] = [[] for _ in ids]
    for ks in by_rate.values():
        run: dict[int, np.ndarray] = {}
        plans = {}
        for k in ks:
            cursor = None if cache is None or cursors is None else cursors.get(ids[k])
            if cursor is not None and cache is not None and len(frames[k]):
                run[k], plans[k] = cache.plan(cursor, _model(streams[ids[k]]).stream, frames[k])
            else:
                run[k] = frames[k]
        active = [k for k in ks if len(run[k])]
        results = step_streams([_model(streams[ids[k]]).stream for k in active], [run[k] for k in active])
        ran = dict(zip(active, results, strict=True))
        for k in ks:
            if k in plans and cache is not None:
                probs[k] = cache.finish(plans[k], _model(streams[ids[k]]).stream, ran.get(k, []))
            else:
                probs[k] = ran.get(k, [])
    answers: dict[int, list[np.ndarray]] = {}
    for k, i in enumerate(ids):
        model, start, answers[i] = _model(streams[i]), 0, []
        for block in batch[i]:
            gated = model.gate(block, probs[k][start : start + len(block)])
            answers[i].append(np.asarray(gated, dtype=np.float32))
            start += len(block)
    return answers


def probabilities_here(
    audio: Sequence[Sequence[bytes]],
    input_rate: int,
    model: SileroModel,
    processing: ProcessingSettings | None = None,
    cache: VadCache | None = None,
) -> list[list[np.ndarray]]:
    """The worker's answers computed in this process, for offline use (a VAD-only sweep).

    ``audio[s]`` is stream ``s``'s PCM16 at ``input_rate``, in pieces sent one after the other, each piece
    answered on its own (as requests the worker reads apart). Streams are processed (``processing``),
    resampled, cut, cached and gated exactly as the worker does for ``model``'s streams, and run as one
    batch across streams. Knowing each stream whole, it runs none of the frames after a stream's last
    frame above the silence floor: the floor answers them 0, and no later frame needs the model's state.

    Returns:
        For each stream and piece, the gated probabilities (float32) of the frames that piece completes.
    """
    from vlab.audio.processing import InputProcessor
    from vlab.audio.vad_cache import CacheCursor

    active = processing if processing is not None and processing.active else None
    streams: dict[int, StreamingVad] = {}
    batch: dict[int, list[np.ndarray]] = {}
    for s, pieces in enumerate(audio):
        processor = None if active is None else InputProcessor(active, input_rate, 0.0)
        rate = input_rate if processor is None else processor.rate
        streams[s] = _new_stream(rate, model.sample_rate, model.floor_energy)
        batch[s] = []
        for piece in pieces:
            _cut(streams[s], [piece], batch[s], processor)
    lengths = {s: [len(block) for block in blocks] for s, blocks in batch.items()}
    if model.floor_energy >= 0:
        for s, blocks in batch.items():
            batch[s] = _without_silent_tail(blocks, model.floor_energy)
    cursors = None if cache is None else {s: CacheCursor.start(model.sample_rate) for s in streams}
    answers = block_probabilities(streams, batch, cache, cursors)
    return [
        [np.pad(probs, (0, n - len(probs))) for probs, n in zip(answers[s], lengths[s], strict=True)]
        for s in range(len(audio))
    ]


def _without_silent_tail(blocks: list[np.ndarray], floor_energy: float) -> list[np.ndarray]:
    """The frame blocks cut after their last frame whose energy is at least ``floor_energy`` (same count)."""
    frames = np.concatenate(blocks)
    loud = np.flatnonzero(np.einsum("ij,ij->i", frames, frames) >= floor_energy)
    keep = int(loud[-1]) + 1 if len(loud) else 0
    ends = np.cumsum([len(block) for block in blocks])
    return [
        frames[min(end - len(block), keep) : min(end, keep)] for block, end in zip(blocks, ends, strict=True)
    ]


def _cut(
    stream: StreamingVad, pieces: list[bytes], blocks: list[np.ndarray], processor: InputProcessor | None
) -> None:
    """Process and cut a stream's audio requests in one pass: all the frames go to the last request's block."""
    audio = b"".join(pieces)
    frames = stream.prepare(audio if processor is None else processor.process(audio)).frames
    blocks += [frames[:0]] * (len(pieces) - 1) + [frames]


def serve(read_fd: int, write_fd: int) -> None:
    """Answer requests from ``read_fd`` on ``write_fd`` until end of input.

    A stream's consecutive audio requests in one read are cut in one pass; its frames are then answered
    on the last of them (the earlier ones complete no frame), as if the audio had come in one append.
    """
    from vlab.audio.vad_cache import CacheCursor

    streams: dict[int, StreamingVad] = {}
    processors: dict[int, InputProcessor] = {}  # streams whose audio is processed before the model
    cache = _cache(b"")
    cursors: dict[int, CacheCursor] = {}  # streams that use the cache
    buf = bytearray()
    while chunk := os.read(read_fd, READ_BYTES):
        buf += chunk
        out: list[bytes] = []
        audio: dict[int, list[bytes]] = {}  # stream → its audio in this read, not yet cut
        batch: dict[int, list[np.ndarray]] = {}  # stream → its frame blocks (one per request), in order

        pos = 0
        while len(buf) - pos >= REQUEST.size:
            op, stream, input_rate, model_rate, floor, n = REQUEST.unpack_from(buf, pos)
            end = pos + REQUEST.size + n
            if end > len(buf):
                break
            payload = bytes(buf[pos + REQUEST.size : end])
            pos = end
            if op == AUDIO:
                if stream not in streams:
                    processor = processors.get(stream)
                    streams[stream] = _new_stream(
                        input_rate if processor is None else processor.rate, model_rate, floor
                    )
                    cursors[stream] = CacheCursor.start(model_rate)
                audio.setdefault(stream, []).append(payload)
                continue
            if stream in audio:  # the stream's earlier audio goes through as it was before this request
                _cut(streams[stream], audio.pop(stream), batch.setdefault(stream, []), processors.get(stream))
            if op == CACHE:
                if batch:
                    _run_batch(streams, batch, out, cache, cursors)
                if cache is not None:
                    cache.save()
                cache = _cache(payload)
            elif op == PROCESS:
                _configure(processors, stream, input_rate, payload)
            elif op == PLAY and stream in processors:
                processors[stream].play(
                    payload[MS_FIELD.size :], input_rate, MS_FIELD.unpack_from(payload)[0]
                )
            elif op == STOP and stream in processors:
                processors[stream].stop_playback(MS_FIELD.unpack_from(payload)[0])
            elif op in (RESET, CLOSE):
                if stream in batch:  # this stream's earlier frames before its state changes
                    _run_batch(streams, batch, out, cache, cursors)
                if op == CLOSE:
                    streams.pop(stream, None)
                    processors.pop(stream, None)
                    cursors.pop(stream, None)
                    continue
                if stream in streams:
                    streams[stream].reset()
                    if stream in cursors:
                        cursors[stream] = CacheCursor.start(_model(streams[stream]).sample_rate)
                if stream in processors and payload:
                    processor = processors[stream]
                    processor.restart(processor.input_rate, MS_FIELD.unpack_from(payload)[0])
        del buf[:pos]
        for stream, pieces in audio.items():
            _cut(streams[stream], pieces, batch.setdefault(stream, []), processors.get(stream))
        if batch:
            _run_batch(streams, batch, out, cache, cursors)
        if cache is not None:
            cache.save(min_records=4096)
        if out:
            data = memoryview(b"".join(out))
            while data:
                data = data[os.write(write_fd, data) :]
    if cache is not None:
        cache.save()


def main() -> None:
    """Entry point: serve stdin → stdout (the answers get stdout's pipe to themselves) until stdin ends.

    Ctrl-C and a notebook's "interrupt kernel" reach every process of the group: the worker ignores
    them, as its parent's helper (it ends when its parent closes its input or exits). The model is
    loaded before the first request, and what start-up built is frozen (:func:`~vlab._process.freeze_heap`),
    so a full garbage collection does not hold up every connection's VAD.
    """
    from vlab.audio.silero import SileroRuntime

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything a library prints goes to stderr
    SileroRuntime.shared()
    freeze_heap()
    serve(sys.stdin.fileno(), answers)


if __name__ == "__main__":
    main()
