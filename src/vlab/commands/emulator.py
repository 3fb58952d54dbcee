"""``vlab emulator``: run the offline Voice Live emulator."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from vlab._process import freeze_heap
from vlab.commands._args import count, out_file, speed

if TYPE_CHECKING:
    from vlab.emulator import Emulator
    from vlab.emulator.cassette import Cassette
    from vlab.emulator.server import Shard


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    emu = sub.add_parser("emulator", help="run the offline Voice Live emulator")
    emu.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)"
    )
    emu.add_argument("--port", type=int, default=8765, help="TCP port (default: 8765; 0 picks a free one)")
    emu.add_argument("--api-key", default=None, help="key clients must send (default: a random key, printed)")
    emu.add_argument("--speed", type=speed, default=1.0, help="run delays N× faster, or 'max' (default: 1)")
    emu.add_argument(
        "--latency",
        default="typical",
        help="latency preset (instant, typical, slow-network) or a latency.json from `vlab calibrate` "
        "(default: typical)",
    )
    emu.add_argument("--seed", type=int, default=0, help="seed of the latency jitter (default: 0)")
    emu.add_argument(
        "--replay",
        default=None,
        metavar="RUN",
        help="answer with a recorded run's server events (a cassette) instead of emulating; "
        "a client that sends other audio or settings gets an error",
    )
    emu.add_argument(
        "--trace",
        type=out_file,
        default=None,
        metavar="FILE.jsonl",
        help="append the ground-truth trace to this file",
    )
    emu.add_argument(
        "--max-sessions",
        type=count(1),
        default=None,
        help="concurrent sessions allowed; one more is refused with HTTP 429, as a resource's quota does",
    )
    emu.add_argument(
        "--fault",
        default=None,
        metavar="SPEC",
        help="faults to rehearse, e.g. 'rate_limit:2:1.5' (the next 2 connections get HTTP 429, Retry-After 1.5 s)",
    )
    emu.add_argument(
        "--refuse",
        action="append",
        default=[],
        metavar="FIELD:VALUE",
        help="refuse a model, voice, turn-detection type or input format in session.update, as a resource that "
        "does not serve it does (e.g. 'voice:alloy', 'model:gpt-nope'; repeat for more)",
    )
    emu.add_argument(
        "--mcp-redirect",
        action="append",
        default=[],
        type=_redirect,
        metavar="URL=LOCAL_URL",
        help="call an MCP server a session names at another address, e.g. a sample's "
        "'https://mcp.deepwiki.com/mcp=http://127.0.0.1:9000/mcp' (repeat for more)",
    )
    emu.add_argument(
        "--script",
        default=None,
        metavar="FILE.json",
        help="a dialogue script whose rules answer before the built-in replies (say, call a tool, a chain of "
        "calls); see docs/emulator.md, Responder rules",
    )
    emu.add_argument(
        "--no-hear",
        dest="hear",
        action="store_false",
        help="do not recognise the words of user turns that ask for no transcription (replies then say how "
        "long the user spoke, not what was said): recognition costs about a quarter of a core per "
        "speaking user, which a load test may not want",
    )
    emu.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="serve the port from N emulator processes (Linux), for load tests of hundreds of sessions: one "
        "process's event loop uses one core (default: 1)",
    )
    emu.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # K/N: one of --processes N (internal)
    emu.set_defaults(func=run)


def _shard_command(args: argparse.Namespace, port: int) -> list[str]:
    """The command line of another process of ``--processes`` (its key comes in its environment)."""
    from vlab.audio.pacing import speed_text

    command = [sys.executable, "-m", "vlab", "emulator", "--host", args.host, "--port", str(port)]
    command += ["--speed", str(speed_text(args.speed))]
    command += ["--latency", str(args.latency), "--seed", str(args.seed)]
    for flag, value in (
        ("--replay", args.replay),
        ("--trace", args.trace),
        ("--fault", args.fault),
        ("--script", args.script),
    ):
        if value is not None:
            command += [flag, str(value)]
    for refusal in args.refuse:
        command += ["--refuse", refusal]
    for source, target in args.mcp_redirect:
        command += ["--mcp-redirect", f"{source}={target}"]
    if not args.hear:
        command.append("--no-hear")
    return command


def _redirect(spec: str) -> tuple[str, str]:
    """``URL=LOCAL_URL`` of ``--mcp-redirect``."""
    source, sep, target = spec.partition("=")
    if (
        not sep
        or not source.startswith(("http://", "https://"))
        or not target.startswith(("http://", "https://"))
    ):
        raise argparse.ArgumentTypeError(
            f"expected URL=LOCAL_URL, both http:// or https:// URLs, e.g. "
            f"'https://mcp.deepwiki.com/mcp=http://127.0.0.1:9000/mcp'; got {spec!r}"
        )
    return source, target


def _shard(spec: str) -> Shard:
    from vlab.emulator.server import Shard

    index, _, count = spec.partition("/")
    return Shard(int(index), int(count))


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from vlab.emulator import Emulator, Fault
    from vlab.emulator.server import Shard
    from vlab.emulator.shards import KEY_ENV, check_processes

    faults = Fault.parse(args.fault) if args.fault else ()
    shard = None
    if args.shard is not None:
        shard = _shard(args.shard)
        args.api_key = os.environ.get(KEY_ENV)
    else:
        check_processes(args.processes, max_sessions=args.max_sessions, faults=faults)
        if args.processes > 1:
            shard = Shard(0, args.processes)
    cassette = None
    if args.replay is not None:
        from vlab.cassette import load_cassette

        cassette = load_cassette(args.replay)
    emu = Emulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        speed=args.speed,
        latency=args.latency,
        seed=args.seed,
        trace=args.trace or False,
        max_sessions=args.max_sessions,
        faults=faults,
        cassette=cassette,
        refuse=args.refuse,
        mcp_redirects=dict(args.mcp_redirect),
        hear_audio=args.hear,
        script=args.script,
        shard=shard,
    )
    if args.shard is not None:
        _run(_serve_shard(emu))
        return 0

    async def serve() -> None:
        """Serve until Ctrl-C or SIGTERM; the emulator (and its other processes) stop on the way out."""
        from vlab.emulator.shards import Shards

        terminated = _terminated()
        async with emu:
            shards = watch = None
            if args.processes > 1:
                shards = Shards(_shard_command(args, emu.port), emu.api_key, args.processes)
                await shards.start()
                watch = asyncio.ensure_future(shards.watch())
            try:
                freeze_heap()  # start-up is over: no full collection walks it again under load
                _banner(emu, args, cassette)
                await terminated.wait()
            finally:
                if watch is not None:
                    watch.cancel()
                if shards is not None:
                    await shards.stop()

    try:
        _run(serve())
    except KeyboardInterrupt:
        pass
    print("emulator stopped")
    return 0


def _terminated() -> asyncio.Event:
    """An event set by SIGTERM (``kill``, a service manager): the emulator then stops as on Ctrl-C.

    Ctrl-C stays Python's KeyboardInterrupt, and is ignored where the shell ignores it (a job started
    with ``&``); SIGTERM always stops the emulator in order.
    """
    event = asyncio.Event()
    if sys.platform != "win32":  # Windows event loops take no signal handlers
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, event.set)
    return event


def _banner(emu: Emulator, args: argparse.Namespace, cassette: Cassette | None) -> None:
    """Where to point a client; the first line names the endpoint (scripts read it)."""
    print(f"Voice Live emulator listening on {emu.endpoint}")
    if cassette is None:
        from vlab.emulator import latency

        print(f"latency model: {latency.note(latency.describe(args.latency))}")
    else:
        print(f"replaying {len(cassette.events)} recorded server events of {args.replay}")
        for note in cassette.notes:
            print(f"  note: {note}")
    if args.processes > 1:
        print(f"served by {args.processes} processes on one port (connections spread by the kernel)")
    if args.script is not None:
        print(f"replies: the rules of {args.script} first, then the built-in ones")
    for source, target in args.mcp_redirect:
        print(f"MCP server {source} is called at {target}")
    print("Point vlab or the SDK at it:")
    print(f"  export AZURE_VOICELIVE_ENDPOINT={emu.endpoint}")
    print(f"  export AZURE_VOICELIVE_API_KEY={emu.api_key}")
    print("Press Ctrl-C to stop.", flush=True)


async def _serve_shard(emu: Emulator) -> None:
    """Serve as another process of ``--processes`` until the first process stops (closes our input).

    Ctrl-C reaches every process of the terminal's group: this one leaves stopping to the first. SIGTERM
    stops it in order, as it does the first.
    """
    from vlab.emulator.shards import READY, until_input_closes

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminated = _terminated()
    async with emu:
        freeze_heap()
        print(READY, flush=True)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # nothing else goes down the first process's pipe
        waits = [asyncio.ensure_future(until_input_closes()), asyncio.ensure_future(terminated.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Serve on uvloop when it is installed (``pip install vlab[uvloop]``, not on Windows), else asyncio.

    uvloop takes about a tenth off the loop's CPU: 44 against 50 % of a core for 100 real-time sessions
    (``bench_emulator``'s concurrency step, 6 steps each, 2026-12-03).
    """
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
