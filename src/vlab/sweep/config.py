"""Sweep configs: a TOML file (or a dict of its shape) read and checked into a :class:`SweepConfig`."""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from vlab import protocol, protocol_limits
from vlab._process import check_process_count
from vlab.audio.pacing import parse_speed
from vlab.endpoint import ENV_API_KEY, ENV_ENDPOINT, ENV_MODEL
from vlab.errors import ConfigError, check_count, check_keys, check_seconds, first_repeated
from vlab.prompts import LabelledPrompt, load_prompt_set, select_prompts
from vlab.settings import NOT_GIVEN, AzureSemanticVad, FunctionTool, McpServer, ServerVad, SessionSettings
from vlab.sweep.grid import (
    ANSWER_KEYS,
    BASELINE,
    EOU_KEYS,
    GRID_KEYS,
    GRID_TYPES,
    PROCESSING_KEYS,
    PUSH_TO_TALK,
    eou_axis,
    model_axis,
    processing_axes,
    processing_extra,
    setting_name,
    voice_axis,
)
from vlab.sweep.tools import MCP_SECTION, TOOLS_SECTION, function_tools, mcp_servers

_CONNECTION_KEYS = frozenset(
    {"endpoint", "url", "key", "api_key", "credential", "model", "api_version", "azure"}
)
"""Keys a user may put in ``[target]`` to point a sweep at Azure; the environment says that instead."""
_CONNECTION_HINT = (
    f"A sweep connects where a session would: to the endpoint, key and model in {ENV_ENDPOINT}, "
    f"{ENV_API_KEY} and {ENV_MODEL} (the environment or .env; no key: Entra ID), else to the embedded "
    "emulator. A config never holds them, so it can be shared; `vlab doctor` shows where a sweep will connect. "
    "To compare models, list them in [grid] model"
)
SESSION_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "instructions": ((str,), "a string (the system prompt)"),
    "voice": ((str, Mapping), "a voice name such as 'en-US-AvaNeural' or 'alloy', or a table with its type"),
    "temperature": ((int, float), "a number"),
    "transcription": ((str, Mapping), "a transcription model name such as 'azure-speech', or a table"),
    "input_audio_format": ((str,), "one of " + ", ".join(map(repr, protocol.INPUT_FORMATS))),
    "input_audio_sampling_rate": (
        (int,),
        "a rate in Hz, one of " + ", ".join(map(str, protocol.INPUT_SAMPLING_RATES)) + " (G.711: 8000)",
    ),
    "output_audio_format": ((str,), "one of " + ", ".join(map(repr, protocol.OUTPUT_FORMAT_RATES))),
}
"""The ``[session]`` keys (:class:`~vlab.settings.SessionSettings` fields every setting of the sweep sends
alike), with the TOML types each takes and how to say them."""
AUDIO_SESSION_FIELDS = ("input_audio_format", "input_audio_sampling_rate", "output_audio_format")
"""The ``[session]`` keys that say the audio each way (a sweep that leaves them out sends PCM16 at 24 kHz)."""
VAD_HEARD_SESSION_FIELDS = AUDIO_SESSION_FIELDS[:2]
"""The ``[session]`` keys a VAD-only sweep (``mode = "vad"``) heeds: the audio its VAD hears."""
_SECTIONS: dict[str, set[str]] = {
    "target": {"speed", "latency", "hear_audio", "script"},
    "session": set(SESSION_FIELDS),
    "prompts": {"path", "include"},
    "grid": {"type", *GRID_KEYS, *PROCESSING_KEYS, *EOU_KEYS, *ANSWER_KEYS},
    "run": {
        "repeats",
        "concurrency",
        "timeout_s",
        "baseline",
        "push_to_talk",
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


_MAX_BACKOFF_S = 60.0
"""Upper bound of the wait between attempts of a throttled cell."""
MODES = ("sessions", "vad")
"""What a cell is: ``sessions`` (a session on the target) or ``vad`` (the emulator's server VAD over the
prompt, no session: :mod:`vlab.sweep.vad`)."""
EXECUTORS = ("asyncio", "dask")
"""Where cells run: ``asyncio`` (this process, ``concurrency`` at once) or ``dask`` (:mod:`vlab.sweep.dask_executor`)."""


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration."""

    settings: tuple[SessionSettings, ...]
    """One per grid point, then the baseline (when added and not already in the grid), then the
    push-to-talk reference (when added)."""
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
    push_to_talk: str | None = None
    """Name of the push-to-talk reference setting (:data:`~vlab.sweep.grid.PUSH_TO_TALK`), if any."""
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
    models: tuple[str, ...] = ()
    """The models ``[grid] model`` compares (each setting's connection asks for its own). Empty: every
    setting connects with the target's model (``AZURE_VOICELIVE_MODEL``, else ``gpt-realtime``), which
    :func:`vlab.sweep.run.on_target` writes into the settings before the cells run."""
    session: Mapping[str, Any] = field(default_factory=dict)
    """What ``[session]`` has every setting send alike (:data:`SESSION_FIELDS`: ``instructions``,
    ``voice``, ``temperature``, ``transcription``); they are in each of ``settings`` too. Empty: none."""

    def throttle_wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) of a throttled cell."""
        if retry_after_s is not None:
            return retry_after_s
        return min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return len(self.settings) * len(self.prompts) * self.repeats


CONFIG_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(SweepConfig) if f.default is not MISSING}
"""What a config file that leaves a key out gets: :class:`SweepConfig`'s defaults, declared there only."""


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

    ``mode`` overrides ``[run] mode`` (:data:`MODES`), as ``vlab sweep --mode`` does. Paths the config
    names are relative to ``base_dir`` (default: the current folder), or else beside the config file.

    Raises:
        ConfigError: Unknown sections or keys, empty grid lists, out-of-range values, unknown prompts
            — before anything runs.
    """
    data, config_dir = _read(config)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    _check_sections(data)
    grid = dict(data.get("grid", {}))
    detections = _turn_detections(grid)
    functions, tool_outputs, tool_run_ms = function_tools(data.get(TOOLS_SECTION, {}))
    servers, mcp_approvals = mcp_servers(data.get(MCP_SECTION, {}))
    tools: tuple[FunctionTool | McpServer, ...] = (*functions, *servers)
    session = _session_fields(data.get("session", {}))
    voices, models = voice_axis(grid), model_axis(grid)
    if voices is not None and "voice" in session:
        raise ConfigError(
            "voice is in both [session] and [grid]; give one voice for every setting in [session], or the "
            "voices to compare in [grid]"
        )
    common = {**session, "tools": tools}
    with_tools = " and ".join(
        f"[{s}]" for s, on in ((TOOLS_SECTION, functions), (MCP_SECTION, servers)) if on
    )
    settings, names = _settings(detections, grid, voices, models, common)
    run_section = data.get("run", {})
    # the references speak with the grid's first voice and model, so the baseline can be one of its points
    first_voice = None if voices is None else voices[0]
    first_model = None if models is None else models[0]
    added = {
        **common,
        **({} if first_voice is None else {"voice": first_voice}),
        **({} if first_model is None else {"model": first_model}),
    }
    baseline_name = setting_name(BASELINE, voice=first_voice, model=first_model)
    baseline = _added_setting(run_section, "baseline", baseline_name, BASELINE, settings, names, added)
    push_to_talk = _added_setting(run_section, "push_to_talk", PUSH_TO_TALK, None, settings, names, added)
    run = _run_options(run_section, mode)
    if run["mode"] == "vad":
        _check_vad_mode(settings, names, run, with_tools, [k for k in ANSWER_KEYS if k in grid])
    target = _target_options(data.get("target", {}), base, config_dir, with_tools)
    prompts = _prompts(data.get("prompts", {}), base, config_dir)
    canary = run_section.get("canary")
    _check_canary(canary, prompts)
    return SweepConfig(
        settings=tuple(settings),
        setting_names=tuple(names),
        prompts=prompts,
        baseline=baseline,
        push_to_talk=push_to_talk,
        canary=canary,
        raw=json.loads(json.dumps(data, default=str)),
        tool_outputs=tool_outputs,
        tool_run_ms=tool_run_ms,
        mcp_approvals=mcp_approvals,
        session=session,
        models=tuple(models or ()),
        **run,
        **target,
    )


def _check_sections(data: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for an unknown section or key (one out of its section: where it goes)."""
    misplaced = [
        f"{k} belongs in " + " or ".join(f"[{s}]" for s, keys in _SECTIONS.items() if k in keys)
        for k in data
        if any(k in keys for keys in _SECTIONS.values())
    ]
    check_keys(
        "the config",
        data,
        {*_SECTIONS, TOOLS_SECTION, MCP_SECTION},
        what="section(s)",
        hint="; ".join(misplaced),
    )
    for section in _SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{section}] must be a table")
        connection = section in ("target", "session", "run") and not set(table).isdisjoint(_CONNECTION_KEYS)
        check_keys(f"[{section}]", table, _SECTIONS[section], hint=_CONNECTION_HINT if connection else "")


def _check_canary(canary: str | None, prompts: Sequence[LabelledPrompt]) -> None:
    """Raise :class:`ConfigError` when ``[run] canary`` names none of the selected prompts."""
    ids = [p.id for p in prompts]
    if canary is None or canary in ids:
        return
    shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
    raise ConfigError(
        f"[run] canary {canary!r} is not among the selected prompts ({shown}); name one of them "
        "(a prompt with a pause in it), or leave canary out"
    )


def _where_configs_are(missing: Path) -> str:
    """How to get the config ``missing``: ``vlab examples`` when vlab ships one of that name."""
    from vlab.bundled import bundled_dir

    if (bundled_dir("examples") / missing.name).is_file():
        return f"`vlab examples` copies the example configs, {missing.name} among them, into ./examples"
    return "check the path (relative paths start at the current folder); `vlab examples` writes some configs"


def _read(config: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None]:
    """The config as a dict, and the folder of its file (None for a dict)."""
    if isinstance(config, Mapping):
        return dict(config), None
    path = Path(config)
    if path.is_dir():
        configs = sorted(path.glob("*.toml"))
        some = f", e.g. {str(configs[0])!r}" if configs else " (`vlab examples` writes some)"
        raise ConfigError(f"sweep config {str(path)!r} is a folder; give a .toml file{some}")
    if not path.is_file():
        raise ConfigError(f"sweep config {str(path)!r} not found; {_where_configs_are(path)}")
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep config {str(path)!r} is not valid TOML: {exc}") from None
    return data, path.parent.absolute()


def _turn_detections(grid: dict[str, Any]) -> list[ServerVad | AzureSemanticVad]:
    """The ``[grid]``'s turn detections: its numeric knobs crossed, then with each end-of-utterance detection."""
    if not grid:
        raise ConfigError("the sweep has no [grid]; give at least one of " + ", ".join(GRID_KEYS))
    kinds = _grid_types(grid.get("type", protocol_limits.SERVER_VAD))
    axes: dict[str, list[Any]] = {}
    for key in GRID_KEYS:
        if key not in grid:
            continue
        values = grid[key] if isinstance(grid[key], list) else [grid[key]]
        if not values:
            raise ConfigError(f"[grid] {key} is an empty list; give at least one value")
        axes[key] = values
    eous = eou_axis(grid)
    if not axes and eous == [None] and not any(key in grid for key in (*PROCESSING_KEYS, *ANSWER_KEYS)):
        raise ConfigError(
            "[grid] gives no setting to sweep (only 'type'); give at least one of "
            + ", ".join([*GRID_KEYS, *PROCESSING_KEYS, "eou_model", *ANSWER_KEYS])
            + ", e.g. threshold = [0.5]"
        )
    if protocol_limits.SERVER_VAD in kinds and "speech_duration_ms" in axes:
        raise ConfigError(
            "[grid] speech_duration_ms needs type = 'azure_semantic_vad' (server_vad has no such setting"
            + (
                "; sweep it in a grid of type = 'azure_semantic_vad' alone"
                if len(kinds) > 1
                else ", and server_vad is the default type"
            )
            + ")"
        )
    try:
        return [
            GRID_TYPES[kind](
                **dict(zip(axes.keys(), combo, strict=False)),
                end_of_utterance=NOT_GIVEN if eou is None else eou,
            )
            for kind in kinds
            for combo, eou in itertools.product(itertools.product(*axes.values()), eous)
        ]
    except ConfigError as exc:  # "ServerVad.threshold must be …": named as the config names it
        owner, _, rest = str(exc).partition(".")
        named = rest if owner in {t.__name__ for t in GRID_TYPES.values()} else str(exc)
        raise ConfigError(f"[grid] {named}") from None


def _grid_types(value: Any) -> list[str]:
    """``[grid] type``: one turn-detection type or a list of them to compare, each in :data:`GRID_TYPES`."""
    kinds = value if isinstance(value, list) else [value]
    if not kinds:
        raise ConfigError("[grid] type is an empty list; give at least one value")
    for kind in kinds:
        if not isinstance(kind, str) or kind not in GRID_TYPES:
            raise ConfigError(
                f"[grid] type must be {' or '.join(map(repr, GRID_TYPES))} (or a list of them to compare), "
                f"got {kind!r}"
            )
    return kinds


def _session_fields(session: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[session]`` table's :class:`SessionSettings` fields, checked (:data:`SESSION_FIELDS`).

    Raises:
        ConfigError: A value of the wrong type or out of range, named as ``[session] <key>``.
    """
    for key, value in session.items():
        kinds, expected = SESSION_FIELDS[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ConfigError(f"[session] {key} must be {expected}, got {value!r}")
    try:
        SessionSettings(**session)
    except ConfigError as exc:
        raise ConfigError(f"[session] {str(exc).removeprefix('SessionSettings.')}") from None
    return dict(session)


def _settings(
    detections: list[ServerVad | AzureSemanticVad],
    grid: Mapping[str, Any],
    voices: list[str | dict[str, Any]] | None,
    models: list[str] | None,
    common: Mapping[str, Any],
) -> tuple[list[SessionSettings], list[str]]:
    """Every grid point (turn detection × input processing × model × voice) as session settings, and its name.

    ``voices`` and ``models``: the grid's (None: it sweeps none). ``common``: the fields every setting
    sends alike (``[session]``'s and the tools).
    """
    noises, echoes = processing_axes(grid)
    settings: list[SessionSettings] = []
    names: list[str] = []
    spoken_by: list[str | dict[str, Any] | None] = [None] if voices is None else list(voices)
    answered_by: list[str | None] = [None] if models is None else list(models)
    for td in detections:
        for noise, echo, model, voice in itertools.product(noises, echoes, answered_by, spoken_by):
            chosen: dict[str, Any] = {} if voice is None else {"voice": voice}
            chosen.update({} if model is None else {"model": model})
            extra = processing_extra(noise, echo)
            settings.append(SessionSettings(turn_detection=td, extra=extra, **common, **chosen))
            names.append(setting_name(td, noise, echo, voice, model))
    twice = first_repeated(names)
    if twice is not None:
        raise ConfigError(
            f"[grid] gives the setting {twice!r} twice (a value listed twice?); list each value once, and "
            "set [run] repeats for more runs of each setting"
        )
    return settings, names


def _added_setting(
    run: Mapping[str, Any],
    key: str,
    name: str,
    turn_detection: ServerVad | None,
    settings: list[SessionSettings],
    names: list[str],
    common: Mapping[str, Any],
) -> str | None:
    """Add the setting ``[run] <key> = true`` asks for (unless the grid has it); its name, or None."""
    wanted = run.get(key, False)
    if not isinstance(wanted, bool):
        raise ConfigError(f"[run] {key} must be true or false, got {wanted!r}")
    if not wanted:
        return None
    if name not in names:
        settings.append(SessionSettings(turn_detection=turn_detection, **common))
        names.append(name)
    return name


def _run_options(run: Mapping[str, Any], mode: str | None) -> dict[str, Any]:
    """The ``[run]`` options :class:`SweepConfig` takes, checked (``mode`` overrides the table's)."""
    if "name" in run and not isinstance(run["name"], str):
        raise ConfigError(f"[run] name must be a string, got {run['name']!r}")
    repeats, concurrency = (
        run.get("repeats", CONFIG_DEFAULTS["repeats"]),
        run.get("concurrency", CONFIG_DEFAULTS["concurrency"]),
    )
    workers, max_sessions = run.get("workers", CONFIG_DEFAULTS["workers"]), run.get("max_sessions")
    for key, value in (("repeats", repeats), ("concurrency", concurrency), ("workers", workers)):
        check_count(f"[run] {key}", value)
    throttle_retries = run.get("throttle_retries", CONFIG_DEFAULTS["throttle_retries"])
    check_count("[run] throttle_retries", throttle_retries, minimum=0)
    backoff_s = run.get("backoff_s", CONFIG_DEFAULTS["backoff_s"])
    if isinstance(backoff_s, bool) or not isinstance(backoff_s, (int, float)) or not backoff_s >= 0:
        raise ConfigError(f"[run] backoff_s must be a number of seconds ≥ 0, got {backoff_s!r}")
    if max_sessions is not None:
        check_count("[run] max_sessions", max_sessions)
    executor, cluster = run.get("executor", CONFIG_DEFAULTS["executor"]), run.get("cluster")
    if executor == "dask" and cluster is None:  # a LocalCluster of that many worker processes here
        check_process_count(workers, "[run] workers")
    if executor not in EXECUTORS:
        raise ConfigError(f"[run] executor must be {' or '.join(map(repr, EXECUTORS))}, got {executor!r}")
    if cluster is not None and (not isinstance(cluster, str) or executor != "dask"):
        raise ConfigError(
            f"[run] cluster must be a scheduler address string (e.g. 'tcp://host:8786') with "
            f"executor = 'dask', got {cluster!r} with executor = {executor!r}"
        )
    if "workers" in run and executor != "dask":
        raise ConfigError(
            f"[run] workers = {workers!r} sets the Dask workers of a sweep, which runs its cells in this "
            f"process with executor = {executor!r}: add executor = 'dask' to run them on Dask, or drop workers "
            "(concurrency sets how many cells run at once here)"
        )
    mode = mode or run.get("mode", CONFIG_DEFAULTS["mode"])
    if mode not in MODES:
        raise ConfigError(f"[run] mode must be {' or '.join(map(repr, MODES))}, got {mode!r}")
    timeout_s = run.get("timeout_s", CONFIG_DEFAULTS["timeout_s"])
    check_seconds("[run] timeout_s", timeout_s)
    return {
        "repeats": repeats,
        "concurrency": concurrency,
        "workers": workers,
        "max_sessions": max_sessions,
        "throttle_retries": throttle_retries,
        "backoff_s": float(backoff_s),
        "executor": executor,
        "cluster": cluster,
        "mode": mode,
        "timeout_s": float(timeout_s),
    }


def _check_vad_mode(
    settings: list[SessionSettings],
    names: list[str],
    run: Mapping[str, Any],
    with_tools: str,
    answering: list[str],
) -> None:
    """Refuse what a VAD-only sweep cannot decide: replies, words, models or voices, tools, repeats, Dask.

    ``answering``: the grid's keys of what answers (:data:`~vlab.sweep.grid.ANSWER_KEYS`).
    """
    from vlab.sweep.vad import check_vad_mode

    if answering:
        key = answering[0]
        raise ConfigError(
            f"[grid] {key} needs sessions: mode = 'vad' runs the VAD alone, and nothing answers (drop {key} "
            "from [grid], or use mode = 'sessions')"
        )
    if PUSH_TO_TALK in names:
        raise ConfigError(
            "[run] push_to_talk needs sessions: mode = 'vad' runs the VAD alone, and push-to-talk has none "
            "(drop push_to_talk, or use mode = 'sessions')"
        )
    check_vad_mode(settings, names)
    if with_tools:
        raise ConfigError(
            f"{with_tools} need sessions: mode = 'vad' runs the VAD alone, with no model to call them "
            f"(drop {with_tools}, or use mode = 'sessions')"
        )
    if run["repeats"] != 1 or run["executor"] != "asyncio":
        raise ConfigError(
            "[run] mode = 'vad' decides each cell once, in this process: the VAD is deterministic, so "
            "drop repeats and executor (or use mode = 'sessions')"
        )


def _target_options(
    target: Mapping[str, Any], base: Path, config_dir: Path | None, with_tools: str
) -> dict[str, Any]:
    """The ``[target]`` options :class:`SweepConfig` takes, checked; a latency model or script file is read."""
    speed = parse_speed(target.get("speed", CONFIG_DEFAULTS["speed"]), "[target] speed")
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
    hear_audio = target.get("hear_audio", bool(with_tools) or CONFIG_DEFAULTS["hear_audio"])
    if not isinstance(hear_audio, bool):
        raise ConfigError(f"[target] hear_audio must be true or false, got {hear_audio!r}")
    if with_tools and not hear_audio:
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
    return {"speed": speed, "latency": latency, "hear_audio": hear_audio, "script": script}


def _prompts(section: Mapping[str, Any], base: Path, config_dir: Path | None) -> tuple[LabelledPrompt, ...]:
    """The ``[prompts]`` the sweep plays: a prompt folder's (default: the bundled set), as ``include`` selects."""
    folder = section.get("path")
    if folder is not None:
        folder = _resolve(folder, base, config_dir)
    include = section.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(i, str) for i in include)
    ):
        raise ConfigError(
            f'[prompts] include must be a list of prompt ids or categories, e.g. ["pause"], got {include!r}'
        )
    prompts = tuple(select_prompts(load_prompt_set(folder), include))
    if not prompts:
        raise ConfigError("the sweep selects no prompts")
    return prompts
