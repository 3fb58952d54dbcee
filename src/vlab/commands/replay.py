"""``vlab replay``: replay a WAV prompt as the user's turn and log the session."""

from __future__ import annotations

import argparse
import asyncio

from vlab.commands._args import speed


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
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
    pace.add_argument("--speed", type=speed, default=1.0, help="send N× faster than real time, or 'max'")
    rep.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the answers (default: 120)"
    )
    rep.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    import math

    from vlab.replay import replay
    from vlab.settings import AzureSemanticVad, ServerVad, SessionSettings

    td: ServerVad | AzureSemanticVad | None
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
    if result.protocol_warnings:
        print(
            f"protocol warnings: {result.protocol_warnings} (malformed server events; see the run's events)"
        )
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f} ms"  # noqa: E731
    for turn in result.turns:
        head = f"  turn {turn['turn'] + 1}: {turn.get('status')}"
        if turn["false_cutoff"]:
            print(f"{head}; false cut-off (the reply started before the end of speech)")
            continue
        print(
            f"{head}; voice-to-voice {fmt(turn['voice_to_voice_ms'])} = endpointing {fmt(turn['endpointing_ms'])}"
            f" + turn commit {fmt(turn['turn_commit_ms'])} + first audio {fmt(turn['ttfb_audio_ms'])}"
            f" ({turn['timeline']} timeline)"
        )
    return 0
