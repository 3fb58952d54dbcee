"""ToolRunner's decisions, on events handed to it in order: what it sends, and when it asks for a response."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests._logs import hand_record
from vlab import protocol
from vlab.errors import VlabWarning
from vlab.session import McpApprovalRequest, ToolRunner


class _Session:
    """What ToolRunner uses of a session: its sink, and the three ways to answer (recorded in order)."""

    def __init__(self) -> None:
        self.sink: Any = None
        self.sent: list[tuple[Any, ...]] = []
        self.run_ms: list[float | None] = []  # each output's simulated run time
        self._changed = asyncio.Event()

    def add_sink(self, sink: Any) -> None:
        self.sink = sink

    def _record(self, *what: Any) -> None:
        self.sent.append(what)
        self._changed.set()

    async def create_response(self) -> None:
        self._record("response.create")

    async def send_function_output(
        self, call_id: str, output: str, *, respond: bool = True, run_ms: float | None = None
    ) -> None:
        assert respond is False  # one response.create for all the calls of a response
        self._record("output", call_id, json.loads(output) if output.startswith("{") else output)
        self.run_ms.append(run_ms)

    async def send_mcp_approval(self, approval_request_id: str, approve: bool) -> None:
        # a real send gives the loop a turn before the frame is out (no time passes): one turn, here too
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(turn.set_result, None)
        await turn
        self._record("approval", approval_request_id, approve)

    def server(self, kind: str, **event: Any) -> None:
        self.sink(hand_record(0, 0.0, "server", kind, payload=json.dumps({"type": kind, **event})))

    def client(self, kind: str) -> None:
        """What the session sent itself (not through the runner)."""
        self.sink(hand_record(0, 0.0, "client", kind, payload=json.dumps({"type": kind})))

    async def until(self, count: int) -> list[tuple[Any, ...]]:
        """The answers sent, once there are ``count`` of them."""
        while len(self.sent) < count:
            self._changed.clear()
            await self._changed.wait()
        return self.sent


def _call(call_id: str, name: str, arguments: Any, status: str = "completed") -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    item = {"type": "function_call", "id": f"item_{call_id}", "call_id": call_id, "name": name}
    return {"item": {**item, "arguments": text, "status": status}}


def _done(status: str = "completed") -> dict[str, Any]:
    return {"response": {"id": "resp_1", "status": status}}


def _mcp_done() -> dict[str, Any]:
    return {"item": {"type": "mcp_call", "id": "item_m", "output": "found"}}


async def test_the_calls_of_a_response_run_once_it_is_done_and_one_response_is_asked_for_them_all():
    session = _Session()
    seen: list[tuple[str, Any]] = []

    async def weather(location: str) -> dict[str, Any]:
        seen.append(("weather", location))
        return {"location": location, "temperature": 21}

    def time_now(timezone: str = "UTC") -> str:
        seen.append(("time", timezone))
        return f"noon in {timezone}"

    handlers = {"get_weather": weather, "get_time": time_now}
    async with ToolRunner(session, handlers, run_ms={"get_weather": 800}):  # type: ignore[arg-type]
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c1", "get_weather", {"location": "Oslo"}))
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c2", "get_time", {}))
        session.server(protocol.RESPONSE_DONE, **_done())
        sent = await session.until(3)
    assert seen == [("weather", "Oslo"), ("time", "UTC")]
    assert sent == [
        ("output", "c1", {"location": "Oslo", "temperature": 21}),
        ("output", "c2", "noon in UTC"),
        ("response.create",),
    ]
    assert session.run_ms == [800, None]  # each output says how long its function runs (if given)


async def test_a_failing_or_unknown_tool_answers_the_model_with_the_error_and_warns():
    session = _Session()

    def broken(**_: Any) -> str:
        raise ValueError("no such city")

    runner = ToolRunner(session, {"get_weather": broken})  # type: ignore[arg-type]
    async with runner:
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c1", "get_weather", {"location": "X"}))
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c2", "get_stock", {}))
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c3", "get_weather", "[1, 2]"))
        with pytest.warns(VlabWarning) as warned:
            session.server(protocol.RESPONSE_DONE, **_done())
            sent = await session.until(4)
    errors = [answer[2]["error"] for answer in sent[:3]]
    assert errors[0] == "ValueError: no such city"
    assert "no handler for 'get_stock'" in errors[1] and "'get_weather'" in errors[1]
    assert errors[2].startswith("the arguments are not a JSON object")
    assert sent[3] == ("response.create",)
    assert runner.errors == errors and len(warned) == 3
    assert "the model is told so" in str(warned[0].message)


async def test_no_response_is_asked_for_while_one_is_under_way_and_a_cancelled_response_s_calls_do_not_run():
    session = _Session()
    ran: list[str] = []
    async with ToolRunner(session, {"f": lambda: ran.append("f") or "ok"}):
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
        session.server(protocol.OUTPUT_ITEM_DONE, **_mcp_done())  # done inside a response: wait for it
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c1", "f", {}))
        session.server(protocol.RESPONSE_DONE, **_done("cancelled"))
        assert await session.until(1) == [("response.create",)]  # for the MCP call, after response.done
        assert ran == []

        session.server(protocol.OUTPUT_ITEM_DONE, **_mcp_done())  # asked, not yet created: no second ask
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
        session.server(protocol.RESPONSE_DONE, **_done())
        assert await session.until(2) == [("response.create",)] * 2

        session.server(protocol.OUTPUT_ITEM_DONE, **_mcp_done())
        session.server(protocol.ERROR, error={"code": "conversation_already_has_active_response"})
        session.server(protocol.OUTPUT_ITEM_DONE, **_mcp_done())  # the refused ask is forgotten
        assert await session.until(3) == [("response.create",)] * 3


@pytest.mark.parametrize("refused", [False, True])
async def test_a_response_the_client_asked_for_itself_keeps_the_runner_busy_and_asks_no_second(refused):
    """A committed turn's ``response.create`` (sent by the session, not the runner): its response comes
    after the audio it answers, so the runner is busy until it has been created and done (or refused), and
    an MCP answer meanwhile waits for it."""
    session = _Session()
    async with ToolRunner(session) as runner:
        session.client(protocol.CLIENT_RESPONSE_CREATE)
        await runner.caught_up()
        assert not runner.idle
        session.server(protocol.OUTPUT_ITEM_DONE, **_mcp_done())  # the earlier response's call returned
        await runner.caught_up()
        assert session.sent == [] and not runner.idle  # asked for already: no second ask
        if refused:
            session.server(protocol.ERROR, error={"code": "conversation_already_has_active_response"})
        else:
            session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
            await runner.caught_up()
            assert not runner.idle
            session.server(protocol.RESPONSE_DONE, **_done())
        assert await session.until(1) == [("response.create",)]  # the MCP answer's, once it may


async def test_approval_requests_are_decided_by_the_approver_and_a_declined_one_gets_a_response():
    session = _Session()
    asked: list[McpApprovalRequest] = []
    asking = asyncio.Event()
    decision: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def approver(request: McpApprovalRequest) -> bool:
        asked.append(request)
        asking.set()
        return await decision

    runner = ToolRunner(session, approve=approver)
    async with runner:
        item = {"type": "mcp_approval_request", "id": "ap_1", "server_label": "docs", "name": "search"}
        session.server(protocol.OUTPUT_ITEM_DONE, item={**item, "arguments": '{"query": "vad"}'})
        session.server(protocol.RESPONSE_DONE, **_done())
        await asking.wait()  # the approver is asked at once; nothing is sent until it decides
        assert asked[0].describe() == 'docs.search({"query": "vad"})' and list(runner.pending) == ["ap_1"]
        assert session.sent == []
        decision.set_result(False)
        assert await session.until(2) == [("approval", "ap_1", False), ("response.create",)]
        assert runner.pending == {}

    asking.clear()
    never: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def unanswered(request: McpApprovalRequest) -> bool:
        asking.set()
        return await never

    async with ToolRunner(session, approve=unanswered) as waiting:
        item = {"type": "mcp_approval_request", "id": "ap_2", "server_label": "docs", "name": "search"}
        session.server(protocol.OUTPUT_ITEM_DONE, item=item)
        await asking.wait()
        assert list(waiting.pending) == ["ap_2"]
    assert waiting.pending == {} and len(session.sent) == 2  # stopped while it waited: nothing left


@pytest.mark.parametrize(
    ("approve", "sent"),
    [
        (True, [("approval", "ap_1", True)]),
        (False, [("approval", "ap_1", False), ("response.create",)]),
        (lambda request: request.name == "search", [("approval", "ap_1", True)]),
    ],
)
async def test_approve_may_be_a_constant_or_a_plain_function(approve, sent):
    session = _Session()
    async with ToolRunner(session, approve=approve):
        item = {"type": "mcp_approval_request", "id": "ap_1", "server_label": "docs", "name": "search"}
        session.server(protocol.OUTPUT_ITEM_DONE, item=item)
        assert await session.until(len(sent)) == sent


async def test_caught_up_waits_for_an_approval_decided_at_once_but_not_for_a_person():
    item = {"type": "mcp_approval_request", "id": "ap_1", "server_label": "docs", "name": "search"}
    session = _Session()
    async with ToolRunner(session, approve=lambda request: True) as runner:
        session.server(protocol.OUTPUT_ITEM_DONE, item=item)
        await runner.caught_up()
        assert session.sent == [("approval", "ap_1", True)]  # sent before the runner counts as caught up

    person = _Session()
    pressed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    async with ToolRunner(person, approve=lambda request: pressed) as runner:
        person.server(protocol.OUTPUT_ITEM_DONE, item=item)
        await runner.caught_up()
        assert person.sent == [] and list(runner.pending) == ["ap_1"]  # the button is not waited for
        decided = asyncio.ensure_future(runner.decided())  # it is here: until the approval is sent
        pressed.set_result(False)
        await decided
        assert runner.pending == {} and person.sent[:1] == [("approval", "ap_1", False)]
        assert await person.until(2) == [("approval", "ap_1", False), ("response.create",)]


async def test_an_approver_that_raises_declines_with_a_warning():
    session = _Session()

    def approver(request: McpApprovalRequest) -> bool:
        raise RuntimeError("no one is there")

    runner = ToolRunner(session, approve=approver)
    async with runner:
        item = {"type": "mcp_approval_request", "id": "ap_1", "server_label": "docs", "name": "search"}
        with pytest.warns(VlabWarning, match="declined: RuntimeError"):
            session.server(protocol.OUTPUT_ITEM_DONE, item=item)
            assert await session.until(2) == [("approval", "ap_1", False), ("response.create",)]


async def test_settled_waits_for_the_approved_call_and_the_response_that_speaks_its_answer():
    session = _Session()
    async with ToolRunner(session, approve=True) as runner:
        await runner.settled()  # nothing to do yet
        item = {"type": "mcp_approval_request", "id": "ap_1", "server_label": "docs", "name": "search"}
        session.server(protocol.OUTPUT_ITEM_DONE, item=item)
        settled = asyncio.ensure_future(runner.settled())
        assert await session.until(1) == [("approval", "ap_1", True)]
        assert not runner.idle  # the service makes the approved call next

        call = {"type": "mcp_call", "id": "m1", "approval_request_id": "ap_1"}
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
        session.server(protocol.OUTPUT_ITEM_ADDED, item=call)
        session.server(protocol.RESPONSE_DONE, **_done())
        session.server(protocol.OUTPUT_ITEM_DONE, item={**call, "output": "found"})
        await session.until(2)  # the response that speaks the output is asked for
        assert not settled.done()
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
        session.server(protocol.RESPONSE_DONE, **_done())
        await settled
        assert runner.idle


async def test_settled_forgets_the_mcp_calls_of_a_response_that_did_not_complete():
    session = _Session()
    async with ToolRunner(session) as runner:
        call = {"type": "mcp_call", "id": "m1"}
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
        session.server(protocol.OUTPUT_ITEM_ADDED, item=call)
        session.server(
            protocol.RESPONSE_DONE, response={"id": "resp_1", "status": "cancelled", "output": [call]}
        )
        await runner.settled()
    assert session.sent == []


async def test_a_slow_handler_or_a_call_of_a_response_under_way_keeps_the_runner_busy():
    session = _Session()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await release.wait()
        return "done"

    async with ToolRunner(session, {"slow": slow}) as runner:
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c1", "slow", {}))  # its response.created unseen
        settled = asyncio.ensure_future(runner.settled())
        session.server(protocol.RESPONSE_DONE, **_done())
        await started.wait()
        assert not runner.idle and not settled.done()  # the handler runs
        release.set()
        assert await session.until(2) == [("output", "c1", "done"), ("response.create",)]
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))
        session.server(protocol.RESPONSE_DONE, **_done())
        await settled

    async with ToolRunner(session) as runner:
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c2", "slow", {}))
        assert not runner.idle  # a call whose response is not done yet

    async with ToolRunner(session) as stopped:
        pass
    session.server(protocol.OUTPUT_ITEM_DONE, **_call("c3", "slow", {}))  # after it stopped: not read
    assert stopped.idle and len(session.sent) == 2


async def test_an_incomplete_function_call_is_not_run():
    session = _Session()
    async with ToolRunner(session, {"f": lambda: "ran"}):
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c1", "f", {}, status="incomplete"))
        session.server(protocol.OUTPUT_ITEM_DONE, **_call("c2", "f", {}))
        session.server(protocol.RESPONSE_DONE, **_done())
        assert await session.until(2) == [("output", "c2", "ran"), ("response.create",)]


async def test_an_error_during_a_response_under_way_does_not_end_it():
    session = _Session()
    approval = {"type": "mcp_approval_request", "id": "ap_1", "server_label": "docs", "name": "search"}
    async with ToolRunner(session, approve=True):
        session.server(protocol.RESPONSE_CREATED, **_done("in_progress"))  # the server's own response
        session.server(protocol.ERROR, error={"code": "invalid_value"})  # about something else
        session.server(protocol.OUTPUT_ITEM_DONE, **_mcp_done())  # its answer waits for the response
        session.server(protocol.OUTPUT_ITEM_DONE, item=approval)  # answered at once
        assert await session.until(1) == [("approval", "ap_1", True)]
        session.server(protocol.RESPONSE_DONE, **_done())
        assert await session.until(2) == [("approval", "ap_1", True), ("response.create",)]


async def test_an_error_after_an_approval_means_its_call_is_not_coming():
    session = _Session()
    async with ToolRunner(session, approve=True) as runner:
        item = {"type": "mcp_approval_request", "id": "ap_1", "server_label": "docs", "name": "search"}
        session.server(protocol.OUTPUT_ITEM_DONE, item=item)
        await session.until(1)
        assert not runner.idle
        session.server(protocol.ERROR, error={"code": "invalid_value", "param": "item.approval_request_id"})
        await runner.settled()


async def test_a_runner_started_again_answers_each_call_once():
    session = _Session()
    runner = ToolRunner(session, {"f": lambda: "ran"})
    sinks = []
    session.add_sink = sinks.append  # type: ignore[method-assign]
    runner.start()
    await runner.aclose()
    runner.start()
    (sink,) = sinks
    session.sink = sink
    session.server(protocol.OUTPUT_ITEM_DONE, **_call("c1", "f", {}))
    session.server(protocol.RESPONSE_DONE, **_done())
    assert await session.until(2) == [("output", "c1", "ran"), ("response.create",)]
    await runner.aclose()
