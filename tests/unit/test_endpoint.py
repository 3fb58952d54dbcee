from __future__ import annotations

import json
import os
import pickle
import sys
import types
from pathlib import Path

import pytest

from vlab import protocol
from vlab.endpoint import Secret, Target, make_credential, open_target, resolve_target
from vlab.errors import ConfigError

CANARY = "CANARY-KEY-0123456789"
ENDPOINT = "https://res.services.ai.azure.com"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test in an empty directory so no stray .env is found."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text


# --- Secret ----------------------------------------------------------------------------------------


def test_secret_never_shows_value() -> None:
    secret = Secret(CANARY)
    assert repr(secret) == "Secret('****')"
    assert str(secret) == "Secret('****')"
    assert f"{secret}" == "Secret('****')"
    assert_no_canary(repr(secret), str(secret), f"{secret!s:>40}", repr([secret]), repr({"k": secret}))
    assert secret.reveal() == CANARY
    with pytest.raises(TypeError):
        json.dumps({"key": secret})


def test_secret_equality_and_pickle() -> None:
    assert Secret(CANARY) == Secret(CANARY)
    assert Secret(CANARY) != Secret("other-key-000000000000")
    assert Secret(CANARY) != CANARY
    assert len({Secret(CANARY), Secret(CANARY)}) == 1
    assert pickle.loads(pickle.dumps(Secret(CANARY))) == Secret(CANARY)
    assert Secret(Secret(CANARY)) == Secret(CANARY)


def test_secret_rejects_bad_values_without_echoing() -> None:
    with pytest.raises(ConfigError):
        Secret("   ")
    with pytest.raises(TypeError) as info:
        Secret(12345)  # type: ignore[arg-type]
    assert "12345" not in str(info.value)


# --- resolution ------------------------------------------------------------------------------------


def test_nothing_configured_means_emulator() -> None:
    target = resolve_target(env={}, dotenv_path=False)
    assert target.kind == "emulator"
    assert target.auth == "emulator"
    assert target.endpoint is None
    assert target.api_key is None
    assert target.model == protocol.DEFAULT_MODEL
    assert target.api_version == protocol.DEFAULT_API_VERSION
    assert not target.started
    assert target.describe().startswith("embedded emulator")


def test_default_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_VOICELIVE_ENDPOINT", ENDPOINT)
    target = resolve_target(dotenv_path=False)
    assert target.kind == "azure"
    assert target.auth == "entra_id"


def test_endpoint_and_key_means_api_key_auth() -> None:
    target = resolve_target(
        env={"AZURE_VOICELIVE_ENDPOINT": ENDPOINT, "AZURE_VOICELIVE_API_KEY": CANARY}, dotenv_path=False
    )
    assert target.kind == "azure"
    assert target.auth == "api_key"
    assert target.endpoint == ENDPOINT
    assert target.api_key == Secret(CANARY)
    assert target.started


def test_endpoint_without_key_means_entra_id() -> None:
    target = resolve_target(env={"AZURE_VOICELIVE_ENDPOINT": ENDPOINT}, dotenv_path=False)
    assert target.auth == "entra_id"
    assert target.api_key is None
    assert "Entra ID" in target.describe()
    assert "res.services.ai.azure.com" in target.describe()


def test_entra_id_asked_for_reads_no_key_from_the_environment_or_dotenv(tmp_path: Path) -> None:
    # a token credential given, or Entra ID chosen in the panel, used the key AZURE_VOICELIVE_API_KEY held
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AZURE_VOICELIVE_API_KEY={CANARY}\n")
    env = {"AZURE_VOICELIVE_API_KEY": CANARY}
    for where in ({"env": env, "dotenv_path": False}, {"env": {}, "dotenv_path": dotenv}):
        assert resolve_target(ENDPOINT, **where).auth == "api_key"  # type: ignore[arg-type]
        target = resolve_target(ENDPOINT, entra_id=True, **where)  # type: ignore[arg-type]
        assert target.auth == "entra_id" and target.api_key is None
    with pytest.raises(ConfigError, match="Both an API key and Entra ID") as info:
        resolve_target(ENDPOINT, Secret(CANARY), entra_id=True, env={}, dotenv_path=False)
    assert_no_canary(str(info.value))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_an_endpoint_on_this_machine_is_not_called_azure(host: str) -> None:
    local = resolve_target(f"http://{host}:8765", "k", "gpt-4.1", dotenv_path=False)
    assert local.describe() == f"endpoint http://{host}:8765 on this machine (API key), model gpt-4.1"
    assert local.describe(models=["a", "b"]).endswith("(API key), models a, b")
    elsewhere = resolve_target(ENDPOINT, "k", dotenv_path=False)
    assert elsewhere.describe().startswith(f"Azure endpoint {ENDPOINT} (API key)")
    assert local.on_this_machine and not elsewhere.on_this_machine


def test_blank_values_count_as_unset() -> None:
    target = resolve_target(
        env={"AZURE_VOICELIVE_ENDPOINT": f"  {ENDPOINT}  ", "AZURE_VOICELIVE_API_KEY": "  "},
        dotenv_path=False,
    )
    assert target.endpoint == ENDPOINT
    assert target.auth == "entra_id"


def test_resolution_order_explicit_then_env_then_dotenv(tmp_path: Path) -> None:
    dotenv = write_env(
        tmp_path / "vl.env",
        AZURE_VOICELIVE_ENDPOINT="https://from-dotenv.services.ai.azure.com",
        AZURE_VOICELIVE_API_KEY="dotenv-key",
        AZURE_VOICELIVE_MODEL="dotenv-model",
        AZURE_VOICELIVE_API_VERSION="2025-10-01",
    )
    env = {
        "AZURE_VOICELIVE_ENDPOINT": "https://from-env.services.ai.azure.com",
        "AZURE_VOICELIVE_MODEL": "env-model",
    }

    only_dotenv = resolve_target(env={}, dotenv_path=dotenv)
    assert only_dotenv.endpoint == "https://from-dotenv.services.ai.azure.com"
    assert only_dotenv.api_key == Secret("dotenv-key")
    assert only_dotenv.model == "dotenv-model"
    assert only_dotenv.api_version == "2025-10-01"

    env_wins = resolve_target(env=env, dotenv_path=dotenv)
    assert env_wins.endpoint == "https://from-env.services.ai.azure.com"
    assert env_wins.model == "env-model"
    assert env_wins.api_key == Secret("dotenv-key")  # per field: not in env, so from .env
    assert env_wins.api_version == "2025-10-01"

    explicit = resolve_target(
        "https://explicit.services.ai.azure.com",
        CANARY,
        "explicit-model",
        api_version="2026-01-01-preview",
        env=env,
        dotenv_path=dotenv,
    )
    assert explicit.endpoint == "https://explicit.services.ai.azure.com"
    assert explicit.api_key == Secret(CANARY)
    assert explicit.model == "explicit-model"
    assert explicit.api_version == "2026-01-01-preview"

    assert resolve_target(env=env, dotenv_path=False).api_key is None


def test_dotenv_default_search_uses_cwd_and_leaves_environ_alone(_isolated_cwd: Path) -> None:
    write_env(_isolated_cwd / ".env", AZURE_VOICELIVE_ENDPOINT=ENDPOINT, AZURE_VOICELIVE_API_KEY=CANARY)
    before = dict(os.environ)
    target = resolve_target(env={})
    assert target.auth == "api_key"
    assert target.endpoint == ENDPOINT
    assert dict(os.environ) == before
    assert "AZURE_VOICELIVE_API_KEY" not in os.environ
    assert resolve_target(env={}, dotenv_path=False).kind == "emulator"
    assert resolve_target(env={}, dotenv_path=True).endpoint == ENDPOINT  # True: search, as None does


def test_vlab_offline_ignores_the_environment_and_dotenv_but_not_an_argument(_isolated_cwd: Path) -> None:
    write_env(_isolated_cwd / ".env", AZURE_VOICELIVE_ENDPOINT=ENDPOINT, AZURE_VOICELIVE_API_KEY=CANARY)
    env = {
        "AZURE_VOICELIVE_ENDPOINT": "https://from-env.services.ai.azure.com",
        "AZURE_VOICELIVE_API_KEY": CANARY,
    }
    assert resolve_target(env=env).endpoint == "https://from-env.services.ai.azure.com"
    assert resolve_target(env={**env, "VLAB_OFFLINE": "1"}).kind == "emulator"
    assert resolve_target(env={"VLAB_OFFLINE": "1"}).kind == "emulator"  # nor the .env in the folder
    assert resolve_target(env={"VLAB_OFFLINE": "0"}).endpoint == ENDPOINT  # 0: off, as unset
    assert resolve_target(env={"VLAB_OFFLINE": " "}).endpoint == ENDPOINT  # blank: unset
    explicit = resolve_target(ENDPOINT, CANARY, env={**env, "VLAB_OFFLINE": "1"})
    assert (explicit.kind, explicit.endpoint, explicit.api_key) == ("azure", ENDPOINT, Secret(CANARY))


def test_missing_dotenv_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dotenv_path"):
        resolve_target(env={}, dotenv_path=tmp_path / "nope.env")


def test_key_without_endpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(env={"AZURE_VOICELIVE_API_KEY": CANARY}, dotenv_path=False)
    message = str(info.value)
    assert "AZURE_VOICELIVE_ENDPOINT" in message
    assert "AZURE_VOICELIVE_API_KEY" in message  # says where the key came from
    assert_no_canary(message, repr(info.value))

    dotenv = write_env(tmp_path / "k.env", AZURE_VOICELIVE_API_KEY=CANARY)
    with pytest.raises(ConfigError) as info:
        resolve_target(env={}, dotenv_path=dotenv)
    assert_no_canary(str(info.value))
    with pytest.raises(ConfigError) as info:
        resolve_target(api_key=CANARY, env={}, dotenv_path=False)
    assert_no_canary(str(info.value))


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://res.services.ai.azure.com",
        "https://",
        "https:///path",
        "http://[::1",
    ],
)
def test_bad_endpoint_shows_value_and_example(endpoint: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(endpoint, env={}, dotenv_path=False)
    message = str(info.value)
    assert repr(endpoint) in message
    assert "https://<resource>.services.ai.azure.com" in message
    assert "endpoint argument" in message


@pytest.mark.parametrize(
    ("endpoint", "fix"),
    [
        (
            "res.services.ai.azure.com",
            "Add the scheme: https://res.services.ai.azure.com (the resource endpoint, no path).",
        ),
        (
            f"res.services.ai.azure.com/x?key={CANARY}",
            "Add the scheme: https://res.services.ai.azure.com (the",
        ),
        (
            '"https://res.services.ai.azure.com"',
            "Remove the quotes around it. Use the resource endpoint, e.g.",
        ),
        (
            "'https://res.services.ai.azure.com'",
            "Remove the quotes around it. Use the resource endpoint, e.g.",
        ),
    ],
)
def test_an_endpoint_without_its_scheme_or_in_quotes_is_told_the_fix(endpoint: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(endpoint, env={}, dotenv_path=False)
    assert fix in str(info.value)
    assert_no_canary(str(info.value))


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            "https://res.services.ai.azure.com/voice-live/realtime",
            "ends with /voice-live/realtime, which the SDK appends itself (it would connect to "
            "…/voice-live/realtime/voice-live/realtime). Give it as 'https://res.services.ai.azure.com'.",
        ),
        (
            f"https://user:{CANARY}@gw.example/base/voice-agent/realtime/",
            "ends with /voice-agent/realtime, which the SDK appends itself (it would connect to "
            "…/voice-agent/realtime/voice-live/realtime). Give it as 'https://gw.example/base'.",
        ),
        (
            f"https://res.services.ai.azure.com/?api-version=2025-10-01&sig={CANARY}",
            "gives api-version in its query, which the SDK ignores (it sets its own). Give it as "
            "'https://res.services.ai.azure.com', and set AZURE_VOICELIVE_API_VERSION.",
        ),
        (
            "wss://res.cognitiveservices.azure.com/voice-live/realtime?api-version=2025-10-01&model=gpt-4o",
            "ends with /voice-live/realtime, which the SDK appends itself (it would connect to "
            "…/voice-live/realtime/voice-live/realtime); it gives api-version and model in its query, which the "
            "SDK ignores (it sets its own). Give it as 'wss://res.cognitiveservices.azure.com', and set "
            "AZURE_VOICELIVE_API_VERSION and AZURE_VOICELIVE_MODEL.",
        ),
    ],
)
def test_what_the_sdk_adds_to_an_endpoint_is_refused_in_it(endpoint: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(endpoint, env={}, dotenv_path=False)
    assert str(info.value) == f"The endpoint from the endpoint argument {message}"
    assert_no_canary(str(info.value))


@pytest.mark.parametrize("port", ["99999", CANARY])
def test_a_bad_port_is_named_and_not_shown(port: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(f"https://res.services.ai.azure.com:{port}/x", env={}, dotenv_path=False)
    assert str(info.value) == (
        "The endpoint from the endpoint argument has a port that is not a number from 0 to 65535, got "
        "'https://res.services.ai.azure.com:…'. Use the resource endpoint, e.g. "
        "https://<resource>.services.ai.azure.com."
    )


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        (f"ftp://user:{CANARY}@res.example/x", "'ftp://res.example/x'"),
        (f"ftp://res.example/x?key={CANARY}", "'ftp://res.example/x?…'"),
        (f"ftp://res.example/x#{CANARY}", "'ftp://res.example/x?…'"),
    ],
)
def test_a_bad_endpoint_is_shown_without_what_might_hold_a_credential(endpoint: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(endpoint, env={}, dotenv_path=False)
    assert f"got {shown}." in str(info.value)
    assert_no_canary(str(info.value))


def test_setting_sources_say_where_each_setting_comes_from_never_its_value(_isolated_cwd: Path) -> None:
    from vlab.endpoint import setting_sources

    write_env(_isolated_cwd / ".env", AZURE_VOICELIVE_API_KEY=CANARY)
    sources = setting_sources(env={"AZURE_VOICELIVE_ENDPOINT": ENDPOINT})
    assert sources == {
        "endpoint": "environment variable AZURE_VOICELIVE_ENDPOINT",
        "api_key": f"AZURE_VOICELIVE_API_KEY in the .env file {_isolated_cwd / '.env'}",
    }
    assert setting_sources(ENDPOINT, env={}, dotenv_path=False) == {"endpoint": "the endpoint argument"}
    assert setting_sources(env={}, dotenv_path=False) == {}


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8765",
        "https://res.cognitiveservices.azure.com/base/",
        "ws://localhost:9000/x",
        "https://gw.example/voice-live",
        "https://res.services.ai.azure.com/?other=1",
        "WSS://h",
    ],
)
def test_good_endpoints(endpoint: str) -> None:
    assert resolve_target(endpoint, env={}, dotenv_path=False).endpoint == endpoint


def test_swapped_endpoint_and_key_never_echo_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target(CANARY, ENDPOINT, env={}, dotenv_path=False)
    assert_no_canary(str(info.value))
    assert "swapped" in str(info.value)
    for bad in (f"{CANARY}@host", f"https//{CANARY}@x", f"ftp://u:{CANARY}@host/?k={CANARY}"):
        with pytest.raises(ConfigError) as info:
            resolve_target(bad, env={}, dotenv_path=False)
        assert_no_canary(str(info.value))
    with pytest.raises(ConfigError) as info:
        resolve_target(f"https://x.azure.com/{CANARY}", CANARY, env={}, dotenv_path=False)
    assert_no_canary(str(info.value))


def test_canary_never_leaks_from_target() -> None:
    target = resolve_target(ENDPOINT, CANARY, env={}, dotenv_path=False)
    assert_no_canary(repr(target), str(target), target.describe(), repr(target.api_key), f"{target}")
    assert target.api_key.reveal() == CANARY
    # A key smuggled into the endpoint URL is not displayed either.
    smuggled = resolve_target(
        f"https://u:{CANARY}@res.services.ai.azure.com/?api-key={CANARY}", env={}, dotenv_path=False
    )
    assert_no_canary(repr(smuggled), smuggled.describe())
    assert "res.services.ai.azure.com" in smuggled.describe()


def test_target_validation() -> None:
    with pytest.raises(ConfigError):
        Target(kind="azure", endpoint=None, api_key=None, model="m", auth="entra_id")
    with pytest.raises(ConfigError):
        Target(kind="azure", endpoint=ENDPOINT, api_key=None, model="m", auth="api_key")
    with pytest.raises(ConfigError):
        Target(kind="emulator", endpoint=None, api_key=None, model="m", auth="entra_id")
    with pytest.raises(TypeError) as info:
        Target(kind="azure", endpoint=ENDPOINT, api_key=CANARY, model="m", auth="api_key")  # type: ignore[arg-type]
    assert_no_canary(str(info.value))


# --- credentials -----------------------------------------------------------------------------------


def test_make_credential_api_key() -> None:
    from azure.core.credentials import AzureKeyCredential

    target = resolve_target(ENDPOINT, CANARY, env={}, dotenv_path=False)
    credential = make_credential(target)
    assert isinstance(credential, AzureKeyCredential)
    assert credential.key == CANARY
    with pytest.raises(ConfigError, match="pass one of them, the key or the credential") as info:
        make_credential(target, token_credential=object())  # type: ignore[arg-type]
    assert_no_canary(str(info.value))


async def test_make_credential_entra_id() -> None:
    target = resolve_target(ENDPOINT, env={}, dotenv_path=False)
    given = object()
    assert make_credential(target, token_credential=given) is given  # type: ignore[arg-type]
    from azure.identity.aio import DefaultAzureCredential

    credential = make_credential(target)
    try:
        assert isinstance(credential, DefaultAzureCredential)
    finally:
        await credential.close()


def test_make_credential_emulator_needs_start() -> None:
    target = resolve_target(env={}, dotenv_path=False)
    with pytest.raises(ConfigError, match="open_target"):
        make_credential(target)


def test_a_token_credential_without_an_endpoint_is_told_the_emulator_takes_none() -> None:
    # it said "an API key was found. Unset AZURE_VOICELIVE_API_KEY", when no key was set anywhere
    target = resolve_target(env={}, dotenv_path=False)
    with pytest.raises(
        ConfigError, match="no endpoint is set, so the session would use the embedded emulator"
    ):
        make_credential(target, token_credential=object())  # type: ignore[arg-type]


# --- open_target -----------------------------------------------------------------------------------


class FakeEmulator:
    instances: list[FakeEmulator] = []

    def __init__(self, **options: object) -> None:
        self.options = options
        self.endpoint = "http://127.0.0.1:54321"
        self.api_key = "emulator-key"
        self.running = False
        FakeEmulator.instances.append(self)

    async def __aenter__(self) -> FakeEmulator:
        self.running = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.running = False


@pytest.fixture
def fake_emulator(monkeypatch: pytest.MonkeyPatch) -> type[FakeEmulator]:
    module = types.ModuleType("vlab.emulator")
    module.Emulator = FakeEmulator  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vlab.emulator", module)
    FakeEmulator.instances = []
    return FakeEmulator


async def test_open_target_starts_and_stops_emulator(fake_emulator: type[FakeEmulator]) -> None:
    target = resolve_target(model="m1", env={}, dotenv_path=False)
    async with open_target(target, speed=4.0) as running:
        (emu,) = fake_emulator.instances
        assert emu.running
        assert emu.options == {"speed": 4.0}
        assert running.kind == "emulator"
        assert running.auth == "emulator"
        assert running.endpoint == "http://127.0.0.1:54321"
        assert running.api_key == Secret("emulator-key")
        assert running.model == "m1"
        assert running.started
        assert "127.0.0.1:54321" in running.describe()
        assert make_credential(running).key == "emulator-key"
    assert not emu.running
    assert target.endpoint is None  # the original is unchanged


async def test_open_target_azure_is_passthrough(fake_emulator: type[FakeEmulator]) -> None:
    target = resolve_target(ENDPOINT, CANARY, env={}, dotenv_path=False)
    async with open_target(target, speed=4.0) as running:
        assert running is target
    assert fake_emulator.instances == []


def test_module_imports_no_sdk_or_emulator() -> None:
    import subprocess

    code = (
        "import sys, vlab.endpoint, vlab.settings; "
        "bad = [m for m in sys.modules if m.startswith(('azure', 'vlab.emulator'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_an_emulator_option_it_does_not_take_is_named_with_the_one_meant() -> None:
    with pytest.raises(
        ConfigError, match=r"^unknown option\(s\) 'speeed' in emulator_options \(did you mean 'speed'\?\)"
    ):
        async with open_target(resolve_target(env={}, dotenv_path=False), speeed=2):
            pass  # never reached: nothing starts


async def test_fast_emulator_names_the_option_meant_before_it_starts() -> None:
    from vlab.testing import fast_emulator

    with pytest.raises(
        ConfigError, match=r"^unknown option\(s\) 'latncy' in fast_emulator \(did you mean 'latency'\?\)"
    ):
        async with fast_emulator(latncy="instant"):
            pass  # never reached: nothing starts


def test_a_function_taking_any_keyword_is_given_any_option() -> None:
    from vlab.errors import check_keywords

    def stand_in(**options: object) -> None: ...

    def emulator(speed: float = 1.0) -> None: ...

    check_keywords("stand-in", stand_in, {"anything": 1})
    check_keywords("emulator", emulator, {"speed": 2})
    with pytest.raises(ConfigError, match=r"'sped' in emulator \(did you mean 'speed'\?\); known: speed$"):
        check_keywords("emulator", emulator, {"sped": 2})
