"""Speaker and Microphone on the virtual sound card: loopback, barge-in, playback notices."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.devices._audio import RATE, Notices, Recorder, find, tone
from vlab.audio.devices import Speaker
from vlab.audio.loopback import pulse_route
from vlab.audio.playback import AudioOutput

pytestmark = [pytest.mark.devices, pytest.mark.usefixtures("sound_card")]


def chirp_and_noise(duration_ms: float = 1000.0) -> np.ndarray:
    """A 200 Hz → 4.2 kHz chirp plus seeded noise, as int16 values (no leading zeros)."""
    t = np.arange(round(RATE * duration_ms / 1000)) / RATE
    noise = np.random.default_rng(7).standard_normal(t.size)
    signal = 0.3 * np.sin(2 * np.pi * (200 * t + 2000 * t * t)) + 0.1 * noise
    return (np.clip(signal, -1, 1) * 32767).astype("<i2")


def speaker(notices: Notices | None = None) -> Speaker:
    with pulse_route(sink="vsink"):
        spk = Speaker("pulse", RATE, on_event=notices)
        spk.start()
    return spk


HOST_ATTEMPTS = 3
"""Plays of the loopback test: a play in which the host starved a stream (PortAudio's output underflow
or input overflow, on a busy machine) inserted a gap that vlab did not make, so it is played again."""


async def _loopback(signal: np.ndarray) -> tuple[Speaker, Recorder, Notices]:
    """Play ``signal`` 300 ms into an item to ``vsink`` while recording its monitor."""
    notices = Notices()
    async with Recorder("vsink.monitor") as rec:
        spk = speaker(notices)
        try:
            assert isinstance(spk, AudioOutput)
            await asyncio.sleep(0.2)  # wall-clock ok: the loopback recorder takes silence before the signal
            spk.push("item_1", bytes(2 * round(RATE * 0.3)) + signal.tobytes(), RATE)
            await notices.wait("playback_finished", timeout_s=5)
            await asyncio.sleep(0.2)  # wall-clock ok: the recorder takes the output's tail after the end
        finally:
            spk.close()
    return spk, rec, notices


async def test_loopback_is_bit_exact_and_timestamps_agree():
    signal = chirp_and_noise()
    for _ in range(HOST_ATTEMPTS):
        spk, rec, notices = await _loopback(signal)
        if not (spk.output_underflows or rec.mic.overflows):
            break
    else:
        pytest.fail(f"the host starved the sound streams in each of {HOST_ATTEMPTS} plays")
    recording = rec.samples()
    offset, corr, max_diff = find(recording, signal.astype(np.float64))
    started_ns = notices.of("playback_started")[0][2]
    # the signal sits 300 ms into the item: where the speaker says it reached the DAC vs the mic's ADC stamp
    skew_ms = (rec.t_ns_at(offset) - (started_ns + 300_000_000)) / 1e6
    print(
        f"\nloopback: correlation {corr:.6f}, max |diff| {max_diff:.0f} LSB, signal at sample {offset} "
        f"of the recording; DAC estimate vs ADC stamp {skew_ms:+.2f} ms; latency {spk.latency_ms:.1f} ms, "
        f"timing from {spk.timing_source}; overflows {rec.mic.overflows}, underflows {spk.output_underflows}"
    )
    assert corr > 0.99
    assert max_diff == 0, "24 kHz int16 mono end to end should be bit-exact (env-setup.md §1a)"
    # both stamps come from PortAudio's time info; they should agree to well within one block
    assert abs(skew_ms) < spk.block_ms
    assert rec.mic.dropped_chunks == 0


async def test_clear_silences_the_speaker_and_reports_heard_ms():
    # how soon it is silent (clear() → silence at the ADC) is benchmarks/bench_devices.py's barge-in figure
    notices = Notices()
    async with Recorder("vsink.monitor") as rec:
        spk = speaker(notices)
        try:
            await asyncio.sleep(0.2)  # wall-clock ok: the loopback recorder takes silence before the tone
            spk.push("item_1", tone(2000), RATE)
            await notices.wait("playback_started")
            await asyncio.sleep(0.5)  # wall-clock ok: half a second of the tone plays before the clear
            heard_ms = spk.clear()
            assert spk.current_item_id == "item_1"
            spk.push("item_1", tone(500), RATE)  # deltas still in flight for the cleared item are ignored
            await asyncio.sleep(0.5)  # wall-clock ok: time for that push to (wrongly) reach the sound card
        finally:
            spk.close()
    loud = np.flatnonzero(np.abs(rec.samples()) > 1000)
    first, last = int(loud[0]), int(loud[-1])
    recorded_ms = (last + 1 - first) * 1000 / RATE
    cleared = notices.of("playback_cleared")[0]
    print(f"\nbarge-in: heard_ms {heard_ms:.1f} vs {recorded_ms:.1f} ms of tone recorded")
    assert recorded_ms < 2000 - spk.block_ms, "the tone was cut, not played to its 2 s end"
    # what clear() says was heard is what the sound card played, to within the block it acts at
    assert abs(heard_ms - recorded_ms) <= spk.block_ms
    assert cleared[1] == "item_1" and cleared[3]["heard_ms"] == heard_ms
    assert not notices.of("playback_finished"), "a cleared item does not finish"
    # nothing of the later push was played: one contiguous tone only
    assert not np.any(np.diff(loud) > RATE // 10)


async def test_playback_notices_are_stamped_at_the_dac():
    notices = Notices()
    spk = speaker(notices)
    try:
        await asyncio.sleep(0.2)  # wall-clock ok: the output stream runs before the push is stamped
        push_ns = time.perf_counter_ns()
        spk.push("item_1", tone(1000), RATE)
        _, item, started_ns, _, started_arrival = await notices.wait("playback_started")
        _, _, finished_ns, info, finished_arrival = await notices.wait("playback_finished", timeout_s=5)
    finally:
        spk.close()
    start_delay_ms = (started_ns - push_ns) / 1e6
    played_ms = (finished_ns - started_ns) / 1e6
    print(
        f"\nnotices: first sample at the DAC {start_delay_ms:.1f} ms after push (latency "
        f"{spk.latency_ms:.1f} ms); finished {played_ms:.1f} ms later; notices delivered "
        f"{(started_arrival - push_ns) / 1e6:.1f} / {(finished_arrival - push_ns) / 1e6:.1f} ms after push; "
        f"host underflows {spk.output_underflows}"
    )
    assert item == "item_1"
    assert 0 < start_delay_ms < spk.latency_ms + 2 * spk.block_ms + 50
    assert played_ms == pytest.approx(1000, abs=spk.block_ms)
    assert info["played_ms"] == pytest.approx(1000)
    # a notice is posted when the callback consumes the audio, i.e. about `latency` before the DAC
    assert (finished_arrival - push_ns) / 1e6 == pytest.approx(
        1000, abs=spk.latency_ms + 3 * spk.block_ms + 50
    )
    # one push never runs dry (vlab's own count). PortAudio's output_underflows is not asserted: on a
    # busy machine the host may starve the stream for a moment, which is the machine's doing, and the
    # DAC-stamped played_ms above already carries any such gap.
    assert spk.underruns == 0


async def test_push_at_another_rate_is_resampled():
    notices = Notices()
    async with Recorder("vsink.monitor") as rec:
        spk = speaker(notices)
        try:
            await asyncio.sleep(0.2)  # wall-clock ok: the loopback recorder takes silence before the tone
            t = np.arange(48000 // 2) / 48000
            spk.push("item_1", (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes(), 48000)
            await notices.wait("playback_finished")
            await asyncio.sleep(0.2)  # wall-clock ok: the recorder takes the output's tail
        finally:
            spk.close()
    loud = np.flatnonzero(np.abs(rec.samples()) > 1000)
    assert (loud[-1] - loud[0]) / RATE * 1000 == pytest.approx(500, abs=10)
    assert notices.of("playback_finished")[0][3]["played_ms"] == pytest.approx(500, abs=5)
