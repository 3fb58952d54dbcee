"""Run a program's main coroutine so that Ctrl-C cancels it, on every Python (standard library only).

Python 3.11's ``asyncio.run`` turns a SIGINT into a cancellation of the main task, delivered where it
awaits, and raises ``KeyboardInterrupt`` once the task has unwound: a sweep then finishes its tables, and
the emulator it started closes its sessions. On 3.10, Python's own handler raised ``KeyboardInterrupt``
wherever the loop happened to be, in the middle of a step, which could leave connections and their tasks
half-finished. :func:`run_main` gives 3.10 the 3.11 behaviour.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, where Ctrl-C cancels ``main`` and then raises ``KeyboardInterrupt``."""
    if sys.version_info >= (3, 11):
        return asyncio.run(main)
    return asyncio.run(_cancelled_by_ctrl_c(main))


async def _cancelled_by_ctrl_c(main: Coroutine[Any, Any, T]) -> T:
    """Await ``main`` with SIGINT cancelling it, where Python's own handler would raise (as 3.11 decides)."""
    handled = threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if not handled:  # another thread, or SIGINT ignored or handled by the program: left as it is
        return await main
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        return await main
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)  # Python's own handler again
