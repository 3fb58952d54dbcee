"""The session's link to the server: one connection at a time, read, watched for stalls, reopened.

A :class:`Link` holds the connection (a :class:`Wire`: the SDK connection behind
:mod:`vlab.session.sdk_adapter`, or a fake in tests). Its reader, :meth:`Link.events`, yields:

- ``(payload, t_ns)`` for each server event: its JSON object and the receive stamp on the link's clock;
- an :class:`UnreadableFrame` for a frame that is JSON but cannot be read (nested too deeply to parse):
  the connection goes on;
- a :class:`~vlab.session.reconnect.ConnectionLoss` when the connection is lost (closed, dropped, stalled,
  or not the Voice Live protocol);
- under a :class:`~vlab.session.reconnect.Reconnect` policy, then, for each attempt after its back-off
  (slept on the clock): :class:`Reconnecting`, and :class:`ReconnectFailed` or :class:`Reconnected`,
  after which the events of the new connection follow.

The reader ends when the link gives up (:attr:`Link.loss` says why) or is closed. Senders wait on the
link's state, never poll it: :meth:`Link.wait_up` returns once a connection is up and
:meth:`Link.wait_lost` once the reader has noticed that a connection died.

A stall is silence from the server while it owes an answer (:class:`StallWatch`). A watchdog task
sleeps on the clock until the moment silence would become a stall, and only then interrupts the waiting
receive: nothing runs per event but two integer updates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

import orjson

from vlab import protocol
from vlab.clock import NS_PER_S, Clock, SystemClock, wait_until_ns
from vlab.errors import ConnectionFailed, ProtocolError
from vlab.session.reconnect import (
    ConnectionLoss,
    Notice,
    Reconnect,
    Reconnected,
    ReconnectFailed,
    Reconnecting,
)

REPLY_EXPECTED = frozenset(
    {
        protocol.CLIENT_SESSION_UPDATE,
        protocol.CLIENT_RESPONSE_CREATE,
        protocol.CLIENT_ITEM_CREATE,
        protocol.CLIENT_COMMIT,
        protocol.CLIENT_CLEAR,
        protocol.CLIENT_ITEM_TRUNCATE,
    }
)
"""Client events the server always answers: once one is sent, silence from the server is a stall."""

_json_decode = json.JSONDecoder().decode
_orjson_loads = orjson.loads
_OrjsonError = orjson.JSONDecodeError
_WIDE = 9.2e18
"""orjson reads an integer beyond 64 bits as a float: one of at least this magnitude may have been one."""


def _holds_wide_float(value: Any) -> bool:
    """Whether a parsed JSON value holds a float of magnitude ≥ :data:`_WIDE` (iterative: any depth)."""
    if type(value) is not dict:
        return _nested_wide_float([value])
    nested = None
    for v in value.values():  # an event's own fields first, without a stack: most are strings and ints
        t = type(v)
        if t is float:
            if not -_WIDE < v < _WIDE:
                return True
        elif t is dict or t is list:
            if nested is None:
                nested = [v]
            else:
                nested.append(v)
    return nested is not None and _nested_wide_float(nested)


def _nested_wide_float(stack: list[Any]) -> bool:
    pop, extend = stack.pop, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is dict:
            extend(v.values())
        elif t is list:
            extend(v)
        elif t is float and not -_WIDE < v < _WIDE:
            return True
    return False


def parse_frame(raw: bytes) -> Any:
    """A frame's JSON value exactly as ``json.loads(raw.decode("utf-8"))`` (the SDK's ``conn.recv()``) reads it.

    orjson parses it (about twice as fast); what orjson refuses but ``json`` may accept (NaN, Infinity,
    1e400, lone surrogates, nesting deeper than 1024), and a value where orjson may have read an integer
    beyond 64 bits as a float, are parsed again by ``json``, so the value and the errors are ``json``'s.
    One difference remains: ``json`` gives up at about the recursion limit (1000 levels, less the stack in
    use), orjson at 1024, so a frame nested between the two is read where ``json`` would not.

    Raises:
        ValueError: Not JSON (``UnicodeDecodeError``: not UTF-8).
        RecursionError: Nested too deeply for ``json``.
    """
    try:
        value = _orjson_loads(raw)
    except _OrjsonError:
        return _json_decode(raw.decode("utf-8"))
    if _holds_wide_float(value):
        return _json_decode(raw.decode("utf-8"))
    return value


def _response_id(payload: Mapping[str, Any]) -> str | None:
    """``response.id`` of a ``response.created``/``.done`` event, when both have their protocol types."""
    response = payload.get("response")
    rid = response.get("id") if type(response) is dict else None
    return rid if type(rid) is str else None


class WireError(Exception):
    """A connection could not be opened or used (the message is the transport's, not yet redacted)."""


class WireClosed(WireError):
    """The connection is closed: by a close frame (``code``), or without one (``code`` None or 1006).

    Args:
        code: The WebSocket close code, if the transport reported one.
        reason: The close reason or the transport error.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"WebSocket connection closed with code {code}: {reason}")
        self.code = code
        self.reason = reason


class FrameTooLarge(WireClosed):
    """The client closed the connection because a server frame exceeded its frame size limit.

    Args:
        limit_bytes: The client's limit (the SDK's ``max_msg_size``).
        reason: The transport's message (it names the frame's size).
    """

    def __init__(self, limit_bytes: int, reason: str) -> None:
        super().__init__(1009, reason)
        self.limit_bytes = limit_bytes


class UnreadableFrame(Exception):
    """A server frame that is JSON but cannot be read as an event; the connection goes on.

    Args:
        raw: The frame as received.
        problem: Why it cannot be read.
        t_ns: Its receive stamp on the link's clock.
    """

    def __init__(self, raw: bytes, problem: str, t_ns: int) -> None:
        super().__init__(problem)
        self.raw = raw
        self.problem = problem
        self.t_ns = t_ns


class Wire(Protocol):
    """One open connection to a Voice Live server (implemented by :mod:`vlab.session.sdk_adapter`)."""

    async def recv_bytes(self) -> bytes:
        """The next message's bytes; raises :class:`WireClosed` once the connection is closed."""
        ...

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send a client event; raises :class:`WireClosed` when the connection is gone."""
        ...

    async def close(self) -> None:
        """Close the connection; never raises (it may already be dead)."""
        ...


class LinkEnded(Exception):
    """The link has ended (given up, or closed); :attr:`Link.loss` says how, when it was lost."""


_ATTEMPT_ERRORS = (WireError, ConnectionFailed, ProtocolError, OSError, TimeoutError, asyncio.TimeoutError)
"""What a failed reconnection attempt raises (anything else is a bug, and ends the reader)."""


class StallWatch:
    """When silence from the server becomes a stall: a pure bookkeeping of what the server owes.

    The server owes an event while a response is in progress, and after a client event it always
    answers (:data:`REPLY_EXPECTED`) until the next server event. Silence for ``timeout_ns`` from the
    later of the last server event and the first unanswered request is a stall.

    Args:
        timeout_ns: Allowed silence in ns (None: never a stall).
    """

    __slots__ = ("expect_since_ns", "last_server_ns", "response_id", "timeout_ns")

    def __init__(self, timeout_ns: int | None) -> None:
        self.timeout_ns = timeout_ns
        self.last_server_ns = 0
        """Stamp of the last server event (ns)."""
        self.expect_since_ns: int | None = None
        """Stamp of the first client event still waiting for an answer (ns), if any."""
        self.response_id: str | None = None
        """The response in progress, if any."""

    def reset(self) -> None:
        """Forget what was owed (a new connection owes nothing yet)."""
        self.expect_since_ns = None
        self.response_id = None

    def sent(self, event_type: object, t_ns: int) -> bool:
        """Note a client event sent at ``t_ns``; True when the server owes an answer from now on."""
        if event_type in REPLY_EXPECTED and self.expect_since_ns is None:
            self.expect_since_ns = t_ns
            return True
        return False

    def received(self, t_ns: int) -> None:
        """Note a server event received at ``t_ns`` (it answers whatever was asked)."""
        self.last_server_ns = t_ns
        self.expect_since_ns = None

    def deadline_ns(self) -> int | None:
        """When silence turns into a stall (None: nothing is owed, or no timeout)."""
        if self.timeout_ns is None or (self.response_id is None and self.expect_since_ns is None):
            return None
        return max(self.last_server_ns, self.expect_since_ns or 0) + self.timeout_ns


LinkState = Literal["new", "up", "down", "ended"]


class Link:
    """One server connection at a time, for one session: read, watched for stalls, reconnected.

    Args:
        open_wire: Opens a new connection (raises on failure, e.g. :class:`~vlab.errors.ConnectionFailed`).
        handshake: Run on each new connection before it counts as up (e.g. read ``session.created`` and
            send the settings); uses :meth:`recv` and :meth:`send`.
        clock: Stamps, stall deadlines and reconnect back-off (default: :class:`~vlab.clock.SystemClock`).
        stall_timeout_s: Silence that counts as a stall while the server owes an event (None: never).
        reconnect: The reconnect policy (None: a loss ends the link).
        redact: Removes secrets from transport messages.
    """

    def __init__(
        self,
        open_wire: Callable[[], Awaitable[Wire]],
        handshake: Callable[[], Awaitable[None]],
        *,
        clock: Clock | None = None,
        stall_timeout_s: float | None = None,
        reconnect: Reconnect | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.clock = clock or SystemClock()
        self.stall_timeout_s = stall_timeout_s
        self.reconnect = reconnect
        self.wire: Wire | None = None
        """The open connection, if any."""
        self.reconnects = 0
        """How many times a lost connection was re-established."""
        self.loss: ConnectionLoss | None = None
        """Why the link ended, when a loss ended it (with the failed reconnections, if any)."""
        self._open_wire = open_wire
        self._handshake = handshake
        self._redact = redact
        self._watch = StallWatch(None if stall_timeout_s is None else round(stall_timeout_s * NS_PER_S))
        self._last_error: tuple[str | None, str | None] | None = None
        self._state: LinkState = "new"
        self._generation = 0
        self._changed = asyncio.Event()
        self._due = asyncio.Event()
        self._reader: asyncio.Task[Any] | None = None
        self._receiving = False
        self._stalled = False
        self._closing = False

    # --- state ---------------------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        """``new`` (never connected), ``up``, ``down`` (lost, maybe reconnecting) or ``ended``."""
        return self._state

    @property
    def generation(self) -> int:
        """Number of the current connection (1 for the first; each reconnection adds one)."""
        return self._generation

    @property
    def response_id(self) -> str | None:
        """The response in progress on the current connection, if any."""
        return self._watch.response_id

    def _set_state(self, state: LinkState) -> None:
        self._state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_up(self) -> None:
        """Return once a connection is up.

        Raises:
            LinkEnded: The link has ended (or ends meanwhile).
        """
        while self._state != "up":
            if self._state == "ended":
                raise LinkEnded
            await self._changed.wait()

    async def wait_lost(self, generation: int) -> None:
        """Return once connection number ``generation`` is known to be gone (or the link has ended)."""
        while self._state == "up" and self._generation == generation:
            await self._changed.wait()

    # --- connecting, sending, receiving --------------------------------------------------------------

    async def connect(self) -> None:
        """Open a connection and run the handshake on it; then it is up.

        Raises:
            Exception: What opening or the handshake raised (the connection is closed again).
        """
        wire = await self._open_wire()
        self.wire = wire
        self._watch.reset()
        self._last_error = None
        try:
            await self._handshake()
        except BaseException:
            self.wire = None
            await wire.close()
            raise
        self._generation += 1
        self._set_state("up")

    async def send(self, event: Mapping[str, Any]) -> int:
        """Send a client event on the current connection; returns its stamp (taken just before sending).

        Raises:
            WireClosed: There is no connection, or it is gone.
        """
        wire = self.wire
        if wire is None:
            raise WireClosed(None, "no connection is open")
        t_ns = self.clock.monotonic_ns()
        await wire.send(event)
        if self._watch.sent(event.get("type"), t_ns):
            self._due.set()
        return t_ns

    async def send_when_up(self, event: Mapping[str, Any]) -> int:
        """Send once a connection is up; when it dies under the send, wait for the next one and resend.

        Returns:
            The send stamp.

        Raises:
            LinkEnded: The link ended before the event could be sent.
        """
        while True:
            if self._state != "up":
                await self.wait_up()
            generation = self._generation
            try:
                return await self.send(event)
            except WireClosed:
                await self.wait_lost(generation)  # the reader notices, says how, and may reconnect

    async def recv(self, timeout_s: float | None = None) -> tuple[dict[str, Any], int]:
        """Receive one server event outside the reader (the handshake's ``session.created``).

        Raises:
            WireClosed: The connection closed.
            ProtocolError: The message is not a JSON object.
            UnreadableFrame: The message is nested too deeply to parse.
            TimeoutError: Nothing within ``timeout_s`` on the link's clock.
        """
        wire = self.wire
        if wire is None:
            raise WireClosed(None, "no connection is open")
        if timeout_s is None:
            raw = await wire.recv_bytes()
        else:
            deadline_ns = self.clock.monotonic_ns() + round(timeout_s * NS_PER_S)
            try:
                raw = await wait_until_ns(self.clock, wire.recv_bytes(), deadline_ns)
            except TimeoutError:
                raise TimeoutError(f"no event from the server within {timeout_s:g} s") from None
        return self._accept(raw)

    def _accept(self, raw: bytes) -> tuple[dict[str, Any], int]:
        """Stamp, parse and account for one received message.

        The bookkeeping reads fields only when they have their protocol types: a malformed event is
        the session's to report (:mod:`vlab.session.checks`), never a reason for the reader to fail.
        """
        t_ns = self.clock.monotonic_ns()
        try:
            payload = parse_frame(raw)  # as the SDK's conn.recv() parses it
        except ValueError as exc:
            raise ProtocolError(f"the server sent a frame that is not JSON: {exc}") from None
        except RecursionError:
            self._watch.received(t_ns)
            raise UnreadableFrame(raw, "the frame is nested too deeply to parse", t_ns) from None
        if type(payload) is not dict:
            raise ProtocolError(
                f"the server sent a frame that is not a JSON object: {type(payload).__name__}"
            )
        watch = self._watch
        watch.received(t_ns)
        kind = payload.get("type")
        self._last_error = None
        if kind == protocol.RESPONSE_CREATED:
            watch.response_id = _response_id(payload)
            self._due.set()
        elif kind == protocol.RESPONSE_DONE:
            if watch.response_id is not None and watch.response_id == _response_id(payload):
                watch.response_id = None
        elif kind == "error":
            error = payload.get("error")
            if type(error) is dict:
                code, message = error.get("code"), error.get("message")
                self._last_error = (
                    code if type(code) is str else None,
                    message if type(message) is str else None,
                )
        return payload, t_ns

    async def events(self) -> AsyncGenerator[tuple[dict[str, Any], int] | UnreadableFrame | Notice, None]:
        """Server events ``(payload, t_ns)``, unreadable frames and notices, until the link gives up or is closed.

        Call once, after :meth:`connect`, from the task that reads (a stall interrupts that task's
        receive). Close it with ``contextlib.aclosing`` so the link ends with its reader.
        """
        self._reader = asyncio.current_task()
        try:
            while True:
                wire = self.wire
                assert wire is not None, "events() needs a connection (call connect() first)"
                watchdog = self._start_watchdog()
                try:
                    while True:  # the hot path: one receive, one parse, one yield per server event
                        self._receiving = True
                        try:
                            raw = await wire.recv_bytes()
                        except (asyncio.CancelledError, WireClosed) as exc:
                            loss = self._loss(exc)  # re-raises a cancellation that is not a stall
                            break
                        finally:
                            self._receiving = False
                        try:
                            item = self._accept(raw)
                        except ProtocolError as exc:
                            loss = ConnectionLoss.protocol_error(str(exc), self._watch.response_id)
                            break
                        except UnreadableFrame as unreadable:
                            yield unreadable
                            continue
                        yield item
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
                self._set_state("down")
                self.wire = None
                try:
                    yield loss  # reported before closing: a dead socket may take a while to close
                finally:
                    await wire.close()
                failures: list[str] = []
                policy = self.reconnect
                if (
                    loss.code != "protocol_error"
                    and policy is not None
                    and self.reconnects < policy.max_reconnects
                ):
                    for attempt in range(1, policy.attempts + 1):
                        delay_ns = round(policy.delay_s(attempt) * NS_PER_S)
                        await self.clock.sleep_until_ns(self.clock.monotonic_ns() + delay_ns)
                        yield Reconnecting(attempt, loss)
                        try:
                            await self.connect()
                        except _ATTEMPT_ERRORS as exc:
                            failures.append(self._redact(str(exc)) or type(exc).__name__)
                            yield ReconnectFailed(attempt, failures[-1])
                            continue
                        self.reconnects += 1
                        yield Reconnected(attempt, loss)
                        break
                if self._state != "up":
                    self.loss = loss.after_failed_reconnects(failures)
                    return
        finally:
            self._reader = None
            self._receiving = False
            if self._state != "ended":
                self._set_state("ended")

    def _loss(self, exc: BaseException) -> ConnectionLoss:
        """How the connection was lost, from what its receive raised (a stall's cancellation, a closure)."""
        if isinstance(exc, FrameTooLarge):
            return ConnectionLoss.frame_too_large(
                exc.limit_bytes, self._redact(exc.reason), response_id=self._watch.response_id
            )
        if isinstance(exc, WireClosed):
            return ConnectionLoss.closed(
                exc.code,
                self._redact(exc.reason or ""),
                server_error=self._last_error,
                response_id=self._watch.response_id,
            )
        if not self._stalled or self._closing:
            raise exc  # cancelled from outside: the reader stops
        self._stalled = False
        uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python ≥ 3.11
        if uncancel is not None and uncancel() > 0:
            raise exc  # also cancelled from outside
        return ConnectionLoss.stalled(self.stall_timeout_s or 0.0, self._watch.response_id)

    # --- stall watchdog ----------------------------------------------------------------------------------

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        if self._watch.timeout_ns is None or self._reader is None:
            return None
        return asyncio.create_task(self._watchdog(self._reader), name="vlab-stall-watchdog")

    async def _watchdog(self, reader: asyncio.Task[Any]) -> None:
        """Sleep until silence would be a stall; then interrupt the reader's receive (once)."""
        watch, clock = self._watch, self.clock
        assert watch.timeout_ns is not None
        recheck_ns = max(20_000_000, min(500_000_000, watch.timeout_ns // 4))
        while True:
            deadline = watch.deadline_ns()
            if deadline is None:
                self._due.clear()
                await self._due.wait()
                continue
            now = clock.monotonic_ns()
            if now < deadline:
                await clock.sleep_until_ns(deadline)
            elif not self._receiving or self._closing:  # busy elsewhere: look again a little later
                await clock.sleep_until_ns(now + recheck_ns)
            else:
                self._stalled = True
                reader.cancel()
                return

    async def close(self) -> None:
        """End the link: no stall is reported from now on, and the connection is closed.

        The caller stops the reader (cancels its task) itself; the link then ends with it.
        """
        self.stop()
        wire, self.wire = self.wire, None
        if wire is not None:
            await wire.close()
        if self._state != "ended":
            self._set_state("ended")

    def stop(self) -> None:
        """From now on, a cancelled receive is a cancellation, never a stall (call before cancelling the reader)."""
        self._closing = True
