"""The emulator's aiohttp server: the route the SDK builds, authentication, lifecycle.

``GET /voice-live/realtime?api-version=…&model=…`` (also ``/voice-agent/realtime``) upgrades to a plain
WebSocket (no subprotocol, no compression, frames capped at 4 MiB, pings answered). A wrong or missing
credential is refused with HTTP 401 *before* the upgrade, which the SDK reports as a connection error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from vlab import protocol
from vlab.audio.silero_worker import SileroWorker
from vlab.audio.vad import SileroModel, SpeechModel
from vlab.clock import Clock, SystemClock
from vlab.emulator.asr import Recognizer, default_recognizer
from vlab.emulator.cassette import Cassette, CassetteConnection
from vlab.emulator.config import EmulatorConfig
from vlab.emulator.connection import EmulatorConnection
from vlab.emulator.faults import Fault
from vlab.emulator.latency import LatencyModel, resolve
from vlab.emulator.replies import Script
from vlab.emulator.trace import Trace
from vlab.errors import ConfigError, VlabWarning

log = logging.getLogger("vlab.emulator")

ROUTES = ("/voice-live/realtime", "/voice-agent/realtime")


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input (it is simply wrong)."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def _authorized(request: web.Request, config: EmulatorConfig) -> bool:
    keys = request.headers.getall("api-key", [])
    if keys:
        # One key, non-blank; several api-key headers are ambiguous and refused.
        return (
            len(keys) == 1
            and bool(keys[0].strip())
            and (config.api_key is None or _same(keys[0], config.api_key))
        )
    auths = request.headers.getall("Authorization", [])
    if len(auths) != 1:
        return False
    scheme, _, token = auths[0].partition(" ")
    if scheme.lower() == "bearer" and token and token == token.strip():
        return any(_same(token, t) for t in config.tokens)
    return False


async def _realtime(request: web.Request) -> web.StreamResponse:
    config: EmulatorConfig = request.app[CONFIG]
    if not _authorized(request, config):
        return web.json_response(
            {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API endpoint.",
                }
            },
            status=401,
        )
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_FRAME_BYTES, autoping=True, compress=False)
    await ws.prepare(request)
    state = request.app[STATE]
    state["index"] += 1
    if config.cassette is not None:
        replay = CassetteConnection(
            ws, config.cassette, speed=config.speed, clock=config.clock, trace=config.trace
        )
        state["replays"].add(replay)
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
    try:
        await conn.run()
    finally:
        state["connections"].discard(conn)
    return ws


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "connections": len(request.app[STATE]["connections"])})


CONFIG = web.AppKey("config", EmulatorConfig)
STATE = web.AppKey("state", dict)


class EmulatorExposedWarning(VlabWarning):
    """The emulator listens on a non-loopback interface without an explicit key."""


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "" (all interfaces)


def make_app(config: EmulatorConfig) -> web.Application:
    """Build the aiohttp application for one emulator."""
    app = web.Application(client_max_size=protocol.MAX_FRAME_BYTES)
    app[CONFIG] = config
    app[STATE] = {"index": 0, "connections": set(), "replays": set()}
    for route in ROUTES:
        app.router.add_get(route, _realtime)
    app.router.add_get("/health", _health)

    async def close_connections(app: web.Application) -> None:
        for conn in [*app[STATE]["connections"], *app[STATE]["replays"]]:
            await conn.ws.close()

    app.on_shutdown.append(close_connections)
    return app


class Emulator:
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
        faults: Faults (:class:`~vlab.emulator.faults.Fault`) armed on every new connection.
        recognizer_factory: Speech recognizer for the user's audio (PocketSphinx by default).
        hear_audio: Read each user audio turn's words for the reply even without input transcription, as
            the service's model hears them (about a quarter of the turn's length in CPU); False answers
            "I heard N seconds of speech" instead.
        clock: The wall clock that maps simulated time onto real time and times faults (inject a
            :class:`~vlab.clock.ManualClock` or :class:`~vlab.clock.VirtualClock` in tests).
        cassette: A recorded session (:func:`vlab.cassette.load_cassette`) that every connection replays
            instead of emulating; a client that diverges from it gets an ``error`` (``docs/calibration.md``).

    Raises:
        ConfigError: ``speed`` is not a number > 0 or ``"max"``, or ``latency`` names no preset or fitted model.
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
        faults: Iterable[Fault] = (),
        recognizer_factory: Callable[[], Recognizer] = default_recognizer,
        hear_audio: bool = True,
        clock: Clock | None = None,
        cassette: Cassette | None = None,
    ) -> None:
        try:
            speed_value = math.inf if speed in ("max", "inf") else float(speed)
        except (TypeError, ValueError):
            speed_value = math.nan
        if not speed_value > 0:
            raise ConfigError(
                f"speed must be a number > 0 (1 = real time, 2 = twice as fast) or 'max' (as fast as "
                f"possible), got {speed!r}."
            )
        model = resolve(latency, seed=seed)
        self.host = host
        self.port = port
        self.explicit_key = bool(api_key)
        self.api_key = api_key or "emu-" + secrets.token_urlsafe(18)
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
            faults=tuple(faults),
            clock=clock or SystemClock(),
            cassette=cassette,
        )
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    @property
    def endpoint(self) -> str:
        """HTTP endpoint to give the SDK (``http://host:port``)."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running; use 'async with Emulator() as emu:'")
        return f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self._runner else "stopped"
        return f"Emulator({state}, speed={self.config.speed}, latency={self.config.latency.name!r})"

    async def start(self) -> Emulator:
        """Bind and serve; returns self."""
        if not _is_loopback(self.host):
            if self.explicit_key:
                log.warning(
                    "the Voice Live emulator listens on %r: other machines can connect with the key you gave",
                    self.host,
                )
            else:
                message = (
                    f"SECURITY: the Voice Live emulator listens on {self.host!r}, reachable from other machines, "
                    "with a generated key. Bind host='127.0.0.1' (the default) unless other machines must "
                    "connect, and then give an explicit api_key (vlab emulator --api-key ...)."
                )
                log.warning("%s", message)
                warnings.warn(message, EmulatorExposedWarning, stacklevel=2)
        if self.config.vad_model_factory is SileroModel:
            SileroWorker.shared().start()  # loads the model in its own process while we bind
        self._app = make_app(self.config)
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and isinstance(server, asyncio.Server) and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("Voice Live emulator on %s", self.endpoint)
        return self

    def inject(self, *faults: Fault) -> int:
        """Arm ``faults`` on every open connection, counting from now.

        Returns:
            How many connections they were armed on.
        """
        if self._app is None:
            return 0
        connections = list(self._app[STATE]["connections"])
        for conn in connections:
            conn.faults.arm(list(faults))
        return len(connections)

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self.trace is not None:
            self.trace.close()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
