"""G.711 µ-law and A-law codecs (ITU-T G.711), vectorised with numpy.

Voice Live accepts and produces ``g711_ulaw`` / ``g711_alaw`` at 8 kHz; these helpers convert between
those bytes and PCM16 (the stdlib ``audioop`` module is gone from Python 3.13).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_BIAS = 0x84
_CLIP = 32635


def _segment(magnitude: np.ndarray, base: int) -> np.ndarray:
    """Index of the highest set bit above ``base`` (the G.711 segment number, 0..7)."""
    seg = np.zeros(magnitude.shape, dtype=np.int32)
    for s in range(1, 8):
        seg[magnitude >= (base << s)] = s
    return seg


def ulaw_encode(pcm16: bytes) -> bytes:
    """Encode PCM16 little-endian samples as µ-law bytes."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _CLIP) + _BIAS
    seg = _segment(mag, 0x80)
    mantissa = (mag >> (seg + 3)) & 0x0F
    return (~(sign | (seg << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """Decode µ-law bytes to PCM16 little-endian samples."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    seg = (u >> 4) & 0x07
    mag = (((u & 0x0F) << 3) + _BIAS) << seg
    x = np.where(u & 0x80, _BIAS - mag, mag - _BIAS)
    return x.astype("<i2").tobytes()


def alaw_encode(pcm16: bytes) -> bytes:
    """Encode PCM16 little-endian samples as A-law bytes."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.int32) >> 3
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.where(x >= 0, x, -x - 1)
    mag = np.minimum(mag, 0x0FFF)
    seg = _segment(mag, 0x10)
    mantissa = np.where(seg == 0, mag >> 1, mag >> seg) & 0x0F
    return ((sign | (seg << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> bytes:
    """Decode A-law bytes to PCM16 little-endian samples."""
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    seg = (a >> 4) & 0x07
    mag = ((a & 0x0F) << 4) + 8
    mag = np.where(seg == 0, mag, (mag + 0x100) << np.maximum(seg - 1, 0))
    x = np.where(a & 0x80, mag, -mag)
    return x.astype("<i2").tobytes()


_CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "g711_ulaw": (ulaw_encode, ulaw_decode),
    "g711_alaw": (alaw_encode, alaw_decode),
}
"""Each G.711 format's encoder and decoder, by its Voice Live name."""


def from_pcm16(pcm16: bytes, audio_format: str) -> bytes:
    """PCM16 in a Voice Live audio format: G.711-encoded for ``g711_ulaw``/``g711_alaw``, else as it is."""
    codec = _CODECS.get(audio_format)
    return pcm16 if codec is None else codec[0](pcm16)


def to_pcm16(data: bytes, audio_format: str) -> bytes:
    """Audio bytes of a Voice Live format as PCM16: G.711 expanded, anything else as it is."""
    codec = _CODECS.get(audio_format)
    return data if codec is None else codec[1](data)


def as_carried(pcm16: bytes, audio_format: str) -> bytes:
    """PCM16 after a trip through a Voice Live format (G.711 quantises it; PCM16 is unchanged)."""
    return to_pcm16(from_pcm16(pcm16, audio_format), audio_format)
