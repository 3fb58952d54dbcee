"""Notebook widgets: session panel, sweep panel, log explorer, label editor (ipywidgets), browser audio.

Import explicitly (``from vlab.widgets import SessionPanel``); ``import vlab`` does not load ipywidgets.
Panels never block the kernel: their work runs as tasks on the running event loop, and every error
shows in the panel's own output area.
"""

from vlab.widgets.browser_audio import BrowserAudio
from vlab.widgets.label_editor import LabelEditor
from vlab.widgets.log_explorer import LogExplorer
from vlab.widgets.session_panel import SessionPanel
from vlab.widgets.sweep_panel import SweepPanel

__all__ = ["BrowserAudio", "LabelEditor", "LogExplorer", "SessionPanel", "SweepPanel"]
