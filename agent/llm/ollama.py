"""Ollama backend through the official ``ollama.AsyncClient`` (streaming chat, native tools, JSON format).

``tool_choice="required"`` uses ``format=<schema of one tool call>`` instead of the native tools API, so the
server's grammar-constrained sampling guarantees a well-formed call even from a tiny model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from agent.config import LLMConfig
from agent.errors import LLMError, LLMUnavailableError, ModelNotFoundError
from agent.llm.base import LLMChunk, Message, ToolCall, ToolChoice, ToolSpec, tool_call_schema
from agent.llm.toolcalls import parse_tool_call, tools_system_prompt

log = logging.getLogger(__name__)


class OllamaLLM:
    """``LLM`` served by an Ollama server at ``config.ollama.host``."""

    def __init__(self, config: LLMConfig) -> None:
        import httpx
        import ollama

        self._config = config
        self._ollama = ollama
        self._httpx = httpx
        self._clients: dict[int, Any] = {}

    def _client(self) -> Any:
        # httpx pools are bound to the event loop that opened them; keep one client per loop.
        loop = asyncio.get_running_loop()
        client = self._clients.get(id(loop))
        if client is None:
            # The timeout bounds connect and each read; a dead server fails fast on connect (refused).
            client = self._ollama.AsyncClient(host=self._config.ollama.host, timeout=self._config.timeout_s)
            self._clients = {id(loop): client}
        return client

    @property
    def model(self) -> str:
        return self._config.ollama.model

    async def stream_chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None = None,
        max_tokens: int | None = None,
        *,
        tool_choice: ToolChoice = "auto",
        json_schema: Mapping[str, Any] | None = None,
        temperature: float | None = None,
    ) -> AsyncIterator[LLMChunk]:
        """Stream the reply; see ``agent.llm.base.LLM``."""
        forced = bool(tools) and tool_choice == "required"
        chat = [_to_ollama(m) for m in messages]
        fmt: Mapping[str, Any] | None = json_schema
        if forced and tools:
            fmt = tool_call_schema(tools)
            chat.insert(0, {"role": "system", "content": tools_system_prompt(tools, forced=True)})
        options = {
            "temperature": self._config.temperature,
            "num_predict": max_tokens or self._config.max_tokens,
            **self._config.ollama.options,
        }
        if temperature is not None:
            options["temperature"] = temperature
        try:
            stream = await self._client().chat(
                model=self.model,
                messages=chat,
                tools=[t.to_openai() for t in tools] if tools and not forced else None,
                stream=True,
                format=dict(fmt) if fmt is not None else None,
                options=options,
                keep_alive=self._config.ollama.keep_alive,
            )
        except Exception as exc:
            raise self._translate(exc) from exc
        collected: list[str] = []
        try:
            async for part in _guarded(stream, self._translate):
                msg = part.message
                if msg.content:
                    if forced:
                        collected.append(msg.content)
                    else:
                        yield LLMChunk(text=msg.content)
                if msg.tool_calls:
                    yield LLMChunk(tool_calls=tuple(_from_ollama_call(c) for c in msg.tool_calls))
                if part.done:
                    break
            if forced:
                yield LLMChunk(tool_calls=(parse_tool_call("".join(collected), tools or ()),))
            yield LLMChunk(done=True)
        finally:
            # Closing the response stream closes the HTTP connection; Ollama then stops generating.
            await stream.aclose()

    def _translate(self, exc: BaseException) -> LLMError:
        host, model = self._config.ollama.host, self.model
        if isinstance(exc, self._ollama.ResponseError):
            if exc.status_code == 404 or "not found" in str(exc.error).lower():
                return ModelNotFoundError(
                    f"Ollama at {host} has no model {model!r} ({exc.error}): "
                    f"run `ollama pull {model}` or scripts/ollama.sh create-model"
                )
            return LLMError(
                f"Ollama at {host} failed for model {model!r}: {exc.error} (HTTP {exc.status_code})"
            )
        if isinstance(exc, (ConnectionError, self._httpx.TransportError)):
            return LLMUnavailableError(
                f"cannot reach Ollama at {host} ({type(exc).__name__}: {exc}): start it with scripts/ollama.sh start"
            )
        return LLMError(f"Ollama at {host} failed for model {model!r}: {type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client._client.aclose()
        self._clients = {}


async def _guarded(stream: AsyncIterator[Any], translate: Any) -> AsyncIterator[Any]:
    """Iterate ``stream``, turning client/transport errors into our LLMError subclasses."""
    iterator = stream.__aiter__()
    while True:
        try:
            part = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except Exception as exc:
            raise translate(exc) from exc
        yield part


def _to_ollama(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": c.name, "arguments": dict(c.arguments)}} for c in m.tool_calls
        ]
    if m.role == "tool" and m.name:
        out["tool_name"] = m.name
    return out


def _from_ollama_call(call: Any) -> ToolCall:
    return ToolCall(name=call.function.name, arguments=dict(call.function.arguments or {}))
