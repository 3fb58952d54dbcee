"""scripts/test_matrix.py's decisions: what a missing interpreter or a failed install means, with and without CI.

No virtual environment is made and no suite runs: the script's steps are replaced by fakes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests._scripts import load_script


@pytest.fixture
def matrix() -> ModuleType:
    return load_script("test_matrix")


@pytest.fixture
def suites(matrix: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The interpreters a suite ran on (every suite passes)."""
    ran: list[Path] = []
    monkeypatch.setattr(matrix, "run_suite", lambda venv: ran.append(venv) or 0)
    return ran


def test_a_missing_interpreter_is_skipped_with_the_reason(matrix, suites, monkeypatch, capsys) -> None:
    monkeypatch.setattr(matrix, "find_python", lambda version: None)
    assert matrix.main(["3.10"], environ={}) == 0
    out = capsys.readouterr().out
    assert "Python 3.10: SKIPPED: no Python 3.10 interpreter (pyenv install 3.10" in out
    assert suites == []


def test_under_ci_a_missing_interpreter_fails_the_matrix(matrix, suites, monkeypatch, capsys) -> None:
    monkeypatch.setattr(matrix, "find_python", lambda version: None)
    assert matrix.main(["3.10"], environ={"CI": "true"}) == 1
    out = capsys.readouterr().out
    assert "Python 3.10: FAILED (CI=true, so every version of the matrix must run" in out
    assert "no Python 3.10 interpreter" in out


@pytest.mark.parametrize(("ci", "code", "outcome"), [(None, 0, "SKIPPED"), ("true", 1, "FAILED")])
def test_a_failed_install_is_skipped_or_under_ci_fails(
    matrix, suites, monkeypatch, capsys, ci, code, outcome
) -> None:
    monkeypatch.setattr(matrix, "find_python", lambda version: Path(f"/pythons/{version}/bin/python"))
    monkeypatch.setattr(
        matrix, "ensure_venv", lambda python, version: (None, "its dependencies do not install: ERROR: x")
    )
    environ = {} if ci is None else {"CI": ci}
    assert matrix.main(["3.13"], environ=environ) == code
    assert f"Python 3.13: {outcome}" in capsys.readouterr().out
    assert suites == []


def test_versions_that_install_run_the_suite_and_a_failing_suite_fails(matrix, monkeypatch, capsys) -> None:
    monkeypatch.setattr(matrix, "find_python", lambda version: Path(f"/pythons/{version}/bin/python"))
    monkeypatch.setattr(matrix, "ensure_venv", lambda python, version: (Path(f"/venv-{version}/python"), ""))
    monkeypatch.setattr(matrix, "run_suite", lambda venv: 0 if "3.10" in str(venv) else 1)
    assert matrix.main(["3.10", "3.13"], environ={}) == 1
    out = capsys.readouterr().out
    assert "Python 3.10: passed" in out and "Python 3.13: FAILED (pytest exit 1)" in out


def test_the_interpreter_of_the_whole_suite_is_named(matrix, suites, monkeypatch, tmp_path, capsys) -> None:
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.7\n", encoding="utf-8")
    assert matrix.whole_suite(tmp_path) == (
        f"the whole suite runs on Python 3.11.7 ({matrix.venv_python(venv)}, make test)"
    )
    assert "there is none yet" in matrix.whole_suite(tmp_path / "elsewhere")
    monkeypatch.setattr(matrix, "ROOT", tmp_path)
    monkeypatch.setattr(matrix, "whole_suite", lambda root=tmp_path: f"whole suite at {root}")
    monkeypatch.setattr(matrix, "find_python", lambda version: None)
    matrix.main(["3.10"], environ={})
    assert capsys.readouterr().out.count(f"whole suite at {tmp_path}") == 2  # at the start and in the summary


def test_a_pip_failure_gives_its_error_lines_as_the_reason(matrix, monkeypatch, tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    calls: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        failed = "pip" in cmd
        stderr = (
            "Collecting onnxruntime\nERROR: No matching distribution found for onnxruntime\n"
            if failed
            else ""
        )
        return subprocess.CompletedProcess(cmd, 1 if failed else 0, "", stderr)

    monkeypatch.setattr(matrix.subprocess, "run", fake_run)
    python = Path("/pythons/3.13/bin/python")
    venv, why = matrix.ensure_venv(python, "3.13", root=tmp_path)
    assert venv is None
    assert why == "its dependencies do not install: ERROR: No matching distribution found for onnxruntime"
    assert calls[0] == [str(python), "-m", "venv", str(tmp_path / ".venv-3.13")]
    assert not (tmp_path / ".venv-3.13" / ".installed").exists()  # the next run tries again


def test_a_venv_that_cannot_be_made_is_a_reason_not_a_traceback(matrix, monkeypatch, tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    monkeypatch.setattr(
        matrix.subprocess,
        "run",
        lambda cmd, **kwargs: subprocess.CompletedProcess(cmd, 1, "", "Error: ensurepip is not available\n"),
    )
    python = Path("/usr/bin/python3.13")
    venv, why = matrix.ensure_venv(python, "3.13", root=tmp_path)
    assert venv is None and why == f"{python} -m venv failed: Error: ensurepip is not available"
