"""A sweep folder's lock and what a folder without a manifest reads as while, or after, a sweep runs into it."""

from __future__ import annotations

import json
import os
import re

import pytest

from vlab.errors import ConfigError
from vlab.sweep.manifest import check_mode, unfinish
from vlab.sweep.store import LOCK_FILE, not_a_sweep, sweep_lock, swept_by


def test_a_second_sweep_of_this_process_into_a_locked_folder_is_refused_until_the_first_releases_it(tmp_path):
    out = tmp_path / "s"
    assert swept_by(out) is None  # no lock file yet
    with sweep_lock(out) as folder:
        assert folder == out and folder.is_absolute()
        assert swept_by(out) == os.getpid()
        with pytest.raises(
            ConfigError,
            match=rf"^{re.escape(str(out))} is being swept by another sweep of this process \(pid {os.getpid()}\); "
            "wait for it to finish or give this sweep another --out$",
        ):
            with sweep_lock(out):
                pass
        assert swept_by(out) == os.getpid()  # the refused one released nothing
    assert swept_by(out) is None and (out / LOCK_FILE).read_text() == ""
    with sweep_lock(out):  # taken again once released
        assert swept_by(out) == os.getpid()


def test_a_relative_sweep_folder_is_locked_and_given_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with sweep_lock("runs/x") as folder:
        assert folder == tmp_path / "runs" / "x"
        monkeypatch.chdir(tmp_path.parent)  # the working folder changes meanwhile: the path still holds
        assert (folder / LOCK_FILE).is_file()


def test_a_folder_a_sweep_runs_into_says_so_rather_than_that_it_stopped(tmp_path):
    out = tmp_path / "s"
    (out / "cells" / "a").mkdir(parents=True)
    (out / "cells" / "a" / "cell.json").write_text(json.dumps({"cell": "a", "status": "ok"}))
    with sweep_lock(out):
        assert not_a_sweep(out) == (
            f"{str(out)!r} holds a sweep still running (pid {os.getpid()}): its tables and manifest.json are "
            "written once its cells have run; wait for it to finish"
        )
    assert "holds a sweep that stopped before writing its tables (1 cells finished)" in str(not_a_sweep(out))


def test_a_folder_whose_manifest_a_re_run_removed_still_refuses_the_other_mode(tmp_path):
    (tmp_path / "manifest.json").write_text(
        json.dumps({"kind": "vlab-sweep", "grid": [], "mode": "sessions"})
    )
    (tmp_path / "cells" / "a").mkdir(parents=True)
    (tmp_path / "cells" / "a" / "cell.json").write_text(json.dumps({"cell": "a", "status": "ok"}))
    unfinish(tmp_path)  # a re-run, stopped before it wrote its own manifest
    assert not (tmp_path / "manifest.json").exists()
    with pytest.raises(
        ConfigError, match="holds a sweep of mode 'sessions'; run mode 'vad' into another folder"
    ):
        check_mode(tmp_path, "vad")
    check_mode(tmp_path, "sessions")


def test_unfinishing_a_folder_leaves_a_prompt_set_s_manifest_alone(tmp_path):
    prompts = json.dumps({"prompts": [{"id": "a", "file": "a.wav"}]})
    (tmp_path / "manifest.json").write_text(prompts)
    unfinish(tmp_path)
    assert (tmp_path / "manifest.json").read_text() == prompts


def test_vlab_runs_lists_a_sweep_still_running_as_running_not_stopped(tmp_path):
    from vlab.runs import find_runs

    cell = tmp_path / "s" / "cells" / "c1"
    cell.mkdir(parents=True)
    (cell / "cell.json").write_text(json.dumps({"status": "ok"}))
    (cell / "session.json").write_text(json.dumps({"started_at": "2026-12-08T01:00:00Z"}))
    with sweep_lock(tmp_path / "s"):
        [row] = find_runs(tmp_path).to_dict("records")
        assert (row["kind"], row["ended"]) == (
            "running sweep",
            f"running (pid {os.getpid()}): not finished yet",
        )
    [row] = find_runs(tmp_path).to_dict("records")  # it ended without its tables: a stopped sweep
    assert (row["kind"], row["ended"]) == ("stopped sweep", "stopped (the same vlab sweep command goes on)")


def test_a_file_system_without_locks_is_said_to_be_one_not_another_sweep(tmp_path, monkeypatch):
    # any error of flock read as "being swept by another process (pid 0)"
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(
        ConfigError, match=r"cannot lock \.vlab-sweep\.lock .*No locks available.*support file locks"
    ):
        with sweep_lock(tmp_path / "s"):
            pass
    assert swept_by(tmp_path / "s") is None


def test_a_reader_asking_who_sweeps_takes_no_lock_when_nobody_does(tmp_path, monkeypatch):
    # a vlab runs at the moment a sweep started held the lock shared, and the sweep was refused
    import fcntl

    out = tmp_path / "s"
    with sweep_lock(out):
        pass
    taken = []
    real = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: taken.append(op) or real(fd, op))
    assert swept_by(out) is None and taken == []
    (out / LOCK_FILE).write_text("999999999\n")  # a killed sweep's pid, long gone
    assert swept_by(out) is None and taken == []
