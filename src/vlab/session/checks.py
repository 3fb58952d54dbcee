"""What is wrong with a server event: each field against its JSON type in :data:`vlab.protocol.SERVER_EVENT_FIELDS`.

The session checks every server event before it reacts to it. A malformed one is logged (a
``vlab.protocol_warning`` record, see :data:`vlab.protocol.PROTOCOL_WARNING`) and not reacted to, so a
server that speaks the protocol badly can never stop the session. The check reads only the listed
fields: a well-formed ``response.audio.delta`` costs a few type tests and one pass over its base64 text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from vlab import protocol
from vlab.protocol import FieldType

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_COMMON: dict[str, FieldType] = {"event_id": "string", protocol.SIM_MS_KEY: "number"}


def _compile(fields: Mapping[str, FieldType]) -> tuple[tuple[str, tuple[str, ...], FieldType], ...]:
    return tuple((path, tuple(path.split(".")), kind) for path, kind in {**_COMMON, **fields}.items())


_SPECS = {etype: _compile(fields) for etype, fields in protocol.SERVER_EVENT_FIELDS.items()}
_UNKNOWN_TYPE_SPEC = _compile({})


def is_base64(value: str) -> bool:
    """Whether ``value`` is standard, padded base64 (without decoding it)."""
    n = len(value)
    return (
        n % 4 == 0
        and value.isascii()
        and not value.encode("ascii").translate(None, _B64_ALPHABET)
        and value.find("=", 0, max(0, n - 2)) < 0
        and not (n >= 2 and value[-2] == "=" and value[-1] != "=")
    )


def _type_problem(value: Any, kind: FieldType) -> str | None:
    """Why ``value`` is not of JSON type ``kind`` (None when it is)."""
    t = type(value)
    if kind == "string":
        ok = t is str
    elif kind == "object":
        ok = t is dict
    elif kind == "array":
        ok = t is list
    elif kind == "boolean":
        ok = t is bool
    elif kind == "base64":
        if t is not str:
            ok = False
        elif is_base64(value):
            return None
        else:
            return "is not base64 audio"
    else:  # number, integer
        if t is not int and t is not float:
            ok = False
        elif t is float and not math.isfinite(value):
            return f"is {value!r}, not a finite number"
        else:
            ok = kind == "number" or t is int or value.is_integer()
    if ok:
        return None
    return f"is {_json_type(value)}, not {'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _json_type(value: Any) -> str:
    return {
        str: "a string",
        dict: "an object",
        list: "an array",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def event_problems(payload: Mapping[str, Any]) -> list[str]:
    """What is wrong with a server event's fields; empty when nothing is.

    Args:
        payload: The event's JSON object.

    Returns:
        One sentence per problem, naming the field: e.g. ``"'delta' is not base64 audio"``.
    """
    etype = payload.get("type")
    if type(etype) is not str:
        return (
            [f"'type' is {_json_type(etype)}, not a string"] if etype is not None else ["'type' is missing"]
        )
    problems: list[str] = []
    for path, parts, kind in _SPECS.get(etype, _UNKNOWN_TYPE_SPEC):
        holder: Any = payload
        for part in parts[:-1]:  # a parent that is not an object is reported on its own path
            holder = holder.get(part)
            if type(holder) is not dict:
                break
        else:
            value = holder.get(parts[-1])
            if value is not None:
                problem = _type_problem(value, kind)
                if problem is not None:
                    problems.append(f"{path!r} {problem}")
    return problems


def warning_event(payload: Any, problems: list[str], raw: str | bytes | None = None) -> dict[str, Any]:
    """The local ``vlab.protocol_warning`` event for a malformed server event.

    Args:
        payload: The event's JSON object (or None when the frame could not be read at all).
        problems: What is wrong, one sentence each.
        raw: The frame as received; else the payload is encoded again.
    """
    if raw is None:
        try:
            raw = json.dumps(payload, ensure_ascii=False, default=str)
        except (RecursionError, ValueError):
            raw = repr(payload)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    limit = protocol.PROTOCOL_WARNING_RAW_CHARS
    etype = payload.get("type") if isinstance(payload, dict) else None
    return {
        "type": protocol.PROTOCOL_WARNING,
        "event_type": etype if type(etype) is str else None,
        "problems": problems,
        "raw": text[:limit],
        "raw_chars": len(text),
    }
