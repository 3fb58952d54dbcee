"""First contact with a resource: each way it goes wrong gets one readable line that says the fix —
through `vlab replay`, through `vlab doctor`, through a Session and in the session panel — and the
canary key, secret and token appear in none of them.

The failures: an endpoint with no credential and no sign-in, a wrong key, a token without the role, a
host that does not resolve, a certificate nobody trusts, and a throttled resource. Tokens come from
the emulator's own identity: the real ``DefaultAzureCredential`` signs in with a client secret
(``EnvironmentCredential``) at the emulator's token endpoint over TLS with a throwaway CA.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import vlab
from vlab import Session
from vlab.doctor import diagnose
from vlab.emulator import Emulator, Fault
from vlab.emulator.identity import TENANT
from vlab.emulator.tls import ThrowawayTls, throwaway_tls
from vlab.errors import AuthenticationFailed, ConnectionFailed, Throttled
from vlab.testing import StaticTokenCredential

CANARY_KEY = "CANARY-KEY-5e1d7c0a93b24f68-never-leak"
CANARY_SECRET = "CANARY-SECRET-8a2f4d61c0b7e395-never-leak"
CANARY_TOKEN = "CANARY-TOKEN-71c9e0b2d4a6f853-never-leak"
CANARIES = (CANARY_KEY, CANARY_SECRET, CANARY_TOKEN)
APP = "app-without-role"
DNS_FAILURE = "https://vlab-no-such-resource.invalid"


@dataclass
class Case:
    """One failure: how to cause it (environment for the CLI, Session options in process) and its words."""

    name: str
    expected: str
    """What the one-line error and the doctor's FAIL line say."""
    fix: str
    """The fix they name."""
    error_type: type[ConnectionFailed]
    doctor_check: str
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)
    """Keywords for Session (and the panel), where they differ from ``env``."""


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> ThrowawayTls:
    return throwaway_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def servers(tls) -> AsyncIterator[dict[str, Emulator]]:
    """A TLS emulator (with an app registered without the role) and one that throttles every connection."""
    secure = Emulator(
        speed=math.inf, latency="instant", api_key="right-key", ssl_context=tls.server_context()
    )
    throttled = Emulator(
        speed=math.inf,
        latency="instant",
        api_key="right-key",
        faults=[Fault("rate_limit", n=1000, retry_after_s=2)],
    )
    async with secure, throttled:
        secure.identity.register_app(APP, CANARY_SECRET, role=False)
        yield {"secure": secure, "throttled": throttled}


def _cases(servers: dict[str, Emulator], tls: ThrowawayTls) -> list[Case]:
    secure, throttled = servers["secure"], servers["throttled"]
    trust = {"SSL_CERT_FILE": str(tls.ca_file)}
    host = secure.endpoint.split("//", 1)[1]
    no_role_token = secure.identity.issue("someone-without-the-role").token
    return [
        Case(
            "no credential, no sign-in",
            "no Entra ID credential produced a token",
            "az login",
            AuthenticationFailed,
            "auth",
            env={"AZURE_VOICELIVE_ENDPOINT": secure.endpoint, **trust},
        ),
        Case(
            "wrong key",
            "refused the API key (HTTP 401)",
            "AZURE_VOICELIVE_API_KEY",
            AuthenticationFailed,
            "auth",
            env={"AZURE_VOICELIVE_ENDPOINT": secure.endpoint, "AZURE_VOICELIVE_API_KEY": CANARY_KEY, **trust},
        ),
        Case(
            "token without the role",
            "lacks the 'Cognitive Services User' role on the resource (HTTP 403)",
            'az role assignment create --role "Cognitive Services User"',
            AuthenticationFailed,
            "auth",
            env={
                "AZURE_VOICELIVE_ENDPOINT": secure.endpoint,
                "AZURE_TENANT_ID": TENANT,
                "AZURE_CLIENT_ID": APP,
                "AZURE_CLIENT_SECRET": CANARY_SECRET,
                "AZURE_AUTHORITY_HOST": f"https://{host}",
                **trust,
            },
            options={"credential": StaticTokenCredential(no_role_token)},
        ),
        Case(
            "DNS failure",
            "cannot resolve vlab-no-such-resource.invalid",
            "check the resource name",
            ConnectionFailed,
            "dns",
            env={"AZURE_VOICELIVE_ENDPOINT": DNS_FAILURE, "AZURE_VOICELIVE_API_KEY": CANARY_KEY},
        ),
        Case(
            "TLS failure",
            f"the TLS handshake with {host} failed",
            "SSL_CERT_FILE",
            ConnectionFailed,
            "tls",
            env={"AZURE_VOICELIVE_ENDPOINT": secure.endpoint, "AZURE_VOICELIVE_API_KEY": CANARY_KEY},
        ),
        Case(
            "throttled",
            "the service is throttling (HTTP 429",
            "lower a sweep's [run] concurrency",
            Throttled,
            "session",
            env={"AZURE_VOICELIVE_ENDPOINT": throttled.endpoint, "AZURE_VOICELIVE_API_KEY": "right-key"},
        ),
    ]


CASE_NAMES = [
    "no credential, no sign-in",
    "wrong key",
    "token without the role",
    "DNS failure",
    "TLS failure",
    "throttled",
]


def _base_env(home: Path) -> dict[str, str]:
    """This environment without any Azure sign-in: no AZURE_* variable, an empty Azure CLI profile."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_", "SSL_CERT"))
    }
    env.update(AZURE_CONFIG_DIR=str(home / "azure-cli"), HOME=str(home))
    env["PYTHONPATH"] = str(Path(vlab.__file__).parents[1])  # the vlab under test, from any folder
    return env


async def _vlab(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vlab",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)  # a safety net, not a measurement
    return proc.returncode, out.decode(), err.decode()


def _no_canary(*texts: str) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in text


@pytest.fixture
def wav(tmp_path, prompt) -> Path:
    path = tmp_path / "prompt.wav"
    sf.write(path, np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate)
    return path


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_the_cli_gives_one_line_with_the_fix_and_doctor_names_it(name, servers, tls, tmp_path, wav):
    case = next(c for c in _cases(servers, tls) if c.name == name)
    env = {**_base_env(tmp_path), **case.env}
    code, out, err = await _vlab(
        "replay", str(wav), "--speed", "max", "--out", str(tmp_path / "r"), env=env, cwd=tmp_path
    )
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    (line,) = [x for x in err.splitlines() if x.startswith("vlab: error:")]
    assert case.expected in line and case.fix in line and "Fix: " in line
    _no_canary(out, err)

    code, out, err = await _vlab("doctor", "--no-devices", env=env, cwd=tmp_path)
    assert code == 1 and "Traceback" not in err, (out, err)
    (failed,) = [x for x in out.splitlines() if x.startswith("[FAIL]")]
    assert failed.split()[1] == case.doctor_check
    assert case.expected in failed and "→ fix:" in failed
    assert "a session cannot start" in out.splitlines()[-1]
    _no_canary(out, err)


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_a_session_raises_the_typed_one_line_error(name, servers, tls, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    case = next(c for c in _cases(servers, tls) if c.name == name)
    _in_process_env(monkeypatch, tmp_path, case)
    with pytest.raises(case.error_type) as info:
        async with Session(dotenv_path=False, **case.options):
            pass
    text = str(info.value)
    assert "\n" not in text and case.expected in text and case.fix in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    _no_canary(text, repr(info.value), caplog.text)


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_the_panel_shows_a_readable_status_not_a_traceback(
    name, servers, tls, tmp_path, monkeypatch, wav
):
    from vlab.widgets import SessionPanel

    case = next(c for c in _cases(servers, tls) if c.name == name)
    _in_process_env(monkeypatch, tmp_path, case)
    panel = SessionPanel(
        runs_dir=tmp_path / "runs",
        prompt_dir=wav.parent,
        replay_speed=math.inf,
        keep_open=False,
        session_options={"dotenv_path": False, **case.options},
        source="WAV prompt",
    )
    panel.target.value = "Azure endpoint"
    panel.endpoint.value = os.environ["AZURE_VOICELIVE_ENDPOINT"]
    key = os.environ.get("AZURE_VOICELIVE_API_KEY")
    panel.auth.value = "API key" if key else "Entra ID"
    if key:
        panel.api_key.value = key
    panel.start.click()
    await panel.task
    assert isinstance(panel.error, case.error_type)
    assert "failed:" in panel.status.value and case.expected.replace("'", "&#x27;") in panel.status.value
    (shown,) = panel.output.outputs
    text = json.dumps(shown)
    assert "traceback" not in text.lower() and "unexpectedly" not in text
    _no_canary(text, panel.status.value)


def _in_process_env(monkeypatch: pytest.MonkeyPatch, home: Path, case: Case) -> None:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_", "SSL_CERT")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(home / "azure-cli"))  # no Azure CLI sign-in
    monkeypatch.setenv("HOME", str(home))  # no shared token cache of a developer's sign-in
    for name, value in case.env.items():
        if name.startswith(("AZURE_CLIENT", "AZURE_TENANT", "AZURE_AUTHORITY")):
            continue  # in process the token comes from case.options (azure-identity's TLS trust is fixed at import)
        monkeypatch.setenv(name, value)


async def test_doctor_passes_against_the_emulator_with_a_key_and_with_entra_id_over_tls(
    servers, tls, tmp_path
):
    secure = servers["secure"]
    secure.identity.register_app("app-with-role", CANARY_SECRET, role=True)
    host = secure.endpoint.split("//", 1)[1]
    env = {
        **_base_env(tmp_path),
        "AZURE_VOICELIVE_ENDPOINT": secure.endpoint,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": "app-with-role",
        "AZURE_CLIENT_SECRET": CANARY_SECRET,
        "AZURE_AUTHORITY_HOST": f"https://{host}",
        "SSL_CERT_FILE": str(tls.ca_file),
    }
    code, out, err = await _vlab("doctor", "--no-devices", env=env, cwd=tmp_path)
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert [x.split()[1] for x in lines[:-1]] == [
        "target",
        "dns",
        "tls",
        "auth",
        "session",
        "voice",
        "turn",
        "input",
    ]
    assert all(x.startswith("[ok]") for x in lines[:-1]), out
    assert "certificate issued by vlab throwaway CA" in out
    assert "an Entra ID token from EnvironmentCredential was accepted" in out
    assert "session.update → session.updated" in out and "(a vlab emulator)" in out
    assert lines[-1] == "vlab doctor: a session can start."
    _no_canary(out, err)

    report = await diagnose(env={}, dotenv_path=False, devices=False)  # the embedded emulator
    assert report.ok and all(c.status == "ok" for c in report.checks), report.lines()
    assert "embedded emulator" in report.get("target").summary


async def test_messages_stay_readable_with_a_one_letter_key(servers, tmp_path, monkeypatch):
    messages = {}
    for key in ("k", "zzzzzzzzzzzzzzzz"):
        for endpoint in (DNS_FAILURE, servers["throttled"].endpoint):
            with pytest.raises(ConnectionFailed) as info:
                async with Session(endpoint=endpoint, api_key=key, dotenv_path=False):
                    pass
            messages[key, endpoint] = str(info.value)
    for endpoint in (DNS_FAILURE, servers["throttled"].endpoint):
        assert messages["k", endpoint] == messages["zzzzzzzzzzzzzzzz", endpoint]
        assert "****" not in messages["k", endpoint]
    assert "cannot resolve vlab-no-such-resource.invalid" in messages["k", DNS_FAILURE]


async def test_a_canary_token_never_appears(servers, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secure = servers["throttled"]  # plain HTTP: the token reaches the emulator and is refused
    with pytest.raises(AuthenticationFailed) as info:
        async with Session(
            endpoint=secure.endpoint, credential=StaticTokenCredential(CANARY_TOKEN), dotenv_path=False
        ):
            pass
    assert "refused the Entra ID token (HTTP 401)" in str(info.value)
    report = await diagnose(
        secure.endpoint,
        env={},
        dotenv_path=False,
        credential=StaticTokenCredential(CANARY_TOKEN),
        devices=False,
    )
    assert not report.ok and report.get("auth").status == "fail"
    _no_canary(str(info.value), repr(info.value), caplog.text, "\n".join(report.lines()))
