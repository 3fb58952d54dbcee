"""Running a whole sweep: its cells (in this process or on Dask), then its tables and manifest."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from vlab import protocol_limits
from vlab._progress import progress_bar
from vlab.clock import Clock, SystemClock
from vlab.errors import RunFolderTaken, UsageError, refuse_a_file_in_the_way
from vlab.prompts import LabelledPrompt
from vlab.settings import SessionSettings
from vlab.sweep.cells import (
    CellResult,
    cell_conditions,
    cell_job,
    changed_conditions,
    finished,
    grid_cells,
    lost_cell,
    run_cell,
    unseen_cell,
)
from vlab.sweep.config import SweepConfig, load_config
from vlab.sweep.grid import counted
from vlab.sweep.manifest import check_mode, unfinish, write_manifest
from vlab.sweep.store import CELLS_DIR, VAD_CACHE_DIR, cell_folder, cell_metas, sweep_lock
from vlab.sweep.tables import aggregate

if TYPE_CHECKING:
    from vlab.endpoint import Target


@dataclass
class SweepResult:
    """A finished sweep."""

    out: Path
    cells: list[CellResult]
    wall_s: float

    def turns(self) -> Any:
        """``turns.parquet`` as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out / "turns.parquet")

    def vad(self) -> Any:
        """``vad.parquet`` as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out / "vad.parquet")

    def points(self) -> Any:
        """``points.parquet`` (one operating point per setting) as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out / "points.parquet")

    def failures(self) -> list[tuple[str, str]]:
        """(cell, error) of each cell that failed, in the sweep's order (:mod:`vlab.sweep.summary` lists them)."""
        return [(c.cell, c.error or "") for c in self.cells if c.status == "error"]


async def run_sweep_async(
    config: str | os.PathLike[str] | Mapping[str, Any] | SweepConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    session_options: Mapping[str, Any] | None = None,
    on_cell: Callable[[CellResult], None] | None = None,
    clock: Clock | None = None,
    warn_first: bool = True,
) -> SweepResult:
    """Run a sweep (see :mod:`vlab.sweep`); the async form of :func:`run_sweep`.

    A cell the service throttles (:class:`~vlab.errors.Throttled`, HTTP 429) waits (the service's
    ``Retry-After``, else ``[run] backoff_s`` doubled each time) and runs again, up to
    ``[run] throttle_retries`` times; each wait is logged (logger ``vlab.sweep``) and recorded in the
    cell's ``cell.json`` (``throttled``: attempt, wait and error).

    Args:
        config: A TOML path, a dict of the same shape or a :class:`SweepConfig`.
        out: The sweep folder (created).
        resume: Skip cells whose ``cell.json`` says ``ok``.
        progress: Show a tqdm progress bar (the notebook widget in Jupyter).
        session_options: Passed to every :class:`vlab.Session` (e.g. ``{"dotenv_path": False}``).
        on_cell: Called with each cell's result as soon as its ``cell.json`` is written (a widget's
            progress, or a test that stops the sweep after a given cell).
        clock: The clock the back-off waits on (default: the system clock; a test injects its own).
        warn_first: Warn, before any cell runs, of what the figures could not be trusted for
            (:func:`sweep_warnings`); False where the caller showed them (the sweep panel).

    Returns:
        The sweep folder and what every cell did.

    Raises:
        ConfigError: The config is wrong, or so is the target's (a malformed endpoint: every cell would
            fail to connect), before anything runs or is written.
    """
    refuse_a_file_in_the_way(out, str(out), "the sweep folder ")
    cfg = config if isinstance(config, SweepConfig) else load_config(config)
    # resolved once; a target no cell could connect to stops a sweep of sessions here
    target = _resolved(session_options or {}) if cfg.mode == "sessions" else _target(session_options or {})
    cfg = _with_target_model(cfg, target)
    if cfg.executor == "dask":  # before the folder is made
        from vlab.sweep.dask_executor import require_dask

        require_dask()
    # held while it runs: a second sweep into the folder would delete this one's half-written cells
    with sweep_lock(out) as out_dir:  # absolute: a Dask worker's working folder is its own
        check_mode(out_dir, cfg.mode)
        if warn_first:
            from vlab.errors import warn_user

            for message in _warnings(cfg, target):
                warn_user(message)
        results, wall_s = await _sweep_into(
            cfg, out_dir, resume, progress, dict(session_options or {}), on_cell, clock or SystemClock()
        )
    return SweepResult(Path(out), results, wall_s)


async def _sweep_into(
    cfg: SweepConfig,
    out_dir: Path,
    resume: bool,
    progress: bool,
    options: dict[str, Any],
    on_cell: Callable[[CellResult], None] | None,
    clock: Clock,
) -> tuple[list[CellResult], float]:
    """:func:`run_sweep_async` into ``out_dir`` (absolute, locked): what each cell did and their wall time."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    cells = grid_cells(cfg)
    results: list[CellResult] = []
    bar = None
    if progress:
        bar = progress_bar(len(cells), "sweep", "cell")

    def done(result: CellResult) -> None:
        results.append(result)
        if bar is not None:
            bar.update(1)
        if on_cell is not None:
            on_cell(result)

    if cfg.mode == "vad":  # CPU-bound: on a thread, so that a notebook's loop stays free
        loop = asyncio.get_running_loop()

        def done_on_loop(result: CellResult) -> None:
            loop.call_soon_threadsafe(done, result)

        try:
            wall_s = await asyncio.to_thread(_run_vad_sweep, cfg, out_dir, cells, started, done_on_loop)
        finally:
            if bar is not None:
                bar.close()
        return results, wall_s

    todo, kept = _to_run(cfg, out_dir, cells) if resume else (list(cells), [])
    unfinish(out_dir)  # the folder reads as finished again once this run's manifest is written, last
    (out_dir / CELLS_DIR).mkdir(parents=True, exist_ok=True)
    for name in kept:
        done(CellResult(name, "skipped"))
    try:
        analysed = await _run_cells(cfg, out_dir, todo, options, clock, done)
    finally:
        if bar is not None:
            bar.close()

    wall_s = time.perf_counter() - t0
    metas = _this_sweeps(out_dir, {cell[0] for cell in cells})  # read once, for the tables and the manifest
    await _build_tables(out_dir, cfg, analysed, metas, progress)
    write_manifest(out_dir, cfg, cells, started, wall_s, metas, kept=len(kept))
    return results, wall_s


async def _run_cells(
    cfg: SweepConfig,
    out_dir: Path,
    todo: list[tuple[str, int, SessionSettings, LabelledPrompt, int]],
    options: dict[str, Any],
    waits: Clock,
    done: Callable[[CellResult], None],
) -> dict[str, dict[str, Any]]:
    """Run the cells ``todo`` (here, ``[run] concurrency`` at once, or on Dask), each result to ``done``.

    Returns the tables of the cells analysed where they ran (on Dask workers), by cell name.
    """
    from vlab.audio.silero_worker import SileroWorker

    sem = asyncio.Semaphore(min(cfg.concurrency, cfg.max_sessions or cfg.concurrency))

    async def one(name: str, index: int, settings: SessionSettings, prompt: LabelledPrompt, rep: int) -> None:
        async with sem:
            done(await run_cell(cfg, out_dir, name, index, settings, prompt, rep, options, waits))

    analysed: dict[str, dict[str, Any]] = {}
    worker = SileroWorker.shared()
    worker.use_cache(out_dir / VAD_CACHE_DIR)  # the embedded emulator's Silero runs once per audio
    try:
        if cfg.executor == "dask":
            from vlab.sweep.dask_executor import run_on_dask

            def dask_done(
                cell: tuple[Any, ...], result: tuple[CellResult, dict[str, Any] | None] | BaseException
            ) -> None:
                if isinstance(result, BaseException):
                    done(lost_cell(out_dir, cell, result))
                    return
                unseen = unseen_cell(out_dir, cell, result[0])  # written where this process cannot see it
                if unseen is not None:
                    done(unseen)
                    return
                if result[1] is not None:
                    analysed[cell[0]] = result[1]
                done(result[0])

            await run_on_dask(
                functools.partial(cell_job, cfg, out_dir, options),
                [(c[0], c) for c in todo],
                dask_done,
                workers=cfg.workers,
                threads_per_worker=cfg.concurrency,
                cluster=cfg.cluster,
                max_sessions=cfg.max_sessions,
            )
        else:
            await asyncio.gather(*(one(*c) for c in todo))
    finally:
        worker.use_cache()
        await worker.sync()  # the sweep's VAD cache is saved before the sweep returns (its folder may go)
    return analysed


async def _build_tables(
    out_dir: Path,
    cfg: SweepConfig,
    analysed: Mapping[str, dict[str, Any]],
    metas: Sequence[dict[str, Any]],
    progress: bool,
) -> None:
    """:func:`aggregate` on a thread, with a progress bar over the cells it analyses (tens of ms each).

    The event loop, a notebook's widgets with it, stays free meanwhile.
    """
    loop = asyncio.get_running_loop()
    bar = None
    if progress:
        bar = progress_bar(len(metas), "tables", "cell")

    def step() -> None:
        if bar is not None:
            loop.call_soon_threadsafe(bar.update, 1)

    building = asyncio.ensure_future(asyncio.to_thread(aggregate, out_dir, cfg, analysed, metas, step))
    try:
        await asyncio.shield(building)
    except asyncio.CancelledError:
        await building  # a thread cannot be stopped: the sweep stops once its tables are whole
        raise
    finally:
        if bar is not None:
            bar.close()  # after the updates: they were queued on the loop before the thread's result


class FinishedCells(NamedTuple):
    """What a sweep folder holds of a sweep's cells (:func:`finished_cells`)."""

    names: list[str]
    """The finished cells of the sweep, by name, in the sweep's order: a resumed sweep keeps them."""
    changed: list[str]
    """What those cells ran with otherwise than the sweep would, named as a config names it
    (``instructions``, ``[target] latency``), in the order first met; empty when they ran alike."""
    cells_changed: int
    """How many of them ran otherwise."""


def finished_cells(
    cfg: SweepConfig, out_dir: str | os.PathLike[str], session_options: Mapping[str, Any] | None = None
) -> FinishedCells:
    """The finished cells of ``cfg``'s sweep in ``out_dir``, and what of them ran with other settings.

    The settings are those a cell's ``cell.json`` keeps (:func:`~vlab.sweep.cells.cell_conditions`: the
    prompt's recording, ``[session]`` and the other session settings, the model its connection asked for,
    the tools' answers, the emulator's ``[target]``); the sweep's cells would connect as
    ``session_options`` say (:func:`on_target`). Each ``cell.json`` is read once.
    """
    return _finished_on_target(on_target(cfg, session_options or {}), Path(out_dir))


def _finished_on_target(cfg: SweepConfig, out_dir: Path) -> FinishedCells:
    """:func:`finished_cells` of a ``cfg`` whose settings already name the model (:func:`on_target`)."""
    names: list[str] = []
    changed: dict[str, None] = {}
    cells_changed = 0
    for name, _, settings, prompt, _ in grid_cells(cfg):
        meta = finished(cell_folder(out_dir, name))
        if meta is not None:
            names.append(name)
            differs = changed_conditions(meta, cell_conditions(cfg, settings, prompt))
            changed.update(dict.fromkeys(differs))
            cells_changed += bool(differs)
    return FinishedCells(names, list(changed), cells_changed)


def _to_run(
    cfg: SweepConfig,
    out_dir: Path,
    cells: Sequence[tuple[str, int, SessionSettings, LabelledPrompt, int]],
) -> tuple[list[tuple[str, int, SessionSettings, LabelledPrompt, int]], list[str]]:
    """Of ``cells`` (the sweep's), the ones a resumed sweep runs, and the names of the finished ones it keeps.

    ``cfg`` is on its target already (:func:`on_target`), as :func:`run_sweep_async` made it.

    Raises:
        RunFolderTaken: A finished cell ran with other settings (:func:`finished_cells`): kept, its figures
            would mix with this sweep's; nothing has run.
    """
    held = _finished_on_target(cfg, out_dir)
    if held.changed:
        raise RunFolderTaken(
            f"{out_dir} holds {counted(held.cells_changed, 'finished cell')} of this sweep that ran otherwise "
            f"({', '.join(held.changed)} changed since); resumed, their figures would mix with this sweep's. "
            "Give this sweep a folder of its own (vlab sweep --out), or run every cell again (vlab sweep "
            "--no-resume; run_sweep(resume=False))"
        )
    kept = set(held.names)
    return [cell for cell in cells if cell[0] not in kept], held.names


def _this_sweeps(out_dir: Path, names: set[str]) -> list[dict[str, Any]]:
    """What the ``cell.json`` of each of the cells ``names`` in ``out_dir`` holds.

    A folder that held another sweep (another grid, prompt set or repeats) keeps that sweep's cells: they
    stay out of the tables, with a warning, instead of mixing into them.
    """
    from vlab.errors import warn_user

    metas = cell_metas(out_dir)
    ours = [meta for meta in metas if meta.get("cell") in names]
    if len(ours) < len(metas):
        warn_user(
            f"{out_dir} also holds {len(metas) - len(ours)} cells this sweep does not have (another grid, prompt "
            "set or number of repeats); they are left out of its tables. Give each sweep a folder of its own"
        )
    return ours


def _run_vad_sweep(
    cfg: SweepConfig,
    out_dir: Path,
    cells: Sequence[tuple[str, int, SessionSettings, LabelledPrompt, int]],
    started: datetime,
    done: Callable[[CellResult], None],
) -> float:
    """A VAD-only sweep from the cells to the tables and the manifest; returns the cells' wall time."""
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    unfinish(out_dir)  # the folder reads as finished again once this run's manifest is written, last
    decided, metas = _decide_vad_cells(cfg, out_dir, cells, done)
    wall_s = time.perf_counter() - t0
    aggregate(out_dir, cfg, decided, metas)
    write_manifest(out_dir, cfg, cells, started, wall_s, metas)
    return wall_s


def _decide_vad_cells(
    cfg: SweepConfig,
    out_dir: Path,
    cells: Sequence[tuple[str, int, SessionSettings, LabelledPrompt, int]],
    done: Callable[[CellResult], None],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Decide every cell with the emulator's VAD, without sessions (:mod:`vlab.sweep.vad`).

    Returns:
        Each cell's analysis (by name) and what its ``cell.json`` would hold (the cells have no folders:
        their record is the manifest).
    """
    from vlab.audio.vad_cache import VadCache
    from vlab.sweep.vad import VAD_TARGET, vad_cells

    by_name = {c[0]: c for c in cells}
    recorded = {i: s.to_dict() for i, s in enumerate(cfg.settings)}  # as a session cell records them
    metas: list[dict[str, Any]] = []
    t = time.perf_counter()
    cache = VadCache(out_dir / VAD_CACHE_DIR)

    def record(names: Sequence[str]) -> None:
        nonlocal t
        cache.save()  # each batch's probabilities: a killed sweep, run again, decides its cells from them
        per_cell_s, t = (time.perf_counter() - t) / max(len(names), 1), time.perf_counter()
        for name in names:
            _, index, _, prompt, rep = by_name[name]
            metas.append(
                {
                    "cell": name,
                    "setting": cfg.setting_names[index],
                    "prompt": prompt.id,
                    "repeat": rep,
                    "settings": recorded[index],
                    "status": "ok",
                    "target": VAD_TARGET,
                }
            )
            done(CellResult(name, "ok", per_cell_s))

    analysed = vad_cells(cells, cache, record)
    cache.save()
    return analysed, metas


def sweep_warnings(cfg: SweepConfig, session_options: Mapping[str, Any]) -> list[str]:
    """What a sweep warns of before its cells run: what its figures could not be trusted for.

    Prompts whose labels they cannot trust or use (:func:`vlab.prompts.label_warnings`); on vlab's
    embedded emulator, ``repeats``, which it decides and answers alike, and voices or models its latency
    model cannot tell apart (:func:`_answered_alike`); against Azure, audio sent faster than real time.
    """
    return _warnings(cfg, _target(session_options))


def _warnings(cfg: SweepConfig, target: Target | None) -> list[str]:
    """:func:`sweep_warnings` for sessions that connect to ``target`` (None: its configuration is wrong)."""
    from vlab.audio.pacing import speed_text
    from vlab.prompts import label_warnings

    messages = label_warnings(cfg.prompts)
    if target is not None and target.kind == "emulator":
        messages.extend(_answered_alike(cfg))
        messages.extend(_words_of_narrowband_audio(cfg))
        if cfg.repeats > 1:
            messages.append(
                f"[run] repeats = {cfg.repeats} on vlab's embedded emulator: it decides and answers every repeat "
                "of a cell alike (its VAD is deterministic and its latency draws are seeded), so the repeats add "
                "no evidence, yet the 95 % intervals narrow as if they did. Add prompts instead; against Azure, "
                "repeats do vary"
            )
    if target is not None and not target.on_this_machine and cfg.mode == "sessions" and cfg.speed > 1:
        pace = "as fast as it can be sent" if math.isinf(cfg.speed) else f"{cfg.speed:g}× faster than spoken"
        messages.append(
            f"[target] speed = {speed_text(cfg.speed)!r} against Azure: the audio reaches the service {pace}, "
            "so the stages measured on the client clock (voice-to-voice, the waterfall) are compressed. Set "
            "[target] speed = 1 to send it as a caller would"
        )
    return messages


NARROWBAND_HZ = 8000
"""Input at this rate or below (telephone audio) is band-limited to 4 kHz: the emulator's recognizer hears
about half its words (docs/emulator.md)."""


def _words_of_narrowband_audio(cfg: SweepConfig) -> list[str]:
    """The warning for settings whose turns the emulator decides by the words of telephone audio, if any.

    End-of-utterance detection (and a semantic VAD's) holds a turn by the words its recognizer hears, and
    at 8 kHz it loses about half of them: those settings' cut-offs are then the recognizer's, not the
    service's.
    """
    narrowband = [s for s in cfg.settings if s.input_sample_rate <= NARROWBAND_HZ]
    held = [
        s for s in narrowband if protocol_limits.eou_timeout_ms(s.to_wire().get("turn_detection")) is not None
    ]
    if not held:
        return []
    audio = f"{held[0].input_audio_format} at {held[0].input_sample_rate} Hz"
    return [
        f"[session] input audio {audio} on vlab's embedded emulator, with end-of-utterance detection: the "
        "emulator holds a paused turn by the words its recognizer hears, and it hears about half the words "
        "of 8 kHz audio: these settings' cut-offs are then as much its recognizer's doing as the settings'. "
        "Compare them against Azure, or on the emulator with PCM16 at 16 kHz or more"
    ]


def _answered_alike(cfg: SweepConfig) -> list[str]:
    """The warnings for a grid of voices or models the emulator's latency model has no split for, if any.

    Its presets have neither in them, so the voices (models) get the same latencies, draw for draw; a fitted
    ``latency.json`` draws the stages of a voice (model) it has no split for from the runs of every one.
    """
    from vlab.emulator.latency import resolve
    from vlab.settings import NotGiven
    from vlab.sweep.grid import voice_label

    latency = resolve(cfg.latency)
    fitted = latency.fitted
    voices = [voice_label(s.voice) for s in cfg.settings if not isinstance(s.voice, NotGiven)]
    axes = (
        ("voice", voices, fitted.by_voice if fitted else {}, "speech synthesis", "their own synthesis"),
        ("model", list(cfg.models), fitted.by_model if fitted else {}, "stages", "their own speed"),
    )
    messages = []
    for key, given, splits, drawn, differ in axes:
        values = list(dict.fromkeys(given))
        unsplit = [v for v in values if v not in splits]
        if len(values) < 2 or not unsplit:
            continue
        named = " and ".join(", ".join(unsplit).rsplit(", ", 1))
        if fitted is None:
            why = (
                f"its latency model {latency.name!r} has no {key} in it, so {named} get the same latencies, "
                "draw for draw"
            )
        else:
            why = (
                f"its latency model {latency.name!r} has no split for {named}, so it draws "
                f"{'its' if len(unsplit) == 1 else 'their'} {drawn} from the runs of every {key}"
            )
        messages.append(
            f"[grid] {key} on vlab's embedded emulator: {why}. To compare {key}s offline, fit a latency.json "
            f"from Azure runs with each of them (`vlab calibrate`; docs/calibration.md) and give it as [target] "
            f"latency; against Azure, the {key}s differ by {differ}"
        )
    return messages


def on_target(cfg: SweepConfig, session_options: Mapping[str, Any]) -> SweepConfig:
    """``cfg`` with the model each setting connects with in its settings: the grid's, else the target's.

    Without ``[grid] model`` every cell connects with the target's model (``session_options``' ``model``,
    else ``AZURE_VOICELIVE_MODEL``, else ``gpt-realtime``): written into the settings, it is what each
    ``cell.json`` keeps, the tables' ``model`` column says, and a resumed sweep compares.
    """
    return _with_target_model(cfg, _target(session_options))


def _with_target_model(cfg: SweepConfig, target: Target | None) -> SweepConfig:
    """:func:`on_target` for sessions that connect to ``target`` (None: its configuration is wrong)."""
    if cfg.models:
        return cfg
    if target is None or all(s.model == target.model for s in cfg.settings):
        return cfg
    return dataclasses.replace(cfg, settings=tuple(s.replace(model=target.model) for s in cfg.settings))


def target_summary(cfg: SweepConfig, session_options: Mapping[str, Any]) -> str:
    """Where the sweep's sessions would connect, with which models, in one line (its dry run says it).

    For example ``embedded emulator, model gpt-realtime; latency typical, speed max``.

    Raises:
        VlabError: The target's configuration is wrong (:func:`run_sweep_async` would stop on it).
    """
    from vlab.audio.pacing import speed_label

    target = _resolved(session_options)
    latency = f"latency {cfg.latency}, " if target.kind == "emulator" else ""
    return f"{target.describe(models=cfg.models)}; {latency}speed {speed_label(cfg.speed)}"


def _target(session_options: Mapping[str, Any]) -> Target | None:
    """Where sessions made with ``session_options`` connect (None when its configuration is wrong)."""
    from vlab.errors import VlabError

    try:
        return _resolved(session_options)
    except VlabError:  # run_sweep_async stops on it, before anything runs
        return None


def _resolved(session_options: Mapping[str, Any]) -> Target:
    """Where sessions made with ``session_options`` connect (:func:`vlab.endpoint.resolve_target`)."""
    from vlab.endpoint import resolve_target

    return resolve_target(
        session_options.get("endpoint"),
        session_options.get("api_key"),
        session_options.get("model"),
        dotenv_path=session_options.get("dotenv_path"),
        entra_id=session_options.get("credential") is not None,
    )


def run_sweep(
    config: str | os.PathLike[str] | Mapping[str, Any] | SweepConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    session_options: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run a sweep from synchronous code (a script, the CLI). In a notebook, ``await run_sweep_async(...)``.

    See :func:`run_sweep_async` for the arguments.

    Raises:
        UsageError: Called where an event loop runs (a notebook cell, a coroutine), where it cannot block.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise UsageError(
            "run_sweep cannot run inside a running event loop (a notebook cell, async code): there, use "
            "`await run_sweep_async(config, out, ...)`, which takes the same arguments"
        )
    from vlab._run import run_main

    return run_main(
        run_sweep_async(config, out, resume=resume, progress=progress, session_options=session_options)
    )
