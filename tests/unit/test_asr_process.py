"""PocketSphinx decodes in a process of its own: it holds the GIL while it decodes, and on a thread it froze
the emulator's event loop (every connection) for the length of each decode."""

from __future__ import annotations

import asyncio
import os

import pytest

from vlab.emulator import asr
from vlab.emulator.asr import PocketSphinxRecognizer, RecognitionError, recognize
from vlab.testing import spoken_prompt

PHRASE = "What is the weather in Seattle today?"


@pytest.fixture(scope="module")
def speech() -> tuple[bytes, int]:
    prompt = spoken_prompt(PHRASE)
    return prompt.pcm, prompt.sample_rate


def test_recognize_decodes_in_another_process_as_this_process_would(speech) -> None:
    pcm, rate = speech
    here = PocketSphinxRecognizer().transcribe(pcm, rate)
    there = asyncio.run(recognize(PocketSphinxRecognizer(), pcm, rate))
    assert there.words == here.words and there.audio_ms == here.audio_ms
    assert "seattle" in there.text.split()
    pid = asr._PROCESS.pid
    assert pid is not None and pid != os.getpid()
    quiet = asyncio.run(recognize(PocketSphinxRecognizer(noise_floor_rms=0.0), pcm, rate))  # its own floor
    assert quiet.words == PocketSphinxRecognizer(noise_floor_rms=0.0).transcribe(pcm, rate).words
    assert asr._PROCESS.pid == pid  # one process for every request


def test_a_recognition_process_that_dies_is_replaced_on_the_next_request(speech) -> None:
    pcm, rate = speech
    asyncio.run(recognize(PocketSphinxRecognizer(), pcm, rate))
    proc = asr._PROCESS._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    again = asyncio.run(recognize(PocketSphinxRecognizer(), pcm, rate))
    assert "seattle" in again.text.split()
    assert asr._PROCESS.pid not in (None, proc.pid)


def test_a_request_the_process_cannot_answer_is_a_recognition_error() -> None:
    process = asr.RecognitionProcess()
    asyncio.run(asyncio.to_thread(process.transcribe, 3e-3, b"\0" * 3200, 16000))  # starts it
    assert process._proc is not None
    process._proc.stdout.close()  # the answer cannot be read
    with pytest.raises(RecognitionError, match="speech recognition process failed"):
        process.transcribe(3e-3, b"\0" * 3200, 16000)
    assert process.pid is None
