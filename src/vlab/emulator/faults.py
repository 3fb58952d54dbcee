"""Faults on demand: make the emulator drop, close, stall, fail or throttle at a chosen point.

A :class:`Fault` is armed on a connection and watches the server events that connection sends:

=============  ==================================================================================
kind           what happens
=============  ==================================================================================
``drop``       after the ``n``-th ``at`` event, the TCP connection is aborted (no close frame)
``close``      after the ``n``-th ``at`` event, a clean WebSocket close with ``code``
``delay``      the ``n``-th ``at`` event is held back ``ms`` milliseconds (the whole stream stalls)
``error``      after the ``n``-th ``at`` event, an ``error`` event (``error_code``, by default
               ``server_error``; ``rate_limit_exceeded`` rehearses a throttled session); ``fatal``
               also closes the socket with code 1011
``throttle``   output audio (``response.audio.delta``) is sent no faster than ``rate`` × real time
``rate_limit`` the next ``n`` connection attempts to the emulator are refused with HTTP 429
               (``rate_limit_exceeded``, ``Retry-After: retry_after_s``), as a throttled resource does
=============  ==================================================================================

Arm faults with ``Emulator(faults=[...])`` (every new connection), ``Emulator.inject(fault)`` (the open
connections, from now on), or from the client, without access to the emulator process, through the
session metadata: ``session.update`` with ``{"metadata": {"vlab.fault": "drop_after:response.audio.delta:3"}}``.
The text form (several separated by ``;``)::

    drop_after:<type>[:<n>]
    close_after:<type>[:<n>[:<code>]]
    delay_before:<type>:<ms>[:<n>]
    error_after:<type>[:<n>[:fatal|<error code>]]
    throttle:<rate>
    rate_limit:<n>[:<retry_after_s>]

``rate_limit`` acts on the emulator, not on a connection: give it to ``Emulator(faults=...)`` or
``Emulator.inject``. Counting starts when the fault is armed; each fault fires once (``throttle`` stays on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from vlab import protocol
from vlab.errors import ConfigError, closest_name

FaultKind = Literal["drop", "close", "delay", "error", "throttle", "rate_limit"]
METADATA_KEY = "vlab.fault"
"""Session metadata key whose value arms faults from the client side."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to inject.

    Raises:
        ConfigError: On an unknown kind or a missing/invalid parameter.
    """

    kind: FaultKind
    """``drop``, ``close``, ``delay``, ``error`` or ``throttle``."""
    at: str | None = None
    """Server event type the fault is tied to (all kinds but ``throttle``)."""
    n: int = 1
    """Which occurrence of ``at`` (1 = the first one sent after arming)."""
    ms: float = 0.0
    """``delay``: how long to hold the event back, in ms."""
    code: int = 1011
    """``close``: the WebSocket close code (1011 = internal error)."""
    fatal: bool = False
    """``error``: also close the socket (code 1011) after the error event."""
    message: str = "The server had an error while processing your request (injected by vlab)."
    """``error``: the error message."""
    error_code: str = "server_error"
    """``error``: the error event's code (e.g. ``rate_limit_exceeded``)."""
    rate: float = 1.0
    """``throttle``: output audio speed as a multiple of real time (0.5 = half real time)."""
    retry_after_s: float = 1.0
    """``rate_limit``: the ``Retry-After`` sent with each refusal, in seconds."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ConfigError(
                f"unknown fault kind {self.kind!r}; use one of {', '.join(get_args(FaultKind))}, "
                "e.g. Fault('drop', 'response.audio.delta')."
            )
        if self.kind not in ("throttle", "rate_limit") and not self.at:
            raise ConfigError(
                f"a {self.kind!r} fault needs 'at', the server event type it is tied to, "
                f"e.g. Fault({self.kind!r}, 'response.audio.delta')."
            )
        if self.at is not None and self.at not in protocol.SERVER_EVENT_FIELDS:
            meant = closest_name(str(self.at), protocol.SERVER_EVENT_FIELDS)
            raise ConfigError(
                f"a fault's 'at' is a server event type of the protocol, got {self.at!r}"
                + (f" (did you mean {meant!r}?)" if meant else "")
                + "; e.g. 'response.audio.delta', 'response.done', 'input_audio_buffer.speech_stopped'."
            )
        if self.n < 1:
            raise ConfigError(
                f"Fault.n counts occurrences from 1 (1 = the first one), got {self.n!r}; give n >= 1."
            )
        if self.kind == "throttle" and not self.rate > 0:
            raise ConfigError(
                f"a throttle fault needs rate > 0 (× real time, e.g. 0.5 for half speed), got {self.rate!r}."
            )
        if self.kind == "rate_limit" and not self.retry_after_s >= 0:
            raise ConfigError(
                f"a rate_limit fault needs retry_after_s >= 0 (seconds), got {self.retry_after_s!r}."
            )
        if self.kind == "close" and not _sendable(self.code):
            raise ConfigError(
                f"a close fault's code must be one a WebSocket close frame may carry (1000-1003, 1007-1014, "
                f"or 3000-4999, of which 4000-4999 are free for applications), got {self.code!r}."
            )
        if self.kind == "delay" and not self.ms >= 0:
            raise ConfigError(
                f"a delay fault needs ms >= 0 (how long to hold the event back), got {self.ms!r}."
            )

    @classmethod
    def parse(cls, text: str) -> list[Fault]:
        """Parse the text form (see the module docstring); several faults are separated by ``;``.

        Raises:
            ConfigError: On a malformed specification; the message shows it and the accepted forms.
        """
        faults = []
        for spec in filter(None, (s.strip() for s in text.split(";"))):
            head, *args = spec.split(":")
            try:
                if head == "drop_after":
                    faults.append(cls("drop", args[0], n=_part(args, 1, "count", int, 1)))
                elif head == "close_after":
                    n, code = _part(args, 1, "count", int, 1), _part(args, 2, "close code", int, 1011)
                    faults.append(cls("close", args[0], n=n, code=code))
                elif head == "delay_before":
                    ms = _part(args, 1, "delay in ms", float)
                    faults.append(cls("delay", args[0], ms=ms, n=_part(args, 2, "count", int, 1)))
                elif head == "error_after":
                    last = args[2] if len(args) > 2 else ""
                    faults.append(
                        cls(
                            "error",
                            args[0],
                            n=_part(args, 1, "count", int, 1),
                            fatal=last == "fatal",
                            error_code=last if last not in ("", "fatal") else "server_error",
                        )
                    )
                elif head == "throttle":
                    faults.append(cls("throttle", rate=_part(args, 0, "rate", float)))
                elif head == "rate_limit":
                    retry = _part(args, 1, "Retry-After in seconds", float, 1.0)
                    faults.append(cls("rate_limit", n=_part(args, 0, "count", int), retry_after_s=retry))
                else:
                    raise ValueError(f"unknown fault {head!r}")
            except IndexError:
                reason = f"{head} needs more parts"
            except ValueError as exc:  # ConfigError is a ValueError
                reason = str(exc).rstrip(".")
            else:
                continue
            raise ConfigError(
                f"bad fault specification {spec!r} ({reason}); expected e.g. 'drop_after:response.audio.delta:3', "
                "'close_after:<type>:<n>:<code>', 'delay_before:<type>:<ms>', 'error_after:<type>:<n>:fatal', "
                "'throttle:0.5' or 'rate_limit:2:1.5'"
            )
        return faults


_N = TypeVar("_N", int, float)


def _sendable(code: object) -> bool:
    """Whether ``code`` may be sent in a close frame (RFC 6455 7.4; 1004-1006 and 1015 may not)."""
    return isinstance(code, int) and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999)


def _part(parts: list[str], index: int, what: str, kind: type[_N], default: _N | None = None) -> _N:
    """``parts[index]`` as a ``kind`` (``default`` when it is missing); the ValueError names ``what``."""
    if index >= len(parts) and default is not None:
        return default
    try:
        return kind(parts[index])
    except ValueError:
        number = "a whole number" if kind is int else "a number"
        raise ValueError(f"the {what} {parts[index]!r} is not {number}") from None


FaultsLike = Fault | str | Iterable[Fault | str]
"""Faults as the Python API takes them: :class:`Fault` objects, their text form, or a list of either."""


def as_faults(faults: FaultsLike) -> tuple[Fault, ...]:
    """``faults`` as :class:`Fault` objects; a string is read as the text form (:meth:`Fault.parse`).

    Raises:
        ConfigError: Something that is neither a :class:`Fault` nor its text form, or a malformed one.
    """
    if isinstance(faults, (Fault, str)):
        faults = [faults]
    result: list[Fault] = []
    for fault in faults:
        if isinstance(fault, Fault):
            result.append(fault)
        elif isinstance(fault, str):
            result.extend(Fault.parse(fault))
        else:
            raise ConfigError(
                f"a fault is a Fault(...) or its text form, got {type(fault).__name__} {fault!r}; e.g. "
                "Fault('drop', 'response.audio.delta', n=3) or 'drop_after:response.audio.delta:3'."
            )
    return tuple(result)


@dataclass(slots=True)
class ArmedFault:
    """A fault armed on one connection, with its own occurrence counter."""

    fault: Fault
    """What to do."""
    seen: int = 0
    """Events of type ``fault.at`` sent since arming."""
    fired: bool = False
    """Whether it has acted (throttles never count as fired)."""


class FaultPlan:
    """The faults armed on one connection; the connection asks it around every event it sends."""

    def __init__(self) -> None:
        self.armed: list[ArmedFault] = []

    def arm(self, faults: list[Fault]) -> None:
        """Arm ``faults`` from now on (``rate_limit`` faults act on the emulator, not here)."""
        self.armed.extend(ArmedFault(f) for f in faults if f.kind != "rate_limit")

    @property
    def throttle_rate(self) -> float | None:
        """Slowest armed throttle rate, if any."""
        rates = [a.fault.rate for a in self.armed if a.fault.kind == "throttle"]
        return min(rates) if rates else None

    def delay_before(self, event_type: str) -> float:
        """Total ms to hold back an event of ``event_type`` (counts it for delay faults)."""
        total = 0.0
        for a in self.armed:
            if a.fired or a.fault.kind != "delay" or a.fault.at != event_type:
                continue
            a.seen += 1
            if a.seen == a.fault.n:
                a.fired = True
                total += a.fault.ms
        return total

    def after(self, event_type: str) -> list[Fault]:
        """Faults that fire now that an event of ``event_type`` has been sent."""
        due = []
        for a in self.armed:
            if a.fired or a.fault.kind in ("delay", "throttle") or a.fault.at != event_type:
                continue
            a.seen += 1
            if a.seen == a.fault.n:
                a.fired = True
                due.append(a.fault)
        return due
