"""What vlab ships beside its code: the labelled prompts, the sweep examples, the notebooks and their docs.

In an installed wheel they are package data under ``vlab/_bundled/`` (``pyproject.toml`` puts the
repository's top-level ``data/prompts``, ``examples``, ``notebooks`` and ``docs`` there), found through
:mod:`importlib.resources`. In a source checkout or an editable install, where the package is
``src/vlab``, they are those top-level folders themselves.
"""

from __future__ import annotations

import filecmp
import shutil
from importlib import resources
from pathlib import Path
from typing import Literal

from vlab.errors import ConfigError, refuse_a_file_in_the_way

__all__ = [
    "BUNDLED",
    "NOTEBOOKS_DIR",
    "VIRTUAL_CARD_SCRIPT",
    "Bundled",
    "bundled_dir",
    "copy_bundled",
    "copy_notebooks",
    "virtual_card_script",
]

Bundled = Literal["prompts", "examples", "notebooks", "docs"]
"""The folders vlab ships."""

BUNDLED: dict[Bundled, str] = {
    "prompts": "data/prompts",
    "examples": "examples",
    "notebooks": "notebooks",
    "docs": "docs",
}
"""Each bundled folder's place in the repository; in a wheel it is ``vlab/_bundled/<name>``."""

NOTEBOOKS_DIR = "vlab-notebooks"
"""Where ``vlab notebooks`` copies the notebooks (``notebooks/``) and their docs (``docs/``) by default."""

PACKAGE_DATA = "_bundled"
"""The folder inside the installed ``vlab`` package that holds the bundled folders."""

VIRTUAL_CARD_SCRIPT = ".ci/virtual-audio.sh"
"""The script that starts a virtual sound card (a user-space PulseAudio); in a wheel it is
``vlab/_bundled/virtual-audio.sh``."""


def _package_root() -> Path:
    root = resources.files("vlab")
    if not isinstance(root, Path):  # e.g. imported from a zip file: the data has no path of its own
        raise ConfigError(
            f"vlab is installed in a form whose files are not on disk ({root!r}); "
            "install it as a normal wheel (pip install vlab) to use its bundled data"
        )
    return root


def _candidates(shipped: str, in_repository: str) -> list[Path]:
    """Where a bundled file or folder may be: the wheel's package data, then the checkout's path."""
    package = _package_root()
    found = [package / PACKAGE_DATA / shipped]
    checkout = package.parent.parent  # src/vlab → the repository
    if package.parent.name == "src" and (checkout / "pyproject.toml").is_file():
        found.append(checkout.joinpath(*in_repository.split("/")))
    return found


def virtual_card_script() -> Path:
    """The virtual sound card's script: the wheel's copy, else (in a checkout) the repository's."""
    candidates = _candidates(Path(VIRTUAL_CARD_SCRIPT).name, VIRTUAL_CARD_SCRIPT)
    return next((c for c in candidates if c.is_file()), candidates[-1])


def bundled_dir(name: Bundled) -> Path:
    """The folder holding the bundled ``name`` (it may be missing: then the place it should be).

    Args:
        name: ``prompts``, ``examples``, ``notebooks`` or ``docs``.

    Returns:
        The first of the wheel's package data and the checkout's folder that exists, or the last of
        them (the checkout's, in a checkout) when neither does.

    Raises:
        ConfigError: vlab's files are not on disk (imported from a zip file).
    """
    candidates = _candidates(name, BUNDLED[name])
    return next((c for c in candidates if c.is_dir()), candidates[-1])


def copy_bundled(name: Bundled, dest: Path, *, force: bool = False, dry_run: bool = False) -> list[Path]:
    """Copy the bundled ``name`` folder's files into ``dest`` (created if missing).

    Files already in ``dest`` with the same content are left alone; a different file of the same name
    is the user's and is only replaced with ``force``.

    Args:
        name: ``examples``, ``notebooks`` or ``docs`` (or ``prompts``).
        dest: The folder to copy into.
        force: Replace files that differ from the bundled ones.
        dry_run: Only check that the copy can be made (raising as it would), copying nothing.

    Returns:
        The files in ``dest`` that are now the bundled ones (would be, with ``dry_run``), in order.

    Raises:
        ConfigError: The bundled folder is missing, ``dest`` is a file, ``dest`` holds different files
            of the same names (and ``force`` is not set), or a folder there has a bundled file's name.
    """
    source = bundled_dir(name)
    files = sorted(p for p in source.rglob("*") if p.is_file() and not _ignored(p.relative_to(source)))
    if not files:
        raise ConfigError(f"vlab's bundled {name} are missing (looked in {source}); reinstall vlab")
    targets = [(p, dest.joinpath(*p.relative_to(source).parts)) for p in files]
    refuse_a_file_in_the_way(dest, str(dest), f"the folder to copy the {name} into, ")
    clashes = [t for s, t in targets if t.exists() and not (t.is_file() and filecmp.cmp(s, t, shallow=False))]
    if clashes and not force:
        shown = ", ".join(str(t) for t in clashes[:5]) + (
            f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        )
        raise ConfigError(
            f"not copying vlab's {name} into {dest}: {shown} already "
            f"{'exists' if len(clashes) == 1 else 'exist'} with other content; "
            f"choose another folder, or pass --force to replace {'it' if len(clashes) == 1 else 'them'} with vlab's"
        )
    for _, t in targets:
        if t.is_dir():
            raise ConfigError(f"{t} is a folder; move it away to copy vlab's {name} into {dest}")
    if dry_run:
        return [t for _, t in targets]
    for s, t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        if not (t.is_file() and filecmp.cmp(s, t, shallow=False)):
            shutil.copyfile(s, t)
    return [t for _, t in targets]


def copy_notebooks(dest: Path, *, force: bool = False) -> list[Path]:
    """Copy the notebooks into ``dest/notebooks`` and the docs they link to into ``dest/docs``.

    The same layout as the repository's, so the notebooks' links (``../docs/…``) work in the copy too,
    and JupyterLab started on ``dest`` can open them.

    Returns:
        The copied files, the notebooks first.

    Raises:
        ConfigError: As :func:`copy_bundled` (checked for both folders before either is copied).
    """
    refuse_a_file_in_the_way(dest, str(dest), "the folder to copy the notebooks into, ")
    parts: tuple[Bundled, ...] = ("notebooks", "docs")
    for name in parts:  # refuse before copying anything
        copy_bundled(name, dest / name, force=force, dry_run=True)
    return [path for name in parts for path in copy_bundled(name, dest / name, force=force)]


def _ignored(relative: Path) -> bool:
    """Editor and Python droppings that a checkout's folder may hold."""
    return any(
        part in ("__pycache__", ".ipynb_checkpoints") or part.startswith(".") for part in relative.parts
    )
