"""The sweep panel: pick prompts and a grid of turn-detection settings, run the sweep, see its charts.

The sweep runs with :func:`vlab.sweep.run_sweep_async` as a task on the kernel's loop (the notebook stays
responsive); a progress bar counts the finished cells. When it ends, or when a finished sweep folder is
opened, the panel shows the operating points, the Pareto chart, the dead-air distributions, a turn
waterfall, a VAD timeline and the latency summary, all from the sweep folder's parquet files.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from vlab import protocol_limits
from vlab.audio.pacing import MAX_SPEED, parse_speed, speed_text
from vlab.errors import ConfigError, check_count, check_seconds
from vlab.log.files import new_run_dir
from vlab.prompts import NOISE_ONLY
from vlab.sweep.chart_names import pareto_labels, relabelled, short_named, short_names
from vlab.widgets._audio_formats import audio_format_dropdown, audio_format_fields
from vlab.widgets._tasks import guarded, start_task

TURN_TYPES = {"server_vad": "Server VAD", "azure_semantic_vad": "Azure semantic VAD"}
SPEEDS = [
    ("as fast as possible", MAX_SPEED),
    ("real time (1×)", 1.0),
    ("2×", 2.0),
    ("4×", 4.0),
    ("10×", 10.0),
]
NO_CANARY = "(none)"


_SIDE_BY_SIDE = ("pareto", "noise_tradeoff", "latency_distributions", "voice_to_answer")
"""The panel's charts drawn half wide, in a row that wraps."""


def figure_png(draw: Callable[[Any], Any], size: tuple[float, float], *, dpi: int = 100) -> bytes:
    """Draw on a fresh matplotlib Axes (no pyplot, no global state) and return the figure as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig.subplots())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")  # nothing cut off: long names widen it
    return buf.getvalue()


def parse_values(text: str, kind: type, what: str) -> list[Any]:
    """``"0.5, 0.7"`` → ``[0.5, 0.7]`` (``kind`` int or float); ConfigError names the field when it is not."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise ConfigError(
            f"{what}: give at least one value (several separated by commas, e.g. 300, 500, 800)"
        )
    out: list[float] = []
    for p in parts:
        try:
            value = float(p)
            if not math.isfinite(value):  # 'nan' and 'inf' read as floats, and failed later as a traceback
                raise ValueError(p)
        except ValueError:
            raise ConfigError(
                f"{what}: {p.strip()!r} is not a number (write values separated by commas, e.g. 300, 500)"
            ) from None
        if kind is int:
            if value != int(value):
                raise ConfigError(f"{what}: {p.strip()!r} must be a whole number of milliseconds")
            out.append(int(value))
        else:
            out.append(value)
    return out


def _names(text: str) -> list[str]:
    """``"alloy, echo"`` → ``["alloy", "echo"]``: the names a text field lists, separated by commas."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    from vlab.plots import summary_table

    cols = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    return (
        "<style>.vlab-table{border-collapse:collapse;font-size:12px}.vlab-table td,.vlab-table th"
        "{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}.vlab-table th{background:#f4f4f4}"
        ".vlab-table td:first-child{white-space:nowrap}</style>"
        + summary_table(frame, cols, classes="vlab-table")
    )


_FIRST_PROMPTS = ("short_question", "pause_600")
"""The prompts a new panel selects, where its prompt folder holds them."""


class SweepPanel:
    """Pick prompts and a settings grid, Run/Stop a sweep with a progress bar, then see its charts and tables.

    Each Run writes a new sweep folder under ``runs_dir`` (or the folder typed in *Folder*, where
    finished cells are kept: running again resumes). *Open* shows any finished sweep folder. Display it
    with ``panel`` as the last expression of a cell.

    Args:
        runs_dir: Parent folder of new sweep folders.
        prompt_dir: A prompt folder with ``manifest.json`` (default: the bundled ``data/prompts``).
        prompts: Prompt ids or categories selected at first (default: ``short_question`` and ``pause_600``
            where the prompt folder has them, else its first prompt).
        speed: Initial audio pacing and emulator speed (``math.inf`` or ``"max"``: as fast as possible).
        concurrency: Cells running at once (default: a sweep config's, :data:`vlab.sweep.CONFIG_DEFAULTS`).
        session_options: Passed to every :class:`vlab.Session` (e.g. ``{"dotenv_path": False}``).
        timeout_s: Per-cell limit to wait for the answers (default: a sweep config's).

    After a run or an *Open*, ``manifest``, ``points``, ``turns``, ``vad`` and ``scores`` hold the
    sweep's tables, ``charts`` the PNG images by name and ``sweep_dir`` the folder.

    Raises:
        ConfigError: A prompt the folder does not hold, a ``concurrency`` below 1 or a ``timeout_s`` not > 0.
    """

    def __init__(
        self,
        *,
        runs_dir: str | Path = "runs",
        prompt_dir: str | Path | None = None,
        prompts: str | tuple[str, ...] | list[str] | None = None,
        speed: float | str = "max",
        concurrency: int | None = None,
        session_options: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        from vlab.prompts import load_prompt_set, select_prompts
        from vlab.sweep import CONFIG_DEFAULTS

        if concurrency is not None:
            check_count("concurrency", concurrency)
        if timeout_s is not None:
            check_seconds("timeout_s", timeout_s)
        self.runs_dir = Path(runs_dir)
        self.prompt_dir = Path(prompt_dir) if prompt_dir is not None else None
        self.prompt_set = load_prompt_set(self.prompt_dir)
        if prompts is None:  # the defaults, where the folder has them
            prompts = tuple(p.id for p in self.prompt_set if p.id in _FIRST_PROMPTS)
        else:  # ids or categories, each of which must be there
            prompts = tuple(p.id for p in select_prompts(self.prompt_set, prompts))
        self.concurrency = CONFIG_DEFAULTS["concurrency"] if concurrency is None else concurrency
        self.session_options = dict(session_options or {})
        self.timeout_s = CONFIG_DEFAULTS["timeout_s"] if timeout_s is None else timeout_s
        self.task: asyncio.Task[Any] | None = None
        self.result: Any = None
        self.sweep_dir: Path | None = None
        self.manifest: dict[str, Any] = {}
        self.points = self.turns = self.vad = self.scores = pd.DataFrame()
        self.summary = pd.DataFrame()
        self.charts: dict[str, widgets.Image] = {}
        self.comparison = pd.DataFrame()
        self._stopping = False
        self._build(prompts, speed)

    # --- layout ------------------------------------------------------------------------------------

    def _build(self, prompts: tuple[str, ...] | list[str], speed: float | str) -> None:
        style = {"description_width": "150px"}
        wide = widgets.Layout(width="460px")
        line = widgets.Layout(width="auto")  # a checkbox whose description is a sentence: shown whole
        self._build_grid_fields(prompts, style, wide, line)
        self._build_session_fields(speed, style, wide, line)
        self._build_run_controls(style, wide)
        form = widgets.VBox([
            self.prompts, self.turn_type, self.thresholds, self.silences, self.paddings, self.eou,
            self.eou_timeouts, self.repeats, self.instructions, self.voice, self.models, self.audio_format,
            self.speed, self.latency, self.baseline, self.push_to_talk, self.canary, self.vad_only, self.folder,
            self.target,
            widgets.HBox([self.run_button, self.stop_button, self.progress]), self.status,
            widgets.HBox([self.open_path, self.open_button]),
            widgets.HBox([self.compare_path, self.compare_button]),
        ])  # fmt: skip
        self.widget = widgets.VBox([form, self.output, self.comparison_box, self.results])
        self._wire()

    def _build_grid_fields(
        self,
        prompts: tuple[str, ...] | list[str],
        style: dict[str, str],
        wide: widgets.Layout,
        line: widgets.Layout,
    ) -> None:
        """The prompts, the turn detection and the values the grid crosses, and the repeats."""
        from vlab.sweep import BASELINE, CONFIG_DEFAULTS

        options = [(f"{p.id}  ({p.category}, {p.duration_ms / 1000:.1f} s)", p.id) for p in self.prompt_set]
        chosen = tuple(prompts) or tuple(p.id for p in self.prompt_set[:1])  # ids of the set (__init__)
        self.prompts = widgets.SelectMultiple(
            options=options, value=chosen, rows=min(8, max(3, len(options))), description="Prompts",
            style=style, layout=wide,
        )  # fmt: skip
        self.turn_type = widgets.Dropdown(
            options=[(v, k) for k, v in TURN_TYPES.items()] + [("Both, to compare", tuple(TURN_TYPES))],
            value="server_vad",
            description="Turn detection",
            style=style,
        )

        def values(value: object, description: str, example: str) -> widgets.Text:
            """A field of comma-separated values to cross in the grid."""
            return widgets.Text(
                value=str(value),
                description=description,
                placeholder=f"e.g. {example}",
                style=style,
                layout=wide,
            )

        self.thresholds = values(f"{BASELINE.threshold:g}", "Thresholds", "0.4, 0.5, 0.6")
        self.silences = values("300, 800", "Silence ms", "300, 500, 800")
        self.paddings = values(BASELINE.prefix_padding_ms, "Prefix padding ms", "300")
        self.eou = widgets.Checkbox(
            value=False,
            description="Compare with end-of-utterance detection (each setting without it, then with it)",
            layout=line,
        )
        self.eou_timeouts = values(protocol_limits.EOU_TIMEOUT_MS, "EOU timeout ms", "600, 1200")
        self.eou_timeouts.disabled = True  # until the comparison is asked for
        self.repeats = widgets.BoundedIntText(
            value=CONFIG_DEFAULTS["repeats"], min=1, max=50, description="Repeats", style=style
        )

    def _build_session_fields(
        self, speed: float | str, style: dict[str, str], wide: widgets.Layout, line: widgets.Layout
    ) -> None:
        """What every setting's session sends alike, the pacing and the emulator, and the reference cells."""
        from vlab.emulator.latency import PRESETS
        from vlab.settings import VOICE_EXAMPLES
        from vlab.sweep import BASELINE, CONFIG_DEFAULTS

        self.instructions = widgets.Textarea(
            value="",
            description="Instructions",
            placeholder="empty: the service's own; every setting sends them alike (a reply's length follows them)",
            style=style,
            layout=wide,
        )
        self.voice = widgets.Combobox(
            value="", placeholder="service default; several, separated by commas, to compare them",
            options=list(VOICE_EXAMPLES), description="Voice",
            style=style, layout=wide,
        )  # fmt: skip
        self.models = widgets.Text(
            value="", placeholder="the target's (AZURE_VOICELIVE_MODEL); several, separated by commas, to compare them",
            description="Models", style=style, layout=wide,
        )  # fmt: skip
        self.audio_format = audio_format_dropdown(style, wide)
        speed_value = speed_text(parse_speed(speed))
        speeds = list(SPEEDS)
        if speed_value not in [v for _, v in speeds]:
            speeds.append((f"{speed_value:g}×", speed_value))
        self.speed = widgets.Dropdown(
            options=speeds,
            value=speed_value,
            description="Speed",
            style=style,
            layout=widgets.Layout(width="330px"),  # "as fast as possible" whole
        )
        self.latency = widgets.Dropdown(
            options=sorted(PRESETS),
            value=CONFIG_DEFAULTS["latency"],
            description="Emulator latency",
            style=style,
        )
        self.baseline = widgets.Checkbox(
            value=False,
            description=f"Add the baseline ({BASELINE.threshold:g} / {BASELINE.prefix_padding_ms} / "
            f"{BASELINE.silence_duration_ms})",
            layout=wide,
        )
        self.push_to_talk = widgets.Checkbox(
            value=False,
            description="Add push-to-talk as a reference (each turn committed at its labelled end)",
            layout=line,
        )
        self.canary = widgets.Dropdown(
            options=[NO_CANARY], value=NO_CANARY, description="Canary prompt", style=style
        )
        self.vad_only = widgets.Checkbox(
            value=False,
            description="VAD only: the emulator's VAD decides each cell, no sessions (no latency)",
            layout=line,
        )

    def _build_run_controls(self, style: dict[str, str], wide: widgets.Layout) -> None:
        """The sweep's folder, the target, run and stop, progress, and opening and comparing finished sweeps."""

        def folder(description: str, placeholder: str) -> widgets.Text:
            """A field for the path of a sweep folder."""
            return widgets.Text(
                value="", description=description, placeholder=placeholder, style=style, layout=wide
            )

        self.folder = folder("Folder", "empty: a new runs/sweep-<time> folder")
        self.target = widgets.HTML("")
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, description="Cells", style={"description_width": "50px"}
        )
        self.status = widgets.HTML("<b>Status:</b> <i>idle</i>")
        self.open_path = folder("Open a finished sweep", "runs/sweep-…")
        self.open_button = widgets.Button(description="Open", icon="folder-open")
        self.compare_path = folder("Compare it with", "another sweep folder (B)")
        self.compare_button = widgets.Button(description="Compare", icon="exchange")
        self.comparison_box = widgets.VBox([])
        self.results = widgets.VBox([])
        self.output = widgets.Output()

    def _wire(self) -> None:
        """Each control's handler (errors shown in the panel's output), then the canary's and target's lines."""
        self.prompts.observe(
            guarded(self.output, "Choosing prompts")(lambda _: self._sync_canary()), names="value"
        )
        self.speed.observe(
            guarded(self.output, "Changing the speed")(lambda _: self._describe_target()), names="value"
        )
        self.eou.observe(
            lambda change: setattr(self.eou_timeouts, "disabled", not change["new"]), names="value"
        )
        self.run_button.on_click(guarded(self.output, "Run")(lambda _: self.run()))
        self.stop_button.on_click(guarded(self.output, "Stop")(lambda _: self.stop()))
        self.open_button.on_click(
            guarded(self.output, "Opening the sweep")(lambda _: self.load(self.open_path.value))
        )
        self.compare_button.on_click(
            guarded(self.output, "Comparing the sweeps")(lambda _: self.compare(self.compare_path.value))
        )
        self._sync_canary()
        guarded(self.output, "Finding the target")(self._describe_target)()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"SweepPanel(prompts={list(self.prompts.value)!r}, running={self.running}, sweep_dir={self.sweep_dir})"

    def _sync_canary(self) -> None:
        selected = list(self.prompts.value)
        keep = self.canary.value if self.canary.value in selected else None
        if keep is None:
            singles = [
                p.id
                for p in self.prompt_set
                if p.id in selected and p.expected_turns == 1 and not p.hold_spans
            ]
            keep = singles[0] if singles else NO_CANARY
        self.canary.options = [NO_CANARY, *selected]
        self.canary.value = keep

    def _describe_target(self) -> None:
        from vlab.endpoint import resolve_target

        kwargs = {
            k: v
            for k, v in self.session_options.items()
            if k in ("endpoint", "api_key", "model", "dotenv_path")
        }
        target = resolve_target(**kwargs)
        where = html.escape(target.describe())
        note = "" if target.kind == "emulator" else " (Speed paces the audio; use real time for Azure)"
        self.target.value = f"<span style='font-size:12px'>Target: {where}{note}</span>"

    # --- the sweep ------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The sweep config the form describes (the dict form of a sweep TOML; see :mod:`vlab.sweep`)."""
        from vlab.sweep import EOU_OFF

        if not self.prompts.value:
            raise ConfigError("Select at least one prompt (Ctrl/Shift-click to pick several).")
        grid: dict[str, Any] = {
            "type": list(kind) if isinstance(kind := self.turn_type.value, tuple) else kind,
            "threshold": parse_values(self.thresholds.value, float, "Thresholds"),
            "silence_duration_ms": parse_values(self.silences.value, int, "Silence ms"),
            "prefix_padding_ms": parse_values(self.paddings.value, int, "Prefix padding ms"),
        }
        voices = _names(self.voice.value)
        if len(voices) > 1:  # voices to compare: a grid axis; one voice: every setting's, in [session]
            grid["voice"] = voices
        models = _names(self.models.value)
        if models:  # what each setting's connection asks for, even one (not the environment's)
            grid["model"] = models
        if self.eou.value:
            grid["eou_model"] = [EOU_OFF, protocol_limits.EOU_MODELS[0]]
            grid["eou_timeout_ms"] = parse_values(self.eou_timeouts.value, int, "EOU timeout ms")
        run: dict[str, Any] = {
            "repeats": int(self.repeats.value),
            "concurrency": self.concurrency,
            "timeout_s": self.timeout_s,
            "baseline": bool(self.baseline.value),
        }
        if self.canary.value != NO_CANARY:
            run["canary"] = self.canary.value
        if self.push_to_talk.value:
            run["push_to_talk"] = True
        if self.vad_only.value:  # deterministic: one decision per prompt and setting
            run.update(mode="vad", repeats=1)
        prompts: dict[str, Any] = {"include": list(self.prompts.value)}
        if self.prompt_dir is not None:
            prompts["path"] = str(self.prompt_dir.resolve())
        config = {
            "target": {"speed": self.speed.value, "latency": self.latency.value},
            "prompts": prompts,
            "grid": grid,
            "run": run,
        }
        session = {"instructions": self.instructions.value.strip()} if self.instructions.value.strip() else {}
        if len(voices) == 1:
            session["voice"] = voices[0]
        session.update(audio_format_fields(self.audio_format.value))
        return {**config, "session": session} if session else config

    @property
    def running(self) -> bool:
        """Whether a sweep is running."""
        return self.task is not None and not self.task.done()

    def run(self) -> asyncio.Task[Any] | None:
        """Validate the form and start the sweep as a task (returns it; ConfigError for a bad grid)."""
        from vlab.sweep import grid_shape, load_config, sweep_warnings
        from vlab.sweep.grid import counted

        if self.running:
            return self.task
        cfg = load_config(self.config())
        typed = self.folder.value.strip()
        out = Path(typed) if typed else new_run_dir("sweep", self.runs_dir)
        _check_resumable(out, cfg, self.session_options)
        self.sweep_dir = out
        self.result = None
        self.progress.max, self.progress.value = cfg.n_cells, 0
        self.progress.bar_style = ""
        self.run_button.disabled, self.stop_button.disabled = True, False
        self._set_status(
            f"running {counted(cfg.n_cells, 'cell')} ({grid_shape(len(cfg.settings), len(cfg.prompts), cfg.repeats)}) "
            f"into <code>{html.escape(str(out))}</code>…"
        )
        for message in sweep_warnings(cfg, self.session_options):  # here, not in the notebook's log
            self.output.append_display_data(
                widgets.HTML(f"<p style='color:#b00020'>{html.escape(message)}</p>")
            )
        self.task = start_task(
            lambda: self._run(cfg, out), self.output, what="The sweep", on_done=self._finished
        )
        return self.task

    def stop(self) -> None:
        """Stop the running sweep (finished cells stay; Run with the same folder resumes)."""
        if self.running and self.task is not None:
            self._stopping = True
            self.task.cancel()
            self._set_status("stopping…")

    async def _run(self, cfg: Any, out: Path) -> None:
        from vlab.sweep import run_sweep_async
        from vlab.sweep.summary import failed_cells

        names = _cell_names(cfg)
        started = time.time()
        poller = asyncio.get_running_loop().create_task(self._poll(out, names, started))
        try:
            result = await run_sweep_async(
                cfg, out, progress=False, session_options=self.session_options, warn_first=False
            )
        finally:
            poller.cancel()
            self.progress.value = _cells_done(out, names, started)
        self.result = result
        if cfg.mode == "vad":  # decided in one go: no cell folders to count
            self.progress.value = sum(c.status == "ok" for c in result.cells)
        failed = result.failures()
        if failed:
            shown = "".join(f"<li>{html.escape(line)}</li>" for line in failed_cells(failed))
            self.output.append_display_data(
                widgets.HTML(
                    f"<div style='color:#b00020'><b>{len(failed)} of {len(result.cells)} cells failed</b> "
                    f"(the sweep went on; their errors are in each <code>cell.json</code>):<ul>{shown}</ul></div>"
                )
            )
        self.load(out)

    async def _poll(self, out: Path, names: list[str], started: float) -> None:
        while True:
            self.progress.value = _cells_done(out, names, started)
            await asyncio.sleep(0.2)

    def _finished(self) -> None:
        self.run_button.disabled, self.stop_button.disabled = False, True
        where = html.escape(str(self.sweep_dir))
        if self._stopping:
            self.folder.value = str(self.sweep_dir)
            self._set_status(
                f"stopped after {self.progress.value} of {self.progress.max} cells — press <b>Run</b> to resume "
                f"into <code>{where}</code> (or clear <b>Folder</b> for a new sweep)"
            )
            self.progress.bar_style = "warning"
        elif self.result is not None and self.task is not None and not self.task.cancelled():
            ok = sum(c.status in ("ok", "skipped") for c in self.result.cells)
            self._set_status(
                f"finished: {ok} of {len(self.result.cells)} cells ok in {self.result.wall_s:.1f} s — <code>{where}</code>"
            )
            self.progress.bar_style = "success" if ok == len(self.result.cells) else "warning"
        else:
            self._set_status("failed — see the message below")
            self.progress.bar_style = "danger"
        self._stopping = False

    def _set_status(self, text: str) -> None:
        self.status.value = f"<b>Status:</b> {text}"

    # --- results ------------------------------------------------------------------------------------

    def load(self, sweep_dir: str | Path) -> None:
        """Show a finished sweep folder's charts and tables (ConfigError when it is not a sweep folder)."""
        from vlab.sweep.store import SWEEP_MANIFEST, not_a_sweep

        text = str(sweep_dir).strip()
        if not text:
            raise ConfigError("Type the path of a sweep folder (the one that holds manifest.json) first.")
        folder = Path(text).expanduser()
        if folder.is_file():  # its manifest.json, say: the message names the folder to give
            raise ConfigError(str(not_a_sweep(folder)))
        if not folder.is_dir():
            raise ConfigError(f"no folder {text!r} (relative paths start at {str(Path.cwd())!r})")
        manifest_path = folder / SWEEP_MANIFEST
        if not manifest_path.is_file():
            raise ConfigError(
                f"{text!r} is not a finished sweep folder (no manifest.json); a stopped sweep resumes with "
                "Run and that folder in Folder"
            )
        problem = not_a_sweep(folder)  # a prompt folder's manifest.json, say; checked before anything changes
        if problem is not None:
            raise ConfigError(problem)
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.points, self.turns, self.vad, self.scores = (
            _read(folder, n) for n in ("points", "turns", "vad", "scores")
        )
        self.sweep_dir = folder
        self.comparison_box.children = []  # a comparison of the sweep shown before
        self.results.children = self._render(folder)
        if not self.running:
            self._set_status(f"showing <code>{html.escape(str(folder))}</code>")

    def compare(self, other: str | Path) -> None:
        """Compare the sweep shown (A) with the sweep folder ``other`` (B), as ``vlab compare`` does.

        Shows each setting's verdicts (kept as :attr:`comparison`) and a chart of how it moved on the
        cut-off/dead-air plane from A to B.

        Raises:
            ConfigError: No finished sweep is shown, ``other`` is not a sweep folder, or no setting is in both.
        """
        import warnings

        from vlab import plots
        from vlab.errors import VlabWarning
        from vlab.report import compare_sweeps, ran_otherwise, verdict_summary

        if self.sweep_dir is None or not self.manifest:
            raise ConfigError(
                "Open a finished sweep first (A); then compare it with another sweep folder (B)."
            )
        text = str(other).strip()
        if not text:
            raise ConfigError("Type the path of the sweep folder to compare with (B) first.")
        folder = Path(text).expanduser()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VlabWarning)  # shown in the panel instead
            table = compare_sweeps(self.sweep_dir, folder)  # as vlab compare: the same intervals and verdicts
        self.comparison = table
        note = "".join(
            f"<p style='color:#b00020'>{html.escape(str(w.message))}</p>"
            for w in caught
            if issubclass(w.category, VlabWarning)
        )
        labels = (f"A: {self.sweep_dir.name}", f"B: {folder.name}")
        (a, b), shared = short_named(self.points, _read(folder, "points"))
        chart = figure_png(
            lambda ax: plots.pareto_shift(a, b, labels=labels, shared=shared, ax=ax), (6.4, 4.6)
        )
        self.comparison_box.children = [
            widgets.HTML(
                f"<h3 style='margin:8px 0'>{html.escape(labels[0])} against {html.escape(labels[1])}</h3>"
                "<div style='font-size:12px;color:#555'>B − A per setting and measure (lower is better, 'same' "
                "while the 95 % intervals overlap): "
                + "<br>".join(html.escape(line) for line in verdict_summary(table))
                + "".join(
                    f"<br>A and B differ besides their settings: {html.escape(line)}"
                    for line in ran_otherwise(self.sweep_dir, folder)
                )
                + "</div>"
                + note
            ),
            widgets.Image(value=chart, format="png", layout=widgets.Layout(width="49%", min_width="420px")),
            widgets.HTML(
                "<details><summary><b>Every measure</b></summary>"
                + _table(table, ["setting", "measure", "a", "b", "delta", "verdict"])
                + "</details>"
            ),
        ]
        self._set_status(f"comparing <code>{html.escape(str(self.sweep_dir))}</code> with "
                         f"<code>{html.escape(str(folder))}</code>")  # fmt: skip

    def _render(self, folder: Path) -> list[widgets.Widget]:
        from vlab.metrics import POINT_FLAGS, POINT_MEASURES, spoken_turns
        from vlab.report import grid_settings
        from vlab.report.build import target_parts
        from vlab.sweep import grid_shape, in_grid_order
        from vlab.sweep.store import no_results_message

        m = self.manifest
        counts = m.get("counts", {})
        vad_only = m.get("mode") == "vad"  # decided without sessions: no turns, no latency
        head = (
            f"<h3 style='margin:8px 0'>Sweep {html.escape(folder.name)}</h3><div style='font-size:12px;color:#555'>"
            f"{html.escape(' · '.join(target_parts(m)))} · "
            f"{grid_shape(len(m.get('grid', [])), len(m.get('prompts', [])), m['repeats'])} · "
            f"cells ok {counts.get('ok', 0)}, "
            f"failed {counts.get('error', 0)} · wall {m.get('wall_s')} s</div>"
        )
        out: list[widgets.Widget] = [widgets.HTML(head)]
        self.charts = {}
        if self.points.empty or (self.turns.empty and not vad_only):
            noise_only = not self.points.empty and {p.get("category") for p in m.get("prompts", [])} == {
                NOISE_ONLY
            }
            if noise_only:  # no answer is the result: the false starts are what such a sweep measures
                out.append(widgets.HTML(
                    "<p>Every prompt is noise alone and no turn was answered: the false starts per minute below "
                    "are what this sweep measures.</p>"
                    + _table(self.points, ["setting", *POINT_MEASURES, *POINT_FLAGS])
                ))  # fmt: skip
                return out
            reason = no_results_message(folder) if self.points.empty else "No turn was answered."
            out.append(widgets.HTML(f"<p style='color:#b00020'>Nothing to chart. {html.escape(reason)}</p>"))
            return out
        if vad_only:
            out.append(widgets.HTML(
                "<p>VAD only: the emulator's VAD decided every cell without a session (the same detections "
                "as a session sweep on the emulator). Dead air is the end-of-turn wait on the audio clock; "
                "there is no latency to chart.</p>"
            ))  # fmt: skip
        out.append(widgets.HTML(
            "<b>Operating points</b> (one per setting; lower is better for every rate and for dead air)"
            + _table(self.points, ["setting", *POINT_MEASURES, *POINT_FLAGS])
        ))  # fmt: skip
        settings = grid_settings(self.manifest)
        speech = self.turns if vad_only else spoken_turns(self.turns)
        images = self._chart_images(speech, settings, vad_only)
        for name, png in images.items():
            width = "49%" if name in _SIDE_BY_SIDE else "95%"
            self.charts[name] = widgets.Image(
                value=png, format="png", layout=widgets.Layout(width=width, min_width="420px")
            )
        pair = [self.charts[n] for n in _SIDE_BY_SIDE if n in self.charts]
        out.append(widgets.HBox(pair, layout=widgets.Layout(flex_flow="row wrap")))
        out.extend(self.charts[n] for n in ("waterfall", "vad_timeline") if n in self.charts)
        if not vad_only:
            out.append(self._latency_summary(speech, settings))
        canary = m.get("canary")
        if canary and not self.vad.empty and self.vad["silence_duration_ms"].nunique() > 1:
            import warnings

            from vlab.metrics import canary_shift

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                shift = canary_shift(self.vad, prompt=canary)
            note = "".join(f"<p style='color:#b00020'>{html.escape(str(w.message))}</p>" for w in caught)
            out.append(widgets.HTML(
                f"<b>Did the setting take effect?</b> On canary <code>{html.escape(canary)}</code> each extra ms of "
                "silence_duration should move speech_stopped by as much." + _table(shift) + note
            ))  # fmt: skip
        if not self.scores.empty:
            from vlab.report import score_columns

            cols, note = score_columns(self.scores)
            out.append(widgets.HTML(
                f"<details><summary><b>Per prompt and setting</b></summary><p>{note}</p>"
                + _table(in_grid_order(self.scores, settings, "prompt", "run"), cols)
                + "</details>"
            ))  # fmt: skip
        return out

    def _chart_images(self, speech: pd.DataFrame, settings: list[str], vad_only: bool) -> dict[str, bytes]:
        """The sweep's charts as PNG data, by name: the report's, sized for the panel."""
        from vlab import plots
        from vlab.metrics import made_tool_calls
        from vlab.metrics.tradeoff import played_noise
        from vlab.report.build import detecting_settings, waterfall_turns

        names = short_names([str(s) for s in self.points["setting"]])  # charts name what differs
        short_settings = [names.get(s, s) for s in settings]
        vad_c = relabelled(self.vad, names)
        images = {
            "pareto": figure_png(lambda ax: plots.pareto(pareto_labels(self.points), ax=ax), (6.4, 4.6)),
        }
        if played_noise(self.points):
            images["noise_tradeoff"] = figure_png(
                lambda ax: plots.noise_tradeoff(
                    pareto_labels(self.points, x="false_starts_per_min", y="missed_turn_rate"), ax=ax
                ),
                (6.4, 4.6),
            )
        if not vad_only:
            ok = speech[~speech["false_cutoff"].astype(bool)]
            n_settings = max(1, speech["setting"].nunique())
            speech_c, ok_c = (relabelled(f, names) for f in (speech, ok))
            images["latency_distributions"] = figure_png(
                lambda ax: plots.latency_distributions(
                    speech_c, metric="dead_air_ms", order=short_settings, ax=ax
                ),
                (6.4, max(2.6, 1.0 + 0.45 * n_settings)),
            )
            if made_tool_calls(speech):
                images["voice_to_answer"] = figure_png(
                    lambda ax: plots.latency_distributions(
                        speech_c, metric="voice_to_answer_ms", order=short_settings, ax=ax
                    ),
                    (6.4, max(2.6, 1.0 + 0.45 * n_settings)),
                )
            sample, _ = waterfall_turns(ok_c, short_settings, max_turns=18)
            if len(sample):
                images["waterfall"] = figure_png(
                    lambda ax: plots.waterfall(sample, max_turns=18, ax=ax),
                    (11, max(2.8, 1.2 + 0.34 * min(len(sample), 18))),
                )
        timeline = self._timeline_prompt()
        if timeline is not None:
            rows = [names.get(s, s) for s in detecting_settings(self.points)]
            images["vad_timeline"] = figure_png(
                lambda ax: plots.vad_timeline(timeline, vad_c, settings=rows, ax=ax),
                (11, 2.4 + 0.35 * len(rows)),
            )
        return images

    def _latency_summary(self, speech: pd.DataFrame, settings: list[str]) -> widgets.Widget:
        """The latency table of a session sweep's speech turns (kept as :attr:`summary`), in ``settings`` order."""
        from vlab.metrics import summarize_latency, waited_turns
        from vlab.report import latency_measures
        from vlab.sweep import in_grid_order

        waited = waited_turns(speech)  # not the cut-offs: each stage counts the turns voice_to_voice_ms does
        summary = in_grid_order(
            summarize_latency(waited, by=["setting"], metrics=latency_measures(speech)), settings
        )
        self.summary = summary
        return widgets.HTML(
            "<b>Latency summary</b> (turns not cut off; p50/p90 with bootstrap 95 % intervals; first turn of each session separately). "
            "On the emulator every figure is on its simulated timeline (the same at any speed); against "
            "Azure, on the client's clock (run at speed 1)." + _table(summary, ["setting", "turns", "metric", "n", "p50", "p50_lo", "p50_hi", "p90", "p90_lo", "p90_hi"])
        )  # fmt: skip

    def _timeline_prompt(self) -> Any:
        from vlab.report.build import prompts_to_chart

        return next(iter(prompts_to_chart(self.manifest, self.prompt_set, self.scores, 1)), None)


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def _cell_names(cfg: Any) -> list[str]:
    from vlab.sweep.cells import grid_cells

    return [c[0] for c in grid_cells(cfg)]


def _cells_done(out: Path, names: list[str], started: float) -> int:
    """Cells of this sweep with a ``cell.json`` written since ``started`` or already ok (they are skipped)."""
    from vlab.sweep.store import CELL_FILE, cell_folder

    done = 0
    for name in names:
        marker = cell_folder(out, name) / CELL_FILE
        try:
            if marker.stat().st_mtime >= started - 1.0:
                done += 1
            elif json.loads(marker.read_text(encoding="utf-8")).get("status") == "ok":
                done += 1
        except (OSError, ValueError):
            continue
    return done


def _check_resumable(out: Path, cfg: Any, session_options: Mapping[str, Any]) -> None:
    """Refuse to resume into a folder that holds a different sweep (its cells would mix into the tables).

    Another grid, or cells of this grid that ran with other settings (``Instructions``, ``Voice``, the
    emulator's latency: :func:`vlab.sweep.run.finished_cells`).
    """
    from vlab.sweep.grid import counted
    from vlab.sweep.run import finished_cells
    from vlab.sweep.store import SWEEP_MANIFEST

    held = finished_cells(cfg, out, session_options)
    if held.changed:
        raise ConfigError(
            f"{str(out)!r} holds {counted(held.cells_changed, 'finished cell')} of this sweep that ran otherwise "
            f"({', '.join(held.changed)} changed since); clear Folder for a new sweep folder, or set them as they "
            "were to resume it"
        )
    manifest = out / SWEEP_MANIFEST
    if not manifest.is_file():
        return
    try:
        had = [g["setting"] for g in json.loads(manifest.read_text(encoding="utf-8")).get("grid", [])]
    except (ValueError, KeyError, TypeError):
        return
    if sorted(had) != sorted(cfg.setting_names):
        raise ConfigError(
            f"{str(out)!r} holds a sweep of other settings ({', '.join(had)}); clear Folder for a new sweep "
            "folder, or choose the same grid to resume it"
        )
