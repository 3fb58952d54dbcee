"""One emulated Voice Live connection: session, input buffer with server VAD, conversation, responses.

The receive loop answers control events at once. Events that follow from the audio (VAD decisions,
commits, responses) go through a FIFO *pipeline* of timed actions, so the latency model can delay
them while their order stays the service's (protocol.md §5.3, §5.7).

With end-of-utterance detection (the azure semantic VADs, or ``end_of_utterance_detection`` on
``server_vad``), a VAD ``speech_stopped`` is *held*: the recognizer reads the turn so far on a worker
thread, and when it ends on a filler, conjunction, preposition or article (:func:`~vlab.emulator.asr.
sounds_unfinished`) the turn waits up to ``timeout_ms`` (default 1000 ms, on the input-audio clock)
after the last speech for more speech, which then continues the same turn. VAD events that arrive
meanwhile are queued and replayed in order once the hold is resolved.

Input transcription runs the recognizer on each committed user item (on the worker thread) and sends
``conversation.item.input_audio_transcription.delta``/``.completed`` (or ``.failed``) after
``conversation.item.created``; a response to that item waits for the transcript, so the responder can
answer the words.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vlab import protocol
from vlab.audio import g711
from vlab.audio.pcm import float_to_pcm16, resample
from vlab.audio.vad import StreamingVad, VadEvent, VadParams
from vlab.emulator import session_config
from vlab.emulator.asr import Transcript, recognize, sounds_unfinished, strip_fillers
from vlab.emulator.faults import METADATA_KEY, Fault, FaultPlan
from vlab.emulator.latency import LatencySampler
from vlab.emulator.responder import Reply, reply_for
from vlab.emulator.response import CancelReason, ResponseRun
from vlab.emulator.vad_pipeline import VadPipeline
from vlab.emulator.wire import Ids, WireError, dumps, parse_client_frame, require

if TYPE_CHECKING:
    import asyncio.transports

    from aiohttp import web

    from vlab.emulator.server import EmulatorConfig

log = logging.getLogger("vlab.emulator")

_MIN_COMMIT_MS = 100.0
_ITEM_TYPES = {"message", "function_call", "function_call_output"}
_ROLES = {"user", "assistant", "system"}
_DEFAULT_EOU_TIMEOUT_MS = 1000.0


@dataclass(slots=True)
class _Hold:
    """A VAD end of turn awaiting the end-of-utterance decision."""

    item_id: str
    stop: VadEvent
    """The VAD's speech_stopped (times relative to the VAD's offset)."""
    offset_ms: float
    """The VAD's offset on the input-audio timeline when the stop was seen."""
    deadline_ms: float
    """Input-audio ms (absolute) by which speech must resume to continue the turn."""
    words: list[str] | None = None
    """Recognized words of the turn so far; None while the recognizer runs."""
    transcript: Transcript | None = None
    deferred: list[VadEvent] = field(default_factory=list)
    """VAD events seen while holding, replayed in order afterwards."""


class Connection:
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
        transport: asyncio.transports.BaseTransport | None = None,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.config = config
        self.faults = FaultPlan()
        self.recognizer = config.recognizer_factory()
        self._throttle: tuple[str, float, float] | None = None  # response_id, t0, audio ms sent
        self.id = Ids.new("sess")
        self.api_version = api_version
        self.session = session_config.default_session(self.id, model, api_version)
        self.sampler = LatencySampler(config.latency, config.speed, seed_offset=index)
        self.items: dict[str, dict[str, Any]] = {}
        self.audio_started = False
        self.response: ResponseRun | None = None
        self.closed = False
        self._pipeline: asyncio.Queue[tuple[float, Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        # input-audio timeline
        self._input_ms_base = 0.0
        self._input_bytes = 0
        self._odd_byte = b""
        self._pending = bytearray()
        self._pending_start_ms = 0.0
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0.0
        self._vad: VadPipeline | None = None
        self._vad_rate = 0
        self._vad_offset_ms = 0.0
        self._decided_ms = 0.0  # input-audio ms up to which the VAD has decided
        self._hold: _Hold | None = None
        self._hold_transcripts: dict[str, Transcript] = {}
        self._last_stop_ms = 0
        self._configure_vad()

    # --- small helpers used by ResponseRun ---------------------------------------------------------

    @property
    def speed_for_playback(self) -> float:
        """Model ms per wall ms (the emulator speed; huge in as-fast-as-possible mode)."""
        return 1e9 if math.isinf(self.config.speed) else self.config.speed

    def trace_add(self, **entry: Any) -> None:
        """Add an entry to the ground-truth trace, if one is kept."""
        if self.config.trace is not None:
            self.config.trace.add(**entry)

    def output_bytes_per_ms(self, audio_format: str) -> float:
        """Bytes per ms of an output format."""
        return protocol.bytes_per_second(audio_format) / 1000.0

    def output_ms(self, n_bytes: int, audio_format: str) -> float:
        """Duration in ms of ``n_bytes`` of output audio."""
        return n_bytes / self.output_bytes_per_ms(audio_format)

    def add_item(self, item: dict[str, Any], previous_item_id: str | None = None) -> str | None:
        """Append (or insert after ``previous_item_id``) an item; returns the id it follows."""
        ids = list(self.items)
        if previous_item_id is None or previous_item_id == (ids[-1] if ids else None):
            self.items[item["id"]] = item
            return ids[-1] if ids else None
        if previous_item_id == "root":
            pos = 0
        else:
            pos = ids.index(previous_item_id) + 1
        ordered = [
            *((k, self.items[k]) for k in ids[:pos]),
            (item["id"], item),
            *((k, self.items[k]) for k in ids[pos:]),
        ]
        self.items = dict(ordered)
        return ids[pos - 1] if pos else None

    @staticmethod
    def public_item(item: dict[str, Any]) -> dict[str, Any]:
        """The item as the service shows it (internal ``_`` keys removed)."""
        return {k: v for k, v in item.items() if not k.startswith("_")}

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event (with a fresh ``event_id``), stamping the ground-truth trace."""
        if self.closed or self.ws.closed:
            self.closed = True
            return
        event = {"event_id": Ids.new("event"), **event}
        etype = event["type"]
        if self.faults.armed:
            await self._fault_delay(event)
        text = dumps(event)
        t_ns = time.perf_counter_ns()
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self.closed = True
            return
        if self.config.trace is not None:
            self.config.trace.add(
                kind="send", conn=self.id, t_ns=t_ns, type=etype, event_id=event["event_id"]
            )
        if self.faults.armed:
            for fault in self.faults.after(etype):
                await self._fire(fault)

    async def _fault_delay(self, event: dict[str, Any]) -> None:
        """Hold an event back for ``delay`` faults and pace output audio for ``throttle`` faults."""
        delay_ms = self.faults.delay_before(event["type"])
        if delay_ms:
            self.trace_add(kind="fault", conn=self.id, fault="delay", at=event["type"], ms=delay_ms)
            await asyncio.sleep(delay_ms / 1000.0)
        rate = self.faults.throttle_rate
        if rate is None or event["type"] != "response.audio.delta":
            return
        n_bytes = len(event["delta"]) * 3 // 4 - event["delta"][-2:].count("=")
        chunk_ms = self.output_ms(n_bytes, self.session["output_audio_format"])
        now = time.perf_counter()
        if self._throttle is None or self._throttle[0] != event["response_id"]:
            self._throttle = (event["response_id"], now, 0.0)
        rid, t0, sent_ms = self._throttle
        wait = t0 + sent_ms / 1000.0 / rate - now
        if wait > 0:
            await asyncio.sleep(wait)
        self._throttle = (rid, t0, sent_ms + chunk_ms)

    async def _fire(self, fault: Fault) -> None:
        """Act on a ``drop``, ``close`` or ``error`` fault that is due."""
        self.trace_add(kind="fault", conn=self.id, fault=fault.kind, at=fault.at, n=fault.n)
        if fault.kind == "drop":
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            return
        if fault.kind == "error":
            await self.send(
                {
                    "type": "error",
                    "error": {
                        "type": "server_error",
                        "code": "server_error",
                        "message": fault.message,
                        "param": None,
                        "event_id": None,
                    },
                }
            )
            if not fault.fatal:
                return
        self.closed = True
        code = fault.code if fault.kind == "close" else 1011
        self._spawn(self.ws.close(code=code, message=f"vlab fault: {fault.kind}".encode()))

    async def _send_error(self, err: WireError) -> None:
        event = err.to_event("")
        del event["event_id"]  # send() gives every event a fresh id
        await self.send(event)

    # --- main loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until the client closes it."""
        from aiohttp import WSMsgType

        worker = asyncio.create_task(self._pipeline_worker())
        await self.send({"type": "session.created", "session": dict(self.session)})
        try:
            async for msg in self.ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_frame(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.closed = True
            if self._vad is not None:
                self._vad.close()
            if self.response is not None:
                self.response.cancel("client_cancelled")
            worker.cancel()
            for task in [worker, *self._tasks]:
                task.cancel()
            await asyncio.gather(worker, *self._tasks, return_exceptions=True)

    async def _on_frame(self, data: str | bytes) -> None:
        event_id = None
        try:
            event = parse_client_frame(data)
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            handler = _HANDLERS.get(event["type"])
            if handler is None:
                raise WireError(
                    "invalid_value",
                    f"Invalid value for 'type': {event['type']!r} is not a supported client event.",
                    "type",
                    event_id,
                )
            if self._vad is not None and handler is not Connection._append:
                await self._vad.settle()  # every event sees the VAD's decisions on the audio before it
            await handler(self, event)
        except WireError as err:
            if err.event_id is None:
                err.event_id = event_id
            await self._send_error(err)
        except Exception as exc:  # never let one bad event end the session
            log.exception("emulator failed on a client event")
            await self._send_error(
                WireError(
                    "server_error",
                    f"The emulator failed to handle the event: {exc}",
                    None,
                    event_id,
                    "server_error",
                )
            )

    async def _pipeline_worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, action = await self._pipeline.get()
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await action()
            except Exception:
                log.exception("emulator pipeline action failed")

    def _schedule(self, delay_s: float, action: Callable[[], Awaitable[None]]) -> None:
        self._pipeline.put_nowait((asyncio.get_running_loop().time() + delay_s, action))

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- input audio and VAD -------------------------------------------------------------------------

    @property
    def input_rate(self) -> int:
        """Sample rate of the input audio in Hz."""
        return session_config.input_rate(self.session)

    @property
    def input_ms(self) -> float:
        """Position on the input-audio timeline (ms of audio appended in this session)."""
        return self._input_ms_base + self._input_bytes / (2 * self.input_rate) * 1000.0

    def _configure_vad(self) -> None:
        td = self.session["turn_detection"]
        if td is None:
            if self._vad is not None:
                self._vad.close()
            self._vad = None
            return
        params = VadParams(
            threshold=float(td.get("threshold", 0.5)),
            prefix_padding_ms=int(td.get("prefix_padding_ms", 300)),
            silence_duration_ms=int(td.get("silence_duration_ms", 500)),
            min_speech_ms=max(
                int(td.get("speech_duration_ms") or 80),
                80 if str(td["type"]).startswith("azure_semantic") else 0,
            ),
        )
        if self._vad is not None and self._vad_rate == self.input_rate:
            self._vad.vad.update_params(params)
            return
        if self._vad is not None:
            self._vad.close()
        vad = StreamingVad(params, self.input_rate, model=self.config.vad_model_factory())
        self._vad = VadPipeline(vad, self._on_vad_decided)
        self._vad_rate = self.input_rate
        self._vad_offset_ms = self._decided_ms = self.input_ms

    def _decode_audio(self, b64: str, event_id: str | None) -> bytes:
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise WireError(
                "invalid_value", "Invalid value for 'audio': not valid base64.", "audio", event_id
            ) from None
        if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
            return self._wav_to_pcm16(raw, event_id)
        fmt = self.session["input_audio_format"]
        if fmt == "g711_ulaw":
            return g711.ulaw_decode(raw)
        if fmt == "g711_alaw":
            return g711.alaw_decode(raw)
        return raw

    def _wav_to_pcm16(self, raw: bytes, event_id: str | None) -> bytes:
        """A whole WAV file sent as audio (as the SDK's own tests do): use its samples, not its header."""
        import soundfile as sf

        try:
            samples, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError):
            # A truncated or odd header: fall back to the bytes after the 44-byte canonical header.
            return raw[44:] if len(raw) > 44 else b""
        mono = samples.mean(axis=1).astype(np.float32)
        return float_to_pcm16(resample(mono, int(rate), self.input_rate))

    async def _append(self, event: dict[str, Any]) -> None:
        audio = require(event, "audio", str)
        pcm = self._odd_byte + self._decode_audio(audio, event.get("event_id"))
        if len(pcm) % 2:
            pcm, self._odd_byte = pcm[:-1], pcm[-1:]
        else:
            self._odd_byte = b""
        self._input_bytes += len(pcm)
        self._pending += pcm
        if self._vad is not None:
            self._vad.feed(pcm)  # decided now, or once the model has run (_on_vad_decided)

    def _on_vad_decided(self, events: list[VadEvent], position_ms: float) -> None:
        """The VAD has decided the audio up to ``position_ms`` (its own timeline) and found ``events``."""
        self._decided_ms = self._vad_offset_ms + position_ms
        for vad_event in events:
            self._on_vad(vad_event)
        self._resolve_hold()
        if self._speech_item_id is None:
            self._trim_pending()

    def _trim_pending(self) -> None:
        """Outside speech, keep only the audio a future onset's prefix padding may need."""
        keep_ms = (
            float(self.session["turn_detection"]["prefix_padding_ms"]) + 1000.0
            if self.session["turn_detection"]
            else 0
        ) + (self.input_ms - self._decided_ms)  # and the audio the VAD has not decided yet
        excess = len(self._pending) - int(keep_ms / 1000.0 * self.input_rate) * 2
        if excess > 0:
            del self._pending[:excess]
            self._pending_start_ms += excess / (2 * self.input_rate) * 1000.0

    def _take_pending(self, start_ms: float, end_ms: float) -> bytes:
        """Cut the committed span out of the pending buffer and drop everything before its end."""
        bpms = 2 * self.input_rate / 1000.0
        lo = max(0, int((start_ms - self._pending_start_ms) * bpms) // 2 * 2)
        hi = max(lo, min(len(self._pending), int((end_ms - self._pending_start_ms) * bpms) // 2 * 2))
        segment = bytes(self._pending[lo:hi])
        del self._pending[:hi]
        self._pending_start_ms += hi / bpms
        return segment

    def _segment(self, start_ms: float, end_ms: float) -> bytes:
        """A copy of the pending audio between two input-audio times."""
        bpms = 2 * self.input_rate / 1000.0
        lo = max(0, int((start_ms - self._pending_start_ms) * bpms) // 2 * 2)
        hi = max(lo, min(len(self._pending), int((end_ms - self._pending_start_ms) * bpms) // 2 * 2))
        return bytes(self._pending[lo:hi])

    def _eou_timeout_ms(self) -> float | None:
        """End-of-utterance wait of the turn detection, or None when it has no EOU detection."""
        td = self.session["turn_detection"]
        if not td:
            return None
        eou = td.get("end_of_utterance_detection")
        semantic = str(td["type"]).startswith("azure_semantic") or td["type"] == "semantic_vad"
        if not semantic and not isinstance(eou, dict):
            return None
        timeout = eou.get("timeout_ms") if isinstance(eou, dict) else None
        return float(timeout) if isinstance(timeout, (int, float)) else _DEFAULT_EOU_TIMEOUT_MS

    def _on_vad(self, ev: VadEvent) -> None:
        hold = self._hold
        if hold is not None:
            hold.deferred.append(ev)
            self._resolve_hold()
            return
        timeout_ms = self._eou_timeout_ms()
        if ev.kind == "speech_stopped" and timeout_ms is not None and self._speech_item_id is not None:
            speech_end = ev.speech_ms + self._vad_offset_ms
            hold = _Hold(self._speech_item_id, ev, self._vad_offset_ms, speech_end + max(timeout_ms, 0.0))
            self._hold = hold
            audio = self._segment(self._speech_start_ms, speech_end)
            self._spawn(self._read_turn_so_far(hold, audio))
            return
        self._handle_vad(ev)

    async def _read_turn_so_far(self, hold: _Hold, audio: bytes) -> None:
        """Recognize the turn so far for the end-of-utterance decision (on the ASR worker thread)."""
        try:
            transcript = await recognize(self.recognizer, audio, self.input_rate)
        except Exception:
            log.exception("end-of-utterance recognition failed; ending the turn")
            transcript = Transcript()
        if self._hold is not hold:
            return
        hold.transcript = transcript
        hold.words = [w.text for w in transcript.words]
        self.trace_add(
            kind="eou",
            conn=self.id,
            item_id=hold.item_id,
            words=" ".join(hold.words),
            unfinished=sounds_unfinished(hold.words),
            decode_ms=transcript.decode_s * 1000.0,
        )
        self._resolve_hold()
        if self._hold is hold and not math.isinf(self.config.speed):
            # No more audio may come: end the turn when the timeout passes in (scaled) wall time.
            wait_s = max(hold.deadline_ms - self._decided_ms, 0.0) / 1000.0 / self.config.speed + 0.1
            await asyncio.sleep(wait_s)
            if self._hold is hold:
                self._end_hold(hold)

    def _resolve_hold(self) -> None:
        """Decide a held end of turn once the words are known: end it, or continue the turn."""
        hold = self._hold
        if hold is None or hold.words is None:
            return
        if not sounds_unfinished(hold.words):
            self._hold = None
            self._hold_transcripts[hold.item_id] = hold.transcript or Transcript()
            self._replay(hold.stop, hold.deferred)
            return
        first = hold.deferred[0] if hold.deferred else None
        if first is not None and first.kind == "speech_started":
            if first.speech_ms + self._vad_offset_ms <= hold.deadline_ms:
                # Speech resumed in time: the same turn goes on (no speech_started is sent).
                self._hold = None
                self.trace_add(kind="eou", conn=self.id, item_id=hold.item_id, event="continued")
                for ev in hold.deferred[1:]:
                    self._on_vad(ev)
                return
            self._end_hold(hold)
            return
        if self._decided_ms >= hold.deadline_ms:
            self._end_hold(hold)

    def _end_hold(self, hold: _Hold) -> None:
        """End a held turn at its deadline (the end-of-utterance timeout ran out)."""
        self._hold = None
        self._hold_transcripts[hold.item_id] = hold.transcript or Transcript()
        stop = VadEvent(
            "speech_stopped",
            audio_ms=int(round(hold.deadline_ms - hold.offset_ms)),
            speech_ms=hold.stop.speech_ms,
        )
        self._replay(stop, hold.deferred)

    def _replay(self, stop: VadEvent, deferred: list[VadEvent]) -> None:
        self._handle_vad(stop)
        for ev in deferred:
            self._on_vad(ev)

    def _handle_vad(self, ev: VadEvent) -> None:
        td = self.session["turn_detection"] or {}
        audio_ms = int(round(ev.audio_ms + self._vad_offset_ms))
        if ev.kind == "speech_started":
            audio_ms = max(audio_ms, self._last_stop_ms)
        else:
            self._last_stop_ms = audio_ms
        self.trace_add(
            kind="vad",
            conn=self.id,
            event=ev.kind,
            audio_ms=audio_ms,
            speech_ms=ev.speech_ms + self._vad_offset_ms,
        )
        if ev.kind == "speech_started":
            item_id = Ids.new("item")
            self._speech_item_id = item_id
            self._speech_start_ms = audio_ms
            delay = self.sampler.seconds(self.sampler.draw_ms("network"))
            self._schedule(delay, lambda: self._speech_started(item_id, audio_ms, td))
        else:
            item_id = self._speech_item_id or Ids.new("item")
            self._speech_item_id = None
            audio = self._take_pending(self._speech_start_ms, audio_ms)
            delay = self.sampler.seconds(
                self.sampler.draw_ms("endpointing") + self.sampler.draw_ms("network")
            )
            self._schedule(delay, lambda: self._speech_stopped(item_id, audio_ms, audio, td))

    async def _speech_started(self, item_id: str, audio_start_ms: int, td: dict[str, Any]) -> None:
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": item_id,
            }
        )
        active = self.response
        if active is not None and not active.cancelled and td.get("interrupt_response", True):
            await self._cancel_response(active, "turn_detected", auto_truncate=bool(td.get("auto_truncate")))

    async def _speech_stopped(
        self, item_id: str, audio_end_ms: int, audio: bytes, td: dict[str, Any]
    ) -> None:
        await self.send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id}
        )
        await self._commit_user_audio(item_id, audio)
        if td.get("create_response", True):
            self._start_response({}, chained=True)

    async def _commit_user_audio(self, item_id: str, audio: bytes) -> None:
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
            "_audio_ms": len(audio) / (2 * self.input_rate) * 1000.0,
        }
        prev = self.add_item(item)
        await self.send(
            {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": prev}
        )
        await self.send(
            {"type": "conversation.item.created", "previous_item_id": prev, "item": self.public_item(item)}
        )
        cached = self._hold_transcripts.pop(item_id, None)
        self._hold_transcripts.clear()
        if self.session.get("input_audio_transcription"):
            item["_transcription"] = self._spawn(self._transcribe(item, audio, cached))

    async def _transcribe(self, item: dict[str, Any], audio: bytes, cached: Transcript | None) -> None:
        """Recognize a committed user item and send its transcription events."""
        item_id = item["id"]
        try:
            transcript = (
                cached if cached is not None else await recognize(self.recognizer, audio, self.input_rate)
            )
        except Exception as exc:
            log.info("input transcription failed: %s", exc)
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {
                        "type": "transcription_error",
                        "code": "audio_unintelligible",
                        "message": f"Input transcription failed: {exc}",
                        "param": None,
                    },
                }
            )
            return
        words = [w.text for w in transcript.words]
        td = self.session["turn_detection"] or {}
        if td.get("remove_filler_words"):
            words = strip_fillers(words)
        text = " ".join(words)
        self.trace_add(
            kind="asr",
            conn=self.id,
            item_id=item_id,
            audio_ms=transcript.audio_ms,
            decode_ms=transcript.decode_s * 1000.0,
            model=(self.session.get("input_audio_transcription") or {}).get("model"),
            text=text,
        )
        item["content"] = [{"type": "input_audio", "transcript": text}]
        for i, word in enumerate(words):
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": (" " if i else "") + word,
                }
            )
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
            }
        )

    # --- responses -------------------------------------------------------------------------------------

    def _start_response(
        self, params: dict[str, Any], *, chained: bool = False, instructions: str | None = None
    ) -> ResponseRun:
        session = {**self.session, **{k: v for k, v in params.items() if k in ("tools", "tool_choice")}}
        run = ResponseRun(
            self,
            Reply(""),
            modalities=list(params.get("modalities") or self.session["modalities"]),
            voice=params.get("voice") or self.session["voice"],
            output_format=params.get("output_audio_format") or self.session["output_audio_format"],
        )
        previous = self.response
        self.response = run

        async def go() -> None:
            if chained and previous is not None and previous.task is not None:
                await asyncio.gather(previous.task, return_exceptions=True)
            pending = [i["_transcription"] for i in self.items.values() if "_transcription" in i]
            await asyncio.gather(*pending, return_exceptions=True)
            run.reply = reply_for(
                list(self.items.values()),
                session,
                params.get("instructions") or instructions,
                self.config.script,
            )
            try:
                await run.run()
            finally:
                if self.response is run:
                    self.response = None

        run.task = self._spawn(go())
        return run

    async def _cancel_response(
        self, run: ResponseRun, reason: CancelReason, *, auto_truncate: bool = False
    ) -> None:
        played_ms = run.played_ms()
        part_item = run.output[0] if run.output and run.output[0].get("type") == "message" else None
        run.cancel(reason)
        if run.task is not None:
            await asyncio.gather(run.task, return_exceptions=True)
        if auto_truncate and part_item is not None and run.first_audio_ns is not None:
            end_ms = int(played_ms)
            self._truncate_item(part_item, end_ms)
            await self.send(
                {
                    "type": "conversation.item.truncated",
                    "item_id": part_item["id"],
                    "content_index": 0,
                    "audio_end_ms": end_ms,
                }
            )

    def _truncate_item(self, item: dict[str, Any], audio_end_ms: int) -> None:
        heard = [text for offset, text in item.get("_words", []) if offset < audio_end_ms]
        transcript = " ".join(heard)
        item["content"] = [{"type": "audio", "transcript": transcript}]
        item["_audio_bytes"] = int(
            audio_end_ms * self.output_bytes_per_ms(self.session["output_audio_format"])
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
            except ValueError as exc:
                raise WireError(
                    "invalid_value", str(exc), f"session.metadata.{METADATA_KEY}", event.get("event_id")
                ) from None
        old_rate, old_td = self.input_rate, self.session["turn_detection"]
        self.session = session_config.apply_update(
            self.session, body, self.api_version, event.get("event_id"), audio_started=self.audio_started
        )
        if self.input_rate != old_rate:
            self._input_ms_base, self._input_bytes = self.input_ms, 0
            if self._vad is not None:
                self._vad.close()
            self._vad = None
        if self.session["turn_detection"] != old_td or self._vad is None:
            self._configure_vad()
        self.faults.arm(faults)
        await self.send({"type": "session.updated", "session": dict(self.session)})

    async def _commit(self, event: dict[str, Any]) -> None:
        pending_ms = len(self._pending) / (2 * self.input_rate) * 1000.0
        if pending_ms < _MIN_COMMIT_MS:
            raise WireError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least {_MIN_COMMIT_MS:.0f}ms "
                f"of audio, but buffer only has {pending_ms:.2f}ms of audio.",
                None,
                event.get("event_id"),
            )
        audio = bytes(self._pending)
        self._pending.clear()
        self._pending_start_ms = self.input_ms
        item_id = self._speech_item_id or Ids.new("item")
        self._speech_item_id = None
        self._hold = None
        if self._vad is not None:
            self._vad.reset()
            self._vad_offset_ms = self._decided_ms = self.input_ms
        await self._commit_user_audio(item_id, audio)

    async def _clear(self, event: dict[str, Any]) -> None:
        self._pending.clear()
        self._pending_start_ms = self.input_ms
        self._speech_item_id = None
        self._hold = None
        if self._vad is not None:
            self._vad.reset()
            self._vad_offset_ms = self._decided_ms = self.input_ms
        await self.send({"type": "input_audio_buffer.cleared"})

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
        if kind == "function_call_output":
            require(item, "call_id", str)
            require(item, "output", str)
        prev_id = event.get("previous_item_id")
        if prev_id is not None and prev_id != "root" and prev_id not in self.items:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'previous_item_id': no item with id {prev_id!r}.",
                "previous_item_id",
                event_id,
            )
        item.setdefault("id", Ids.new("item"))
        if item["id"] in self.items:
            raise WireError(
                "invalid_value",
                f"Invalid value for 'item.id': {item['id']!r} already exists.",
                "item.id",
                event_id,
            )
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        item["_text"] = " ".join(
            str(p.get("text", "")) for p in item.get("content") or [] if isinstance(p, dict)
        )
        prev = self.add_item(item, prev_id)
        await self.send(
            {"type": "conversation.item.created", "previous_item_id": prev, "item": self.public_item(item)}
        )

    def _known_item(self, event: dict[str, Any]) -> dict[str, Any]:
        item_id = require(event, "item_id", str)
        item = self.items.get(item_id)
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
        await self.send({"type": "conversation.item.retrieved", "item": self.public_item(item)})

    async def _item_delete(self, event: dict[str, Any]) -> None:
        item = self._known_item(event)
        del self.items[item["id"]]
        await self.send({"type": "conversation.item.deleted", "item_id": item["id"]})

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item = self._known_item(event)
        event_id = event.get("event_id")
        content_index = require(event, "content_index", int)
        audio_end_ms = require(event, "audio_end_ms", int)
        if item.get("role") != "assistant":
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
        total_ms = self.output_ms(int(item.get("_audio_bytes", 0)), self.session["output_audio_format"])
        if audio_end_ms < 0 or audio_end_ms > total_ms + 1:
            raise WireError(
                "invalid_value",
                f"Audio content of {total_ms:.0f}ms is shorter than requested audio_end_ms {audio_end_ms}ms.",
                "audio_end_ms",
                event_id,
            )
        self._truncate_item(item, audio_end_ms)
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }
        )

    async def _response_create(self, event: dict[str, Any]) -> None:
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

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        run = self.response
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
        await self.send({"type": "output_audio_buffer.cleared"})


_HANDLERS: dict[str, Callable[[Connection, dict[str, Any]], Awaitable[None]]] = {
    "session.update": Connection._session_update,
    "input_audio_buffer.append": Connection._append,
    "input_audio_buffer.commit": Connection._commit,
    "input_audio_buffer.clear": Connection._clear,
    "conversation.item.create": Connection._item_create,
    "conversation.item.retrieve": Connection._item_retrieve,
    "conversation.item.delete": Connection._item_delete,
    "conversation.item.truncate": Connection._item_truncate,
    "response.create": Connection._response_create,
    "response.cancel": Connection._response_cancel,
    "output_audio_buffer.clear": Connection._output_clear,
}
