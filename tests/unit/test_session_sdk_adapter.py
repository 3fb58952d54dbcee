"""The one module that knows the SDK: what vlab relies on is there, and nothing else reaches into the SDK."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest
from azure.ai.voicelive import aio
from azure.ai.voicelive.models import ServerEvent

import vlab
from vlab.session import LocalEvent, sdk_adapter
from vlab.session.link import FrameTooLarge, WireClosed

SRC = Path(vlab.__file__).parent
ADAPTER = SRC / "session" / "sdk_adapter.py"
PRIVATE_SDK_NAMES = ("_deserialize", "._connection", "voicelive._version", "voicelive._patch", "aio._patch")


def test_the_installed_sdk_has_everything_vlab_relies_on():
    problems = sdk_adapter.missing_sdk_features()
    assert not problems, "\n" + "\n".join(problems)


def test_a_missing_feature_is_named_with_what_vlab_uses_it_for(monkeypatch):
    monkeypatch.delattr(aio.VoiceLiveConnection, "recv_bytes")

    def gone(*args: Any) -> Any:
        raise AttributeError("_deserialize")

    monkeypatch.setattr(ServerEvent, "_deserialize", gone)
    problems = sdk_adapter.missing_sdk_features()
    assert len(problems) == 2
    assert (
        problems[0].startswith("azure-ai-voicelive ")
        and "no longer provides VoiceLiveConnection.recv_bytes()" in problems[0]
    )
    assert (
        "which vlab uses for reading raw frames" in problems[0] and "vlab.session.sdk_adapter" in problems[0]
    )
    assert "ServerEvent._deserialize(payload, []) (private) (AttributeError: _deserialize)" in problems[1]


def test_only_the_adapter_reaches_into_the_sdk():
    """Outside the adapter, no module of vlab uses a private SDK name, and the session imports no SDK."""
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        if path == ADAPTER:
            continue
        text = path.read_text()
        problems += [f"{path.relative_to(SRC)} uses {name}" for name in PRIVATE_SDK_NAMES if name in text]
        if path.parent.name == "session":
            for node in ast.walk(ast.parse(text)):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
                problems += [
                    f"{path.relative_to(SRC)} imports {n}" for n in names if n.startswith("azure.ai")
                ]
    assert problems == []


class _Socket:
    closed = False
    error: BaseException | None = None
    close_code: int | None = None

    def exception(self) -> BaseException | None:
        return self.error


class _SdkConnection:
    """Stands in for the SDK's VoiceLiveConnection: what it raises is the SDK's own."""

    def __init__(self, frames: list[Any]) -> None:
        self._connection = _Socket()
        self.frames = frames
        self.sent: list[Any] = []

    async def recv_bytes(self) -> bytes:
        frame = self.frames.pop(0)
        if isinstance(frame, BaseException):
            raise frame
        return frame

    async def send(self, event: Any) -> None:
        if event.get("bad"):
            try:
                raise TypeError("Object of type set is not JSON serializable")
            except TypeError as exc:
                raise aio.ConnectionError(f"Failed to send event: {exc}") from exc
        self.sent.append(event)


async def test_sdk_errors_become_wire_closures_with_their_close_code():
    wire = sdk_adapter.SdkWire(None, _SdkConnection([b"{}", aio.ConnectionClosed(4000, ""), b""]))  # type: ignore[arg-type]
    assert await wire.recv_bytes() == b"{}"
    with pytest.raises(WireClosed) as closed:
        await wire.recv_bytes()
    assert (closed.value.code, closed.value.reason) == (4000, "")
    with pytest.raises(WireClosed) as empty:
        await wire.recv_bytes()
    assert (empty.value.code, empty.value.reason) == (1006, "Empty WebSocket frame")  # as the SDK's recv()


async def test_a_frame_over_the_size_limit_is_named_as_such():
    import aiohttp

    too_big = "Message size 5000000 exceeds limit 4194304"
    connection = _SdkConnection([aio.ConnectionClosed(1006, too_big), aio.ConnectionClosed(1006, "reset")])
    wire = sdk_adapter.SdkWire(None, connection, max_frame_bytes=4194304)  # type: ignore[arg-type]
    connection._connection.error = aiohttp.WebSocketError(1009, too_big)  # what aiohttp keeps
    with pytest.raises(FrameTooLarge) as info:
        await wire.recv_bytes()
    assert (info.value.code, info.value.limit_bytes, info.value.reason) == (1009, 4194304, too_big)
    connection._connection.error = ConnectionResetError("reset")
    with pytest.raises(WireClosed) as other:
        await wire.recv_bytes()
    assert not isinstance(other.value, FrameTooLarge) and other.value.code == 1006
    # aiohttp 3.14 keeps no error, only its close code; the SDK says 1006 with the reason "None"
    connection.frames += [aio.ConnectionClosed(1006, "None"), aio.ConnectionClosed(1009, "")]
    connection._connection.error, connection._connection.close_code = None, 1009
    with pytest.raises(FrameTooLarge, match="code 1009, message too big"):
        await wire.recv_bytes()
    with pytest.raises(WireClosed) as by_server:  # a close frame from the server with 1009 is the server's
        await wire.recv_bytes()
    assert not isinstance(by_server.value, FrameTooLarge) and by_server.value.code == 1009


async def test_a_send_on_a_closed_socket_or_of_an_unencodable_event_fails_clearly():
    connection = _SdkConnection([])
    wire = sdk_adapter.SdkWire(None, connection)  # type: ignore[arg-type]
    await wire.send({"type": "response.create"})
    with pytest.raises(TypeError, match="cannot send 'x': Object of type set"):
        await wire.send({"type": "x", "bad": True})
    connection._connection.closed = True
    with pytest.raises(WireClosed, match="the WebSocket is closed"):
        await wire.send({"type": "response.create"})
    assert connection.sent == [{"type": "response.create"}]


def test_server_events_become_the_sdk_s_models():
    event = sdk_adapter.server_event({"type": "session.created", "event_id": "e1", "session": {"id": "s"}})
    assert isinstance(event, ServerEvent) and event.type == "session.created" and event.session.id == "s"
    local = LocalEvent(type="vlab.reconnected", attempt=1)
    assert sdk_adapter.server_event(local) is local  # the session's own notices stay as they are


def _sdk_build(payload: dict[str, Any]) -> Any:
    try:
        return ServerEvent._deserialize(payload, [])
    except (TypeError, ValueError, AttributeError, RecursionError):
        return sdk_adapter.RawServerEvent(payload)


_NESTED = {
    "event_id": "e1",
    "response_id": "r1",
    "item_id": "i1",
    "output_index": 0,
    "content_index": 1,
    "delta": "AAAA",
    "transcript": "hi",
    "audio_start_ms": 12.5,
    "response": {"id": "r1", "status": "completed", "output": [{"id": "i1", "type": "message"}]},
    "item": {"id": "i1", "type": "message", "role": "assistant", "content": [{"type": "audio"}]},
    "session": {"id": "s1", "voice": {"name": "v", "type": "openai"}, "modalities": ["text", "audio"]},
    "error": {"type": "invalid_request_error", "code": "c", "message": "m"},
    "part": {"type": "text", "text": "t"},
    "extra": {"nested": [1, {"x": None}]},
}


@pytest.mark.parametrize("etype", sorted(ServerEvent.__mapping__))  # type: ignore[attr-defined]
@pytest.mark.parametrize(
    "fields",
    [{}, _NESTED, {"event_id": 5, "response": "not an object", "output_index": "0", "item": [1]}],
    ids=["minimal", "nested", "malformed"],
)
def test_typed_events_are_exactly_the_models_the_sdk_builds(etype, fields):
    payload = {"type": etype, **fields}
    fast, sdk = sdk_adapter.server_event(payload), _sdk_build(payload)
    assert type(fast) is type(sdk)
    if isinstance(sdk, sdk_adapter.RawServerEvent):
        assert fast == sdk
    else:
        assert list(fast._data.items()) == list(sdk._data.items())  # same data, same key order
        assert fast.as_dict() == sdk.as_dict()


def test_an_unknown_or_odd_type_takes_the_sdk_s_own_path():
    for payload in ({"type": "not.a.voicelive.event", "x": 1}, {"type": 5}, {"type": ["a"]}, {"x": 1}):
        fast, sdk = sdk_adapter.server_event(payload), _sdk_build(payload)
        assert type(fast) is type(sdk) and dict(fast) == dict(sdk)
    assert "not.a.voicelive.event" not in sdk_adapter._PLANS  # a server's made-up types are not kept


# --- sorting a failed connect ----------------------------------------------------------------------


def _connector_error(os_error: OSError, cls: type | None = None) -> Exception:
    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey(
        **dict.fromkeys(ConnectionKey._fields) | {"host": "h.example", "port": 443, "is_ssl": True}
    )
    return (cls or aiohttp.ClientConnectorError)(key, os_error)


def _wrapped(cause: BaseException) -> Exception:
    """As the SDK raises it: its own error, the transport's under it."""
    try:
        raise aio.ConnectionError("Failed to establish WebSocket connection") from cause
    except aio.ConnectionError as exc:
        return exc


def test_a_failed_connect_is_sorted_by_the_transports_error_under_the_sdks():
    import errno
    import socket

    import aiohttp

    refused = _connector_error(OSError(errno.ECONNREFUSED, "Connection refused"))
    assert sdk_adapter.classify(_wrapped(refused)) == sdk_adapter.ConnectFailure(
        "refused", "Connection refused"
    )
    no_reason = _connector_error(OSError("socket closed"))
    assert sdk_adapter.classify(no_reason).detail == "socket closed"  # no strerror: the error's own words
    unknown = socket.gaierror(-2, "Name or service not known")
    for dns in (_connector_error(unknown), _connector_error(unknown, aiohttp.ClientConnectorDNSError)):
        assert sdk_adapter.classify(_wrapped(dns)) == sdk_adapter.ConnectFailure(
            "dns", "[Errno -2] Name or service not known"
        )
    assert sdk_adapter.classify(_wrapped(TimeoutError())) == sdk_adapter.ConnectFailure(
        "timeout", "TimeoutError"
    )
    assert sdk_adapter.classify(asyncio.TimeoutError("no answer")).detail == "no answer"
    assert sdk_adapter.classify(ValueError("odd")) == sdk_adapter.ConnectFailure("other", "odd")
    other = sdk_adapter.classify(_wrapped(ValueError("odd")))  # the SDK's words, which quote the cause's
    assert other == sdk_adapter.ConnectFailure("other", "Failed to establish WebSocket connection")


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after_s"),
    [
        (401, None, "unauthorized", None),
        (403, {}, "forbidden", None),
        (429, {"Retry-After": "7"}, "throttled", 7.0),
        (429, {}, "throttled", None),
        (404, {"Retry-After": "7"}, "http", 7.0),
    ],
)
def test_a_refused_upgrade_is_sorted_by_its_status(status, headers, kind, retry_after_s):
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    url = URL("https://h.example/voice-live/realtime")
    request = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    refused = aiohttp.WSServerHandshakeError(
        request,
        (),
        status=status,
        message="Refused",
        headers=None if headers is None else CIMultiDict(headers),
    )
    assert sdk_adapter.classify(_wrapped(refused)) == sdk_adapter.ConnectFailure(
        kind, f"HTTP {status} Refused", status=status, retry_after_s=retry_after_s
    )
