"""Helper processes: closing their pipes, and freezing the heap of a process that serves."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess

from vlab.errors import ConfigError

PROCESSES_PER_CORE = 4
"""The most serving processes vlab starts per core (``vlab emulator --processes``, a sweep's dask workers):
each runs an event loop and a Silero worker process, so past one per core they only compete for the cores,
and a slip such as 1000 would start a thousand of them."""


def check_process_count(count: int, what: str, *, cores: int | None = None) -> None:
    """Refuse ``count`` processes of ``what`` (``--processes``) beyond :data:`PROCESSES_PER_CORE` per core."""
    cores = cores or os.cpu_count() or 1
    if count > PROCESSES_PER_CORE * cores:
        raise ConfigError(
            f"{what} {count} is more than {PROCESSES_PER_CORE} per core ({cores} cores here): each process runs "
            f"an event loop and a Silero worker, so past one per core they only compete for the cores. "
            f"Use {what} {cores}."
        )


def close_pipes(proc: subprocess.Popen[bytes]) -> None:
    """Close the parent's ends of ``proc``'s stdin and stdout (a process that ended or is being replaced)."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def freeze_heap() -> None:
    """Move what this serving process has built so far out of the cyclic collector's reach.

    A full collection walks every object the collector tracks: about 50 000 in ``vlab emulator`` after
    its start-up, a pause of 20 to 70 ms under load on the 2-core machine, during which no connection's
    audio is handled (and in the Silero worker, no connection's VAD). Frozen objects are still freed by
    reference counting; only a cycle among them would stay. For the processes vlab starts to serve
    (``vlab emulator``, the Silero worker), never a user's.
    """
    gc.collect()
    gc.freeze()
