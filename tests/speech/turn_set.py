"""A labelled set of pauses for end-of-turn evaluation: mid-utterance pauses vs the end of the turn.

Each template is a caller's turn cut into fragments; the caller pauses between fragments (a hesitation
after "and", "um", "for", "the", a list comma, or after a complete sentence they then continue) and the
turn ends after the last one. Fragments are synthesized one by one and joined by silences of known length,
so every boundary is known to 10 ms. Templates are split in two halves: ``tune`` (used to choose the
thresholds, voices ``TUNE_VOICES``) and ``heldout`` (reported, the other voices). ``real`` holds the real
human recordings of ``corpus.real_clips``: single utterances whose internal pauses are all mid-utterance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from .corpus import ESPEAK_VOICES, PIPER_VOICES, RATE, load_pcm16k, real_clips, synthesize

LEAD_S = 0.5
TAIL_S = 2.0
PAUSE_RANGE_S = (0.25, 1.25)

# Pauses fall between fragments. The kinds are mixed in both halves.
TUNE_TEMPLATES = [
    ["I want to cancel my order and", "get a refund please."],
    ["Can I book a table for", "four people tonight?"],
    ["My account number is um", "four five six seven."],
    ["I'm looking for the", "nearest branch to my house."],
    ["The thing is", "my card was declined yesterday."],
    ["I need to change my booking.", "The one for Friday."],
    ["I'd like Monday,", "Tuesday,", "and Wednesday if possible."],
    ["So", "what time do you open on Sunday?"],
    ["I called last week because", "my internet stopped working."],
    ["Could you send it to", "my work address instead?"],
    ["Yes, that's right."],
    ["What are your opening hours?"],
    ["I was wondering if", "you could help me with my bill."],
    ["It's about my", "subscription renewal."],
    ["No, I meant the other appointment.", "The one next month."],
    ["Uh", "I think I was charged twice."],
]
HELDOUT_TEMPLATES = [
    ["I'd like to pay my bill and", "update my phone number."],
    ["Is there a pharmacy near", "the train station?"],
    ["The order number is uh", "seven eight nine."],
    ["I'm calling about the", "letter I received today."],
    ["What I want to know is", "whether you deliver on weekends."],
    ["I already paid the invoice.", "I did it on Monday."],
    ["I need milk,", "eggs,", "and some bread."],
    ["Well", "how much does the premium plan cost?"],
    ["I can't log in because", "I forgot my password."],
    ["Can you transfer me to", "someone in billing?"],
    ["No, thank you."],
    ["How long does delivery take?"],
    ["I was hoping that", "you could move my appointment."],
    ["It's for my", "daughter's school trip."],
    ["Sorry, I said Tuesday.", "Not Thursday."],
    ["Um", "do you have any tables left for tonight?"],
]
TUNE_VOICES = [PIPER_VOICES[0], ESPEAK_VOICES[0], ESPEAK_VOICES[3], ESPEAK_VOICES[5]]
HELDOUT_VOICES = [PIPER_VOICES[1], PIPER_VOICES[2], ESPEAK_VOICES[1], ESPEAK_VOICES[2], ESPEAK_VOICES[4]]


@dataclass
class LabelledClip:
    name: str
    pcm: np.ndarray  # int16, 16 kHz
    speech_start: float
    speech_end: float  # the end of the turn
    pauses: list[tuple[float, float]] = field(default_factory=list)  # labelled mid-utterance pauses
    # Per pause: "clause" (the words so far are unfinished: a cut-off there is plainly wrong) or "sentence"
    # (a complete sentence the caller then continues: taking the turn there is early, not absurd).
    kinds: list[str] = field(default_factory=list)


def _join(name: str, texts: list[str], fragments: list[np.ndarray], rng: random.Random) -> LabelledClip:
    parts = [np.zeros(int(LEAD_S * RATE), np.int16)]
    at = LEAD_S
    pauses = []
    for i, pcm in enumerate(fragments):
        if i:
            gap = int(rng.uniform(*PAUSE_RANGE_S) * RATE)
            parts.append(np.zeros(gap, np.int16))
            pauses.append((at, at + gap / RATE))
            at += gap / RATE
        parts.append(pcm)
        at += len(pcm) / RATE
    parts.append(np.zeros(int(TAIL_S * RATE), np.int16))
    kinds = ["sentence" if t.rstrip().endswith((".", "?", "!")) else "clause" for t in texts[:-1]]
    return LabelledClip(name, np.concatenate(parts), LEAD_S, at, pauses, kinds)


def synthesized_clips(
    templates: list[list[str]], voices: list[tuple[str, str, float]], seed: int
) -> list[LabelledClip]:
    rng = random.Random(seed)
    clips = []
    for backend, voice, speed in voices:
        for template in templates:
            fragments = [synthesize(text, backend, voice, speed) for text in template]
            clips.append(_join(f"{voice}@{speed}: {' | '.join(template)}", template, fragments, rng))
    return clips


def real_labelled_clips() -> list[LabelledClip]:
    """Real recordings, each one utterance: their ends are turn ends, every pause inside is mid-utterance."""
    clips = []
    for clip in real_clips():
        pcm = load_pcm16k(clip.path)
        edges = _audible_edges(pcm)
        padded = np.concatenate(
            [
                np.zeros(int(LEAD_S * RATE), np.int16),
                pcm[edges[0] : edges[1]],
                np.zeros(int(TAIL_S * RATE), np.int16),
            ]
        )
        end = LEAD_S + (edges[1] - edges[0]) / RATE
        name = f"real {clip.speaker}: {clip.text}"
        clips.append(LabelledClip(name, padded, LEAD_S, end, [(LEAD_S, end)], ["clause"]))
    return clips


def _audible_edges(pcm: np.ndarray, rel_db: float = -35.0) -> tuple[int, int]:
    win = RATE // 100
    n = len(pcm) // win
    rms = np.sqrt((pcm[: n * win].astype(np.float64).reshape(n, win) ** 2).mean(axis=1)) + 1e-9
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > rel_db)[0]
    return int(loud[0] * win), int((loud[-1] + 1) * win)


def build_clips(split: str) -> list[LabelledClip]:
    if split == "tune":
        return synthesized_clips(TUNE_TEMPLATES, TUNE_VOICES, seed=1)
    if split == "heldout":
        return synthesized_clips(HELDOUT_TEMPLATES, HELDOUT_VOICES, seed=2)
    if split == "real":
        return real_labelled_clips()
    raise ValueError(f"unknown split {split!r}; use tune, heldout or real")
