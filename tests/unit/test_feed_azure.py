"""How a prompt's wait ends against Azure, which sends no simulated time: on the session's clock (virtual here).

The emulator path (``docs/timeline.md``) ends on an event; Azure's ends when every turn is answered, or, with
no answer, after the grace and the timeout. Events come through the session's real :class:`EventFeed`.
"""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any

import pytest

from vlab import ServerVad, SessionSettings
from vlab.clock import VirtualClock
from vlab.errors import NotAnswered, Throttled
from vlab.feed import (
    NO_SPEECH_GRACE_S,
    NoSpeechDetected,
    feed_prompt,
    wait_until_answered,
    wait_until_settled,
)
from vlab.log import record_from_event
from vlab.session.readers import EventFeed
from vlab.session.sdk_adapter import server_event

TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
]


class AzureLikeSession:
    """What the Azure path reads of a Session: its records, settings, clock and ``wait_for``."""

    target = SimpleNamespace(describe=lambda: "wss://example.services.ai.azure.com (gpt-realtime)")
    simulated_timeline = False  # Azure stamps no simulated time

    def __init__(self, *, manual: bool = False) -> None:
        self.clock = VirtualClock(start_ns=1000 * 10**9)  # not at 0: times are measured from the start
        self.records: list[Any] = []
        self.settings = SessionSettings(turn_detection=None if manual else ServerVad())
        self._feed = EventFeed(self.clock, 10_000, server_event)
        self._feed.start()

    def receive(self, *events: str | dict[str, Any]) -> None:
        for given in events:
            event = {"type": given} if isinstance(given, str) else given
            event["event_id"] = f"e{len(self.records)}"
            if event["type"].startswith("response."):
                event["response"] = {"id": "r", "status": "completed"}
            t_ns = self.clock.monotonic_ns()
            self.records.append(
                record_from_event(event, direction="server", seq=len(self.records), t_ns=t_ns, wall_ns=0)
            )
            self._feed.put(event)

    async def stream_audio(self, pcm: bytes, *, speed: float) -> None:
        self.sent = pcm

    async def commit(self) -> None:
        self.committing = True

    async def create_response(self) -> None:
        self.asked = True

    async def wait_for(
        self, match: Any, *, timeout_s: float, count: int = 1, typed: bool = True
    ) -> list[Any]:
        return await self._feed.wait_for(match, timeout_s=timeout_s, count=count, typed=typed)


async def still_waiting(task: asyncio.Task[None], session: AzureLikeSession) -> bool:
    """Let the task run until it sleeps on the clock; whether it is still waiting then."""
    sleeping = asyncio.ensure_future(session.clock.wait_for_sleepers())
    await asyncio.wait([task, sleeping], return_when=asyncio.FIRST_COMPLETED)
    sleeping.cancel()
    return not task.done()


async def run_out(task: asyncio.Task[None], session: AzureLikeSession) -> float:
    """Move virtual time on from sleeper to sleeper until the task ends; the virtual seconds it took (or its error)."""
    start = session.clock.monotonic_ns()
    while await still_waiting(task, session):
        session.clock.advance_to_next()
    await task  # its result, or what it raised
    return (session.clock.monotonic_ns() - start) / 1e9


async def test_a_turn_is_answered_by_the_response_done_after_its_commit_with_no_response_running():
    session = AzureLikeSession()
    session.receive(
        "input_audio_buffer.speech_started", "response.created", "response.done"
    )  # an earlier one
    since = len(session.records)
    task = asyncio.create_task(wait_until_answered(session, 30.0, since=since))
    session.receive(*TURN, "response.created", "response.created")  # two responses run
    session.receive("response.done")
    assert await still_waiting(task, session)  # one is still running
    session.receive("response.done")
    await task


async def test_an_answer_before_since_does_not_answer_this_prompt():
    session = AzureLikeSession()
    session.receive(*TURN, "response.created", "response.done")
    task = asyncio.create_task(wait_until_answered(session, 30.0, since=len(session.records)))
    assert await still_waiting(task, session)
    session.receive(*TURN)
    assert await still_waiting(task, session)  # committed, not yet answered
    session.receive("response.created", "response.done")
    await task


async def test_no_speech_at_all_is_called_after_the_grace_on_the_session_s_clock():
    session = AzureLikeSession()
    task = asyncio.create_task(wait_until_answered(session, 30.0))
    with pytest.raises(NoSpeechDetected, match="no speech was detected"):
        await run_out(task, session)
    assert session.clock.monotonic_ns() / 1e9 - 1000 == pytest.approx(NO_SPEECH_GRACE_S, abs=1.0)


async def test_speech_never_answered_times_out_with_what_was_detected():
    session = AzureLikeSession()
    session.receive("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped")
    task = asyncio.create_task(wait_until_answered(session, 30.0))
    with pytest.raises(
        NotAnswered, match=r"not answered within 30 s \(1 turns detected, 0 responses finished\)"
    ):
        await run_out(task, session)
    assert session.clock.monotonic_ns() / 1e9 - 1000 == pytest.approx(30.0)


async def test_a_manual_turn_is_answered_from_its_commit():
    session = AzureLikeSession(manual=True)
    task = asyncio.create_task(wait_until_answered(session, 30.0))
    session.receive("input_audio_buffer.committed", "response.created")
    assert await still_waiting(task, session)
    session.receive("response.done")
    await task


@pytest.mark.parametrize("code", ["rate_limit_exceeded", "invalid_value"])
async def test_a_rate_limit_error_during_a_prompt_is_raised_as_throttled(code):
    session = AzureLikeSession(manual=True)
    task = asyncio.create_task(feed_prompt(session, bytes(3200), speed=math.inf, timeout_s=30.0, commit=True))
    assert await still_waiting(task, session) and session.sent == bytes(3200) and session.asked
    error = {
        "type": "error",
        "error": {"type": "invalid_request_error", "code": code, "message": "Slow down."},
    }
    session.receive(error, "input_audio_buffer.committed", "response.created", "response.done")
    if code != "rate_limit_exceeded":
        await task  # another error is the log's to show, not the prompt's failure
        return
    with pytest.raises(
        Throttled, match=r"throttled the session \(rate_limit_exceeded: Slow down.\) for wss://"
    ):
        await task


async def test_manual_turns_are_never_called_silent():
    session = AzureLikeSession(manual=True)
    task = asyncio.create_task(wait_until_answered(session, 12.0))
    with pytest.raises(NotAnswered, match="not answered within 12 s"):
        await run_out(task, session)


async def test_settled_once_every_turn_is_answered_and_nothing_came_for_the_settle_time():
    session = AzureLikeSession()
    task = asyncio.create_task(wait_until_settled(session, 30.0, settle_s=1.5))
    session.receive("input_audio_buffer.speech_started")
    session.clock.advance_s(1.0)
    assert await still_waiting(task, session)
    session.receive("input_audio_buffer.speech_stopped", "response.created")  # a turn, and its response
    session.clock.advance_s(1.4)  # open a while: not settled
    assert await still_waiting(task, session)
    session.receive("response.done")
    assert await run_out(task, session) == pytest.approx(1.5)  # quiet for 1.5 s after the answer


async def test_a_turn_left_open_never_settles():
    session = AzureLikeSession()
    session.receive("input_audio_buffer.speech_started")
    task = asyncio.create_task(wait_until_settled(session, 10.0, settle_s=1.5))
    with pytest.raises(NotAnswered, match="did not settle within 10 s"):
        await run_out(task, session)
    assert session.clock.monotonic_ns() / 1e9 - 1000 == pytest.approx(10.0, abs=0.02)
