"""scripts/run_tests.py: make test's browser tests run beside the parallel part, its sound-card tests after
it, and a failure in any of the three runs fails the whole.

Each case runs the script's three pytest processes on a small project in a temporary folder.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests._scripts import load_script

PROJECT = {
    "pytest.ini": "[pytest]\nmarkers =\n    realtime: in its own process\n    sound_card: after the rest\n",
    "test_parts.py": '''
import faulthandler
import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _meet(mode: str) -> None:
    """Open the FIFO ``meet`` for ``mode``: that returns once the other test opens its other end, so both
    tests must be running at the same time (one after the other, the first would wait: it ends at 60 s)."""
    faulthandler.dump_traceback_later(60, exit=True)
    with open(HERE / "meet", mode):
        pass
    faulthandler.cancel_dump_traceback_later()


def _fails(part: str) -> None:
    assert not (HERE / f"fail-{part}").exists(), f"{part} asked to fail"


def test_parallel_part():
    assert "SOUND_CARD" not in os.environ  # its PulseAudio would slow the parallel part down
    _meet("w")
    (HERE / "parallel.done").touch()
    _fails("parallel")


@pytest.mark.realtime
def test_beside():
    _meet("r")
    _fails("beside")


@pytest.mark.realtime
@pytest.mark.sound_card
def test_after():
    assert (HERE / "parallel.done").exists(), "ran before the parallel part had finished"
    assert os.environ.get("SOUND_CARD") == "on", "ran without the sound card"
    _fails("after")
''',
}


class Card:
    """A stand-in for the virtual sound card: the environment it gives, and whether it is on."""

    def __init__(self) -> None:
        self.on = False
        self.used = 0

    @contextlib.contextmanager
    def __call__(self, out: io.StringIO) -> Iterator[dict[str, str]]:
        self.on, self.used = True, self.used + 1
        try:
            yield {"SOUND_CARD": "on"}
        finally:
            self.on = False


@pytest.fixture
def card() -> Card:
    return Card()


@pytest.fixture
def runner(card: Card) -> ModuleType:
    module = load_script("run_tests")
    module.run = functools.partial(module.run, sound_card=card)
    return module


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # its tests need none: 0.3 s less per run
    for name, text in PROJECT.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    os.mkfifo(tmp_path / "meet")
    return tmp_path


def test_beside_runs_with_the_parallel_part_and_after_runs_once_it_has_finished(
    runner, project, capfd
) -> None:
    out = io.StringIO()
    assert runner.run(runner.PARALLEL_MARKERS, cwd=project, out=out) == 0
    report = out.getvalue()
    assert "ran beside the parallel part: pytest -m realtime and not sound_card" in report
    assert "1 passed, 2 deselected" in report  # the browser tests' output, kept until the end
    printed = capfd.readouterr().out  # the parallel and the after runs print as they go
    assert printed.count("1 passed, 2 deselected") == 2
    assert "parallel part: exit status 0; beside it: exit status 0; after it: exit status 0" in report


def test_the_sound_card_is_on_for_the_sound_card_tests_only(runner, project, card) -> None:
    assert runner.run(runner.PARALLEL_MARKERS, cwd=project, out=io.StringIO()) == 0  # the tests check it
    assert (card.used, card.on) == (1, False)  # started for the after part, stopped after it


def test_a_sound_card_already_running_is_used_as_it_is(runner, monkeypatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/somewhere/pulse/native")
    with runner.virtual_sound_card(io.StringIO()) as env:
        assert env == {}  # the tests reach it through the exported variables


@pytest.mark.parametrize("part", ["parallel", "beside", "after"])
def test_a_failure_in_any_run_fails_the_whole_and_is_shown(runner, project, capfd, part) -> None:
    (project / f"fail-{part}").touch()
    out = io.StringIO()
    assert runner.run(runner.PARALLEL_MARKERS, cwd=project, out=out) == 1
    shown = out.getvalue() + capfd.readouterr().out
    assert f"{part} asked to fail" in shown
    names = {"parallel": "parallel part", "beside": "beside it", "after": "after it"}
    for other, name in names.items():
        assert f"{name}: exit status {int(other == part)}" in shown
