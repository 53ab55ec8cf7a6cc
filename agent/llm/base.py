"""The ``LLM`` protocol every backend implements, and the message types that flow through it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant", "tool"]
ToolChoice = Literal["auto", "required"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, one-line description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI/Ollama ``tools=[...]`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for; ``arguments`` already decoded from JSON."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Message:
    """One chat message. ``tool_calls`` on assistant messages; ``name`` is the tool name on tool messages."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class LLMChunk:
    """A piece of a streamed reply: a text delta, finished tool calls, or the final ``done`` marker."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    done: bool = False


@runtime_checkable
class LLM(Protocol):
    """A chat model that streams its reply.

    ``stream_chat`` yields ``LLMChunk``s as they are produced and ends with one chunk whose ``done`` is True.
    Cancelling the consuming task (or closing the iterator) stops generation in the backend.

    Extensions beyond the minimal contract (keyword-only, optional):
    - ``tool_choice="required"``: the reply must be exactly one tool call (backends constrain the output to a
      JSON tool call with a grammar / ``format=`` schema), for models too small to decide on their own.
    - ``json_schema``: the reply text must be JSON matching this schema (used by intent analysis).
    - ``temperature``: sampling temperature for this request; None keeps the configured one (intent analysis
      asks for 0, greedy, so the same conversation gets the same label).
    Raises ``agent.errors.LLMError`` subclasses (unavailable, model not found, timeout).
    """

    def stream_chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None = None,
        max_tokens: int | None = None,
        *,
        tool_choice: ToolChoice = "auto",
        json_schema: Mapping[str, Any] | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[LLMChunk]: ...


def tool_call_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """JSON schema of exactly one call of one of ``tools``: ``{"name": ..., "arguments": {...}}``."""
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [t.name]},
                "arguments": dict(t.parameters) or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}
