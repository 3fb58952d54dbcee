"""Fit the emulator's latency model to runs made against Azure (``vlab calibrate``).

Each run folder (a session, a replay, or every cell of a sweep) gives samples of the stages of
:mod:`vlab.emulator.fitted_latency`, measured on the run's own timeline (the client's clock for
Azure, the simulated timeline for the emulator; ``docs/timeline.md``):

- ``endpointing`` = :func:`~vlab.metrics.turn_latency`'s ``uplink_ms`` (silence timer's end → ``speech_stopped``);
- ``commit`` = ``turn_commit_ms``, of the turns that stopped with no response in progress;
  ``first_text`` = ``ttft_ms``; ``first_audio`` = ``ttfb_audio_ms − ttft_ms``;
- ``audio_rate``: per response, the audio before its last delta ÷ the time from its first to its last
  delta (how much faster than real time the service streams);
- ``network``: on the client's clock, half of each ``session.update`` → ``session.updated`` round
  trip; on the emulator's simulated timeline, each ``speech_started``'s delay after the VAD decision the
  emulator stamps on it (:data:`vlab.protocol.DECIDED_MS_KEY`), the one delay the emulator draws
  ``network`` for;
- ``mcp_call`` = :func:`~vlab.metrics.tool_calls`' ``answer_ms`` of each MCP call (only runs with MCP calls);
- ``transcription`` = ``transcription_delay_ms`` (only runs with input transcription on).

:func:`calibrate` keeps every stage's empirical quantiles, overall and per voice and per model (a split
is kept when it has ``min_samples``), and the provenance: runs, dates, endpoint hosts, never a key.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from vlab import __version__, protocol
from vlab.emulator.fitted_latency import FITTED_STAGES, OPTIONAL_STAGES, Empirical, FittedLatency
from vlab.errors import ConfigError, VlabWarning, check_count, warn_user
from vlab.log import LOG_NAMES, is_run_folder, load_log
from vlab.log.files import RUN_FOLDER_HINT, SESSION_NAME
from vlab.metrics import tool_calls, turn_latency
from vlab.metrics.events import in_log_order, on_simulated_timeline, payload_of

__all__ = [
    "MIN_SAMPLES",
    "Calibration",
    "FewSamplesWarning",
    "calibrate",
    "find_runs",
    "ks_two_sample",
    "stage_samples",
]

MIN_SAMPLES = 50
"""Samples below which a stage is flagged (and a voice or model split is not kept)."""

_URL = re.compile(r"(?:wss?|https?)://[^\s)]+")


class FewSamplesWarning(VlabWarning):
    """A fitted stage rests on fewer samples than ``min_samples``: its tails are guesses."""


def find_runs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Run folders under ``paths``: each path is a run folder or holds some (a sweep's ``cells/``).

    Raises:
        ConfigError: A path that does not exist or holds no run folder.
    """
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"{str(path)!r} does not exist; give run folders or sweep folders")
        if is_run_folder(path):
            runs.append(path)
            continue
        found = sorted({p.parent for name in LOG_NAMES for p in path.rglob(name)})
        if not found:
            raise ConfigError(f"{str(path)!r} holds no run folder ({RUN_FOLDER_HINT})")
        runs.extend(found)
    return list(dict.fromkeys(runs))


def _run_info(run: Path, events: pd.DataFrame) -> dict[str, Any]:
    """Voice, model, start date, target kind and endpoint host of one run (from session.json and the log).

    ``emulator``: the server was vlab's emulator, embedded or not (its events carry its simulated time).
    """
    meta: dict[str, Any] = {}
    try:
        meta = json.loads((run / SESSION_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    target = meta.get("target") or {}
    description = str(target.get("description") or "")
    url = _URL.search(description)
    host = urlparse(url.group(0)).hostname if url else None
    voice, model = None, target.get("model")
    for kind in (protocol.SESSION_CREATED, protocol.SESSION_UPDATED):
        for payload in events.loc[events["type"] == kind, "payload"].tolist():
            session = payload_of(payload).get("session", {})
            v = session.get("voice")
            if v:
                voice = str(v.get("name", "")) if isinstance(v, dict) else str(v)
            model = model or session.get("model")
    started = meta.get("started_at")
    if started is None and "wall_time" in events.columns and len(events):
        started = pd.Timestamp(events["wall_time"].iloc[0]).isoformat()
    server_sim_ms = events["sim_ms"][events["direction"] == "server"] if "sim_ms" in events else None
    return {
        "run": str(run),
        "started_at": started,
        "target": target.get("kind"),
        "emulator": bool(server_sim_ms is not None and server_sim_ms.notna().any()),
        "endpoint_host": host,
        "model": model,
        "voice": voice,
    }


def _times_ms(events: pd.DataFrame, simulated: bool) -> np.ndarray:
    """Each event's time in ms on the log's timeline (server events at ``sim_ms`` when simulated)."""
    t = events["t_ns"].to_numpy(float) / 1e6
    if simulated:
        server = (events["direction"] == "server").to_numpy()
        t = np.where(server, events["sim_ms"].to_numpy(float), t)
    return t


def _audio_rates(events: pd.DataFrame, simulated: bool) -> list[float]:
    """Per response: audio before its last delta ÷ time from its first to its last delta."""
    t = _times_ms(events, simulated)
    deltas = events["type"].to_numpy() == protocol.AUDIO_DELTA
    rates = []
    frame = pd.DataFrame(
        {
            "rid": events["response_id"].to_numpy()[deltas],
            "t": t[deltas],
            "a": events["audio_ms"].to_numpy()[deltas],
        }
    )
    for _, g in frame.groupby("rid", sort=False):
        if len(g) < 2:
            continue
        span = float(g["t"].iloc[-1] - g["t"].iloc[0])
        audio = float(g["a"].iloc[:-1].astype(float).sum())
        if span > 0 and audio > 0:
            rates.append(audio / span)
    return rates


def _network(events: pd.DataFrame) -> list[float]:
    """Half of each ``session.update`` → ``session.updated`` round trip, in ms on the client's clock."""
    out = []
    sent: float | None = None
    for kind, direction, t_ns in zip(events["type"], events["direction"], events["t_ns"], strict=True):
        if direction == "client" and kind == protocol.CLIENT_SESSION_UPDATE:
            sent = float(t_ns)
        elif direction == "server" and kind == protocol.SESSION_UPDATED and sent is not None:
            out.append((float(t_ns) - sent) / 2e6)
            sent = None
    return out


def _network_simulated(events: pd.DataFrame) -> list[float]:
    """Each ``speech_started``'s delay after its VAD decision, in simulated ms.

    The emulator stamps where it decided (:data:`vlab.protocol.DECIDED_MS_KEY`); the event's ``sim_ms`` is
    when it reached the client. Runs whose events lack the stamp give none.
    """
    rows = events[(events["direction"] == "server") & (events["type"] == protocol.SPEECH_STARTED)]
    out = []
    for payload, sim_ms in zip(rows["payload"], rows["sim_ms"], strict=True):
        decided = payload_of(payload).get(protocol.DECIDED_MS_KEY)
        if isinstance(decided, (int, float)) and math.isfinite(float(sim_ms)):
            out.append(float(sim_ms) - float(decided))
    return out


def _mcp_calls(events: pd.DataFrame) -> list[float]:
    """Each MCP call's time to answer (:func:`~vlab.metrics.tool_calls`' ``answer_ms``) on the log's timeline."""
    calls = tool_calls(events)
    return calls.loc[calls["kind"] == "mcp", "answer_ms"].dropna().tolist()


def stage_samples(run: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every stage sample of one run folder, and what the run was (voice, model, date, endpoint host).

    Returns:
        A frame with columns ``stage``, ``value`` (ms, or × for ``audio_rate``), ``voice``, ``model``,
        ``run``; and the run's description for the provenance.
    """
    path = Path(run)
    events = load_log(path)
    events = in_log_order(events)
    info = _run_info(path, events)
    simulated = on_simulated_timeline(events)
    turns = turn_latency(events)
    vad = turns[turns["trigger"] == "vad"]
    waited = _commit_waited(turns)[vad.index]
    samples: dict[str, list[float]] = {
        "endpointing": vad["uplink_ms"].tolist(),
        "commit": vad.loc[~waited, "turn_commit_ms"].tolist(),
        "first_text": turns["ttft_ms"].tolist(),
        "first_audio": (turns["ttfb_audio_ms"] - turns["ttft_ms"]).tolist(),
        "audio_rate": _audio_rates(events, simulated),
        "network": _network_simulated(events) if simulated else _network(events),
        "mcp_call": _mcp_calls(events),
        "transcription": turns["transcription_delay_ms"].tolist(),
    }
    rows = [(stage, float(v)) for stage, values in samples.items() for v in values if math.isfinite(float(v))]
    frame = pd.DataFrame(rows, columns=["stage", "value"])
    frame["voice"], frame["model"], frame["run"] = info["voice"], info["model"], str(path)
    info["turns"] = len(turns)
    info["commits_waited"] = int(waited.sum())
    info["timeline"] = "simulated" if simulated else "client"
    chunks = events.loc[events["type"] == protocol.AUDIO_DELTA, "audio_ms"].astype(float)
    info["audio_chunk_ms"] = float(chunks.median()) if len(chunks) else math.nan
    return frame, info


def _commit_waited(turns: pd.DataFrame) -> pd.Series:
    """Whether each of :func:`turn_latency`'s turns stopped while an earlier response was in progress.

    The reply to such a turn starts only once that response has finished (the answer to a tool call the
    client asked for as the user spoke on, say), so its ``turn_commit_ms`` holds that wait: not a sample of
    the commit, which the emulator draws on top of the same wait. Every stamp compared is of a server
    event on one connection, so their order is the order the service sent them in.
    """
    stopped = turns["t_speech_stopped_ns"].to_numpy(float)[:, None]
    created = turns["t_created_ns"].to_numpy(float)[None, :]
    done = turns["t_done_ns"].to_numpy(float)[None, :]
    in_progress = (created < stopped) & ~(done <= stopped)
    return pd.Series(in_progress.any(axis=1), index=turns.index)


@dataclass
class Calibration:
    """What :func:`calibrate` fitted, and from what."""

    model: FittedLatency
    """The fitted model (save it with :meth:`FittedLatency.save`)."""
    samples: pd.DataFrame
    """Every sample: ``stage``, ``value``, ``voice``, ``model``, ``run``."""
    few: list[str] = field(default_factory=list)
    """Stages with fewer than ``min_samples`` samples (including none)."""

    @property
    def emulator_runs(self) -> list[str]:
        """The runs made against vlab's emulator, not Azure: what they fit is the emulator's own latency."""
        return [str(r["run"]) for r in self.model.provenance.get("runs", []) if r.get("emulator")]

    @property
    def commits_waited(self) -> int:
        """Turns whose reply waited for an earlier response to finish: no ``commit`` sample (``_commit_waited``)."""
        return sum(int(r.get("commits_waited", 0)) for r in self.model.provenance.get("runs", []))

    def table(self) -> pd.DataFrame:
        """One row per stage: ``stage``, ``n``, ``p50``, ``p90``, ``p99`` (ms; ``audio_rate`` in ×)."""
        rows = []
        for stage in FITTED_STAGES:
            dist = self.model.stages.get(stage)
            if dist is None and stage in OPTIONAL_STAGES:
                continue  # not measured (no MCP call in the runs): no row
            if dist is None:
                rows.append({"stage": stage, "n": 0, "p50": math.nan, "p90": math.nan, "p99": math.nan})
            else:
                q = dist.quantile
                rows.append({"stage": stage, "n": dist.n, "p50": q(0.5), "p90": q(0.9), "p99": q(0.99)})
        return pd.DataFrame(rows)

    def format_table(self) -> str:
        """The stage table as text, with a line per voice or model split kept."""
        lines = [f"{'stage':<12} {'n':>6} {'p50':>9} {'p90':>9} {'p99':>9}  unit"]
        for r in self.table().itertuples(index=False):
            unit = "x real time" if r.stage == "audio_rate" else "ms"
            flag = "  <- few samples" if r.stage in self.few else ""
            lines.append(f"{r.stage:<12} {r.n:>6} {r.p50:>9.1f} {r.p90:>9.1f} {r.p99:>9.1f}  {unit}{flag}")
        for label, splits in (("voice", self.model.by_voice), ("model", self.model.by_model)):
            for name, stages in splits.items():
                kept = ", ".join(f"{s} n={d.n} p50={d.quantile(0.5):.1f}" for s, d in stages.items())
                lines.append(f"  {label} {name}: {kept}")
        return "\n".join(lines)


def calibrate(paths: Sequence[str | os.PathLike[str]], *, min_samples: int = MIN_SAMPLES) -> Calibration:
    """Fit every stage's empirical distribution from the runs under ``paths``.

    Args:
        paths: Run folders, or folders holding them (a sweep).
        min_samples: Stages with fewer samples are named in one :class:`FewSamplesWarning`; voice and model splits
            with fewer are not kept (the emulator then draws from the overall distribution).

    Returns:
        The fitted model with its samples.

    Raises:
        ConfigError: No run folder, or no stage sample in any of them; ``min_samples`` is not a count ≥ 1.
    """
    check_count("min_samples", min_samples)
    runs = find_runs(paths)
    frames, infos = [], []
    for run in runs:
        frame, info = stage_samples(run)
        frames.append(frame)
        infos.append(info)
    samples = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if samples.empty:
        raise ConfigError(
            "no stage could be measured in " + ", ".join(map(str, runs)) + " (no answered turn in the logs)"
        )

    def fit(rows: pd.DataFrame) -> dict[str, Empirical]:
        return {
            str(stage): Empirical.fit(values.tolist())
            for stage, values in rows.groupby("stage", sort=False)["value"]
            if len(values)
        }

    stages = fit(samples)
    few = [
        s
        for s in FITTED_STAGES
        if (stages[s].n if s in stages else 0) < min_samples and (s in stages or s not in OPTIONAL_STAGES)
    ]
    if few:
        counts = ", ".join(f"{stage} ({stages[stage].n if stage in stages else 0})" for stage in few)
        warn_user(
            f"fewer than {min_samples} samples in {counts}: their quantiles (above all p99) are rough; "
            "calibrate on more turns",
            FewSamplesWarning,
        )

    def splits(column: str) -> dict[str, dict[str, Empirical]]:
        out: dict[str, dict[str, Empirical]] = {}
        keys = samples[column].dropna().unique()
        if len(keys) < 2:  # one voice or model: the overall distribution is the split
            return out
        for key, rows in samples.groupby(column):
            kept = {s: d for s, d in fit(rows).items() if d.n >= min_samples}
            if kept:
                out[str(key)] = kept
        return out

    dates = sorted(str(i["started_at"]) for i in infos if i.get("started_at"))
    chunks = [i["audio_chunk_ms"] for i in infos if math.isfinite(i["audio_chunk_ms"])]
    provenance = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vlab_version": __version__,
        "runs": [{k: v for k, v in i.items() if k != "audio_chunk_ms"} for i in infos],
        "dates": [dates[0], dates[-1]] if dates else [],
        "endpoint_hosts": sorted({str(i["endpoint_host"]) for i in infos if i.get("endpoint_host")}),
        "min_samples": min_samples,
    }
    model = FittedLatency(
        stages=stages,
        by_voice=splits("voice"),
        by_model=splits("model"),
        audio_chunk_ms=max(1, int(round(float(np.median(chunks))))) if chunks else 100,
        provenance=provenance,
    )
    return Calibration(model, samples, few)


def ks_two_sample(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test: the statistic D and its asymptotic p-value.

    A large p (> 0.05) means the two samples are consistent with one distribution.
    """
    x, y = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if not len(x) or not len(y):
        return math.nan, math.nan
    grid = np.concatenate([x, y])
    d = float(
        np.max(
            np.abs(np.searchsorted(x, grid, "right") / len(x) - np.searchsorted(y, grid, "right") / len(y))
        )
    )
    ne = len(x) * len(y) / (len(x) + len(y))
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    if lam < 1e-3:
        return d, 1.0
    p = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return d, min(max(p, 0.0), 1.0)
