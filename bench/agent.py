"""Agent LLM benchmark: time to first token (cold and warm) and tokens/s for each backend, RAG-sized prompt.

    .venv/bin/python bench/agent.py [--runs 5] [--max-tokens 64] [--backends ollama,llamacpp]

Each request is what a caller's turn sends: the persona, four retrieved knowledge chunks as the system
message (``Conversation`` builds the same "Use these facts to answer" block), a short history and the
question; about 300 prompt tokens. Warm runs rotate the chunks and the question, so only the persona prefix
can come from a backend's prompt cache, as in a real call.

- Ollama: the bench starts its own server with ``scripts/ollama.sh`` on a free loopback port, creates the
  model, measures, and stops it (by pid). Cold = the first request after start (it loads the model).
- llama.cpp: loaded in this process. Cold = the first request on the freshly loaded model (load time apart).

Tokens/s counts streamed chunks after the first one (one chunk is one token for both backends). Prints the
figures with the machine noted (nproc, load average) and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import AgentConfig, LLMConfig, OllamaConfig
from agent.llm.base import Message

SCRIPT = ROOT / "scripts" / "ollama.sh"
RUN_DIR = Path(os.environ.get("VOICE_AGENT_RUN_DIR", ROOT / ".run"))

KNOWLEDGE = [
    (
        "The Basic plan costs 12 dollars per month and includes one phone line, voicemail, and up to 500 "
        "minutes of calls within the country. Extra minutes cost 2 cents each."
    ),
    (
        "The Pro plan costs 30 dollars per month per seat. It adds call recording, a shared team inbox, "
        "unlimited national minutes, and priority support by phone and chat."
    ),
    (
        "Support is open Monday to Friday from 9 am to 5 pm, and on Saturday from 10 am to 2 pm. Outside "
        "these hours, callers can leave a message and are called back the next working day."
    ),
    (
        "Refunds are possible within 30 days of a charge. A customer who was charged twice gets the second "
        "charge back automatically within five working days after reporting it."
    ),
    (
        "A technician visit can be booked for any weekday between 8 am and 6 pm. The visit is free for Pro "
        "customers and costs 40 dollars for Basic customers."
    ),
    (
        "Teams of ten or more seats get 20 percent off the Pro plan when they pay yearly. A yearly plan can be "
        "cancelled at the end of each year without any fee."
    ),
]
QUESTIONS = [
    "How much does the Pro plan cost for a team of twelve people?",
    "I was charged twice this month. When do I get my money back?",
    "Can someone come and fix my line on Saturday?",
    "What do I get with the Basic plan, and what happens if I use more minutes?",
    "Are you open on weekends, and what if I call in the evening?",
    "Is there a discount if I pay for the whole year?",
    "Does a technician visit cost anything on the Pro plan?",
]
HISTORY = [
    Message("user", "Hi, I'm calling about my account."),
    Message("assistant", "Hello! Sure, I can help with your account. What would you like to know?"),
    Message("user", "I have a few questions about the plans, the prices and a bill from last month."),
    Message("assistant", "Of course. Ask me one at a time and I'll go through them with you."),
]


def messages_for(run: int) -> list[Message]:
    """Persona + four knowledge chunks (rotated per run) + short history + a question."""
    chunks = [KNOWLEDGE[(run + i) % len(KNOWLEDGE)] for i in range(4)]
    facts = "\n".join(f"- {c}" for c in chunks)
    system = f"{AgentConfig().persona}\n\nUse these facts to answer:\n{facts}"
    return [Message("system", system), *HISTORY, Message("user", QUESTIONS[run % len(QUESTIONS)])]


@dataclass
class Run:
    ttft_s: float
    tokens: int
    total_s: float

    @property
    def tokens_per_s(self) -> float | None:
        gen = self.total_s - self.ttft_s
        return (self.tokens - 1) / gen if self.tokens > 1 and gen > 0 else None


async def one_run(llm: Any, messages: list[Message], max_tokens: int) -> Run:
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async for chunk in llm.stream_chat(messages, max_tokens=max_tokens):
        if chunk.text:
            tokens += 1
            if first is None:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{type(llm).__name__} produced no text for {messages[-1].content!r}")
    return Run(first, tokens, total)


async def measure(llm: Any, runs: int, max_tokens: int) -> dict[str, Any]:
    cold = await one_run(llm, messages_for(0), max_tokens)
    warm = [await one_run(llm, messages_for(i), max_tokens) for i in range(1, runs + 1)]
    ttfts = sorted(r.ttft_s for r in warm)
    rates = [r.tokens_per_s for r in warm if r.tokens_per_s is not None]
    return {
        "ttft_s_cold": round(cold.ttft_s, 3),
        "ttft_s_warm_p50": round(statistics.median(ttfts), 3),
        "ttft_s_warm_max": round(ttfts[-1], 3),
        "ttft_s_warm_all": [round(t, 3) for t in ttfts],
        "tokens_per_s": round(statistics.median(rates), 1) if rates else None,
        "tokens_per_s_cold": round(cold.tokens_per_s, 1) if cold.tokens_per_s else None,
        "tokens_generated_median": statistics.median(r.tokens for r in warm),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ollama_sh(*args: str, timeout: float) -> str:
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/ollama.sh {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


async def bench_ollama(runs: int, max_tokens: int) -> dict[str, Any]:
    from agent.llm.ollama import OllamaLLM

    port = free_port()
    await asyncio.to_thread(ollama_sh, "build", timeout=1800)  # cached after the first build
    started = time.perf_counter()
    try:
        host = await asyncio.to_thread(ollama_sh, "start", str(port), timeout=120)
        await asyncio.to_thread(ollama_sh, "create-model", str(port), timeout=300)
        up_s = time.perf_counter() - started
        llm = OllamaLLM(LLMConfig(backend="ollama", ollama=OllamaConfig(host=host), timeout_s=120))
        try:
            result = await measure(llm, runs, max_tokens)
        finally:
            await llm.aclose()
        return {"server_up_s": round(up_s, 2), **result}
    finally:
        await asyncio.to_thread(
            subprocess.run, ["bash", str(SCRIPT), "stop", str(port)], cwd=ROOT, check=False, timeout=60
        )
        (RUN_DIR / f"ollama-{port}.log").unlink(missing_ok=True)


async def bench_llamacpp(runs: int, max_tokens: int, abort_callback: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    from agent.config import LlamaCppConfig
    from agent.llm.llamacpp import LlamaCppLLM

    config = LLMConfig(
        backend="llamacpp", timeout_s=120, llamacpp=LlamaCppConfig(abort_callback=abort_callback)
    )
    llm = LlamaCppLLM(config)
    load_s = time.perf_counter() - started
    try:
        prompt_tokens = prompt_token_count(llm, messages_for(0))
        result = await measure(llm, runs, max_tokens)
    finally:
        await llm.aclose()
    return {"load_s": round(load_s, 2), "prompt_tokens": prompt_tokens, **result}


def prompt_token_count(llm: Any, messages: list[Message]) -> int:
    """Tokens of the ChatML prompt as SmolLM2's tokenizer sees it (both backends use this model)."""
    text = (
        "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
        + "<|im_start|>assistant\n"
    )
    return len(llm._llama.tokenize(text.encode(), add_bos=False, special=True))


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpu": platform.processor() or platform.machine(),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="warm runs per backend (after one cold run)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--backends", default="ollama,llamacpp")
    parser.add_argument(
        "--no-abort-callback",
        action="store_true",
        help="llama.cpp without the abort callback (to see its cost)",
    )
    args = parser.parse_args()
    before = machine()
    print(f"machine: nproc={before['nproc']} load average={before['loadavg']} ({before['cpu']})", flush=True)
    print(f"prompt: persona + 4 knowledge chunks + 4 history turns + question; max_tokens={args.max_tokens}")
    results: dict[str, dict[str, Any]] = {}
    for backend in args.backends.split(","):
        t0 = time.perf_counter()
        if backend == "ollama":
            results[backend] = await bench_ollama(args.runs, args.max_tokens)
        else:
            results[backend] = await bench_llamacpp(args.runs, args.max_tokens, not args.no_abort_callback)
        r = results[backend]
        print(
            f"{backend:>8}: TTFT cold {r['ttft_s_cold'] * 1000:.0f} ms, warm p50 {r['ttft_s_warm_p50'] * 1000:.0f} ms"
            f" (max {r['ttft_s_warm_max'] * 1000:.0f} ms, {args.runs} runs), {r['tokens_per_s']} tokens/s"
            f" [{', '.join(f'{k}={v}' for k, v in r.items() if k in ('server_up_s', 'load_s', 'prompt_tokens'))}]"
            f" ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    after = machine()
    print(f"load average after: {after['loadavg']}")
    summary: dict[str, Any] = {"nproc": before["nproc"], "loadavg_before": before["loadavg"]}
    summary["loadavg_after"] = after["loadavg"]
    summary["warm_runs"] = args.runs
    summary["max_tokens"] = args.max_tokens
    summary["prompt_tokens"] = results.get("llamacpp", {}).get("prompt_tokens")
    for backend, r in results.items():
        for key in ("ttft_s_cold", "ttft_s_warm_p50", "ttft_s_warm_max", "tokens_per_s"):
            summary[f"{backend}_{key}"] = r[key]
        for key in ("server_up_s", "load_s"):
            if key in r:
                summary[f"{backend}_{key}"] = r[key]
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
