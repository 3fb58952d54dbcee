"""An async Voice Live session over the real SDK that logs every client and server event.

``async with Session(settings) as s:`` resolves the target (explicit arguments, environment, ``.env``;
no endpoint at all starts the embedded emulator), connects with ``azure.ai.voicelive.aio.connect``,
sends the settings, and from then on turns every event sent or received into an
:class:`~vlab.log.EventRecord` stamped on the injected clock, handed to the sinks (the run folder's
``events.jsonl`` writer, live tables, turn trackers). Sinks only read: adding one changes nothing.

Barge-in follows a switchable :class:`BargeIn` policy: on ``input_audio_buffer.speech_started`` the
session stops local playback at once, cancels the active response and truncates the assistant item
at the milliseconds actually heard.

When the connection dies (a dropped socket, a close by the server, a fatal server error, or a stall:
no event for ``stall_timeout_s`` while a reply is due) the session logs a local
``vlab.connection_lost`` record and then either ends — :meth:`Session.wait_for` and the next send
raise :class:`~vlab.errors.ConnectionFailed` saying what happened and what to do — or, with
``Session(reconnect=True)`` (or a :class:`Reconnect` policy), connects again, logs a local
``vlab.reconnect`` record, resends the session settings and goes on. The run folder is finished
either way.

A server event with a malformed field is logged as a local ``vlab.protocol_warning`` record (with the
raw frame) and not reacted to; the session goes on and counts it (:attr:`Session.protocol_warnings`).

The parts, one job each (a module imports only those listed below it):

- ``tools.py``: :class:`ToolRunner`, which answers an open session's tool calls (function handlers, MCP
  approvals, a response after each);
- ``session.py``: :class:`Session`, the facade that wires the parts and keeps the log;
- ``connector.py``: the target (resolved when first needed), the embedded emulator, the credential;
- ``output.py``: where the assistant's audio goes (the speaker or simulated playback, the recording);
- ``sinks.py``: the log and its sinks: the run folder (``session.json``, ``events.*``) and the WAVs;
- ``sdk_adapter.py``: everything taken from the SDK, its private parts included (checked by a test);
- ``connect_errors.py``: first contact: why a connect failed, said in one line with its fix;
- ``link.py``: the connection: reading, stall detection, reconnection with back-off on the clock;
- ``reconnect.py``: the reconnect policy, and how a loss and a recovery are described;
- ``readers.py``: handing events to ``wait_for`` and ``events()``;
- ``barge_in.py``: the barge-in policy;
- ``checks.py``: what is malformed in a server event (the field types of ``vlab.protocol``).
"""

from __future__ import annotations

from vlab.session.barge_in import BargeIn
from vlab.session.readers import EventMatch, LocalEvent
from vlab.session.reconnect import ConnectionLoss, Reconnect
from vlab.session.session import Session
from vlab.session.tools import Handler, McpApprovalRequest, ToolRunner

__all__ = [
    "BargeIn",
    "ConnectionLoss",
    "EventMatch",
    "Handler",
    "LocalEvent",
    "McpApprovalRequest",
    "Reconnect",
    "Session",
    "ToolRunner",
]
