"""Replay a recorded session (a *cassette*): the recorded server events, at their recorded times.

A :class:`Cassette` holds what a run's server said, each event at its offset on the input-audio
timeline, what its client sent (the input audio and the non-audio client events, in order) and the
audio of the replies. A :class:`CassetteConnection` answers a client with it:

- each recorded server event goes out once the client has sent the client events that came before it in
  the recording, at its recorded offset on the simulated timeline (:mod:`vlab.emulator.timeline`: in
  ``input`` mode when the client's audio reaches it, in ``live`` mode on the wall clock × speed), with
  that offset as its :data:`vlab.protocol.SIM_MS_KEY`;
- the client must send what the recording's client sent: the same audio (compared sample by sample,
  within :data:`AUDIO_TOLERANCE`), the same sequence of other client events, the same session settings.
  Where it diverges the emulator sends one ``error`` event (code :data:`DIVERGENCE_CODE`) saying what
  differs, logs it, and replays nothing more: it does not improvise.

The emulator never reads a run folder itself (it knows nothing of vlab's log); :func:`vlab.cassette.load_cassette`
builds a cassette from one.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from vlab import protocol
from vlab.clock import Clock
from vlab.emulator.timeline import Scheduler
from vlab.emulator.trace import Trace
from vlab.emulator.wire import Ids, WireError, parse_client_frame

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("vlab.emulator")

DIVERGENCE_CODE = "cassette_divergence"
"""``error.code`` of the event that reports a client diverging from the cassette."""
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
    """Non-audio client events the recording's client had sent before it."""
    event: dict[str, Any]
    """The event as the server sent it (audio deltas with their audio)."""


@dataclass(frozen=True)
class Cassette:
    """A recorded session to replay (see the module docstring)."""

    events: tuple[CassetteEvent, ...]
    """Server events, in the recorded order."""
    client_events: tuple[dict[str, Any], ...]
    """The recording's non-audio client events, in order (``type``, and ``session`` for updates)."""
    input_audio: bytes
    """Every input audio byte the recording's client appended (PCM16)."""
    input_rate: int
    """Sample rate of :attr:`input_audio`, in Hz."""
    source: str = ""
    """Where the cassette was read from (a run folder)."""
    notes: tuple[str, ...] = field(default=())
    """What the recording lacked and the replay stands in for (e.g. reply audio replayed as silence)."""


def _session_body(event: dict[str, Any]) -> dict[str, Any]:
    body = event.get("session")
    body = body if isinstance(body, dict) else {}
    return {k: v for k, v in body.items() if k not in _IGNORED_SESSION_KEYS}


def _timeline_mode(event: dict[str, Any]) -> str | None:
    body = event.get("session")
    metadata = body.get("metadata") if isinstance(body, dict) else None
    mode = metadata.get(protocol.TIMELINE_METADATA_KEY) if isinstance(metadata, dict) else None
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
        self._client_count = 0  # non-audio client events received
        self._next = 0  # index of the next recorded event not yet scheduled
        self._bytes_per_ms = self.cassette.input_rate * 2 / 1000.0
        self._error: dict[str, Any] | None = None  # the divergence error, until sent

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

    async def _on_frame(self, data: str | bytes) -> None:
        try:
            event = parse_client_frame(data)
        except WireError as err:
            await self._send_now(err.to_event(Ids.new("event")))
            return
        if self.diverged is not None:
            return
        if event["type"] == protocol.CLIENT_APPEND:
            self._append(event)
        else:
            self._client_event(event)
        if self._error is not None:
            error, self._error = self._error, None
            await self._send_now(error)
        elif self.diverged is None:
            self._release()

    def _append(self, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(str(event.get("audio", "")), validate=True)
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
        if self.scheduler.mode == protocol.TIMELINE_INPUT:
            self.scheduler.input_decided(self._audio_pos / self._bytes_per_ms)

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
            mode = _timeline_mode(event)
            if mode is not None:
                self.scheduler.input_decided(self._audio_pos / self._bytes_per_ms)
                self.scheduler.set_mode(mode)
        self._client_count += 1

    def _release(self) -> None:
        """Schedule every recorded event whose client events have all been received."""
        events = self.cassette.events
        while self._next < len(events) and events[self._next].after <= self._client_count:
            recorded = events[self._next]
            self._next += 1
            self.scheduler.spawn(recorded.at_ms, partial(self._send_recorded, recorded))

    async def _send_recorded(self, recorded: CassetteEvent) -> None:
        if self.diverged is not None:
            return
        event = {**recorded.event, protocol.SIM_MS_KEY: round(recorded.at_ms, 3)}
        self._trace(kind="send", sim_ms=event[protocol.SIM_MS_KEY], type=event.get("type"), source="cassette")
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
