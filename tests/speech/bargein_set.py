"""Caller sounds during the agent's speech, labelled backchannel or interruption, and a harness that plays
one against a speaking agent through the real VAD, barge-in detector, backchannel decider and playback.

Synthesized: phrases by the voices of ``corpus`` (split like the end-of-turn set: tuning voices and
held-out voices). Real: short segments of real meetings and a phone call (pyannote.audio's test data, AMI
corpus CC BY 4.0, speaker turns from its RTTM files), labelled by hand where Whisper tiny.en and Whisper
base heard the same thing: 9 backchannels by 7 speakers, 7 interruptions by 6 speakers. The meeting audio is
far-field and quiet; it is brought to a telephone caller's level (see ``real_sounds``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from speech.backchannel import BackchannelDecider
from speech.bargein import BargeInDetector
from speech.config import SpeechConfig
from speech.frames import AudioFrame
from speech.playback import PlaybackController
from speech.stt.base import SpeechToText
from speech.vad import SileroVAD

from .corpus import RATE, load_pcm16k, real_speech_dir, synthesize
from .turn_set import HELDOUT_VOICES, TUNE_VOICES

BACKCHANNELS = ["Mm-hmm.", "Uh-huh.", "Yeah.", "Okay.", "Right.", "Yes.", "Sure.", "I see.", "Got it.",
                "All right.", "Oh, okay.", "Yeah, yeah."]  # fmt: skip
INTERRUPTIONS = ["Wait.", "Stop.", "No.", "Hold on.", "No, I meant Tuesday.", "Sorry, what was that?",
                 "What about Sunday?", "Can you repeat that?", "Excuse me.", "Actually, I need something else.",
                 "But I already paid.", "That's wrong."]  # fmt: skip
# (file, start, duration, label) from the RTTM speaker turns.
REAL_SEGMENTS = [
    ("trn01", 22.269, 0.457, "backchannel"),  # "Yeah."
    ("trn04", 25.200, 0.736, "backchannel"),  # "Mm-hmm."
    ("trn04", 26.992, 0.272, "backchannel"),  # "Yeah."
    ("trn05", 5.936, 0.342, "backchannel"),  # "Okay."
    ("trn07", 24.032, 0.474, "backchannel"),  # "Hmm."
    ("trn09", 15.726, 0.823, "backchannel"),  # "Okay."
    ("tst00", 25.658, 0.550, "backchannel"),  # "Yeah."
    ("tst01", 16.495, 0.540, "backchannel"),  # "Okay."
    ("tst01", 29.008, 0.448, "backchannel"),  # "Oh."
    ("dev01", 19.568, 0.800, "interruption"),  # "What's a username?"
    ("trn08", 6.995, 0.547, "interruption"),  # "Come on."
    ("trn08", 21.168, 0.969, "interruption"),  # "So this is a bit of..."
    ("trn08", 27.107, 0.582, "interruption"),  # "I think it's..."
    ("tst01", 4.390, 0.350, "interruption"),  # "No."
    ("tst01", 4.773, 0.366, "interruption"),  # "No."
    ("sample", 18.150, 0.440, "interruption"),  # "I don't want to." (a phone call)
]
AGENT_TEXT = (
    "Your order shipped this morning and should arrive on Thursday afternoon. The courier will text you a "
    "delivery window, and you can change it in the app if you are not at home."
)
ONSET_S = 1.0
TICK_S = 0.02


@dataclass(frozen=True)
class CallerSound:
    name: str
    pcm: np.ndarray  # int16 16 kHz, trimmed
    label: str  # "backchannel" or "interruption"


def bargein_sounds(split: str) -> list[CallerSound]:
    """The evaluation set of one split ("heldout": reported, never tuned on; "tune"; "all"): every
    backchannel and interruption phrase by each of the split's synthesized voices, plus the synthetic coughs
    and the real segments (both in every split: they were never used to tune)."""
    voices = {"heldout": HELDOUT_VOICES, "tune": TUNE_VOICES, "all": TUNE_VOICES + HELDOUT_VOICES}[split]
    out = [
        CallerSound(f"{voice}@{speed} {text}", synthesize(text, backend, voice, speed), label)
        for backend, voice, speed in voices
        for label, texts in (("backchannel", BACKCHANNELS), ("interruption", INTERRUPTIONS))
        for text in texts
    ]
    return out + coughs() + real_sounds()


def real_sounds() -> list[CallerSound]:
    base = real_speech_dir() / "pyannote"
    cache: dict[str, np.ndarray] = {}
    out = []
    for uri, start, duration, label in REAL_SEGMENTS:
        if uri not in cache:
            cache[uri] = load_pcm16k(base / f"{uri}.wav")
        pcm = cache[uri][int(start * RATE) : int((start + duration) * RATE)].astype(np.float64)
        # Far-field meeting audio peaks at -25 to -40 dBFS; a phone line's gain control delivers a caller
        # near full scale. Peak-normalise to -6 dBFS (noise included), as a line would.
        pcm *= 0.5 * 32767 / max(1.0, float(np.abs(pcm).max()))
        out.append(CallerSound(f"real {uri}@{start}", pcm.astype(np.int16), label))
    return out


@dataclass
class Outcome:
    interrupted: bool
    paused_after_onset_s: float | None  # onset -> first silent frame of the agent (None: never paused)
    resumed_after_onset_s: float | None  # onset -> agent audible again (backchannel)
    stopped_after_onset_s: float | None  # onset -> reply dropped (interruption)
    played_samples: int
    enqueued_samples: int
    decisions: list[str]


async def play_against_agent(
    agent: tuple[np.ndarray, int], caller: np.ndarray, stt: SpeechToText, config: SpeechConfig
) -> Outcome:
    """The agent speaks ``agent`` (16 kHz, so playback adds no resampler tail and every enqueued sample can
    be accounted for); ``caller`` starts at ONSET_S. Real time (20 ms ticks, slept), so the decider's model
    call takes what it takes on this machine."""
    playback = PlaybackController(RATE, frame_ms=20)
    detector = BargeInDetector(
        playback,
        config.barge_in,
        threshold=config.vad.threshold,
        decider=BackchannelDecider(stt, config.barge_in),
    )
    vad = SileroVAD()
    pcm, rate = agent
    for i in range(0, len(pcm), rate // 10):
        playback.enqueue(AudioFrame(pcm[i : i + rate // 10], rate, meta={"text": AGENT_TEXT}))
    enqueued = sum(len(p) for p, _ in playback._pieces)
    stream = np.zeros(int((ONSET_S + len(caller) / RATE + 3.0) * RATE), np.int16)
    stream[int(ONSET_S * RATE) : int(ONSET_S * RATE) + len(caller)] = caller
    step = int(RATE * TICK_S)
    played = 0
    paused = resumed = stopped = None
    start = time.monotonic()
    for k in range(len(stream) // step):
        t = k * TICK_S
        for chunk in vad.process(stream[k * step : (k + 1) * step].astype(np.float32) / 32768, t):
            detector.on_vad(chunk)
        out = playback.read_frame()
        audible = int(out.meta["audio_samples"])  # type: ignore[call-overload]
        played += audible
        if t >= ONSET_S:
            if paused is None and not audible and playback.has_audio:
                paused = t + TICK_S - ONSET_S
            if paused is not None and resumed is None and audible:
                resumed = t - ONSET_S
            if stopped is None and detector.barge_ins:
                stopped = t + TICK_S - ONSET_S
        if not detector.deciding and t > ONSET_S + len(caller) / RATE + 1.0:
            break
        await asyncio.sleep(max(0.0, start + (k + 1) * TICK_S - time.monotonic()))
    while playback.has_audio and not playback.is_paused:  # drain what is left, without pacing
        played += int(playback.read_frame().meta["audio_samples"])  # type: ignore[call-overload]
    return Outcome(
        interrupted=detector.barge_ins > 0,
        paused_after_onset_s=paused,
        resumed_after_onset_s=resumed,
        stopped_after_onset_s=stopped,
        played_samples=played,
        enqueued_samples=enqueued,
        decisions=[f"{d.kind.value}:{d.reason}:{d.text!r}" for d in detector.decisions],
    )


def coughs(count: int = 3, seed: int = 7) -> list[CallerSound]:
    """Synthetic coughs (no real one was found): two or three bursts of band-limited noise, 80-160 ms each,
    with a sharp attack and a decaying tail, at a caller's level. They must resume the reply."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        parts = []
        for _ in range(int(rng.integers(2, 4))):
            n = int(rng.uniform(0.08, 0.16) * RATE)
            noise = np.convolve(rng.standard_normal(n + 32), np.hanning(8), mode="same")[:n]
            envelope = np.exp(-np.linspace(0, 5, n)) * np.minimum(1, np.linspace(0, 20, n))
            parts += [
                0.5 * noise / np.abs(noise).max() * envelope,
                np.zeros(int(rng.uniform(0.05, 0.1) * RATE)),
            ]
        out.append(CallerSound(f"cough {i}", (np.concatenate(parts) * 32767).astype(np.int16), "backchannel"))
    return out
