"""Losing and recovering a Voice Live connection: the reconnect policy and how a loss is described.

:class:`Reconnect` is the policy a :class:`vlab.Session` follows when its connection is lost;
:class:`ConnectionLoss` turns what the SDK reported (a close code, a vanished socket, a stall) into a
sentence a user can act on, and into the :class:`~vlab.errors.ConnectionFailed` the session raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlab.errors import ConfigError, ConnectionFailed

if TYPE_CHECKING:
    from vlab.endpoint import Target
    from vlab.session import Session


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


class ConnectionLoss:
    """How a connection was lost: a short ``code`` and a sentence ``what`` (no advice; see :meth:`error`).

    Codes: ``dropped`` (no close frame), ``closed`` (a close frame), ``server_error`` (an error event, then
    a close), ``stalled`` (no event while one was due), ``protocol_error`` (not the Voice Live protocol).
    """

    def __init__(self, code: str, what: str) -> None:
        self.code = code
        self.what = what

    @classmethod
    def closed(cls, session: Session, code: int | None, reason: str) -> ConnectionLoss:
        """The socket closed: with a close frame (``code``), without one, or after a server error event."""
        last = next((r for r in reversed(session.records) if r.direction == "server"), None)
        server_error = ""
        if last is not None and last.type == "error":
            server_error = f"the server reported an error ({last.error_code}: {last.error_message}) and then "
        reason = redact(reason or "", session.target)
        # The SDK reports a close frame as (its code, ""), a vanished socket as (1000, "Connection closed")
        # or (1006, <transport error>).
        no_frame = (
            code is None or (code == 1000 and reason == "Connection closed") or (code == 1006 and reason)
        )
        if no_frame:
            return cls(
                "dropped",
                f"{server_error}the connection was dropped (the socket closed without a close frame)",
            )
        code_text = f"code {code}" + (f": {reason}" if reason else "") + _close_meaning(code)
        if server_error:
            return cls("server_error", f"{server_error}closed the connection ({code_text})")
        return cls("closed", f"the server closed the connection ({code_text})")

    @classmethod
    def stall(cls, session: Session) -> ConnectionLoss:
        """No server event for ``session.stall_timeout_s`` while an answer was due."""
        waiting = (
            f"response {session._active_response} was in progress"
            if session._active_response is not None
            else "a reply was due"
        )
        return cls(
            "stalled",
            f"the connection stalled: no event from the server for {session.stall_timeout_s:g} s while {waiting}",
        )

    def error(self, session: Session) -> ConnectionFailed:
        """The error the session raises: what happened, where the log is, and what to do."""
        where = f" The events so far are in {session.run_dir}." if session.run_dir is not None else ""
        fix = (
            "Open a new session to go on, or pass Session(reconnect=True) to reconnect automatically"
            if session.reconnect is None
            else "Reconnecting did not help: check the network and the service status, then open a new session"
        )
        if self.code == "stalled":
            fix += "; if the service is just slow, raise stall_timeout_s"
        elif self.code == "protocol_error":
            fix = "Check that the endpoint is a Voice Live endpoint (not another service)"
        else:
            fix += "; if it keeps happening, check the network (and proxies or firewalls that cut WebSockets)"
        return ConnectionFailed(f"{self.what} ({session.target.describe()}).{where} {fix}.")


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


def redact(text: str, target: Target) -> str:
    """``text`` with the target's API key replaced by ``****``."""
    key = target.api_key.reveal() if target.api_key is not None else None
    return text.replace(key, "****") if key else text
