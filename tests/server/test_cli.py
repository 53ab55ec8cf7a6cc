"""The ``voice-agent`` command: doctor, models, and start-up failure on a bad config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from server.doctor import run_checks
from server.settings import load_settings


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_doctor_passes_on_embedded_defaults() -> None:
    out = _cli("doctor")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "model: stt whisper tiny.en" in out.stdout
    assert "FAIL" not in out.stdout


def test_doctor_reports_unreachable_services() -> None:
    # Port 9 (discard) is closed on loopback: both checks must fail fast with a hint, not hang.
    settings = load_settings(
        environ={
            "VOICE_AGENT__BUS__BACKEND": "rocketmq",
            "VOICE_AGENT__BUS__ROCKETMQ__ENDPOINTS": "127.0.0.1:9",
            "VOICE_AGENT__AGENT__LLM__BACKEND": "ollama",
            "VOICE_AGENT__AGENT__LLM__OLLAMA__HOST": "http://127.0.0.1:9",
        }
    )
    results = {r.name: r for r in run_checks(settings)}
    assert not results["bus: rocketmq"].ok and "rocketmq.sh start" in results["bus: rocketmq"].detail
    assert not results["llm: ollama"].ok and "unreachable" in results["llm: ollama"].detail


def test_models_lists_every_model_path() -> None:
    out = _cli("models")
    assert out.returncode == 0, out.stderr
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in out.stdout


@pytest.mark.parametrize("value", ["abc", "70000"])
def test_bad_config_fails_at_start_naming_the_key(value: str) -> None:
    out = _cli("doctor", env={"VOICE_AGENT__SERVER__PORT": value})
    assert out.returncode == 2
    assert "server.port" in out.stderr


def test_ingest_then_search_from_the_command_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parking.txt").write_text("Parking is free for patients in the blue garage behind the clinic.\n")
    (docs / "hours.md").write_text("# Opening hours\n\nThe clinic is open from 8 am to 6 pm on weekdays.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    env = {"VOICE_AGENT__KNOWLEDGE__EMBEDDED_PATH": str(tmp_path / "k.sqlite3")}
    out = _cli("--log-level", "WARNING", "ingest", str(docs), env=env)
    assert out.returncode == 1, out.stdout + out.stderr  # the broken PDF fails, the others are ready
    assert "2 document(s) ready, 1 failed" in out.stdout and "broken.pdf" in out.stderr
    found = _cli("--log-level", "WARNING", "search", "where can I park my car", "-k", "1", env=env)
    assert found.returncode == 0, found.stderr
    assert "blue garage" in found.stdout


@pytest.mark.integration
def test_doctor_reaches_each_configured_database_as_the_stores_do(postgres_dsn: str) -> None:
    """PostgreSQL is checked through SQLAlchemy (the stores' one way in); a closed port fails fast."""
    settings = load_settings(
        environ={
            "VOICE_AGENT__STORAGE__RECORDS": postgres_dsn,
            "VOICE_AGENT__STORAGE__DELIVERY_LEDGER": "postgresql://voice@127.0.0.1:9/voice",
            "VOICE_AGENT__KNOWLEDGE__STORE": "postgres",
            "VOICE_AGENT__KNOWLEDGE__POSTGRES_DSN": postgres_dsn,
        }
    )
    results = {r.name: r for r in run_checks(settings)}
    assert results["storage: call records"].ok and "connected" in results["storage: call records"].detail
    assert results["knowledge: postgres"].ok
    ledger = results["storage: delivery ledger"]
    assert not ledger.ok and "cannot connect" in ledger.detail and "127.0.0.1" in ledger.detail


def test_a_moved_config_key_stops_start_up_with_its_new_name() -> None:
    out = _cli("doctor", env={"VOICE_AGENT__BUS__PROACTIVE_LEDGER": "/tmp/ledger.sqlite3"})
    assert out.returncode == 2
    assert "bus.proactive_ledger moved to storage.delivery_ledger" in out.stderr


@pytest.mark.parametrize("before", [True, False], ids=["before the subcommand", "after the subcommand"])
def test_config_is_accepted_before_or_after_the_subcommand(tmp_path, before: bool) -> None:  # type: ignore[no-untyped-def]
    """``voice-agent serve --config FILE`` (configs/production.example.yaml's form) used to fail with
    "unrecognized arguments"; the file must be read in either position."""
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  port: 70000\n")
    args = ("--config", str(config), "doctor") if before else ("doctor", "--config", str(config))
    out = _cli(*args)
    assert out.returncode == 2, out.stdout + out.stderr  # the file was read: its invalid port stops start-up
    assert "server.port" in out.stderr


def test_log_level_before_the_subcommand_is_kept() -> None:
    from server.cli import build_parser

    args = build_parser().parse_args(["--log-level", "DEBUG", "--config", "a.yaml", "doctor"])
    assert (args.log_level, args.config, args.command) == ("DEBUG", "a.yaml", "doctor")
    args = build_parser().parse_args(["serve"])
    assert (args.log_level, args.config) == ("INFO", None)
