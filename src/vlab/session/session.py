"""The :class:`Session` facade: one Voice Live session with a complete, timestamped event log.

The session wires its parts (listed in :mod:`vlab.session`) together and keeps the log: every event
sent or received becomes an :class:`~vlab.log.EventRecord` stamped on the injected clock and handed to
the sinks. It reacts to what the server sends (the assistant's audio, the server's session, barge-in)
and offers the sending API; reading, stalls and reconnection belong to its
:class:`~vlab.session.link.Link`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import protocol
from vlab.audio import g711
from vlab.audio.pcm import InputAudio, as_input_bytes
from vlab.audio.playback import AudioOutput, SimulatedPlayback
from vlab.clock import Clock, ServerTimeClock, SystemClock
from vlab.endpoint import Target
from vlab.errors import (
    AsyncWithOnly,
    ConfigError,
    ConnectionFailed,
    ProtocolError,
    RunFolderTaken,
    UsageError,
    VlabError,
    check_count,
    check_seconds,
)
from vlab.log import EventLog, Sink
from vlab.log.files import JSONL_NAME, holds_events
from vlab.log.records import failed_response_error
from vlab.protocol_limits import SDK_MAX_FRAME_BYTES
from vlab.session import sdk_adapter
from vlab.session.barge_in import BargeIn, BargeInAction, BargeInPolicy, server_interrupts
from vlab.session.checks import event_problems, warning_event
from vlab.session.connector import Connector
from vlab.session.link import Link, LinkEnded, UnreadableFrame, Wire, WireClosed, WireError
from vlab.session.output import AssistantAudio
from vlab.session.readers import EventFeed, EventMatch, LocalEvent
from vlab.session.reconnect import Notice, Reconnect, Reconnected, Reconnecting, notice_event
from vlab.session.sinks import RunFolder, SessionLog, open_run_folder, session_metadata
from vlab.settings import SessionSettings, require_settings

if TYPE_CHECKING:
    import pandas as pd

    from vlab.session.sdk_adapter import VoiceLiveConnection

log = logging.getLogger("vlab.session")

_AUDIO_DELTA = protocol.AUDIO_DELTA
_HANDSHAKE_TIMEOUT_S = 30.0
_SHOWN_CHARS = 200  # of an unexpected first frame, in the error that reports it
_CAPTURE_ANCHOR_MS = 1000.0


def _refuse_what_never_arrives(event_type: str) -> None:
    """Refuse waiting for a client event's type, a record vlab only logs, or a misspelt server event type."""
    import difflib

    if event_type in protocol.SERVER_EVENT_FIELDS or event_type == protocol.RECONNECTED:
        return
    if event_type in protocol.CLIENT_EVENT_TYPES:
        raise UsageError(
            f"{event_type!r} is an event the client sends, never one that arrives: wait for the server's answer "
            "to it (session.update → 'session.updated', response.create → 'response.created' …)"
        )
    if event_type in protocol.LOCAL_RECORD_TYPES:
        raise UsageError(
            f"{event_type!r} is a record vlab logs, not an event that arrives (of vlab's own records only "
            f"{protocol.RECONNECTED!r} does): find it in session.frame()"
        )
    known = [*protocol.SERVER_EVENT_FIELDS, protocol.RECONNECTED]
    close = [name for name in known if name.endswith(f".{event_type}")]  # speech_started, its short name
    close = (
        close if len(close) == 1 else difflib.get_close_matches(event_type.lower(), known, n=1, cutoff=0.85)
    )
    if close:
        raise UsageError(f"no server event is called {event_type!r}; did you mean {close[0]!r}?")
    if event_type.startswith(protocol.LOCAL_PREFIX):
        raise UsageError(
            f"vlab has no record called {event_type!r}; of its own only {protocol.RECONNECTED!r} arrives"
        )


class Session(AsyncWithOnly):
    """One Voice Live session with a complete, timestamped event log.

    Args:
        settings: Session configuration (defaults: server VAD 0.5 / 300 / 500 ms, pcm16 at 24 kHz).
        endpoint: Azure endpoint; else ``AZURE_VOICELIVE_ENDPOINT``, else ``.env``; none → embedded emulator.
        api_key: API key; else ``AZURE_VOICELIVE_API_KEY``, else ``.env``; none with an endpoint → Entra ID.
        credential: An async token credential for Entra ID (default: ``DefaultAzureCredential``); given,
            the session uses Entra ID and no key from the environment or ``.env``.
        model: Model name; else ``AZURE_VOICELIVE_MODEL``, else ``settings.model``.
        run_dir: Folder for ``events.jsonl`` (written as the session goes), ``events.parquet`` (on
            close) and ``session.json``. None keeps the log in memory only.
        overwrite: Replace the run ``run_dir`` holds already: its events, ``session.json``, recordings and
            labels (``labels.json``) are removed as the session starts; otherwise refused, so that running
            a notebook cell again does not lose the run before.
        barge_in: The barge-in policy.
        audio_output: Where assistant audio goes (a speaker); default: :class:`SimulatedPlayback`.
        sinks: Extra record observers, called in order for every record.
        clock: Time source for stamps, timeouts, stall detection and reconnect back-off (a
            :class:`~vlab.clock.VirtualClock` in tests).
        emulator_options: Passed to the embedded emulator when it is used (e.g. ``{"speed": 4.0}``).
        dotenv_path: ``.env`` file to read (None searches upwards from the current folder, False none).
            The target is resolved (and ``.env`` read) when first needed, at the latest on connecting.
        backlog: Server events kept for :meth:`wait_for` until read, ≥ 1 (the oldest are dropped beyond it).
        record_audio: With a ``run_dir``, also write ``input.wav``, ``output.wav``, ``conversation.wav``
            and ``output/<item_id>.wav`` (see :mod:`vlab.audio.recording`).
        reconnect: ``True`` or a :class:`Reconnect` policy to reconnect when the connection is lost;
            ``False`` (default) ends the session with :class:`~vlab.errors.ConnectionFailed`.
        stall_timeout_s: Treat the connection as lost when no server event arrives for this long while
            a response is in progress or a reply is due (None: never).
        max_frame_bytes: Largest server frame the connection accepts, in bytes (the SDK's
            ``max_msg_size``, 4 MiB by default); a larger one ends the connection with an error that
            says so.
        latency_seed: The seed of the latency draws of vlab's emulator (the embedded one, or ``vlab
            emulator`` at an endpoint), sent first on each connection in ``session.metadata``
            (:data:`vlab.protocol.LATENCY_SEED_METADATA_KEY`), so its draws do not depend on which
            connection this is. Nothing is sent to a server that is not vlab's emulator.

    A server event with a malformed field (a wrong JSON type, audio that is not base64) is logged as a
    local ``vlab.protocol_warning`` record after it, with the raw frame, and not reacted to; the session
    goes on. :attr:`protocol_warnings` counts them, as does the run folder's ``session.json``
    (``summary``). Readers get such an event as a :class:`~vlab.session.sdk_adapter.RawServerEvent` (its
    JSON as sent, fields readable as attributes), never an SDK model that could raise on the bad field.
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
        overwrite: bool = False,
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
        max_frame_bytes: int = SDK_MAX_FRAME_BYTES,
        latency_seed: int | None = None,
    ) -> None:
        _check_arguments(settings, latency_seed, stall_timeout_s, max_frame_bytes, backlog)
        self._latency_seed = latency_seed
        self.settings = settings or SessionSettings()
        self.clock = clock or SystemClock()
        # Fed on the emulator's input timeline (vlab.feed), a headless listener keeps time on the
        # emulator's simulated timeline, so a barge-in cuts the reply where the emulator says it was
        # heard, at any replay speed.
        self._server_time = ServerTimeClock(self.clock)
        self._audio = AssistantAudio(audio_output or SimulatedPlayback(self._server_time))
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._replaces_run = self.run_dir is not None and _replaces_run(self.run_dir, overwrite)
        self.record_audio = record_audio
        self.reconnect: Reconnect | None = Reconnect() if reconnect is True else (reconnect or None)
        self.stall_timeout_s = stall_timeout_s
        self._log = SessionLog(self.clock, sinks)
        self._entered = False  # a Session connects once (its log and run folder are that connection's)
        self.records: EventLog = self._log.records
        """Every event so far, client, server and local, in log order (reads like a list of records)."""
        self.server_session: Any = None
        """The session as the server last reported it (``session.created``/``session.updated``)."""
        self.sink_errors: list[BaseException] = self._log.sink_errors
        """Errors of sinks that failed (and were removed)."""
        self._barge_in = BargeInPolicy(barge_in)
        self._connector = Connector(
            endpoint=endpoint,
            api_key=api_key,
            model=model,
            dotenv_path=dotenv_path,
            credential=credential,
            emulator_options=emulator_options,
            default_model=self.settings.model,
            max_frame_bytes=max_frame_bytes,
        )
        self._reader: asyncio.Task[None] | None = None
        self._closed_error: ConnectionFailed | None = None
        self._feed = EventFeed(self.clock, backlog, sdk_adapter.server_event)
        self._link = Link(
            self._open_wire,
            self._handshake,
            clock=self.clock,
            stall_timeout_s=stall_timeout_s,
            reconnect=self.reconnect,
            redact=self._connector.redact,
        )
        self._input_ms = 0.0
        self._last_sent_ns = 0
        self._run_folder: RunFolder | None = None
        self.protocol_warnings = 0
        """How many server events broke the protocol (each logged as a ``vlab.protocol_warning`` record)."""
        self.settings_refused: str | None = None
        """The server's ``error`` (code: message) when it refused a ``session.update`` of this session: its
        settings, or some of them, are then not in effect. None while every update was accepted."""
        self._updates_sent: set[str] = set()  # the event_id of each session.update, to match its error
        self._truncations: set[asyncio.Task[None]] = set()

    # --- properties ----------------------------------------------------------------------------------

    def __repr__(self) -> str:
        target = self._connector.resolved
        where = target.describe() if target is not None else "target not resolved yet"
        state = "open" if self._link.wire is not None else "closed"
        warnings = f", {self.protocol_warnings} protocol warnings" if self.protocol_warnings else ""
        return f"Session({where}, {state}, {len(self.records)} events{warnings})"

    @property
    def target(self) -> Target:
        """Where the session connects and how it authenticates (resolved on first use, reading ``.env``).

        Raises:
            ConfigError: The endpoint configuration is invalid (e.g. a key without an endpoint).
        """
        return self._connector.target

    @property
    def audio_output(self) -> AudioOutput:
        """Where assistant audio goes (a speaker, or :class:`SimulatedPlayback`)."""
        return self._audio.output

    @audio_output.setter
    def audio_output(self, output: AudioOutput) -> None:
        self._audio.output = output

    @property
    def barge_in(self) -> BargeIn:
        """The barge-in policy."""
        return self._barge_in.mode

    @barge_in.setter
    def barge_in(self, mode: BargeIn | str) -> None:
        self._barge_in = BargeInPolicy(mode)

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established."""
        return self._link.reconnects

    @property
    def connection(self) -> VoiceLiveConnection:
        """The SDK connection (for anything vlab does not wrap; what you send through it is not logged)."""
        wire = self._link.wire
        if wire is None:
            raise VlabError("the session is not open; use `async with Session(...) as session:`")
        return wire.connection  # type: ignore[attr-defined]

    @property
    def connection_error(self) -> ConnectionFailed | None:
        """Why the connection ended, if it was lost (None while it is open, or after a normal close)."""
        if self._closed_error is None and self._link.loss is not None:
            self._closed_error = self._link.loss.error(
                target=self.target.describe(), run_dir=self.run_dir, reconnect=self.reconnect is not None
            )
        return self._closed_error

    # --- lifecycle ------------------------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        if self._entered:
            state = "is open already" if self._reader is not None else "has been used already"
            raise UsageError(
                f"this Session {state}: a Session connects once. For another connection, open a new one: "
                "async with Session(...) as session:"
            )
        self._entered = True
        await self._connector.__aenter__()  # starts the embedded emulator if there is no endpoint
        try:
            if self.run_dir is not None:
                metadata = session_metadata(
                    target=self.target,
                    settings=self.settings,
                    barge_in=self.barge_in.value,
                    sdk_version=sdk_adapter.sdk_version(),
                    started_wall_ns=self.clock.wall_ns(),
                )
                describe = getattr(self.audio_output, "describe", None)
                if callable(describe):
                    metadata["audio_output"] = describe()
                if self._replaces_run:  # the labels of the run it replaces are not this one's
                    from vlab.prompts import write_run_labels

                    write_run_labels(self.run_dir, None)
                self._run_folder, self._audio.recording = open_run_folder(
                    self._log,
                    self.run_dir,
                    metadata,
                    self.settings,
                    record_audio=self.record_audio,
                    replace=self._replaces_run,
                )
            try:
                await self._link.connect()
            except WireError as exc:  # the server hung up during the handshake
                raise self._connector.advice(exc) from None
            self._audio.start(self._on_playback)
            self._feed.start()
            self._reader = asyncio.create_task(self._read_loop(), name="vlab-session-reader")
        except BaseException as exc:
            await self._link.close()
            await self._connector.__aexit__(None, None, None)
            self._log.close()
            if self._run_folder is not None:  # the folder says why the session never opened
                why = str(exc) or type(exc).__name__
                with contextlib.suppress(OSError):  # the error raised matters more than its note
                    self._run_folder.write_summary({**self.summary(), "connection_error": why})
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection, stop the emulator if one was started, and finish the run folder."""
        if self._truncations:  # barge-ins waiting for the page's report (each bounded by its timeout)
            await asyncio.gather(*self._truncations, return_exceptions=True)
        reader = self._reader
        if reader is not None:
            self._link.stop()  # a cancelled receive is now a cancellation, not a stall
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self._reader = None
        await self._link.close()
        await self._connector.__aexit__(None, None, None)
        self._audio.close()
        self._log.close()
        if self._run_folder is not None:  # the events are on disk: this only adds the counts
            self._run_folder.write_summary(self.summary())
        self._feed.end()

    def summary(self) -> dict[str, Any]:
        """What happened in the session: counts, and how the connection ended (``session.json`` on close).

        Returns:
            ``events``, ``protocol_warnings``, ``reconnects``, ``settings_refused`` (the server's refusal
            of the settings, or None) and ``connection_error`` (why the connection was lost, or None).
        """
        error = self.connection_error
        return {
            "events": len(self.records),
            "protocol_warnings": self.protocol_warnings,
            "reconnects": self.reconnects,
            "connection_error": str(error) if error is not None else None,
            "settings_refused": self.settings_refused,
        }

    async def _open_wire(self) -> Wire:
        """Open an SDK connection (the link's opener); the first one is logged as ``vlab.connect``."""
        t_ns = self.clock.monotonic_ns()
        wire = await self._connector.open_wire()
        if self._link.generation == 0:
            target = self.target
            event = {"type": protocol.CONNECT, "target": target.kind, "auth": target.auth}
            self._log.append(event, "local", t_ns)
        return wire

    async def _handshake(self) -> None:
        """On each new connection: read ``session.created``, then send the session settings.

        Raises:
            ProtocolError: The first frame is not ``session.created``, or none came in time (a WebSocket
                endpoint that is not Voice Live); the message says what came instead.
        """
        try:
            created, t_ns = await self._link.recv(timeout_s=_HANDSHAKE_TIMEOUT_S)
        except TimeoutError:
            raise self._not_voice_live(f"nothing within {_HANDSHAKE_TIMEOUT_S:g} s") from None
        except ProtocolError as exc:
            raise self._not_voice_live(str(exc).removeprefix("the server sent ")) from None
        except UnreadableFrame as exc:
            raise self._not_voice_live(f"a frame that cannot be read ({exc.problem})") from None
        self._log_server(created, t_ns)
        kind = created.get("type")
        if kind != protocol.SESSION_CREATED:
            shown = self._connector.redact(warning_event(created, [])["raw"][:_SHOWN_CHARS])
            raise self._not_voice_live(f"{kind!r}: {shown}")
        problems = event_problems(created)
        if problems:  # Voice Live, if a sloppy one: warn and go on, as for any later event
            self._protocol_warning(created, problems, t_ns)
        self.server_session = sdk_adapter.server_event(created).get("session")
        if self._latency_seed is not None and self.simulated_timeline:  # before anything draws a latency
            seed = {protocol.LATENCY_SEED_METADATA_KEY: str(self._latency_seed)}
            await self._send_now({"type": protocol.CLIENT_SESSION_UPDATE, "session": {"metadata": seed}})
        await self._send_now({"type": protocol.CLIENT_SESSION_UPDATE, "session": self.settings.to_wire()})

    def _not_voice_live(self, got: str) -> ProtocolError:
        """The error for a server whose first frame is not ``session.created`` (``got``: what came instead)."""
        return ProtocolError(
            f"{self.target.describe()} accepted the WebSocket connection but did not speak Voice Live: "
            f"expected {protocol.SESSION_CREATED!r} as the first event, got {got}. Check that the endpoint "
            "is an Azure AI Voice Live endpoint (not a proxy, a wrong path or another WebSocket service)."
        )

    def _on_playback(self, kind: str, item_id: str, t_ns: int, info: Mapping[str, Any]) -> None:
        """Log a playback notice (``vlab.playback_started`` …) stamped when the audio reached the speaker."""
        self._log.append(
            {"type": protocol.local_record_type(kind), "item_id": item_id, **info}, "local", t_ns
        )

    # --- sinks and the log --------------------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """Add an observer; it sees every record from now on (and is closed with the session)."""
        self._log.add_sink(sink)

    def frame(self) -> pd.DataFrame:
        """The events so far as a DataFrame (see :func:`vlab.log.to_frame`), built from the log's columns."""
        return self.records.frame()

    @property
    def simulated_timeline(self) -> bool:
        """Whether the server is vlab's emulator, which stamps its events with their simulated time.

        (The embedded emulator, ``vlab emulator`` or an :class:`~vlab.emulator.Emulator` given as an endpoint;
        known from its first event, which the emulator stamps like every other.)
        """
        first = next((r for r in self.records if r.direction == "server"), None)
        return first is not None and first.sim_ms is not None

    # --- receiving -----------------------------------------------------------------------------------------

    def _log_server(self, payload: dict[str, Any], t_ns: int) -> None:
        """Log a received server event (its JSON; the SDK model is built only when a reader asks)."""
        rate = self._audio.rates(self.settings)[0] if payload.get("type") == _AUDIO_DELTA else None
        self._log.append(payload, "server", t_ns, audio_bytes_per_s=rate)

    async def _read_loop(self) -> None:
        """The reader task: log, react to and deliver what the link yields, until it ends."""
        try:
            async with contextlib.aclosing(self._link.events()) as items:
                async for item in items:
                    if isinstance(item, tuple):
                        payload, t_ns = item
                        payload = protocol.without_mcp_secrets(payload)  # its echo, kept and shown
                        self._log_server(payload, t_ns)
                        warned = self.protocol_warnings
                        problems = event_problems(payload)
                        if problems:
                            self._protocol_warning(payload, problems, t_ns)
                        else:
                            action = self._react_or_warn(payload, t_ns)
                            if action is not None:
                                await self._barge(action)
                        # a malformed event reaches readers as sent: its SDK model could raise on a field
                        malformed = self.protocol_warnings != warned
                        self._feed.put(sdk_adapter.RawServerEvent(payload) if malformed else payload)
                    elif isinstance(item, UnreadableFrame):
                        self._protocol_warning(None, [item.problem], item.t_ns, item.raw)
                    else:
                        self._on_notice(item)
            error = self.connection_error
            # a wait under way raises it to its caller; else this is the only word of it
            if error is not None:
                (log.info if self._feed.awaited else log.warning)("%s", error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # report, never lose silently
            log.exception("session reader failed")
            self._closed_error = ConnectionFailed(
                f"the session stopped reading events because of an internal error ({exc!r}); the events so far "
                "are logged. Please report this with the run folder."
            )
        finally:
            self._feed.end()

    def _on_notice(self, notice: Notice) -> None:
        """Log what the link reports about the connection; announce a reconnection to the readers."""
        event = notice_event(notice)
        if isinstance(notice, Reconnected):
            what = notice.loss.what
            log.warning(
                "reconnected to %s after: %s (attempt %d)", self.target.describe(), what, notice.attempt
            )
            self._feed.put(LocalEvent(event))  # the one record of vlab's own that readers get
            return
        self._log.append(event, "local", self.clock.monotonic_ns())
        if isinstance(notice, Reconnecting):
            self._input_ms = 0.0  # the new server session starts a new input-audio timeline

    def _protocol_warning(
        self, payload: dict[str, Any] | None, problems: list[str], t_ns: int, raw: bytes | None = None
    ) -> None:
        """Log a ``vlab.protocol_warning`` record for a malformed server event and count it."""
        self.protocol_warnings += 1
        event = warning_event(payload, problems, raw)
        log.warning(
            "protocol warning: the server sent a malformed %s event: %s", event["event_type"], problems
        )
        self._log.append(event, "local", t_ns)

    def _react_or_warn(self, payload: dict[str, Any], t_ns: int) -> BargeInAction | None:
        """:meth:`_react`, with a server event it cannot react to logged as a protocol warning.

        :mod:`vlab.session.checks` finds what is malformed before the reaction; this is the net under it, so
        that no server event, however odd, stops the reader.
        """
        try:
            return self._react(payload, t_ns)
        except Exception as exc:
            self._protocol_warning(payload, [f"the session could not react to it: {exc!r}"], t_ns)
            return None

    def _react(self, payload: dict[str, Any], t_ns: int) -> BargeInAction | None:
        """Keep the session's state and audio in step with one server event; returns a barge-in to do.

        Reads the event's raw JSON: attribute access on an SDK model deserializes the field again, and
        the model itself is only built when a reader asks for the event.
        """
        get = payload.get
        kind = get("type")
        sim_ms = get(protocol.SIM_MS_KEY)
        if sim_ms is not None:
            self._server_time.observe_ms(sim_ms)
        if kind == _AUDIO_DELTA:
            if not self._audio.delta(payload, t_ns, self.settings):
                self._protocol_warning(payload, ["'delta' is not base64 audio"], t_ns)
        elif kind == protocol.SESSION_UPDATED:
            self.server_session = sdk_adapter.server_event(payload).get("session")
            timeline = protocol.timeline_mode(payload)
            if timeline is not None:  # fed on the emulator's input timeline: listen on its time
                self._server_time.follow(timeline in (protocol.TIMELINE_INPUT, protocol.TIMELINE_ENDED))
        elif kind == protocol.SPEECH_STARTED:
            return self._barge_in.on_speech_started(
                self.audio_output,
                response_id=self._link.response_id,
                server_interrupts=server_interrupts(self.server_session),
            )
        elif kind == protocol.ERROR:
            error = get("error") or {}
            if self._refuses_an_update(error):
                refusal = self._connector.redact(f"{error.get('code')}: {error.get('message')}")
                self.settings_refused = self.settings_refused or refusal
                log.warning("the server refused the session settings: %s", refusal)
            else:
                level = logging.WARNING if error.get("type") == "server_error" else logging.INFO
                log.log(level, "server error event: %s: %s", error.get("code"), error.get("message"))
        elif kind == protocol.RESPONSE_DONE:
            failed = failed_response_error(payload)
            if failed is not None:
                error = failed if isinstance(failed, dict) else {}
                rid = (get("response") or {}).get("id")
                log.warning("response %s failed: %s: %s", rid, error.get("code"), error.get("message"))
        return None

    def _refuses_an_update(self, error: Mapping[str, Any]) -> bool:
        """Whether the ``error`` answers a ``session.update``: by its ``event_id``, else by its ``param``."""
        event_id = error.get("event_id")
        if isinstance(event_id, str) and event_id:
            return event_id in self._updates_sent
        param = error.get("param")
        return isinstance(param, str) and param.startswith("session.")

    async def _barge(self, action: BargeInAction) -> None:
        """Send what the barge-in policy decided (playback has already stopped).

        An output that learns what was heard only later (a browser page) offers ``confirm_clear()``:
        the cancel goes at once, and the item is truncated at the ms the output reports, from a task,
        so the reader keeps reading (and stamping) events meanwhile.
        """
        confirm = getattr(self.audio_output, "confirm_clear", None)
        try:
            if action.cancel:
                await self.cancel_response()
            if callable(confirm):
                task = asyncio.create_task(self._truncate_when_reported(confirm, action))
                self._truncations.add(task)
                task.add_done_callback(self._truncations.discard)
            elif action.truncate_item_id is not None:
                await self.truncate(action.truncate_item_id, action.truncate_at_ms)
        except ConnectionFailed:
            pass  # the socket is dead: the next receive says how it ended

    async def _truncate_when_reported(
        self, confirm: Callable[[], Awaitable[tuple[str | None, float] | None]], action: BargeInAction
    ) -> None:
        """Truncate at the ms the output reports it played (its estimate if it does not answer)."""
        reported = await confirm()
        item_id, heard_ms = (
            reported if reported is not None else (action.truncate_item_id, action.truncate_at_ms)
        )
        if item_id is not None and heard_ms > 0:
            try:
                await self.truncate(item_id, int(heard_ms))
            except ConnectionFailed:
                pass

    def events(self, *, typed: bool = True) -> AsyncIterator[Any]:
        """Server events (SDK models) from now on, until the session closes.

        ``typed=False`` yields each event's JSON object as received (a ``dict``) instead: no SDK model is
        built, which makes a Session cheaper per event than the SDK's own loop when only the log, the
        DataFrame or the recordings are wanted.
        """
        return self._feed.events(typed=typed)

    async def wait_for(
        self, match: EventMatch, *, timeout_s: float = 60.0, count: int = 1, typed: bool = True
    ) -> list[Any]:
        """Read server events until ``count`` of them match (a type name or a predicate).

        Reading is a cursor over the session's events: each call continues where the previous one
        stopped, so ``await s.append_audio(...)`` then ``await s.wait_for("response.done")`` never misses
        an event that arrived in between. Returns the events read (SDK models), the matching one last.
        With ``typed=False`` they are the events' JSON objects as received (``dict``; a predicate gets
        those too), and no SDK model is built. The timeout runs on the session's clock.

        Raises:
            TimeoutError: Not in time; the message lists the types that did arrive.
            ConnectionFailed: The connection was lost first (and not re-established); the message says
                how and what to do.
            UsageError: ``match`` names a client event, a record vlab only logs or a misspelt event type:
                each would only time out. A type vlab does not know otherwise is waited for (a newer
                service's event).
            ConfigError: ``timeout_s`` is not a number of seconds > 0, ``count`` not an integer ≥ 1, or
                ``match`` neither an event type nor a predicate.
        """
        check_seconds("timeout_s", timeout_s)
        check_count("count", count)
        if not isinstance(match, str) and not callable(match):
            raise ConfigError(
                "match must be an event type, e.g. 'response.done', or a predicate on the event, got "
                f"{match!r}"
            )
        if isinstance(match, str):
            _refuse_what_never_arrives(match)
        return await self._feed.wait_for(
            match, timeout_s=timeout_s, count=count, ended=self._ended_error, typed=typed
        )

    # --- sending ----------------------------------------------------------------------------------------------

    def _ended_error(self, doing: str) -> ConnectionFailed:
        err = self.connection_error
        if err is not None:
            return ConnectionFailed(f"{err} (raised {doing})")
        if self._reader is None:
            return ConnectionFailed(
                f"the session is not open ({doing}); use `async with Session(...) as session:`"
            )
        return ConnectionFailed(f"the session ended {doing}")

    async def send(self, event: Mapping[str, Any], **record_extra: Any) -> None:
        """Send any client event (a wire-format dict) and log it.

        While the connection is being re-established the send waits until it is up again, then goes
        out on the new connection.

        Raises:
            ConnectionFailed: The connection is lost (and not re-established); the message says how.
            ConfigError: ``event`` is not a mapping with a ``type``.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            raise ConfigError(
                "send takes a client event as a dict with its type, e.g. {'type': 'response.create'}, got "
                + (  # never the event itself: it may carry a tool's credentials
                    f"a mapping with the keys {', '.join(map(str, list(event)[:8]))} and no type"
                    if isinstance(event, Mapping)
                    else f"a {type(event).__name__}"
                    + (
                        " (pass the dict itself, not its JSON text)"
                        if isinstance(event, (str, bytes))
                        else ""
                    )
                )
            )
        reader = self._reader
        if reader is not None and asyncio.current_task() is reader:
            await self._send_now(event, **record_extra)  # barge-in: on the connection being read
            return
        if self._reader is None:
            raise self._ended_error(f"sending {event.get('type')!r}")
        try:
            t_ns = await self._link.send_when_up(event)
        except LinkEnded:
            raise self._ended_error(f"sending {event.get('type')!r}") from None
        self._last_sent_ns = t_ns
        self._log.append(event, "client", t_ns, **record_extra)

    async def _send_now(self, event: Mapping[str, Any], **record_extra: Any) -> None:
        """Send on the current connection without waiting for it (handshake, barge-in) and log it.

        A ``session.update`` goes with an ``event_id`` (its own, or one vlab gives it), so that an ``error``
        refusing it can be told from others (:attr:`settings_refused`).
        """
        if event.get("type") == protocol.CLIENT_SESSION_UPDATE:
            if not isinstance(event.get("event_id"), str):
                event = {"event_id": f"vlab_session_update_{len(self._updates_sent) + 1}", **event}
            self._updates_sent.add(event["event_id"])
        try:
            t_ns = await self._link.send(event)
        except WireClosed as exc:
            raise ConnectionFailed(self._connector.redact(exc.reason)) from None
        self._last_sent_ns = t_ns
        self._log.append(event, "client", t_ns, **record_extra)

    async def update(self, settings: SessionSettings) -> None:
        """Send ``session.update`` with new settings (the server answers with ``session.updated``).

        Raises:
            ConfigError: ``settings`` is not a :class:`SessionSettings`.
        """
        require_settings(settings, "session.update")
        self.settings = settings
        await self.send({"type": protocol.CLIENT_SESSION_UPDATE, "session": settings.to_wire()})

    @property
    def input_ms(self) -> float:
        """Input audio sent on this connection so far, in ms: where the next append starts on the input timeline."""
        return self._input_ms

    async def append_audio(self, pcm: InputAudio) -> None:
        """Append input audio and log its place on the input timeline.

        ``pcm``: bytes in the session's input format, or a NumPy array of samples (for ``pcm16``, int16 or
        float in [-1, 1]; see :func:`vlab.audio.pcm.as_input_bytes`).

        Raises:
            AudioFormatError: ``pcm`` is not such audio, or not a whole number of samples (nothing is sent).
        """
        pcm = self._input_bytes(pcm)
        offset = self._input_ms
        rate = self.settings.input_bytes_per_s
        self._input_ms += len(pcm) / rate * 1000.0
        event = {"type": protocol.CLIENT_APPEND, "audio": base64.b64encode(pcm).decode("ascii")}
        await self.send(event, audio_bytes_per_s=rate, input_offset_ms=offset)
        if self._audio.recording is not None:
            self._audio.recording.input_audio(pcm, self._last_sent_ns)  # the stamp of this append's record

    def _input_bytes(self, audio: InputAudio) -> bytes:
        fmt = self.settings.input_audio_format
        return as_input_bytes(audio, fmt, self.settings.input_sample_rate)

    async def commit(self) -> None:
        """Commit the input buffer as a user item (manual turns)."""
        await self.send({"type": protocol.CLIENT_COMMIT})

    async def clear_input(self) -> None:
        """Drop uncommitted input audio (the server answers ``input_audio_buffer.cleared``)."""
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

    async def interrupt(self) -> None:
        """Barge in now, as the server's ``speech_started`` makes the session do (the barge-in policy).

        Playback stops, the response in progress is cancelled and the assistant's item is truncated at
        what was heard. For manual turns (push-to-talk), where no ``speech_started`` comes: call it before
        committing a turn the user spoke over the assistant. Nothing is sent when nothing is under way.
        """
        action = self._barge_in.on_speech_started(
            self.audio_output, response_id=self._link.response_id, server_interrupts=False
        )
        if action is not None and (action.cancel or action.truncate_item_id is not None):
            await self._barge(action)

    async def send_text(self, text: str, *, respond: bool = True) -> None:
        """Add a user text message; by default also ask for a response.

        Raises:
            ConfigError: ``text`` is not a string (nothing is sent).
        """
        if not isinstance(text, str):
            raise ConfigError(f"text must be a string, got {type(text).__name__}")
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send({"type": protocol.CLIENT_ITEM_CREATE, "item": item})
        if respond:
            await self.create_response()

    async def send_function_output(
        self,
        call_id: str,
        output: str | Mapping[str, Any],
        *,
        respond: bool = True,
        run_ms: float | None = None,
    ) -> None:
        """Return a function call's result (a string, or a mapping sent as JSON); by default ask for a response.

        ``run_ms``: on vlab's emulator, how long the function ran on its simulated timeline (the output then
        happens that long after the call, at any replay speed; ``docs/timeline.md``). Not sent elsewhere:
        there the function's run time is its own.

        Raises:
            ConfigError: ``output`` is neither a string nor something JSON can write.
        """
        try:
            text = output if isinstance(output, str) else json.dumps(output)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"the output of function call {call_id!r} must be a string or JSON-serialisable (a dict, "
                f"list, number…): {exc}"
            ) from None
        item = {"type": protocol.FUNCTION_CALL_OUTPUT_ITEM, "call_id": call_id, "output": text}
        event: dict[str, Any] = {"type": protocol.CLIENT_ITEM_CREATE, "item": item}
        if run_ms is not None and self.simulated_timeline:
            event[protocol.RUN_MS_KEY] = run_ms
        await self.send(event)
        if respond:
            await self.create_response()

    async def send_mcp_approval(self, approval_request_id: str, approve: bool) -> None:
        """Answer an ``mcp_approval_request`` item: the service runs the MCP call only when ``approve`` is True.

        An approved call comes in a response of the service's own; after a declined one, ask for a response
        (:meth:`create_response`) to hear the model say so.
        """
        item = {
            "type": protocol.MCP_APPROVAL_RESPONSE_ITEM,
            "approval_request_id": approval_request_id,
            "approve": approve,
        }
        await self.send({"type": protocol.CLIENT_ITEM_CREATE, "item": item})

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

    async def stream_audio(self, pcm: InputAudio, *, speed: float = 1.0, chunk_ms: float = 20.0) -> None:
        """Append ``pcm`` in ``chunk_ms`` chunks paced at ``speed`` × real time (``math.inf``: no pacing).

        ``pcm`` as :meth:`append_audio` takes it.

        Raises:
            AudioFormatError: ``pcm`` is not such audio, or not a whole number of samples (nothing is sent).
        """
        from vlab.audio.pacing import paced_chunks

        pcm = self._input_bytes(pcm)
        width = protocol.bytes_per_sample(self.settings.input_audio_format)
        async for chunk, _ in paced_chunks(
            pcm,
            sample_rate=self.settings.input_sample_rate,
            chunk_ms=chunk_ms,
            speed=speed,
            clock=self.clock,
            bytes_per_sample=width,
        ):
            await self.append_audio(chunk)

    async def stream_microphone(self, mic: Any) -> None:
        """Append everything a microphone captures until cancelled; overflows are logged as they happen.

        ``mic`` is a started-or-startable :class:`vlab.audio.devices.Microphone` (or a ``HalfDuplex``
        around one) at the session's input rate. Each time its overflow count grows, a local
        ``vlab.input_overflow`` record (``overflows``: the total so far) marks the lost audio in the log.
        A microphone that stamps its chunks (``chunks()`` yielding :class:`~vlab.audio.devices.MicChunk`)
        also anchors the input timeline on the capture clock: a ``vlab.capture`` record, stamped with
        the capture time of the sample at input offset ``audio_start_ms``, every second of input and
        after lost audio. A microphone with ``describe()`` (the browser's) is logged as ``vlab.audio_input``.
        """
        seen = int(getattr(mic, "overflows", 0))
        chunks = getattr(mic, "chunks", None)
        if not callable(chunks):
            async for pcm in mic:
                await self.append_audio(g711.from_pcm16(pcm, self.settings.input_audio_format))
                seen = self._log_overflows(mic, seen)
            return
        anchored_ms = -math.inf
        describe = getattr(mic, "describe", None)
        async for chunk in chunks():
            if callable(describe):  # at the first chunk: a browser knows what it applied once it captures
                self._log.append(
                    {"type": protocol.AUDIO_INPUT, **describe()}, "local", self.clock.monotonic_ns()
                )
                describe = None
            if self._input_ms - anchored_ms >= _CAPTURE_ANCHOR_MS or int(getattr(mic, "overflows", 0)) > seen:
                anchored_ms = self._input_ms
                event = {"type": protocol.CAPTURE, "audio_start_ms": anchored_ms}
                self._log.append(event, "local", chunk.t_ns)
            await self.append_audio(g711.from_pcm16(chunk.pcm16, self.settings.input_audio_format))
            seen = self._log_overflows(mic, seen)

    def _log_overflows(self, mic: Any, seen: int) -> int:
        total = int(getattr(mic, "overflows", 0))
        if total > seen:
            self._log.append(
                {"type": protocol.INPUT_OVERFLOW, "overflows": total}, "local", self.clock.monotonic_ns()
            )
        return total


def _check_arguments(
    settings: object, latency_seed: object, stall_timeout_s: object, max_frame_bytes: object, backlog: object
) -> None:
    """Raise :class:`ConfigError` for a :class:`Session` argument of the wrong kind or out of its range."""
    if latency_seed is not None and (isinstance(latency_seed, bool) or not isinstance(latency_seed, int)):
        raise ConfigError(f"latency_seed must be an integer or None, got {latency_seed!r}")
    if stall_timeout_s is not None:
        check_seconds("stall_timeout_s", stall_timeout_s)
    check_count("max_frame_bytes", max_frame_bytes)
    check_count("backlog", backlog)  # 0 would keep no event for wait_for
    if settings is not None:
        require_settings(settings, "Session")


def _replaces_run(run_dir: Path, overwrite: bool) -> bool:
    """Whether ``run_dir`` holds a run the session replaces (``overwrite``).

    Raises:
        ConfigError: ``run_dir`` is a file.
        RunFolderTaken: It holds a run and ``overwrite`` is False.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {str(run_dir)!r} is a file, not a folder; give a folder for the run")
    taken = holds_events(run_dir)
    if taken and not overwrite:
        raise RunFolderTaken(
            f"{run_dir} already holds a run ({JSONL_NAME}); this session would replace it. Give "
            "another run_dir, or pass overwrite=True to replace it"
        )
    return taken
