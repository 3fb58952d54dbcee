"""PCM16 conversions, durations, silence and resampling.

Voice Live carries audio as little-endian 16-bit mono PCM; this module moves between that byte form and
float32 arrays in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vlab import protocol
from vlab.errors import AudioFormatError, check_count, check_number

FloatArray = npt.NDArray[np.float32]
InputAudio = bytes | bytearray | memoryview | npt.NDArray[Any]
"""Audio a session sends: bytes in its input format, or a NumPy array of samples (:func:`as_input_bytes`)."""


def as_input_bytes(audio: InputAudio, audio_format: str, sample_rate: int) -> bytes:
    """``audio`` as bytes of a session's input format (``pcm16``, ``g711_ulaw``, ``g711_alaw``).

    Bytes are taken as they are. A one-channel NumPy array is encoded: for ``pcm16``, int16 samples, or
    float samples in [-1, 1] (as soundfile reads a file); for G.711, its uint8 codes.

    Raises:
        AudioFormatError: Something else, several channels, or not a whole number of samples.
    """
    send = (
        f"Send mono 16-bit little-endian PCM at {sample_rate} Hz, as bytes or a NumPy array (vlab.audio.wav."
        "load_wav reads a file as that)."
        if audio_format == "pcm16"
        else f"Send {audio_format} bytes at {sample_rate} Hz, or a NumPy array of their uint8 codes "
        f"(vlab.audio.wav.load_wav(path, {sample_rate}, audio_format={audio_format!r}) reads a file as that; "
        f"vlab.audio.g711.from_pcm16 encodes PCM16)."
    )
    if isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
    elif isinstance(audio, np.ndarray):
        samples = audio.reshape(-1) if audio.ndim == 2 and 1 in audio.shape else audio
        if samples.ndim != 1:
            raise AudioFormatError(
                f"input audio must have one channel, got an array of shape {audio.shape}", fix=send
            )
        if audio_format == "pcm16" and samples.dtype.kind == "f":
            data = float_to_pcm16(samples)
        elif audio_format == "pcm16" and samples.dtype == np.int16:
            data = samples.astype("<i2").tobytes()
        elif audio_format != "pcm16" and samples.dtype == np.uint8:
            data = samples.tobytes()
        else:
            raise AudioFormatError(
                f"{audio_format} input audio cannot be an array of {samples.dtype}", fix=send
            )
    else:
        raise AudioFormatError(
            f"input audio must be bytes or a NumPy array of samples, got {type(audio).__name__}", fix=send
        )
    if len(data) % protocol.bytes_per_sample(audio_format):
        raise AudioFormatError(
            f"{len(data)} bytes of {audio_format} input audio is not a whole number of 16-bit samples",
            fix=send,
        )
    return data


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
    """PCM16 digital silence of the given length.

    Raises:
        ConfigError: ``duration_ms`` is negative, or ``sample_rate`` is not an integer ≥ 1.
    """
    check_number("duration_ms", duration_ms)
    check_count("sample_rate", sample_rate)
    return bytes(2 * round(sample_rate * duration_ms / 1000))


def resample(samples: FloatArray, from_rate: int, to_rate: int) -> FloatArray:
    """Resample float32 mono audio with soxr (high quality).

    Raises:
        ConfigError: A rate is not an integer ≥ 1.
    """
    check_count("from_rate", from_rate)
    check_count("to_rate", to_rate)
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    import soxr

    return np.asarray(soxr.resample(samples, from_rate, to_rate), dtype=np.float32)
