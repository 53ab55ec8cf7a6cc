"""Speech stage latencies on this machine: STT per utterance, TTS first audio, TTS real-time factor.

Run: .venv/bin/python bench/speech_stages.py [--repeat N]
Prints a readable summary and, last, one JSON line (for CI trend charts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import numpy as np

from speech.config import STTConfig, TTSConfig
from speech.resample import resample_array
from speech.stt.registry import create_stt
from speech.tts.registry import create_tts

SENTENCES = [
    "The weather today is sunny and warm.",
    "Please call me back tomorrow morning at nine.",
    "I would like to change the delivery address for my order.",
]


async def tts_run(backend: str, repeat: int) -> tuple[list[float], list[float], list[np.ndarray], int]:
    tts = create_tts(TTSConfig(backend=backend))  # type: ignore[arg-type]
    firsts, rtfs, clips = [], [], []
    for _ in range(repeat):
        for text in SENTENCES:
            started = time.perf_counter()
            first = 0.0
            pcm = []
            async for frame in tts.synthesize(text):
                first = first or time.perf_counter() - started
                pcm.append(frame.pcm)
            total = time.perf_counter() - started
            audio = np.concatenate(pcm)
            firsts.append(first)
            rtfs.append(total / (len(audio) / tts.sample_rate))
            clips.append(audio)
    return firsts, rtfs, clips, tts.sample_rate


async def main(repeat: int) -> dict[str, float]:
    result: dict[str, float] = {}
    for backend in ("piper", "espeak"):
        firsts, rtfs, clips, rate = await tts_run(backend, repeat)
        result[f"tts_{backend}_first_audio_median_s"] = statistics.median(firsts)
        result[f"tts_{backend}_rtf_median"] = statistics.median(rtfs)
        print(
            f"TTS {backend:6s}: first audio median {statistics.median(firsts) * 1000:.0f} ms, "
            f"real-time factor median {statistics.median(rtfs):.3f}"
        )
        if backend == "piper":
            piper_clips, piper_rate = clips[: len(SENTENCES)], rate
    stt = create_stt(STTConfig())
    started = time.perf_counter()
    await stt.warm_up()
    result["stt_load_s"] = time.perf_counter() - started
    latencies, rtfs = [], []
    for _ in range(repeat):
        for clip in piper_clips:
            audio = resample_array(clip, piper_rate, 16_000).astype(np.float32) / 32768
            started = time.perf_counter()
            transcript = await stt.transcribe(audio)
            latencies.append(time.perf_counter() - started)
            rtfs.append(latencies[-1] / (len(audio) / 16_000))
            assert transcript is not None
    result["stt_median_s"] = statistics.median(latencies)
    result["stt_rtf_median"] = statistics.median(rtfs)
    print(
        f"STT tiny.en: load {result['stt_load_s']:.2f} s, median {result['stt_median_s'] * 1000:.0f} ms per "
        f"utterance ({len(latencies)} runs), real-time factor {result['stt_rtf_median']:.3f}"
    )
    return {k: round(v, 4) for k, v in result.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.repeat))))
