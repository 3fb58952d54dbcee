"""The stage samples `vlab calibrate` takes from a run on the client's clock (an Azure run: no simulated times)."""

from __future__ import annotations

import json

import pytest

from tests._logs import write_log
from vlab.calibrate import ks_two_sample, stage_samples
from vlab.cli import main
from vlab.log import load_log
from vlab.metrics import turn_latency

DONE = json.dumps({"response": {"status": "completed"}})


def test_an_azure_run_gives_half_of_each_session_update_round_trip_and_the_reply_s_audio_rate(tmp_path):
    audio = {"response_id": "resp_1", "audio_ms": 100.0}
    run = write_log(
        tmp_path / "run",
        (0.0, "server", "session.updated", {}),  # answers no update of this log: no sample
        (100.0, "client", "session.update", {}),
        (110.0, "client", "input_audio_buffer.append", {"audio_ms": 20.0}),  # not the update's send time
        (140.0, "server", "session.updated", {}),
        (1000.0, "server", "response.audio.delta", audio),
        (1050.0, "server", "response.audio.delta", audio),
        (1100.0, "server", "response.audio.delta", audio),
    )
    samples, info = stage_samples(run)
    by_stage = samples.groupby("stage")["value"].apply(list).to_dict()
    assert by_stage["network"] == [20.0]  # (140 - 100) / 2
    assert by_stage["audio_rate"] == [2.0]  # 200 ms of audio before the last delta, over 100 ms
    assert info["timeline"] == "client" and info["audio_chunk_ms"] == 100.0  # the deltas', not the appends'


def test_ks_two_sample_of_a_sample_with_itself_is_zero_distance_and_certain():
    assert ks_two_sample([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == (0.0, 1.0)
    assert ks_two_sample([], [1.0]) == (pytest.approx(float("nan"), nan_ok=True),) * 2


def test_the_stage_table_gives_each_fitted_stage_s_quantiles_and_nothing_for_the_others():
    import math

    import pandas as pd

    from vlab.calibrate import Calibration
    from vlab.emulator.fitted_latency import Empirical, FittedLatency

    model = FittedLatency({"commit": Empirical.fit([100.0, 200.0, 300.0])}, provenance={})
    table = Calibration(model, pd.DataFrame()).table().set_index("stage")
    assert table.loc["commit"].tolist() == [3, 200.0, 280.0, 298.0]
    others = table.drop(index="commit")
    assert (others["n"] == 0).all() and others[["p50", "p90", "p99"]].map(math.isnan).all().all()


def test_each_mcp_call_gives_its_in_progress_to_completed_or_failed_and_is_optional(tmp_path):
    import warnings

    import pandas as pd

    from vlab.calibrate import Calibration, calibrate

    def added(item_id: str) -> dict:
        item = {"id": item_id, "type": "mcp_call", "server_label": "s", "name": "t"}
        return {"item_id": item_id, "payload": json.dumps({"response_id": "r", "item": item})}

    run = write_log(
        tmp_path / "run",
        (90.0, "server", "response.output_item.added", added("a")),
        (95.0, "server", "response.output_item.added", added("b")),
        (100.0, "server", "response.mcp_call.in_progress", {"item_id": "a"}),
        (120.0, "server", "response.mcp_call.in_progress", {"item_id": "b"}),
        (450.0, "server", "response.mcp_call.completed", {"item_id": "a"}),
        (900.0, "server", "response.mcp_call.failed", {"item_id": "b"}),
        (950.0, "server", "response.mcp_call.completed", {"item_id": "c"}),  # never started: no sample
    )
    samples, _ = stage_samples(run)
    assert sorted(samples.loc[samples["stage"] == "mcp_call", "value"]) == [350.0, 780.0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = calibrate([run], min_samples=2)
    assert fitted.table().set_index("stage").loc["mcp_call", "n"] == 2
    assert not [w for w in caught if "mcp_call" in str(w.message)]
    without = Calibration(fitted.model.__class__({}, provenance={}), pd.DataFrame()).table()
    assert "mcp_call" not in set(without["stage"])  # not measured: no row (and no warning: not in `few`)


def test_runs_on_vlab_s_emulator_are_counted_in_a_note_and_kept_in_the_provenance(tmp_path, capsys):
    from vlab.calibrate import FewSamplesWarning, calibrate

    def run(name: str, server: dict) -> None:
        audio = {"response_id": "r", "audio_ms": 100.0, **server}
        write_log(
            tmp_path / name,
            (100.0, "client", "session.update", {}),
            (140.0, "server", "session.updated", server),
            (1000.0, "server", "response.audio.delta", audio),
            (1050.0, "server", "response.audio.delta", audio),
        )

    run("azure", {})
    run("emulated", {"sim_ms": 40.0})  # the emulator stamps its simulated time on every server event
    with pytest.warns(FewSamplesWarning):  # no turn in these logs
        fitted = calibrate([tmp_path], min_samples=1)
    assert fitted.emulator_runs == [str(tmp_path / "emulated")]
    assert [r["emulator"] for r in fitted.model.provenance["runs"]] == [False, True]
    assert main(["calibrate", str(tmp_path), "--out", str(tmp_path / "l.json"), "--min-samples", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "note: 1 of 2 runs ran on vlab's emulator, not Azure: what they fit is the emulator's own latency model"
    )
    assert (
        main(["calibrate", str(tmp_path / "azure"), "--out", str(tmp_path / "a.json"), "--min-samples", "1"])
        == 0
    )
    assert "note:" not in capsys.readouterr().out


def test_a_turn_that_stopped_while_a_response_was_in_progress_gives_no_commit_sample(tmp_path, capsys):
    """The user spoke on as the answer to a tool call played: the reply to their next turn waited for it."""

    def response(rid: str, ms: float) -> list[tuple[float, str, str, dict]]:
        return [
            (ms, "server", "response.created", {"response_id": rid}),
            (ms + 300, "server", "response.audio.delta", {"response_id": rid, "audio_ms": 100.0}),
            (ms + 900, "server", "response.done", {"response_id": rid, "payload": DONE}),
        ]

    def turn(item: str, start_ms: float, stop_ms: float) -> list[tuple[float, str, str, dict]]:
        return [
            (start_ms, "server", "input_audio_buffer.speech_started", {"item_id": item}),
            (stop_ms, "server", "input_audio_buffer.speech_stopped", {"item_id": item}),
            (stop_ms + 10, "server", "input_audio_buffer.committed", {"item_id": item}),
        ]

    rows = [
        *turn("item_1", 0.0, 1000.0),
        *response("resp_1", 1100.0),  # 100 ms after its turn stopped
        (2100.0, "client", "response.create", {}),
        *response("resp_2", 2150.0),  # in progress until 3050
        *turn("item_2", 2200.0, 2500.0),
        *response("resp_3", 3200.0),  # 700 ms after its turn stopped: 550 of them waiting for resp_2
    ]
    run = write_log(tmp_path / "run", *sorted(rows, key=lambda row: row[0]))
    samples, _ = stage_samples(run)
    assert samples.loc[samples["stage"] == "commit", "value"].tolist() == [100.0]
    turns = turn_latency(load_log(run))  # the wait is in the turn's own latency, where the user had it
    assert turns.loc[turns["trigger"] == "vad", "turn_commit_ms"].tolist() == [100.0, 700.0]
    assert main(["calibrate", str(run), "--out", str(tmp_path / "l.json"), "--min-samples", "1"]) == 0
    assert (
        "note: a turn that ended while an earlier response was in progress gives no commit sample (its reply "
        "waited for that response to finish); turns left out: 1"
    ) in capsys.readouterr().out.splitlines()
