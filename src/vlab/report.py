"""Reports of a sweep folder and comparisons of two sweeps.

``report.html`` embeds its charts as PNG data; the PNG files are written beside it.

``vlab report runs/NAME`` → ``runs/NAME/report.html`` and ``runs/NAME/report/*.png``;
``vlab compare runs/A runs/B`` → what got better or worse, with bootstrap intervals.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vlab.audio.pacing import parse_speed, speed_label
from vlab.errors import ConfigError, check_count, first_few
from vlab.metrics.latency import made_tool_calls, spoken_turns
from vlab.metrics.summary import RESAMPLES

if TYPE_CHECKING:
    from vlab.prompts import LabelledPrompt

__all__ = [
    "CHARTS",
    "COMPARED_POINTS",
    "SCORE_COLUMNS",
    "build_report",
    "compare_sweeps",
    "grid_settings",
    "latency_measures",
    "ran_otherwise",
    "score_columns",
    "tool_call_summary",
    "verdict_summary",
]

COMPARED_POINTS = (
    "false_cutoff_rate",
    "hold_cut_rate",
    "missed_turn_rate",
    "der",
    "false_starts_per_min",
    "tokens_per_expected_turn",
)
"""The operating-point measures :func:`compare_sweeps` compares (lower is better for each), those neither
sweep has a value for left out (false starts, without noise-only prompts)."""

DEAD_AIR_BUDGETS_MS = (300.0, 600.0, 1000.0, 1500.0)
"""The dead-air budgets the report gives the lowest cut-off rate within: a reply within 1 s of the end of
speech is near what Voice Live's own latency allows, so 300 and 600 ms are often met by no setting."""
CUTOFF_BUDGETS = (0.05, 0.10, 0.20)
"""The cut-off rates the report gives the lowest dead air within."""
WATERFALL_TURNS = 24
SCORE_COLUMNS = {
    "setting": "",
    "prompt": "",
    "run": "the repeat",
    "expected_turns": "labelled turns",
    "responses": "responses started",
    "cutoff_turns": "labelled turns a response started in (before the user had finished)",
    "holds_cut": "pauses inside a turn that a response started in",
    "missed_turns": "labelled turns whose end no response answered",
    "dead_air_ms": (
        "the median wait from a turn's labelled end of speech to its reply's first audio (in a VAD-only sweep, "
        "to the end the VAD decided)"
    ),
    "onset_error_ms": (
        "the server's start of speech less the label's, per turn, averaged (0 when the label lies in the span "
        "where the speech began, for a start whose padding the server cut short)"
    ),
    "eos_delay_ms": "the server's audio_end_ms less the labelled end of turn, averaged",
    "der": (
        "detection error rate: (false alarm + missed speech) / labelled speech, in 10 ms frames, leaving out "
        "those spans and, where turn detection may wait for more speech, the wait in which the speech ended"
    ),
    "false_starts": "detections in a noise-only prompt",
}
"""The columns of the report's per-prompt table, in order, and what each says (docs/sweeps.md says more)."""
"""The most turns a report's waterfall draws: every setting gets a share (:func:`waterfall_turns`)."""
CHARTS = ("waterfall", "latency_distributions", "pareto", "vad_timeline")
"""Chart names every report holds (``vad_timeline`` once per timeline prompt: ``vad_timeline_<id>``); a
VAD-only sweep's report has no ``waterfall`` or ``latency_distributions`` (no replies). A sweep that played
noise-only prompts adds ``noise_tradeoff``."""

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table.t{border-collapse:collapse;font-size:.85em} table.t td,table.t th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:right}
table.t th{background:#f4f4f4} table.t td:first-child{white-space:nowrap} img{max-width:100%} .note{color:#666;font-size:.9em} .warn{color:#b30000}
"""


def _load(sweep_dir: Path, name: str) -> pd.DataFrame:
    path = sweep_dir / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def _require_sweep(sweep_dir: Path) -> dict[str, Any]:
    from vlab.sweep.store import SWEEP_MANIFEST, not_a_sweep

    problem = not_a_sweep(sweep_dir)
    if problem is not None:
        raise ConfigError(problem)
    return json.loads((sweep_dir / SWEEP_MANIFEST).read_text(encoding="utf-8"))


def _require_results(sweep_dir: Path, points: pd.DataFrame) -> None:
    """Raise a :class:`ConfigError` that says why, when the sweep has no operating point (no cell finished)."""
    if points.empty:
        from vlab.sweep.store import no_results_message

        raise ConfigError(no_results_message(sweep_dir))


def prompts_to_chart(
    manifest: dict[str, Any], prompts: Iterable[LabelledPrompt], scores: pd.DataFrame, count: int
) -> list[LabelledPrompt]:
    """The ``count`` prompts whose VAD timelines a sweep's report and panel draw, most holds first.

    Only the sweep's prompts with a finished cell: one whose every cell failed has no detections to
    draw, and maybe no audio that can be read.
    """
    known = {p.id: p for p in prompts}
    ran = set(scores["prompt"]) if "prompt" in scores else set()
    chosen = [known[p["id"]] for p in manifest.get("prompts", []) if p["id"] in known and p["id"] in ran]
    return sorted(chosen, key=lambda p: (-len(p.hold_spans), p.id))[:count]


def grid_settings(manifest: dict[str, Any]) -> list[str]:
    """The names of the settings a sweep's ``manifest.json`` (already read) lists, in grid order."""
    return [point["setting"] for point in manifest.get("grid", [])]


def waterfall_turns(turns: pd.DataFrame, settings: list[str], *, max_turns: int) -> tuple[pd.DataFrame, int]:
    """The turns a sweep's waterfall draws, in the grid's order ``settings``, and how many per setting.

    From ``turns`` (the correctly ended ones), as many per setting (1 to 4) as leave room in ``max_turns``
    for every setting: a sweep of many settings shows each one, not the first few.
    """
    from vlab.sweep import in_grid_order

    if not len(turns):
        return turns, 4
    per = max(1, min(4, max_turns // turns["setting"].nunique()))
    return in_grid_order(turns.groupby("setting", sort=False).head(per), settings, "prompt"), per


def detecting_settings(points: pd.DataFrame) -> list[str]:
    """The settings of a sweep's points whose turns a VAD detects: all but the push-to-talk reference."""
    from vlab.metrics.detection import setting_points

    return [str(s) for s in setting_points(points)["setting"]]


def build_report(sweep_dir: str | os.PathLike[str], *, timeline_prompts: int = 3) -> Path:
    """Write ``report.html`` and ``report/*.png`` for a sweep folder.

    Args:
        sweep_dir: A folder written by :func:`vlab.sweep.run_sweep`.
        timeline_prompts: VAD timelines for this many prompts (those with holds first).

    Returns:
        The path of ``report.html``.

    Raises:
        ConfigError: ``sweep_dir`` is not a sweep folder, or no cell of it finished (the first error is named);
            ``timeline_prompts`` is not a count.
    """
    check_count("timeline_prompts", timeline_prompts, minimum=0)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vlab import plots
    from vlab.metrics import (
        POINT_FLAGS,
        POINT_MEASURES,
        canary_shift,
        cutoff_at_latency,
        latency_at_cutoff,
        summarize_latency,
    )
    from vlab.metrics.detection import played_noise
    from vlab.prompts import NOISE_ONLY, load_prompt_set, without_speech
    from vlab.sweep import grid_shape, in_grid_order
    from vlab.sweep.chart_names import pareto_labels, relabelled, shared_parts, short_names
    from vlab.sweep.summary import failed_cells

    folder = Path(sweep_dir)
    manifest = _require_sweep(folder)
    settings = grid_settings(manifest)
    turns, vad, points, scores = (_load(folder, n) for n in ("turns", "vad", "points", "scores"))
    _require_results(folder, points)
    out = folder / "report"
    out.mkdir(exist_ok=True)
    images: list[tuple[str, str, str]] = []  # (name, title, caption)

    def save(ax: Any, name: str, title: str, caption: str) -> None:
        fig = ax.figure
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")  # long setting names widen it
        plt.close(fig)
        images.append((name, title, caption))

    vad_only = manifest.get("mode") == "vad"  # decided without sessions: no turns to chart
    names = short_names([str(s) for s in points["setting"]])  # charts name what sets a setting apart
    shortened = [names.get(s, s) for s in settings]
    shared = shared_parts(list(names)) if any(names[s] != s for s in names) else ""
    speech_turns = spoken_turns(turns)
    with_tools = made_tool_calls(speech_turns)
    simulated = (
        "timeline" in speech_turns and len(speech_turns) and (speech_turns["timeline"] == "simulated").all()
    )
    if not vad_only:
        ok_turns = (
            speech_turns[~speech_turns["false_cutoff"].astype(bool)] if len(speech_turns) else speech_turns
        )
        sample, per = waterfall_turns(ok_turns, settings, max_turns=WATERFALL_TURNS)
        save(
            plots.waterfall(relabelled(sample, names), label=None, max_turns=WATERFALL_TURNS),
            "waterfall",
            "Turn waterfall",
            "Contiguous stages from the end of speech T_eos to the first reply audio: they sum to voice_to_voice_ms"
            + (
                " (to the answer's first audio, voice_to_answer_ms, for a turn answered through tool calls)"
                if with_tools
                else ""
            )
            + f". Up to {per} correctly ended turn{'s' if per > 1 else ''} per setting"
            + (
                f", of the first {WATERFALL_TURNS} settings"
                if len(sample) and sample["setting"].nunique() > WATERFALL_TURNS
                else ""
            )
            + ". A turn that ends while a reply is still under way "
            "(the answer to calls made on part of the sentence, say) gets its own once that one is done: its turn "
            "commit includes the wait. "
            + (
                "On the emulator's simulated timeline: the same at any replay speed and load."
                if simulated
                else "Client clock: when the sweep streams faster than real time (speed 'max') the audio leaves in a "
                "burst and these stages are compressed; use speed = 1 for real voice-to-voice."
            ),
        )
        save(
            plots.latency_distributions(
                relabelled(speech_turns, names), metric="dead_air_ms", order=shortened
            ),
            "latency_distributions",
            "Dead air per setting",
            "End of speech → first reply audio, with the end-of-turn wait on the audio clock (valid at any replay speed)."
            + (
                " A turn answered through tool calls counts to its answer's first audio."
                if with_tools
                else ""
            ),
        )
    if "voice_to_voice_ms" in speech_turns and speech_turns["voice_to_voice_ms"].notna().any():
        save(
            plots.latency_distributions(
                relabelled(speech_turns, names), metric="voice_to_voice_ms", order=shortened
            ),
            "voice_to_voice",
            "Voice-to-voice per setting",
            "On the emulator's simulated timeline: the same at any replay speed and load."
            if simulated
            else "Client clock; equals dead air only when the audio was streamed in real time.",
        )
    if with_tools:
        save(
            plots.latency_distributions(
                relabelled(speech_turns, names), metric="voice_to_answer_ms", order=shortened
            ),
            "voice_to_answer",
            "Voice-to-answer per setting",
            "End of speech → the first audio of the answer, through the tool calls the sweep answered "
            "([tools], [mcp]); a turn that called none counts its voice-to-voice. On the emulator's simulated "
            "timeline the same at any speed (a function takes its [tools] run_ms there, 0 when not given; an "
            "MCP call takes the emulator's drawn mcp_call delay).",
        )
    dead_air = "the end-of-turn wait on the audio clock (no replies)" if vad_only else "the median dead air"
    save(
        plots.pareto(pareto_labels(points)),
        "pareto",
        "Cut-off vs dead-air trade-off",
        "One point per setting: share of labelled turns cut off (a response inside the turn) against "
        f"{dead_air}. Grey bars: 95 % intervals (Wilson over the labelled turns for the cut-off rate, a "
        f"bootstrap over the {'runs' if vad_only else 'turns'} for the median); settings whose bars overlap "
        "may not differ, so add prompts (or, against Azure, repeats) before choosing between them.",
    )
    if played_noise(points):
        save(
            plots.noise_tradeoff(pareto_labels(points, x="false_starts_per_min", y="missed_turn_rate")),
            "noise_tradeoff",
            "False starts on noise vs missed turns",
            "One point per setting: the speech its VAD found in the noise-only prompts, per minute of them, "
            "against the share of labelled turns it never answered. A low threshold, or a suppressor that "
            "leaves speech-like residue, starts turns on noise; a high one misses quiet speech. Grey bars: 95 % "
            "intervals (Poisson over the minutes of noise, Wilson over the labelled turns): a few seconds of "
            "noise cannot tell settings apart; record a minute or more of the noise your users sit in.",
        )
    prompts = {p.id: p for p in load_prompt_set(_prompt_dir(manifest))}
    for prompt in prompts_to_chart(manifest, prompts.values(), scores, timeline_prompts):
        save(
            plots.vad_timeline(
                prompt, relabelled(vad, names), settings=[names.get(s, s) for s in detecting_settings(points)]
            ),
            f"vad_timeline_{prompt.id}",
            f"VAD timeline: {prompt.id}",
            "Server detections per setting against the labels (first repeat). A pale start: the server cut "
            "the padding short there (at the start of the audio, or at the end of the turn before), so the "
            "speech began somewhere in it.",
        )

    summary = (
        in_grid_order(
            summarize_latency(
                speech_turns, by=["setting"], metrics=latency_measures(speech_turns, endpointing=True)
            ),
            settings,
        )
        if len(speech_turns)
        else pd.DataFrame()
    )
    budgets = cutoff_at_latency(points, DEAD_AIR_BUDGETS_MS) if len(points) else {}
    rates = latency_at_cutoff(points, CUTOFF_BUDGETS) if len(points) else {}
    canary_html = ""
    if manifest.get("canary") and len(vad):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            shift = canary_shift(vad, prompt=manifest["canary"])
        canary_html = plots.summary_table(shift) + "".join(
            f'<p class="warn">{html.escape(str(w.message))}</p>' for w in caught
        )
    errors = [c for c in manifest.get("cells", []) if c.get("status") != "ok"]

    parts = [f"<!doctype html><meta charset='utf-8'><title>vlab sweep report</title><style>{_CSS}</style>"]
    parts.append(f"<h1>vlab sweep: {html.escape(folder.name)}</h1>")
    parts.append(
        "<p class='note'>"
        + html.escape(
            "".join(f"{part}; " for part in target_parts(manifest))
            + grid_shape(len(manifest.get("grid", [])), len(manifest.get("prompts", [])), manifest["repeats"])
            + f"; wall {manifest.get('wall_s')} s; vlab {manifest.get('versions', {}).get('vlab')}, "
            f"SDK {manifest.get('versions', {}).get('azure-ai-voicelive')}"
        )
        + "</p>"
    )
    if vad_only:
        parts.append(
            "<p class='note'>A VAD-only sweep (<code>mode = \"vad\"</code>): the emulator's VAD decided every "
            "cell without a session, so there are no latency charts, and dead air is the end-of-turn wait "
            "on the audio clock. The detections equal those of a session sweep on the emulator.</p>"
        )
    if errors:
        parts.append(
            f"<p class='warn'>{len(errors)} cell(s) failed: "
            + html.escape("; ".join(failed_cells([(e["cell"], str(e.get("error"))) for e in errors])))
            + f" (each one's error is in {html.escape(folder.name)}/cells/&lt;cell&gt;/cell.json)"
            + "</p>"
        )
    unreviewed = _unreviewed(manifest, prompts)
    if unreviewed:
        parts.append(
            f"<p class='warn'>Scored against unreviewed automatic labels: {len(unreviewed)} of "
            f"{len(manifest.get('prompts', []))} prompts ({html.escape(first_few(unreviewed, 8))}) have labels "
            "proposed by <code>vlab prompts label</code> "
            "that nobody has reviewed; their cut-off, hold and missed-turn figures are only as good as "
            "those proposals. Review them in the LabelEditor.</p>"
        )
    played = {entry.get("id") for entry in manifest.get("prompts", [])}
    unscored = [p.id for p in without_speech(p for p in prompts.values() if p.id in played)]
    if unscored:
        parts.append(
            f"<p class='warn'>No labelled speech in {len(unscored)} of {len(manifest.get('prompts', []))} "
            f"prompts ({html.escape(first_few(unscored, 8))}): the sweep scored nothing in them. A recording "
            "of noise alone counts its false starts once its category "
            f"is <code>{NOISE_ONLY}</code>.</p>"
        )
    parts.append("<h2>Operating points</h2>")
    if len(points):
        cols = [c for c in ("setting", *POINT_MEASURES, *POINT_FLAGS) if c in points]
        parts.append(plots.summary_table(points, cols))
        parts.append(
            "<p>"
            + html.escape(
                "Lowest cut-off rate within a dead-air budget: "
                + ", ".join(f"@{b:.0f} ms: {_pct(v)}" for b, v in budgets.items())
                + ". Lowest dead air within a cut-off rate: "
                + ", ".join(f"@{r * 100:.0f} %: {_ms(v)}" for r, v in rates.items())
            )
            + "</p>"
        )
        if "reference" in points and points["reference"].any():
            parts.append(
                "<p class='note'>push-to-talk is a reference, not a setting to choose: no turn detection, each "
                "labelled turn committed at its labelled end. Its dead air is what a perfect end-of-turn decision "
                "would leave, so a setting's dead air above it is what its endpointing adds. It is left out of "
                "the Pareto frontier and of the budgets above.</p>"
            )
    if shared and images:
        parts.append(
            "<p class='note'>The charts name each setting by what sets it apart; every one also has "
            f"<code>{html.escape(shared)}</code> (the tables give the whole names).</p>"
        )
    for name, title, caption in images:
        data = base64.b64encode((out / f"{name}.png").read_bytes()).decode("ascii")
        parts.append(f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(caption)}</p>")
        parts.append(f"<img alt='{name}' data-chart='{name}' src='data:image/png;base64,{data}'>")
    parts.append("<h2>Latency summary (bootstrap 95 % intervals; first turn separately)</h2>")
    if len(summary):
        parts.append(plots.summary_table(summary))
    if with_tools:
        parts.append(
            "<h2>Tool calls</h2><p class='note'>Turns whose response called a tool of the sweep's "
            "[tools] or [mcp], per setting, and the calls they made on the way to their answers (a chain of "
            "calls counts whole). A call at a cut-off was made on the words before a pause: the model acted on "
            "part of what the user meant to say.</p>" + plots.summary_table(tool_call_summary(speech_turns))
        )
    if canary_html:
        parts.append(
            f"<h2>Did the setting take effect? (canary {html.escape(manifest['canary'])})</h2>{canary_html}"
        )
    if len(scores):
        cols, note = score_columns(scores)
        parts.append(f"<h2>Per prompt and setting</h2><p class='note'>{note}</p>")
        parts.append(plots.summary_table(in_grid_order(scores, settings, "prompt", "run"), cols))
    path = folder / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def score_columns(scores: pd.DataFrame) -> tuple[list[str], str]:
    """The per-prompt table's columns that ``scores`` has (:data:`SCORE_COLUMNS`), and an HTML note on each."""
    cols = [c for c in SCORE_COLUMNS if c in scores]
    said = "; ".join(f"<code>{c}</code>: {html.escape(SCORE_COLUMNS[c])}" for c in cols if SCORE_COLUMNS[c])
    return cols, said + "."


def _without_answers(names: Sequence[str]) -> set[str]:
    """Setting names without their ``model=`` and ``voice=`` parts (:data:`vlab.sweep.grid.ANSWER_KEYS`)."""
    from vlab.sweep.grid import ANSWER_KEYS

    answers = tuple(f"{key}=" for key in ANSWER_KEYS)
    return {" ".join(part for part in name.split() if not part.startswith(answers)) for name in names}


def _models(manifest: dict[str, Any]) -> str | None:
    """The models a sweep's cells connected with, in the grid's order (None: a manifest of an earlier vlab)."""
    named = [g["model"] for g in manifest.get("grid", []) if g.get("model")]
    return ", ".join(dict.fromkeys(named)) or None


def target_parts(manifest: dict[str, Any]) -> list[str]:
    """What a sweep ran against, as the report's first line and the sweep panel's heading say it.

    ``["target: emulator", "model: gpt-realtime", "speed: max", "latency model: typical", ...]``: the
    target kinds, models, speed, the latency model that applied, the dialogue script and the session's
    instructions or tools (for a VAD-only sweep, the part that says so and the input audio its VAD heard).
    """
    from vlab.sweep.config import VAD_HEARD_SESSION_FIELDS
    from vlab.sweep.summary import session_note

    session = manifest.get("session") or {}
    if manifest.get("mode") == "vad":
        heard = {key: session[key] for key in VAD_HEARD_SESSION_FIELDS if key in session}
        return [
            "target: the emulator's VAD alone (no sessions)",
            *([f"session: {session_note(heard)}"] if heard else []),
        ]
    models = _models(manifest)
    return [
        f"target: {', '.join(manifest.get('target_kind', [])) or '?'}",
        *([f"model: {models}"] if models else []),
        f"speed: {_speed_part(manifest)}",
        *_latency_parts(manifest),
        *([f"dialogue script: {manifest['script']}"] if manifest.get("script") else []),
        *([f"session: {session_note(session)}"] if session else []),
    ]


def _speed_part(manifest: dict[str, Any]) -> str:
    """The sweep's ``[target] speed`` as its messages say it (``max``, ``1``, ``2.5``; ``?`` if unrecorded)."""
    try:
        return speed_label(parse_speed(manifest.get("speed", "?")))
    except ConfigError:
        return "?"


def _latency_parts(manifest: dict[str, Any]) -> list[str]:
    """The latency model a sweep's cells ran with: the embedded emulator's, a standalone one's own, or none.

    The sweep's ``[target] latency`` is what the embedded emulator ran with; a ``vlab emulator`` at an
    endpoint ran with its own, and Azure with none.
    """
    from vlab.sweep.cells import STANDALONE_EMULATOR

    kinds = manifest.get("target_kind", [])
    said = []
    if "emulator" in kinds or not kinds:  # no kind: a sweep of no finished cell says what it asked for
        said.append(f"latency model: {_latency_note(manifest)}")
    if STANDALONE_EMULATOR in kinds:
        said.append("latency model: the standalone emulator's own (vlab emulator --latency)")
    return said


def _latency_note(manifest: dict[str, Any]) -> str:
    """The emulator latency model a sweep used; a fitted one with its file and where its figures came from."""
    from vlab.emulator.latency import note

    model = manifest.get("latency_model") or {}
    if not model.get("file"):
        return str(model.get("name") or manifest.get("latency"))
    return note(model)


def _unreviewed(manifest: dict[str, Any], prompts: dict[str, Any]) -> list[str]:
    """Ids of the sweep's prompts whose labels are automatic proposals nobody reviewed (``auto``)."""
    out = []
    for entry in manifest.get("prompts", []):
        pid = entry.get("id")
        source = entry.get("label_source") or getattr(prompts.get(pid), "label_source", None)
        if source == "auto":
            out.append(str(pid))
    return out


def _prompt_dir(manifest: dict[str, Any]) -> Path | None:
    from vlab.prompts import MANIFEST_NAME

    files = [p.get("file") for p in manifest.get("prompts", []) if p.get("file")]
    if files:
        folder = Path(files[0]).parent
        while folder != folder.parent and not (folder / MANIFEST_NAME).is_file():
            folder = folder.parent
        if (folder / MANIFEST_NAME).is_file():
            return folder
    return None


def latency_measures(*turns: pd.DataFrame, endpointing: bool = False) -> list[str]:
    """The per-turn latencies a sweep's summary and comparison show, in order.

    Dead air, voice-to-voice, voice-to-answer when any of the ``turns`` tables made tool calls
    (:func:`made_tool_calls`), endpointing when asked for, turn commit and first audio.
    """
    with_tools = any(made_tool_calls(t) for t in turns)
    return [
        "dead_air_ms",
        "voice_to_voice_ms",
        *(["voice_to_answer_ms"] if with_tools else []),
        *(["endpointing_ms"] if endpointing else []),
        "turn_commit_ms",
        "ttfb_audio_ms",
    ]


def tool_call_summary(turns: pd.DataFrame) -> pd.DataFrame:
    """Per setting: the turns that called tools, those at a cut-off, those answered, and their voice-to-answer.

    Args:
        turns: A sweep's ``turns`` table (:meth:`vlab.sweep.SweepResult.turns`). The responses that answer
            a turn (a chain's later calls) count in that turn.

    Returns:
        One row per setting with calls: ``turns_with_calls``, ``calls`` (made through their chains),
        ``at_a_cutoff`` (the call was made on the words before a pause), ``answered`` (the answer was
        spoken) and ``voice_to_answer_p50_ms``.
    """
    calls = turns[turns["tool_calls"] > 0]
    if "answers_turn" in calls:
        calls = calls[calls["answers_turn"] < 0]
    rows = []
    for setting, group in calls.groupby("setting", sort=False):
        answer = group["voice_to_answer_ms"].astype(float)
        rows.append(
            {
                "setting": setting,
                "turns_with_calls": len(group),
                "calls": int(group.get("calls_to_answer", group["tool_calls"]).sum()),  # (older sweeps)
                "at_a_cutoff": int(group["false_cutoff"].astype(bool).sum()),
                "answered": int(answer.notna().sum()),
                "voice_to_answer_p50_ms": answer.median(),
            }
        )
    return pd.DataFrame(rows)


def _pct(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v * 100:.0f} %"


def _ms(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v:.0f} ms"


VERDICTS = ("better", "worse", "same", "n/a")
"""What :func:`compare_sweeps` says of each figure of B against A."""


def verdict_summary(table: pd.DataFrame) -> list[str]:
    """:func:`compare_sweeps`' table in a few lines: its verdicts counted, then what got better or worse.

    For example ``["16 settings: 0 better, 48 worse, 96 same, 0 n/a", "worse: dead_air_ms p50 in 16 of
    16 settings, …"]``: a grid of many settings compares in hundreds of rows.
    """
    from vlab.sweep.grid import counted

    counts = table["verdict"].value_counts()
    settings = table["setting"].nunique()
    lines = [f"{counted(settings, 'setting')}: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)]
    for verdict in ("better", "worse"):
        moved = table[table["verdict"] == verdict].groupby("measure", sort=False)["setting"].nunique()
        if len(moved):
            lines.append(
                f"{verdict}: " + ", ".join(f"{m} in {n} of {settings} settings" for m, n in moved.items())
            )
    return lines


def _verdict(
    measure: str, a: float, b: float, a_interval: tuple[float, float], b_interval: tuple[float, float]
) -> str:
    """The verdict on B against A: ``better`` or ``worse`` (lower is better), or ``same``, or ``n/a``.

    ``same`` when the 95 % intervals overlap or, without them, when nothing changed, and for latencies less
    than a millisecond apart (:func:`vlab.metrics.differ`); ``n/a`` when either side has no value.
    """
    from vlab.metrics import differ

    moved = differ(a, b, a_interval, b_interval, measure=measure)
    if moved is None:
        return "n/a"
    return "same" if not moved else "better" if b < a else "worse"


def _prompts_differ(manifest_a: dict[str, Any], manifest_b: dict[str, Any]) -> str | None:
    """What differs between the prompts two sweeps played, as a warning; None when they are the same.

    Figures of sweeps that played different prompts differ because of the prompts too, not only the setting.
    """
    ids_a, ids_b = ({p["id"] for p in m.get("prompts", [])} for m in (manifest_a, manifest_b))
    if ids_a == ids_b:
        return None
    only = [
        f"only in {name}: {', '.join(sorted(ids))}"
        for name, ids in (("A", ids_a - ids_b), ("B", ids_b - ids_a))
        if ids
    ]
    return (
        f"the two sweeps played different prompts ({'; '.join(only)}), so a figure can differ because of "
        "the prompts and not the setting: compare sweeps of the same prompts (the [prompts] table)"
    )


def ran_otherwise(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> list[str]:
    """What every setting of sweep ``b`` ran with that differs from ``a``'s, one line each.

    ``[session] instructions: A 'Be brief.', B 'Tell a story.'``; also the target (emulator or Azure), the
    model the cells connected with, and the embedded emulator's ``[target]`` latency model, ``hear_audio``
    and dialogue script. A comparison's figures move with these too, not only with the settings: ``vlab
    compare`` and the sweep panel say them before its verdicts. Empty when they ran alike.
    """
    from vlab.sweep.summary import session_value

    ma, mb = _require_sweep(Path(a)), _require_sweep(Path(b))
    sa, sb = (_with_audio(m.get("session") or {}) for m in (ma, mb))

    def kind(manifest: dict[str, Any]) -> str | None:
        return ", ".join(manifest.get("target_kind", [])) or None

    def said(session: dict[str, Any], key: str) -> str | None:
        return session_value(session[key]) if key in session else None

    rows: list[tuple[str, Any, Any]] = [("target", kind(ma), kind(mb))]
    models_a, models_b = _models(ma), _models(mb)
    if models_a and models_b:  # the settings' names say the model only when the grid sweeps it
        rows.append(("model", models_a, models_b))
    if any("emulator" in m.get("target_kind", ["emulator"]) for m in (ma, mb)):  # only it reads [target]
        rows += [(f"[target] {key}", ma.get(key), mb.get(key)) for key in ("latency", "hear_audio", "script")]
    rows += [(f"[session] {key}", said(sa, key), said(sb, key)) for key in dict.fromkeys([*sa, *sb])]

    def shown(value: Any) -> str:
        return "none" if value is None else json.dumps(value) if isinstance(value, bool) else str(value)

    return [f"{name}: A {shown(x)}, B {shown(y)}" for name, x, y in rows if x != y]


def _with_audio(session: dict[str, Any]) -> dict[str, Any]:
    """A sweep's ``[session]`` with the audio its cells sent and heard, said or not (default: PCM16, 24 kHz).

    So two sweeps that sent the same audio compare alike however they said it, and one that left it out shows
    the default, not "none".
    """
    from vlab.settings import SessionSettings
    from vlab.sweep.config import AUDIO_SESSION_FIELDS

    settings = SessionSettings(**{key: session[key] for key in AUDIO_SESSION_FIELDS if key in session})
    return {**session, **{key: getattr(settings, key) for key in AUDIO_SESSION_FIELDS}}


def _modes_differ(manifest_a: dict[str, Any], manifest_b: dict[str, Any]) -> str | None:
    """A warning when one sweep was decided by the VAD alone and the other by sessions; else None.

    A VAD-only sweep has no replies: no latency to compare, and its dead air ends where the VAD decided,
    not at a reply.
    """
    vad_only = [name for name, m in (("A", manifest_a), ("B", manifest_b)) if m.get("mode") == "vad"]
    if len(vad_only) != 1:
        return None
    return (
        f"{vad_only[0]} was decided by the VAD alone (mode = 'vad'), without sessions: it has no replies, so "
        "its latencies read n/a and its dead air ends where the VAD decided, not at a reply. Compare its "
        "cut-off, missed and detection rates only, or run both sweeps in the same mode"
    )


def compare_chart(a: str | os.PathLike[str], b: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Draw how each setting of both sweeps moved from A to B on the cut-off/dead-air plane, as a PNG.

    Returns:
        ``path`` (:func:`vlab.plots.pareto_shift`; the sweeps are named by their folders).
    """
    from matplotlib.figure import Figure

    from vlab import plots
    from vlab.sweep.chart_names import short_named

    out = chart_path(path)
    fa, fb = Path(a), Path(b)
    _require_sweep(fa)
    _require_sweep(fb)
    fig = Figure(figsize=(7, 5), layout="constrained")  # no pyplot: nothing global to close
    names = (f"A: {fa.resolve().name}", f"B: {fb.resolve().name}")
    (a_points, b_points), shared = short_named(_load(fa, "points"), _load(fb, "points"))
    plots.pareto_shift(a_points, b_points, labels=names, shared=shared, ax=fig.subplots())
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def chart_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file a chart can be written to: a format matplotlib writes, its folder created.

    Raises:
        ConfigError: A file name without such a format (``.png``, ``.svg``, ``.pdf`` …).
    """
    from matplotlib.figure import Figure

    out = Path(path)
    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in formats:
        raise ConfigError(
            f"cannot draw a chart into {str(out)!r}: give a file name ending in .png (or "
            + ", ".join(f".{f}" for f in sorted(formats) if f != "png")
            + ")"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def compare_sweeps(
    a: str | os.PathLike[str], b: str | os.PathLike[str], *, n_boot: int = RESAMPLES
) -> pd.DataFrame:
    """Per setting present in both sweeps: operating points and latency p50s of A and B, with B − A.

    Raises:
        ConfigError: Either is not a sweep folder or has no results, or no setting is in both (the message
            lists each one's).

    Returns:
        One row per setting and measure: ``a``, ``b``, ``delta``, the 95 % intervals of each side
        (``a_lo`` … ``b_hi``: a bootstrap one of each latency p50, the points' own for a rate that has
        one, :data:`vlab.metrics.POINT_INTERVALS`), and ``verdict`` (``better``, ``worse``, ``same`` —
        lower is better; "same" when the intervals overlap, or without them when nothing changed, and for
        latencies less than :data:`vlab.metrics.SAME_WITHIN_MS` apart;
        ``n/a`` when either side has no value).
    """
    from vlab.errors import warn_user
    from vlab.metrics import bootstrap_ci

    fa, fb = Path(a), Path(b)
    manifest_a, manifest_b = _require_sweep(fa), _require_sweep(fb)
    order = grid_settings(manifest_a)
    pa, pb = _load(fa, "points"), _load(fb, "points")
    _require_results(fa, pa)
    _require_results(fb, pb)
    same = f"{a} and {b} are the same sweep folder: every delta is 0; give another sweep's folder as B"
    for mismatch in (
        same if fa.resolve() == fb.resolve() else None,
        _prompts_differ(manifest_a, manifest_b),
        _modes_differ(manifest_a, manifest_b),
    ):
        if mismatch:
            warn_user(mismatch)  # only for sweeps that can be compared
    ta, tb = spoken_turns(_load(fa, "turns")), spoken_turns(_load(fb, "turns"))  # the user's waits
    rows = []
    # VAD-only sweeps answer nothing: their dead air is the points' (the end-of-turn wait on the audio clock)
    vad_only = manifest_a.get("mode") == manifest_b.get("mode") == "vad"
    waits = ["dead_air_ms"] if vad_only and all("dead_air_ms" in p for p in (pa, pb)) else []
    latencies = [] if vad_only else latency_measures(ta, tb)
    points = [  # not tokens, for a sweep from before vlab counted them
        m for m in COMPARED_POINTS if m in pa and m in pb and (pa[m].notna().any() or pb[m].notna().any())
    ]
    both = set(pa.get("setting", [])) & set(pb.get("setting", []))
    common = [s for s in order if s in both]  # in A's grid order, as its report shows them
    if not common:
        names_b = grid_settings(manifest_b)
        raise ConfigError(
            "no setting appears in both sweeps, so there is nothing to compare: "
            f"{a} has {', '.join(order) or 'none'}; {b} has {', '.join(names_b) or 'none'}. "
            + (
                "Their names differ by the model or voice that one grid sweeps and the other does not: to "
                "compare models or voices, list them all in one sweep's [grid] (model = [...], voice = [...])"
                if _without_answers(order) & _without_answers(names_b)
                else "Settings are matched by name: run the second sweep with the first one's grid "
                "(or add `baseline = true` under [run] to both)"
            )
        )
    for s in common:
        ra, rb = pa[pa["setting"] == s].iloc[0], pb[pb["setting"] == s].iloc[0]
        for m in [*points, *waits]:
            va, vb = float(ra[m]), float(rb[m])
            la, ha, lb, hb = (float(r.get(f"{m}_{end}", math.nan)) for r in (ra, rb) for end in ("lo", "hi"))
            rows.append(
                {
                    "setting": s,
                    "measure": f"{m} p50" if m == "dead_air_ms" else m,
                    "a": va,
                    "b": vb,
                    "delta": vb - va,
                    "a_lo": la,
                    "a_hi": ha,
                    "b_lo": lb,
                    "b_hi": hb,
                    "verdict": _verdict(m, va, vb, (la, ha), (lb, hb)),
                }
            )
        for m in latencies:
            xa = ta[(ta["setting"] == s)][m].astype(float) if m in ta else pd.Series(dtype=float)
            xb = tb[(tb["setting"] == s)][m].astype(float) if m in tb else pd.Series(dtype=float)
            ea, la, ha = bootstrap_ci(xa, 0.5, n_boot=n_boot)
            eb, lb, hb = bootstrap_ci(xb, 0.5, n_boot=n_boot)
            delta = eb - ea
            verdict = _verdict(m, ea, eb, (la, ha), (lb, hb))
            rows.append(
                {
                    "setting": s,
                    "measure": f"{m} p50",
                    "a": ea,
                    "b": eb,
                    "delta": delta,
                    "a_lo": la,
                    "a_hi": ha,
                    "b_lo": lb,
                    "b_hi": hb,
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(
        rows, columns=["setting", "measure", "a", "b", "delta", "a_lo", "a_hi", "b_lo", "b_hi", "verdict"]
    )
