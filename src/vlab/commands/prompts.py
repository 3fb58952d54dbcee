"""``vlab prompts``: make a prompt set of your own recordings (``import`` labelled ones, ``label`` the rest)."""

from __future__ import annotations

import argparse

from vlab.commands._args import out_file_or_folder, positive_ms


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand and its own subcommands."""
    from vlab.corpus.importer import DEFAULT_HOLD_GAP_MS

    p = sub.add_parser("prompts", help="make a prompt set (manifest.json) of your own recordings")
    own = p.add_subparsers(dest="prompts_command", required=True, metavar="ACTION")
    imp = own.add_parser(
        "import",
        help="audio + labels (RTTM, TextGrid, Audacity .txt, CSV file,start,end,kind) → manifest.json",
    )
    imp.add_argument("folder", help="folder of audio files and their label files (searched recursively)")
    imp.add_argument(
        "--out", type=out_file_or_folder, help="manifest path or folder (default: FOLDER/manifest.json)"
    )
    imp.add_argument(
        "--hold-gap-ms",
        type=positive_ms,
        default=DEFAULT_HOLD_GAP_MS,
        help="without hold/eot labels: a gap shorter than this inside one speaker's speech is a hold, "
        f"a longer one ends the turn (default: {DEFAULT_HOLD_GAP_MS:g})",
    )
    imp.add_argument("--category", default="imported", help="category of the prompts (default: imported)")
    imp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a manifest that an earlier import did not write (e.g. vlab prompts label's, reviewed)",
    )
    imp.set_defaults(func=run_import)
    lab = own.add_parser(
        "label", help="propose speech, holds and ends of turn for unlabelled recordings (Silero + energy)"
    )
    lab.add_argument("folder", help="folder of recordings (searched recursively)")
    lab.add_argument(
        "--out", type=out_file_or_folder, help="manifest path or folder (default: FOLDER/manifest.json)"
    )
    lab.add_argument(
        "--hold-gap-ms",
        type=positive_ms,
        default=DEFAULT_HOLD_GAP_MS,
        help=f"a pause shorter than this is a hold, a longer one ends the turn (default: {DEFAULT_HOLD_GAP_MS:g})",
    )
    lab.add_argument("--category", default="recorded", help="category of the prompts (default: recorded)")
    lab.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    lab.set_defaults(func=run_label)


def _count(n: int, noun: str) -> str:
    """``1 turn``, ``2 turns``."""
    return f"{n} {noun}{'s' * (n != 1)}"


def run_import(args: argparse.Namespace) -> int:
    """``vlab prompts import``; returns the exit code."""
    from vlab.corpus.importer import import_folder
    from vlab.prompts import NOISE_ONLY, load_prompt_set

    manifest = import_folder(
        args.folder,
        out=args.out,
        hold_gap_ms=args.hold_gap_ms,
        category=args.category,
        overwrite=args.overwrite,
    )
    prompts = load_prompt_set(manifest)
    turns = sum(p.expected_turns for p in prompts)
    holds = sum(len(p.hold_spans) for p in prompts)
    counts = ", ".join(
        _count(n, noun) for n, noun in ((len(prompts), "recording"), (turns, "turn"), (holds, "hold"))
    )
    noise = sum(p.category == NOISE_ONLY for p in prompts)
    print(f"prompts: {counts}" + (f" ({noise} of noise alone)" if noise else "") + f" → {manifest}")
    return 0


def run_label(args: argparse.Namespace) -> int:
    """``vlab prompts label``; returns the exit code."""
    from vlab.corpus.labeller import label_folder
    from vlab.prompts import load_prompt_set

    manifest = label_folder(
        args.folder,
        out=args.out,
        hold_gap_ms=args.hold_gap_ms,
        category=args.category,
        overwrite=args.overwrite,
        progress=True,
    )
    prompts = load_prompt_set(manifest)
    segments = sum(len(p.speech_segments) for p in prompts)
    print(
        f"prompts: proposed {_count(segments, 'speech segment')} in {_count(len(prompts), 'recording')} → {manifest} "
        "(labels 'auto': review them with vlab.widgets.LabelEditor; reports flag unreviewed labels)"
    )
    return 0
