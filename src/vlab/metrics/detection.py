"""Turn detection against labelled speech: segment and turn scores, and each setting's operating point.

Detections are rows with ``audio_start_ms``/``audio_end_ms`` (what the server reported on the
input-audio clock), the speech they imply (``onset_ms = audio_start_ms + prefix_padding_ms``,
``offset_ms = audio_end_ms − silence_duration_ms``, or the VAD's own values in a preview), how much
earlier each may have been (:data:`ONSET_EARLIEST`, :data:`OFFSET_EARLIEST`) and ``responded`` (whether
the end of that detection started a response). They come from a session log
(:func:`detections_from_events`) or from vlab's own VAD run offline (:func:`vlab.metrics.vad_preview`).

Segment level: onset error, end-of-speech delay (``audio_end_ms − off``), detection error rate
(``(false alarm + missed speech) / reference speech``, 10 ms frames), missed / false / split / merged
segments (:func:`match_segments`), false starts per minute on noise-only audio.

Turn level (:func:`score_prompt`): false cut-offs (a response started while the labelled turn was still
going, counted per turn and per hold span), missed turns, turns per expected turn, and dead air on the
correctly ended turns. Across settings: :func:`operating_points`, with 95 % intervals
(:mod:`vlab.metrics.intervals`) and the Pareto frontier (:mod:`vlab.metrics.tradeoff`, which also
chooses the best setting within a budget).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vlab import protocol
from vlab.errors import check_number
from vlab.metrics.events import (
    TURNS_FRAME,
    UNLOGGED_VAD,
    as_float,
    in_log_order,
    require_columns,
    require_events,
    session_vad_settings,
)
from vlab.metrics.intervals import poisson_interval, wilson_interval
from vlab.metrics.summary import bootstrap_ci, bootstrap_ratio
from vlab.metrics.tradeoff import pareto_front
from vlab.prompts import NOISE_ONLY, require_prompt

if TYPE_CHECKING:
    import numpy.typing as npt

    from vlab.prompts import LabelledPrompt

    Times = npt.NDArray[np.float64]
    """Times in ms, one per detection (NaN where none)."""

__all__ = [
    "DETECTION_COLUMNS",
    "OFFSET_EARLIEST",
    "ONSET_EARLIEST",
    "POINT_FLAGS",
    "POINT_INTERVALS",
    "POINT_MEASURES",
    "detection_error_rate",
    "detections_from_boundaries",
    "detections_from_events",
    "match_segments",
    "operating_points",
    "score_prompt",
]

DETECTION_COLUMNS = ("audio_start_ms", "audio_end_ms", "onset_ms", "offset_ms", "responded")
"""Columns every detection frame has."""

ONSET_EARLIEST = "onset_earliest_ms"
"""Column of the earliest the speech of a detection may have begun: ``onset_ms`` where that is exact, and
``audio_start_ms`` where the server clamped the padding (``audio_start_ms`` is 0, the start of the audio,
or the previous ``speech_stopped``'s ``audio_end_ms``: a turn never starts before the previous one ended),
so that the speech began somewhere between the two. :func:`score_prompt` leaves that span out of the DER
and counts an onset inside it as on time; a frame without the column has exact onsets. On vlab's VAD over
the bundled prompts (paddings 100 to 500 ms, silences 200 to 1000 ms, 2026-12-07) 187 of 496 onsets were
clamped; taken as exact, they made the DER grow with the padding: 0.15 at 500 ms, where the VAD's own
onsets give 0.04."""

OFFSET_EARLIEST = "offset_earliest_ms"
"""Column of the earliest the speech of a detection may have ended: ``offset_ms`` where that is exact, and
``audio_end_ms`` less the end-of-utterance wait (:func:`vlab.protocol_limits.eou_timeout_ms`, counted from
the end of the speech) where turn detection may hold a turn for more speech: its ``audio_end_ms`` then
comes after however much of that wait ran, so the speech ended somewhere between (after it began).
:func:`score_prompt` leaves that span out of the DER: a prompt whose labelled speech lies wholly in such
spans has none. Taken as exact, the wait counted as false alarm: on the bundled prompts at ``sil=300``
(2026-12-07), end-of-utterance detection with a 1200 ms wait gave a DER of 0.29 against 0.07 without it;
with both spans left out, 0.20 against 0.04, the rest being the pauses it held (the server's speech runs
through them)."""

SCORE_KEYS = (
    "category", "expected_turns", "cutoff_turns", "holds", "holds_cut", "missed_turns", "responses",
    "dead_air_ms", "der",
)  # fmt: skip
"""The columns of :func:`score_prompt`'s rows that :func:`operating_points` aggregates (``total_tokens`` is
optional; ``false_starts`` and ``duration_ms`` are read for noise-only runs)."""

POINT_MEASURES = (
    "false_cutoff_rate",
    "hold_cut_rate",
    "missed_turn_rate",
    "turns_per_expected",
    "tokens_per_expected_turn",
    "dead_air_ms",
    "der",
    "false_starts_per_min",
)
"""What :func:`operating_points` measures per setting, in the order reports and panels show it."""
POINT_INTERVALS = (
    "false_cutoff_rate",
    "hold_cut_rate",
    "missed_turn_rate",
    "tokens_per_expected_turn",
    "dead_air_ms",
    "der",
    "false_starts_per_min",
)
"""The measures :func:`operating_points` gives a 95 % interval (``<measure>_lo``, ``<measure>_hi``): the
Wilson interval of each rate over what it counts (labelled turns, or pauses), a bootstrap one over the runs
of the tokens per expected turn and of the mean DER, one over the turns (or, without them, the runs) of the
median dead air, and the exact Poisson interval
of the false starts over the minutes of noise. With a few prompts they are wide: two settings whose
intervals overlap may not differ."""
_NONE_BY_DESIGN = (*(m for m in POINT_INTERVALS if m.endswith("_rate")), "false_starts_per_min")
"""The measures a push-to-talk reference has none of by design (no VAD: no cut-off, miss or false start),
so no interval either."""
POINT_FLAGS = ("baseline", "reference", "pareto")
"""What :func:`operating_points` marks per setting, shown after its measures."""

Span = tuple[float, float]


def detections_from_events(
    events: pd.DataFrame,
    *,
    silence_duration_ms: float | None = None,
    prefix_padding_ms: float | None = None,
    turn_hold_ms: float | None = None,
) -> pd.DataFrame:
    """Server VAD detections of a session log, one row per ``speech_started``/``speech_stopped`` pair.

    Args:
        events: An event frame.
        silence_duration_ms: Default: from the logged session (else :data:`~vlab.metrics.events.UNLOGGED_VAD`'s).
        prefix_padding_ms: Default: from the logged session (else :data:`~vlab.metrics.events.UNLOGGED_VAD`'s).
        turn_hold_ms: The longest wait for more speech, from its end, before a turn ends (its
            end-of-utterance detection's ``timeout_ms``); default: from the logged session (none when it
            logged none).

    Returns:
        :data:`DETECTION_COLUMNS`, :data:`ONSET_EARLIEST`, :data:`OFFSET_EARLIEST` and ``item_id``; a turn
        still open at the end has NaN ``audio_end_ms``.
    """
    from vlab.protocol_limits import eou_timeout_ms

    require_events(events)
    given = None not in (silence_duration_ms, prefix_padding_ms, turn_hold_ms)
    td = {} if given else session_vad_settings(events)
    sil = float(
        silence_duration_ms
        if silence_duration_ms is not None
        else td.get("silence_duration_ms", UNLOGGED_VAD.silence_duration_ms)
    )
    pad = float(
        prefix_padding_ms
        if prefix_padding_ms is not None
        else td.get("prefix_padding_ms", UNLOGGED_VAD.prefix_padding_ms)
    )
    ev = in_log_order(events)
    server = ev["direction"] == "server"
    columns = [
        ev.loc[server, c].tolist() if c in ev.columns else [None] * int(server.sum())
        for c in ("type", "audio_start_ms", "audio_end_ms", "item_id")
    ]
    hold = turn_hold_ms if turn_hold_ms is not None else eou_timeout_ms(td) or 0.0
    return detections_from_boundaries(
        zip(*columns, strict=True), silence_duration_ms=sil, prefix_padding_ms=pad, turn_hold_ms=hold
    )


def detections_from_boundaries(
    events: Iterable[tuple[str, Any, Any, Any]],
    *,
    silence_duration_ms: float,
    prefix_padding_ms: float,
    turn_hold_ms: float = 0.0,
) -> pd.DataFrame:
    """Server VAD detections of a sequence of server events, as :func:`detections_from_events` reads them.

    Args:
        events: ``(type, audio_start_ms, audio_end_ms, item_id)`` of each server event, in order (the ms
            of the events that do not have them are ignored).
        silence_duration_ms: The session's, to place each offset.
        prefix_padding_ms: The session's, to place each onset.
        turn_hold_ms: The longest wait for more speech, from its end, before a turn ends
            (:data:`OFFSET_EARLIEST`).
    """
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    unanswered: dict[str, Any] | None = None  # the last detection that ended, while no response followed it
    clamped_at = 0.0  # where the next speech_started's padding is cut short: the last audio_end_ms
    for kind, start_ms, end_ms, item_id in events:
        if kind == protocol.SPEECH_STARTED:
            start = as_float(start_ms)  # NaN when not logged
            current = {"audio_start_ms": start, "audio_end_ms": math.nan, "item_id": item_id}
            current["onset_ms"] = start + prefix_padding_ms
            current[ONSET_EARLIEST] = start if start == clamped_at else current["onset_ms"]
            current["offset_ms"] = current[OFFSET_EARLIEST] = math.nan
            current["responded"] = False
            rows.append(current)
        elif kind == protocol.SPEECH_STOPPED:
            if current is None or not math.isnan(current["audio_end_ms"]):
                current = {
                    "audio_start_ms": math.nan,
                    "onset_ms": math.nan,
                    ONSET_EARLIEST: math.nan,
                    "item_id": item_id,
                    "responded": False,
                }
                rows.append(current)
            end = as_float(end_ms)
            current["audio_end_ms"] = end
            current["offset_ms"] = end - silence_duration_ms
            # no earlier than the wait before end, nor before the speech began
            earliest = max(end - turn_hold_ms, current[ONSET_EARLIEST])
            current[OFFSET_EARLIEST] = min(current["offset_ms"], earliest)
            if not math.isnan(end):
                clamped_at = end
            unanswered = current
        elif kind == protocol.RESPONSE_CREATED and unanswered is not None:
            # The response to the turn that ended last, even when the user's next speech_started came
            # first: the two can share a simulated ms, and their order must not decide the score.
            unanswered["responded"] = True
            unanswered = None
            if current is not None and not math.isnan(current["audio_end_ms"]):
                current = None
    *times, responded = DETECTION_COLUMNS
    floats = (*times, ONSET_EARLIEST, OFFSET_EARLIEST)
    data: dict[str, Any] = {c: np.array([r[c] for r in rows], dtype=float) for c in floats}
    data[responded] = np.array([r[responded] for r in rows], dtype=bool)
    data["item_id"] = pd.array([r["item_id"] for r in rows], dtype="string")
    return pd.DataFrame(data)


def _frames(spans: Iterable[Span], n: int, step_ms: float) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for on, off in spans:
        if not (math.isfinite(on) and math.isfinite(off)) or off <= on:
            continue
        mask[max(0, int(round(on / step_ms))) : max(0, int(round(off / step_ms)))] = True
    return mask


def detection_error_rate(
    reference: Sequence[Span],
    hypothesis: Sequence[Span],
    duration_ms: float,
    *,
    step_ms: float = 10.0,
    unscored: Sequence[Span] = (),
) -> dict[str, float]:
    """pyannote-style detection error rate on ``step_ms`` frames, leaving out the ``unscored`` spans.

    Returns:
        ``false_alarm_ms``, ``missed_ms``, ``reference_ms`` and ``der`` = (false alarm + missed) /
        reference (NaN with no reference speech).

    Raises:
        ConfigError: ``duration_ms`` is not a number ≥ 0, or ``step_ms`` not > 0.
    """
    check_number("duration_ms", duration_ms)
    check_number("step_ms", step_ms, 1e-3)
    n = int(math.ceil(duration_ms / step_ms)) + 1
    scored = ~_frames(unscored, n, step_ms)
    ref = _frames(reference, n, step_ms) & scored
    hyp = _frames(hypothesis, n, step_ms) & scored
    fa = float((hyp & ~ref).sum() * step_ms)
    miss = float((ref & ~hyp).sum() * step_ms)
    total = float(ref.sum() * step_ms)
    return {
        "false_alarm_ms": fa,
        "missed_ms": miss,
        "reference_ms": total,
        "der": (fa + miss) / total if total > 0 else math.nan,
    }


def _overlaps(a: Span, b: Span) -> bool:
    return min(a[1], b[1]) > max(a[0], b[0])


def match_segments(reference: Sequence[Span], hypothesis: Sequence[Span]) -> dict[str, int]:
    """Count missed, false, split and merged segments by overlap.

    A reference segment with no overlapping hypothesis is *missed*, with several it is *split*; a
    hypothesis with no overlapping reference is *false*, one spanning several references is *merged*.
    """
    ref = [s for s in reference if math.isfinite(s[0]) and math.isfinite(s[1])]
    hyp = [s for s in hypothesis if math.isfinite(s[0]) and math.isfinite(s[1])]
    per_ref = [sum(_overlaps(r, h) for h in hyp) for r in ref]
    per_hyp = [sum(_overlaps(h, r) for r in ref) for h in hyp]
    return {
        "reference": len(ref),
        "hypothesis": len(hyp),
        "matched": sum(
            1
            for r, c in zip(ref, per_ref, strict=False)
            if c == 1 and all(n == 1 for h, n in zip(hyp, per_hyp, strict=False) if _overlaps(r, h))
        ),
        "missed": sum(1 for c in per_ref if c == 0),
        "split": sum(1 for c in per_ref if c > 1),
        "false": sum(1 for c in per_hyp if c == 0),
        "merged": sum(1 for c in per_hyp if c > 1),
    }


def score_prompt(
    prompt: LabelledPrompt,
    detections: pd.DataFrame,
    *,
    dead_air_ms: Mapping[float, float] | None = None,
    tolerance_ms: float = 250.0,
) -> dict[str, Any]:
    """Score one run of one prompt against its labels.

    Args:
        prompt: The labelled prompt.
        detections: Its detections (:func:`detections_from_events` or one prompt of :func:`vad_preview`);
            with :data:`ONSET_EARLIEST` and :data:`OFFSET_EARLIEST`, an onset or offset known only to lie
            in a span is scored as such.
        dead_air_ms: Measured dead air per detection, keyed by ``audio_end_ms`` (from
            :func:`vlab.metrics.turn_latency`'s ``dead_air_ms``); a turn whose reply was never heard (NaN:
            cancelled before its first audio, as the user spoke on) has none. Without it, dead air is the
            end-of-turn wait on the audio clock (``audio_end_ms − end of turn``).
        tolerance_ms: A detection starting this much before a labelled turn still belongs to it.

    Returns:
        A flat dict: the prompt's ``duration_ms``, segment scores (``onset_error_ms``, ``eos_delay_ms``,
        ``der``, match counts, ``false_starts``, ``false_starts_per_min``) and turn scores (``expected_turns``,
        ``detected_turns``, ``responses``, ``cutoff_turns``, ``false_cutoffs``, ``holds``,
        ``holds_cut``, ``missed_turns``, ``turns_per_expected``, ``dead_air_ms`` (median over the
        turns whose real end was detected, cut off earlier or not; given ``dead_air_ms``, those whose
        reply was heard), ``ended_turns``).

    Raises:
        ConfigError: ``prompt`` is not a labelled prompt, ``detections`` lack their columns, or
            ``tolerance_ms`` is negative.
    """
    require_prompt(prompt, "score_prompt")
    check_number("tolerance_ms", tolerance_ms)
    read = ("onset_ms", "offset_ms", "audio_end_ms", "responded")
    require_columns(detections, read, "detections, from vlab.metrics.detections_from_events or vad_preview")
    onset, offset, audio_end = (detections[c].to_numpy(dtype=float, na_value=np.nan) for c in read[:3])
    earliest_onset, earliest_offset = (
        np.fmin(detections[column].to_numpy(dtype=float, na_value=np.nan), exact)
        if column in detections
        else exact
        for column, exact in ((ONSET_EARLIEST, onset), (OFFSET_EARLIEST, offset))
    )
    out: dict[str, Any] = {
        "prompt": prompt.id,
        "category": prompt.category,
        "duration_ms": prompt.duration_ms,
    }
    out.update(_segment_scores(prompt, onset, offset, earliest_onset, earliest_offset))
    out.update(_timing_scores(prompt, onset, offset, audio_end, earliest_onset, tolerance_ms))
    n_false = int((~np.isnan(onset)).sum()) if prompt.category == NOISE_ONLY else out["false"]
    out["false_starts"] = int(n_false)
    out["false_starts_per_min"] = n_false / (prompt.duration_ms / 60000.0) if prompt.duration_ms else math.nan
    answered = detections["responded"].to_numpy(dtype=bool, na_value=False) & ~np.isnan(audio_end)
    detected = int((~np.isnan(audio_end)).sum())
    out.update(_turn_scores(prompt, audio_end[answered].tolist(), detected, dead_air_ms, tolerance_ms))
    return out


def _segment_scores(
    prompt: LabelledPrompt,
    onset: Times,
    offset: Times,
    earliest_onset: Times,
    earliest_offset: Times,
) -> dict[str, Any]:
    """The detected speech against the labelled segments: matches and the detection error rate.

    An onset or offset known only to lie in a span (its earliest time before it) leaves that span unscored.
    """
    hyp = list(zip(onset.tolist(), offset.tolist(), strict=True))
    ref = list(prompt.speech_segments)
    unknown = [
        (a, b)
        for a, b in zip(
            [*earliest_onset.tolist(), *earliest_offset.tolist()],
            [*onset.tolist(), *offset.tolist()],
            strict=True,
        )
        if a < b
    ]
    return {
        **match_segments(ref, hyp),
        **detection_error_rate(ref, hyp, prompt.duration_ms, unscored=unknown),
    }


def _timing_scores(
    prompt: LabelledPrompt,
    onset: Times,
    offset: Times,
    audio_end: Times,
    earliest_onset: Times,
    tolerance_ms: float,
) -> dict[str, float]:
    """The mean onset error and end-of-speech delay over the labelled turns the detections found."""
    starts = prompt.turn_starts_ms
    eots = prompt.end_of_turn_ms
    onset_errors: list[float] = []
    eos_delays: list[float] = []
    for j, (start, eot) in enumerate(zip(starts, eots, strict=False)):
        nxt = starts[j + 1] if j + 1 < len(starts) else math.inf
        inside = np.flatnonzero((onset >= start - tolerance_ms) & (onset < eot))
        if len(inside):  # an onset known only to lie in a span is on time when the label is in it
            k = inside[0]
            onset_errors.append(min(max(start, float(earliest_onset[k])), float(onset[k])) - start)
        ends_here = np.flatnonzero((offset >= eot - tolerance_ms) & (audio_end < nxt + tolerance_ms))
        if len(ends_here):
            eos_delays.append(float(audio_end[ends_here[0]]) - eot)
    return {
        "onset_error_ms": float(np.mean(onset_errors)) if onset_errors else math.nan,
        "eos_delay_ms": float(np.mean(eos_delays)) if eos_delays else math.nan,
    }


def _turn_scores(
    prompt: LabelledPrompt,
    responded: list[float],
    detected: int,
    dead_air_ms: Mapping[float, float] | None,
    tolerance_ms: float,
) -> dict[str, Any]:
    """Turns cut off, held, ended and missed by the responses (each at its ``audio_end_ms``), and dead air.

    ``detected`` counts the turns the server ended, answered or not.
    """
    starts = prompt.turn_starts_ms
    eots = prompt.end_of_turn_ms
    cut_turns: set[int] = set()
    false_cutoffs = 0
    ended_by: dict[int, float] = {}
    for end in responded:
        for j, (start, eot) in enumerate(zip(starts, eots, strict=False)):
            nxt = starts[j + 1] if j + 1 < len(starts) else math.inf
            if start - tolerance_ms <= end < eot:
                cut_turns.add(j)
                false_cutoffs += 1
                break
            if eot <= end < nxt and j not in ended_by:
                ended_by[j] = end
                break
    holds_cut = sum(1 for h0, h1 in prompt.hold_spans if any(h0 <= e <= h1 + tolerance_ms for e in responded))
    dead: list[float] = []
    for j, end in ended_by.items():  # a turn cut off earlier still has its real end answered
        if dead_air_ms is None:  # no replies measured (a VAD-only sweep): the wait on the audio clock
            dead.append(end - eots[j])
        elif math.isfinite(measured := float(dead_air_ms.get(end, math.nan))):
            dead.append(measured)
        # else its reply was never heard (cancelled before its first audio as the user spoke on): no wait
    expected = len(eots)
    return dict(
        expected_turns=expected,
        detected_turns=detected,
        responses=len(responded),
        cutoff_turns=len(cut_turns),
        false_cutoffs=false_cutoffs,
        holds=len(prompt.hold_spans),
        holds_cut=holds_cut,
        ended_turns=len(ended_by),
        missed_turns=expected - len(ended_by),
        turns_per_expected=len(responded) / expected if expected else math.nan,
        dead_air_ms=float(np.median(dead)) if dead else math.nan,
    )


def operating_points(
    scores: pd.DataFrame,
    *,
    by: str | Sequence[str] = "setting",
    baseline: str | None = None,
    reference: str | None = None,
    turns: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Aggregate per-run scores (rows of :func:`score_prompt` plus ``by`` columns) into one point per setting.

    A ``total_tokens`` column in ``scores`` (the tokens each run's responses used: their ``usage``, input
    and output, summed) gives ``tokens_per_expected_turn``: what a setting costs, since each response
    the service starts is billed, the extra ones a cut-off starts included.

    Args:
        scores: Per-run scores: rows of :func:`score_prompt` with the ``by`` columns (a sweep's ``scores``).
        by: The column or columns that name a setting.
        baseline: The setting marked ``baseline``.
        reference: The setting marked ``reference``: a yardstick such as push-to-talk, drawn beside the
            settings and never on their frontier.
        turns: The runs' turns (:func:`vlab.metrics.turn_latency` rows with the ``by`` columns, a sweep's
            ``turns`` table): dead air is then the median over the turns the user spoke
            (:func:`vlab.metrics.spoken_turns`), with a bootstrap interval over them, the figure the
            report's dead-air chart and ``vlab compare`` show. Without them (a VAD-only sweep), the
            median of the runs' medians, with a bootstrap over the runs.

    Returns:
        Per setting: ``false_cutoff_rate`` (cut turns / expected turns), ``hold_cut_rate`` (cut holds /
        holds), ``missed_turn_rate``, ``turns_per_expected``, ``tokens_per_expected_turn`` (tokens of the
        runs with speech / their expected turns; only with ``total_tokens``, NaN when a run's are
        unknown), ``dead_air_ms`` (see ``turns``), ``der`` (mean),
        ``false_starts_per_min`` (the noise-only runs' false starts over their minutes; the mean of their
        rates for scores without ``duration_ms``), ``runs``, ``baseline`` (the setting named
        ``baseline``), ``reference`` (the setting named ``reference``: a yardstick such as push-to-talk,
        drawn beside the settings and never on their frontier) and ``pareto`` (on the frontier of the
        other settings); and the 95 % intervals of :data:`POINT_INTERVALS` (none of the reference's rates
        or false starts).
    """
    keys = [by] if isinstance(by, str) else list(by)
    require_columns(
        scores,
        [*keys, *SCORE_KEYS],
        "per-run scores, from vlab.metrics.score_prompt or a sweep's scores table",
    )
    waits = _turn_dead_air(turns, keys)
    rows = []
    for key, runs in scores.groupby(keys, sort=True):
        key_t = key if isinstance(key, tuple) else (key,)
        turn_waits = None if waits is None else waits.get(key_t, pd.Series(dtype=float))
        rows.append({**dict(zip(keys, key_t, strict=False)), **_setting_point(runs, turn_waits)})
    points = pd.DataFrame(rows)
    if points.empty:
        return points
    points["baseline"] = points[keys[0]] == baseline if baseline is not None else False
    points["reference"] = points[keys[0]] == reference if reference is not None else False
    bounds = [f"{m}_{end}" for m in _NONE_BY_DESIGN for end in ("lo", "hi") if f"{m}_{end}" in points]
    points.loc[points["reference"], bounds] = math.nan  # it cannot cut off, miss or start on noise
    compared = points[~points["reference"]]
    points["pareto"] = pareto_front(compared).reindex(points.index, fill_value=False)
    intervals = [f"{m}_{end}" for m in POINT_INTERVALS if f"{m}_lo" in points for end in ("lo", "hi")]
    ordered = [*keys, "runs", *(m for m in POINT_MEASURES if m in points), *intervals, *POINT_FLAGS]
    return points[ordered]


def _setting_point(runs: pd.DataFrame, turn_waits: pd.Series | None) -> dict[str, Any]:
    """One setting's :func:`operating_points` measures and their intervals, from its runs' scores.

    Its dead air is the median of ``turn_waits`` (the dead air of the turns the user spoke), or without
    them the median of its runs' medians.
    """
    speech = runs[runs["expected_turns"] > 0]
    dead_air = speech["dead_air_ms"] if turn_waits is None else turn_waits
    expected = float(speech["expected_turns"].sum())
    holds = float(runs["holds"].sum())
    point: dict[str, Any] = {
        "runs": len(runs),
        "false_cutoff_rate": float(speech["cutoff_turns"].sum()) / expected if expected else math.nan,
        "hold_cut_rate": float(runs["holds_cut"].sum()) / holds if holds else math.nan,
        "missed_turn_rate": float(speech["missed_turns"].sum()) / expected if expected else math.nan,
        "turns_per_expected": float(speech["responses"].sum()) / expected if expected else math.nan,
        "der": float(speech["der"].mean()) if len(speech) else math.nan,
        **_false_starts(runs[runs["category"] == NOISE_ONLY]),
    }
    for measure, counted, out_of in (
        ("false_cutoff_rate", speech["cutoff_turns"].sum(), expected),
        ("hold_cut_rate", runs["holds_cut"].sum(), holds),
        ("missed_turn_rate", speech["missed_turns"].sum(), expected),
    ):
        point[f"{measure}_lo"], point[f"{measure}_hi"] = wilson_interval(float(counted), out_of)
    point["dead_air_ms"], point["dead_air_ms_lo"], point["dead_air_ms_hi"] = bootstrap_ci(
        dead_air.astype(float), 0.5
    )
    der = speech["der"].astype(float).dropna()
    _, point["der_lo"], point["der_hi"] = bootstrap_ratio(der, [1.0] * len(der))
    if "total_tokens" in runs:  # unknown if a run's are
        (
            point["tokens_per_expected_turn"],
            point["tokens_per_expected_turn_lo"],
            point["tokens_per_expected_turn_hi"],
        ) = bootstrap_ratio(speech["total_tokens"].astype(float), speech["expected_turns"].astype(float))
    return point


def _turn_dead_air(turns: pd.DataFrame | None, keys: list[str]) -> dict[tuple[Any, ...], pd.Series] | None:
    """The dead air of the turns the user spoke, per ``keys`` value (a tuple), in their order (None: no turns)."""
    from vlab.metrics.latency import spoken_turns

    if turns is None:
        return None
    spoken = spoken_turns(turns)
    if not len(spoken) or "dead_air_ms" not in spoken:
        return {}
    require_columns(spoken, keys, f"{TURNS_FRAME}, with the scores' {', '.join(keys)}")
    return {
        key if isinstance(key, tuple) else (key,): group["dead_air_ms"]
        for key, group in spoken.groupby(keys, sort=False)
    }


def _false_starts(noise: pd.DataFrame) -> dict[str, float]:
    """The false starts per minute of the noise-only runs ``noise``, with its Poisson interval."""
    if "duration_ms" not in noise or "false_starts" not in noise:  # scores from before vlab kept them
        rate = float(noise["false_starts_per_min"].mean()) if len(noise) else math.nan
        return {"false_starts_per_min": rate}
    count, minutes = float(noise["false_starts"].sum()), float(noise["duration_ms"].sum()) / 60_000.0
    low, high = poisson_interval(count, minutes)
    return {
        "false_starts_per_min": count / minutes if minutes > 0 else math.nan,
        "false_starts_per_min_lo": low,
        "false_starts_per_min_hi": high,
    }
