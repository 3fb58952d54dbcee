"""Everything vlab takes from the ``azure-ai-voicelive`` SDK, private parts included, in one module.

The rest of vlab never imports the SDK's connection API: it talks to a :class:`~vlab.session.link.Wire`
(:class:`SdkWire` here) and gets SDK models from :func:`server_event`. What vlab relies on beyond the
SDK's documented API is listed in :data:`RELIED_ON`; :func:`missing_sdk_features` checks the installed
SDK for each item, and a unit test fails with its sentences when an SDK upgrade removes one.

The SDK is imported on first use, so ``import vlab`` stays light.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vlab.protocol_limits import SDK_MAX_FRAME_BYTES
from vlab.session.connect_errors import (
    ConnectFailure,
    ConnectRefused,
    FailureKind,
    credential_sources,
    parse_retry_after,
)
from vlab.session.link import FrameTooLarge, WireClosed

if TYPE_CHECKING:
    from azure.ai.voicelive.aio import VoiceLiveConnection

SDK_PACKAGE = "azure-ai-voicelive"

RELIED_ON: dict[str, str] = {
    "azure.ai.voicelive.aio.connect(connection_options=...)": "opening the connection (with autoclose off)",
    "azure.ai.voicelive.aio.WebsocketConnectionOptions['autoclose']": "keeping the server's close code",
    "azure.ai.voicelive.aio.WebsocketConnectionOptions['vendor_options'] (passed to aiohttp's ws_connect)": (
        "the TLS context that trusts SSL_CERT_FILE as set at connect time"
    ),
    "azure.ai.voicelive.aio.WebsocketConnectionOptions['max_msg_size']": (
        "the client's frame size limit (Session(max_frame_bytes=...))"
    ),
    "azure.ai.voicelive.aio.ConnectionError": "recognising a failed connect or send",
    "azure.ai.voicelive.aio.ConnectionClosed(code, reason)": "telling a close frame from a dropped socket",
    "VoiceLiveConnection.recv_bytes()": "reading raw frames (the JSON is logged before any model is built)",
    "VoiceLiveConnection.send(dict)": "sending wire-format client events",
    "VoiceLiveConnection._connection (private: the aiohttp WebSocket, .closed, .exception())": (
        "refusing to send on a socket that is already closed; naming a frame over the size limit"
    ),
    "azure.ai.voicelive.models.ServerEvent._deserialize(payload, []) (private)": (
        "building SDK models from logged JSON, as conn.recv() does"
    ),
    "azure.ai.voicelive.__version__": "the SDK version written to session.json",
}
"""What vlab needs from the SDK → what for (the private parts say so)."""


class SdkWire:
    """A :class:`~vlab.session.link.Wire` over the SDK's ``VoiceLiveConnection``.

    Args:
        manager: The SDK's ``connect(...)`` context manager, already entered.
        connection: What entering it returned.
        max_frame_bytes: The frame size limit the connection was opened with.
    """

    def __init__(
        self, manager: Any, connection: VoiceLiveConnection, max_frame_bytes: int = SDK_MAX_FRAME_BYTES
    ) -> None:
        self._manager = manager
        self.connection = connection
        """The SDK connection (for what vlab does not wrap)."""
        self.max_frame_bytes = max_frame_bytes

    async def recv_bytes(self) -> bytes:
        """The next frame; raises :class:`WireClosed` as the SDK reports a close or a transport error.

        A frame over the frame size limit raises :class:`~vlab.session.link.FrameTooLarge` (the SDK
        reports it as a transport error, code 1006; the aiohttp WebSocket keeps its code, 1009).
        """
        from azure.ai.voicelive.aio import ConnectionClosed
        from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError

        try:
            raw = await self.connection.recv_bytes()
        except ConnectionClosed as exc:
            ws = getattr(self.connection, "_connection", None)
            error = ws.exception() if ws is not None else None
            # aiohttp keeps the error (some versions) or only its own close code 1009 (others), while the
            # SDK reports 1006; a close frame from the server with 1009 reaches the SDK as its code instead.
            if getattr(error, "code", None) == _MESSAGE_TOO_BIG or (
                exc.code == 1006 and getattr(ws, "close_code", None) == _MESSAGE_TOO_BIG
            ):
                detail = (
                    str(error)
                    if error is not None
                    else "the client closed it with code 1009, message too big"
                )
                raise FrameTooLarge(self.max_frame_bytes, detail) from None
            raise WireClosed(exc.code, exc.reason) from None
        except (SdkConnectionError, ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
            raise WireClosed(None, str(exc)) from None
        if not raw:  # the SDK's recv() treats an empty frame as a dead connection too
            raise WireClosed(1006, "Empty WebSocket frame")
        return raw

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send a wire-format client event; raises :class:`WireClosed` when the socket is gone.

        Raises:
            WireClosed: The socket is closed or the transport failed.
            TypeError: The event cannot be encoded as JSON.
        """
        from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError

        ws = getattr(self.connection, "_connection", None)
        if ws is not None and ws.closed:
            raise WireClosed(None, "the WebSocket is closed")
        try:
            await self.connection.send(event)
        except SdkConnectionError as exc:
            if isinstance(exc.__cause__, (TypeError, ValueError)):
                raise TypeError(f"cannot send {event.get('type')!r}: {exc.__cause__}") from None
            raise WireClosed(None, str(exc)) from None

    async def close(self) -> None:
        """Close the connection quietly (a dead socket cannot be closed cleanly; nothing is lost)."""
        try:
            await self._manager.__aexit__(None, None, None)
        except Exception:  # closing what is already dead
            return


_MESSAGE_TOO_BIG = 1009
"""WebSocket close code: a message was too big (aiohttp's ``WSCloseCode.MESSAGE_TOO_BIG``)."""


async def open_wire(
    *,
    endpoint: str,
    credential: Any,
    model: str | None,
    api_version: str,
    max_frame_bytes: int = SDK_MAX_FRAME_BYTES,
) -> SdkWire:
    """Connect with the SDK.

    Args:
        endpoint: The endpoint URL.
        credential: An ``AzureKeyCredential`` or async token credential.
        model: The model for the connection URL.
        api_version: The ``api-version`` query parameter.
        max_frame_bytes: Largest server frame the client accepts (the SDK's ``max_msg_size``).

    Raises:
        ConnectRefused: The connection could not be opened; its ``failure`` says why (the SDK's or the
            credential's words, not redacted).
    """
    from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError
    from azure.ai.voicelive.aio import WebsocketConnectionOptions, connect
    from azure.core.exceptions import AzureError

    # No automatic close reply: when the server closes and drops the TCP connection at once,
    # aiohttp's failed reply would overwrite the close code it received with 1006.
    options = WebsocketConnectionOptions(autoclose=False, max_msg_size=max_frame_bytes)
    if endpoint.lower().startswith(("https:", "wss:")):
        options["vendor_options"] = {"ssl": tls_context()}  # trusts SSL_CERT_FILE as set now
    manager = connect(
        endpoint=endpoint,
        credential=credential,
        model=model,
        api_version=api_version,
        connection_options=options,
    )
    try:
        connection = await manager.__aenter__()
    except SdkConnectionError as exc:
        raise ConnectRefused(classify(exc)) from None
    except AzureError as exc:  # the credential could not produce a token
        detail = str(exc)
        raise ConnectRefused(
            ConnectFailure("credential", detail, sources=credential_sources(detail))
        ) from None
    return SdkWire(manager, connection, max_frame_bytes)


class RawServerEvent(dict[str, Any]):
    """A server event the SDK cannot build a model of (a malformed one): its JSON object as sent.

    Read its fields as keys or attributes (``event.type``; a missing one reads as None, as on SDK models).
    """

    def __getattr__(self, name: str) -> Any:
        return self.get(name)


def classify(exc: BaseException) -> ConnectFailure:
    """Sort a failed connect (the SDK's error and the aiohttp error under it) for the user."""
    import aiohttp

    cause = exc.__cause__ or exc
    detail = str(cause) or type(cause).__name__
    if isinstance(cause, aiohttp.WSServerHandshakeError):
        status = cause.status
        kinds: dict[int, FailureKind] = {401: "unauthorized", 403: "forbidden", 429: "throttled"}
        kind = kinds.get(status, "http")
        retry = parse_retry_after(cause.headers.get("Retry-After")) if cause.headers else None
        return ConnectFailure(kind, f"HTTP {status} {cause.message}", status=status, retry_after_s=retry)
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", ())  # aiohttp >= 3.10
    if isinstance(cause, dns_error) or (
        isinstance(cause, aiohttp.ClientConnectorError) and isinstance(cause.os_error, socket.gaierror)
    ):
        return ConnectFailure("dns", str(getattr(cause, "os_error", None) or detail))
    if isinstance(cause, (aiohttp.ClientSSLError, ssl.SSLError)):
        reason = getattr(cause, "certificate_error", None) or getattr(cause, "os_error", None) or cause
        return ConnectFailure("tls", str(reason))
    if isinstance(cause, aiohttp.ClientConnectorError):
        return ConnectFailure("refused", str(cause.os_error.strerror or cause.os_error))
    if isinstance(cause, (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return ConnectFailure("timeout", detail)
    return ConnectFailure("other", str(exc))


def tls_context() -> ssl.SSLContext:
    """The default TLS client context as the environment says now (``SSL_CERT_FILE``, ``SSL_CERT_DIR``).

    aiohttp builds its own once, at import; this one follows a CA bundle set later (a test, a notebook).
    """
    return _tls_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _tls_context_for(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    # The arguments only key the cache: create_default_context() reads the same variables itself.
    return ssl.create_default_context()


def server_event(payload: Any) -> Any:
    """The SDK model of a server event's JSON object, as ``conn.recv()`` builds it (anything else as is).

    An object the SDK cannot build a model of (a ``type`` that is not a string, nesting too deep for its
    deserializer), where ``conn.recv()`` would raise, becomes a :class:`RawServerEvent`: readers still
    get it, and the session has logged it as a protocol warning.
    """
    if type(payload) is not dict:
        return payload
    try:
        return _server_event_model()._deserialize(payload, [])
    except (TypeError, ValueError, AttributeError, RecursionError):
        return RawServerEvent(payload)


@functools.cache
def _server_event_model() -> Any:
    from azure.ai.voicelive.models import ServerEvent

    return ServerEvent


def sdk_version() -> str:
    """The installed SDK's version."""
    import azure.ai.voicelive

    return str(azure.ai.voicelive.__version__)


def missing_sdk_features() -> list[str]:
    """What vlab relies on (:data:`RELIED_ON`) that the installed SDK lacks; empty when all is there.

    Returns:
        One sentence per missing feature: what is gone, what vlab uses it for, and what to do.
    """
    import azure.ai.voicelive.aio as aio

    def builds_session_created() -> bool:
        event = _server_event_model()._deserialize(
            {"type": "session.created", "event_id": "e", "session": {"id": "s"}}, []
        )
        return bool(event.type == "session.created" and event.get("session")["id"] == "s")

    def keeps_the_websocket() -> bool:
        ws = object()
        return aio.VoiceLiveConnection(client_session=object(), ws=ws)._connection is ws  # type: ignore[arg-type]

    def closed_carries_code() -> bool:
        exc = aio.ConnectionClosed(4000, "bye")
        return isinstance(exc, aio.ConnectionError) and (exc.code, exc.reason) == (4000, "bye")

    def is_coroutine(name: str) -> Callable[[], bool]:
        return lambda: inspect.iscoroutinefunction(getattr(aio.VoiceLiveConnection, name))

    checks: dict[str, Callable[[], object]] = {
        "azure.ai.voicelive.aio.connect(connection_options=...)": lambda: (
            "connection_options" in inspect.signature(aio.connect).parameters
        ),
        "azure.ai.voicelive.aio.WebsocketConnectionOptions['autoclose']": lambda: (
            "autoclose" in aio.WebsocketConnectionOptions.__annotations__
        ),
        "azure.ai.voicelive.aio.WebsocketConnectionOptions['vendor_options'] (passed to aiohttp's ws_connect)": (
            lambda: "vendor_options" in aio.WebsocketConnectionOptions.__annotations__
        ),
        "azure.ai.voicelive.aio.WebsocketConnectionOptions['max_msg_size']": lambda: (
            "max_msg_size" in aio.WebsocketConnectionOptions.__annotations__
        ),
        "azure.ai.voicelive.aio.ConnectionError": lambda: issubclass(aio.ConnectionError, Exception),
        "azure.ai.voicelive.aio.ConnectionClosed(code, reason)": closed_carries_code,
        "VoiceLiveConnection.recv_bytes()": is_coroutine("recv_bytes"),
        "VoiceLiveConnection.send(dict)": is_coroutine("send"),
        "VoiceLiveConnection._connection (private: the aiohttp WebSocket, .closed, .exception())": (
            keeps_the_websocket
        ),
        "azure.ai.voicelive.models.ServerEvent._deserialize(payload, []) (private)": builds_session_created,
        "azure.ai.voicelive.__version__": sdk_version,
    }
    assert checks.keys() == RELIED_ON.keys(), "each feature vlab relies on has exactly one check"
    problems: list[str] = []
    for feature, used_for in RELIED_ON.items():
        try:
            ok, why = bool(checks[feature]()), ""
        except Exception as exc:
            ok, why = False, f" ({type(exc).__name__}: {exc})"
        if not ok:
            problems.append(
                f"{SDK_PACKAGE} {_version_or_unknown()} no longer provides {feature}{why}, which vlab uses "
                f"for {used_for}. Install a version vlab supports (see pyproject.toml), or adapt "
                "vlab.session.sdk_adapter."
            )
    return problems


def _version_or_unknown() -> str:
    try:
        return sdk_version()
    except Exception:
        return "(unknown version)"
