"""Configuration layering: defaults < --config file < environment; invalid values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import ConfigError, load_settings


def test_embedded_defaults_use_no_external_service() -> None:
    s = load_settings(environ={})
    assert s.server.host == "127.0.0.1"
    assert s.bus.backend == "embedded"
    assert s.knowledge.store == "embedded"
    assert s.agent.llm.backend == "llamacpp"
    assert s.speech.stt.model == "tiny.en"
    assert s.speech.tts.backend == "piper"


def test_production_example_selects_real_services() -> None:
    s = load_settings(Path("configs/production.example.yaml"), environ={})
    assert (s.bus.backend, s.agent.llm.backend, s.knowledge.store) == ("rocketmq", "ollama", "postgres")


def test_file_then_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("server: {port: 9001}\nspeech: {stt: {model: base}}\n")
    s = load_settings(cfg, environ={"VOICE_AGENT__SERVER__PORT": "9002", "VOICE_AGENT__SPEECH__VAD__THRESHOLD": "0.7"})
    assert s.server.port == 9002
    assert s.speech.stt.model == "base"
    assert s.speech.vad.threshold == pytest.approx(0.7)
    assert s.speech.stt.language == "en"  # untouched keys keep their defaults


def test_invalid_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"VOICE_AGENT__SPEECH__VAD__THRESHOLD": "1.5"})
    assert "speech.vad.threshold" in str(err.value)


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sppech: {}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    assert "sppech" in str(err.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})


def test_unknown_backend_name_is_rejected_with_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"VOICE_AGENT__BUS__BACKEND": "kafka"})
    assert "bus.backend" in str(err.value) and "rocketmq" in str(err.value)
