"""Session settings: typed, validated values that become the ``session`` object of ``session.update``.

Everything here is plain data (frozen dataclasses) with a ``to_wire()`` method that returns the exact
JSON the service expects (``docs/protocol.md#session-fields``). Nothing here imports the Azure SDK.
The parts: ``_base`` (the NOT_GIVEN sentinel and the checks), ``turn_detection``, ``parts``
(transcription, tools, voices) and ``session_settings``.

Two "empty" values are kept apart on purpose:

* :data:`NOT_GIVEN` means *leave the service default*: the key is left out of the wire object.
* ``None`` is sent as JSON ``null``: for ``turn_detection`` it switches server turn detection off
  (manual turns), for ``transcription`` it switches input transcription off.

Example::

    settings = SessionSettings(
        voice="en-US-AvaNeural",
        turn_detection=AzureSemanticVad(variant="en", silence_duration_ms=300),
    )
    settings.to_wire()["turn_detection"]["type"]  # 'azure_semantic_vad_en'
    sweep = [settings.replace(turn_detection=ServerVad(threshold=t)) for t in (0.3, 0.5, 0.7)]
"""

from __future__ import annotations

from vlab.settings._base import (
    MAX_DURATION_MS,
    NOT_GIVEN,
    OPENAI_VOICES,
    VOICE_EXAMPLES,
    EouModel,
    EouThresholdLevel,
    InputAudioFormat,
    NotGiven,
    SemanticVariant,
)
from vlab.settings.parts import FunctionTool, McpServer, Transcription, voice_to_wire
from vlab.settings.session_settings import SessionSettings, require_settings
from vlab.settings.turn_detection import (
    AzureSemanticVad,
    EndOfUtterance,
    ServerVad,
    TurnDetection,
    turn_detection_from_wire,
)

__all__ = [
    "require_settings",
    "MAX_DURATION_MS",
    "NOT_GIVEN",
    "OPENAI_VOICES",
    "VOICE_EXAMPLES",
    "AzureSemanticVad",
    "EndOfUtterance",
    "EouModel",
    "EouThresholdLevel",
    "FunctionTool",
    "McpServer",
    "InputAudioFormat",
    "NotGiven",
    "SemanticVariant",
    "ServerVad",
    "SessionSettings",
    "Transcription",
    "TurnDetection",
    "turn_detection_from_wire",
    "voice_to_wire",
]
