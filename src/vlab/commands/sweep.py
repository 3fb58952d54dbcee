"""``vlab sweep``: run prompts × a grid of turn-detection settings × repeats and write a sweep folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vlab.commands import INTERRUPTED_EXIT
from vlab.commands._args import out_folder

if TYPE_CHECKING:
    from vlab.sweep import SweepConfig


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommand."""
    p = sub.add_parser("sweep", help="run a turn-detection settings sweep over labelled prompts")
    p.add_argument("config", help="sweep config (TOML; see examples/vad_sweep.toml)")
    p.add_argument(
        "--out",
        type=out_folder,
        metavar="SWEEP_DIR",
        help="sweep folder (finished cells are skipped); required unless --dry-run",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config and that each prompt's recording is there, and list the settings, "
        "prompts and where the sessions connect; run nothing, and exit as the run would: 2 when it would stop "
        "before any cell (a malformed endpoint, an --out of the other mode or with cells that ran otherwise, a "
        "missing recording in a VAD-only sweep, the dask executor without dask.distributed), 1 when a "
        "recording is missing",
    )
    p.add_argument(
        "--mode",
        choices=("sessions", "vad"),
        help="override [run] mode: 'vad' decides the cells with the emulator's VAD alone, without sessions "
        "(seconds for a big grid; VAD and score tables only)",
    )
    p.add_argument("--no-resume", action="store_true", help="run every cell again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true", help="also write report.html when done")
    p.set_defaults(func=run)


def _what_resumes(cfg: SweepConfig, out: Path, *, resume: bool) -> tuple[str, bool]:
    """What a sweep into ``out`` would do with the cells it holds (keep them, run them again, or stop).

    Returns the sentence, and whether the sweep would stop.
    """
    from vlab.sweep.grid import counted
    from vlab.sweep.run import finished_cells

    held = finished_cells(cfg, out)
    done = len(held.names)
    if not done:
        return "no finished cell of this sweep; every cell runs", False
    if not resume:
        return f"{done} of {counted(cfg.n_cells, 'cell')} finished; --no-resume runs them again", False
    if held.changed:
        return (
            f"{counted(held.cells_changed, 'finished cell')} ran otherwise ({', '.join(held.changed)} changed "
            "since): the sweep would stop; give another --out, or --no-resume"
        ), True
    if done == cfg.n_cells:
        return f"all {counted(done, 'cell')} finished and kept (only the tables are built again)", False
    return f"{done} of {counted(cfg.n_cells, 'cell')} finished and kept; {cfg.n_cells - done} run", False


def _what_is_kept(cfg: SweepConfig, out: Path, *, resume: bool) -> str:
    """What an interrupted sweep leaves in ``out``, and what the same command, run again, does with it."""
    from vlab.sweep.grid import counted
    from vlab.sweep.run import finished_cells

    held = finished_cells(cfg, out)
    kept = len(held.names) - held.cells_changed  # those that ran otherwise are not this sweep's figures
    of = f"{kept} of {counted(cfg.n_cells, 'cell')} finished"
    if held.changed:  # kept, they would mix with this sweep's: a resumed sweep stops on them
        otherwise = (
            f"{of} in {out} with this config, beside {counted(held.cells_changed, 'finished cell')} that ran "
            f"otherwise ({', '.join(held.changed)} changed since): "
        )
        if resume:  # interrupted before it checked them
            return otherwise + "the same command would stop on them; give another --out, or --no-resume"
        return otherwise + (
            "the same command runs every cell again (--no-resume); without --no-resume, the sweep would stop "
            f"on those {held.cells_changed}"
        )
    if resume:
        return (
            f"{of} and are kept in {out}; run the same command again to go on from there (--no-resume runs "
            "every cell again)"
        )
    return (
        f"{of} and are kept in {out}; the same command runs every cell again (--no-resume): run it without "
        "--no-resume to go on from there"
    )


def _target(cfg: SweepConfig) -> tuple[str | None, str | None]:
    """Where the sweep's sessions connect (:func:`vlab.sweep.target_summary`), or why they cannot.

    Both None for a VAD-only sweep, which makes no session.
    """
    from vlab.errors import VlabError
    from vlab.sweep import target_summary

    if cfg.mode != "sessions":
        return None, None
    try:
        return target_summary(cfg, {}), None
    except VlabError as exc:
        return None, str(exc)


def _no_dask(cfg: SweepConfig) -> str | None:
    """Why the sweep's cells cannot run on Dask, as the run would say it; None if they can, or run here.

    The run's own check: that dask.distributed imports. A ``[run] cluster`` is not probed: the run may still
    stop, unable to reach it.
    """
    if cfg.executor != "dask":  # a VAD-only sweep has none (load_config refuses it)
        return None
    from vlab.errors import ConfigError
    from vlab.sweep.dask_executor import require_dask

    try:
        require_dask()
    except ConfigError as exc:
        return str(exc)
    return None


def _dry_run(cfg: SweepConfig, args: argparse.Namespace, where: str | None, unreachable: str | None) -> int:
    """List what the sweep would run, where, and with the folder's cells; return the code the run would end with."""
    from vlab.errors import ConfigError, first_few, warn_user
    from vlab.sweep import sweep_warnings
    from vlab.sweep.manifest import check_mode
    from vlab.sweep.summary import session_note

    for message in sweep_warnings(cfg, {}):  # what the run would warn of, before it
        warn_user(message)
    for name in cfg.setting_names:
        print(f"  setting  {name}" + ("  (baseline)" if name == cfg.baseline else ""))
    print("  prompts  " + ", ".join(p.id for p in cfg.prompts))
    if cfg.session:
        print("  session  " + session_note(cfg.session))
    if where:
        print("  target   " + where)
    stops = []  # why the run would stop before any cell, as it would say it
    if unreachable:
        stops.append(f"the sweep would stop before it runs, unable to connect: {unreachable}")
    changed = False  # cells in the folder ran otherwise: the folder line says so
    if args.out is not None:
        try:
            check_mode(Path(args.out), cfg.mode)
        except ConfigError as exc:
            stops.append(f"the sweep would stop before it runs: {exc}")
        else:
            resumes, changed = (
                _what_resumes(cfg, Path(args.out), resume=not args.no_resume)
                if cfg.mode == "sessions"
                else ("a VAD-only sweep decides every cell again (in seconds)", False)
            )
            print(f"  folder   {args.out}: {resumes}")
    no_dask = _no_dask(cfg)
    if no_dask:
        stops.append(f"the sweep would stop before it runs: {no_dask}")
    missing = [p for p in cfg.prompts if not Path(p.file).is_file()]
    if missing:
        shown = first_few((f"{p.id} ({p.file})" for p in missing), 10, sep="; ")
        has = "has" if len(missing) == 1 else "have"
        fails = "the VAD-only sweep would stop" if cfg.mode == "vad" else "their cells would fail"
        print(
            f"vlab: {len(missing)} of {len(cfg.prompts)} prompts {has} no recording where the manifest says, "
            f"so {fails}: {shown}",
            file=sys.stderr,
        )
    for why in stops:
        print(f"vlab: {why}", file=sys.stderr)
    stopped = stops or changed or (missing and cfg.mode == "vad")  # a VAD-only sweep reads them all first
    return 2 if stopped else 1 if missing else 0  # as the run would end


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code (1 when a cell failed)."""
    from vlab.errors import ConfigError
    from vlab.sweep import grid_shape, load_config, run_sweep
    from vlab.sweep.grid import counted
    from vlab.sweep.summary import failure_summary, results_table

    cfg = load_config(args.config, mode=args.mode)  # bad configs fail here, before anything runs
    if args.out is None and not args.dry_run:
        raise ConfigError("give the sweep folder with --out SWEEP_DIR (or --dry-run to only list the cells)")
    what = " (VAD only, no sessions)" if cfg.mode == "vad" else ""
    print(
        f"{counted(cfg.n_cells, 'cell')}{what}: {grid_shape(len(cfg.settings), len(cfg.prompts), cfg.repeats)}"
    )
    where, unreachable = _target(cfg)
    if args.dry_run:
        return _dry_run(cfg, args, where, unreachable)
    if where:  # else run_sweep stops and says why, before anything runs
        print("  target   " + where)
    try:
        result = run_sweep(cfg, args.out, resume=not args.no_resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        if cfg.mode == "vad":  # nothing to resume: it writes its tables at the end, in seconds
            raise
        kept = _what_is_kept(cfg, Path(args.out), resume=not args.no_resume)
        print(f"vlab: interrupted: {kept}", file=sys.stderr)
        return INTERRUPTED_EXIT
    counts = {s: sum(1 for c in result.cells if c.status == s) for s in ("ok", "skipped", "error")}
    print(
        f"sweep folder: {result.out}  ({counts['ok']} run, {counts['skipped']} skipped, {counts['error']} failed; {result.wall_s:.1f} s)"
    )
    failed = result.failures()
    if failed:
        print("vlab: " + "\n".join(failure_summary(failed, result.out)), file=sys.stderr)
    points = result.points()
    if not points.empty:
        # a VAD-only sweep has no turns, so its table has no latency
        turns = result.turns() if (result.out / "turns.parquet").exists() else None
        print("\n" + results_table(points, turns))
    if args.report:
        from vlab.report import build_report

        print(f"report: {build_report(result.out)}")
    elif not points.empty:
        print(f"charts: vlab report {result.out}")
    return 1 if counts["error"] else 0
