"""A sweep's ``[session]`` (what every setting sends alike), the voices a grid compares, and a resumed sweep
whose config changed."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.integration.test_sweep import OPTS, config
from vlab import protocol
from vlab.emulator.fitted_latency import Empirical, FittedLatency
from vlab.errors import ConfigError, RunFolderTaken
from vlab.log import load_log
from vlab.report import build_report
from vlab.settings import NOT_GIVEN
from vlab.sweep import SESSION_FIELDS, load_config, run_sweep_async, sweep_warnings
from vlab.sweep.cells import STANDALONE_EMULATOR
from vlab.sweep.grid import VOICE_DEFAULT

pytestmark = pytest.mark.integration

FAST = {"target": {"speed": "max"}, "prompts": {"include": ["short_question"]}}
STORY = "You are a storyteller. Tell a long story."
_FITTED_MS = {
    "endpointing": 80,
    "commit": 150,
    "first_text": 300,
    "first_audio": 100,
    "audio_rate": 3,
    "network": 30,
}


def _session_updates(cell_dir) -> list[dict]:
    """The settings a cell's session sent (not the metadata alone that drives vlab's emulator: its seed,
    its timeline)."""
    events = load_log(cell_dir)
    sent = events[events["type"] == protocol.CLIENT_SESSION_UPDATE]["payload"]
    return [s for s in (json.loads(p)["session"] for p in sent) if set(s) != {"metadata"}]


def test_every_setting_sends_the_session_table_alike():
    session = {"instructions": STORY, "voice": "en-US-Ava:DragonHDLatestNeural", "temperature": 0.7}
    cfg = load_config(config(**FAST, session=session, run={"baseline": True, "push_to_talk": True}))
    assert len(cfg.settings) == 4  # the two of the grid, the baseline, push-to-talk
    for setting in cfg.settings:
        assert (setting.instructions, setting.voice, setting.temperature) == (
            STORY,
            "en-US-Ava:DragonHDLatestNeural",
            0.7,
        )
    assert cfg.session == session
    assert all(s.instructions is NOT_GIVEN for s in load_config(config(**FAST)).settings)


async def test_the_session_s_instructions_reach_each_cell_and_set_how_long_its_replies_are(tmp_path):
    plain = config(**FAST, grid={"silence_duration_ms": [500]})
    told = config(**plain, session={"instructions": STORY, "voice": "alloy", "transcription": "azure-speech"})
    await run_sweep_async(plain, tmp_path / "plain", progress=False, session_options=OPTS)
    await run_sweep_async(told, tmp_path / "told", progress=False, session_options=OPTS)
    (cell,) = (tmp_path / "told" / "cells").iterdir()
    sent, *timeline = _session_updates(cell)  # then the timeline's metadata alone (docs/timeline.md)
    assert all(set(update) == {"metadata"} for update in timeline)
    assert sent["instructions"] == STORY and sent["voice"] == {"type": "openai", "name": "alloy"}
    assert sent["input_audio_transcription"] == {"model": "azure-speech"}
    events = load_log(cell)
    assert (events["type"] == protocol.TRANSCRIPTION_COMPLETED).sum() == 1  # the user's words
    told_turns = pd.read_parquet(tmp_path / "told" / "turns.parquet")
    # from speech_stopped to the transcript: the latency model's draw on the emulator's timeline
    trace = [json.loads(line) for line in (cell / "trace.jsonl").read_text().splitlines()]
    (drawn,) = [t["transcription_ms"] for t in trace if "transcription_ms" in t]
    assert drawn > 0
    assert told_turns["transcription_delay_ms"].tolist() == [pytest.approx(drawn, abs=0.01)]
    (plain_cell,) = (tmp_path / "plain" / "cells").iterdir()
    assert "instructions" not in _session_updates(plain_cell)[0]  # none asked: the service's own
    # the emulator reads from the instructions how long a reply to give: a story, not a short answer
    tokens = {
        name: pd.read_parquet(tmp_path / name / "turns.parquet")["output_tokens"].sum()
        for name in ("plain", "told")
    }
    assert tokens["told"] > 5 * tokens["plain"], tokens
    manifest = json.loads((tmp_path / "told" / "manifest.json").read_text())
    assert manifest["session"] == told["session"]
    page = build_report(tmp_path / "told").read_text(encoding="utf-8")
    first_line = page.split("<p class='note'>", 1)[1].split("</p>", 1)[0]
    assert (
        "session: instructions &#x27;You are a storyteller. Tell a long story.&#x27;, voice &#x27;alloy&#x27;"
        in first_line
    )


async def test_a_sweep_answered_in_g711_records_it_at_8_khz_with_the_figures_of_pcm16(tmp_path):
    # the assistant's audio format changes what is recorded, not when anything happens (emulator's timeline)
    plain = config(target={"speed": "max"}, prompts={"include": ["pause_600", "interruption"]})
    phone = config(**plain, session={"output_audio_format": "g711_ulaw"})
    figures = [
        "setting",
        "prompt",
        "turn",
        "voice_to_voice_ms",
        "ttfb_audio_ms",
        "dead_air_ms",
        "false_cutoff",
    ]
    turns, cut = {}, {}
    for name, cfg in (("plain", plain), ("phone", phone)):
        await run_sweep_async(cfg, tmp_path / name, progress=False, session_options=OPTS)
        turns[name] = pd.read_parquet(tmp_path / name / "turns.parquet")[figures].sort_values(figures[:3])
        cells = sorted((tmp_path / name / "cells").iterdir())
        cut[name] = [
            events.loc[events["type"] == protocol.CLIENT_ITEM_TRUNCATE, "audio_end_ms"].tolist()
            for events in map(load_log, cells)
        ]
    pd.testing.assert_frame_equal(
        turns["phone"].reset_index(drop=True), turns["plain"].reset_index(drop=True)
    )
    assert cut["phone"] == cut["plain"] and any(cut["plain"])  # barge-ins truncate at the same place
    for cell in (tmp_path / "phone" / "cells").iterdir():
        said, rate = sf.read(cell / "output.wav", dtype="float32")
        assert rate == 8000 and np.abs(said).max() > 0.1  # the replies, expanded from G.711


def test_the_session_note_shortens_long_instructions_and_the_dry_run_says_it(tmp_path, capsys):
    from vlab.cli import main
    from vlab.sweep.summary import session_note

    long = "Be brief. " * 20
    assert session_note({"instructions": long, "temperature": 0.7}) == (
        f"instructions {long[:60] + '…'!r}, temperature 0.7"
    )
    (tmp_path / "told.toml").write_text(
        '[grid]\nthreshold = [0.5]\n[session]\ninstructions = "Be brief."\nvoice = "alloy"\n'
    )
    assert main(["sweep", str(tmp_path / "told.toml"), "--dry-run"]) == 0
    assert "  session  instructions 'Be brief.', voice 'alloy'\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ({"instructions": 3}, r"^\[session\] instructions must be a string \(the system prompt\), got 3$"),
        ({"voice": "nobody"}, r"^\[session\] voice must be an OpenAI voice .*got 'nobody'"),
        ({"voice": {"name": "x"}}, r"^\[session\] voice mapping needs a 'type'"),
        ({"temperature": 5}, r"^\[session\] temperature must be a number in \[0\.0, 1\.2\], got 5\.$"),
        ({"temperature": True}, r"^\[session\] temperature must be a number, got True$"),
        ({"transcription": 1}, r"^\[session\] transcription must be a transcription model name"),
        (
            {"input_audio_format": "mp3"},
            r"^\[session\] input_audio_format must be one of 'pcm16', 'g711_ulaw', 'g711_alaw', got 'mp3'",
        ),
        (
            {"input_audio_sampling_rate": 22050},
            r"^\[session\] input_audio_sampling_rate must be one of 8000, 16000, 24000, 44100, 48000",
        ),
        (
            {"input_audio_format": "g711_alaw", "input_audio_sampling_rate": 16000},
            r"^\[session\] input_audio_sampling_rate must be 8000 with input_audio_format='g711_alaw'",
        ),
        (
            {"input_audio_sampling_rate": "16k"},
            r"^\[session\] input_audio_sampling_rate must be a rate in Hz",
        ),
        ({"output_audio_format": "mp3"}, r"^\[session\] output_audio_format must be one of 'pcm16', "),
        (
            {"instruction": "Hi"},
            r"unknown key\(s\) 'instruction' in \[session\] \(did you mean 'instructions'\?\)",
        ),
        ({"model": "gpt-4o"}, r"unknown key\(s\) 'model' in \[session\].*AZURE_VOICELIVE_MODEL"),
    ],
)
def test_bad_session_tables_fail_before_anything_runs(session, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config(session=session))


def test_a_session_key_outside_its_table_is_told_where_it_belongs():
    with pytest.raises(ConfigError, match=r"instructions belongs in \[session\]"):
        load_config({**config(), "instructions": "Hi"})


def test_the_documented_session_table_is_every_key_it_takes_and_valid():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    import vlab.sweep

    documented = tomllib.loads(vlab.sweep.__doc__.split("::\n", 1)[1].split("\n\n", 1)[0])["session"]
    assert set(documented) == set(SESSION_FIELDS)
    assert load_config(config(session=documented)).session == documented


async def test_a_resumed_sweep_whose_config_changed_stops_before_anything_runs(tmp_path):
    first = config(**FAST, grid={"silence_duration_ms": [500]}, session={"instructions": "Be brief."})
    await run_sweep_async(first, tmp_path, progress=False, session_options=OPTS)
    (cell_json,) = tmp_path.glob("cells/*/cell.json")
    kept = cell_json.read_text()
    changes = [
        ({"session": {"instructions": STORY}}, "instructions"),
        ({"session": {"voice": "alloy"}}, "voice"),
        ({"session": {"input_audio_format": "g711_ulaw"}}, "input_audio_format, input_audio_sampling_rate"),
        ({"target": {"latency": "slow-network"}}, r"\[target\] latency"),
        (
            {"target": {"latency": "slow-network"}, "session": {"temperature": 0.6}},
            r"temperature, \[target\] latency",
        ),
    ]
    for change, named in changes:
        changed = config(**{**first, **{k: {**first.get(k, {}), **v} for k, v in change.items()}})
        with pytest.raises(RunFolderTaken) as info:
            await run_sweep_async(changed, tmp_path, progress=False, session_options=OPTS)
        assert re.fullmatch(
            f"{re.escape(str(tmp_path))} holds 1 finished cell of this sweep that ran otherwise "
            rf"\({named} changed since\); resumed, their figures would mix with this sweep's. Give this sweep a folder of its own "
            r"\(vlab sweep --out\), or run every cell again \(vlab sweep --no-resume; run_sweep\(resume=False\)\)",
            str(info.value),
        ), str(info.value)
        assert cell_json.read_text() == kept  # nothing ran
    # what the figures do not depend on may change: the speed (one timeline) and the [run] options
    same = config(**{**first, "target": {"speed": 50}, "run": {**first["run"], "concurrency": 1}})
    result = await run_sweep_async(same, tmp_path, progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["skipped"]
    # the folder's cells may also be run again, under the new config
    story = config(**{**first, "session": {"instructions": STORY}})
    result = await run_sweep_async(story, tmp_path, resume=False, progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["ok"]
    assert json.loads(cell_json.read_text())["settings"]["instructions"] == STORY


async def test_a_prompt_recorded_again_under_its_id_is_not_resumed_but_one_relabelled_is(tmp_path):
    import shutil

    from vlab.prompts import load_prompt_set

    (bundled,) = [p for p in load_prompt_set() if p.id == "short_question"]
    folder = tmp_path / "prompts"
    folder.mkdir()
    manifest = json.loads((bundled.file.parent / "manifest.json").read_text())
    manifest["prompts"] = [e for e in manifest["prompts"] if e["id"] == "short_question"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(bundled.file, folder / bundled.file.name)
    cfg = config(
        target={"speed": "max"},
        grid={"silence_duration_ms": [500]},
        prompts={"path": str(folder), "include": ["*"]},
    )
    before = (await run_sweep_async(cfg, tmp_path / "out", progress=False, session_options=OPTS)).turns()
    entry = manifest["prompts"][0]
    entry["speech_segments"][0][1] -= 20  # relabelled: the tables score with the new labels
    entry["end_of_turn_ms"][0] -= 20
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = await run_sweep_async(cfg, tmp_path / "out", progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["skipped"]
    assert result.turns()["dead_air_ms"].iloc[0] == pytest.approx(before["dead_air_ms"].iloc[0] + 20)
    audio = (folder / bundled.file.name).read_bytes()
    (folder / bundled.file.name).write_bytes(audio[:-4800])  # recorded again: 100 ms shorter
    with pytest.raises(RunFolderTaken, match=r"that ran otherwise \(the prompt's recording changed since\)"):
        await run_sweep_async(cfg, tmp_path / "out", progress=False, session_options=OPTS)


async def test_a_cell_json_of_an_earlier_vlab_without_the_conditions_is_resumed(tmp_path):
    cfg = config(**FAST, grid={"silence_duration_ms": [500]})
    await run_sweep_async(cfg, tmp_path, progress=False, session_options=OPTS)
    (cell_json,) = tmp_path.glob("cells/*/cell.json")
    meta = json.loads(cell_json.read_text())
    assert set(meta) >= {"recording", "settings", "emulator", "tool_answers"}
    del meta["recording"], meta["emulator"], meta["tool_answers"]  # an earlier vlab's: the settings only
    cell_json.write_text(json.dumps(meta))
    changed = config(**{**cfg, "target": {**cfg["target"], "latency": "slow-network"}})
    result = await run_sweep_async(changed, tmp_path, progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["skipped"]  # an emulator it did not record is not told apart


async def test_a_dry_run_with_out_says_what_the_sweep_would_do_with_the_folder_s_cells(tmp_path, capsys):
    from vlab.cli import main

    toml = tmp_path / "sweep.toml"
    toml.write_text(
        '[target]\nspeed = "max"\n[prompts]\ninclude = ["short_question", "pause_600"]\n'
        '[grid]\nsilence_duration_ms = [500]\n[session]\ninstructions = "Be brief."\n'
    )
    out = tmp_path / "out"

    def folder_line(*flags: str, code: int = 0) -> str:
        assert main(["sweep", str(toml), "--out", str(out), "--dry-run", *flags]) == code  # the run's
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  folder ")]
        return line.removeprefix(f"  folder   {out}: ")

    assert folder_line() == "no finished cell of this sweep; every cell runs"
    await run_sweep_async(toml, out, progress=False, session_options=OPTS)
    assert folder_line() == "all 2 cells finished and kept (only the tables are built again)"
    (pause,) = (out / "cells").glob("*pause_600*/cell.json")
    pause.unlink()  # as a sweep stopped before that cell had finished
    assert folder_line() == "1 of 2 cells finished and kept; 1 run"
    assert folder_line("--no-resume") == "1 of 2 cells finished; --no-resume runs them again"
    toml.write_text(toml.read_text().replace("Be brief.", "Tell a long story."))
    assert folder_line(code=2) == (
        "1 finished cell ran otherwise (instructions changed since): the sweep would stop; give another "
        "--out, or --no-resume"
    )
    assert folder_line("--no-resume") == "1 of 2 cells finished; --no-resume runs them again"


def test_telephone_audio_with_end_of_utterance_detection_on_the_emulator_is_warned_of():
    # its recognizer hears about half the words of 8 kHz audio: on 8 bundled prompts a semantic VAD's
    # cut-offs went from 11 % (PCM16 at 24 or 16 kHz) to 33 % (mu-law) at sil=500, the recognizer's doing
    semantic = {"type": "azure_semantic_vad", "silence_duration_ms": [300]}
    phone = {"input_audio_format": "g711_ulaw"}
    (warning,) = sweep_warnings(load_config(config(**FAST, grid=semantic, session=phone)), OPTS)
    assert warning.startswith(
        "[session] input audio g711_ulaw at 8000 Hz on vlab's embedded emulator, with end-of-utterance "
        "detection: the emulator holds a paused turn by the words its recognizer hears"
    )
    eou = {"silence_duration_ms": [300], "eou_model": ["off", "semantic_detection_v1"]}
    assert len(sweep_warnings(load_config(config(**FAST, grid=eou, session=phone)), OPTS)) == 1
    narrow = {"input_audio_sampling_rate": 8000}
    assert len(sweep_warnings(load_config(config(**FAST, grid=semantic, session=narrow)), OPTS)) == 1
    silence_only = {"silence_duration_ms": [300]}  # the silence timer reads no words
    assert sweep_warnings(load_config(config(**FAST, grid=silence_only, session=phone)), OPTS) == []
    wideband = {"input_audio_sampling_rate": 16000}
    assert sweep_warnings(load_config(config(**FAST, grid=semantic, session=wideband)), OPTS) == []
    azure = {**OPTS, "endpoint": "https://x.services.ai.azure.com", "api_key": "k"}
    at_real_time = dataclasses.replace(load_config(config(**FAST, grid=semantic, session=phone)), speed=1.0)
    assert sweep_warnings(at_real_time, azure) == []  # Azure's own recognizer


_VOICES = {"silence_duration_ms": [500], "voice": ["alloy", "en-US-AvaNeural"]}


def _fitted_per_voice(first_audio_ms: dict[str, float]) -> FittedLatency:
    """A fitted model of constant stages whose synthesis starts ``first_audio_ms`` after the text, by voice."""
    constant = {stage: Empirical.fit([ms] * 60) for stage, ms in _FITTED_MS.items()}
    by_voice = {voice: {"first_audio": Empirical.fit([ms] * 60)} for voice, ms in first_audio_ms.items()}
    return FittedLatency(constant, by_voice=by_voice, provenance={})


def _fitted_per_model(commit_ms: dict[str, float]) -> FittedLatency:
    """A fitted model of constant stages whose commit takes ``commit_ms``, by model."""
    constant = {stage: Empirical.fit([ms] * 60) for stage, ms in _FITTED_MS.items()}
    by_model = {model: {"commit": Empirical.fit([ms] * 60)} for model, ms in commit_ms.items()}
    return FittedLatency(constant, by_model=by_model, provenance={})


def test_a_voice_grid_the_emulator_s_latency_model_cannot_tell_apart_is_warned_of(tmp_path, capsys):
    typical = load_config(config(**FAST, grid=_VOICES))
    (warning,) = sweep_warnings(typical, OPTS)
    assert warning.startswith(
        "[grid] voice on vlab's embedded emulator: its latency model 'typical' has no voice in it, so alloy "
        "and en-US-AvaNeural get the same latencies, draw for draw. To compare voices offline, fit a "
        "latency.json from Azure runs with each of them (`vlab calibrate`"
    )
    path = _fitted_per_voice({"en-US-AvaNeural": 900.0}).save(tmp_path / "latency.json")
    fitted = load_config(config(target={"speed": "max", "latency": str(path)}, grid=_VOICES))
    (warning,) = sweep_warnings(fitted, OPTS)
    assert "'fitted:latency.json' has no split for alloy, so it draws its speech synthesis" in warning
    at_real_time = dataclasses.replace(fitted, speed=1.0)  # as a sweep against Azure sends its audio
    azure = {**OPTS, "endpoint": "https://x.services.ai.azure.com", "api_key": "k"}
    assert sweep_warnings(at_real_time, azure) == []
    assert sweep_warnings(load_config(config(**FAST, session={"voice": "alloy"})), OPTS) == []
    # the dry run warns of it too, before the sweep is run
    from vlab.cli import main

    (tmp_path / "voices.toml").write_text('[grid]\nvoice = ["alloy", "echo"]\n')
    capsys.readouterr()
    assert main(["sweep", str(tmp_path / "voices.toml"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert re.match(
        r"vlab: warning: \[grid\] voice on vlab's embedded emulator: .* alloy and echo get", err
    ), err


def test_a_grid_of_voices_crosses_the_settings_and_the_references_speak_with_the_first():
    cfg = load_config(
        config(
            **FAST,
            grid={"silence_duration_ms": [300, 500], "voice": ["alloy", "en-US-AvaNeural", "ALLOY"]},
            run={"baseline": True, "push_to_talk": True},
        )
    )
    assert cfg.setting_names == (
        "thr=0.5 pad=300 sil=300 voice=alloy",
        "thr=0.5 pad=300 sil=300 voice=en-US-AvaNeural",
        "thr=0.5 pad=300 sil=500 voice=alloy",  # also the baseline: plain server VAD, the first voice
        "thr=0.5 pad=300 sil=500 voice=en-US-AvaNeural",
        "push-to-talk",
    )
    assert cfg.baseline == "thr=0.5 pad=300 sil=500 voice=alloy"
    assert [s.voice for s in cfg.settings] == [
        "alloy",
        "en-US-AvaNeural",
        "alloy",
        "en-US-AvaNeural",
        "alloy",
    ]
    alone = load_config({"grid": {"voice": ["alloy", {"type": "azure-custom", "name": "me"}]}})
    assert alone.setting_names == ("thr=0.5 pad=300 sil=500 voice=alloy", "thr=0.5 pad=300 sil=500 voice=me")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"grid": {"voice": []}}, r"^\[grid\] voice is an empty list; give at least one value$"),
        ({"grid": {"voice": ["nobody"]}}, r"^\[grid\] voice = 'nobody': voice must be an OpenAI voice"),
        ({"grid": {"voice": [3]}}, r"^\[grid\] voice must list voice names such as 'alloy'.*got 3$"),
        (
            {"grid": {"voice": ["alloy", "echo"]}, "session": {"voice": "alloy"}},
            r"^voice is in both \[session\] and \[grid\]; give one voice for every setting in \[session\], "
            r"or the voices to compare in \[grid\]$",
        ),
        (
            {"grid": {"voice": ["alloy", "echo"]}, "run": {"mode": "vad"}},
            r"^\[grid\] voice needs sessions: mode = 'vad' runs the VAD alone",
        ),
    ],
)
def test_bad_voice_grids_fail_before_anything_runs(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config(**overrides))


def test_a_voice_outside_any_table_is_told_both_tables_it_belongs_in():
    with pytest.raises(ConfigError, match=r"voice belongs in \[session\] or \[grid\]"):
        load_config({**config(), "voice": "alloy"})


async def test_a_grid_of_voices_tells_which_voice_answers_sooner_on_a_model_fitted_per_voice(tmp_path):
    path = _fitted_per_voice({"alloy": 100.0, "en-US-AvaNeural": 900.0}).save(tmp_path / "latency.json")
    cfg = config(target={"speed": "max", "latency": str(path)}, prompts=FAST["prompts"], grid=_VOICES)
    assert sweep_warnings(load_config(cfg), OPTS) == []  # a split for each voice
    await run_sweep_async(cfg, tmp_path / "voices", progress=False, session_options=OPTS)
    turns = pd.read_parquet(tmp_path / "voices" / "turns.parquet")
    ttfb = turns.groupby("voice")["ttfb_audio_ms"].median()
    assert ttfb["en-US-AvaNeural"] - ttfb["alloy"] == pytest.approx(800, abs=1), ttfb
    points = pd.read_parquet(tmp_path / "voices" / "points.parquet")
    assert points[["setting", "voice"]].values.tolist() == [
        ["thr=0.5 pad=300 sil=500 voice=alloy", "alloy"],
        ["thr=0.5 pad=300 sil=500 voice=en-US-AvaNeural", "en-US-AvaNeural"],
    ]
    dead_air = points.set_index("voice")["dead_air_ms"]
    assert dead_air["en-US-AvaNeural"] - dead_air["alloy"] == pytest.approx(800, abs=1), dead_air
    for cell in (tmp_path / "voices" / "cells").iterdir():
        sent = _session_updates(cell)[0]["voice"]
        meta = json.loads((cell / "cell.json").read_text())
        assert sent["name"] == meta["setting"].split("voice=")[1]
    manifest = json.loads((tmp_path / "voices" / "manifest.json").read_text())
    assert [g["voice"] for g in manifest["grid"]] == ["alloy", "en-US-AvaNeural"]
    # a sweep without voices says the service's default in the same column
    await run_sweep_async(config(**FAST, grid={"silence_duration_ms": [500]}), tmp_path / "plain",
                          progress=False, session_options=OPTS)  # fmt: skip
    assert pd.read_parquet(tmp_path / "plain" / "scores.parquet")["voice"].tolist() == [VOICE_DEFAULT]


async def test_a_sweep_draws_the_same_latencies_on_vlab_emulator_at_an_endpoint_as_on_the_embedded_one(
    tmp_path,
):
    # each cell gives the emulator its seed: at an endpoint its connections were numbered in the order the
    # cells connected, which the scheduling decides, and the draws with them
    from vlab.testing import fast_emulator

    cfg = config(
        target={"speed": "max", "latency": "typical"},
        prompts={"include": ["short_question", "pause_600", "two_turns"]},
        grid={"silence_duration_ms": [300, 500]},
    )
    async with fast_emulator(latency="typical", hear_audio=False) as emu:
        at_endpoint = {**OPTS, "endpoint": emu.endpoint, "api_key": emu.api_key}
        await run_sweep_async(cfg, tmp_path / "standalone", progress=False, session_options=at_endpoint)
    await run_sweep_async(cfg, tmp_path / "embedded", progress=False, session_options=OPTS)
    keys = ["setting", "prompt", "turn"]
    columns = ["voice_to_voice_ms", "turn_commit_ms", "ttfb_audio_ms", "dead_air_ms"]
    turns = {
        name: pd.read_parquet(tmp_path / name / "turns.parquet").sort_values(keys).set_index(keys)[columns]
        for name in ("standalone", "embedded")
    }
    assert len(turns["embedded"]) == 10 and turns["embedded"]["turn_commit_ms"].nunique() > 3  # drawn
    pd.testing.assert_frame_equal(turns["standalone"], turns["embedded"], atol=1e-6, rtol=0)


async def test_a_sweep_against_vlab_emulator_at_an_endpoint_says_so_and_not_the_sweep_s_latency_model(
    tmp_path,
):
    # it recorded "azure" and the report said "latency model: typical", the [target] it never ran with
    from vlab.testing import fast_emulator

    cfg = config(**FAST, grid={"silence_duration_ms": [500]})
    async with fast_emulator() as emu:
        at_endpoint = {**OPTS, "endpoint": emu.endpoint, "api_key": emu.api_key}
        await run_sweep_async(cfg, tmp_path / "standalone", progress=False, session_options=at_endpoint)
    await run_sweep_async(cfg, tmp_path / "embedded", progress=False, session_options=OPTS)
    first_lines, targets = {}, {}
    for name in ("standalone", "embedded"):
        (cell,) = (tmp_path / name / "cells").iterdir()
        targets[name] = json.loads((cell / "cell.json").read_text())["target"]
        page = build_report(tmp_path / name).read_text(encoding="utf-8")
        first_lines[name] = page.split("<p class='note'>", 1)[1].split("; 1 setting", 1)[0]
    assert targets == {"standalone": STANDALONE_EMULATOR, "embedded": "emulator"}
    assert first_lines == {
        "standalone": "target: standalone emulator; model: gpt-realtime; speed: max; latency model: the "
        "standalone emulator&#x27;s own (vlab emulator --latency)",
        "embedded": "target: emulator; model: gpt-realtime; speed: max; latency model: typical",
    }
    manifest = json.loads((tmp_path / "standalone" / "manifest.json").read_text())
    assert manifest["target_kind"] == ["standalone emulator"]
    # against Azure (its manifest so written here), no emulator's latency model is named at all
    manifest["target_kind"] = ["azure"]
    (tmp_path / "standalone" / "manifest.json").write_text(json.dumps(manifest))
    page = build_report(tmp_path / "standalone").read_text(encoding="utf-8")
    assert page.split("<p class='note'>", 1)[1].startswith(
        "target: azure; model: gpt-realtime; speed: max; 1 setting"
    )
    # a number as the factor the config gave (it said "speed: 1.0", the float JSON keeps)
    manifest["speed"] = 1.0
    (tmp_path / "standalone" / "manifest.json").write_text(json.dumps(manifest))
    page = build_report(tmp_path / "standalone").read_text(encoding="utf-8")
    assert page.split("<p class='note'>", 1)[1].startswith(
        "target: azure; model: gpt-realtime; speed: 1; 1 setting"
    )


def test_a_grid_of_models_crosses_the_settings_before_the_voices_and_the_references_take_the_first():
    cfg = load_config(
        {
            "grid": {"model": ["gpt-realtime", "gpt-4.1", "gpt-4.1"], "voice": ["alloy", "echo"]},
            "run": {"baseline": True, "push_to_talk": True},
        }
    )
    assert cfg.setting_names == (
        "thr=0.5 pad=300 sil=500 model=gpt-realtime voice=alloy",  # also the baseline
        "thr=0.5 pad=300 sil=500 model=gpt-realtime voice=echo",
        "thr=0.5 pad=300 sil=500 model=gpt-4.1 voice=alloy",
        "thr=0.5 pad=300 sil=500 model=gpt-4.1 voice=echo",
        "push-to-talk",
    )
    assert cfg.baseline == cfg.setting_names[0] and cfg.models == ("gpt-realtime", "gpt-4.1")
    assert [s.model for s in cfg.settings] == [*["gpt-realtime"] * 2, *["gpt-4.1"] * 2, "gpt-realtime"]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"model": []}, r"^\[grid\] model is an empty list; give at least one value$"),
        (
            {"model": ["gpt-realtime", " "]},
            r"^\[grid\] model must list model names such as 'gpt-realtime'.*got ' '$",
        ),
        ({"model": [4]}, r"^\[grid\] model must list model names .*got 4$"),
    ],
)
def test_bad_model_grids_fail_before_anything_runs(grid, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"grid": grid})
    with pytest.raises(ConfigError, match=r"^\[grid\] model needs sessions: mode = 'vad' runs the VAD alone"):
        load_config({"grid": {"model": ["gpt-realtime", "gpt-4.1"]}, "run": {"mode": "vad"}})


async def test_each_cell_connects_with_its_grid_model_whatever_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_VOICELIVE_MODEL", "gpt-from-the-environment")
    path = _fitted_per_model({"gpt-realtime": 150.0, "gpt-4.1": 650.0}).save(tmp_path / "latency.json")
    grid = {"silence_duration_ms": [500], "model": ["gpt-realtime", "gpt-4.1"]}
    cfg = config(target={"speed": "max", "latency": str(path)}, prompts=FAST["prompts"], grid=grid)
    assert sweep_warnings(load_config(cfg), OPTS) == []  # a split for each model
    await run_sweep_async(cfg, tmp_path / "models", progress=False, session_options=OPTS)
    for cell in (tmp_path / "models" / "cells").iterdir():
        created = load_log(cell)
        (session,) = created[created["type"] == protocol.SESSION_CREATED]["payload"].map(json.loads)
        assert (
            f"model={session['session']['model']}" in json.loads((cell / "cell.json").read_text())["setting"]
        )
    points = pd.read_parquet(tmp_path / "models" / "points.parquet").set_index("model")
    assert list(points.index) == ["gpt-realtime", "gpt-4.1"]
    # the emulator drew each model's own commit: 500 ms apart on its timeline
    assert points.loc["gpt-4.1", "dead_air_ms"] - points.loc["gpt-realtime", "dead_air_ms"] == pytest.approx(
        500, abs=1
    )


async def test_without_a_model_grid_the_target_s_model_is_kept_and_a_resume_with_another_is_refused(
    tmp_path, monkeypatch
):
    cfg = config(**FAST, grid={"silence_duration_ms": [500]})
    told = {**OPTS, "model": "gpt-4.1"}
    await run_sweep_async(cfg, tmp_path / "s", progress=False, session_options=told)
    assert pd.read_parquet(tmp_path / "s" / "scores.parquet")["model"].tolist() == ["gpt-4.1"]
    (cell,) = (tmp_path / "s" / "cells").iterdir()
    assert json.loads((cell / "cell.json").read_text())["settings"]["model"] == "gpt-4.1"
    monkeypatch.setenv("AZURE_VOICELIVE_MODEL", "gpt-realtime-mini")
    result = await run_sweep_async(
        cfg, tmp_path / "s", progress=False, session_options=told
    )  # the model given wins
    assert [c.status for c in result.cells] == ["skipped"]
    # another model now (the environment's): not mixed in
    with pytest.raises(
        RunFolderTaken, match=r"holds 1 finished cell of this sweep that ran otherwise \(model "
    ):
        await run_sweep_async(cfg, tmp_path / "s", progress=False, session_options=OPTS)
    # the same model again (from the environment now): the finished cell is kept
    monkeypatch.setenv("AZURE_VOICELIVE_MODEL", "gpt-4.1")
    result = await run_sweep_async(cfg, tmp_path / "s", progress=False, session_options=OPTS)
    assert [c.status for c in result.cells] == ["skipped"]


async def test_a_cell_whose_settings_the_server_refused_fails_and_says_why(tmp_path):
    from vlab.testing import fast_emulator

    cfg = config(**FAST, grid={"silence_duration_ms": [500]}, session={"voice": "alloy"})
    async with fast_emulator(refuse=["voice:alloy"]) as emu:  # a resource that does not serve alloy
        where = {**OPTS, "endpoint": emu.endpoint, "api_key": emu.api_key}
        result = await run_sweep_async(cfg, tmp_path / "out", progress=False, session_options=where)
    (cell,) = result.cells  # it used to be "ok", its figures those of the server's own voice
    assert cell.status == "error"
    assert cell.error is not None and cell.error.startswith(
        "SettingsRefused: the server refused the session settings (invalid_value: Invalid value for "
        "'session.voice': 'alloy' is not supported by this resource"
    )
