"""MCP servers: the settings part, the shared protocol facts, the emulator's client and the log's redaction."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from tests._mcp_server import PROTOCOL_VERSION, TOOLS, answer, stand_in_mcp
from vlab import protocol
from vlab.commands import emulator as emulator_command
from vlab.emulator import Emulator
from vlab.emulator.mcp import MAX_LIST_PAGES, McpClient, McpError
from vlab.emulator.mcp import McpServer as WireServer
from vlab.errors import ConfigError
from vlab.log.records import record_from_event
from vlab.settings import FunctionTool, McpServer, SessionSettings
from vlab.testing import serving

TOKEN = "tok-0123456789"


def test_approval_forms_decide_per_tool():
    assert protocol.mcp_needs_approval("always", "a") and protocol.mcp_needs_approval(None, "a")
    assert not protocol.mcp_needs_approval("never", "a")
    per_tool = {"never": ["read"], "always": ["write"]}
    assert not protocol.mcp_needs_approval(per_tool, "read")
    assert protocol.mcp_needs_approval(per_tool, "write") and protocol.mcp_needs_approval(per_tool, "other")


def test_the_settings_part_hides_its_token_and_headers_and_sends_them_on_the_wire():
    server = McpServer("wiki", "https://wiki.example/mcp", headers={"X-Key": "h-secret"}, authorization=TOKEN)
    assert TOKEN not in repr(server) and "h-secret" not in repr(server)
    assert server.to_wire() == {
        "type": "mcp",
        "server_label": "wiki",
        "server_url": "https://wiki.example/mcp",
        "require_approval": "always",
        "headers": {"X-Key": "h-secret"},
        "authorization": TOKEN,
    }
    kept = server.to_dict()
    assert kept["authorization"] == kept["headers"]["X-Key"] == protocol.REDACTED
    settings = SessionSettings(tools=[server, FunctionTool("get_time")], tool_choice="get_time")
    assert settings.to_wire()["tools"][0]["authorization"] == TOKEN
    assert TOKEN not in json.dumps(settings.to_dict()) and TOKEN not in repr(settings)
    assert McpServer.from_wire(server.to_wire()) == server


def test_settings_take_mcp_tools_as_wire_mappings_and_check_them():
    settings = SessionSettings(
        tools=[
            {
                "type": "mcp",
                "server_label": "w",
                "server_url": "http://x/mcp",
                "require_approval": {"never": ["a"]},
            }
        ]
    )
    (server,) = settings.tools
    assert isinstance(server, McpServer) and not server.needs_approval("a") and server.needs_approval("b")
    assert McpServer.from_wire({**server.to_wire(), "require_approval": None}).require_approval == "always"
    with pytest.raises(ConfigError, match="'server_lable'.*Known keys: server_label"):
        McpServer.from_wire({"type": "mcp", "server_lable": "w", "server_url": "http://x"})
    assert hash(server) == hash(McpServer.from_wire(server.to_wire()))  # settings holding it stay hashable
    with pytest.raises(ConfigError, match="server_url must be an http"):
        McpServer("w", "ftp://x")
    with pytest.raises(ConfigError, match="require_approval"):
        McpServer("w", "http://x", require_approval="sometimes")
    with pytest.raises(ConfigError, match="duplicate MCP server labels") as duplicate:
        SessionSettings(tools=[McpServer("w", "http://x", authorization=TOKEN), McpServer("w", "http://y")])
    assert TOKEN not in str(duplicate.value)
    with pytest.raises(ConfigError, match="authorization must be a non-empty token") as bad:
        McpServer("w", "http://x", authorization=42)  # type: ignore[arg-type]
    assert "42" not in str(bad.value)
    with pytest.raises(ConfigError, match="tool_choice"):  # a tool_choice names a function, not an MCP server
        SessionSettings(tools=[McpServer("w", "http://x")], tool_choice="w")


@pytest.mark.parametrize("etype", ["session.update", "session.created", "session.updated"])
def test_the_log_keeps_no_mcp_token_or_header_value(etype):
    tool = McpServer("w", "http://x/mcp", headers={"X-Key": "h-secret"}, authorization=TOKEN).to_wire()
    # a malformed entry beside it (a server's or a fuzzer's) is kept as it is
    event = {"type": etype, "session": {"tools": [tool, {"type": "function", "name": "f"}, "junk"]}}
    record = record_from_event(event, direction="client", seq=0, t_ns=0, wall_ns=0)
    assert TOKEN not in record.payload and "h-secret" not in record.payload
    kept = json.loads(record.payload)["session"]["tools"]
    assert kept[0]["authorization"] == protocol.REDACTED and kept[1:] == [
        {"type": "function", "name": "f"},
        "junk",
    ]
    assert event["session"]["tools"][0]["authorization"] == TOKEN  # the event itself is not changed


def test_the_emulator_reads_a_wire_mcp_tool_as_the_service_does():
    server = WireServer.from_tool(
        {
            "type": "mcp",
            "server_label": "w",
            "server_url": "http://x",
            "allowed_tools": ["a"],
            "authorization": TOKEN,
        }
    )
    assert server.offers("a") and not server.offers("b") and server.needs_approval("a")
    assert TOKEN not in repr(server)
    with pytest.raises(ValueError, match="'require_approval' must be") as bad:
        WireServer.from_tool(
            {"server_label": "w", "server_url": "http://x", "require_approval": {"sometimes": []}}
        )
    assert "sometimes" in str(bad.value)
    with pytest.raises(ValueError, match="'authorization' must be a string"):
        WireServer.from_tool({"server_label": "w", "server_url": "http://x", "authorization": 7})


async def _client(url: str, **tool) -> tuple[McpClient, aiohttp.ClientSession]:
    http = aiohttp.ClientSession()
    server = WireServer.from_tool({"server_label": "w", "server_url": "https://w.example/mcp", **tool})
    return McpClient(server, http, url), http


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_client_lists_every_page_and_calls_a_tool(streamed):
    async with stand_in_mcp(streamed=streamed) as mcp:
        client, http = await _client(mcp.url, authorization=f"Bearer {TOKEN}")
        async with http:
            tools = await client.list_tools()
            output = await client.call("ask_question", {"repoName": "a/b", "question": "why"})
            structured = await client.call("count_stars", {"repoName": "a/b"})
            with pytest.raises(McpError, match="the launch pad is closed"):
                await client.call("launch_rocket", {})
    assert [t["name"] for t in tools] == [t["name"] for t in TOOLS]
    assert tools[2]["input_schema"] == TOOLS[2]["inputSchema"] and tools[2]["annotations"] == {
        "readOnlyHint": True
    }
    assert output == answer("ask_question", {"repoName": "a/b", "question": "why"})
    assert json.loads(structured) == {"stars": 42}
    assert mcp.methods() == [
        "initialize",
        "notifications/initialized",
        "tools/list",
        "tools/list",
        "tools/call",
        "tools/call",
        "tools/call",
    ]
    assert {h["Authorization"] for _, h in mcp.requests} == {f"Bearer {TOKEN}"}  # not "Bearer Bearer …"
    # the revision the server agreed to in initialize, on every request after it
    agreed = [h.get("MCP-Protocol-Version") for m, h in mcp.requests if m["method"] != "initialize"]
    assert agreed == [PROTOCOL_VERSION] * 6


@asynccontextmanager
async def _serve(handler) -> AsyncIterator[str]:
    """A server whose ``/mcp`` answers with ``handler``: its URL."""
    app = web.Application()
    app.router.add_post("/mcp", handler)
    async with serving(app) as base:
        yield f"{base}/mcp"


async def test_each_way_a_server_fails_is_an_mcp_error_naming_the_server_and_never_the_token():
    replies = {
        "http": web.Response(status=400, text="bad request"),
        "error": web.json_response(
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "overloaded"}}
        ),
        "not json": web.Response(text="<html>", content_type="application/json"),
        "wrong id": web.json_response({"jsonrpc": "2.0", "id": 99, "result": {}}),
    }
    expected = {
        "http": "answered HTTP 400",
        "error": "initialize failed: overloaded",
        "not json": "not JSON",
        "wrong id": "no reply to request 1",
    }
    texts: dict[str, str] = {}
    for case, reply in replies.items():

        async def handler(request: web.Request, reply=reply) -> web.StreamResponse:
            await request.read()
            return reply

        async with _serve(handler) as url:
            client, http = await _client(url, authorization=TOKEN)
            async with http:
                with pytest.raises(McpError) as failed:
                    await client.list_tools()
        text = str(failed.value)
        assert expected[case] in text and text.startswith("w: ") and TOKEN not in text, (case, text)
        texts[case] = text
    assert "w: https://w.example/mcp (redirected to http://127.0.0.1:" in texts["http"]


async def test_a_tool_list_that_never_ends_fails_after_the_page_cap():
    pages = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal pages
        message = await request.json()
        if "id" not in message:
            return web.Response(status=202)
        pages += message["method"] == "tools/list"
        result = {"tools": [], "nextCursor": f"page-{pages + 1}"} if message["method"] == "tools/list" else {}
        return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": result})

    async with _serve(handler) as url:
        client, http = await _client(url)
        async with http:
            with pytest.raises(McpError, match=f"past {MAX_LIST_PAGES} pages"):
                await client.list_tools()
    assert pages == MAX_LIST_PAGES


async def test_a_server_that_never_answers_times_out_and_one_that_is_gone_is_unreachable():
    never = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await never.wait()  # released when the test ends
        return web.Response()

    async with _serve(handler) as url:
        try:
            client, http = await _client(url)
            async with http:
                with pytest.raises(McpError, match=r"did not answer within 0\.2 s"):
                    await client.list_tools(timeout_s=0.2)
        finally:
            never.set()  # the handler's request ends, so the server can stop
    client, http = await _client("http://127.0.0.1:9/mcp")
    async with http:
        with pytest.raises(McpError, match="cannot reach https://w.example/mcp"):
            await client.list_tools()


def test_mcp_redirects_are_checked_and_the_cli_flag_reads_url_pairs():
    with pytest.raises(ConfigError, match="mcp_redirects maps"):
        Emulator(mcp_redirects={"https://a.example/mcp": "localhost:9000"})
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    emulator_command.add_parser(sub)
    args = parser.parse_args(["emulator", "--mcp-redirect", "https://a.example/mcp=http://127.0.0.1:9/mcp"])
    assert args.mcp_redirect == [("https://a.example/mcp", "http://127.0.0.1:9/mcp")]
    assert emulator_command._shard_command(args, 8765)[-2:] == [
        "--mcp-redirect",
        "https://a.example/mcp=http://127.0.0.1:9/mcp",
    ]
    with pytest.raises(SystemExit):
        parser.parse_args(["emulator", "--mcp-redirect", "https://a.example/mcp"])
