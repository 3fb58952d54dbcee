"""Every notebook runs top to bottom headless against the embedded emulator (nbclient, a real kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from vlab.demo import UNATTENDED_NOTEBOOK_ENV

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
CANARY = "CANARY-NOTEBOOK-KEY-0123456789"


def test_notebooks_are_committed_without_outputs():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{path.name} has outputs; strip them"
                )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    for name, value in UNATTENDED_NOTEBOOK_ENV.items():  # as `vlab demo` runs them
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY_CANARY_UNUSED", CANARY)  # must never surface in outputs
    monkeypatch.setenv("HOME", str(tmp_path))  # jupyter/ipython write their state here, not in ~
    work = tmp_path / "notebooks"
    work.mkdir()
    nb = nbformat.read(path, as_version=4)
    # run away from the repository, as a copy from `vlab notebooks` would: the prompts are the bundled set
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert CANARY not in json.dumps(nb)
