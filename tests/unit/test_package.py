"""The public surface and the import rules of the layered layout."""

from __future__ import annotations

import ast
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


def _vlab_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vlab"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vlab"))
    return found


FORBIDDEN = {
    # core layers never reach up to the session, the emulator, widgets or plots
    "errors.py": {"vlab."},
    "clock.py": {"vlab."},
    "protocol.py": {"vlab."},
    "settings.py": {"vlab.session", "vlab.emulator", "vlab.log", "vlab.audio", "vlab.widgets"},
    "log": {"vlab.session", "vlab.emulator", "vlab.widgets", "vlab.plots", "vlab.endpoint", "vlab.audio"},
    "audio": {"vlab.session", "vlab.emulator", "vlab.widgets", "vlab.plots", "vlab.log", "vlab.endpoint"},
    "metrics": {"vlab.session", "vlab.emulator", "vlab.widgets", "vlab.endpoint"},
    "session.py": {"vlab.emulator", "vlab.widgets", "vlab.plots"},
    "emulator": {
        "vlab.session",
        "vlab.metrics",
        "vlab.widgets",
        "vlab.endpoint",
        "vlab.log",
        "vlab.settings",
        "azure",
    },
}


def test_layers_only_import_downwards():
    problems = []
    for name, banned in FORBIDDEN.items():
        target = SRC / name
        files = [target] if target.is_file() else sorted(target.rglob("*.py"))
        for path in files:
            for module in _vlab_imports(path):
                if any(
                    module == b.rstrip(".")
                    or module.startswith(b if b.endswith(".") else b + ".")
                    or module == b
                    for b in banned
                ):
                    problems.append(f"{path.relative_to(SRC)} imports {module}")
            if name == "emulator":
                text = path.read_text()
                if "azure.ai.voicelive" in text:
                    problems.append(
                        f"{path.relative_to(SRC)} uses the SDK; the emulator speaks the wire format itself"
                    )
    assert problems == []
