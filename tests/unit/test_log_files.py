"""A run folder's files: written whole or not at all."""

from __future__ import annotations

import os

import pytest

from vlab.log.files import write_atomic


def test_a_file_written_atomically_keeps_its_old_content_when_the_write_fails(tmp_path, monkeypatch):
    # session.json and labels.json were rewritten in place: a kill during the rewrite left them empty
    path = tmp_path / "session.json"
    write_atomic(path, '{"run": 1}\n')
    assert path.read_bytes() == b'{"run": 1}\n'

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # as if the process stopped between the write and the swap

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, '{"run": 2, "summary": {}}\n')
    assert path.read_text() == '{"run": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["session.json"]  # no temporary file left behind


def test_two_writers_never_share_a_temporary_file(tmp_path, monkeypatch):
    seen: list[str] = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: seen.append(str(src)) or real(src, dst))
    for text in ("a\n", "b\r\n"):
        write_atomic(tmp_path / "labels.json", text)
    assert len(set(seen)) == 2 and all(os.path.dirname(s) == str(tmp_path) for s in seen)
    assert (tmp_path / "labels.json").read_bytes() == b"b\r\n"


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="file modes are POSIX")
def test_a_file_written_atomically_gets_the_mode_an_ordinary_file_would(tmp_path):
    # mkstemp's 0600 stayed: a colleague's vlab runs could no longer read a shared run's session.json
    write_atomic(tmp_path / "session.json", "{}\n")
    (tmp_path / "plain.json").write_text("{}\n")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes["session.json"] == modes["plain.json"]
