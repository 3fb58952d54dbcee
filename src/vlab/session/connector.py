"""Where a session connects and how: the target, the embedded emulator, the credential, new connections.

A :class:`Connector` resolves the target when first asked (explicit arguments, then the environment,
then ``.env``: :func:`vlab.endpoint.resolve_target`), so creating a session reads no file. Opened with
``async with``, it starts the embedded emulator when there is no endpoint and makes the credential; each
:meth:`Connector.open_wire` then opens one SDK connection, or raises a
:class:`~vlab.errors.ConnectionFailed` that says what to check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from vlab import protocol
from vlab.endpoint import Secret, Target, make_credential, open_target, resolve_target
from vlab.errors import ConnectionFailed
from vlab.protocol_limits import SDK_MAX_FRAME_BYTES
from vlab.session import sdk_adapter
from vlab.session.connect_errors import ConnectRefused, connect_error
from vlab.session.link import WireError
from vlab.session.reconnect import connect_advice, redact


class Connector:
    """The target of a session and the means to connect to it.

    Args:
        endpoint: Azure endpoint (else the environment, else ``.env``; none → embedded emulator).
        api_key: API key (else the environment, else ``.env``; none with an endpoint → Entra ID).
        model: Model name (else ``AZURE_VOICELIVE_MODEL``, else ``default_model``).
        dotenv_path: ``.env`` file to read (None searches upwards, False none).
        credential: An async token credential for Entra ID (default: ``DefaultAzureCredential``); given,
            the session uses Entra ID and no key from the environment or ``.env``.
        emulator_options: Passed to the embedded emulator when it is used.
        default_model: The model when none is configured (the settings' model).
        target: A target already resolved (then endpoint, key, model and ``.env`` are not read).
        max_frame_bytes: Largest server frame a connection accepts (the SDK's ``max_msg_size``).
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_key: str | Secret | None = None,
        model: str | None = None,
        dotenv_path: str | os.PathLike[str] | bool | None = None,
        credential: Any = None,
        emulator_options: Mapping[str, Any] | None = None,
        default_model: str = protocol.DEFAULT_MODEL,
        target: Target | None = None,
        max_frame_bytes: int = SDK_MAX_FRAME_BYTES,
    ) -> None:
        if isinstance(api_key, str) and api_key.strip():
            api_key = Secret(api_key)  # held as a Secret from the start (blank keys count as unset)
        self._args = (endpoint, api_key, model, dotenv_path)
        self._default_model = default_model
        self._token_credential = credential
        self._emulator_options = dict(emulator_options or {})
        self._target: Target | None = target
        self._credential: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._max_frame_bytes = max_frame_bytes

    @property
    def target(self) -> Target:
        """The target (resolved on first use; the emulator's endpoint is known once opened).

        Raises:
            ConfigError: The configuration is invalid (e.g. a key without an endpoint).
        """
        if self._target is None:
            endpoint, api_key, model, dotenv_path = self._args
            entra_id = self._token_credential is not None  # asked for: a key in the environment is not read
            target = resolve_target(endpoint, api_key, model, dotenv_path=dotenv_path, entra_id=entra_id)
            if model is None and target.model == protocol.DEFAULT_MODEL:
                target = dataclasses.replace(target, model=self._default_model)
            self._target = target
        return self._target

    @property
    def resolved(self) -> Target | None:
        """The target if it has been resolved (never resolves it)."""
        return self._target

    @property
    def credential(self) -> Any:
        """The credential given to the SDK (``AzureKeyCredential`` or a token credential) once opened."""
        return self._credential

    def redact(self, text: str) -> str:
        """``text`` without the target's key."""
        return redact(text, self._target) if self._target is not None else text

    def advice(self, exc: BaseException) -> ConnectionFailed:
        """The error for a failed connection: what failed (redacted) and how to fix it, on one line."""
        if isinstance(exc, ConnectRefused):
            return connect_error(self.target, exc.failure, self.redact)
        return ConnectionFailed(connect_advice(self.target, str(exc)))

    async def __aenter__(self) -> Connector:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            self._target = await stack.enter_async_context(open_target(self.target, **self._emulator_options))
            self._credential = make_credential(self._target, self._token_credential)
            if self._target.auth == "entra_id" and self._token_credential is None:
                stack.push_async_callback(self._credential.close)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def open_wire(self) -> sdk_adapter.SdkWire:
        """Open one SDK connection to the target.

        Raises:
            ConnectionFailed: It could not be opened; the message says what to check.
        """
        target = self.target
        try:
            return await sdk_adapter.open_wire(
                endpoint=target.endpoint or "",
                credential=self._credential,
                model=target.model,
                api_version=target.api_version,
                max_frame_bytes=self._max_frame_bytes,
            )
        except WireError as exc:
            raise self.advice(exc) from None
