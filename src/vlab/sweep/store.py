"""A sweep folder on disk: files swapped in whole, the partitioned datasets, and reading a table back."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlab.errors import ConfigError
from vlab.log import is_run_folder

DATASET_DIR = "dataset"
"""Folder of a sweep with its tables as partitioned Parquet datasets (``dataset/turns/setting_index=K/``)."""
VAD_CACHE_DIR = "vad_cache"
"""Folder of a sweep that keeps the emulator's Silero probabilities (:mod:`vlab.audio.vad_cache`)."""
CELLS_DIR = "cells"
"""Folder of a sweep with one run folder per cell (:func:`cell_folder`)."""
CELL_FILE = "cell.json"
"""A cell's status, setting, prompt and error, in its run folder: written last, so a cell without one did not finish."""
SWEEP_MANIFEST = "manifest.json"
"""A finished sweep's grid, prompts, versions, target and counts (written once its tables are)."""
LOCK_FILE = ".vlab-sweep.lock"
"""The lock of a sweep folder: the process sweeping into it holds an exclusive OS lock on this file
(:func:`sweep_lock`), whose text is that process's id. The OS releases the lock when the process ends,
however it ends, so a lock file a dead sweep left behind blocks nothing."""
_LOCK_TRIES = 3
"""Attempts at the lock before a sweep is refused (each one at once, no waiting): on Windows a reader
(:func:`swept_by`) takes it for a moment."""
_WINDOWS_LOCK_AT = 1 << 20
"""Where in :data:`LOCK_FILE` the byte Windows locks lies (past the process id, which stays readable)."""


def cell_folder(out_dir: Path, name: str) -> Path:
    """The run folder of the cell ``name`` of the sweep folder ``out_dir``."""
    return out_dir / CELLS_DIR / name


@contextlib.contextmanager
def sweep_lock(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of the sweep folder ``out`` (:data:`LOCK_FILE`; the folder is created) in the block.

    Two sweeps into one folder would each delete the other's half-written cells. The block is given the
    folder as an absolute path: the cells go there whatever the working folder of the process writing
    them (a Dask worker's is its own).

    Raises:
        ConfigError: Another sweep (of another process, or of this one) holds it.
    """
    out_dir = Path(os.path.abspath(out))
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not any(_try_lock(fd, exclusive=True) for _ in range(_LOCK_TRIES)):
            pid = _pid_in(fd)
            by = "another process" if pid != os.getpid() else "another sweep of this process"
            raise ConfigError(
                f"{out_dir} is being swept by {by}{f' (pid {pid})' if pid else ''}; wait for it to finish "
                "or give this sweep another --out"
            )
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield out_dir
        finally:
            os.ftruncate(fd, 0)
            _unlock(fd)
    finally:
        os.close(fd)


def swept_by(folder: Path) -> int | None:
    """The id of the process sweeping into ``folder`` now (0 if it cannot be read), or None if none is."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        pid = _pid_in(fd)
        if sys.platform != "win32" and not (pid and _alive(pid)):  # no lock taken: a sweep starting wins
            return None
        if _try_lock(fd, exclusive=False):
            _unlock(fd)
            return None
        return pid
    except ConfigError:  # a file system without locks: no sweep can hold one there
        return None
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (POSIX: signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _try_lock(fd: int, *, exclusive: bool) -> bool:
    """Take the lock of the open :data:`LOCK_FILE` ``fd`` without waiting; False if another holds it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            os.lseek(fd, _WINDOWS_LOCK_AT, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _HELD:
            return False
        raise ConfigError(  # a file system that has no locks (some network or FUSE mounts)
            f"cannot lock {LOCK_FILE} in its sweep folder ({exc.strerror or exc}); the folder's file system "
            "must support file locks: give the sweep a folder on a local disk or an NFS mount with locking"
        ) from None
    return True


_HELD = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES})
"""The errors of a lock another process holds (the others say the file system cannot lock)."""


def _unlock(fd: int) -> None:
    """Release the lock :func:`_try_lock` took."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_AT, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


def _pid_in(fd: int) -> int:
    """The process id the open :data:`LOCK_FILE` ``fd`` holds (0 if none can be read)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def parquet_atomic(frame: Any, path: Path) -> None:
    """Write a DataFrame as a Parquet file, swapped in whole."""
    arrow_atomic(arrow_table(frame), path)


def arrow_table(frame: Any) -> Any:
    """A DataFrame as an Arrow table (converted once for every file written from it)."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def arrow_atomic(table: Any, path: Path) -> None:
    """Write an Arrow table as a Parquet file, swapped in whole."""
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def dataset_atomic(table: Any, path: Path, settings: Sequence[str]) -> None:
    """Write an Arrow table as a Parquet dataset with one partition per setting (``setting_index=K``), swapped in whole."""
    import numpy as np
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if "setting" in table.column_names:
        index_of = {setting: index for index, setting in enumerate(settings)}
        codes = np.array([index_of.get(s, -1) for s in table.column("setting").to_pylist()])
        for index in range(len(settings)):
            rows = np.flatnonzero(codes == index)
            if len(rows):
                (tmp / f"setting_index={index}").mkdir()
                pq.write_table(table.take(rows), tmp / f"setting_index={index}" / "part-0.parquet")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def holds_a_sweep(folder: Path) -> bool:
    """Whether ``folder``'s ``manifest.json`` is a sweep's (it has a grid), not a prompt set's."""
    try:
        manifest = json.loads((folder / SWEEP_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "grid" in manifest


def _sweep_above(folder: Path) -> Path | None:
    """The sweep folder ``folder`` is inside, written as the user wrote ``folder`` (relative or not)."""
    above = next((p for p in folder.resolve().parents if holds_a_sweep(p)), None)
    return above if above is None or folder.is_absolute() else Path(os.path.relpath(above))


def not_a_sweep(folder: Path) -> str | None:
    """Why ``folder`` is not a finished sweep folder and what to give instead (None when it is one)."""
    name = repr(str(folder))
    if (folder / SWEEP_MANIFEST).is_file():
        return _not_a_sweep_manifest(folder / SWEEP_MANIFEST, name)
    if not folder.exists():
        return f"{name} does not exist; give the folder `vlab sweep --out` wrote (`vlab runs` lists them)"
    if folder.is_file():
        sweep = _sweep_above(folder)
        inside = f": give the sweep folder it is in, {str(sweep)!r}" if sweep else ""
        return f"{name} is a file, not a sweep folder{inside}"
    running = _running(folder)
    if running is not None:
        return running
    if any((folder / CELLS_DIR).glob(f"*/{CELL_FILE}")):
        return _stopped_text(folder, cell_metas(folder))
    if is_run_folder(folder):
        return f"{name} is the run folder of one session, not a sweep folder; `vlab.load_log` reads it"
    sweep = _sweep_above(folder)
    if sweep is not None:  # its cells folder, say
        return f"{name} is inside the sweep folder {str(sweep)!r}; give that one"
    return f"{name} is not a sweep folder (no manifest.json); run `vlab sweep` first"


def _not_a_sweep_manifest(manifest: Path, name: str) -> str | None:
    """Why the ``manifest.json`` of the folder ``name`` is not a sweep's (None when it is one)."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{name} holds a manifest.json that cannot be read as JSON: not a sweep folder vlab wrote"
    if isinstance(data, dict) and "grid" in data:
        return None
    if isinstance(data, dict) and "prompts" in data:
        return (
            f"{name} is a prompt folder (its manifest.json lists prompts), not a sweep folder; give the folder "
            "`vlab sweep --out` wrote (`vlab runs` lists them)"
        )
    return f"{name} holds a manifest.json that is not a sweep's; give the folder `vlab sweep --out` wrote"


def no_results_message(sweep_dir: Path) -> str:
    """Why a sweep folder has no results, and what to do: the first failed cell's error, or that it stopped."""
    cells = cell_metas(sweep_dir)
    failed = [cell for cell in cells if cell.get("status") == "error"]
    if not failed or any(cell.get("status") == "ok" for cell in cells):
        return _stopped(sweep_dir, cells)
    return (
        f"{sweep_dir} has no results: none of its {len(cells)} cells finished; {failed[0].get('cell')} failed "
        f"with: {failed[0].get('error')}. Fix that and run the same `vlab sweep` command again (each cell's "
        "error is in cells/<cell>/cell.json; finished cells are kept)"
    )


def _stopped(folder: Path, cells: Sequence[Mapping[str, Any]]) -> str:
    """What to say of a sweep that has not written its tables, ``cells`` the metas of its cells."""
    return _running(folder) or _stopped_text(folder, cells)


def _stopped_text(folder: Path, cells: Sequence[Mapping[str, Any]]) -> str:
    """What to say of a sweep that stopped (none runs into it) before writing its tables."""
    finished = sum(cell.get("status") == "ok" for cell in cells)
    return (
        f"{str(folder)!r} holds a sweep that stopped before writing its tables ({finished} cells finished): "
        f"run the same `vlab sweep` command again with --out {folder} to finish it (finished cells are kept)"
    )


def _running(folder: Path) -> str | None:
    """What to say of a sweep folder a sweep is running into now (None when none is)."""
    pid = swept_by(folder)
    if pid is None:
        return None
    return (
        f"{str(folder)!r} holds a sweep still running{f' (pid {pid})' if pid else ''}: its tables and "
        "manifest.json are written once its cells have run; wait for it to finish"
    )


def load_sweep(path: str | os.PathLike[str], table: str = "turns") -> Any:
    """One table of a sweep folder as a DataFrame, read from its partitioned dataset (every setting).

    Args:
        path: A folder written by :func:`run_sweep`.
        table: ``turns``, ``vad``, ``scores`` or ``session`` (``points`` has one row per setting).

    The same dataset reads as one table elsewhere, e.g. in DuckDB:
    ``SELECT * FROM read_parquet('runs/NAME/dataset/turns/*/*.parquet', hive_partitioning = true)``.

    Raises:
        ConfigError: Not a sweep folder, no such table, or none of its cells finished (the first error is named).
    """
    folder = Path(path)
    frame = _read_table(folder, table)
    if frame.empty:
        cells = cell_metas(folder)
        if cells and not any(cell.get("status") == "ok" for cell in cells):
            raise ConfigError(no_results_message(folder))
    return frame


def _read_table(folder: Path, table: str) -> Any:
    """The table ``table`` of the sweep folder ``folder``: its dataset, else its flat file."""
    import pandas as pd

    dataset = folder / DATASET_DIR / table
    if dataset.is_dir():
        parts = sorted(dataset.glob("setting_index=*/*.parquet"))
        if not parts:
            return pd.read_parquet(folder / f"{table}.parquet")  # no rows: the flat file keeps the columns
        return pd.concat(
            [pd.read_parquet(p).assign(setting_index=int(p.parent.name.split("=")[1])) for p in parts],
            ignore_index=True,
        )
    flat = folder / f"{table}.parquet"
    if flat.is_file():  # a sweep written before the datasets
        return pd.read_parquet(flat)
    problem = not_a_sweep(folder)
    if problem is not None:
        raise ConfigError(problem)
    raise ConfigError(
        f"{str(folder)!r} holds no {table!r} table; pass a folder written by `vlab sweep` and one of "
        "turns, vad, scores, session, points"
    )


def cell_metas(out_dir: Path) -> list[dict[str, Any]]:
    """What each cell's ``cell.json`` holds, in cell-name order."""
    markers = sorted((out_dir / CELLS_DIR).glob(f"*/{CELL_FILE}"))
    return [json.loads(marker.read_text(encoding="utf-8")) for marker in markers]
