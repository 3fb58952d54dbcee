"""``report.html`` and its charts for one sweep folder (``vlab report``).

``vlab report runs/NAME`` → ``runs/NAME/report.html``, which embeds its charts as PNG data; the PNG files
are written beside it, in ``runs/NAME/report/``.
"""

from __future__ import annotations

import base64
import html
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vlab.audio.pacing import parse_speed, speed_label
from vlab.errors import ConfigError, check_count, first_few
from vlab.metrics.latency import made_tool_calls, spoken_turns, waited_turns
from vlab.report.sweep_folder import (
    grid_models,
    grid_settings,
    latency_measures,
    load_table,
    require_results,
    require_sweep,
)

if TYPE_CHECKING:
    from vlab.prompts import LabelledPrompt

__all__ = [
    "CHARTS",
    "SCORE_COLUMNS",
    "build_report",
    "detecting_settings",
    "prompts_to_chart",
    "score_columns",
    "target_parts",
    "tool_call_summary",
    "waterfall_turns",
]


DEAD_AIR_BUDGETS_MS = (300.0, 600.0, 1000.0, 1500.0)
"""The dead-air budgets the report gives the lowest cut-off rate within: a reply within 1 s of the end of
speech is near what Voice Live's own latency allows, so 300 and 600 ms are often met by no setting."""
CUTOFF_BUDGETS = (0.05, 0.10, 0.20)
"""The cut-off rates the report gives the lowest dead air within."""
WATERFALL_TURNS = 24
"""The most turns a report's waterfall draws: every setting gets a share (:func:`waterfall_turns`)."""
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
    "false_starts": (
        "detections in a noise-only prompt; in a prompt with speech, the detections that overlap no labelled "
        "speech"
    ),
}
"""The columns of the report's per-prompt table, in order, and what each says (docs/sweeps.md says more)."""
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
    from vlab.metrics.tradeoff import setting_points

    return [str(s) for s in setting_points(points)["setting"]]


@dataclass(frozen=True)
class _Sweep:
    """What the report reads of a sweep folder, once: its manifest, tables and prompts."""

    folder: Path
    manifest: dict[str, Any]
    settings: list[str]
    """The grid's setting names, in order."""
    turns: pd.DataFrame
    """The turns the user spoke (:func:`vlab.metrics.spoken_turns`)."""
    vad: pd.DataFrame
    points: pd.DataFrame
    scores: pd.DataFrame
    prompts: dict[str, LabelledPrompt]
    names: dict[str, str]
    """Each setting's short name: what sets it apart (the charts' names)."""

    @property
    def vad_only(self) -> bool:
        """Decided by the emulator's VAD without sessions: no replies, so no turns to chart."""
        return self.manifest.get("mode") == "vad"

    @property
    def with_tools(self) -> bool:
        """Some turn was answered through tool calls."""
        return made_tool_calls(self.turns)

    @property
    def simulated(self) -> bool:
        """Every turn was timed on the emulator's simulated timeline."""
        turns = self.turns
        return bool("timeline" in turns and len(turns) and (turns["timeline"] == "simulated").all())


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
    from vlab.prompts import load_prompt_set
    from vlab.sweep.chart_names import short_names

    check_count("timeline_prompts", timeline_prompts, minimum=0)
    folder = Path(sweep_dir)
    manifest = require_sweep(folder)
    turns, vad, points, scores = (load_table(folder, n) for n in ("turns", "vad", "points", "scores"))
    require_results(folder, points)
    sweep = _Sweep(
        folder=folder,
        manifest=manifest,
        settings=grid_settings(manifest),
        turns=spoken_turns(turns),
        vad=vad,
        points=points,
        scores=scores,
        prompts={p.id: p for p in load_prompt_set(_prompt_dir(manifest))},
        names=short_names([str(s) for s in points["setting"]]),
    )
    out = folder / "report"
    out.mkdir(exist_ok=True)
    charts = _draw_charts(sweep, out, timeline_prompts)
    _remove_stale_charts(out, {name for name, _, _ in charts})
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>vlab sweep report</title><style>{_CSS}</style>",
        f"<h1>vlab sweep: {html.escape(folder.name)}</h1>",
        *_heading_html(sweep),
        *_points_html(sweep),
        *_charts_html(sweep, charts, out),
        *_tables_html(sweep),
    ]
    path = folder / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _remove_stale_charts(out: Path, drawn: set[str]) -> None:
    """Delete the charts an earlier report of the folder drew and this one did not (more timelines, say)."""
    for png in out.glob("*.png"):
        ours = png.stem in (*CHARTS, "noise_tradeoff") or png.stem.startswith("vad_timeline_")
        if ours and png.stem not in drawn:
            png.unlink()


def _draw_charts(sweep: _Sweep, out: Path, timeline_prompts: int) -> list[tuple[str, str, str]]:
    """Draw the report's charts into ``out`` as PNGs; each one's ``(name, title, caption)``, in order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts: list[tuple[str, str, str]] = []

    def save(ax: Any, name: str, title: str, caption: str) -> None:
        fig = ax.figure
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")  # long setting names widen it
        plt.close(fig)
        charts.append((name, title, caption))

    if not sweep.vad_only:
        _draw_turn_charts(sweep, save)
    _draw_latency_charts(sweep, save)
    _draw_tradeoff_charts(sweep, save)
    _draw_vad_timelines(sweep, save, timeline_prompts)
    return charts


_Save = Callable[[Any, str, str, str], None]
"""Saves a chart: its axes, then its file name, title and caption."""


def _draw_turn_charts(sweep: _Sweep, save: _Save) -> None:
    """The turn waterfall and the dead air per setting (a sweep of sessions)."""
    from vlab import plots
    from vlab.sweep.chart_names import relabelled

    names, turns = sweep.names, sweep.turns
    shortened = [names.get(s, s) for s in sweep.settings]
    with_tools, simulated = sweep.with_tools, sweep.simulated
    ok_turns = turns[~turns["false_cutoff"].astype(bool)] if len(turns) else turns
    sample, per = waterfall_turns(ok_turns, sweep.settings, max_turns=WATERFALL_TURNS)
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
        plots.latency_distributions(relabelled(turns, names), metric="dead_air_ms", order=shortened),
        "latency_distributions",
        "Dead air per setting",
        "End of speech → first reply audio, with the end-of-turn wait on the audio clock (valid at any replay speed)."
        + (" A turn answered through tool calls counts to its answer's first audio." if with_tools else ""),
    )


def _draw_latency_charts(sweep: _Sweep, save: _Save) -> None:
    """Voice-to-voice per setting, when the turns have it, and voice-to-answer with tool calls."""
    from vlab import plots
    from vlab.sweep.chart_names import relabelled

    names, turns = sweep.names, sweep.turns
    shortened = [names.get(s, s) for s in sweep.settings]
    with_tools, simulated = sweep.with_tools, sweep.simulated
    if "voice_to_voice_ms" in turns and turns["voice_to_voice_ms"].notna().any():
        save(
            plots.latency_distributions(
                relabelled(turns, names), metric="voice_to_voice_ms", order=shortened
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
                relabelled(turns, names), metric="voice_to_answer_ms", order=shortened
            ),
            "voice_to_answer",
            "Voice-to-answer per setting",
            "End of speech → the first audio of the answer, through the tool calls the sweep answered "
            "([tools], [mcp]); a turn that called none counts its voice-to-voice. On the emulator's simulated "
            "timeline the same at any speed (a function takes its [tools] run_ms there, 0 when not given; an "
            "MCP call takes the emulator's drawn mcp_call delay).",
        )


def _draw_tradeoff_charts(sweep: _Sweep, save: _Save) -> None:
    """The cut-off against dead-air trade-off, and false starts against missed turns when noise played."""
    from vlab import plots
    from vlab.metrics.tradeoff import played_noise
    from vlab.sweep.chart_names import pareto_labels

    points = sweep.points
    dead_air = (
        "the end-of-turn wait on the audio clock (no replies)" if sweep.vad_only else "the median dead air"
    )
    save(
        plots.pareto(pareto_labels(points)),
        "pareto",
        "Cut-off vs dead-air trade-off",
        "One point per setting: share of labelled turns cut off (a response inside the turn) against "
        f"{dead_air}. Grey bars: 95 % intervals (Wilson over the labelled turns for the cut-off rate, a "
        f"bootstrap over the {'runs' if sweep.vad_only else 'turns'} for the median); settings whose bars "
        "overlap may not differ, so add prompts (or, against Azure, repeats) before choosing between them.",
    )
    if played_noise(points):
        save(
            plots.noise_tradeoff(pareto_labels(points, x="false_starts_per_min", y="missed_turn_rate")),
            "noise_tradeoff",
            "False starts on noise vs missed turns",
            "One point per setting: the detections (starts of speech) its VAD made in the noise-only prompts, "
            "per minute of them, "
            "against the share of labelled turns it never answered. A low threshold, or a suppressor that "
            "leaves speech-like residue, starts turns on noise; a high one misses quiet speech. Grey bars: 95 % "
            "intervals (Poisson over the minutes of noise, Wilson over the labelled turns): a few seconds of "
            "noise cannot tell settings apart; record a minute or more of the noise your users sit in.",
        )


def _draw_vad_timelines(sweep: _Sweep, save: _Save, timeline_prompts: int) -> None:
    """The VAD timelines of up to ``timeline_prompts`` prompts (those with holds first)."""
    from vlab import plots
    from vlab.sweep.chart_names import relabelled

    names, points = sweep.names, sweep.points
    for prompt in prompts_to_chart(sweep.manifest, sweep.prompts.values(), sweep.scores, timeline_prompts):
        save(
            plots.vad_timeline(
                prompt,
                relabelled(sweep.vad, names),
                settings=[names.get(s, s) for s in detecting_settings(points)],
            ),
            f"vad_timeline_{prompt.id}",
            f"VAD timeline: {prompt.id}",
            "Server detections per setting against the labels (first repeat), each bar from its onset to its "
            "speech_stopped, so it runs on past the speech by the silence timer (the detection error rate "
            "scores it to audio_end_ms less that). A pale start: the server cut the padding short there (at "
            "the start of the audio, or at the end of the turn before), so the speech began somewhere in it.",
        )


def _heading_html(sweep: _Sweep) -> list[str]:
    """What the sweep ran against and its size, then failed cells, unreviewed labels and unscored prompts."""
    from vlab.prompts import NOISE_ONLY, without_speech
    from vlab.sweep import grid_shape
    from vlab.sweep.summary import failed_cells

    manifest, folder = sweep.manifest, sweep.folder
    played = manifest.get("prompts", [])
    parts = [
        "<p class='note'>"
        + html.escape(
            "".join(f"{part}; " for part in target_parts(manifest))
            + grid_shape(len(manifest.get("grid", [])), len(played), manifest["repeats"])
            + f"; wall {manifest.get('wall_s')} s{_kept(manifest)}; vlab {manifest.get('versions', {}).get('vlab')}, "
            f"SDK {manifest.get('versions', {}).get('azure-ai-voicelive')}"
        )
        + "</p>"
    ]
    if sweep.vad_only:
        parts.append(
            "<p class='note'>A VAD-only sweep (<code>mode = \"vad\"</code>): the emulator's VAD decided every "
            "cell without a session, so there are no latency charts, and dead air is the end-of-turn wait "
            "on the audio clock. The detections equal those of a session sweep on the emulator.</p>"
        )
    errors = [c for c in manifest.get("cells", []) if c.get("status") != "ok"]
    if errors:
        parts.append(
            f"<p class='warn'>{len(errors)} cell(s) failed: "
            + html.escape("; ".join(failed_cells([(e["cell"], str(e.get("error"))) for e in errors])))
            + f" (each one's error is in {html.escape(folder.name)}/cells/&lt;cell&gt;/cell.json)"
            + "</p>"
        )
    unreviewed = _unreviewed(manifest, sweep.prompts)
    if unreviewed:
        parts.append(
            f"<p class='warn'>Scored against unreviewed automatic labels: {len(unreviewed)} of "
            f"{len(played)} prompts ({html.escape(first_few(unreviewed, 8))}) have labels "
            "proposed by <code>vlab prompts label</code> "
            "that nobody has reviewed; their cut-off, hold and missed-turn figures are only as good as "
            "those proposals. Review them in the LabelEditor.</p>"
        )
    ids = {entry.get("id") for entry in played}
    unscored = [p.id for p in without_speech(p for p in sweep.prompts.values() if p.id in ids)]
    if unscored:
        parts.append(
            f"<p class='warn'>No labelled speech in {len(unscored)} of {len(played)} "
            f"prompts ({html.escape(first_few(unscored, 8))}): the sweep scored nothing in them. A recording "
            "of noise alone counts its false starts once its category "
            f"is <code>{NOISE_ONLY}</code>.</p>"
        )
    return parts


def _points_html(sweep: _Sweep) -> list[str]:
    """The operating points' table, and the best setting within each dead-air and cut-off budget."""
    from vlab import plots
    from vlab.metrics import POINT_FLAGS, POINT_MEASURES, cutoff_at_latency, latency_at_cutoff

    points = sweep.points
    parts = ["<h2>Operating points</h2>"]
    if not len(points):
        return parts
    budgets = cutoff_at_latency(points, DEAD_AIR_BUDGETS_MS)
    rates = latency_at_cutoff(points, CUTOFF_BUDGETS)
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
    return parts


def _charts_html(sweep: _Sweep, charts: list[tuple[str, str, str]], out: Path) -> list[str]:
    """Each chart of ``out`` embedded as PNG data, under its title and caption."""
    from vlab.sweep.chart_names import shared_parts

    names = sweep.names
    shared = shared_parts(list(names)) if any(names[s] != s for s in names) else ""
    parts = []
    if shared and charts:
        parts.append(
            "<p class='note'>The charts name each setting by what sets it apart; every one also has "
            f"<code>{html.escape(shared)}</code> (the tables give the whole names).</p>"
        )
    for name, title, caption in charts:
        data = base64.b64encode((out / f"{name}.png").read_bytes()).decode("ascii")
        parts.append(f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(caption)}</p>")
        parts.append(f"<img alt='{name}' data-chart='{name}' src='data:image/png;base64,{data}'>")
    return parts


def _tables_html(sweep: _Sweep) -> list[str]:
    """The latency summary, the tool calls, the canary check and the per-prompt scores."""
    from vlab import plots
    from vlab.metrics import canary_shift, summarize_latency
    from vlab.sweep import in_grid_order

    turns, manifest = sweep.turns, sweep.manifest
    parts = ["<h2>Latency summary (turns not cut off; bootstrap 95 % intervals; first turn separately)</h2>"]
    if len(turns):
        measures = latency_measures(turns, endpointing=True)
        waited = waited_turns(turns)  # each stage's row then counts the turns voice_to_voice_ms's does
        summary = in_grid_order(summarize_latency(waited, by=["setting"], metrics=measures), sweep.settings)
        if len(summary):
            parts.append(plots.summary_table(summary))
    if sweep.with_tools:
        parts.append(
            "<h2>Tool calls</h2><p class='note'>Turns whose response called a tool of the sweep's "
            "[tools] or [mcp], per setting, and the calls they made on the way to their answers (a chain of "
            "calls counts whole). A call at a cut-off was made on the words before a pause: the model acted on "
            "part of what the user meant to say.</p>" + plots.summary_table(tool_call_summary(turns))
        )
    if manifest.get("canary") and len(sweep.vad):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            shift = canary_shift(sweep.vad, prompt=manifest["canary"])
        parts.append(
            f"<h2>Did the setting take effect? (canary {html.escape(manifest['canary'])})</h2>"
            + plots.summary_table(shift)
            + "".join(f'<p class="warn">{html.escape(str(w.message))}</p>' for w in caught)
        )
    if len(sweep.scores):
        cols, note = score_columns(sweep.scores)
        parts.append(f"<h2>Per prompt and setting</h2><p class='note'>{note}</p>")
        parts.append(plots.summary_table(in_grid_order(sweep.scores, sweep.settings, "prompt", "run"), cols))
    return parts


def score_columns(scores: pd.DataFrame) -> tuple[list[str], str]:
    """The per-prompt table's columns that ``scores`` has (:data:`SCORE_COLUMNS`), and an HTML note on each."""
    cols = [c for c in SCORE_COLUMNS if c in scores]
    said = "; ".join(f"<code>{c}</code>: {html.escape(SCORE_COLUMNS[c])}" for c in cols if SCORE_COLUMNS[c])
    return cols, said + "."


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
    models = grid_models(manifest)
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


def _kept(manifest: Mapping[str, Any]) -> str:
    """What the wall time leaves out: the cells a resumed sweep kept from its earlier runs."""
    from vlab.sweep.grid import counted

    kept = manifest.get("kept") or 0
    return f" (its last run; {counted(kept, 'cell')} kept from before)" if kept else ""
