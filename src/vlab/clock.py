"""Clocks: one monotonic nanosecond source for every timestamp vlab takes, and for every wait.

Intervals always come from :meth:`Clock.monotonic_ns` (``time.perf_counter_ns`` on the system
clock, the same source the emulator stamps its ground-truth trace with). Wall time is for display.
Code that waits or times out sleeps with :meth:`Clock.sleep_until_ns`, so tests control time by
injecting a clock instead of patching :mod:`time`:

- :class:`ManualClock` jumps to any deadline at once (a pacer then runs as fast as possible);
- :class:`VirtualClock` keeps sleepers asleep until the test advances it past their deadline, so
  timeouts, stall detection and back-off can be stepped through one deadline at a time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta, timezone
from typing import Final, Protocol, TypeVar, runtime_checkable

NS_PER_S: Final = 1_000_000_000
"""Nanoseconds per second: the unit of every clock reading."""

T = TypeVar("T")


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


class VirtualClock(ManualClock):
    """Virtual time whose sleepers wake only when the test moves the clock past their deadline.

    A test waits until the code under test sleeps (:meth:`wait_for_sleepers`), reads where it sleeps
    to (:meth:`next_deadline_ns`), and moves time on (:meth:`advance_ns`, :meth:`advance_to_next`).
    Moving time wakes the sleepers it passes; they run at the test's next ``await``.

    Args:
        start_ns: Initial monotonic reading in nanoseconds.
        wall_start_ns: Wall-clock reading that corresponds to ``start_ns``.
    """

    def __init__(self, start_ns: int = 0, wall_start_ns: int = 1_750_000_000 * 10**9) -> None:
        super().__init__(start_ns, wall_start_ns)
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._slept = asyncio.Event()

    @property
    def sleepers(self) -> int:
        """How many tasks sleep on this clock now."""
        self._drop_cancelled()
        return len(self._sleepers)

    def next_deadline_ns(self) -> int | None:
        """The earliest deadline a task sleeps until (None: nobody sleeps)."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        """Sleep until the test moves the clock to ``deadline_ns`` or beyond (yield once if it is there)."""
        if deadline_ns <= self._now_ns:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_ns, next(self._order), waiter))
        self._slept.set()
        await waiter  # cancelling the sleeper cancels the future; it is dropped from the heap lazily

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Return once at least ``count`` tasks sleep on this clock."""
        while self.sleepers < count:
            self._slept.clear()
            await self._slept.wait()

    def advance_ns(self, delta_ns: int) -> None:
        """Move the clock forward by ``delta_ns`` ns and wake every sleeper whose deadline it reaches."""
        super().advance_ns(delta_ns)
        while self._sleepers and self._sleepers[0][0] <= self._now_ns:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

    def advance_s(self, delta_s: float) -> None:
        """Move the clock forward by ``delta_s`` seconds (see :meth:`advance_ns`)."""
        self.advance_ns(round(delta_s * NS_PER_S))

    def advance_to_next(self) -> int:
        """Move the clock to the earliest sleeper's deadline and wake it; returns the new reading in ns.

        Raises:
            RuntimeError: Nobody sleeps on the clock (the test would wait forever).
        """
        deadline = self.next_deadline_ns()
        if deadline is None:
            raise RuntimeError("no task sleeps on this VirtualClock; wait_for_sleepers() first")
        self.advance_ns(deadline - self._now_ns)
        return self._now_ns

    def _drop_cancelled(self) -> None:
        sleepers = self._sleepers
        while sleepers and sleepers[0][2].done():
            heapq.heappop(sleepers)
        if any(waiter.done() for _, _, waiter in sleepers):
            self._sleepers = [s for s in sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)


class ServerTimeClock:
    """Reads the time the server says it is: the simulated time of the latest event it sent.

    vlab's emulator stamps every event with its time on its simulated timeline (``docs/timeline.md``).
    Once a client feeds it on that timeline (:meth:`follow`), a headless listener that keeps time on
    this clock hears exactly what the emulator says was heard, at any replay speed. Otherwise (and
    always against Azure) it reads ``fallback``; waiting always uses ``fallback``.

    Args:
        fallback: The clock to read while the server's simulated time is not followed.
    """

    def __init__(self, fallback: Clock) -> None:
        self._fallback = fallback
        self._sim_ns: int | None = None
        self._following = False

    @property
    def following(self) -> bool:
        """Whether the reading is the server's simulated time."""
        return self._following and self._sim_ns is not None

    def follow(self, on: bool = True) -> None:
        """Read the server's simulated time from now on (or the fallback again)."""
        self._following = on

    def observe_ms(self, sim_ms: float) -> None:
        """The server sent an event at simulated time ``sim_ms`` (ms); time never goes back."""
        sim_ns = round(sim_ms * 1_000_000)
        if self._sim_ns is None or sim_ns > self._sim_ns:
            self._sim_ns = sim_ns

    def monotonic_ns(self) -> int:
        """The server's simulated time in ns while following it, else the fallback's reading."""
        if self._following and self._sim_ns is not None:
            return self._sim_ns
        return self._fallback.monotonic_ns()

    def wall_ns(self) -> int:
        """Wall time (the fallback's)."""
        return self._fallback.wall_ns()

    async def sleep_until_ns(self, deadline_ns: int) -> None:
        """Sleep on the fallback clock."""
        await self._fallback.sleep_until_ns(deadline_ns)


async def wait_until_ns(clock: Clock, awaitable: Awaitable[T], deadline_ns: int) -> T:
    """Await ``awaitable``, but only until ``clock`` reads ``deadline_ns`` (a timeout on any clock).

    Args:
        clock: The clock the deadline is on.
        awaitable: What to wait for; cancelled when the deadline comes first.
        deadline_ns: The deadline, on ``clock.monotonic_ns()``.

    Returns:
        The awaitable's result.

    Raises:
        TimeoutError: The deadline came first.
    """
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep_until_ns(deadline_ns))
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (timer, task):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(timer, task, return_exceptions=True)
    if task.cancelled() and timer.done() and not timer.cancelled():
        raise TimeoutError(f"deadline {deadline_ns} ns reached")
    return task.result()


def wall_datetime(wall_ns: int) -> datetime:
    """Turn a Unix-nanosecond stamp into an aware UTC datetime (microsecond precision)."""
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=wall_ns // 1000)
