"""Session settings: typed, validated values that become the ``session`` object of ``session.update``.

Everything here is plain data (frozen dataclasses) with a ``to_wire()`` method that returns the exact
JSON the service expects (``docs/protocol.md#session-fields``). Nothing here imports the Azure SDK.

Two "empty" values are kept apart on purpose:

* :data:`NOT_GIVEN` means *leave the service default*: the key is left out of the wire object.
* ``None`` is sent as JSON ``null``: for ``turn_detection`` it switches server turn detection off
  (manual turns), for ``transcription`` it switches input transcription off.

Example::

    settings = SessionSettings(
        voice="en-US-AvaNeural",
        turn_detection=AzureSemanticVad(variant="en", silence_duration_ms=300),
    )
    settings.to_wire()["turn_detection"]["type"]  # 'azure_semantic_vad_en'
    sweep = [settings.replace(turn_detection=ServerVad(threshold=t)) for t in (0.3, 0.5, 0.7)]
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, get_args

from vlab import protocol, protocol_limits
from vlab.errors import ConfigError
from vlab.protocol_limits import DURATION_MS_BOUNDS, THRESHOLD_BOUNDS

__all__ = [
    "MAX_DURATION_MS",
    "NOT_GIVEN",
    "OPENAI_VOICES",
    "AzureSemanticVad",
    "EndOfUtterance",
    "FunctionTool",
    "NotGiven",
    "ServerVad",
    "SessionSettings",
    "Transcription",
    "TurnDetection",
    "turn_detection_from_wire",
    "voice_to_wire",
]


# --- the NOT_GIVEN sentinel ------------------------------------------------------------------------


class NotGiven:
    """Type of :data:`NOT_GIVEN`: "leave the service default" (the key is omitted from the wire).

    There is exactly one instance. It is falsy, and survives ``copy``, ``deepcopy`` and ``pickle``
    as the same object, so ``value is NOT_GIVEN`` is always the right test.
    """

    __slots__ = ()
    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        """Return the single instance."""
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()
"""Leave this setting at the service default: the key is not sent at all (unlike ``None``, sent as null)."""

_NOT_GIVEN_JSON: Final = "NOT_GIVEN"
"""How :data:`NOT_GIVEN` is spelled in :meth:`SessionSettings.to_dict` output."""

MAX_DURATION_MS: Final = protocol_limits.MAX_DURATION_MS
"""Largest accepted value of any ``*_ms`` setting, in milliseconds (see :mod:`vlab.protocol_limits`)."""

OPENAI_VOICES: Final = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
"""Voice names sent as ``{"type": "openai", "name": ...}``."""

EouModel = Literal["semantic_detection_v1", "semantic_detection_v1_en", "semantic_detection_v1_multilingual"]
EouThresholdLevel = Literal["low", "medium", "high", "default"]
SemanticVariant = Literal["default", "en", "multilingual"]
InputAudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]

_EOU_MODELS: Final = protocol_limits.EOU_MODELS
_EOU_LEVELS: Final = protocol_limits.EOU_THRESHOLD_LEVELS
_SEMANTIC_VARIANTS: Final[tuple[SemanticVariant, ...]] = get_args(SemanticVariant)
_SEMANTIC_TYPES: Final[dict[SemanticVariant, str]] = dict(
    zip(_SEMANTIC_VARIANTS, protocol_limits.AZURE_SEMANTIC_VAD_TYPES, strict=True)
)
_SERVER_DEFAULTS: Final = protocol_limits.turn_detection_defaults(
    protocol_limits.SERVER_VAD, protocol_limits.VLAB_DEFAULTS_API_VERSION
)
"""What ``ServerVad()`` sends: the documented server-VAD defaults of the first GA api-version."""
_SEMANTIC_DEFAULTS: Final = protocol_limits.turn_detection_defaults(
    _SEMANTIC_TYPES["default"], protocol_limits.VLAB_DEFAULTS_API_VERSION
)
"""What ``AzureSemanticVad()`` sends (its ``NOT_GIVEN`` fields take the service defaults)."""
_MODALITIES: Final = (("text", "audio"), ("text",))
_TOOL_CHOICES: Final = ("auto", "none", "required")
_TOOL_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOCALE_PREFIX_RE: Final = re.compile(r"^[A-Za-z]{2,3}-[A-Za-z]{2,4}-\S")
_TEMPERATURE_RANGE: Final = (0.0, 1.2)
_THRESHOLD: Final = (THRESHOLD_BOUNDS.lo, THRESHOLD_BOUNDS.hi)
_EXTRA_FORBIDDEN: Final = {
    "model": "pass model=... (it goes in the connection URL)",
    "input_audio_format": "use the input_audio_format field",
    "input_audio_sampling_rate": "use the input_audio_sampling_rate field",
    "output_audio_format": "use the output_audio_format field",
}


# --- validation helpers ----------------------------------------------------------------------------


def _fail(owner: str, name: str, value: Any, expected: str, fix: str = "") -> ConfigError:
    hint = f" {fix}" if fix else ""
    return ConfigError(f"{owner}.{name} must be {expected}, got {value!r}.{hint}")


def _check_ms(owner: str, name: str, value: Any) -> int:
    """Validate a duration in milliseconds: an int within :data:`~vlab.protocol_limits.DURATION_MS_BOUNDS`."""
    expected = f"an integer number of milliseconds in {DURATION_MS_BOUNDS}"
    if isinstance(value, bool):
        raise _fail(owner, name, value, expected)
    if isinstance(value, float) and value.is_integer():
        value_int = int(value)
    else:
        try:
            value_int = operator.index(value)
        except TypeError:
            raise _fail(owner, name, value, expected) from None
    if value_int not in DURATION_MS_BOUNDS:
        raise _fail(owner, name, value, expected)
    return value_int


def _check_real(owner: str, name: str, value: Any, low: float, high: float) -> float:
    """Validate a finite real number in [low, high]."""
    expected = f"a number in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(owner, name, value, expected)
    result = float(value)
    if not (math.isfinite(result) and low <= result <= high):
        raise _fail(owner, name, value, expected)
    return result


def _check_optional_bool(owner: str, name: str, value: object) -> bool | NotGiven:
    if value is NOT_GIVEN:
        return NOT_GIVEN
    if not isinstance(value, bool):
        raise _fail(owner, name, value, "True, False or NOT_GIVEN")
    return value


def _check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise _fail(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def _check_str_tuple(owner: str, name: str, value: Any, example: str) -> tuple[str, ...]:
    """Turn a list/tuple of non-empty strings into a tuple (a bare string is refused)."""
    expected = f"a list of non-empty strings such as {example}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _fail(owner, name, value, expected)
    items = tuple(value)
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise _fail(owner, name, value, expected)
    return items


_J = TypeVar("_J")


def _check_json(owner: str, name: str, value: _J) -> _J:
    """Deep-copy a JSON-serialisable value (so later edits by the caller cannot change the settings)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}.{name} must be JSON-serialisable, got {value!r} ({exc}).") from None
    return copy.deepcopy(value)


def _set(obj: object, name: str, value: Any) -> None:
    """Assign a normalised value to a field of a frozen dataclass from ``__post_init__``."""
    object.__setattr__(obj, name, value)


def _put(wire: dict[str, Any], key: str, value: Any) -> None:
    """Add ``key`` to a wire object unless the value is NOT_GIVEN."""
    if value is not NOT_GIVEN:
        wire[key] = list(value) if isinstance(value, tuple) else value


def _from_json(value: Any) -> Any:
    """Map the ``"NOT_GIVEN"`` string of :meth:`SessionSettings.to_dict` back to the sentinel."""
    return NOT_GIVEN if value == _NOT_GIVEN_JSON else value


def _to_json(value: Any) -> Any:
    if value is NOT_GIVEN:
        return _NOT_GIVEN_JSON
    if isinstance(value, tuple):
        return list(value)
    return copy.deepcopy(value)


def _known_keys(kind: str, data: Mapping[str, Any], allowed: Iterable[str], fix: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{kind} has no setting(s) {', '.join(map(repr, unknown))}. {fix}")


_C = TypeVar("_C", bound="_Replaceable")


class _Replaceable:
    """Mixin: ``replace(**changes)`` for frozen dataclasses (the copy is validated again)."""

    __slots__ = ()

    def replace(self: _C, **changes: Any) -> _C:
        """Return a copy with some fields changed; the copy is validated like a new object.

        Args:
            **changes: Field names and their new values.

        Returns:
            The new, validated object.

        Raises:
            ConfigError: A new value is invalid.
            TypeError: A name is not a field.
        """
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


# --- turn detection --------------------------------------------------------------------------------


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


def _check_response_flags(owner: str, obj: Any) -> None:
    for name in ("interrupt_response", "auto_truncate", "create_response"):
        _check_optional_bool(owner, name, getattr(obj, name))
    if obj.auto_truncate is True and obj.interrupt_response is False:
        raise ConfigError(
            f"{owner}.auto_truncate=True needs interrupt_response, got interrupt_response=False. "
            "Set interrupt_response=True (or leave it NOT_GIVEN) or drop auto_truncate."
        )


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
        if isinstance(self.end_of_utterance, EndOfUtterance):
            wire["end_of_utterance_detection"] = self.end_of_utterance.to_wire()
        _put(wire, "interrupt_response", self.interrupt_response)
        _put(wire, "auto_truncate", self.auto_truncate)
        _put(wire, "create_response", self.create_response)
        return wire

    @property
    def label(self) -> str:
        """Short text for charts, e.g. ``server_vad thr=0.5 pad=300 sil=500``."""
        return _label(self)


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
        if isinstance(self.end_of_utterance, EndOfUtterance):
            wire["end_of_utterance_detection"] = self.end_of_utterance.to_wire()
        _put(wire, "interrupt_response", self.interrupt_response)
        _put(wire, "auto_truncate", self.auto_truncate)
        _put(wire, "create_response", self.create_response)
        return wire

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


# --- transcription and tools -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcription(_Replaceable):
    """Input audio transcription (wire key ``input_audio_transcription``)."""

    model: str = "azure-speech"
    """Transcription model: ``azure-speech``, ``mai-transcribe``, ``mai-transcribe-2``, or for
    gpt-realtime(-mini) ``whisper-1``, ``gpt-4o-transcribe``, ``gpt-4o-mini-transcribe``,
    ``gpt-4o-transcribe-diarize``. Defaults to ``"azure-speech"``."""
    language: str | NotGiven = NOT_GIVEN
    """BCP-47 (``en-US``), ISO-639-1 (``en``) or a comma list for auto-detection (``en,zh``).
    Defaults to NOT_GIVEN (service default)."""
    phrase_list: tuple[str, ...] | NotGiven = NOT_GIVEN
    """Phrases that bias recognition (``azure-speech``); a list is converted to a tuple. Defaults to NOT_GIVEN."""

    def __post_init__(self) -> None:
        owner = "Transcription"
        if not isinstance(self.model, str) or not self.model.strip():
            raise _fail(owner, "model", self.model, "a non-empty model name such as 'azure-speech'")
        if self.language is not NOT_GIVEN and (
            not isinstance(self.language, str) or not self.language.strip()
        ):
            raise _fail(owner, "language", self.language, "a language code such as 'en-US' or NOT_GIVEN")
        if self.phrase_list is not NOT_GIVEN:
            _set(self, "phrase_list", _check_str_tuple(owner, "phrase_list", self.phrase_list, "['Contoso']"))

    def to_wire(self) -> dict[str, Any]:
        """The ``input_audio_transcription`` object, without NOT_GIVEN fields."""
        wire: dict[str, Any] = {"model": self.model}
        _put(wire, "language", self.language)
        _put(wire, "phrase_list", self.phrase_list)
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Transcription:
        """Build from an ``input_audio_transcription`` wire object.

        Raises:
            ConfigError: Unknown keys (send those through ``SessionSettings.extra``) or bad values.
        """
        _known_keys(
            "input_audio_transcription",
            data,
            ("model", "language", "phrase_list"),
            "Use SessionSettings(extra={'input_audio_transcription': {...}}) for other keys.",
        )
        return cls(
            model=data.get("model", "azure-speech"),
            language=data.get("language", NOT_GIVEN),
            phrase_list=data.get("phrase_list", NOT_GIVEN),
        )


def _default_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class FunctionTool(_Replaceable):
    """A function the model may call (wire ``{"type": "function", ...}``)."""

    name: str
    """Function name: 1-64 letters, digits, ``_`` or ``-``. Required."""
    description: str = ""
    """What the function does and when to call it. Defaults to ``""``."""
    parameters: Mapping[str, Any] = field(default_factory=_default_parameters)
    """JSON Schema of the arguments object. Defaults to ``{"type": "object", "properties": {}}``."""

    def __post_init__(self) -> None:
        owner = "FunctionTool"
        if not isinstance(self.name, str) or not _TOOL_NAME_RE.match(self.name):
            raise _fail(owner, "name", self.name, "1-64 letters, digits, '_' or '-' (e.g. 'get_weather')")
        if not isinstance(self.description, str):
            raise _fail(owner, "description", self.description, "a string")
        if not isinstance(self.parameters, Mapping):
            raise _fail(
                owner, "parameters", self.parameters, "a JSON Schema mapping such as {'type': 'object'}"
            )
        _set(self, "parameters", _check_json(owner, "parameters", dict(self.parameters)))

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_wire(), sort_keys=True))

    def to_wire(self) -> dict[str, Any]:
        """The tool object for the session's ``tools`` list."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(dict(self.parameters)),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> FunctionTool:
        """Build from a ``{"type": "function", ...}`` wire object.

        Raises:
            ConfigError: Not a function tool, or bad values.
        """
        if not isinstance(data, Mapping) or data.get("type", "function") != "function":
            raise ConfigError(
                f"tools entries must be FunctionTool(...) or {{'type': 'function', ...}} mappings, got {data!r}. "
                "Send other tool types through SessionSettings(extra={'tools': [...]})."
            )
        _known_keys("function tool", data, ("type", "name", "description", "parameters"), "")
        return cls(
            name=data.get("name"),  # type: ignore[arg-type]
            description=data.get("description", ""),
            parameters=data.get("parameters", _default_parameters()),
        )


# --- voices ----------------------------------------------------------------------------------------


def voice_to_wire(voice: str | Mapping[str, Any]) -> dict[str, Any]:
    """The wire ``voice`` object for a voice name or a raw mapping.

    Rules: an OpenAI name (``alloy``, ``ash``, ``ballad``, ``coral``, ``echo``, ``sage``, ``shimmer``,
    ``verse``, ``marin``, ``cedar``; any case) → ``{"type": "openai", "name": ...}``; a name with a
    locale prefix or containing ``Neural`` (``en-US-AvaNeural``, ``en-US-Ava:DragonHDLatestNeural``)
    → ``{"type": "azure-standard", "name": ...}``; a mapping is copied through unchanged (custom,
    personal or realtime-native voices, or extra Azure voice options).

    Args:
        voice: A voice name or a wire mapping.

    Returns:
        A new dict for the session's ``voice`` key.

    Raises:
        ConfigError: The name matches no rule, or the mapping has no ``type``.
    """
    if isinstance(voice, Mapping):
        if not isinstance(voice.get("type"), str):
            raise ConfigError(
                f"voice mapping needs a 'type' such as 'azure-standard' or 'openai', got {dict(voice)!r}."
            )
        return _check_json("SessionSettings", "voice", dict(voice))
    if isinstance(voice, str):
        name = voice.strip()
        if name.lower() in OPENAI_VOICES:
            return {"type": "openai", "name": name.lower()}
        if "Neural" in name or _LOCALE_PREFIX_RE.match(name):
            return {"type": "azure-standard", "name": name}
    raise ConfigError(
        f"voice must be an OpenAI voice ({', '.join(OPENAI_VOICES)}), an Azure voice name such as "
        f"'en-US-AvaNeural', or a mapping such as {{'type': 'azure-custom', 'name': ..., 'endpoint_id': ...}}; "
        f"got {voice!r}."
    )


# --- session settings ------------------------------------------------------------------------------


def _check_turn_detection(value: Any) -> ServerVad | AzureSemanticVad | None | NotGiven:
    if value is None or value is NOT_GIVEN or isinstance(value, (ServerVad, AzureSemanticVad)):
        return value
    if isinstance(value, Mapping):
        return turn_detection_from_wire(value)
    raise ConfigError(
        f"SessionSettings.turn_detection must be ServerVad(...), AzureSemanticVad(...), None (manual "
        f"turns) or NOT_GIVEN (service default), got {value!r}."
    )


def _check_transcription(value: Any) -> Transcription | None | NotGiven:
    if value is None or value is NOT_GIVEN or isinstance(value, Transcription):
        return value
    if isinstance(value, str):
        return Transcription(model=value)
    if isinstance(value, Mapping):
        return Transcription.from_wire(value)
    raise ConfigError(
        f"SessionSettings.transcription must be Transcription(...), a model name such as 'azure-speech', "
        f"None (off) or NOT_GIVEN, got {value!r}."
    )


def _check_tools(value: Any) -> tuple[FunctionTool, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _fail("SessionSettings", "tools", value, "a list of FunctionTool(...)")
    tools = tuple(t if isinstance(t, FunctionTool) else FunctionTool.from_wire(t) for t in value)
    names = [t.name for t in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"SessionSettings.tools has duplicate function names {duplicates!r}; names must be unique."
        )
    return tools


@dataclass(frozen=True, slots=True)
class SessionSettings(_Replaceable):
    """Everything vlab sends in ``session.update``, plus the model (which goes in the connection URL).

    Fields left NOT_GIVEN are not sent, so the service keeps its default. Invalid values raise
    :class:`~vlab.errors.ConfigError` at construction (and in :meth:`replace`).
    """

    model: str = protocol.DEFAULT_MODEL
    """Model name, sent as the ``model`` URL query parameter (not in the session body). Defaults to
    ``"gpt-realtime"``."""
    instructions: str | NotGiven = NOT_GIVEN
    """System prompt (``""`` clears it). Defaults to NOT_GIVEN (service default)."""
    voice: str | Mapping[str, Any] | NotGiven = NOT_GIVEN
    """Voice name (see :func:`voice_to_wire`) or raw voice mapping. Defaults to NOT_GIVEN (service default)."""
    modalities: tuple[str, ...] | NotGiven = NOT_GIVEN
    """``("text", "audio")`` or ``("text",)`` (text only); a list is converted to a tuple. Defaults to
    NOT_GIVEN (service: text and audio)."""
    input_audio_format: InputAudioFormat = "pcm16"
    """Format of the audio vlab sends: ``pcm16``, ``g711_ulaw`` or ``g711_alaw``. Defaults to ``"pcm16"``."""
    input_audio_sampling_rate: int = 24000
    """Sample rate of the audio vlab sends, in Hz: 8000, 16000, 24000, 44100 or 48000 for pcm16,
    8000 for G.711 (the default 24000 becomes 8000 automatically with a G.711 format). Defaults to 24000."""
    output_audio_format: str = "pcm16"
    """Format of the audio the service sends: ``pcm16`` (24 kHz), ``pcm16_8000hz``, ``pcm16_16000hz``,
    ``pcm16_22050hz``, ``pcm16_24000hz``, ``pcm16_44100hz``, ``pcm16_48000hz``, ``g711_ulaw``,
    ``g711_alaw``. Defaults to ``"pcm16"``."""
    turn_detection: ServerVad | AzureSemanticVad | None | NotGiven = ServerVad()
    """Turn detection; ``None`` sends ``null`` (manual turns: vlab commits and asks for responses).
    A wire mapping is converted. Defaults to ``ServerVad()`` (0.5 / 300 ms / 500 ms)."""
    transcription: Transcription | None | NotGiven = NOT_GIVEN
    """Input audio transcription; ``None`` sends ``null`` (off); a model name is converted to
    ``Transcription(model=...)``. Defaults to NOT_GIVEN (service default: off)."""
    tools: tuple[FunctionTool, ...] = ()
    """Functions the model may call; always sent (``[]`` clears them). Defaults to ``()``."""
    tool_choice: str | NotGiven = NOT_GIVEN
    """``"auto"``, ``"none"``, ``"required"`` or the name of one of ``tools`` (sent as
    ``{"type": "function", "name": ...}``). Defaults to NOT_GIVEN (service: auto)."""
    temperature: float | NotGiven = NOT_GIVEN
    """Sampling temperature, 0.0-1.2 (docs say 0.6-1.2 and default 0.8; the SDK says 0.0-1.0 and 0.7).
    Defaults to NOT_GIVEN (service default)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Raw session keys merged into the wire object last (the escape hatch for settings vlab does not
    model, e.g. ``{"input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"}}``). Must be
    JSON-serialisable; may not set ``model`` or the audio formats/rate. Defaults to ``{}``."""

    def __post_init__(self) -> None:
        owner = "SessionSettings"
        if not isinstance(self.model, str) or not self.model.strip():
            raise _fail(owner, "model", self.model, "a non-empty model name such as 'gpt-realtime'")
        if self.instructions is not NOT_GIVEN and not isinstance(self.instructions, str):
            raise _fail(owner, "instructions", self.instructions, "a string or NOT_GIVEN")
        if not isinstance(self.voice, NotGiven):
            voice_to_wire(self.voice)  # validates
            if isinstance(self.voice, Mapping):
                _set(self, "voice", _check_json(owner, "voice", dict(self.voice)))
        self._check_modalities()
        self._check_audio()
        _set(self, "turn_detection", _check_turn_detection(self.turn_detection))
        _set(self, "transcription", _check_transcription(self.transcription))
        _set(self, "tools", _check_tools(self.tools))
        self._check_extra()
        self._check_tool_choice()
        if self.temperature is not NOT_GIVEN:
            _set(
                self, "temperature", _check_real(owner, "temperature", self.temperature, *_TEMPERATURE_RANGE)
            )

    def _check_modalities(self) -> None:
        if self.modalities is NOT_GIVEN:
            return
        expected = "['text', 'audio'] or ['text'] (avatar sessions: use extra={'modalities': [...]})"
        if isinstance(self.modalities, (str, bytes)) or not isinstance(self.modalities, Iterable):
            raise _fail("SessionSettings", "modalities", self.modalities, expected)
        given = tuple(self.modalities)
        for allowed in _MODALITIES:
            if sorted(given) == sorted(allowed) and len(set(given)) == len(given):
                _set(self, "modalities", allowed)
                return
        raise _fail("SessionSettings", "modalities", self.modalities, expected)

    def _check_audio(self) -> None:
        owner = "SessionSettings"
        _check_choice(owner, "input_audio_format", self.input_audio_format, protocol.INPUT_FORMATS)
        rate = self.input_audio_sampling_rate
        if isinstance(rate, bool):
            raise _fail(owner, "input_audio_sampling_rate", rate, "an integer rate in Hz")
        try:
            rate = operator.index(rate)
        except TypeError:
            raise _fail(owner, "input_audio_sampling_rate", rate, "an integer rate in Hz") from None
        if self.input_audio_format.startswith("g711"):
            if rate == 24000:  # the pcm16 default: G.711 is always 8 kHz
                rate = protocol.G711_SAMPLE_RATE_HZ
            if rate != protocol.G711_SAMPLE_RATE_HZ:
                raise _fail(
                    owner,
                    "input_audio_sampling_rate",
                    self.input_audio_sampling_rate,
                    f"{protocol.G711_SAMPLE_RATE_HZ} with input_audio_format={self.input_audio_format!r}",
                )
        elif rate not in protocol.INPUT_SAMPLING_RATES:
            raise _fail(
                owner,
                "input_audio_sampling_rate",
                self.input_audio_sampling_rate,
                "one of " + ", ".join(map(str, protocol.INPUT_SAMPLING_RATES)) + " (Hz) for pcm16",
                "Resample the audio to one of these rates.",
            )
        _set(self, "input_audio_sampling_rate", rate)
        _check_choice(owner, "output_audio_format", self.output_audio_format, protocol.OUTPUT_FORMAT_RATES)

    def _check_extra(self) -> None:
        owner = "SessionSettings"
        if not isinstance(self.extra, Mapping) or not all(isinstance(k, str) for k in self.extra):
            raise _fail(owner, "extra", self.extra, "a mapping with string keys")
        for key, fix in _EXTRA_FORBIDDEN.items():
            if key in self.extra:
                raise ConfigError(
                    f"SessionSettings.extra may not set {key!r} (got {self.extra[key]!r}); {fix}."
                )
        _set(self, "extra", _check_json(owner, "extra", dict(self.extra)))

    def _check_tool_choice(self) -> None:
        choice = self.tool_choice
        if choice is NOT_GIVEN:
            return
        names = [tool.name for tool in self.tools]
        expected = "one of " + ", ".join(repr(c) for c in (*_TOOL_CHOICES, *names))
        if not isinstance(choice, str) or (choice not in _TOOL_CHOICES and choice not in names):
            raise _fail(
                "SessionSettings", "tool_choice", choice, expected, "A function name must be one of tools."
            )
        if choice == "required" and not self.tools and "tools" not in self.extra:
            raise ConfigError(
                "SessionSettings.tool_choice='required' needs at least one tool; add tools=[...]."
            )

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    # --- wire ---

    def to_wire(self) -> dict[str, Any]:
        """The ``session`` object of a ``session.update`` event.

        Always contains the audio formats and input rate and the ``tools`` list; ``turn_detection``
        and ``input_audio_transcription`` are ``null`` when set to ``None``; NOT_GIVEN fields are
        left out; ``extra`` is merged last. ``model`` is not included (it belongs in the URL).

        Returns:
            A new JSON-serialisable dict.
        """
        wire: dict[str, Any] = {}
        _put(wire, "modalities", self.modalities)
        _put(wire, "instructions", self.instructions)
        if not isinstance(self.voice, NotGiven):
            wire["voice"] = voice_to_wire(self.voice)
        wire["input_audio_format"] = self.input_audio_format
        wire["input_audio_sampling_rate"] = self.input_audio_sampling_rate
        wire["output_audio_format"] = self.output_audio_format
        if self.turn_detection is None or isinstance(self.turn_detection, (ServerVad, AzureSemanticVad)):
            wire["turn_detection"] = None if self.turn_detection is None else self.turn_detection.to_wire()
        if self.transcription is None or isinstance(self.transcription, Transcription):
            wire["input_audio_transcription"] = (
                None if self.transcription is None else self.transcription.to_wire()
            )
        wire["tools"] = [tool.to_wire() for tool in self.tools]
        if isinstance(self.tool_choice, str):
            choice = self.tool_choice
            wire["tool_choice"] = choice if choice in _TOOL_CHOICES else {"type": "function", "name": choice}
        _put(wire, "temperature", self.temperature)
        wire.update(copy.deepcopy(dict(self.extra)))
        return wire

    # --- persistence ---

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict for ``session.json`` and sweep tables (inverse of :meth:`from_dict`).

        Turn detection and transcription appear as their wire objects or ``null``; NOT_GIVEN appears
        as the string ``"NOT_GIVEN"``.
        """

        def _nested(value: Any) -> Any:
            if value is NOT_GIVEN:
                return _NOT_GIVEN_JSON
            return None if value is None else value.to_wire()

        return {
            "model": self.model,
            "instructions": _to_json(self.instructions),
            "voice": _to_json(self.voice),
            "modalities": _to_json(self.modalities),
            "input_audio_format": self.input_audio_format,
            "input_audio_sampling_rate": self.input_audio_sampling_rate,
            "output_audio_format": self.output_audio_format,
            "turn_detection": _nested(self.turn_detection),
            "transcription": _nested(self.transcription),
            "tools": [tool.to_wire() for tool in self.tools],
            "tool_choice": _to_json(self.tool_choice),
            "temperature": _to_json(self.temperature),
            "extra": copy.deepcopy(dict(self.extra)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionSettings:
        """Rebuild settings from :meth:`to_dict` output (missing keys take their defaults).

        Raises:
            ConfigError: Unknown keys or invalid values.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        _known_keys("SessionSettings", data, names, f"Known settings: {', '.join(names)}.")
        kwargs: dict[str, Any] = {}
        for name in names:
            if name not in data:
                continue
            value = _from_json(data[name])
            if name == "turn_detection" and isinstance(value, Mapping):
                value = turn_detection_from_wire(value)
            elif name == "transcription" and isinstance(value, Mapping):
                value = Transcription.from_wire(value)
            kwargs[name] = value
        return cls(**kwargs)

    # --- derived values ---

    @property
    def input_bytes_per_s(self) -> int:
        """Byte rate of the audio vlab sends (e.g. 48 000 for pcm16 at 24 kHz)."""
        return protocol.bytes_per_second(self.input_audio_format, self.input_audio_sampling_rate)

    @property
    def output_bytes_per_s(self) -> int:
        """Byte rate of the audio the service sends (e.g. 48 000 for pcm16)."""
        return protocol.bytes_per_second(self.output_audio_format)

    @property
    def output_sample_rate(self) -> int:
        """Sample rate of the audio the service sends, in Hz."""
        return protocol.OUTPUT_FORMAT_RATES[self.output_audio_format]
