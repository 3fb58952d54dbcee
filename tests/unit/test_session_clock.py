"""The virtual clock the session's parts are tested on, and timeouts on any clock."""

from __future__ import annotations

import asyncio

import pytest

from vlab.clock import Clock, ManualClock, SystemClock, VirtualClock, wait_until_ns, wall_datetime

MS = 1_000_000


def test_every_clock_keeps_the_protocol():
    for clock in (SystemClock(), ManualClock(), VirtualClock()):
        assert isinstance(clock, Clock)


async def test_sleepers_wake_in_deadline_order_only_when_time_reaches_them():
    clock = VirtualClock()
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, deadline_ns: int) -> None:
        await clock.sleep_until_ns(deadline_ns)
        woke.append((name, clock.monotonic_ns()))

    tasks = [asyncio.create_task(sleeper(n, d)) for n, d in (("b", 20 * MS), ("a", 10 * MS), ("c", 20 * MS))]
    await clock.wait_for_sleepers(3)
    assert clock.next_deadline_ns() == 10 * MS
    clock.advance_ns(10 * MS - 1)
    assert clock.sleepers == 3  # nobody is due yet
    assert clock.advance_to_next() == 10 * MS
    await tasks[1]
    assert woke == [("a", 10 * MS)] and clock.sleepers == 2
    clock.advance_s(1.0)  # passes both remaining deadlines at once: they wake late, in order
    await asyncio.gather(*tasks)
    assert woke == [("a", 10 * MS), ("b", 1010 * MS), ("c", 1010 * MS)]
    assert clock.next_deadline_ns() is None
    with pytest.raises(RuntimeError, match="no task sleeps"):
        clock.advance_to_next()


async def test_a_cancelled_sleeper_is_forgotten_and_a_past_deadline_does_not_sleep():
    clock = VirtualClock(start_ns=50 * MS)
    sleeping = asyncio.create_task(clock.sleep_until_ns(80 * MS))
    await clock.wait_for_sleepers()
    sleeping.cancel()
    await asyncio.gather(sleeping, return_exceptions=True)
    assert clock.sleepers == 0 and clock.next_deadline_ns() is None
    await clock.sleep_until_ns(50 * MS)  # already there: returns without time moving
    assert clock.monotonic_ns() == 50 * MS
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_ns(-1)


async def test_wait_until_ns_gives_the_result_or_times_out_on_the_clock():
    clock = VirtualClock()
    done = asyncio.get_running_loop().create_future()
    done.set_result("answer")
    assert await wait_until_ns(clock, done, 5 * MS) == "answer"
    never = asyncio.Event()
    pending = asyncio.create_task(wait_until_ns(clock, never.wait(), 5 * MS))
    await clock.wait_for_sleepers()
    clock.advance_to_next()
    with pytest.raises(TimeoutError):
        await pending
    assert clock.sleepers == 0


async def test_a_sleeper_cancelled_behind_another_is_dropped_and_time_may_stand_still():
    clock = VirtualClock()
    first = asyncio.create_task(clock.sleep_until_ns(10 * MS))
    later = asyncio.create_task(clock.sleep_until_ns(20 * MS))
    await clock.wait_for_sleepers(2)
    later.cancel()
    await asyncio.gather(later, return_exceptions=True)
    assert clock.sleepers == 1 and clock.next_deadline_ns() == 10 * MS
    clock.advance_ns(0)  # not moving is not going backwards
    assert clock.advance_to_next() == 10 * MS
    await first


async def test_wait_until_ns_passes_on_a_cancellation_that_is_not_its_deadline():
    clock = VirtualClock()
    cancelled = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait_until_ns(clock, cancelled, 5 * MS)


async def test_the_system_clock_sleeps_until_a_near_deadline_and_not_for_a_past_one():
    clock = SystemClock()
    start = clock.monotonic_ns()
    await asyncio.wait_for(clock.sleep_until_ns(start + MS), timeout=60)  # wall-clock ok: its own clock
    assert clock.monotonic_ns() >= start + MS
    await asyncio.wait_for(clock.sleep_until_ns(start - 10**12), timeout=60)  # long past: returns at once


def test_wall_datetime_is_utc_to_the_microsecond():
    stamp = wall_datetime(1_750_000_000_123_456_789)
    assert stamp.isoformat() == "2025-06-15T15:06:40.123456+00:00"


def test_server_time_clock_reads_the_emulators_time_only_while_following_it():
    from vlab.clock import ManualClock, ServerTimeClock

    wall = ManualClock(start_ns=5_000_000_000)
    clock = ServerTimeClock(wall)
    clock.observe_ms(1234.5)
    assert clock.monotonic_ns() == 5_000_000_000 and not clock.following  # live: the session's own clock
    clock.follow()
    assert clock.following and clock.monotonic_ns() == 1_234_500_000
    clock.observe_ms(1000.0)  # an older stamp never moves it back
    assert clock.monotonic_ns() == 1_234_500_000
    clock.follow(False)
    wall.advance_ns(7)
    assert clock.monotonic_ns() == 5_000_000_007 and clock.wall_ns() == wall.wall_ns()
