"""Broken prompt files and bad sweep configs: a clear vlab error naming the file and the fix (or, for
readable formats, a conversion), never a deep traceback — in the API and through the CLI."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vlab.audio.wav import load_wav
from vlab.cli import main
from vlab.errors import AudioFormatError, ConfigError
from vlab.sweep import load_config

REPO = Path(__file__).parents[2]
TONE = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 0.4).astype(np.float32)
PHONE_TONE = (np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) * 0.4).astype(np.float32)
"""A second of the tone at a phone line's 8 kHz."""


def _encoded(samples, rate, subtype=None, fmt="WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def _huge(path: Path) -> None:
    """A valid 16-bit WAV header announcing 3 hours of 48 kHz audio, as a sparse file (no disk used)."""
    rate, n_bytes = 48000, 48000 * 2 * 3 * 3600
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header = (
        b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", n_bytes)
    )
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + n_bytes)


def _nan(path: Path) -> None:
    bad = TONE.copy()
    bad[100:110] = np.nan
    sf.write(path, bad, 16000, subtype="FLOAT")


# case: (how to make prompt.wav, problem in the message — None: vlab converts it)
CASES = {
    "missing file": (None, "file not found"),
    "empty": (b"", "empty (0 bytes)"),
    "truncated header": (_encoded(TONE, 16000, "PCM_16")[:30], "header is damaged or truncated"),
    "text renamed .wav": (
        b"Dear colleague, this is a text file, not audio.\n" * 20,
        "not a readable audio file",
    ),
    "real MP3 renamed .wav": (_encoded(TONE, 16000, fmt="MP3"), "holds MP3 data"),
    "MP3 ID3 stub renamed .wav": (b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(300), "MP3 data"),
    "zero-length data chunk": (_encoded(np.zeros(0, np.float32), 16000, "PCM_16"), "no audio samples"),
    "huge file (3 h)": (_huge, "180 minutes long"),
    "NaN samples (float)": (_nan, "not numbers (NaN or infinite"),
    "a folder named .wav": ("dir", "is a folder"),
    "8-bit": (_encoded(TONE, 16000, "PCM_U8"), None),
    "32-bit float": (_encoded(TONE, 16000, "FLOAT"), None),
    "stereo": (_encoded(np.repeat(TONE[:, None], 2, axis=1), 16000, "PCM_16"), None),
    "96 kHz": (
        _encoded(
            np.sin(2 * np.pi * 440 * np.arange(96000) / 96000).astype(np.float32) * 0.4, 96000, "PCM_24"
        ),
        None,
    ),
    "RF64 (large-file WAV)": (_encoded(TONE, 16000, "PCM_16", fmt="RF64"), None),
    "µ-law WAV (a phone call's)": (_encoded(PHONE_TONE, 8000, "ULAW"), None),
    "A-law WAV (a phone call's)": (_encoded(PHONE_TONE, 8000, "ALAW"), None),
}


def make(path: Path, how) -> None:
    if how is None:
        return
    if how == "dir":
        path.mkdir()
    elif callable(how):
        how(path)
    else:
        path.write_bytes(how)


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_prompt_is_a_clear_error_or_a_conversion(tmp_path, case):
    how, problem = CASES[case]
    path = tmp_path / "prompt.wav"
    make(path, how)
    if problem is None:
        pcm = load_wav(path, 24000)
        x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
        assert len(x) == pytest.approx(24000, abs=2)  # one second at the session rate
        assert np.sqrt(np.mean(x**2)) == pytest.approx(0.4 / np.sqrt(2), abs=0.02)
        return
    with pytest.raises(AudioFormatError) as info:
        load_wav(path, 24000)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message, message
    assert info.value.fix and info.value.fix in message


def test_an_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "prompt.wav"
    path.write_bytes(_encoded(TONE, 16000, "PCM_16"))
    import builtins

    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)  # tests run as root, where chmod 000 does not stop reads
    with pytest.raises(AudioFormatError, match="cannot be read \\(Permission denied\\).*permissions"):
        load_wav(path, 24000)


def _vlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vlab", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


CLI_CASES = ["missing file", "empty", "truncated header", "text renamed .wav", "real MP3 renamed .wav",
             "zero-length data chunk", "huge file (3 h)", "NaN samples (float)"]  # fmt: skip


def test_vlab_replay_of_broken_prompts_exits_2_with_the_message_and_no_traceback(
    tmp_path, capsys, monkeypatch
):
    """The first case through a ``python -m vlab`` process (the exit code and stderr a shell sees), the
    others through the same ``main`` in this process (a second each less)."""
    monkeypatch.chdir(tmp_path)
    for i, case in enumerate(CLI_CASES):
        how, problem = CASES[case]
        path = tmp_path / f"p{i}.wav"
        make(path, how)
        args = ("replay", str(path), "--speed", "max", "--out", str(tmp_path / f"run{i}"))
        if i == 0:
            result = _vlab(*args, cwd=tmp_path)
            code, out, err = result.returncode, result.stdout, result.stderr
        else:
            code = main(list(args))
            out, err = capsys.readouterr()
        assert code == 2, (case, err)
        assert err.startswith(f"vlab: error: {path}: ") and problem in err, (case, err)
        assert "Traceback" not in err + out
        assert not (tmp_path / f"run{i}").exists()  # refused before connecting


def test_vlab_sweep_with_a_broken_prompt_records_the_cell_and_names_the_file(tmp_path):
    """In a sweep a broken prompt fails its cells (recorded, like any failed cell); the others run, and the
    report charts them."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    source = json.loads((REPO / "data" / "prompts" / "manifest.json").read_text())
    entries = [e for e in source["prompts"] if e["id"] in ("short_question", "quiet_speaker")]
    (folder / entries[0]["file"]).write_bytes((REPO / "data" / "prompts" / entries[0]["file"]).read_bytes())
    (folder / entries[1]["file"]).write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(300))  # an MP3 stub
    (folder / "manifest.json").write_text(json.dumps({**source, "prompts": entries}))
    config = tmp_path / "sweep.toml"
    config.write_text(
        f'[target]\nspeed = "max"\n[prompts]\npath = "{folder.as_posix()}"\n[grid]\nthreshold = [0.5]\n[run]\ntimeout_s = 20\n'
    )
    out = tmp_path / "out"
    result = _vlab("sweep", str(config), "--out", str(out), "--no-progress", "--report", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # 1: a cell failed (2 is for errors before anything runs)
    bad = folder / entries[1]["file"]
    assert f"AudioFormatError: {bad}: holds MP3 data" in result.stderr and "ffmpeg" in result.stderr
    assert "(1 run, 0 skipped, 1 failed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    # the report draws the prompt that ran, and names the one that failed instead of reading its audio
    assert f"report: {out / 'report.html'}" in result.stdout
    assert sorted(p.name for p in (out / "report").glob("vad_timeline_*.png")) == [
        f"vad_timeline_{entries[0]['id']}.png"
    ]
    assert "1 cell(s) failed" in (out / "report.html").read_text(encoding="utf-8")


BAD_CONFIGS = {
    "unknown key": ({"grid": {"thresh": [0.5]}}, "unknown key(s) 'thresh' in [grid]"),
    "unknown section": ({"grid": {"threshold": [0.5]}, "grdi": {}}, "unknown section(s) 'grdi'"),
    "a typo of a key": ({"grid": {"treshold": [0.5]}}, "'treshold' in [grid] (did you mean 'threshold'?)"),
    "a key shortened": ({"grid": {"silence": [300]}}, "(did you mean 'silence_duration_ms'?)"),
    "typos of two sections": (
        {"grid": {"threshold": [0.5]}, "grdi": {}, "rnu": {}},
        "(did you mean 'grid' for 'grdi', 'run' for 'rnu'?)",
    ),
    "a key outside its section": ({"grid": {"threshold": [0.5]}, "repeats": 2}, "repeats belongs in [run]"),
    "the endpoint in the config": (
        {"grid": {"threshold": [0.5]}, "target": {"endpoint": "https://my-res.services.ai.azure.com"}},
        "to the endpoint, key and model in AZURE_VOICELIVE_ENDPOINT, AZURE_VOICELIVE_API_KEY",
    ),
    "threshold out of range": ({"grid": {"threshold": [1.5]}}, "threshold must be a number in [0.0, 1.0]"),
    "threshold not a number": ({"grid": {"threshold": ["high"]}}, "threshold must be a number"),
    "negative silence": ({"grid": {"silence_duration_ms": [-5]}}, "silence_duration_ms must be an integer"),
    "empty grid list": ({"grid": {"threshold": []}}, "empty list"),
    "hear_audio not a bool": (
        {"target": {"hear_audio": "yes"}, "grid": {"threshold": [0.5]}},
        "hear_audio must be true or false",
    ),
    "no grid": ({}, "has no [grid]"),
    "grid with only a type": ({"grid": {"type": "server_vad"}}, "gives no setting to sweep"),
    "unknown VAD type": ({"grid": {"type": "semantic", "threshold": [0.5]}}, "type must be"),
    "zero concurrency": ({"grid": {"threshold": [0.5]}, "run": {"concurrency": 0}}, "concurrency must be"),
    "fractional repeats": ({"grid": {"threshold": [0.5]}, "run": {"repeats": 1.5}}, "repeats must be"),
    "baseline not a bool": (
        {"grid": {"threshold": [0.5]}, "run": {"baseline": "yes"}},
        "baseline must be true",
    ),
    "include not a list": ({"grid": {"threshold": [0.5]}, "prompts": {"include": "pause"}}, "must be a list"),
    "unknown prompt": (
        {"grid": {"threshold": [0.5]}, "prompts": {"include": ["nope"]}},
        "no prompt named 'nope'",
    ),
    "missing prompt folder": (
        {"grid": {"threshold": [0.5]}, "prompts": {"path": "/nonexistent"}},
        "there is no '/nonexistent'; give a prompt folder",
    ),
    "unknown latency": (
        {"grid": {"threshold": [0.5]}, "target": {"latency": "fast"}},
        "latency must be one of",
    ),
    "negative speed": ({"grid": {"threshold": [0.5]}, "target": {"speed": -1}}, "speed must be"),
    "a thousand dask workers here": (
        {"grid": {"threshold": [0.5]}, "run": {"executor": "dask", "workers": 1000}},
        "[run] workers 1000 is more than 4 per core",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_sweep_configs_fail_with_a_clear_error(case):
    config, message = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert message in str(info.value)


@pytest.mark.parametrize("below", ["", "sweep"])
def test_a_sweep_into_a_file_is_refused_before_anything_runs(tmp_path, below, capsys):
    from vlab.sweep import run_sweep

    file = tmp_path / "notes.txt"
    file.write_text("mine")
    out = file / below if below else file
    with pytest.raises(ConfigError) as info:  # was NotADirectoryError: '…/notes.txt/cells', a cell in
        run_sweep({"grid": {"silence_duration_ms": [300]}}, out)
    said = f"'{out}'" + (f": '{file}'" if below else "")
    assert str(info.value) == (
        f"the sweep folder {said} is a file, not a folder; choose another path (missing folders are created)"
    )
    assert file.read_text() == "mine" and "sweep:" not in capsys.readouterr().err  # no cell started


def test_a_sweep_hears_the_words_only_when_its_config_asks():
    grid = {"threshold": [0.5]}
    assert load_config({"grid": grid}).hear_audio is False
    assert load_config({"target": {"hear_audio": True}, "grid": grid}).hear_audio is True


def _toml(value) -> str:
    return json.dumps(value)  # JSON scalars and arrays are valid TOML values


@pytest.mark.parametrize(
    "case",
    [
        "unknown key",
        "the endpoint in the config",
        "threshold out of range",
        "empty grid list",
        "grid with only a type",
        "include not a list",
    ],
)
def test_vlab_sweep_with_a_bad_config_exits_2_before_anything_runs(tmp_path, case):
    config, message = BAD_CONFIGS[case]
    lines = []
    for section, table in config.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = _vlab("sweep", str(path), "--out", str(out), "--no-progress", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()  # nothing ran, nothing was written


@pytest.mark.parametrize(
    "text,message",
    [("[grid\nthreshold = [0.5]", "is not valid TOML"), (None, "not found"),
     ('[prompts]\npath = "PROMPTS"\n[grid]\nthreshold = [0.5]\n', "manifest.json' is malformed: JSONDecodeError")],
    ids=["invalid TOML", "missing config", "malformed prompt manifest"],
)  # fmt: skip
def test_vlab_sweep_with_an_unreadable_config_exits_2(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    if text is not None:
        prompts = tmp_path / "prompts"
        prompts.mkdir()
        (prompts / "manifest.json").write_text('{"prompts": [{"id": 1}')
        path.write_text(text.replace("PROMPTS", prompts.as_posix()))  # TOML: no backslashes
    result = _vlab("sweep", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_cluster_elsewhere_may_have_any_number_of_workers():
    run = {"executor": "dask", "workers": 1000, "cluster": "tcp://scheduler:8786"}  # none start here
    assert load_config({"grid": {"threshold": [0.5]}, "run": run}).workers == 1000


@pytest.mark.parametrize(
    ("argv", "usage", "unknown"),
    [
        (["sweep", "sweep.toml", "--speed", "max"], "vlab sweep", "--speed max"),
        (["prompts", "label", "rec", "--gap", "3"], "vlab prompts label", "--gap 3"),
        (["prompts", "--gap", "label", "rec"], "vlab prompts", "--gap"),
        (["--quiet", "runs"], "vlab", "--quiet"),
    ],
)
def test_an_argument_a_command_does_not_take_is_named_with_that_command_s_usage(argv, usage, unknown, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"usage: {usage} [-h]"), err
    assert err.rstrip().endswith(f"{usage}: error: unrecognized arguments: {unknown}"), err
