"""The emulator and the Silero worker start in a process made with ``spawn``, Windows' (and macOS') only
start method: nothing they need is inherited from a forked parent."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import soundfile as sf

from vlab.settings import ServerVad, SessionSettings
from vlab.testing import spoken_prompt


def serve_emulator(pipe: Connection) -> None:
    """In the spawned child: run an emulator, send its endpoint and key, serve until told to stop."""
    from vlab.emulator import Emulator

    async def main() -> None:
        async with Emulator(speed="max", latency="instant") as emu:
            pipe.send((emu.endpoint, emu.api_key))
            await asyncio.to_thread(pipe.recv)  # until the parent says stop

    asyncio.run(main())


def run_silero_worker(pipe: Connection) -> None:
    """In the spawned child: Silero probabilities of a spoken prompt through the shared worker process."""
    from vlab.audio.silero_worker import SileroWorker
    from vlab.audio.vad import SileroModel

    pcm = spoken_prompt("Hello there, how are you?", lead_ms=300, trail_ms=600).pcm
    worker = SileroWorker()

    async def main() -> list[float]:
        return await asyncio.wait_for(worker.submit(SileroModel(), 24000, pcm), 60)

    try:
        pipe.send(asyncio.run(main()))
    finally:
        worker.close()


def _spawned(target: Any) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=target, args=(theirs,), daemon=True)
    proc.start()
    theirs.close()
    return proc, ours


def test_silero_worker_runs_in_a_spawned_process() -> None:
    proc, pipe = _spawned(run_silero_worker)
    try:
        assert pipe.poll(120), "the spawned process sent no probabilities"
        probs = pipe.recv()
    finally:
        proc.join(60)
    assert proc.exitcode == 0
    assert max(probs) > 0.9 and min(probs) < 0.1  # speech and the silence around it


async def test_emulator_in_a_spawned_process_detects_and_answers_speech(tmp_path) -> None:
    from vlab.replay import replay

    proc, pipe = _spawned(serve_emulator)
    try:
        assert await asyncio.to_thread(pipe.poll, 120), "the spawned emulator did not start"
        endpoint, api_key = pipe.recv()
        prompt = tmp_path / "prompt.wav"
        speech = spoken_prompt("What time is it in Paris?", lead_ms=300, trail_ms=1200)
        sf.write(prompt, np.frombuffer(speech.pcm, dtype=np.int16), speech.sample_rate, subtype="PCM_16")
        result = await replay(
            prompt,
            SessionSettings(turn_detection=ServerVad()),
            run_dir=tmp_path / "run",
            speed=float("inf"),
            endpoint=endpoint,
            api_key=api_key,
            dotenv_path=False,
        )
    finally:
        pipe.send("stop")
        await asyncio.to_thread(proc.join, 60)
    assert proc.exitcode == 0
    assert len(result.turns) == 1  # its server VAD (Silero, in the worker the child started) ended the turn
