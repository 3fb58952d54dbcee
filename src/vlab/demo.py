"""``make demo``: the seed's minimal Voice Live example, through the real SDK, on the embedded emulator.

It starts the offline emulator, connects with ``azure.ai.voicelive.aio.connect``, configures server
VAD (threshold 0.5, prefix padding 300 ms, silence 500 ms), streams a synthesized spoken question in
real time, and prints every event with its time until ``response.done``. Then it replays the same
question through :class:`vlab.Session` and shows the logged DataFrame.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time

from vlab.audio.pacing import paced_chunks
from vlab.testing import spoken_prompt


async def sdk_minimal_example() -> None:
    """The seed's example: plain SDK calls, events printed with timestamps."""
    from azure.ai.voicelive.aio import connect
    from azure.ai.voicelive.models import (
        InputAudioFormat,
        Modality,
        OutputAudioFormat,
        RequestSession,
        ServerVad,
    )
    from azure.core.credentials import AzureKeyCredential

    from vlab.emulator import Emulator

    prompt = spoken_prompt("Hi! What is the weather like in Seattle today?", trail_ms=1200)
    async with Emulator() as emu:
        print(f"embedded Voice Live emulator at {emu.endpoint}\n")
        async with connect(
            endpoint=emu.endpoint, credential=AzureKeyCredential(emu.api_key), model="gpt-realtime"
        ) as conn:
            session = RequestSession(
                modalities=[Modality.TEXT, Modality.AUDIO],
                instructions="You are a helpful assistant.",
                input_audio_format=InputAudioFormat.PCM16,
                output_audio_format=OutputAudioFormat.PCM16,
                turn_detection=ServerVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500),
            )
            await conn.session.update(session=session)
            t0 = time.perf_counter()

            async def speak() -> None:
                async for chunk, _ in paced_chunks(prompt.pcm, sample_rate=prompt.sample_rate):
                    await conn.input_audio_buffer.append(audio=chunk)

            sender = asyncio.create_task(speak())
            print(f"user says: {prompt.text!r} (speech ends at {prompt.speech_end_ms:.0f} ms of the audio)\n")
            print(f"{'t (ms)':>9}  event")
            audio_deltas = 0
            async for event in conn:
                t_ms = (time.perf_counter() - t0) * 1000
                detail = ""
                if event.type == "input_audio_buffer.speech_started":
                    detail = f"audio_start_ms={event.audio_start_ms}"
                elif event.type == "input_audio_buffer.speech_stopped":
                    detail = f"audio_end_ms={event.audio_end_ms}"
                elif event.type == "response.audio.delta":
                    audio_deltas += 1
                    if audio_deltas > 1:
                        continue
                    detail = f"{len(event.delta)} bytes (first audio; further deltas not printed)"
                elif event.type == "response.audio_transcript.delta":
                    detail = repr(event.delta)
                elif event.type == "response.audio_transcript.done":
                    detail = repr(event.transcript)
                elif event.type == "response.done":
                    detail = f"status={getattr(event.response.status, 'value', event.response.status)}, {audio_deltas} audio deltas"
                print(f"{t_ms:9.1f}  {event.type}  {detail}")
                if event.type == "response.done":
                    break
            await sender


async def vlab_session_example() -> None:
    """The same turn through vlab.Session: every event logged into a DataFrame."""
    from vlab import Session
    from vlab.metrics import summarize_turns

    prompt = spoken_prompt("Hi! What is the weather like in Seattle today?", trail_ms=1200)
    run_dir = tempfile.mkdtemp(prefix="vlab-demo-")
    async with Session(run_dir=run_dir, emulator_options={"speed": math.inf}, dotenv_path=False) as session:
        await session.stream_audio(prompt.pcm, speed=math.inf)
        await session.wait_for("response.done")
        frame = session.frame()
    print(f"\nvlab.Session logged {len(frame)} events to {run_dir}:")
    counts = frame.groupby(["direction", "type"]).size().rename("events")
    print(counts.to_string())
    for turn in summarize_turns(session.records):
        print(
            f"\nspeech_stopped → first audio: {turn['stopped_to_first_audio_ms']:.1f} ms (emulator at full speed)"
        )


def main() -> None:
    """Run both parts of the demo."""
    asyncio.run(sdk_minimal_example())
    asyncio.run(vlab_session_example())


if __name__ == "__main__":
    main()
