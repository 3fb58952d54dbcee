"""What every connection of one emulator shares: credentials, speed, latency model, models, faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vlab.audio.vad import SileroModel, SpeechModel
from vlab.clock import Clock, SystemClock
from vlab.emulator.asr import Recognizer, default_recognizer
from vlab.emulator.cassette import Cassette
from vlab.emulator.faults import Fault
from vlab.emulator.identity import Identity
from vlab.emulator.latency import LatencyModel, preset
from vlab.emulator.refusals import Refusals
from vlab.emulator.replies import Script
from vlab.emulator.trace import Trace


@dataclass(slots=True)
class EmulatorConfig:
    """Settings shared by every connection of one emulator."""

    api_key: str | None = field(repr=False)
    """Accepted ``api-key`` header value (None accepts any key; an empty or absent one is still refused)."""
    tokens: frozenset[str] = field(default=frozenset(), repr=False)
    """Accepted ``Authorization: Bearer`` tokens."""
    speed: float = 1.0
    """Time scale of every delay and of output pacing; ``math.inf`` = as fast as possible."""
    latency: LatencyModel = field(default_factory=lambda: preset("typical"))
    """Stage delays (see :mod:`vlab.emulator.latency`)."""
    trace: Trace | None = None
    """Ground-truth trace, if kept."""
    vad_model_factory: Callable[[], SpeechModel] = SileroModel
    """Makes the speech-probability model of each connection's server VAD."""
    recognizer_factory: Callable[[], Recognizer] = default_recognizer
    """Gives the speech recognizer (transcription, responder, semantic end-of-utterance cues)."""
    hear_audio: bool = True
    """Run the recognizer on user audio turns even without ``input_audio_transcription``, so replies
    follow what was said (as the service's model hears the audio); the words are never sent."""
    script: Script | None = None
    """Scripted dialogue rules tried before the built-in replies."""
    faults: tuple[Fault, ...] = ()
    """Faults armed on every new connection."""
    cassette: Cassette | None = None
    """A recorded session every connection replays instead of emulating (``vlab emulator --replay``)."""
    clock: Clock = field(default_factory=SystemClock)
    """Wall clock that maps each connection's simulated timeline onto real time (at ``speed``)."""
    identity: Identity | None = field(default=None, repr=False)
    """The emulator's Entra ID, whose bearer tokens are accepted (and refused as the service does)."""
    max_sessions: int | None = None
    """Concurrent sessions allowed; one more is refused with HTTP 429, as the resource's quota does."""
    mcp_redirects: dict[str, str] = field(default_factory=dict)
    """MCP server URLs the emulator calls at another address (``server_url`` → where to send its requests)."""
    refusals: Refusals = field(default_factory=Refusals)
    """Models, voices, turn-detection types and input formats ``session.update`` refuses (none by default)."""
