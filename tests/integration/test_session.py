"""vlab.Session against the emulator over a real socket: the log, barge-in, credentials, secrets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math

import pandas as pd
import pytest

import vlab
from vlab import BargeIn, ServerVad, Session, SessionSettings, protocol
from vlab.audio.pcm import silence
from vlab.clock import VirtualClock
from vlab.emulator import preset
from vlab.errors import AuthenticationFailed, ConnectionFailed, VlabWarning
from vlab.feed import set_timeline, wait_for_reaction_replies
from vlab.log import EVENT_COLUMNS, EventLog, to_frame
from vlab.session import sdk_adapter
from vlab.settings import FunctionTool
from vlab.testing import StaticTokenCredential, fast_emulator, spoken_prompt

CANARY = "CANARY-KEY-0123456789-do-not-leak"

# Barge-in tests: a reply of ≥ 20 s of simulated audio, streamed at 1x, on the emulator's "input"
# timeline (its time follows the audio sent), so the reply is still streaming when the user speaks
# again, at any speed and under any load.
STORY = "You are a storyteller. Tell a long, detailed story of at least ten sentences."
REALTIME_TTS = dataclasses.replace(preset("typical"), tts_realtime_factor=1.0)
_SILENCE_3S = silence(3000, SessionSettings().input_audio_sampling_rate)


async def _reply_follows_the_audio(session: Session) -> None:
    await set_timeline(session, protocol.TIMELINE_INPUT, timeout_s=60)


async def _everything_the_audio_caused(session: Session) -> None:
    await set_timeline(session, protocol.TIMELINE_ENDED, timeout_s=60)


async def test_every_event_is_logged_once_in_order_with_client_events_interleaved(prompt):
    async with fast_emulator(trace=True) as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.stream_audio(prompt.pcm, speed=math.inf)
            await s.wait_for("response.done")
            await s.send_text("and now some text")
            await s.wait_for("response.done")
        sent = [e["event_id"] for e in emu.trace.of_kind("send")]
    records = s.records
    assert [r.seq for r in records] == list(range(len(records)))
    assert [r.event_id for r in records if r.direction == "server"] == sent
    t = [r.t_ns for r in records]
    assert t == sorted(t)
    kinds = [(r.direction, r.type) for r in records]
    assert kinds[:3] == [
        ("local", "vlab.connect"),
        ("server", "session.created"),
        ("client", "session.update"),
    ]
    appends = [r for r in records if r.type == "input_audio_buffer.append"]
    assert sum(r.audio_bytes for r in appends) == len(prompt.pcm)
    assert appends[0].audio_start_ms == 0 and appends[-1].audio_end_ms == pytest.approx(prompt.duration_ms)
    first_text = kinds.index(("client", "conversation.item.create"))
    assert kinds[first_text + 1] == ("client", "response.create")


async def test_frame_has_the_documented_columns_and_dtypes(prompt):
    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.stream_audio(prompt.pcm, speed=math.inf)
            await s.wait_for("response.done")
            df = s.frame()
    assert tuple(df.columns[: len(EVENT_COLUMNS)]) == EVENT_COLUMNS
    assert df["t_ns"].dtype == "int64"
    assert isinstance(df["wall_time"].dtype, pd.DatetimeTZDtype) and str(df["wall_time"].dt.tz) == "UTC"
    assert df["audio_ms"].dtype == "float64" and df["audio_bytes"].dtype == "Int64"
    stopped = df[df["type"] == "input_audio_buffer.speech_stopped"].iloc[0]
    assert stopped["audio_end_ms"] == pytest.approx(prompt.speech_end_ms + 500, abs=50)
    deltas = df[df["type"] == "response.audio.delta"]
    assert (deltas["audio_ms"] > 0).all() and deltas["payload"].str.len().max() < 400  # no base64 inline
    assert df.loc[df["type"] == "response.audio_transcript.done", "text"].iloc[0].startswith("You said: ")


async def test_events_yields_sdk_models_as_logged_and_the_log_is_columnar(prompt):
    from azure.ai.voicelive.models import ServerEvent

    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            events = s.events()
            await s.send_text("hello there")
            got = []
            async for event in events:
                got.append(event)
                if event.type == "response.done":
                    break
            await events.aclose()
            df = s.frame()
            done = await s.wait_for("response.done")  # the cursor of wait_for is independent of events()
    assert isinstance(done[-1], ServerEvent) and done[-1].response.id == got[-1].response.id
    assert all(isinstance(e, ServerEvent) and e.event_id for e in got)
    deltas = [e for e in got if e.type == "response.audio.delta"]
    assert deltas and all(isinstance(e.delta, bytes) for e in deltas)
    assert isinstance(s.records, EventLog)
    logged = {r.event_id: r for r in s.records if r.direction == "server"}
    assert [logged[e.event_id].type for e in got] == [e.type for e in got]
    assert [logged[e.event_id].audio_bytes for e in deltas] == [len(e.delta) for e in deltas]
    pd.testing.assert_frame_equal(df, to_frame(list(s.records)[: len(df)]))


async def test_untyped_readers_get_the_json_and_typed_ones_the_sdk_s_own_models(prompt):
    """``typed=False`` gives each event's JSON as received; the typed path builds exactly the SDK's models."""
    from azure.ai.voicelive.models import ServerEvent

    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.stream_audio(prompt.pcm, speed=math.inf)
            read = await s.wait_for("response.done", typed=False)
    assert all(type(e) is dict for e in read) and read[-1]["type"] == "response.done"
    server = [r for r in s.records if r.direction == "server" and r.seq > 1]
    assert [e["event_id"] for e in read] == [r.event_id for r in server][: len(read)]
    assert {e["type"] for e in read} >= {"input_audio_buffer.speech_stopped", "response.audio.delta"}
    for payload in read:
        model, sdk = sdk_adapter.server_event(payload), ServerEvent._deserialize(payload, [])
        assert type(model) is type(sdk) and list(model._data.items()) == list(sdk._data.items())
        assert model.as_dict() == sdk.as_dict()


async def test_run_folder_holds_jsonl_parquet_and_session_json(tmp_path, prompt):
    run = tmp_path / "run"
    async with Session(
        run_dir=run, emulator_options={"speed": math.inf, "latency": "instant"}, dotenv_path=False
    ) as s:
        await s.stream_audio(prompt.pcm, speed=math.inf)
        await s.wait_for("response.done")
    assert {p.name for p in run.iterdir()} == {
        "events.jsonl", "events.parquet", "session.json", "input.wav", "output.wav", "conversation.wav", "output",
    }  # fmt: skip
    meta = json.loads((run / "session.json").read_text())
    assert (
        meta["target"]["kind"] == "emulator"
        and meta["sdk_version"]
        and meta["vlab_version"] == vlab.__version__
    )
    assert meta["settings"]["turn_detection"]["type"] == "server_vad"
    from_parquet = vlab.load_log(run)
    from vlab.log import read_jsonl

    from_jsonl = read_jsonl(run / "events.jsonl")
    pd.testing.assert_frame_equal(from_parquet, from_jsonl)
    assert len(from_parquet) == len(s.records)


async def test_a_run_that_replaces_another_leaves_nothing_of_it(tmp_path, prompt):
    # overwrite=True appended the new run to the old events.jsonl (two session.created, seq from 0 again)
    # and left the old run's recordings beside the new one's
    from vlab.log import read_jsonl

    run = tmp_path / "run"
    options = {"emulator_options": {"speed": math.inf, "latency": "instant"}, "dotenv_path": False}
    async with Session(run_dir=run, **options) as s:
        await s.stream_audio(prompt.pcm, speed=math.inf)
        await s.wait_for("response.done")
    async with Session(run_dir=run, overwrite=True, record_audio=False, **options) as s:
        await s.send_text("Hello there")
        await s.wait_for("response.done")
    assert {p.name for p in run.iterdir()} == {"events.jsonl", "events.parquet", "session.json"}
    from_jsonl = read_jsonl(run / "events.jsonl")
    pd.testing.assert_frame_equal(vlab.load_log(run), from_jsonl)
    assert len(from_jsonl) == len(s.records) and from_jsonl["seq"].is_monotonic_increasing
    assert (from_jsonl["type"] == "session.created").sum() == 1


@pytest.mark.parametrize("policy", [BargeIn.ON, BargeIn.TRUNCATE_ONLY, BargeIn.OFF])
async def test_barge_in_policy_stops_playback_cancels_and_truncates_at_the_played_position(
    prompt, second_prompt, policy
):
    # The server does not interrupt on its own here, so every cancel in the log is the session's.
    settings = SessionSettings(instructions=STORY, turn_detection=ServerVad(interrupt_response=False))
    async with fast_emulator(latency=REALTIME_TTS) as emu:
        async with Session(
            settings, endpoint=emu.endpoint, api_key=emu.api_key, barge_in=policy, dotenv_path=False
        ) as s:
            await _reply_follows_the_audio(s)
            await s.append_audio(prompt.pcm + _SILENCE_3S + second_prompt.pcm)  # speaks over the reply
            await s.wait_for("input_audio_buffer.speech_started", count=2)
            await wait_for_reaction_replies(s, timeout_s=60)  # before the audio ends on the timeline
            await _everything_the_audio_caused(s)
    records = s.records
    first_delta = next(i for i, r in enumerate(records) if r.type == "response.audio.delta")
    started = next(
        i for i, r in enumerate(records) if r.type == "input_audio_buffer.speech_started" and i > first_delta
    )
    after = [r for r in records[started:] if r.direction == "client"]
    kinds = [r.type for r in after]
    if policy is BargeIn.OFF:
        assert "response.cancel" not in kinds and "conversation.item.truncate" not in kinds
        return
    truncate = next(r for r in after if r.type == "conversation.item.truncate")
    first_audio = records[first_delta]
    received_before_ms = sum(r.audio_ms for r in records[:started] if r.type == "response.audio.delta")
    heard_ms = records[started].sim_ms - first_audio.sim_ms  # the listener follows the emulator's timeline
    assert 500 <= heard_ms <= received_before_ms
    end_ms = json.loads(truncate.payload)["audio_end_ms"]
    assert end_ms == int(heard_ms) and truncate.item_id == first_audio.item_id  # cut where the listener was
    assert ("response.cancel" in kinds) is (policy is BargeIn.ON)
    done = next(r for r in records[started:] if r.type == "response.done")
    status = json.loads(done.payload)["response"]["status"]
    assert status == ("cancelled" if policy is BargeIn.ON else "completed")
    truncated = [r for r in records if r.type == "conversation.item.truncated"]
    assert truncated and truncated[0].audio_end_ms == end_ms


async def test_barge_in_on_a_live_server_cuts_where_the_sessions_clock_says_the_listener_is(
    prompt, second_prompt
):
    # A live timeline (a server without vlab's simulated time): the headless listener plays on the
    # session's clock, here a virtual one, so it has heard exactly what the test says.
    settings = SessionSettings(instructions=STORY, turn_detection=ServerVad(interrupt_response=False))
    clock = VirtualClock()
    received_ms = 0.0

    def half_a_second_received(event):
        nonlocal received_ms
        if event.type == "response.audio.delta":
            received_ms += len(event.delta) / settings.output_bytes_per_s * 1000
        return received_ms >= 500

    # the ≥ 20 s reply streams at real time: still streaming while the user speaks for a second
    async with fast_emulator(speed=1.0, latency=REALTIME_TTS) as emu:
        async with Session(
            settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False, clock=clock
        ) as s:
            await s.append_audio(prompt.pcm)
            await s.wait_for(half_a_second_received)
            clock.advance_s(0.4)  # the listener has heard 400 ms of the reply
            await s.append_audio(second_prompt.pcm)
            await s.wait_for("conversation.item.truncated")
    records = s.records
    first_audio = next(r for r in records if r.type == "response.audio.delta")
    truncate = next(r for r in records if r.type == "conversation.item.truncate")
    assert json.loads(truncate.payload)["audio_end_ms"] == 400 and truncate.item_id == first_audio.item_id
    done = next(r for r in records if r.type == "response.done")
    assert json.loads(done.payload)["response"]["status"] == "cancelled"


async def test_environment_endpoint_and_key_are_used(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    async with fast_emulator() as emu:
        monkeypatch.setenv("AZURE_VOICELIVE_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", emu.api_key)
        monkeypatch.setenv("AZURE_VOICELIVE_MODEL", "env-model")
        async with Session() as s:
            assert s.target.kind == "azure" and s.target.auth == "api_key"
            assert s.server_session["model"] == "env-model"


async def test_dotenv_file_is_used_when_the_environment_is_empty(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    async with fast_emulator() as emu:
        (tmp_path / ".env").write_text(
            f"AZURE_VOICELIVE_ENDPOINT={emu.endpoint}\nAZURE_VOICELIVE_API_KEY={emu.api_key}\n"
        )
        async with Session() as s:
            assert s.target.kind == "azure" and s.target.endpoint == emu.endpoint


async def test_explicit_token_credential_sends_a_bearer_token():
    async with fast_emulator(tokens=["entra-token"]) as emu:
        credential = StaticTokenCredential("entra-token")
        async with Session(endpoint=emu.endpoint, credential=credential, dotenv_path=False) as s:
            assert s.target.auth == "entra_id"
            await s.send_text("hello")
            await s.wait_for("response.done")
    assert credential.requested_scopes == [("https://ai.azure.com/.default",)]


async def test_default_azure_credential_is_used_without_a_key(monkeypatch):
    import azure.identity.aio

    made = []

    class FakeDefault(StaticTokenCredential):
        def __init__(self, **kwargs):
            super().__init__("default-token")
            made.append(self)

    monkeypatch.setattr(azure.identity.aio, "DefaultAzureCredential", FakeDefault)
    async with fast_emulator(tokens=["default-token"]) as emu:
        async with Session(endpoint=emu.endpoint, dotenv_path=False) as s:
            assert s.target.auth == "entra_id"
    assert len(made) == 1 and made[0].requested_scopes


async def test_wrong_key_is_a_clear_connection_error():
    async with fast_emulator() as emu:
        with pytest.raises(
            ConnectionFailed, match=r"refused the API key \(HTTP 401\).*AZURE_VOICELIVE_API_KEY"
        ) as info:
            async with Session(endpoint=emu.endpoint, api_key="wrong", dotenv_path=False):
                pass
    # a local emulator's key is the one it printed, not one from an Azure resource's page
    assert isinstance(info.value, AuthenticationFailed)
    assert "Fix: set AZURE_VOICELIVE_API_KEY to the key the emulator printed as it started" in str(info.value)


async def test_a_failing_sink_is_reported_and_removed(prompt):
    calls = []

    def broken(record):
        calls.append(record)
        raise RuntimeError("sink exploded")

    async with fast_emulator() as emu:
        with pytest.warns(VlabWarning, match="sink exploded"):
            async with Session(
                endpoint=emu.endpoint, api_key=emu.api_key, sinks=[broken], dotenv_path=False
            ) as s:
                await s.send_text("hi")
                await s.wait_for("response.done")
    assert len(calls) == 1 and len(s.sink_errors) == 1
    assert len(s.records) > 5  # the session itself went on


async def test_canary_key_never_appears_anywhere(tmp_path, prompt, caplog):
    caplog.set_level("DEBUG")
    run = tmp_path / "run"
    texts = []
    async with fast_emulator(api_key=CANARY) as emu:
        async with Session(endpoint=emu.endpoint, api_key=CANARY, run_dir=run, dotenv_path=False) as s:
            texts += [repr(s), str(s), repr(s.target), s.target.describe()]
            await s.stream_audio(prompt.pcm, speed=math.inf)
            await s.wait_for("response.done")
            frame = s.frame()
        with pytest.raises(ConnectionFailed) as info:
            async with Session(endpoint=emu.endpoint, api_key=CANARY + "x", dotenv_path=False):
                pass
        texts += [str(info.value), repr(info.value)]
    texts.append(frame.to_csv())
    texts += [p.read_bytes().decode("utf-8", "replace") for p in run.rglob("*") if p.is_file()]
    texts.append(caplog.text)
    for text in texts:
        assert CANARY not in text


async def test_connect_time_is_logged_for_session_latency():
    from vlab.metrics import session_latency

    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            pass
    latency = session_latency(s.frame())
    connect = latency[latency["kind"] == "connect"].iloc[0]
    logged = {r.type: r.t_ns for r in s.records}
    assert logged["vlab.connect"] < logged["session.created"]  # stamped before connecting
    assert connect["latency_ms"] == (logged["session.created"] - logged["vlab.connect"]) / 1e6


async def test_barge_in_leaves_the_cancel_to_a_server_that_interrupts_by_itself(prompt, second_prompt):
    settings = SessionSettings(instructions=STORY, turn_detection=ServerVad(interrupt_response=True))
    async with fast_emulator(latency=REALTIME_TTS) as emu:
        async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await _reply_follows_the_audio(s)
            await s.append_audio(prompt.pcm + _SILENCE_3S + second_prompt.pcm)  # speaks over the reply
            await s.wait_for("input_audio_buffer.speech_started", count=2)
            await wait_for_reaction_replies(s, timeout_s=60)  # before the audio ends on the timeline
            await _everything_the_audio_caused(s)
    assert any(r.type == "conversation.item.truncated" for r in s.records)
    kinds = [r.type for r in s.records]
    assert "response.cancel" not in kinds and "error" not in kinds  # no redundant cancel, no routine error
    done = next(r for r in s.records if r.type == "response.done")
    assert json.loads(done.payload)["response"]["status_details"]["reason"] == "turn_detected"


async def test_interrupt_barges_in_on_the_client_s_word_for_manual_turns():
    """Push-to-talk has no ``speech_started``: ``Session.interrupt()`` cancels the reply in progress as a
    barge-in does, and sends nothing when no reply is under way."""
    settings = SessionSettings(instructions=STORY, turn_detection=None)
    async with fast_emulator(latency=REALTIME_TTS) as emu:
        async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await set_timeline(s, protocol.TIMELINE_INPUT, timeout_s=60)  # time goes as far as the audio
            await s.interrupt()  # nothing under way
            await s.send_text("Tell me about the sea.")
            await s.append_audio(_SILENCE_3S)  # the story starts within 3 s of input, and goes on past it
            await s.wait_for(protocol.AUDIO_DELTA)
            await s.interrupt()
            (*_, done) = await s.wait_for(protocol.RESPONSE_DONE, typed=False)
            await set_timeline(s, protocol.TIMELINE_ENDED, timeout_s=60)  # time runs on by itself
            await s.send_text("What time is it?")  # the next turn starts at once, with no error
            await s.wait_for(protocol.RESPONSE_DONE)
    assert done["response"]["status"] == "cancelled"
    client = [r.type for r in s.records if r.direction == "client"]
    assert client.count(protocol.CLIENT_RESPONSE_CANCEL) == 1
    assert client.index(protocol.CLIENT_RESPONSE_CANCEL) > client.index(protocol.CLIENT_RESPONSE_CREATE)
    assert not [r for r in s.records if r.type == protocol.ERROR]


async def test_stream_microphone_appends_everything_and_logs_overflows(prompt):
    class FakeMic:
        """Yields the prompt in 20 ms blocks, as a capture device would; one overflow midway."""

        overflows = 0

        async def __aiter__(self):
            for i in range(0, len(prompt.pcm), 960):
                if i == 960 * 50:
                    self.overflows += 1
                yield prompt.pcm[i : i + 960]

    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.stream_microphone(FakeMic())
            await s.wait_for("response.done")
    appended = sum(r.audio_bytes for r in s.records if r.type == "input_audio_buffer.append")
    overflow = [r for r in s.records if r.type == "vlab.input_overflow"]
    assert appended == len(prompt.pcm)
    assert len(overflow) == 1 and json.loads(overflow[0].payload)["overflows"] == 1


async def test_a_microphone_s_pcm16_goes_out_as_telephone_audio_in_a_g711_session():
    p = spoken_prompt(sample_rate=8000)  # a microphone opened at the session's input rate: 8 kHz

    class FakeMic:
        async def __aiter__(self):
            for i in range(0, len(p.pcm), 320):  # 20 ms of PCM16
                yield p.pcm[i : i + 320]

    settings = SessionSettings(input_audio_format="g711_ulaw", turn_detection=ServerVad())
    assert settings.input_sample_rate == 8000
    async with fast_emulator() as emu:
        async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.stream_microphone(FakeMic())
            stopped = (await s.wait_for("input_audio_buffer.speech_stopped"))[-1]
    appended = [r for r in s.records if r.type == "input_audio_buffer.append"]
    assert sum(r.audio_bytes for r in appended) == len(p.pcm) // 2  # one byte a sample
    assert appended[-1].audio_end_ms == pytest.approx(len(p.pcm) / 2 / 8000 * 1000)
    assert stopped.audio_end_ms == pytest.approx(p.speech_end_ms + 500, abs=60)  # the speech, heard


async def test_real_time_and_fast_replay_give_the_same_vad_boundaries(prompt):
    boundaries = []
    for speed in (1.0, math.inf):
        async with fast_emulator(speed=speed) as emu:
            async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
                await s.stream_audio(prompt.pcm, speed=speed)
                await s.wait_for("input_audio_buffer.speech_stopped")
        boundaries.append(
            [
                (r.type, r.audio_start_ms, r.audio_end_ms)
                for r in s.records
                if r.type.startswith("input_audio_buffer.speech_")
            ]
        )
    assert boundaries[0] == boundaries[1] and len(boundaries[0]) == 2


async def test_clear_input_drops_the_uncommitted_audio(prompt):
    async with fast_emulator() as emu:
        async with Session(
            SessionSettings(turn_detection=None),
            endpoint=emu.endpoint,
            api_key=emu.api_key,
            dotenv_path=False,
        ) as s:
            await s.append_audio(prompt.pcm)
            await s.clear_input()
            await s.wait_for("input_audio_buffer.cleared")
            await s.commit()  # nothing left to commit
            error = (await s.wait_for("error"))[-1]
    assert error.error.code == "input_audio_buffer_commit_empty"
    client = [r.type for r in s.records if r.direction == "client"]
    assert client[-2:] == ["input_audio_buffer.clear", "input_audio_buffer.commit"]


async def test_send_function_output_answers_the_model_s_function_call():
    tool = FunctionTool(
        name="lookup",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    )
    settings = SessionSettings(turn_detection=None, tools=[tool])
    async with fast_emulator() as emu:
        async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.send_text("please lookup the weather")
            events = await s.wait_for("response.done")
            call = next(e for e in events if e.type == "response.function_call_arguments.done")
            await s.send_function_output(call.call_id, {"temperature_c": 21})
            answer = await s.wait_for("response.done")
    created = [json.loads(r.payload) for r in s.records if r.type == "conversation.item.create"]
    assert created[-1]["item"] == {
        "type": "function_call_output",
        "call_id": call.call_id,
        "output": '{"temperature_c": 21}',
    }
    transcript = next(e for e in answer if e.type == "response.audio_transcript.done").transcript
    assert transcript == 'Here is what I found: {"temperature_c": 21}.'


async def test_a_sink_added_to_an_open_session_sees_every_record_from_then_on():
    class Collect(list):
        closed = False

        def __call__(self, record):
            self.append(record)

        def close(self):
            self.closed = True

    sink = Collect()
    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.wait_for("session.updated")
            first = len(s.records)
            s.add_sink(sink)
            await s.send_text("hi")
            await s.wait_for("response.done")
            assert not sink.closed
    assert sink.closed  # closed with the session
    assert [r.seq for r in sink] == list(range(first, len(s.records)))
    assert sink == list(s.records)[first:]


async def test_the_emulator_speaks_the_protocol_the_session_checks_no_warnings(prompt):
    """Every server event type the emulator sends passes the session's field checks (vlab.session.checks)."""
    tool = FunctionTool(
        name="lookup",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    )
    settings = SessionSettings(
        tools=[tool],
        transcription="whisper-1",
        extra={"output_audio_timestamp_types": ["word"], "animation": {"outputs": ["viseme_id"]}},
    )
    async with fast_emulator() as emu:
        async with Session(settings, endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as s:
            await s.stream_audio(prompt.pcm, speed=math.inf)
            await s.wait_for("response.done")
            await s.send_text("please lookup the weather")
            await s.wait_for("response.done")
            await s.cancel_response()  # an error event: nothing to cancel
            await s.wait_for("error")
            await s.clear_input()
            await s.wait_for("input_audio_buffer.cleared")
    types = {r.type for r in s.records if r.direction == "server"}
    assert {"response.audio.delta", "response.audio_timestamp.delta", "response.animation_viseme.delta",
            "response.function_call_arguments.done", "conversation.item.input_audio_transcription.completed",
            "error", "input_audio_buffer.speech_started"} <= types  # fmt: skip
    assert s.protocol_warnings == 0, [r.payload for r in s.records if r.type == "vlab.protocol_warning"]


async def test_a_latency_seed_goes_first_to_vlab_s_emulator_and_to_no_other_server():
    from vlab.testing import scripted_server

    async with Session(latency_seed=42, dotenv_path=False) as session:  # the embedded emulator
        await session.wait_for("session.updated", count=2)
    sent = [json.loads(r.payload)["session"] for r in session.records if r.type == "session.update"]
    assert sent[0] == {"metadata": {protocol.LATENCY_SEED_METADATA_KEY: "42"}} and "turn_detection" in sent[1]

    first: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    async def voice_live_elsewhere(ws) -> None:  # no simulated time on its events: not vlab's emulator
        await ws.send_str(json.dumps({"type": "session.created", "session": {"id": "sess_a"}}))
        first.set_result(json.loads((await ws.receive()).data))

    async with scripted_server(voice_live_elsewhere) as endpoint:
        async with Session(endpoint=endpoint, api_key="k", latency_seed=42, dotenv_path=False):
            update = await asyncio.wait_for(first, timeout=30)
    assert update["type"] == "session.update" and "metadata" not in update["session"]
    with pytest.raises(vlab.errors.ConfigError, match="latency_seed must be an integer or None, got '42'"):
        Session(latency_seed="42")


async def test_settings_the_server_refuses_are_recorded_and_other_errors_are_not(tmp_path):
    # a refused session.update used to be logged at INFO only: the session went on with the server's own
    # settings, and a replay or a sweep cell reported success for settings that were never in effect
    async with fast_emulator(refuse=["voice:alloy"]) as emu:
        where = {"endpoint": emu.endpoint, "api_key": emu.api_key, "dotenv_path": False}
        async with Session(SessionSettings(voice="alloy"), run_dir=tmp_path / "refused", **where) as s:
            error = (await s.wait_for("error"))[-1]
            await s.cancel_response()  # an error too, but not about the settings
            await s.wait_for("error")
        async with Session(SessionSettings(voice="echo"), **where) as accepted:
            await accepted.wait_for("session.updated", count=1)
            await accepted.update(SessionSettings(voice="alloy"))  # refused later: recorded too
            await accepted.wait_for("error")
    assert error.error.event_id == "vlab_session_update_1"  # the update, told by the id vlab gave it
    assert s.settings_refused is not None and s.settings_refused.startswith("invalid_value: ")
    assert "'alloy' is not supported by this resource" in s.settings_refused
    summary = json.loads((tmp_path / "refused" / "session.json").read_text())["summary"]
    assert summary["settings_refused"] == s.settings_refused
    assert accepted.settings_refused is not None
    async with fast_emulator() as emu:
        async with Session(endpoint=emu.endpoint, api_key=emu.api_key, dotenv_path=False) as fine:
            await fine.cancel_response()
            await fine.wait_for("error")
    assert fine.settings_refused is None and fine.summary()["settings_refused"] is None
