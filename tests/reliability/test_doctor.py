"""`vlab doctor` against a service that refuses part of a session, and the target line for each source.

A scripted server (:func:`vlab.testing.scripted_server`) plays a Voice Live service that refuses one
thing with an ``error`` event, as the service answers a ``session.update`` it will not apply: the
model (every ``session.update``), a voice, a turn-detection type or an input format. Each refusal is
checked through :func:`vlab.doctor.diagnose` and through ``vlab doctor``: the exact line with its fix,
the verdict and the exit code. The emulator's opt-in refusals (``Emulator(refuse=...)``) rehearse the
same lines. The ``target`` line names where the endpoint and key came from: the argument, the
environment, a ``.env`` file (with its path), or none (the embedded emulator).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.reliability._cli import base_env, run_vlab
from vlab.doctor import diagnose
from vlab.testing import fast_emulator, scripted_server

KEY = "doctor-test-key"
NOBODY = "en-US-Nobody:DragonHDLatestNeural"
HERE = "a local emulator (e.g. `vlab emulator`)"
Refusal = Callable[[dict[str, Any]], "dict[str, str] | None"]


def _service(refuse: Refusal) -> Callable[[Any], Awaitable[None]]:
    """A Voice Live service that answers each ``session.update`` with ``session.updated``, or the error
    ``refuse(session)`` returns (``code``, ``message``, ``param``)."""

    async def script(ws: Any) -> None:
        await ws.send_json(
            {
                "type": "session.created",
                "event_id": "event_0",
                "session": {"id": "sess_d", "model": "gpt-realtime"},
            }
        )
        sent = 0
        async for message in ws:
            event = json.loads(message.data)
            if event.get("type") != "session.update":
                continue
            sent += 1
            session = event.get("session") or {}
            error = refuse(session)
            if error is None:
                reply = {"type": "session.updated", "session": {"id": "sess_d", **session}}
            else:
                body = {"type": "invalid_request_error", **error, "event_id": event.get("event_id")}
                reply = {"type": "error", "error": body}
            await ws.send_json({**reply, "event_id": f"event_{sent}"})

    return script


def _refuse_model(session: dict[str, Any]) -> dict[str, str]:
    return {
        "code": "model_not_found",
        "message": "The model 'gpt-nope' is not served by this resource.",
        "param": "model",
    }


def _refuse_voice(name: str) -> Refusal:
    def refuse(session: dict[str, Any]) -> dict[str, str] | None:
        if (session.get("voice") or {}).get("name") != name:
            return None
        return {
            "code": "invalid_value",
            "message": f"Voice '{name}' is not supported.",
            "param": "session.voice",
        }

    return refuse


def _refuse_turn_detection(kind: str) -> Refusal:
    def refuse(session: dict[str, Any]) -> dict[str, str] | None:
        if (session.get("turn_detection") or {}).get("type") != kind:
            return None
        return {
            "code": "invalid_value",
            "message": f"Turn detection '{kind}' is not supported.",
            "param": "session.turn_detection.type",
        }

    return refuse


def _refuse_format(name: str) -> Refusal:
    def refuse(session: dict[str, Any]) -> dict[str, str] | None:
        if session.get("input_audio_format") != name:
            return None
        return {
            "code": "invalid_value",
            "message": f"Input audio format '{name}' is not supported.",
            "param": "session.input_audio_format",
        }

    return refuse


@dataclass(frozen=True)
class Refused:
    """One thing the service refuses, what doctor is asked, and the line it must print."""

    name: str
    refuse: Refusal
    args: tuple[str, ...]
    """Extra ``vlab doctor`` options."""
    check: str
    line: str
    """The whole printed line of ``check``."""
    ok: bool
    """Whether a session can still start (only a warning)."""


REFUSED = [
    Refused(
        "model",
        _refuse_model,
        ("--model", "gpt-nope", "--api-version", "2025-10-01"),
        "session",
        "[FAIL] session         the service refused session.update for model gpt-nope (api-version 2025-10-01): "
        "model_not_found: The model 'gpt-nope' is not served by this resource. → fix: set AZURE_VOICELIVE_MODEL "
        "(or --model) to a model the resource serves, or AZURE_VOICELIVE_API_VERSION (or --api-version) to a "
        "supported api-version",
        False,
    ),
    Refused(
        "voice",
        _refuse_voice(NOBODY),
        ("--voice", NOBODY),
        "voice",
        f"[FAIL] voice           accepted: none; refused: {NOBODY} (invalid_value: Voice '{NOBODY}' is not "
        f"supported.) → fix: '{NOBODY}' is refused: choose an accepted value, or check the api-version",
        False,
    ),
    Refused(
        "turn detection",
        _refuse_turn_detection("server_vad"),
        (),
        "turn detection",
        "[FAIL] turn detection  accepted: azure_semantic_vad, azure_semantic_vad_en, "
        "azure_semantic_vad_multilingual, semantic_vad; refused: server_vad (invalid_value: Turn detection "
        "'server_vad' is not supported.) → fix: 'server_vad' is refused: choose an accepted value, or check the "
        "api-version",
        False,
    ),
    Refused(
        "input format",
        _refuse_format("pcm16"),
        (),
        "input formats",
        "[FAIL] input formats   accepted: g711_ulaw, g711_alaw; refused: pcm16 (invalid_value: Input audio "
        "format 'pcm16' is not supported.) → fix: 'pcm16' is refused: choose an accepted value, or check the "
        "api-version",
        False,
    ),
    Refused(
        "an OpenAI voice (a warning)",
        _refuse_voice("alloy"),
        (),
        "voice",
        "[warn] voice           accepted: en-US-AvaNeural, en-US-Ava:DragonHDLatestNeural; refused: alloy "
        "(invalid_value: Voice 'alloy' is not supported.) → fix: use only the accepted ones here (another "
        "model or api-version may accept the rest)",
        True,
    ),
    Refused(
        "a semantic turn detection (a warning)",
        _refuse_turn_detection("semantic_vad"),
        (),
        "turn detection",
        "[warn] turn detection  accepted: server_vad, azure_semantic_vad, azure_semantic_vad_en, "
        "azure_semantic_vad_multilingual; refused: semantic_vad (invalid_value: Turn detection 'semantic_vad' "
        "is not supported.) → fix: use only the accepted ones here (another model or api-version may accept "
        "the rest)",
        True,
    ),
]
ORDER = ["target", "dns", "tls", "auth", "session", "voice", "turn detection", "input formats"]


def _options(args: tuple[str, ...]) -> dict[str, str]:
    """``vlab doctor`` options as :func:`diagnose` keywords."""
    names = {"--model": "model", "--api-version": "api_version", "--voice": "voice"}
    return {names[a]: v for a, v in zip(args[::2], args[1::2], strict=True)}


def _expected_statuses(case: Refused) -> list[str]:
    """Every check's status: ok up to the refused one, which fails or warns; after a failure, skipped."""
    at = ORDER.index(case.check)
    after = "skip" if case.check == "session" else "ok"
    return ["ok"] * at + ["warn" if case.ok else "fail"] + [after] * (len(ORDER) - at - 1)


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
async def test_doctor_names_what_the_service_refused_and_the_fix(case, tmp_path):
    async with scripted_server(_service(case.refuse)) as endpoint:
        report = await diagnose(
            endpoint,
            env={"AZURE_VOICELIVE_API_KEY": KEY},
            dotenv_path=False,
            devices=False,
            timeout_s=30,
            **_options(case.args),
        )
        assert [c.name for c in report.checks] == ORDER
        assert [c.status for c in report.checks] == _expected_statuses(case), report.lines()
        assert report.get(case.check).line() == case.line
        assert report.ok is case.ok

        env = {**base_env(tmp_path), "AZURE_VOICELIVE_API_KEY": KEY}
        code, out, err = await run_vlab(
            "doctor", "--no-devices", "--no-dotenv", "--endpoint", endpoint, *case.args, env=env, cwd=tmp_path
        )
    lines = out.splitlines()
    assert code == (0 if case.ok else 1), (out, err)
    model = _options(case.args).get("model", "gpt-realtime")
    where, key_from = "the endpoint argument", "environment variable AZURE_VOICELIVE_API_KEY"
    assert lines[0] == _target_line(endpoint, where, key_from, model)
    assert "Traceback" not in err and KEY not in out + err
    assert [x for x in lines if x.split(maxsplit=1)[0] in ("[FAIL]", "[warn]")] == [case.line]
    assert lines[-1] == (
        "vlab doctor: a session can start."
        if case.ok
        else "vlab doctor: a session cannot start; fix the first [FAIL] line and run `vlab doctor` again."
    )
    if case.check == "session":
        assert lines[5:8] == [
            "[skip] voice           not checked: an earlier check failed",
            "[skip] turn detection  not checked: an earlier check failed",
            "[skip] input formats   not checked: an earlier check failed",
        ]


# --- where the target came from -------------------------------------------------------------------


def _target_line(endpoint: str, where: str, key_from: str, model: str = "gpt-realtime") -> str:
    return (
        f"[ok]   target          endpoint {endpoint} on this machine (API key), model {model} — endpoint from "
        f"{where}; API key from {key_from}; {HERE}"
    )


async def test_the_target_line_says_where_the_endpoint_and_key_came_from(tmp_path):
    dotenv = tmp_path / "settings.env"
    async with fast_emulator(api_key=KEY) as emu:
        endpoint = emu.endpoint
        dotenv.write_text(f"AZURE_VOICELIVE_ENDPOINT={endpoint}\nAZURE_VOICELIVE_API_KEY={KEY}\n")
        env = {"AZURE_VOICELIVE_API_KEY": KEY}
        sources = {
            "the endpoint argument": await diagnose(emu.endpoint, env=env, dotenv_path=False, devices=False),
            "environment variable AZURE_VOICELIVE_ENDPOINT": await diagnose(
                env={**env, "AZURE_VOICELIVE_ENDPOINT": emu.endpoint}, dotenv_path=False, devices=False
            ),
            f"AZURE_VOICELIVE_ENDPOINT in the .env file {dotenv}": await diagnose(
                env={}, dotenv_path=dotenv, devices=False
            ),
        }
    for where, report in sources.items():
        assert report.ok and all(c.status == "ok" for c in report.checks), report.lines()
        key_from = (
            f"AZURE_VOICELIVE_API_KEY in the .env file {dotenv}"
            if ".env" in where
            else "environment variable AZURE_VOICELIVE_API_KEY"
        )
        assert report.get("target").line() == _target_line(endpoint, where, key_from)

    embedded = await diagnose(env={}, dotenv_path=False, devices=False)
    assert embedded.get("target").line() == (
        "[ok]   target          no endpoint configured → the embedded emulator (offline), model gpt-realtime"
    )
    assert embedded.ok
    offline = await diagnose(
        env={**env, "AZURE_VOICELIVE_ENDPOINT": endpoint, "VLAB_OFFLINE": "1"},
        dotenv_path=dotenv,
        devices=False,
    )  # the endpoint in the environment and in .env both ignored
    assert offline.get("target").line() == (
        "[ok]   target          VLAB_OFFLINE is set → the embedded emulator (offline), model gpt-realtime"
    )
    assert offline.ok


async def test_the_cli_reads_the_target_from_a_dotenv_file_it_finds_and_names_it(tmp_path):
    work = tmp_path / "project" / "notebooks"
    work.mkdir(parents=True)
    dotenv = tmp_path / "project" / ".env"
    async with fast_emulator(api_key=KEY) as emu:
        endpoint = emu.endpoint
        dotenv.write_text(f"AZURE_VOICELIVE_ENDPOINT={endpoint}\nAZURE_VOICELIVE_API_KEY={KEY}\n")
        code, out, err = await run_vlab("doctor", "--no-devices", env=base_env(tmp_path), cwd=work)
        from_env = {
            **base_env(tmp_path),
            "AZURE_VOICELIVE_ENDPOINT": emu.endpoint,
            "AZURE_VOICELIVE_API_KEY": KEY,
        }
        code_env, out_env, _ = await run_vlab("doctor", "--no-devices", "--no-dotenv", env=from_env, cwd=work)
    assert code == 0, (out, err)
    where = f"AZURE_VOICELIVE_ENDPOINT in the .env file {dotenv}"
    assert out.splitlines()[0] == _target_line(
        endpoint, where, f"AZURE_VOICELIVE_API_KEY in the .env file {dotenv}"
    )
    assert KEY not in out + err
    assert code_env == 0
    assert out_env.splitlines()[0] == _target_line(
        endpoint,
        "environment variable AZURE_VOICELIVE_ENDPOINT",
        "environment variable AZURE_VOICELIVE_API_KEY",
    )


# --- the emulator's opt-in refusals: the same rehearsal without a scripted server ------------------


async def test_an_emulator_told_to_refuse_a_model_voice_type_and_format_rehearses_doctor():
    refuse = ["voice:alloy", "turn_detection:semantic_vad", "input_audio_format:g711_alaw", f"voice:{NOBODY}"]
    async with fast_emulator(api_key=KEY, refuse=[*refuse, "model:gpt-nope"]) as emu:
        env = {"AZURE_VOICELIVE_API_KEY": KEY}
        warned = await diagnose(emu.endpoint, env=env, dotenv_path=False, devices=False)
        voice = await diagnose(emu.endpoint, env=env, dotenv_path=False, devices=False, voice=NOBODY)
        model = await diagnose(emu.endpoint, env=env, dotenv_path=False, devices=False, model="gpt-nope")
    assert warned.ok and [c.status for c in warned.checks] == ["ok"] * 5 + ["warn"] * 3, warned.lines()
    because = "is not supported by this resource (refused by the emulator's refusals).)"
    fix = " → fix: use only the accepted ones here (another model or api-version may accept the rest)"
    assert warned.get("voice").line() == (
        "[warn] voice           accepted: en-US-AvaNeural, en-US-Ava:DragonHDLatestNeural; refused: alloy "
        f"(invalid_value: Invalid value for 'session.voice': 'alloy' {because}{fix}"
    )
    assert warned.get("turn detection").summary.endswith(
        f"; refused: semantic_vad (invalid_value: Invalid value for 'session.turn_detection.type': "
        f"'semantic_vad' {because}"
    )
    assert warned.get("input formats").line() == (
        "[warn] input formats   accepted: pcm16, g711_ulaw; refused: g711_alaw (invalid_value: Invalid value "
        f"for 'session.input_audio_format': 'g711_alaw' {because}{fix}"
    )
    assert not voice.ok and voice.get("voice").status == "fail"
    assert (
        voice.get("voice").fix == f"'{NOBODY}' is refused: choose an accepted value, or check the api-version"
    )
    assert not model.ok and model.get("session").line().startswith(
        "[FAIL] session         a vlab emulator refused session.update for model gpt-nope (api-version "
    )
    assert (
        "model_not_found: The model 'gpt-nope' is not served by this resource" in model.get("session").summary
    )


def test_the_emulator_command_takes_refusals_and_a_bad_one_is_a_config_error():
    from vlab.cli import build_parser
    from vlab.emulator.refusals import Refusals
    from vlab.errors import ConfigError

    args = build_parser().parse_args(["emulator", "--refuse", "voice:alloy", "--refuse", "model:gpt-nope"])
    assert Refusals.parse(args.refuse) == Refusals(frozenset({("voice", "alloy"), ("model", "gpt-nope")}))
    for bad in ("colour:red", "voice:", "alloy"):
        with pytest.raises(ConfigError, match="expected <field>:<value> with field one of model, voice"):
            Refusals.parse([bad])


def _nothing_listens() -> str:
    """An endpoint on a port that was free a moment ago: nothing listens on it now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


REFUSED_FIX = "check the port in {}; for a local emulator, start it with `vlab emulator`"
"""The fix of a port nothing listens on, naming where the endpoint was set."""


async def test_a_port_nothing_listens_on_fails_the_tls_check_in_the_words_of_the_session_error():
    endpoint = _nothing_listens()
    report = await diagnose(endpoint, env={"AZURE_VOICELIVE_API_KEY": KEY}, dotenv_path=False, devices=False)
    tls = report.get("tls")
    assert tls.status == "fail" and tls.summary.startswith(
        f"nothing accepts connections at {endpoint.removeprefix('http://')} ("
    )
    assert tls.fix == REFUSED_FIX.format("the endpoint argument")
    assert [c.status for c in report.checks] == ["ok", "ok", "fail"] + ["skip"] * 5


# --- a fix names where the endpoint and the key were set ------------------------------------------


async def test_a_fix_names_where_the_endpoint_and_the_key_were_set(tmp_path):
    """``--endpoint`` when the command line gave it, else the variable, else the line in ``.env``."""
    endpoint = _nothing_listens()
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AZURE_VOICELIVE_ENDPOINT={endpoint}\nAZURE_VOICELIVE_API_KEY={KEY}\n")
    env = {"AZURE_VOICELIVE_API_KEY": KEY}
    cli_env = {**base_env(tmp_path), **env}
    args = ("doctor", "--no-devices", "--timeout-s", "2")
    runs = {
        "--endpoint": await run_vlab(*args, "--no-dotenv", "--endpoint", endpoint, env=cli_env, cwd=tmp_path),
        "AZURE_VOICELIVE_ENDPOINT": await run_vlab(
            *args, "--no-dotenv", env={**cli_env, "AZURE_VOICELIVE_ENDPOINT": endpoint}, cwd=tmp_path
        ),
        f"AZURE_VOICELIVE_ENDPOINT in the .env file {dotenv}": await run_vlab(
            *args, env=base_env(tmp_path), cwd=tmp_path
        ),
    }
    for where, (code, out, err) in runs.items():
        failed = [x for x in out.splitlines() if x.startswith("[FAIL]")]
        assert code == 1 and len(failed) == 1, (out, err)
        assert failed[0].startswith("[FAIL] tls ") and failed[0].endswith(
            f" → fix: {REFUSED_FIX.format(where)}"
        )

    reports = {
        "--endpoint": await diagnose(
            endpoint, env=env, dotenv_path=False, devices=False, endpoint_option="--endpoint"
        ),
        "AZURE_VOICELIVE_ENDPOINT": await diagnose(
            env={**env, "AZURE_VOICELIVE_ENDPOINT": endpoint}, dotenv_path=False, devices=False
        ),
        f"AZURE_VOICELIVE_ENDPOINT in the .env file {dotenv}": await diagnose(
            env={}, dotenv_path=dotenv, devices=False
        ),
    }
    for where, report in reports.items():
        assert report.get("tls").fix == REFUSED_FIX.format(where), where
    invalid = await diagnose("nohost", env={}, dotenv_path=False, devices=False, endpoint_option="--endpoint")
    assert invalid.get("target").fix.startswith("The endpoint from --endpoint is not a URL (")

    wrong = "not-the-key"
    async with fast_emulator(api_key=KEY) as emu:
        dotenv.write_text(f"AZURE_VOICELIVE_API_KEY={wrong}\n")
        keys = {
            "AZURE_VOICELIVE_API_KEY": await diagnose(
                emu.endpoint, env={"AZURE_VOICELIVE_API_KEY": wrong}, dotenv_path=False, devices=False
            ),
            f"AZURE_VOICELIVE_API_KEY in the .env file {dotenv}": await diagnose(
                emu.endpoint, env={}, dotenv_path=dotenv, devices=False
            ),
        }
    for where, report in keys.items():
        assert report.get("auth").fix == (
            f"set {where} to the key the emulator printed as it started (`vlab emulator --api-key <key>` "
            "chooses it)"
        ), report.lines()


def test_the_target_fix_names_where_the_endpoint_was_set(tmp_path):
    """An endpoint of the wrong form: the fix names --endpoint, the argument, the variable, the .env line."""
    from vlab import doctor
    from vlab.endpoint import resolve_target, setting_sources

    url = "https://r.services.ai.azure.com/gateway"
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AZURE_VOICELIVE_ENDPOINT={url}\n")
    given: dict[str, tuple[str | None, dict[str, str], Any, str | None]] = {
        "--endpoint": (url, {}, False, "--endpoint"),
        "the endpoint argument": (url, {}, False, None),
        "AZURE_VOICELIVE_ENDPOINT": (None, {"AZURE_VOICELIVE_ENDPOINT": url}, False, None),
        f"AZURE_VOICELIVE_ENDPOINT in the .env file {dotenv}": (None, {}, dotenv, None),
    }
    for where, (endpoint, env, dotenv_path, option) in given.items():
        target = resolve_target(endpoint, env=env, dotenv_path=dotenv_path)
        sources = setting_sources(endpoint, env=env, dotenv_path=dotenv_path)
        check = doctor._target_check(target, sources, offline=False, endpoint_option=option)
        assert check.status == "warn" and check.fix == f"set {where} to https://r.services.ai.azure.com"


# --- a voice no session would send: the voice check fails before anything is sent ----------------

BAD_VOICE = "nosuch"


def _voice_message(voice: str) -> str:
    """What a session's settings say of ``voice`` (their rule, not the test's)."""
    from vlab.errors import ConfigError
    from vlab.settings import SessionSettings

    with pytest.raises(ConfigError) as info:
        SessionSettings(voice=voice)
    return str(info.value)


VOICE_FIX = (
    "give --voice a voice of one of those forms (e.g. alloy or en-US-AvaNeural), or leave --voice out to "
    "check alloy, en-US-AvaNeural and en-US-Ava:DragonHDLatestNeural"
)


async def test_a_voice_no_session_would_send_fails_the_voice_check_without_a_connection(tmp_path):
    message = _voice_message(BAD_VOICE)
    assert message.startswith("voice must be an OpenAI voice (alloy, ") and message.endswith("got 'nosuch'.")
    line = f"[FAIL] voice           {message} → fix: {VOICE_FIX}"

    # nothing listens: the network checks fail, and the voice check, which needs no connection, fails too
    env = {"AZURE_VOICELIVE_API_KEY": KEY}
    alone = await diagnose(_nothing_listens(), env=env, dotenv_path=False, devices=False, voice=BAD_VOICE)
    assert [(c.name, c.status) for c in alone.checks] == list(
        zip(ORDER, ["ok", "ok", "fail", "skip", "skip", "fail", "skip", "skip"], strict=True)
    ), alone.lines()
    assert alone.get("voice").line() == line and not alone.ok

    # a service that answers: the voice is never sent, and every other check is made
    sent: list[dict[str, Any]] = []

    def record(session: dict[str, Any]) -> None:
        sent.append(session)

    async with scripted_server(_service(record)) as endpoint:
        report = await diagnose(endpoint, env=env, dotenv_path=False, devices=False, voice=BAD_VOICE)
        code, out, err = await run_vlab(
            "doctor",
            "--no-devices",
            "--no-dotenv",
            "--endpoint",
            endpoint,
            "--voice",
            BAD_VOICE,
            env={**base_env(tmp_path), **env},
            cwd=tmp_path,
        )
    assert [c.status for c in report.checks] == ["ok"] * 5 + ["fail", "ok", "ok"], report.lines()
    assert report.get("voice").line() == line and not report.ok
    assert sent and not [s for s in sent if "voice" in s]
    assert code == 1, (out, err)
    assert [x for x in out.splitlines() if x.split(maxsplit=1)[0] in ("[FAIL]", "[warn]")] == [line]
    assert "Traceback" not in err


@pytest.mark.parametrize(("flags", "hears"), [([], True), (["--no-hear"], False)])
def test_the_emulator_command_reads_the_users_words_unless_told_not_to(monkeypatch, flags, hears):
    import vlab.emulator
    from vlab.cli import main

    made: list[dict[str, object]] = []

    class Stop(Exception):
        pass

    def emulator(**kwargs: object) -> None:
        made.append(kwargs)
        raise Stop

    monkeypatch.setattr(vlab.emulator, "Emulator", emulator)
    with pytest.raises(Stop):
        main(["emulator", "--port", "0", *flags])
    assert made[0]["hear_audio"] is hears


async def test_a_throttled_session_says_the_credential_was_accepted_and_the_service_throttles():
    from vlab.emulator import Fault

    async with fast_emulator(faults=[Fault("rate_limit", n=10, retry_after_s=0)]) as emu:
        report = await diagnose(
            emu.endpoint, env={"AZURE_VOICELIVE_API_KEY": emu.api_key}, dotenv_path=False, devices=False
        )
    statuses = {c.name: c.status for c in report.checks}
    assert (statuses["auth"], statuses["session"], statuses["voice"]) == ("ok", "fail", "skip")
    assert (
        report.get("auth").line()
        == "[ok]   auth            the credential was accepted (the service throttled the session)"
    )
    assert "the service is throttling (HTTP 429" in report.get("session").line() and not report.ok


@pytest.mark.parametrize(
    ("found", "status", "says"),
    [
        (
            [("mic", 2, 0, False), ("usb mic", 1, 0, True), ("out", 0, 2, False)],
            "ok",
            "microphone 'usb mic', speaker 'out'",
        ),
        ([("out", 0, 2, False)], "warn", "no microphone found (replays and sweeps need none)"),
        ([("mic", 2, 0, True), ("dead", 0, 0, False)], "warn", "no speaker found"),
        ([], "warn", "no microphone and speaker found"),
    ],
)
def test_the_device_check_names_the_default_microphone_and_speaker_or_what_is_missing(
    monkeypatch, found, status, says
):
    from vlab import doctor
    from vlab.audio import devices

    infos = [
        devices.DeviceInfo(i, name, "ALSA", cin, cout, 48000.0, default and cin > 0, default and cout > 0)
        for i, (name, cin, cout, default) in enumerate(found)
    ]
    monkeypatch.setattr(devices, "list_devices", lambda: infos)
    check = doctor._device_check()
    assert check.status == status and says in check.line(), check.line()
