"""Turn a run folder into a cassette the emulator can replay (``vlab emulator --replay RUN``).

The run's log gives the server events in order, each at its offset on the input-audio timeline: its
``sim_ms`` for a run on the emulator's simulated timeline, else the input audio the client had sent when
it arrived (a run against Azure, on the client's clock; ``docs/timeline.md``). ``input.wav`` gives the
audio the client sent, which a replaying client must match; ``output/<item_id>.wav`` gives the reply
audio each ``response.audio.delta`` carried (the log keeps only its size), encoded again in the session's
output format (both recordings hold PCM16, G.711 expanded). Runs need their recordings
(``record_audio=True``, the default). vlab's timeline markers are not client events of the cassette;
the answers to them are flagged (see :mod:`vlab.emulator.cassette`).
"""

from __future__ import annotations

import base64
import math
import os
import wave
from pathlib import Path
from typing import Any

from vlab import protocol
from vlab.audio import g711
from vlab.audio.recording import INPUT_WAV, ITEMS_DIR, item_wav_path
from vlab.emulator.cassette import Cassette, CassetteEvent, timeline_marker
from vlab.errors import ConfigError
from vlab.log import is_run_folder, load_log
from vlab.log.files import RUN_FOLDER_HINT
from vlab.metrics.events import InputTimeline, as_float, in_log_order, on_simulated_timeline, payload_of

__all__ = ["load_cassette"]


def _read_wav(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes()), w.getframerate()


def load_cassette(run_dir: str | os.PathLike[str]) -> Cassette:
    """Read a run folder (a session or replay, or one sweep cell) as a :class:`Cassette`.

    Raises:
        ConfigError: Not a run folder, it has no ``input.wav`` (record with ``record_audio=True``), or its
            session never connected.
    """
    run = Path(run_dir)
    if not is_run_folder(run):
        raise ConfigError(f"{str(run)!r} is not a run folder: {RUN_FOLDER_HINT}")
    if not (run / INPUT_WAV).is_file():
        raise ConfigError(
            f"{str(run)!r} has no input.wav: a cassette needs the audio the client sent "
            "(record the run with record_audio=True, the default)"
        )
    input_audio, input_rate = _read_wav(run / INPUT_WAV)
    events = load_log(run)
    events = in_log_order(events)
    simulated = on_simulated_timeline(events)
    timeline = InputTimeline.from_events(events)
    notes: list[str] = []
    reply_audio: dict[str, tuple[bytes, int]] = {}  # item → its audio (PCM16) and how much was replayed
    formats = {"input_audio_format": "pcm16", "output_audio_format": "pcm16"}  # as the session last said

    def delta_audio(item_id: str, n_bytes: int) -> str:
        """The next ``n_bytes`` of an item's recorded audio, in the session's output format, as base64."""
        if item_id not in reply_audio:
            path = item_wav_path(run, item_id)
            reply_audio[item_id] = (_read_wav(path)[0] if path.is_file() else b"", 0)
            if not path.is_file():
                notes.append(f"no {ITEMS_DIR}/{path.name}: its audio replays as silence")
        audio, used = reply_audio[item_id]
        output_format = formats["output_audio_format"]
        n_pcm16 = n_bytes // protocol.bytes_per_sample(output_format) * 2  # G.711: a byte a sample
        chunk = audio[used : used + n_pcm16]
        reply_audio[item_id] = (audio, used + n_pcm16)
        return base64.b64encode(g711.from_pcm16(chunk + bytes(n_pcm16 - len(chunk)), output_format)).decode()

    recorded: list[CassetteEvent] = []
    client: list[dict[str, Any]] = []
    updates: list[str | None] = []  # each client session.update in order: its timeline marker, if it is one
    answered = 0  # server session.updated so far (the k-th answers the k-th session.update)
    for r in events.itertuples(index=False):
        if r.direction == "client":
            if r.type != protocol.CLIENT_APPEND:
                body = payload_of(r.payload)
                marker = timeline_marker({"type": r.type, **body})
                if r.type == protocol.CLIENT_SESSION_UPDATE:
                    updates.append(marker)
                if marker is None:
                    client.append(
                        {"type": r.type, **({"session": body["session"]} if "session" in body else {})}
                    )
            continue
        if r.direction != "server":
            continue
        event = payload_of(r.payload)
        if not event:
            continue
        at_ms = as_float(r.sim_ms) if simulated else timeline.position_at(as_float(r.t_ns))
        at_ms = at_ms if math.isfinite(at_ms) else 0.0
        marker = None
        if r.type == protocol.SESSION_UPDATED:
            marker = updates[answered] if answered < len(updates) else None
            answered += 1
            session = event.get("session") or {}
            formats.update({key: session[key] for key in formats if isinstance(session.get(key), str)})
        if r.type == protocol.AUDIO_DELTA:
            size = as_float(r.audio_bytes)
            event["delta"] = delta_audio(str(r.item_id), int(size) if math.isfinite(size) else 0)
        recorded.append(CassetteEvent(at_ms, len(client), event, marker))
    if not any(e.event.get("type") == protocol.SESSION_CREATED for e in recorded):
        raise ConfigError(
            f"{str(run)!r} holds no {protocol.SESSION_CREATED}: its session never connected, so there is "
            "nothing to replay. Give the run folder of a session that did"
        )
    return Cassette(
        events=tuple(recorded),
        client_events=tuple(client),
        input_audio=input_audio,
        input_rate=input_rate,
        input_format=formats["input_audio_format"],
        source=str(run),
        notes=tuple(notes),
    )
