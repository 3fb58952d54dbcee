"""``vlab emulator --processes N``: several emulator processes serve one port (Linux's SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from azure.ai.voicelive.aio import connect
from azure.core.credentials import AzureKeyCredential

from vlab import protocol
from vlab.audio.vad import EnergyModel
from vlab.cli import build_parser, main
from vlab.commands.emulator import _banner, _shard_command
from vlab.emulator import Emulator, Fault
from vlab.emulator.server import Shard
from vlab.emulator.shards import KEY_ENV, check_processes
from vlab.errors import ConfigError, UsageError
from vlab.testing import Prompt, collect_events, types_of

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="--processes needs Linux's SO_REUSEPORT")

KEY = "processes-key"
MAX_TRIES = 64
"""New connections opened until both processes have answered one: the kernel spreads them by a hash of the
client's port, so all 64 on one process would be odds of 2⁻⁶³."""


def _start(*flags: str, ctrl_c: bool = False) -> tuple[subprocess.Popen[str], str]:
    """``vlab emulator`` with ``flags``; ``ctrl_c``: with SIGINT as in a terminal's foreground job (a test
    runner started in the background, as CI may be, passes it on ignored)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlab", "emulator", "--port", "0", "--api-key", KEY, "--speed", "max", *flags],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if ctrl_c else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, line
    return proc, line.split()[-1]


def _others(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """The emulator's other processes (``--shard``)."""
    return [p for p in psutil.Process(proc.pid).children() if "--shard" in p.cmdline()]


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    trace = tmp_path / "trace.jsonl"
    proc, endpoint = _start("--processes", "2", "--trace", str(trace))
    try:
        yield proc, endpoint, trace
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def _health(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{endpoint}/health", timeout=10) as response:  # a new connection each time
        return dict(json.load(response))


def test_both_processes_answer_on_the_one_port(two):
    proc, endpoint, _ = two
    seen = set()
    for _ in range(MAX_TRIES):
        health = _health(endpoint)
        assert health["processes"] == 2
        seen.add(health["process"])
        if seen == {0, 1}:
            break
    assert seen == {0, 1}
    assert len(_others(proc)) == 1


async def test_each_process_runs_a_spoken_turn_for_the_sdk_into_one_trace(two, prompt: Prompt):
    _, endpoint, trace = two

    async def one_turn_per_process() -> tuple[set[str], list[list[object]]]:
        async with contextlib.AsyncExitStack() as stack:
            conns, prefixes = [], set()
            for _ in range(MAX_TRIES):  # until a session of each process is open (ids differ per process)
                conn = await stack.enter_async_context(
                    connect(endpoint=endpoint, credential=AzureKeyCredential(KEY), model="gpt-realtime")
                )
                prefix = (await conn.recv()).session.id[: len("sess_") + 6]
                if prefix not in prefixes:
                    prefixes.add(prefix)
                    conns.append(conn)
                if len(conns) == 2:
                    break
            assert len(conns) == 2, "every connection went to one process"
            for conn in conns:
                await conn.input_audio_buffer.append(audio=prompt.pcm)
            turns = await asyncio.gather(*(collect_events(conn, protocol.RESPONSE_DONE) for conn in conns))
            return prefixes, turns

    prefixes, turns = await asyncio.wait_for(one_turn_per_process(), 120)
    for events in turns:
        types = types_of(events)
        assert types.index("input_audio_buffer.speech_started") < types.index(
            "input_audio_buffer.speech_stopped"
        )
        assert "response.output_audio.delta" in types or "response.audio.delta" in types
    entries = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    assert {e["conn"][: len("sess_") + 6] for e in entries if e["kind"] == "vad"} >= prefixes


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_of_the_first_process_stops_every_process(stop):
    proc, _ = _start("--processes", "3", ctrl_c=True)
    descendants = psutil.Process(proc.pid).children(recursive=True)
    assert len([p for p in descendants if "--shard" in p.cmdline()]) == 2
    proc.send_signal(stop)
    assert proc.wait(timeout=30) == 0
    assert proc.stdout is not None and proc.stdout.read().splitlines()[-1] == "emulator stopped"
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert alive == []


def test_sigterm_stops_one_emulator_in_order():
    proc, _ = _start()
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert proc.stdout is not None and proc.stdout.read().splitlines()[-1] == "emulator stopped"


def test_the_other_processes_stop_when_the_first_dies():
    proc, _ = _start("--processes", "2")
    others = _others(proc)
    assert len(others) == 1
    proc.kill()
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(others, timeout=30)  # their input closed: they stop on their own
    assert alive == []


FREEZE_PROBE = """\
import gc, sys
import vlab._process as process
real = process.freeze_heap
def freeze_heap():
    real()
    print("frozen", gc.get_freeze_count(), flush=True)
process.freeze_heap = freeze_heap
from vlab.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``python -c`` for ``vlab`` whose :func:`~vlab._process.freeze_heap` also prints how many objects it froze."""


@pytest.mark.parametrize(
    ("flags", "ready"),
    [([], "Voice Live emulator listening on"), (["--shard", "1/2"], "vlab emulator process ready")],
    ids=["first", "other"],
)
def test_each_process_freezes_its_start_up_heap_before_it_serves(flags, ready):
    """A full collection walking start-up's objects paused a loaded emulator for 20 to 70 ms."""
    proc = subprocess.Popen(
        [sys.executable, "-c", FREEZE_PROBE, "emulator", "--port", "0", "--speed", "max", *flags],
        stdin=subprocess.PIPE,  # closing it stops an other process
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, KEY_ENV: KEY},
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        frozen = proc.stdout.readline().split()
        assert frozen[0] == "frozen" and int(frozen[1]) > 10_000  # vlab, aiohttp, numpy: tens of thousands
        assert proc.stdout.readline().startswith(ready)
        proc.stdin.close()  # an other process stops when its first one is gone
        if not flags:
            proc.terminate()
        assert proc.wait(timeout=30) == 0  # either stops in order
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.parametrize("processes", [1, 3])
def test_the_banner_names_the_endpoint_first_and_several_processes_only_when_there_are(processes, capsys):
    emulator = SimpleNamespace(endpoint="http://127.0.0.1:8765", api_key=KEY)
    script = "dialogue.json" if processes > 1 else None
    args = SimpleNamespace(latency="typical", processes=processes, mcp_redirect=[], script=script)
    _banner(emulator, args, None)  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    scripted = [line for line in lines if line.startswith("replies:")]
    assert scripted == (
        ["replies: the rules of dialogue.json first, then the built-in ones"] if script else []
    )
    assert lines[0] == "Voice Live emulator listening on http://127.0.0.1:8765"
    assert lines[1].startswith("latency model: typical")
    served = [line for line in lines if line.startswith("served by")]
    assert served == (
        ["served by 3 processes on one port (connections spread by the kernel)"] if processes > 1 else []
    )
    assert lines[-3:] == [
        "  export AZURE_VOICELIVE_ENDPOINT=http://127.0.0.1:8765",
        f"  export AZURE_VOICELIVE_API_KEY={KEY}",
        "Press Ctrl-C to stop.",
    ]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-sessions", "3"], "--max-sessions counts one process's sessions"),
        (["--fault", "rate_limit:2"], "a rate_limit fault counts one process's connections"),
        (["--processes", "0"], "--processes must be 1 or more"),
        (["--processes", str(4 * (os.cpu_count() or 1) + 1)], "per core"),  # not hundreds of processes
    ],
)
def test_settings_several_processes_cannot_honour_are_refused_with_the_fix(flags, expected, capsys):
    argv = ["emulator", "--port", "0", *flags]
    if "--processes" not in flags:
        argv += ["--processes", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_elsewhere_than_linux_the_message_says_why_and_what_to_do():
    with pytest.raises(ConfigError, match=r"needs Linux.*--processes 1"):
        check_processes(2, platform="darwin")
    check_processes(1, platform="darwin")  # one process runs anywhere
    check_processes(8, cores=2)
    with pytest.raises(
        ConfigError, match=r"^--processes 9 is more than 4 per core \(2 cores here\): .* Use --processes 2\.$"
    ):
        check_processes(9, cores=2)
    check_processes(2, faults=[Fault.parse("drop_after:response.done")[0]])  # a connection's fault is fine


def test_the_other_processes_get_every_setting_of_the_first():
    argv = [
        "emulator", "--host", "127.0.0.1", "--port", "0", "--api-key", "secret-key", "--speed", "max",
        "--latency", "slow-network", "--seed", "7", "--trace", "t.jsonl", "--fault", "drop_after:response.done",
        "--refuse", "voice:alloy", "--refuse", "model:gpt-nope", "--no-hear", "--processes", "2",
        "--script", "dialogue.json",
    ]  # fmt: skip
    parser = build_parser()
    first = parser.parse_args(argv)
    command = _shard_command(first, 4321)
    assert command[:4] == [sys.executable, "-m", "vlab", "emulator"]
    assert "secret-key" not in command  # the key goes in the environment
    other = parser.parse_args([*command[3:], "--shard", "1/2"])
    differ = {k for k in vars(first) if getattr(first, k) != getattr(other, k)}
    assert differ == {"port", "api_key", "processes", "shard"}
    assert (other.port, other.shard) == (4321, "1/2")


@pytest.mark.parametrize(("index", "count"), [(2, 2), (-1, 2), (0, 0)])
def test_a_process_number_outside_the_count_is_refused(index, count):
    with pytest.raises(ConfigError, match="0 <= index < count"):
        Shard(index, count)


async def test_starting_a_serving_emulator_again_is_refused_and_leaves_it_serving():
    emulator = Emulator(port=0, speed="max", vad_model_factory=EnergyModel, hear_audio=False)
    async with emulator:
        with pytest.raises(UsageError) as info:
            await emulator.start()
        assert str(info.value) == (
            f"this Emulator is serving already, at {emulator.endpoint}: stop it first (or leave its "
            "`async with`), or start another Emulator"
        )
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(f"{emulator.endpoint}/health") as answer:
            assert answer.status == 200  # still serving
    async with emulator:  # stopped, it may start again
        pass


async def test_a_port_in_use_is_refused_with_the_fix_even_between_emulators_of_several_processes():
    """SO_REUSEPORT would let a second sharded emulator join the first one's port: it is refused too."""
    options = {"speed": "max", "vad_model_factory": EnergyModel, "hear_audio": False}
    async with Emulator(port=0, shard=Shard(0, 2), **options) as first:
        for shard in (None, Shard(0, 2)):
            second = Emulator(port=first.port, shard=shard, **options)
            with pytest.raises(ConfigError, match=rf"port {first.port} on 127.0.0.1 is in use.*--port 0"):
                await second.start()
            assert repr(second).startswith("Emulator(stopped")
