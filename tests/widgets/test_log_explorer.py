"""The log explorer driven headless on a run folder written by a real session against the emulator."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import vlab
from tests._logs import write_log
from vlab.errors import ConfigError
from vlab.widgets import LogExplorer
from vlab.widgets.log_explorer import ALL_TURNS


async def _record_run(run_dir, *prompts):
    """A two-turn session: each prompt streamed as fast as possible, then its answer awaited."""
    settings = vlab.SessionSettings(turn_detection=vlab.ServerVad(silence_duration_ms=500))
    async with vlab.Session(
        settings,
        run_dir=run_dir,
        emulator_options={"speed": math.inf, "hear_audio": False},  # no words needed: no recognition
        dotenv_path=False,
    ) as session:
        for i, p in enumerate(prompts, start=1):
            await session.stream_audio(p.pcm, speed=math.inf)
            await session.wait_for("response.done", count=1)
            assert sum(r.type == "response.done" for r in session.records) >= i
    return run_dir


@pytest.fixture
async def run_dir(tmp_path, prompt, second_prompt):
    return await _record_run(tmp_path / "run", prompt, second_prompt)


def _shown(output):
    """(mime bundle, widget HTML) of what an Output area shows."""
    from ipywidgets.widgets.widget import _instances

    parts = []
    for o in output.outputs:
        view = o["data"].get("application/vnd.jupyter.widget-view+json")
        parts.append(_instances[view["model_id"]].value if view else json.dumps(o["data"]))
    return " ".join(parts)


async def test_load_filter_and_choose_a_turn(run_dir):
    ex = LogExplorer()
    ex.path.value = str(run_dir)
    ex.load_button.click()
    assert ex.output.outputs == (), _shown(ex.output)
    assert len(ex.turns) == 2 and "2 responses" in ex.status.value
    # noisy types start unselected; everything else is in the table, with relative ms
    assert "response.audio.delta" not in ex.types.value and "response.done" in ex.types.value
    assert "response.audio.delta" not in ex.table.value and "response.done" in ex.table.value
    assert "<td style='text-align:right'>0.0</td>" in ex.table.value
    assert bytes(ex.waterfall.value).startswith(b"\x89PNG") and "All 2 turns" in ex.turn_info.value
    assert "input.wav" in _shown(ex.audio) and "<audio" in _shown(ex.audio)

    ex.types.value = ("input_audio_buffer.speech_stopped",)
    rows = ex.filtered()
    assert list(rows["type"].unique()) == ["input_audio_buffer.speech_stopped"] and len(rows) == 2
    assert "response.done" not in ex.table.value and "audio_end_ms=" in ex.table.value

    ex.types.value = ("response.done", "input_audio_buffer.speech_started")
    whole = ex.waterfall.value
    ex.turn.value = 1  # the second turn only
    rows = ex.filtered()
    assert list(rows["type"]) == ["input_audio_buffer.speech_started", "response.done"]
    assert rows["ms"].iloc[0] > 0 and rows["t_ns"].min() > ex.turns.iloc[0]["t_done_ns"]
    assert (
        ex.waterfall.value != whole and "Turn 1" in ex.turn_info.value and "ttfb audio" in ex.turn_info.value
    )
    audio = _shown(ex.audio)
    assert "User" in audio and "Assistant" in audio and audio.count("<audio") == 2
    item = ex._reply_item(ex.turns.iloc[1])
    assert (run_dir / "output" / f"{item}.wav").is_file() and item in audio
    start, end = ex._speech_span(ex.turns.iloc[1])
    assert 0 < start < end  # the second prompt's speech, on the input-audio clock

    ex.turn.value = ALL_TURNS
    assert len(ex.filtered()) > 2
    assert ex.output.outputs == ()


async def test_constructor_loads_and_the_turn_audio_is_the_speech_span(run_dir, prompt):
    import soundfile as sf

    ex = LogExplorer(run_dir)
    assert ex.output.outputs == () and ex.run_dir == run_dir
    ex.turn.value = 0
    start, end = ex._speech_span(ex.turns.iloc[0])
    # the server's span holds the labelled speech of the first prompt (prefix padding before, silence after)
    assert start <= prompt.speech_start_ms and end >= prompt.speech_end_ms
    info = sf.info(run_dir / "input.wav")
    assert end <= info.duration * 1000 + 1


def test_run_folder_suggests_the_session_runs_under_runs_newest_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert LogExplorer().path.options == ()  # no runs/ here
    (tmp_path / "runs" / "team").mkdir(parents=True)
    for folder, started in (
        ("older", "2026-12-01T10:00:00+00:00"),
        ("team/newer", "2026-12-02T10:00:00+00:00"),
    ):
        run = write_log(tmp_path / "runs" / folder)
        (run / "session.json").write_text(json.dumps({"started_at": started}))
    sweep = tmp_path / "runs" / "sweep"  # a sweep is not a run folder to open: its cells are
    (sweep / "cells").mkdir(parents=True)
    (sweep / "manifest.json").write_text(json.dumps({"grid": [], "started_at": "2026-12-03T10:00:00+00:00"}))
    write_log(sweep / "cells" / "cell")
    ex = LogExplorer()
    assert ex.path.options == ("runs/team/newer", "runs/older")
    write_log(tmp_path / "runs" / "latest")  # made since, no session.json: when it started is unknown (last)
    ex.path.value = "runs/older"
    ex.load_button.click()
    assert ex.run_dir == Path("runs/older") and len(ex.events) == 0
    assert ex.path.options == ("runs/team/newer", "runs/older", "runs/latest")


def test_a_missing_folder_shows_a_clear_error(tmp_path):
    ex = LogExplorer(tmp_path / "nowhere")
    assert "Loading the run failed" in _shown(ex.output) and "no run folder" in _shown(ex.output)
    assert "vlab.find_runs() lists the runs under runs/" in _shown(ex.output)
    ex.output.outputs = ()
    ex.path.value = str(tmp_path)
    ex.load_button.click()
    assert "is not a run folder" in _shown(ex.output)
    assert ex.run_dir is None and ex.table.value == ""


def test_a_log_file_or_a_sweep_folder_points_to_the_run_folder_to_give(tmp_path):
    cell = tmp_path / "sweep" / "cells" / "s0__p"
    cell.mkdir(parents=True)
    (cell / "events.jsonl").write_text("")
    ex = LogExplorer()
    with pytest.raises(ConfigError) as info:
        ex.load(cell / "events.jsonl")
    assert (
        str(info.value)
        == f"{str(cell / 'events.jsonl')!r} is a file: give the run folder it is in, {str(cell)!r}"
    )
    with pytest.raises(ConfigError) as info:
        ex.load(tmp_path / "sweep")
    assert str(info.value) == (
        f"{str(tmp_path / 'sweep')!r} is a sweep folder: give one of its cells, e.g. {str(cell)!r} "
        "(the report shows the sweep: vlab report)"
    )


def _cells(table: str) -> list[list[str]]:
    """The table's rows below its header, as lists of cell texts."""
    import re

    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]


def test_the_table_shows_each_event_s_time_direction_and_what_it_says(tmp_path):
    folder = write_log(
        tmp_path / "run",
        (0.0, "client", "response.cancel", {"event_id": "evt_1"}),
        (
            12.5,
            "server",
            "error",
            {"error_code": "response_cancel_not_active", "error_message": "no response"},
        ),
        (20.0, "server", "input_audio_buffer.speech_started", {"audio_start_ms": 120.0, "item_id": "item_1"}),
        (30.0, "server", "input_audio_buffer.speech_stopped", {"audio_end_ms": 900.0, "item_id": "item_1"}),
        (1500.0, "local", "vlab.note", {"text": "x" * 150}),
        (1510.0, "server", "response.audio.delta", {"response_id": "resp_1", "item_id": "item_2"}),
        (1520.0, "server", "response.output_item.done", {"response_id": "resp_1", "item_id": "item_2"}),
    )
    ex = LogExplorer(folder)
    assert ex.output.outputs == ()
    assert "7 events, 0 responses, 1.5 s" in ex.status.value
    assert "No response in this log" in ex.turn_info.value
    assert ("response.audio.delta (1)", "response.audio.delta") in ex.types.options
    assert "response.audio.delta" not in ex.types.value  # noisy: unselected at first
    assert _cells(ex.table.value) == [
        ["0.0", "→", "response.cancel", ""],
        ["12.5", "←", "error", "response_cancel_not_active: no response"],
        ["20.0", "←", "input_audio_buffer.speech_started", "audio_start_ms=120"],
        ["30.0", "←", "input_audio_buffer.speech_stopped", "audio_end_ms=900"],
        ["1,500.0", "·", "vlab.note", "x" * 100],
        ["1,520.0", "←", "response.output_item.done", "item_id=item_2 response_id=resp_1"],
    ]
    assert "6 match;" in ex.table.value

    ex.types.value = ()
    assert ex.table.value == "<i>No event matches the filters.</i>"


def test_the_table_shows_the_first_max_rows_events_and_says_how_many_match(tmp_path):
    rows = [(10.0 * k, "server", f"event.{k}", {}) for k in range(5)]
    ex = LogExplorer(write_log(tmp_path / "run", *rows), max_rows=3)
    assert [cells[2] for cells in _cells(ex.table.value)] == ["event.0", "event.1", "event.2"]
    assert "5 match (first 3 shown)" in ex.table.value


def test_an_empty_log_loads_and_says_so(tmp_path):
    ex = LogExplorer(write_log(tmp_path / "run"))
    assert ex.output.outputs == ()
    assert ex.status.value.endswith(": the log is empty") and ex.filtered().empty
    assert "No response in this log" in ex.turn_info.value and ex.waterfall.layout.display == "none"


def test_a_turn_answered_through_tools_is_offered_with_its_whole_wait_and_its_answer_with_the_turn():
    turn = {"trigger": "client", "status": "completed", "false_cutoff": False}
    asked = SimpleNamespace(
        turn=0,
        voice_to_voice_ms=math.nan,
        voice_to_answer_ms=812.0,
        answers_turn=-1,
        calls_to_answer=2,
        **turn,
    )
    answer = SimpleNamespace(
        turn=1,
        voice_to_voice_ms=300.0,
        voice_to_answer_ms=math.nan,
        answers_turn=0,
        calls_to_answer=0,
        **turn,
    )
    assert LogExplorer._turn_option(asked) == (
        "turn 0 (client, completed, response.create-to-answer 812 ms through 2 tool calls)",
        0,
    )
    assert (
        "through 1 tool call)"
        in LogExplorer._turn_option(SimpleNamespace(**{**vars(asked), "calls_to_answer": 1}))[0]
    )
    assert LogExplorer._turn_option(answer) == (
        "turn 1 (client, completed, response.create-to-voice 300 ms, answers turn 0)",
        1,
    )


def test_a_reply_cancelled_before_its_first_audio_is_offered_as_nothing_heard():
    unheard = SimpleNamespace(
        turn=2,
        trigger="vad",
        status="cancelled",
        voice_to_voice_ms=math.nan,
        voice_to_answer_ms=math.nan,
        t_first_audio_ns=math.nan,
        false_cutoff=False,
        answers_turn=-1,
    )
    assert LogExplorer._turn_option(unheard) == (
        "turn 2 (vad, cancelled before its first audio (nothing heard))",
        2,
    )
    # cut off, or cancelled once it had spoken: its latency is what is missing, not its audio
    cut = SimpleNamespace(**{**vars(unheard), "false_cutoff": True})
    assert LogExplorer._turn_option(cut)[0] == (  # in vlab replay's words (vlab.metrics.FALSE_CUTOFF)
        "turn 2 (vad, cancelled, false cut-off: the reply started before the end of speech)"
    )
    spoke = SimpleNamespace(**{**vars(unheard), "t_first_audio_ns": 5.0e9})
    assert LogExplorer._turn_option(spoke)[0] == "turn 2 (vad, cancelled, no latency)"


async def test_a_turn_the_semantic_vad_held_is_timed_from_where_the_speech_sent_ended(tmp_path):
    """pause_600 replayed under the semantic VAD: it holds the turn for more speech before it ends it."""
    from vlab.prompts import load_prompt_set
    from vlab.replay import replay

    (prompt,) = [p for p in load_prompt_set() if p.id == "pause_600"]
    settings = vlab.SessionSettings(turn_detection=vlab.AzureSemanticVad(silence_duration_ms=300))
    run = (
        await replay(prompt.file, settings, run_dir=tmp_path / "run", speed=math.inf, dotenv_path=False)
    ).run_dir
    (turn,) = LogExplorer(run).turns.itertuples()
    (end,) = prompt.end_of_turn_ms
    assert turn.a_eos_source == "audio" and abs(turn.a_eos_ms - end) < 30  # the labeller's edge, not a guess
    labelled = vlab.metrics.turn_latency(vlab.load_log(run), end_of_turn_ms=[end]).iloc[0]
    assert abs(turn.voice_to_voice_ms - labelled.voice_to_voice_ms) < 30
    (run / "input.wav").unlink()  # a run that kept no recording: the estimate, which leaves the hold out
    (guessed,) = LogExplorer(run).turns.itertuples()
    assert guessed.a_eos_source == "estimated" and guessed.voice_to_voice_ms < turn.voice_to_voice_ms - 500


async def test_a_replayed_labelled_prompt_is_timed_from_its_labels_as_the_replay_was(tmp_path):
    """digits ("My number is … four two five … five five five …") under a 300 ms timer: the replay of the
    bundled prompt keeps its labels in the run folder, so the explorer, like the replay, calls the replies
    in its pauses false cut-offs and times the last from the labelled end, not from the estimate."""
    from vlab.prompts import load_prompt_set, read_run_labels
    from vlab.replay import replay

    (digits,) = [p for p in load_prompt_set() if p.id == "digits"]
    settings = vlab.SessionSettings(turn_detection=vlab.ServerVad(silence_duration_ms=300))
    options = {"hear_audio": False}  # no words needed: no recognition
    result = await replay(
        digits,
        settings,
        run_dir=tmp_path / "run",
        speed=math.inf,
        dotenv_path=False,
        emulator_options=options,
    )
    assert read_run_labels(result.run_dir) == vlab.prompts.RunLabels(digits.end_of_turn_ms, "generated")
    explorer = LogExplorer(result.run_dir)
    compared = ["a_eos_source", "a_eos_ms", "false_cutoff", "voice_to_voice_ms"]
    pd.testing.assert_frame_equal(explorer.turns[compared], pd.DataFrame(result.turns)[compared])
    assert sum(t["false_cutoff"] for t in result.turns) >= 1 and result.turns[-1]["a_eos_source"] == "label"
    assert explorer.status.value.endswith("; ends of speech: 4 from the prompt's labels (labels.json)")
    plain = await replay(  # the same file by its path, in its place: no labels, and the old ones go with it
        digits.file,
        settings,
        run_dir=result.run_dir,
        speed=math.inf,
        dotenv_path=False,
        emulator_options=options,
        overwrite=True,
    )
    assert read_run_labels(plain.run_dir) is None
    explorer = LogExplorer(plain.run_dir)
    assert set(explorer.turns["a_eos_source"]) == {"estimated"}
    assert explorer.status.value.endswith(
        "; ends of speech: 4 from the server's estimate (audio_end_ms minus the silence timer)"
    )


async def test_labels_nobody_reviewed_are_named_as_such(run_dir):
    """Labels `vlab prompts label` proposed (``label_source: auto``) time the run, and the line says what
    they are, as `vlab replay` and a sweep's warning do."""
    from vlab.prompts import write_run_labels

    ends = LogExplorer(run_dir).turns["a_eos_ms"].tolist()  # where the server's estimate put them
    write_run_labels(run_dir, {"end_of_turn_ms": ends, "label_source": "auto"})
    explorer = LogExplorer(run_dir)
    assert explorer.turns["a_eos_source"].tolist() == ["label", "label"]
    assert explorer.status.value.endswith(
        "; ends of speech: 2 from the prompt's labels (labels.json; proposed by vlab prompts label, not reviewed)"
    )


def test_unreadable_labels_in_a_run_folder_say_how_to_do_without_them(tmp_path):
    from vlab.prompts import read_run_labels

    for text in ('{"end_of_turn_ms": ["soon"]}', "[4100.0]", "{"):
        (tmp_path / "labels.json").write_text(text)
        with pytest.raises(
            ConfigError, match=r"labels.json' is not readable labels .*move it away to time the run"
        ):
            read_run_labels(tmp_path)


async def test_each_turn_is_offered_with_its_trigger_status_and_latency(run_dir):
    ex = LogExplorer(run_dir)
    labels = [label for label, _ in ex.turn.options]
    assert labels[0] == "All turns" and len(labels) == 3
    for label, turn in zip(labels[1:], ex.turns.itertuples(), strict=True):
        assert label == f"turn {turn.turn} (vad, completed, voice-to-voice {turn.voice_to_voice_ms:.0f} ms)"


async def test_choosing_a_turn_of_a_run_on_the_emulator_s_timeline_shows_that_turn_s_events(tmp_path):
    # its turns' t_done_ns are on the simulated timeline, its events' t_ns on the log's clock: the table
    # compared the two and showed "No event matches the filters." for every turn
    from vlab.replay import replay

    result = await replay("two_turns", run_dir=tmp_path / "run", speed=math.inf, dotenv_path=False)
    ex = LogExplorer(result.run_dir)
    assert (ex.turns["timeline"] == "simulated").all() and len(ex.turns) == 2
    # how long it lasted, as at any speed (it said the wall time alone, 0.2 s here against 6.5 at speed 1)
    simulated_s = ex.events["sim_ms"].max() / 1000
    assert f"{simulated_s:.1f} s on the emulator's timeline (" in ex.status.value and simulated_s > 3
    for turn in range(2):
        ex.turn.value = turn
        rows = ex.filtered()
        assert rows["type"].iloc[-1] == "response.done"
        assert rows["response_id"].iloc[-1] == ex.turns.iloc[turn]["response_id"]
        assert (rows["type"] == "input_audio_buffer.speech_stopped").sum() == 1  # this turn's, not both
