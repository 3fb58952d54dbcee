"""The other processes of ``vlab emulator --processes N``, started, watched and stopped, on stand-in processes.

Each stand-in is a small Python program that does what its ``--shard K/N`` index is told to: serve (print
the ready line, then wait for its input to close), exit at once, say something else, serve and then exit,
say nothing, or ignore its input closing. The emulator itself is started by the integration tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from vlab.emulator import shards
from vlab.emulator.shards import READY, Shards
from vlab.errors import VlabError

STAND_IN = f"""
import os, sys, time
what = dict((int(k), v) for k, v in __import__("json").loads(sys.argv[1]).items())
index = int(sys.argv[sys.argv.index("--shard") + 1].split("/")[0])
kind, _, code = what[index].partition(":")
open(os.path.join(sys.argv[2], f"{{index}}.pid"), "w").write(str(os.getpid()))
if kind == "exit":
    sys.exit(int(code))
if kind != "silent":
    print({READY!r} if kind != "talk" else "something else", flush=True)
if kind == "serve_then_exit":
    sys.exit(int(code))
if kind == "stubborn":
    while True:
        time.sleep(3600)  # wall-clock ok: it must not stop by itself
sys.stdin.read()
"""


_STARTED: list[Shards] = []


@pytest.fixture(autouse=True)
async def _stop_what_a_test_started() -> AsyncIterator[None]:
    """Stop the stand-ins of a test that failed before it stopped them (a stubborn one is never left)."""
    yield
    while _STARTED:
        await _STARTED.pop().stop()


def _shards(tmp_path: Path, **by_index: str) -> Shards:
    what = json.dumps({k.removeprefix("p"): v for k, v in by_index.items()})
    others = Shards([sys.executable, "-c", STAND_IN, what, str(tmp_path)], "key", len(by_index) + 1)
    _STARTED.append(others)
    return others


def _pid(tmp_path: Path, index: int) -> int:
    return int((tmp_path / f"{index}.pid").read_text())


async def test_the_other_processes_start_with_the_key_serve_and_stop_when_their_input_closes(tmp_path):
    others = _shards(tmp_path, p1="serve", p2="serve")
    await others.start()
    pids = others.pids
    assert pids == [_pid(tmp_path, 1), _pid(tmp_path, 2)]
    assert all(psutil.Process(pid).environ()[shards.KEY_ENV] == "key" for pid in pids)
    assert all("key" not in psutil.Process(pid).cmdline() for pid in pids)  # not on the command line
    await others.stop()
    assert others.pids == [] and not any(psutil.pid_exists(pid) for pid in pids)


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ({"p1": "serve", "p2": "exit:3"}, "emulator process 2 of 3 exited with code 3; its error is above"),
        (
            {"p1": "silent", "p2": "serve"},
            "emulator process 1 of 3 did not serve within 0.05 s; its error is above",
        ),
        (
            {"p1": "talk", "p2": "serve"},
            "emulator process 1 of 3 printed 'something else' where it should have said it serves; its error is above",
        ),
    ],
    ids=["exits", "silent", "says-something-else"],
)
async def test_one_that_does_not_start_is_named_and_the_others_are_stopped(
    tmp_path, what, message, monkeypatch
):
    if what["p1"] == "silent":  # it never serves: only the wait shortens (process 1 is waited for first)
        monkeypatch.setattr(shards, "START_TIMEOUT_S", 0.05)
    others = _shards(tmp_path, **what)
    with pytest.raises(VlabError, match=message + r"\. Run one process \(drop --processes\)"):
        await others.start()
    assert others.pids == []
    assert not any(psutil.pid_exists(_pid(tmp_path, i)) for i in (1, 2))


async def test_watch_names_a_process_that_exits_and_serves_on(tmp_path, caplog):
    others = _shards(tmp_path, p1="serve", p2="serve_then_exit:5")
    warned = asyncio.Event()

    class Warned(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warned.set()

    shards.log.addHandler(handler := Warned(logging.WARNING))
    try:
        await others.start()
        watch = asyncio.ensure_future(others.watch())
        await asyncio.wait_for(warned.wait(), 60)
        assert caplog.messages == [
            "emulator process 2 of 3 exited with code 5; the other processes keep serving the port"
        ]
        assert not watch.done() and psutil.pid_exists(_pid(tmp_path, 1))  # process 1 serves on
        watch.cancel()
        await others.stop()
    finally:
        shards.log.removeHandler(handler)


async def test_one_that_does_not_stop_when_told_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "STOP_TIMEOUT_S", 0.05)  # it never stops by itself: only the wait shortens
    others = _shards(tmp_path, p1="stubborn")
    await others.start()
    (pid,) = others.pids
    await others.stop()
    assert not psutil.pid_exists(pid)


def test_docs_state_how_long_another_process_may_take_to_serve():
    docs = " ".join((Path(__file__).parents[2] / "docs" / "emulator.md").read_text(encoding="utf-8").split())
    assert f"did not serve within {shards.START_TIMEOUT_S:g} s (`START_TIMEOUT_S`" in docs
