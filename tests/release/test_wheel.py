"""The release check: the wheel works on its own, installed as a user installs it, away from the repository.

The wheel is built from the repository and installed (``--no-deps``) into a new virtual environment in
a temporary folder; ``vlab demo --quick`` then runs through the wheel's ``vlab`` entry point from an
empty folder, and ``vlab notebooks`` copies the notebooks and their docs: the two quick notebooks run
headless there, and the other notebooks' imports run in the new environment. (Executing the others too
would add about 70 s on a 2-core machine: about 15 s each for 04 and 06, 20 s each for 03 and 05;
tests/notebooks executes all of them from a copy, on the source tree.)

So that this takes seconds rather than a download of every dependency, the new environment sees the
test environment's site-packages through a ``.pth`` line, and what that hides is checked instead:

- every ``vlab`` module that runs, and the prompt set, come from the new environment (package data and
  entry points, nothing from ``src/`` or ``data/``);
- every third-party module that runs (in the CLI, the Silero worker and the notebook kernels) belongs to
  a distribution the wheel declares, directly or through its dependencies: a missing dependency fails
  here as it would in a user's fresh environment.
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest

from tests.conftest import SKIP_IMPORTS_PRELUDE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # about a minute; several on a loaded machine

REPO = Path(__file__).resolve().parents[2]
HEADLESS_NOTEBOOKS = ("01_quickstart.ipynb", "02_replay_wav_prompts.ipynb")
"""The notebooks run from the copy (the two quick ones; tests/notebooks runs every one from the repo)."""

IMPORT_LOG_MODULE = """\
import atexit, os, sys

def _write(path=os.environ.get("VLAB_IMPORT_LOG")):
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    with open(path, "a", encoding="utf-8") as out:
        out.writelines(f + "\\n" for f in sorted(f for f in files if f))

if os.environ.get("VLAB_IMPORT_LOG"):
    atexit.register(_write)
"""
"""Loaded by a ``.pth`` file at every start of the new environment's Python: it appends the file of
every module the process imported to ``$VLAB_IMPORT_LOG`` when the process exits."""


class _Builder(venv.EnvBuilder):
    def post_setup(self, context: SimpleNamespace) -> None:
        self.context = context


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="the wheel is built with hatchling (the dev extra installs it)")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (found,) = dist.glob("vlab-*.whl")
    return found


@pytest.fixture(scope="module")
def env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A new virtual environment holding only the wheel, seeing the test environment's dependencies."""
    root = tmp_path_factory.mktemp("venv")
    builder = _Builder(with_pip=False)
    builder.create(root)
    python = Path(builder.context.env_exe)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_vlab_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n", encoding="utf-8")
    (site / "_vlab_import_log.py").write_text(IMPORT_LOG_MODULE, encoding="utf-8")
    (site / "_vlab_import_log.pth").write_text("import _vlab_import_log\n", encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    work = tmp_path_factory.mktemp("empty")
    log = root / "imports.log"
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    environ |= {
        "VLAB_IMPORT_LOG": str(log),
        "PATH": builder.context.bin_path + os.pathsep + environ.get("PATH", ""),
        "HOME": str(work.parent / "home"),  # jupyter and ipython keep their state there, not in ~
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    vlab = Path(builder.context.bin_path) / ("vlab.exe" if os.name == "nt" else "vlab")
    yield SimpleNamespace(
        python=python,
        vlab=vlab,
        site=site,
        work=work,
        environ=environ,
        log=log,
        deps=sorted(ours),
        wheel=wheel,
    )


def _run(env: SimpleNamespace, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``vlab *args`` in the new environment, with ``environ`` added to its variables; it must succeed."""
    proc = subprocess.run(
        [str(env.vlab), *args],
        cwd=env.work,
        env=env.environ | environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"vlab {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def test_wheel_holds_the_bundled_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "prompts/manifest.json",
        "prompts/README.md",  # where the prompts come from, and their licences
        "prompts/human/COPYING",
        "examples/vad_sweep.toml",
        "virtual-audio.sh",  # vlab devices --virtual
    ):
        assert f"vlab/_bundled/{path}" in names, path
    for doc in (REPO / "docs").glob("*.md"):
        assert f"vlab/_bundled/docs/{doc.name}" in names
    manifest = json.loads((REPO / "data" / "prompts" / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["prompts"]:
        assert f"vlab/_bundled/prompts/{entry['file']}" in names
    for notebook in (REPO / "notebooks").glob("*.ipynb"):
        assert f"vlab/_bundled/notebooks/{notebook.name}" in names


def test_demo_and_notebooks_from_an_empty_folder(env: SimpleNamespace) -> None:
    prompts = subprocess.run(
        [
            str(env.python),
            "-c",
            "from vlab.prompts import load_prompt_set as l; p = l(); print(len(p)); print(p[0].file)",
        ],
        cwd=env.work,
        env=env.environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    manifest = json.loads((REPO / "data" / "prompts" / "manifest.json").read_text(encoding="utf-8"))
    assert int(prompts[0]) == len(manifest["prompts"])
    assert Path(prompts[1]).is_relative_to(env.site / "vlab" / "_bundled" / "prompts")

    with socket.socket() as refusing:  # an endpoint in the environment: the demo stays offline all the same
        refusing.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        demo = _run(
            env,
            "demo",
            "--quick",
            "--out",
            "demo",
            AZURE_VOICELIVE_ENDPOINT=endpoint,
            AZURE_VOICELIVE_API_KEY="k",
        )
    assert demo.stdout.startswith(
        "An endpoint is set (environment variable AZURE_VOICELIVE_ENDPOINT), but the demo runs on the embedded "
        "emulator all the same"
    )
    assert "6 cells in" in demo.stdout and "; 0 failed" in demo.stdout
    where = demo.stdout.split("Where to look:\n")[1].splitlines()

    def what_starts(line: str) -> int:  # after the place and the spaces that pad it
        gap = line.index("  ", 2)
        return len(line) - len(line[gap:].lstrip())

    assert len(where) == 3 and len({what_starts(line) for line in where}) == 1, where  # one column
    assert (env.work / "demo" / "report.html").is_file()
    assert (env.work / "demo" / "scores.parquet").is_file()

    _run(env, "notebooks", "nb", "--no-open")
    notebooks = env.work / "nb" / "notebooks"
    copied = sorted(p.name for p in notebooks.glob("*.ipynb"))
    assert copied == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    for notebook in notebooks.glob("*.ipynb"):  # the docs they link to came with them, from the wheel
        for link in re.findall(r"\]\((\.\./docs/[^)#]+)", notebook.read_text(encoding="utf-8")):
            assert (notebooks / link).is_file(), f"{notebook.name}: {link}"
    _run(env, "examples", "ex")
    assert (env.work / "ex" / "vad_sweep.toml").read_bytes() == (
        REPO / "examples/vad_sweep.toml"
    ).read_bytes()

    for name in HEADLESS_NOTEBOOKS:
        _execute(env, notebooks / name)
    _import_what_the_others_import(
        env, [p for p in notebooks.glob("*.ipynb") if p.name not in HEADLESS_NOTEBOOKS]
    )

    _assert_self_contained(env)


RUN_NOTEBOOK = (
    SKIP_IMPORTS_PRELUDE
    + """\
import os, sys, nbformat
from nbclient import NotebookClient
path, out = sys.argv[1:]
nb = nbformat.read(path, as_version=4)
nb.cells.insert(0, nbformat.v4.new_code_cell("import sys, vlab; print(sys.executable); print(vlab.__file__)"))
try:
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}}
    ).execute()
finally:
    nbformat.write(nb, out)
"""
)
"""Runs a notebook headless as a user of the new environment would (its native kernel is that Python).
The runner, like the test processes, does without the imports :data:`tests.conftest.SKIPPED_IMPORTS`
names (1.1 s of CPU per notebook); the kernels import what they import."""


def _execute(env: SimpleNamespace, path: Path) -> None:
    out = path.with_name(f"executed-{path.name}")
    proc = subprocess.run(
        [str(env.python), "-c", RUN_NOTEBOOK, str(path), str(out)],
        cwd=path.parent,
        env=env.environ | {"VLAB_NOTEBOOK_SPEED": "inf"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert proc.returncode == 0 and errors == [], f"{path.name}: {errors or proc.stderr[-3000:]}"
    printed = nb.cells[0].outputs[0]["text"].splitlines()
    assert Path(printed[0]).parent == env.python.parent, printed
    assert Path(printed[1]).is_relative_to(env.site), printed


def _import_what_the_others_import(env: SimpleNamespace, paths: list[Path]) -> None:
    """Run the top-level imports of the notebooks not executed, in the new environment (a few seconds)."""
    imports: list[str] = []
    for path in sorted(paths):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                code = "\n".join(x for x in cell.source.splitlines() if not x.lstrip().startswith(("%", "!")))
                tree = ast.parse(code)
                imports += [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert any("matplotlib" in line for line in imports), imports  # e.g. 03's plots
    proc = subprocess.run(
        [str(env.python), "-c", "\n".join(dict.fromkeys(imports))],
        cwd=env.work,
        env=env.environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


OPTIONAL_IMPORTS = {
    "cloudpickle": "pyarrow imports it when it is installed (dask, in the dev extra, brings it)",
    "msgpack": "jupyter_client.session imports it when it is installed (dask, in the dev extra, brings it)",
    "mypy-extensions": "psygnal (anywidget's) imports it when it is installed (mypy, in the dev extra, brings it)",
}
"""Distributions a declared dependency imports only when they happen to be installed (try/except)."""


def _assert_self_contained(env: SimpleNamespace) -> None:
    imported = {Path(line) for line in env.log.read_text(encoding="utf-8").splitlines()}
    vlab_files = {
        f for f in imported if "vlab" in f.parts and f.suffix == ".py" and "_bundled" not in f.parts
    }
    assert vlab_files and all(f.is_relative_to(env.site / "vlab") for f in vlab_files), sorted(
        f for f in vlab_files if not f.is_relative_to(env.site / "vlab")
    )
    assert any(f.name == "silero_serve.py" for f in vlab_files), "the Silero worker did not run"

    owners = _owners(env.deps)
    used = {owners.get(_key(f), f"(no distribution: {f})") for f in imported if _under(f, env.deps)}
    declared = _closure(env.wheel)
    missing = sorted(used - declared - set(OPTIONAL_IMPORTS))
    assert not missing, (
        "the wheel runs code from distributions it does not declare (directly or through its dependencies); "
        f"add them to [project] dependencies: {missing}"
    )


def _under(path: Path, roots: list[str]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _owners(roots: list[str]) -> dict[str, str]:
    """Each installed file of the test environment (:func:`_key`) → its distribution's normalized name."""
    owners: dict[str, str] = {}
    for dist in metadata.distributions(path=roots):
        name = _norm(dist.metadata["Name"])
        for file in dist.files or ():
            owners[_key(dist.locate_file(file))] = name
    return owners


def _key(path: object) -> str:
    """A file's path as both sides spell it (``sys.path`` and ``RECORD`` both start at site-packages)."""
    return os.path.normcase(os.path.normpath(str(path)))


def _closure(wheel: Path) -> set[str]:
    """The wheel's run-time dependencies (no extras), recursively, as installed in the test environment."""
    from email.parser import Parser

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        requires = Parser().parsestr(zf.read(name).decode("utf-8")).get_all("Requires-Dist") or []
    todo = [Requirement(r) for r in requires if _applies(Requirement(r), "")]
    names: set[str] = {"vlab"}
    done: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements are in ``todo``
    while todo:
        req = todo.pop()
        names.add(_norm(req.name))
        for extra in ("", *req.extras):
            if (_norm(req.name), extra) in done:
                continue
            done.add((_norm(req.name), extra))
            todo += [
                sub for raw in metadata.requires(req.name) or () if _applies(sub := Requirement(raw), extra)
            ]
    return names


def _applies(req: Any, extra: str) -> bool:
    """Whether ``req`` is needed on this platform (for ``extra``, only what that extra adds)."""
    if req.marker is None:
        return not extra
    return bool(req.marker.evaluate({"extra": extra})) and (not extra or "extra" in str(req.marker))


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
