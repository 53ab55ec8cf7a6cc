"""Speech pipeline: caller audio -> turns and transcripts; reply text -> sentences -> audio -> paced playback.

Transport-agnostic: everything flows as ``AudioFrame``. Heavy models load only when a backend is created.
"""

from speech.backchannel import BackchannelDecider, BargeInKind, classify_barge_in
from speech.bargein import BargeInDetector
from speech.endpointing import EndOfTurnPolicy
from speech.events import FinalTranscript, PartialTranscript, SpeechStarted, SpeechStopped
from speech.frames import AudioFrame
from speech.listener import TurnListener
from speech.playback import PlaybackController
from speech.resample import Resampler
from speech.sentences import SentenceAggregator
from speech.stt.registry import create_stt
from speech.timing import TurnTimings
from speech.tts.registry import create_tts

__all__ = [
    "AudioFrame",
    "BackchannelDecider",
    "BargeInDetector",
    "BargeInKind",
    "EndOfTurnPolicy",
    "FinalTranscript",
    "PartialTranscript",
    "PlaybackController",
    "Resampler",
    "SentenceAggregator",
    "SpeechStarted",
    "SpeechStopped",
    "TurnListener",
    "TurnTimings",
    "classify_barge_in",
    "create_stt",
    "create_tts",
]
