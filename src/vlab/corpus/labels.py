r"""Read label files (RTTM, Praat TextGrid, Audacity label tracks, CSV) into one kind of :class:`Label`.

Every label is a span ``[start_ms, end_ms]`` of one kind (:data:`KINDS`) in one audio file; an end of
turn is a point (``start_ms == end_ms``). Each label remembers the file and line it came from, so an
error can name them. Formats:

- **RTTM** (``.rttm``): ``SPEAKER <file> <chan> <onset s> <duration s> <NA> <NA> <speaker> ...``; each
  ``SPEAKER`` line is speech of that speaker; other line types and ``;;`` comments are skipped.
- **Praat TextGrid** (``.TextGrid``, long or short text format, UTF-8 or UTF-16): every interval of an
  interval tier is a label named by its text; every point of a point tier too. The tier name is the
  speaker.
- **Audacity label track** (``.txt``): ``<start s>\t<end s>\t<text>`` per line (spectral lines that
  start with ``\`` are skipped).
- **CSV** (``.csv``): a header with ``file,start,end,kind`` (seconds), or ``start_ms,end_ms`` (ms), and
  optional ``speaker`` and ``text`` columns. ``file`` is an audio path relative to the folder, or its
  name without the suffix.

A label's text becomes its kind (:func:`kind_of`): ``hold``, ``eot`` (or ``end``, ``end_of_turn``,
``end-of-turn``), silence marks (empty in a TextGrid, ``sil``, ``sp``, ``pau``, ``#``, ``<sil>``,
``silence``, ``spn_sil``) are skipped, and anything else is speech (the text is kept).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlab.errors import ConfigError

__all__ = [
    "END_OF_TURN_MARKS", "KINDS", "LABEL_SUFFIXES", "SILENCE_MARKS", "Label", "LabelError", "kind_of", "read_labels",
]  # fmt: skip

Kind = Literal["speech", "hold", "eot"]
KINDS: tuple[Kind, ...] = ("speech", "hold", "eot")
"""What a label marks: a stretch of speech, a pause inside a turn, or the end of a turn (a point)."""

LABEL_SUFFIXES = (".rttm", ".textgrid", ".txt", ".csv")
"""Suffixes (lower case) of the label files :func:`read_labels` reads."""

SILENCE_MARKS = frozenset({"sil", "sp", "pau", "#", "<sil>", "silence", "spn_sil"})
"""Label texts (lower case) that mark silence: such labels are skipped."""
END_OF_TURN_MARKS = frozenset({"eot", "end", "end_of_turn", "end-of-turn"})
"""Label texts (lower case) that mark an end of turn."""


class LabelError(ConfigError):
    """A label file cannot be read or holds a bad label; the message names the file and line."""

    def __init__(self, path: Path | str, line: int | None, problem: str, fix: str = "") -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}" + (f"; {fix}" if fix else ""))
        self.path = str(path)
        self.line = line


@dataclass(frozen=True, slots=True)
class Label:
    """One label read from a file."""

    file: str
    """The audio file it belongs to, as the label file names it (a relative path or a name without suffix)."""
    start_ms: float
    """Start, in ms from the first sample of the audio file."""
    end_ms: float
    """End, in ms (equal to :attr:`start_ms` for an end of turn)."""
    kind: Kind
    """``speech``, ``hold`` or ``eot``."""
    source: str
    """``path:line`` of the label in its label file."""
    speaker: str = ""
    """Who speaks (RTTM speaker, TextGrid tier, CSV ``speaker`` column), or empty."""
    text: str = ""
    """The label's text (what is said), if any."""


def kind_of(text: str, *, empty: Kind | None) -> Kind | None:
    """The kind a label's text names (None: a silence mark, skipped); ``empty`` is the kind of ``""``."""
    t = text.strip().lower()
    if not t:
        return empty
    if t in SILENCE_MARKS:
        return None
    if t == "hold":
        return "hold"
    if t in END_OF_TURN_MARKS:
        return "eot"
    return "speech"


def read_labels(path: Path, *, audio_name: str | None = None) -> list[Label]:
    """Read one label file.

    Args:
        path: A ``.rttm``, ``.TextGrid``, ``.txt`` (Audacity) or ``.csv`` file.
        audio_name: The audio file the labels belong to, for formats that do not name it (TextGrid,
            Audacity); default: the label file's name without its suffix.

    Raises:
        LabelError: Unknown suffix, unreadable file, or a bad line (the message gives file and line).
    """
    suffix = path.suffix.lower()
    name = audio_name or path.stem
    text = _read_text(path)
    if suffix == ".rttm":
        labels = _rttm(path, text)
    elif suffix == ".textgrid":
        labels = _textgrid(path, text, name)
    elif suffix == ".txt":
        labels = _audacity(path, text, name)
    elif suffix == ".csv":
        labels = _csv(path, text)
    else:
        raise LabelError(
            path, None, f"unknown label format {path.suffix!r}", "use .rttm, .TextGrid, .txt or .csv"
        )
    for label in labels:
        _check(path, label)
    return labels


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabelError(path, None, f"cannot be read ({exc.strerror or exc})") from None
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            return raw.decode(codec)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelError(
            path, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})", "save it as UTF-8"
        ) from None


def _number(path: Path, line: int, value: str, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise LabelError(path, line, f"{what} {value!r} is not a number") from None
    if not math.isfinite(x):
        raise LabelError(path, line, f"{what} {value!r} is not a finite number")
    return x


def _check(path: Path, label: Label) -> None:
    line = int(label.source.rsplit(":", 1)[1])
    if label.start_ms < 0:
        raise LabelError(path, line, f"the label starts before the file ({label.start_ms / 1000:g} s)")
    if label.end_ms < label.start_ms:
        raise LabelError(
            path,
            line,
            f"the label ends ({label.end_ms / 1000:g} s) before it starts ({label.start_ms / 1000:g} s)",
        )
    if label.kind != "eot" and label.end_ms == label.start_ms:
        raise LabelError(
            path, line, f"a {label.kind} label has no length", "only an end of turn (eot) is a point"
        )


def _rttm(path: Path, text: str) -> list[Label]:
    out: list[Label] = []
    for n, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith(";;") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise LabelError(
                path,
                n,
                f"an RTTM SPEAKER line has {len(fields)} fields, not 10",
                "expected `SPEAKER file chan onset duration <NA> <NA> speaker <NA> <NA>`",
            )
        onset = _number(path, n, fields[3], "onset")
        duration = _number(path, n, fields[4], "duration")
        if duration <= 0:
            raise LabelError(path, n, f"the duration {fields[4]} is not > 0")
        out.append(
            Label(
                fields[1], 1000 * onset, 1000 * (onset + duration), "speech", f"{path}:{n}", speaker=fields[7]
            )
        )
    return out


def _audacity(path: Path, text: str, name: str) -> list[Label]:
    out: list[Label] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.startswith("\\"):
            continue
        fields = raw.split("\t")
        if len(fields) < 2:
            raise LabelError(path, n, "an Audacity label line needs `start<TAB>end<TAB>text`")
        start = _number(path, n, fields[0], "start")
        end = _number(path, n, fields[1], "end")
        label_text = fields[2].strip() if len(fields) > 2 else ""
        kind = kind_of(label_text, empty="speech")
        if kind == "speech" and start == end:
            kind = "eot" if not label_text else kind  # a point label without text marks an end of turn
        if kind is not None:
            out.append(Label(name, 1000 * start, 1000 * end, kind, f"{path}:{n}", text=label_text))
    return out


def _csv(path: Path, text: str) -> list[Label]:
    rows = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(rows, [])]
    ms = "start_ms" in header
    need = ["file", "start_ms" if ms else "start", "end_ms" if ms else "end", "kind"]
    missing = [c for c in need if c not in header]
    if missing:
        raise LabelError(
            path,
            1,
            f"the CSV header lacks {', '.join(missing)} (it has {', '.join(header) or 'nothing'})",
            "the first line must be `file,start,end,kind` (seconds) or `file,start_ms,end_ms,kind`",
        )
    col = {c: header.index(c) for c in header}
    scale = 1.0 if ms else 1000.0
    out: list[Label] = []
    for n, row in enumerate(rows, 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise LabelError(path, n, f"the row has {len(row)} cells, the header {len(header)}")

        def cell(c: str, row: list[str] = row) -> str:
            return row[col[c]].strip() if c in col else ""

        kind_text = cell("kind").lower()
        kind = next(
            (k for k in KINDS if k == kind_text or (k == "eot" and kind_text in END_OF_TURN_MARKS)), None
        )
        if kind is None:
            raise LabelError(path, n, f"unknown kind {cell('kind')!r}", f"use one of {', '.join(KINDS)}")
        if not cell("file"):
            raise LabelError(path, n, "the file cell is empty")
        out.append(
            Label(
                cell("file"),
                scale * _number(path, n, cell(need[1]), need[1]),
                scale * _number(path, n, cell(need[2]), need[2]),
                kind,
                f"{path}:{n}",
                speaker=cell("speaker"),
                text=cell("text"),
            )
        )
    return out


_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(?<![\w\[])([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w\]])')


def _textgrid(path: Path, text: str, name: str) -> list[Label]:
    """Praat's text formats (long and short) are one stream of strings and numbers once keys are dropped."""
    tokens: list[tuple[str | float, int]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = re.sub(r"\[\s*\d*\s*\]", "", raw)  # `item [1]:`, `intervals [3]:`
        for m in _TOKEN.finditer(stripped):
            tokens.append(
                (m.group(1).replace('""', '"'), n) if m.group(1) is not None else (float(m.group(2)), n)
            )
    pos = 0

    def take(kind: type, what: str) -> tuple[str | float, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise LabelError(path, len(text.splitlines()), f"the TextGrid ends early (expected {what})")
        value, at = tokens[pos]
        if not isinstance(value, kind):
            raise LabelError(path, at, f"expected {what}, found {value!r}", "is this a Praat text TextGrid?")
        pos += 1
        return value, at

    def number(what: str) -> tuple[float, int]:
        value, at = take(float, what)
        return float(value), at

    def string(what: str) -> tuple[str, int]:
        value, at = take(str, what)
        return str(value), at

    if not tokens or tokens[0][0] != "ooTextFile" or len(tokens) < 2 or tokens[1][0] != "TextGrid":
        raise LabelError(
            path,
            1,
            'not a Praat TextGrid (no `File type = "ooTextFile"`, `Object class = "TextGrid"`)',
            "save it from Praat as a text file",
        )
    pos = 2
    number("the grid's xmin")
    number("the grid's xmax")
    n_tiers, _ = number("the number of tiers")
    out: list[Label] = []
    for _tier in range(int(n_tiers)):
        cls, line = string("a tier class")
        tier, _ = string("a tier name")
        number("the tier's xmin")
        number("the tier's xmax")
        count, _ = number("the tier's size")
        for _i in range(int(count)):
            if cls == "IntervalTier":
                x0, line = number("an interval's xmin")
                x1, _ = number("an interval's xmax")
                label_text, _ = string("an interval's text")
                kind = kind_of(label_text, empty=None)
                if kind == "eot":
                    x0 = x1
            elif cls == "TextTier":
                x0, line = number("a point's time")
                label_text, _ = string("a point's mark")
                x1 = x0
                kind = kind_of(label_text, empty=None)
                if kind not in (None, "eot"):
                    raise LabelError(path, line, f"a point {label_text!r} is no end of turn", "mark it `eot`")
            else:
                raise LabelError(path, line, f"unknown tier class {cls!r}", "use IntervalTier or TextTier")
            if kind is not None:
                out.append(
                    Label(
                        name, 1000 * x0, 1000 * x1, kind, f"{path}:{line}", speaker=str(tier), text=label_text
                    )
                )
    return out
