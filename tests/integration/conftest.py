"""Fixtures for tests that drive the real SDK against the emulator over a real socket.

Every test in this folder is marked ``integration`` by ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from azure.ai.voicelive.aio import VoiceLiveConnection, connect
from azure.core.credentials import AzureKeyCredential

from vlab.emulator import Emulator
from vlab.testing import Prompt, fast_emulator, spoken_prompt


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with fast_emulator(trace=True) as emu:
        yield emu


@pytest.fixture
async def conn(emulator: Emulator) -> AsyncIterator[VoiceLiveConnection]:
    async with connect(
        endpoint=emulator.endpoint, credential=AzureKeyCredential(emulator.api_key), model="gpt-realtime"
    ) as connection:
        first = await connection.recv()
        assert first.type == "session.created"
        yield connection


@pytest.fixture(scope="session")
def prompt() -> Prompt:
    return spoken_prompt()


@pytest.fixture(scope="session")
def second_prompt() -> Prompt:
    return spoken_prompt("Please book a table for two at seven tonight.", lead_ms=200, trail_ms=1500)
