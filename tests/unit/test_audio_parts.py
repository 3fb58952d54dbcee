"""PCM helpers, G.711, pacing, simulated playback and prompt loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from vlab.audio import g711
from vlab.audio.formats import AUDIO_FORMATS, AUDIO_SUFFIXES
from vlab.audio.pacing import MAX_SPEED, paced_chunks, parse_speed, speed_text
from vlab.audio.pcm import as_input_bytes, check_pcm16, float_to_pcm16, pcm16_to_float, resample, silence
from vlab.audio.playback import SimulatedPlayback
from vlab.audio.synth import synthesize
from vlab.audio.wav import load_wav
from vlab.clock import ManualClock
from vlab.errors import AudioFormatError, ConfigError


def test_input_audio_is_bytes_or_a_mono_array_of_samples_in_the_session_s_format():
    floats = np.array([0.0, 0.5, -0.5, 1.0], np.float32)
    assert as_input_bytes(floats, "pcm16", 24000) == float_to_pcm16(floats)  # as soundfile reads a file
    assert as_input_bytes(floats.astype(np.float64)[:, None], "pcm16", 24000) == float_to_pcm16(
        floats
    )  # (n, 1)
    ints = np.array([0, 16384, -16384], np.int16)
    assert as_input_bytes(ints, "pcm16", 24000) == ints.astype("<i2").tobytes()
    assert as_input_bytes(memoryview(b"\x01\x02"), "pcm16", 24000) == b"\x01\x02"
    assert as_input_bytes(np.array([1, 255], np.uint8), "g711_ulaw", 8000) == b"\x01\xff"
    assert as_input_bytes(b"\x01", "g711_alaw", 8000) == b"\x01"  # one byte is one G.711 sample
    refused = {
        "input audio must have one channel, got an array of shape (4, 2)": np.zeros((4, 2), np.int16),
        "pcm16 input audio cannot be an array of int32": np.zeros(4, np.int32),
        "g711_ulaw input audio cannot be an array of float32": floats,
        "input audio must be bytes or a NumPy array of samples, got str": "hello",
        "3 bytes of pcm16 input audio is not a whole number of 16-bit samples": b"abc",
    }
    for problem, audio in refused.items():
        fmt = "g711_ulaw" if "g711" in problem else "pcm16"
        with pytest.raises(AudioFormatError) as info:
            as_input_bytes(audio, fmt, 24000)  # type: ignore[arg-type]
        assert str(info.value).startswith(problem + ". Send "), str(info.value)
    with pytest.raises(AudioFormatError) as info:  # a telephone session: how to read a file for it
        as_input_bytes(floats, "g711_alaw", 8000)
    assert "load_wav(path, 8000, audio_format='g711_alaw') reads a file as that" in str(info.value)


def test_pcm_round_trip():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    assert np.allclose(pcm16_to_float(float_to_pcm16(x)), np.clip(x, -1, 32767 / 32768), atol=1 / 32768)
    with pytest.raises(AudioFormatError, match="even number"):
        pcm16_to_float(b"abc")
    check_pcm16(bytearray(4))
    with pytest.raises(AudioFormatError, match="got 1. Send whole 16-bit samples"):
        check_pcm16(memoryview(b"x"))


@pytest.mark.parametrize(
    "encode,decode,silence",
    [(g711.ulaw_encode, g711.ulaw_decode, 0xFF), (g711.alaw_encode, g711.alaw_decode, 0xD5)],
)
def test_g711_round_trip_within_quantisation(encode, decode, silence):
    x = (np.sin(np.linspace(0, 60, 8000)) * 20000).astype("<i2")
    y = np.frombuffer(decode(encode(x.tobytes())), "<i2").astype(int)
    assert np.max(np.abs(y - x) / (np.abs(x) + 64)) < 0.13
    assert encode(bytes(2)) == bytes([silence])


async def test_pacing_follows_deadlines_without_drift():
    clock = ManualClock()
    pcm = bytes(2 * 24000)  # one second at 24 kHz
    stamps = []
    async for chunk, offset_ms in paced_chunks(pcm, sample_rate=24000, chunk_ms=20, speed=2.0, clock=clock):
        stamps.append((clock.monotonic_ns() / 1e6, offset_ms, len(chunk)))
    assert len(stamps) == 50 and all(n == 960 for *_, n in stamps)
    assert [off for _, off, _ in stamps] == [20.0 * k for k in range(50)]  # each chunk's place in the audio
    assert all(t == pytest.approx(off / 2) for t, off, _ in stamps)


async def test_pacing_defaults_to_real_time_in_20_ms_chunks_of_whole_samples():
    clock = ManualClock()
    stamps = [
        (clock.monotonic_ns() / 1e6, len(c))
        async for c, _ in paced_chunks(bytes(4800), sample_rate=24000, clock=clock)
    ]
    assert stamps == [(20.0 * k, 960) for k in range(5)]
    tiny = [len(c) async for c, _ in paced_chunks(bytes(8), sample_rate=10, speed=math.inf, clock=clock)]
    assert tiny == [2, 2, 2, 2]  # 20 ms at 10 Hz is less than a sample: one whole sample a chunk
    with pytest.raises(ConfigError, match="speed must be a number > 0 .*got 0"):
        [c async for c, _ in paced_chunks(bytes(8), sample_rate=10, speed=0, clock=clock)]
    for chunk_ms in (0, -20, "20"):  # 0 sent one sample an append: 24,000 appends a second
        with pytest.raises(
            ConfigError, match=rf"^chunk_ms must be a number of ms > 0 \(20 is usual\), got {chunk_ms!r}$"
        ):
            [c async for c, _ in paced_chunks(bytes(8), sample_rate=10, chunk_ms=chunk_ms, clock=clock)]


async def test_unpaced_replay_does_not_wait():
    clock = ManualClock()
    chunks = [c async for c, _ in paced_chunks(bytes(9600), sample_rate=24000, speed=math.inf, clock=clock)]
    assert len(chunks) == 10 and clock.monotonic_ns() == 0


def test_simulated_playback_counts_heard_time_and_stops():
    clock = ManualClock()
    out = SimulatedPlayback(clock)
    out.push("a", bytes(48000), 24000)  # 1 s of audio
    clock.advance_ns(300_000_000)
    assert out.clear() == pytest.approx(300)
    clock.advance_ns(500_000_000)
    assert out.played_ms() == pytest.approx(300)  # stopped
    out.push("a", bytes(48000), 24000)  # a late delta of the cleared item is not played
    clock.advance_ns(500_000_000)
    assert out.played_ms() == pytest.approx(300)
    out.push("b", bytes(4800), 24000)  # 100 ms
    clock.advance_ns(1_000_000_000)
    assert out.current_item_id == "b" and out.clear() == pytest.approx(100)


def test_synthesis_gives_speech_with_word_times():
    speech = synthesize("one two three", sample_rate=16000)
    assert speech.sample_rate == 16000 and 500 < speech.duration_ms < 3000
    assert [w.text for w in speech.words] == ["one", "two", "three"]
    assert [w.offset_ms for w in speech.words] == sorted(w.offset_ms for w in speech.words)


def test_synthesis_speaks_the_voice_asked_for_and_shares_read_only_samples():
    from vlab.audio.synth import Speech

    us, gb = (synthesize("Hello there.", voice=v, sample_rate=16000) for v in ("en-us", "en"))
    assert len(us.samples) != len(gb.samples)  # another voice, other audio
    assert not us.samples.flags.writeable  # the cache hands the same array to every caller
    assert Speech(np.zeros(1600, np.float32), 16000).duration_ms == 100.0


def test_a_voice_espeak_does_not_know_is_refused_with_the_names_to_use():
    # eSpeak NG's British English is "en": without the error, "en-gb" spoke American English unsaid
    with pytest.raises(
        ConfigError, match=r"knows no voice 'en-gb'\. Use 'en-us' \(American English\), 'en' \(Brit"
    ):
        synthesize("Hello there.", voice="en-gb")
    assert synthesize("Hello there.", voice="en-us+f3").duration_ms > 0  # a variant after a '+'


def test_load_wav_resamples_and_mixes_down(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.full((16000, 2), 0.25, np.float32), 16000)
    pcm = load_wav(path, 24000)
    assert len(pcm) == 2 * 24000


def _wav_bytes(samples, rate, subtype="PCM_16", fmt="WAV"):
    import io

    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


SPEECHLIKE = (np.sin(np.linspace(0, 2000, 16000)) * 0.3).astype(np.float32)
BROKEN = {
    "missing": (None, "file not found"),
    "empty": (b"", "empty (0 bytes)"),
    "truncated header": (_wav_bytes(SPEECHLIKE, 16000)[:30], "header is damaged or truncated"),
    "text renamed .wav": (b"hello, I am a text file, not audio at all", "not a readable audio file"),
    "mp3 renamed .wav": (b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(200), "MP3 data"),
    "flac named .wav": (_wav_bytes(SPEECHLIKE, 16000, fmt="FLAC"), "holds FLAC data"),
    "zero-length data chunk": (_wav_bytes(np.zeros(0, np.float32), 16000), "no audio samples"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_prompts_get_a_clear_error_naming_the_file(tmp_path, case):
    content, problem = BROKEN[case]
    path = tmp_path / "prompt.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioFormatError) as info:
        load_wav(path, 24000)
    message = str(info.value)
    assert str(path) in message and problem in message and info.value.fix


@pytest.mark.parametrize(
    "subtype,rate,channels",
    [
        ("PCM_U8", 16000, 1),
        ("FLOAT", 16000, 1),
        ("PCM_16", 96000, 1),
        ("PCM_24", 44100, 2),
        ("PCM_16", 8000, 1),
    ],
)
def test_any_readable_wav_is_converted_to_the_session_rate(tmp_path, subtype, rate, channels):
    n = rate  # one second
    tone = (np.sin(2 * np.pi * 440 * np.arange(n) / rate) * 0.5).astype(np.float32)
    data = np.repeat(tone[:, None], channels, axis=1)
    path = tmp_path / "p.wav"
    sf.write(path, data, rate, subtype=subtype)
    pcm = load_wav(path, 24000, lead_ms=100, trail_ms=200)
    assert len(pcm) == 2 * (24000 + 2400 + 4800)
    x = np.frombuffer(pcm, "<i2")[2400:-4800].astype(np.float32) / 32768
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 24000 / len(x) - 440) < 2  # the frequency is kept
    assert abs(np.sqrt(np.mean(x**2)) - 0.5 / np.sqrt(2)) < 0.02  # and the level


@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
def test_every_audio_file_vlab_names_as_readable_is_read(tmp_path, suffix):
    # the suffixes the importer, the labeller, vlab replay and the panel's upload accept
    rate = 48000
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 0.5).astype(np.float32)
    path = tmp_path / f"p{suffix}"
    fmt = AUDIO_FORMATS[suffix]
    sf.write(
        path,
        np.repeat(tone[:, None], 2, axis=1),
        rate,
        format=fmt,
        subtype="VORBIS" if fmt == "OGG" else None,
    )
    x = np.frombuffer(load_wav(path, 24000), "<i2").astype(np.float32) / 32768
    assert abs(len(x) - 24000) < 24000 * 0.1  # an MP3 encoder pads its frames
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 24000 / len(x) - 440) < 2


def test_g711_prompts_are_encoded_for_the_session(tmp_path):
    path = tmp_path / "p.wav"
    sf.write(path, SPEECHLIKE, 16000)
    ulaw = load_wav(path, 8000, audio_format="g711_ulaw")
    assert len(ulaw) == 8000
    back = np.frombuffer(g711.ulaw_decode(ulaw), "<i2").astype(np.float32) / 32768
    ref = np.frombuffer(load_wav(path, 8000), "<i2").astype(np.float32) / 32768
    assert np.max(np.abs(back - ref)) < 0.02


def test_suspicious_prompts_warn(tmp_path, monkeypatch):
    from vlab.audio import wav as wav_module
    from vlab.errors import VlabWarning

    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 16000)
    with pytest.warns(VlabWarning, match="silent"):
        load_wav(silent, 24000)
    clipped = tmp_path / "clipped.wav"
    sf.write(clipped, np.sign(SPEECHLIKE), 16000)
    with pytest.warns(VlabWarning, match="clipped"):
        load_wav(clipped, 24000)
    monkeypatch.setattr(wav_module, "LONG_PROMPT_S", 0.5)
    long = tmp_path / "long.wav"
    sf.write(long, SPEECHLIKE, 16000)
    with pytest.warns(VlabWarning, match="minutes long") as caught:
        load_wav(long, 24000)
    assert [w.filename for w in caught] == [__file__]  # the warning points at the caller's line


def test_the_input_position_at_a_time_is_the_audio_sent_by_then_and_runs_on_after_the_last_append(tmp_path):
    from vlab.audio.recording import Recorder

    rec = Recorder(tmp_path, input_rate=24000, input_format="pcm16", output_rate=24000, output_format="pcm16")
    ms = 1_000_000
    rec.input(bytes(4800), 10 * ms)  # 100 ms of audio sent at 10 ms
    rec.input(bytes(4800), 20 * ms)  # 100 ms more at 20 ms
    positions = [rec.position_ms(t * ms) for t in (5, 10, 15, 20, 70)]
    assert positions == [0.0, 100.0, 100.0, 200.0, 250.0]  # before any audio; then as sent; then real time
    rec.close()


def test_the_assistant_s_audio_is_on_disk_as_it_arrives_not_only_at_close(tmp_path):
    # it was held in memory until close: a session killed mid-run left input.wav and no reply at all
    import soundfile as sf

    from vlab.audio.recording import Recorder, item_wav_path

    rec = Recorder(tmp_path, input_rate=24000, input_format="pcm16", output_rate=24000, output_format="pcm16")
    a, b = np.full(2400, 1000, np.int16), np.full(1200, -2000, np.int16)
    rec.output("item_a", a.tobytes(), 1)
    rec.output("item_b", b.tobytes(), 2)  # a second item starts before the first is heard again
    rec.output("item_a", a.tobytes(), 3)
    rec.flush()  # what the session does each second: a kill after it loses nothing written before
    on_disk = {i: sf.read(item_wav_path(tmp_path, i), dtype="int16")[0] for i in ("item_a", "item_b")}
    assert on_disk["item_a"].tolist() == np.concatenate([a, a]).tolist()
    assert on_disk["item_b"].tolist() == b.tolist()
    rec.truncate("item_a", 150.0)  # what the user heard: 150 ms
    rec.close()
    cut, rate = sf.read(item_wav_path(tmp_path, "item_a"), dtype="int16")
    assert rate == 24000 and len(cut) == 3600


def test_item_wav_names_stay_inside_the_output_folder():
    from vlab.audio.recording import item_wav_name

    assert item_wav_name("item_a1b2c3000042") == "item_a1b2c3000042.wav"  # the service's ids, as they are
    odd = ["../../etc/passwd", "a/b", "x" * 5000, "", "☃", "..", "item 1", "item_1\x00"]
    names = [item_wav_name(i) for i in odd]
    assert len(set(names)) == len(odd)  # never two ids in one file
    for name in names:
        assert "/" not in name and "\x00" not in name and not name.startswith(".") and len(name) < 100


def test_a_loopback_samples_capture_time_comes_from_its_chunks_adc_stamp():
    from types import SimpleNamespace

    from vlab.audio.loopback import LoopbackRecorder

    rec = object.__new__(LoopbackRecorder)  # no microphone: only the stamps are read
    rec.rate = 24000
    rec.chunks = [
        SimpleNamespace(pcm16=bytes(960), t_ns=1_000_000_000),
        SimpleNamespace(pcm16=bytes(960), t_ns=1_020_500_000),
    ]
    assert [rec.t_ns_at(i) for i in (0, 240, 480, 720)] == [
        1_000_000_000,
        1_010_000_000,
        1_020_500_000,
        1_030_500_000,
    ]
    assert rec.t_ns_at(1200) == 1_050_500_000  # past the last chunk: counted on from its stamp


def test_a_speed_is_a_number_above_0_or_max_everywhere_it_is_given():
    for given, speed in (("max", math.inf), (math.inf, math.inf), ("inf", math.inf), (2, 2.0), ("0.5", 0.5)):
        assert parse_speed(given) == speed
    for bad in (0, -1, True, None, "fast", math.nan, "1e999"):
        with pytest.raises(ConfigError, match=r"^\[target\] speed must be a number > 0 .* or 'max'"):
            parse_speed(bad, "[target] speed")  # type: ignore[arg-type]
    assert speed_text(math.inf) == MAX_SPEED and speed_text(2.0) == 2.0


def test_every_reader_of_a_reply_recording_finds_the_file_the_recorder_wrote(tmp_path):
    from vlab.audio.recording import Recorder
    from vlab.sweep.tables import _reply_silence

    rec = Recorder(tmp_path, input_rate=24000, input_format="pcm16", output_rate=24000, output_format="pcm16")
    rec.input(bytes(4800), 0)
    silence, speech = np.zeros(2400, np.int16), np.full(2400, 8000, np.int16)
    reply = np.concatenate([silence, speech])  # 100 ms of silence first
    for item_id in ("item_plain", "item 1/odd"):  # the second is stored under a safe name
        rec.output(item_id, reply.tobytes(), 1_000_000)
    rec.close()
    for item_id in ("item_plain", "item 1/odd"):
        assert _reply_silence(tmp_path, item_id) == pytest.approx(100, abs=10)
    for missing in ("item_never_recorded", None, math.nan, ""):  # a turn without a reply
        assert math.isnan(_reply_silence(tmp_path, missing))


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (
            lambda path: load_wav(path, 0),
            "sample_rate must be an integer ≥ 1, got 0",
        ),  # was soxr's ValueError
        (
            lambda path: load_wav(path, "24000"),
            "sample_rate must be an integer ≥ 1, got '24000'",
        ),  # TypeError
        (lambda path: load_wav(path, 24000, lead_ms=-300), "lead_ms must be a number ≥ 0, got -300"),
        (lambda path: load_wav(path, 24000, trail_ms=math.nan), "trail_ms must be a number ≥ 0, got nan"),
        (lambda path: silence(-5, 24000), "duration_ms must be a number ≥ 0, got -5"),  # "negative count"
        (lambda path: silence(100, 0), "sample_rate must be an integer ≥ 1, got 0"),  # was b"": no audio
        (lambda path: resample(np.zeros(8, np.float32), 16000, 0), "to_rate must be an integer ≥ 1, got 0"),
    ],
)
def test_a_rate_or_length_that_cannot_be_is_refused_and_named(tmp_path, call, said):
    path = tmp_path / "p.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    with pytest.raises(ConfigError) as info:
        call(path)
    assert str(info.value) == said


def test_rates_read_from_a_table_are_counts_too():
    assert len(silence(10, np.int64(16000))) == 320  # a rate from a DataFrame is a numpy integer
    assert len(resample(np.zeros(160, np.float32), np.int64(16000), 8000)) == 80
