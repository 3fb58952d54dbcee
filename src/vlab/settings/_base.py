"""What every settings class shares: the NOT_GIVEN sentinel, validation helpers, protocol constants."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
import operator
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeVar, get_args

from vlab import protocol, protocol_limits
from vlab.errors import ConfigError
from vlab.protocol_limits import DURATION_MS_BOUNDS, THRESHOLD_BOUNDS

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
VOICE_EXAMPLES: Final = ("alloy", "echo", "shimmer", "en-US-AvaNeural", "en-US-AndrewNeural")
"""Voices the panels offer to pick from (any other name may be typed): OpenAI's and Azure's."""

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
_MODALITIES: Final = protocol.MODALITIES[:2]
"""The modalities ``SessionSettings`` takes: the protocol's without an avatar or animation, which vlab
does not drive (send those through ``extra``)."""
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
            ConfigError: A new value is invalid, or a name is not a field (the message names the one meant).
        """
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
