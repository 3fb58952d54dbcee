"""Sweep cells on a ``dask.distributed`` cluster (``[run] executor = "dask"``; ``pip install vlab[dask]``).

:func:`run_on_dask` starts a ``LocalCluster`` of ``[run] workers`` processes (``concurrency`` threads
each; the sweep runs one cell per thread, on its own event loop), or connects to the scheduler at
``[run] cluster``, and submits one task per cell. The sweep's task (``vlab.sweep._cell_job``) writes the
cell's folder and ``cell.json`` on its worker, into the sweep folder, which every worker must see (a
shared file system for a remote cluster). Cells stay independent: the scheduler runs the cells of a
worker that dies again on another one (a half-written cell folder starts afresh), and a sweep run again
skips the finished cells. ``[run] max_sessions`` is a cluster-wide ``distributed.Semaphore``: no more
sessions than that are open at once, however many workers run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from vlab.errors import ConfigError

__all__ = ["NEEDS_DASK", "require_dask", "run_on_dask"]

NEEDS_DASK = "the dask executor needs dask.distributed: pip install 'vlab[dask]'"
"""Why a sweep on the dask executor cannot run here: dask.distributed does not import."""
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}
"""Dask settings of the ``LocalCluster`` a sweep starts: no statistical profiler on the workers. It samples
every thread's stack every 10 ms and keeps the last 1 000 s of profiles, which grew a worker by about
0.17 MB per cell (+68 MB over 400 cells; flat without it). A cluster given as ``[run] cluster`` keeps
its own settings."""
A = TypeVar("A")
R = TypeVar("R")


def require_dask() -> None:
    """Check that dask.distributed imports, before a sweep writes anything.

    Raises:
        ConfigError: It does not (:data:`NEEDS_DASK`).
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(NEEDS_DASK) from None


def _leased(job: Callable[[A], R], semaphore: str | None, max_leases: int, arg: A) -> R:
    """Run ``job(arg)`` on a worker, holding a lease of the cluster-wide semaphore if there is one."""
    lease: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if semaphore is not None:
        from distributed import Semaphore

        lease = Semaphore(max_leases=max_leases, name=semaphore)
    with lease:
        return job(arg)


async def _close_local(cluster: Any) -> None:
    """Close the ``LocalCluster`` a sweep started.

    A nanny that is restarting a worker which just died (a cell that kills its worker) can be asked to
    close before its new process has started; distributed then trips its own assertion "can only join a
    started process". There is nothing left to stop in that worker, and the sweep's results are already
    recorded, so that one error is not the sweep's failure.
    """
    try:
        await cluster.close()
    except AssertionError as exc:
        if "started process" not in str(exc):
            raise


async def run_on_dask(
    job: Callable[[A], R],
    args: Sequence[tuple[str, A]],
    done: Callable[[A, R | BaseException], None],
    *,
    workers: int = 2,
    threads_per_worker: int = 1,
    cluster: str | None = None,
    max_sessions: int | None = None,
) -> None:
    """Run ``job(arg)`` for each named ``arg`` as one dask task; ``done(arg, result or error)`` on this loop.

    Args:
        job: A picklable function (module level); it runs in a worker thread.
        args: ``(name, arg)`` per task; names are unique.
        done: Called as each task finishes, with its result or the error the scheduler gave up with
            (e.g. its workers kept dying).
        workers: Worker processes of the ``LocalCluster`` (without ``cluster``).
        threads_per_worker: Tasks at once on each of them.
        cluster: A scheduler address to use instead of a ``LocalCluster``.
        max_sessions: Tasks running ``job`` at once across the cluster (a ``distributed.Semaphore``).

    Raises:
        ConfigError: dask.distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster, Semaphore, as_completed
    except ImportError:
        raise ConfigError(NEEDS_DASK) from None

    async with contextlib.AsyncExitStack() as stack:
        if cluster is not None:
            try:
                client = await stack.enter_async_context(Client(cluster, asynchronous=True, timeout="20s"))
            except OSError as exc:
                raise ConfigError(
                    f"cannot reach the dask scheduler at {cluster!r} ({exc}); start one with "
                    "`dask scheduler` or leave [run] cluster out to start a LocalCluster"
                ) from None
        else:
            import dask

            with dask.config.set(LOCAL_CLUSTER_CONFIG):  # the nannies hand it to their workers
                local = await LocalCluster(
                    n_workers=workers,
                    threads_per_worker=threads_per_worker,
                    processes=True,
                    asynchronous=True,
                    dashboard_address=":0",
                )
            stack.push_async_callback(_close_local, local)
            client = await stack.enter_async_context(Client(local, asynchronous=True))
        if importlib.util.find_spec("bokeh") is not None:
            print(f"sweep: dask dashboard {client.dashboard_link}", file=sys.stderr, flush=True)
        else:
            print("sweep: no dask dashboard (it needs bokeh: pip install 'vlab[dask]')", file=sys.stderr)
        run_id = uuid.uuid4().hex[:8]
        semaphore = None
        if max_sessions is not None:
            semaphore = f"vlab-sessions-{run_id}"
            await Semaphore(max_leases=max_sessions, name=semaphore)
        futures = {
            client.submit(
                _leased, job, semaphore, max_sessions or 1, arg, key=f"vlab-{run_id}-{name}", pure=False
            ): arg
            for name, arg in args
        }
        async for future in as_completed(list(futures)):
            try:
                result: R | BaseException = await future
            except Exception as exc:  # the scheduler gave up on it
                result = exc
            done(futures.pop(future), result)
            future.release()  # the worker holding the result may drop it now, not at the end of the sweep
