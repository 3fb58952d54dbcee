"""Where the assistant's audio goes: the audio output (a speaker, or simulated playback) and the recording.

:class:`AssistantAudio` takes each ``response.audio.delta`` as JSON. An output that only keeps time
(:class:`~vlab.audio.playback.SimulatedPlayback`) gets byte counts (of PCM16: G.711 sends one byte a
sample, PCM16 two), so nothing is decoded; a speaker or a recording gets the decoded audio (a speaker as
PCM16, G.711 expanded). A device output's playback notices are handed to a callback.
"""

from __future__ import annotations

import base64
import binascii
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any

from vlab import protocol
from vlab.audio import g711
from vlab.audio.playback import AudioOutput
from vlab.log.records import audio_size
from vlab.session.checks import base64_alphabet_ok
from vlab.session.sinks import AudioRecording
from vlab.settings import SessionSettings

_strict_b64decode: Callable[[str], bytes] = (
    functools.partial(binascii.a2b_base64, strict_mode=True)  # Python ≥ 3.11: one pass, no regex
    if sys.version_info >= (3, 11)
    else functools.partial(base64.b64decode, validate=True)
)

PlaybackNotice = Callable[[str, str, int, Mapping[str, Any]], None]
"""``(kind, item_id, t_ns, info)``: a device output reports that audio started or finished playing."""


class AssistantAudio:
    """Routes the assistant's audio to the output and, with a run folder, to the recording.

    Args:
        output: Where assistant audio is played.
    """

    def __init__(self, output: AudioOutput) -> None:
        self.output = output
        self.recording: AudioRecording | None = None
        """The run folder's recording, if audio is recorded."""
        self._rates_of: SessionSettings | None = None
        self._rates = (0, 0)

    def rates(self, settings: SessionSettings) -> tuple[int, int]:
        """Byte rate and sample rate of the assistant audio under ``settings`` (cached per settings)."""
        if self._rates_of is not settings:
            self._rates_of = settings
            self._rates = (settings.output_bytes_per_s, settings.output_sample_rate)
        return self._rates

    def delta(self, payload: Mapping[str, Any], t_ns: int, settings: SessionSettings) -> bool:
        """Play (and record) one ``response.audio.delta`` received at ``t_ns``.

        Returns:
            False when its ``delta`` is not base64 (nothing is played or recorded): the one pass over the
            text, the decoding or (for an output that only counts bytes) the alphabet check, tells. Its
            shape (length, padding) was checked with the event's fields (:func:`~vlab.session.checks.event_problems`).
        """
        item_id = payload.get("item_id")
        rate, fmt = self.rates(settings)[1], settings.output_audio_format
        recording = self.recording
        push_size = getattr(self.output, "push_size", None)
        b64 = payload.get("delta") or ""
        if push_size is not None and recording is None:
            if not base64_alphabet_ok(b64):
                return False
            push_size(item_id, 2 // protocol.bytes_per_sample(fmt) * (audio_size(b64) or 0), rate)  # as PCM16
            return True
        try:
            audio = _strict_b64decode(b64)
        except (binascii.Error, ValueError):
            return False
        self.output.push(str(item_id), g711.to_pcm16(audio, fmt), rate)
        if recording is not None:
            recording.output_audio(str(item_id), audio, t_ns)
        return True

    def start(self, on_notice: PlaybackNotice) -> None:
        """Start a device output on the running loop; its playback notices go to ``on_notice``."""
        if hasattr(self.output, "on_event"):
            self.output.on_event = on_notice
        start = getattr(self.output, "start", None)
        if callable(start):
            start()

    def close(self) -> None:
        """Close the output, if it can be closed."""
        close = getattr(self.output, "close", None)
        if callable(close):
            close()
