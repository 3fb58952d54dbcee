"""A sweep's grid: the settings it crosses, their names and labels, and the order tables show them in."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from vlab import protocol, protocol_limits
from vlab.errors import ConfigError
from vlab.settings import NOT_GIVEN, AzureSemanticVad, EndOfUtterance, ServerVad, voice_to_wire
from vlab.settings._base import _from_json

GRID_KEYS = tuple(protocol_limits.TURN_DETECTION_BOUNDS)
"""The numeric turn-detection knobs a grid may sweep."""
GRID_TYPES: dict[str, type[ServerVad] | type[AzureSemanticVad]] = {
    ServerVad().type: ServerVad,
    AzureSemanticVad().type: AzureSemanticVad,
}
"""Turn-detection types a grid may use (``[grid] type``, one or a list to compare), with their settings class."""
NOISE_REDUCTION_OFF = "off"
"""The ``noise_reduction`` grid value for none (``input_audio_noise_reduction: null``)."""
PROCESSING_KEYS = ("noise_reduction", "echo_cancellation")
"""The input-processing knobs a grid may sweep, besides turn detection."""
EOU_KEYS = {"eou_model": "model", "eou_threshold_level": "threshold_level", "eou_timeout_ms": "timeout_ms"}
"""The end-of-utterance knobs a grid may sweep, with their :class:`~vlab.settings.EndOfUtterance` fields."""
EOU_OFF = "off"
"""The ``eou_model`` grid value (and the ``end_of_utterance`` column's) for no ``end_of_utterance_detection``."""
ANSWER_KEYS = ("model", "voice")
"""The grid keys of what answers the user, crossed after the others: each setting's model and voice."""
VOICE_DEFAULT = "default"
"""The ``voice`` column of a setting that sends no voice (the service's default one)."""
KNOB_COLUMNS = (
    "turn_detection_type",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "end_of_utterance",
    "noise_reduction",
    "echo_cancellation",
    "model",
    "voice",
)
"""The columns that say a setting's knobs in every sweep table (:func:`knobs_of`), in this order."""
PUSH_TO_TALK = "push-to-talk"
"""The name of the reference setting ``[run] push_to_talk = true`` adds: no turn detection, and each
labelled turn committed at its labelled end, as a user holding a talk button would (what a setting's
figures would be if its end-of-turn decision were perfect)."""
BASELINE = ServerVad()
"""The plain server-VAD setting added with ``baseline = true``: vlab's defaults, 0.5 / 300 ms / 500 ms
(see :data:`vlab.protocol_limits.VLAB_DEFAULTS_API_VERSION`)."""


def in_grid_order(frame: Any, settings: Sequence[str], *then: str) -> Any:
    """``frame``'s rows in the order of the sweep's ``settings`` (the grid's, the baseline last).

    Then by the ``then`` columns; rows of one setting keep their order otherwise. Reports and panels show
    every per-setting table and chart so.
    """
    order = {name: i for i, name in enumerate(settings)}
    return frame.sort_values(
        ["setting", *then],
        key=lambda column: column.map(order) if column.name == "setting" else column,
        kind="stable",
        ignore_index=True,
    )


def counted(n: int, word: str) -> str:
    """``n`` and ``word``, plural unless ``n`` is 1: ``1 cell``, ``6 cells``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def grid_shape(settings: int, prompts: int, repeats: int) -> str:
    """A sweep's size as vlab says it everywhere: ``3 settings × 5 prompts × 1 repeat``."""
    return " × ".join(
        counted(n, word) for n, word in ((settings, "setting"), (prompts, "prompt"), (repeats, "repeat"))
    )


def setting_name(
    td: ServerVad | AzureSemanticVad,
    noise: str = NOISE_REDUCTION_OFF,
    echo: bool = False,
    voice: str | Mapping[str, Any] | None = None,
    model: str | None = None,
) -> str:
    """A setting's short label (``thr=0.5 pad=300 sil=500``), with what it adds to plain server VAD.

    ``model`` and ``voice``: the grid's of the setting (``… model=gpt-realtime voice=alloy``), or None
    when the grid has none.
    """
    name = f"thr={td.threshold:g} pad={td.prefix_padding_ms} sil={td.silence_duration_ms}"
    if isinstance(td, AzureSemanticVad):
        name = "semantic " + name
    if isinstance(td.end_of_utterance, EndOfUtterance):
        name += " " + td.end_of_utterance.label
    if noise != NOISE_REDUCTION_OFF:
        name += f" nr={noise}"
    name += " aec" if echo else ""
    name += "" if model is None else f" model={model}"
    return name if voice is None else f"{name} voice={voice_label(voice)}"


def voice_label(voice: str | Mapping[str, Any]) -> str:
    """A voice as the ``voice`` column and setting names say it: its name (``alloy``, ``en-US-AvaNeural``).

    A voice table without a name (a custom one, say) is said by its ``type``.
    """
    wire = voice_to_wire(voice)
    return str(wire.get("name") or wire["type"])


def model_axis(grid: Mapping[str, Any]) -> list[str] | None:
    """The grid's ``model`` values (what each setting's connection asks for); None when it sweeps no model.

    Raises:
        ConfigError: An empty list, or a value that is not a model name.
    """
    if "model" not in grid:
        return None
    given = grid["model"] if isinstance(grid["model"], list) else [grid["model"]]
    if not given:
        raise ConfigError("[grid] model is an empty list; give at least one value")
    for value in given:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"[grid] model must list model names such as 'gpt-realtime' or 'gpt-4.1', got {value!r}"
            )
    return list(dict.fromkeys(value.strip() for value in given))


def voice_axis(grid: Mapping[str, Any]) -> list[str | dict[str, Any]] | None:
    """The grid's ``voice`` values (names or voice tables), each checked; None when it sweeps no voice.

    Two values that are one voice (``alloy`` and ``Alloy``) count once.

    Raises:
        ConfigError: An empty list, or a voice :func:`~vlab.settings.voice_to_wire` refuses.
    """
    if "voice" not in grid:
        return None
    given = grid["voice"] if isinstance(grid["voice"], list) else [grid["voice"]]
    if not given:
        raise ConfigError("[grid] voice is an empty list; give at least one value")
    voices: dict[str, str | dict[str, Any]] = {}
    for value in given:
        if isinstance(value, bool) or not isinstance(value, (str, Mapping)):
            raise ConfigError(
                f"[grid] voice must list voice names such as 'alloy' or 'en-US-AvaNeural', or tables with "
                f"their type, got {value!r}"
            )
        try:
            key = json.dumps(voice_to_wire(value), sort_keys=True)
        except ConfigError as exc:
            raise ConfigError(f"[grid] voice = {value!r}: {exc}") from None
        voices.setdefault(key, value if isinstance(value, str) else dict(value))
    return list(voices.values())


def processing_axes(grid: Mapping[str, Any]) -> tuple[list[str], list[bool]]:
    """The grid's ``noise_reduction`` and ``echo_cancellation`` values (default: off)."""
    noise = grid.get("noise_reduction", [NOISE_REDUCTION_OFF])
    noise = noise if isinstance(noise, list) else [noise]
    allowed = (NOISE_REDUCTION_OFF, *protocol.NOISE_REDUCTION_TYPES)
    for value in noise:
        if value not in allowed:
            raise ConfigError(
                f"[grid] noise_reduction must be among {', '.join(map(repr, allowed))}, got {value!r}"
            )
    echo = grid.get("echo_cancellation", [False])
    echo = echo if isinstance(echo, list) else [echo]
    for value in echo:
        if not isinstance(value, bool):
            raise ConfigError(f"[grid] echo_cancellation must be true or false, got {value!r}")
    for key, values in (("noise_reduction", noise), ("echo_cancellation", echo)):
        if not values:
            raise ConfigError(f"[grid] {key} is an empty list; give at least one value")
    return list(dict.fromkeys(noise)), list(dict.fromkeys(echo))


def eou_axis(grid: Mapping[str, Any]) -> list[EndOfUtterance | None]:
    """The grid's end-of-utterance detections (None: none sent): ``eou_model`` × its knobs.

    ``eou_model = "off"`` is a setting without it; the knobs alone imply the default model.
    """
    values = {
        key: grid[key] if isinstance(grid[key], list) else [grid[key]] for key in EOU_KEYS if key in grid
    }
    if not values:
        return [None]
    for key, given in values.items():
        if not given:
            raise ConfigError(f"[grid] {key} is an empty list; give at least one value")
        if key == "eou_model":
            continue  # checked below, where "off" is one of its values
        for value in given:
            try:
                EndOfUtterance(**{EOU_KEYS[key]: value})
            except ConfigError as exc:
                raise ConfigError(f"[grid] {key} = {value!r}: {exc}") from None
    models = values.pop("eou_model", [protocol_limits.EOU_MODELS[0]])
    allowed = (EOU_OFF, *protocol_limits.EOU_MODELS)
    detections: list[EndOfUtterance | None] = []
    for model in models:
        if model not in allowed:
            raise ConfigError(
                f"[grid] eou_model must be among {', '.join(map(repr, allowed))}, got {model!r}"
            )
        if model == EOU_OFF:
            detections.append(None)
            continue
        for combo in itertools.product(*values.values()):
            knobs = {EOU_KEYS[key]: value for key, value in zip(values, combo, strict=True)}
            detections.append(EndOfUtterance(model=model, **knobs))
    return list(dict.fromkeys(detections))


def eou_label(turn_detection: Mapping[str, Any] | None) -> str:
    """A recorded turn detection's end-of-utterance detection as the ``end_of_utterance`` column shows it.

    ``eou=v1/800ms`` (:attr:`EndOfUtterance.label`), or :data:`EOU_OFF` when none was sent (the azure
    semantic VADs still judge the end of an utterance their own way).
    """
    eou = (turn_detection or {}).get("end_of_utterance_detection")
    return EndOfUtterance.from_wire(eou).label if eou else EOU_OFF


def processing_extra(noise: str, echo: bool) -> dict[str, Any]:
    """The raw session keys of one input-processing grid point."""
    extra: dict[str, Any] = {}
    if noise != NOISE_REDUCTION_OFF:
        extra["input_audio_noise_reduction"] = {"type": noise}
    if echo:
        extra["input_audio_echo_cancellation"] = {"type": protocol.ECHO_CANCELLATION_TYPE}
    return extra


def knobs_of(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A setting's knobs as recorded (:meth:`SessionSettings.to_dict`), by :data:`KNOB_COLUMNS`.

    Turn detection's knobs are None for a setting without it (push-to-talk); ``voice`` is
    :data:`VOICE_DEFAULT` for a setting that sends none; ``model`` is the one its connection asked for.
    """
    td = settings.get("turn_detection") or {}
    extra = settings.get("extra") or {}
    voice = _from_json(settings.get("voice"))
    return {
        "turn_detection_type": td.get("type"),
        "threshold": td.get("threshold"),
        "prefix_padding_ms": td.get("prefix_padding_ms"),
        "silence_duration_ms": td.get("silence_duration_ms"),
        "end_of_utterance": eou_label(td),
        "noise_reduction": (extra.get("input_audio_noise_reduction") or {}).get("type", NOISE_REDUCTION_OFF),
        "echo_cancellation": bool(extra.get("input_audio_echo_cancellation")),
        "model": settings.get("model"),
        "voice": VOICE_DEFAULT if voice is None or voice is NOT_GIVEN else voice_label(voice),
    }
