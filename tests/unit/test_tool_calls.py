"""vlab.metrics.tool_calls on hand-written logs: each call's answer time, on the timeline where it happens."""

from __future__ import annotations

import json
import math

import vlab
from tests._logs import write_log
from vlab import protocol
from vlab.metrics import TOOL_CALL_COLUMNS, tool_calls


def _added(response_id: str, **item) -> dict:
    return {
        "payload": json.dumps(
            {"type": "response.output_item.added", "response_id": response_id, "item": item}
        )
    }


def _payload(**fields) -> dict:
    return {"payload": json.dumps(fields)}


def _client_item(**item) -> dict:
    return _payload(type="conversation.item.create", item=item)


def _log(tmp_path, *rows, simulated: bool = False):
    if simulated:  # the client told the emulator to run on its input timeline; server events carry sim_ms
        update = _payload(
            type="session.update", session={"metadata": {protocol.TIMELINE_METADATA_KEY: "input"}}
        )
        rows = ((0.0, "client", "session.update", update), *rows)
    return vlab.load_log(write_log(tmp_path / "run", *rows))


def _mcp_call(item_id: str, **more) -> dict:
    return {
        "id": item_id,
        "type": "mcp_call",
        "server_label": "docs",
        "name": "search",
        "arguments": "",
        **more,
    }


def _every_kind_of_call(sim: bool) -> tuple:
    def server(ms: float, sim_ms: float, kind: str, fields: dict) -> tuple:
        return (ms, "server", kind, {**fields, **({"sim_ms": sim_ms} if sim else {})})

    fn = {"id": "f", "type": "function_call", "name": "get_time", "call_id": "c1", "arguments": ""}
    return (
        server(100, 10, "response.output_item.added", {**_added("r1", **fn), "item_id": "f"}),
        server(120, 12, "response.function_call_arguments.done", {"item_id": "f", **_payload(arguments="{}")}),
        (370.0, "client", "conversation.item.create", _client_item(type="function_call_output", call_id="c1", output="9:00")),
        # an MCP call that needs no approval
        server(400, 40, "response.output_item.added", {**_added("r2", **_mcp_call("m")), "item_id": "m"}),
        server(410, 41, "response.mcp_call_arguments.done", {"item_id": "m", **_payload(arguments='{"q": "x"}')}),
        server(420, 42, "response.mcp_call.in_progress", {"item_id": "m"}),
        server(740, 342, "response.mcp_call.completed", {"item_id": "m"}),
        server(745, 343, "response.output_item.done", {"item_id": "m", **_payload(item=_mcp_call("m", output="found"))}),
        # the same output sent again later (a retry): the first one answered
        (900.0, "client", "conversation.item.create", _client_item(type="function_call_output", call_id="c1", output="9:01")),
        # one asked for approval, approved, then failed
        server(800, 400, "response.output_item.added", {**_added("r3", id="a", type="mcp_approval_request", server_label="docs", name="search", arguments="{}"), "item_id": "a"}),
        server(805, 401, "response.output_item.done", {"item_id": "a"}),
        (1400.0, "client", "conversation.item.create", _client_item(type="mcp_approval_response", approval_request_id="a", approve=True)),
        server(1410, 1010, "response.output_item.added", {**_added("r4", **_mcp_call("m2", approval_request_id="a")), "item_id": "m2"}),
        server(1420, 1020, "response.mcp_call.in_progress", {"item_id": "m2"}),
        server(1520, 1120, "response.mcp_call.failed", {"item_id": "m2"}),
        server(1525, 1121, "response.output_item.done", {"item_id": "m2", **_payload(item=_mcp_call("m2", error={"message": "gone"}))}),
        # answers to no request, and to one already answered: neither counts
        (1450.0, "client", "conversation.item.create", _client_item(type="mcp_approval_response", approval_request_id="x", approve=True)),
        (1460.0, "client", "conversation.item.create", _client_item(type="mcp_approval_response", approval_request_id="a", approve=False)),
        # one declined, one left waiting, and a call the log holds no answer to
        server(1600, 1200, "response.output_item.added", {**_added("r5", id="d", type="mcp_approval_request", name="search"), "item_id": "d"}),
        (1700.0, "client", "conversation.item.create", _client_item(type="mcp_approval_response", approval_request_id="d", approve=False)),
        server(1800, 1400, "response.output_item.added", {**_added("r6", id="w", type="mcp_approval_request", name="search"), "item_id": "w"}),
        server(1900, 1500, "response.output_item.added", {**_added("r7", **_mcp_call("open")), "item_id": "open"}),
    )  # fmt: skip


def test_each_call_gets_its_answer_time_and_status_on_the_client_clock(tmp_path):
    calls = tool_calls(_log(tmp_path, *_every_kind_of_call(sim=False)))
    assert list(calls.columns) == list(TOOL_CALL_COLUMNS)
    assert calls[["kind", "name", "item_id", "status"]].values.tolist() == [
        ["function", "get_time", "f", "completed"],
        ["mcp", "search", "m", "completed"],
        ["mcp", "search", "m2", "failed"],
        ["mcp", "search", "d", "declined"],
        ["mcp", "search", "w", "awaiting_approval"],
        ["mcp", "search", "open", "in_progress"],
    ]
    answer = calls["answer_ms"].tolist()
    assert answer[:3] == [250.0, 320.0, 100.0] and all(math.isnan(v) for v in answer[3:])
    approval = calls["approval_ms"].tolist()
    assert approval[2:4] == [600.0, 100.0] and math.isnan(approval[1]) and math.isnan(approval[4])
    assert calls["output"].tolist()[:2] == ["9:00", "found"] and calls["error"].tolist()[2] == "gone"
    assert calls["arguments"].tolist()[:2] == ["{}", '{"q": "x"}'] and calls["call_id"].tolist()[0] == "c1"
    assert calls.loc[2, "response_id"] == "r4"  # the approved call's own response
    assert set(calls["timeline"]) == {"client"}


def test_an_mcp_call_is_timed_on_the_simulated_timeline_and_a_function_on_the_client_s_clock(tmp_path):
    calls = tool_calls(_log(tmp_path, *_every_kind_of_call(sim=True), simulated=True))
    assert calls["answer_ms"].tolist()[:3] == [250.0, 300.0, 100.0]  # 342 − 42 simulated ms for the MCP call
    assert calls["timeline"].tolist()[:3] == ["client", "simulated", "simulated"]
    assert calls["approval_ms"].tolist()[2] == 600.0  # the client's answer: on its clock


def test_a_log_without_calls_gives_an_empty_table_with_every_column(tmp_path):
    calls = tool_calls(_log(tmp_path, (0.0, "server", "session.created", {})))
    assert calls.empty and list(calls.columns) == list(TOOL_CALL_COLUMNS)
