"""The bundled prompt set, sweep examples and notebooks: found in a checkout, copied without clobbering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlab.bundled import bundled_dir, copy_bundled
from vlab.cli import main
from vlab.errors import ConfigError
from vlab.prompts import DEFAULT_PROMPT_DIR, load_prompt_set

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_uses_the_repository_folders() -> None:
    assert bundled_dir("prompts") == REPO / "data" / "prompts" == DEFAULT_PROMPT_DIR
    assert bundled_dir("examples") == REPO / "examples"
    assert bundled_dir("notebooks") == REPO / "notebooks"
    manifest = json.loads((REPO / "data" / "prompts" / "manifest.json").read_text(encoding="utf-8"))
    assert [p.id for p in load_prompt_set()] == [e["id"] for e in manifest["prompts"]]


def test_the_wheel_config_ships_every_bundled_folder() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from vlab.bundled import BUNDLED, PACKAGE_DATA

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    forced = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for name, folder in BUNDLED.items():
        assert forced[folder] == f"vlab/{PACKAGE_DATA}/{name}"


def test_examples_are_copied_and_a_rerun_changes_nothing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["examples"]) == 0
    copied = tmp_path / "examples" / "vad_sweep.toml"
    assert copied.read_bytes() == (REPO / "examples" / "vad_sweep.toml").read_bytes()
    assert "vlab sweep" in capsys.readouterr().out
    assert main(["examples"]) == 0  # the same files again: nothing to refuse


def test_a_changed_file_is_the_users_and_is_kept_without_force(tmp_path, capsys) -> None:
    dest = tmp_path / "mine"
    assert main(["examples", str(dest)]) == 0
    edited = dest / "vad_sweep.toml"
    edited.write_text("# my sweep\n", encoding="utf-8")
    assert main(["examples", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "vad_sweep.toml" in err and "--force" in err
    assert edited.read_text(encoding="utf-8") == "# my sweep\n"
    assert main(["examples", str(dest), "--force"]) == 0
    assert edited.read_bytes() == (REPO / "examples" / "vad_sweep.toml").read_bytes()


def test_notebooks_are_copied_without_opening_jupyterlab(tmp_path) -> None:
    assert main(["notebooks", str(tmp_path / "nb"), "--no-open"]) == 0
    names = sorted(p.name for p in (tmp_path / "nb").iterdir())
    assert names == sorted(p.name for p in (REPO / "notebooks").iterdir() if p.is_file())


def test_copying_into_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="is a file"):
        copy_bundled("examples", tmp_path / "file")


def test_the_demo_refuses_a_run_folder_that_holds_files(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["demo", "--quick", "--out", str(out)]) == 2  # refused before anything runs
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_notebooks_opens_jupyterlab_of_this_environment_on_the_copy(tmp_path, monkeypatch) -> None:
    import subprocess
    import sys

    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: started.append(cmd) or 0)
    assert main(["notebooks", str(tmp_path / "nb")]) == 0
    assert started == [[sys.executable, "-m", "jupyterlab", str(tmp_path / "nb")]]
    assert (tmp_path / "nb" / "01_quickstart.ipynb").is_file()
