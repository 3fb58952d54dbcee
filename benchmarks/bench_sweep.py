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


def bench_vad_cache(size: Size) -> list[Figure]:
    """9 settings × the bundled prompts at speed max, with the VAD cache and without it."""
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
    walls, cpus, main_cpus, cell_walls = {}, {}, {}, {}
    for label in ("without", "with"):
        with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
            if label == "without":
                stack.enter_context(mock.patch.object(SileroWorker, "use_cache", no_cache))
            stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
            t, cpu, main_cpu = time.perf_counter(), worker_cpu_s(), time.process_time()
            result = run_sweep(config, d, progress=False, session_options={"dotenv_path": False})
            walls[label], cpus[label] = time.perf_counter() - t, worker_cpu_s() - cpu
            main_cpus[label], cell_walls[label] = time.process_time() - main_cpu, result.wall_s
            assert all(c.status == "ok" for c in result.cells), [c.error for c in result.cells]
    floor, audio_s = _silero_once_s(prompts)
    cells = len(silences) * len(prompts)
    return [
        Figure(
            f"Silero worker CPU in a sweep of {len(silences)} settings × {len(prompts)} bundled prompts, with the VAD cache",
            f"{cpus['with']:.2f} s CPU (without the cache {cpus['without']:.2f} s); "
            f"Silero alone over the audio once: {floor:.2f} s",
            "≤ 2× the time Silero alone takes over that audio once",
            cpus["with"] / (2 * max(floor, 1e-9)),
            baseline="the worker's CPU time covers resampling and cutting the streams as well as the model",
        ),
        Figure(
            f"sweep of {len(silences)} settings × {len(prompts)} bundled prompts at speed max, with the VAD cache",
            f"{walls['with']:.1f} s wall for {cells} cells ({audio_s:.0f} s of distinct audio); "
            f"{walls['with'] / max(floor, 1e-9):.1f}× Silero alone over that audio once ({floor:.2f} s)",
            "≤ 2× the time Silero alone takes over that audio once",
            walls["with"] / (2 * max(floor, 1e-9)),
            baseline=f"the same sweep without the cache: {walls['without']:.1f} s "
            f"(the cache makes it {walls['without'] / walls['with']:.2f}× faster)",
            notes=[
                f"where the time goes (with the cache): the cells {cell_walls['with']:.1f} s, then the analysis "
                f"of every cell into the tables {walls['with'] - cell_walls['with']:.1f} s; this process (the "
                f"sessions, the embedded emulator, the analysis) used {main_cpus['with']:.1f} s of CPU, the "
                f"Silero worker {cpus['with']:.2f} s",
            ],
        ),
    ]
