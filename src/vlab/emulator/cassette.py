"""Replay a recorded session (a *cassette*): the recorded server events, at their recorded times.

A :class:`Cassette` holds what a run's server said, each event at its offset on the input-audio
timeline, what its client sent (the input audio and the non-audio client events, in order) and the
audio of the replies. A :class:`CassetteConnection` answers a client with it:

- each recorded server event goes out once the client has sent the client events it waits for
  (:attr:`CassetteEvent.after`), at its recorded offset on the simulated timeline
  (:mod:`vlab.emulator.timeline`), with that offset as its :data:`vlab.protocol.SIM_MS_KEY`: when the
  client's audio reaches it for a vlab client on the ``input`` timeline (and freely once it says
  ``ended``); for any other client on the wall clock × speed from the audio received so far (real time
  at speed max, since such a client never says when its audio has ended). The trace's ``send`` entries
  record the input audio received when each event went out (``input_ms``);
- the client must send what the recording's client sent: the same audio (compared sample by sample,
  within :data:`AUDIO_TOLERANCE`), the same sequence of other client events, the same session settings.
  Where it diverges the emulator sends one ``error`` event (code :data:`DIVERGENCE_CODE`) saying what
  differs, logs it, and replays nothing more: it does not improvise;
- vlab's timeline markers (:func:`timeline_marker`) are time control, not settings: they are not
  compared, the recorded answer to a marker goes out when the client sends that marker (and is left out
  for a client that sends none), and a marker the recording has no answer for (a run recorded on
  Azure) is answered as the emulator does.

The emulator never reads a run folder itself (it knows nothing of vlab's log); :func:`vlab.cassette.load_cassette`
builds a cassette from one.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from vlab import protocol
from vlab.audio import g711
from vlab.clock import Clock
from vlab.emulator.timeline import Scheduler
from vlab.emulator.trace import Trace
from vlab.emulator.wire import Ids, WireError, parse_client_frame

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("vlab.emulator")

DIVERGENCE_CODE = "cassette_divergence"
"""``error.code`` of the event that reports a client diverging from the cassette."""
DIVERGENCE_CLOSE_CODE = 1008
"""The WebSocket close code (policy violation) the connection is closed with after that event: nothing more
would come on it."""
AUDIO_TOLERANCE = 64
"""Largest difference of a PCM16 sample (of 32768) that still counts as the same audio (about -54 dBFS)."""
_IGNORED_SESSION_KEYS = ("metadata",)
"""Session keys not compared: vlab's own timeline and fault markers travel in ``metadata``."""


@dataclass(frozen=True, slots=True)
class CassetteEvent:
    """One recorded server event."""

    at_ms: float
    """Its offset on the input-audio timeline, in ms."""
    after: int
    """Client events (other than audio and timeline markers) the recording's client had sent before it:
    it waits for them."""
    event: dict[str, Any]
    """The event as the server sent it (audio deltas with their audio)."""
    marker: str | None = None
    """For the ``session.updated`` that answered a vlab timeline marker: the marker's mode."""


@dataclass(frozen=True)
class Cassette:
    """A recorded session to replay (see the module docstring)."""

    events: tuple[CassetteEvent, ...]
    """Server events, in the recorded order."""
    client_events: tuple[dict[str, Any], ...]
    """The recording's non-audio client events, in order (``type``, and ``session`` for updates)."""
    input_audio: bytes
    """Every input audio byte the recording's client appended, as PCM16 (G.711 expanded)."""
    input_rate: int
    """Sample rate of :attr:`input_audio`, in Hz."""
    input_format: str = "pcm16"
    """The recorded session's ``input_audio_format``: a replaying client's appends are expanded from it to
    PCM16 before they are compared with :attr:`input_audio`."""
    source: str = ""
    """Where the cassette was read from (a run folder)."""
    notes: tuple[str, ...] = field(default=())
    """What the recording lacked and the replay stands in for (e.g. reply audio replayed as silence)."""


def _session_body(event: dict[str, Any]) -> dict[str, Any]:
    body = event.get("session")
    body = body if isinstance(body, dict) else {}
    return {k: v for k, v in body.items() if k not in _IGNORED_SESSION_KEYS}


def timeline_marker(event: dict[str, Any]) -> str | None:
    """The mode of a ``session.update`` that only sets vlab's timeline (``{"metadata": {"vlab.timeline": …}}``).

    Such updates are vlab's control of the emulator's time, not settings: a cassette neither records
    them nor their answers, and answers them itself when a client sends them (docs/timeline.md).
    """
    if event.get("type") != protocol.CLIENT_SESSION_UPDATE or _session_body(event):
        return None
    mode = protocol.timeline_mode(event)
    return mode if mode in protocol.TIMELINE_MODES else None


class CassetteConnection:
    """Answers one WebSocket client from a :class:`Cassette`.

    Args:
        ws: The prepared aiohttp WebSocket.
        cassette: The recording.
        speed: Simulated ms per wall ms once time runs free (``math.inf``: no waiting).
        clock: The wall clock.
        trace: The emulator's ground-truth trace, if kept.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        cassette: Cassette,
        *,
        speed: float,
        clock: Clock,
        trace: Trace | None,
    ) -> None:
        self.ws = ws
        self.cassette = cassette
        self.trace = trace
        self.id = Ids.new("sess")
        self.scheduler = Scheduler(speed, clock)
        self.diverged: str | None = None
        """What differed, once the client diverged from the recording."""
        self._audio_pos = 0  # bytes of input audio received
        self._client_count = 0  # client events received (not audio, not timeline markers)
        self._next = 0  # index of the next recorded event not yet scheduled
        self._markers: dict[str, int] = {}  # timeline markers received, by mode
        self._answered: dict[str, int] = {}  # recorded marker answers scheduled, by mode
        self._recorded_answers: dict[str, int] = {}
        for recorded in cassette.events:
            if recorded.marker is not None:
                self._recorded_answers[recorded.marker] = self._recorded_answers.get(recorded.marker, 0) + 1
        self._live = False  # the client sent audio before any timeline marker: time runs on the wall clock
        self.scheduler.set_mode(protocol.TIMELINE_INPUT)  # nothing runs ahead of the audio until we know
        self._bytes_per_ms = self.cassette.input_rate * 2 / 1000.0
        self._error: dict[str, Any] | None = None  # the divergence error, until sent
        self._session: dict[str, Any] = {}  # the session as the recording last reported it

    def _trace(self, **entry: Any) -> None:
        if self.trace is not None:
            self.trace.add(conn=self.id, **entry)

    async def run(self) -> None:
        """Serve the connection until the client closes it."""
        from aiohttp import WSMsgType

        self.scheduler.start()
        self._release()
        try:
            async for msg in self.ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_frame(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            await self.scheduler.close()
            self._report_unsent()

    def _report_unsent(self) -> None:
        """Log the recorded events the client closed before, when they waited for a client event it never sent."""
        events = self.cassette.events
        if self.diverged is not None or self._next >= len(events):
            return
        waiting = events[self._next]
        if waiting.after <= self._client_count:
            return  # released in time; the client simply closed before their times
        expected = self.cassette.client_events[self._client_count]["type"]
        log.warning(
            "cassette replay: %d recorded events were not sent: they follow the recording client's %s "
            "(client event #%d), which this client never sent",
            len(events) - self._next,
            expected,
            self._client_count + 1,
        )
        self._trace(kind="cassette", event="unsent", events=len(events) - self._next, waiting_for=expected)

    async def _on_frame(self, data: str | bytes) -> None:
        try:
            event = parse_client_frame(data)
        except WireError as err:
            await self._send_now(err.to_event(Ids.new("event")))
            return
        if self.diverged is not None:
            return
        mode = timeline_marker(event)
        if event["type"] == protocol.CLIENT_APPEND:
            self._append(event)
        elif mode is not None:
            self._set_timeline(mode)
        else:
            self._client_event(event)
        if self._error is not None:
            error, self._error = self._error, None
            await self._send_now(error)
            # nothing more will come: the client learns it now, not when its wait for a reply times out
            await self.ws.close(code=DIVERGENCE_CLOSE_CODE, message=b"the client diverged from the recording")
        elif self.diverged is None:
            self._release()

    def _append(self, event: dict[str, Any]) -> None:
        try:
            audio = g711.to_pcm16(
                base64.b64decode(str(event.get("audio", "")), validate=True), self.cassette.input_format
            )
        except (binascii.Error, ValueError):
            audio = b""
        start, recorded = self._audio_pos, self.cassette.input_audio
        expected = recorded[start : start + len(audio)]
        at_ms = start / self._bytes_per_ms
        if len(expected) < len(audio):
            self._diverge(
                f"the client sent more audio than the recording ({(start + len(audio)) / self._bytes_per_ms:.0f} ms "
                f"> {len(recorded) / self._bytes_per_ms:.0f} ms)"
            )
            return
        n = len(audio) // 2 * 2
        a = np.frombuffer(audio[:n], "<i2").astype(np.int32)
        b = np.frombuffer(expected[:n], "<i2").astype(np.int32)
        if n and int(np.max(np.abs(a - b))) > AUDIO_TOLERANCE:
            first = int(np.argmax(np.abs(a - b) > AUDIO_TOLERANCE))
            self._diverge(
                f"the client's audio differs from the recording at {at_ms + first * 2 / self._bytes_per_ms:.0f} ms "
                "of input audio (replay the same prompt, at the same input rate)"
            )
            return
        self._audio_pos += len(audio)
        if not self._markers and not self._live:
            # A client that says nothing of its timeline: time runs on from the audio received, on the wall
            # clock x speed (real time at speed max: such a client does not say when its audio has ended).
            self._live = True
            if math.isinf(self.scheduler.speed):
                self.scheduler.speed = 1.0
        self.scheduler.input_decided(self._audio_pos / self._bytes_per_ms)
        if self._live:
            self.scheduler.set_mode(protocol.TIMELINE_LIVE)

    def _client_event(self, event: dict[str, Any]) -> None:
        index = self._client_count
        recorded = self.cassette.client_events
        kind = event["type"]
        if index >= len(recorded):
            self._diverge(
                f"the client sent {kind} (client event #{index + 1}); the recording's client sent no more"
            )
            return
        want = recorded[index]
        if kind != want["type"]:
            self._diverge(
                f"the client sent {kind} (client event #{index + 1}); the recording's client sent {want['type']}"
            )
            return
        if kind == protocol.CLIENT_SESSION_UPDATE:
            got, expected = _session_body(event), _session_body(want)
            if got != expected:
                keys = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
                self._diverge(f"session.update #{index + 1} differs from the recording in: {', '.join(keys)}")
                return
        self._client_count += 1

    def _set_timeline(self, mode: str) -> None:
        """A vlab client sets how time advances: follow it; answer it if the recording did not."""
        self._markers[mode] = self._markers.get(mode, 0) + 1
        self.scheduler.input_decided(self._audio_pos / self._bytes_per_ms)
        self.scheduler.set_mode(mode)
        if self._markers[mode] <= self._recorded_answers.get(mode, 0):
            return  # the recorded answer goes out in its place (see _release)

        async def answer() -> None:
            if mode == protocol.TIMELINE_ENDED:
                await self.scheduler.until_idle()  # after every recorded event that is due
            if self.diverged is None:
                metadata = {**(self._session.get("metadata") or {}), protocol.TIMELINE_METADATA_KEY: mode}
                await self._send_now(
                    {
                        "type": protocol.SESSION_UPDATED,
                        "event_id": Ids.new("event"),
                        "session": {**self._session, "metadata": metadata},
                        protocol.SIM_MS_KEY: round(self.scheduler.now_ms, 3),
                    }
                )

        self.scheduler.spawn(self.scheduler.current_ms(), answer)

    def _release(self) -> None:
        """Schedule, in the recorded order, every recorded event whose client events have been received."""
        events = self.cassette.events
        while self._next < len(events) and events[self._next].after <= self._client_count:
            recorded = events[self._next]
            mode = recorded.marker
            if mode is not None and not self._live:
                if self._markers.get(mode, 0) <= self._answered.get(mode, 0):
                    return  # its marker has not come yet; nothing recorded after it goes first
                self._answered[mode] = self._answered.get(mode, 0) + 1
            self._next += 1
            if mode is None or not self._live:
                self.scheduler.spawn(recorded.at_ms, partial(self._send_recorded, recorded))

    async def _send_recorded(self, recorded: CassetteEvent) -> None:
        if self.diverged is not None:
            return
        event = {**recorded.event, protocol.SIM_MS_KEY: round(recorded.at_ms, 3)}
        if event.get("type") in (protocol.SESSION_CREATED, protocol.SESSION_UPDATED):
            session = event.get("session")
            self._session = dict(session) if isinstance(session, dict) else self._session
        self._trace(
            kind="send",
            sim_ms=event[protocol.SIM_MS_KEY],
            input_ms=round(self._audio_pos / self._bytes_per_ms, 3),
            type=event.get("type"),
            source="cassette",
        )
        await self._send_now(event)

    async def _send_now(self, event: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_str(json.dumps(event, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            return

    def _diverge(self, what: str) -> None:
        """Say once, in an ``error`` event and the log, where the client left the recording; replay no more."""
        self.diverged = what
        message = (
            f"The client diverged from the recorded session {self.cassette.source or ''}: {what}. "
            "The emulator replays only what was recorded; record a new run for this client."
        )
        log.warning("cassette replay stopped: %s", message)
        self._trace(kind="cassette", event="diverged", what=what)
        error = {
            "type": protocol.ERROR,
            "event_id": Ids.new("event"),
            "error": {
                "type": "invalid_request_error",
                "code": DIVERGENCE_CODE,
                "message": message,
                "param": None,
                "event_id": None,
            },
            protocol.SIM_MS_KEY: round(max(self.scheduler.now_ms, self._audio_pos / self._bytes_per_ms), 3),
        }
        self._error = error
