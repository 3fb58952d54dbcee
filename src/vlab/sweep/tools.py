"""A sweep config's ``[tools]`` and ``[mcp]`` tables: the functions and MCP servers every setting offers."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from vlab.errors import ConfigError, check_keys
from vlab.settings import FunctionTool, McpServer

TOOLS_SECTION = "tools"
"""The config section of function tools: one ``[tools.<name>]`` table per function."""
_TOOL_KEYS = ("description", "parameters", "output", "run_ms")
"""The keys of a ``[tools.<name>]`` table: the function the model may call, what the sweep answers, and
how long the function runs on the emulator's simulated timeline."""
MCP_SECTION = "mcp"
"""The config section of MCP servers: one ``[mcp.<server_label>]`` table per server."""
_MCP_KEYS = ("server_url", "allowed_tools", "require_approval", "approve", "authorization_env")
"""The keys of a ``[mcp.<server_label>]`` table: the server (as :class:`~vlab.settings.McpServer` takes it),
what the sweep answers its approval requests with, and the environment variable holding its token."""


def _tables(
    section: str, data: Any, keys: Collection[str], what: str, example: str
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Each ``[<section>.<name>]`` table as ``(name, "[<section>.<name>]", table)``, its keys checked."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{section}] must hold one table per {what}, {example}")
    for name, spec in data.items():
        where = f"[{section}.{name}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a table of {', '.join(keys)}; {example}")
        check_keys(where, spec, keys)
        yield name, where, spec


def function_tools(section: Any) -> tuple[tuple[FunctionTool, ...], dict[str, str], dict[str, float]]:
    """The ``[tools.<name>]`` tables: the functions, what each call gets, and how long each runs.

    The run times are those of the tables that give one (``run_ms``), on the emulator's simulated timeline.
    """
    example = "e.g. [tools.get_current_time] with description = 'Get the current time' and output = '9 am'"
    tools: list[FunctionTool] = []
    outputs: dict[str, str] = {}
    run_ms: dict[str, float] = {}
    for name, where, spec in _tables(TOOLS_SECTION, section, _TOOL_KEYS, "function", example):
        output = spec.get("output")
        if isinstance(output, Mapping):
            output = json.dumps(output)
        if not isinstance(output, str):
            raise ConfigError(
                f"{where} output must be the text (or a table, sent as JSON) that the sweep answers every "
                f"call of {name} with, e.g. output = 'It is 9 am.'; got {output!r}"
            )
        ran = spec.get("run_ms", 0)
        if isinstance(ran, bool) or not isinstance(ran, (int, float)) or not 0 <= ran < math.inf:
            raise ConfigError(
                f"{where} run_ms must be the ms {name} takes to run on the emulator's timeline (a number "
                f"≥ 0, e.g. run_ms = 800), got {ran!r}"
            )
        try:
            tools.append(
                FunctionTool(name=name, **{k: v for k, v in spec.items() if k not in ("output", "run_ms")})
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        outputs[name] = output
        if ran:
            run_ms[name] = float(ran)
    return tuple(tools), outputs, run_ms


def mcp_servers(section: Any) -> tuple[tuple[McpServer, ...], dict[str, bool]]:
    """The ``[mcp.<server_label>]`` tables: the MCP servers the model may call, and the approval each gets."""
    example = "e.g. [mcp.docs] with server_url = 'http://127.0.0.1:9000/mcp' and require_approval = 'never'"
    servers: list[McpServer] = []
    approvals: dict[str, bool] = {}
    for label, where, spec in _tables(MCP_SECTION, section, _MCP_KEYS, "MCP server", example):
        approve = spec.get("approve", False)
        if not isinstance(approve, bool):
            raise ConfigError(
                f"{where} approve must be true or false (what the sweep answers the server's approval "
                f"requests with), got {approve!r}"
            )
        env = spec.get("authorization_env")
        token = None
        if env is not None:
            if not isinstance(env, str) or not env:
                raise ConfigError(f"{where} authorization_env must name an environment variable, got {env!r}")
            token = os.environ.get(env)
            if not token:
                raise ConfigError(
                    f"{where} authorization_env names {env}, which is not set: export the server's token "
                    f"as {env} (a config file never holds it), or drop authorization_env"
                )
        try:
            servers.append(
                McpServer(
                    server_label=label,
                    server_url=spec.get("server_url"),  # type: ignore[arg-type]  # checked by McpServer
                    allowed_tools=spec.get("allowed_tools"),
                    require_approval=spec.get("require_approval", "always"),
                    authorization=token,
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        approvals[label] = approve
    return tuple(servers), approvals
