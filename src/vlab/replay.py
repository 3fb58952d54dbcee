"""Headless replay of one WAV prompt as the user's turn, with the run written to a folder."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlab.audio.pcm import silence
from vlab.audio.wav import load_wav
from vlab.errors import NotAnswered, check_keywords, settings_refused
from vlab.feed import NoSpeechDetected, feed_prompt, speech_never_ended, trailing_silence_ms
from vlab.log import new_run_dir
from vlab.metrics.latency import sorted_times_ms, turn_latency
from vlab.prompts import LabelledPrompt, prompt_file, write_run_labels
from vlab.session import Session
from vlab.settings import SessionSettings, require_settings


@dataclass(slots=True)
class ReplayResult:
    """What a replay produced."""

    run_dir: Path
    """The run folder."""
    events: int
    """Number of logged events (client and server)."""
    turns: list[dict[str, Any]] = field(default_factory=list)
    """One row of :func:`vlab.metrics.turn_latency` per response (voice-to-voice and its stages)."""
    protocol_warnings: int = 0
    """Server events that broke the protocol (logged as ``vlab.protocol_warning`` records)."""
    target: str = ""
    """Where the session connected (:meth:`vlab.endpoint.Target.describe`; never the key)."""
    speech_never_ended: bool = False
    """The server VAD heard speech start and never end (:func:`vlab.feed.speech_never_ended`): no turn ended."""


async def replay(
    prompt: str | os.PathLike[str] | LabelledPrompt,
    settings: SessionSettings | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    speed: float = 1.0,
    timeout_s: float = 120.0,
    end_of_turn_ms: Sequence[float] | None = None,
    **session_options: Any,
) -> ReplayResult:
    """Stream a prompt file as the user's speech and wait until every turn has been answered.

    Args:
        prompt: A WAV/FLAC/OGG/MP3 file (resampled to the session's input rate), a labelled prompt
            (:func:`vlab.prompts.load_prompt_set`): its file, timed from its ``end_of_turn_ms``, or a
            bundled prompt's id (``"pause_600"``), as ``vlab replay`` takes.
        settings: Session settings (default: server VAD 0.5 / 300 / 500 ms).
        run_dir: Where to write the run (default: ``runs/replay-<time>``).
        speed: Pacing of the audio and of the embedded emulator: 1 = real time, ``math.inf`` = no waiting.
        timeout_s: Give up waiting for answers after this many seconds.
        end_of_turn_ms: The prompt's labelled ends of speech (:attr:`vlab.prompts.LabelledPrompt.end_of_turn_ms`;
            a labelled ``prompt``'s by default): each turn's wait then runs from where the user stopped,
            not from an estimate (the server's ``audio_end_ms`` minus the silence timer, which misses an
            end-of-utterance wait). The run folder keeps them (``labels.json``), so the log explorer
            times the run alike.
        **session_options: Passed to :class:`vlab.Session` (endpoint, api_key, barge_in, overwrite...).

    Returns:
        The run folder, the event count and one summary per response.

    Raises:
        NotAnswered: Not answered within ``timeout_s``; the message says where the events so far are.
        NoSpeechDetected: The VAD found no speech in the prompt; the message says where the events are.
        RunFolderTaken: ``run_dir`` holds another run's events (pass ``overwrite=True`` to replace them).
        ConfigError: ``settings`` is not a :class:`vlab.SessionSettings`, or an option :class:`vlab.Session`
            does not take (the message names the one meant).
        AudioFormatError: ``prompt`` is neither a file nor a bundled prompt's id.
        SettingsRefused: The server refused the settings (an ``error`` answering ``session.update``); the
            run folder keeps what happened.
    """
    if settings is not None:
        require_settings(settings, "replay")
    check_keywords("replay", Session, session_options)
    settings = settings or SessionSettings()
    prompt = _file_or_bundled(prompt)
    labels: dict[str, Any] = {}
    if isinstance(prompt, LabelledPrompt):
        labels = prompt.labels()
        end_of_turn_ms = prompt.end_of_turn_ms if end_of_turn_ms is None else end_of_turn_ms
        prompt = prompt.file
    end_of_turn_ms = sorted_times_ms("end_of_turn_ms", end_of_turn_ms) or None  # checked before it runs
    if end_of_turn_ms:
        labels["end_of_turn_ms"] = end_of_turn_ms
    pcm = load_wav(prompt, settings.input_sample_rate)
    run_path = Path(run_dir) if run_dir is not None else new_run_dir("replay")
    td = settings.turn_detection
    tail_ms = trailing_silence_ms(td)
    emulator_options = {"speed": speed, **session_options.pop("emulator_options", {})}
    async with Session(
        settings, run_dir=run_path, emulator_options=emulator_options, **session_options
    ) as session:
        if end_of_turn_ms is not None:
            write_run_labels(run_path, labels)
        audio = pcm + silence(tail_ms, settings.input_sample_rate)
        try:
            await feed_prompt(session, audio, speed=speed, timeout_s=timeout_s, commit=td is None)
        except NotAnswered as exc:
            raise NotAnswered(f"{exc}; the events so far are in {run_path}") from None
        except NoSpeechDetected as exc:
            raise NoSpeechDetected(fix=exc.fix, events=run_path) from None
        frame = session.frame()
        unended = speech_never_ended(session)
        target = session.target
        if target.kind == "emulator":  # its port meant nothing once it stopped
            target = dataclasses.replace(target, endpoint=None)
    if session.settings_refused is not None:
        raise settings_refused(session.settings_refused, f"the replay's events ({run_path})")
    from vlab.corpus.labeller import sent_speech_ends_ms

    ends = await asyncio.to_thread(sent_speech_ends_ms, pcm, settings) if end_of_turn_ms is None else None
    latency = turn_latency(frame, end_of_turn_ms=end_of_turn_ms, speech_ends_ms=ends)
    turns = [{str(k): v for k, v in row.items()} for row in latency.to_dict("records")]
    return ReplayResult(run_path, len(frame), turns, session.protocol_warnings, target.describe(), unended)


def _file_or_bundled(
    prompt: str | os.PathLike[str] | LabelledPrompt,
) -> str | os.PathLike[str] | LabelledPrompt:
    """``prompt`` itself, unless it is no file but a bundled prompt's id: then that prompt (or its file).

    Raises:
        AudioFormatError: Neither a file nor a bundled prompt's id (the message lists the ids).
    """
    if isinstance(prompt, LabelledPrompt) or Path(prompt).exists():
        return prompt
    file, bundled = prompt_file(str(prompt))
    return bundled or file
