"""The ``vlab`` command line. Each subcommand imports what it needs only when it runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence


def _speed(value: str) -> float:
    import math

    if value in ("max", "inf"):
        return math.inf
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number > 0 or 'max', got {value!r}") from None
    if speed <= 0:
        raise argparse.ArgumentTypeError(f"speed must be > 0 or 'max', got {value!r}")
    return speed


def _cmd_emulator(args: argparse.Namespace) -> int:
    from vlab.emulator import Emulator

    emu = Emulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        speed=args.speed,
        latency=args.latency,
        seed=args.seed,
        trace=args.trace or False,
    )

    async def serve() -> None:
        await emu.start()
        print(f"Voice Live emulator listening on {emu.endpoint}")
        print("Point vlab or the SDK at it:")
        print(f"  export AZURE_VOICELIVE_ENDPOINT={emu.endpoint}")
        print(f"  export AZURE_VOICELIVE_API_KEY={emu.api_key}")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await emu.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print("emulator stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="vlab", description="Experiment with Azure AI Voice Live.")
    from vlab import __version__

    parser.add_argument("--version", action="version", version=f"vlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    emu = sub.add_parser("emulator", help="run the offline Voice Live emulator")
    emu.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)"
    )
    emu.add_argument("--port", type=int, default=8765, help="TCP port (default: 8765; 0 picks a free one)")
    emu.add_argument("--api-key", default=None, help="key clients must send (default: a random key, printed)")
    emu.add_argument("--speed", type=_speed, default=1.0, help="run delays N× faster, or 'max' (default: 1)")
    emu.add_argument("--latency", default="typical", help="latency preset: instant, typical, slow-network")
    emu.add_argument("--seed", type=int, default=0, help="seed of the latency jitter (default: 0)")
    emu.add_argument(
        "--trace", default=None, metavar="FILE.jsonl", help="append the ground-truth trace to this file"
    )
    emu.set_defaults(func=_cmd_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vlab`` command line; returns the exit code."""
    from vlab.errors import VlabError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except VlabError as exc:
        print(f"vlab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
