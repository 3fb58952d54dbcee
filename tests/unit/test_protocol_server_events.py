"""vlab.protocol.SERVER_EVENT_FIELDS against the SDK: every event type it knows, each field as its model types it.

And the promise the session's checks make to readers: a server event the checks pass never makes its SDK
model raise when a field is read (a malformed one reaches readers as a ``RawServerEvent`` instead).
"""

from __future__ import annotations

import math
import sys
import types
import typing
from typing import Any

import pytest
from azure.ai.voicelive._utils.model_base import Model
from azure.ai.voicelive.models import ServerEvent, ServerEventType, _enums, _models

from vlab import protocol
from vlab.session.checks import event_problems
from vlab.session.sdk_adapter import RawServerEvent, server_event

SDK_TYPES = sorted(t.value for t in ServerEventType)

EXTRA_FIELDS = {
    ("response.function_call_arguments.delta", "content_index"),
    ("response.function_call_arguments.done", "content_index"),
}
"""Fields vlab lists that the SDK's model lacks (the SDK keeps them as unknown keys)."""

KINDS_OF: dict[Any, set[str]] = {
    str: {"string"},
    int: {"integer", "number"},  # vlab takes any finite number for the *_ms fields
    float: {"number"},
    bool: {"boolean"},
    bytes: {"base64"},
    list: {"array"},
    dict: {"object"},
}


def _model_class(cls: type) -> type:
    cls.__new__(cls)  # the SDK works out the class's field table on its first instance
    return cls


class _SdkNames:
    """Resolves the SDK's string annotations (``"_models.X"``, ``"_unions.Y"``) in whichever module has the name."""

    def __getattr__(self, name: str) -> Any:
        for module in (_models, _enums, sys.modules["azure.ai.voicelive.models"]):
            if hasattr(module, name):
                return getattr(module, name)
        return Any  # a type alias the SDK keeps elsewhere: not compared


_NAMES = _SdkNames()


def _fields(cls: type) -> dict[str, Any]:
    """REST name → the annotation of each field of an SDK model class (Optional unwrapped).

    A class with subclasses by discriminator (``ResponseItem``: message, function call…) has the fields
    of all of them.
    """
    classes = [cls, *(c for c in getattr(cls, "__mapping__", {}).values() if issubclass(c, cls))]
    return {name: kind for c in reversed(classes) for name, kind in _own_fields(c).items()}


def _own_fields(cls: type) -> dict[str, Any]:
    localns = {"_models": _NAMES, "_unions": _NAMES, "_enums": _NAMES}
    hints = typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]), localns=localns)
    fields = {}
    for attr, rest_field in _model_class(cls)._attr_to_rest_field.items():
        annotation = hints[attr]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007
        fields[rest_field._rest_name] = annotation
    return fields


def _is_class(annotation: Any) -> bool:
    """A plain class (on Python 3.10 ``list[X]`` is an instance of ``type`` too, but no class)."""
    return isinstance(annotation, type) and typing.get_origin(annotation) is None


def _is_model(annotation: Any) -> bool:
    return _is_class(annotation) and issubclass(annotation, Model)


def _kinds(annotation: Any) -> set[str]:
    """The FieldTypes vlab may declare for a field the SDK annotates so."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {"string"} if all(isinstance(a, str) for a in typing.get_args(annotation)) else set()
    if origin in (typing.Union, types.UnionType):
        args = {
            str if _kinds(a) == {"string"} else typing.get_origin(a) or a for a in typing.get_args(annotation)
        }
        return {"string"} if args == {str} else {"array or string"} if args == {list, str} else set()
    if _is_model(annotation):
        return {"object"}
    if _is_class(annotation) and issubclass(annotation, str):  # the SDK's enums are str enums
        return {"string"}  # a nested model
    return KINDS_OF.get(origin or annotation, set())


def test_every_server_event_type_the_sdk_knows_is_declared():
    assert sorted(protocol.SERVER_EVENT_FIELDS) == SDK_TYPES
    assert len(SDK_TYPES) == 56


@pytest.mark.parametrize("etype", SDK_TYPES)
def test_each_declared_field_is_a_field_of_the_sdk_model_of_that_type(etype):
    cls = ServerEvent.__mapping__[etype]
    for path, kind in protocol.SERVER_EVENT_FIELDS[etype].items():
        *parents, key = path.split(".")
        holder: Any = cls
        for part in parents:  # only a nested model's own fields can be compared
            holder = _fields(holder).get(part) if _is_class(holder) else None
        if parents and not _is_model(holder):
            continue  # inside a discriminated union or a list: not a single model
        if (etype, path) in EXTRA_FIELDS:
            assert key not in _fields(holder)
            continue
        fields = _fields(holder)
        assert key in fields, f"{etype}: {path!r} is not a field of {holder.__name__}"
        assert kind in _kinds(fields[key]), f"{etype}: {path!r} is {fields[key]}, declared {kind!r}"


@pytest.mark.parametrize("etype", SDK_TYPES)
def test_the_declaration_leaves_out_only_fields_the_sdk_types_as_anything(etype):
    declared = {path.split(".")[0] for path in protocol.SERVER_EVENT_FIELDS[etype]}
    fields = _fields(ServerEvent.__mapping__[etype])
    left_out = set(fields) - declared - {"type", "event_id"}
    assert all(fields[name] is Any for name in left_out), {name: fields[name] for name in left_out}


HOSTILE: list[Any] = [
    None, True, 0, -1, 2**70, 3.5, math.nan, math.inf, "", "x", "@@@!", "AAA", [], [1, "a"], [[1.0, "a"]],
    [{"x": 1}], {}, {"id": 7}, {"type": 7}, {"message": [1]},
]  # fmt: skip


def _read_everything(model: Any) -> None:
    """Read every field of an SDK model, and of the models in it, as a reader would."""
    for attr in type(model)._attr_to_rest_field:
        value = getattr(model, attr)
        for inner in value if isinstance(value, list) else [value]:
            if isinstance(inner, Model):
                _read_everything(inner)


@pytest.mark.parametrize("etype", SDK_TYPES)
def test_an_event_the_checks_pass_never_raises_when_a_reader_reads_its_model(etype):
    """Every field of every type, each hostile value: either the check finds a problem, or the model reads."""
    fields = _fields(ServerEvent.__mapping__[etype])
    paths = [*fields, *protocol.SERVER_EVENT_FIELDS[etype]]
    for path in paths:
        if path == "type":
            continue
        *parents, key = path.split(".")
        for value in HOSTILE:
            payload: dict[str, Any] = {"type": etype}
            holder = payload
            for part in parents:
                holder = holder.setdefault(part, {})
            holder[key] = value
            if event_problems(payload):
                continue  # the session logs a protocol warning and hands readers a RawServerEvent
            model = server_event(payload)
            if isinstance(model, RawServerEvent):
                continue
            try:
                _read_everything(model)
            except Exception as exc:
                pytest.fail(f"{etype} with {path}={value!r} passes the checks but its model raises {exc!r}")


def test_the_client_event_types_are_the_sdk_s_and_the_emulator_handles_each():
    from vlab.emulator.connection import _HANDLERS

    assert protocol.CLIENT_EVENT_TYPES <= {t.value for t in _enums.ClientEventType}
    assert {*_HANDLERS, protocol.CLIENT_APPEND} == protocol.CLIENT_EVENT_TYPES


def test_every_record_type_vlab_logs_is_declared_once_and_listed():
    declared = {
        value
        for name, value in vars(protocol).items()
        if name.isupper() and isinstance(value, str) and value.startswith(protocol.LOCAL_PREFIX)
        and not name.endswith("_KEY") and name != "LOCAL_PREFIX"
    }  # fmt: skip
    assert declared == protocol.LOCAL_RECORD_TYPES
    speaker_notices = ("playback_started", "playback_finished", "playback_cleared", "underrun")  # vlab.audio
    assert {protocol.local_record_type(kind) for kind in speaker_notices} <= protocol.LOCAL_RECORD_TYPES
