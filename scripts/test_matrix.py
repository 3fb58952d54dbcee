"""Run the fast part of the test suite on other Pythons (``make test-matrix``; ``make test`` runs all of it).

For each version asked for (default: 3.10 and 3.13, beside the 3.11 of ``.venv``), the interpreter is
looked for among pyenv's installed versions, then on ``PATH`` (``python3.X``); it gets its own virtual
environment ``.venv-3.X`` with ``pip install -e .[dev]`` (again only when ``pyproject.toml`` changed),
and runs ``pytest -m "not slow" tests/unit tests/integration tests/widgets``. The whole suite runs on
the interpreter that runs this script (``.venv``'s, by ``make test``); the script says which.

A version with no interpreter, or whose dependencies do not install (no wheels for it), is skipped with
the reason; under ``CI=true`` it fails instead, since CI is meant to run every version. The script also
fails if a suite fails.

    python scripts/test_matrix.py [3.10 3.13 ...]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
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


def ensure_venv(python: Path, version: str, root: Path = ROOT) -> tuple[Path | None, str]:
    """``<root>/.venv-<version>`` with the project installed; (its python, "") or (None, why not)."""
    venv = root / f".venv-{version}"
    stamp = venv / ".installed"
    pyproject = root / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return venv_python(venv), ""
    if not venv_python(venv).exists():
        made = subprocess.run([str(python), "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode != 0:
            return None, f"{python} -m venv failed: {(made.stderr or made.stdout).strip()[-500:]}"
    started = time.monotonic()
    install = subprocess.run(
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "-e", ".[dev]"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        errors = [line for line in install.stderr.splitlines() if line.startswith("ERROR")]
        return None, "its dependencies do not install: " + (" ".join(errors[-3:]) or install.stderr[-500:])
    stamp.touch()
    print(f"matrix: installed .venv-{version} in {time.monotonic() - started:.0f} s", flush=True)
    return venv_python(venv), ""


def unavailable(why: str, *, ci: bool) -> str:
    """The outcome of a version that cannot run: skipped with the reason, or under CI a failure."""
    if ci:
        return f"FAILED (CI=true, so every version of the matrix must run; install it there): {why}"
    return f"SKIPPED: {why}"


def exit_code(results: list[tuple[str, str]]) -> int:
    """1 if any version failed (its suite, or under CI its set-up), else 0."""
    return 1 if any(outcome.startswith("FAILED") for _, outcome in results) else 0


def run_suite(venv: Path) -> int:
    """The fast part of the suite on the interpreter ``venv``; returns pytest's exit code."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv), "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAST], cwd=ROOT, env=env
    ).returncode


def whole_suite(root: Path = ROOT) -> str:
    """Which interpreter runs the whole suite: ``.venv``'s, the one ``make test`` uses."""
    venv = root / ".venv"
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        return f"the whole suite runs on {venv} (make test creates it; there is none yet)"
    lines = (line.partition("=") for line in cfg.read_text(encoding="utf-8").splitlines())
    fields = {key.strip(): value.strip() for key, _, value in lines}
    version = fields.get("version_info") or fields.get("version") or "?"
    return f"the whole suite runs on Python {version} ({venv_python(venv)}, make test)"


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    """Run the matrix over ``argv`` (default :data:`VERSIONS`); returns the exit code."""
    ci = (os.environ if environ is None else environ).get("CI") == "true"
    versions = argv or list(VERSIONS)
    print(f"matrix: {whole_suite()}; the fast part on Python {', '.join(versions)}", flush=True)
    results: list[tuple[str, str]] = []
    for version in versions:
        python = find_python(version)
        if python is None:
            why = f"no Python {version} interpreter (pyenv install {version}, or put python{version} on PATH)"
            results.append((version, unavailable(why, ci=ci)))
            continue
        venv, why = ensure_venv(python, version)
        if venv is None:
            results.append((version, unavailable(why, ci=ci)))
            continue
        print(f"matrix: Python {version} ({python}): pytest {' '.join(FAST)}", flush=True)
        code = run_suite(venv)
        results.append((version, "passed" if code == 0 else f"FAILED (pytest exit {code})"))
    print("\nmatrix:")
    print(f"  {whole_suite()}")
    for version, outcome in results:
        print(f"  Python {version}: {outcome}")
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
