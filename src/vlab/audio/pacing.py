"""Send audio in fixed-size chunks at real time, N× real time, or as fast as possible, without drift.

Each chunk has a deadline computed from its position in the stream (``start + offset / speed``), not
from the previous send, so scheduling jitter never accumulates.
"""

from __future__ import annotations

import asyncio
import math
import numbers
from collections.abc import AsyncIterator

from vlab.clock import Clock, SystemClock
from vlab.errors import ConfigError

MAX_SPEED = "max"
"""The speed that does not wait (``math.inf``), as configs, the CLI and widgets spell it."""


def parse_speed(value: float | str, what: str = "speed") -> float:
    """A replay or emulator speed: a number > 0 (1 = real time) or :data:`MAX_SPEED` (``math.inf``).

    Numbers may come as text (the command line). Raises a :class:`ConfigError` naming ``what`` otherwise.
    """
    if value in (MAX_SPEED, "inf") or (isinstance(value, float) and value == math.inf):
        return math.inf
    try:
        speed = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        speed = math.nan
    if not 0 < speed < math.inf:
        raise ConfigError(
            f"{what} must be a number > 0 (1 = real time, 2 = twice as fast) or {MAX_SPEED!r} (as fast as "
            f"possible), got {value!r}"
        )
    return speed


def speed_text(speed: float) -> float | str:
    """``speed`` as a config or command line gives it: :data:`MAX_SPEED` for ``math.inf``."""
    return MAX_SPEED if math.isinf(speed) else speed


def speed_label(speed: float) -> str:
    """``speed`` for a message: :data:`MAX_SPEED`, or the factor without a needless ``.0`` (``1``, ``2.5``)."""
    shown = speed_text(speed)
    return shown if isinstance(shown, str) else f"{shown:g}"


async def paced_chunks(
    pcm16: bytes,
    *,
    sample_rate: int,
    chunk_ms: float = 20.0,
    speed: float = 1.0,
    clock: Clock | None = None,
    bytes_per_sample: int = 2,
) -> AsyncIterator[tuple[bytes, float]]:
    """Yield ``(chunk, offset_ms)`` pairs, each when it is due.

    Args:
        pcm16: Mono PCM16 audio (or G.711, one byte a sample: ``bytes_per_sample=1``).
        sample_rate: Its rate in Hz.
        chunk_ms: Chunk length in ms (20 ms by default; the last chunk may be shorter).
        speed: 1.0 = real time, N = N× faster, ``math.inf`` = no waiting.
        clock: Time source.
        bytes_per_sample: 2 for PCM16, 1 for G.711.

    Yields:
        The chunk and its start on the audio timeline in ms.

    Raises:
        ConfigError: ``speed`` or ``chunk_ms`` is not > 0.
    """
    speed = parse_speed(speed)
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, numbers.Real) or not chunk_ms > 0:
        raise ConfigError(f"chunk_ms must be a number of ms > 0 (20 is usual), got {chunk_ms!r}")
    clock = clock or SystemClock()
    chunk_bytes = max(bytes_per_sample, int(round(sample_rate * chunk_ms / 1000.0)) * bytes_per_sample)
    start_ns = clock.monotonic_ns()
    for offset in range(0, len(pcm16), chunk_bytes):
        offset_ms = offset / (bytes_per_sample * sample_rate) * 1000.0
        if not math.isinf(speed):
            await clock.sleep_until_ns(start_ns + int(offset_ms / speed * 1e6))
        else:
            await asyncio.sleep(0)
        yield pcm16[offset : offset + chunk_bytes], offset_ms
