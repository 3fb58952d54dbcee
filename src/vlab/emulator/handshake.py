"""Half-open connections: a client that does not finish its HTTP request headers in time is cut off.

aiohttp waits for a request's headers as long as its keep-alive timeout (an hour), so a client that
opens a socket and sends nothing, or half a request line, would hold it that long. A
:class:`HandshakeGuard` sits between the transport and aiohttp's request handler: it passes everything
through, and aborts the connection when the first request's headers (up to the blank line that ends
them) have not arrived within the timeout, measured on the emulator's clock. Once the headers are in,
the WebSocket upgrade follows at once and the guard only forwards.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vlab.clock import Clock

log = logging.getLogger("vlab.emulator")

_END_OF_HEADERS = b"\r\n\r\n"
_NS_PER_S = 1_000_000_000


class HandshakeGuard(asyncio.Protocol):
    """Forwards one connection to ``inner``; aborts it if its request headers are not in within the timeout.

    Args:
        inner: aiohttp's protocol for the connection (its request handler).
        clock: The clock the timeout runs on.
        timeout_s: Time allowed from the connection to the end of the first request's headers.
    """

    def __init__(self, inner: Any, clock: Clock, timeout_s: float) -> None:
        self._inner = inner
        self._clock = clock
        self._timeout_ns = round(timeout_s * _NS_PER_S)
        self._timer: asyncio.Future[None] | None = None
        self._tail = b""  # the last bytes received, for a blank line split across reads
        self._transport: asyncio.BaseTransport | None = None

    @property
    def waiting(self) -> bool:
        """Whether the headers are still awaited."""
        return self._timer is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the timer, then hand the connection to aiohttp."""
        self._transport = transport
        deadline_ns = self._clock.monotonic_ns() + self._timeout_ns
        self._timer = asyncio.ensure_future(self._clock.sleep_until_ns(deadline_ns))
        self._timer.add_done_callback(self._expired)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Pass the bytes on; the end of the headers stops the timer."""
        if self._timer is not None:  # only the first request's headers: small
            seen = self._tail + data
            if _END_OF_HEADERS in seen:
                self._stop_timer()
            else:
                self._tail = seen[-(len(_END_OF_HEADERS) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Pass the end of input on."""
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer and tell aiohttp."""
        self._stop_timer()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Pass flow control on."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Pass flow control on."""
        self._inner.resume_writing()

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
