"""Shared test setup for the whole suite.

- Every test starts without Azure credentials from the developer's shell.
- Markers by folder: a ``pytestmark`` in a conftest applies to no test module, so the folder marks are
  given here, at collection (``DIRECTORY_MARKERS``); ``-m integration`` then selects those folders.
- Tests of real-time audio through a sound card or a browser are marked ``realtime`` (``REAL_TIME``); those
  through the sound card ``sound_card`` too (``SOUND_CARD``).
- The longest files run first (``RUN_FIRST``), so the parallel part's workers finish together.
- ``-n auto`` starts one xdist worker more than the cores (``pytest_xdist_auto_num_workers``).
- An async test fails when a task it (or one of its fixtures) created is still pending on its event loop
  after the test and its fixtures have finished (``_no_leaked_tasks``).
- The test processes do not import ``rfc3987_syntax`` (``SKIPPED_IMPORTS``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from vlab.emulator.transcript_store import CACHE_DIR_ENV

SKIPPED_IMPORTS = ("rfc3987_syntax",)
"""Optional modules the test processes do without. jsonschema, which nbformat and nbclient import, builds
some 35 Earley parsers for the IRI formats of rfc3987-syntax when it is imported (python-jsonschema/
jsonschema#1428): 1.4 s of CPU in a new process, and more in a pytest process, whose collection of the
suite it took from 3.9 to 9.5 s. No schema the tests validate (notebooks) uses those formats, and
jsonschema goes without them when the import fails."""
SKIP_IMPORTS_PRELUDE = f"""\
import sys
for name in {SKIPPED_IMPORTS!r}:
    sys.modules.setdefault(name, None)  # None: `import` raises ImportError
"""
"""Skips them: the first lines of a ``python -c`` script a test starts (JupyterLab, a notebook runner), and
run here for the test processes themselves."""
exec(SKIP_IMPORTS_PRELUDE, {})

pytest_plugins = ("pytester",)

TESTS_DIR = Path(__file__).parent
TEST_CACHE_PREFIX = "vlab-test-cache-"
"""Name start of the temporary cache folder each test run uses (:data:`CACHE_DIR_ENV`)."""

DIRECTORY_MARKERS: dict[str, tuple[str, ...]] = {
    "integration": ("integration",),
    "reliability": ("integration",),
}
"""Top-level folder under ``tests/`` → the markers every test in it gets."""

REAL_TIME: tuple[str, ...] = (
    "devices",
    "browser",
    "test_benchmarks_smoke.py::test_benchmark_runs_at_tiny_size[bench_devices]",
    "test_benchmarks_smoke.py::test_benchmark_runs_at_tiny_size[bench_browser]",
)
"""Folders and test ids under ``tests/`` marked ``realtime``: audio through the virtual sound card or a
browser's audio thread. They share the sound card and a JupyterLab server, so ``make test`` runs them one
at a time, in processes of their own (scripts/run_tests.py)."""

SOUND_CARD: tuple[str, ...] = (
    "devices",
    "test_benchmarks_smoke.py::test_benchmark_runs_at_tiny_size[bench_devices]",
)
"""The ``realtime`` tests that are also marked ``sound_card``: PortAudio streams through the virtual sound
card, whose callbacks must run on time. ``make test`` runs them alone, after the parallel part; the
other realtime tests (the browser's) run beside it."""

RUN_FIRST: tuple[str, ...] = (
    "release",
    "notebooks",
    "test_benchmarks_smoke.py",
    "reliability/test_first_contact.py",
    "integration/test_emulator_realism.py",
    "integration/test_sweep_dask.py",
    "integration/test_calibration.py",
    "integration/test_cli.py",
    "unit/test_asr_process.py",
    "integration/test_sweep_vad.py",
)
"""Folders and files under ``tests/`` that take longest (2026-12-03, in all: 37, 83, 68, 28, 25, 24, 19,
19, 18 and 18 s; the wheel's 35 s test the longest single one). Their tests are collected first, in this
order, so that with ``--dist worksteal`` (pyproject.toml's addopts) both workers end on short tests and finish together (in plain
collection order one worker ran the wheel test last, alone, for 35 s)."""

_REAL_TIME_TOPS = frozenset(entry.split("::")[0] for entry in REAL_TIME)
"""The folders and files under ``tests/`` that hold ``realtime`` tests."""

SETTLE_TICKS = 3
"""Loop iterations a finished test gets so that tasks it cancelled without awaiting can finish."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core the process may use, and one more.

    Many tests wait on a socket, a subprocess or a kernel with a core idle meanwhile; a third worker
    on 2 cores fills it (2026-12-03: the parallel part took 240 s with 3 workers against 270 s with 2
    and 249 s with 4, for the same CPU).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def pytest_configure(config: pytest.Config) -> None:
    """One transcript cache folder for the run, its workers and every process they start; never the user's."""
    if Path(os.environ.get(CACHE_DIR_ENV, "")).name.startswith(TEST_CACHE_PREFIX):
        return  # an xdist worker (or a pytest run inside a test): the run's folder is set
    folder = tempfile.mkdtemp(prefix=TEST_CACHE_PREFIX)
    os.environ[CACHE_DIR_ENV] = folder
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m realtime`` or ``-m "realtime and …"`` (``make test``'s realtime runs), import only the
    files that hold realtime tests.

    Collecting the whole suite to deselect all but a dozen tests costs seconds; any other ``-m`` (or
    none) collects everything as usual.
    """
    markexpr = config.getoption("markexpr")
    if markexpr != "realtime" and not (markexpr.startswith("realtime and ") and " or " not in markexpr):
        return None
    try:
        parts = collection_path.relative_to(TESTS_DIR).parts
    except ValueError:  # outside tests/ (a pytester run)
        return None
    return True if parts and parts[0] not in _REAL_TIME_TOPS else None


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by ``-m``
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the folder it lives in (``DIRECTORY_MARKERS``); the longest files first (``RUN_FIRST``)."""
    ranks: dict[str, int] = {}  # nodeid → position in RUN_FIRST (tests outside it: after all of them)
    for item in items:
        try:
            path = item.path.relative_to(TESTS_DIR)
        except ValueError:  # a test outside tests/ (a pytester run)
            continue
        ranks[item.nodeid] = _start_rank(path.as_posix())
        folder = path.parts[0]
        for name in DIRECTORY_MARKERS.get(folder, ()):
            item.add_marker(name)

        test_id = item.nodeid.split("/", 1)[-1]
        if folder in REAL_TIME or test_id in REAL_TIME:
            item.add_marker("realtime")
        if folder in SOUND_CARD or test_id in SOUND_CARD:
            item.add_marker("sound_card")
    items.sort(key=lambda item: ranks.get(item.nodeid, len(RUN_FIRST)))  # stable: each rank keeps its order


def _start_rank(path: str) -> int:
    """Where the test file ``path`` (relative to ``tests/``) stands in ``RUN_FIRST``, or after all of them."""
    for rank, prefix in enumerate(RUN_FIRST):
        if path == prefix or path.startswith(prefix + "/"):
            return rank
    return len(RUN_FIRST)


@pytest.fixture(autouse=True)
def _clean_voicelive_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strip AZURE_VOICELIVE_* so every test starts from "no credentials → embedded emulator"."""
    for name in list(os.environ):
        if name.startswith("AZURE_VOICELIVE_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_leaked_tasks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test that leaves a task pending on its event loop.

    Being autouse, this fixture is set up before the test's other fixtures, so it is torn down after them:
    the check sees the loop once the test and its async fixtures' teardowns have run, and before
    pytest-asyncio closes the loop (which would cancel the leftovers silently).
    """
    if not pytest_asyncio.is_async_test(request.node):
        yield
        return
    runner: asyncio.Runner = request.getfixturevalue(f"_{_loop_scope(request)}_scoped_runner")
    loop = runner.get_loop()
    before = asyncio.all_tasks(loop)
    yield
    for _ in range(SETTLE_TICKS):
        if not asyncio.all_tasks(loop) - before:
            break
        runner.run(asyncio.sleep(0))  # wall-clock ok: one loop turn for cancelled tasks to finish
    leaked = asyncio.all_tasks(loop) - before
    if leaked:
        listed = "\n".join(f"  {task!r}" for task in sorted(leaked, key=repr))
        pytest.fail(
            f"the test left {len(leaked)} asyncio task(s) pending; cancel and await them "
            f"(or close what owns them) before the test ends:\n{listed}",
            pytrace=False,
        )


def _loop_scope(request: pytest.FixtureRequest) -> str:
    """The scope of the loop pytest-asyncio runs this test in (its marker, else the ini default)."""
    marker = request.node.get_closest_marker("asyncio")
    scope = marker.kwargs.get("loop_scope") if marker is not None else None
    return scope or request.config.getini("asyncio_default_test_loop_scope") or "function"
