"""vlab: experiment with Azure AI Voice Live from Jupyter.

The public surface is small. Heavy or optional parts load on first use, as attributes
(``vlab.metrics.turn_latency`` after ``import vlab``) or imported: ``vlab.emulator`` (the offline Voice
Live server), ``vlab.widgets`` and ``vlab.plots``. Importing :mod:`vlab` itself loads none of them, nor
sounddevice, ipywidgets or matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab._lazy import lazy_attributes

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
    "find_runs",
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
    "find_runs": "vlab.runs",
}

if TYPE_CHECKING:
    from vlab.errors import VlabError
    from vlab.log import load_log
    from vlab.runs import find_runs
    from vlab.session import BargeIn, Session
    from vlab.settings import NOT_GIVEN, AzureSemanticVad, ServerVad, SessionSettings
    from vlab.sweep import load_sweep


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
