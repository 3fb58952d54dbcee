"""What is wrong with a server event: each field against its JSON type in :data:`vlab.protocol.SERVER_EVENT_FIELDS`.

The session checks every server event before it reacts to it. A malformed one is logged (a
``vlab.protocol_warning`` record, see :data:`vlab.protocol.PROTOCOL_WARNING`) and not reacted to, so a
server that speaks the protocol badly can never stop the session. The check reads only the listed
fields, a few type tests per event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from vlab import protocol
from vlab.protocol import FieldType

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_COMMON: dict[str, FieldType] = {"event_id": "string", protocol.SIM_MS_KEY: "number"}
_ALLOWED: dict[FieldType, frozenset[type]] = {
    "string": frozenset({str}),
    "object": frozenset({dict}),
    "array": frozenset({list}),
    "boolean": frozenset({bool}),
    "number": frozenset({int, float}),
    "integer": frozenset({int, float}),
    "base64": frozenset({str}),
    "array or string": frozenset({list, str}),
}

_Spec = tuple[tuple[tuple[str, ...], str, frozenset[type], FieldType, str], ...]
"""Per field: the path of its parent objects, its key, the Python types allowed, its kind, its dotted path."""


def _compile(fields: Mapping[str, FieldType]) -> _Spec:
    spec = []
    for path, kind in {**_COMMON, **fields}.items():
        *parents, key = path.split(".")
        spec.append((tuple(parents), key, _ALLOWED[kind], kind, path))
    return tuple(spec)


_SPECS = {etype: _compile(fields) for etype, fields in protocol.SERVER_EVENT_FIELDS.items()}
_UNKNOWN_TYPE_SPEC = _compile({})

_TYPE_TEST: dict[FieldType, str] = {
    "string": "t is not str",
    "base64": "t is not str or not _shape_ok(v)",
    "object": "t is not dict",
    "array": "t is not list",
    "boolean": "t is not bool",
    "number": "not (t is int or (t is float and v - v == 0.0))",
    "integer": "not (t is int or (t is float and v - v == 0.0 and v.is_integer()))",
    "array or string": "t is not list and t is not str",
}
"""When a value of each kind has a problem, as a Python expression of the value ``v`` and its type ``t``
(the same tests as :func:`event_problems`' loop, where ``v - v`` is not 0 for NaN and ±inf)."""


def _make_well_formed(spec: _Spec) -> Callable[[dict[str, Any]], bool]:
    """Make ``well_formed(payload)``: True when :func:`event_problems` finds nothing in an event of ``spec``.

    Generated from the spec, one inline test per field and no loop: the session's hot path (most events
    are well formed); :func:`event_problems` words the problems of the others.
    """
    lines = ["def well_formed(payload):", "    get = payload.get"]
    for parents, key, _allowed, kind, _path in spec:
        if parents:  # a parent that is not an object is reported on its own path, not on this one
            lines.append(f"    h = get({parents[0]!r})")
            for part in parents[1:]:
                lines.append(f"    h = h.get({part!r}) if type(h) is dict else None")
            lines.append(f"    v = h.get({key!r}) if type(h) is dict else None")
        else:
            lines.append(f"    v = get({key!r})")
        lines += [
            "    if v is not None:",
            "        t = type(v)",
            f"        if {_TYPE_TEST[kind]}:",
            "            return False",
        ]
    lines.append("    return True")
    namespace: dict[str, Any] = {"_shape_ok": base64_shape_ok}
    exec("\n".join(lines) + "\n", namespace)
    well_formed: Callable[[dict[str, Any]], bool] = namespace["well_formed"]
    return well_formed


def base64_shape_ok(value: str) -> bool:
    """Whether ``value`` has the shape of padded base64 (length, padding); O(1) but for one ``find``."""
    n = len(value)
    return (
        n % 4 == 0 and value.find("=", 0, max(0, n - 2)) < 0 and not (n and value[-2:-1] == "=" != value[-1])
    )


def base64_alphabet_ok(value: str) -> bool:
    """Whether ``value`` uses only the standard base64 alphabet and ``=`` (one pass, without decoding it)."""
    return value.isascii() and not value.encode("ascii").translate(None, _B64_ALPHABET)


def is_base64(value: str) -> bool:
    """Whether ``value`` is standard, padded base64 (its shape and its alphabet, without decoding it)."""
    return base64_shape_ok(value) and base64_alphabet_ok(value)


_WELL_FORMED = {etype: _make_well_formed(spec) for etype, spec in _SPECS.items()}
_UNKNOWN_TYPE_WELL_FORMED = _make_well_formed(_UNKNOWN_TYPE_SPEC)


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

    A ``base64`` field is checked for its shape here; its alphabet is checked where the audio is used
    (:meth:`vlab.session.output.AssistantAudio.delta`), in the one pass over it that is needed anyway.

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
    if _WELL_FORMED.get(etype, _UNKNOWN_TYPE_WELL_FORMED)(payload):  # type: ignore[arg-type]
        return []
    problems: list[str] = []
    get = payload.get
    for parents, key, allowed, kind, path in _SPECS.get(etype, _UNKNOWN_TYPE_SPEC):
        if parents:  # a parent that is not an object is reported on its own path
            holder: Any = payload
            for part in parents:
                holder = holder.get(part)
                if type(holder) is not dict:
                    break
            else:
                value = holder.get(key)
            if type(holder) is not dict:
                continue
        else:
            value = get(key)
        if value is None:
            continue
        t = type(value)
        if t not in allowed:
            problems.append(
                f"{path!r} is {_json_type(value)}, not {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
            )
        elif t is float and value - value != 0.0:
            problems.append(f"{path!r} is {value!r}, not a finite number")
        elif kind == "integer" and t is float and not value.is_integer():
            problems.append(f"{path!r} is {value!r}, not an integer")
        elif kind == "base64" and not base64_shape_ok(value):
            problems.append(f"{path!r} is not base64 audio")
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
