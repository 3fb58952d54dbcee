"""PocketSphinx decodes in a process of its own: it holds the GIL while it decodes, and on a thread it froze
the emulator's event loop (every connection) for the length of each decode."""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
import os
import signal
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from vlab.audio.vad import EnergyModel
from vlab.emulator import asr
from vlab.emulator.asr import NOISE_FLOOR_RMS, PocketSphinxRecognizer, RecognitionError, recognize
from vlab.emulator.transcript_store import CACHE_DIR_ENV, STORE_FILE
from vlab.testing import spoken_prompt

PHRASE = "Weather in Seattle?"


@pytest.fixture(scope="module")
def speech() -> tuple[bytes, int]:
    """A short phrase with little silence around it: each decode takes about 0.3 s of CPU (a long question
    with the default 2 s of silence took 1 s), and these tests decode it some twenty times."""
    prompt = spoken_prompt(PHRASE, lead_ms=200.0, trail_ms=300.0)
    return prompt.pcm, prompt.sample_rate


@pytest.fixture
def process() -> Iterator[asr.RecognitionProcess]:
    process = asr.RecognitionProcess()
    yield process
    process.close()


@pytest.mark.parametrize(
    ("noise_floor_rms", "words"),
    # without the noise floor, the digital silence around the phrase costs words (docs/emulator.md)
    [(NOISE_FLOOR_RMS, ["weather", "in", "seattle"]), (0.0, ["seattle"])],
)
def test_the_recognition_process_decodes_as_this_process_would(
    speech, process, noise_floor_rms, words
) -> None:
    pcm, rate = speech
    here = PocketSphinxRecognizer(noise_floor_rms=noise_floor_rms).transcribe(pcm, rate)
    there = process.transcribe(noise_floor_rms, pcm, rate)  # a fresh decoder in each: the same words
    assert there.words == here.words and there.audio_ms == here.audio_ms
    assert process.pid not in (None, os.getpid())
    # each word spans its first to its last 10 ms frame: in one breath, the next word starts where it ends
    spans = [(w.offset_ms, w.offset_ms + w.duration_ms) for w in here.words]
    assert [w.text for w in here.words] == words
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(spans))
    assert 0 < spans[0][0] and spans[-1][1] <= here.audio_ms


def test_recognize_sends_pocketsphinx_to_the_one_recognition_process(speech) -> None:
    pcm, rate = speech
    heard = asyncio.run(recognize(PocketSphinxRecognizer(), pcm, rate))
    assert "seattle" in heard.text.split()
    pid = asr._PROCESS.pid
    assert pid not in (None, os.getpid())
    asyncio.run(recognize(PocketSphinxRecognizer(), pcm, rate))
    assert asr._PROCESS.pid == pid


def test_a_recognition_process_that_dies_is_replaced_on_the_next_request(speech, process) -> None:
    pcm, rate = speech
    process.transcribe(NOISE_FLOOR_RMS, pcm, rate)
    first = process._proc
    assert first is not None
    first.kill()
    first.wait()
    again = process.transcribe(NOISE_FLOOR_RMS, pcm, rate)
    assert "seattle" in again.text.split()
    assert process.pid not in (None, first.pid)
    assert first.stdin is not None and first.stdout is not None
    assert first.stdin.closed and first.stdout.closed  # its pipes are not left to the collector


def test_ctrl_c_to_the_process_group_leaves_the_recognition_process_running(speech, process) -> None:
    """A notebook's "interrupt kernel" signals every process of the kernel's group, its helpers too."""
    pcm, rate = speech
    process.transcribe(NOISE_FLOOR_RMS, b"\0" * 3200, 16000)  # started (too short to decode)
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    assert "seattle" in process.transcribe(NOISE_FLOOR_RMS, pcm, rate).text.split()
    assert process.pid == pid


def test_a_request_the_process_cannot_answer_is_a_recognition_error(process) -> None:
    process.transcribe(NOISE_FLOOR_RMS, b"\0" * 3200, 16000)  # starts it (too short to decode)
    assert process._proc is not None and process._proc.stdout is not None
    process._proc.stdout.close()  # the answer cannot be read
    with pytest.raises(RecognitionError, match="speech recognition process failed"):
        process.transcribe(NOISE_FLOOR_RMS, b"\0" * 3200, 16000)
    assert process.pid is None


@pytest.mark.parametrize(
    ("speed", "hear_audio", "starts"),
    [(1.0, True, True), (1.0, False, False), (math.inf, True, False)],
    ids=["real-time", "real-time-not-hearing", "fast"],
)
async def test_a_real_time_emulator_starts_the_recognition_process_when_the_user_starts_speaking(
    speed, hear_audio, starts
) -> None:
    """In real time the turn's own length hides the process's start; in fast mode a decode starts it."""
    from azure.ai.voicelive.aio import connect
    from azure.core.credentials import AzureKeyCredential

    from vlab.emulator import Emulator
    from vlab.testing import collect_events

    async def running() -> bool:  # asked on the ASR thread, after whatever was queued there before
        return await asyncio.wrap_future(asr._thread().submit(lambda: asr._PROCESS.pid is not None))

    await asyncio.wrap_future(asr._thread().submit(asr._PROCESS.close))
    speech = spoken_prompt(PHRASE, trail_ms=0)  # no silence after it: the turn never ends, nothing is read
    async with Emulator(
        speed=speed, latency="instant", hear_audio=hear_audio, vad_model_factory=EnergyModel
    ) as emu:
        assert not await running()  # not at the emulator's start
        async with connect(
            endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime"
        ) as conn:
            await conn.input_audio_buffer.append(audio=base64.b64encode(speech.pcm).decode("ascii"))
            await collect_events(conn, "input_audio_buffer.speech_started")
            assert await running() is starts


@pytest.fixture
def counted(monkeypatch, tmp_path) -> list[bytes]:
    """Every request that reaches the recognition process, with no transcript remembered beforehand
    (in memory or on disk: the cache folder is new)."""
    monkeypatch.setattr(asr, "_transcripts", type(asr._transcripts)())
    monkeypatch.setattr(asr, "_stores", {})
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    requests: list[bytes] = []
    transcribe = asr._PROCESS.transcribe

    def counting(noise_floor_rms: float, pcm16: bytes, sample_rate: int) -> asr.Transcript:
        requests.append(pcm16)
        return transcribe(noise_floor_rms, pcm16, sample_rate)

    monkeypatch.setattr(asr._PROCESS, "transcribe", counting)
    return requests


async def test_audio_read_at_once_and_again_later_is_decoded_once(speech, counted) -> None:
    pcm, rate = speech
    first, second = await asyncio.gather(
        recognize(PocketSphinxRecognizer(), pcm, rate), recognize(PocketSphinxRecognizer(), pcm, rate)
    )
    later = await recognize(PocketSphinxRecognizer(), pcm, rate)
    assert counted == [pcm]
    assert first.words == second.words == later.words and "seattle" in later.text.split()
    assert sorted(t.decode_s > 0 for t in (first, second, later)) == [False, False, True]
    other_floor = await recognize(PocketSphinxRecognizer(noise_floor_rms=0.0), pcm, rate)
    assert len(counted) == 2 and other_floor.decode_s > 0  # another front end is other audio


async def test_a_caller_that_is_cancelled_leaves_the_reading_to_the_others(
    speech, counted, monkeypatch
) -> None:
    pcm, rate = speech
    monkeypatch.setenv(CACHE_DIR_ENV, "off")  # memory only: a reading dropped from it is decoded again
    busy = threading.Event()
    asr._thread().submit(busy.wait)  # the reading waits in the queue, where a cancel would remove it
    gone = asyncio.ensure_future(recognize(PocketSphinxRecognizer(), pcm, rate))
    await asyncio.sleep(0)  # wall-clock ok: one loop turn (no time passes), so the caller has asked
    staying = asyncio.ensure_future(recognize(PocketSphinxRecognizer(), pcm, rate))
    gone.cancel()
    await asyncio.wait([gone])  # its cancellation has run
    busy.set()
    assert "seattle" in (await staying).text.split()
    assert gone.cancelled() and counted == [pcm]
    assert (await recognize(PocketSphinxRecognizer(), pcm, rate)).decode_s == 0.0  # still remembered
    assert counted == [pcm]


async def test_a_reading_that_nobody_awaits_any_more_leaves_the_queue(speech, counted) -> None:
    pcm, rate = speech
    busy = threading.Event()
    asr._thread().submit(busy.wait)
    gone = asyncio.ensure_future(recognize(PocketSphinxRecognizer(), pcm, rate))
    await asyncio.sleep(0)  # wall-clock ok: one loop turn (no time passes), so the caller has asked
    gone.cancel()
    await asyncio.wait([gone])  # its cancellation has run
    busy.set()
    await asyncio.wrap_future(asr._thread().submit(lambda: None))  # the queue has run
    assert gone.cancelled() and counted == []  # a closed emulator's turns are not decoded after it
    assert "seattle" in (await recognize(PocketSphinxRecognizer(), pcm, rate)).text.split()
    assert counted == [pcm]  # not remembered as cancelled


async def test_a_failed_reading_is_not_remembered(speech, counted, monkeypatch) -> None:
    pcm, rate = speech
    counting = asr._PROCESS.transcribe

    def failing(noise_floor_rms: float, pcm16: bytes, sample_rate: int) -> asr.Transcript:
        counted.append(pcm16)
        raise RecognitionError("the speech recognition process failed (test)")

    monkeypatch.setattr(asr._PROCESS, "transcribe", failing)
    with pytest.raises(RecognitionError, match="test"):
        await recognize(PocketSphinxRecognizer(), pcm, rate)
    monkeypatch.setattr(asr._PROCESS, "transcribe", counting)
    assert "seattle" in (await recognize(PocketSphinxRecognizer(), pcm, rate)).text.split()
    assert len(counted) == 2  # the failure, then a real reading (not the failure remembered)


async def test_a_transcript_another_process_stored_is_read_without_decoding(
    speech, counted, monkeypatch, tmp_path
) -> None:
    pcm, rate = speech
    first = await recognize(PocketSphinxRecognizer(), pcm, rate)  # decoded, and stored on disk
    assert counted == [pcm] and (tmp_path / "cache" / STORE_FILE).exists()
    monkeypatch.setattr(asr, "_transcripts", type(asr._transcripts)())  # as a new process: memory empty
    monkeypatch.setattr(asr, "_stores", {})
    again = await recognize(PocketSphinxRecognizer(), pcm, rate)
    assert counted == [pcm]  # read from the disk, not decoded
    assert again.words == first.words and again.audio_ms == first.audio_ms and again.decode_s == 0.0


async def test_a_stored_answer_that_is_not_a_transcript_is_decoded_again(speech, counted, tmp_path) -> None:
    pcm, rate = speech
    folder = tmp_path / "cache"
    folder.mkdir()
    key = asr._key(NOISE_FLOOR_RMS, rate, pcm)
    (folder / STORE_FILE).write_bytes(key.encode() + b' {"words": 3}\n')
    assert "seattle" in (await recognize(PocketSphinxRecognizer(), pcm, rate)).text.split()
    assert counted == [pcm]


async def test_with_the_cache_off_nothing_is_written(speech, counted, monkeypatch, tmp_path) -> None:
    pcm, rate = speech
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    await recognize(PocketSphinxRecognizer(), pcm, rate)
    assert counted == [pcm] and not (tmp_path / "cache").exists()


async def test_the_memory_keeps_the_most_recently_used_transcripts(monkeypatch) -> None:
    monkeypatch.setattr(asr, "_transcripts", type(asr._transcripts)())
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    monkeypatch.setattr(asr, "READ_CACHE_SIZE", 2)
    decoded: list[bytes] = []

    def transcribe(noise_floor_rms: float, pcm16: bytes, sample_rate: int) -> asr.Transcript:
        decoded.append(pcm16)
        return asr.Transcript(audio_ms=len(pcm16) / 32, decode_s=0.1)

    monkeypatch.setattr(asr._PROCESS, "transcribe", transcribe)
    a, b, c = (bytes([n]) * 3200 for n in (1, 2, 3))

    async def read(pcm: bytes) -> bool:
        """True when the transcript was remembered."""
        return (await recognize(PocketSphinxRecognizer(), pcm, 16000)).decode_s == 0.0

    assert [await read(pcm) for pcm in (a, b, a)] == [False, False, True]  # a is now the most recent
    assert not await read(c)  # a third: the least recently used (b) goes
    assert [await read(pcm) for pcm in (a, c)] == [True, True]
    assert not await read(b)
    assert decoded == [a, b, c, b]


async def test_hear_cuts_the_digital_silence_around_the_speech_to_200_ms_each_side() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.heard: list[bytes] = []

        def transcribe(self, pcm16: bytes, sample_rate: int) -> asr.Transcript:
            self.heard.append(pcm16)
            return asr.Transcript((asr.RecognizedWord("hello", 0.0, 100.0),))

    rate = 16000
    loud = np.full(800, 1000, dtype="<i2").tobytes()  # 50 ms
    quiet = np.full(rate, 4, dtype="<i2").tobytes()  # 1 s at the digital-silence level
    recorder = Recorder()
    assert await asr.hear(recorder, quiet + loud + quiet, rate) == "hello"
    pad = np.full(rate // 5, 4, dtype="<i2").tobytes()  # 200 ms
    assert recorder.heard == [pad + loud + pad]
    short = np.full(rate // 20, 4, dtype="<i2").tobytes()  # less silence than the pad: all kept
    await asr.hear(recorder, short + loud + b"\x00", rate)  # an odd byte is dropped
    await asr.hear(recorder, quiet, rate)  # nothing loud: the audio as it came
    assert recorder.heard[1:] == [short + loud, quiet]


@pytest.mark.parametrize("offset", [1, 2422, 5017])
async def test_a_turn_reads_the_same_wherever_its_speech_starts_in_the_committed_audio(offset) -> None:
    # The whole turn as committed, read as it came, heard "weather" as "that women" at two of these
    # offsets: a live microphone's first chunk falls anywhere.
    speech = spoken_prompt("What is the weather like in Seattle today?", lead_ms=300, trail_ms=300)
    recognizer = PocketSphinxRecognizer()
    first = await asr.read_turn(recognizer, speech.pcm, speech.sample_rate)
    shifted = await asr.read_turn(recognizer, bytes(2 * offset) + speech.pcm, speech.sample_rate)
    assert shifted.text == first.text == "what is the weather like in seattle today"
