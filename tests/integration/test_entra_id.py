"""Entra ID end to end, offline: the emulator issues and checks bearer tokens, a credential gets one, the
SDK sends it, and a sweep that outlives one token refreshes it (on virtual time). Throttling and the
session quota: refused with 429, and a sweep backs off on its injected clock and retries."""

from __future__ import annotations

import json
import logging
import math

import pytest

from vlab import Session
from vlab.clock import ManualClock
from vlab.emulator import Emulator, Fault
from vlab.emulator.identity import AUDIENCE, TENANT, Identity
from vlab.emulator.tls import throwaway_tls
from vlab.errors import AuthenticationFailed, ConfigError, Throttled
from vlab.session import Reconnect
from vlab.sweep import run_sweep_async
from vlab.testing import EmulatorTokenCredential, StaticTokenCredential, fast_emulator

LIFETIME_S = 600.0
ONE_CELL = {
    "target": {"speed": "max", "latency": "instant"},
    "prompts": {"include": ["short_question"]},
    "grid": {"threshold": [0.5]},
    "run": {"timeout_s": 30, "concurrency": 1},
}


async def _one_turn(session: Session) -> None:
    await session.send_text("Hello there")
    await session.wait_for("response.done", timeout_s=30)


async def test_an_async_token_credential_gets_a_token_the_sdk_sends_as_a_bearer_token():
    async with fast_emulator() as emu:
        emu.identity.grant("alice")
        credential = EmulatorTokenCredential(emu.identity, "alice")
        async with Session(endpoint=emu.endpoint, credential=credential, dotenv_path=False) as s:
            assert s.target.auth == "entra_id"
            await _one_turn(s)
        assert credential.refreshes == 1 and emu.identity.issued == 1


async def test_the_real_client_secret_credential_signs_in_at_the_emulator_over_tls(tmp_path, monkeypatch):
    from azure.identity.aio import ClientSecretCredential

    tls = throwaway_tls(tmp_path / "tls")
    async with fast_emulator(ssl_context=tls.server_context()) as emu:
        emu.identity.register_app("app-1", "app-secret")
        host = emu.endpoint.split("//", 1)[1]
        monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))  # the SDK's WebSocket trusts the throwaway CA
        credential = ClientSecretCredential(
            TENANT, "app-1", "app-secret", authority=f"https://{host}", connection_verify=str(tls.ca_file)
        )
        async with credential:
            async with Session(endpoint=emu.endpoint, credential=credential, dotenv_path=False) as s:
                await _one_turn(s)
        assert emu.identity.issued == 1
        token = emu.identity.issue("app-1")
        assert emu.identity.check(token.token) is None and AUDIENCE == "https://ai.azure.com"


async def test_the_token_endpoint_answers_with_the_tokens_lifetime_and_refuses_a_wrong_secret():
    import aiohttp

    clock = ManualClock(start_ns=1_750_000_000 * 10**9)
    async with (
        fast_emulator(identity=Identity(clock=clock, lifetime_s=LIFETIME_S)) as emu,
        aiohttp.ClientSession() as http,
    ):
        emu.identity.register_app("app-1", "app-secret")
        url = f"{emu.endpoint}/{TENANT}/oauth2/v2.0/token"
        form = {"grant_type": "client_credentials", "client_id": "app-1", "scope": f"{AUDIENCE}/.default"}
        async with http.post(url, data={**form, "client_secret": "app-secret"}) as answer:
            body = await answer.json()
        assert answer.status == 200 and body["token_type"] == "Bearer"
        assert body["expires_in"] == body["ext_expires_in"] == LIFETIME_S
        assert emu.identity.check(body["access_token"]) is None
        async with http.post(url, data={**form, "client_secret": "wrong"}) as answer:
            assert answer.status == 401 and (await answer.json())["error"] == "invalid_client"


async def test_a_sweep_that_outlives_one_token_refreshes_it(tmp_path):
    clock = ManualClock()  # the identity's time: tokens expire only when the test says so
    async with fast_emulator(identity=Identity(clock=clock, lifetime_s=LIFETIME_S)) as emu:
        emu.identity.grant("sweeper")
        credential = EmulatorTokenCredential(emu.identity, "sweeper", refresh_margin_s=60)
        first = await credential.get_token("https://ai.azure.com/.default")

        def a_token_lifetime_passes(cell):
            clock.advance_ns(int((LIFETIME_S + 1) * 1e9))

        options = {"endpoint": emu.endpoint, "credential": credential, "dotenv_path": False}
        cfg = {**ONE_CELL, "run": {**ONE_CELL["run"], "repeats": 3}}
        result = await run_sweep_async(
            cfg, tmp_path / "sweep", progress=False, session_options=options, on_cell=a_token_lifetime_passes
        )
        assert [c.status for c in result.cells] == ["ok", "ok", "ok"], [c.error for c in result.cells]
        assert credential.refreshes == 3  # the first token (cell 1), then a fresh one for cells 2 and 3

        # the first token has long expired: the emulator refuses it as the service would
        with pytest.raises(AuthenticationFailed, match=r"refused the Entra ID token \(HTTP 401\)"):
            async with Session(
                endpoint=emu.endpoint, credential=StaticTokenCredential(first.token), dotenv_path=False
            ):
                pass


async def test_a_reconnect_after_the_token_expired_signs_in_again():
    clock = ManualClock()
    async with fast_emulator(identity=Identity(clock=clock, lifetime_s=LIFETIME_S)) as emu:
        emu.identity.grant("long-session")
        credential = EmulatorTokenCredential(emu.identity, "long-session")
        policy = Reconnect(attempts=2, backoff_s=0)
        async with Session(
            endpoint=emu.endpoint, credential=credential, dotenv_path=False, reconnect=policy
        ) as s:
            await _one_turn(s)
            clock.advance_ns(int((LIFETIME_S + 1) * 1e9))  # the first token expires mid-session
            emu.inject(Fault("drop", "response.done"))
            await _one_turn(s)  # its response.done is dropped after sending: the session reconnects
            await s.wait_for("vlab.reconnected", timeout_s=30)
            await _one_turn(s)
        assert s.reconnects == 1 and credential.refreshes == 2


async def test_a_token_without_the_role_is_refused_with_403():
    async with fast_emulator() as emu:
        token = emu.identity.issue("no-role")
        with pytest.raises(AuthenticationFailed, match="lacks the 'Cognitive Services User' role") as info:
            async with Session(
                endpoint=emu.endpoint, credential=StaticTokenCredential(token.token), dotenv_path=False
            ):
                pass
        assert "HTTP 403" in str(info.value)


async def test_the_session_quota_refuses_one_session_too_many_with_429():
    async with fast_emulator(max_sessions=1) as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as first:
            with pytest.raises(Throttled) as info:
                async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False):
                    pass
            assert info.value.retry_after_s == 1.0
            await _one_turn(first)
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as again:
            await _one_turn(again)  # the slot is free again


async def test_a_throttled_sweep_backs_off_on_its_clock_and_retries(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="vlab.sweep")
    clock = ManualClock()
    async with fast_emulator(faults=[Fault("rate_limit", n=2, retry_after_s=3)]) as emu:
        options = {"endpoint": emu.endpoint, "api_key": emu.api_key, "dotenv_path": False}
        result = await run_sweep_async(
            ONE_CELL, tmp_path / "sweep", progress=False, session_options=options, clock=clock
        )
    (cell,) = result.cells
    assert cell.status == "ok" and cell.throttled == 2
    assert clock.monotonic_ns() == 6 * 10**9  # two waits of Retry-After: 3 s, on the injected clock
    meta = json.loads((tmp_path / "sweep" / "cells" / cell.cell / "cell.json").read_text())
    assert [t["attempt"] for t in meta["throttled"]] == [1, 2] and {
        t["wait_s"] for t in meta["throttled"]
    } == {3}
    assert all("HTTP 429" in t["error"] for t in meta["throttled"])
    assert caplog.text.count("throttled") == 2 and "retrying in 3 s" in caplog.text


async def test_a_sweep_throttled_beyond_its_retries_records_the_error(tmp_path):
    clock = ManualClock()
    async with fast_emulator(faults=[Fault("rate_limit", n=10, retry_after_s=0)]) as emu:
        options = {"endpoint": emu.endpoint, "api_key": emu.api_key, "dotenv_path": False}
        cfg = {**ONE_CELL, "run": {**ONE_CELL["run"], "throttle_retries": 1, "backoff_s": 5}}
        result = await run_sweep_async(
            cfg, tmp_path / "sweep", progress=False, session_options=options, clock=clock
        )
    (cell,) = result.cells
    assert cell.status == "error" and cell.error.startswith("Throttled: the service is throttling (HTTP 429")
    assert cell.throttled == 1


@pytest.mark.parametrize("limit", [0, 2.5, "3", True])  # 2.5 was taken; "3" was a TypeError
def test_emulator_max_sessions_must_be_a_count_of_one_or_more(limit):
    with pytest.raises(ConfigError, match=f"max_sessions must be an integer ≥ 1, got {limit!r}"):
        Emulator(max_sessions=limit, speed=math.inf)


async def test_a_rate_limit_error_during_a_session_is_throttled_and_retried_after_the_back_off(tmp_path):
    clock = ManualClock()
    limited = Fault("error", "input_audio_buffer.committed", error_code="rate_limit_exceeded")
    assert Fault.parse("error_after:input_audio_buffer.committed:1:rate_limit_exceeded") == [limited]
    async with fast_emulator(faults=[limited]) as emu:  # every connection is throttled
        options = {"endpoint": emu.endpoint, "api_key": emu.api_key, "dotenv_path": False}
        cfg = {**ONE_CELL, "run": {**ONE_CELL["run"], "throttle_retries": 1, "backoff_s": 4}}
        result = await run_sweep_async(
            cfg, tmp_path / "sweep", progress=False, session_options=options, clock=clock
        )
    (cell,) = result.cells
    assert cell.status == "error" and cell.throttled == 1
    assert cell.error.startswith("Throttled: the service throttled the session (rate_limit_exceeded: ")
    assert clock.monotonic_ns() == 4 * 10**9  # no Retry-After in a session: the configured back-off


async def test_a_rate_limit_fault_cannot_be_armed_from_a_session():
    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.send({"type": "session.update", "session": {"metadata": {"vlab.fault": "rate_limit:2"}}})
            (error,) = (await s.wait_for("error", timeout_s=10))[-1:]
        assert "cannot be armed from a session" in error.error.message


async def test_sessions_opened_at_once_never_exceed_the_quota():
    import asyncio
    import contextlib

    async with fast_emulator(max_sessions=2) as emu:
        async with contextlib.AsyncExitStack() as stack:

            async def open_one() -> str:
                try:
                    await stack.enter_async_context(
                        Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False)
                    )
                except Throttled:
                    return "throttled"
                return "open"

            outcomes = await asyncio.gather(*(open_one() for _ in range(5)))
            assert sorted(outcomes) == ["open", "open", "throttled", "throttled", "throttled"]


# --- [run] max_sessions: the sweep's own cap --------------------------------------------------------

FOUR_CELLS = {
    "target": {"speed": "max", "latency": "instant"},
    "prompts": {"include": ["short_question"]},
    "grid": {"threshold": [0.3, 0.5, 0.7, 0.9]},
    "run": {"timeout_s": 30, "concurrency": 4},
}


def _capped(max_sessions: int | None, **run: object) -> dict:
    extra = {} if max_sessions is None else {"max_sessions": max_sessions}
    return {**FOUR_CELLS, "run": {**FOUR_CELLS["run"], **extra, **run}}


async def test_a_sweep_never_has_more_sessions_open_than_its_max_sessions(tmp_path):
    peaks = {}
    for cap in (None, 2):
        async with fast_emulator() as emu:
            options = {"endpoint": emu.endpoint, "api_key": emu.api_key, "dotenv_path": False}
            result = await run_sweep_async(
                _capped(cap), tmp_path / f"cap-{cap}", progress=False, session_options=options
            )
            assert [c.status for c in result.cells] == ["ok"] * 4, [c.error for c in result.cells]
            peaks[cap] = emu.peak_sessions  # counted by the emulator as each session opens
            assert emu.open_sessions == 0  # each cell closed its session before the sweep returned
    assert peaks[2] == 2
    assert peaks[None] > 2  # without the cap, concurrency 4 opens more at once


async def test_a_sweep_capped_at_the_quota_is_never_throttled(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="vlab.sweep")
    async with fast_emulator(max_sessions=2) as emu:
        options = {"endpoint": emu.endpoint, "api_key": emu.api_key, "dotenv_path": False}
        cfg = _capped(2, repeats=2, throttle_retries=0)  # a single 429 would fail its cell
        result = await run_sweep_async(cfg, tmp_path / "sweep", progress=False, session_options=options)
        assert emu.peak_sessions == 2
    assert [c.status for c in result.cells] == ["ok"] * 8, [c.error for c in result.cells]
    assert all(c.throttled == 0 for c in result.cells)
    for cell in result.cells:
        meta = json.loads((tmp_path / "sweep" / "cells" / cell.cell / "cell.json").read_text())
        assert "throttled" not in meta
    assert "throttled" not in caplog.text
