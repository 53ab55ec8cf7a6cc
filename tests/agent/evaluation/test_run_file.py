"""``run_file`` (what ``voice-agent eval FILE`` runs) on a real knowledge base and a real Conversation:
printed scores, the failure table, the JSON line and the exit status."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.conversation import Conversation
from agent.evaluation import run_file
from tests.agent.fakes import FakeLLM
from tests.fixtures.knowledge import SHOP_QUESTIONS


async def run(tmp_path: Path, kb: Any, text: str, name: str = "set.yaml", **bounds: Any) -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text)
    config = AgentConfig()

    def factory() -> Conversation:
        return Conversation(FakeLLM(["unused"]), config, retriever=kb.retriever, embedder=kb.embedder)

    out = io.StringIO()
    status = await run_file(
        path, factory, retriever=kb.retriever, known_texts=config.fixed_phrases(), out=out, **bounds
    )
    return status, out.getvalue()


async def test_scores_failures_and_exit_status(tmp_path: Path, shop_kb: Any) -> None:
    status, out = await run(tmp_path, shop_kb, SHOP_QUESTIONS, min_accuracy=0.5)
    assert status == 0, out
    scores = json.loads(out.strip().splitlines()[-1])
    assert scores["answer_accuracy"] == round(2 / 3, 4) and scores["unanswerable_refusal_rate"] == 1.0
    assert scores["invented_fact_rate"] == 0.0 and scores["questions"] == 5
    # The one failure is the question whose "accepted answer" is wrong: the agent said what the FAQ says.
    assert "1 failure(s):" in out and "- wrong (test, answerable): fact missing" in out
    assert "said     A charging port repair costs 59 dollars." in out and "[file:faq.md]" in out

    status, out = await run(tmp_path, shop_kb, SHOP_QUESTIONS, min_accuracy=0.9)
    assert status == 1 and "below minimum: answer_accuracy 0.667 (needs >= 0.9)" in out, out


async def test_csv_and_bad_files(tmp_path: Path, shop_kb: Any) -> None:
    csv = "id,ask,expect,refuse\nbattery,How much is a new battery?,69 dollars|$69,\ngift,Do you sell gift cards?,,yes\n"
    status, out = await run(tmp_path, shop_kb, csv, name="set.csv", min_accuracy=1.0, min_refusal_rate=1.0)
    assert status == 0 and "no failures" in out, out
    status, out = await run(tmp_path, shop_kb, "questions: [", name="broken.yaml")
    assert status == 2 and out.startswith("error: ") and "not valid YAML" in out
