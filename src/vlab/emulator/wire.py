"""JSON framing of the Voice Live wire protocol for the emulator: ids, parsing, error events.

A client frame that is not a JSON object with a string ``type`` becomes a :class:`WireError`, which
the connection answers with an ``error`` event without closing the socket. So does a frame that is not
strict JSON (``NaN``, ``Infinity``, or a number too large for a float) or that nests objects and arrays
deeper than :data:`~vlab.protocol_limits.MAX_JSON_DEPTH`: nothing of it is used or stored.

Audio appends, nearly every frame a client sends, are parsed with ``orjson`` (about 3× faster than the
standard decoder on a 20 ms append); every other frame, and any frame ``orjson`` refuses, goes through the
standard decoder, so their values and errors are exactly the standard library's.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from vlab import protocol
from vlab.protocol_limits import MAX_JSON_DEPTH


@dataclass(slots=True)
class WireError(Exception):
    """A client event the emulator refuses; becomes a protocol ``error`` event."""

    code: str
    message: str
    param: str | None = None
    event_id: str | None = None
    type: str = "invalid_request_error"

    def to_event(self, event_id: str) -> dict[str, Any]:
        """The ``error`` server event for this failure."""
        return {
            "type": protocol.ERROR,
            "event_id": event_id,
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "event_id": self.event_id,
            },
        }


class Ids:
    """Service-shaped ids (``event_…``, ``item_…``, ``resp_…``), unique per emulator process."""

    _counter = itertools.count(1)
    _prefix = secrets.token_hex(3)

    @classmethod
    def new(cls, kind: str) -> str:
        """A fresh id such as ``item_a1b2c3000042``."""
        return f"{kind}_{cls._prefix}{next(cls._counter):06d}"


class _NotFinite(ValueError):
    """A number JSON cannot carry (``NaN``, ``Infinity``, or one that overflows a float)."""


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


_decode = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float).decode


def parse_client_frame(data: str | bytes) -> dict[str, Any]:
    """Decode one client frame into an event dict.

    Raises:
        WireError: Not UTF-8 JSON, not strict JSON (non-finite numbers), nested deeper than
            :data:`~vlab.protocol_limits.MAX_JSON_DEPTH`, not an object, or no string ``type``.
    """
    event = _append_event(data)
    if event is not None:
        return event
    too_deep = WireError(
        "invalid_value",
        f"The event nests objects and arrays more than {MAX_JSON_DEPTH} levels deep, the most accepted.",
    )
    try:
        event = _decode(data if isinstance(data, str) else data.decode("utf-8"))
    except _NotFinite as exc:
        raise WireError(
            "invalid_json",
            f"The message is not valid JSON: {exc} is not a finite number (JSON has no NaN or Infinity).",
        ) from None
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError("invalid_json", f"The message is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise WireError("invalid_event", "A client event must be a JSON object with a 'type' field.")
    event_id = event.get("event_id")
    if not isinstance(event_id, str):
        event_id = None
    if _brackets(data) > MAX_JSON_DEPTH and _depth(event) > MAX_JSON_DEPTH:
        too_deep.event_id = event_id
        raise too_deep
    etype = event.get("type")
    if not isinstance(etype, str):
        raise WireError("missing_required_parameter", "Missing required parameter: 'type'.", "type", event_id)
    return event


def _append_event(data: str | bytes) -> dict[str, Any] | None:
    """The event of a plain ``input_audio_buffer.append`` frame, parsed by ``orjson``; else None.

    Plain: only ``type``, ``audio`` and ``event_id``, all strings, which both decoders read alike
    (``orjson`` reads integers past 64 bits as floats, where the standard decoder keeps them exact).
    Anything else, and every frame ``orjson`` refuses (not JSON, ``NaN``, lone surrogates), returns None
    and takes the standard path, with its values and errors.
    """
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if (
        type(event) is dict
        and event.get("type") == protocol.CLIENT_APPEND
        and event.keys() <= _APPEND_FIELDS
        and all(type(value) is str for value in event.values())
    ):
        return event
    return None


_APPEND_FIELDS = frozenset({"type", "audio", "event_id"})


def _brackets(data: str | bytes) -> int:
    """Opening brackets in a frame: a bound on its nesting depth that costs no parsing."""
    if isinstance(data, str):
        return data.count("{") + data.count("[")
    return data.count(b"{") + data.count(b"[")


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in a decoded JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def dumps(event: dict[str, Any]) -> str:
    """Compact JSON text for a server event."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def require(event: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """Fetch a required field of a client event, checking its JSON type.

    Raises:
        WireError: Missing (``missing_required_parameter``) or wrong type (``invalid_type``).
    """
    if name not in event or event[name] is None:
        raise WireError(
            "missing_required_parameter",
            f"Missing required parameter: '{name}'.",
            name,
            event.get("event_id"),
        )
    value = event[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # True is no int
        expected = " or ".join(k.__name__ for k in kinds)
        raise WireError(
            "invalid_type",
            f"Invalid type for '{name}': expected {expected}, got {type(value).__name__}.",
            name,
            event.get("event_id"),
        )
    return value
