"""HTTP/1.1 and WebSocket by hand, for tests that must control every byte a client sends (RFC 9112, RFC 6455)."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

UPGRADE_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


def request(method: str, path: str, headers: str = "", body: bytes = b"") -> bytes:
    """A complete HTTP/1.1 request (``headers``: extra header lines, each ending in CRLF)."""
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}{length}\r\n".encode() + body


def upgrade(path: str, api_key: str) -> bytes:
    """A complete WebSocket upgrade request."""
    return request("GET", path, f"api-key: {api_key}\r\n{UPGRADE_HEADERS}")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: its status, its headers (lower-case names) and its body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := await reader.read(65536):
        data += chunk
    return data


def frame_header(length: int, opcode: int = 0x1) -> bytes:
    """The header of one final, masked client frame of ``length`` payload bytes (the mask included)."""
    if length < 126:
        sized = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        sized = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        sized = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return sized + b"\x00\x00\x00\x00"  # a zero mask: the payload goes as it is


def text_frame(text: str) -> bytes:
    """One complete masked client text frame."""
    payload = text.encode()
    return frame_header(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def close_code_for_a_frame_of(emulator: Any, size: int) -> int:
    """The close code the emulator answers a text frame of ``size`` bytes with, read off a raw socket.

    Only the frame's header is sent: the emulator refuses the frame by its declared length, before any of
    its payload, so its close frame arrives whole (were the payload still on its way, the closing socket
    could reset the connection first and lose it).
    """
    reader, writer = await asyncio.open_connection(emulator.host, emulator.port)
    try:
        writer.write(upgrade("/voice-live/realtime", emulator.api_key))
        assert (await read_response(reader))[0] == 101
        assert json.loads((await read_frame(reader))[1])["type"] == "session.created"
        writer.write(frame_header(size))
        opcode, payload = await asyncio.wait_for(read_frame(reader), 30)
        assert opcode == 0x8, (opcode, payload)  # a close frame
        return int.from_bytes(payload[:2], "big")
    finally:
        writer.close()
