"""First contact with a resource: each way it goes wrong gets one readable line that says the fix —
through `vlab replay`, through `vlab doctor`, through a Session and in the session panel — and the
canary key, secret and token appear in none of them.

The failures: an endpoint with no credential and no sign-in, a wrong key, a token the service refuses,
a token without the role, a host that does not resolve, a certificate nobody trusts, and a throttled
resource; the doctor's FAIL line names the whole fix of each. Tokens come from the emulator's own
identity: the real ``DefaultAzureCredential`` signs in with a client secret (``EnvironmentCredential``)
at the emulator's token endpoint over TLS with a throwaway CA, or takes the canary token from a
signed-in Azure CLI (a fake ``az`` first on PATH). A one-letter key leaves every surface's words as they
are with a long key.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.reliability._cli import base_env, run_vlab
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
ROLE_FIX = (
    "give your identity the 'Cognitive Services User' role on the resource (Azure portal → the resource → "
    'Access control (IAM), or `az role assignment create --role "Cognitive Services User" --assignee <you> '
    "--scope <resource id>`; it takes a few minutes to apply)"
)
KEY_FIX = (
    "copy a key from the resource's 'Keys and Endpoint' page into AZURE_VOICELIVE_API_KEY, and check that "
    "AZURE_VOICELIVE_ENDPOINT is that resource's endpoint"
)


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
    doctor_fix: str
    """The whole fix of the doctor's FAIL line (after ``→ fix: ``)."""
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)
    """Keywords for Session (and the panel), where they differ from ``env``."""
    also: str = ""
    """More words the one-line error and the doctor's FAIL line say (the wait a throttle asks for)."""


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> ThrowawayTls:
    return throwaway_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def fake_az(tmp_path_factory) -> Path:
    """A folder with an ``az`` that is signed in and hands out the canary token (put it first on PATH):
    the real ``DefaultAzureCredential`` gets it from its ``AzureCliCredential``, as after ``az login``."""
    folder = tmp_path_factory.mktemp("fake-az")
    token = {"accessToken": CANARY_TOKEN, "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": 4070908800}
    script = folder / "az"
    script.write_text(f"#!/bin/sh\necho '{json.dumps(token)}'\n")
    script.chmod(0o755)
    return folder


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


def _cases(servers: dict[str, Emulator], tls: ThrowawayTls, fake_az: Path) -> list[Case]:
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
            "run `az login` (and `az account set` to the resource's subscription), or set AZURE_VOICELIVE_API_KEY "
            "to the resource's key",
            env={"AZURE_VOICELIVE_ENDPOINT": secure.endpoint, **trust},
        ),
        Case(
            "wrong key",
            "refused the API key (HTTP 401)",
            "AZURE_VOICELIVE_API_KEY",
            AuthenticationFailed,
            "auth",
            KEY_FIX,
            env={"AZURE_VOICELIVE_ENDPOINT": secure.endpoint, "AZURE_VOICELIVE_API_KEY": CANARY_KEY, **trust},
        ),
        Case(
            "a refused token from the Azure CLI",
            "the endpoint refused the Entra ID token (HTTP 401)",
            "az login --tenant",
            AuthenticationFailed,
            "auth",
            f"sign in to the resource's tenant (`az login --tenant <tenant id>`) and {ROLE_FIX}; or set "
            "AZURE_VOICELIVE_API_KEY",
            env={
                "AZURE_VOICELIVE_ENDPOINT": secure.endpoint,
                "PATH": f"{fake_az}{os.pathsep}{os.environ['PATH']}",
                **trust,
            },
        ),
        Case(
            "token without the role",
            "lacks the 'Cognitive Services User' role on the resource (HTTP 403)",
            'az role assignment create --role "Cognitive Services User"',
            AuthenticationFailed,
            "auth",
            ROLE_FIX,
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
            "check the resource name in AZURE_VOICELIVE_ENDPOINT (e.g. https://<resource>.services.ai.azure.com), "
            "your network or VPN",
            env={"AZURE_VOICELIVE_ENDPOINT": DNS_FAILURE, "AZURE_VOICELIVE_API_KEY": CANARY_KEY},
        ),
        Case(
            "TLS failure",
            f"the TLS handshake with {host} failed",
            "SSL_CERT_FILE",
            ConnectionFailed,
            "tls",
            "if a proxy inspects TLS, point SSL_CERT_FILE at its CA bundle; check the system clock and that the "
            "endpoint is the resource's",
            env={"AZURE_VOICELIVE_ENDPOINT": secure.endpoint, "AZURE_VOICELIVE_API_KEY": CANARY_KEY},
        ),
        Case(
            "throttled",
            "the service is throttling (HTTP 429",
            "lower a sweep's [run] concurrency",
            Throttled,
            "session",
            "wait and retry, lower a sweep's [run] concurrency, or raise the deployment's quota",
            also="; it asks to retry after 2 s",
            env={"AZURE_VOICELIVE_ENDPOINT": throttled.endpoint, "AZURE_VOICELIVE_API_KEY": "right-key"},
        ),
    ]


CASE_NAMES = [
    "no credential, no sign-in",
    "wrong key",
    "a refused token from the Azure CLI",
    "token without the role",
    "DNS failure",
    "TLS failure",
    "throttled",
]


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
async def test_the_cli_gives_one_line_with_the_fix_and_doctor_names_it(
    name, servers, tls, fake_az, tmp_path, wav
):
    case = next(c for c in _cases(servers, tls, fake_az) if c.name == name)
    env = {**base_env(tmp_path), **case.env}
    code, out, err = await run_vlab(
        "replay", str(wav), "--speed", "max", "--out", str(tmp_path / "r"), env=env, cwd=tmp_path
    )
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    (line,) = [x for x in err.splitlines() if x.startswith("vlab: error:")]
    assert case.expected in line and case.fix in line and "Fix: " in line and case.also in line
    _no_canary(out, err)

    code, out, err = await run_vlab("doctor", "--no-devices", env=env, cwd=tmp_path)
    assert code == 1 and "Traceback" not in err, (out, err)
    (failed,) = [x for x in out.splitlines() if x.startswith("[FAIL]")]
    assert failed.split()[1] == case.doctor_check
    what, fix = failed.split(" → fix: ")
    assert case.expected in what and case.also in what and fix == case.doctor_fix
    assert "a session cannot start" in out.splitlines()[-1]
    _no_canary(out, err)


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_a_session_raises_the_typed_one_line_error(
    name, servers, tls, fake_az, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    case = next(c for c in _cases(servers, tls, fake_az) if c.name == name)
    _in_process_env(monkeypatch, tmp_path, case)
    with pytest.raises(case.error_type) as info:
        async with Session(dotenv_path=False, **case.options):
            pass
    text = str(info.value)
    assert "\n" not in text and case.expected in text and case.fix in text and case.also in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    _no_canary(text, repr(info.value), caplog.text)


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_the_panel_shows_a_readable_status_not_a_traceback(
    name, servers, tls, fake_az, tmp_path, monkeypatch, wav
):
    case = next(c for c in _cases(servers, tls, fake_az) if c.name == name)
    _in_process_env(monkeypatch, tmp_path, case)
    panel = await _panel_start(
        tmp_path,
        wav,
        os.environ["AZURE_VOICELIVE_ENDPOINT"],
        os.environ.get("AZURE_VOICELIVE_API_KEY"),
        case.options,
    )
    assert isinstance(panel.error, case.error_type)
    assert "failed:" in panel.status.value and case.expected.replace("'", "&#x27;") in panel.status.value
    (shown,) = panel.output.outputs
    text = json.dumps(shown)
    assert "traceback" not in text.lower() and "unexpectedly" not in text
    _no_canary(text, panel.status.value)


async def _panel_start(
    tmp_path: Path, wav: Path, endpoint: str, key: str | None, options: dict[str, object]
) -> Any:
    """A session panel pointed at ``endpoint`` (with ``key``, else Entra ID), after Start has run."""
    from vlab.widgets import SessionPanel

    panel = SessionPanel(
        runs_dir=tmp_path / "runs",
        prompt_dir=wav.parent,
        replay_speed=math.inf,
        keep_open=False,
        session_options={"dotenv_path": False, **options},
        source="WAV prompt",
    )
    panel.target.value = "Azure endpoint"
    panel.endpoint.value = endpoint
    panel.auth.value = "API key" if key else "Entra ID"
    if key:
        panel.api_key.value = key
    panel.start.click()
    await panel.task
    return panel


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
        **base_env(tmp_path),
        "AZURE_VOICELIVE_ENDPOINT": secure.endpoint,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_CLIENT_ID": "app-with-role",
        "AZURE_CLIENT_SECRET": CANARY_SECRET,
        "AZURE_AUTHORITY_HOST": f"https://{host}",
        "SSL_CERT_FILE": str(tls.ca_file),
    }
    code, out, err = await run_vlab("doctor", "--no-devices", env=env, cwd=tmp_path)
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


LONG_KEY = "zzzzzzzzzzzzzzzz"


async def test_a_one_letter_key_leaves_the_cli_the_panel_and_doctor_readable(
    servers, tls, tmp_path, monkeypatch, wav
):
    """A wrong key and a host that does not resolve: each surface says the same with the key ``k`` as with
    a long key (which no message contains), so no letter k was taken for the key."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
    trust = {"SSL_CERT_FILE": str(tls.ca_file)}
    paths = {"wrong key": servers["secure"].endpoint, "DNS": DNS_FAILURE}
    seen: dict[tuple[str, str, str], str] = {}
    for key in ("k", LONG_KEY):
        for path, endpoint in paths.items():
            env = {
                **base_env(tmp_path),
                "AZURE_VOICELIVE_ENDPOINT": endpoint,
                "AZURE_VOICELIVE_API_KEY": key,
                **trust,
            }
            args = ("replay", str(wav), "--speed", "max", "--out", str(tmp_path / "r"))
            code, out, err = await run_vlab(*args, env=env, cwd=tmp_path)
            assert code == 2, (out, err)
            (seen[key, path, "replay"],) = [x for x in err.splitlines() if x.startswith("vlab: error:")]
            code, out, err = await run_vlab("doctor", "--no-devices", "--no-dotenv", env=env, cwd=tmp_path)
            assert code == 1, (out, err)
            seen[key, path, "vlab doctor"] = out
            report = await diagnose(
                endpoint, env={"AZURE_VOICELIVE_API_KEY": key}, dotenv_path=False, devices=False
            )
            seen[key, path, "diagnose"] = "\n".join(report.lines())
            panel = await _panel_start(tmp_path, wav, endpoint, key, {})
            assert isinstance(panel.error, ConnectionFailed)
            seen[key, path, "panel"] = re.sub(r"panel-\d{8}-\d{6}(-\d+)?", "<run>", panel.status.value)
    for (_key, path, surface), text in seen.items():
        assert text == seen[LONG_KEY, path, surface], (path, surface)
        assert "****" not in text, (path, surface)
    for surface in ("vlab doctor", "diagnose"):
        assert "'Keys and Endpoint' page" in seen["k", "wrong key", surface]
        assert "cannot resolve vlab-no-such-resource.invalid" in seen["k", "DNS", surface]
    assert "refused the API key (HTTP 401)" in seen["k", "wrong key", "replay"]
    assert "Keys and Endpoint" in seen["k", "wrong key", "panel"]
    assert "cannot resolve vlab-no-such-resource.invalid" in seen["k", "DNS", "panel"]


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
