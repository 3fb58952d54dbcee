"""The session's link on virtual time: reading, stall detection, reconnect back-off, senders that wait.

A :class:`FakeWire` stands in for the SDK connection and a :class:`VirtualClock` for time: the test
pushes server frames, moves the clock deadline by deadline, and checks what the link reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from vlab.clock import VirtualClock
from vlab.errors import ConnectionFailed
from vlab.session.link import Link, LinkEnded, StallWatch, WireClosed, WireError, parse_frame
from vlab.session.reconnect import ConnectionLoss, Reconnect, Reconnected, ReconnectFailed, Reconnecting

MS = 1_000_000
END = object()


class FakeWire:
    """A connection the test drives: it pushes server frames and reads what the code sent."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.dead = False
        """Sending fails (the socket is gone), whether or not the reader has noticed yet."""
        self.closed = False
        self.connection = object()
        """What stands for the SDK connection (``Session.connection``)."""

    def push(self, event: dict[str, Any]) -> None:
        self.inbox.put_nowait(json.dumps(event).encode())

    def push_raw(self, raw: bytes) -> None:
        self.inbox.put_nowait(raw)

    def drop(self, code: int | None = 1006, reason: str = "connection reset by peer") -> None:
        """The socket dies: sends fail at once, the reader's receive fails next."""
        self.dead = True
        self.inbox.put_nowait(WireClosed(code, reason))

    async def recv_bytes(self) -> bytes:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def send(self, event: Any) -> None:
        if self.dead or self.closed:
            raise WireClosed(None, "the WebSocket is closed")
        self.sent.append(dict(event))

    async def close(self) -> None:
        self.closed = True


class FakeServer:
    """Hands out connections (each starting with ``session.created``) or refusals, in order."""

    def __init__(self, clock: VirtualClock, *outcomes: FakeWire | Exception) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.asked_ns: list[int] = []

    async def open(self) -> FakeWire:
        self.asked_ns.append(self.clock.monotonic_ns())
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        outcome.push({"type": "session.created", "event_id": "e0", "session": {"id": "sess"}})
        return outcome


def make_link(server: FakeServer, **options: Any) -> Link:
    async def handshake() -> None:
        created, _ = await link.recv()
        assert created["type"] == "session.created"

    link = Link(server.open, handshake, clock=server.clock, **options)
    return link


async def connected(*wires: FakeWire, **options: Any) -> tuple[VirtualClock, Link]:
    """A link on virtual time to a fake server that hands out ``wires`` in turn, connected."""
    clock = VirtualClock()
    link = make_link(FakeServer(clock, *wires), **options)
    await link.connect()
    return clock, link


class Reader:
    """Runs ``link.events()`` in its own task (as the session does) and hands each item to the test."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with contextlib.aclosing(self.link.events()) as events:
            async for item in events:
                self.items.put_nowait(item)
        self.items.put_nowait(END)

    async def next(self) -> Any:
        return await self.items.get()


@contextlib.asynccontextmanager
async def reading(link: Link) -> AsyncIterator[Reader]:
    reader = Reader(link)
    try:
        yield reader
    finally:
        link.stop()
        reader.task.cancel()
        await asyncio.gather(reader.task, return_exceptions=True)
        await link.close()


def created(response_id: str) -> dict[str, Any]:
    return {"type": "response.created", "event_id": "e1", "response": {"id": response_id}}


# --- what the server owes --------------------------------------------------------------------------------


def test_the_server_owes_an_answer_to_a_request_and_the_rest_of_a_response():
    watch = StallWatch(timeout_ns=300 * MS)
    assert watch.deadline_ns() is None  # nothing asked, nothing in progress: silence is fine
    assert watch.sent("input_audio_buffer.append", 10 * MS) is False  # appends get no answer
    assert watch.deadline_ns() is None
    assert watch.sent("response.create", 20 * MS) is True
    assert watch.sent("conversation.item.create", 50 * MS) is False  # already owed since 20 ms
    assert watch.deadline_ns() == 320 * MS
    watch.received(100 * MS)  # any event answers
    assert watch.deadline_ns() is None
    watch.response_id = "resp_1"
    assert watch.deadline_ns() == 400 * MS  # a response in progress: silence counts from the last event
    watch.received(250 * MS)
    assert watch.deadline_ns() == 550 * MS
    watch.reset()
    assert watch.deadline_ns() is None
    assert StallWatch(timeout_ns=None).sent("response.create", 0) is True
    assert StallWatch(timeout_ns=None).deadline_ns() is None


# --- reading and stalls --------------------------------------------------------------------------------


async def test_frames_are_yielded_as_json_with_their_receive_stamp():
    wire = FakeWire()
    clock, link = await connected(wire)
    assert link.state == "up" and link.generation == 1
    async with reading(link) as reader:
        clock.advance_ns(7 * MS)
        wire.push(created("resp_1"))
        assert await reader.next() == (created("resp_1"), 7 * MS)
        assert link.response_id == "resp_1"
        wire.push({"type": "response.done", "response": {"id": "resp_1"}})
        await reader.next()
        assert link.response_id is None


async def test_silence_while_a_reply_is_due_is_a_stall_exactly_at_the_timeout():
    wire = FakeWire()
    clock, link = await connected(wire, stall_timeout_s=0.3)
    async with reading(link) as reader:
        assert await link.send({"type": "response.create"}) == 0
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == 300 * MS
        clock.advance_ns(300 * MS - 1)
        assert clock.sleepers == 1  # the watchdog sleeps on: not a stall yet
        clock.advance_ns(1)
        loss = await reader.next()
        assert await reader.next() is END  # no reconnect policy: the link ends
    assert loss == ConnectionLoss(
        "stalled", "the connection stalled: no event from the server for 0.3 s while a reply was due"
    )
    assert link.loss == loss and link.state == "ended" and wire.closed
    with pytest.raises(LinkEnded):
        await link.wait_up()


async def test_events_of_a_response_push_the_stall_deadline_back():
    wire = FakeWire()
    clock, link = await connected(wire, stall_timeout_s=0.3)
    async with reading(link) as reader:
        wire.push(created("resp_1"))
        await reader.next()
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == 300 * MS
        clock.advance_ns(200 * MS)
        wire.push({"type": "response.audio.delta", "response_id": "resp_1", "delta": ""})
        assert (await reader.next())[1] == 200 * MS
        clock.advance_ns(100 * MS)  # the first deadline: the watchdog wakes, sees the delta, sleeps on
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == 500 * MS
        clock.advance_to_next()
        loss = await reader.next()
    assert loss.code == "stalled" and loss.response_id == "resp_1"
    assert loss.what.endswith("for 0.3 s while response resp_1 was in progress")


async def test_closing_the_link_while_it_waits_is_not_a_loss_even_past_the_stall_deadline():
    clock = VirtualClock()
    link = make_link(FakeServer(clock, FakeWire()), stall_timeout_s=0.3)
    await link.connect()
    reader = Reader(link)
    await link.send({"type": "response.create"})
    await clock.wait_for_sleepers()
    link.stop()  # the session is closing: its reader is about to be cancelled
    clock.advance_to_next()
    await clock.wait_for_sleepers()  # the watchdog sleeps on instead of interrupting the receive
    assert reader.items.empty() and link.state == "up" and link.loss is None
    reader.task.cancel()
    await asyncio.gather(reader.task, return_exceptions=True)
    await link.close()
    assert reader.items.empty() and link.state == "ended"


@pytest.mark.parametrize(
    ("frames", "code", "what"),
    [
        ([WireClosed(1006, "connection reset")], "dropped", "the connection was dropped"),
        ([WireClosed(1000, "Connection closed")], "dropped", "the connection was dropped"),
        ([WireClosed(4000, "")], "closed", "the server closed the connection (code 4000)"),
        (
            [{"type": "error", "error": {"code": "server_error", "message": "boom"}}, WireClosed(1011, "")],
            "server_error",
            "the server reported an error (server_error: boom) and then closed the connection "
            "(code 1011, server error)",
        ),
        ([b"<html>"], "protocol_error", "the server broke the Voice Live protocol (the server sent a frame"),
        ([b"[1, 2]"], "protocol_error", "not a JSON object: list"),
    ],
    ids=["reset", "vanished", "close frame", "server error", "not json", "not an object"],
)
async def test_each_way_of_losing_the_connection_is_told_apart(frames, code, what):
    clock = VirtualClock()
    wire = FakeWire()
    # a policy, but a protocol error is not worth reconnecting for
    link = make_link(
        FakeServer(clock, wire, FakeWire()),
        reconnect=Reconnect(backoff_s=0),
        redact=lambda text: text.replace("reset", "r***"),
    )
    await link.connect()
    async with reading(link) as reader:
        for frame in frames:
            if isinstance(frame, dict):
                wire.push(frame)
            elif isinstance(frame, bytes):
                wire.push_raw(frame)
            else:
                wire.inbox.put_nowait(frame)
        item = await reader.next()
        while not isinstance(item, ConnectionLoss):
            item = await reader.next()
        if code == "protocol_error":
            assert await reader.next() is END
    assert item.code == code and what in item.what and "reset" not in item.what


async def test_a_consumer_busy_past_the_deadline_is_not_stalled_and_is_looked_at_again_later():
    """Silence while the reader is not receiving (the session is busy with an event) is the session's, not the server's."""
    wire = FakeWire()
    clock, link = await connected(wire, stall_timeout_s=0.3)
    events = link.events()
    busy = asyncio.Event()
    items: asyncio.Queue[Any] = asyncio.Queue()

    async def consume() -> None:  # takes one event, then holds it until the test lets go
        items.put_nowait(await events.__anext__())
        await busy.wait()
        items.put_nowait(await events.__anext__())

    consumer = asyncio.create_task(consume())
    try:
        wire.push(created("resp_1"))
        await items.get()  # the reader yielded it and is not receiving now
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == 300 * MS
        clock.advance_to_next()  # silence until the deadline, but nobody was waiting for the server
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == 375 * MS  # looked at again a quarter of the timeout later
        assert items.empty() and link.state == "up"
        busy.set()  # the consumer receives again; the server is still silent
        clock.advance_to_next()
        loss = await items.get()
        assert isinstance(loss, ConnectionLoss) and loss.code == "stalled" and loss.response_id == "resp_1"
    finally:
        link.stop()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await events.aclose()
        await link.close()


async def test_a_cancel_after_a_stall_and_a_reconnect_is_a_cancel_not_another_stall():
    first, second = FakeWire(), FakeWire()
    clock, link = await connected(first, second, stall_timeout_s=0.3, reconnect=Reconnect(backoff_s=0))
    reader = Reader(link)
    await link.send({"type": "response.create"})
    await clock.wait_for_sleepers()
    clock.advance_to_next()
    loss = await reader.next()
    assert loss.code == "stalled"
    assert await reader.next() == Reconnecting(1, loss)
    assert await reader.next() == Reconnected(1, loss)
    reader.task.cancel()  # from outside, without stop(): the reader stops, nothing is reported
    await asyncio.gather(reader.task, return_exceptions=True)
    assert reader.task.cancelled() and reader.items.empty()
    assert link.loss is None and link.state == "ended"
    await link.close()


async def test_wait_lost_returns_only_once_its_connection_is_gone():
    first, second = FakeWire(), FakeWire()
    clock, link = await connected(first, second, reconnect=Reconnect(backoff_s=0))
    async with reading(link) as reader:
        lost = asyncio.create_task(link.wait_lost(1))
        first.push({"type": "session.updated"})
        await reader.next()
        assert not lost.done()  # connection 1 is up
        first.drop()
        loss = await reader.next()
        await lost
        assert [await reader.next(), await reader.next()] == [Reconnecting(1, loss), Reconnected(1, loss)]
        await link.wait_lost(1)  # long gone: returns at once
        lost = asyncio.create_task(link.wait_lost(2))
        second.push({"type": "session.updated"})
        await reader.next()
        assert not lost.done()  # connection 2 is up
        lost.cancel()


# --- reconnecting --------------------------------------------------------------------------------------


async def test_reconnect_backs_off_on_the_clock_then_resumes_reading_the_new_connection():
    clock = VirtualClock()
    first, second = FakeWire(), FakeWire()
    server = FakeServer(clock, first, WireError("refused 1"), ConnectionFailed("refused 2"), second)
    link = make_link(server, reconnect=Reconnect(attempts=3, backoff_s=0.25))
    await link.connect()
    async with reading(link) as reader:
        first.push(created("resp_1"))
        await reader.next()
        first.drop()
        loss = await reader.next()
        assert loss.code == "dropped" and loss.response_id == "resp_1" and link.state == "down"
        expected = [
            (250, [Reconnecting(1, loss), ReconnectFailed(1, "refused 1")]),
            (500, [Reconnecting(2, loss), ReconnectFailed(2, "refused 2")]),
            (1000, [Reconnecting(3, loss), Reconnected(3, loss)]),
        ]
        for backoff_ms, notices in expected:
            await clock.wait_for_sleepers()
            assert clock.next_deadline_ns() - clock.monotonic_ns() == backoff_ms * MS
            clock.advance_to_next()
            assert [await reader.next() for _ in notices] == notices
        assert server.asked_ns == [0, 250 * MS, 750 * MS, 1750 * MS]
        assert link.state == "up" and link.generation == 2 and link.reconnects == 1
        assert link.response_id is None  # the lost response is gone with its connection
        second.push({"type": "session.updated"})
        assert (await reader.next())[0] == {"type": "session.updated"}
    assert first.closed


async def test_reconnect_gives_up_after_its_attempts_and_says_why():
    clock = VirtualClock()
    server = FakeServer(clock, FakeWire(), WireError("401 for key SECRET"), WireError("401 for key SECRET"))
    link = make_link(
        server,
        reconnect=Reconnect(attempts=2, backoff_s=0.1),
        redact=lambda text: text.replace("SECRET", "****"),
    )
    await link.connect()
    link.wire.drop(4000, "")  # type: ignore[attr-defined]
    async with reading(link) as reader:
        loss = await reader.next()
        for attempt in (1, 2):
            await clock.wait_for_sleepers()
            clock.advance_to_next()
            assert await reader.next() == Reconnecting(attempt, loss)
            assert await reader.next() == ReconnectFailed(attempt, "401 for key ****")
        assert await reader.next() is END
    assert link.loss is not None and link.loss.code == loss.code == "closed"
    assert link.loss.what == loss.what + "; reconnecting failed 2 time(s), last: 401 for key ****"
    assert link.state == "ended" and link.reconnects == 0


async def test_a_flapping_connection_is_given_up_after_max_reconnects():
    wires = [FakeWire(), FakeWire()]
    clock, link = await connected(*wires, reconnect=Reconnect(backoff_s=0, max_reconnects=1))
    async with reading(link) as reader:
        wires[0].drop()
        assert isinstance(await reader.next(), ConnectionLoss)
        assert isinstance(await reader.next(), Reconnecting)
        assert isinstance(await reader.next(), Reconnected)
        wires[1].drop()
        second_loss = await reader.next()
        assert await reader.next() is END  # no attempt: the link recovered once already
    assert link.loss == second_loss and link.reconnects == 1


async def test_a_send_on_a_dead_connection_waits_for_the_next_one():
    first, second = FakeWire(), FakeWire()
    clock, link = await connected(first, second, reconnect=Reconnect(backoff_s=0.25))
    async with reading(link) as reader:
        first.drop()  # sends fail at once; the reader notices on its next receive
        sender = asyncio.create_task(link.send_when_up({"type": "response.create"}))
        loss = await reader.next()
        await clock.wait_for_sleepers()
        assert not sender.done()  # nowhere to send during the back-off
        clock.advance_to_next()
        assert await reader.next() == Reconnecting(1, loss)
        assert await reader.next() == Reconnected(1, loss)
        assert await sender == 250 * MS  # sent as soon as the new connection was up
    assert first.sent == [] and second.sent == [{"type": "response.create"}]


async def test_a_send_after_the_link_ended_raises_link_ended():
    first = FakeWire()
    clock, link = await connected(first)
    async with reading(link) as reader:
        first.drop()
        sender = asyncio.create_task(link.send_when_up({"type": "response.create"}))
        await reader.next()
        assert await reader.next() is END
        with pytest.raises(LinkEnded):
            await sender


async def test_a_receive_for_the_handshake_times_out_on_the_clock():
    clock = VirtualClock()

    async def no_handshake() -> None:
        pass

    link = Link(FakeServer(clock, FakeWire()).open, no_handshake, clock=clock)
    await link.connect()
    await link.recv()  # session.created
    pending = asyncio.create_task(link.recv(timeout_s=30))
    await clock.wait_for_sleepers()
    assert clock.next_deadline_ns() == 30_000 * MS
    clock.advance_to_next()
    with pytest.raises(TimeoutError, match="no event from the server within 30 s"):
        await pending
    await link.close()


async def test_a_failed_handshake_closes_the_new_connection():
    clock = VirtualClock()
    wire = FakeWire()

    async def handshake() -> None:
        raise WireClosed(1000, "Connection closed")

    link = Link(FakeServer(clock, wire).open, handshake, clock=clock)
    with pytest.raises(WireClosed):
        await link.connect()
    assert wire.closed and link.wire is None and link.state == "new"


def _json_reads(raw: bytes) -> Any:
    """What ``json`` makes of a frame (the SDK's ``conn.recv()``): the value, or the exception's type."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        return type(exc)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"response.audio.delta","delta":"AAAA","x_vlab_sim_ms":12.5}',
        b'{"output_index":123456789012345678901234567890}',  # orjson: a float
        b'{"a":[-9223372036854775809,18446744073709551615]}',
        b'{"sim":NaN,"b":Infinity,"c":-Infinity}',  # orjson refuses these
        b'{"x":1e400}',
        b'{"s":"\\ud800"}',  # a lone surrogate
        b'{"a":1,"a":2}',
        b"[1.5e-400, -0.0, -0]",
        b"[" * 900 + b"]" * 900,
        b"[" * 1100 + b"]" * 1100,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"unterminated": ',
        b"\xff\xfe binary junk",
        b"",
    ],
    ids=lambda raw: raw[:24].decode("utf-8", "replace"),
)
def test_frames_are_parsed_exactly_as_json_parses_them(raw):
    try:
        got: Any = parse_frame(raw)
    except (ValueError, RecursionError) as exc:
        got = type(exc)
    expected = _json_reads(raw)
    if isinstance(expected, type):
        assert got is expected
    else:
        assert json.dumps(got) == json.dumps(expected)  # the same value and types (an int stays an int)
