"""Server-VAD turns through the real SDK: event order, ids, timing on the input-audio clock."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from azure.ai.voicelive.aio import connect
from azure.ai.voicelive.models import InputAudioFormat, RequestSession, ServerVad
from azure.core.credentials import AzureKeyCredential

from vlab import protocol
from vlab.audio import g711
from vlab.testing import collect_events, spoken_prompt, types_of, until_idle

NON_DELTA = {"response.audio.delta", "response.audio_transcript.delta"}


async def _turn(conn, pcm: bytes, *, chunk_bytes: int | None = None, **vad) -> list:
    await conn.session.update(session=RequestSession(turn_detection=ServerVad(**vad)))
    await collect_events(conn, "session.updated")
    if chunk_bytes is None:
        await conn.input_audio_buffer.append(audio=pcm)
    else:
        for i in range(0, len(pcm), chunk_bytes):
            await conn.input_audio_buffer.append(audio=pcm[i : i + chunk_bytes])
    return await collect_events(conn, "response.done")


async def test_vad_turn_follows_service_order_with_consistent_ids(conn, prompt):
    events = await _turn(conn, prompt.pcm, threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    order = [t for t in types_of(events) if t not in NON_DELTA]
    assert order == list(protocol.VAD_TURN_ORDER)

    by_type = {}
    for ev in events:
        by_type.setdefault(ev.type, []).append(ev)
    user_id = by_type["input_audio_buffer.speech_started"][0].item_id
    assert by_type["input_audio_buffer.speech_stopped"][0].item_id == user_id
    assert by_type["input_audio_buffer.committed"][0].item_id == user_id
    user_item, assistant_item = (e.item for e in by_type["conversation.item.created"])
    assert user_item.id == user_id and user_item.role == "user"
    response_id = by_type["response.created"][0].response.id
    assistant_id = by_type["response.output_item.added"][0].item.id
    assert (
        assistant_item.id == assistant_id
        and by_type["conversation.item.created"][1].previous_item_id == user_id
    )
    for ev in events:
        if ev.type.startswith("response.") and ev.type not in ("response.created", "response.done"):
            assert ev.response_id == response_id, ev.type
            assert ev.output_index == 0
        if ev.type.startswith(("response.audio", "response.content_part")):
            assert ev.item_id == assistant_id and ev.content_index == 0

    audio_bytes = sum(len(e.delta) for e in by_type["response.audio.delta"])
    assert audio_bytes > 24000  # more than half a second of 24 kHz PCM16
    transcript = "".join(e.delta for e in by_type["response.audio_transcript.delta"])
    assert by_type["response.audio_transcript.done"][0].transcript == transcript
    done = by_type["response.done"][0].response
    assert done.status == "completed" and done.usage.total_tokens > 0
    assert [i.id for i in done.output] == [assistant_id]


async def test_audio_end_ms_marks_end_of_speech_plus_silence(conn, prompt):
    events = await _turn(conn, prompt.pcm, threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
    assert stopped.audio_end_ms == pytest.approx(prompt.speech_end_ms + 500, abs=50)
    assert started.audio_start_ms == pytest.approx(prompt.speech_start_ms - 300, abs=50)


async def test_streamed_chunks_and_whole_file_give_the_same_timeline(emulator, prompt):
    results = []
    for chunk in (None, 960):  # whole file, then 20 ms chunks at 24 kHz
        async with connect(endpoint=emulator.endpoint, credential=AzureKeyCredential(emulator.api_key)) as c:
            events = await _turn(
                c,
                prompt.pcm,
                chunk_bytes=chunk,
                threshold=0.5,
                prefix_padding_ms=300,
                silence_duration_ms=500,
            )
            results.append(
                [
                    (e.type, e.get("audio_start_ms"), e.get("audio_end_ms"))
                    for e in events
                    if e.type.startswith("input_audio_buffer.speech")
                ]
            )
    assert results[0] == results[1]


async def test_higher_threshold_never_detects_more_speech(emulator):
    # quiet, breathy speech makes the threshold matter
    quiet = spoken_prompt("So, um, I was thinking, maybe, we could go later?", trail_ms=1200)
    pcm = (np.frombuffer(quiet.pcm, "<i2") * 0.05).astype("<i2").tobytes()
    totals = []
    for threshold in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        async with connect(endpoint=emulator.endpoint, credential=AzureKeyCredential(emulator.api_key)) as c:
            await c.session.update(
                session=RequestSession(
                    turn_detection=ServerVad(
                        threshold=threshold,
                        prefix_padding_ms=0,
                        silence_duration_ms=200,
                        create_response=False,
                    )
                )
            )
            await c.input_audio_buffer.append(audio=pcm + bytes(48000))
            events = await until_idle(c)
        total = 0
        start = None
        for e in [*events]:
            if e.type == "input_audio_buffer.speech_started":
                start = e.audio_start_ms
            elif e.type == "input_audio_buffer.speech_stopped" and start is not None:
                total += e.audio_end_ms - 200 - start
        totals.append(total)
    assert totals == sorted(totals, reverse=True), totals
    assert totals[0] > totals[-1], totals  # the threshold is used: not every setting detects the same
    assert totals[0] > 0


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
async def test_configured_input_rate_is_echoed_and_timed_in_ms(conn, rate):
    p = spoken_prompt(sample_rate=rate)
    await conn.session.update(
        session=RequestSession(
            input_audio_sampling_rate=rate, turn_detection=ServerVad(silence_duration_ms=500)
        )
    )
    updated = (await collect_events(conn, "session.updated"))[-1]
    assert updated.session.input_audio_sampling_rate == rate
    await conn.input_audio_buffer.append(audio=p.pcm)
    events = await collect_events(conn, "input_audio_buffer.speech_stopped")
    assert events[-1].audio_end_ms == pytest.approx(p.speech_end_ms + 500, abs=50)


async def test_g711_input_is_decoded_for_the_vad(conn):
    p = spoken_prompt(sample_rate=8000)
    await conn.session.update(
        session=RequestSession(input_audio_format=InputAudioFormat.G711_ULAW, turn_detection=ServerVad())
    )
    updated = (await collect_events(conn, "session.updated"))[-1]
    assert (
        updated.session.input_audio_format == "g711_ulaw"
        and updated.session.input_audio_sampling_rate == 8000
    )
    await conn.input_audio_buffer.append(audio=g711.ulaw_encode(p.pcm))
    events = await collect_events(conn, "input_audio_buffer.speech_stopped")
    assert events[-1].audio_end_ms == pytest.approx(p.speech_end_ms + 500, abs=60)


async def test_a_whole_wav_file_with_header_is_used_as_audio(conn, prompt):
    buf = io.BytesIO()
    sf.write(buf, np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate, format="WAV", subtype="PCM_16")
    await conn.session.update(session=RequestSession(turn_detection=ServerVad(silence_duration_ms=500)))
    await conn.input_audio_buffer.append(audio=buf.getvalue())
    await conn.input_audio_buffer.append(
        audio=bytes(48000)
    )  # trailing silence as a second append, like the SDK tests
    events = await collect_events(conn, "response.done")
    stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
    assert stopped.audio_end_ms == pytest.approx(prompt.speech_end_ms + 500, abs=50)
    assert types_of(events).count("response.created") == 1


async def test_semantic_vad_turn_and_create_response_false(conn, prompt):
    from azure.ai.voicelive.models import AzureSemanticVadEn

    await conn.session.update(
        session=RequestSession(turn_detection=AzureSemanticVadEn(create_response=False))
    )
    updated = (await collect_events(conn, "session.updated"))[-1]
    assert updated.session.turn_detection.type == "azure_semantic_vad_en"
    assert updated.session.turn_detection.prefix_padding_ms == 420
    await conn.input_audio_buffer.append(audio=prompt.pcm)
    events = await collect_events(conn, "conversation.item.created")
    assert types_of(events) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
    ]
    assert await until_idle(conn) == []  # create_response: false → the client must ask
    await conn.response.create()
    assert types_of(await collect_events(conn, "response.done")).count("response.audio.delta") > 3
