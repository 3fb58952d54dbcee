"""Input transcription, function tools and voices: the smaller parts of a session's settings."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vlab import protocol
from vlab.errors import ConfigError, refuse_unknown_fields
from vlab.settings._base import (
    _LOCALE_PREFIX_RE,
    _TOOL_NAME_RE,
    NOT_GIVEN,
    OPENAI_VOICES,
    NotGiven,
    _check_json,
    _check_str_tuple,
    _fail,
    _known_keys,
    _put,
    _Replaceable,
    _set,
)

# --- transcription and tools -----------------------------------------------------------------------


@refuse_unknown_fields
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


@refuse_unknown_fields
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
                f"tools entries must be FunctionTool(...), McpServer(...) or {{'type': 'function' or 'mcp', ...}} "
                f"mappings, got {data!r}. Send other tool types through SessionSettings(extra={{'tools': [...]}})."
            )
        _known_keys("function tool", data, ("type", "name", "description", "parameters"), "")
        return cls(
            name=data.get("name"),  # type: ignore[arg-type]
            description=data.get("description", ""),
            parameters=data.get("parameters", _default_parameters()),
        )


@refuse_unknown_fields
@dataclass(frozen=True, slots=True)
class McpServer(_Replaceable):
    """An MCP server whose tools the service lists and calls itself (wire ``{"type": "mcp", ...}``).

    The service calls the server over MCP's Streamable HTTP transport when the session starts (its tools
    arrive as ``mcp_list_tools`` events) and when the model calls one of its tools (``response.mcp_call``
    events); a call that needs approval first sends an ``mcp_approval_request`` item, which the client
    answers with an ``mcp_approval_response`` item. Needs api-version 2026-04-10 or later on the service.
    """

    server_label: str
    """Names the server in every item and event. Required."""
    server_url: str
    """Its Streamable HTTP endpoint (``https://…/mcp``). Required."""
    allowed_tools: tuple[str, ...] | None = None
    """Only these of its tools are offered to the model. Defaults to all."""
    require_approval: str | Mapping[str, tuple[str, ...]] = "always"
    """``"always"`` (default), ``"never"`` or ``{"never": [names], "always": [names]}``: a tool under
    ``never`` runs without asking, every other one waits for the client's approval."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """HTTP headers sent with every request to the server (never shown: they may hold secrets)."""
    authorization: str | None = field(default=None, repr=False)
    """A token sent as ``Authorization: Bearer …`` (never shown, logged or written to a run folder)."""

    def __post_init__(self) -> None:
        owner = "McpServer"
        if not isinstance(self.server_label, str) or not self.server_label.strip():
            raise _fail(owner, "server_label", self.server_label, "a non-empty string such as 'deepwiki'")
        if not isinstance(self.server_url, str) or not self.server_url.startswith(("http://", "https://")):
            raise _fail(owner, "server_url", self.server_url, "an http:// or https:// URL")
        if self.allowed_tools is not None:
            _set(
                self,
                "allowed_tools",
                _check_str_tuple(owner, "allowed_tools", self.allowed_tools, "['search']"),
            )
        approval = self.require_approval
        if isinstance(approval, Mapping) and set(approval) <= set(protocol.MCP_APPROVALS):
            approval = {
                k: _check_str_tuple(owner, f"require_approval[{k!r}]", v, "['search']")
                for k, v in approval.items()
            }
            _set(self, "require_approval", approval)
        elif approval not in protocol.MCP_APPROVALS:
            raise _fail(
                owner,
                "require_approval",
                approval,
                "'always', 'never' or {'never': [names], 'always': [names]}",
            )
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ConfigError(f"{owner}.headers must be a mapping of header names to strings.")
        _set(self, "headers", dict(self.headers))
        if self.authorization is not None and (
            not isinstance(self.authorization, str) or not self.authorization
        ):
            raise ConfigError(f"{owner}.authorization must be a non-empty token string or None.")

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_wire(), sort_keys=True))

    def offers(self, name: str) -> bool:
        """Whether the model may call the server's tool ``name`` (``allowed_tools``)."""
        return self.allowed_tools is None or name in self.allowed_tools

    def needs_approval(self, name: str) -> bool:
        """Whether a call of tool ``name`` waits for the client's ``mcp_approval_response``."""
        return protocol.mcp_needs_approval(self.require_approval, name)

    def to_wire(self) -> dict[str, Any]:
        """The tool object for the session's ``tools`` list, secrets included (for the wire only)."""
        wire: dict[str, Any] = {
            "type": "mcp",
            "server_label": self.server_label,
            "server_url": self.server_url,
        }
        if self.allowed_tools is not None:
            wire["allowed_tools"] = list(self.allowed_tools)
        approval = self.require_approval
        wire["require_approval"] = (
            {k: list(v) for k, v in approval.items()} if isinstance(approval, Mapping) else approval
        )
        if self.headers:
            wire["headers"] = dict(self.headers)
        if self.authorization is not None:
            wire["authorization"] = self.authorization
        return wire

    def to_dict(self) -> dict[str, Any]:
        """:meth:`to_wire` with ``authorization`` and header values replaced by ``"<redacted>"``."""
        return protocol.redact_mcp_tool(self.to_wire())

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> McpServer:
        """Build from a ``{"type": "mcp", ...}`` wire object.

        Raises:
            ConfigError: Not an MCP tool, or bad values (a token is never quoted).
        """
        if not isinstance(data, Mapping) or data.get("type") != "mcp":
            raise ConfigError("an MCP tool is a mapping with 'type': 'mcp'.")
        keys = (
            "type",
            "server_label",
            "server_url",
            "allowed_tools",
            "require_approval",
            "headers",
            "authorization",
        )
        _known_keys("mcp tool", data, keys, f"Known keys: {', '.join(keys[1:])}.")
        approval = data.get("require_approval")
        return cls(
            server_label=data.get("server_label"),  # type: ignore[arg-type]
            server_url=data.get("server_url"),  # type: ignore[arg-type]
            allowed_tools=data.get("allowed_tools"),
            require_approval="always" if approval is None else approval,
            headers=data.get("headers") or {},
            authorization=data.get("authorization"),
        )


Tool = FunctionTool | McpServer
"""An entry of :attr:`SessionSettings.tools <vlab.settings.SessionSettings.tools>`."""


def tool_from_wire(data: Mapping[str, Any]) -> Tool:
    """A function or MCP tool from its wire object.

    Raises:
        ConfigError: Another tool type, or bad values.
    """
    if isinstance(data, Mapping) and data.get("type") == "mcp":
        return McpServer.from_wire(data)
    return FunctionTool.from_wire(data)


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
