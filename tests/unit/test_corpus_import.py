"""``vlab prompts import``: each label format into a prompt set, the hold-gap rule, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlab.cli import main
from vlab.corpus import LabelError, derive_turns, import_folder, read_labels
from vlab.errors import AudioFormatError, ConfigError
from vlab.prompts import load_prompt_set

RATE = 16000


def _wav(path: Path, seconds: float = 4.0) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)
    return path


TEXTGRID_LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 4
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "alice"
        xmin = 0
        xmax = 4
        intervals: size = 4
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = ""
        intervals [2]:
            xmin = 0.5
            xmax = 1.5
            text = "book a ""table"""
        intervals [3]:
            xmin = 1.5
            xmax = 2.1
            text = "sil"
        intervals [4]:
            xmin = 2.1
            xmax = 3
            text = "for two"
    item [2]:
        class = "TextTier"
        name = "turns"
        xmin = 0
        xmax = 4
        points: size = 1
        points [1]:
            number = 3
            mark = "eot"
'''

TEXTGRID_SHORT = """File type = "ooTextFile"
Object class = "TextGrid"

0
4
<exists>
1
"IntervalTier"
"words"
0
4
3
0
1
"hello"
1
1.4
""
1.4
2
"there"
"""


def test_textgrid_long_format_gives_speech_and_the_labelled_end_of_turn(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")
    (tmp_path / "a.TextGrid").write_text(TEXTGRID_LONG)
    [p] = load_prompt_set(import_folder(tmp_path))
    assert p.speech_segments == ((500.0, 1500.0), (2100.0, 3000.0))
    assert p.end_of_turn_ms == (3000.0,)
    assert p.hold_spans == ()  # the labels mark turns, so the rule is not applied
    assert p.text == 'book a "table" for two'
    assert p.label_source == "imported" and p.duration_ms == 4000.0 and p.sample_rate == RATE


def test_textgrid_short_format_and_utf16(tmp_path: Path) -> None:
    _wav(tmp_path / "b.wav")
    (tmp_path / "b.TextGrid").write_bytes(TEXTGRID_SHORT.encode("utf-16"))
    [p] = load_prompt_set(import_folder(tmp_path))
    assert p.speech_segments == ((0.0, 1000.0), (1400.0, 2000.0))
    assert p.hold_spans == ((1000.0, 1400.0),)  # 400 ms < the default 1000 ms gap: a hold
    assert p.end_of_turn_ms == (2000.0,)


def test_rttm_speakers_split_turns(tmp_path: Path) -> None:
    (tmp_path / "calls").mkdir()
    _wav(tmp_path / "calls" / "c1.wav")
    (tmp_path / "all.rttm").write_text(
        ";; a comment\n"
        "SPEAKER c1 1 0.20 0.80 <NA> <NA> A <NA> <NA>\n"
        "SPEAKER c1 1 1.30 0.50 <NA> <NA> A <NA> <NA>\n"
        "SPEAKER c1 1 2.00 1.00 <NA> <NA> B <NA> <NA>\n"
    )
    [p] = load_prompt_set(import_folder(tmp_path, hold_gap_ms=600))
    assert p.id == "calls_c1"
    assert p.speech_segments == ((200.0, 1000.0), (1300.0, 1800.0), (2000.0, 3000.0))
    assert p.hold_spans == ((1000.0, 1300.0),)  # same speaker, 300 ms gap
    assert p.end_of_turn_ms == (1800.0, 3000.0)  # the other speaker starts a turn


def test_audacity_labels_with_explicit_hold(tmp_path: Path) -> None:
    _wav(tmp_path / "d.wav")
    (tmp_path / "d.txt").write_text(
        "0.5\t1.0\n\\\t100\t2000\n1.0\t2.5\thold\n2.5\t3.0\tyes\n3.0\t3.0\teot\n"  # no text: speech
    )
    [p] = load_prompt_set(import_folder(tmp_path))
    assert p.speech_segments == ((500.0, 1000.0), (2500.0, 3000.0))
    assert p.hold_spans == ((1000.0, 2500.0),)
    assert p.end_of_turn_ms == (3000.0,)


def test_csv_for_many_files_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _wav(tmp_path / "x.wav")
    _wav(tmp_path / "y.wav", 2.0)
    (tmp_path / "labels.csv").write_text(
        "file,start,end,kind,speaker\nx.wav,0.1,0.9,speech,\nx,2.0,2.5,speech,\ny,0.2,1.0,speech,\n"
    )
    assert (
        main([
            "prompts", "import", str(tmp_path), "--hold-gap-ms", "2000", "--out", str(tmp_path / "set"),
            "--category", "calls",
        ])
        == 0
    )  # fmt: skip
    assert "2 recordings, 2 turns, 1 hold → " in capsys.readouterr().out
    x, y = load_prompt_set(tmp_path / "set")
    assert x.hold_spans == ((900.0, 2000.0),) and y.end_of_turn_ms == (1000.0,)
    assert x.file == (tmp_path / "x.wav").resolve()  # the manifest points back at the audio
    assert x.category == y.category == "calls"


def test_derive_turns_merges_overlaps_and_states_the_rule() -> None:
    turns = derive_turns([(0, 100, "a"), (50, 200, "a"), (250, 300, "a"), (1000, 1100, "a")], hold_gap_ms=100)
    assert turns.speech_segments == ((0, 200), (250, 300), (1000, 1100))
    assert turns.hold_spans == ((200, 250),)
    assert turns.end_of_turn_ms == (300, 1100)


@pytest.mark.parametrize(
    ("name", "content", "line", "words"),
    [
        ("a.csv", "file,start,end\na,0,1\n", 1, "lacks kind"),
        ("a.csv", "file,start,end,kind\na,0,1,speech\na,0.5,x,speech\n", 3, "end 'x' is not a number"),
        ("a.csv", "file,start_ms,end_ms,kind\na,x,9,speech\n", 2, "start_ms 'x' is not a number"),
        ("a.csv", "file,start,end,kind\na,0,1,laugh\n", 2, "unknown kind 'laugh'"),
        ("a.csv", "file,start,end,kind\na,2,1,speech\n", 2, "ends (1 s) before it starts (2 s)"),
        ("a.csv", "file,start,end,kind\nnope,0,1,speech\n", 2, "no audio file 'nope'"),
        ("a.csv", "file,start,end,kind\na,3,9,speech\n", 2, "past the end of a.wav"),
        ("a.rttm", "SPEAKER a 1 0.5\n", 1, "has 4 fields"),
        ("a.rttm", "SPEAKER a 1 0.5 -1 <NA> <NA> A <NA> <NA>\n", 1, "not > 0"),
        ("a.txt", "0.5\tabc\tx\n", 1, "'abc' is not a number"),
        ("a.TextGrid", "hello\n", 1, "not a Praat TextGrid"),
        ("a.TextGrid", 'File type = "binary"\nObject class = "TextGrid"\n', 1, "not a Praat TextGrid"),
        (
            "a.TextGrid",
            TEXTGRID_LONG[: TEXTGRID_LONG.index("intervals [3]")],
            23,
            "ends early (expected an interval's xmin)",
        ),
        ("a.TextGrid", TEXTGRID_SHORT.replace('"hello"', "12"), 15, "expected an interval's text"),
    ],
)
def test_bad_labels_name_file_and_line_and_leave_the_old_manifest(
    tmp_path: Path, name: str, content: str, line: int, words: str
) -> None:
    _wav(tmp_path / "a.wav")
    old = tmp_path / "manifest.json"
    previous = '{"generator": "vlab prompts import (hold gap 1000 ms)", "prompts": []}'  # replaceable
    old.write_text(previous)
    (tmp_path / name).write_text(content)
    with pytest.raises(LabelError) as err:
        import_folder(tmp_path)
    assert f"{tmp_path / name}:{line}" in str(err.value) and words in str(err.value)
    assert old.read_text() == previous  # nothing half-written
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".manifest")] == []


@pytest.mark.parametrize(
    ("name", "content", "ms_hint"),
    [
        ("a.csv", "file,start,end,kind\na,300,900,speech\n", True),  # ms under a header in seconds
        ("a.csv", "file,start,end,kind\na,3,90000,speech\n", False),  # too long in ms too
        ("a.rttm", "SPEAKER a 1 300 600 <NA> <NA> A <NA> <NA>\n", False),  # RTTM has no ms columns
    ],
)
def test_a_label_past_the_end_asks_whether_a_csv_s_times_are_in_ms(
    tmp_path: Path, name: str, content: str, ms_hint: bool
) -> None:
    _wav(tmp_path / "a.wav")
    (tmp_path / name).write_text(content)
    with pytest.raises(LabelError) as err:
        import_folder(tmp_path)
    text = str(err.value)
    assert "past the end of a.wav" in text and text.endswith("is it labelling another file?")
    assert ("are its times in ms? Then name the CSV's columns `file,start_ms,end_ms,kind`" in text) is ms_hint


def test_an_empty_label_file_imports_a_recording_of_noise_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _wav(tmp_path / "speech.wav")
    (tmp_path / "speech.txt").write_text("0.5\t1.5\thello\n")
    _wav(tmp_path / "street.wav", 2.0)
    (tmp_path / "street.txt").write_text("")  # was refused: "no labels for 1 audio file(s): street.wav"
    assert main(["prompts", "import", str(tmp_path), "--category", "calls"]) == 0
    assert "2 recordings, 1 turn, 0 holds (1 of noise alone) → " in capsys.readouterr().out
    speech, street = load_prompt_set(tmp_path)
    assert speech.category == "calls" and speech.expected_turns == 1
    assert street.category == "noise_only" and street.speech_segments == () and street.end_of_turn_ms == ()
    assert street.label_source == "imported" and street.file == (tmp_path / "street.wav").resolve()


def test_unlabelled_and_broken_audio_are_refused(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")
    with pytest.raises(ConfigError, match=r"no labels for 1 audio file\(s\): a.wav.*vlab prompts label"):
        import_folder(tmp_path)
    (tmp_path / "a.csv").write_text("file,start,end,kind\na,0,1,speech\n")
    (tmp_path / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (tmp_path / "b.csv").write_text("file,start,end,kind\nb,0,1,speech\n")
    with pytest.raises(AudioFormatError, match="b.wav"):
        import_folder(tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def test_read_labels_keeps_the_source_line(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("file,start_ms,end_ms,kind,text\nf,10,20,speech,hi\nf,20,20,end,\n")
    speech, eot = read_labels(path)
    assert (speech.start_ms, speech.end_ms, speech.text, speech.source) == (10, 20, "hi", f"{path}:2")
    assert eot.kind == "eot" and eot.source == f"{path}:3"
    assert json.loads(json.dumps(speech.kind)) == "speech"


def test_every_silence_and_end_of_turn_mark_is_read_as_such_and_documented() -> None:
    from vlab.corpus import labels

    guide = (Path(__file__).parents[2] / "docs" / "own-recordings.md").read_text(encoding="utf-8")
    for marks, kind in ((labels.SILENCE_MARKS, None), (labels.END_OF_TURN_MARKS, "eot")):
        for mark in marks:
            assert labels.kind_of(f" {mark.upper()} ", empty="speech") == kind, mark
            assert f"`{mark}`" in guide and f"``{mark}``" in (labels.__doc__ or ""), mark
    assert labels.kind_of("hold", empty=None) == "hold" and labels.kind_of("", empty=None) is None
    assert labels.kind_of("hello there", empty=None) == "speech"


def test_labelled_holds_without_an_end_of_turn_end_the_turn_with_the_last_speech(tmp_path: Path) -> None:
    _wav(tmp_path / "h.wav")
    (tmp_path / "h.txt").write_text("0.5\t1.0\tbook a\n1.0\t1.8\thold\n1.8\t2.6\ttable\n")
    [p] = load_prompt_set(import_folder(tmp_path, hold_gap_ms=100))  # the labels' hold, not the rule
    assert p.hold_spans == ((1000.0, 1800.0),) and p.end_of_turn_ms == (2600.0,)


def test_a_label_a_little_past_the_end_of_its_file_is_cut_at_the_end(tmp_path: Path) -> None:
    _wav(tmp_path / "e.wav", seconds=2.0)
    (tmp_path / "e.txt").write_text("0.5\t2.015\tplease\n")  # 15 ms past: a label tool's rounding
    [p] = load_prompt_set(import_folder(tmp_path))
    assert p.speech_segments == ((500.0, 2000.0),) and p.end_of_turn_ms == (2000.0,)


@pytest.mark.parametrize("gap", [0.0, -5.0, float("nan")])
def test_a_hold_gap_that_is_not_positive_is_refused(tmp_path: Path, gap: float) -> None:
    _wav(tmp_path / "a.wav")
    with pytest.raises(ConfigError, match=f"hold_gap_ms must be > 0, got {gap}"):
        import_folder(tmp_path, hold_gap_ms=gap)


def test_an_unknown_file_is_named_with_its_line_in_a_folder_with_a_colon(tmp_path: Path) -> None:
    folder = tmp_path / "take:1"
    folder.mkdir()
    _wav(folder / "a.wav")
    (folder / "labels.csv").write_text("file,start,end,kind\na,0,1,speech\nb,0,1,speech\n")
    with pytest.raises(LabelError, match=r"take:1/labels.csv:3: no audio file 'b'"):
        import_folder(folder)


def test_the_guide_states_the_import_s_default_hold_gap_and_end_tolerance() -> None:
    from vlab.corpus import importer

    guide = (Path(__file__).parents[2] / "docs" / "own-recordings.md").read_text(encoding="utf-8")
    assert f"(`--hold-gap-ms`, default {importer.DEFAULT_HOLD_GAP_MS:g})" in guide
    assert f"a label more than {importer.END_TOLERANCE_MS:g} ms past the end of its audio" in guide


def _labelled_calls(folder: Path) -> None:
    """Two recordings and a CSV of their labels (as a user adds them beside ``vlab prompts label``'s)."""
    _wav(folder / "a.wav")
    _wav(folder / "b.wav", 2.0)
    (folder / "labels.csv").write_text("file,start,end,kind\na,0.5,1.5,speech\nb,0.2,1.0,speech\n")


def _generator(folder: Path) -> str:
    return str(json.loads((folder / "manifest.json").read_text())["generator"])


def test_import_keeps_a_manifest_it_did_not_write_and_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vlab.corpus.label_set import LabelSet

    _labelled_calls(tmp_path)
    manifest = tmp_path / "manifest.json"
    labelled = {
        "generator": "vlab prompts label",
        "prompts": [{"id": "a", "label_source": "auto"}, {"id": "b", "label_source": "auto"}],
    }
    manifest.write_text(json.dumps(labelled))
    rest = "pass --overwrite to replace it, or --out to write elsewhere"
    said = f"{str(manifest)!r} exists (written by `vlab prompts label`; its labels may be reviewed); {rest}"
    with pytest.raises(ConfigError) as err:
        import_folder(tmp_path)
    assert str(err.value) == said
    assert main(["prompts", "import", str(tmp_path)]) == 2  # the CLI says so too, and keeps it
    assert capsys.readouterr().err.strip() == f"vlab: error: {said}"
    assert json.loads(manifest.read_text()) == labelled
    for content, what in [
        ('{"prompts": []}', "written by hand or another tool: it names no generator"),
        ("{not json", "not a prompt manifest vlab can read"),
        ('{"generator": "vlab prompts label", "prompts": 3}', "not a prompt manifest vlab can read"),
    ]:
        manifest.write_text(content)
        with pytest.raises(ConfigError) as err:
            import_folder(tmp_path)
        assert str(err.value) == f"{str(manifest)!r} exists ({what}); {rest}"
        assert manifest.read_text() == content
    # an import whose labels were reviewed in the label editor since is kept too
    manifest.unlink()
    import_folder(tmp_path)
    edited = LabelSet(tmp_path)
    edited.approve("b")
    edited.save()
    with pytest.raises(ConfigError) as err:
        import_folder(tmp_path)
    reviewed = "written by `vlab prompts import`; 1 prompt(s) reviewed in the label editor since: b"
    assert str(err.value) == f"{str(manifest)!r} exists ({reviewed}); {rest}"
    assert [p.label_source for p in load_prompt_set(tmp_path)] == ["imported", "edited"]


def test_import_keeps_the_manifest_before_reading_any_audio(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # would fail to read
    (tmp_path / "a.csv").write_text("file,start,end,kind\na,0,1,speech\n")
    (tmp_path / "manifest.json").write_text('{"generator": "vlab prompts label", "prompts": []}')
    with pytest.raises(ConfigError, match=r"exists \(written by `vlab prompts label`"):
        import_folder(tmp_path)


def test_import_overwrite_replaces_a_manifest_vlab_prompts_label_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _labelled_calls(tmp_path)
    (tmp_path / "manifest.json").write_text('{"generator": "vlab prompts label", "prompts": []}')
    assert main(["prompts", "import", str(tmp_path), "--overwrite"]) == 0
    assert "2 recordings, 2 turns, 0 holds → " in capsys.readouterr().out
    assert _generator(tmp_path) == "vlab prompts import (hold gap 1000 ms)"
    (tmp_path / "manifest.json").write_text("{not json")
    a, b = load_prompt_set(import_folder(tmp_path, overwrite=True))
    assert a.label_source == b.label_source == "imported" and a.speech_segments == ((500.0, 1500.0),)


def test_import_replaces_the_manifest_an_earlier_import_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _labelled_calls(tmp_path)
    (tmp_path / "manifest.json").write_text('{"generator": "vlab prompts label", "prompts": []}')
    assert main(["prompts", "import", str(tmp_path), "--hold-gap-ms", "700", "--overwrite"]) == 0
    assert _generator(tmp_path) == "vlab prompts import (hold gap 700 ms)"  # now the import's own
    # the documented workflow: edit the label files, import again; no --overwrite needed
    (tmp_path / "labels.csv").write_text("file,start,end,kind\na,0.5,2.5,speech\nb,0.2,1.0,speech\n")
    assert main(["prompts", "import", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("2 recordings, 2 turns, 0 holds → ") == 2
    assert _generator(tmp_path) == "vlab prompts import (hold gap 1000 ms)"
    (tmp_path / "labels.csv").write_text("file,start,end,kind\na,0.5,3.0,speech\nb,0.2,1.0,speech\n")
    a, _ = load_prompt_set(import_folder(tmp_path, hold_gap_ms=800, overwrite=False))
    assert a.speech_segments == ((500.0, 3000.0),)
    assert _generator(tmp_path) == "vlab prompts import (hold gap 800 ms)"
