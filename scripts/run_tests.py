"""``make test``'s pytest runs: the parallel part with the browser tests beside it, then the sound-card tests.

The ``realtime`` tests (``REAL_TIME`` in ``tests/conftest.py``) run one at a time, in processes of their
own, since they share the virtual sound card and a JupyterLab server:

- the browser tests (``realtime and not sound_card``) start with the parallel part and run beside it: they
  mostly wait on audio that plays at its own pace, and were written for a page starved of CPU;
- the sound-card tests (``realtime and sound_card``) run after it, alone: a bit-exact loopback through
  PortAudio needs its callbacks on time, and beside the parallel part one underran (2026-12-04, 2 cores,
  a quiet machine: correlation 0.979, 1 underflow). A raised priority does not make up for it
  (2026-12-05, 2 cores, quiet, the sound-card tests after the browser tests, beside the parallel part,
  their PulseAudio with them): at niceness -10 the loopback lost a block in 2 runs of 4 (correlation
  0.978, no underflow nor overflow reported); under the real-time round-robin policy (``chrt --rr 1``)
  the half-duplex test let an echo through in 1 run of 6. Beside it, ``make test`` took 148 to 152 s
  instead of 173 s.

On 2 cores (2026-12-04): 298 s of pytest with every realtime test after the parallel part (230 + 68 s);
with the browser tests beside it, the parallel part took 370 s and the sound-card tests 20 s after it
while two busy loops ran. The parallel part prints as it runs; the browser tests' output is kept in a
temporary file and printed after it. The script exits with the first non-zero status of the three runs,
so a failure in any fails ``make test``.

    python scripts/run_tests.py [pytest options of the parallel part, e.g. -n auto --durations=20]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
PARALLEL_MARKERS = ["-m", "not realtime"]
BESIDE = ["-m", "realtime and not sound_card", "-p", "no:cacheprovider"]
"""The browser tests: beside the parallel part, without the pytest cache it writes (``--lf``)."""
AFTER = ["-m", "realtime and sound_card"]
"""The sound-card tests: alone, once the parallel part has finished."""
VIRTUAL_AUDIO = ROOT / ".ci" / "virtual-audio.sh"


@contextlib.contextmanager
def virtual_sound_card(out: TextIO) -> Iterator[dict[str, str]]:
    """The virtual sound card for the sound-card tests: the environment that reaches it.

    Started for them, and stopped after, unless it runs already (``PULSE_SERVER`` set, as after
    ``eval "$(.ci/virtual-audio.sh)"``): its PulseAudio costs the parallel part about a tenth of its wall
    time (2 cores, quiet, 2026-12-05: 144 s with it running, 130 s without). Without PulseAudio it yields
    nothing, and the sound-card tests say what is missing.
    """
    if os.environ.get("PULSE_SERVER") or not shutil.which("pulseaudio") or not VIRTUAL_AUDIO.exists():
        yield {}
        return
    # started earlier without exporting its variables: left running after
    running = subprocess.run(["bash", str(VIRTUAL_AUDIO), "status"], check=False).returncode == 0
    started = subprocess.run(["bash", str(VIRTUAL_AUDIO)], capture_output=True, text=True, check=False)
    out.write(started.stderr)
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines() if "=" in line
    )
    try:
        yield env
    finally:
        if started.returncode == 0 and not running:
            subprocess.run(["bash", str(VIRTUAL_AUDIO), "stop"], capture_output=True, check=False)


def run(
    parallel: Sequence[str],
    beside: Sequence[str] = BESIDE,
    after: Sequence[str] = AFTER,
    *,
    cwd: Path = ROOT,
    out: TextIO | None = None,
    sound_card: Callable[[TextIO], AbstractContextManager[dict[str, str]]] = virtual_sound_card,
) -> int:
    """``pytest *beside`` in the background while ``pytest *parallel`` runs, then ``pytest *after``.

    The sound-card tests get the sound card from ``sound_card`` (:func:`virtual_sound_card`). Returns the
    first non-zero exit status of the three, else 0.
    """
    out = out or sys.stdout
    pytest = [sys.executable, "-m", "pytest"]
    statuses: dict[str, int] = {}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        started = time.monotonic()
        background = subprocess.Popen(
            [*pytest, *beside], cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            out.flush()
            statuses["parallel part"] = subprocess.run([*pytest, *parallel], cwd=cwd, check=False).returncode
            statuses["beside it"] = background.wait()
        finally:
            if background.poll() is None:  # interrupted: do not leave a browser playing audio
                background.terminate()
                background.wait()
        parallel_s = time.monotonic() - started
        log.seek(0)
        _title(out, f"ran beside the parallel part: pytest {' '.join(beside)}")
        out.write(log.read())
    _title(out, f"after it: pytest {' '.join(after)}")
    with sound_card(out) as audio:
        after_env = {**os.environ, **audio}
        statuses["after it"] = subprocess.run(
            [*pytest, *after], cwd=cwd, env=after_env, check=False
        ).returncode
    out.write(
        "; ".join(f"{name}: exit status {status}" for name, status in statuses.items())
        + f" (parallel part and beside it {parallel_s:.0f} s, in all {time.monotonic() - started:.0f} s)\n"
    )
    out.flush()
    return next((status for status in statuses.values() if status), 0)


def _title(out: TextIO, text: str) -> None:
    out.write(f"\n{' ' + text + ' ':=^100}\n")
    out.flush()


def main(argv: Sequence[str]) -> int:
    """The parallel part with ``argv``'s options and ``-m "not realtime"``; the realtime tests beside and after it."""
    return run([*argv, *PARALLEL_MARKERS])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
