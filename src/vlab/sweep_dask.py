"""Sweep cells on a ``dask.distributed`` cluster (``[run] executor = "dask"``; ``pip install vlab[dask]``).

:func:`run_cells_on_dask` starts a ``LocalCluster`` of ``[run] workers`` processes (``concurrency``
threads each, one cell per thread on its own event loop), or connects to the scheduler at ``[run]
cluster``, and submits one task per cell. A task runs :func:`vlab.sweep.run_cell` on its worker: the
cell's folder and ``cell.json`` are written there, into the sweep folder, which every worker must see
(a shared file system for a remote cluster). Cells stay independent: the scheduler runs the cells of a
worker that dies again on another one (a half-written cell folder starts afresh), and a sweep run again
skips the finished cells. ``[run] max_sessions`` is a cluster-wide ``distributed.Semaphore``: no more
sessions than that are open at once, however many workers run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab.errors import ConfigError

if TYPE_CHECKING:
    from vlab.settings import SessionSettings
    from vlab.sweep import CellResult, SweepConfig

__all__ = ["run_cells_on_dask"]

_INSTALL = "the dask executor needs dask.distributed: pip install 'vlab[dask]'"


def _cell_task(
    cfg: SweepConfig,
    out_dir: str,
    cell: tuple[str, int, SessionSettings, Any, int],
    options: Mapping[str, Any],
    semaphore: str | None,
) -> CellResult:
    """One cell, on a worker (its own event loop in the worker's thread)."""
    from vlab.audio.silero_worker import SileroWorker
    from vlab.sweep import VAD_CACHE_DIR, run_cell

    out = Path(out_dir)
    SileroWorker.shared().use_cache(out / VAD_CACHE_DIR)  # this worker's emulators share the sweep's cache
    lease: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if semaphore is not None:
        from distributed import Semaphore

        lease = Semaphore(max_leases=cfg.max_sessions or 1, name=semaphore)
    with lease:
        return asyncio.run(run_cell(cfg, out, *cell, options))


async def run_cells_on_dask(
    cfg: SweepConfig,
    out_dir: Path,
    cells: Sequence[tuple[str, int, SessionSettings, Any, int]],
    options: Mapping[str, Any],
    done: Callable[[CellResult], None],
) -> None:
    """Run ``cells`` on a dask cluster; ``done`` gets each result on this loop as it finishes.

    Raises:
        ConfigError: dask.distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster, Semaphore, as_completed
    except ImportError:
        raise ConfigError(_INSTALL) from None
    from vlab.sweep import CellResult

    async with contextlib.AsyncExitStack() as stack:
        if cfg.cluster is not None:
            try:
                client = await stack.enter_async_context(
                    Client(cfg.cluster, asynchronous=True, timeout="20s")
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot reach the dask scheduler at {cfg.cluster!r} ({exc}); start one with "
                    "`dask scheduler` or leave [run] cluster out to start a LocalCluster"
                ) from None
        else:
            cluster = await stack.enter_async_context(
                LocalCluster(
                    n_workers=cfg.workers,
                    threads_per_worker=cfg.concurrency,
                    processes=True,
                    asynchronous=True,
                    dashboard_address=":0",
                )
            )
            client = await stack.enter_async_context(Client(cluster, asynchronous=True))
        print(f"sweep: dask dashboard {client.dashboard_link}", file=sys.stderr, flush=True)
        run_id = uuid.uuid4().hex[:8]
        name = None
        if cfg.max_sessions is not None:
            name = f"vlab-sessions-{run_id}"
            await Semaphore(max_leases=cfg.max_sessions, name=name)
        futures = {
            client.submit(
                _cell_task,
                cfg,
                str(out_dir),
                cell,
                dict(options),
                name,
                key=f"vlab-{run_id}-{cell[0]}",
                pure=False,
            ): cell
            for cell in cells
        }
        async for future in as_completed(list(futures)):
            cell = futures[future]
            try:
                result = await future
            except Exception as exc:  # the scheduler gave up on it (e.g. its workers kept dying)
                result = _record_failure(out_dir, cell, exc)
            done(
                result if isinstance(result, CellResult) else CellResult(cell[0], "error", error=repr(result))
            )


def _record_failure(out_dir: Path, cell: tuple[str, int, Any, Any, int], exc: BaseException) -> CellResult:
    """A cell whose task never finished gets a ``cell.json`` with the error, like any failed cell."""
    from vlab.sweep import CellResult, _write_atomic

    name = cell[0]
    cell_dir = out_dir / "cells" / name
    cell_dir.mkdir(parents=True, exist_ok=True)
    error = f"{type(exc).__name__}: {exc}"
    meta = {"cell": name, "prompt": getattr(cell[3], "id", None), "repeat": cell[4], "status": "error"}
    meta.update(error=error, failed_at=time.time())
    _write_atomic(cell_dir / "cell.json", json.dumps(meta, indent=2) + "\n")
    return CellResult(name, "error", error=error)
