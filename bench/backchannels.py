"""Backchannels vs interruptions while the agent speaks: does "mm-hm" resume and "wait" stop the reply?

Run: .venv/bin/python bench/backchannels.py [--split heldout|tune|all]

Each caller sound (``tests/speech/bargein_set.py``) starts 1 s into a Piper reply and goes through the real
Silero VAD, ``BargeInDetector`` with ``BackchannelDecider`` (real Whisper tiny.en, STTConfig defaults) and
``PlaybackController``, in real time (20 ms ticks), as in a call but without a network. Material: 12
backchannels ("mm-hmm", "okay", "right", "yeah", "I see"...) and 12 interruptions ("wait", "no, I meant
Tuesday", "what about Sunday?"...) by the split's synthesized voices (held-out: Piper at 0.85x and 1.2x,
espeak-ng en-gb, en-us+f3, en-029; tune: the other four), 3 synthetic coughs, and 16 real segments of
meetings and a phone call (9 backchannels by 7 speakers, 7 interruptions by 6). Figures:

- ``false_interruptions_per_100_backchannels``: backchannels (and coughs) that stopped the reply, per 100;
- ``real_interruptions_stopped``: share of interruptions that stopped it;
- ``pause_at_server_s_p50``: caller onset -> the agent's first silent frame (server side; the caller hears
  it one network + jitter buffer later: the call-level figures over real aiortc calls are bench/bargein.py's);
- ``backchannel_pause_s_p50``: how long the agent was silent for a backchannel before resuming;
- ``interruption_stop_s_p50``: caller onset -> reply dropped;
- ``audio_lost_or_replayed``: resumed replies whose played sample count differs from what was queued.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speech.config import SpeechConfig
from speech.stt.registry import create_stt
from tests.speech.bargein_set import AGENT_TEXT, CallerSound, bargein_sounds, play_against_agent
from tests.speech.corpus import synthesize


def p50(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


async def main(split: str, words: bool) -> dict[str, float]:
    load = os.getloadavg()
    print(f"machine: nproc {os.cpu_count()}, load average {load[0]:.2f} / {load[1]:.2f}")
    config = SpeechConfig()
    config.barge_in.decide_with_words = words
    stt = create_stt(config.stt)
    await stt.warm_up()
    agent = (synthesize(AGENT_TEXT, "piper", "joe"), 16_000)
    rows: dict[str, list[tuple[CallerSound, object]]] = {"backchannel": [], "interruption": []}
    paused, bc_pause, stops = [], [], []
    lost = 0
    for sound in bargein_sounds(split):
        outcome = await play_against_agent(agent, sound.pcm, stt, config)
        rows[sound.label].append((sound, outcome))
        if outcome.paused_after_onset_s is not None:
            paused.append(outcome.paused_after_onset_s)
        wrong = outcome.interrupted != (sound.label == "interruption")
        if sound.label == "backchannel" and not outcome.interrupted:
            if outcome.resumed_after_onset_s is not None and outcome.paused_after_onset_s is not None:
                bc_pause.append(outcome.resumed_after_onset_s - outcome.paused_after_onset_s)
            lost += outcome.played_samples != outcome.enqueued_samples
        if outcome.stopped_after_onset_s is not None:
            stops.append(outcome.stopped_after_onset_s)
        print(
            f"  {'WRONG' if wrong else 'ok   '} {sound.label:12s} {sound.name:45s} {outcome.decisions}",
            flush=True,
        )
    result: dict[str, float] = {}
    for subset, keep in (("", lambda s: True), ("real_", lambda s: s.name.startswith("real"))):
        bcs = [o for s, o in rows["backchannel"] if keep(s)]
        ints = [o for s, o in rows["interruption"] if keep(s)]
        result[f"{subset}backchannels"] = float(len(bcs))
        result[f"{subset}interruptions"] = float(len(ints))
        result[f"{subset}false_interruptions_per_100_backchannels"] = (
            100 * sum(o.interrupted for o in bcs) / max(1, len(bcs))  # type: ignore[attr-defined]
        )
        result[f"{subset}real_interruptions_stopped"] = sum(o.interrupted for o in ints) / max(1, len(ints))  # type: ignore[attr-defined]
    result.update(
        pause_at_server_s_p50=p50(paused),
        pause_at_server_s_max=max(paused) if paused else float("nan"),
        backchannel_pause_s_p50=p50(bc_pause),
        interruption_stop_s_p50=p50(stops),
        audio_lost_or_replayed=float(lost),
        load1_start=load[0],
        load1_end=os.getloadavg()[0],
    )
    print(
        f"backchannels {result['backchannels']:.0f}: false interruptions per 100 "
        f"{result['false_interruptions_per_100_backchannels']:.1f} (real {result['real_false_interruptions_per_100_backchannels']:.1f}); "
        f"interruptions {result['interruptions']:.0f}: stopped {result['real_interruptions_stopped']:.3f} "
        f"(real {result['real_real_interruptions_stopped']:.3f}); pause at server p50 {result['pause_at_server_s_p50']:.3f} s, "
        f"backchannel pause p50 {result['backchannel_pause_s_p50']:.3f} s, stop p50 {result['interruption_stop_s_p50']:.3f} s"
    )
    return {k: round(v, 4) for k, v in result.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=["heldout", "tune", "all"], default="heldout")
    parser.add_argument("--no-words", action="store_true", help="the old rule: 200 ms of voice interrupts")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.split, not args.no_words))))
