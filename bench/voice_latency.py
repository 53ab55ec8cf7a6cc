"""Voice-to-voice latency of real calls on loopback, measured from the caller's side.

Starts ``voice-agent serve`` (embedded defaults: Whisper tiny.en, SmolLM2 on llama.cpp, Piper) in a child
process, then places ``--calls`` concurrent WebRTC calls from this process with aiortc. Each call waits for
the greeting, then speaks questions (synthesized with Piper) and measures, per turn, the time from the last
speech sample sent to the first voiced reply frame received (after a 2-frame receive buffer, what Chromium's
adaptive jitter buffer holds on loopback per its getStats(); ``--receive-buffer-frames 4`` is aiortc's
default). The per-stage breakdown comes from the server's
call records. The last line of output is JSON:
  {"calls", "turns", "latency_s_p50", "latency_s_p95", "stages_s_p50", ...}

    .venv/bin/python bench/voice_latency.py --calls 1 --turns 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from speech.timing import STAGES
from tests.server.caller import RTCCaller, ServerProcess, synthesize_speech

QUESTIONS = [
    "What is the capital of France?",
    "How many days are in a week?",
    "What color is the sky?",
    "Can you recommend a good book?",
    "What time does the store open?",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


async def one_call(
    base_url: str, index: int, turns: int, speech: list[np.ndarray], reply_quiet_s: float, buffer_frames: int
) -> dict[str, Any]:
    caller = RTCCaller(base_url, user_id=f"bench-{index}", receive_buffer_frames=buffer_frames)
    measured: list[dict[str, Any]] = []
    try:
        await caller.connect()
        await caller.reply_start(after=0.0, timeout=60)  # the greeting
        await caller.wait_quiet(reply_quiet_s, timeout=120)
        for turn in range(turns):
            q = (index + turn) % len(speech)
            speech_end = await caller.say(speech[q])
            try:
                start = await caller.reply_start(after=speech_end, timeout=60)
            except TimeoutError:
                measured.append({"question": QUESTIONS[q], "latency_s": None})
                continue
            measured.append({"question": QUESTIONS[q], "latency_s": start - speech_end})
            print(f"call {index} turn {turn}: {start - speech_end:.3f} s  ({QUESTIONS[q]})", flush=True)
            await caller.wait_quiet(reply_quiet_s, timeout=180)
        record = await caller.record()
    finally:
        await caller.hangup()
    return {"call_id": caller.call_id, "turns": measured, "record": record}


async def run(
    base_url: str, calls: int, turns: int, reply_quiet_s: float, buffer_frames: int
) -> dict[str, Any]:
    speech = [await synthesize_speech(q) for q in QUESTIONS]
    results = await asyncio.gather(
        *(one_call(base_url, i, turns, speech, reply_quiet_s, buffer_frames) for i in range(calls))
    )
    latencies = [t["latency_s"] for r in results for t in r["turns"] if t["latency_s"] is not None]
    missed = sum(1 for r in results for t in r["turns"] if t["latency_s"] is None)
    server_turns = [t for r in results for t in r["record"].get("turns", [])]
    stages = {s: [t["stages"][s] for t in server_turns if s in t.get("stages", {})] for s in STAGES}
    apologies = sum("trouble answering" in t.get("agent_text", "") for t in server_turns)
    # replies that began with agent.holding_phrase (the model was late): their latency is the phrase's
    held = sum(t.get("agent_text", "").startswith("One moment.") for t in server_turns)
    if not latencies:
        raise SystemExit("no turn got a reply; see the server log")
    return {
        "calls": calls,
        "turns": len(latencies),
        "latency_s_p50": round(statistics.median(latencies), 3),
        "latency_s_p95": round(percentile(latencies, 95), 3),
        "latency_s_max": round(max(latencies), 3),
        "missed_replies": missed,
        "receive_buffer_frames": buffer_frames,
        "apologies": apologies,
        "held_replies": held,
        # per turn: caller-side latency and the server's stage times, to spot turns hit by outside load
        "per_turn": [
            {"latency_s": t["latency_s"] and round(t["latency_s"], 3), "stages": s.get("stages", {})}
            for r in results
            for t, s in zip(r["turns"], r["record"].get("turns", []), strict=False)
        ],
        # cumulative: seconds after the end of caller speech, median over turns (server clock)
        "stages_s_p50": {s: round(statistics.median(v), 3) for s, v in stages.items() if v},
        "stages_s_p95": {s: round(percentile(v, 95), 3) for s, v in stages.items() if v},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1, help="concurrent calls")
    parser.add_argument(
        "--turns", type=int, default=None, help="turns per call (default: >= 20 turns in total)"
    )
    parser.add_argument("--base-url", help="use a running server instead of starting one")
    parser.add_argument("--reply-quiet", type=float, default=1.2, help="silence that ends a reply (s)")
    parser.add_argument(
        "--receive-buffer-frames",
        type=int,
        default=2,
        help="caller's receive buffer, 20 ms frames (default 2)",
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    args = parser.parse_args()
    turns = args.turns or math.ceil(20 / args.calls)
    server = None
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        if args.base_url:
            base_url = args.base_url
        else:
            env = dict(kv.split("=", 1) for kv in args.env)
            server = ServerProcess(Path(tempfile.mkdtemp(prefix="voice-latency-")), env).start()
            base_url = server.base_url
            print(f"server on {base_url} (log: {server.log_path})", flush=True)
        summary = asyncio.run(run(base_url, args.calls, turns, args.reply_quiet, args.receive_buffer_frames))
    finally:
        if server is not None:
            server.stop()
    summary["wall_s"] = round(time.monotonic() - started, 1)
    # The machine may be shared: without the load average the figures cannot be compared between runs.
    summary["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    summary["cpus"] = os.cpu_count()
    print(
        f"p50 {summary['latency_s_p50']:.3f} s, p95 {summary['latency_s_p95']:.3f} s over {summary['turns']} turns"
    )
    print("stage medians (s after end of speech):", summary.get("stages_s_p50"))
    print(
        f"load average (1 min) before/after: {summary['loadavg_1m_before_after']} on {summary['cpus']} CPUs"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
