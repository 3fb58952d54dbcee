"""Helpers for testing code that uses vlab: a fast emulator, a scripted server, spoken prompts, event collection.

These are the helpers vlab's own test-suite uses; import them in yours::

    from vlab.testing import fast_emulator, spoken_prompt

    async with fast_emulator() as emu:
        ...
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vlab import protocol
from vlab.audio.pcm import float_to_pcm16, silence
from vlab.audio.synth import synthesize
from vlab.emulator import Emulator
from vlab.errors import check_keywords

if TYPE_CHECKING:
    from aiohttp import web


@dataclass(frozen=True, slots=True)
class Prompt:
    """A synthesized spoken prompt with exact labels."""

    pcm: bytes
    """PCM16 mono audio."""
    sample_rate: int
    """Sample rate in Hz."""
    speech_start_ms: float
    """First audible sample, ms from the start of the audio."""
    speech_end_ms: float
    """Last audible sample, ms from the start of the audio."""
    text: str
    """What is said."""

    @property
    def duration_ms(self) -> float:
        """Total length in ms."""
        return len(self.pcm) / (2 * self.sample_rate) * 1000.0


def spoken_prompt(
    text: str = "What is the weather like in Seattle today?",
    *,
    sample_rate: int = protocol.PCM16_SAMPLE_RATE_HZ,
    lead_ms: float = 500.0,
    trail_ms: float = 1500.0,
    voice: str = "en-us",
) -> Prompt:
    """Speak ``text`` offline (eSpeak NG) between silences, and label where the speech really is.

    The labels come from the samples: the first and last sample above -50 dBFS.
    """
    speech = synthesize(text, voice=voice, sample_rate=sample_rate)
    samples = speech.samples
    loud = np.flatnonzero(np.abs(samples) > 10 ** (-50 / 20))
    first, last = (int(loud[0]), int(loud[-1])) if loud.size else (0, 0)
    ms = 1000.0 / sample_rate
    return Prompt(
        pcm=silence(lead_ms, sample_rate) + float_to_pcm16(samples) + silence(trail_ms, sample_rate),
        sample_rate=sample_rate,
        speech_start_ms=lead_ms + first * ms,
        speech_end_ms=lead_ms + (last + 1) * ms,
        text=text,
    )


class StaticTokenCredential:
    """An async token credential that always hands out the same token (for Entra ID code paths).

    The emulator accepts it when started with ``Emulator(tokens=[token])``.
    """

    def __init__(self, token: str) -> None:
        self._token = token
        self.requested_scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """Return the token (expiring far in the future) and remember the scopes asked for."""
        from azure.core.credentials import AccessToken

        self.requested_scopes.append(scopes)
        return AccessToken(self._token, 4_000_000_000)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "StaticTokenCredential(****)"


class EmulatorTokenCredential:
    """An async token credential that signs in to an emulator's :class:`~vlab.emulator.identity.Identity`.

    Like ``azure-identity``'s credentials it keeps its token and gets a new one shortly before it
    expires, on the identity's clock (so a test steps through token lifetimes on virtual time).

    Args:
        identity: The emulator's identity (``emu.identity``).
        principal: Who signs in (give it the role with ``identity.grant(principal)``).
        refresh_margin_s: Get a new token this long before the current one expires.
    """

    def __init__(self, identity: Any, principal: str, *, refresh_margin_s: float = 300.0) -> None:
        self._identity = identity
        self._principal = principal
        self._margin_s = refresh_margin_s
        self._token: Any = None
        self.refreshes = 0
        """How many tokens this credential has fetched."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """The current token, or a new one when it is about to expire."""
        from azure.core.credentials import AccessToken

        if self._token is None or self._token.expires_on - self._margin_s <= self._identity.now_s():
            self._token = self._identity.issue(self._principal)
            self.refreshes += 1
        return AccessToken(self._token.token, self._token.expires_on)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> EmulatorTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"EmulatorTokenCredential({self._principal!r}, ****)"


@asynccontextmanager
async def fast_emulator(**options: Any) -> AsyncIterator[Emulator]:
    """An emulator running as fast as possible with no modelled latency (override with ``Emulator``'s keywords).

    Raises:
        ConfigError: An option ``Emulator`` does not take (the error names the one meant).
    """
    check_keywords("fast_emulator", Emulator, options)
    options.setdefault("speed", math.inf)
    options.setdefault("latency", "instant")
    async with Emulator(**options) as emu:
        yield emu


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp application on loopback at a free port while the block runs; its base URL.

    For stand-ins of the HTTP servers a session reaches, such as an MCP server (the emulator calls it:
    ``Emulator(mcp_redirects=...)``). The URL is ``http://127.0.0.1:PORT``, without a trailing slash.
    """
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def scripted_server(
    script: Callable[[Any], Awaitable[None]], *, path: str = protocol.ROUTES[0]
) -> AsyncIterator[str]:
    """A WebSocket server on loopback that plays ``script`` to each connection (no emulator behind it).

    For testing a client against a broken or hostile server, or one that is not Voice Live. Any credential is accepted. ``script(ws)`` gets the prepared ``aiohttp.web.WebSocketResponse`` and
    sends what it likes; the connection closes when it returns. Yields the endpoint to give the SDK or
    :class:`vlab.Session`.
    """
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        try:
            await script(ws)
        except ConnectionError:  # the client went away first: the script ends there
            pass
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get(path, handle)
    async with serving(app) as url:
        yield url


async def collect_events(
    conn: Any,
    until: Callable[[Any], bool] | str = protocol.RESPONSE_DONE,
    *,
    timeout_s: float = 20.0,
    count: int = 1,
) -> list[Any]:
    """Receive events from ``conn`` (anything with ``async recv()``) until ``until`` matched ``count`` times.

    ``until`` is an event type name or a predicate on the event.

    Raises:
        TimeoutError: The events did not arrive in time; the message lists what did.
    """
    match = (lambda ev: ev.type == until) if isinstance(until, str) else until
    seen: list[Any] = []

    async def read() -> None:
        hits = 0
        while True:
            event = await conn.recv()
            seen.append(event)
            if match(event):
                hits += 1
                if hits >= count:
                    return

    try:
        await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        got = [getattr(e, "type", "?") for e in seen]
        raise TimeoutError(f"no {until!r} within {timeout_s} s; received {got}") from None
    return seen


async def until_idle(conn: Any, timeout_s: float = 20.0) -> list[Any]:
    """Every event an emulator sends ``conn`` until it has nothing left to do (then nothing more comes).

    It ends the connection's timeline (``session.metadata["vlab.timeline"] = "ended"``): the emulator
    answers that ``session.update`` once everything the audio so far caused is done, so "nothing else
    arrives" is an event to wait for, not a quiet period a loaded machine can stretch. Audio appended
    afterwards is decided on the same timeline. Emulator only (the service ignores the key).

    Returns:
        The events before that ``session.updated``.
    """
    from azure.ai.voicelive.models import RequestSession

    marker = f"until_idle-{id(conn)}-{len(_BARRIERS)}"
    _BARRIERS.append(marker)
    metadata = {protocol.TIMELINE_METADATA_KEY: protocol.TIMELINE_ENDED, "vlab.testing.barrier": marker}
    await conn.session.update(session=RequestSession(metadata=metadata))

    def answered(event: Any) -> bool:
        if event.type != protocol.SESSION_UPDATED:
            return False
        return (event.session.get("metadata") or {}).get("vlab.testing.barrier") == marker

    events = await collect_events(conn, answered, timeout_s=timeout_s)
    return events[:-1]


_BARRIERS: list[str] = []


def types_of(events: Iterable[Any]) -> list[str]:
    """Event types, in order."""
    return [str(e.type) for e in events]


SDK_SAMPLE_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "type": "function",
        "name": "get_current_time",
        "description": "Get the current time",
        "parameters": {
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "The timezone to get the current time for, e.g., 'UTC', 'local'",
                }
            },
            "required": [],
        },
    },
    {
        "type": "function",
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {
                    "type": "string",
                    "description": "The city and state, e.g., 'San Francisco, CA'",
                },
                "unit": {
                    "type": "string",
                    "enum": ["celsius", "fahrenheit"],
                    "description": "The unit of temperature to use (celsius or fahrenheit)",
                },
            },
            "required": ["location"],
        },
    },
)
"""The two function tools of Microsoft's function-calling sample (``azure-ai-voicelive``
``samples/async_function_calling_sample.py``), as ``session.tools`` wire objects: to test tool calls."""
