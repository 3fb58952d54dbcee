"""What the emulated assistant says: deterministic, documented replies.

Rules, first match wins:

1. The last item is a ``function_call_output`` → "Here is what I found: <output>."
2. Tools are configured, ``tool_choice`` is not ``none``, and the user's text names a tool (its name
   with ``_`` read as a space, or ``tool_choice`` forces one) → a function call to that tool with JSON
   arguments: each required string parameter gets the user's text.
3. The user's last item is text → "You said: <text>."
4. The user's last item is audio → "I heard <n.n> seconds of speech." (a later version transcribes it).
5. No user item (a proactive ``response.create``) → "Hello! How can I help you today?"

``response.create`` with ``instructions`` starting with ``Say:`` speaks the rest verbatim, which makes
greetings and scripted replies easy to test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

GREETING = "Hello! How can I help you today?"


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A function call the assistant makes."""

    name: str
    """Tool name."""
    arguments: str
    """JSON text of the arguments."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The assistant's reply to one response.create."""

    text: str
    """Words to speak or write (may be empty when only calling a function)."""
    function_call: FunctionCall | None = None
    """A function call to emit after the message, if any."""


def _user_text(item: dict[str, Any]) -> str | None:
    for part in item.get("content") or []:
        if part.get("type") in ("input_text", "text") and part.get("text"):
            return str(part["text"])
        if part.get("type") == "input_audio" and part.get("transcript"):
            return str(part["transcript"])
    return None


def _arguments_for(tool: dict[str, Any], text: str) -> str:
    params = tool.get("parameters") or {}
    props = params.get("properties") or {}
    args = {
        name: text
        for name in params.get("required", [])
        if (props.get(name) or {}).get("type", "string") == "string"
    }
    return json.dumps(args)


def _pick_tool(session: dict[str, Any], text: str) -> dict[str, Any] | None:
    tools = [t for t in session.get("tools") or [] if t.get("type") == "function" and t.get("name")]
    choice = session.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict) and choice.get("name"):
        return next((t for t in tools if t["name"] == choice["name"]), None)
    if choice == "required":
        return tools[0]
    lowered = text.lower()
    for tool in tools:
        if tool["name"].lower() in lowered or tool["name"].replace("_", " ").lower() in lowered:
            return tool
    return None


def reply_for(
    conversation: list[dict[str, Any]], session: dict[str, Any], instructions: str | None = None
) -> Reply:
    """Decide the reply from the conversation so far (oldest item first) and the session."""
    if instructions and instructions.strip().lower().startswith("say:"):
        return Reply(instructions.strip()[4:].strip())
    last = conversation[-1] if conversation else None
    if last is not None and last.get("type") == "function_call_output":
        return Reply(f"Here is what I found: {last.get('output', '')}.")
    user = next((i for i in reversed(conversation) if i.get("role") == "user"), None)
    if user is None:
        return Reply(GREETING)
    text = _user_text(user)
    if text is not None:
        tool = _pick_tool(session, text)
        if tool is not None:
            return Reply("", FunctionCall(tool["name"], _arguments_for(tool, text)))
        words = text.strip().rstrip(".?!").split()
        return Reply("You said: " + " ".join(words[:40]) + ".")
    seconds = float(user.get("_audio_ms", 0.0)) / 1000.0
    return Reply(f"I heard {seconds:.1f} seconds of speech.")
