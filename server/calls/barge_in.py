"""A call's barge-in detector, wired as the speech package expects, and the check that keeps a caller sound
already judged a backchannel from becoming a turn of its own.

While the agent talks, ``speech.bargein.BargeInDetector`` pauses playback at the caller's first sound and
decides with the sound's words (``speech.backchannel.BackchannelDecider``, on the call's shared STT): a
backchannel or a cough resumes the reply where it paused, an interruption stops it (``TurnTaker.on_barge_in``).
The listener hears the same sound as a turn; ``is_backchannel_turn`` tells the session to drop that turn.
"""

from __future__ import annotations

from server.calls.playback import PlaybackOutput
from server.calls.turn_taking import TurnTaker
from speech.backchannel import BackchannelDecider
from speech.bargein import BargeInDetector
from speech.config import SpeechConfig
from speech.events import FinalTranscript
from speech.stt.base import SpeechToText

_DECISION_MARGIN_S = 0.2  # past the decider's own timeout: it always ends by then


def caller_barge_in(
    speech: SpeechConfig, stt: SpeechToText, audio: PlaybackOutput, turns: TurnTaker
) -> BargeInDetector:
    """The detector for one call; feed it the listener's VAD chunks (``TurnListener(on_vad=...)``)."""
    return BargeInDetector(
        audio.controller,
        speech.barge_in,
        threshold=speech.vad.threshold,
        on_barge_in=turns.on_barge_in,
        decider=BackchannelDecider(stt, speech.barge_in),
        on_backchannel=turns.on_backchannel,
    )


async def is_backchannel_turn(
    detector: BargeInDetector, event: FinalTranscript, speech: SpeechConfig
) -> bool:
    """True if ``event`` (stream times) is a sound the detector judged a backchannel: do not answer it, and do
    not cancel the reply. Waits for a decision still running on it."""
    if detector.deciding:
        await detector.wait_decided(speech.barge_in.decision_timeout_ms / 1000 + _DECISION_MARGIN_S)
    return detector.absorbs(event.speech_start_t, event.speech_end_t)
