"""The log explorer: open a run folder, filter its events, see a turn's waterfall and hear the turn."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from vlab import protocol
from vlab.errors import ConfigError, check_count
from vlab.widgets._events import direction_arrow, event_detail
from vlab.widgets._tasks import guarded
from vlab.widgets.sweep_panel import figure_png

ALL_TURNS = -1
NOISY_TYPES = (
    protocol.CLIENT_APPEND,
    protocol.AUDIO_DELTA,
    protocol.AUDIO_TRANSCRIPT_DELTA,
    protocol.TEXT_DELTA,
)
"""Event types left unselected at first (there are many of them); select them to see them."""
RUNS_ROOT = Path("runs")
"""Where *Run folder* looks for runs to suggest: where ``vlab replay`` and the panels write by default."""
RUN_SUGGESTIONS = 50
"""The most run folders *Run folder* suggests, newest first."""


def run_suggestions(root: Path = RUNS_ROOT) -> tuple[str, ...]:
    """The session run folders under ``root`` (relative to the working folder), newest first."""
    from vlab.runs import find_runs

    if not root.is_dir():
        return ()
    runs = find_runs(root)
    folders = runs.loc[runs["kind"] == "session", "folder"].head(RUN_SUGGESTIONS)
    return tuple(str(root / folder) for folder in folders)


class LogExplorer:
    """Browse one run folder: events by type and turn, the chosen turn's latency waterfall and its audio.

    Args:
        run_dir: A run folder to open at once (``events.parquet`` or ``events.jsonl``, ``input.wav``,
            ``output/<item_id>.wav``); or type one in *Run folder* (it suggests the session runs under
            ``runs``, newest first) and press *Load*.
        max_rows: Events shown in the table (the first ones that pass the filters).

    After loading, ``events`` holds the log, ``turns`` :func:`vlab.metrics.turn_latency` of it and
    :meth:`filtered` the rows the table shows. Display it with ``explorer`` as the last expression of a cell.

    Raises:
        ConfigError: ``max_rows`` below 1.
    """

    def __init__(self, run_dir: str | Path | None = None, *, max_rows: int = 200) -> None:
        check_count("max_rows", max_rows)
        self.max_rows = max_rows
        self.run_dir: Path | None = None
        self.events = pd.DataFrame()
        self.turns = pd.DataFrame()
        self._t0_ns = 0
        self._updating = False
        self._build()
        if run_dir is not None:
            self.path.value = str(run_dir)
            guarded(self.output, "Loading the run")(self.load)(run_dir)

    def _build(self) -> None:
        style = {"description_width": "90px"}
        self.path = widgets.Combobox(
            description="Run folder", placeholder="runs/<run> (holds events.parquet)", style=style,
            options=run_suggestions(), ensure_option=False, layout=widgets.Layout(width="520px"),
        )  # fmt: skip
        self.load_button = widgets.Button(description="Load", icon="folder-open")
        self.status = widgets.HTML("<i>no run loaded</i>")
        self.types = widgets.SelectMultiple(
            options=[],
            value=(),
            rows=8,
            description="Event types",
            style=style,
            layout=widgets.Layout(width="520px"),
        )
        self.turn = widgets.Dropdown(
            options=[("All turns", ALL_TURNS)], value=ALL_TURNS, description="Turn", style=style,
            layout=widgets.Layout(width="520px"),
        )  # fmt: skip
        self.table = widgets.HTML("")
        self.waterfall = widgets.Image(format="png", layout=widgets.Layout(width="95%", max_width="1000px"))
        self.turn_info = widgets.HTML("")
        self.audio = widgets.Output()
        self.output = widgets.Output()
        self.widget = widgets.VBox([
            widgets.HBox([self.path, self.load_button]), self.status, self.output,
            widgets.HBox([self.types, self.turn], layout=widgets.Layout(flex_flow="row wrap")),
            self.turn_info, self.waterfall, self.audio, self.table,
        ])  # fmt: skip
        self.load_button.on_click(
            guarded(self.output, "Loading the run")(lambda _: self.load(self.path.value))
        )
        self.types.observe(
            guarded(self.output, "Filtering by event type")(lambda _: self._refresh_table()), names="value"
        )
        self.turn.observe(
            guarded(self.output, "Choosing the turn")(lambda _: self._show_turn()), names="value"
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"LogExplorer(run_dir={str(self.run_dir) if self.run_dir else None!r}, events={len(self.events)}, turns={len(self.turns)})"

    # --- loading -----------------------------------------------------------------------------------

    def load(self, run_dir: str | Path) -> None:
        """Open a run folder (ConfigError with a clear message when it is not one)."""
        from vlab.corpus.labeller import run_speech_ends_ms
        from vlab.log import is_run_folder, load_log
        from vlab.log.files import RUN_FOLDER_HINT
        from vlab.metrics import turn_latency
        from vlab.prompts import read_run_labels
        from vlab.sweep.store import CELLS_DIR

        self.path.options = run_suggestions()  # with the runs made since
        text = str(run_dir).strip()
        if not text:
            raise ConfigError(f"Type the path of a run folder first ({RUN_FOLDER_HINT}).")
        folder = Path(text).expanduser()
        if folder.is_file():
            raise ConfigError(f"{text!r} is a file: give the run folder it is in, {str(folder.parent)!r}")
        if not folder.is_dir():
            raise ConfigError(
                f"no run folder {text!r} (relative paths start at {str(Path.cwd())!r}; "
                "vlab.find_runs() lists the runs under runs/)"
            )
        if not is_run_folder(folder):
            cells = sorted(filter(is_run_folder, (folder / CELLS_DIR).glob("*")))
            if cells:
                raise ConfigError(
                    f"{text!r} is a sweep folder: give one of its cells, e.g. {str(cells[0])!r} "
                    "(the report shows the sweep: vlab report)"
                )
            raise ConfigError(f"{text!r} is not a run folder: {RUN_FOLDER_HINT}")
        events = load_log(folder)
        events = events.sort_values("seq").reset_index(drop=True) if "seq" in events else events
        labels = read_run_labels(folder)
        self.output.outputs = ()
        self.run_dir, self.events = folder, events
        self.turns = turn_latency(
            events,
            end_of_turn_ms=None if labels is None else labels.end_of_turn_ms,
            speech_ends_ms=run_speech_ends_ms(folder, events) if labels is None else None,
        )
        self._t0_ns = int(events["t_ns"].min()) if len(events) else 0
        counts = events["type"].value_counts()
        types = sorted(counts.index, key=lambda t: (t not in counts.index, str(t)))
        self._updating = True
        try:
            self.types.options = [(f"{t} ({counts[t]})", t) for t in types]
            self.types.value = tuple(t for t in types if t not in NOISY_TYPES)
            self.turn.options = [
                ("All turns", ALL_TURNS),
                *(self._turn_option(r) for r in self.turns.itertuples()),
            ]
            self.turn.value = ALL_TURNS
        finally:
            self._updating = False
        timed = self.turns["a_eos_source"].value_counts() if len(self.turns) else pd.Series(dtype=int)
        sources = dict(_EOS_SOURCES)
        if labels is not None and labels.label_source == "auto":
            sources["label"] = (
                "the prompt's labels (labels.json; proposed by vlab prompts label, not reviewed)"
            )
        froms = [f"{timed[source]} from {what}" for source, what in sources.items() if source in timed]
        waits = f"; ends of speech: {', '.join(froms)}" if froms else ""
        self.status.value = (
            f"<b>{html.escape(str(folder))}</b>: {len(events)} events, {len(self.turns)} responses, "
            f"{_span(events, self._t0_ns)}{waits}"
            if len(events)
            else f"<b>{html.escape(str(folder))}</b>: the log is empty"
        )
        self._show_turn()

    @staticmethod
    def _turn_option(r: Any) -> tuple[str, int]:
        """The turn chooser's (label, value) for one row of :attr:`turns`."""
        from vlab.metrics import FALSE_CUTOFF, TURN_STARTS, cancelled_before_audio

        start = TURN_STARTS.get(str(r.trigger), "voice")
        latency = ""
        if _finite(r.voice_to_voice_ms):
            latency = f"{start}-to-voice {r.voice_to_voice_ms:.0f} ms"
        elif _finite(r.voice_to_answer_ms):  # it spoke nothing: its answer came through its tool calls
            calls = int(r.calls_to_answer)
            latency = f"{start}-to-answer {r.voice_to_answer_ms:.0f} ms through {calls} tool call{'s' * (calls != 1)}"
        elif bool(r.false_cutoff):  # it has no latency: it started before the end of speech
            latency = FALSE_CUTOFF
        elif not cancelled_before_audio(r.status, r.t_first_audio_ns, r.false_cutoff):
            latency = "no latency"
        cut = f", {FALSE_CUTOFF}" if bool(r.false_cutoff) and latency != FALSE_CUTOFF else ""
        answers = f", answers turn {int(r.answers_turn)}" if r.answers_turn >= 0 else ""
        state = f"{r.status}, {latency}" if latency else f"{r.status} before its first audio (nothing heard)"
        return f"turn {int(r.turn)} ({r.trigger}, {state}{answers}{cut})", int(r.turn)

    # --- views ---------------------------------------------------------------------------------------

    def _window(self) -> tuple[float, float]:
        """Client-clock span of the chosen turn: after the previous response ended, up to this one's end."""
        if self.turn.value == ALL_TURNS or self.turns.empty:
            return (-math.inf, math.inf)
        i = int(self.turn.value)
        start = self._done_on_the_log_s_clock(self.turns.iloc[i - 1]) if i > 0 else -math.inf
        end = self._done_on_the_log_s_clock(self.turns.iloc[i])
        return (start if math.isfinite(start) else -math.inf, end if math.isfinite(end) else math.inf)

    def _done_on_the_log_s_clock(self, turn: pd.Series) -> float:
        """When the turn's ``response.done`` was logged (``t_ns``), the clock the events' filter compares.

        A turn's ``t_done_ns`` is on the emulator's simulated timeline for an emulator run, not the log's.
        """
        ev = self.events
        done = ev.loc[
            (ev["type"] == protocol.RESPONSE_DONE) & (ev["response_id"] == turn.get("response_id")), "t_ns"
        ]
        if len(done):
            return float(done.iloc[0])
        return float(turn["t_done_ns"]) if turn.get("timeline") != "simulated" else math.nan

    def filtered(self) -> pd.DataFrame:
        """The events the filters keep (chosen types, within the chosen turn), with ``ms`` from the first event."""
        ev = self.events
        if ev.empty:
            return ev
        lo, hi = self._window()
        keep = ev["type"].isin(self.types.value) & (ev["t_ns"] > lo) & (ev["t_ns"] <= hi)
        out = ev[keep].copy()
        out.insert(0, "ms", (out["t_ns"] - self._t0_ns) / 1e6)
        return out

    def _refresh_table(self) -> None:
        if self._updating:
            return
        rows = self.filtered()
        if rows.empty:
            self.table.value = "<i>No event matches the filters.</i>"
            return
        shown = rows.head(self.max_rows)
        body = "".join(
            f"<tr><td style='text-align:right'>{r.ms:,.1f}</td><td>{direction_arrow(r.direction)}</td>"
            f"<td>{html.escape(str(r.type))}</td><td>{html.escape(event_detail(r))}</td></tr>"
            for r in shown.itertuples(index=False)
        )
        more = f" (first {self.max_rows} shown)" if len(rows) > self.max_rows else ""
        self.table.value = (
            f"<div style='font-size:12px'><b>Events</b>: {len(rows)} match{more}; ms from the first event, "
            "→ sent, ← received<table><tr><th>ms</th><th></th><th>type</th><th>detail</th></tr>"
            f"{body}</table></div>"
        )

    def _show_turn(self) -> None:
        if self._updating:
            return
        self._refresh_table()
        self.audio.outputs = ()
        if self.turns.empty:
            self.waterfall.value = b""
            self.waterfall.layout.display = "none"
            self.turn_info.value = "<i>No response in this log: no waterfall or turn audio.</i>"
            self._show_audio(None)
            return
        from vlab import plots

        chosen = self.turns if self.turn.value == ALL_TURNS else self.turns.iloc[[int(self.turn.value)]]
        n = min(len(chosen), 30)
        self.waterfall.value = figure_png(
            lambda ax: plots.waterfall(chosen, max_turns=30, ax=ax), (10, max(2.8, 1.3 + 0.34 * n))
        )
        self.waterfall.layout.display = None
        self.turn_info.value = self._describe(chosen)
        self._show_audio(None if self.turn.value == ALL_TURNS else chosen.iloc[0])

    def _describe(self, chosen: pd.DataFrame) -> str:
        from vlab.metrics import stages_in_order

        if len(chosen) != 1:
            return f"<b>All {len(chosen)} turns</b> — pick a turn to see its stages and hear it."
        row = chosen.iloc[0]
        stages = stages_in_order(row)
        parts = " → ".join(
            f"{name.removesuffix('_ms').replace('_', ' ')} {ms:.0f} ms" for name, _, ms in stages
        )
        reason = (
            f"<br><span style='color:#b00020'>{html.escape(str(row['reason']))}</span>"
            if row.get("reason")
            else ""
        )
        return f"<b>Turn {int(row['turn'])}</b>: {html.escape(parts) or 'no stage could be measured'}{reason}"

    def _show_audio(self, row: pd.Series | None) -> None:
        from IPython.display import HTML as Html
        from IPython.display import Audio

        from vlab.audio.recording import INPUT_WAV, ITEMS_DIR, OUTPUT_WAV, item_wav_path

        assert self.run_dir is not None
        shown = []
        input_wav = self.run_dir / INPUT_WAV
        if row is None:
            for name, label in (
                (INPUT_WAV, "what was sent"),
                (OUTPUT_WAV, "the assistant, on the same timeline"),
            ):
                if (self.run_dir / name).is_file():
                    shown += [Html(f"<b>{name}</b> ({label})"), Audio(filename=str(self.run_dir / name))]
        else:
            span = self._speech_span(row)
            if span is not None and input_wav.is_file():
                import soundfile as sf

                data, rate = sf.read(input_wav, dtype="float32")
                a, b = (int(max(0.0, x) * rate / 1000) for x in span)
                clip = data[a:b]
                if len(clip):
                    shown += [
                        Html(
                            f"<b>User</b>: input.wav {span[0]:.0f}–{span[1]:.0f} ms (the server's speech span)"
                        ),
                        Audio(data=clip, rate=rate, normalize=False),
                    ]
            else:
                shown.append(
                    Html("<i>No user speech span for this turn (a text or manual turn, or no input.wav).</i>")
                )
            item = self._reply_item(row)
            wav = item_wav_path(self.run_dir, item) if item else None
            if wav is not None and wav.is_file():
                shown += [
                    Html(f"<b>Assistant</b>: {ITEMS_DIR}/{html.escape(wav.name)}"),
                    Audio(filename=str(wav)),
                ]
            else:
                shown.append(Html("<i>No assistant audio recorded for this turn.</i>"))
        for obj in shown:
            self.audio.append_display_data(obj)

    def _speech_span(self, row: pd.Series) -> tuple[float, float] | None:
        """Input-audio span (ms) of the user's speech that the turn answers: speech_started → speech_stopped."""
        end = float(row.get("audio_end_ms", math.nan))
        if row.get("trigger") != "vad" or not math.isfinite(end):
            return None
        ev = self.events
        starts = ev[(ev["direction"] == "server") & (ev["type"] == protocol.SPEECH_STARTED)]
        item = row.get("item_id")
        match = starts[starts["item_id"] == item] if isinstance(item, str) else starts.iloc[0:0]
        if match.empty:  # fall back to the last start before the stop
            match = starts[starts["t_ns"] <= float(row["t_speech_stopped_ns"])].tail(1)
        begin = float(match["audio_start_ms"].iloc[0]) if len(match) else math.nan
        return (begin, end) if math.isfinite(begin) and begin < end else None

    def _reply_item(self, row: pd.Series) -> str | None:
        rid = row.get("response_id")
        if not isinstance(rid, str):
            return None
        ev = self.events
        items = ev[(ev["response_id"] == rid) & (ev["type"] == protocol.AUDIO_DELTA)]["item_id"].dropna()
        return str(items.iloc[0]) if len(items) else None


_EOS_SOURCES = {
    "label": "the prompt's labels (labels.json)",
    "audio": "where the speech ends in input.wav",
    "estimated": "the server's estimate (audio_end_ms minus the silence timer)",
}
"""What the status line says each turn's end of speech came from, by ``a_eos_source`` (docs/timeline.md)."""


def _finite(value: Any) -> bool:
    """Whether a frame cell holds a finite number (not NaN, not None)."""
    return isinstance(value, float) and math.isfinite(value)


def _span(events: pd.DataFrame, t0_ns: int) -> str:
    """How long the run lasted: on the emulator's timeline when it ran on it (the same at every speed)."""
    from vlab.metrics.events import on_simulated_timeline

    wall_s = (events["t_ns"].max() - t0_ns) / 1e9
    if not on_simulated_timeline(events):
        return f"{wall_s:.1f} s"
    return f"{events['sim_ms'].max() / 1000:.1f} s on the emulator's timeline ({wall_s:.1f} s of wall time)"
