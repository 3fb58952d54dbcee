"""Reliability and security tests: faults, kills, bad input, credentials (issue 10).

Every test in this folder is marked ``integration`` by ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest

from vlab.testing import Prompt, spoken_prompt


@pytest.fixture(scope="session")
def prompt() -> Prompt:
    return spoken_prompt("What is the weather like in Seattle today?", lead_ms=300, trail_ms=1200)
