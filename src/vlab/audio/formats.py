"""The audio files vlab reads (prompts, recordings, uploads): their suffixes and what each holds.

Kept apart from :mod:`vlab.audio.wav` (which decodes them) so that the CLI's help and the widgets can name
them without importing numpy.
"""

from __future__ import annotations

__all__ = ["AUDIO_FORMATS", "AUDIO_KINDS", "AUDIO_SUFFIXES"]

AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".mp3": "MP3"}
"""Suffix (lower case) → the libsndfile format a file so named must hold."""
AUDIO_SUFFIXES = tuple(AUDIO_FORMATS)
"""Suffixes (lower case) of the audio files vlab reads."""
AUDIO_KINDS = "/".join(dict.fromkeys(AUDIO_FORMATS.values()))
"""The formats for a message: ``WAV/FLAC/OGG/MP3``."""
