"""Turn a folder of recordings and their labels into a prompt set (``manifest.json``).

:func:`import_folder` finds every audio file under a folder (``.wav``, ``.flac``, ``.ogg``, ``.mp3``)
and the label files beside them (:mod:`vlab.corpus.labels`): a *sidecar* with the audio's name
(``call1.wav`` + ``call1.TextGrid``, ``call1.rttm``, ``call1.txt`` or ``call1.csv``) labels that file;
any other ``.rttm`` or ``.csv`` names its files itself. Every audio file needs labels and every label an
audio file.

Holds and ends of turn come from the labels when they hold any (``hold`` spans, ``eot`` points);
otherwise they follow one stated rule (:func:`derive_turns`): consecutive speech of one speaker with a
gap shorter than ``hold_gap_ms`` is one turn and the gap is a hold; a longer gap, or another speaker,
starts a new turn, and each turn ends at the end of its last segment.

The manifest is written only once everything has been read and checked, to a temporary file renamed
over ``manifest.json``: a bad file or label leaves no manifest half-written. A manifest already there is
replaced only if an earlier import wrote it and no one has reviewed its labels since
(:func:`check_replaceable`), or when told to (``overwrite``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlab.audio.formats import AUDIO_SUFFIXES
from vlab.corpus.labels import LABEL_SUFFIXES, Label, LabelError, read_labels
from vlab.errors import ConfigError, first_few
from vlab.log.files import write_atomic
from vlab.prompts import MANIFEST_NAME, NOISE_ONLY

__all__ = [
    "AUDIO_SUFFIXES",
    "DEFAULT_HOLD_GAP_MS",
    "LABEL_SOURCES",
    "Turns",
    "derive_turns",
    "import_folder",
    "write_manifest",
]

DEFAULT_HOLD_GAP_MS = 1000.0
"""A gap shorter than this (ms) inside one speaker's speech is a hold, unless the labels say otherwise."""
LABEL_SOURCES = ("generated", "imported", "auto", "edited")
"""Where a prompt's labels come from: made with the audio (the bundled set), imported from label files,
proposed by ``vlab prompts label`` and not reviewed (``auto``), or reviewed in the label editor."""
END_TOLERANCE_MS = 20.0
"""A label may end this much past its audio's end (label tools round); it is cut at the end."""
IMPORT_GENERATOR = "vlab prompts import"
"""The ``generator`` of a manifest :func:`import_folder` writes begins so (then the hold gap)."""
LABEL_GENERATOR = "vlab prompts label"
"""The ``generator`` of a manifest ``vlab prompts label`` writes."""


@dataclass(frozen=True, slots=True)
class Turns:
    """Speech, holds and ends of turn of one recording (ms from its first sample)."""

    speech_segments: tuple[tuple[float, float], ...]
    """Merged stretches of speech, in order."""
    hold_spans: tuple[tuple[float, float], ...]
    """Pauses inside a turn."""
    end_of_turn_ms: tuple[float, ...]
    """End of each turn's last segment."""


def derive_turns(
    speech: Iterable[tuple[float, float, str]], hold_gap_ms: float = DEFAULT_HOLD_GAP_MS
) -> Turns:
    """Turns from speech spans ``(start_ms, end_ms, speaker)`` by the hold-gap rule (module docstring).

    Overlapping spans are merged; a merged stretch belongs to the speaker who started it.
    """
    merged: list[list[Any]] = []
    for start, end, speaker in sorted(speech):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, speaker])
    holds: list[tuple[float, float]] = []
    eots: list[float] = []
    for prev, nxt in zip(merged, merged[1:], strict=False):
        if nxt[2] == prev[2] and nxt[0] - prev[1] < hold_gap_ms:
            holds.append((prev[1], nxt[0]))
        else:
            eots.append(prev[1])
    if merged:
        eots.append(merged[-1][1])
    return Turns(tuple((a, b) for a, b, _ in merged), tuple(holds), tuple(eots))


def recordings_folder(
    folder: str | os.PathLike[str], out: str | os.PathLike[str] | None, hold_gap_ms: float
) -> tuple[Path, Path]:
    """The folder of recordings, checked, and the manifest ``out`` names (default: ``folder/manifest.json``).

    Raises:
        ConfigError: ``folder`` is not a folder, or ``hold_gap_ms`` is not > 0.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a folder; pass the folder that holds the recordings")
    if not hold_gap_ms > 0:  # also NaN
        raise ConfigError(f"hold_gap_ms must be > 0, got {hold_gap_ms}")
    manifest = Path(out) if out is not None else root
    if manifest.suffix.lower() != ".json":
        manifest = manifest / MANIFEST_NAME
    return root, manifest


def _origin(manifest: Path) -> tuple[str, list[str]] | None:
    """Who wrote a manifest (``generator``, '' if none) and the prompts reviewed since; None if unreadable."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # also not UTF-8
        return None
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, list) or not all(isinstance(e, dict) for e in prompts):
        return None
    generator = data.get("generator")
    reviewed = [str(e.get("id", "?")) for e in prompts if e.get("label_source") == "edited"]
    return (generator if isinstance(generator, str) else "", reviewed)


def check_replaceable(manifest: Path, *, overwrite: bool, own: str | None = None) -> None:
    """Refuse to replace a manifest that is there, unless ``overwrite`` or the command ``own`` wrote it.

    Args:
        manifest: Where the command will write its manifest.
        overwrite: Replace whatever is there.
        own: The command's ``generator`` (:data:`IMPORT_GENERATOR`): a manifest whose generator begins
            so, with no prompt reviewed in the label editor since, is the command's own, made again.

    Raises:
        ConfigError: A manifest is there that may not be replaced; the message says what wrote it.
    """
    if overwrite or not manifest.exists():
        return
    origin = _origin(manifest)
    if origin is None:
        what = "not a prompt manifest vlab can read"
    else:
        generator, reviewed = origin
        if own is not None and generator.startswith(own) and not reviewed:
            return
        name = generator.split(" (")[0]  # without the details: "(hold gap 1000 ms)"
        what = f"written by `{name}`" if name else "written by hand or another tool: it names no generator"
        if reviewed:
            what += f"; {len(reviewed)} prompt(s) reviewed in the label editor since: {first_few(reviewed)}"
        elif generator.startswith(LABEL_GENERATOR):
            what += "; its labels may be reviewed"
    raise ConfigError(
        f"{str(manifest)!r} exists ({what}); pass --overwrite to replace it, or --out to write elsewhere"
    )


def audio_files(folder: Path) -> list[Path]:
    """The audio files under ``folder`` (:data:`AUDIO_SUFFIXES`, searched recursively), sorted.

    Raises:
        ConfigError: There are none.
    """
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not found:
        raise ConfigError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {str(folder)!r}")
    return found


def _label_files(folder: Path, stems: set[Path]) -> list[Path]:
    """Sidecars of audio files (any label suffix) and collections (other ``.rttm`` and ``.csv`` files)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in LABEL_SUFFIXES
        and (p.with_suffix("") in stems or p.suffix.lower() in (".rttm", ".csv"))
    )


def prompt_id(rel: Path, taken: set[str]) -> str:
    """The id of the recording at ``rel`` (its path's parts joined by ``_``), made unique among ``taken``."""
    base = "_".join(rel.with_suffix("").parts).replace(" ", "_")
    pid, n = base, 2
    while pid in taken:
        pid, n = f"{base}_{n}", n + 1
    taken.add(pid)
    return pid


def import_folder(
    folder: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    hold_gap_ms: float = DEFAULT_HOLD_GAP_MS,
    category: str = "imported",
    overwrite: bool = False,
) -> Path:
    """Read a folder of recordings and labels and write its prompt set's ``manifest.json``.

    Args:
        folder: The folder of audio and label files (searched recursively).
        out: Where to write the manifest (a folder or a ``.json`` path; default: ``folder/manifest.json``).
            Audio paths in it are relative to its folder.
        hold_gap_ms: The hold-gap rule for recordings whose labels hold no holds or ends of turn.
        category: The ``category`` of every imported prompt (the sweep's prompt selection can use it).
        overwrite: Replace a manifest there that an earlier import did not write (one of
            ``vlab prompts label``, written by hand, unreadable) or whose labels were reviewed since.
            Without it such a manifest is kept (checked before any audio is read); an earlier import's
            is replaced.

    Returns:
        The manifest's path (load it with :func:`vlab.prompts.load_prompt_set`).

    Raises:
        ConfigError: A manifest there that may not be replaced (``overwrite``), no audio, a label file or
            line that is bad (:class:`~vlab.corpus.labels.LabelError`, with file and line), an audio file
            without labels or labels without audio.
        AudioFormatError: An audio file that cannot be read.
    """
    from vlab.audio.wav import read_audio

    root, manifest = recordings_folder(folder, out, hold_gap_ms)
    check_replaceable(manifest, overwrite=overwrite, own=IMPORT_GENERATOR)
    audio = audio_files(root)
    by_key: dict[str, Path] = {}
    for path in audio:
        rel = path.relative_to(root)
        for key in {rel.as_posix(), rel.with_suffix("").as_posix(), path.stem}:
            by_key.setdefault(key, path)
    labels: dict[Path, list[Label]] = {p: [] for p in audio}
    stems = {p.with_suffix(""): p for p in audio}
    with_sidecar: set[Path] = set()  # an empty one says: noise alone, no speech
    for label_file in _label_files(root, set(stems)):
        sidecar = stems.get(label_file.with_suffix(""))
        if sidecar is not None:
            with_sidecar.add(sidecar)
        found = read_labels(label_file, audio_name=None if sidecar is None else sidecar.stem)
        for label in found:
            target = (
                sidecar
                if sidecar is not None and label_file.suffix.lower() not in (".rttm", ".csv")
                else None
            )
            target = (
                target or by_key.get(label.file) or by_key.get(Path(label.file).with_suffix("").as_posix())
            )
            if target is None:
                line = int(label.source.rsplit(":", 1)[1])
                raise LabelError(
                    label_file,
                    line,
                    f"no audio file {label.file!r} under {str(root)!r}",
                    "name it by its path relative to the folder, or its name without suffix",
                )
            labels[target].append(label)
    unlabelled = [
        str(p.relative_to(root)) for p, found in labels.items() if not found and p not in with_sidecar
    ]
    if unlabelled:
        raise ConfigError(
            f"no labels for {len(unlabelled)} audio file(s): {first_few(unlabelled)}; add a label file beside "
            "each (e.g. NAME.TextGrid; an empty NAME.txt for a recording of noise alone) or propose labels "
            "with `vlab prompts label FOLDER`"
        )
    base = manifest.parent.resolve()
    taken: set[str] = set()
    entries: list[dict[str, Any]] = []
    for path in audio:
        samples, rate = read_audio(path)
        duration_ms = 1000.0 * len(samples) / rate
        pid = prompt_id(path.relative_to(root), taken)
        entries.append(
            _entry(path, labels[path], duration_ms, rate, hold_gap_ms, category, base, pid)
            if labels[path]
            else _noise_entry(path, duration_ms, rate, base, pid)
        )
    write_manifest(manifest, entries, generator=f"{IMPORT_GENERATOR} (hold gap {hold_gap_ms:g} ms)")
    return manifest


def _noise_entry(path: Path, duration_ms: float, rate: int, base: Path, pid: str) -> dict[str, Any]:
    """The prompt of a recording whose label file beside it is empty: noise alone (:data:`NOISE_ONLY`)."""
    return {
        "id": pid,
        "file": manifest_file(path, base),
        "text": "",
        "sample_rate": rate,
        "duration_ms": round(duration_ms, 3),
        "category": NOISE_ONLY,
        "source": "recording",
        "label_source": "imported",
        "speech_segments": [],
        "hold_spans": [],
        "end_of_turn_ms": [],
        "notes": "imported: its label file is empty, so noise alone (a sweep counts the false starts it causes)",
    }


def manifest_file(path: Path, base: Path) -> str:
    """``path`` as a manifest names it: relative to the manifest's folder ``base`` (absolute on another drive)."""
    try:
        file = os.path.relpath(path.resolve(), base)
    except ValueError:  # another drive (Windows)
        file = str(path.resolve())
    return Path(file).as_posix()


def _entry(
    path: Path,
    labels: list[Label],
    duration_ms: float,
    rate: int,
    hold_gap_ms: float,
    category: str,
    base: Path,
    pid: str,
) -> dict[str, Any]:
    for label in labels:
        if label.end_ms > duration_ms + END_TOLERANCE_MS:
            file, line = label.source.rsplit(":", 1)
            in_ms = label.end_ms / 1000 <= duration_ms + END_TOLERANCE_MS  # it would fit, read as ms
            raise LabelError(
                file,
                int(line),
                f"the label ends at {label.end_ms / 1000:g} s, past the end of {path.name} ({duration_ms / 1000:g} s)",
                (
                    "are its times in ms? Then name the CSV's columns `file,start_ms,end_ms,kind`; or is it "
                    "labelling another file?"
                    if in_ms and file.endswith(".csv")
                    else "is it labelling another file?"
                ),
            )
    clip = lambda x: min(x, duration_ms)  # noqa: E731
    speech = [
        (label.start_ms, clip(label.end_ms), label.speaker) for label in labels if label.kind == "speech"
    ]
    if not speech:
        raise LabelError(labels[0].source.rsplit(":", 1)[0], None, f"no speech label for {path.name}")
    turns = derive_turns(speech, hold_gap_ms)
    given_holds = tuple(sorted((a.start_ms, clip(a.end_ms)) for a in labels if a.kind == "hold"))
    given_eots = tuple(sorted(clip(a.end_ms) for a in labels if a.kind == "eot"))
    rule = f"holds and ends of turn by the {hold_gap_ms:g} ms hold-gap rule"
    if given_holds or given_eots:
        rule = "holds and ends of turn from the labels"
        turns = Turns(turns.speech_segments, given_holds, given_eots or (turns.speech_segments[-1][1],))
    texts = [a.text for a in sorted(labels, key=lambda a: a.start_ms) if a.kind == "speech" and a.text]
    return {
        "id": pid,
        "file": manifest_file(path, base),
        "text": " ".join(texts),
        "sample_rate": rate,
        "duration_ms": round(duration_ms, 3),
        "category": category,
        "source": "recording",
        "label_source": "imported",
        "speech_segments": [[round(a, 3), round(b, 3)] for a, b in turns.speech_segments],
        "hold_spans": [[round(a, 3), round(b, 3)] for a, b in turns.hold_spans],
        "end_of_turn_ms": [round(x, 3) for x in turns.end_of_turn_ms],
        "notes": f"imported from {', '.join(sorted({Path(a.source.rsplit(':', 1)[0]).name for a in labels}))}; {rule}",
    }


def write_manifest(path: Path, entries: list[dict[str, Any]], *, generator: str) -> None:
    """Write a prompt manifest atomically (a temporary file in the same folder, renamed over ``path``)."""
    data = {
        "version": 1,
        "generator": generator,
        "time_unit": "ms from the first sample of the file",
        "prompts": entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1) + "\n")  # the same bytes on Windows
