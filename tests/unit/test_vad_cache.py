"""The VAD cache: Silero's probabilities computed once per audio, and the same decisions with it as without."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from vlab.audio import vad_cache
from vlab.audio.pcm import pcm16_to_float
from vlab.audio.silero import SileroStream, step_streams
from vlab.audio.silero_worker import SileroWorker
from vlab.audio.vad import SileroModel, StreamingVad, VadEvent, VadParams
from vlab.audio.vad_cache import CACHE_FILE, CacheCursor, VadCache
from vlab.emulator.vad_pipeline import VadPipeline
from vlab.testing import spoken_prompt

RATE = 24000
FRAME = 512  # Silero at 16 kHz


def _model_frames(text: str, **silences: float) -> np.ndarray:
    """``text`` spoken, as whole 16 kHz model frames."""
    x = pcm16_to_float(spoken_prompt(text, sample_rate=16000, **silences).pcm)
    return x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """A spoken prompt as 16 kHz model frames."""
    return _model_frames("Book a table for two, at eight.", lead_ms=300, trail_ms=600)


def _plain(frames: np.ndarray) -> list[float]:
    return step_streams([SileroStream()], [frames])[0]


def _cached(cache: VadCache, frames: np.ndarray, chunks: list[int]) -> list[float]:
    """One stream through the cache, its frames arriving in blocks of the given sizes (cycled)."""
    stream, cursor, out, i, k = SileroStream(), CacheCursor.start(16000), [], 0, 0
    while i < len(frames):
        block = frames[i : i + chunks[k % len(chunks)]]
        run, plan = cache.plan(cursor, stream, block)
        out += cache.finish(plan, stream, step_streams([stream], [run])[0] if len(run) else [])
        i, k = i + len(block), k + 1
    return out


def test_cached_probabilities_equal_the_model_frame_for_frame(frames: np.ndarray, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    tail = (rng.normal(0, 0.01, (20, FRAME))).astype(np.float32)
    longer = np.concatenate([frames, np.zeros((15, FRAME), np.float32)])
    diverged = np.concatenate([frames[: len(frames) // 2], tail])
    cache = VadCache(tmp_path)
    assert _cached(cache, frames, [3, 1, 7]) == _plain(frames)
    runs = cache.runs
    assert _cached(cache, frames, [5]) == _plain(frames)  # all known: the model did not run
    assert cache.runs == runs and cache.hits >= len(frames)
    assert _cached(cache, longer, [4, 2]) == _plain(longer)  # known, then caught up from a checkpoint
    assert cache.runs - runs < 20  # only the new frames and a few since the last checkpoint ran
    assert _cached(cache, diverged, [6]) == _plain(diverged)  # diverging mid-way
    cache.save()
    assert (tmp_path / CACHE_FILE).stat().st_size == 20 * len(cache.probs)
    disk = VadCache(tmp_path)  # probabilities only: a divergence replays the stream from its start
    assert disk.probs == cache.probs
    assert _cached(disk, np.concatenate([frames, tail]), [9]) == _plain(np.concatenate([frames, tail]))


def test_a_stream_that_leaves_the_known_path_resumes_from_the_last_checkpoint_and_replays_the_rest(
    frames: np.ndarray,
) -> None:
    cache = VadCache()
    assert _cached(cache, frames, [10]) == _plain(frames)  # checkpoints after frames 9, 19, 29...
    turn = np.concatenate([frames[:45], _model_frames("What time is it?", lead_ms=0, trail_ms=300)])
    runs = cache.runs
    assert _cached(cache, turn, [5]) == _plain(turn)  # 45 known, then new speech
    assert cache.runs - runs == 5 + len(turn) - 45  # frames 40-44 replayed from the checkpoint at 39
    for known in (1, 2):  # the checkpoint is the lag's first or second frame: nothing more to replay
        cache = VadCache()
        _cached(cache, frames[:known], [known])
        branch = np.concatenate([frames[:known], turn[45:]])
        runs = cache.runs
        assert _cached(cache, branch, [known, len(branch)]) == _plain(branch)
        assert cache.runs - runs == len(turn) - 45
    cache.save()  # without a folder: nothing to write, nothing kept to write
    assert cache._unsaved == []


def test_a_killed_writer_s_last_record_is_ignored(frames: np.ndarray, tmp_path: Path) -> None:
    cache = VadCache(tmp_path)
    _cached(cache, frames[:10], [10])
    cache.save()
    with open(tmp_path / CACHE_FILE, "ab") as f:
        f.write(b"\x01" * 7)
    assert VadCache(tmp_path).probs == cache.probs


class _WindowsOs:
    """``os`` as vad_cache sees it on Windows: a file opened without ``O_BINARY`` is in text mode."""

    O_BINARY = 0x8000

    def __init__(self) -> None:
        self.text_fds: set[int] = set()

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def open(self, path: object, flags: int, mode: int = 0o777) -> int:
        fd = os.open(path, flags & ~self.O_BINARY, mode)  # type: ignore[arg-type]
        if not flags & self.O_BINARY:
            self.text_fds.add(fd)
        return fd

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if fd not in self.text_fds:
            return os.write(fd, data)
        os.write(fd, bytes(data).replace(b"\n", b"\r\n"))  # what the C runtime's text mode does
        return len(data)


def test_the_cache_file_is_written_in_binary_mode_on_windows(
    frames: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    windows = _WindowsOs()
    monkeypatch.setattr(vad_cache, "os", windows)
    cache = VadCache(tmp_path)
    _cached(cache, frames, [len(frames)])
    records = [vad_cache._RECORD.pack(k, p) for k, p in cache.probs.items()]
    assert any(b"\n" in r for r in records)  # bytes that text mode would change
    cache.save()
    assert windows.text_fds == set()
    assert (tmp_path / CACHE_FILE).stat().st_size == len(records) * vad_cache._RECORD.size
    assert VadCache(tmp_path).probs == cache.probs


async def _decisions(worker: SileroWorker, pcm: bytes, chunk: int, params: VadParams) -> list[VadEvent]:
    """The VAD events of one emulator connection's pipeline fed ``pcm`` in ``chunk``-byte appends."""
    events: list[VadEvent] = []
    pipe = VadPipeline(StreamingVad(params, RATE, model=SileroModel()), lambda found, _: events.extend(found))
    for k, i in enumerate(range(0, len(pcm), chunk)):
        pipe.feed(pcm[i : i + chunk])
        if k % 5 == 0:
            await asyncio.sleep(
                0
            )  # wall-clock ok: one loop turn (no time passes), so the worker's answers interleave
    await pipe.settle()
    pipe.close()
    return events


def test_emulator_decisions_with_the_cache_equal_those_without(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cells of a sweep: one prompt, tails and append sizes that differ, three settings; twice each."""
    prompt = spoken_prompt(
        "Hello. Is the shop open, on Sunday?", sample_rate=RATE, lead_ms=400, trail_ms=0
    ).pcm
    cells = [(prompt + bytes(2 * RATE * tail // 1000), chunk) for tail, chunk in ((600, 960), (1500, 1920))]
    grid = [
        VadParams(),
        VadParams(threshold=0.7, silence_duration_ms=200),
        VadParams(silence_duration_ms=900),
    ]

    def run(worker: SileroWorker) -> list[list[VadEvent]]:
        monkeypatch.setattr(SileroWorker, "_shared", worker)

        async def main() -> list[list[VadEvent]]:
            return [await _decisions(worker, pcm, chunk, p) for p in grid for pcm, chunk in cells]

        try:
            return asyncio.run(main())
        finally:
            worker.close()

    without = SileroWorker()
    without.use_cache(enabled=False)
    want = run(without)
    with_cache = SileroWorker()
    with_cache.use_cache(tmp_path)
    assert run(with_cache) == want
    assert any(len(e) >= 2 for e in want)  # speech was found and ended
    records = (tmp_path / CACHE_FILE).stat().st_size // 20
    longest = len(cells[1][0]) // 2 * 16000 // RATE // FRAME
    assert records <= longest + 1  # each distinct frame computed once, whatever the setting
    from_disk = SileroWorker()
    from_disk.use_cache(tmp_path)
    assert run(from_disk) == want


def test_a_folder_that_cannot_be_written_leaves_the_cache_in_memory(
    frames: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")  # e.g. a sweep's folder deleted and replaced while its worker still saves there
    cache = VadCache(blocker / "vad_cache")
    assert _cached(cache, frames[:12], [4]) == _plain(frames[:12])
    with caplog.at_level("WARNING", logger="vlab.audio"):
        cache.save()
    assert cache.folder is None and "cannot be saved in" in caplog.text and "not_a_folder" in caplog.text
    runs = cache.runs
    assert _cached(cache, frames[:12], [5]) == _plain(frames[:12]) and cache.runs == runs  # still cached


async def test_sync_returns_once_the_worker_saved_the_cache_it_switched_away_from(tmp_path):
    # a sweep switches away from its cache at the end and returns after sync(): its folder may go at once
    pcm = spoken_prompt("Seven nine three.").pcm
    worker = SileroWorker()
    try:
        worker.use_cache(tmp_path)
        probs = await worker.submit(SileroModel(), 24000, pcm)
        worker.use_cache()  # the worker saves tmp_path's cache when it reads this
        await worker.sync()
        assert (tmp_path / CACHE_FILE).stat().st_size == len(probs) * vad_cache._RECORD.size
    finally:
        worker.close()
