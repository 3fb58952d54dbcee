"""``make test``'s pytest runs: the parallel part, with the realtime tests beside it one at a time.

The ``realtime`` tests (``REAL_TIME`` in ``tests/conftest.py``) run one at a time, in processes of their
own, since they share the virtual sound card and a JupyterLab server:

- the browser tests (``realtime and not sound_card``) start with the parallel part and run beside it: they
  mostly wait on audio that plays at its own pace, and were written for a page starved of CPU;
- the sound-card tests (``realtime and sound_card``) follow them, beside the parallel part too, at a
  raised priority (niceness ``BOOST``, their PulseAudio as well), where this user may raise it (root, or
  an ``RLIMIT_NICE`` that allows it). A bit-exact loopback through PortAudio needs its callbacks on time:
  at the normal priority one underran beside the parallel part (2026-12-04, 2 cores, quiet: correlation
  0.979, 1 underflow). Where the priority cannot be raised, they run after the parallel part, alone.

On 2 cores (2026-12-05, quiet): 173 s of pytest with the sound-card tests after the parallel part (147 +
26 s); beside it, at niceness -10, they passed bit-exact quiet and with two busy loops running, and the
parallel part took 136 s. The parallel part prints as it runs; the realtime tests' output is kept in
temporary files and printed after it. The script exits with the first non-zero status of the three runs,
so a failure in any fails ``make test``.

    python scripts/run_tests.py [pytest options of the parallel part, e.g. -n auto --durations=20]
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
PARALLEL_MARKERS = ["-m", "not realtime"]
BESIDE = ["-m", "realtime and not sound_card", "-p", "no:cacheprovider"]
"""The browser tests: beside the parallel part, without the pytest cache it writes (``--lf``)."""
AFTER = ["-m", "realtime and sound_card", "-p", "no:cacheprovider"]
"""The sound-card tests: after the browser tests at a raised priority, else after the parallel part."""
VIRTUAL_AUDIO = ROOT / ".ci" / "virtual-audio.sh"
BOOST = -10
"""The niceness of the sound-card tests and their PulseAudio when they run beside the parallel part."""

SoundCard = Callable[[TextIO, Sequence[str]], AbstractContextManager[dict[str, str]]]
"""Starts the sound card (its commands prefixed by the second argument) and yields the environment."""


def priority_boost() -> list[str] | None:
    """The command prefix that runs a process at niceness ``BOOST``, or None where this user may not."""
    trial = subprocess.run(
        [sys.executable, "-c", f"import os; os.nice({BOOST})"], capture_output=True, check=False
    )
    return ["nice", "-n", str(BOOST)] if trial.returncode == 0 and shutil.which("nice") else None


@contextlib.contextmanager
def virtual_sound_card(out: TextIO, prefix: Sequence[str] = ()) -> Iterator[dict[str, str]]:
    """The virtual sound card for the sound-card tests: the environment that reaches it.

    Started for them (``prefix`` before its command, so its PulseAudio gets their priority), and stopped
    after, unless it runs already (``PULSE_SERVER`` set, as after ``eval "$(.ci/virtual-audio.sh)"``):
    its PulseAudio costs the parallel part about a tenth of its wall time (2 cores, quiet, 2026-12-05: 144 s
    with it running, 130 s without). Without PulseAudio it yields nothing, and the sound-card tests say
    what is missing.
    """
    if os.environ.get("PULSE_SERVER") or not shutil.which("pulseaudio") or not VIRTUAL_AUDIO.exists():
        yield {}
        return
    # started earlier without exporting its variables: left running after
    running = subprocess.run(["bash", str(VIRTUAL_AUDIO), "status"], check=False).returncode == 0
    started = subprocess.run(
        [*prefix, "bash", str(VIRTUAL_AUDIO)], capture_output=True, text=True, check=False
    )
    out.write(started.stderr)
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines() if "=" in line
    )
    try:
        yield env
    finally:
        if started.returncode == 0 and not running:
            subprocess.run(["bash", str(VIRTUAL_AUDIO), "stop"], capture_output=True, check=False)


def _pytest(
    command: Sequence[str],
    cwd: Path,
    out: TextIO | None,
    env: dict[str, str] | None,
    stopped: threading.Event,
) -> int:
    """Run ``command``: its output into ``out``, or to this process's own when None (printed as it goes).

    Terminated if ``stopped`` is set before it ends (interrupted: no browser or sound card left playing).
    """
    if out is None:
        return subprocess.run(command, cwd=cwd, env=env, check=False).returncode
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        while process.poll() is None:
            if stopped.wait(0.2):
                process.terminate()
                process.wait()
        log.seek(0)
        out.write(log.read())
    return process.returncode


def run(
    parallel: Sequence[str],
    beside: Sequence[str] = BESIDE,
    after: Sequence[str] = AFTER,
    *,
    cwd: Path = ROOT,
    out: TextIO | None = None,
    sound_card: SoundCard = virtual_sound_card,
    boost: Sequence[str] | None = None,
) -> int:
    """``pytest *parallel``, with ``pytest *beside`` beside it, then ``pytest *after``.

    With ``boost``, the command prefix that raises a process's priority (:func:`priority_boost`), the
    sound-card tests run beside the parallel part, after the browser tests; without it, once the parallel
    part has finished. They get the sound card from ``sound_card`` (:func:`virtual_sound_card`). Returns the
    first non-zero exit status of the three, else 0.
    """
    out = out or sys.stdout
    pytest = [sys.executable, "-m", "pytest"]
    statuses: dict[str, int] = {}
    stopped = threading.Event()
    kept = io.StringIO()  # the realtime tests' output, printed once the parallel part has finished

    def run_after(log: TextIO, prefix: Sequence[str]) -> int:
        where = "after the browser tests, beside the parallel part" if boost is not None else "after it"
        _title(log, f"{where}: {' '.join([*prefix, 'pytest', *after])}")
        with sound_card(log, prefix) as audio:
            live = None if log is out else log
            return _pytest([*prefix, *pytest, *after], cwd, live, {**os.environ, **audio}, stopped)

    def realtime() -> None:
        _title(kept, f"ran beside the parallel part: pytest {' '.join(beside)}")
        statuses["beside it"] = _pytest([*pytest, *beside], cwd, kept, None, stopped)
        if boost is not None and not stopped.is_set():
            statuses["after it"] = run_after(kept, boost)

    thread = threading.Thread(target=realtime, name="realtime tests", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        out.flush()
        statuses["parallel part"] = _pytest([*pytest, *parallel], cwd, None, None, stopped)
        thread.join()
    finally:
        stopped.set()
        thread.join()
    parallel_s = time.monotonic() - started
    out.write(kept.getvalue())
    if boost is None:
        statuses["after it"] = run_after(out, ())
    out.write(
        "; ".join(
            f"{name}: exit status {statuses[name]}" for name in ("parallel part", "beside it", "after it")
        )
        + f" (parallel part and beside it {parallel_s:.0f} s, in all {time.monotonic() - started:.0f} s)\n"
    )
    out.flush()
    return next((status for status in statuses.values() if status), 0)


def _title(out: TextIO, text: str) -> None:
    out.write(f"\n{' ' + text + ' ':=^100}\n")
    out.flush()


def main(argv: Sequence[str]) -> int:
    """The parallel part with ``argv``'s options and ``-m "not realtime"``; the realtime tests beside and after it."""
    return run([*argv, *PARALLEL_MARKERS], boost=priority_boost())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
