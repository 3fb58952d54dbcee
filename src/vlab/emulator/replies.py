"""What the emulated assistant says: deterministic, documented replies.

Rules, first match wins:

0. ``response.create`` with ``instructions`` starting with ``Say:`` speaks the rest verbatim.
   Then the rules of a script file (``Emulator(script=path)``, see :class:`Script`), if one is loaded.
1. The last item is a ``function_call_output``, or an ``mcp_call`` the emulator made with its output →
   "Here is what I found: <output>." (an MCP output: its first :data:`ECHO_WORDS` words); an ``mcp_call`` that failed →
   "The <name> tool failed: <error>."; an ``mcp_approval_response`` that declines → "I did not run <name>,
   as you declined it."
2. Tools are configured, ``tool_choice`` is not ``none``, and the user's words ask for one or more tools
   by meaning, or ``tool_choice`` forces one → function calls, one output item each, with JSON arguments
   filled from each tool's schema (:mod:`vlab.emulator.tool_choice`: scoring, threshold, arguments;
   several calls only when ``parallel_tool_calls`` is not ``false``). The tools of the session's MCP
   servers (:mod:`vlab.emulator.mcp`) are chosen among the function tools, by their listed names,
   descriptions and input schemas.
3. The user's last item is text, or audio in which the recognizer heard words (its transcript with
   ``input_audio_transcription``; without it the emulator still reads the audio, as the service's model
   hears it, unless ``Emulator(hear_audio=False)``; see :mod:`vlab.emulator.asr`) → "You said: <text>."
   (at most :data:`ECHO_WORDS` words).
4. The user's last item is audio with no words heard (nothing recognized, or ``hear_audio=False``
   without transcription) → "I heard <n.n> seconds of speech."
5. No user item (a proactive ``response.create``) → "Hello! How can I help you today?"

Rules 3–5 are short replies; when the response's instructions, the user's words or the session's
instructions ask for a long one, a story from the bundled fables follows
(:mod:`vlab.emulator.reply_length`). Every reply but rule 0's is capped by
``max_response_output_tokens`` (≈1.3 tokens a word); a reply cut by the cap is ``incomplete``.

Script files are JSON: ``{"rules": [rule, ...]}``; each rule has optional conditions and a reply::

    {"keywords": ["weather"], "call": {"name": "get_weather", "arguments": {"city": "Boston"}}}
    {"on": "function_output", "say": "It is {output} there."}
    {"turn": 2, "say": "Second time you ask."}
    {"say": "I only know about the weather."}

* ``on``: ``"user"`` (default; the conversation ends with a user message) or ``"function_output"``
  (it ends with a ``function_call_output``, or an ``mcp_call`` with its output).
* ``after``: with ``on = "function_output"``, the rule matches only when that output is a call to this
  tool. A ``call`` rule then makes a chain of calls that ends (``examples/chained_tools.json``)::

    {"keywords": ["table"], "call": {"name": "check_availability"}}
    {"on": "function_output", "after": "check_availability", "call": {"name": "book_table"}}
    {"on": "function_output", "after": "book_table", "say": "Your table is booked: {output}."}

* ``keywords``: the rule matches when any of them occurs in the user's text (case-insensitive).
* ``turn``: the rule matches only on the N-th user message of the conversation (1-based).
* ``say``: the reply text; ``{text}`` (the user's words), ``{output}`` (the function output) and
  ``{seconds}`` (user audio length) are filled in.
* ``call``: a function call (``name``, ``arguments`` object); skipped when ``tool_choice`` is ``"none"``
  or the session has no tool of that name, so a later rule (or the built-in ones) answers instead.

Everything is deterministic: the same conversation and session always give the same reply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vlab import protocol
from vlab.emulator import reply_length, tool_choice
from vlab.emulator.items import Item
from vlab.errors import ConfigError, check_keys

GREETING = "Hello! How can I help you today?"
ECHO_WORDS = 40
"""The most words of the user's text, or of an MCP tool's output, a reply repeats."""
MCP_SERVER_KEY = "mcp_server_label"
"""In the function-tool view of an MCP server's tool (never sent): the server's label."""
MCP_APPROVAL_KEY = "mcp_needs_approval"
"""In the function-tool view of an MCP server's tool: whether a call waits for the client's approval."""


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A function call the assistant makes."""

    name: str
    """Tool name."""
    arguments: str
    """JSON text of the arguments."""
    server_label: str | None = None
    """The MCP server whose tool this is; None for a function tool (the client runs it)."""
    needs_approval: bool = False
    """An MCP call that waits for the client's ``mcp_approval_response`` (an ``mcp_approval_request`` first)."""
    approval_request_id: str | None = None
    """An MCP call the client approved: the ``mcp_approval_request`` item's id."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The assistant's reply to one response.create."""

    text: str
    """Words to speak or write (may be empty when only calling functions)."""
    function_calls: tuple[FunctionCall, ...] = ()
    """Function calls to emit after the message, in order, each as its own output item."""
    incomplete: bool = False
    """The text was cut by ``max_response_output_tokens`` (the response ends ``incomplete``)."""


def _tool_output(item: Item | None) -> str | None:
    """The output the conversation ends with: a function call's output or an MCP call's; None if none."""
    if item is None:
        return None
    if item.type == protocol.FUNCTION_CALL_OUTPUT_ITEM:
        return str(item.wire.get("output", ""))
    if item.type == protocol.MCP_CALL_ITEM and item.wire.get("output") is not None:
        return str(item.wire["output"])
    return None


def _output_of(conversation: Sequence[Item], output: Item) -> str | None:
    """The name of the tool whose output ``output`` is.

    An MCP call carries it; a function output names its call by ``call_id``.
    """
    if output.type == protocol.MCP_CALL_ITEM:
        return str(output.wire.get("name"))
    call_id = output.wire.get("call_id")
    for item in reversed(conversation):
        if item.type == protocol.FUNCTION_CALL_ITEM and item.wire.get("call_id") == call_id:
            return str(item.wire.get("name"))
    return None


def _user_text(item: Item) -> str | None:
    for part in item.wire.get("content") or []:
        if part.get("type") in ("input_text", "text") and part.get("text"):
            return str(part["text"])
        if part.get("type") == "input_audio" and part.get("transcript"):
            return str(part["transcript"])
    return item.heard or None


@dataclass(frozen=True, slots=True)
class Rule:
    """One scripted rule (see the module docstring for the JSON form)."""

    on: str = "user"
    """``user`` or ``function_output``: what the conversation must end with."""
    keywords: tuple[str, ...] = ()
    """Any of these in the user's text (lower case); empty = no keyword condition."""
    turn: int | None = None
    """Only on the N-th user message (1-based)."""
    after: str | None = None
    """``on = "function_output"`` only: the output must be a call to this tool."""
    say: str = ""
    """Reply text template."""
    call: FunctionCall | None = None
    """Function call to make."""


_RULE_KEYS = ("on", "keywords", "turn", "after", "say", "call")
"""The keys a script's rule may have."""


@dataclass(frozen=True, slots=True)
class Script:
    """A scripted dialogue: rules tried in order before the built-in ones."""

    rules: tuple[Rule, ...] = field(default=())
    """The rules, first match wins."""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Script:
        """Read a JSON script file.

        Raises:
            ConfigError: The file is missing, not JSON or not a valid script; the message says which rule is
                wrong.
        """
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the dialogue script {str(path)!r}: {exc.strerror or exc}"
            ) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"the dialogue script {str(path)!r} is not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"the dialogue script {str(path)!r} is not UTF-8 JSON text") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<script>") -> Script:
        """Build a script from its parsed JSON form.

        Raises:
            ConfigError: Not ``{"rules": [...]}`` or a rule is malformed.
        """
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise ConfigError(f'{source}: a script is a JSON object {{"rules": [...]}}')
        rules = []
        for i, raw in enumerate(data["rules"], start=1):  # rule 1 is the first, as a reader counts
            if not isinstance(raw, dict):
                raise ConfigError(f"{source}: rule {i} must be an object, got {raw!r}")
            check_keys(f"{source}: rule {i}", raw, _RULE_KEYS)
            on = raw.get("on", "user")
            if on not in ("user", "function_output"):
                raise ConfigError(f"{source}: rule {i} 'on' must be 'user' or 'function_output', got {on!r}")
            after = raw.get("after")
            if after is not None and (on != "function_output" or not isinstance(after, str)):
                raise ConfigError(
                    f"{source}: rule {i} 'after' names the tool whose output the rule answers: a string, "
                    f"with on = 'function_output' (got after = {after!r}, on = {on!r})"
                )
            call = None
            if raw.get("call") is not None:
                c = raw["call"]
                if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                    raise ConfigError(f"{source}: rule {i} 'call' needs a 'name' (and optional 'arguments')")
                call = FunctionCall(c["name"], json.dumps(c.get("arguments") or {}))
            if not raw.get("say") and call is None:
                raise ConfigError(f"{source}: rule {i} needs 'say' or 'call'")
            rules.append(
                Rule(
                    on=on,
                    keywords=tuple(str(k).lower() for k in raw.get("keywords") or ()),
                    turn=int(raw["turn"]) if raw.get("turn") is not None else None,
                    after=after,
                    say=str(raw.get("say") or ""),
                    call=call,
                )
            )
        return cls(tuple(rules))

    def reply(self, conversation: Sequence[Item], session: dict[str, Any]) -> Reply | None:
        """The first matching rule's reply, or None."""
        last = conversation[-1] if conversation else None
        output = _tool_output(last)
        on = "function_output" if output is not None else "user"
        users = [i for i in conversation if i.role == "user"]
        text = (_user_text(users[-1]) or "") if users else ""
        tool_names = {t.get("name") for t in session.get("tools") or [] if t.get("type") == "function"}
        fill = {
            "text": text.strip().rstrip(".?!"),
            "output": output or "",
            "seconds": f"{users[-1].audio_ms / 1000.0:.1f}" if users else "0.0",
        }
        for rule in self.rules:
            if rule.on != on or (rule.on == "user" and not users):
                continue
            if rule.keywords and not any(k in text.lower() for k in rule.keywords):
                continue
            if rule.turn is not None and rule.turn != len(users):
                continue
            if rule.after is not None and (last is None or _output_of(conversation, last) != rule.after):
                continue
            call = rule.call
            if call is not None and (session.get("tool_choice") == "none" or call.name not in tool_names):
                call = None
            if call is None and not rule.say:
                continue
            return Reply(rule.say.format_map(_Defaults(fill)), (call,) if call is not None else ())
        return None


def _call(tool: Any, args: dict[str, Any]) -> FunctionCall:
    """The call of a chosen tool: a function's, or an MCP server's (its view carries the server)."""
    return FunctionCall(
        str(tool["name"]),
        json.dumps(args),
        server_label=tool.get(MCP_SERVER_KEY),
        needs_approval=bool(tool.get(MCP_APPROVAL_KEY)),
    )


def _error_text(error: Any) -> str:
    return str(error.get("message", error) if isinstance(error, dict) else error).rstrip(".")


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def reply_for(
    conversation: Sequence[Item],
    session: dict[str, Any],
    instructions: str | None = None,
    script: Script | None = None,
) -> Reply:
    """Decide the reply from the conversation so far (oldest item first), the session and a script.

    Args:
        conversation: The items, oldest first.
        session: The session in force, with the response's overrides (``tools``, ``tool_choice``,
            ``max_response_output_tokens``) applied.
        instructions: The response's ``instructions`` or ``additional_instructions``.
        script: Scripted rules tried first.
    """
    if instructions and instructions.strip().lower().startswith("say:"):
        return Reply(instructions.strip()[4:].strip())
    reply = _reply(conversation, session, instructions, script)
    text, cut = reply_length.cap(reply.text, reply_length.word_cap(session.get("max_response_output_tokens")))
    if not cut:
        return reply
    return Reply(text, incomplete=True)  # the service stops generating before any later call


def _reply(
    conversation: Sequence[Item], session: dict[str, Any], instructions: str | None, script: Script | None
) -> Reply:
    if script is not None:
        scripted = script.reply(conversation, session)
        if scripted is not None:
            return scripted
    last = conversation[-1] if conversation else None
    output = _tool_output(last)
    if output is not None and last is not None:
        if last.type == protocol.MCP_CALL_ITEM:
            output = " ".join(output.split()[:ECHO_WORDS])
        return Reply(f"Here is what I found: {output}.")
    if last is not None and last.type == protocol.MCP_CALL_ITEM and last.wire.get("error") is not None:
        return Reply(f"The {last.wire.get('name')} tool failed: {_error_text(last.wire['error'])}.")
    if last is not None and last.type == protocol.MCP_APPROVAL_RESPONSE_ITEM and not last.wire.get("approve"):
        asked = next((i for i in conversation if i.id == last.wire.get("approval_request_id")), None)
        name = asked.wire.get("name") if asked is not None else "the tool"
        return Reply(f"I did not run {name}, as you declined it.")
    users = [i for i in conversation if i.role == "user"]
    text = _user_text(users[-1]) if users else None
    if not users:
        short = GREETING
    elif text is not None:
        calls = tool_choice.choose(
            session.get("tools") or [],
            session.get("tool_choice", "auto"),
            text,
            parallel=session.get("parallel_tool_calls") is not False,
        )
        if calls:
            return Reply("", tuple(_call(tool, args) for tool, args in calls))
        words = text.strip().rstrip(".?!").split()
        short = "You said: " + " ".join(words[:ECHO_WORDS]) + "."
    else:
        short = f"I heard {users[-1].audio_ms / 1000.0:.1f} seconds of speech."
    request = reply_length.requested_length(instructions, text, session.get("instructions"))
    seed = f"{len(users)}:{text if text is not None else short}"
    return Reply(reply_length.lengthen(short, request, seed))
