"""``vlab devices``: list the microphones and speakers PortAudio sees, or run a virtual sound card."""

from __future__ import annotations

import argparse

VIRTUAL_CARD_ACTIONS = ("start", "stop", "status")
"""What ``vlab devices --virtual`` does with the virtual sound card (the script's own commands)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    dev = sub.add_parser("devices", help="list sound devices (index, name, host API, channels, default rate)")
    dev.add_argument(
        "--virtual",
        nargs="?",
        const="start",
        choices=VIRTUAL_CARD_ACTIONS,
        help="start a virtual sound card for a headless machine (Linux, PulseAudio) and print the variables "
        'that reach it: eval "$(vlab devices --virtual)"; or stop it, or check that it runs (status)',
    )
    dev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the device table, or run the virtual sound card's script; returns the exit code.

    Raises:
        DeviceError: PortAudio is missing or there is no device at all (the message says how to fix it),
            or the virtual sound card cannot run here.
    """
    from vlab.audio.devices import VIRTUAL_CARD_HINT, format_devices, list_devices
    from vlab.errors import DeviceError

    if args.virtual is not None:
        return _virtual_card(args.virtual)
    devices = list_devices()
    if not devices:
        raise DeviceError(
            f"no sound device found; {VIRTUAL_CARD_HINT} (PortAudio needs XDG_RUNTIME_DIR or PULSE_SERVER "
            "to reach it)"
        )
    print(format_devices(devices))
    print("Pick one by index or by part of its name: Speaker(device=...), Microphone(device=...).")
    return 0


def _virtual_card(action: str) -> int:
    """Run the bundled script: its ``export`` lines go to standard output, its progress to standard error."""
    import shutil
    import subprocess
    import sys

    from vlab.bundled import virtual_card_script
    from vlab.errors import DeviceError

    if not sys.platform.startswith("linux") or shutil.which("bash") is None:
        raise DeviceError(
            f"the virtual sound card runs on Linux (with bash and PulseAudio), not on {sys.platform}; "
            "connect a microphone and a speaker, or use the browser's (vlab.widgets.BrowserAudio)"
        )
    script = virtual_card_script()
    if not script.is_file():
        raise DeviceError(
            f"vlab's virtual sound card script is missing (looked for {script}); reinstall vlab"
        )
    code = subprocess.run(["bash", str(script), action], check=False).returncode
    if action == "status":
        print(
            "the virtual sound card runs"
            if code == 0
            else 'no virtual sound card runs; start one: eval "$(vlab devices --virtual)"'
        )
    return code
