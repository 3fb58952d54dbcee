"""An offline Voice Live service: the unmodified ``azure-ai-voicelive`` SDK connects to it.

Start it in-process with ``async with Emulator() as emu:`` (``emu.endpoint``, ``emu.api_key``), from a
shell with ``vlab emulator``, or let :class:`vlab.Session` start it when no Azure endpoint is set.
It runs a real neural VAD (Silero) on the audio you send, speaks with eSpeak NG, follows the
service's event order, and times everything with a documented, seeded latency model.
"""

from vlab.emulator.latency import PRESETS, LatencyModel, StageDelay, preset
from vlab.emulator.server import Emulator
from vlab.emulator.trace import Trace

__all__ = ["PRESETS", "Emulator", "LatencyModel", "StageDelay", "Trace", "preset"]
