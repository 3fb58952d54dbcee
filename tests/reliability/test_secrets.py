"""A canary key through a session, a sweep, a report, a notebook and the error paths: it must not
appear in any file written, DataFrame, repr, exception, log line or notebook output."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import subprocess
import threading
import traceback
from pathlib import Path

import pandas as pd
import pytest

from vlab import Session
from vlab.emulator import Emulator, Fault
from vlab.errors import VlabError
from vlab.session import Reconnect
from vlab.testing import fast_emulator

CANARY = "CANARY-KEY-3b9f0c2d71e84a56-never-leak"
FORMS = (CANARY, base64.b64encode(CANARY.encode()).decode(), CANARY.encode("utf-16-le").decode("latin-1"))
REPO = Path(__file__).parents[2]


def leaks_in_tree(root: Path) -> list[str]:
    """Files under ``root`` holding the canary: raw bytes (binary-safe) and decoded parquet contents."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if any(form.encode("latin-1") in data for form in FORMS):
            found.append(str(path))
        if path.suffix == ".parquet" and CANARY in pd.read_parquet(path).to_csv():  # compressed columns
            found.append(str(path))
    return found


def exception_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


async def test_the_canary_key_leaks_nowhere(tmp_path, monkeypatch, caplog, prompt):
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    texts: list[str] = []
    async with fast_emulator(api_key=CANARY) as emu:
        monkeypatch.setenv("AZURE_VOICELIVE_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", CANARY)
        texts += [repr(emu), repr(emu.config)]

        # a full session from the environment, with recordings
        async with Session(run_dir=tmp_path / "runs" / "session") as s:
            texts += [
                repr(s),
                str(s),
                repr(s.target),
                s.target.describe(),
                repr(s.connection),
                repr(s.__dict__),
            ]
            await s.stream_audio(prompt.pcm, speed=math.inf)
            await s.wait_for("response.done")
        texts.append(s.frame().to_csv())

        # a latency model fitted from that session, and the session as a cassette
        import warnings

        from vlab.calibrate import calibrate
        from vlab.cassette import load_cassette

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one turn is too few samples, and calibrate says so
            fitted = calibrate([tmp_path / "runs" / "session"], min_samples=1).model
        fitted.save(tmp_path / "runs" / "latency.json")
        cassette = load_cassette(tmp_path / "runs" / "session")
        texts += [json.dumps(fitted.to_dict()), repr(cassette.events), repr(cassette.client_events)]

        # a sweep and its report
        from vlab.report import build_report
        from vlab.sweep import run_sweep_async

        cfg = {
            "prompts": {"include": ["short_question"]},
            "grid": {"threshold": [0.5]},
            "run": {"timeout_s": 20},
        }
        result = await run_sweep_async(cfg, tmp_path / "runs" / "sweep", progress=False)
        assert [c.status for c in result.cells] == ["ok"]
        texts += [repr(result), result.turns().to_csv(), result.vad().to_csv(), result.points().to_csv()]
        report = build_report(result.out)
        assert report.is_file()

        # error paths: wrong key, lost connection (with a reconnect that is refused), stall, bad prompt
        errors: list[BaseException] = []
        try:
            async with Session(api_key=CANARY + "-wrong"):
                pass
        except VlabError as exc:
            errors.append(exc)
        for fault, options in ((Fault("drop", at="response.audio.delta"), {"reconnect": Reconnect(attempts=1, backoff_s=0)}),
                               (Fault("delay", at="response.audio.delta", ms=2000), {"stall_timeout_s": 0.2})):  # fmt: skip
            async with Session(run_dir=tmp_path / "runs" / f"fault-{fault.kind}", **options) as s:
                emu.inject(fault)
                if fault.kind == "drop":
                    emu.config.api_key = CANARY + "-rotated"  # the reconnect is refused with 401
                await s.send_text("hello")
                try:
                    await s.wait_for("response.done", timeout_s=10)
                except VlabError as exc:
                    errors.append(exc)
                emu.config.api_key = CANARY
        from vlab.replay import replay

        (tmp_path / "bad.wav").write_bytes(b"not audio")
        try:
            await replay(tmp_path / "bad.wav", run_dir=tmp_path / "runs" / "bad")
        except VlabError as exc:
            errors.append(exc)
        assert len(errors) == 4, errors
        for exc in errors:
            texts += exception_texts(exc)
    monkeypatch.delenv("AZURE_VOICELIVE_ENDPOINT")
    from vlab.endpoint import resolve_target

    for kwargs in (
        {"api_key": CANARY},
        {"endpoint": CANARY, "api_key": CANARY},
        {"endpoint": f"https://x.y/?k={CANARY}", "api_key": CANARY},
    ):
        with pytest.raises(VlabError) as info:
            resolve_target(dotenv_path=False, **kwargs)
        texts += exception_texts(info.value)

    texts.append(caplog.text)
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args)]
    assert [t[:200] for t in texts if any(form in t for form in FORMS)] == []
    assert leaks_in_tree(tmp_path) == []
    assert (tmp_path / "runs" / "sweep" / "report.html").is_file() and (
        tmp_path / "runs" / "session" / "output.wav"
    ).is_file()


def test_env_and_runs_are_git_ignored():
    paths = [
        ".env",
        "notebooks/.env",
        "runs/x/events.jsonl",
        "notebooks/runs/sweep/manifest.json",
        "sub/runs/a.wav",
    ]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert result.stdout.split() == paths, result.stderr
    kept = subprocess.run(
        ["git", "check-ignore", "--no-index", "src/vlab/session/__init__.py"], cwd=REPO, capture_output=True
    )
    assert kept.returncode == 1  # not everything is ignored


@pytest.mark.slow
def test_a_notebook_run_with_the_canary_as_its_real_key_leaks_nothing(tmp_path, monkeypatch):

    import nbformat
    from nbclient import NotebookClient

    loop = asyncio.new_event_loop()
    emu = Emulator(api_key=CANARY, speed="max", latency="instant")
    loop.run_until_complete(emu.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AZURE_VOICELIVE_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", CANARY)
        monkeypatch.setenv("VLAB_NOTEBOOK_SPEED", "inf")
        monkeypatch.setenv("HOME", str(tmp_path))
        work = tmp_path / "notebooks"
        work.mkdir()
        nb = nbformat.read(REPO / "notebooks" / "01_quickstart.ipynb", as_version=4)
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
        ).execute()
    finally:
        from vlab.emulator.server import STATE

        connections = emu._app[STATE]["index"]
        asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert connections >= 1  # the notebook really connected with the canary key
    assert not any(form in json.dumps(nb) for form in FORMS)
    assert leaks_in_tree(work) == []
