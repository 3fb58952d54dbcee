"""Defaults and limits of Voice Live: turn detection, frame and buffer sizes, read by settings, session and emulator.

Sources (``docs/protocol.md``, Turn detection and Versions): the SDK's model classes have no defaults and no
bounds beyond "threshold 0.0 to 1.0"; the defaults below are the documented ones, which differ by
api-version (prefix padding 300 ms before 2026-04-10, then 400 ms for ``server_vad`` and 420 ms for the
azure semantic VADs). Neither the SDK nor the docs give an upper bound for the ``*_ms`` knobs:
:data:`MAX_DURATION_MS` is vlab's, and catches unit mistakes (seconds given where ms are meant) rather
than a service limit. Frame, buffer, nesting and timeout limits (``docs/protocol.md``, Limits): the SDK
drops a server frame over :data:`SDK_MAX_FRAME_BYTES`; the service takes up to
:data:`MAX_APPEND_AUDIO_BYTES` of audio in one append. The emulator's own bounds, where the service
documents none, are marked as vlab's. The G.711 sample rate lives with the audio formats, as
:data:`vlab.protocol.G711_SAMPLE_RATE_HZ`. Nothing here imports anything but :mod:`vlab.protocol`.

Example::

    defaults = turn_detection_defaults("azure_semantic_vad", "2026-07-15")
    defaults.prefix_padding_ms  # 420
    "silence_duration_ms" in TURN_DETECTION_BOUNDS and 700 in TURN_DETECTION_BOUNDS["silence_duration_ms"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from vlab import protocol

__all__ = [
    "AZURE_SEMANTIC_VAD_TYPES",
    "DURATION_MS_BOUNDS",
    "EOU_MODELS",
    "EOU_THRESHOLD_LEVELS",
    "EOU_TIMEOUT_MS",
    "FRAME_ENVELOPE_BYTES",
    "HANDSHAKE_TIMEOUT_S",
    "KEEPALIVE_TIMEOUT_S",
    "MAX_APPEND_AUDIO_BYTES",
    "MAX_CLIENT_FRAME_BYTES",
    "MAX_DURATION_MS",
    "MAX_INPUT_BUFFER_BYTES",
    "MAX_JSON_DEPTH",
    "MIN_SPEECH_MS",
    "NEW_PADDING_API_VERSION",
    "SDK_MAX_FRAME_BYTES",
    "SEMANTIC_VAD",
    "SERVER_VAD",
    "THRESHOLD_BOUNDS",
    "TURN_DETECTION_BOUNDS",
    "TURN_DETECTION_TYPES",
    "VLAB_DEFAULTS_API_VERSION",
    "Bounds",
    "TurnDetectionDefaults",
    "eou_timeout_ms",
    "turn_detection_defaults",
]


# --- frames, buffers, connections ----------------------------------------------------------------

SDK_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
"""The SDK's default frame size limit (aiohttp ``max_msg_size``), in bytes: a server frame of this size
or more makes the client close the connection. ``vlab.Session(max_frame_bytes=...)`` raises it; the emulator's
frames stay far below it (audio deltas are small)."""

MAX_APPEND_AUDIO_BYTES: Final = 15 * 1024 * 1024
"""Most audio one ``input_audio_buffer.append`` may carry, in bytes once decoded (the service's
documented limit: 15 MiB, about 5 min 27 s of 24 kHz pcm16). More is refused with an error event."""

FRAME_ENVELOPE_BYTES: Final = 64 * 1024
"""Room for the JSON around the largest append's base64 audio (``type``, ``event_id``), in bytes (vlab's)."""

MAX_CLIENT_FRAME_BYTES: Final = (MAX_APPEND_AUDIO_BYTES + 2) // 3 * 4 + FRAME_ENVELOPE_BYTES
"""Largest client frame the emulator reads, in bytes: the largest append as base64 (20 MiB) plus
:data:`FRAME_ENVELOPE_BYTES`. A larger frame closes the connection with code 1009 (message too big)."""

MAX_INPUT_BUFFER_BYTES: Final = 2 * MAX_APPEND_AUDIO_BYTES
"""Most uncommitted audio the emulator's input buffer holds, in bytes of PCM16 (vlab's: the service
documents no figure): two of the largest appends, about 10.9 min at 24 kHz (G.711 doubles in size as
PCM16, so its largest append fills it). Without turn detection nothing empties the buffer but a commit
or a clear, so an append that would take it past this is refused with an ``input_audio_buffer_full``
error; with turn detection the VAD keeps only the audio of the turn in progress."""

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of objects and arrays a client event may have (vlab's: the service documents none).
A deeper event is refused with an ``invalid_request_error`` before anything of it is used or stored."""

HANDSHAKE_TIMEOUT_S: Final = 10.0
"""Longest the emulator waits for an HTTP request's headers, the WebSocket upgrade's included, in seconds
(vlab's): the first request's from the moment the connection opens, a later one's on a kept-alive
connection from its first byte. A slower client is disconnected."""

KEEPALIVE_TIMEOUT_S: Final = 75.0
"""Longest the emulator keeps an idle HTTP connection open between two requests, in seconds (vlab's;
aiohttp's own default is an hour). A WebSocket session is never idle in this sense."""


# --- types ---------------------------------------------------------------------------------------

SERVER_VAD: Final = "server_vad"
"""Voice-activity turn detection (every model)."""

AZURE_SEMANTIC_VAD_TYPES: Final = (
    "azure_semantic_vad",
    "azure_semantic_vad_en",
    "azure_semantic_vad_multilingual",
)
"""Azure semantic VADs: default, English and multilingual variants (``speech_duration_ms``,
``remove_filler_words``, ``languages``)."""

SEMANTIC_VAD: Final = "semantic_vad"
"""OpenAI's semantic VAD (gpt-realtime models only; not in the SDK's enum, sent as a dict). The emulator
runs it as a server VAD with the ``server_vad`` numbers."""

TURN_DETECTION_TYPES: Final = (SERVER_VAD, *AZURE_SEMANTIC_VAD_TYPES, SEMANTIC_VAD)
"""Every ``turn_detection.type`` Voice Live accepts (``null`` switches turn detection off)."""


# --- bounds --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bounds:
    """A closed interval of accepted values; ``x in bounds`` tests it, ``str(bounds)`` is ``[lo, hi]``."""

    lo: float
    """Smallest accepted value."""
    hi: float
    """Largest accepted value."""

    def __contains__(self, value: object) -> bool:
        """Whether ``value`` is a number (not a bool) within the bounds."""
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.lo <= value <= self.hi

    def __str__(self) -> str:
        return f"[{self.lo}, {self.hi}]"


MAX_DURATION_MS: Final = 60_000
"""Largest accepted value of any turn-detection ``*_ms`` knob, in ms. The service documents no upper
bound; vlab refuses more than a minute as a probable unit mistake (settings used 10 000 before, the
emulator 60 000: the looser one is kept so vlab never refuses what the service may accept)."""

DURATION_MS_BOUNDS: Final = Bounds(0, MAX_DURATION_MS)
"""Accepted range of the ``*_ms`` knobs (``prefix_padding_ms``, ``silence_duration_ms``,
``speech_duration_ms``, the end-of-utterance ``timeout_ms``), in ms."""

THRESHOLD_BOUNDS: Final = Bounds(0.0, 1.0)
"""Accepted range of ``threshold`` (SDK and 2026-07-15 docs; the 2026-04-10 docs say [0.01, 1.0))."""

TURN_DETECTION_BOUNDS: Final[Mapping[str, Bounds]] = MappingProxyType(
    {
        "threshold": THRESHOLD_BOUNDS,
        "prefix_padding_ms": DURATION_MS_BOUNDS,
        "silence_duration_ms": DURATION_MS_BOUNDS,
        "speech_duration_ms": DURATION_MS_BOUNDS,
    }
)
"""Bounds of every numeric knob of a ``turn_detection`` object, by wire key (in this order)."""


# --- defaults ------------------------------------------------------------------------------------

NEW_PADDING_API_VERSION: Final = "2026-04-10"
"""First api-version documenting prefix padding 400 ms (``server_vad``) / 420 ms (azure semantic);
before it, and on undated versions such as ``v1``, every type defaults to 300 ms."""

VLAB_DEFAULTS_API_VERSION: Final = "2025-10-01"
"""The api-version whose documented ``server_vad`` defaults vlab's own settings, VAD and sweep baseline
use (0.5 / 300 ms / 500 ms). vlab sends these values explicitly, so a session behaves alike on every
api-version."""

MIN_SPEECH_MS: Final = 80
"""Shortest speech that starts a turn, in ms: the azure semantic VADs' ``speech_duration_ms`` default,
and their floor (smaller values are raised to it). vlab's VAD also uses it where the type has no
``speech_duration_ms`` (``server_vad``: the docs say 200 ms, but it is not a field of the SDK model)."""

EOU_TIMEOUT_MS: Final = 1000
"""Default end-of-utterance ``timeout_ms``: the longest wait for more speech after a pause judged
incomplete, in ms."""

EOU_MODELS: Final = (
    "semantic_detection_v1",
    "semantic_detection_v1_en",
    "semantic_detection_v1_multilingual",
)
"""``end_of_utterance_detection.model`` values (the first is the default)."""

EOU_THRESHOLD_LEVELS: Final = ("low", "medium", "high", "default")
"""``end_of_utterance_detection.threshold_level`` values (``default`` = ``medium``)."""

_LEGACY_PREFIX_PADDING_MS: Final = 300
_NEW_PREFIX_PADDING_MS: Final = {
    SERVER_VAD: 400,
    **dict.fromkeys(AZURE_SEMANTIC_VAD_TYPES, 420),
    SEMANTIC_VAD: 400,
}


@dataclass(frozen=True, slots=True)
class TurnDetectionDefaults:
    """Documented defaults of one turn-detection type at one api-version (None: not a field of the type)."""

    type: str
    """The wire ``type``."""
    prefix_padding_ms: int
    """Audio kept before the detected start of speech, in ms."""
    threshold: float = 0.5
    """Speech-probability threshold."""
    silence_duration_ms: int = 500
    """Silence that ends a turn, in ms."""
    speech_duration_ms: int | None = None
    """Shortest speech that starts a turn, in ms (azure semantic VADs only)."""
    remove_filler_words: bool | None = None
    """Ignore fillers while a response plays (azure semantic VADs only)."""
    create_response: bool = True
    """The end of a user turn starts a response."""
    interrupt_response: bool = True
    """User speech cancels a playing response."""
    auto_truncate: bool = False
    """The service truncates the interrupted assistant item."""

    def to_wire(self) -> dict[str, object]:
        """The complete ``turn_detection`` object, as the service echoes it (fields of the type only)."""
        wire: dict[str, object] = {
            "type": self.type,
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
            "auto_truncate": self.auto_truncate,
        }
        if self.speech_duration_ms is not None:
            wire["speech_duration_ms"] = self.speech_duration_ms
        if self.remove_filler_words is not None:
            wire["remove_filler_words"] = self.remove_filler_words
        return wire


def _has_new_padding(api_version: str) -> bool:
    return api_version[:4].isdigit() and api_version >= NEW_PADDING_API_VERSION


def turn_detection_defaults(
    vad_type: str, api_version: str = protocol.DEFAULT_API_VERSION
) -> TurnDetectionDefaults:
    """The documented defaults of a turn-detection type at an api-version.

    Args:
        vad_type: One of :data:`TURN_DETECTION_TYPES`.
        api_version: The ``api-version`` query parameter (default: the one SDK 1.3.1 sends).

    Returns:
        The defaults.

    Raises:
        KeyError: ``vad_type`` is not one of :data:`TURN_DETECTION_TYPES`.
    """
    new_padding = _NEW_PREFIX_PADDING_MS[vad_type]
    defaults = TurnDetectionDefaults(
        vad_type, new_padding if _has_new_padding(api_version) else _LEGACY_PREFIX_PADDING_MS
    )
    if vad_type in AZURE_SEMANTIC_VAD_TYPES:
        defaults = replace(defaults, speech_duration_ms=MIN_SPEECH_MS, remove_filler_words=False)
    return defaults


def eou_timeout_ms(turn_detection: Mapping[str, Any] | None) -> float | None:
    """The end-of-utterance wait of a turn detection, or None when it has no end-of-utterance detection.

    The azure semantic VADs and ``semantic_vad`` always have it; ``server_vad`` only with an
    ``end_of_utterance_detection`` object. Its ``timeout_ms`` defaults to
    :data:`EOU_TIMEOUT_MS`.

    Args:
        turn_detection: The session's ``turn_detection`` (``None``: manual turns).

    Returns:
        The wait in ms, or None.
    """
    if not turn_detection:
        return None
    eou = turn_detection.get("end_of_utterance_detection")
    vad_type = turn_detection.get("type")
    semantic = vad_type in AZURE_SEMANTIC_VAD_TYPES or vad_type == SEMANTIC_VAD
    if not semantic and not isinstance(eou, dict):
        return None
    timeout = eou.get("timeout_ms") if isinstance(eou, dict) else None
    return float(timeout) if isinstance(timeout, (int, float)) else float(EOU_TIMEOUT_MS)
