"""Phone latency of a whole node over loopback SIP: the real pipeline (Whisper tiny.en, the grounded agent
over the shop FAQ, Piper) behind the in-process SIP user agent, called by a second ``SipUserAgent`` (the
"phone") in this process.

    .venv/bin/python bench/sip_latency.py [--calls 5] [--turns 4] [--rings 5]

Figures (one JSON line at the end):
- ``sip_latency_s_p50/p95``: the phone sends the last RTP packet of a spoken question (Piper, G.711) ->
  the first voiced RTP packet of the reply arrives at the phone (RMS > 300, arrival stamped by the RTP
  receive path, before the phone's jitter buffer). ``--calls`` x ``--turns`` turns, questions from
  bench/data/answers/shop/questions.yaml; one more question before them warms the node up (not counted).
- ``call_setup_s_p50``: INVITE received -> 200 OK sent, inside the node's user agent;
  ``client_setup_s_p50``: INVITE sent -> 200 OK received at the phone.
- ``publish_to_ring_s_p50``: a proactive prompt published on the node's bus for a user in no call whose
  directory entry has a phone -> that INVITE arrives at the phone (loopback: arrival ~ sending).
- ``reply_wer``: everything the phone heard in a call (greeting and replies, cut at pauses) through G.711,
  transcribed by a judge Whisper (``--judge``: base by default, a better listener than the node's tiny.en,
  so its own mistakes on brand names weigh less), against all the agent's texts in that call's record
  (corpus WER over the calls). Both sides are normalized for written form only (``normalize``): case,
  punctuation, "$", a.m./am, %, @, British/American spelling, digit grouping; words are never forgiven.
  ``--transcripts FILE`` writes each call's asked/said/heard texts for a look at what differs.
Not covered: a real network (jitter, loss), TCP, a PBX in between, concurrent calls. The phone shares this
process and its event loop with the node, so a loop stall delays both sides' timestamps alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jiwer
import numpy as np
import yaml
from whisper_normalizer.english import EnglishSpellingNormalizer

from messaging.schemas import ProactivePrompt
from server.node import VoiceNode
from server.transports.sip import SipCall, SipConfig, SipUserAgent
from speech.frames import AudioFrame
from speech.timing import STAGES
from tests.server.phone.conftest import node_settings
from tests.server.transports.sip.conftest import Whisper, to_rate
from tests.speech.conftest import piper_sentence, trim

TARGETS = {"sip_latency_s_p50": 0.9, "call_setup_s_p50": 0.05, "publish_to_ring_s_p50": 0.3, "reply_wer": 0.15}
CALLER = "+15551239000"
FRAME = 160  # 20 ms at 8 kHz
VOICE_RMS = 300.0
SPELLING = EnglishSpellingNormalizer()
QUIET_S = 1.5  # no voice this long: the reply is over


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1] if ordered else float("nan")


def normalize(text: str) -> str:
    """Written form out, words kept: what the agent wrote and what Whisper writes for the same speech are made
    the same — case, punctuation, "$129" / "129 dollars", "10 a.m." / "10am" / "10 am", "10%" / "10 percent",
    "@" said "at", British / American spelling (Whisper's own spelling map), digit grouping ("5 0 3 5 5 5" and
    "503 555" are the same six spoken digits). Nothing here forgives a wrong, missing or extra word."""
    text = re.sub(r"\$(\d[\d,.]*)", r"\1 dollars", text.lower())
    text = re.sub(r"\b([ap])\.?\s?m\.(?=\s|$)", r"\1m", text)  # "10 a.m." is the "10 am" the agent wrote
    text = re.sub(r"(\d)([ap]m)\b", r"\1 \2", text)  # "9am" -> "9 am"
    text = text.replace("%", " percent ").replace("@", " at ")
    words = SPELLING(" ".join(re.sub(r"[^a-z0-9' ]", " ", text).split())).split()
    joined: list[str] = []
    for word in words:  # a run of number tokens is one spoken digit string, however it was grouped
        if word.isdigit() and joined and joined[-1].isdigit():
            joined[-1] += word
        else:
            joined.append(word)
    return " ".join(joined)


class Phone:
    """What the phone says (a queue of 8 kHz utterances, silence between) and hears (voiced-packet times)."""

    def __init__(self, call: SipCall) -> None:
        self.call = call
        self.heard: list[tuple[float, np.ndarray]] = []  # (arrival of the packet, pcm)
        self._speech = np.zeros(0, np.int16)
        self._said: asyncio.Future[float] | None = None
        call.play(self._read_frame)
        self._listening = asyncio.create_task(self._listen())

    def _read_frame(self) -> AudioFrame:
        chunk, self._speech = self._speech[:FRAME], self._speech[FRAME:]
        if len(chunk) and not len(self._speech) and self._said is not None and not self._said.done():
            self._said.set_result(time.monotonic())  # the last packet of the utterance goes out now
        return AudioFrame(np.pad(chunk, (0, FRAME - len(chunk))), 8000)

    async def say(self, pcm8k: np.ndarray) -> float:
        self._said = asyncio.get_running_loop().create_future()
        self._speech = pcm8k
        return await asyncio.wait_for(self._said, len(pcm8k) / 8000 + 10)

    async def _listen(self) -> None:
        async for frame in self.call.audio():
            self.heard.append((frame.timestamp + len(frame.pcm) / 8000, frame.pcm))

    def first_voice_after(self, t: float) -> float | None:
        return next((at for at, pcm in self.heard if at > t and _voiced(pcm)), None)

    async def reply(self, after: float, timeout: float = 60.0) -> tuple[float, np.ndarray]:
        """Waits for the first voiced packet after ``after``, then for ``QUIET_S`` of no voice."""
        deadline = time.monotonic() + timeout
        while (first := self.first_voice_after(after)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply")
            await asyncio.sleep(0.02)
        while True:
            last = max(at for at, pcm in self.heard if at >= first and _voiced(pcm))
            if time.monotonic() - last > QUIET_S or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        pcm = [p for at, p in self.heard if first <= at <= last + 0.1]
        return first, np.concatenate(pcm)

    def utterances(self) -> list[np.ndarray]:
        """Everything heard, cut at every ``QUIET_S`` without voice (each piece short enough for Whisper)."""
        pieces: list[list[np.ndarray]] = []
        last_voice = -1e9
        for at, pcm in self.heard:
            if _voiced(pcm):
                if at - last_voice > QUIET_S:
                    pieces.append([])
                last_voice = at
            if pieces and at - last_voice <= QUIET_S:
                pieces[-1].append(pcm)
        return [np.concatenate(p) for p in pieces]

    async def close(self) -> None:
        self._listening.cancel()
        await asyncio.gather(self._listening, return_exceptions=True)


def _voiced(pcm: np.ndarray) -> bool:
    return bool(len(pcm)) and float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > VOICE_RMS


def questions() -> list[str]:
    data = yaml.safe_load((ROOT / "bench/data/answers/shop/questions.yaml").read_text())
    return [q["ask"] for q in data["questions"] if not q.get("after")]


async def one_call(
    node: VoiceNode,
    phone_ua: SipUserAgent,
    speech: list[np.ndarray],
    out: dict[str, list[Any]],
    warm_up: np.ndarray | None = None,
) -> None:
    host, port = node.phone.user_agent.address  # type: ignore[union-attr]
    call = await phone_ua.dial(f"sip:agent@{host}:{port}", caller_id=CALLER)
    out["client_setup"].append(call.timings.setup_s)
    (node_call,) = node.phone.user_agent.calls.values()  # type: ignore[union-attr]
    out["setup"].append(node_call.timings.setup_s)
    phone = Phone(call)
    try:
        await phone.reply(0.0)  # the greeting
        if warm_up is not None:  # not counted: the first question after start loads the retriever
            await phone.reply(await phone.say(warm_up))
        for pcm in speech:
            ended = await phone.say(pcm)
            first, _ = await phone.reply(ended)
            out["latency"].append(first - ended)
            print(f"  turn {len(out['latency'])}: {first - ended:.3f} s", file=sys.stderr, flush=True)
    finally:
        await phone.close()
        await call.hangup()
    await no_live_calls(node)
    (summary,) = await node.deps.records.recent(1)
    record = (await node.deps.records.get(summary["call_id"])).to_dict()  # type: ignore[union-attr]
    out["heard"].append(phone.utterances())
    out["said"].append([e["text"] for e in record["transcript"] if e["role"] == "agent"])
    out["asked"].append([t["user_text"] for t in record["turns"] if t["user_text"]])
    out["stages"].extend(t.get("stages", {}) for t in record["turns"] if t["user_text"])


async def no_live_calls(node: VoiceNode, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while node.registry.live():
        if time.monotonic() > deadline:
            raise TimeoutError(f"calls still live after {timeout:.0f} s: {node.registry.live()}")
        await asyncio.sleep(0.05)


async def rings(node: VoiceNode, rung: asyncio.Queue[float], hung_up: asyncio.Queue[None], count: int) -> list[float]:
    """Publishes one prompt per offline user, waits for the phone to ring and hang up, one at a time."""
    figures: list[float] = []
    for i in range(count):
        now = time.time()
        prompt = ProactivePrompt(
            idempotency_key=f"bench:{i}:{time.monotonic_ns()}", user_id=f"bench-ring-{i}",
            text="Your repair is ready for pickup.", created_at=now, expires_at=now + 600,
        )  # fmt: skip
        t0 = time.monotonic()
        await node.bus.publish(node.settings.bus.topic_proactive, prompt.to_bytes(), key=prompt.user_id)
        figures.append(await asyncio.wait_for(rung.get(), 30) - t0)
        await asyncio.wait_for(hung_up.get(), 30)
        await no_live_calls(node)
    return figures


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rung: asyncio.Queue[float] = asyncio.Queue()
    hung_up: asyncio.Queue[None] = asyncio.Queue()

    async def ringing(call: SipCall) -> None:  # the phone as callee: note the INVITE, hang up soon
        rung.put_nowait(call.timings.invite_at)
        await asyncio.sleep(0.5)
        await call.hangup()
        hung_up.put_nowait(None)

    phone_ua = SipUserAgent(SipConfig(enabled=True, udp_port=0, max_calls=50), ringing)
    await phone_ua.start()
    _, phone_port = phone_ua.address
    directory = [{"number": CALLER, "user_id": "bench-caller"}] + [
        {"number": f"+1555123910{i}", "user_id": f"bench-ring-{i}", "sip_uri": f"sip:ring{i}@127.0.0.1:{phone_port}"}
        for i in range(args.rings)
    ]
    node = VoiceNode(node_settings(workdir, directory, rag=True))
    await node.start()
    await node.knowledge.ingestor.wait_idle()
    asked = questions()
    speech = []
    for text in asked[: args.turns * args.calls + 1]:
        pcm, rate = piper_sentence(text)
        speech.append(to_rate(trim(pcm, rate), rate, 8000))
    out: dict[str, list[Any]] = {k: [] for k in ("latency", "setup", "client_setup", "heard", "said", "asked", "stages")}
    try:
        for c in range(args.calls):
            turns = [speech[(c * args.turns + t) % (len(speech) - 1)] for t in range(args.turns)]
            await one_call(node, phone_ua, turns, out, warm_up=speech[-1] if c == 0 else None)
            print(f"call {c + 1}: latency so far p50 {percentile(out['latency'], 50):.3f} s", flush=True)
        ring = await rings(node, rung, hung_up, args.rings)
    finally:
        await node.stop()
        await phone_ua.stop()
    whisper = Whisper(args.judge)
    refs = [normalize(" ".join(said)) for said in out["said"]]
    hyps = [normalize(" ".join([await whisper.transcribe(pcm) for pcm in call])) or "-" for call in out["heard"]]
    for c, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        print(f"call {c + 1} wer {jiwer.wer(ref, hyp):.3f}\n  asked (as the node heard it): {out['asked'][c]}\n"
              f"  said:  {ref}\n  heard: {hyp}")
    if args.transcripts:
        calls = [{"asked": a, "said": r, "heard": h, "wer": jiwer.wer(r, h)} for a, r, h in zip(out["asked"], refs, hyps, strict=True)]
        Path(args.transcripts).write_text(json.dumps(calls, indent=1))
    return {
        "calls": args.calls,
        "turns": len(out["latency"]),
        "sip_latency_s_p50": round(percentile(out["latency"], 50), 3),
        "sip_latency_s_p95": round(percentile(out["latency"], 95), 3),
        "call_setup_s_p50": round(percentile([s for s in out["setup"] if s is not None], 50), 4),
        "client_setup_s_p50": round(percentile([s for s in out["client_setup"] if s is not None], 50), 4),
        "publish_to_ring_s_p50": round(percentile(ring, 50), 3),
        "rings": len(ring),
        "reply_wer": round(float(jiwer.wer(refs, hyps)), 3),
        "node_turns": sum(len(asked) for asked in out["asked"]),  # > turns: a question taken as two turns
        "stages_s_p50": {  # the node's per-turn timings (speech.timing): s after the end of caller speech
            stage: round(percentile(values, 50), 3)
            for stage in (*STAGES, "voice_to_voice")
            if (values := [t[stage] for t in out["stages"] if t.get(stage) is not None])
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--turns", type=int, default=4, help="questions per call")
    parser.add_argument("--rings", type=int, default=5, help="proactive prompts that ring the phone")
    parser.add_argument(
        "--judge", default="base", choices=("base", "tiny.en"),
        help="the Whisper that transcribes what the phone heard (the node itself runs tiny.en)",
    )  # fmt: skip
    parser.add_argument("--transcripts", help="write each call's asked/said/heard texts (JSON) here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("server.transports.sip.bridge", "server.calls.session"):  # why a call ended, if it did
        logging.getLogger(name).setLevel(logging.INFO)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sip-latency-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    for key, target in TARGETS.items():
        verdict = "meets" if result[key] <= target else "MISSES"
        print(f"{key:24s} {result[key]:>8} (target <= {target}: {verdict})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
