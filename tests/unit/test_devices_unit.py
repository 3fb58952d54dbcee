"""vlab.audio.devices without a sound card: lazy import, errors, and the callback bodies driven by hand."""

from __future__ import annotations

import asyncio
import builtins
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from vlab.audio import devices
from vlab.audio.devices import HalfDuplex, MicChunk, Microphone, Speaker, find_device, format_devices
from vlab.audio.playback import AudioOutput
from vlab.errors import AudioFormatError, DeviceError

RATE = 24000
BLOCK = 960  # bytes: 20 ms of 24 kHz PCM16
MS = 1_000_000  # ns


def test_importing_devices_does_not_load_sounddevice():
    code = "import sys, vlab.audio.devices; print('sounddevice' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_portaudio_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(DeviceError, match=r"apt-get install libportaudio2"):
        devices.list_devices()
    with pytest.raises(DeviceError, match="PortAudio"):
        Speaker().start()


def fake_sounddevice(*names_io: tuple[str, int, int], default: tuple[int, int] = (0, 0)) -> SimpleNamespace:
    table = [
        {
            "name": n,
            "hostapi": 0,
            "max_input_channels": i,
            "max_output_channels": o,
            "default_samplerate": 44100.0,
        }
        for n, i, o in names_io
    ]

    def query_devices(kind=None):
        if kind is None:
            return table
        index = default[0 if kind == "input" else 1]
        if index < 0:
            raise RuntimeError("no default device")
        return {**table[index], "index": index}

    return SimpleNamespace(query_devices=query_devices, query_hostapis=lambda: [{"name": "ALSA"}])


@pytest.fixture
def two_devices(monkeypatch):
    fake = fake_sounddevice(("USB Headset", 1, 2), ("Built-in Speakers", 0, 2), default=(0, 1))
    monkeypatch.setattr(devices, "_sounddevice", lambda: fake)


def test_devices_are_found_by_index_or_case_insensitive_name(two_devices):
    assert find_device("headset", "input").index == 0
    assert find_device("BUILT-IN", "output").name == "Built-in Speakers"
    assert find_device(0, "output").name == "USB Headset"
    assert find_device(None, "output").index == 1
    assert find_device(None, "input").index == 0


def test_a_name_that_matches_nothing_points_to_vlab_devices(two_devices):
    with pytest.raises(DeviceError) as err:
        find_device("Bluetooth", "output")
    assert "'Bluetooth' matches no output devices" in str(err.value)
    assert "vlab devices" in str(err.value)
    with pytest.raises(DeviceError, match="matches no input"):
        find_device("Built-in", "input")  # it has no input channels
    with pytest.raises(DeviceError, match="matches several"):
        find_device("s", "output")


def test_no_device_suggests_the_virtual_sound_card(monkeypatch):
    monkeypatch.setattr(devices, "_sounddevice", lambda: fake_sounddevice(default=(-1, -1)))
    with pytest.raises(DeviceError, match=r'no output device found.*eval "\$\(vlab devices --virtual\)"'):
        Speaker().start()
    from vlab.cli import main

    assert main(["devices"]) == 2


def test_the_virtual_sound_card_says_where_it_cannot_run(monkeypatch, capsys):
    from vlab.cli import main

    monkeypatch.setattr("sys.platform", "darwin")
    assert main(["devices", "--virtual"]) == 2
    assert capsys.readouterr().err == (
        "vlab: error: the virtual sound card runs on Linux (with bash and PulseAudio), not on darwin; connect a "
        "microphone and a speaker, or use the browser's (vlab.widgets.BrowserAudio)\n"
    )


def test_the_device_table_marks_defaults(two_devices, capsys):
    table = format_devices(devices.list_devices())
    lines = table.splitlines()
    assert lines[0].split() == ["#", "name", "host", "API", "in", "out", "default", "Hz"]
    assert lines[1].startswith("<") and "USB Headset" in lines[1] and "44100" in lines[1]
    assert lines[2].startswith(" >")
    from vlab.cli import main

    assert main(["devices"]) == 0
    assert "Built-in Speakers" in capsys.readouterr().out


# --- the speaker's jitter buffer and played-ms accounting, one block at a time -----------------------------


def pcm(n_ms: float, value: int = 1000) -> bytes:
    return np.full(round(RATE * n_ms / 1000), value, "<i2").tobytes()


def play(speaker: Speaker, blocks: int, t0_ns: int = 0) -> tuple[bytes, list]:
    """Run the callback body for ``blocks`` blocks whose DAC times are 20 ms apart."""
    out, notices = b"", []
    for k in range(blocks):
        buf = bytearray(b"\xff" * BLOCK)
        notices += speaker.render(buf, t0_ns + k * 20 * MS)
        out += bytes(buf)
    return out, [(kind, item, t_ns, info) for _, kind, item, t_ns, info in notices]


def test_speaker_is_an_audio_output():
    assert isinstance(Speaker(), AudioOutput)


def test_render_copies_in_order_and_zero_fills_on_underrun():
    spk = Speaker()
    spk.push("a", pcm(30, 1) + pcm(20, 2), RATE)
    out, notices = play(spk, 3, t0_ns=1000 * MS)
    samples = np.frombuffer(out, "<i2")
    assert (samples[:720] == 1).all() and (samples[720:1200] == 2).all() and (samples[1200:] == 0).all()
    assert notices == [
        ("playback_started", "a", 1000 * MS, {}),
        ("playback_finished", "a", 1050 * MS, {"played_ms": 50.0}),
    ]
    assert spk.current_item_id == "a"


def test_items_start_and_finish_at_their_sample_position():
    spk = Speaker()
    spk.push("a", pcm(30), RATE)
    spk.push("b", pcm(30), RATE)
    assert spk.current_item_id == "a"
    _, notices = play(spk, 2)
    assert [(k, i, t // MS) for k, i, t, _ in notices] == [
        ("playback_started", "a", 0),
        ("playback_finished", "a", 30),
        ("playback_started", "b", 30),
    ]
    assert spk.current_item_id == "b"
    _, notices = play(spk, 2, t0_ns=40 * MS)
    assert [(k, i, t // MS, info) for k, i, t, info in notices] == [
        ("playback_finished", "b", 60, {"played_ms": 30.0})
    ]


def test_clear_returns_what_was_consumed_and_drops_the_rest():
    spk = Speaker()
    spk.push("a", pcm(200), RATE)
    play(spk, 3)
    assert spk.clear() == pytest.approx(60.0)
    out, notices = play(spk, 1)
    assert out == bytes(BLOCK) and notices == []
    spk.push("a", pcm(100), RATE)  # late deltas of the cleared item
    assert spk.queued_ms == 0
    spk.push("b", pcm(40), RATE)
    assert spk.current_item_id == "b" and spk.clear() == 0.0  # queued, not heard yet


def test_heard_ms_is_clamped_to_what_was_pushed():
    spk = Speaker()
    spk.push("a", pcm(30), RATE)
    play(spk, 5)  # 100 ms of blocks, only 30 ms of audio
    assert spk.clear() == pytest.approx(30.0)


def test_an_item_that_runs_dry_and_resumes_is_an_underrun():
    spk = Speaker()
    spk.push("a", pcm(20), RATE)
    _, first = play(spk, 2)
    spk.push("a", pcm(20), RATE)
    _, second = play(spk, 2, t0_ns=40 * MS)
    assert [k for k, *_ in first] == ["playback_started", "playback_finished"]
    assert [k for k, *_ in second] == ["playback_finished"]
    assert spk.underruns == 1
    assert spk.clear() == pytest.approx(40.0)


def test_a_push_of_half_a_sample_is_the_same_audio_format_error_as_pcm_decoding():
    spk = Speaker()
    with pytest.raises(AudioFormatError, match="even number of bytes, got 3.*whole 16-bit samples"):
        spk.push("a", b"abc", RATE)
    assert spk.queued_ms == 0
    spk.push("a", pcm(20), RATE)  # a later, whole push still plays
    assert spk.queued_ms == pytest.approx(20.0)


def test_pushes_at_other_rates_are_resampled():
    spk = Speaker(sample_rate=RATE)
    spk.push("a", np.full(4800, 1000, "<i2").tobytes(), 48000)  # 100 ms at 48 kHz
    assert spk.queued_ms == pytest.approx(100.0)


async def test_notices_reach_the_loop_and_stale_ones_are_dropped():
    received = []
    spk = Speaker(on_event=lambda *n: received.append(n))
    spk._loop = asyncio.get_running_loop()
    time_info = SimpleNamespace(currentTime=10.0, outputBufferDacTime=10.042)
    status = SimpleNamespace(output_underflow=False)
    spk.push("a", pcm(100), RATE)
    spk._callback(bytearray(BLOCK), BLOCK // 2, time_info, status)  # posts playback_started
    heard = spk.clear()  # before the loop ran the started notice: it is stale now
    await asyncio.sleep(0)  # wall-clock ok: one loop turn, no time passes (lets the posted callback run)
    assert [(k, i) for k, i, *_ in received] == [("playback_cleared", "a")]
    assert received[0][3]["heard_ms"] == heard == pytest.approx(20.0)
    assert received[0][3]["pushed_ms"] == pytest.approx(100.0)
    assert spk.timing_source == "dac_time"

    spk.push("b", pcm(100), RATE)
    spk._callback(
        bytearray(BLOCK), BLOCK // 2, SimpleNamespace(currentTime=0.0, outputBufferDacTime=0.0), status
    )
    await asyncio.sleep(0)  # wall-clock ok: one loop turn, no time passes (lets the posted callback run)
    assert received[-1][:2] == ("playback_started", "b")
    assert spk.timing_source == "latency_estimate"


def test_stream_times_map_onto_perf_counter():
    assert devices._stream_to_perf_ns(1_000 * MS, 5.0, 5.042, 0) == 1_042 * MS
    assert devices._stream_to_perf_ns(1_000 * MS, 5.0, 0.0, 40 * MS) == 1_040 * MS  # not reported
    assert devices._stream_to_perf_ns(1_000 * MS, 0.0, 5.042, 40 * MS) == 1_040 * MS  # no stream time
    assert devices._stream_to_perf_ns(1_000 * MS, 5.0, 7.0, 40 * MS) == 1_040 * MS  # 2 s ahead: not believed


# --- microphone and half duplex -----------------------------------------------------------------------------


def test_capture_copies_and_counts_overflows():
    mic = Microphone()
    block = bytearray(pcm(20))
    data, t_ns = mic.capture(block, 123, overflow=True)
    block[:2] = b"\x00\x00"
    assert data == pcm(20) and t_ns == 123 and mic.overflows == 1


async def test_chunks_queue_on_the_loop_and_drop_the_oldest_when_nobody_reads():
    mic = Microphone(max_queue_ms=40)
    mic._started = True
    for k in range(3):
        mic._enqueue(MicChunk(bytes([k]) * 2, k))
    mic._enqueue(None)
    got = [c async for c in mic.chunks()]
    assert [c.t_ns for c in got] == [1, 2] and mic.dropped_chunks == 1


def test_half_duplex_replaces_chunks_heard_while_the_speaker_plays_with_silence():
    spk = Speaker()
    mic = Microphone()
    gate = HalfDuplex(mic, spk, hangover_ms=50)
    spk.push("a", pcm(40), RATE)
    play(spk, 3, t0_ns=1000 * MS)  # audible 1000..1040 ms
    chunk = lambda t_ms: MicChunk(pcm(20, 7), t_ms * MS)  # noqa: E731
    assert gate.gate(chunk(960)).pcm16 == pcm(20, 7)  # before (10 ms slack for stamp errors)
    assert gate.gate(chunk(1030)).pcm16 == bytes(len(pcm(20)))  # during, same length
    assert gate.gate(chunk(1080)).pcm16 == bytes(len(pcm(20)))  # within the hangover
    assert gate.gate(chunk(1100)).pcm16 == pcm(20, 7)  # after
    assert gate.muted_chunks == 2


def test_kernel_devices_describe_their_side_for_the_log():
    from vlab.audio.devices import Microphone, Speaker

    assert Microphone("pulse", 16000).describe() == {
        "side": "kernel",
        "device": "pulse",
        "sample_rate": 16000,
        "block_ms": 20.0,
    }
    assert Speaker(None, 24000, 10.0).describe() == {
        "side": "kernel",
        "device": None,
        "sample_rate": 24000,
        "block_ms": 10.0,
    }
