"""What a widget's Output area shows, for assertions on its messages."""

from __future__ import annotations

from typing import Any


def shown_html(output: Any) -> str:
    """The HTML of the widgets an Output area shows (its text/plain is a truncated repr of them)."""
    from ipywidgets.widgets.widget import _instances

    views = [o["data"].get("application/vnd.jupyter.widget-view+json") for o in output.outputs]
    return " ".join(_instances[v["model_id"]].value for v in views if v)
