"""``vlab devices --virtual``: the bundled virtual sound card starts, PortAudio sees it, and it stops."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from tests._portable import unavailable


def _vlab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlab", "devices", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _missing() -> list[str]:
    """What this machine lacks for the card (the script runs pulseaudio, pactl and pacat) or for
    ``vlab devices`` (PortAudio). tests/devices/conftest.py's check wants the card already running."""
    missing = [
        f"{tool} is not installed (apt-get install {package})"
        for tool, package in (
            ("pulseaudio", "pulseaudio"),
            ("pactl", "pulseaudio-utils"),
            ("pacat", "pulseaudio-utils"),
        )
        if shutil.which(tool) is None
    ]
    from vlab.audio.devices import _sounddevice
    from vlab.errors import DeviceError

    try:
        _sounddevice()
    except DeviceError as exc:
        missing.append(str(exc))
    return missing


def test_vlab_devices_virtual_starts_a_card_portaudio_lists_and_stops_it(tmp_path):
    if missing := _missing():
        unavailable("the virtual sound card test", "; ".join(missing))
    card = tmp_path / "card"  # its own PulseAudio, apart from the one the device tests use
    env = {**os.environ, "VLAB_AUDIO_DIR": str(card)}
    for name in ("XDG_RUNTIME_DIR", "PULSE_SERVER"):
        env.pop(name, None)
    started = _vlab("--virtual", env=env)
    try:
        assert started.returncode == 0, started.stderr
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", started.stdout, re.MULTILINE))
        assert exports == {"XDG_RUNTIME_DIR": str(card), "PULSE_SERVER": f"unix:{card}/pulse/native"}
        assert "virtual-audio: ready" in started.stderr
        on_card = {**env, **exports}
        running = _vlab("--virtual", "status", env=on_card)
        assert running.returncode == 0 and running.stdout == "the virtual sound card runs\n"
        listed = _vlab(env=on_card)
        assert listed.returncode == 0, listed.stderr
        assert re.search(r"\bpulse\b", listed.stdout)
    finally:
        stopped = _vlab("--virtual", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    gone = _vlab("--virtual", "status", env={**env, **exports})
    assert gone.returncode != 0
    assert gone.stdout == 'no virtual sound card runs; start one: eval "$(vlab devices --virtual)"\n'
