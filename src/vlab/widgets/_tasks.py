"""Run panel work as tasks on the kernel's event loop and show every failure in an Output area."""

from __future__ import annotations

import asyncio
import html
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import ipywidgets as widgets

from vlab.errors import VlabError


def show_error(output: widgets.Output, exc: BaseException, *, what: str) -> None:
    """Show a failure in ``output``: the message for vlab's own errors, the traceback for anything else."""
    if isinstance(exc, VlabError):
        body = f"<b>{html.escape(what)} failed:</b> {html.escape(str(exc))}"
    else:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        body = (
            f"<b>{html.escape(what)} failed unexpectedly:</b> {html.escape(type(exc).__name__)}: {html.escape(str(exc))}"
            f"<details><summary>traceback</summary><pre>{html.escape(tb)}</pre></details>"
        )
    output.append_display_data(widgets.HTML(f'<div style="color:#b00020">{body}</div>'))


def start_task(
    make: Callable[[], Awaitable[Any]],
    output: widgets.Output,
    *,
    what: str,
    on_done: Callable[[], None] | None = None,
) -> asyncio.Task[Any]:
    """Schedule ``make()`` on the running loop; errors go to ``output``; ``on_done`` runs in every case."""
    loop = asyncio.get_event_loop()

    async def runner() -> Any:
        try:
            return await make()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            show_error(output, exc, what=what)
            return None
        finally:
            if on_done is not None:
                try:
                    on_done()
                except Exception as exc:  # a broken UI update must not hide the real outcome
                    show_error(output, exc, what=f"{what} (clean-up)")

    return loop.create_task(runner())


def guarded(output: widgets.Output, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a widget callback so an exception is shown in ``output`` instead of being lost."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                show_error(output, exc, what=what)
                return None

        return inner

    return wrap
