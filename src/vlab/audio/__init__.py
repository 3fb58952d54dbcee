"""Audio: PCM conversions, offline speech synthesis, voice activity detection.

Sound-device access lives in :mod:`vlab.audio.devices` and is imported only when asked for.
"""
