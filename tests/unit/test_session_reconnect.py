"""How a lost connection is described and what the reconnect policy does, from explicit facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlab.endpoint import Secret, Target
from vlab.errors import ConfigError, ConnectionFailed
from vlab.session.reconnect import (
    ConnectionLoss,
    Reconnect,
    Reconnected,
    ReconnectFailed,
    Reconnecting,
    connect_advice,
    notice_event,
    redact,
)

AZURE = Target("azure", "https://x.services.ai.azure.com", Secret("KEY-123"), "gpt-realtime", "api_key")


def test_back_off_doubles_up_to_its_bound():
    policy = Reconnect(attempts=5, backoff_s=0.5, max_backoff_s=3.0)
    assert [policy.delay_s(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "options", [{"attempts": 0}, {"max_reconnects": 0}, {"backoff_s": -1}, {"max_backoff_s": -0.1}]
)
def test_a_policy_that_cannot_work_is_refused(options):
    with pytest.raises(ConfigError, match="Reconnect"):
        Reconnect(**options)


def test_one_attempt_is_a_policy_and_the_defaults_are_the_documented_ones():
    assert Reconnect(attempts=1, max_reconnects=1).delay_s(1) == 0.25
    policy = Reconnect()
    assert policy == Reconnect(attempts=3, backoff_s=0.25, max_backoff_s=5.0, max_reconnects=10)
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8").split())
    assert (
        f"By default it makes {policy.attempts} attempts per loss, waiting {policy.backoff_s:g} s before the "
        f"first and doubling up to {policy.max_backoff_s:g} s, and recovers from at most "
        f"{policy.max_reconnects} losses in a session."
    ) in readme


@pytest.mark.parametrize(
    ("close_code", "reason", "code", "what"),
    [
        (None, "", "dropped", "the connection was dropped"),
        (1000, "Connection closed", "dropped", "the connection was dropped"),  # the SDK: socket vanished
        (1006, "Cannot write to closing transport", "dropped", "the connection was dropped"),
        (1000, "", "closed", "the server closed the connection (code 1000, normal closure)"),
        (1006, "", "closed", "the server closed the connection (code 1006)"),
        (
            4001,
            "Connection closed",
            "closed",
            "the server closed the connection (code 4001: Connection closed)",
        ),
        (1011, "boom", "closed", "the server closed the connection (code 1011: boom, server error)"),
        (1008, "", "closed", "(code 1008, policy violation)"),
        (1009, "", "closed", "(code 1009, a message was too big)"),
        (1012, "", "closed", "(code 1012, service restart)"),
        (1013, "", "closed", "(code 1013, try again later)"),
    ],
)
def test_a_close_frame_is_told_from_a_vanished_socket(close_code, reason, code, what):
    loss = ConnectionLoss.closed(close_code, reason)
    assert loss.code == code and what in loss.what


def test_a_loss_is_described_from_the_facts_given():
    assert ConnectionLoss.closed(None, "").what == (
        "the connection was dropped (the socket closed without a close frame)"
    )
    closed = ConnectionLoss.closed(1001, "", response_id="resp_1")
    assert closed == ConnectionLoss(
        "closed",
        "the server closed the connection (code 1001, going away) while response resp_1 was in progress",
        "resp_1",
    )
    after_error = ConnectionLoss.closed(1006, "reset", server_error=("rate_limited", "slow down"))
    assert after_error.code == "dropped"
    assert after_error.what.startswith("the server reported an error (rate_limited: slow down) and then the ")
    assert ConnectionLoss.stalled(2.5).what == (
        "the connection stalled: no event from the server for 2.5 s while a reply was due"
    )
    assert (
        ConnectionLoss.protocol_error("not JSON").what
        == "the server broke the Voice Live protocol (not JSON)"
    )


def test_the_error_says_what_happened_where_the_log_is_and_what_to_do(tmp_path):
    loss = ConnectionLoss.stalled(0.3, "resp_9")
    error = loss.error(target=AZURE.describe(), run_dir=tmp_path, reconnect=False)
    assert isinstance(error, ConnectionFailed)
    message = str(error)
    assert message.startswith(
        "the connection stalled: no event from the server for 0.3 s while response resp_9"
    )
    assert f"The events so far are in {tmp_path}." in message
    assert "pass Session(reconnect=True)" in message and "raise stall_timeout_s" in message
    given_up = ConnectionLoss.closed(4000, "").after_failed_reconnects(["401", "403"])
    message = str(given_up.error(target="t", reconnect=True))
    assert "reconnecting failed 2 time(s), last: 403" in message and "Reconnecting did not help" in message
    assert "check the network" in message
    protocol = str(ConnectionLoss.protocol_error("x").error(target="t"))
    assert "Check that the endpoint is a Voice Live endpoint" in protocol
    assert ConnectionLoss.stalled(1).after_failed_reconnects([]) == ConnectionLoss.stalled(1)


def test_notices_become_local_events_for_the_log():
    loss = ConnectionLoss.closed(4000, "", response_id="resp_1")
    assert notice_event(loss) == {
        "type": "vlab.connection_lost",
        "error": {"code": "closed", "message": loss.what},
        "response_id": "resp_1",
    }
    assert notice_event(Reconnecting(2, loss)) == {
        "type": "vlab.reconnect", "attempt": 2, "reason": loss.what, "lost_response_id": "resp_1",
    }  # fmt: skip
    assert notice_event(ReconnectFailed(2, "401")) == {
        "type": "vlab.reconnect_failed", "attempt": 2, "error": {"message": "401"},
    }  # fmt: skip
    assert notice_event(Reconnected(3, loss))["type"] == "vlab.reconnected"


def test_connect_advice_names_what_to_check_and_never_the_key():
    advice = connect_advice(AZURE, "401 Unauthorized (api-key KEY-123)")
    assert "KEY-123" not in advice and "****" in advice
    assert "check the key (AZURE_VOICELIVE_API_KEY)" in advice
    entra = Target("azure", "https://x.services.ai.azure.com", None, "m", "entra_id")
    assert "Cognitive Services User" in connect_advice(entra, "403")
    assert redact("no key here", entra) == "no key here"


def test_a_server_that_reported_an_error_then_closed_is_not_first_blamed_on_the_network():
    refused = ConnectionLoss.closed(1008, "", server_error=("cassette_divergence", "the audio differs"))
    told = str(refused.error(target="the emulator"))
    assert told.endswith(
        "Open a new session to go on, or pass Session(reconnect=True) to reconnect automatically; if the "
        "error names something the client sent (a setting, the audio), change that first."
    )
    dropped = str(ConnectionLoss.closed(4000, "").error(target="the emulator"))
    assert dropped.endswith("check the network (and proxies or firewalls that cut WebSockets).")
