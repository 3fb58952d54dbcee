"""The session panel's "Last turn" line: the last reply's figures, timed from where the user stopped.

A labelled WAV prompt (one the ``manifest.json`` beside it lists, as the bundled ones) is timed from
its labels, as ``vlab replay`` and sweeps time it, while every prompt of the session has them. Else a
turn the server may hold for more speech (end-of-utterance detection, a semantic VAD), which ends up to
its ``timeout_ms`` after the silence timer (so the server's ``audio_end_ms`` minus the timer leaves the
hold out), is timed from where the speech sent ends in the audio: a WAV prompt's ends are found before
it is sent, a microphone's in its last minute of audio once the reply is done. Both searches are
``vlab prompts label``'s (Silero) and run off the event loop.
"""

from __future__ import annotations

import asyncio
import html
import math
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import pandas as pd

from vlab.protocol_limits import eou_timeout_ms
from vlab.settings import SessionSettings
from vlab.widgets._tasks import start_task

MIC_AUDIO_KEPT_S = 60.0
"""How much of a microphone's latest audio the line keeps: a reply ends within this of its turn."""
SPEECH_END_LEAD_MS = 2000.0
"""Audio before a held turn's window that the search for its end of speech takes (to see the speech)."""
SPEECH_END_TRAIL_MS = 1000.0
"""Audio after a held turn's estimated end of speech that the search takes (to see the silence after it)."""

_STAGE_LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "vad": (
        ("endpointing_ms", "endpointing {:.0f} ms"),
        ("turn_commit_ms", "turn commit {:.0f} ms"),
        ("ttfb_audio_ms", "first audio {:.0f} ms"),
    ),
    "commit": (("turn_commit_ms", "turn commit {:.0f} ms"), ("ttfb_audio_ms", "first audio {:.0f} ms")),
    "client": (("turn_commit_ms", "response.created {:.0f} ms"), ("ttfb_audio_ms", "first audio {:.0f} ms")),
}
"""The stages the line shows after the total, by ``trigger`` (no endpointing without speech)."""


class RecentAudio:
    """The latest :data:`MIC_AUDIO_KEPT_S` of PCM16 audio a microphone sent, placed on the input clock."""

    def __init__(self, rate: int, *, start_ms: float) -> None:
        self.rate = rate
        self.start_ms = start_ms  # where the first byte kept was sent
        self._pcm = bytearray()
        self._max_bytes = 2 * round(MIC_AUDIO_KEPT_S * rate)

    def add(self, pcm: bytes) -> None:
        """Keep ``pcm``, sent right after the audio before it."""
        self._pcm += pcm
        excess = len(self._pcm) - self._max_bytes
        if excess > 0:
            excess += excess % 2
            del self._pcm[:excess]
            self.start_ms += excess / 2 / self.rate * 1000.0

    def between(self, start_ms: float, end_ms: float) -> tuple[float, bytes]:
        """The audio kept from ``start_ms`` to ``end_ms`` (clipped to what is kept), and where it starts."""
        first = max(0, round((start_ms - self.start_ms) * self.rate / 1000.0))
        last = max(first, round((end_ms - self.start_ms) * self.rate / 1000.0))
        return self.start_ms + first * 1000.0 / self.rate, bytes(self._pcm[2 * first : 2 * last])


class LatencyLine:
    """The "Last turn" line of a session: drawn again by :meth:`update` at each ``response.done``.

    Args:
        frame: The session's event frame so far (None before a session has logged anything).
        output: Where a failed search for an end of speech is shown.
    """

    def __init__(self, frame: Callable[[], pd.DataFrame | None], output: widgets.Output) -> None:
        self.widget = widgets.HTML("")
        self._frame = frame
        self._output = output
        self.speech_ends: list[float] = []
        """Where the speech sent ends on the input clock (ms), as far as it has been looked for."""
        self.end_of_turn_ms: list[float] | None = []
        """The labelled ends of speech of the prompts sent, on the input clock (None: a prompt had none)."""
        self._mic_audio: RecentAudio | None = None
        self._searched: set[float] = set()  # the estimated ends of speech looked for in it already
        self.searching: asyncio.Task[Any] | None = None
        """The latest search of the microphone's audio for an end of speech, if there was one."""

    def reset(self) -> None:
        """Forget the last session's speech, labels and audio (a new session starts)."""
        self.speech_ends.clear()
        self.end_of_turn_ms = []
        self._searched.clear()
        self._mic_audio = None

    async def note_prompt(
        self,
        pcm: bytes,
        settings: SessionSettings,
        *,
        start_ms: float,
        end_of_turn_ms: Sequence[float] | None = None,
    ) -> None:
        """Take a prompt about to be sent at ``start_ms``: its labelled ``end_of_turn_ms``, if it has them.

        Where its speech ends is found too, if a turn may be held
        (:func:`~vlab.corpus.labeller.sent_speech_ends_ms`, off the event loop): the line falls back on
        those ends when a prompt of the session has no labels.
        """
        from vlab.corpus.labeller import sent_speech_ends_ms

        if self.end_of_turn_ms is not None and end_of_turn_ms:
            self.end_of_turn_ms.extend(start_ms + end for end in end_of_turn_ms)
        else:  # a turn without labels would take a later prompt's: none is timed from labels
            self.end_of_turn_ms = None
        ends = await asyncio.to_thread(sent_speech_ends_ms, pcm, settings)
        self.speech_ends.extend(start_ms + end for end in ends or ())

    def keep_microphone(self, settings: SessionSettings, *, start_ms: float) -> RecentAudio | None:
        """Where to keep a microphone's audio, sent from ``start_ms`` on (None: no turn may be held)."""
        held = settings.turn_hold_ms is not None
        self._mic_audio = RecentAudio(settings.input_sample_rate, start_ms=start_ms) if held else None
        return self._mic_audio

    def update(self) -> None:
        """Draw the line for the last reply of the session so far."""
        from vlab.metrics import FALSE_CUTOFF, TURN_STARTS, turn_latency
        from vlab.metrics.events import session_vad_settings

        frame = self._frame()
        if frame is None:
            return
        turns = turn_latency(
            frame, end_of_turn_ms=self.end_of_turn_ms or None, speech_ends_ms=self.speech_ends or None
        )
        if turns.empty:
            return
        last = turns.iloc[-1]
        trigger = str(last["trigger"])
        head = f"<b>Last turn</b> ({html.escape(str(last['status']))}): "
        answered = int(last["answers_turn"])
        if answered >= 0:  # the answer to a turn's tool calls: the turn's whole wait is the figure
            turn = turns.iloc[answered]
            start = TURN_STARTS.get(str(turn["trigger"]), "voice")
            wait = float(turn["voice_to_answer_ms"])
            calls = int(turn["calls_to_answer"])
            figure = f"<b>{wait:.0f} ms</b>" if math.isfinite(wait) else "not measured"
            self.widget.value = (
                f"{head}{start}-to-answer {figure} through {calls} tool call{'s' if calls != 1 else ''}"
            )
            return
        if last["false_cutoff"]:
            self.widget.value = head + FALSE_CUTOFF
            return
        if trigger not in TURN_STARTS:
            trigger = "vad"
        parts = []
        labels = (("voice_to_voice_ms", f"{TURN_STARTS[trigger]}-to-voice <b>{{:.0f}} ms</b>"),)
        for name, label in labels + _STAGE_LABELS[trigger]:
            if math.isfinite(float(last[name])):
                parts.append(label.format(float(last[name])))
        hold_ms = eou_timeout_ms(session_vad_settings(frame))
        if last["a_eos_source"] == "estimated" and hold_ms is not None:
            if self._search_microphone(float(last["a_eos_ms"]), hold_ms):
                parts.append("<i>finding where the speech ended in the microphone's audio…</i>")
            else:
                parts.append(
                    f"<i>from an estimate that leaves out any wait for more speech (up to {hold_ms:.0f} ms); "
                    "the log explorer times it from the recorded audio</i>"
                )
        self.widget.value = head + " · ".join(parts)

    def _search_microphone(self, estimate_ms: float, hold_ms: float) -> bool:
        """Look in the microphone's audio for where a held turn's speech ended, then draw the line again.

        For a turn whose end of speech was estimated (``estimate_ms`` on the input clock) under a turn
        detection that holds a turn up to ``hold_ms``, once: False when there is no such audio or it was
        looked at.
        """
        recent = self._mic_audio
        if recent is None or not math.isfinite(estimate_ms) or estimate_ms in self._searched:
            return False
        self._searched.add(estimate_ms)
        start_ms, pcm = recent.between(
            estimate_ms - hold_ms - SPEECH_END_LEAD_MS, estimate_ms + SPEECH_END_TRAIL_MS
        )
        if not pcm:
            return False

        async def search() -> None:
            from vlab.audio.pcm import pcm16_to_float
            from vlab.corpus.labeller import speech_ends_ms

            ends = await asyncio.to_thread(speech_ends_ms, pcm16_to_float(pcm), recent.rate)
            self.speech_ends = sorted({*self.speech_ends, *(start_ms + end for end in ends)})
            self.update()

        self.searching = start_task(search, self._output, what="Timing the turn from the microphone's audio")
        return True
