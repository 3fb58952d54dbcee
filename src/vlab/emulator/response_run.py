"""One assistant response: the service's event order, paced by the latency model, cancellable.

A :class:`ResponseRun` plans a timeline (model ms from ``response.created``) of transcript/text deltas
and audio chunks, then sends them with the right ids, and always ends with ``response.done``. A cancel
(client ``response.cancel`` or barge-in) is cooperative: the run stops between events, closes whatever
it opened, and reports ``cancelled`` with the reason.

With ``output_audio_timestamp_types: ["word"]`` each spoken word also gets a
``response.audio_timestamp.delta`` (offset and duration in the audio, from eSpeak NG's word events),
sent when that audio is; with ``animation.outputs`` containing ``viseme_id``,
``response.animation_viseme.delta`` events carry *approximate* Azure viseme ids (0–21) derived from
each word's spelling (:func:`visemes_for_word`) and spread evenly over the word's duration.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vlab.audio import g711
from vlab.audio.pcm import float_to_pcm16
from vlab.audio.synth import Speech, synthesize
from vlab.emulator.responder import Reply
from vlab.emulator.session_config import output_rate
from vlab.emulator.wire import Ids

if TYPE_CHECKING:
    from vlab.emulator.conversation import Connection

CancelReason = Literal["turn_detected", "client_cancelled"]

_ESPEAK_VOICES = ("en-us", "en-us+f3", "en-gb", "en-us+m3", "en-gb+f4", "en-us+f2")


def espeak_voice(voice: Any) -> str:
    """Map a Voice Live voice (string or object) to an eSpeak NG voice, deterministically."""
    name = voice.get("name", "") if isinstance(voice, dict) else str(voice or "")
    lowered = name.lower()
    if lowered.startswith("en-gb"):
        return "en-gb"
    return _ESPEAK_VOICES[sum(map(ord, lowered)) % len(_ESPEAK_VOICES)]


def encode_output(pcm16: bytes, audio_format: str) -> bytes:
    """Encode PCM16 (already at the format's rate) into the session's output format."""
    if audio_format == "g711_ulaw":
        return g711.ulaw_encode(pcm16)
    if audio_format == "g711_alaw":
        return g711.alaw_encode(pcm16)
    return pcm16


# Approximate spelling → Azure viseme id (en-US viseme set: 0 silence, 1 æ ə ʌ, 2 ɑ, 3 ɔ, 4 ɛ ʊ eɪ,
# 5 ɝ, 6 i ɪ j, 7 u w, 8 o, 9 aʊ, 10 ɔɪ, 11 aɪ, 12 h, 13 ɹ, 14 l, 15 s z, 16 ʃ tʃ dʒ ʒ, 17 ð,
# 18 f v, 19 d t n θ, 20 k g ŋ, 21 p b m). Spelling is not pronunciation: these are approximate.
_DIGRAPHS = {
    "sh": 16, "ch": 16, "th": 17, "ng": 20, "ph": 18, "wh": 7, "ck": 20, "ee": 6, "ea": 6, "oo": 7,
    "ou": 9, "ow": 9, "oi": 10, "oy": 10, "ai": 4, "ay": 4, "igh": 11, "er": 5, "ir": 5, "ur": 5,
}  # fmt: skip
_LETTERS = {
    "a": 1, "e": 4, "i": 6, "o": 8, "u": 1, "y": 6, "w": 7, "r": 13, "l": 14, "s": 15, "z": 15,
    "c": 20, "f": 18, "v": 18, "d": 19, "t": 19, "n": 19, "k": 20, "g": 20, "q": 20, "x": 20,
    "p": 21, "b": 21, "m": 21, "h": 12, "j": 16,
}  # fmt: skip


def visemes_for_word(word: str) -> list[int]:
    """Approximate Azure viseme ids for a written English word (letters and common digraphs).

    Consecutive repeats are merged; a word with no letters gives ``[]``.
    """
    letters = re.sub(r"[^a-z]", "", word.lower())
    out: list[int] = []
    i = 0
    while i < len(letters):
        for size in (3, 2):
            if letters[i : i + size] in _DIGRAPHS:
                vid, i = _DIGRAPHS[letters[i : i + size]], i + size
                break
        else:
            vid, i = _LETTERS.get(letters[i], 0), i + 1
        if letters.endswith("e") and i == len(letters) and len(letters) > 2 and vid == 4:
            continue  # silent final e
        if not out or out[-1] != vid:
            out.append(vid)
    return out


_PUNCTUATION = ".,;:!?\"'()[]"


def word_spans(speech: Speech) -> list[tuple[str, float, float]]:
    """(word, offset ms, duration ms) per synthesized word.

    A word lasts until the next one starts; the last one until the last audible sample.
    """
    words = speech.words
    if not words:
        return []
    loud = np.flatnonzero(np.abs(speech.samples) > 10 ** (-50 / 20))
    end_ms = 1000.0 * (int(loud[-1]) + 1) / speech.sample_rate if loud.size else speech.duration_ms
    spans = []
    for i, w in enumerate(words):
        nxt = words[i + 1].offset_ms if i + 1 < len(words) else max(end_ms, w.offset_ms)
        text = w.text.strip(_PUNCTUATION)
        if text:
            spans.append((text, w.offset_ms, max(nxt - w.offset_ms, 0.0)))
    return spans


@dataclass(slots=True)
class _Part:
    item: dict[str, Any]
    output_index: int
    kind: Literal["audio", "text"]
    text_sent: list[str] = field(default_factory=list)
    audio_bytes_sent: int = 0
    audio_done: bool = False
    closed: bool = False
    timestamps: bool = False
    visemes: bool = False


class ResponseRun:
    """Runs one response on a connection.

    Args:
        conn: The connection that owns the conversation and sends events.
        reply: What to say (and which function to call).
        modalities: ``["text", "audio"]`` or ``["text"]``.
        voice: The session or response voice.
        output_format: The session's ``output_audio_format``.
        start_delay_s: Wall seconds to wait before ``response.created`` (turn commit stage).
    """

    def __init__(
        self,
        conn: Connection,
        reply: Reply,
        *,
        modalities: list[str],
        voice: Any,
        output_format: str,
        start_delay_s: float = 0.0,
    ) -> None:
        self.conn = conn
        self.reply = reply
        self.id = Ids.new("resp")
        self.audio = "audio" in modalities
        self.modalities = modalities
        self.voice = voice
        self.output_format = output_format
        self.start_delay_s = start_delay_s
        self.status = "in_progress"
        self.output: list[dict[str, Any]] = []
        self._cancel = asyncio.Event()
        self._cancel_reason: CancelReason = "client_cancelled"
        self._part: _Part | None = None
        self.first_audio_ns: int | None = None
        self.created = False
        self.task: asyncio.Task[None] | None = None

    # --- control ---------------------------------------------------------------------------------

    def cancel(self, reason: CancelReason) -> None:
        """Ask the run to stop; it closes what it opened and sends ``response.done`` (cancelled)."""
        if not self._cancel.is_set():
            self._cancel_reason = reason
            self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """Whether a cancel was requested."""
        return self._cancel.is_set()

    def played_ms(self) -> float:
        """Audio of the current item a real-time listener has heard by now (model time), clamped to what was sent."""
        part = self._part
        if part is None or self.first_audio_ns is None:
            return 0.0
        elapsed_ms = (time.perf_counter_ns() - self.first_audio_ns) / 1e6 * self.conn.speed_for_playback
        return min(elapsed_ms, self.conn.output_ms(part.audio_bytes_sent, self.output_format))

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless cancelled; True when the run must stop."""
        if seconds > 0 and not self._cancel.is_set():
            try:
                await asyncio.wait_for(self._cancel.wait(), seconds)
            except asyncio.TimeoutError:
                pass
        return self._cancel.is_set()

    # --- the run -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Send the whole response (or its cancelled ending)."""
        conn = self.conn
        sampler = conn.sampler
        delays = {
            stage: sampler.draw_ms(stage) for stage in ("commit", "network", "first_token", "tts_first_byte")
        }
        conn.trace_add(
            kind="latency", conn=conn.id, response_id=self.id, **{f"{k}_ms": v for k, v in delays.items()}
        )
        # Synthesis runs while the commit delay passes: response.created goes out on the latency model's
        # schedule, as on the service, not after the (emulator-only) cost of making the audio.
        synthesis = asyncio.ensure_future(self._synthesize()) if self.audio and self.reply.text else None
        if await self._sleep(self.start_delay_s + sampler.seconds(delays["commit"] + delays["network"])):
            if synthesis is not None:
                synthesis.cancel()
                await asyncio.gather(synthesis, return_exceptions=True)
            await self._finish()
            return
        self.created = True
        await conn.send({"type": "response.created", "response": self._response_object()})
        speech = await synthesis if synthesis is not None else None
        if self.reply.text:
            await self._message(speech, delays)
        if self.reply.function_call is not None and not self._cancel.is_set():
            await self._function_call(delays)
        await self._finish()

    async def _synthesize(self) -> Speech:
        rate = output_rate(self.conn.session) if self.output_format else 24000
        return await asyncio.to_thread(
            synthesize, self.reply.text, voice=espeak_voice(self.voice), sample_rate=rate
        )

    def _ids(self, part: _Part) -> dict[str, Any]:
        return {
            "response_id": self.id,
            "item_id": part.item["id"],
            "output_index": part.output_index,
            "content_index": 0,
        }

    async def _message(self, speech: Speech | None, delays: dict[str, float]) -> None:
        conn, sampler = self.conn, self.conn.sampler
        item = {
            "id": Ids.new("item"),
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        part = _Part(item, len(self.output), "audio" if speech is not None else "text")
        self._part = part
        self.output.append(item)
        await conn.send(
            {
                "type": "response.output_item.added",
                "response_id": self.id,
                "output_index": part.output_index,
                "item": dict(item),
            }
        )
        prev = conn.add_item(item)
        await conn.send({"type": "conversation.item.created", "previous_item_id": prev, "item": dict(item)})
        empty = {"type": "audio", "transcript": ""} if part.kind == "audio" else {"type": "text", "text": ""}
        await conn.send({"type": "response.content_part.added", **self._ids(part), "part": empty})

        # Timeline in model ms from now: words (text) then audio chunks, transcript leading the audio.
        words = self._words(speech)
        t_text = delays["first_token"]
        timeline: list[tuple[float, int, Any]] = [(t_text + off, 0, w) for off, w in words]
        if speech is not None:
            pcm = encode_output(float_to_pcm16(speech.samples), self.output_format)
            bytes_per_ms = conn.output_bytes_per_ms(self.output_format)
            chunk = max(2, int(sampler.model.audio_chunk_ms * bytes_per_ms) // 2 * 2)
            t_audio = t_text + delays["tts_first_byte"]
            for start in range(0, len(pcm), chunk):
                at = t_audio + sampler.audio_send_offset_ms(start / bytes_per_ms)
                timeline.append((at, 1, pcm[start : start + chunk]))
        if speech is not None:
            t_audio = t_text + delays["tts_first_byte"]
            session = conn.session
            if "word" in (session.get("output_audio_timestamp_types") or []):
                for text, offset, duration in word_spans(speech):
                    at = t_audio + sampler.audio_send_offset_ms(offset)
                    timeline.append((at, 2, (text, offset, duration)))
            animation = session.get("animation") or {}
            if "viseme_id" in (animation.get("outputs") or []):
                timeline.append((t_audio, 3, (0.0, 0)))
                for text, offset, duration in word_spans(speech):
                    ids = visemes_for_word(text)
                    for k, vid in enumerate(ids):
                        at_audio = offset + duration * k / len(ids)
                        timeline.append(
                            (t_audio + sampler.audio_send_offset_ms(at_audio), 3, (at_audio, vid))
                        )
                end = speech.duration_ms
                timeline.append((t_audio + sampler.audio_send_offset_ms(end), 3, (end, 0)))
        timeline.sort(key=lambda e: (e[0], e[1]))
        item["_words"] = [(w.offset_ms, w.text) for w in speech.words] if speech is not None else []
        clock_start = time.perf_counter()
        for at_ms, kind, value in timeline:
            wait = sampler.seconds(at_ms) - (time.perf_counter() - clock_start)
            if await self._sleep(wait):
                break
            if kind == 2:
                text, offset, duration = value
                part.timestamps = True
                await conn.send(
                    {
                        "type": "response.audio_timestamp.delta",
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
                        "type": "response.animation_viseme.delta",
                        **self._ids(part),
                        "audio_offset_ms": int(round(offset)),
                        "viseme_id": vid,
                    }
                )
            elif kind == 0:
                part.text_sent.append(value)
                delta_type = (
                    "response.audio_transcript.delta" if part.kind == "audio" else "response.text.delta"
                )
                await conn.send({"type": delta_type, **self._ids(part), "delta": value})
            else:
                if self.first_audio_ns is None:
                    self.first_audio_ns = time.perf_counter_ns()
                    conn.audio_started = True
                part.audio_bytes_sent += len(value)
                item["_audio_bytes"] = part.audio_bytes_sent
                await conn.send(
                    {
                        "type": "response.audio.delta",
                        **self._ids(part),
                        "delta": base64.b64encode(value).decode("ascii"),
                    }
                )
        await self._close_part()

    def _words(self, speech: Speech | None) -> list[tuple[float, str]]:
        """(model ms offset, delta text) per word; deltas carry their leading space like the service."""
        sampler = self.conn.sampler
        if speech is not None and speech.words:
            pieces = self.reply.text.split()
            # eSpeak reports each word; map offsets onto the reply's whitespace-separated words.
            offsets = [w.offset_ms for w in speech.words]
            while len(offsets) < len(pieces):
                offsets.append(offsets[-1] if offsets else 0.0)
            return [
                (sampler.audio_send_offset_ms(offsets[i]), (" " if i else "") + word)
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
                await conn.send({"type": "response.audio_timestamp.done", **ids})
            if part.visemes:
                await conn.send({"type": "response.animation_viseme.done", **ids})
            await conn.send({"type": "response.audio.done", **ids})
            await conn.send({"type": "response.audio_transcript.done", **ids, "transcript": text})
            final_part = {"type": "audio", "transcript": text}
        else:
            await conn.send({"type": "response.text.done", **ids, "text": text})
            final_part = {"type": "text", "text": text}
        await conn.send({"type": "response.content_part.done", **ids, "part": final_part})
        part.item["content"] = [final_part]
        part.item["status"] = "incomplete" if self._cancel.is_set() else "completed"
        await conn.send(
            {
                "type": "response.output_item.done",
                "response_id": self.id,
                "output_index": part.output_index,
                "item": conn.public_item(part.item),
            }
        )

    async def _function_call(self, delays: dict[str, float]) -> None:
        conn, call = self.conn, self.reply.function_call
        assert call is not None
        if await self._sleep(conn.sampler.seconds(delays["first_token"]) if not self.reply.text else 0.0):
            return
        call_id = Ids.new("call")
        item = {
            "id": Ids.new("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        index = len(self.output)
        self.output.append(item)
        await conn.send(
            {
                "type": "response.output_item.added",
                "response_id": self.id,
                "output_index": index,
                "item": dict(item),
            }
        )
        prev = conn.add_item(item)
        await conn.send({"type": "conversation.item.created", "previous_item_id": prev, "item": dict(item)})
        ids = {"response_id": self.id, "item_id": item["id"], "output_index": index, "call_id": call_id}
        step = 16
        for i in range(0, len(call.arguments), step):
            await conn.send(
                {
                    "type": "response.function_call_arguments.delta",
                    **ids,
                    "delta": call.arguments[i : i + step],
                }
            )
        await conn.send(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "name": call.name,
                "arguments": call.arguments,
            }
        )
        item["arguments"] = call.arguments
        item["status"] = "completed"
        await conn.send(
            {
                "type": "response.output_item.done",
                "response_id": self.id,
                "output_index": index,
                "item": dict(item),
            }
        )

    async def _finish(self) -> None:
        conn = self.conn
        if self._cancel.is_set():
            self.status = "cancelled"
            if not self.created:
                await conn.send({"type": "response.created", "response": self._response_object()})
                self.created = True
            await self._close_part()
        else:
            self.status = "completed"
        response = self._response_object()
        response["usage"] = self._usage()
        if self.status == "cancelled":
            response["status_details"] = {"type": "cancelled", "reason": self._cancel_reason}
        await conn.send({"type": "response.done", "response": response})

    def _response_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "realtime.response",
            "status": self.status,
            "status_details": None,
            "output": [self.conn.public_item(i) for i in self.output] if self.status != "in_progress" else [],
            "modalities": self.modalities,
            "voice": self.voice,
            "output_audio_format": self.output_format,
            "usage": None,
        }

    def _usage(self) -> dict[str, Any]:
        """Token counts estimated from words and audio (≈1.3 tokens a word, 10 audio tokens a second)."""
        conn = self.conn
        text_in = sum(len(str(i.get("_text", ""))) // 4 for i in conn.items.values())
        audio_in = int(sum(float(i.get("_audio_ms", 0.0)) for i in conn.items.values()) / 100)
        part = self._part
        text_out = int(len(" ".join(part.text_sent).split()) * 1.3) if part else 0
        audio_out = int(conn.output_ms(part.audio_bytes_sent, self.output_format) / 100) if part else 0
        return {
            "total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {"cached_tokens": 0, "text_tokens": text_in, "audio_tokens": audio_in},
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }
