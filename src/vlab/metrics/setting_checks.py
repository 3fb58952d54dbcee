"""Did a setting take effect? Checks of the turn detection a session asked for against what it got.

:func:`setting_took_effect` compares the turn detection sent with the one the service echoed;
:func:`canary_shift` checks that a longer silence timer moved the ends of speech by as much on a canary
prompt.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from vlab import protocol
from vlab.errors import warn_user
from vlab.metrics.events import require_columns, require_events

__all__ = ["canary_shift", "setting_took_effect"]


def _turn_detection(events: pd.DataFrame, direction: str, kind: str) -> list[dict[str, Any] | None]:
    rows = events[(events["direction"] == direction) & (events["type"] == kind)]
    out: list[dict[str, Any] | None] = []
    for payload in rows["payload"]:
        try:
            session = json.loads(payload).get("session", {})
        except (TypeError, ValueError):
            continue
        if "turn_detection" in session:
            out.append(session["turn_detection"])
    return out


def setting_took_effect(events: pd.DataFrame, *, tolerance: float = 1e-6) -> list[str]:
    """Differences between the turn detection last sent (``session.update``) and echoed (``session.updated``).

    Returns:
        One message per differing key (empty: the service echoed what was asked); a missing echo is
        one message too.
    """
    require_events(events)
    sent = _turn_detection(events, "client", protocol.CLIENT_SESSION_UPDATE)
    echoed = _turn_detection(events, "server", protocol.SESSION_UPDATED)
    if not sent:
        return []
    if not echoed:
        return ["no session.updated carried a turn_detection"]
    want, got = sent[-1], echoed[-1]
    if want is None or got is None:
        return [] if want == got else [f"turn_detection: sent {want!r}, service has {got!r}"]
    problems = []
    for key, value in want.items():
        have = got.get(key)
        same = (
            abs(float(value) - float(have)) <= tolerance
            if isinstance(value, (int, float))
            and isinstance(have, (int, float))
            and not isinstance(value, bool)
            else value == have
        )
        if not same:
            problems.append(f"turn_detection.{key}: sent {value!r}, service has {have!r}")
    return problems


def canary_shift(
    vad: pd.DataFrame, *, prompt: str, tolerance_ms: float = 100.0, warn: bool = True
) -> pd.DataFrame:
    """Check that ``silence_duration_ms`` moves ``speech_stopped`` by about as much, on one canary prompt.

    Args:
        vad: Detections of a sweep (``vad.parquet``: ``prompt``, ``silence_duration_ms``,
            ``audio_end_ms``, and ``cell``, or ``setting`` and ``run``: the first detection of each cell
            is used).
        prompt: The canary prompt id.
        tolerance_ms: Allowed difference between the observed and the expected shift.
        warn: Emit a :class:`~vlab.errors.VlabWarning` when a setting did not move the stop as expected.

    Returns:
        One row per silence duration: the median first ``audio_end_ms``, the shift from the smallest
        duration, the expected shift and ``ok``.
    """
    require_columns(
        vad, ["prompt", "silence_duration_ms", "audio_end_ms"], "a sweep's vad table (vad.parquet)"
    )
    cells = ["cell"] if "cell" in vad else [c for c in ("setting", "run") if c in vad]
    rows = vad[(vad["prompt"] == prompt) & vad["audio_end_ms"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=["silence_duration_ms", "audio_end_ms", "shift_ms", "expected_ms", "ok"])
    # each cell's first stop (not each silence duration's, which the settings that share it would share)
    first = rows.sort_values("audio_end_ms").groupby(["silence_duration_ms", *cells], sort=True).head(1)
    med = (
        first.groupby("silence_duration_ms")["audio_end_ms"]
        .median()
        .reset_index()
        .sort_values("silence_duration_ms")
    )
    base_sil, base_end = float(med["silence_duration_ms"].iloc[0]), float(med["audio_end_ms"].iloc[0])
    med["shift_ms"] = med["audio_end_ms"] - base_end
    med["expected_ms"] = med["silence_duration_ms"] - base_sil
    med["ok"] = (med["shift_ms"] - med["expected_ms"]).abs() <= tolerance_ms
    if warn and not med["ok"].all():
        bad = med[~med["ok"]]
        warn_user(
            f"silence_duration_ms did not move speech_stopped as expected on canary {prompt!r}: "
            + ", ".join(
                f"{int(s)} ms shifted {sh:.0f} ms (expected {ex:.0f})"
                for s, sh, ex in zip(
                    bad["silence_duration_ms"], bad["shift_ms"], bad["expected_ms"], strict=False
                )
            )
            + "; the service may be ignoring the setting"
        )
    return med
