"""`vlab runs` and `vlab.find_runs`: the sweeps and session runs a folder keeps, one row each."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket

import pandas as pd
import pytest

import vlab
from vlab.bundled import bundled_dir
from vlab.cli import main
from vlab.errors import ConfigError, ConnectionFailed

pytestmark = pytest.mark.integration

PHONE_SWEEP = """
[target]
speed = "max"
[prompts]
include = ["short_question"]
[session]
input_audio_format = "g711_ulaw"
output_audio_format = "g711_ulaw"
[grid]
silence_duration_ms = [300]
model = ["gpt-realtime", "gpt-4.1"]
"""
VAD_SWEEP = """
[prompts]
include = ["short_question", "pause_600"]
[session]
input_audio_sampling_rate = 16000
[grid]
threshold = [0.3, 0.5, 0.7]
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder of runs as a user keeps them: sweeps, a replay, and what a crash or a stop leaves."""
    root = tmp_path_factory.mktemp("runs")
    configs = tmp_path_factory.mktemp("configs")
    (configs / "phone.toml").write_text(PHONE_SWEEP)
    (configs / "vad.toml").write_text(VAD_SWEEP)
    assert main(["sweep", str(configs / "phone.toml"), "--out", str(root / "phone"), "--no-progress"]) == 0
    vad = ["sweep", str(configs / "vad.toml"), "--out", str(root / "vad"), "--mode", "vad", "--no-progress"]
    assert main(vad) == 0
    replay = root / "team" / "replay"
    assert main(["replay", "short_question", "--out", str(replay), "--speed", "max"]) == 0

    with socket.socket() as refusing:  # bound, never listening: the connection is refused
        refusing.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{refusing.getsockname()[1]}"
        asyncio.run(_refused(root / "refused", endpoint))

    shutil.copytree(root / "phone", root / "stopped")  # cells, and no manifest: stopped before the end
    (root / "stopped" / "manifest.json").unlink()
    shutil.copytree(replay, root / "crashed")  # the process died: no summary, the live log only
    meta = json.loads((root / "crashed" / "session.json").read_text())
    del meta["summary"]
    (root / "crashed" / "session.json").write_text(json.dumps(meta))
    (root / "crashed" / "events.parquet").unlink()
    shutil.copytree(replay, root / "broken")
    (root / "broken" / "session.json").write_text("{")
    prompts = root / "my-prompts"  # a prompt set has a manifest.json too: not a run
    prompts.mkdir()
    shutil.copy(bundled_dir("prompts") / "short_question.wav", prompts)
    (prompts / "manifest.json").write_text(json.dumps({"version": 1, "prompts": []}))
    return root


async def _refused(run_dir, endpoint: str) -> None:
    with pytest.raises(ConnectionFailed, match="nothing accepts connections"):
        async with vlab.Session(run_dir=run_dir, endpoint=endpoint, api_key="secret-key", dotenv_path=False):
            pass


def test_each_sweep_and_session_run_is_one_row_newest_first(root):
    runs = vlab.find_runs(root).set_index("folder", drop=False)

    assert list(runs.columns) == ["folder", "kind", "started_at", "target", "size", "ended", "audio"]
    assert sorted(runs.index) == ["broken", "crashed", "phone", "refused", "stopped", "team/replay", "vad"]
    # the replay ran last, and its copy "crashed" started when it did; a stopped sweep started with its first
    # cell, after the sweep "phone" it is a copy of; an unreadable session.json: unknown
    assert list(runs["folder"]) == ["refused", "crashed", "team/replay", "vad", "stopped", "phone", "broken"]
    assert runs["started_at"].iloc[:-1].is_monotonic_decreasing and pd.isna(runs.at["broken", "started_at"])

    phone = runs.loc["phone"]
    assert (phone["kind"], phone["size"], phone["ended"]) == (
        "sweep",
        "2 settings × 1 prompt × 1 repeat",
        "2 ok",
    )
    assert phone["target"] == "embedded emulator, models gpt-4.1, gpt-realtime"
    assert phone["audio"] == "g711_ulaw 8 kHz in, g711_ulaw 8 kHz out"

    vad = runs.loc["vad"]
    assert (vad["kind"], vad["size"], vad["ended"]) == (
        "VAD-only sweep",
        "3 settings × 2 prompts × 1 repeat",
        "6 ok",
    )
    assert (vad["target"], vad["audio"]) == ("the emulator's VAD, no sessions", "pcm16 16 kHz in")

    stopped = runs.loc["stopped"]
    assert (stopped["kind"], stopped["size"]) == ("stopped sweep", "2 cells finished")
    assert stopped["ended"] == "stopped (the same vlab sweep command goes on)"
    assert stopped["target"].startswith("embedded emulator, model gpt-")

    replay = runs.loc["team/replay"]
    summary = json.loads((root / "team" / "replay" / "session.json").read_text())["summary"]
    assert (replay["kind"], replay["ended"]) == ("session", "closed")
    assert replay["size"] == f"{summary['events']} events" and summary["events"] > 10
    assert (replay["target"], replay["audio"]) == (
        "embedded emulator, model gpt-realtime",
        "pcm16 24 kHz in, pcm16 24 kHz out",
    )
    lines = len((root / "crashed" / "events.jsonl").read_text().splitlines())
    assert runs.at["crashed", "ended"] == "did not close (crashed, or still running)"
    assert runs.at["crashed", "size"] == f"{lines} events"
    assert runs.at["broken", "ended"] == "no readable session.json"
    # a session that never opened: its folder says why (session.json's summary), never with the key
    refused = runs.loc["refused"]
    assert refused["ended"].startswith("connection error: nothing accepts connections at 127.0.0.1:")
    assert refused["target"].startswith("endpoint http://127.0.0.1:") and refused["size"] == "0 events"
    assert not [f for f in (root / "refused").iterdir() if b"secret-key" in f.read_bytes()]


def test_the_runs_kept_beside_a_sweeps_cells_are_listed_and_its_cells_are_not(root, tmp_path):
    # vlab demo executes its notebooks in its sweep folder: their runs land beside the sweep's cells
    shutil.copytree(root / "phone", tmp_path / "demo")
    shutil.copytree(root / "team" / "replay", tmp_path / "demo" / "notebooks" / "runs" / "replay")
    shutil.copytree(root / "stopped", tmp_path / "stopped")
    shutil.copytree(root / "team" / "replay", tmp_path / "stopped" / "runs" / "replay")

    runs = vlab.find_runs(tmp_path).set_index("folder")

    assert sorted(runs.index) == ["demo", "demo/notebooks/runs/replay", "stopped", "stopped/runs/replay"]
    assert list(runs["kind"].sort_index()) == ["sweep", "session", "stopped sweep", "session"]


def test_vlab_runs_prints_the_list_and_writes_it_as_csv(root, tmp_path, capsys):
    assert main(["runs", str(root), "--csv", str(tmp_path / "runs.csv")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["folder", "kind", "started", "(UTC)", "target", "size", "ended", "audio"]
    assert out[1].startswith("refused ") and out[7].startswith("broken ")
    assert out[7].split()[2] == "?"  # no start known
    assert "phone       sweep " in out[6] and out[6].endswith("g711_ulaw 8 kHz in, g711_ulaw 8 kHz out")
    assert "connection error: nothing accepts connections at 127.0.0.1:… " in out[1]  # the rest: in the CSV
    assert all(line == line.rstrip() for line in out)
    assert out[-1].startswith(f"7 runs under {root} (newest first). A sweep: vlab report FOLDER")
    assert list(pd.read_csv(tmp_path / "runs.csv")["folder"]) == list(vlab.find_runs(root)["folder"])


def test_a_folder_without_runs_says_so_and_one_that_is_not_there_names_itself(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0
    assert capsys.readouterr().err.strip() == f"vlab: no sweep or session run under {str(tmp_path)!r}"
    assert main(["runs", str(tmp_path / "nope")]) == 2
    assert (
        f"{str(tmp_path / 'nope')!r} does not exist: give the folder that holds your runs"
        in capsys.readouterr().err
    )
    with pytest.raises(ConfigError, match="is a file"):
        vlab.find_runs(bundled_dir("prompts") / "manifest.json")


async def test_a_replay_whose_settings_the_server_refused_fails_and_its_run_says_so(tmp_path):
    from vlab.errors import SettingsRefused
    from vlab.replay import replay
    from vlab.testing import fast_emulator

    async with fast_emulator(refuse=["voice:alloy"]) as emu:
        with pytest.raises(
            SettingsRefused, match=r"^the server refused the session settings \(invalid_value: "
        ):
            await replay(
                "short_question",
                settings=vlab.SessionSettings(voice="alloy"),
                run_dir=tmp_path / "alloy",
                speed="max",
                endpoint=emu.endpoint,
                api_key=emu.api_key,
                dotenv_path=False,
            )
    (row,) = vlab.find_runs(tmp_path).itertuples()
    assert row.ended.startswith("closed; the server refused its settings (invalid_value: Invalid value for")
