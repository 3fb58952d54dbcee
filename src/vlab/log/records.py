"""One flat record per Voice Live event, and the sink protocol that receives them.

:class:`EventRecord` is the one declaration of the record's fields: each field's name, Python type,
docstring and storage kind (:data:`FieldKind`, in the field's ``metadata``). Everything else is derived
from it: :data:`RECORD_FIELDS`, the columns of :class:`~vlab.log.EventLog`, the JSONL lines of
:class:`~vlab.log.JsonlWriter`, and the frame and Parquet columns and dtypes of :mod:`vlab.log.frames`.
Adding a field is one edit here (plus the code in :func:`event_row` that computes its value).

:func:`record_from_event` turns a client or server event (a JSON-like mapping) into an
:class:`EventRecord`: the ids, audio sizes and text are pulled out into typed fields, and the rest of
the event is kept as compact JSON in :attr:`EventRecord.payload`, with base64 audio and vlab's own
keys removed. It runs once per event on the session's hot path, so it only reads the few keys it needs
and shallow-copies the event only when a key must be dropped. :func:`event_row` gives the same values
as a tuple, for the columnar :class:`~vlab.log.EventLog`, which builds record objects only on demand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from vlab import protocol

Direction = Literal["client", "server", "local"]
"""Who produced an event: ``"client"`` (vlab, stamped at send), ``"server"`` (stamped at receive) or
``"local"`` (a notice from this machine, e.g. ``vlab.playback_started`` stamped when audio reached the speaker)."""


FieldKind = Literal["int", "wall_ns", "key", "nullable_int", "float", "str"]
"""How a record field is stored outside Python, declared once per field in its ``metadata["kind"]``:

================  ===================  ======================================  ==========================
kind              Python value         event frame (pandas dtype)              Parquet (Arrow type)
================  ===================  ======================================  ==========================
``int``           ``int``              ``int64``                               ``int64``
``wall_ns``       ``int``, ns since    column ``<name>_time`` (``_ns``         ``timestamp[ns, UTC]``
                  the Unix epoch       dropped), ``datetime64[ns, UTC]``
``key``           ``str``              ``string``                              ``large_string``
``nullable_int``  ``int | None``       ``Int64`` (missing is ``pd.NA``)        ``int64``
``float``         ``float | None``     ``float64`` (missing is NaN)            ``double``
``str``           ``str | None``       ``string`` (missing is ``pd.NA``)       ``large_string``
================  ===================  ======================================  ==========================

In a JSONL line every field is a key with a JSON integer, number, string or ``null`` (non-finite floats
are written as ``null``). ``int``, ``wall_ns`` and ``key`` fields are required: a line without one of
them is not a record. A log written before a field was declared loads with that column all missing."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a session log, flattened for analysis.

    The one declaration of the record's fields (see the module docstring): a field's ``metadata["kind"]``
    (:data:`FieldKind`) says how it is stored in JSONL, frames and Parquet.
    """

    seq: int = field(metadata={"kind": "int"})
    """0-based position of the event in the session log (client and server events interleaved)."""
    t_ns: int = field(metadata={"kind": "int"})
    """Monotonic stamp in ns (the session clock, ``time.perf_counter_ns`` by default) of the send
    (client) or receive (server)."""
    wall_ns: int = field(metadata={"kind": "wall_ns"})
    """Wall-clock time in ns since the Unix epoch (UTC) at the same moment as :attr:`t_ns`."""
    sim_ms: float | None = field(metadata={"kind": "float"})
    """Position of a server event on the emulator's simulated timeline, in ms of input audio (the
    event's :data:`vlab.protocol.SIM_MS_KEY`); ``None`` for Azure, client and local events."""
    direction: Direction = field(metadata={"kind": "key"})
    """``"client"``, ``"server"`` or ``"local"`` (see :data:`Direction`)."""
    type: str = field(metadata={"kind": "key"})
    """Event type, e.g. ``response.audio.delta``."""
    event_id: str | None = field(metadata={"kind": "str"})
    """The event's ``event_id``; for ``error`` events the id of the client event that caused it
    (``error.event_id``) when the server names one."""
    response_id: str | None = field(metadata={"kind": "str"})
    """``response_id``, or ``response.id`` for ``response.created`` / ``response.done``."""
    item_id: str | None = field(metadata={"kind": "str"})
    """``item_id``, or ``item.id`` for events that carry a whole conversation item."""
    output_index: int | None = field(metadata={"kind": "nullable_int"})
    """``output_index`` (index of the output item in its response)."""
    content_index: int | None = field(metadata={"kind": "nullable_int"})
    """``content_index`` (index of the content part in its item)."""
    call_id: str | None = field(metadata={"kind": "str"})
    """Function-call id: ``call_id``, or ``item.call_id`` for function-call items."""
    audio_bytes: int | None = field(metadata={"kind": "nullable_int"})
    """Decoded size in bytes of the audio payload of an ``input_audio_buffer.append`` or
    ``response.audio.delta`` event; ``None`` for other events."""
    audio_ms: float | None = field(metadata={"kind": "float"})
    """Duration in ms of that audio (needs the byte rate); ``None`` when unknown."""
    audio_start_ms: float | None = field(metadata={"kind": "float"})
    """Server: ``audio_start_ms`` (e.g. ``speech_started``), in ms of input audio. Client append: the
    input-audio position in ms before this chunk."""
    audio_end_ms: float | None = field(metadata={"kind": "float"})
    """Server: ``audio_end_ms`` (``speech_stopped``, ``item.truncated``), client ``item.truncate``:
    ``audio_end_ms``, in ms. Client append: the input-audio position in ms after this chunk."""
    text: str | None = field(metadata={"kind": "str"})
    """Text the event carries: a text ``delta``, ``transcript``, ``text`` or ``arguments``."""
    error_code: str | None = field(metadata={"kind": "str"})
    """``error.code`` of an ``error`` (or ``*.failed``) event, or of a failed ``response.done``
    (``response.status_details.error``)."""
    error_message: str | None = field(metadata={"kind": "str"})
    """``error.message`` of an ``error`` (or ``*.failed``) event, or of a failed ``response.done``."""
    payload: str = field(metadata={"kind": "str"})
    """The whole event as compact JSON without its base64 audio and without vlab's own keys (such as
    :data:`vlab.protocol.SIM_MS_KEY`), so it reads as the server sent it; never contains audio."""


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EventRecord))
"""Field names of :class:`EventRecord`, in order (the keys of a JSONL line, the columns of an
:class:`~vlab.log.EventLog`, the values of an :func:`event_row` row)."""


def _field_kinds() -> Mapping[str, FieldKind]:
    kinds = {f.name: f.metadata.get("kind") for f in fields(EventRecord)}
    unknown = {name: kind for name, kind in kinds.items() if kind not in get_args(FieldKind)}
    if unknown:  # a declaration mistake: fail at import rather than write a log no reader understands
        raise TypeError(f"EventRecord fields {unknown} lack a known metadata kind {get_args(FieldKind)}")
    return MappingProxyType(kinds)  # type: ignore[arg-type]


FIELD_KINDS: Mapping[str, FieldKind] = _field_kinds()
"""Storage kind (:data:`FieldKind`) of each field of :class:`EventRecord` by name, in
:data:`RECORD_FIELDS` order."""


@runtime_checkable
class Sink(Protocol):
    """Something that receives every :class:`EventRecord` of a session, in order.

    Any callable taking a record is a sink. A sink may also have a ``close()``, called once when the
    session ends; it is not a member here because it is optional (callers look it up with
    ``getattr(sink, "close", None)``).
    """

    def __call__(self, record: EventRecord) -> None:
        """Take one record; must be fast and must not block the event loop for long."""
        ...


def _default(obj: Any) -> Any:
    """JSON fallback for SDK models, enums and raw bytes nested in an event."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return None  # raw audio never goes into a payload
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    value = getattr(obj, "value", None)
    if isinstance(value, (str, int, float)):
        return value
    return str(obj)


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_default, check_circular=False, allow_nan=True
)
try:
    # JSONEncoder.encode builds this C encoder anew for every call (≈ 0.6 µs of a record's ≈ 4 µs);
    # built once with the same settings, it gives the same text.
    _c_iterencode = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def _encode(obj: Any) -> str:
        return "".join(_c_iterencode(obj, 0))

except (AttributeError, TypeError):  # no C accelerator (or another signature): the plain encoder
    _encode = _ENCODER.encode  # type: ignore[assignment]

_AUDIO_FIELD = {protocol.CLIENT_APPEND: "audio", protocol.AUDIO_DELTA: "delta"}
_AUDIO_CARRYING = protocol.AUDIO_CARRYING_EVENTS
_ITEM_EVENTS_WITH_AUDIO = frozenset(
    {protocol.CLIENT_ITEM_CREATE, protocol.ITEM_CREATED, protocol.ITEM_RETRIEVED}
)
_BYTES_TYPES = (bytes, bytearray)
_TOOLS_HOLDERS = protocol.TOOLS_HOLDERS


def audio_size(value: Any) -> int | None:
    """Decoded byte count of an audio field, without decoding it.

    Args:
        value: Base64 text (``str``; ASCII ``bytes`` from a JSON frame are not expected here) or raw
            audio (``bytes``, ``bytearray``, ``memoryview``) as SDK models may hold it.

    Returns:
        ``len * 3 // 4 - padding`` for base64 text, the length for raw bytes, ``None`` otherwise.
    """
    if isinstance(value, str):
        n = len(value)
        if n == 0:
            return 0
        padding = 2 if value.endswith("==") else 1 if value[-1] == "=" else 0
        return n * 3 // 4 - padding
    if isinstance(value, _BYTES_TYPES):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    return None


def _as_str(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    inner = getattr(value, "value", value)  # str enums from SDK models
    return inner if type(inner) is str else str(inner)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _as_int(value: Any) -> int | None:
    """``value`` as an int64 (the column type of ``nullable_int`` fields); None when it is not one."""
    if value is None:
        return None
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError):  # not a number, NaN, infinity
        return None
    return out if _INT64_MIN <= out <= _INT64_MAX else None


def _as_float(value: Any) -> float | None:
    """``value`` as a finite float; None when it is not a number, or not a finite one."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # not a number, an int too large for a float
        return None
    return out if out - out == 0.0 else None


def _strip_item_audio(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """A copy of a conversation item without ``content[*].audio``, or ``None`` if it has none."""
    content = item.get("content")
    if not isinstance(content, list) or not any(
        isinstance(part, Mapping) and "audio" in part for part in content
    ):
        return None
    stripped = dict(item)
    stripped["content"] = [
        {k: v for k, v in part.items() if k != "audio"} if isinstance(part, Mapping) else part
        for part in content
    ]
    return stripped


_CLIENT_APPEND = protocol.CLIENT_APPEND
_ERROR = protocol.ERROR
_RESPONSE_DONE = protocol.RESPONSE_DONE
_SIM_MS_KEY = protocol.SIM_MS_KEY


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def failed_response_error(event: Mapping[str, Any]) -> Any:
    """The error of a ``response.done`` whose response failed (``response.status_details.error``), else None."""
    response = event.get("response")
    details = response.get("status_details") if response is not None and _is_mapping(response) else None
    if details is not None and _is_mapping(details) and details.get("type") == "failed":
        return details.get("error")
    return None


def _make_build() -> Callable[..., EventRecord]:
    """Make ``_build(*values)``: the record of one value per field, in :data:`RECORD_FIELDS` order.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``. ``_build`` fills
    the slots of a new record directly instead (same result, no ``__post_init__`` exists); the public
    constructor is unchanged. Its code is generated from the field list, one slot store per field
    (measured with Python 3.11 for 20 fields: 1.3 µs, against 1.9 µs for a loop over the slots and
    2.9 µs for the constructor).
    """
    namespace: dict[str, Any] = {"_new": object.__new__, "EventRecord": EventRecord}
    for i, name in enumerate(RECORD_FIELDS):
        namespace[f"_set{i}"] = getattr(EventRecord, name).__set__
    values = ", ".join(f"v{i}" for i in range(len(RECORD_FIELDS)))
    stores = "".join(f"    _set{i}(record, v{i})\n" for i in range(len(RECORD_FIELDS)))
    code = f"def _build({values}):\n    record = _new(EventRecord)\n{stores}    return record\n"
    exec(code, namespace)
    build: Callable[..., EventRecord] = namespace["_build"]
    return build


_build = _make_build()


def record_from_event(
    event: Mapping[str, Any],
    *,
    direction: Direction,
    seq: int,
    t_ns: int,
    wall_ns: int,
    audio_bytes_per_s: int | None = None,
    input_offset_ms: float | None = None,
) -> EventRecord:
    """Flatten one Voice Live event into an :class:`EventRecord`.

    Args:
        event: The event as a mapping (a parsed JSON dict, or an SDK model, which is a mapping).
        direction: ``"client"`` for events vlab sends, ``"server"`` for events it receives,
            ``"local"`` for notices from this machine.
        seq: 0-based position of the event in the session log.
        t_ns: Monotonic send/receive stamp in ns (``time.perf_counter_ns``).
        wall_ns: Wall-clock time in ns since the Unix epoch at the same moment.
        audio_bytes_per_s: Byte rate of the event's audio (input rate for client appends, output rate
            for ``response.audio.delta``), for :attr:`EventRecord.audio_ms`; ``None`` leaves it unknown.
        input_offset_ms: For a client append, the input-audio position in ms before this chunk (ms of
            audio appended so far); becomes ``audio_start_ms``, and ``audio_end_ms`` adds the chunk.

    Returns:
        The record. The event itself is never modified. A server event's
        :data:`vlab.protocol.SIM_MS_KEY` (the emulator's simulated time) becomes
        :attr:`EventRecord.sim_ms` and is left out of :attr:`EventRecord.payload`.
    """
    return _build(
        *event_row(
            event,
            direction=direction,
            seq=seq,
            t_ns=t_ns,
            wall_ns=wall_ns,
            audio_bytes_per_s=audio_bytes_per_s,
            input_offset_ms=input_offset_ms,
        )
    )


def record_from_row(row: Sequence[Any]) -> EventRecord:
    """The :class:`EventRecord` of a row from :func:`event_row` (no checks; faster than the constructor)."""
    return _build(*row)


def event_row(
    event: Mapping[str, Any],
    *,
    direction: Direction,
    seq: int,
    t_ns: int,
    wall_ns: int,
    audio_bytes_per_s: int | None = None,
    input_offset_ms: float | None = None,
) -> tuple[Any, ...]:
    """The field values of :func:`record_from_event`'s record, in :data:`RECORD_FIELDS` order.

    Takes the same arguments as :func:`record_from_event`, for callers that store the values column
    by column (:class:`~vlab.log.EventLog`) and build a record object only when one is asked for.

    Returns:
        One value per field (:func:`record_from_row` turns them into the record). The event is not
        modified.
    """
    if not isinstance(event, dict):
        as_dict = getattr(event, "as_dict", None)
        event = as_dict() if callable(as_dict) else dict(event)
    get = event.get
    etype = get("type")
    if type(etype) is not str:
        etype = _as_str(etype) or ""

    # --- vlab's simulated time: a field of the record, not part of the payload ----------------------
    body: dict[str, Any] = event
    if etype in _TOOLS_HOLDERS:  # an MCP server's token or headers never reach the log
        body = protocol.without_mcp_secrets(event)
    if _SIM_MS_KEY in event:
        body = body.copy()
        sim_ms = body.pop(_SIM_MS_KEY)
        if sim_ms is not None and (type(sim_ms) is not float or sim_ms - sim_ms != 0.0):  # or NaN, ±inf
            sim_ms = _as_float(sim_ms)
    else:
        sim_ms = None

    # --- audio ------------------------------------------------------------------------------------
    audio_bytes = audio_ms = text = None
    audio_start_ms = get("audio_start_ms")
    if audio_start_ms is not None and (
        type(audio_start_ms) is not float or audio_start_ms - audio_start_ms != 0.0
    ):  # or NaN, ±inf
        audio_start_ms = _as_float(audio_start_ms)
    audio_end_ms = get("audio_end_ms")
    if audio_end_ms is not None and (
        type(audio_end_ms) is not float or audio_end_ms - audio_end_ms != 0.0
    ):  # or NaN, ±inf
        audio_end_ms = _as_float(audio_end_ms)
    if etype in _AUDIO_CARRYING:
        key = _AUDIO_FIELD[etype]
        if key in event:
            audio_bytes = audio_size(event[key])
            if body is event:
                body = event.copy()
            del body[key]
        if audio_bytes is not None and audio_bytes_per_s:
            audio_ms = audio_bytes * 1000.0 / audio_bytes_per_s
        if input_offset_ms is not None and etype == _CLIENT_APPEND:
            audio_start_ms = float(input_offset_ms)
            audio_end_ms = audio_start_ms + audio_ms if audio_ms is not None else None
    else:
        text = get("delta")
        if type(text) is not str:
            text = get("transcript")
            if type(text) is not str:
                text = get("text")
                if type(text) is not str:
                    text = get("arguments")
                    if type(text) is not str:
                        text = None

    # --- ids --------------------------------------------------------------------------------------
    event_id = get("event_id")
    response_id = get("response_id")
    if response_id is None:
        response = get("response")
        if response is not None and _is_mapping(response):
            response_id = response.get("id")
    item_id = get("item_id")
    call_id = get("call_id")
    item = get("item")
    if item is not None and _is_mapping(item):
        if item_id is None:
            item_id = item.get("id")
        if call_id is None:
            call_id = item.get("call_id")
        if etype in _ITEM_EVENTS_WITH_AUDIO:
            stripped = _strip_item_audio(item)
            if stripped is not None:
                if body is event:
                    body = event.copy()
                body["item"] = stripped
    output_index = get("output_index")
    if output_index is not None and (
        type(output_index) is not int or not _INT64_MIN <= output_index <= _INT64_MAX
    ):
        output_index = _as_int(output_index)
    content_index = get("content_index")
    if content_index is not None and (
        type(content_index) is not int or not _INT64_MIN <= content_index <= _INT64_MAX
    ):
        content_index = _as_int(content_index)

    # --- errors -----------------------------------------------------------------------------------
    error_code = error_message = None
    error = get("error")
    if error is None and etype == _RESPONSE_DONE:
        error = failed_response_error(event)
    if error is not None and _is_mapping(error):
        error_code = _as_str(error.get("code"))
        error_message = _as_str(error.get("message"))
        if etype == _ERROR and error.get("event_id") is not None:
            event_id = error.get("event_id")
    if event_id is not None and type(event_id) is not str:
        event_id = _as_str(event_id)
    if response_id is not None and type(response_id) is not str:
        response_id = _as_str(response_id)
    if item_id is not None and type(item_id) is not str:
        item_id = _as_str(item_id)
    if call_id is not None and type(call_id) is not str:
        call_id = _as_str(call_id)

    return (
        seq,
        t_ns,
        wall_ns,
        sim_ms,
        direction,
        etype,
        event_id,
        response_id,
        item_id,
        output_index,
        content_index,
        call_id,
        audio_bytes,
        audio_ms,
        audio_start_ms,
        audio_end_ms,
        text,
        error_code,
        error_message,
        _payload(body, etype),
    )


def _payload(body: Mapping[str, Any], etype: str) -> str:
    """``body`` as compact JSON; a stand-in naming the problem when it is nested too deeply to encode."""
    try:
        return _encode(body)
    except RecursionError:  # a hostile server's event (the session logs it as a protocol warning too)
        return _encode({"type": etype, "vlab_unencodable": "nested too deeply to encode"})
