"""The label editor: review proposed labels on the waveform, play a span, move it, change its kind, save.

``LabelEditor("recordings/")`` opens the prompt set that ``vlab prompts label`` (or ``import``) wrote.
The waveform shows speech (green), holds (orange) and ends of turn (red lines), the chosen label
outlined. Saving writes the manifest (:class:`vlab.corpus.label_set.LabelSet`): every prompt edited or
approved is then ``edited``, so reports stop warning that its figures rest on unreviewed labels.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np

from vlab.corpus.label_set import LabelSet, Span
from vlab.corpus.labels import KINDS
from vlab.errors import ConfigError, VlabError
from vlab.widgets._tasks import guarded
from vlab.widgets.sweep_panel import figure_png

_COLOURS = {"speech": "#2e7d32", "hold": "#ef6c00", "eot": "#c62828"}


class LabelEditor:
    """Review and correct the labels of a prompt folder.

    Args:
        folder: A prompt folder (or its ``manifest.json``).

    ``labels`` is the :class:`~vlab.corpus.label_set.LabelSet` being edited. Display the editor with
    ``editor`` as the last expression of a cell.
    """

    def __init__(self, folder: str | Path) -> None:
        self.labels = LabelSet(folder)
        self._audio: dict[str, tuple[np.ndarray, int]] = {}
        self._updating = False
        self._build()
        # a first prompt whose audio cannot be read is shown as such: the others can still be reviewed
        guarded(self.output, "Opening the prompt")(self._show_prompt)()

    def _build(self) -> None:
        style = {"description_width": "70px"}
        self.prompt = widgets.Dropdown(
            options=self._prompt_options(),
            description="Prompt",
            style=style,
            layout=widgets.Layout(width="420px"),
        )
        self.waveform = widgets.Image(format="png", layout=widgets.Layout(width="95%", max_width="1000px"))
        self.span = widgets.Dropdown(description="Label", style=style, layout=widgets.Layout(width="420px"))
        self.kind = widgets.Dropdown(options=list(KINDS), description="Kind", style=style)
        self.start = widgets.FloatText(description="Start ms", step=5, style=style)
        self.end = widgets.FloatText(description="End ms", step=5, style=style)
        self.play_button = widgets.Button(description="Play span", icon="play")
        self.approve_button = widgets.Button(description="Approve prompt", icon="check")
        self.save_button = widgets.Button(description="Save", icon="save", button_style="primary")
        self.status = widgets.HTML("")
        self.player = widgets.Output()
        self.output = widgets.Output()
        self.widget = widgets.VBox([
            self.prompt, self.waveform, self.span,
            widgets.HBox([self.kind, self.start, self.end]),
            widgets.HBox([self.play_button, self.approve_button, self.save_button]),
            self.status, self.player, self.output,
        ])  # fmt: skip
        self.prompt.observe(
            guarded(self.output, "Opening the prompt")(lambda _: self._show_prompt()), names="value"
        )
        self.span.observe(
            guarded(self.output, "Choosing the label")(lambda _: self._show_span()), names="value"
        )
        for control in (self.kind, self.start, self.end):
            control.observe(guarded(self.output, "Editing the label")(self._edit), names="value")
        self.play_button.on_click(guarded(self.output, "Playing the span")(lambda _: self.play()))
        self.approve_button.on_click(guarded(self.output, "Approving")(lambda _: self.approve()))
        self.save_button.on_click(guarded(self.output, "Saving")(lambda _: self.save()))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"LabelEditor({str(self.labels.path)!r}, {len(self.labels.ids)} prompts)"

    # --- what the buttons do ------------------------------------------------------------------------

    def play(self) -> None:
        """Play the chosen span (an end of turn: the second around it) in the player area."""
        from IPython.display import Audio

        span = self._span()
        if span is None:
            return
        samples, rate = self._samples(self.prompt.value)
        a, b = (
            (span.start_ms - 500, span.end_ms + 500) if span.kind == "eot" else (span.start_ms, span.end_ms)
        )
        clip = samples[max(int(a * rate / 1000), 0) : int(b * rate / 1000)]
        self.player.outputs = ()
        self.player.append_display_data(Audio(data=clip, rate=rate, normalize=False))

    def approve(self) -> None:
        """Mark the prompt's labels as reviewed as they are."""
        self.labels.approve(self.prompt.value)
        self.status.value = f"{html.escape(self.prompt.value)} approved; save to keep it"
        self._refresh_prompt_options()

    def save(self) -> Path:
        """Write the manifest; edited and approved prompts become ``edited``."""
        path = self.labels.save()
        self.status.value = f"saved {html.escape(str(path))}"
        self._refresh_prompt_options()
        return path

    # --- display ------------------------------------------------------------------------------------

    def _prompt_options(self) -> list[tuple[str, str]]:
        out = []
        for pid in self.labels.ids:
            source = (
                "reviewed" if pid in self.labels.reviewed else self.labels.entry(pid).get("label_source", "?")
            )
            out.append((f"{pid} ({source})", pid))
        return out

    def _refresh_prompt_options(self) -> None:
        self._updating = True
        try:
            value = self.prompt.value
            self.prompt.options = self._prompt_options()
            self.prompt.value = value
        finally:
            self._updating = False

    def _samples(self, pid: str) -> tuple[np.ndarray, int]:
        if pid not in self._audio:
            from vlab.audio.wav import read_audio

            self._audio[pid] = read_audio(self.labels.audio_path(pid))
        return self._audio[pid]

    def _span(self) -> Span | None:
        spans = self.labels.spans(self.prompt.value)
        index = self.span.value
        return spans[index] if index is not None and 0 <= index < len(spans) else None

    def _show_prompt(self, keep: int | None = None) -> None:
        if self._updating or self.prompt.value is None:
            return
        spans = self.labels.spans(self.prompt.value)
        self._updating = True
        try:
            self.span.options = [(_describe(i, s), i) for i, s in enumerate(spans)]
            self.span.value = keep if keep is not None and keep < len(spans) else (0 if spans else None)
        finally:
            self._updating = False
        self._show_span()

    def _show_span(self) -> None:
        if self._updating:
            return
        span = self._span()
        self._updating = True
        try:
            if span is not None:
                self.kind.value, self.start.value, self.end.value = span.kind, span.start_ms, span.end_ms
        finally:
            self._updating = False
        self._draw(span)

    def _edit(self, change: dict[str, Any]) -> None:
        if self._updating or self.span.value is None:
            return
        field = {self.kind: "kind", self.start: "start_ms", self.end: "end_ms"}[change["owner"]]
        try:
            new = self.labels.edit(self.prompt.value, self.span.value, **{field: change["new"]})
        except ConfigError:
            self._show_span()  # the controls show the label as it still is
            raise
        spans = self.labels.spans(self.prompt.value)
        self._refresh_prompt_options()
        self._show_prompt(keep=spans.index(new) if new in spans else 0)
        self.status.value = (
            f"{html.escape(self.prompt.value)}: {html.escape(_describe(self.span.value, new))} (unsaved)"
        )

    def _draw(self, chosen: Span | None) -> None:
        try:
            samples, rate = self._samples(self.prompt.value)
        except VlabError:
            self.waveform.value = b""  # not the previous prompt's waveform under this one's labels
            raise
        spans = self.labels.spans(self.prompt.value)

        def draw(ax: Any) -> None:
            ax.plot(*waveform_points(samples, rate), color="#555", linewidth=0.5)
            for s in spans:
                if s.kind == "eot":
                    ax.axvline(s.start_ms, color=_COLOURS["eot"], linewidth=1.5)
                else:
                    ax.axvspan(s.start_ms, s.end_ms, color=_COLOURS[s.kind], alpha=0.25)
            if chosen is not None:
                ax.axvspan(
                    chosen.start_ms - 2, chosen.end_ms + 2, fill=False, edgecolor="black", linewidth=1.5
                )
            ax.set_xlabel("ms from the start of the file")
            ax.set_yticks([])
            ax.set_title(
                f"{self.prompt.value}: speech (green), holds (orange), ends of turn (red)", fontsize=9
            )

        self.waveform.value = figure_png(draw, (10, 2.4))


WAVEFORM_POINTS = 4000
"""At most about this many samples are drawn of a waveform (every n-th)."""


def waveform_points(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The waveform to draw: ms from the file's start (the labels' axis) and every n-th sample."""
    step = max(len(samples) // WAVEFORM_POINTS, 1)
    return np.arange(0, len(samples), step) * 1000.0 / rate, samples[::step]


def _describe(index: int, s: Span) -> str:
    conf = "" if s.confidence is None else f", confidence {s.confidence:.2f}"
    where = f"{s.start_ms:.0f} ms" if s.kind == "eot" else f"{s.start_ms:.0f}–{s.end_ms:.0f} ms"
    return f"{index + 1}. {s.kind} {where}{conf}"
