"""``vlab demo`` (``make demo``): vlab's main job end to end, offline, on the embedded Voice Live emulator.

1. The seed's minimal example: the plain SDK, server VAD (0.5 / 300 / 500 ms), one spoken question,
   every event printed with its time until ``response.done``.
2. A turn-detection sweep over the bundled, labelled prompts for a few silence durations, with a
   progress bar, then the table ``vlab sweep`` prints: per setting, the turns cut off and missed, the dead
   air after the real end of the turn, tokens, and the voice-to-voice latency (p50/p90).
3. ``report.html`` with its charts, and every bundled notebook executed (with the docs they link to beside
   them), in ``runs/demo-<time>/`` of the current folder.

``--quick`` is the same on three prompts and two settings as fast as the emulator goes, without the
notebooks (a few seconds after the minimal example): the check that an install works.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vlab.audio.pacing import paced_chunks
from vlab.bundled import NOTEBOOKS_DIR, bundled_dir, copy_bundled
from vlab.endpoint import ENV_OFFLINE, setting_sources
from vlab.errors import ConfigError
from vlab.log.files import new_run_dir
from vlab.testing import spoken_prompt

# How the bundled notebooks are told they run unattended (nbclient: no page, nobody listening): replay at the
# fastest speed, and do not wait for a page to show the widgets.
UNATTENDED_NOTEBOOK_ENV = {"VLAB_NOTEBOOK_SPEED": "inf", "VLAB_NOTEBOOK_UNATTENDED": "1"}

SWEEP: dict[str, Any] = {
    "target": {"speed": 1, "latency": "typical"},  # real time, so the latencies are what a caller would see
    "grid": {
        "type": "server_vad",
        "threshold": [0.5],
        "prefix_padding_ms": [300],
        "silence_duration_ms": [300, 500, 800],
    },
    "run": {"repeats": 1, "concurrency": 8, "timeout_s": 60, "baseline": False, "canary": "short_question"},
}
QUICK_SWEEP: dict[str, Any] = {
    "target": {
        "speed": "max",
        "latency": "typical",
    },  # the figures are the same: they are on the sim timeline
    "prompts": {"include": ["short_question", "pause_600", "two_turns"]},
    "grid": {
        "type": "server_vad",
        "threshold": [0.5],
        "prefix_padding_ms": [300],
        "silence_duration_ms": [300, 800],
    },
    "run": {"repeats": 1, "concurrency": 2, "timeout_s": 60, "baseline": False, "canary": "short_question"},
}


def _title(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m" if sys.stdout.isatty() else f"\n== {text}")


async def sdk_minimal_example() -> None:
    """The seed's example: plain SDK calls against the embedded emulator, events printed with timestamps."""
    from azure.ai.voicelive.aio import connect
    from azure.ai.voicelive.models import (
        InputAudioFormat,
        Modality,
        OutputAudioFormat,
        RequestSession,
        ServerEventInputAudioBufferSpeechStarted,
        ServerEventInputAudioBufferSpeechStopped,
        ServerEventResponseAudioDelta,
        ServerEventResponseAudioTranscriptDelta,
        ServerEventResponseDone,
        ServerVad,
    )
    from azure.core.credentials import AzureKeyCredential

    from vlab.emulator import Emulator

    prompt = spoken_prompt("Hi! What is the weather like in Seattle today?", trail_ms=1200)
    async with Emulator() as emu:
        print(f"embedded Voice Live emulator at {emu.endpoint}")
        async with connect(
            endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime"
        ) as conn:
            session = RequestSession(
                modalities=[Modality.TEXT, Modality.AUDIO],
                instructions="You are a helpful assistant.",
                input_audio_format=InputAudioFormat.PCM16,
                output_audio_format=OutputAudioFormat.PCM16,
                turn_detection=ServerVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500),
            )
            await conn.session.update(session=session)
            t0 = time.perf_counter()

            async def speak() -> None:
                async for chunk, _ in paced_chunks(prompt.pcm, sample_rate=prompt.sample_rate):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode("ascii"))

            sender = asyncio.create_task(speak())
            print(
                f"user says {prompt.text!r} in real time; speech ends at {prompt.speech_end_ms:.0f} ms of the audio\n"
            )
            print(f"{'t (ms)':>9}  event")
            audio_deltas = 0
            async for event in conn:
                t_ms = (time.perf_counter() - t0) * 1000
                detail = ""
                if isinstance(event, ServerEventInputAudioBufferSpeechStarted):
                    detail = f"audio_start_ms={event.audio_start_ms}"
                elif isinstance(event, ServerEventInputAudioBufferSpeechStopped):
                    detail = f"audio_end_ms={event.audio_end_ms}"
                elif isinstance(event, ServerEventResponseAudioDelta):
                    audio_deltas += 1
                    if audio_deltas > 1:
                        continue
                    detail = f"{len(event.delta)} bytes (the first; the other audio deltas are not printed)"
                elif isinstance(event, ServerEventResponseAudioTranscriptDelta):
                    detail = repr(event.delta)
                elif isinstance(event, ServerEventResponseDone):
                    status = getattr(event.response.status, "value", event.response.status)
                    detail = f"status={status}, {audio_deltas} audio deltas"
                print(f"{t_ms:9.1f}  {event.type}  {detail}")
                if isinstance(event, ServerEventResponseDone):
                    break
            await sender


def execute_notebooks(out: Path) -> list[tuple[str, str]]:
    """Run every notebook headless (fast replay) into ``out/notebooks``; returns (name, status) pairs.

    The docs the notebooks link to (``../docs/…``) are copied into ``out/docs``, so the links work there.
    """
    import nbformat
    from nbclient import NotebookClient

    copy_bundled("docs", out / "docs", force=True)
    dest = out / "notebooks"
    dest.mkdir(parents=True, exist_ok=True)
    results = []
    with _environment(UNATTENDED_NOTEBOOK_ENV):
        for path in sorted(bundled_dir("notebooks").glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            started = time.perf_counter()
            try:
                NotebookClient(
                    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(dest)}}
                ).execute(
                    stderr=subprocess.DEVNULL
                )  # the kernel's start-up chatter; cell errors stay in the notebook
                status = f"ok ({time.perf_counter() - started:.0f} s)"
            except Exception as exc:  # keep the partly executed notebook: its error cell says what failed
                status = f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            nbformat.write(nb, dest / path.name)
            results.append((path.name, status))
            print(f"  {path.name}: {status}", flush=True)
    return results


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set (inherited by the kernels and processes started meanwhile), then as before."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(
    out: Path | None = None, *, quick: bool = False, notebooks: bool = True, force: bool = False
) -> int:
    """Run the demo into ``out`` (default: ``runs/demo-<time>`` of the current folder); returns the exit code.

    Args:
        out: The run folder.
        quick: Fewer prompts and settings, as fast as possible, and no notebooks.
        notebooks: Execute the notebooks (ignored with ``quick``).
        force: Write into ``out`` even if it already holds files.

    Raises:
        ConfigError: ``out`` is a file, or a folder that already holds files (without ``force``).

    The demo runs offline whatever endpoint the environment or a ``.env`` names: its sweep and the notebooks'
    kernels run with ``VLAB_OFFLINE=1`` (:data:`vlab.endpoint.ENV_OFFLINE`).
    """
    out = out if out is not None else new_run_dir("demo")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise ConfigError(
            f"{out} already exists and holds files; the demo would overwrite them. Choose another --out, "
            "or pass --force to write into it anyway"
        )
    out.mkdir(parents=True, exist_ok=True)
    endpoint = setting_sources().get("endpoint")
    if endpoint:
        print(
            f"An endpoint is set ({endpoint}), but the demo runs on the embedded emulator all the same; "
            "vlab replay, vlab sweep and your notebooks use the endpoint."
        )
    with _environment({ENV_OFFLINE: "1"}):
        return _demo(out, quick=quick, notebooks=notebooks and not quick)


def _demo(out: Path, *, quick: bool, notebooks: bool) -> int:
    """The demo's steps, into the folder ``out``; the exit code."""
    from vlab.report import build_report
    from vlab.sweep import load_config, run_sweep
    from vlab.sweep.grid import counted
    from vlab.sweep.summary import failure_summary, results_table

    started = time.perf_counter()
    steps = 4 if notebooks else 3

    _title(f"1/{steps}  The minimal example: the Voice Live SDK against the embedded emulator")
    asyncio.run(sdk_minimal_example())

    if quick:
        _title(f"2/{steps}  A small turn-detection sweep over three bundled prompts (as fast as possible)")
    else:
        _title(f"2/{steps}  A turn-detection sweep over the bundled prompts (real time, 8 sessions at once)")
    config = load_config(QUICK_SWEEP if quick else SWEEP, base_dir=Path.cwd())
    result = run_sweep(config, out)
    failed = result.failures()
    print(f"{counted(len(result.cells), 'cell')} in {result.wall_s:.1f} s; {len(failed)} failed")
    if failed:
        print("\n".join(failure_summary(failed, out)))
    points = result.points()
    if points.empty:
        print("no cell finished, so there is nothing to report; the errors above say why", file=sys.stderr)
        return 1
    print("\n" + results_table(points, result.turns()))
    print("(the figures are on the emulator's simulated timeline: the same at any replay speed)")

    _title(f"3/{steps}  The report")
    report = build_report(out)
    print(f"report: {report} (charts in {report.parent / 'report'})")

    notebook_results: list[tuple[str, str]] = []
    if notebooks:
        count = len(list(bundled_dir("notebooks").glob("*.ipynb")))
        _title(f"4/{steps}  The {count} notebooks, executed")
        notebook_results = execute_notebooks(out)

    _title(f"Done in {time.perf_counter() - started:.0f} s. Where to look:")
    places = [
        (
            str(out / "report.html"),
            "the charts: latency waterfall, distributions, VAD timelines, cut-off vs dead air",
        ),
        (
            f"{out / 'cells'}/",
            "one run folder per cell: events.jsonl/.parquet, session.json, labels.json, input/output WAVs",
        ),
        *([(f"{out / 'notebooks'}/", "the notebooks with their outputs")] if notebook_results else []),
        (
            "vlab notebooks",
            f"copies the notebooks (and their docs) into ./{NOTEBOOKS_DIR} and opens JupyterLab on them",
        ),
    ]
    width = max(len(place) for place, _ in places)
    for place, what in places:
        print(f"  {place.ljust(width)}  {what}")
    ok = not failed and all(status.startswith("ok") for _, status in notebook_results)
    return 0 if ok else 1


if __name__ == "__main__":
    from vlab.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
