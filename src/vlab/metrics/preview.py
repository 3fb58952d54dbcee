"""The offline VAD preview: vlab's own VAD (the emulator's) over labelled prompts for a grid of settings."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vlab import protocol
from vlab.errors import ConfigError, check_number
from vlab.metrics.detection import DETECTION_COLUMNS, OFFSET_EARLIEST, ONSET_EARLIEST

if TYPE_CHECKING:
    from vlab.audio.pcm import FloatArray
    from vlab.audio.vad import SpeechModel, StreamingVad, VadFrames, VadParams
    from vlab.prompts import LabelledPrompt


__all__ = ["vad_preview"]


def vad_preview(
    prompts: Sequence[LabelledPrompt],
    settings: Sequence[Mapping[str, Any]],
    *,
    model_factory: Callable[[], SpeechModel] | None = None,
    input_audio_format: str = "pcm16",
) -> pd.DataFrame:
    """Run vlab's own VAD (the emulator's) over the prompts for each setting, offline, in seconds.

    This approximates the service's server VAD (Azure's own model will differ somewhat); use it to
    choose a grid before spending sessions. Silero runs once per prompt, over the prompt and the longest
    silence of the grid; each setting steps its turn machine over those probabilities.

    Args:
        prompts: Labelled prompts.
        settings: Dicts with ``threshold``, ``prefix_padding_ms``, ``silence_duration_ms`` (and an
            optional ``setting`` name; default: a label built from the values).
        model_factory: Speech model (default: Silero, as the emulator).
        input_audio_format: The audio as a session would send it: ``"pcm16"`` (the prompts at 16 kHz, the
            model's rate) or ``"g711_ulaw"``/``"g711_alaw"`` (a phone line: 8 kHz, G.711-quantised), as a
            VAD-only sweep with that ``[session]`` format hears it.

    Returns:
        Detections (:data:`~vlab.metrics.DETECTION_COLUMNS`, every detection counted as responded) with ``setting``,
        ``prompt``, the setting values and ``run`` = 0; use :func:`~vlab.metrics.score_prompt` per prompt and setting.

    Raises:
        ConfigError: ``input_audio_format`` is not a Voice Live input format.
    """
    from vlab.audio import g711
    from vlab.audio.pcm import silence
    from vlab.audio.vad import SileroModel, StreamingVad

    if input_audio_format not in protocol.INPUT_FORMATS:
        raise ConfigError(
            f"vad_preview: input_audio_format {input_audio_format!r} is not a Voice Live input format; "
            f"use one of {', '.join(map(repr, protocol.INPUT_FORMATS))}"
        )
    prompts, settings = _preview_arguments(prompts, settings)
    rate = protocol.G711_SAMPLE_RATE_HZ if input_audio_format.startswith("g711") else 16000
    factory = model_factory or SileroModel
    audio = {p.id: g711.as_carried(p.pcm(rate), input_audio_format) for p in prompts}
    runs = [_preview_setting(s) for s in settings]
    # The model's probabilities depend on the frames it is given (the prompt and its trailing silence),
    # not on the setting: the longest silence runs first, and a setting whose frames begin those frames
    # (at 16 kHz, every shorter silence) takes its probabilities from them. Each setting then steps its
    # own turn machine over them (prepare and decide, exactly as feed and flush would).
    order = sorted(range(len(runs)), key=lambda i: -runs[i][0].silence_duration_ms)
    known: dict[str, tuple[FloatArray, list[float]]] = {}  # by prompt: the longest frames run, their output
    rows_by_setting: dict[int, list[dict[str, Any]]] = {}
    for i in order:
        params, values = runs[i]
        rows = rows_by_setting.setdefault(i, [])
        tail = g711.as_carried(silence(params.silence_duration_ms + 200, rate), input_audio_format)
        for p in prompts:
            vad = StreamingVad(params, rate, model=factory())
            fed, flushed = vad.prepare(audio[p.id] + tail), vad.prepare_flush()
            probs = _model_output(vad, fed, flushed, known, p.id)
            rows.extend(_detections(vad, fed, flushed, probs, {"prompt": p.id, **values}))
    return pd.DataFrame(
        [row for i in range(len(runs)) for row in rows_by_setting[i]], columns=_PREVIEW_COLUMNS
    )


_PREVIEW_COLUMNS = [
    *DETECTION_COLUMNS,
    ONSET_EARLIEST,
    OFFSET_EARLIEST,
    "prompt",
    "setting",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "run",
]


def _preview_arguments(prompts: Any, settings: Any) -> tuple[list[LabelledPrompt], list[Mapping[str, Any]]]:
    """``prompts`` and ``settings`` as lists (a generator is read once, as each is used many times).

    Raises:
        ConfigError: ``prompts`` are not labelled prompts, or ``settings`` not dicts of VAD values.
    """
    from vlab.prompts import LabelledPrompt

    listed = not isinstance(prompts, (str, bytes)) and isinstance(prompts, Iterable)
    prompts = list(prompts) if listed else prompts
    odd = next((p for p in prompts if not isinstance(p, LabelledPrompt)), None) if listed else prompts
    if not listed or odd is not None:
        raise ConfigError(
            f"vad_preview: prompts must be labelled prompts, e.g. list(vlab.prompts.load_prompt_set()), "
            f"got {odd!r}"
        )
    if isinstance(settings, Mapping) or not isinstance(settings, Iterable):
        raise ConfigError(
            "vad_preview: settings must be a list of dicts, one per setting, e.g. "
            f"[{{'threshold': 0.5, 'silence_duration_ms': 500}}], got {settings!r}"
        )
    settings = list(settings)
    for setting in settings:
        if not isinstance(setting, Mapping):
            raise ConfigError(f"vad_preview: each setting must be a dict of VAD values, got {setting!r}")
        for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            if key in setting:
                check_number(f"vad_preview: a setting's {key}", setting[key], minimum=-math.inf)
    return prompts, settings


def _preview_setting(setting: Mapping[str, Any]) -> tuple[VadParams, dict[str, Any]]:
    """A :func:`vad_preview` setting's VAD parameters (the defaults where it is silent) and its row values."""
    from vlab.audio.vad import VadParams

    default = VadParams()
    params = VadParams(
        threshold=float(setting.get("threshold", default.threshold)),
        prefix_padding_ms=int(setting.get("prefix_padding_ms", default.prefix_padding_ms)),
        silence_duration_ms=int(setting.get("silence_duration_ms", default.silence_duration_ms)),
    )
    name = setting.get("setting") or (
        f"thr={params.threshold:g} pad={params.prefix_padding_ms} sil={params.silence_duration_ms}"
    )
    values = {
        "setting": name,
        "threshold": params.threshold,
        "prefix_padding_ms": params.prefix_padding_ms,
        "silence_duration_ms": params.silence_duration_ms,
        "run": 0,
    }
    return params, values


def _model_output(
    vad: StreamingVad,
    fed: VadFrames,
    flushed: VadFrames,
    known: dict[str, tuple[FloatArray, list[float]]],
    prompt: str,
) -> list[float]:
    """The model's probabilities for the frames of ``fed`` then ``flushed`` of ``prompt``.

    ``known`` holds, by prompt, the longest frames run so far and their output: frames that begin those
    are not run again; longer ones are run and replace them.
    """
    frames = np.concatenate((fed.frames, flushed.frames))
    have = known.get(prompt)
    if have is not None and len(frames) <= len(have[0]) and np.array_equal(frames, have[0][: len(frames)]):
        return have[1][: len(frames)]
    probs = vad.run_model(fed) + vad.run_model(flushed)
    if have is None or len(frames) > len(have[0]):
        known[prompt] = (frames, probs)
    return probs


def _detections(
    vad: StreamingVad, fed: VadFrames, flushed: VadFrames, probs: list[float], labels: dict[str, Any]
) -> list[dict[str, Any]]:
    """A row, with ``labels``, for each turn ``vad`` decides over ``fed`` then ``flushed`` from ``probs``."""
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    split = len(fed.frames)
    for e in vad.decide(fed, probs[:split]) + vad.decide(flushed, probs[split:]):
        if e.kind == "speech_started":
            current = {"audio_start_ms": float(e.audio_ms), "onset_ms": float(e.speech_ms)}
            current[ONSET_EARLIEST] = current["onset_ms"]  # the VAD's own: exact
            current.update(audio_end_ms=math.nan, offset_ms=math.nan, responded=False)
            current[OFFSET_EARLIEST] = math.nan
            current.update(labels)
            rows.append(current)
        elif current is not None:
            current.update(audio_end_ms=float(e.audio_ms), offset_ms=float(e.speech_ms), responded=True)
            current[OFFSET_EARLIEST] = current["offset_ms"]
            current = None
    return rows
