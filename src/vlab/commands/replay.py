"""``vlab replay``: replay a WAV prompt as the user's turn and log the session."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vlab import protocol
from vlab.audio.formats import AUDIO_KINDS
from vlab.commands._args import out_folder, seconds, speed
from vlab.errors import ConfigError

if TYPE_CHECKING:
    from vlab.prompts import LabelledPrompt
    from vlab.replay import ReplayResult
    from vlab.settings import AzureSemanticVad, ServerVad, SessionSettings

_VAD_SETTINGS: tuple[tuple[str, type, str], ...] = (
    ("threshold", float, "VAD speech probability threshold"),
    ("prefix_padding_ms", int, "audio kept before speech"),
    ("silence_duration_ms", int, "silence that ends a turn"),
)
"""The turn-detection settings the command takes (``--prefix-padding-ms`` for ``prefix_padding_ms``): field,
type and help. Their defaults are ServerVad's."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    from vlab.settings import ServerVad

    rep = sub.add_parser("replay", help="replay a WAV prompt as the user's turn and log the session")
    rep.add_argument(
        "prompt",
        help=f"{AUDIO_KINDS} file with the user's speech, or a bundled prompt's id "
        "(short_question, pause_600 …)",
    )
    rep.add_argument(
        "--out",
        type=out_folder,
        default=None,
        metavar="RUN_DIR",
        help="run folder (default: runs/replay-<time>)",
    )
    td = rep.add_mutually_exclusive_group()
    td.add_argument(
        "--semantic-vad", action="store_true", help="use azure_semantic_vad instead of server_vad"
    )
    td.add_argument("--manual", action="store_true", help="no turn detection: commit and ask for a response")
    vad = ServerVad()  # vlab's defaults, which it sends explicitly
    for name, kind, what in _VAD_SETTINGS:
        rep.add_argument(
            _flag(name), type=kind, default=None, help=f"{what} (default: {getattr(vad, name):g})"
        )
    rep.add_argument(
        "--eou-timeout-ms",
        type=int,
        default=None,
        metavar="MS",
        help="add semantic end-of-utterance detection: after a pause whose words sound unfinished, wait up "
        "to MS for more (default: none on server_vad)",
    )
    rep.add_argument(
        "--instructions",
        metavar="TEXT",
        default=None,
        help="the agent's system prompt (default: the service's)",
    )
    rep.add_argument(
        "--voice",
        metavar="NAME",
        default=None,
        help="the assistant's voice: an Azure one (en-US-AvaNeural) or an OpenAI one (alloy); default: the "
        "service's",
    )
    rep.add_argument(
        "--transcription",
        metavar="MODEL",
        default=None,
        help="transcribe the user's audio with MODEL (azure-speech, whisper-1, gpt-4o-transcribe …); the "
        "summary says what it heard, and when",
    )
    rep.add_argument(
        "--input-format",
        choices=protocol.INPUT_FORMATS,
        default=None,
        help="the audio sent: pcm16 (the default), or telephone audio, 8 kHz G.711 (g711_ulaw, g711_alaw); "
        "the prompt is resampled and encoded to it",
    )
    rep.add_argument(
        "--input-rate",
        metavar="HZ",
        type=int,
        default=None,
        help="the sample rate of the audio sent, for pcm16: "
        + ", ".join(map(str, protocol.INPUT_SAMPLING_RATES))
        + f" (default: {protocol.PCM16_SAMPLE_RATE_HZ}; G.711 is {protocol.G711_SAMPLE_RATE_HZ})",
    )
    rep.add_argument(
        "--output-format",
        choices=list(protocol.OUTPUT_FORMAT_RATES),
        default=None,
        metavar="FORMAT",
        help="the audio the assistant answers in: pcm16 (the default, 24 kHz), pcm16_16000hz …, g711_ulaw, "
        "g711_alaw (a phone line: with --input-format, G.711 both ways)",
    )
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="send the audio in real time (the default)")
    pace.add_argument(
        "--speed",
        type=speed,
        default=1.0,
        help="send N× faster than real time, or 'max' (default: 1, real time)",
    )
    rep.add_argument("--force", action="store_true", help="replace the run in --out if it already holds one")
    rep.add_argument(
        "--timeout", type=seconds, default=120.0, help="seconds to wait for the answers (default: 120)"
    )
    rep.set_defaults(func=run)


_AUDIO_FLAGS = {
    "input_format": "input_audio_format",
    "input_rate": "input_audio_sampling_rate",
    "output_format": "output_audio_format",
}
"""The flags that set the audio each way, and the :class:`~vlab.settings.SessionSettings` field each sets."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def turn_detection(args: argparse.Namespace) -> ServerVad | AzureSemanticVad | None:
    """The turn detection the flags ask for; a VAD setting not given keeps its documented default.

    Raises:
        ConfigError: A VAD setting was given with ``--manual``, which has no turn detection.
    """
    from vlab.settings import AzureSemanticVad, EndOfUtterance, ServerVad

    given = {name: getattr(args, name) for name, _, _ in _VAD_SETTINGS if getattr(args, name) is not None}
    if args.eou_timeout_ms is not None:
        try:
            given["end_of_utterance"] = EndOfUtterance(timeout_ms=args.eou_timeout_ms)
        except ConfigError as exc:
            raise ConfigError(f"--eou-timeout-ms {args.eou_timeout_ms}: {exc}") from None
    if args.manual:
        if given:
            flags = ", ".join(
                _flag("eou_timeout_ms" if name == "end_of_utterance" else name) for name in given
            )
            raise ConfigError(f"{flags}: --manual has no turn detection to set. Drop {flags}, or --manual.")
        return None
    kind = AzureSemanticVad if args.semantic_vad else ServerVad
    try:
        return kind(**given)
    except ConfigError as exc:  # it names the field: say the flag that set it, as --eou-timeout-ms does
        named = [name for name in given if f"{kind.__name__}.{name} " in str(exc)]
        if not named:
            raise
        raise ConfigError(f"{_flag(named[0])} {given[named[0]]}: {exc}") from None


def session_settings(args: argparse.Namespace) -> SessionSettings:
    """The session the flags ask for: turn detection, instructions, voice, transcription, the audio each way.

    What no flag gives is left to the service.

    Raises:
        ConfigError: A flag's value is not valid, named with its flag.
    """
    from vlab.settings import NOT_GIVEN, SessionSettings, voice_to_wire

    td = turn_detection(args)
    if args.voice is not None:
        try:
            voice_to_wire(args.voice)
        except ConfigError as exc:
            raise ConfigError(f"--voice {args.voice!r}: {exc}") from None
    voice = NOT_GIVEN if args.voice is None else args.voice
    instructions = NOT_GIVEN if args.instructions is None else args.instructions
    if args.transcription is not None and not args.transcription.strip():
        raise ConfigError("--transcription needs a model name, such as azure-speech")
    transcription = NOT_GIVEN if args.transcription is None else args.transcription.strip()
    given = {flag: getattr(args, flag) for flag in _AUDIO_FLAGS if getattr(args, flag) is not None}
    audio = {_AUDIO_FLAGS[flag]: value for flag, value in given.items()}
    try:
        SessionSettings(**audio)
    except ConfigError as exc:
        flags = " ".join(f"{_flag(flag)} {value}" for flag, value in given.items())
        raise ConfigError(f"{flags}: {str(exc).removeprefix('SessionSettings.')}") from None
    return SessionSettings(
        turn_detection=td, instructions=instructions, voice=voice, transcription=transcription, **audio
    )


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code."""
    from vlab.metrics import cancelled_before_audio
    from vlab.prompts import prompt_file

    settings = session_settings(args)
    prompt, labelled = prompt_file(args.prompt)
    if prompt != args.prompt:
        print(f"prompt: the bundled {args.prompt!r} ({prompt})")
    result = _replay(args, settings, prompt if labelled is None else labelled)
    unheard = {
        t["turn"]
        for t in result.turns
        if cancelled_before_audio(t.get("status"), t.get("t_first_audio_ns"), t["false_cutoff"])
    }
    _print_run(args, settings, labelled, result, unheard)
    heard = _transcripts(result.run_dir) if args.transcription is not None else None
    _print_turns(result, unheard, heard)
    _print_tokens(result)
    return 0


def _replay(
    args: argparse.Namespace, settings: SessionSettings, prompt: str | LabelledPrompt
) -> ReplayResult:
    """Replay ``prompt``; an error says which flag mends it (--force, --timeout, --threshold)."""
    from vlab._run import run_main
    from vlab.errors import ConnectionFailed, NotAnswered, RunFolderTaken
    from vlab.feed import NoSpeechDetected
    from vlab.log import JSONL_NAME
    from vlab.replay import replay
    from vlab.session.reconnect import RECONNECT_ADVICE

    try:
        return run_main(
            replay(
                prompt,
                settings,
                run_dir=args.out,
                speed=1.0 if args.realtime else args.speed,
                timeout_s=args.timeout,
                overwrite=args.force,
            )
        )
    except RunFolderTaken:
        raise RunFolderTaken(
            f"{args.out} already holds a run ({JSONL_NAME}); the replay would replace it. Choose another "
            "--out, or pass --force to replace it"
        ) from None
    except NotAnswered as exc:
        raise NotAnswered(f"{exc}. Give it longer with --timeout (now {args.timeout:g} s).") from None
    except ConnectionFailed as exc:  # its advice is Python's (Session(reconnect=True)), not a command's
        if RECONNECT_ADVICE not in str(exc):
            raise
        raise ConnectionFailed(str(exc).replace(RECONNECT_ADVICE, "Run the command again")) from None
    except NoSpeechDetected as exc:
        threshold = getattr(settings.turn_detection, "threshold", None)
        if threshold is None:
            raise
        raise NoSpeechDetected(
            fix=f"lower the threshold (now {threshold:g}) with --threshold", events=exc.events
        ) from None


def _print_run(
    args: argparse.Namespace,
    settings: SessionSettings,
    labelled: LabelledPrompt | None,
    result: ReplayResult,
    unheard: set[int],
) -> None:
    """Where the run is, what it sent, where each end of speech comes from, and how many turns were answered."""
    print(f"run folder: {result.run_dir}")
    print(f"target: {result.target}")
    if any(getattr(args, flag) is not None for flag in _AUDIO_FLAGS):
        print(
            f"audio: {settings.input_audio_format} at {settings.input_sample_rate} Hz in, "
            f"{settings.output_audio_format} at {settings.output_sample_rate} Hz out"
        )
    print(f"events logged: {result.events}")
    hold_ms = settings.turn_hold_ms
    if labelled is not None:
        unreviewed = " (proposed by vlab prompts label, not reviewed: vlab.widgets.LabelEditor reviews them)"
        print("end of speech: the prompt's labels" + (unreviewed if labelled.label_source == "auto" else ""))
    elif hold_ms is not None and result.turns:
        guessed = [str(t["turn"] + 1) for t in result.turns if t.get("a_eos_source") == "estimated"]
        print(
            "end of speech: found in the prompt's audio, so each wait includes any wait for more speech (an "
            f"end-of-utterance timeout of up to {hold_ms:.0f} ms)"
            if not guessed
            else f"end of speech: estimated for turn {', '.join(guessed)} (audio_end_ms minus the silence "
            f"timer; no end of speech found in the audio near it), so a wait for more speech (up to "
            f"{hold_ms:.0f} ms) is not in it; replay a labelled prompt (a bundled id, or a file in a prompt "
            "folder: docs/own-recordings.md) to time each wait from where the user stopped"
        )
    print(
        f"turns answered: {len(result.turns)}"
        + (f" ({len(unheard)} cancelled before their first audio)" if unheard else "")
    )
    if result.speech_never_ended:  # "turns answered: 0" said nothing of why
        from vlab.feed import SPEECH_NEVER_ENDED

        print(f"vlab: {SPEECH_NEVER_ENDED}", file=sys.stderr)
    if result.protocol_warnings:
        print(
            f"protocol warnings: {result.protocol_warnings} (malformed server events; see the run's events)"
        )


def _print_turns(result: ReplayResult, unheard: set[int], heard: dict[str, str] | None) -> None:
    """Each turn's stages (voice-to-voice and its parts), and what the service heard when ``heard`` is given."""
    from vlab.metrics import FALSE_CUTOFF

    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f} ms"  # noqa: E731
    for turn in result.turns:
        head = f"  turn {turn['turn'] + 1}: {turn.get('status')}"
        if turn["false_cutoff"]:
            print(f"{head}; {FALSE_CUTOFF}")
            continue
        if turn["turn"] in unheard:  # no voice-to-voice: nothing was heard
            print(
                f"{head} before its first audio; endpointing {fmt(turn['endpointing_ms'])} + turn commit "
                f"{fmt(turn['turn_commit_ms'])} ({turn['timeline']} timeline)"
            )
        else:
            print(
                f"{head}; voice-to-voice {fmt(turn['voice_to_voice_ms'])} = endpointing "
                f"{fmt(turn['endpointing_ms'])} + turn commit {fmt(turn['turn_commit_ms'])} + first audio "
                f"{fmt(turn['ttfb_audio_ms'])} ({turn['timeline']} timeline)"
            )
        if heard is not None:
            text = heard.get(str(turn.get("item_id")))
            print(
                "    heard: "
                + ("nothing (no transcript came)" if text is None else f"{text!r}")
                + (
                    f", {fmt(turn['transcription_delay_ms'])} after speech_stopped"
                    if text is not None
                    else ""
                )
            )


def _print_tokens(result: ReplayResult) -> None:
    """The tokens the responses used, when every response reported its usage."""
    import pandas as pd

    from vlab.metrics import USAGE_COLUMNS, tokens_used

    used = tokens_used(pd.DataFrame(result.turns)) if result.turns else {}
    if all(math.isfinite(used.get(key, math.nan)) for key in USAGE_COLUMNS):
        total, given, said = (round(used[key]) for key in USAGE_COLUMNS)
        print(f"tokens used: {total} ({given} in, {said} out; the responses' usage)")


def _transcripts(run_dir: Path) -> dict[str, str]:
    """The user's transcripts in a run's log, by item id (``input_audio_transcription.completed``)."""
    import json

    from vlab import protocol
    from vlab.log import load_log

    events = load_log(run_dir)
    done = events[events["type"] == protocol.TRANSCRIPTION_COMPLETED]
    return {
        str(item): str(json.loads(payload).get("transcript", ""))
        for item, payload in zip(done["item_id"], done["payload"], strict=True)
    }
