"""An async Voice Live session over the real SDK that logs every client and server event.

``async with Session(settings) as s:`` resolves the target (explicit arguments, environment, ``.env``;
no endpoint at all starts the embedded emulator), connects with ``azure.ai.voicelive.aio.connect``,
sends the settings, and from then on turns every event sent or received into an
:class:`~vlab.log.EventRecord` stamped on the monotonic clock, handed to the sinks (the run folder's
``events.jsonl`` writer, live tables, turn trackers). Sinks only read: adding one changes nothing.

Barge-in follows a switchable :class:`BargeIn` policy: on ``input_audio_buffer.speech_started`` the
session stops local playback at once, cancels the active response and truncates the assistant item
at the milliseconds actually heard.

When the connection dies (a dropped socket, a close by the server, a fatal server error, or a stall:
no event for ``stall_timeout_s`` while a reply is due) the session logs a local
``vlab.connection_lost`` record and then either ends — :meth:`Session.wait_for` and the next send
raise :class:`~vlab.errors.ConnectionFailed` saying what happened and what to do — or, with
``Session(reconnect=True)`` (or a :class:`Reconnect` policy), connects again, logs a local
``vlab.reconnect`` record, resends the session settings and goes on. The run folder is finished
either way.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import functools
import json
import logging
import os
import platform
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import __version__, protocol
from vlab.audio.playback import AudioOutput, SimulatedPlayback
from vlab.audio.recording import Recorder
from vlab.clock import Clock, SystemClock
from vlab.connection import ConnectionLoss, Reconnect, redact
from vlab.endpoint import Target, make_credential, open_target, resolve_target
from vlab.errors import ConnectionFailed, ProtocolError, VlabError, VlabWarning
from vlab.log import EventLog, JsonlWriter, Sink
from vlab.log.records import audio_size, event_row, record_from_row
from vlab.settings import SessionSettings

if TYPE_CHECKING:
    import pandas as pd
    from azure.ai.voicelive.aio import VoiceLiveConnection

log = logging.getLogger("vlab.session")

EventMatch = str | Callable[[Any], bool]

_REPLY_EXPECTED = frozenset(
    {
        protocol.CLIENT_SESSION_UPDATE,
        protocol.CLIENT_RESPONSE_CREATE,
        protocol.CLIENT_ITEM_CREATE,
        protocol.CLIENT_COMMIT,
        protocol.CLIENT_CLEAR,
        protocol.CLIENT_ITEM_TRUNCATE,
    }
)
"""Client events the server always answers: once one is sent, silence from the server is a stall."""

_AUDIO_DELTA = protocol.AUDIO_DELTA
_json_decode = json.JSONDecoder().decode


class LocalEvent(dict):  # type: ignore[type-arg]
    """A notice from the session itself in the stream of server events (``type`` starts with ``vlab.``).

    :meth:`Session.wait_for` and :meth:`Session.events` deliver it between server events; read fields
    as attributes or keys, e.g. ``event.type``, ``event["attempt"]``.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class BargeIn(enum.Enum):
    """What the session does when the server reports the user started speaking."""

    ON = "on"
    """Stop playback, cancel the active response, truncate the assistant item at the ms heard."""
    TRUNCATE_ONLY = "truncate_only"
    """Stop playback and truncate, but let the server decide about the response."""
    OFF = "off"
    """Do nothing (the assistant keeps talking over the user)."""


class Session:
    """One Voice Live session with a complete, timestamped event log.

    Args:
        settings: Session configuration (defaults: server VAD 0.5 / 300 / 500 ms, pcm16 at 24 kHz).
        endpoint: Azure endpoint; else ``AZURE_VOICELIVE_ENDPOINT``, else ``.env``; none → embedded emulator.
        api_key: API key; else ``AZURE_VOICELIVE_API_KEY``, else ``.env``; none with an endpoint → Entra ID.
        credential: An async token credential for Entra ID (default: ``DefaultAzureCredential``).
        model: Model name; else ``AZURE_VOICELIVE_MODEL``, else ``settings.model``.
        run_dir: Folder for ``events.jsonl`` (written as the session goes), ``events.parquet`` (on
            close) and ``session.json``. None keeps the log in memory only.
        barge_in: The barge-in policy.
        audio_output: Where assistant audio goes (a speaker); default: :class:`SimulatedPlayback`.
        sinks: Extra record observers, called in order for every record.
        clock: Time source for stamps.
        emulator_options: Passed to the embedded emulator when it is used (e.g. ``{"speed": 4.0}``).
        dotenv_path: ``.env`` file to read (None searches upwards from the current folder, False none).
        backlog: Server events kept for :meth:`wait_for` until read (the oldest are dropped beyond it).
        record_audio: With a ``run_dir``, also write ``input.wav``, ``output.wav``, ``conversation.wav``
            and ``output/<item_id>.wav`` (see :mod:`vlab.audio.recording`).
        reconnect: ``True`` or a :class:`Reconnect` policy to reconnect when the connection is lost;
            ``False`` (default) ends the session with :class:`~vlab.errors.ConnectionFailed`.
        stall_timeout_s: Treat the connection as lost when no server event arrives for this long while
            a response is in progress or a reply is due (None: never).
    """

    def __init__(
        self,
        settings: SessionSettings | None = None,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        credential: Any = None,
        model: str | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        barge_in: BargeIn | str = BargeIn.ON,
        audio_output: AudioOutput | None = None,
        sinks: Sequence[Sink] = (),
        clock: Clock | None = None,
        emulator_options: Mapping[str, Any] | None = None,
        dotenv_path: str | os.PathLike[str] | bool | None = None,
        backlog: int = 10_000,
        record_audio: bool = True,
        reconnect: bool | Reconnect = False,
        stall_timeout_s: float | None = 30.0,
    ) -> None:
        self.settings = settings or SessionSettings()
        self.barge_in = BargeIn(barge_in)
        self.clock = clock or SystemClock()
        self.audio_output: AudioOutput = audio_output or SimulatedPlayback(self.clock)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.records = EventLog()
        """Every event so far, client, server and local, in log order (reads like a list of records)."""
        self.target: Target = resolve_target(endpoint, api_key, model, dotenv_path=dotenv_path)
        if model is None and self.target.model == protocol.DEFAULT_MODEL:
            self.target = _replace(self.target, model=self.settings.model)
        self.server_session: Any = None
        self.sink_errors: list[BaseException] = []
        self._sinks: list[Sink] = list(sinks)
        self._token_credential = credential
        self._emulator_options = dict(emulator_options or {})
        self._conn: VoiceLiveConnection | None = None
        self._stack: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribers: list[_Inbox] = []
        self._backlog: deque[Any] = deque(maxlen=backlog)
        self._arrived = asyncio.Event()
        self._seq = 0
        self._input_ms = 0.0
        self._active_response: str | None = None
        self._closed_error: BaseException | None = None
        self._writer: JsonlWriter | None = None
        self._recorder: Recorder | None = None
        self._recorder_flushed_ns = 0
        self.record_audio = record_audio
        self._owned_credential: Any = None
        if reconnect is True:
            reconnect = Reconnect()
        self.reconnect: Reconnect | None = reconnect or None
        if stall_timeout_s is not None and not stall_timeout_s > 0:
            from vlab.errors import ConfigError

            raise ConfigError(f"stall_timeout_s must be > 0 s or None, got {stall_timeout_s!r}")
        self.stall_timeout_s = stall_timeout_s
        self.reconnects = 0
        """How many times the connection was re-established."""
        self._conn_cm: Any = None
        self._credential: Any = None
        self._connected = asyncio.Event()
        self._last_server_ns = 0
        self._last_sent_ns = 0
        self._expect_since_ns: int | None = None
        self._receiving = False
        self._stall_detected = False
        self._closing = False
        self._rates_of: SessionSettings | None = None
        self._output_bytes_per_s = 0
        self._output_rate = 0

    # --- lifecycle ------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"Session({self.target.describe()}, {state}, {len(self.records)} events)"

    @property
    def connection(self) -> VoiceLiveConnection:
        """The SDK connection (for anything vlab does not wrap; what you send through it is not logged)."""
        if self._conn is None:
            raise VlabError("the session is not open; use `async with Session(...) as session:`")
        return self._conn

    async def __aenter__(self) -> Session:
        from contextlib import AsyncExitStack

        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            target = await stack.enter_async_context(open_target(self.target, **self._emulator_options))
            self.target = target
            self._credential = make_credential(target, self._token_credential)
            if target.auth == "entra_id" and self._token_credential is None:
                self._owned_credential = self._credential
                stack.push_async_callback(self._credential.close)
            if self.run_dir is not None:
                self._open_run_dir()
            t_connect = self.clock.monotonic_ns()
            await self._open_connection()
            self._record(
                {"type": "vlab.connect", "target": target.kind, "auth": target.auth}, "local", t_connect
            )
            await self._start_protocol()
            self._start_audio_output()
            self._connected.set()
            self._closing = self._stall_detected = False
            self._reader = asyncio.create_task(self._read_loop(), name="vlab-session-reader")
        except BaseException:
            await self._close_connection()
            await stack.aclose()
            self._close_sinks()
            raise
        self._stack = stack
        return self

    async def _open_connection(self) -> None:
        """Open the SDK connection (no events read yet)."""
        from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError
        from azure.ai.voicelive.aio import connect

        cm = connect(
            endpoint=self.target.endpoint or "",
            credential=self._credential,
            model=self.target.model,
            api_version=self.target.api_version,
            # No automatic close reply: when the server closes and drops the TCP connection at once,
            # aiohttp's failed reply would overwrite the close code it received with 1006.
            connection_options={"autoclose": False},
        )
        try:
            self._conn = await cm.__aenter__()
        except SdkConnectionError as exc:
            raise ConnectionFailed(self._connection_advice(exc)) from None
        self._conn_cm = cm

    async def _start_protocol(self) -> None:
        """Read ``session.created`` and send the session settings."""
        created = await self._recv_logged(timeout_s=30.0)
        if created.get("type") != protocol.SESSION_CREATED:
            raise ProtocolError(f"expected session.created as the first event, got {created.get('type')!r}")
        self.server_session = _server_event(created).get("session")
        await self.update(self.settings)

    async def _close_connection(self) -> None:
        """Close the SDK connection, if open (quietly: it may already be dead)."""
        cm, self._conn_cm = self._conn_cm, None
        self._conn = None
        if cm is not None:
            try:
                await cm.__aexit__(None, None, None)
            except Exception as exc:  # a dead socket cannot be closed cleanly; nothing is lost
                log.debug("closing the connection failed: %r", exc)

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection, stop the emulator if one was started, and finish the run folder."""
        if self._reader is not None:
            self._closing = True  # a stall noticed at this moment must not swallow the cancel
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        self._connected.clear()
        await self._close_connection()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()
        close_output = getattr(self.audio_output, "close", None)
        if callable(close_output):
            close_output()
        self._close_sinks()
        for inbox in self._subscribers:
            inbox.put(None)

    @property
    def connection_error(self) -> ConnectionFailed | None:
        """Why the connection ended, if it was lost (None while it is open, or after a normal close)."""
        err = self._closed_error
        return err if isinstance(err, ConnectionFailed) else None

    def _start_audio_output(self) -> None:
        """Start a device output (a Speaker) on this loop and log its playback notices."""
        if hasattr(self.audio_output, "on_event"):
            self.audio_output.on_event = self._on_playback  # type: ignore[attr-defined]
        start = getattr(self.audio_output, "start", None)
        if callable(start):
            start()

    def _on_playback(self, kind: str, item_id: str, t_ns: int, info: Mapping[str, Any]) -> None:
        """Log a playback notice (``vlab.playback_started`` …) stamped when the audio reached the speaker."""
        event = {"type": f"vlab.{kind}", "item_id": item_id, **info}
        self._record(event, "local", t_ns)

    def _connection_advice(self, exc: BaseException) -> str:
        reason = redact(str(exc), self.target)
        hint = (
            "check the key (AZURE_VOICELIVE_API_KEY) and the endpoint (AZURE_VOICELIVE_ENDPOINT)"
            if self.target.auth == "api_key"
            else "check that your Entra ID identity has the 'Cognitive Services User' role on the resource"
            if self.target.auth == "entra_id"
            else "the embedded emulator refused the connection"
        )
        return f"could not connect to {self.target.describe()}: {reason}; {hint}"

    def _open_run_dir(self) -> None:
        assert self.run_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._writer = JsonlWriter(self.run_dir / "events.jsonl")
        self._sinks.insert(0, self._writer)
        meta = {
            "vlab_version": __version__,
            "sdk_version": _sdk_version(),
            "python": platform.python_version(),
            "started_at": datetime.now(timezone.utc).isoformat(),
            "target": {
                "kind": self.target.kind,
                "auth": self.target.auth,
                "description": self.target.describe(),
                "model": self.target.model,
                "api_version": self.target.api_version,
            },
            "barge_in": self.barge_in.value,
            "settings": self.settings.to_dict(),
        }
        (self.run_dir / "session.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if self.record_audio:
            s = self.settings
            self._recorder = Recorder(
                self.run_dir,
                input_rate=s.input_bytes_per_s // 2 if s.input_audio_format == "pcm16" else 8000,
                input_format=s.input_audio_format,
                output_rate=s.output_sample_rate,
                output_format=s.output_audio_format,
            )

    def _close_sinks(self) -> None:
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            recorder.close()
        for sink in self._sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    self._sink_failed(sink, exc)
        if self.run_dir is not None and self._writer is not None:
            from vlab.log import write_parquet

            write_parquet(self.records.frame(), self.run_dir / "events.parquet")
            self._writer = None

    # --- logging -----------------------------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """Add an observer; it sees every record from now on."""
        self._sinks.append(sink)

    def _record(self, event: Mapping[str, Any], direction: str, t_ns: int, **extra: Any) -> None:
        self._log_row(
            event_row(
                event, direction=direction, seq=self._seq, t_ns=t_ns, wall_ns=self.clock.wall_ns(), **extra
            )  # type: ignore[arg-type]
        )

    def _log_row(self, row: tuple[Any, ...]) -> None:
        """Append a record's values (from :func:`event_row`, with the next ``seq``) and show it to the sinks."""
        self._seq += 1
        self.records.append_row(row)
        if self._sinks:  # the record object is built only for sinks (the log keeps columns)
            record = record_from_row(row)
            for sink in tuple(self._sinks):
                try:
                    sink(record)
                except Exception as exc:
                    self._sink_failed(sink, exc)

    def _sink_failed(self, sink: Sink, exc: BaseException) -> None:
        self.sink_errors.append(exc)
        if sink in self._sinks:
            self._sinks.remove(sink)
        warnings.warn(f"event sink {sink!r} failed and was removed: {exc!r}", VlabWarning, stacklevel=3)

    def frame(self) -> pd.DataFrame:
        """The events so far as a DataFrame (see :func:`vlab.log.to_frame`), built from the log's columns."""
        return self.records.frame()

    # --- receiving -----------------------------------------------------------------------------------------

    async def _recv_logged(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Receive one server event, stamp it, log it; returns its JSON (the SDK model is built on read)."""
        conn = self._conn if self._conn is not None else self.connection
        raw = await (asyncio.wait_for(conn.recv_bytes(), timeout_s) if timeout_s else conn.recv_bytes())
        t_ns = self.clock.monotonic_ns()
        if not raw:
            from azure.ai.voicelive.aio import ConnectionClosed

            raise ConnectionClosed(1006, "Empty WebSocket frame")
        try:
            payload = _json_decode(raw.decode("utf-8"))  # json.loads, as the SDK's conn.recv() parses it
        except ValueError as exc:
            raise ProtocolError(f"the server sent a frame that is not JSON: {exc}") from None
        if type(payload) is not dict:
            raise ProtocolError(
                f"the server sent a frame that is not a JSON object: {type(payload).__name__}"
            )
        self._last_server_ns = t_ns
        self._expect_since_ns = None
        rate = self._output_rates()[0] if payload.get("type") == _AUDIO_DELTA else None
        self._log_row(
            event_row(
                payload,
                direction="server",
                seq=self._seq,
                t_ns=t_ns,
                wall_ns=self.clock.wall_ns(),
                audio_bytes_per_s=rate,
            )
        )
        return payload

    def _output_rates(self) -> tuple[int, int]:
        """Byte rate and sample rate of the assistant audio under the current settings (cached)."""
        if self._rates_of is not self.settings:
            self._rates_of = self.settings
            self._output_bytes_per_s = self.settings.output_bytes_per_s
            self._output_rate = self.settings.output_sample_rate
        return self._output_bytes_per_s, self._output_rate

    async def _read_loop(self) -> None:
        try:
            while True:
                lost = await self._read_until_lost()
                self._connected.clear()
                if self._active_response is not None and lost.code != "stalled":
                    lost.what += f" while response {self._active_response} was in progress"
                self._record(
                    {
                        "type": "vlab.connection_lost",
                        "error": {"code": lost.code, "message": lost.what},
                        "response_id": self._active_response,
                    },
                    "local",
                    self.clock.monotonic_ns(),
                )
                await self._close_connection()
                if lost.code == "protocol_error" or not await self._reconnect(lost):
                    self._closed_error = lost.error(self)
                    log.warning("%s", self._closed_error)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # report, never lose silently
            log.exception("session reader failed")
            self._closed_error = ConnectionFailed(
                f"the session stopped reading events because of an internal error ({exc!r}); the events so far "
                "are logged. Please report this with the run folder."
            )
        finally:
            self._arrived.set()
            for inbox in self._subscribers:
                inbox.put(None)

    def _stalled(self, now_ns: int) -> bool:
        if self.stall_timeout_s is None or (self._active_response is None and self._expect_since_ns is None):
            return False
        since = max(self._last_server_ns, self._expect_since_ns or 0)
        return now_ns - since > self.stall_timeout_s * 1e9

    async def _read_until_lost(self) -> ConnectionLoss:
        """Read, react to and deliver server events until the connection is lost; say how it was lost.

        Each receive is awaited right here, in the reader task (no task or timer per event); a watchdog
        timer checks for a stall a few times per ``stall_timeout_s`` and cancels the waiting receive.
        """
        from azure.ai.voicelive.aio import ConnectionClosed
        from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError

        reader = asyncio.current_task()
        assert reader is not None
        watchdog = _StallWatchdog(self, reader) if self.stall_timeout_s is not None else None
        recv = self._recv_logged
        try:
            while True:
                self._receiving = True
                try:
                    payload = await recv()
                except asyncio.CancelledError:
                    if not self._stall_detected or self._closing:
                        raise
                    self._stall_detected = False
                    uncancel = getattr(reader, "uncancel", None)  # Python ≥ 3.11
                    if uncancel is not None and uncancel() > 0:
                        raise  # also cancelled from outside
                    return ConnectionLoss.stall(self)
                except ConnectionClosed as exc:
                    return ConnectionLoss.closed(self, exc.code, exc.reason)
                except (SdkConnectionError, ConnectionError, asyncio.TimeoutError) as exc:
                    return ConnectionLoss.closed(self, None, str(exc))
                except ProtocolError as exc:
                    return ConnectionLoss(
                        "protocol_error", f"the server broke the Voice Live protocol ({exc})"
                    )
                finally:
                    self._receiving = False
                if self._react(payload):
                    try:
                        await self._barge_in()
                    except ConnectionFailed:
                        pass  # a barge-in send hit the dead socket: the next receive says how it ended
                self._deliver(payload)
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _deliver(self, item: Any) -> None:
        """Hand a server event's JSON (or a :class:`LocalEvent`) to :meth:`wait_for` and the subscribers."""
        self._backlog.append(item)
        self._arrived.set()
        for inbox in self._subscribers:
            inbox.put(item)

    async def _reconnect(self, lost: ConnectionLoss) -> bool:
        """Connect again under the :class:`Reconnect` policy; True when the session goes on."""
        policy = self.reconnect
        if policy is None or self.reconnects >= policy.max_reconnects:
            return False
        lost_response = self._active_response
        failures: list[str] = []
        for attempt in range(1, policy.attempts + 1):
            await asyncio.sleep(policy.delay_s(attempt))
            self._record(
                {
                    "type": "vlab.reconnect",
                    "attempt": attempt,
                    "reason": lost.what,
                    "lost_response_id": lost_response,
                },
                "local",
                self.clock.monotonic_ns(),
            )
            self._active_response = None
            self._expect_since_ns = None
            self._input_ms = 0.0  # the new server session starts a new input-audio timeline
            try:
                await self._open_connection()
                await self._start_protocol()
            except Exception as exc:
                from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError

                expected = (ConnectionFailed, ProtocolError, ConnectionError, asyncio.TimeoutError, OSError)
                if not isinstance(exc, (*expected, SdkConnectionError)):
                    raise
                failures.append(redact(str(exc), self.target) or type(exc).__name__)
                self._record(
                    {"type": "vlab.reconnect_failed", "attempt": attempt, "error": {"message": failures[-1]}},
                    "local",
                    self.clock.monotonic_ns(),
                )
                await self._close_connection()
                continue
            self.reconnects += 1
            log.warning(
                "reconnected to %s after: %s (attempt %d)", self.target.describe(), lost.what, attempt
            )
            self._connected.set()
            self._deliver(
                LocalEvent(
                    type="vlab.reconnected", attempt=attempt, reason=lost.what, lost_response_id=lost_response
                )
            )
            return True
        lost.what += f"; reconnecting failed {len(failures)} time(s), last: {failures[-1]}"
        return False

    def _react(self, payload: dict[str, Any]) -> bool:
        """Keep the session's state and audio in step with one server event; True when barge-in is due.

        Reads the event's raw JSON: attribute access on an SDK model deserializes the field again, and
        the model itself is only built when a reader asks for the event.
        """
        get = payload.get
        kind = get("type")
        if kind == _AUDIO_DELTA:
            item_id = get("item_id")
            rate = self._output_rates()[1]
            # An output that only keeps time (SimulatedPlayback) takes byte counts: no base64 decoding.
            push_size = getattr(self.audio_output, "push_size", None)
            if push_size is not None and self._recorder is None:
                push_size(item_id, audio_size(get("delta")) or 0, rate)
            else:
                pcm = base64.b64decode(get("delta") or "")
                self.audio_output.push(item_id, pcm, rate)
                if self._recorder is not None:
                    self._recorder.output(item_id, pcm, self._last_server_ns)
        elif kind == protocol.RESPONSE_CREATED:
            self._active_response = (get("response") or {}).get("id")
        elif kind == protocol.RESPONSE_DONE:
            if self._active_response == (get("response") or {}).get("id"):
                self._active_response = None
        elif kind == protocol.ITEM_TRUNCATED:
            if self._recorder is not None:
                self._recorder.truncate(get("item_id"), float(get("audio_end_ms") or 0))
        elif kind == protocol.SESSION_UPDATED:
            self.server_session = _server_event(payload).get("session")
        elif kind == protocol.SPEECH_STARTED:
            return self.barge_in is not BargeIn.OFF
        elif kind == "error":
            error = get("error") or {}
            level = logging.WARNING if error.get("type") == "server_error" else logging.INFO
            log.log(level, "server error event: %s: %s", error.get("code"), error.get("message"))
        return False

    async def _barge_in(self) -> None:
        item_id = self.audio_output.current_item_id
        heard_ms = self.audio_output.clear()
        if (
            self.barge_in is BargeIn.ON
            and self._active_response is not None
            and not self._server_interrupts()
        ):
            await self.cancel_response()
        if item_id is not None and heard_ms > 0:
            await self.truncate(item_id, int(heard_ms))

    def _server_interrupts(self) -> bool:
        """Whether the server cancels responses itself on speech (``interrupt_response``), per its last session."""
        session = self.server_session or {}
        td = session.get("turn_detection") if hasattr(session, "get") else None
        return bool(td and td.get("interrupt_response"))

    async def events(self) -> AsyncIterator[Any]:
        """Server events (SDK models) from now on, until the session closes."""
        inbox = _Inbox()
        items = inbox.items
        self._subscribers.append(inbox)
        try:
            while True:
                if not items:
                    await inbox.wait()
                item = items.popleft()
                if item is None:
                    return
                yield _server_event(item)
        finally:
            self._subscribers.remove(inbox)

    async def wait_for(self, match: EventMatch, *, timeout_s: float = 60.0, count: int = 1) -> list[Any]:
        """Read server events until ``count`` of them match (a type name or a predicate).

        Reading is a cursor over the session's events: each call continues where the previous one
        stopped, so ``await s.append_audio(...)`` then ``await s.wait_for("response.done")`` never misses
        an event that arrived in between. Returns the events read (SDK models), the matching one last.

        Raises:
            TimeoutError: Not in time; the message lists the types that did arrive.
            ConnectionFailed: The connection was lost first (and not re-established); the message says
                how and what to do.
        """
        seen: list[Any] = []
        hits = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            while self._backlog:
                event = _server_event(self._backlog.popleft())
                seen.append(event)
                hits += bool(event.get("type") == match if isinstance(match, str) else match(event))
                if hits >= count:
                    return seen
            if self._reader is None or self._reader.done():
                raise self._ended_error(f"while waiting for {match!r}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                got = sorted({e.get("type") for e in seen})
                raise TimeoutError(f"no {match!r} within {timeout_s} s (received: {got})") from None

    # --- sending ----------------------------------------------------------------------------------------------

    def _ended_error(self, doing: str) -> ConnectionFailed:
        err = self._closed_error
        if isinstance(err, ConnectionFailed):
            return ConnectionFailed(f"{err} (raised {doing})")
        if self._reader is None and err is None:
            return ConnectionFailed(
                f"the session is not open ({doing}); use `async with Session(...) as session:`"
            )
        return ConnectionFailed(f"the session ended {doing}: {err!r}")

    async def send(self, event: Mapping[str, Any], **record_extra: Any) -> None:
        """Send any client event (a wire-format dict) and log it.

        Raises:
            ConnectionFailed: The connection is lost (and not re-established); the message says how.
        """
        from azure.ai.voicelive.aio import ConnectionError as SdkConnectionError

        in_reader = self._reader is not None and asyncio.current_task() is self._reader
        if not in_reader and self._reader is not None and not self._connected.is_set():
            await self._wait_connected(str(event.get("type")))  # raises when the session has ended
        if self._conn is None:
            raise self._ended_error(f"sending {event.get('type')!r}")
        conn = self._conn
        ws = getattr(conn, "_connection", None)
        t_ns = self.clock.monotonic_ns()
        try:
            if ws is not None and ws.closed:
                raise SdkConnectionError("the WebSocket is closed")
            await conn.send(event)
        except SdkConnectionError as exc:
            if in_reader:
                raise ConnectionFailed(redact(str(exc), self.target)) from None
            # The socket died under us; the reader notices on its next receive and says how.
            await self._wait_reader_noticed()
            if self.reconnect is not None and self._connected.is_set() and self._conn is not conn:
                return await self.send(event, **record_extra)  # reconnected: send on the new connection
            if self._reader is not None and not self._reader.done() and self.reconnect is not None:
                await self._wait_connected(str(event.get("type")))
                return await self.send(event, **record_extra)
            raise self._ended_error(f"sending {event.get('type')!r}") from None
        if event.get("type") in _REPLY_EXPECTED and self._expect_since_ns is None:
            self._expect_since_ns = t_ns
        self._last_sent_ns = t_ns
        self._record(event, "client", t_ns, **record_extra)

    async def _wait_reader_noticed(self, timeout_s: float = 2.0) -> None:
        """Give the reader a moment to see that the socket died (it logs how, and maybe reconnects)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._connected.is_set() and self._reader is not None and not self._reader.done():
            if loop.time() > deadline:
                return
            await asyncio.sleep(0.01)

    async def _wait_connected(self, doing: str) -> None:
        """Wait while the reader reconnects; raise when it gives up."""
        while not self._connected.is_set():
            if self._reader is None or self._reader.done():
                raise self._ended_error(f"sending {doing!r}")
            waiter = asyncio.ensure_future(self._connected.wait())
            await asyncio.wait({waiter, self._reader}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def update(self, settings: SessionSettings) -> None:
        """Send ``session.update`` with new settings (the server answers with ``session.updated``)."""
        self.settings = settings
        await self.send({"type": protocol.CLIENT_SESSION_UPDATE, "session": settings.to_wire()})

    async def append_audio(self, pcm: bytes) -> None:
        """Append input audio (in the session's input format) and log its place on the input timeline."""
        offset = self._input_ms
        rate = self.settings.input_bytes_per_s
        self._input_ms += len(pcm) / rate * 1000.0
        event = {"type": protocol.CLIENT_APPEND, "audio": base64.b64encode(pcm).decode("ascii")}
        await self.send(event, audio_bytes_per_s=rate, input_offset_ms=offset)
        if self._recorder is not None:
            t_ns = self._last_sent_ns  # the stamp of this append's record
            self._recorder.input(pcm, t_ns)
            if t_ns - self._recorder_flushed_ns > 1_000_000_000:  # input.wav on disk at least once a second
                self._recorder.flush()
                self._recorder_flushed_ns = t_ns

    async def commit(self) -> None:
        """Commit the input buffer as a user item (manual turns)."""
        await self.send({"type": protocol.CLIENT_COMMIT})

    async def clear_input(self) -> None:
        """Drop uncommitted input audio."""
        await self.send({"type": protocol.CLIENT_CLEAR})

    async def create_response(self, **response: Any) -> None:
        """Ask for a response (``response.create``); keywords go into its ``response`` object."""
        event: dict[str, Any] = {"type": protocol.CLIENT_RESPONSE_CREATE}
        if response:
            event["response"] = response
        await self.send(event)

    async def cancel_response(self) -> None:
        """Cancel the active response (``response.cancel``)."""
        await self.send({"type": protocol.CLIENT_RESPONSE_CANCEL})

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message; by default also ask for a response."""
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send({"type": protocol.CLIENT_ITEM_CREATE, "item": item})
        if respond:
            await self.create_response()

    async def send_function_output(
        self, call_id: str, output: str | Mapping[str, Any], *, respond: bool = True
    ) -> None:
        """Return a function call's result; by default also ask for a response."""
        text = output if isinstance(output, str) else json.dumps(output)
        item = {"type": "function_call_output", "call_id": call_id, "output": text}
        await self.send({"type": protocol.CLIENT_ITEM_CREATE, "item": item})
        if respond:
            await self.create_response()

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Cut an assistant item's audio at ``audio_end_ms`` (what the user really heard)."""
        await self.send(
            {
                "type": protocol.CLIENT_ITEM_TRUNCATE,
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": int(audio_end_ms),
            }
        )

    async def stream_audio(self, pcm: bytes, *, speed: float = 1.0, chunk_ms: float = 20.0) -> None:
        """Append ``pcm`` in ``chunk_ms`` chunks paced at ``speed`` × real time (``math.inf``: no pacing)."""
        from vlab.audio.pacing import paced_chunks

        rate = self.settings.input_bytes_per_s // 2
        async for chunk, _ in paced_chunks(
            pcm, sample_rate=rate, chunk_ms=chunk_ms, speed=speed, clock=self.clock
        ):
            await self.append_audio(chunk)

    async def stream_microphone(self, mic: Any) -> None:
        """Append everything a microphone captures until cancelled; overflows are logged as they happen.

        ``mic`` is a started-or-startable :class:`vlab.audio.devices.Microphone` (or a ``HalfDuplex``
        around one) at the session's input rate. Each time its overflow count grows, a local
        ``vlab.input_overflow`` record (``overflows``: the total so far) marks the lost audio in the log.
        """
        seen = int(getattr(mic, "overflows", 0))
        async for chunk in mic:
            await self.append_audio(chunk)
            total = int(getattr(mic, "overflows", 0))
            if total > seen:
                self._record(
                    {"type": "vlab.input_overflow", "overflows": total}, "local", self.clock.monotonic_ns()
                )
                seen = total


class _Inbox:
    """The events delivered to one :meth:`Session.events` reader, and the reader's wake-up.

    Lighter than an :class:`asyncio.Queue`, which counts unfinished tasks and keeps a list of getters.
    """

    __slots__ = ("items", "_waiter")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        """Add an event (``None``: the session ended) and wake the reader."""
        self.items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Return once there is an item."""
        while not self.items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter


def _server_event(item: Any) -> Any:
    """The SDK model of a server event's JSON, as ``conn.recv()`` builds it; anything else as it is."""
    if type(item) is not dict:
        return item  # a LocalEvent
    return _sdk_server_event()._deserialize(item, [])


@functools.cache
def _sdk_server_event() -> Any:
    """The SDK's ``ServerEvent`` model (imported on first use: ``import vlab`` stays light)."""
    from azure.ai.voicelive.models import ServerEvent

    return ServerEvent


class _StallWatchdog:
    """Checks a session's reader for a stall a few times per ``stall_timeout_s``, not once per event.

    When the server has been quiet too long while the reader waits for an event, it flags the stall and
    cancels the reader's receive; the reader turns that cancellation into a ``stalled`` loss.
    """

    def __init__(self, session: Session, reader: asyncio.Task[Any]) -> None:
        assert session.stall_timeout_s is not None
        self._session = session
        self._reader = reader
        self._loop = asyncio.get_running_loop()
        self._period_s = max(0.02, min(0.5, session.stall_timeout_s / 4))
        self._handle = self._loop.call_later(self._period_s, self._check)

    def _check(self) -> None:
        s = self._session
        if s._receiving and s._stalled(s.clock.monotonic_ns()):
            s._stall_detected = True
            self._reader.cancel()
        else:
            self._handle = self._loop.call_later(self._period_s, self._check)

    def cancel(self) -> None:
        """Stop watching."""
        self._handle.cancel()


def _replace(target: Target, **changes: Any) -> Target:
    import dataclasses

    return dataclasses.replace(target, **changes)


def _sdk_version() -> str:
    from azure.ai.voicelive import _version

    return str(_version.VERSION)
