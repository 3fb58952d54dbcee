"""A connection's simulated timeline: every server event happens at a time in ms of input audio.

The emulator decides on this timeline, never on which coroutine the event loop runs first. Work is
done in *steps*: each step has a simulated time, and a :class:`Scheduler` runs the steps of one
connection one at a time, in order of that time (ties in the order they were scheduled). A step is a
coroutine that holds the connection's *turn*; a long-lived process (a response) gives the turn back at
every :meth:`Scheduler.at`, and takes it again when its next time comes. Nothing else of the connection
runs meanwhile, so a step that waits for the wall clock (speech synthesis, recognition on a worker
thread) delays the wall clock only, never the order.

When a step may run (its time is at or before the *horizon*) depends on the client's mode, set with
``session.metadata["vlab.timeline"]`` (:data:`vlab.protocol.TIMELINE_METADATA_KEY`):

- ``input``: time follows the client's input audio only. A step at ``t`` runs once the server VAD has
  decided the audio up to ``t``, so a reply and the user's next words are ordered by their simulated
  times at any speed and under any load. vlab's replays and sweeps use this mode. A tool call's answer
  is the client's input too: once a response with function calls or MCP approval requests is done, or
  the MCP calls of a response have returned, time waits for the client's answer
  (:meth:`Scheduler.wait_for_client`): its next ``response.create``, or the approval of the calls. What
  the client sends meanwhile happens when the call ended, however far ahead its audio is.
- ``ended``: the client has sent all its audio; time runs on without it, mapped to the wall clock as
  ``simulated ms / speed`` (``speed = inf``: no waiting at all).
- ``live`` (the default, for clients that know nothing of vlab): time runs on the wall clock (× speed)
  while there is work waiting for its time, and a VAD decision happens when it is made, like on the
  service; the order of a reply and the user's next words then depends on when the audio arrives.
  While the connection has nothing to do, its time stands still (so the times of what a client sends
  before its audio do not depend on how fast it sent it).

Speed only maps the timeline onto the wall clock: the same audio and seed give the same steps at the
same simulated times in ``input`` and ``ended`` mode at every speed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from vlab import protocol
from vlab.clock import Clock

T = TypeVar("T")

_NS_PER_MS = 1_000_000


@dataclass(order=True, slots=True)
class Wake:
    """A booked step of a process: when it runs, and the future that lets the process go on."""

    t_ms: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    live: bool = field(default=True, compare=False)


class Scheduler:
    """Runs one connection's steps in order of simulated time.

    Args:
        speed: How many simulated ms pass per wall ms (``math.inf``: never wait for the wall clock).
        clock: The wall clock that paces free-running time.
    """

    def __init__(self, speed: float, clock: Clock) -> None:
        self.speed = speed
        self.clock = clock
        self.mode = protocol.TIMELINE_LIVE
        self.now_ms = 0.0
        """Simulated time of the step running, or of the last one."""
        self.input_ms = 0.0
        """Input audio decided so far, in ms."""
        self.cap_ms = math.inf
        """No step later than this may run (something it may depend on is still being computed)."""
        self.client_cap_ms = math.inf
        """``input`` mode: the time of a function call the client has not answered yet; no step later
        than it runs, and a client event arriving meanwhile happens at it (:meth:`wait_for_client`)."""
        self.client_floor_ms = 0.0
        """``input`` mode: no client event happens before this (the end of a function's simulated run,
        :meth:`client_ran`)."""
        self._held_ms: float | None = None  # where the unanswered call holds time (None: nothing holds)
        self._anchor_ms = 0.0
        self._anchor_ns = clock.monotonic_ns()
        self._heap: list[Wake] = []
        self._seq = itertools.count()
        self._holder: asyncio.Future[None] | None = None  # resolved when the turn is given back
        self._holder_task: asyncio.Task[object] | None = None
        self._changed: asyncio.Event | None = None
        self._client_held: asyncio.Event | None = None  # set while time waits for the client's answer
        self._input_over = False  # the client asked to leave the input timeline: it answers nothing more
        self._busy = 0  # processes waiting outside the heap for something that will let them go on
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None

    # --- the clock -----------------------------------------------------------------------------------

    def _resting(self) -> bool:
        """Nothing to do and nothing running: free-running time stands still."""
        return self._holder is None and not any(w.live for w in self._heap)

    def _free_ms(self) -> float:
        """Where time running on the wall clock has got to (never behind the last step)."""
        if math.isinf(self.speed) or self._resting():
            return self.now_ms
        elapsed_ms = (self.clock.monotonic_ns() - self._anchor_ns) / _NS_PER_MS
        return self._anchor_ms + elapsed_ms * self.speed

    def current_ms(self) -> float:
        """Simulated time now: when a client event that arrives now, or a decision made now, happens."""
        if self.mode == protocol.TIMELINE_INPUT:
            return self.input_position_ms()
        return max(self.now_ms, self._free_ms())

    def input_position_ms(self, *, answering: bool = True) -> float:
        """Where the client is on the ``input`` timeline.

        The audio decided so far, or an unanswered function call's time when that is earlier (the client
        answers it from there); for what the client answers with (``answering``), no earlier than the end
        of a function's simulated run (:meth:`client_ran`). A request to sync with the timeline is not an
        answer: it happens at the audio sent, even when a function's run ends beyond it.
        """
        position = max(self.now_ms, min(self.input_ms, self.client_cap_ms))
        return max(position, self.client_floor_ms) if answering else position

    def horizon_ms(self) -> float:
        """Latest simulated time at which a step may run now."""
        if self.mode == protocol.TIMELINE_INPUT:
            horizon = self.input_ms
        elif math.isinf(self.speed):
            horizon = math.inf
        else:
            horizon = self._free_ms()
        return min(horizon, self.cap_ms, self.client_cap_ms)

    def set_mode(self, mode: str) -> None:
        """Switch between ``live``, ``input`` and ``ended`` (:data:`vlab.protocol.TIMELINE_MODES`)."""
        if mode not in protocol.TIMELINE_MODES:
            raise ValueError(f"unknown timeline mode {mode!r}; expected one of {protocol.TIMELINE_MODES}")
        self._anchor_ms = max(self.now_ms, self.input_ms)
        self._anchor_ns = self.clock.monotonic_ns()
        self.mode = mode
        self._input_over = mode != protocol.TIMELINE_INPUT
        if self._input_over:  # the client has sent all it will (or paces itself)
            self.client_answered()
        self._poke()

    def input_decided(self, position_ms: float) -> None:
        """The server VAD has decided the input audio up to ``position_ms``."""
        if position_ms > self.input_ms:
            self.input_ms = position_ms
            self._poke()

    def wait_for_client(self) -> None:
        """What the client must answer is here now (tool calls, approval requests): in ``input`` mode, hold time.

        Until the client answers (:meth:`client_answered`), so that the answer happens when the call ended,
        at any speed.
        """
        if self.mode == protocol.TIMELINE_INPUT and not self._input_over:
            self.client_cap_ms = self._held_ms = self.now_ms
            if self._client_held is not None:
                self._client_held.set()
            self._poke()

    def client_answered(self) -> None:
        """The client answered (asked for a response, or approved the calls): time goes on from the hold."""
        self._held_ms = None
        if self.client_cap_ms != math.inf:
            self.client_cap_ms = math.inf
            if self._client_held is not None:
                self._client_held.clear()
            self._poke()

    def client_ran(self, run_ms: float) -> float | None:
        """A function the client ran for ``run_ms`` simulated ms answers the held call: when its output happens.

        That long after the call: time runs on to it meanwhile (steps before it, such as the VAD's
        decisions on the user's words, run first), and no later client event happens before it. None when
        nothing holds time (``live`` or ``ended`` mode, or no call waiting): the output happens on arrival.
        """
        if self._held_ms is None:
            return None
        t_ms = self._held_ms + run_ms
        self.client_cap_ms = max(self.client_cap_ms, t_ms)
        self.client_floor_ms = max(self.client_floor_ms, t_ms)
        self._poke()
        return t_ms

    def input_over(self) -> None:
        """The client has asked to leave the ``input`` timeline: its audio has ended.

        No call holds time any more, even one that ends before that request's own step runs.
        """
        self._input_over = True
        self.client_answered()

    def set_cap(self, cap_ms: float) -> None:
        """Hold every step after ``cap_ms`` back (``math.inf`` lifts the cap)."""
        self.cap_ms = cap_ms
        self._poke()

    # --- processes -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start running steps (on the running loop)."""
        self._changed = asyncio.Event()
        self._client_held = asyncio.Event()
        self._worker = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop running steps and cancel every process."""
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiter in self._idle_waiters:
            waiter.cancel()

    def spawn(self, t_ms: float, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Start a process whose first step runs at ``t_ms`` (no earlier than now)."""
        wake = self.wake_at(t_ms)

        async def process() -> None:
            try:
                await wake.future
                self._holder_task = asyncio.current_task()
                await body()
            finally:
                self._give_back()

        task = asyncio.ensure_future(process())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def client_step(self, t_ms: float, body: Callable[[], Awaitable[None]]) -> None:
        """Run a client event's ``body`` as a step at ``t_ms``, and return once it has run.

        Or once it is held behind a function call the client has not answered yet (:meth:`wait_for_client`):
        it then runs in its order after the answer, which the client sends behind it. Or at once when, in
        ``input`` mode, it waits for input audio the client has not sent yet (a function's simulated run,
        :meth:`client_ran`, can end beyond it): that audio comes behind it.
        """
        assert self._client_held is not None, "start() first"
        ran: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        async def step() -> None:
            try:
                await body()
            finally:
                if not ran.done():
                    ran.set_result(True)

        self.spawn(t_ms, step)
        if self.client_cap_ms == math.inf:
            held: asyncio.Future[object] = asyncio.ensure_future(self._client_held.wait())
            try:
                await asyncio.wait({ran, held}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                held.cancel()
        needs_input = self.mode == protocol.TIMELINE_INPUT and t_ms > self.input_ms
        if t_ms <= self.client_cap_ms and not needs_input:
            await ran

    def wake_at(self, t_ms: float) -> Wake:
        """Book the calling process's next step at ``t_ms`` (no earlier than now); then :meth:`sleep`."""
        return self._push(max(t_ms, self.now_ms))

    async def sleep(self, wake: Wake) -> None:
        """Give the turn back until the booked step's time comes."""
        self._give_back()
        await wake.future
        self._holder_task = asyncio.current_task()

    async def at(self, t_ms: float) -> None:
        """Give the turn back and take it again at simulated time ``t_ms`` (no earlier than now)."""
        await self.sleep(self.wake_at(t_ms))

    def hurry(self, wake: Wake | None) -> None:
        """Move a booked step to now (a cancel must end a response at once)."""
        if wake is None or wake.future.done() or not wake.live:
            return
        wake.live = False
        self._push(self.now_ms, future=wake.future)

    async def wait_for(self, awaitable: Awaitable[T]) -> T:
        """Give the turn back while waiting for something another step or a thread will finish."""
        value = await self._outside(awaitable)
        await self.at(self.now_ms)
        return value

    async def handed(self, wake: Awaitable[Wake]) -> None:
        """From a step: give the turn back until another process hands this one a booked step, and take it there.

        The other process books the step (:meth:`wake_at`) in a step of its own, at its time, so that
        this one goes on from there before any later step runs, however the event loop orders the two
        tasks. (:meth:`wait_for` takes the turn again at whatever time the timeline has reached by then.)
        """
        booked = await self._outside(wake)
        await booked.future
        self._holder_task = asyncio.current_task()

    async def _outside(self, awaitable: Awaitable[T]) -> T:
        """Give the turn back and wait for ``awaitable``, counted as work that may still schedule steps."""
        self._busy += 1
        self._give_back()
        try:
            return await awaitable
        finally:
            self._busy -= 1

    async def wait_outside(self, awaitable: Awaitable[T]) -> T:
        """From a step: wait for work outside the timeline (an MCP server's answer) that is due now.

        On a simulated timeline (``input``, ``ended``) the step keeps the turn, so what it sends next is at
        its time however long the wall clock took. In ``live`` mode the turn goes back meanwhile
        (:meth:`wait_for`): time runs on the wall clock there, as on the service.
        """
        if self.mode == protocol.TIMELINE_LIVE:
            return await self.wait_for(awaitable)
        return await awaitable

    def add_busy(self, n: int) -> None:
        """Count work outside the steps (a recognizer reading a held turn) that may still schedule steps."""
        self._busy += n
        self._poke()

    async def idle(self) -> None:
        """Wait until nothing is left to do: no step waiting, none running, nothing being computed."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        self._poke()
        await waiter

    async def until_idle(self) -> None:
        """From a step: give the turn back and take it again once nothing else is left to do."""
        self._give_back()
        await self.idle()
        await self.at(self.now_ms)

    # --- the worker ----------------------------------------------------------------------------------

    def _push(self, t_ms: float, future: asyncio.Future[None] | None = None) -> Wake:
        if self._resting():  # time starts running again from the last step, not from when work stopped
            self._anchor_ms, self._anchor_ns = self.now_ms, self.clock.monotonic_ns()
        fut = future if future is not None else asyncio.get_running_loop().create_future()
        wake = Wake(t_ms, next(self._seq), fut)
        heapq.heappush(self._heap, wake)
        self._poke()
        return wake

    def _give_back(self) -> None:
        """Give the turn back, if the calling task holds it."""
        if self._holder_task is not asyncio.current_task():
            return
        self._holder_task = None
        holder, self._holder = self._holder, None
        if holder is not None and not holder.done():
            holder.set_result(None)
        self._poke()

    def _poke(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _idle(self) -> bool:
        return self._holder is None and self._busy == 0 and not any(w.live for w in self._heap)

    async def _run(self) -> None:
        assert self._changed is not None
        changed = self._changed
        while True:
            while self._heap and not self._heap[0].live:
                heapq.heappop(self._heap)
            if self._holder is not None:
                await self._holder
                continue
            if not self._heap:
                if self._idle():
                    for waiter in self._idle_waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                    self._idle_waiters.clear()
                changed.clear()
                await changed.wait()
                continue
            head = self._heap[0]
            if head.future.done():  # its process was cancelled
                heapq.heappop(self._heap)
                continue
            if head.t_ms <= self.horizon_ms():
                heapq.heappop(self._heap)
                self.now_ms = max(self.now_ms, head.t_ms)
                self._holder = asyncio.get_running_loop().create_future()
                head.future.set_result(None)
                continue
            changed.clear()
            await self._wait_for_time(head.t_ms, changed)

    async def _wait_for_time(self, t_ms: float, changed: asyncio.Event) -> None:
        """Wait until something changes or free-running time reaches ``t_ms``."""
        free_runs = self.mode != protocol.TIMELINE_INPUT and not math.isinf(self.speed)
        if not free_runs or t_ms > self.cap_ms:
            await changed.wait()
            return
        deadline_ns = self._anchor_ns + int((t_ms - self._anchor_ms) / self.speed * _NS_PER_MS)
        sleeper = asyncio.ensure_future(self.clock.sleep_until_ns(deadline_ns))
        poked = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait({sleeper, poked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, poked):
                task.cancel()
            await asyncio.gather(sleeper, poked, return_exceptions=True)
