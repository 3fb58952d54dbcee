"""The `vlab` command line, run as a user would."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import vlab
from vlab.bundled import bundled_dir
from vlab.calibrate import calibrate
from vlab.cli import BROKEN_PIPE_EXIT, build_parser, main
from vlab.commands._args import seconds, speed
from vlab.commands.replay import turn_detection
from vlab.corpus.labeller import speech_ends_ms
from vlab.errors import ConfigError
from vlab.metrics import turn_latency
from vlab.prompts import load_prompt_set
from vlab.report import build_report
from vlab.settings import AzureSemanticVad, EndOfUtterance, ServerVad


def _vlab(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vlab", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_replay_writes_a_run_folder_and_prints_a_summary(tmp_path, prompt):
    wav = tmp_path / "prompt.wav"
    sf.write(wav, np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate)
    out = tmp_path / "run"
    result = _vlab(
        "replay", str(wav), "--out", str(out), "--speed", "max", "--silence-duration-ms", "600", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"run folder: {out}" in result.stdout and "turns answered: 1" in result.stdout
    # where it connected: the embedded emulator's port is left out, it meant nothing once it stopped
    assert "\ntarget: embedded emulator, model gpt-realtime\n" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("turn 1:"))
    assert "voice-to-voice" in line and "endpointing" in line and "(simulated timeline)" in line
    frame = vlab.load_log(out)
    turn = turn_latency(frame).iloc[0]
    assert (
        f"voice-to-voice {turn.voice_to_voice_ms:.0f} ms" in line
    )  # the same figure as turns.parquet would show
    stopped = frame[frame["type"] == "input_audio_buffer.speech_stopped"]["audio_end_ms"].iloc[0]
    assert abs(stopped - (prompt.speech_end_ms + 600)) < 50
    done = frame[frame["type"] == "response.done"]["payload"].map(json.loads)
    usage = [d["response"]["usage"] for d in done]
    total, given, said = (sum(u[k] for u in usage) for k in ("total_tokens", "input_tokens", "output_tokens"))
    assert f"tokens used: {total} ({given} in, {said} out; the responses' usage)" in result.stdout


def test_replay_into_a_folder_that_holds_a_run_needs_force(tmp_path, prompt, capsys):
    wav = tmp_path / "prompt.wav"
    sf.write(wav, np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate)
    out = tmp_path / "run"
    args = ["replay", str(wav), "--manual", "--speed", "max", "--out", str(out)]
    assert main(args) == 0
    first = json.loads((out / "session.json").read_text())["started_at"]
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"vlab: error: {out} already holds a run (events.jsonl); the replay would replace it. Choose another "
        "--out, or pass --force to replace it\n"
    )
    assert json.loads((out / "session.json").read_text())["started_at"] == first  # untouched
    assert main([*args, "--force"]) == 0
    assert json.loads((out / "session.json").read_text())["started_at"] != first
    lines = (out / "events.jsonl").read_text().splitlines()  # the new run alone, not added to the old one
    assert sum('"type":"session.created"' in line for line in lines) == 1
    assert len(lines) == len(pd.read_parquet(out / "events.parquet"))


def test_the_default_run_folder_of_a_replay_is_a_new_one(tmp_path, monkeypatch):
    import datetime as dt

    import vlab.log.files
    import vlab.replay

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 6, 7, 30, 0)

    monkeypatch.setattr(vlab.log.files, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    assert vlab.log.new_run_dir("replay") == Path("runs/replay-20261206-073000")
    assert vlab.log.new_run_dir("replay") == Path("runs/replay-20261206-073000-2")  # the first is taken
    third = vlab.log.new_run_dir("replay", root=tmp_path / "runs")
    assert third == tmp_path / "runs/replay-20261206-073000-3"
    assert sorted(p.name for p in Path("runs").iterdir()) == [
        "replay-20261206-073000", "replay-20261206-073000-2", "replay-20261206-073000-3",
    ]  # fmt: skip  # each created, empty, so that no one else gets it


def test_replay_manual_mode(tmp_path, prompt):
    wav = tmp_path / "prompt.wav"
    sf.write(wav, np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate)
    result = _vlab("replay", str(wav), "--manual", "--speed", "max", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "turns answered: 1" in result.stdout


def test_replay_says_which_replies_were_cancelled_before_their_first_audio(tmp_path, capsys):
    # a recording of the digits, unlabelled: its pauses end turns at the default 500 ms; the next digit
    # cancels each reply before it speaks. Each such turn read "voice-to-voice n/a = … + first audio n/a"
    # under "turns answered"
    take = tmp_path / "digits.wav"
    take.write_bytes((bundled_dir("prompts") / "digits.wav").read_bytes())
    assert main(["replay", str(take), "--out", str(tmp_path / "run"), "--speed", "max"]) == 0
    lines = capsys.readouterr().out.splitlines()
    unheard = [line for line in lines if line.endswith("(simulated timeline)") and "before its first" in line]
    (answered,) = [line for line in lines if line.startswith("turns answered: ")]
    assert len(unheard) >= 1 and answered.endswith(f" ({len(unheard)} cancelled before their first audio)")
    assert all(
        re.match(r"  turn \d+: cancelled before its first audio; endpointing \d+ ms \+ turn commit", x)
        for x in unheard
    )
    assert all("voice-to-voice" not in line for line in unheard)
    assert any("voice-to-voice" in line and "n/a" not in line for line in lines)  # the last one was heard
    # the bundled digits are labelled one turn, the pauses inside it: those replies were false cut-offs
    assert main(["replay", "digits", "--out", str(tmp_path / "labelled"), "--speed", "max"]) == 0
    cut = [line for line in capsys.readouterr().out.splitlines() if "false cut-off" in line]
    assert len(cut) == len(unheard)


def test_a_replayed_prompt_s_labels_are_those_of_its_manifest_entry_when_it_labels_a_turn_s_end():
    from vlab.prompts import prompt_file

    bundled = {p.id: p for p in load_prompt_set()}
    assert prompt_file("pause_600") == (str(bundled["pause_600"].file), bundled["pause_600"])
    assert prompt_file(str(bundled["two_turns"].file)) == (
        str(bundled["two_turns"].file),
        bundled["two_turns"],
    )
    assert prompt_file("noise_only") == (str(bundled["noise_only"].file), None)  # no end of turn to time from


def test_replay_times_each_wait_from_the_labels_else_from_where_the_speech_ends_in_the_audio(
    tmp_path, capsys, monkeypatch
):
    """pause_600 under the semantic VAD: the emulator holds the turn for more speech before it ends it, so
    the server's audio_end_ms minus the silence timer is past where the user stopped."""
    wav = bundled_dir("prompts") / "pause_600.wav"
    (labels,) = [p.end_of_turn_ms for p in load_prompt_set() if p.id == "pause_600"]

    def replayed(given: str, run: str) -> str:
        flags = ["--semantic-vad", "--silence-duration-ms", "300", "--speed", "max"]
        assert main(["replay", given, "--out", str(tmp_path / run), *flags]) == 0
        return capsys.readouterr().out

    for given, run in (("pause_600", "by_id"), (str(wav), "in_its_folder")):  # beside its manifest.json
        out = replayed(given, run)
        labelled = turn_latency(vlab.load_log(tmp_path / run), end_of_turn_ms=labels).iloc[0]
        assert "\nend of speech: the prompt's labels\n" in out and labelled.a_eos_source == "label"
        assert f"voice-to-voice {labelled.voice_to_voice_ms:.0f} ms" in out
    copy = tmp_path / "mine" / "take.wav"  # the same audio with no labels: where its speech ends is found
    copy.parent.mkdir()
    copy.write_bytes(wav.read_bytes())
    out = replayed(str(copy), "copy")
    found = turn_latency(
        vlab.load_log(tmp_path / "copy"), speech_ends_ms=speech_ends_ms(*sf.read(copy))
    ).iloc[0]
    assert (
        "\nend of speech: found in the prompt's audio, so each wait includes any wait for more speech (an "
        "end-of-utterance timeout of up to 1000 ms)\n"
    ) in out
    assert found.a_eos_source == "audio" and f"voice-to-voice {found.voice_to_voice_ms:.0f} ms" in out
    assert (
        abs(found.voice_to_voice_ms - labelled.voice_to_voice_ms) < 30
    )  # the labeller's edge, not the label
    monkeypatch.setattr("vlab.corpus.labeller.speech_ends_ms", lambda samples, rate: [])  # none found
    out = replayed(str(copy), "none")
    assert (
        "\nend of speech: estimated for turn 1 (audio_end_ms minus the silence timer; no end of speech found "
        "in the audio near it), so a wait for more speech (up to 1000 ms) is not in it; replay a labelled prompt"
    ) in out
    estimated = turn_latency(vlab.load_log(tmp_path / "none")).iloc[0]
    assert f"voice-to-voice {estimated.voice_to_voice_ms:.0f} ms" in out
    assert estimated.voice_to_voice_ms < labelled.voice_to_voice_ms - 500  # the hold was left out
    assert main(["prompts", "label", str(copy.parent)]) == 0  # labels proposed for the copy: said unreviewed
    out = replayed(str(copy), "auto")
    assert (
        "\nend of speech: the prompt's labels (proposed by vlab prompts label, not reviewed: "
        "vlab.widgets.LabelEditor reviews them)\n"
    ) in out


def test_sweep_dry_run_lists_the_cells_and_runs_nothing(tmp_path, capsys):
    config = bundled_dir("examples") / "eou_sweep.toml"
    assert main(["sweep", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "48 cells: 6 settings × 8 prompts × 1 repeat"
    assert "  setting  thr=0.5 pad=300 sil=500  (baseline)" in out and len(out) == 9
    assert out[-2].startswith("  prompts  pause_300, pause_600")
    assert out[-1] == "  target   embedded emulator, model gpt-realtime; latency typical, speed max"
    assert main(["sweep", str(config)]) == 2  # no --out: nothing to write into, nothing run
    assert "give the sweep folder with --out SWEEP_DIR" in capsys.readouterr().err


def test_a_dry_run_says_where_the_sessions_would_connect_and_with_which_models(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env of the machine's
    monkeypatch.setenv("AZURE_VOICELIVE_ENDPOINT", "https://contoso.cognitiveservices.azure.com")
    monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", "sk-dry-run-secret")
    config = tmp_path / "sweep.toml"
    config.write_text(
        '[target]\nspeed = "max"\n[grid]\nthreshold = [0.5]\nmodel = ["gpt-realtime", "gpt-4.1"]\n'
    )
    assert main(["sweep", str(config), "--dry-run"]) == 0
    said = capsys.readouterr()
    assert said.out.splitlines()[-1] == (
        "  target   Azure endpoint https://contoso.cognitiveservices.azure.com (API key), "
        "models gpt-realtime, gpt-4.1; speed max"
    )
    # what the run would warn of: Azure fed faster than real time
    assert "[target] speed = 'max' against Azure" in said.err and "speed = 1" in said.err
    assert "sk-dry-run-secret" not in said.out + said.err
    config.write_text("[target]\nspeed = 1\n[grid]\nthreshold = [0.5]\n")
    assert main(["sweep", str(config), "--dry-run"]) == 0
    said = capsys.readouterr()
    assert said.out.splitlines()[-1].endswith(", model gpt-realtime; speed 1") and said.err == ""
    # a target no cell could connect to fails the dry run, with the reason
    monkeypatch.setenv(
        "AZURE_VOICELIVE_ENDPOINT", "https://contoso.cognitiveservices.azure.com/voice-live/realtime"
    )
    assert main(["sweep", str(config), "--dry-run"]) == 2  # as the run: stopped before it runs
    said = capsys.readouterr()
    assert "  target" not in said.out
    assert said.err.startswith(
        "vlab: the sweep would stop before it runs, unable to connect: The endpoint from environment variable"
    )
    assert "Give it as 'https://contoso.cognitiveservices.azure.com'" in said.err
    # run, the sweep stops before any cell runs or anything is written (each cell failed with it before)
    assert main(["sweep", str(config), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "Give it as 'https://contoso.cognitiveservices.azure.com'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_dry_run_names_the_prompts_whose_recording_is_missing(tmp_path, capsys):
    import shutil

    bundled = json.loads((bundled_dir("prompts") / "manifest.json").read_text(encoding="utf-8"))
    entries = [p for p in bundled["prompts"] if p["id"] in ("pause_300", "short_question")]
    shutil.copy(bundled_dir("prompts") / entries[0]["file"], tmp_path)  # the other one is not there
    (tmp_path / "manifest.json").write_text(json.dumps({**bundled, "prompts": entries}))
    config = tmp_path / "sweep.toml"
    config.write_text(f'[prompts]\npath = "{tmp_path}"\n[grid]\nthreshold = [0.5]\n')
    assert main(["sweep", str(config), "--dry-run"]) == 1
    missing = entries[1]
    assert capsys.readouterr().err == (
        f"vlab: 1 of 2 prompts has no recording where the manifest says, so their cells would fail: "
        f"{missing['id']} ({tmp_path / missing['file']})\n"
    )
    # a VAD-only sweep reads every recording before any cell: it stops, and so its dry run ends as it does
    assert main(["sweep", str(config), "--dry-run", "--mode", "vad"]) == 2  # was 1
    assert "prompts has no recording where the manifest says, so the VAD-only sweep would stop: " in (
        capsys.readouterr().err
    )
    assert main(["sweep", str(config), "--mode", "vad", "--out", str(tmp_path / "v"), "--no-progress"]) == 2
    assert "file not found" in capsys.readouterr().err
    (tmp_path / missing["file"]).write_bytes((bundled_dir("prompts") / missing["file"]).read_bytes())
    assert main(["sweep", str(config), "--dry-run"]) == 0


def test_a_dry_run_into_a_folder_of_the_other_mode_ends_as_the_run_would(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text('[prompts]\ninclude = ["short_question"]\n[grid]\nthreshold = [0.5]\n')
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out), "--mode", "vad", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(config), "--out", str(out), "--dry-run"]) == 2  # was 0, then the run's 2
    assert capsys.readouterr().err == (
        f"vlab: the sweep would stop before it runs: {str(out)!r} holds a sweep of mode 'vad'; run mode "
        "'sessions' into another folder (another --out)\n"
    )
    assert main(["sweep", str(config), "--out", str(out), "--dry-run", "--mode", "vad"]) == 0
    assert (
        f"  folder   {out}: a VAD-only sweep decides every cell again (in seconds)" in capsys.readouterr().out
    )


def test_a_dry_run_on_the_dask_executor_without_dask_ends_as_the_run_would_and_writes_nothing(
    tmp_path, capsys, monkeypatch
):
    import importlib.util

    config = tmp_path / "sweep.toml"
    config.write_text(
        '[target]\nspeed = "max"\n[prompts]\ninclude = ["short_question"]\n[grid]\nthreshold = [0.5]\n'
        '[run]\nexecutor = "dask"\n'
    )
    out = tmp_path / "runs" / "x"
    argv = ["sweep", str(config), "--out", str(out), "--no-progress"]
    with monkeypatch.context() as no_dask:  # dask.distributed not installed
        no_dask.setitem(sys.modules, "distributed", None)
        no_dask.setitem(sys.modules, "dask.distributed", None)
        assert main([*argv, "--dry-run"]) == 2  # was 0
        said = capsys.readouterr().err
        assert not (tmp_path / "runs").exists()  # a dry run writes nothing
        assert main(argv) == 2
        run_said = capsys.readouterr().err
        assert not (tmp_path / "runs").exists()  # nor does a run that stops before it runs (it left cells/)
    assert run_said == "vlab: error: the dask executor needs dask.distributed: pip install 'vlab[dask]'\n"
    assert said == (
        "vlab: the sweep would stop before it runs: the dask executor needs dask.distributed: "
        "pip install 'vlab[dask]'\n"
    )
    if importlib.util.find_spec("distributed") is not None:  # installed (vlab[dask]): the dry run goes on
        assert main([*argv, "--dry-run"]) == 0
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("mode", ["sessions", "vad"])
def test_sweep_prints_each_setting_s_operating_point_in_the_grid_s_order(tmp_path, capsys, mode):
    config = tmp_path / "sweep.toml"
    config.write_text(
        '[target]\nspeed = "max"\n[prompts]\ninclude = ["pause_600", "short_question"]\n'
        f'[grid]\nsilence_duration_ms = [200, 1000]\n[run]\nbaseline = true\nmode = "{mode}"\n'
    )
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out), "--no-progress"]) == 0
    header, table = capsys.readouterr().out.split("\n\n", 1)
    where = "  target   embedded emulator, model gpt-realtime; latency typical, speed max"
    assert (where in header.splitlines()) == (mode == "sessions")  # where its sessions connect
    lines = table.splitlines()
    points = pd.read_parquet(out / "points.parquet")
    if mode == "sessions":  # the turns each setting answered when the user had finished
        turns = pd.read_parquet(out / "turns.parquet")
        spoken = turns[(turns["trigger"] == "vad") & ~turns["false_cutoff"]]
        assert spoken.groupby("setting").size().min() >= 1
    header = [
        "setting",
        "cut off %",
        "missed %",
        "dead air ms",
        *(["tokens/turn", "v2v p50 ms", "v2v p90 ms"] if mode == "sessions" else []),
    ]
    assert re.split(r"\s{2,}", lines[0]) == header
    rows = [re.split(r"\s{2,}", line) for line in lines[1:4]]
    assert [r[0] for r in rows] == [
        "thr=0.5 pad=300 sil=200",
        "thr=0.5 pad=300 sil=1000",
        "thr=0.5 pad=300 sil=500 (baseline)",
    ]
    for row, point in zip(rows, points.itertuples(), strict=True):
        cut = (point.false_cutoff_rate, point.false_cutoff_rate_lo, point.false_cutoff_rate_hi)
        missed = (point.missed_turn_rate, point.missed_turn_rate_lo, point.missed_turn_rate_hi)
        dead = (point.dead_air_ms, point.dead_air_ms_lo, point.dead_air_ms_hi)
        figures = [
            "{:.0f} [{:.0f}-{:.0f}]".format(*(100 * v for v in cut)),
            "{:.0f} [{:.0f}-{:.0f}]".format(*(100 * v for v in missed)),
            "{:.0f} [{:.0f}-{:.0f}]".format(*dead),
        ]
        if mode == "sessions":
            latency = spoken.loc[spoken["setting"] == point.setting, "voice_to_voice_ms"]
            figures += [
                f"{point.tokens_per_expected_turn:.0f}",
                *(f"{latency.quantile(q):.0f}" for q in (0.5, 0.9)),
            ]
        assert row[1:] == figures + (["Pareto"] if point.pareto else [])
    assert (
        rows[0][1] == "50 [9-91]" and rows[1][1] == "0 [0-66]"
    )  # sil=200 cuts pause_600 off; sil=1000 waits
    # (1 and 0 of 2 turns: Wilson intervals that say two prompts decide little)
    assert lines[4].startswith("cut off: turns answered before the user had finished")
    assert lines[-1] == f"charts: vlab report {out}"


def _interrupted_after(cells: int, monkeypatch, argv: list[str]) -> int:
    """``main(argv)`` with Ctrl-C once ``cells`` cells have finished: a SIGINT, which ``run_main`` (as the CLI
    runs a sweep) turns into a cancellation and then a KeyboardInterrupt, on Python 3.10 too (there Python's
    own handler would raise it wherever the loop was)."""
    import signal

    import vlab.sweep
    from vlab._run import run_main

    finished_cells: list[str] = []

    def on_cell(result) -> None:
        finished_cells.append(result.cell)
        if len(finished_cells) == cells:
            signal.raise_signal(signal.SIGINT)

    real = vlab.sweep.run_sweep_async
    with monkeypatch.context() as patched:
        patched.setattr(vlab.sweep, "run_sweep", lambda *a, **k: run_main(real(*a, on_cell=on_cell, **k)))
        # Ctrl-C's own handling, also where this process started with SIGINT ignored (a CI job's children)
        ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return main(argv)
        finally:
            signal.signal(signal.SIGINT, ignored)


_SIX_CELLS = (
    '[target]\nspeed = "max"\nlatency = "{latency}"\n[prompts]\ninclude = ["short_question", "pause_300", '
    '"two_turns"]\n[grid]\nthreshold = [0.4, 0.6]\n[run]\nconcurrency = 2\n'
)


def test_an_interrupted_sweep_says_how_many_cells_it_kept_and_a_rerun_goes_on_from_there(
    tmp_path, capsys, monkeypatch
):
    config = tmp_path / "sweep.toml"
    config.write_text(_SIX_CELLS.format(latency="typical"))
    out = tmp_path / "out"
    argv = ["sweep", str(config), "--out", str(out), "--no-progress"]
    assert _interrupted_after(3, monkeypatch, argv) == 130
    err = capsys.readouterr().err
    assert err == (
        f"vlab: interrupted: 3 of 6 cells finished and are kept in {out}; run the same command again to go on "
        "from there (--no-resume runs every cell again)\n"
    )
    assert main(argv) == 0
    assert "(3 run, 3 skipped, 0 failed; " in capsys.readouterr().out


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    """The folder of a finished sweep of :data:`_SIX_CELLS` on the ``instant`` latency (copy it to use it)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    config = out.parent / "sweep.toml"
    config.write_text(_SIX_CELLS.format(latency="instant"))
    assert main(["sweep", str(config), "--out", str(out), "--no-progress"]) == 0
    return out


def test_a_sweep_interrupted_with_no_resume_says_the_same_command_starts_over_and_how_to_go_on(
    tmp_path, capsys, monkeypatch, finished_sweep
):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    config = tmp_path / "sweep.toml"
    config.write_text(_SIX_CELLS.format(latency="instant"))  # as its cells ran
    argv = ["sweep", str(config), "--out", str(out), "--no-progress"]
    assert _interrupted_after(3, monkeypatch, [*argv, "--no-resume"]) == 130
    said = re.fullmatch(
        rf"vlab: interrupted: (\d) of 6 cells finished and are kept in {re.escape(str(out))}; the same command "
        r"runs every cell again \(--no-resume\): run it without --no-resume to go on from there\n",
        capsys.readouterr().err,
    )
    assert said  # was: "run the same command again to go on from there", which starts over
    kept = int(said[1])  # the 3 run again and those of the first run not yet started again
    assert kept >= 3
    assert main(argv) == 0  # without --no-resume, as it says
    assert f"({6 - kept} run, {kept} skipped, 0 failed; " in capsys.readouterr().out


def test_a_sweep_interrupted_with_no_resume_counts_only_the_cells_that_ran_as_its_config_says(
    tmp_path, capsys, monkeypatch, finished_sweep
):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished_sweep, out)
    config = tmp_path / "sweep.toml"
    config.write_text(_SIX_CELLS.format(latency="typical"))  # its cells ran on the instant latency
    argv = ["sweep", str(config), "--out", str(out), "--no-progress"]
    assert _interrupted_after(3, monkeypatch, [*argv, "--no-resume"]) == 130
    said = re.fullmatch(
        rf"vlab: interrupted: 3 of 6 cells finished in {re.escape(str(out))} with this config, beside "
        r"(\d) finished cells? that ran otherwise \(\[target\] latency changed since\): the same command runs "
        r"every cell again \(--no-resume\); without --no-resume, the sweep would stop on those (\d)\n",
        capsys.readouterr().err,
    )
    # was: "6 of 6 cells finished and are kept" (or 5, 4: the first run's too), "run the same command again"
    assert said and said[1] == said[2]
    otherwise = int(said[1])  # the first run's not yet started again: what the folder holds beside the 3
    assert otherwise == len(list(out.glob("cells/*/cell.json"))) - 3
    assert main(argv) == 2  # without --no-resume, it stops on them, as it said
    assert f"holds {otherwise} finished cell" in capsys.readouterr().err
    assert main([*argv, "--no-resume"]) == 0  # the same command: every cell again
    assert "(6 run, 0 skipped, 0 failed; " in capsys.readouterr().out


def test_sweep_s_table_marks_the_push_to_talk_reference_and_says_what_it_is():
    from vlab.sweep.summary import results_table

    points = pd.DataFrame({
        "setting": ["thr=0.5 pad=300 sil=200", "push-to-talk"], "false_cutoff_rate": [0.5, 0.0],
        "missed_turn_rate": [0.0, 0.0], "dead_air_ms": [757.0, 537.0], "baseline": [False, False],
        "reference": [False, True], "pareto": [True, False],
    })  # fmt: skip
    lines = results_table(points).splitlines()
    assert lines[2].split() == ["push-to-talk", "(reference)", "0", "0", "537"]  # not marked Pareto
    assert "push-to-talk (reference): each turn committed at its labelled end" in " ".join(lines[3:])
    assert "push-to-talk" not in " ".join(results_table(points.head(1)).splitlines()[2:])


def test_replay_of_silence_says_no_speech_was_detected(tmp_path):
    wav = tmp_path / "silence.wav"
    sf.write(wav, np.zeros(24000, np.int16), 24000)
    result = _vlab("replay", str(wav), "--speed", "max", "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "no speech was detected" in result.stderr and "Traceback" not in result.stderr
    # "lower the threshold" once, with the flag that does it. Not asserted as the last line: once, on the
    # loaded CI machine, soxr's extension (nanobind) reported a leaked resampler after it as Python exited
    assert result.stderr.count("lower the threshold") == 1
    assert (
        "vlab: error: no speech was detected in the prompt (all of it has been sent): check that it holds "
        f"speech, or lower the threshold (now 0.5) with --threshold; the events are in {tmp_path / 'r'}"
    ) in result.stderr.splitlines()


def test_replay_not_answered_in_time_says_so_where_the_events_are_and_which_flag_gives_more_time(
    tmp_path, prompt, capsys, monkeypatch
):
    """The embedded emulator holds back its answer to the start of the prompt (a fault) for longer than
    ``--timeout``: one line, exit 2, and the events so far are on disk."""
    import vlab.replay
    from vlab.emulator.faults import Fault

    wav = tmp_path / "prompt.wav"
    sf.write(wav, np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate)
    stall = Fault("delay", at="session.updated", ms=600_000, n=2)  # the 1st answers the session's setup
    real = vlab.replay.replay
    monkeypatch.setattr(
        vlab.replay, "replay", lambda *a, **k: real(*a, emulator_options={"faults": [stall]}, **k)
    )
    out = tmp_path / "run"
    assert main(["replay", str(wav), "--speed", "max", "--timeout", "0.2", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "vlab: error: the prompt was not answered within 0.2 s (0 turns detected, 0 responses finished); "
        f"the events so far are in {out}. Give it longer with --timeout (now 0.2 s).\n"
    )
    logged = vlab.load_log(out)
    assert list(logged["type"][logged["direction"] == "client"][:2]) == ["session.update"] * 2


def test_a_lost_connection_tells_the_command_s_user_to_run_it_again(tmp_path, capsys, monkeypatch):
    import vlab.replay
    from vlab.emulator.faults import Fault

    drop = Fault("drop", at="input_audio_buffer.speech_started")  # the connection is lost mid-prompt
    real = vlab.replay.replay
    monkeypatch.setattr(
        vlab.replay, "replay", lambda *a, **k: real(*a, emulator_options={"faults": [drop]}, **k)
    )
    assert main(["replay", "short_question", "--speed", "max", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlab: error: ") and "Run the command again" in err
    assert "Session(reconnect=True)" not in err  # Python's advice, which a command's user cannot take


@pytest.mark.parametrize(("text", "value"), [("120", 120.0), ("0.5", 0.5), ("1e-3", 0.001)])
def test_a_time_limit_is_a_number_of_seconds_above_0(text, value):
    assert seconds(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "soon"])
def test_a_time_limit_that_is_not_is_refused_with_what_it_must_be(text, capsys):
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected a number of seconds > 0, got '{text}'"):
        seconds(text)
    for argv in (["replay", "x.wav", "--timeout", text], ["doctor", "--timeout-s", text]):
        with pytest.raises(SystemExit):
            main(argv)
        assert f"expected a number of seconds > 0, got '{text}'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "minimum", "text"),
    [
        (
            ["calibrate", "runs", "--out", "latency.json", "--min-samples"],
            1,
            "0",
        ),  # was taken as the default, 50
        (["calibrate", "runs", "--out", "latency.json", "--min-samples"], 1, "many"),
        (["report", "sweep", "--timelines"], 0, "-1"),  # was every prompt but the last
    ],
)
def test_a_count_that_is_not_is_refused_with_what_it_must_be(argv, minimum, text, capsys):
    with pytest.raises(SystemExit):
        main([*argv, text])
    assert (
        f"error: argument {argv[-1]}: expected an integer ≥ {minimum}, got '{text}'"
        in capsys.readouterr().err
    )


def test_the_python_api_refuses_the_same_counts(tmp_path):
    with pytest.raises(ConfigError, match="min_samples must be an integer ≥ 1, got 0"):
        calibrate([tmp_path], min_samples=0)
    with pytest.raises(ConfigError, match="timeline_prompts must be an integer ≥ 0, got -1"):
        build_report(tmp_path, timeline_prompts=-1)


def test_replay_of_a_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "song.wav"
    bad.write_bytes(b"ID3 not really audio")
    result = _vlab("replay", str(bad), "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], ServerVad()),
        (["--threshold", "0.7"], ServerVad(threshold=0.7)),
        (["--semantic-vad"], AzureSemanticVad()),  # its own defaults
        (
            ["--semantic-vad", "--prefix-padding-ms", "200", "--silence-duration-ms", "800"],
            AzureSemanticVad(prefix_padding_ms=200, silence_duration_ms=800),
        ),
        (["--manual"], None),
        (
            ["--silence-duration-ms", "300", "--eou-timeout-ms", "1200"],
            ServerVad(silence_duration_ms=300, end_of_utterance=EndOfUtterance(timeout_ms=1200)),
        ),
    ],
)
def test_replay_flags_set_the_turn_detection_and_leave_the_rest_at_its_defaults(flags, expected):
    assert turn_detection(build_parser().parse_args(["replay", "x.wav", *flags])) == expected


def test_replay_sends_the_instructions_and_voice_it_is_given_and_names_a_bad_voice_s_flag(tmp_path, capsys):
    wav = bundled_dir("prompts") / "short_question.wav"
    out = tmp_path / "run"
    args = ["replay", str(wav), "--out", str(out), "--speed", "max", "--voice", "alloy"]
    assert main([*args, "--instructions", "Tell me a long story."]) == 0
    frame = vlab.load_log(out)
    (sent, *_) = frame[frame["type"] == "session.update"]["payload"].map(json.loads)
    assert sent["session"]["instructions"] == "Tell me a long story."
    assert sent["session"]["voice"] == {"type": "openai", "name": "alloy"}
    told = turn_latency(frame)["output_tokens"].sum()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    plain = vlab.load_log(tmp_path / "plain")
    assert (
        "instructions"
        not in json.loads(plain[plain["type"] == "session.update"]["payload"].iloc[0])["session"]
    )
    assert told > 5 * turn_latency(plain)["output_tokens"].sum()  # the emulator told a story
    capsys.readouterr()
    assert main(["replay", "x.wav", "--voice", "nobody"]) == 2  # before anything runs
    assert capsys.readouterr().err.startswith("vlab: error: --voice 'nobody': voice must be an OpenAI voice")


def test_replay_sends_telephone_audio_when_asked_and_names_the_flags_of_a_bad_rate(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["replay", "short_question", "--out", str(out), "--speed", "max", "--input-format", "g711_alaw"]
    assert main([*args, "--output-format", "g711_alaw"]) == 0
    said = capsys.readouterr().out
    assert "audio: g711_alaw at 8000 Hz in, g711_alaw at 8000 Hz out\n" in said
    assert sf.info(out / "output.wav").samplerate == 8000  # the reply, heard as a phone line carries it
    assert "turns answered: 1" in said  # the emulator heard the speech in it
    frame = vlab.load_log(out)
    (sent, *_) = frame[frame["type"] == "session.update"]["payload"].map(json.loads)
    assert sent["session"]["input_audio_format"] == "g711_alaw"
    appended = frame[frame["type"] == "input_audio_buffer.append"]
    assert appended["audio_end_ms"].max() == pytest.approx(appended["audio_bytes"].sum() / 8, abs=1)  # 8 kHz
    assert sf.info(out / "input.wav").samplerate == 8000
    for flags, said in [
        (["--input-format", "g711_ulaw", "--input-rate", "16000"], "must be 8000 with input_audio_format"),
        (["--input-rate", "22050"], "must be one of 8000, 16000, 24000, 44100, 48000 (Hz) for pcm16"),
    ]:
        assert main(["replay", "x.wav", *flags]) == 2  # before anything runs
        err = capsys.readouterr().err
        assert err.startswith(f"vlab: error: {' '.join(flags)}: input_audio_sampling_rate {said}"), err


def test_replay_plays_a_bundled_prompt_by_its_id_and_names_the_id_a_missing_file_is_a_typo_of(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no file of that name here
    wav = bundled_dir("prompts") / "short_question.wav"
    assert main(["replay", "short_question", "--out", str(tmp_path / "run"), "--speed", "max"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"prompt: the bundled 'short_question' ({wav})\nrun folder: ")
    assert "turns answered: 1" in out
    assert main(["replay", "short_questoin"]) == 2  # before anything runs
    assert capsys.readouterr().err == (
        "vlab: error: short_questoin: file not found. Check the path (relative paths start at the current "
        "folder), or give a bundled prompt's id: did you mean 'short_question'?\n"
    )
    assert main(["replay", "take1.wav"]) == 2
    assert "or give a bundled prompt's id (short_question, long_sentence," in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_replay_with_transcription_says_what_it_heard_in_each_turn_and_when(tmp_path, capsys):
    wav = bundled_dir("prompts") / "two_turns.wav"
    out = tmp_path / "run"
    assert (
        main(["replay", str(wav), "--out", str(out), "--speed", "max", "--transcription", "azure-speech"])
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    frame = vlab.load_log(out)
    done = frame[frame["type"] == "conversation.item.input_audio_transcription.completed"]
    said = [json.loads(p)["transcript"] for p in done["payload"]]
    delays = turn_latency(frame)["transcription_delay_ms"].tolist()
    assert len(said) == len(delays) == 2 and all(d > 0 for d in delays)
    heard = [line for line in printed if line.startswith("    heard: ")]
    assert heard == [
        f"    heard: {text!r}, {delay:.0f} ms after speech_stopped"
        for text, delay in zip(said, delays, strict=True)
    ]
    assert "tokyo" in said[0] and "london" in said[1]
    assert main(["replay", str(wav), "--transcription", " "]) == 2
    assert "--transcription needs a model name, such as azure-speech" in capsys.readouterr().err


def test_a_replay_whose_speech_never_ended_says_why_nothing_was_answered(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["replay", "pause_600", "--threshold", "0", "--speed", "max", "--out", out]) == 0
    captured = capsys.readouterr()
    assert "turns answered: 0" in captured.out  # and nothing said why
    assert "vlab: the server VAD heard speech start and never end, so no turn ended" in captured.err
    assert main(["replay", "pause_600", "--speed", "max", "--out", out, "--force"]) == 0
    assert "never end" not in capsys.readouterr().err


def test_replay_refuses_vad_settings_with_manual_turns_and_says_the_help_defaults_are_server_vad_s(capsys):
    assert main(["replay", "x.wav", "--manual", "--threshold", "0.7", "--silence-duration-ms", "800"]) == 2
    assert capsys.readouterr().err == (
        "vlab: error: --threshold, --silence-duration-ms: --manual has no turn detection to set. "
        "Drop --threshold, --silence-duration-ms, or --manual.\n"
    )
    assert main(["replay", "x.wav", "--manual", "--eou-timeout-ms", "800"]) == 2
    assert "--eou-timeout-ms: --manual has no turn detection to set" in capsys.readouterr().err
    assert main(["replay", "x.wav", "--eou-timeout-ms", "-5"]) == 2  # a clear error, before anything runs
    err = capsys.readouterr().err
    assert "--eou-timeout-ms -5: EndOfUtterance.timeout_ms must be an integer number of milliseconds" in err
    assert main(["replay", "x.wav", "--threshold", "2"]) == 2  # named the field only, not the flag
    assert "vlab: error: --threshold 2.0: ServerVad.threshold must be a number in [0.0, 1.0]" in (
        capsys.readouterr().err
    )
    assert main(["replay", "x.wav", "--semantic-vad", "--silence-duration-ms", "-5"]) == 2
    assert "vlab: error: --silence-duration-ms -5: AzureSemanticVad.silence_duration_ms must be" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main(["emulator", "--max-sessions", "0"])  # was "max_sessions must be an integer ≥ 1"
    assert "argument --max-sessions: expected an integer ≥ 1, got '0'" in capsys.readouterr().err
    for command in ("label", "import"):
        with pytest.raises(SystemExit):
            main(["prompts", command, "rec", "--hold-gap-ms", "-5"])  # was "hold_gap_ms must be > 0"
        assert "argument --hold-gap-ms: expected a number of ms > 0, got '-5'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    vad = ServerVad()
    assert f"threshold (default: {vad.threshold:g})" in help_text
    assert f"audio kept before speech (default: {vad.prefix_padding_ms})" in help_text
    assert f"silence that ends a turn (default: {vad.silence_duration_ms})" in help_text


@pytest.mark.parametrize(
    ("text", "value"), [("max", math.inf), ("inf", math.inf), ("2.5", 2.5), ("1e-3", 0.001)]
)
def test_a_speed_is_a_number_above_0_or_max(text, value):
    assert speed(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "0",
            "speed must be a number > 0 (1 = real time, 2 = twice as fast) or 'max' (as fast as possible), got '0'",
        ),
        ("-1", "got '-1'"),
        ("fast", "a number > 0 (1 = real time, 2 = twice as fast) or 'max'"),
        ("nan", "got 'nan'"),
        ("1e999", "got '1e999'"),  # a number too big for a float is infinite: say 'max'
        ("True", "got 'True'"),
    ],
)
def test_a_speed_that_is_not_is_refused_with_what_it_must_be(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        speed(text)


def test_a_path_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    dest = tmp_path / "notes.txt" / "examples"
    assert main(["examples", str(dest)]) == 2  # it said "Not a directory: …", with no way out
    assert capsys.readouterr().err == (
        f"vlab: error: the folder to copy the examples into, {str(dest)!r}: {str(dest.parent)!r} is a file, not "
        "a folder; choose another path (missing folders are created)\n"
    )
    assert main(["notebooks", str(dest), "--no-open"]) == 2
    assert f"the folder to copy the notebooks into, {str(dest)!r}: {str(dest.parent)!r} is a file" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "p.wav", "--out", "{file}"], "argument --out: '{file}' is a file, not a folder"),
        (["demo", "--out", "{file}"], "argument --out: '{file}' is a file, not a folder"),
        (
            ["sweep", "c.toml", "--out", "{file}/s"],
            "argument --out: '{file}/s': '{file}' is a file, not a folder",
        ),
        (
            ["calibrate", "runs", "--out", "{folder}"],
            "argument --out: '{folder}' is a folder; give the name of a file",
        ),
        (
            ["calibrate", "runs", "--out", "{file}/l.json"],
            "'{file}/l.json': '{file}' is a file, not a folder",
        ),
        (
            ["compare", "a", "b", "--csv", "{file}/t/c.csv"],
            "argument --csv: '{file}/t/c.csv': '{file}' is a file",
        ),
        (["compare", "a", "b", "--plot", "{folder}"], "argument --plot: '{folder}' is a folder"),
        (["emulator", "--trace", "{file}/t.jsonl"], "argument --trace: '{file}/t.jsonl': '{file}' is a file"),
        (
            ["prompts", "label", "rec", "--out", "{file}/m.json"],
            "argument --out: '{file}/m.json': '{file}' is a",
        ),
    ],
)
def test_an_output_path_a_file_stands_in_the_way_of_is_refused_before_anything_runs(
    tmp_path, capsys, args, message
):
    file, folder = tmp_path / "notes.txt", tmp_path / "out"
    file.write_text("a file, not a folder")
    folder.mkdir()
    with pytest.raises(SystemExit) as exited:
        main([a.format(file=file, folder=folder) for a in args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message.format(file=file, folder=folder) in err
    assert err.rstrip().endswith("(missing folders are created)") or "give the name of a file" in err


def test_an_os_error_without_a_path_is_not_taken_for_the_user_s(monkeypatch):
    def fails(*args, **kwargs):
        raise ConnectionResetError("the peer went away")

    monkeypatch.setattr("vlab.bundled.copy_bundled", fails)
    with pytest.raises(ConnectionResetError):
        main(["examples", "anywhere"])


def test_bad_arguments_are_reported_by_argparse():
    result = _vlab("replay", "x.wav", "--speed", "-3")
    assert result.returncode == 2 and "argument --speed: speed must be a number > 0" in result.stderr


def test_output_on_a_console_encoding_without_the_arrows_replaces_them(tmp_path):
    # a Windows console's cp1252, redirected to a file or a pipe: it has no "→", which doctor prints
    result = subprocess.run(
        [sys.executable, "-m", "vlab", "doctor", "--no-dotenv"],
        capture_output=True,
        cwd=tmp_path,
        env=os.environ | {"PYTHONIOENCODING": "cp1252"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode("cp1252", "replace")
    out = result.stdout.decode("cp1252")
    assert "no endpoint configured ? the embedded emulator" in out
    assert "vlab doctor: a session can start." in out


@pytest.mark.skipif(
    os.name == "nt",
    reason="Windows reports a write to a closed pipe as EINVAL, which vlab does not handle yet",
)
def test_a_reader_that_closed_the_pipe_ends_the_command_quietly(tmp_path):
    # `vlab doctor | head -0`, without the race: the pipe's reader is closed before vlab writes anything
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "vlab", "doctor", "--no-dotenv"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    finally:
        os.close(write)
    assert result.returncode == BROKEN_PIPE_EXIT
    assert result.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit


def test_a_broken_pipe_that_is_not_the_output_s_is_still_an_error(monkeypatch):
    def broken(_args):
        raise BrokenPipeError("a socket's peer went away")

    monkeypatch.setattr("vlab.commands.doctor.run", broken)
    with pytest.raises(BrokenPipeError, match="a socket's peer"):
        main(["doctor"])


def test_a_vlab_warning_is_one_line_of_the_cli_and_other_warnings_stay_python_s(
    tmp_path, capsys, monkeypatch
):
    import warnings

    from vlab.commands import examples

    folder = tmp_path / "recordings"
    folder.mkdir()
    sf.write(folder / "silent.wav", np.zeros(16000, np.int16), 16000)
    assert main(["prompts", "label", str(folder)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if not line.startswith("labelling: ")] == [
        f"vlab: warning: {folder / 'silent.wav'}: the prompt is silent (peak below -60 dBFS); the VAD will "
        "detect no speech"
    ]  # not Python's "file:line: VlabWarning: …" and the source line under it (beside the progress lines)
    assert err[-1].startswith("labelling: 1/1 files (100 %)")

    def warns(args: argparse.Namespace) -> int:
        warnings.warn("a library's own", DeprecationWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(examples, "run", warns)
    with pytest.warns(DeprecationWarning, match="a library's own"):  # shown, or raised, as Python would
        assert main(["examples", str(tmp_path / "ex")]) == 0
