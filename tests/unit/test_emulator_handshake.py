"""The handshake guard's reading of HTTP/1.1 framing, byte by byte, on a virtual clock (no socket)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from multidict import CIMultiDict

from vlab.clock import VirtualClock
from vlab.emulator.handshake import HandshakeGuard, _parse_head, last_request

TIMEOUT_S = 10.0


def _headers(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


@pytest.mark.parametrize(
    ("method", "headers", "last"),
    [
        ("GET", (), False),
        ("POST", (("Content-Length", "5"),), False),
        ("POST", (("Content-Length", " 5 "), ("content-length", "5")), False),  # the same length twice
        ("POST", (("Content-Length", "5"), ("Content-Length", "6")), True),  # two lengths: cannot follow
        ("POST", (("Content-Length", "+5"),), True),
        ("POST", (("Content-Length", "\uff15"),), True),  # a digit, but not an ASCII one
        ("POST", (("Transfer-Encoding", "chunked"),), True),
        ("GET", (("Upgrade", "websocket"),), True),
        ("GET", (("Connection", "keep-alive"), ("Connection", "Upgrade")), True),
        ("connect", (), True),
    ],
)
def test_a_request_the_guard_cannot_follow_is_the_connections_last(method, headers, last) -> None:
    assert last_request(method, _headers(*headers)) is last


def test_the_head_gives_the_method_and_every_header_line() -> None:
    method, headers = _parse_head(
        b"\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 3\r\nno colon\r\nUpgrade:  websocket "
    )
    assert method == "POST" and list(headers.items()) == [("Content-Length", "3"), ("Upgrade", "websocket")]
    assert _parse_head(b"") == ("", CIMultiDict())


class _Inner:
    """aiohttp's side: what it was handed."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class _Transport:
    def __init__(self) -> None:
        self.aborted = asyncio.Event()

    def is_closing(self) -> bool:
        return self.aborted.is_set()

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5)

    def abort(self) -> None:
        self.aborted.set()


async def _guard() -> tuple[HandshakeGuard, _Inner, _Transport, VirtualClock]:
    clock, inner, transport = VirtualClock(), _Inner(), _Transport()
    guard = HandshakeGuard(inner, clock, TIMEOUT_S)
    guard.connection_made(transport)  # type: ignore[arg-type]
    return guard, inner, transport, clock


async def test_each_request_is_timed_from_its_first_byte_and_a_body_is_skipped_by_its_length() -> None:
    guard, inner, transport, clock = await _guard()
    assert guard.waiting  # the first request: from the connection
    guard.data_received(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not guard.waiting  # kept alive, idle: not timed
    guard.data_received(b"P")
    assert guard.waiting  # a byte of the next request starts its timer
    guard.data_received(b"OST /health HTTP/1.1\r\nContent-Length: 9\r\n\r\nab\r\n\r\n")
    assert not guard.waiting  # the headers are in; 6 of the 9 body bytes, which hold an end of headers
    guard.data_received(b"GET")  # the body's last 3 bytes: still no request
    assert not guard.waiting
    guard.data_received(b"G")
    assert guard.waiting
    assert inner.data.endswith(b"ab\r\n\r\nGETG")  # every byte passed on as it came
    await clock.wait_for_sleepers()  # the last request's timer sleeps
    clock.advance_s(TIMEOUT_S - 0.001)
    assert clock.sleepers == 1 and not transport.aborted.is_set()
    clock.advance_s(0.001)
    await asyncio.wait_for(transport.aborted.wait(), 5)
    assert not guard.waiting


async def test_empty_lines_before_a_request_end_no_request_and_do_not_stall_it() -> None:
    guard, _, _, clock = await _guard()
    guard.data_received(b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not guard.waiting and clock.sleepers == 0


@pytest.mark.parametrize(
    "switch",
    [b"GET /voice-live/realtime HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", b"CONNECT h:443 HTTP/1.1\r\n\r\n"],
    ids=["upgrade", "connect"],
)
async def test_after_a_protocol_switch_the_guard_only_forwards(switch: bytes) -> None:
    guard, inner, _, clock = await _guard()
    guard.data_received(switch + b"\x81\x05hello")
    guard.data_received(b"GET / HTTP/1.1\r\n")  # WebSocket bytes that look like a request: not timed
    assert not guard.waiting and clock.sleepers == 0  # nothing left that could cut it off
    assert inner.data.endswith(b"hello" + b"GET / HTTP/1.1\r\n")


async def test_a_timer_stopped_in_time_aborts_nothing() -> None:
    guard, inner, transport, clock = await _guard()
    await clock.wait_for_sleepers()  # the first request's timer sleeps
    clock.advance_s(TIMEOUT_S - 0.001)
    guard.data_received(b"GET / HTTP/1.1\r\n\r\n")  # its headers, a millisecond before the deadline
    assert clock.sleepers == 0 and not guard.waiting  # its timer is gone
    clock.advance_s(TIMEOUT_S)  # well past the stopped timer's deadline
    guard.data_received(b"G")  # the next request's timer ...
    await clock.wait_for_sleepers()  # ... sleeps: the loop ran, and with it the stopped timer's end
    assert guard.waiting and not transport.aborted.is_set()
    guard.connection_lost(None)
    assert inner.lost and not guard.waiting and not transport.aborted.is_set()


@pytest.mark.parametrize("cut", [1, 2, 3])
async def test_an_end_of_headers_split_across_reads_ends_the_request(cut: int) -> None:
    guard, inner, transport, clock = await _guard()
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    split = len(request) - len(b"\r\n\r\n") + cut  # the first read ends `cut` bytes into the \r\n\r\n
    await clock.wait_for_sleepers()
    guard.data_received(request[:split])
    assert guard.waiting
    guard.data_received(request[split:])
    assert not guard.waiting and clock.sleepers == 0  # the headers are in: its timer is stopped
    guard.data_received(b"G")  # the framing goes on: the next request is timed from its first byte
    assert guard.waiting
    assert inner.data == request + b"G" and not transport.aborted.is_set()
    guard.connection_lost(None)
