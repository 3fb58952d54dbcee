"""scripts/run_tests.py: make test's browser tests run beside the parallel part; its sound-card tests after
them, beside it too where their priority may be raised, else after it; a failure in any of the three runs
fails the whole.

Each case runs the script's three pytest processes on a small project in a temporary folder.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
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


BESIDE = os.environ["SOUND_CARD_TESTS"] == "beside"  # else after the parallel part


def _meet(mode: str, fifo: str = "meet") -> None:
    """Open the FIFO ``fifo`` for ``mode``: that returns once the other test opens its other end, so both
    tests must be running at the same time (one after the other, the first would wait: it ends at 60 s)."""
    faulthandler.dump_traceback_later(60, exit=True)
    with open(HERE / fifo, mode):
        pass
    faulthandler.cancel_dump_traceback_later()


def _fails(part: str) -> None:
    assert not (HERE / f"fail-{part}").exists(), f"{part} asked to fail"


def test_parallel_part():
    assert "SOUND_CARD" not in os.environ  # its PulseAudio would slow the parallel part down
    _meet("w")
    if BESIDE:
        _meet("w", "meet-after")
    (HERE / "parallel.done").touch()
    _fails("parallel")


@pytest.mark.realtime
def test_beside():
    _meet("r")
    (HERE / "beside.done").touch()
    _fails("beside")


@pytest.mark.realtime
@pytest.mark.sound_card
def test_after():
    assert (HERE / "beside.done").exists(), "ran before the browser tests had finished"
    if BESIDE:
        _meet("r", "meet-after")
        assert os.environ.get("BOOSTED") == "yes", "ran beside the parallel part without the boost"
    else:
        assert (HERE / "parallel.done").exists(), "ran before the parallel part had finished"
        assert "BOOSTED" not in os.environ
    assert os.environ.get("SOUND_CARD") == "on", "ran without the sound card"
    _fails("after")
''',
}


class Card:
    """A stand-in for the virtual sound card: the environment it gives, and whether it is on."""

    def __init__(self) -> None:
        self.on = False
        self.used = 0
        self.prefix: list[str] = []

    @contextlib.contextmanager
    def __call__(self, out: io.StringIO, prefix: Sequence[str]) -> Iterator[dict[str, str]]:
        self.on, self.used, self.prefix = True, self.used + 1, list(prefix)
        try:
            yield {"SOUND_CARD": "on"}
        finally:
            self.on = False


@pytest.fixture
def card() -> Card:
    return Card()


BOOST = ["env", "BOOSTED=yes"]
"""A stand-in for ``nice -n -10``: a prefix whose mark the sound-card test can see."""


@pytest.fixture(params=["beside", "after"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the sound-card tests run: beside the parallel part (their priority raised) or after it."""
    monkeypatch.setenv("SOUND_CARD_TESTS", request.param)
    return str(request.param)


@pytest.fixture
def runner(card: Card, mode: str) -> ModuleType:
    module = load_script("run_tests")
    module.run = functools.partial(module.run, sound_card=card, boost=BOOST if mode == "beside" else None)
    return module


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # its tests need none: 0.3 s less per run
    for name, text in PROJECT.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    os.mkfifo(tmp_path / "meet")
    os.mkfifo(tmp_path / "meet-after")
    return tmp_path


def test_the_browser_tests_run_beside_the_parallel_part_and_the_sound_card_tests_after_them(
    runner, project, capfd, mode
) -> None:
    out = io.StringIO()
    assert runner.run(runner.PARALLEL_MARKERS, cwd=project, out=out) == 0
    report = out.getvalue()
    assert "ran beside the parallel part: pytest -m realtime and not sound_card" in report
    printed = capfd.readouterr().out  # the parallel part (and the after part, after it) print as they go
    kept = {"beside": 2, "after": 1}[mode]  # the realtime runs beside it: kept until the parallel part ends
    assert report.count("1 passed, 2 deselected") == kept
    assert printed.count("1 passed, 2 deselected") == 3 - kept
    if mode == "beside":
        assert (
            "after the browser tests, beside the parallel part: env BOOSTED=yes pytest -m realtime" in report
        )
    assert "parallel part: exit status 0; beside it: exit status 0; after it: exit status 0" in report


def test_the_sound_card_is_on_for_the_sound_card_tests_only(runner, project, card, mode) -> None:
    assert runner.run(runner.PARALLEL_MARKERS, cwd=project, out=io.StringIO()) == 0  # the tests check it
    assert (card.used, card.on) == (1, False)  # started for the after part, stopped after it
    assert card.prefix == (BOOST if mode == "beside" else [])  # its PulseAudio gets the tests' priority


def test_the_boost_raises_the_priority_where_this_user_may() -> None:
    module = load_script("run_tests")
    prefix = module.priority_boost()
    if prefix is None:
        denied = subprocess.run([sys.executable, "-c", f"import os; os.nice({module.BOOST})"], check=False)
        assert denied.returncode != 0
        return
    niceness = subprocess.run(
        [*prefix, sys.executable, "-c", "import os; print(os.nice(0))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(niceness.stdout) == max(-20, os.nice(0) + module.BOOST)


def test_a_sound_card_already_running_is_used_as_it_is(monkeypatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/somewhere/pulse/native")
    with load_script("run_tests").virtual_sound_card(io.StringIO()) as env:
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
