"""Barge-in: what the session does when the server reports that the user started speaking.

:class:`BargeIn` names the policy a session follows; :class:`BargeInPolicy` applies it. On
``input_audio_buffer.speech_started`` the policy stops local playback at once (the output's ``clear()``
returns the milliseconds actually heard) and says what to send: ``response.cancel`` for the response in
progress (unless the server cancels it itself, ``interrupt_response``), and ``conversation.item.truncate``
of the assistant item at the milliseconds heard. It sends nothing itself.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlab.audio.playback import AudioOutput
from vlab.errors import ConfigError


class BargeIn(enum.Enum):
    """What the session does when the server reports the user started speaking."""

    ON = "on"
    """Stop playback, cancel the active response, truncate the assistant item at the ms heard."""
    TRUNCATE_ONLY = "truncate_only"
    """Stop playback and truncate, but let the server decide about the response."""
    OFF = "off"
    """Do nothing (the assistant keeps talking over the user)."""


@dataclass(frozen=True, slots=True)
class BargeInAction:
    """What to send after playback stopped, in this order."""

    cancel: bool
    """Send ``response.cancel`` (the response in progress is the client's to cancel)."""
    truncate_item_id: str | None
    """The assistant item to truncate (None: nothing was heard, nothing to cut)."""
    truncate_at_ms: int
    """Where to cut it: the ms of its audio the user heard."""


class BargeInPolicy:
    """Applies a :class:`BargeIn` mode to an audio output.

    Args:
        mode: The policy (or its value: ``"on"``, ``"truncate_only"``, ``"off"``).

    Raises:
        ConfigError: ``mode`` names no policy.
    """

    def __init__(self, mode: BargeIn | str = BargeIn.ON) -> None:
        try:
            self.mode = BargeIn(mode)
        except ValueError:
            names = ", ".join(repr(m.value) for m in BargeIn)
            raise ConfigError(f"barge_in must be one of {names} (or a vlab.BargeIn), got {mode!r}") from None

    def on_speech_started(
        self, output: AudioOutput, *, response_id: str | None, server_interrupts: bool
    ) -> BargeInAction | None:
        """The user started speaking: stop ``output`` and say what to send (None: do nothing).

        Args:
            output: The audio output playing the assistant (stopped here, unless the mode is off).
            response_id: The response in progress, if any.
            server_interrupts: Whether the server cancels responses on speech by itself.
        """
        if self.mode is BargeIn.OFF:
            return None
        item_id = output.current_item_id
        heard_ms = output.clear()
        cancel = self.mode is BargeIn.ON and response_id is not None and not server_interrupts
        cut = item_id if item_id is not None and heard_ms > 0 else None
        return BargeInAction(cancel, cut, int(heard_ms))


def server_interrupts(server_session: Mapping[str, Any] | None) -> bool:
    """Whether the server cancels responses itself on speech (``turn_detection.interrupt_response``).

    Args:
        server_session: The session the server last reported (``session.created``/``updated``).
    """
    td = _turn_detection(server_session)
    return bool(td and td.get("interrupt_response"))


def client_cancels(mode: BargeIn, server_session: Mapping[str, Any] | None) -> bool:
    """Whether a session under ``mode`` cancels the replies the user speaks over, which the server does not.

    The server says it does not: ``turn_detection.interrupt_response`` is false, not merely unsaid.

    Args:
        mode: The session's barge-in policy.
        server_session: The session the server last reported (``session.created``/``updated``).
    """
    td = _turn_detection(server_session)
    return mode is BargeIn.ON and bool(td) and td.get("interrupt_response") is False


def _turn_detection(server_session: Mapping[str, Any] | None) -> Any:
    """The ``turn_detection`` of the session the server last reported (None when it has none)."""
    session = server_session or {}
    return session.get("turn_detection") if hasattr(session, "get") else None
