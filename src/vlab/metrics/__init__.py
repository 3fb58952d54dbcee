"""Latency and turn-detection metrics: pure functions of the event log (pandas DataFrames).

- :mod:`vlab.metrics.latency`: per-turn latency (:func:`turn_latency`), on one timeline per log
  (:mod:`vlab.metrics.events`: the emulator's simulated one, or the client's clock);
- :mod:`vlab.metrics.session_latency`: session delays (:func:`session_latency`);
- :mod:`vlab.metrics.summary`: summaries with bootstrap intervals (:func:`summarize_latency`).
- :mod:`vlab.metrics.tool_calls`: each function and MCP call and how long its answer took (:func:`tool_calls`).
- :mod:`vlab.metrics.detection`: turn detection against labels (:func:`score_prompt`) and operating points
  (:func:`operating_points`, with :mod:`vlab.metrics.intervals`);
- :mod:`vlab.metrics.tradeoff`: the Pareto frontier and the best setting within a budget;
- :mod:`vlab.metrics.setting_checks`: did the setting take effect (:func:`setting_took_effect`,
  :func:`canary_shift`);
- :mod:`vlab.metrics.preview`: the offline VAD preview (:func:`vad_preview`).
"""

from vlab.metrics.detection import (
    DETECTION_COLUMNS,
    OFFSET_EARLIEST,
    ONSET_EARLIEST,
    POINT_FLAGS,
    POINT_INTERVALS,
    POINT_MEASURES,
    detection_error_rate,
    detections_from_boundaries,
    detections_from_events,
    match_segments,
    operating_points,
    score_prompt,
)
from vlab.metrics.events import InputTimeline, on_simulated_timeline
from vlab.metrics.intervals import poisson_interval, wilson_interval
from vlab.metrics.latency import (
    FALSE_CUTOFF,
    LATENCY_STAGES,
    SEGMENT_STAGES,
    SPOKEN_TRIGGERS,
    TURN_STARTS,
    USAGE_COLUMNS,
    cancelled_before_audio,
    leading_silence_ms,
    made_tool_calls,
    spoken_turns,
    stages_in_order,
    tokens_used,
    turn_latency,
    waited_turns,
)
from vlab.metrics.preview import vad_preview
from vlab.metrics.session_latency import session_latency
from vlab.metrics.setting_checks import canary_shift, setting_took_effect
from vlab.metrics.summary import (
    SAME_WITHIN_MS,
    bootstrap_ci,
    bootstrap_ratio,
    differ,
    same_within,
    summarize_latency,
)
from vlab.metrics.tool_calls import TOOL_CALL_COLUMNS, tool_calls
from vlab.metrics.tradeoff import cutoff_at_latency, latency_at_cutoff, pareto_front

__all__ = [
    "DETECTION_COLUMNS",
    "OFFSET_EARLIEST",
    "ONSET_EARLIEST",
    "POINT_FLAGS",
    "POINT_INTERVALS",
    "POINT_MEASURES",
    "SAME_WITHIN_MS",
    "FALSE_CUTOFF",
    "LATENCY_STAGES",
    "SEGMENT_STAGES",
    "TOOL_CALL_COLUMNS",
    "SPOKEN_TRIGGERS",
    "TURN_STARTS",
    "USAGE_COLUMNS",
    "InputTimeline",
    "bootstrap_ci",
    "bootstrap_ratio",
    "canary_shift",
    "cancelled_before_audio",
    "cutoff_at_latency",
    "detection_error_rate",
    "detections_from_boundaries",
    "detections_from_events",
    "differ",
    "latency_at_cutoff",
    "leading_silence_ms",
    "made_tool_calls",
    "match_segments",
    "same_within",
    "on_simulated_timeline",
    "operating_points",
    "pareto_front",
    "poisson_interval",
    "score_prompt",
    "session_latency",
    "setting_took_effect",
    "spoken_turns",
    "waited_turns",
    "stages_in_order",
    "summarize_latency",
    "tokens_used",
    "tool_calls",
    "turn_latency",
    "vad_preview",
    "wilson_interval",
]
