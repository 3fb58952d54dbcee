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


def _cmd_replay(args: argparse.Namespace) -> int:
    import math

    from vlab.replay import replay
    from vlab.settings import AzureSemanticVad, ServerVad, SessionSettings

    if args.manual:
        td = None
    elif args.semantic_vad:
        td = AzureSemanticVad(
            threshold=args.threshold,
            prefix_padding_ms=args.prefix_padding_ms,
            silence_duration_ms=args.silence_duration_ms,
        )
    else:
        td = ServerVad(
            threshold=args.threshold,
            prefix_padding_ms=args.prefix_padding_ms,
            silence_duration_ms=args.silence_duration_ms,
        )
    speed = 1.0 if args.realtime else args.speed
    settings = SessionSettings(turn_detection=td)
    result = asyncio.run(replay(args.prompt, settings, run_dir=args.out, speed=speed, timeout_s=args.timeout))
    print(f"run folder: {result.run_dir}")
    print(f"events logged: {result.events}")
    print(f"turns answered: {len(result.turns)}")
    for i, turn in enumerate(result.turns, 1):
        stop = turn["stopped_to_first_audio_ms"]
        created = turn["created_to_first_audio_ms"]
        fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f} ms"  # noqa: E731
        print(
            f"  turn {i}: {turn.get('status')}; speech_stopped → first audio {fmt(stop)}; response.created → first audio {fmt(created)}"
        )
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

    rep = sub.add_parser("replay", help="replay a WAV prompt as the user's turn and log the session")
    rep.add_argument("prompt", help="WAV/FLAC/OGG file with the user's speech")
    rep.add_argument(
        "--out", default=None, metavar="RUN_DIR", help="run folder (default: runs/replay-<time>)"
    )
    td = rep.add_mutually_exclusive_group()
    td.add_argument(
        "--semantic-vad", action="store_true", help="use azure_semantic_vad instead of server_vad"
    )
    td.add_argument("--manual", action="store_true", help="no turn detection: commit and ask for a response")
    rep.add_argument(
        "--threshold", type=float, default=0.5, help="VAD speech probability threshold (default: 0.5)"
    )
    rep.add_argument(
        "--prefix-padding-ms", type=int, default=300, help="audio kept before speech (default: 300)"
    )
    rep.add_argument(
        "--silence-duration-ms", type=int, default=500, help="silence that ends a turn (default: 500)"
    )
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="send the audio in real time (the default)")
    pace.add_argument("--speed", type=_speed, default=1.0, help="send N× faster than real time, or 'max'")
    rep.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the answers (default: 120)"
    )
    rep.set_defaults(func=_cmd_replay)
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
