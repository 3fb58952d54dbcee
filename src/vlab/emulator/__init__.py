"""An offline Voice Live service: the unmodified ``azure-ai-voicelive`` SDK connects to it.

Start it in-process with ``async with Emulator() as emu:`` (``emu.endpoint``, ``emu.api_key``), from a
shell with ``vlab emulator``, or let :class:`vlab.Session` start it when no Azure endpoint is set.
It runs a real neural VAD (Silero) and a real recognizer (PocketSphinx) on the audio you send, speaks
with eSpeak NG, follows the service's event order, times everything with a documented, seeded latency
model, and injects faults on demand (:class:`Fault`). It issues and checks its own Entra ID bearer tokens
(:class:`Identity`, ``emu.identity``). See ``docs/emulator.md`` and ``docs/azure.md``.
"""

from vlab.emulator.faults import Fault
from vlab.emulator.identity import Identity
from vlab.emulator.latency import PRESETS, LatencyModel, StageDelay, preset
from vlab.emulator.replies import Script
from vlab.emulator.server import Emulator
from vlab.emulator.trace import Trace

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
