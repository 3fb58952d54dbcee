"""How a replay on the emulator lets its tool runner answer before it says its audio has ended.

``feed._answer_calls`` asks for the input timeline again and lets the runner catch up, round after round,
until a round brings no new answer from the client. An approval is such an answer: the approved call runs
after it and holds time until the runner asks for its spoken answer, which a round that stopped at the
approval would leave to the free-running timeline.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vlab import protocol
from vlab.feed import _answer_calls


class _Session:
    """What the rounds use of a Session: ``send`` and ``wait_for`` (the emulator's reply), ``records``."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.rounds = 0

    async def send(self, event: dict[str, Any]) -> None:
        assert protocol.timeline_mode(event) == protocol.TIMELINE_INPUT
        self.rounds += 1

    async def wait_for(self, match: Any, *, timeout_s: float) -> list[Any]:
        return []


class _Runner:
    """Answers with the client events of each round in turn (none once they run out)."""

    def __init__(self, session: _Session, rounds: list[list[str]]) -> None:
        self.session, self.rounds = session, rounds

    async def caught_up(self) -> None:
        for kind in self.rounds.pop(0) if self.rounds else []:
            self.session.records.append(SimpleNamespace(type=kind, direction="client"))


async def test_an_approval_is_an_answer_so_another_round_lets_the_approved_call_be_answered():
    session = _Session()
    approval, answer = protocol.CLIENT_ITEM_CREATE, protocol.CLIENT_RESPONSE_CREATE
    runner = _Runner(session, [[approval], [answer], []])  # approve; ask for the call's spoken answer; done
    await _answer_calls(session, runner, timeout_s=1.0)  # type: ignore[arg-type]
    assert session.rounds == 3 and runner.rounds == []


async def test_the_rounds_end_with_one_that_brings_no_answer():
    session = _Session()
    runner = _Runner(session, [[protocol.CLIENT_ITEM_CREATE, protocol.CLIENT_RESPONSE_CREATE], []])
    await _answer_calls(session, runner, timeout_s=1.0)  # type: ignore[arg-type]
    assert session.rounds == 2
    session.rounds = 0
    await _answer_calls(session, _Runner(session, []), timeout_s=1.0)  # type: ignore[arg-type]
    assert session.rounds == 1
