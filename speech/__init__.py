"""Speech pipeline: caller audio -> turns and transcripts; reply text -> sentences -> audio -> paced playback.

Transport-agnostic: everything flows as ``AudioFrame``. Heavy models load only when a backend is created.
"""

from speech.bargein import BargeInDetector
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
    "BargeInDetector",
    "FinalTranscript",
    "PartialTranscript",
    "PlaybackController",
    "Resampler",
    "SentenceAggregator",
    "SpeechStarted",
    "SpeechStopped",
    "TurnListener",
    "TurnTimings",
    "create_stt",
    "create_tts",
]
