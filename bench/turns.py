"""End of turn: false cut-offs and end-of-turn delay, fixed silence vs adaptive (speech/endpointing.py).

Run: .venv/bin/python bench/turns.py [--split tune|heldout|all] [--sweep]

The labelled set (``tests/speech/turn_set.py``): utterances spoken with pauses inside them (after "and",
"um", "for", "the", a list comma, and after a complete sentence the caller then continues), synthesized
fragment by fragment by 9 voices (Piper at three rates, six espeak-ng voices) with mid-utterance pauses of
0.25-1.25 s (uniform, seeded), plus 20 real human single-utterance recordings whose own pauses are all
mid-utterance. Tuning split: half of the templates on four voices; held-out split: the other templates on the
other five voices, and the real recordings. Thresholds were chosen with ``--split tune --sweep`` only.

For every clip the real Silero VAD finds each silence inside the turn (hysteresis as EndOfTurnDetector);
for each silence the real Whisper (STTConfig defaults) transcribes the turn so far, as the listener's
speculative transcript does ``speculative_after_ms`` into the silence, and its compute time is measured.
A silence ends the turn when it lasts longer than the policy's wait, where the words are known only at
``speculative_after + queue + compute`` (before that only ``words_timeout`` ends it, as in the listener):

    wait = max(silence_for(text), t_ready)  if t_ready <= words_timeout  else  words_timeout

- ``false_cutoff_rate``: labelled mid-utterance pauses that end the turn / all labelled pauses;
  ``utterances_cut_rate``: utterances cut at least once at any silence (labelled or a gap inside a word run).
- ``eot_delay_s_mean``: true end of speech -> turn end, over the utterances' real ends.

What it does not cover: the listener's own scheduling on a loaded machine (the wait is computed from the
measured compute time, not run in real time; tests/speech/test_endpointing.py runs the real listener),
and conversational timing between two real people (no such labelled recordings were found).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from speech.config import EndOfTurnConfig, SpeechConfig
from speech.endpointing import EndOfTurnPolicy
from speech.stt.registry import create_stt
from speech.vad import CHUNK_SECONDS, SileroVAD
from tests.speech.turn_set import LabelledClip, build_clips

_HYSTERESIS = 0.15
_PRE_ROLL = 0.3


@dataclass
class Silence:
    start: float  # VAD silence start, seconds from clip start
    length: float  # until the next voiced chunk (or the clip end)
    kind: str  # "end" (after the last word), "clause"/"sentence" (a labelled pause), "gap" (unlabelled)
    text: str = ""
    ready: float = 0.0  # seconds after ``start`` when the words are known


def vad_silences(clip: LabelledClip, threshold: float, min_speech: float) -> list[Silence]:
    """Silences inside the turn, as EndOfTurnDetector sees them (after min_speech of voice)."""
    vad = SileroVAD()
    audio = clip.pcm.astype(np.float32) / 32768
    voiced = False
    voiced_total = 0.0
    out: list[Silence] = []
    silence_start: float | None = None
    for chunk in vad.process(audio, 0.0):
        voiced = chunk.probability >= (threshold - _HYSTERESIS if voiced else threshold)
        if voiced:
            voiced_total += chunk.duration
            if silence_start is not None and voiced_total >= min_speech:
                out.append(_label(clip, silence_start, chunk.t - silence_start))
            silence_start = None
        elif silence_start is None and voiced_total >= min_speech:
            silence_start = chunk.t
    if silence_start is not None:
        out.append(_label(clip, silence_start, len(audio) / 16_000 - silence_start))
    return out


def _label(clip: LabelledClip, start: float, length: float) -> Silence:
    if start + length >= len(clip.pcm) / 16_000 - 0.05:  # the silence that runs to the clip's end
        return Silence(start, length, "end")
    for (a, b), kind in zip(clip.pauses, clip.kinds, strict=True):
        if a - 0.1 <= start <= b:
            return Silence(start, length, kind)
    return Silence(start, length, "gap")


async def transcribe_silences(clip: LabelledClip, silences: list[Silence], after: float) -> None:
    stt = create_stt(SpeechConfig().stt)
    onset = max(0.0, clip.speech_start - _PRE_ROLL)
    for s in silences:
        until = s.start + after
        audio = clip.pcm[int(onset * 16_000) : int(until * 16_000)].astype(np.float32) / 32768
        result = await stt.transcribe(audio)
        assert result is not None
        s.text = result.text
        s.ready = after + result.compute_seconds + result.queued_seconds


def wait_for(policy: EndOfTurnPolicy, s: Silence) -> float:
    """Silence after which the listener ends the turn in this pause."""
    if not policy.adaptive:
        return policy.default
    if s.ready > policy.words_timeout:
        return policy.words_timeout
    return max(policy.silence_for(s.text), s.ready)


Prepared = list[tuple[LabelledClip, list[Silence]]]


def score(policy: EndOfTurnPolicy, clips: Prepared) -> dict[str, float]:
    cut = {"clause": 0, "sentence": 0}
    total = {"clause": 0, "sentence": 0}
    short_cut = short_total = cut_utts = 0
    delays: list[float] = []
    for clip, silences in clips:
        cut_here = False
        for s in silences:
            wait = wait_for(policy, s)
            ends = s.length > wait + 1e-9
            if s.kind == "end":
                delays.append(s.start - clip.speech_end + wait + CHUNK_SECONDS / 2)
                continue
            cut_here = cut_here or ends
            if s.kind in cut:
                cut[s.kind] += ends
                total[s.kind] += 1
                if s.kind == "clause" and s.length <= 0.8:
                    short_cut += ends
                    short_total += 1
        cut_utts += cut_here
    labelled = total["clause"] + total["sentence"]
    return {
        "false_cutoff_rate": (cut["clause"] + cut["sentence"]) / max(1, labelled),
        "false_cutoff_rate_clause": cut["clause"] / max(1, total["clause"]),
        "false_cutoff_rate_clause_le_0_8s": short_cut / max(1, short_total),
        "false_cutoff_rate_sentence": cut["sentence"] / max(1, total["sentence"]),
        "labelled_pauses": float(labelled),
        "clause_pauses": float(total["clause"]),
        "utterances_cut_rate": cut_utts / max(1, len(clips)),
        "utterances": float(len(clips)),
        "eot_delay_s_mean": statistics.fmean(delays) if delays else float("nan"),
        "eot_delay_s_p50": statistics.median(delays) if delays else float("nan"),
    }


def policies(default_ms: int) -> dict[str, EndOfTurnPolicy]:
    fixed = (300, 400, 600, 800, 1000)
    out = {f"fixed_{ms}ms": EndOfTurnPolicy(EndOfTurnConfig(adaptive=False), ms) for ms in fixed}
    out["adaptive"] = EndOfTurnPolicy(EndOfTurnConfig(), default_ms)
    return out


def sweep(clips: Prepared, default_ms: int) -> EndOfTurnConfig:
    """Choose on these clips: fewest clause cut-offs with a mean delay at most the fixed default's + 50 ms."""
    budget = (
        score(EndOfTurnPolicy(EndOfTurnConfig(adaptive=False), default_ms), clips)["eot_delay_s_mean"] + 0.05
    )
    best: tuple[float, float, EndOfTurnConfig] | None = None
    frontier: dict[float, tuple[float, float, EndOfTurnConfig]] = {}  # delay bucket -> fewest cut-offs
    grid = itertools.product(
        (200, 250, 300), (300, 400, 500, 600), (400, 500, 600), (1000, 1200, 1500), (600, 800)
    )
    for question, statement, unknown, incomplete, timeout in grid:
        cfg = EndOfTurnConfig(
            question_silence_ms=question,
            statement_silence_ms=statement,
            unknown_silence_ms=unknown,
            incomplete_silence_ms=incomplete,
            words_timeout_ms=timeout,
        )
        r = score(EndOfTurnPolicy(cfg, default_ms), clips)
        key = (r["false_cutoff_rate_clause"], r["eot_delay_s_mean"])
        if r["eot_delay_s_mean"] <= budget and (best is None or key < best[:2]):
            best = (*key, cfg)
        bucket = round(r["eot_delay_s_mean"] / 0.1) * 0.1
        if bucket not in frontier or key < frontier[bucket][:2]:
            frontier[bucket] = (*key, cfg)
    assert best is not None
    for bucket, (cut, delay, cfg) in sorted(frontier.items()):
        fields = ["question", "statement", "unknown", "incomplete"]
        chosen = ", ".join(f"{f} {getattr(cfg, f + '_silence_ms')}" for f in fields)
        print(
            f"  trade-off: delay ~{bucket:.1f} s -> clause cut-offs {cut:.3f} ({chosen}, timeout {cfg.words_timeout_ms})"
        )
    print(f"  sweep: chose {best[2].model_dump()} (clause cut-offs {best[0]:.3f}, delay {best[1]:.3f} s)")
    return best[2]


async def prepare(split: str, config: SpeechConfig) -> Prepared:
    after = config.end_of_turn.speculative_after_ms / 1000
    prepared = []
    for clip in build_clips(split):
        silences = vad_silences(clip, config.vad.threshold, config.vad.min_speech_ms / 1000)
        await transcribe_silences(clip, silences, after)
        prepared.append((clip, silences))
    return prepared


async def main(split: str, do_sweep: bool) -> dict[str, float]:
    load = os.getloadavg()
    print(f"machine: nproc {os.cpu_count()}, load average {load[0]:.2f} / {load[1]:.2f}")
    config = SpeechConfig()
    await create_stt(config.stt).warm_up()
    result: dict[str, float] = {}
    for part in ["tune", "heldout", "real"] if split == "all" else [split]:
        prepared = await prepare(part, config)
        print(f"{part}: {len(prepared)} clips, {sum(len(s) for _, s in prepared)} silences")
        candidates = policies(config.vad.end_of_turn_silence_ms)
        if do_sweep and part == "tune":  # choose on the tuning split only; the others are reported
            chosen = sweep(prepared, config.vad.end_of_turn_silence_ms)
            candidates["adaptive_swept"] = EndOfTurnPolicy(chosen, config.vad.end_of_turn_silence_ms)
        for name, policy in candidates.items():
            r = score(policy, prepared)
            print(
                f"  {name:16s} false cut-offs: all {r['false_cutoff_rate']:.3f} of {r['labelled_pauses']:.0f}, "
                f"clause {r['false_cutoff_rate_clause']:.3f} of {r['clause_pauses']:.0f} "
                f"(<=0.8 s {r['false_cutoff_rate_clause_le_0_8s']:.3f}), sentence "
                f"{r['false_cutoff_rate_sentence']:.3f}; utterances cut {r['utterances_cut_rate']:.3f}; "
                f"EOT delay mean {r['eot_delay_s_mean']:.3f} s p50 {r['eot_delay_s_p50']:.3f} s"
            )
            for k, v in r.items():
                result[f"{part}_{name}_{k}"] = round(v, 4)
    result["load1_start"] = round(load[0], 2)
    result["load1_end"] = round(os.getloadavg()[0], 2)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=["tune", "heldout", "real", "all"], default="all")
    parser.add_argument("--sweep", action="store_true", help="choose thresholds on the tuning split (grid)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.split, args.sweep))))
