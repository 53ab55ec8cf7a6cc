"""Prompted tool calls for backends without native tool calling: ``<tool_call>{json}</tool_call>``."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from agent.errors import ToolError
from agent.llm.base import ToolCall, ToolSpec

log = logging.getLogger(__name__)

TOOL_CALL_TAG = "<tool_call>"
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def tools_system_prompt(tools: Sequence[ToolSpec], forced: bool) -> str:
    """System prompt text that describes ``tools`` and the call format."""
    lines = [
        json.dumps({"name": t.name, "description": t.description, "parameters": dict(t.parameters)})
        for t in tools
    ]
    listing = "\n".join(lines)
    if forced:
        return f"Call one of these functions now. Reply with JSON only.\n<tools>\n{listing}\n</tools>"
    return (
        "You can call functions. Available functions:\n"
        f"<tools>\n{listing}\n</tools>\n"
        "To call a function, reply only with:\n"
        f'{TOOL_CALL_TAG}\n{{"name": "<function name>", "arguments": {{...}}}}\n</tool_call>\n'
        "Otherwise answer normally."
    )


def parse_tool_call(text: str, tools: Sequence[ToolSpec]) -> ToolCall:
    """Decode one ``{"name": ..., "arguments": {...}}`` object (optionally wrapped in tags) into a ToolCall."""
    match = _JSON_OBJECT.search(text)
    if match is None:
        raise ToolError(f"no JSON object in tool call output {text[:200]!r}")
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ToolError(f"tool call output is not valid JSON: {text[:200]!r}: {exc}") from exc
    name = obj.get("name") if isinstance(obj, dict) else None
    known = {t.name for t in tools}
    if name not in known:
        raise ToolError(f"tool call names unknown tool {name!r}; known: {sorted(known)}")
    args = obj.get("arguments") or obj.get("parameters") or {}
    if not isinstance(args, dict):
        raise ToolError(f"tool call arguments are not an object: {args!r}")
    return ToolCall(name=str(name), arguments=args)


class ToolCallSniffer:
    """Splits a streamed reply into plain text (passed through at once) or a tagged tool call (held back).

    Only the start of the reply can open a call: text is held while it is still a prefix of the tag.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._mode: str | None = None  # None: undecided, "text", "call"

    def push(self, delta: str) -> str:
        """Feed a delta; returns the text that can be spoken now."""
        if self._mode == "text":
            return delta
        self._buffer += delta
        if self._mode == "call":
            return ""
        head = self._buffer.lstrip()
        if head.startswith((TOOL_CALL_TAG, '{"name"')):
            self._mode = "call"
            return ""
        if head and not TOOL_CALL_TAG.startswith(head) and not '{"name"'.startswith(head):
            self._mode = "text"
            out, self._buffer = self._buffer, ""
            return out
        return ""

    def finish(self, tools: Sequence[ToolSpec]) -> tuple[str, ToolCall | None]:
        """End of stream: remaining text, and the parsed call if the reply was one."""
        if self._mode == "call":
            try:
                return "", parse_tool_call(self._buffer, tools)
            except ToolError as exc:
                # A malformed call is not speakable either; the caller sees an empty reply.
                log.warning("dropping malformed prompted tool call: %s", exc)
                return "", None
        out, self._buffer = self._buffer, ""
        return out, None
