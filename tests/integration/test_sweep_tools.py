"""Function tools in a sweep (``[tools]``): each cell answers the model's calls, and the user's wait
through them is one figure, the same at every replay speed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests._mcp_server import stand_in_mcp
from vlab import Session, SessionSettings, protocol
from vlab.corpus import import_folder
from vlab.errors import ConfigError
from vlab.feed import feed_prompt, trailing_silence_ms
from vlab.log import load_log
from vlab.metrics import turn_latency
from vlab.report import build_report, compare_sweeps, tool_call_summary
from vlab.settings import FunctionTool, McpServer, ServerVad
from vlab.sweep import load_config, run_sweep_async
from vlab.testing import spoken_prompt
from vlab.widgets import SweepPanel

pytestmark = pytest.mark.integration

QUESTION = "What is the weather like in Seattle today?"
WEATHER = {
    "description": "Get the current weather in a given location",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "The city, e.g. Seattle"}},
        "required": ["location"],
    },
    "output": {"temperature": 22, "unit": "celsius"},
}
ANSWER = json.dumps(WEATHER["output"])
TIMED = [
    "t_eos_ns",
    "t_created_ns",
    "t_first_audio_ns",
    "t_done_ns",
    "voice_to_answer_ms",
    "voice_to_voice_ms",
    "dead_air_ms",
]


def _spoken_prompt_set(folder: Path, name: str, question: str) -> Path:
    """A prompt set of one recording: the spoken question, labelled (as ``vlab prompts import`` reads it)."""
    prompt = spoken_prompt(question, lead_ms=300, trail_ms=1500)
    sf.write(folder / f"{name}.wav", np.frombuffer(prompt.pcm, dtype=np.int16), prompt.sample_rate)
    (folder / f"{name}.txt").write_text(
        f"{prompt.speech_start_ms / 1000:.3f}\t{prompt.speech_end_ms / 1000:.3f}\t{question}\n"
    )
    import_folder(folder)
    return folder


@pytest.fixture(scope="module")
def weather_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _spoken_prompt_set(tmp_path_factory.mktemp("prompts"), "weather", QUESTION)


def _config(prompts: Path, speed: Any) -> dict[str, Any]:
    return {
        "target": {"speed": speed},
        "prompts": {"path": str(prompts)},
        "grid": {"silence_duration_ms": [300, 600]},
        "tools": {"get_current_weather": WEATHER},
        "run": {"timeout_s": 30},
    }


async def test_each_cell_answers_the_call_and_the_wait_through_it_is_the_same_at_every_speed(
    weather_prompts, tmp_path
):
    turns = {}
    for speed in ("max", 4):
        result = await run_sweep_async(_config(weather_prompts, speed), tmp_path / str(speed), progress=False)
        assert [c.status for c in result.cells] == ["ok", "ok"], [c.error for c in result.cells]
        turns[speed] = result.turns().sort_values(["setting", "turn"]).reset_index(drop=True)

    fast = turns["max"]
    for _, cell in fast.groupby("setting"):
        question, answer = (row for _, row in cell.iterrows())
        assert (question["trigger"], question["tool_calls"], answer["trigger"], answer["answers_turn"]) == (
            "vad",
            1,
            "client",
            0,
        )
        assert question["answer_response_id"] == answer["response_id"]
        # The answer was asked for where the call ended on the simulated timeline, not after the rest of
        # the prompt's audio (which left the client long before, at speed "max")
        assert answer["t_eos_ns"] == question["t_done_ns"]
        wait_ms = (answer["t_first_audible_ns"] - question["t_eos_ns"]) / 1e6
        assert question["voice_to_answer_ms"] == pytest.approx(wait_ms) and math.isfinite(wait_ms)
        assert answer["voice_to_voice_ms"] < wait_ms
        # the user's dead air runs through the call to the answer (VAD turn: audio-clock wait + events)
        dead_air = (
            question["server_hangover_audio_ms"]
            + (answer["t_first_audio_ns"] - question["t_speech_stopped_ns"]) / 1e6
        )
        assert question["dead_air_ms"] == pytest.approx(dead_air) and dead_air > answer["voice_to_voice_ms"]
    shorter, longer = fast[fast["answers_turn"] < 0]["voice_to_answer_ms"]
    # silence_duration_ms 300 → 600: the wait grows by that, to the VAD's 32 ms frame
    assert abs(longer - shorter - 300) < 32
    pd.testing.assert_frame_equal(fast[TIMED], turns[4][TIMED])
    # the sweep's scores and operating points count that wait, not the end-of-turn wait alone
    questions = fast[fast["answers_turn"] < 0].set_index("setting")["dead_air_ms"]
    points = pd.read_parquet(tmp_path / "max" / "points.parquet").set_index("setting")["dead_air_ms"]
    assert points.to_dict() == questions.to_dict()

    cell = next((tmp_path / "max" / "cells").iterdir())
    events = load_log(cell)
    outputs = [
        json.loads(p)["item"]["output"]
        for p in events[events["type"] == protocol.CLIENT_ITEM_CREATE]["payload"]
    ]
    assert outputs == [ANSWER]
    spoken = events[events["type"] == protocol.AUDIO_TRANSCRIPT_DONE]["text"].tolist()
    assert spoken == [f"Here is what I found: {ANSWER}."]

    report = build_report(tmp_path / "max").read_text()
    assert "data-chart='voice_to_answer'" in report and "Tool calls" in report
    assert "counts to its answer&#x27;s first audio" in report  # the dead-air chart says so
    assert "simulated timeline: the same at any replay speed and load" in report  # the waterfall's clock
    assert "Client clock" not in report
    panel = SweepPanel(runs_dir=tmp_path)
    panel.open_path.value = str(tmp_path / "max")
    panel.open_button.click()
    assert "voice_to_answer" in panel.charts
    assert "voice_to_answer_ms" in set(panel.summary["metric"])
    compared = compare_sweeps(tmp_path / "max", tmp_path / "4")
    answer_p50 = compared[compared["measure"] == "voice_to_answer_ms p50"]
    assert len(answer_p50) == 2 and (answer_p50["delta"] == 0).all()


def _chained_tools_example(
    folder: Path, speed: str, prompt: str = "pause_300", silence_ms: int = 900
) -> Path:
    """``examples/chained_tools_sweep.toml`` and its script, copied to ``folder``: one prompt, one setting."""
    folder.mkdir()
    shutil.copy("examples/chained_tools.json", folder)
    text = Path("examples/chained_tools_sweep.toml").read_text()
    for old, new in (
        ('include = ["pause"]', f'include = ["{prompt}"]'),
        ("silence_duration_ms = [300, 600, 900]", f"silence_duration_ms = [{silence_ms}]"),
        ('speed = "max"', f"speed = {speed}"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (folder / "sweep.toml").write_text(text)
    return folder / "sweep.toml"


async def test_a_chain_of_calls_from_a_dialogue_script_is_answered_on_the_one_timeline(tmp_path):
    """``examples/chained_tools_sweep.toml``: asked for a table, the model checks what is free, then books
    it (its ``[target] script``, found beside the config). The user's wait runs through both calls and
    both functions' run times, and is the same at every speed."""
    turns = {}
    for name, speed in (("max", '"max"'), ("4", "4")):
        config = _chained_tools_example(tmp_path / name, speed)
        result = await run_sweep_async(config, tmp_path / f"out-{name}", progress=False)
        assert [c.status for c in result.cells] == ["ok"], [c.error for c in result.cells]
        turns[name] = result.turns().sort_values("turn").reset_index(drop=True)
    fast = turns["max"]
    assert fast[
        ["trigger", "tool_calls", "answers_turn", "calls_to_answer", "false_cutoff"]
    ].values.tolist() == [
        ["vad", 1, -1, 2, False],
        ["client", 1, 0, 0, False],
        ["client", 0, 0, 0, False],
    ]
    assert tool_call_summary(fast)[["turns_with_calls", "calls", "answered"]].values.tolist() == [[1, 2, 1]]
    question, booking, answer = (row for _, row in fast.iterrows())
    assert question["answer_response_id"] == answer["response_id"]
    # each function's run_ms (800, then 600) passes before its output, though the second call and its
    # answer come after the prompt's last sample: the rounds send the user's silence meanwhile
    assert booking["t_eos_ns"] - question["t_done_ns"] == 800e6
    assert answer["t_eos_ns"] - booking["t_done_ns"] == 600e6
    wait_ms = (answer["t_first_audible_ns"] - question["t_eos_ns"]) / 1e6
    assert question["voice_to_answer_ms"] == pytest.approx(wait_ms) and math.isfinite(wait_ms)
    pd.testing.assert_frame_equal(fast[TIMED], turns["4"][TIMED])
    events = load_log(next((tmp_path / "out-max" / "cells").iterdir()))
    calls = events[events["type"] == protocol.FUNCTION_CALL_ARGUMENTS_DONE]
    assert [json.loads(p)["name"] for p in calls["payload"]] == ["check_availability", "book_table"]
    spoken = events[events["type"] == protocol.AUDIO_TRANSCRIPT_DONE]["text"].tolist()
    assert spoken == ['Your table is booked: {"booked": true, "table": 12}.']
    manifest = json.loads((tmp_path / "out-max" / "manifest.json").read_text())
    assert manifest["script"] == str(tmp_path / "max" / "chained_tools.json")
    assert f"dialogue script: {manifest['script']};" in build_report(tmp_path / "out-max").read_text()


async def test_the_user_s_next_words_during_a_chain_are_answered_right_after_it_at_every_speed(tmp_path):
    """silence_duration_ms 300 cuts "I would like to book a table for … four people at seven tonight" at
    its pause: the chain starts on half the sentence, and the rest of it ends while the chain is still
    answered. Its response waits for the one under way and starts at that one's end (it started some
    750 ms later at speed max, once the timeline had run on to the end of the audio, when the waiting
    response took the turn again by the event loop's order rather than at its predecessor's end)."""
    turns = {}
    for name, speed in (("max", '"max"'), ("4", "4")):
        config = _chained_tools_example(tmp_path / name, speed, prompt="pause_1200", silence_ms=300)
        result = await run_sweep_async(config, tmp_path / f"out-{name}", progress=False)
        assert [c.status for c in result.cells] == ["ok"], [c.error for c in result.cells]
        turns[name] = result.turns().sort_values("turn").reset_index(drop=True)
    fast = turns["max"]
    cut, rest = fast.iloc[0], fast[(fast["trigger"] == "vad") & (fast["turn"] > 0)].iloc[0]
    assert cut["false_cutoff"] and cut["tool_calls"] == 1
    before = fast[fast["turn"] < rest["turn"]]
    assert rest["t_created_ns"] - before["t_done_ns"].max() < 200e6  # right after the response it waited for
    pd.testing.assert_frame_equal(fast[TIMED], turns["4"][TIMED])


def test_a_dialogue_script_the_sweep_cannot_use_fails_before_anything_runs(tmp_path):
    grid = {"threshold": [0.5]}
    with pytest.raises(ConfigError, match=r"\[target\] script 'missing.json' not found in .*: give its path"):
        load_config({"grid": grid, "target": {"script": "missing.json"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"\[target\] script must be the path of a JSON dialogue script"):
        load_config({"grid": grid, "target": {"script": 1}})
    (tmp_path / "bad.json").write_text('{"rules": [{"on": "function_output", "after": "x"}]}')
    with pytest.raises(ConfigError, match="bad.json: rule 1 needs 'say' or 'call'"):
        load_config({"grid": grid, "target": {"script": "bad.json"}}, base_dir=tmp_path)


async def test_a_function_s_run_time_adds_to_the_user_s_wait_exactly_and_alike_at_every_speed(
    weather_prompts, tmp_path
):
    """[tools.NAME] run_ms: the output comes that long after the call on the simulated timeline."""
    waits, timed = {}, {}
    for name, speed, run_ms in (("instant", "max", 0), ("max", "max", 800), ("4", 4, 800)):
        config = {**_config(weather_prompts, speed), "grid": {"silence_duration_ms": [300]}}
        config["tools"] = {"get_current_weather": {**WEATHER, "run_ms": run_ms}}
        result = await run_sweep_async(config, tmp_path / name, progress=False)
        assert [c.status for c in result.cells] == ["ok"], [c.error for c in result.cells]
        turns = result.turns().sort_values("turn").reset_index(drop=True)
        waits[name], timed[name] = turns["voice_to_answer_ms"].iloc[0], turns[TIMED]
        if run_ms:
            question, answer = (row for _, row in turns.iterrows())
            assert answer["t_eos_ns"] == question["t_done_ns"] + run_ms * 1e6  # asked for once it ran
            events = load_log(next((tmp_path / name / "cells").iterdir()))
            created = events[events["type"] == protocol.ITEM_CREATED]
            (output_at,) = [
                row.sim_ms for row in created.itertuples() if '"function_call_output"' in row.payload
            ]
            assert output_at * 1e6 == answer["t_eos_ns"]  # the output itself is there too
    assert waits["max"] - waits["instant"] == pytest.approx(800)
    pd.testing.assert_frame_equal(timed["max"], timed["4"])
    with pytest.raises(ConfigError, match=r"\[tools.get_current_weather\] run_ms must be the ms"):
        load_config(
            {"grid": {"threshold": [0.5]}, "tools": {"get_current_weather": {**WEATHER, "run_ms": -1}}}
        )


async def test_a_client_that_answers_no_call_still_ends_its_input():
    """A session with tools fed on the input timeline without a runner: the call holds time until the
    client says its audio has ended, and the feed ends."""
    prompt = spoken_prompt(QUESTION, lead_ms=300, trail_ms=0)
    tool = FunctionTool(**{k: v for k, v in WEATHER.items() if k != "output"}, name="get_current_weather")
    settings = SessionSettings(tools=(tool,), turn_detection=ServerVad())
    pcm = prompt.pcm + bytes(2 * 24 * trailing_silence_ms(settings.turn_detection))
    emulator = {"speed": math.inf, "hear_audio": True}
    async with Session(settings, emulator_options=emulator, dotenv_path=False) as session:
        await feed_prompt(session, pcm, speed=math.inf, timeout_s=30)
        frame = session.frame()
    (question,) = (row for _, row in turn_latency(frame).iterrows())
    assert question["tool_calls"] == 1 and math.isnan(question["voice_to_answer_ms"])


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ({"get_weather": {"description": "x"}}, r"\[tools.get_weather\] output must be"),
        (
            {"get_weather": {"output": "x", "describe": "x"}},
            r"unknown key\(s\) 'describe' in \[tools.get_weather\]",
        ),
        ({"get weather": {"output": "x"}}, r"\[tools.get weather\]: FunctionTool.name must be"),
        ({"get_weather": "sunny"}, r"\[tools.get_weather\] must be a table"),
        ({"get_weather": {"output": "x", "parameters": "city"}}, r"FunctionTool.parameters must be"),
    ],
)
def test_bad_tools_fail_before_anything_runs(tools, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"grid": {"threshold": [0.5]}, "tools": tools})


def test_tools_need_sessions_and_the_emulator_s_ears():
    grid = {"threshold": [0.5]}
    tools = {"get_weather": {"output": "sunny"}}
    with pytest.raises(ConfigError, match="mode = 'vad' runs the VAD alone"):
        load_config({"grid": grid, "tools": tools, "run": {"mode": "vad"}})
    with pytest.raises(ConfigError, match="need \\[target\\] hear_audio = true"):
        load_config({"grid": grid, "tools": tools, "target": {"hear_audio": False}})
    cfg = load_config({"grid": grid, "tools": {**tools, "get_time": {"output": {"time": "9 am"}}}})
    assert cfg.hear_audio and cfg.tool_outputs == {"get_weather": "sunny", "get_time": '{"time": "9 am"}'}
    assert [t.name for t in cfg.settings[0].tools] == ["get_weather", "get_time"]
    assert not load_config({"grid": grid}).hear_audio


def test_the_tools_example_offers_its_functions_in_every_setting(tmp_path, monkeypatch):
    cfg = load_config("examples/tools_sweep.toml")
    assert set(cfg.tool_outputs) == {"book_table", "get_museum_hours"} and cfg.hear_audio
    assert all([t.name for t in s.tools] == list(cfg.tool_outputs) for s in cfg.settings)
    assert json.loads(cfg.tool_outputs["book_table"]) == {"booked": True, "table": 12}
    # its commented-out [mcp.docs] table is a valid one once uncommented
    text = Path("examples/tools_sweep.toml").read_text()
    start = text.index("# [mcp.docs]")
    uncommented = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines())
    (tmp_path / "mcp.toml").write_text(text[:start] + uncommented)
    monkeypatch.setenv("DOCS_MCP_TOKEN", "token")
    with_mcp = load_config(tmp_path / "mcp.toml")
    assert with_mcp.mcp_approvals == {"docs": True}
    (server,) = [t for t in with_mcp.settings[0].tools if isinstance(t, McpServer)]
    assert server.allowed_tools == ("microsoft_docs_search",) and server.authorization == "token"


DOCS_QUESTION = "Search the Microsoft documentation for voice live."
TOKEN = "sk-mcp-token-1234"  # a stand-in secret: it must reach the server and no file


@pytest.fixture(scope="module")
def docs_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken question the stand-in MCP server's docs search answers."""
    return _spoken_prompt_set(tmp_path_factory.mktemp("docs_prompts"), "docs", DOCS_QUESTION)


async def test_a_sweep_with_an_mcp_server_approves_its_calls_and_times_them_alike_at_every_speed(
    docs_prompts, tmp_path, monkeypatch
):
    monkeypatch.setenv("DOCS_MCP_TOKEN", TOKEN)
    turns = {}
    async with stand_in_mcp() as mcp:
        for speed in ("max", 8):
            config = {
                "target": {"speed": speed},
                "prompts": {"path": str(docs_prompts)},
                "grid": {"silence_duration_ms": [300, 600]},
                "mcp": {
                    "azure_doc": {
                        "server_url": mcp.url,
                        "allowed_tools": ["microsoft_docs_search"],
                        "require_approval": "always",
                        "approve": True,
                        "authorization_env": "DOCS_MCP_TOKEN",
                    }
                },
                "run": {"timeout_s": 30},
            }
            result = await run_sweep_async(config, tmp_path / str(speed), progress=False)
            assert [c.status for c in result.cells] == ["ok", "ok"], [c.error for c in result.cells]
            turns[speed] = result.turns().sort_values(["setting", "turn"]).reset_index(drop=True)
    assert mcp.methods().count("tools/call") == 4  # each cell's call, approved
    assert {headers.get("Authorization") for _, headers in mcp.requests} == {f"Bearer {TOKEN}"}

    fast = turns["max"]
    pd.testing.assert_frame_equal(fast[TIMED], turns[8][TIMED])
    for _, cell in fast.groupby("setting"):
        question, approved, answer = (row for _, row in cell.iterrows())
        assert (question["trigger"], approved["trigger"], answer["trigger"]) == ("vad", "client", "client")
        assert approved["a_eos_source"] == protocol.MCP_APPROVAL_RESPONSE_ITEM
        assert approved["t_eos_ns"] == question["t_done_ns"]  # approved where it was asked
        assert question["answer_response_id"] == answer["response_id"]
        assert math.isfinite(question["voice_to_answer_ms"]) and math.isfinite(question["dead_air_ms"])
    shorter, longer = fast[fast["answers_turn"] < 0]["voice_to_answer_ms"]
    assert abs(longer - shorter - 300) < 32  # silence_duration_ms 300 → 600, to the VAD's 32 ms frame
    summary = tool_call_summary(fast)  # the approved call's own response counts in the question's turn
    assert (
        summary[["turns_with_calls", "calls", "at_a_cutoff", "answered"]].values.tolist()
        == [[1, 1, 0, 1]] * 2
    )
    older = fast.drop(
        columns="calls_to_answer"
    )  # a sweep written before the column: its own responses' calls
    assert tool_call_summary(older)["calls"].tolist() == [1, 1]
    assert summary["voice_to_answer_p50_ms"].tolist() == [shorter, longer]

    cell = next((tmp_path / "max" / "cells").iterdir())
    spoken = load_log(cell)
    said = spoken[spoken["type"] == protocol.AUDIO_TRANSCRIPT_DONE]["text"].tolist()
    assert len(said) == 1 and said[0].startswith("Here is what I found: microsoft_docs_search answered")
    report = build_report(tmp_path / "max").read_text()
    assert "Tool calls" in report and "data-chart='voice_to_answer'" in report
    for path in tmp_path.rglob("*"):  # the token is in no file: manifest, logs, tables, report
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


async def test_a_sweep_whose_mcp_server_cannot_list_its_tools_fails_each_cell_naming_it(
    docs_prompts, tmp_path
):
    config = {
        "prompts": {"path": str(docs_prompts)},
        "grid": {"silence_duration_ms": [300]},
        "mcp": {"docs": {"server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}},
        "run": {"timeout_s": 30},
    }
    result = await run_sweep_async(config, tmp_path, progress=False)
    (cell,) = result.cells
    assert cell.status == "error" and "the MCP server 'docs' (http://127.0.0.1:9/mcp) could not list" in str(
        cell.error
    )


@pytest.mark.parametrize(
    ("mcp", "message"),
    [
        ({"docs": {"require_approval": "never"}}, r"\[mcp.docs\]: McpServer.server_url must be"),
        (
            {"docs": {"server_url": "http://x/mcp", "aprove": True}},
            r"unknown key\(s\) 'aprove' in \[mcp.docs\]",
        ),
        (
            {"docs": {"server_url": "http://x/mcp", "approve": "yes"}},
            r"\[mcp.docs\] approve must be true or false",
        ),
        ({"docs": {"server_url": "http://x/mcp", "require_approval": "ask"}}, r"McpServer.require_approval"),
        (
            {"docs": {"server_url": "http://x/mcp", "authorization_env": "VLAB_NO_SUCH_TOKEN"}},
            r"names VLAB_NO_SUCH_TOKEN, which is not set",
        ),
        ({"docs": "http://x/mcp"}, r"\[mcp.docs\] must be a table"),
    ],
)
def test_bad_mcp_servers_fail_before_anything_runs(mcp, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"grid": {"threshold": [0.5]}, "mcp": mcp})


def test_mcp_servers_need_sessions_and_are_offered_in_every_setting():
    grid = {"threshold": [0.5, 0.6]}
    mcp = {"docs": {"server_url": "http://127.0.0.1:9000/mcp", "require_approval": "never"}}
    with pytest.raises(ConfigError, match=r"\[mcp\] need sessions"):
        load_config({"grid": grid, "mcp": mcp, "run": {"mode": "vad"}})
    cfg = load_config({"grid": grid, "mcp": mcp, "tools": {"get_time": {"output": "9 am"}}})
    assert cfg.hear_audio and cfg.mcp_approvals == {"docs": False}  # declined unless the config says so
    assert all([type(t).__name__ for t in s.tools] == ["FunctionTool", "McpServer"] for s in cfg.settings)
