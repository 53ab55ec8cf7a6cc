"""Barge-in over real calls: does "mm-hm" let the agent go on and "wait" stop it, and how fast does it pause?

    .venv/bin/python bench/bargein.py [--split heldout|tune|all] [--limit N]

One real aiortc call per caller sound, to a node running in this process (``create_app``: the real call
core, Silero VAD, barge-in detector with ``BackchannelDecider`` on the real Whisper tiny.en the listener
shares, playback, Opus both ways; the caller keeps a 2-frame receive buffer like Chromium's). The agent's
greeting is a 440 Hz tone of ``GREETING_S`` and every reply a 660 Hz tone (``FakeTTS``, named a fake: a
steady tone lets the caller tell a pause, the greeting and the reply apart from what it hears, and VAD and
decider only ever see the caller's audio, so the agent's voice does not change what they decide). 1 s into
the greeting the caller plays one sound of ``tests/speech/bargein_set.py`` (held-out split by default: 12
backchannels and 12 interruptions by 5 held-out synthesized voices, 3 synthetic coughs, 16 real segments of
meetings and a phone call) through its Opus track. Judged from what the caller HEARS:

- paused: a silence of >= 0.1 s starts before the greeting would have ended; ``pause_at_caller`` is the
  caller's first sample handed to its encoder -> the silence's first sample, timed from when the 2-frame
  receive buffer releases its frame (as ``RTCCaller.silence_heard_from``);
- "on" (the agent went on): the greeting is heard to its end, nothing lost or replayed (its heard length
  within ``LOSS_TOLERANCE_S`` of an undisturbed call's), and, if it paused, heard again within
  ``RESUME_WINDOW_S`` of the end of the sound (``resume_gap`` = how long the caller heard silence);
- "stop": it paused and the greeting never came back;
- "mixed": anything else (resumed late, resumed then cut, lost or replayed audio): wrong for either label.

Cross-checked with the server: the call record (the greeting marked interrupted) and the event feed
("interrupted" / "backchannel"). Figures: ``false_interruptions_per_100_backchannels`` (backchannels and
coughs not "on"), ``real_interruptions_stopped`` (share "stop"), ``pause_at_caller_s_p50``,
``resume_gap_s_p50``, and the same for the real recordings alone. Tight timing: the load average is
printed. Ends with one JSON line. ``bench/backchannels.py`` is the same set without a network (decider
only, faster, for tuning on ``--split tune``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.settings import Settings
from speech.backchannel import BackchannelDecider, BargeInDecision
from speech.frames import AudioFrame
from speech.resample import resample_array
from speech.stt.registry import create_stt
from tests.server.caller import RATE, VOICE_RMS, RTCCaller
from tests.server.calls.test_call_behaviour import CHROMIUM_BUFFER_FRAMES, ServerSideAudio, _server
from tests.server.fakes import FakeTTS, fake_deps
from tests.speech.bargein_set import CallerSound, bargein_sounds

GREETING = " ".join(["Welcome to the voice agent test line, we are glad you called today."] * 4)
SECONDS_PER_WORD = 0.1
GREETING_S = len(GREETING.split()) * SECONDS_PER_WORD  # 5.2 s
GREETING_HZ, REPLY_HZ = 440.0, 660.0
ONSET_S = 1.0  # into the greeting, as heard by the caller
RESUME_WINDOW_S = 2.0  # decision timeout (1 s) + end gap + network: a resume later than this is not one
LOSS_TOLERANCE_S = 0.06
WINDOW = RATE // 400  # 2.5 ms analysis windows


class DecisionLog:
    """The server's barge-in decisions (words heard, kind, reason) with the time each was made."""

    def __init__(self, patch: pytest.MonkeyPatch) -> None:
        self.made: list[tuple[float, BargeInDecision]] = []
        real_decide = BackchannelDecider.decide

        async def logged(decider: BackchannelDecider, audio: np.ndarray) -> BargeInDecision:
            decision = await real_decide(decider, audio)
            self.made.append((time.monotonic(), decision))
            return decision

        patch.setattr(BackchannelDecider, "decide", logged)

    def since(self, t: float) -> list[str]:
        return [f"{d.kind.value}:{d.reason}:{d.text!r}" for at, d in self.made if at >= t]


class TwoToneTTS:
    """Fake TTS for the bench: the greeting at 440 Hz, anything else (replies) at 660 Hz."""

    sample_rate = 16_000

    def __init__(self) -> None:
        self.greeting = FakeTTS(SECONDS_PER_WORD, hz=GREETING_HZ)
        self.reply = FakeTTS(SECONDS_PER_WORD, hz=REPLY_HZ)

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        tts = self.greeting if text.strip() and text.strip() in GREETING else self.reply
        async for frame in tts.synthesize(text):
            yield frame


@dataclass
class Heard:
    """What the caller heard of one call, on 2.5 ms windows of the received track."""

    times: np.ndarray  # monotonic time each window is heard
    greeting: np.ndarray  # bool: loud and the greeting's tone
    loud: np.ndarray  # bool: any agent audio

    @classmethod
    def of(cls, caller: RTCCaller) -> Heard:
        times: list[float] = []
        greeting: list[bool] = []
        loud: list[bool] = []
        t = np.arange(960) / RATE
        probes = {
            hz: (np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)) for hz in (GREETING_HZ, REPLY_HZ)
        }
        for arrival, _, pcm in caller.received:
            x = pcm.astype(np.float64)
            power = {
                hz: np.dot(x[:960], s[: len(x)]) ** 2 + np.dot(x[:960], c[: len(x)]) ** 2
                for hz, (s, c) in probes.items()
            }
            is_greeting = power[GREETING_HZ] > power[REPLY_HZ]
            for start in range(0, len(x) - WINDOW + 1, WINDOW):
                rms = float(np.sqrt(np.mean(x[start : start + WINDOW] ** 2)))
                # Heard from when the receive buffer releases the frame, as ``RTCCaller.silence_heard_from``
                # (and the barge-in test) count it. Frames released in a burst overlap in time, so searches
                # after a point go by window index (the order they play in), not by time.
                times.append(arrival + start / RATE)
                loud.append(rms > VOICE_RMS)
                greeting.append(rms > VOICE_RMS and is_greeting)
        return cls(np.array(times), np.array(greeting, bool), np.array(loud, bool))

    def greeting_s(self) -> float:
        return float(self.greeting.sum()) * WINDOW / RATE

    def first_silence(self, after: float, hold_s: float = 0.1) -> int | None:
        """Index of the first window of the first silence of ``hold_s`` heard after ``after``."""
        need = round(hold_s * RATE / WINDOW)
        run = 0
        for i in np.nonzero(self.times >= after)[0]:
            run = 0 if self.loud[i] else run + 1
            if run >= need:
                return int(i - need + 1)
        return None

    def greeting_after(self, index: int) -> int | None:
        """Index of the first greeting window heard after window ``index``."""
        hits = np.nonzero(self.greeting[index:])[0]
        return index + int(hits[0]) if len(hits) else None


@dataclass
class Outcome:
    sound: CallerSound
    paused_s: float | None  # caller's first sample sent -> silence heard (None: never paused)
    resume_gap_s: float | None  # silence heard before the greeting came back (None: it did not)
    resumed_at_all: bool  # greeting audio came back after the pause, however late
    verdict: str  # "on", "stop" or "mixed" (module docstring), from what the caller heard
    greeting_heard_s: float
    server_interrupted: bool  # the call record marks the greeting interrupted
    events: list[str]  # "interrupted" / "backchannel" events of the feed
    server_pause_s: float | None  # caller's first loud frame at the session -> agent's first silent frame
    decisions: list[str]  # the decider's words and verdicts on this sound (early ones included)


async def one_call(
    url: str, sound: CallerSound | None, audio: ServerSideAudio, log: DecisionLog
) -> tuple[Outcome | None, Heard]:
    caller = RTCCaller(url, receive_buffer_frames=CHROMIUM_BUFFER_FRAMES)
    try:
        await caller.connect()
        greeting_start = await caller.reply_start(after=0.0, timeout=20)
        if sound is None:  # undisturbed: how long the whole greeting sounds at the caller
            await caller.wait_quiet(0.6, timeout=GREETING_S + 10)
            return None, Heard.of(caller)
        pcm = resample_array(sound.pcm, 16_000, RATE)
        await asyncio.sleep(max(0.0, greeting_start + ONSET_S - time.monotonic()))
        sent_before = time.monotonic()
        sound_end = await caller.say(pcm)
        said_from = caller.said_from
        await asyncio.sleep(RESUME_WINDOW_S + 0.3)
        await caller.wait_quiet(0.6, timeout=GREETING_S + 15)
        heard = Heard.of(caller)
        record = await caller.record()
    finally:
        await caller.hangup()
    quiet = heard.first_silence(said_from)
    silence = float(heard.times[quiet]) if quiet is not None else None
    paused = silence is not None and silence < greeting_start + GREETING_S - 0.2
    comes_back = heard.greeting_after(quiet) if paused and quiet is not None else None
    back = float(heard.times[comes_back]) if comes_back is not None else None
    resumed = back is not None and back <= sound_end + RESUME_WINDOW_S
    greeting_entry: dict[str, Any] = next(
        (e for e in record.get("transcript", []) if e.get("source") == "greeting"), {}
    )
    server_pause = None
    try:
        onset = audio.caller_onset(after=sent_before)
        server_pause = audio.agent_stop(after=onset) - onset
    except (StopIteration, AssertionError):
        pass
    return Outcome(
        sound=sound,
        paused_s=silence - said_from if paused and silence is not None else None,
        resume_gap_s=back - silence if resumed and back is not None and silence is not None else None,
        resumed_at_all=back is not None,
        verdict="",  # set against the undisturbed greeting's length by the caller of one_call
        greeting_heard_s=heard.greeting_s(),
        server_interrupted=bool(greeting_entry.get("interrupted")),
        events=[e["type"] for e in caller.events if e.get("type") in ("interrupted", "backchannel")],
        server_pause_s=server_pause,
        decisions=log.since(sent_before),
    ), heard


def verdict(outcome: Outcome, full_s: float) -> str:
    whole = abs(outcome.greeting_heard_s - full_s) <= LOSS_TOLERANCE_S
    if whole and (outcome.paused_s is None or outcome.resume_gap_s is not None):
        return "on"
    cut = outcome.greeting_heard_s < full_s - LOSS_TOLERANCE_S
    if outcome.paused_s is not None and cut and not outcome.resumed_at_all:
        return "stop"
    return "mixed"


def p50(values: list[float]) -> float | None:
    return round(float(statistics.median(values)), 4) if values else None


def figures(outcomes: list[Outcome], full_s: float, prefix: str = "") -> dict[str, Any]:
    bcs = [o for o in outcomes if o.sound.label == "backchannel"]
    ints = [o for o in outcomes if o.sound.label == "interruption"]
    return {
        f"{prefix}backchannels": len(bcs),
        f"{prefix}interruptions": len(ints),
        f"{prefix}false_interruptions_per_100_backchannels": round(
            100 * sum(o.verdict != "on" for o in bcs) / max(1, len(bcs)), 2
        ),
        f"{prefix}real_interruptions_stopped": round(
            sum(o.verdict == "stop" for o in ints) / max(1, len(ints)), 4
        ),
        f"{prefix}pause_at_caller_s_p50": p50([o.paused_s for o in outcomes if o.paused_s is not None]),
        f"{prefix}resume_gap_s_p50": p50([o.resume_gap_s for o in bcs if o.resume_gap_s is not None]),
    }


async def main(split: str, limit: int | None) -> dict[str, Any]:
    load = os.getloadavg()
    print(
        f"machine: nproc {os.cpu_count()}, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        flush=True,
    )
    sounds = bargein_sounds(split)
    if limit:  # an even spread over the set's kinds
        sounds = sounds[:: max(1, len(sounds) // limit)][:limit]
    settings = Settings()
    settings.agent.greeting = GREETING
    with tempfile.TemporaryDirectory(prefix="bench-bargein-") as tmp, pytest.MonkeyPatch.context() as patch:
        audio = ServerSideAudio(patch)
        log = DecisionLog(patch)
        deps = fake_deps(Path(tmp), settings)
        deps.stt = create_stt(settings.speech.stt)
        await deps.stt.warm_up()
        deps.tts = TwoToneTTS()
        server = await _server(settings, deps)
        try:
            url = str(server.make_url(""))
            _, calm = await one_call(url, None, audio, log)
            full_s = calm.greeting_s()
            print(
                f"undisturbed greeting heard for {full_s:.3f} s ({GREETING_S:.1f} s synthesized)", flush=True
            )
            outcomes: list[Outcome] = []
            for sound in sounds:
                outcome, _ = await one_call(url, sound, audio, log)
                assert outcome is not None
                outcome.verdict = verdict(outcome, full_s)
                outcomes.append(outcome)
                wrong = outcome.verdict != ("stop" if sound.label == "interruption" else "on")
                pause = f"{outcome.paused_s * 1000:.0f}" if outcome.paused_s is not None else "-"
                gap = f"{outcome.resume_gap_s:.2f}" if outcome.resume_gap_s is not None else "-"
                server_says = "stop" if outcome.server_interrupted else "go on"
                print(
                    f"  {'WRONG' if wrong else 'ok   '} {sound.label:12s} {sound.name:42s} heard "
                    f"{outcome.verdict:5s} (pause {pause} ms, resumed after {gap} s, "
                    f"greeting {outcome.greeting_heard_s:.2f} s) server {server_says} {outcome.events} {outcome.decisions}",
                    flush=True,
                )
        finally:
            await server.close()
            deps.records.close()
    result: dict[str, Any] = {"bench": "bargein", "split": split, "calls": len(outcomes)}
    result.update(figures(outcomes, full_s))
    result.update(figures([o for o in outcomes if o.sound.name.startswith("real")], full_s, "real_"))
    paused = sorted(o.paused_s for o in outcomes if o.paused_s is not None)
    stops = [o.paused_s for o in outcomes if o.sound.label == "interruption" and o.paused_s is not None]
    server_pauses = [o.server_pause_s for o in outcomes if o.server_pause_s is not None]
    result.update(
        pause_at_caller_s_p90=round(paused[int(0.9 * (len(paused) - 1))], 4) if paused else None,
        pause_at_caller_s_max=round(paused[-1], 4) if paused else None,
        interruption_pause_at_caller_s_p50=p50(stops),
        pause_at_server_s_p50=p50(server_pauses),
        never_paused=sum(o.paused_s is None for o in outcomes),
        verdicts={v: sum(o.verdict == v for o in outcomes) for v in ("on", "stop", "mixed")},
        resumed_audio_lost_or_replayed=sum(
            o.resume_gap_s is not None and abs(o.greeting_heard_s - full_s) > LOSS_TOLERANCE_S
            for o in outcomes
        ),
        server_disagrees=sum(o.server_interrupted != (o.verdict != "on") for o in outcomes),
        undisturbed_greeting_s=round(full_s, 3),
        nproc=os.cpu_count(),
        loadavg_start=[round(x, 2) for x in load],
        loadavg_end=[round(x, 2) for x in os.getloadavg()],
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=["heldout", "tune", "all"], default="heldout")
    parser.add_argument(
        "--limit", type=int, default=None, help="only N sounds, spread over the set (a smoke run)"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.split, args.limit))))
