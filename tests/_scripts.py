"""Load a file of ``scripts/`` as a module, for the tests of its functions (scripts are not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name: str) -> ModuleType:
    """A fresh module of ``scripts/<name>.py`` (named ``vlab_script_<name>``, so it shadows nothing)."""
    spec = importlib.util.spec_from_file_location(f"vlab_script_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
