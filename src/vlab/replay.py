"""Headless replay of one WAV prompt as the user's turn, with the run written to a folder."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vlab import protocol
from vlab.audio.pcm import silence
from vlab.audio.wav import load_wav
from vlab.errors import VlabError
from vlab.metrics.turns import summarize_turns
from vlab.session import Session
from vlab.settings import SessionSettings


@dataclass(slots=True)
class ReplayResult:
    """What a replay produced."""

    run_dir: Path
    """The run folder."""
    events: int
    """Number of logged events (client and server)."""
    turns: list[dict[str, Any]] = field(default_factory=list)
    """One summary per response (see :func:`vlab.metrics.summarize_turns`)."""


NO_SPEECH_GRACE_S = 5.0
"""After all audio is sent, how long to wait for ``speech_started`` before calling the prompt silent."""


def default_run_dir(prefix: str = "replay") -> Path:
    """``runs/<prefix>-YYYYmmdd-HHMMSS`` under the current folder."""
    return Path("runs") / f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"


async def replay(
    prompt: str | os.PathLike[str],
    settings: SessionSettings | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    speed: float = 1.0,
    timeout_s: float = 120.0,
    **session_options: Any,
) -> ReplayResult:
    """Stream a prompt file as the user's speech and wait until every turn has been answered.

    Args:
        prompt: A WAV/FLAC/OGG file (resampled to the session's input rate).
        settings: Session settings (default: server VAD 0.5 / 300 / 500 ms).
        run_dir: Where to write the run (default: ``runs/replay-<time>``).
        speed: Pacing of the audio and of the embedded emulator: 1 = real time, ``math.inf`` = no waiting.
        timeout_s: Give up waiting for answers after this many seconds.
        **session_options: Passed to :class:`vlab.Session` (endpoint, api_key, barge_in...).

    Returns:
        The run folder, the event count and one summary per response.
    """
    settings = settings or SessionSettings()
    run_path = Path(run_dir) if run_dir is not None else default_run_dir()
    pcm = load_wav(prompt, settings.input_bytes_per_s // 2)
    td = settings.turn_detection
    tail_ms = getattr(td, "silence_duration_ms", 500) + 700 if td else 0
    emulator_options = {"speed": speed, **session_options.pop("emulator_options", {})}
    async with Session(
        settings, run_dir=run_path, emulator_options=emulator_options, **session_options
    ) as session:
        await session.stream_audio(pcm + silence(tail_ms, settings.input_bytes_per_s // 2), speed=speed)
        if td is None:
            await session.commit()
            await session.create_response()
        await wait_until_answered(session, timeout_s)
        records = list(session.records)
    return ReplayResult(run_path, len(records), summarize_turns(records))


async def wait_until_answered(session: Session, timeout_s: float) -> None:
    """Wait for a response.done after the last committed user turn, with no response still running."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout_s
    while True:
        server = [r.type for r in session.records if r.direction == "server"]
        last_commit = max((i for i, t in enumerate(server) if t == protocol.COMMITTED), default=-1)
        done = server.count(protocol.RESPONSE_DONE)
        if (
            last_commit >= 0
            and server.count(protocol.RESPONSE_CREATED) == done
            and protocol.RESPONSE_DONE in server[last_commit:]
        ):
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(
                f"the prompt was not answered within {timeout_s:.0f} s "
                f"({server.count(protocol.SPEECH_STOPPED)} turns detected, {done} responses finished)"
            )
        try:
            await session.wait_for(
                lambda e: e.type in (protocol.RESPONSE_DONE, protocol.COMMITTED),
                timeout_s=min(remaining, 1.0),
            )
        except TimeoutError:
            quiet_s = loop.time() - started  # a loaded server or a slow link may report speech late
            if (
                quiet_s >= NO_SPEECH_GRACE_S
                and session.settings.turn_detection is not None
                and protocol.SPEECH_STARTED
                not in [r.type for r in session.records if r.direction == "server"]
            ):
                raise VlabError(
                    "no speech was detected in the prompt (all of it has been sent); check that it holds "
                    "speech, or lower --threshold"
                ) from None
