"""``vlab doctor``: check, in order, that a Voice Live session can start here (see :mod:`vlab.doctor`)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    from vlab.commands._args import seconds
    from vlab.protocol import DEFAULT_MODEL

    doc = sub.add_parser(
        "doctor",
        help="check the endpoint, DNS, TLS, sign-in, model, voice and sound devices; exit 0 when a session can start",
    )
    doc.add_argument(
        "--endpoint",
        default=None,
        help="endpoint to check (default: AZURE_VOICELIVE_ENDPOINT, then .env; none: the embedded emulator)",
    )
    doc.add_argument(
        "--model", default=None, help=f"model (default: AZURE_VOICELIVE_MODEL, then {DEFAULT_MODEL})"
    )
    doc.add_argument("--api-version", default=None, help="api-version (default: AZURE_VOICELIVE_API_VERSION)")
    doc.add_argument(
        "--voice", default=None, help="a voice to check (default: an OpenAI, a standard and an HD voice)"
    )
    doc.add_argument("--no-dotenv", action="store_true", help="do not read a .env file")
    doc.add_argument("--no-devices", action="store_true", help="skip the sound-device check")
    doc.add_argument(
        "--timeout-s", type=seconds, default=15.0, help="limit of each network step (default: 15 s)"
    )
    doc.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks, print one line each; returns 0 when a session can start, else 1."""
    from vlab._run import run_main
    from vlab.doctor import diagnose

    report = run_main(
        diagnose(
            args.endpoint,
            model=args.model,
            api_version=args.api_version,
            voice=args.voice,
            dotenv_path=False if args.no_dotenv else None,
            timeout_s=args.timeout_s,
            devices=not args.no_devices,
            emulator_options={"speed": "max", "latency": "instant"},
            endpoint_option="--endpoint",
        )
    )
    for line in report.lines():
        print(line, flush=True)
    return 0 if report.ok else 1
