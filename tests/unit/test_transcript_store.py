"""The transcript store: PocketSphinx's transcripts on disk, shared by the processes of a user."""

from __future__ import annotations

import logging
from pathlib import Path

from vlab.emulator import transcript_store
from vlab.emulator.transcript_store import CACHE_DIR_ENV, STORE_FILE, TranscriptStore, store_folder

ANSWER = b'{"words": [["seattle", 120.0, 400.0]], "audio_ms": 900.0, "decode_s": 0.2}'


def test_what_one_process_stores_the_next_reads(tmp_path: Path) -> None:
    first, second = TranscriptStore(tmp_path), TranscriptStore(tmp_path)  # as two processes
    assert second.get("a") is None
    first.put("a", ANSWER)
    assert second.get("a") == ANSWER  # read from the file, appended after second's first look
    second.put("b", ANSWER.replace(b"seattle", b"tokyo"))
    assert b"tokyo" in (first.get("b") or b"")
    assert TranscriptStore(tmp_path).get("a") == ANSWER  # and a third, later, reads both
    assert (tmp_path / STORE_FILE).read_bytes().count(b"\n") == 2


def test_a_line_still_being_written_is_read_once_it_is_whole(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    path.write_bytes(b"a " + ANSWER + b"\nb " + ANSWER[:20])  # b's writer has not finished
    store = TranscriptStore(tmp_path)
    assert store.get("a") == ANSWER and store.get("b") is None
    with path.open("ab") as f:
        f.write(ANSWER[20:] + b"\n")
    assert store.get("b") == ANSWER


def test_a_line_that_is_not_an_answer_is_skipped(tmp_path: Path) -> None:
    (tmp_path / STORE_FILE).write_bytes(b"garbage\nx {cut\na " + ANSWER + b"\n")
    store = TranscriptStore(tmp_path)
    assert store.get("a") == ANSWER and store.get("x") is None and store.get("garbage") is None


def test_a_file_past_its_size_is_started_over(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(transcript_store, "MAX_STORE_BYTES", 100)
    for key in "abc":
        TranscriptStore(tmp_path).put(key, ANSWER)
    store = TranscriptStore(tmp_path)
    assert store.get("a") is None  # started over: the old lines moved aside
    assert (tmp_path / (STORE_FILE + ".old")).exists() and not (tmp_path / STORE_FILE).exists()
    TranscriptStore(tmp_path).put("d", ANSWER)  # another process starts the new file
    assert store.get("d") == ANSWER  # read from its first byte


def test_a_file_exactly_at_its_size_is_kept(tmp_path: Path, monkeypatch) -> None:
    line = len(b"a " + ANSWER + b"\n")
    monkeypatch.setattr(transcript_store, "MAX_STORE_BYTES", 2 * line)
    for key in "ab":
        TranscriptStore(tmp_path).put(key, ANSWER)
    assert TranscriptStore(tmp_path).get("a") == ANSWER  # at the size: kept
    TranscriptStore(tmp_path).put("c", ANSWER)
    assert TranscriptStore(tmp_path).get("a") is None  # past it: started over


def test_a_file_another_process_started_over_is_read_from_its_start(tmp_path: Path) -> None:
    store = TranscriptStore(tmp_path)
    TranscriptStore(tmp_path).put("a", ANSWER)
    assert store.get("a") == ANSWER
    (tmp_path / STORE_FILE).write_bytes(b"d {}\n")  # shorter than what store has read of the old one
    assert store.get("d") == b"{}"


def test_the_store_makes_its_folder_and_the_folders_above(tmp_path: Path) -> None:
    TranscriptStore(tmp_path / "cache" / "vlab").put("a", ANSWER)
    assert TranscriptStore(tmp_path / "cache" / "vlab").get("a") == ANSWER


def test_a_folder_that_cannot_be_written_turns_the_store_off_with_one_warning(tmp_path, caplog) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    store = TranscriptStore(blocked / "vlab")
    with caplog.at_level(logging.WARNING, logger="vlab.emulator"):
        store.put("a", ANSWER)
        store.put("b", ANSWER)
        assert store.get("c") is None
    assert store.get("a") == ANSWER  # still remembered in this process
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "cannot use its transcript cache" in warnings[0] and CACHE_DIR_ENV in warnings[0]


def test_the_folder_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    assert store_folder() == tmp_path
    for off in ("off", "OFF", "0", "false", "no"):
        monkeypatch.setenv(CACHE_DIR_ENV, off)
        assert store_folder() is None
    monkeypatch.delenv(CACHE_DIR_ENV)
    folder = store_folder()
    assert folder is not None and folder.name == "vlab" and folder.is_absolute()


def test_the_suite_never_uses_the_users_cache_folder() -> None:
    folder = store_folder()
    assert folder is not None and folder.name.startswith("vlab-test-cache-")
