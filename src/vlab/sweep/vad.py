"""VAD-only sweeps (``[run] mode = "vad"``): the emulator's server VAD over every prompt, without sessions.

A session per cell costs about 55 ms (connection, events, logs, analysis) however little audio it plays,
and a grid of turn-detection settings pays it again for the same audio in every setting. In this mode
each prompt's audio goes once through the emulator's model path (input processing, resampling, Silero,
the silence floor: :func:`vlab.audio.silero_serve.probabilities_here`, with the sweep's VAD cache), and
each setting then only steps the turn machine over those probabilities.

The detections are those the emulator reports in a session of the same sweep, frame for frame: the same
audio (the prompt, then the trailing silence :func:`vlab.feed.trailing_silence_ms` of the setting), the
same VAD settings (:func:`vlab.emulator.session_config.vad_params`), the same rounding
(:func:`vlab.audio.vad.reported_audio_ms`), read into rows as from a session's log (:func:`vlab.metrics.detections_from_boundaries`).
A test holds the two modes to equal ``vad`` tables.

What it cannot give is anything a reply decides: the ``turns`` and ``session`` tables are empty, and the
dead air in ``scores`` is the end-of-turn wait on the audio clock (no response latency). Settings whose
turns depend on the replies or the words are refused (:func:`check_vad_mode`): echo cancellation (its
reference is the replies) and end-of-utterance detection (it reads the words).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vlab import protocol, protocol_limits
from vlab.errors import ConfigError

if TYPE_CHECKING:
    from vlab.audio.processing import ProcessingSettings
    from vlab.audio.vad import SileroModel
    from vlab.audio.vad_cache import VadCache
    from vlab.prompts import LabelledPrompt
    from vlab.settings import SessionSettings

__all__ = ["VAD_TARGET", "check_vad_mode", "vad_cells"]

VAD_TARGET = "vlab-vad"
"""The ``target`` a VAD-only cell records (vlab's emulator VAD, no session)."""

PROMPTS_PER_BATCH = 32
"""Prompts whose audio is run through the model together (one batch across streams); bounds memory."""


def check_vad_mode(settings: Sequence[SessionSettings], names: Sequence[str]) -> None:
    """Refuse the settings a VAD-only sweep cannot decide without sessions.

    Raises:
        ConfigError: A setting asks for echo cancellation or end-of-utterance detection.
    """
    from vlab.emulator import session_config

    for setting, name in zip(settings, names, strict=True):
        session = setting.to_wire()
        td = session.get("turn_detection")
        if td is None:
            raise ConfigError(f"[run] mode = 'vad' needs turn detection; setting {name!r} has none")
        if protocol_limits.eou_timeout_ms(td) is not None:
            raise ConfigError(
                f"[run] mode = 'vad' cannot decide setting {name!r}: its end-of-utterance detection reads the "
                "words of each turn. Use type = 'server_vad' without eou_model, eou_threshold_level or "
                "eou_timeout_ms in [grid], or mode = 'sessions'."
            )
        if session_config.processing_settings(session).echo_cancellation:
            raise ConfigError(
                f"[run] mode = 'vad' cannot decide setting {name!r}: echo cancellation's reference is the "
                "assistant's replies, which only sessions have. Drop echo_cancellation = true, or use "
                "mode = 'sessions'."
            )


def vad_cells(
    cells: Sequence[tuple[str, int, SessionSettings, LabelledPrompt, int]],
    cache: VadCache | None,
    on_decided: Callable[[list[str]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """The emulator's VAD decisions and scores of every cell, without sessions.

    Args:
        cells: The sweep's cells (name, setting index, settings, prompt, repeat).
        cache: The sweep's VAD cache (None: none).
        on_decided: Called with the names of the cells decided, after each batch of prompts.

    Returns:
        By cell name, the analysis :func:`vlab.sweep.aggregate` takes: ``vad`` (detections) and ``score``
        (:func:`vlab.metrics.score_prompt`); no ``turns`` or ``session`` (nothing was answered).
    """
    from vlab.audio.vad import SileroModel

    model = SileroModel()
    machines: dict[int, _TurnMachine] = {}  # by setting index
    groups: dict[tuple[int, str, ProcessingSettings], list[tuple[str, _TurnMachine, LabelledPrompt]]] = {}
    for name, index, settings, prompt, _ in cells:
        machine = machines.get(index) or machines.setdefault(index, _TurnMachine(settings))
        key = (machine.input_rate, machine.input_format, machine.processing)
        groups.setdefault(key, []).append((name, machine, prompt))
    out: dict[str, dict[str, Any]] = {}
    for (rate, audio_format, processing), members in groups.items():
        tails = sorted({machine.tail_ms for _, machine, _ in members})
        by_prompt: dict[str, list[tuple[str, _TurnMachine]]] = {}
        prompts: dict[str, LabelledPrompt] = {}
        for name, machine, prompt in members:
            by_prompt.setdefault(prompt.id, []).append((name, machine))
            prompts[prompt.id] = prompt
        ids = list(prompts)
        for start in range(0, len(ids), PROMPTS_PER_BATCH):
            batch = [prompts[i] for i in ids[start : start + PROMPTS_PER_BATCH]]
            probs = _probabilities(batch, rate, audio_format, tails, processing, model, cache)
            decided = []
            for prompt in batch:
                for name, machine in by_prompt[prompt.id]:
                    out[name] = machine.analyse(prompt, probs[prompt.id][tails.index(machine.tail_ms)], model)
                    decided.append(name)
            if on_decided is not None:
                on_decided(decided)
    return out


def _probabilities(
    prompts: Sequence[LabelledPrompt],
    rate: int,
    audio_format: str,
    tails_ms: Sequence[int],
    processing: ProcessingSettings,
    model: SileroModel,
    cache: VadCache | None,
) -> dict[str, list[np.ndarray]]:
    """For each prompt and trailing silence, the gated probabilities of the frames a session decides.

    A prompt's audio is sent once, followed by the silences as pieces: the frames of the prompt with the
    ``k``-th silence are those of the first ``k + 1`` pieces (the resampler's output does not depend on how
    its input is cut). The audio goes through the input format (``audio_format``: G.711 quantises it) and
    back, as a session's does between vlab and the emulator's VAD.
    """
    from vlab.audio import g711
    from vlab.audio.pcm import silence
    from vlab.audio.silero_serve import probabilities_here

    lengths = [len(silence(t, rate)) for t in tails_ms]
    pieces = [
        g711.as_carried(bytes(b - a), audio_format) for a, b in zip([0, *lengths], lengths, strict=False)
    ]
    audio = [[g711.as_carried(p.pcm(rate), audio_format), *pieces] for p in prompts]
    answers = probabilities_here(audio, rate, model, processing, cache)
    return {
        p.id: [np.concatenate(blocks[: k + 2]) for k in range(len(tails_ms))]
        for p, blocks in zip(prompts, answers, strict=True)
    }


class _TurnMachine:
    """One setting's turn detection, as the emulator's sessions of the sweep run it."""

    def __init__(self, settings: SessionSettings) -> None:
        from vlab.emulator import session_config
        from vlab.feed import trailing_silence_ms

        session = settings.to_wire()
        td = session["turn_detection"]
        self.input_rate = settings.input_sample_rate
        self.input_format = settings.input_audio_format
        self.processing = session_config.processing_settings(session)
        # at the API version a sweep's sessions use
        self.params = session_config.vad_params(td, protocol.DEFAULT_API_VERSION)
        complete = session_config.complete_turn_detection(dict(td), protocol.DEFAULT_API_VERSION)
        self.responds = bool(complete.get("create_response", True))
        self.tail_ms = trailing_silence_ms(settings.turn_detection)

    def analyse(self, prompt: LabelledPrompt, probs: np.ndarray, model: SileroModel) -> dict[str, Any]:
        """A cell's detections and scores from its frames' probabilities."""
        from vlab.audio.vad import StreamingVad, VadFrames, reported_audio_ms
        from vlab.metrics import detections_from_boundaries, score_prompt

        # given probabilities: the model never runs
        vad = StreamingVad(self.params, model.sample_rate, model=model)
        no_frames = np.zeros((0, 0), dtype=np.float32)
        events = vad.decide(VadFrames(no_frames, 0.0, 0, math.inf, math.inf), probs.tolist())
        boundaries: list[tuple[str, Any, Any, Any]] = []
        last_stop = 0
        for event in events:
            audio_ms = reported_audio_ms(event, 0.0, last_stop)
            if event.kind == "speech_started":
                boundaries.append((protocol.SPEECH_STARTED, audio_ms, None, None))
            else:
                last_stop = audio_ms
                boundaries.append((protocol.SPEECH_STOPPED, None, audio_ms, None))
                if self.responds:
                    boundaries.append((protocol.RESPONSE_CREATED, None, None, None))
        det = detections_from_boundaries(
            boundaries,
            silence_duration_ms=self.params.silence_duration_ms,
            prefix_padding_ms=self.params.prefix_padding_ms,
        )
        return {"vad": det, "score": score_prompt(prompt, det)}
