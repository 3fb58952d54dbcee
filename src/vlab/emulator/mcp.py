"""The MCP servers a session names: the tools they list and the calls the assistant makes to them.

Voice Live calls each ``type: "mcp"`` tool's server itself; the emulator does the same, so a client's MCP
tools work offline against a local MCP server. It speaks MCP's Streamable HTTP transport: JSON-RPC 2.0
POSTs of ``initialize``, ``notifications/initialized``, ``tools/list`` (every page) and ``tools/call``, each
answered with a JSON body or an event stream, with the server's ``Mcp-Session-Id`` sent back.

Each server's ``headers`` go with every request; ``authorization`` goes as ``Authorization: Bearer <token>``
and never into a log or an error text. A redirect (``Emulator(mcp_redirects={url: local_url})``, ``vlab emulator
--mcp-redirect URL=LOCAL_URL``) sends a server's requests to another address: a published sample's servers
on the internet can be stood in for by a local one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from vlab import protocol

if TYPE_CHECKING:
    import aiohttp

PROTOCOL_VERSION: Final = "2025-06-18"
"""The MCP revision the emulator asks for in ``initialize``."""
LIST_TIMEOUT_S: Final = 10.0
"""How long listing one server's tools may take (network time) before ``mcp_list_tools.failed``."""
MAX_LIST_PAGES: Final = 100
"""Most pages of ``tools/list`` read from one server (a server whose cursor never ends fails its listing)."""
CALL_TIMEOUT_S: Final = 30.0
"""How long one tool call may take (network time) before ``response.mcp_call.failed``."""


class McpError(Exception):
    """An MCP server could not be reached, refused a request or reported an error; the text says which."""


@dataclass(frozen=True, slots=True)
class McpServer:
    """One ``type: "mcp"`` entry of a session's ``tools``, as the service reads it."""

    server_label: str
    """Names the server in every item and event."""
    server_url: str
    """Where its Streamable HTTP endpoint is."""
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """``headers`` sent with every request (may hold secrets)."""
    authorization: str | None = field(default=None, repr=False)
    """The token sent as ``Authorization: Bearer …`` (a secret)."""
    allowed_tools: frozenset[str] | None = None
    """Only these of the listed tools are offered to the model (None: all)."""
    require_approval: Any = "always"
    """``"always"``, ``"never"`` or ``{"never": [...], "always": [...]}``."""

    @classmethod
    def from_tool(cls, tool: Mapping[str, Any]) -> McpServer:
        """The server of a session's ``type: "mcp"`` tool.

        Raises:
            ValueError: A field is missing or of the wrong type; the text names it (never the token).
        """
        label, url = tool.get("server_label"), tool.get("server_url")
        if not isinstance(label, str) or not label:
            raise ValueError("an mcp tool needs a 'server_label' string")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(
                f"mcp tool {label!r}: 'server_url' must be an http:// or https:// URL, got {url!r}"
            )
        headers = tool.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError(f"mcp tool {label!r}: 'headers' must be an object of strings")
        token = tool.get("authorization")
        if token is not None and not isinstance(token, str):
            raise ValueError(f"mcp tool {label!r}: 'authorization' must be a string")
        allowed = tool.get("allowed_tools")
        if allowed is not None and not (
            isinstance(allowed, list) and all(isinstance(n, str) for n in allowed)
        ):
            raise ValueError(f"mcp tool {label!r}: 'allowed_tools' must be a list of tool names")
        approval = tool.get("require_approval")
        approval = "always" if approval is None else approval
        if not (approval in protocol.MCP_APPROVALS or _per_tool(approval)):
            raise ValueError(
                f"mcp tool {label!r}: 'require_approval' must be 'always', 'never' or "
                f'{{"never": [names], "always": [names]}}, got {approval!r}'
            )
        allowed_set = frozenset(allowed) if allowed is not None else None
        return cls(label, url, dict(headers), token or None, allowed_set, approval)

    def offers(self, name: str) -> bool:
        """Whether the model may call the listed tool ``name`` (``allowed_tools``)."""
        return self.allowed_tools is None or name in self.allowed_tools

    def needs_approval(self, name: str) -> bool:
        """Whether a call of ``name`` waits for the client's ``mcp_approval_response``."""
        return protocol.mcp_needs_approval(self.require_approval, name)


def _per_tool(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) <= set(protocol.MCP_APPROVALS)
        and all(
            isinstance(names, list) and all(isinstance(n, str) for n in names) for names in value.values()
        )
    )


class McpClient:
    """Talks to one MCP server for one session (keeps its ``Mcp-Session-Id``).

    Args:
        server: The server.
        http: The session's HTTP client.
        url: Where to send the requests (the server's URL, or the one it is redirected to).
    """

    def __init__(self, server: McpServer, http: aiohttp.ClientSession, url: str | None = None) -> None:
        self.server = server
        self._http = http
        self._url = url or server.server_url
        self._headers = dict(server.headers)
        if server.authorization is not None:
            token = server.authorization
            self._headers["Authorization"] = (
                token if token.lower().startswith("bearer ") else f"Bearer {token}"
            )
        self._session_id: str | None = None
        self._next_id = 0
        self._initialized = False
        self._version: str | None = None
        where = server.server_url
        self._where = where if self._url == where else f"{where} (redirected to {self._url})"

    async def list_tools(self, timeout_s: float = LIST_TIMEOUT_S) -> list[dict[str, Any]]:
        """The server's tools as the service lists them: ``name``, ``description``, ``input_schema``, ``annotations``.

        Raises:
            McpError: The server could not be reached or answered with an error.
        """
        await self._initialize(timeout_s)
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            result = await self._request("tools/list", {"cursor": cursor} if cursor else {}, timeout_s)
            for tool in result.get("tools") or []:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    tools.append(
                        {
                            "name": tool["name"],
                            "description": tool.get("description") or "",
                            "input_schema": tool.get("inputSchema") or {"type": "object"},
                            "annotations": tool.get("annotations"),
                        }
                    )
            cursor = result.get("nextCursor")
            if not cursor:
                return tools
        raise McpError(f"{self.server.server_label}: its tool list goes on past {MAX_LIST_PAGES} pages")

    async def call(self, name: str, arguments: Mapping[str, Any], timeout_s: float = CALL_TIMEOUT_S) -> str:
        """Call tool ``name``; its text content, one block a line.

        Raises:
            McpError: The call failed, or the tool reported an error (``isError``): the text is its content.
        """
        await self._initialize(timeout_s)
        result = await self._request("tools/call", {"name": name, "arguments": dict(arguments)}, timeout_s)
        blocks = result.get("content") or []
        text = "\n".join(
            str(b.get("text", "")) if b.get("type") == "text" else json.dumps(b)
            for b in blocks
            if isinstance(b, dict)
        )
        if not text and result.get("structuredContent") is not None:
            text = json.dumps(result["structuredContent"])
        if result.get("isError"):
            raise McpError(text or f"tool {name!r} reported an error")
        return text

    async def _initialize(self, timeout_s: float) -> None:
        if self._initialized:
            return
        result = await self._request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "vlab-emulator", "version": "1"},
            },
            timeout_s,
        )
        self._version = str(result.get("protocolVersion") or PROTOCOL_VERSION)
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout_s)
        self._initialized = True

    async def _request(self, method: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        answer = await self._post(message, timeout_s)
        if answer is None:
            raise McpError(f"{self.server.server_label}: no answer to {method}")
        if isinstance(answer.get("error"), dict):
            error = answer["error"]
            raise McpError(f"{self.server.server_label}: {method} failed: {error.get('message', error)}")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise McpError(f"{self.server.server_label}: {method} answered without a result")
        return result

    async def _post(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """POST one JSON-RPC message; the answer with its id (None for a notification)."""
        import aiohttp

        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if self._session_id is not None:
            headers["Mcp-Session-Id"] = self._session_id
        if self._version is not None:  # the revision agreed on in initialize, on every request after it
            headers["MCP-Protocol-Version"] = self._version
        try:
            async with self._http.post(
                self._url, json=message, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as reply:
                if reply.status >= 400:
                    raise McpError(f"{self.server.server_label}: {self._where} answered HTTP {reply.status}")
                self._session_id = reply.headers.get("Mcp-Session-Id", self._session_id)
                if "id" not in message:
                    return None
                body = await reply.text()
                streamed = reply.content_type == "text/event-stream"
        except McpError:
            raise
        except asyncio.TimeoutError:  # TimeoutError from 3.11 on; 3.10's is asyncio's own
            raise McpError(
                f"{self.server.server_label}: {self._where} did not answer within {timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise McpError(f"{self.server.server_label}: cannot reach {self._where}: {exc}") from None
        return _answer(body, message["id"], streamed, self.server.server_label)


def _answer(body: str, wanted: int, streamed: bool, label: str) -> dict[str, Any]:
    """The JSON-RPC answer with id ``wanted`` in a JSON body or an event stream's ``data:`` events."""
    if streamed:
        events = [
            "\n".join(ln[5:].removeprefix(" ") for ln in chunk.splitlines() if ln.startswith("data:"))
            for chunk in body.replace("\r\n", "\n").split("\n\n")
        ]
    else:
        events = [body]
    for data in events:
        if not data.strip():
            continue
        try:
            parsed = json.loads(data)
        except ValueError:
            raise McpError(f"{label}: the server's answer is not JSON: {data[:80]!r}") from None
        for answer in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(answer, dict) and answer.get("id") == wanted:
                return answer
    raise McpError(f"{label}: the server's answer holds no reply to request {wanted}")
