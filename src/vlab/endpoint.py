"""Where a session connects: an Azure Voice Live endpoint or the embedded emulator.

:func:`resolve_target` decides from explicit arguments, the environment and a ``.env`` file::

    endpoint + API key   → Azure, ``api-key`` header            (auth="api_key")
    endpoint, no key     → Azure, Entra ID bearer token          (auth="entra_id")
    nothing              → the embedded emulator on loopback     (auth="emulator")

Keys are wrapped in :class:`Secret` so they never show up in reprs, logs, notebooks or error
messages. The Azure SDK, ``azure.identity`` and the emulator are imported only when needed.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import SplitResult, parse_qs, urlsplit

from vlab import protocol
from vlab.errors import ConfigError, check_keywords
from vlab.net import is_loopback

if TYPE_CHECKING:
    from azure.core.credentials import AzureKeyCredential
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = [
    "ENV_API_KEY",
    "ENV_API_VERSION",
    "ENV_ENDPOINT",
    "ENV_MODEL",
    "ENV_OFFLINE",
    "Secret",
    "Target",
    "make_credential",
    "offline_forced",
    "open_target",
    "resolve_target",
    "setting_sources",
]

ENV_ENDPOINT: Final = "AZURE_VOICELIVE_ENDPOINT"
"""Environment variable with the resource endpoint, e.g. ``https://<resource>.services.ai.azure.com``."""
ENV_API_KEY: Final = "AZURE_VOICELIVE_API_KEY"
"""Environment variable with the resource API key (leave unset to use Entra ID)."""
ENV_MODEL: Final = "AZURE_VOICELIVE_MODEL"
"""Environment variable with the model name (default ``gpt-realtime``)."""
ENV_API_VERSION: Final = "AZURE_VOICELIVE_API_VERSION"
"""Environment variable with the api-version query parameter."""
ENV_OFFLINE: Final = "VLAB_OFFLINE"
"""Environment variable that, set to 1, makes :func:`resolve_target` ignore the endpoint and key named in
the environment and ``.env``, so sessions use the embedded emulator, as in ``vlab demo`` (an explicit
argument still wins)."""

ENDPOINT_EXAMPLE: Final = "https://<resource>.services.ai.azure.com"
"""Shape of a valid endpoint, shown in error messages."""

_SCHEMES: Final = ("http", "https", "ws", "wss")

TargetKind = Literal["azure", "emulator"]
AuthKind = Literal["api_key", "entra_id", "emulator"]


# --- secrets ---------------------------------------------------------------------------------------


class Secret:
    """A credential that never prints itself.

    ``repr``, ``str`` and ``format`` all give ``Secret('****')``; :meth:`reveal` returns the value.
    Secrets compare equal when their values are equal (in constant time). ``json.dumps`` refuses a
    Secret like any other unknown object.

    Args:
        value: The credential, a non-empty string.

    Raises:
        TypeError: ``value`` is not a string (the message does not include it).
        ConfigError: ``value`` is empty or blank.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"Secret needs a str, got a {type(value).__name__}.")
        if not value.strip():
            raise ConfigError("A credential is empty; set a non-empty API key or leave it unset.")
        self._value = value

    def reveal(self) -> str:
        """The credential itself: pass it straight to the SDK, never to print or log."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


# --- targets ---------------------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    """The URL without user info, query or fragment (which might carry a credential)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if not parts.netloc:
        return "<not a URL>"
    tail = "?…" if parts.query or parts.fragment else ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 address, bracketed as in the URL
    return f"{parts.scheme}://{host}{port}{parts.path}{tail}"


@dataclass(frozen=True, slots=True, repr=False)
class Target:
    """A resolved connection target (see :func:`resolve_target`)."""

    kind: TargetKind
    """``"azure"`` or ``"emulator"``."""
    endpoint: str | None
    """Endpoint URL passed to the SDK; ``None`` for an emulator that has not been started yet."""
    api_key: Secret | None
    """API key, or ``None`` (Entra ID, or an emulator not started yet)."""
    model: str
    """Model name for the connection URL."""
    auth: AuthKind
    """``"api_key"``, ``"entra_id"`` or ``"emulator"`` (the emulator's own key)."""
    api_version: str = protocol.DEFAULT_API_VERSION
    """The ``api-version`` query parameter. Defaults to the SDK's default."""

    def __post_init__(self) -> None:
        if self.kind not in ("azure", "emulator"):
            raise ConfigError(f"Target.kind must be 'azure' or 'emulator', got {self.kind!r}.")
        if self.auth not in ("api_key", "entra_id", "emulator"):
            raise ConfigError(f"Target.auth must be 'api_key', 'entra_id' or 'emulator', got {self.auth!r}.")
        if self.api_key is not None and not isinstance(self.api_key, Secret):
            raise TypeError("Target.api_key must be a Secret (wrap the key: Secret(key)) or None.")
        if (self.kind == "emulator") != (self.auth == "emulator"):
            raise ConfigError(f"Target.auth={self.auth!r} does not fit kind={self.kind!r}.")
        if self.auth == "api_key" and self.api_key is None:
            raise ConfigError("Target.auth='api_key' needs an api_key.")
        if self.kind == "azure" and not self.endpoint:
            raise ConfigError(f"An Azure target needs an endpoint such as {ENDPOINT_EXAMPLE}.")

    @property
    def started(self) -> bool:
        """Whether the target can be connected to (Azure, or an emulator that is running)."""
        return self.endpoint is not None

    @property
    def on_this_machine(self) -> bool:
        """Whether the endpoint is on this machine (loopback): a ``vlab emulator``, say, not a service."""
        return self.kind == "emulator" or is_loopback(urlsplit(_safe_url(self.endpoint or "")).hostname or "")

    def describe(self, *, models: Sequence[str] = ()) -> str:
        """One safe line for notebooks and logs, e.g. ``Azure endpoint https://x.services.ai.azure.com (Entra ID)``.

        An endpoint on this machine (a ``vlab emulator``, say) is ``endpoint http://127.0.0.1:8765 on this
        machine``.

        Args:
            models: The models the connections ask for instead of :attr:`model` (a sweep's ``[grid] model``).
        """
        model = f"models {', '.join(models)}" if models else f"model {self.model}"
        if self.kind == "emulator":
            where = f" at {_safe_url(self.endpoint)}" if self.endpoint else ""
            return f"embedded emulator{where}, {model}"
        how = {"api_key": "API key", "entra_id": "Entra ID"}.get(self.auth, self.auth)
        url = _safe_url(self.endpoint or "")
        if self.on_this_machine:
            return f"endpoint {url} on this machine ({how}), {model}"
        return f"Azure endpoint {url} ({how}), {model}"

    def __repr__(self) -> str:
        endpoint = None if self.endpoint is None else _safe_url(self.endpoint)
        return (
            f"Target(kind={self.kind!r}, endpoint={endpoint!r}, api_key={self.api_key!r}, "
            f"model={self.model!r}, auth={self.auth!r}, api_version={self.api_version!r})"
        )

    __str__ = __repr__


# --- resolution ------------------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _refuse_what_the_sdk_adds(source: str, parts: SplitResult) -> None:
    """Refuse a session path or an ``api-version``/``model`` query in an endpoint: the SDK adds its own."""
    path = parts.path.rstrip("/")
    route = next((r for r in protocol.ROUTES if path.endswith(r)), None)
    given = [name for name in protocol.SDK_QUERY_PARAMETERS if name in parse_qs(parts.query)]
    if route is None and not given:
        return
    problems = []
    if route is not None:
        path = path[: -len(route)]
        problems.append(
            f"ends with {route}, which the SDK appends itself (it would connect to …{route}{protocol.ROUTES[0]})"
        )
    if given:
        problems.append(f"gives {' and '.join(given)} in its query, which the SDK ignores (it sets its own)")
    settings = {"api-version": ENV_API_VERSION, "model": ENV_MODEL}
    instead = f", and set {' and '.join(settings[name] for name in given)}" if given else ""
    raise ConfigError(
        f"The endpoint from {source} {'; it '.join(problems)}. Give it as "
        f"{_safe_url(f'{parts.scheme}://{parts.netloc}{path}')!r}{instead}."
    )


def _validate_endpoint(endpoint: str, source: str, key: str | None) -> str:
    fix = f"Use the resource endpoint, e.g. {ENDPOINT_EXAMPLE}."
    if key and key in endpoint:
        raise ConfigError(f"The endpoint from {source} contains the API key (not shown). {fix}")
    bad_port = False
    try:
        parts = urlsplit(endpoint)
        scheme, host = parts.scheme.lower(), parts.hostname
        parts.port  # noqa: B018 (raises on a port that is not one)
    except ValueError as exc:  # its text may quote what stands for the port: not shown
        scheme, host = "", None
        bad_port = "port" in str(exc).lower()
    if scheme in _SCHEMES and host:
        _refuse_what_the_sdk_adds(source, parts)
        return endpoint
    if not any(c in endpoint for c in ".:/"):
        # No scheme, dot or slash: possibly a key pasted into the wrong variable, so do not echo it.
        raise ConfigError(
            f"The endpoint from {source} is not a URL (value not shown in case it is a key; are endpoint "
            f"and key swapped?). {fix}"
        )
    shown = _safe_url(endpoint) if "@" in endpoint or "?" in endpoint or "#" in endpoint else endpoint
    if bad_port:
        shown = _safe_url(endpoint.rsplit(":", 1)[0]) + ":…"
        raise ConfigError(
            f"The endpoint from {source} has a port that is not a number from 0 to 65535, got {shown!r}. {fix}"
        )
    if len(endpoint) > 1 and endpoint[0] == endpoint[-1] and endpoint[0] in "'\"":
        fix = f"Remove the quotes around it. {fix}"
    elif "://" not in endpoint and "." in (host := endpoint.split("/", 1)[0]) and not set(host) & set("@?#"):
        fix = f"Add the scheme: https://{host} (the resource endpoint, no path)."
    raise ConfigError(
        f"The endpoint from {source} must be an http(s) or ws(s) URL with a host, got {shown!r}. {fix}"
    )


def _load_dotenv(dotenv_path: str | os.PathLike[str] | bool | None) -> tuple[dict[str, str | None], str]:
    """Read a .env file without touching ``os.environ``; returns the values and a description."""
    if dotenv_path is False:
        return {}, ""
    from dotenv import dotenv_values, find_dotenv

    if dotenv_path is None or dotenv_path is True:
        path = find_dotenv(usecwd=True)
        if not path:
            return {}, ""
    else:
        path = os.fspath(dotenv_path)
        if not os.path.isfile(path):
            raise ConfigError(
                f"dotenv_path {path!r} is not a file. Pass an existing .env path, None (search from the "
                "current directory) or False (no .env file)."
            )
    return dict(dotenv_values(path)), f".env file {path}"


def _picker(
    env: Mapping[str, str] | None, dotenv_path: str | os.PathLike[str] | bool | None
) -> Callable[[str | None, str, str], tuple[str | None, str]]:
    """``pick(explicit, variable, argument)`` → the value and where it came from (argument, env, .env)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    dotenv, dotenv_source = _load_dotenv(dotenv_path)

    def pick(explicit: str | None, name: str, argument: str) -> tuple[str | None, str]:
        value = _clean(explicit)
        if value is not None:
            return value, f"the {argument} argument"
        value = _clean(environ.get(name))
        if value is not None:
            return value, f"environment variable {name}"
        value = _clean(dotenv.get(name))
        if value is not None:
            return value, f"{name} in the {dotenv_source}"
        return None, ""

    return pick


def offline_forced(env: Mapping[str, str] | None = None) -> bool:
    """``VLAB_OFFLINE`` (:data:`ENV_OFFLINE`) is set, and not to 0, in ``env`` (default ``os.environ``)."""
    value = _clean((os.environ if env is None else env).get(ENV_OFFLINE))
    return value not in (None, "0")


def setting_sources(
    endpoint: str | None = None,
    api_key: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | bool | None = None,
) -> dict[str, str]:
    """Where :func:`resolve_target` takes the endpoint and the key from (values are never returned).

    Returns:
        ``{"endpoint": "environment variable AZURE_VOICELIVE_ENDPOINT", "api_key": ...}`` for each one
        that is set, in the same order of precedence as :func:`resolve_target`.
    """
    pick = _picker(env, dotenv_path)
    found = {
        "endpoint": pick(endpoint, ENV_ENDPOINT, "endpoint")[1],
        "api_key": pick(api_key, ENV_API_KEY, "api_key")[1],
    }
    return {name: source for name, source in found.items() if source}


def resolve_target(
    endpoint: str | None = None,
    api_key: str | Secret | None = None,
    model: str | None = None,
    *,
    api_version: str | None = None,
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | bool | None = None,
    entra_id: bool = False,
) -> Target:
    """Decide where to connect and how to authenticate.

    Each value comes from the explicit argument, else the environment (``AZURE_VOICELIVE_ENDPOINT``,
    ``AZURE_VOICELIVE_API_KEY``, ``AZURE_VOICELIVE_MODEL``, ``AZURE_VOICELIVE_API_VERSION``), else a
    ``.env`` file (read with python-dotenv; ``os.environ`` is not modified). Blank values count as unset.
    With ``VLAB_OFFLINE=1`` (:data:`ENV_OFFLINE`) in the environment, only the arguments are read.

    Args:
        endpoint: Resource endpoint such as ``https://<resource>.services.ai.azure.com``.
        api_key: API key; without one an endpoint uses Entra ID (``DefaultAzureCredential``).
        model: Model name. Defaults to ``gpt-realtime``.
        api_version: The ``api-version`` query parameter. Defaults to the SDK's default.
        env: Environment to read instead of ``os.environ``.
        dotenv_path: A ``.env`` file; ``None`` or ``True`` searches from the current directory upwards,
            ``False`` reads no file.
        entra_id: Authenticate with Entra ID, as asked (a token credential was given, or Entra ID was
            chosen): a key in the environment or ``.env`` is then not read.

    Returns:
        An Azure target (``auth`` ``"api_key"`` or ``"entra_id"``) or, when no endpoint is configured,
        an emulator target whose endpoint is filled in by :func:`open_target`.

    Raises:
        ConfigError: An API key without an endpoint, a malformed endpoint, a missing ``dotenv_path``, or
            both an API key and ``entra_id``.
    """
    if offline_forced(env):
        env, dotenv_path = {}, False
    pick = _picker(env, dotenv_path)
    key_text = api_key.reveal() if isinstance(api_key, Secret) else api_key
    if key_text is not None and not isinstance(key_text, str):
        raise TypeError(f"api_key must be a str or Secret, got a {type(key_text).__name__}.")
    if entra_id and _clean(key_text) is not None:
        raise ConfigError(
            "Both an API key and Entra ID (a token credential) were given: pass one of them, the key or the "
            "credential."
        )
    url, url_source = pick(endpoint, ENV_ENDPOINT, "endpoint")
    key, key_source = (None, "") if entra_id else pick(key_text, ENV_API_KEY, "api_key")
    model_name, _ = pick(model, ENV_MODEL, "model")
    version, _ = pick(api_version, ENV_API_VERSION, "api_version")
    model_name = model_name or protocol.DEFAULT_MODEL
    version = version or protocol.DEFAULT_API_VERSION

    if url is None:
        if key is not None:
            raise ConfigError(
                f"An API key is set (from {key_source}) but no endpoint. Set {ENV_ENDPOINT} to your resource "
                f"endpoint, e.g. {ENDPOINT_EXAMPLE}, or remove the key to use the embedded emulator."
            )
        return Target(
            kind="emulator",
            endpoint=None,
            api_key=None,
            model=model_name,
            auth="emulator",
            api_version=version,
        )
    url = _validate_endpoint(url, url_source, key)
    secret = Secret(key) if key is not None else None
    return Target(
        kind="azure",
        endpoint=url,
        api_key=secret,
        model=model_name,
        auth="api_key" if secret is not None else "entra_id",
        api_version=version,
    )


# --- credentials and lifecycle ---------------------------------------------------------------------


def make_credential(
    target: Target, token_credential: AsyncTokenCredential | None = None
) -> AzureKeyCredential | AsyncTokenCredential:
    """The credential object the SDK's ``connect()`` expects for a target.

    Args:
        target: A resolved (and, for the emulator, started) target.
        token_credential: An async token credential to use for Entra ID instead of
            ``azure.identity.aio.DefaultAzureCredential()``.

    Returns:
        ``AzureKeyCredential`` for API-key and emulator targets, otherwise the token credential.
        A ``DefaultAzureCredential`` created here should be closed by the caller (``await cred.close()``).

    Raises:
        ConfigError: The emulator has not been started, or a token credential was given for a target
            that uses an API key or the embedded emulator.
    """
    if target.auth == "entra_id":
        if token_credential is not None:
            return token_credential
        from azure.identity.aio import DefaultAzureCredential

        return DefaultAzureCredential()
    if token_credential is not None and target.kind == "emulator":
        raise ConfigError(
            f"A token credential was given, but no endpoint is set, so the session would use the embedded "
            f"emulator, which takes no Entra ID token: set {ENV_ENDPOINT} (or the endpoint argument) to the "
            "resource's endpoint, or pass no credential."
        )
    if token_credential is not None:
        raise ConfigError(
            "A token credential was given for a target that uses an API key: pass one of them, the key "
            "or the credential."
        )
    if target.api_key is None:
        raise ConfigError("The emulator target has not been started; use `async with open_target(target)`.")
    from azure.core.credentials import AzureKeyCredential

    return AzureKeyCredential(target.api_key.reveal())


@asynccontextmanager
async def open_target(target: Target, **emulator_options: Any) -> AsyncIterator[Target]:
    """Make a target connectable for the duration of a ``async with`` block.

    For the emulator this starts ``vlab.emulator.Emulator(**emulator_options)`` on loopback and yields
    a copy of the target with its endpoint and key; the emulator stops when the block exits. An Azure
    target is yielded unchanged (``emulator_options`` are ignored, so one notebook works with both).

    Args:
        target: From :func:`resolve_target`.
        **emulator_options: Passed to ``Emulator`` (e.g. ``speed=4.0``, ``port=8765``).

    Yields:
        The connectable target.

    Raises:
        ConfigError: An option ``Emulator`` does not take (for the emulator; the error names the one meant).
    """
    if target.kind != "emulator":
        yield target
        return
    from vlab.emulator import Emulator

    check_keywords("emulator_options", Emulator, emulator_options)
    async with Emulator(**emulator_options) as emu:
        yield dataclasses.replace(target, endpoint=emu.endpoint, api_key=Secret(emu.api_key), auth="emulator")
