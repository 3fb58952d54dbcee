"""The browser audio widget: the microphone and speaker of the page showing the notebook (anywidget).

For kernels with no sound card (Azure ML, JupyterHub, Codespaces, a remote or GPU box): the page
captures with ``getUserMedia`` and plays through an ``AudioWorklet``, and the kernel sees a
:class:`~vlab.audio.browser.BrowserMicrophone` and a :class:`~vlab.audio.browser.BrowserSpeaker` with
the same contract as :class:`~vlab.audio.devices.Microphone` and :class:`~vlab.audio.devices.Speaker`::

    audio = BrowserAudio()
    display(audio)                                  # the page must show it: that is where the sound is
    async with Session(audio_output=audio.speaker) as session:
        await session.stream_microphone(audio.microphone(session.settings.input_sample_rate))

The JavaScript (``browser_audio.js``, the worklet ``browser_audio_worklet.js``) and the CSS ship as
package data next to this module. The echo cancellation, noise suppression and auto gain toggles are
synced traits; each capture asks for their values and the log records what was asked and applied.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from vlab.audio._loop_event import running_loop
from vlab.audio.browser import STATE_MESSAGES, BrowserBridge, BrowserMicrophone, BrowserSpeaker
from vlab.clock import Clock, SystemClock, wait_until_ns
from vlab.protocol import PCM16_SAMPLE_RATE_HZ

_HERE = Path(__file__).parent
_TRAITS = {
    "echo_cancellation": "echoCancellation",
    "noise_suppression": "noiseSuppression",
    "auto_gain_control": "autoGainControl",
}
_LABELS = {
    "idle": "idle",
    "starting": "asking for the microphone…",
    "capturing": "capturing",
    "denied": "microphone permission denied",
    "no_device": "no microphone",
    "insecure": "not a secure page",
    "suspended": "audio paused: click here",
    "no_frontend": "no page",
    "error": "error",
}


class BrowserAudio(anywidget.AnyWidget):
    """The page's microphone and speaker, with constraint toggles, level meters and clear messages.

    Args:
        clock: The kernel clock that capture and playback times are mapped onto (the session's).
        echo_cancellation: Ask the browser for echo cancellation (lets you barge in on laptop speakers).
        noise_suppression: Ask the browser for noise suppression.
        auto_gain_control: Ask the browser for automatic gain control.
    """

    _esm = _HERE / "browser_audio.js"
    _css = _HERE / "browser_audio.css"
    _worklet = traitlets.Unicode((_HERE / "browser_audio_worklet.js").read_text(encoding="utf-8")).tag(
        sync=True
    )
    echo_cancellation = traitlets.Bool(True).tag(sync=True)
    """Ask ``getUserMedia`` for echo cancellation."""
    noise_suppression = traitlets.Bool(True).tag(sync=True)
    """Ask ``getUserMedia`` for noise suppression."""
    auto_gain_control = traitlets.Bool(True).tag(sync=True)
    """Ask ``getUserMedia`` for automatic gain control."""
    state = traitlets.Unicode("idle").tag(sync=True)
    """The page's capture state (see :attr:`vlab.audio.browser.BrowserBridge.state`)."""
    state_label = traitlets.Unicode("idle").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    """Why the page cannot capture (empty while it can)."""

    def __init__(self, *, clock: Clock | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # built outside a running loop (a script): None, and page messages are handled where they arrive
        self._loop: asyncio.AbstractEventLoop | None = running_loop()
        self._context = contextvars.copy_context()
        self.bridge = BrowserBridge(self._to_page, clock=clock or SystemClock(), constraints=self.constraints)
        self.bridge.on_state = self._on_state
        self.on_msg(self._from_page)
        self.observe(self._constraints_changed, names=list(_TRAITS))

    def __repr__(self) -> str:
        return f"BrowserAudio(state={self.state!r}, {self.constraints})"

    @property
    def constraints(self) -> dict[str, bool]:
        """The ``getUserMedia`` constraints the toggles ask for."""
        return {name: bool(getattr(self, trait)) for trait, name in _TRAITS.items()}

    @property
    def speaker(self) -> BrowserSpeaker:
        """The page's speaker (an :class:`~vlab.audio.playback.AudioOutput` for ``Session(audio_output=...)``)."""
        return self.bridge.speaker

    def microphone(self, sample_rate: int = PCM16_SAMPLE_RATE_HZ) -> BrowserMicrophone:
        """A microphone on the page at ``sample_rate`` (the session's input rate); capture starts on iteration."""
        return self.bridge.microphone(sample_rate)

    async def wait_for_page(self, timeout_s: float = 5.0) -> bool:
        """Wait until a page showing the widget has answered; False (and a message) if none did in time."""
        if self.bridge.page_seen.is_set():
            return True
        clock = self.bridge.clock
        try:
            await wait_until_ns(
                clock, self.bridge.page_seen.wait(), clock.monotonic_ns() + round(timeout_s * 1e9)
            )
        except TimeoutError:
            self._on_state("no_frontend", STATE_MESSAGES["no_frontend"])
            return False
        return True

    # --- the comm --------------------------------------------------------------------------------------

    def _to_page(self, content: dict[str, Any], buffers: Sequence[bytes]) -> None:
        self.send(content, buffers=list(buffers) or None)

    def _from_page(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        """One message from the page, handled on the loop the widget was built on.

        JupyterLab 4.4+ sends widget messages on a kernel subshell, and ipykernel 7 runs each subshell in
        its own thread: the bridge's asyncio events set there would not wake the loop a microphone reader
        waits on (a capture then stalled until something else woke it). The message is handed to the
        widget's loop, in the context the widget was built in, so what the kernel sends in answer goes
        out with the cell's parent and the page's next messages come to the main shell, not a thread.
        """
        if not (isinstance(content, dict) and "type" in content):
            return
        loop = self._loop
        if loop is None or loop.is_closed() or running_loop() is loop:
            self.bridge.receive(content, buffers)
        else:  # the comm's buffers belong to the message: copy them before it is released
            copied = [bytes(b) for b in buffers]
            loop.call_soon_threadsafe(self.bridge.receive, content, copied, context=self._context)

    def _on_state(self, state: str, message: str) -> None:
        with self.hold_sync():  # the page sees the three together
            self.state_label = _LABELS.get(state, state)
            self.state, self.message = state, message

    def _constraints_changed(self, _change: dict[str, Any]) -> None:
        self.bridge.constraints = self.constraints


def kernel_has_device(kind: str) -> bool:
    """Whether the kernel's machine has a sound device of ``kind`` (``"input"``/``"output"``)."""
    from vlab.audio.devices import list_devices
    from vlab.errors import DeviceError

    try:
        devices = list_devices()
    except DeviceError:
        return False
    return any(d.max_input_channels if kind == "input" else d.max_output_channels for d in devices)


__all__ = ["BrowserAudio", "kernel_has_device"]
