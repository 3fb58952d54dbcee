"""Shared fixtures: a clean environment (no Azure credentials leak in from the developer's shell)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean_voicelive_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Strip AZURE_VOICELIVE_* so every test starts from "no credentials → embedded emulator"."""
    import os

    for name in list(os.environ):
        if name.startswith("AZURE_VOICELIVE_"):
            monkeypatch.delenv(name, raising=False)
