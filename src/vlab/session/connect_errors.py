"""First contact: what a failed connection attempt means, in one line that says how to fix it.

:mod:`vlab.session.sdk_adapter` sorts a failed connect into a :class:`ConnectFailure` (a credential
that produced no token, HTTP 401/403/429 at the upgrade, DNS, TLS, a refused port, a timeout);
:func:`connect_error` turns it into the :class:`~vlab.errors.VlabError` a user sees:
:class:`~vlab.errors.AuthenticationFailed` (naming the credential sources tried and the fix),
:class:`~vlab.errors.Throttled` (with the wait the service asked for) or
:class:`~vlab.errors.ConnectionFailed`. Every message is one line and passes through the redactor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlsplit

from vlab.endpoint import ENV_API_KEY, ENV_ENDPOINT
from vlab.errors import AuthenticationFailed, ConnectionFailed, Throttled
from vlab.session.link import WireError
from vlab.session.reconnect import connect_advice

if TYPE_CHECKING:
    from vlab.endpoint import Target

FailureKind = Literal[
    "credential",
    "unauthorized",
    "forbidden",
    "throttled",
    "dns",
    "tls",
    "refused",
    "timeout",
    "http",
    "other",
]
"""How connecting failed: ``credential`` (no token), ``unauthorized`` (HTTP 401), ``forbidden`` (403),
``throttled`` (429), ``dns``, ``tls``, ``refused`` (nothing listens), ``timeout``, ``http`` (another
status at the upgrade) or ``other``."""

ROLE: Final = "Cognitive Services User"
"""The Azure role an Entra ID identity needs on the resource to open Voice Live sessions."""

RATE_LIMIT_CODES: Final = frozenset({"rate_limit_exceeded", "too_many_requests", "429"})
"""Error codes of an ``error`` event by which the service says a session hit its rate limit."""

_ROLE_FIX: Final = (
    f"give your identity the '{ROLE}' role on the resource (Azure portal → the resource → Access control "
    f'(IAM), or `az role assignment create --role "{ROLE}" --assignee <you> --scope <resource id>`; it '
    "takes a few minutes to apply)"
)


@dataclass(frozen=True, slots=True)
class ConnectFailure:
    """Why one connection attempt failed, sorted for the user (the detail is not yet redacted)."""

    kind: FailureKind
    """How it failed."""
    detail: str
    """The transport's or the credential's own words, on one line (may hold a secret: redact it)."""
    status: int | None = None
    """The HTTP status of a refused upgrade."""
    retry_after_s: float | None = None
    """The ``Retry-After`` the service sent with a 429, in seconds."""
    sources: tuple[str, ...] = ()
    """``credential``: each credential source tried, with its reason (``"AzureCliCredential: not found"``)."""


class ConnectRefused(WireError):
    """A connection could not be opened; :attr:`failure` says why (the message is the transport's)."""

    def __init__(self, failure: ConnectFailure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def one_line(text: str, limit: int = 300) -> str:
    """``text`` with its whitespace runs collapsed to single spaces, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_ATTEMPTED = re.compile(r"^\s*(\w+Credential):\s*(.*)$")


def credential_sources(message: str) -> tuple[str, ...]:
    """The sources a chained credential (``DefaultAzureCredential``) tried, from its error message.

    Returns:
        ``"Name: first sentence of its reason"`` for each line ``Name: reason`` of the message.
    """
    sources = []
    for line in message.splitlines():
        match = _ATTEMPTED.match(line)
        if match and "Credential failed to retrieve" not in line:
            name, reason = match.groups()
            reason = reason.replace(f"{name} authentication unavailable. ", "").replace(f"{name} ", "")
            sentence = re.split(r"(?<=[.!?])\s", reason.strip(), maxsplit=1)[0].rstrip(".")
            sources.append(f"{name}: {one_line(sentence, 90)}")
    return tuple(sources)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds; an HTTP date is not used)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def throttled_in_session(code: str | None, message: str | None, where: str) -> Throttled | None:
    """The error for a rate-limit ``error`` event during a session (None when ``code`` is another error)."""
    if code not in RATE_LIMIT_CODES:
        return None
    return Throttled(
        f"the service throttled the session ({code}: {one_line(message or '')}) for {where}. Fix: wait and "
        "retry, lower a sweep's [run] concurrency, or raise the deployment's quota"
    )


def _host(target: Target) -> str:
    try:
        parts = urlsplit(target.endpoint or "")
        return f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "the endpoint"


def _a_local_emulator(target: Target) -> bool:
    """Whether ``target`` is plain HTTP on this machine: a ``vlab emulator`` (Azure serves only TLS).

    An ``https://`` endpoint on this machine may forward to a resource (an SSH tunnel, say): its key comes
    from the resource.
    """
    return target.on_this_machine and urlsplit(target.endpoint or "").scheme in ("http", "ws")


def connect_error(target: Target, failure: ConnectFailure, redact: Callable[[str], str]) -> ConnectionFailed:
    """The one-line error for a failed connection to ``target`` (what failed, then the fix).

    Args:
        target: Where the session tried to connect (described without its key).
        failure: Why it failed.
        redact: Removes secrets from the transport's words.

    Returns:
        :class:`~vlab.errors.AuthenticationFailed`, :class:`~vlab.errors.Throttled` or
        :class:`~vlab.errors.ConnectionFailed`.
    """
    where = target.describe()
    detail = redact(one_line(failure.detail))
    if failure.kind == "credential":
        return _credential_error(where, failure, detail, redact)
    if failure.kind in ("unauthorized", "forbidden"):
        return _refused_error(target, where, failure.kind == "forbidden")
    if failure.kind == "throttled":
        wait = (
            f"; it asks to retry after {failure.retry_after_s:g} s"
            if failure.retry_after_s is not None
            else ""
        )
        return Throttled(
            f"the service is throttling (HTTP 429: the rate or concurrent-session limit of the resource is "
            f"reached) for {where}{wait}. Fix: wait and retry, lower a sweep's [run] concurrency, or raise "
            "the deployment's quota",
            retry_after_s=failure.retry_after_s,
        )
    return _network_error(target, where, failure, detail)


def _credential_error(
    where: str, failure: ConnectFailure, detail: str, redact: Callable[[str], str]
) -> AuthenticationFailed:
    """No Entra ID token: the sources tried (each with its reason) and what to set or run."""
    if failure.sources:
        tried = "; ".join(redact(s) for s in failure.sources)
        last = failure.sources[-1]
        app = (
            "check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (the app's secret may be wrong "
            "or expired), "
            if last.startswith("EnvironmentCredential:") and "not fully configured" not in last
            else ""
        )
        return AuthenticationFailed(
            f"no Entra ID credential produced a token for {where} (tried {tried}). Fix: {app}run `az login` "
            f"(and `az account set` to the resource's subscription), or set {ENV_API_KEY} to the "
            "resource's key",
            sources=tuple(s.split(":", 1)[0] for s in failure.sources),
        )
    return AuthenticationFailed(
        f"the token credential failed to get a token for {where}: {detail}. Fix: check the credential's "
        f"settings (tenant, client id, secret), run `az login`, or set {ENV_API_KEY} to the resource's key"
    )


def _refused_error(target: Target, where: str, forbidden: bool) -> AuthenticationFailed:
    """HTTP 401 (the key or token refused) or 403 (``forbidden``: no role, or the network rules)."""
    if forbidden:
        if target.auth == "entra_id":
            return AuthenticationFailed(
                f"your Entra ID identity lacks the '{ROLE}' role on the resource (HTTP 403) for {where}. "
                f"Fix: {_ROLE_FIX}"
            )
        return AuthenticationFailed(
            f"the resource denied access (HTTP 403) for {where}. Fix: check the resource's networking "
            "rules (firewall, private endpoint) allow this machine"
        )
    if target.auth == "entra_id":
        return AuthenticationFailed(
            f"the endpoint refused the Entra ID token (HTTP 401) for {where}. Fix: sign in to the "
            f"resource's tenant (`az login --tenant <tenant id>`) and {_ROLE_FIX}; or set {ENV_API_KEY}"
        )
    if _a_local_emulator(target):
        return AuthenticationFailed(
            f"the endpoint refused the API key (HTTP 401) for {where}. Fix: set {ENV_API_KEY} to the key "
            "the emulator printed as it started (`vlab emulator --api-key <key>` chooses it)"
        )
    return AuthenticationFailed(
        f"the endpoint refused the API key (HTTP 401) for {where}. Fix: copy a key from the resource's "
        f"'Keys and Endpoint' page into {ENV_API_KEY}, and check that {ENV_ENDPOINT} is that resource's "
        "endpoint"
    )


def _network_error(target: Target, where: str, failure: ConnectFailure, detail: str) -> ConnectionFailed:
    """DNS, TLS, a refused port, a timeout, another HTTP answer, or else the transport's words and advice."""
    kind = failure.kind
    if kind == "dns":
        return ConnectionFailed(
            f"cannot resolve {_host(target)} (DNS: {detail}). Fix: check the resource name in {ENV_ENDPOINT} "
            "(e.g. https://<resource>.services.ai.azure.com), your network or VPN"
        )
    if kind == "tls":
        return ConnectionFailed(
            f"the TLS handshake with {_host(target)} failed ({detail}). Fix: if a proxy inspects TLS, point "
            "SSL_CERT_FILE at its CA bundle; check the system clock and that the endpoint is the resource's"
        )
    if kind == "refused":
        return ConnectionFailed(
            f"nothing accepts connections at {_host(target)} ({detail}). Fix: check the port in "
            f"{ENV_ENDPOINT}; for a local emulator, start it with `vlab emulator`"
        )
    if kind == "timeout":
        return ConnectionFailed(
            f"connecting to {_host(target)} timed out ({detail}). Fix: check the network, proxies and "
            "firewalls (WebSockets on port 443 must be allowed)"
        )
    if kind == "http":
        return ConnectionFailed(
            f"the endpoint answered HTTP {failure.status} instead of opening a Voice Live session for {where}. "
            f"Fix: use the resource endpoint itself (https://<resource>.services.ai.azure.com, no path) in "
            f"{ENV_ENDPOINT}"
        )
    return ConnectionFailed(connect_advice(target, detail))


def in_places(text: str, places: Mapping[str, str]) -> str:
    """``text`` (an error) with each name in ``places`` replaced by the place it stands for.

    The errors of a connection name where a setting is read from (``AZURE_VOICELIVE_ENDPOINT``, "the
    endpoint argument"); a caller that knows where its user set it (a command-line option, a box of a
    form) names that instead.
    """
    if not places:
        return text
    pattern = "|".join(re.escape(name) for name in places)
    return re.sub(pattern, lambda match: places[match.group(0)], text)
