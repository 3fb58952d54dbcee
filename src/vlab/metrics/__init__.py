"""Latency and turn-detection metrics: pure functions of the event log."""

from vlab.metrics.turns import summarize_turns

__all__ = ["summarize_turns"]
