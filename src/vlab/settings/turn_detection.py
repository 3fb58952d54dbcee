"""Turn detection settings: server VAD, Azure semantic VAD and end-of-utterance detection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from vlab import protocol_limits
from vlab.errors import ConfigError, refuse_unknown_fields
from vlab.settings._base import (
    _EOU_LEVELS,
    _EOU_MODELS,
    _SEMANTIC_DEFAULTS,
    _SEMANTIC_TYPES,
    _SEMANTIC_VARIANTS,
    _SERVER_DEFAULTS,
    _THRESHOLD,
    NOT_GIVEN,
    EouModel,
    EouThresholdLevel,
    NotGiven,
    SemanticVariant,
    _check_choice,
    _check_ms,
    _check_optional_bool,
    _check_real,
    _check_str_tuple,
    _fail,
    _known_keys,
    _put,
    _Replaceable,
    _set,
)

# --- turn detection --------------------------------------------------------------------------------


@refuse_unknown_fields
@dataclass(frozen=True, slots=True)
class EndOfUtterance(_Replaceable):
    """Semantic end-of-utterance detection, nested in a turn detection (wire key ``end_of_utterance_detection``).

    The EOU model decides whether a pause ends the user's sentence, on top of the VAD's silence timer.
    """

    model: EouModel = "semantic_detection_v1"
    """Detector: ``semantic_detection_v1``, ``semantic_detection_v1_en`` or
    ``semantic_detection_v1_multilingual``. Defaults to ``"semantic_detection_v1"``."""
    threshold_level: EouThresholdLevel | NotGiven = NOT_GIVEN
    """How readily a sentence is judged complete: ``low``, ``medium``, ``high`` or ``default``
    (= medium; lower ⇒ ends sooner). Defaults to NOT_GIVEN (service default, medium)."""
    timeout_ms: int | NotGiven = NOT_GIVEN
    """Longest wait for more speech after a pause judged incomplete, in milliseconds
    (0 to :data:`MAX_DURATION_MS`). Defaults to NOT_GIVEN (service default, 1000 ms)."""

    def __post_init__(self) -> None:
        owner = "EndOfUtterance"
        _check_choice(owner, "model", self.model, _EOU_MODELS)
        if self.threshold_level is not NOT_GIVEN:
            _check_choice(owner, "threshold_level", self.threshold_level, _EOU_LEVELS)
        if self.timeout_ms is not NOT_GIVEN:
            _set(self, "timeout_ms", _check_ms(owner, "timeout_ms", self.timeout_ms))

    def to_wire(self) -> dict[str, Any]:
        """The ``end_of_utterance_detection`` object, without NOT_GIVEN fields."""
        wire: dict[str, Any] = {"model": self.model}
        _put(wire, "threshold_level", self.threshold_level)
        _put(wire, "timeout_ms", self.timeout_ms)
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> EndOfUtterance:
        """Build from an ``end_of_utterance_detection`` wire object.

        Raises:
            ConfigError: The object has unknown keys or invalid values.
        """
        _known_keys("end_of_utterance_detection", data, ("model", "threshold_level", "timeout_ms"), "")
        return cls(
            model=data.get("model", "semantic_detection_v1"),
            threshold_level=data.get("threshold_level", NOT_GIVEN),
            timeout_ms=data.get("timeout_ms", NOT_GIVEN),
        )

    @property
    def label(self) -> str:
        """Short text for charts, e.g. ``eou=v1_en/low/800ms``."""
        text = "eou=" + self.model.removeprefix("semantic_detection_")
        if self.threshold_level is not NOT_GIVEN:
            text += f"/{self.threshold_level}"
        if self.timeout_ms is not NOT_GIVEN:
            text += f"/{self.timeout_ms}ms"
        return text


def _check_eou(owner: str, value: Any) -> EndOfUtterance | NotGiven:
    if value is NOT_GIVEN or isinstance(value, EndOfUtterance):
        return value
    if isinstance(value, Mapping):
        return EndOfUtterance.from_wire(value)
    raise _fail(owner, "end_of_utterance", value, "an EndOfUtterance(...) or NOT_GIVEN")


def _with_turn_flags(wire: dict[str, Any], vad: ServerVad | AzureSemanticVad) -> dict[str, Any]:
    """Add what every turn detection type sends: end-of-utterance detection and the response flags."""
    if isinstance(vad.end_of_utterance, EndOfUtterance):
        wire["end_of_utterance_detection"] = vad.end_of_utterance.to_wire()
    _put(wire, "interrupt_response", vad.interrupt_response)
    _put(wire, "auto_truncate", vad.auto_truncate)
    _put(wire, "create_response", vad.create_response)
    return wire


def _check_response_flags(owner: str, obj: Any) -> None:
    for name in ("interrupt_response", "auto_truncate", "create_response"):
        _check_optional_bool(owner, name, getattr(obj, name))
    if obj.auto_truncate is True and obj.interrupt_response is False:
        raise ConfigError(
            f"{owner}.auto_truncate=True needs interrupt_response, got interrupt_response=False. "
            "Set interrupt_response=True (or leave it NOT_GIVEN) or drop auto_truncate."
        )


@refuse_unknown_fields
@dataclass(frozen=True, slots=True)
class ServerVad(_Replaceable):
    """Energy/neural voice-activity turn detection (wire type ``server_vad``).

    A turn ends after ``silence_duration_ms`` of silence; ``prefix_padding_ms`` of audio before the
    detected speech start is kept.
    """

    threshold: float = _SERVER_DEFAULTS.threshold
    """Speech-probability threshold, 0.0-1.0 (higher ⇒ needs louder/clearer speech). Defaults to 0.5."""
    prefix_padding_ms: int = _SERVER_DEFAULTS.prefix_padding_ms
    """Audio kept before the detected start of speech, in milliseconds (0 to :data:`MAX_DURATION_MS`).
    Defaults to 300."""
    silence_duration_ms: int = _SERVER_DEFAULTS.silence_duration_ms
    """Silence that ends a turn, in milliseconds (0 to :data:`MAX_DURATION_MS`). Defaults to 500."""
    end_of_utterance: EndOfUtterance | NotGiven = NOT_GIVEN
    """Semantic end-of-utterance detection on top of the silence timer. Defaults to NOT_GIVEN (off)."""
    interrupt_response: bool | NotGiven = NOT_GIVEN
    """Whether user speech interrupts (cancels) a playing response. Defaults to NOT_GIVEN (service: true)."""
    auto_truncate: bool | NotGiven = NOT_GIVEN
    """Whether the service truncates the interrupted assistant item assuming real-time playback.
    Needs ``interrupt_response``. Defaults to NOT_GIVEN (service: false)."""
    create_response: bool | NotGiven = NOT_GIVEN
    """Whether the end of a user turn starts a response automatically. Defaults to NOT_GIVEN (service: true)."""

    def __post_init__(self) -> None:
        owner = "ServerVad"
        _set(self, "threshold", _check_real(owner, "threshold", self.threshold, *_THRESHOLD))
        _set(self, "prefix_padding_ms", _check_ms(owner, "prefix_padding_ms", self.prefix_padding_ms))
        _set(self, "silence_duration_ms", _check_ms(owner, "silence_duration_ms", self.silence_duration_ms))
        _set(self, "end_of_utterance", _check_eou(owner, self.end_of_utterance))
        _check_response_flags(owner, self)

    @property
    def type(self) -> str:
        """The wire ``type``: ``"server_vad"``."""
        return protocol_limits.SERVER_VAD

    def to_wire(self) -> dict[str, Any]:
        """The ``turn_detection`` object, without NOT_GIVEN fields."""
        wire: dict[str, Any] = {
            "type": self.type,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }
        return _with_turn_flags(wire, self)

    @property
    def label(self) -> str:
        """Short text for charts, e.g. ``server_vad thr=0.5 pad=300 sil=500``."""
        return _label(self)


@refuse_unknown_fields
@dataclass(frozen=True, slots=True)
class AzureSemanticVad(_Replaceable):
    """Azure semantic VAD turn detection (wire types ``azure_semantic_vad``, ``_en``, ``_multilingual``).

    Adds a minimum speech duration, filler-word removal and (multilingual variant) language hints
    to the server VAD knobs.
    """

    variant: SemanticVariant = "default"
    """``"default"`` (``azure_semantic_vad``), ``"en"`` (``azure_semantic_vad_en``) or
    ``"multilingual"`` (``azure_semantic_vad_multilingual``). Defaults to ``"default"``."""
    threshold: float = _SEMANTIC_DEFAULTS.threshold
    """Speech-probability threshold, 0.0-1.0. Defaults to 0.5."""
    prefix_padding_ms: int = _SEMANTIC_DEFAULTS.prefix_padding_ms
    """Audio kept before the detected start of speech, in milliseconds (0 to :data:`MAX_DURATION_MS`).
    Defaults to 300."""
    silence_duration_ms: int = _SEMANTIC_DEFAULTS.silence_duration_ms
    """Silence that ends a turn, in milliseconds (0 to :data:`MAX_DURATION_MS`). Defaults to 500."""
    speech_duration_ms: int | NotGiven = NOT_GIVEN
    """Shortest speech that starts a turn, in milliseconds (0 to :data:`MAX_DURATION_MS`; the service
    raises values under 80 to 80). Defaults to NOT_GIVEN (service: 80)."""
    remove_filler_words: bool | NotGiven = NOT_GIVEN
    """Ignore fillers (ah, umm, mm, uh, huh, oh, yeah, hmm) while a response plays. Defaults to
    NOT_GIVEN (service: false)."""
    languages: tuple[str, ...] | NotGiven = NOT_GIVEN
    """Language codes to detect (``variant="multilingual"`` only), e.g. ``("en", "es")``; a list is
    converted to a tuple. Defaults to NOT_GIVEN (service default)."""
    end_of_utterance: EndOfUtterance | NotGiven = NOT_GIVEN
    """Semantic end-of-utterance detection. Defaults to NOT_GIVEN (off)."""
    interrupt_response: bool | NotGiven = NOT_GIVEN
    """Whether user speech interrupts (cancels) a playing response. Defaults to NOT_GIVEN (service: true)."""
    auto_truncate: bool | NotGiven = NOT_GIVEN
    """Whether the service truncates the interrupted assistant item. Needs ``interrupt_response``.
    Defaults to NOT_GIVEN (service: false)."""
    create_response: bool | NotGiven = NOT_GIVEN
    """Whether the end of a user turn starts a response automatically. Defaults to NOT_GIVEN (service: true)."""

    def __post_init__(self) -> None:
        owner = "AzureSemanticVad"
        _check_choice(owner, "variant", self.variant, _SEMANTIC_VARIANTS)
        _set(self, "threshold", _check_real(owner, "threshold", self.threshold, *_THRESHOLD))
        _set(self, "prefix_padding_ms", _check_ms(owner, "prefix_padding_ms", self.prefix_padding_ms))
        _set(self, "silence_duration_ms", _check_ms(owner, "silence_duration_ms", self.silence_duration_ms))
        if self.speech_duration_ms is not NOT_GIVEN:
            _set(self, "speech_duration_ms", _check_ms(owner, "speech_duration_ms", self.speech_duration_ms))
        _check_optional_bool(owner, "remove_filler_words", self.remove_filler_words)
        if self.languages is not NOT_GIVEN:
            if self.variant != "multilingual":
                raise ConfigError(
                    f"{owner}.languages is only accepted with variant='multilingual', got "
                    f"languages={self.languages!r} with variant={self.variant!r}. "
                    "Use AzureSemanticVad(variant='multilingual', languages=[...]) or drop languages."
                )
            _set(self, "languages", _check_str_tuple(owner, "languages", self.languages, "['en', 'es']"))
        _set(self, "end_of_utterance", _check_eou(owner, self.end_of_utterance))
        _check_response_flags(owner, self)

    @property
    def type(self) -> str:
        """The wire ``type``, e.g. ``"azure_semantic_vad_en"``."""
        return _SEMANTIC_TYPES[self.variant]

    def to_wire(self) -> dict[str, Any]:
        """The ``turn_detection`` object, without NOT_GIVEN fields."""
        wire: dict[str, Any] = {
            "type": self.type,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }
        _put(wire, "speech_duration_ms", self.speech_duration_ms)
        _put(wire, "remove_filler_words", self.remove_filler_words)
        _put(wire, "languages", self.languages)
        return _with_turn_flags(wire, self)

    @property
    def label(self) -> str:
        """Short text for charts, e.g. ``azure_semantic_vad_en thr=0.5 pad=300 sil=500``."""
        return _label(self)


TurnDetection = ServerVad | AzureSemanticVad
"""A turn-detection settings object."""


def _label(vad: ServerVad | AzureSemanticVad) -> str:
    text = f"{vad.type} thr={vad.threshold:g} pad={vad.prefix_padding_ms} sil={vad.silence_duration_ms}"
    if isinstance(vad, AzureSemanticVad) and vad.speech_duration_ms is not NOT_GIVEN:
        text += f" speech={vad.speech_duration_ms}"
    if isinstance(vad.end_of_utterance, EndOfUtterance):
        text += f" {vad.end_of_utterance.label}"
    return text


_COMMON_VAD_KEYS: Final = (
    "type",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "end_of_utterance_detection",
    "interrupt_response",
    "auto_truncate",
    "create_response",
)
_SEMANTIC_ONLY_KEYS: Final = ("speech_duration_ms", "remove_filler_words", "languages")


def turn_detection_from_wire(data: Mapping[str, Any] | None) -> ServerVad | AzureSemanticVad | None:
    """Build a turn-detection object from its wire form (``None`` stays ``None``: manual turns).

    Keys the service omitted take the defaults of :class:`ServerVad` / :class:`AzureSemanticVad`.

    Args:
        data: A ``turn_detection`` wire object such as ``{"type": "server_vad", "threshold": 0.6}``.

    Returns:
        A :class:`ServerVad`, an :class:`AzureSemanticVad`, or ``None``.

    Raises:
        ConfigError: Unknown type or keys (send those through ``SessionSettings.extra``), or bad values.
    """
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ConfigError(f"turn_detection must be a mapping with a 'type' or None, got {data!r}.")
    kind = data.get("type")
    escape = (
        "To send it anyway, use SessionSettings(turn_detection=NOT_GIVEN, extra={'turn_detection': {...}})."
    )
    # Keys left out take the dataclass defaults; the EOU object's wire key differs from the field name.
    given = {"end_of_utterance" if k == "end_of_utterance_detection" else k: v for k, v in data.items()}
    given.pop("type", None)
    if kind == protocol_limits.SERVER_VAD:
        _known_keys(f"turn_detection type {kind!r}", data, _COMMON_VAD_KEYS, escape)
        return ServerVad(**given)
    variants = {wire_type: variant for variant, wire_type in _SEMANTIC_TYPES.items()}
    if kind in variants:
        _known_keys(f"turn_detection type {kind!r}", data, _COMMON_VAD_KEYS + _SEMANTIC_ONLY_KEYS, escape)
        return AzureSemanticVad(variant=variants[kind], **given)
    known = ", ".join(repr(t) for t in (protocol_limits.SERVER_VAD, *variants))
    raise ConfigError(f"turn_detection.type must be one of {known}, got {kind!r}. {escape}")
