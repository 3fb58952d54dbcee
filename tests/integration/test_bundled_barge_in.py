"""Every bundled prompt that asks for a long reply gets one, and its barge-in finds it still streaming."""

from __future__ import annotations

import math

import pytest

from vlab import protocol
from vlab.emulator.reply_length import read_request
from vlab.feed import trailing_silence_ms
from vlab.log import load_log
from vlab.prompts import load_prompt_set
from vlab.replay import replay
from vlab.settings import SessionSettings

pytestmark = pytest.mark.integration

LONG_ASKS = [p for p in load_prompt_set() if read_request(p.text.split("|")[0], user=True) is not None]


def test_the_bundled_set_has_a_prompt_that_asks_for_a_long_reply_and_talks_over_it():
    assert [p.id for p in LONG_ASKS] == ["interruption"]
    assert all(p.barge_in_ms is not None for p in LONG_ASKS)


@pytest.mark.parametrize("prompt", LONG_ASKS, ids=lambda p: p.id)
async def test_the_barge_in_cuts_the_long_reply_while_it_streams_and_truncates_at_the_heard_ms(
    prompt, tmp_path
):
    result = await replay(
        prompt.file,
        run_dir=tmp_path,
        speed=math.inf,
        dotenv_path=False,
        emulator_options={"latency": "typical"},
    )
    events = load_log(tmp_path)
    appends = events[events["type"] == protocol.CLIENT_APPEND]
    sent_ms = prompt.duration_ms + trailing_silence_ms(SessionSettings().turn_detection)
    assert appends["audio_ms"].sum() == pytest.approx(sent_ms, abs=0.1)  # the prompt, then the silence
    server = events[events["direction"] == "server"]
    done = server[server["type"] == protocol.RESPONSE_DONE]
    first = done.iloc[0]
    assert '"cancelled"' in first["payload"] and '"turn_detected"' in first["payload"]
    audio = server[(server["type"] == protocol.AUDIO_DELTA) & (server["response_id"] == first["response_id"])]
    started = server[server["type"] == protocol.SPEECH_STARTED]
    barge_in_ms = started["sim_ms"].iloc[1]
    pad_ms = 300  # server VAD's prefix padding: the turn's audio starts that much before its speech
    assert started["audio_start_ms"].iloc[1] + pad_ms == pytest.approx(prompt.barge_in_ms, abs=100)
    heard_ms = barge_in_ms - audio["sim_ms"].iloc[0]
    truncated = server[server["type"] == protocol.ITEM_TRUNCATED].iloc[0]
    assert truncated["audio_end_ms"] == pytest.approx(heard_ms, abs=1)
    assert 0 < heard_ms < audio["audio_ms"].sum()  # cut while it was still streaming
    transcript = server[server["type"] == protocol.AUDIO_TRANSCRIPT_DELTA]
    said = "".join(transcript[transcript["response_id"] == first["response_id"]]["text"].fillna(""))
    assert "Here is a story." in said  # the long reply (a fable follows), cut before its end
    assert [t["status"] for t in result.turns][:1] == ["cancelled"]
