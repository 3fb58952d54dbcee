"""Sound devices: list them, capture a microphone, play to a speaker with barge-in, half-duplex.

sounddevice (PortAudio) is imported lazily inside the functions that need it, so ``import vlab`` works
on machines without PortAudio; a missing library or device becomes a :class:`~vlab.errors.DeviceError`
that says how to fix it.

- :class:`Microphone` captures PCM16 mono; ``async for chunk in mic`` yields ``block_ms`` chunks.
- :class:`Speaker` implements :class:`~vlab.audio.playback.AudioOutput`: ``push`` queues an item's
  audio in a jitter buffer, ``clear`` stops within one audio block and returns the ms heard, and
  per-item notices (``playback_started``, ``playback_finished``, ``playback_cleared``, ``underrun``)
  reach ``on_event`` on the event loop.
- :class:`HalfDuplex` silences microphone chunks captured while the speaker is audible.

PortAudio callbacks follow sounddevice's rules: they copy bytes under a lock and hand work to the loop
with ``call_soon_threadsafe``; they never log, await or allocate more than one block. Their bodies are
plain methods (:meth:`Speaker.render`, :meth:`Microphone.capture`) so tests can drive them directly.

Timestamps are ``time.perf_counter_ns`` (the :class:`~vlab.clock.SystemClock`). A block's DAC time is
the callback's ``perf_counter_ns`` plus ``outputBufferDacTime - currentTime`` from PortAudio's time
info (both on the stream's clock, so the difference needs no clock mapping); when the host API
reports no DAC time, the stream's output latency is used instead (``Speaker.timing_source`` says
which). Microphone chunks are stamped the same way with ``inputBufferAdcTime``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from vlab.errors import DeviceError
from vlab.protocol import PCM16_SAMPLE_RATE_HZ

Kind = Literal["input", "output"]
EventCallback = Callable[[str, str, int, dict[str, Any]], None]
"""``on_event(kind, item_id, t_ns, info)``, called on the event loop."""

DeviceSpec = int | str | None
"""A device index, a case-insensitive part of its name, or None for the default."""

VIRTUAL_CARD_HINT = 'on a headless machine start a virtual sound card: eval "$(vlab devices --virtual)"'
"""What a "no device" error advises (``vlab devices --virtual`` runs :data:`vlab.bundled.VIRTUAL_CARD_SCRIPT`)."""


def _sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into advice."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise DeviceError(
            f"PortAudio is not installed ({exc}); install PortAudio: apt-get install libportaudio2 "
            "(Debian/Ubuntu) or brew install portaudio (macOS)"
        ) from exc
    except ImportError as exc:
        raise DeviceError(f"sounddevice is not installed ({exc}); pip install sounddevice") from exc
    return sounddevice


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One sound device as PortAudio reports it."""

    index: int
    """PortAudio device index (valid until PortAudio is re-initialized)."""
    name: str
    """Device name, e.g. ``"pulse"``."""
    host_api: str
    """Host API name, e.g. ``"ALSA"``."""
    max_input_channels: int
    """Input channels (0: not a microphone)."""
    max_output_channels: int
    """Output channels (0: not a speaker)."""
    default_sample_rate: float
    """The device's preferred rate in Hz (streams at other rates are resampled by the host)."""
    is_default_input: bool
    """Whether this is the default input device."""
    is_default_output: bool
    """Whether this is the default output device."""


def list_devices(*, refresh: bool = False) -> list[DeviceInfo]:
    """List the sound devices PortAudio sees.

    Args:
        refresh: Re-scan (PortAudio lists devices once per process; use after starting a sound server).
            Only do this with no stream open.

    Returns:
        Every device, input and output, in index order (empty when there is none).

    Raises:
        DeviceError: PortAudio is not installed.
    """
    sd = _sounddevice()
    if refresh:
        sd._terminate()
        sd._initialize()
    apis = [api["name"] for api in sd.query_hostapis()]
    defaults = {kind: _default_index(sd, kind) for kind in ("input", "output")}
    return [
        DeviceInfo(
            index=i,
            name=str(d["name"]),
            host_api=apis[d["hostapi"]] if 0 <= d["hostapi"] < len(apis) else "?",
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_sample_rate=float(d["default_samplerate"]),
            is_default_input=i == defaults["input"],
            is_default_output=i == defaults["output"],
        )
        for i, d in enumerate(sd.query_devices())
    ]


def _default_index(sd: ModuleType, kind: Kind) -> int:
    try:
        return int(sd.query_devices(kind=kind)["index"])
    except Exception:  # no default device of this kind
        return -1


def find_device(device: DeviceSpec, kind: Kind) -> DeviceInfo:
    """Pick an input or output device by index, by name (exact, else unique substring) or the default.

    Args:
        device: Index, part of the name (case-insensitive), or None for the default device.
        kind: ``"input"`` for a microphone, ``"output"`` for a speaker.

    Returns:
        The matching device.

    Raises:
        DeviceError: PortAudio is missing, there is no such device, or the name is ambiguous.
    """
    devices = list_devices()
    usable = [d for d in devices if (d.max_input_channels if kind == "input" else d.max_output_channels)]
    if not usable:
        raise DeviceError(f"no {kind} device found; {VIRTUAL_CARD_HINT}, then run `vlab devices`")
    if device is None:
        chosen = [d for d in usable if (d.is_default_input if kind == "input" else d.is_default_output)]
        return chosen[0] if chosen else usable[0]
    if isinstance(device, int):
        chosen = [d for d in usable if d.index == device]
    else:
        want = device.lower()
        chosen = [d for d in usable if d.name.lower() == want] or [
            d for d in usable if want in d.name.lower()
        ]
    if len(chosen) == 1:
        return chosen[0]
    names = ", ".join(f"{d.index}: {d.name!r}" for d in usable)
    problem = "matches several" if chosen else "matches no"
    raise DeviceError(
        f"{device!r} {problem} {kind} devices ({names}); pass an index or a longer part of the name "
        "(run `vlab devices` to see the names)"
    )


def format_devices(devices: list[DeviceInfo]) -> str:
    """The device table printed by ``vlab devices`` (``>``/``<``: default input/output)."""
    rows = [("", "#", "name", "host API", "in", "out", "default Hz")]
    for d in devices:
        mark = ("<" if d.is_default_input else " ") + (">" if d.is_default_output else " ")
        rows.append(
            (
                mark,
                str(d.index),
                d.name,
                d.host_api,
                str(d.max_input_channels),
                str(d.max_output_channels),
                f"{d.default_sample_rate:.0f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {1, 4, 5, 6}
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n(< default input, > default output)"


def _open_error(kind: str, device: DeviceInfo, sample_rate: int, exc: Exception) -> DeviceError:
    return DeviceError(
        f"cannot open {kind} device {device.index} {device.name!r} at {sample_rate} Hz mono: {exc}; "
        "check that no other program holds it, or pick another (run `vlab devices` to see the names)"
    )


def _stream_to_perf_ns(now_ns: int, current_s: float, stream_s: float, fallback_ns: int) -> int:
    """Map a PortAudio stream time to ``perf_counter_ns`` (``stream_s`` 0 means not reported)."""
    if stream_s > 0 and current_s > 0 and abs(stream_s - current_s) < 1.0:
        return now_ns + round((stream_s - current_s) * 1e9)
    return now_ns + fallback_ns


# --- speaker ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """Where one item's audio sits on the speaker's byte timeline."""

    item_id: str
    start: int
    """Timeline position of its first byte."""
    end: int
    """Timeline position after its last pushed byte (grows as audio arrives)."""
    started_ns: int | None = None
    """DAC time of its first sample (once played)."""
    finished: bool = False
    """Its pushed audio has all been played and the buffer ran dry (or the next item started)."""


def _open_stream(
    kind: Literal["input", "output"],
    device: int | str | None,
    sample_rate: int,
    block_frames: int,
    latency: Any,
    callback: Any,
) -> Any:
    """Open (not start) a mono int16 PortAudio stream on the chosen device.

    Raises:
        DeviceError: PortAudio is missing, or the device cannot be found or opened at that rate.
    """
    sd = _sounddevice()
    info = find_device(device, kind)
    cls = sd.RawOutputStream if kind == "output" else sd.RawInputStream
    try:
        return cls(
            samplerate=sample_rate,
            blocksize=block_frames,
            device=info.index,
            channels=1,
            dtype="int16",
            latency=latency,
            callback=callback,
        )
    except Exception as exc:  # PortAudioError or ValueError from sounddevice
        raise _open_error(kind, info, sample_rate, exc) from exc


class Speaker:
    """A PortAudio output stream behind the :class:`~vlab.audio.playback.AudioOutput` contract.

    Pushed audio goes into a jitter buffer (bytes under a lock); the stream callback copies one block
    at a time and zero-fills when it runs dry. Positions are counted in bytes on one timeline: what
    the callback has consumed is what will be heard (blocks handed to PortAudio still play out, about
    :attr:`latency_ms` after the callback), so :meth:`clear` returns consumed-minus-item-start,
    clamped to what was pushed.

    Notices (``on_event(kind, item_id, t_ns, info)``, on the loop that started the speaker):

    - ``playback_started``: the item's first sample reaches the DAC at ``t_ns``;
    - ``playback_finished``: its last pushed sample has played (``t_ns`` when it ends at the DAC) and
      the buffer ran dry or the next item started; info ``played_ms``;
    - ``underrun``: more audio arrived for an item that had run dry (an audible gap; a later
      ``playback_finished`` follows); info ``gap_ms``;
    - ``playback_cleared``: :meth:`clear` stopped it; ``t_ns`` is the call, info ``heard_ms``,
      ``pushed_ms``, ``started_t_ns`` and ``silent_from_t_ns`` (DAC time after its last played sample).

    Each notice carries the segment id current when it was made; :meth:`clear` starts a new segment,
    so callback notices still in flight for cleared audio are dropped.

    Args:
        device: Output device (index, part of its name, or None for the default).
        sample_rate: Stream rate in Hz; pushes at other rates are resampled (soxr).
        block_ms: Callback block length; :meth:`clear` takes effect at the next block.
        on_event: Playback notice callback, called on the event loop.
        latency: PortAudio latency hint (``"low"``, ``"high"`` or seconds).
    """

    def __init__(
        self,
        device: DeviceSpec = None,
        sample_rate: int = PCM16_SAMPLE_RATE_HZ,
        block_ms: float = 20.0,
        *,
        on_event: EventCallback | None = None,
        latency: str | float = "low",
    ) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self.block_frames = round(sample_rate * block_ms / 1000)
        self.block_ms = 1000.0 * self.block_frames / sample_rate
        self.on_event = on_event
        self.latency = latency
        self.underruns = 0
        """Times an item ran dry and then got more audio (audible gaps)."""
        self.output_underflows = 0
        """Callbacks PortAudio flagged with an output underflow (the host starved)."""
        self.timing_source: Literal["dac_time", "latency_estimate"] | None = None
        """How the last block's DAC time was found: PortAudio's ``outputBufferDacTime``, or latency."""
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._zeros = bytes(2 * self.block_frames)
        self._played = 0  # timeline position of the next byte the callback consumes
        self._items: deque[_Item] = deque()
        self._last_item: _Item | None = None
        self._cleared_id: str | None = None
        self._segment = 0
        self._audible_from_ns = 0
        self._audible_until_ns = 0
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fallback_latency_ns = 0

    def __repr__(self) -> str:
        state = "open" if self._stream is not None else "closed"
        return f"Speaker({self.device!r}, {self.sample_rate} Hz, {self.block_ms:g} ms blocks, {state})"

    def describe(self) -> dict[str, Any]:
        """What the log says about this output (``audio_output`` in ``session.json``)."""
        return _kernel_device(self.device, self.sample_rate, self.block_ms)

    # --- AudioOutput ---------------------------------------------------------------------------------

    @property
    def current_item_id(self) -> str | None:
        """The item being played (else the next queued, else the last played), if any."""
        with self._lock:
            for item in self._items:
                if not item.finished:
                    return item.item_id
            return self._last_item.item_id if self._last_item else None

    def push(self, item_id: str, pcm16: bytes, sample_rate: int) -> None:
        """Queue PCM16 mono audio of ``item_id`` (audio of an item just cleared is ignored).

        Raises:
            AudioFormatError: ``pcm16`` has an odd number of bytes.
        """
        if item_id == self._cleared_id or not pcm16:
            return
        self._cleared_id = None
        from vlab.audio.pcm import check_pcm16  # numpy, which this module does not import up front

        check_pcm16(pcm16)
        if sample_rate != self.sample_rate:
            pcm16 = self._resample(pcm16, sample_rate)
        with self._lock:
            tail = self._items[-1] if self._items else None
            if tail is not None and tail.item_id == item_id:
                if tail.finished and tail.end == self._played + len(self._buf):
                    tail.finished = False  # it ran dry and is resuming: an audible gap
                    self.underruns += 1
                    self._post("underrun", item_id, time.perf_counter_ns(), {"item_end": tail.end})
                tail.end += len(pcm16)
            else:
                start = self._played + len(self._buf)
                self._items.append(_Item(item_id, start, start + len(pcm16)))
            self._buf += pcm16

    def clear(self) -> float:
        """Stop playback now: drop what is queued and abort the stream (discarding what PortAudio holds).

        Returns:
            Milliseconds of the current item heard: what reached the DAC before now, at most what was pushed.
        """
        t_ns = time.perf_counter_ns()
        stream = self._stream
        with self._lock:
            # the item at the play head, else the last one (it ran dry, but more audio may still come)
            current = next((i for i in self._items if not i.finished), None)
            # Abort the stream too: PortAudio and the sound server hold tens of ms that would still play.
            abort = (
                stream is not None and current is not None and not current.finished and bool(stream.active)
            )
            if current is None and self._items:
                current = self._items[-1]
            heard_ms = 0.0
            if current is not None:
                heard = max(0, min(self._played, current.end) - current.start)
                heard_ms = 1000.0 * heard / (2 * self.sample_rate)
                if abort:  # what was handed to PortAudio but not yet at the DAC is never heard now
                    heard_ms = max(0.0, heard_ms - max(0, self._audible_until_ns - t_ns) / 1e6)
                pushed_ms = 1000.0 * (current.end - current.start) / (2 * self.sample_rate)
                self._cleared_id = current.item_id
                self._last_item = current
                self._segment += 1
            if current is not None and not current.finished:
                info = {
                    "heard_ms": heard_ms,
                    "pushed_ms": pushed_ms,
                    "started_t_ns": current.started_ns,
                    "silent_from_t_ns": t_ns if abort else self._audible_until_ns,
                }
                self._post("playback_cleared", current.item_id, t_ns, info)
            self._buf.clear()
            self._items.clear()
        if abort:
            assert stream is not None
            stream.abort()
            stream.start()
        return heard_ms

    # --- the callback body -----------------------------------------------------------------------------

    def render(self, out: Any, dac_ns: int) -> list[tuple[int, str, str, int, dict[str, Any]]]:
        """Fill one output block from the jitter buffer (zeros when it runs dry); the callback body.

        Args:
            out: The writable output buffer (``len(out)`` bytes of PCM16).
            dac_ns: When its first sample reaches the DAC, in ``perf_counter_ns``.

        Returns:
            The notices this block produced, ``(segment, kind, item_id, t_ns, info)``.
        """
        n_out = len(out)
        notices: list[tuple[int, str, str, int, dict[str, Any]]] = []
        ns_per_byte = 1e9 / (2 * self.sample_rate)
        with self._lock:
            n = min(n_out, len(self._buf))
            if n:
                with memoryview(self._buf) as view:
                    out[:n] = view[:n]
                del self._buf[:n]
            if n < n_out:
                zeros = self._zeros if n_out - n <= len(self._zeros) else bytes(n_out - n)
                with memoryview(zeros) as view:
                    out[n:] = view[: n_out - n]
            begin, self._played = self._played, self._played + n
            if n:
                # a new audible stretch only after a real gap: DAC estimates jitter by microseconds
                if self._audible_until_ns + 5_000_000 < dac_ns:
                    self._audible_from_ns = dac_ns
                self._audible_until_ns = dac_ns + round(n * ns_per_byte)
            for item in self._items:
                if item.started_ns is None and item.start < self._played:
                    item.started_ns = dac_ns + round((item.start - begin) * ns_per_byte)
                    notices.append((self._segment, "playback_started", item.item_id, item.started_ns, {}))
                dry = item.end == self._played and not self._buf
                next_started = item.end < self._played or (item.end == self._played and bool(self._buf))
                if not item.finished and item.started_ns is not None and (dry or next_started):
                    item.finished = True
                    end_ns = dac_ns + round((item.end - begin) * ns_per_byte)
                    played_ms = 1000.0 * (item.end - item.start) / (2 * self.sample_rate)
                    info = {"played_ms": played_ms}
                    notices.append((self._segment, "playback_finished", item.item_id, end_ns, info))
            while len(self._items) > 1 and self._items[0].finished:
                self._last_item = self._items.popleft()
            if self._items and self._items[0].finished:
                self._last_item = self._items[0]
        return notices

    def audible_between(self, start_ns: int, end_ns: int) -> bool:
        """Whether pushed audio is at the DAC at any time in ``[start_ns, end_ns)`` (perf_counter_ns)."""
        return self._audible_until_ns > start_ns and self._audible_from_ns < end_ns

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        now_ns = time.perf_counter_ns()
        if status.output_underflow:
            self.output_underflows += 1
        dac_s = time_info.outputBufferDacTime
        self.timing_source = "dac_time" if dac_s > 0 else "latency_estimate"
        dac_ns = _stream_to_perf_ns(now_ns, time_info.currentTime, dac_s, self._fallback_latency_ns)
        for notice in self.render(outdata, dac_ns):
            self._post(*notice[1:], segment=notice[0])

    def _post(
        self, kind: str, item_id: str, t_ns: int, info: dict[str, Any], segment: int | None = None
    ) -> None:
        if self.on_event is not None and self._loop is not None:
            seg = self._segment if segment is None else segment
            self._loop.call_soon_threadsafe(self._deliver, seg, kind, item_id, t_ns, info)

    def _deliver(self, segment: int, kind: str, item_id: str, t_ns: int, info: dict[str, Any]) -> None:
        if segment == self._segment and self.on_event is not None:
            self.on_event(kind, item_id, t_ns, info)

    def _resample(self, pcm16: bytes, from_rate: int) -> bytes:
        # Each push on its own (soxr, exact length): a streaming resampler would hold back its last
        # few ms until told the item ended, and AudioOutput has no such call.
        from vlab.audio.pcm import float_to_pcm16, pcm16_to_float, resample

        return float_to_pcm16(resample(pcm16_to_float(pcm16), from_rate, self.sample_rate))

    # --- lifecycle -----------------------------------------------------------------------------------

    @property
    def latency_ms(self) -> float:
        """The stream's output latency as PortAudio reports it (0 before :meth:`start`)."""
        return self._fallback_latency_ns / 1e6

    @property
    def queued_ms(self) -> float:
        """Audio waiting in the jitter buffer."""
        return 1000.0 * len(self._buf) / (2 * self.sample_rate)

    def start(self) -> None:
        """Open and start the output stream (notices go to the running loop, if any).

        Raises:
            DeviceError: PortAudio is missing, or the device cannot be found or opened.
        """
        if self._stream is not None:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        stream = _open_stream(
            "output", self.device, self.sample_rate, self.block_frames, self.latency, self._callback
        )
        self._fallback_latency_ns = round(float(stream.latency) * 1e9)
        stream.start()
        self._stream = stream

    async def drain(self, timeout_s: float = 60.0) -> None:
        """Wait until the jitter buffer is empty (the last block is then on its way to the DAC)."""
        deadline = time.monotonic() + timeout_s
        # polling at half a block: the PortAudio thread must not touch loop objects, and this is rare
        while self._buf and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(self.block_ms / 2000)

    def close(self) -> None:
        """Stop the stream at once (queued audio is dropped) and release the device."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.abort()
            stream.close()
        with self._lock:
            self._buf.clear()
            self._items.clear()

    async def __aenter__(self) -> Speaker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# --- microphone ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MicChunk:
    """One captured block."""

    pcm16: bytes
    """PCM16 mono audio at the microphone's rate."""
    t_ns: int
    """When its first sample was captured at the ADC (``perf_counter_ns``)."""


class Microphone:
    """A PortAudio input stream: ``async for chunk in mic`` yields PCM16 mono blocks of ``block_ms``.

    The callback copies the block and hands it to the loop; chunks wait in a queue of ``max_queue_ms``
    (the oldest are dropped and counted in :attr:`dropped_chunks` if nobody reads).

    Args:
        device: Input device (index, part of its name, or None for the default).
        sample_rate: Capture rate in Hz (use the session's input rate, 24000 for pcm16).
        block_ms: Chunk length.
        latency: PortAudio latency hint (``"low"``, ``"high"`` or seconds).
        max_queue_ms: Audio kept for a slow reader before the oldest chunks are dropped.
    """

    def __init__(
        self,
        device: DeviceSpec = None,
        sample_rate: int = PCM16_SAMPLE_RATE_HZ,
        block_ms: float = 20.0,
        *,
        latency: str | float = "low",
        max_queue_ms: float = 5000.0,
    ) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self.block_frames = round(sample_rate * block_ms / 1000)
        self.block_ms = 1000.0 * self.block_frames / sample_rate
        self.latency = latency
        self.overflows = 0
        """Callbacks PortAudio flagged with an input overflow (samples lost before vlab saw them)."""
        self.dropped_chunks = 0
        """Chunks dropped because the reader fell more than ``max_queue_ms`` behind."""
        self._max_chunks = max(1, round(max_queue_ms / self.block_ms))
        self._chunks: deque[MicChunk | None] = deque()
        self._ready = asyncio.Event()
        self._stream: Any = None
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fallback_latency_ns = 0

    def __repr__(self) -> str:
        state = "open" if self._stream is not None else "closed"
        return f"Microphone({self.device!r}, {self.sample_rate} Hz, {self.block_ms:g} ms blocks, {state})"

    def describe(self) -> dict[str, Any]:
        """What the log says about this input (the ``vlab.audio_input`` record)."""
        return _kernel_device(self.device, self.sample_rate, self.block_ms)

    def capture(self, indata: Any, adc_ns: int, overflow: bool = False) -> tuple[bytes, int]:
        """Copy one input block and count its status; the callback body.

        Args:
            indata: The input buffer (PCM16 bytes).
            adc_ns: When its first sample was captured (``perf_counter_ns``).
            overflow: PortAudio flagged an input overflow.

        Returns:
            The copied bytes and ``adc_ns``.
        """
        if overflow:
            self.overflows += 1
        return bytes(indata), adc_ns

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        now_ns = time.perf_counter_ns()
        adc_ns = _stream_to_perf_ns(
            now_ns, time_info.currentTime, time_info.inputBufferAdcTime, -self._fallback_latency_ns
        )
        data, t_ns = self.capture(indata, adc_ns, bool(status.input_overflow))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, MicChunk(data, t_ns))

    def _enqueue(self, chunk: MicChunk | None) -> None:
        if chunk is not None and len(self._chunks) >= self._max_chunks:
            self._chunks.popleft()
            self.dropped_chunks += 1
        self._chunks.append(chunk)
        self._ready.set()

    async def chunks(self) -> AsyncIterator[MicChunk]:
        """Captured chunks with their capture time, until the microphone is closed."""
        if not self._started:
            self.start()
        while True:
            while not self._chunks:
                self._ready.clear()
                await self._ready.wait()
            chunk = self._chunks.popleft()
            if chunk is None:
                return
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks():
            yield chunk.pcm16

    def start(self) -> None:
        """Open and start the input stream; must be called with an event loop running.

        Raises:
            DeviceError: PortAudio is missing, or the device cannot be found or opened.
        """
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        stream = _open_stream(
            "input", self.device, self.sample_rate, self.block_frames, self.latency, self._callback
        )
        self._fallback_latency_ns = round(float(stream.latency) * 1e9)
        self._chunks.clear()
        stream.start()
        self._stream = stream
        self._started = True

    def close(self) -> None:
        """Stop capturing; iteration ends after the chunks already captured."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.abort()
            stream.close()
            self._enqueue(None)

    async def __aenter__(self) -> Microphone:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class HalfDuplex:
    """Microphone chunks with silence wherever the speaker was audible, for setups without echo cancellation.

    A chunk is replaced by zeros (same length, so the input timeline keeps its timing) when its
    capture interval overlaps the speaker's latest audible stretch extended by ``hangover_ms`` (room
    echo). The gate is decided when the chunk is read, so read promptly: a chunk read after the
    speaker has started a later stretch is compared with that one only.

    Args:
        mic: The microphone to read.
        speaker: The speaker whose playback mutes the microphone.
        hangover_ms: Extra muted time after the speaker goes quiet.
    """

    def __init__(self, mic: Microphone, speaker: Speaker, *, hangover_ms: float = 100.0) -> None:
        self.mic = mic
        self.speaker = speaker
        self.hangover_ns = round(hangover_ms * 1e6)
        self.muted_chunks = 0
        """Chunks replaced by silence."""

    def gate(self, chunk: MicChunk) -> MicChunk:
        """The chunk, or silence of the same length if the speaker was audible while it was captured."""
        end_ns = chunk.t_ns + round(1e9 * len(chunk.pcm16) / (2 * self.mic.sample_rate))
        # 10 ms of slack for the error of the DAC and ADC estimates (about 1 ms on PulseAudio)
        if self.speaker.audible_between(chunk.t_ns - self.hangover_ns, end_ns + 10_000_000):
            self.muted_chunks += 1
            return MicChunk(bytes(len(chunk.pcm16)), chunk.t_ns)
        return chunk

    async def chunks(self) -> AsyncIterator[MicChunk]:
        """Gated chunks with their capture time."""
        async for chunk in self.mic.chunks():
            yield self.gate(chunk)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks():
            yield chunk.pcm16


def _kernel_device(device: Any, sample_rate: int, block_ms: float) -> dict[str, Any]:
    """How a kernel sound device describes itself in the log (``vlab.audio_input``, ``audio_output``)."""
    return {"side": "kernel", "device": device, "sample_rate": sample_rate, "block_ms": block_ms}
