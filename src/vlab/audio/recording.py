"""Run-folder recordings: what was sent (``input.wav``) and what the assistant said (``output.wav``).

``input.wav`` is every appended byte, in order: its timeline *is* the input-audio timeline that
``speech_started.audio_start_ms`` / ``speech_stopped.audio_end_ms`` refer to. It is written as the
session goes, so a crash keeps what was sent.

``output.wav`` places each assistant item on that same timeline, at the input position that had been
reached when its first audio arrived (extrapolated in real time after the last append), with
truncation applied, so the two files line up when played side by side (``conversation.wav`` holds
both as a stereo pair: user left, assistant right, at the higher of the two rates, so telephone input
does not bring the assistant down to 8 kHz). Each item is also kept whole in
``output/<item_id>.wav`` (truncated where the user barged in).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlab.audio import g711


@dataclass(slots=True)
class _Item:
    first_ns: int
    chunks: list[bytes] = field(default_factory=list)
    truncate_ms: float | None = None


_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


INPUT_WAV = "input.wav"
"""What was sent, in a run folder: the input-audio timeline."""
OUTPUT_WAV = "output.wav"
"""The assistant's audio in a run folder, placed on the input-audio timeline."""
CONVERSATION_WAV = "conversation.wav"
"""Both as a stereo pair (user left, assistant right)."""
ITEMS_DIR = "output"
"""The folder of a run folder that holds each assistant item whole (:func:`item_wav_path`)."""


def item_wav_path(run_dir: str | os.PathLike[str], item_id: str) -> Path:
    """Where a run folder keeps the assistant item ``item_id`` whole: ``output/`` + :func:`item_wav_name`."""
    return Path(run_dir) / ITEMS_DIR / item_wav_name(item_id)


def item_wav_name(item_id: str) -> str:
    """The file name of an item's WAV: ``<item_id>.wav`` for a plain id (the service's ids are), else a safe one.

    An id with other characters (a path separator, ``..``) or over 100 characters, as a broken or hostile
    server may send, becomes its plain characters plus a hash of the whole id: never a path outside
    ``output/``, never two ids in one file.
    """
    if _PLAIN_ID.fullmatch(item_id):
        return f"{item_id}.wav"
    digest = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', item_id)[:64]}-{digest}.wav"


class Recorder:
    """Collects input and output audio of one session and writes the WAV files.

    Args:
        run_dir: The run folder (must exist).
        input_rate: Input sample rate in Hz.
        input_format: ``input_audio_format`` of the session (G.711 is stored decoded, as PCM16).
        output_rate: Output sample rate in Hz.
        output_format: ``output_audio_format`` of the session.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        input_rate: int,
        input_format: str,
        output_rate: int,
        output_format: str,
    ) -> None:
        import soundfile as sf

        self.run_dir = Path(run_dir)
        self.input_rate = input_rate
        self.input_format = input_format
        self.output_rate = output_rate
        self.output_format = output_format
        self._input = sf.SoundFile(
            self.run_dir / INPUT_WAV, "w", samplerate=input_rate, channels=1, subtype="PCM_16"
        )
        self._sent_ns: list[int] = []
        self._sent_end_ms: list[float] = []
        self._input_ms = 0.0
        self._items: dict[str, _Item] = {}
        self._item_file: tuple[str, Any] | None = None  # the item being received, written as it comes

    def input(self, data: bytes, t_ns: int) -> None:
        """Record an appended chunk (in the session's input format) sent at ``t_ns``."""
        pcm = g711.to_pcm16(data, self.input_format)
        self._input.buffer_write(pcm, dtype="int16")
        self._input_ms += len(pcm) / (2 * self.input_rate) * 1000.0
        self._sent_ns.append(t_ns)
        self._sent_end_ms.append(self._input_ms)

    def flush(self) -> None:
        """Push ``input.wav`` and the assistant item being received to disk (headers included)."""
        self._input.flush()
        if self._item_file is not None:
            self._item_file[1].flush()

    def output(self, item_id: str, data: bytes, t_ns: int) -> None:
        """Record an assistant audio delta received at ``t_ns`` (written to ``output/<item>.wav`` at once)."""
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _Item(t_ns)
        pcm = g711.to_pcm16(data, self.output_format)
        if self._item_file is None or self._item_file[0] != item_id:
            self._open_item_file(item_id, item.chunks)
        item.chunks.append(pcm)
        self._item_file[1].buffer_write(pcm, dtype="int16")  # type: ignore[index]

    def _open_item_file(self, item_id: str, before: list[bytes]) -> None:
        """Open the WAV of the item ``item_id`` (the one open before is closed), with its audio so far."""
        import soundfile as sf

        self._close_item_file()
        path = item_wav_path(self.run_dir, item_id)
        path.parent.mkdir(exist_ok=True)
        file = sf.SoundFile(path, "w", samplerate=self.output_rate, channels=1, subtype="PCM_16")
        if (
            before
        ):  # an item heard again after another: written anew (a WAV opened to add to keeps its old header)
            file.buffer_write(b"".join(before), dtype="int16")
        self._item_file = (item_id, file)

    def _close_item_file(self) -> None:
        if self._item_file is not None:
            self._item_file[1].close()
            self._item_file = None

    def truncate(self, item_id: str, audio_end_ms: float) -> None:
        """The item was cut at ``audio_end_ms`` (what the user heard)."""
        if item_id in self._items:
            self._items[item_id].truncate_ms = audio_end_ms

    def position_ms(self, t_ns: int) -> float:
        """Input-audio position reached at client time ``t_ns`` (real-time extrapolation after the last append)."""
        i = bisect.bisect_right(self._sent_ns, t_ns) - 1
        if i < 0:
            return 0.0
        return (
            self._sent_end_ms[i] + (t_ns - self._sent_ns[i]) / 1e6  # t_ns ≥ the last append's stamp
            if i == len(self._sent_ns) - 1
            else self._sent_end_ms[i]
        )

    def close(self) -> None:
        """Finish ``input.wav`` and write ``output.wav``, ``conversation.wav`` and ``output/<item>.wav``."""
        import soundfile as sf

        if self._input.closed:
            return
        self._input.close()
        self._close_item_file()  # each item is written whole below, cut where it was truncated
        items_dir = self.run_dir / ITEMS_DIR
        track = np.zeros(0, np.int16)
        for item_id, item in self._items.items():
            samples = np.frombuffer(b"".join(item.chunks), "<i2")
            if item.truncate_ms is not None:
                samples = samples[: int(item.truncate_ms * self.output_rate / 1000)]
            items_dir.mkdir(exist_ok=True)
            sf.write(item_wav_path(self.run_dir, item_id), samples, self.output_rate, subtype="PCM_16")
            start = int(self.position_ms(item.first_ns) * self.output_rate / 1000)
            end = start + len(samples)
            if end > len(track):
                track = np.concatenate([track, np.zeros(end - len(track), np.int16)])
            track[start:end] = samples
        sf.write(self.run_dir / OUTPUT_WAV, track, self.output_rate, subtype="PCM_16")
        self._write_conversation(track)

    def _write_conversation(self, output_track: np.ndarray) -> None:
        import soundfile as sf

        from vlab.audio.pcm import resample

        rate = max(self.input_rate, self.output_rate)
        user, _ = sf.read(self.run_dir / INPUT_WAV, dtype="float32")
        user = resample(user, self.input_rate, rate)
        assistant = resample(output_track.astype(np.float32) / 32768.0, self.output_rate, rate)
        n = max(len(user), len(assistant))
        stereo = np.zeros((n, 2), np.float32)
        stereo[: len(user), 0] = user
        stereo[: len(assistant), 1] = assistant
        sf.write(self.run_dir / CONVERSATION_WAV, stereo, rate, subtype="PCM_16")
