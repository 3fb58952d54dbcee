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
