"""The MCP servers of one emulated session: their tools listed, offered to the replies, and called.

A ``session.update`` whose tools name MCP servers (``{"type": "mcp", ...}``, :func:`mcp_servers`) has each
new one's tools listed (an ``mcp_list_tools`` item and its events); a response waits for the listings, and
its reply may choose a listed tool (:meth:`SessionMcp.tool_views`); the call is made after the response's
``response.done`` (:meth:`SessionMcp.call`). The servers are reached with :class:`vlab.emulator.mcp.McpClient`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlab import protocol
from vlab.emulator.items import Item
from vlab.emulator.mcp import McpClient, McpError, McpServer
from vlab.emulator.replies import MCP_APPROVAL_KEY, MCP_SERVER_KEY
from vlab.emulator.wire import Ids, WireError

if TYPE_CHECKING:
    import aiohttp

    from vlab.emulator.response_run import McpCallDue, ResponseHost

__all__ = ["SessionMcp", "mcp_servers"]

log = logging.getLogger("vlab.emulator")


class SessionMcp:
    """The MCP servers of one session, by label, each with its client and the tools it listed.

    Args:
        host: The connection (its timeline, latency draws, items and outbox).
        redirects: Server URLs to reach at another address (:attr:`EmulatorConfig.mcp_redirects`).
        spawn: Runs background work the connection cancels when it closes.
    """

    def __init__(
        self,
        host: ResponseHost,
        *,
        redirects: Mapping[str, str],
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
    ) -> None:
        self._host = host
        self._redirects = redirects
        self._spawn = spawn
        self._servers: dict[str, _ServerTools] = {}
        self._http: aiohttp.ClientSession | None = None

    def listings(self) -> list[asyncio.Task[None]]:
        """The listings still running: a response waits for them before its reply chooses a tool."""
        return [m.listing for m in self._servers.values() if m.listing is not None and not m.listing.done()]

    async def close(self) -> None:
        """Close the HTTP session the clients share, if one was opened."""
        if self._http is not None:
            await self._http.close()

    def configure(self, servers: dict[str, McpServer]) -> None:
        """List the tools of each MCP server the session's new tools name anew; forget the others."""
        for label in [label for label in self._servers if label not in servers]:
            del self._servers[label]
        for label, server in servers.items():
            known = self._servers.get(label)
            if known is not None and known.server == server:
                continue
            if self._http is None:
                import aiohttp

                self._http = aiohttp.ClientSession()
            client = McpClient(server, self._http, self._redirects.get(server.server_url))
            tools = _ServerTools(server, client)
            self._servers[label] = tools
            tools.listing = self._host.scheduler.spawn(
                self._host.scheduler.now_ms, functools.partial(self._list_tools, tools)
            )

    async def _list_tools(self, tools: _ServerTools) -> None:
        """List one server's tools: an ``mcp_list_tools`` item, ``mcp_list_tools.in_progress``, ``.completed``.

        ``conversation.item.created`` brings the item; ``.completed`` follows with the tools on it, or
        ``.failed`` when the server cannot list them (the reason goes to the emulator's log).
        """
        item = Item(
            {
                "id": Ids.new("item"),
                "object": "realtime.item",
                "type": protocol.MCP_LIST_TOOLS_ITEM,
                "server_label": tools.server.server_label,
                "tools": [],
            }
        )
        prev = self._host.conversation.add(item)
        await self._host.send(
            {"type": protocol.ITEM_CREATED, "previous_item_id": prev, "item": item.public()}
        )
        await self._host.send({"type": protocol.MCP_LIST_TOOLS_IN_PROGRESS, "item_id": item.id})
        try:
            listed = await self._host.scheduler.wait_outside(tools.client.list_tools())
        except McpError as exc:
            log.warning("MCP server %s: listing its tools failed: %s", tools.server.server_label, exc)
            await self._host.send({"type": protocol.MCP_LIST_TOOLS_FAILED, "item_id": item.id})
            return
        tools.listed = [t for t in listed if tools.server.offers(t["name"])]
        item.wire["tools"] = tools.listed
        await self._host.send({"type": protocol.MCP_LIST_TOOLS_COMPLETED, "item_id": item.id})

    def tool_views(self) -> list[dict[str, Any]]:
        """The listed MCP tools as function tools, for the reply to choose among (never sent)."""
        return [
            {
                "type": "function",
                "name": tool["name"],
                "description": tool["description"],
                "parameters": tool["input_schema"],
                MCP_SERVER_KEY: mcp.server.server_label,
                MCP_APPROVAL_KEY: mcp.server.needs_approval(tool["name"]),
            }
            for mcp in self._servers.values()
            for tool in mcp.listed
        ]

    async def call(self, response_id: str, due: McpCallDue, *, last: bool) -> None:
        """Call the MCP server for a response's ``mcp_call`` item, after its ``response.done``.

        ``response.mcp_call.in_progress``, ``.completed`` or ``.failed``, then ``response.output_item.done``
        with the output or the error on the item. The client asks for the spoken answer (``response.create``):
        after the ``last`` call of the response, time waits for it, from before the client can see the
        answer (so its ``response.create`` cannot arrive before the hold).
        """
        item, call = due.item, due.call
        ids = {"item_id": item.id, "output_index": due.output_index}
        await self._host.send({"type": protocol.MCP_CALL_IN_PROGRESS, **ids})
        mcp = self._servers.get(str(call.server_label))
        delay_ms = self._host.sampler.mcp_call_ms()
        self._host.trace_add(kind="latency", item_id=item.id, mcp_call_ms=delay_ms)
        try:
            if mcp is None:
                raise McpError(f"the session no longer has the MCP server {call.server_label!r}")
            answer = self._spawn(mcp.client.call(call.name, json.loads(call.arguments)))  # meanwhile
            await self._host.scheduler.at(self._host.scheduler.now_ms + delay_ms)
            output = await self._host.scheduler.wait_outside(answer)
        except McpError as exc:
            log.warning("MCP call %s of %s failed: %s", call.name, call.server_label, exc)
            item.wire.update(status="failed", error={"type": "mcp_tool_error", "message": str(exc)})
            returned = protocol.MCP_CALL_FAILED
        else:
            item.wire.update(status="completed", output=output)
            returned = protocol.MCP_CALL_COMPLETED
        if last:
            self._host.scheduler.wait_for_client()
        await self._host.send({"type": returned, **ids})
        done = {
            "type": protocol.OUTPUT_ITEM_DONE,
            "response_id": response_id,
            "output_index": due.output_index,
        }
        await self._host.send({**done, "item": item.public()})


@dataclass(slots=True)
class _ServerTools:
    """One MCP server of the session: its client and the tools it listed (those ``allowed_tools`` lets through)."""

    server: McpServer
    client: McpClient
    listed: list[dict[str, Any]] = field(default_factory=list)
    listing: asyncio.Task[None] | None = None


def mcp_servers(tools: Any, event_id: str | None) -> dict[str, McpServer]:
    """The MCP servers among a session's ``tools``, by label; a malformed one is an ``invalid_value`` error."""
    servers: dict[str, McpServer] = {}
    for index, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict) or tool.get("type") != "mcp":
            continue
        param = f"session.tools[{index}]"
        try:
            server = McpServer.from_tool(tool)
        except ValueError as exc:
            raise WireError(
                "invalid_value", f"Invalid value for '{param}': {exc}.", param, event_id
            ) from None
        if server.server_label in servers:
            message = f"Invalid value for '{param}': server_label {server.server_label!r} is used twice."
            raise WireError("invalid_value", message, param, event_id)
        servers[server.server_label] = server
    return servers
