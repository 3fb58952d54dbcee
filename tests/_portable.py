"""What differs between the platforms the suite runs on (Linux, macOS, Windows)."""

from __future__ import annotations

import os
import signal

KILLED_EXIT_CODE = -signal.SIGKILL if os.name == "posix" else 1
"""``Popen.returncode`` of a child ended by ``Popen.kill()``: SIGKILL on POSIX, TerminateProcess(…, 1) on Windows."""
