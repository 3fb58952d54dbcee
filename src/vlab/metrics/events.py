"""Reading an event frame for the metrics: the input timeline and the session's VAD settings.

Also which timeline a log's figures are measured on: the emulator's simulated one, or the client's clock.
"""

from __future__ import annotations

import json
import math
from collections import namedtuple
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

import numpy as np
import pandas as pd

from vlab import protocol, protocol_limits
from vlab.errors import ConfigError

_TEXT_DELTAS = (protocol.AUDIO_TRANSCRIPT_DELTA, protocol.TEXT_DELTA)
_NS_PER_MS = 1e6


@dataclass(frozen=True)
class InputTimeline:
    """Where each input-audio offset left the client: built from the logged append rows.

    A microphone that stamps its chunks also logs ``vlab.capture`` anchors (an input offset and the
    time that sample was captured, on the client clock); with them :meth:`t_captured` gives when the
    user produced any later offset.

    Args:
        start_ms: ``audio_start_ms`` of each append (input-audio position before the chunk), sorted.
        end_ms: ``audio_end_ms`` of each append.
        t_ns: Send stamp of each append.
        anchor_ms: Input offset of each ``vlab.capture`` anchor, sorted.
        anchor_ns: Capture time of each anchor's sample.
    """

    start_ms: np.ndarray
    end_ms: np.ndarray
    t_ns: np.ndarray
    anchor_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    anchor_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @classmethod
    def from_events(cls, events: pd.DataFrame) -> InputTimeline:
        """The client ``input_audio_buffer.append`` rows of an event frame (rows without offsets are skipped)."""
        kinds, directions = events["type"], events["direction"]
        appends = (directions == "client") & (kinds == protocol.CLIENT_APPEND)
        rows = events.loc[appends, ["audio_start_ms", "audio_end_ms", "t_ns"]]
        rows = rows.dropna(subset=["audio_start_ms", "audio_end_ms"]).sort_values("audio_start_ms")
        anchors = events.loc[
            (directions == "local") & (kinds == protocol.CAPTURE), ["audio_start_ms", "t_ns"]
        ]
        anchors = anchors.dropna(subset=["audio_start_ms"]).sort_values("audio_start_ms")
        return cls(
            rows["audio_start_ms"].to_numpy(float),
            rows["audio_end_ms"].to_numpy(float),
            rows["t_ns"].to_numpy(np.int64),
            anchors["audio_start_ms"].to_numpy(float),
            anchors["t_ns"].to_numpy(np.int64),
        )

    def t_captured(self, a_ms: float) -> float:
        """Capture time (ns, as float) of the input sample at ``a_ms``, from the last anchor at or before it.

        NaN without such an anchor (a replayed file has none: its samples were never captured).
        """
        if not len(self.anchor_ms) or not math.isfinite(a_ms):
            return math.nan
        k = int(np.searchsorted(self.anchor_ms, a_ms, side="right")) - 1
        if k < 0:
            return math.nan
        return float(self.anchor_ns[k]) + (a_ms - float(self.anchor_ms[k])) * _NS_PER_MS

    @property
    def empty(self) -> bool:
        """No append was logged."""
        return len(self.t_ns) == 0

    @property
    def sent_ms(self) -> float:
        """Input audio sent in total, in ms."""
        return float(self.end_ms[-1]) if len(self.end_ms) else 0.0

    def t_sent(self, a_ms: float, *, interpolate: bool = False) -> float:
        """Client stamp (ns, as float) at which the sample ending at ``a_ms`` was sent; NaN if never sent.

        The sample belongs to the first chunk whose end is at or after ``a_ms``; by default the
        chunk's send stamp is returned (a sample leaves the client with its chunk, so nothing the
        server does can precede it). With ``interpolate`` the time is interpolated between that chunk's
        stamp and the next one's, which at real-time pacing is when a live talker would have said it
        (vlab's pacer sends each chunk when its first sample is due, so the two differ by at most one
        chunk, 20 ms by default).
        """
        if self.empty or not math.isfinite(a_ms) or a_ms < 0 or a_ms > self.end_ms[-1] + 1e-6:
            return math.nan
        k = int(np.searchsorted(self.end_ms, a_ms - 1e-9, side="left"))
        k = min(k, len(self.t_ns) - 1)
        t = float(self.t_ns[k])
        if interpolate and k + 1 < len(self.t_ns):
            span = self.end_ms[k] - self.start_ms[k]
            frac = (a_ms - self.start_ms[k]) / span if span > 0 else 0.0
            t += frac * float(self.t_ns[k + 1] - self.t_ns[k])
        return t

    def position_at(self, t_ns: float) -> float:
        """Input audio (ms) the client had sent by ``t_ns`` (0 before the first append)."""
        if self.empty or not math.isfinite(t_ns):
            return math.nan
        k = int(np.searchsorted(self.t_ns, t_ns, side="right"))
        return float(self.end_ms[k - 1]) if k > 0 else 0.0


TURNS_FRAME = "turns, from vlab.metrics.turn_latency or a sweep's turns table"
"""What a function that takes turns expected, for :func:`require_columns`."""


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise a :class:`ConfigError` saying ``what`` was expected when ``frame`` lacks one of ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"expected {what}; got a {type(frame).__name__}, not a pandas DataFrame")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        shown = [str(column) for column in frame.columns[:8]] + ["…"] * (len(frame.columns) > 8)
        raise ConfigError(
            f"expected {what}; this frame lacks {', '.join(missing)} (it has {', '.join(shown) or 'no columns'})"
        )


FRAME_KEYS = ("type", "direction", "t_ns")
"""The columns of an event frame that every analysis reads (a log's frame has all of ``EVENT_COLUMNS``)."""


def require_events(events: pd.DataFrame) -> None:
    """Raise a :class:`ConfigError` when ``events`` is not an event frame (it lacks :data:`FRAME_KEYS`)."""
    require_columns(events, FRAME_KEYS, "an event frame, from vlab.load_log(run_dir) or Session.frame()")


def in_log_order(events: pd.DataFrame) -> pd.DataFrame:
    """The frame in ``seq`` order: itself when it is already (a log's frame is), else sorted by ``seq``.

    Raises:
        ConfigError: ``events`` is not an event frame (it lacks :data:`FRAME_KEYS`).
    """
    require_events(events)
    if "seq" not in events.columns:
        return events
    seq = events["seq"].to_numpy()
    if len(seq) < 2 or bool((seq[1:] > seq[:-1]).all()):
        return events
    return events.sort_values("seq")


def rows_of(events: pd.DataFrame, *columns: str) -> Iterator[Any]:
    """The rows of an event frame's ``columns``, as named tuples of Python values (``pd.NA`` where missing).

    What ``events[list(columns)].itertuples(index=False)`` gives, about eight times faster on a log's
    frame (its string columns are Arrow arrays, slow to iterate a cell at a time).
    """
    return map(_row_type(columns)._make, zip(*(events[c].tolist() for c in columns), strict=True))


@cache
def _row_type(columns: tuple[str, ...]) -> Any:
    return namedtuple("Row", columns)


def payload_of(value: Any) -> dict[str, Any]:
    """A record's ``payload`` JSON as a dict (``{}`` when missing or not an object)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return {}
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


UNLOGGED_VAD: Final = protocol_limits.turn_detection_defaults(
    protocol_limits.SERVER_VAD, protocol_limits.VLAB_DEFAULTS_API_VERSION
)
"""The server VAD taken for a log that names none: vlab's defaults (``vlab.ServerVad()``'s)."""


def session_vad_settings(events: pd.DataFrame) -> dict[str, Any]:
    """The turn detection in force at the end of the log.

    That is the last ``session.updated`` echo, else the last ``session.update`` sent (``{}`` when
    neither names one or it was off).
    """
    for direction, kind in (("server", protocol.SESSION_UPDATED), ("client", protocol.CLIENT_SESSION_UPDATE)):
        payloads = events.loc[(events["direction"] == direction) & (events["type"] == kind), "payload"]
        for payload in reversed(payloads.tolist()):
            session = payload_of(payload).get("session", {})
            if "turn_detection" in session:
                return session["turn_detection"] or {}
    return {}


def on_simulated_timeline(events: pd.DataFrame) -> bool:
    """Whether a log comes from vlab's emulator fed on its input timeline (see :mod:`vlab.feed`).

    True when the client told the emulator ``vlab.timeline = "input"`` and the server events carry
    their simulated times (``sim_ms``).
    """
    if "sim_ms" not in events.columns:
        return False
    directions = events["direction"]
    sim_ms = events.loc[directions == "server", "sim_ms"]
    if sim_ms.empty or sim_ms.isna().any():
        return False
    updates = (directions == "client") & (events["type"] == protocol.CLIENT_SESSION_UPDATE)
    for payload in events.loc[updates, "payload"].tolist():
        if protocol.timeline_mode(payload_of(payload)) == protocol.TIMELINE_INPUT:
            return True
    return False


def span_ms(later: float, earlier: float) -> float:
    """``later - earlier`` (ns stamps) in ms; NaN when either is missing."""
    return (later - earlier) / _NS_PER_MS if math.isfinite(later) and math.isfinite(earlier) else math.nan


def as_float(value: Any) -> float:
    """A frame cell as a float (NaN when missing or not a number)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def as_str(value: Any) -> str | None:
    """A frame cell as a string (None when missing)."""
    return (
        None
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
        else str(value)
    )
