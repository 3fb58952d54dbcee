"""Handing server events to their readers: the :meth:`Session.wait_for` cursor and ``events()`` streams.

An :class:`EventFeed` keeps each server event's JSON (or a :class:`LocalEvent`) in a bounded backlog for
the ``wait_for`` cursor and in one inbox per ``events()`` reader; the SDK model is built only when a
reader takes the event, and never for a reader that asks for ``typed=False`` (it gets the JSON object).
Timeouts are on the injected clock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from vlab.clock import NS_PER_S, Clock, SystemClock

EventMatch = str | Callable[[Any], bool]
"""What :meth:`EventFeed.wait_for` waits for: an event type, or a predicate on the event."""


def _as_delivered(item: Any) -> Any:
    return item


class LocalEvent(dict[str, Any]):
    """A notice from the session itself in the stream of server events (``type`` starts with ``vlab.``).

    :meth:`Session.wait_for` and :meth:`Session.events` deliver it between server events; read fields
    as attributes or keys, e.g. ``event.type``, ``event["attempt"]``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Inbox:
    """The events delivered to one ``events()`` reader, and the reader's wake-up.

    Lighter than an :class:`asyncio.Queue`, which counts unfinished tasks and keeps a list of getters.
    """

    __slots__ = ("_waiter", "items")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        """Add an event (``None``: the feed ended) and wake the reader."""
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Return once there is an item."""
        while not self.items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter


class EventFeed:
    """Delivers server events to the ``wait_for`` cursor and to ``events()`` readers.

    Args:
        clock: The clock ``wait_for`` timeouts run on (default: :class:`~vlab.clock.SystemClock`).
        backlog: Events kept for ``wait_for`` until read (the oldest are dropped beyond it).
        to_model: Turns a delivered item into what readers get (e.g. the SDK model of a JSON event).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        backlog: int = 10_000,
        to_model: Callable[[Any], Any] = _as_delivered,
    ) -> None:
        self.clock = clock or SystemClock()
        self.live = False
        """Whether events may still come (between :meth:`start` and :meth:`end`)."""
        self._to_model = to_model
        self._backlog: deque[Any] = deque(maxlen=backlog)
        self._subscribers: list[_Inbox] = []
        self._waiters: list[asyncio.Future[None]] = []

    def start(self) -> None:
        """Events may come from now on."""
        self.live = True

    @property
    def awaited(self) -> bool:
        """Whether a ``wait_for`` is waiting now: if the feed ends, it raises (``events()`` readers just stop)."""
        return any(not waiter.done() for waiter in self._waiters)

    def put(self, item: Any) -> None:
        """Deliver one event (a server event's JSON object or a :class:`LocalEvent`)."""
        self._backlog.append(item)
        if self._waiters:
            self._wake()
        for inbox in self._subscribers:
            inbox.put(item)

    def end(self) -> None:
        """No more events: ``events()`` readers stop, ``wait_for`` raises once the backlog is read."""
        self.live = False
        self._wake()
        for inbox in self._subscribers:
            inbox.put(None)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(
        self,
        match: EventMatch,
        *,
        timeout_s: float = 60.0,
        count: int = 1,
        ended: Callable[[str], BaseException] = lambda doing: RuntimeError(f"the feed ended {doing}"),
        typed: bool = True,
    ) -> list[Any]:
        """Read events from the cursor until ``count`` of them match; returns those read, the match last.

        Args:
            match: An event type, or a predicate on the event.
            timeout_s: Give up after this long on the feed's clock.
            count: How many matches to wait for.
            ended: Builds the error raised when the feed ends first (given what was being done).
            typed: Turn each event into what readers get (``to_model``); False: the items as delivered.

        Raises:
            TimeoutError: Not in time; the message lists the types that did arrive.
        """
        seen: list[Any] = []
        hits = 0
        timer: asyncio.Future[None] | None = None
        if isinstance(match, str):
            awaited = missing = repr(match)
        else:  # a predicate is said in words: its repr means nothing to a user
            awaited, missing = "a server event", "matching server event"
        backlog, to_model = self._backlog, self._to_model if typed else _as_delivered
        try:
            while True:
                while backlog:
                    event = to_model(backlog.popleft())
                    seen.append(event)
                    hits += bool(event.get("type") == match if isinstance(match, str) else match(event))
                    if hits >= count:
                        return seen
                if not self.live:
                    raise ended(f"while waiting for {awaited}")
                if timer is None:
                    deadline_ns = self.clock.monotonic_ns() + round(timeout_s * NS_PER_S)
                    timer = asyncio.ensure_future(self.clock.sleep_until_ns(deadline_ns))
                    timer.add_done_callback(lambda _: self._wake())
                elif timer.done():
                    got = sorted({e.get("type") for e in seen})
                    raise TimeoutError(f"no {missing} within {timeout_s} s (received: {got})")
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        finally:
            if timer is not None and not timer.done():
                timer.cancel()

    async def events(self, *, typed: bool = True) -> AsyncIterator[Any]:
        """Events from now on, until the feed ends (``typed``: as in :meth:`wait_for`)."""
        to_model = self._to_model if typed else _as_delivered
        inbox = _Inbox()
        items = inbox.items
        self._subscribers.append(inbox)
        try:
            while True:
                if not items:
                    await inbox.wait()
                item = items.popleft()
                if item is None:
                    return
                yield to_model(item)
        finally:
            self._subscribers.remove(inbox)
