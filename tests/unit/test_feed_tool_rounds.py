"""How a replay on the emulator lets its tool runner answer before it says its audio has ended.

``feed._answer_calls`` asks for the input timeline again and lets the runner catch up, round after round,
until a round brings no new answer from the client. An approval is such an answer: the approved call runs
after it and holds time until the runner asks for its spoken answer, which a round that stopped at the
approval would leave to the free-running timeline.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from vlab import protocol
from vlab.errors import NotAnswered
from vlab.feed import ANSWER_SILENCE_MS, MAX_ANSWER_SILENCE_MS, _answer_calls
from vlab.session.barge_in import BargeIn


class _Session:
    """What the rounds use of a Session: ``send`` and ``wait_for`` (the emulator's reply), ``records``,
    ``barge_in`` (what ``input`` updates say the client does on a barge-in)."""

    def __init__(self, timeouts: int = 0) -> None:
        self.barge_in = BargeIn.ON
        self.records: list[Any] = []
        self.rounds = 0
        self.timeouts = timeouts  # how many waits time out first (nothing answered within timeout_s)
        self.meanwhile: list[Any] = []  # what happens during the next waits, one each

    async def send(self, event: dict[str, Any]) -> None:
        assert protocol.timeline_mode(event) == protocol.TIMELINE_INPUT
        self.rounds += 1

    async def wait_for(self, match: Any, *, timeout_s: float) -> list[Any]:
        if self.meanwhile:
            self.meanwhile.pop(0)()
        if self.timeouts:
            self.timeouts -= 1
            raise TimeoutError("no session.updated")
        return []


async def _no_input(ms: float) -> None:
    raise AssertionError("the runner is idle: no silence is needed")


class _Runner:
    """Answers with the client events of each round in turn (none once they run out)."""

    def __init__(self, session: _Session, rounds: list[list[str]], pending: int = 0) -> None:
        self.session, self.rounds = session, rounds
        self.pending = {f"approval_{i}": object() for i in range(pending)}  # waiting for a person
        self.people_asked = pending
        self.waited_for_a_person = 0
        self.busy_rounds = 0  # rounds after which a response is still under way (past the audio's end)

    @property
    def idle(self) -> bool:
        return self.busy_rounds == 0

    async def caught_up(self) -> None:
        for kind in self.rounds.pop(0) if self.rounds else []:
            self.session.records.append(SimpleNamespace(type=kind, direction="client"))

    async def decided(self) -> None:
        self.waited_for_a_person += 1
        self.pending.clear()  # the person pressed a button


async def test_an_approval_is_an_answer_so_another_round_lets_the_approved_call_be_answered():
    session = _Session()
    approval, answer = protocol.CLIENT_ITEM_CREATE, protocol.CLIENT_RESPONSE_CREATE
    runner = _Runner(session, [[approval], [answer], []])  # approve; ask for the call's spoken answer; done
    await _answer_calls(session, runner, timeout_s=1.0, more_input=_no_input)  # type: ignore[arg-type]
    assert session.rounds == 3 and runner.rounds == []


async def test_the_rounds_end_with_one_that_brings_no_answer():
    session = _Session()
    runner = _Runner(session, [[protocol.CLIENT_ITEM_CREATE, protocol.CLIENT_RESPONSE_CREATE], []])
    await _answer_calls(session, runner, timeout_s=1.0, more_input=_no_input)  # type: ignore[arg-type]
    assert session.rounds == 2
    session.rounds = 0
    await _answer_calls(session, _Runner(session, []), timeout_s=1.0, more_input=_no_input)  # type: ignore[arg-type]
    assert session.rounds == 1


async def test_a_person_deciding_an_approval_past_the_timeout_does_not_fail_the_round():
    """The emulator holds its time at the request until the person answers, so its reply to the round's
    update comes after them: the wait goes on, however long they take, and times out again from there."""
    session = _Session(timeouts=1)
    runner = _Runner(session, [[protocol.CLIENT_ITEM_CREATE], []], pending=1)
    await _answer_calls(session, runner, timeout_s=1.0, more_input=_no_input)  # type: ignore[arg-type]
    assert runner.waited_for_a_person == 1 and session.rounds == 2


async def test_a_person_who_decided_during_the_wait_restarts_its_timeout():
    """Asked and answered while the round waited: the emulator's reply may still be on its way."""
    session = _Session(timeouts=1)
    runner = _Runner(session, [[protocol.CLIENT_ITEM_CREATE], []])

    def asked_and_answered() -> None:
        runner.people_asked += 1

    session.meanwhile.append(asked_and_answered)
    await _answer_calls(session, runner, timeout_s=1.0, more_input=_no_input)  # type: ignore[arg-type]
    assert runner.waited_for_a_person == 1 and session.rounds == 2


async def test_a_round_the_emulator_does_not_answer_in_time_fails_when_nobody_is_deciding():
    session = _Session(timeouts=1)
    with pytest.raises(NotAnswered, match=r"^the prompt was not answered within 1 s \(0 turns detected"):
        await _answer_calls(session, _Runner(session, []), timeout_s=1.0, more_input=_no_input)  # type: ignore[arg-type]
    session = _Session(timeouts=2)  # a person decided, and the reply still does not come
    with pytest.raises(NotAnswered):
        await _answer_calls(session, _Runner(session, [], pending=1), timeout_s=1.0, more_input=_no_input)  # type: ignore[arg-type]


async def test_while_a_response_is_still_under_way_past_the_audio_the_rounds_send_the_user_s_silence():
    """A chain's next call (or the answer) ends past the prompt's last sample: on the input timeline it
    happens only as more audio arrives, so each idle round sends another second of silence."""
    session = _Session()
    runner = _Runner(session, [])
    runner.busy_rounds = 2
    sent: list[float] = []

    async def more_input(ms: float) -> None:
        sent.append(ms)
        runner.busy_rounds -= 1  # the response under way has reached its end

    await _answer_calls(session, runner, timeout_s=1.0, more_input=more_input)  # type: ignore[arg-type]
    assert sent == [ANSWER_SILENCE_MS] * 2 and session.rounds == 3


async def test_a_runner_that_stays_busy_is_let_go_after_two_minutes_of_silence():
    session = _Session()
    runner = _Runner(session, [])
    runner.busy_rounds = 10**6
    sent: list[float] = []

    async def more_input(ms: float) -> None:
        sent.append(ms)

    await _answer_calls(session, runner, timeout_s=1.0, more_input=more_input)  # type: ignore[arg-type]
    assert sum(sent) == MAX_ANSWER_SILENCE_MS
