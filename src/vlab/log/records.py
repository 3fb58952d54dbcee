"""One flat record per Voice Live event, and the sink protocol that receives them.

:func:`record_from_event` turns a client or server event (a JSON-like mapping) into an
:class:`EventRecord`: the ids, audio sizes and text are pulled out into typed fields, and the rest of
the event is kept as compact JSON in :attr:`EventRecord.payload`, with base64 audio removed. It runs
once per event on the session's hot path, so it only reads the few keys it needs and shallow-copies
the event only when an audio field must be dropped. :func:`event_row` gives the same values as a
tuple, for the columnar :class:`~vlab.log.EventLog`, which builds record objects only on demand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol, runtime_checkable

from vlab import protocol

Direction = Literal["client", "server", "local"]
"""Who produced an event: ``"client"`` (vlab, stamped at send), ``"server"`` (stamped at receive) or
``"local"`` (a notice from this machine, e.g. ``vlab.playback_started`` stamped when audio reached the speaker)."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a session log, flattened for analysis."""

    seq: int
    """0-based position of the event in the session log (client and server events interleaved)."""
    t_ns: int
    """Monotonic stamp in ns (``time.perf_counter_ns``) of the send (client) or receive (server)."""
    wall_ns: int
    """Wall-clock time in ns since the Unix epoch (UTC) at the same moment as :attr:`t_ns`."""
    direction: Direction
    """``"client"`` or ``"server"``."""
    type: str
    """Event type, e.g. ``response.audio.delta``."""
    event_id: str | None
    """The event's ``event_id``; for ``error`` events the id of the client event that caused it
    (``error.event_id``) when the server names one."""
    response_id: str | None
    """``response_id``, or ``response.id`` for ``response.created`` / ``response.done``."""
    item_id: str | None
    """``item_id``, or ``item.id`` for events that carry a whole conversation item."""
    output_index: int | None
    """``output_index`` (index of the output item in its response)."""
    content_index: int | None
    """``content_index`` (index of the content part in its item)."""
    call_id: str | None
    """Function-call id: ``call_id``, or ``item.call_id`` for function-call items."""
    audio_bytes: int | None
    """Decoded size in bytes of the audio payload of an ``input_audio_buffer.append`` or
    ``response.audio.delta`` event; ``None`` for other events."""
    audio_ms: float | None
    """Duration in ms of that audio (needs the byte rate); ``None`` when unknown."""
    audio_start_ms: float | None
    """Server: ``audio_start_ms`` (e.g. ``speech_started``), in ms of input audio. Client append: the
    input-audio position in ms before this chunk."""
    audio_end_ms: float | None
    """Server: ``audio_end_ms`` (``speech_stopped``, ``item.truncated``), client ``item.truncate``:
    ``audio_end_ms``, in ms. Client append: the input-audio position in ms after this chunk."""
    text: str | None
    """Text the event carries: a text ``delta``, ``transcript``, ``text`` or ``arguments``."""
    error_code: str | None
    """``error.code`` of an ``error`` (or ``*.failed``) event."""
    error_message: str | None
    """``error.message`` of an ``error`` (or ``*.failed``) event."""
    payload: str
    """The whole event as compact JSON without its base64 audio (the audio key is left out); never
    contains an audio payload."""


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EventRecord))
"""Field names of :class:`EventRecord`, in order (the keys of a JSONL line)."""


@runtime_checkable
class Sink(Protocol):
    """Something that receives every :class:`EventRecord` of a session, in order.

    Any callable taking a record is a sink; ``close`` is optional in practice (callers look it up with
    ``getattr(sink, "close", None)``) and is called once when the session ends.
    """

    def __call__(self, record: EventRecord) -> None:
        """Take one record; must be fast and must not block the event loop for long."""
        ...

    def close(self) -> None:
        """Release resources; called once at the end of the session."""
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
    _encode = _ENCODER.encode

_AUDIO_FIELD = {protocol.CLIENT_APPEND: "audio", protocol.AUDIO_DELTA: "delta"}
_AUDIO_CARRYING = protocol.AUDIO_CARRYING_EVENTS
_ITEM_EVENTS_WITH_AUDIO = frozenset(
    {protocol.CLIENT_ITEM_CREATE, protocol.ITEM_CREATED, protocol.ITEM_RETRIEVED}
)
_BYTES_TYPES = (bytes, bytearray)


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


def _as_int(value: Any) -> int | None:
    if value is None or type(value) is int:
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    if value is None or type(value) is float:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


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


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


# A frozen dataclass's __init__ sets each field through object.__setattr__, which costs about twice
# as much as the whole extraction. _build fills the slots of a new record directly instead (same
# result, no __post_init__ exists); the public constructor EventRecord(...) is unchanged.
_new = object.__new__
_set_seq = EventRecord.seq.__set__  # type: ignore[attr-defined]
_set_t_ns = EventRecord.t_ns.__set__  # type: ignore[attr-defined]
_set_wall_ns = EventRecord.wall_ns.__set__  # type: ignore[attr-defined]
_set_direction = EventRecord.direction.__set__  # type: ignore[attr-defined]
_set_type = EventRecord.type.__set__  # type: ignore[attr-defined]
_set_event_id = EventRecord.event_id.__set__  # type: ignore[attr-defined]
_set_response_id = EventRecord.response_id.__set__  # type: ignore[attr-defined]
_set_item_id = EventRecord.item_id.__set__  # type: ignore[attr-defined]
_set_output_index = EventRecord.output_index.__set__  # type: ignore[attr-defined]
_set_content_index = EventRecord.content_index.__set__  # type: ignore[attr-defined]
_set_call_id = EventRecord.call_id.__set__  # type: ignore[attr-defined]
_set_audio_bytes = EventRecord.audio_bytes.__set__  # type: ignore[attr-defined]
_set_audio_ms = EventRecord.audio_ms.__set__  # type: ignore[attr-defined]
_set_audio_start_ms = EventRecord.audio_start_ms.__set__  # type: ignore[attr-defined]
_set_audio_end_ms = EventRecord.audio_end_ms.__set__  # type: ignore[attr-defined]
_set_text = EventRecord.text.__set__  # type: ignore[attr-defined]
_set_error_code = EventRecord.error_code.__set__  # type: ignore[attr-defined]
_set_error_message = EventRecord.error_message.__set__  # type: ignore[attr-defined]
_set_payload = EventRecord.payload.__set__  # type: ignore[attr-defined]


def _build(
    seq: Any,
    t_ns: Any,
    wall_ns: Any,
    direction: Any,
    type: Any,
    event_id: Any,
    response_id: Any,
    item_id: Any,
    output_index: Any,
    content_index: Any,
    call_id: Any,
    audio_bytes: Any,
    audio_ms: Any,
    audio_start_ms: Any,
    audio_end_ms: Any,
    text: Any,
    error_code: Any,
    error_message: Any,
    payload: Any,
) -> EventRecord:
    record = _new(EventRecord)
    _set_seq(record, seq)
    _set_t_ns(record, t_ns)
    _set_wall_ns(record, wall_ns)
    _set_direction(record, direction)
    _set_type(record, type)
    _set_event_id(record, event_id)
    _set_response_id(record, response_id)
    _set_item_id(record, item_id)
    _set_output_index(record, output_index)
    _set_content_index(record, content_index)
    _set_call_id(record, call_id)
    _set_audio_bytes(record, audio_bytes)
    _set_audio_ms(record, audio_ms)
    _set_audio_start_ms(record, audio_start_ms)
    _set_audio_end_ms(record, audio_end_ms)
    _set_text(record, text)
    _set_error_code(record, error_code)
    _set_error_message(record, error_message)
    _set_payload(record, payload)
    return record


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
        direction: ``"client"`` for events vlab sends, ``"server"`` for events it receives.
        seq: 0-based position of the event in the session log.
        t_ns: Monotonic send/receive stamp in ns (``time.perf_counter_ns``).
        wall_ns: Wall-clock time in ns since the Unix epoch at the same moment.
        audio_bytes_per_s: Byte rate of the event's audio (input rate for client appends, output rate
            for ``response.audio.delta``), for :attr:`EventRecord.audio_ms`; ``None`` leaves it unknown.
        input_offset_ms: For a client append, the input-audio position in ms before this chunk (ms of
            audio appended so far); becomes ``audio_start_ms``, and ``audio_end_ms`` adds the chunk.

    Returns:
        The record. The event itself is never modified.
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
        The 19 values (:func:`record_from_row` turns them into the record). The event is not modified.
    """
    if not isinstance(event, dict):
        as_dict = getattr(event, "as_dict", None)
        event = as_dict() if callable(as_dict) else dict(event)
    get = event.get
    etype = get("type")
    if type(etype) is not str:
        etype = _as_str(etype) or ""

    # --- audio ------------------------------------------------------------------------------------
    audio_bytes = audio_ms = text = None
    audio_start_ms = get("audio_start_ms")
    if audio_start_ms is not None and type(audio_start_ms) is not float:
        audio_start_ms = _as_float(audio_start_ms)
    audio_end_ms = get("audio_end_ms")
    if audio_end_ms is not None and type(audio_end_ms) is not float:
        audio_end_ms = _as_float(audio_end_ms)
    body: Mapping[str, Any] = event
    if etype in _AUDIO_CARRYING:
        key = _AUDIO_FIELD[etype]
        if key in event:
            audio_bytes = audio_size(event[key])
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
                body = event.copy()
                body["item"] = stripped
    output_index = get("output_index")
    if output_index is not None and type(output_index) is not int:
        output_index = _as_int(output_index)
    content_index = get("content_index")
    if content_index is not None and type(content_index) is not int:
        content_index = _as_int(content_index)

    # --- errors -----------------------------------------------------------------------------------
    error_code = error_message = None
    error = get("error")
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
        _encode(body),
    )
