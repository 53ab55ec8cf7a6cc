"""``voice-agent eval FILE`` from the command line: the configured knowledge base (a watched folder holding the
repair-shop FAQ, ingested by the command itself), the default LLM and a real ``Conversation`` per question.
Checks what is printed and the exit status: 0, 1 below a ``--min-*`` bound, 2 on an unusable file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures.knowledge import SHOP_FAQ, SHOP_QUESTIONS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

CSV = (
    "id,ask,expect,refuse\n"
    "battery,How much is a new battery?,69 dollars|$69,\n"
    'hours,"What time do you close on Saturday?",5 pm,\n'
    "gift,Do you sell gift cards?,,yes\n"
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(SHOP_FAQ, inbox / "faq.md")
    path = tmp_path / "eval.yaml"
    settings = {
        "knowledge": {"embedded_path": str(tmp_path / "knowledge.sqlite3"), "watch_dir": str(inbox)},
        "agent": {"memory_path": str(tmp_path / "memory.sqlite3")},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


def voice_agent(config: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
            "eval",
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"},
    )
    return result, time.monotonic() - started


def scores_of(stdout: str) -> dict[str, object]:
    return json.loads(stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_yaml_scores_failures_and_exit_status(config: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.yaml"
    questions.write_text(SHOP_QUESTIONS)

    ok, _ = voice_agent(config, str(questions), "--min-accuracy", "0.6", "--max-invented-rate", "0")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    scores = scores_of(ok.stdout)
    assert scores["questions"] == 5
    assert scores["answer_accuracy"] == round(2 / 3, 4) and scores["unanswerable_refusal_rate"] == 1.0
    assert scores["invented_fact_rate"] == 0.0 and scores["small_talk_refusal_rate"] == 0.0
    # The only failure is the question whose "accepted answer" is wrong: the agent said what the FAQ says,
    # and the table shows the evidence it came from.
    assert "1 failure(s):" in ok.stdout and "- wrong (test, answerable): fact missing" in ok.stdout
    assert "59 dollars" in ok.stdout and "[file:faq.md]" in ok.stdout

    below, _ = voice_agent(config, str(questions), "--min-accuracy", "0.9")
    assert below.returncode == 1, below.stdout + below.stderr
    assert "below minimum: answer_accuracy 0.667 (needs >= 0.9)" in below.stdout


def test_csv_file(config: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.csv"
    questions.write_text(CSV)
    result, _ = voice_agent(
        config, str(questions), "--min-accuracy", "1", "--min-refusal-rate", "1", "--max-invented-rate", "0"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no failures" in result.stdout
    scores = scores_of(result.stdout)
    assert (scores["answerable"], scores["unanswerable"], scores["answer_accuracy"]) == (2, 1, 1.0)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("broken.yaml", "questions: [", "not valid YAML"),
        ("empty.csv", "id,ask\n", "has no questions"),
        ("notes.txt", "How much is a battery?", "unknown evaluation file type"),
        ("both.yaml", "- {ask: 'Open on Sunday?', expect: [closed], refuse: true}", "cannot both"),
    ],
)
def test_unusable_file_exits_2_before_loading_models(
    config: Path, tmp_path: Path, name: str, text: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    result, took = voice_agent(config, str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.startswith("error: ") and reason in result.stdout, result.stdout
    assert not (tmp_path / "knowledge.sqlite3").exists()  # no knowledge base was built for a bad file
    assert took < 60, took


def test_missing_file_exits_2(config: Path, tmp_path: Path) -> None:
    result, _ = voice_agent(config, str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "cannot read evaluation file" in result.stdout
