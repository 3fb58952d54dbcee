"""The bundled prompt set, sweep examples, notebooks and docs: found in a checkout, copied without clobbering."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from vlab.bundled import NOTEBOOKS_DIR, bundled_dir, copy_bundled, copy_notebooks
from vlab.cli import main
from vlab.errors import ConfigError
from vlab.prompts import DEFAULT_PROMPT_DIR, load_prompt_set

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_uses_the_repository_folders() -> None:
    assert bundled_dir("prompts") == REPO / "data" / "prompts" == DEFAULT_PROMPT_DIR
    assert bundled_dir("examples") == REPO / "examples"
    assert bundled_dir("notebooks") == REPO / "notebooks"
    assert bundled_dir("docs") == REPO / "docs"
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
    out = capsys.readouterr().out
    assert f"vlab sweep {Path('examples') / 'vad_sweep.toml'} --out runs/sweep" in out
    assert (tmp_path / "examples" / "chained_tools.json").is_file()  # the script its config names
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


def test_notebooks_are_copied_with_their_docs_without_opening_jupyterlab(tmp_path, capsys) -> None:
    assert main(["notebooks", str(tmp_path / "nb"), "--no-open"]) == 0
    names = sorted(p.name for p in (tmp_path / "nb" / "notebooks").iterdir())
    assert names == sorted(p.name for p in (REPO / "notebooks").iterdir() if p.is_file())
    docs = sorted(p.name for p in (tmp_path / "nb" / "docs").iterdir())
    assert docs == sorted(p.name for p in (REPO / "docs").glob("*.md"))
    # by this Python's whole path: a bare "python" (outside the venv) may have no JupyterLab
    command = [sys.executable, "-m", "jupyterlab", str(tmp_path / "nb")]
    shown = subprocess.list2cmdline(command) if os.name == "nt" else shlex.join(command)
    assert f"Open them with:  {shown}" in capsys.readouterr().out


def test_the_notebooks_default_folder_is_created_in_the_current_one(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["notebooks", "--no-open"]) == 0
    assert (tmp_path / NOTEBOOKS_DIR / "notebooks" / "01_quickstart.ipynb").is_file()
    assert (tmp_path / NOTEBOOKS_DIR / "docs" / "timeline.md").is_file()


def _relative_links(notebook: Path) -> list[str]:
    """The targets of the notebook's Markdown links that are files beside it, not web addresses."""
    nb = nbformat.read(notebook, as_version=4)
    links = [
        m for c in nb.cells if c.cell_type == "markdown" for m in re.findall(r"\]\(([^)\s]+)\)", c.source)
    ]
    return [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link)]


def test_every_notebook_link_works_in_the_repository_and_in_a_copy(tmp_path) -> None:
    copied = [p for p in copy_notebooks(tmp_path / "copy") if p.suffix == ".ipynb"]
    assert sorted(p.name for p in copied) == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    links = {notebook.name: _relative_links(notebook) for notebook in copied}
    assert links["06_browser_audio.ipynb"] == ["../docs/browser-audio.md"]  # the link that was broken
    for notebook in copied:
        for link in links[notebook.name]:
            assert (REPO / "notebooks" / link).resolve().is_file(), f"{notebook.name}: {link} (repository)"
            target = (notebook.parent / link).resolve()
            assert target.is_file(), f"{notebook.name}: {link} (copy)"
            assert target.is_relative_to(tmp_path / "copy")  # in reach of JupyterLab started on the copy


def test_a_refusal_names_five_clashes_and_counts_the_rest(tmp_path) -> None:
    names = sorted(p.name for p in bundled_dir("notebooks").iterdir() if p.is_file())
    assert len(names) > 5
    for count, folder in ((len(names), tmp_path / "all"), (5, tmp_path / "five")):
        folder.mkdir()
        for name in names[:count]:  # files of the user's where the notebooks would go
            (folder / name).write_text("mine", encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            copy_bundled("notebooks", folder)
        shown = ", ".join(str(folder / name) for name in names[:5])
        more = f" and {count - 5} more" if count > 5 else ""
        assert f"into {folder}: {shown}{more} already exist with other content" in str(info.value)


def test_a_refusal_over_one_file_says_it_in_the_singular(tmp_path) -> None:
    (tmp_path / "notebooks").mkdir()
    mine = tmp_path / "notebooks" / "README.md"
    mine.write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        copy_bundled("notebooks", tmp_path / "notebooks")
    assert str(info.value).endswith(
        f"{mine} already exists with other content; choose another folder, or pass --force to replace it "
        "with vlab's"
    )


def test_a_clash_in_the_docs_copies_no_notebook_either(tmp_path) -> None:
    (tmp_path / "nb" / "docs").mkdir(parents=True)
    (tmp_path / "nb" / "docs" / "timeline.md").write_text("my notes\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"timeline\.md.*--force"):
        copy_notebooks(tmp_path / "nb")
    assert not (tmp_path / "nb" / "notebooks").exists()
    assert (tmp_path / "nb" / "docs" / "timeline.md").read_text(encoding="utf-8") == "my notes\n"


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
    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: started.append(cmd) or 0)
    assert main(["notebooks", str(tmp_path / "nb")]) == 0
    # rooted at the copy, so ../docs is in reach, and showing its notebooks
    assert started == [
        [sys.executable, "-m", "jupyterlab", str(tmp_path / "nb"), "--LabApp.default_url=/lab/tree/notebooks"]
    ]
    assert (tmp_path / "nb" / "notebooks" / "01_quickstart.ipynb").is_file()


def test_the_demo_writes_every_notebook_with_the_docs_its_links_need(tmp_path, monkeypatch) -> None:
    import nbclient

    from vlab.demo import UNATTENDED_NOTEBOOK_ENV, execute_notebooks

    ran: list[tuple[str, dict[str, str | None]]] = []  # (the folder it runs in, what it is told)

    class Kernel:  # no kernel starts: what is checked is where the notebooks and their docs go
        def __init__(self, nb, **kwargs) -> None:
            self.path = kwargs["resources"]["metadata"]["path"]

        def execute(self, **kwargs) -> None:
            ran.append((self.path, {name: os.environ.get(name) for name in told}))

    told = ["VLAB_NOTEBOOK_SPEED", "VLAB_NOTEBOOK_UNATTENDED"]
    monkeypatch.setattr(nbclient, "NotebookClient", Kernel)
    for name in told:
        monkeypatch.delenv(name, raising=False)
    results = execute_notebooks(tmp_path)
    names = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert [name for name, _ in results] == names and all(s.startswith("ok") for _, s in results)
    unattended = {"VLAB_NOTEBOOK_SPEED": "inf", "VLAB_NOTEBOOK_UNATTENDED": "1"}
    assert UNATTENDED_NOTEBOOK_ENV == unattended
    assert ran == [(str(tmp_path / "notebooks"), unattended)] * len(names)
    assert not any(name in os.environ for name in told)  # restored
    for name in names:
        for link in _relative_links(tmp_path / "notebooks" / name):
            assert (tmp_path / "notebooks" / link).resolve().is_file(), f"{name}: {link}"
