"""Whisper repetition loops on short clips: how often tiny.en loops, and what each remedy does to it.

Run: .venv/bin/python bench/stt_loops.py

Material: 34 one-word prompts ("yes", "cancel", "tomorrow", ...) by 9 synthesized voices (Piper at three
rates, six espeak-ng voices) with 0.3 s of silence each side (what the listener's pre/post-roll leaves);
10 sentences by the same voices; 21 real human recordings (pocketsphinx and alsa-utils test data, fetched by
scripts/real_speech.sh) with and without the padding. A loop is a text of >= 3 words with <= 2 distinct.
Each configuration decodes everything with the project's short-window decoder:

- ``before``: repetition_penalty 1.0, no text filter (the decoding before this change)
- ``filter_only``: penalty 1.0, ``collapse_repetitions`` on the text
- ``penalty_only``: penalty 1.1 (``STTConfig.repetition_penalty``), no filter
- ``default``: penalty 1.1 and the filter (what ``FasterWhisperSTT`` does now)
- ``no_repeat_ngram_2``: no_repeat_ngram_size 2, no filter (tried; see its WER)

Reports loops, WER on sentences and on real clips, and decode seconds per configuration; ends with one JSON line.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jiwer
import numpy as np

from speech.config import STTConfig
from speech.stt.faster_whisper import FasterWhisperSTT
from speech.stt.repetition import collapse_repetitions
from tests.speech.corpus import ESPEAK_VOICES, PIPER_VOICES, RATE, load_pcm16k, real_clips, synthesize

# fmt: off
WORDS = [
    "yes", "no", "okay", "hello", "stop", "wait", "thanks", "sure", "right", "yeah", "nope", "maybe", "tomorrow",
    "Monday", "seven", "twelve", "fine", "great", "cancel", "help", "billing", "refund", "pizza", "Tuesday",
    "agent", "operator", "repeat", "please", "correct", "exactly", "sorry", "goodbye", "hi", "what",
]
# fmt: on
SENTENCES = [
    "The weather today is sunny and warm.",
    "Please call me back tomorrow morning.",
    "I would like to order two large pizzas.",
    "Turn on the kitchen lights please.",
    "What time does the train leave?",
    "Can you tell me when the store opens on Sunday?",
    "No, I meant the other appointment, the one on Friday.",
    "I have a question about my last bill.",
    "Yes, that is exactly right, thank you.",
    "Could you send me the details by email?",
]
NUMBERS = {"10": "ten", "5": "five", "4": "four", "7": "seven", "8": "eight", "12": "twelve"}
CONFIGS = {
    "before": ({"repetition_penalty": 1.0}, False),
    "filter_only": ({"repetition_penalty": 1.0}, True),
    "penalty_only": ({"repetition_penalty": 1.1}, False),
    "default": ({"repetition_penalty": 1.1}, True),
    "no_repeat_ngram_2": ({"repetition_penalty": 1.0, "no_repeat_ngram_size": 2}, False),
}


def norm(text: str) -> str:
    words = re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))
    return " ".join(NUMBERS.get(w, w) for w in words)


def is_loop(text: str) -> bool:
    words = norm(text).split()
    return len(words) >= 3 and len(set(words)) <= 2


def pad(pcm: np.ndarray, seconds: float) -> np.ndarray:
    z = np.zeros(int(seconds * RATE), np.int16)
    return np.concatenate([z, pcm, z]).astype(np.float32) / 32768


def material() -> dict[str, list[tuple[str, np.ndarray]]]:
    voices = PIPER_VOICES + ESPEAK_VOICES
    words = [(w, pad(synthesize(w, *v), 0.3)) for v in voices for w in WORDS]
    sentences = [(s, pad(synthesize(s, *v), 0.3)) for v in voices for s in SENTENCES]
    real = [(c.text, pad(load_pcm16k(c.path), p)) for c in real_clips() for p in (0.0, 0.3)]
    return {"words": words, "sentences": sentences, "real": real}


def run(name: str, data: dict[str, list[tuple[str, np.ndarray]]]) -> dict[str, float]:
    options, use_filter = CONFIGS[name]
    stt = FasterWhisperSTT(STTConfig(**options))  # type: ignore[arg-type]
    model = stt._load()
    started = time.perf_counter()
    out: dict[str, float] = {}
    for kind, items in data.items():
        texts = []
        for _ref, audio in items:
            text = stt._decode_short_window(model, audio, min(200, int(10 * len(audio) / RATE) + 16))
            texts.append(collapse_repetitions(text) if use_filter else text)
        out[f"{kind}_loops"] = float(sum(is_loop(t) for t in texts))
        refs = [norm(r) for r, _ in items]
        out[f"{kind}_wer"] = float(jiwer.wer(refs, [norm(t) or "-" for t in texts]))
    out["decode_s"] = time.perf_counter() - started
    sizes = ", ".join(f"{k} {len(v)}" for k, v in data.items())
    print(
        f"{name:18s} loops: words {out['words_loops']:.0f}, sentences {out['sentences_loops']:.0f}, "
        f"real {out['real_loops']:.0f} | WER words {out['words_wer']:.3f} sentences {out['sentences_wer']:.3f} "
        f"real {out['real_wer']:.3f} | decode {out['decode_s']:.1f} s  ({sizes} clips)",
        flush=True,
    )
    return out


def main() -> dict[str, float]:
    load = os.getloadavg()
    print(f"machine: nproc {os.cpu_count()}, load average {load[0]:.2f} / {load[1]:.2f}")
    data = material()
    result: dict[str, float] = {"clips": float(sum(len(v) for v in data.values()))}
    for name in CONFIGS:
        for k, v in run(name, data).items():
            result[f"{name}_{k}"] = round(v, 4)
    result["load1_start"] = round(load[0], 2)
    result["load1_end"] = round(os.getloadavg()[0], 2)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(main()))
