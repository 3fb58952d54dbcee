"""vlab: experiment with Azure AI Voice Live from Jupyter.

The public surface is small. Heavy or optional parts are imported explicitly by the user:
``vlab.emulator`` (the offline Voice Live server), ``vlab.widgets`` and ``vlab.plots``.
Importing :mod:`vlab` itself loads none of them, nor sounddevice, ipywidgets or matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "NOT_GIVEN",
    "AzureSemanticVad",
    "BargeIn",
    "ServerVad",
    "Session",
    "SessionSettings",
    "VlabError",
    "__version__",
    "load_log",
    "load_sweep",
]

_LAZY = {
    "NOT_GIVEN": "vlab.settings",
    "AzureSemanticVad": "vlab.settings",
    "ServerVad": "vlab.settings",
    "SessionSettings": "vlab.settings",
    "BargeIn": "vlab.session",
    "Session": "vlab.session",
    "VlabError": "vlab.errors",
    "load_log": "vlab.log",
    "load_sweep": "vlab.sweep",
}

if TYPE_CHECKING:
    from vlab.errors import VlabError
    from vlab.log import load_log
    from vlab.session import BargeIn, Session
    from vlab.settings import NOT_GIVEN, AzureSemanticVad, ServerVad, SessionSettings
    from vlab.sweep import load_sweep


def __getattr__(name: str) -> Any:
    """Import public names on first use, so ``import vlab`` stays fast."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vlab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
