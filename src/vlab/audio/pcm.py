"""PCM16 conversions, durations, silence and resampling.

Voice Live carries audio as little-endian 16-bit mono PCM; this module moves between that byte form and
float32 arrays in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vlab.errors import AudioFormatError

FloatArray = npt.NDArray[np.float32]


def check_pcm16(data: bytes | bytearray | memoryview) -> None:
    """Check that ``data`` holds whole 16-bit samples.

    Raises:
        AudioFormatError: The byte count is odd.
    """
    if len(data) % 2:
        raise AudioFormatError(
            f"PCM16 audio must have an even number of bytes, got {len(data)}",
            fix="Send whole 16-bit samples.",
        )


def pcm16_to_float(data: bytes | bytearray | memoryview) -> FloatArray:
    """Decode PCM16 little-endian bytes into float32 samples in [-1, 1).

    Raises:
        AudioFormatError: The byte count is odd.
    """
    check_pcm16(data)
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: npt.ArrayLike) -> bytes:
    """Encode float samples (clipped to [-1, 1]) as PCM16 little-endian bytes."""
    x = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 32767 / 32768)
    return (np.round(x * 32768.0)).astype("<i2").tobytes()


def silence(duration_ms: float, sample_rate: int) -> bytes:
    """PCM16 digital silence of the given length."""
    return bytes(2 * round(sample_rate * duration_ms / 1000))


def resample(samples: FloatArray, from_rate: int, to_rate: int) -> FloatArray:
    """Resample float32 mono audio with soxr (high quality)."""
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    import soxr

    return np.asarray(soxr.resample(samples, from_rate, to_rate), dtype=np.float32)
