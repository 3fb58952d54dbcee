"""``SessionSettings``: everything vlab sends in ``session.update``, validated at construction."""

from __future__ import annotations

import copy
import dataclasses
import json
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vlab import protocol
from vlab.errors import ConfigError, refuse_unknown_fields
from vlab.settings._base import (
    _EXTRA_FORBIDDEN,
    _MODALITIES,
    _NOT_GIVEN_JSON,
    _TEMPERATURE_RANGE,
    _TOOL_CHOICES,
    NOT_GIVEN,
    InputAudioFormat,
    NotGiven,
    _check_choice,
    _check_json,
    _check_real,
    _fail,
    _from_json,
    _known_keys,
    _put,
    _Replaceable,
    _set,
    _to_json,
)
from vlab.settings.parts import FunctionTool, McpServer, Tool, Transcription, tool_from_wire, voice_to_wire
from vlab.settings.turn_detection import AzureSemanticVad, ServerVad, turn_detection_from_wire

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


def _check_tools(value: Any) -> tuple[Tool, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _fail("SessionSettings", "tools", value, "a list of FunctionTool(...) or McpServer(...)")
    tools = tuple(t if isinstance(t, (FunctionTool, McpServer)) else tool_from_wire(t) for t in value)
    for kind, names in (
        ("function names", [t.name for t in tools if isinstance(t, FunctionTool)]),
        ("MCP server labels", [t.server_label for t in tools if isinstance(t, McpServer)]),
    ):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(
                f"SessionSettings.tools has duplicate {kind} {duplicates!r}; they must be unique."
            )
    return tools


@refuse_unknown_fields
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
    input_audio_sampling_rate: int = protocol.PCM16_SAMPLE_RATE_HZ
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
    tools: tuple[Tool, ...] = ()
    """Functions the model may call, and MCP servers whose tools it may call (:class:`McpServer`); always
    sent (``[]`` clears them). Defaults to ``()``."""
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
            if rate == protocol.PCM16_SAMPLE_RATE_HZ:  # the pcm16 default: G.711 is always 8 kHz
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
                "Choose one of these rates: vlab resamples prompts and microphones to it, and audio you "
                "append yourself must be at it.",
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
        names = [tool.name for tool in self.tools if isinstance(tool, FunctionTool)]
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
        as the string ``"NOT_GIVEN"``. An MCP server's ``authorization`` and header values (in ``tools``, or
        in ``extra``'s) appear as ``"<redacted>"``: a run folder never holds them, so settings rebuilt from it need them given again.
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
            "tools": [
                tool.to_dict() if isinstance(tool, McpServer) else tool.to_wire() for tool in self.tools
            ],
            "tool_choice": _to_json(self.tool_choice),
            "temperature": _to_json(self.temperature),
            "extra": copy.deepcopy(protocol.redact_mcp_secrets(self.extra) or dict(self.extra)),
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
    def turn_hold_ms(self) -> float | None:
        """The longest the turn detection may hold a turn for more speech (its end-of-utterance wait), ms.

        None when it holds none: manual turns, or ``server_vad`` without end-of-utterance detection
        (:func:`vlab.protocol_limits.eou_timeout_ms` of :meth:`to_wire`'s ``turn_detection``).
        """
        from vlab.protocol_limits import eou_timeout_ms

        return eou_timeout_ms(self.to_wire().get("turn_detection"))

    @property
    def input_sample_rate(self) -> int:
        """Sample rate of the audio vlab sends, in Hz (8000 for G.711)."""
        return self.input_bytes_per_s // protocol.bytes_per_sample(self.input_audio_format)

    @property
    def output_sample_rate(self) -> int:
        """Sample rate of the audio the service sends, in Hz."""
        return protocol.OUTPUT_FORMAT_RATES[self.output_audio_format]


def require_settings(settings: object, call: str) -> None:
    """Raise :class:`ConfigError` unless ``settings``, given to ``call``, is a :class:`SessionSettings`."""
    if not isinstance(settings, SessionSettings):
        raise ConfigError(
            f"settings must be a SessionSettings, e.g. {call}(SessionSettings(voice=...)), got "
            f"{type(settings).__name__}"
            + (
                ": pass the mapping's keys to it, SessionSettings(**...)"
                if isinstance(settings, Mapping)
                else ""
            )
        )
