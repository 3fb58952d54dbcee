"""The assistant's tool calls from the event log: function and MCP calls, and how long each answer took.

One row per call, in the order the calls were made. A tool's answer is dead air in a voice agent, so the
figure that matters is how long the answer took:

- a **function** call runs in the client: ``answer_ms`` is from its arguments received
  (``response.function_call_arguments.done``) to the client's ``function_call_output`` sent, on the
  client's clock (``timeline`` ``"client"``), since that is where the function's work happens;
- an **MCP** call runs in the service: ``answer_ms`` is ``response.mcp_call.in_progress`` →
  ``.completed`` or ``.failed``, on the log's timeline (the emulator's simulated one for a run fed on its
  input timeline, else the client's clock). A call that needed approval also has ``approval_ms``: the
  ``mcp_approval_request`` received → the client's ``mcp_approval_response`` sent (client's clock).

``status`` is ``completed`` or ``failed`` for an answered call; ``in_progress`` for one the log holds no
answer to; for an MCP call that asked for approval, ``awaiting_approval`` until the client answered and
``declined`` when it said no. Anything missing gives NaN, never an error.
"""

from __future__ import annotations

import math
from typing import Any, Final

import pandas as pd

from vlab import protocol
from vlab.metrics.events import (
    _NS_PER_MS,
    as_float,
    as_str,
    in_log_order,
    on_simulated_timeline,
    payload_of,
    rows_of,
    span_ms,
)

TOOL_CALL_COLUMNS: Final = (
    "kind",
    "name",
    "server_label",
    "response_id",
    "item_id",
    "call_id",
    "arguments",
    "status",
    "answer_ms",
    "approval_ms",
    "output",
    "error",
    "timeline",
)
"""The columns of :func:`tool_calls`, in order."""
_CALL_ITEMS: Final = {
    protocol.FUNCTION_CALL_ITEM: "function",
    protocol.MCP_CALL_ITEM: "mcp",
    protocol.MCP_APPROVAL_REQUEST_ITEM: "mcp",
}
"""The items that are tool calls (or ask to make one), and the ``kind`` of each (``turn_latency`` counts them)."""


def tool_calls(events: pd.DataFrame) -> pd.DataFrame:
    """One row per function or MCP call the assistant made (see the module docstring for the columns).

    Args:
        events: An event frame (:meth:`vlab.Session.frame`, :func:`vlab.load_log`).
    """
    ev = in_log_order(events)
    simulated = on_simulated_timeline(ev)
    mcp_timeline = "simulated" if simulated else "client"
    calls: list[dict[str, Any]] = []
    by_item: dict[str, dict[str, Any]] = {}  # call (or approval request) item id → its row
    by_call_id: dict[str, dict[str, Any]] = {}
    columns = ("type", "t_ns", "sim_ms", "direction", "item_id", "payload")
    for r in rows_of(ev, *columns):
        kind, t_client = r.type, as_float(r.t_ns)
        on_timeline = as_float(r.sim_ms) * _NS_PER_MS if simulated and r.direction == "server" else t_client
        if r.direction == "client":
            if kind == protocol.CLIENT_ITEM_CREATE:
                _client_item(payload_of(r.payload).get("item") or {}, t_client, by_item, by_call_id)
            continue
        item_id = as_str(r.item_id) or ""
        if kind == protocol.OUTPUT_ITEM_ADDED:
            item = payload_of(r.payload).get("item") or {}
            if item.get("type") in _CALL_ITEMS:
                row = _new_row(
                    item, payload_of(r.payload).get("response_id"), t_client, mcp_timeline, by_item
                )
                if row is not None:
                    calls.append(row)
                    by_item[str(item.get("id"))] = row
                    if row["call_id"]:
                        by_call_id[row["call_id"]] = row
            continue
        row = by_item.get(item_id)
        if row is None:
            continue
        if kind in (protocol.FUNCTION_CALL_ARGUMENTS_DONE, protocol.MCP_CALL_ARGUMENTS_DONE):
            row["arguments"] = payload_of(r.payload).get("arguments", row["arguments"])
            row["_t_arguments"] = t_client
        elif kind == protocol.MCP_CALL_IN_PROGRESS:
            row["_t_started"] = on_timeline
        elif kind in (protocol.MCP_CALL_COMPLETED, protocol.MCP_CALL_FAILED):
            row["status"] = "completed" if kind == protocol.MCP_CALL_COMPLETED else "failed"
            row["answer_ms"] = span_ms(on_timeline, row.get("_t_started", math.nan))
        elif kind == protocol.OUTPUT_ITEM_DONE:  # an MCP call's output or error comes on its item
            item = payload_of(r.payload).get("item") or {}
            if item.get("type") == protocol.MCP_CALL_ITEM:
                row["output"], row["error"] = item.get("output"), _error_text(item.get("error"))
    frame = pd.DataFrame(
        [{c: row.get(c) for c in TOOL_CALL_COLUMNS} for row in calls], columns=list(TOOL_CALL_COLUMNS)
    )
    return frame.astype({"answer_ms": float, "approval_ms": float})


def _new_row(
    item: dict[str, Any], response_id: Any, t_ns: float, mcp_timeline: str, by_item: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The row of a call item just added to a response; None when it continues an approval request's row."""
    kind = _CALL_ITEMS[str(item.get("type"))]
    asked = by_item.get(str(item.get("approval_request_id") or ""))
    if asked is not None:  # the approved call: the request's row goes on with it
        asked.update(item_id=as_str(item.get("id")), response_id=as_str(response_id), status="in_progress")
        by_item[str(item.get("id"))] = asked
        return None
    approval = item.get("type") == protocol.MCP_APPROVAL_REQUEST_ITEM
    return {
        "kind": kind,
        "name": as_str(item.get("name")),
        "server_label": as_str(item.get("server_label")),
        "response_id": as_str(response_id),
        "item_id": as_str(item.get("id")),
        "call_id": as_str(item.get("call_id")),
        "arguments": item.get("arguments") or None,
        "status": "awaiting_approval" if approval else "in_progress",
        "answer_ms": math.nan,
        "approval_ms": math.nan,
        "output": None,
        "error": None,
        "timeline": "client" if kind == "function" else mcp_timeline,
        "_t_asked": t_ns if approval else math.nan,
    }


def _client_item(
    item: dict[str, Any],
    t_ns: float,
    by_item: dict[str, dict[str, Any]],
    by_call_id: dict[str, dict[str, Any]],
) -> None:
    """A client item that answers a call: a function's output, or an answer to an approval request."""
    if item.get("type") == protocol.FUNCTION_CALL_OUTPUT_ITEM:
        row = by_call_id.get(str(item.get("call_id")))
        if row is not None and row["status"] == "in_progress":
            row.update(status="completed", output=item.get("output"))
            row["answer_ms"] = span_ms(t_ns, row.get("_t_arguments", math.nan))
    elif item.get("type") == protocol.MCP_APPROVAL_RESPONSE_ITEM:
        row = by_item.get(str(item.get("approval_request_id")))
        if row is not None and row["status"] == "awaiting_approval":
            row["approval_ms"] = span_ms(t_ns, row["_t_asked"])
            row["status"] = "in_progress" if item.get("approve") else "declined"


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)
