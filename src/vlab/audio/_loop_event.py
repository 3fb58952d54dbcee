"""An asyncio event that any thread may set: the waiter's loop is woken, not just flagged.

``asyncio.Event.set`` from a thread other than the waiter's loop marks the waiter done but does not
wake that loop, which then sleeps until something else wakes it. The browser's messages can arrive on
such a thread: ipykernel 7 runs JupyterLab's widget subshells in their own threads, and a session
panel's task can run on a subshell's loop.
"""

from __future__ import annotations

import asyncio


class LoopEvent:
    """Like :class:`asyncio.Event`; :meth:`set` is safe from any thread and wakes the waiter's loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = running_loop()
        """The loop that waits (the one it was made on until someone waits)."""

    def is_set(self) -> bool:
        """Whether the event is set."""
        return self._event.is_set()

    def clear(self) -> None:
        """Reset the event (on the waiter's loop)."""
        self._event.clear()

    def set(self) -> None:
        """Set the event: directly on the waiter's loop, through ``call_soon_threadsafe`` from elsewhere."""
        loop = self._loop
        if loop is None or loop.is_closed() or running_loop() is loop:
            self._event.set()
        else:
            loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> bool:
        """Wait until the event is set (on the running loop, which :meth:`set` then wakes)."""
        self._loop = asyncio.get_running_loop()
        return await self._event.wait()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
