"""PocketSphinx transcripts kept on disk by content, shared by every vlab process of the user.

The emulator reads a user turn's words with PocketSphinx (:mod:`vlab.emulator.asr`), in about a quarter
to a half of the turn's length. The same audio comes back again and again: in each setting and repeat
of a sweep, in each run of a notebook, on each Dask worker. :func:`vlab.emulator.asr.recognize`
remembers transcripts for one process; this store keeps them for the next processes too.

One file, :data:`STORE_FILE` in :func:`store_folder`, of lines ``key answer``: the key is a hex digest,
the answer the recognition process's JSON (:func:`vlab.emulator.asr.transcript_json`). Each line is
appended with one ``write`` (``O_APPEND``), so processes share the file safely; a process reads the file
when it first needs it, then what the others appended before each decode it would otherwise run. A
line cut short by a crash is skipped. Past :data:`MAX_STORE_BYTES` the file is started over.

The store is a cache: a folder that cannot be read or written turns it off for the process, with one
warning, and recognition goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "MAX_STORE_BYTES", "STORE_FILE", "TranscriptStore", "store_folder"]

log = logging.getLogger("vlab.emulator")

CACHE_DIR_ENV = "VLAB_CACHE_DIR"
"""Environment variable naming vlab's cache folder (default: the user's cache folder for vlab, e.g.
``~/.cache/vlab``); ``off`` turns the store off."""
STORE_FILE = "pocketsphinx-transcripts.jsonl"
"""The store's file in the cache folder."""
MAX_STORE_BYTES = 64 << 20
"""Size past which the file is started over (a short turn's line is about 300 bytes)."""
_OFF = frozenset({"off", "0", "false", "no"})


def store_folder() -> Path | None:
    """The cache folder that :envvar:`VLAB_CACHE_DIR` names (or the user's), or None when it is ``off``."""
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vlab", appauthor=False))


class TranscriptStore:
    """The transcripts of one cache folder (use it from one thread: the ASR worker thread)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STORE_FILE
        self._known: dict[str, bytes] = {}
        self._read_to = 0  # where the next read of lines other processes appended starts
        self._failed = False

    def get(self, key: str) -> bytes | None:
        """The answer stored under ``key`` by this or any other process, or None."""
        answer = self._known.get(key)
        if answer is None and not self._failed:
            self._guard(self._read_new)
            answer = self._known.get(key)
        return answer

    def put(self, key: str, answer: bytes) -> None:
        """Store ``answer`` (one line of JSON) under ``key``, for this process and the others."""
        self._known[key] = answer
        if not self._failed:
            self._guard(lambda: self._append(key.encode() + b" " + answer + b"\n"))

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def _read_new(self) -> None:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._read_to:  # another process started it over
                    self._read_to = 0
                if size > MAX_STORE_BYTES:
                    os.replace(self.path, self.path.with_name(STORE_FILE + ".old"))
                    self._read_to = 0
                    return
                f.seek(self._read_to)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written (or cut short) waits
        for line in data[:end].splitlines():
            key, _, answer = line.partition(b" ")
            if answer.startswith(b"{") and answer.endswith(b"}"):
                self._known[key.decode("ascii", "replace")] = answer
        self._read_to += end

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:
            self._failed = True
            log.warning(
                "vlab cannot use its transcript cache %s (%s); the emulator decodes every turn. "
                "Set %s to a writable folder, or to 'off'.",
                self.path,
                exc,
                CACHE_DIR_ENV,
            )
