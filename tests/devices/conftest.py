"""Real-device tests: PortAudio through a user-space PulseAudio (``.ci/virtual-audio.sh``).

The virtual sound card has two 24 kHz mono null sinks: ``vsink`` (default sink; its monitor hears what
a Speaker plays) and ``vmic`` (a virtual microphone; its monitor is the default source). PortAudio sees
them through the ALSA ``pulse`` device; ``PULSE_SINK`` / ``PULSE_SOURCE`` pick a sink or source for
the next stream opened, which is how a test records ``vsink.monitor``.

Without the sound card the tests skip with the reason, except when ``CI=true``: then they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._portable import unavailable

DEFAULT_AUDIO_DIR = Path(os.environ.get("VLAB_AUDIO_DIR") or Path(tempfile.gettempdir()) / "vlab-audio")
"""Where ``.ci/virtual-audio.sh`` runs the sound card: ``$VLAB_AUDIO_DIR``, else ``vlab-audio`` in the temp dir."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "devices: needs a (virtual) sound card: PulseAudio + PortAudio (.ci/virtual-audio.sh)"
    )


def _problem() -> str | None:
    """Why the virtual sound card is unusable, or None."""
    if not shutil.which("pactl"):
        return "pactl not found (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"
    info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)
    if info.returncode != 0:
        return f'no PulseAudio server reachable ({" ".join(info.stderr.split())}); run: eval "$(.ci/virtual-audio.sh)"'
    sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True).stdout
    names = {line.split("\t")[1] for line in sinks.splitlines() if "\t" in line}
    if not {"vsink", "vmic"} <= names:
        return f"PulseAudio runs but lacks the vlab sinks vsink and vmic (has {sorted(names)}); run .ci/virtual-audio.sh"
    from vlab.audio.devices import list_devices
    from vlab.errors import DeviceError

    try:
        devices = list_devices(refresh=True)
    except DeviceError as exc:
        return str(exc)
    if not any(d.name == "pulse" and d.max_input_channels and d.max_output_channels for d in devices):
        return f"PortAudio does not list the ALSA 'pulse' device (devices: {[d.name for d in devices]}); install libasound2-plugins"
    return None


@pytest.fixture(scope="session")
def sound_card() -> Iterator[None]:
    """The virtual sound card, found at the exported server or at the script's default place."""
    added = {}
    if not os.environ.get("PULSE_SERVER") and not os.environ.get("XDG_RUNTIME_DIR"):
        if (DEFAULT_AUDIO_DIR / "pulse" / "native").exists():
            added["PULSE_SERVER"] = f"unix:{DEFAULT_AUDIO_DIR}/pulse/native"
    os.environ.update(added)
    try:
        problem = _problem()
        if problem is not None:
            unavailable("device tests", problem, skip_reason=f"no virtual sound card: {problem}")
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
