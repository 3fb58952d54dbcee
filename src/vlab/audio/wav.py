"""Load audio prompts (any format libsndfile reads) as mono PCM16 at the rate a session needs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vlab.audio.pcm import float_to_pcm16, resample
from vlab.errors import AudioFormatError


def load_wav(path: str | os.PathLike[str], sample_rate: int) -> bytes:
    """Read an audio file, mix to mono, resample with soxr and return PCM16 bytes.

    Args:
        path: A WAV/FLAC/OGG file.
        sample_rate: The rate to deliver, in Hz (the session's input rate).

    Returns:
        Little-endian 16-bit mono PCM.

    Raises:
        AudioFormatError: The file is missing, empty or not audio; the message names the file and the fix.
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise AudioFormatError(
            "file not found", path=str(p), fix="Check the path (relative paths start at the current folder)."
        )
    if p.stat().st_size == 0:
        raise AudioFormatError("the file is empty", path=str(p), fix="Record or export the prompt again.")
    try:
        samples, rate = sf.read(p, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFormatError(
            f"not a readable audio file ({exc})",
            path=str(p),
            fix="Use a WAV, FLAC or OGG file (convert MP3 with e.g. `ffmpeg -i in.mp3 out.wav`).",
        ) from None
    if samples.shape[0] == 0:
        raise AudioFormatError(
            "the file holds no audio samples", path=str(p), fix="Record or export the prompt again."
        )
    mono = samples.mean(axis=1).astype(np.float32)
    return float_to_pcm16(resample(mono, int(rate), sample_rate))
