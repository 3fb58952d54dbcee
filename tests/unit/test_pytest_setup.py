"""The suite's own machinery (tests/conftest.py): folder markers select, leaked tasks fail a test."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION_FILES = ["tests/integration/test_emulator_contract.py", "tests/reliability/test_bad_inputs.py"]
"""One file per integration folder, chosen because neither sets a module ``pytestmark`` of its own."""
UNIT_FILE = "tests/unit/test_endpoint.py"


def _test_functions(path: str) -> set[str]:
    """``path::name`` of every top-level test function in a test file."""
    tree = ast.parse((ROOT / path).read_text())
    functions = (node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))
    return {f"{path}::{node.name}" for node in functions if node.name.startswith("test")}


def test_minus_m_integration_selects_every_test_in_the_integration_and_reliability_folders() -> None:
    args = [
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "integration",
        *INTEGRATION_FILES,
        UNIT_FILE,
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    selected = {line.split("[")[0] for line in result.stdout.splitlines() if "::" in line}
    assert selected == set().union(*map(_test_functions, INTEGRATION_FILES))
    summary = result.stdout.splitlines()[-1]
    assert "deselected" in summary, summary  # the unit file's tests were collected, then left out


def test_the_longest_files_are_collected_first_in_run_first_order_and_the_rest_keep_theirs() -> None:
    from tests.conftest import RUN_FIRST

    files = [  # two RUN_FIRST files that are cheap to collect, after a file that is not in it
        "tests/unit/test_endpoint.py",
        "tests/unit/test_asr_process.py",
        "tests/integration/test_cli.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    order = [line.split("::")[0] for line in result.stdout.splitlines() if "::" in line]
    firsts = list(dict.fromkeys(order))  # each file once, where it first appears
    assert firsts == ["tests/integration/test_cli.py", "tests/unit/test_asr_process.py", UNIT_FILE]
    assert order == sorted(order, key=firsts.index)  # each file's tests stay together
    assert RUN_FIRST.index("integration/test_cli.py") < RUN_FIRST.index("unit/test_asr_process.py")
    for entry in RUN_FIRST:  # a file renamed or moved must be renamed here too
        assert (ROOT / "tests" / entry).exists(), entry


def test_minus_n_auto_starts_one_worker_more_than_the_cores(pytestconfig: pytest.Config) -> None:
    """xdist asks this hook for ``-n auto``'s worker count; the conftest's answer wins over xdist's own."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig) == cores + 1


class _Config:
    def __init__(self, markexpr: str) -> None:
        self.markexpr = markexpr

    def getoption(self, name: str) -> str:
        assert name == "markexpr"
        return self.markexpr


def test_minus_m_realtime_imports_only_the_files_that_hold_realtime_tests() -> None:
    from tests.conftest import REAL_TIME, TESTS_DIR, pytest_ignore_collect

    for markexpr in ("realtime", "realtime and sound_card", "realtime and not sound_card"):
        realtime = _Config(markexpr)
        for entry in REAL_TIME:  # every folder or file REAL_TIME names is collected
            assert pytest_ignore_collect(TESTS_DIR / entry.split("::")[0], realtime) is None
        for other in ("unit", "integration/test_session.py", "notebooks"):
            assert pytest_ignore_collect(TESTS_DIR / other, realtime) is True
        assert pytest_ignore_collect(TESTS_DIR / "browser" / "test_jupyterlab.py", realtime) is None
        assert pytest_ignore_collect(ROOT / "elsewhere", realtime) is None
    for markexpr in (  # any other selection collects everything as usual
        "",
        "not realtime",
        "(realtime)",
        "integration",
        "realtime or unit",
        "realtime and x or unit",
    ):
        assert pytest_ignore_collect(TESTS_DIR / "unit", _Config(markexpr)) is None


def _collected(markexpr: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", markexpr],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {line for line in result.stdout.splitlines() if "::" in line}


def test_the_sound_card_tests_are_the_devices_tests_and_the_devices_benchmark() -> None:
    """make test runs ``realtime and not sound_card`` beside the parallel part and ``realtime and sound_card``
    after it (scripts/run_tests.py): the second must be exactly the sound card's tests, or one would run
    beside the parallel part (or twice)."""
    from tests.conftest import REAL_TIME, SOUND_CARD

    assert set(SOUND_CARD) <= set(REAL_TIME)
    after = _collected("realtime and sound_card")
    devices = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "devices").glob("test_*.py"))
    assert devices
    assert {test.split("[")[0] for test in after if test.startswith("tests/devices/")} == set().union(
        *map(_test_functions, devices)
    )
    assert {test for test in after if not test.startswith("tests/devices/")} == {
        f"tests/{entry}" for entry in SOUND_CARD if "::" in entry
    }


LEAKY_TESTS = """
import asyncio
import contextlib

import pytest


async def test_leaks_a_task():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="leaked-by-test")  # wall-clock ok: a task that never ends by itself, to be leaked


@pytest.fixture
async def leaky_fixture():
    task = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="leaked-by-fixture")  # wall-clock ok: a task that never ends by itself, to be leaked
    yield task


async def test_uses_a_leaky_fixture(leaky_fixture):
    pass


@pytest.fixture
async def tidy_fixture():
    task = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="stopped-by-fixture")  # wall-clock ok: a task that never ends by itself, to be leaked
    yield task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_uses_a_tidy_fixture(tidy_fixture):
    pass


async def test_cancels_without_awaiting():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="cancelled").cancel()  # wall-clock ok: a task that never ends by itself, to be leaked


async def test_awaits_its_task():
    await asyncio.get_running_loop().create_task(asyncio.sleep(0))  # wall-clock ok: no time passes


def test_sync():
    pass
"""


def test_an_async_test_that_leaks_a_task_fails_with_the_tasks_repr(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest("-p", "tests.conftest", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_a_task*",
            "*the test left 1 asyncio task(s) pending*",
            "*<Task pending name='leaked-by-test' coro=<sleep()*",
            "*ERROR at teardown of test_uses_a_leaky_fixture*",
            "*<Task pending name='leaked-by-fixture'*",
        ]
    )
    assert "stopped-by-fixture" not in result.stdout.str()
    assert "name='cancelled'" not in result.stdout.str()


def test_the_test_processes_skip_the_iri_parsers_and_notebooks_still_validate() -> None:
    import jsonschema
    import nbformat

    from tests.conftest import SKIPPED_IMPORTS

    assert all(sys.modules[name] is None for name in SKIPPED_IMPORTS)
    assert "iri" not in jsonschema.FormatChecker().checkers  # jsonschema went without the parsers
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    nbformat.validate(nb)
    nb.cells[0]["execution_count"] = "one"
    with pytest.raises(nbformat.ValidationError):  # and still checks notebooks against the schema
        nbformat.validate(nb)


def test_a_script_that_starts_with_the_prelude_skips_them_too() -> None:
    """The prelude of the scripts tests start (JupyterLab, the wheel test's notebook runner)."""
    from tests.conftest import SKIP_IMPORTS_PRELUDE, SKIPPED_IMPORTS

    check = (
        "import jsonschema, nbformat\nprint(sorted(n for n in {names!r} if sys.modules.get(n) is not None))\n"
    )
    for prelude, skipped in ((SKIP_IMPORTS_PRELUDE, "[]"), ("import sys\n", repr(sorted(SKIPPED_IMPORTS)))):
        out = subprocess.run(
            [sys.executable, "-c", prelude + check.format(names=SKIPPED_IMPORTS)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert out.strip() == skipped, (prelude, out)
