"""LLM benchmark: load time, first-token latency, tokens/s, cancel latency, forced tool call time.

    .venv/bin/python bench/llm_bench.py [--backend llamacpp|ollama] [--host URL] [--runs 5]

For Ollama, start a server first (scripts/ollama.sh build && scripts/ollama.sh start && create-model).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import LLMConfig, OllamaConfig
from agent.llm.base import Message
from agent.llm.registry import create_llm
from agent.tools import SCHEDULE_CALLBACK

PROMPTS = [
    "What are your opening hours?",
    "Tell me a short story about a cat.",
    "How do I reset my password?",
    "Can you explain what a refund is?",
    "What is the weather like on Mars?",
]
SYSTEM = Message(
    "system", "You are a friendly, concise voice assistant. Answer in one or two short sentences."
)


async def one_stream(llm: object, prompt: str, max_tokens: int) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    n = 0
    async for chunk in llm.stream_chat([SYSTEM, Message("user", prompt)], max_tokens=max_tokens):  # type: ignore[attr-defined]
        if chunk.text:
            first = first or time.perf_counter() - started
            n += 1
    total = time.perf_counter() - started
    return first or total, (n - 1) / max(total - (first or total), 1e-6)


async def cancel_once(llm: object) -> float:
    seen = asyncio.Event()

    async def consume() -> None:
        async for chunk in llm.stream_chat(  # type: ignore[attr-defined]
            [Message("user", "Count from 1 to 300, one number per line.")], max_tokens=600
        ):
            if chunk.text:
                seen.set()

    task = asyncio.create_task(consume())
    await seen.wait()
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return time.perf_counter() - started


async def forced_tool(llm: object) -> float:
    started = time.perf_counter()
    async for _ in llm.stream_chat(  # type: ignore[attr-defined]
        [Message("user", "Call me back in 30 minutes about my invoice.")],
        tools=[SCHEDULE_CALLBACK],
        max_tokens=80,
        tool_choice="required",
    ):
        pass
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["llamacpp", "ollama"], default="llamacpp")
    parser.add_argument("--host", default="http://127.0.0.1:11434")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args()
    started = time.perf_counter()
    llm = create_llm(LLMConfig(backend=args.backend, ollama=OllamaConfig(host=args.host)))
    await one_stream(llm, "Hi", 2)  # warm-up (Ollama loads the model here)
    load_s = time.perf_counter() - started
    firsts, rates = [], []
    for i in range(args.runs):
        first, rate = await one_stream(llm, PROMPTS[i % len(PROMPTS)], args.max_tokens)
        firsts.append(first)
        rates.append(rate)
    cancels = [await cancel_once(llm) for _ in range(3)]
    tool_s = await forced_tool(llm)
    print(
        json.dumps(
            {
                "backend": args.backend,
                "load_and_warmup_s": round(load_s, 3),
                "first_token_ms_median": round(statistics.median(firsts) * 1000),
                "first_token_ms_max": round(max(firsts) * 1000),
                "tokens_per_s_median": round(statistics.median(rates), 1),
                "cancel_ms": [round(c * 1000, 1) for c in cancels],
                "forced_tool_call_s": round(tool_s, 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
