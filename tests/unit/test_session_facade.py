"""The Session facade over a fake connection on virtual time: no socket, no wall clock.

The SDK adapter's ``open_wire`` is replaced by one that hands out :class:`FakeWire` connections, so
the session's own logic (handshake, sending through a reconnection, stalls, timeouts, barge-in) runs
exactly as against a server, with time moved by the test.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from vlab import ServerVad, Session, SessionSettings
from vlab.audio.devices import MicChunk
from vlab.clock import VirtualClock
from vlab.errors import AudioFormatError, ConfigError, ConnectionFailed, UsageError, VlabError
from vlab.session import Reconnect, sdk_adapter

from .test_session_link import FakeWire

MS = 1_000_000
SESSION_CREATED = {"type": "session.created", "event_id": "e0", "session": {"id": "sess_1", "model": "m"}}


@pytest.fixture
def wires(monkeypatch: pytest.MonkeyPatch) -> list[FakeWire]:
    """The connections the next sessions get, in order; each starts with ``session.created``."""
    queue: list[FakeWire] = []

    async def open_wire(**connect: Any) -> FakeWire:
        wire = queue.pop(0)
        wire.push(SESSION_CREATED)
        return wire

    monkeypatch.setattr(sdk_adapter, "open_wire", open_wire)
    return queue


def fake_session(clock: VirtualClock, **options: Any) -> Session:
    return Session(
        endpoint="https://x.services.ai.azure.com", api_key="key", dotenv_path=False, clock=clock, **options
    )


def test_creating_a_session_reads_no_file(tmp_path):
    session = Session(dotenv_path=tmp_path / "missing.env")  # the .env is read when the target is needed
    assert repr(session) == "Session(target not resolved yet, closed, 0 events)"
    with pytest.raises(ConfigError, match="missing.env' is not a file"):
        session.target  # noqa: B018


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("stall_timeout_s", 0),
        ("stall_timeout_s", -1.0),
        ("max_frame_bytes", 0),
        ("max_frame_bytes", 1.5),
        ("max_frame_bytes", True),
        ("backlog", 0),  # no event would be kept for wait_for
        ("backlog", -1),
        ("backlog", "100"),
    ],
)
def test_an_option_that_cannot_work_is_refused_and_named(option, value):
    with pytest.raises(ConfigError, match=rf"{option} must be .*, got {value!r}"):
        fake_session(VirtualClock(), **{option: value})


def test_settings_that_are_not_session_settings_are_refused_with_the_way_to_give_them():
    with pytest.raises(ConfigError) as info:
        Session({"voice": "alloy"})  # type: ignore[arg-type]
    assert str(info.value) == (
        "settings must be a SessionSettings, e.g. Session(SessionSettings(voice=...)), got dict: pass the "
        "mapping's keys to it, SessionSettings(**...)"
    )
    with pytest.raises(ConfigError, match=r"got ServerVad$"):
        Session(ServerVad())  # type: ignore[arg-type]


def test_a_run_folder_holding_a_session_s_events_is_refused_unless_told_to_replace_them(tmp_path):
    from vlab.errors import RunFolderTaken

    Session(run_dir=tmp_path)  # empty
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ConfigError, match=r"notes.txt' is a file, not a folder; give a folder for the run$"):
        Session(run_dir=tmp_path / "notes.txt")
    (tmp_path / "events.jsonl").write_text("")
    Session(run_dir=tmp_path)  # a session that never connected: nothing to lose
    (tmp_path / "events.jsonl").write_text('{"seq": 0}\n')
    with pytest.raises(RunFolderTaken) as info:
        Session(run_dir=tmp_path)
    assert str(info.value) == (
        f"{tmp_path} already holds a run (events.jsonl); this session would replace it. Give another run_dir, "
        "or pass overwrite=True to replace it"
    )
    assert Session(run_dir=tmp_path, overwrite=True).run_dir == tmp_path
    (tmp_path / "events.jsonl").unlink()
    (tmp_path / "events.parquet").write_bytes(b"PAR1")
    with pytest.raises(RunFolderTaken):
        Session(run_dir=tmp_path)  # the Parquet log alone


def test_the_smallest_options_that_work_are_taken():
    session = fake_session(VirtualClock(), stall_timeout_s=None, max_frame_bytes=1)  # no ConfigError
    assert session.stall_timeout_s is None


async def test_stream_audio_appends_chunks_of_chunk_ms_at_the_session_rate(wires):
    wires.append(FakeWire())
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        await s.stream_audio(bytes(48 * 110), speed=math.inf, chunk_ms=20)  # 110 ms at 24 kHz
    appended = [r.audio_bytes for r in s.records if r.type == "input_audio_buffer.append"]
    assert appended == [960] * 5 + [480]


async def test_a_numpy_array_of_float_samples_is_sent_as_pcm16_of_the_same_duration(wires):
    import numpy as np

    wires.append(FakeWire())
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        await s.stream_audio(np.full(24 * 50, 0.25, np.float32), speed=math.inf, chunk_ms=20)  # 50 ms
        await s.append_audio(np.zeros(24 * 10, np.int16))  # 10 ms more
    appends = [r for r in s.records if r.type == "input_audio_buffer.append"]
    assert [r.audio_bytes for r in appends] == [960, 960, 480, 480]  # 2 bytes a sample, not 4
    assert appends[-1].audio_end_ms == pytest.approx(60.0)


@pytest.mark.parametrize("fmt", ["pcm16", "g711_ulaw"])
async def test_audio_that_is_not_whole_samples_is_refused_before_anything_is_sent(wires, fmt):
    wires.append(FakeWire())
    settings = SessionSettings(input_audio_format=fmt)
    async with fake_session(VirtualClock(), settings=settings, stall_timeout_s=None) as s:
        if fmt == "pcm16":
            for send in (s.append_audio, lambda pcm: s.stream_audio(pcm, speed=math.inf)):
                with pytest.raises(AudioFormatError) as info:
                    await send(bytes(48 * 110 + 1))
                assert str(info.value) == (
                    "5281 bytes of pcm16 input audio is not a whole number of 16-bit samples. Send mono "
                    "16-bit little-endian PCM at 24000 Hz, as bytes or a NumPy array (vlab.audio.wav.load_wav "
                    "reads a file as that)."
                )
        else:
            await s.append_audio(bytes(161))  # G.711: one byte a sample
    appended = [r.audio_bytes for r in s.records if r.type == "input_audio_buffer.append"]
    assert appended == ([] if fmt == "pcm16" else [161])


async def test_a_stamped_microphone_anchors_the_capture_time_every_second_and_after_lost_audio(wires):
    start_ns = 5_000 * MS

    class StampedMic:
        """3 s in 20 ms blocks stamped at capture; audio is lost before the block at 600 ms."""

        overflows = 0

        async def chunks(self) -> AsyncIterator[MicChunk]:
            for i in range(150):
                if i == 30:
                    self.overflows += 1
                yield MicChunk(bytes(960), start_ns + i * 20 * MS)

    wires.append(FakeWire())
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        await s.stream_microphone(StampedMic())
    anchors = [(r.audio_start_ms, r.t_ns) for r in s.records if r.type == "vlab.capture"]
    assert anchors == [(ms, start_ns + round(ms * MS)) for ms in (0.0, 600.0, 1600.0, 2600.0)]
    (overflow,) = [json.loads(r.payload) for r in s.records if r.type == "vlab.input_overflow"]
    assert overflow["overflows"] == 1
    appended = sum(r.audio_bytes for r in s.records if r.type == "input_audio_buffer.append")
    assert appended == 150 * 960


async def test_the_handshake_and_every_event_are_logged_on_the_session_clock(wires):
    clock = VirtualClock(start_ns=1_000 * MS)
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(clock) as s:
        assert s.server_session["id"] == "sess_1"
        clock.advance_ns(5 * MS)
        await s.send_text("hello")
        wire.push({"type": "conversation.item.created", "item": {"id": "item_1"}})
        await s.wait_for("conversation.item.created")
        assert s.connection is wire.connection  # the SDK connection (a stand-in here)
    logged = [(r.direction, r.type, r.t_ns // MS) for r in s.records]
    assert logged == [
        ("local", "vlab.connect", 1000),
        ("server", "session.created", 1000),
        ("client", "session.update", 1000),
        ("client", "conversation.item.create", 1005),
        ("client", "response.create", 1005),
        ("server", "conversation.item.created", 1005),
    ]
    assert [e["type"] for e in wire.sent] == ["session.update", "conversation.item.create", "response.create"]
    assert wire.closed


async def test_a_send_during_a_reconnection_goes_out_on_the_new_connection(wires):
    clock = VirtualClock()
    first, second = FakeWire(), FakeWire()
    wires += [first, second]
    async with fake_session(clock, reconnect=Reconnect(backoff_s=0.25), stall_timeout_s=None) as s:
        first.drop()
        sender = asyncio.create_task(s.send_text("hello", respond=False))
        await clock.wait_for_sleepers()  # the back-off before the first attempt
        assert not sender.done()
        clock.advance_to_next()
        await sender
        notice = (await s.wait_for("vlab.reconnected"))[-1]
        assert notice.attempt == 1 and s.reconnects == 1
    assert [e["type"] for e in first.sent] == ["session.update"]
    assert [e["type"] for e in second.sent] == ["session.update", "conversation.item.create"]
    logged = [(r.type, r.t_ns // MS) for r in s.records][3:]
    assert logged == [
        ("vlab.connection_lost", 0),
        ("vlab.reconnect", 250),
        ("session.created", 250),
        ("session.update", 250),
        ("conversation.item.create", 250),
    ]


async def test_a_stall_ends_wait_for_and_send_with_a_clear_error(wires):
    clock = VirtualClock()
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(clock, stall_timeout_s=0.3) as s:
        wire.push({"type": "session.updated", "session": {"id": "sess_1"}})
        await s.wait_for("session.updated")
        clock.advance_s(1.0)  # nothing is owed: silence is no stall
        await s.create_response()  # now a reply is due
        waiter = asyncio.create_task(s.wait_for("response.done", timeout_s=10))
        await clock.wait_for_sleepers(2)  # the stall watchdog and wait_for's timeout
        assert clock.next_deadline_ns() == 1_300 * MS
        clock.advance_to_next()
        with pytest.raises(ConnectionFailed) as waited:
            await waiter
        with pytest.raises(ConnectionFailed) as sent:
            await s.send_text("still there?")
        assert s.connection_error is not None
    for error in (waited, sent):
        assert "stalled: no event from the server for 0.3 s while a reply was due" in str(error.value)
        assert "raise stall_timeout_s" in str(error.value)
    assert "(raised while waiting for 'response.done')" in str(waited.value)
    lost = s.records[-1]
    assert lost.type == "vlab.connection_lost" and lost.t_ns == 1_300 * MS and lost.error_code == "stalled"


async def test_wait_for_times_out_on_the_session_clock(wires):
    clock = VirtualClock()
    wires.append(FakeWire())
    async with fake_session(clock, stall_timeout_s=None) as s:
        waiter = asyncio.create_task(s.wait_for("response.done", timeout_s=5))
        await clock.wait_for_sleepers()
        assert clock.next_deadline_ns() == 5_000 * MS
        clock.advance_to_next()
        with pytest.raises(TimeoutError, match=r"no 'response.done' within 5 s \(received: \[\]\)"):
            await waiter


async def test_a_wait_or_a_text_that_cannot_work_is_refused_before_anything_happens(wires):
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        sent = len(s.records)
        for options, why in (
            ({"timeout_s": 0}, "timeout_s must be a number of seconds > 0, got 0"),
            ({"timeout_s": -1.0}, "timeout_s must be a number of seconds > 0, got -1.0"),
            ({"timeout_s": "5"}, "timeout_s must be a number of seconds > 0, got '5'"),
            ({"count": 0}, "count must be an integer ≥ 1, got 0"),
            ({"count": 1.0}, "count must be an integer ≥ 1, got 1.0"),
        ):
            with pytest.raises(ConfigError) as info:
                await s.wait_for("response.done", **options)
            assert str(info.value) == why
        with pytest.raises(ConfigError, match=r"^text must be a string, got NoneType$"):
            await s.send_text(None)  # type: ignore[arg-type]
        assert len(s.records) == sent  # nothing was sent


async def test_an_event_settings_or_output_that_cannot_be_sent_is_refused_and_nothing_goes_out(wires):
    wire = FakeWire()
    wires.append(wire)
    secret = "Bearer sk-tool-secret"
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        sent, settings = len(wire.sent), s.settings
        for event, why in (
            ("session.update", "got a str (pass the dict itself, not its JSON text)"),
            (json.dumps({"type": "session.update"}).encode(), "got a bytes (pass the dict itself"),
            (
                {"session": {"tools": [{"authorization": secret}]}},
                "got a mapping with the keys session and no type",
            ),
        ):
            with pytest.raises(ConfigError) as info:
                await s.send(event)  # type: ignore[arg-type]
            assert why in str(info.value) and secret not in str(info.value)
        with pytest.raises(ConfigError) as info:
            await s.update({"voice": "alloy"})  # type: ignore[arg-type]
        assert str(info.value) == (
            "settings must be a SessionSettings, e.g. session.update(SessionSettings(voice=...)), got dict: pass "
            "the mapping's keys to it, SessionSettings(**...)"
        )
        assert s.settings is settings  # unchanged
        with pytest.raises(ConfigError, match=r"^match must be an event type, e\.g\. 'response\.done', or a"):
            await s.wait_for(5)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="output of function call 'call_1' must be a string or JSON"):
            await s.send_function_output("call_1", {"at": object()})
        assert len(wire.sent) == sent  # nothing went out


async def test_speech_over_the_reply_cancels_it_and_truncates_at_the_ms_heard(wires):
    clock = VirtualClock()
    wire = FakeWire()
    wires.append(wire)
    one_second = base64.b64encode(bytes(48_000)).decode()  # pcm16 at 24 kHz
    async with fake_session(clock, stall_timeout_s=None) as s:
        wire.push({"type": "response.created", "response": {"id": "resp_1"}})
        wire.push(
            {
                "type": "response.audio.delta",
                "response_id": "resp_1",
                "item_id": "item_1",
                "delta": one_second,
            }
        )
        await s.wait_for("response.audio.delta")
        clock.advance_s(0.3)
        wire.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 800, "item_id": "item_2"})
        await s.wait_for("input_audio_buffer.speech_started")  # delivered once the barge-in is sent
    assert wire.sent[-2:] == [
        {"type": "response.cancel"},
        {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 300},
    ]


async def test_a_closed_session_refuses_to_send_and_has_no_connection(wires):
    wires.append(FakeWire())
    s = fake_session(VirtualClock())
    with pytest.raises(VlabError, match="the session is not open"):
        s.connection  # noqa: B018
    async with s:
        pass
    with pytest.raises(ConnectionFailed, match=r"not open \(sending 'conversation.item.create'\)"):
        await s.send_text("hello")
    with pytest.raises(ConnectionFailed, match="not open"):
        await s.wait_for("response.done")


async def test_a_session_connects_once(wires):
    wires.extend([FakeWire(), FakeWire()])
    s = fake_session(VirtualClock(), stall_timeout_s=None)
    async with s:
        with pytest.raises(UsageError) as info:
            async with s:
                pass
        assert str(info.value) == (
            "this Session is open already: a Session connects once. For another connection, open a new one: "
            "async with Session(...) as session:"
        )
        await s.send_text("still open")  # the refused entry left it as it was
    with pytest.raises(UsageError, match="^this Session has been used already: "):
        async with s:
            pass
    assert len(wires) == 1  # one connection was made


@pytest.mark.parametrize(
    ("waited", "message"),
    [
        ("session.update", "'session.update' is an event the client sends, never one that arrives: wait for"),
        ("response.dnoe", "no server event is called 'response.dnoe'; did you mean 'response.done'?"),
        ("Response.Done", "did you mean 'response.done'?"),
        ("speech_started", "did you mean 'input_audio_buffer.speech_started'?"),
        ("vlab.reconected", "did you mean 'vlab.reconnected'?"),
        (
            "vlab.playback_started",
            "is a record vlab logs, not an event that arrives (of vlab's own records only",
        ),
        ("vlab.whatever", "vlab has no record called 'vlab.whatever'"),
    ],
)
async def test_waiting_for_an_event_that_never_arrives_is_refused_at_once(
    wires: list[FakeWire], waited: str, message: str
) -> None:
    wires.append(FakeWire())
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        with pytest.raises(UsageError) as info:
            await s.wait_for(waited)
        assert message in str(info.value)


async def test_a_server_event_vlab_does_not_know_is_waited_for(wires: list[FakeWire]) -> None:
    wire = FakeWire()
    wires.append(wire)
    async with fake_session(VirtualClock(), stall_timeout_s=None) as s:
        wire.push({"type": "response.interim.done", "event_id": "e9"})  # a newer service's event
        assert (await s.wait_for("response.interim.done", typed=False))[-1]["event_id"] == "e9"


def test_a_plain_with_says_to_use_async_with() -> None:
    from vlab.emulator import Emulator

    for opened in (Session(), Emulator()):
        name = type(opened).__name__
        with pytest.raises(UsageError) as info, opened:
            pass
        assert str(info.value) == (
            f"{name} is an async context manager: open it with `async with {name}(...) as ...:` (a notebook "
            "cell can, as it is); a plain `with` cannot wait for it"
        )


def test_the_session_parts_import_only_downwards():
    """The order of the parts in the package docstring is their import order: no cycle, one direction."""
    import vlab.session

    package = Path(vlab.session.__file__).parent
    order = [
        line.split("``")[1].removesuffix(".py")
        for line in vlab.session.__doc__.splitlines()
        if line.startswith("- ``")
    ]
    assert sorted(order) == sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
    problems = []
    for rank, name in enumerate(order):
        tree = ast.parse((package / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vlab.session"):
                sub = node.module.removeprefix("vlab.session").lstrip(".")
                imported = [sub] if sub else [alias.name for alias in node.names]
                problems += [f"{name} imports {i}" for i in imported if i in order and order.index(i) <= rank]
    assert problems == []
