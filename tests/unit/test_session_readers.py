"""Handing events to wait_for and events(): a cursor, independent streams, timeouts on the clock."""

from __future__ import annotations

import asyncio

import pytest

from vlab.clock import VirtualClock
from vlab.session.readers import EventFeed, LocalEvent

MS = 1_000_000


def started_feed(**options) -> tuple[EventFeed, VirtualClock]:
    clock = VirtualClock()
    feed = EventFeed(clock, **options)
    feed.start()
    return feed, clock


async def test_wait_for_is_a_cursor_that_never_misses_an_event():
    feed, _ = started_feed()
    for kind in ("a", "b", "done", "c", "done"):
        feed.put({"type": kind})
    assert [e["type"] for e in await feed.wait_for("done")] == ["a", "b", "done"]
    assert [e["type"] for e in await feed.wait_for(lambda e: e["type"] == "done")] == ["c", "done"]
    waiter = asyncio.create_task(feed.wait_for("done", count=2))
    feed.put({"type": "done"})
    feed.put(LocalEvent(type="vlab.reconnected", attempt=1))
    feed.put({"type": "done"})
    got = await waiter
    assert [e["type"] for e in got] == ["done", "vlab.reconnected", "done"] and got[1].attempt == 1


async def test_wait_for_times_out_on_the_feed_clock_and_lists_what_came():
    feed, clock = started_feed()
    waiter = asyncio.create_task(feed.wait_for("response.done", timeout_s=2))
    await clock.wait_for_sleepers()
    feed.put({"type": "response.created"})
    assert clock.next_deadline_ns() == 2_000 * MS
    clock.advance_ns(2_000 * MS)
    with pytest.raises(
        TimeoutError, match=r"no 'response.done' within 2 s \(received: \['response.created'\]\)"
    ):
        await waiter


async def test_an_ended_feed_raises_the_error_the_owner_gives():
    feed, _ = started_feed()
    feed.put({"type": "a"})
    feed.end()
    assert [e["type"] for e in await feed.wait_for("a")] == ["a"]  # the backlog is still read
    with pytest.raises(ConnectionError, match="lost while waiting for 'b'"):
        await feed.wait_for("b", ended=lambda doing: ConnectionError(f"lost {doing}"))
    waiter = asyncio.create_task(EventFeed(VirtualClock()).wait_for("x"))  # never started
    with pytest.raises(RuntimeError, match="ended while waiting for 'x'"):
        await waiter


async def test_each_events_stream_sees_everything_from_when_it_started_until_the_end():
    feed, _ = started_feed(to_model=lambda item: item["type"])
    feed.put({"type": "before"})
    got = [asyncio.create_task(_collect(feed.events())) for _ in range(2)]  # they subscribe first
    loop = asyncio.get_running_loop()
    for kind in ("x", "y"):
        loop.call_soon(feed.put, {"type": kind})  # runs after the streams' first steps (FIFO)
    loop.call_soon(feed.end)
    assert await got[0] == await got[1] == ["x", "y"]


async def _collect(stream) -> list:
    return [item async for item in stream]


async def test_the_backlog_keeps_the_newest_events():
    feed, _ = started_feed(backlog=2)
    for kind in ("a", "b", "c"):
        feed.put({"type": kind})
    assert [e["type"] for e in await feed.wait_for(lambda e: e["type"] == "c")] == ["b", "c"]


async def test_untyped_readers_get_the_items_as_delivered_and_typed_ones_the_models():
    feed, _ = started_feed(to_model=lambda item: item["type"].upper())
    events = [{"type": "a"}, {"type": "done"}]
    streams = [asyncio.create_task(_collect(feed.events(typed=typed))) for typed in (True, False)]
    loop = asyncio.get_running_loop()
    for event in events:
        loop.call_soon(feed.put, event)
    loop.call_soon(feed.end)
    typed, untyped = [await stream for stream in streams]
    assert (
        typed == ["A", "DONE"]
        and untyped == events
        and all(a is b for a, b in zip(untyped, events, strict=True))
    )
    got = await feed.wait_for("done", typed=False)
    assert got == events and got[0] is events[0]


async def test_a_wait_on_a_predicate_says_it_in_words_not_its_repr():
    feed, clock = started_feed()
    waiter = asyncio.create_task(feed.wait_for(lambda e: e["type"] == "x", timeout_s=2))
    await clock.wait_for_sleepers()
    clock.advance_ns(2_000 * MS)
    with pytest.raises(TimeoutError) as timed_out:
        await waiter
    assert str(timed_out.value) == "no matching server event within 2 s (received: [])"
    feed.end()
    with pytest.raises(RuntimeError) as ended:
        await feed.wait_for(lambda e: True)
    assert str(ended.value) == "the feed ended while waiting for a server event"
