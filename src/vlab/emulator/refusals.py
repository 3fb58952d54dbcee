"""Refusals on demand: make the emulator refuse a model, a voice, a turn-detection type or an input format.

The emulator accepts every model and voice, since it cannot know which ones a resource serves. To
rehearse what a resource that does not serve one says (and what ``vlab doctor`` prints then), give it
refusals; each ``session.update`` that asks for a refused value gets an ``error`` event and leaves the
session unchanged:

==========================  =======================================================================
``model:<name>``            every ``session.update`` of a connection for that model (``?model=``)
``voice:<name>``            a ``session.voice`` of that name (``alloy``, ``en-US-AvaNeural``, …)
``turn_detection:<type>``   a ``session.turn_detection.type`` (``semantic_vad``, …)
``input_audio_format:<f>``  a ``session.input_audio_format`` (``g711_alaw``, …)
==========================  =======================================================================

``Emulator(refuse=["voice:alloy", "model:gpt-nope"])``, or ``vlab emulator --refuse voice:alloy``.
Without refusals nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from vlab.emulator.wire import WireError
from vlab.errors import ConfigError

FIELDS: Final = ("model", "voice", "turn_detection", "input_audio_format")
"""What can be refused."""


@dataclass(frozen=True, slots=True)
class Refusals:
    """The values this emulator refuses (none by default)."""

    refused: frozenset[tuple[str, str]] = frozenset()
    """``(field, value)`` pairs, ``field`` one of :data:`FIELDS`."""

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Refusals:
        """Refusals from their text form, ``<field>:<value>`` each (see the module docstring).

        Raises:
            ConfigError: A field that cannot be refused, or no value.
        """
        refused = set()
        for spec in specs:
            name, _, value = str(spec).partition(":")
            if name not in FIELDS or not value.strip():
                raise ConfigError(
                    f"bad refusal {spec!r}; expected <field>:<value> with field one of {', '.join(FIELDS)}, "
                    "e.g. 'voice:alloy' or 'model:gpt-4o-realtime-preview'"
                )
            refused.add((name, value.strip()))
        return cls(frozenset(refused))

    def check(self, model: str, update: Mapping[str, Any], event_id: str | None) -> None:
        """Refuse a ``session.update`` body that asks for a refused value (on a connection for ``model``).

        Raises:
            WireError: The ``error`` event the client gets.
        """
        if not self.refused:
            return
        if ("model", model) in self.refused:
            raise WireError(
                "model_not_found",
                f"The model {model!r} is not served by this resource (refused by the emulator's refusals).",
                "model",
                event_id,
            )
        voice = update.get("voice")
        td = update.get("turn_detection")
        asked = {
            ("voice", "session.voice"): voice.get("name") if isinstance(voice, dict) else voice,
            ("turn_detection", "session.turn_detection.type"): td.get("type")
            if isinstance(td, dict)
            else None,
            ("input_audio_format", "session.input_audio_format"): update.get("input_audio_format"),
        }
        for (name, param), value in asked.items():
            if isinstance(value, str) and (name, value) in self.refused:
                raise WireError(
                    "invalid_value",
                    f"Invalid value for '{param}': {value!r} is not supported by this resource (refused by "
                    "the emulator's refusals).",
                    param,
                    event_id,
                )
