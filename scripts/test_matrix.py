"""Run the fast part of the test suite on other Pythons (``make test-matrix``; ``make test`` runs all of it).

For each version asked for (default: 3.10 and 3.13, beside the 3.11 of ``.venv``), the interpreter is
looked for among pyenv's installed versions, then on ``PATH`` (``python3.X``); it gets its own virtual
environment ``.venv-3.X`` with ``pip install -e .[dev]`` (again only when ``pyproject.toml`` changed),
and runs ``pytest -m "not slow" tests/unit tests/integration tests/widgets``. A version with no
interpreter, or whose dependencies do not install (no wheels for it), is skipped with the reason; the
script fails only if a suite fails.

    python scripts/test_matrix.py [3.10 3.13 ...]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("3.10", "3.13")
FAST = [
    "-m",
    "not slow",
    "-n",
    "auto",
    "tests/unit",
    "tests/integration",
    "tests/widgets",
]
"""The fast part: no browser, sound card or notebook kernels, nothing marked slow; on every core."""


def find_python(version: str) -> Path | None:
    """The newest pyenv ``version.*`` interpreter, else ``python<version>`` on PATH."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    pattern = re.compile(rf"^{re.escape(version)}\.(\d+)$")
    found = sorted(
        (
            (int(m.group(1)), d)
            for d in (pyenv_root / "versions").glob(f"{version}.*")
            if (m := pattern.match(d.name))
        ),
        reverse=True,
    )
    for _, folder in found:
        exe = folder / ("python.exe" if os.name == "nt" else "bin/python")
        if exe.exists():
            return exe
    on_path = shutil.which(f"python{version}")
    return Path(on_path) if on_path else None


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtual environment, on any platform."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(python: Path, version: str) -> tuple[Path | None, str]:
    """``.venv-<version>`` with the project installed; (its python, "") or (None, why not)."""
    venv = ROOT / f".venv-{version}"
    stamp = venv / ".installed"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return venv_python(venv), ""
    if not venv_python(venv).exists():
        subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    started = time.monotonic()
    install = subprocess.run(
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "-e", ".[dev]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        errors = [line for line in install.stderr.splitlines() if line.startswith("ERROR")]
        return None, "its dependencies do not install: " + (" ".join(errors[-3:]) or install.stderr[-500:])
    stamp.touch()
    print(f"matrix: installed .venv-{version} in {time.monotonic() - started:.0f} s", flush=True)
    return venv_python(venv), ""


def main(argv: list[str]) -> int:
    """Run the matrix over ``argv`` (default :data:`VERSIONS`); returns the exit code."""
    versions = argv or list(VERSIONS)
    results: list[tuple[str, str]] = []
    for version in versions:
        python = find_python(version)
        if python is None:
            results.append((version, "SKIPPED: no interpreter (pyenv install it, or put pythonX.Y on PATH)"))
            continue
        venv, why = ensure_venv(python, version)
        if venv is None:
            results.append((version, f"SKIPPED: {why}"))
            continue
        print(f"matrix: Python {version} ({python}): pytest {' '.join(FAST)}", flush=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        run = subprocess.run(
            [str(venv), "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAST], cwd=ROOT, env=env
        )
        results.append(
            (version, "passed" if run.returncode == 0 else f"FAILED (pytest exit {run.returncode})")
        )
    print("\nmatrix:")
    for version, outcome in results:
        print(f"  Python {version}: {outcome}")
    return 1 if any(outcome.startswith("FAILED") for _, outcome in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
