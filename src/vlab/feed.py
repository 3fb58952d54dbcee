"""Feed recorded audio into a session as the user's speech, and wait until everything it caused is done.

On vlab's emulator (embedded, or any endpoint whose events carry simulated times), a prompt is fed on the emulator's *input timeline* (``docs/timeline.md``): before the
audio the session asks the emulator to let time follow the audio only (``vlab.timeline = "input"``), and
after it says the audio has ended (``"ended"``). The emulator answers that last ``session.updated`` once it
has nothing left to do, so "answered" is an event, not a guess, and every decision and figure is the same
at any replay speed and under any load.

Against Azure the audio is paced in real time and the wait ends when every detected turn has its answer
and nothing new arrived for a while (the service sends no "done" signal).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from vlab import protocol
from vlab.audio import g711
from vlab.audio.pcm import silence
from vlab.clock import NS_PER_S
from vlab.errors import NotAnswered, VlabError
from vlab.protocol_limits import SERVER_VAD, turn_detection_defaults

if TYPE_CHECKING:
    from vlab.session import Session, ToolRunner

NO_SPEECH_GRACE_S = 5.0
"""Azure only: after all audio is sent, how long to wait for ``speech_started`` before calling a prompt silent."""

SETTLE_S = 1.5
"""Azure only: how long nothing new must arrive, once every turn is answered, before the run counts as done."""


SILENCE_MARGIN_MS = 700
"""Silence sent after a prompt beyond the turn detection's own silence timer, so the timer runs out."""

ANSWER_SILENCE_MS = 1000
"""On the emulator, silence sent after a prompt, a round at a time, while its tool calls are still being
answered: the input timeline advances only with the client's audio, and a response under way (a chain's
next call, the spoken answer) can end past the prompt's last sample. A microphone sends it too."""

MAX_ANSWER_SILENCE_MS = 120_000
"""At most this much of it: a runner still busy after two minutes of the user's silence is let go."""


def trailing_silence_ms(turn_detection: Any) -> int:
    """Silence to send after a prompt so that the server VAD ends its turn (0 for manual turns).

    Args:
        turn_detection: A :class:`~vlab.settings.SessionSettings` ``turn_detection`` (None: manual turns).
    """
    if turn_detection is None:
        return 0
    silence = getattr(turn_detection, "silence_duration_ms", None)
    if not isinstance(silence, int):
        silence = turn_detection_defaults(getattr(turn_detection, "type", SERVER_VAD)).silence_duration_ms
    return int(silence) + SILENCE_MARGIN_MS


class NoSpeechDetected(VlabError):
    """The server VAD found no speech in a prompt that was sent whole.

    ``fix`` says how to lower the threshold where the user set it; ``events`` is the run folder, if any.
    """

    def __init__(
        self,
        *,
        fix: str = "lower the turn detection's threshold",
        events: os.PathLike[str] | str | None = None,
    ) -> None:
        self.fix, self.events = fix, events
        where = f"; the events are in {events}" if events is not None else ""
        super().__init__(
            f"no speech was detected in the prompt (all of it has been sent): check that it holds speech, or {fix}"
            + where
        )


async def feed_prompt(
    session: Session,
    pcm: bytes,
    *,
    speed: float,
    timeout_s: float,
    commit: bool = False,
    send: Callable[[bytes], Awaitable[None]] | None = None,
    tools: ToolRunner | None = None,
) -> None:
    """Send ``pcm`` as the user's audio and wait until the session has nothing left to answer.

    On the emulator a session can take several prompts this way: before each one, the user's silence
    while the previous answer played is sent first, so the input timeline stays where the emulator's is.

    Args:
        session: An open session.
        pcm: PCM16 at the session's input rate (``input_sample_rate``), with the silence after the last word
            (the VAD needs it); sent in the session's input format.
        speed: Pacing of the audio (1 = real time, ``math.inf`` = no waiting).
        timeout_s: Give up after this many seconds of wall time.
        commit: Commit the audio and ask for a response after it (no server VAD).
        send: Sends the audio (PCM16, as given) instead of ``session.stream_audio`` (for a level meter).
        tools: The runner answering the session's tool calls (function calls, MCP approvals, the
            answer to an MCP call). On the emulator each answer then happens on the input timeline where
            its call ended (after the function's ``run_ms``), at any speed, a chain's calls past the
            prompt's last sample included (a committed turn's are all past it): the user's silence
            follows the prompt meanwhile (:func:`_answer_calls`).

    Raises:
        NoSpeechDetected: The server VAD found no speech in the whole prompt.
        Throttled: The server answered with a rate-limit error (``rate_limit_exceeded``).
        NotAnswered: Not answered in time.
    """
    since = len(session.records)
    on_emulator = session.simulated_timeline
    if on_emulator:
        await set_timeline(session, protocol.TIMELINE_INPUT, timeout_s=timeout_s)
        pcm = _silence_since_last_answer(session) + pcm
    await _send_pcm16(session, speed, send, pcm)
    if commit:
        await session.commit()
        await session.create_response()
    if on_emulator:
        if tools is not None:
            more = functools.partial(_send_silence, session, speed, send)
            await _answer_calls(session, tools, timeout_s, more_input=more)
        elif _client_cancels(session):
            await _answer_barge_ins(session, timeout_s)
        await set_timeline(session, protocol.TIMELINE_ENDED, timeout_s=timeout_s)
        await wait_for_reaction_replies(session, timeout_s)
        _raise_if_throttled(session, since)
        if not commit and not _server_types(session).count(protocol.SPEECH_STARTED):
            raise NoSpeechDetected()
        return
    if commit:
        await wait_until_answered(session, timeout_s, since=since)
    else:
        await wait_until_settled(session, timeout_s)
    _raise_if_throttled(session, since)


async def _answer_calls(
    session: Session,
    tools: ToolRunner,
    timeout_s: float,
    more_input: Callable[[float], Awaitable[None]],
) -> None:
    """Let ``tools`` answer every tool call the audio sent so far leads to, before ``"ended"``.

    On the input timeline the emulator holds time at a tool call until the client answers it
    (``docs/timeline.md``). An ``"input"`` update is answered once every step up to where the client is
    has run (a held call's time, or the end of the audio): then the runner has seen every call made so
    far and answers it. Repeated until a round brings no new answer: no ``response.create`` and no item
    (an output, an approval). An approval counts: the approved call runs after it, and holds time again
    until the runner asks for its spoken answer, which a round that ended on the approval would miss.
    And while the runner still has work under way past the end of the audio (a response: a chain's next
    call or the answer; or the response a committed turn asked for, which comes after the audio it
    answers), ``more_input`` sends the user's silence for another round (:data:`ANSWER_SILENCE_MS`), so
    that work too happens on the input timeline.
    """
    silence_ms = 0.0
    while True:
        answered = _answers_sent(session)
        await set_timeline(session, protocol.TIMELINE_INPUT, timeout_s=timeout_s, tools=tools)
        await tools.caught_up()
        if _answers_sent(session) != answered:
            continue
        if tools.idle or silence_ms >= MAX_ANSWER_SILENCE_MS:
            return
        await more_input(ANSWER_SILENCE_MS)
        silence_ms += ANSWER_SILENCE_MS


async def _send_silence(
    session: Session, speed: float, send: Callable[[bytes], Awaitable[None]] | None, duration_ms: float
) -> None:
    """Send ``duration_ms`` of the user's silence, as the prompt was sent."""
    await _send_pcm16(session, speed, send, silence(duration_ms, session.settings.input_sample_rate))


async def _send_pcm16(
    session: Session, speed: float, send: Callable[[bytes], Awaitable[None]] | None, pcm: bytes
) -> None:
    """Send PCM16 through ``send`` as it is, or stream it paced at ``speed`` in the session's input format."""
    if send is not None:
        await send(pcm)
    else:
        await session.stream_audio(g711.from_pcm16(pcm, session.settings.input_audio_format), speed=speed)


def _answers_sent(session: Session) -> int:
    """The client's answers so far: responses asked for or cancelled, items sent (outputs, approvals)."""
    answers = (protocol.CLIENT_RESPONSE_CREATE, protocol.CLIENT_ITEM_CREATE, protocol.CLIENT_RESPONSE_CANCEL)
    return sum(r.type in answers and r.direction == "client" for r in session.records)


def _client_cancels(session: Session) -> bool:
    """:func:`vlab.session.barge_in.client_cancels` of ``session``."""
    from vlab.session.barge_in import client_cancels

    return client_cancels(session.barge_in, session.server_session)


async def _answer_barge_ins(session: Session, timeout_s: float) -> None:
    """Let the session cancel each reply the user spoke over before ``"ended"``.

    On the input timeline the emulator holds time at such a ``speech_started`` until the client's
    ``response.cancel`` arrives (``docs/timeline.md``); an ``"input"`` update is answered once every step up
    to the hold has run, and the session has cancelled by then (its reader cancels before it reads on).
    Repeated until a round brings no new cancel.
    """
    while True:
        answered = _answers_sent(session)
        await set_timeline(session, protocol.TIMELINE_INPUT, timeout_s=timeout_s)
        if _answers_sent(session) == answered:
            return


def _raise_if_throttled(session: Session, since: int) -> None:
    """Raise :class:`~vlab.errors.Throttled` when the server refused this prompt for its rate limit."""
    from vlab.session.connect_errors import throttled_in_session

    for record in session.records[since:]:
        if record.type == protocol.ERROR and record.direction == "server":
            error = throttled_in_session(record.error_code, record.error_message, session.target.describe())
            if error is not None:
                raise error


def _silence_since_last_answer(session: Session) -> bytes:
    """The silence from the end of the audio sent so far to the emulator's latest simulated time."""
    latest_ms = max((r.sim_ms for r in session.records if r.sim_ms is not None), default=0.0)
    gap_ms = latest_ms - session.input_ms
    rate = session.settings.input_sample_rate
    return bytes(2 * math.ceil(gap_ms * rate / 1000.0)) if gap_ms > 0 else b""


async def set_timeline(
    session: Session, mode: str, *, timeout_s: float, tools: ToolRunner | None = None
) -> None:
    """Tell the emulator how its simulated time advances, and wait for its answer.

    The answer to ``"ended"`` comes once the emulator has done everything the audio caused. An ``"input"``
    update sent while an approval request waits for a person (``tools``' :attr:`~ToolRunner.pending`) is
    answered once they decide, since the emulator holds its time for them: a wait in which a person was
    deciding does not time out, and ``timeout_s`` runs again from their answer.

    Raises:
        NotAnswered: No answer within ``timeout_s`` (and nobody was deciding meanwhile).
    """
    from vlab.session.barge_in import BargeIn

    metadata = {protocol.TIMELINE_METADATA_KEY: mode}
    if mode == protocol.TIMELINE_INPUT:  # whether time waits for its cancel when the user speaks over a reply
        cancels = session.barge_in is BargeIn.ON
        metadata[protocol.BARGE_IN_METADATA_KEY] = (
            protocol.BARGE_IN_CANCELS if cancels else protocol.BARGE_IN_LETS_RUN
        )
    await session.send({"type": protocol.CLIENT_SESSION_UPDATE, "session": {"metadata": metadata}})
    while True:
        deciding = tools is not None and bool(tools.pending)
        asked = tools.people_asked if tools is not None else 0
        try:
            await session.wait_for(
                lambda e: e.get("type") == protocol.SESSION_UPDATED and protocol.timeline_mode(e) == mode,
                timeout_s=timeout_s,
            )
            return
        except TimeoutError:
            if tools is None or not (deciding or tools.people_asked != asked):  # nobody decided meanwhile
                raise _not_answered(session, timeout_s) from None
            await tools.decided()


_REPLIES = {
    protocol.CLIENT_ITEM_TRUNCATE: protocol.ITEM_TRUNCATED,
    protocol.CLIENT_RESPONSE_CANCEL: protocol.RESPONSE_DONE,
}
"""What answers each request the session sends on its own (a barge-in's cancel and truncation)."""


def _unanswered(session: Session) -> int:
    """Barge-in requests the session sent that have no answer (nor an error) in the log yet."""
    waiting: list[str] = []
    for r in session.records:
        if r.direction == "client" and r.type in _REPLIES:
            waiting.append(_REPLIES[r.type])
        elif r.direction == "server" and (r.type in waiting or r.type == protocol.ERROR):
            if r.type in waiting:
                waiting.remove(r.type)
            elif waiting:
                waiting.pop(0)
    return len(waiting)


async def wait_for_reaction_replies(session: Session, timeout_s: float) -> None:
    """Wait until the server has answered what the session sent in reaction to it (barge-in).

    The session reacts to the emulator's events as they arrive, so at high speed its reaction can reach
    the emulator after the end of the audio; waiting for the answer keeps the log complete either way.
    """
    while _unanswered(session):
        await session.wait_for(
            lambda e: e.get("type") in (*_REPLIES.values(), protocol.ERROR), timeout_s=timeout_s
        )


def speech_never_ended(session: Session, since: int = 0) -> bool:
    """Whether the server VAD heard speech start after record ``since`` and never heard it end.

    No turn ended, so nothing was answered: a threshold so low that the VAD takes the silence for speech
    (0.0), or audio that stops mid-word with no silence after it.
    """
    types = [r.type for r in session.records[since:] if r.direction == "server"]
    return types.count(protocol.SPEECH_STARTED) > types.count(protocol.SPEECH_STOPPED)


SPEECH_NEVER_ENDED = (
    "the server VAD heard speech start and never end, so no turn ended and nothing was answered: a threshold "
    "this low takes the silence after the words for speech (raise it), or the audio stops mid-word"
)
"""What :func:`speech_never_ended` means for a user, where a run got no answer because of it."""


def _server_types(session: Session) -> list[str]:
    return [r.type for r in session.records if r.direction == "server"]


async def wait_until_answered(session: Session, timeout_s: float, *, since: int = 0) -> None:
    """Wait for a ``response.done`` after the last committed user turn, with no response still running.

    Args:
        session: An open session.
        timeout_s: Give up after this many seconds.
        since: Only a turn committed after this many records counts (``len(session.records)`` before a
            prompt was sent: the answer to an earlier prompt does not answer this one).

    Raises:
        NoSpeechDetected: Nothing was committed and the server VAD reported no speech for a while after
            the audio was sent.
        NotAnswered: Not answered in time.
    """
    clock = session.clock  # the session's: its wait_for timeouts run on it too
    started = clock.monotonic_ns()
    deadline = started + round(timeout_s * NS_PER_S)
    while True:
        server = [r.type for r in session.records[since:] if r.direction == "server"]
        last_commit = max((i for i, t in enumerate(server) if t == protocol.COMMITTED), default=-1)
        if (
            last_commit >= 0
            and _server_types(session).count(protocol.RESPONSE_CREATED)
            == _server_types(session).count(protocol.RESPONSE_DONE)
            and protocol.RESPONSE_DONE in server[last_commit:]
        ):
            return
        remaining = (deadline - clock.monotonic_ns()) / NS_PER_S
        if remaining <= 0:
            raise _not_answered(session, timeout_s, since)
        try:
            await session.wait_for(
                lambda e: e.type in (protocol.RESPONSE_DONE, protocol.COMMITTED),
                timeout_s=min(remaining, 1.0),
            )
        except TimeoutError:
            quiet_s = (clock.monotonic_ns() - started) / NS_PER_S  # a loaded server may report speech late
            if (
                quiet_s >= NO_SPEECH_GRACE_S
                and session.settings.turn_detection is not None
                and protocol.SPEECH_STARTED not in server
            ):
                raise NoSpeechDetected() from None


async def wait_until_settled(session: Session, timeout_s: float, settle_s: float = SETTLE_S) -> None:
    """Wait until every detected turn has its answer and nothing new arrived for ``settle_s``."""
    clock = session.clock
    deadline = clock.monotonic_ns() + round(timeout_s * NS_PER_S)
    while (left_s := (deadline - clock.monotonic_ns()) / NS_PER_S) > 0:
        types = _server_types(session)
        started, stopped = types.count(protocol.SPEECH_STARTED), types.count(protocol.SPEECH_STOPPED)
        created, done = types.count(protocol.RESPONSE_CREATED), types.count(protocol.RESPONSE_DONE)
        idle = started == stopped and created == done
        try:
            await session.wait_for(lambda e: True, timeout_s=max(0.01, min(settle_s, left_s)))
        except TimeoutError:
            if idle:
                return
    raise NotAnswered(f"the run did not settle within {timeout_s:g} s")


def _not_answered(session: Session, timeout_s: float, since: int = 0) -> NotAnswered:
    """The error for a prompt not answered within ``timeout_s``, with how far the server got."""
    server = [r.type for r in session.records[since:] if r.direction == "server"]
    return NotAnswered(
        f"the prompt was not answered within {timeout_s:g} s "
        f"({server.count(protocol.SPEECH_STOPPED)} turns detected, "
        f"{server.count(protocol.RESPONSE_DONE)} responses finished)"
    )
