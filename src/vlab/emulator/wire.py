"""JSON framing of the Voice Live wire protocol for the emulator: ids, parsing, error events.

A client frame that is not a JSON object with a string ``type`` becomes a :class:`WireError`, which
the connection answers with an ``error`` event without closing the socket.
"""

from __future__ import annotations

import itertools
import json
import secrets
from dataclasses import dataclass
from typing import Any

from vlab import protocol


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


def parse_client_frame(data: str | bytes) -> dict[str, Any]:
    """Decode one client frame into an event dict.

    Raises:
        WireError: Not UTF-8 JSON, not an object, or no string ``type``.
    """
    try:
        event = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError("invalid_json", f"The message is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise WireError("invalid_event", "A client event must be a JSON object with a 'type' field.")
    event_id = event.get("event_id")
    if not isinstance(event_id, str):
        event_id = None
    etype = event.get("type")
    if not isinstance(etype, str):
        raise WireError("missing_required_parameter", "Missing required parameter: 'type'.", "type", event_id)
    return event


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
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise WireError(
            "invalid_type",
            f"Invalid type for '{name}': expected {expected}, got {type(value).__name__}.",
            name,
            event.get("event_id"),
        )
    return value
