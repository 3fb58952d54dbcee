"""Half-open requests: a client that does not finish a request's HTTP headers in time is cut off.

aiohttp waits for a request's headers as long as its keep-alive timeout, so a client that opens a socket
and sends nothing, or half a request line, would hold it that long; on a kept-alive connection, so would
half of a second request after a complete first one. A :class:`HandshakeGuard` sits between the
transport and aiohttp's request handler: it passes everything through, follows the HTTP/1.1 framing of
what the client sends, and aborts the connection when a request's headers (up to the blank line that
ends them) have not arrived within the timeout, measured on the emulator's clock:

- the first request's from the moment the connection opens (a client that sends nothing is cut off);
- every later request's from its first byte. An idle kept-alive connection between two requests is
  aiohttp's to close, after :data:`~vlab.protocol_limits.KEEPALIVE_TIMEOUT_S`.

A request body of ``Content-Length`` bytes is skipped. After a request the guard cannot follow further
(:func:`last_request`: a WebSocket upgrade, a chunked body), it only forwards; the emulator makes sure
such a request is the connection's last (an accepted upgrade is a WebSocket; any other answer to such a
request carries ``Connection: close``), so no request after it goes untimed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from multidict import CIMultiDict

from vlab.clock import NS_PER_S, Clock

log = logging.getLogger("vlab.emulator")

_END_OF_HEADERS = b"\r\n\r\n"
_MAX_HEAD_BYTES = 2 * 1024 * 1024
"""Most header bytes the guard keeps to read a request's framing: twice what aiohttp reads (128 header lines
of 8190 bytes, about 1 MiB); aiohttp answers more with 400 and closes the connection."""


def last_request(method: str, headers: CIMultiDict[str] | Any) -> bool:
    """Whether HTTP framing cannot follow this request on its connection, so it must be the connection's last.

    A request to switch protocols (an ``Upgrade`` header, ``upgrade`` in ``Connection``, or ``CONNECT``):
    after it the connection carries WebSocket frames, or nothing if the switch is refused. A body the
    guard does not count (any ``Transfer-Encoding``, or a ``Content-Length`` that is not one number).
    Deliberately broad: the guard stops timing a connection it cannot follow, never one aiohttp would read
    as HTTP.

    Args:
        method: The request method.
        headers: The request headers, case-insensitive (aiohttp's ``request.headers``, or the guard's).
    """
    connection = ",".join(headers.getall("Connection", ())).lower()
    return (
        method.upper() == "CONNECT"
        or "Upgrade" in headers
        or "upgrade" in connection
        or "Transfer-Encoding" in headers
        or _content_length(headers) is None
    )


def _content_length(headers: CIMultiDict[str] | Any) -> int | None:
    """The body length a request declares (0 without one); None when it is not one plain number."""
    values = {value.strip() for value in headers.getall("Content-Length", ())}
    if not values:
        return 0
    if len(values) > 1:
        return None
    (value,) = values
    return int(value) if value.isascii() and value.isdigit() else None


def _parse_head(head: bytes) -> tuple[str, CIMultiDict[str]]:
    """The method and headers of a request's header block (without the blank line that ends it)."""
    lines = head.decode("latin-1").split("\r\n")
    while lines and not lines[0]:  # empty lines before a request line are ignored
        lines.pop(0)
    method = lines[0].split(" ", 1)[0] if lines else ""
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.add(name.strip(), value.strip())
    return method, headers


class HandshakeGuard(asyncio.Protocol):
    """Forwards one connection to ``inner``; aborts it if a request's headers are not in within the timeout.

    Args:
        inner: aiohttp's protocol for the connection (its request handler).
        clock: The clock the timeout runs on.
        timeout_s: Time allowed for a request's headers: the first from the connection, every later one
            from its first byte.
    """

    def __init__(self, inner: Any, clock: Clock, timeout_s: float) -> None:
        self._inner = inner
        self._clock = clock
        self._timeout_ns = round(timeout_s * NS_PER_S)
        self._timer: asyncio.Future[None] | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._head = bytearray()  # the request's header bytes so far
        self._body_left = 0  # bytes of the current request's body still to come
        self._following = True  # False once a request the guard cannot follow has come

    @property
    def waiting(self) -> bool:
        """Whether a request's headers are awaited against the timeout now."""
        return self._timer is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the first request's timer, then hand the connection to aiohttp."""
        self._transport = transport
        self._start_timer()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Follow the requests' framing (timing each one's headers), and pass the bytes on."""
        if self._following:
            self._follow(data)
        self._inner.data_received(data)

    def _follow(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._following:
            if self._body_left:
                skip = min(self._body_left, len(view))
                self._body_left -= skip
                view = view[skip:]
                continue
            if self._timer is None:  # the first byte of a request on a kept-alive connection
                self._start_timer()
            seen = len(self._head)
            self._head += view[: _MAX_HEAD_BYTES + len(_END_OF_HEADERS) - seen]
            end = self._head.find(_END_OF_HEADERS, max(0, seen - len(_END_OF_HEADERS) + 1))
            if end < 0:
                if len(self._head) > _MAX_HEAD_BYTES:
                    self._following = False  # aiohttp refuses such headers and closes the connection
                return
            view = view[end + len(_END_OF_HEADERS) - seen :]
            self._request(bytes(self._head[:end]))

    def _request(self, head: bytes) -> None:
        """A request's headers are in: stop its timer and skip its body."""
        self._stop_timer()
        self._head.clear()
        method, headers = _parse_head(head)
        if last_request(method, headers):
            self._following = False
        else:
            self._body_left = _content_length(headers) or 0

    def eof_received(self) -> bool | None:
        """Pass the end of input on."""
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer and tell aiohttp."""
        self._following = False
        self._stop_timer()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Pass flow control on."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Pass flow control on."""
        self._inner.resume_writing()

    def _start_timer(self) -> None:
        deadline_ns = self._clock.monotonic_ns() + self._timeout_ns
        self._timer = asyncio.ensure_future(self._clock.sleep_until_ns(deadline_ns))
        self._timer.add_done_callback(self._expired)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            timer.cancel()

    def _expired(self, timer: asyncio.Future[None]) -> None:
        if timer.cancelled() or self._timer is not timer:
            return
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            peer = self._transport.get_extra_info("peername")
            log.info("closing a connection from %s: no complete request headers in time", peer)
            self._transport.abort()  # type: ignore[attr-defined]
