"""Ground-truth trace: what the emulator really sent, when, and what its VAD really decided.

Each entry is a flat dict. ``kind`` is ``send`` (one per server event: ``t_ns`` from
``time.perf_counter_ns`` taken just before the frame is written, ``conn``, ``type``, ``event_id``),
``vad`` (one per VAD decision: ``event``, ``audio_ms``, ``speech_ms``), or ``latency`` (the stage
delays drawn for a response, model ms). Because the client and the emulator share one monotonic clock
on one machine, vlab's own latency measurements can be checked against it.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, TextIO


class Trace:
    """Collects trace entries in memory and, optionally, appends them to a JSONL file.

    Args:
        path: JSONL file to append to (flushed on every entry), or None for memory only.
        keep: Keep entries in :attr:`entries` (disable for long soaks).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, keep: bool = True) -> None:
        self.entries: list[dict[str, Any]] = []
        self._keep = keep
        self._file: TextIO | None = open(path, "a", encoding="utf-8", newline="\n") if path else None
        self._lock = threading.Lock()

    def add(self, **entry: Any) -> None:
        """Record one entry."""
        if self._keep:
            self.entries.append(entry)
        if self._file is not None:
            line = json.dumps(entry, separators=(",", ":"), default=str)
            with self._lock:
                self._file.write(line + "\n")
                self._file.flush()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Entries of one kind, in order."""
        return [e for e in self.entries if e.get("kind") == kind]

    def close(self) -> None:
        """Close the file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None
