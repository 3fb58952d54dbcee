"""An offline Voice Live service: the unmodified ``azure-ai-voicelive`` SDK connects to it.

Start it in-process with ``async with Emulator() as emu:`` (``emu.endpoint``, ``emu.api_key``), from a
shell with ``vlab emulator``, or let :class:`vlab.Session` start it when no Azure endpoint is set.
It runs a real neural VAD (Silero) and a real recognizer (PocketSphinx) on the audio you send, speaks
with eSpeak NG, follows the service's event order, times everything with a documented, seeded latency
model, and injects faults on demand (:class:`Fault`). See ``docs/emulator.md``.
"""

from vlab.emulator.faults import Fault
from vlab.emulator.latency import PRESETS, LatencyModel, StageDelay, preset
from vlab.emulator.replies import Script
from vlab.emulator.server import Emulator
from vlab.emulator.trace import Trace

__all__ = ["PRESETS", "Emulator", "Fault", "LatencyModel", "Script", "StageDelay", "Trace", "preset"]
