"""Clocks: one monotonic nanosecond source for every timestamp vlab takes.

Intervals always come from :meth:`Clock.monotonic_ns` (``time.perf_counter_ns`` on the system
clock, the same source the emulator stamps its ground-truth trace with). Wall time is for display.
Tests inject a :class:`ManualClock` instead of patching :mod:`time`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Source of monotonic stamps, wall time and sleeping."""

    def monotonic_ns(self) -> int:
        """Monotonic time in nanoseconds (arbitrary origin)."""
        ...

    def wall_ns(self) -> int:
        """Wall-clock time in nanoseconds since the Unix epoch (UTC)."""
        ...

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        """Sleep until ``monotonic_ns() >= deadline_ns``."""
        ...


class SystemClock:
    """The real clock: ``time.perf_counter_ns`` and ``time.time_ns``."""

    def monotonic_ns(self) -> int:
        """Monotonic time in nanoseconds."""
        return time.perf_counter_ns()

    def wall_ns(self) -> int:
        """Unix time in nanoseconds."""
        return time.time_ns()

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        """Sleep on the running loop until the deadline (returns at once if it has passed)."""
        delay_ns = deadline_ns - time.perf_counter_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / 1e9)


class ManualClock:
    """A clock that only moves when told to, for deterministic tests.

    Args:
        start_ns: Initial monotonic reading in nanoseconds.
        wall_start_ns: Wall-clock reading that corresponds to ``start_ns``.
    """

    def __init__(self, start_ns: int = 0, wall_start_ns: int = 1_750_000_000 * 10**9) -> None:
        self._now_ns = start_ns
        self._wall_offset_ns = wall_start_ns - start_ns

    def monotonic_ns(self) -> int:
        """The current manual reading."""
        return self._now_ns

    def wall_ns(self) -> int:
        """Wall time that moves with the monotonic reading."""
        return self._now_ns + self._wall_offset_ns

    def advance_ns(self, delta_ns: int) -> None:
        """Move the clock forward by ``delta_ns`` nanoseconds."""
        if delta_ns < 0:
            raise ValueError(f"a clock cannot go backwards (delta_ns={delta_ns!r})")
        self._now_ns += delta_ns

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        """Jump to the deadline at once (virtual time) and yield to the loop."""
        if deadline_ns > self._now_ns:
            self._now_ns = deadline_ns
        await asyncio.sleep(0)


def wall_datetime(wall_ns: int) -> datetime:
    """Turn a Unix-nanosecond stamp into an aware UTC datetime (microsecond precision)."""
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=wall_ns // 1000)
