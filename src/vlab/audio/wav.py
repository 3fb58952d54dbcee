"""Load audio prompts (any format libsndfile reads) as the bytes a session sends.

The file is mixed down to mono, resampled with soxr to the session's input rate and encoded as PCM16
(or G.711 µ-law/A-law when the session uses them). Problems get an :class:`~vlab.errors.AudioFormatError`
that names the file, says what is wrong and how to fix it; suspicious but usable prompts (silent,
clipped, very long) get a :class:`~vlab.errors.VlabWarning`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vlab import protocol
from vlab.audio import g711
from vlab.audio.formats import AUDIO_FORMATS, AUDIO_KINDS
from vlab.audio.pcm import FloatArray, float_to_pcm16, resample, silence
from vlab.errors import AudioFormatError, check_count, check_number, warn_user

LONG_PROMPT_S = 300.0
"""Prompts longer than this (in seconds) get a warning: a Voice Live turn is rarely that long."""
MAX_PROMPT_S = 3600.0
"""Prompts longer than this (in seconds) are refused before they are read (they are decoded into memory)."""

_CONVERT_FIX = "Convert it to WAV, e.g. `ffmpeg -i INPUT -ac 1 -ar 24000 prompt.wav`."
_WAV_FAMILY = ("WAV", "WAVEX", "RF64")  # libsndfile's names for RIFF WAVE, WAVE_FORMAT_EXTENSIBLE, RF64


def read_audio(path: str | os.PathLike[str]) -> tuple[FloatArray, int]:
    """Read an audio file as mono float32 samples and its sample rate, validating it.

    Raises:
        AudioFormatError: Missing, empty, damaged, mislabelled or sample-less files.
    """
    p = Path(path)
    samples, rate, info = _decode(p, _first_bytes(p))
    _check_content(p, info, samples)
    mono = samples.mean(axis=1, dtype=np.float32)
    _warn_if_suspicious(mono, int(rate), str(p))
    return mono, int(rate)


def _first_bytes(p: Path) -> bytes:
    """The first 12 bytes of the file at ``p`` (to name a format libsndfile could not read).

    Raises:
        AudioFormatError: It is missing, a folder, empty or unreadable.
    """
    where = str(p)
    if not p.exists():
        raise AudioFormatError(
            "file not found", path=where, fix="Check the path (relative paths start at the current folder)."
        )
    if p.is_dir():
        raise AudioFormatError(
            "is a folder, not an audio file", path=where, fix="Pass one .wav/.flac/.ogg file."
        )
    if p.stat().st_size == 0:
        raise AudioFormatError(
            "the file is empty (0 bytes)", path=where, fix="Record or export the prompt again."
        )
    try:
        with open(p, "rb") as f:
            return f.read(12)
    except OSError as exc:
        raise AudioFormatError(
            f"cannot be read ({exc.strerror or exc})",
            path=where,
            fix="Check that the file is readable by you (permissions) and not locked by another program.",
        ) from None


def _decode(p: Path, head: bytes) -> tuple[np.ndarray, int, Any]:
    """The file's samples (frames × channels), rate and libsndfile's info on it.

    Raises:
        AudioFormatError: It is too long or too large to decode, or not audio libsndfile reads (``head``,
            its first bytes, names a damaged WAV or MP3 data).
    """
    import soundfile as sf

    where = str(p)
    try:
        info = sf.info(where)
        if info.samplerate > 0 and info.frames / info.samplerate > MAX_PROMPT_S:
            raise AudioFormatError(
                f"the prompt is {info.frames / info.samplerate / 60:.0f} minutes long; vlab reads prompts of "
                f"at most {MAX_PROMPT_S / 60:.0f} minutes (they are decoded into memory)",
                path=where,
                fix="Cut it into shorter prompts, e.g. `ffmpeg -i INPUT -ss 0 -t 300 -ac 1 -ar 24000 part1.wav`.",
            )
        samples, rate = sf.read(where, dtype="float32", always_2d=True)
    except MemoryError:
        raise AudioFormatError(
            "is too large to decode into memory", path=where, fix="Cut it into shorter prompts."
        ) from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as exc:
        if isinstance(exc, AudioFormatError):
            raise
        if head[:4] == b"RIFF":
            raise AudioFormatError(
                f"the WAV header is damaged or truncated ({exc})",
                path=where,
                fix="Export the prompt again from the recording tool.",
            ) from None
        if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
            raise AudioFormatError(
                "holds MP3 data that could not be decoded", path=where, fix=_CONVERT_FIX
            ) from None
        raise AudioFormatError(
            f"not a readable audio file ({exc})",
            path=where,
            fix=f"Use a {AUDIO_KINDS} file. " + _CONVERT_FIX,
        ) from None
    return samples, int(rate), info


def _check_content(p: Path, info: Any, samples: np.ndarray) -> None:
    """Raise :class:`AudioFormatError` for data unlike the file's name says, no samples or a NaN among them."""
    where = str(p)
    expected = AUDIO_FORMATS.get(p.suffix.lower())
    if (
        expected is not None
        and info.format != expected
        and not (expected == "OGG" and info.format in ("OGG", "VORBIS", "OPUS"))
        and not (expected == "WAV" and info.format in _WAV_FAMILY)
    ):
        raise AudioFormatError(
            f"is named {p.suffix} but holds {info.format} data ({info.format_info})",
            path=where,
            fix=f"Rename it to match its content or convert it. {_CONVERT_FIX}",
        )
    if samples.shape[0] == 0:
        raise AudioFormatError(
            "the file holds no audio samples (empty data chunk)",
            path=where,
            fix="Record or export the prompt again.",
        )
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad:
        raise AudioFormatError(
            f"holds {bad} samples that are not numbers (NaN or infinite; a damaged float WAV)",
            path=where,
            fix="Export the prompt again, or convert it to 16-bit PCM: `ffmpeg -i INPUT -c:a pcm_s16le prompt.wav`.",
        )


def is_silent(mono: FloatArray) -> bool:
    """Whether a recording is silence (its peak is below -60 dBFS), which :func:`read_audio` warns of."""
    return len(mono) == 0 or float(np.max(np.abs(mono))) < 10 ** (-60 / 20)


def _warn_if_suspicious(mono: FloatArray, rate: int, where: str) -> None:
    duration_s = len(mono) / rate
    if is_silent(mono):
        warn_user(f"{where}: the prompt is silent (peak below -60 dBFS); the VAD will detect no speech")
    elif np.mean(np.abs(mono) > 0.999) > 0.5:
        warn_user(f"{where}: most samples are clipped at full scale; is this really speech?")
    if duration_s > LONG_PROMPT_S:
        warn_user(
            f"{where}: the prompt is {duration_s / 60:.1f} minutes long; replaying it takes that long in real time"
        )


def encode_input(samples: FloatArray, audio_format: str = "pcm16") -> bytes:
    """Encode float samples for ``input_audio_format`` (``pcm16``, ``g711_ulaw``, ``g711_alaw``)."""
    if audio_format not in protocol.INPUT_FORMATS:
        raise AudioFormatError(
            f"unknown input audio format {audio_format!r}", fix="Use 'pcm16', 'g711_ulaw' or 'g711_alaw'."
        )
    return g711.from_pcm16(float_to_pcm16(samples), audio_format)


def load_wav(
    path: str | os.PathLike[str],
    sample_rate: int,
    *,
    audio_format: str = "pcm16",
    lead_ms: float = 0.0,
    trail_ms: float = 0.0,
) -> bytes:
    """Read a prompt file and return the bytes to append to a session.

    Args:
        path: A WAV/FLAC/OGG/MP3 file (:data:`vlab.audio.formats.AUDIO_SUFFIXES`; any rate, channels and
            sample format libsndfile reads).
        sample_rate: The session's input rate in Hz (8000 for G.711).
        audio_format: The session's ``input_audio_format``.
        lead_ms: Silence to add before the prompt, in ms.
        trail_ms: Silence to add after it (lets the server VAD end the turn), in ms.

    Returns:
        Mono audio at ``sample_rate`` in ``audio_format``.

    Raises:
        AudioFormatError: The file is missing, empty, damaged or not audio; the message names it and the fix.
        ConfigError: ``sample_rate`` is not an integer ≥ 1, or ``lead_ms`` or ``trail_ms`` is negative.
    """
    check_count("sample_rate", sample_rate)
    check_number("lead_ms", lead_ms)
    check_number("trail_ms", trail_ms)
    mono, rate = read_audio(path)
    samples = resample(mono, rate, sample_rate)
    pad = lambda ms: np.frombuffer(silence(ms, sample_rate), "<i2").astype(np.float32)  # noqa: E731
    if lead_ms or trail_ms:
        samples = np.concatenate([pad(lead_ms), samples, pad(trail_ms)])
    return encode_input(samples, audio_format)
