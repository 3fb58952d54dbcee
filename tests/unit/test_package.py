"""The public surface and the import rules of the layered layout."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import vlab

SRC = Path(vlab.__file__).parent


def test_public_names_are_pinned():
    assert set(vlab.__all__) == {
        "NOT_GIVEN",
        "AzureSemanticVad",
        "BargeIn",
        "ServerVad",
        "Session",
        "SessionSettings",
        "VlabError",
        "__version__",
        "find_runs",
        "load_log",
        "load_sweep",
    }
    for name in vlab.__all__:
        assert getattr(vlab, name) is not None


def _heavy_modules_loaded(module: str, heavy: list[str]) -> list[str]:
    """Which of ``heavy`` a fresh Python has loaded after importing ``module``."""
    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_vlab_stays_light():
    heavy = ["sounddevice", "ipywidgets", "matplotlib", "vlab.emulator", "aiohttp", "pandas"]
    assert _heavy_modules_loaded("vlab", heavy) == []


def test_the_recognition_process_loads_no_server_part_of_the_emulator():
    """``python -m vlab.emulator.asr_process`` starts beside each emulator that reads words: it needs
    PocketSphinx, not aiohttp."""
    heavy = ["aiohttp", "vlab.emulator.server", "pandas", "azure"]
    assert _heavy_modules_loaded("vlab.emulator.asr_process", heavy) == []


def test_the_emulator_package_names_load_on_first_use():
    import vlab.emulator

    assert sorted(dir(vlab.emulator)) == sorted(vlab.emulator.__all__)
    for name in vlab.emulator.__all__:
        module = importlib.import_module(vlab.emulator._LAZY[name])
        assert getattr(vlab.emulator, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="has no attribute 'Emulatr'"):
        vlab.emulator.Emulatr  # noqa: B018


def test_a_public_submodule_is_an_attribute_of_the_package_on_first_use_and_a_typo_is_told():
    code = (
        "import sys, vlab; assert 'vlab.metrics' not in sys.modules; "
        "print(vlab.metrics.turn_latency.__module__, vlab.plots.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["vlab.metrics.latency", "vlab.plots"]
    with pytest.raises(
        AttributeError, match=r"^module 'vlab' has no attribute 'metrcs'; did you mean 'metrics'\?$"
    ):
        vlab.metrcs  # noqa: B018
    with pytest.raises(AttributeError, match=r"^module 'vlab' has no attribute '_lazy_thing'$"):
        vlab._lazy_thing  # noqa: B018
    assert not hasattr(vlab, "nothing_like_it")
