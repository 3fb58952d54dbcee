"""The session panel driven headless, as a user would: values, clicks, and what shows."""

from __future__ import annotations

import asyncio
import datetime
import html
import json
import math
import re
import socket

import numpy as np
import pytest
import soundfile as sf

from tests._logs import T0_NS, hand_record
from tests._mcp_server import stand_in_mcp
from tests.widgets._output import shown_html
from vlab import protocol
from vlab.bundled import bundled_dir
from vlab.clock import VirtualClock
from vlab.errors import ConfigError
from vlab.log.records import EventRecord
from vlab.metrics import turn_latency
from vlab.prompts import load_prompt_set
from vlab.settings import FunctionTool
from vlab.widgets import SessionPanel

CANARY = "CANARY-PANEL-KEY-0123456789"


@pytest.fixture
def prompt_dir(tmp_path, prompt):
    d = tmp_path / "prompts"
    d.mkdir()
    sf.write(d / "question.wav", np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate)
    return d


def _panel(tmp_path, prompt_dir, **kw):
    return SessionPanel(
        runs_dir=tmp_path / "runs",
        prompt_dir=prompt_dir,
        emulator_options={"speed": math.inf, "latency": "typical"},
        **{"replay_speed": math.inf, "keep_open": False, "source": "WAV prompt", **kw},
    )


async def test_start_replays_the_prompt_and_shows_events_and_latency(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir)
    assert panel.prompt.options[0][0] == "question.wav"
    panel.threshold.value = 0.6
    panel.silence.value = 600
    panel.start.click()
    assert panel.start.disabled and not panel.stop.disabled
    await panel.task
    assert panel.output.outputs == ()
    assert "response.done" in panel.table.value
    assert "voice-to-voice" in panel.latency.value and " ms" in panel.latency.value
    assert "finished" in panel.status.value and not panel.start.disabled
    meta = json.loads((panel.run_dir / "session.json").read_text())
    assert meta["settings"]["turn_detection"]["threshold"] == 0.6
    assert meta["settings"]["turn_detection"]["silence_duration_ms"] == 600
    assert (panel.run_dir / "events.parquet").is_file()


async def test_manual_turns_commit_and_ask_for_a_response(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir)
    panel.turn_type.value = "manual"
    assert panel.vad_box.layout.display == "none"
    panel.start.click()
    await panel.task
    assert "response.done" in panel.table.value and panel.output.outputs == ()
    assert "commit-to-voice" in panel.latency.value and "endpointing" not in panel.latency.value


@pytest.mark.parametrize(("eou", "responses"), [(False, 2), (True, 1)], ids=["timer alone", "with eou"])
async def test_end_of_utterance_detection_holds_a_pause_the_silence_timer_would_end(tmp_path, eou, responses):
    """pause_600, "I would like to book a table for … four people": a 300 ms timer answers inside the pause;
    with end-of-utterance detection ("…for" sounds unfinished) the turn waits for the rest. The file is a
    copy with no manifest beside it: no labels, so the panel times the turn from the speech ends it finds."""
    import shutil

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    shutil.copy(bundled_dir("prompts") / "pause_600.wav", unlabelled)
    panel = _panel(tmp_path, unlabelled)
    panel.prompt.value = next(path for label, path in panel.prompt.options if label.startswith("pause_600"))
    panel.silence.value = 300
    assert panel.eou_timeout.layout.display == "none"  # shown once asked for
    panel.eou.value = eou
    assert panel.eou_timeout.layout.display == (None if eou else "none")
    panel.eou_timeout.value = 1200
    panel.start.click()
    await panel.task
    assert panel.output.outputs == (), panel.output.outputs
    sent = json.loads((panel.run_dir / "session.json").read_text())["settings"]["turn_detection"]
    expected = {"model": "semantic_detection_v1", "timeout_ms": 1200} if eou else None
    assert sent.get("end_of_utterance_detection") == expected
    frame = panel.session.frame()
    assert (frame["type"] == protocol.RESPONSE_DONE).sum() == responses
    # the figure starts where the user stopped, though end-of-utterance detection ended the turn later
    (labels,) = [p.end_of_turn_ms for p in load_prompt_set() if p.id == "pause_600"]
    last = turn_latency(frame, end_of_turn_ms=labels).iloc[-1]
    shown = float(re.search(r"voice-to-voice <b>(\d+) ms</b>", panel.latency.value).group(1))
    assert abs(shown - last.voice_to_voice_ms) < 30  # where the panel found the speech ends, not the label
    note = "from an estimate that leaves out any wait for more speech (up to 1200 ms)"
    assert note not in panel.latency.value
    if eou:  # a microphone's speech has no end found yet: the estimate, and the line says what it lacks
        panel._latency_line.speech_ends.clear()
        panel._latency_line.update()
        assert note in panel.latency.value


async def test_errors_show_in_the_panel_with_a_clear_message(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir)
    panel.target.value = "Azure endpoint"
    panel.start.click()  # no endpoint entered
    assert panel.task is None
    (shown,) = panel.output.outputs
    text = shown["data"]["text/plain"]
    assert "Enter the Azure endpoint" in text


async def test_a_connection_failure_is_shown_not_lost(tmp_path, prompt_dir):
    from vlab.testing import fast_emulator

    async with fast_emulator() as emu:
        panel = _panel(tmp_path, prompt_dir, session_options={"dotenv_path": False})
        panel.target.value = "Azure endpoint"
        panel.endpoint.value = emu.endpoint
        panel.api_key.value = CANARY
        panel.start.click()
        await panel.task
    (shown,) = panel.output.outputs
    assert "refused the API key (HTTP 401)" in shown["data"]["text/plain"]
    assert "failed: the endpoint refused the API key" in panel.status.value
    assert CANARY not in json.dumps(shown) and CANARY not in panel.status.value
    assert (
        "run folder" not in panel.status.value
    )  # it named one nothing was logged in (the explorer refused it)


async def test_a_connection_failure_names_the_box_to_fix_not_a_variable_the_form_does_not_read(
    tmp_path, prompt_dir
):
    # the fixes named AZURE_VOICELIVE_API_KEY / AZURE_VOICELIVE_ENDPOINT, which a panel's target is not read from
    from vlab.testing import fast_emulator

    async with fast_emulator() as emu:
        with socket.socket() as unused:  # bound, never listening: nothing answers there
            unused.bind(("127.0.0.1", 0))
            nobody = f"http://127.0.0.1:{unused.getsockname()[1]}"
            for endpoint, fix in (
                (emu.endpoint, "Fix: set the API key box (Auth: API key) to the key the emulator printed"),
                (nobody, "Fix: check the port in the Endpoint box;"),
            ):
                panel = _panel(tmp_path, prompt_dir, session_options={"dotenv_path": False})
                panel.target.value = "Azure endpoint"
                panel.endpoint.value = endpoint
                panel.api_key.value = CANARY
                panel.start.click()
                await panel.task
                shown = shown_html(panel.output)
                assert fix in shown and fix in panel.status.value
                assert "AZURE_VOICELIVE" not in shown + panel.status.value


async def test_entra_id_chosen_signs_in_with_entra_id_though_the_environment_holds_a_key(
    tmp_path, prompt_dir, monkeypatch
):
    # Session(endpoint=...) with no key read AZURE_VOICELIVE_API_KEY, so Auth "Entra ID" used the key
    import azure.identity.aio

    from vlab.testing import EmulatorTokenCredential, fast_emulator

    made: list[EmulatorTokenCredential] = []
    closed: list[EmulatorTokenCredential] = []

    class SignsIn(EmulatorTokenCredential):
        async def close(self) -> None:
            closed.append(self)

    async with fast_emulator() as emu:
        emu.identity.grant("panel-user")
        monkeypatch.setenv("AZURE_VOICELIVE_API_KEY", emu.api_key)  # a key the emulator would accept
        monkeypatch.setattr(
            azure.identity.aio,
            "DefaultAzureCredential",
            lambda: made.append(SignsIn(emu.identity, "panel-user")) or made[-1],
        )
        panel = _panel(tmp_path, prompt_dir, session_options={"dotenv_path": False})
        panel.target.value = "Azure endpoint"
        panel.endpoint.value = emu.endpoint
        panel.auth.value = "Entra ID"
        panel.start.click()
        await panel.task
    assert panel.error is None and "<b>Status:</b> finished" in panel.status.value
    assert panel.session is not None and panel.session.target.auth == "entra_id"
    assert emu.identity.issued == 1 and made[0].refreshes == 1
    assert closed == made  # the credential the run made, closed by it


async def test_the_event_table_times_events_on_the_clock_the_session_stamps_them_on(tmp_path, prompt_dir):
    # its ms column started from time.perf_counter_ns() while the records are stamped on the session's clock
    from vlab.clock import SystemClock

    class Elsewhere(SystemClock):  # the real clock, read from another origin
        def monotonic_ns(self) -> int:
            return super().monotonic_ns() + 10**15

    panel = _panel(tmp_path, prompt_dir, session_options={"clock": Elsewhere()})
    panel.start.click()
    await panel.task
    shown = [
        float(ms.replace(",", ""))
        for ms in re.findall(r"<td style='text-align:right'>([^<]+)</td>", panel.table.value)
    ]
    assert shown and 0 <= shown[0] <= shown[-1] < 60_000


async def test_waiting_for_an_answer_times_out_on_the_sessions_clock(tmp_path, prompt_dir):
    # it timed out on the event loop's clock, whatever clock the panel's sessions were given
    clock = VirtualClock()
    panel = _panel(tmp_path, prompt_dir, session_options={"clock": clock})
    waiting = asyncio.ensure_future(panel.wait_answered(timeout_s=120))
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline_ns() == 120 * 10**9 and not waiting.done()
    clock.advance_to_next()
    with pytest.raises(TimeoutError):
        await waiting


def test_the_api_key_never_stays_in_widget_state(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir)
    panel.target.value = "Azure endpoint"
    panel.api_key.value = CANARY
    assert panel.api_key.value == ""
    states = json.dumps([w.get_state() for w in _all_widgets(panel.widget)], default=str)
    assert CANARY not in states and CANARY not in repr(panel)


@pytest.mark.parametrize(
    "typed",
    [CANARY, f"https://r.services.ai.azure.com/?api-key={CANARY}", "sk-other-key-in-the-endpoint-box"],
)
def test_a_key_typed_into_the_endpoint_box_is_emptied_from_it(tmp_path, prompt_dir, typed):
    # it was refused, "(not shown)", but stayed in the box: widget state, which the notebook saves
    panel = _panel(tmp_path, prompt_dir)
    panel.target.value = "Azure endpoint"
    panel.api_key.value = CANARY
    panel.endpoint.value = typed
    panel.start.click()
    assert panel.task is None and panel.endpoint.value == ""
    (shown,) = panel.output.outputs
    assert "The Endpoint box held an API key or no address, and was emptied" in shown_html(panel.output)
    states = json.dumps([w.get_state() for w in _all_widgets(panel.widget)], default=str)
    assert CANARY not in states and CANARY not in json.dumps(panel.output.outputs)


def _all_widgets(w):
    yield w
    for child in getattr(w, "children", ()):
        yield from _all_widgets(child)


async def test_an_open_session_takes_several_prompts_then_stops(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir, keep_open=True)
    panel.speaker_side.disabled = True  # one disabled before the session stays so after it
    before = {
        name: getattr(panel, name).disabled for name in ("silence", "turn_type", "source", "speaker_side")
    }
    panel.start.click()
    await panel.wait_answered()
    assert panel.running and panel.start.description == "Send prompt" and not panel.start.disabled
    # what the open session was made of is held (a change there was silently ignored), the prompt is free
    assert panel.silence.disabled and panel.turn_type.disabled and panel.source.disabled
    assert not panel.prompt.disabled
    panel.start.click()  # the next turn, same session
    await panel.wait_answered()
    responses = [r for r in panel.session.records if r.type == "response.done"]
    assert len(responses) == 2
    panel.stop.click()
    with pytest.raises(asyncio.CancelledError):
        await panel.task
    assert "stopped" in panel.status.value and panel.start.description == "Start"
    assert panel.output.outputs == ()
    assert {name: getattr(panel, name).disabled for name in before} == before  # as they were


async def test_a_labelled_prompt_is_timed_from_its_labels_which_the_run_folder_keeps(tmp_path, prompt):
    """digits ("My number is … four two five … five five five …") from a folder whose manifest lists it,
    under a 300 ms timer: the panel, like vlab replay, times its turns from the labels (the replies in its
    pauses are false cut-offs) and the run folder keeps them for the log explorer. A next prompt with no
    labels in the same session drops them: its turn would otherwise take a label of another prompt."""
    import shutil

    from vlab.prompts import RunLabels, read_run_labels

    (digits,) = [p for p in load_prompt_set() if p.id == "digits"]
    folder = tmp_path / "prompts"
    folder.mkdir()
    shutil.copy(digits.file, folder)
    manifest = json.loads((bundled_dir("prompts") / "manifest.json").read_text())
    manifest["prompts"] = [e for e in manifest["prompts"] if e["id"] == "digits"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    sf.write(folder / "yours.wav", np.frombuffer(prompt.pcm, "<i2"), prompt.sample_rate)  # not listed
    panel = _panel(tmp_path, folder, keep_open=True)
    panel.prompt.value = str(folder / "digits.wav")
    panel.silence.value = 300
    panel.start.click()
    await panel.wait_answered()
    frame = panel.session.frame()
    turns = turn_latency(frame, end_of_turn_ms=digits.end_of_turn_ms)
    assert turns["false_cutoff"].sum() >= 1 and turns.iloc[-1]["a_eos_source"] == "label"
    shown = float(re.search(r"voice-to-voice <b>(\d+) ms</b>", panel.latency.value).group(1))
    assert abs(shown - turns.iloc[-1]["voice_to_voice_ms"]) <= 0.5, panel.latency.value
    assert read_run_labels(panel.run_dir) == RunLabels(digits.end_of_turn_ms)
    panel.prompt.value = str(folder / "yours.wav")
    panel.start.click()
    await panel.wait_answered()
    assert read_run_labels(panel.run_dir) is None and panel._latency_line.end_of_turn_ms is None
    panel.stop.click()
    with pytest.raises(asyncio.CancelledError):
        await panel.task
    assert panel.output.outputs == ()


async def test_stop_cancels_a_running_session(tmp_path, prompt_dir):
    panel = SessionPanel(
        runs_dir=tmp_path / "runs",
        prompt_dir=prompt_dir,
        emulator_options={"speed": 1.0},
        replay_speed=1.0,
        source="WAV prompt",
    )
    panel.start.click()
    await asyncio.wait_for(panel.connected.wait(), 60)
    assert panel.running  # connected and sending the prompt in real time: seconds from its answer
    panel.stop.click()
    with pytest.raises(asyncio.CancelledError):
        await panel.task
    assert "stopped" in panel.status.value and not panel.connected.is_set()
    assert (panel.run_dir / "events.parquet").is_file()  # the run folder is completed


@pytest.mark.parametrize(("kernel_in", "first"), [(False, "Browser microphone"), (True, "WAV prompt")])
def test_the_browser_microphone_is_the_default_when_the_kernel_has_none(
    tmp_path, prompt_dir, monkeypatch, kernel_in, first
):
    import vlab.widgets.session_panel as session_panel

    monkeypatch.setattr(session_panel, "kernel_has_device", lambda kind: kernel_in)
    panel = SessionPanel(runs_dir=tmp_path / "runs", prompt_dir=prompt_dir)
    assert panel.source.value == first
    labels = [label for label, _ in panel.source.options]
    assert ("Kernel microphone" if kernel_in else "Kernel microphone (none found)") in labels
    assert SessionPanel(runs_dir=tmp_path, prompt_dir=prompt_dir, source="Uploaded file").source.value == (
        "Uploaded file"
    )
    with pytest.raises(ConfigError, match="source must be one of"):
        SessionPanel(runs_dir=tmp_path, prompt_dir=prompt_dir, source="Line in")


class _TalkingMic:
    """A kernel microphone that captures the prompt once, then waits (as if the room went quiet)."""

    def __init__(self, pcm: bytes, *, go: asyncio.Event | None = None) -> None:
        self.pcm = pcm
        self.go = go  # set: the user starts speaking (None: at once)
        self.said = asyncio.Event()  # the whole prompt has been captured

    async def __aenter__(self) -> _TalkingMic:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def chunks(self):
        from vlab.audio.devices import MicChunk
        from vlab.audio.pacing import paced_chunks

        if self.go is not None:
            await self.go.wait()
        async for pcm, offset_ms in paced_chunks(self.pcm, sample_rate=24_000, speed=math.inf):
            yield MicChunk(pcm, t_ns=round(offset_ms * 1e6))  # captured at its offset
        self.said.set()
        await asyncio.Event().wait()


async def test_manual_turns_from_a_microphone_end_with_the_end_turn_button(
    tmp_path, prompt_dir, prompt, monkeypatch
):
    """Push-to-talk: with no turn detection nothing ends the user's turn but them. End turn (shown for a
    microphone with manual turns, enabled while it listens) commits what was said and asks for the answer."""
    import vlab.audio.devices

    mic = _TalkingMic(prompt.pcm)
    monkeypatch.setattr(vlab.audio.devices, "Microphone", lambda sample_rate: mic)
    panel = _panel(tmp_path, prompt_dir)
    panel.turn_type.value = "manual"
    assert panel.end_turn.layout.display == "none"  # a WAV prompt is committed when it has been sent
    panel.source.value = "Microphone"
    assert panel.end_turn.layout.display is None and panel.end_turn.disabled
    panel.turn_type.value = "server_vad"
    assert panel.end_turn.layout.display == "none"  # the server's VAD ends the turns
    panel.turn_type.value = "manual"
    panel.start.click()
    await mic.said.wait()
    assert not panel.end_turn.disabled and "End turn" in panel.status.value
    interrupted = []  # a reply the user spoke over stops first (Session.interrupt: tests/integration)
    interrupt = panel.session.interrupt
    monkeypatch.setattr(panel.session, "interrupt", lambda: interrupted.append(1) or interrupt())
    assert panel.end_user_turn() is not None
    await panel.session.wait_for(protocol.AUDIO_TRANSCRIPT_DONE)
    (turn,) = turn_latency(panel.session.frame()).itertuples()
    assert (turn.trigger, turn.a_eos_ms) == ("commit", len(prompt.pcm) / 2 / 24)  # all it had said
    assert interrupted == [1]
    assert "turn ended" in panel.status.value and panel.output.outputs == ()
    panel.stop.click()
    with pytest.raises(asyncio.CancelledError):
        await panel.task
    assert panel.end_turn.disabled and panel.end_user_turn() is None


async def test_a_microphone_turn_held_for_more_speech_is_timed_from_where_the_speech_ended(
    tmp_path, prompt_dir, monkeypatch
):
    """pause_600 said into a microphone, under end-of-utterance detection: the server holds the turn for
    the rest of the sentence, so the line's figure starts where the speech ended in the microphone's audio
    (found off the loop once the reply is done), not at the estimate that leaves the hold out. The
    emulator runs on the input timeline (as for a WAV prompt), so it decides alike at any speed."""
    import vlab.audio.devices
    from vlab.audio.wav import load_wav
    from vlab.feed import set_timeline

    (pause,) = [p for p in load_prompt_set() if p.id == "pause_600"]
    speak = asyncio.Event()
    mic = _TalkingMic(load_wav(pause.file, 24_000, trail_ms=3000), go=speak)  # then the room goes quiet
    monkeypatch.setattr(vlab.audio.devices, "Microphone", lambda sample_rate: mic)
    panel = _panel(tmp_path, prompt_dir)
    panel.source.value = "Microphone"
    panel.silence.value = 300
    panel.eou.value = True
    panel.eou_timeout.value = 1200
    panel.start.click()
    await panel.connected.wait()
    await set_timeline(panel.session, protocol.TIMELINE_INPUT, timeout_s=60)
    speak.set()
    await mic.said.wait()
    await set_timeline(panel.session, protocol.TIMELINE_ENDED, timeout_s=60)  # answered once all is done
    await panel._latency_line.searching
    assert panel.output.outputs == (), panel.output.outputs
    frame = panel.session.frame()
    last = turn_latency(frame, end_of_turn_ms=pause.end_of_turn_ms).iloc[-1]
    estimated = turn_latency(frame).iloc[-1]
    assert last.voice_to_voice_ms - estimated.voice_to_voice_ms > 900  # the hold the estimate leaves out
    shown = float(re.search(r"voice-to-voice <b>(\d+) ms</b>", panel.latency.value).group(1))
    assert abs(shown - last.voice_to_voice_ms) < 30, panel.latency.value
    assert "estimate" not in panel.latency.value and "finding" not in panel.latency.value
    panel.stop.click()
    with pytest.raises(asyncio.CancelledError):
        await panel.task


def test_the_microphone_audio_kept_is_its_last_minute_placed_on_the_input_clock():
    from vlab.widgets.latency_line import MIC_AUDIO_KEPT_S, RecentAudio

    rate = 1000  # 1 sample per ms: positions read as sample counts
    recent = RecentAudio(rate, start_ms=500.0)  # the microphone started 500 ms into the input
    second = lambda k: np.full(rate, k, "<i2").tobytes()  # noqa: E731
    for k in range(int(MIC_AUDIO_KEPT_S) + 10):  # 70 s, one second a chunk, each its own value
        recent.add(second(k))
    assert recent.start_ms == 500.0 + 10_000.0  # the first 10 s are gone
    start_ms, pcm = recent.between(20_000.0, 20_002.0)  # 19.5 s after the mic started: the 20th second
    assert start_ms == 20_000.0 and np.frombuffer(pcm, "<i2").tolist() == [19, 19]
    assert recent.between(0.0, 10_500.0) == (10_500.0, b"")  # before what is kept: nothing
    start_ms, pcm = recent.between(70_000.0, 99_000.0)  # past the end: what there is
    assert start_ms == 70_000.0 and len(pcm) == 2 * 500


def test_the_level_meter_moves_ten_times_a_second_of_audio_with_the_loudest_chunk():
    import ipywidgets as widgets

    from vlab.widgets.level_meter import LevelMeter

    bar = widgets.FloatProgress(min=0.0, max=1.0)
    sent: list[float] = []
    bar.observe(lambda change: sent.append(change["new"]), names="value")
    meter = LevelMeter(bar, sample_rate=24000)
    quiet = np.full(480, 100, "<i2").tobytes()  # 20 ms at -50.3 dBFS: 0.16
    loud = np.full(480, 16384, "<i2").tobytes()  # 20 ms at -6 dBFS: 0.9
    for k in range(50):  # one second of audio: 5 windows of 100 ms, one loud chunk in the third
        meter(loud if k == 12 else quiet)
    # a value per 100 ms window, none sent again while it stays: quiet, the loud window, quiet again
    assert sent == [0.16, 0.9, 0.16]
    meter.reset()
    assert bar.value == 0.0


def test_the_event_table_shows_the_latest_events_however_many_audio_appends_follow(tmp_path, prompt_dir):
    # a live microphone logs 50 appends a second: the table still shows the last events of interest
    from types import SimpleNamespace

    def record(seq: int, kind: str) -> EventRecord:
        return hand_record(seq, seq * 20.0, "server", kind)

    panel = _panel(tmp_path, prompt_dir, max_rows=5)
    records = [record(k, f"event.{k}") for k in range(8)]
    records += [record(8 + k, "input_audio_buffer.append") for k in range(1000)]
    panel.session = SimpleNamespace(records=records)
    for r in records:
        panel._on_record(r)
    panel._refresh()
    table = panel.table.value
    assert "(1008 logged" in table
    assert table.count("<tr>") == 1 + 5  # the header and the last five events of interest
    assert all(f"event.{k}" in table for k in range(3, 8)) and "event.2" not in table
    assert "input_audio_buffer.append" not in table


def test_each_source_shows_only_its_own_controls_and_stop_waits_for_a_start(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir)
    assert panel.stop.disabled and not panel.start.disabled  # nothing to stop yet
    shown = lambda box: box.layout.display != "none"  # noqa: E731
    for source, prompt_box, upload_box in (("Uploaded file", False, True), ("WAV prompt", True, False)):
        panel.source.value = source
        assert (shown(panel.prompt_box), shown(panel.upload_box)) == (prompt_box, upload_box), source


def test_the_event_table_shows_each_event_s_direction_and_detail():
    from vlab.widgets.session_panel import render_event_table

    rows = [
        hand_record(k, k * 1.5, direction, kind, **fields)
        for k, (direction, kind, fields) in enumerate([
            ("client", "response.cancel", {}),
            ("server", "error", {"error_code": "x_code", "error_message": "went wrong"}),
            ("server", "input_audio_buffer.speech_stopped", {"audio_end_ms": 1234.4}),
            ("local", "vlab.connection_lost", {"text": "dropped " * 20}),
            ("server", "response.done", {"response_id": "resp_1"}),
        ])
    ]  # fmt: skip
    table = render_event_table(rows, T0_NS, total=9)
    cells = re.findall(r"<tr><td[^>]*>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    assert cells == [
        ("0", "→", "response.cancel", ""),
        ("2", "←", "error", "x_code: went wrong"),
        ("3", "←", "input_audio_buffer.speech_stopped", "audio_end_ms=1234"),
        ("4", "·", "vlab.connection_lost", ("dropped " * 20)[:100]),  # vlab's own: neither sent nor received
        ("6", "←", "response.done", "response_id=resp_1"),
    ]
    assert "(9 logged; deltas hidden)" in table


def test_an_untouched_panel_asks_for_the_default_server_vad(tmp_path, prompt_dir):
    from vlab import ServerVad

    assert _panel(tmp_path, prompt_dir).settings().turn_detection == ServerVad()


WEATHER = FunctionTool(
    "get_current_weather",
    "Get the current weather in a given location",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)
LEARN = "https://learn.microsoft.com/api/mcp"


def _answered_before_ended(frame) -> bool:
    """The replay asked for its last response before it told the emulator its input had ended: on the
    input timeline, where each answer is placed where its call ended at any speed."""
    client = frame[frame["direction"] == "client"]
    modes = [protocol.timeline_mode(json.loads(p)) for p in client["payload"]]
    asked = [i for i, kind in enumerate(client["type"]) if kind == protocol.CLIENT_RESPONSE_CREATE]
    return modes.index(protocol.TIMELINE_ENDED) > asked[-1]


def _said(panel) -> list[str]:
    frame = panel.session.frame()
    return frame[frame["type"] == "response.audio_transcript.done"]["text"].tolist()


async def test_a_function_tool_s_handler_answers_and_the_answer_is_spoken_before_the_turn_ends(
    tmp_path, prompt_dir
):
    asked = []
    called, release = asyncio.Event(), asyncio.Event()

    async def get_current_weather(location: str) -> dict:  # slow, as a call over the network is
        asked.append(location)
        called.set()
        await release.wait()
        return {"location": location, "temperature": 22}

    panel = _panel(
        tmp_path, prompt_dir, tools=[WEATHER], tool_handlers={"get_current_weather": get_current_weather}
    )
    assert "get_current_weather" in panel.tools_note.value
    assert panel.mcp_box.layout.display == "none"  # no MCP server named
    answering = asyncio.Event()  # the status line says the turn waits for its tool calls
    panel.status.observe(
        lambda change: answering.set() if "answering the tool calls" in change["new"] else None,
        names="value",
    )
    panel.start.click()
    await asyncio.wait(
        [panel.task, asyncio.ensure_future(answering.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    assert called.is_set() and not panel.task.done() and not panel.answered.is_set()
    release.set()
    await panel.task
    assert asked == ["Seattle"] and panel.output.outputs == ()
    result = json.dumps({"location": "Seattle", "temperature": 22})
    assert _said(panel) == [f"Here is what I found: {result}."]
    assert "finished" in panel.status.value and panel.runner is None
    # the last response is the answer: the line gives the turn's whole wait, from the end of its speech
    turns = turn_latency(panel.session.frame())
    wait = turns["voice_to_answer_ms"].iloc[0]
    assert f"voice-to-answer <b>{wait:.0f} ms</b> through 1 tool call" in panel.latency.value
    # on the emulator's timeline the answer is asked for where the call ended, however slow the handler
    assert turns["timeline"].iloc[0] == "simulated"
    assert turns["t_eos_ns"].iloc[1] == turns["t_done_ns"].iloc[0]


async def test_a_manual_turn_s_tool_call_is_answered_where_it_ended(tmp_path, prompt_dir):
    """The committed turn's response and its call come after the prompt's audio: the replay sends the
    user's silence until they have (its status line does not go back to "sending the prompt…"), so the
    answer happens on the emulator's timeline where the call ended, not at the audio's end before it."""

    async def get_current_weather(location: str) -> dict:
        return {"location": location, "temperature": 22}

    panel = _panel(
        tmp_path, prompt_dir, tools=[WEATHER], tool_handlers={"get_current_weather": get_current_weather}
    )
    panel.turn_type.value = "manual"
    statuses: list[str] = []
    panel.status.observe(lambda change: statuses.append(change["new"]), names="value")
    panel.start.click()
    await panel.task
    result = json.dumps({"location": "Seattle", "temperature": 22})
    assert _said(panel) == [f"Here is what I found: {result}."] and panel.output.outputs == ()
    frame = panel.session.frame()
    question, answer = (row for _, row in turn_latency(frame).iterrows())
    assert (question.trigger, question.tool_calls, answer.trigger) == ("commit", 1, "client")
    assert question.timeline == "simulated" and answer.t_eos_ns == question.t_done_ns
    assert _answered_before_ended(frame)
    assert sum("sending the prompt" in s for s in statuses) == 1 and "finished" in statuses[-1]


@pytest.mark.parametrize(
    ("button", "said", "turns"),
    [
        ("Approve", "Here is what I found: microsoft_docs_search answered {}.", "server_vad"),
        ("Decline", "I did not run microsoft_docs_search, as you declined it.", "server_vad"),
        ("Approve", "Here is what I found: microsoft_docs_search answered {}.", "manual"),
    ],
)
async def test_an_mcp_call_waits_for_the_approve_or_decline_button(tmp_path, prompt_dir, button, said, turns):
    weather = {"microsoft_docs_search": "Get the weather like in a city today."}
    async with stand_in_mcp(descriptions=weather) as mcp:
        panel = _panel(tmp_path, prompt_dir)
        panel.turn_type.value = turns
        panel.emulator_options["mcp_redirects"] = {LEARN: mcp.url}
        panel.mcp_url.value = LEARN
        panel.mcp_label.value = "azure_doc"
        assert panel.mcp_box.layout.display is None and panel.mcp_approval.value == "always"
        panel.start.click()
        await panel.awaiting_approval.wait()
        (row,) = panel.approvals.children
        text = row.children[0].value
        assert "<b>azure_doc</b> asks to run <code>microsoft_docs_search(" in text
        asking = "waiting for your approval of <code>microsoft_docs_search</code>"
        assert asking in panel.status.value
        panel._set_status("waiting for the answer…")  # as the prompt's feeding may say meanwhile
        assert asking in panel.status.value  # the line keeps asking until a button is pressed
        arguments = json.loads(panel.runner.pending[next(iter(panel.runner.pending))].arguments)
        (pressed,) = [b for b in row.children[1].children if b.description == button]
        pressed.click()
        await panel.task
    assert panel.approvals.children == () and not panel.awaiting_approval.is_set()
    assert _said(panel) == [said.replace("{}", json.dumps(arguments, sort_keys=True))]
    assert mcp.methods().count("tools/call") == (1 if button == "Approve" else 0)
    assert panel.output.outputs == () and "finished" in panel.status.value
    assert "-to-answer" in panel.latency.value and "through 1 tool call" in panel.latency.value
    # the person's answer happens on the emulator's timeline where the request's response ended: the
    # emulator holds its time there, and the replay's rounds wait for the person
    turns = turn_latency(panel.session.frame())
    assert turns["timeline"].iloc[0] == "simulated" and _answered_before_ended(panel.session.frame())
    assert turns["t_eos_ns"].iloc[1] == turns["t_done_ns"].iloc[0]


async def test_a_person_may_take_longer_than_the_replay_s_timeout_to_decide(tmp_path, prompt_dir):
    """The emulator holds its time at the request until the person answers: the replay's wait for it
    does not time out meanwhile (virtual time: three minutes pass on the session's clock)."""
    clock = VirtualClock()
    weather = {"microsoft_docs_search": "Get the weather like in a city today."}
    async with stand_in_mcp(descriptions=weather) as mcp:
        panel = _panel(tmp_path, prompt_dir, session_options={"clock": clock})
        panel.emulator_options["mcp_redirects"] = {LEARN: mcp.url}
        panel.mcp_url.value = LEARN
        panel.mcp_label.value = "azure_doc"
        panel.start.click()
        await panel.awaiting_approval.wait()
        clock.advance_s(180)  # past the replay's 120 s timeout, before the button is pressed
        (row,) = panel.approvals.children
        (approve,) = [b for b in row.children[1].children if b.description == "Approve"]
        approve.click()
        await panel.task
    assert panel.output.outputs == () and "finished" in panel.status.value
    assert mcp.methods().count("tools/call") == 1


def test_the_mcp_token_never_stays_in_widget_state_and_a_bad_server_is_refused_clearly(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir)
    panel.mcp_url.value = "https://mcp.example/mcp"
    panel.mcp_token.value = CANARY
    assert panel.mcp_token.value == "" and "token set" in panel.mcp_token.placeholder
    (server,) = panel.settings().tools
    assert server.authorization == CANARY and CANARY not in repr(server)
    states = json.dumps([w.get_state() for w in _all_widgets(panel.widget)], default=str)
    assert CANARY not in states and CANARY not in repr(panel)

    panel.mcp_url.value = "mcp.example/mcp"
    with pytest.raises(ConfigError, match="server_url") as refused:
        panel.settings()
    assert CANARY not in str(refused.value)
    panel.start.click()
    assert panel.task is None
    (shown,) = panel.output.outputs
    assert "server_url" in shown["data"]["text/plain"]


async def test_two_calls_waiting_for_approval_each_have_their_buttons_and_the_status_names_them(
    tmp_path, prompt_dir
):
    from vlab.session import McpApprovalRequest

    panel = _panel(tmp_path, prompt_dir)
    search = McpApprovalRequest("ap_1", "docs", "search", '{"query": "vad"}')
    launch = McpApprovalRequest("ap_2", "pad", "launch_rocket", "{" + '"x": "' + "y" * 400 + '"}')
    both_shown = asyncio.Event()
    panel.approvals.observe(
        lambda change: both_shown.set() if len(change["new"]) == 2 else None, names="children"
    )
    first = asyncio.ensure_future(panel._ask_approval(search))
    second = asyncio.ensure_future(panel._ask_approval(launch))
    await both_shown.wait()
    texts = [row.children[0].value for row in panel.approvals.children]
    assert "<code>search({&quot;query&quot;: &quot;vad&quot;})</code>" in texts[0]
    assert texts[1].endswith("…)</code>") and len(texts[1]) < 400  # long arguments are cut
    assert "approval of <code>search</code> (and 1 more)" in panel.status.value

    panel.approvals.children[0].children[1].children[0].click()  # Approve the first
    assert await first is True
    assert "approval of <code>launch_rocket</code>" in panel.status.value and "more" not in panel.status.value
    panel.approvals.children[0].children[1].children[1].click()  # Decline the second
    assert await second is False
    assert panel.approvals.children == () and not panel.awaiting_approval.is_set()
    assert "answering the tool calls" in panel.status.value


def test_the_prompt_list_and_the_upload_take_every_audio_file_vlab_reads(tmp_path):
    from vlab.audio.formats import AUDIO_SUFFIXES
    from vlab.widgets.session_panel import list_prompts

    audio = [f"a{suffix}" for suffix in AUDIO_SUFFIXES] + ["b.MP3"]  # any case
    (tmp_path / "calls").mkdir()
    for name in (*audio, "notes.txt", "manifest.json"):
        (tmp_path / "calls" / name).write_bytes(b"")
    assert [label for label, _ in list_prompts(tmp_path)] == sorted(f"calls/{name}" for name in audio)
    panel = SessionPanel(runs_dir=tmp_path / "runs", prompt_dir=tmp_path)
    assert panel.upload.accept.split(",") == list(AUDIO_SUFFIXES)


async def test_telephone_audio_sends_the_prompt_and_hears_the_reply_as_g711_at_8_khz(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir)
    assert panel.settings().input_audio_format == "pcm16" and panel.settings().input_sample_rate == 24000
    panel.audio_format.value = "Telephone: G.711 µ-law, 8 kHz both ways"
    panel.start.click()
    await panel.task
    assert panel.output.outputs == ()
    meta = json.loads((panel.run_dir / "session.json").read_text())
    assert meta["settings"]["input_audio_format"] == meta["settings"]["output_audio_format"] == "g711_ulaw"
    for recorded in ("input.wav", "output.wav"):  # the prompt sent and the reply heard, decoded
        audio, rate = sf.read(panel.run_dir / recorded, dtype="float32")
        assert rate == 8000 and np.abs(audio).max() > 0.1, recorded
    frame = panel.session.frame()
    assert (frame["type"] == protocol.SPEECH_STOPPED).any()  # the emulator heard speech in it
    assert "voice-to-voice" in panel.latency.value


def test_a_table_of_no_rows_or_a_replay_that_never_moves_is_refused_when_the_panel_is_made(tmp_path):
    from vlab.errors import ConfigError
    from vlab.widgets import LogExplorer

    for make, said in (
        (lambda: SessionPanel(runs_dir=tmp_path, max_rows=0), "^max_rows must be an integer ≥ 1, got 0$"),
        (
            lambda: SessionPanel(runs_dir=tmp_path, replay_speed=0),
            "^speed must be a number > 0",
        ),  # was: at Start
        (lambda: LogExplorer(max_rows=0), "^max_rows must be an integer ≥ 1, got 0$"),
    ):
        with pytest.raises(ConfigError, match=said):
            make()
    assert SessionPanel(runs_dir=tmp_path, replay_speed="max").replay_speed == math.inf


async def test_settings_the_server_refused_are_shown_as_the_session_s_failure(tmp_path, prompt_dir):
    from vlab.testing import fast_emulator

    async with fast_emulator(refuse=["voice:alloy"], api_key="k123") as emu:
        panel = _panel(tmp_path, prompt_dir, session_options={"dotenv_path": False})
        panel.target.value = "Azure endpoint"
        panel.endpoint.value = emu.endpoint
        panel.api_key.value = "k123"
        panel.voice.value = "alloy"
        panel.start.click()
        await panel.task
    assert "failed: the server refused the session settings (invalid_value: " in panel.status.value
    assert "so this session&#x27;s events do not measure the settings asked for" in panel.status.value


def test_an_uploaded_file_is_kept_under_uploads_whatever_its_name_says(tmp_path, prompt_dir):
    panel = _panel(tmp_path, prompt_dir, source="Uploaded file")
    wav = (prompt_dir / "question.wav").read_bytes()
    upload = {"name": "../../escaped.wav", "type": "audio/wav", "size": len(wav), "content": memoryview(wav),
              "last_modified": datetime.datetime.now(datetime.timezone.utc)}  # fmt: skip
    panel.upload.value = (upload,)
    panel._input_audio(panel.settings())
    assert (tmp_path / "runs" / "uploads" / "escaped.wav").is_file()  # it was written two folders up
    assert not (tmp_path / "escaped.wav").exists()


def test_the_prompt_folder_is_named_as_given(tmp_path):
    # the panel took a folder that does not exist, and its messages named data/prompts whatever it was given
    with pytest.raises(
        ConfigError, match=r"prompt_dir '.*nope' is not a folder; give the folder of your WAV"
    ):
        SessionPanel(runs_dir=tmp_path / "runs", prompt_dir=tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    panel = SessionPanel(runs_dir=tmp_path / "runs", prompt_dir=empty, source="WAV prompt")
    assert panel.prompt.options[0][0] == f"(no prompts found in {empty})"
    with pytest.raises(ConfigError, match=f"No prompt selected: put WAV files in {re.escape(str(empty))} or"):
        panel._input_audio(panel.settings())


async def test_speech_that_never_ends_is_the_session_s_failure_not_a_quiet_finish(tmp_path, prompt_dir):
    # threshold 0.0 (the slider's minimum) takes the silence for speech: no turn ends, no reply; the panel
    # said "finished" with no word of why
    panel = _panel(tmp_path, prompt_dir)
    panel.threshold.value = 0.0
    panel.start.click()
    await panel.task
    assert "failed: the server VAD heard speech start and never end, so no turn ended" in panel.status.value
    assert "(threshold 0)" in panel.status.value


async def test_an_mcp_server_whose_tools_could_not_be_listed_is_the_session_s_failure(tmp_path, prompt_dir):
    with socket.socket() as unused:  # bound, never listening: nothing answers there
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/mcp"
        panel = _panel(tmp_path, prompt_dir)
        panel.mcp_url.value = url
        panel.start.click()
        await panel.task
    assert f"failed: the service could not list the tools of the MCP server {url!r}" in html.unescape(
        panel.status.value
    )
