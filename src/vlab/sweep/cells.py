"""One cell of a sweep: one prompt through a session with one setting, into its run folder and ``cell.json``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlab import protocol
from vlab.clock import Clock, SystemClock, wait_until_ns
from vlab.errors import NotAnswered, settings_refused
from vlab.log.files import write_atomic
from vlab.prompts import LabelledPrompt
from vlab.settings import McpServer, SessionSettings
from vlab.sweep.config import SweepConfig
from vlab.sweep.store import CELL_FILE, VAD_CACHE_DIR, cell_folder
from vlab.sweep.tables import analyse_cell

log = logging.getLogger("vlab.sweep")

if TYPE_CHECKING:
    from vlab.session import Session, ToolRunner


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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")


def grid_cells(cfg: SweepConfig) -> list[tuple[str, int, SessionSettings, LabelledPrompt, int]]:
    """Every cell of the sweep as ``(folder name, setting index, setting, prompt, repeat)``, settings outermost."""
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

    rate = settings.input_sample_rate
    td = settings.turn_detection
    tail_ms = trailing_silence_ms(td)
    pcm = prompt.pcm(rate) + silence(tail_ms, rate)
    options = {**session_options, "model": settings.model}  # the grid's, else the target's (on_target)
    emulator_options = {
        "speed": cfg.speed,
        "latency": cfg.latency,
        "hear_audio": cfg.hear_audio,
        "script": cfg.script,
        "trace": str(cell_dir / "trace.jsonl"),
        "seed": latency_seed(prompt.id),
        **options.pop("emulator_options", {}),
    }
    async with Session(  # a cell run again (its last try failed) starts its log afresh
        settings,
        run_dir=cell_dir,
        overwrite=True,
        emulator_options=emulator_options,
        latency_seed=int(emulator_options["seed"]),  # the same draws on a `vlab emulator` at an endpoint
        **options,
    ) as s:
        await _mcp_listed(s, settings, cfg.timeout_s)
        async with _tool_runner(s, cfg) as runner:
            try:
                if td is None:  # push-to-talk: each turn committed at its labelled end, then answered
                    for turn in labelled_turns(pcm, prompt, rate):
                        await feed_prompt(
                            s, turn, speed=cfg.speed, timeout_s=cfg.timeout_s, commit=True, tools=runner
                        )
                else:
                    await feed_prompt(s, pcm, speed=cfg.speed, timeout_s=cfg.timeout_s, tools=runner)
            except NoSpeechDetected:
                pass  # a prompt with no speech (noise only) is a result, not a failure
            except NotAnswered as exc:
                raise NotAnswered(f"{exc} ({_SLOW})") from None
            if runner is not None:
                await _answers_spoken(s, runner, cfg.timeout_s)
        target = (
            STANDALONE_EMULATOR if s.target.kind != "emulator" and s.simulated_timeline else s.target.kind
        )
    if s.settings_refused is not None:  # its figures would be the server's own settings', under this name
        raise settings_refused(s.settings_refused, "the cell's figures")
    return {"target": target}


STANDALONE_EMULATOR = "standalone emulator"
"""The ``target`` a cell records when the server at its endpoint was vlab's emulator (``vlab emulator``):
its events carried the simulated time. Its latency model is its own (``vlab emulator --latency``), not
the sweep's ``[target] latency``, which only the embedded emulator (``target`` ``emulator``) runs with."""
_SLOW = "raise [run] timeout_s if the service is slow"
"""What a sweep's user can do about a cell not answered in time."""


def labelled_turns(pcm: bytes, prompt: LabelledPrompt, rate: int) -> list[bytes]:
    """``pcm`` cut at the prompt's labelled ends of turn: each turn's audio, from the end of the one before.

    What a push-to-talk user sends before each press ends; the audio after the last turn is not sent.
    """
    ends = [round(end_ms * rate / 1000) * 2 for end_ms in prompt.end_of_turn_ms]
    return [pcm[start:end] for start, end in itertools.pairwise([0, *ends])]


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
        raise NotAnswered(
            f"the answers to the tool calls were not spoken within {timeout_s:g} s ({_SLOW})"
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


def latency_seed(prompt_id: str) -> int:
    """The seed of the embedded emulator's latency draws in a cell of the prompt ``prompt_id``.

    So each prompt's turns draw latencies of their own (with one seed for all, the first turn of every
    prompt drew the same ones, and their spread was nil), while every setting and repeat of a prompt
    draws the same: settings differ only by what they decide.
    """
    return int.from_bytes(hashlib.sha256(prompt_id.encode("utf-8")).digest()[:4], "big")


def _fresh_dir(folder: Path) -> None:
    """Empty ``folder`` (what a failed attempt left there)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def cell_conditions(cfg: SweepConfig, settings: SessionSettings, prompt: LabelledPrompt) -> dict[str, Any]:
    """What a cell's figures depend on, as its ``cell.json`` keeps it.

    ``recording`` (a digest of the prompt's audio file: a prompt re-recorded under its id is another),
    ``settings`` (what its session sent), ``emulator`` (the ``[target]`` options the embedded emulator
    runs with, and its :func:`latency_seed`) and ``tool_answers`` (what the cell answers calls with, and
    when). A resumed sweep keeps a finished cell only where they are the same (:func:`changed_conditions`).
    The prompt's labels are not among them: the tables score every cell with the labels the sweep is
    given.
    """
    conditions = {
        "recording": {"audio": _file_digest(str(prompt.file))},
        "settings": settings.to_dict(),
        "emulator": {
            "latency": cfg.latency,
            "hear_audio": cfg.hear_audio,
            "script": cfg.script,
            "seed": latency_seed(prompt.id),
        },
        "tool_answers": {
            "output": dict(cfg.tool_outputs),
            "run_ms": dict(cfg.tool_run_ms),
            "approve": dict(cfg.mcp_approvals),
        },
    }
    return dict(json.loads(json.dumps(conditions)))  # as read back from cell.json (lists, not tuples)


def finished(cell_dir: Path) -> dict[str, Any] | None:
    """The cell's ``cell.json`` if it says the cell ran to the end (``ok``), else None."""
    try:
        meta = json.loads((cell_dir / CELL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("status") == "ok" else None


def changed_conditions(meta: Mapping[str, Any], conditions: Mapping[str, Any]) -> list[str]:
    """What of ``conditions`` (:func:`cell_conditions`) a finished cell's ``meta`` ran with otherwise.

    Named as a config says them: ``instructions``, ``turn_detection``, ``[target] latency``,
    ``[tools] output``. What a ``cell.json`` of an earlier vlab does not hold is taken to be the same.
    """
    changed = []
    for group, now in conditions.items():
        kept = meta.get(group)
        if isinstance(kept, Mapping):
            changed += [
                _CONFIG_NAMES.get(key, key)
                for key, value in now.items()
                if key in kept and value is not None and kept[key] != value
            ]
    return changed


def _file_digest(path: str) -> str | None:
    """A BLAKE2b digest of the file's bytes (None if it cannot be read: the cell then says why).

    Remembered while the file's size and modification time stay the same: a sweep asks once per cell,
    and a prompt set may be larger than any bounded cache.
    """
    try:
        stat = os.stat(path)
        return _digest(path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        return None


@functools.cache
def _digest(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


_CONFIG_NAMES = {
    "audio": "the prompt's recording",
    "latency": "[target] latency",
    "hear_audio": "[target] hear_audio",
    "script": "[target] script",
    "seed": "the emulator's latency seed",
    "output": "[tools] output",
    "run_ms": "[tools] run_ms",
    "approve": "[mcp] approve",
}
"""How a config names each condition of :func:`cell_conditions` that is not a session setting."""


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
    cell_dir = cell_folder(out_dir, name)
    if cell_dir.exists():  # a half-written or failed cell from an earlier run: start it afresh
        shutil.rmtree(cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    meta: dict[str, Any] = {
        "cell": name,
        "setting": cfg.setting_names[index],
        "prompt": prompt.id,
        "repeat": rep,
        **cell_conditions(cfg, settings, prompt),
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
        meta.update(status="ok", target=info["target"])
        result = CellResult(name, "ok", time.perf_counter() - t)
    except Exception as exc:  # a failed cell is recorded and the sweep goes on
        meta.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        result = CellResult(name, "error", time.perf_counter() - t, meta["error"])
    if throttled:
        meta["throttled"] = throttled
        result.throttled = len(throttled)
    meta["duration_s"] = round(time.perf_counter() - t, 3)
    write_atomic(cell_dir / CELL_FILE, json.dumps(meta, indent=2) + "\n")
    return result


def cell_job(
    cfg: SweepConfig, out_dir: Path, options: Mapping[str, Any], cell: tuple[Any, ...]
) -> tuple[CellResult, dict[str, Any] | None]:
    """One cell on a dask worker (:mod:`vlab.sweep.dask_executor`), on its own event loop, with the sweep's VAD cache.

    An ``ok`` cell is analysed there too (:func:`analyse_cell`), so that the workers share that work
    rather than the sweep's process doing it for every cell at the end; the analysis goes back with the
    result (None if it failed: :func:`aggregate` then tries again and records the error).
    """
    from vlab.audio.silero_worker import SileroWorker

    SileroWorker.shared().use_cache(out_dir / VAD_CACHE_DIR)
    name, index, settings, prompt, rep = cell
    result = asyncio.run(run_cell(cfg, out_dir, name, index, settings, prompt, rep, options))
    analysis = None
    if result.status == "ok":
        cell_dir = cell_folder(out_dir, name)
        try:
            analysis = analyse_cell(cell_dir, prompt, push_to_talk=settings.turn_detection is None)
        except Exception:  # aggregate() analyses the cell again and records why it failed
            log.debug("analysing cell %s on its worker failed", name, exc_info=True)
    return result, analysis


def lost_cell(out_dir: Path, cell: tuple[Any, ...], exc: BaseException) -> CellResult:
    """A cell whose task never finished (its workers kept dying) gets a ``cell.json`` with the error."""
    return _failed_cell(out_dir, cell, f"{type(exc).__name__}: {exc}")


def unseen_cell(out_dir: Path, cell: tuple[Any, ...], result: CellResult) -> CellResult | None:
    """A cell a Dask worker ran whose ``cell.json`` this process cannot see: failed, saying where it looked.

    The worker wrote the cell elsewhere (a folder it does not share with this process, or at the path
    this one has on another machine); counted as it said, the cell would be missing from the tables.
    None when the ``cell.json`` is there.
    """
    marker = cell_folder(out_dir, cell[0]) / CELL_FILE
    if marker.is_file():
        return None
    said = f"{result.status}: {result.error}" if result.error else result.status
    return _failed_cell(
        out_dir,
        cell,
        f"its Dask worker ran it ({said}), but its cell.json is not at {marker}: every worker must write "
        "the sweep folder at that path (a file system shared by the workers and this process, mounted alike)",
    )


def _failed_cell(out_dir: Path, cell: tuple[Any, ...], error: str) -> CellResult:
    """Record the cell as failed with ``error`` in a ``cell.json`` of its own."""
    name, _, _, prompt, rep = cell
    folder = cell_folder(out_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"cell": name, "prompt": prompt.id, "repeat": rep, "status": "error", "error": error}
    write_atomic(folder / CELL_FILE, json.dumps(meta, indent=2) + "\n")
    return CellResult(name, "error", error=error)
