"""One assistant response: the service's event order, paced by the latency model, cancellable.

A :class:`ResponseRun` is a process on the connection's simulated timeline
(:mod:`vlab.emulator.timeline`): it plans its events (simulated ms from ``response.created``:
transcript/text deltas and audio chunks), sends each as a step at its time with the right ids, and
always ends with ``response.done``. A cancel (client ``response.cancel`` or barge-in) moves its next
step to the present: the run closes whatever it opened and reports ``cancelled`` with the reason.

With ``output_audio_timestamp_types: ["word"]`` each spoken word also gets a
``response.audio_timestamp.delta`` (offset and duration in the audio, from eSpeak NG's word events),
sent when that audio is; with ``animation.outputs`` containing ``viseme_id``,
``response.animation_viseme.delta`` events carry *approximate* Azure viseme ids (0–21) derived from
each word's spelling (:func:`visemes_for_word`) and spread evenly over the word's duration.

A reply's tool calls follow its message, each its own output item: a function call (the client runs it),
an MCP call (its item and arguments; the connection calls the server after ``response.done``: see
:mod:`vlab.emulator.mcp`), or a request to approve one (an ``mcp_approval_request`` item).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from vlab import protocol
from vlab.audio import g711
from vlab.audio.pcm import float_to_pcm16
from vlab.audio.synth import Speech, synthesize
from vlab.emulator.items import Conversation, Item
from vlab.emulator.latency import LatencySampler
from vlab.emulator.replies import FunctionCall, Reply
from vlab.emulator.reply_length import TOKENS_PER_WORD
from vlab.emulator.session_config import output_rate
from vlab.emulator.timeline import Scheduler, Wake
from vlab.emulator.voice import espeak_voice, visemes_for_word, voice_name, word_spans
from vlab.emulator.wire import Ids

TEXT_CHARS_PER_TOKEN: Final = 4
"""Characters of conversation text per input token, in the ``usage`` estimate of ``response.done``."""
AUDIO_TOKENS_PER_S: Final = 10
"""Tokens per second of input or output audio, in the ``usage`` estimate of ``response.done``."""
_MS_PER_AUDIO_TOKEN: Final = 1000 / AUDIO_TOKENS_PER_S


class ResponseHost(Protocol):
    """What a response needs from its connection: a narrow outbox, not the connection itself."""

    scheduler: Scheduler
    """The connection's simulated timeline."""
    sampler: LatencySampler
    """The connection's latency draws."""
    conversation: Conversation
    """The connection's items."""

    @property
    def session(self) -> Mapping[str, Any]:
        """The session configuration in force."""

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event."""

    def trace_add(self, **entry: Any) -> None:
        """Add an entry to the ground-truth trace."""

    def mark_audio_started(self) -> None:
        """Output audio has been sent (the voice can no longer change)."""

    def played(self, audio: bytes, audio_format: str, at_ms: float) -> None:
        """An audio delta (``audio`` in ``audio_format``) went out at simulated time ``at_ms``; the client plays it."""


CancelReason = Literal["turn_detected", "client_cancelled"]


@dataclass(slots=True)
class _Part:
    item: Item
    output_index: int
    kind: Literal["audio", "text"]
    text_sent: list[str] = field(default_factory=list)
    audio_bytes_sent: int = 0
    closed: bool = False
    timestamps: bool = False
    visemes: bool = False


@dataclass(frozen=True, slots=True)
class McpCallDue:
    """An ``mcp_call`` item a response sent, with its arguments; the MCP server is called after ``response.done``."""

    item: Item
    output_index: int
    call: FunctionCall


class ResponseRun:
    """Runs one response on a connection.

    Args:
        host: The connection's outbox: timeline, latency draws, conversation, events.
        reply: What to say (and which functions to call, each its own output item, in order).
        modalities: ``["text", "audio"]`` or ``["text"]``.
        voice: The session or response voice.
        output_format: The session's ``output_audio_format``.
    """

    def __init__(
        self,
        host: ResponseHost,
        reply: Reply,
        *,
        modalities: list[str],
        voice: Any,
        output_format: str,
    ) -> None:
        self.conn = host
        self.reply = reply
        self.id = Ids.new("resp")
        self.audio = "audio" in modalities
        self.modalities = modalities
        self.voice = voice
        self.output_format = output_format
        self._bytes_per_ms = protocol.bytes_per_second(output_format) / 1000.0
        self.status = "in_progress"
        self.output: list[Item] = []
        self._cancelled = False
        self._cancel_reason: CancelReason = "client_cancelled"
        self._wake: Wake | None = None
        self._part: _Part | None = None
        self.first_audio_ms: float | None = None
        """Simulated time of the first audio delta."""
        self.created = False
        self._t_created = 0.0
        self._rtf: float | None = None  # this response's output realtime factor (drawn when it runs)
        self.task: asyncio.Task[None] | None = None
        self.mcp_calls: list[McpCallDue] = []
        """The MCP calls this response made, for the connection to run after its ``response.done``."""
        self.approval_requests: list[tuple[str, FunctionCall]] = []
        """The ``mcp_approval_request`` items it sent (their ids) and the calls they would make."""
        self.previous: ResponseRun | None = None
        """The response this one waits for (a turn ended while it was streaming), until that one is done."""
        self.successor: ResponseRun | None = None
        """The response that waits for this one: it hands that one the turn, at its own end's time."""
        self.handed: asyncio.Future[Wake] | None = None
        """Waiting for :attr:`previous`: the step it books for this one when it ends."""

    # --- control ---------------------------------------------------------------------------------

    def cancel(self, reason: CancelReason) -> None:
        """Ask the run to stop; it closes what it opened and sends ``response.done`` (cancelled)."""
        if not self._cancelled:
            self._cancel_reason = reason
            self._cancelled = True
            self.conn.scheduler.hurry(self._wake)

    async def fail(self, message: str) -> None:
        """End the run ``failed`` (the emulator's own error): ``response.done`` with the error in its details.

        A client waiting for the response gets its ending, as from the service, and not silence;
        ``response.created`` goes first if it had not gone out. A run that had ended sends nothing more.
        """
        self._cancelled = True  # nothing more of this run goes out
        if self.status != "in_progress":
            return
        if not self.created:
            await self.conn.send({"type": protocol.RESPONSE_CREATED, "response": self._response_object()})
            self.created = True
        self.status = "failed"
        response = self._response_object()
        error = {"type": "server_error", "code": "server_error", "message": message}
        response["status_details"] = {"type": "failed", "error": error}
        await self.conn.send({"type": protocol.RESPONSE_DONE, "response": response})

    @property
    def done(self) -> bool:
        """Whether the run has ended (sent its ``response.done``, or was stopped with its connection)."""
        return self.task is not None and self.task.done()

    @property
    def cancelled(self) -> bool:
        """Whether a cancel was requested."""
        return self._cancelled

    def played_ms(self) -> float:
        """Audio of the current item a real-time listener has heard by now (simulated), clamped to what was sent."""
        part = self._part
        if part is None or self.first_audio_ms is None:
            return 0.0
        elapsed_ms = self.conn.scheduler.now_ms - self.first_audio_ms
        return min(elapsed_ms, part.audio_bytes_sent / self._bytes_per_ms)

    async def _until(self, t_ms: float) -> bool:
        """Wait for the step at simulated time ``t_ms`` unless cancelled; True when the run must stop."""
        if not self._cancelled:
            self._wake = self.conn.scheduler.wake_at(t_ms)
            await self.conn.scheduler.sleep(self._wake)
            self._wake = None
        return self._cancelled

    # --- the run -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Send the whole response (or its cancelled ending)."""
        conn = self.conn
        sampler = conn.sampler
        t_start = conn.scheduler.now_ms
        delays = sampler.response_delays(voice=voice_name(self.voice), model=conn.session.get("model"))
        self._rtf = delays.pop("tts_realtime_factor")
        conn.trace_add(
            kind="latency",
            response_id=self.id,
            tts_realtime_factor=self._rtf,
            **{f"{k}_ms": v for k, v in delays.items()},
        )
        # Synthesis runs while the commit delay passes: response.created goes out on the latency model's
        # schedule, as on the service, not after the (emulator-only) cost of making the audio.
        synthesis = asyncio.ensure_future(self._synthesize()) if self.audio and self.reply.text else None
        try:
            if await self._until(t_start + delays["commit"] + delays["network"]):
                await self._finish()
                return
            self.created = True
            self._t_created = conn.scheduler.now_ms
            await conn.send({"type": protocol.RESPONSE_CREATED, "response": self._response_object()})
            speech = await synthesis if synthesis is not None else None  # wall time only: the turn is held
        finally:  # cancelled before the speech was needed, or the run itself cancelled (a closing connection)
            if synthesis is not None and not synthesis.done():
                synthesis.cancel()
                await asyncio.gather(synthesis, return_exceptions=True)
        if self.reply.text:
            await self._message(speech, delays)
        for call in self.reply.function_calls:
            if self._cancelled:
                break
            await self._tool_call(call, delays)
        await self._finish()

    async def _synthesize(self) -> Speech:
        rate = output_rate(self.conn.session) if self.output_format else protocol.PCM16_SAMPLE_RATE_HZ
        return await asyncio.to_thread(
            synthesize, self.reply.text, voice=espeak_voice(self.voice), sample_rate=rate
        )

    def _ids(self, part: _Part) -> dict[str, Any]:
        return {
            "response_id": self.id,
            "item_id": part.item.id,
            "output_index": part.output_index,
            "content_index": 0,
        }

    async def _message(self, speech: Speech | None, delays: dict[str, float]) -> None:
        conn = self.conn
        item = Item(
            {
                "id": Ids.new("item"),
                "object": "realtime.item",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
        )
        part = _Part(item, len(self.output), "audio" if speech is not None else "text")
        self._part = part
        self.output.append(item)
        await conn.send(
            {
                "type": protocol.OUTPUT_ITEM_ADDED,
                "response_id": self.id,
                "output_index": part.output_index,
                "item": item.public(),
            }
        )
        prev = conn.conversation.add(item)
        await conn.send({"type": protocol.ITEM_CREATED, "previous_item_id": prev, "item": item.public()})
        empty = {"type": "audio", "transcript": ""} if part.kind == "audio" else {"type": "text", "text": ""}
        await conn.send({"type": protocol.CONTENT_PART_ADDED, **self._ids(part), "part": empty})

        item.words = [(w.offset_ms, w.text) for w in speech.words] if speech is not None else []
        for at_ms, kind, value in self._message_timeline(speech, delays):
            if await self._until(self._t_created + at_ms):
                break
            await self._send_timed(part, item, kind, value)
        await self._close_part()

    def _message_timeline(
        self, speech: Speech | None, delays: dict[str, float]
    ) -> list[tuple[float, int, Any]]:
        """What the message sends, in model ms from ``response.created``: ``(at, kind, value)`` in order.

        Kinds: 0 a word of text, 1 an audio chunk, 2 a word's timestamp, 3 a viseme (the transcript leads
        the audio; at one time, a lower kind goes first).
        """
        sampler = self.conn.sampler
        t_text = delays["first_token"]
        timeline: list[tuple[float, int, Any]] = [(t_text + off, 0, w) for off, w in self._words(speech)]
        if speech is None:
            return timeline
        t_audio = t_text + delays["tts_first_byte"]

        def at(audio_ms: float) -> float:
            return t_audio + sampler.audio_send_offset_ms(audio_ms, self._rtf)

        pcm = g711.from_pcm16(float_to_pcm16(speech.samples), self.output_format)
        bytes_per_ms = self._bytes_per_ms
        chunk = max(2, int(sampler.model.audio_chunk_ms * bytes_per_ms) // 2 * 2)
        timeline += [
            (at(start / bytes_per_ms), 1, pcm[start : start + chunk]) for start in range(0, len(pcm), chunk)
        ]
        session = self.conn.session
        if "word" in (session.get("output_audio_timestamp_types") or []):
            timeline += [
                (at(offset), 2, (text, offset, duration)) for text, offset, duration in word_spans(speech)
            ]
        animation = session.get("animation") or {}
        if "viseme_id" in (animation.get("outputs") or []):
            timeline.append((t_audio, 3, (0.0, 0)))
            for text, offset, duration in word_spans(speech):
                ids = visemes_for_word(text)
                for k, vid in enumerate(ids):
                    at_audio = offset + duration * k / len(ids)
                    timeline.append((at(at_audio), 3, (at_audio, vid)))
            timeline.append((at(speech.duration_ms), 3, (speech.duration_ms, 0)))
        timeline.sort(key=lambda e: (e[0], e[1]))
        return timeline

    async def _send_timed(self, part: _Part, item: Item, kind: int, value: Any) -> None:
        """Send one entry of :meth:`_message_timeline` as its event."""
        conn = self.conn
        if kind == 2:
            text, offset, duration = value
            part.timestamps = True
            await conn.send(
                {
                    "type": protocol.AUDIO_TIMESTAMP_DELTA,
                    **self._ids(part),
                    "audio_offset_ms": int(round(offset)),
                    "audio_duration_ms": int(round(duration)),
                    "text": text,
                    "timestamp_type": "word",
                }
            )
        elif kind == 3:
            offset, vid = value
            part.visemes = True
            await conn.send(
                {
                    "type": protocol.ANIMATION_VISEME_DELTA,
                    **self._ids(part),
                    "audio_offset_ms": int(round(offset)),
                    "viseme_id": vid,
                }
            )
        elif kind == 0:
            part.text_sent.append(value)
            delta_type = protocol.AUDIO_TRANSCRIPT_DELTA if part.kind == "audio" else protocol.TEXT_DELTA
            await conn.send({"type": delta_type, **self._ids(part), "delta": value})
        else:
            if self.first_audio_ms is None:
                self.first_audio_ms = conn.scheduler.now_ms
                conn.mark_audio_started()
            part.audio_bytes_sent += len(value)
            item.audio_bytes = part.audio_bytes_sent
            await conn.send(
                {
                    "type": protocol.AUDIO_DELTA,
                    **self._ids(part),
                    "delta": base64.b64encode(value).decode("ascii"),
                }
            )
            conn.played(value, self.output_format, conn.scheduler.now_ms)

    def _words(self, speech: Speech | None) -> list[tuple[float, str]]:
        """(model ms offset, delta text) per word; deltas carry their leading space like the service."""
        sampler = self.conn.sampler
        if speech is not None and speech.words:
            pieces = self.reply.text.split()
            # eSpeak reports each word; map offsets onto the reply's whitespace-separated words.
            offsets = [w.offset_ms for w in speech.words]
            while len(offsets) < len(pieces):
                offsets.append(offsets[-1] if offsets else 0.0)
            # The first word goes out at the first-token time; the rest keep pace with the audio.
            return [
                (sampler.audio_send_offset_ms(offsets[i] - offsets[0], self._rtf), (" " if i else "") + word)
                for i, word in enumerate(pieces)
            ]
        return [(20.0 * i, (" " if i else "") + word) for i, word in enumerate(self.reply.text.split())]

    async def _close_part(self) -> None:
        part = self._part
        if part is None or part.closed:
            return
        part.closed = True
        conn = self.conn
        text = "".join(part.text_sent)
        ids = self._ids(part)
        if part.kind == "audio":
            if part.timestamps:
                await conn.send({"type": protocol.AUDIO_TIMESTAMP_DONE, **ids})
            if part.visemes:
                await conn.send({"type": protocol.ANIMATION_VISEME_DONE, **ids})
            await conn.send({"type": protocol.AUDIO_DONE, **ids})
            await conn.send({"type": protocol.AUDIO_TRANSCRIPT_DONE, **ids, "transcript": text})
            final_part = {"type": "audio", "transcript": text}
        else:
            await conn.send({"type": protocol.TEXT_DONE, **ids, "text": text})
            final_part = {"type": "text", "text": text}
        await conn.send({"type": protocol.CONTENT_PART_DONE, **ids, "part": final_part})
        part.item.wire["content"] = [final_part]
        part.item.wire["status"] = "incomplete" if self._cancelled or self.reply.incomplete else "completed"
        await conn.send(
            {
                "type": protocol.OUTPUT_ITEM_DONE,
                "response_id": self.id,
                "output_index": part.output_index,
                "item": part.item.public(),
            }
        )

    async def _tool_call(self, call: FunctionCall, delays: dict[str, float]) -> None:
        """One call the reply makes: a function's, an MCP server's, or a request to approve one."""
        wait_ms = self.conn.scheduler.now_ms + (delays["first_token"] if not self.output else 0.0)
        if await self._until(wait_ms):
            return
        if call.server_label is None:
            await self._function_call(call)
        elif call.needs_approval and call.approval_request_id is None:
            await self._mcp_approval_request(call)
        else:
            await self._mcp_call(call)

    async def _add_item(self, wire: dict[str, Any]) -> tuple[Item, int]:
        """Open an output item: ``response.output_item.added`` and ``conversation.item.created``."""
        conn = self.conn
        item = Item({"id": Ids.new("item"), "object": "realtime.item", **wire})
        index = len(self.output)
        self.output.append(item)
        added = {"type": protocol.OUTPUT_ITEM_ADDED, "response_id": self.id, "output_index": index}
        await conn.send({**added, "item": item.public()})
        prev = conn.conversation.add(item)
        await conn.send({"type": protocol.ITEM_CREATED, "previous_item_id": prev, "item": item.public()})
        return item, index

    async def _item_done(self, item: Item, index: int) -> None:
        await self.conn.send(
            {
                "type": protocol.OUTPUT_ITEM_DONE,
                "response_id": self.id,
                "output_index": index,
                "item": item.public(),
            }
        )

    async def _arguments(
        self, call: FunctionCall, ids: dict[str, Any], delta: str, done: dict[str, Any]
    ) -> None:
        """Stream the call's arguments (``delta`` events of 16 characters), then its ``done`` event."""
        step = 16
        for i in range(0, len(call.arguments), step):
            await self.conn.send({"type": delta, **ids, "delta": call.arguments[i : i + step]})
        await self.conn.send({**done, **ids, "arguments": call.arguments})

    async def _function_call(self, call: FunctionCall) -> None:
        call_id = Ids.new("call")
        wire = {
            "type": protocol.FUNCTION_CALL_ITEM,
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
        }
        item, index = await self._add_item({**wire, "arguments": ""})
        ids = {"response_id": self.id, "item_id": item.id, "output_index": index, "call_id": call_id}
        done = {"type": protocol.FUNCTION_CALL_ARGUMENTS_DONE, "name": call.name}
        await self._arguments(call, ids, protocol.FUNCTION_CALL_ARGUMENTS_DELTA, done)
        item.wire["arguments"] = call.arguments
        item.wire["status"] = "completed"
        await self._item_done(item, index)

    async def _mcp_call(self, call: FunctionCall) -> None:
        """The ``mcp_call`` item and its arguments; the connection makes the call after ``response.done``."""
        item, index = await self._add_item(
            {
                "type": protocol.MCP_CALL_ITEM,
                "status": "in_progress",
                "server_label": call.server_label,
                "name": call.name,
                "arguments": "",
                "approval_request_id": call.approval_request_id,
                "output": None,
                "error": None,
            }
        )
        ids = {"response_id": self.id, "item_id": item.id, "output_index": index}
        await self._arguments(
            call, ids, protocol.MCP_CALL_ARGUMENTS_DELTA, {"type": protocol.MCP_CALL_ARGUMENTS_DONE}
        )
        item.wire["arguments"] = call.arguments
        self.mcp_calls.append(McpCallDue(item, index, call))

    async def _mcp_approval_request(self, call: FunctionCall) -> None:
        """An ``mcp_approval_request`` item: the call waits for the client's ``mcp_approval_response``."""
        wire = {
            "type": protocol.MCP_APPROVAL_REQUEST_ITEM,
            "server_label": call.server_label,
            "name": call.name,
        }
        item, index = await self._add_item({**wire, "arguments": call.arguments})
        await self._item_done(item, index)
        self.approval_requests.append((item.id, call))

    async def _finish(self) -> None:
        conn = self.conn
        if self._cancelled:
            self.status = "cancelled"
            if not self.created:
                await conn.send({"type": protocol.RESPONSE_CREATED, "response": self._response_object()})
                self.created = True
            await self._close_part()
        else:
            self.status = "incomplete" if self.reply.incomplete else "completed"
        response = self._response_object()
        response["usage"] = self._usage()
        if self.status == "cancelled":
            response["status_details"] = {"type": "cancelled", "reason": self._cancel_reason}
        elif self.status == "incomplete":
            response["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
        if self.status != "cancelled" and any(i.type in protocol.CLIENT_ANSWERED_ITEMS for i in self.output):
            conn.scheduler.wait_for_client()  # the client runs the calls (or decides on them) and answers
        await conn.send(
            {"type": protocol.RESPONSE_DONE, "response": response}
        )  # after: it may answer at once

    def _response_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "realtime.response",
            "status": self.status,
            "status_details": None,
            "output": [i.public() for i in self.output] if self.status != "in_progress" else [],
            "modalities": self.modalities,
            "voice": self.voice,
            "output_audio_format": self.output_format,
            "usage": None,
        }

    def _usage(self) -> dict[str, Any]:
        """Token counts estimated from the text and the audio of the conversation and the reply.

        :data:`TEXT_CHARS_PER_TOKEN` characters of text, :data:`~vlab.emulator.reply_length.TOKENS_PER_WORD`
        tokens a word of reply, :data:`AUDIO_TOKENS_PER_S` tokens a second of audio.
        """
        conn = self.conn
        text_in = sum(len(i.text) // TEXT_CHARS_PER_TOKEN for i in conn.conversation)
        audio_in = int(sum(i.audio_ms for i in conn.conversation) / _MS_PER_AUDIO_TOKEN)
        part = self._part
        text_out = int(len(" ".join(part.text_sent).split()) * TOKENS_PER_WORD) if part else 0
        audio_out = int(part.audio_bytes_sent / self._bytes_per_ms / _MS_PER_AUDIO_TOKEN) if part else 0
        return {
            "total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {"cached_tokens": 0, "text_tokens": text_in, "audio_tokens": audio_in},
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }
