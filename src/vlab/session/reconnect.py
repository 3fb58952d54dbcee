"""Losing and recovering a Voice Live connection: the reconnect policy and how a loss is described.

:class:`Reconnect` is the policy a :class:`vlab.Session` follows when its connection is lost;
:class:`ConnectionLoss` turns what happened (a close code, a vanished socket, a stall) into a sentence a
user can act on, and into the :class:`~vlab.errors.ConnectionFailed` the session raises. Both are plain
values: a loss is built from the facts it states, not from a session's state. :class:`Reconnecting`,
:class:`ReconnectFailed` and :class:`Reconnected` are what a link reports while it recovers, and
:func:`notice_event` is the local event that logs each report.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vlab import protocol
from vlab.endpoint import ENV_API_KEY, ENV_ENDPOINT
from vlab.errors import ConfigError, ConnectionFailed, refuse_unknown_fields

if TYPE_CHECKING:
    from vlab.endpoint import Target

LossCode = Literal["dropped", "closed", "server_error", "stalled", "protocol_error", "frame_too_large"]
"""How a connection was lost: ``dropped`` (no close frame), ``closed`` (a close frame), ``server_error``
(an error event, then a close), ``stalled`` (no event while one was due), ``protocol_error`` (the server
does not speak the Voice Live protocol), ``frame_too_large`` (a server frame exceeded the client's frame
size limit, and the client closed the connection)."""


@refuse_unknown_fields
@dataclass(frozen=True)
class Reconnect:
    """When and how a :class:`Session` reconnects after losing its connection.

    ``Session(reconnect=True)`` uses the defaults. Each reconnection is logged as a local
    ``vlab.reconnect`` record (``attempt``, ``reason``); the session settings are sent again on the
    new connection. A response that was in progress is lost (the service cannot resume it): ask again.
    The server starts a fresh input-audio timeline, so the session's input position restarts at 0.

    Args:
        attempts: Connection attempts per loss before giving up (then the session ends as without a policy).
        backoff_s: Wait before the first attempt; doubled for each further attempt.
        max_backoff_s: Upper bound of the wait between attempts.
        max_reconnects: Losses the session recovers from in its lifetime (a flapping link ends it).
    """

    attempts: int = 3
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0
    max_reconnects: int = 10

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.max_reconnects < 1:
            raise ConfigError(f"Reconnect needs attempts ≥ 1 and max_reconnects ≥ 1, got {self!r}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError(f"Reconnect back-off times must be ≥ 0 s, got {self!r}")

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (1-based)."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)


RECONNECT_ADVICE = "Open a new session to go on, or pass Session(reconnect=True) to reconnect automatically"
"""What a lost connection's error advises in Python; a command says its own (run it again)."""


@dataclass(frozen=True)
class ConnectionLoss:
    """How a connection was lost: a short ``code`` and a sentence ``what`` (no advice; see :meth:`error`).

    Build one with :meth:`closed`, :meth:`stalled` or :meth:`protocol_error`.
    """

    code: LossCode
    """The kind of loss."""
    what: str
    """What happened, as a sentence fragment (no advice, no secret)."""
    response_id: str | None = None
    """The response that was in progress when the connection was lost (it is lost with it)."""

    @classmethod
    def closed(
        cls,
        close_code: int | None,
        reason: str,
        *,
        server_error: tuple[str | None, str | None] | None = None,
        response_id: str | None = None,
    ) -> ConnectionLoss:
        """The socket closed: with a close frame (``close_code``), without one, or after a server error.

        Args:
            close_code: The WebSocket close code the SDK reported (None: no code at all).
            reason: The close reason or transport error the SDK reported (already redacted).
            server_error: ``(code, message)`` of the server's ``error`` event when that was the last
                event before the close.
            response_id: The response in progress, if any.
        """
        prefix = ""
        if server_error is not None:
            prefix = f"the server reported an error ({server_error[0]}: {server_error[1]}) and then "
        during = f" while response {response_id} was in progress" if response_id is not None else ""
        # The SDK reports a close frame as (its code, ""), a vanished socket as (1000, "Connection closed")
        # or (1006, <transport error>).
        no_frame = (
            close_code is None
            or (close_code == 1000 and reason == "Connection closed")
            or (close_code == 1006 and bool(reason))
        )
        if no_frame:
            what = f"{prefix}the connection was dropped (the socket closed without a close frame)"
            return cls("dropped", what + during, response_id)
        code_text = f"code {close_code}" + (f": {reason}" if reason else "") + _close_meaning(close_code)
        if server_error is not None:
            return cls("server_error", f"{prefix}closed the connection ({code_text}){during}", response_id)
        return cls("closed", f"the server closed the connection ({code_text}){during}", response_id)

    @classmethod
    def stalled(cls, timeout_s: float, response_id: str | None = None) -> ConnectionLoss:
        """No server event for ``timeout_s`` while an answer was due (``response_id``: the one in progress)."""
        waiting = f"response {response_id} was in progress" if response_id is not None else "a reply was due"
        what = f"the connection stalled: no event from the server for {timeout_s:g} s while {waiting}"
        return cls("stalled", what, response_id)

    @classmethod
    def frame_too_large(cls, limit_bytes: int, detail: str, response_id: str | None = None) -> ConnectionLoss:
        """The client closed the connection: a server frame exceeded its limit of ``limit_bytes``.

        Args:
            limit_bytes: The client's frame size limit (the SDK's ``max_msg_size``).
            detail: The transport's message (already redacted), which names the frame's size.
            response_id: The response in progress, if any.
        """
        during = f" while response {response_id} was in progress" if response_id is not None else ""
        what = (
            f"the server sent a WebSocket frame larger than the client's frame size limit of {limit_bytes:,} "
            f"bytes ({detail}), so the client closed the connection{during}"
        )
        return cls("frame_too_large", what, response_id)

    @classmethod
    def protocol_error(cls, detail: str, response_id: str | None = None) -> ConnectionLoss:
        """The server sent something that is not the Voice Live protocol (``detail`` says what)."""
        during = f" while response {response_id} was in progress" if response_id is not None else ""
        return cls(
            "protocol_error", f"the server broke the Voice Live protocol ({detail}){during}", response_id
        )

    def after_failed_reconnects(self, failures: Sequence[str]) -> ConnectionLoss:
        """This loss, with the reconnection attempts that failed after it (``failures``: their errors)."""
        if not failures:
            return self
        what = f"{self.what}; reconnecting failed {len(failures)} time(s), last: {failures[-1]}"
        return dataclasses.replace(self, what=what)

    def error(
        self, *, target: str, run_dir: str | os.PathLike[str] | None = None, reconnect: bool = False
    ) -> ConnectionFailed:
        """The error the session raises: what happened, where the log is, and what to do.

        Args:
            target: The target's description (:meth:`vlab.endpoint.Target.describe`, never a key).
            run_dir: The run folder holding the events so far, if any.
            reconnect: Whether the session had a reconnect policy (it did not help).
        """
        where = f" The events so far are in {run_dir}." if run_dir is not None else ""
        fix = (
            "Reconnecting did not help: check the network and the service status, then open a new session"
            if reconnect
            else RECONNECT_ADVICE
        )
        if self.code == "stalled":
            fix += "; if the service is just slow, raise stall_timeout_s"
        elif self.code == "protocol_error":
            fix = "Check that the endpoint is a Voice Live endpoint (not another service)"
        elif self.code == "frame_too_large":
            fix = (
                "Raise the client's limit with Session(max_frame_bytes=...) (the SDK's connection option "
                "max_msg_size), or make the server send smaller frames"
            )
        elif self.code == "server_error":  # its error says why: the network is not the first suspect
            fix += "; if the error names something the client sent (a setting, the audio), change that first"
        else:
            fix += "; if it keeps happening, check the network (and proxies or firewalls that cut WebSockets)"
        return ConnectionFailed(f"{self.what} ({target}).{where} {fix}.")


def _close_meaning(code: int | None) -> str:
    meaning = {
        1000: "normal closure",
        1001: "going away",
        1008: "policy violation",
        1009: "a message was too big",
        1011: "server error",
        1012: "service restart",
        1013: "try again later",
    }.get(code or 0)
    return f", {meaning}" if meaning else ""


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The link is about to try connection ``attempt`` (its back-off has passed)."""

    attempt: int
    """1-based attempt number for this loss."""
    loss: ConnectionLoss
    """The loss being recovered from."""


@dataclass(frozen=True, slots=True)
class ReconnectFailed:
    """Connection ``attempt`` failed with ``error`` (redacted)."""

    attempt: int
    """1-based attempt number for this loss."""
    error: str
    """What went wrong, without secrets."""


@dataclass(frozen=True, slots=True)
class Reconnected:
    """Connection ``attempt`` is up and its handshake done; the new connection's events follow."""

    attempt: int
    """1-based attempt number for this loss."""
    loss: ConnectionLoss
    """The loss recovered from."""


Notice = ConnectionLoss | Reconnecting | ReconnectFailed | Reconnected
"""What the link reports besides server events."""


def notice_event(notice: Notice) -> dict[str, Any]:
    """The local event (``vlab.connection_lost``, ``vlab.reconnect``, …) that reports a notice."""
    if isinstance(notice, ConnectionLoss):
        error = {"code": notice.code, "message": notice.what}
        return {"type": protocol.CONNECTION_LOST, "error": error, "response_id": notice.response_id}
    if isinstance(notice, ReconnectFailed):
        return {
            "type": protocol.RECONNECT_FAILED,
            "attempt": notice.attempt,
            "error": {"message": notice.error},
        }
    kind = protocol.RECONNECT if isinstance(notice, Reconnecting) else protocol.RECONNECTED
    loss = notice.loss
    return {
        "type": kind,
        "attempt": notice.attempt,
        "reason": loss.what,
        "lost_response_id": loss.response_id,
    }


def connect_advice(target: Target, reason: str) -> str:
    """Why connecting to ``target`` failed (``reason``, redacted) and what to check, by how it authenticates."""
    hint = (
        f"check the key ({ENV_API_KEY}) and the endpoint ({ENV_ENDPOINT})"
        if target.auth == "api_key"
        else "check that your Entra ID identity has the 'Cognitive Services User' role on the resource"
        if target.auth == "entra_id"
        else "the embedded emulator refused the connection"
    )
    return f"could not connect to {target.describe()}: {redact(reason, target)}; {hint}"


def redact(text: str, target: Target) -> str:
    """``text`` with the target's API key replaced by ``****`` (see :func:`redact_secret`)."""
    return redact_secret(text, target.api_key.reveal()) if target.api_key is not None else text


_WORD_CHARS = "A-Za-z0-9_\\-"
LONG_SECRET_CHARS = 8
"""A secret this long or longer is redacted wherever it occurs, even inside a longer word."""


def redact_secret(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced by ``****`` as a whole token.

    A short secret (a local key such as ``k`` or ``dev-key``) is replaced only where it stands as a
    token of its own, so the rest of the message stays readable; a long one (a real key) wherever it
    occurs.
    """
    if not secret:
        return text
    if len(secret) >= LONG_SECRET_CHARS:
        return text.replace(secret, "****")
    pattern = f"(?<![{_WORD_CHARS}]){re.escape(secret)}(?![{_WORD_CHARS}])"
    return re.sub(pattern, "****", text)
