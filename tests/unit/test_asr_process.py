"""PocketSphinx decodes in a process of its own: it holds the GIL while it decodes, and on a thread it froze
the emulator's event loop (every connection) for the length of each decode."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from vlab.audio.vad import EnergyModel
from vlab.emulator import asr
from vlab.emulator.asr import NOISE_FLOOR_RMS, PocketSphinxRecognizer, RecognitionError, recognize
from vlab.testing import spoken_prompt

PHRASE = "What is the weather in Seattle today?"


@pytest.fixture(scope="module")
def speech() -> tuple[bytes, int]:
    prompt = spoken_prompt(PHRASE)
    return prompt.pcm, prompt.sample_rate


@pytest.fixture
def process() -> Iterator[asr.RecognitionProcess]:
    process = asr.RecognitionProcess()
    yield process
    process.close()


@pytest.mark.parametrize("noise_floor_rms", [NOISE_FLOOR_RMS, 0.0])
def test_the_recognition_process_decodes_as_this_process_would(speech, process, noise_floor_rms) -> None:
    pcm, rate = speech
    here = PocketSphinxRecognizer(noise_floor_rms=noise_floor_rms).transcribe(pcm, rate)
    there = process.transcribe(noise_floor_rms, pcm, rate)  # a fresh decoder in each: the same words
    assert there.words == here.words and there.audio_ms == here.audio_ms
    assert process.pid not in (None, os.getpid())


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


def test_a_request_the_process_cannot_answer_is_a_recognition_error(process) -> None:
    process.transcribe(NOISE_FLOOR_RMS, b"\0" * 3200, 16000)  # starts it (too short to decode)
    assert process._proc is not None and process._proc.stdout is not None
    process._proc.stdout.close()  # the answer cannot be read
    with pytest.raises(RecognitionError, match="speech recognition process failed"):
        process.transcribe(NOISE_FLOOR_RMS, b"\0" * 3200, 16000)
    assert process.pid is None


@pytest.mark.parametrize(("hear_audio", "starts"), [(True, True), (False, False)])
async def test_an_emulator_that_reads_the_users_words_starts_the_recognition_process(
    hear_audio, starts
) -> None:
    from vlab.emulator import Emulator

    await asyncio.wrap_future(asr._thread().submit(asr._PROCESS.close))
    async with Emulator(hear_audio=hear_audio, vad_model_factory=EnergyModel):
        await asyncio.wrap_future(asr._thread().submit(lambda: None))  # after what the start queued
        assert (asr._PROCESS.pid is not None) is starts
