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
    "azure.ai.voicelive._utils.model_base: Model._attr_to_rest_field, _RestField, _create_value (private)": (
        "building the same SDK models about 5x faster than ServerEvent._deserialize (server_event)"
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
        try:
            raw = await self.connection.recv_bytes()
        except Exception as exc:  # sorted out only here: importing the SDK's errors costs ≈ 1 µs a call
            closed = self._closed(exc)
            if closed is None:
                raise
            raise closed from None
        if not raw:  # the SDK's recv() treats an empty frame as a dead connection too
            raise WireClosed(1006, "Empty WebSocket frame")
        return raw

    def _closed(self, exc: Exception) -> WireClosed | None:
        """What a failed receive means: :class:`WireClosed` (or :class:`FrameTooLarge`); None: not a closure."""
        from azure.ai.voicelive.aio import ConnectionClosed
        from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError

        if isinstance(exc, ConnectionClosed):
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
                return FrameTooLarge(self.max_frame_bytes, detail)
            return WireClosed(exc.code, exc.reason)
        if isinstance(exc, (SdkConnectionError, ConnectionError, TimeoutError, asyncio.TimeoutError)):
            return WireClosed(None, str(exc))
        return None

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

    The model of an event type the SDK knows is built by :class:`_ModelPlan` (the same object, about five
    times faster); any other goes through ``ServerEvent._deserialize``.
    """
    if type(payload) is not dict:
        return payload
    etype = payload.get("type")
    try:
        plan = _plan(etype) if type(etype) is str else None
        return plan.build(payload) if plan is not None else _server_event_model()._deserialize(payload, [])
    except (TypeError, ValueError, AttributeError, RecursionError):
        return RawServerEvent(payload)


def _plan(etype: str) -> _ModelPlan | None:
    """The plan of an event type the SDK knows, made once (a bounded set); None for any other type."""
    if etype not in _PLANS:
        if etype not in _server_event_mapping():
            return None  # a server's unknown type is not cached
        _PLANS[etype] = _ModelPlan.of(etype)
    return _PLANS[etype]


_SCALARS = frozenset({str, int, float, bool, type(None)})


class _ModelPlan:
    """How to build the SDK model of one server event type without the SDK's generic per-field work.

    ``ServerEvent._deserialize`` finds the class by the ``type`` discriminator and calls its constructor:
    for each key it scans the class's fields for its REST name and passes the value through the SDK's
    ``_serialize`` (an identity for a JSON scalar of a field without a format) or, for a model field,
    builds the nested model; it adds the fields' client defaults; then the class's own ``__init__`` sets
    its constants (``type``, and e.g. ``timestamp_type = "word"``). The plan looks fields up in a dict
    made once, keeps scalars as they are where that is the identity, hands every other value to the
    SDK's own ``_create_value``, adds the same defaults and the same constants (found once by building a
    probe with the SDK), and sets the result as the model's data: the same object, key order included
    (unit tests compare both for every event type the SDK knows, and on a whole session).

    Args:
        cls: The model class.

    Raises:
        LookupError: The class does more in its constructor than the plan knows how to repeat.
    """

    __slots__ = ("cls", "constants", "defaults", "fields", "plain")

    def __init__(self, cls: Any) -> None:
        from azure.ai.voicelive._utils import model_base

        cls.__new__(cls)  # the SDK works out the class's field table on its first instance
        fields: dict[str, Any] = {}
        for rf in cls._attr_to_rest_field.values():
            fields.setdefault(rf._rest_name, rf)  # the first field of a REST name, as the SDK's lookup
        self.cls = cls
        self.fields = fields
        self.plain = frozenset(
            name
            for name, rf in fields.items()
            if not rf._is_model and not rf._is_multipart_file_input and rf._format is None
        )
        """REST names whose scalar values the SDK keeps as they are."""
        self.defaults = tuple(
            rf for rf in cls._attr_to_rest_field.values() if rf._default is not model_base._UNSET
        )
        # The constants the constructor sets: what it makes of a probe holding a marker in every plain
        # field; their order (for keys a payload lacks) is the one it adds them in to an empty object.
        probe = {name: f"\x00vlab-probe:{name}" for name in self.plain}
        built, empty = cls(probe)._data, list(cls({})._data)
        default_names = {rf._rest_name for rf in self.defaults}
        changed = {k: v for k, v in built.items() if k in probe and v != probe[k]}
        if (
            set(built) - set(probe) - default_names
            or not set(changed) <= set(empty)
            or any(type(v) not in (str, int, float, bool) for v in changed.values())
        ):
            raise LookupError(f"{cls.__name__} sets more than constants in its constructor")
        self.constants = tuple((k, changed[k]) for k in empty if k in changed)
        """``(REST name, value)`` the constructor sets on every model, in its order."""

    @classmethod
    def of(cls, etype: str) -> _ModelPlan | None:
        """The plan for an event type; None when the SDK's own path is needed (or its internals changed)."""
        model = _server_event_model()
        try:
            root = model._get_discriminator([])
            target = model.__mapping__.get(etype, model)
            if root is None or root._rest_name != "type" or target is model:
                return None
            if target._get_discriminator(["type"]) is not None:  # a second discriminator below `type`
                return None
            return cls(target)
        except Exception:  # an SDK whose internals moved: its own path still works
            return None

    def build(self, payload: dict[str, Any]) -> Any:
        """The model of ``payload`` (a JSON object of this plan's event type)."""
        create = _create_value()
        fields, plain, scalars = self.fields, self.plain, _SCALARS
        data: dict[str, Any] = {}
        for key, value in payload.items():
            if type(value) in scalars and (key in plain or key not in fields):
                data[key] = value
            else:
                data[key] = create(fields.get(key), value)
        for rf in self.defaults:
            if rf._rest_name not in data:
                data[rf._rest_name] = create(rf, rf._default)
        for key, value in self.constants:
            data[key] = value
        model = object.__new__(self.cls)
        model._data = data
        return model


_PLANS: dict[str, _ModelPlan | None] = {}
"""The plan of each event type the SDK knows, once seen (None: the SDK's own path)."""


@functools.cache
def _create_value() -> Callable[[Any, Any], Any]:
    from azure.ai.voicelive._utils.model_base import _create_value

    return _create_value


@functools.cache
def _server_event_mapping() -> Mapping[str, Any]:
    mapping: Mapping[str, Any] = _server_event_model().__mapping__
    return mapping


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

    def plans_build_what_the_sdk_builds() -> bool:
        samples: list[dict[str, Any]] = [
            {"type": "response.audio.delta", "event_id": "e", "response_id": "r", "item_id": "i",
             "output_index": 0, "content_index": 0, "delta": "AAAA", "x": {"y": [1]}},
            {"type": "response.done", "event_id": "e", "response": {"id": "r", "status": "completed",
             "output": [{"id": "i", "type": "message", "content": [{"type": "audio", "transcript": "hi"}]}]}},
        ]  # fmt: skip
        for payload in samples:
            plan = _ModelPlan.of(payload["type"])
            if plan is None:
                return False
            fast, sdk = plan.build(payload), plan.cls(payload)
            if type(fast) is not type(sdk) or list(fast.items()) != list(sdk.items()):
                return False
        return True

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
        "azure.ai.voicelive._utils.model_base: Model._attr_to_rest_field, _RestField, _create_value (private)": (
            plans_build_what_the_sdk_builds
        ),
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
