"""Retrieval quality on a small labelled set of public-domain passages (tests/knowledge/data).

34 chunks (one per passage, chunked by heading), 24 questions, each labelled with the heading of its answer
passage. Most questions paraphrase (vector territory), a few quote rare words (full-text territory).
"""

from __future__ import annotations

import json
from pathlib import Path

from knowledge.events import DocumentEvent
from knowledge.knowledge_base import KnowledgeBase

DATA = Path(__file__).parent / "data"
TOLERANCE = 0.05  # fusion may lose one question in 20 to a single retriever and still be the right default


async def test_hybrid_recall_at_5_is_at_least_the_best_single_mode(kb: KnowledgeBase) -> None:
    for f in sorted(DATA.glob("*.md")):
        await kb.ingestor.submit(DocumentEvent(op="upsert", doc_id=f.name, path=str(f), source="test"))
    await kb.ingestor.wait_idle()
    docs = await kb.store.list_documents()
    assert all(d.status == "ready" for d in docs) and sum(d.chunk_count for d in docs) >= 30

    questions = json.loads((DATA / "questions.json").read_text())
    recall: dict[str, float] = {}
    mrr: dict[str, float] = {}
    for mode in ("vector", "fulltext", "hybrid"):
        hits, rr = 0, 0.0
        for q in questions:
            results = await kb.retriever.retrieve(q["q"], k=5, mode=mode)
            ranks = [i for i, r in enumerate(results, 1) if r.heading == q["answer"]]
            hits += bool(ranks)
            rr += 1 / ranks[0] if ranks else 0.0
        recall[mode], mrr[mode] = hits / len(questions), rr / len(questions)
    print(
        f"\nrecall@5 ({type(kb.store).__name__}, {len(questions)} questions): "
        + ", ".join(f"{m}={v:.3f}" for m, v in recall.items())
        + "; MRR@5: "
        + ", ".join(f"{m}={v:.3f}" for m, v in mrr.items())
    )
    assert recall["hybrid"] >= max(recall["vector"], recall["fulltext"]) - TOLERANCE
    assert recall["hybrid"] >= 0.8
