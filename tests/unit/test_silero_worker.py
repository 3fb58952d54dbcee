"""The Silero worker process: same probabilities as in-process Silero, batched, ordered, restartable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vlab.audio.silero_worker import SileroWorker
from vlab.audio.vad import SileroModel, StreamingVad, VadEvent, VadParams
from vlab.clock import ManualClock
from vlab.testing import spoken_prompt

needs_sigstop = pytest.mark.skipif(
    not hasattr(signal, "SIGSTOP"), reason="stopping a process to hold its answer needs SIGSTOP (POSIX only)"
)
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
            await asyncio.sleep(
                0
            )  # wall-clock ok: one loop turn, so other streams' requests interleave with ours
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


async def _kill_with_a_request_pending(
    worker: SileroWorker, model: SileroModel, pcm: bytes
) -> tuple[str, subprocess.Popen[bytes]]:
    """Kill the running worker while it owes an answer; return the error that answer fails with, and it.

    The reader thread fails pending requests only after it has counted the exit, so once the answer has
    failed the next request starts a new worker (or finds the worker broken).
    """
    assert await asyncio.wait_for(worker.submit(model, RATE, pcm), 30) is not None  # running, model loaded
    proc = worker._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGSTOP)  # it cannot answer: the next request is surely pending
    pending = worker.submit(model, RATE, pcm)
    worker.flush()
    proc.kill()
    with pytest.raises(RuntimeError) as failed:
        await asyncio.wait_for(pending, 10)
    return str(failed.value), proc


@needs_sigstop
def test_a_dead_worker_fails_pending_requests_and_restarts(clips: list[bytes]) -> None:
    worker = SileroWorker()

    async def main() -> None:
        error, dead = await _kill_with_a_request_pending(worker, SileroModel(), clips[0][: CHUNK * 5])
        assert "Silero worker process exited" in error
        fresh = SileroModel()
        probs = await asyncio.wait_for(worker.submit(fresh, RATE, clips[1][: CHUNK * 8]), 30)
        assert probs == _local(clips[1][: CHUNK * 8], CHUNK * 8)  # a new worker, a fresh stream
        assert dead.stdin is not None and dead.stdout is not None
        assert dead.stdin.closed and dead.stdout.closed  # its pipes are not left to the collector

    try:
        asyncio.run(main())
    finally:
        worker.close()


@needs_sigstop
def test_requests_beyond_a_full_pipe_neither_block_the_loop_nor_lose_their_order(clips: list[bytes]) -> None:
    """The loop writes what the pipe takes; the rest waits in the writer thread until the worker reads."""
    worker = SileroWorker()
    pcm = b"".join(clips)
    models = [SileroModel() for _ in range(12)]  # 12 streams of the three clips: about 2.5 MB of requests

    async def main() -> tuple[int, list[list[float]]]:
        assert await asyncio.wait_for(worker.submit(SileroModel(), RATE, b""), 30) == []  # running
        assert worker._proc is not None
        pid = worker._proc.pid
        os.kill(pid, signal.SIGSTOP)  # it reads nothing: the pipe fills
        try:
            futures = [
                [worker.submit(model, RATE, pcm[i : i + CHUNK]) for i in range(0, len(pcm), CHUNK)]
                for model in models
            ]
            worker.flush()  # returns although the pipe (1 MB at most) cannot take it all
            waiting = len(worker._unsent) + (1 if worker._writing else 0)
        finally:
            os.kill(pid, signal.SIGCONT)
        answers = [await asyncio.wait_for(asyncio.gather(*f), 60) for f in futures]
        return waiting, [[p for r in stream for p in r] for stream in answers]

    try:
        waiting, got = asyncio.run(main())
    finally:
        worker.close()
    assert waiting > 0  # some requests did wait for the worker
    want = _local(pcm, CHUNK)
    assert all(probs == want for probs in got)


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="no SIGINT on this system")
def test_ctrl_c_to_the_process_group_leaves_the_worker_running(clips: list[bytes]) -> None:
    """A notebook's "interrupt kernel" signals every process of the kernel's group, its helpers too."""
    worker = SileroWorker()

    async def main() -> None:
        model = SileroModel()
        first = await asyncio.wait_for(worker.submit(model, RATE, clips[0][: CHUNK * 4]), 30)
        assert worker._proc is not None
        pid = worker._proc.pid
        os.kill(pid, signal.SIGINT)
        more = await asyncio.wait_for(worker.submit(model, RATE, clips[0][CHUNK * 4 : CHUNK * 8]), 30)
        assert first + more == _local(clips[0][: CHUNK * 8], CHUNK * 4)  # the same stream went on
        assert worker._proc is not None and worker._proc.pid == pid

    try:
        asyncio.run(main())
    finally:
        worker.close()


WORKER_PROBE = """\
import gc, sys
from vlab.audio import silero_serve
from vlab.audio.silero import SileroRuntime
def serve(read_fd, write_fd):
    print(gc.get_freeze_count(), SileroRuntime._shared is not None, file=sys.stderr)
silero_serve.serve = serve
silero_serve.main()
"""
"""The worker's entry point with a ``serve`` that reports what start-up left: objects frozen, model loaded."""


def test_the_worker_loads_the_model_and_freezes_its_start_up_heap_before_it_serves() -> None:
    """A full collection walking start-up's objects paused every connection's VAD for 20 to 70 ms."""
    proc = subprocess.run(
        [sys.executable, "-c", WORKER_PROBE],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    frozen, loaded = proc.stderr.split()
    assert int(frozen) > 10_000 and loaded == "True"  # numpy, onnxruntime, the model: tens of thousands


@needs_sigstop
def test_a_worker_that_keeps_dying_is_not_restarted_and_says_why(clips: list[bytes]) -> None:
    clock = ManualClock()
    worker = SileroWorker(clock=clock)
    pcm = clips[0][: CHUNK * 3]

    async def main() -> None:
        model = SileroModel()
        for step_s in (0, 6, 6):  # exits at 0, 6 and 12 s: three, but over more than 10 s
            clock.advance_ns(step_s * 10**9)
            assert "exited (code -9)" in (await _kill_with_a_request_pending(worker, model, pcm))[0]
        assert worker.broken is None
        # one more exit at 12 s: the last three (6, 12, 12 s) fall within 10 s, so no new worker
        assert "exited 3 times within 10 s" in (await _kill_with_a_request_pending(worker, model, pcm))[0]
        assert worker.broken is not None and "exited 3 times" in worker.broken
        with pytest.raises(RuntimeError, match="onnxruntime"):
            await worker.submit(model, RATE, clips[0][:CHUNK])

    try:
        asyncio.run(main())
    finally:
        worker.close()


async def test_an_emulator_pipeline_hears_silence_when_the_worker_is_broken(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its appends are answered with the error, in order: decided as silence up to the last sample, logged once."""
    from vlab.emulator.vad_pipeline import VadPipeline

    worker = SileroWorker()
    worker.broken = "the worker kept exiting"
    monkeypatch.setattr(SileroWorker, "_shared", worker)
    decided: list[float] = []
    events = []
    pipe = VadPipeline(
        StreamingVad(VadParams(), RATE, model=SileroModel()),
        lambda found, at_ms: (events.extend(found), decided.append(at_ms)),
    )
    pcm = spoken_prompt(sample_rate=RATE, lead_ms=100, trail_ms=600).pcm
    chunks = range(0, len(pcm) // CHUNK * CHUNK, CHUNK)
    for i in chunks:
        pipe.feed(pcm[i : i + CHUNK])
    await pipe.settle()
    pipe.close()
    assert events == [] and len(decided) == len(chunks)
    assert decided == sorted(decided) and decided[-1] == pytest.approx(len(chunks) * 20, abs=32)
    assert [r.getMessage() for r in caplog.records].count(
        "the VAD model failed: the worker kept exiting"
    ) == 1


def test_an_emulator_pipeline_decides_as_streaming_vad_does_here_and_a_reset_starts_over(
    clips: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same events at the same input times, and the same audio decided, with the model in the worker."""
    from vlab.emulator.vad_pipeline import VadPipeline

    params = VadParams(silence_duration_ms=300)
    pcm = clips[1] + clips[2]
    here = StreamingVad(params, RATE, model=SileroModel())
    want = [e for i in range(0, len(pcm), CHUNK) for e in here.feed(pcm[i : i + CHUNK])]
    worker = SileroWorker()
    monkeypatch.setattr(SileroWorker, "_shared", worker)

    async def main() -> tuple[list[list[VadEvent]], list[float]]:
        streams: list[list[VadEvent]] = []
        decided: list[float] = []
        made_before = _resamplers()
        pipe = VadPipeline(
            StreamingVad(params, RATE, model=SileroModel()),
            lambda found, at_ms: (streams[-1].extend(found), decided.append(at_ms)),
        )
        for stream in range(2):
            if stream:
                pipe.reset(origin_ms=len(pcm) / 48)
            streams.append([])
            for i in range(0, len(pcm), CHUNK):
                pipe.feed(pcm[i : i + CHUNK])
            await pipe.settle()
        # the worker resamples: a 24 kHz stream here, held by every request's callback, makes no resampler
        assert _resamplers() == made_before
        pipe.close()
        return streams, decided

    try:
        (first, again), decided = asyncio.run(main())
    finally:
        worker.close()
    assert [e.kind for e in want] == ["speech_started", "speech_stopped"] * 2  # two sentences, two turns
    assert first == want and again == want  # after a reset, the stream's times start over from 0
    chunks = len(range(0, len(pcm), CHUNK))
    assert decided[chunks - 1] == decided[-1] == here.decided_ms


def _resamplers() -> int:
    import gc

    import soxr

    return sum(isinstance(o, soxr.ResampleStream) for o in gc.get_objects())


def test_close_waits_for_the_thread_that_reads_the_answers(
    clips: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What still waits is failed and let go of before close() returns: a daemon thread that held a
    requester's callbacks as Python exited kept them alive, which soxr's extension reported as a leak."""
    import vlab.audio.silero_worker as silero_worker

    def slow_close_pipes(proc: subprocess.Popen[bytes]) -> None:
        time.sleep(0.2)  # wall-clock ok: a reader slowed as on a loaded machine, not a wait for an event
        close_pipes(proc)

    close_pipes = silero_worker.close_pipes
    monkeypatch.setattr(silero_worker, "close_pipes", slow_close_pipes)
    others = set(threading.enumerate())  # another worker's reader (the process's shared one) may run
    worker = SileroWorker()
    answers: list[list[float] | BaseException] = []

    async def main() -> None:
        await worker.submit(SileroModel(), RATE, clips[0][: CHUNK * 5])  # started, model loaded
        worker.request(SileroModel(), RATE, clips[0][: CHUNK * 5], answers.append)
        worker.flush()
        worker.close()  # on the loop: the reader can hand nothing to it before close() returns
        readers = [t for t in threading.enumerate() if t.name == "vlab-silero-results" and t not in others]
        assert readers == []

    asyncio.run(main())
    assert len(answers) == 1 and isinstance(answers[0], list)  # a flushed request is still answered


def test_a_cache_folder_that_cannot_be_written_does_not_stop_the_worker(
    clips: list[bytes], tmp_path: Path
) -> None:
    # a sweep that ends and deletes its folder while the worker saves the cache there on the switch away
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    worker = SileroWorker()

    async def main() -> tuple[int, int, list[float]]:
        worker.use_cache(blocker / "vad_cache")
        await asyncio.wait_for(
            worker.submit(SileroModel(), RATE, clips[0][: CHUNK * 8]), 30
        )  # records to save
        assert worker._proc is not None
        pid = worker._proc.pid
        worker.use_cache()  # the worker saves the folder's records now, and cannot
        probs = await asyncio.wait_for(worker.submit(SileroModel(), RATE, clips[1][: CHUNK * 8]), 30)
        assert worker._proc is not None
        return pid, worker._proc.pid, probs

    try:
        before, after, probs = asyncio.run(main())
    finally:
        worker.close()
    assert after == before  # the same process answered: it did not die on the failed save
    assert probs == _local(clips[1][: CHUNK * 8], CHUNK * 8)


def test_probabilities_here_equal_the_workers_answers_piece_by_piece(clips: list[bytes]) -> None:
    from vlab.audio.pcm import silence
    from vlab.audio.silero_serve import probabilities_here
    from vlab.audio.vad_cache import VadCache

    pieces = [[pcm, silence(400, RATE), silence(700, RATE)] for pcm in clips]
    worker = SileroWorker()
    try:

        async def one(stream: list[bytes]) -> list[list[float]]:
            model = SileroModel()
            return [await worker.submit(model, RATE, piece) for piece in stream]

        async def main() -> list[list[list[float]]]:
            return list(await asyncio.gather(*(one(stream) for stream in pieces)))

        want = asyncio.run(main())
    finally:
        worker.close()
    for cache in (None, VadCache()):  # and again, all from the cache
        for _ in range(2 if cache else 1):
            got = probabilities_here(pieces, RATE, SileroModel(), cache=cache)
            assert [[b.tolist() for b in s] for s in got] == want
    assert all(len(s[1]) > 5 and not any(s[2]) for s in want)  # each silence completed frames, all 0
    assert cache is not None and cache.hits > 0
