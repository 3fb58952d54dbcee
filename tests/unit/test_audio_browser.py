"""The kernel's side of the browser microphone and speaker, driven by a scripted page (no browser)."""

from __future__ import annotations

import asyncio
import contextvars
import selectors
import threading

import pytest

from vlab.audio.browser import FRAMES_PER_MESSAGE, LEAD_MS, BrowserBridge, ClockMap
from vlab.clock import ManualClock, VirtualClock
from vlab.errors import DeviceError

pytestmark = pytest.mark.filterwarnings("error")


class Page:
    """Records what the kernel sends to the page."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict, list[bytes]]] = []

    def __call__(self, content, buffers) -> None:
        self.sent.append((content, list(buffers)))

    def of(self, kind: str) -> list[tuple[dict, list[bytes]]]:
        return [(c, b) for c, b in self.sent if c["type"] == kind]


def _bridge(clock=None, **kw):
    page = Page()
    clock = clock or ManualClock(start_ns=10_000_000_000)
    return BrowserBridge(page, clock=clock, **kw), page, clock


def _sync(bridge: BrowserBridge, clock: ManualClock, page_ms: float, rtt_ms: float) -> None:
    """A ping answered by a page whose clock reads ``page_ms`` halfway through a ``rtt_ms`` round trip."""
    sent = clock.monotonic_ns()
    clock.advance_ns(round(rtt_ms * 1e6))
    bridge.receive({"type": "pong", "k": sent, "b": page_ms}, [])


def test_clock_map_uses_the_fastest_round_trip():
    m = ClockMap()
    assert m.to_kernel_ns(5.0) is None and not m.synced
    m.observe(sent_ns=1_000_000_000, page_ms=100.0, received_ns=1_040_000_000)  # 40 ms, midpoint 1.02 s
    m.observe(sent_ns=2_000_000_000, page_ms=1_000.0, received_ns=2_002_000_000)  # 2 ms, midpoint 2.001 s
    assert m.uncertainty_ns == 1_000_000
    assert m.to_kernel_ns(1_000.0) == 2_001_000_000
    assert m.to_kernel_ns(1_500.0) == 2_501_000_000


async def test_microphone_frames_arrive_as_binary_pcm_with_capture_times_on_the_kernel_clock():
    bridge, page, clock = _bridge(constraints={"echoCancellation": False})
    mic = bridge.microphone(16000)
    mic.start()
    ((start, buffers),) = page.of("capture_start")
    assert start == {
        "type": "capture_start",
        "rate": 16000,
        "frame_ms": 20.0,
        "frames_per_message": FRAMES_PER_MESSAGE,
        "constraints": {"echoCancellation": False, "noiseSuppression": True, "autoGainControl": True},
    }
    assert buffers == []
    _sync(bridge, clock, page_ms=500.0, rtt_ms=2.0)  # page 500 ms = kernel 10.001 s
    bridge.receive({"type": "status", "state": "capturing", "settings": {"echoCancellation": False}}, [])
    frame = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms at 16 kHz
    bridge.receive({"type": "frame", "seq": 0, "t_ms": 480.0}, [memoryview(frame)])
    bridge.receive({"type": "frame", "seq": 3, "t_ms": 540.0}, [frame])  # frames 1 and 2 were lost
    # several consecutive frames in one message: numbered and stamped 20 ms apart from the first
    other = bytes(640)
    bridge.receive({"type": "frame", "seq": 4, "t_ms": 560.0}, [memoryview(other), frame, other])
    bridge.receive({"type": "frame", "seq": 9, "t_ms": 660.0}, [frame, frame])  # 7 and 8 were lost
    chunks = mic.chunks()
    got = [await anext(chunks) for _ in range(7)]
    assert [c.pcm16 for c in got] == [frame, frame, other, frame, other, frame, frame]
    kernel_ms = [(c.t_ns - 10_001_000_000) / 1e6 for c in got]  # page 500 ms = kernel 10.001 s
    assert kernel_ms == [-20.0, 40.0, 60.0, 80.0, 100.0, 160.0, 180.0]
    assert mic.overflows == 4
    # a ping refines the clock mapping once a second of frames: at the capture's start, frame 0, frame 50
    assert len(page.of("ping")) == 2
    bridge.receive({"type": "frame", "seq": 48, "t_ms": 1440.0}, [frame] * 5)  # holds frame 50
    assert len(page.of("ping")) == 3
    assert [await anext(chunks) for _ in range(5)][-1].t_ns == 10_001_000_000 + 1_020_000_000
    assert mic.overflows == 4 + 37  # frames 11 to 47
    assert mic.describe() == {
        "side": "browser",
        "sample_rate": 16000,
        "constraints": {"echoCancellation": False, "noiseSuppression": True, "autoGainControl": True},
        "applied": {"echoCancellation": False},
    }
    mic.close()
    assert page.of("capture_stop")
    bridge.receive({"type": "status", "state": "idle"}, [])  # the page confirms: no message to show
    assert (bridge.state, bridge.message) == ("idle", "")
    with pytest.raises(StopAsyncIteration):
        await anext(chunks)


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ("denied", "denied microphone access; allow the microphone for this page"),
        ("no_device", "found no microphone; connect one"),
        ("insecure", "not a secure context"),
        ("error", "could not capture: NotReadableError: busy"),
    ],
)
async def test_a_page_that_cannot_capture_ends_the_microphone_with_a_clear_error(state, says):
    bridge, _, _ = _bridge()
    states: list[tuple[str, str]] = []
    bridge.on_state = lambda s, m: states.append((s, m))
    mic = bridge.microphone()
    message = "NotReadableError: busy" if state == "error" else ""
    bridge.receive({"type": "status", "state": state, "message": message}, [])  # before start: ignored by mic
    mic.start()
    bridge.receive({"type": "status", "state": state, "message": message}, [])
    with pytest.raises(DeviceError, match="browser microphone: .*" + says.split(";")[0]):
        async for _ in mic:
            pass
    assert states[-1][0] == state and says in states[-1][1]


def _play(bridge: BrowserBridge, item: str, ms: float, rate: int = 24000) -> None:
    bridge.speaker.push(item, bytes(round(2 * rate * ms / 1000)), rate)


def test_speaker_sends_audio_as_binary_buffers_and_reports_playback_at_the_page_position():
    bridge, page, clock = _bridge()
    notices: list[tuple] = []
    bridge.speaker.on_event = lambda *n: notices.append(n)
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)  # page 0 ms = kernel 10 s
    _play(bridge, "item_a", 100.0)
    ((play, buffers),) = page.of("play")
    assert play == {"type": "play", "item": "item_a", "rate": 24000} and buffers == [bytes(4800)]
    assert bridge.speaker.current_item_id == "item_a"
    bridge.receive({"type": "playback", "kind": "started", "item": "item_a", "t_ms": 50.0}, [])
    bridge.receive(
        {
            "type": "playback",
            "kind": "finished",
            "item": "item_a",
            "t_ms": 150.0,
            "played_ms": 100.0,
            "peak": 0.5,
        },
        [],
    )
    assert notices == [
        ("playback_started", "item_a", 10_050_000_000, {}),
        ("playback_finished", "item_a", 10_150_000_000, {"played_ms": 100.0, "peak": 0.5}),
    ]


def test_clear_estimates_the_ms_heard_from_the_last_position_report():
    bridge, page, clock = _bridge()
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)
    _play(bridge, "item_a", 2000.0)
    assert bridge.speaker.clear() == 0.0  # nothing started yet
    _play(bridge, "item_b", 2000.0)
    bridge.receive({"type": "playback", "kind": "started", "item": "item_b", "t_ms": 0.0}, [])
    bridge.receive({"type": "position", "item": "item_b", "played_ms": 300.0, "t_ms": 300.0}, [])
    clock.advance_ns(420_000_000)  # the kernel is 120 ms past the report (stamped 300 ms)
    assert bridge.speaker.clear() == pytest.approx(420.0)
    assert [c["n"] for c, _ in page.of("clear")] == [1, 2]
    _play(bridge, "item_b", 100.0)  # late audio of the cleared item is not sent
    assert len(page.of("play")) == 2


async def test_confirm_clear_returns_what_the_page_played_and_logs_the_silence():
    bridge, _, clock = _bridge()
    notices: list[tuple] = []
    bridge.speaker.on_event = lambda *n: notices.append(n)
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)
    _play(bridge, "item_a", 2000.0)
    bridge.receive({"type": "playback", "kind": "started", "item": "item_a", "t_ms": 0.0}, [])
    clock.advance_ns(500_000_000)
    called_ns = clock.monotonic_ns()
    estimate = bridge.speaker.clear()
    waiting = asyncio.ensure_future(bridge.speaker.confirm_clear())
    await asyncio.sleep(0)  # wall-clock ok: one loop turn (the clock is virtual), so confirm_clear is waiting
    cleared_msg = {
        "type": "cleared",
        "n": 1,
        "item": "item_a",
        "played_ms": 530.0,
        "t_ms": 533.0,
        "peak": 0.4,
    }
    bridge.receive({**cleared_msg, "r_ms": 512.0, "stop_ms": 4.5}, [])  # reached the page at 512 ms
    assert await waiting == ("item_a", 530.0)
    (cleared,) = notices[1:]
    assert cleared[:3] == ("playback_cleared", "item_a", called_ns)
    assert cleared[3]["heard_ms"] == 530.0 and cleared[3]["estimate_ms"] == estimate == 500.0
    assert cleared[3]["silent_from_t_ns"] == 10_533_000_000 and cleared[3]["peak"] == 0.4
    # the comm's transit and the page's own part, apart: the page's clock on the kernel's
    assert cleared[3]["page_received_t_ns"] == 10_512_000_000 and cleared[3]["page_stop_ms"] == 4.5
    # a playback notice still in flight for the cleared item is dropped
    bridge.receive({"type": "playback", "kind": "finished", "item": "item_a", "t_ms": 600.0}, [])
    assert len(notices) == 2


async def test_confirm_clear_falls_back_to_the_estimate_when_the_page_does_not_answer():
    clock = VirtualClock(start_ns=10_000_000_000)
    bridge, _, _ = _bridge(clock)
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)
    _play(bridge, "item_a", 2000.0)
    bridge.receive({"type": "playback", "kind": "started", "item": "item_a", "t_ms": 0.0}, [])
    clock.advance_ns(250_000_000)
    bridge.speaker.clear()
    waiting = asyncio.ensure_future(bridge.speaker.confirm_clear())
    await clock.wait_for_sleepers()
    clock.advance_s(bridge.speaker.clear_timeout_s)
    assert await waiting == ("item_a", 250.0)


async def test_confirm_clear_gives_the_estimate_at_once_when_no_page_shows_the_widget():
    clock = VirtualClock(start_ns=10_000_000_000)
    bridge, page, _ = _bridge(clock)  # a headless run: no page ever answers
    _play(bridge, "item_a", 2000.0)
    estimate = bridge.speaker.clear()
    waiting = asyncio.ensure_future(bridge.speaker.confirm_clear())
    await asyncio.sleep(0)  # wall-clock ok: one loop turn; the virtual clock never moves
    assert waiting.done() and waiting.result() == ("item_a", estimate)
    assert [c["n"] for c, _ in page.of("clear")] == [1]  # the clear went out all the same


async def test_no_page_is_reported_after_the_timeout():
    clock = VirtualClock()
    from vlab.widgets.browser_audio import BrowserAudio

    widget = BrowserAudio(clock=clock)
    waiting = asyncio.ensure_future(widget.wait_for_page(timeout_s=2.0))
    await clock.wait_for_sleepers()
    clock.advance_s(2.0)
    assert await waiting is False
    assert widget.state == "no_frontend" and "no browser page is showing the audio widget" in widget.message
    widget._from_page(widget, {"type": "hello", "b": 1.0}, [])
    assert await widget.wait_for_page() is True
    widget.close()


async def test_audio_paused_by_the_browser_asks_for_a_click_and_keeps_the_microphone_open():
    bridge, _, _ = _bridge()
    mic = bridge.microphone()
    mic.start()
    bridge.receive({"type": "status", "state": "suspended", "message": "suspended"}, [])
    assert bridge.state == "suspended" and "click the audio widget once" in bridge.message
    bridge.receive({"type": "status", "state": "capturing", "settings": {}}, [])  # the user clicked
    bridge.receive({"type": "frame", "seq": 0, "t_ms": 0.0}, [bytes(960)])
    assert (await anext(mic.chunks())).pcm16 == bytes(960)
    assert bridge.message == ""


def test_a_started_notice_read_after_the_clear_is_still_logged():
    """A busy kernel can read the page's "started" after it asked for the clear: the reply did begin."""
    bridge, _, clock = _bridge()
    notices: list[tuple] = []
    bridge.speaker.on_event = lambda *n: notices.append(n)
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)
    _play(bridge, "item_a", 2000.0)
    bridge.speaker.clear()
    for t_ms in (50.0, 60.0):  # the page's notice, read late (and a repeat: logged once)
        bridge.receive({"type": "playback", "kind": "started", "item": "item_a", "t_ms": t_ms}, [])
    bridge.receive(
        {"type": "playback", "kind": "finished", "item": "item_a", "t_ms": 90.0, "played_ms": 40.0}, []
    )  # nothing new about audio already cleared
    assert notices == [("playback_started", "item_a", 10_050_000_000, {})]


def test_audio_goes_to_the_page_one_second_ahead_of_its_playback_and_a_clear_drops_the_rest():
    """A reply arrives faster than real time: the comm holds at most LEAD_MS of it, so a clear is not
    queued behind tens of seconds of audio."""
    bridge, page, clock = _bridge()
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)
    for _ in range(50):  # 5 s of audio at once, in 100 ms deltas
        _play(bridge, "item_a", 100.0)
    assert len(page.of("play")) == LEAD_MS / 100
    bridge.receive({"type": "playback", "kind": "started", "item": "item_a", "t_ms": 0.0}, [])
    bridge.receive({"type": "position", "item": "item_a", "played_ms": 300.0, "t_ms": 300.0}, [])
    assert len(page.of("play")) == (LEAD_MS + 300.0) / 100  # 300 ms played: 300 ms more sent
    bridge.speaker.clear()
    bridge.receive({"type": "position", "item": "item_a", "played_ms": 600.0, "t_ms": 600.0}, [])
    assert len(page.of("play")) == (LEAD_MS + 300.0) / 100  # the unsent rest was dropped
    assert page.sent[-1][0]["type"] == "clear"


async def test_a_page_message_arriving_on_another_thread_is_handled_on_the_widget_loop():
    """JupyterLab 4.4+ sends widget messages on a kernel subshell, which ipykernel 7 runs in its own thread.

    Handled there, the microphone's asyncio event did not wake the reader's loop: a long capture stalled
    (frames kept arriving, none was read). The widget hands each message to its loop, in its context.
    """
    from vlab.widgets.browser_audio import BrowserAudio

    cell = contextvars.ContextVar("cell", default="another thread")
    cell.set("the cell that built the widget")
    widget = BrowserAudio(clock=ManualClock(start_ns=10_000_000_000))
    mic = widget.microphone(24000)
    mic.start()
    handled: list[tuple[int, str]] = []
    receive = widget.bridge.receive
    widget.bridge.receive = lambda content, buffers: (  # type: ignore[method-assign]
        handled.append((threading.get_ident(), cell.get())),
        receive(content, buffers),
    )
    reading = asyncio.ensure_future(anext(mic.chunks()))
    frame = bytearray(960)
    frame[:2] = b"\x01\x00"
    subshell = threading.Thread(
        target=widget._from_page, args=(widget, {"type": "frame", "seq": 0, "t_ms": 0.0}, [memoryview(frame)])
    )
    subshell.start()
    subshell.join()
    frame[:2] = b"\x00\x00"  # the comm's buffer is gone once the handler returns: the kernel kept a copy
    chunk = await asyncio.wait_for(reading, 5)  # a guard: the frame is already on the loop's queue
    assert chunk.pcm16 == b"\x01\x00" + bytes(958)
    assert handled == [(threading.get_ident(), "the cell that built the widget")]
    widget.close()


def test_a_frame_handled_on_another_thread_wakes_the_reader_loop_asleep():
    """A session panel's task can read the microphone on a kernel subshell's loop while the page's messages
    are handled on another thread. A plain asyncio.Event set from there flags the reader but leaves its
    loop asleep in select (until something else wakes it); the frame must wake it."""
    asleep, guard_fired = threading.Event(), threading.Event()

    class Selector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
        def select(self, timeout=None):
            if timeout is None:  # nothing scheduled: the loop sleeps until a file descriptor wakes it
                asleep.set()
            return super().select(timeout)

    bridge, _, _ = _bridge()
    mic = bridge.microphone()
    mic.start()
    loop = asyncio.SelectorEventLoop(Selector())

    def page() -> None:  # the page's thread: the frame comes once the reader's loop sleeps
        if asleep.wait(5.0):
            bridge.receive({"type": "frame", "seq": 0, "t_ms": 0.0}, [bytes(960)])

    def wake_anyway() -> None:
        guard_fired.set()
        loop.call_soon_threadsafe(lambda: None)

    async def read():
        chunks = mic.chunks()
        try:
            chunk = await anext(chunks)
        finally:
            await chunks.aclose()  # on this loop, before it closes (3.13 warns of one never closed)
        return chunk, guard_fired.is_set()

    handler = threading.Thread(target=page)
    # wall-clock ok: a guard that wakes a loop nothing else would wake; the frame wakes it at once
    guard = threading.Timer(5.0, wake_anyway)
    handler.start()
    guard.start()
    try:
        chunk, woken_by_guard = loop.run_until_complete(read())
    finally:
        guard.cancel()
        handler.join()
        loop.close()
    assert chunk.pcm16 == bytes(960)
    assert not woken_by_guard  # the frame's own wake-up, not the guard's


def test_a_playback_position_riding_on_a_frame_message_is_taken():
    """While capturing, the page sends its playback position with the next frames (one comm message fewer)."""
    bridge, page, clock = _bridge()
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)
    mic = bridge.microphone()
    mic.start()
    for _ in range(15):  # 1.5 s of a reply: the page is sent LEAD_MS of it
        _play(bridge, "item_a", 100.0)
    bridge.receive({"type": "playback", "kind": "started", "item": "item_a", "t_ms": 0.0}, [])
    position = {"item": "item_a", "played_ms": 300.0, "t_ms": 300.0}
    bridge.receive({"type": "frame", "seq": 0, "t_ms": 0.0, "position": position}, [bytes(960)] * 5)
    assert len(page.of("play")) == (LEAD_MS + 300.0) / 100  # 300 ms played: 300 ms more sent
    clock.advance_ns(round(350 * 1e6))
    assert bridge.speaker.heard_ms() == pytest.approx(350.0)  # the report's 300 ms plus the 50 ms since


def test_the_microphone_measures_each_frame_s_delivery_and_pings_once_every_fifty_frames():
    bridge, page, clock = _bridge()
    bridge.receive({"type": "frame", "seq": 0, "t_ms": 0.0}, [bytes(640)])  # no microphone yet: ignored
    mic = bridge.microphone(16000)
    mic.start()
    _sync(bridge, clock, page_ms=500.0, rtt_ms=2.0)  # page 500 ms = kernel 10.001 s; now 10.002 s
    pings = len(page.of("ping"))
    frame = bytes(640)  # 20 ms at 16 kHz
    bridge.receive({"type": "frame", "seq": 0, "t_ms": 480.0, "s_ms": 500.5}, [frame])
    assert list(mic.delivery_ns) == [1_000_000]  # its last sample at 10.001 s, here at 10.002 s
    assert list(mic.in_page_ns) == [500_000]  # the page sent it 0.5 ms after its last sample
    assert len(page.of("ping")) == pings + 1  # the first frame
    for seq in range(1, 50, 7):  # frames 1 to 49: no new second of capture
        bridge.receive({"type": "frame", "seq": seq, "t_ms": 480.0 + 20 * seq}, [frame] * min(7, 50 - seq))
    assert len(page.of("ping")) == pings + 1
    bridge.receive({"type": "frame", "seq": 50, "t_ms": 1480.0}, [frame])
    assert len(page.of("ping")) == pings + 2


def test_the_current_item_is_the_one_playing_else_the_last_played_and_late_positions_are_ignored():
    bridge, page, clock = _bridge()
    _sync(bridge, clock, page_ms=0.0, rtt_ms=0.0)
    for item in ("item_a", "item_b", "item_c"):
        _play(bridge, item, 100.0)
    for item in ("item_a", "item_b", "item_c"):
        finished = {"type": "playback", "kind": "finished", "item": item, "t_ms": 10.0, "played_ms": 100.0}
        bridge.receive(finished, [])
    assert bridge.speaker.current_item_id == "item_c"
    bridge.receive({"type": "position", "item": "item_c", "played_ms": 20.0, "t_ms": 11.0}, [])
    assert bridge.speaker.clear() == pytest.approx(100.0)  # the finished item's played ms stand
