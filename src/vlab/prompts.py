"""The bundled, labelled prompt set (``data/prompts/`` in the repository) and its typed labels.

Each prompt is a WAV file plus labels that are exact by construction (the generator,
:mod:`vlab.prompts_gen`, places every phrase itself) or, for the real CMU ARCTIC recordings, taken from
the corpus alignments. All label times are in ms from the first sample of the file:

- ``speech_segments``: ``[on, off]`` of each stretch of speech (first to last audible sample);
- ``hold_spans``: pauses *inside* a user turn (between two segments of one turn), where an agent must
  not answer;
- ``end_of_turn_ms``: one point per expected turn, the end of its last segment.

Load with :func:`load_prompt_set`; :meth:`LabelledPrompt.pcm` gives the audio at any session rate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlab.bundled import bundled_dir
from vlab.errors import AudioFormatError, ConfigError, closest_name, first_few, first_repeated

__all__ = [
    "DEFAULT_PROMPT_DIR",
    "MANIFEST_NAME",
    "NOISE_ONLY",
    "LabelledPrompt",
    "RunLabels",
    "label_warnings",
    "labelled_file",
    "load_prompt_set",
    "read_run_labels",
    "select_prompts",
    "without_speech",
    "write_run_labels",
]

MANIFEST_NAME = "manifest.json"
"""File name of the label manifest inside a prompt folder."""
NOISE_ONLY = "noise_only"
"""The category of a prompt of noise alone, with no speech: sweeps count the false starts it causes."""


DEFAULT_PROMPT_DIR: Path = bundled_dir("prompts")
"""Where the bundled prompt set lives: ``vlab/_bundled/prompts`` in a wheel, ``data/prompts`` in a checkout."""

Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    """One prompt file and its labels (all times in ms from the start of the file)."""

    id: str
    """Short unique name, e.g. ``pause_600``."""
    file: Path
    """Absolute path of the audio file."""
    text: str
    """What is said (turns separated by `` | ``)."""
    sample_rate: int
    """Sample rate of the file in Hz."""
    duration_ms: float
    """Length of the file in ms."""
    category: str
    """Kind of prompt: ``short``, ``long``, ``pause``, ``filler``, ``dictation``, ``quiet``, ``noisy``,
    ``noise_only`` (:data:`NOISE_ONLY`), ``multi_turn``, ``low_rate``, ``interruption`` or ``human``."""
    speech_segments: tuple[Span, ...]
    """``(on_ms, off_ms)`` of every stretch of speech, in order."""
    hold_spans: tuple[Span, ...] = ()
    """Pauses inside a turn ``(start_ms, end_ms)``: a response starting here is a false cut-off."""
    end_of_turn_ms: tuple[float, ...] = ()
    """End of speech of each expected turn, in order (empty for noise-only audio)."""
    source: str = "espeak-ng"
    """Where the speech comes from: ``espeak-ng`` (synthesized) or ``cmu-arctic`` (human recording)."""
    pause_ms: float | None = None
    """For ``pause`` prompts, the length of the mid-sentence pause."""
    barge_in_ms: float | None = None
    """For ``interruption`` prompts, the onset of the speech meant to interrupt the assistant."""
    notes: str = ""
    """Free text: how the prompt was made or labelled."""
    label_source: str = "generated"
    """Where the labels come from: ``generated`` with the audio, ``imported`` from label files,
    ``auto`` (proposed by ``vlab prompts label``, not reviewed) or ``edited`` (reviewed by a person)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other manifest keys, kept as they are."""

    @property
    def expected_turns(self) -> int:
        """Number of user turns the prompt holds."""
        return len(self.end_of_turn_ms)

    @property
    def turn_starts_ms(self) -> tuple[float, ...]:
        """Onset of each expected turn (the first segment after the previous end of turn)."""
        starts: list[float] = []
        previous_end = -1.0
        for eot in self.end_of_turn_ms:
            onsets = [on for on, _ in self.speech_segments if previous_end < on <= eot]
            starts.append(min(onsets) if onsets else float("nan"))
            previous_end = eot
        return tuple(starts)

    def pcm(self, sample_rate: int | None = None) -> bytes:
        """The audio as mono PCM16 at ``sample_rate`` (default: the file's own rate)."""
        from vlab.audio.wav import load_wav

        return load_wav(self.file, sample_rate or self.sample_rate)

    def labels(self) -> dict[str, Any]:
        """The labels as plain JSON-able data (what the manifest holds, without the path)."""
        return {
            "id": self.id,
            "category": self.category,
            "duration_ms": self.duration_ms,
            "speech_segments": [list(s) for s in self.speech_segments],
            "hold_spans": [list(s) for s in self.hold_spans],
            "end_of_turn_ms": list(self.end_of_turn_ms),
            "barge_in_ms": self.barge_in_ms,
            "label_source": self.label_source,
        }

    @classmethod
    def from_manifest(cls, entry: dict[str, Any], folder: Path) -> LabelledPrompt:
        """Build from one manifest entry; ``file`` is resolved relative to ``folder``.

        Raises:
            ConfigError: A required key is missing or a span is malformed.
        """
        known = {
            "id",
            "file",
            "text",
            "sample_rate",
            "duration_ms",
            "category",
            "speech_segments",
            "hold_spans",
            "end_of_turn_ms",
            "source",
            "pause_ms",
            "barge_in_ms",
            "notes",
            "label_source",
        }
        try:
            segments = tuple((float(a), float(b)) for a, b in entry["speech_segments"])
            holds = tuple((float(a), float(b)) for a, b in entry.get("hold_spans", ()))
            return cls(
                id=str(entry["id"]),
                file=(folder / entry["file"]).resolve(),
                text=str(entry.get("text", "")),
                sample_rate=int(entry["sample_rate"]),
                duration_ms=float(entry["duration_ms"]),
                category=str(entry["category"]),
                speech_segments=segments,
                hold_spans=holds,
                end_of_turn_ms=tuple(float(x) for x in entry.get("end_of_turn_ms", ())),
                source=str(entry.get("source", "espeak-ng")),
                pause_ms=None if entry.get("pause_ms") is None else float(entry["pause_ms"]),
                barge_in_ms=None if entry.get("barge_in_ms") is None else float(entry["barge_in_ms"]),
                notes=str(entry.get("notes", "")),
                label_source=str(entry.get("label_source", "generated")),
                extra={k: v for k, v in entry.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as exc:
            what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
            raise ConfigError(f"prompt {entry.get('id', '?')!r}: {what}") from None


def require_prompt(prompt: object, call: str) -> None:
    """Raise :class:`ConfigError` unless ``prompt``, given to ``call``, is a :class:`LabelledPrompt`."""
    if not isinstance(prompt, LabelledPrompt):
        example = repr(prompt) if isinstance(prompt, str) else "'pause_600'"
        raise ConfigError(
            f"{call} takes a labelled prompt, e.g. prompts[{example}] with prompts = "
            f"{{p.id: p for p in vlab.prompts.load_prompt_set()}}, got {prompt!r}"
        )


def load_prompt_set(path: str | os.PathLike[str] | None = None) -> list[LabelledPrompt]:
    """Read a prompt folder's ``manifest.json`` (default: the bundled ``data/prompts``).

    Args:
        path: A prompt folder or its manifest file.

    Returns:
        The prompts, in manifest order.

    Raises:
        ConfigError: No manifest, or a malformed one.
    """
    p = Path(path) if path is not None else DEFAULT_PROMPT_DIR
    manifest = p if p.is_file() else p / MANIFEST_NAME
    bundled = "reinstall vlab (in a source checkout, build it with `python scripts/make_prompts.py`)"
    if path is not None and not p.exists():
        raise ConfigError(
            f"there is no {str(p)!r}; give a prompt folder (one that holds a manifest.json) or its manifest "
            "file, and check the path (a sweep config's [prompts] path is read from the folder the sweep "
            "runs in, or else beside the config)"
        )
    if not manifest.is_file():
        fix = (
            f"vlab's bundled prompt set is missing: {bundled}"
            if path is None
            else "pass a folder that holds a manifest.json; for a folder of your own recordings, "
            "`vlab prompts label FOLDER` proposes one (or `vlab prompts import` reads the labels you have)"
        )
        raise ConfigError(f"no prompt manifest at {str(manifest)!r}; {fix}")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        entries = data.get("prompts") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError("it must be a JSON object whose 'prompts' is a list of objects")
        prompts = [LabelledPrompt.from_manifest(e, manifest.parent) for e in entries]
        twice = first_repeated(p.id for p in prompts)
        if twice is not None:
            raise ConfigError(f"two prompts have the id {twice!r} (a sweep names its cells by it)")
        return prompts
    except (ConfigError, ValueError) as exc:
        what = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        fix = (
            bundled
            if path is None
            else f"fix the file, or make it again with `vlab prompts label {manifest.parent}` (or "
            "`vlab prompts import`, from the labels you have)"
        )
        raise ConfigError(f"the prompt manifest {str(manifest)!r} is malformed: {what}; {fix}") from None


_IDS_SHOWN = 30
"""Prompt ids an error lists before it says how many there are (a set of one's own may hold thousands)."""


def select_prompts(
    prompts: list[LabelledPrompt], names: str | list[str] | tuple[str, ...] | None
) -> list[LabelledPrompt]:
    """Keep the prompts whose id or category is in ``names`` (one name, or None or ``["*"]`` keeps all).

    Raises:
        ConfigError: A name matches no prompt (the message lists the ids).
    """
    if isinstance(names, str):  # one id or category, not its letters
        names = [names]
    if not names or list(names) == ["*"]:
        return list(prompts)
    out: list[LabelledPrompt] = []
    for name in names:
        hits = [p for p in prompts if p.id == name or p.category == name]
        if not hits:
            ids, categories = [p.id for p in prompts], sorted({p.category for p in prompts})
            guess = closest_name(name, [*ids, *categories])
            shown = ", ".join(ids[:_IDS_SHOWN]) + (f" … ({len(ids)} in all)" if len(ids) > _IDS_SHOWN else "")
            raise ConfigError(
                f"no prompt named {name!r}"
                + (f" (did you mean {guess!r}?)" if guess else "")
                + f"; known ids: {shown}; categories: {', '.join(categories)}"
            )
        out.extend(h for h in hits if h not in out)
    return out


def without_speech(prompts: Iterable[LabelledPrompt]) -> list[LabelledPrompt]:
    """The prompts with no labelled speech that are not :data:`NOISE_ONLY`: a sweep scores nothing in them."""
    return [p for p in prompts if not p.speech_segments and p.category != NOISE_ONLY]


def label_warnings(prompts: Sequence[LabelledPrompt]) -> list[str]:
    """What a sweep over ``prompts`` warns of first: prompts whose labels its figures cannot trust or use.

    Labels that ``vlab prompts label`` proposed and nobody reviewed (``auto``), and prompts with no labelled
    speech that are not :data:`NOISE_ONLY`: a sweep scores nothing in those.
    """
    messages = []
    auto = [p.id for p in prompts if p.label_source == "auto"]
    unlabelled = [p.id for p in without_speech(prompts)]
    if auto:
        messages.append(
            f"{len(auto)} of {len(prompts)} prompts have automatic labels nobody reviewed ({first_few(auto)}): "
            "the cut-off, hold and missed-turn figures are only as good as those proposals. Review them with "
            "vlab.widgets.LabelEditor"
        )
    if unlabelled:
        messages.append(
            f"{len(unlabelled)} of {len(prompts)} prompts hold no labelled speech ({first_few(unlabelled)}): "
            f'the sweep scores nothing in them, unless their category is "{NOISE_ONLY}" (it then counts the '
            "false starts they cause)"
        )
    return messages


def labelled_file(path: str | os.PathLike[str]) -> LabelledPrompt | None:
    """The labelled prompt the audio file ``path`` is, if the ``manifest.json`` beside it lists it.

    None when no manifest is there, vlab cannot read it, it does not list the file, or its labels give no
    end of turn to time from (noise alone): the file then plays unlabelled.
    """
    from vlab.errors import VlabError

    file = Path(path)
    if not (file.parent / MANIFEST_NAME).is_file():
        return None
    try:
        folder = load_prompt_set(file.parent)
    except VlabError:  # not a prompt folder vlab can read
        return None
    found = next((p for p in folder if p.file.resolve() == file.resolve()), None)
    return found if found is not None and found.end_of_turn_ms else None


def write_run_labels(run_dir: str | os.PathLike[str], labels: Mapping[str, Any] | None) -> None:
    """Keep the labels of the prompt a run replays in its run folder (``labels.json``); None drops them.

    ``labels``: :meth:`LabelledPrompt.labels`, or at least its ``end_of_turn_ms`` on the run's input clock
    (ms from the first sample the run sent). Whoever reads the run later (the log explorer) then times its
    turns from them, as the replay, the sweep or the session panel that made it did. ``run_dir`` is made
    if it is not there.

    Raises:
        ConfigError: ``labels`` is neither None nor a mapping with ``end_of_turn_ms``.
    """
    from vlab.log.files import LABELS_NAME, write_atomic

    path = Path(run_dir) / LABELS_NAME
    if labels is None:
        path.unlink(missing_ok=True)
        return
    if not isinstance(labels, Mapping) or "end_of_turn_ms" not in labels:  # read_run_labels would refuse it
        raise ConfigError(
            "labels must be a mapping with at least 'end_of_turn_ms' (a list of ms), e.g. "
            f"{{'end_of_turn_ms': [1200.0]}} or a prompt's labels(), got {labels!r}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)  # the run folder, if the run has not made it yet
    write_atomic(path, json.dumps(dict(labels), indent=2) + "\n")


@dataclass(frozen=True, slots=True)
class RunLabels:
    """The labels a run folder keeps (``labels.json``: :func:`write_run_labels`)."""

    end_of_turn_ms: tuple[float, ...]
    """The labelled ends of speech on the run's input clock (ms)."""
    label_source: str | None = None
    """Where they came from, as :attr:`LabelledPrompt.label_source` (``auto``: proposed, not reviewed)."""


def read_run_labels(run_dir: str | os.PathLike[str]) -> RunLabels | None:
    """The labels a run folder keeps (``labels.json``: :func:`write_run_labels`), if it keeps any.

    None when it keeps none (a microphone, a file with no labels, a run from before vlab kept them), or
    none with an end of turn.

    Raises:
        ConfigError: ``labels.json`` is there but unreadable; the message says how to do without it.
    """
    from vlab.log.files import LABELS_NAME

    path = Path(run_dir) / LABELS_NAME
    if not path.is_file():
        return None
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
        found = tuple(float(end) for end in labels["end_of_turn_ms"])
        source = labels.get("label_source")
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"{str(path)!r} is not readable labels ({type(exc).__name__}: {exc}); move it away to time the "
            "run's turns without them (from where the speech ends in input.wav, or the server's estimate)"
        ) from None
    return RunLabels(found, None if source is None else str(source)) if found else None


def prompt_file(given: str) -> tuple[str, LabelledPrompt | None]:
    """The file ``vlab replay`` (and :func:`vlab.replay.replay`) plays, and its labels when they give an end of turn.

    ``given``, labelled when the ``manifest.json`` beside it lists it (a prompt folder), else the bundled
    prompt whose id it is. A prompt with no labelled end of turn (noise alone) plays unlabelled.

    Raises:
        AudioFormatError: Neither a file nor a bundled prompt's id; the message lists the ids, and names
            the one ``given`` is a typo of, if one stands out.
    """
    if Path(given).exists():
        return given, labelled_file(given)
    bundled = {p.id: p for p in load_prompt_set()}
    if given in bundled:
        found = bundled[given]
        return str(found.file), found if found.end_of_turn_ms else None
    close = closest_name(given, bundled)
    ids = f": did you mean {close!r}?" if close else f" ({first_few(bundled, 8)})."
    raise AudioFormatError(
        "file not found",
        path=given,
        fix=f"Check the path (relative paths start at the current folder), or give a bundled prompt's id{ids}",
    )
