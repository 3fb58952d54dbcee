"""Helper processes that talk over pipes (the Silero worker, the recognition process)."""

from __future__ import annotations

import contextlib
import subprocess


def close_pipes(proc: subprocess.Popen[bytes]) -> None:
    """Close the parent's ends of ``proc``'s stdin and stdout (a process that ended or is being replaced)."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
