"""Answering a session's tool calls: function handlers, MCP approvals, and a response after each.

The service leaves three things to the client, and :class:`ToolRunner` does each as Microsoft's samples
do:

- a ``function_call`` item: once its response is done, the handler of that name runs with the call's
  arguments as keywords; its result goes back as a ``function_call_output`` item, and one
  ``response.create`` (for all the calls of the response) asks for the answer;
- an ``mcp_approval_request`` item: ``approve`` decides, and the answer goes back as an
  ``mcp_approval_response`` item. The service runs an approved call in a response of its own; after a
  declined one the runner asks for a response, so the model says so;
- an ``mcp_call`` item done (its output or error is on the item): the runner asks for the response that
  speaks it.

A response is asked for only when none is under way, nor asked for by the client already (a committed
turn's; the service refuses a second one), and the calls of a cancelled response are not run: the user
interrupted, and the next turn answers what they said.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlab import protocol
from vlab.errors import ConnectionFailed, warn_user
from vlab.log.records import EventRecord

if TYPE_CHECKING:
    from vlab.session.session import Session

Handler = Callable[..., Any]
"""A function tool's code: called with the call's arguments as keywords; returns a string, something
JSON can encode, or an awaitable of either."""


@dataclass(frozen=True)
class McpApprovalRequest:
    """The service asks before calling an MCP server's tool (an ``mcp_approval_request`` item)."""

    id: str
    """The request item's id (what the ``mcp_approval_response`` answers)."""
    server_label: str
    name: str
    """The tool to be called."""
    arguments: str
    """The call's arguments, as JSON text."""

    def describe(self) -> str:
        """One line: ``server_label.name(arguments)``."""
        return f"{self.server_label}.{self.name}({self.arguments})"


Approver = Callable[[McpApprovalRequest], "bool | Awaitable[bool]"]
"""Decides an approval request: True runs the call. May return an awaitable (a button to press)."""

_WATCHED = frozenset(
    {
        protocol.RESPONSE_CREATED,
        protocol.RESPONSE_DONE,
        protocol.OUTPUT_ITEM_ADDED,
        protocol.OUTPUT_ITEM_DONE,
        protocol.ERROR,
    }
)


class ToolRunner:
    """Answers a session's tool calls while it is open (see the module docstring for what it does).

    ``async with ToolRunner(session, {"get_weather": get_weather}, approve=True):`` inside ``async with
    Session(...)`` answers every call made meanwhile.

    Args:
        session: An open session.
        handlers: The code of each function tool, by name. A call of a name without one, with arguments
            that are not a JSON object, or whose handler raises, is answered with ``{"error": "..."}``
            (so the model can say what went wrong) and a :class:`~vlab.errors.VlabWarning`.
        approve: What to answer the service's approval requests for MCP calls: True approves every one,
            False (the default, the safe one) declines every one, or a function deciding each.
        run_ms: How long each function runs, by name, on vlab's emulator: its output happens that long
            after the call on the simulated timeline, at any replay speed (``docs/timeline.md``), so the
            user's wait includes it. Ignored elsewhere: there the handler's own time is real.
    """

    def __init__(
        self,
        session: Session,
        handlers: Mapping[str, Handler] | None = None,
        *,
        approve: bool | Approver = False,
        run_ms: Mapping[str, float] | None = None,
    ) -> None:
        self._session = session
        self._handlers = dict(handlers or {})
        self._run_ms = dict(run_ms or {})
        self._approve = approve
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._calls: list[dict[str, Any]] = []  # function calls of the response under way
        self._responding = False  # a response is under way, or asked for and not yet created
        self._asked = False  # a response was asked for and not yet created
        self._want_response = False
        self._open_mcp_calls: set[str] = set()  # mcp_call items added and not yet done
        self._approved: set[str] = set()  # approval requests approved, whose call has not begun
        self._handling = False  # the worker is answering an event
        self._changed = asyncio.Event()  # set whenever the work left may have changed
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self._attached = False  # its sink is on the session (a sink cannot be taken off)
        self.errors: list[str] = []
        """What each failed function call answered (its handler's error, or why it had none)."""
        self.pending: dict[str, McpApprovalRequest] = {}
        """The approval requests waiting for ``approve``, by id."""
        self.people_asked = 0
        """How many approval requests ``approve`` has left to a person so far (it answered an awaitable)."""

    def start(self) -> None:
        """Answer calls from now on (``async with`` does this)."""
        if self._running:
            return
        self._running = True
        if not self._attached:
            self._session.add_sink(self._on_record)
            self._attached = True
        self._spawn(self._work())

    async def aclose(self) -> None:
        """Stop answering: the calls and approvals under way are cancelled."""
        self._running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def idle(self) -> bool:
        """Nothing is left to do: every event read, no response under way or asked for, no call open."""
        return not (
            self._events.qsize()
            or self._handling
            or self._responding  # also while a response is wanted: one is asked for at once, or under way
            or self._calls
            or self._open_mcp_calls
            or self._approved
            or self.pending
        )

    async def settled(self) -> None:
        """Return once the runner is :attr:`idle` (an approval left to a person waits for them)."""
        await self._until(lambda: self.idle)

    async def caught_up(self) -> None:
        """Return once every event received so far is answered.

        The outputs and the approvals decided at once are sent, and the response asked for (it may still
        be under way). Approvals left to a person are not waited for.
        """
        await self._until(lambda: not (self._events.qsize() or self._handling))

    async def decided(self) -> None:
        """Return once no approval request waits for ``approve``'s answer (a person's button, say)."""
        await self._until(lambda: not self.pending)

    async def _until(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` holds, checking whenever the work left may have changed."""
        while not done():
            self._changed.clear()
            await self._changed.wait()

    async def __aenter__(self) -> ToolRunner:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_record(self, record: EventRecord) -> None:
        """The sink: what may need an answer goes to the worker, in order.

        That is the server events watched, and every ``response.create`` the client sends (a committed
        turn's too, which the session sends itself).
        """
        if not self._running:
            return
        if record.direction == "server" and record.type in _WATCHED:
            self._events.put_nowait(json.loads(record.payload))
        elif record.direction == "client" and record.type == protocol.CLIENT_RESPONSE_CREATE:
            self._events.put_nowait({"type": record.type})

    async def _work(self) -> None:
        with contextlib.suppress(ConnectionFailed):  # the session ended: nothing more to answer
            await self._answer_events()

    async def _answer_events(self) -> None:
        while True:
            event = await self._events.get()
            self._handling = True
            try:
                await self._handle(event)
                await self._respond_if_wanted()
            finally:
                self._handling = False
                self._changed.set()

    async def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        item = event.get("item") or {}
        if kind == protocol.CLIENT_RESPONSE_CREATE:  # asked for, by the runner or by anyone else
            self._responding = self._asked = True
        elif kind == protocol.RESPONSE_CREATED:
            self._responding, self._asked = True, False
        elif kind == protocol.ERROR:  # a response asked for, or an approval, was refused
            if self._asked:
                self._responding = self._asked = False
            self._approved.clear()
        elif kind == protocol.RESPONSE_DONE:
            self._responding = False
            calls, self._calls = self._calls, []
            response = event.get("response") or {}
            if response.get("status") != "completed":  # its MCP calls are not made
                self._open_mcp_calls.difference_update(i.get("id") for i in response.get("output") or ())
            if calls and response.get("status") != "cancelled":
                for call in calls:
                    await self._answer(call)
                self._want_response = True
        elif kind == protocol.OUTPUT_ITEM_ADDED and item.get("type") == protocol.MCP_CALL_ITEM:
            self._open_mcp_calls.add(str(item.get("id")))
            self._approved.discard(str(item.get("approval_request_id")))
        elif kind == protocol.OUTPUT_ITEM_DONE:
            await self._on_item(item)

    async def _on_item(self, item: Mapping[str, Any]) -> None:
        kind = item.get("type")
        if kind == protocol.FUNCTION_CALL_ITEM and item.get("status", "completed") == "completed":
            self._calls.append(dict(item))
        elif kind == protocol.MCP_CALL_ITEM:
            self._open_mcp_calls.discard(str(item.get("id")))
            self._want_response = True
        elif kind == protocol.MCP_APPROVAL_REQUEST_ITEM:
            request = McpApprovalRequest(
                id=str(item.get("id")),
                server_label=str(item.get("server_label")),
                name=str(item.get("name")),
                arguments=str(item.get("arguments") or "{}"),
            )
            self.pending[request.id] = request
            answer = self._ask(request)
            if inspect.isawaitable(answer):  # a person decides: the runner goes on meanwhile
                self.people_asked += 1
                self._spawn(self._decide(request, answer))
            else:  # decided now: answered before the runner counts as caught up
                await self._decide(request, answer)

    async def _respond_if_wanted(self) -> None:
        if self._want_response and not self._responding:
            self._want_response = False
            self._responding = self._asked = True
            await self._session.create_response()

    async def _answer(self, item: Mapping[str, Any]) -> None:
        """Run one function call's handler and send its output (without asking for a response)."""
        name = str(item.get("name"))
        output = await self._output(name, str(item.get("arguments") or "{}"))
        await self._session.send_function_output(
            str(item.get("call_id")), output, respond=False, run_ms=self._run_ms.get(name)
        )

    async def _output(self, name: str, arguments: str) -> str:
        handler = self._handlers.get(name)
        if handler is None:
            known = ", ".join(map(repr, self._handlers)) or "none"
            return self._failed(
                name,
                f"no handler for {name!r} (handlers: {known}); pass ToolRunner(handlers={{{name!r}: ...}})",
            )
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return self._failed(name, f"the arguments are not a JSON object: {arguments[:200]!r}")
        try:
            result = handler(**parsed)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return self._failed(name, f"{type(exc).__name__}: {exc}")
        return result if isinstance(result, str) else json.dumps(result, default=str)

    def _failed(self, name: str, why: str) -> str:
        self.errors.append(why)
        warn_user(f"tool call {name!r} failed: {why} (the model is told so)")
        return json.dumps({"error": why})

    async def _decide(self, request: McpApprovalRequest, answer: Any) -> None:
        """Send the approval ``answer`` (a bool, or an awaitable one) for ``request``."""
        try:
            try:
                approved = bool(await answer if inspect.isawaitable(answer) else answer)
            except Exception as exc:
                approved = self._declined(request, exc)
            if approved:  # the service makes the call next (noted now: its events may beat the send's return)
                self._approved.add(request.id)
            await self._session.send_mcp_approval(request.id, approved)
            if not approved:
                self._want_response = True
                await self._respond_if_wanted()
        except ConnectionFailed:  # the session ended meanwhile: nothing to answer
            self._approved.discard(request.id)
        finally:  # also when the runner stops while the request waits
            self.pending.pop(request.id, None)
            self._changed.set()

    def _ask(self, request: McpApprovalRequest) -> Any:
        """``approve``'s answer: a bool, or an awaitable one (a button to press); a failure declines."""
        approve = self._approve
        try:
            return approve(request) if callable(approve) else approve
        except Exception as exc:
            return self._declined(request, exc)

    @staticmethod
    def _declined(request: McpApprovalRequest, exc: Exception) -> bool:
        warn_user(f"deciding the approval of {request.describe()} failed, so it is declined: {exc!r}")
        return False
