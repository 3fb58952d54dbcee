"""Microsoft's published samples: the ``samples/`` folder of the installed SDK's source distribution.

Downloaded once per virtual environment, into ``vlab-test-cache`` there. Without network access to the
package index the tests that run them skip with the reason, except when ``CI=true``: then they fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

from tests._portable import unavailable

CACHE = Path(sys.prefix) / "vlab-test-cache"
"""Kept with the virtual environment: the samples (and PyAudio, for the sound-card test) are fetched once."""
SDK_VERSION = version("azure-ai-voicelive")
WANTED = ("basic_voice_assistant_async.py", "telemetry/sample_voicelive_with_console_tracing.py")
"""Files every complete copy holds (an older cache kept only the top-level samples)."""


def samples_dir() -> Path:
    """The ``samples/`` folder of the installed SDK's source distribution, its subfolders included."""
    folder = CACHE / f"azure-ai-voicelive-{SDK_VERSION}-samples"
    if all((folder / name).exists() for name in WANTED):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--dest", tmp,
             f"azure-ai-voicelive=={SDK_VERSION}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        archives = list(Path(tmp).glob("*.tar.gz"))
        if got.returncode != 0 or not archives:
            unavailable(
                "the SDK samples",
                f"could not download the azure-ai-voicelive {SDK_VERSION} sdist: {got.stderr[-300:]}",
            )
        with tarfile.open(archives[0]) as sdist:
            members = [m for m in sdist.getmembers() if re.fullmatch(r"[^/]+/samples/.+\.py", m.name)]
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python < 3.10.12
            sdist.extractall(tmp, members=members, **safe)  # type: ignore[arg-type]
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        (Path(tmp) / archives[0].name.removesuffix(".tar.gz") / "samples").rename(folder)
    return folder


def installed_apart(requirement: str, package: str, *, who: str, hint: str = "") -> Path:
    """A folder holding ``requirement`` (importable as ``package``), for a sample's ``PYTHONPATH``.

    Installed with pip into the cache, once per virtual environment and Python version, apart from the
    test environment. When pip fails, ``who`` is unavailable, with ``hint`` and what pip said.
    """
    name = re.split(r"[<>=!~\[ ]", requirement)[0]
    folder = CACHE / f"{name}-py{sys.version_info.major}.{sys.version_info.minor}"
    if not (folder / package.replace(".", "/")).is_dir():
        got = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(folder), requirement],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if got.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            unavailable(who, f"{requirement} could not be installed{hint}. pip said: {got.stderr[-300:]}")
    return folder


def azure_monitor_path() -> Path:
    """A folder holding ``azure-monitor-opentelemetry``, for the Azure Monitor sample's ``PYTHONPATH``.

    Installed on its own: among the dev extra, its pinned OpenTelemetry instrumentations sent pip's
    resolver backtracking for over ten minutes on Python 3.10.
    """
    return installed_apart(
        "azure-monitor-opentelemetry>=1.6", "azure.monitor.opentelemetry", who="the Azure Monitor sample"
    )
