"""VAD-only sweeps (``[run] mode = "vad"``): the emulator's decisions without sessions, equal to a session sweep's."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests._portable import needs_noise_suppression
from vlab.errors import ConfigError
from vlab.log import load_log
from vlab.prompts import load_prompt_set
from vlab.protocol import RESPONSE_CREATED, SPEECH_STARTED, SPEECH_STOPPED
from vlab.sweep import load_config, load_sweep, run_sweep_async

pytestmark = pytest.mark.integration
OPTS = {"dotenv_path": False}
DETECTION = ["audio_start_ms", "audio_end_ms", "onset_ms", "offset_ms", "responded"]
VAD_SCORES = [
    "onset_error_ms",
    "eos_delay_ms",
    "der",
    "false_starts",
    "detected_turns",
    "responses",
    "cutoff_turns",
    "false_cutoffs",
    "holds_cut",
    "ended_turns",
    "missed_turns",
]


def config(
    mode: str, grid: dict, prompts: list[str], latency: str = "instant", session: dict | None = None
) -> dict:
    return {
        "target": {"speed": "max", "latency": latency},
        "prompts": {"include": prompts},
        "session": session or {},
        "grid": grid,
        "run": {"mode": mode, "baseline": False, "concurrency": 4, "timeout_s": 60},
    }


async def both_modes(
    tmp_path, grid: dict, prompts: list[str], latency: str = "instant", session: dict | None = None
) -> dict[str, pd.DataFrame]:
    tables = {}
    for mode in ("sessions", "vad"):
        result = await run_sweep_async(
            config(mode, grid, prompts, latency, session),
            tmp_path / mode,
            progress=False,
            session_options=OPTS,
        )
        assert {c.status for c in result.cells} == {"ok"}, [c.error for c in result.cells]
        tables[mode] = load_sweep(tmp_path / mode, "vad")
        tables[mode + "_scores"] = load_sweep(tmp_path / mode, "scores")
    return tables


def detections(vad: pd.DataFrame) -> pd.DataFrame:
    return vad.sort_values(["setting", "prompt", "audio_end_ms"]).reset_index(drop=True)[
        ["setting", "prompt", *DETECTION]
    ]


def scores(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["setting", "prompt"]).reset_index(drop=True)[["setting", "prompt", *VAD_SCORES]]


async def test_vad_mode_decides_every_bundled_prompt_as_the_session_sweep_does(tmp_path):
    prompts = [p.id for p in load_prompt_set()]
    grid = {"threshold": [0.3, 0.6], "prefix_padding_ms": [100], "silence_duration_ms": [200, 900]}
    tables = await both_modes(tmp_path, grid, prompts)
    assert len(tables["vad"]) > len(prompts) * 4  # every setting found turns
    pd.testing.assert_frame_equal(detections(tables["vad"]), detections(tables["sessions"]))
    pd.testing.assert_frame_equal(scores(tables["vad_scores"]), scores(tables["sessions_scores"]))
    manifest = json.loads((tmp_path / "vad" / "manifest.json").read_text())
    assert manifest["mode"] == "vad" and manifest["target_kind"] == ["vlab-vad"]
    assert load_sweep(tmp_path / "vad", "turns").empty  # nothing answered: no turn latency


async def test_with_modelled_latency_a_reply_the_next_speech_pre_empts_counts_in_both_modes(tmp_path):
    # With the emulator's response start-up (commit + network, ~100 ms in "typical"), speech that resumes
    # within it is logged before the ended turn's response.created (at the same simulated ms, then the
    # response is cancelled). The session's detections give that turn its response all the same, as its
    # turns table counts the cut-off and a VAD-only sweep counts it: the order of two events at one
    # simulated ms decides nothing.
    grid = {"threshold": [0.3], "prefix_padding_ms": [100], "silence_duration_ms": [200]}
    prompts = ["filler_inner", "pause_300", "two_turns"]
    tables = await both_modes(tmp_path, grid, prompts, latency="typical")
    pd.testing.assert_frame_equal(detections(tables["vad"]), detections(tables["sessions"]))
    pd.testing.assert_frame_equal(scores(tables["vad_scores"]), scores(tables["sessions_scores"]))
    pre_empted = 0
    for cell in (tmp_path / "sessions" / "cells").iterdir():
        kinds = [k for k in load_log(cell)["type"] if k in (SPEECH_STARTED, SPEECH_STOPPED, RESPONSE_CREATED)]
        pre_empted += sum(
            kinds[i : i + 3] == [SPEECH_STOPPED, SPEECH_STARTED, RESPONSE_CREATED] for i in range(len(kinds))
        )
    assert pre_empted > 0  # filler_inner resumes at once at this setting: the case is here
    turns = load_sweep(tmp_path / "sessions", "turns")
    assert turns["false_cutoff"].sum() == tables["sessions_scores"]["false_cutoffs"].sum() > 0


@pytest.mark.parametrize(
    "session",
    [
        {"input_audio_format": "g711_ulaw"},
        {"input_audio_format": "g711_alaw"},
        {"input_audio_sampling_rate": 16000},
    ],
)
async def test_vad_mode_hears_the_input_format_the_sessions_send(tmp_path, session):
    grid = {"threshold": [0.3, 0.5, 0.7], "prefix_padding_ms": [100], "silence_duration_ms": [200]}
    prompts = ["short_question", "long_sentence", "pause_900"]
    tables = await both_modes(tmp_path, grid, prompts, session=session)
    pd.testing.assert_frame_equal(detections(tables["vad"]), detections(tables["sessions"]))
    pd.testing.assert_frame_equal(scores(tables["vad_scores"]), scores(tables["sessions_scores"]))
    if "input_audio_format" in session:  # G.711 quantises the 8 kHz audio: these prompts' decisions move
        pcm16 = config("vad", grid, prompts, session={"input_audio_sampling_rate": 8000})
        as_pcm16 = await run_sweep_async(pcm16, tmp_path / "pcm16", progress=False)
        assert not detections(as_pcm16.vad()).equals(detections(tables["vad"]))


@pytest.mark.parametrize(
    ("input_audio_format", "session"),
    [
        ("pcm16", {"input_audio_sampling_rate": 16000}),
        ("g711_ulaw", {"input_audio_format": "g711_ulaw"}),
        ("g711_alaw", {"input_audio_format": "g711_alaw"}),
    ],
)
async def test_vad_preview_decides_as_a_vad_sweep_that_sends_the_same_audio(
    tmp_path, input_audio_format, session
):
    from vlab.metrics import vad_preview

    ids = ["short_question", "long_sentence", "pause_900"]
    grid = {"threshold": [0.3, 0.5, 0.7], "prefix_padding_ms": [100], "silence_duration_ms": [200]}
    sweep = await run_sweep_async(config("vad", grid, ids, session=session), tmp_path, progress=False)
    settings = [
        {"threshold": t, "prefix_padding_ms": 100, "silence_duration_ms": 200} for t in grid["threshold"]
    ]
    prompts = [p for p in load_prompt_set() if p.id in ids]
    preview = vad_preview(prompts, settings, input_audio_format=input_audio_format)

    def boundaries(vad: pd.DataFrame) -> pd.DataFrame:
        columns = ["threshold", "prompt", *DETECTION[:-1]]
        # the prompt ids as strings alike: pandas 2 reads the sweep's Parquet as a string dtype, not object
        ids = vad["prompt"].astype(str)
        return vad.assign(prompt=ids).sort_values(columns[:3]).reset_index(drop=True)[columns]

    assert len(preview) >= len(ids) * len(settings)
    pd.testing.assert_frame_equal(boundaries(preview), boundaries(sweep.vad()))
    if input_audio_format != "pcm16":  # G.711 at 8 kHz: not what PCM16 at 16 kHz decides
        wideband = vad_preview(prompts, settings)
        assert not boundaries(wideband).equals(boundaries(preview))


def test_vad_preview_names_the_formats_it_takes():
    from vlab.metrics import vad_preview

    with pytest.raises(
        ConfigError, match="'g711' is not a Voice Live input format; use one of 'pcm16', 'g711_ulaw'"
    ):
        vad_preview(load_prompt_set()[:1], [{}], input_audio_format="g711")


@needs_noise_suppression
async def test_vad_mode_applies_noise_suppression_as_the_emulator_does(tmp_path):
    grid = {"threshold": [0.05], "noise_reduction": ["off", "azure_deep_noise_suppression"]}
    tables = await both_modes(tmp_path, grid, ["noise_only", "noisy_snr10"])
    pd.testing.assert_frame_equal(detections(tables["vad"]), detections(tables["sessions"]))
    by_setting = {s: sorted(g["onset_ms"].dropna()) for s, g in tables["vad"].groupby("setting")}
    assert len(set(map(tuple, by_setting.values()))) == 2  # suppression changed what the VAD heard


async def test_a_second_vad_sweep_reads_the_probabilities_from_the_cache(tmp_path):
    cfg = config("vad", {"silence_duration_ms": [300, 600]}, ["pause_600", "two_turns"])
    first = await run_sweep_async(cfg, tmp_path / "a", progress=False)
    cache = tmp_path / "a" / "vad_cache" / "silero_v5.bin"
    size = cache.stat().st_size
    assert size > 0
    (tmp_path / "a" / "manifest.json").unlink()
    again = await run_sweep_async(cfg, tmp_path / "a", progress=False)
    assert cache.stat().st_size == size  # every frame was known: nothing new to save
    pd.testing.assert_frame_equal(first.vad(), again.vad())


async def test_a_vad_sweep_stopped_partway_keeps_the_probabilities_it_has_computed(tmp_path, monkeypatch):
    # they were saved once, after every cell: a VAD-only sweep killed partway kept nothing to go on from
    import vlab.sweep.vad

    class Stopped(Exception):
        pass

    batches = []
    compute = vlab.sweep.vad._probabilities

    def one_batch_then_stop(batch, *args):
        if batches:  # as a kill would, once the first batch of prompts is decided
            raise Stopped
        batches.append([p.id for p in batch])
        return compute(batch, *args)

    monkeypatch.setattr(vlab.sweep.vad, "PROMPTS_PER_BATCH", 1)
    monkeypatch.setattr(vlab.sweep.vad, "_probabilities", one_batch_then_stop)
    cfg = config("vad", {"silence_duration_ms": [300, 600]}, ["pause_600", "two_turns"])
    with pytest.raises(Stopped):
        await run_sweep_async(cfg, tmp_path / "a", progress=False)
    assert batches == [["pause_600"]]
    assert (tmp_path / "a" / "vad_cache" / "silero_v5.bin").stat().st_size > 0


@pytest.mark.parametrize(
    ("grid", "run", "message"),
    [
        (
            {"type": "azure_semantic_vad", "threshold": [0.5]},
            {},
            "end-of-utterance detection reads the words",
        ),
        ({"threshold": [0.5], "echo_cancellation": [True]}, {}, "echo cancellation's reference"),
        ({"threshold": [0.5]}, {"repeats": 2}, "drop repeats and executor"),
        ({"threshold": [0.5]}, {"executor": "dask"}, "drop repeats and executor"),
        ({"threshold": [0.5]}, {"mode": "offline"}, "mode must be 'sessions' or 'vad'"),
    ],
)
def test_settings_a_vad_sweep_cannot_decide_fail_before_anything_runs(grid, run, message):
    cfg = config("vad", grid, ["pause_600"])
    cfg["run"].update(run)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


async def test_a_folder_keeps_one_mode(tmp_path):
    await run_sweep_async(config("vad", {"threshold": [0.5]}, ["pause_600"]), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="holds a sweep of mode 'vad'"):
        await run_sweep_async(
            config("sessions", {"threshold": [0.5]}, ["pause_600"]), tmp_path, progress=False
        )


def test_vlab_sweep_mode_vad_writes_the_tables_and_a_report_without_latency_charts(tmp_path, capsys):
    from vlab.cli import main

    out = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                "examples/vad_sweep.toml",
                "--out",
                str(out),
                "--mode",
                "vad",
                "--no-progress",
                "--report",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "(VAD only, no sessions)" in printed and "0 failed" in printed
    assert not (out / "cells").exists()  # the cells' record is the manifest
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["ok"] == len(manifest["cells"]) == 50
    charts = sorted(p.stem for p in (out / "report").glob("*.png"))
    assert "pareto" in charts and any(c.startswith("vad_timeline_") for c in charts)
    assert "waterfall" not in charts and "latency_distributions" not in charts
    assert "A VAD-only sweep" in (out / "report.html").read_text()


async def test_prompts_whose_labels_a_sweep_cannot_trust_or_use_are_warned_of(tmp_path):
    import shutil

    from vlab.errors import VlabWarning
    from vlab.prompts import MANIFEST_NAME, bundled_dir

    bundled = json.loads((bundled_dir("prompts") / MANIFEST_NAME).read_text(encoding="utf-8"))
    chosen = {p["id"]: p for p in bundled["prompts"] if p["id"] in ("pause_600", "short_question")}
    for entry in chosen.values():
        shutil.copy(bundled_dir("prompts") / entry["file"], tmp_path)
    chosen["pause_600"]["label_source"] = "auto"  # proposed by vlab prompts label, not reviewed
    chosen["short_question"].update(speech_segments=[], hold_spans=[], end_of_turn_ms=[])  # nothing labelled
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({**bundled, "prompts": list(chosen.values())}))
    cfg = {**config("vad", {"threshold": [0.5]}, []), "prompts": {"path": str(tmp_path)}}
    with pytest.warns(VlabWarning) as caught:
        result = await run_sweep_async(cfg, tmp_path / "sweep", progress=False)
    assert [str(w.message).split(":")[0] for w in caught] == [
        "1 of 2 prompts have automatic labels nobody reviewed (pause_600)",
        "1 of 2 prompts hold no labelled speech (short_question)",
    ]
    assert len(result.cells) == 2  # and it ran them: a warning, not a refusal
