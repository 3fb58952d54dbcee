"""The public surface and the import rules of the layered layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import vlab

SRC = Path(vlab.__file__).parent


def test_public_names_are_pinned():
    assert set(vlab.__all__) == {
        "NOT_GIVEN",
        "AzureSemanticVad",
        "BargeIn",
        "ServerVad",
        "Session",
        "SessionSettings",
        "VlabError",
        "__version__",
        "load_log",
        "load_sweep",
    }
    for name in vlab.__all__:
        assert getattr(vlab, name) is not None


def test_import_vlab_stays_light():
    code = (
        "import sys, vlab; heavy = ['sounddevice', 'ipywidgets', 'matplotlib', 'vlab.emulator', 'aiohttp', 'pandas'];"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
