"""The input audio a panel's sessions send: PCM16 at a rate, or telephone audio (G.711 at 8 kHz)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from vlab import protocol

INPUT_AUDIO: dict[str, tuple[str, int]] = {
    f"PCM16, {protocol.PCM16_SAMPLE_RATE_HZ // 1000} kHz": ("pcm16", protocol.PCM16_SAMPLE_RATE_HZ),
    "PCM16, 16 kHz": ("pcm16", 16000),
    f"Telephone: G.711 µ-law, {protocol.G711_SAMPLE_RATE_HZ // 1000} kHz": (
        "g711_ulaw",
        protocol.G711_SAMPLE_RATE_HZ,
    ),
    f"Telephone: G.711 A-law, {protocol.G711_SAMPLE_RATE_HZ // 1000} kHz": (
        "g711_alaw",
        protocol.G711_SAMPLE_RATE_HZ,
    ),
}
"""The choices, by label: ``input_audio_format`` and ``input_audio_sampling_rate``. The first is the
service's default."""


def input_audio_dropdown(style: dict[str, str], layout: widgets.Layout) -> widgets.Dropdown:
    """A dropdown of :data:`INPUT_AUDIO`, at the service's default."""
    return widgets.Dropdown(
        options=[(label, label) for label in INPUT_AUDIO],
        value=next(iter(INPUT_AUDIO)),
        description="Input audio",
        tooltip="What the sessions send: the prompts and microphones are resampled and encoded to it",
        style=style,
        layout=layout,
    )


def input_audio_fields(label: str) -> dict[str, Any]:
    """The :class:`~vlab.settings.SessionSettings` fields of a choice; none for the service's default."""
    if label == next(iter(INPUT_AUDIO)):
        return {}
    audio_format, rate = INPUT_AUDIO[label]
    return {"input_audio_format": audio_format, "input_audio_sampling_rate": rate}
