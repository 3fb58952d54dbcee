"""Through the virtual sound card (PulseAudio loopback): playout measurement error and barge-in."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np

from benchmarks._common import Figure, Size, emulator_process, p50, pulse_available, skipped
from vlab.audio.loopback import LoopbackRecorder, pulse_route

RATE = 24000
LOUD = 300  # |sample| above this is sound (eSpeak speech peaks at ~10 000; the null sink is exactly 0)
PLAYOUT_GOAL = "playout via PulseAudio loopback ≤ 5 ms"
DURATION_GOAL = "≤ 120 ms per reply (the bound tests/devices/test_session_speaker.py held)"
DURATION_FIGURE = "playback_started → playback_finished (DAC stamps) vs the audio played"
BARGE_GOAL = "≤ one audio block (20 ms)"


def _speaker() -> Any:
    from vlab.audio.devices import Speaker

    class RecordingSpeaker(Speaker):
        """Keeps what was pushed per item, to find the first loud sample in the source."""

        def __init__(self) -> None:
            super().__init__("pulse", RATE)
            self.pushed: dict[str, bytearray] = {}

        def push(self, item_id: str, pcm16: bytes, sample_rate: int) -> None:
            self.pushed.setdefault(item_id, bytearray()).extend(pcm16)
            super().push(item_id, pcm16, sample_rate)

    with pulse_route(sink="vsink"):
        return RecordingSpeaker()


async def _playout(emu: Any, replies: int) -> tuple[list[float], list[float], list[float]]:
    """Per reply: the logged first-audible time's error, the measured playout delay, and the error of the
    logged playing time (``playback_finished − playback_started``, on DAC stamps) against the audio played."""
    from vlab import Session, SessionSettings

    errors, delays, durations = [], [], []
    speaker = _speaker()
    async with LoopbackRecorder("vsink.monitor", RATE) as rec:
        async with Session(
            SessionSettings(turn_detection=None),
            endpoint=emu.endpoint,
            api_key=emu.api_key,
            audio_output=speaker,
            dotenv_path=False,
        ) as s:
            await asyncio.sleep(0.3)
            for i in range(replies):
                await s.create_response(instructions=f"Say: Reply number {i + 1} is here.")
                await s.wait_for("response.done")
                await speaker.drain()
                await asyncio.sleep(0.4)
            records = list(s.records)
    recording = rec.samples()
    started = [r for r in records if r.type == "vlab.playback_started"]
    first_delta = {}
    for r in records:
        if r.type == "response.audio.delta":
            first_delta.setdefault(r.item_id, r.t_ns)
    search_from = 0
    for r in started:
        src = np.frombuffer(bytes(speaker.pushed.get(r.item_id, b"")), "<i2")
        loud_src = np.flatnonzero(np.abs(src.astype(np.int32)) > LOUD)
        loud_rec = np.flatnonzero(np.abs(recording[search_from:]) > LOUD)
        if not loud_src.size or not loud_rec.size:
            continue
        k, j = int(loud_src[0]), search_from + int(loud_rec[0])
        expected_ns = r.t_ns + round(
            k * 1e9 / RATE
        )  # what the log says: playback_started + offset in the item
        errors.append((expected_ns - rec.t_ns_at(j)) / 1e6)
        delays.append((r.t_ns - first_delta.get(r.item_id, r.t_ns)) / 1e6)
        search_from = j + len(src)
    finished = {r.item_id: r for r in records if r.type == "vlab.playback_finished"}  # each item's last
    for r in started:
        end = finished.get(r.item_id)
        if end is not None:
            played_ms = json.loads(end.payload)["played_ms"]
            durations.append((end.t_ns - r.t_ns) / 1e6 - played_ms)
    return errors, delays, durations


async def _barge_in(emu: Any, rounds: int) -> list[dict[str, float]]:
    from vlab import ServerVad, Session, SessionSettings
    from vlab.testing import spoken_prompt

    prompt = spoken_prompt("Stop, wait.", lead_ms=100, trail_ms=100)
    settings = SessionSettings(turn_detection=ServerVad(create_response=False))
    out = []
    for _ in range(rounds):
        speaker = _speaker()
        async with LoopbackRecorder("vsink.monitor", RATE) as rec:
            async with Session(
                settings, endpoint=emu.endpoint, api_key=emu.api_key, audio_output=speaker, dotenv_path=False
            ) as s:
                await asyncio.sleep(0.3)
                await s.create_response(
                    instructions="Say: " + "This is a long answer that goes on and on. " * 4
                )
                await s.wait_for("response.audio.delta")
                await asyncio.sleep(0.3)
                await s.stream_audio(prompt.pcm, speed=1.0)
                await s.wait_for("input_audio_buffer.speech_started", timeout_s=10)
                await asyncio.sleep(0.25)
                records = list(s.records)
        recording = rec.samples()
        started = next(r for r in records if r.type == "input_audio_buffer.speech_started")
        cleared = next((r for r in records if r.type == "vlab.playback_cleared"), None)
        loud = np.flatnonzero(np.abs(recording) > LOUD)
        if not loud.size or cleared is None:
            continue
        silent_ns = rec.t_ns_at(int(loud[-1]) + 1)
        payload = __import__("json").loads(cleared.payload)
        out.append(
            {
                "to_silence_ms": (silent_ns - started.t_ns) / 1e6,
                "to_clear_ms": (cleared.t_ns - started.t_ns) / 1e6,
                "clear_to_silence_ms": (silent_ns - cleared.t_ns) / 1e6,
                "estimate_ms": (payload.get("silent_from_t_ns", cleared.t_ns) - started.t_ns) / 1e6,
                "latency_ms": speaker.latency_ms,
            }
        )
    return out


def bench_devices(size: Size) -> list[Figure]:
    problem = pulse_available()
    if problem is not None:
        return [
            skipped("latency measurement error: playout via PulseAudio loopback", PLAYOUT_GOAL, problem),
            skipped(DURATION_FIGURE, DURATION_GOAL, problem),
            skipped("barge-in: speech_started received → speaker silent (loopback)", BARGE_GOAL, problem),
        ]
    figs = []
    with emulator_process(speed="1", latency="instant") as emu:
        errors, delays, durations = asyncio.run(_playout(emu, size.n(8, 1)))
        worst = max((abs(e) for e in errors), default=float("nan"))
        figs.append(
            Figure(
                "latency measurement error: playout via PulseAudio loopback",
                f"|logged first-audible time − loopback ADC stamp|: max {worst:.2f} ms, median "
                f"{p50([abs(e) for e in errors]):.2f} ms over {len(errors)} replies (signed: "
                f"{', '.join(f'{e:+.1f}' for e in errors[:8])})",
                PLAYOUT_GOAL,
                worst / 5.0 if errors else float("nan"),
                baseline=f"the recording of vsink.monitor in the same run (bit-exact loopback); measured playout "
                f"(first delta → playback_started) median {p50(delays):.1f} ms",
            )
        )
        worst = max((abs(d) for d in durations), default=float("nan"))
        figs.append(
            Figure(
                DURATION_FIGURE,
                f"|logged playing time − audio played|: max {worst:.2f} ms, median "
                f"{p50([abs(d) for d in durations]):.2f} ms over {len(durations)} replies (signed: "
                f"{', '.join(f'{d:+.1f}' for d in durations[:8])})",
                DURATION_GOAL,
                worst / 120.0 if durations else float("nan"),
                baseline="played_ms: the audio the speaker consumed for the reply (bytes, no clock)",
            )
        )
        runs = asyncio.run(_barge_in(emu, size.n(3, 1)))
    if runs:
        worst = max(r["to_silence_ms"] for r in runs)
        med = {k: p50([r[k] for r in runs]) for k in runs[0]}
        figs.append(
            Figure(
                "barge-in: speech_started received → speaker silent (loopback)",
                f"max {worst:.1f} ms, median {med['to_silence_ms']:.1f} ms over {len(runs)} barge-ins",
                BARGE_GOAL,
                worst / 20.0,
                baseline=f"split (medians): speech_started → Speaker.clear() {med['to_clear_ms']:.2f} ms (the "
                f"Session's reaction); clear() → silence at the ADC {med['clear_to_silence_ms']:.1f} ms (device: "
                f"≤ 1 block + PulseAudio output latency {med['latency_ms']:.1f} ms); the speaker's own estimate "
                f"{med['estimate_ms']:.1f} ms",
            )
        )
    else:
        figs.append(
            skipped(
                "barge-in: speech_started received → speaker silent (loopback)",
                BARGE_GOAL,
                "no barge-in observed",
            )
        )
    return figs
