"""A session's log and its sinks: the observers of every record, the run folder among them.

- :class:`SessionLog` keeps the records (a columnar :class:`~vlab.log.EventLog`) and shows each one to
  the sinks, in order; a sink that fails is removed with a warning, never stopping the session.
- :class:`RunFolder` writes ``session.json`` when opened, appends each record to ``events.jsonl`` as it
  comes, and writes ``events.parquet`` (from the session's columnar log) when closed.
- :class:`AudioRecording` writes ``input.wav``, ``output.wav``, ``conversation.wav`` and
  ``output/<item_id>.wav`` (:class:`vlab.audio.recording.Recorder`): the session hands it the audio it
  sends and receives, and it takes truncations from the records.

Like every sink they only read: adding one changes nothing the session does.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import __version__, protocol
from vlab.audio.recording import CONVERSATION_WAV, INPUT_WAV, ITEMS_DIR, OUTPUT_WAV, Recorder
from vlab.clock import NS_PER_S, Clock, SystemClock, wall_datetime
from vlab.errors import warn_user
from vlab.log import JSONL_NAME, PARQUET_NAME, EventLog, EventRecord, JsonlWriter, Sink
from vlab.log.files import SESSION_NAME, write_atomic
from vlab.log.records import Direction, event_row, record_from_row

if TYPE_CHECKING:
    from vlab.endpoint import Target
    from vlab.settings import SessionSettings


class SessionLog:
    """The session's records, kept in order and shown to every sink as they are made.

    Args:
        clock: Wall-clock stamps of the records (their monotonic stamp is given); default: the system clock.
        sinks: Observers, called in order for every record.
    """

    def __init__(self, clock: Clock | None = None, sinks: Sequence[Sink] = ()) -> None:
        self.clock = clock or SystemClock()
        self.records = EventLog()
        """Every record so far."""
        self.sink_errors: list[BaseException] = []
        """Errors of the sinks that failed (and were removed)."""
        self.sinks: list[Sink] = list(sinks)
        """The sinks, in call order."""
        self._seq = 0
        self._closed = False

    def add_sink(self, sink: Sink, *, first: bool = False) -> None:
        """Show ``sink`` every record from now on (``first``: before the other sinks)."""
        if first:
            self.sinks.insert(0, sink)
        else:
            self.sinks.append(sink)

    def append(self, event: Mapping[str, Any], direction: Direction, t_ns: int, **extra: Any) -> None:
        """Log an event sent, received or noticed at ``t_ns`` (``extra``: see :func:`~vlab.log.records.event_row`)."""
        row = event_row(
            event, direction=direction, seq=self._seq, t_ns=t_ns, wall_ns=self.clock.wall_ns(), **extra
        )
        self._seq += 1
        self.records.append_row(row)
        if self.sinks:  # the record object is built only for sinks (the log keeps columns)
            record = record_from_row(row)
            for sink in tuple(self.sinks):
                try:
                    sink(record)
                except Exception as exc:
                    self._failed(sink, exc)

    def close(self) -> None:
        """Close every sink that has a ``close`` (once)."""
        if self._closed:
            return
        self._closed = True
        for sink in tuple(self.sinks):
            close = getattr(sink, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    self._failed(sink, exc)

    def _failed(self, sink: Sink, exc: BaseException) -> None:
        self.sink_errors.append(exc)
        if sink in self.sinks:
            self.sinks.remove(sink)
        warn_user(f"event sink {sink!r} failed and was removed: {exc!r}")


def session_metadata(
    *, target: Target, settings: SessionSettings, barge_in: str, sdk_version: str, started_wall_ns: int
) -> dict[str, Any]:
    """The content of ``session.json``: versions, start time, target (never a key), barge-in, settings.

    Args:
        target: The resolved target.
        settings: The session settings sent first.
        barge_in: The barge-in policy's value.
        sdk_version: The SDK's version.
        started_wall_ns: Wall-clock start in ns since the Unix epoch.
    """
    return {
        "vlab_version": __version__,
        "sdk_version": sdk_version,
        "python": platform.python_version(),
        "started_at": wall_datetime(started_wall_ns).isoformat(),
        "target": {
            "kind": target.kind,
            "auth": target.auth,
            "description": target.describe(),
            "model": target.model,
            "api_version": target.api_version,
        },
        "barge_in": barge_in,
        "settings": settings.to_dict(),
    }


class RunFolder:
    """A run folder's event files, as a sink: ``session.json``, ``events.jsonl``, ``events.parquet``.

    Args:
        path: The folder (created when opened).
        log: The session's log; ``events.parquet`` is written from it on close.
    """

    def __init__(self, path: str | os.PathLike[str], log: EventLog) -> None:
        self.path = Path(path)
        self._log = log
        self._writer: JsonlWriter | None = None

    def open(self, metadata: Mapping[str, Any]) -> None:
        """Create the folder, write ``session.json`` and start ``events.jsonl``."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path / SESSION_NAME, json.dumps(metadata, indent=2) + "\n")
        self._writer = JsonlWriter(self.path / JSONL_NAME)

    def __call__(self, record: EventRecord) -> None:
        """Append a record to ``events.jsonl``."""
        if self._writer is not None:
            self._writer(record)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Add the session's ``summary`` (counts, how it ended) to ``session.json``."""
        path = self.path / SESSION_NAME
        metadata = json.loads(path.read_text(encoding="utf-8"))
        metadata["summary"] = dict(summary)
        write_atomic(path, json.dumps(metadata, indent=2) + "\n")  # a kill meanwhile leaves the one before

    def close(self) -> None:
        """Finish ``events.jsonl`` and write ``events.parquet`` with every record of the log."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        from vlab.log import write_parquet

        write_parquet(self._log.frame(), self.path / PARQUET_NAME)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"


class AudioRecording:
    """A run folder's WAV files, as a sink (truncations) fed with the audio the session sends and receives.

    ``input.wav`` is flushed at least once a second of the session's clock, so a crash loses little.

    Args:
        path: The run folder (must exist).
        settings: The session settings (audio formats and rates).
    """

    def __init__(self, path: str | os.PathLike[str], settings: SessionSettings) -> None:
        self._recorder = Recorder(
            path,
            input_rate=settings.input_sample_rate,
            input_format=settings.input_audio_format,
            output_rate=settings.output_sample_rate,
            output_format=settings.output_audio_format,
        )
        self._flushed_ns: int | None = None

    def input_audio(self, data: bytes, t_ns: int) -> None:
        """Record appended input audio (in the session's input format) sent at ``t_ns``."""
        self._recorder.input(data, t_ns)
        if self._flushed_ns is None:
            self._flushed_ns = t_ns
        elif t_ns - self._flushed_ns > NS_PER_S:
            self._recorder.flush()
            self._flushed_ns = t_ns

    def output_audio(self, item_id: str, data: bytes, t_ns: int) -> None:
        """Record an assistant audio delta received at ``t_ns``."""
        self._recorder.output(item_id, data, t_ns)

    def __call__(self, record: EventRecord) -> None:
        """Take truncations (``conversation.item.truncated``) from the records."""
        if record.type == protocol.ITEM_TRUNCATED and record.item_id is not None:
            self._recorder.truncate(record.item_id, record.audio_end_ms or 0.0)

    def close(self) -> None:
        """Write the WAV files."""
        self._recorder.close()

    def __repr__(self) -> str:
        return f"AudioRecording({str(self._recorder.run_dir)!r})"


def open_run_folder(
    log: SessionLog,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    settings: SessionSettings,
    *,
    record_audio: bool = True,
    replace: bool = False,
) -> tuple[RunFolder, AudioRecording | None]:
    """Open a run folder and put its sinks first in ``log`` (a record is on disk before others see it).

    Args:
        log: The session's log.
        path: The run folder.
        metadata: The content of ``session.json`` (:func:`session_metadata`).
        settings: The session settings (audio formats of the recordings).
        record_audio: Also record the WAV files.
        replace: The folder holds a run this one replaces: its log and recordings are removed first.

    Returns:
        The folder's event files (a sink) and the audio recording to feed, if any.
    """
    if replace:
        _remove_run(Path(path))
    folder = RunFolder(path, log.records)
    folder.open(metadata)
    recording = AudioRecording(path, settings) if record_audio else None
    if recording is not None:
        log.add_sink(recording, first=True)
    log.add_sink(folder, first=True)
    return folder, recording


def _remove_run(path: Path) -> None:
    """Remove the run ``path`` holds: its log, ``session.json`` and recordings (a new run is not added to them)."""
    for name in (JSONL_NAME, PARQUET_NAME, SESSION_NAME, INPUT_WAV, OUTPUT_WAV, CONVERSATION_WAV):
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / ITEMS_DIR, ignore_errors=True)
