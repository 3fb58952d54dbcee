"""Progress bars: redrawn in place on a terminal, a line of its own in a log file or a pipe."""

from __future__ import annotations

import io
import sys

from vlab._progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO, monkeypatch, steps: int = 3) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    for _ in progress_bar(steps, "sweep", "cell", range(steps)):
        pass
    return stream.getvalue()


def test_in_a_log_file_each_state_is_a_line_of_its_own(monkeypatch):
    lines = _run(io.StringIO(), monkeypatch).split("\n")
    assert "\r" not in "".join(lines) and lines[-1] == ""  # every line ended
    assert lines[0] == "sweep: 0/3 cells (0 %), 00:00 elapsed, ? left"
    assert lines[-2].startswith("sweep: 3/3 cells (100 %), 00:")  # the last state, at the end
    assert len(set(lines[:-1])) == len(lines) - 1  # none twice


def test_on_a_terminal_the_bar_is_tqdm_s_own(monkeypatch):
    out = _run(_Terminal(), monkeypatch)
    assert out.startswith("\rsweep:   0%|") and "3/3 [" in out


def test_in_a_notebook_the_bar_is_tqdm_s_widget(monkeypatch):
    import tqdm.auto
    from tqdm.notebook import tqdm_notebook

    made = []

    class Widget(tqdm_notebook):  # what tqdm.auto is in a Jupyter kernel
        disable = True  # nothing to close

        def __init__(self, *args, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Widget)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a kernel's stderr is no terminal
    assert isinstance(progress_bar(3, "sweep", "cell"), Widget)
    assert made == [{"total": 3, "desc": "sweep", "unit": "cell"}]  # tqdm's own look, not the log's lines


def test_a_state_drawn_again_is_not_written_again():
    from vlab._progress import _Lines

    out = io.StringIO()
    lines = _Lines(out)
    for drawn in ("\rsweep: 2/3", "\rsweep: 3/3", "\rsweep: 3/3", "\n"):  # a refresh, then close's redraw
        assert lines.write(drawn) == len(drawn)
    assert out.getvalue() == "sweep: 2/3\nsweep: 3/3\n"


def test_a_bar_whose_stream_was_closed_closes_quietly(tmp_path):
    # a bar outliving its stream (pytest's captured stderr, a log file closed first) is let go of at
    # garbage collection, which closes it: on Python 3.13 that flush raised into the unraisable hook
    from vlab._progress import _Lines

    stream = open(tmp_path / "sweep.log", "w", encoding="utf-8")  # closed below, before the bar
    lines = _Lines(stream)
    lines.write("\rsweep: 1/2 cells")
    stream.close()
    lines.close()
    assert lines.closed and (tmp_path / "sweep.log").read_text() == "sweep: 1/2 cells\n"
