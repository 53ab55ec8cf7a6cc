"""Per-turn latency timestamps and the Prometheus histograms ``voice_agent_<stage>_seconds``.

Each stage histogram measures the gap from the previous stage's timestamp, so the stages add up to the
voice-to-voice latency (also recorded, as ``voice_agent_voice_to_voice_seconds``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

from prometheus_client import REGISTRY, Histogram

STAGES = ("stt_final", "llm_first_token", "tts_first_audio", "first_audio_out")
_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_DESCRIPTIONS = {
    "stt_final": "end of caller speech to final transcript",
    "llm_first_token": "final transcript to first LLM token",
    "tts_first_audio": "first LLM token to first synthesized audio",
    "first_audio_out": "first synthesized audio to first audio frame sent to the caller",
    "voice_to_voice": "end of caller speech to first agent audio sent",
}
_histograms: dict[str, Histogram] = {}
_lock = threading.Lock()


def histogram(stage: str) -> Histogram:
    """The process-wide histogram ``voice_agent_<stage>_seconds`` (created on first use, never twice)."""
    with _lock:
        if stage not in _histograms:
            name = f"voice_agent_{stage}_seconds"
            existing = REGISTRY._names_to_collectors.get(name)  # re-imported module (tests, reload)
            _histograms[stage] = (
                existing
                if isinstance(existing, Histogram)
                else Histogram(name, _DESCRIPTIONS.get(stage, stage), buckets=_BUCKETS)
            )
        return _histograms[stage]


for _stage in (*STAGES, "voice_to_voice"):
    histogram(_stage)


@dataclass(slots=True)
class TurnTimings:
    """``time.monotonic()`` timestamps of one turn's milestones; ``None`` until reached."""

    speech_end: float | None = None
    stt_final: float | None = None
    llm_first_token: float | None = None
    tts_first_audio: float | None = None
    first_audio_out: float | None = None

    def stage_seconds(self) -> dict[str, float]:
        """Duration of each reached stage, measured from the previous reached milestone."""
        out: dict[str, float] = {}
        previous = self.speech_end
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if value is not None and previous is not None:
                out[f.name] = max(0.0, value - previous)
            previous = value if value is not None else previous
        if self.speech_end is not None and self.first_audio_out is not None:
            out["voice_to_voice"] = max(0.0, self.first_audio_out - self.speech_end)
        return out

    def observe(self) -> dict[str, float]:
        """Record the reached stages in the histograms; returns what was recorded."""
        stages = self.stage_seconds()
        for stage, seconds in stages.items():
            histogram(stage).observe(seconds)
        return stages
