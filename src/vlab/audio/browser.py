"""Sound devices in a web page: the kernel's side of a browser microphone and speaker.

The page (the :class:`vlab.widgets.BrowserAudio` widget) captures with ``getUserMedia`` and plays
through an ``AudioWorklet``; this module is everything the kernel does with it, over any message
channel (``send(content, buffers)`` one way, :meth:`BrowserBridge.receive` the other), so it is
tested without a browser and imports no widget code.

- :class:`BrowserMicrophone` has :class:`~vlab.audio.devices.Microphone`'s contract: ``async for
  chunk in mic`` yields PCM16 blocks of 20 ms at the session rate; :meth:`BrowserMicrophone.chunks`
  gives each with its capture time on the kernel clock.
- :class:`BrowserSpeaker` has :class:`~vlab.audio.devices.Speaker`'s (the
  :class:`~vlab.audio.playback.AudioOutput` contract): ``push``, ``clear`` (returns the ms heard,
  estimated from the page's last position report) and notices (``playback_started``,
  ``playback_finished``, ``playback_cleared``, ``underrun``) stamped with the page's playback
  position. :meth:`BrowserSpeaker.confirm_clear` waits for the ms the page reports it really played.
- :class:`ClockMap` maps the page's ``performance.now()`` onto the kernel clock from ping/pong round
  trips (the midpoint of the fastest one), so capture and playback times are kernel times.

Messages (``type`` key; PCM16 travels as a binary buffer, never base64 in JSON):

- kernel → page: ``capture_start`` (rate, frame_ms, frames_per_message, constraints), ``capture_stop``, ``play`` (item,
  rate; buffer), ``clear`` (n), ``ping`` (k: kernel ns);
- page → kernel: ``frame`` (seq and t_ms of the first frame, s_ms: when sent; one buffer per frame,
  consecutive; position: the latest playback ``position`` while capturing, one comm message fewer), ``status`` (state, message, settings), ``pong`` (k, b:
  page ms), ``playback`` (kind, item, t_ms, played_ms, peak), ``position`` (item, played_ms, t_ms),
  ``cleared`` (n, item, played_ms, t_ms; r_ms: when the ``clear`` reached the page, stop_ms: from the
  output being rendered then to the first silent sample), ``levels`` are not sent (meters stay in the page).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlab.audio._loop_event import LoopEvent
from vlab.audio.devices import EventCallback, MicChunk
from vlab.clock import Clock, SystemClock, wait_until_ns
from vlab.errors import DeviceError
from vlab.protocol import PCM16_SAMPLE_RATE_HZ

Send = Callable[[dict[str, Any], Sequence[bytes]], None]
"""``send(content, buffers)``: hand one message (JSON content, binary buffers) to the page."""

FRAME_MS = 20.0
"""Capture frame length: the unit the page's worklet captures, numbers and stamps."""

FRAMES_PER_MESSAGE = 5
"""Capture frames the page sends in one message (100 ms of audio). A comm message costs the kernel far
more than the audio it carries (its signature, its dispatch, a busy/idle status pair sent back to the
page), so one message per 20 ms frame was 100 messages a second each way; on a CPU-starved machine the
page then fell seconds behind. It delays a frame by at most (this - 1) frames."""

CONSTRAINTS = ("echoCancellation", "noiseSuppression", "autoGainControl")
"""The ``getUserMedia`` audio constraints the page offers as toggles."""

STATE_MESSAGES = {
    "denied": "the browser denied microphone access; allow the microphone for this page (the icon at the "
    "left of the address bar), then start again",
    "no_device": "the browser found no microphone; connect one (or pick it in the system's sound "
    "settings), then start again",
    "insecure": "the page is not a secure context (https or localhost), so the browser offers no "
    "microphone; open JupyterLab over https or through localhost",
    "suspended": "the browser keeps audio paused until you interact with the page; click the audio "
    "widget once",
    "no_frontend": "no browser page is showing the audio widget; display it (and run in JupyterLab, "
    "Notebook 7 or VS Code), or use a WAV prompt instead",
}
"""Why the page cannot capture, by the state it reports (the fix included)."""


class ClockMap:
    """Maps page time (``performance.now()`` ms) onto the kernel clock from ping/pong round trips.

    Each round trip bounds the offset; the fastest of the last ``keep`` is used (its midpoint is off
    by at most half its round trip).

    Args:
        keep: Round trips remembered.
    """

    def __init__(self, keep: int = 16) -> None:
        self._samples: deque[tuple[int, int]] = deque(maxlen=keep)  # (rtt_ns, offset_ns)

    @property
    def synced(self) -> bool:
        """Whether at least one round trip was measured."""
        return bool(self._samples)

    @property
    def uncertainty_ns(self) -> int | None:
        """Half the fastest round trip: the bound on the mapping's error (None before a round trip)."""
        return min(self._samples)[0] // 2 if self._samples else None

    def observe(self, sent_ns: int, page_ms: float, received_ns: int) -> None:
        """One round trip: a ping sent at ``sent_ns``, stamped ``page_ms`` by the page, back at ``received_ns``."""
        rtt = received_ns - sent_ns
        if rtt >= 0:
            self._samples.append((rtt, (sent_ns + received_ns) // 2 - round(page_ms * 1e6)))

    def to_kernel_ns(self, page_ms: float) -> int | None:
        """A page time on the kernel clock (None before the first round trip)."""
        if not self._samples:
            return None
        return round(page_ms * 1e6) + min(self._samples)[1]


class BrowserMicrophone:
    """The page's microphone: ``async for chunk in mic`` yields 20 ms PCM16 mono blocks at ``sample_rate``.

    Frames wait in a queue of ``max_queue_ms`` (the oldest are dropped and counted in
    :attr:`dropped_chunks`); frames the page numbered but never delivered count as :attr:`overflows`.
    If the page cannot capture (permission denied, no device, no page), iteration raises
    :class:`~vlab.errors.DeviceError` saying why and how to fix it.

    Args:
        bridge: The page connection.
        sample_rate: Capture rate in Hz (the session's input rate).
        max_queue_ms: Audio kept for a slow reader.
    """

    def __init__(
        self, bridge: BrowserBridge, sample_rate: int = PCM16_SAMPLE_RATE_HZ, *, max_queue_ms: float = 5000.0
    ) -> None:
        self._bridge = bridge
        self.sample_rate = sample_rate
        self.block_ms = FRAME_MS
        self.overflows = 0
        """Frames lost between the page and the kernel (gaps in the page's numbering)."""
        self.dropped_chunks = 0
        """Frames dropped because the reader fell more than ``max_queue_ms`` behind."""
        self.delivery_ns: deque[int] = deque(maxlen=10_000)
        self.in_page_ns: deque[int] = deque(maxlen=10_000)
        """Per frame: the part of that delay spent in the page (capture of its last sample → sent)."""
        """Per frame: kernel arrival minus capture time of its last sample (the capture → kernel delay)."""
        self._max_chunks = max(1, round(max_queue_ms / FRAME_MS))
        self._chunks: deque[MicChunk | BaseException | None] = deque()
        self._ready = LoopEvent()  # set by the page's messages, from whichever thread they arrive on
        self._next_seq: int | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"BrowserMicrophone({self.sample_rate} Hz, {'open' if self._started else 'closed'})"

    def describe(self) -> dict[str, Any]:
        """What the log says about this input: the side, rate, constraints asked and applied."""
        return {"side": "browser", "sample_rate": self.sample_rate, **self._bridge.constraint_record()}

    def start(self) -> None:
        """Ask the page to start capturing (with the bridge's constraints)."""
        if self._started:
            return
        self._started = True
        self._next_seq = None
        self._chunks.clear()
        self._bridge.start_capture(self)

    def close(self) -> None:
        """Ask the page to stop; iteration ends after the frames already received."""
        if self._started:
            self._started = False
            self._bridge.stop_capture()
            self._enqueue(None)

    def frame(self, seq: int, pcm16: bytes, t_ns: int, arrived_ns: int, sent_ns: int | None = None) -> None:
        """Take one frame from the page: number ``seq``, first sample captured at ``t_ns`` (kernel clock)."""
        if not self._started:
            return
        if self._next_seq is not None and seq > self._next_seq:
            self.overflows += seq - self._next_seq
        self._next_seq = seq + 1
        last_ns = t_ns + round(1e9 * len(pcm16) / (2 * self.sample_rate))
        self.delivery_ns.append(arrived_ns - last_ns)
        if sent_ns is not None:
            self.in_page_ns.append(sent_ns - last_ns)
        self._enqueue(MicChunk(pcm16, t_ns))

    def fail(self, error: BaseException) -> None:
        """End iteration with ``error`` (the page reported it cannot capture)."""
        if self._started:
            self._started = False
            self._enqueue(error)

    def _enqueue(self, item: MicChunk | BaseException | None) -> None:
        if isinstance(item, MicChunk) and len(self._chunks) >= self._max_chunks:
            self._chunks.popleft()
            self.dropped_chunks += 1
        self._chunks.append(item)
        self._ready.set()

    async def chunks(self) -> AsyncIterator[MicChunk]:
        """Captured frames with their capture time on the kernel clock, until closed.

        Raises:
            DeviceError: The page cannot capture (the message says why and what to do).
        """
        if not self._started and not self._chunks:
            self.start()
        while True:
            while not self._chunks:
                self._ready.clear()
                await self._ready.wait()
            item = self._chunks.popleft()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks():
            yield chunk.pcm16

    async def __aenter__(self) -> BrowserMicrophone:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class _Playing:
    """The speaker's knowledge of one item: what was pushed, what the page last said it played."""

    item_id: str
    pushed_ms: float = 0.0
    played_ms: float = 0.0
    """Played as of the page's last report."""
    reported_ns: int | None = None
    """Kernel time of that report (None: the page has not started the item)."""
    sent_ms: float = 0.0
    """Sent to the page so far (the rest waits in the kernel, see :data:`LEAD_MS`)."""
    finished: bool = False
    started_logged: bool = False
    """``playback_started`` was announced."""


@dataclass(slots=True)
class _Clear:
    n: int
    item_id: str | None
    estimate_ms: float
    called_ns: int
    reply: tuple[str | None, float] | None = None
    """What the page reported: the item and the ms it played."""
    answered: LoopEvent = field(default_factory=LoopEvent)


LEAD_MS = 1000.0
"""Audio the kernel sends ahead of the page's playback position; the rest waits in the kernel. A reply
arrives much faster than real time, and tens of seconds of audio queued in the comm would delay a
``clear`` behind them."""


class BrowserSpeaker:
    """The page's speaker behind the :class:`~vlab.audio.playback.AudioOutput` contract.

    Pushed audio goes to the page's jitter buffer (an ``AudioWorklet``), at most :data:`LEAD_MS` ahead
    of what the page reports it played (more is sent as the reports come); the page reports when each
    item starts and finishes playing, and where it is every 100 ms. :meth:`clear` stops the page
    within one render quantum (128 samples) once the message arrives, and returns the ms heard,
    extrapolated from the last report; :meth:`confirm_clear` waits for the ms the page really played.

    Notices (``on_event(kind, item_id, t_ns, info)``, on the kernel's loop, ``t_ns`` on the kernel
    clock): ``playback_started`` and ``playback_finished`` (info ``played_ms``, ``peak``: the largest
    sample the worklet output, 0..1) at the page's playback position; ``underrun``;
    ``playback_cleared`` with ``heard_ms`` (as the page reports), ``pushed_ms``, ``estimate_ms``
    (what :meth:`clear` returned), ``clear_t_ns`` (the call), ``silent_from_t_ns`` (the page's first
    silent sample, as heard: the output latency included), ``page_received_t_ns`` (the ``clear`` reached
    the page: the comm's transit ends) and ``page_stop_ms`` (the page's own part: from the output being
    rendered when the ``clear`` arrived to the first silent sample).

    Args:
        bridge: The page connection.
        clear_timeout_s: How long :meth:`confirm_clear` waits for the page (then the estimate stands).
    """

    def __init__(self, bridge: BrowserBridge, *, clear_timeout_s: float = 5.0) -> None:
        self._bridge = bridge
        self.clear_timeout_s = clear_timeout_s
        self.on_event: EventCallback | None = None
        self.underruns = 0
        """Times an item ran dry in the page and then got more audio (audible gaps)."""
        self._items: dict[str, _Playing] = {}
        self._order: deque[str] = deque(maxlen=64)
        self._cleared_id: str | None = None
        self._clears = 0
        self._pending: _Clear | None = None
        self._unsent: deque[tuple[_Playing, bytes, int]] = deque()  # pushed, waiting for the lead

    def __repr__(self) -> str:
        return f"BrowserSpeaker({len(self._items)} items)"

    def describe(self) -> dict[str, Any]:
        """What the log says about this output: the side and the page's audio settings."""
        return {"side": "browser", **self._bridge.constraint_record()}

    @property
    def current_item_id(self) -> str | None:
        """The item being played (else the next queued, else the last played), if any."""
        for item_id in self._order:
            if not self._items[item_id].finished:
                return item_id
        return self._order[-1] if self._order else None

    def push(self, item_id: str, pcm16: bytes, sample_rate: int) -> None:
        """Send PCM16 mono audio of ``item_id`` to the page (audio of an item just cleared is ignored)."""
        if item_id == self._cleared_id or not pcm16:
            return
        self._cleared_id = None
        item = self._items.get(item_id)
        if item is None:
            if len(self._order) == self._order.maxlen:
                self._items.pop(self._order[0], None)
            item = self._items[item_id] = _Playing(item_id)
            self._order.append(item_id)
        item.pushed_ms += 1000.0 * len(pcm16) / (2 * sample_rate)
        self._unsent.append((item, pcm16, sample_rate))
        self._send_ahead()

    def _send_ahead(self) -> None:
        """Send queued audio while the page holds less than :data:`LEAD_MS` it has not played."""
        unsent = self._unsent
        if not unsent:
            return
        ahead = sum(i.sent_ms - i.played_ms for i in self._items.values() if not i.finished)
        while unsent and ahead < LEAD_MS:
            item, pcm16, rate = unsent.popleft()
            ms = 1000.0 * len(pcm16) / (2 * rate)
            item.sent_ms += ms
            ahead += ms
            self._bridge.send({"type": "play", "item": item.item_id, "rate": rate}, [pcm16])

    def heard_ms(self) -> float:
        """The current item's ms heard: the page's last report plus the time since, clamped to what was pushed."""
        item_id = self.current_item_id
        item = self._items.get(item_id) if item_id is not None else None
        if item is None or item.reported_ns is None:
            return 0.0
        if item.finished:
            return item.played_ms
        since_ms = (self._bridge.clock.monotonic_ns() - item.reported_ns) / 1e6
        return max(0.0, min(item.pushed_ms, item.played_ms + since_ms))

    def clear(self) -> float:
        """Stop the page's playback and drop what is queued; returns the ms heard (estimated)."""
        item_id = self.current_item_id
        estimate = self.heard_ms()
        self._clears += 1
        self._pending = _Clear(self._clears, item_id, estimate, self._bridge.clock.monotonic_ns())
        self._cleared_id = item_id
        self._unsent.clear()
        for item in self._items.values():
            item.finished = True
        self._bridge.send({"type": "clear", "n": self._clears}, [])
        return estimate

    async def confirm_clear(self) -> tuple[str | None, float] | None:
        """The item and ms the page reports it played when the last :meth:`clear` arrived.

        Returns:
            ``(item_id, heard_ms)``, or None when there was no clear; the estimate when the page did not
            answer within ``clear_timeout_s`` on the bridge's clock, or at once when no page has shown
            the widget (nobody can answer: a notebook run headless).
        """
        pending = self._pending
        if pending is None:
            return None
        if not self._bridge.page_seen.is_set():
            return pending.item_id, pending.estimate_ms
        deadline = pending.called_ns + round(self.clear_timeout_s * 1e9)
        try:
            await wait_until_ns(self._bridge.clock, pending.answered.wait(), deadline)
        except TimeoutError:
            return pending.item_id, pending.estimate_ms
        assert pending.reply is not None
        return pending.reply

    # --- messages from the page ----------------------------------------------------------------------

    def position(self, item_id: str, played_ms: float, t_ns: int) -> None:
        """The page played ``played_ms`` of ``item_id`` as of ``t_ns``."""
        item = self._items.get(item_id)
        if item is not None and not item.finished:
            item.played_ms, item.reported_ns = played_ms, t_ns
            self._send_ahead()

    def playback(self, kind: str, item_id: str, t_ns: int, info: Mapping[str, Any]) -> None:
        """A playback notice from the page (``started``, ``finished``, ``underrun``)."""
        item = self._items.get(item_id)
        if item is None:
            return
        if item_id == self._cleared_id:
            # A notice in flight for audio already cleared says nothing new, except that it had started:
            # the page can report that after the kernel asked for the clear (a busy kernel reads the
            # page's messages late), and the log must still say when the reply began to play.
            if kind == "started" and not item.started_logged:
                item.started_logged = True
                self._notify("playback_started", item_id, t_ns, dict(info))
            return
        if kind == "started":
            item.played_ms, item.reported_ns, item.started_logged = 0.0, t_ns, True
        elif kind == "finished":
            item.finished = True
            item.played_ms, item.reported_ns = float(info.get("played_ms", item.pushed_ms)), t_ns
        elif kind == "underrun":
            item.finished = False
            self.underruns += 1
        self._send_ahead()
        self._notify(f"playback_{kind}" if kind != "underrun" else "underrun", item_id, t_ns, dict(info))

    def cleared(
        self,
        n: int,
        item_id: str | None,
        played_ms: float,
        t_ns: int,
        peak: float | None = None,
        *,
        received_t_ns: int | None = None,
        stop_ms: float | None = None,
    ) -> None:
        """The page stopped for clear number ``n``: it had played ``played_ms`` of ``item_id``; silent from ``t_ns``.

        ``received_t_ns`` is when the ``clear`` reached the page; ``stop_ms`` the page's own stop time.
        """
        pending = self._pending
        if pending is None or pending.n != n:
            return
        item = self._items.get(item_id) if item_id else None
        heard = min(played_ms, item.pushed_ms) if item is not None else played_ms
        if pending.reply is None:
            pending.reply = (item_id or pending.item_id, heard)
            pending.answered.set()
        if item_id:
            info = {
                "heard_ms": heard,
                "pushed_ms": item.pushed_ms if item is not None else None,
                "estimate_ms": pending.estimate_ms,
                "clear_t_ns": pending.called_ns,
                "silent_from_t_ns": t_ns,
                "page_received_t_ns": received_t_ns,
                "page_stop_ms": stop_ms,
                "peak": peak,
            }
            self._notify("playback_cleared", item_id, pending.called_ns, info)

    def _notify(self, kind: str, item_id: str, t_ns: int, info: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(kind, item_id, t_ns, info)

    def start(self) -> None:
        """Nothing to open: the page plays as audio arrives (kept for the speaker contract)."""

    def close(self) -> None:
        """Stop the page's playback and forget the items."""
        if self._items:
            self._bridge.send({"type": "clear", "n": 0}, [])
        self._items.clear()
        self._order.clear()
        self._unsent.clear()
        self._cleared_id = self._pending = None


class BrowserBridge:
    """The kernel's end of a page's audio: routes the page's messages and keeps its clock mapping.

    Args:
        send: Hands one message to the page.
        clock: The kernel clock capture and playback times are mapped onto (the session's clock).
        constraints: ``getUserMedia`` audio constraints asked for (``echoCancellation`` …: bool).
    """

    def __init__(
        self, send: Send, *, clock: Clock | None = None, constraints: Mapping[str, bool] | None = None
    ) -> None:
        self._send = send
        self.clock = clock or SystemClock()
        self.constraints = {name: True for name in CONSTRAINTS} | dict(constraints or {})
        """The constraints asked for on the next capture."""
        self.applied: dict[str, Any] = {}
        """The track settings the page reported for the running capture (``getSettings()``)."""
        self.state = "idle"
        """The page's capture state: ``idle``, ``starting``, ``capturing``, ``suspended``, ``denied``, ``no_device``, ``insecure``, ``error``."""
        self.message = ""
        """Why the page cannot capture, if it cannot."""
        self.page_seen = LoopEvent()
        """Set once the page has answered (a page is showing the widget)."""
        self.clock_map = ClockMap()
        self.speaker = BrowserSpeaker(self)
        self.mic: BrowserMicrophone | None = None
        self.on_state: Callable[[str, str], None] | None = None
        """Called with ``(state, message)`` when the page's capture state changes."""

    def send(self, content: dict[str, Any], buffers: Sequence[bytes]) -> None:
        """Send one message to the page."""
        self._send(content, buffers)

    def microphone(self, sample_rate: int = PCM16_SAMPLE_RATE_HZ) -> BrowserMicrophone:
        """A microphone on this page at ``sample_rate`` (the session's input rate)."""
        return BrowserMicrophone(self, sample_rate)

    def constraint_record(self) -> dict[str, Any]:
        """The constraints asked for and the track settings the page applied (for the log)."""
        return {"constraints": dict(self.constraints), "applied": dict(self.applied)}

    def ping(self) -> None:
        """Measure one round trip to the page (its answer refines the clock mapping)."""
        self._send({"type": "ping", "k": self.clock.monotonic_ns()}, [])

    def start_capture(self, mic: BrowserMicrophone) -> None:
        """Ask the page to capture into ``mic`` (one capture at a time: a previous one is replaced)."""
        if self.mic is not None and self.mic is not mic:
            self.mic.close()
        self.mic = mic
        self.applied = {}
        self._set_state("starting", "")
        self.ping()
        content = {
            "type": "capture_start",
            "rate": mic.sample_rate,
            "frame_ms": FRAME_MS,
            "frames_per_message": FRAMES_PER_MESSAGE,
            "constraints": self.constraints,
        }
        self._send(content, [])

    def stop_capture(self) -> None:
        """Ask the page to stop capturing."""
        self.mic = None
        self._send({"type": "capture_stop"}, [])
        self._set_state("idle", "")

    def _set_state(self, state: str, message: str) -> None:
        self.state, self.message = state, message
        if self.on_state is not None:
            self.on_state(state, message)

    def receive(self, content: Mapping[str, Any], buffers: Sequence[Any]) -> None:
        """Handle one message from the page (binary buffers as bytes, memoryviews or similar)."""
        now = self.clock.monotonic_ns()
        kind = content.get("type")
        self.page_seen.set()
        if kind == "pong":
            self.clock_map.observe(int(content["k"]), float(content["b"]), now)
            return
        if kind == "hello":
            self.ping()
            return
        if kind == "status":
            self._status(str(content.get("state", "error")), str(content.get("message") or ""), content)
            return
        t_ms = content.get("t_ms")
        t_ns = self._to_kernel(float(t_ms), now) if t_ms is not None else now
        if kind == "frame":
            mic = self.mic
            if mic is not None and buffers:
                sent_ms = content.get("s_ms")
                sent_ns = self._to_kernel(float(sent_ms), now) if sent_ms is not None else None
                seq, frame_ns = int(content["seq"]), round(FRAME_MS * 1e6)
                for k, pcm16 in enumerate(buffers):  # consecutive frames of the capture
                    mic.frame(seq + k, bytes(pcm16), t_ns + k * frame_ns, now, sent_ns)
                if (seq + len(buffers) - 1) // 50 != (seq - 1) // 50:
                    self.ping()  # refine the mapping once a second (50 frames) while capturing
            position = content.get("position")
            if isinstance(position, Mapping):
                self._position(position, now)
        elif kind == "position":
            self._position(content, now)
        elif kind == "playback":
            info = {k: content[k] for k in ("played_ms", "peak", "gap_ms") if k in content}
            self.speaker.playback(str(content["kind"]), str(content["item"]), t_ns, info)
        elif kind == "cleared":
            item, peak, r_ms, stop_ms = (content.get(k) for k in ("item", "peak", "r_ms", "stop_ms"))
            self.speaker.cleared(
                int(content["n"]),
                str(item) if item else None,
                float(content.get("played_ms") or 0.0),
                t_ns,
                float(peak) if peak is not None else None,
                received_t_ns=self._to_kernel(float(r_ms), now) if r_ms is not None else None,
                stop_ms=float(stop_ms) if stop_ms is not None else None,
            )

    def _position(self, content: Mapping[str, Any], now: int) -> None:
        t_ns = self._to_kernel(float(content["t_ms"]), now)
        self.speaker.position(str(content["item"]), float(content["played_ms"]), t_ns)

    def _to_kernel(self, page_ms: float, now: int) -> int:
        mapped = self.clock_map.to_kernel_ns(page_ms)
        return now if mapped is None else mapped

    def _status(self, state: str, message: str, content: Mapping[str, Any]) -> None:
        if state in ("capturing", "idle"):
            if state == "capturing":
                self.applied = dict(content.get("settings") or {})
            self._set_state(state, "")
            return
        text = STATE_MESSAGES.get(state) or f"the browser could not capture: {message or state}"
        detail = f" ({message})" if message and state in STATE_MESSAGES else ""
        self._set_state(state, text + detail)
        if state not in ("idle", "suspended") and self.mic is not None:  # a click can still resume it
            self.mic.fail(DeviceError(f"browser microphone: {text}{detail}"))
