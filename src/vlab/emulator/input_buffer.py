"""One connection's input audio buffer: the input-audio timeline, the server VAD and the end-of-utterance hold.

Appended audio is decoded (PCM16, G.711, or a whole WAV file as the SDK's own tests send) and kept
until a turn takes it. The server VAD runs on it (:class:`~vlab.emulator.vad_pipeline.VadPipeline`) and
each turn boundary it finds is reported to the connection (:class:`TurnListener`) with the simulated
time at which it was decided (:mod:`vlab.emulator.timeline`).

With ``input_audio_noise_reduction`` or ``input_audio_echo_cancellation`` set, the VAD hears the audio
after an :class:`~vlab.audio.processing.InputProcessor` (at 16 kHz, in the VAD worker); the echo canceller's
reference is the assistant audio the connection reports with :meth:`InputBuffer.play`. Turns keep the
audio as the client sent it: that is what the recognizer reads and what a committed item holds.

With end-of-utterance detection (the azure semantic VADs, or ``end_of_utterance_detection`` on
``server_vad``), a VAD ``speech_stopped`` is *held*: the recognizer reads the turn so far on a worker
thread, and when it ends on a filler, conjunction, preposition or article (:func:`~vlab.emulator.asr.
sounds_unfinished`) the turn waits up to ``timeout_ms`` (default 1000 ms, on the input-audio clock)
after the last speech for more speech, which then continues the same turn. VAD events that arrive
meanwhile are queued and replayed in order once the hold is resolved; until the words are known no
step after the held stop runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pybase64

from vlab import protocol
from vlab.audio import g711
from vlab.audio.pcm import float_to_pcm16, resample
from vlab.audio.processing import PROCESSING_RATE_HZ, ProcessingSettings
from vlab.audio.vad import SpeechModel, StreamingVad, VadEvent, reported_audio_ms
from vlab.emulator import session_config
from vlab.emulator.asr import Recognizer, Transcript, read_turn, sounds_unfinished
from vlab.emulator.timeline import Scheduler
from vlab.emulator.vad_pipeline import VadPipeline
from vlab.emulator.wire import Ids, WireError
from vlab.protocol_limits import MAX_INPUT_BUFFER_BYTES, eou_timeout_ms

log = logging.getLogger("vlab.emulator")

MIN_COMMIT_MS = 100.0
"""Least audio an ``input_audio_buffer.commit`` accepts, in ms (the service's limit)."""


class TurnListener(Protocol):
    """Receives the turn boundaries the server VAD decides."""

    def speech_started(self, item_id: str, audio_start_ms: int, at_ms: float) -> None:
        """Speech began at ``audio_start_ms`` of input audio; decided at simulated time ``at_ms``."""

    def speech_stopped(self, item_id: str, audio_end_ms: int, audio: bytes, at_ms: float) -> None:
        """The turn ``item_id`` ended at ``audio_end_ms``; ``audio`` is its PCM16."""


@dataclass(slots=True)
class _Hold:
    """A VAD end of turn awaiting the end-of-utterance decision."""

    item_id: str
    stop: VadEvent
    """The VAD's speech_stopped (times relative to the VAD's offset)."""
    decided_ms: float
    """Input-audio ms (absolute) at which the VAD decided the stop."""
    offset_ms: float
    """The VAD's offset on the input-audio timeline when the stop was seen."""
    deadline_ms: float
    """Input-audio ms (absolute) by which speech must resume to continue the turn."""
    known_ms: float
    """Input-audio ms (absolute) by which the VAD has surely reported a speech start from before the
    deadline: the deadline plus the longest the VAD takes to decide one (its shortest speech and a frame).
    Until it has decided that far, no resumed speech is no answer yet, however its audio was batched."""
    words: list[str] | None = None
    """Recognized words of the turn so far; None while the recognizer runs."""
    transcript: Transcript | None = None
    deferred: list[tuple[VadEvent, float]] = field(default_factory=list)
    """VAD events seen while holding, with where they were decided, replayed in order afterwards."""


class InputBuffer:
    """The input audio of one connection, its server VAD and its end-of-utterance hold.

    Args:
        scheduler: The connection's simulated timeline (told how far the audio is decided).
        listener: Receives the turn boundaries.
        recognizer: Reads a held turn's words.
        vad_model: Makes the VAD's speech-probability model.
        trace: Adds an entry to the ground-truth trace.
        spawn: Runs background work the connection cancels when it closes.
    """

    def __init__(
        self,
        *,
        scheduler: Scheduler,
        listener: TurnListener,
        recognizer: Recognizer,
        vad_model: Callable[[], SpeechModel],
        trace: Callable[..., None],
        spawn: Callable[[Any], asyncio.Task[Any]],
    ) -> None:
        self._scheduler = scheduler
        self._listener = listener
        self._recognizer = recognizer
        self._vad_model = vad_model
        self._trace = trace
        self._spawn = spawn
        self._session: Mapping[str, Any] = {}
        self._api_version = protocol.DEFAULT_API_VERSION
        self._rate = protocol.PCM16_SAMPLE_RATE_HZ
        self._base_ms = 0.0  # input ms before the current sample rate took effect
        self._bytes = 0  # bytes appended at the current sample rate
        self._odd_byte = b""
        self._pending = bytearray()
        self._pending_start_ms = 0.0
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0.0
        self._vad: VadPipeline | None = None
        self._vad_rate = 0
        self._processing = ProcessingSettings()
        self._vad_offset_ms = 0.0
        self._decided_ms = 0.0  # input-audio ms up to which the VAD has decided
        self._hold: _Hold | None = None
        self._input_over = False  # the client said its audio has ended (the ``ended`` timeline)
        self._hold_transcripts: dict[str, Transcript] = {}
        self._last_stop_ms = 0

    # --- configuration -----------------------------------------------------------------------------

    @property
    def rate(self) -> int:
        """Sample rate of the input audio in Hz."""
        return self._rate

    @property
    def position_ms(self) -> float:
        """Position on the input-audio timeline (ms of audio appended in this session)."""
        return self._base_ms + self._bytes / (2 * self._rate) * 1000.0

    @property
    def pending_ms(self) -> float:
        """Audio in the buffer that no turn has taken yet, in ms."""
        return len(self._pending) / (2 * self._rate) * 1000.0

    def configure(self, session: Mapping[str, Any], api_version: str) -> None:
        """Follow the session's input format, rate and turn detection (at start and after each update)."""
        old_td = self._session.get("turn_detection")
        first = not self._session
        self._session, self._api_version = session, api_version
        rate = session_config.input_rate(session)
        if rate != self._rate:
            self._base_ms, self._bytes, self._rate = self.position_ms, 0, rate
            self._close_vad()
        processing = session_config.processing_settings(session)
        if processing != self._processing:
            self._trace(
                kind="audio_processing",
                noise_reduction=processing.noise_reduction,
                echo_cancellation=processing.echo_cancellation,
            )
            if processing.active != self._processing.active:
                self._close_vad()  # the VAD's input changes rate: it starts over (as for a new input rate)
            elif self._vad is not None and processing.active:
                self._vad.configure_processing(processing)
            self._processing = processing
        if first or session["turn_detection"] != old_td or self._vad is None:
            self._configure_vad()

    def _configure_vad(self) -> None:
        td = self._session["turn_detection"]
        if td is None:
            self._close_vad()
            return
        params = session_config.vad_params(td, self._api_version)
        if self._vad is not None and self._vad_rate == self._rate:
            self._vad.vad.update_params(params)
            return
        self._close_vad()
        vad_rate = PROCESSING_RATE_HZ if self._processing.active else self._rate
        vad = StreamingVad(params, vad_rate, model=self._vad_model())
        self._vad = VadPipeline(vad, self._on_vad_decided, self._processing, self._rate, self.position_ms)
        self._vad_rate = self._rate
        self._vad_offset_ms = self._decided_ms = self.position_ms

    def _close_vad(self) -> None:
        if self._vad is not None:
            self._vad.close()
        self._vad = None

    def close(self) -> None:
        """Drop the VAD (the connection is gone)."""
        self._close_vad()

    # --- audio in ----------------------------------------------------------------------------------

    def append(self, b64: str, event_id: str | None) -> None:
        """Add base64 audio in the session's input format; the VAD decides it now or once its model has run.

        Raises:
            WireError: The audio is not valid base64, or the buffer would hold more than
                :data:`~vlab.protocol_limits.MAX_INPUT_BUFFER_BYTES` (then nothing of it is kept).
        """
        pcm = self._odd_byte + self._decode(b64, event_id)
        if len(self._pending) + len(pcm) > MAX_INPUT_BUFFER_BYTES:
            raise WireError(
                "input_audio_buffer_full",
                f"The input audio buffer is full: it holds {self.pending_ms:.0f}ms of uncommitted audio and "
                f"at most {MAX_INPUT_BUFFER_BYTES} bytes of PCM16 fit. Commit or clear it before appending more.",
                "audio",
                event_id,
            )
        if len(pcm) % 2:
            pcm, self._odd_byte = pcm[:-1], pcm[-1:]
        else:
            self._odd_byte = b""
        self._bytes += len(pcm)
        self._pending += pcm
        if self._vad is not None:
            self._vad.feed(pcm)
        else:  # no turn detection: nothing to decide, so the timeline takes the audio as it arrives
            self._decided_ms = self.position_ms
            self._scheduler.input_decided(self._decided_ms)

    def play(self, audio: bytes, audio_format: str, at_ms: float) -> None:
        """Assistant audio (in an output format) went out at simulated time ``at_ms``: the echo reference.

        The client plays it as it arrives: on the input timeline that is ``at_ms`` when time follows the
        input (``input``/``ended``), and the audio received so far in ``live`` mode, where simulated time
        runs on the wall clock instead.
        """
        if self._vad is None or not self._processing.echo_cancellation:
            return
        fmt = audio_format.replace("-", "_")
        self._vad.play(
            g711.to_pcm16(audio, fmt), protocol.OUTPUT_FORMAT_RATES[fmt], self._input_time_ms(at_ms)
        )

    def stop_playback(self, at_ms: float) -> None:
        """The client stopped playing the assistant's audio at simulated time ``at_ms`` (barge-in, truncate)."""
        if self._vad is not None:
            self._vad.stop_playback(self._input_time_ms(at_ms))

    def _input_time_ms(self, at_ms: float) -> float:
        """Where on the input timeline something happening at simulated time ``at_ms`` falls."""
        return self.position_ms if self._scheduler.mode == protocol.TIMELINE_LIVE else at_ms

    async def settle(self) -> None:
        """Wait until the VAD has decided every appended sample."""
        if self._vad is not None:
            await self._vad.settle()

    def _decode(self, b64: str, event_id: str | None) -> bytes:
        try:
            raw = _b64decode(b64)
        except (binascii.Error, ValueError):
            raise WireError(
                "invalid_value", "Invalid value for 'audio': not valid base64.", "audio", event_id
            ) from None
        if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
            return self._wav_to_pcm16(raw)
        return g711.to_pcm16(raw, self._session["input_audio_format"])

    def _wav_to_pcm16(self, raw: bytes) -> bytes:
        """A whole WAV file sent as audio (as the SDK's own tests do): use its samples, not its header."""
        import soundfile as sf

        try:
            samples, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError):
            # A truncated or odd header: fall back to the bytes after the 44-byte canonical header.
            return raw[44:] if len(raw) > 44 else b""
        mono = samples.mean(axis=1).astype(np.float32)
        return float_to_pcm16(resample(mono, int(rate), self._rate))

    # --- client control ----------------------------------------------------------------------------

    def commit(self, event_id: str | None) -> tuple[str, bytes]:
        """Take everything in the buffer as one user turn (``input_audio_buffer.commit``).

        Returns:
            The turn's item id (the one VAD gave it, if speech had started) and its PCM16.

        Raises:
            WireError: Less than :data:`MIN_COMMIT_MS` of audio is in the buffer.
        """
        pending_ms = self.pending_ms
        if pending_ms < MIN_COMMIT_MS:
            raise WireError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS:.0f}ms "
                f"of audio, but buffer only has {pending_ms:.2f}ms of audio.",
                None,
                event_id,
            )
        audio = bytes(self._pending)
        item_id = self._speech_item_id or Ids.new("item")
        self.clear()
        return item_id, audio

    def clear(self) -> None:
        """Drop the buffer and any turn in progress (``input_audio_buffer.clear``)."""
        self._pending.clear()
        self._pending_start_ms = self.position_ms
        self._speech_item_id = None
        self._drop_hold()
        if self._vad is not None:
            self._vad.reset(self.position_ms)
            self._vad_offset_ms = self._decided_ms = self.position_ms

    def set_input_over(self, over: bool) -> None:
        """The client's audio has ended (True: the ``ended`` timeline) or goes on (False).

        Call it once every appended sample is decided (:meth:`settle`): a held turn whose words are known
        then ends at its deadline, since no resumed speech can continue it any more.
        """
        self._input_over = over
        if over:
            self._resolve_hold()

    def held_transcript(self, item_id: str) -> Transcript | None:
        """The words read while the turn ``item_id`` was held, if it was (then forgotten)."""
        transcript = self._hold_transcripts.pop(item_id, None)
        self._hold_transcripts.clear()
        return transcript

    # --- VAD decisions -----------------------------------------------------------------------------

    def _on_vad_decided(self, events: list[VadEvent], position_ms: float) -> None:
        """The VAD has decided the audio up to ``position_ms`` (its own timeline) and found ``events``."""
        self._decided_ms = self._vad_offset_ms + position_ms
        for vad_event in events:
            decided = vad_event.decided_ms if math.isfinite(vad_event.decided_ms) else vad_event.audio_ms
            self._on_vad(vad_event, self._vad_offset_ms + decided)
        self._resolve_hold()
        if self._speech_item_id is None:
            self._trim_pending()
        self._scheduler.input_decided(self._decided_ms)

    def _trim_pending(self) -> None:
        """Outside speech, keep only the audio a future onset's prefix padding may need."""
        td = self._session["turn_detection"]
        keep_ms = (float(td["prefix_padding_ms"]) + 1000.0 if td else 0.0) + (
            self.position_ms - self._decided_ms  # and the audio the VAD has not decided yet
        )
        excess = len(self._pending) - int(keep_ms / 1000.0 * self._rate) * 2
        if excess > 0:
            del self._pending[:excess]
            self._pending_start_ms += excess / (2 * self._rate) * 1000.0

    def _span(self, start_ms: float, end_ms: float) -> tuple[int, int]:
        bytes_per_ms = 2 * self._rate / 1000.0
        lo = max(0, int((start_ms - self._pending_start_ms) * bytes_per_ms) // 2 * 2)
        hi = int((end_ms - self._pending_start_ms) * bytes_per_ms) // 2 * 2
        return lo, max(lo, min(len(self._pending), hi))

    def _take(self, start_ms: float, end_ms: float) -> bytes:
        """Cut a turn's span out of the buffer and drop everything before its end."""
        lo, hi = self._span(start_ms, end_ms)
        segment = bytes(self._pending[lo:hi])
        del self._pending[:hi]
        self._pending_start_ms += hi / (2 * self._rate / 1000.0)
        return segment

    def _segment(self, start_ms: float, end_ms: float) -> bytes:
        """A copy of the buffered audio between two input-audio times."""
        lo, hi = self._span(start_ms, end_ms)
        return bytes(self._pending[lo:hi])

    def _decision_ms(self, decided_ms: float) -> float:
        """Simulated time of a VAD decision made on the audio up to ``decided_ms``."""
        if self._scheduler.mode == protocol.TIMELINE_INPUT:
            return decided_ms
        return self._scheduler.current_ms()

    def _on_vad(self, ev: VadEvent, decided_ms: float) -> None:
        hold = self._hold
        if hold is not None:
            hold.deferred.append((ev, decided_ms))
            self._resolve_hold()
            return
        timeout_ms = eou_timeout_ms(self._session["turn_detection"])
        if ev.kind == "speech_stopped" and timeout_ms is not None and self._speech_item_id is not None:
            speech_end = ev.speech_ms + self._vad_offset_ms
            deadline_ms = speech_end + max(timeout_ms, 0.0)
            vad = self._vad.vad if self._vad is not None else None
            lag_ms = vad.params.min_speech_ms + vad.frame_ms if vad is not None else 0.0
            hold = _Hold(
                self._speech_item_id, ev, decided_ms, self._vad_offset_ms, deadline_ms, deadline_ms + lag_ms
            )
            self._hold = hold
            self._scheduler.set_cap(
                self._decision_ms(decided_ms)
            )  # nothing later runs until the words are known
            audio = self._segment(self._speech_start_ms, speech_end)
            self._scheduler.add_busy(1)
            self._spawn(self._read_turn_so_far(hold, audio))
            return
        self._decided(ev, decided_ms)

    async def _read_turn_so_far(self, hold: _Hold, audio: bytes) -> None:
        """Recognize the turn so far for the end-of-utterance decision (on the ASR worker thread)."""
        try:
            transcript = await read_turn(self._recognizer, audio, self._rate)
        except Exception:
            log.exception("end-of-utterance recognition failed; ending the turn")
            transcript = Transcript()
        finally:
            self._scheduler.add_busy(-1)
        if self._hold is not hold:
            return
        hold.transcript = transcript
        hold.words = [w.text for w in transcript.words]
        self._trace(
            kind="eou",
            item_id=hold.item_id,
            words=" ".join(hold.words),
            unfinished=sounds_unfinished(hold.words),
            decode_ms=transcript.decode_s * 1000.0,
        )
        self._resolve_hold()
        if self._hold is hold:
            # On the input timeline nothing after the deadline runs before the turn is decided, at the
            # deadline or on with resumed speech: the VAD decides it as its audio reaches known_ms, or
            # the client's end of input (set_input_over) does.
            on_input = self._scheduler.mode == protocol.TIMELINE_INPUT
            self._scheduler.set_cap(hold.deadline_ms if on_input else math.inf)

            async def timeout() -> None:  # on a live timeline the clock decides
                if self._hold is hold and self._scheduler.mode != protocol.TIMELINE_INPUT:
                    self._end_hold(hold, self._scheduler.now_ms)

            self._scheduler.spawn(hold.deadline_ms, timeout)

    def _drop_hold(self) -> None:
        if self._hold is not None:
            self._hold = None
            self._scheduler.set_cap(math.inf)

    def _resolve_hold(self) -> None:
        """Decide a held end of turn once the words are known: end it, or continue the turn."""
        hold = self._hold
        if hold is None or hold.words is None:
            return
        if not sounds_unfinished(hold.words):
            self._drop_hold()
            self._hold_transcripts[hold.item_id] = hold.transcript or Transcript()
            self._replay(hold.stop, hold.decided_ms, hold.deferred)
            return
        first = hold.deferred[0] if hold.deferred else None
        if first is not None and first[0].kind == "speech_started":
            if first[0].speech_ms + self._vad_offset_ms <= hold.deadline_ms:
                # Speech resumed in time: the same turn goes on (no speech_started is sent).
                self._drop_hold()
                self._trace(kind="eou", item_id=hold.item_id, event="continued")
                for ev, decided_ms in hold.deferred[1:]:
                    self._on_vad(ev, decided_ms)
                return
            self._end_hold(hold, hold.deadline_ms)
            return
        if self._decided_ms >= hold.known_ms or self._input_over:
            self._end_hold(hold, hold.deadline_ms)

    def _end_hold(self, hold: _Hold, decided_ms: float) -> None:
        """End a held turn at its deadline (the end-of-utterance timeout ran out)."""
        self._drop_hold()
        self._hold_transcripts[hold.item_id] = hold.transcript or Transcript()
        stop = VadEvent(
            "speech_stopped",
            audio_ms=int(round(hold.deadline_ms - hold.offset_ms)),
            speech_ms=hold.stop.speech_ms,
        )
        self._replay(stop, decided_ms, hold.deferred)

    def _replay(self, stop: VadEvent, decided_ms: float, deferred: list[tuple[VadEvent, float]]) -> None:
        self._decided(stop, decided_ms)
        for ev, at_ms in deferred:
            self._on_vad(ev, at_ms)

    def _decided(self, ev: VadEvent, decided_ms: float) -> None:
        """A turn boundary is final: trace it and tell the listener."""
        at_ms = self._decision_ms(decided_ms)
        audio_ms = reported_audio_ms(ev, self._vad_offset_ms, self._last_stop_ms)
        if ev.kind == "speech_stopped":
            self._last_stop_ms = audio_ms
        self._trace(
            kind="vad", event=ev.kind, audio_ms=audio_ms, speech_ms=ev.speech_ms + self._vad_offset_ms
        )
        if ev.kind == "speech_started":
            item_id = Ids.new("item")
            self._speech_item_id = item_id
            self._speech_start_ms = audio_ms
            self._listener.speech_started(item_id, audio_ms, at_ms)
        else:
            item_id = self._speech_item_id or Ids.new("item")
            self._speech_item_id = None
            audio = self._take(self._speech_start_ms, audio_ms)
            self._listener.speech_stopped(item_id, audio_ms, audio, at_ms)


def _b64decode(b64: str) -> bytes:
    """Strict base64 decoding (``base64.b64decode(validate=True)``), 7x faster with ``pybase64``.

    ``pybase64`` refuses a few paddings the standard library accepts (``AAAA=``); those fall back to it,
    so exactly the same appends are accepted.
    """
    try:
        return pybase64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return base64.b64decode(b64, validate=True)
