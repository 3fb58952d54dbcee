"""One timeline: the bundled prompts × 3 settings at speed 1 against max, idle and with two busy loops.

Every figure vlab prints for an emulator run is measured on the emulator's simulated timeline, so the
same sweep must give the same turns, the same cut-offs and the same latencies at any speed and under
any load. This benchmark reports the largest difference of each figure between the runs; the last
figures run the function tools of ``examples/tools_sweep.toml`` over its prompts, where the client's
answer to each call is on the timeline too (``voice_to_answer_ms``), and the grid of
``examples/eou_sweep.toml``, where the end-of-utterance check holds simulated time while the
recognizer reads the turn, and ``examples/telephone_sweep.toml``, where the audio is 8 kHz G.711 both ways
(one byte a sample, so the audio clock counts it differently).
"""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import Figure, Size

FIGURES = (
    "voice_to_voice_ms",
    "endpointing_ms",
    "server_hangover_ms",
    "uplink_ms",
    "turn_commit_ms",
    "ttfb_audio_ms",
    "ttft_ms",
    "dead_air_ms",
    "voice_to_answer_ms",
)
GOAL_MS = 5.0
TOOLS_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tools_sweep.toml"
EOU_EXAMPLE = TOOLS_EXAMPLE.with_name("eou_sweep.toml")
TELEPHONE_EXAMPLE = TOOLS_EXAMPLE.with_name("telephone_sweep.toml")


@contextlib.contextmanager
def busy_loops(n: int = 2) -> Iterator[None]:
    """``yes > /dev/null`` ``n`` times while the block runs (the suite's load-proof condition)."""
    procs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _sweep(
    out: Path,
    prompts: list[str],
    settings: list[int],
    speed: Any,
    tools: dict[str, Any] | None = None,
    grid: dict[str, Any] | None = None,
    session: dict[str, Any] | None = None,
) -> Any:
    import pandas as pd

    from vlab.sweep import TOOLS_SECTION, run_sweep

    config = {
        "target": {"speed": speed, "latency": "typical"},
        "prompts": {"include": prompts},
        "session": session or {},
        "grid": grid or {"threshold": [0.5], "prefix_padding_ms": [300], "silence_duration_ms": settings},
        "run": {"repeats": 1, "concurrency": 4, "timeout_s": 120, "baseline": False},
        **({TOOLS_SECTION: tools} if tools else {}),
    }
    with contextlib.redirect_stderr(io.StringIO()):
        result = run_sweep(config, out, progress=False, session_options={"dotenv_path": False})
    failed = [c.cell for c in result.cells if c.status != "ok"]
    if failed:
        raise RuntimeError(f"cells failed at speed {speed}: {failed}")
    return pd.read_parquet(out / "turns.parquet").sort_values(["cell", "turn"]).reset_index(drop=True)


def compare(a: Any, b: Any) -> tuple[list[str], dict[str, float]]:
    """Count differences (turns, cut-offs, statuses) and the largest |Δ| in ms of each latency figure."""
    counts: list[str] = []
    for name, column in (("turns", "turn"), ("cut-offs", "false_cutoff"), ("completed", "status")):
        per_a = a.groupby("cell")[column].apply(lambda s, c=column: _count(s, c))
        per_b = b.groupby("cell")[column].apply(lambda s, c=column: _count(s, c))
        diff = per_a.sub(per_b, fill_value=0)
        counts += [f"{name} differ in {cell}" for cell, d in diff.items() if d]
    deltas: dict[str, float] = {}
    if len(a) == len(b) and (a["cell"].to_numpy() == b["cell"].to_numpy()).all():
        for name in FIGURES:
            both = a[name].notna() & b[name].notna()
            one = a[name].notna() != b[name].notna()
            if one.any():
                counts.append(f"{name} measured in one run only ({int(one.sum())} turns)")
            deltas[name] = float((a.loc[both, name] - b.loc[both, name]).abs().max()) if both.any() else 0.0
    return counts, deltas


def _count(series: Any, column: str) -> int:
    if column == "turn":
        return len(series)
    if column == "status":
        return int((series == "completed").sum())
    return int(series.sum())


def _figure(label: str, a: Any, b: Any, n_cells: int) -> Figure:
    counts, deltas = compare(a, b)
    worst = max(deltas, key=lambda k: deltas[k]) if deltas else "-"
    largest = deltas.get(worst, math.inf)
    ratio = math.inf if counts else largest / GOAL_MS
    value = (
        f"{len(counts)} count differences; largest |Δ| {largest:.3f} ms ({worst}) over {len(a)} turns"
        f" in {n_cells} cells"
    )
    notes = [f"|Δ| {name}: {delta:.3f} ms" for name, delta in deltas.items()] + counts[:10]
    return Figure(
        label, value, f"no count differs, every latency within {GOAL_MS:.0f} ms", ratio, notes=notes
    )


def bench_invariance(size: Size) -> list[Figure]:
    from vlab.prompts import load_prompt_set
    from vlab.sweep import TOOLS_SECTION, load_config

    prompts = [p.id for p in load_prompt_set()]
    example = load_config(TOOLS_EXAMPLE)
    tool_prompts, tools = [p.id for p in example.prompts], example.raw[TOOLS_SECTION]
    eou_example = load_config(EOU_EXAMPLE)
    eou_prompts, eou_grid = [p.id for p in eou_example.prompts], eou_example.raw["grid"]
    phone = load_config(TELEPHONE_EXAMPLE)
    phone_prompts, phone_grid, phone_session = (
        [p.id for p in phone.prompts],
        phone.raw["grid"],
        phone.raw["session"],
    )
    settings = [200, 500, 1000]
    slow: Any = 1
    examples_slow: Any = 1
    if size.tiny:  # the smoke test: the examples' runs under load at "max" (busy loops burn make test's CPU)
        prompts, tool_prompts, settings, slow, examples_slow = ["pause_600"], ["pause_600"], [200], 4, "max"
        eou_prompts, eou_grid = ["pause_600"], {"silence_duration_ms": [300], "eou_timeout_ms": [1200]}
        phone_prompts, phone_grid = ["pause_600"], {"silence_duration_ms": [300]}
    elif size.scale < 1:
        prompts, eou_prompts, phone_prompts = prompts[:4], eou_prompts[:2], phone_prompts[:2]
    n_cells = len(prompts) * len(settings)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        fast = _sweep(root / "max", prompts, settings, "max")
        real = _sweep(root / "slow", prompts, settings, slow)
        tools_fast = _sweep(root / "tools-max", tool_prompts, settings, "max", tools)
        eou_fast = _sweep(root / "eou-max", eou_prompts, [], "max", grid=eou_grid)
        phone_fast = _sweep(
            root / "phone-max", phone_prompts, [], "max", grid=phone_grid, session=phone_session
        )
        with busy_loops():
            fast_loaded = _sweep(root / "max-loaded", prompts, settings, "max")
            real_loaded = _sweep(root / "slow-loaded", prompts, settings, slow)
            tools_loaded = _sweep(root / "tools-slow-loaded", tool_prompts, settings, examples_slow, tools)
            eou_loaded = _sweep(root / "eou-slow-loaded", eou_prompts, [], examples_slow, grid=eou_grid)
            phone_loaded = _sweep(
                root / "phone-slow-loaded",
                phone_prompts,
                [],
                examples_slow,
                grid=phone_grid,
                session=phone_session,
            )
    tools_cells = len(tool_prompts) * len(settings)
    eou_cells = eou_fast["cell"].nunique()
    return [
        _figure(f"speed invariance: speed {slow} vs max, {len(settings)} settings", real, fast, n_cells),
        _figure("… with two busy loops: speed max loaded vs idle", fast_loaded, fast, n_cells),
        _figure(f"… with two busy loops: speed {slow} loaded vs max idle", real_loaded, fast, n_cells),
        _figure(
            f"… with function tools (examples/tools_sweep.toml): speed {examples_slow} loaded vs max idle",
            tools_loaded,
            tools_fast,
            tools_cells,
        ),
        _figure(
            f"… with end-of-utterance detection (examples/eou_sweep.toml): speed {examples_slow} loaded vs "
            "max idle",
            eou_loaded,
            eou_fast,
            eou_cells,
        ),
        _figure(
            "… on a phone line, G.711 both ways (examples/telephone_sweep.toml): "
            f"speed {examples_slow} loaded vs max idle",
            phone_loaded,
            phone_fast,
            phone_fast["cell"].nunique(),
        ),
    ]
