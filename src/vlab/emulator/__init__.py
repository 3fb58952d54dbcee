"""An offline Voice Live service: the unmodified ``azure-ai-voicelive`` SDK connects to it.

Start it in-process with ``async with Emulator() as emu:`` (``emu.endpoint``, ``emu.api_key``), from a
shell with ``vlab emulator``, or let :class:`vlab.Session` start it when no Azure endpoint is set.
It runs a real neural VAD (Silero) and a real recognizer (PocketSphinx) on the audio you send, speaks
with eSpeak NG, follows the service's event order, times everything with a documented, seeded latency
model, and injects faults on demand (:class:`Fault`). It issues and checks its own Entra ID bearer tokens
(:class:`Identity`, ``emu.identity``). See ``docs/emulator.md`` and ``docs/azure.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlab._lazy import lazy_attributes

__all__ = [
    "PRESETS",
    "Emulator",
    "Fault",
    "Identity",
    "LatencyModel",
    "Script",
    "StageDelay",
    "Trace",
    "preset",
]

_LAZY = {
    "PRESETS": "vlab.emulator.latency",
    "Emulator": "vlab.emulator.server",
    "Fault": "vlab.emulator.faults",
    "Identity": "vlab.emulator.identity",
    "LatencyModel": "vlab.emulator.latency",
    "Script": "vlab.emulator.replies",
    "StageDelay": "vlab.emulator.latency",
    "Trace": "vlab.emulator.trace",
    "preset": "vlab.emulator.latency",
}
"""Where each public name lives: imported on first use, so a part of the emulator (the recognition
process, say) loads without the server, aiohttp and the rest."""

if TYPE_CHECKING:
    from vlab.emulator.faults import Fault
    from vlab.emulator.identity import Identity
    from vlab.emulator.latency import PRESETS, LatencyModel, StageDelay, preset
    from vlab.emulator.replies import Script
    from vlab.emulator.server import Emulator
    from vlab.emulator.trace import Trace

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
