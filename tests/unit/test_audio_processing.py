"""Input audio processing before the server VAD: noise suppression and echo cancellation, measured."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import numpy as np
import pytest

from tests._portable import needs_noise_suppression
from vlab import protocol
from vlab.audio import g711
from vlab.audio.pcm import float_to_pcm16, pcm16_to_float, resample
from vlab.audio.processing import (
    AEC_DELAY_SAMPLES,
    ECHO_TAIL_MS,
    PROCESSING_RATE_HZ,
    InputProcessor,
    ProcessingSettings,
    _EchoCanceller,
    _Playout,
)
from vlab.audio.silero_worker import SileroWorker
from vlab.audio.synth import synthesize
from vlab.audio.vad import EnergyModel, SileroModel, StreamingVad, VadEvent, VadParams
from vlab.audio.vad_cache import CACHE_FILE
from vlab.clock import ManualClock
from vlab.emulator import session_config
from vlab.emulator.input_buffer import InputBuffer
from vlab.emulator.timeline import Scheduler
from vlab.prompts import load_prompt_set
from vlab.testing import spoken_prompt

RATE = 24000  # the session's default input rate: the processor resamples it to 16 kHz
CHUNK_MS = 20
REPLY = (
    "Sure. The weather in Seattle today is cloudy with a chance of rain, and a high of fifty five degrees."
)


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2)))


def _process(processor: InputProcessor, pcm: bytes, rate: int = RATE) -> bytes:
    step = 2 * rate * CHUNK_MS // 1000
    return b"".join(processor.process(pcm[i : i + step]) for i in range(0, len(pcm), step))


def _silero_events(pcm16: bytes, rate: int = PROCESSING_RATE_HZ) -> tuple[list[VadEvent], list[float]]:
    vad = StreamingVad(VadParams(), rate, SileroModel(), keep_probabilities=True)
    return vad.feed(pcm16) + vad.flush(), vad.probabilities


# --- settings ------------------------------------------------------------------------------------------


@needs_noise_suppression
def test_settings_follow_the_session_and_leave_out_what_is_not_emulated():
    session = session_config.default_session("s", "gpt-realtime", "2026-07-15", created_s=0)
    assert not session_config.processing_settings(session).active  # both null by default
    session["input_audio_noise_reduction"] = {"type": "far_field"}
    session["input_audio_echo_cancellation"] = {"type": "server_echo_cancellation"}
    assert session_config.processing_settings(session) == ProcessingSettings("far_field", True)
    session["input_audio_noise_reduction"] = {"type": "studio_magic"}
    session["input_audio_echo_cancellation"] = {
        "type": "server_echo_cancellation",
        "reference_source": "client",
    }
    assert session_config.processing_settings(session) == ProcessingSettings(None, False)


def test_noise_suppression_without_its_wheel_is_not_applied_and_says_so(monkeypatch, caplog):
    # Windows has no webrtc-noise-gain wheel: the emulator then applies no suppression (and no resampling
    # for it), so the VAD hears the audio as with none asked, and the trace says what was applied
    monkeypatch.setattr(session_config, "noise_suppression_available", lambda: False)
    session = session_config.default_session("s", "gpt-realtime", "2026-07-15", created_s=0)
    session["input_audio_noise_reduction"] = {"type": "near_field"}
    session["input_audio_echo_cancellation"] = {"type": "server_echo_cancellation"}
    with caplog.at_level("WARNING", logger="vlab"):
        assert session_config.processing_settings(session) == ProcessingSettings(None, True)
    assert "needs the webrtc-noise-gain wheel" in caplog.text and "none applied" in caplog.text


# --- noise suppression -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_sentence() -> tuple[np.ndarray, np.ndarray, slice, slice]:
    """An eSpeak sentence with seeded white noise at 10 dB SNR (24 kHz); its speech and quiet spans at 16 kHz."""
    prompt = spoken_prompt(
        "Please turn on the kitchen lights.", sample_rate=RATE, lead_ms=1000, trail_ms=1000
    )
    clean = pcm16_to_float(prompt.pcm)
    on, off = int(prompt.speech_start_ms * RATE / 1000), int(prompt.speech_end_ms * RATE / 1000)
    noise_db = _db(clean[on:off]) - 10.0
    noise = np.random.default_rng(7).normal(0.0, 10 ** (noise_db / 20), len(clean)).astype(np.float32)
    k = PROCESSING_RATE_HZ // 1000
    speech = slice(int(prompt.speech_start_ms * k), int(prompt.speech_end_ms * k))
    quiet = slice(int((prompt.speech_end_ms + 200) * k), int((prompt.speech_end_ms + 750) * k))
    return clean, clean + noise, speech, quiet


@needs_noise_suppression
@pytest.mark.parametrize(
    ("noise_type", "least_db"),
    [("near_field", 9.0), ("far_field", 14.0), ("azure_deep_noise_suppression", 17.0)],
)
def test_noise_suppression_lowers_the_noise_floor_by_its_strength_and_keeps_the_speech(
    noisy_sentence, noise_type, least_db
):
    clean, noisy, speech, quiet = noisy_sentence
    before = resample(noisy, RATE, PROCESSING_RATE_HZ)
    after = pcm16_to_float(
        _process(InputProcessor(ProcessingSettings(noise_type), RATE), float_to_pcm16(noisy))
    )
    reduction_db = _db(before[quiet]) - _db(after[quiet])
    assert reduction_db >= least_db  # measured: 11.9, 18.1 and 21.4 dB
    clean16 = resample(clean, RATE, PROCESSING_RATE_HZ)
    assert abs(_db(after[speech]) - _db(clean16[speech])) < 2.0  # the speech keeps its level (≈ -1 dB)
    events, _ = _silero_events(float_to_pcm16(after))
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]  # still one turn
    (started_before, _), _ = _silero_events(float_to_pcm16(before))
    assert events[0].speech_ms == pytest.approx(started_before.speech_ms, abs=40)  # where it began


@needs_noise_suppression
def test_stronger_types_suppress_more(noisy_sentence):
    _, noisy, _, quiet = noisy_sentence
    floors = [
        _db(
            pcm16_to_float(_process(InputProcessor(ProcessingSettings(t), RATE), float_to_pcm16(noisy)))[
                quiet
            ]
        )
        for t in ("near_field", "far_field", "azure_deep_noise_suppression")
    ]
    assert floors == sorted(floors, reverse=True) and floors[0] - floors[-1] > 5.0


@needs_noise_suppression
@pytest.mark.parametrize("prompt_id", ["noisy_snr10", "noise_only"])
def test_suppression_on_the_bundled_noisy_prompts_adds_no_false_start(prompt_id):
    (prompt,) = [p for p in load_prompt_set() if p.id == prompt_id]
    raw = prompt.pcm(PROCESSING_RATE_HZ)

    def false_starts_and_noise_probability(pcm16: bytes) -> tuple[int, float]:
        events, probs = _silero_events(pcm16)
        frame_ms = 32.0
        centers = (np.arange(len(probs)) + 0.5) * frame_ms
        outside = np.ones(len(probs), dtype=bool)
        for on, off in prompt.speech_segments:
            outside &= ~((centers > on - 100) & (centers < off + 100))
        starts = [e for e in events if e.kind == "speech_started"]
        false = [
            e for e in starts if not any(on - 500 <= e.speech_ms <= off for on, off in prompt.speech_segments)
        ]
        return len(false), float(np.mean(np.asarray(probs)[outside]))

    off_false, off_p = false_starts_and_noise_probability(raw)
    for noise_type in ("near_field", "far_field", "azure_deep_noise_suppression"):
        processor = InputProcessor(ProcessingSettings(noise_type), PROCESSING_RATE_HZ)
        on_false, on_p = false_starts_and_noise_probability(_process(processor, raw, PROCESSING_RATE_HZ))
        assert on_false <= off_false
        assert on_p < off_p  # Silero hears less speech in the noise (noisy_snr10: 0.035 → 0.020–0.027)


# --- echo cancellation -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reply() -> bytes:
    return float_to_pcm16(synthesize(REPLY, sample_rate=RATE).samples)


def _microphone(
    reply: bytes, *, played_at_ms: float, user: np.ndarray | None = None, user_at_ms: float = 0
) -> bytes:
    """What the microphone hears: the reply played at ``played_at_ms`` back at -10 dB 60 ms later, a faint
    noise floor, and optionally the user speaking from ``user_at_ms``."""
    n = RATE * 7
    mic = np.random.default_rng(1).normal(0.0, 10 ** (-60 / 20), n).astype(np.float32)
    echo = pcm16_to_float(reply) * 10 ** (-10 / 20)
    at = int((played_at_ms + 60) * RATE / 1000)
    mic[at : at + len(echo)] += echo[: n - at]
    if user is not None:
        at = int(user_at_ms * RATE / 1000)
        mic[at : at + len(user)] += user[: n - at]
    return float_to_pcm16(mic)


def _with_playback(
    processor: InputProcessor, mic: bytes, reply: bytes, played_at_ms: float, origin_ms: float = 0.0
) -> bytes:
    """Feed the microphone in 20 ms chunks; the reply's deltas (200 ms each) arrive when its playback starts.

    ``mic`` starts at input time ``origin_ms`` (where the processor's stream starts); ``played_at_ms`` is
    from the start of ``mic``.
    """
    step = 2 * RATE * CHUNK_MS // 1000
    out = bytearray()
    sent = False
    for i in range(0, len(mic), step):
        if not sent and i / (2 * RATE) * 1000 >= played_at_ms:
            for j in range(0, len(reply), 2 * RATE // 5):  # faster than real time: queued back to back
                processor.play(reply[j : j + 2 * RATE // 5], RATE, origin_ms + played_at_ms)
            sent = True
        out += processor.process(mic[i : i + step])
    return bytes(out)


def test_the_echo_of_the_reply_starts_a_turn_unless_it_is_cancelled(reply):
    mic = _microphone(reply, played_at_ms=1000)
    without, _ = _silero_events(mic, RATE)
    assert [e.kind for e in without][:1] == ["speech_started"]  # the echo passes for the user
    suppressed = _with_playback(InputProcessor(ProcessingSettings("near_field"), RATE), mic, reply, 1000)
    assert [e.kind for e in _silero_events(suppressed)[0]][:1] == ["speech_started"]  # an echo is not noise
    cancelled = _with_playback(
        InputProcessor(ProcessingSettings(echo_cancellation=True), RATE), mic, reply, 1000
    )
    events, probs = _silero_events(cancelled)
    assert events == [] and max(probs) < 0.5
    echo_span = slice(int(1.06 * PROCESSING_RATE_HZ), int(4.5 * PROCESSING_RATE_HZ))
    assert _db(pcm16_to_float(cancelled)[echo_span]) < -55.0  # from about -31 dBFS to the noise floor


def test_the_user_speaking_over_the_echo_still_starts_a_turn(reply):
    user = synthesize("Stop, please tell me about tomorrow instead.", voice="en-us", sample_rate=RATE).samples
    mic = _microphone(reply, played_at_ms=1000, user=user, user_at_ms=3000)
    cancelled = _with_playback(
        InputProcessor(ProcessingSettings(echo_cancellation=True), RATE), mic, reply, 1000
    )
    events, _ = _silero_events(cancelled)
    assert [e.kind for e in events][:1] == ["speech_started"]
    assert events[0].speech_ms == pytest.approx(3000, abs=250)  # the barge-in, not the echo before it


def test_after_a_restart_the_reply_is_placed_on_the_input_timeline_from_the_new_origin(reply):
    processor = InputProcessor(ProcessingSettings(echo_cancellation=True), RATE)
    processor.restart(RATE, 2000.0)  # the VAD restarted 2 s into the input; the reply plays 1 s later
    cancelled = _with_playback(processor, _microphone(reply, played_at_ms=1000), reply, 1000, origin_ms=2000)
    events, probs = _silero_events(cancelled)
    assert events == [] and max(probs) < 0.5
    assert (
        _db(pcm16_to_float(cancelled)[int(1.06 * PROCESSING_RATE_HZ) : int(4.5 * PROCESSING_RATE_HZ)]) < -55.0
    )


def test_the_same_audio_is_processed_the_same_way(reply):
    mic = _microphone(reply, played_at_ms=500)
    runs = [
        _with_playback(InputProcessor(ProcessingSettings("far_field", True), RATE), mic, reply, 500)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


# --- the canceller is skipped while nothing has played ----------------------------------------------


def test_aec3_delays_the_microphone_by_its_block_latency_and_passing_through_delays_it_as_much():
    # an impulse 2 s in: AEC3 with a silent reference (run on every frame) puts it 128 samples later;
    # skipped after ECHO_TAIL_MS of silent reference, the frame passes through with the same delay
    impulse = np.zeros(3 * PROCESSING_RATE_HZ, dtype=np.int16)
    impulse[2 * PROCESSING_RATE_HZ] = 20000
    silent = bytes(impulse.nbytes)
    always, skipped = _EchoCanceller(tail_frames=None), _EchoCanceller()
    ran = np.frombuffer(always.process(impulse.tobytes(), silent), dtype=np.int16)
    passed = np.frombuffer(skipped.process(impulse.tobytes(), silent), dtype=np.int16)
    assert int(np.argmax(np.abs(ran))) == 2 * PROCESSING_RATE_HZ + AEC_DELAY_SAMPLES
    assert always.passed == 0 and ran[2 * PROCESSING_RATE_HZ + AEC_DELAY_SAMPLES] != 20000  # AEC3's filter
    assert skipped.passed == 300 - (ECHO_TAIL_MS // 10 - 1)  # every frame from the 100th silent one on
    assert np.flatnonzero(passed).tolist() == [2 * PROCESSING_RATE_HZ + AEC_DELAY_SAMPLES]
    assert passed[2 * PROCESSING_RATE_HZ + AEC_DELAY_SAMPLES] == 20000  # untouched


def _echo_of_a_burst(at_ms: int, burst_ms: int = 300, seconds: int = 4) -> tuple[bytes, bytes]:
    """16 kHz: a noise burst played at ``at_ms`` and heard back at -10 dB 60 ms later over a faint floor."""
    rng = np.random.default_rng(3)
    n, k = seconds * PROCESSING_RATE_HZ, PROCESSING_RATE_HZ // 1000
    burst = rng.normal(0.0, 0.1, burst_ms * k).astype(np.float32)
    mic = rng.normal(0.0, 10 ** (-60 / 20), n).astype(np.float32)
    mic[(at_ms + 60) * k : (at_ms + 60 + burst_ms) * k] += burst * 10 ** (-10 / 20)
    return float_to_pcm16(mic), float_to_pcm16(burst)


@pytest.mark.parametrize("append_ms", [10, 20, 1000])
def test_the_canceller_is_skipped_exactly_where_the_reference_was_silent_for_its_tail(append_ms):
    # a reference from 1500 to 1800 ms in 4 s: AEC3 runs on the first 99 frames (its history is not yet
    # 1 s of silence), on 1500-1800 ms and on the 990 ms after; frames 990-1500 and 2790-4000 ms pass
    mic, burst = _echo_of_a_burst(1500)
    processor = InputProcessor(ProcessingSettings(echo_cancellation=True), PROCESSING_RATE_HZ)
    step = 2 * PROCESSING_RATE_HZ * append_ms // 1000
    out, sent = bytearray(), False
    for i in range(0, len(mic), step):
        if not sent and (i + step) // 32 > 1500:  # (32 bytes a ms) sent as the input reaches 1500 ms
            processor.play(burst, PROCESSING_RATE_HZ, 1500.0)
            sent = True
        out += processor.process(mic[i : i + step])
    assert processor.late_reference_ms == 0
    assert processor.echo_passed_ms == (1500 - 990) + (4000 - 2790)
    x, y = np.frombuffer(mic, dtype=np.int16), np.frombuffer(bytes(out), dtype=np.int16)
    d = AEC_DELAY_SAMPLES
    for lo_ms, hi_ms in ((990, 1500), (2790, 4000)):  # passed through: the microphone, 128 samples late
        lo, hi = lo_ms * 16, hi_ms * 16
        assert np.array_equal(y[lo:hi], x[lo - d : hi - d])
    echo = pcm16_to_float(bytes(out))[(1560 + 8) * 16 : (1860 + 8) * 16]
    assert _db(echo) < -55.0  # the echo of the burst is cancelled from its start (-30 → -63 dBFS)


def test_the_same_audio_is_processed_the_same_way_in_any_appends():
    mic, burst = _echo_of_a_burst(1500)
    runs = []
    for step_ms in (10, 30, 250):
        processor = InputProcessor(ProcessingSettings(echo_cancellation=True), PROCESSING_RATE_HZ)
        processor.play(burst, PROCESSING_RATE_HZ, 1500.0)  # queued ahead: the same reference every run
        step = 32 * step_ms
        runs.append(b"".join(processor.process(mic[i : i + step]) for i in range(0, len(mic), step)))
    assert runs[0] == runs[1] == runs[2]  # AEC3 batched up to 100 ms a request as frame by frame


def test_the_echo_is_cancelled_when_the_reply_starts_after_a_long_silence(reply):
    # 3 s of nothing played: the canceller is skipped from 1 s on, and resumes when the reply plays
    mic = _microphone(reply, played_at_ms=3000)
    without, _ = _silero_events(mic, RATE)
    assert [e.kind for e in without][:1] == ["speech_started"]
    processor = InputProcessor(ProcessingSettings(echo_cancellation=True), RATE)
    cancelled = _with_playback(processor, mic, reply, 3000)
    assert processor.echo_passed_ms == 3000 - 990
    events, probs = _silero_events(cancelled)
    assert events == [] and max(probs) < 0.5
    echo_span = slice(int(3.06 * PROCESSING_RATE_HZ), int(6.5 * PROCESSING_RATE_HZ))
    assert _db(pcm16_to_float(cancelled)[echo_span]) < -55.0


def test_passing_through_changes_only_the_ends_of_synthetic_turns():
    # nothing played: AEC3 on every frame against passed through from the 100th frame on. AEC3 with a
    # silent reference high-passes the audio and rings on where eSpeak stops dead into digital silence,
    # so Silero ends eSpeak's turns a frame or three later with it; human recordings decide the same
    prompts = {p.id: p for p in load_prompt_set()}
    for prompt_id in ("human_awb_a0007", "human_slt_a0009", "long_sentence", "two_turns"):
        raw = prompts[prompt_id].pcm(PROCESSING_RATE_HZ)
        raw = raw[: len(raw) // 320 * 320]
        silent = bytes(len(raw))
        always, _ = _silero_events(_EchoCanceller(tail_frames=None).process(raw, silent))
        passed, _ = _silero_events(_EchoCanceller().process(raw, silent))
        assert always and [e.kind for e in passed] == [e.kind for e in always]
        shifts = [a.speech_ms - b.speech_ms for a, b in zip(always, passed, strict=True)]
        if prompt_id.startswith("human"):
            assert shifts == [0] * len(always)
        else:  # measured: long_sentence [0, 64], two_turns [0, 64, 0, 64]
            assert shifts[0::2] == [0] * len(shifts[0::2]) and all(32 <= d <= 96 for d in shifts[1::2])


# --- the reference: where the client plays the assistant's audio --------------------------------------


def _ms(n: int) -> np.ndarray:
    return np.full(n * 16, 0.5, dtype=np.float32)


def _frames(playout: _Playout, first_ms: int, count: int) -> list[float]:
    """Mean level of each 10 ms reference frame from ``first_ms`` on."""
    return [
        float(np.abs(pcm16_to_float(playout.take((first_ms + 10 * k) * 16))).mean()) for k in range(count)
    ]


def test_deltas_play_from_when_they_arrive_and_back_to_back():
    playout = _Playout()
    playout.play(_ms(20), PROCESSING_RATE_HZ, 30.0)
    playout.play(_ms(20), PROCESSING_RATE_HZ, 30.0)  # sent at once: queued after the first
    playout.play(_ms(10), PROCESSING_RATE_HZ, 100.0)  # after a gap: from its own arrival
    assert _frames(playout, 0, 12) == pytest.approx([0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0.5, 0], abs=1e-4)
    assert playout.late_ms == 0


def test_audio_placed_where_frames_were_already_processed_is_late_and_dropped():
    playout = _Playout()
    _frames(playout, 0, 5)  # the microphone has been processed up to 50 ms
    playout.play(_ms(30), PROCESSING_RATE_HZ, 30.0)
    assert playout.late_ms == pytest.approx(20.0)
    assert _frames(playout, 50, 3) == pytest.approx([0.5, 0, 0], abs=1e-4)


def test_stopping_playback_drops_what_was_still_queued():
    playout = _Playout()
    playout.play(_ms(100), PROCESSING_RATE_HZ, 0.0)
    playout.stop(40.0)
    assert _frames(playout, 0, 6) == pytest.approx([0.5] * 4 + [0, 0], abs=1e-4)
    playout.play(_ms(10), PROCESSING_RATE_HZ, 60.0)  # the next reply starts afresh
    assert _frames(playout, 60, 2) == pytest.approx([0.5, 0], abs=1e-4)
    playout.play(_ms(30), PROCESSING_RATE_HZ, 80.0)
    _frames(playout, 80, 1)
    playout.stop(85.0)  # before the next frame to take: nothing of it is left
    assert _frames(playout, 90, 2) == [0.0, 0.0]


# --- in the input buffer: what the VAD hears --------------------------------------------------------


class _Turns:
    def __init__(self) -> None:
        self.started: list[int] = []

    def speech_started(self, item_id: str, audio_start_ms: int, at_ms: float) -> None:
        self.started.append(audio_start_ms)

    def speech_stopped(self, item_id: str, audio_end_ms: int, audio: bytes, at_ms: float) -> None:
        pass


@pytest.mark.parametrize(
    ("echo_cancellation", "audio_format"), [(False, "pcm16"), (True, "pcm16"), (True, "g711_ulaw")]
)
async def test_the_input_buffer_cancels_the_echo_of_what_it_played_before_its_vad(
    reply, echo_cancellation, audio_format
):
    sched = Scheduler(speed=float("inf"), clock=ManualClock())
    sched.set_mode(protocol.TIMELINE_INPUT)
    sched.start()
    turns = _Turns()
    traced: list[dict[str, object]] = []
    buffer = InputBuffer(
        scheduler=sched,
        listener=turns,
        recognizer=None,  # type: ignore[arg-type]  # no end-of-utterance detection here
        vad_model=lambda: EnergyModel(PROCESSING_RATE_HZ, floor_dbfs=-55.0, ceiling_dbfs=-35.0),
        trace=lambda **entry: traced.append(entry),
        spawn=asyncio.ensure_future,
    )
    session = session_config.default_session("s", "gpt-realtime", "2026-07-15", created_s=0)
    if echo_cancellation:
        session["input_audio_echo_cancellation"] = {"type": "server_echo_cancellation"}
    mic = _microphone(reply, played_at_ms=1000)
    sent, played = mic, reply
    if audio_format == "g711_ulaw":  # telephone audio both ways: 8 kHz µ-law
        session["input_audio_format"] = session["output_audio_format"] = audio_format
        session["input_audio_sampling_rate"] = 8000
        sent = g711.ulaw_encode(float_to_pcm16(resample(pcm16_to_float(mic), RATE, 8000)))
        played = g711.ulaw_encode(float_to_pcm16(resample(pcm16_to_float(reply), RATE, 8000)))
    per_ms = len(sent) / 7000  # bytes per ms of the 7 s microphone audio
    try:
        buffer.configure(session, "2026-07-15")
        step = int(per_ms * CHUNK_MS)
        for i in range(0, len(sent), step):
            if i == int(per_ms * 1000):  # the reply goes out (in input mode, at its simulated time)
                for j in range(0, len(played), int(per_ms * 200)):
                    buffer.play(played[j : j + int(per_ms * 200)], audio_format, 1000.0)
            buffer.append(base64.b64encode(sent[i : i + step]).decode(), None)
        await buffer.settle()
        if echo_cancellation:
            assert turns.started == []
            assert {"kind": "audio_processing", "noise_reduction": None, "echo_cancellation": True} in traced
        else:
            assert turns.started == [pytest.approx(1060 - 400, abs=40)]  # the echo is taken for the user
        audio = buffer.commit(None)[1]
        if audio_format == "pcm16":
            assert audio and mic.endswith(audio)  # turns keep the audio as it was sent
    finally:
        buffer.close()
        await sched.close()


# --- in the VAD worker process -------------------------------------------------------------------------


async def _in_worker(
    worker: SileroWorker, mic: bytes, reply: bytes, settings: ProcessingSettings
) -> list[float]:
    """The probabilities of the worker's processed stream, fed as :func:`_with_playback` feeds a processor."""
    model = SileroModel()
    worker.process(model, settings, RATE, 0.0)
    step, futures, sent = 2 * RATE * CHUNK_MS // 1000, [], False
    for i in range(0, len(mic), step):
        if not sent and i / (2 * RATE) * 1000 >= 1000:
            for j in range(0, len(reply), 2 * RATE // 5):
                worker.play(model, reply[j : j + 2 * RATE // 5], RATE, 1000.0)
            sent = True
        futures.append(worker.submit(model, RATE, mic[i : i + step]))
        if i % (step * 7) == 0:
            await asyncio.sleep(
                0
            )  # wall-clock ok: one loop turn, so requests go out together as the emulator's do
    probs = [p for r in await asyncio.gather(*futures) for p in r]
    worker.forget(model)
    return probs


@pytest.mark.parametrize(
    "settings", [ProcessingSettings("far_field"), ProcessingSettings("near_field", True)]
)
def test_the_worker_processes_and_decides_as_this_process_would(reply, settings):
    mic = _microphone(reply, played_at_ms=1000)
    want = _silero_events(_with_playback(InputProcessor(settings, RATE), mic, reply, 1000))[1]
    worker = SileroWorker()
    try:
        got = asyncio.run(_in_worker(worker, mic, reply, settings))
    finally:
        worker.close()
    assert got == pytest.approx(want[: len(got)], abs=1e-6) and len(want) - len(got) <= 1  # (flush's frame)
    assert (max(got) < 0.5) == settings.echo_cancellation  # the echo was heard only when not cancelled


def test_echo_cancelled_streams_use_the_vad_cache_and_decide_as_without_it(reply, tmp_path):
    # the key is the processed audio: a second identical stream is answered from the cache, the same
    mic = _microphone(reply, played_at_ms=1000)
    settings = ProcessingSettings(echo_cancellation=True)

    def twice(worker: SileroWorker) -> list[list[float]]:
        try:
            return [asyncio.run(_in_worker(worker, mic, reply, settings)) for _ in range(2)]
        finally:
            worker.close()

    uncached = SileroWorker()
    uncached.use_cache(enabled=False)
    want = twice(uncached)
    cached = SileroWorker()
    cached.use_cache(tmp_path)
    assert twice(cached) == want
    records = (tmp_path / CACHE_FILE).stat().st_size // 20
    assert records <= len(want[0]) + 1  # the second stream's frames were all known


def _chunks(mic: bytes) -> list[tuple[float, bytes]]:
    """``mic`` in CHUNK_MS chunks, each with the input ms it starts at."""
    step = 2 * RATE * CHUNK_MS // 1000
    return [(i / (2 * RATE) * 1000, mic[i : i + step]) for i in range(0, len(mic), step)]


def _deltas(reply: bytes) -> list[bytes]:
    """The reply as the emulator sends it: 200 ms deltas."""
    return [reply[j : j + 2 * RATE // 5] for j in range(0, len(reply), 2 * RATE // 5)]


@dataclass(frozen=True)
class _Script:
    """What happens while the microphone is fed: the reply played from ``play_ms``, stopped at ``stop_ms``;
    the stream restarted at ``restart_ms`` (the VAD hears only what follows). -1: never."""

    play_ms: int
    stop_ms: int = -1
    restart_ms: int = -1


def _here(settings: ProcessingSettings, mic: bytes, reply: bytes, script: _Script) -> list[float]:
    """Silero's probabilities of ``mic`` processed here, fed in chunks as ``script`` says."""
    here, out = InputProcessor(settings, RATE), bytearray()
    for at_ms, chunk in _chunks(mic):
        if at_ms == script.restart_ms:
            here.restart(RATE, float(script.restart_ms))
            out.clear()
        if at_ms == script.play_ms:
            for delta in _deltas(reply):
                here.play(delta, RATE, float(script.play_ms))
        if at_ms == script.stop_ms:
            here.stop_playback(float(script.stop_ms))
        out += here.process(chunk)
    return _silero_events(bytes(out))[1]


def _in_the_worker(settings: ProcessingSettings, mic: bytes, reply: bytes, script: _Script) -> list[float]:
    """:func:`_here` in the VAD worker process."""

    async def run(worker: SileroWorker) -> list[float]:
        model = SileroModel()
        worker.process(model, settings, RATE, 0.0)
        futures: list[asyncio.Future[list[float]]] = []
        for at_ms, chunk in _chunks(mic):
            if at_ms == script.restart_ms:
                await asyncio.gather(*futures)  # the probabilities before the restart are not compared
                futures.clear()
                worker.reset(model, float(script.restart_ms))
            if at_ms == script.play_ms:
                for delta in _deltas(reply):
                    worker.play(model, delta, RATE, float(script.play_ms))
            if at_ms == script.stop_ms:
                worker.stop_playback(model, float(script.stop_ms))
            futures.append(worker.submit(model, RATE, chunk))
        return [p for r in await asyncio.gather(*futures) for p in r]

    worker = SileroWorker()
    try:
        return asyncio.run(run(worker))
    finally:
        worker.close()


def test_the_worker_stops_the_echo_reference_where_this_process_would(reply):
    # the client played the reply from 1 s and stopped it at 2 s (a barge-in): its echo ends there too
    mic = _microphone(reply[: 2 * RATE], played_at_ms=1000)
    settings = ProcessingSettings(echo_cancellation=True)
    want = _here(settings, mic, reply, _Script(play_ms=1000, stop_ms=2000))
    got = _in_the_worker(settings, mic, reply, _Script(play_ms=1000, stop_ms=2000))
    assert got == pytest.approx(want[: len(got)], abs=1e-6) and len(want) - len(got) <= 1


def test_a_worker_stream_restarted_keeps_its_processing_as_this_process_would(reply):
    # a VAD restart 3 s into the input: the processing goes on from the new origin, with its state
    mic = _microphone(reply, played_at_ms=4000)
    settings = ProcessingSettings(echo_cancellation=True)
    want = _here(settings, mic, reply, _Script(play_ms=4000, restart_ms=3000))
    got = _in_the_worker(settings, mic, reply, _Script(play_ms=4000, restart_ms=3000))
    assert got == pytest.approx(want[: len(got)], abs=1e-6) and len(want) - len(got) <= 1
    assert max(got) < 0.5  # the echo is still cancelled after the restart
