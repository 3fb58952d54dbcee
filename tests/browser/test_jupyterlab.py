"""The notebook UI in a real browser: JupyterLab + Playwright + Debian Chromium, headless.

Opens ``01_quickstart``, runs all cells from the Run menu, presses the panel's Start with the first WAV
prompt selected, waits for ``response.done`` in the live event table and a number on the latency line,
presses Stop, and saves a screenshot to ``.artifacts/``. Without Chromium or Playwright the test skips
with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests._portable import unavailable
from tests.conftest import SKIP_IMPORTS_PRELUDE

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / ".artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


LAUNCH_JUPYTERLAB = (
    SKIP_IMPORTS_PRELUDE
    + """\
from jupyterlab.labapp import main
sys.argv[0] = "jupyter-lab"
sys.exit(main())
"""
)
"""``jupyter lab`` without the imports the test processes skip (``tests/conftest.py``): its event
schemas use no IRI format, and the server starts 1.9 s of CPU sooner."""


def _require(condition: bool, reason: str) -> None:
    if not condition:
        unavailable("the browser test", reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    _require(Path(CHROMIUM).exists(), "Chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "Playwright is not installed (pip install playwright)")
    home = tmp_path / "home"
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    work = tmp_path / "work"
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    os.symlink(ROOT / "data", work / "data")
    port, token = _free_port(), "vlab-browser-test"
    env = {
        **os.environ,
        "HOME": str(home),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "VLAB_NOTEBOOK_SPEED": "inf",
    }
    server = subprocess.Popen(
        [sys.executable, "-c", LAUNCH_JUPYTERLAB, "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "jupyter.log", "w"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.1)  # wall-clock ok: polling JupyterLab, a process with no event to wait on
        else:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "jupyter.log").read_text()[-2000:])
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_for_kernel(base: str, token: str) -> None:
    for _ in range(600):  # the UI's "idle" can precede the kernel connection: ask the server
        try:
            kernels = json.load(urllib.request.urlopen(f"{base}/api/kernels?token={token}"))
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            kernels = []  # the server is busy starting the kernel (a loaded machine): ask again
        if kernels and kernels[0]["connections"] >= 1 and kernels[0]["execution_state"] == "idle":
            return
        time.sleep(0.1)  # wall-clock ok: polling another process (JupyterLab) that has no event to wait on
    pytest.fail("the notebook's kernel never became idle")


def test_quickstart_panel_runs_a_session_in_a_real_browser(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{base}/lab/tree/notebooks/01_quickstart.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            _wait_for_kernel(base, token)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            status = page.locator(".jupyter-widgets.widget-html", has_text="Status:")
            status.filter(has_text="stopped").wait_for(
                timeout=120_000
            )  # the last cell ran a session and stopped it

            start = page.locator(".jupyter-widgets button", has_text="Start")
            start.click()
            status.filter(has_text="answered").wait_for(timeout=60_000)  # this session, still open
            page.locator(".jupyter-widgets.widget-html", has_text="response.done").first.wait_for(
                timeout=10_000
            )
            latency = page.locator(".jupyter-widgets.widget-html", has_text="voice-to-voice")
            latency.wait_for(timeout=60_000)
            assert any(ch.isdigit() for ch in latency.inner_text())
            page.locator(".jupyter-widgets button", has_text="Stop").click()
            status.filter(has_text="stopped").wait_for(timeout=30_000)
            latency.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "jupyterlab-session-panel.png"))
        finally:
            browser.close()
    assert errors == []
