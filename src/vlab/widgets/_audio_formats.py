"""The audio a panel's sessions send and hear: PCM16 at a rate, or telephone audio (8 kHz G.711 both ways)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from vlab import protocol

_PHONE_KHZ = protocol.G711_SAMPLE_RATE_HZ // 1000
AUDIO_FORMATS: dict[str, dict[str, Any]] = {
    f"PCM16, {protocol.PCM16_SAMPLE_RATE_HZ // 1000} kHz": {},
    "PCM16, 16 kHz in, 24 kHz out": {"input_audio_sampling_rate": 16000},
    f"Telephone: G.711 µ-law, {_PHONE_KHZ} kHz both ways": {
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_ulaw",
    },
    f"Telephone: G.711 A-law, {_PHONE_KHZ} kHz both ways": {
        "input_audio_format": "g711_alaw",
        "output_audio_format": "g711_alaw",
    },
}
"""The choices, by label: the :class:`~vlab.settings.SessionSettings` fields each sets. The first is the
service's default and sets none."""


def audio_format_dropdown(style: dict[str, str], layout: widgets.Layout) -> widgets.Dropdown:
    """A dropdown of :data:`AUDIO_FORMATS`, at the service's default."""
    return widgets.Dropdown(
        options=list(AUDIO_FORMATS),
        value=next(iter(AUDIO_FORMATS)),
        description="Audio",
        tooltip="What the sessions send (the prompts and microphones are resampled and encoded to it) and "
        "what the assistant answers in",
        style=style,
        layout=layout,
    )


def audio_format_fields(label: str) -> dict[str, Any]:
    """The :class:`~vlab.settings.SessionSettings` fields of a choice of :data:`AUDIO_FORMATS`."""
    return dict(AUDIO_FORMATS[label])
