"""What differs between the platforms the suite runs on (Linux, macOS, Windows)."""

from __future__ import annotations

import os
import signal
from typing import NoReturn

import pytest

from vlab.audio.processing import noise_suppression_available

KILLED_EXIT_CODE = -signal.SIGKILL if os.name == "posix" else 1
"""``Popen.returncode`` of a child ended by ``Popen.kill()``: SIGKILL on POSIX, TerminateProcess(…, 1) on Windows."""

HARD_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)
"""The signal for :func:`os.kill` that ends a process at once, with no chance to clean up: SIGKILL on POSIX;
on Windows, where ``os.kill`` with any signal but the console events calls TerminateProcess, SIGTERM."""

needs_noise_suppression = pytest.mark.skipif(
    not noise_suppression_available() and os.environ.get("CI") != "true",
    reason="webrtc-noise-gain has no wheel for this platform (Windows)",
)
"""For tests of the emulator's noise reduction. Under ``CI=true`` they run (and fail) even without it."""


def unavailable(what: str, reason: str, *, skip_reason: str | None = None) -> NoReturn:
    """Skip a test this machine cannot run, saying why; under ``CI=true`` fail instead: CI must run it.

    Args:
        what: What must run under CI ("the browser test").
        reason: What is missing.
        skip_reason: The skip's text, if not ``reason``.
    """
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so {what} must run, but: {reason}", pytrace=False)
    pytest.skip(skip_reason or reason)
