"""``vlab doctor``: can a session start here? Ordered checks, one line each, with the fix when one fails.

:func:`diagnose` runs, in order:

1. **target** — where vlab will connect (argument, environment, ``.env``), the endpoint's form, and
   whether it is the embedded emulator;
2. **dns** and **tls** — the host resolves, and its certificate is trusted;
3. **auth** — the API key, or which ``DefaultAzureCredential`` source produced a token, is accepted
   (a refusal names the fix, e.g. the *Cognitive Services User* role);
4. **session** — the model and api-version, by a real ``session.update`` → ``session.updated`` round trip;
5. **voice**, **turn detection**, **input formats** — which of them the service accepts;
6. **sound devices** — a microphone and a speaker (a warning only: replays and sweeps need none).

A check after a failed one is skipped, except that a voice asked for which a session's settings refuse
(:func:`vlab.settings.voice_to_wire`) always fails: that needs no connection, and the voice is never
sent. A fix that names where the endpoint or the key was set names its real source: the argument
(``--endpoint``), the environment variable, or the ``.env`` file. :attr:`DoctorReport.ok` (exit code 0)
means a session can start. Every wait runs on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

from vlab import protocol, protocol_limits
from vlab.clock import NS_PER_S, Clock, SystemClock, wait_until_ns
from vlab.endpoint import (
    ENV_API_KEY,
    ENV_API_VERSION,
    ENV_ENDPOINT,
    ENV_MODEL,
    ENV_OFFLINE,
    Target,
    offline_forced,
    resolve_target,
    setting_sources,
)
from vlab.errors import AuthenticationFailed, ConfigError, ConnectionFailed, Throttled, VlabError
from vlab.net import is_loopback

if TYPE_CHECKING:
    from vlab.session.connect_errors import FailureKind

__all__ = ["Check", "DoctorReport", "diagnose"]

Status = Literal["ok", "warn", "fail", "skip"]
MARKS: Final[Mapping[Status, str]] = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]", "skip": "[skip]"}
"""How each status is printed at the start of its line."""

VOICES: Final = ("alloy", "en-US-AvaNeural", "en-US-Ava:DragonHDLatestNeural")
"""Voices tried when none is asked for: an OpenAI voice, an Azure standard and an Azure HD voice."""

ORDER: Final = ("target", "dns", "tls", "auth", "session", "voice", "turn detection", "input formats")
"""The checks before the sound devices, in the order they are made and printed."""

_ARGUMENT: Final = "the endpoint argument"
"""How :func:`vlab.endpoint.setting_sources` names an endpoint given as an argument."""


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    """What was checked (``target``, ``dns``, ``tls``, ``auth``, ``session``, …)."""
    status: Status
    """``ok``, ``warn`` (works, but note this), ``fail`` (a session cannot start) or ``skip``."""
    summary: str
    """What was found, on one line (never a secret)."""
    fix: str = ""
    """What to do, when it failed or warned."""

    def line(self) -> str:
        """The printed line: mark, name, summary and fix."""
        fix = f" → fix: {self.fix}" if self.fix else ""
        return f"{MARKS[self.status]} {self.name:<15} {self.summary}{fix}"


@dataclass
class DoctorReport:
    """Every check, in order."""

    checks: list[Check] = field(default_factory=list)
    """The checks run (and skipped)."""

    @property
    def ok(self) -> bool:
        """Whether a session can start (no check failed)."""
        return all(c.status != "fail" for c in self.checks)

    def get(self, name: str) -> Check:
        """The check called ``name``."""
        return next(c for c in self.checks if c.name == name)

    def lines(self) -> list[str]:
        """One printed line per check, then the verdict."""
        verdict = (
            "a session can start."
            if self.ok
            else "a session cannot start; fix the first [FAIL] line and run `vlab doctor` again."
        )
        return [c.line() for c in self.checks] + [f"vlab doctor: {verdict}"]


_RESOURCE_FORMS: Final = (
    (".services.ai.azure.com", "an Azure AI Foundry resource endpoint (*.services.ai.azure.com)"),
    (".cognitiveservices.azure.com", "an Azure AI Services endpoint (*.cognitiveservices.azure.com)"),
)
"""The hosts of an Azure resource that serves Voice Live, and what ``vlab doctor`` calls each."""


def _resource_form(host: str) -> str | None:
    """What ``vlab doctor`` calls the Azure resource host ``host`` (lower case); None for any other host."""
    return next((name for suffix, name in _RESOURCE_FORMS if host.endswith(suffix)), None)


def endpoint_form(url: str) -> tuple[str, Status]:
    """What kind of endpoint ``url`` is, and whether that form works with Voice Live."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if is_loopback(host):
        return "a local emulator (e.g. `vlab emulator`)", "ok"
    resource = _resource_form(host)
    path = parts.path.rstrip("/")
    if resource is not None and path:  # a gateway's prefix is kept; a resource has none
        return (
            f"{resource} with a path ({path}): the resource serves Voice Live at its root, and the SDK "
            f"appends its own path (it would connect to …{path}{protocol.ROUTES[0]})",
            "warn",
        )
    if resource is not None:
        return resource, "ok"
    if host.endswith(".openai.azure.com"):
        return (
            "an Azure OpenAI endpoint (*.openai.azure.com): Voice Live is served on the resource's "
            f"{' or '.join(f'*{suffix}' for suffix, _ in _RESOURCE_FORMS)} endpoint",
            "warn",
        )
    return "a custom domain (make sure it fronts a Voice Live resource)", "ok"


async def diagnose(
    endpoint: str | None = None,
    *,
    model: str | None = None,
    api_version: str | None = None,
    voice: str | None = None,
    env: Mapping[str, str] | None = None,
    dotenv_path: Any = None,
    credential: Any = None,
    emulator_options: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    timeout_s: float = 15.0,
    devices: bool = True,
    endpoint_option: str | None = None,
) -> DoctorReport:
    """Run the checks in order (see the module docstring).

    Args:
        endpoint: The endpoint to check (else the environment, else ``.env``; none → embedded emulator).
        model: The model (else ``AZURE_VOICELIVE_MODEL``, else the default).
        api_version: The api-version (else ``AZURE_VOICELIVE_API_VERSION``, else the SDK's default).
        voice: A voice to check (default: :data:`VOICES`).
        env: Environment to read instead of ``os.environ``.
        dotenv_path: ``.env`` file (None searches upwards, False none).
        credential: An async token credential for Entra ID (default: ``DefaultAzureCredential``); given,
            no key from the environment or ``.env`` is read.
        emulator_options: Passed to the embedded emulator when no endpoint is configured.
        clock: The clock every timeout runs on.
        timeout_s: Limit of each network step.
        devices: Also check the sound devices.
        endpoint_option: What the fixes call ``endpoint`` when it is given: the command-line option it
            came from (``vlab doctor`` passes ``--endpoint``; default: the endpoint argument).

    Returns:
        The report; :attr:`DoctorReport.ok` says whether a session can start.
    """
    clock = clock or SystemClock()
    report = DoctorReport()
    checks = report.checks
    try:
        voices: list[tuple[str, dict[str, Any]]] | None = _voice_candidates(voice)
        bad_voice = None
    except ConfigError as exc:  # a session's settings refuse it: nothing to ask the service
        voices, bad_voice = None, _bad_voice_check(exc)

    def finish(why: str) -> DoctorReport:
        """Skip (``why``) each check not made, but fail a bad voice; in order, then the sound devices."""
        done = {c.name for c in checks}
        for name in ORDER:
            if name not in done:
                checks.append(bad_voice if name == "voice" and bad_voice else Check(name, "skip", why))
        checks.sort(key=lambda c: ORDER.index(c.name))
        return _with_devices(report, devices)

    try:
        target = resolve_target(
            endpoint,
            None,
            model,
            api_version=api_version,
            env=env,
            dotenv_path=dotenv_path,
            entra_id=credential is not None,
        )
        sources = setting_sources(endpoint, env=env, dotenv_path=dotenv_path)
    except ConfigError as exc:
        fix = str(exc)
        if endpoint_option and (endpoint or "").strip():  # "The endpoint from the endpoint argument …"
            fix = fix.replace(_ARGUMENT, endpoint_option)
        checks.append(Check("target", "fail", "the endpoint configuration is invalid", fix))
        return finish("not checked: the target check failed")
    checks.append(
        _target_check(target, sources, offline=offline_forced(env), endpoint_option=endpoint_option)
    )
    places = _places(target, sources, endpoint_option)

    from vlab.session.connector import Connector

    connector = Connector(target=target, credential=credential, emulator_options=emulator_options)
    try:
        async with connector:
            target = connector.target
            failed = await _network_checks(target, checks, clock, timeout_s, places)
            if failed is not None:
                return finish(f"not checked: the {failed} check failed")
            await _session_checks(connector, checks, clock, timeout_s, voice, voices, places)
    except VlabError as exc:  # e.g. the embedded emulator could not start
        checks.append(Check("session", "fail", str(exc)))
    return finish("not checked: an earlier check failed")


def _place(source: str, variable: str, option: str | None) -> str:
    """What a fix calls where a setting was set: ``option`` (argument), ``variable`` or the ``.env`` line."""
    if source == f"environment variable {variable}":
        return variable
    if source == _ARGUMENT and option:
        return option
    return source


def _places(target: Target, sources: Mapping[str, str], option: str | None) -> dict[str, str]:
    """Each variable a fix names → where that setting was really set (only the endpoint and key in use)."""
    places = {}
    if target.kind == "azure" and "endpoint" in sources:
        places[ENV_ENDPOINT] = _place(sources["endpoint"], ENV_ENDPOINT, option)
    if target.auth == "api_key" and "api_key" in sources:
        places[ENV_API_KEY] = _place(sources["api_key"], ENV_API_KEY, None)
    return places


def _target_check(
    target: Target, sources: Mapping[str, str], *, offline: bool, endpoint_option: str | None = None
) -> Check:
    if target.kind == "emulator":
        why = f"{ENV_OFFLINE} is set" if offline else "no endpoint configured"
        return Check("target", "ok", f"{why} → the embedded emulator (offline), model {target.model}")
    where = sources.get("endpoint", _ARGUMENT)
    auth = (
        f"API key from {sources['api_key']}"
        if target.auth == "api_key"
        else "no API key → Entra ID (DefaultAzureCredential)"
    )
    form, status = endpoint_form(target.endpoint or "")
    summary = f"{target.describe()} — endpoint from {where}; {auth}; {form}"
    host = (urlsplit(target.endpoint or "").hostname or "").lower()
    root = f"https://{host}" if _resource_form(host) else "https://<resource>.services.ai.azure.com"
    fix = "" if status == "ok" else f"set {_place(where, ENV_ENDPOINT, endpoint_option)} to {root}"
    return Check("target", status, summary, fix)


async def _network_checks(
    target: Target, checks: list[Check], clock: Clock, timeout_s: float, places: Mapping[str, str]
) -> str | None:
    """DNS, then TCP and TLS; the name of the check that failed (it says why), or None."""
    parts = urlsplit(target.endpoint or "")
    host = parts.hostname or ""
    secure = parts.scheme in ("https", "wss")
    port = parts.port or (443 if secure else 80)
    deadline = clock.monotonic_ns() + round(timeout_s * NS_PER_S)
    loop = asyncio.get_running_loop()
    try:
        infos = await wait_until_ns(clock, loop.getaddrinfo(host, port), deadline)
    except (OSError, TimeoutError) as exc:
        checks.append(_failed("dns", target, "dns", str(exc) or "timed out", places))
        return "dns"
    addresses = sorted({str(info[4][0]) for info in infos})
    checks.append(Check("dns", "ok", f"{host} → {', '.join(addresses[:3])}"))
    context = None
    if secure:
        from vlab.session.sdk_adapter import tls_context

        context = tls_context()
    deadline = clock.monotonic_ns() + round(timeout_s * NS_PER_S)
    try:
        _, writer = await wait_until_ns(
            clock,
            asyncio.open_connection(host, port, ssl=context, server_hostname=host if secure else None),
            deadline,
        )
    except Exception as exc:  # ssl.SSLError, OSError, TimeoutError: each is a finding, not a crash
        import ssl

        kind: FailureKind = (
            "tls"
            if isinstance(exc, ssl.SSLError)
            else "timeout"
            if isinstance(exc, TimeoutError)
            else "refused"
        )
        checks.append(_failed("tls", target, kind, str(exc) or "timed out", places))
        return "tls"
    try:
        if secure:
            tls = writer.get_extra_info("ssl_object")
            cert = writer.get_extra_info("peercert") or {}
            issuer = dict(x[0] for x in cert.get("issuer", ())).get("commonName", "?")
            checks.append(
                Check("tls", "ok", f"{tls.version() if tls else 'TLS'}, certificate issued by {issuer}")
            )
        elif is_loopback(host):
            checks.append(Check("tls", "ok", f"plain HTTP to {host}:{port} on this machine (no TLS needed)"))
        else:
            checks.append(
                Check(
                    "tls",
                    "warn",
                    f"plain HTTP to {host}:{port}: nothing is encrypted",
                    "use https:// (Azure endpoints are https)",
                )
            )
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return None


def _failed(name: str, target: Target, kind: FailureKind, detail: str, places: Mapping[str, str]) -> Check:
    """A failed network check, in the words (and with the fix) a session's connection error uses."""
    from vlab.session.connect_errors import ConnectFailure, connect_error, in_places
    from vlab.session.reconnect import redact

    error = connect_error(target, ConnectFailure(kind, detail), lambda text: redact(text, target))
    what, _, fix = in_places(str(error), places).partition(". Fix: ")
    return Check(name, "fail", what, fix)


async def _session_checks(
    connector: Any,
    checks: list[Check],
    clock: Clock,
    timeout_s: float,
    voice: str | None,
    voices: list[tuple[str, dict[str, Any]]] | None,
    places: Mapping[str, str],
) -> None:
    """Connect (auth), then the session round trip and what the service accepts."""
    from vlab.session.connect_errors import in_places

    target: Target = connector.target
    try:
        wire = await connector.open_wire()
    except (AuthenticationFailed, Throttled, ConnectionFailed) as exc:
        message = in_places(str(exc), places)
        what, _, fix = message.partition(". Fix: ")
        name = "session" if isinstance(exc, Throttled) else "auth"
        if name == "session":
            checks.append(
                Check("auth", "ok", "the credential was accepted (the service throttled the session)")
            )
        checks.append(Check(name, "fail", what, fix))
        return
    checks.append(Check("auth", "ok", _auth_summary(target, connector.credential)))
    try:
        await _round_trips(wire, target, checks, clock, timeout_s, voice, voices)
    finally:
        await wire.close()


def _auth_summary(target: Target, credential: Any) -> str:
    if target.auth == "emulator":
        return "the emulator's own key was accepted"
    if target.auth == "api_key":
        return "the API key was accepted"
    inner = getattr(credential, "_successful_credential", None)  # which source DefaultAzureCredential used
    source = type(inner).__name__ if inner is not None else type(credential).__name__
    return f"an Entra ID token from {source} was accepted (your identity has the needed role)"


class _Conversation:
    """Sends one client event at a time and reads until the server answers it."""

    def __init__(self, wire: Any, clock: Clock, timeout_s: float) -> None:
        self.wire = wire
        self.clock = clock
        self.timeout_s = timeout_s
        self.emulated = False
        self.counter = 0

    async def recv(self) -> dict[str, Any]:
        deadline = self.clock.monotonic_ns() + round(self.timeout_s * NS_PER_S)
        raw = await wait_until_ns(self.clock, self.wire.recv_bytes(), deadline)
        event = json.loads(raw)
        if protocol.SIM_MS_KEY in event:
            self.emulated = True
        return event if isinstance(event, dict) else {}

    async def update(self, session: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None, float]:
        """Send ``session.update``; returns (the updated session, or None; the error message; ms taken)."""
        self.counter += 1
        t0 = self.clock.monotonic_ns()
        await self.wire.send(
            {
                "type": protocol.CLIENT_SESSION_UPDATE,
                "event_id": f"doctor_{self.counter}",
                "session": dict(session),
            }
        )
        while True:
            event = await self.recv()
            if event.get("type") == protocol.SESSION_UPDATED:
                return event.get("session") or {}, None, (self.clock.monotonic_ns() - t0) / 1e6
            if event.get("type") == "error":
                error = event.get("error") or {}
                message = f"{error.get('code') or error.get('type')}: {error.get('message')}"
                return None, message, (self.clock.monotonic_ns() - t0) / 1e6


async def _round_trips(
    wire: Any,
    target: Target,
    checks: list[Check],
    clock: Clock,
    timeout_s: float,
    voice: str | None,
    voices: list[tuple[str, dict[str, Any]]] | None,
) -> None:
    """Session round trips: the model, then each voice (None: not to be sent), turn detection and format."""
    from vlab.settings import SessionSettings

    talk = _Conversation(wire, clock, timeout_s)
    try:
        created = await talk.recv()
    except TimeoutError:
        checks.append(
            Check(
                "session",
                "fail",
                f"no session.created within {timeout_s:g} s",
                "check that the endpoint is a Voice Live endpoint",
            )
        )
        return
    if created.get("type") != protocol.SESSION_CREATED:
        checks.append(
            Check(
                "session",
                "fail",
                f"the server's first event is {created.get('type')!r}, not session.created",
                "check that the endpoint is a Voice Live endpoint",
            )
        )
        return
    try:
        # the checks below try turn detection and input formats one at a time, so a refused one is
        # reported on its own line rather than as a refused model
        settings = {
            k: v
            for k, v in SessionSettings(model=target.model).to_wire().items()
            if k not in ("turn_detection", "input_audio_format", "input_audio_sampling_rate")
        }
    except ConfigError as exc:
        checks.append(Check("session", "fail", str(exc)))
        return
    server = "a vlab emulator" if talk.emulated else "the service"
    try:
        session, error, ms = await talk.update(settings)
    except TimeoutError:
        checks.append(Check("session", "fail", f"no answer to session.update within {timeout_s:g} s", ""))
        return
    model = (session or created.get("session") or {}).get("model") or target.model
    if session is None:
        checks.append(
            Check(
                "session",
                "fail",
                f"{server} refused session.update for model {target.model} (api-version "
                f"{target.api_version}): {error}",
                f"set {ENV_MODEL} (or --model) to a model the resource serves, or {ENV_API_VERSION} "
                "(or --api-version) to a supported api-version",
            )
        )
        return
    checks.append(
        Check(
            "session",
            "ok",
            f"model {model}, api-version {target.api_version}: session.update → session.updated in "
            f"{ms:.0f} ms ({server})",
        )
    )
    if voices is not None:  # else the voice check has failed already, without asking the service
        checks.append(await _accepted(talk, "voice", voices, voice))
    td_types = protocol_limits.TURN_DETECTION_TYPES
    checks.append(
        await _accepted(
            talk,
            "turn detection",
            [(t, {"turn_detection": {"type": t}}) for t in td_types],
            protocol_limits.SERVER_VAD,
        )
    )
    formats = [(f, {"input_audio_format": f}) for f in protocol.INPUT_FORMATS]
    checks.append(await _accepted(talk, "input formats", formats, "pcm16"))


def _voice_candidates(voice: str | None) -> list[tuple[str, dict[str, Any]]]:
    """Each voice to try (``voice``, else :data:`VOICES`) with its ``session.update``.

    Raises:
        ConfigError: A session's settings refuse ``voice`` (:func:`vlab.settings.voice_to_wire`'s rule).
    """
    from vlab.settings import voice_to_wire

    names = (voice,) if voice is not None else VOICES
    return [(name, {"voice": voice_to_wire(name)}) for name in names]


def _bad_voice_check(error: ConfigError) -> Check:
    """The failed ``voice`` check of a voice a session's settings refuse, in their words."""
    return Check(
        "voice",
        "fail",
        str(error),
        f"give --voice a voice of one of those forms (e.g. {VOICES[0]} or {VOICES[1]}), or leave --voice "
        f"out to check {', '.join(VOICES[:-1])} and {VOICES[-1]}",
    )


async def _accepted(
    talk: _Conversation, name: str, candidates: list[tuple[str, dict[str, Any]]], required: str | None
) -> Check:
    """Which candidates the service accepts; fails when ``required`` is refused."""
    accepted: list[str] = []
    refused: list[str] = []
    for label, session in candidates:
        try:
            result, error, _ = await talk.update(session)
        except TimeoutError:
            return Check(name, "fail", f"no answer to session.update within {talk.timeout_s:g} s")
        (accepted if result is not None else refused).append(
            label if result is not None else f"{label} ({error})"
        )
    summary = "accepted: " + (", ".join(accepted) or "none")
    if refused:
        summary += "; refused: " + "; ".join(refused)
    if required is not None and required not in accepted:
        return Check(
            name,
            "fail",
            summary,
            f"{required!r} is refused: choose an accepted value, or check the api-version",
        )
    if not accepted:
        return Check(name, "fail", summary, "check the model and api-version")
    if refused:
        return Check(
            name,
            "warn",
            summary,
            "use only the accepted ones here (another model or api-version may accept the rest)",
        )
    return Check(name, "ok", summary)


def _with_devices(report: DoctorReport, devices: bool) -> DoctorReport:
    if devices:
        report.checks.append(_device_check())
    return report


def _device_check() -> Check:
    from vlab.errors import DeviceError

    try:
        from vlab.audio.devices import list_devices

        found = list_devices()
    except DeviceError as exc:
        return Check("sound devices", "warn", str(exc), "only live microphone/speaker sessions need them")
    mics = [d for d in found if d.max_input_channels > 0]
    speakers = [d for d in found if d.max_output_channels > 0]
    if not mics or not speakers:
        missing = " and ".join(w for w, devs in (("microphone", mics), ("speaker", speakers)) if not devs)
        return Check(
            "sound devices",
            "warn",
            f"no {missing} found (replays and sweeps need none)",
            "connect one, or on a headless machine start a virtual sound card (see `vlab devices`)",
        )
    mic = next((d for d in mics if d.is_default_input), mics[0])
    speaker = next((d for d in speakers if d.is_default_output), speakers[0])
    return Check("sound devices", "ok", f"microphone {mic.name!r}, speaker {speaker.name!r}")
