"""Authentication and exposure of the emulator: malformed credentials get 401, loopback by default,
a loud warning when exposed without an explicit key, and no credential in any log record."""

from __future__ import annotations

import logging
import math
import warnings

import aiohttp
import pytest

from vlab import Session
from vlab.emulator import Emulator
from vlab.emulator.server import EmulatorExposedWarning
from vlab.errors import ConfigError, ConnectionFailed
from vlab.testing import StaticTokenCredential, fast_emulator

KEY = "CANARY-EMULATOR-KEY-7f3a9c"
TOKEN = "CANARY-BEARER-TOKEN-51d2e8"


@pytest.mark.parametrize(
    "headers",
    [
        {"api-key": ""},
        {"api-key": "   "},
        {"api-key": KEY + " x"},
        {"api-key": KEY.lower()},
        {"api-key": KEY[:-1]},
        {"api-key": "é" + KEY},
        {"api-key": "x" * 8000},
        [("api-key", "wrong"), ("api-key", KEY)],
        [("api-key", KEY), ("api-key", KEY)],
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer  " + TOKEN},
        {"Authorization": TOKEN},
        {"Authorization": "Token " + TOKEN},
        {"Authorization": "Basic " + TOKEN},
        {"Authorization": "Bearer " + TOKEN + " extra"},
        {"Authorization": "Bearer " + KEY},  # the api key is not a bearer token
        [("Authorization", "Bearer wrong"), ("Authorization", "Bearer " + TOKEN)],
        {"api-key": KEY.replace("-", "_")},
    ],
    ids=lambda h: repr(h)[:40],
)
async def test_malformed_credentials_get_401(headers):
    async with fast_emulator(api_key=KEY, tokens=[TOKEN]) as emu:
        url = emu.endpoint + "/voice-live/realtime?api-version=2026-07-15"
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(url, headers=headers)
            assert info.value.status == 401
            for good in (
                {"api-key": KEY},
                {"Authorization": "Bearer " + TOKEN},
                {"Authorization": "bearer " + TOKEN},
            ):
                ws = await http.ws_connect(url, headers=good)  # the right credentials still work
                await ws.close()


async def test_the_emulator_binds_loopback_by_default():
    from vlab.cli import build_parser

    async with Emulator(speed="max") as emu:
        assert emu.host == "127.0.0.1"
        assert [a[0] for a in emu.addresses] == ["127.0.0.1"]
    assert build_parser().parse_args(["emulator"]).host == "127.0.0.1"


async def test_binding_elsewhere_without_an_explicit_key_warns_loudly(caplog):
    caplog.set_level(logging.WARNING, logger="vlab.emulator")
    with pytest.warns(EmulatorExposedWarning, match="SECURITY.*reachable from other machines.*api_key"):
        async with Emulator(host="0.0.0.0", speed="max"):
            pass
    assert any("SECURITY" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulatorExposedWarning)
        async with Emulator(host="0.0.0.0", api_key=KEY, speed="max") as emu:  # explicit key: logged only
            assert KEY not in repr(emu) and KEY not in repr(emu.config)
    assert any("other machines can connect" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("host", "why"),
    [("192.0.2.1", "not an address of this machine"), ("no-such-host.invalid", "no such host")],
)
async def test_a_host_that_cannot_be_bound_is_a_clear_error_and_no_exposure_warning(host, why):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmulatorExposedWarning)  # nothing listens, so nothing is exposed
        with pytest.raises(ConfigError) as info:
            await Emulator(host=host, speed="max").start()
    assert str(info.value) == (
        f"cannot listen on {host!r} ({why}): give an address of this machine, 127.0.0.1 (this machine only, "
        "the default) or 0.0.0.0 (every interface)."
    )


async def test_no_credential_in_any_log_record_during_auth_failures_and_sessions(caplog, prompt):
    caplog.set_level(logging.DEBUG)  # root: vlab, aiohttp.*, asyncio and the SDK (which logs frames at DEBUG)
    for name in ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.client", "aiohttp.websocket"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    wrong = KEY + "-WRONG"
    async with fast_emulator(api_key=KEY, tokens=[TOKEN]) as emu:
        with pytest.raises(ConnectionFailed) as info:
            async with Session(endpoint=emu.endpoint, api_key=wrong, dotenv_path=False):
                pass
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(
                    emu.endpoint + "/voice-live/realtime", headers={"Authorization": "Bearer " + wrong}
                )
        async with Session(endpoint=emu.endpoint, api_key=KEY, dotenv_path=False) as s:
            await s.stream_audio(prompt.pcm, speed=math.inf)
            await s.wait_for("response.done")
        async with Session(
            endpoint=emu.endpoint, credential=StaticTokenCredential(TOKEN), dotenv_path=False
        ) as s:
            await s.send_text("hello")
            await s.wait_for("response.done")
    assert any(
        r.name.startswith("azure") and r.levelno == logging.DEBUG for r in caplog.records
    )  # frames were logged
    texts = [str(info.value), repr(info.value), caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), repr(record.__dict__)]
    for secret in (KEY, TOKEN):
        assert not [t for t in texts if secret in t]
