"""The barge-in policy on virtual time: stop playback, then cancel and truncate at the ms heard."""

from __future__ import annotations

import pytest

from vlab.audio.playback import SimulatedPlayback
from vlab.clock import VirtualClock
from vlab.errors import ConfigError
from vlab.session.barge_in import BargeIn, BargeInAction, BargeInPolicy, server_interrupts

RATE = 24_000
MS = 1_000_000


def playing(audio_ms: int, heard_ms: int) -> tuple[SimulatedPlayback, VirtualClock]:
    """A simulated speaker that received ``audio_ms`` of item_1 and has played for ``heard_ms``."""
    clock = VirtualClock()
    output = SimulatedPlayback(clock)
    output.push_size("item_1", audio_ms * RATE * 2 // 1000, RATE)
    clock.advance_ns(heard_ms * MS)
    return output, clock


@pytest.mark.parametrize(
    ("mode", "response_id", "server_cancels", "cancel"),
    [
        (BargeIn.ON, "resp_1", False, True),
        (BargeIn.ON, "resp_1", True, False),  # the server's interrupt_response cancels it already
        (BargeIn.ON, None, False, False),  # nothing in progress to cancel
        (BargeIn.TRUNCATE_ONLY, "resp_1", False, False),
    ],
)
def test_speech_stops_playback_and_cuts_the_item_where_the_listener_stopped(
    mode, response_id, server_cancels, cancel
):
    output, clock = playing(audio_ms=1000, heard_ms=300)
    action = BargeInPolicy(mode).on_speech_started(
        output, response_id=response_id, server_interrupts=server_cancels
    )
    assert action == BargeInAction(cancel=cancel, truncate_item_id="item_1", truncate_at_ms=300)
    clock.advance_ns(500 * MS)
    assert output.played_ms() == 300  # stopped at once


def test_the_cut_is_never_past_the_audio_received():
    output, _ = playing(audio_ms=200, heard_ms=450)
    action = BargeInPolicy("on").on_speech_started(output, response_id="resp_1", server_interrupts=False)
    assert action is not None and action.truncate_at_ms == 200


def test_nothing_heard_means_nothing_to_truncate():
    output = SimulatedPlayback(VirtualClock())
    action = BargeInPolicy(BargeIn.ON).on_speech_started(
        output, response_id="resp_1", server_interrupts=False
    )
    assert action == BargeInAction(cancel=True, truncate_item_id=None, truncate_at_ms=0)


def test_an_item_not_yet_heard_is_cancelled_but_not_truncated():
    output, _ = playing(audio_ms=1000, heard_ms=0)  # queued, not a sample played yet
    action = BargeInPolicy(BargeIn.ON).on_speech_started(
        output, response_id="resp_1", server_interrupts=False
    )
    assert action == BargeInAction(cancel=True, truncate_item_id=None, truncate_at_ms=0)


def test_off_leaves_the_assistant_talking():
    output, clock = playing(audio_ms=1000, heard_ms=300)
    assert (
        BargeInPolicy("off").on_speech_started(output, response_id="resp_1", server_interrupts=False) is None
    )
    clock.advance_ns(200 * MS)
    assert output.played_ms() == 500


def test_a_policy_name_that_does_not_exist_is_refused():
    with pytest.raises(
        ConfigError, match="barge_in must be one of 'on', 'truncate_only', 'off'.*'sometimes'"
    ):
        BargeInPolicy("sometimes")


def test_server_interrupts_reads_the_session_the_server_reported():
    assert server_interrupts({"turn_detection": {"type": "server_vad", "interrupt_response": True}})
    assert not server_interrupts({"turn_detection": {"type": "server_vad", "interrupt_response": False}})
    assert not server_interrupts({"turn_detection": None})
    assert not server_interrupts(None)
