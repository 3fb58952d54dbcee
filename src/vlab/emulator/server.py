"""The emulator's aiohttp server: the route the SDK builds, authentication, lifecycle.

``GET /voice-live/realtime?api-version=…&model=…`` (also ``/voice-agent/realtime``) upgrades to a plain
WebSocket (no subprotocol, no compression, pings answered). Client frames are read up to the service's
limit (:data:`~vlab.protocol_limits.MAX_CLIENT_FRAME_BYTES`: one append of 15 MiB of audio); a larger
frame closes the connection with code 1009. A wrong or missing credential is refused with HTTP 401
*before* the upgrade, which the SDK reports as a connection error; a token of the emulator's
:class:`~vlab.emulator.identity.Identity` whose principal lacks the role with 403; a connection over
``max_sessions`` (sessions whose WebSocket is open; :attr:`Emulator.peak_sessions` is the most ever open
at once) or under a ``rate_limit`` fault with 429 ``rate_limit_exceeded``. The identity's OAuth
endpoints are served on the same port (over TLS with ``ssl_context``). A client that has not sent its
request's headers within the handshake timeout is disconnected (:mod:`vlab.emulator.handshake`), on a
kept-alive connection too; an idle kept-alive connection is closed after the keep-alive timeout. A request
the handshake guard cannot follow (a WebSocket upgrade, a chunked body) is its connection's last: a
refused upgrade is answered with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from vlab import protocol
from vlab.audio.pacing import parse_speed
from vlab.audio.silero_worker import SileroWorker
from vlab.audio.vad import SileroModel, SpeechModel
from vlab.clock import NS_PER_S, Clock, SystemClock
from vlab.emulator.asr import Recognizer, default_recognizer
from vlab.emulator.cassette import Cassette, CassetteConnection
from vlab.emulator.config import EmulatorConfig
from vlab.emulator.connection import EmulatorConnection
from vlab.emulator.faults import Fault, FaultsLike, as_faults
from vlab.emulator.handshake import HandshakeGuard, last_request
from vlab.emulator.identity import Identity, Refusal
from vlab.emulator.latency import LatencyModel, resolve
from vlab.emulator.refusals import Refusals
from vlab.emulator.replies import Script
from vlab.emulator.trace import Trace
from vlab.errors import (
    AsyncWithOnly,
    ConfigError,
    UsageError,
    VlabWarning,
    check_count,
    check_seconds,
    warn_user,
)
from vlab.net import is_loopback
from vlab.protocol_limits import HANDSHAKE_TIMEOUT_S, KEEPALIVE_TIMEOUT_S, MAX_CLIENT_FRAME_BYTES

log = logging.getLogger("vlab.emulator")

_MAX_PORT = 65535
STOP_GRACE_S = 1.0
"""How long ``Emulator.stop()`` lets its sessions end: for their clients to answer the WebSocket close (on the
emulator's clock), then for their handlers to finish. A session still held after it (a ``delay`` fault holding a
send, a client that does not answer) is cut off."""


@dataclass(frozen=True, slots=True)
class Shard:
    """This emulator is process ``index`` of ``count`` that serve one port (``vlab emulator --processes``).

    Each binds the port with ``SO_REUSEPORT``, so the kernel spreads new connections across them, and
    numbers its connections ``index + 1``, ``index + 1 + count``, … so no two processes draw the same
    latencies (the connection number seeds them).
    """

    index: int
    """This process's number, from 0."""
    count: int
    """How many processes serve the port."""

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ConfigError(f"a shard is one of count >= 1 processes (0 <= index < count), got {self}.")


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input (it is simply wrong)."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


_DENIED = Refusal(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")


def _refusal(request: web.Request, config: EmulatorConfig) -> Refusal | None:
    """Why the request's credential is refused (None: it is accepted)."""
    keys = request.headers.getall("api-key", [])
    if keys:
        # One key, non-blank; several api-key headers are ambiguous and refused.
        ok = (
            len(keys) == 1
            and bool(keys[0].strip())
            and (config.api_key is None or _same(keys[0], config.api_key))
        )
        return None if ok else _DENIED
    auths = request.headers.getall("Authorization", [])
    if len(auths) != 1:
        return _DENIED
    scheme, _, token = auths[0].partition(" ")
    if not (scheme.lower() == "bearer" and token and token == token.strip()):
        return _DENIED
    if any(_same(token, t) for t in config.tokens):
        return None
    return config.identity.check(token) if config.identity is not None else _DENIED


def _throttled(state: dict[str, Any], config: EmulatorConfig) -> web.Response | None:
    """The 429 for a connection over the session limit or under a ``rate_limit`` fault (None: let it in)."""
    if state["rate_limited"]:
        retry_after_s = state["rate_limited"].pop(0)
        message = "Requests to this resource have exceeded the rate limit of your current pricing tier."
    elif config.max_sessions is not None and _open(state) + state["opening"] >= config.max_sessions:
        retry_after_s = 1.0
        message = f"Too many concurrent sessions for this resource (the limit is {config.max_sessions})."
    else:
        return None
    return web.json_response(
        {"error": {"code": "rate_limit_exceeded", "message": message + " Retry later."}},
        status=429,
        headers={"Retry-After": f"{retry_after_s:g}"},
    )


async def _realtime(request: web.Request) -> web.StreamResponse:
    config: EmulatorConfig = request.app[CONFIG]
    refusal = _refusal(request, config)
    if refusal is not None:
        return refusal.response()
    throttled = _throttled(request.app[STATE], config)
    if throttled is not None:
        return throttled
    # aiohttp refuses a message of max_msg_size bytes or more: + 1 accepts the largest frame itself.
    ws = web.WebSocketResponse(max_msg_size=MAX_CLIENT_FRAME_BYTES + 1, autoping=True, compress=False)
    state = request.app[STATE]
    state["opening"] += 1  # counts against max_sessions while the upgrade completes
    try:
        await ws.prepare(request)
    finally:
        state["opening"] -= 1
    state["index"] += state["shard"].count  # each process numbers its own connections apart
    serving = asyncio.current_task()
    state["serving"].add(serving)
    try:
        return await _serve(ws, request, config, state)
    finally:
        state["serving"].discard(serving)


async def _serve(
    ws: web.WebSocketResponse, request: web.Request, config: EmulatorConfig, state: dict[str, Any]
) -> web.WebSocketResponse:
    """Run one opened WebSocket's session (live, or a cassette's replay) until it closes."""
    if config.cassette is not None:
        replay = CassetteConnection(
            ws, config.cassette, speed=config.speed, clock=config.clock, trace=config.trace
        )
        state["replays"].add(replay)
        _count_open(state)
        try:
            await replay.run()
        finally:
            state["replays"].discard(replay)
        return ws
    conn = EmulatorConnection(
        ws,
        config,
        model=request.query.get("model", protocol.DEFAULT_MODEL),
        api_version=request.query.get("api-version", protocol.DEFAULT_API_VERSION),
        index=state["index"],
        transport=request.transport,
    )
    conn.faults.arm(list(config.faults))
    state["connections"].add(conn)
    _count_open(state)
    try:
        await conn.run()
    finally:
        state["connections"].discard(conn)
    return ws


def _open(state: dict[str, Any]) -> int:
    """Sessions open now (live and cassette replays).

    A session whose WebSocket is closed no longer counts, while the emulator still cleans up after it.
    """
    return sum(not conn.ws.closed for conn in (*state["connections"], *state["replays"]))


def _count_open(state: dict[str, Any]) -> None:
    """Note a session that just opened in the most ever open at once."""
    state["peak"] = max(state["peak"], _open(state))


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "status": "ok",
            "connections": _open(state),
            "peak_connections": state["peak"],
            "process": state["shard"].index,
            "processes": state["shard"].count,
        }
    )


CONFIG = web.AppKey("config", EmulatorConfig)
STATE = web.AppKey("state", dict)


def _rate_limits(faults: Iterable[Fault]) -> list[float]:
    """The ``Retry-After`` of each connection attempt that ``rate_limit`` faults will refuse, in order."""
    return [f.retry_after_s for f in faults if f.kind == "rate_limit" for _ in range(f.n)]


class EmulatorExposedWarning(VlabWarning):
    """The emulator listens on a non-loopback interface without an explicit key."""


@web.middleware
async def _close_after_last_request(request: web.Request, handler: Any) -> web.StreamResponse:
    """End the connection after a request the handshake guard stops following, unless it became a WebSocket.

    Otherwise a client could send a second request, untimed, after a refused upgrade.
    """
    if not last_request(request.method, request.headers):
        response: web.StreamResponse = await handler(request)
        return response
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.force_close()
        raise
    if response.status != 101:  # not switched to a WebSocket
        response.force_close()
    return response


async def _cancel(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel those of ``tasks`` still running, and wait for their cleanup."""
    running = [task for task in tasks if not task.done()]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def _forget_app() -> None:
    """Let go of stopped emulators' applications, which aiohttp's middleware cache keeps alive.

    aiohttp caches each route's handler wrapped in the middlewares per application (up to 1 024 of them,
    ``web_app._cached_build_middleware``), and so keeps every application it served, with the emulator's
    config, its trace entries and the event loop it ran on: a process that starts an emulator per sweep
    cell grew by about 0.1 MB per cell. Clearing the cache costs running applications one rebuild of
    their wrapped handler at their next request.
    """
    from aiohttp import web_app

    cache = getattr(web_app, "_cached_build_middleware", None)
    if cache is not None and hasattr(cache, "cache_clear"):
        cache.cache_clear()


def make_app(config: EmulatorConfig, shard: Shard | None = None) -> web.Application:
    """Build the aiohttp application for one emulator (one ``shard`` of several processes, if given)."""
    shard = shard or Shard(0, 1)
    app = web.Application(middlewares=[_close_after_last_request])
    app[CONFIG] = config
    app[STATE] = {
        "index": shard.index + 1 - shard.count,  # the number of the connection before the first
        "shard": shard,
        "opening": 0,
        "connections": set(),
        "replays": set(),
        "serving": set(),  # the handler tasks of the open WebSockets (Emulator.stop ends them)
        "peak": 0,
        "rate_limited": _rate_limits(config.faults),
    }
    for route in protocol.ROUTES:
        app.router.add_get(route, _realtime)
    app.router.add_get("/health", _health)
    if config.identity is not None:
        config.identity.add_routes(app)

    async def close_connections(app: web.Application) -> None:
        """Close every session's WebSocket at once and let the sessions end, up to :data:`STOP_GRACE_S`.

        Then cut off what is still held: a close its client has not answered (aiohttp drops the socket), a
        session a step holds (a ``delay`` fault's send).
        """
        state = app[STATE]
        closes = [asyncio.ensure_future(c.ws.close()) for c in [*state["connections"], *state["replays"]]]
        sessions = [*closes, *state["serving"]]
        if sessions:
            clock = app[CONFIG].clock
            grace = asyncio.ensure_future(
                clock.sleep_until_ns(clock.monotonic_ns() + round(STOP_GRACE_S * NS_PER_S))
            )
            ended: asyncio.Future[Any] = asyncio.gather(*sessions, return_exceptions=True)
            await asyncio.wait([grace, ended], return_when=asyncio.FIRST_COMPLETED)
            await _cancel([grace, *sessions])

    app.on_shutdown.append(close_connections)
    return app


def _redirects(redirects: Mapping[str, str]) -> dict[str, str]:
    """``mcp_redirects``, checked: each an http(s) URL to another."""
    for source, target in redirects.items():
        for url in (source, target):
            if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                raise ConfigError(
                    f"mcp_redirects maps an MCP server's URL to another, both http:// or https:// URLs; "
                    f"got {source!r} -> {target!r}."
                )
    return dict(redirects)


def _check_port_free(host: str, port: int) -> None:
    """Raise ``OSError(EADDRINUSE)`` if something listens on ``host:port``.

    The probe binds as asyncio does but without ``SO_REUSEPORT``, which would let a second emulator join
    the port of the first.
    """
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)


class Emulator(AsyncWithOnly):
    """An offline Voice Live service on this machine, for the unmodified SDK.

    Use as ``async with Emulator() as emu:`` and connect the SDK to ``emu.endpoint`` with
    ``AzureKeyCredential(emu.api_key)``.

    Args:
        host: Interface to bind; keep 127.0.0.1 unless other machines must connect.
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        api_key: Key clients must send; None generates a random one.
        tokens: Bearer tokens to accept (for Entra ID style clients).
        speed: Run delays and output pacing N× faster; ``math.inf`` (or ``"max"``) = as fast as possible.
        latency: A :class:`LatencyModel`, a preset name (``instant``, ``typical``, ``slow-network``) or the
            path of a ``latency.json`` fitted by ``vlab calibrate`` (``docs/calibration.md``).
        seed: Seed of the latency jitter.
        trace: Keep a ground-truth trace in memory (:attr:`trace`); a path also appends it to that JSONL file;
            a :class:`~vlab.emulator.trace.Trace` is used as given (e.g. ``Trace(path, keep=False)`` for soaks).
        vad_model_factory: Speech-probability model for the server VAD (Silero by default).
        script: A JSON dialogue script (path or :class:`Script`) tried before the built-in replies.
        faults: Faults armed on every new connection: :class:`~vlab.emulator.faults.Fault` objects or their
            text form (``"drop_after:response.audio.delta:3"``), alone or in a list.
        recognizer_factory: Speech recognizer for the user's audio (PocketSphinx by default).
        hear_audio: Read each user audio turn's words for the reply even without input transcription, as
            the service's model hears them (about a quarter of the turn's length in CPU); False answers
            "I heard N seconds of speech" instead.
        clock: The wall clock that maps simulated time onto real time, times faults, the handshake
            timeout and the grace ``stop()`` gives open sessions (:data:`STOP_GRACE_S`), and dates each
            session's ``expires_at`` (inject a
            :class:`~vlab.clock.ManualClock` or :class:`~vlab.clock.VirtualClock` in tests).
        identity: The emulator's Entra ID (default: a new one on ``clock``): its tokens are accepted
            while their principal has the role, and its token endpoint is served (see :attr:`identity`).
        max_sessions: Concurrent sessions allowed (None: no limit); one more gets HTTP 429.
        ssl_context: Serve over TLS (``https://`` endpoint) with this server context, e.g. from
            :func:`vlab.emulator.tls.throwaway_tls`.
        handshake_timeout_s: Time a connection has to send a request's HTTP headers, in s: the first
            request's from the connection, a later one's from its first byte.
        keepalive_timeout_s: Time an idle HTTP connection is kept open between two requests, in s.
        cassette: A recorded session (:func:`vlab.cassette.load_cassette`) that every connection replays
            instead of emulating; a client that diverges from it gets an ``error`` (``docs/calibration.md``).
        refuse: Values ``session.update`` refuses, as a resource that does not serve them does, e.g.
            ``["voice:alloy", "model:gpt-nope"]`` (:mod:`vlab.emulator.refusals`; default: none, every
            model and voice is accepted).
        mcp_redirects: MCP server URLs to call at another address, e.g. a published sample's
            ``{"https://mcp.deepwiki.com/mcp": "http://127.0.0.1:9000/mcp"}``: the session's MCP servers are
            called by the emulator, as by the service (:mod:`vlab.emulator.mcp`), and one on the internet can
            be stood in for by a local one.
        shard: Serve as one of several processes on one port (:class:`Shard`, Linux's ``SO_REUSEPORT``);
            ``max_sessions`` and ``rate_limit`` faults then count this process's connections only.

    Raises:
        ConfigError: ``port`` is no TCP port, ``speed`` is not a number > 0 or ``"max"``, ``latency`` names
            no preset or fitted model, a refusal or an MCP redirect is malformed, or a timeout is not a
            number of seconds > 0;
            from :meth:`start`: the port is in use.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        tokens: Iterable[str] = (),
        speed: float | str = 1.0,
        latency: LatencyModel | str | os.PathLike[str] = "typical",
        seed: int = 0,
        trace: bool | str | Any = False,
        vad_model_factory: Callable[[], SpeechModel] = SileroModel,
        script: str | os.PathLike[str] | Script | None = None,
        faults: FaultsLike = (),
        recognizer_factory: Callable[[], Recognizer] = default_recognizer,
        hear_audio: bool = True,
        clock: Clock | None = None,
        identity: Identity | None = None,
        max_sessions: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_S,
        cassette: Cassette | None = None,
        refuse: Iterable[str] = (),
        mcp_redirects: Mapping[str, str] | None = None,
        shard: Shard | None = None,
    ) -> None:
        if max_sessions is not None:
            check_count("max_sessions", max_sessions)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= _MAX_PORT:
            raise ConfigError(
                f"port must be a TCP port, 0 to {_MAX_PORT} (0 picks a free one), got {port!r}."
            )
        for name, timeout_s in (
            ("handshake_timeout_s", handshake_timeout_s),
            ("keepalive_timeout_s", keepalive_timeout_s),
        ):
            check_seconds(name, timeout_s)
        speed_value = parse_speed(speed)
        model = resolve(latency, seed=seed)
        self.host = host
        self.port = port
        self.explicit_key = bool(api_key)
        self.api_key = api_key or "emu-" + secrets.token_urlsafe(18)
        self.ssl_context = ssl_context
        clock = clock or SystemClock()
        self.identity = identity or Identity(clock=clock)
        """Issues bearer tokens this emulator accepts: ``emu.identity.grant("me")``, then
        ``emu.identity.issue("me")`` (see :class:`~vlab.emulator.identity.Identity`)."""
        self.trace: Trace | None = None
        if isinstance(trace, Trace):
            self.trace = trace
        elif trace:
            self.trace = Trace(None if trace is True else trace)
        self.config = EmulatorConfig(
            api_key=self.api_key,
            tokens=frozenset(tokens),
            speed=speed_value,
            latency=model,
            trace=self.trace,
            vad_model_factory=vad_model_factory,
            recognizer_factory=recognizer_factory,
            hear_audio=hear_audio,
            script=script if isinstance(script, Script) or script is None else Script.load(script),
            faults=as_faults(faults),
            clock=clock,
            identity=self.identity,
            max_sessions=max_sessions,
            cassette=cassette,
            refusals=Refusals.parse(refuse),
            mcp_redirects=_redirects(mcp_redirects or {}),
        )
        self.handshake_timeout_s = handshake_timeout_s
        self.keepalive_timeout_s = keepalive_timeout_s
        self.shard = shard
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self._listener: asyncio.Server | None = None

    @property
    def endpoint(self) -> str:
        """HTTP endpoint to give the SDK (``http://host:port``, or ``https://`` when serving TLS)."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running; use 'async with Emulator() as emu:'")
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The ``(host, port)`` of each socket the emulator listens on (empty when stopped)."""
        sockets = self._listener.sockets if self._listener is not None else ()
        return [tuple(sock.getsockname()[:2]) for sock in sockets]

    @property
    def open_sessions(self) -> int:
        """Sessions open now (0 when stopped)."""
        return _open(self._app[STATE]) if self._app is not None else 0

    @property
    def peak_sessions(self) -> int:
        """The most sessions ever open at once since the emulator started (what ``max_sessions`` caps)."""
        return int(self._app[STATE]["peak"]) if self._app is not None else 0

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self._runner else "stopped"
        return f"Emulator({state}, speed={self.config.speed}, latency={self.config.latency.name!r})"

    async def start(self) -> Emulator:
        """Bind and serve; returns self.

        Raises:
            ConfigError: The port is in use, or the host is not an address of this machine.
            UsageError: It is serving already.
        """
        if self._runner is not None:
            raise UsageError(
                f"this Emulator is serving already, at {self.endpoint}: stop it first (or leave its "
                "`async with`), or start another Emulator"
            )
        if self.config.vad_model_factory is SileroModel:
            SileroWorker.shared().start()  # loads the model in its own process while we bind
        self._app = make_app(self.config, self.shard)
        self._runner = web.AppRunner(
            self._app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=STOP_GRACE_S,
            keepalive_timeout=self.keepalive_timeout_s,
        )
        await self._runner.setup()
        handler_factory = self._runner.server
        assert handler_factory is not None
        clock, timeout_s = self.config.clock, self.handshake_timeout_s
        try:
            if self.shard is not None and self.shard.index == 0 and self.port:
                _check_port_free(self.host, self.port)  # SO_REUSEPORT would share it with another emulator
            self._listener = await asyncio.get_running_loop().create_server(
                lambda: HandshakeGuard(handler_factory(), clock, timeout_s),
                self.host,
                self.port,
                ssl=self.ssl_context,
                reuse_port=self.shard is not None,
            )
        except OSError as exc:
            runner, self._runner, self._app = self._runner, None, None
            await runner.cleanup()
            if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
                why = "no such host" if isinstance(exc, socket.gaierror) else "not an address of this machine"
                raise ConfigError(
                    f"cannot listen on {self.host!r} ({why}): give an address of this machine, 127.0.0.1 "
                    "(this machine only, the default) or 0.0.0.0 (every interface)."
                ) from None
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"port {self.port} on {self.host} is in use (another emulator?): stop what listens there, or "
                "give another port (0 picks a free one: vlab emulator --port 0)."
            ) from None
        if self.port == 0 and self._listener.sockets:
            self.port = self._listener.sockets[0].getsockname()[1]
        self._warn_if_exposed()
        log.info("Voice Live emulator on %s", self.endpoint)
        return self

    def _warn_if_exposed(self) -> None:
        """Say so when other machines can connect (and loudly when the key is a generated one)."""
        if is_loopback(self.host):
            return
        if self.explicit_key:
            log.warning(
                "the Voice Live emulator listens on %r: other machines can connect with the key you gave",
                self.host,
            )
            return
        message = (
            f"SECURITY: the Voice Live emulator listens on {self.host!r}, reachable from other machines, "
            "with a generated key. Bind host='127.0.0.1' (the default) unless other machines must "
            "connect, and then give an explicit api_key (vlab emulator --api-key ...)."
        )
        log.warning("%s", message)
        warn_user(message, EmulatorExposedWarning)

    def inject(self, *faults: Fault | str) -> int:
        """Arm ``faults`` (:class:`Fault` objects or their text form) on every open connection, from now.

        A ``rate_limit`` fault refuses the emulator's next connection attempts instead.

        Returns:
            How many connections they were armed on.
        """
        armed = as_faults(faults)
        if self._app is None:
            return 0
        self._app[STATE]["rate_limited"].extend(_rate_limits(armed))
        connections = list(self._app[STATE]["connections"])
        for conn in connections:
            conn.faults.arm(list(armed))
        return len(connections)

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()  # no new connections; the runner closes the open ones
        if self._runner is not None:
            runner, self._runner = self._runner, None
            serving = self._app[STATE]["serving"] if self._app is not None else set()
            await runner.cleanup()  # closes the sessions (close_connections), then the other connections
            await _cancel(serving)  # a session opened meanwhile: its cleanup, before stop() returns
            _forget_app()
        if listener is not None:
            await listener.wait_closed()
        if self.trace is not None:
            self.trace.close()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
