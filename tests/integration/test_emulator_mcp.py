"""Through the real SDK: the emulator lists and calls a session's MCP servers, with and without approval."""

from __future__ import annotations

import asyncio
import json

import pytest
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import (
    InputTextContentPart,
    MCPApprovalResponseRequestItem,
    MCPServer,
    RequestSession,
    UserMessageItem,
)
from azure.core.credentials import AzureKeyCredential

from tests._mcp_server import TOOLS, answer, stand_in_mcp
from vlab import protocol
from vlab.metrics import tool_calls
from vlab.testing import collect_events, fast_emulator

# The servers of Microsoft's MCP sample (azure-ai-voicelive samples/async_mcp_sample.py), as it names them.
DEEPWIKI = "https://mcp.deepwiki.com/mcp"
LEARN = "https://learn.microsoft.com/api/mcp"
SAMPLE_SERVERS = [
    MCPServer(
        server_label="deepwiki",
        server_url=DEEPWIKI,
        allowed_tools=["read_wiki_structure", "ask_question"],
        require_approval="never",
    ),
    MCPServer(server_label="azure_doc", server_url=LEARN, require_approval="always"),
]


def _connect(emu):
    return connect(endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime")


async def _say(conn, text: str) -> None:
    await conn.conversation.item.create(item=UserMessageItem(content=[InputTextContentPart(text=text)]))
    await conn.response.create()


async def _listed(conn, servers, count: int):
    await conn.session.update(session=RequestSession(tools=servers, turn_detection=None))
    return await collect_events(
        conn, lambda e: e.type.startswith("mcp_list_tools.") and "progress" not in e.type, count=count
    )


async def test_the_sample_s_servers_list_their_tools_and_an_unapproved_call_runs_after_response_done():
    async with stand_in_mcp() as mcp:
        redirects = {DEEPWIKI: mcp.url, LEARN: mcp.url}
        async with fast_emulator(mcp_redirects=redirects) as emu, _connect(emu) as conn:
            await collect_events(conn, "session.created")
            listing = await _listed(conn, SAMPLE_SERVERS, count=2)
            items = {e.item.server_label: e.item for e in listing if e.type == "conversation.item.created"}
            assert set(items) == {"deepwiki", "azure_doc"}
            assert sorted(e.type for e in listing if e.type.startswith("mcp_list")) == [
                "mcp_list_tools.completed",
                "mcp_list_tools.completed",
                "mcp_list_tools.in_progress",
                "mcp_list_tools.in_progress",
            ]
            for label, wanted in (("deepwiki", TOOLS[:2]), ("azure_doc", TOOLS)):
                await conn.conversation.item.retrieve(item_id=items[label].id)
                (got,) = [e for e in await collect_events(conn, "conversation.item.retrieved")][-1:]
                assert [t.name for t in got.item.tools] == [t["name"] for t in wanted]  # allowed_tools kept
                assert got.item.tools[0].input_schema == wanted[0]["inputSchema"]
            methods = mcp.methods()  # each server's client starts its own MCP session
            assert methods.count("initialize") == methods.count("notifications/initialized") == 2

            await _say(conn, "Show me the wiki structure of the GitHub repository Azure SDK for Python.")
            events = await collect_events(conn, "response.output_item.done")  # the item, with the output
            types = [e.type for e in events]
            call = next(
                e for e in events if e.type == "conversation.item.created" and e.item.type == "mcp_call"
            )
            assert (call.item.server_label, call.item.name) == ("deepwiki", "read_wiki_structure")
            done_args = next(e for e in events if e.type == "response.mcp_call_arguments.done")
            arguments = json.loads(done_args.arguments)
            assert isinstance(arguments.get("repoName"), str), arguments
            # the order Microsoft's sample relies on: the response ends once the arguments are done, then
            # the service calls the server and reports the output on the item
            tail = types[types.index("response.mcp_call_arguments.done") :]
            assert tail == [
                "response.mcp_call_arguments.done",
                "response.done",
                "response.mcp_call.in_progress",
                "response.mcp_call.completed",
                "response.output_item.done",
            ]
            assert events[types.index("response.done")].response.status == "completed"
            output_item = events[-1].item
            assert output_item.id == call.item.id and output_item.output == answer(
                "read_wiki_structure", arguments
            )
            assert mcp.requests[-1][0]["params"] == {"name": "read_wiki_structure", "arguments": arguments}

            await conn.response.create()  # the client asks for the spoken answer, as the sample does
            spoken = await collect_events(conn, "response.done")
            said = next(e for e in spoken if e.type == "response.audio_transcript.done").transcript
            assert said == f"Here is what I found: {output_item.output}."


async def test_a_call_that_needs_approval_runs_once_approved_and_not_when_declined():
    async with (
        stand_in_mcp() as mcp,
        fast_emulator(mcp_redirects={LEARN: mcp.url}) as emu,
        _connect(emu) as conn,
    ):
        await collect_events(conn, "session.created")
        await _listed(conn, SAMPLE_SERVERS[1:], count=1)

        await _say(conn, "Search the Microsoft documentation for voice live.")
        asked = await collect_events(conn, "response.done")
        request = [e.item for e in asked if e.type == "conversation.item.created"][-1]
        assert (request.type, request.server_label, request.name) == (
            "mcp_approval_request",
            "azure_doc",
            "microsoft_docs_search",
        )
        assert [i.type for i in asked[-1].response.output] == ["mcp_approval_request"]
        assert "tools/call" not in mcp.methods()  # nothing is called before the client says yes

        # an answer refused for another reason leaves the request waiting
        yes = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        await conn.send({"type": "conversation.item.create", "previous_item_id": "nope", "item": yes})
        (refused,) = await collect_events(conn, "error")
        assert refused.error.param == "previous_item_id"

        await conn.conversation.item.create(
            item=MCPApprovalResponseRequestItem(approval_request_id=request.id, approve=True)
        )
        ran = await collect_events(
            conn, lambda e: e.type == "response.output_item.done" and e.item.type == "mcp_call"
        )
        assert ran[0].type == "conversation.item.created" and ran[0].item.type == "mcp_approval_response"
        assert "response.created" in [e.type for e in ran]  # the service runs the approved call itself
        item = ran[-1].item
        assert item.approval_request_id == request.id and item.arguments == request.arguments
        assert item.output == answer("microsoft_docs_search", json.loads(request.arguments))

        await _say(conn, "Search the Microsoft documentation for avatars.")
        second = next(
            e.item
            for e in await collect_events(conn, "response.done")
            if e.type == "conversation.item.created" and e.item.type == "mcp_approval_request"
        )
        await conn.conversation.item.create(
            item=MCPApprovalResponseRequestItem(approval_request_id=second.id, approve=False)
        )
        await collect_events(conn, "conversation.item.created")
        await conn.response.create()
        reply = await collect_events(conn, "response.done")
        said = next(e for e in reply if e.type == "response.audio_transcript.done").transcript
        assert said == "I did not run microsoft_docs_search, as you declined it."
        assert mcp.methods().count("tools/call") == 1

        await conn.conversation.item.create(
            item=MCPApprovalResponseRequestItem(approval_request_id=second.id, approve=True)
        )
        (error,) = await collect_events(conn, "error")
        assert error.error.param == "item.approval_request_id" and second.id in error.error.message


async def test_a_tool_error_fails_the_call_and_the_answer_says_so():
    tools = [MCPServer(server_label="pad", server_url="https://pad.example/mcp", require_approval="never")]
    async with stand_in_mcp(streamed=True) as mcp:
        async with (
            fast_emulator(mcp_redirects={"https://pad.example/mcp": mcp.url}) as emu,
            _connect(emu) as conn,
        ):
            await collect_events(conn, "session.created")
            await _listed(conn, tools, count=1)
            await _say(conn, "Launch the rocket now.")
            events = await collect_events(
                conn, lambda e: e.type == "response.output_item.done" and e.item.type == "mcp_call"
            )
            assert "response.mcp_call.failed" in [e.type for e in events]
            assert events[-1].item.error["message"] == "the launch pad is closed"
            await conn.response.create()
            reply = await collect_events(conn, "response.done")
            said = next(e for e in reply if e.type == "response.audio_transcript.done").transcript
            assert said == "The launch_rocket tool failed: the launch pad is closed."


async def test_a_server_that_cannot_be_reached_fails_its_listing_and_offers_no_tools():
    tools = [MCPServer(server_label="gone", server_url="http://127.0.0.1:9/mcp", require_approval="never")]
    async with fast_emulator() as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        events = await _listed(conn, tools, count=1)
        assert events[-1].type == "mcp_list_tools.failed"
        created = next(e for e in events if e.type == "conversation.item.created")
        assert events[-1].item_id == created.item.id and created.item.server_label == "gone"
        await _say(conn, "Read the wiki structure.")
        said = next(
            e
            for e in await collect_events(conn, "response.done")
            if e.type == "response.audio_transcript.done"
        )
        assert said.transcript == "You said: Read the wiki structure."


async def test_headers_and_the_bearer_token_reach_the_server_and_the_session_id_is_sent_back():
    tools = [
        {
            "type": "mcp",
            "server_label": "private",
            "server_url": "https://private.example/mcp",
            "authorization": "s3cret-token",
            "headers": {"X-Tenant": "contoso"},
            "require_approval": {"never": ["read_wiki_structure"]},
        }
    ]
    async with stand_in_mcp(streamed=True) as mcp:
        async with (
            fast_emulator(mcp_redirects={"https://private.example/mcp": mcp.url}) as emu,
            _connect(emu) as conn,
        ):
            await collect_events(conn, "session.created")
            await conn.send({"type": "session.update", "session": {"tools": tools, "turn_detection": None}})
            await collect_events(conn, "mcp_list_tools.completed")
            for message, headers in mcp.requests:
                assert headers["Authorization"] == "Bearer s3cret-token" and headers["X-Tenant"] == "contoso"
                if message["method"] != "initialize":
                    assert headers["Mcp-Session-Id"] == "stand-in-session-1"
            # an update that leaves the tools as they are lists nothing again
            await conn.send({"type": "session.update", "session": {"instructions": "Be brief."}})
            await collect_events(conn, "session.updated")
            # the per-tool approval: read_wiki_structure runs at once, the others ask first
            await _say(conn, "Show the wiki structure of the repository contoso/app.")
            events = await collect_events(conn, "response.done")
            assert [e.item.type for e in events if e.type == "conversation.item.created"] == [
                "message",
                "mcp_call",
            ]
            await _say(conn, "Search the Microsoft documentation for speech.")
            events = await collect_events(conn, "response.done")
            assert [e.item.type for e in events if e.type == "conversation.item.created"][
                -1
            ] == "mcp_approval_request"
            assert mcp.methods().count("tools/list") == 2  # its two pages, once


@pytest.mark.parametrize(
    ("tool", "wanted"),
    [
        ({"type": "mcp", "server_url": "http://x/mcp"}, "server_label"),
        ({"type": "mcp", "server_label": "a", "server_url": "ftp://x"}, "server_url"),
        (
            {"type": "mcp", "server_label": "a", "server_url": "http://x", "require_approval": "sometimes"},
            "require_approval",
        ),
        (
            {"type": "mcp", "server_label": "a", "server_url": "http://x", "allowed_tools": "one"},
            "allowed_tools",
        ),
        ({"type": "mcp", "server_label": "a", "server_url": "http://x", "headers": {"n": 1}}, "headers"),
    ],
)
async def test_a_malformed_mcp_tool_is_refused_with_the_field_named(tool, wanted):
    async with fast_emulator() as emu, _connect(emu) as conn:
        await collect_events(conn, "session.created")
        await conn.send({"type": "session.update", "session": {"tools": [tool]}})
        (error,) = await collect_events(conn, "error")
        assert error.error.param == "session.tools[0]" and wanted in error.error.message


async def test_a_vlab_session_with_an_mcp_server_logs_every_mcp_event_and_never_the_token(tmp_path):
    import vlab
    from vlab import Session
    from vlab.settings import McpServer as McpSettings
    from vlab.settings import SessionSettings

    token = "tok-never-written"
    settings = SessionSettings(
        tools=[
            McpSettings(
                "deepwiki", DEEPWIKI, authorization=token, require_approval={"never": ["read_wiki_structure"]}
            )
        ],
        turn_detection=None,
    )
    run = tmp_path / "run"
    async with stand_in_mcp() as mcp:
        options = {"speed": float("inf"), "latency": "instant", "mcp_redirects": {DEEPWIKI: mcp.url}}
        async with Session(settings, run_dir=run, emulator_options=options, dotenv_path=False) as s:
            await s.wait_for("mcp_list_tools.completed")
            await s.send_text("Show me the wiki structure of the repository contoso/app.")
            await s.wait_for(lambda e: e.type == "response.output_item.done" and e.item.type == "mcp_call")
            await s.send_text("Ask a question about the repository contoso/app: why is it slow?")
            (*_, asked) = await s.wait_for(
                lambda e: e.type == "conversation.item.created" and e.item.type == "mcp_approval_request"
            )
            assert asked.item.name == "ask_question"
            await s.send_mcp_approval(asked.item.id, approve=True)
            (*_, ran) = await s.wait_for(
                lambda e: e.type == "response.output_item.done" and e.item.type == "mcp_call"
            )
            assert ran.item.approval_request_id == asked.item.id and ran.item.output.startswith(
                "ask_question"
            )
            frame = s.frame()
    assert {h["Authorization"] for _, h in mcp.requests} == {f"Bearer {token}"}
    mcp_types = [t for t in frame["type"] if "mcp" in t]
    one_call = [
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
    ]
    assert [t for n, t in enumerate(mcp_types) if n == 0 or mcp_types[n - 1] != t] == [
        "mcp_list_tools.in_progress",
        "mcp_list_tools.completed",
        *one_call,
        *one_call,
    ]
    approval = frame[(frame["type"] == "conversation.item.create") & (frame["direction"] == "client")]
    assert approval["payload"].str.contains('"approve":true').any()
    calls = tool_calls(frame)  # the two calls, each with its answer time, the second with its approval's
    assert calls[["kind", "name", "server_label", "status"]].values.tolist() == [
        ["mcp", "read_wiki_structure", "deepwiki", "completed"],
        ["mcp", "ask_question", "deepwiki", "completed"],
    ]
    assert (calls["answer_ms"] >= 0).all() and calls["approval_ms"].notna().tolist() == [False, True]
    for name in ("events.jsonl", "session.json"):
        assert token not in (run / name).read_text(), name
    assert not vlab.load_log(run)["payload"].str.contains(token).any()
    assert frame["payload"].str.contains(protocol.REDACTED).any()


async def test_an_mcp_token_given_in_extra_or_a_response_create_is_never_kept_or_shown(tmp_path):
    # session.json kept it from SessionSettings(extra=...); the log kept it from response.create's tools; and
    # the server's echo (session.updated) kept it in server_session, in a typed event's repr, and in the raw
    # frame of a protocol warning when that echo was malformed
    import vlab
    from vlab import Session
    from vlab.settings import McpServer as McpSettings
    from vlab.settings import SessionSettings

    token, header = "tok-never-written-1234", "hdr-never-written-5678"
    server = McpSettings("deepwiki", DEEPWIKI, authorization=token, headers={"X-Key": header}).to_wire()
    settings = SessionSettings(extra={"tools": [server]}, turn_detection=None)
    run = tmp_path / "run"
    async with stand_in_mcp() as mcp:
        options = {"speed": float("inf"), "latency": "instant", "mcp_redirects": {DEEPWIKI: mcp.url}}
        async with Session(settings, run_dir=run, emulator_options=options, dotenv_path=False) as s:
            (*_, echo) = await s.wait_for("session.updated")
            await s.create_response(tools=[server])
            await s.wait_for("response.done")
            shown = [repr(s.server_session), repr(echo), str(echo.as_dict())]
    assert {h["X-Key"] for _, h in mcp.requests} == {header}  # the server got them
    for text in shown + [(run / name).read_text() for name in ("events.jsonl", "session.json")]:
        assert token not in text and header not in text
    log = vlab.load_log(run)
    assert not log["payload"].str.contains(token).any()
    assert log.loc[log["type"] == "response.create", "payload"].str.contains(protocol.REDACTED).all()


async def test_a_response_waits_for_the_listing_and_a_server_dropped_from_the_tools_is_forgotten():
    tools = [MCPServer(server_label="deepwiki", server_url=DEEPWIKI, require_approval="never")]
    async with (
        stand_in_mcp() as mcp,
        fast_emulator(mcp_redirects={DEEPWIKI: mcp.url}) as emu,
        _connect(emu) as conn,
    ):
        await collect_events(conn, "session.created")
        await conn.session.update(session=RequestSession(tools=tools, turn_detection=None))
        await _say(
            conn, "Show me the wiki structure of the repository contoso/app."
        )  # the listing is under way
        events = await collect_events(conn, "response.done")
        assert events.index(next(e for e in events if e.type == "mcp_list_tools.completed")) < events.index(
            next(e for e in events if e.type == "response.created")
        )
        assert [i.type for i in events[-1].response.output] == ["mcp_call"]

        await conn.session.update(session=RequestSession(tools=[]))
        await collect_events(conn, "session.updated")
        await _say(conn, "Show me the wiki structure of the repository contoso/app.")
        events = await collect_events(conn, "response.done")
        assert [i.type for i in events[-1].response.output] == ["message"]  # no tool left to call


async def test_the_http_session_that_reaches_the_servers_closes_with_the_connection(monkeypatch):
    import aiohttp

    opened: list[aiohttp.ClientSession] = []

    session_class = aiohttp.ClientSession

    def recorded(*args, **kwargs) -> aiohttp.ClientSession:  # every session opened: the SDK's, the emulator's
        opened.append(session_class(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(aiohttp, "ClientSession", recorded)
    async with stand_in_mcp() as mcp:
        async with fast_emulator(mcp_redirects={DEEPWIKI: mcp.url}) as emu:
            async with _connect(emu) as conn:
                await collect_events(conn, "session.created")
                assert (await _listed(conn, SAMPLE_SERVERS[:1], count=1))[
                    -1
                ].type == "mcp_list_tools.completed"
        assert mcp.methods().count("initialize") == 1  # the emulator's client reached the server
        assert len(opened) >= 2 and [s.closed for s in opened] == [True] * len(opened)


async def test_an_mcp_call_takes_its_drawn_delay_on_the_simulated_timeline_at_any_speed():
    tools = [MCPServer(server_label="deepwiki", server_url=DEEPWIKI, require_approval="never")]
    measured = []
    async with stand_in_mcp() as mcp:
        for speed in (float("inf"), 8.0):
            options = {
                "speed": speed,
                "latency": "typical",
                "trace": True,
                "mcp_redirects": {DEEPWIKI: mcp.url},
            }
            async with fast_emulator(**options) as emu, _connect(emu) as conn:
                await collect_events(conn, "session.created")
                await _listed(conn, tools, count=1)
                await _say(conn, "Show me the wiki structure of the repository contoso/app.")
                await collect_events(conn, "response.mcp_call.completed")
                sent = {e["type"]: e["sim_ms"] for e in emu.trace.of_kind("send")}
                (drawn,) = [e["mcp_call_ms"] for e in emu.trace.of_kind("latency") if "mcp_call_ms" in e]
            took = sent["response.mcp_call.completed"] - sent["response.mcp_call.in_progress"]
            measured.append((took, drawn))
    assert measured[0] == measured[1]  # the same seed, the same figures, whatever the speed
    took, drawn = measured[0]
    assert drawn >= 300 and took == pytest.approx(drawn, abs=0.01)


REFERENCE_SERVER = """
import sys
import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("reference")


@server.tool()
def read_wiki_structure(repoName: str) -> str:
    \"\"\"Get a list of documentation topics for a GitHub repository.\"\"\"
    return f"Topics of {repoName}: Overview, Getting started"


@server.tool()
def launch_rocket() -> str:
    \"\"\"Launch the rocket to the moon.\"\"\"
    raise ValueError("the launch pad is closed")


uvicorn.run(server.streamable_http_app(), port=0, log_level="info")
"""
"""The official MCP Python SDK's server, with two tools, on a free port (uvicorn names it on stderr)."""


async def test_the_reference_mcp_server_of_the_official_python_sdk_is_listed_and_called():
    """The client against the MCP Python SDK's own Streamable HTTP server (event streams, its session ids)."""
    import re
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", REFERENCE_SERVER, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        port = None
        while port is None:  # until uvicorn says where it listens
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "the reference MCP server ended before it served"
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        tools = [MCPServer(server_label="deepwiki", server_url=DEEPWIKI, require_approval="never")]
        async with fast_emulator(mcp_redirects={DEEPWIKI: f"http://127.0.0.1:{port}/mcp"}) as emu:
            async with _connect(emu) as conn:
                await collect_events(conn, "session.created")
                listing = await _listed(conn, tools, count=1)
                assert listing[-1].type == "mcp_list_tools.completed"
                item = next(e.item for e in listing if e.type == "conversation.item.created")
                await conn.conversation.item.retrieve(item_id=item.id)
                (*_, got) = await collect_events(conn, "conversation.item.retrieved")
                assert [t.name for t in got.item.tools] == ["read_wiki_structure", "launch_rocket"]
                assert got.item.tools[0].input_schema["required"] == ["repoName"]
                await _say(conn, "Show me the wiki structure of the repository Contoso.")
                (*_, done) = await collect_events(
                    conn, lambda e: e.type == "response.output_item.done" and e.item.type == "mcp_call"
                )
                assert done.item.output == "Topics of Contoso: Overview, Getting started"
                await _say(conn, "Launch the rocket.")
                (*events, failed) = await collect_events(
                    conn, lambda e: e.type == "response.output_item.done" and e.item.type == "mcp_call"
                )
                assert "response.mcp_call.failed" in [e.type for e in events]
                assert "launch_rocket" in failed.item.error["message"]
    finally:
        proc.terminate()
        await proc.wait()
