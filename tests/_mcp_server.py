"""A stand-in MCP server (Streamable HTTP, JSON-RPC 2.0) for the emulator's MCP tests.

Its tools are named and described as those of the servers in Microsoft's MCP sample (DeepWiki's and
Microsoft Learn's), plus one that always fails; each answers with a fixed text built from its arguments.
It answers with a JSON body, or with an event stream (``streamed=True``), and records every request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from vlab.testing import serving

SESSION_ID = "stand-in-session-1"
PROTOCOL_VERSION = "2025-03-26"
"""The MCP revision the stand-in agrees to, whatever the client asks for (an older one than vlab's)."""

TOOLS: list[dict[str, Any]] = [
    {
        "name": "read_wiki_structure",
        "description": "Get a list of documentation topics for a GitHub repository.",
        "inputSchema": {
            "type": "object",
            "properties": {"repoName": {"type": "string", "description": "owner/repo of the repository"}},
            "required": ["repoName"],
        },
    },
    {
        "name": "ask_question",
        "description": "Ask any question about a GitHub repository and get a context-grounded answer.",
        "inputSchema": {
            "type": "object",
            "properties": {"repoName": {"type": "string"}, "question": {"type": "string"}},
            "required": ["repoName", "question"],
        },
    },
    {
        "name": "microsoft_docs_search",
        "description": "Search official Microsoft and Azure documentation for a query.",
        "inputSchema": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "what to search for"}},
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "count_stars",
        "description": "Count the stars of a GitHub repository.",
        "inputSchema": {"type": "object", "properties": {"repoName": {"type": "string"}}},
    },
    {
        "name": "launch_rocket",
        "description": "Launch the rocket to the moon.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def answer(name: str, arguments: dict[str, Any]) -> str:
    """What the stand-in's tool ``name`` answers to ``arguments``."""
    return f"{name} answered {json.dumps(arguments, sort_keys=True)}"


@dataclass
class StandInMcp:
    """The running stand-in: its URL and the requests it received (JSON-RPC message and headers)."""

    url: str = ""
    streamed: bool = False
    descriptions: dict[str, str] = field(default_factory=dict)
    """Descriptions that replace those of :data:`TOOLS`, by tool name."""
    requests: list[tuple[dict[str, Any], dict[str, str]]] = field(default_factory=list)

    def methods(self) -> list[str]:
        """The JSON-RPC methods asked for, in order."""
        return [message["method"] for message, _ in self.requests]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        message = await request.json()
        self.requests.append((message, dict(request.headers)))
        method = message.get("method")
        if "id" not in message:
            return web.Response(status=202)
        if method != "initialize" and request.headers.get("Mcp-Session-Id") != SESSION_ID:
            return web.Response(status=400, text="no session")
        if method == "initialize":
            result: dict[str, Any] = {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "stand-in", "version": "1"},
            }
        elif method == "tools/list":  # two pages, to exercise the cursor
            cursor = (message.get("params") or {}).get("cursor")
            tools = [{**t, "description": self.descriptions.get(t["name"], t["description"])} for t in TOOLS]
            result = (
                {"tools": tools[2:]} if cursor == "page-2" else {"tools": tools[:2], "nextCursor": "page-2"}
            )
        elif method == "tools/call":
            name, arguments = message["params"]["name"], message["params"]["arguments"]
            if name == "count_stars":  # structured content only
                result = {"content": [], "structuredContent": {"stars": 42}}
            elif name == "launch_rocket":
                result = {"content": [{"type": "text", "text": "the launch pad is closed"}], "isError": True}
            else:  # text, and the same as structured content: the text is what a model reads
                text = answer(name, arguments)
                result = {"content": [{"type": "text", "text": text}], "structuredContent": {"text": text}}
        else:
            reply = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "error": {"code": -32601, "message": "no such method"},
            }
            return web.json_response(reply)
        reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        headers = {"Mcp-Session-Id": SESSION_ID}
        if not self.streamed:
            return web.json_response(reply, headers=headers)
        notice = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "working"}}
        # a space after "data:" is optional: the notice has one, the reply none
        body = f"event: message\ndata: {json.dumps(notice)}\n\nevent: message\ndata:{json.dumps(reply)}\n\n"
        return web.Response(text=body, content_type="text/event-stream", headers=headers)


@asynccontextmanager
async def stand_in_mcp(
    *, streamed: bool = False, descriptions: dict[str, str] | None = None
) -> AsyncIterator[StandInMcp]:
    """Serve the stand-in on a free local port (``/mcp``) while the block runs."""
    server = StandInMcp(streamed=streamed, descriptions=dict(descriptions or {}))
    app = web.Application()
    app.router.add_post("/mcp", server.handle)
    async with serving(app) as base:
        server.url = f"{base}/mcp"
        yield server
