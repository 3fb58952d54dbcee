from __future__ import annotations

from vlab.audio.playback import SimulatedPlayback
from vlab.clock import ManualClock


def test_push_size_keeps_the_same_time_as_push():
    # the session hands SimulatedPlayback byte counts instead of decoded audio
    played = []
    for by_size in (False, True):
        clock = ManualClock()
        out = SimulatedPlayback(clock)
        for item, n in (("a", 4800), ("a", 4800), ("b", 2400)):
            if by_size:
                out.push_size(item, n, 24_000)
            else:
                out.push(item, bytes(n), 24_000)
            clock.advance_ns(30_000_000)
        played.append((out.current_item_id, out.played_ms(), out.clear()))
    assert played[0] == played[1] == ("b", 30.0, 30.0)
