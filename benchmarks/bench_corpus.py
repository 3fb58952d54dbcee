"""Your own recordings: the labeller against the bundled labels, and sweeps on a Dask LocalCluster."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
import warnings

import numpy as np

from benchmarks._common import Figure, Size


def bench_labeller(size: Size) -> list[Figure]:
    """`vlab prompts label`'s proposals on the bundled prompts against their exact labels."""
    from vlab.audio.wav import read_audio
    from vlab.corpus.labeller import propose
    from vlab.prompts import load_prompt_set

    prompts = [p for p in load_prompt_set() if p.speech_segments]
    if size.tiny:
        prompts = prompts[:2]
    onsets, offsets, missed = [], [], 0
    t = time.perf_counter()
    for p in prompts:
        proposal = propose(*read_audio(p.file))
        for on, off in p.speech_segments:
            best = max(proposal.speech_segments, key=lambda s: min(off, s[1]) - max(on, s[0]), default=None)
            if best is None or min(off, best[1]) <= max(on, best[0]):
                missed += 1
                continue
            onsets.append(abs(best[0] - on))
            offsets.append(abs(best[1] - off))
    wall = time.perf_counter() - t
    p50 = max(float(np.median(onsets)), float(np.median(offsets)))
    return [
        Figure(
            f"labeller vs the bundled labels ({len(onsets)} segments of {len(prompts)} prompts)",
            f"onset error p50 {np.median(onsets):.1f} ms (p90 {np.percentile(onsets, 90):.0f}), offset error p50 "
            f"{np.median(offsets):.1f} ms (p90 {np.percentile(offsets, 90):.0f}); {missed} segments missed; "
            f"{wall:.1f} s",
            "onset/offset error p50 ≤ 30 ms",
            p50 / 30.0,
        )
    ]


def bench_dask_throughput(size: Size) -> list[Figure]:
    """Cells per second on a 2-worker LocalCluster against 1 worker, and each worker's memory over the run.

    The cluster runs with the settings of the one a sweep starts (:data:`vlab.sweep.dask_executor.LOCAL_CLUSTER_CONFIG`).
    Each run also records the CPU time of every process (the workers, their Silero processes, this one
    with the scheduler and the sweep's aggregation) to give the ceiling this machine allows: one worker's
    cells are bound to one core by the GIL (w s of CPU per cell) while the rest (o) runs beside it, so two
    cores give at most 2w / (w + o) times one worker's throughput.
    """
    import threading

    import dask
    import distributed
    import psutil

    from vlab.sweep import run_sweep
    from vlab.sweep.dask_executor import LOCAL_CLUSTER_CONFIG

    cells = 4 if size.tiny else size.n(2000)  # tiny: the smoke test, 2 cells per setting
    config = {
        "target": {"speed": "max", "latency": "typical"},
        "prompts": {"include": ["short_question"]},
        "grid": {"silence_duration_ms": [300, 500]},
        "run": {"repeats": max(cells // 2, 1), "concurrency": 4, "timeout_s": 60, "executor": "dask"},
    }

    def rss() -> int:
        return int(psutil.Process().memory_info().rss)

    def cpu_by_pid() -> dict[int, float]:
        """CPU seconds of this process and all its descendants (workers, their Silero processes)."""
        me = psutil.Process()
        out = {}
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[proc.pid] = float(times.user + times.system)
        return out

    rates, growth, late_growth, cpu_split = {}, {}, {}, {}
    for workers in (1, 2):
        with (
            dask.config.set(LOCAL_CLUSTER_CONFIG),
            distributed.LocalCluster(
                n_workers=workers, threads_per_worker=4, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
            tempfile.TemporaryDirectory() as d,
            contextlib.redirect_stderr(io.StringIO()),
        ):
            run = {**config["run"], "cluster": cluster.scheduler_address}
            client.run(rss)
            t = time.perf_counter()
            first = run_sweep(
                {**config, "run": {**run, "repeats": 1}},
                d,
                progress=False,
                session_options={"dotenv_path": False},
            )
            before = client.run(rss)  # after a warm-up cell per setting: models loaded, caches filled
            worker_pids = set(client.run(lambda: __import__("os").getpid()).values())
            samples: list[dict[str, int]] = []  # workers' RSS every 2 s
            stop = threading.Event()

            def sample(stop: threading.Event = stop, samples: list[dict[str, int]] = samples) -> None:
                while not stop.wait(2.0):
                    with contextlib.suppress(Exception):
                        samples.append(client.run(rss))

            sampler = threading.Thread(target=sample, daemon=True)
            cpu0 = cpu_by_pid()
            sampler.start()
            with warnings.catch_warnings():  # a throughput load: its repeats are meant to be alike
                warnings.filterwarnings("ignore", r"\[run\] repeats = \d+ on vlab's embedded emulator")
                result = run_sweep(
                    {**config, "run": run}, d, progress=False, session_options={"dotenv_path": False}
                )
            stop.set()
            sampler.join()
            cpu1 = cpu_by_pid()
            wall = time.perf_counter() - t
            after = client.run(rss)
            ran = sum(1 for c in result.cells if c.status == "ok") + sum(
                1 for c in first.cells if c.status == "ok"
            )
            rates[workers] = ran / wall
            growth[workers] = max((after[w] - before[w]) / 2**20 for w in after)
            half = samples[len(samples) // 2] if samples else before  # growth over the second half
            late_growth[workers] = max((after[w] - half[w]) / 2**20 for w in after)
            used = {pid: cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1}
            in_workers = sum(v for pid, v in used.items() if pid in worker_pids) / max(ran, 1)
            cpu_split[workers] = (in_workers, sum(used.values()) / max(ran, 1) - in_workers)
    speedup = rates[2] / rates[1]
    w, o = cpu_split[1]
    ceiling = (
        2 * w / (w + o)
    )  # if a cell costs the same CPU in both runs (other jobs on the machine change it)
    return [
        Figure(
            f"{cells} cells on a 2-worker LocalCluster vs 1 worker (this machine)",
            f"{rates[2]:.1f} vs {rates[1]:.1f} cells/s: {speedup:.2f}×; worker memory grew by at most "
            f"{max(growth.values()):.0f} MB over the run, {max(late_growth.values()):.0f} MB over its second half",
            "≥ 1.7× the throughput; memory per worker flat over the run",
            1.7 / speedup,
            baseline=f"1 worker: {1000 * w:.0f} ms CPU per cell in the worker, {1000 * o:.0f} ms beside it "
            f"(its Silero process, the scheduler and the sweep's process): at the same CPU per cell, 2 cores "
            f"allow at most {ceiling:.2f}× one worker; 2 workers: {1000 * cpu_split[2][0]:.0f} + "
            f"{1000 * cpu_split[2][1]:.0f} ms per cell",
        )
    ]
