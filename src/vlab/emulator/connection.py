"""One emulated Voice Live connection: session, input buffer with server VAD, conversation, responses.

Everything the connection does happens on its simulated timeline (:mod:`vlab.emulator.timeline`): a
client event at the input-audio position it arrived at, a VAD decision at the audio position where it
was decided plus the latency model's delays, a response's events at their modelled times. The
connection's :class:`~vlab.emulator.timeline.Scheduler` runs these steps one at a time in order of
simulated time, so the service's event order holds (docs/protocol.md#event-order) and a reply and the user's
next words are ordered by their times, never by which task runs first.

The parts: the input audio, its VAD and the end-of-utterance hold are an
:class:`~vlab.emulator.input_buffer.InputBuffer`; the items a :class:`~vlab.emulator.items.Conversation`;
each response a :class:`~vlab.emulator.response_run.ResponseRun` that sees the connection only through
its outbox (:class:`~vlab.emulator.response_run.ResponseHost`).

Input transcription runs the recognizer on each committed user item (on the worker thread) and sends
``conversation.item.input_audio_transcription.delta``/``.completed`` (or ``.failed``) after
``conversation.item.created``; a response to that item waits for the transcript, so the responder can
answer the words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from vlab import protocol
from vlab.clock import NS_PER_S
from vlab.emulator import session_config
from vlab.emulator.asr import (
    PocketSphinxRecognizer,
    RecognitionError,
    Transcript,
    hear,
    read_turn,
    start_recognition,
)
from vlab.emulator.config import EmulatorConfig
from vlab.emulator.faults import METADATA_KEY, Fault, FaultPlan
from vlab.emulator.input_buffer import InputBuffer
from vlab.emulator.items import Conversation, Item
from vlab.emulator.latency import LatencySampler
from vlab.emulator.mcp_tools import SessionMcp, mcp_servers
from vlab.emulator.outbox import Outbox
from vlab.emulator.replies import FunctionCall, Reply, reply_for
from vlab.emulator.response_run import CancelReason, ResponseRun
from vlab.emulator.timeline import Scheduler
from vlab.emulator.transcription import already_read, transcription_events
from vlab.emulator.wire import Ids, WireError, parse_client_frame, require
from vlab.protocol_limits import MAX_APPEND_AUDIO_BYTES, eou_timeout_ms

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("vlab.emulator")
_T = TypeVar("_T")
_MIB = 1024 * 1024

_ITEM_TYPES = {
    "message",
    protocol.FUNCTION_CALL_ITEM,
    protocol.FUNCTION_CALL_OUTPUT_ITEM,
    protocol.MCP_APPROVAL_RESPONSE_ITEM,
}
_ROLES = {"user", "assistant", "system"}
_RESPONSE_OVERRIDES = {
    "tools": "tools",
    "tool_choice": "tool_choice",
    "max_output_tokens": "max_response_output_tokens",
    "max_response_output_tokens": "max_response_output_tokens",
}
"""``response.create`` fields that override the session's for one response (wire name → session key)."""


class EmulatorConnection:
    """State and behaviour of one WebSocket session.

    Args:
        ws: The prepared aiohttp WebSocket.
        config: The emulator's configuration (speed, latency model, trace).
        model: Model name from the URL.
        api_version: api-version from the URL (selects documented defaults).
        index: Connection number within the emulator (seeds the latency draws).
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        config: EmulatorConfig,
        *,
        model: str,
        api_version: str,
        index: int,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.config = config
        self.recognizer = config.recognizer_factory()
        self.id = Ids.new("sess")
        self.api_version = api_version
        self.session = session_config.default_session(
            self.id, model, api_version, created_s=config.clock.wall_ns() / NS_PER_S
        )
        self.sampler = LatencySampler(config.latency, seed_offset=index)
        self.scheduler = Scheduler(config.speed, config.clock)
        self.conversation = Conversation()
        self.audio_started = False
        self.response: ResponseRun | None = None
        """The latest response asked for (it may wait for :meth:`in_progress` to finish)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._transcriptions: dict[str, asyncio.Task[None]] = {}
        self._unheard: tuple[Item, bytes, int, asyncio.Task[str] | None] | None = None  # last turn, unread
        self._vad_due_ms = 0.0  # VAD steps keep their order even when their delays differ
        self._approvals: dict[str, FunctionCall] = {}
        """The MCP calls waiting for the client's ``mcp_approval_response``, by approval request id."""
        self._client_cancels = False
        """The client cancels a response the user speaks over (:data:`protocol.BARGE_IN_METADATA_KEY`)."""
        self._barge_in_held = False  # time waits for the client's cancel of the response spoken over
        self._warm_recognizer = math.isfinite(config.speed) and isinstance(
            self.recognizer, PocketSphinxRecognizer
        )
        """Start the recognition process at the first speech, so that in real time the turn's own length
        hides its start (about a second of CPU); in fast mode it starts when a decode needs it (the
        transcripts are usually remembered on disk, and then it never starts)."""
        self.outbox = Outbox(
            ws,
            transport,
            scheduler=self.scheduler,
            clock=config.clock,
            trace=self.trace_add,
            spawn=self._spawn,
            output_bytes_per_ms=self._output_bytes_per_ms,
        )
        self.input = InputBuffer(
            scheduler=self.scheduler,
            listener=self,
            recognizer=self.recognizer,
            vad_model=config.vad_model_factory,
            trace=self.trace_add,
            spawn=self._spawn,
        )
        self.input.configure(self.session, api_version)
        self.mcp = SessionMcp(self, redirects=config.mcp_redirects, spawn=self._spawn)
        """The session's MCP servers, their tools and calls."""

    # --- the outbox a response uses (ResponseHost) -------------------------------------------------

    def trace_add(self, **entry: Any) -> None:
        """Add an entry, tagged with this connection, to the ground-truth trace, if one is kept."""
        if self.config.trace is not None:
            self.config.trace.add(conn=self.id, **entry)

    def mark_audio_started(self) -> None:
        """Output audio has been sent: the session's voice can no longer change."""
        self.audio_started = True

    def played(self, audio: bytes, audio_format: str, at_ms: float) -> None:
        """An audio delta went out at simulated time ``at_ms``: the echo canceller's reference gets it."""
        self.input.play(audio, audio_format, at_ms)

    def _output_bytes_per_ms(self) -> float:
        return protocol.bytes_per_second(self.session["output_audio_format"]) / 1000.0

    @property
    def faults(self) -> FaultPlan:
        """The faults armed on this connection."""
        return self.outbox.faults

    def _output_ms(self, n_bytes: int) -> float:
        """Duration in ms of ``n_bytes`` of audio in the session's output format."""
        return n_bytes / self._output_bytes_per_ms()

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event (see :class:`~vlab.emulator.outbox.Outbox`)."""
        await self.outbox.send(event)

    # --- main loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client closes it."""
        from aiohttp import WSMsgType

        self.scheduler.start()
        try:  # from here on, cancelled or not, the scheduler and the tasks are closed
            await self.send({"type": protocol.SESSION_CREATED, "session": dict(self.session)})
            async for msg in self.ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_frame(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.outbox.closed = True
            self.input.close()
            if self.response is not None:
                self.response.cancel("client_cancelled")
            await self.scheduler.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.mcp.close()

    async def _on_frame(self, data: str | bytes) -> None:
        """Handle one client frame: audio at once, anything else as a step at the time it arrived."""
        event_id = None
        try:
            event = parse_client_frame(data)
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            if event["type"] == protocol.CLIENT_APPEND:
                self._append(event)
                return
            handler = _HANDLERS.get(event["type"])
            if handler is None:
                raise WireError(
                    "invalid_value",
                    f"Invalid value for 'type': {event['type']!r} is not a supported client event.",
                    "type",
                    event_id,
                )
            run_ms = _function_run_ms(event, event_id)
        except WireError as err:
            await self._report(err, event_id)
            return
        except Exception as exc:  # never let one bad frame end the session
            log.exception("emulator failed on input audio")
            await self._report(_internal_error(exc, event_id), event_id)
            return
        await self.input.settle()  # every event sees the VAD's decisions on the audio before it
        timeline = protocol.timeline_mode(event) if event["type"] == protocol.CLIENT_SESSION_UPDATE else None
        if timeline in (protocol.TIMELINE_ENDED, protocol.TIMELINE_LIVE):
            self.scheduler.input_over()  # a call not answered by now will not be: time need not wait
            self._barge_in_held = False
        if timeline is not None:  # a held turn no more audio can continue ends now
            self.input.set_input_over(timeline == protocol.TIMELINE_ENDED)
        at_ms = self._arrival_ms(timeline)
        ran_ms = self.scheduler.client_ran(run_ms) if run_ms is not None else None
        if ran_ms is not None:  # the function ran that long after its call, on the simulated timeline
            at_ms = ran_ms
        await self.scheduler.client_step(at_ms, lambda: self._handle(handler, event, event_id))

    def _arrival_ms(self, timeline: Any) -> float:
        """Simulated time of a client event that arrives now (after all the audio sent before it).

        ``timeline``: the timeline mode the event asks for (a ``session.update``), else None.
        """
        if timeline in (protocol.TIMELINE_INPUT, protocol.TIMELINE_ENDED):
            return self.scheduler.input_position_ms(answering=False)
        return self.scheduler.current_ms()

    async def _handle(
        self,
        handler: Callable[[EmulatorConnection, dict[str, Any]], Awaitable[None]],
        event: dict[str, Any],
        event_id: str | None,
    ) -> None:
        try:
            await handler(self, event)
        except WireError as err:
            await self._report(err, event_id)
        except Exception as exc:  # never let one bad event end the session
            log.exception("emulator failed on a client event")
            await self._report(_internal_error(exc, event_id), event_id)

    async def _report(self, err: WireError, event_id: str | None) -> None:
        if err.event_id is None:
            err.event_id = event_id
        await self.outbox.send_error(err)

    def _step(self, t_ms: float, action: Callable[[], Awaitable[None]]) -> None:
        """Schedule a step of the VAD's turn machine (they run in the order they are scheduled).

        A step that fails (the emulator's own error) is logged and reported to the client as a
        ``server_error``, as a failed client event is: a step runs in a task of its own, where an error
        would otherwise go unseen and leave the client waiting.
        """

        async def step() -> None:
            try:
                await action()
            except Exception as exc:
                log.exception("emulator failed on a turn of the input audio")
                await self._report(_internal_error(exc, None, "a turn of the input audio"), None)

        self._vad_due_ms = max(self._vad_due_ms, t_ms)
        self.scheduler.spawn(self._vad_due_ms, step)

    def _spawn(self, coro: Awaitable[_T]) -> asyncio.Task[_T]:
        """Run background work that is not a step (closing the socket, the recognizer)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- turn boundaries from the input buffer (TurnListener) -------------------------------------

    def speech_started(self, item_id: str, audio_start_ms: int, at_ms: float) -> None:
        """The VAD found speech: ``speech_started`` goes out after the network delay (barge-in then).

        It carries where the VAD decided (:data:`vlab.protocol.DECIDED_MS_KEY`), so the delay can be
        measured on the simulated timeline (``vlab calibrate``'s ``network`` stage).
        """
        td = self.session["turn_detection"] or {}
        if self._warm_recognizer and self._reads_words(td):
            self._warm_recognizer = False
            start_recognition()
        delay_ms = self.sampler.speech_started_delay_ms()
        self._step(at_ms + delay_ms, lambda: self._speech_started(item_id, audio_start_ms, td, at_ms))

    def _reads_words(self, turn_detection: dict[str, Any]) -> bool:
        """Whether this turn's words will be read: for the reply, a transcription or end-of-utterance cues."""
        return bool(
            self.config.hear_audio
            or self.session.get("input_audio_transcription")
            or eou_timeout_ms(turn_detection) is not None
        )

    def speech_stopped(self, item_id: str, audio_end_ms: int, audio: bytes, at_ms: float) -> None:
        """The VAD ended a turn: ``speech_stopped`` after endpointing and network, then the commit and reply."""
        td = self.session["turn_detection"] or {}
        t_ms = self.sampler.speech_stopped_at_ms(at_ms, audio_end_ms)
        self._step(t_ms, lambda: self._speech_stopped(item_id, audio_end_ms, audio, td))

    async def _speech_started(
        self, item_id: str, audio_start_ms: int, td: dict[str, Any], decided_ms: float
    ) -> None:
        await self.send(
            {
                "type": protocol.SPEECH_STARTED,
                "audio_start_ms": audio_start_ms,
                "item_id": item_id,
                protocol.DECIDED_MS_KEY: round(decided_ms, 3),
            }
        )
        active = self.in_progress()
        if active is None or active.cancelled:
            return
        if td.get("interrupt_response", True):
            await self._cancel_response(active, "turn_detected", auto_truncate=bool(td.get("auto_truncate")))
        elif self._client_cancels and active.created and active.status == "in_progress":
            # a reply the client has seen start and not end, the only one it cancels: in input mode its
            # cancel happens here, however far ahead its audio is
            self._barge_in_held = True
            self.scheduler.wait_for_client()

    async def _speech_stopped(
        self, item_id: str, audio_end_ms: int, audio: bytes, td: dict[str, Any]
    ) -> None:
        await self.send({"type": protocol.SPEECH_STOPPED, "audio_end_ms": audio_end_ms, "item_id": item_id})
        respond = bool(td.get("create_response", True))
        await self._commit_user_audio(item_id, audio, respond=respond)
        if respond:
            self._start_response({}, chained=True)

    async def _commit_user_audio(self, item_id: str, audio: bytes, *, respond: bool = False) -> None:
        """Add a committed user turn; with ``respond``, a response to it follows (start reading it now)."""
        rate = self.input.rate
        wire = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        item = Item(wire, audio_ms=len(audio) / (2 * rate) * 1000.0)
        prev = self.conversation.add(item)
        await self.send({"type": protocol.COMMITTED, "item_id": item_id, "previous_item_id": prev})
        await self.send({"type": protocol.ITEM_CREATED, "previous_item_id": prev, "item": item.public()})
        cached = self.input.held_transcript(item_id)
        if self.session.get("input_audio_transcription"):
            # The recognizer starts now on its thread; its events go out as a step right after the commit.
            reading = self._spawn(
                already_read(cached) if cached is not None else read_turn(self.recognizer, audio, rate)
            )
            self._transcriptions[item_id] = self.scheduler.spawn(
                self.scheduler.now_ms, lambda: self._transcribe(item, reading)
            )
        elif cached is not None:
            item.heard = cached.text
        elif self.config.hear_audio:  # read when a reply needs the words (nothing is sent)
            early = self._spawn(hear(self.recognizer, audio, rate)) if respond else None
            self._unheard = (item, audio, rate, early)  # a reply follows: read meanwhile, off the loop

    async def _transcribe(self, item: Item, reading: asyncio.Future[Transcript]) -> None:
        """A step at the commit: the turn's words into its item, then its transcription events, delayed."""
        events = await transcription_events(self, item, reading)
        delay_ms = self.sampler.transcription_ms()
        self.trace_add(kind="latency", item_id=item.id, transcription_ms=delay_ms)

        async def send() -> None:
            for event in events:
                await self.send(event)

        if delay_ms > 0:
            self.scheduler.spawn(self.scheduler.now_ms + delay_ms, send)
        else:  # in this step, before the response that waits for it
            await send()

    async def _hear_last_turn(self) -> None:
        """From a response's step: read the words of the last user audio turn, if its reply needs them.

        Only the last turn, and only once (transcription off, ``hear_audio`` on). The step holds the turn
        while the recognizer runs, so the wall time it takes never moves a later step before the reply.
        """
        if self._unheard is None:
            return
        item, audio, rate, reading = self._unheard
        self._unheard = None
        if item.id not in self.conversation:  # deleted meanwhile
            return
        try:
            item.heard = await (reading if reading is not None else hear(self.recognizer, audio, rate))
        except RecognitionError as exc:
            log.warning("the emulator could not read the user's audio for its reply: %s", exc)

    # --- responses -------------------------------------------------------------------------------------

    def _start_response(
        self,
        params: dict[str, Any],
        *,
        chained: bool = False,
        instructions: str | None = None,
        reply: Reply | None = None,
    ) -> ResponseRun:
        """Start a response to ``response.create`` (or a turn); ``reply`` when the service decided it already."""
        overrides = {_RESPONSE_OVERRIDES[k]: v for k, v in params.items() if k in _RESPONSE_OVERRIDES}
        session = {**self.session, **overrides}
        run = ResponseRun(
            self,
            Reply(""),
            modalities=list(params.get("modalities") or self.session["modalities"]),
            voice=params.get("voice") or self.session["voice"],
            output_format=params.get("output_audio_format") or self.session["output_audio_format"],
        )
        previous = self.response
        self.response = run
        if chained and previous is not None and not previous.done:
            run.previous, previous.successor = previous, run
            run.handed = asyncio.get_running_loop().create_future()

        async def go() -> None:
            try:
                await respond()
            finally:  # the response waiting for this one goes on from here, before any later step
                waiting = run.successor
                if waiting is not None and waiting.handed is not None and not waiting.handed.done():
                    waiting.handed.set_result(self.scheduler.wake_at(self.scheduler.now_ms))
                run.successor = None

        async def respond() -> None:
            if run.handed is not None:
                await self.scheduler.handed(run.handed)
            run.previous = None  # done: a long session keeps no chain of old responses
            pending = [t for t in self._transcriptions.values() if not t.done()]
            pending += self.mcp.listings()
            if pending:
                await self.scheduler.wait_for(asyncio.gather(*pending, return_exceptions=True))
            try:
                await self._hear_last_turn()
                run.reply = reply or reply_for(
                    list(self.conversation),
                    {**session, "tools": [*(session.get("tools") or []), *self.mcp.tool_views()]},
                    params.get("instructions") or instructions,
                    self.config.script,
                )
                await run.run()
            except Exception as exc:  # the emulator's own failure: a failed response, not silence
                log.exception("emulator failed on a response")
                await run.fail(f"The emulator failed to run the response: {exc}")
            finally:
                if self.response is run:
                    self.response = None
            for item_id, call in run.approval_requests:
                self._approvals[item_id] = call
            if run.status == "completed":
                for due in run.mcp_calls:
                    await self.mcp.call(run.id, due, last=due is run.mcp_calls[-1])

        run.task = self.scheduler.spawn(self.scheduler.now_ms, go)
        return run

    async def _cancel_response(
        self, run: ResponseRun, reason: CancelReason, *, auto_truncate: bool = False
    ) -> None:
        played_ms = run.played_ms()
        part_item = run.output[0] if run.output and run.output[0].type == "message" else None
        run.cancel(reason)
        self.input.stop_playback(self.scheduler.now_ms)  # a barge-in: the client stops playing now
        if run.task is not None and not run.task.done():
            await self.scheduler.wait_for(asyncio.gather(run.task, return_exceptions=True))
        if auto_truncate and part_item is not None and run.first_audio_ms is not None:
            await self._truncate(part_item, int(played_ms))

    async def _truncate(self, item: Item, audio_end_ms: int) -> None:
        """Keep what the user heard of an assistant item and say so (``conversation.item.truncated``)."""
        item.truncate(audio_end_ms, self._output_bytes_per_ms())
        await self.send(
            {
                "type": protocol.ITEM_TRUNCATED,
                "item_id": item.id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }
        )

    # --- client event handlers ---------------------------------------------------------------------

    async def _session_update(self, event: dict[str, Any]) -> None:
        body = require(event, "session", dict)
        metadata = body.get("metadata")
        spec = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
        faults: list[Fault] = []
        if spec is not None and spec != (self.session.get("metadata") or {}).get(METADATA_KEY):
            try:
                faults = Fault.parse(str(spec))
                if any(f.kind == "rate_limit" for f in faults):
                    raise ValueError(
                        "a rate_limit fault refuses connections, so it cannot be armed from a session; "
                        "give it to Emulator(faults=...) or `vlab emulator --fault`"
                    )
            except ValueError as exc:
                raise WireError(
                    "invalid_value", str(exc), f"session.metadata.{METADATA_KEY}", event.get("event_id")
                ) from None
        timeline = metadata.get(protocol.TIMELINE_METADATA_KEY) if isinstance(metadata, dict) else None
        if timeline is not None and timeline not in protocol.TIMELINE_MODES:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'session.metadata.{protocol.TIMELINE_METADATA_KEY}': {timeline!r}; "
                f"expected one of {list(protocol.TIMELINE_MODES)}.",
                f"session.metadata.{protocol.TIMELINE_METADATA_KEY}",
                event.get("event_id"),
            )
        seed = _latency_seed(metadata, event.get("event_id"))
        barge_in = _barge_in(metadata, event.get("event_id"))
        self.config.refusals.check(self.session["model"], body, event.get("event_id"))
        servers = mcp_servers(body["tools"], event.get("event_id")) if "tools" in body else None
        self.session = session_config.apply_update(
            self.session, body, self.api_version, event.get("event_id"), audio_started=self.audio_started
        )
        self.input.configure(self.session, self.api_version)
        self.outbox.faults.arm(faults)
        if seed is not None:
            self.sampler.reseed(seed)
        if barge_in is not None:
            self._client_cancels = barge_in == protocol.BARGE_IN_CANCELS
        if timeline is not None:
            self.scheduler.set_mode(timeline)
            if timeline == protocol.TIMELINE_ENDED:
                await self.scheduler.until_idle()  # answered once everything the audio caused is done
        await self.send({"type": protocol.SESSION_UPDATED, "session": dict(self.session)})
        if servers is not None:  # the update's tools replace the session's (an update without any keeps them)
            self.mcp.configure(servers)

    def _append(self, event: dict[str, Any]) -> None:
        audio = require(event, "audio", str)
        size = len(audio) // 4 * 3 - audio[-2:].count("=")  # decoded bytes, before decoding
        if size > MAX_APPEND_AUDIO_BYTES:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'audio': {size} bytes of audio in one append; at most "
                f"{MAX_APPEND_AUDIO_BYTES} bytes ({MAX_APPEND_AUDIO_BYTES / _MIB:g} MiB) are accepted. Send the "
                "audio in smaller appends.",
                "audio",
                event.get("event_id"),
            )
        self.input.append(audio, event.get("event_id"))

    async def _commit(self, event: dict[str, Any]) -> None:
        item_id, audio = self.input.commit(event.get("event_id"))
        await self._commit_user_audio(item_id, audio)

    async def _clear(self, event: dict[str, Any]) -> None:
        self.input.clear()
        await self.send({"type": protocol.CLEARED})

    async def _item_create(self, event: dict[str, Any]) -> None:
        item = dict(require(event, "item", dict))
        event_id = event.get("event_id")
        kind = item.get("type")
        if kind not in _ITEM_TYPES:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'item.type': {kind!r}; supported: {sorted(_ITEM_TYPES)}.",
                "item.type",
                event_id,
            )
        if kind == "message" and item.get("role") not in _ROLES:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'item.role': {item.get('role')!r}.",
                "item.role",
                event_id,
            )
        if kind == protocol.FUNCTION_CALL_OUTPUT_ITEM:
            require(item, "call_id", str)
            require(item, "output", str)
        if kind == protocol.MCP_APPROVAL_RESPONSE_ITEM:
            require(item, "approve", bool)
            request_id = require(item, "approval_request_id", str)
            if request_id not in self._approvals:
                raise WireError(
                    "invalid_value",
                    f"Invalid value for 'item.approval_request_id': no mcp_approval_request {request_id!r} is "
                    "waiting for an answer.",
                    "item.approval_request_id",
                    event_id,
                )
        prev_id = event.get("previous_item_id")
        if prev_id is not None and prev_id != "root" and prev_id not in self.conversation:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'previous_item_id': no item with id {prev_id!r}.",
                "previous_item_id",
                event_id,
            )
        item.setdefault("id", Ids.new("item"))
        if item["id"] in self.conversation:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'item.id': {item['id']!r} already exists.",
                "item.id",
                event_id,
            )
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        text = " ".join(str(p.get("text", "")) for p in item.get("content") or [] if isinstance(p, dict))
        created = Item(item, text=text)
        prev = self.conversation.add(created, prev_id)
        await self.send({"type": protocol.ITEM_CREATED, "previous_item_id": prev, "item": created.public()})
        if kind == protocol.MCP_APPROVAL_RESPONSE_ITEM:
            call = self._approvals.pop(item["approval_request_id"])
            if item["approve"]:  # the service makes the approved call in a response of its own
                # the client has decided: time goes on (after a decline, its response.create lifts the hold)
                if not self._approvals:
                    self.scheduler.client_answered()
                approved = dataclasses.replace(call, approval_request_id=item["approval_request_id"])
                self._start_response({}, chained=True, reply=Reply("", (approved,)))

    def _known_item(self, event: dict[str, Any]) -> Item:
        item_id = require(event, "item_id", str)
        item = self.conversation.get(item_id)
        if item is None:
            raise WireError(
                "item_not_found",
                f"Item with item_id {item_id!r} not found.",
                "item_id",
                event.get("event_id"),
            )
        return item

    async def _item_retrieve(self, event: dict[str, Any]) -> None:
        item = self._known_item(event)
        await self.send({"type": protocol.ITEM_RETRIEVED, "item": item.public()})

    async def _item_delete(self, event: dict[str, Any]) -> None:
        item = self._known_item(event)
        self.conversation.delete(item.id)
        await self.send({"type": protocol.ITEM_DELETED, "item_id": item.id})

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item = self._known_item(event)
        event_id = event.get("event_id")
        content_index = require(event, "content_index", int)
        audio_end_ms = require(event, "audio_end_ms", int)
        if item.role != "assistant":
            raise WireError(
                "invalid_value", "Only assistant message items can be truncated.", "item_id", event_id
            )
        if content_index != 0:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'content_index': {content_index!r}; expected 0.",
                "content_index",
                event_id,
            )
        if audio_end_ms < 0:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'audio_end_ms': {audio_end_ms}; expected 0 or more.",
                "audio_end_ms",
                event_id,
            )
        total_ms = self._output_ms(item.audio_bytes)
        if audio_end_ms > total_ms + 1:
            raise WireError(
                "invalid_value",
                f"Audio content of {total_ms:.0f}ms is shorter than requested audio_end_ms {audio_end_ms}ms.",
                "audio_end_ms",
                event_id,
            )
        if audio_end_ms < total_ms:  # the client stopped playing it before its end
            self.input.stop_playback(self.scheduler.now_ms)
        await self._truncate(item, audio_end_ms)

    async def _response_create(self, event: dict[str, Any]) -> None:
        self.scheduler.client_answered()
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise WireError(
                "invalid_type",
                "Invalid type for 'response': expected an object.",
                "response",
                event.get("event_id"),
            )
        if self.response is not None and not self.response.cancelled:
            raise WireError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.response.id}. Wait until the response is finished before creating a new one.",
                None,
                event.get("event_id"),
            )
        modalities = params.get("modalities")
        if modalities is not None and (
            not isinstance(modalities, list) or set(modalities) not in ({"text"}, {"text", "audio"})
        ):
            raise WireError(
                "invalid_value",
                f"Invalid value for 'response.modalities': {modalities!r}.",
                "response.modalities",
                event.get("event_id"),
            )
        self._start_response(params, chained=True, instructions=event.get("additional_instructions"))

    def in_progress(self) -> ResponseRun | None:
        """The response the client sees in progress: the oldest of those asked for and not yet done.

        A response to a turn that ended while another was streaming waits for that one, unseen until
        it starts, so a ``response.cancel`` or a barge-in meanwhile is for the one streaming.
        """
        run = self.response
        while run is not None and run.previous is not None and not run.previous.done:
            run = run.previous
        return run

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        if self._barge_in_held:  # the client's answer to the speech: time goes on from where it was heard
            self._barge_in_held = False
            self.scheduler.client_answered()
        run = self.in_progress()
        wanted = event.get("response_id")
        if run is None or run.cancelled or (wanted is not None and wanted != run.id):
            raise WireError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found."
                if wanted is None
                else f"Cancellation failed: response {wanted!r} is not active.",
                "response_id" if wanted else None,
                event.get("event_id"),
            )
        run.cancel("client_cancelled")

    async def _output_clear(self, event: dict[str, Any]) -> None:
        await self.send({"type": protocol.OUTPUT_AUDIO_CLEARED})


_HANDLERS: dict[str, Callable[[EmulatorConnection, dict[str, Any]], Awaitable[None]]] = {
    protocol.CLIENT_SESSION_UPDATE: EmulatorConnection._session_update,
    protocol.CLIENT_COMMIT: EmulatorConnection._commit,
    protocol.CLIENT_CLEAR: EmulatorConnection._clear,
    protocol.CLIENT_ITEM_CREATE: EmulatorConnection._item_create,
    protocol.CLIENT_ITEM_RETRIEVE: EmulatorConnection._item_retrieve,
    protocol.CLIENT_ITEM_DELETE: EmulatorConnection._item_delete,
    protocol.CLIENT_ITEM_TRUNCATE: EmulatorConnection._item_truncate,
    protocol.CLIENT_RESPONSE_CREATE: EmulatorConnection._response_create,
    protocol.CLIENT_RESPONSE_CANCEL: EmulatorConnection._response_cancel,
    protocol.CLIENT_OUTPUT_CLEAR: EmulatorConnection._output_clear,
}
"""The handler of each client event but ``input_audio_buffer.append`` (handled as it arrives)."""


def _latency_seed(metadata: Any, event_id: str | None) -> int | None:
    """The seed a ``session.update`` gives in ``session.metadata`` (:data:`protocol.LATENCY_SEED_METADATA_KEY`)."""
    given = metadata.get(protocol.LATENCY_SEED_METADATA_KEY) if isinstance(metadata, dict) else None
    if given is None:
        return None
    try:
        return int(str(given), 10)
    except ValueError:
        raise WireError(
            "invalid_value",
            f"Invalid value for 'session.metadata.{protocol.LATENCY_SEED_METADATA_KEY}': {given!r}; expected "
            "an integer as a decimal string, e.g. '1234'.",
            f"session.metadata.{protocol.LATENCY_SEED_METADATA_KEY}",
            event_id,
        ) from None


def _barge_in(metadata: Any, event_id: str | None) -> str | None:
    """What a ``session.update`` says the client does on a barge-in (:data:`protocol.BARGE_IN_METADATA_KEY`)."""
    given = metadata.get(protocol.BARGE_IN_METADATA_KEY) if isinstance(metadata, dict) else None
    if given is None or given in protocol.BARGE_IN_MODES:
        return given
    raise WireError(
        "invalid_value",
        f"Invalid value for 'session.metadata.{protocol.BARGE_IN_METADATA_KEY}': {given!r}; expected one of "
        f"{list(protocol.BARGE_IN_MODES)}.",
        f"session.metadata.{protocol.BARGE_IN_METADATA_KEY}",
        event_id,
    )


def _internal_error(exc: Exception, event_id: str | None, what: str = "the event") -> WireError:
    """The ``server_error`` a client gets when the emulator itself failed on ``what`` (logged)."""
    return WireError(
        "server_error", f"The emulator failed to handle {what}: {exc}", None, event_id, "server_error"
    )


def _function_run_ms(event: dict[str, Any], event_id: str | None) -> float | None:
    """The simulated run time a function's output carries (:data:`vlab.protocol.RUN_MS_KEY`), if any.

    Raises:
        WireError: Not a number of ms ≥ 0, or on another event than a ``function_call_output``'s creation.
    """
    if protocol.RUN_MS_KEY not in event:
        return None
    run_ms = protocol.function_run_ms(event)
    if run_ms is None:
        raise WireError(
            "invalid_value",
            f"Invalid value for '{protocol.RUN_MS_KEY}': {event[protocol.RUN_MS_KEY]!r}; vlab's emulator takes "
            "the ms a function ran (a number ≥ 0) on a conversation.item.create of a function_call_output.",
            protocol.RUN_MS_KEY,
            event_id,
        )
    return run_ms
