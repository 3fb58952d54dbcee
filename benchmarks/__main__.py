"""Run every benchmark; print figure, goal and ratio (each against a baseline measured in the same run).

python -m benchmarks            # full size (`make bench`), writes benchmarks/RESULTS.md
python -m benchmarks --quick    # smaller sizes, same figures (RESULTS.md only with --write)
python -m benchmarks --only session,emulator
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    bench_audio_processing,
    bench_basics,
    bench_browser,
    bench_corpus,
    bench_crash,
    bench_devices,
    bench_emulator,
    bench_session,
    bench_suite,
    bench_sweep,
    bench_timeline,
)
from benchmarks._common import FULL, QUICK, TINY, Figure, Size, machine
from vlab.emulator.transcript_store import CACHE_DIR_ENV

BENCHMARKS: dict[str, list[Callable[[Size], list[Figure]]]] = {
    "import": [bench_basics.bench_import],
    "log": [bench_basics.bench_log_writer, bench_basics.bench_to_frame],
    "pacing": [bench_basics.bench_pacing],
    "session": [
        bench_session.bench_overhead,
        bench_session.bench_measurement_error,
        bench_session.bench_stall_detection,
    ],
    "devices": [bench_devices.bench_devices],
    "browser": [bench_browser.bench_browser],
    "emulator": [bench_emulator.bench_fast_mode, bench_emulator.bench_concurrency],
    "audio_processing": [
        bench_audio_processing.bench_processing_cost,
        bench_audio_processing.bench_fast_mode_with_processing,
        bench_audio_processing.bench_realtime_sessions_with_processing,
    ],
    "sweep": [bench_sweep.bench_sweep, bench_sweep.bench_vad_cache],
    "timeline": [bench_timeline.bench_invariance],
    "corpus": [bench_corpus.bench_labeller, bench_corpus.bench_dask_throughput],
    "crash": [bench_crash.bench_crash_loss],
    "suite": [bench_suite.bench_make_test],
}
RESULTS = Path(__file__).with_name("RESULTS.md")
ANALYSIS_MARK = "<!-- analysis: kept across runs -->"


def run(names: list[str], size: Size) -> list[Figure]:
    figures: list[Figure] = []
    for name in names:
        for bench in BENCHMARKS[name]:
            t = time.perf_counter()
            try:
                figs = bench(size)
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc()
                figs = [Figure(bench.__name__, f"failed: {type(exc).__name__}: {exc}", "–", float("nan"))]
            for fig in figs:
                print(fig.line(), flush=True)
            print(f"          ({bench.__name__}: {time.perf_counter() - t:.1f} s)", flush=True)
            figures.extend(figs)
    return figures


def write_results(figures: list[Figure], size: Size, info: dict[str, str], wall_s: float) -> None:
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    analysis = old[old.index(ANALYSIS_MARK) :] if ANALYSIS_MARK in old else ANALYSIS_MARK + "\n"
    lines = [
        "# Benchmark results",
        "",
        f"Latest `python -m benchmarks` run ({size.name} size, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f'{wall_s:.0f} s). Ratio: measured / goal for "≤" goals, goal / measured for "≥" goals; ≤ 1 meets it.',
        "Every figure is measured against a baseline taken in the same run (these machines are noisy).",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Figures",
        "",
        "| figure | measured | goal | ratio | status |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = "–" if f.ratio is None else f"{f.ratio:.2f}"
        lines.append(f"| {f.name} | {f.value.replace('|', '/')} | {f.goal} | {ratio} | {f.status} |")
    lines += ["", "## Baselines and breakdowns (this run)", ""]
    for f in figures:
        lines.append(f"- **{f.name}**: baseline: {f.baseline or '–'}")
        lines += [f"  - {n}" for n in f.notes]
    lines.append("")
    RESULTS.write_text("\n".join(lines) + "\n" + analysis, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (minutes → about a minute)")
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--write", action="store_true", help="write RESULTS.md even when not full size")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    size = TINY if args.tiny else QUICK if args.quick else FULL
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}")
    # every figure measures a first run: no transcript comes from an earlier run's cache
    os.environ[CACHE_DIR_ENV] = "off"
    info = machine()
    print(", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    t = time.perf_counter()
    figures = run(names, size)
    wall = time.perf_counter() - t
    missed = [f.name for f in figures if f.status == "MISSED"]
    print(f"\n{len(figures)} figures in {wall:.0f} s; {len(missed)} missed: {missed}")
    if not args.no_write and (size is FULL or args.write) and names == list(BENCHMARKS):
        write_results(figures, size, info, wall)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
