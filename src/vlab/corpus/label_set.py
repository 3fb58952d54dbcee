"""A prompt set's labels as editable spans: what the label editor changes and saves.

:class:`LabelSet` reads a ``manifest.json``; :meth:`LabelSet.spans` gives one prompt's labels as a list
of :class:`Span` (speech segments, holds, ends of turn; an end of turn is a point). :meth:`~LabelSet.edit`
moves a span's boundaries or changes its kind; :meth:`~LabelSet.approve` marks a prompt's labels as
reviewed unchanged. :meth:`~LabelSet.save` writes the manifest atomically; every prompt edited or
approved then has ``label_source = "edited"`` and its edited spans a confidence of 1.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlab.corpus.importer import write_manifest
from vlab.corpus.labels import KINDS, Kind
from vlab.errors import ConfigError
from vlab.prompts import MANIFEST_NAME

__all__ = ["LabelSet", "Span"]

_LISTS: dict[str, str] = {"speech": "speech_segments", "hold": "hold_spans", "eot": "end_of_turn_ms"}


@dataclass(frozen=True, slots=True)
class Span:
    """One label of a prompt (ms from the start of its file)."""

    kind: Kind
    """``speech``, ``hold`` or ``eot``."""
    start_ms: float
    """Start (for an end of turn: its time)."""
    end_ms: float
    """End (equal to :attr:`start_ms` for an end of turn)."""
    confidence: float | None = None
    """The labeller's confidence, 1 once edited, None if unknown."""


class LabelSet:
    """The labels of a prompt folder, editable and saveable.

    Args:
        path: A prompt folder or its ``manifest.json``.

    Raises:
        ConfigError: No manifest there, or one that is not a prompt manifest.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.path = p if p.suffix.lower() == ".json" else p / MANIFEST_NAME
        if not self.path.is_file():
            raise ConfigError(
                f"no prompt manifest at {str(self.path)!r}; make one with `vlab prompts label FOLDER`"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._entries: dict[str, dict[str, Any]] = {str(e["id"]): e for e in data["prompts"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{str(self.path)!r} is not a prompt manifest ({exc!r})") from None
        if "grid" in data:  # a sweep's lists its prompts too: saving would overwrite it with a prompt set's
            raise ConfigError(
                f"{str(self.path)!r} is a sweep's manifest, not a prompt set's; open the folder of the prompts it "
                "played (its recordings and the manifest `vlab prompts label` or `import` wrote)"
            )
        self._generator = str(data.get("generator", "vlab"))
        self.reviewed: set[str] = set()
        """Prompts edited or approved since loading (saved as ``edited``)."""

    @property
    def ids(self) -> list[str]:
        """The prompt ids, in manifest order."""
        return list(self._entries)

    def entry(self, prompt_id: str) -> dict[str, Any]:
        """The manifest entry of a prompt (a live dict: do not change it directly)."""
        try:
            return self._entries[prompt_id]
        except KeyError:
            raise ConfigError(f"no prompt {prompt_id!r}; known: {', '.join(self._entries)}") from None

    def audio_path(self, prompt_id: str) -> Path:
        """The prompt's audio file."""
        return (self.path.parent / self.entry(prompt_id)["file"]).resolve()

    def spans(self, prompt_id: str) -> list[Span]:
        """The prompt's labels in time order: by start, then end (an end of turn before a span it starts)."""
        e = self.entry(prompt_id)
        conf = e.get("confidence", {})
        out: list[Span] = []
        for kind, key in _LISTS.items():
            confidences = conf.get(key, [])
            for i, value in enumerate(e.get(key, [])):
                a, b = (value, value) if kind == "eot" else value
                c = confidences[i] if i < len(confidences) else None
                out.append(Span(kind, float(a), float(b), None if c is None else float(c)))  # type: ignore[arg-type]
        return sorted(out, key=lambda s: (s.start_ms, s.end_ms, KINDS.index(s.kind)))

    def edit(
        self,
        prompt_id: str,
        index: int,
        *,
        start_ms: float | None = None,
        end_ms: float | None = None,
        kind: Kind | None = None,
    ) -> Span:
        """Change span ``index`` (of :meth:`spans`) of a prompt; returns the new span.

        An end of turn is a point: a speech span made one keeps its end, a hold its start (where the speech
        before it ended); an end of turn made a span ends at the next speech onset (or 100 ms later).

        Raises:
            ConfigError: Unknown kind, an index out of range, or boundaries outside the file or reversed.
        """
        spans = self.spans(prompt_id)
        if not 0 <= index < len(spans):
            raise ConfigError(f"{prompt_id} has {len(spans)} labels; no label {index}")
        old = spans[index]
        new_kind = old.kind if kind is None else kind
        if new_kind not in KINDS:
            raise ConfigError(f"unknown kind {new_kind!r}; use one of {', '.join(KINDS)}")
        a = old.start_ms if start_ms is None else float(start_ms)
        b = old.end_ms if end_ms is None else float(end_ms)
        if new_kind == "eot":
            if end_ms is not None or (start_ms is None and old.kind != "hold"):
                a = b
            b = a
        elif old.kind == "eot" and end_ms is None:
            onsets = [s.start_ms for s in spans if s.kind == "speech" and s.start_ms > a]
            b = min(onsets) if onsets else a + 100.0
        duration = float(self.entry(prompt_id)["duration_ms"])
        if not 0 <= a <= b <= duration or (new_kind != "eot" and a == b):
            raise ConfigError(
                f"a {new_kind} label must lie within the file (0–{duration:.0f} ms) and end after it starts; "
                f"got {a:.0f}–{b:.0f} ms"
            )
        spans[index] = Span(new_kind, a, b, 1.0)
        self._store(prompt_id, spans)
        self.reviewed.add(prompt_id)
        return spans[index]

    def approve(self, prompt_id: str) -> None:
        """Mark a prompt's labels as reviewed as they are."""
        self.entry(prompt_id)
        self.reviewed.add(prompt_id)

    def _store(self, prompt_id: str, spans: list[Span]) -> None:
        e = self._entries[prompt_id]
        spans = sorted(spans, key=lambda s: (s.start_ms, s.end_ms))
        conf: dict[str, list[float | None]] = {}
        for kind, key in _LISTS.items():
            mine = [s for s in spans if s.kind == kind]
            e[key] = [round(s.start_ms, 1) for s in mine] if kind == "eot" else [
                [round(s.start_ms, 1), round(s.end_ms, 1)] for s in mine
            ]  # fmt: skip
            conf[key] = [s.confidence for s in mine]
        if "confidence" in e or any(c is not None for cs in conf.values() for c in cs):
            e["confidence"] = conf

    def save(self) -> Path:
        """Write the manifest (atomically); reviewed prompts become ``label_source = "edited"``."""
        for pid in self.reviewed:
            self._entries[pid]["label_source"] = "edited"
        write_manifest(self.path, list(self._entries.values()), generator=self._generator)
        return self.path
