"""A sweep of 3 settings × the bundled prompts on the embedded emulator."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time

from benchmarks._common import Figure, Size


def bench_sweep(size: Size) -> list[Figure]:
    from vlab.prompts import load_prompt_set
    from vlab.sweep import run_sweep

    prompts = [p.id for p in load_prompt_set()]
    if size.tiny:
        prompts = prompts[:1]
    elif size.scale < 1:
        prompts = prompts[:4]
    config = {
        "target": {"speed": "max", "latency": "typical"},
        "prompts": {"include": prompts},
        "grid": {
            "type": "server_vad",
            "threshold": [0.5],
            "prefix_padding_ms": [300],
            "silence_duration_ms": [300, 500, 800] if not size.tiny else [500],
        },
        "run": {"repeats": 1, "concurrency": 4, "timeout_s": 60, "baseline": False},
    }
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):
            result = run_sweep(config, d, progress=False, session_options={"dotenv_path": False})
        wall = time.perf_counter() - t
        # baseline: the compute floor, every cell's audio through Silero alone, in this process
        from vlab.audio.pcm import pcm16_to_float
        from vlab.audio.vad import SileroModel
        from vlab.prompts import select_prompts

        chosen = select_prompts(load_prompt_set(), prompts)
        model = SileroModel()
        n_settings = len(config["grid"]["silence_duration_ms"])
        audio_s = 0.0
        t = time.perf_counter()
        for p in chosen:
            x = pcm16_to_float(p.pcm(16000))
            audio_s += len(x) / 16000
            model.reset()
            for i in range(0, len(x) - 511, 512):
                model.probability(x[i : i + 512])
        floor = (time.perf_counter() - t) * n_settings
    ok = sum(1 for c in result.cells if c.status == "ok")
    cells = len(result.cells)
    return [
        Figure(
            f"sweep of {n_settings} settings × {len(chosen)} bundled prompts (embedded emulator, speed max)",
            f"{wall:.1f} s wall for {cells} cells ({ok} ok, concurrency 4); {audio_s * n_settings:.0f} s of audio",
            "≤ 30 s wall on 2 cores",
            wall / 30.0 if size.scale >= 1 else wall / (30.0 * cells / 45),
            baseline=f"Silero alone over the same audio in this process: {floor:.1f} s "
            f"(the sweep takes {wall / max(floor, 1e-9):.1f}× that floor)",
        )
    ]


def _silero_once_s(prompt_ids: list[str]) -> tuple[float, float]:
    """Silero alone over the prompts' audio once, in this process: (seconds, seconds of audio).

    The audio is read and resampled to 16 kHz, and the model loaded, before the clock starts: the floor is
    the model's own time.
    """
    from vlab.audio.pcm import pcm16_to_float
    from vlab.audio.silero import SileroStream, step_streams
    from vlab.prompts import load_prompt_set, select_prompts

    audio = [pcm16_to_float(p.pcm(16000)) for p in select_prompts(load_prompt_set(), prompt_ids)]
    frames = [x[: len(x) // 512 * 512].reshape(-1, 512) for x in audio]
    step_streams(
        [SileroStream()], [frames[0][:8]]
    )  # loads the model (about 0.1 s), as the sweep's worker has
    t = time.perf_counter()
    for f in frames:
        step_streams([SileroStream()], [f])
    return time.perf_counter() - t, sum(len(x) for x in audio) / 16000


ROUNDS = 3
"""The VAD-only sweep and its floor are each timed this often, alternately; the best of each is kept."""


def bench_vad_cache(size: Size) -> list[Figure]:
    """9 settings × the bundled prompts: a VAD-only sweep against Silero once; the session sweep beside it."""
    from unittest import mock

    from vlab.audio.silero_worker import SileroWorker
    from vlab.prompts import load_prompt_set
    from vlab.sweep import run_sweep

    prompts = [p.id for p in load_prompt_set()]
    silences = [200, 300, 400, 500, 600, 700, 800, 1000, 1200]
    if size.tiny:
        prompts, silences = prompts[:1], silences[:2]
    elif size.scale < 1:
        prompts = prompts[:4]
    config = {
        "target": {"speed": "max", "latency": "typical"},
        "prompts": {"include": prompts},
        "grid": {"silence_duration_ms": silences},
        "run": {"concurrency": 4, "timeout_s": 60, "baseline": False},
    }
    vad_config = {**config, "run": {"baseline": False, "mode": "vad"}}
    original = SileroWorker.use_cache

    def no_cache(self: SileroWorker, folder: object = None, *, enabled: bool = True) -> None:
        original(self, enabled=False)

    def worker_cpu_s() -> float:
        """CPU time of this process's Silero worker so far (it runs the emulator's model and processing)."""
        import psutil

        proc = SileroWorker.shared()._proc
        if proc is None:
            return 0.0
        times = psutil.Process(proc.pid).cpu_times()
        return float(times.user + times.system)

    SileroWorker.shared().start()
    walls, cpus = {}, {}
    for label in ("without", "with"):
        with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
            if label == "without":
                stack.enter_context(mock.patch.object(SileroWorker, "use_cache", no_cache))
            stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
            t, cpu = time.perf_counter(), worker_cpu_s()
            result = run_sweep(config, d, progress=False, session_options={"dotenv_path": False})
            walls[label], cpus[label] = time.perf_counter() - t, worker_cpu_s() - cpu
            assert all(c.status == "ok" for c in result.cells), [c.error for c in result.cells]
    vad_walls, floors = [], []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as d:  # a new folder: a cold VAD cache, Silero runs once
            t = time.perf_counter()
            result = run_sweep(vad_config, d, progress=False)
            vad_walls.append(time.perf_counter() - t)
            assert all(c.status == "ok" for c in result.cells), [c.error for c in result.cells]
        floor, audio_s = _silero_once_s(prompts)
        floors.append(floor)
    wall, floor = min(vad_walls), min(floors)
    cells = len(silences) * len(prompts)
    return [
        Figure(
            f"{len(silences)} settings × {len(prompts)} bundled prompts, VAD-only sweep (mode = 'vad'), cold cache",
            f"{wall:.2f} s wall for {cells} cells ({audio_s:.0f} s of distinct audio), config to tables; "
            f"Silero alone over that audio once: {floor:.2f} s",
            "≤ 2× the time Silero alone takes over that audio once",
            wall / (2 * max(floor, 1e-9)),
            baseline=f"best of {ROUNDS} each, alternately; the same grid as a session sweep at speed max: "
            f"{walls['with']:.1f} s with the VAD cache ({walls['without']:.1f} s without), the Silero worker "
            f"{cpus['with']:.2f} s of CPU ({cpus['without']:.2f} s without)",
            notes=[
                "the VAD-only sweep runs each prompt's audio once through the emulator's model path (batched "
                "across prompts, with the sweep's VAD cache), then steps each setting's turn machine over the "
                "probabilities; its detections equal the session sweep's (tests/integration/test_sweep_vad.py)",
                "a session sweep pays about 55 ms per cell for the session, the WebSocket and the analysis, "
                "whatever the audio: that, not Silero, is its floor",
            ],
        ),
    ]
