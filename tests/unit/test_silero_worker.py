"""The Silero worker process: same probabilities as in-process Silero, batched, ordered, restartable."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from vlab.audio.silero_worker import SileroWorker
from vlab.audio.vad import SileroModel, StreamingVad, VadParams
from vlab.testing import spoken_prompt

RATE = 24000
CHUNK = 960  # 20 ms of PCM16 at 24 kHz


def _local(pcm: bytes, chunk: int) -> list[float]:
    """What StreamingVad.feed would compute, chunk by chunk, in this process."""
    vad = StreamingVad(VadParams(), RATE, model=SileroModel())
    probs: list[float] = []
    for i in range(0, len(pcm), chunk):
        frames = vad.prepare(pcm[i : i + chunk])
        probs += vad.model.probabilities(frames.frames) if len(frames.frames) else []
    return probs


@pytest.fixture(scope="module")
def clips() -> list[bytes]:
    texts = ["Hello there.", "What time is it in Paris?", "Turn on the kitchen lights, please."]
    return [spoken_prompt(t, lead_ms=300, trail_ms=600).pcm for t in texts]


async def _stream(worker: SileroWorker, pcm: bytes, chunk: int, reset_at: int | None = None) -> list[float]:
    model = SileroModel()
    futures = []
    for k, i in enumerate(range(0, len(pcm), chunk)):
        if k == reset_at:
            await asyncio.gather(*futures)
            worker.reset(model)
        futures.append(worker.submit(model, RATE, pcm[i : i + chunk]))
        if k % 7 == 0:
            await asyncio.sleep(0)  # let other streams' requests interleave with ours
    results = await asyncio.gather(*futures)
    worker.forget(model)
    return [p for r in results for p in r]


def test_worker_matches_in_process_silero_across_concurrent_streams(clips: list[bytes]) -> None:
    worker = SileroWorker()
    try:

        async def main() -> list[list[float]]:
            return list(await asyncio.gather(*(_stream(worker, pcm, CHUNK) for pcm in clips)))

        got = asyncio.run(main())
    finally:
        worker.close()
    for pcm, probs in zip(clips, got, strict=True):
        want = _local(pcm, CHUNK)
        assert probs == want  # same model, same cutting: identical, batched or not
        assert max(want) > 0.9 and want.count(0.0) > 10  # speech and digital silence were both there


def test_reset_starts_the_stream_over(clips: list[bytes]) -> None:
    worker = SileroWorker()
    clip = clips[0][: len(clips[0]) // CHUNK * CHUNK]  # whole chunks: the second copy starts on one
    try:
        got = asyncio.run(_stream(worker, clip + clip, CHUNK, reset_at=len(clip) // CHUNK))
    finally:
        worker.close()
    first = _local(clip, CHUNK)
    assert got == first + first


def test_a_dead_worker_fails_pending_requests_and_restarts(clips: list[bytes]) -> None:
    worker = SileroWorker()

    async def main() -> None:
        model = SileroModel()
        assert await worker.submit(model, RATE, clips[0][: CHUNK * 5])  # running: some frames back
        proc = worker._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)  # it cannot answer: the next request is surely pending
        pending = worker.submit(model, RATE, clips[0][: CHUNK * 50])
        await asyncio.sleep(0.05)  # written to the pipe at the end of this loop turn
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="Silero worker process exited"):
            await asyncio.wait_for(pending, 10)
        fresh = SileroModel()
        probs = await asyncio.wait_for(worker.submit(fresh, RATE, clips[1][: CHUNK * 8]), 30)
        assert probs == _local(clips[1][: CHUNK * 8], CHUNK * 8)  # a new worker, a fresh stream

    try:
        asyncio.run(main())
    finally:
        worker.close()


def test_no_frame_yet_is_an_empty_answer() -> None:
    worker = SileroWorker()

    async def main() -> list[list[float]]:
        model = SileroModel()
        silence = np.zeros(CHUNK // 2, dtype=np.int16).tobytes()  # 10 ms: less than one 32 ms frame
        return list(await asyncio.gather(*(worker.submit(model, RATE, silence) for _ in range(4))))

    try:
        got = asyncio.run(main())
    finally:
        worker.close()
    assert len(got) == 4 and [len(r) for r in got].count(0) >= 3  # most 10 ms appends complete no frame
    assert [p for r in got for p in r] == _local(np.zeros(CHUNK * 2, dtype=np.int16).tobytes(), CHUNK // 2)


def test_a_worker_that_keeps_dying_is_not_restarted_and_says_why(clips: list[bytes]) -> None:
    worker = SileroWorker()

    async def main() -> None:
        model = SileroModel()
        for _ in range(3):
            assert await asyncio.wait_for(worker.submit(model, RATE, clips[0][: CHUNK * 3]), 30) is not None
            proc = worker._proc
            assert proc is not None
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            for _ in range(200):  # the reader thread notices the exit
                if worker._proc is None:
                    break
                await asyncio.sleep(0.01)
        assert worker.broken is not None and "exited 3 times" in worker.broken
        with pytest.raises(RuntimeError, match="onnxruntime"):
            await worker.submit(model, RATE, clips[0][:CHUNK])

    try:
        asyncio.run(main())
    finally:
        worker.close()
