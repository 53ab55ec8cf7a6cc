from __future__ import annotations

import importlib

import pytest
from prometheus_client import REGISTRY

import speech.timing
from speech.timing import TurnTimings


def test_stage_durations_and_histograms() -> None:
    t = TurnTimings(
        speech_end=10.0, stt_final=10.3, llm_first_token=10.5, tts_first_audio=10.6, first_audio_out=10.62
    )
    stages = t.observe()
    assert stages["stt_final"] == pytest.approx(0.3) and stages["voice_to_voice"] == pytest.approx(0.62)
    count = REGISTRY.get_sample_value("voice_agent_stt_final_seconds_count")
    assert count is not None and count >= 1
    assert REGISTRY.get_sample_value("voice_agent_tts_first_audio_seconds_count") is not None


def test_missing_stage_is_skipped_and_module_reload_does_not_reregister() -> None:
    assert TurnTimings(speech_end=1.0, tts_first_audio=2.0).stage_seconds() == {"tts_first_audio": 1.0}
    importlib.reload(speech.timing)  # a second registration would raise "Duplicated timeseries"
