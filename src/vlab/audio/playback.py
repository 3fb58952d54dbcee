"""The audio-output contract the session's barge-in relies on, and a headless implementation.

A speaker (``vlab.audio.devices``) and :class:`SimulatedPlayback` both implement :class:`AudioOutput`:
``push`` queues assistant audio for an item, ``clear`` stops at once and returns the milliseconds of
the current item actually heard, so the session can truncate the item where the listener stopped.
An output that only keeps time may also offer ``push_size(item_id, n_bytes, sample_rate)``: the
session then hands it byte counts instead of decoding every audio delta.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vlab.clock import Clock, SystemClock


@runtime_checkable
class AudioOutput(Protocol):
    """Where assistant audio goes."""

    def push(self, item_id: str, pcm16: bytes, sample_rate: int) -> None:
        """Queue PCM16 audio of an assistant item for playback."""
        ...

    def clear(self) -> float:
        """Stop playback now and drop what is queued; returns ms of the current item heard."""
        ...

    @property
    def current_item_id(self) -> str | None:
        """The item being played (or last played), if any."""
        ...


class SimulatedPlayback:
    """Plays nothing, but keeps time like a real-time speaker that starts on the first push.

    Used headless (no sound card) so barge-in truncation still cuts at the point a listener would
    have reached. Played time of an item = wall time since its first audio arrived, capped at the
    audio received for it.

    Args:
        clock: Time source (inject a :class:`~vlab.clock.ManualClock` in tests).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._item_id: str | None = None
        self._start_ns = 0
        self._queued_ms = 0.0
        self._stopped = False

    @property
    def current_item_id(self) -> str | None:
        """The item being played, if any."""
        return self._item_id

    def push(self, item_id: str, pcm16: bytes, sample_rate: int) -> None:
        """Account for more audio of ``item_id`` (a new item restarts the playhead)."""
        self.push_size(item_id, len(pcm16), sample_rate)

    def push_size(self, item_id: str, n_bytes: int, sample_rate: int) -> None:
        """Like :meth:`push`, given only the audio's size in bytes (the session then skips decoding it)."""
        if item_id != self._item_id:
            self._item_id = item_id
            self._start_ns = self._clock.monotonic_ns()
            self._queued_ms = 0.0
            self._stopped = False
        if not self._stopped:
            self._queued_ms += n_bytes / (2 * sample_rate) * 1000.0

    def played_ms(self) -> float:
        """Milliseconds of the current item heard so far."""
        if self._item_id is None:
            return 0.0
        elapsed_ms = (self._clock.monotonic_ns() - self._start_ns) / 1e6
        return min(elapsed_ms, self._queued_ms)

    def clear(self) -> float:
        """Stop the current item; returns the ms heard."""
        heard = self.played_ms()
        self._queued_ms = heard
        self._stopped = True
        return heard
