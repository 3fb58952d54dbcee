"""First contact, piece by piece: redaction as a token, credential sources, failures sorted into one-line
errors, the emulator's identity on a virtual clock, the rate-limit fault, sweep back-off settings."""

from __future__ import annotations

import pytest

from vlab.clock import ManualClock
from vlab.emulator.faults import Fault
from vlab.emulator.identity import Identity
from vlab.endpoint import Secret, Target
from vlab.errors import AuthenticationFailed, ConfigError, ConnectionFailed, Throttled
from vlab.session.connect_errors import (
    ConnectFailure,
    connect_error,
    credential_sources,
    one_line,
    parse_retry_after,
)
from vlab.session.reconnect import LONG_SECRET_CHARS, redact, redact_secret
from vlab.sweep import load_config

DEFAULT_CREDENTIAL_MESSAGE = (
    "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
    "Attempted credentials:\n"
    "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables are not "
    "fully configured.\nVisit https://aka.ms/azsdk/python/identity/environmentcredential/troubleshoot to "
    "troubleshoot this issue.\n"
    "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable, no response from the "
    "IMDS endpoint.\n"
    "\tAzureCliCredential: Azure CLI not found on path\n"
    "To mitigate this issue, please refer to the troubleshooting guidelines here at "
    "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
)
KEY_TARGET = Target(
    kind="azure", endpoint="https://r.services.ai.azure.com", api_key=Secret("k"), model="m", auth="api_key"
)
ENTRA_TARGET = Target(
    kind="azure", endpoint="https://r.services.ai.azure.com", api_key=None, model="m", auth="entra_id"
)


# --- redaction ----------------------------------------------------------------------------------------


def test_a_one_letter_key_is_redacted_as_a_token_and_the_message_stays_readable():
    message = (
        "Failed to establish WebSocket connection: Cannot connect to host x.invalid:443 ssl:default "
        "[Name or service not known]"
    )
    assert redact_secret(message, "k") == message
    assert redact_secret("api-key: k; key=k&x", "k") == "api-key: ****; key=****&x"
    assert redact(message + " k", KEY_TARGET) == message + " ****"


def test_a_short_key_inside_a_longer_word_is_left_but_a_long_key_is_redacted_anywhere():
    assert redact_secret("dev-keyboard dev-key", "dev-key") == "dev-keyboard ****"
    long_key = "0123456789abcdef"
    assert redact_secret(f"x{long_key}y and {long_key}", long_key) == "x****y and ****"
    at_the_bound, under_it = "k" * LONG_SECRET_CHARS, "k" * (LONG_SECRET_CHARS - 1)
    assert redact_secret(f"x{at_the_bound}y", at_the_bound) == "x****y"
    assert redact_secret(f"x{under_it}y", under_it) == f"x{under_it}y"


# --- credentials and failures -----------------------------------------------------------------------


def test_the_sources_default_azure_credential_tried_are_named_on_one_line_each():
    assert credential_sources(DEFAULT_CREDENTIAL_MESSAGE) == (
        "EnvironmentCredential: Environment variables are not fully configured",
        "ManagedIdentityCredential: authentication unavailable, no response from the IMDS endpoint",
        "AzureCliCredential: Azure CLI not found on path",
    )


def test_no_credential_names_the_sources_and_the_fixes_on_one_line():
    failure = ConnectFailure(
        "credential", DEFAULT_CREDENTIAL_MESSAGE, sources=credential_sources(DEFAULT_CREDENTIAL_MESSAGE)
    )
    error = connect_error(ENTRA_TARGET, failure, str)
    assert isinstance(error, AuthenticationFailed) and isinstance(error, ConnectionFailed)
    text = str(error)
    assert "\n" not in text
    assert "EnvironmentCredential" in text and "AzureCliCredential: Azure CLI not found" in text
    assert "az login" in text and "AZURE_VOICELIVE_API_KEY" in text
    assert error.sources == ("EnvironmentCredential", "ManagedIdentityCredential", "AzureCliCredential")


@pytest.mark.parametrize(
    ("target", "kind", "status", "expected", "error_type"),
    [
        (KEY_TARGET, "unauthorized", 401, "refused the API key (HTTP 401)", AuthenticationFailed),
        (ENTRA_TARGET, "unauthorized", 401, "refused the Entra ID token (HTTP 401)", AuthenticationFailed),
        (ENTRA_TARGET, "forbidden", 403, "lacks the 'Cognitive Services User' role", AuthenticationFailed),
        (KEY_TARGET, "throttled", 429, "throttling (HTTP 429", Throttled),
        (KEY_TARGET, "dns", None, "cannot resolve r.services.ai.azure.com", ConnectionFailed),
        (KEY_TARGET, "tls", None, "the TLS handshake with r.services.ai.azure.com failed", ConnectionFailed),
        (KEY_TARGET, "http", 404, "answered HTTP 404", ConnectionFailed),
    ],
)
def test_each_failure_is_one_line_with_a_fix(target, kind, status, expected, error_type):
    error = connect_error(target, ConnectFailure(kind, "detail k", status=status, retry_after_s=3.0), str)
    text = str(error)
    assert type(error) is error_type
    assert expected in text and "Fix: " in text and "\n" not in text
    if kind == "throttled":
        assert error.retry_after_s == 3.0 and "retry after 3 s" in text


@pytest.mark.parametrize(
    ("endpoint", "fix"),
    [
        (
            "http://127.0.0.1:8765",
            "set AZURE_VOICELIVE_API_KEY to the key the emulator printed as it started",
        ),
        ("http://[::1]:8765", "set AZURE_VOICELIVE_API_KEY to the key the emulator printed as it started"),
        (
            "https://localhost:8443",
            "copy a key from the resource's 'Keys and Endpoint' page",
        ),  # a tunnel, say
        ("https://r.services.ai.azure.com", "copy a key from the resource's 'Keys and Endpoint' page"),
    ],
)
def test_a_refused_key_on_a_local_emulator_is_fixed_with_the_emulator_s_key(endpoint, fix):
    # a wrong key for `vlab emulator` was told to copy a key from an Azure resource's page
    target = Target(kind="azure", endpoint=endpoint, api_key=Secret("k"), model="m", auth="api_key")
    text = str(connect_error(target, ConnectFailure("unauthorized", "detail", status=401), str))
    assert f"Fix: {fix}" in text


def test_the_transport_detail_is_redacted():
    error = connect_error(
        KEY_TARGET, ConnectFailure("tls", "bad cert for key k"), lambda t: redact(t, KEY_TARGET)
    )
    assert "bad cert for key ****" in str(error)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), (" 0 ", 0.0), (None, None), ("Wed, 21 Oct", None), ("-1", None)],
)
def test_retry_after_is_read_in_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_one_line_collapses_whitespace_and_cuts_at_the_limit_with_an_ellipsis():
    assert one_line("  a\n\tb   c ") == "a b c"
    assert one_line("x" * 300) == "x" * 300  # at the limit: whole
    assert one_line("x" * 301) == "x" * 299 + "…"  # beyond it: the limit's length, the last an ellipsis
    assert one_line("abcdef", limit=5) == "abcd…"


# --- the emulator's identity --------------------------------------------------------------------------


def test_identity_tokens_are_checked_for_signature_audience_expiry_and_role():
    clock = ManualClock()
    identity = Identity(clock=clock, lifetime_s=600)
    identity.grant("alice")
    token = identity.issue("alice")
    assert identity.check(token.token) is None
    assert token.expires_on == int(identity.now_s()) + 600
    head, body, signature = token.token.split(".")
    assert identity.check(f"{head}.{body}.{signature[:-2]}AA").status == 401  # tampered
    assert identity.check("not-a-token").status == 401
    assert identity.check(identity.issue("alice", audience="https://other").token).status == 401
    assert Identity(clock=clock).check(token.token).status == 401  # another emulator's key
    refused = identity.check(identity.issue("bob").token)
    assert (refused.status, refused.code) == (
        403,
        "PermissionDenied",
    ) and "Cognitive Services User" in refused.message
    clock.advance_ns(599 * 10**9)
    assert identity.check(token.token) is None
    clock.advance_ns(1 * 10**9)
    expired = identity.check(token.token)
    assert expired.status == 401 and "expired" in expired.message
    identity.revoke("alice")
    assert identity.check(identity.issue("alice").token).status == 403


# --- faults and sweep settings ------------------------------------------------------------------------


def test_the_rate_limit_fault_parses_and_validates():
    assert Fault.parse("rate_limit:2:1.5") == [Fault("rate_limit", n=2, retry_after_s=1.5)]
    assert Fault.parse("rate_limit:1") == [Fault("rate_limit", n=1, retry_after_s=1.0)]
    with pytest.raises(ConfigError, match="retry_after_s"):
        Fault("rate_limit", retry_after_s=-1)
    with pytest.raises(ConfigError, match="rate_limit:2:1.5"):
        Fault.parse("rate_limit")


def test_sweep_back_off_follows_retry_after_else_doubles():
    cfg = load_config(
        {"grid": {"threshold": [0.5]}, "prompts": {"include": ["short_question"]}, "run": {"backoff_s": 2}}
    )
    assert cfg.throttle_retries == 5
    assert [cfg.throttle_wait_s(n, None) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert cfg.throttle_wait_s(1, 7.0) == 7.0
    assert cfg.throttle_wait_s(20, None) == 60.0
    assert (
        load_config({"grid": {"threshold": [0.5]}, "run": {"backoff_s": 0}}).throttle_wait_s(3, None) == 0.0
    )
    for bad in ({"throttle_retries": -1}, {"throttle_retries": True}, {"backoff_s": "x"}, {"backoff_s": -1}):
        with pytest.raises(ConfigError, match="throttle_retries|backoff_s"):
            load_config({"grid": {"threshold": [0.5]}, "run": bad})


def test_a_service_principal_with_a_wrong_secret_is_told_to_check_its_variables():
    message = (
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\nAttempted credentials:\n"
        "\tEnvironmentCredential: Microsoft Entra ID error '(invalid_client) AADSTS7000215: Invalid client secret "
        "provided.'\nTo mitigate this issue, please refer to the troubleshooting guidelines."
    )
    failure = ConnectFailure("credential", message, sources=credential_sources(message))
    text = str(connect_error(ENTRA_TARGET, failure, str))
    assert (
        "AADSTS7000215" in text
        and "Fix: check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET" in text
    )
    unconfigured = ConnectFailure(
        "credential", DEFAULT_CREDENTIAL_MESSAGE, sources=credential_sources(DEFAULT_CREDENTIAL_MESSAGE)
    )
    assert "AZURE_CLIENT_SECRET" not in str(connect_error(ENTRA_TARGET, unconfigured, str))


@pytest.mark.parametrize(
    ("url", "words", "status"),
    [
        ("https://r.services.ai.azure.com", "AI Foundry resource endpoint", "ok"),
        ("https://r.cognitiveservices.azure.com", "AI Services endpoint", "ok"),
        ("https://voice.contoso.com", "custom domain", "ok"),
        ("https://r.openai.azure.com", "Azure OpenAI endpoint", "warn"),
        ("http://127.0.0.1:8765", "local emulator", "ok"),
        ("https://r.services.ai.azure.com/", "AI Foundry resource endpoint", "ok"),  # a slash is no path
        # the path of Azure OpenAI's realtime API: the SDK would connect to …/openai/realtime/voice-live/…
        ("https://r.services.ai.azure.com/openai/realtime", "with a path (/openai/realtime)", "warn"),
        ("https://r.cognitiveservices.azure.com/x", "it would connect to …/x/voice-live/realtime", "warn"),
        ("https://gateway.contoso.com/voice", "custom domain", "ok"),  # a gateway's prefix is its own
    ],
)
def test_doctor_names_the_endpoint_form(url, words, status):
    from vlab.doctor import endpoint_form

    form, got = endpoint_form(url)
    assert words in form and got == status


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("https://r.services.ai.azure.com/openai/realtime", "https://r.services.ai.azure.com"),
        ("wss://R.cognitiveservices.azure.com/x/", "https://r.cognitiveservices.azure.com"),
        ("https://r.openai.azure.com", "https://<resource>.services.ai.azure.com"),
    ],
)
def test_doctor_s_fix_for_an_endpoint_form_gives_the_endpoint_to_use(url, fix):
    from vlab.doctor import _target_check

    target = Target(kind="azure", endpoint=url, api_key=Secret("k"), model="m", auth="api_key")
    from_env = "environment variable AZURE_VOICELIVE_ENDPOINT"  # the fix names where the endpoint was set
    check = _target_check(target, {"endpoint": from_env, "api_key": from_env}, offline=False)
    assert (check.status, check.fix) == ("warn", f"set AZURE_VOICELIVE_ENDPOINT to {fix}")


def test_doctor_sound_device_check(monkeypatch):
    from vlab import doctor
    from vlab.audio import devices
    from vlab.audio.devices import DeviceInfo
    from vlab.errors import DeviceError

    mic = DeviceInfo(0, "usb mic", "ALSA", 1, 0, 48000.0, True, False)
    speaker = DeviceInfo(1, "speakers", "ALSA", 0, 2, 48000.0, False, True)
    monkeypatch.setattr(devices, "list_devices", lambda: [mic, speaker])
    assert doctor._device_check().line() == "[ok]   sound devices   microphone 'usb mic', speaker 'speakers'"
    monkeypatch.setattr(devices, "list_devices", lambda: [speaker])
    check = doctor._device_check()
    assert check.status == "warn" and "no microphone found" in check.summary and check.fix

    def no_portaudio():
        raise DeviceError("PortAudio is not installed")

    monkeypatch.setattr(devices, "list_devices", no_portaudio)
    assert doctor._device_check().status == "warn"  # replays and sweeps still work: not a failure
