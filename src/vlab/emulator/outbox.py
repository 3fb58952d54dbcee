"""Where one connection's server events go: fresh ids, simulated-time stamps, the trace, faults on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vlab import protocol
from vlab.clock import NS_PER_S, Clock
from vlab.emulator.faults import Fault, FaultPlan
from vlab.emulator.timeline import Scheduler
from vlab.emulator.wire import Ids, WireError, dumps

if TYPE_CHECKING:
    from aiohttp import web


class Outbox:
    """Sends a connection's server events over its WebSocket.

    Every event gets a fresh ``event_id`` and its simulated time (:data:`vlab.protocol.SIM_MS_KEY`), and
    is recorded in the ground-truth trace. Armed faults (:class:`~vlab.emulator.faults.FaultPlan`) delay,
    throttle, drop or close on the wall clock, as a broken network would.

    Args:
        ws: The prepared aiohttp WebSocket.
        transport: Its transport (a ``drop`` fault aborts it).
        scheduler: The connection's simulated timeline (the time each event is stamped with).
        clock: The wall clock that times faults.
        trace: Adds an entry to the ground-truth trace.
        spawn: Runs background work the connection cancels when it closes.
        output_bytes_per_ms: Byte rate of the session's output audio (for ``throttle``).
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        *,
        scheduler: Scheduler,
        clock: Clock,
        trace: Callable[..., None],
        spawn: Callable[[Any], asyncio.Task[Any]],
        output_bytes_per_ms: Callable[[], float],
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.faults = FaultPlan()
        self.closed = False
        self._scheduler = scheduler
        self._clock = clock
        self._trace = trace
        self._spawn = spawn
        self._output_bytes_per_ms = output_bytes_per_ms
        self._throttle: tuple[str, int, float] | None = None  # response_id, start ns, audio ms sent

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event (with a fresh ``event_id`` and its simulated time), tracing it."""
        if self.closed or self.ws.closed:
            self.closed = True
            return
        sim_ms = round(self._scheduler.now_ms, 3)
        event = {"event_id": Ids.new("event"), **event, protocol.SIM_MS_KEY: sim_ms}
        etype = event["type"]
        if self.faults.armed:
            await self._fault_delay(event)
        text = dumps(event)
        t_ns = self._clock.monotonic_ns()
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self.closed = True
            return
        self._trace(kind="send", t_ns=t_ns, sim_ms=sim_ms, type=etype, event_id=event["event_id"])
        if self.faults.armed:
            for fault in self.faults.after(etype):
                await self._fire(fault)

    async def _fault_delay(self, event: dict[str, Any]) -> None:
        """Hold an event back for ``delay`` faults and pace output audio for ``throttle`` faults."""
        delay_ms = self.faults.delay_before(event["type"])
        if delay_ms:
            self._trace(kind="fault", fault="delay", at=event["type"], ms=delay_ms)
            await self._clock.sleep_until_ns(self._clock.monotonic_ns() + int(delay_ms * 1e6))
        rate = self.faults.throttle_rate
        if rate is None or event["type"] != protocol.AUDIO_DELTA:
            return
        n_bytes = len(event["delta"]) * 3 // 4 - event["delta"][-2:].count("=")
        chunk_ms = n_bytes / self._output_bytes_per_ms()
        now_ns = self._clock.monotonic_ns()
        if self._throttle is None or self._throttle[0] != event["response_id"]:
            self._throttle = (event["response_id"], now_ns, 0.0)
        rid, t0_ns, sent_ms = self._throttle
        await self._clock.sleep_until_ns(t0_ns + int(sent_ms / 1000.0 / rate * NS_PER_S))
        self._throttle = (rid, t0_ns, sent_ms + chunk_ms)

    async def _fire(self, fault: Fault) -> None:
        """Act on a ``drop``, ``close`` or ``error`` fault that is due."""
        self._trace(kind="fault", fault=fault.kind, at=fault.at, n=fault.n)
        if fault.kind == "drop":
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            return
        if fault.kind == "error":
            await self.send(
                {
                    "type": protocol.ERROR,
                    "error": {
                        "type": "server_error",
                        "code": fault.error_code,
                        "message": fault.message,
                        "param": None,
                        "event_id": None,
                    },
                }
            )
            if not fault.fatal:
                return
        self.closed = True
        code = fault.code if fault.kind == "close" else 1011
        self._spawn(self.ws.close(code=code, message=f"vlab fault: {fault.kind}".encode()))

    async def send_error(self, err: WireError) -> None:
        """Send the ``error`` event of a failed client event."""
        event = err.to_event("")
        del event["event_id"]  # send() gives every event a fresh id
        await self.send(event)
