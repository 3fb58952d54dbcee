"""``vlab._run.run_main``: Ctrl-C cancels the main coroutine where it awaits, then raises KeyboardInterrupt."""

from __future__ import annotations

import asyncio
import signal

import pytest

from vlab._run import run_main


def test_ctrl_c_cancels_the_main_coroutine_where_it_awaits_then_raises_keyboard_interrupt():
    """On every Python: on 3.10, Python's own handler would raise KeyboardInterrupt at the signal, mid-step."""
    seen: list[str] = []

    async def main() -> None:
        signal.raise_signal(signal.SIGINT)  # as Ctrl-C would
        seen.append("went on")
        try:
            await asyncio.Event().wait()  # ended by the cancellation, nothing else
        except asyncio.CancelledError:
            seen.append("cancelled where it awaited")
            raise

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a CI job's children may ignore it
    try:
        with pytest.raises(KeyboardInterrupt):
            run_main(main())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == ["went on", "cancelled where it awaited"]


def test_the_main_coroutine_s_result_and_its_own_errors_come_back_as_asyncio_run_gives_them():
    async def answer() -> int:
        return 42

    async def fails() -> None:
        raise ValueError("its own")

    assert run_main(answer()) == 42
    with pytest.raises(ValueError, match="its own"):
        run_main(fails())
