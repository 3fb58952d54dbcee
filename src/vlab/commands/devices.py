"""``vlab devices``: list the microphones and speakers PortAudio sees."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    dev = sub.add_parser("devices", help="list sound devices (index, name, host API, channels, default rate)")
    dev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the device table; returns the exit code.

    Raises:
        DeviceError: PortAudio is missing or there is no device at all (the message says how to fix it).
    """
    from vlab.audio.devices import format_devices, list_devices
    from vlab.errors import DeviceError

    devices = list_devices()
    if not devices:
        raise DeviceError(
            "no sound device found; on a headless machine start a virtual sound card: "
            'eval "$(.ci/virtual-audio.sh)" (PortAudio needs XDG_RUNTIME_DIR or PULSE_SERVER to reach it)'
        )
    print(format_devices(devices))
    print("Pick one by index or by part of its name: Speaker(device=...), Microphone(device=...).")
    return 0
